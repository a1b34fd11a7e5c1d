"""Strict, typed configuration documents: unknown keys, wrong types and out-of-range values
are refused with one line naming the key and what was expected.

Every configuration model of the sidecar derives from `StrictModel` (pydantic): keys are
the camelCase names of the fields, no key outside the model is accepted, and no value is
coerced (`grpcThreads: "2"` is a string, not a number; `identity: [x]` is a list, not a
string). `one_line` turns pydantic's error list into the first error, as a sentence.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel


class StrictModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, alias_generator=to_camel, populate_by_name=False
    )


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (directly, optionally, or as the items of a sequence)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, tuple, list):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def known_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys the document may hold at `loc` (its parent's model's aliases)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return []
        if isinstance(part, int):
            continue
        field = next(
            (f for name, f in current.model_fields.items() if (f.alias or name) == part), None
        )
        current = _inner_model(field.annotation) if field is not None else None
    if current is None:
        return []
    return [field.alias or name for name, field in current.model_fields.items()]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def one_line(error: ValidationError, model: type[BaseModel]) -> str:
    """`grpcThreads: expected a valid integer, got 'two'`, or for a typo
    `policy: unknown key (did you mean policyFile?)`."""
    first = error.errors()[0]
    loc = tuple(first["loc"])
    where = _location(loc)
    kind = first["type"]
    if kind == "extra_forbidden":
        known = known_keys(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(sorted(known))}"
        return f"{where}: unknown key ({hint})"
    if kind == "missing":
        return f"{where}: required"
    message = str(first["msg"])
    if message.startswith("Input should be "):
        message = "expected " + message[len("Input should be ") :]
    elif message.startswith("Value error, "):
        return f"{where}: {message[len('Value error, ') :]}"
    else:
        message = message[:1].lower() + message[1:]
    return f"{where}: {message}, got {_shown(first['input'])}"
