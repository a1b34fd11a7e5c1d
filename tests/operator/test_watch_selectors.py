"""The operator asks the API server for its signing-key Secrets only (watch_selectors.py)."""

from __future__ import annotations

import kopf

from jwtmesh_operator.watch_selectors import narrow_watches


def resource(plural: str, kind: str) -> kopf.Resource:
    return kopf.Resource(group="", version="v1", plural=plural, kind=kind, namespaced=True)


def test_secrets_are_selected_by_label_and_type_on_the_server() -> None:
    settings = kopf.OperatorSettings()
    narrow_watches(settings)
    secrets = resource("secrets", "Secret")
    assert list(settings.watching.label_selectors.collect(secrets)) == ["jwtmesh.io/identity"]
    assert list(settings.watching.field_selectors.collect(secrets)) == [
        "type=jwtmesh.io/signing-key"
    ]


def test_nothing_else_is_narrowed() -> None:
    """Identities, grants, revocations and namespaces are the operator's own to see whole."""
    settings = kopf.OperatorSettings()
    narrow_watches(settings)
    for plural, kind in [("namespaces", "Namespace"), ("configmaps", "ConfigMap")]:
        assert list(settings.watching.label_selectors.collect(resource(plural, kind))) == []
        assert list(settings.watching.field_selectors.collect(resource(plural, kind))) == []
    identities = kopf.Resource("jwtmesh.io", "v1alpha1", "serviceidentities")
    assert list(settings.watching.label_selectors.collect(identities)) == []


def test_initial_lists_come_in_pages() -> None:
    settings = kopf.OperatorSettings()
    narrow_watches(settings)
    assert settings.watching.chunk_size == 500
