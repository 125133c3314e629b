#!/usr/bin/env bash
# Runs the whole test suite: provisions PostgreSQL and the Temporal dev server if they are not
# running (and stops only what it started), installs Prometheus for the PromQL tests (each test
# starts its own instance) and Chromium + playwright-core for the web UI browser test, then runs
# every workspace test.
#
# Usage: ./scripts/test.sh [extra cargo test args]

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap stop_started EXIT

ensure_postgres
ensure_temporal
ensure_prometheus
ensure_browser
ensure_kube_validate

cd "$REPO_ROOT"
export CARAPULSE_TEST_PG="${CARAPULSE_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
export RUST_LOG="${RUST_LOG:-warn}"
# Incremental compilation data for ~40 test binaries runs to tens of GB and buys nothing in a
# one-shot run; developers who want it can export CARGO_INCREMENTAL=1.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
log "running cargo test --workspace --all-features"
cargo test --workspace --all-features "$@"
