-- Service-to-service traffic: the service-graph collector writes `calls` edges (caller ->
-- callee) with what it measured, `{rps, error_ratio, observed_at}`; other edges have none. The
-- blast-radius estimate walks `calls` edges upstream (towards callers), hence the partial index
-- on the callee.
ALTER TABLE context_edges ADD COLUMN traffic_json JSONB;
CREATE INDEX context_edges_calls_callee_idx ON context_edges (tenant_id, to_node_id, from_node_id)
    WHERE relation = 'calls';
-- Each estimate first asks how fresh the tenant's traffic data is (max(updated_at)): an index
-- answer on every plan creation, not a scan of the tenant's calls edges.
CREATE INDEX context_edges_calls_updated_idx ON context_edges (tenant_id, updated_at)
    WHERE relation = 'calls';
-- A plan's targets are found by name (a Deployment, a release, an app) whatever their kind.
CREATE INDEX context_nodes_name_idx ON context_nodes (tenant_id, name);
