#!/usr/bin/env bash
# E2E step 2 (keep it running): in the original harness this port-forwarded Argo CD, Prometheus,
# Alertmanager, Grafana and Tempo out of a kind cluster. The local run needs no forwarding (every
# service listens on 127.0.0.1); with E2E_PORT_FORWARD=1 and a working kubectl context it
# forwards the same services as the original, and stops them on exit.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ "${E2E_PORT_FORWARD:-0}" != "1" ]; then
  log "local E2E: Prometheus 127.0.0.1:19090, Alertmanager 127.0.0.1:19093, stub APIs 127.0.0.1:18099; nothing to forward"
  exit 0
fi
kubectl config current-context >/dev/null || { log "no kubectl context"; exit 1; }
pids=()
forward() { kubectl -n "$1" port-forward "svc/$2" "$3" >/dev/null 2>&1 & pids+=($!); log "forwarding $1/$2 $3"; }
forward argocd argocd-server 8083:443
forward monitoring kube-prometheus-stack-prometheus 9090:9090
forward monitoring kube-prometheus-stack-alertmanager 9093:9093
forward monitoring kube-prometheus-stack-grafana 3000:80
forward observability tempo 3200:3200
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
wait
