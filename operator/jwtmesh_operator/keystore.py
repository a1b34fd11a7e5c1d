"""The identity's Secret: private signing keys and the published key schedule.

Secret type `jwtmesh.io/signing-key`, two entries:
- `signing-keys.json`: the pending and active private keys with their times, in the format
  the sidecar and `jwtmesh token mint` read (`jwtmesh.identity`);
- `published-keys.json`: every key still in the trust bundle (public JWK + times), the
  operator's record of the schedule.

Reading is defensive: a key whose private part is missing or does not match its kid
(a hand-edited Secret) is reported as damaged and never signs again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jwtmesh.identity import (
    IdentityError,
    IdentityKeys,
    ScheduledKey,
    parse_identity,
    render_identity,
)
from jwtmesh.tokens.keys import KeyMaterialError, PublicKey, SigningKey, thumbprint
from jwtmesh_operator.planning import MAX_KEYS, KeySchedule

SECRET_TYPE = "jwtmesh.io/signing-key"
SIGNING_KEYS = "signing-keys.json"
PUBLISHED_KEYS = "published-keys.json"
# The largest published-keys.json read: MAX_KEYS RSA-4096 keys take ~16 KiB. A larger one
# (a tenant's forgery) is refused before it is parsed.
MAX_PUBLISHED_BYTES = 64 * 1024
_LIMITS = f"the {MAX_KEYS} keys or {MAX_PUBLISHED_BYTES} bytes an identity publishes at most"


@dataclass(frozen=True)
class StoredKeys:
    """What the Secret says, after validation."""

    schedules: tuple[KeySchedule, ...] = ()
    public: dict[str, PublicKey] = field(default_factory=dict)
    private: dict[str, SigningKey] = field(default_factory=dict)
    damaged: tuple[str, ...] = ()  # human-readable problems found (never key material)

    def __repr__(self) -> str:
        return f"StoredKeys(kids={sorted(self.public)}, damaged={list(self.damaged)})"


def schedule_to_json(schedule: KeySchedule, key: PublicKey) -> dict[str, Any]:
    return {
        "jwk": key.to_jwk(),
        "activatesAt": int(schedule.activates_at),
        "retiresAt": None if schedule.retires_at is None else int(schedule.retires_at),
        "removeAt": None if schedule.remove_at is None else int(schedule.remove_at),
    }


def schedule_from_json(entry: Any) -> tuple[KeySchedule, PublicKey]:
    key = PublicKey.from_jwk(entry["jwk"])
    if key.kid != thumbprint(key.key):
        raise KeyMaterialError("kid is not the key's thumbprint")

    def optional(name: str) -> float | None:
        return None if entry.get(name) is None else float(entry[name])

    schedule = KeySchedule(
        kid=key.kid,
        activates_at=float(entry["activatesAt"]),
        retires_at=optional("retiresAt"),
        remove_at=optional("removeAt"),
    )
    return schedule, key


def render_secret_data(
    *,
    issuer: str,
    subject: str,
    max_lifetime: float,
    schedules: tuple[KeySchedule, ...],
    public: dict[str, PublicKey],
    private: dict[str, SigningKey],
    now: float,
    claims: Mapping[str, Any] | None = None,
) -> dict[str, bytes]:
    signing = tuple(
        ScheduledKey(private[s.kid], s.activates_at, s.retires_at)
        for s in schedules
        if s.kid is not None and s.kid in private and (s.retires_at is None or s.retires_at > now)
    )
    identity = IdentityKeys(issuer, subject, max_lifetime, signing, dict(claims or {}))
    published = {
        "version": 1,
        "issuer": issuer,
        "keys": [schedule_to_json(s, public[s.kid]) for s in schedules if s.kid is not None],
    }
    return {
        SIGNING_KEYS: render_identity(identity),
        PUBLISHED_KEYS: json.dumps(published, sort_keys=True, indent=1).encode(),
    }


def read_published(raw: bytes | None) -> tuple[list[KeySchedule], dict[str, PublicKey], list[str]]:
    """published-keys.json: schedules and public keys whose kid is their thumbprint, and
    what had to be dropped. The one parser of this file (the bundle's index uses it too).
    A file over MAX_PUBLISHED_BYTES or MAX_KEYS is refused whole, unparsed."""
    damaged: list[str] = []
    schedules: list[KeySchedule] = []
    public: dict[str, PublicKey] = {}
    if raw is not None and len(raw) > MAX_PUBLISHED_BYTES:
        return [], {}, [f"published-keys.json is refused: {len(raw)} bytes, over {_LIMITS}"]
    try:
        document = json.loads(raw or b"")
        if len(document["keys"]) > MAX_KEYS:
            count = len(document["keys"])
            return [], {}, [f"published-keys.json is refused: {count} keys, over {_LIMITS}"]
        for entry in document["keys"]:
            try:
                schedule, key = schedule_from_json(entry)
            except (KeyError, TypeError, ValueError):
                damaged.append("an unreadable entry in published-keys.json was dropped")
                continue
            schedules.append(schedule)
            public[key.kid] = key
    except (KeyError, TypeError, ValueError):
        damaged.append("published-keys.json is missing or unreadable")
    return schedules, public, damaged


def read_secret_data(data: dict[str, bytes]) -> StoredKeys:
    schedules, public, damaged = read_published(data.get(PUBLISHED_KEYS))

    private: dict[str, SigningKey] = {}
    try:
        identity = parse_identity(data[SIGNING_KEYS])
        for scheduled in identity.keys:
            signing = scheduled.key
            published = public.get(signing.kid)
            if published is None or published.to_jwk() != signing.public.to_jwk():
                damaged.append(f"private key {signing.kid[:12]}... does not match a published key")
                continue
            private[signing.kid] = signing
    except (KeyError, IdentityError):
        damaged.append("signing-keys.json is missing or unreadable")
    return StoredKeys(tuple(schedules), public, private, tuple(damaged))
