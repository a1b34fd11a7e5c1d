"""The wrk script of the real-cluster load test (`jwtmesh_testing.realcluster.load`),
against a local server: it must run, re-read the token file, and count every answer that
is not 200 (a Lua error would only show after minutes on the real cluster)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from jwtmesh_testing.realcluster.load import Wrk, WrkResult

GOOD = "g" * 40


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return

    def do_GET(self) -> None:
        good = self.headers.get("authorization") == f"Bearer {GOOD}"
        body = b"ok" if good else json.dumps({"error": "unknown_kid"}).encode()
        self.send_response(200 if good else 401)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[str]:
    httpd = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/users/7"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_wrk_counts_what_is_not_200_and_follows_the_token_file(server: str, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(GOOD + "\n")
    with Wrk(server, "census.demo.svc:8080", token_file, connections=2, delay_ms=5) as wrk:
        time.sleep(1.0)
        token_file.write_text("b" * 40 + "\n")
        time.sleep(1.0)
        result = wrk.stop()
    assert result.requests > 50
    assert 0 < result.failed < result.requests
    assert set(result.codes) == {"401"}
    assert "unknown_kid" in result.first_failures[0]


def test_a_summary_line_is_parsed() -> None:
    line = (
        'JWTMESH_WRK {"requests": 10, "seconds": 2.0, "connect": 1, "read": 0, "write": 0, '
        '"timeout": 2, "status": 3, "codes": {"503": 3}, "p99_ms": 4.5, "first": ["503 x"]}'
    )
    result = WrkResult.parse("Running 2s test\n" + line + "\n")
    assert (result.requests, result.failed, result.codes) == (10, 6, {"503": 3})
