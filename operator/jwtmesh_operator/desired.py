"""The whole decision for one identity, pure: what its Secret and status should be now.

gather (shell) → `decide_identity` (here) → apply (shell). Recovery from a deleted or
hand-edited Secret happens here too: keys that can no longer sign are retired at once but
stay published (tokens they signed may still be in flight), and the planner adds a key.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from jwtmesh.identity import signer_at
from jwtmesh.tokens.keys import PublicKey
from jwtmesh_operator.keystore import StoredKeys
from jwtmesh_operator.planning import (
    UNTRACKED,
    KeySchedule,
    KeyState,
    Plan,
    Publication,
    plan_keys,
)
from jwtmesh_operator.spec import IdentitySpec

SECRET_RECREATED = "SecretRecreated"
SECRET_REPAIRED = "SecretRepaired"


@dataclass(frozen=True)
class IdentityDecision:
    plan: Plan
    public: dict[str, PublicKey]  # public keys of every planned key that already exists
    repair: str | None  # SecretRecreated / SecretRepaired, with `notes` saying why
    notes: tuple[str, ...]


def keys_from_status(
    status: dict[str, Any] | None,
) -> tuple[list[KeySchedule], dict[str, PublicKey]]:
    """The operator's last record of the published keys, kept in status as a backup."""
    schedules: list[KeySchedule] = []
    public: dict[str, PublicKey] = {}
    for entry in (status or {}).get("keys", []) or []:
        try:
            key = PublicKey.from_jwk(entry["jwk"])
            schedules.append(
                KeySchedule(
                    kid=key.kid,
                    activates_at=float(entry["activatesAtUnix"]),
                    retires_at=None
                    if entry.get("retiresAtUnix") is None
                    else float(entry["retiresAtUnix"]),
                    remove_at=None
                    if entry.get("removeAtUnix") is None
                    else float(entry["removeAtUnix"]),
                )
            )
            public[key.kid] = key
        except (KeyError, TypeError, ValueError):
            continue
    return schedules, public


def _retire_now(schedule: KeySchedule, now: float, retain: float) -> KeySchedule:
    if schedule.state(now) in (KeyState.PENDING, KeyState.ACTIVE):
        return replace(schedule, retires_at=now, remove_at=now + retain)
    return schedule


def decide_identity(
    spec: IdentitySpec,
    stored: StoredKeys | None,
    status: dict[str, Any] | None,
    now: float,
    *,
    rotate_requested: bool,
    compromised: frozenset[str],
    publication: Publication = UNTRACKED,
) -> IdentityDecision:
    notes: list[str] = []
    repair: str | None = None
    backup_schedules, backup_public = keys_from_status(status)
    if stored is None:
        schedules, public = backup_schedules, backup_public
        if schedules:
            repair = SECRET_RECREATED
            notes.append("the Secret was deleted; its private keys are lost")
        stored_private: set[str] = set()
    else:
        schedules, public = list(stored.schedules), dict(stored.public)
        stored_private = set(stored.private)
        notes += stored.damaged
        # Keys we published before but that vanished from the Secret come back from status.
        for schedule in backup_schedules:
            if schedule.kid not in public and schedule.kid is not None:
                schedules.append(schedule)
                public[schedule.kid] = backup_public[schedule.kid]
                notes.append(f"published key {schedule.kid[:12]}... restored from status")
        if notes:
            repair = SECRET_REPAIRED
    # A pending or active key without its private half can never sign: retire it now.
    schedules = [
        s if s.kid in stored_private else _retire_now(s, now, spec.rotation.retain)
        for s in schedules
    ]
    plan = plan_keys(
        spec.rotation,
        schedules,
        now,
        rotate_requested=rotate_requested,
        compromised=compromised,
        publication=publication,
    )
    kept = {s.kid for s in plan.keys if s.kid is not None}
    return IdentityDecision(
        plan=plan,
        public={kid: key for kid, key in public.items() if kid in kept},
        repair=repair,
        notes=tuple(notes),
    )


def iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_keys(plan: Plan, public: dict[str, PublicKey], now: float) -> list[dict[str, Any]]:
    """The key list for status: states and times, public JWKs only (never private material)."""
    return [
        {
            "kid": s.kid,
            "alg": public[s.kid].alg,
            "state": s.state(now).value,
            "activatesAt": iso(s.activates_at),
            "retiresAt": iso(s.retires_at),
            "removeAt": iso(s.remove_at),
            "activatesAtUnix": int(s.activates_at),
            "retiresAtUnix": None if s.retires_at is None else int(s.retires_at),
            "removeAtUnix": None if s.remove_at is None else int(s.remove_at),
            "jwk": public[s.kid].to_jwk(),
        }
        for s in plan.keys
        if s.kid is not None and s.kid in public
    ]


def active_kid(plan: Plan, now: float) -> str | None:
    signer = signer_at(plan.keys, now)
    return signer.kid if signer is not None else None


def next_rotation(plan: Plan, now: float) -> float | None:
    """When the current signer stops signing (or, if not scheduled yet, the plan's wake-up)."""
    pending = [s.activates_at for s in plan.keys if s.state(now) is KeyState.PENDING]
    return min(pending) if pending else plan.wake_at
