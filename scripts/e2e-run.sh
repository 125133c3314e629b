#!/usr/bin/env bash
# E2E step 4: starts the local stack and drives it like an operator would.
#
# Started here: stub Grafana/Tempo/PagerDuty (e2e/stub_apis.py), Prometheus (rule E2EWebDown
# fires at once) and Alertmanager (delivers to the gateway webhook), the tool router with
# e2e/fakes first on PATH (kubectl, helm, argocd, vault record their argv), the orchestrator and
# the gateway (API :18080, web UI :18082), all with e2e/config.local.json.
#
# Then, with assistantctl: every catalogue workflow (scale_service, helm_release, gitops_deploy,
# incident_remediation, secret_rotation) is started by alice, approved by bob when policy asks,
# executed and waited for; the fakes must have received the expected commands; the firing alert
# must have become a playbook plan; the audit chain must verify. Verification: a Helm upgrade
# whose error-ratio analysis fails is rolled back to the captured revision, and one whose
# analysis is inconclusive waits until an approver continues it. Exit status 0 only if all pass.
#
# Services keep running for exploration (http://127.0.0.1:18082/ui/) unless E2E_STOP=1;
# ./scripts/cleanup.sh stops them.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
CONFIG="${1:-$REPO_ROOT/e2e/config.local.json}"
[ -f "$CONFIG" ] || { log "no $CONFIG: run ./scripts/e2e-config.sh first"; exit 1; }
E2E_DIR="$DEV_DIR/e2e"
# Fresh Prometheus and Alertmanager state: Alertmanager's notification log would otherwise
# suppress the alert it already delivered in an earlier run.
rm -rf "$E2E_DIR/prometheus" "$E2E_DIR/alertmanager"
mkdir -p "$E2E_DIR/logs" "$E2E_DIR/pids" "$E2E_DIR/objects" "$E2E_DIR/prometheus" "$E2E_DIR/alertmanager"
BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/${E2E_PROFILE:-debug}"
# The fakes run inside the router's scrubbed environment, so they find their log by location.
# The sandbox mounts $E2E_DIR/calls (sandbox.mounts, set by e2e-config.sh) at /e2e-calls, the one
# place the fakes can write; the tools run as an unprivileged uid, so it is world-writable.
mkdir -p "$E2E_DIR/calls" && chmod 0777 "$E2E_DIR/calls"
export E2E_CALLS="$E2E_DIR/calls/calls.log" E2E_STUB_LOG="$E2E_DIR/stub.log"
: >"$E2E_CALLS"; chmod 0666 "$E2E_CALLS"; : >"$E2E_STUB_LOG"

# start NAME PORT COMMAND...: starts a background process, records its pid, waits for the port.
start() {
  local name="$1" port="$2"; shift 2
  local pidfile="$E2E_DIR/pids/$name.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then kill "$(cat "$pidfile")"; sleep 1; fi
  nohup "$@" >"$E2E_DIR/logs/$name.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 60); do port_open "$port" && break; sleep 0.5; done
  port_open "$port" || { log "$name did not start; see $E2E_DIR/logs/$name.log"; tail -20 "$E2E_DIR/logs/$name.log" >&2; exit 1; }
  log "$name up on 127.0.0.1:$port"
}

ready() { # URL: waits until it answers 2xx
  for _ in $(seq 1 60); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.5; done
  log "not ready: $1"; curl -sS "$1" >&2 || true; exit 1
}

start stub-apis 18099 python3 e2e/stub_apis.py 18099
start tool-router 18081 env PATH="$REPO_ROOT/e2e/fakes:$PATH" "$BIN/tool-router" --config "$CONFIG"
start orchestrator 18085 "$BIN/orchestrator" --config "$CONFIG"
start gateway 18080 "$BIN/gateway" --config "$CONFIG"
ready http://127.0.0.1:18080/readyz
# The alert path last, so the first notification finds the gateway listening.
start alertmanager 19093 prometheus-alertmanager --config.file="$E2E_DIR/alertmanager.yml" \
  --storage.path="$E2E_DIR/alertmanager" --web.listen-address=127.0.0.1:19093 \
  --cluster.listen-address=
