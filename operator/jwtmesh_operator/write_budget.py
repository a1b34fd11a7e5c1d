"""How much the trust bundle's publishes may write, and when. Pure: the clock is an argument.

etcd keeps every version of an object until the API server compacts (every 5 minutes), and
past its quota (2 GiB by default) every write in the cluster fails. A sweep of thousands of
identities rewrites every 768 KiB shard in every namespace, so publishes keep to an average
rate. A token bucket: `burst` bytes may be written at once (a new key in a small or
mid-sized mesh goes out without waiting, so `prePublish` need not cover a budget wait), and
sustained writing waits `owed / rate` seconds before the next publish.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WRITE_RATE = 2 * 1024 * 1024  # bytes a second: ~600 MiB between two etcd compactions
WRITE_BURST = 64 * 1024 * 1024  # bytes at once: a mesh's everyday publishes never wait


@dataclass
class WriteBudget:
    rate: float  # bytes a second, on average
    burst: float  # bytes that may be written at once
    _level: float = field(init=False)  # bytes available now (negative: owed)
    _at: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._level = self.burst

    def _refill(self, now: float) -> None:
        if self._at is not None:
            self._level = min(self.burst, self._level + (now - self._at) * self.rate)
        self._at = now

    def spend(self, written: int, now: float) -> None:
        """A publish wrote `written` bytes."""
        self._refill(now)
        self._level -= written

    def wait(self, now: float) -> float:
        """Seconds until the next publish may start (0: now)."""
        self._refill(now)
        return 0.0 if self._level >= 0 else -self._level / self.rate
