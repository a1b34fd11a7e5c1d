"""Day-two commands on the cluster: `status`, `rotate`, `revoke`.

They read and write the operator's resources through the API server (kubeconfig or
in-cluster), under the names in `jwtmesh.cluster`; the operator does the work.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any

import click

from jwtmesh.boundary import BoundaryCommand, CommandError
from jwtmesh.cluster import (
    API_GROUP,
    API_VERSION,
    IDENTITY_PLURAL,
    REVOCATION_KIND,
    REVOCATION_PLURAL,
    ROTATE_ANNOTATION,
)
from jwtmesh.times import relative, rfc3339
from jwtmesh.tokens.errors import TokenError
from jwtmesh.tokens.verify import parse_token
from jwtmesh_sidecar.cli.kube import Cluster, cluster_options
from jwtmesh_sidecar.cli.params import NAME, output_option
from jwtmesh_sidecar.explain import normalise

NAMESPACE_OF_ISSUER = re.compile(r"^https://[^/]+/ns/([a-z0-9]([-a-z0-9]*[a-z0-9])?)/")


def namespace_option(function: Any) -> Any:
    return click.option(
        "-n", "--namespace", default="default", show_default=True, help="The namespace."
    )(function)


def _identity(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = cluster.call(
        f"serviceidentity {namespace}/{name}",
        lambda: cluster.custom.get_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, IDENTITY_PLURAL, name
        ),
        missing="not found",
    )
    return found


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), {})


def _status_lines(identity: dict[str, Any], now: float) -> list[str]:
    meta, status = identity["metadata"], identity.get("status") or {}
    ready = _condition(status, "Ready")
    lines = [
        f"{meta['namespace']}/{meta['name']}: Ready={ready.get('status', 'Unknown')}"
        + (f" ({ready.get('reason')}: {ready.get('message')})" if ready.get("reason") else ""),
        f"  issuer         {status.get('issuer', '-')}",
        f"  audience       {status.get('audience', '-')}",
        f"  active kid     {status.get('activeKid', '-')}",
    ]
    next_rotation = status.get("nextRotation")
    if next_rotation:
        moment = _parse_time(next_rotation)
        lines.append(f"  next rotation  {next_rotation} ({relative(moment, now)})")
    for key in status.get("keys") or []:
        lines.append(
            f"  key {key.get('kid')} {key.get('alg')} {key.get('state'):<8}"
            f" activates {key.get('activatesAt')} retires {key.get('retiresAt') or '-'}"
        )
    for condition in status.get("conditions") or []:
        if condition.get("type") != "Ready":
            lines.append(
                f"  {condition.get('type')}={condition.get('status')} {condition.get('reason', '')}"
            )
    return lines


def _parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@click.command("status", cls=BoundaryCommand)
@click.argument("name", required=False)
@namespace_option
@cluster_options
@output_option
def status_command(
    name: str | None, namespace: str, kubeconfig: str | None, kube_context: str | None, output: str
) -> None:
    """Show an identity's keys, their states, the next rotation and its conditions (all
    identities of the namespace without NAME)."""
    cluster = Cluster(kubeconfig, kube_context)
    if name is not None:
        identities = [_identity(cluster, namespace, name)]
    else:
        listed: Any = cluster.call(
            f"serviceidentities in {namespace}",
            lambda: cluster.custom.list_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, IDENTITY_PLURAL
            ),
        )
        identities = list(listed.get("items", []))
    if output == "json":
        documents = [
            {"namespace": i["metadata"]["namespace"], "name": i["metadata"]["name"]}
            | {"status": i.get("status") or {}}
            for i in identities
        ]
        click.echo(json.dumps(documents[0] if name else documents, indent=1, sort_keys=True))
        return
    now = time.time()
    for identity in identities:
        click.echo("\n".join(_status_lines(identity, now)))
    if not identities:
        click.echo(f"no ServiceIdentity in {namespace}")


@click.command("rotate", cls=BoundaryCommand)
@click.argument("name", required=False)
@click.option(
    "--all",
    "every",
    is_flag=True,
    help="Every identity in the namespace, with one write (the Namespace's annotation; "
    "needs patch on the Namespace).",
)
@namespace_option
@cluster_options
def rotate_command(
    name: str | None,
    every: bool,
    namespace: str,
    kubeconfig: str | None,
    kube_context: str | None,
) -> None:
    """Ask the operator to rotate NAME's key now, or with --all every key in the namespace
    (each new key is still published for prePublish before it signs: no request fails)."""
    if (name is None) == (not every):
        raise CommandError("NAME", "give one identity's NAME, or --all (not both)")
    cluster = Cluster(kubeconfig, kube_context)
    value = str(int(time.time()))
    patch = {"metadata": {"annotations": {ROTATE_ANNOTATION: value}}}
    if name is None:
        cluster.call(
            f"namespace {namespace}",
            lambda: cluster.core.patch_namespace(namespace, patch),
            missing="not found",
        )
        click.echo(
            f"rotation of every identity in {namespace} requested "
            f"(namespace annotation {ROTATE_ANNOTATION}={value})"
        )
        return
    _identity(cluster, namespace, name)  # a clear "not found" before patching
    cluster.call(
        f"serviceidentity {namespace}/{name}",
        lambda: cluster.custom.patch_namespaced_custom_object(
            API_GROUP, API_VERSION, namespace, IDENTITY_PLURAL, name, patch
        ),
    )
    click.echo(f"rotation of {namespace}/{name} requested ({ROTATE_ANNOTATION}={value})")


def _from_token(pasted: str) -> tuple[str, str, float]:
    """(issuer, jti, exp) of a token, read without verifying it."""
    token = normalise(pasted)
    if token is None:
        raise CommandError("--token", "empty")
    try:
        claims = parse_token(token, 1 << 20).claims
    except TokenError as exc:
        raise CommandError("--token", f"{exc.reason}: {exc.message}") from None
    issuer, jti, exp = claims.get("iss"), claims.get("jti"), claims.get("exp")
    if not isinstance(issuer, str) or not isinstance(jti, str) or not jti:
        raise CommandError("--token", "the token has no iss or jti to revoke it by")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise CommandError("--token", "the token has no exp: revoke its issuer's tokens instead")
    return issuer, jti, float(exp)


def revocation(
    token: str | None, jti: str | None, identity: str | None, expires: float | None
) -> dict[str, Any]:
    """The TokenRevocation spec for a token or for a jti of an identity."""
    if (token is None) == (jti is None):
        raise CommandError("--token", "give --token, or --jti with --identity and --expires-at")
    if token is not None:
        issuer, token_jti, exp = _from_token(token)
        return {"issuer": issuer, "jti": token_jti, "expiresAt": rfc3339(exp)}
    if identity is None or expires is None:
        raise CommandError("--jti", "needs --identity and --expires-at (the token's exp)")
    return {"identity": identity, "jti": jti, "expiresAt": rfc3339(expires)}


@click.command("revoke", cls=BoundaryCommand)
@click.option("--token", help="The token to revoke (pasted; `Bearer ...` is fine).")
@click.option("--jti", type=NAME, help="The jti of the token to revoke (with --identity).")
@click.option("--identity", type=NAME, help="With --jti: the ServiceIdentity that issued it.")
@click.option("--expires-at", type=float, help="With --jti: the token's exp (Unix time).")
@click.option("--reason", default="", help="Why (kept on the resource, for people).")
@click.option("-n", "--namespace", help="The namespace (default: the token issuer's).")
@click.option("--dry-run", is_flag=True, help="Print the TokenRevocation, create nothing.")
@cluster_options
@output_option
def revoke_command(
    token: str | None,
    jti: str | None,
    identity: str | None,
    expires_at: float | None,
    reason: str,
    namespace: str | None,
    dry_run: bool,
    kubeconfig: str | None,
    kube_context: str | None,
    output: str,
) -> None:
    """Revoke one token everywhere (a TokenRevocation), from the token itself or its jti."""
    spec = revocation(token, jti, identity, expires_at)
    if namespace is None:
        found = NAMESPACE_OF_ISSUER.match(str(spec.get("issuer", "")))
        if found is None:
            raise CommandError("--namespace", "required (the issuer names no namespace)")
        namespace = found.group(1)
    if reason:
        spec["reason"] = reason
    body: dict[str, Any] = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": REVOCATION_KIND,
        "metadata": {"generateName": "revoke-", "namespace": namespace},
        "spec": spec,
    }
    if not dry_run:
        cluster = Cluster(kubeconfig, kube_context)
        body = cluster.call(
            f"tokenrevocation in {namespace}",
            lambda: cluster.custom.create_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, REVOCATION_PLURAL, body
            ),
        )
    if output == "json":
        click.echo(json.dumps(body, indent=1, sort_keys=True))
    else:
        name = body["metadata"].get("name", "(dry run)")
        click.echo(
            f"{REVOCATION_KIND} {namespace}/{name}: jti {spec['jti']} until {spec['expiresAt']}"
        )
