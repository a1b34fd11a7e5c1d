"""What should an identity's keys be now? Pure: spec + clock + current keys → desired keys.

Each key has a schedule: it is published (pending) before it signs, signs from
`activates_at` until `retires_at` (when its successor activates), stays published
until `remove_at` so tokens it signed keep verifying, and is then removed.

    pending ──activates_at──► active ──retires_at──► retired ──remove_at──► removed

The successor is created `pre_publish` before it activates, so every verifier has its
public key before the first token it signs exists. A retired key stays `retain` longer
(≥ maximum token lifetime + leeway, validated by the CRD).

A successor signs only once verifiers can have it (`Publication`): no sooner than
`pre_publish` after the first written bundle that carries it. While the operator's
publishes are refused (the bundle over its capacity) a key in no written bundle is held,
and the current key signs on; the publish that carries it brings its activation back to
`pre_publish` after that publish. A key whose bundle was written late (a slow key
generation, a write budget spent) signs that much later.

An identity publishes at most MAX_KEYS keys: beyond them (a retain many periods long, or
rotations requested faster than tokens expire) the oldest retired keys leave early. With
period ≥ maxTokenLifetime (the CRD's rule) the keys kept cover the tokens still valid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from jwtmesh.identity import signer_at

# The most keys one identity publishes (active, successor, retired): the one home of this
# limit, which also caps what is read back from a Secret (keystore.read_published), so a
# tenant's Secret of thousands of keys costs the operator nothing.
MAX_KEYS = 16
# How much further than pre_publish a held key's activation is put. It is brought back as
# soon as a publish carries the key (publication.py wakes its identity): this only bounds
# how long a held key waits were the operator gone for good.
HELD_FOR = 30 * 86400.0
# A bundle written up to a tenth of pre_publish (at least MIN_PUBLISH_SLACK) after a key
# was scheduled (the key generated, its Secret and then the bundle written) counts as on
# time; later, the key signs later, at the cost of one more Secret write. So a key signs no
# sooner than pre_publish less that slack after the first bundle that carries it.
MIN_PUBLISH_SLACK = 2.0


class KeyState(StrEnum):
    PENDING = "Pending"
    ACTIVE = "Active"
    RETIRED = "Retired"
    REMOVED = "Removed"


@dataclass(frozen=True)
class Rotation:
    period: float  # how long a key signs
    pre_publish: float  # how long a new key is published before it signs
    retain: float  # how long a retired key stays published


@dataclass(frozen=True)
class Publication:
    """What the operator knows of the trust bundle in force (publication.py keeps it)."""

    published_at: Mapping[str, float] = field(default_factory=dict)  # kid → first written
    refused: bool = False  # the last publish was refused (over capacity): new keys stay out
    tracked: bool = True  # False: publishes not followed, every key counts as written in time


# Publishes not followed (unit tests, `plan_keys` alone): no key is held or brought back.
UNTRACKED = Publication(tracked=False)


@dataclass(frozen=True)
class KeySchedule:
    """One key's timeline. `kid` is None for a key the plan asks the shell to generate."""

    kid: str | None
    activates_at: float
    retires_at: float | None = None  # None: signs until a successor is scheduled
    remove_at: float | None = None  # None: not retiring yet

    def state(self, now: float) -> KeyState:
        if now < self.activates_at:
            return KeyState.PENDING
        if self.retires_at is None or now < self.retires_at:
            return KeyState.ACTIVE
        if self.remove_at is None or now < self.remove_at:
            return KeyState.RETIRED
        return KeyState.REMOVED


@dataclass(frozen=True)
class Plan:
    keys: tuple[KeySchedule, ...]  # every key that should exist (and be published) now
    wake_at: float  # when the next transition is due
    # When it is due once every pending key is written on time: wake_at is earlier only
    # to check that they were (_gate), and the publisher skips that check when they were.
    wake_at_once_written: float
    removed: tuple[str, ...] = ()  # kids dropped by this plan (expired or compromised)
    reason: str = "UpToDate"  # CamelCase, for events and conditions

    @property
    def new_keys(self) -> tuple[KeySchedule, ...]:
        return tuple(key for key in self.keys if key.kid is None)


