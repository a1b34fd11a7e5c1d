"""Will the next restart fit in the container's memory limit? Said while there is time.

A restart lists every identity and its Secret, so its peak grows with the mesh. Until
2026-11-27 kopf held every listed object (with a worker) until its indexes were filled, and
a restart peaked at about twice the running operator (549-720 MiB at 10,000 identities); the
operator now lists and watches those two kinds itself (informer.py) and a restart peaks
with the running operator: measured with bench/controlplane.py (bench/results/), 132.4 MiB
at 1,000 identities and 231.9 MiB at 10,000 (a sweep's peak 129.7 and 243.9 MiB), against
103 MiB idle. A limit below the peak lets the operator run for weeks and then be OOM-killed
at every start. The estimate errs high (~10-15% above those runs). It was measured with
ES256 keys; an RSA-3072 identity's Secret is ~4x larger, so a mesh of RSA identities needs
more room than it says (not measured).
"""

from __future__ import annotations

from pathlib import Path

MIB = 1024 * 1024
RESTART_BASE_BYTES = 128 * MIB
RESTART_BYTES_PER_IDENTITY = 16 * 1024
# The limit to warn at: the estimate's own error, and room for a sweep during the restart.
WARN_AT = 0.9
# Above this a cgroup v1 "limit" means none (it prints the largest page-aligned 64-bit value).
UNLIMITED_V1 = 1 << 60


def restart_peak_estimate(identities: int) -> int:
    """Bytes a restart over `identities` (and their Secrets) is expected to peak at."""
    return RESTART_BASE_BYTES + RESTART_BYTES_PER_IDENTITY * max(0, identities)


def container_memory_limit(cgroup: Path = Path("/sys/fs/cgroup")) -> int | None:
    """This container's memory limit in bytes (cgroup v2, else v1); None: none, or unknown."""
    for path in (cgroup / "memory.max", cgroup / "memory" / "memory.limit_in_bytes"):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text == "max" or not text.isdigit() or int(text) >= UNLIMITED_V1:
            return None
        return int(text)
    return None


def restart_warning(identities: int, limit: int | None) -> str | None:
    """What to tell the platform team when a restart would not fit (None: it would)."""
    if limit is None:
        return None
    needed = restart_peak_estimate(identities)
    if needed <= WARN_AT * limit:
        return None
    return (
        f"a restart over {identities} identities is expected to peak near {needed // MIB} MiB, "
        f"and this container's memory limit is {limit // MIB} MiB: the operator would be "
        f"OOM-killed at every start. Raise resources.limits.memory to at least "
        f"{-(-needed // (WARN_AT * MIB)):.0f} MiB (docs/scaling.md)"
    )
