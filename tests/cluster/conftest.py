"""The real single-node cluster of `make cluster`, used as it is (never started here).

Without it the tests skip, unless JWTMESH_REQUIRE_CLUSTER=1 (set by `make e2e`), where a
missing cluster is a failure.

One installation serves the whole session: the chart with its default values (two
operator replicas) and local images, then the Herald → Census example. The modules run in
the order below; the last one uninstalls it (and the session's end removes whatever is
left, also after a failure).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from jwtmesh_testing.realcluster.clusterapi import ClusterApi
from jwtmesh_testing.realcluster.layout import Layout, NodeBinaries
from jwtmesh_testing.realcluster.workloads import Kube, LocalImages, cluster_running

MODULE_ORDER = (
    "test_herald_census",
    "test_grpc_mode",
    "test_webhook_replicas",
    "test_key_file",
    "test_no_path_around_envoy",
    "test_upgrade",
    "test_rotation_and_failover",
    "test_uninstall",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules in MODULE_ORDER's order, any other before the uninstall (always last: nothing
    runs after it), tests in file order."""

    def rank(item: pytest.Item) -> int:
        name = Path(str(item.fspath)).stem
        if name in MODULE_ORDER:
            return MODULE_ORDER.index(name) * 2
        return MODULE_ORDER.index("test_uninstall") * 2 - 1

    items.sort(key=rank)  # stable: each module's tests keep their order


_diagnosed: list[bool] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """At the first failure, the cluster as it is then (the session's end removes it all)."""
    report = yield
    if report.failed and not _diagnosed and "kube" in getattr(item, "funcargs", {}):
        _diagnosed.append(True)
        kube: Kube = item.funcargs["kube"]  # type: ignore[attr-defined]
        print(f"\n[cluster] the first failure ({item.name}); the cluster then:\n{kube.diagnose()}")
    return report


@pytest.fixture(scope="session")
def kube() -> Kube:
    layout = Layout.from_env()
    if not cluster_running(layout):
        message = f"no real cluster running under {layout.root} (make cluster starts one)"
        if os.environ.get("JWTMESH_REQUIRE_CLUSTER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return Kube(layout, NodeBinaries.load())


@pytest.fixture(scope="session")
def api(kube: Kube) -> ClusterApi:
    return ClusterApi(kube.layout)


@pytest.fixture(scope="session")
def images() -> LocalImages:
    return LocalImages.current()


@pytest.fixture(scope="session")
def herald_census(kube: Kube, images: LocalImages) -> Iterator[Kube]:
    """jwtmesh installed with Helm (default values, local images), then the Herald →
    Census example in one `kubectl apply`; everything removed afterwards, CRDs included."""
    kube.uninstall_everything()  # whatever an interrupted run left
    try:
        kube.install_jwtmesh(images)
        kube.apply_example(images)
        yield kube
    finally:
        kube.uninstall_everything()
