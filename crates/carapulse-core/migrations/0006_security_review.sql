-- Break-glass is recorded on the execution that asserted it (who may assert it is checked by the
-- gateway: a role from gateway.break_glass_roles and a reason). Execution grants carry this flag
-- to the tool router; nothing else can turn break-glass on for a run.
ALTER TABLE executions ADD COLUMN break_glass BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE executions ADD COLUMN break_glass_reason TEXT;
ALTER TABLE executions ADD CONSTRAINT executions_break_glass_reason
    CHECK (NOT break_glass OR (break_glass_reason IS NOT NULL AND length(break_glass_reason) > 0));

-- Webhook deliveries seen recently (delivery id header, else the body digest): a replayed
-- delivery is answered as a duplicate and not processed again. Pruned by the retention loop.
CREATE TABLE webhook_deliveries (
    source       TEXT NOT NULL,
    delivery_key TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (source, delivery_key)
);
CREATE INDEX webhook_deliveries_received_idx ON webhook_deliveries (received_at);

-- Signed audit checkpoints: (tenant, seq, hash) published outside the database on an interval
-- and on demand; verification compares the chain with the latest one to detect truncation.
CREATE TABLE audit_checkpoints (
    checkpoint_id UUID PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    hash          TEXT NOT NULL,
    signature     TEXT NOT NULL,
    sink_ref      TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_checkpoints_tenant_idx ON audit_checkpoints (tenant_id, seq DESC);
