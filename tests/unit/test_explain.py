"""`jwtmesh explain` answers exactly what the sidecar answers: over the hostile-token
catalogue and the cases `token inspect` used to get wrong (oversize and empty tokens, a
pasted `Bearer ...` with a newline, a body-bound token), with the facts behind it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import render_bundle
from jwtmesh_sidecar.app import Sidecar
from jwtmesh_sidecar.cli import main
from jwtmesh_sidecar.config import load_config
from jwtmesh_sidecar.decide import CheckInput, Decision
from jwtmesh_testing.hostile import Keys, catalogue

NOW = float(int(time.time()))
KEYS = Keys.generate()
REVOKED, CUTOFF = "stolen", NOW - 200
CASES = catalogue(KEYS, NOW, revoked_jti=REVOKED, cutoff=CUTOFF)
POLICY = {
    # Issuer A is external here (no mesh binding), so its subject is named with it.
    "roles": {"reader": [{"subject": "herald.a", "issuer": KEYS.issuer_a}]},
    "rules": [
        {"name": "read", "paths": [{"prefix": "/read"}], "methods": ["GET"], "roles": ["reader"]},
        {"name": "admin", "paths": [{"prefix": "/admin"}], "subjects": ["root.a"]},
    ],
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Sidecar]:
    workdir = tmp_path_factory.mktemp("explain")
    (workdir / "bundle.json").write_bytes(render_bundle(KEYS.bundle(NOW, REVOKED, CUTOFF)))
    (workdir / "policy.yaml").write_text(yaml.safe_dump(POLICY))
    config_file = workdir / "sidecar.yaml"
    config_file.write_text(
        yaml.safe_dump(
            {
                "identity": KEYS.audience,
                "listen": {"grpc": "127.0.0.1:9"},
                "trust": {"bundleFiles": ["bundle.json"]},
                "policyFile": "policy.yaml",
                "verification": {"maxBodyBytes": 65536},  # a Pod with body binding
            }
        )
    )
    sidecar = Sidecar(load_config(config_file))
    sidecar._load()  # the stores and the DecisionService, without serving
    assert sidecar.service is not None
    sidecar.service._clock = lambda: NOW
    return config_file, sidecar


def sidecar_answer(sidecar: Sidecar, header: str | None, path: str, body: bytes) -> Decision:
    """What Envoy's request gets from the sidecar's DecisionService."""
    assert sidecar.service is not None
    headers = {} if header is None else {"authorization": header}
    return sidecar.service.check(CheckInput("GET", path, "census", headers, body))


def explained(config: Path, pasted: str, *extra: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(
        main, ["explain", pasted, "--config", str(config), "--at", str(NOW), "-o", "json", *extra]
    )
    assert result.exit_code in (0, 1), result.output
    report: dict[str, Any] = json.loads(result.output)
    return result.exit_code, report


def assert_same(decision: Decision, code: int, report: dict[str, Any]) -> None:
    answer = report["decision"]
    assert (answer["status"], answer["reason"], answer["message"]) == (
        decision.status,
        decision.reason,
        decision.message,
    )
    assert code == (0 if decision.allowed else 1)


@pytest.mark.parametrize("case", list(CASES))
def test_explain_equals_the_sidecar_over_the_hostile_catalogue(
    case: str, setup: tuple[Path, Sidecar]
) -> None:
    config, sidecar = setup
    make, reason = CASES[case]
    token = make()
    decision = sidecar_answer(sidecar, f"Bearer {token}", "/read", b"")
    assert decision.reason == reason
    code, report = explained(config, token, "--path", "/read")
    assert_same(decision, code, report)


def _good(lifetime: int = 300, body: bytes | None = None, subject: str = "herald.a") -> str:
    return mint_token(
        KEYS.a_es256,
        issuer=KEYS.issuer_a,
        subject=subject,
        audience=KEYS.audience,
        now=NOW,
        lifetime=lifetime,
        body=body,
    )


EDGES: dict[str, tuple[str | None, str, tuple[str, ...], bytes, str]] = {
    # name: (the header the sidecar gets, what is pasted, explain's flags, body, reason)
    "oversize": ("Bearer " + "a" * 9000, "a" * 9000, (), b"", "token_too_large"),
    "empty": (None, "", (), b"", "missing_token"),
    "bearer and nothing": (None, "Bearer \n", (), b"", "missing_token"),
    "pasted bearer with a newline": (
        "Bearer " + _good(),
        "Bearer " + _good() + "\n",
        (),
        b"",
        "allowed",
    ),
    "a pasted authorization header": (
        "Bearer " + _good(),
        "Authorization: Bearer " + _good(),
        (),
        b"",
        "allowed",
    ),
    "body-bound token, no body": (
        "Bearer " + _good(body=b"{}"),
        _good(body=b"{}"),
        (),
        b"",
        "body_mismatch",
    ),
    "body-bound token, its body": (
        "Bearer " + _good(body=b"{}"),
        _good(body=b"{}"),
        ("--body", "{}"),
        b"{}",
        "allowed",
    ),
    "a role the caller lacks": (
        "Bearer " + _good(),
        _good(),
        ("--path", "/admin"),
        b"",
        "subject_not_allowed",
    ),
}


@pytest.mark.parametrize("case", list(EDGES))
def test_explain_equals_the_sidecar_where_inspect_did_not(
    case: str, setup: tuple[Path, Sidecar]
) -> None:
    config, sidecar = setup
    header, pasted, flags, body, reason = EDGES[case]
    path = flags[1] if flags[:1] == ("--path",) else "/read"
    decision = sidecar_answer(sidecar, header, path, body)
    assert decision.reason == reason
    code, report = explained(config, pasted, "--path", path, *flags)
    assert_same(decision, code, report)


def test_the_facts_name_what_was_expected_and_what_the_token_has(
    setup: tuple[Path, Sidecar],
) -> None:
    config, _ = setup
    token = mint_token(
        KEYS.a_es256,
        issuer=KEYS.issuer_a,
        subject="herald.a",
        audience="billing.b",
        now=NOW - 600,
        lifetime=300,
    )
    code, report = explained(config, token)
    assert code == 1
    assert report["decision"]["reason"] == "token_expired"
    assert "expired at" in report["decision"]["message"]
    facts = report["token"]
    assert facts["audience"] == {"expected": KEYS.audience, "actual": "billing.b"}
    assert facts["issuer"]["kids"] == sorted([KEYS.a_es256.kid, KEYS.a_rsa.kid])
    assert facts["times"]["exp"]["relative"] == "5m ago"
    assert facts["times"]["exp"]["at"].endswith("Z")
    text = CliRunner().invoke(main, ["explain", token, "--config", str(config), "--at", str(NOW)])
    assert text.output.startswith("FAIL token_expired (401): the token expired at ")
    assert f'audience  expected {KEYS.audience}; the token has "billing.b"' in text.output


def test_a_policy_refusal_names_the_rule_and_the_failed_requirement(
    setup: tuple[Path, Sidecar],
) -> None:
    config, _ = setup
    code, report = explained(config, _good(subject="herald.a"), "--path", "/admin")
    assert code == 1
    assert report["policy"]["rule"] == "admin"
    assert report["policy"]["failedRequirement"] == (
        "rule 'admin' requires subject one of [root.a]; the caller is 'herald.a'"
    )


def test_a_subject_named_by_an_external_issuer_is_explained(
    setup: tuple[Path, Sidecar],
) -> None:
    config, _ = setup
    code, report = explained(config, _good(subject="root.a"), "--path", "/admin")
    assert code == 1
    assert report["policy"]["failedRequirement"] == (
        "rule 'admin' requires subject one of [root.a] of a mesh identity; "
        f"{KEYS.issuer_a!r} is not one (name it in issuers)"
    )


def test_without_trust_the_token_is_only_decoded() -> None:
    result = CliRunner().invoke(main, ["token", "inspect", _good()])
    assert result.exit_code == 0
    assert "(not verified" in result.output
    assert '"sub": "herald.a"' in result.output
