//go:build tools

// Package tools names the command this module builds (etcd's main package is the root of
// go.etcd.io/etcd/server/v3), so `go mod tidy` keeps its dependencies. Build it with
// `go build -o etcd go.etcd.io/etcd/server/v3` from this directory.
package tools

import _ "go.etcd.io/etcd/server/v3"
