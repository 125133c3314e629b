-- assistantctl import-go: which records of a Go Carapulse database were imported, and as what.
-- Written in the same transaction as the records, so a second run skips what is here and a run
-- killed half way resumes after its last committed page.
CREATE TABLE go_import_ledger (
  kind TEXT NOT NULL,
  go_id TEXT NOT NULL,
  new_id TEXT NOT NULL,
  imported_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (kind, go_id)
);
