"""What the operator knows of the trust bundle in force, for the planner (planning.Publication).

A key must not sign before verifiers can have it: no sooner than prePublish after the
first written bundle that carries it. The publisher tells this ledger what each publish
did: a written bundle records when each kid was first written; a refused one (over its
capacity) means keys made since stay out of every bundle. Identities awaiting a key's
publication wait here, and a publish that matters to them wakes them: one that carries a
held key, or that carries a key later than its schedule allowed.

In memory only. The first bundle a process writes carries keys made before it started:
those count as published long ago (a key whose Secret was written just before a restart
and its bundle just after has prePublish less the downtime: docs/scaling.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeAlias

from jwtmesh_operator.planning import Publication

Key: TypeAlias = tuple[str, str]  # (namespace, name) of a ServiceIdentity
# When a kid the first written bundle carried, made before this process, was published.
CARRIED = float("-inf")


class PublicationLedger:
    def __init__(self) -> None:
        self._published_at: dict[str, float] = {}
        self._refused = False
        self._written_once = False
        self._made: set[str] = set()  # kids this process made, until its first write
        # identity → kid → the time it must be written by (None: held until written)
        self._waiting: dict[Key, dict[str, float | None]] = {}

    def view(self) -> Publication:
        return Publication(published_at=self._published_at, refused=self._refused)

    def made(self, kids: Iterable[str]) -> None:
        """Keys this process generated (so not carried from before it started)."""
        if not self._written_once:
            self._made.update(kids)

    def wait(self, identity: Key, awaited: Mapping[str, float | None]) -> None:
        """What the identity awaits now (planning.awaited_kids); empty: nothing."""
        if awaited:
            self._waiting[identity] = dict(awaited)
        else:
            self._waiting.pop(identity, None)

    def written(self, kids: Iterable[str], now: float) -> list[Key]:
        """A bundle with these kids was written everywhere at `now`. Returns the identities
        to wake: a held key of theirs is now published, or one came after its deadline."""
        known, first = self._published_at, not self._written_once
        self._published_at = {
            kid: known.get(kid, CARRIED if first and kid not in self._made else now) for kid in kids
        }
        self._refused, self._written_once = False, True
        self._made.clear()
        woken = []
        for identity, awaited in list(self._waiting.items()):
            arrived = [kid for kid in awaited if kid in self._published_at]
            if any(_late(awaited[kid], now) for kid in arrived):
                woken.append(identity)
                del self._waiting[identity]
                continue
            for kid in arrived:  # on time: nothing to do
                del awaited[kid]
            if not awaited:
                del self._waiting[identity]
        return woken

    def refused(self) -> bool:
        """A publish was refused; True when the one before was not (every identity is to
        be woken: a key made since may be about to sign)."""
        flipped, self._refused = not self._refused, True
        return flipped


def _late(deadline: float | None, now: float) -> bool:
    """Whether a key written at `now` matters to its identity: held (no deadline) or late."""
    return deadline is None or now > deadline
