"""python -m jwtmesh_testing.realcluster up|down|status|import-images|diagnose"""

from __future__ import annotations

import argparse
import os
import sys

from jwtmesh_testing.realcluster.daemons import ClusterError, running_pid, say
from jwtmesh_testing.realcluster.down import CONTROL_PLANE, ROOT_MARKER, down
from jwtmesh_testing.realcluster.layout import Layout, NodeBinaries
from jwtmesh_testing.realcluster.up import import_app_images, up
from jwtmesh_testing.realcluster.workloads import Kube


def status(layout: Layout) -> int:
    names = ["containerd", "kubelet", *reversed(CONTROL_PLANE)]
    down_ones = [name for name in names if running_pid(layout, name) is None]
    for name in names:
        pid = running_pid(layout, name)
        say(f"{name}: {'running, pid ' + str(pid) if pid else 'not running'}")
    return 1 if down_ones else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jwtmesh_testing.realcluster")
    parser.add_argument("command", choices=["up", "down", "status", "import-images", "diagnose"])
    args = parser.parse_args(argv)
    layout = Layout.from_env()
    if args.command in ("up", "down") and os.geteuid() != 0:
        say(f"error: `{args.command}` changes mounts, interfaces, cgroups, sysctls: run as root")
        return 1
    try:
        if args.command == "up":
            layout.root.mkdir(parents=True, exist_ok=True)
            (layout.root / ROOT_MARKER).touch()
            up(layout)
        elif args.command == "down":
            down(layout)
        elif args.command == "import-images":
            import_app_images(layout)
        elif args.command == "diagnose":
            print(Kube(layout, NodeBinaries.load()).diagnose(), flush=True)
        else:
            return status(layout)
    except ClusterError as exc:
        say(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
