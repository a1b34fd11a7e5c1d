"""Per-route caller rules, evaluated after authentication. Pure: no I/O, no clock.

The first rule whose path and method match decides. No rules at all means every
authenticated caller is allowed; once rules exist, a request no rule matches is denied.
In audit mode a would-deny is reported but allowed. `docs/formats.md` specifies the file.

Roles are granted here, by the callee's owner, never by the caller: `roles` binds each role
to members (a subject, a namespace, an issuer, claims), and a rule's `roles` admits a
caller holding any of them. A mesh identity's own token cannot give it a role.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from jwtmesh import reasons
from jwtmesh.errors import JwtmeshError
from jwtmesh.json_values import same_json
from jwtmesh.tokens.verify import VerifiedToken

MODES = ("enforce", "audit")


class PolicyError(JwtmeshError, ValueError):
    """The policy document is unusable; the previous good one must be kept."""


@dataclass(frozen=True)
class ClaimRequirement:
    """`claim` (a dotted path) must hold: equals a value, or contain any/all of some values.
    Values compare as JSON, type for type (`same_json`): `true` is not `1`, `1` is not `1.0`."""

    claim: str
    equals: Any = None
    any_of: tuple[Any, ...] = ()
    all_of: tuple[Any, ...] = ()

    def holds(self, claims: Mapping[str, Any]) -> bool:
        value: Any = claims
        for part in self.claim.split("."):
            if not isinstance(value, Mapping) or part not in value:
                return False
            value = value[part]
        if self.equals is not None:
            return same_json(value, self.equals)
        values = value if isinstance(value, list) else [value]

        def has(wanted: Any) -> bool:
            return any(same_json(item, wanted) for item in values)

        if self.any_of and not any(has(wanted) for wanted in self.any_of):
            return False
        return all(has(wanted) for wanted in self.all_of)


@dataclass(frozen=True)
class PathMatcher:
    """exact: the path itself; prefix: whole segments (`/users` matches `/users` and
    `/users/...`, never `/users-internal`); glob: see `glob_to_regex`. A trailing `/` in a
    pattern changes nothing, as for a prefix: an exact or glob `pattern` is stored without
    it (`_trimmed`) and matches a path with or without one. `fold` compares
    case-insensitively (the second reading `evaluate` checks)."""

    kind: str  # exact | prefix | glob
    pattern: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)
    _folded_regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, path: str, fold: bool = False) -> bool:
        pattern = self.pattern.lower() if fold else self.pattern
        if fold:
            path = path.lower()
        if self.kind == "exact":
            return _trimmed(path) == pattern
        if self.kind == "prefix":
            base = pattern.rstrip("/")
            return not base or path == base or path.startswith(base + "/")
        regex = self._folded_regex if fold else self._regex
        assert regex is not None
        return regex.fullmatch(path) is not None


def _trimmed(path: str) -> str:
    """Without its trailing slash: many frameworks route `/a/` as `/a` (the root stays)."""
    return path[:-1] if len(path) > 1 and path.endswith("/") else path


def glob_to_regex(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """`**` matches across segments, `*` within one segment, `?` one character; a trailing
    `/` is optional (`pattern` comes without one)."""
    out = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] == "*":
            out.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            out.append("[^/]")
            index += 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(out) + "/?", flags)


@dataclass(frozen=True)
class Caller:
    """Who a verified token says is calling (namespace: a mesh identity's, from the bundle).
    `subject_bound`: the bundle binds `subject` to `issuer` (a mesh identity). An external
    issuer (an IdP) may put any `sub` in its tokens, `herald.default` included, so a policy
    names such a subject only together with its issuer."""

    issuer: str
    subject: str
    claims: Mapping[str, Any]
    namespace: str | None = None
    subject_bound: bool = False

    @classmethod
    def of(cls, verified: VerifiedToken) -> Caller:
        """The caller a verified token names, as the bundle vouches for it."""
        return cls(
            verified.issuer,
            verified.subject,
            verified.claims,
            verified.namespace,
            verified.subject_bound,
        )

    def is_subject(self, subjects: frozenset[str] | str, issuer_named: bool) -> bool:
        named = self.subject == subjects if isinstance(subjects, str) else self.subject in subjects
        return named and (self.subject_bound or issuer_named)


@dataclass(frozen=True)
class RoleMember:
    """One way to hold a role: every field given must match the caller."""

    issuer: str | None = None
    subject: str | None = None
    namespace: str | None = None
    claims: tuple[ClaimRequirement, ...] = ()

    def matches(self, caller: Caller) -> bool:
        return (
            (self.issuer is None or caller.issuer == self.issuer)
            and (self.subject is None or caller.is_subject(self.subject, self.issuer is not None))
            and (self.namespace is None or caller.namespace == self.namespace)
            and all(requirement.holds(caller.claims) for requirement in self.claims)
        )


@dataclass(frozen=True)
class Rule:
    name: str
    paths: tuple[PathMatcher, ...]
    methods: frozenset[str] = frozenset()  # empty: any method
    issuers: frozenset[str] = frozenset()  # empty: any trusted issuer
    subjects: frozenset[str] = frozenset()  # empty: any subject
    claims: tuple[ClaimRequirement, ...] = ()
    roles: frozenset[str] = frozenset()  # empty: no role needed; else any one of them

    def matches_route(self, method: str, path: str, fold: bool = False) -> bool:
        # Frameworks answer HEAD with the GET handler: a GET rule covers HEAD too.
        head_as_get = method == "HEAD" and "GET" in self.methods
        if self.methods and method not in self.methods and not head_as_get:
            return False
        return any(matcher.matches(path, fold) for matcher in self.paths)


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...] = ()
    mode: str = "enforce"
    roles: Mapping[str, tuple[RoleMember, ...]] = field(default_factory=dict)
    # Some pattern has upper case, so even an all-lower-case path has a case-folded reading
    # to check; computed once here, so the usual all-lower-case policy pays nothing for it.
    upper_case_patterns: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        upper = any(m.pattern != m.pattern.lower() for rule in self.rules for m in rule.paths)
        object.__setattr__(self, "upper_case_patterns", upper)

    def holds_any(self, caller: Caller, wanted: frozenset[str]) -> bool:
        return any(member.matches(caller) for role in wanted for member in self.roles.get(role, ()))


@dataclass(frozen=True)
class PolicyResult:
    allowed: bool
    reason: str  # "allowed", or a stable denial code
    rule: str | None = None
    audited_denial: bool = False  # audit mode: would have been denied


ALLOW_ALL = Policy()

# `;` starts a path parameter (`/admin;x/users`) that many servers strip before routing.
_AMBIGUOUS_PATH = re.compile(r"(^|/)\.\.?(/|$)|//|%2f|%5c|%2e|\\|;", re.IGNORECASE)


def route_path(path: str) -> str:
    """The path a rule sees: without query string or fragment."""
    return path.split("?", 1)[0].split("#", 1)[0]


def _deny(policy: Policy, reason: str, rule: str | None) -> PolicyResult:
    if policy.mode == "audit":
        return PolicyResult(True, reason, rule, audited_denial=True)
    return PolicyResult(False, reason, rule)


def _first_rule(policy: Policy, method: str, path: str, fold: bool = False) -> Rule | None:
    return next((rule for rule in policy.rules if rule.matches_route(method, path, fold)), None)


def _matching_rule(policy: Policy, method: str, path: str) -> tuple[Rule | None, bool]:
    """(the first rule matching the path as written, whether the path is ambiguous).

    Ambiguous: another reading an app may route by picks a different rule (or none):
    path and patterns case-folded (many frameworks route case-insensitively; needed when
    either has upper case), or the path without its trailing slash (many route `/a/` as
    `/a`; only a glob ending in `*` can still tell them apart)."""
    chosen = _first_rule(policy, method, path)
    paths = list(dict.fromkeys((path, _trimmed(path))))
    readings = [(reading, False) for reading in paths[1:]]
    if policy.upper_case_patterns or path != path.lower():
        readings += [(reading, True) for reading in paths]
    ambiguous = any(
        _first_rule(policy, method, reading, fold) is not chosen for reading, fold in readings
    )
    return chosen, ambiguous


def evaluate(policy: Policy, *, method: str, path: str, caller: Caller) -> PolicyResult:
    if not policy.rules:
        return PolicyResult(True, "allowed")
    path = route_path(path)
    if _AMBIGUOUS_PATH.search(path):
        # Envoy normalises paths before asking us; anything still ambiguous is refused
        # rather than matched in a way the upstream might read differently.
        return _deny(policy, reasons.AMBIGUOUS_PATH.code, None)
    rule, ambiguous = _matching_rule(policy, method.upper(), path)
    if ambiguous:
        return _deny(policy, reasons.AMBIGUOUS_PATH.code, None)
    if rule is not None:
        if rule.issuers and caller.issuer not in rule.issuers:
            return _deny(policy, reasons.ISSUER_NOT_ALLOWED.code, rule.name)
        if rule.subjects and not caller.is_subject(rule.subjects, bool(rule.issuers)):
            return _deny(policy, reasons.SUBJECT_NOT_ALLOWED.code, rule.name)
        if rule.roles and not policy.holds_any(caller, rule.roles):
            return _deny(policy, reasons.ROLE_REQUIRED.code, rule.name)
        if not all(requirement.holds(caller.claims) for requirement in rule.claims):
            return _deny(policy, reasons.CLAIM_REQUIREMENT_FAILED.code, rule.name)
        return PolicyResult(True, "allowed", rule.name)
    return _deny(policy, reasons.NO_MATCHING_RULE.code, None)


# --- parsing -------------------------------------------------------------------------


def _given(document: dict[str, Any], key: str, where: str, absent: str) -> Any:
    """`document[key]`, None when absent. Given but empty (`[]`, or null: a template that
    rendered nothing) is refused: read as absent, it would admit every caller."""
    value = document.get(key)
    if key in document and (value is None or value == []):
        raise PolicyError(f"{where}.{key} is empty: remove it to {absent}, or name one")
    return value


def _strings(document: dict[str, Any], key: str, where: str, absent: str) -> frozenset[str]:
    value = _given(document, key, where, absent)
    if value is None:
        return frozenset()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PolicyError(f"{where}.{key} must be a string or a list of strings")
    return frozenset(value)


def _parse_path(value: Any, where: str) -> PathMatcher:
    if isinstance(value, str):
        value = {"glob": value} if any(c in value for c in "*?") else {"exact": value}
    if not isinstance(value, dict) or len(value) != 1:
        raise PolicyError(f"{where} must be a path string or one of exact/prefix/glob")
    ((kind, pattern),) = value.items()
    if kind not in ("exact", "prefix", "glob") or not isinstance(pattern, str) or not pattern:
        raise PolicyError(f"{where} must be one of exact/prefix/glob with a non-empty pattern")
    if not pattern.startswith("/"):
        raise PolicyError(f"{where}: paths start with '/'")
    if kind == "prefix":
        return PathMatcher(kind, pattern)
    pattern = _trimmed(pattern)  # `{exact: /a/}` covers `/a` too, as a prefix does
    if kind == "exact":
        return PathMatcher(kind, pattern)
    return PathMatcher(kind, pattern, glob_to_regex(pattern), glob_to_regex(pattern, re.IGNORECASE))


def _values(value: dict[str, Any], key: str, where: str) -> list[Any]:
    listed = value.get(key, [])
    if key in value and not (isinstance(listed, list) and listed):
        # A string would be read letter by letter; an empty list would be no requirement.
        raise PolicyError(f"{where}.{key} must be a non-empty list of values")
    return list(listed)


def _parse_claim(value: Any, where: str) -> ClaimRequirement:
    if not isinstance(value, dict) or not isinstance(value.get("claim"), str):
        raise PolicyError(f"{where} needs a 'claim' name")
    known = {"claim", "equals", "contains", "anyOf", "allOf"}
    unknown = set(value) - known
    if unknown:
        raise PolicyError(f"{where}: unknown field(s) {sorted(unknown)}")
    any_of = _values(value, "anyOf", where)
    if "contains" in value:
        any_of.append(value["contains"])
    requirement = ClaimRequirement(
        claim=value["claim"],
        equals=value.get("equals"),
        any_of=tuple(any_of),
        all_of=tuple(_values(value, "allOf", where)),
    )
    if requirement.equals is None and not requirement.any_of and not requirement.all_of:
        raise PolicyError(f"{where} needs equals, contains, anyOf or allOf")
    return requirement


def _parse_rule(value: Any, index: int) -> Rule:
    where = f"rules[{index}]"
    if not isinstance(value, dict):
        raise PolicyError(f"{where} must be an object")
    known = {"name", "path", "paths", "methods", "issuers", "subjects", "claims", "roles"}
    unknown = set(value) - known
    if unknown:
        raise PolicyError(f"{where}: unknown field(s) {sorted(unknown)}")
    raw_paths = value.get("paths", [])
    if "path" in value:
        raw_paths = [value["path"], *raw_paths]
    if not isinstance(raw_paths, list) or not raw_paths:
        raise PolicyError(f"{where} needs at least one path")
    methods = _strings(value, "methods", where, "admit any method")
    return Rule(
        name=str(value.get("name", where)),
        paths=tuple(_parse_path(p, f"{where}.paths[{i}]") for i, p in enumerate(raw_paths)),
        methods=frozenset(method.upper() for method in methods),
        issuers=_strings(value, "issuers", where, "admit any trusted issuer"),
        subjects=_strings(value, "subjects", where, "admit any subject"),
        claims=_claim_list(value, where),
        roles=_strings(value, "roles", where, "require no role"),
    )


def _claim_list(value: dict[str, Any], where: str) -> tuple[ClaimRequirement, ...]:
    claims = _given(value, "claims", where, "require no claim")
    if claims is None:
        return ()
    if not isinstance(claims, list):
        raise PolicyError(f"{where}.claims must be a list")
    return tuple(_parse_claim(c, f"{where}.claims[{i}]") for i, c in enumerate(claims))


def _parse_member(value: Any, where: str) -> RoleMember:
    if not isinstance(value, dict):
        raise PolicyError(f"{where} must be an object with subject, namespace, issuer or claims")
    unknown = set(value) - {"subject", "namespace", "issuer", "claims"}
    if unknown:
        raise PolicyError(f"{where}: unknown field(s) {sorted(unknown)}")
    if not value:
        raise PolicyError(f"{where} needs subject, namespace, issuer or claims (not all callers)")
    for key in ("subject", "namespace", "issuer"):
        if key in value and not (isinstance(value[key], str) and value[key]):
            raise PolicyError(f"{where}.{key} must be a non-empty string")
    return RoleMember(
        issuer=value.get("issuer"),
        subject=value.get("subject"),
        namespace=value.get("namespace"),
        claims=_claim_list(value, where),
    )


def _parse_roles(value: Any) -> dict[str, tuple[RoleMember, ...]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PolicyError("roles must map each role to a list of members")
    roles = {}
    for role, members in value.items():
        if not isinstance(members, list) or not members:
            raise PolicyError(f"roles.{role} must be a non-empty list of members")
        roles[str(role)] = tuple(
            _parse_member(member, f"roles.{role}[{i}]") for i, member in enumerate(members)
        )
    return roles


def policy_from_dict(document: Any) -> Policy:
    if document is None:
        return ALLOW_ALL
    if not isinstance(document, dict):
        raise PolicyError("a policy must be an object with 'rules'")
    unknown = set(document) - {"mode", "rules", "roles"}
    if unknown:
        raise PolicyError(f"unknown policy field(s) {sorted(unknown)}")
    mode = document.get("mode", "enforce")
    if mode not in MODES:
        raise PolicyError(f"mode must be one of {MODES}")
    rules = document.get("rules", [])
    if not isinstance(rules, list):
        raise PolicyError("rules must be a list")
    parsed = tuple(_parse_rule(rule, i) for i, rule in enumerate(rules))
    roles = _parse_roles(document.get("roles"))
    for rule in parsed:
        undefined = rule.roles - set(roles)
        if undefined:
            # A typo in a role name would otherwise deny silently (or, worse, be "fixed"
            # by defining the role loosely): refuse the policy instead.
            raise PolicyError(f"rule {rule.name!r} names undefined role(s) {sorted(undefined)}")
    return Policy(rules=parsed, mode=mode, roles=roles)


def parse_policy(data: bytes) -> Policy:
    """Parse a policy file (YAML or JSON)."""
    try:
        document = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PolicyError(f"policy is not valid YAML: {exc}") from exc
    return policy_from_dict(document)
