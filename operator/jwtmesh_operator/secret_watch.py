"""The signing-key Secrets, listed and watched by the operator itself rather than by kopf.

kopf keeps every object it lists in a worker of its own, holding the whole object, until
every index is filled: a restart over 10,000 identities held their 10,000 Secrets (private
keys included) at once on top of the identities. Here each Secret is handed on as its page
arrives and the page is dropped; what stays is what the caller keeps of it (its public keys).

Like client-go's informer: a LIST in pages, then a WATCH from the list's resourceVersion
with bookmarks; a watch the server ends is resumed from the last version seen, and one whose
version has expired (410 Gone) is replaced by a new LIST whose differences from what was
handed on are handed on as events. The first LIST is awaited before kopf starts its
watchers (main.py), so no handler ever sees part of the Secrets, as with kopf's indexes.
Only signing-key Secrets are asked for (label and type, selected by the API server): no
other Secret in the cluster reaches this process.

Each watch runs in a thread of its own (the `kubernetes` client blocks) and hands every
event to the event loop, in the order the API server sent them.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from jwtmesh_operator.keystore import SECRET_TYPE
from jwtmesh_operator.kube import LIST_PAGE, Kube
from jwtmesh_operator.spec import IDENTITY_LABEL

log = logging.getLogger("jwtmesh.operator.secrets")

LABEL_SELECTOR = IDENTITY_LABEL  # the label present, whatever its value
FIELD_SELECTOR = f"type={SECRET_TYPE}"
WATCH_SECONDS = 300  # the server ends each watch after this; it is resumed where it stopped
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)  # seconds between attempts after an error

Key = tuple[str, str]  # (namespace, name)
Secret = dict[str, Any]  # as the API serves it (JSON)
# (LISTED | ADDED | MODIFIED | DELETED, the Secret); LISTED: found by the first LIST.
Deliver = Callable[[str, Secret], None]


class Expired(Exception):
    """The resourceVersion a watch asked for is no longer kept (410 Gone): list again."""


@dataclass(frozen=True)
class Seen:
    """What a watch remembers of a Secret it handed on: enough to tell a later LIST's
    changes and to say which Secret went away (and whose it was)."""

    version: str
    labels: Mapping[str, str]
    owners: tuple[Mapping[str, Any], ...]


def seen(secret: Secret) -> Seen:
    meta = secret["metadata"]
    labels = meta.get("labels") or {}
    return Seen(
        version=str(meta.get("resourceVersion", "")),
        labels={IDENTITY_LABEL: labels[IDENTITY_LABEL]} if IDENTITY_LABEL in labels else {},
        owners=tuple(meta.get("ownerReferences") or ()),
    )


def key_of(secret: Secret) -> Key:
    meta = secret["metadata"]
    return str(meta["namespace"]), str(meta["name"])


def tombstone(key: Key, last: Seen) -> Secret:
    """A Secret a new LIST no longer shows, as its DELETED event would carry it."""
    return {
        "metadata": {
            "namespace": key[0],
            "name": key[1],
            "resourceVersion": last.version,
            "labels": dict(last.labels),
            "ownerReferences": list(last.owners),
        }
    }


def relist_changes(
    known: Mapping[Key, Seen], listed: Mapping[Key, Secret]
) -> list[tuple[str, Secret]]:
    """The events a watch missed, from what it handed on and what a new LIST shows: new
    Secrets ADDED, changed ones MODIFIED, vanished ones DELETED (a Secret deleted and made
    again under its name meanwhile comes as MODIFIED, at its new version)."""
    changes: list[tuple[str, Secret]] = []
    for key, secret in listed.items():
        before = known.get(key)
        if before is None:
            changes.append(("ADDED", secret))
        elif before.version != seen(secret).version:
            changes.append(("MODIFIED", secret))
    changes.extend(
        ("DELETED", tombstone(key, last)) for key, last in known.items() if key not in listed
    )
    return changes


def lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The non-empty lines of a streamed body (a watch sends one JSON event per line)."""
    pending = bytearray()
    for chunk in chunks:
        pending += chunk
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            if pending[start:end].strip():
                yield bytes(pending[start:end])
            start = end + 1
        del pending[:start]
    if pending.strip():
        yield bytes(pending)


