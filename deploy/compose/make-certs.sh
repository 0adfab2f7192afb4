#!/usr/bin/env bash
# The certificates and the Secret-sealing key of docker-compose.yml, in DIR
# (the `certs` volume), one directory per identity as cert-manager writes a
# Secret (tls.crt, tls.key, ca.crt), named as the Kubernetes install's
# Secrets (manifests/pki/):
#
#   etcd-member/             etcd's server and peer certificate (etcd, localhost)
#   etcd-root/               CN=root, the etcd-roles service (roles.sh)
#   etcd-operator/           CN=operator, for `inspect`
#   bootes-controller-etcd/  CN=bootes-controller
#   bootes-xds-server-etcd/  CN=bootes-xds-server
#   bootes-xds-server-tls/   the xDS server certificate (bootes-xds-server, xds-server-a, xds-server-b)
#   envoy/                   the Envoy's client certificate, DNS SAN envoy-0.demo (its node ID)
#   bootes-secret-keys/secrets.keys
#
# Runs once: when DIR/ca.crt exists it does nothing. Files are owned by
# uid/gid 65532 (the Bootes images' user; Envoy runs as it too) and readable
# by it only. Usage: make-certs.sh DIR
set -euo pipefail
dir=${1:?usage: make-certs.sh DIR}
days=825
if [[ -f $dir/ca.crt ]]; then
  echo "make-certs: $dir/ca.crt exists; nothing to do"
  exit 0
fi
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key "$tmp/ca.key"
openssl req -x509 -new -key "$tmp/ca.key" -subj /CN=bootes-ca -days 3650 \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -out "$tmp/ca.crt"

# leaf NAME CN USAGE [SAN]: USAGE is serverAuth,clientAuth or clientAuth.
leaf() {
  local name=$1 cn=$2 usage=$3 san=${4:-}
  local out=$tmp/$name
  mkdir -p "$out"
  key "$out/tls.key"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [[ -n $san ]] && echo "subjectAltName=$san"
  } >"$tmp/$name.ext"
  openssl req -new -key "$out/tls.key" -subj "/CN=$cn" -out "$tmp/$name.csr"
  openssl x509 -req -in "$tmp/$name.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" \
    -CAcreateserial -days "$days" -extfile "$tmp/$name.ext" -out "$out/tls.crt" 2>/dev/null
  cp "$tmp/ca.crt" "$out/ca.crt"
  rm "$tmp/$name.csr" "$tmp/$name.ext"
}

leaf etcd-member etcd serverAuth,clientAuth DNS:etcd,DNS:localhost,IP:127.0.0.1
leaf etcd-root root clientAuth
leaf etcd-operator operator clientAuth
leaf bootes-controller-etcd bootes-controller clientAuth
leaf bootes-xds-server-etcd bootes-xds-server clientAuth
leaf bootes-xds-server-tls bootes-xds-server serverAuth DNS:bootes-xds-server,DNS:xds-server-a,DNS:xds-server-b
leaf envoy envoy-0.demo clientAuth DNS:envoy-0.demo

mkdir -p "$tmp/bootes-secret-keys"
printf 'k1 %s\n' "$(openssl rand -hex 32)" >"$tmp/bootes-secret-keys/secrets.keys"

rm -f "$tmp/ca.key" "$tmp/ca.srl"
# The CA key is gone: nothing more can be signed. ca.crt last: it marks
# the directory complete.
for d in "$tmp"/*/; do
  name=$(basename "$d")
  rm -rf "${dir:?}/$name"
  cp -r "$d" "$dir/$name"
done
if [[ $(id -u) -eq 0 ]]; then
  chown -R 65532:65532 "$dir"
fi
find "$dir" -type d -exec chmod 0750 {} +
find "$dir" -type f -exec chmod 0440 {} +
cp "$tmp/ca.crt" "$dir/ca.crt"
chmod 0444 "$dir/ca.crt"
echo "make-certs: wrote $dir"
