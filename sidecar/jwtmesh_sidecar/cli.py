"""The `jwtmesh` command line: keys, tokens, trust bundles, and the long-running processes."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from jwtmesh.identity import IdentityKeys, ScheduledKey, active_key, parse_identity, render_identity
from jwtmesh.tokens.errors import TokenError
from jwtmesh.tokens.keys import ALGORITHMS, generate_signing_key, jwks
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle, parse_bundle, parse_jwks, render_bundle
from jwtmesh.tokens.verify import (
    DEFAULT_LEEWAY,
    DEFAULT_MAX_LIFETIME,
    Verifier,
    VerifierSettings,
    parse_token,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """jwtmesh: service-to-service authentication with JSON Web Tokens."""


# --- keys ----------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Generate signing keys outside the operator (tests, demos, other clusters)."""


@keys.command("generate")
@click.option(
    "--alg",
    type=click.Choice(sorted(ALGORITHMS)),
    default="ES256",
    show_default=True,
    help="Signing algorithm; RSA keys are RS256 or PS256.",
)
@click.option(
    "--rsa-bits",
    type=click.IntRange(min=2048),
    default=3072,
    show_default=True,
    help="RSA modulus size (RS256/PS256 only).",
)
@click.option("--issuer", required=True, help="The iss claim this identity's tokens carry.")
@click.option("--subject", required=True, help="The sub claim: this service's own identity.")
@click.option(
    "--max-lifetime",
    type=click.IntRange(min=1),
    default=900,
    show_default=True,
    help="Longest token lifetime (seconds) a signer may mint.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for signing-keys.json (private, mode 0600) and jwks.json (public).",
)
def keys_generate(
    alg: str, rsa_bits: int, issuer: str, subject: str, max_lifetime: int, out_dir: Path
) -> None:
    """Write a new key pair as signing-keys.json (the Secret's format) and jwks.json."""
    key = generate_signing_key(alg, rsa_bits)
    identity = IdentityKeys(issuer, subject, max_lifetime, (ScheduledKey(key, time.time(), None),))
    out_dir.mkdir(parents=True, exist_ok=True)
    private = out_dir / "signing-keys.json"
    private.touch(mode=0o600)
    private.write_bytes(render_identity(identity))
    (out_dir / "jwks.json").write_text(json.dumps(jwks([key.public]), indent=1))
    click.echo(f"kid {key.kid} ({alg}) written to {out_dir}")


# --- trust bundles -------------------------------------------------------------------


@main.group()
def bundle() -> None:
    """Build trust bundles by hand (the operator publishes them in a cluster)."""


@bundle.command("build")
@click.option(
    "--issuer",
    "issuers",
    multiple=True,
    required=True,
    metavar="ISSUER=JWKS_FILE",
    help="An issuer and the JWKS file of its public keys; repeat per issuer.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the bundle (JSON, the format in docs/formats.md).",
)
def bundle_build(issuers: tuple[str, ...], out: Path) -> None:
    """Combine JWKS files into one trust bundle."""
    entries: dict[str, IssuerTrust] = {}
    for item in issuers:
        issuer, sep, path = item.rpartition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not ISSUER=JWKS_FILE", param_hint="--issuer")
        entries[issuer] = IssuerTrust(keys=parse_jwks(json.loads(Path(path).read_text()), path))
    out.write_bytes(render_bundle(TrustBundle(entries)))
    click.echo(f"bundle with {len(entries)} issuer(s) written to {out}")


# --- tokens --------------------------------------------------------------------------


@main.group()
def token() -> None:
    """Mint and inspect tokens."""


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
    help="Audience: the identity of the service called; repeat for several.",
)
@click.option(
    "--lifetime",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    help="Seconds until exp; capped at the identity's maximum lifetime.",
)
@click.option(
    "--claim",
    "claims",
    multiple=True,
    metavar="NAME=JSON",
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
    claims: tuple[str, ...],
    body_file: Path | None,
) -> None:
    """Print a token signed with the identity's currently active key."""
    identity = parse_identity(keys_file.read_bytes())
    now = time.time()
    key = active_key(identity, now)
    if key is None:
        raise click.ClickException("no key of this identity signs at this moment")
    # The claims granted to the identity come with every token, as the sidecar mints them;
    # --claim adds or overrides (a verifier refuses what was not granted: claim_not_granted).
    extra: dict[str, Any] = dict(identity.claims)
    for item in claims:
        name, sep, raw = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--claim")
        try:
            extra[name] = json.loads(raw)
        except ValueError:
            extra[name] = raw
    click.echo(
        mint_token(
            key,
            issuer=identity.issuer,
            subject=identity.subject,
            audience=audiences[0] if len(audiences) == 1 else list(audiences),
            now=now,
            lifetime=min(lifetime, identity.max_lifetime),
            body=body_file.read_bytes() if body_file else None,
            extra_claims=extra,
        )
    )


