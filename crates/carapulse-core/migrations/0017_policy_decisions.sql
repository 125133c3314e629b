-- Policy impact: every write decision (plan creation and execution, approvals, other writes)
-- keeps its input document (redacted: no e-mail addresses, secret-looking values masked) and its
-- outcome, so a candidate policy can be re-run over real traffic. Pruned by the retention job
-- (gateway.policy_decision_retention_days).
CREATE TABLE policy_decisions (
  decision_id UUID PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  decided_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  action TEXT NOT NULL,
  environment TEXT NOT NULL DEFAULT '',
  plan_id UUID,
  decision TEXT NOT NULL,
  reasons JSONB NOT NULL DEFAULT '[]',
  input_json JSONB NOT NULL
);
CREATE INDEX policy_decisions_window ON policy_decisions (tenant_id, decided_at, decision_id);
CREATE INDEX policy_decisions_age ON policy_decisions (decided_at);
