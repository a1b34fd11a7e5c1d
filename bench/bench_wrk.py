"""wrk as the load generator: one run's figures, and the Lua scripts that feed it tokens."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

_LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
# One token: a static header, so wrk builds the request once (a Lua request() function
# costs wrk enough CPU to distort a 2-core machine).
STATIC = """
wrk.headers["authorization"] = "Bearer {token}"
{extra}
"""
ROTATING = """
local tokens = {{}}
for line in io.lines("{path}") do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i + 1
  local token = tokens[(i % #tokens) + 1]
  return wrk.format("GET", "/users/1", {{["authorization"] = "Bearer " .. token}})
end
{extra}
"""
# 12 connections, each waiting 10 ms between requests: about 1,000 req/s in total.
FIXED_RATE = "delay = function() return 10 end"


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
    return result


def token_file(workdir: Path, name: str, tokens: list[str], extra: str = "") -> Path:
    script = workdir / f"{name}.lua"
    if len(tokens) == 1:
        script.write_text(STATIC.format(token=tokens[0], extra=extra))
        return script
    listing = workdir / f"{name}.tokens"
    listing.write_text("\n".join(tokens) + "\n")
    script.write_text(ROTATING.format(path=listing, extra=extra))
    return script
