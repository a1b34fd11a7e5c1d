"""The LRA coordinator's role table (examples/policies/lra-coordinator.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jwtmesh.policy import evaluate, parse_policy

POLICY = parse_policy(
    (Path(__file__).resolve().parents[2] / "examples/policies/lra-coordinator.yaml").read_bytes()
)

CASES = [
    ("client", "GET", "/lra-coordinator", True),
    ("system", "GET", "/lra-coordinator", True),
    ("participant", "GET", "/lra-coordinator", False),
    ("client", "GET", "/lra-coordinator/recovery", False),
    ("system", "GET", "/lra-coordinator/recovery", True),
    ("admin", "GET", "/lra-coordinator/recovery", True),
    ("system", "DELETE", "/lra-coordinator/recovery/42", False),
    ("admin", "DELETE", "/lra-coordinator/recovery/42", True),
    ("client", "POST", "/lra-coordinator/start", True),
    ("system", "POST", "/lra-coordinator/start", False),
    ("client", "GET", "/lra-coordinator/42/status", True),
    ("client", "PUT", "/lra-coordinator/42/close", True),
    ("system", "PUT", "/lra-coordinator/42/close", False),
    ("client", "PUT", "/lra-coordinator/42/cancel", True),
    ("participant", "PUT", "/lra-coordinator/42", True),
    ("client", "PUT", "/lra-coordinator/42", False),
    ("participant", "PUT", "/lra-coordinator/42/remove", True),
    ("admin", "PATCH", "/lra-coordinator/42", False),  # not in the table: default deny
    ("admin", "GET", "/other-service", False),
]


@pytest.mark.parametrize(
    ("role", "method", "path", "allowed"), CASES, ids=[f"{r} {m} {p}" for r, m, p, _ in CASES]
)
def test_each_endpoint_admits_only_its_roles(
    role: str, method: str, path: str, allowed: bool
) -> None:
    result = evaluate(
        POLICY, method=method, path=path, issuer="https://i", subject="s", claims={"roles": [role]}
    )
    assert result.allowed is allowed, result


def test_a_caller_without_roles_is_denied_everywhere() -> None:
    result = evaluate(
        POLICY, method="GET", path="/lra-coordinator", issuer="https://i", subject="s", claims={}
    )
    assert not result.allowed
    assert result.reason == "claim_requirement_failed"
    assert result.rule == "getAllLRAs"
