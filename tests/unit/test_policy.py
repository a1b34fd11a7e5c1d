"""Per-route rules: matching, first match decides, default deny, audit mode, parse errors."""

from __future__ import annotations

import re
from typing import Any

import pytest

from jwtmesh.policy import ALLOW_ALL, Caller, PolicyError, evaluate, parse_policy, policy_from_dict


def decide(
    policy: Any,
    method: str = "GET",
    path: str = "/",
    claims: dict[str, Any] | None = None,
    issuer: str = "https://a",
    subject: str = "herald.a",
    bound: bool = True,  # a mesh identity's sub, bound to its issuer by the bundle
) -> Any:
    caller = Caller(issuer, subject, claims or {}, subject_bound=bound)
    return evaluate(policy, method=method, path=path, caller=caller)


POLICY = policy_from_dict(
    {
        "rules": [
            {"name": "health", "path": {"exact": "/healthz"}},
            {
                "name": "admin",
                "paths": [{"prefix": "/admin/"}],
                "claims": [{"claim": "roles", "contains": "admin"}],
            },
            {
                "name": "orders",
                "paths": [{"glob": "/users/*/orders/**"}],
                "methods": ["GET"],
                "issuers": ["https://a"],
            },
            {
                "name": "tenant",
                "paths": ["/tenant"],
                "claims": [{"claim": "org.tier", "equals": "gold"}],
            },
            {
                "name": "scopes",
                "paths": ["/scoped"],
                "claims": [{"claim": "scp", "allOf": ["read", "write"]}],
            },
            {"name": "only-herald", "paths": ["/notify"], "subjects": ["herald.a"]},
        ]
    }
)

CASES = [
    ("exact match", "GET", "/healthz", {}, {}, True, "allowed"),
    ("exact is not prefix", "GET", "/healthz/x", {}, {}, False, "no_matching_rule"),
    ("prefix with the role", "POST", "/admin/users", {"roles": ["admin"]}, {}, True, "allowed"),
    (
        "prefix without the role",
        "POST",
        "/admin/users",
        {"roles": ["reader"]},
        {},
        False,
        "claim_requirement_failed",
    ),
    ("role as a plain string", "POST", "/admin/users", {"roles": "admin"}, {}, True, "allowed"),
    ("glob * is one segment, ** many", "GET", "/users/7/orders/2026/11", {}, {}, True, "allowed"),
    ("glob * does not cross /", "GET", "/users/7/8/orders/1", {}, {}, False, "no_matching_rule"),
    ("method not listed", "DELETE", "/users/7/orders/1", {}, {}, False, "no_matching_rule"),
    (
        "issuer not allowed",
        "GET",
        "/users/7/orders/1",
        {},
        {"issuer": "https://b"},
        False,
        "issuer_not_allowed",
    ),
    ("dotted claim equals", "GET", "/tenant", {"org": {"tier": "gold"}}, {}, True, "allowed"),
    (
        "dotted claim differs",
        "GET",
        "/tenant",
        {"org": {"tier": "free"}},
        {},
        False,
        "claim_requirement_failed",
    ),
    ("allOf present", "GET", "/scoped", {"scp": ["read", "write", "x"]}, {}, True, "allowed"),
    ("allOf partial", "GET", "/scoped", {"scp": ["read"]}, {}, False, "claim_requirement_failed"),
    ("subject allowed", "GET", "/notify", {}, {}, True, "allowed"),
    (
        "subject refused",
        "GET",
        "/notify",
        {},
        {"subject": "billing.b"},
        False,
        "subject_not_allowed",
    ),
    ("query string ignored", "GET", "/healthz?x=/admin/", {}, {}, True, "allowed"),
    ("dot-dot is ambiguous", "GET", "/healthz/../admin/x", {}, {}, False, "ambiguous_path"),
    ("double slash is ambiguous", "GET", "//admin/x", {}, {}, False, "ambiguous_path"),
    ("encoded slash is ambiguous", "GET", "/admin%2Fx", {}, {}, False, "ambiguous_path"),
    ("default deny", "GET", "/elsewhere", {}, {}, False, "no_matching_rule"),
]


def test_a_subject_named_alone_is_a_mesh_identitys_not_an_idps() -> None:
    """An external issuer may put any sub in its tokens; naming it needs the issuer too."""
    alone = policy_from_dict({"rules": [{"paths": ["/a"], "subjects": ["herald.a"]}]})
    assert decide(alone, path="/a").allowed
    assert decide(alone, path="/a", bound=False).reason == "subject_not_allowed"
    with_issuer = policy_from_dict(
        {"rules": [{"paths": ["/a"], "subjects": ["herald.a"], "issuers": ["https://a"]}]}
    )
    assert decide(with_issuer, path="/a", bound=False).allowed
    roles = policy_from_dict(
        {
            "roles": {
                "r": [{"subject": "herald.a"}],
                "idp": [{"subject": "alice", "issuer": "https://a"}],
            },
            "rules": [{"paths": ["/r"], "roles": ["r"]}, {"paths": ["/i"], "roles": ["idp"]}],
        }
    )
    assert decide(roles, path="/r").allowed
    assert decide(roles, path="/r", bound=False).reason == "role_required"
    assert decide(roles, path="/i", subject="alice", bound=False).allowed


