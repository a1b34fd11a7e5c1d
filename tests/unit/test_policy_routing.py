"""The policy matches what apps route on (data-plane hardening, finding 5).

A rule must cover every request an app would send to the handler it protects: HEAD goes
to GET handlers, `;` path parameters are stripped by many servers, many frameworks route
case-insensitively or ignore a trailing slash, and a prefix is a run of whole segments.
"""

from __future__ import annotations

import pytest

from jwtmesh.policy import Caller, evaluate, policy_from_dict

ADMIN = Caller("https://a", "ops.a", {"roles": ["admin"]})
READER = Caller("https://a", "herald.a", {"roles": ["reader"]})

POLICY = policy_from_dict(
    {
        "rules": [
            {
                "name": "admin",
                "path": {"prefix": "/admin/"},
                "claims": [{"claim": "roles", "contains": "admin"}],
            },
            {"name": "read-users", "path": {"prefix": "/users"}, "methods": ["GET"]},
            {"name": "probe", "path": {"exact": "/probe"}, "methods": ["HEAD"]},
            {"name": "report", "path": {"exact": "/report"}, "methods": ["GET"]},
            {"name": "Legacy", "path": {"glob": "/Legacy/*/Items"}},
            {"name": "public", "path": {"prefix": "/public"}},
        ]
    }
)


def outcome(method: str, path: str, caller: Caller = READER) -> tuple[bool, str, str | None]:
    result = evaluate(POLICY, method=method, path=path, caller=caller)
    return result.allowed, result.reason, result.rule


HEAD_CASES = [
    # (method, path, caller, allowed, reason, rule)
    ("GET", "/admin/users", READER, False, "claim_requirement_failed", "admin"),
    ("HEAD", "/admin/users", READER, False, "claim_requirement_failed", "admin"),
    ("HEAD", "/admin/users", ADMIN, True, "allowed", "admin"),
    ("HEAD", "/users/1", READER, True, "allowed", "read-users"),
    ("HEAD", "/report", READER, True, "allowed", "report"),
    ("HEAD", "/probe", READER, True, "allowed", "probe"),
    ("GET", "/probe", READER, False, "no_matching_rule", None),
    ("POST", "/users/1", READER, False, "no_matching_rule", None),
]


@pytest.mark.parametrize(("method", "path", "caller", "allowed", "reason", "rule"), HEAD_CASES)
def test_head_is_covered_by_get_rules(
    method: str,
    path: str,
    caller: Caller,
    allowed: bool,
    reason: str,
    rule: str | None,
) -> None:
    assert outcome(method, path, caller) == (allowed, reason, rule)


@pytest.mark.parametrize(
    "path",
    ["/admin;x/users", "/admin/users;jsessionid=1", "/;/admin/users", "/users;/1", "/public;x"],
)
def test_a_path_parameter_is_ambiguous_when_rules_exist(path: str) -> None:
    assert outcome("GET", path, ADMIN) == (False, "ambiguous_path", None)
    no_rules = policy_from_dict({"rules": []})
    assert evaluate(no_rules, method="GET", path=path, caller=READER).allowed


PREFIX_CASES = [
    # (path, allowed, reason, rule)
    ("/users", True, "allowed", "read-users"),
    ("/users/", True, "allowed", "read-users"),
    ("/users/1", True, "allowed", "read-users"),
    ("/users-internal/keys", False, "no_matching_rule", None),
    ("/usersX", False, "no_matching_rule", None),
    ("/admin", False, "claim_requirement_failed", "admin"),  # prefix /admin/ is /admin too
    ("/admin/", False, "claim_requirement_failed", "admin"),
    ("/administrators", False, "no_matching_rule", None),
    ("/public", True, "allowed", "public"),
    ("/public/x/y", True, "allowed", "public"),
    ("/publicity", False, "no_matching_rule", None),
]


@pytest.mark.parametrize(("path", "allowed", "reason", "rule"), PREFIX_CASES)
def test_a_prefix_matches_whole_segments(
    path: str, allowed: bool, reason: str, rule: str | None
) -> None:
    assert outcome("GET", path) == (allowed, reason, rule)


def test_the_root_prefix_matches_everything() -> None:
    everything = policy_from_dict({"rules": [{"name": "all", "path": {"prefix": "/"}}]})
    for path in ("/", "/a", "/a/b/", "/A-b"):
        assert evaluate(everything, method="GET", path=path, caller=READER).allowed, path


CASE_CASES = [
    # (path, caller, allowed, reason, rule): matching is case-sensitive, and a path whose
    # case-folded reading picks another rule is ambiguous.
    ("/Admin/users", READER, False, "ambiguous_path", None),
    ("/ADMIN/users", ADMIN, False, "ambiguous_path", None),
    ("/Users/1", READER, False, "ambiguous_path", None),
    ("/PUBLIC/x", READER, False, "ambiguous_path", None),
    ("/users/Ada", READER, True, "allowed", "read-users"),  # the same rule either way
    ("/public/README", READER, True, "allowed", "public"),
    ("/Legacy/7/Items", READER, True, "allowed", "Legacy"),  # patterns fold too
    ("/Elsewhere", READER, False, "no_matching_rule", None),  # no rule either way
]


@pytest.mark.parametrize(("path", "caller", "allowed", "reason", "rule"), CASE_CASES)
def test_case_handling_is_explicit(
    path: str, caller: Caller, allowed: bool, reason: str, rule: str | None
) -> None:
    assert outcome("GET", path, caller) == (allowed, reason, rule)


TRAILING_CASES = [
    # (path, allowed, reason, rule)
    ("/report", True, "allowed", "report"),
    ("/report/", False, "ambiguous_path", None),  # as written: no rule; trimmed: "report"
    ("/users/1/", True, "allowed", "read-users"),
]


@pytest.mark.parametrize(("path", "allowed", "reason", "rule"), TRAILING_CASES)
def test_a_trailing_slash_that_changes_the_rule_is_ambiguous(
    path: str, allowed: bool, reason: str, rule: str | None
) -> None:
    assert outcome("GET", path) == (allowed, reason, rule)


def test_audit_mode_reports_an_ambiguous_path_and_lets_it_pass() -> None:
    audit = policy_from_dict({"mode": "audit", "rules": [{"path": {"prefix": "/admin"}}]})
    result = evaluate(audit, method="GET", path="/Admin", caller=READER)
    assert (result.allowed, result.audited_denial, result.reason) == (True, True, "ambiguous_path")
