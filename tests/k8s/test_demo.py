"""`make demo` as a test: the same scenario, with its assertions."""

from __future__ import annotations

from pathlib import Path

import pytest

from jwtmesh_testing.demo import run_demo
from jwtmesh_testing.localcluster import LocalCluster

pytestmark = [pytest.mark.k8s, pytest.mark.timing]


def test_the_demo_scenario_passes_end_to_end(
    local_cluster: LocalCluster, crds: list[str], tmp_path: Path
) -> None:
    report = run_demo(tmp_path, cluster=local_cluster)
    print(report.render())
    failed = [check for check in report.checks if not check.ok]
    assert not failed, failed
    assert len(report.checks) == 15
    assert report.rotation["failed"] == 0, report.rotation
    assert report.rotation["requests"] > 100, "steady traffic ran through the rotation"
    assert report.rotation["old_kid"] != report.rotation["new_kid"]
