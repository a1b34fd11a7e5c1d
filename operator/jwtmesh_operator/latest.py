"""The newest version this process knows of the objects a reconcile starts from (an
identity, its Secret), so that a reconcile due soon after the last one need not read them
from the API again.

Reading both is half of a rotation's requests. Like an informer's cache, an entry comes
from the watch (the object an event carries) or from the API itself (an object read, or
returned by our own write at its new resourceVersion). The one hazard is an event older
than our own write arriving after it (the watch lags): its object would lack what we just
wrote, a rotation recorded as done for one. So:

- an event at another version than the entry's drops the entry (the next reconcile reads
  the API) and never replaces it;
- an event fills an empty entry only once the watch has shown the last version this process
  wrote or read of the object (or if it never did): a watch delivers an object's versions
  in order, so every event after that one is newer than anything we knew.

- while a write of ours is in flight, its own event may come back before its reply: events
  are then only noted, and the reply decides (`written`): events before ours are older,
  ours is ours, and one after ours (someone else's change, shown before our reply) drops the
  entry and asks for another reconcile.

An entry is kept only while its object is due again within `keep_for` (`release`): an
idle identity costs no memory here; Secrets are kept while they exist (state.py says why).
Writes still carry the resourceVersion they were decided from, so a stale entry costs at
worst a conflict and a fresh read, never a lost key.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from typing import Any, TypeAlias

Key: TypeAlias = tuple[str, str]  # (namespace, name)
Object: TypeAlias = dict[str, Any]  # as the API serves it (JSON)

DELETED = ""  # noted for a deletion during a write (never a resourceVersion)
KEEP_FOR = 300.0  # seconds: by default, entries of objects due again later than this are released


class LatestKnown:
    """Objects as the API serves them, each at the resourceVersion it was known at; kept
    as compressed JSON without managedFields (1-2 KB for an identity or its ES256 Secret,
    where the parsed object takes several)."""

    def __init__(self, *, keep_for: float = KEEP_FOR) -> None:
        self._keep_for = keep_for
        self._entries: dict[Key, tuple[str, bytes]] = {}
        # The last version this process wrote or read of an object, until the watch shows it.
        self._unseen: dict[Key, str] = {}
        # Objects with a write of ours in flight: the versions their events showed meanwhile.
        self._writing: dict[Key, list[str]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Object | None:
        entry = self._entries.get(key)
        return None if entry is None else unpack(entry[1])

    def remember(self, key: Key, found: Object) -> None:
        """The object as the API server returned it: read now, or just written by us."""
        version = str(found["metadata"]["resourceVersion"])
        self._entries[key] = (version, pack(found))
        self._unseen[key] = version

    def remember_listed(self, key: Key, found: Object) -> None:
        """The object as a LIST returned it: kept unless a newer one is known already (a
        watch event or a write of ours since the LIST was read)."""
        if key not in self._entries and key not in self._writing:
            self.remember(key, found)

    def seen(
        self, key: Key, version: str, found: Callable[[], Object], *, fill: bool = True
    ) -> bool:
        """A watch event carried the object at `version`; returns whether that is the
        version known already (our own write coming back, or an event seen before).
        `fill`: an empty entry may be filled from it (not on a standing-by replica, which
        reconciles nothing and would only hold every object)."""
        noted = self._writing.get(key)
        if noted is not None:
            noted.append(version)
            return True  # the write's reply decides (`written`)
        entry = self._entries.get(key)
        ours = self._unseen.get(key) == version
        if ours:
            del self._unseen[key]  # the watch has caught up with what we knew
        if entry is not None:
            if entry[0] == version:
                return True
            del self._entries[key]  # someone else's change, or an older event: read anew
            return False
        if ours:
            return True  # our own write coming back after its entry was released
        if fill and key not in self._unseen:
            self._entries[key] = (version, pack(found()))
        return False

    def writing(self, key: Key) -> None:
        """A write of ours to the object is about to be sent (one at a time per object)."""
        self._writing[key] = []

    def written(self, key: Key, found: Object | None) -> bool:
        """The write's reply: the object as written (None: the write failed; the entry is
        dropped and the caller reconciles again anyway). Returns False when the watch showed
        a change after ours before this reply came: the entry is dropped, and that change,
        not taken by `seen`, needs a reconcile."""
        noted = self._writing.pop(key, [])
        if found is None:
            self._entries.pop(key, None)
            return True
        version = str(found["metadata"]["resourceVersion"])
        if DELETED in noted or (version in noted and noted[-1] != version):
            self._entries.pop(key, None)
            self._unseen.pop(key, None)  # the watch is past our write: later events may fill
            return False
        self._entries[key] = (version, pack(found))
        if version in noted:
            self._unseen.pop(key, None)  # its event came already
        else:
            self._unseen[key] = version  # events noted were older; ours is still to come
        return True

    def deleted(self, key: Key) -> None:
        """The object is gone; one created under its name is a new object."""
        self._entries.pop(key, None)
        self._unseen.pop(key, None)
        if key in self._writing:
            self._writing[key].append(DELETED)  # after ours: `written` keeps nothing

    def release(self, key: Key, due: float, now: float) -> None:
        """Keep the entry only if its object is due again within `keep_for`."""
        if due - now > self._keep_for:
            self._entries.pop(key, None)


def pack(found: Object) -> bytes:
    """Compact JSON without managedFields (often half an object; no decision reads them),
    compressed (zlib's fastest level: ~15 us both ways)."""
    meta = {k: v for k, v in found.get("metadata", {}).items() if k != "managedFields"}
    text = json.dumps({**found, "metadata": meta}, separators=(",", ":")).encode()
    return zlib.compress(text, 1)


def unpack(packed: bytes) -> Object:
    found: Object = json.loads(zlib.decompress(packed))
    return found
