#!/bin/bash
# Cold start of `bootes-controller run` on a manifest directory: starts a
# throw-away etcd and the controller (B, default $CARGO_TARGET_DIR/debug),
# waits for the first write, prints the controller's "judged" and "wrote
# etcd" lines (elapsed_ms). Usage: envoy-validate-cold.sh DIR [run flags...]
set -e
M=$1; shift
D=$(mktemp -d); P=$((20000 + RANDOM % 20000))
etcd --data-dir $D/etcd --listen-client-urls http://127.0.0.1:$P --advertise-client-urls http://127.0.0.1:$P --listen-peer-urls http://127.0.0.1:$((P+1)) >$D/etcd.log 2>&1 &
E=$!
B=${B:-$CARGO_TARGET_DIR/debug/bootes-controller}
$B run --manifests $M --etcd-endpoints http://127.0.0.1:$P --metrics-addr 127.0.0.1:$((P+2)) "$@" >$D/c.log 2>&1 &
C=$!
for i in $(seq 1 600); do grep -q "wrote etcd" $D/c.log && break; sleep 0.5; done
echo "$D"
kill $C $E; wait $C $E 2>/dev/null || true
grep -E "judged the changed groups|wrote etcd" $D/c.log | sed -E 's/.*(judged the changed groups|wrote etcd)/\1/'
