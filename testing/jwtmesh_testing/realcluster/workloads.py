"""Installing jwtmesh and the Herald → Census example into the real cluster, with the local
images of `make images` (tests/cluster and `make e2e`)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from jwtmesh_testing.images.build import envoy_requirement, project_version
from jwtmesh_testing.paths import CHART, CRD_DIR, EXAMPLES
from jwtmesh_testing.realcluster.daemons import running_pid, say
from jwtmesh_testing.realcluster.layout import Layout, NodeBinaries

RELEASE, RELEASE_NAMESPACE, DEMO_NAMESPACE = "jwtmesh", "jwtmesh-system", "demo"


@dataclass(frozen=True)
class LocalImages:
    jwtmesh: str
    envoy: str
    demo: str

    @classmethod
    def current(cls) -> LocalImages:
        version = project_version()
        return cls(
            jwtmesh=f"localhost/jwtmesh/jwtmesh:{version}",
            envoy=f"localhost/jwtmesh/envoy:{envoy_requirement()[0]}",
            demo=f"localhost/jwtmesh/demo-app:{version}",
        )

    def helm_values(self) -> list[str]:
        repository, _, tag = self.jwtmesh.rpartition(":")
        return [
            f"image.repository={repository}",
            f"image.tag={tag}",
            "image.pullPolicy=IfNotPresent",
            f"envoyImage={self.envoy}",
        ]


def cluster_running(layout: Layout) -> bool:
    names = ("etcd", "kube-apiserver", "containerd", "kubelet", "kube-proxy")
    return layout.admin_kubeconfig.exists() and all(running_pid(layout, n) for n in names)


def local_example(images: LocalImages, path: Path | None = None) -> list[dict[str, Any]]:
    """examples/herald-census/manifests.yaml with its public app images (http-echo, curl:
    no registry here) replaced by the local demo-app image doing the same jobs."""
    text = (path or EXAMPLES / "herald-census" / "manifests.yaml").read_text()
    documents = [d for d in yaml.safe_load_all(text) if d]
    jobs = {
        # On loopback, as the example's http-echo: Envoy, in the same Pod, is the only way in.
        "census": [
            "demo-http",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "8080",
            "--text",
            "census",
        ],
        "herald": ["demo-http", "idle"],
    }
    for document in documents:
        if document["kind"] != "Deployment":
            continue
        for container in document["spec"]["template"]["spec"]["containers"]:
            if container["name"] == "app":
                container["image"] = images.demo
                container["imagePullPolicy"] = "Never"
                container["command"] = jobs[document["metadata"]["name"]]
                container.pop("args", None)
    return documents


class Kube:
    """kubectl and helm against the real cluster, as the admin."""

    def __init__(self, layout: Layout, binaries: NodeBinaries) -> None:
        self.layout, self.binaries = layout, binaries

    def _run(self, argv: list[str], stdin: str | None, check: bool, timeout: float) -> str:
        result = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, check=False, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv[1:5])} ... failed:\n{result.stderr}")
        return result.stdout

    def kubectl_argv(self) -> list[str]:
        kubeconfig = f"--kubeconfig={self.layout.admin_kubeconfig}"
        cache = f"--cache-dir={self.layout.kubectl_cache}"
        return [str(self.binaries.path("kubectl")), kubeconfig, cache]

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 180
    ) -> str:
        return self._run([*self.kubectl_argv(), *args], stdin, check, timeout)

    def helm(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        kubeconfig = f"--kubeconfig={self.layout.admin_kubeconfig}"
        return self._run([str(self.binaries.path("helm")), kubeconfig, *args], None, check, timeout)

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def install_jwtmesh(self, images: LocalImages, *settings: str) -> None:
        """`helm upgrade --install` with the chart's defaults (two operator replicas), the
        local images, and `settings` (`key=value`)."""
        values = [*images.helm_values(), *settings]
        started = time.monotonic()
        self.helm(
            "upgrade", "--install", RELEASE, str(CHART), "--namespace", RELEASE_NAMESPACE,
            "--create-namespace", "--wait", "--timeout=180s",
            *(arg for value in values for arg in ("--set", value)),
        )  # fmt: skip
        say(f"helm upgrade --install {RELEASE}: {time.monotonic() - started:.0f} s")

    def apply_example(self, images: LocalImages) -> None:
        started = time.monotonic()
        manifests = yaml.safe_dump_all(local_example(images))
        self.kubectl("apply", "-f", "-", stdin=manifests)
        for name in ("census", "herald"):
            self.kubectl(
                "-n", DEMO_NAMESPACE, "rollout", "status", f"deploy/{name}", "--timeout=180s"
            )
        self.wait_for_service(DEMO_NAMESPACE, "census")
        say(
            f"Herald and Census Ready, Census Service answering: {time.monotonic() - started:.0f} s"
        )

    def wait_for_service(self, namespace: str, name: str, timeout: float = 60) -> None:
        """Until the Service's ClusterIP accepts connections from the host: the endpoints
        are ready and kube-proxy has programmed them (Pods Ready is not enough: a request
        right after the rollout met no endpoint and Envoy answered 503)."""
        service = self.json("-n", namespace, "get", "service", name)
        address, port = service["spec"]["clusterIP"], service["spec"]["ports"][0]["port"]

        def accepts() -> bool:
            try:
                with socket.create_connection((address, port), timeout=1):
                    return True
            except OSError:
                return False

        self.wait_for(f"Service {namespace}/{name} at {address}:{port}", accepts, timeout)

    def uninstall_everything(self) -> None:
        """The example, the release, its namespace and the CRDs (helm leaves CRDs).

        The operator's Deployment goes first, while its RBAC still exists: `helm uninstall`
        alone deletes the ServiceAccount and the ClusterRoleBinding with it, and the
        terminating operator then retries on 401/403 until the kubelet kills it, 30 s later.
        """
        demo, system = DEMO_NAMESPACE, RELEASE_NAMESPACE
        foreground = ["--cascade=foreground", "--ignore-not-found"]  # waits for the Pods
        steps: list[tuple[str, list[str]]] = [
            (f"{demo} Pods stopped", ["-n", demo, "delete", "deployment", "--all", *foreground]),
            (f"namespace {demo} deleted", ["delete", "namespace", demo, "--ignore-not-found"]),
            (
                "operator stopped",
                [
                    "-n",
                    system,
                    "delete",
                    "deployment",
                    "-l",
                    "app.kubernetes.io/name=jwtmesh",
                    *foreground,
                ],
            ),
            (f"release {RELEASE} uninstalled", []),
            (f"namespace {system} deleted", ["delete", "namespace", system, "--ignore-not-found"]),
            ("CRDs deleted", ["delete", "-f", str(CRD_DIR), "--ignore-not-found"]),
        ]
        for done, argv in steps:
            started = time.monotonic()
            if argv:
                self.kubectl(*argv)
            else:
                self.helm("uninstall", RELEASE, "-n", system, "--wait", check=False)
            say(f"{done} ({time.monotonic() - started:.0f} s)")

    def exec_in(self, deployment: str, container: str, *argv: str) -> str:
        return self.kubectl(
            "-n", DEMO_NAMESPACE, "exec", f"deploy/{deployment}", "-c", container, "--", *argv
        ).strip()

    def wait_for(self, what: str, check: Any, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not after {timeout:.0f} s")
            time.sleep(1)

    def diagnose(self) -> str:
        """What a failed run needs to be understood: Pods, recent events, the operator's
        log, and the kubelet's latest errors."""
        sections = {
            "nodes": ["get", "nodes", "-o", "wide"],
            "pods": ["get", "pods", "-A", "-o", "wide"],
            "events": ["get", "events", "-A", "--sort-by=.lastTimestamp"],
            "operator log": [
                "-n", RELEASE_NAMESPACE, "logs", "-l", "app.kubernetes.io/name=jwtmesh",
                "--tail=40", "--prefix", "--all-containers",
            ],
        }  # fmt: skip
        lines = []
        for title, argv in sections.items():
            try:
                found = self.kubectl(*argv, check=False, timeout=30).splitlines()
            except subprocess.TimeoutExpired:
                found = ["(kubectl timed out)"]
            lines += [f"--- {title}", *(found[-40:] if title == "events" else found)]
        kubelet = self.layout.logs / "kubelet.log"
        if kubelet.exists():
            errors = [
                ln for ln in kubelet.read_text(errors="replace").splitlines() if ln[:1] == "E"
            ]
            lines += ["--- kubelet errors (last 20)", *errors[-20:]]
        return "\n".join(lines)
