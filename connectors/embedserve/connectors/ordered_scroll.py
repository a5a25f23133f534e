"""Scrolling in the order of a numeric payload field, in pages that resume exactly.

Qdrant orders a scroll by a field's values but hands out no cursor for it, and points
that share a value come in no promised order, so a page that ends inside a run of equal
values cannot simply start the next one at that value. Here a page takes from the
engine's ordered scroll only the values before the last one it reached (those runs are
complete), then steps through the points at that last value in the engine's id order,
by a filter on the value and the engine's own id cursor. A boundary inside a run of
equal values thus neither repeats nor skips a point, however many share the value, and
the cursor stays small. A point whose field holds several values comes once per value,
as in Qdrant.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import InvalidRequest
from .types import (
    MAX_SCROLL_LIMIT,
    CollectionSpec,
    Condition,
    DatetimeRange,
    Filter,
    MatchValue,
    PayloadIndexKind,
    Range,
    Record,
    ScrollPage,
    check_scroll_limit,
    datetime_of_micros,
)

if TYPE_CHECKING:
    from .store import VectorStore

OrderValue = int | float
ORDER_INDEX_KINDS = (PayloadIndexKind.INTEGER, PayloadIndexKind.FLOAT, PayloadIndexKind.DATETIME)
# Kinds whose values the engines give as integers (datetimes: microseconds since 1970).
_WHOLE_KINDS = (PayloadIndexKind.INTEGER, PayloadIndexKind.DATETIME)


@dataclass(frozen=True)
class ScrollOrder:
    """Order by the values of ``key`` (a field with an integer, float or datetime index),
    smallest (earliest) first unless ``descending``; points without a value there are left
    out."""

    key: str
    descending: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise InvalidRequest(f"order_by.key must be a payload key, got {self.key!r}")


def order_index(spec: CollectionSpec, order: ScrollOrder) -> PayloadIndexKind:
    """The kind of the index ordering needs, the same on every engine (qdrant-client's
    local mode would order a field without one)."""
    kind = spec.payload_indexes.get(order.key)
    if kind not in ORDER_INDEX_KINDS:
        raise InvalidRequest(
            f"ordering by {order.key!r} needs an integer, float or datetime payload index there; "
            f"collection {spec.name!r} has none (add one with UpdateCollection)"
        )
    return kind


@dataclass(frozen=True)
class _Position:
    """Where the next page starts: after ``value`` (the start when None), or, when
    ``in_run``, among the points at ``value``, at the engine's id cursor ``run_cursor``."""

    value: OrderValue | None = None
    in_run: bool = False
    run_cursor: str | None = None


def ordered_page(
    store: VectorStore,
    collection: str,
    order: ScrollOrder,
    kind: PayloadIndexKind,
    filter: Filter | None = None,
    limit: int = 256,
    cursor: str | None = None,
    with_payload: bool = True,
    with_vectors: bool = False,
) -> ScrollPage:
    """One page of ``collection`` in ``order``, whose key has an index of ``kind`` (see
    ``order_index``); ``next_cursor`` is None once nothing follows."""
    check_scroll_limit(limit)
    position = _decode(cursor, order) if cursor else _Position()
    records: list[Record] = []
    while len(records) < limit:
        wanted = limit - len(records)
        if position.in_run:
            assert position.value is not None
            run = store.scroll(
                collection,
                _at_value(filter, order.key, position.value, kind),
                wanted,
                position.run_cursor,
                with_payload,
                with_vectors,
            )
            records += run.records
            position = _Position(position.value, run.next_cursor is not None, run.next_cursor)
            continue
        # One more than wanted: the last value met may continue past the page.
        complete, ranked = _ranked_past(
            store,
            collection,
            order,
            kind,
            position.value,
            wanted + 1,
            filter,
            with_payload,
            with_vectors,
        )
        if complete and len(ranked) <= wanted:
            records += [record for record, _ in ranked]
            return ScrollPage(records, None)
        ranked = ranked[: wanted + 1]
        last = ranked[-1][1]
        records += [record for record, value in ranked if value != last]
        position = _Position(last, True, None)
    if not position.in_run:
        # The page ended with a run: look whether any point follows it.
        _, ranked = _ranked_past(
            store, collection, order, kind, position.value, 1, filter, False, False
        )
        if not ranked:
            return ScrollPage(records, None)
    return ScrollPage(records, _encode(order, position))


