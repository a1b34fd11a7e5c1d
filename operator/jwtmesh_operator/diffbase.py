"""No diff base: kopf's change detection is for handlers this operator does not have.

At every watch event kopf builds a "diff base" (a deep copy of the object without its
status) and compares it with the last one stored, to find what on.create/on.update/
on.delete/on.resume handlers should see. The operator reacts to events (kopf.on.event)
and keeps indexes (kopf.index) only, which receive the whole object: the copy was wasted,
4% of the operator's time in a 3,000-identity rotation sweep (a Secret's copy included its
private keys). tests/operator/test_kopf_per_event.py keeps the operator free of such handlers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kopf


class NoDiffBase(kopf.DiffBaseStorage):
    """Every object's essence is empty and nothing is stored: no change is ever found."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None
