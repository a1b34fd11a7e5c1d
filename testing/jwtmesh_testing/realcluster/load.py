"""Load through the pods: wrk on the host against a Service's ClusterIP, every request with
a token the caller's own sidecar minted.

`TokenFeed` asks Herald's sidecar for a token (`POST /token` on its loopback, through
`kubectl port-forward`) twice a second and writes it to a file; wrk's script re-reads the
file every 20 requests. So the tokens are signed with whatever key Herald's sidecar signs
with at that moment (its mounted Secret), and verified by Census's sidecar against its
mounted trust bundle: a key that signs before Census has it fails requests here.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jwtmesh.client import TOKEN_REQUEST_HEADER
from jwtmesh_testing.realcluster.clusterapi import token_part

WRK_SCRIPT = r"""
local token_file = "TOKEN_FILE"
local host = "HOST"
local token, count = nil, 0
local threads = {}

function setup(thread) table.insert(threads, thread) end
function init(args) codes = {}; bodies = {} end
function delay() return DELAY end

local function reload()
  local f = io.open(token_file, "r")
  if f then
    local t = f:read("*l"); f:close()
    if t and #t > 20 then token = t end
  end
end

function request()
  count = count + 1
  if token == nil or count % 20 == 0 then reload() end
  return wrk.format("GET", "/users/7", {["Host"] = host, ["Authorization"] = "Bearer " .. token})
end

function response(status, headers, body)
  if status ~= 200 then
    codes[status] = (codes[status] or 0) + 1
    if #bodies < 5 then table.insert(bodies, status .. " " .. body) end
  end
end

function done(summary, latency, requests)
  local failed, first, parts = {}, {}, {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("codes")) do
      failed[tostring(code)] = (failed[tostring(code)] or 0) + n
    end
    for _, b in ipairs(t:get("bodies")) do
      if #first < 5 then table.insert(first, '"' .. string.gsub(b, '[%c"\\]', ' ') .. '"') end
    end
  end
  for code, n in pairs(failed) do table.insert(parts, string.format('"%s": %d', code, n)) end
  local e = summary.errors
  io.write(string.format('JWTMESH_WRK {"requests": %d, "seconds": %.1f, "connect": %d, ' ..
    '"read": %d, "write": %d, "timeout": %d, "status": %d, "codes": {%s}, "p99_ms": %.1f, ' ..
    '"first": [%s]}\n', summary.requests, summary.duration / 1e6, e.connect, e.read, e.write,
    e.timeout, e.status, table.concat(parts, ", "), latency:percentile(99) / 1000,
    table.concat(first, ", ")))
end
"""


@dataclass
class WrkResult:
    requests: int
    seconds: float
    failed: int  # non-200 answers and socket errors (connect, read, write, timeout)
    codes: dict[str, int]
    p99_ms: float
    first_failures: list[str]

    @classmethod
    def parse(cls, output: str) -> WrkResult:
        line = next(ln for ln in output.splitlines() if ln.startswith("JWTMESH_WRK "))
        found: dict[str, Any] = json.loads(line.removeprefix("JWTMESH_WRK "))
        sockets = sum(found[k] for k in ("connect", "read", "write", "timeout"))
        non_200 = sum(found["codes"].values())
        return cls(
            requests=found["requests"],
            seconds=found["seconds"],
            failed=sockets + non_200,
            codes=found["codes"],
            p99_ms=found["p99_ms"],
            first_failures=found["first"],
        )

    def __str__(self) -> str:
        rate = self.requests / self.seconds if self.seconds else 0.0
        return (
            f"{self.requests} requests in {self.seconds:.0f} s ({rate:.0f}/s, p99 "
            f"{self.p99_ms:.1f} ms), {self.failed} failed {self.codes or ''}"
        ).strip()


class Wrk:
    """wrk at a moderate rate (each connection waits `delay_ms` between requests) until
    stopped (SIGINT: wrk prints its summary and runs the script's `done`)."""

    def __init__(
        self, url: str, host: str, token_file: Path, connections: int = 4, delay_ms: int = 20
    ) -> None:
        self.url, self.connections = url, connections
        script = WRK_SCRIPT.replace("TOKEN_FILE", str(token_file)).replace("HOST", host)
        script = script.replace("DELAY", str(delay_ms))
        self.script = token_file.with_suffix(".lua")
        self.script.write_text(script)
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Wrk:
        argv = ["wrk", "-t2", f"-c{self.connections}", "-d3600s", "--timeout", "5s"]
        self._process = subprocess.Popen(
            [*argv, "-s", str(self.script), self.url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(0.5)
        if self._process.poll() is not None:  # a script error, or nothing to connect to
            raise AssertionError(f"wrk stopped at once: {self._process.communicate()[1]}")
        return self

    def __exit__(self, *_: object) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            self._process.communicate()  # reaps it and closes the pipes

    def stop(self) -> WrkResult:
        assert self._process is not None
        self._process.send_signal(signal.SIGINT)
        output, _ = self._process.communicate(timeout=30)
        return WrkResult.parse(output)


@dataclass
class TokenFeed:
    """Herald's sidecar's tokens into `path`, refreshed every `interval` seconds."""

    kubectl: list[str]  # the kubectl command line with its kubeconfig
    namespace: str
    pod: str
    audience: str
    path: Path
    interval: float = 0.5
    kid_first_seen: dict[str, float] = field(default_factory=dict)
    errors: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._forward: subprocess.Popen[str] | None = None
        self._port = 0
        self._thread = threading.Thread(target=self._run, name="token-feed", daemon=True)

    def __enter__(self) -> TokenFeed:
        self._connect()
        self._refresh()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._disconnect()

    def _connect(self) -> None:
        argv = [*self.kubectl, "-n", self.namespace, "port-forward", f"pod/{self.pod}", ":15003"]
        self._forward = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self._forward.stdout is not None
        line = self._forward.stdout.readline()  # "Forwarding from 127.0.0.1:41234 -> 15003"
        match = re.search(r"127\.0\.0\.1:(\d+)", line)
        if match is None:
            raise AssertionError(f"kubectl port-forward: {line!r}")
        self._port = int(match.group(1))

    def _disconnect(self) -> None:
        if self._forward is not None:
            self._forward.terminate()
            self._forward.communicate(timeout=10)  # reaps it and closes its pipe

    def _refresh(self) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self._port}/token",
            data=json.dumps({"audience": self.audience, "lifetimeSeconds": 120}).encode(),
            headers=dict([TOKEN_REQUEST_HEADER]),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            token = json.loads(response.read())["token"]
        kid = str(token_part(token, 0)["kid"])
        self.kid_first_seen.setdefault(kid, time.time())
        with tempfile.NamedTemporaryFile("w", dir=self.path.parent, delete=False) as scratch:
            scratch.write(token + "\n")
        os.replace(scratch.name, self.path)  # wrk never reads half a token

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._refresh()
            except (OSError, ValueError, KeyError):
                self.errors += 1  # wrk goes on with the last token (valid for 2 minutes)
                if self._forward is not None and self._forward.poll() is not None:
                    self._disconnect()
                    self._connect()
