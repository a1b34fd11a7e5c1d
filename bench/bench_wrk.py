"""wrk as the load generator: one run's figures, and the Lua scripts that feed it tokens.

Fixed-rate load is paced, not bursty: `paced(rate)` gives every connection's next request
the next free slot of one schedule (slot n at start + n / rate, read from CLOCK_MONOTONIC
through LuaJIT's FFI), so the requests of all connections are spread evenly in time
instead of leaving together. wrk waits in whole milliseconds (its `delay()` is truncated
to an integer and its timers tick per ms), so each request leaves within ±0.5 ms of its
slot: one request per tick at 1,000 req/s, about 5 per tick at 5,000 req/s. A request
that could not leave within 1 ms of its slot (every connection still waiting for an
answer) is counted as late: the run reports them, and a run with more than 1% late is a
burst, not a paced load. Latency is measured from the moment the request is written,
as wrk does (no coordinated-omission correction: the late count says when it would matter).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

_LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_PACING = re.compile(r"^pacing: slots (\d+) late (\d+) worst_ms ([\d.]+)$", re.MULTILINE)
# One token: a static header, so wrk builds the request once (a Lua request() function
# costs wrk enough CPU to distort a 2-core machine).
STATIC = """
wrk.headers["authorization"] = "Bearer {token}"
{extra}
"""
ROTATING = """
local tokens = {{}}
for line in io.lines("{path}") do tokens[#tokens + 1] = line end
local i = {start}
request = function()
  i = i + 1
  local token = tokens[(i % #tokens) + 1]
  return wrk.format("GET", "/users/1", {{["authorization"] = "Bearer " .. token}})
end
{extra}
"""
# One schedule for every connection of the (single) wrk thread; see the module docstring.
PACED = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct {{ long tv_sec; long tv_nsec; }} jwtmesh_timespec;
int clock_gettime(int clk_id, jwtmesh_timespec *tp);
]]
local clock = ffi.new("jwtmesh_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, clock)
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end
local interval = 1000 / {rate}
local next_slot = nil
slots, late, worst = 0, 0, 0
delay = function()
  local now = now_ms()
  next_slot = next_slot or now
  local wait = next_slot - now
  next_slot = next_slot + interval
  slots = slots + 1
  if wait < -1 then
    late = late + 1
    if -wait > worst then worst = -wait end
  end
  if wait <= 0 then return 0 end
  return math.floor(wait + 0.5)
end
local threads = {{}}
setup = function(thread) threads[#threads + 1] = thread end
done = function()
  for _, thread in ipairs(threads) do
    io.write(string.format("pacing: slots %d late %d worst_ms %.1f\\n",
      thread:get("slots"), thread:get("late"), thread:get("worst")))
  end
end
"""
# Connections for a paced run: enough that a free one is waiting at every slot even when an
# answer takes several ms at 5,000 req/s; idle ones cost nothing.
PACED_CONNECTIONS = 32


def paced(rate: int) -> str:
    """The Lua that holds wrk to `rate` requests per second, evenly spread."""
    return PACED.format(rate=rate)


def wrk(port: int, script: Path, seconds: float, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/users/1",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return figures_of(out)


def figures_of(out: str) -> dict[str, float]:
    """req/s, requests, non-2xx, p50/p99 ms and, for a paced run, its late requests."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    result = {
        "rps": rps,
        "requests": float(total),
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
    }
    for pct, value, unit in _LATENCY.findall(out):
        result[f"p{pct}_ms"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    pacing = _PACING.search(out)
    if pacing is not None:
        slots, late = int(pacing.group(1)), int(pacing.group(2))
        result["late_pct"] = 100.0 * late / max(1, slots)
        result["worst_lag_ms"] = float(pacing.group(3))
    return result


def token_file(workdir: Path, name: str, tokens: list[str], extra: str = "") -> Path:
    script = workdir / f"{name}.lua"
    if len(tokens) == 1:
        script.write_text(STATIC.format(token=tokens[0], extra=extra))
        return script
    listing = workdir / f"{name}.tokens"
    listing.write_text("\n".join(tokens) + "\n")
    script.write_text(ROTATING.format(path=listing, extra=extra, start=0))
    return script


_START = re.compile(r"^local i = \d+$", re.MULTILINE)


def start_tokens_at(script: Path, start: int) -> None:
    """A rotating script's next run begins after token `start` of its list (a script of
    one token is left alone). bench/dataplane.py continues each cache's rotation where its
    last run stopped: when every run started at the first token, a sidecar that had served
    the run before (its sibling variant, or an earlier round) still had those tokens in its
    verified-token cache, and "every Check a cache miss" did not hold."""
    text = script.read_text()
    if _START.search(text):
        script.write_text(_START.sub(f"local i = {start}", text, count=1))
