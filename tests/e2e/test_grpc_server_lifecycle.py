"""The gRPC server started and stopped hundreds of times: idle, with calls in flight, and
beside busy CPUs. Each scenario runs in a child process (this file, run as a script), so
a crash in grpcio's C core is a failed test with its exit code, not a dead pytest.

Before the server kept grpcio's lifecycle rules (grpc_server.py says which and why) every
scenario crashed here in every run on grpcio 1.85.3: SIGSEGV in stop() when idle, SIGABRT
(a batch on a shut-down queue) with calls in flight, and on 1.78 too, less often. It must
pass every time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from jwtmesh_sidecar.grpc_server import Reply, UnaryServer

pytestmark = pytest.mark.slow  # tens of seconds: not in the fast suite; contention is welcome

ECHO = "/test.Echo/Echo"
SLOW = "/test.Echo/Slow"  # holds its poller a little, so stop() finds calls in flight


def _slow(request: bytes) -> Reply:
    time.sleep(0.002)
    return Reply(request)


def _cycle(index: int, load: bool) -> None:
    """One life of a server: start, serve (under load or not), stop, check it is gone."""
    sock = Path(f"/tmp/jwtmesh-lifecycle-{os.getpid()}-{index}.sock")
    server = UnaryServer({ECHO: lambda r: Reply(r[::-1]), SLOW: _slow}, threads=1 + index % 3)
    port = server.add_port("127.0.0.1:0")
    assert port > 0
    if index % 2:  # TCP alone is what crashed grpcio 1.80+; with a unix socket too, less often
        assert server.add_port(f"unix:{sock}") > 0
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert channel.unary_unary(ECHO)(b"abc", timeout=5) == b"cba"
        if load:
            _stop_under_load(server, channel, grace=(0.0, 0.05, 0.5)[index % 3])
    if not load:  # no connection left: the listeners are the last thing shutdown waits for
        server.stop(grace=0.5)
    sock.unlink(missing_ok=True)
    deadline = time.monotonic() + 10
    while any(t.name.startswith("jwtmesh-grpc-") for t in threading.enumerate()):
        assert time.monotonic() < deadline, f"cycle {index}: a server thread outlived stop()"
        time.sleep(0.01)


def _stop_under_load(server: UnaryServer, channel: grpc.Channel, grace: float) -> None:
    """Four clients keep calling while the server stops; every answer they get is right."""
    answered, wrong = [0], []
    stop_calling = threading.Event()

    def client(n: int) -> None:
        method = channel.unary_unary(SLOW if n % 2 else ECHO)
        payload = f"client-{n}".encode()
        while not stop_calling.is_set():
            try:
                answer = method(payload, timeout=2)
            except grpc.RpcError:
                continue  # refused or cancelled by the stopping server: expected
            if answer not in (payload, payload[::-1]):
                wrong.append(answer)
            answered[0] += 1

    clients = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in clients:
        thread.start()
    deadline = time.monotonic() + 10
    while answered[0] < 20:  # calls are flowing
        assert time.monotonic() < deadline, "the server does not answer"
        time.sleep(0.001)
    server.stop(grace=grace)
    stop_calling.set()
    for thread in clients:
        thread.join(10)
    assert not wrong, f"wrong answers: {wrong[:3]}"


def _child(scenario: str, cycles: int) -> None:
    started = time.monotonic()
    for index in range(cycles):
        _cycle(index, load=scenario == "load" or (scenario == "contention" and index % 2 == 1))
    print(f"{scenario}: {cycles} cycles in {time.monotonic() - started:.1f} s", flush=True)


@contextmanager
def _busy_cpus(count: int) -> Iterator[None]:
    """Busy loops beside the server: threads get preempted at the worst moments."""
    spin = "import time\nend = time.monotonic() + 300\nwhile time.monotonic() < end: pass"
    loops = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(count)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


@pytest.mark.parametrize(
    ("scenario", "cycles", "busy"),
    [("idle", 500, 0), ("load", 200, 0), ("contention", 300, 2)],
)
def test_start_and_stop_many_times(scenario: str, cycles: int, busy: int) -> None:
    with _busy_cpus(busy):
        result = subprocess.run(
            [sys.executable, "-X", "faulthandler", __file__, scenario, str(cycles)],
            capture_output=True,
            text=True,
            timeout=300,
        )
    if result.returncode < 0:
        reason = f"killed by {signal.Signals(-result.returncode).name}"
    else:
        reason = f"exit code {result.returncode}"
    assert result.returncode == 0, f"{scenario}: {reason}\n{result.stderr[-3000:]}"


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]))
