"""Which replica acts: the holder of a Kubernetes Lease. Pure decisions; the clock is passed in.

Every replica watches and indexes everything (so any of them answers the webhook from
current data), but only the Lease holder writes: reconciles, publishes bundles, reports
status. A Lease is held while its holder renews it; another replica takes it over once it
has seen no renewal for the lease's duration on its *own* clock (the holder's timestamps
are never compared with ours, so clock skew between nodes cannot hand the Lease over
early), as client-go's leader election does.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_DURATION = 15.0  # seconds without a renewal before another replica takes over
RENEW_EVERY = DEFAULT_DURATION / 3


@dataclass(frozen=True)
class LeaseRecord:
    """What the Lease object says (spec.holderIdentity, renewTime, transitions)."""

    holder: str | None
    renew_time: str | None  # RFC 3339, as written by the holder; compared for change only
    duration: float
    transitions: int = 0


@dataclass(frozen=True)
class Observation:
    """A Lease as we last saw it, and when (our clock) it last changed."""

    record: LeaseRecord | None
    changed_at: float


def observe(previous: Observation | None, record: LeaseRecord | None, now: float) -> Observation:
    if previous is not None and previous.record == record:
        return previous
    return Observation(record, now)


def claim(
    seen: Observation, me: str, now: float, renew_time: str, duration: float = DEFAULT_DURATION
) -> LeaseRecord | None:
    """The record to write to hold the Lease now (acquire or renew), or None while another
    replica holds it."""
    current = seen.record
    if current is None or current.holder in (None, ""):
        transitions = 0 if current is None else current.transitions + 1
        return LeaseRecord(me, renew_time, duration, transitions)
    if current.holder == me:
        return LeaseRecord(me, renew_time, duration, current.transitions)
    if now - seen.changed_at >= current.duration:
        return LeaseRecord(me, renew_time, duration, current.transitions + 1)
    return None


def still_leading(last_renewed: float | None, now: float, duration: float) -> bool:
    """We act only while our last successful renewal is younger than the lease: a replica
    that cannot reach the API server stops before any other may take over."""
    return last_renewed is not None and now - last_renewed < duration * 2 / 3
