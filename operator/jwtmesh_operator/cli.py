"""`jwtmesh-operator`: the operator room's own entry point (the image runs it in the chart)."""

from __future__ import annotations

import os

import click

from jwtmesh.addresses import AddressError, split_host_port
from jwtmesh_operator.state import OperatorConfig

# The one home of the operator's defaults is OperatorConfig; flags show them.
_DEFAULTS = OperatorConfig()
_DEFAULT_PUBLIC_URL = _DEFAULTS.public_url


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--kubeconfig",
    type=click.Path(exists=True, dir_okay=False),
    help="Kubeconfig file (default: in-cluster, then ~/.kube/config).",
)
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    help="Watch only this namespace; repeatable (default: the whole cluster).",
)
@click.option(
    "--trust-domain",
    default=_DEFAULTS.trust_domain,
    show_default=True,
    help="Default issuers are https://TRUST_DOMAIN/ns/NAMESPACE/NAME.",
)
@click.option(
    "--bundle-name",
    default=_DEFAULTS.bundle_name,
    show_default=True,
    help="Name of the trust bundle ConfigMap written into each namespace.",
)
@click.option(
    "--bundle-label",
    default=_DEFAULTS.bundle_label,
    show_default=True,
    help="Namespaces carrying this label get the bundle too.",
)
@click.option(
    "--http",
    "http_listen",
    default=f"{_DEFAULTS.http_address}:{_DEFAULTS.http_port}",
    show_default=True,
    metavar="HOST:PORT",
    help="JWKS, OIDC discovery, /healthz, /readyz, /metrics.",
)
@click.option(
    "--public-url",
    default=_DEFAULT_PUBLIC_URL,
    show_default="https://TRUST_DOMAIN",
    help="Origin of the issuers the JWKS and discovery endpoints serve (never the Host header).",
)
@click.option(
    "--peering/--standalone",
    default=True,
    show_default=True,
    help="Peer with other replicas (only one acts) or run alone.",
)
@click.option(
    "--webhook",
    "webhook_address",
    metavar="HOST:PORT",
    help="Serve the sidecar-injection admission webhook here (off by default).",
)
@click.option(
    "--webhook-cert-dir",
    type=click.Path(file_okay=False),
    help="Directory with tls.crt and tls.key for the webhook (default: self-signed).",
)
@click.option(
    "--webhook-url-host", help="With a self-signed certificate: the host the API server calls back."
)
@click.option(
    "--webhook-managed",
    metavar="NAME",
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
def main(
    kubeconfig: str | None,
    namespaces: tuple[str, ...],
    trust_domain: str,
    bundle_name: str,
    bundle_label: str,
    http_listen: str,
    public_url: str,
    peering: bool,
    webhook_address: str | None,
    webhook_cert_dir: str | None,
    webhook_url_host: str | None,
    webhook_managed: str | None,
    network_policies: bool,
    envoy_image: str,
    sidecar_image: str,
) -> None:
    """Run the ServiceIdentity operator (kopf) until SIGTERM."""
    if kubeconfig:
        # Before anything imports `kubernetes`: its default kubeconfig path (which kopf's
        # login uses) is read from the environment once, at import time.
        os.environ["KUBECONFIG"] = kubeconfig
    from jwtmesh_operator.main import run

    try:
        host, port = split_host_port(http_listen)
    except AddressError as exc:
        raise click.BadParameter(str(exc), param_hint="--http") from exc
    config = OperatorConfig(
        trust_domain=trust_domain,
        bundle_name=bundle_name,
        bundle_label=bundle_label,
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
        network_policies=network_policies,
    )
    run(config, list(namespaces), peering)


if __name__ == "__main__":  # pragma: no cover
    main()
