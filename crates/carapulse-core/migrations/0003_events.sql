-- Change events, written by triggers so every writer (gateway, orchestrator activities, the
-- Linear watcher, a future process) announces its changes without remembering to. Each event is
-- kept in event_log (for Last-Event-ID resume and gap recovery after a listener reconnects) and
-- announced with NOTIFY on a channel per kind; the payload is the event itself (ids and a few
-- status fields, far below NOTIFY's 8000-byte limit). NOTIFY is delivered on commit, so rolled
-- back changes announce nothing.
CREATE TABLE event_log (
    event_id    BIGSERIAL PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    session_id  TEXT,
    data        JSONB NOT NULL,
    occurred_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX event_log_tenant_idx ON event_log (tenant_id, event_id);
CREATE INDEX event_log_time_idx ON event_log (occurred_at);

CREATE FUNCTION carapulse_emit(p_kind TEXT, p_tenant TEXT, p_session TEXT, p_data JSONB) RETURNS void AS $$
DECLARE
    new_id BIGINT;
    at     TIMESTAMPTZ;
BEGIN
    INSERT INTO event_log (tenant_id, kind, session_id, data)
    VALUES (p_tenant, p_kind, p_session, p_data)
    RETURNING event_id, occurred_at INTO new_id, at;
    PERFORM pg_notify(
        'carapulse_' || replace(p_kind, '.', '_'),
        json_build_object('id', new_id, 'tenant_id', p_tenant, 'kind', p_kind,
                          'session_id', p_session, 'data', p_data, 'ts', at)::text);
END $$ LANGUAGE plpgsql;

CREATE FUNCTION carapulse_plan_event() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.approval_state IS NOT DISTINCT FROM OLD.approval_state
       AND NEW.meta_json IS NOT DISTINCT FROM OLD.meta_json THEN
        RETURN NULL;
    END IF;
    PERFORM carapulse_emit('plan.updated', NEW.tenant_id, NEW.session_id,
        jsonb_build_object('plan_id', NEW.plan_id, 'approval_state', NEW.approval_state,
                           'risk_level', NEW.risk_level, 'op', lower(TG_OP)));
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER plans_event AFTER INSERT OR UPDATE ON plans
    FOR EACH ROW EXECUTE FUNCTION carapulse_plan_event();

CREATE FUNCTION carapulse_approval_event() RETURNS trigger AS $$
BEGIN
    PERFORM carapulse_emit('approval.updated', NEW.tenant_id,
        (SELECT session_id FROM plans WHERE plan_id = NEW.plan_id),
        jsonb_build_object('approval_id', NEW.approval_id, 'plan_id', NEW.plan_id,
                           'status', NEW.status, 'source', NEW.source, 'approver', NEW.approver));
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER approvals_event AFTER INSERT ON approvals
    FOR EACH ROW EXECUTE FUNCTION carapulse_approval_event();

CREATE FUNCTION carapulse_execution_event() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status IS NOT DISTINCT FROM OLD.status
       AND NEW.workflow_id IS NOT DISTINCT FROM OLD.workflow_id THEN
        RETURN NULL;
    END IF;
    PERFORM carapulse_emit('execution.updated', NEW.tenant_id,
        (SELECT session_id FROM plans WHERE plan_id = NEW.plan_id),
        jsonb_build_object('execution_id', NEW.execution_id, 'plan_id', NEW.plan_id,
                           'status', NEW.status, 'error', NEW.error));
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER executions_event AFTER INSERT OR UPDATE ON executions
    FOR EACH ROW EXECUTE FUNCTION carapulse_execution_event();

CREATE FUNCTION carapulse_execution_step_event() RETURNS trigger AS $$
DECLARE
    v_plan    UUID;
    v_session TEXT;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status IS NOT DISTINCT FROM OLD.status THEN
        RETURN NULL;
    END IF;
    SELECT e.plan_id, p.session_id INTO v_plan, v_session
      FROM executions e JOIN plans p ON p.plan_id = e.plan_id WHERE e.execution_id = NEW.execution_id;
    PERFORM carapulse_emit('execution.updated', NEW.tenant_id, v_session,
        jsonb_build_object('execution_id', NEW.execution_id, 'plan_id', v_plan,
                           'step', jsonb_build_object('ordinal', NEW.ordinal, 'stage', NEW.stage,
                                                      'status', NEW.status, 'error', NEW.error)));
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER execution_steps_event AFTER INSERT OR UPDATE ON execution_steps
    FOR EACH ROW EXECUTE FUNCTION carapulse_execution_step_event();

CREATE FUNCTION carapulse_audit_event() RETURNS trigger AS $$
BEGIN
    PERFORM carapulse_emit('audit.created', NEW.tenant_id, NULL,
        jsonb_build_object('event_id', NEW.event_id, 'seq', NEW.seq, 'action', NEW.action,
                           'decision', NEW.decision, 'resource_id', NEW.resource_id));
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER audit_events_event AFTER INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION carapulse_audit_event();

CREATE FUNCTION carapulse_alert_event() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.status IS NOT DISTINCT FROM OLD.status THEN
        RETURN NULL;
    END IF;
    PERFORM carapulse_emit('alert.received', NEW.tenant_id, NULL,
        jsonb_build_object('alert_id', NEW.alert_id, 'source', NEW.source,
                           'fingerprint', NEW.fingerprint, 'status', NEW.status));
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER alert_events_event AFTER INSERT OR UPDATE ON alert_events
    FOR EACH ROW EXECUTE FUNCTION carapulse_alert_event();
