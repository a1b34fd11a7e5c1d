"""Status conditions, the cert-manager way: observedGeneration on each, and
lastTransitionTime kept unless the status flips."""

from __future__ import annotations

from typing import Any

# Condition types
READY = "Ready"
DEGRADED = "Degraded"
BUNDLE_SIZE = "BundleSizeOK"

# Reasons (CamelCase, stable)
KEYS_PUBLISHED = "KeysPublished"  # Ready: a key signs and every bundle has it
INVALID_SPEC = "InvalidSpec"  # the spec cannot be acted on
API_ERROR = "APIError"  # the API server refused or failed a write
BUNDLE_NEAR_LIMIT = "BundleNearLimit"  # the trust bundle is over 75% of its capacity
BUNDLE_OVER_LIMIT = "BundleOverLimit"  # the trust bundle no longer fits its shards: not written
# The bundle no longer fits one ConfigMap: its single-object form (read by Pods injected
# before sharded bundles) is no longer updated; the shards are.
SINGLE_BUNDLE_FROZEN = "SingleBundleFrozen"
HEALTHY = "Healthy"


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    generation: int | None,
    now_iso: str,
) -> list[dict[str, Any]]:
    text = "True" if status else "False"
    previous = next((c for c in conditions if c.get("type") == type_), None)
    transition = now_iso
    if previous is not None and previous.get("status") == text:
        transition = previous.get("lastTransitionTime", now_iso)
    updated = {
        "type": type_,
        "status": text,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": transition,
    }
    if previous is None:
        return [*conditions, updated]
    # In place: a status already right compares equal, and is not patched again.
    return [updated if c is previous else c for c in conditions]
