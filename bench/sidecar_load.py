"""The sidecar's loader against a real 10,000-issuer sharded bundle, laid out as the
kubelet writes a projected volume (`..data` symlink swap): cold load time, the re-read
after one shard changed, and RSS; then the real `jwtmesh sidecar` process: time from
start to /readyz 200 and its RSS.

    python bench/sidecar_load.py [--identities 10000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from trust_domain import bundle, identities, issuer

from jwtmesh.shards import MANIFEST_FILE, Manifest, render_manifest, shard_file
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh_operator.rendering import BundleRenderer, Rendered
from jwtmesh_testing.kubelet_volume import KubeletVolume
from jwtmesh_testing.processes import free_port

# Runs in a fresh interpreter, so its RSS is the loader's and nothing else's.
LOADER = """
import json, sys, time
from pathlib import Path
def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
from jwtmesh.tokens.verify import VerifierSettings
from jwtmesh_sidecar.trust_store import TrustStore
from jwtmesh_testing.kubelet_volume import KubeletVolume
root, following = Path(sys.argv[1]), Path(sys.argv[2])
before = rss()
store = TrustStore([], [], VerifierSettings(audience="census.team-0"), directories=[root])
started = time.perf_counter()
store.load_initial()
cold = time.perf_counter() - started
loaded = rss()
volume = KubeletVolume(root)
volume.write({p.name: p.read_bytes() for p in following.iterdir()})
started = time.perf_counter()
changed = store.poll()
reread = time.perf_counter() - started
trusted = store.verifier.bundle
print(json.dumps({"issuers": len(trusted.issuers), "keys": trusted.key_count(),
    "cold_s": cold, "reread_s": reread, "changed": changed, "rss_before_mib": before,
    "rss_loaded_mib": loaded, "rss_after_reread_mib": rss()}))
"""


def files(rendered: Rendered, generation: int) -> dict[str, bytes]:
    out = {shard_file(i): shard for i, shard in enumerate(rendered.shards)}
    out[MANIFEST_FILE] = render_manifest(Manifest(generation, rendered.digests))
    return out


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def real_sidecar(root: Path, workdir: Path) -> tuple[float, float]:
    """Seconds from spawning `jwtmesh sidecar` to /readyz 200, and its RSS then."""
    metrics = free_port()
    argv = [
        sys.executable, "-m", "jwtmesh_sidecar.cli", "sidecar", "--identity", "census.team-0",
        "--http", f"127.0.0.1:{free_port()}", "--metrics", f"127.0.0.1:{metrics}",
        "--bundle-dir", str(root), "--no-policy", "--log-level", "warning",
    ]  # fmt: skip
    log = (workdir / "sidecar.log").open("wb")
    started = time.monotonic()
    process = subprocess.Popen(argv, stdout=log, stderr=log)
    try:
        while time.monotonic() - started < 60:
            try:
                url = f"http://127.0.0.1:{metrics}/readyz"
                with urllib.request.urlopen(url, timeout=1) as answer:
                    if answer.status == 200:
                        return time.monotonic() - started, rss_mib(process.pid)
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
        raise TimeoutError("the sidecar did not become ready (see sidecar.log)")
    finally:
        process.terminate()
        process.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--identities", type=int, default=10_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="jwtmesh-bench-load-"))
    print(f"[bench] {args.identities} identities, 3 ES256 keys each, in {workdir}", flush=True)
    published, meshes = identities(args.identities)
    renderer = BundleRenderer()
    first = renderer.render(bundle(published, meshes), 0)
    volume = KubeletVolume(workdir / "bundle")
    volume.write(files(first, 1))
    new = generate_signing_key().public
    published[issuer(5)] = {**published[issuer(5)], new.kid: new}
    second = renderer.render(bundle(published, meshes), first.count)
    following = workdir / "following"
    following.mkdir()
    for name, data in files(second, 2).items():
        (following / name).write_bytes(data)
    print(f"  bundle {first.total_bytes:,} bytes in {first.count} shards", flush=True)
    result = subprocess.run(
        [sys.executable, "-c", LOADER, str(volume.root), str(following)],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = json.loads(result.stdout)
    print(f"  loader: {loaded['issuers']:,} issuers, {loaded['keys']:,} keys")
    print(f"    cold load (TrustStore.load_initial)        {loaded['cold_s'] * 1000:.0f} ms")
    print(f"    re-read after one shard changed (poll)      {loaded['reread_s'] * 1000:.0f} ms")
    print(
        f"    RSS {loaded['rss_before_mib']:.1f} MiB after imports, "
        f"{loaded['rss_loaded_mib']:.1f} MiB loaded, "
        f"{loaded['rss_after_reread_mib']:.1f} MiB after the re-read"
    )
    ready, rss = real_sidecar(volume.root, workdir)
    print(f"  jwtmesh sidecar: /readyz 200 {ready:.2f} s after spawning (imports included)")
    print(f"    RSS when ready {rss:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
