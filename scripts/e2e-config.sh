#!/usr/bin/env bash
# E2E step 3: writes e2e/config.local.json from e2e/config.sample.json with fresh secrets (dev
# JWT secret, tool-router token and grant key, Alertmanager webhook bearer) and the Alertmanager config that
# delivers to the gateway with that bearer.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
E2E_DIR="$DEV_DIR/e2e"
mkdir -p "$E2E_DIR"
secret() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
DEV_SECRET="e2e-$(secret)"
ROUTER_TOKEN="e2e-router-$(secret)"
GRANT_KEY="e2e-grant-$(secret)"
HOOK_TOKEN="e2e-hook-$(secret)"
mkdir -p "$E2E_DIR/calls" && chmod 0777 "$E2E_DIR/calls"
jq --arg dev "$DEV_SECRET" --arg router "$ROUTER_TOKEN" --arg hook "$HOOK_TOKEN" --arg grant "$GRANT_KEY" \
  --arg calls "$E2E_DIR/calls:/e2e-calls:rw" --arg ckpt "e2e-checkpoint-$(secret)" \
  '.gateway.dev_jwt_secret = $dev | .tool_router.auth_token = $router | .tool_router.grant_key = $grant
   | .sandbox.mounts = [$calls] | .storage.audit_checkpoint_key = $ckpt
   | .webhooks.alertmanager.bearer_token = $hook' \
  e2e/config.sample.json > e2e/config.local.json
chmod 600 e2e/config.local.json
cat > "$E2E_DIR/alertmanager.yml" <<YAML
route:
  receiver: carapulse
  group_by: ['alertname']
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
receivers:
  - name: carapulse
    webhook_configs:
      - url: http://127.0.0.1:18080/v1/hooks/alertmanager
        send_resolved: true
        http_config:
          authorization:
            credentials: $HOOK_TOKEN
YAML
log "wrote e2e/config.local.json and $E2E_DIR/alertmanager.yml; next: ./scripts/e2e-run.sh"
