"""When this replica starts acting: LIST every identity's policy ConfigMap and NetworkPolicy
once, so that each identity's first reconcile need not GET them (listed.py says why).

A kind that cannot be listed (RBAC from an older chart: `get` only) is read one by one as
before; the census is an optimisation, never a condition for reconciling. A reconcile that
starts while the LIST is under way waits for it (at most CENSUS_WAIT), then reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from kubernetes.client.exceptions import ApiException

from jwtmesh_operator.kube import Stored
from jwtmesh_operator.listed import ListedOnce
from jwtmesh_operator.spec import IDENTITY_LABEL
from jwtmesh_operator.state import OperatorState

log = logging.getLogger("jwtmesh.operator")
Lister = Callable[[str | None, str], Awaitable[dict[tuple[str, str], Stored]]]
CENSUS_WAIT = 10.0  # seconds


def start_census(state: OperatorState, namespaces: Sequence[str]) -> asyncio.Task[None]:
    """Every identity is about to be reconciled: list their policies first. The caller
    keeps the task."""
    state.census_idle.clear()
    task = asyncio.get_running_loop().create_task(
        take_policy_census(state, namespaces), name="census"
    )
    task.add_done_callback(lambda _: state.census_idle.set())
    return task


async def listed_else_read(
    state: OperatorState,
    listed: ListedOnce[Stored],
    key: tuple[str, str],
    read: Callable[[], Awaitable[Stored | None]],
) -> Stored | None:
    """The object as the census found it, the first time it is asked for; else as the API
    server has it now."""
    if not state.census_idle.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.census_idle.wait(), CENSUS_WAIT)
    known, found = listed.take(key, state.clock())
    return found if known else await read()


async def take_policy_census(state: OperatorState, namespaces: Sequence[str]) -> None:
    """`namespaces`: those the operator watches (empty: every namespace)."""
    kube = state.kube
    await census(
        "policy ConfigMaps", kube.list_configmaps, state.listed_policies, namespaces, state.clock
    )
    if state.config.network_policies:
        await census(
            "NetworkPolicies",
            kube.list_network_policy_annotations,
            state.listed_network_policies,
            namespaces,
            state.clock,
        )


async def census(
    what: str,
    lister: Lister,
    listed: ListedOnce[Stored],
    namespaces: Sequence[str],
    clock: Callable[[], float],
) -> None:
    """Fill `listed` with what `lister` finds in `namespaces` (empty: all), or leave it
    empty when the API refuses."""
    started = time.monotonic()
    found: dict[tuple[str, str], Stored] = {}
    try:
        scopes: list[str | None] = list(namespaces) or [None]
        for namespace in scopes:
            found.update(await lister(namespace, IDENTITY_LABEL))
    except ApiException as exc:
        log.warning(
            "cannot list %s (%s %s): reading each one as its identity is reconciled",
            what,
            exc.status,
            exc.reason,
            extra={"event": "census_skipped"},
        )
        return
    listed.fill(found, clock())
    log.info(
        "listed %d %s in %.1f s",
        len(found),
        what,
        time.monotonic() - started,
        extra={"event": "census"},
    )
