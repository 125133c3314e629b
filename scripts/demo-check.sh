#!/usr/bin/env bash
# The README quick start, checked as a newcomer would run it: `./scripts/dev-up.sh --demo`, then
# the first plan it wrote (.dev/first-plan.sh) run while a browser watches the dashboard
# (e2e/browser/demo.test.mjs): the execution must succeed with its verification, appear live in
# "Recent activity", and be marked demo in the UI and the CLI; `assistantctl diagnostics` must
# say DEMO MODE; the always-firing demo alert must become a plan. Stops what dev-up started.
#
# Usage: ./scripts/demo-check.sh   (DEMO_KEEP=1 leaves the demo running)

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
ensure_browser
# Temporal may be the test run's: it stays up.
finish() {
  [ "${DEMO_KEEP:-0}" = 1 ] && return
  "$REPO_ROOT/scripts/dev-down.sh" --keep-temporal
  psql "postgres://postgres@127.0.0.1:5432/postgres" -qc "DROP DATABASE IF EXISTS carapulse_demo_check WITH (FORCE)" >/dev/null 2>&1 || true
}
trap finish EXIT

# A fresh database for every check, dropped at the end.
export CARAPULSE_DEV_DATABASE=carapulse_demo_check
psql "postgres://postgres@127.0.0.1:5432/postgres" -qc "DROP DATABASE IF EXISTS $CARAPULSE_DEV_DATABASE WITH (FORCE)" >/dev/null
log "dev-up --demo"
./scripts/dev-up.sh --demo >"$DEV_DIR/logs/demo-dev-up.out"
CONFIG="$DEV_DIR/demo/config.json"
BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug"
export CARAPULSE_CONFIG="$CONFIG" CARAPULSE_URL=http://127.0.0.1:8080
CTL="$BIN/assistantctl"
ALICE="$("$CTL" dev-token --sub alice --tenant demo --roles operator,approver)"
failures=0
check() { # NAME CONDITION-COMMAND...
  local name="$1"; shift
  if "$@"; then log "ok: $name"; else log "FAILED: $name"; failures=$((failures + 1)); fi
}

grep -q "DEMO mode" "$DEV_DIR/logs/demo-dev-up.out" || { log "dev-up did not announce demo mode"; failures=$((failures + 1)); }

OUT="$DEV_DIR/logs/demo-first-plan.out"
log "browser watches the dashboard while the first plan runs"
(cd e2e/browser && UI_URL=http://127.0.0.1:8082 TOKEN="$ALICE" FIRST_PLAN="$DEV_DIR/first-plan.sh" \
  FIRST_PLAN_OUTPUT="$OUT" SCREENSHOT_DIR="$REPO_ROOT/target/ui-screenshots" node demo.test.mjs) \
  || failures=$((failures + 1))
cat "$OUT" >&2 || true

check "the first plan's execution succeeded" grep -Eq '^status +succeeded' "$OUT"
check "its tool calls are marked (demo) in the CLI" grep -q 'kubectl (demo)' "$OUT"
check "the CLI explains the demo mark" grep -q 'recording fake' "$OUT"
check "the verification ran a real PromQL query (up, from the demo Prometheus)" grep -q '"__name__":"up"' "$OUT"
check "assistantctl diagnostics says DEMO MODE" bash -c "'$CTL' --token '$ALICE' diagnostics | grep -q '^DEMO MODE'"
check "the demo CLIs recorded the scale" grep -q 'kubectl scale deployment/web' "$DEV_DIR/demo/calls/calls.log"

alert_plan=""
for _ in $(seq 1 60); do
  alert_plan="$("$CTL" --token "$ALICE" -o json plan list --trigger alert --limit 20 \
    | jq -r '.data[] | select(.summary | test("DemoWebDown|web")) | .plan_id' | head -1)"
  [ -n "$alert_plan" ] && break; sleep 1
done
check "the demo alert became a plan" test -n "$alert_plan"

if [ "$failures" -gt 0 ]; then log "$failures demo check(s) failed; logs in $DEV_DIR/logs"; exit 1; fi
log "the demo first run works"
