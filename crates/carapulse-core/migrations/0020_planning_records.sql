-- What planning saw for each plan revision, kept so an incident can be replayed against it
-- (issue 19): the trigger and alert, the planner and its configuration, the request sent to a
-- model and its answer (redacted, size-capped), the context snapshot planning used, and the
-- policy input and outcome that decided the revision. Written in the transaction that stores
-- the plan or its revision; pruned with the policy decisions (retention.policy_decision_hours).
CREATE TABLE planning_records (
    record_id   UUID PRIMARY KEY,
    plan_id     UUID NOT NULL REFERENCES plans(plan_id) ON DELETE CASCADE,
    revision    INTEGER NOT NULL CHECK (revision >= 1),
    tenant_id   TEXT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    record_json JSONB NOT NULL,
    UNIQUE (plan_id, revision)
);
CREATE INDEX planning_records_tenant_idx ON planning_records (tenant_id, recorded_at);
CREATE INDEX planning_records_age_idx ON planning_records (recorded_at);
