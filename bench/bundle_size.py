"""How far the sharded trust bundle goes, and what a per-namespace filter by policy would
save. Pure computation with the real renderer and planner (no cluster):

- bytes per identity in the bundle, per algorithm and published-key count;
- the largest trust domain that fits the single ConfigMap (1 MiB, what Pods injected
  before shards read) and the 16 shards of 768 KiB (what the injected volume mounts);
- a modelled filter: 10,000 identities in 100 namespaces, each identity's policy naming
  K callers by subject; a namespace's filtered bundle would hold only the issuers some
  policy there admits (docs/scaling.md says why jwtmesh does not filter).

    python bench/bundle_size.py
"""

from __future__ import annotations

import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from trust_domain import NAMESPACES, bundle, identities, issuer

from jwtmesh.shards import MAX_SHARDS, SHARD_LIMIT
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.trust import (
    IssuerTrust,
    MeshIdentity,
    assembled_size,
    issuer_member,
    render_issuer,
)
from jwtmesh_operator.bundles import CONFIGMAP_LIMIT
from jwtmesh_operator.shard_plan import choose_count, issuer_hash


def member_bytes(alg: str, keys: int, samples: int = 20) -> float:
    sizes = []
    for index in range(samples):
        published = [generate_signing_key(alg, 3072).public for _ in range(keys)]
        namespace = f"team-{index % NAMESPACES}"
        trust = IssuerTrust(
            {key.kid: key for key in published},
            mesh=MeshIdentity(f"svc-{index:05d}.{namespace}", namespace),
        )
        sizes.append(len(issuer_member(issuer(index), render_issuer(trust))) + 1)  # + comma
    return statistics.mean(sizes)


def largest_fitting(size: float) -> tuple[int, int]:
    """(identities in one ConfigMap, identities in MAX_SHARDS shards) of `size` bytes each."""
    single = int((CONFIGMAP_LIMIT - assembled_size([])) // size)
    low, high = 1, 100_000
    while low < high:  # the largest count the planner can place
        middle = (low + high + 1) // 2
        members = [(issuer_hash(issuer(i)), round(size)) for i in range(middle)]
        if choose_count(members, 1, SHARD_LIMIT, MAX_SHARDS).count is not None:
            low = middle
        else:
            high = middle - 1
    return single, low


def filtered(count: int, callers_each: int, seed: int = 7) -> tuple[float, int]:
    """Mean bytes of a namespace's filtered bundle, and the unfiltered bundle's bytes."""
    published, meshes = identities(count)
    whole = bundle(published, meshes)
    members = {iss: len(issuer_member(iss, render_issuer(t))) for iss, t in whole.issuers.items()}
    chance = random.Random(seed)  # noqa: S311 - a reproducible model, not security
    names = sorted(members)
    admitted: dict[int, set[str]] = {ns: set() for ns in range(NAMESPACES)}
    for index in range(count):
        admitted[index % NAMESPACES] |= set(chance.sample(names, callers_each))
    per_namespace = [
        assembled_size([members[iss] for iss in issuers]) for issuers in admitted.values()
    ]
    return statistics.mean(per_namespace), assembled_size(list(members.values()))


def main() -> int:
    print("[bench] bytes per identity in the bundle (issuer, binding, JWKS)", flush=True)
    rows = [("ES256", 2), ("ES256", 3), ("EdDSA", 3), ("RS256", 3)]
    for alg, keys in rows:
        size = member_bytes(alg, keys, samples=5 if alg == "RS256" else 50)
        single, sharded = largest_fitting(size)
        print(
            f"  {alg:<6} {keys} keys: {size:6.0f} bytes; fits one ConfigMap up to "
            f"{single:,}, {MAX_SHARDS} shards of {SHARD_LIMIT // 1024} KiB up to {sharded:,}"
        )
    print("[bench] a per-namespace filter by policy (10,000 identities, 100 namespaces)")
    for callers in (5, 20):
        mean, whole = filtered(10_000, callers)
        print(
            f"  each policy naming {callers:>2} callers: a namespace's bundle {mean:,.0f} "
            f"bytes instead of {whole:,} ({mean / whole:.0%})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
