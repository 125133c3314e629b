#!/usr/bin/env bash
# Builds the benchmark binary in release mode and prints its table. Needs PostgreSQL (provisioned
# like the tests). Extra arguments go to carapulse-bench (see --help).

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap stop_started EXIT
ensure_postgres
cd "$REPO_ROOT"
cargo build --release -q -p carapulse-bench -p gateway -p sandbox-exec
RUST_LOG="${RUST_LOG:-error}" "${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/carapulse-bench" "$@"
