"""The benchmarks' sidecar configurations are ones the sidecar accepts.

bench/ab_dataplane.py went on writing a configuration the strict loader (issue 16) refuses,
and nothing noticed until the next A/B run failed at its first sidecar."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

from jwtmesh_sidecar.config import ConfigError, config_from_dict

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def ab_dataplane() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        import ab_dataplane  # a script in bench/, not a package

        return ab_dataplane
    finally:
        sys.path.remove(str(BENCH))


def test_the_ab_sidecar_configuration_loads(ab_dataplane: ModuleType, tmp_path: Path) -> None:
    config = ab_dataplane.sidecar_config(15000, 15001, tmp_path / "bundle.json")
    loaded = config_from_dict(config, base=tmp_path)
    assert loaded.no_policy


def test_without_no_policy_it_would_be_refused(ab_dataplane: ModuleType, tmp_path: Path) -> None:
    config = ab_dataplane.sidecar_config(15000, 15001, tmp_path / "bundle.json")
    del config["noPolicy"]
    with pytest.raises(ConfigError, match="noPolicy"):
        config_from_dict(config, base=tmp_path)
