"""The cluster, for the day-two commands (`status`, `rotate`, `revoke`, `bundle show
--namespace`, `explain --namespace`). The `kubernetes` client is imported only when a
command needs the cluster, so the sidecar itself never loads it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from jwtmesh.boundary import EXIT_ENVIRONMENT, EXIT_USAGE, CommandError


def cluster_options(function: Any) -> Any:
    """--kubeconfig and --context, as kubectl reads them (default: $KUBECONFIG, in-cluster)."""
    function = click.option(
        "--context", "kube_context", help="Kubeconfig context (default: the current one)."
    )(function)
    return click.option(
        "--kubeconfig",
        type=click.Path(exists=True, dir_okay=False),
        help="Kubeconfig file (default: $KUBECONFIG or ~/.kube/config, then in-cluster).",
    )(function)


class Cluster:
    """A connection to the API server, made from a kubeconfig (or in-cluster)."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        from kubernetes import client, config

        try:
            if kubeconfig or context:
                api = config.new_client_from_config(  # type: ignore[no-untyped-call]
                    config_file=kubeconfig, context=context
                )
            else:
                try:
                    config.load_kube_config()  # type: ignore[no-untyped-call]
                except (config.ConfigException, OSError):
                    config.load_incluster_config()  # type: ignore[no-untyped-call]
                api = client.ApiClient()
        except (config.ConfigException, OSError, ValueError, TypeError) as exc:
            raise CommandError("--kubeconfig", f"no usable kubeconfig: {exc}", EXIT_USAGE) from None
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    def call(self, what: str, request: Callable[[], Any], missing: str | None = None) -> Any:
        """Run one API request; every failure becomes one line naming `what`."""
        from kubernetes.client.exceptions import ApiException

        try:
            return request()
        except ApiException as exc:
            if exc.status == 404 and missing is not None:
                raise CommandError(what, missing, EXIT_USAGE) from None
            raise CommandError(
                what, f"the API server said {exc.status} {exc.reason}", EXIT_ENVIRONMENT
            ) from None
        except (OSError, ValueError) as exc:
            # urllib3's connection errors are OSErrors (MaxRetryError is a ValueError).
            reason = str(getattr(exc, "reason", None) or exc)
            raise CommandError(
                what, f"cannot reach the API server: {reason}", EXIT_ENVIRONMENT
            ) from None

    def configmap_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """A ConfigMap's data, or None when there is no such ConfigMap."""
        from kubernetes.client.exceptions import ApiException

        def read() -> Any:
            try:
                return self.core.read_namespaced_config_map(name, namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

        found: Any = self.call(f"configmap {namespace}/{name}", read)
        if found is None:
            return None
        return {key: str(value).encode("utf-8") for key, value in (found.data or {}).items()}

    def configmap_value(self, namespace: str, name: str, key: str) -> bytes:
        where = f"configmap {namespace}/{name}"
        found: Any = self.call(
            where,
            lambda: self.core.read_namespaced_config_map(name, namespace),
            missing="not found (is jwtmesh installed, and does this namespace get the bundle?)",
        )
        value = (found.data or {}).get(key)
        if value is None:
            raise CommandError(where, f"has no key {key}")
        return str(value).encode("utf-8")
