"""The examples users copy are valid: every ServiceIdentity parses as the operator reads it,
and every Pod template runs as a ServiceAccount its identity allows."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from jwtmesh_operator.spec import parse_spec
from jwtmesh_operator.tenancy import IdentityRecord, service_account_refusal
from jwtmesh_testing.paths import EXAMPLES

MANIFESTS = sorted(EXAMPLES.glob("*/manifests.yaml"))


def documents(path: Any) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.parent.name)
def test_every_example_identity_parses_and_every_pod_may_use_it(path: Any) -> None:
    docs = documents(path)
    identities = {}
    for doc in docs:
        if doc["kind"] == "ServiceIdentity":
            meta = doc["metadata"]
            parse_spec(meta["namespace"], meta["name"], doc.get("spec") or {}, "jwtmesh.test")
            identities[meta["name"]] = IdentityRecord(
                meta["namespace"],
                meta["name"],
                "uid",
                "",
                service_accounts=tuple((doc.get("spec") or {}).get("serviceAccounts") or ()),
            )
    pods = [d["spec"]["template"] for d in docs if d["kind"] == "Deployment"]
    assert identities
    assert pods
    for template in pods:
        name = template["metadata"]["labels"]["jwtmesh.io/identity"]
        account = template["spec"].get("serviceAccountName", "default")
        assert service_account_refusal(identities[name], account) is None
