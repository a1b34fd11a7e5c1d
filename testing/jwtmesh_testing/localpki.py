"""Certificates and kubeconfigs for the local control plane: a CA, a serving certificate
for 127.0.0.1/localhost (and the in-cluster Service address), an admin client certificate
(group system:masters), the service-account key pair."""

from __future__ import annotations

import base64
import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The API server's in-cluster address sits in this range; its serving certificate names it.
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"

# What a CA certificate may do: sign certificates and CRLs (both local clusters' CAs).
CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


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
    if ca:
        builder = builder.add_extension(
            CA_KEY_USAGE,
            critical=True,
        )
    else:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class Pki:
    """The files of one local cluster's PKI (all PEM)."""

    ca: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_public: Path
    sa_private: Path

    @classmethod
    def generate(cls, directory: Path) -> Pki:
        """A CA; a serving certificate for 127.0.0.1, localhost and the in-cluster names; an
        admin client certificate in group system:masters; the service-account RSA key pair."""
        directory.mkdir(parents=True, exist_ok=True)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = _name("jwtmesh-local-ca")
        ca_cert = _certificate(ca_name, ca_key, None, ca=True)
        serving_key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes"),
            x509.DNSName("kubernetes.default"),
            x509.DNSName("kubernetes.default.svc"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address(KUBERNETES_SERVICE_IP)),
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
        pki.admin_cert.write_bytes(admin.public_bytes(pem))
        pki.sa_public.write_bytes(
            sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        for path, key in (
            (pki.serving_key, serving_key),
            (pki.admin_key, admin_key),
            (pki.sa_private, sa_key),
        ):
            path.touch(mode=0o600)
            path.write_bytes(_pem_key(key))
        return pki


def write_kubeconfig(path: Path, server: str, pki: Pki) -> None:
    """An admin kubeconfig with the certificates inlined (usable from any directory)."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    path.touch(mode=0o600)
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


# --- the cluster -----------------------------------------------------------------------
