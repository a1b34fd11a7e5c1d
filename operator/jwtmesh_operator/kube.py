"""Thin async wrappers over the Kubernetes API (the `kubernetes` client, run in threads).

Writes use optimistic concurrency: a replace carries the resourceVersion that was read,
and a conflict is reported to the caller, which re-reads and retries.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from jwtmesh_operator.api_requests import RequestCounter
from jwtmesh_operator.errors import OperatorError

MANAGED_BY = {"app.kubernetes.io/managed-by": "jwtmesh-operator"}
# Objects per LIST response. Most kinds listed are ones any tenant can write (identities,
# signing-key Secrets, policy ConfigMaps), each up to ~1.5 MiB (etcd's request limit): a page
# of 500 forged ones would be ~750 MiB of JSON parsed at once, enough to have the operator
# killed at every start. 50 bounds a page to ~75 MiB; 10,000 identities take 200 pages.
LIST_PAGE = 50
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


class Conflict(OperatorError):
    """Someone else changed the object since we read it."""


def load_kube_config(kubeconfig: str | None) -> client.ApiClient:
    if kubeconfig:
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig
        )
        return api
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


@dataclass(frozen=True)
class Stored:
    """An object's data (decoded) and the resourceVersion it was read at."""

    data: dict[str, bytes]
    resource_version: str
    labels: dict[str, str]
    name: str = ""
    owner_uids: frozenset[str] = frozenset()


def _stored(data: dict[str, bytes], metadata: dict[str, Any]) -> Stored:
    """From an object's metadata as the API serves it (JSON)."""
    owners = frozenset(str(ref.get("uid")) for ref in metadata.get("ownerReferences") or [])
    return Stored(
        data,
        str(metadata.get("resourceVersion", "")),
        dict(metadata.get("labels") or {}),
        str(metadata.get("name", "")),
        owners,
    )


def secret_object(
    namespace: str,
    name: str,
    data: dict[str, bytes],
    version: str | None,
    labels: dict[str, str],
    owner: dict[str, Any],
) -> dict[str, Any]:
    """A Secret as `write_secret` sends it, and (with the `version` the API server gave
    it) as the API serves it back."""
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            **({"resourceVersion": version} if version is not None else {}),
            "labels": {**MANAGED_BY, **labels},
            "ownerReferences": [_camel_owner(owner)],
        },
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


def secret_of(secret: dict[str, Any]) -> Stored:
    """A Secret as the API serves it (JSON: data in base64), decoded."""
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    return _stored(data, secret["metadata"])


def _read_json(call: Any, *args: Any) -> dict[str, Any] | None:
    """GET one object as the API serves it (None: 404). Plain JSON: the client's models
    cost more CPU than the request itself, thousands of times per sweep."""
    try:
        response = call(*args, _preload_content=False)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return cast(dict[str, Any], json.loads(response.data))


Item = TypeVar("Item")


async def _list_pages(
    call: Any,
    label_selector: str,
    convert: Callable[[dict[str, Any]], Item],
    *,
    metadata_only: bool = False,
) -> dict[tuple[str, str], Item]:
    """A LIST in pages of LIST_PAGE objects (no response holds every object at once),
    each item converted as it arrives. `metadata_only` asks for PartialObjectMetadata
    where the client can send the header (kubernetes 31 and later)."""
    found: dict[tuple[str, str], Item] = {}
    token: str | None = None
    while True:
        options: dict[str, Any] = {"label_selector": label_selector, "limit": LIST_PAGE}
        if token:
            options["_continue"] = token
        page = await asyncio.to_thread(_list_page, call, options, metadata_only)
        for item in page.get("items") or []:
            meta = item["metadata"]
            found[(str(meta["namespace"]), str(meta["name"]))] = convert(item)
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return found


