#!/usr/bin/env bash
# Brings up a local Carapulse: PostgreSQL and the Temporal dev server (installed/started when
# absent), builds the workspace, migrates, starts the gateway, tool router and orchestrator with
# deploy/config.dev.json, and prints how to create a first plan. Safe to run again: it restarts only what it started before.
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

# start_service NAME PORT: (re)starts a binary built above with the dev config.
start_service() {
  local name="$1" port="$2" pidfile="$DEV_DIR/pids/$1.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    log "restarting the $name started by a previous dev-up"
    kill "$(cat "$pidfile")"; sleep 1
  fi
  nohup "$BIN/$name" --config "$CONFIG" >"$DEV_DIR/logs/$name.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 30); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 1
  done
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || { log "$name not ready; see $DEV_DIR/logs/$name.log"; exit 1; }
  log "$name ready on http://127.0.0.1:$port (logs: $DEV_DIR/logs/$name.log)"
}

start_service gateway 8080
start_service tool-router 8081
start_service orchestrator 8085
log "not started: the Slack agent is not built yet (it exits with code 3)"

cat <<MSG

Carapulse is up. Create a first plan:

  export CARAPULSE_CONFIG=$CONFIG CARAPULSE_URL=http://127.0.0.1:8080
  export CARAPULSE_TOKEN=\$($BIN/assistantctl dev-token --sub alice --tenant demo --roles operator)
  $BIN/assistantctl plan create --summary "Scale web to 3" --env staging --namespace web \\
      --step '{"tool":"kubectl","action":"scale","input":{"resource":"deployment/web","replicas":3,"namespace":"web"}}'
  $BIN/assistantctl plan list

Call a tool through the router (service token from deploy/config.dev.json):

  curl -s -H 'Authorization: Bearer carapulse-local-dev-tool-router-token' http://127.0.0.1:8081/v1/tools | head -c 300

Approve it as someone else:

  $BIN/assistantctl --token \$($BIN/assistantctl dev-token --sub bob --tenant demo --roles approver) approve <plan_id>
  $BIN/assistantctl plan execute <plan_id>      # runs as a Temporal workflow (orchestrator)
  $BIN/assistantctl exec list

MSG
