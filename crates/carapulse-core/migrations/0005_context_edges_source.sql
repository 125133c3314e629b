-- Edges record which collector produced them, so a collector's fresh snapshot can remove the
-- edges it no longer sees (nodes already had `source`).
ALTER TABLE context_edges ADD COLUMN source TEXT;
CREATE INDEX context_nodes_source_idx ON context_nodes (tenant_id, source);
CREATE INDEX context_edges_source_idx ON context_edges (tenant_id, source);
