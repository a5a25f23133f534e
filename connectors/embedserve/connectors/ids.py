"""External string ids <-> Qdrant point ids.

Qdrant accepts only unsigned integers and UUIDs as point ids, so each caller id maps to a
UUIDv5 in a fixed namespace (deterministic: re-upserting an id overwrites the same point).
UUIDv5 cannot be reversed, so the caller's id also travels in the payload under
``RESERVED_KEY``; results read it back and strip it before payloads reach callers.

Points written by other tools have no caller id: they are named ``qdrant:<point id>``
(``qdrant:5``, ``qdrant:<uuid>``), and an id of that form addresses that Qdrant point, so
what a search shows can be read, deleted or recommended from.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import InvalidRequest

# Never change: every stored point id derives from it.
ID_NAMESPACE = uuid.UUID("278267dc-b055-42a0-b3bb-cfd1f200b87b")
RESERVED_KEY = "_embedserve_id"
MAX_ID_LENGTH = 1024
FOREIGN_PREFIX = "qdrant:"
_MAX_POINT_NUMBER = 2**64 - 1  # Qdrant's integer point ids are unsigned 64-bit

PointId = str | int


def check_external_id(external_id: str) -> str:
    if not isinstance(external_id, str) or not external_id:
        raise InvalidRequest(f"point ids must be non-empty strings, got {external_id!r}")
    if len(external_id) > MAX_ID_LENGTH:
        raise InvalidRequest(f"point id longer than {MAX_ID_LENGTH} characters")
    if external_id.startswith(FOREIGN_PREFIX):
        _qdrant_point_id(external_id)
    return external_id


def point_id(external_id: str) -> PointId:
    """The deterministic Qdrant point id for a caller's id: a UUID string, or the point an
    id ``qdrant:<point id>`` names."""
    if check_external_id(external_id).startswith(FOREIGN_PREFIX):
        return _qdrant_point_id(external_id)
    return str(uuid.uuid5(ID_NAMESPACE, external_id))


def point_ids(external_ids: Iterable[str]) -> list[PointId]:
    return [point_id(i) for i in external_ids]


def point_index(external_ids: Iterable[str]) -> dict[str, str]:
    """Each caller id under its point id as the store's records show it (``str(r.id)``)."""
    return {str(point_id(i)): i for i in external_ids}


def _qdrant_point_id(external_id: str) -> PointId:
    """The point ``qdrant:<point id>`` names, written as reads show it (decimal without
    leading zeros, or a lowercase hyphenated UUID), so that the names match."""
    named = external_id[len(FOREIGN_PREFIX) :]
    if named.isascii() and named.isdigit() and int(named) <= _MAX_POINT_NUMBER:
        if str(int(named)) == named:
            return int(named)
    else:
        try:
            if str(uuid.UUID(named)) == named:
                return named
        except ValueError:
            pass
    raise InvalidRequest(
        f"point id {external_id!r}: an id starting with {FOREIGN_PREFIX!r} names a Qdrant "
        "point id as reads show it: an unsigned integer without leading zeros, or a "
        "lowercase hyphenated UUID"
    )


def stored_payload(external_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload as stored: the caller's fields plus the reserved id field.

    Callers check the payload first (validation.check_document rejects the reserved key).
    """
    stored = dict(payload)
    stored[RESERVED_KEY] = external_id
    return stored


def split_payload(raw: Mapping[str, Any] | None, fallback_id: object) -> tuple[str, dict[str, Any]]:
    """Split a stored payload into (external id, caller payload).

    Points written by other tools have no caller id (a reserved field that is no string is
    theirs, and stays in their payload): they are named ``qdrant:<point id>``.
    """
    payload = dict(raw or {})
    external = payload.get(RESERVED_KEY)
    if isinstance(external, str):
        del payload[RESERVED_KEY]
        return external, payload
    return f"{FOREIGN_PREFIX}{fallback_id}", payload
