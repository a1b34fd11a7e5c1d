"""The sidecar-injection webhook handler. Imported only when the operator serves admission:
kopf refuses to start with admission handlers but no admission server.

The identity is read from the API server at admission time, not from kopf's index: every
replica answers the webhook (the API server picks any ready endpoint), and a standing-by
peer's index is not kept current, so it refused Pods of identities created after it paused
(found on the first real install).
"""

from __future__ import annotations

from typing import Any

import kopf

from jwtmesh_operator.indexes import identity_record, operator_state
from jwtmesh_operator.injection import (
    DEFAULT_RESOURCES,
    INJECTED_ANNOTATION,
    IdentityRef,
    InjectionError,
    InjectionSettings,
    inject,
    key_mount_refusal,
)
from jwtmesh_operator.spec import API_GROUP, API_VERSION, IDENTITY_LABEL
from jwtmesh_operator.tenancy import resolve, service_account_refusal

_DEFAULT_SERVICE_ACCOUNT = "default"
# A refused Pod is Forbidden (it may not have the identity), as the API server answers a
# webhook denial that names no code, or a Bad Request (its jwtmesh annotations cannot be
# read). kopf's own default (500) reads as "Internal error" in kubectl and tells clients
# that retrying might help.
FORBIDDEN = 403
BAD_REQUEST = 400


def _refused(message: str, code: int = FORBIDDEN) -> kopf.AdmissionError:
    return kopf.AdmissionError(message, code=code)


@kopf.on.mutate(
    "", "v1", "pods", id="inject", operation="CREATE", labels={IDENTITY_LABEL: kopf.PRESENT}
)
async def inject_sidecars(body: Any, labels: Any, patch: Any, memo: Any, **kwargs: Any) -> None:
    """Add Envoy, the sidecar and their volumes to a Pod labeled with an identity, if the
    Pod's ServiceAccount may use that identity."""
    state = operator_state(memo)
    namespace = str(body.get("metadata", {}).get("namespace") or kwargs.get("namespace"))
    name = labels[IDENTITY_LABEL]
    found = await state.kube.read_custom(
        API_GROUP, API_VERSION, "serviceidentities", namespace, name
    )
    if found is None:
        raise _refused(
            f"no ServiceIdentity {name!r} in namespace {namespace!r} (label {IDENTITY_LABEL})"
        )
    record = identity_record(namespace, name, found.get("metadata", {}), found.get("spec") or {})
    spec = body.get("spec", {})
    if spec.get("hostNetwork"):
        raise _refused(
            "a hostNetwork Pod cannot use a jwtmesh identity: its ports are the node's, so "
            "Envoy could not stand between the network and the app"
        )
    refusal = service_account_refusal(
        record, spec.get("serviceAccountName") or _DEFAULT_SERVICE_ACCOUNT
    ) or key_mount_refusal(spec, record.secret_name)
    if refusal is not None:
        raise _refused(refusal)
    # The acting operator resolved the audience (grants included) into status; before it
    # has, the identity's own names are the ones it will get.
    audience = (found.get("status") or {}).get("audience") or resolve(
        record, [], state.config.trust_domain
    ).audience
    settings = InjectionSettings(
        envoy_image=state.config.envoy_image,
        sidecar_image=state.config.sidecar_image,
        bundle_configmap=state.config.bundle_name,
        policy_suffix=state.config.policy_suffix,
        sidecar_resources=state.config.sidecar_resources or DEFAULT_RESOURCES,
        envoy_resources=state.config.envoy_resources or DEFAULT_RESOURCES,
    )
    identity = IdentityRef(name=name, audience=audience, secret_name=record.secret_name)
    try:
        injection = inject(body, identity, settings)
    except InjectionError as exc:
        raise _refused(str(exc), BAD_REQUEST) from exc
    if injection is None:
        return
    patch.spec["containers"] = injection.containers
    patch.spec["volumes"] = injection.volumes
    if injection.pod_security_context is not None:
        patch.spec["securityContext"] = injection.pod_security_context
    patch.metadata.setdefault("annotations", {})[INJECTED_ANNOTATION] = "true"
