#!/usr/bin/env bash
# The test command: installs missing tools (scripts/install-tools.sh), builds
# every binary (the end-to-end tests run the real bootes-controller and
# bootes-xds-server from target/debug/), then runs every test of the
# workspace (all of them, even after a failure). Extra arguments go to
# `cargo test` (e.g. `-- --nocapture`). Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TOOLS_DIR=${BOOTES_TOOLS_DIR:-$HOME/.cache/bootes-tools}
# Idempotent and quick when everything is there (it checks pinned versions).
bash scripts/install-tools.sh
export ENVOY_BIN=${ENVOY_BIN:-$TOOLS_DIR/venv/bin/envoy}

echo "[test] cargo build --workspace --bins" >&2
cargo build --workspace --bins
echo "[test] cargo test --workspace --no-fail-fast $*" >&2
cargo test --workspace --no-fail-fast "$@"
