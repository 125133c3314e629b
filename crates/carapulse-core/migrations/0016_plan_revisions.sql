-- Plans as reviewed changes. A plan that is not running can be revised: each revision is kept
-- whole and never changes (plan_revisions; the trigger refuses updates), the plan row and its
-- steps always hold the current one, and an approval names the revision it approved. A new
-- revision supersedes the earlier approvals: they stay, marked 'superseded', and only one
-- approval that is not superseded may exist per plan.
ALTER TABLE plans ADD COLUMN revision INTEGER NOT NULL DEFAULT 1 CHECK (revision >= 1);

CREATE TABLE plan_revisions (
  plan_id UUID NOT NULL REFERENCES plans(plan_id) ON DELETE CASCADE,
  revision INTEGER NOT NULL CHECK (revision >= 1),
  tenant_id TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  created_by TEXT NOT NULL,
  note TEXT,
  -- plan_hash of the plan as this revision: what an approval of it records.
  hash TEXT NOT NULL,
  -- The whole plan (steps included) and the policy outcome that decided it.
  snapshot_json JSONB NOT NULL,
  PRIMARY KEY (plan_id, revision)
);
CREATE INDEX plan_revisions_tenant ON plan_revisions (tenant_id, plan_id);

CREATE FUNCTION plan_revisions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'plan revisions are immutable';
END $$;
CREATE TRIGGER plan_revisions_no_update BEFORE UPDATE ON plan_revisions
  FOR EACH ROW EXECUTE FUNCTION plan_revisions_immutable();

ALTER TABLE approvals ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
ALTER TABLE approvals DROP CONSTRAINT approvals_status_check;
ALTER TABLE approvals ADD CONSTRAINT approvals_status_check
  CHECK (status IN ('approved', 'denied', 'expired', 'superseded'));
-- Policy may ask for several approvers (constraints.approvals_required): one standing decision
-- per person per plan, instead of one per plan.
DROP INDEX approvals_one_per_plan;
CREATE UNIQUE INDEX approvals_one_per_person ON approvals (plan_id, lower(approver))
  WHERE status <> 'superseded';

-- A revision that needs approval again asks again: its request starts over (a new Linear issue
-- for the new revision), remembering the earlier issue so it can be told where the decision went.
ALTER TABLE approval_requests ADD COLUMN previous_external_id TEXT;
