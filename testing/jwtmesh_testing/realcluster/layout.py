"""Where the real cluster keeps everything, and the addresses it uses (one home for both)."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from jwtmesh_testing.localbinaries import bin_cache

DEFAULT_ROOT = Path("/var/lib/jwtmesh-cluster")

# Loopback for everything the host talks to; the bridge gateway for what pods must reach.
ETCD_PORT, ETCD_PEER_PORT = 12379, 12380
APISERVER_PORT = 16443
BRIDGE = "jwtmesh0"
POD_CIDR = "10.244.0.0/24"
GATEWAY = "10.244.0.1"  # the API server's advertised (in-cluster) address, via socat
SERVICE_CIDR = "10.96.0.0/16"
KUBERNETES_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
NODE_NAME = "localhost"
# The kubelet checks that its node IP is on an interface: the bridge gateway is. The API
# server reaches the kubelet by its hostname (localhost), where it listens.
NODE_IP = GATEWAY
CNI_NETWORK = "jwtmesh"
CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class Layout:
    """Paths under the cluster's root directory."""

    root: Path

    @classmethod
    def from_env(cls) -> Layout:
        return cls(Path(os.environ.get("JWTMESH_CLUSTER_ROOT", str(DEFAULT_ROOT))))

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        """Pid files and sockets."""
        return self.root / "run"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def host_state(self) -> Path:
        """What `up` changed on the host, so that `down` can put it back."""
        return self.root / "host"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    @property
    def kubectl_cache(self) -> Path:
        """kubectl's discovery and HTTP cache for our calls (not ~/.kube/cache)."""
        return self.root / "kubectl-cache"

    def kubeconfig(self, user: str) -> Path:
        return self.config / f"{user}.kubeconfig"

    @property
    def containerd_socket(self) -> Path:
        return self.run / "containerd" / "containerd.sock"

    @property
    def server_url(self) -> str:
        return f"https://127.0.0.1:{APISERVER_PORT}"


@dataclass(frozen=True)
class NodeBinaries:
    """Every binary the cluster runs, from `current.env` and `node.env` in the binary cache."""

    values: dict[str, str]

    @classmethod
    def load(cls, cache: Path | None = None) -> NodeBinaries:
        values: dict[str, str] = {}
        for name in ("current.env", "node.env"):
            for line in ((cache or bin_cache()) / name).read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    words = shlex.split(value)  # written with printf %q
                    values[key.strip()] = words[0] if words else ""
        return cls(values)

    def path(self, name: str) -> Path:
        """The binary named like its command (`kube-apiserver`, `containerd-shim-runc-v2`)."""
        return Path(self.values["JWTMESH_" + name.upper().replace("-", "_")])

    def version(self, name: str) -> str:
        return self.values[f"JWTMESH_{name.upper()}_VERSION"]
