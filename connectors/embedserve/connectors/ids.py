"""External string ids <-> Qdrant point ids.

Qdrant accepts only unsigned integers and UUIDs as point ids, so each caller id maps to a
UUIDv5 in a fixed namespace (deterministic: re-upserting an id overwrites the same point).
UUIDv5 cannot be reversed, so the caller's id also travels in the payload under
``RESERVED_KEY``; results read it back and strip it before payloads reach callers.
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


def check_external_id(external_id: str) -> str:
    if not isinstance(external_id, str) or not external_id:
        raise InvalidRequest(f"point ids must be non-empty strings, got {external_id!r}")
    if len(external_id) > MAX_ID_LENGTH:
        raise InvalidRequest(f"point id longer than {MAX_ID_LENGTH} characters")
    return external_id


def point_id(external_id: str) -> str:
    """The deterministic Qdrant point id (a UUID string) for a caller's id."""
    return str(uuid.uuid5(ID_NAMESPACE, check_external_id(external_id)))


def point_ids(external_ids: Iterable[str]) -> list[str]:
    return [point_id(i) for i in external_ids]


def stored_payload(external_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload as stored: the caller's fields plus the reserved id field.

    Callers check the payload first (validation.check_document rejects the reserved key).
    """
    stored = dict(payload)
    stored[RESERVED_KEY] = external_id
    return stored


def split_payload(raw: Mapping[str, Any] | None, fallback_id: object) -> tuple[str, dict[str, Any]]:
    """Split a stored payload into (external id, caller payload).

    Points written by other tools have no reserved field; their Qdrant id stands in.
    """
    payload = dict(raw or {})
    external = payload.pop(RESERVED_KEY, None)
    return (external if isinstance(external, str) else str(fallback_id)), payload
