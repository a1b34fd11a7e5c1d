"""The operator's own list and watch of one kind (an informer): its ServiceIdentities and
signing-key Secrets, the two kinds with an object per identity, are not watched by kopf.

kopf keeps every object it lists in a worker of its own, holding the whole object, until
every index is filled: a restart over 10,000 identities held 20,000 objects (private keys
included) at once, twice the memory the running operator needs. Here each object is handed
on as its page arrives and the page is dropped; what stays is what the caller keeps of it
(a small record, and a compressed copy for the next reconcile).

Like client-go's informer: a LIST in pages, then a WATCH from the list's resourceVersion
with bookmarks; a watch the server ends is resumed from the last version seen, and one whose
version has expired (410 Gone) is replaced by a new LIST whose differences from what was
handed on are handed on as events. The first LIST is awaited before kopf starts its
watchers (main.py), so no handler ever sees part of these objects, as with kopf's indexes.
Selectors are applied by the API server: nothing else of the kind reaches this process.

Each watch runs in a thread of its own (the `kubernetes` client blocks) and hands every
event to the event loop, in the order the API server sent them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from kubernetes.client.exceptions import ApiException

from jwtmesh_operator.kube import LIST_PAGE

log = logging.getLogger("jwtmesh.operator.informer")

WATCH_SECONDS = 300  # the server ends each watch after this; it is resumed where it stopped
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)  # seconds between attempts after an error

Key = tuple[str, str]  # (namespace, name)
Object = dict[str, Any]  # as the API serves it (JSON)
# (LISTED | ADDED | MODIFIED | DELETED, the object); LISTED: found by the first LIST.
Deliver = Callable[[str, Object], None]
# The collection's LIST (and WATCH) call in a namespace (None: every namespace).
Lister = Callable[[str | None], Callable[..., Any]]


class Expired(Exception):
    """The resourceVersion a watch asked for is no longer kept (410 Gone): list again."""


def key_of(found: Object) -> Key:
    meta = found["metadata"]
    return str(meta["namespace"]), str(meta["name"])


def version_of(found: Object) -> str:
    return str(found["metadata"].get("resourceVersion", ""))


def tombstone(key: Key, version: str) -> Object:
    """An object a new LIST no longer shows, as a DELETED event made up for it carries it
    (its name; the caller finds the rest in what it kept)."""
    return {"metadata": {"namespace": key[0], "name": key[1], "resourceVersion": version}}


def relist_changes(
    known: Mapping[Key, str], listed: Mapping[Key, Object]
) -> list[tuple[str, Object]]:
    """The events a watch missed, from the versions it handed on and what a new LIST shows:
    new objects ADDED, changed ones MODIFIED, vanished ones DELETED (one deleted and made
    again under its name meanwhile comes as MODIFIED, at its new version)."""
    changes: list[tuple[str, Object]] = []
    for key, found in listed.items():
        before = known.get(key)
        if before is None:
            changes.append(("ADDED", found))
        elif before != version_of(found):
            changes.append(("MODIFIED", found))
    changes.extend(
        ("DELETED", tombstone(key, version)) for key, version in known.items() if key not in listed
    )
    return changes


def list_version(page: dict[str, Any]) -> str:
    """The resourceVersion a LIST's page was read at: a watch resumes from the last one."""
    return str((page.get("metadata") or {}).get("resourceVersion", ""))


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


