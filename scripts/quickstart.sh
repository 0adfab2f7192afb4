#!/usr/bin/env bash
# The README's run command: Bootes on one machine, from scratch.
#
#   scripts/quickstart.sh                 # set up, show requests routed by Bootes, stop everything
#   scripts/quickstart.sh --keep-running  # same, then keep everything running until Ctrl-C
#   scripts/quickstart.sh --debug         # use a debug build (faster to build) instead of release
#
# It installs the tools (scripts/install-tools.sh), builds the release binaries,
# and starts, all on 127.0.0.1: etcd; bootes-controller on manifests/examples/
# (directory mode); two bootes-xds-server replicas; the two sample upstreams the
# example's Endpoints name (web on :18081, api on :18082; tiny Python servers
# that answer with their name); and an Envoy with node ID envoy-0.demo whose
# bootstrap lists both xds-servers. Then it waits until Envoy routes and sends
# requests through Envoy's listener (127.0.0.1:10000, from the example's
# Listener object) that reach both upstreams.
#
# With --keep-running, edit manifests/examples/*.yaml and Envoy follows within
# a second. Logs are in the printed work directory (kept on failure).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

KEEP_RUNNING=0
PROFILE=release
for arg in "$@"; do
  case "$arg" in
    --keep-running) KEEP_RUNNING=1 ;;
    --debug) PROFILE=debug ;;
    -h | --help)
      sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "unknown argument: $arg (see --help)" >&2
      exit 2
      ;;
  esac
done

if [ -t 1 ]; then
  say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
else
  say() { printf '==> %s\n' "$*"; }
fi
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

