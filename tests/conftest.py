"""Collection order for every test run: the longest files first (jwtmesh_testing.run_order)."""

from __future__ import annotations

import pytest

from jwtmesh_testing.run_order import longest_first


@pytest.hookimpl(tryfirst=True)  # before tests/cluster's own order, which then prevails
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    longest_first(items)