def _list_page(call: Any, options: dict[str, Any], metadata_only: bool) -> dict[str, Any]:
    if metadata_only:
        try:
            response = call(**options, _preload_content=False, _headers={"Accept": METADATA_ONLY})
            return cast(dict[str, Any], json.loads(response.data))
        except TypeError:  # ApiTypeError: this client has no _headers
            pass
    return cast(dict[str, Any], json.loads(call(**options, _preload_content=False).data))


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.networking = client.NetworkingV1Api(api)
        # Connections this client keeps to the API server (the client's default: 5 per CPU).
        self.pool_size = max(4, int(api.configuration.connection_pool_maxsize or 4))
        self.requests = RequestCounter()
        self.requests.install(api)

    async def read_secret(self, namespace: str, name: str) -> Stored | None:
        secret = await self.read_secret_object(namespace, name)
        return None if secret is None else secret_of(secret)

    async def read_secret_object(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Secret as the API serves it (JSON; None: it does not exist)."""
        return await asyncio.to_thread(
            _read_json, self.core.read_namespaced_secret, name, namespace
        )

    async def read_custom(
        self, group: str, version: str, plural: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """A custom object as the API server has it now (None: it does not exist)."""
        try:
            found = await asyncio.to_thread(
                self.custom.get_namespaced_custom_object, group, version, namespace, plural, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return cast(dict[str, Any], found)

    async def visit_custom(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str,
        visit: Callable[[dict[str, Any]], None],
    ) -> None:
        """Every custom object of the namespace, handed to `visit` as its page arrives
        (a page of LIST_PAGE objects in memory at a time, never the whole list)."""
        call = functools.partial(
            self.custom.list_namespaced_custom_object, group, version, namespace, plural
        )
        await _list_pages(call, "", visit)

    def list_secrets(self, namespace: str | None) -> Callable[..., Any]:
        """The LIST (and WATCH) call of Secrets in a namespace (None: every namespace),
        for informer.py."""
        if namespace is None:
            return self.core.list_secret_for_all_namespaces
        return functools.partial(self.core.list_namespaced_secret, namespace)

    def lister_of_custom(
        self, group: str, version: str, plural: str
    ) -> Callable[[str | None], Callable[..., Any]]:
        """The LIST (and WATCH) call of a custom kind, per namespace (None: every one)."""

        def lister(namespace: str | None) -> Callable[..., Any]:
            if namespace is None:
                return functools.partial(
                    self.custom.list_cluster_custom_object, group, version, plural
                )
            return functools.partial(
                self.custom.list_namespaced_custom_object, group, version, namespace, plural
            )

        return lister

    async def crd_owner(self, name: str) -> dict[str, Any] | None:
        """An ownerReference to a CustomResourceDefinition (None: not readable)."""
        extensions = client.ApiextensionsV1Api(self.api)
        try:
            crd = await asyncio.to_thread(extensions.read_custom_resource_definition, name)
        except ApiException as exc:
            if exc.status in (403, 404):
                return None
            raise
        if crd.metadata is None:
            return None
        return {
            "api_version": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "name": name,
            "uid": str(crd.metadata.uid),
        }

    async def read_configmap(self, namespace: str, name: str) -> Stored | None:
        cm = await asyncio.to_thread(
            _read_json, self.core.read_namespaced_config_map, name, namespace
        )
        if cm is None:
            return None
        data = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
        return _stored(data, cm["metadata"])

    async def configmap_versions(self, namespace: str, label_selector: str) -> dict[str, str]:
        """name → resourceVersion of the namespace's ConfigMaps matching the selector.

        Asks for metadata only (a PartialObjectMetadataList: a few hundred bytes per object
        instead of up to 1 MiB of data); a client too old to send that Accept header (the
        `_headers` argument came with kubernetes 31) lists whole objects instead.
        """

        call = functools.partial(self.core.list_namespaced_config_map, namespace)
        options = {"label_selector": label_selector}
        page = await asyncio.to_thread(_list_page, call, options, True)
        items = page.get("items") or []
        return {
            str(item["metadata"]["name"]): str(item["metadata"]["resourceVersion"])
            for item in items
        }

    async def list_configmaps(
        self, namespace: str | None, label_selector: str
    ) -> dict[tuple[str, str], Stored]:
        """(namespace, name) → data of every ConfigMap matching the selector, in one
        namespace or (None) all of them, read page by page."""

        def stored(item: dict[str, Any]) -> Stored:
            return _stored(
                {k: v.encode() for k, v in (item.get("data") or {}).items()}, item["metadata"]
            )

        if namespace is None:
            return await _list_pages(
                self.core.list_config_map_for_all_namespaces, label_selector, stored
            )
        return await _list_pages(
            functools.partial(self.core.list_namespaced_config_map, namespace),
            label_selector,
            stored,
        )

    async def list_network_policy_annotations(
        self, namespace: str | None, label_selector: str
    ) -> dict[tuple[str, str], Stored]:
        """Like `read_network_policy` (annotations as data) for every NetworkPolicy matching
        the selector, metadata only."""

        def stored(item: dict[str, Any]) -> Stored:
            annotations = item["metadata"].get("annotations") or {}
            return _stored({k: v.encode() for k, v in annotations.items()}, item["metadata"])

        call = (
            self.networking.list_network_policy_for_all_namespaces
            if namespace is None
            else functools.partial(self.networking.list_namespaced_network_policy, namespace)
        )
        return await _list_pages(call, label_selector, stored, metadata_only=True)

    async def write_secret(
        self,
        namespace: str,
        name: str,
        data: dict[str, bytes],
        *,
        secret_type: str,
        labels: dict[str, str],
        owner: dict[str, Any],
        resource_version: str | None,
    ) -> str:
        body = {
            **secret_object(namespace, name, data, resource_version, labels, owner),
            "type": secret_type,
        }
        return await self._write(
            self.core.create_namespaced_secret,
            self.core.replace_namespaced_secret,
            namespace,
            name,
            body,
            resource_version,
        )

    async def write_configmap(
        self,
        namespace: str,
        name: str,
        data: dict[str, str],
        *,
        labels: dict[str, str],
        owner: dict[str, Any] | None,
        resource_version: str | None,
    ) -> str:
        body = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name=name,
                namespace=namespace,
                labels={**MANAGED_BY, **labels},
                owner_references=[client.V1OwnerReference(**owner)] if owner else None,
                resource_version=resource_version,
            ),
            data=data,
        )
        return await self._write(
            self.core.create_namespaced_config_map,
            self.core.replace_namespaced_config_map,
            namespace,
            name,
            body,
            resource_version,
        )

    async def read_network_policy(self, namespace: str, name: str) -> Stored | None:
        """A NetworkPolicy's annotations as data (the operator keeps its digest there)."""
        found = await asyncio.to_thread(
            _read_json, self.networking.read_namespaced_network_policy, name, namespace
        )
        if found is None:
            return None
        annotations = found["metadata"].get("annotations") or {}
        return _stored({k: v.encode() for k, v in annotations.items()}, found["metadata"])

    async def write_network_policy(
        self,
        body: dict[str, Any],
        *,
        owner: dict[str, Any],
        resource_version: str | None,
    ) -> str:
        """Create or replace a NetworkPolicy rendered as a plain object."""
        meta = body["metadata"]
        body = {
            **body,
            "metadata": {
                **meta,
                "labels": {**MANAGED_BY, **meta.get("labels", {})},
                "ownerReferences": [_camel_owner(owner)],
                **({"resourceVersion": resource_version} if resource_version else {}),
            },
        }
        return await self._write(
            self.networking.create_namespaced_network_policy,
            self.networking.replace_namespaced_network_policy,
            meta["namespace"],
            meta["name"],
            body,
            resource_version,
        )

    async def _write(
        self, create: Any, replace: Any, namespace: str, name: str, body: Any, version: str | None
    ) -> str:
        """Create or replace; returns the new resourceVersion.

        The response is not turned into client models: for a bundle shard of 768 KiB that
        deserialisation costs more than the request, and only the resourceVersion is needed.
        """
        try:
            if version is None:
                response = await asyncio.to_thread(create, namespace, body, _preload_content=False)
            else:
                response = await asyncio.to_thread(
                    replace, name, namespace, body, _preload_content=False
                )
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"{namespace}/{name} changed concurrently") from None
            if exc.status == 404 and version is not None:
                raise Conflict(f"{namespace}/{name} was deleted concurrently") from None
            raise
        return str(json.loads(response.data)["metadata"]["resourceVersion"])

    async def create_event(self, namespace: str, body: dict[str, Any]) -> None:
        """Post a core/v1 Event (events.py builds it)."""
        response: Any = await asyncio.to_thread(
            self.core.create_namespaced_event, namespace, cast(Any, body), _preload_content=False
        )
        response.data  # noqa: B018 - read to the end: the connection goes back to the pool

    async def drop_finalizer(
        self, group: str, version: str, plural: str, body: dict[str, Any], finalizer: str
    ) -> None:
        """Take `finalizer` off a namespaced custom object, at the version `body` has (a
        merge patch with its resourceVersion: a conflict leaves it on for the next event)."""
        meta = body["metadata"]
        kept = [name for name in meta.get("finalizers") or [] if name != finalizer]
        patch = {"metadata": {"finalizers": kept, "resourceVersion": meta["resourceVersion"]}}
        try:
            await asyncio.to_thread(
                self.custom.patch_namespaced_custom_object,
                group,
                version,
                meta["namespace"],
                plural,
                meta["name"],
                patch,
            )
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone, or changed since: its event comes
                raise

    async def patch_status(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        status: dict[str, Any],
    ) -> dict[str, Any] | None:
        """Patch the status of a namespaced object, or of a cluster-scoped one (namespace
        None); returns the object as patched (None: it was deleted meanwhile)."""
        try:
            if namespace is None:
                patched = await asyncio.to_thread(
                    self.custom.patch_cluster_custom_object_status,
                    group,
                    version,
                    plural,
                    name,
                    {"status": status},
                )
            else:
                patched = await asyncio.to_thread(
                    self.custom.patch_namespaced_custom_object_status,
                    group,
                    version,
                    namespace,
                    plural,
                    name,
                    {"status": status},
                )
        except ApiException as exc:
            if exc.status != 404:  # deleted meanwhile: nothing to report to
                raise
            return None
        return cast(dict[str, Any], patched)


def _camel_owner(owner: dict[str, Any]) -> dict[str, Any]:
    """An `owner_reference` (client model names) as the API's JSON names."""
    names = {"api_version": "apiVersion", "block_owner_deletion": "blockOwnerDeletion"}
    return {names.get(key, key): value for key, value in owner.items()}


def owner_reference(body: Any) -> dict[str, Any]:
    """An ownerReference to a kopf body, so garbage collection removes what we made."""
    return {
        "api_version": body["apiVersion"],
        "kind": body["kind"],
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "controller": True,
        "block_owner_deletion": True,
    }