# Why the plan changed something; used as Event reasons.
KEY_CREATED = "KeyCreated"  # the first key of an identity
ROTATION_SCHEDULED = "RotationScheduled"  # a successor was generated and published
ROTATION_REQUESTED = "RotationRequested"  # an on-demand rotation scheduled a successor
KEY_COMPROMISED = "KeyCompromised"  # a kid was removed at once; a new key signs now
KEY_REMOVED = "KeyRemoved"  # a retired key passed its retention and left the bundle
ROTATION_HELD = "RotationHeld"  # the successor is not in the bundle in force: the signer signs on
ROTATION_RESUMED = "RotationResumed"  # a held successor was published: it signs pre_publish later
ROTATION_DELAYED = "RotationDelayed"  # the successor reached the bundle late: it signs later too
UP_TO_DATE = "UpToDate"


def plan_keys(
    rotation: Rotation,
    keys: list[KeySchedule],
    now: float,
    *,
    rotate_requested: bool = False,
    compromised: frozenset[str] = frozenset(),
    publication: Publication = UNTRACKED,
) -> Plan:
    keys, removed, reason = _drop_gone(keys, now, compromised)
    keys, signer, reason = _ensure_signer(keys, now, reason)
    pending = _pending(keys, now)
    successor = pending[0] if pending else None
    earliest_on_demand = now + rotation.pre_publish
    if rotate_requested:
        keys, successor = _rotate_now(keys, successor, earliest_on_demand)
        reason = ROTATION_REQUESTED
    due = signer.activates_at + rotation.period
    create_at = due - rotation.pre_publish
    if successor is None and now >= create_at:
        # Never activate a key that has been published for less than pre_publish, even if
        # the operator was down when the rotation was due: the signer signs a little longer.
        successor = KeySchedule(kid=None, activates_at=max(due, earliest_on_demand))
        keys.append(successor)
        if reason == UP_TO_DATE:
            reason = ROTATION_SCHEDULED
    keys, gated = _gate(keys, rotation, now, publication)
    if gated is not None:
        reason = reason if reason == KEY_COMPROMISED else gated
        pending = _pending(keys, now)
        successor = pending[0] if pending else signer_at(keys, now)

    # The signer retires exactly when its successor activates, and stays published `retain`.
    if successor is not None and successor is not signer:
        retired_signer = replace(
            signer,
            retires_at=successor.activates_at,
            remove_at=successor.activates_at + rotation.retain,
        )
        keys = [retired_signer if key is signer else key for key in keys]

    keys, capped = _within_cap(keys, now)
    if capped and reason == UP_TO_DATE:
        reason = KEY_REMOVED
    keys.sort(key=lambda key: key.activates_at)
    create = None if successor else create_at
    return Plan(
        keys=tuple(keys),
        wake_at=_next_transition(keys, now, create, rotation, publication),
        wake_at_once_written=_next_transition(keys, now, create, rotation, UNTRACKED),
        removed=(*removed, *capped),
        reason=reason,
    )


def publish_slack(rotation: Rotation) -> float:
    return max(MIN_PUBLISH_SLACK, rotation.pre_publish / 10)


def _gate(
    keys: list[KeySchedule], rotation: Rotation, now: float, publication: Publication
) -> tuple[list[KeySchedule], str | None]:
    """Each pending key signs no sooner than pre_publish after the first written bundle
    that carried it: held while publishes are refused and it is in none, brought back
    once one carries it, put later when it came late. (keys, the reason or None)."""
    if not publication.tracked:
        return keys, None
    gated: str | None = None
    kept: list[KeySchedule] = []
    for key in keys:
        published = publication.published_at.get(key.kid) if key.kid is not None else None
        if key.state(now) is not KeyState.PENDING:
            pass
        elif published is not None:
            earliest = published + rotation.pre_publish
            resumed = max(now, published) + rotation.pre_publish
            if key.activates_at < earliest - publish_slack(rotation):  # written late
                key, gated = replace(key, activates_at=earliest), ROTATION_DELAYED
            elif key.activates_at > resumed:  # held before (or prePublish was shortened)
                key, gated = replace(key, activates_at=resumed), gated or ROTATION_RESUMED
        elif publication.refused and key.activates_at <= now + rotation.pre_publish:
            held_until = now + rotation.pre_publish + HELD_FOR
            key, gated = replace(key, activates_at=held_until), ROTATION_HELD
        elif key.kid is not None and key.activates_at <= now + publish_slack(rotation):
            # Due now and in no written bundle yet (publishes stalled): not yet.
            later = now + rotation.pre_publish
            key, gated = replace(key, activates_at=later), ROTATION_DELAYED
        kept.append(key)
    return kept, gated


