"""One replica acts: the Lease holder. Taken over only after no renewal was seen for the
lease's duration on the taker's own clock; a holder that cannot renew stops first."""

from __future__ import annotations

from jwtmesh_operator.leadership import LeaseRecord, claim, observe, still_leading

A, B = "replica-a", "replica-b"


def test_a_free_lease_is_taken() -> None:
    assert claim(observe(None, None, 0.0), A, 0.0, "t0") == LeaseRecord(A, "t0", 15.0, 0)


def test_the_holder_renews() -> None:
    held = LeaseRecord(A, "t0", 15.0, 3)
    assert claim(observe(None, held, 0.0), A, 5.0, "t5") == LeaseRecord(A, "t5", 15.0, 3)


def test_another_replicas_lease_is_left_alone_while_it_renews() -> None:
    seen = observe(None, LeaseRecord(A, "t0", 15.0), 100.0)
    assert claim(seen, B, 110.0, "x") is None
    seen = observe(seen, LeaseRecord(A, "t10", 15.0), 110.0)  # renewed: the wait restarts
    assert claim(seen, B, 124.0, "x") is None


def test_a_lease_not_renewed_for_its_duration_on_our_clock_is_taken_over() -> None:
    """The holder's own timestamps do not matter: only how long we saw no change."""
    seen = observe(None, LeaseRecord(A, "1999-01-01T00:00:00Z", 15.0, 2), 100.0)
    assert claim(seen, B, 114.9, "x") is None
    assert claim(seen, B, 115.0, "t") == LeaseRecord(B, "t", 15.0, 3)


def test_observing_an_unchanged_record_keeps_the_first_sighting() -> None:
    record = LeaseRecord(A, "t0", 15.0)
    first = observe(None, record, 100.0)
    assert observe(first, record, 110.0) is first


def test_a_holder_that_cannot_renew_stops_before_anyone_may_take_over() -> None:
    assert still_leading(100.0, 109.9, 15.0)
    assert not still_leading(100.0, 110.0, 15.0), "2/3 of the duration: before a takeover"
    assert not still_leading(None, 0.0, 15.0)
