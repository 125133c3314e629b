-- Alert ingestion writes a whole delivery in one statement (issue 15); its change events follow
-- suit: one event_log INSERT per statement from the transition tables instead of one trigger
-- call (and INSERT) per row. Every new alert, and every status change, still becomes exactly one
-- `alert.received` event with the same payload, announced with NOTIFY on commit.
-- Transition tables allow one event per trigger, hence one trigger for INSERT and one for UPDATE.
DROP TRIGGER alert_events_event ON alert_events;
DROP FUNCTION carapulse_alert_event();

CREATE FUNCTION carapulse_alerts_inserted() RETURNS trigger AS $$
DECLARE
    e RECORD;
BEGIN
    FOR e IN
        INSERT INTO event_log (tenant_id, kind, session_id, data)
        SELECT tenant_id, 'alert.received', NULL,
               jsonb_build_object('alert_id', alert_id, 'source', source,
                                  'fingerprint', fingerprint, 'status', status)
          FROM inserted_rows ORDER BY alert_id
        RETURNING event_id, tenant_id, kind, data, occurred_at
    LOOP
        PERFORM pg_notify('carapulse_alert_received',
            json_build_object('id', e.event_id, 'tenant_id', e.tenant_id, 'kind', e.kind,
                              'session_id', NULL, 'data', e.data, 'ts', e.occurred_at)::text);
    END LOOP;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE FUNCTION carapulse_alerts_updated() RETURNS trigger AS $$
DECLARE
    e RECORD;
BEGIN
    FOR e IN
        INSERT INTO event_log (tenant_id, kind, session_id, data)
        SELECT n.tenant_id, 'alert.received', NULL,
               jsonb_build_object('alert_id', n.alert_id, 'source', n.source,
                                  'fingerprint', n.fingerprint, 'status', n.status)
          FROM updated_rows n JOIN previous_rows o ON o.alert_id = n.alert_id
         WHERE n.status IS DISTINCT FROM o.status
         ORDER BY n.alert_id
        RETURNING event_id, tenant_id, kind, data, occurred_at
    LOOP
        PERFORM pg_notify('carapulse_alert_received',
            json_build_object('id', e.event_id, 'tenant_id', e.tenant_id, 'kind', e.kind,
                              'session_id', NULL, 'data', e.data, 'ts', e.occurred_at)::text);
    END LOOP;
    RETURN NULL;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER alert_events_inserted AFTER INSERT ON alert_events
    REFERENCING NEW TABLE AS inserted_rows
    FOR EACH STATEMENT EXECUTE FUNCTION carapulse_alerts_inserted();
CREATE TRIGGER alert_events_updated AFTER UPDATE ON alert_events
    REFERENCING OLD TABLE AS previous_rows NEW TABLE AS updated_rows
    FOR EACH STATEMENT EXECUTE FUNCTION carapulse_alerts_updated();
