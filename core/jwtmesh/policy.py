"""Per-route caller rules, evaluated after authentication. Pure: no I/O, no clock.

The first rule whose path and method match decides. No rules at all means every
authenticated caller is allowed; once rules exist, a request no rule matches is denied.
In audit mode a would-deny is reported but allowed. `docs/formats.md` specifies the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from jwtmesh import reasons
from jwtmesh.errors import JwtmeshError

MODES = ("enforce", "audit")


class PolicyError(JwtmeshError, ValueError):
    """The policy document is unusable; the previous good one must be kept."""


@dataclass(frozen=True)
class ClaimRequirement:
    """`claim` (a dotted path) must hold: equals a value, or contain any/all of some values."""

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
            return bool(value == self.equals)
        values = value if isinstance(value, list) else [value]
        if self.any_of and not any(wanted in values for wanted in self.any_of):
            return False
        return all(wanted in values for wanted in self.all_of)


@dataclass(frozen=True)
class PathMatcher:
    kind: str  # exact | prefix | glob
    pattern: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.pattern
        if self.kind == "prefix":
            return path.startswith(self.pattern)
        assert self._regex is not None
        return self._regex.fullmatch(path) is not None


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """`**` matches across segments, `*` within one segment, `?` one character."""
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
    return re.compile("".join(out))


@dataclass(frozen=True)
class Rule:
    name: str
    paths: tuple[PathMatcher, ...]
    methods: frozenset[str] = frozenset()  # empty: any method
    issuers: frozenset[str] = frozenset()  # empty: any trusted issuer
    subjects: frozenset[str] = frozenset()  # empty: any subject
    claims: tuple[ClaimRequirement, ...] = ()

    def matches_route(self, method: str, path: str) -> bool:
        if self.methods and method not in self.methods:
            return False
        return any(matcher.matches(path) for matcher in self.paths)


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...] = ()
    mode: str = "enforce"


@dataclass(frozen=True)
class PolicyResult:
    allowed: bool
    reason: str  # "allowed", or a stable denial code
    rule: str | None = None
    audited_denial: bool = False  # audit mode: would have been denied


ALLOW_ALL = Policy()

_AMBIGUOUS_PATH = re.compile(r"(^|/)\.\.?(/|$)|//|%2f|%5c|%2e|\\", re.IGNORECASE)


def route_path(path: str) -> str:
    """The path a rule sees: without query string or fragment."""
    return path.split("?", 1)[0].split("#", 1)[0]


def _deny(policy: Policy, reason: str, rule: str | None) -> PolicyResult:
    if policy.mode == "audit":
        return PolicyResult(True, reason, rule, audited_denial=True)
    return PolicyResult(False, reason, rule)


def evaluate(
    policy: Policy,
    *,
    method: str,
    path: str,
    issuer: str,
    subject: str,
    claims: Mapping[str, Any],
) -> PolicyResult:
    if not policy.rules:
        return PolicyResult(True, "allowed")
    path = route_path(path)
    if _AMBIGUOUS_PATH.search(path):
        # Envoy normalises paths before asking us; anything still ambiguous is refused
        # rather than matched in a way the upstream might read differently.
        return _deny(policy, reasons.AMBIGUOUS_PATH.code, None)
    method = method.upper()
    for rule in policy.rules:
        if not rule.matches_route(method, path):
            continue
        if rule.issuers and issuer not in rule.issuers:
            return _deny(policy, reasons.ISSUER_NOT_ALLOWED.code, rule.name)
        if rule.subjects and subject not in rule.subjects:
            return _deny(policy, reasons.SUBJECT_NOT_ALLOWED.code, rule.name)
        if not all(requirement.holds(claims) for requirement in rule.claims):
            return _deny(policy, reasons.CLAIM_REQUIREMENT_FAILED.code, rule.name)
        return PolicyResult(True, "allowed", rule.name)
    return _deny(policy, reasons.NO_MATCHING_RULE.code, None)


# --- parsing -------------------------------------------------------------------------


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PolicyError(f"{where} must be a string or a list of strings")
    return tuple(value)


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
    regex = glob_to_regex(pattern) if kind == "glob" else None
    return PathMatcher(kind, pattern, regex)


def _parse_claim(value: Any, where: str) -> ClaimRequirement:
    if not isinstance(value, dict) or not isinstance(value.get("claim"), str):
        raise PolicyError(f"{where} needs a 'claim' name")
    known = {"claim", "equals", "contains", "anyOf", "allOf"}
    unknown = set(value) - known
    if unknown:
        raise PolicyError(f"{where}: unknown field(s) {sorted(unknown)}")
    any_of = list(value.get("anyOf", []))
    if "contains" in value:
        any_of.append(value["contains"])
    requirement = ClaimRequirement(
        claim=value["claim"],
        equals=value.get("equals"),
        any_of=tuple(any_of),
        all_of=tuple(value.get("allOf", [])),
    )
    if requirement.equals is None and not requirement.any_of and not requirement.all_of:
        raise PolicyError(f"{where} needs equals, contains, anyOf or allOf")
    return requirement


def _parse_rule(value: Any, index: int) -> Rule:
    where = f"rules[{index}]"
    if not isinstance(value, dict):
        raise PolicyError(f"{where} must be an object")
    known = {"name", "path", "paths", "methods", "issuers", "subjects", "claims"}
    unknown = set(value) - known
    if unknown:
        raise PolicyError(f"{where}: unknown field(s) {sorted(unknown)}")
    raw_paths = value.get("paths", [])
    if "path" in value:
        raw_paths = [value["path"], *raw_paths]
    if not isinstance(raw_paths, list) or not raw_paths:
        raise PolicyError(f"{where} needs at least one path")
    raw_claims = value.get("claims", [])
    if not isinstance(raw_claims, list):
        raise PolicyError(f"{where}.claims must be a list")
    return Rule(
        name=str(value.get("name", where)),
        paths=tuple(_parse_path(p, f"{where}.paths[{i}]") for i, p in enumerate(raw_paths)),
        methods=frozenset(
            m.upper() for m in _string_list(value.get("methods"), f"{where}.methods")
        ),
        issuers=frozenset(_string_list(value.get("issuers"), f"{where}.issuers")),
        subjects=frozenset(_string_list(value.get("subjects"), f"{where}.subjects")),
        claims=tuple(_parse_claim(c, f"{where}.claims[{i}]") for i, c in enumerate(raw_claims)),
    )


def policy_from_dict(document: Any) -> Policy:
    if document is None:
        return ALLOW_ALL
    if not isinstance(document, dict):
        raise PolicyError("a policy must be an object with 'rules'")
    unknown = set(document) - {"mode", "rules"}
    if unknown:
        raise PolicyError(f"unknown policy field(s) {sorted(unknown)}")
    mode = document.get("mode", "enforce")
    if mode not in MODES:
        raise PolicyError(f"mode must be one of {MODES}")
    rules = document.get("rules", [])
    if not isinstance(rules, list):
        raise PolicyError("rules must be a list")
    return Policy(rules=tuple(_parse_rule(rule, i) for i, rule in enumerate(rules)), mode=mode)


def parse_policy(data: bytes) -> Policy:
    """Parse a policy file (YAML or JSON)."""
    try:
        document = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PolicyError(f"policy is not valid YAML: {exc}") from exc
    return policy_from_dict(document)
