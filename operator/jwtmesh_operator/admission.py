"""The sidecar-injection webhook handler. Imported only when the operator serves admission:
kopf refuses to start with admission handlers but no admission server."""

from __future__ import annotations

from typing import Any

import kopf

from jwtmesh_operator.handlers import operator_state
from jwtmesh_operator.injection import (
    INJECTED_ANNOTATION,
    IdentityRef,
    InjectionError,
    InjectionSettings,
    inject,
)
from jwtmesh_operator.spec import IDENTITY_LABEL


@kopf.on.mutate(
    "", "v1", "pods", id="inject", operation="CREATE", labels={IDENTITY_LABEL: kopf.PRESENT}
)
async def inject_sidecars(body: Any, labels: Any, patch: Any, memo: Any, **kwargs: Any) -> None:
    """Add Envoy, the sidecar and their volumes to a Pod labeled with an identity."""
    state = operator_state(memo)
    identities = kwargs["identities"]
    namespace = body.get("metadata", {}).get("namespace") or kwargs.get("namespace")
    name = labels[IDENTITY_LABEL]
    found = list(identities.get((namespace, name), []))
    if not found:
        raise kopf.AdmissionError(
            f"no ServiceIdentity {name!r} in namespace {namespace!r} (label {IDENTITY_LABEL})"
        )
    record = found[0]
    settings = InjectionSettings(
        envoy_image=state.config.envoy_image,
        sidecar_image=state.config.sidecar_image,
        bundle_configmap=state.config.bundle_name,
        policy_suffix=state.config.policy_suffix,
    )
    identity = IdentityRef(name=name, audience=record["audience"], secret_name=record["secretName"])
    try:
        injection = inject(body, identity, settings)
    except InjectionError as exc:
        raise kopf.AdmissionError(str(exc)) from exc
    if injection is None:
        return
    patch.spec["containers"] = injection.containers
    patch.spec["volumes"] = injection.volumes
    patch.metadata.setdefault("annotations", {})[INJECTED_ANNOTATION] = "true"
