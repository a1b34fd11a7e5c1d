"""`make cluster`: every step in order, each idempotent, a line per step."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from jwtmesh_testing.paths import HACK
from jwtmesh_testing.realcluster import configs, control_plane, host, system_images
from jwtmesh_testing.realcluster.daemons import ClusterError, run, running_pid, say, start
from jwtmesh_testing.realcluster.layout import (
    CNI_NETWORK,
    NODE_NAME,
    Layout,
    NodeBinaries,
)
from jwtmesh_testing.realcluster.pki import ensure_pki


def prepare_host() -> NodeBinaries:
    """Debian packages and the node binaries (both cached; seconds when present)."""
    for argv in (
        [str(HACK / "cluster" / "packages.sh")],
        [str(HACK / "build-binaries.sh"), "--node"],
    ):
        if subprocess.run(argv, check=False).returncode != 0:
            raise ClusterError(f"{argv[0]} failed (output above)")
    return NodeBinaries.load()


def write_configs(layout: Layout, binaries: NodeBinaries) -> None:
    files = {
        layout.config / "containerd.toml": configs.containerd_config(
            layout, system_images.pause_version(binaries)
        ),
        layout.config / "cni" / f"10-{CNI_NETWORK}.conflist": configs.cni_config(layout),
        layout.config / "kubelet.yaml": configs.kubelet_config(layout),
        layout.config / "kube-proxy.yaml": configs.kube_proxy_config(layout),
    }
    changed = []
    for path, text in files.items():
        # Only when different: kube-proxy exits when its configuration file is written to.
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(path.name)
    say(f"configuration in {layout.config}: {', '.join(changed) or 'unchanged'}")


def kubectl(layout: Layout, binaries: NodeBinaries, *args: str, stdin: str | None = None) -> str:
    argv = [
        str(binaries.path("kubectl")),
        f"--kubeconfig={layout.admin_kubeconfig}",
        f"--cache-dir={layout.kubectl_cache}",
        *args,
    ]
    return run(argv, input_text=stdin)


def wait_until(what: str, check: object, timeout: float) -> None:
    """Poll `check()` (a callable returning bool) until true; ClusterError after `timeout`."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise ClusterError(f"{what}: not after {timeout:.0f} s")
        time.sleep(1)


def node_ready(layout: Layout, binaries: NodeBinaries) -> bool:
    try:
        node = json.loads(kubectl(layout, binaries, "get", "node", NODE_NAME, "-o", "json"))
    except ClusterError:
        return False
    conditions = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
    return conditions.get("Ready") == "True"


def import_changed_images(layout: Layout, binaries: NodeBinaries, archives: list[Path]) -> None:
    """Import each archive unless this very file (size and time) was imported last."""
    stamps = layout.run / "imported"
    stamps.mkdir(parents=True, exist_ok=True)
    for archive in archives:
        stat = archive.stat()
        stamp, signature = stamps / archive.name, f"{stat.st_size} {stat.st_mtime_ns}"
        if stamp.exists() and stamp.read_text() == signature:
            say(f"images of {archive.name} already imported")
            continue
        system_images.import_archive(layout, binaries, archive)
        stamp.write_text(signature)


def import_app_images(layout: Layout, binaries: NodeBinaries | None = None) -> None:
    """The images of `make images`, if built, into containerd, if it runs."""
    apps = system_images.image_cache() / "app" / "images.tar"
    if not apps.exists():
        say("no app images yet (make images builds them)")
    elif running_pid(layout, "containerd") is None:
        say("cluster not running: `make cluster` imports the images")
    else:
        import_changed_images(layout, binaries or NodeBinaries.load(), [apps])


def up(layout: Layout) -> None:
    started = time.monotonic()
    binaries = prepare_host()
    layout.root.mkdir(parents=True, exist_ok=True)
    if ensure_pki(layout):
        say(f"certificates and kubeconfigs generated in {layout.pki}")
    else:
        say(f"certificates and kubeconfigs present in {layout.pki}")
    host.set_sysctls(layout)
    host.ensure_bridge()
    write_configs(layout, binaries)
    start(layout, control_plane.etcd(layout, binaries))
    start(layout, control_plane.apiserver(layout, binaries))
    start(layout, control_plane.socat(layout))
    start(layout, control_plane.controller_manager(layout, binaries))
    start(layout, control_plane.scheduler(layout, binaries))
    start(layout, control_plane.containerd(layout, binaries))
    import_changed_images(layout, binaries, [system_images.system_archive(binaries)])
    start(layout, control_plane.kubelet(layout, binaries))
    wait_until("node Ready", lambda: node_ready(layout, binaries), 120)
    say(f"node {NODE_NAME} Ready")
    start(layout, control_plane.kube_proxy(layout, binaries))
    coredns = (HACK / "cluster" / "coredns.yaml").read_text()
    image = system_images.coredns_image(binaries)
    kubectl(layout, binaries, "apply", "-f", "-", stdin=coredns.replace("IMAGE", image))
    kubectl(
        layout,
        binaries,
        "-n",
        "kube-system",
        "rollout",
        "status",
        "deploy/coredns",
        "--timeout=180s",
    )
    say("CoreDNS ready (kube-dns 10.96.0.10)")
    import_app_images(layout, binaries)
    say(f"cluster up in {time.monotonic() - started:.0f} s; use it with:")
    print(f"export KUBECONFIG={layout.admin_kubeconfig}", flush=True)
    print(f"export PATH={binaries.path('kubectl').parent}:{binaries.path('helm').parent}:$PATH")
