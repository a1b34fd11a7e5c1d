"""The order make test's files run in: the longest first.

make test's parallel part hands whole files to its workers in collection order
(`--dist loadfile --no-loadscope-reorder`). A file of tens of seconds per test handed out
last keeps one worker busy long after the others ran dry, so files with a test marked
`slow` start first, then the fuzzing campaigns, then the files that start an API server,
then those that start Envoy, then the rest. tests/conftest.py applies it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

RUN_FIRST = ("slow", "fuzz", "k8s", "envoy")


class Mark(Protocol):
    @property
    def name(self) -> str: ...


class Collected(Protocol):  # what pytest.Item offers that the order needs
    @property
    def path(self) -> object: ...

    def iter_markers(self) -> Iterable[Mark]: ...


T = TypeVar("T", bound=Collected)


def _rank(item: Collected) -> int:
    marks = {mark.name for mark in item.iter_markers()}
    return next((n for n, name in enumerate(RUN_FIRST) if name in marks), len(RUN_FIRST))


def longest_first(items: list[T]) -> None:
    """Sorts `items` in place by their file's rank: its most urgent mark. Stable, so each
    file's tests stay together and in their own order."""
    file_rank: dict[str, int] = {}
    for item in items:
        path = str(item.path)
        file_rank[path] = min(file_rank.get(path, len(RUN_FIRST)), _rank(item))
    items.sort(key=lambda item: file_rank[str(item.path)])
