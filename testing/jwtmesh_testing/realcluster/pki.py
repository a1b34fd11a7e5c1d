"""The real cluster's certificates and kubeconfigs: one CA, the API server's serving
certificate, a client certificate per component (each with the identity Kubernetes' default
RBAC expects) and the service-account key pair. Kept across `up` runs; `down` removes them."""

from __future__ import annotations

import base64
import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from jwtmesh_testing.localpki import CA_KEY_USAGE
from jwtmesh_testing.realcluster.layout import (
    CLUSTER_DOMAIN,
    GATEWAY,
    KUBERNETES_SERVICE_IP,
    NODE_NAME,
    Layout,
)

# Client identities: file stem -> (common name, organization).
CLIENTS = {
    "admin": ("jwtmesh-admin", "system:masters"),
    "kube-controller-manager": ("system:kube-controller-manager", None),
    "kube-scheduler": ("system:kube-scheduler", None),
    "kube-proxy": ("system:kube-proxy", None),
    "kubelet": (f"system:node:{NODE_NAME}", "system:nodes"),
    "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", "system:masters"),
}
VALIDITY = datetime.timedelta(days=365)


def _name(common_name: str, organization: str | None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.touch(mode=0o600)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _sign(
    builder: x509.CertificateBuilder, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate
) -> x509.Certificate:
    return builder.issuer_name(issuer.subject).sign(key, hashes.SHA256())


def _builder(subject: x509.Name, public: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def _ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("jwtmesh-cluster-ca", None)
    usage = CA_KEY_USAGE
    certificate = (
        _builder(name, key.public_key())
        .issuer_name(name)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / "ca.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    _write_key(directory / "ca.key", key)
    return certificate, key


def _leaf(
    directory: Path,
    stem: str,
    subject: x509.Name,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    sans: list[x509.GeneralName] | None = None,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if sans else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    certificate = _sign(builder, ca[1], ca[0])
    (directory / f"{stem}.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    _write_key(directory / f"{stem}.key", key)


def _serving_names() -> list[x509.GeneralName]:
    dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]
    dns.append(f"kubernetes.default.svc.{CLUSTER_DOMAIN}")
    ips = ["127.0.0.1", GATEWAY, KUBERNETES_SERVICE_IP]
    return [
        *(x509.DNSName(name) for name in dns),
        *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips),
    ]


def ensure_pki(layout: Layout) -> bool:
    """Generate every certificate and key unless they exist; True if generated now."""
    directory = layout.pki
    if (directory / "complete").exists():
        return False
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca(directory)
    _leaf(directory, "apiserver", _name("kube-apiserver", None), ca, _serving_names())
    for stem, (common_name, organization) in CLIENTS.items():
        _leaf(directory, stem, _name(common_name, organization), ca)
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(directory / "sa.key", sa)
    (directory / "sa.pub").write_bytes(
        sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    for user in CLIENTS:
        if user != "apiserver-kubelet-client":
            write_kubeconfig(layout, user)
    (directory / "complete").touch()
    return True


def write_kubeconfig(layout: Layout, user: str) -> None:
    """A kubeconfig for one component (admin's is also copied to the root for people)."""

    def b64(name: str) -> str:
        return base64.b64encode((layout.pki / name).read_bytes()).decode()

    text = f"""apiVersion: v1
kind: Config
clusters:
- name: jwtmesh
  cluster:
    server: {layout.server_url}
    certificate-authority-data: {b64("ca.crt")}
users:
- name: {user}
  user:
    client-certificate-data: {b64(f"{user}.crt")}
    client-key-data: {b64(f"{user}.key")}
contexts:
- name: jwtmesh
  context: {{cluster: jwtmesh, user: {user}}}
current-context: jwtmesh
"""
    targets = [layout.kubeconfig(user)]
    if user == "admin":
        targets.append(layout.admin_kubeconfig)
    for path in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(text)
