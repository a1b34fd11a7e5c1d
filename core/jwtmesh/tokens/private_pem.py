"""Loading private keys from PEM, with an RSA key's mathematics checked once per process.

`cryptography` checks an RSA private key's parameters as it loads it (p·q = n, the CRT
values, ...): ~80 ms for 3072 bits, while an EC or Ed25519 key loads in ~15 µs. The
operator loads every key of an identity at each of its reconciles (two per rotation), so
at 3,000 RS256 identities that check was most of a rotation sweep's CPU. The same bytes
give the same key: once a PEM has passed the check in this process, loading it again
skips it. Different bytes (a tampered or new key) are checked in full. A PEM this process
renders from a key it holds is as sound as that key (generated here, or loaded with the
check), so it counts as checked too: the operator never checks a key it made itself.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# Digests remembered; past this the oldest are forgotten (and checked again if met again).
# 32-byte digests: ~10 MB at the cap, ~3 MB for 10,000 identities of three keys.
REMEMBERED = 100_000


class CheckedOnce:
    """SHA-256 digests of RSA private-key PEMs that passed `cryptography`'s full check."""

    def __init__(self, limit: int = REMEMBERED) -> None:
        self._limit = limit
        self._digests: dict[bytes, None] = {}  # insertion order: oldest first
        self._lock = threading.Lock()  # keys may be loaded from several threads

    def __contains__(self, digest: object) -> bool:
        return digest in self._digests

    def __len__(self) -> int:
        return len(self._digests)

    def add(self, digest: bytes) -> None:
        with self._lock:
            self._digests[digest] = None
            while len(self._digests) > self._limit:
                del self._digests[next(iter(self._digests))]


CHECKED = CheckedOnce()


def rendered(data: bytes, key: Any, checked: CheckedOnce = CHECKED) -> bytes:
    """`data`, the PEM just rendered from `key` (an object generated or checked here)."""
    if isinstance(key, rsa.RSAPrivateKey):
        checked.add(hashlib.sha256(data).digest())
    return data


def load_private_pem(data: bytes, checked: CheckedOnce = CHECKED) -> Any:
    """The private key in `data` (ValueError or TypeError if unreadable or invalid)."""
    digest = hashlib.sha256(data).digest()
    if digest in checked:
        return serialization.load_pem_private_key(
            data, password=None, unsafe_skip_rsa_key_validation=True
        )
    key = serialization.load_pem_private_key(data, password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        checked.add(digest)
    return key
