#!/usr/bin/env bash
# Brings up a local Carapulse: PostgreSQL and the Temporal dev server (installed/started when
# absent), builds the workspace, migrates, starts the gateway with deploy/config.dev.json, and
# prints how to create a first plan. Safe to run again: it restarts only what it started before.
#
# Stop with ./scripts/dev-down.sh

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONFIG="${CARAPULSE_CONFIG:-$REPO_ROOT/deploy/config.dev.json}"
ensure_postgres
psql "postgres://postgres@127.0.0.1:5432/postgres" -Atqc \
  "select 1 from pg_database where datname='carapulse_dev'" | grep -q 1 \
  || psql "postgres://postgres@127.0.0.1:5432/postgres" -qc 'create database carapulse_dev'
ensure_temporal

cd "$REPO_ROOT"
log "building"
cargo build --bins -q
BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug"

log "migrating"
"$BIN/gateway" --config "$CONFIG" --migrate-only

if [ -f "$DEV_DIR/pids/gateway.pid" ] && kill -0 "$(cat "$DEV_DIR/pids/gateway.pid")" 2>/dev/null; then
  log "restarting the gateway started by a previous dev-up"
  kill "$(cat "$DEV_DIR/pids/gateway.pid")"; sleep 1
fi
nohup "$BIN/gateway" --config "$CONFIG" >"$DEV_DIR/logs/gateway.log" 2>&1 &
echo $! >"$DEV_DIR/pids/gateway.pid"
for _ in $(seq 1 30); do
  curl -fsS http://127.0.0.1:8080/readyz >/dev/null 2>&1 && break; sleep 1
done
curl -fsS http://127.0.0.1:8080/readyz >/dev/null || { log "gateway not ready; see $DEV_DIR/logs/gateway.log"; exit 1; }
log "gateway ready on http://127.0.0.1:8080 (logs: $DEV_DIR/logs/gateway.log)"
log "not started: tool-router, orchestrator and agent are not built yet (they exit with code 3)"

cat <<MSG

Carapulse is up. Create a first plan:

  export CARAPULSE_CONFIG=$CONFIG CARAPULSE_URL=http://127.0.0.1:8080
  export CARAPULSE_TOKEN=\$($BIN/assistantctl dev-token --sub alice --tenant demo --roles operator)
  $BIN/assistantctl plan create --summary "Scale web to 3" --env staging --namespace web \\
      --step '{"tool":"kubectl","action":"scale","input":{"resource":"deployment/web","replicas":3,"namespace":"web"}}'
  $BIN/assistantctl plan list

Approve it as someone else:

  $BIN/assistantctl --token \$($BIN/assistantctl dev-token --sub bob --tenant demo --roles approver) approve <plan_id>
  $BIN/assistantctl plan execute <plan_id>

MSG