start prometheus 19090 prometheus --config.file=e2e/prometheus.yml \
  --storage.tsdb.path="$E2E_DIR/prometheus" --web.listen-address=127.0.0.1:19090 \
  --rules.alert.resend-delay=1s
ready http://127.0.0.1:18081/readyz
ready http://127.0.0.1:18085/readyz
ready http://127.0.0.1:18082/ui/
# The workflows' `promql: up` checks now really need data (an empty answer fails them): wait
# for Prometheus's first self-scrape.
for _ in $(seq 1 30); do
  curl -fsS 'http://127.0.0.1:19090/api/v1/query?query=up' | jq -e '.data.result | length > 0' >/dev/null 2>&1 && break
  sleep 1
done

export CARAPULSE_URL=http://127.0.0.1:18080 CARAPULSE_CONFIG="$CONFIG"
CTL="$BIN/assistantctl"
ALICE="$("$CTL" dev-token --sub alice --tenant e2e --roles operator,break-glass)"
BOB="$("$CTL" dev-token --sub bob --tenant e2e --roles approver)"

failures=0
declare -A RESULT
# start_workflow NAME INPUT: starts (approving and executing when policy asks) and sets EXEC;
# returns non-zero with RESULT[NAME] set when it could not.
start_workflow() {
  local name="$1" input="$2" out plan
  EXEC=""
  out="$("$CTL" --token "$ALICE" -o json workflow start "${name%%#*}" --env local --namespace e2e --input "$input")" || {
    RESULT[$name]="start failed"; failures=$((failures + 1)); return 1; }
  plan="$(jq -r '.plan_id // .plan.plan_id' <<<"$out")"
  EXEC="$(jq -r '.execution_id // empty' <<<"$out")"
  if [ -z "$EXEC" ]; then
    "$CTL" --token "$BOB" -o json approve "$plan" --note "e2e" >/dev/null || {
      RESULT[$name]="approve failed"; failures=$((failures + 1)); return 1; }
    # High-risk plans (secret rotation) need break-glass on execute, with a reason, from a holder
    # of a break-glass role.
    local glass=()
    [ "$(jq -r '.plan.risk_level // empty' <<<"$out")" = high ] && glass=(--break-glass "e2e: $name is high risk")
    EXEC="$("$CTL" --token "$ALICE" -o json plan execute "$plan" "${glass[@]}" | jq -r '.execution_id')" || {
      RESULT[$name]="execute failed"; failures=$((failures + 1)); return 1; }
  fi
}

# finish_workflow NAME [EXPECTED]: waits for EXEC and checks it ended as EXPECTED (succeeded).
finish_workflow() {
  local name="$1" expected="${2:-succeeded}" status
  "$CTL" --token "$ALICE" exec wait "$EXEC" --timeout 120 >/dev/null || true
  status="$("$CTL" --token "$ALICE" -o json exec get "$EXEC" | jq -r '.status + ": " + (.error // "")')"
  if [ "${status%%:*}" = "$expected" ]; then
    RESULT[$name]="$expected (execution $EXEC)"
  else
    RESULT[$name]="expected $expected, got $status"
    failures=$((failures + 1))
  fi
}

run_workflow() { # NAME INPUT [EXPECTED]
  start_workflow "$1" "$2" && finish_workflow "$1" "${3:-succeeded}"
}

run_workflow scale_service '{"resource":"deployment/web","namespace":"e2e","replicas":3,"current_replicas":2,"promql":"up"}'
run_workflow helm_release '{"release":"web","chart":"charts/web","namespace":"e2e","resource":"deployment/web","promql":"up"}'
run_workflow gitops_deploy '{"app":"web","revision":"v2","promql":"up"}'
run_workflow incident_remediation '{"alertname":"E2EWebDown","resource":"deployment/web","namespace":"e2e","dedup_key":"e2e-web","promql":"up"}'
run_workflow secret_rotation '{"path":"database/rotate-role/web","dependents":["web"],"promql":"up"}'

