"""Payload numbers in a ``google.protobuf.Struct``, which carries every number as a double.

A store keeps whole numbers as integers (integer filters and indexes match only those), so a
whole double that an int64 holds is read back as an int. An integer that no double holds
(past 2**53, and not a multiple of the power of two there) would arrive as another number:
it is refused before it is sent, rather than stored changed."""

from __future__ import annotations

from typing import Any

_INT64_END = 2**63


def whole_to_int(value: Any) -> Any:
    """``value`` (parsed from a Struct) with each whole double in the int64 range as an int;
    larger whole doubles (1e300) stay floats, as no integer field could hold them."""
    if isinstance(value, float) and value.is_integer() and -_INT64_END <= value < _INT64_END:
        return int(value)
    if isinstance(value, dict):
        return {k: whole_to_int(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_to_int(v) for v in value]
    return value


def inexact_integer(value: Any, path: str = "") -> str | None:
    """Where ``value`` holds an integer that a double would change, e.g. "'ids.big':
    9007199254740993 is past 2**53 ..."; None when every number travels as it is."""
    if isinstance(value, int) and not isinstance(value, bool):
        if float(value) != value:
            where = f"'{path}': " if path else ""
            return (
                f"{where}{value} is past 2**53, and a protobuf Struct carries numbers as doubles, "
                f"which would change it to {int(float(value))}; send it as a string (or over "
                "HTTP, whose JSON keeps it)"
            )
        return None
    if isinstance(value, dict):
        items: Any = ((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for inner, item in items:
        if (problem := inexact_integer(item, inner)) is not None:
            return problem
    return None
