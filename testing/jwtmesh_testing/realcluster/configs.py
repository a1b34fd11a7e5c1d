"""The configuration files of the node's daemons, rendered from the layout (pure text)."""

from __future__ import annotations

import json

from jwtmesh_testing.realcluster.layout import (
    BRIDGE,
    CLUSTER_DOMAIN,
    CNI_NETWORK,
    DNS_SERVICE_IP,
    GATEWAY,
    NODE_NAME,
    POD_CIDR,
    Layout,
)

RUNC = "/usr/sbin/runc"
CNI_BIN = "/usr/lib/cni"  # Debian's containernetworking-plugins


def sandbox_image(pause_version: str) -> str:
    return f"localhost/jwtmesh/pause:{pause_version}"


def containerd_config(layout: Layout, pause_version: str) -> str:
    """containerd v2 (config version 3): everything under the root, cgroupfs, this VM's quirks.

    restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE, so a negative oom_score_adj
    (the sandbox asks for -998) cannot be written. NRI, CDI and the /opt plugin are pointed
    into the root or off, so nothing is written to /opt, /etc/cdi or /var/run/nri.
    """
    root, run = layout.root, layout.run
    return f"""version = 3
root = '{root}/containerd'
state = '{run}/containerd/state'

[grpc]
  address = '{layout.containerd_socket}'

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '{sandbox_image(pause_version)}'

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_cdi = false
  cdi_spec_dirs = []
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = '{RUNC}'
        Root = '{run}/runc'
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['{CNI_BIN}']
    conf_dir = '{layout.config}/cni'

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'

[plugins.'io.containerd.internal.v1.opt']
  path = '{root}/opt'

[plugins.'io.containerd.image-verifier.v1.bindir']
  bin_dir = '{root}/opt/image-verifier/bin'

[plugins.'io.containerd.nri.v1.nri']
  disable = true
"""


def cni_config(layout: Layout) -> str:
    """One bridge network; addresses from host-local with its data under the root. No
    masquerade and no portmap: pods reach each other, Services and the host, not the outside,
    so no iptables rules are written."""
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(layout.root / "cni" / "networks"),
                    },
                },
                {"type": "loopback"},
            ],
        },
        indent=2,
    )


def kubelet_config(layout: Layout) -> str:
    """Loopback only; cgroupfs on this VM's cgroup v1 hierarchy; oomScoreAdj 0 (no
    CAP_SYS_RESOURCE); pod logs under the root; eviction thresholds low for a shared disk;
    no iptables chains of its own (kube-proxy's nftables tables are all the rules there are)."""
    pki = layout.pki
    return f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {pki}/ca.crt}}
authorization: {{mode: Webhook}}
cgroupDriver: cgroupfs
failCgroupV1: false
containerRuntimeEndpoint: unix://{layout.containerd_socket}
clusterDNS: [{DNS_SERVICE_IP}]
clusterDomain: {CLUSTER_DOMAIN}
podCIDR: {POD_CIDR}
podLogsDir: {layout.logs}/pods
failSwapOn: false
oomScoreAdj: 0
makeIPTablesUtilChains: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
evictionHard: {{memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}}
maxPods: 60
"""


def kube_proxy_config(layout: Layout) -> str:
    """nftables mode; NodePorts on the bridge address only (nftables mode has no localhost
    NodePorts); conntrack sysctls left alone (maxPerCore 0, timeouts 0s)."""
    return f"""apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {{kubeconfig: {layout.kubeconfig("kube-proxy")}}}
hostnameOverride: {NODE_NAME}
clusterCIDR: {POD_CIDR}
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [{GATEWAY}/32]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  udpTimeout: 0s
  udpStreamTimeout: 0s
"""
