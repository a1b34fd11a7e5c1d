"""Where a command reads a trust bundle: a file, or what the operator publishes into a
namespace (its shards and manifest, read and merged as the sidecar does; or the single
ConfigMap where there is no manifest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from jwtmesh.boundary import CommandError
from jwtmesh.cluster import BUNDLE_CONFIGMAP, BUNDLE_KEY, manifest_configmap, shard_configmap
from jwtmesh.shards import MANIFEST_FILE, digest, parse_manifest, shard_file
from jwtmesh.tokens.trust import BundleError, TrustBundle, parse_bundle
from jwtmesh_sidecar.cli.kube import Cluster, cluster_options
from jwtmesh_sidecar.shard_merge import Shard, merge


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
        sharded = cluster.configmap_data(namespace, manifest_configmap(bundle_name))
        if sharded is not None and MANIFEST_FILE in sharded:
            return _sharded(cluster, namespace, bundle_name, sharded[MANIFEST_FILE])
        where = f"configmap {namespace}/{bundle_name}"
        data = cluster.configmap_value(namespace, bundle_name, BUNDLE_KEY)
    else:
        raise CommandError("--bundle", "required: a bundle file, or --namespace for the cluster's")
    try:
        return parse_bundle(data)
    except BundleError as exc:
        raise CommandError(where, str(exc)) from None


def _sharded(cluster: Cluster, namespace: str, bundle_name: str, manifest: bytes) -> TrustBundle:
    """The bundle of the shards the manifest names, as a sidecar would put it in force."""
    where = f"configmap {namespace}/{manifest_configmap(bundle_name)}"
    try:
        named = parse_manifest(manifest)
        shards = {}
        for index in range(named.count):
            where = f"configmap {namespace}/{shard_configmap(bundle_name, index)}"
            data = cluster.configmap_data(namespace, shard_configmap(bundle_name, index)) or {}
            raw = data.get(shard_file(index))
            if raw is not None:
                shards[index] = Shard(digest(raw), parse_bundle(raw))
    except BundleError as exc:
        raise CommandError(where, str(exc)) from None
    merged = merge(named, shards, None)
    if not merged.consistent:
        click.echo(
            f"note: the shards of generation {named.generation} are being written: "
            "showing every shard there is",
            err=True,
        )
    return merged.bundle
