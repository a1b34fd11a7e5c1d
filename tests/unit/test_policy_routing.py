"""The policy matches what apps route on (data-plane hardening, finding 5).

A rule must cover every request an app would send to the handler it protects: HEAD goes
to GET handlers, `;` path parameters are stripped by many servers, many frameworks route
case-insensitively or ignore a trailing slash (in the path or in the rule's pattern), and a
prefix is a run of whole segments.
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


ADMIN_ONLY = [{"claim": "roles", "contains": "admin"}]
UPPER_CASE_RULES = policy_from_dict(
    {
        "rules": [
            {"name": "users", "path": {"exact": "/api/Users"}, "claims": ADMIN_ONLY},
            {"name": "user", "path": {"prefix": "/api/User/"}, "claims": ADMIN_ONLY},
            {"name": "export", "path": {"glob": "/Reports/*/Export"}, "claims": ADMIN_ONLY},
            {"name": "rest", "path": {"prefix": "/"}},
        ]
    }
)

UPPER_CASE_RULE_CASES = [
    # (path, caller, allowed, reason, rule): a rule written in upper case (ASP.NET, Spring)
    # is not skipped by an all-lower-case path that a case-insensitive app routes to it.
    ("/api/Users", READER, False, "claim_requirement_failed", "users"),
    ("/api/Users", ADMIN, True, "allowed", "users"),
    ("/api/users", READER, False, "ambiguous_path", None),
    ("/api/user/7", READER, False, "ambiguous_path", None),
    ("/reports/7/export", READER, False, "ambiguous_path", None),
    ("/Reports/7/Export", ADMIN, True, "allowed", "export"),
    ("/api/orders", READER, True, "allowed", "rest"),  # folded, the same rule
]


@pytest.mark.parametrize(("path", "caller", "allowed", "reason", "rule"), UPPER_CASE_RULE_CASES)
def test_a_rule_in_upper_case_is_read_case_folded_too(
    path: str, caller: Caller, allowed: bool, reason: str, rule: str | None
) -> None:
    result = evaluate(UPPER_CASE_RULES, method="GET", path=path, caller=caller)
    assert (result.allowed, result.reason, result.rule) == (allowed, reason, rule)


def test_only_a_policy_with_upper_case_patterns_reads_lower_case_paths_folded() -> None:
    """The usual all-lower-case policy checks no second reading of a lower-case path."""
    lower = policy_from_dict({"rules": [{"path": {"prefix": "/users"}}, {"path": "/a/*/b"}]})
    assert not lower.upper_case_patterns
    assert UPPER_CASE_RULES.upper_case_patterns
    assert POLICY.upper_case_patterns  # "/Legacy/*/Items"


TRAILING_SLASH_RULES = policy_from_dict(
    {
        "rules": [
            {"name": "home", "path": {"exact": "/"}},
            {"name": "settings", "path": {"exact": "/settings/"}, "claims": ADMIN_ONLY},
            {"name": "orders", "path": {"glob": "/users/*/orders/"}, "claims": ADMIN_ONLY},
            {"name": "files", "path": {"glob": "/files/*"}, "claims": ADMIN_ONLY},
            {"name": "report", "path": {"exact": "/report"}, "claims": ADMIN_ONLY},
            {"name": "rest", "path": {"prefix": "/"}},
        ]
    }
)

TRAILING_SLASH_CASES = [
    # (path, caller, allowed, reason, rule): a trailing slash is insignificant in a pattern
    # and in a path, as many frameworks route `/a/` as `/a`.
    ("/settings", READER, False, "claim_requirement_failed", "settings"),
    ("/settings/", READER, False, "claim_requirement_failed", "settings"),
    ("/settings/", ADMIN, True, "allowed", "settings"),  # was ambiguous: locked out
    ("/settings", ADMIN, True, "allowed", "settings"),
    ("/users/7/orders", READER, False, "claim_requirement_failed", "orders"),
    ("/users/7/orders/", ADMIN, True, "allowed", "orders"),
    ("/report/", READER, False, "claim_requirement_failed", "report"),
    ("/report/", ADMIN, True, "allowed", "report"),
    ("/", READER, True, "allowed", "home"),  # the root stays itself
    ("/x", READER, True, "allowed", "rest"),
    # `*` matches the empty last segment of `/files/`, not `/files`: still two readings.
    ("/files/", ADMIN, False, "ambiguous_path", None),
    ("/files/a/", ADMIN, True, "allowed", "files"),
]


@pytest.mark.parametrize(("path", "caller", "allowed", "reason", "rule"), TRAILING_SLASH_CASES)
def test_a_trailing_slash_changes_no_rule(
    path: str, caller: Caller, allowed: bool, reason: str, rule: str | None
) -> None:
    result = evaluate(TRAILING_SLASH_RULES, method="GET", path=path, caller=caller)
    assert (result.allowed, result.reason, result.rule) == (allowed, reason, rule)


def test_a_path_with_a_trailing_slash_takes_its_rule() -> None:
    assert outcome("GET", "/users/1/") == (True, "allowed", "read-users")
    assert outcome("GET", "/report/") == (True, "allowed", "report")  # was ambiguous_path


# What the policy does not read (docs/formats.md, "Policy"): the guidance works.


def test_a_format_suffix_is_not_under_a_prefix_so_a_glob_names_it() -> None:
    """Rails' `(.:format)` routes `/admin.json` to the `/admin` handler."""
    prefix_only = [{"name": "admin", "path": {"prefix": "/admin"}, "claims": ADMIN_ONLY}]
    rest = [{"name": "rest", "path": {"prefix": "/"}}]
    loose = policy_from_dict({"rules": prefix_only + rest})
    assert evaluate(loose, method="GET", path="/admin.json", caller=READER).rule == "rest"
    suffix = [{"name": "admin-format", "path": {"glob": "/admin.*"}, "claims": ADMIN_ONLY}]
    guarded = policy_from_dict({"rules": prefix_only + suffix + rest})
    result = evaluate(guarded, method="GET", path="/admin.json", caller=READER)
    assert (result.allowed, result.rule) == (False, "admin-format")


def test_a_method_override_is_not_seen_so_a_path_rule_covers_it() -> None:
    """`POST /users/7?_method=DELETE` (or `X-HTTP-Method-Override: DELETE`) is a DELETE to
    Rails, Laravel, Symfony and Express method-override; the policy sees a POST."""
    delete = {"name": "delete", "path": {"prefix": "/users"}, "methods": ["DELETE"]}
    rest = {"name": "rest", "path": {"prefix": "/"}}
    by_method = policy_from_dict({"rules": [{**delete, "claims": ADMIN_ONLY}, rest]})
    override = "/users/7?_method=DELETE"
    assert evaluate(by_method, method="POST", path=override, caller=READER).rule == "rest"
    by_path = policy_from_dict({"rules": [{"path": {"prefix": "/users"}, "claims": ADMIN_ONLY}]})
    result = evaluate(by_path, method="POST", path=override, caller=READER)
    assert result.reason == "claim_requirement_failed"


def test_audit_mode_reports_an_ambiguous_path_and_lets_it_pass() -> None:
    audit = policy_from_dict({"mode": "audit", "rules": [{"path": {"prefix": "/admin"}}]})
    result = evaluate(audit, method="GET", path="/Admin", caller=READER)
    assert (result.allowed, result.audited_denial, result.reason) == (True, True, "ambiguous_path")
