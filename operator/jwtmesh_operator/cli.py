"""`jwtmesh-operator`: the operator room's own entry point (the image runs it in the chart).

Every flag is typed and checked before anything starts; every failure is one line,
`Error: <where>: <what>`, with an exit code from `jwtmesh.boundary` (docs/cli.md).
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from jwtmesh.addresses import AddressError, split_host_port
from jwtmesh.boundary import RootCommand, debug_option
from jwtmesh.shards import SHARD_LIMIT
from jwtmesh_operator.durations import format_duration, parse_duration
from jwtmesh_operator.errors import OperatorError
from jwtmesh_operator.state import LOG_LEVELS, OperatorConfig

if TYPE_CHECKING:  # click >= 8.2 types its ParamType; 8.1 (the oldest allowed) does not
    StrType = click.ParamType[str]
    DictType = click.ParamType[dict[str, Any]]
    FloatType = click.ParamType[float]
else:
    StrType = DictType = FloatType = click.ParamType

# The one home of the operator's defaults is OperatorConfig; flags show them.
_DEFAULTS = OperatorConfig()
_DEFAULT_PUBLIC_URL = _DEFAULTS.public_url
MIN_SHARD_BYTES = 4096  # room for a few identities per shard
# RFC 1123: a DNS name (the trust domain) and a DNS label (namespaces, object names).
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


class Matching(StrType):
    """A string matching a pattern (a DNS name, a label key, ...)."""

    def __init__(self, pattern: re.Pattern[str], what: str, max_length: int = 253) -> None:
        self._pattern = pattern
        self._what = what
        self._max = max_length
        self.name = what.upper().replace(" ", "_")

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if len(text) > self._max or not self._pattern.match(text):
            self.fail(f"{text!r} is not a {self._what}", param, ctx)
        return text


class Duration(FloatType):
    """A Go-style duration (90s, 10m, 720h), in seconds."""

    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class HostPort(StrType):
    name = "HOST:PORT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            split_host_port(str(value))
        except AddressError as exc:
            self.fail(str(exc), param, ctx)
        return str(value)


class Origin(StrType):
    """An https origin (https://host[:port]), or empty for the default."""

    name = "URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if text == "":
            return text
        parts = urlsplit(text)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.query:
            self.fail(f"{text!r} is not an http(s) URL with a host", param, ctx)
        return text


_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage")


class Resources(DictType):
    """A container's resources as JSON: {"requests": {...}, "limits": {...}}."""

    name = "JSON"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        try:
            document = json.loads(value)
        except ValueError:
            self.fail(f"{value!r} is not JSON", param, ctx)
        if not isinstance(document, dict):
            self.fail("expected an object with requests and/or limits", param, ctx)
        for section, amounts in document.items():
            if section not in ("requests", "limits") or not isinstance(amounts, dict):
                self.fail(f"{section}: expected requests or limits, each an object", param, ctx)
            for resource, amount in amounts.items():
                if resource not in _RESOURCE_NAMES:
                    known = ", ".join(_RESOURCE_NAMES)
                    self.fail(f"{section}.{resource}: expected one of {known}", param, ctx)
                if not _QUANTITY.match(str(amount)):
                    self.fail(f"{section}.{resource}: {amount!r} is not a quantity", param, ctx)
        return document


DNS_NAME = Matching(_DNS_NAME, "DNS name")
NAMESPACE = Matching(_DNS_NAME, "namespace name", 63)
LABEL_KEY = Matching(_LABEL_KEY, "label key")
HOST_PORT = HostPort()
DURATION = Duration()


class KubeconfigError(OperatorError):
    """The kubeconfig cannot be used (read once, before the operator starts)."""


def check_kubeconfig(path: str) -> None:
    """Load it now: kopf would otherwise retry a broken kubeconfig forever."""
    from kubernetes import config

    try:
        config.new_client_from_config(config_file=path)  # type: ignore[no-untyped-call]
    except Exception as exc:  # yaml, ConfigException, OSError, TypeError: all unusable
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise KubeconfigError(f"not a usable kubeconfig: {detail}") from None


def _check_inputs(kubeconfig: str | None, envoy_image: str, sidecar_image: str) -> None:
    for flag, image in (("--envoy-image", envoy_image), ("--sidecar-image", sidecar_image)):
        if not image or any(c.isspace() for c in image):
            raise click.BadParameter(f"{image!r} is not an image reference", param_hint=flag)
    if kubeconfig:
        # Before anything imports `kubernetes`: its default kubeconfig path (which kopf's
        # login uses) is read from the environment once, at import time.
        os.environ["KUBECONFIG"] = kubeconfig
        try:
            check_kubeconfig(kubeconfig)
        except KubeconfigError as exc:
            raise click.BadParameter(str(exc), param_hint="--kubeconfig") from None


@click.command(
    "jwtmesh-operator", cls=RootCommand, context_settings={"help_option_names": ["-h", "--help"]}
)
@debug_option
@click.option(
    "--kubeconfig",
    type=click.Path(exists=True, dir_okay=False),
    help="Kubeconfig file (default: in-cluster, then ~/.kube/config).",
)
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    type=NAMESPACE,
    help="Watch only this namespace; repeatable (default: the whole cluster).",
)
@click.option(
    "--trust-domain",
    type=DNS_NAME,
    default=_DEFAULTS.trust_domain,
    show_default=True,
    help="Default issuers are https://TRUST_DOMAIN/ns/NAMESPACE/NAME.",
)
@click.option(
    "--bundle-name",
    type=DNS_NAME,
    default=_DEFAULTS.bundle_name,
    show_default=True,
    help="Name of the trust bundle ConfigMap written into each namespace.",
)
@click.option(
    "--bundle-label",
    type=LABEL_KEY,
    default=_DEFAULTS.bundle_label,
    show_default=True,
    help="Namespaces carrying this label get the bundle too.",
)
@click.option(
    "--bundle-shard-bytes",
    type=click.IntRange(MIN_SHARD_BYTES, SHARD_LIMIT),
    default=_DEFAULTS.bundle_shard_bytes,
    show_default=True,
    help="The largest shard of the trust bundle; smaller only to test sharding.",
)
@click.option(
    "--bundle-write-rate",
    type=click.IntRange(64 * 1024, None),
    default=_DEFAULTS.bundle_write_rate,
    show_default=True,
    help="Bytes a second the trust bundle's publishes write, on average (every namespace's "
    "copy counts): keeps etcd under its quota between compactions (docs/scaling.md).",
)
@click.option(
    "--min-rotation-period",
    type=DURATION,
    default=format_duration(_DEFAULTS.min_rotation_period),
    show_default=True,
    help="The shortest rotation.period an identity may ask for: each rotation rewrites the "
    "trust bundle in every namespace, so one tenant's fast schedule would spend every "
    "namespace's write budget (docs/scaling.md).",
)
@click.option(
    "--http",
    "http_listen",
    type=HOST_PORT,
    default=f"{_DEFAULTS.http_address}:{_DEFAULTS.http_port}",
    show_default=True,
    help="JWKS, OIDC discovery, /healthz, /readyz, /metrics.",
)
@click.option(
    "--public-url",
    type=Origin(),
    default=_DEFAULT_PUBLIC_URL,
    show_default="https://TRUST_DOMAIN",
    help="Origin of the issuers the JWKS and discovery endpoints serve (never the Host header).",
)
@click.option(
    "--leader-election/--standalone",
    default=True,
    show_default=True,
    help="Elect one acting replica through a Lease (several replicas), or always act alone.",
)
@click.option(
    "--lease-namespace",
    type=DNS_NAME,
    default=lambda: os.environ.get("POD_NAMESPACE") or _DEFAULTS.lease_namespace,
    show_default="$POD_NAMESPACE, else default",
    help="Namespace of the jwtmesh-operator Lease that elects the acting replica.",
)
@click.option(
    "--webhook",
    "webhook_address",
    type=HOST_PORT,
    help="Serve the sidecar-injection admission webhook here (off by default).",
)
@click.option(
    "--webhook-cert-dir",
    type=click.Path(exists=True, file_okay=False),
    help="Directory with tls.crt and tls.key for the webhook (default: self-signed).",
)
@click.option(
    "--webhook-url-host",
    type=DNS_NAME,
    help="With a self-signed certificate: the host the API server calls back.",
)
@click.option(
    "--webhook-managed",
    type=DNS_NAME,
    help="Let the operator create/update this MutatingWebhookConfiguration itself.",
)
@click.option(
    "--network-policies/--no-network-policies",
    default=_DEFAULTS.network_policies,
    show_default=True,
    help="Keep a NetworkPolicy per identity: its Pods admit ingress through Envoy only.",
)
@click.option(
    "--envoy-image",
    default=_DEFAULTS.envoy_image,
    show_default=True,
    help="Envoy image injected into labeled Pods.",
)
@click.option(
    "--sidecar-image",
    default=_DEFAULTS.sidecar_image,
    show_default=True,
    help="jwtmesh image injected into labeled Pods.",
)
@click.option(
    "--sidecar-resources",
    type=Resources(),
    help='Injected jwtmesh containers\' resources, JSON ({"requests": {...}, "limits": {...}}).',
)
@click.option("--envoy-resources", type=Resources(), help="Injected Envoy containers' resources.")
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS),
    default=_DEFAULTS.log_level,
    show_default=True,
    help="Least severe level logged (JSON lines on stderr).",
)
def main(
    kubeconfig: str | None,
    namespaces: tuple[str, ...],
    trust_domain: str,
    bundle_name: str,
    bundle_label: str,
    bundle_shard_bytes: int,
    bundle_write_rate: int,
    min_rotation_period: float,
    http_listen: str,
    public_url: str,
    leader_election: bool,
    lease_namespace: str,
    webhook_address: str | None,
    webhook_cert_dir: str | None,
    webhook_url_host: str | None,
    webhook_managed: str | None,
    network_policies: bool,
    envoy_image: str,
    sidecar_image: str,
    sidecar_resources: dict[str, Any] | None,
    envoy_resources: dict[str, Any] | None,
    log_level: str,
) -> None:
    """Run the ServiceIdentity operator (kopf) until SIGTERM."""
    _check_inputs(kubeconfig, envoy_image, sidecar_image)
    from jwtmesh_operator.main import run

    host, port = split_host_port(http_listen)
    config = OperatorConfig(
        trust_domain=trust_domain,
        bundle_name=bundle_name,
        bundle_label=bundle_label,
        bundle_shard_bytes=bundle_shard_bytes,
        bundle_write_rate=bundle_write_rate,
        min_rotation_period=min_rotation_period,
        http_address=host,
        http_port=port,
        public_url=public_url,
        kubeconfig=kubeconfig,
        envoy_image=envoy_image,
        sidecar_image=sidecar_image,
        webhook_address=webhook_address,
        webhook_cert_dir=webhook_cert_dir,
        webhook_url_host=webhook_url_host,
        webhook_managed=webhook_managed,
        log_level=log_level,
        sidecar_resources=sidecar_resources,
        envoy_resources=envoy_resources,
        network_policies=network_policies,
        lease_namespace=lease_namespace,
    )
    run(config, list(namespaces), leader_election)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="jwtmesh-operator")
