-- Carapulse schema, version 1. Every tenant-owned row carries tenant_id and every query filters
-- on it. Ids are application-generated UUIDv7. Enumerations are CHECK-constrained.

CREATE TABLE plans (
    plan_id             UUID PRIMARY KEY,
    tenant_id           TEXT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by          TEXT NOT NULL,
    trigger             TEXT NOT NULL CHECK (trigger IN ('manual','alert','webhook','scheduled','workflow','chatops')),
    summary             TEXT NOT NULL,
    intent              TEXT NOT NULL DEFAULT '',
    context_json        JSONB NOT NULL,
    risk_level          TEXT NOT NULL CHECK (risk_level IN ('read','low','medium','high')),
    policy_decision     TEXT NOT NULL CHECK (policy_decision IN ('allow','deny','require_approval')),
    constraints_json    JSONB NOT NULL DEFAULT '{}'::jsonb,
    approval_state      TEXT NOT NULL CHECK (approval_state IN ('not_required','pending','approved','denied','expired')),
    approval_expires_at TIMESTAMPTZ,
    session_id          TEXT,
    planner             TEXT,
    plan_text           TEXT,
    meta_json           JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX plans_tenant_created_idx ON plans (tenant_id, created_at DESC, plan_id DESC);
CREATE INDEX plans_tenant_state_idx ON plans (tenant_id, approval_state);
CREATE INDEX plans_session_idx ON plans (tenant_id, session_id) WHERE session_id IS NOT NULL;

CREATE TABLE plan_steps (
    step_id            UUID PRIMARY KEY,
    plan_id            UUID NOT NULL REFERENCES plans (plan_id) ON DELETE CASCADE,
    tenant_id          TEXT NOT NULL,
    ordinal            INTEGER NOT NULL CHECK (ordinal >= 0),
    stage              TEXT NOT NULL CHECK (stage IN ('act','verify')),
    tool               TEXT NOT NULL,
    action             TEXT NOT NULL,
    input_json         JSONB NOT NULL DEFAULT '{}'::jsonb,
    preconditions_json JSONB NOT NULL DEFAULT '[]'::jsonb,
    rollback_json      JSONB,
    evidence_json      JSONB NOT NULL DEFAULT '[]'::jsonb,
    UNIQUE (plan_id, ordinal)
);

CREATE TABLE approvals (
    approval_id    UUID PRIMARY KEY,
    plan_id        UUID NOT NULL REFERENCES plans (plan_id) ON DELETE CASCADE,
    tenant_id      TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('approved','denied','expired')),
    approver       TEXT NOT NULL,
    approver_email TEXT,
    source         TEXT NOT NULL CHECK (source IN ('api','ui','cli','slack','linear','auto','system')),
    note           TEXT,
    approved_hash  TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One decision per plan: approvals are terminal.
CREATE UNIQUE INDEX approvals_one_per_plan ON approvals (plan_id);
CREATE INDEX approvals_tenant_idx ON approvals (tenant_id, created_at DESC);

CREATE TABLE executions (
    execution_id UUID PRIMARY KEY,
    plan_id      UUID NOT NULL REFERENCES plans (plan_id) ON DELETE CASCADE,
    tenant_id    TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending','running','succeeded','failed','rolled_back','cancelled','expired')),
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at   TIMESTAMPTZ,
    completed_at TIMESTAMPTZ,
    workflow_id  TEXT,
    error        TEXT
);
-- One active execution per plan, enforced by the database.
CREATE UNIQUE INDEX executions_one_active_per_plan ON executions (plan_id) WHERE status IN ('pending','running');
CREATE INDEX executions_tenant_created_idx ON executions (tenant_id, created_at DESC, execution_id DESC);
CREATE INDEX executions_status_idx ON executions (status);
CREATE INDEX executions_plan_idx ON executions (plan_id);

CREATE TABLE execution_steps (
    execution_id UUID NOT NULL REFERENCES executions (execution_id) ON DELETE CASCADE,
    step_id      UUID NOT NULL,
    tenant_id    TEXT NOT NULL,
    ordinal      INTEGER NOT NULL,
    stage        TEXT NOT NULL CHECK (stage IN ('act','verify','rollback')),
    status       TEXT NOT NULL CHECK (status IN ('pending','running','succeeded','failed','skipped','rolled_back','rollback_failed')),
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ,
    error        TEXT,
    PRIMARY KEY (execution_id, step_id, stage)
);

CREATE TABLE tool_calls (
    tool_call_id UUID PRIMARY KEY,
    execution_id UUID NOT NULL REFERENCES executions (execution_id) ON DELETE CASCADE,
    step_id      UUID,
    tenant_id    TEXT NOT NULL,
    tool_name    TEXT NOT NULL,
    action       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending','running','succeeded','failed')),
    input_ref    TEXT,
    output_ref   TEXT,
    exit_code    INTEGER,
    error        TEXT,
    attempt      INTEGER NOT NULL DEFAULT 1,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at   TIMESTAMPTZ,
    completed_at TIMESTAMPTZ
);
CREATE INDEX tool_calls_execution_idx ON tool_calls (execution_id, created_at);

CREATE TABLE evidence (
    evidence_id   UUID PRIMARY KEY,
    execution_id  UUID NOT NULL REFERENCES executions (execution_id) ON DELETE CASCADE,
    step_id       UUID,
    tenant_id     TEXT NOT NULL,
    kind          TEXT NOT NULL,
    query         TEXT,
    result_ref    TEXT,
    summary_json  JSONB NOT NULL DEFAULT '{}'::jsonb,
    external_ids  JSONB NOT NULL DEFAULT '{}'::jsonb,
    collected_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX evidence_execution_idx ON evidence (execution_id, collected_at);

-- Append-only, hash-chained per tenant. The head row serialises appenders so the chain never forks.
CREATE TABLE audit_events (
    event_id      UUID PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    occurred_at   TIMESTAMPTZ NOT NULL,
    actor_json    JSONB NOT NULL,
    action        TEXT NOT NULL,
    decision      TEXT NOT NULL CHECK (decision IN ('allow','deny','require_approval','info','error')),
    resource_type TEXT,
    resource_id   TEXT,
    reason        TEXT,
    request_id    TEXT,
    context_json  JSONB NOT NULL DEFAULT '{}'::jsonb,
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL,
    UNIQUE (tenant_id, seq)
);
CREATE INDEX audit_events_tenant_time_idx ON audit_events (tenant_id, occurred_at DESC);
CREATE INDEX audit_events_tenant_action_idx ON audit_events (tenant_id, action);

CREATE TABLE audit_chain_heads (
    tenant_id  TEXT PRIMARY KEY,
    last_seq   BIGINT NOT NULL,
    last_hash  TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_events_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

CREATE TABLE context_nodes (
    tenant_id   TEXT NOT NULL,
    node_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    labels_json JSONB NOT NULL DEFAULT '{}'::jsonb,
    owner_team  TEXT,
    source      TEXT,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, node_id)
);
CREATE INDEX context_nodes_kind_name_idx ON context_nodes (tenant_id, kind, name);

CREATE TABLE context_edges (
    tenant_id    TEXT NOT NULL,
    edge_id      TEXT NOT NULL,
    from_node_id TEXT NOT NULL,
    to_node_id   TEXT NOT NULL,
    relation     TEXT NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, edge_id),
    FOREIGN KEY (tenant_id, from_node_id) REFERENCES context_nodes (tenant_id, node_id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, to_node_id) REFERENCES context_nodes (tenant_id, node_id) ON DELETE CASCADE
);
CREATE INDEX context_edges_from_idx ON context_edges (tenant_id, from_node_id);
CREATE INDEX context_edges_to_idx ON context_edges (tenant_id, to_node_id);

CREATE TABLE context_snapshots (
    snapshot_id  UUID PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    source       TEXT NOT NULL,
    collected_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    nodes_json   JSONB NOT NULL,
    edges_json   JSONB NOT NULL,
    labels_json  JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX context_snapshots_tenant_idx ON context_snapshots (tenant_id, collected_at DESC);

CREATE TABLE schedules (
    schedule_id       UUID PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by        TEXT NOT NULL,
    cron              TEXT NOT NULL,
    timezone          TEXT NOT NULL DEFAULT 'UTC',
    summary           TEXT NOT NULL,
    intent            TEXT NOT NULL DEFAULT '',
    workflow_name     TEXT,
    workflow_input    JSONB NOT NULL DEFAULT '{}'::jsonb,
    context_json      JSONB NOT NULL DEFAULT '{}'::jsonb,
    constraints_json  JSONB NOT NULL DEFAULT '{}'::jsonb,
    enabled           BOOLEAN NOT NULL DEFAULT TRUE,
    missed_run_policy TEXT NOT NULL DEFAULT 'skip' CHECK (missed_run_policy IN ('skip','run_once')),
    last_run_at       TIMESTAMPTZ,
    next_run_at       TIMESTAMPTZ
);
CREATE INDEX schedules_due_idx ON schedules (next_run_at) WHERE enabled;
CREATE INDEX schedules_tenant_idx ON schedules (tenant_id, created_at DESC);

CREATE TABLE playbooks (
    playbook_id UUID PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL CHECK (version >= 1),
    tags        JSONB NOT NULL DEFAULT '[]'::jsonb,
    spec_json   JSONB NOT NULL,
    created_by  TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name, version)
);

CREATE TABLE runbooks (
    runbook_id UUID PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    service    TEXT NOT NULL,
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    tags       JSONB NOT NULL DEFAULT '[]'::jsonb,
    body       TEXT,
    spec_json  JSONB,
    created_by TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, service, name, version)
);