class SecretWatch:
    """The signing-key Secrets of `namespaces` (empty: every namespace). `deliver` runs in
    the event loop for every Secret: `list_all` hands on the current ones (LISTED), then
    `start` follows their changes until `stop`."""

    def __init__(self, kube: Kube, namespaces: Sequence[str], deliver: Deliver) -> None:
        self._kube = kube
        self._scopes: list[str | None] = list(namespaces) or [None]
        self._deliver = deliver
        self._stopping = threading.Event()
        # Per scope: what was handed on (each map touched by one thread at a time: the
        # event loop for the first LIST, then that scope's watch thread).
        self._known: dict[str | None, dict[Key, Seen]] = {scope: {} for scope in self._scopes}
        self._versions: dict[str | None, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.relists = 0  # LISTs after an expired watch

    async def list_all(self) -> int:
        """Every signing-key Secret, handed on page by page; returns how many. Tried until
        it succeeds: the operator cannot publish a bundle without them (a Secret handed on
        twice is harmless: same version, same record)."""
        for failures in itertools.count():
            try:
                return await self._list_all()
            except Exception:
                delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
                log.warning(
                    "listing signing-key Secrets failed; again in %.0f s",
                    delay,
                    exc_info=True,
                    extra={"event": "secret_list_failed"},
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _list_all(self) -> int:
        loop = asyncio.get_running_loop()
        count = 0
        for scope in self._scopes:
            known = self._known[scope]
            token: str | None = None
            while True:
                page = await asyncio.to_thread(self._list_page, scope, token)
                for secret in page.get("items") or []:
                    known[key_of(secret)] = seen(secret)
                    self._deliver("LISTED", secret)
                    count += 1
                meta = page.get("metadata") or {}
                token = meta.get("continue")
                if not token:
                    self._versions[scope] = str(meta.get("resourceVersion", ""))
                    break
        self._loop = loop
        return count

    def start(self) -> None:
        """Follow every scope listed, each in a thread of its own."""
        for scope in self._scopes:
            thread = threading.Thread(
                target=self._follow, args=(scope,), name=f"secrets-{scope or 'all'}", daemon=True
            )
            thread.start()

    def stop(self) -> None:
        """The threads end at their next event or error (they never delay an exit)."""
        self._stopping.set()

    # --- the watch threads ---------------------------------------------------------------

    def _follow(self, scope: str | None) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                self._watch(scope)
                failures = 0
            except Expired:
                self._relist(scope)
                failures = 0
            except Exception:  # the API server away, a dropped connection: resume later
                if self._stopping.is_set():
                    return
                delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
                failures += 1
                log.warning(
                    "watching signing-key Secrets failed; resuming in %.0f s",
                    delay,
                    exc_info=True,
                    extra={"event": "secret_watch_failed"},
                )
                self._stopping.wait(delay)

    def _watch(self, scope: str | None) -> None:
        """One watch, from the last version seen, until the server ends it."""
        options: dict[str, Any] = {
            **self._selectors(),
            "watch": True,
            "allow_watch_bookmarks": True,
            "resource_version": self._versions[scope],
            "timeout_seconds": WATCH_SECONDS,
            "_preload_content": False,
            "_request_timeout": (10, WATCH_SECONDS + 60),
        }
        try:
            response = self._call(scope)(**options)
        except ApiException as exc:
            if exc.status == 410:
                raise Expired from exc
            raise
        try:
            for line in lines(response.stream(amt=None, decode_content=True)):
                if self._stopping.is_set():
                    return
                self._take(scope, json.loads(line))
        finally:
            response.release_conn()

    def _take(self, scope: str | None, event: dict[str, Any]) -> None:
        kind, secret = str(event.get("type")), event.get("object") or {}
        if kind == "ERROR":
            if secret.get("code") == 410:
                raise Expired(secret.get("message"))
            raise RuntimeError(f"watch error: {secret.get('message') or secret}")
        self._versions[scope] = str(secret["metadata"]["resourceVersion"])
        if kind == "BOOKMARK":
            return
        key, known = key_of(secret), self._known[scope]
        if kind == "DELETED":
            known.pop(key, None)
        else:
            known[key] = seen(secret)
        self._hand_on(kind, secret)

    def _relist(self, scope: str | None) -> None:
        """A new LIST (in pages) in place of the expired watch; what changed meanwhile is
        handed on as events."""
        self.relists += 1
        listed: dict[Key, Secret] = {}
        token: str | None = None
        while True:
            page = self._list_page(scope, token)
            listed.update((key_of(secret), secret) for secret in page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                break
        changes = relist_changes(self._known[scope], listed)
        log.info(
            "signing-key Secrets listed again (the watch had expired): %d changes",
            len(changes),
            extra={"event": "secret_relist"},
        )
        self._known[scope] = {key: seen(secret) for key, secret in listed.items()}
        self._versions[scope] = str(meta.get("resourceVersion", ""))
        for kind, secret in changes:
            self._hand_on(kind, secret)

    def _hand_on(self, kind: str, secret: Secret) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            self._stopping.set()
            return
        try:
            loop.call_soon_threadsafe(self._deliver, kind, secret)
        except RuntimeError:  # the loop closed meanwhile: the operator is exiting
            self._stopping.set()

    # --- requests ------------------------------------------------------------------------

    def _call(self, scope: str | None) -> Callable[..., Any]:
        core = self._kube.core
        if scope is None:
            return core.list_secret_for_all_namespaces
        return functools.partial(core.list_namespaced_secret, scope)

    def _selectors(self) -> dict[str, str]:
        return {"label_selector": LABEL_SELECTOR, "field_selector": FIELD_SELECTOR}

    def _list_page(self, scope: str | None, token: str | None) -> dict[str, Any]:
        options: dict[str, Any] = {**self._selectors(), "limit": LIST_PAGE}
        if token:
            options["_continue"] = token
        response = self._call(scope)(**options, _preload_content=False)
        page: dict[str, Any] = json.loads(response.data)
        return page
