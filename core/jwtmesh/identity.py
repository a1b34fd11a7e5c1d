"""An identity's signing keys as the operator stores them in its Secret, and which one signs now.

The Secret holds the active key and the pre-published next one, each with its activation
time, so a signer switches at the exact moment without waiting for the operator.
`docs/formats.md` specifies the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from jwtmesh.errors import JwtmeshError
from jwtmesh.tokens.keys import KeyMaterialError, SigningKey

SIGNING_KEYS_FILE = "signing-keys.json"
IDENTITY_FORMAT_VERSION = 1


class IdentityError(JwtmeshError, ValueError):
    """The identity key file is unusable."""


class SigningWindow(Protocol):
    """When a key signs: from `activates_at` until `retires_at` (None: open-ended)."""

    @property
    def activates_at(self) -> float: ...

    @property
    def retires_at(self) -> float | None: ...


W = TypeVar("W", bound=SigningWindow)


def signer_at(keys: Iterable[W], now: float) -> W | None:
    """Which key signs at `now`: of those in their window, the one activated last.

    The one home of this rule: the sidecar and `token mint` pick their key with it, and the
    operator plans rotations and reports `activeKid` with it.
    """
    signing = [key for key in keys if in_window(key, now)]
    return max(signing, key=lambda key: key.activates_at) if signing else None


def in_window(key: SigningWindow, now: float) -> bool:
    return key.activates_at <= now and (key.retires_at is None or now < key.retires_at)


@dataclass(frozen=True)
class ScheduledKey:
    key: SigningKey
    activates_at: float
    retires_at: float | None  # None: signs until a successor activates

    def signs_at(self, now: float) -> bool:
        """Within its window (the signer is the latest of those: `signer_at`)."""
        return in_window(self, now)


@dataclass(frozen=True)
class IdentityKeys:
    issuer: str
    subject: str
    max_lifetime: float
    keys: tuple[ScheduledKey, ...]
    # What a ClusterIdentityGrant gave this identity: every token it mints carries these,
    # and verifiers refuse any other claim from it.
    claims: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        kids = [scheduled.key.kid for scheduled in self.keys]
        return f"IdentityKeys(issuer={self.issuer!r}, subject={self.subject!r}, kids={kids})"


def active_key(identity: IdentityKeys, now: float) -> SigningKey | None:
    """The key this identity signs with at `now` (`signer_at`)."""
    scheduled = signer_at(identity.keys, now)
    return scheduled.key if scheduled is not None else None


def _what_else(document: Any) -> str | None:
    """A file that is plainly another jwtmesh format, named so the mistake is obvious."""
    if isinstance(document, dict) and "version" not in document and "keys" in document:
        return "this is a JWKS (public keys only), not an identity's signing-keys.json"
    if isinstance(document, dict) and "issuers" in document:
        return "this is a trust bundle, not an identity's signing-keys.json"
    return None


def _scheduled(entry: Any, where: str) -> ScheduledKey:
    if not isinstance(entry, dict):
        raise IdentityError(f"{where} must be an object")
    for name in ("privateKeyPem", "alg", "activatesAt"):
        if name not in entry:
            raise IdentityError(f"{where}.{name} is missing")
    try:
        key = SigningKey.from_pem(entry["privateKeyPem"], entry["alg"])
    except (KeyMaterialError, TypeError, AttributeError) as exc:
        # KeyMaterialError never echoes the key; anything else is named by type only.
        detail = str(exc) if isinstance(exc, KeyMaterialError) else "not a PEM string"
        raise IdentityError(f"{where}.privateKeyPem: {detail}") from None
    try:
        retires = entry.get("retiresAt")
        return ScheduledKey(
            key=key,
            activates_at=float(entry["activatesAt"]),
            retires_at=None if retires is None else float(retires),
        )
    except (TypeError, ValueError):
        raise IdentityError(f"{where}: activatesAt and retiresAt must be numbers") from None


def parse_identity(data: bytes) -> IdentityKeys:
    """Parse signing-keys.json; errors name the field at fault, never the key material."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise IdentityError(f"identity key file is not valid JSON{where}") from None
    other = _what_else(document)
    if other is not None:
        raise IdentityError(other)
    if not isinstance(document, dict) or document.get("version") != IDENTITY_FORMAT_VERSION:
        raise IdentityError(
            f"identity key file has an unsupported version (expected {IDENTITY_FORMAT_VERSION})"
        )
    for name in ("issuer", "subject", "maxTokenLifetimeSeconds", "keys"):
        if name not in document:
            raise IdentityError(f"identity key file: {name} is missing")
    if not isinstance(document["keys"], list):
        raise IdentityError("identity key file: keys must be a list")
    keys = tuple(_scheduled(entry, f"keys[{i}]") for i, entry in enumerate(document["keys"]))
    claims = document.get("claims", {})
    if not isinstance(claims, dict):
        raise IdentityError("identity key file: claims must be an object")
    try:
        max_lifetime = float(document["maxTokenLifetimeSeconds"])
    except (TypeError, ValueError):
        raise IdentityError("identity key file: maxTokenLifetimeSeconds must be a number") from None
    return IdentityKeys(
        issuer=str(document["issuer"]),
        subject=str(document["subject"]),
        max_lifetime=max_lifetime,
        keys=keys,
        claims=claims,
    )


def render_identity(identity: IdentityKeys) -> bytes:
    document: dict[str, Any] = {
        "version": IDENTITY_FORMAT_VERSION,
        "issuer": identity.issuer,
        "subject": identity.subject,
        "maxTokenLifetimeSeconds": int(identity.max_lifetime),
        "claims": dict(identity.claims),
        "keys": [
            {
                "kid": scheduled.key.kid,
                "alg": scheduled.key.alg,
                "activatesAt": int(scheduled.activates_at),
                "retiresAt": None if scheduled.retires_at is None else int(scheduled.retires_at),
                "privateKeyPem": scheduled.key.private_pem(),
            }
            for scheduled in identity.keys
        ],
    }
    return json.dumps(document, indent=1, sort_keys=True).encode("utf-8")
