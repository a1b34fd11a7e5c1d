"""The start's LIST in place of a GET per identity (listed.py, census.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest
from kubernetes.client.exceptions import ApiException

from jwtmesh_operator.census import census, listed_else_read
from jwtmesh_operator.kube import Stored
from jwtmesh_operator.listed import KEEP_FOR, ListedOnce

NOW = 1_800_000_000.0
POLICY = ("team-a", "billing-policy")
OTHER = ("team-a", "orders-policy")


def stored(version: str) -> Stored:
    return Stored({"policy.yaml": b"rules: []\n"}, version, {})


def test_an_entry_is_taken_once_then_the_api_is_read() -> None:
    listed: ListedOnce[Stored] = ListedOnce()
    listed.fill({POLICY: stored("7")}, NOW)
    assert listed.take(POLICY, NOW + 1) == (True, stored("7"))
    assert listed.take(POLICY, NOW + 2) == (False, None), "a second reconcile reads"
    assert len(listed) == 0


def test_a_name_the_list_did_not_find_is_known_absent_once() -> None:
    listed: ListedOnce[Stored] = ListedOnce()
    listed.fill({POLICY: stored("7")}, NOW)
    assert listed.take(OTHER, NOW) == (True, None), "no such object: create it"
    assert listed.take(OTHER, NOW) == (False, None), "e.g. the create conflicted: read"


def test_nothing_is_known_before_a_list_or_after_it_is_old() -> None:
    listed: ListedOnce[Stored] = ListedOnce()
    assert listed.take(POLICY, NOW) == (False, None), "no LIST yet: read"
    listed.fill({POLICY: stored("7"), OTHER: stored("8")}, NOW)
    assert listed.take(POLICY, NOW + KEEP_FOR) == (True, stored("7"))
    assert listed.take(OTHER, NOW + KEEP_FOR + 1) == (False, None)
    assert len(listed) == 0, "an old LIST is let go"


def test_a_census_lists_every_watched_namespace() -> None:
    asked: list[str | None] = []

    async def lister(namespace: str | None, selector: str) -> dict[tuple[str, str], Stored]:
        asked.append(namespace)
        assert selector == "jwtmesh.io/identity"
        return {(str(namespace), "billing-policy"): stored("3")}

    listed: ListedOnce[Stored] = ListedOnce()
    asyncio.run(census("policies", lister, listed, ["team-a", "team-b"], lambda: NOW))
    assert asked == ["team-a", "team-b"]
    assert listed.take(("team-b", "billing-policy"), NOW) == (True, stored("3"))
    asyncio.run(census("policies", lister, listed, [], lambda: NOW))
    assert asked[-1] is None, "no namespaces given: every namespace at once"


def test_a_refused_census_leaves_every_object_to_be_read(caplog: pytest.LogCaptureFixture) -> None:
    """RBAC from an older chart (get, no list): reconciles read one by one, as before."""

    async def lister(namespace: str | None, selector: str) -> dict[tuple[str, str], Stored]:
        raise ApiException(status=403, reason="Forbidden")

    listed: ListedOnce[Stored] = ListedOnce()
    asyncio.run(census("NetworkPolicies", lister, listed, [], lambda: NOW))
    assert listed.take(POLICY, NOW) == (False, None)
    assert "cannot list NetworkPolicies (403 Forbidden)" in caplog.text


def test_a_reconcile_during_the_census_waits_for_it_instead_of_reading() -> None:
    reads: list[str] = []

    async def read() -> Stored | None:
        reads.append("read")
        return None

    async def scenario() -> Stored | None:
        listed: ListedOnce[Stored] = ListedOnce()
        state = cast(Any, SimpleNamespace(census_idle=asyncio.Event(), clock=lambda: NOW))
        waiting = asyncio.create_task(listed_else_read(state, listed, POLICY, read))
        await asyncio.sleep(0.05)
        assert not waiting.done(), "it waits while the LIST is under way"
        listed.fill({POLICY: stored("9")}, NOW)
        state.census_idle.set()
        return await waiting

    assert asyncio.run(scenario()) == stored("9")
    assert reads == []
