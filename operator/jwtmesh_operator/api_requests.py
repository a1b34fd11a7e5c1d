"""The operator's requests to the API server, counted by verb and resource: what each
rotation costs the API server (jwtmesh_operator_api_requests_total).

Every call of the `kubernetes` client goes through its REST client's `request`, so
wrapping that one method counts them all: the scheduler's reads and writes, the
publisher's, the Lease keeper's. The watch streams (kopf's, and those of informer.py on a
client of their own, with their LISTs at the start) are not counted.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, urlsplit

_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def request_kind(method: str, url: str) -> tuple[str, str]:
    """(verb, resource) as the API server names them: GET on one object is `get`, on a
    collection `list` (or `watch`); a subresource follows its resource (`x/status`)."""
    split = urlsplit(url)
    parts = [part for part in split.path.split("/") if part]
    if parts[:1] == ["api"]:
        rest = parts[2:]  # api, v1
    elif parts[:1] == ["apis"]:
        rest = parts[3:]  # apis, group, version
    else:
        return method.lower(), "other"
    if len(rest) > 2 and rest[0] == "namespaces":
        rest = rest[2:]  # namespaces/<ns>/<resource>...
    if not rest:
        return method.lower(), "other"
    resource = rest[0] if len(rest) < 3 else f"{rest[0]}/{rest[2]}"
    verb = _VERBS.get(method.upper())
    if verb is None:
        if len(rest) > 1:
            verb = "get"
        elif parse_qs(split.query).get("watch") in (["true"], ["1"]):
            verb = "watch"
        else:
            verb = "list"
    return verb, resource


class RequestCounter:
    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()  # requests run in the API threads

    def install(self, api: Any) -> None:
        """Count every request `api` (a kubernetes ApiClient) makes from now on."""
        rest = api.rest_client
        original = rest.request

        def counted(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            kind = request_kind(method, url)
            with self._lock:
                self.counts[kind] += 1
            return original(method, url, *args, **kwargs)

        rest.request = counted

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self.counts)
