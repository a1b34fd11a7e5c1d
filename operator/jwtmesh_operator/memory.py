"""Keep the operator's resident memory close to what it actually holds.

The operator calls the Kubernetes API from a thread pool and moves trust bundles of up to
~1 MiB through it. With glibc's defaults every thread gets its own malloc arena, and the
dynamic mmap threshold soon serves those large strings from the arenas, where freed space
stays resident. Measured at 1,000 identities (bench/controlplane.py), that is the larger
part of the growth; Python's own objects are a few tens of MiB.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("jwtmesh.operator.memory")

# mallopt(3) parameters, from glibc's <malloc.h>.
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

ARENAS = 2
MMAP_THRESHOLD = 128 * 1024  # fixed: blocks this large are mmapped and returned on free


def tune_malloc() -> bool:
    """Limit malloc arenas and pin the mmap threshold; call before threads start.

    Returns False (and changes nothing) where the C library is not glibc.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None or not hasattr(libc, "gnu_get_libc_version"):
        return False
    ok = bool(mallopt(_M_ARENA_MAX, ARENAS)) and bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    log.debug("malloc tuned: %d arenas, mmap threshold %d bytes (%s)", ARENAS, MMAP_THRESHOLD, ok)
    return ok
