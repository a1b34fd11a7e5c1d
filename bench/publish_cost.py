"""What one publish costs the operator after one identity changed, with the real functions
the publisher runs (build_bundle, then BundleRenderer.render), at 1,000 and 10,000 ES256
identities of 3 published keys each; beside it, what the single-document render of the
same bundle costs (every publish before shards). Also: the bytes written per namespace.

    python bench/publish_cost.py [--identities 1000 10000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from trust_domain import bundle, identities, issuer

from jwtmesh.shards import Manifest, render_manifest
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.trust import render_bundle
from jwtmesh_operator.rendering import BundleRenderer


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def measure(count: int, repeat: int) -> None:
    print(f"[bench] {count} identities: generating {3 * count} ES256 keys", flush=True)
    published, meshes = identities(count)
    renderer = BundleRenderer()
    started = time.perf_counter()
    first = renderer.render(bundle(published, meshes), 0)
    cold = time.perf_counter() - started
    builds, renders, singles, changed_bytes = [], [], [], []
    count_now, digests = first.count, first.digests
    for step in range(repeat):
        target = issuer((step * 7919) % count)  # a different identity each time
        new = generate_signing_key().public
        published[target] = {**published[target], new.kid: new}  # a pre-published key
        started = time.perf_counter()
        whole = bundle(published, meshes)
        built = time.perf_counter()
        rendered = renderer.render(whole, count_now)
        done = time.perf_counter()
        render_bundle(whole)  # the single-document render, as every publish did before
        singles.append(time.perf_counter() - done)
        builds.append(built - started)
        renders.append(done - built)
        changed = [i for i in range(rendered.count) if rendered.digests[i] != digests[i]]
        assert len(changed) == 1, (changed, rendered.count)
        assert renderer.members_rendered == 1
        changed_bytes.append(len(rendered.shards[changed[0]]))
        count_now, digests = rendered.count, rendered.digests
    manifest = len(render_manifest(Manifest(10**6, rendered.digests)))
    single = len(rendered.single) if rendered.single is not None else 0
    print(f"  bundle {first.total_bytes:,} bytes in {first.count} shards", end="")
    print(f" (largest {first.largest_shard:,})")
    print(f"  first render (every issuer): {ms(cold)}")
    print(f"  after one identity changed (median of {repeat}):")
    print(f"    build_bundle (every publish, unchanged by shards) {ms(statistics.median(builds))}")
    print(f"    render: one issuer, one shard                     {ms(statistics.median(renders))}")
    print(
        f"    publish total                                     "
        f"{ms(statistics.median(builds) + statistics.median(renders))}"
    )
    print(f"    before shards: the single document's render       {ms(statistics.median(singles))}")
    print(
        f"  written per namespace: one shard of {statistics.median(changed_bytes):,.0f} bytes + "
        f"manifest {manifest} bytes"
        + (
            f" + single-object form {single:,} bytes (while it fits)"
            if single
            else " (the single-object form no longer fits: not written)"
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--identities", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    for count in args.identities:
        measure(count, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
