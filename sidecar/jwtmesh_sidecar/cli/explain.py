"""`jwtmesh explain` (also `jwtmesh token inspect`): what the sidecar would answer, and why."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from jwtmesh.boundary import EXIT_OK, EXIT_REFUSED, BoundaryCommand, CommandError
from jwtmesh.policy import ALLOW_ALL, Policy, PolicyError, parse_policy
from jwtmesh.tokens.trust import BundleError, TrustBundle
from jwtmesh.tokens.verify import VerifierSettings
from jwtmesh_sidecar.cli.params import NAME, output_option
from jwtmesh_sidecar.cli.sources import bundle_given, bundle_source_options, load_bundle
from jwtmesh_sidecar.config import ConfigError, SidecarConfig, load_config
from jwtmesh_sidecar.decide import TokenSettings
from jwtmesh_sidecar.explain import Question, explain, normalise, token_facts
from jwtmesh_sidecar.trust_store import TrustStore


def _config(path: Path | None) -> SidecarConfig | None:
    if path is None:
        return None
    try:
        return load_config(path)
    except ConfigError as exc:
        raise CommandError(f"--config {path}", str(exc)) from None


def _trust(config: SidecarConfig | None, source: dict[str, Any]) -> TrustBundle | None:
    """--bundle / --namespace, else the configuration's trust sources read as the sidecar
    reads them (bundle files and JWKS URLs), else none (decode only)."""
    if bundle_given(source["bundle_file"], source["namespace"]):
        return load_bundle(**source)
    if config is None or config.identity is None:
        return None
    store = TrustStore(
        list(config.bundle_files),
        list(config.jwks_urls),
        config.verifier_settings(),
        directories=list(config.bundle_dirs),
    )
    try:
        store.load_initial()
    except BundleError as exc:
        raise CommandError("--config trust", str(exc)) from None
    return store.verifier.bundle


def _policy(config: SidecarConfig | None, policy_file: Path | None) -> tuple[Policy, str]:
    path = policy_file or (config.policy_file if config is not None else None)
    if path is None:
        return ALLOW_ALL, "none (every authenticated caller passes)"
    try:
        return parse_policy(path.read_bytes()), str(path)
    except PolicyError as exc:
        raise CommandError(f"--policy {path}", str(exc)) from None


def _settings(
    config: SidecarConfig | None, audience: str | None, overrides: dict[str, Any]
) -> VerifierSettings:
    audience = audience or (config.identity if config is not None else None)
    if audience is None:
        raise CommandError("--audience", "required to verify (or give --config with identity)")
    base = (
        config.verifier_settings() if config is not None and config.identity else None
    ) or VerifierSettings(audience=audience)
    changes = {name: value for name, value in overrides.items() if value is not None}
    return VerifierSettings(
        audience=audience,
        leeway=changes.get("leeway", base.leeway),
        max_lifetime=changes.get("max_lifetime", base.max_lifetime),
        max_token_bytes=base.max_token_bytes,
        require_jti=base.require_jti,
        cache_size=base.cache_size,
    )


def _body(body: str | None, body_file: Path | None) -> bytes:
    if body is not None and body_file is not None:
        raise CommandError("--body", "give --body or --body-file, not both")
    if body_file is not None:
        return body_file.read_bytes()
    return body.encode("utf-8") if body is not None else b""


@click.command("explain", cls=BoundaryCommand)
@click.argument("token_text", metavar="TOKEN")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The sidecar's configuration: its identity, verification settings, token header, "
    "trust sources and policy.",
)
@bundle_source_options
@click.option("--audience", type=NAME, help="The verifier's own identity (default: --config's).")
@click.option(
    "--policy", "policy_file", type=click.Path(dir_okay=False, path_type=Path), help="Policy file."
)
@click.option("--method", default="GET", show_default=True, help="The request's method.")
@click.option("--path", "request_path", default="/", show_default=True, help="The request path.")
@click.option("--body", help="The request body (for a token bound to it, bdy).")
@click.option("--body-file", type=click.Path(dir_okay=False, path_type=Path), help="The body.")
@click.option("--leeway", type=click.FloatRange(0, 300), help="Clock skew allowed (seconds).")
@click.option("--max-lifetime", type=click.FloatRange(1), help="Longest exp - iat accepted.")
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=0),
    help="The Pod's body limit (jwtmesh.io/max-body-bytes; default: --config's, else 0: a "
    "token bound to a body is refused, as on a Pod without body binding).",
)
@click.option("--at", "at_time", type=float, help="Decide as of this Unix time (default: now).")
@output_option
def explain_command(
    token_text: str,
    config_file: Path | None,
    audience: str | None,
    policy_file: Path | None,
    method: str,
    request_path: str,
    body: str | None,
    body_file: Path | None,
    leeway: float | None,
    max_lifetime: float | None,
    max_body_bytes: int | None,
    at_time: float | None,
    output: str,
    **source: Any,
) -> None:
    """Say what the sidecar answers for TOKEN (- reads stdin; `Bearer ...` and trailing
    newlines are fine) on this request, and the facts behind it. Exit 0: allowed,
    1: refused. Without --bundle, --namespace or --config the token is only decoded."""
    if token_text == "-":
        token_text = sys.stdin.read()
    config = _config(config_file)
    now = time.time() if at_time is None else at_time
    question = Question(normalise(token_text), method, request_path, _body(body, body_file))
    token_settings = config.token if config is not None else TokenSettings()
    bundle = _trust(config, source)
    if bundle is None:
        _decode_only(question, audience, now, output)
        return
    settings = _settings(config, audience, {"leeway": leeway, "max_lifetime": max_lifetime})
    policy, policy_source = _policy(config, policy_file)
    if max_body_bytes is None:
        max_body_bytes = config.max_body_bytes if config is not None else 0
    report = explain(
        question, bundle, settings, policy, policy_source, token_settings, now, max_body_bytes
    )
    if output == "json":
        click.echo(json.dumps(report, indent=1, sort_keys=True, default=str))
    else:
        click.echo(render_text(report))
    sys.exit(EXIT_OK if report["decision"]["allowed"] else EXIT_REFUSED)


def _decode_only(question: Question, audience: str | None, now: float, output: str) -> None:
    facts = token_facts(question, TrustBundle({}), VerifierSettings(audience or ""), now)
    if output == "json":
        click.echo(json.dumps({"decision": None, "token": facts}, indent=1, default=str))
    elif "unreadable" in facts or not facts["present"]:
        click.echo(f"FAIL {facts.get('unreadable', 'missing_token: no token given')}")
    else:
        click.echo(render_token(facts))
        click.echo("(not verified: pass --bundle, --namespace or --config to verify)")
    if "unreadable" in facts or not facts["present"]:
        sys.exit(EXIT_REFUSED)


def render_text(report: dict[str, Any]) -> str:
    decision, token, policy = report["decision"], report["token"], report["policy"]
    if decision["allowed"]:
        issuer, subject = token["issuer"]["actual"], token["subject"]["actual"]
        lines = [f"PASS issuer={issuer} subject={subject} kid={token['issuer']['tokenKid']}"]
        if decision["auditedDenial"]:
            lines.append(f"  audit     would deny: {decision['reason']}: {decision['message']}")
    else:
        lines = [f"FAIL {decision['reason']} ({decision['status']}): {decision['message']}"]
    request = report["request"]
    lines.append(
        f"  request   {request['method']} {request['path']} (body {request['bodyBytes']} bytes,"
        f" token in {request['tokenHeader']})"
    )
    lines += _token_lines(token)
    rule = f"; rule {policy['rule']}" if policy.get("rule") else ""
    lines.append(
        f"  policy    {policy['source']} ({policy['mode']}, {policy['rules']} rules){rule}"
    )
    if policy.get("failedRequirement"):
        lines.append(f"  failed    {policy['failedRequirement']}")
    if "header" in token:
        lines.append(render_token(token))
    return "\n".join(lines)


def _token_lines(token: dict[str, Any]) -> list[str]:
    if not token["present"]:
        return ["  token     none"]
    if "unreadable" in token:
        return [f"  token     {token['bytes']} bytes, unreadable: {token['unreadable']}"]
    issuer, times = token["issuer"], token["times"]
    kids = ", ".join(issuer["kids"]) or "none"
    trusted = "trusted" if issuer["trusted"] else "NOT in the trust bundle"
    known = "known" if issuer["kidKnown"] else "NOT a key of this issuer"
    expected_sub = token["subject"]["expected"]
    lines = [
        f"  issuer    {issuer['actual']} ({trusted}; its kids: {kids})",
        f"  kid       {issuer['tokenKid']} ({known})",
        f"  subject   {token['subject']['actual']}"
        + (f" (the issuer is published for {expected_sub})" if expected_sub else ""),
        f"  audience  expected {token['audience']['expected']}; "
        f"the token has {json.dumps(token['audience']['actual'])}",
    ]
    for name in ("exp", "nbf", "iat"):
        moment = times.get(name)
        if moment is not None:
            shown = moment.get("invalid") or f"{moment['at']} ({moment['relative']})"
            lines.append(f"  {name:<9} {shown}")
    lines.append(
        f"  limits    now {times['now']}, leeway {times['leewaySeconds']:g} s, "
        f"lifetime at most {times['maxLifetimeSeconds']:g} s, "
        f"{token['bytes']} of {token['maxTokenBytes']} bytes"
    )
    lines.append(f"  jti       {token['jti']}")
    return lines


def render_token(token: dict[str, Any]) -> str:
    return (
        "header: "
        + json.dumps(token["header"], indent=1, sort_keys=True)
        + "\nclaims: "
        + json.dumps(token["claims"], indent=1, sort_keys=True)
    )
