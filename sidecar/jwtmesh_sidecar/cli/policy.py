"""`jwtmesh policy lint`: a policy file checked as the sidecar reads it, plus the mistakes
that parse but do not do what their author meant."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from jwtmesh.boundary import EXIT_OK, EXIT_REFUSED, BoundaryCommand, BoundaryGroup, CommandError
from jwtmesh.policy import PathMatcher, Policy, PolicyError, Rule, parse_policy
from jwtmesh_sidecar.cli.params import output_option


@click.group("policy", cls=BoundaryGroup)
def policy() -> None:
    """Check policy files."""


@dataclass(frozen=True)
class Finding:
    severity: str  # warning: probably a mistake; note: worth knowing
    rule: str | None
    message: str


def _covers(outer: PathMatcher, inner: PathMatcher) -> bool:
    """Every path `inner` matches, `outer` matches too (exact and prefix; globs unknown)."""
    if outer.kind == "prefix" and inner.kind in ("exact", "prefix"):
        return inner.pattern.startswith(outer.pattern)
    if outer.kind == "exact" and inner.kind == "exact":
        return outer.pattern == inner.pattern
    return False


def _shadows(earlier: Rule, later: Rule) -> bool:
    methods = not earlier.methods or (bool(later.methods) and later.methods <= earlier.methods)
    paths = all(any(_covers(o, i) for o in earlier.paths) for i in later.paths)
    return methods and paths


def lint(policy: Policy) -> list[Finding]:
    findings: list[Finding] = []
    if not policy.rules:
        findings.append(Finding("note", None, "no rules: every authenticated caller is allowed"))
    if policy.mode == "audit":
        findings.append(Finding("note", None, "audit mode: would-deny is logged, nothing denied"))
    for index, rule in enumerate(policy.rules):
        for earlier in policy.rules[:index]:
            if _shadows(earlier, rule):
                message = f"never reached: rule {earlier.name!r} before it matches all it matches"
                findings.append(Finding("warning", rule.name, message))
                break
        if not (rule.issuers or rule.subjects or rule.roles or rule.claims):
            findings.append(
                Finding("note", rule.name, "admits every authenticated caller on its paths")
            )
    used = {role for rule in policy.rules for role in rule.roles}
    for role in sorted(set(policy.roles) - used):
        findings.append(Finding("warning", None, f"role {role!r} is defined and never used"))
    return findings


@policy.command("lint", cls=BoundaryCommand)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@output_option
def lint_command(file: Path, output: str) -> None:
    """Check FILE as the sidecar reads it. Exit 0: clean (notes only), 1: warnings,
    2: the sidecar would refuse it."""
    try:
        parsed = parse_policy(file.read_bytes())
    except PolicyError as exc:
        raise CommandError(str(file), str(exc)) from None
    findings = lint(parsed)
    if output == "json":
        document = {"file": str(file), "valid": True, "findings": [asdict(f) for f in findings]}
        click.echo(json.dumps(document, indent=1))
    else:
        for finding in findings:
            where = f"rule {finding.rule!r}: " if finding.rule else ""
            click.echo(f"{file}: {finding.severity}: {where}{finding.message}")
        click.echo(f"{file}: {len(parsed.rules)} rules, {len(parsed.roles)} roles")
    warned = any(finding.severity == "warning" for finding in findings)
    raise SystemExit(EXIT_REFUSED if warned else EXIT_OK)
