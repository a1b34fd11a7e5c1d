"""The shell around `revocations.judge`: a revocation's status says whether it took effect,
and a refused one also gets a Warning Event naming why."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jwtmesh_operator import conditions as cond
from jwtmesh_operator.bundles import Revocation
from jwtmesh_operator.desired import iso
from jwtmesh_operator.revocations import ACCEPTED, RevocationRecord, judge_all
from jwtmesh_operator.spec import API_GROUP, API_VERSION
from jwtmesh_operator.state import OperatorState
from jwtmesh_operator.tenancy import Resolved


async def report_revocation(
    state: OperatorState,
    body: Any,
    record: RevocationRecord,
    records: list[RevocationRecord],
    identities: Mapping[tuple[str, str], Resolved],
) -> None:
    """`records`: every revocation, this one among them (a namespace's budget counts all)."""
    now = state.clock()
    others = [r for r in records if (r.namespace, r.name) != (record.namespace, record.name)]
    verdict = judge_all([*others, record], identities, now)[(record.namespace, record.name)]
    accepted = isinstance(verdict, Revocation)
    reason = ACCEPTED if isinstance(verdict, Revocation) else verdict.reason
    if isinstance(verdict, Revocation):
        message = f"in every trust bundle, for issuer {verdict.issuer}"
    else:
        message = verdict.message
    status = dict(body.get("status") or {})
    previous: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == ACCEPTED), {}
    )
    if previous.get("reason") == reason and previous.get("message") == message:
        return  # already said; a status patch would only cause another event
    if not accepted:
        state.events.warn(body, reason, message)
    generation = body["metadata"].get("generation")
    conditions = cond.set_condition(
        list(status.get("conditions") or []),
        ACCEPTED,
        accepted,
        reason,
        message,
        generation,
        iso(now) or "",
    )
    plural = "tokenrevocations" if record.namespace is not None else "clustertokenrevocations"
    await state.kube.patch_status(
        API_GROUP,
        API_VERSION,
        plural,
        record.namespace,
        record.name,
        {"conditions": conditions, "observedGeneration": generation},
    )
