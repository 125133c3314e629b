#!/usr/bin/env bash
# Stops the processes dev-up.sh started (gateway, tool-router, orchestrator, Temporal dev server); leaves
# PostgreSQL alone.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
for name in gateway tool-router orchestrator temporal; do
  f="$DEV_DIR/pids/$name.pid"
  if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then
    log "stopping $name"; kill "$(cat "$f")" || true
  fi
  rm -f "$f"
done
