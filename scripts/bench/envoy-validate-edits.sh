#!/bin/bash
# `bootes-controller run` on one group (a pod, a cluster, a route): six
# edits of the route's header value (the third, %FOO%, is one Envoy rejects),
# each waited for; prints the "judged" and "wrote etcd" lines (elapsed_ms).
# Usage: envoy-validate-edits.sh [run flags...]
set -e
M=$(mktemp -d); D=$(mktemp -d); P=$((20000 + RANDOM % 20000))
obj() { cat > $M/o.yaml <<Y
apiVersion: v1
kind: Pod
metadata: {name: envoy-0, namespace: demo, uid: u0}
---
apiVersion: bootes.io/v1
kind: Cluster
metadata: {name: web, namespace: demo}
spec: {config: {name: web, connect_timeout: 1s, type: STATIC}}
---
apiVersion: bootes.io/v1
kind: Route
metadata: {name: r, namespace: demo}
spec: {config: {name: r, virtual_hosts: [{name: v, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: web}, request_headers_to_add: [{header: {key: x-a, value: "$1"}}]}]}]}}
Y
}
obj v0
etcd --data-dir $D/etcd --listen-client-urls http://127.0.0.1:$P --advertise-client-urls http://127.0.0.1:$P --listen-peer-urls http://127.0.0.1:$((P+1)) >$D/etcd.log 2>&1 &
E=$!
B=${B:-$CARGO_TARGET_DIR/debug/bootes-controller}
$B run --manifests $M --etcd-endpoints http://127.0.0.1:$P --metrics-addr 127.0.0.1:$((P+2)) "$@" >$D/c.log 2>&1 &
C=$!
want=1
for v in v1 v2 %FOO% v3 v4 v5; do
  for i in $(seq 1 200); do [ $(grep -cE "wrote etcd|rejects the group" $D/c.log) -ge $want ] && break; sleep 0.2; done
  sleep 1; obj $v; want=$((want+1))
done
for i in $(seq 1 200); do [ $(grep -cE "wrote etcd|rejects the group" $D/c.log) -ge $want ] && break; sleep 0.2; done
kill $C $E; wait $C $E 2>/dev/null || true
grep -E "judged the changed groups|wrote etcd" $D/c.log | sed -E 's/.*(judged the changed groups|wrote etcd)/\1/'
