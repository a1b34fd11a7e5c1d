"""Rotations asked for by hand: on one identity, or on every identity of a namespace.

Both are the `jwtmesh.io/rotate` annotation, and any value it did not have before asks once:
- on a ServiceIdentity: that identity (a tenant may ask for its own);
- on a Namespace: every identity in it, with one write instead of one per identity
  (`jwtmesh rotate --all -n NS`; setting it takes `patch` on the Namespace, which tenants
  usually lack, and it reaches no other namespace).

The status records the last value of each that was carried out, in the same status write
as the rotation, so a restart neither misses nor repeats one. An identity whose first keys
are made after its namespace asked records the value without rotating: its keys are newer
than the request. A value longer than RECORD_LIMIT is recorded by its SHA-256 (an
annotation may hold 256 KiB, and a namespace's is copied into every identity's status).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jwtmesh_operator.spec import ROTATE_ANNOTATION

IDENTITY_RECORD = "lastRotationRequest"  # status field: the identity's annotation, done
NAMESPACE_RECORD = "lastNamespaceRotationRequest"  # status field: its namespace's, done
RECORD_LIMIT = 128  # characters of a value recorded as it is


def recorded(value: Any) -> str:
    """How the status records an annotation value."""
    text = str(value)
    if len(text) <= RECORD_LIMIT:
        return text
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class RotationRequests:
    rotate: bool  # a rotation is asked for now
    record: dict[str, str] = field(default_factory=dict)  # status fields to write with it


def identity_request(
    annotations: Mapping[str, Any] | None, status: Mapping[str, Any]
) -> str | None:
    """The identity's annotation value (as recorded) when it asks for a rotation not done yet."""
    value = (annotations or {}).get(ROTATE_ANNOTATION)
    asked = None if value is None else recorded(value)
    return None if asked is None or asked == status.get(IDENTITY_RECORD) else asked


def rotation_requests(
    annotations: Mapping[str, Any] | None,
    namespace_value: str | None,
    status: Mapping[str, Any],
    *,
    has_keys: bool,
) -> RotationRequests:
    """What the two annotations ask of an identity now. `namespace_value`: its
    Namespace's annotation (None: none); `has_keys`: its Secret already holds keys."""
    record: dict[str, str] = {}
    rotate = False
    own = identity_request(annotations, status)
    if own is not None:
        record[IDENTITY_RECORD] = own
        rotate = True
    asked = None if namespace_value is None else recorded(namespace_value)
    if asked is not None and asked != status.get(NAMESPACE_RECORD):
        record[NAMESPACE_RECORD] = asked
        rotate = rotate or has_keys
    return RotationRequests(rotate=rotate, record=record)
