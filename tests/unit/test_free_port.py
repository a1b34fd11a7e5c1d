"""free_port under pytest-xdist: each worker picks from a slice of its own."""

from __future__ import annotations

import itertools

import pytest

from jwtmesh_testing import processes


def _range(monkeypatch: pytest.MonkeyPatch, worker: str, count: int) -> tuple[int, int]:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", str(count))
    return processes._port_range()


def test_the_workers_slices_are_disjoint_and_below_the_ephemeral_range(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(processes, "_ephemeral_start", lambda: 32768)
    slices = [_range(monkeypatch, f"gw{n}", 3) for n in range(3)]
    assert slices[0][0] == processes._LOWEST_PORT
    for (low, high), (next_low, _) in itertools.pairwise(slices):
        assert low < high < next_low
    assert slices[-1][1] <= 32767


def test_one_process_looks_in_the_whole_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(processes, "_ephemeral_start", lambda: 32768)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    assert processes._port_range() == (processes._LOWEST_PORT, 32767)


def test_free_port_is_in_this_workers_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    low, high = _range(monkeypatch, "gw1", 2)
    assert low <= processes.free_port() <= high


def test_ports_asked_for_before_anything_binds_them_never_repeat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stack takes a dozen ports, then starts its processes: in a slice of 60 ports, 50
    asked in a row are 50 different ports (random picks alone repeat here almost surely)."""
    monkeypatch.setattr(processes, "_port_range", lambda: (20000, 20059))
    monkeypatch.setattr(processes, "_RECENT", {})
    ports = [processes.free_port() for _ in range(50)]
    assert len(set(ports)) == 50
