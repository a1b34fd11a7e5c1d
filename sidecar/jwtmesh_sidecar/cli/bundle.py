"""`jwtmesh bundle build` and `bundle show`: trust bundles by hand and at a glance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from jwtmesh.boundary import EXIT_ENVIRONMENT, BoundaryGroup, CommandError
from jwtmesh.times import rfc3339
from jwtmesh.tokens.keys import PublicKey
from jwtmesh.tokens.trust import (
    BundleError,
    IssuerTrust,
    TrustBundle,
    parse_jwks,
    render_bundle,
)
from jwtmesh_sidecar.cli.params import Pair, output_option
from jwtmesh_sidecar.cli.sources import bundle_source_options, load_bundle


@click.group(cls=BoundaryGroup)
def bundle() -> None:
    """Build trust bundles by hand (the operator publishes them in a cluster) and show them."""


def _read_jwks(issuer: str, path: str) -> dict[str, PublicKey]:
    where = f"--issuer {issuer}={path}"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CommandError(where, str(exc.strerror).lower(), EXIT_ENVIRONMENT) from None
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise CommandError(where, f"not valid JSON: {exc}") from None
    try:
        return parse_jwks(document, "the JWKS")
    except BundleError as exc:
        raise CommandError(where, str(exc)) from None


@bundle.command("build")
@click.option(
    "--issuer",
    "issuers",
    multiple=True,
    required=True,
    type=Pair("ISSUER=JWKS_FILE", last=True),
    help="An issuer and the JWKS file of its public keys; once per issuer.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the bundle (JSON, the format in docs/formats.md).",
)
def bundle_build(issuers: tuple[tuple[str, str], ...], out: Path) -> None:
    """Combine JWKS files into one trust bundle."""
    entries: dict[str, IssuerTrust] = {}
    for issuer, path in issuers:
        if issuer in entries:
            raise CommandError(
                f"--issuer {issuer}", "given twice; put all of its keys in one JWKS file"
            )
        entries[issuer] = IssuerTrust(keys=_read_jwks(issuer, path))
    try:
        out.write_bytes(render_bundle(TrustBundle(entries)))
    except OSError as exc:
        raise CommandError(f"--out {out}", str(exc.strerror).lower(), EXIT_ENVIRONMENT) from None
    click.echo(f"bundle with {len(entries)} issuer(s) written to {out}")


def describe_bundle(bundle: TrustBundle) -> dict[str, Any]:
    """Issuers, their keys (public facts only) and revocations, for people and scripts."""
    issuers: dict[str, Any] = {}
    for issuer in sorted(bundle.issuers):
        trust = bundle.issuers[issuer]
        issuers[issuer] = {
            "subject": trust.mesh.subject if trust.mesh else None,
            "namespace": trust.mesh.namespace if trust.mesh else None,
            "grantedClaims": dict(trust.mesh.granted_claims) if trust.mesh else None,
            "keys": [{"kid": kid, "alg": trust.keys[kid].alg} for kid in sorted(trust.keys)],
            "revokedJtis": {jti: rfc3339(exp) for jti, exp in sorted(trust.revoked_jtis.items())},
            "revokedBefore": rfc3339(trust.revoked_before) if trust.revoked_before else None,
        }
    return {"issuers": issuers, "keyCount": bundle.key_count()}


@bundle.command("show")
@bundle_source_options
@output_option
def bundle_show(output: str, **source: Any) -> None:
    """Show a trust bundle: issuers, subjects, kids, algorithms, revocations."""
    described = describe_bundle(load_bundle(**source))
    if output == "json":
        click.echo(json.dumps(described, indent=1, sort_keys=True))
        return
    for issuer, entry in described["issuers"].items():
        who = f"  subject {entry['subject']}" if entry["subject"] else "  (external issuer)"
        click.echo(f"{issuer}\n{who}")
        for key in entry["keys"]:
            click.echo(f"  key {key['kid']} {key['alg']}")
        for jti, until in entry["revokedJtis"].items():
            click.echo(f"  revoked jti {jti} (until {until})")
        if entry["revokedBefore"]:
            click.echo(f"  revoked: everything issued before {entry['revokedBefore']}")
    click.echo(f"{len(described['issuers'])} issuer(s), {described['keyCount']} key(s)")
