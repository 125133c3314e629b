-- Policy impact runs in the background: a run over a large window is a job with a row here, its
-- progress updated page by page and announced on the event stream (`policy.impact`), its report
-- kept when it ends, so the caller (CLI progress bar, UI) follows it and any gateway replica can
-- answer for it. A run whose gateway stopped is seen as abandoned once its row stops moving.
CREATE TABLE policy_impact_jobs (
  job_id UUID PRIMARY KEY,
  tenant_id TEXT NOT NULL,
  requested_by TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
  total BIGINT NOT NULL DEFAULT 0,
  evaluated BIGINT NOT NULL DEFAULT 0,
  changed BIGINT NOT NULL DEFAULT 0,
  window_json JSONB NOT NULL,
  report JSONB,
  error TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX policy_impact_jobs_tenant ON policy_impact_jobs (tenant_id, created_at);

CREATE FUNCTION carapulse_impact_event() RETURNS trigger AS $$
BEGIN
    PERFORM carapulse_emit('policy.impact', NEW.tenant_id, NULL,
        jsonb_build_object('job_id', NEW.job_id, 'status', NEW.status, 'total', NEW.total,
                           'evaluated', NEW.evaluated, 'changed', NEW.changed));
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER policy_impact_jobs_event AFTER INSERT OR UPDATE ON policy_impact_jobs
    FOR EACH ROW EXECUTE FUNCTION carapulse_impact_event();
