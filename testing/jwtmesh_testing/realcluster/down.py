"""`make cluster-down`: pods first (through the CRI, so CNI and mounts are undone by their
owners), then the daemons, then whatever is left on the host. Idempotent, a line per step."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from jwtmesh_testing.realcluster import host
from jwtmesh_testing.realcluster.configs import RUNC
from jwtmesh_testing.realcluster.daemons import (
    kill_and_wait,
    our_processes,
    running_pid,
    say,
    stop,
    warn,
)
from jwtmesh_testing.realcluster.layout import Layout, NodeBinaries

ROOT_MARKER = ".jwtmesh-cluster"
# Stopped after the pods are gone, in reverse order of start.
CONTROL_PLANE = [
    "kube-proxy",
    "kube-scheduler",
    "kube-controller-manager",
    "apiserver-proxy",
    "kube-apiserver",
    "etcd",
]


def _binaries() -> NodeBinaries | None:
    try:
        return NodeBinaries.load()
    except (FileNotFoundError, KeyError):
        return None


def remove_pods(layout: Layout, binaries: NodeBinaries | None) -> None:
    """Every pod sandbox through the CRI (stops containers, runs CNI DEL, removes netns)."""
    if binaries is None or running_pid(layout, "containerd") is None:
        say("containerd not running: no pods to remove through the CRI")
        return
    argv = [
        str(binaries.path("crictl")),
        f"--runtime-endpoint=unix://{layout.containerd_socket}",
        "--timeout=60s",
        "rmp",
        "--all",
        "--force",
    ]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    removed = result.stdout.count("Removed sandbox")
    if result.returncode == 0:
        say(f"removed {removed} pod sandboxes through the CRI")
    else:
        warn(f"crictl rmp failed ({result.stderr.strip()}); runc cleans up below")


def remove_leftover_containers(layout: Layout) -> None:
    """Containers runc still knows (if the CRI could not remove them): killed and deleted."""
    state = layout.run / "runc"
    ids = []
    for namespace in sorted(state.glob("*")) if state.is_dir() else []:
        listed = subprocess.run(
            [RUNC, "--root", str(namespace), "list", "--quiet"],
            capture_output=True,
            text=True,
            check=False,
        )
        for container in listed.stdout.split():
            subprocess.run(
                [RUNC, "--root", str(namespace), "delete", "--force", container],
                capture_output=True,
                check=False,
            )
            ids.append(container)
    say(f"runc: {len(ids)} leftover containers deleted")


def stop_stragglers(layout: Layout) -> None:
    """containerd's shims and anything else that carries our marker."""
    pids = our_processes(layout)
    for pid in pids:
        kill_and_wait(pid, 5)
    say(f"stopped {len(pids)} leftover processes (containerd shims)")


def remove_root(layout: Layout) -> None:
    root = layout.root
    if not root.exists():
        say(f"{root} already removed")
        return
    if not (root / ROOT_MARKER).exists():
        warn(f"{root} has no {ROOT_MARKER} marker: not removing it")
        return
    host.unmount_under([root])
    mounted = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(f"{root}/")
    ]
    if mounted:
        warn(f"still mounted under {root}: {mounted[:3]}; not removing it")
        return
    shutil.rmtree(root)
    say(f"removed {root}")


def down(layout: Layout) -> None:
    started = time.monotonic()
    binaries = _binaries()
    stop(layout, "kubelet")
    remove_pods(layout, binaries)
    stop(layout, "containerd")
    remove_leftover_containers(layout)
    for name in CONTROL_PLANE:
        stop(layout, name)
    stop_stragglers(layout)
    host.remove_network()
    host.unmount_under([layout.root, Path("/run/containerd")])
    host.remove_cgroups()
    host.restore_sysctls(layout)
    remove_root(layout)
    host.remove_fixed_files(layout.root)
    say(f"cluster down in {time.monotonic() - started:.0f} s")
