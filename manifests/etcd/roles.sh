#!/usr/bin/env bash
# Least-privilege etcd users and roles for Bootes (docs/SECURITY.md), then
# `etcdctl auth enable`. Run it with etcdctl (3.4 or later) against your etcd
# as its root user; etcdctl takes the connection from its usual environment:
#
#   ETCDCTL_ENDPOINTS=https://etcd:2379 ETCDCTL_CACERT=ca.crt \
#   ETCDCTL_CERT=root.crt ETCDCTL_KEY=root.key bash manifests/etcd/roles.sh
#
# It prompts for the passwords of the users `root` (when it does not exist
# yet) and `operator`, unless BOOTES_ETCD_ROOT_PASSWORD and
# BOOTES_ETCD_OPERATOR_PASSWORD hold them; with BOOTES_ETCD_PASSWORDLESS=true
# (the roles Job of roles-job.yaml) they get none and authenticate only by
# client certificate (CN=root, CN=operator). BOOTES_ETCD_PREFIX is the prefix
# the processes use (default /bootes/v1/). Running it again is harmless: what
# exists is kept, permissions are granted again.
# tests/tests/e2e_etcd_security.rs runs this script and the whole system
# with the users it makes.
#
# With etcd's --client-cert-auth, a client certificate's common name is its
# user: give the controller a certificate with CN=bootes-controller and the
# xds-servers one with CN=bootes-xds-server (--etcd-cert/--etcd-key); those
# users have no password at all. The operator user logs in with a password
# (--etcd-username and --etcd-password-file), for `bootes-controller inspect`.
set -euo pipefail

PREFIX=${BOOTES_ETCD_PREFIX:-/bootes/v1/}
case $PREFIX in
  */) ;;
  *) echo "BOOTES_ETCD_PREFIX must end with /: $PREFIX" >&2; exit 2 ;;
esac

exists() { etcdctl "$1" get "$2" >/dev/null 2>&1; }

# add_user NAME PASSWORD_VARIABLE: no password in passwordless mode, else
# from the variable when set, else a prompt.
add_user() {
  local pw=${!2:-}
  if [[ ${BOOTES_ETCD_PASSWORDLESS:-} == true ]]; then
    etcdctl user add "$1" --no-password
  elif [[ -n $pw ]]; then
    printf '%s\n' "$pw" | etcdctl user add "$1" --interactive=false
  else
    etcdctl user add "$1"
  fi
}

add_role() {
  exists role "$1" || etcdctl role add "$1"
}

if ! exists user root; then
  add_user root BOOTES_ETCD_ROOT_PASSWORD
fi
etcdctl user grant-role root root

# The controller: reads and writes everything under the prefix (snapshots,
# bindings, its leader key; it reads status/).
add_role bootes-controller
etcdctl role grant-permission --prefix=true bootes-controller readwrite "$PREFIX"

# The xds-servers: read the prefix, write only their status/ records.
add_role bootes-xds-server
etcdctl role grant-permission --prefix=true bootes-xds-server read "$PREFIX"
etcdctl role grant-permission --prefix=true bootes-xds-server readwrite "${PREFIX}status/"

# Operators: read only (inspect).
add_role bootes-operator
etcdctl role grant-permission --prefix=true bootes-operator read "$PREFIX"

# Certificate users never log in with a password.
for user in bootes-controller bootes-xds-server; do
  exists user "$user" || etcdctl user add "$user" --no-password
  etcdctl user grant-role "$user" "$user"
done
exists user operator || add_user operator BOOTES_ETCD_OPERATOR_PASSWORD
etcdctl user grant-role operator bootes-operator

etcdctl auth enable