def _ranked_past(
    store: VectorStore,
    collection: str,
    order: ScrollOrder,
    kind: PayloadIndexKind,
    value: OrderValue | None,
    limit: int,
    filter: Filter | None,
    with_payload: bool,
    with_vectors: bool,
) -> tuple[bool, list[tuple[Record, OrderValue]]]:
    """Points from the first value past ``value`` on, at least ``limit`` unless fewer
    are left (then the bool is True). Engines take the start as a double, so past 2**53
    it can fall short of ``value``: those points are dropped, and more are read while
    only they came."""
    start = _after(value, kind, order.descending)
    fetch = limit
    while True:
        ranked = store.scroll_by_value(
            collection, order, start, fetch, filter, with_payload, with_vectors
        )
        complete = len(ranked) < fetch
        if value is not None:
            ranked = [(r, v) for r, v in ranked if (v < value if order.descending else v > value)]
        if ranked or complete:
            return complete, ranked
        if fetch >= MAX_SCROLL_LIMIT:
            raise InvalidRequest(
                f"over {MAX_SCROLL_LIMIT} documents hold values of {order.key!r} that the "
                f"engine cannot tell from {value} (it compares integers past 2**53 as doubles)"
            )
        fetch = min(fetch * 8, MAX_SCROLL_LIMIT)


def _after(value: OrderValue | None, kind: PayloadIndexKind, descending: bool) -> OrderValue | None:
    """Where to start reading past ``value``: the next value in the order, or, where the
    engines' doubles cannot hold it (past 2**53), the nearest double on ``value``'s side,
    so that nothing unread is skipped (``_ranked_past`` drops what was read already)."""
    if value is None:
        return None
    if kind not in _WHOLE_KINDS:
        return math.nextafter(value, -math.inf if descending else math.inf)
    start = math.ceil(value) - 1 if descending else math.floor(value) + 1
    rounded = float(start)
    if descending and rounded < start:
        rounded = math.nextafter(rounded, math.inf)
    elif not descending and rounded > start:
        rounded = math.nextafter(rounded, -math.inf)
    return int(rounded)


def _at_value(filter: Filter | None, key: str, value: OrderValue, kind: PayloadIndexKind) -> Filter:
    exact: Condition
    if kind is PayloadIndexKind.DATETIME:
        moment = datetime_of_micros(int(value))
        exact = DatetimeRange(key, gte=moment, lte=moment)
    elif isinstance(value, int):
        exact = MatchValue(key, value)
    else:
        exact = Range(key, gte=value, lte=value)
    return Filter(must=(exact,) if filter is None else (filter, exact))


def _encode(order: ScrollOrder, position: _Position) -> str:
    state = [order.key, order.descending, position.value, position.in_run, position.run_cursor]
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")


def _decode(cursor: str, order: ScrollOrder) -> _Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key, descending, value, in_run, run_cursor = json.loads(raw)
        if not (
            _is_order_value(value)
            and isinstance(in_run, bool)
            and (run_cursor is None or isinstance(run_cursor, str))
        ):
            raise ValueError("a field of the wrong type")
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidRequest(f"cursor {cursor!r} is not one an ordered scroll handed out") from exc
    if [key, descending] != [order.key, order.descending]:
        raise InvalidRequest(
            "this cursor was handed out for another order_by; send the order it came with"
        )
    return _Position(value, in_run, run_cursor)


def _is_order_value(value: object) -> bool:
    """A value a payload index holds: a 64-bit integer or a finite float."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, float) and math.isfinite(value)
