#!/usr/bin/env bash
# Builds the local control plane's binaries from Go modules (no downloads of release
# binaries: only the Go module proxy), caching them outside the repo keyed by version:
#   $JWTMESH_BIN_CACHE/<name>-<version>/<name>      (default ~/.cache/jwtmesh/bin)
# and writes $JWTMESH_BIN_CACHE/current.env naming the binaries this repo pins.
# The first run downloads a few hundred MB of modules and compiles for many minutes;
# later runs only check the cache.
set -euo pipefail

KUBERNETES_VERSION=v1.34.4
ETCD_VERSION=v3.6.4
HELM_VERSION=v3.19.5

here="$(cd "$(dirname "$0")" && pwd)"
cache="${JWTMESH_BIN_CACHE:-$HOME/.cache/jwtmesh/bin}"
mkdir -p "$cache"
export GOTOOLCHAIN=local GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0

say() { echo "[binaries] $*"; }

# build NAME VERSION MODULE_DIR PACKAGE [LDFLAGS]
build() {
  local name=$1 version=$2 dir=$3 package=$4 ldflags=${5:-}
  local target="$cache/$name-$version/$name"
  if [ -x "$target" ]; then
    say "$name $version cached at $target"
    return
  fi
  say "building $name $version (first run: several minutes; go build output follows only on error)"
  mkdir -p "$(dirname "$target")"
  local started=$SECONDS
  (cd "$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$target.tmp" "$package")
  mv "$target.tmp" "$target"  # atomic: a half-built binary is never taken for a finished one
  say "$name $version built in $((SECONDS - started)) s: $target"
}

k8s_version_flags() {
  local minor=${KUBERNETES_VERSION#v1.}
  minor=${minor%%.*}
  local pkg=k8s.io/component-base/version
  echo "-X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
}

build etcd "$ETCD_VERSION" "$here/etcd-bin" go.etcd.io/etcd/server/v3
build kube-apiserver "$KUBERNETES_VERSION" "$here/k8s-bin" k8s.io/kubernetes/cmd/kube-apiserver "$(k8s_version_flags)"
build kube-controller-manager "$KUBERNETES_VERSION" "$here/k8s-bin" k8s.io/kubernetes/cmd/kube-controller-manager "$(k8s_version_flags)"
build kubectl "$KUBERNETES_VERSION" "$here/k8s-bin" k8s.io/kubernetes/cmd/kubectl "$(k8s_version_flags)"

helm_target="$cache/helm-$HELM_VERSION/helm"
if [ -x "$helm_target" ]; then
  say "helm $HELM_VERSION cached at $helm_target"
else
  say "building helm $HELM_VERSION"
  started=$SECONDS
  mkdir -p "$(dirname "$helm_target")"
  GOBIN="$(dirname "$helm_target")/.gobin" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$(dirname "$helm_target")/.gobin/helm" "$helm_target"
  rmdir "$(dirname "$helm_target")/.gobin"
  say "helm $HELM_VERSION built in $((SECONDS - started)) s"
fi

cat > "$cache/current.env.tmp" <<ENV
JWTMESH_ETCD=$cache/etcd-$ETCD_VERSION/etcd
JWTMESH_KUBE_APISERVER=$cache/kube-apiserver-$KUBERNETES_VERSION/kube-apiserver
JWTMESH_KUBE_CONTROLLER_MANAGER=$cache/kube-controller-manager-$KUBERNETES_VERSION/kube-controller-manager
JWTMESH_KUBECTL=$cache/kubectl-$KUBERNETES_VERSION/kubectl
JWTMESH_HELM=$helm_target
JWTMESH_KUBERNETES_VERSION=$KUBERNETES_VERSION
ENV
mv "$cache/current.env.tmp" "$cache/current.env"
say "all binaries ready; see $cache/current.env"
