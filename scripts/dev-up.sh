#!/usr/bin/env bash
# Brings up a local Carapulse: PostgreSQL and the Temporal dev server (installed/started when
# absent), builds the workspace, migrates, starts the gateway, tool router and orchestrator (and
# the Slack agent when its secrets are configured), and writes and prints the commands of a first
# plan. Safe to run again: it restarts only what it started before.
#
#   ./scripts/dev-up.sh           the tool router runs the real CLIs: point it at a cluster with
#                                 connectors.k8s.kubeconfig_path (checked here, with advice)
#   ./scripts/dev-up.sh --demo    no cluster needed: the tool router runs the recording fakes of
#                                 e2e/fakes (tool_router.demo_cli_dir; labelled "demo" in the UI,
#                                 the CLI and /v1/diagnostics), with a local Prometheus (demo rule
#                                 DemoWebDown) and Alertmanager delivering to the gateway, so the
#                                 first plan executes and verifies and the demo alert becomes a plan
#
# Stop with ./scripts/dev-down.sh

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEMO=0
for arg in "$@"; do
  case "$arg" in
    --demo) DEMO=1 ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) log "unknown argument $arg (try --help)"; exit 2 ;;
  esac
done

BASE_CONFIG="${CARAPULSE_CONFIG:-$REPO_ROOT/deploy/config.dev.json}"
DEMO_DIR="$DEV_DIR/demo"
PROM_PORT=9190
AM_PORT=9193
ensure_postgres
# The database the services use: carapulse_dev, or CARAPULSE_DEV_DATABASE (the demo check uses
# a fresh one of its own, so a developer's database never decides whether the check passes).
DEV_DATABASE="${CARAPULSE_DEV_DATABASE:-carapulse_dev}"
[[ "$DEV_DATABASE" =~ ^[a-z_][a-z0-9_]*$ ]] || { log "CARAPULSE_DEV_DATABASE must be a plain name"; exit 2; }
psql "postgres://postgres@127.0.0.1:5432/postgres" -Atqc \
  "select 1 from pg_database where datname='$DEV_DATABASE'" | grep -q 1 \
  || psql "postgres://postgres@127.0.0.1:5432/postgres" -qc "create database $DEV_DATABASE"
# Only an explicit choice overrides the config's DSN (deploy/config.dev.json names carapulse_dev).
if [ -n "${CARAPULSE_DEV_DATABASE:-}" ]; then
  export CARAPULSE_POSTGRES_DSN="postgres://postgres@127.0.0.1:5432/$DEV_DATABASE"
fi
ensure_temporal
command -v jq >/dev/null 2>&1 || { as_root apt-get update -qq; as_root apt-get install -y -qq jq >/dev/null; }

cd "$REPO_ROOT"
CONFIG="$BASE_CONFIG"
if [ "$DEMO" = 1 ]; then
  ensure_prometheus
  mkdir -p "$DEMO_DIR/calls" "$DEMO_DIR/prometheus" "$DEMO_DIR/alertmanager"
  # The fakes run as an unprivileged uid inside the sandbox and log their argv to /e2e-calls.
  chmod 0777 "$DEMO_DIR/calls"; touch "$DEMO_DIR/calls/calls.log"; chmod 0666 "$DEMO_DIR/calls/calls.log"
  CONFIG="$DEMO_DIR/config.json"
  HOOK_TOKEN="demo-hook-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  jq --arg calls "$DEMO_DIR/calls:/e2e-calls:rw" --arg fakes "$REPO_ROOT/e2e/fakes" \
     --arg hook "$HOOK_TOKEN" --arg prom "http://127.0.0.1:$PROM_PORT" --arg am "http://127.0.0.1:$AM_PORT" \
    '.tool_router.demo_cli_dir = $fakes | .sandbox.mounts = [$calls]
     | .gateway.enable_event_loop = true
     | .storage.workspace_dir = "deploy/demo/workspace"
     | .context.tenant_id = "demo" | .context.environment = "dev"
     | .connectors.prometheus.addr = $prom | .connectors.alertmanager.addr = $am
     | .webhooks.alertmanager = {tenant_id: "demo", environment: "dev", namespace: "demo", bearer_token: $hook}' \
    "$BASE_CONFIG" >"$CONFIG"
  chmod 600 "$CONFIG"
  cat >"$DEMO_DIR/alertmanager.yml" <<YAML
