"""The order files run in: the longest first.

make test's parallel part hands whole files to its workers in collection order
(`--dist loadfile --no-loadscope-reorder`). A file of tens of seconds per test handed out
last keeps one worker busy long after the others ran dry, so files with a test marked
`slow` start first, then the fuzzing campaigns, then the files that start an API server,
then those that start Envoy.
"""

from __future__ import annotations

import pytest

RUN_FIRST = ("slow", "fuzz", "k8s", "envoy")  # anything else after them


def _rank(item: pytest.Item) -> int:
    marks = {mark.name for mark in item.iter_markers()}
    return next((n for n, name in enumerate(RUN_FIRST) if name in marks), len(RUN_FIRST))


@pytest.hookimpl(tryfirst=True)  # before tests/cluster's own order, which then prevails
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    file_rank: dict[str, int] = {}
    for item in items:
        path = str(item.path)
        file_rank[path] = min(file_rank.get(path, len(RUN_FIRST)), _rank(item))
    items.sort(key=lambda item: file_rank[str(item.path)])  # stable: each file's order kept
