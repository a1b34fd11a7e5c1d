"""The reason table is the one home of every refusal code, and docs/formats.md shows it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jwtmesh import reasons
from jwtmesh.reasons import GrpcCode, reason_for
from jwtmesh.tokens.errors import ALL_TOKEN_ERRORS

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats.md"
_ROW = re.compile(r"^\| (\d{3}) \| `([A-Z_]+)` \| `([a-z_]+)` \| (.+) \|$")


def documented_rows() -> dict[str, tuple[int, str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        match = _ROW.match(line)
        if match:
            status, grpc, code, _meaning = match.groups()
            rows[code] = (int(status), grpc)
    return rows


def test_docs_list_every_code_with_its_http_status_and_grpc_code() -> None:
    table = {r.code: (r.http_status, r.grpc_code.name) for r in reasons.REFUSALS.values()}
    assert documented_rows() == table


def test_every_token_error_names_a_code_of_the_table() -> None:
    for error in ALL_TOKEN_ERRORS:
        assert error.reason in reasons.REFUSALS, error.__name__
        assert reason_for(error.reason).http_status == 401


@pytest.mark.parametrize(
    ("status", "grpc"),
    [
        (401, GrpcCode.UNAUTHENTICATED),
        (403, GrpcCode.PERMISSION_DENIED),
        (400, GrpcCode.INVALID_ARGUMENT),
        (503, GrpcCode.UNAVAILABLE),
    ],
)
def test_a_status_always_goes_with_the_same_grpc_code(status: int, grpc: GrpcCode) -> None:
    for reason in reasons.REFUSALS.values():
        if reason.http_status == status:
            assert reason.grpc_code is grpc, reason.code


def test_an_unknown_code_is_answered_as_an_internal_error() -> None:
    assert reason_for("no_such_code") is reasons.INTERNAL_ERROR
    assert reason_for("allowed").http_status == 200
