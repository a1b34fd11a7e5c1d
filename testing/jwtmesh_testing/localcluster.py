"""A real local control plane: etcd, kube-apiserver and kube-controller-manager as processes.

For the `k8s` tests, the demo and the benchmarks on machines without Docker. The binaries
come from `hack/build-binaries.sh` (built from Go modules, cached outside the repo, found
through the `current.env` file it writes). Everything else is generated here: a CA, a
serving certificate for 127.0.0.1/localhost, an admin client certificate (group
system:masters), the service-account key pair and an admin kubeconfig.

    python -m jwtmesh_testing.localcluster up --workdir /tmp/jwtmesh-cluster

Ports and data survive `stop_apiserver()`/`start_apiserver()` and `restart_etcd()`, so fault
tests can take parts of the control plane away and bring them back.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from jwtmesh_testing.localbinaries import Binaries, LocalClusterError, say
from jwtmesh_testing.localpki import (
    SERVICE_CLUSTER_IP_RANGE,
    Pki,
    write_kubeconfig,
)
from jwtmesh_testing.processes import ManagedProcess

__all__ = ["Binaries", "LocalCluster", "LocalClusterError", "Pki", "main"]

# --- certificates ----------------------------------------------------------------------


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (all sockets held open until every port is chosen)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _die_with_us() -> list[str]:
    """An argv prefix that has the kernel kill the child when this process dies.

    atexit covers normal exits; this covers SIGKILL, and SIGTERM without a handler (the
    default for pytest), where no Python code runs. The parent-death signal fires when the
    *thread* that started the child ends, so it is only used from the main thread.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None or threading.current_thread() is not threading.main_thread():
        return []
    return [setpriv, "--pdeathsig", "KILL", "--"]


