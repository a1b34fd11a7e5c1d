#!/usr/bin/env bash
# Builds the local control plane's binaries from Go modules only (the Go module proxy; no
# release downloads) and caches them outside the repo, keyed by version:
#
#   ${JWTMESH_BIN_CACHE:-~/.cache/jwtmesh/bin}/<name>-<version>/<name>
#
# etcd                                  hack/etcd-bin (go.etcd.io/etcd/server/v3 as a dependency)
# kube-apiserver, kube-controller-manager, kubectl
#                                       hack/k8s-bin (k8s.io/kubernetes, staging modules replaced)
# helm                                  go install helm.sh/helm/v3/cmd/helm@HELM_VERSION
#
# The etcd and Kubernetes versions are read from those go.mod files (the one place they are
# pinned). Each binary is written under a temporary name and renamed only once it built and
# reported its own version, so an interrupted build is never taken for a finished one; cached
# binaries are skipped. Ends by writing ${cache}/current.env (JWTMESH_ETCD=/path, ...), which
# jwtmesh_testing.localcluster and hack/e2e-kind.sh read. A cold build downloads ~1 GB of
# modules and compiles for several minutes; later runs take well under a second.
#
# --node also builds what a real node runs (`make cluster`), written to ${cache}/node.env:
# kubelet, kube-scheduler, kube-proxy  hack/k8s-bin (same release as the API server)
# containerd, containerd-shim-runc-v2, ctr
#                                       hack/containerd-bin (containerd v2 as a dependency)
# coredns                               go install github.com/coredns/coredns@COREDNS_VERSION
# crictl                                go install sigs.k8s.io/cri-tools/cmd/crictl@CRICTL_VERSION
# pause                                 hack/cluster/pause/pause.go (the pod sandbox process)
set -euo pipefail

HELM_VERSION=v3.19.5
COREDNS_VERSION=v1.12.4
NODE=false
case "${1:-}" in
  --node) NODE=true ;;
  "") ;;
  *) echo "usage: $0 [--node]" >&2; exit 2 ;;
esac

here="$(cd "$(dirname "$0")" && pwd)"
cache="${JWTMESH_BIN_CACHE:-$HOME/.cache/jwtmesh/bin}"
export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0

say() { echo "[binaries] $*"; }
die() { echo "[binaries] error: $*" >&2; exit 1; }

# The version a go.mod requires a module at (single-line or block `require`).
required_version() {
  local module=$1 gomod=$2 version
  version=$(awk -v m="$module" '
    $1 == "require" && $2 == m { print $3; exit }
    $1 == m && $2 ~ /^v/      { print $2; exit }' "$gomod")
  [ -n "$version" ] || die "$gomod does not require $module"
  echo "$version"
}

KUBERNETES_VERSION=$(required_version k8s.io/kubernetes "$here/k8s-bin/go.mod")
ETCD_VERSION=$(required_version go.etcd.io/etcd/server/v3 "$here/etcd-bin/go.mod")

# k8s.io/kubernetes points its staging modules at v0.0.0; every replace line must name the
# published tag of the same release (v1.34.12 -> v0.34.12), or the build mixes releases.
staging_version="v0.${KUBERNETES_VERSION#v1.}"
if mismatched=$(grep -E '^[[:space:]]*k8s\.io/[^ ]+ => ' "$here/k8s-bin/go.mod" | grep -v " $staging_version\$"); then
  die "hack/k8s-bin/go.mod replaces staging modules with a version other than $staging_version:
$mismatched"
fi

mkdir -p "$cache"
# Two runs at once (two test sessions, make demo and pytest) wait for each other instead of
# compiling the same thing twice.
exec 9>"$cache/.lock"
if ! flock -n 9; then
  say "another build-binaries.sh is running; waiting for it"
  flock 9
fi

partial=""
trap 'if [ -n "$partial" ]; then rm -rf "$partial" "$partial.gobin"; fi' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

size_mb() { echo "$(( $(stat -c %s "$1") / 1024 / 1024 )) MB"; }

# install NAME VERSION EXPECTED_VERSION_OUTPUT BUILD_FUNCTION [ARGS...]
# BUILD_FUNCTION is called with the temporary output path appended to ARGS.
install_binary() {
  local name=$1 version=$2 expect=$3 builder=$4
  shift 4
  local target="$cache/$name-$version/$name"
  if [ -x "$target" ]; then
    say "$name $version cached at $target"
    return
  fi
  say "building $name $version (first run: several minutes)..."
  mkdir -p "$(dirname "$target")"
  rm -rf "$target".partial.*  # left by an interrupted run (we hold the lock)
  partial="$target.partial.$$"
  local started=$SECONDS
  "$builder" "$@" "$partial"
  local reported
  reported=$("$partial" "${VERSION_ARGS[@]}" 2>&1 | head -n 3 || true)
  case "$reported" in
    *"$expect"*) ;;
    *) die "$name built but reports '$reported', expected '$expect'" ;;
  esac
  mv -f "$partial" "$target"
  partial=""
  say "$name $version built in $((SECONDS - started)) s ($(size_mb "$target")) at $target"
}

