#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets: the Alertmanager, Argo CD and Git webhook
# parsers, the LLM plan parser, config parsing, tool-input validation) for FUZZ_SECONDS each
# (default 20) from the committed seeds in fuzz/corpus/<target>. New inputs libFuzzer finds go to
# .dev/fuzz/<target> (not committed); a crash leaves its input in fuzz/artifacts/<target> and
# fails the run. Needs the nightly toolchain (libFuzzer instrumentation) and cargo-fuzz, which
# is installed from crates.io when missing.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
cargo +nightly --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal \
  || { log "the nightly toolchain is needed for cargo-fuzz and could not be installed"; exit 1; }
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}"
cd fuzz
# Address sanitizer off: the code under test is safe Rust; panics are what we look for, and
# without ASan the build and the runs are several times faster.
log "building the fuzz targets (nightly)"
cargo +nightly fuzz build -s none
for target in $(cargo +nightly fuzz list); do
  scratch="$DEV_DIR/fuzz/$target"
  mkdir -p "$scratch"
  log "fuzzing $target for ${SECONDS_PER_TARGET}s"
  cargo +nightly fuzz run -s none "$target" "$scratch" "corpus/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    2>"$scratch.log" || { tail -40 "$scratch.log" >&2; log "$target failed; input in fuzz/artifacts/$target"; exit 1; }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$scratch.log" | sed "s/^/  $target /" >&2
done
log "every fuzz target ran ${SECONDS_PER_TARGET}s without a crash"
