"""The real single-node cluster of `make cluster`, used as it is (never started here).

Without it the tests skip, unless JWTMESH_REQUIRE_CLUSTER=1 (set by `make e2e`), where a
missing cluster is a failure."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from jwtmesh_testing.realcluster.layout import Layout, NodeBinaries
from jwtmesh_testing.realcluster.workloads import Kube, LocalImages, cluster_running


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
def images() -> LocalImages:
    return LocalImages.current()


@pytest.fixture(scope="module")
def herald_census(kube: Kube, images: LocalImages) -> Iterator[Kube]:
    """jwtmesh installed with Helm (one replica unless JWTMESH_E2E_REPLICAS says otherwise:
    see test_herald_census's docstring), then the Herald → Census example; everything removed
    afterwards, CRDs included."""
    kube.uninstall_everything()  # whatever an interrupted run left
    try:
        kube.install_jwtmesh(images, replicas=int(os.environ.get("JWTMESH_E2E_REPLICAS", "1")))
        kube.apply_example(images)
        yield kube
    finally:
        kube.uninstall_everything()
