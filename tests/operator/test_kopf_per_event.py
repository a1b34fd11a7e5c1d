"""What kopf does at every watch event, kept to what the operator needs."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import kopf

from jwtmesh_operator import indexes
from jwtmesh_operator.diffbase import NoDiffBase

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "jwtmesh_operator"
# Handlers kopf feeds from its diff base (changes since the last handled state).
NEEDS_A_DIFF = re.compile(r"kopf\.(on\.(create|update|delete|resume|field)|daemon|timer)\b")


def test_no_operator_module_registers_a_handler_that_needs_a_diff() -> None:
    sources = sorted(PACKAGE.glob("*.py"))
    assert len(sources) > 20  # the package itself, not an empty folder
    found = [
        f"{path.name}: {match.group(0)}"
        for path in sources
        for match in NEEDS_A_DIFF.finditer(path.read_text())
    ]
    assert found == []


def test_no_diff_base_is_built_or_kept() -> None:
    storage = NoDiffBase()
    body = kopf.Body({"metadata": {"name": "a"}, "spec": {"x": 1}})
    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None


def test_every_index_function_runs_on_the_event_loop() -> None:
    """kopf runs a plain function in a thread pool: a hop per event for a few microseconds
    of work."""
    functions = [getattr(indexes, name) for name in indexes.INDEX_NAMES]
    assert len(functions) >= 5  # grants, revocations (two kinds), namespaces (two)
    assert [f.__name__ for f in functions if not inspect.iscoroutinefunction(f)] == []