@pytest.mark.parametrize(
    ("name", "method", "path", "claims", "who", "allowed", "reason"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_rules(
    name: str,
    method: str,
    path: str,
    claims: dict[str, Any],
    who: dict[str, str],
    allowed: bool,
    reason: str,
) -> None:
    result = decide(POLICY, method, path, claims, **who)
    assert (result.allowed, result.reason) == (allowed, reason)


def test_no_rules_allows_every_authenticated_caller() -> None:
    assert decide(ALLOW_ALL, path="/anything").allowed
    assert decide(parse_policy(b"rules: []"), path="/x").allowed


def test_first_matching_rule_decides() -> None:
    policy = policy_from_dict(
        {"rules": [{"paths": [{"prefix": "/a"}], "subjects": ["x"]}, {"paths": [{"prefix": "/a"}]}]}
    )
    assert decide(policy, path="/a/b").reason == "subject_not_allowed"


def test_audit_mode_allows_and_reports_the_would_be_denial() -> None:
    policy = policy_from_dict({"mode": "audit", "rules": [{"paths": ["/a"]}]})
    result = decide(policy, path="/b")
    assert result.allowed
    assert result.audited_denial
    assert result.reason == "no_matching_rule"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"mode: strict", "mode must be one of"),
        (b"rules: [{paths: [relative]}]", "paths start with '/'"),
        (b"rules: [{paths: ['/a'], when: x}]", "unknown field"),
        (b"rules: [{methods: [GET]}]", "needs at least one path"),
        (
            b"rules: [{paths: ['/a'], claims: [{claim: roles}]}]",
            "needs equals, contains, anyOf or allOf",
        ),
        (b"rules: [{paths: [{exact: /a, prefix: /b}]}]", "one of exact/prefix/glob"),
        (b"[1, 2", "not valid YAML"),
        (b"- a list", "must be an object"),
        (b"rules: [{paths: ['/a'], claims: [{claim: r, anyOf: admin}]}]", "non-empty list"),
        (b"rules: [{paths: ['/a'], claims: [{claim: r, allOf: [], anyOf: [a]}]}]", "non-empty"),
    ],
)
def test_a_bad_policy_is_refused_with_a_readable_message(document: bytes, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(document)


@pytest.mark.parametrize(
    ("field", "empty", "absent"),
    [
        ("subjects", "[]", "admit any subject"),
        ("issuers", "[]", "admit any trusted issuer"),
        ("methods", "[]", "admit any method"),
        ("roles", "[]", "require no role"),
        ("claims", "[]", "require no claim"),
        ("subjects", "null", "admit any subject"),  # a template that rendered nothing
        ("subjects", "", "admit any subject"),
    ],
)
def test_an_empty_list_is_refused_not_read_as_any(field: str, empty: str, absent: str) -> None:
    """Absent means any; a list generated empty must not mean any too."""
    document = f"roles: {{r: [{{subject: a}}]}}\nrules:\n  - paths: ['/a']\n    {field}: {empty}\n"
    message = f"rules[0].{field} is empty: remove it to {absent}, or name one"
    with pytest.raises(PolicyError, match=re.escape(message)):
        parse_policy(document.encode())


def test_a_role_member_with_an_empty_claims_list_is_refused() -> None:
    """`{claims: []}` names no field that restricts it: it would match every caller."""
    document = {
        "roles": {"admin": [{"claims": []}]},
        "rules": [{"paths": ["/a"], "roles": ["admin"]}],
    }
    with pytest.raises(PolicyError, match=re.escape("roles.admin[0].claims is empty")):
        policy_from_dict(document)


STRICT_CASES = [
    # (requirement, claim value, holds): JSON values compare type for type, deeply.
    ({"equals": True}, True, True),
    ({"equals": True}, 1, False),
    ({"equals": True}, 1.0, False),
    ({"equals": 1}, True, False),
    ({"equals": 1}, 1.0, False),
    ({"equals": 1}, 1, True),
    ({"equals": 0}, False, False),
    ({"equals": "1"}, 1, False),
    ({"contains": True}, [1.0], False),
    ({"contains": True}, [1, True], True),
    ({"anyOf": [1, 2]}, [True], False),
    ({"allOf": [1, 2]}, [1, 2.0], False),
    ({"equals": [1, 2]}, [1.0, 2], False),
    ({"equals": [1, 2]}, [1, 2], True),
    ({"equals": {"level": [1]}}, {"level": [True]}, False),
    ({"equals": {"level": [1]}}, {"level": [1]}, True),
    ({"equals": {"level": [1]}}, {"level": [1], "more": 1}, False),
    ({"contains": [1]}, [[1.0]], False),
    ({"contains": [1]}, [[1]], True),
]


@pytest.mark.parametrize(("requirement", "value", "holds"), STRICT_CASES)
def test_claim_values_compare_strictly_by_json_type(
    requirement: dict[str, Any], value: Any, holds: bool
) -> None:
    policy = policy_from_dict(
        {"rules": [{"paths": ["/a"], "claims": [{"claim": "c", **requirement}]}]}
    )
    assert decide(policy, path="/a", claims={"c": value}).allowed is holds
