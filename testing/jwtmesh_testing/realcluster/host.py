"""What the cluster changes on the host outside its root, and how `down` puts it back:
sysctls, the pod bridge, kube-proxy's nftables tables, mounts, cgroups, and the few files
the kubelet and containerd write to fixed places."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from jwtmesh_testing.realcluster.daemons import run, say, warn
from jwtmesh_testing.realcluster.layout import (
    APISERVER_PORT,
    BRIDGE,
    CNI_NETWORK,
    GATEWAY,
    POD_CIDR,
    Layout,
)

# Set by `up`: forwarding between pods and Services, and bridged traffic through nftables
# (so that a Service's answer from a pod on the same bridge is un-NATed).
WANTED_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.bridge.bridge-nf-call-ip6tables": "1",
}
# Set by the kubelet (kernel tunables it expects) and possibly by kube-proxy: restored too.
TOUCHED_SYSCTLS = [
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.conf.all.route_localnet",
    "net.netfilter.nf_conntrack_max",
]
NFT_TABLES = [("ip", "kube-proxy"), ("ip6", "kube-proxy")]
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_NAMES = ("kubepods", "k8s.io")
# Fixed places: (path, remove its whole content) — parents are removed only when empty.
FIXED_PATHS = [
    Path("/var/lib/kubelet/device-plugins"),
    Path("/var/lib/kubelet/plugins_registry"),
    Path("/var/lib/kubelet/pod-resources"),
    Path("/run/containerd/s"),
    Path("/run/containerd/fifo"),
    Path("/run/containerd/runc"),
]


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def _read_sysctl(key: str) -> str | None:
    try:
        return _sysctl_path(key).read_text().strip()
    except OSError:
        return None


def set_sysctls(layout: Layout) -> None:
    """Remember the current values (first `up` only), then set WANTED_SYSCTLS."""
    saved = layout.host_state / "sysctl.json"
    if not saved.exists():
        keys = [*WANTED_SYSCTLS, *TOUCHED_SYSCTLS]
        layout.host_state.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps({key: _read_sysctl(key) for key in keys}, indent=1))
    for key, value in WANTED_SYSCTLS.items():
        if _read_sysctl(key) is None:
            raise RuntimeError(f"sysctl {key} does not exist on this kernel")
        _sysctl_path(key).write_text(value)
    say("sysctls set: " + ", ".join(f"{k}={v}" for k, v in WANTED_SYSCTLS.items()))


def restore_sysctls(layout: Layout) -> None:
    saved = layout.host_state / "sysctl.json"
    if not saved.exists():
        say("sysctls: nothing saved to restore")
        return
    changed = []
    for key, value in json.loads(saved.read_text()).items():
        current = _read_sysctl(key)
        if value is not None and current is not None and current != value:
            try:
                _sysctl_path(key).write_text(value)
                changed.append(f"{key}={value}")
            except OSError as exc:
                warn(f"could not restore {key}={value}: {exc}")
    say("sysctls restored: " + (", ".join(changed) or "none had changed"))


def ensure_bridge() -> None:
    """The pod bridge with the gateway address, before the API server advertises it."""
    if not Path(f"/sys/class/net/{BRIDGE}").exists():
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
    prefix = POD_CIDR.split("/")[1]
    if f"{GATEWAY}/" not in run(["ip", "-o", "-4", "addr", "show", "dev", BRIDGE]):
        run(["ip", "addr", "add", f"{GATEWAY}/{prefix}", "dev", BRIDGE])
    run(["ip", "link", "set", BRIDGE, "up"])
    say(f"bridge {BRIDGE} up with {GATEWAY}/{prefix}")


def remove_network() -> None:
    """The bridge (its veths go with the pods' namespaces) and kube-proxy's nft tables."""
    if Path(f"/sys/class/net/{BRIDGE}").exists():
        for port in Path(f"/sys/class/net/{BRIDGE}/brif").glob("*"):
            run(["ip", "link", "del", port.name], check=False)
        run(["ip", "link", "del", BRIDGE])
        say(f"bridge {BRIDGE} removed")
    else:
        say(f"bridge {BRIDGE} not present")
    if shutil.which("nft") is None:
        return
    for family, table in NFT_TABLES:
        if run(["nft", "list", "table", family, table], check=False):
            run(["nft", "delete", "table", family, table])
            say(f"nft table {family} {table} removed")


def unmount_under(paths: list[Path]) -> None:
    """Unmount every mount point at or below `paths`, deepest first (lazily if busy)."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == str(p) or point.startswith(f"{p}/") for p in paths):
            mounts.append(point)
    for point in sorted(set(mounts), key=lambda p: p.count("/"), reverse=True):
        result = subprocess.run(["umount", point], capture_output=True, check=False)
        if result.returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    say(f"unmounted {len(set(mounts))} mount points")


def remove_cgroups() -> None:
    """The kubelet's `kubepods` and containerd's `k8s.io` in every hierarchy (cgroup
    directories are removed with rmdir, leaves first; they are empty once the pods are gone)."""
    removed = 0
    for hierarchy in [p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink()]:
        for name in CGROUP_NAMES:
            top = hierarchy / name
            if not top.is_dir():
                continue
            for directory in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if directory.is_dir():
                    with contextlib.suppress(OSError):
                        directory.rmdir()
            try:
                top.rmdir()
                removed += 1
            except OSError as exc:
                warn(f"cgroup {top} not removed: {exc}")
    say(f"removed {removed} cgroup trees ({', '.join(CGROUP_NAMES)})")


def _foreign_kubelet(root: Path) -> bool:
    """Whether a kubelet that is not ours runs here (then the fixed paths are its too)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            argv = cmdline.read_bytes().split(b"\0")
            if argv[0].endswith(b"/kubelet") and not any(str(root).encode() in a for a in argv):
                return True
    return False


def remove_fixed_files(root: Path) -> None:
    """What the kubelet and containerd write outside the root, then their empty parents;
    kubectl's discovery cache for our API server."""
    if _foreign_kubelet(root):
        warn("another kubelet runs on this machine: /var/lib/kubelet and /run/containerd kept")
        return
    removed = []
    for path in FIXED_PATHS:
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
        _remove_empty_parents(path.parent)
    cache = Path("/var/lib/cni/results")
    for result in cache.glob(f"{CNI_NETWORK}-*"):
        result.unlink(missing_ok=True)
        removed.append(str(result))
    _remove_empty_parents(cache)
    for log_link in Path("/var/log/containers").glob("*.log"):
        if log_link.is_symlink() and str(log_link.readlink()).startswith(f"{root}/"):
            log_link.unlink()
            removed.append(str(log_link))
    _remove_empty_parents(Path("/var/log/containers"))
    discovery = Path.home() / ".kube" / "cache" / "discovery" / f"127.0.0.1_{APISERVER_PORT}"
    if discovery.exists():
        shutil.rmtree(discovery)
        removed.append(str(discovery))
    say(f"removed {len(removed)} files and directories outside the root")


def _remove_empty_parents(path: Path) -> None:
    stop = {Path("/"), Path("/var"), Path("/var/lib"), Path("/run"), Path("/var/log")}
    while path not in stop:
        try:
            os.rmdir(path)
        except OSError:
            return
        path = path.parent
