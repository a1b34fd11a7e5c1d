"""Every YAML file shipped as is (CRDs, the chart's values, the examples) has no key twice in
one mapping: PyYAML keeps the last silently, while the API server's strict decoding or a
reader in another language may refuse it or keep the first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from jwtmesh_testing.paths import CHART, CRD_DIR, EXAMPLES, REPO_ROOT

SHIPPED = sorted(
    [
        *CRD_DIR.glob("*.yaml"),
        CHART / "values.yaml",
        *EXAMPLES.rglob("*.yaml"),
    ]
)


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def strict_load(text: str) -> list[Any]:
    return list(yaml.load_all(text, Loader=_StrictLoader))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_no_key_twice(path: Path) -> None:
    assert strict_load(path.read_text())


def test_a_key_twice_is_found() -> None:
    with pytest.raises(yaml.constructor.ConstructorError, match="given twice"):
        strict_load("a:\n  b: 1\n  b: 2\n")