@token.command("inspect")
@click.argument("token_text", metavar="TOKEN")
@click.option(
    "--bundle",
    "bundle_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Trust bundle to verify against; without it the token is only decoded.",
)
@click.option("--audience", help="The verifier's own identity (required with --bundle).")
@click.option(
    "--leeway", type=float, default=DEFAULT_LEEWAY, show_default=True, help="Clock skew allowed."
)
@click.option(
    "--max-lifetime",
    type=float,
    default=DEFAULT_MAX_LIFETIME,
    show_default=True,
    help="Longest exp - iat the verifier accepts.",
)
@click.option("--at", "at_time", type=float, help="Verify as of this Unix time (default: now).")
def token_inspect(
    token_text: str,
    bundle_file: Path | None,
    audience: str | None,
    leeway: float,
    max_lifetime: float,
    at_time: float | None,
) -> None:
    """Decode TOKEN (use - to read stdin) and say exactly why it would pass or fail."""
    if token_text == "-":
        token_text = sys.stdin.read().strip()
    try:
        parsed = parse_token(token_text, 1 << 20)
    except TokenError as error:
        click.echo(f"FAIL {error.reason}: {error.message}")
        sys.exit(1)
    click.echo("header: " + json.dumps(parsed.header, indent=1, sort_keys=True))
    click.echo("claims: " + json.dumps(parsed.claims, indent=1, sort_keys=True))
    if bundle_file is None:
        click.echo("(not verified: pass --bundle and --audience to verify)")
        return
    if not audience:
        raise click.BadParameter("--audience is required with --bundle", param_hint="--audience")
    settings = VerifierSettings(audience=audience, leeway=leeway, max_lifetime=max_lifetime)
    verifier = Verifier(parse_bundle(bundle_file.read_bytes()), settings)
    try:
        verified = verifier.verify_uncached(token_text, time.time() if at_time is None else at_time)
    except TokenError as error:
        click.echo(f"FAIL {error.reason}: {error.message}")
        sys.exit(1)
    click.echo(f"PASS issuer={verified.issuer} subject={verified.subject} kid={verified.kid}")


# --- processes -----------------------------------------------------------------------


@main.command()
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML configuration (docs/formats.md); flags below override it.",
)
@click.option("--identity", help="This service's own identity: the audience tokens must name.")
@click.option("--grpc", "grpc_listen", metavar="HOST:PORT", help="gRPC ext_authz listen address.")
@click.option("--unix-socket", help="gRPC ext_authz unix socket path.")
@click.option("--http", "http_listen", metavar="HOST:PORT", help="HTTP ext_authz listen address.")
@click.option("--metrics", metavar="HOST:PORT", help="Prometheus metrics listen address.")
@click.option("--token-endpoint", metavar="HOST:PORT", help="Loopback address for POST /token.")
@click.option("--bundle", "bundle_files", multiple=True, help="Trust bundle file; repeatable.")
@click.option(
    "--jwks-url",
    "jwks_urls",
    multiple=True,
    metavar="ISSUER=URL",
    help="Remote JWKS for one issuer; repeatable.",
)
@click.option("--policy", "policy_file", help="Policy file (YAML).")
@click.option("--identity-keys", help="signing-keys.json for outbound tokens.")
@click.option("--token-header", help="Header carrying the token (default: authorization).")
@click.option(
    "--strip-token/--keep-token",
    default=None,
    help="Remove the token before the request reaches the upstream.",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=0),
    help="Envoy buffers request bodies up to this size (body binding); 0: it buffers none.",
)
@click.option(
    "--egress-audience",
    "egress_audiences",
    multiple=True,
    metavar="HOST=AUDIENCE",
    help="Egress: mint tokens for AUDIENCE on requests to HOST; repeatable.",
)
def sidecar(config_file: Path | None, **flags: Any) -> None:
    """Run the ext_authz sidecar (gRPC and/or HTTP) until SIGTERM."""
    from jwtmesh_sidecar.app import StartupError, run
    from jwtmesh_sidecar.config import ConfigError, config_from_dict, load_config

    overrides = _sidecar_overrides(flags)
    try:
        if config_file is not None:
            config = load_config(config_file, overrides)
        else:
            config = config_from_dict(overrides)
        run(config)
    except (ConfigError, StartupError) as exc:
        raise click.ClickException(str(exc)) from exc


def _sidecar_overrides(flags: dict[str, Any]) -> dict[str, Any]:
    """Translate flags into the configuration file's shape; unset flags are left out."""
    out: dict[str, Any] = {}
    listen = {
        key: flags[flag]
        for key, flag in (
            ("grpc", "grpc_listen"),
            ("unixSocket", "unix_socket"),
            ("http", "http_listen"),
            ("metrics", "metrics"),
            ("token", "token_endpoint"),
        )
        if flags.get(flag)
    }
    if listen:
        out["listen"] = listen
    if flags.get("identity"):
        out["identity"] = flags["identity"]
    trust: dict[str, Any] = {}
    if flags.get("bundle_files"):
        trust["bundleFiles"] = list(flags["bundle_files"])
    if flags.get("jwks_urls"):
        trust["jwksUrls"] = [
            {"issuer": item.split("=", 1)[0], "url": item.split("=", 1)[1]}
            for item in flags["jwks_urls"]
        ]
    if trust:
        out["trust"] = trust
    if flags.get("policy_file"):
        out["policyFile"] = flags["policy_file"]
    if flags.get("identity_keys"):
        out["identityKeys"] = flags["identity_keys"]
    token_settings: dict[str, Any] = {}
    if flags.get("token_header"):
        token_settings["header"] = flags["token_header"]
    if flags.get("strip_token") is not None:
        token_settings["strip"] = flags["strip_token"]
    if token_settings:
        out["token"] = token_settings
    if flags.get("max_body_bytes") is not None:
        out["verification"] = {"maxBodyBytes": flags["max_body_bytes"]}
    if flags.get("egress_audiences"):
        out["egress"] = {
            "audiences": dict(item.split("=", 1) for item in flags["egress_audiences"])
        }
    return out


if __name__ == "__main__":  # pragma: no cover
    main()
