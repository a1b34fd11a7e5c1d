"""What `make demo` reports: each check (expected vs got) and the rotation under load."""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Check:
    name: str
    expected: str
    actual: str

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


@dataclass
class DemoReport:
    checks: list[Check] = field(default_factory=list)
    rotation: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks) and self.rotation.get("failed") == 0

    def add(self, name: str, expected: str, actual: str) -> None:
        self.checks.append(Check(name, expected, actual))

    def render(self) -> str:
        lines = ["", "jwtmesh demo — Herald → Census, and an LRA coordinator's roles", ""]
        for check in self.checks:
            mark = "ok  " if check.ok else "FAIL"
            lines.append(
                f"  {mark} {check.name:<58} expected {check.expected:<28} got {check.actual}"
            )
        r = self.rotation
        if r:
            lines += [
                "",
                f"  rotation under load: {r['requests']} requests in {r['seconds']:.1f} s, "
                f"{r['failed']} failed; signing key {r['old_kid'][:10]}… → {r['new_kid'][:10]}…",
            ]
        lines += ["", "  RESULT: " + ("all checks passed" if self.ok else "SOME CHECKS FAILED"), ""]
        return "\n".join(lines)


def request(
    port: int, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else {}
    finally:
        connection.close()


def outcome(status: int, body: dict[str, Any]) -> str:
    return f"{status} {body.get('error', '')}".strip()


class SteadyTraffic:
    """Herald → Census through the egress listener, as fast as a few threads go."""

    def __init__(self, port: int, threads: int = 4) -> None:
        self.port = port
        self.requests = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self._stop.is_set():
            try:
                connection.request("GET", "/users/7", headers={"host": "census"})
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                status = 0
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                with self._lock:
                    self.failures.append(type(exc).__name__)
            with self._lock:
                self.requests += 1
                if status not in (200, 0):
                    self.failures.append(str(status))
        connection.close()

    def __enter__(self) -> SteadyTraffic:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        self.seconds = time.monotonic() - self.started
