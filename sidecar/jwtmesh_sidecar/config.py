"""The sidecar's configuration: a YAML file, overridable by CLI flags. `docs/formats.md`.

The file is read by strict, typed models (`jwtmesh_sidecar.strict`): an unknown or
misspelled key, a value of the wrong type or out of range stops start-up with one line
naming the key. The models are the one home of every default; `SidecarConfig` is what the
rest of the sidecar reads.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import AfterValidator, Field, ValidationError

from jwtmesh.addresses import split_host_port
from jwtmesh.tokens.cache import DEFAULT_CACHE_BYTES
from jwtmesh.tokens.verify import (
    DEFAULT_CACHE_SIZE,
    DEFAULT_LEEWAY,
    DEFAULT_MAX_LIFETIME,
    DEFAULT_MAX_TOKEN_BYTES,
    MAX_LEEWAY,
    VerifierSettings,
)
from jwtmesh_sidecar.decide import TokenSettings
from jwtmesh_sidecar.errors import SidecarError
from jwtmesh_sidecar.strict import StrictModel, one_line
from jwtmesh_sidecar.trust_store import JwksUrl

GRPC_SERVER_ENV = "JWTMESH_GRPC_SERVER"
# asyncio: our HTTP/2 server (grpc_h2.py); core: grpcio's core layer; public: grpc.server().
GrpcServerKind = Literal["asyncio", "core", "public"]
GRPC_SERVERS: tuple[str, ...] = get_args(GrpcServerKind)
LOG_LEVELS = ("debug", "info", "warning", "error")
LogLevel = Literal["debug", "info", "warning", "error"]


class ConfigError(SidecarError, ValueError):
    """The sidecar configuration is unusable."""


def _address(value: str) -> str:
    split_host_port(value)  # AddressError is a ValueError: the model reports it on the key
    return value


def _http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")) or len(value) <= len("https://"):
        raise ValueError(f"{value!r} must be an http(s) URL")
    return value


def _header_name(value: str) -> str:
    if not value or not all(c.isalnum() or c in "-_" for c in value):
        raise ValueError(f"{value!r} is not an HTTP header name")
    return value.lower()


Address = Annotated[str, AfterValidator(_address)]
NonEmpty = Annotated[str, Field(min_length=1)]


class ListenModel(StrictModel):
    grpc: Address | None = None  # Envoy gRPC ext_authz
    unix_socket: NonEmpty | None = None
    http: Address | None = None  # Envoy HTTP ext_authz
    metrics: Address | None = None  # Prometheus, /healthz, /readyz
    token: Address | None = None  # POST /token, loopback only


class JwksUrlModel(StrictModel):
    issuer: NonEmpty
    url: Annotated[str, AfterValidator(_http_url)]
    refresh_seconds: float = Field(default=300.0, ge=1, le=86_400)
    min_refetch_seconds: float = Field(default=10.0, ge=0, le=3_600)
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)


class TrustModel(StrictModel):
    bundle_files: list[NonEmpty] = Field(default_factory=list)
    # Mounted bundle directories: the sharded bundle (manifest + shards), or bundle.json.
    bundle_dirs: list[NonEmpty] = Field(default_factory=list)
    jwks_urls: list[JwksUrlModel] = Field(default_factory=list)
    # /readyz fails once a JWKS URL has not been fetched successfully for this long.
    max_stale_seconds: float = Field(default=900.0, ge=10, le=604_800)


class TokenModel(StrictModel):
    header: Annotated[str, AfterValidator(_header_name)] = "authorization"
    strip: bool = False


class VerificationModel(StrictModel):
    leeway_seconds: float = Field(default=DEFAULT_LEEWAY, ge=0, le=MAX_LEEWAY)
    max_lifetime_seconds: float = Field(default=DEFAULT_MAX_LIFETIME, ge=1, le=86_400)
    max_token_bytes: int = Field(default=DEFAULT_MAX_TOKEN_BYTES, ge=256, le=1 << 20)
    require_jti: bool = True
    cache_size: int = Field(default=DEFAULT_CACHE_SIZE, ge=0, le=10_000_000)
    # The verified-token cache's byte budget (entries are charged what they hold).
    cache_bytes: int = Field(default=DEFAULT_CACHE_BYTES, ge=0, le=1 << 34)
    # Envoy's max_request_bytes for this Pod; 0: no body binding (a `bdy` claim is refused).
    max_body_bytes: int = Field(default=0, ge=0, le=1 << 30)


class EgressModel(StrictModel):
    audiences: dict[NonEmpty, NonEmpty] = Field(default_factory=dict)
    token_lifetime_seconds: float = Field(default=300.0, ge=1, le=86_400)


class SidecarModel(StrictModel):
    """The whole file (docs/formats.md, "Sidecar configuration")."""

    identity: NonEmpty | None = None
    listen: ListenModel = Field(default_factory=ListenModel)
    trust: TrustModel = Field(default_factory=TrustModel)
    policy_file: NonEmpty | None = None
    no_policy: bool = False  # deliberately no policy: every authenticated caller passes
    identity_keys: NonEmpty | None = None
    token: TokenModel = Field(default_factory=TokenModel)
    verification: VerificationModel = Field(default_factory=VerificationModel)
    egress: EgressModel = Field(default_factory=EgressModel)
    grpc_threads: int = Field(default=2, ge=1, le=64)
    grpc_server: GrpcServerKind = "asyncio"
    poll_interval_seconds: float = Field(default=0.2, ge=0.01, le=60)
    log_level: LogLevel = "info"


@dataclass(frozen=True)
class Listen:
    grpc: str | None = None  # host:port
    unix_socket: str | None = None
    http: str | None = None
    metrics: str | None = None
    token: str | None = None  # loopback only


@dataclass(frozen=True)
class SidecarConfig:
    """What the rest of the sidecar reads; built only from a validated `SidecarModel`."""

    identity: str | None  # this service's own audience; None for an egress-only sidecar
    listen: Listen
    bundle_files: tuple[Path, ...]
    bundle_dirs: tuple[Path, ...]
    jwks_urls: tuple[JwksUrl, ...]
    max_stale: float
    policy_file: Path | None
    no_policy: bool
    identity_keys: Path | None
    token: TokenSettings
    leeway: float
    max_lifetime: float
    max_token_bytes: int
    require_jti: bool
    cache_size: int
    cache_bytes: int
    max_body_bytes: int
    egress_audiences: dict[str, str] = field(hash=False)
    egress_token_lifetime: float
    poll_interval: float
    grpc_threads: int
    grpc_server: str  # one of GRPC_SERVERS
    log_level: str

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


def _is_loopback(address: str) -> bool:
    host, _ = split_host_port(address)
    try:
        return ipaddress.ip_address("127.0.0.1" if host == "localhost" else host).is_loopback
    except ValueError:
        return False


def _check(config: SidecarConfig) -> SidecarConfig:
    """What no single key can say: the keys together."""
    listen = config.listen
    verifies = listen.grpc or listen.unix_socket or listen.http
    if not (verifies or listen.token):
        raise ConfigError(
            "listen: nothing to serve: set listen.grpc, listen.unixSocket, listen.http "
            "or listen.token"
        )
    if verifies and config.identity is None and not config.egress_audiences:
        raise ConfigError("identity: required to verify tokens (this service's audience)")
    if config.identity is not None and not (
        config.bundle_files or config.bundle_dirs or config.jwks_urls
    ):
        raise ConfigError(
            "trust: no trust source: set trust.bundleDirs, trust.bundleFiles or trust.jwksUrls"
        )
    if config.identity is not None and config.policy_file is None and not config.no_policy:
        raise ConfigError(
            "policyFile: required to verify inbound requests; to let every authenticated "
            "caller in, say so with noPolicy: true (--no-policy)"
        )
    if config.policy_file is not None and config.no_policy:
        raise ConfigError("noPolicy: true contradicts policyFile; set one of them")
    if (listen.token or config.egress_audiences) and config.identity_keys is None:
        raise ConfigError(
            "identityKeys: listen.token and egress need identityKeys "
            "(the mounted signing-keys.json)"
        )
    if listen.token and not _is_loopback(listen.token):
        raise ConfigError("listen.token: must be a loopback address: only the local app may mint")
    return config


def _grpc_server(document_value: str) -> str:
    # The environment wins, so a whole test run can be pointed at the fallback.
    value = os.environ.get(GRPC_SERVER_ENV) or document_value
    if value not in GRPC_SERVERS:
        expected = ", ".join(GRPC_SERVERS)
        raise ConfigError(f"{GRPC_SERVER_ENV}: expected one of {expected}, got {value!r}")
    return value


def _runtime(model: SidecarModel, base: Path | None) -> SidecarConfig:
    def path(value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() or base is None else base / p

    listen, verification = model.listen, model.verification
    return SidecarConfig(
        identity=model.identity,
        listen=Listen(listen.grpc, listen.unix_socket, listen.http, listen.metrics, listen.token),
        bundle_files=tuple(path(p) for p in model.trust.bundle_files),
        bundle_dirs=tuple(path(p) for p in model.trust.bundle_dirs),
        jwks_urls=tuple(
            JwksUrl(e.issuer, e.url, e.refresh_seconds, e.min_refetch_seconds, e.timeout_seconds)
            for e in model.trust.jwks_urls
        ),
        max_stale=model.trust.max_stale_seconds,
        policy_file=path(model.policy_file) if model.policy_file else None,
        no_policy=model.no_policy,
        identity_keys=path(model.identity_keys) if model.identity_keys else None,
        token=TokenSettings(header=model.token.header, strip=model.token.strip),
        leeway=verification.leeway_seconds,
        max_lifetime=verification.max_lifetime_seconds,
        max_token_bytes=verification.max_token_bytes,
        require_jti=verification.require_jti,
        cache_size=verification.cache_size,
        cache_bytes=verification.cache_bytes,
        max_body_bytes=verification.max_body_bytes,
        egress_audiences=dict(model.egress.audiences),
        egress_token_lifetime=model.egress.token_lifetime_seconds,
        poll_interval=model.poll_interval_seconds,
        grpc_threads=model.grpc_threads,
        grpc_server=_grpc_server(model.grpc_server),
        log_level=model.log_level,
    )


def validate_document(document: Any) -> SidecarModel:
    """The typed document, or ConfigError naming the first bad key."""
    if not isinstance(document, dict):
        raise ConfigError("the configuration must be a mapping of keys (docs/formats.md)")
    try:
        return SidecarModel.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(one_line(exc, SidecarModel)) from None


def config_from_dict(document: dict[str, Any], base: Path | None = None) -> SidecarConfig:
    return _check(_runtime(validate_document(document), base))


def load_config(path: Path, overrides: dict[str, Any] | None = None) -> SidecarConfig:
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read: {str(exc.strerror or exc).lower()}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(document, dict):
        raise ConfigError("the file must hold a YAML mapping of keys (docs/formats.md)")
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
