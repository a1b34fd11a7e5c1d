"""The LRA coordinator's role table (examples/policies/lra-coordinator.yaml): every endpoint
admits its own role and no other, and roles come from the coordinator's bindings only."""

from __future__ import annotations

from typing import Any

import pytest

from jwtmesh.policy import Caller, evaluate, parse_policy
from jwtmesh_testing.paths import EXAMPLES

POLICY = parse_policy((EXAMPLES / "policies" / "lra-coordinator.yaml").read_bytes())
MESH = "https://jwtmesh.cluster.local/ns/demo/"
SHOP = "https://jwtmesh.cluster.local/ns/shop/"
IDP = "https://idp.example.com/realms/ops"
CALLERS = {
    "client": Caller(MESH + "booking", "booking.demo", {}, "demo", subject_bound=True),
    "client (by namespace)": Caller(
        "https://jwtmesh.cluster.local/ns/shop/cart", "cart.shop", {}, "shop", subject_bound=True
    ),
    "system": Caller(
        MESH + "lra-participant", "lra-participant.demo", {}, "demo", subject_bound=True
    ),
    "admin": Caller(MESH + "lra-ops", "lra-ops.demo", {}, "demo", subject_bound=True),
    "admin (IdP group)": Caller(IDP, "alice", {"groups": ["lra-admins"]}),
}
# Every Coordinator and RecoveryCoordinator endpoint, with the one role it admits.
ENDPOINTS = [
    ("getAllLRAs", "GET", "/lra-coordinator", "client"),
    ("startLRA", "POST", "/lra-coordinator/start", "client"),
    ("getLRAStatus", "GET", "/lra-coordinator/42/status", "client"),
    ("getLRAInfo", "GET", "/lra-coordinator/42", "client"),
    ("renewTimeLimit", "PUT", "/lra-coordinator/42/renew", "client"),
    ("closeLRA", "PUT", "/lra-coordinator/42/close", "client"),
    ("cancelLRA", "PUT", "/lra-coordinator/42/cancel", "client"),
    ("joinLRAViaBody", "PUT", "/lra-coordinator/42", "client"),
    ("leaveLRA", "PUT", "/lra-coordinator/42/remove", "client"),
    ("getNestedLRAStatus", "GET", "/lra-coordinator/nested/7/status", "client"),
    ("completeNestedLRA", "PUT", "/lra-coordinator/nested/7/complete", "system"),
    ("compensateNestedLRA", "PUT", "/lra-coordinator/nested/7/compensate", "system"),
    ("forgetNestedLRA", "PUT", "/lra-coordinator/nested/7/forget", "system"),
    ("getRecoveringLRAs", "GET", "/lra-coordinator/recovery", "admin"),
    ("getFailedLRAs", "GET", "/lra-coordinator/recovery/failed", "admin"),
    ("getCompensator", "GET", "/lra-coordinator/recovery/42/9", "admin"),
    ("replaceCompensator", "PUT", "/lra-coordinator/recovery/42/9", "admin"),
    ("deleteFailedLRA", "DELETE", "/lra-coordinator/recovery/42", "admin"),
]
CASES = [
    (rule, method, path, caller, caller.split(" ")[0] == role)
    for rule, method, path, role in ENDPOINTS
    for caller in CALLERS
]


@pytest.mark.parametrize(
    ("rule", "method", "path", "caller", "allowed"),
    CASES,
    ids=[f"{c} {'may' if a else 'may not'} {r}" for r, _, _, c, a in CASES],
)
def test_each_endpoint_admits_only_its_role(
    rule: str, method: str, path: str, caller: str, allowed: bool
) -> None:
    result = evaluate(POLICY, method=method, path=path, caller=CALLERS[caller])
    assert result.rule == rule
    assert result.allowed is allowed
    assert result.reason == ("allowed" if allowed else "role_required")


@pytest.mark.parametrize(
    "caller",
    [
        Caller(MESH + "intruder", "intruder.demo", {"roles": ["admin"], "groups": ["lra-admins"]}),
        Caller("https://idp.example.com/realms/other", "mallory", {"groups": ["lra-admins"]}),
        Caller(MESH + "booking", "booking.demo", {}, "shop", subject_bound=True),
    ],
    ids=[
        "a mesh caller asserting roles itself",
        "the group from another issuer",
        "sub ≠ namespace",
    ],
)
def test_claims_a_caller_makes_about_itself_give_it_no_role(caller: Caller) -> None:
    for _rule, method, path, _role in ENDPOINTS:
        assert not evaluate(POLICY, method=method, path=path, caller=caller).allowed or (
            caller.subject == "booking.demo"
        )


def test_an_idp_user_whose_sub_is_a_mesh_identitys_holds_none_of_its_roles() -> None:
    """`subject: booking.demo` names the mesh identity; an IdP may issue that sub too."""
    impostor = Caller(IDP, "booking.demo", {})
    for _rule, method, path, _role in ENDPOINTS:
        assert not evaluate(POLICY, method=method, path=path, caller=impostor).allowed, path


def test_anything_not_listed_is_denied() -> None:
    admin: Any = CALLERS["admin"]
    for method, path in [("PATCH", "/lra-coordinator/42"), ("GET", "/other-service")]:
        result = evaluate(POLICY, method=method, path=path, caller=admin)
        assert (result.allowed, result.reason) == (False, "no_matching_rule")
