"""Payload fields a re-ranking reads from its candidates (a date, a place, a text) though
the caller did not ask for them: fetched with the hits, then left out of the page."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from .types import ScoredPoint, SearchParams


def with_fields(params: SearchParams, keys: Sequence[str]) -> tuple[SearchParams, list[str]]:
    """``params`` whose hits carry the fields at ``keys``, and the keys that were added."""
    if not params.with_payload:
        return dataclasses.replace(params, with_payload=True, payload_keys=tuple(keys)), list(keys)
    asked = params.payload_keys
    if asked is None:
        return params, []
    added = [k for k in keys if not any(k == a or k.startswith(a + ".") for a in asked)]
    added = list(dict.fromkeys(added))
    return dataclasses.replace(params, payload_keys=(*asked, *added)), added


def as_asked(
    page: list[ScoredPoint], params: SearchParams, added: Sequence[str]
) -> list[ScoredPoint]:
    """``page`` with the payloads ``params`` asked for: none, or without the ``added`` keys."""
    if not params.with_payload:
        return [dataclasses.replace(h, payload=None) for h in page]
    for key in added:
        page = [dataclasses.replace(h, payload=without(h.payload, key)) for h in page]
    return page


def field_at(payload: dict[str, Any] | None, key: str) -> Any:
    """The value at ``key`` (a dotted path reaches into objects); None where there is none."""
    value: Any = payload
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def without(payload: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """``payload`` less the field at ``key``, and the objects only it kept."""
    if payload is None:
        return None
    head, _, rest = key.partition(".")
    if head not in payload:
        return payload
    kept = dict(payload)
    inner = kept.pop(head)
    if rest and isinstance(inner, dict):
        inner = without(inner, rest)
        if inner:
            kept[head] = inner
    return kept
