#!/usr/bin/env bash
# Runs the whole test suite: provisions PostgreSQL and the Temporal dev server if they are not
# running (and stops only what it started), installs Prometheus for the PromQL tests (each test
# starts its own instance), Chromium + playwright-core for the web UI browser test and the s3s-fs
# S3-compatible server for the object-store tests, then runs
# every workspace test and then the end-to-end scripts.
#
# Usage: ./scripts/test.sh [extra cargo test args]

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap stop_started EXIT

ensure_postgres
ensure_temporal
ensure_prometheus
ensure_browser
ensure_kube_validate
ensure_helm
ensure_s3s

cd "$REPO_ROOT"
export CARAPULSE_TEMPORAL_BIN="${CARAPULSE_TEMPORAL_BIN:-$(temporal_bin)}"
export CARAPULSE_HELM="${CARAPULSE_HELM:-$(helm_bin)}"
export CARAPULSE_S3S_FS="${CARAPULSE_S3S_FS:-$(s3s_bin)}"
export CARAPULSE_TEST_PG="${CARAPULSE_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
export RUST_LOG="${RUST_LOG:-warn}"
# Incremental compilation data for ~40 test binaries runs to tens of GB and buys nothing in a
# one-shot run; developers who want it can export CARGO_INCREMENTAL=1.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
log "running cargo test --workspace --all-features"
cargo test --workspace --all-features "$@"

# The API contract run: schemathesis against /openapi.json of a live gateway
# (CARAPULSE_SKIP_CONTRACT=1 skips it).
if [ "${CARAPULSE_SKIP_CONTRACT:-0}" != "1" ]; then
  log "running the API contract check (schemathesis)"
  "$REPO_ROOT/scripts/contract.sh"
fi

# Fuzzing: every cargo-fuzz target for FUZZ_SECONDS (default 20) each
# (CARAPULSE_SKIP_FUZZ=1 skips it).
if [ "${CARAPULSE_SKIP_FUZZ:-0}" != "1" ]; then
  log "running the fuzz targets"
  "$REPO_ROOT/scripts/fuzz.sh"
fi

# The process-level end-to-end run (scripts/e2e-*.sh): every binary, real Postgres, Temporal,
# Prometheus and Alertmanager; CARAPULSE_SKIP_E2E=1 skips it.
if [ "${CARAPULSE_SKIP_E2E:-0}" != "1" ]; then
  log "running the end-to-end scripts"
  "$REPO_ROOT/scripts/e2e-up.sh"
  "$REPO_ROOT/scripts/e2e-config.sh"
  E2E_STOP=1 "$REPO_ROOT/scripts/e2e-run.sh" || { "$REPO_ROOT/scripts/cleanup.sh"; exit 1; }
  "$REPO_ROOT/scripts/cleanup.sh"
fi

# The README quick start: dev-up.sh --demo and its first plan, watched in a browser
# (CARAPULSE_SKIP_DEMO=1 skips it).
if [ "${CARAPULSE_SKIP_DEMO:-0}" != "1" ]; then
  log "checking the demo first run (dev-up.sh --demo)"
  "$REPO_ROOT/scripts/demo-check.sh"
fi
