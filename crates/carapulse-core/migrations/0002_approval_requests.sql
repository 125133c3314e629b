-- Approval requests sent to an external channel (Linear), one per plan, worked through by the
-- gateway's watcher. Rows are claimed with FOR UPDATE SKIP LOCKED plus a lease in
-- next_attempt_at, so several gateway replicas never work the same request at once.
CREATE TABLE approval_requests (
    plan_id         UUID PRIMARY KEY REFERENCES plans (plan_id) ON DELETE CASCADE,
    tenant_id       TEXT NOT NULL,
    channel         TEXT NOT NULL CHECK (channel IN ('linear')),
    status          TEXT NOT NULL CHECK (status IN ('creating','open','approved','denied','expired','closed')),
    external_id     TEXT,
    external_key    TEXT,
    external_url    TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX approval_requests_due_idx ON approval_requests (next_attempt_at) WHERE status IN ('creating','open');
CREATE INDEX approval_requests_tenant_idx ON approval_requests (tenant_id, plan_id);
