"""What the operator knows of the trust bundle in force, for the planner (planning.Publication).

A key must not sign before verifiers can have it: no sooner than prePublish after the
first written bundle that carries it. The publisher tells this ledger what each publish
did: a written bundle records when each kid was first written; a refused one (over its
capacity) means keys made since stay out of every bundle. Identities awaiting a key's
publication wait here, and a publish that matters to them wakes them: one that carries a
held key, or that carries a key later than its schedule allowed. One that carries every
key an identity awaits in time lets it sleep on: the plan woke it early only to check
that they were written (planning.Plan.wake_at_once_written), so the publisher moves that
wake-up on (`Arrivals.settled`), which saves one reconcile per rotation.

In memory only. The first bundle a process writes carries keys made before it started
(a restart, a take-over): a key that the bundle in force already had in every namespace
(its shard unchanged: `publisher.in_force`) counts as published long ago; any other key
as published by that write. So a key whose Secret was written just before a restart, and
whose bundle was not, still waits prePublish after the restarted process writes it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from jwtmesh_operator.planning import Publication

Key: TypeAlias = tuple[str, str]  # (namespace, name) of a ServiceIdentity
# When a kid the bundle in force had before this process's first write was published.
CARRIED = float("-inf")


@dataclass(frozen=True)
class Deferral:
    """An identity due at `check_at` only to check its pending keys were written: due at
    `then` instead if they were, in time."""

    check_at: float
    then: float


@dataclass(frozen=True)
class Arrivals:
    """What one written bundle changes for the identities awaiting it."""

    woken: list[Key] = field(default_factory=list)  # a held or late key of theirs arrived
    settled: list[tuple[Key, Deferral]] = field(default_factory=list)  # all came in time


class PublicationLedger:
    def __init__(self) -> None:
        self._published_at: dict[str, float] = {}
        self._refused = False
        self._written_once = False
        # identity → kid → the time it must be written by (None: held until written)
        self._waiting: dict[Key, dict[str, float | None]] = {}
        self._deferrals: dict[Key, Deferral] = {}

    def view(self) -> Publication:
        return Publication(published_at=self._published_at, refused=self._refused)

    @property
    def written_once(self) -> bool:
        """This process has written a bundle (its first write is told what was in force)."""
        return self._written_once

    def wait(
        self,
        identity: Key,
        awaited: Mapping[str, float | None],
        deferral: Deferral | None = None,
    ) -> None:
        """What the identity awaits now (planning.awaited_kids); empty: nothing. With a
        deferral, the wake-up to move on once every awaited key is written in time."""
        self._deferrals.pop(identity, None)
        if awaited:
            self._waiting[identity] = dict(awaited)
            if deferral is not None:
                self._deferrals[identity] = deferral
        else:
            self._waiting.pop(identity, None)

    def written(self, kids: Iterable[str], now: float, in_force: Collection[str] = ()) -> Arrivals:
        """A bundle with these kids was written everywhere at `now`: the identities to wake
        (a held key of theirs is now published, or one came after its deadline) and those
        whose every awaited key came in time. `in_force`: on a process's first write, the
        kids every namespace's bundle already had."""
        known, first = self._published_at, not self._written_once
        self._published_at = {
            kid: known.get(kid, CARRIED if first and kid in in_force else now) for kid in kids
        }
        self._refused, self._written_once = False, True
        arrivals = Arrivals()
        for identity, awaited in list(self._waiting.items()):
            arrived = [kid for kid in awaited if kid in self._published_at]
            if any(_late(awaited[kid], now) for kid in arrived):
                arrivals.woken.append(identity)
                del self._waiting[identity]
                self._deferrals.pop(identity, None)
                continue
            for kid in arrived:  # on time: nothing to do
                del awaited[kid]
            if not awaited:
                del self._waiting[identity]
                deferral = self._deferrals.pop(identity, None)
                if deferral is not None:
                    arrivals.settled.append((identity, deferral))
        return arrivals

    def refused(self) -> bool:
        """A publish was refused; True when the one before was not (every identity is to
        be woken: a key made since may be about to sign)."""
        flipped, self._refused = not self._refused, True
        return flipped


def _late(deadline: float | None, now: float) -> bool:
    """Whether a key written at `now` matters to its identity: held (no deadline) or late."""
    return deadline is None or now > deadline
