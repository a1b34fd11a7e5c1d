"""Where a gRPC Check spends its time: py-spy samples the sidecar while wrk drives Envoy.

Envoy (`--concurrency 1`) with gRPC ext_authz to a jwtmesh sidecar, one valid ES256 token
(a cache hit after the first request), wrk for --seconds. py-spy samples whichever sidecar
thread holds the GIL (`--gil`), so the samples are Python's share of the CPU; the sidecar's
total CPU comes from /proc. The report splits each Check into our handler
(`check_method`'s `check` and all it calls), the server loop around it (grpc_h2.py, or
grpc_server.py with `--server core`), and
the time spent outside Python (grpc's C core, thread wake-ups, system calls).

    python bench/profile_grpc.py --seconds 10
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_envoy import (
    AUDIENCE,
    bench_token,
    bootstrap,
    cpu_seconds,
    jwtmesh_filter,
    say,
    signing_key_and_bundle,
)
from bench_wrk import token_file, wrk

from jwtmesh.envoy_config import AuthzEndpoint
from jwtmesh_testing.processes import free_port, start_envoy, start_sidecar

HANDLER = "check (jwtmesh_sidecar/grpc_adapter.py"
RATE = 250  # py-spy samples per second


@dataclass(frozen=True)
class Profile:
    samples: int  # every sample: 1/RATE s of a sidecar thread holding the GIL
    in_handler: int  # of which inside check_method()'s check
    outside_handler: list[tuple[str, int]]  # the busiest innermost frames of the rest

    @property
    def handler_share(self) -> float:
        return self.in_handler / self.samples if self.samples else 0.0


def summarise(collapsed: Path, top: int) -> Profile:
    """Collapsed stacks ("frame;frame;... count") → handler share and the busiest leaves."""
    total = in_handler = 0
    leaves: collections.Counter[str] = collections.Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        if HANDLER in stack:
            in_handler += count
        else:
            leaves[stack.split(";")[-1]] += count
    return Profile(total, in_handler, leaves.most_common(top))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--server", choices=("asyncio", "core", "public"), default="asyncio")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    for tool in ("wrk", py_spy):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (make bench installs it)", file=sys.stderr)
            return 2
    workdir = Path(tempfile.mkdtemp(prefix="jwtmesh-profile-"))
    key, bundle = signing_key_and_bundle(workdir)
    token = bench_token(key)
    script = token_file(workdir, "valid", [token])
    grpc_port, envoy_port = free_port(), free_port()
    say("starting the sidecar (gRPC only) and Envoy")
    sidecar = start_sidecar(
        {
            "identity": AUDIENCE,
            "listen": {"grpc": f"127.0.0.1:{grpc_port}"},
            "trust": {"bundleFiles": [str(bundle)]},
            "noPolicy": True,
            "grpcServer": args.server,
        },
        workdir,
    )
    authz = AuthzEndpoint("grpc", port=grpc_port)
    envoy = start_envoy(
        bootstrap(envoy_port, jwtmesh_filter(authz), authz),
        workdir,
        "envoy",
    )
    collapsed = workdir / "sidecar.collapsed"
    try:
        say(f"wrk for {args.seconds} s while py-spy samples the sidecar")
        cpu_before = cpu_seconds(sidecar.pid)
        spy = subprocess.Popen(
            [
                py_spy,
                "record",
                "--format",
                "raw",
                "--rate",
                str(RATE),
                "--gil",
                "--duration",
                str(args.seconds),
                "--pid",
                str(sidecar.pid),
                "--output",
                str(collapsed),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        figures = wrk(envoy_port, script, args.seconds, args.connections)
        cpu = cpu_seconds(sidecar.pid) - cpu_before
        _, spy_err = spy.communicate(timeout=60)
        if spy.returncode != 0 or not collapsed.exists():
            print(f"py-spy failed ({spy.returncode}): {spy_err.strip()}", file=sys.stderr)
            return 1
    finally:
        envoy.stop()
        sidecar.stop()
    requests = int(figures["requests"])
    report = summarise(collapsed, args.top)
    samples, share = report.samples, report.handler_share
    # Each sample is 1/RATE s of Python holding the GIL; spread over the requests served.
    python_us = samples / RATE / requests * 1e6
    per_check = cpu / requests * 1e6
    print()
    print(f"  requests {requests} ({requests / args.seconds:.0f}/s)")
    print(f"  sidecar CPU per Check            {per_check:6.0f} µs  (/proc, all threads)")
    print(f"  Python holding the GIL per Check {python_us:6.0f} µs  ({samples} samples)")
    print(f"    in our Check handler           {python_us * share:6.0f} µs  ({share:.0%})")
    print(f"    in the server loop (Python)    {python_us * (1 - share):6.0f} µs")
    print(f"  outside Python (C core, thread wake-ups, syscalls) {per_check - python_us:.0f} µs")
    print("  busiest Python frames outside the handler (innermost frame, samples):")
    for frame, count in report.outside_handler:
        print(f"    {count:>6}  {frame}")
    print(f"  collapsed stacks (for a flame graph): {collapsed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
