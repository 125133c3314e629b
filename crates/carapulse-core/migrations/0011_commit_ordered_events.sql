-- Change events in commit order (issue 15). `event_id` is taken when a row is inserted but the
-- row becomes visible when its transaction commits, so a subscriber resuming after id N could
-- miss an event with a smaller id committed later. Subscribers now follow `seq`, assigned after
-- commit by one sequencer at a time (an advisory lock), only to events of transactions older than
-- every transaction still running (`pg_snapshot_xmin`): no event can ever appear below a `seq`
-- already handed out. The per-kind NOTIFY of carapulse_emit only wakes the sequencer now; the
-- sequencer announces new `seq`s on `carapulse_sequenced`.
ALTER TABLE event_log ADD COLUMN xid xid8;
ALTER TABLE event_log ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
ALTER TABLE event_log ADD COLUMN seq BIGINT;
-- Events stored before this migration are final: they keep their ids as positions, so a client's
-- Last-Event-ID from before the upgrade still resumes where it was.
UPDATE event_log SET seq = event_id;
CREATE UNIQUE INDEX event_log_seq_idx ON event_log (seq);
CREATE INDEX event_log_tenant_seq_idx ON event_log (tenant_id, seq);
CREATE INDEX event_log_unsequenced_idx ON event_log (event_id) WHERE seq IS NULL;
DROP INDEX event_log_tenant_idx;

-- Gives the next `seq`s to events whose transactions are all finished, at most `max_rows`,
-- oldest id first; returns how many. Concurrent callers (several gateways) take turns.
CREATE FUNCTION carapulse_sequence_events(max_rows INT) RETURNS BIGINT AS $$
DECLARE
    horizon xid8;
    head    BIGINT;
    n       BIGINT;
BEGIN
    PERFORM pg_advisory_xact_lock(7358829415540225);
    -- Every transaction with a smaller xid has ended: its events are visible or never will be.
    horizon := pg_snapshot_xmin(pg_current_snapshot());
    SELECT coalesce(max(seq), 0) INTO head FROM event_log;
    WITH ready AS (
        SELECT event_id, row_number() OVER (ORDER BY event_id) AS rn
          FROM (SELECT event_id FROM event_log
                 WHERE seq IS NULL AND xid < horizon
                 ORDER BY event_id LIMIT max_rows) r
    )
    UPDATE event_log e SET seq = head + ready.rn FROM ready WHERE e.event_id = ready.event_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM pg_notify('carapulse_sequenced', (head + n)::text);
    END IF;
    RETURN n;
END $$ LANGUAGE plpgsql;
