"""Why the policy refused a caller, in words: the rule and the requirement that failed.

Pure, like the decision core that calls it: the message of every policy denial (in the
answer, the log and `jwtmesh explain`) comes from here.
"""

from __future__ import annotations

from typing import Any

from jwtmesh import reasons
from jwtmesh.policy import Caller, ClaimRequirement, Policy, PolicyResult, Rule, route_path
from jwtmesh.tokens.claims import listed, shown


def requirement_text(requirement: ClaimRequirement) -> str:
    if requirement.equals is not None:
        return f"claim {requirement.claim} equals {shown(requirement.equals)}"
    parts = []
    if requirement.any_of:
        parts.append(f"contains any of [{listed(requirement.any_of)}]")
    if requirement.all_of:
        parts.append(f"contains all of [{listed(requirement.all_of)}]")
    return f"claim {requirement.claim} " + " and ".join(parts)


def _rule(policy: Policy, name: str | None) -> Rule | None:
    return next((rule for rule in policy.rules if rule.name == name), None)


def failed_requirement(
    policy: Policy, result: PolicyResult, caller: Caller, method: str, path: str
) -> str:
    """The requirement that did not hold, stated with what the caller has."""
    reason = result.reason
    if reason == reasons.NO_MATCHING_RULE.code:
        return f"no rule matches {method.upper()} {shown(route_path(path))}"
    if reason == reasons.AMBIGUOUS_PATH.code:
        readings = "(.., //, %2f, ;, its case, a trailing /)"
        return f"the path {shown(route_path(path))} can be read two ways {readings}"
    rule = _rule(policy, result.rule)
    if rule is None:
        return reasons.reason_for(reason).meaning
    if reason == reasons.ISSUER_NOT_ALLOWED.code:
        return f"issuer one of [{listed(sorted(rule.issuers))}]; the caller's is {caller.issuer!r}"
    if reason == reasons.SUBJECT_NOT_ALLOWED.code:
        wanted = f"subject one of [{listed(sorted(rule.subjects))}]"
        if caller.subject in rule.subjects:  # named, but by an issuer that may say any sub
            return f"{wanted} of a mesh identity; {caller.issuer!r} is not one (name it in issuers)"
        return f"{wanted}; the caller is {caller.subject!r}"
    if reason == reasons.ROLE_REQUIRED.code:
        return f"one of the roles [{listed(sorted(rule.roles))}]; {caller.subject!r} holds none"
    if reason == reasons.CLAIM_REQUIREMENT_FAILED.code:
        failed = next((r for r in rule.claims if not r.holds(caller.claims)), None)
        if failed is not None:
            return f"{requirement_text(failed)}; the caller's is {_claim(caller, failed.claim)}"
    return reasons.reason_for(reason).meaning


def _claim(caller: Caller, dotted: str) -> str:
    value: Any = caller.claims
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return "absent"
        value = value[part]
    return shown(value)


def policy_denial_message(
    policy: Policy, result: PolicyResult, caller: Caller, method: str, path: str
) -> str:
    requirement = failed_requirement(policy, result, caller, method, path)
    return f"rule {result.rule!r} requires {requirement}" if result.rule else requirement
