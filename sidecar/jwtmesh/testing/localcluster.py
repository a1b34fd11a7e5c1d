"""A real local control plane: etcd + kube-apiserver + kube-controller-manager as processes.

For tests, the demo and the benchmarks on machines without Docker. The binaries come from
`hack/build-binaries.sh` (built from Go modules, cached outside the repo). Certificates, a
service-account key pair and an admin kubeconfig are generated with `cryptography`.

    python -m jwtmesh.testing.localcluster up --workdir /tmp/jwtmesh-cluster
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import datetime
import ipaddress
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from jwtmesh.testing.processes import ManagedProcess, free_port

HACK = Path(__file__).resolve().parents[3] / "hack"
DEFAULT_CACHE = Path.home() / ".cache" / "jwtmesh" / "bin"


def say(message: str) -> None:
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kubectl: Path
    helm: Path
    kubernetes_version: str

    @classmethod
    def locate(cls, cache: Path | None = None) -> Binaries | None:
        env_file = (cache or _cache_dir()) / "current.env"
        if not env_file.exists():
            return None
        values = dict(
            line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line
        )
        found = cls(
            etcd=Path(values["JWTMESH_ETCD"]),
            kube_apiserver=Path(values["JWTMESH_KUBE_APISERVER"]),
            kube_controller_manager=Path(values["JWTMESH_KUBE_CONTROLLER_MANAGER"]),
            kubectl=Path(values["JWTMESH_KUBECTL"]),
            helm=Path(values["JWTMESH_HELM"]),
            kubernetes_version=values["JWTMESH_KUBERNETES_VERSION"],
        )
        paths = (
            found.etcd,
            found.kube_apiserver,
            found.kube_controller_manager,
            found.kubectl,
            found.helm,
        )
        return found if all(p.exists() for p in paths) else None

    @classmethod
    def ensure(cls) -> Binaries:
        """Build (or just find) the binaries this repository pins."""
        subprocess.run([str(HACK / "build-binaries.sh")], check=True, stdout=sys.stderr)
        found = cls.locate()
        if found is None:
            raise RuntimeError("hack/build-binaries.sh finished but the binaries are missing")
        return found


def _cache_dir() -> Path:
    return Path(os.environ.get("JWTMESH_BIN_CACHE", DEFAULT_CACHE))


# --- certificates --------------------------------------------------------------------


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    client: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if not ca:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


@dataclass(frozen=True)
class Pki:
    ca: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_public: Path
    sa_private: Path

    @classmethod
    def generate(cls, directory: Path) -> Pki:
        directory.mkdir(parents=True, exist_ok=True)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = _name("jwtmesh-local-ca")
        ca_cert = _certificate(ca_name, ca_key, None, ca=True)
        serving_key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes.default.svc"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
        ]
        serving = _certificate(_name("kube-apiserver"), serving_key, (ca_name, ca_key), sans=sans)
        admin_key = ec.generate_private_key(ec.SECP256R1())
        admin = _certificate(
            _name("jwtmesh-admin", "system:masters"), admin_key, (ca_name, ca_key), client=True
        )
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pki = cls(
            ca=directory / "ca.crt",
            serving_cert=directory / "apiserver.crt",
            serving_key=directory / "apiserver.key",
            admin_cert=directory / "admin.crt",
            admin_key=directory / "admin.key",
            sa_public=directory / "sa.pub",
            sa_private=directory / "sa.key",
        )
        pem = serialization.Encoding.PEM
        pki.ca.write_bytes(ca_cert.public_bytes(pem))
        pki.serving_cert.write_bytes(serving.public_bytes(pem))
        pki.serving_key.write_bytes(_pem_key(serving_key))
        pki.admin_cert.write_bytes(admin.public_bytes(pem))
        pki.admin_key.write_bytes(_pem_key(admin_key))
        pki.sa_private.write_bytes(_pem_key(sa_key))
        pki.sa_public.write_bytes(
            sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        return pki


def write_kubeconfig(path: Path, server: str, pki: Pki) -> None:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: {server}
    certificate-authority-data: {b64(pki.ca)}
users:
- name: admin
  user:
    client-certificate-data: {b64(pki.admin_cert)}
    client-key-data: {b64(pki.admin_key)}
contexts:
- name: local
  context: {{cluster: local, user: admin}}
current-context: local
"""
    )


# --- the cluster ---------------------------------------------------------------------


