"""The sidecar's configuration: a YAML file, overridable by CLI flags. `docs/formats.md`."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jwtmesh.addresses import AddressError, split_host_port
from jwtmesh.tokens.cache import DEFAULT_CACHE_BYTES
from jwtmesh.tokens.verify import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_LEEWAY,
    DEFAULT_MAX_LIFETIME,
    DEFAULT_MAX_TOKEN_BYTES,
    VerifierSettings,
)
from jwtmesh_sidecar.decide import TokenSettings
from jwtmesh_sidecar.errors import SidecarError
from jwtmesh_sidecar.trust_store import JwksUrl


class ConfigError(SidecarError, ValueError):
    """The sidecar configuration is unusable."""


@dataclass(frozen=True)
class Listen:
    grpc: str | None = None  # host:port
    unix_socket: str | None = None
    http: str | None = None
    metrics: str | None = None
    token: str | None = None  # loopback only


@dataclass(frozen=True)
class SidecarConfig:
    identity: str | None  # this service's own audience; None for an egress-only sidecar
    listen: Listen
    bundle_files: tuple[Path, ...] = ()
    jwks_urls: tuple[JwksUrl, ...] = ()
    policy_file: Path | None = None
    identity_keys: Path | None = None
    token: TokenSettings = field(default_factory=TokenSettings)
    leeway: float = DEFAULT_LEEWAY
    max_lifetime: float = DEFAULT_MAX_LIFETIME
    max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES
    require_jti: bool = True
    cache_size: int = DEFAULT_CACHE_SIZE
    cache_bytes: int = DEFAULT_CACHE_BYTES  # the verified-token cache's byte budget
    max_body_bytes: int = 0  # Envoy's max_request_bytes; 0: no body binding (`bdy` refused)
    egress_audiences: dict[str, str] = field(default_factory=dict)
    egress_token_lifetime: float = 300.0
    poll_interval: float = 0.2
    grpc_threads: int = 2
    grpc_server: str = "core"  # or "public": grpcio's grpc.server() (grpc_server.py)

    def verifier_settings(self) -> VerifierSettings:
        assert self.identity is not None
        return VerifierSettings(
            audience=self.identity,
            leeway=self.leeway,
            max_lifetime=self.max_lifetime,
            max_token_bytes=self.max_token_bytes,
            require_jti=self.require_jti,
            cache_size=self.cache_size,
            cache_bytes=self.cache_bytes,
        )


def _check(config: SidecarConfig) -> SidecarConfig:
    listen = config.listen
    if not (listen.grpc or listen.unix_socket or listen.http or listen.token):
        raise ConfigError(
            "nothing to serve: set listen.grpc, listen.unixSocket, listen.http or listen.token"
        )
    if config.grpc_threads < 1:
        raise ConfigError("grpcThreads must be at least 1")
    if config.grpc_server not in ("core", "public"):
        raise ConfigError(f"grpcServer must be core or public, not {config.grpc_server!r}")
    verifies = listen.grpc or listen.unix_socket or listen.http
    if verifies and config.identity is None and not config.egress_audiences:
        raise ConfigError("identity (this service's audience) is required to verify tokens")
    for address in (listen.grpc, listen.http, listen.metrics, listen.token):
        if address is not None:
            try:
                split_host_port(address)
            except AddressError as exc:
                raise ConfigError(str(exc)) from exc
    for source in config.jwks_urls:
        if not source.url.startswith(("https://", "http://")):
            raise ConfigError(f"JWKS URL {source.url!r} must be http(s)")
    if config.identity is not None and not (config.bundle_files or config.jwks_urls):
        raise ConfigError("no trust source: set trust.bundleFiles or trust.jwksUrls")
    if (listen.token or config.egress_audiences) and config.identity_keys is None:
        raise ConfigError(
            "listen.token and egress need identityKeys (the mounted signing-keys.json)"
        )
    if listen.token:
        host, _ = split_host_port(listen.token)
        try:
            loopback = ipaddress.ip_address(
                "127.0.0.1" if host == "localhost" else host
            ).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ConfigError(
                "listen.token must be a loopback address: only the local app may mint"
            )
    return config


def config_from_dict(document: dict[str, Any], base: Path | None = None) -> SidecarConfig:
    def path(value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() or base is None else base / p

    listen = document.get("listen", {}) or {}
    trust = document.get("trust", {}) or {}
    token = document.get("token", {}) or {}
    verification = document.get("verification", {}) or {}
    egress = document.get("egress", {}) or {}
    try:
        config = SidecarConfig(
            identity=document.get("identity"),
            listen=Listen(
                grpc=listen.get("grpc"),
                unix_socket=listen.get("unixSocket"),
                http=listen.get("http"),
                metrics=listen.get("metrics"),
                token=listen.get("token"),
            ),
            bundle_files=tuple(path(p) for p in trust.get("bundleFiles", [])),
            jwks_urls=tuple(
                JwksUrl(
                    issuer=entry["issuer"],
                    url=entry["url"],
                    refresh_seconds=float(entry.get("refreshSeconds", 300)),
                    min_refetch_seconds=float(entry.get("minRefetchSeconds", 10)),
                    timeout_seconds=float(entry.get("timeoutSeconds", 5)),
                )
                for entry in trust.get("jwksUrls", [])
            ),
            policy_file=path(document["policyFile"]) if document.get("policyFile") else None,
            identity_keys=path(document["identityKeys"]) if document.get("identityKeys") else None,
            token=TokenSettings(
                header=str(token.get("header", "authorization")).lower(),
                strip=bool(token.get("strip", False)),
            ),
            leeway=float(verification.get("leewaySeconds", DEFAULT_LEEWAY)),
            max_lifetime=float(verification.get("maxLifetimeSeconds", DEFAULT_MAX_LIFETIME)),
            max_token_bytes=int(verification.get("maxTokenBytes", DEFAULT_MAX_TOKEN_BYTES)),
            require_jti=bool(verification.get("requireJti", True)),
            cache_size=int(verification.get("cacheSize", DEFAULT_CACHE_SIZE)),
            cache_bytes=int(verification.get("cacheBytes", DEFAULT_CACHE_BYTES)),
            max_body_bytes=int(verification.get("maxBodyBytes", 0)),
            egress_audiences=dict(egress.get("audiences", {}) or {}),
            egress_token_lifetime=float(egress.get("tokenLifetimeSeconds", 300)),
            poll_interval=float(document.get("pollIntervalSeconds", 0.2)),
            grpc_threads=int(document.get("grpcThreads", 2)),
            # The environment wins, so a whole test run can be pointed at the fallback.
            grpc_server=str(
                os.environ.get("JWTMESH_GRPC_SERVER") or document.get("grpcServer", "core")
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"invalid sidecar configuration: {exc}") from exc
    return _check(config)


def load_config(path: Path, overrides: dict[str, Any] | None = None) -> SidecarConfig:
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"{path} must hold a YAML mapping")
    return config_from_dict(merge(document, overrides or {}), base=path.parent)


def merge(document: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge CLI overrides (already in the file's shape) over the file."""
    merged = dict(document)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged
