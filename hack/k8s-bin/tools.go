//go:build tools

// Package tools names the commands this module builds, so `go mod tidy` keeps their
// dependencies. Build one with `go build k8s.io/kubernetes/cmd/<name>` from this directory
// (hack/build-binaries.sh adds the version ldflags).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
