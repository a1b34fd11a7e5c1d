"""The order make test hands files to its workers in (jwtmesh_testing.run_order)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jwtmesh_testing.run_order import longest_first


@dataclass
class Mark:
    name: str


@dataclass
class Item:  # a stand-in for pytest.Item: a file and its marks
    path: Path
    test: str
    marks: list[str] = field(default_factory=list)

    def iter_markers(self) -> list[Mark]:
        return [Mark(name) for name in self.marks]


def test_files_with_a_slow_test_come_first_then_fuzz_k8s_envoy_and_the_rest() -> None:
    items = [
        Item(Path("unit.py"), "a"),
        Item(Path("envoy.py"), "a", ["envoy"]),
        Item(Path("k8s.py"), "a", ["k8s"]),
        Item(Path("fuzz.py"), "a", ["fuzz"]),
        Item(Path("mixed.py"), "fast", ["envoy"]),
        Item(Path("mixed.py"), "long", ["envoy", "slow"]),
    ]
    longest_first(items)
    assert [(str(i.path), i.test) for i in items] == [
        ("mixed.py", "fast"),  # the whole file moves with its slowest test, in its own order
        ("mixed.py", "long"),
        ("fuzz.py", "a"),
        ("k8s.py", "a"),
        ("envoy.py", "a"),
        ("unit.py", "a"),
    ]


def test_files_of_the_same_rank_keep_their_collection_order() -> None:
    items = [Item(Path(name), "t", ["k8s"]) for name in ("b.py", "a.py", "c.py")]
    longest_first(items)
    assert [str(i.path) for i in items] == ["b.py", "a.py", "c.py"]
