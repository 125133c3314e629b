#!/usr/bin/env bash
# E2E step 1: the dependencies of a local end-to-end run, without Docker or a cluster: PostgreSQL
# (installed/started when absent) with a fresh `carapulse_e2e` database, the Temporal dev server,
# Prometheus and Alertmanager (Debian packages), and builds of every binary, then the
# migrations (debug builds unless E2E_PROFILE=release). Kubernetes, Argo CD and Vault are stood in for by e2e/fakes (see e2e-run.sh).
#
# Next: ./scripts/e2e-ports.sh & ./scripts/e2e-config.sh ; ./scripts/e2e-run.sh

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
E2E_DIR="$DEV_DIR/e2e"
mkdir -p "$E2E_DIR/objects" "$E2E_DIR/logs" "$E2E_DIR/pids"

ensure_postgres
ensure_temporal
ensure_prometheus
PG="postgres://postgres@127.0.0.1:5432/postgres"
psql "$PG" -qc "DROP DATABASE IF EXISTS carapulse_e2e WITH (FORCE)" >/dev/null
psql "$PG" -qc "CREATE DATABASE carapulse_e2e" >/dev/null
log "database carapulse_e2e created"

cd "$REPO_ROOT"
# Debug builds by default (the test suite has them warm); E2E_PROFILE=release for release ones.
PROFILE="${E2E_PROFILE:-debug}"
log "building $PROFILE binaries"
if [ "$PROFILE" = release ]; then
  cargo build --release -q --bin gateway --bin tool-router --bin sandbox-exec --bin orchestrator --bin assistantctl
else
  cargo build -q --bin gateway --bin tool-router --bin sandbox-exec --bin orchestrator --bin assistantctl
fi
BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/$PROFILE"
CARAPULSE_POSTGRES_DSN="postgres://postgres@127.0.0.1:5432/carapulse_e2e" "$BIN/assistantctl" migrate
log "E2E dependencies are up; next: ./scripts/e2e-config.sh"
