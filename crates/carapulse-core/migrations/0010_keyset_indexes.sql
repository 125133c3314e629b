-- Every list pages by a keyset on its sort order (issue 15): `(key…) < ($last…)` reads only the
-- rows of the page when an index carries the tenant, the sort columns and the unique tie-breaker
-- in that order. Indexes that only had a prefix of it are replaced.
DROP INDEX approvals_tenant_idx;
CREATE INDEX approvals_tenant_created_idx ON approvals (tenant_id, created_at DESC, approval_id DESC);

DROP INDEX schedules_tenant_idx;
CREATE INDEX schedules_tenant_created_idx ON schedules (tenant_id, created_at DESC, schedule_id DESC);

DROP INDEX sessions_tenant_idx;
CREATE INDEX sessions_tenant_created_idx ON sessions (tenant_id, created_at DESC, session_id DESC);

DROP INDEX context_snapshots_tenant_idx;
CREATE INDEX context_snapshots_tenant_collected_idx
    ON context_snapshots (tenant_id, collected_at DESC, snapshot_id DESC);

DROP INDEX context_nodes_kind_name_idx;
CREATE INDEX context_nodes_kind_name_idx ON context_nodes (tenant_id, kind, name, node_id);

DROP INDEX operator_memory_tenant_idx;
CREATE INDEX operator_memory_tenant_updated_idx
    ON operator_memory (tenant_id, updated_at DESC, memory_id DESC);

CREATE INDEX alert_events_tenant_updated_idx
    ON alert_events (tenant_id, updated_at DESC, alert_id DESC);

-- The approvals queue is oldest first and only holds pending plans: a partial index keeps it
-- from walking a year of decided plans.
CREATE INDEX plans_pending_created_idx ON plans (tenant_id, created_at, plan_id)
    WHERE approval_state = 'pending';
