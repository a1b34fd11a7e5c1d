"""Comparing JSON values (claims, grants, policy requirements) strictly.

Python's `==` says `True == 1 == 1.0` and `[1] == [1.0]`; a claim must not satisfy a
requirement or a grant through that. Two values are the same here when they are the same
JSON type all the way down: a boolean is not a number, and an integer (`1`) is not a float
(`1.0`), as the JSON parser and the YAML loader tell them apart.
"""

from __future__ import annotations

from typing import Any


def same_json(a: Any, b: Any) -> bool:
    """Equal, type for type, lists item by item and objects key by key (no recursion: a
    claim may be nested as deep as a token's size allows)."""
    pending = [(a, b)]
    while pending:
        x, y = pending.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, list):
            if len(x) != len(y):
                return False
            pending.extend(zip(x, y, strict=True))
        elif isinstance(x, dict):
            if x.keys() != y.keys():
                return False
            pending.extend((value, y[key]) for key, value in x.items())
        elif x != y:
            return False
    return True
