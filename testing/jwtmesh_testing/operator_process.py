"""Run the real operator (`jwtmesh-operator`) against a cluster, for tests and the demo."""

from __future__ import annotations

import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from jwtmesh_testing.chart import NAMESPACE, operator_kubeconfig
from jwtmesh_testing.localcluster import LocalCluster
from jwtmesh_testing.processes import ManagedProcess, free_port


class OperatorProcess:
    """`jwtmesh-operator` as a process; `for_cluster` runs it under the chart's own RBAC."""

    @classmethod
    def for_cluster(cls, cluster: LocalCluster, workdir: Path, **options: Any) -> OperatorProcess:
        """The operator with the chart's ServiceAccount token: the permissions (and only
        those) an installed operator has, its Lease in the release's namespace."""
        options.setdefault("lease_namespace", NAMESPACE)
        return cls(operator_kubeconfig(cluster), workdir, **options)

    def __init__(
        self,
        kubeconfig: Path,
        workdir: Path,
        *,
        leader_election: bool = False,
        lease_namespace: str = "default",
        name: str = "operator",
        extra: list[str] | None = None,
        wait_for: str = "/readyz",
    ) -> None:
        """`wait_for`: /readyz (synced, the default) or /healthz (serving at all)."""
        self.port = free_port()
        argv = [
            sys.executable,
            "-m",
            "jwtmesh_operator.cli",
            "--kubeconfig",
            str(kubeconfig),
            "--http",
            f"127.0.0.1:{self.port}",
            "--leader-election" if leader_election else "--standalone",
            f"--lease-namespace={lease_namespace}",
            # The tests rotate every few seconds (the default floor is 10m); a later
            # --min-rotation-period in `extra` wins.
            "--min-rotation-period=1s",
            *(extra or []),
        ]
        workdir.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(name, argv, workdir / f"{name}.log")
        self.wait_ready(path=wait_for)

    def wait_ready(self, timeout: float = 60, path: str = "/readyz") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.popen.poll() is not None:
                raise RuntimeError(f"operator exited:\n{self.process.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"operator not ready:\n{self.process.log_tail()}")

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
            body: bytes = response.read()
            return body

    def kill(self) -> None:
        self.process.kill()
        self.process.popen.wait(10)

    def stop(self) -> None:
        self.process.stop()
