#!/usr/bin/env bash
# Builds the benchmark binary and the service binaries it starts (release mode) and prints its
# table. Provisions PostgreSQL and the Temporal dev server like the tests (the orchestrator and
# year suites run workflows). Extra arguments go to carapulse-bench (see --help).

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap stop_started EXIT
ensure_postgres
ensure_temporal
cd "$REPO_ROOT"
cargo build --release -q -p carapulse-bench -p gateway -p sandbox-exec -p tool-router -p orchestrator
RUST_LOG="${RUST_LOG:-error}" "${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/carapulse-bench" "$@"
