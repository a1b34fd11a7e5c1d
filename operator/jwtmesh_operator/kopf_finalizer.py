"""No kopf finalizer on ServiceIdentities.

kopf puts a finalizer on every object a daemon serves, so that the object outlives its
daemon's task. With it, a ServiceIdentity can be deleted only while an operator runs:
after `helm uninstall`, deleting an identity, its namespace or the CRDs hung for ever
(found on the real cluster), and the identities' Secrets stayed with them.

jwtmesh needs nothing done at deletion (garbage collection removes the Secret and the
policy ConfigMap; the bundle follows the watch events), and `keep_identity` stops by
itself once its identity is gone. kopf has no switch for this (nolar/kopf#896 was
declined), so the registered handler's flag is turned off here: kopf 1.45's registry,
pinned by the lock files and checked by tests/operator/test_kopf_finalizer.py. kopf
then also removes the finalizer it put on identities before.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import kopf


def without_finalizer(daemon: Any, registry: Any = None) -> None:
    """The daemon `daemon` (registered with @kopf.daemon) puts no finalizer on objects."""
    spawning = (registry or kopf.get_default_registry())._spawning
    handlers = spawning._handlers
    for index, handler in enumerate(handlers):
        if handler.fn is daemon:
            handlers[index] = dataclasses.replace(handler, requires_finalizer=False)
            return
    raise LookupError(f"{daemon!r} is not a registered kopf daemon")
