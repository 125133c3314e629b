#!/usr/bin/env bash
# Stops what the E2E scripts started (stub APIs, Prometheus, Alertmanager, tool router,
# orchestrator, gateway), drops the carapulse_e2e database (unless --keep-database) and removes
# e2e/config.local.json. PostgreSQL and the Temporal dev server are shared and left running.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
E2E_DIR="$DEV_DIR/e2e"
for pidfile in "$E2E_DIR"/pids/*.pid; do
  [ -f "$pidfile" ] || continue
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped $(basename "$pidfile" .pid)"
  fi
  rm -f "$pidfile"
done
if [ "${1:-}" != "--keep-database" ]; then
  psql "postgres://postgres@127.0.0.1:5432/postgres" -qc "DROP DATABASE IF EXISTS carapulse_e2e WITH (FORCE)" >/dev/null 2>&1 \
    && log "dropped carapulse_e2e"
  rm -f "$REPO_ROOT/e2e/config.local.json"
fi