CREATE TABLE session_groups (
    group_id   UUID PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE sessions (
    session_id     UUID PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    name           TEXT NOT NULL,
    group_id       UUID REFERENCES session_groups (group_id) ON DELETE SET NULL,
    owner_actor_id TEXT,
    metadata       JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX sessions_tenant_idx ON sessions (tenant_id, created_at DESC);

CREATE TABLE session_members (
    session_id UUID NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    member_id  TEXT NOT NULL,
    role       TEXT NOT NULL DEFAULT 'member',
    added_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, member_id)
);
CREATE INDEX session_members_member_idx ON session_members (member_id);

CREATE TABLE workflow_catalog (
    workflow_id UUID PRIMARY KEY,
    tenant_id   TEXT,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL CHECK (version >= 1),
    spec_json   JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX workflow_catalog_unique ON workflow_catalog (COALESCE(tenant_id, ''), name, version);

CREATE TABLE alert_events (
    alert_id     UUID PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    source       TEXT NOT NULL DEFAULT 'alertmanager',
    fingerprint  TEXT NOT NULL,
    status       TEXT NOT NULL,
    started_at   TIMESTAMPTZ,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    payload_json JSONB NOT NULL,
    UNIQUE (tenant_id, source, fingerprint)
);

CREATE TABLE event_gates (
    tenant_id        TEXT NOT NULL,
    source           TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    first_seen       TIMESTAMPTZ NOT NULL,
    last_seen        TIMESTAMPTZ NOT NULL,
    count            INTEGER NOT NULL,
    suppressed_until TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, source, fingerprint)
);

CREATE TABLE operator_memory (
    memory_id      UUID PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    title          TEXT NOT NULL,
    body           TEXT NOT NULL,
    tags           JSONB NOT NULL DEFAULT '[]'::jsonb,
    metadata       JSONB NOT NULL DEFAULT '{}'::jsonb,
    owner_actor_id TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX operator_memory_tenant_idx ON operator_memory (tenant_id, created_at DESC);
