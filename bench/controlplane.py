"""Control plane at scale, against the real local kube-apiserver.

Time until 100 and then 1,000 ServiceIdentities are Ready, a rotation sweep of all of
them, the operator's memory, and trust-bundle bytes per identity per algorithm.

    python bench/controlplane.py --identities 1000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client

from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.trust import render_bundle
from jwtmesh_operator.bundles import build_bundle
from jwtmesh_testing.kubeapply import api_client, create_namespace, install_crds, service_identity
from jwtmesh_testing.localcluster import LocalCluster
from jwtmesh_testing.operator_process import OperatorProcess

GROUP, VERSION, PLURAL = "jwtmesh.io", "v1alpha1", "serviceidentities"
SPEC = {"rotation": {"period": "720h", "prePublish": "1s", "retain": "2h"}}
NAMESPACES = 10


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def rss_mib(pid: int) -> tuple[float, float]:
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def ready_kids(custom: client.CustomObjectsApi) -> dict[str, str]:
    """namespace/name → active kid, for every Ready identity."""
    items = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]
    result = {}
    for item in items:
        status = item.get("status") or {}
        if any(
            c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
        ):
            result[f"{item['metadata']['namespace']}/{item['metadata']['name']}"] = status.get(
                "activeKid", ""
            )
    return result


def wait_ready(
    custom: client.CustomObjectsApi, count: int, started: float, timeout: float
) -> float:
    while True:
        ready = len(ready_kids(custom))
        elapsed = time.monotonic() - started
        if ready >= count:
            return elapsed
        if elapsed > timeout:
            raise TimeoutError(f"only {ready}/{count} Ready after {timeout} s")
        say(f"  {ready}/{count} Ready after {elapsed:.0f} s")
        time.sleep(2)


def create_identities(api: client.ApiClient, first: int, last: int) -> None:
    custom = client.CustomObjectsApi(api)

    def create(index: int) -> None:
        body = service_identity(f"svc-{index:04d}", SPEC)
        custom.create_namespaced_custom_object(
            GROUP, VERSION, f"scale-{index % NAMESPACES}", PLURAL, body
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, range(first, last)))


def bundle_bytes_per_identity() -> dict[str, float]:
    """Canonical bundle bytes per identity with two published keys, per algorithm."""
    result = {}
    for alg in ("ES256", "EdDSA", "RS256", "PS256"):
        count = 10  # enough for a stable average; RSA-3072 generation is slow
        published = {}
        for index in range(count):
            keys = [generate_signing_key(alg, 3072).public for _ in range(2)]
            published[
                f"https://jwtmesh.cluster.local/ns/scale-{index % NAMESPACES}/svc-{index:04d}"
            ] = {k.kid: k for k in keys}
        rendered = render_bundle(build_bundle(published, [], time.time()))
        result[alg] = round(len(rendered) / count, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--identities", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="jwtmesh-bench-cp-"))
    results: dict[str, Any] = {"identities": args.identities}
    say("bundle bytes per identity per algorithm (2 published keys each)")
    results["bundle_bytes_per_identity"] = bundle_bytes_per_identity()
    say(f"  {results['bundle_bytes_per_identity']}")
    with LocalCluster(workdir / "cluster") as cluster:
        api = api_client(cluster.kubeconfig)
        install_crds(api)
        for index in range(NAMESPACES):
            create_namespace(api, f"scale-{index}")
        operator = OperatorProcess.for_cluster(cluster, workdir, name="operator")
        custom = client.CustomObjectsApi(api)
        try:
            time.sleep(5)  # imports done, informers started, nothing to manage yet
            results["operator_rss_mib_idle"] = round(rss_mib(operator.process.pid)[0], 1)
            say(f"operator RSS with no identities: {results['operator_rss_mib_idle']} MiB")
            for target in sorted({min(100, args.identities), args.identities}):
                done = len(ready_kids(custom))
                say(f"creating identities {done}..{target}")
                started = time.monotonic()
                create_identities(api, done, target)
                elapsed = wait_ready(custom, target, started, timeout=600)
                results[f"ready_{target}_seconds"] = round(elapsed, 1)
                say(f"{target} identities Ready in {elapsed:.1f} s")
            results["operator_rss_mib_after_create"] = round(rss_mib(operator.process.pid)[0], 1)

            say(f"rotation sweep: annotating all {args.identities} identities")
            before = ready_kids(custom)
            started = time.monotonic()
            stamp = str(time.time())

            def annotate(key: str) -> None:
                namespace, name = key.split("/")
                custom.patch_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    namespace,
                    PLURAL,
                    name,
                    {"metadata": {"annotations": {"jwtmesh.io/rotate": stamp}}},
                )

            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(annotate, before))
            while True:
                now = ready_kids(custom)
                rotated = sum(1 for key, kid in before.items() if now.get(key) and now[key] != kid)
                elapsed = time.monotonic() - started
                if rotated >= len(before):
                    break
                if elapsed > 600:
                    raise TimeoutError(f"only {rotated} rotated")
                say(f"  {rotated}/{len(before)} rotated after {elapsed:.0f} s")
                time.sleep(2)
            results["rotation_sweep_seconds"] = round(elapsed, 1)
            say(f"rotation sweep of {len(before)} in {elapsed:.1f} s (incl. 1 s pre-publication)")
            rss, peak = rss_mib(operator.process.pid)
            results["operator_rss_mib"] = round(rss, 1)
            results["operator_peak_rss_mib"] = round(peak, 1)
            cm = client.CoreV1Api(api).read_namespaced_config_map("jwtmesh-trust-bundle", "scale-0")
            results["bundle_bytes_in_namespace"] = len(cm.data["bundle.json"])
        finally:
            operator.stop()
    print()
    targets = {"ready_1000_seconds": 60, "rotation_sweep_seconds": 60, "operator_peak_rss_mib": 200}
    for key, value in results.items():
        target = targets.get(key)
        verdict = ""
        if target is not None:
            verdict = f"  (target <= {target}: {'met' if value <= target else 'MISSED'})"
        print(f"  {key:<34} {value}{verdict}")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = args.out / f"controlplane-{stamp}.json"
    out.write_text(json.dumps({"date": stamp, **results}, indent=1))
    say(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
