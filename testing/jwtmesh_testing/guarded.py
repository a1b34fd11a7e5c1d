"""One service as an injected Pod runs it, as local processes: Envoy's inbound listener →
ext_authz → the jwtmesh sidecar, in front of an echo upstream, verifying against a bundle
and a policy that are kubelet-style mounted files. For tests that take a bundle the
operator published and send real requests through it.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from jwtmesh.envoy_config import AuthzEndpoint, PodEnvoy
from jwtmesh_testing.kubelet_volume import KubeletVolume
from jwtmesh_testing.processes import EchoUpstream, free_port, start_envoy, start_sidecar


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]

    @property
    def reason(self) -> str:
        return str(self.body.get("error", "allowed" if self.status == 200 else "?"))


@dataclass
class GuardedService:
    port: int
    bundle: KubeletVolume

    def call(self, method: str, path: str, token: str | None) -> Answer:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return Answer(response.status, json.loads(response.read() or b"{}"))
        except urllib.error.HTTPError as error:
            return Answer(error.code, json.loads(error.read() or b"{}"))


@contextlib.contextmanager
def guarded_service(
    workdir: Path,
    audience: str,
    bundle: bytes,
    policy: dict[str, Any] | None = None,
    mode: str = "http",
) -> Iterator[GuardedService]:
    """Envoy + sidecar (`mode`: http or grpc ext_authz) in front of an echo upstream."""
    volume = KubeletVolume(workdir / "bundle")
    volume.write({"bundle.json": bundle})
    config: dict[str, Any] = {
        "identity": audience,
        "listen": {mode: f"127.0.0.1:{(authz_port := free_port())}"},
        "trust": {"bundleFiles": [str(volume.path("bundle.json"))]},
    }
    if policy is not None:
        (workdir / "policy.yaml").write_text(yaml.safe_dump(policy))
        config["policyFile"] = str(workdir / "policy.yaml")
    else:
        config["noPolicy"] = True
    upstream = EchoUpstream().start()
    sidecar = start_sidecar(config, workdir, name=f"sidecar-{mode}")
    inbound = free_port()
    envoy = start_envoy(
        PodEnvoy(
            inbound_port=inbound,
            app_port=upstream.port,
            admin_port=free_port(),
            authz=AuthzEndpoint(mode=mode, port=authz_port),
        ),
        workdir,
        name=f"envoy-{mode}",
    )
    try:
        yield GuardedService(inbound, volume)
    finally:
        envoy.stop()
        sidecar.stop()
        upstream.stop()
