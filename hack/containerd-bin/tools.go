//go:build tools

// Package tools names the containerd v2 commands this module builds: `go install
// github.com/containerd/containerd/v2/cmd/containerd@version` is refused (containerd's go.mod
// has exclude lines), but as a dependency of this module its own pins are used as they are.
// hack/build-binaries.sh --node builds each with CGO_ENABLED=0 and the no_btrfs, no_devmapper
// and no_zfs tags.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
