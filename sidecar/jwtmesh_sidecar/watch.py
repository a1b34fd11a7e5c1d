"""Files mounted from ConfigMaps and Secrets, re-read when they change.

Kubernetes updates a mounted volume by swapping the `..data` symlink, so the file's own
path keeps its name while the inode behind it changes: polling `os.stat` (which follows
links) on the path sees every swap. A version that fails to parse is reported and the
last good one is kept.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("jwtmesh.watch")


@dataclass(frozen=True)
class LoadOutcome:
    path: str
    ok: bool
    error: str | None = None


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class WatchedFile(Generic[T]):
    """Holds the last good parse of one file; `poll()` re-reads it if it changed."""

    def __init__(
        self,
        path: Path,
        parse: Callable[[bytes], T],
        on_outcome: Callable[[LoadOutcome], None] | None = None,
    ) -> None:
        self.path = path
        self._parse = parse
        self._on_outcome = on_outcome
        self._seen: tuple[int, int, int, int] | None = None
        self._lock = threading.Lock()
        self.value: T | None = None
        self.loaded_at: float | None = None
        self.last_error: str | None = None

    def poll(self, force: bool = False) -> bool:
        """Re-read if the file changed (or if forced). True when a new value was taken."""
        with self._lock:
            signature = _signature(self.path)
            if not force and signature == self._seen:
                return False
            self._seen = signature
            try:
                data = self.path.read_bytes()
                value = self._parse(data)
            except (OSError, ValueError) as exc:
                # ValueError covers BundleError/PolicyError/IdentityError; the last good stays.
                self.last_error = str(exc)
                if self.value is None:
                    log.warning(
                        "no good version of %s yet: %s",
                        self.path,
                        exc,
                        extra={"event": "load_failed", "path": str(self.path)},
                    )
                else:
                    log.warning(
                        "keeping last good %s: %s",
                        self.path,
                        exc,
                        extra={"event": "reload_failed", "path": str(self.path)},
                    )
                self._report(LoadOutcome(str(self.path), False, str(exc)))
                return False
            self.value = value
            self.loaded_at = time.time()
            self.last_error = None
            self._report(LoadOutcome(str(self.path), True))
            return True

    def _report(self, outcome: LoadOutcome) -> None:
        if self._on_outcome is not None:
            self._on_outcome(outcome)


class Poller:
    """A daemon thread calling `tick()` every `interval` seconds, or at once when woken,
    until stopped."""

    def __init__(self, tick: Callable[[], None], interval: float, name: str) -> None:
        self._tick = tick
        self._interval = interval
        self._stop = threading.Event()
        self._woken = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def wake(self) -> None:
        """Tick as soon as possible; returns at once (safe from any thread)."""
        self._woken.set()

    def stop(self) -> None:
        self._stop.set()
        self._woken.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            self._woken.wait(self._interval)
            self._woken.clear()
            if self._stop.is_set():
                return
            try:
                self._tick()
            except Exception:  # a poller must never die; the error is logged
                log.exception("poller %s failed", self._thread.name)
