#!/usr/bin/env bash
# Stops the processes dev-up.sh started (gateway, tool-router, orchestrator, the Slack agent,
# the demo's Prometheus and Alertmanager, the Temporal dev server); leaves PostgreSQL alone.
# --keep-temporal leaves the Temporal dev server running (demo-check.sh inside the test run).

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
names=(gateway tool-router orchestrator agent prometheus alertmanager)
[ "${1:-}" = --keep-temporal ] || names+=(temporal)
for name in "${names[@]}"; do
  f="$DEV_DIR/pids/$name.pid"
  if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then
    log "stopping $name"; kill "$(cat "$f")" || true
  fi
  rm -f "$f"
done
