-- Retention deletes old rows in small batches (store/retention.rs); these indexes let each batch
-- find its rows without scanning the table.
CREATE INDEX tool_call_logs_ts_idx ON tool_call_logs (ts);
CREATE INDEX alert_events_resolved_updated_idx ON alert_events (updated_at) WHERE status = 'resolved';
