"""Long-running host processes that outlive `make cluster`: started in their own session,
logged to <root>/logs/<name>.log, remembered by <root>/run/<name>.pid, waited for until
healthy; stopped with SIGTERM, then SIGKILL."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jwtmesh_testing.realcluster.layout import Layout

Check = Callable[[], bool]


class ClusterError(RuntimeError):
    """A step of bringing the cluster up or down failed (the message says which and why)."""


def say(message: str) -> None:
    print(f"[cluster] {message}", flush=True)


@dataclass(frozen=True)
class Daemon:
    name: str
    argv: list[str]
    healthy: Check
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 90.0


def _pid_file(layout: Layout, name: str) -> Path:
    return layout.run / f"{name}.pid"


def _marker(layout: Layout) -> bytes:
    """In the environment of every process we start (and of what they start: containerd's
    shims), so that ours are told from anyone else's running the same binaries."""
    return f"JWTMESH_CLUSTER_DAEMON_OF={layout.root}".encode()


def _is_ours(layout: Layout, pid: int) -> bool:
    try:
        return _marker(layout) in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def running_pid(layout: Layout, name: str) -> int | None:
    """The pid of our `name` if it still runs."""
    try:
        pid = int(_pid_file(layout, name).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _is_ours(layout, pid) and not _is_zombie(pid) else None


def our_processes(layout: Layout) -> list[int]:
    """Every live process carrying our marker (daemons, containerd shims, socat)."""
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    return [pid for pid in pids if pid != os.getpid() and _is_ours(layout, pid)]


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def start(layout: Layout, daemon: Daemon) -> None:
    """Start `daemon` unless it already runs; wait until healthy either way."""
    log = layout.logs / f"{daemon.name}.log"
    if running_pid(layout, daemon.name) is None:
        layout.logs.mkdir(parents=True, exist_ok=True)
        layout.run.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            process = subprocess.Popen(
                daemon.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives `make`, and Ctrl-C in the terminal
                env={**os.environ, **daemon.env, "JWTMESH_CLUSTER_DAEMON_OF": str(layout.root)},
                cwd=layout.root,
            )
        _pid_file(layout, daemon.name).write_text(f"{process.pid}\n")
        # Until execve has finished, /proc/<pid>/environ reads empty: wait for the marker.
        settle = time.monotonic() + 5
        while not _is_ours(layout, process.pid) and time.monotonic() < settle:
            time.sleep(0.01)
        say(f"started {daemon.name} (pid {process.pid}, log {log})")
    else:
        say(f"{daemon.name} already running")
    deadline = time.monotonic() + daemon.timeout
    while not daemon.healthy():
        if running_pid(layout, daemon.name) is None:
            raise ClusterError(f"{daemon.name} exited; last lines of {log}:\n{_log_tail(log)}")
        if time.monotonic() > deadline:
            raise ClusterError(
                f"{daemon.name} not healthy after {daemon.timeout:.0f} s; "
                f"last lines of {log}:\n{_log_tail(log)}"
            )
        time.sleep(0.3)


def stop(layout: Layout, name: str, timeout: float = 15.0) -> None:
    """Stop our `name` (SIGTERM, then SIGKILL after `timeout`)."""
    pid = running_pid(layout, name)
    if pid is None:
        say(f"{name} not running")
    else:
        kill_and_wait(pid, timeout)
        say(f"stopped {name} (pid {pid})")
    _pid_file(layout, name).unlink(missing_ok=True)


def kill_and_wait(pid: int, timeout: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
                return
            time.sleep(0.1)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return True


# --- health checks ----------------------------------------------------------------------


def http_ok(url: str, layout: Layout | None = None) -> Check:
    """200 from `url`; https is verified against the cluster CA with the admin certificate
    when `layout` is given, not verified otherwise (self-signed component endpoints)."""

    def check() -> bool:
        context: ssl.SSLContext | None = None
        if url.startswith("https:"):
            if layout is None:
                context = ssl._create_unverified_context()  # noqa: S323
            else:
                context = ssl.create_default_context(cafile=str(layout.pki / "ca.crt"))
                context.load_cert_chain(layout.pki / "admin.crt", layout.pki / "admin.key")
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310
                return bool(response.status == 200)
        except OSError:
            return False

    return check


def tcp_open(host: str, port: int) -> Check:
    def check() -> bool:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            return False

    return check


def command_ok(argv: list[str]) -> Check:
    def check() -> bool:
        result = subprocess.run(argv, capture_output=True, check=False, timeout=10)
        return result.returncode == 0

    return check


def run(argv: list[str], *, input_text: str | None = None, check: bool = True) -> str:
    """Run a short command; its output, or ClusterError with its stderr."""
    result = subprocess.run(
        argv, input=input_text, capture_output=True, text=True, check=False, timeout=300
    )
    if check and result.returncode != 0:
        raise ClusterError(f"{' '.join(argv[:4])} ... failed: {result.stderr.strip()}")
    return result.stdout


def warn(message: str) -> None:
    print(f"[cluster] warning: {message}", file=sys.stderr, flush=True)
