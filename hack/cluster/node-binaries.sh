# Sourced by hack/build-binaries.sh --node (uses its install_binary, go_build, go_build_k8s,
# quiet_go, $cache, $here): what a real node runs, cached like the control plane's binaries,
# then ${cache}/node.env for hack/cluster and jwtmesh_testing.realcluster.
# shellcheck shell=bash

CONTAINERD_VERSION=$(required_version github.com/containerd/containerd/v2 "$here/containerd-bin/go.mod")
CRICTL_VERSION=v1.34.0
PAUSE_SOURCE="$here/cluster/pause/pause.go"
PAUSE_VERSION=$(sha256sum "$PAUSE_SOURCE" | cut -c1-12)

VERSION_ARGS=(--version)
for name in kubelet kube-scheduler kube-proxy; do
  install_binary "$name" "$KUBERNETES_VERSION" "Kubernetes $KUBERNETES_VERSION" \
    go_build_k8s "k8s.io/kubernetes/cmd/$name"
done

# go_build_containerd PACKAGE OUTPUT: no cgo, none of the snapshotters that need it.
go_build_containerd() {
  local ldflags="-X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION"
  (cd "$here/containerd-bin" && quiet_go build -trimpath -tags "no_btrfs no_devmapper no_zfs" \
    -ldflags "-s -w $ldflags" -o "$2" "$1")
}
for name in containerd ctr; do
  install_binary "$name" "$CONTAINERD_VERSION" "$CONTAINERD_VERSION" \
    go_build_containerd "github.com/containerd/containerd/v2/cmd/$name"
done
VERSION_ARGS=(-v)
install_binary containerd-shim-runc-v2 "$CONTAINERD_VERSION" "$CONTAINERD_VERSION" \
  go_build_containerd github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2

# go_install_coredns OUTPUT: CoreDNS has no replace lines; `go install` honours its go.mod.
go_install_coredns() {
  local output=$1 gobin="$1.gobin"
  rm -rf "$gobin"
  GOBIN="$gobin" quiet_go install -trimpath -ldflags "-s -w" \
    "github.com/coredns/coredns@$COREDNS_VERSION"
  mv "$gobin/coredns" "$output"
  rmdir "$gobin"
}
VERSION_ARGS=(-version)
install_binary coredns "$COREDNS_VERSION" "CoreDNS-${COREDNS_VERSION#v}" go_install_coredns

# go_install_crictl OUTPUT: the CRI client `make cluster-down` removes the pods with.
go_install_crictl() {
  local output=$1 gobin="$1.gobin"
  rm -rf "$gobin"
  GOBIN="$gobin" quiet_go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
  mv "$gobin/crictl" "$output"
  rmdir "$gobin"
}
VERSION_ARGS=(--version)
install_binary crictl "$CRICTL_VERSION" "${CRICTL_VERSION}" go_install_crictl

# go_build_pause OUTPUT: a single standard-library file, built outside any module.
go_build_pause() {
  (cd "$(dirname "$PAUSE_SOURCE")" && GO111MODULE=off quiet_go build -trimpath -ldflags "-s -w" \
    -o "$1" "$(basename "$PAUSE_SOURCE")")
}
VERSION_ARGS=(--version)
install_binary pause "$PAUSE_VERSION" "pause (jwtmesh)" go_build_pause

{
  for name in kubelet kube-scheduler kube-proxy; do
    printf 'JWTMESH_%s=%q\n' "$(echo "$name" | tr a-z- A-Z_)" "$cache/$name-$KUBERNETES_VERSION/$name"
  done
  for name in containerd ctr containerd-shim-runc-v2; do
    printf 'JWTMESH_%s=%q\n' "$(echo "$name" | tr a-z- A-Z_)" "$cache/$name-$CONTAINERD_VERSION/$name"
  done
  printf 'JWTMESH_COREDNS=%q\n' "$cache/coredns-$COREDNS_VERSION/coredns"
  printf 'JWTMESH_CRICTL=%q\n' "$cache/crictl-$CRICTL_VERSION/crictl"
  printf 'JWTMESH_PAUSE=%q\n' "$cache/pause-$PAUSE_VERSION/pause"
  printf 'JWTMESH_CONTAINERD_VERSION=%s\n' "$CONTAINERD_VERSION"
  printf 'JWTMESH_COREDNS_VERSION=%s\n' "$COREDNS_VERSION"
} >"$cache/node.env.tmp"
mv -f "$cache/node.env.tmp" "$cache/node.env"
say "node binaries: $cache/node.env"