class Informer:
    """Every object of one kind in `namespaces` (empty: every namespace) matching the
    selectors. `deliver` runs in the event loop for each: `list_all` hands on the current
    ones (LISTED), then `start` follows their changes until `stop`."""

    def __init__(
        self,
        what: str,
        lister: Lister,
        namespaces: Sequence[str],
        deliver: Deliver,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> None:
        self.what = what  # for the logs: "signing-key Secrets"
        self._lister = lister
        self._scopes: list[str | None] = list(namespaces) or [None]
        self._deliver = deliver
        self._selectors = {"label_selector": label_selector, "field_selector": field_selector}
        self._stopping = threading.Event()
        # Per scope, the version of each object handed on (each map touched by one thread
        # at a time: the event loop for the first LIST, then that scope's watch thread).
        self._known: dict[str | None, dict[Key, str]] = {scope: {} for scope in self._scopes}
        self._versions: dict[str | None, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.relists = 0  # LISTs after an expired watch

    async def list_all(self) -> int:
        """Every object, handed on page by page; returns how many. Tried until it
        succeeds: the operator cannot publish a bundle without them (an object handed on
        twice is harmless: same version, same record)."""
        for failures in itertools.count():
            try:
                return await self._list_all()
            except Exception:
                await asyncio.sleep(self._failed("listing", failures, "informer_list_failed"))
        raise AssertionError("unreachable")

    async def _list_all(self) -> int:
        loop = asyncio.get_running_loop()
        count = 0
        for scope in self._scopes:
            known = self._known[scope]
            pages = self._pages(scope)
            # Each page fetched off the loop, its objects handed on in it.
            while (page := await asyncio.to_thread(next, pages, None)) is not None:
                for found in page.get("items") or []:
                    known[key_of(found)] = version_of(found)
                    self._deliver("LISTED", found)
                    count += 1
                self._versions[scope] = list_version(page)
        self._loop = loop
        return count

    def start(self) -> None:
        """Follow every scope listed, each in a thread of its own."""
        for scope in self._scopes:
            thread = threading.Thread(
                target=self._follow, args=(scope,), name=f"watch {self.what}", daemon=True
            )
            thread.start()

    def stop(self) -> None:
        """The threads end at their next event or error (they never delay an exit)."""
        self._stopping.set()

    def _failed(self, doing: str, failures: int, event: str) -> float:
        """Log the failure (from inside its `except`); returns the seconds to wait."""
        delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
        log.warning(
            "%s %s failed; again in %.0f s",
            doing,
            self.what,
            delay,
            exc_info=True,
            extra={"event": event},
        )
        return delay

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
                self._stopping.wait(self._failed("watching", failures, "informer_watch_failed"))
                failures += 1

    def _watch(self, scope: str | None) -> None:
        """One watch, from the last version seen, until the server ends it."""
        options: dict[str, Any] = {
            **self._selectors,
            "watch": True,
            "allow_watch_bookmarks": True,
            "resource_version": self._versions[scope],
            "timeout_seconds": WATCH_SECONDS,
            "_preload_content": False,
            "_request_timeout": (10, WATCH_SECONDS + 60),
        }
        try:
            response = self._lister(scope)(**options)
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
        kind, found = str(event.get("type")), event.get("object") or {}
        if kind == "ERROR":
            if found.get("code") == 410:
                raise Expired(found.get("message"))
            raise RuntimeError(f"watch error: {found.get('message') or found}")
        self._versions[scope] = version_of(found)
        if kind == "BOOKMARK":
            return
        key, known = key_of(found), self._known[scope]
        if kind == "DELETED":
            known.pop(key, None)
        else:
            known[key] = version_of(found)
        self._hand_on(kind, found)

    def _relist(self, scope: str | None) -> None:
        """A new LIST (in pages) in place of the expired watch; what changed meanwhile is
        handed on as events."""
        self.relists += 1
        listed: dict[Key, Object] = {}
        known, version = self._known[scope], ""
        for page in self._pages(scope):
            for found in page.get("items") or []:
                key, seen = key_of(found), version_of(found)
                # Only a changed object is handed on: of the others (a tenant's forged
                # Secrets among them, up to 1 MiB each) the version is all that is kept.
                listed[key] = found if known.get(key) != seen else tombstone(key, seen)
            version = list_version(page)
        changes = relist_changes(known, listed)
        log.info(
            "%s listed again (the watch had expired): %d changes",
            self.what,
            len(changes),
            extra={"event": "informer_relist"},
        )
        self._known[scope] = {key: version_of(found) for key, found in listed.items()}
        self._versions[scope] = version
        for kind, found in changes:
            self._hand_on(kind, found)

    def _hand_on(self, kind: str, found: Object) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            self._stopping.set()
            return
        try:
            loop.call_soon_threadsafe(self._deliver, kind, found)
        except RuntimeError:  # the loop closed meanwhile: the operator is exiting
            self._stopping.set()

    def _pages(self, scope: str | None) -> Iterator[dict[str, Any]]:
        """One LIST in pages of LIST_PAGE, each fetched when the one before was taken."""
        token: str | None = None
        while True:
            page = self._list_page(scope, token)
            yield page
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def _list_page(self, scope: str | None, token: str | None) -> dict[str, Any]:
        options: dict[str, Any] = {**self._selectors, "limit": LIST_PAGE}
        if token:
            options["_continue"] = token
        response = self._lister(scope)(**options, _preload_content=False)
        page: dict[str, Any] = json.loads(response.data)
        return page