# quiet_go ARGS...: `go ARGS...` without its "go: downloading ..." lines (hundreds on a cold
# module cache); everything else, errors included, still goes to stderr.
quiet_go() {
  { go "$@" 2>&1 1>&3 3>&- | { grep -v '^go: downloading ' || true; } >&2; } 3>&1
}

# go_build MODULE_DIR PACKAGE LDFLAGS OUTPUT
go_build() {
  (cd "$1" && quiet_go build -trimpath -ldflags "-s -w $3" -o "$4" "$2")
}

# go_install_helm OUTPUT: `go install pkg@version` honours the module's own go.mod (no local
# module needed: helm has no replace lines); GOBIN is a private directory next to the output.
go_install_helm() {
  local output=$1 gobin="$1.gobin"
  rm -rf "$gobin"
  GOBIN="$gobin" quiet_go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$gobin/helm" "$output"
  rmdir "$gobin"
}

# go_build_k8s PACKAGE OUTPUT: /version must report the real release (helm's kubeVersion
# checks and our tests read it), not v0.0.0-master. The build date is the release's own
# publication time from the module proxy, so rebuilding gives the same binary.
go_build_k8s() {
  local minor=${KUBERNETES_VERSION#v1.} released ldflags="" package
  minor=${minor%%.*}
  released=$(cd "$here/k8s-bin" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)
  for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $package.gitVersion=$KUBERNETES_VERSION -X $package.gitMajor=1"
    ldflags+=" -X $package.gitMinor=$minor -X $package.gitTreeState=clean"
    ldflags+=" -X $package.buildDate=$released"
  done
  go_build "$here/k8s-bin" "$1" "$ldflags" "$2"
}

VERSION_ARGS=(--version)
install_binary etcd "$ETCD_VERSION" "etcd Version: ${ETCD_VERSION#v}" \
  go_build "$here/etcd-bin" go.etcd.io/etcd/server/v3 ""
for name in kube-apiserver kube-controller-manager; do
  install_binary "$name" "$KUBERNETES_VERSION" "Kubernetes $KUBERNETES_VERSION" \
    go_build_k8s "k8s.io/kubernetes/cmd/$name"
done
VERSION_ARGS=(version --client)
install_binary kubectl "$KUBERNETES_VERSION" "Client Version: $KUBERNETES_VERSION" \
  go_build_k8s k8s.io/kubernetes/cmd/kubectl
VERSION_ARGS=(version --short)
install_binary helm "$HELM_VERSION" "$HELM_VERSION" go_install_helm

{
  printf 'JWTMESH_ETCD=%q\n' "$cache/etcd-$ETCD_VERSION/etcd"
  printf 'JWTMESH_KUBE_APISERVER=%q\n' "$cache/kube-apiserver-$KUBERNETES_VERSION/kube-apiserver"
  printf 'JWTMESH_KUBE_CONTROLLER_MANAGER=%q\n' \
    "$cache/kube-controller-manager-$KUBERNETES_VERSION/kube-controller-manager"
  printf 'JWTMESH_KUBECTL=%q\n' "$cache/kubectl-$KUBERNETES_VERSION/kubectl"
  printf 'JWTMESH_HELM=%q\n' "$cache/helm-$HELM_VERSION/helm"
  printf 'JWTMESH_KUBERNETES_VERSION=%s\n' "$KUBERNETES_VERSION"
  printf 'JWTMESH_ETCD_VERSION=%s\n' "$ETCD_VERSION"
  printf 'JWTMESH_HELM_VERSION=%s\n' "$HELM_VERSION"
} >"$cache/current.env.tmp"
mv -f "$cache/current.env.tmp" "$cache/current.env"

if $NODE; then
  # shellcheck source=hack/cluster/node-binaries.sh
  source "$here/cluster/node-binaries.sh"
fi

say "binaries in:"
for dir in "etcd-$ETCD_VERSION" "kube-apiserver-$KUBERNETES_VERSION" \
  "kube-controller-manager-$KUBERNETES_VERSION" "kubectl-$KUBERNETES_VERSION" "helm-$HELM_VERSION"; do
  echo "  $cache/$dir"
done
say "paths for scripts and Python: $cache/current.env"
