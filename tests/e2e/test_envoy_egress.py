"""Herald → Census through two real Envoys: Herald's egress listener attaches a token
minted by Herald's sidecar, Census's inbound listener verifies it. Also `POST /token`."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from jwtmesh.client import TOKEN_REQUEST_HEADER, TokenClient
from jwtmesh.envoy_config import AuthzEndpoint, Destination, PodEnvoy
from jwtmesh.identity import IdentityKeys, ScheduledKey, render_identity
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle, render_bundle
from jwtmesh_testing.kubelet_volume import KubeletVolume
from jwtmesh_testing.processes import (
    AUTHZ_MODES,
    EchoUpstream,
    authz_mode,
    free_port,
    start_envoy,
    start_sidecar,
)

pytestmark = pytest.mark.envoy
HERALD_ISSUER = "https://jwtmesh.test/ns/default/herald"


@pytest.fixture(scope="module", params=AUTHZ_MODES)
def pods(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, int]]:
    mode = request.param
    workdir: Path = tmp_path_factory.mktemp(f"egress-{mode}")
    key = generate_signing_key("EdDSA")
    identity = IdentityKeys(
        HERALD_ISSUER, "herald.default", 600, (ScheduledKey(key, time.time() - 5, None),)
    )
    secret = KubeletVolume(workdir / "herald-identity")
    secret.write({"signing-keys.json": render_identity(identity)})
    bundle = KubeletVolume(workdir / "census-bundle")
    bundle.write(
        {
            "bundle.json": render_bundle(
                TrustBundle({HERALD_ISSUER: IssuerTrust({key.kid: key.public})})
            )
        }
    )
    upstream = EchoUpstream().start()
    processes = []

    census_authz, census_inbound = free_port(), free_port()
    listen, settings = authz_mode(mode)  # both sidecars run the server `mode` names
    processes.append(
        start_sidecar(
            {
                "identity": "census.default",
                "listen": {listen: f"127.0.0.1:{census_authz}"},
                "trust": {"bundleFiles": [str(bundle.path("bundle.json"))]},
                "noPolicy": True,
                **settings,
            },
            workdir,
            "census-sidecar",
        )
    )
    processes.append(
        start_envoy(
            PodEnvoy(
                inbound_port=census_inbound,
                app_port=upstream.port,
                admin_port=free_port(),
                listen_address="127.0.0.1",
                authz=AuthzEndpoint(listen, port=census_authz),
            ),
            workdir,
            "census-envoy",
        )
    )
    herald_authz, herald_egress, token_port = free_port(), free_port(), free_port()
    processes.append(
        start_sidecar(
            {
                "listen": {listen: f"127.0.0.1:{herald_authz}", "token": f"127.0.0.1:{token_port}"},
                "identityKeys": str(secret.path("signing-keys.json")),
                "egress": {"audiences": {"census": "census.default"}},
                **settings,
            },
            workdir,
            "herald-sidecar",
        )
    )
    processes.append(
        start_envoy(
            PodEnvoy(
                inbound_port=free_port(),
                app_port=upstream.port,
                admin_port=free_port(),
                listen_address="127.0.0.1",
                authz=AuthzEndpoint(listen, port=herald_authz),
                egress_port=herald_egress,
                destinations=(Destination("census", "127.0.0.1", census_inbound),),
            ),
            workdir,
            "herald-envoy",
        )
    )
    yield {"egress": herald_egress, "census": census_inbound, "token": token_port}
    for process in reversed(processes):
        process.stop()
    upstream.stop()


def test_egress_listener_attaches_a_token_census_accepts(pods: dict[str, int]) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{pods['egress']}/users/7", headers={"host": "census"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        seen = json.loads(response.read())
    assert seen["headers"]["x-jwtmesh-subject"] == "herald.default"
    assert seen["headers"]["x-jwtmesh-issuer"] == HERALD_ISSUER


def test_census_refuses_a_call_that_bypasses_herald_egress(pods: dict[str, int]) -> None:
    # Census without a token: the inbound side refuses.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{pods['census']}/users/7", timeout=10)
    refused.value.close()
    assert refused.value.code == 401


def test_token_endpoint_mints_for_the_requested_audience(pods: dict[str, int]) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{pods['token']}/token",
        data=json.dumps({"audience": "census.default", "lifetimeSeconds": 99999}).encode(),
        headers={
            "content-type": "application/json",
            TOKEN_REQUEST_HEADER[0]: TOKEN_REQUEST_HEADER[1],
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        minted = json.loads(response.read())
    assert minted["expiresAt"] - time.time() <= 600 + 2, "lifetime is capped at the identity's max"
    call = urllib.request.Request(
        f"http://127.0.0.1:{pods['census']}/users/7",
        headers={"authorization": f"Bearer {minted['token']}"},
    )
    with urllib.request.urlopen(call, timeout=10) as response:
        assert json.loads(response.read())["headers"]["x-jwtmesh-subject"] == "herald.default"


def test_the_python_helper_gets_and_reuses_tokens(pods: dict[str, int]) -> None:
    tokens = TokenClient(f"http://127.0.0.1:{pods['token']}/token")
    first = tokens.token("census.default")
    assert tokens.token("census.default") == first, "reused until half its lifetime"
    call = urllib.request.Request(
        f"http://127.0.0.1:{pods['census']}/users/7", headers=tokens.headers("census.default")
    )
    with urllib.request.urlopen(call, timeout=10) as response:
        assert response.status == 200
