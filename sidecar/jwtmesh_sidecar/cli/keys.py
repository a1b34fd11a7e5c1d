"""`jwtmesh keys generate`: a key pair outside the operator (tests, demos, other clusters)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from jwtmesh.boundary import EXIT_ENVIRONMENT, BoundaryGroup, CommandError
from jwtmesh.identity import SIGNING_KEYS_FILE, IdentityKeys, ScheduledKey, render_identity
from jwtmesh.tokens.keys import ALGORITHMS, DEFAULT_ALGORITHM, generate_signing_key, jwks
from jwtmesh_sidecar.cli.params import NAME, HttpUrl

# Larger keys take minutes to generate. (The operator, which makes keys for tenants, stops
# at 4096: jwtmesh_operator.spec.MAX_RSA_BITS.)
RSA_BITS = click.IntRange(2048, 8192)
DEFAULT_RSA_BITS = 3072
MAX_LIFETIME = click.IntRange(1, 86_400)


@click.group(cls=BoundaryGroup)
def keys() -> None:
    """Generate signing keys outside the operator (tests, demos, other clusters)."""


@keys.command("generate")
@click.option(
    "--alg",
    type=click.Choice(sorted(ALGORITHMS)),
    default=DEFAULT_ALGORITHM,
    show_default=True,
    help="Signing algorithm; RSA keys are RS256 or PS256.",
)
@click.option(
    "--rsa-bits",
    type=RSA_BITS,
    default=DEFAULT_RSA_BITS,
    show_default=True,
    help="RSA modulus size (RS256/PS256 only), 2048 to 8192.",
)
@click.option(
    "--issuer",
    type=HttpUrl(https_only=True),
    required=True,
    help="The iss claim this identity's tokens carry (an https URL).",
)
@click.option(
    "--subject", type=NAME, required=True, help="The sub claim: this service's own identity."
)
@click.option(
    "--max-lifetime",
    type=MAX_LIFETIME,
    default=900,
    show_default=True,
    help="Longest token lifetime (seconds) a signer may mint.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for signing-keys.json (private, mode 0600) and jwks.json (public); "
    "its parent must exist.",
)
@click.option("--force", is_flag=True, help="Replace an existing signing-keys.json.")
def keys_generate(
    alg: str,
    rsa_bits: int,
    issuer: str,
    subject: str,
    max_lifetime: int,
    out_dir: Path,
    force: bool,
) -> None:
    """Write a new key pair as signing-keys.json (the Secret's format) and jwks.json."""
    if not out_dir.parent.is_dir():
        raise CommandError(f"--out {out_dir}", f"the directory {out_dir.parent} does not exist")
    private = out_dir / SIGNING_KEYS_FILE
    if private.exists() and not force:
        raise CommandError(
            f"--out {out_dir}",
            f"{private} exists; pass --force to replace it (tokens it signed stop verifying)",
        )
    try:
        out_dir.mkdir(exist_ok=True)
    except OSError as exc:
        raise CommandError(f"--out {out_dir}", exc.strerror or str(exc), EXIT_ENVIRONMENT) from exc
    key = generate_signing_key(alg, rsa_bits)
    identity = IdentityKeys(issuer, subject, max_lifetime, (ScheduledKey(key, time.time(), None),))
    private.touch(mode=0o600)
    private.chmod(0o600)
    private.write_bytes(render_identity(identity))
    (out_dir / "jwks.json").write_text(json.dumps(jwks([key.public]), indent=1))
    click.echo(f"kid {key.kid} ({alg}) written to {out_dir}")
