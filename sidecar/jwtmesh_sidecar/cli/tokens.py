"""`jwtmesh token mint`: a token signed with an identity's active key (tests, debugging)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from jwtmesh.boundary import BoundaryGroup, CommandError
from jwtmesh.identity import IdentityError, IdentityKeys, active_key, parse_identity
from jwtmesh.tokens.claims import REGISTERED_CLAIMS
from jwtmesh.tokens.mint import mint_token
from jwtmesh_sidecar.cli.params import NAME, Pair


@click.group(cls=BoundaryGroup)
def token() -> None:
    """Mint and inspect tokens."""


def read_identity(path: Path) -> IdentityKeys:
    try:
        return parse_identity(path.read_bytes())
    except IdentityError as exc:
        raise CommandError(f"--keys {path}", str(exc)) from None


def _extra_claims(identity: IdentityKeys, claims: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    # The claims granted to the identity come with every token, as the sidecar mints them;
    # --claim adds or overrides (a verifier refuses what was not granted: claim_not_granted).
    extra: dict[str, Any] = dict(identity.claims)
    for name, raw in claims:
        if name in REGISTERED_CLAIMS:
            raise CommandError(
                f"--claim {name}", f"{name} is a registered claim jwtmesh sets itself"
            )
        try:
            extra[name] = json.loads(raw)
        except ValueError:
            extra[name] = raw
    return extra


@token.command("mint")
@click.option(
    "--keys",
    "keys_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="signing-keys.json (as mounted from the identity's Secret).",
)
@click.option(
    "--aud",
    "audiences",
    multiple=True,
    required=True,
    type=NAME,
    help="Audience: the identity of the service called; repeat for several.",
)
@click.option(
    "--lifetime",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="Seconds until exp; at most the identity's maxTokenLifetimeSeconds.",
)
@click.option(
    "--claim",
    "claims",
    multiple=True,
    type=Pair("NAME=JSON"),
    help="Extra claim; the value is parsed as JSON, else taken as a string.",
)
@click.option(
    "--body-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Bind the token to this exact request body (the bdy claim).",
)
def token_mint(
    keys_file: Path,
    audiences: tuple[str, ...],
    lifetime: int,
    claims: tuple[tuple[str, str], ...],
    body_file: Path | None,
) -> None:
    """Print a token signed with the identity's currently active key."""
    identity = read_identity(keys_file)
    if lifetime > identity.max_lifetime:
        raise CommandError(
            "--lifetime",
            f"{lifetime} s is more than this identity's maxTokenLifetimeSeconds "
            f"({int(identity.max_lifetime)} s)",
        )
    extra = _extra_claims(identity, claims)
    now = time.time()
    key = active_key(identity, now)
    if key is None:
        raise CommandError(f"--keys {keys_file}", "no key of this identity signs at this moment")
    click.echo(
        mint_token(
            key,
            issuer=identity.issuer,
            subject=identity.subject,
            audience=audiences[0] if len(audiences) == 1 else list(audiences),
            now=now,
            lifetime=lifetime,
            body=body_file.read_bytes() if body_file else None,
            extra_claims=extra,
        )
    )