class LocalCluster:
    """etcd, kube-apiserver and kube-controller-manager on loopback ports under `workdir`.

    `start()`/`stop()` or `with LocalCluster(path) as cluster:`. Each process logs to
    `<workdir>/<name>.log`. Everything is stopped at interpreter exit at the latest.
    """

    def __init__(self, workdir: Path, binaries: Binaries | None = None) -> None:
        self._workdir = workdir.resolve()
        self.binaries = binaries or Binaries.ensure()
        (
            self.etcd_port,
            self.etcd_peer_port,
            self.apiserver_port,
            self.controller_manager_port,
        ) = _free_ports(4)
        self.pki: Pki | None = None
        self.etcd: ManagedProcess | None = None
        self.apiserver: ManagedProcess | None = None
        self.controller_manager: ManagedProcess | None = None
        self._lock = threading.RLock()
        self._workdir_lock: IO[bytes] | None = None

    # --- where things are

    @property
    def workdir(self) -> Path:
        return self._workdir

    @property
    def kubeconfig(self) -> Path:
        """An admin (system:masters) kubeconfig for this cluster."""
        return self._workdir / "kubeconfig"

    @property
    def server_url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def ca_file(self) -> Path:
        """The CA that signed the API server's serving certificate and the client certificates."""
        return self._require_pki().ca

    @property
    def client_cert_file(self) -> Path:
        return self._require_pki().admin_cert

    @property
    def client_key_file(self) -> Path:
        return self._require_pki().admin_key

    @property
    def running(self) -> bool:
        processes = (self.etcd, self.apiserver, self.controller_manager)
        return all(p is not None and p.popen.poll() is None for p in processes)

    def pids(self) -> dict[str, int]:
        """The running processes' ids by name (a benchmark reads their CPU time)."""
        processes = (self.etcd, self.apiserver, self.controller_manager)
        return {p.name: p.popen.pid for p in processes if p is not None}

    # --- whole cluster

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        """Fresh certificates, kubeconfig and etcd data; then etcd, kube-apiserver and
        kube-controller-manager, each waited for until healthy."""
        with self._lock:
            started = time.monotonic()
            self._claim_workdir()
            atexit.register(self.stop)
            try:
                say(f"generating certificates and kubeconfig in {self._workdir}")
                # A previous cluster's data would hold objects signed for its CA and keys.
                shutil.rmtree(self._workdir / "etcd", ignore_errors=True)
                self.pki = Pki.generate(self._workdir / "pki")
                write_kubeconfig(self.kubeconfig, self.server_url, self.pki)
                self.start_etcd()
                self.start_apiserver()
                self.start_controller_manager()
            except BaseException:
                self.stop()
                raise
            elapsed = time.monotonic() - started
            say(f"control plane {self.binaries.kubernetes_version} ready in {elapsed:.1f} s")
            say(f"kubeconfig: {self.kubeconfig}")

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL after 5 s); safe to call twice."""
        with self._lock:
            for name in ("controller_manager", "apiserver", "etcd"):
                self._stop_process(name)
            if self._workdir_lock is not None:
                self._workdir_lock.close()  # releases the flock
                self._workdir_lock = None
            atexit.unregister(self.stop)

    # --- etcd

    def start_etcd(self) -> None:
        with self._lock:
            say(f"starting etcd on 127.0.0.1:{self.etcd_port}")
            peer_url = f"http://127.0.0.1:{self.etcd_peer_port}"
            self.etcd = self._spawn(
                "etcd",
                [
                    str(self.binaries.etcd),
                    "--name=local",
                    f"--data-dir={self._workdir / 'etcd'}",
                    f"--listen-client-urls={self.etcd_url}",
                    f"--advertise-client-urls={self.etcd_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=local={peer_url}",
                    "--unsafe-no-fsync",  # test data: speed over durability
                    "--log-level=warn",
                ],
            )
            self._wait_healthy(f"{self.etcd_url}/health", self.etcd, timeout=60)

    def stop_etcd(self) -> None:
        with self._lock:
            self._stop_process("etcd")

    def restart_etcd(self) -> None:
        """Stop and start etcd on the same ports with the same data."""
        with self._lock:
            self.stop_etcd()
            self.start_etcd()

    # --- kube-apiserver

    def start_apiserver(self) -> None:
        with self._lock:
            pki = self._require_pki()
            say(f"starting kube-apiserver on {self.server_url}")
            self.apiserver = self._spawn(
                "kube-apiserver",
                [
                    str(self.binaries.kube_apiserver),
                    f"--etcd-servers={self.etcd_url}",
                    f"--secure-port={self.apiserver_port}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--cert-dir={self._workdir / 'apiserver-certs'}",
                    f"--tls-cert-file={pki.serving_cert}",
                    f"--tls-private-key-file={pki.serving_key}",
                    f"--client-ca-file={pki.ca}",
                    f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                    "--allow-privileged=true",
                    "--authorization-mode=RBAC",
                    # Webhooks are on by default; named here because the injector needs them.
                    # Without kubelets there are no tokens to mount: ServiceAccount admission off.
                    "--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
                    "--disable-admission-plugins=ServiceAccount",
                    f"--service-account-issuer={self.server_url}",
                    f"--service-account-key-file={pki.sa_public}",
                    f"--service-account-signing-key-file={pki.sa_private}",
                    "--enable-priority-and-fairness=false",
                    "--v=1",
                ],
            )
            self._wait_healthy(f"{self.server_url}/readyz", self.apiserver, timeout=120)
            if self.controller_manager is not None:
                # Back after an outage: kube-controller-manager's informers would reconnect
                # only after client-go's back-off (up to a minute after a 30 s outage), and
                # garbage collection and namespace deletion would stall until then.
                say("restarting kube-controller-manager so that it reconnects at once")
                self.stop_controller_manager()
                self.start_controller_manager()

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver (for fault tests); `start_apiserver()` brings it back, on the
        same port with the same data, and restarts kube-controller-manager with it."""
        with self._lock:
            self._stop_process("apiserver")

    # --- kube-controller-manager

    def start_controller_manager(self) -> None:
        with self._lock:
            pki = self._require_pki()
            say(
                "starting kube-controller-manager (garbage collector, namespace and "
                f"service-account controllers) on 127.0.0.1:{self.controller_manager_port}"
            )
            self.controller_manager = self._spawn(
                "kube-controller-manager",
                [
                    str(self.binaries.kube_controller_manager),
                    f"--kubeconfig={self.kubeconfig}",
                    "--leader-elect=false",
                    "--controllers=garbage-collector-controller,namespace-controller,"
                    "serviceaccount-controller",
                    "--bind-address=127.0.0.1",
                    f"--secure-port={self.controller_manager_port}",
                    f"--tls-cert-file={pki.serving_cert}",
                    f"--tls-private-key-file={pki.serving_key}",
                    f"--root-ca-file={pki.ca}",
                    f"--service-account-private-key-file={pki.sa_private}",
                    "--v=1",
                ],
            )
            self._wait_healthy(
                f"https://127.0.0.1:{self.controller_manager_port}/healthz",
                self.controller_manager,
                timeout=60,
            )

    def stop_controller_manager(self) -> None:
        with self._lock:
            self._stop_process("controller_manager")

    # --- internals

    def _require_pki(self) -> Pki:
        if self.pki is None:
            raise LocalClusterError("the cluster has not been started (no certificates yet)")
        return self.pki

    def _claim_workdir(self) -> None:
        """Hold an exclusive lock on the workdir, so two clusters never share one."""
        if self._workdir_lock is not None:
            return
        self._workdir.mkdir(parents=True, exist_ok=True)
        handle = (self._workdir / ".lock").open("wb")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise LocalClusterError(
                f"{self._workdir} is in use by another running local cluster"
            ) from None
        self._workdir_lock = handle

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        return ManagedProcess(name, [*_die_with_us(), *argv], self._workdir / f"{name}.log")

    def _stop_process(self, attribute: str) -> None:
        process: ManagedProcess | None = getattr(self, attribute)
        if process is not None:
            if process.popen.poll() is None:
                say(f"stopping {process.name}")
            process.stop()
            setattr(self, attribute, None)

    def _wait_healthy(self, url: str, process: ManagedProcess, *, timeout: float) -> None:
        """Poll `url` until it answers 200; fail early, with the log's tail, if the process dies."""
        context: ssl.SSLContext | None = None
        if url.startswith("https:"):
            pki = self._require_pki()
            context = ssl.create_default_context(cafile=str(pki.ca))
            context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            code = process.popen.poll()
            if code is not None:
                raise LocalClusterError(
                    f"{process.name} exited with status {code} while starting; "
                    f"last lines of {process.log_path}:\n{process.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310
                    if response.status == 200:
                        return
                    last_error = f"HTTP {response.status}"
            except OSError as exc:
                last_error = str(exc)
            time.sleep(0.2)
        raise LocalClusterError(
            f"{process.name} not healthy at {url} after {timeout:.0f} s ({last_error}); "
            f"last lines of {process.log_path}:\n{process.log_tail()}"
        )


# --- command line ----------------------------------------------------------------------


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGHUP)
    }
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jwtmesh_testing.localcluster",
        description="Run a local control plane (etcd, kube-apiserver, kube-controller-manager) "
        "until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("command", choices=["up"], help="start the cluster and wait")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "jwtmesh-cluster",
        help="certificates, kubeconfig, etcd data and logs (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        cluster = LocalCluster(args.workdir)
        with _stop_on_signals() as stop, cluster:
            print(f"export KUBECONFIG={cluster.kubeconfig}", flush=True)
            say("running; Ctrl-C or SIGTERM stops it")
            with contextlib.suppress(KeyboardInterrupt):
                while not stop.wait(1):
                    if not cluster.running:
                        say("a control-plane process exited; see the logs in the workdir")
                        return 1
    except LocalClusterError as exc:
        say(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
