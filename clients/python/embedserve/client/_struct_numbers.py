"""Payload numbers in a ``google.protobuf.Struct``, which carries every number as a double.

A store keeps whole numbers as integers (integer filters and indexes match only those), so a
whole double that an int64 holds is read back as an int. An integer that no double holds
(past 2**53, and not a multiple of the power of two there) would arrive as another number:
a document's payload holding one is sent as JSON text instead (Document.payload_json, whose
numbers are exact), and a payload update, which has no such field, is refused before it is
sent rather than stored changed."""

from __future__ import annotations

from typing import Any

_INT64_END = 2**63
# Deeper than any payload a store takes (32 levels): what lies below is left as it is, for
# the store's checks to refuse, rather than walked until Python's recursion limit.
_DEEPEST = 64


def whole_to_int(value: Any, depth: int = 0) -> Any:
    """``value`` (parsed from a Struct, or JSON) with each whole float in the int64 range
    as an int; larger whole floats (1e300) stay floats, as no integer field could hold
    them. Integers are left as they are."""
    if isinstance(value, float) and value.is_integer() and -_INT64_END <= value < _INT64_END:
        return int(value)
    if depth >= _DEEPEST:
        return value
    if isinstance(value, dict):
        return {k: whole_to_int(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_to_int(v, depth + 1) for v in value]
    return value


def wide_integer(value: Any, path: str = "") -> str | None:
    """Where ``value`` holds an integer outside the int64 range, which no store keeps, e.g.
    "'ids.big': 18446744073709551616 is outside the 64-bit integer range"; None when none."""
    if isinstance(value, int) and not isinstance(value, bool):
        if -_INT64_END <= value < _INT64_END:
            return None
        where = f"'{path}': " if path else ""
        return f"{where}{value} is outside the 64-bit integer range (-2**63 to 2**63 - 1)"
    for inner, item in _inside(value, path):
        if (problem := wide_integer(item, inner)) is not None:
            return problem
    return None


def _inside(value: Any, path: str) -> Any:
    """The (path, item) pairs of an object or array; none of anything else."""
    if isinstance(value, dict):
        return ((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return ((f"{path}[{i}]", v) for i, v in enumerate(value))
    return ()


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
    for inner, item in _inside(value, path):
        if (problem := inexact_integer(item, inner)) is not None:
            return problem
    return None
