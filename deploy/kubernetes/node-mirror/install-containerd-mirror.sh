#!/bin/sh
# Points containerd at tug for docker.io, ghcr.io, quay.io and registry.k8s.io:
# writes <certs-dir>/<registry>/hosts.toml with tug as the first host and the
# registry itself as the fallback. containerd adds ?ns=<registry> to each
# request, which tug uses to pick the upstream. Files are replaced atomically;
# containerd reads them at each pull (no restart).
#
# usage: install-containerd-mirror.sh MIRROR_URL [CERTS_DIR]
#   MIRROR_URL  tug's address as the node reaches it, e.g. http://tug.internal:5000
#   CERTS_DIR   containerd's config_path (default /etc/containerd/certs.d)
set -eu
usage="usage: install-containerd-mirror.sh MIRROR_URL [CERTS_DIR]"
mirror="${1:?$usage}"
dir="${2:-/etc/containerd/certs.d}"
mirror="${mirror%/}"
case "$mirror" in
  http://*|https://*) ;;
  *) echo "install-containerd-mirror.sh: MIRROR_URL must start with http:// or https:// ($usage)" >&2; exit 2 ;;
esac

write() {
  registry="$1"
  server="$2"
  mkdir -p "$dir/$registry"
  tmp="$dir/$registry/.hosts.toml.$$"
  cat > "$tmp" <<TOML
# Pull $registry images through tug; containerd falls back to the server below if tug fails.
server = "$server"

[host."$mirror"]
  capabilities = ["pull", "resolve"]
TOML
  mv "$tmp" "$dir/$registry/hosts.toml"
  echo "wrote $dir/$registry/hosts.toml"
}

write docker.io https://registry-1.docker.io
write ghcr.io https://ghcr.io
write quay.io https://quay.io
write registry.k8s.io https://registry.k8s.io