def awaited_kids(
    keys: Iterable[KeySchedule], rotation: Rotation, now: float, published: Mapping[str, float]
) -> dict[str, float | None]:
    """The pending keys no written bundle carries yet, each with the time it must be
    written by to sign on schedule (None: held, it signs only once one carries it). The
    publisher wakes the identity when one is written late (publication.py)."""
    awaited: dict[str, float | None] = {}
    for key in keys:
        if key.kid is None or key.kid in published or key.state(now) is not KeyState.PENDING:
            continue
        held = key.activates_at > now + rotation.pre_publish  # a new key is never this far off
        deadline = key.activates_at - rotation.pre_publish + publish_slack(rotation)
        awaited[key.kid] = None if held else deadline
    return awaited


def _within_cap(keys: list[KeySchedule], now: float) -> tuple[list[KeySchedule], list[str]]:
    """At most MAX_KEYS keys: the retired ones due to leave first go now. Returns the keys
    kept and the kids dropped (the signer and its successor are never dropped)."""
    excess = len(keys) - MAX_KEYS
    if excess <= 0:
        return keys, []
    retired = [key for key in keys if key.state(now) is KeyState.RETIRED and key.kid is not None]
    leaving = {id(key) for key in sorted(retired, key=lambda key: key.remove_at or 0.0)[:excess]}
    kept = [key for key in keys if id(key) not in leaving]
    return kept, [key.kid for key in keys if id(key) in leaving and key.kid is not None]


def _pending(keys: list[KeySchedule], now: float) -> list[KeySchedule]:
    """Published keys not signing yet, the next one first."""
    waiting = (key for key in keys if key.state(now) is KeyState.PENDING)
    return sorted(waiting, key=lambda key: key.activates_at)


def _drop_gone(
    keys: list[KeySchedule], now: float, compromised: frozenset[str]
) -> tuple[list[KeySchedule], tuple[str, ...], str]:
    """Without compromised keys and keys past their retention: (kept, removed kids, reason)."""
    reason = UP_TO_DATE
    removed = [key.kid for key in keys if key.kid is not None and key.kid in compromised]
    keys = [key for key in keys if key.kid not in compromised]
    if removed:
        reason = KEY_COMPROMISED
    expired = [k.kid for k in keys if k.kid is not None and k.state(now) is KeyState.REMOVED]
    if expired and reason == UP_TO_DATE:
        reason = KEY_REMOVED
    kept = [key for key in keys if key.state(now) is not KeyState.REMOVED]
    return kept, tuple(kid for kid in [*removed, *expired] if kid is not None), reason


def _ensure_signer(
    keys: list[KeySchedule], now: float, reason: str
) -> tuple[list[KeySchedule], KeySchedule, str]:
    """A key that signs now: the current one, else the published successor brought
    forward (never an unpublished key while a published one waits), else a new one."""
    if signer_at(keys, now) is None:
        pending = _pending(keys, now)
        if pending:
            promoted = replace(pending[0], activates_at=now)
            keys = [promoted if key is pending[0] else key for key in keys]
        else:
            keys = [*keys, KeySchedule(kid=None, activates_at=now)]
            if reason == UP_TO_DATE:
                reason = KEY_CREATED
    signer = signer_at(keys, now)
    assert signer is not None
    return keys, signer, reason


def _rotate_now(
    keys: list[KeySchedule], successor: KeySchedule | None, earliest: float
) -> tuple[list[KeySchedule], KeySchedule]:
    """An on-demand rotation: a successor activating as soon as it may (pre_publish)."""
    if successor is None:
        successor = KeySchedule(kid=None, activates_at=earliest)
        return [*keys, successor], successor
    if successor.activates_at > earliest:
        # Already published and never used: bring it forward instead of a new one.
        forward = replace(successor, activates_at=earliest)
        return [forward if key is successor else key for key in keys], forward
    return keys, successor


def _next_transition(
    keys: list[KeySchedule],
    now: float,
    create_at: float | None,
    rotation: Rotation,
    publication: Publication,
) -> float:
    moments = [create_at] if create_at is not None else []
    for key in keys:
        moments += [key.activates_at, key.retires_at or 0.0, key.remove_at or 0.0]
        unwritten = key.kid is None or key.kid not in publication.published_at
        if publication.tracked and unwritten and key.state(now) is KeyState.PENDING:
            moments.append(key.activates_at - publish_slack(rotation))  # written? (_gate)
    future = [moment for moment in moments if moment > now]
    return min(future) if future else now + 3600.0
