"""Day-two commands that need no cluster: version, completion, bundle show, policy lint,
revoke --dry-run (the cluster ones run in tests/k8s/test_operator.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from jwtmesh.boundary import EXIT_OK, EXIT_REFUSED, EXIT_USAGE
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import IssuerTrust, MeshIdentity, TrustBundle, render_bundle
from jwtmesh_sidecar.cli import main

KEY = generate_signing_key()
ISSUER = "https://jwtmesh.cluster.local/ns/shop/cart"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_version_and_completion() -> None:
    code, output = run("version")
    assert code == 0
    assert output.startswith("jwtmesh ")
    for shell in ("bash", "zsh", "fish"):
        code, output = run("completion", shell)
        assert code == 0
        assert "_JWTMESH_COMPLETE" in output


def test_bundle_show(tmp_path: Path) -> None:
    bundle = TrustBundle(
        {
            ISSUER: IssuerTrust(
                {KEY.kid: KEY.public},
                revoked_jtis={"stolen": 1_900_000_000},
                mesh=MeshIdentity("cart.shop", "shop"),
            )
        }
    )
    (tmp_path / "bundle.json").write_bytes(render_bundle(bundle))
    code, output = run("bundle", "show", "--bundle", str(tmp_path / "bundle.json"))
    assert code == 0
    assert f"  key {KEY.kid} ES256" in output
    assert "  revoked jti stolen (until 2030-03-17T17:46:40Z)" in output
    code, output = run("bundle", "show", "--bundle", str(tmp_path / "bundle.json"), "-o", "json")
    shown = json.loads(output)["issuers"][ISSUER]
    assert shown["subject"] == "cart.shop"
    assert shown["keys"] == [{"kid": KEY.kid, "alg": "ES256"}]


POLICIES = {
    "clean": (
        {"roles": {"r": [{"subject": "a.b"}]}, "rules": [{"path": "/a", "roles": ["r"]}]},
        EXIT_OK,
        [],
    ),
    "shadowed rule and unused role": (
        {
            "roles": {"r": [{"subject": "a.b"}], "spare": [{"namespace": "x"}]},
            "rules": [
                {"name": "all", "paths": [{"prefix": "/api"}], "roles": ["r"]},
                {"name": "users", "path": "/api/users", "methods": ["GET"], "roles": ["r"]},
            ],
        },
        EXIT_REFUSED,
        [
            "warning: rule 'users': never reached: rule 'all' before it matches all it matches",
            "warning: role 'spare' is defined and never used",
        ],
    ),
}


@pytest.mark.parametrize("case", list(POLICIES))
def test_policy_lint(case: str, tmp_path: Path) -> None:
    document, expected_code, lines = POLICIES[case]
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(document))
    code, output = run("policy", "lint", str(tmp_path / "policy.yaml"))
    assert code == expected_code, output
    for line in lines:
        assert f"{tmp_path / 'policy.yaml'}: {line}" in output
    code, output = run("policy", "lint", str(tmp_path / "policy.yaml"), "-o", "json")
    assert json.loads(output)["valid"] is True


def test_policy_lint_refuses_what_the_sidecar_refuses(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text("rules: [{path: /a, roles: [undefined]}]\n")
    code, output = run("policy", "lint", str(tmp_path / "policy.yaml"))
    assert code == EXIT_USAGE
    assert output.startswith(f"Error: policy lint {tmp_path / 'policy.yaml'}: rule ")


def test_revoke_from_a_pasted_token_without_a_cluster() -> None:
    now = time.time()
    token = mint_token(
        KEY, issuer=ISSUER, subject="cart.shop", audience="x.y", now=now, lifetime=300
    )
    code, output = run("revoke", "--token", f"Bearer {token}\n", "--dry-run", "-o", "json")
    assert code == 0, output
    body = json.loads(output)
    assert body["kind"] == "TokenRevocation"
    assert body["metadata"]["namespace"] == "shop"
    assert body["spec"]["issuer"] == ISSUER
    assert body["spec"]["expiresAt"].endswith("Z")
    code, output = run("revoke", "--jti", "abc", "--dry-run")
    assert code == EXIT_USAGE
    assert output.startswith("Error: revoke --jti: needs --identity and --expires-at")
