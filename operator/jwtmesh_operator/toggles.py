"""kopf's ToggleSet with waiting in O(1), for starting over thousands of objects.

Before it runs any handler, kopf waits until every index is filled: during the initial
listing each object's worker makes a toggle in one `ToggleSet(all)`, drops it once
indexed, and then waits for the whole set to be on. kopf's set wakes every waiter on
every change and each re-evaluates all toggles, so N objects cost O(N²) wake-ups: a
restart over 10,000 identities and their 10,000 Secrets spent minutes at full CPU in
`Condition.notify_all` before the first handler ran (1,000 identities: ~8 s).

This set counts the toggles that are on and off, and wakes its waiters only when the
set's own state flips. Same interface and semantics as kopf's (`all` or `any` over the
toggles; toggles made by the set, sharing its condition); `install()` puts it in place
of kopf's before `kopf.run` creates its sets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from kopf._cogs.aiokits import aiotoggles  # kopf's internals: pinned, and tested

log = logging.getLogger("jwtmesh.operator")


class _CountedToggle(aiotoggles.Toggle):
    def __init__(self, state: bool, *, name: str | None, owner: FastToggleSet) -> None:
        super().__init__(state, name=name, condition=owner._condition)
        self._owner = owner

    async def turn_to(self, __state: bool) -> None:
        before, after = self.is_on(), bool(__state)
        await super().turn_to(after)
        if before != after:
            self._owner._moved(+1 if after else -1)


class FastToggleSet(aiotoggles.ToggleSet):
    def __init__(self, fn: Callable[[Iterable[bool]], bool]) -> None:
        super().__init__(fn)
        self._on = 0
        self._reached = {True: asyncio.Event(), False: asyncio.Event()}
        self._settle()

    def is_on(self) -> bool:
        off = len(self._toggles) - self._on
        if self._fn is all:
            return off == 0
        if self._fn is any:
            return self._on > 0
        return bool(self._fn(toggle.is_on() for toggle in self._toggles))

    async def wait_for(self, __state: bool) -> None:
        wanted = bool(__state)
        while self.is_on() != wanted:
            await self._reached[wanted].wait()

    async def make_toggle(self, __val: bool = False, *, name: str | None = None) -> Any:
        toggle = _CountedToggle(bool(__val), name=name, owner=self)
        async with self._condition:
            self._toggles.add(toggle)
            self._on += toggle.is_on()
            self._condition.notify_all()
        self._settle()
        return toggle

    async def drop_toggle(self, toggle: Any) -> None:
        await self.drop_toggles([toggle])

    async def drop_toggles(self, toggles: Iterable[Any]) -> None:
        async with self._condition:
            for toggle in toggles:
                if toggle in self._toggles:
                    self._toggles.discard(toggle)
                    self._on -= toggle.is_on()
            self._condition.notify_all()
        self._settle()

    def _moved(self, delta: int) -> None:
        self._on += delta
        self._settle()

    def _settle(self) -> None:
        """Wake the waiters for the state the set is in now; the others wait on."""
        state = self.is_on()
        self._reached[state].set()
        self._reached[not state].clear()


TESTED_KOPF = ((1, 43), (1, 46))  # [from, to): the versions the private contract was tested on


def install(version: str | None = None) -> bool:
    """Use FastToggleSet wherever kopf makes a ToggleSet from now on, where kopf is a
    version it was tested with and still has the set; otherwise kopf's own set runs
    (correct, only slow to start over thousands of objects). Logs which one runs."""
    tested, found = kopf_is_tested(version)
    if not tested or not isinstance(getattr(aiotoggles, "ToggleSet", None), type):
        log.warning("kopf %s: its own ToggleSet runs (starting over many objects is slower)", found)
        return False
    aiotoggles.ToggleSet = FastToggleSet  # type: ignore[misc]
    log.info("kopf %s: FastToggleSet runs kopf's index wait", found)
    return True


def kopf_is_tested(version: str | None) -> tuple[bool, str]:
    """Whether kopf (this `version`, else the installed one) is one the private contracts
    here were tested with; and the version found."""
    found = version if version is not None else _kopf_version()
    parsed = _parse(found)
    return parsed is not None and TESTED_KOPF[0] <= parsed < TESTED_KOPF[1], found


def _kopf_version() -> str:
    from importlib.metadata import version

    return version("kopf")


def _parse(found: str) -> tuple[int, int] | None:
    parts = found.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None