# Verification that observes. A Helm upgrade guarded by an error-ratio analysis whose query
# answers 0.4 (over the 0.05 bound): the second failing sample ends it and the release is rolled
# back to the revision read before the upgrade (the fake helm reports revision 3).
GUARD='"error_ratio":"vector(0.4)","analysis":{"interval":"1s","count":3,"failure_limit":1}'
run_workflow 'helm_release#failing-analysis' \
  "{\"release\":\"web\",\"chart\":\"charts/web\",\"namespace\":\"e2e\",$GUARD}" rolled_back
# No data is inconclusive: the run waits for a person; bob (an approver) continues it.
if start_workflow 'helm_release#inconclusive-continue' \
  '{"release":"web","chart":"charts/web","namespace":"e2e","error_ratio":"e2e_metric_nobody_exports","analysis":{"interval":"1s","count":1}}'; then
  waiting=""
  for _ in $(seq 1 60); do
    waiting="$("$CTL" --token "$ALICE" -o json exec get "$EXEC" | jq -r '.verification.awaiting_decision')"
    [ "$waiting" = true ] && break; sleep 1
  done
  if [ "$waiting" = true ] && "$CTL" --token "$BOB" exec decide "$EXEC" continue --note "e2e: no traffic yet" >/dev/null; then
    finish_workflow 'helm_release#inconclusive-continue'
  else
    RESULT['helm_release#inconclusive-continue']="never waited for a decision (or the decision was refused)"
    failures=$((failures + 1))
  fi
fi

expect_call() { # PATTERN: a fake CLI received a matching command
  if grep -Eq "$1" "$E2E_CALLS"; then RESULT["call: $1"]="seen"; else RESULT["call: $1"]="MISSING"; failures=$((failures + 1)); fi
}
expect_call '^kubectl scale .*deployment/web'
expect_call '^helm upgrade --install web charts/web'
expect_call '^argocd app sync web'
expect_call '^vault write .*database/rotate-role/web'
expect_call '^helm rollback web 3 '
expect_call '^kubectl scale deployment/web .*--current-replicas=2'

# The alert fired by Prometheus reaches the gateway through Alertmanager and becomes a plan.
alert_plan=""
for _ in $(seq 1 60); do
  alert_plan="$(curl -fsS -H "Authorization: Bearer $ALICE" "$CARAPULSE_URL/v1/plans?trigger=alert&limit=5" \
    | jq -r '.data[] | select(.summary | test("E2EWebDown|web")) | .plan_id' | head -1)"
  [ -n "$alert_plan" ] && break; sleep 1
done
if [ -n "$alert_plan" ]; then RESULT[alert]="E2EWebDown -> plan $alert_plan"; else RESULT[alert]="no plan from the alert"; failures=$((failures + 1)); fi

if "$CTL" --token "$ALICE" audit verify >/dev/null; then RESULT[audit]="chain verified"; else RESULT[audit]="chain BROKEN"; failures=$((failures + 1)); fi

echo
echo "E2E results"
for key in "${!RESULT[@]}"; do printf '  %-45s %s\n' "$key" "${RESULT[$key]}"; done | sort
echo
if [ "${E2E_STOP:-0}" = "1" ]; then "$REPO_ROOT/scripts/cleanup.sh" --keep-database; fi
if [ "$failures" -gt 0 ]; then log "$failures E2E check(s) failed; logs in $E2E_DIR/logs"; exit 1; fi
log "E2E passed. Web UI: http://127.0.0.1:18082/ui/ (token: $CTL dev-token -c $CONFIG --sub you --tenant e2e --roles operator,approver)"
