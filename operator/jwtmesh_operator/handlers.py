"""The map of the operator: which Kubernetes events lead where. Handlers stay thin.

Indexes (kopf fills them completely before any handler runs) hold what the trust bundle
is built from, so a restarted operator never publishes a partial bundle.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from datetime import datetime
from typing import Any

import kopf

from jwtmesh.tokens.keys import PublicKey
from jwtmesh_operator.bundles import Revocation, compromised_kids
from jwtmesh_operator.keystore import PUBLISHED_KEYS, SECRET_TYPE
from jwtmesh_operator.publisher import BundleSources
from jwtmesh_operator.reconcile import RETRY_AFTER_ERROR, reconcile_identity
from jwtmesh_operator.spec import (
    API_GROUP,
    API_VERSION,
    IDENTITY_LABEL,
    default_audience,
    default_issuer,
    default_secret_name,
)
from jwtmesh_operator.state import OperatorState

log = logging.getLogger("jwtmesh.operator")
IDENTITIES = (API_GROUP, API_VERSION, "serviceidentities")
REVOCATIONS = (API_GROUP, API_VERSION, "tokenrevocations")
# A reconcile stuck on the API gives its slot back and retries (each step is safe to redo).
RECONCILE_TIMEOUT = 60.0


def operator_state(memo: Any) -> OperatorState:
    state: OperatorState = memo["state"]
    return state


# --- indexes -------------------------------------------------------------------------


@kopf.index(*IDENTITIES)
def identities(namespace: Any, name: str, spec: Any, memo: Any, **_: Any) -> Any:
    """(namespace, name) → what revocations and sidecar injection need to know."""
    trust_domain = operator_state(memo).config.trust_domain
    return {
        (namespace, name): {
            "issuer": spec.get("issuer") or default_issuer(trust_domain, namespace, name),
            "audience": spec.get("audience") or default_audience(namespace, name),
            "secretName": spec.get("secretName") or default_secret_name(name),
        }
    }


@kopf.index(
    "", "v1", "secrets", labels={IDENTITY_LABEL: kopf.PRESENT}, field="type", value=SECRET_TYPE
)
def published_keys(body: Any, **_: Any) -> Any:
    # A damaged Secret raises here, and kopf drops it from the index: it publishes nothing
    # until its identity repairs it (the status keeps the public keys meanwhile).
    document = json.loads(base64.b64decode(body["data"][PUBLISHED_KEYS]))
    return {document["issuer"]: [entry["jwk"] for entry in document["keys"]]}


@kopf.index(*REVOCATIONS)
def revocation_specs(namespace: Any, name: str, spec: Any, **_: Any) -> Any:
    return {"all": (namespace, name, dict(spec))}


def _labeled_for_bundle(labels: Any, memo: Any, **_: Any) -> bool:
    return operator_state(memo).config.bundle_label in labels


# A filter, not a None result: kopf purges objects that stop matching a filter.
@kopf.index("", "v1", "namespaces", when=_labeled_for_bundle)
def bundle_namespaces(name: str, **_: Any) -> Any:
    return {"labeled": name}


def _unix(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def issuer_of(identities_index: Any, namespace: str, name: str) -> str | None:
    found = list(identities_index.get((namespace, name), []))
    return str(found[0]["issuer"]) if found else None


def revocations_from(specs: Any, identities_index: Any) -> list[Revocation]:
    result = []
    for namespace, _name, spec in specs.get("all", []):
        if spec.get("identity"):
            found = issuer_of(identities_index, namespace, spec["identity"])
            if found is None:
                continue
            issuer = found
        else:
            issuer = spec["issuer"]
        result.append(
            Revocation(
                issuer=issuer,
                jti=spec.get("jti"),
                expires_at=_unix(spec["expiresAt"]) if spec.get("expiresAt") else None,
                issued_before=_unix(spec["issuedBefore"]) if spec.get("issuedBefore") else None,
                kid=spec.get("kid"),
            )
        )
    return result


def bundle_sources(indexes: dict[str, Any]) -> BundleSources:
    published: dict[str, dict[str, PublicKey]] = {}
    for issuer, stores in indexes["published_keys"].items():
        keys = published.setdefault(issuer, {})
        for jwks in stores:
            for jwk in jwks:
                key = PublicKey.from_jwk(jwk)
                keys[key.kid] = key
    namespaces = {namespace for namespace, _ in indexes["identities"]}
    namespaces |= set(indexes["bundle_namespaces"].get("labeled", []))
    revocations = revocations_from(indexes["revocation_specs"], indexes["identities"])
    return BundleSources(published, revocations, namespaces)


def _indexes(kwargs: dict[str, Any]) -> dict[str, Any]:
    names = ("published_keys", "identities", "bundle_namespaces", "revocation_specs")
    return {name: kwargs[name] for name in names}


def request_publish(memo: Any, kwargs: dict[str, Any]) -> None:
    indexes = _indexes(kwargs)
    operator_state(memo).publisher.request(lambda: bundle_sources(indexes))


# --- identities ----------------------------------------------------------------------


@kopf.daemon(*IDENTITIES, cancellation_timeout=10)
async def keep_identity(
    body: Any, namespace: Any, name: str, stopped: Any, memo: Any, **kwargs: Any
) -> None:
    """One per ServiceIdentity: reconcile, then sleep until the next key transition or
    until something wakes it (a spec change, its Secret changing, a revocation)."""
    state = operator_state(memo)
    waker = state.wakers.register(namespace, name)
    try:
        while not stopped:
            waker.clear()
            issuer = issuer_of(kwargs["identities"], namespace, name)
            revocations = revocations_from(kwargs["revocation_specs"], kwargs["identities"])
            compromised = compromised_kids(revocations, issuer) if issuer else frozenset()
            try:
                async with state.reconcile_slots:
                    wake_at = await asyncio.wait_for(
                        reconcile_identity(state, body, compromised), RECONCILE_TIMEOUT
                    )
            except Exception as exc:
                state.counters.reconcile_errors += 1
                log.exception("reconciling %s/%s failed", namespace, name)
                kopf.warn(body, reason="ReconcileFailed", message=f"{type(exc).__name__}; retrying")
                wake_at = state.clock() + RETRY_AFTER_ERROR
            request_publish(memo, kwargs)
            delay = max(0.0, wake_at - state.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waker.wait(), timeout=min(delay, 3600.0))
    finally:
        state.wakers.forget(namespace, name)


@kopf.on.update(*IDENTITIES)
async def identity_changed(namespace: Any, name: str, memo: Any, **_: Any) -> None:
    operator_state(memo).wakers.wake(namespace, name)


@kopf.on.delete(*IDENTITIES, optional=True)
async def identity_deleted(memo: Any, **kwargs: Any) -> None:
    """Keys leave every bundle; the Secret goes by garbage collection (ownerReference)."""
    request_publish(memo, kwargs)


@kopf.on.event("", "v1", "secrets", labels={IDENTITY_LABEL: kopf.PRESENT})
async def identity_secret_changed(
    namespace: Any, labels: Any, memo: Any, event: Any, **kwargs: Any
) -> None:
    """A Secret edited or deleted by hand: its identity repairs it; bundles follow."""
    operator_state(memo).wakers.wake(namespace, labels[IDENTITY_LABEL])
    request_publish(memo, kwargs)


# --- revocations and namespaces ------------------------------------------------------


@kopf.on.event(*REVOCATIONS)
async def revocation_changed(memo: Any, spec: Any, **kwargs: Any) -> None:
    if spec.get("kid"):
        operator_state(memo).wakers.wake_all()  # the identity owning the kid re-keys at once
    request_publish(memo, kwargs)


@kopf.on.event("", "v1", "namespaces")
async def namespace_changed(labels: Any, memo: Any, **kwargs: Any) -> None:
    if operator_state(memo).config.bundle_label in labels:
        request_publish(memo, kwargs)
