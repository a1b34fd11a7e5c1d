"""Rotation under load: wrk through Envoy + sidecar while the operator rotates the caller's
key every few seconds; the client mints from the Secret's mounted files. Zero non-2xx.

`soak`: JWTMESH_SOAK_ROTATIONS (default 10, what CI runs) sets how many rotations.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from jwtmesh.envoy_config import AuthzEndpoint, PodEnvoy
from jwtmesh.identity import active_key, parse_identity
from jwtmesh.tokens.mint import mint_token
from jwtmesh_testing.kubeapply import create_object, service_identity, wait_for
from jwtmesh_testing.localcluster import LocalCluster
from jwtmesh_testing.minikubelet import MiniKubelet
from jwtmesh_testing.operator_process import OperatorProcess
from jwtmesh_testing.processes import EchoUpstream, free_port, start_envoy, start_sidecar

pytestmark = [pytest.mark.k8s, pytest.mark.soak]
PERIOD = 4.0
FAST = {"rotation": {"period": "4s", "prePublish": "2s", "retain": "31s"}, "maxTokenLifetime": "1s"}
WRK_SCRIPT = """
local counter = 0
local token = ""
request = function()
  if counter % 20 == 0 then
    local f = io.open("{path}", "r")
    if f then token = f:read("*a"); f:close() end
  end
  counter = counter + 1
  return wrk.format("GET", "/users/1", {{["authorization"] = "Bearer " .. token}})
end
"""


class Minter:
    """A client that signs its own tokens with whatever key its mounted Secret says is
    active now, writing the current token to a file for wrk."""

    def __init__(self, keys: Path, audience: str, out: Path) -> None:
        self.keys, self.audience, self.out = keys, audience, out
        self.kids: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def mint_once(self) -> None:
        identity = parse_identity(self.keys.read_bytes())
        now = time.time()
        key = active_key(identity, now)
        assert key is not None
        if not self.kids or self.kids[-1] != key.kid:
            self.kids.append(key.kid)
        token = mint_token(
            key,
            issuer=identity.issuer,
            subject=identity.subject,
            audience=self.audience,
            now=now,
            lifetime=1,
        )
        staging = self.out.with_suffix(".tmp")
        staging.write_text(token)
        os.replace(staging, self.out)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.mint_once()

    def start(self) -> None:
        self.mint_once()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def test_rotations_under_load_lose_no_request(
    local_cluster: LocalCluster, crds: list[str], cluster_objects: Any, tmp_path: Path
) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk; .ci/run installs it)")
    rotations = int(os.environ.get("JWTMESH_SOAK_ROTATIONS", "10"))
    # Its own namespace only: a cluster-wide operator here publishes to every namespace the
    # session's earlier tests left (~48), and on a slow machine that publish outlasted the
    # 2 s prePublish (CI, 2026-11-27: unknown_kid in bursts at each rotation). Watching one
    # namespace, the operator's scoped informers run too.
    ns = cluster_objects.namespace("soak")
    operator = OperatorProcess.for_cluster(
        local_cluster, tmp_path, name="soak-operator", extra=["--namespace", ns]
    )
    cleanups = [operator.stop]
    try:
        create_object(cluster_objects.api, ns, "serviceidentities", service_identity("census"))
        create_object(
            cluster_objects.api, ns, "serviceidentities", service_identity("herald", FAST)
        )
        census = cluster_objects.ready_identity(ns, "census")["status"]
        herald = cluster_objects.ready_identity(ns, "herald")["status"]
        kubelet = MiniKubelet(cluster_objects.api, ns, tmp_path / "volumes")
        bundle = kubelet.mount("bundle", "configmap", "jwtmesh-trust-bundle")
        herald_keys = kubelet.mount("herald", "secret", "herald-jwtmesh-key")

        def herald_is_in_the_mounted_bundle() -> bool:
            # Ready means the keys exist; the bundle reaches the verifier's files a moment
            # later (publish, then the kubelet's sync). Load starts once it has.
            kubelet.sync_once()
            path = bundle.path("bundle.json")
            if not path.exists():
                return False
            entry = json.loads(path.read_text())["issuers"].get(herald["issuer"])
            return bool(entry) and herald["activeKid"] in {k["kid"] for k in entry["jwks"]["keys"]}

        wait_for(herald_is_in_the_mounted_bundle, 20, "herald's key in the mounted bundle")
        kubelet.start()
        cleanups.append(kubelet.stop)

        upstream = EchoUpstream().start()
        cleanups.append(upstream.stop)
        authz, inbound = free_port(), free_port()
        sidecar = start_sidecar(
            {
                "identity": census["audience"],
                "listen": {"http": f"127.0.0.1:{authz}"},
                "trust": {"bundleFiles": [str(bundle.path("bundle.json"))]},
                "noPolicy": True,
            },
            tmp_path,
        )
        cleanups.append(sidecar.stop)
        envoy = start_envoy(
            PodEnvoy(
                inbound_port=inbound,
                app_port=upstream.port,
                admin_port=free_port(),
                listen_address="127.0.0.1",
                authz=AuthzEndpoint("http", port=authz),
            ),
            tmp_path,
        )
        cleanups.append(envoy.stop)

        token_file = tmp_path / "token"
        minter = Minter(herald_keys.path("signing-keys.json"), census["audience"], token_file)
        minter.start()
        cleanups.append(minter.stop)
        script = tmp_path / "rotating-token.lua"
        script.write_text(WRK_SCRIPT.format(path=token_file))
        seconds = int(rotations * PERIOD + PERIOD)
        result = subprocess.run(
            [
                "wrk",
                "-t1",
                "-c4",
                f"-d{seconds}s",
                "-s",
                str(script),
                f"http://127.0.0.1:{inbound}/",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
        total = int(re.search(r"(\d+) requests in", result).group(1))  # type: ignore[union-attr]
        non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", result)
        errors = re.search(r"Socket errors: (.*)", result)
        print(result)
        print(f"rotations seen by the client: {len(minter.kids) - 1}, requests: {total}")
        assert len(minter.kids) - 1 >= rotations, f"only {len(minter.kids) - 1} rotations happened"
        assert total > 1000
        assert non_2xx is None, f"{non_2xx.group(1)} of {total} requests failed across rotations"
        assert errors is None, errors.group(1)
    finally:
        for cleanup in reversed(cleanups):
            cleanup()
