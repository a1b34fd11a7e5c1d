#!/usr/bin/env bash
# The Debian packages a real single-node cluster and the image build need (installed once;
# a no-op when they are all there): runc, the CNI plugins (bridge, host-local, loopback,
# portmap), nftables and conntrack for kube-proxy, socat for the API server's in-cluster
# address, mmdebstrap for the image base.
set -euo pipefail
say() { echo "[packages] $*"; }

PACKAGES=(runc containernetworking-plugins nftables conntrack socat mmdebstrap
  ca-certificates)
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$' ||
    missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  say "Debian packages present (${PACKAGES[*]})"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "[packages] error: root needed to install ${missing[*]}" >&2; exit 1; }
say "installing ${missing[*]} (Debian)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
say "installed ${missing[*]}"
