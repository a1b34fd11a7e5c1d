"""Control plane at scale, against a real local kube-apiserver and etcd.

    python bench/controlplane.py --identities 1000            # make bench
    python bench/controlplane.py --identities 10000           # make bench IDENTITIES=10000
    python bench/controlplane.py --identities 3000 --algorithm RS256 --no-restart

Steps (a progress line every few seconds):
 1. bundle bytes per identity per algorithm (2 published keys each);
 2. apply N ServiceIdentities: seconds until all are Ready, and until every active key
    is in the sharded bundle a Pod mounts (a kubelet-style projected volume, refreshed
    every second) and read by the real `jwtmesh sidecar`; then one token per identity,
    minted from its Secret, checked by that sidecar;
 3. rotation sweep: every identity asked to rotate at once while tokens are minted from
    the Secrets (as the Pods would) and checked by the sidecar: seconds until all sign
    with a new key the sidecar has, tokens refused, the operator's API requests per
    rotation (its jwtmesh_operator_api_requests_total);
 4. restart: the operator stopped, rotations asked for while none runs, a new operator
    over every identity: seconds to /readyz and to steady state, rotations missed or
    duplicated;
 5. operator RSS (idle, peak) from /proc; CPU seconds of each process (etcd, API server,
    controller-manager, operator, sidecar, this script) in steps 2 and 3.
Everything runs on this machine: the API server, etcd, the operator, the sidecar and
this script share its cores, so the figures include that contention.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from cp_mount import BundleMount, SidecarProcess
from cp_phases import Bench, create, say, sweep
from cp_restart import restart
from cp_watch import watch_identities, watch_key_secrets

from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.trust import render_bundle
from jwtmesh_operator.bundles import build_bundle
from jwtmesh_testing.kubeapply import api_client, create_namespace, install_crds
from jwtmesh_testing.localcluster import LocalCluster
from jwtmesh_testing.operator_metrics import read_metrics
from jwtmesh_testing.operator_process import OperatorProcess

TARGETS = {  # the targets: key → (bound, what)
    "ready_and_published_seconds": 120,
    "sweep_seconds": 120,
    "token_failures": 0,
    "token_failures_during_sweep": 0,
    "operator_peak_rss_mib": 300,
    "restart_steady_seconds": 60,
    "restart_rotations_missed": 0,
    "restart_rotations_duplicated": 0,
}


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process."""
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuByProcess:
    """CPU seconds each process of the run used between two readings, and the machine's
    busy CPU seconds (every core, /proc/stat) over the same time: what is left is anything
    else running here. Says where a step's two cores went."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._since = self._read()

    def _read(self) -> dict[str, float]:
        now = {name: cpu_seconds(pid) for name, pid in self._pids.items()}
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        now["machine (busy)"] = (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
        return now

    def spent(self) -> dict[str, float]:
        now = self._read()
        spent = {name: round(now[name] - self._since[name], 1) for name in now}
        spent["other"] = round(
            spent["machine (busy)"] - sum(v for k, v in spent.items() if k != "machine (busy)"), 1
        )
        return spent


def operator_cost(pid: int, port: int, since: tuple[float, float]) -> tuple[float, float]:
    """(CPU seconds, seconds in the garbage collector) the operator spent after `since`."""
    gc_now = read_metrics(port)["jwtmesh_operator_gc_seconds_total"]
    return round(cpu_seconds(pid) - since[0], 1), round(gc_now - since[1], 1)


def bundle_bytes_per_identity() -> dict[str, float]:
    """Canonical bundle bytes per identity with two published keys, per algorithm."""
    result = {}
    for alg in ("ES256", "EdDSA", "RS256", "PS256"):
        count = 10  # enough for a stable average; RSA-3072 generation is slow
        published = {}
        for index in range(count):
            keys = [generate_signing_key(alg, 3072).public for _ in range(2)]
            issuer = f"https://jwtmesh.cluster.local/ns/scale-{index % 10}/svc-{index:05d}"
            published[issuer] = {k.kid: k for k in keys}
        rendered = render_bundle(build_bundle(published, [], time.time()))
        result[alg] = round(len(rendered) / count, 1)
    return result


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--identities", type=int, default=1000)
    parser.add_argument("--algorithm", default="ES256", choices=["ES256", "EdDSA", "RS256"])
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument(
        "--pre-publish",
        help="rotation.prePublish of every identity: how long a new key is published "
        "before it signs (the sweep takes at least this long). It must cover a publish's "
        "write budget (docs/scaling.md): by default 10s up to 2,000 identities, else 60s",
    )
    parser.add_argument(
        "--sweep-by",
        choices=["namespace", "identity"],
        default="namespace",
        help="how step 3 asks for the rotations: the rotate annotation on each Namespace "
        "(one write per namespace, `jwtmesh rotate --all`) or on each identity",
    )
    parser.add_argument("--no-sweep", action="store_true", help="skip step 3")
    parser.add_argument("--no-restart", action="store_true", help="skip step 4")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.pre_publish is None:
        args.pre_publish = "10s" if args.identities <= 2000 else "60s"
    return args


def run(args: argparse.Namespace, workdir: Path, results: dict[str, Any]) -> None:
    spec: dict[str, Any] = {
        "algorithm": args.algorithm,
        "rotation": {"period": "720h", "prePublish": args.pre_publish, "retain": "2h"},
    }
    if args.algorithm == "RS256":
        spec["keySize"] = 3072
    with LocalCluster(workdir / "cluster") as cluster:
        api = api_client(cluster.kubeconfig)
        install_crds(api)
        for index in range(args.namespaces):
            create_namespace(api, f"scale-{index}")

        def start() -> OperatorProcess:
            return OperatorProcess.for_cluster(cluster, workdir, wait_for="/healthz")

        operator = start()
        mount = BundleMount(api, "scale-0", workdir / "pod-bundle")
        mount.start()
        bench = Bench(
            api=api,
            identities=watch_identities(api),
            secrets=watch_key_secrets(api),
            mount=mount,
            sidecar=SidecarProcess(mount.volume.root, "scale-0", workdir / "sidecar.log"),
        )
        try:
            operator.wait_ready()
            time.sleep(3)  # imports done, informers started, nothing to manage yet
            results["operator_rss_mib_idle"] = round(rss_mib(operator.process.pid)[0], 1)
            say(f"operator RSS with no identities: {results['operator_rss_mib_idle']} MiB")
            say(f"step 2: applying {args.identities} {args.algorithm} identities")
            pid = operator.process.pid
            spent = operator_cost(pid, operator.port, (0.0, 0.0))
            pids = {
                **cluster.pids(),
                "operator": pid,
                "sidecar": bench.sidecar.process.pid,
                "benchmark (this script)": os.getpid(),
            }
            by_process = CpuByProcess(pids)
            results.update(create(bench, args.identities, args.namespaces, spec))
            cost = operator_cost(pid, operator.port, spent)
            results["operator_cpu_s_create"], results["operator_gc_s_create"] = cost
            results["cpu_s_create_by_process"] = by_process.spent()
            say(f"operator CPU while creating {cost[0]} s, of which garbage collection {cost[1]} s")
            say(f"CPU seconds by process while creating: {results['cpu_s_create_by_process']}")
            results["operator_rss_mib_after_create"] = round(rss_mib(operator.process.pid)[0], 1)
            metrics = read_metrics(operator.port)
            results["bundle_bytes"] = int(metrics["jwtmesh_operator_bundle_bytes"])
            results["bundle_shards"] = int(metrics["jwtmesh_operator_bundle_shards"])
            if not args.no_sweep:
                say(f"step 3: rotation sweep of all {args.identities}, asked per {args.sweep_by}")
                spent = operator_cost(pid, operator.port, (0.0, 0.0))
                by_process = CpuByProcess(pids)
                results.update(sweep(bench, lambda: read_metrics(operator.port), args.sweep_by))
                cost = operator_cost(pid, operator.port, spent)
                results["operator_cpu_s_sweep"], results["operator_gc_s_sweep"] = cost
                results["cpu_s_sweep_by_process"] = by_process.spent()
                say(f"operator CPU in the sweep {cost[0]} s, garbage collection {cost[1]} s")
                say(f"CPU seconds by process in the sweep: {results['cpu_s_sweep_by_process']}")
            results["operator_peak_rss_mib"] = round(rss_mib(operator.process.pid)[1], 1)
            say(f"operator RSS peak so far {results['operator_peak_rss_mib']} MiB")
            if not args.no_restart:
                say("step 4: restart over every identity")
                operator, figures = restart(bench, operator, start)
                results.update(figures)
                results["restarted_operator_peak_rss_mib"] = round(
                    rss_mib(operator.process.pid)[1], 1
                )
        finally:
            bench.sidecar.stop()
            mount.stop()
            operator.stop()


def report(results: dict[str, Any], out: Path) -> None:
    print()
    for key, value in results.items():
        bound = TARGETS.get(key)
        verdict = ""
        if bound is not None:
            verdict = f"  (target <= {bound}: {'met' if value <= bound else 'MISSED'})"
        print(f"  {key:<38} {value}{verdict}")
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = out / f"controlplane-{results['algorithm']}-{results['identities']}-{stamp}.json"
    path.write_text(json.dumps({"date": stamp, **results}, indent=1))
    say(f"wrote {path}")


def main() -> int:
    args = arguments()
    workdir = Path(tempfile.mkdtemp(prefix="jwtmesh-bench-cp-"))
    results: dict[str, Any] = {
        "identities": args.identities,
        "algorithm": args.algorithm,
        "namespaces": args.namespaces,
        "pre_publish": args.pre_publish,
        "cpus": os.cpu_count(),
    }
    say("step 1: bundle bytes per identity per algorithm (2 published keys each)")
    results["bundle_bytes_per_identity"] = bundle_bytes_per_identity()
    say(f"  {results['bundle_bytes_per_identity']}")
    # A stopped run (SIGTERM) still stops its cluster and removes its 1-3 GB of etcd data.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run(args, workdir, results)
    finally:
        report(results, args.out)
        shutil.rmtree(workdir, ignore_errors=True)
        say(f"removed {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
