"""Will a restart fit the memory limit (headroom.py)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from jwtmesh_operator.headroom import (
    MIB,
    container_memory_limit,
    restart_peak_estimate,
    restart_warning,
)
from jwtmesh_operator.main import warn_of_restart_memory
from jwtmesh_operator.readiness import Readiness


def test_the_estimate_covers_every_measured_restart_and_sweep() -> None:
    """bench/results (...T123723Z, and the 1,000 run after it): 1,000 identities peaked at
    132.4 MiB restarting and 129.7 in a sweep, 10,000 at 231.9 and 243.9 MiB."""
    assert 132.4 * MIB <= restart_peak_estimate(1_000) <= 160 * MIB
    assert 243.9 * MIB <= restart_peak_estimate(10_000) <= 300 * MIB


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"memory.max": "268435456\n"}, 256 * MIB),  # cgroup v2
        ({"memory.max": "max\n"}, None),
        ({"memory/memory.limit_in_bytes": "536870912\n"}, 512 * MIB),  # cgroup v1
        ({"memory/memory.limit_in_bytes": "9223372036854771712\n"}, None),  # v1: no limit
        ({"memory.max": "garbage"}, None),
        ({}, None),  # not under a cgroup we can read
    ],
)
def test_the_containers_limit_is_read_from_its_cgroup(
    tmp_path: Path, files: dict[str, str], expected: int | None
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert container_memory_limit(tmp_path) == expected


def test_a_warning_names_the_estimate_the_limit_and_a_limit_that_fits() -> None:
    assert restart_warning(1_000, None) is None
    assert restart_warning(1_000, 256 * MIB) is None
    message = restart_warning(8_000, 256 * MIB)
    assert message is not None
    assert "8000 identities" in message
    assert "256 MiB" in message
    suggested = int(message.split("at least ")[1].split(" MiB")[0])
    assert restart_warning(8_000, suggested * MIB) is None


def test_the_operator_logs_once_when_a_restart_stops_fitting_and_once_when_it_fits_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    identities: dict[tuple[str, str], object] = {}
    state: Any = SimpleNamespace(
        readiness=Readiness(synced=True),
        memory_limit=256 * MIB,
        identities_known=lambda: len(identities),
    )

    async def scenario() -> None:
        task = asyncio.create_task(warn_of_restart_memory(state, every=0.01))
        identities.update({("ns", f"i{n}"): object() for n in range(8_000)})
        await asyncio.sleep(0.1)
        identities.clear()
        await asyncio.sleep(0.1)
        task.cancel()

    with caplog.at_level(logging.INFO, logger="jwtmesh.operator"):
        asyncio.run(scenario())
    said = [r.getMessage() for r in caplog.records if r.name == "jwtmesh.operator"]
    assert len(said) == 2, said
    assert "8000 identities" in said[0]
    assert said[1] == "a restart fits the memory limit again"