# Ports named by manifests/examples (listener, upstreams) must be free.
LISTENER_PORT=10000
WEB_PORT=18081
API_PORT=18082
# SO_REUSEADDR like the servers themselves: sockets of an earlier run left in
# TIME_WAIT do not make a port busy.
port_free() { python3 -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
for p in $LISTENER_PORT $WEB_PORT $API_PORT; do
  port_free "$p" || die "127.0.0.1:$p is in use (manifests/examples uses it); stop whatever listens there"
done

say "Installing tools (scripts/install-tools.sh)"
bash scripts/install-tools.sh
TOOLS_DIR=${BOOTES_TOOLS_DIR:-$HOME/.cache/bootes-tools}
ENVOY=${ENVOY_BIN:-$TOOLS_DIR/venv/bin/envoy}

say "Building bootes-controller and bootes-xds-server ($PROFILE)"
if [ "$PROFILE" = release ]; then
  cargo build --release -p bootes-controller -p bootes-xds-server --bins
else
  # The very command of scripts/test.sh: same features, so its build is reused.
  cargo build --workspace --bins
fi
TARGET_DIR=$(cargo metadata --no-deps --format-version 1 |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
BIN=$TARGET_DIR/$PROFILE

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bootes-quickstart.XXXXXX")
PIDS=()
NAMES=()
OK=0
cleanup() {
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill "${PIDS[$i]}" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$OK" = 1 ]; then
    rm -rf "$WORK"
  else
    echo "quickstart: logs kept in $WORK" >&2
  fi
}
trap cleanup EXIT
IN_KEEP_RUNNING=0
# Ctrl-C while everything runs is the normal way out: clean up quietly.
trap 'echo; say "Stopping"; [ "$IN_KEEP_RUNNING" = 1 ] && OK=1; exit 130' INT TERM

# start NAME COMMAND...: runs in the background, output to $WORK/NAME.log.
start() {
  local name=$1
  shift
  "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  NAMES+=("$name")
}

# wait_for WHAT LOG COMMAND...: polls COMMAND (every 0.2s, 60s at most).
wait_for() {
  local what=$1 log=$2
  shift 2
  local deadline=$((SECONDS + 60))
  until "$@" >/dev/null 2>&1; do
    local i
    for i in "${!PIDS[@]}"; do
      if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
        tail -n 40 "$WORK/${NAMES[$i]}.log" >&2 || true
        die "${NAMES[$i]} exited while waiting for: $what"
      fi
    done
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 40 "$WORK/$log.log" >&2 || true
      die "timed out waiting for: $what"
    fi
    sleep 0.2
  done
}
http_ok() { curl -fsS --max-time 2 -o /dev/null "$1"; }

say "Starting etcd"
ETCD_CLIENT=$(free_port)
ETCD_PEER=$(free_port)
ETCD_URL=http://127.0.0.1:$ETCD_CLIENT
start etcd etcd --name quickstart --data-dir "$WORK/etcd" \
  --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster "quickstart=http://127.0.0.1:$ETCD_PEER" \
  --logger zap --log-outputs stderr
wait_for "etcd health" etcd http_ok "$ETCD_URL/health"

say "Starting the sample upstreams (web :$WEB_PORT, api :$API_PORT)"
UPSTREAM_PY='
import http.server, sys
name, port = sys.argv[1], int(sys.argv[2])
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = ("%s answered %s %s (Host: %s)\n" % (name, self.command, self.path, self.headers.get("Host"))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
'
start upstream-web python3 -u -c "$UPSTREAM_PY" web "$WEB_PORT"
start upstream-api python3 -u -c "$UPSTREAM_PY" api "$API_PORT"
wait_for "upstream web" upstream-web http_ok "http://127.0.0.1:$WEB_PORT/"
wait_for "upstream api" upstream-api http_ok "http://127.0.0.1:$API_PORT/"

say "Starting bootes-controller on manifests/examples/"
CONTROLLER_METRICS=127.0.0.1:$(free_port)
start controller "$BIN/bootes-controller" run --manifests "$ROOT/manifests/examples" \
  --etcd-endpoints "$ETCD_URL" --metrics-addr "$CONTROLLER_METRICS"
wait_for "controller /readyz" controller http_ok "http://$CONTROLLER_METRICS/readyz"

say "Starting two bootes-xds-server replicas"
XDS_PORTS=()
for replica in a b; do
  listen=$(free_port)
  admin=127.0.0.1:$(free_port)
  # Plaintext on loopback for the demo. --allow-unauthenticated-secrets lets
  # SDS work without client certificates: anyone who reaches the port could
  # then read every node's private keys, so production runs --tls-client-ca
  # instead (docs/SECURITY.md).
  start "xds-server-$replica" "$BIN/bootes-xds-server" --etcd-endpoints "$ETCD_URL" \
    --listen "127.0.0.1:$listen" --admin-listen "$admin" \
    --csds-listen "127.0.0.1:$(free_port)" --allow-unauthenticated-secrets
  wait_for "xds-server $replica /readyz" "xds-server-$replica" http_ok "http://$admin/readyz"
  XDS_PORTS+=("$listen")
done

say "Starting Envoy (node ID envoy-0.demo)"
ENVOY_ADMIN_FILE=$WORK/envoy-admin-address
cat >"$WORK/envoy.yaml" <<YAML
node:
  id: envoy-0.demo
  cluster: edge
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services:
      - envoy_grpc:
          cluster_name: xds
          retry_policy: {retry_back_off: {base_interval: 0.1s, max_interval: 1s}}
  cds_config: {ads: {}, resource_api_version: V3}
  lds_config: {ads: {}, resource_api_version: V3}
static_resources:
  clusters:
    - name: xds
      type: STATIC
      connect_timeout: 0.5s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: {http2_protocol_options: {}}
      load_assignment:
        cluster_name: xds
        endpoints:
          - lb_endpoints:
              - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: ${XDS_PORTS[0]}}}}
              - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: ${XDS_PORTS[1]}}}}
YAML
start envoy "$ENVOY" --config-path "$WORK/envoy.yaml" --admin-address-path "$ENVOY_ADMIN_FILE" \
  --disable-hot-restart --concurrency 1 --base-id "$((RANDOM * 32768 + RANDOM + 1))" --log-level info
wait_for "Envoy admin" envoy test -s "$ENVOY_ADMIN_FILE"
ENVOY_ADMIN=$(cat "$ENVOY_ADMIN_FILE")
wait_for "Envoy routes http://127.0.0.1:$LISTENER_PORT/ to web" envoy \
  sh -c "curl -fsS --max-time 2 http://127.0.0.1:$LISTENER_PORT/ | grep -q '^web '"
