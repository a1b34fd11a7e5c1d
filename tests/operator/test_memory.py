"""The operator's malloc tuning applies where the C library is glibc."""

from __future__ import annotations

import platform

import pytest

from jwtmesh_operator.memory import tune_malloc


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning is glibc-only")
def test_malloc_tuning_is_accepted_by_glibc() -> None:
    assert tune_malloc() is True
