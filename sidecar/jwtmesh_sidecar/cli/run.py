"""`jwtmesh sidecar`: the ext_authz sidecar, configured by a YAML file and/or flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from jwtmesh.boundary import BoundaryCommand, CommandError
from jwtmesh_sidecar.cli.params import HOST_PORT, NAME, HttpUrl, Pair
from jwtmesh_sidecar.config import GRPC_SERVERS, LOG_LEVELS

# Each flag and the configuration key it sets (docs/formats.md lists the same; the keys
# not here are set in the file only). Flags override the file.
FLAG_KEYS: dict[str, tuple[str, ...]] = {
    "identity": ("identity",),
    "grpc_listen": ("listen", "grpc"),
    "unix_socket": ("listen", "unixSocket"),
    "http_listen": ("listen", "http"),
    "metrics": ("listen", "metrics"),
    "token_endpoint": ("listen", "token"),
    "bundle_files": ("trust", "bundleFiles"),
    "bundle_dirs": ("trust", "bundleDirs"),
    "jwks_urls": ("trust", "jwksUrls"),
    "policy_file": ("policyFile",),
    "no_policy": ("noPolicy",),
    "identity_keys": ("identityKeys",),
    "token_header": ("token", "header"),
    "strip_token": ("token", "strip"),
    "max_body_bytes": ("verification", "maxBodyBytes"),
    "egress_audiences": ("egress", "audiences"),
    "grpc_threads": ("grpcThreads",),
    "grpc_server": ("grpcServer",),
    "log_level": ("logLevel",),
}


@click.command(cls=BoundaryCommand)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML configuration (docs/formats.md); flags below override it.",
)
@click.option("--identity", type=NAME, help="This service's own identity: the audience.")
@click.option("--grpc", "grpc_listen", type=HOST_PORT, help="gRPC ext_authz listen address.")
@click.option("--unix-socket", help="gRPC ext_authz unix socket path.")
@click.option("--http", "http_listen", type=HOST_PORT, help="HTTP ext_authz listen address.")
@click.option("--metrics", type=HOST_PORT, help="Metrics, /healthz and /readyz address.")
@click.option("--token-endpoint", type=HOST_PORT, help="Loopback address for POST /token.")
@click.option("--bundle", "bundle_files", multiple=True, help="Trust bundle file; repeatable.")
@click.option(
    "--bundle-dir",
    "bundle_dirs",
    multiple=True,
    help="Mounted trust bundle directory (shards and manifest, or bundle.json); repeatable.",
)
@click.option(
    "--jwks-url",
    "jwks_urls",
    multiple=True,
    type=Pair("ISSUER=URL", right=HttpUrl()),
    help="Remote JWKS for one issuer; repeatable.",
)
@click.option("--policy", "policy_file", help="Policy file (YAML).")
@click.option(
    "--no-policy",
    is_flag=True,
    default=None,
    help="Verify tokens but apply no policy: every authenticated caller is allowed.",
)
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
    help="Envoy buffers request bodies up to this size (body binding); 0: none.",
)
@click.option(
    "--egress-audience",
    "egress_audiences",
    multiple=True,
    type=Pair("HOST=AUDIENCE"),
    help="Egress: mint tokens for AUDIENCE on requests to HOST; repeatable.",
)
@click.option(
    "--grpc-threads", type=click.IntRange(1, 64), help="Threads running gRPC calls (default 2)."
)
@click.option(
    "--grpc-server",
    type=click.Choice(GRPC_SERVERS),
    help="gRPC server: asyncio (HTTP/2 on asyncio, the default), core (grpcio's core layer) "
    "or public (grpcio's grpc.server()).",
)
@click.option(
    "--log-level", type=click.Choice(LOG_LEVELS), help="Least severe log level (default info)."
)
def sidecar(config_file: Path | None, **flags: Any) -> None:
    """Run the ext_authz sidecar (gRPC and/or HTTP) until SIGTERM."""
    from jwtmesh_sidecar.app import run
    from jwtmesh_sidecar.config import ConfigError, config_from_dict, load_config

    overrides = flag_overrides(flags)
    where = f"--config {config_file}" if config_file is not None else None
    try:
        if config_file is not None:
            config = load_config(config_file, overrides)
        else:
            config = config_from_dict(overrides)
    except ConfigError as exc:
        raise CommandError(where, str(exc)) from None
    run(config)


def flag_overrides(flags: dict[str, Any]) -> dict[str, Any]:
    """The flags given, in the configuration file's shape; unset flags are left out."""
    out: dict[str, Any] = {}
    for name, path in FLAG_KEYS.items():
        value = flags.get(name)
        if value is None or value == ():
            continue
        if name == "jwks_urls":
            value = [{"issuer": issuer, "url": url} for issuer, url in value]
        elif name == "egress_audiences":
            value = dict(value)
        elif name in ("bundle_files", "bundle_dirs"):
            value = list(value)
        target = out
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
    return out
