#!/usr/bin/env bash
# API contract run: schemathesis (PyPI) generates requests from the live gateway's
# GET /openapi.json and checks every answer: no 5xx, status codes, content types, headers and
# bodies as documented, and schema-invalid requests refused. Bounded by CONTRACT_MAX_EXAMPLES per
# operation (default 25) and a fixed seed (CONTRACT_SEED) so a failure can be replayed.
#
# Not part of the run: GET /v1/events and GET /v1/ws (an endless SSE stream and a WebSocket,
# which schemathesis cannot consume; crates/gateway/tests/events.rs covers them). Not checked:
# "positive data acceptance" (a schema-valid request the handler still refuses, e.g. a cron
# expression or time zone that does not exist): the schema is deliberately looser than the
# handlers' validation there. One worker: with two, schemathesis' Python occasionally crashed
# inside its own schema code (an internal "AST constructor recursion depth mismatch").

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
ensure_postgres
ST="$DEV_DIR/schemathesis/bin/schemathesis"
if [ ! -x "$ST" ]; then
  log "installing schemathesis (pip) into $DEV_DIR/schemathesis"
  python3 -m venv "$DEV_DIR/schemathesis"
  "$DEV_DIR/schemathesis/bin/pip" install -q schemathesis
fi
DIR="$DEV_DIR/contract"
mkdir -p "$DIR"
PG="postgres://postgres@127.0.0.1:5432/postgres"
psql "$PG" -qc "DROP DATABASE IF EXISTS carapulse_contract WITH (FORCE)" >/dev/null
psql "$PG" -qc "CREATE DATABASE carapulse_contract" >/dev/null
PORT="${CONTRACT_PORT:-18180}"
secret() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
jq --arg dev "contract-$(secret)" --arg hook "contract-hook-$(secret)" --arg addr "127.0.0.1:$PORT" \
  '.gateway.http_addr = $addr | .gateway.ws_addr = null | .gateway.dev_jwt_secret = $dev
   | .gateway.auto_migrate = true | .gateway.enable_event_loop = false
   | .gateway.rate_limit_per_second = 100000 | .gateway.rate_limit_burst = 100000
   | .orchestrator.temporal_addr = null
   | .storage.postgres_dsn = "postgres://postgres@127.0.0.1:5432/carapulse_contract"
   | .storage.workspace_dir = null
   | .webhooks.alertmanager.bearer_token = $hook' \
  e2e/config.sample.json >"$DIR/config.json"

PROFILE="${E2E_PROFILE:-debug}"
BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/$PROFILE"
cargo build -q $([ "$PROFILE" = release ] && echo --release) --bin gateway --bin assistantctl
"$BIN/gateway" --config "$DIR/config.json" >"$DIR/gateway.log" 2>&1 &
GW=$!
cleanup() {
  kill "$GW" 2>/dev/null || true
  wait "$GW" 2>/dev/null || true
  psql "$PG" -qc "DROP DATABASE IF EXISTS carapulse_contract WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
for _ in $(seq 1 60); do curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null || { log "gateway not ready; see $DIR/gateway.log"; exit 1; }
TOKEN="$("$BIN/assistantctl" dev-token -c "$DIR/config.json" --sub contract --tenant e2e --roles admin)"

SEED="${CONTRACT_SEED:-20261130}"
log "schemathesis against http://127.0.0.1:$PORT/openapi.json (seed $SEED, ${CONTRACT_MAX_EXAMPLES:-25} examples per operation)"
"$ST" run "http://127.0.0.1:$PORT/openapi.json" \
  -H "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection \
  --exclude-path /v1/events --exclude-path /v1/ws \
  --phases examples,coverage,fuzzing \
  --max-examples "${CONTRACT_MAX_EXAMPLES:-25}" \
  --seed "$SEED" --generation-deterministic \
  --request-timeout 10 \
  --suppress-health-check all \
  --workers 1 2>&1 | tee "$DIR/schemathesis.log"
status=${PIPESTATUS[0]}
if grep -q '"level":"ERROR"' "$DIR/gateway.log"; then
  log "the gateway logged errors during the run:"; grep '"level":"ERROR"' "$DIR/gateway.log" | head -5 >&2
  status=1
fi
exit "$status"
