"""The daemons of the real cluster, in start order, each with its health check."""

from __future__ import annotations

from jwtmesh_testing.realcluster.daemons import Daemon, command_ok, http_ok, tcp_open
from jwtmesh_testing.realcluster.layout import (
    APISERVER_PORT,
    ETCD_PEER_PORT,
    ETCD_PORT,
    GATEWAY,
    NODE_IP,
    NODE_NAME,
    SERVICE_CIDR,
    Layout,
    NodeBinaries,
)


def etcd(layout: Layout, binaries: NodeBinaries) -> Daemon:
    client, peer = f"http://127.0.0.1:{ETCD_PORT}", f"http://127.0.0.1:{ETCD_PEER_PORT}"
    return Daemon(
        "etcd",
        [
            str(binaries.path("etcd")),
            "--name=jwtmesh",
            f"--data-dir={layout.root}/etcd",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=jwtmesh={peer}",
            "--listen-metrics-urls=http://127.0.0.1:12381",
            "--log-level=warn",
        ],
        http_ok(f"{client}/health"),
    )


def apiserver(layout: Layout, binaries: NodeBinaries) -> Daemon:
    """Loopback only; it advertises the bridge gateway (socat forwards it) so that the
    `kubernetes` Service has an endpoint pods can reach."""
    pki = layout.pki
    return Daemon(
        "kube-apiserver",
        [
            str(binaries.path("kube-apiserver")),
            f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
            "--bind-address=127.0.0.1",
            f"--secure-port={APISERVER_PORT}",
            f"--advertise-address={GATEWAY}",
            f"--tls-cert-file={pki}/apiserver.crt",
            f"--tls-private-key-file={pki}/apiserver.key",
            f"--client-ca-file={pki}/ca.crt",
            f"--kubelet-client-certificate={pki}/apiserver-kubelet-client.crt",
            f"--kubelet-client-key={pki}/apiserver-kubelet-client.key",
            "--kubelet-preferred-address-types=Hostname",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki}/sa.pub",
            f"--service-account-signing-key-file={pki}/sa.key",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            f"--cert-dir={layout.root}/apiserver-certs",
            "--v=1",
        ],
        http_ok(f"{layout.server_url}/readyz", layout),
        timeout=120,
    )


def socat(layout: Layout) -> Daemon:
    return Daemon(
        "apiserver-proxy",
        [
            "socat",
            f"TCP-LISTEN:{APISERVER_PORT},bind={GATEWAY},reuseaddr,fork",
            f"TCP:127.0.0.1:{APISERVER_PORT}",
        ],
        tcp_open(GATEWAY, APISERVER_PORT),
    )


def controller_manager(layout: Layout, binaries: NodeBinaries) -> Daemon:
    pki = layout.pki
    return Daemon(
        "kube-controller-manager",
        [
            str(binaries.path("kube-controller-manager")),
            f"--kubeconfig={layout.kubeconfig('kube-controller-manager')}",
            f"--authentication-kubeconfig={layout.kubeconfig('kube-controller-manager')}",
            f"--authorization-kubeconfig={layout.kubeconfig('kube-controller-manager')}",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--root-ca-file={pki}/ca.crt",
            f"--service-account-private-key-file={pki}/sa.key",
            f"--cluster-signing-cert-file={pki}/ca.crt",
            f"--cluster-signing-key-file={pki}/ca.key",
            "--bind-address=127.0.0.1",
            "--v=1",
        ],
        http_ok("https://127.0.0.1:10257/healthz"),
    )


def scheduler(layout: Layout, binaries: NodeBinaries) -> Daemon:
    kubeconfig = layout.kubeconfig("kube-scheduler")
    return Daemon(
        "kube-scheduler",
        [
            str(binaries.path("kube-scheduler")),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--v=1",
        ],
        http_ok("https://127.0.0.1:10259/healthz"),
    )


def containerd(layout: Layout, binaries: NodeBinaries) -> Daemon:
    shim_dir = binaries.path("containerd-shim-runc-v2").parent
    return Daemon(
        "containerd",
        [str(binaries.path("containerd")), "--config", f"{layout.config}/containerd.toml"],
        command_ok(
            [str(binaries.path("ctr")), "--address", str(layout.containerd_socket), "version"]
        ),
        env={"PATH": f"{shim_dir}:/usr/sbin:/usr/bin:/sbin:/bin"},
    )


def kubelet(layout: Layout, binaries: NodeBinaries) -> Daemon:
    return Daemon(
        "kubelet",
        [
            str(binaries.path("kubelet")),
            f"--config={layout.config}/kubelet.yaml",
            f"--kubeconfig={layout.kubeconfig('kubelet')}",
            f"--root-dir={layout.root}/kubelet",
            f"--cert-dir={layout.root}/kubelet/pki",  # not under --root-dir by default
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={NODE_IP}",
            "--v=1",
        ],
        http_ok("http://127.0.0.1:10248/healthz"),
    )


def kube_proxy(layout: Layout, binaries: NodeBinaries) -> Daemon:
    return Daemon(
        "kube-proxy",
        [
            str(binaries.path("kube-proxy")),
            f"--config={layout.config}/kube-proxy.yaml",
            "--v=1",
        ],
        http_ok("http://127.0.0.1:10256/livez"),
    )