route:
  receiver: carapulse
  group_by: ['alertname']
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 4h
receivers:
  - name: carapulse
    webhook_configs:
      - url: http://127.0.0.1:8080/v1/hooks/alertmanager
        send_resolved: true
        http_config:
          authorization:
            credentials: $HOOK_TOKEN
YAML
  log "demo config written to $CONFIG"
fi

log "building"
cargo build --bins -q
BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug"

log "migrating"
"$BIN/gateway" --config "$CONFIG" --migrate-only

# start_service NAME PORT COMMAND...: (re)starts a process, records its pid and waits for
# http://127.0.0.1:PORT/READY_PATH (default /readyz) to answer.
start_service() {
  local name="$1" port="$2" pidfile="$DEV_DIR/pids/$1.pid"; shift 2
  local ready="${READY_PATH:-/readyz}"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    log "restarting the $name started by a previous dev-up"
    kill "$(cat "$pidfile")"
    for _ in $(seq 1 20); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.25; done
  fi
  nohup "$@" >"$DEV_DIR/logs/$name.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 60); do
    curl -fsS "http://127.0.0.1:$port$ready" >/dev/null 2>&1 && break; sleep 0.5
  done
  curl -fsS "http://127.0.0.1:$port$ready" >/dev/null || {
    log "$name not ready; see $DEV_DIR/logs/$name.log"; tail -20 "$DEV_DIR/logs/$name.log" >&2; exit 1; }
  log "$name ready on http://127.0.0.1:$port (logs: $DEV_DIR/logs/$name.log)"
}

# Without --demo the tool router runs the real kubectl: say where it points and whether it
# answers, instead of letting the first plan fail on kubectl's default (localhost:8080 is the
# gateway's own port here).
check_cluster() {
  local kubeconfig
  kubeconfig="$(jq -r '.connectors.k8s.kubeconfig_path // empty' "$CONFIG")"
  if [ -z "$kubeconfig" ]; then
    cat >&2 <<MSG
[$(date +%H:%M:%S)] no cluster configured: kubectl and helm steps will fail. Either
    - run ./scripts/dev-up.sh --demo (recording fakes, no cluster needed), or
    - point the tool router at a cluster: set "connectors": {"k8s": {"kubeconfig_path": "/path/to/kubeconfig"}}
      in $CONFIG (or a copy named by CARAPULSE_CONFIG) and run dev-up again.
MSG
    return 0
  fi
  if [ ! -r "$kubeconfig" ]; then
    log "connectors.k8s.kubeconfig_path is $kubeconfig, which cannot be read: kubectl steps will fail"
    return 0
  fi
  if ! command -v kubectl >/dev/null 2>&1; then
    log "kubectl is not installed: the tool router answers 'kubectl is not installed' (install it, or use --demo)"
  elif kubectl --kubeconfig "$kubeconfig" --request-timeout=5s get --raw=/version >/dev/null 2>"$DEV_DIR/logs/cluster-check.log"; then
    log "cluster reachable with $kubeconfig ($(kubectl --kubeconfig "$kubeconfig" config current-context 2>/dev/null || echo 'no current context'))"
  else
    log "the cluster of $kubeconfig does not answer: $(head -c 300 "$DEV_DIR/logs/cluster-check.log")"
  fi
}

start_service gateway 8080 "$BIN/gateway" --config "$CONFIG"
start_service tool-router 8081 "$BIN/tool-router" --config "$CONFIG"
start_service orchestrator 8085 "$BIN/orchestrator" --config "$CONFIG"

if [ "$(jq -r '.chatops.slack_signing_secret // empty' "$CONFIG")" != "" ] \
  && [ "$(jq -r '.chatops.gateway_token // empty' "$CONFIG")" != "" ]; then
  AGENT_PORT="$(jq -r '.chatops.listen_addr // ":8090"' "$CONFIG" | sed 's/.*://')"
  start_service agent "$AGENT_PORT" "$BIN/agent" --config "$CONFIG"
