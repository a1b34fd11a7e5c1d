// The pod sandbox ("pause") process of the real cluster's pods: it holds the Pod's
// namespaces, reaps any child re-parented to it, and exits on SIGINT or SIGTERM. Built
// static (CGO_ENABLED=0) by hack/build-binaries.sh --node; packed into an image by
// jwtmesh_testing.images.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "--version" {
		os.Stdout.WriteString("pause (jwtmesh)\n") // what the build script checks
		return
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for received := range signals {
		if received != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
