"""A real single-node Kubernetes on this machine (`make cluster`, `make cluster-down`).

etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd v2 with runc, a
kubelet, the CNI bridge plugin, kube-proxy in nftables mode and CoreDNS, all as host
processes (CoreDNS as a Deployment) under one root directory (`JWTMESH_CLUSTER_ROOT`,
default /var/lib/jwtmesh-cluster). Binaries come from `hack/build-binaries.sh --node`, Debian
packages from `hack/cluster/packages.sh`. `python -m jwtmesh_testing.realcluster up|down`.
"""
