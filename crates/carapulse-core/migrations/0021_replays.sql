-- Incident replay (issue 19): a replay re-runs gates, planner, risk, blast radius and policy over
-- recorded incidents and keeps its results here, never in the live tables. One row per run
-- (its request, progress, summary and the hash of its report, announced on the event stream as
-- `replay.progress`), one row per replayed incident (original against replayed).
--
-- Planning records gain the alert they were planned from, so a replay of an alert event finds
-- the plan born from it without scanning the tenant's plans.
ALTER TABLE planning_records ADD COLUMN alert_id UUID;
CREATE INDEX planning_records_alert_idx ON planning_records (tenant_id, alert_id)
    WHERE alert_id IS NOT NULL;

CREATE TABLE replay_runs (
  replay_id UUID PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  requested_by TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
  request_json JSONB NOT NULL,
  total INTEGER NOT NULL DEFAULT 0,
  replayed INTEGER NOT NULL DEFAULT 0,
  changed INTEGER NOT NULL DEFAULT 0,
  summary_json JSONB,
  report_hash TEXT,
  error TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX replay_runs_tenant_idx ON replay_runs (tenant_id, created_at DESC, replay_id DESC);
CREATE INDEX replay_runs_age_idx ON replay_runs (created_at);

CREATE TABLE replay_incidents (
  replay_id UUID NOT NULL REFERENCES replay_runs(replay_id) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  alert_id UUID,
  plan_id UUID,
  changed BOOLEAN NOT NULL,
  result_json JSONB NOT NULL,
  PRIMARY KEY (replay_id, seq)
);

CREATE FUNCTION carapulse_replay_event() RETURNS trigger AS $$
BEGIN
    PERFORM carapulse_emit('replay.progress', NEW.tenant_id, NULL,
        jsonb_build_object('replay_id', NEW.replay_id, 'status', NEW.status, 'total', NEW.total,
                           'replayed', NEW.replayed, 'changed', NEW.changed));
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER replay_runs_event AFTER INSERT OR UPDATE ON replay_runs
    FOR EACH ROW EXECUTE FUNCTION carapulse_replay_event();