wait_for "Envoy routes /api/ to api" envoy \
  sh -c "curl -fsS --max-time 2 http://127.0.0.1:$LISTENER_PORT/api/ | grep -q '^api '"

say "Requests through Envoy (127.0.0.1:$LISTENER_PORT), routed by manifests/examples/route.yaml"
show() {
  local shown="" a
  for a in "$@"; do
    case "$a" in *" "*) shown+=" '$a'" ;; *) shown+=" $a" ;; esac
  done
  printf '$ curl -s%s\n' "$shown"
  curl -fsS --max-time 5 "$@"
}
show "http://127.0.0.1:$LISTENER_PORT/"
show "http://127.0.0.1:$LISTENER_PORT/api/users"
show -H "Host: api.demo.local" "http://127.0.0.1:$LISTENER_PORT/"

say "What envoy-0.demo received (from its admin /config_dump)"
curl -fsS --max-time 5 "http://$ENVOY_ADMIN/config_dump" | python3 -c '
import json, sys
dump = json.load(sys.stdin)
for section in dump["configs"]:
    t = section["@type"].rsplit(".", 1)[-1]
    if t == "ListenersConfigDump":
        print("listeners:", ", ".join(l["name"] for l in section.get("dynamic_listeners", [])))
    elif t == "ClustersConfigDump":
        print("clusters: ", ", ".join(c["cluster"]["name"] for c in section.get("dynamic_active_clusters", [])))
    elif t == "RoutesConfigDump":
        print("routes:   ", ", ".join(r["route_config"]["name"] for r in section.get("dynamic_route_configs", [])))
'
echo "(listener_canary in workload-selector.yaml selects track=canary pods: not this Envoy)"

say "What Bootes keeps in etcd, per node (bootes-controller inspect nodes)"
# The xds-server records ACKs in etcd at most once per --status-write-interval
# (1 s): wait until the node's record says it ACKed the current snapshot.
node_synced() {
  "$BIN/bootes-controller" inspect nodes --etcd-endpoints "$ETCD_URL" -o json |
    python3 -c 'import json, sys; sys.exit(0 if "\"state\": \"synced\"" in json.dumps(json.load(sys.stdin)) else 1)'
}
wait_for "envoy-0.demo's ACKs recorded in etcd" controller node_synced
"$BIN/bootes-controller" inspect nodes --etcd-endpoints "$ETCD_URL"

OK=1
# What to try next, with this run's own addresses while it keeps running.
next_steps() {
  local etcd=$1
  cat <<TEXT
  See what each node gets (also: groups, snapshot envoy-0.demo, diff NODE_A NODE_B):
    $BIN/bootes-controller inspect nodes --etcd-endpoints $etcd
  Change the config: edit manifests/examples/*.yaml (route.yaml routes /api/ to api;
    also clusters.yaml, endpoints.yaml, listener.yaml, envoy-pods.yaml); Envoy follows
    within a second.
    Check an edit first: $BIN/bootes-controller validate -f manifests/examples/
TEXT
}
if [ "$KEEP_RUNNING" = 1 ]; then
  say "Running until Ctrl-C"
  cat <<TEXT
  Envoy listener:   http://127.0.0.1:$LISTENER_PORT/   (try /api/users, or -H 'Host: api.demo.local')
  Envoy admin:      http://$ENVOY_ADMIN/
  etcd:             $ETCD_URL
  controller:       http://$CONTROLLER_METRICS/readyz
  logs:             $WORK
TEXT
  say "What to try next"
  next_steps "$ETCD_URL"
  echo "  Stop everything: Ctrl-C (in this terminal)."
  OK=0 # keep the logs if something dies
  IN_KEEP_RUNNING=1
  set +e
  wait -n "${PIDS[@]}"
  for i in "${!PIDS[@]}"; do
    kill -0 "${PIDS[$i]}" 2>/dev/null || echo "quickstart: ${NAMES[$i]} exited; see $WORK/${NAMES[$i]}.log" >&2
  done
  exit 1
fi
say "Done: routing works. Everything started here is stopped again."
say "What to try next"
echo "  Keep it all running: scripts/quickstart.sh --keep-running (it prints etcd's URL; Ctrl-C stops everything), then:"
next_steps "http://127.0.0.1:PORT"
