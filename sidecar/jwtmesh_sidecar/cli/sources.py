"""Where a command reads a trust bundle: a file, or the ConfigMap the operator publishes
into a namespace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from jwtmesh.boundary import CommandError
from jwtmesh.cluster import BUNDLE_CONFIGMAP, BUNDLE_KEY
from jwtmesh.tokens.trust import BundleError, TrustBundle, parse_bundle
from jwtmesh_sidecar.cli.kube import Cluster, cluster_options


def bundle_source_options(function: Any) -> Any:
    """--bundle FILE, or --namespace NS (the operator's ConfigMap there)."""
    function = cluster_options(function)
    function = click.option(
        "--bundle-name",
        default=BUNDLE_CONFIGMAP,
        show_default=True,
        help="With --namespace: the trust bundle ConfigMap's name.",
    )(function)
    function = click.option(
        "-n",
        "--namespace",
        help="Read the trust bundle the operator published in this namespace.",
    )(function)
    return click.option(
        "--bundle",
        "bundle_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="A trust bundle file (bundle.json).",
    )(function)


def bundle_given(bundle_file: Path | None, namespace: str | None) -> bool:
    return bundle_file is not None or namespace is not None


def load_bundle(
    bundle_file: Path | None,
    namespace: str | None,
    bundle_name: str,
    kubeconfig: str | None,
    kube_context: str | None,
) -> TrustBundle:
    """The bundle from the file, or from the cluster; exactly one of them."""
    if bundle_file is not None and namespace is not None:
        raise CommandError("--bundle", "give --bundle or --namespace, not both")
    if bundle_file is not None:
        where, data = f"--bundle {bundle_file}", bundle_file.read_bytes()
    elif namespace is not None:
        cluster = Cluster(kubeconfig, kube_context)
        where = f"configmap {namespace}/{bundle_name}"
        data = cluster.configmap_value(namespace, bundle_name, BUNDLE_KEY)
    else:
        raise CommandError("--bundle", "required: a bundle file, or --namespace for the cluster's")
    try:
        return parse_bundle(data)
    except BundleError as exc:
        raise CommandError(where, str(exc)) from None