class LocalCluster:
    """etcd, kube-apiserver and kube-controller-manager on loopback ports.

    Ports and data survive `stop_apiserver()`/`start_apiserver()` and `restart_etcd()`,
    so fault tests can take parts away and bring them back.
    """

    def __init__(self, workdir: Path, binaries: Binaries | None = None) -> None:
        self.workdir = workdir
        self.binaries = binaries or Binaries.ensure()
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.apiserver_port = free_port()
        self.kubeconfig = workdir / "kubeconfig"
        self.etcd: ManagedProcess | None = None
        self.apiserver: ManagedProcess | None = None
        self.controller_manager: ManagedProcess | None = None
        self.pki: Pki | None = None
        self._lock = threading.Lock()

    @property
    def server_url(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        started = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        say(f"generating certificates and kubeconfig in {self.workdir}")
        self.pki = Pki.generate(self.workdir / "pki")
        write_kubeconfig(self.kubeconfig, self.server_url, self.pki)
        atexit.register(self.stop)
        self.start_etcd()
        self.start_apiserver()
        self.start_controller_manager()
        elapsed = time.monotonic() - started
        say(f"control plane {self.binaries.kubernetes_version} ready in {elapsed:.1f} s")

    # etcd
    def start_etcd(self) -> None:
        say(f"starting etcd on 127.0.0.1:{self.etcd_port}")
        client_url = f"http://127.0.0.1:{self.etcd_port}"
        peer_url = f"http://127.0.0.1:{self.etcd_peer_port}"
        self.etcd = ManagedProcess(
            "etcd",
            [
                str(self.binaries.etcd),
                "--name=local",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=local={peer_url}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            self.workdir / "etcd.log",
        )
        self._wait_http(f"{client_url}/health", self.etcd, "etcd", tls=False)

    def restart_etcd(self) -> None:
        if self.etcd is not None:
            say("stopping etcd")
            self.etcd.stop()
        self.start_etcd()

    # kube-apiserver
    def start_apiserver(self) -> None:
        assert self.pki is not None
        say(f"starting kube-apiserver on {self.server_url}")
        pki = self.pki
        self.apiserver = ManagedProcess(
            "kube-apiserver",
            [
                str(self.binaries.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                f"--secure-port={self.apiserver_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--cert-dir={self.workdir / 'apiserver-certs'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--allow-privileged=true",
                "--authorization-mode=RBAC",
                "--disable-admission-plugins=ServiceAccount",
                f"--service-account-issuer={self.server_url}",
                f"--service-account-key-file={pki.sa_public}",
                f"--service-account-signing-key-file={pki.sa_private}",
                "--enable-priority-and-fairness=false",
                "--v=1",
            ],
            self.workdir / "kube-apiserver.log",
        )
        self._wait_http(
            f"{self.server_url}/readyz", self.apiserver, "kube-apiserver", tls=True, timeout=90
        )

    def stop_apiserver(self) -> None:
        if self.apiserver is not None:
            say("stopping kube-apiserver")
            self.apiserver.stop()
            self.apiserver = None

    # kube-controller-manager
    def start_controller_manager(self) -> None:
        assert self.pki is not None
        say("starting kube-controller-manager (garbage collector, namespace controller)")
        self.controller_manager = ManagedProcess(
            "kube-controller-manager",
            [
                str(self.binaries.kube_controller_manager),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--controllers=garbage-collector-controller,namespace-controller",
                "--secure-port=0",
                f"--root-ca-file={self.pki.ca}",
                f"--service-account-private-key-file={self.pki.sa_private}",
                "--v=1",
            ],
            self.workdir / "kube-controller-manager.log",
        )
        time.sleep(0.5)
        if self.controller_manager.popen.poll() is not None:
            raise RuntimeError(
                f"kube-controller-manager exited:\n{self.controller_manager.log_tail()}"
            )

    def stop(self) -> None:
        with self._lock:
            for process in (self.controller_manager, self.apiserver, self.etcd):
                if process is not None:
                    process.stop()
            self.controller_manager = self.apiserver = self.etcd = None

    def _wait_http(
        self, url: str, process: ManagedProcess, name: str, *, tls: bool, timeout: float = 60
    ) -> None:
        context = None
        if tls:
            assert self.pki is not None
            context = ssl.create_default_context(cafile=str(self.pki.ca))
            context.load_cert_chain(str(self.pki.admin_cert), str(self.pki.admin_key))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.popen.poll() is not None:
                raise RuntimeError(f"{name} exited early:\n{process.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{name} not healthy after {timeout} s:\n{process.log_tail()}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Run a local control plane until Ctrl-C.")
    parser.add_argument("command", choices=["up"])
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "jwtmesh-cluster"
    )
    args = parser.parse_args()
    cluster = LocalCluster(args.workdir)
    cluster.start()
    print(f"export KUBECONFIG={cluster.kubeconfig}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