else
  log "Slack agent not started: set chatops.slack_signing_secret and chatops.gateway_token (README, 'Slack agent') to run it"
fi

if [ "$DEMO" = 1 ]; then
  rm -rf "$DEMO_DIR/alertmanager"/* "$DEMO_DIR/prometheus"/*
  READY_PATH=/-/ready start_service alertmanager "$AM_PORT" prometheus-alertmanager \
    --config.file="$DEMO_DIR/alertmanager.yml" --storage.path="$DEMO_DIR/alertmanager" \
    --web.listen-address="127.0.0.1:$AM_PORT" --cluster.listen-address=
  # A short resend delay: the first notification can go out before Prometheus has found the
  # Alertmanager, and the default delay (1m) would hold the demo alert back that long.
  READY_PATH=/-/ready start_service prometheus "$PROM_PORT" prometheus \
    --config.file="$REPO_ROOT/deploy/demo/prometheus.yml" --storage.tsdb.path="$DEMO_DIR/prometheus" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --rules.alert.resend-delay=5s
  # The first plan verifies with `up`: wait for the first self-scrape, so it has a sample.
  for _ in $(seq 1 30); do
    curl -fsS "http://127.0.0.1:$PROM_PORT/api/v1/query?query=up" | jq -e '.data.result | length > 0' >/dev/null 2>&1 && break
    sleep 1
  done
else
  check_cluster
fi

# The first plan, as a script the newcomer can read and run (and the demo test runs as is).
TENANT="$([ "$DEMO" = 1 ] && echo demo || echo dev)"
NS="$([ "$DEMO" = 1 ] && echo demo || echo default)"
FIRST="$DEV_DIR/first-plan.sh"
cat >"$FIRST" <<SCRIPT
#!/usr/bin/env bash
# A first plan, written by dev-up.sh: alice (operator) starts the scale_service workflow, bob
# (approver) approves it when policy asks, alice executes it and waits for the verified result.
set -euo pipefail
export CARAPULSE_CONFIG=$CONFIG CARAPULSE_URL=http://127.0.0.1:8080
CTL=$BIN/assistantctl
ALICE="\$(\$CTL dev-token --sub alice --tenant $TENANT --roles operator)"
BOB="\$(\$CTL dev-token --sub bob --tenant $TENANT --roles approver)"
out="\$(\$CTL --token "\$ALICE" -o json workflow start scale_service --env dev --namespace $NS \\
  --input '{"resource":"deployment/web","namespace":"$NS","replicas":3,"current_replicas":2,"promql":"up"}')"
plan="\$(jq -r '.plan_id // .plan.plan_id' <<<"\$out")"
exec_id="\$(jq -r '.execution_id // empty' <<<"\$out")"
echo "plan \$plan"
if [ -z "\$exec_id" ]; then
  \$CTL --token "\$BOB" approve "\$plan" --note "first plan"
  exec_id="\$(\$CTL --token "\$ALICE" -o json plan execute "\$plan" | jq -r '.execution_id')"
fi
status=0
\$CTL --token "\$ALICE" exec wait "\$exec_id" --timeout 120 || status=\$?
\$CTL --token "\$ALICE" exec get "\$exec_id"
exit "\$status"
SCRIPT
chmod +x "$FIRST"

cat <<MSG

Carapulse is up$([ "$DEMO" = 1 ] && echo " in DEMO mode: kubectl, helm, argocd and vault are the recording fakes of e2e/fakes (calls logged to $DEMO_DIR/calls/calls.log); nothing outside this machine changes").

A first plan (the script is $FIRST):

$(sed -n '/^export/,$p' "$FIRST" | sed 's/^/  /')

Web UI: http://127.0.0.1:8082/ui/  (paste a token: $BIN/assistantctl dev-token -c $CONFIG --sub you --tenant $TENANT --roles operator,approver)
Diagnostics: CARAPULSE_CONFIG=$CONFIG $BIN/assistantctl --token \$ALICE diagnostics
$([ "$DEMO" = 1 ] && echo "Demo alert: Prometheus http://127.0.0.1:$PROM_PORT fires DemoWebDown; Alertmanager http://127.0.0.1:$AM_PORT delivers it and it becomes a plan (assistantctl plan list --trigger alert).")
MSG
