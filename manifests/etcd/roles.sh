#!/usr/bin/env bash
# Least-privilege etcd users and roles for Bootes (docs/SECURITY.md). Run once
# against your etcd as its root user, e.g.
#   ETCDCTL_ENDPOINTS=https://etcd:2379 ETCDCTL_CACERT=ca.crt \
#   ETCDCTL_CERT=root.crt ETCDCTL_KEY=root.key bash manifests/etcd/roles.sh
# The end-to-end test tests/tests/e2e_etcd_security.rs creates the same roles
# through the etcd API and runs the whole system with them.
#
# With etcd's --client-cert-auth, a client certificate's common name is its
# user: give the controller a certificate with CN=bootes-controller and the
# xds-servers one with CN=bootes-xds-server (--etcd-cert/--etcd-key). The
# operator user logs in with a password (--etcd-username and
# --etcd-password-file), for `bootes-controller inspect`.
set -euo pipefail

PREFIX=${BOOTES_ETCD_PREFIX:-/bootes/v1/}

if ! etcdctl user get root >/dev/null 2>&1; then
  # Prompts for the root password.
  etcdctl user add root
  etcdctl user grant-role root root
fi

# The controller: reads and writes everything under the prefix (snapshots,
# bindings, its leader key; it reads status/).
etcdctl role add bootes-controller
etcdctl role grant-permission --prefix=true bootes-controller readwrite "$PREFIX"

# The xds-servers: read the prefix, write only their status/ records.
etcdctl role add bootes-xds-server
etcdctl role grant-permission --prefix=true bootes-xds-server read "$PREFIX"
etcdctl role grant-permission --prefix=true bootes-xds-server readwrite "${PREFIX}status/"

# Operators: read only (inspect).
etcdctl role add bootes-operator
etcdctl role grant-permission --prefix=true bootes-operator read "$PREFIX"

# Certificate users never log in with a password: give them a random one.
for user in bootes-controller bootes-xds-server; do
  etcdctl user add "$user" --new-user-password "$(head -c 24 /dev/urandom | base64)"
  etcdctl user grant-role "$user" "$user"
done
etcdctl user add operator # prompts for the operator's password
etcdctl user grant-role operator bootes-operator

etcdctl auth enable
