-- Log lines of tool calls, copied from the tool router's live stream by the orchestrator while a
-- step runs, so any gateway replica can replay them and follow new ones (NOTIFY on
-- carapulse_tool_log, payload = the line, message cut to 2000 characters).
CREATE TABLE tool_call_logs (
    tool_call_id UUID NOT NULL REFERENCES tool_calls (tool_call_id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    execution_id UUID NOT NULL,
    tenant_id    TEXT NOT NULL,
    stream       TEXT NOT NULL CHECK (stream IN ('stdout','stderr')),
    level        TEXT NOT NULL,
    message      TEXT NOT NULL,
    ts           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tool_call_id, seq)
);
CREATE INDEX tool_call_logs_execution_idx ON tool_call_logs (execution_id, ts, seq);

CREATE FUNCTION carapulse_tool_log_event() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('carapulse_tool_log', json_build_object(
        'execution_id', NEW.execution_id, 'tool_call_id', NEW.tool_call_id, 'tenant_id', NEW.tenant_id,
        'seq', NEW.seq, 'stream', NEW.stream, 'level', NEW.level,
        'message', left(NEW.message, 2000), 'ts', NEW.ts)::text);
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER tool_call_logs_event AFTER INSERT ON tool_call_logs
    FOR EACH ROW EXECUTE FUNCTION carapulse_tool_log_event();
