"""Grouped search: the best hits per value of a payload field (say, the best passages of
each document), built from a ranked search of any engine.

The embedded engine has no grouping query, so grouping happens here for every engine and
they all agree. Hits are read in rank order, equal scores by id (stable_pages.py), as a
plain search pages them: the engines break ties each their own way. A group ranks by its
first (best) hit, so the groups are the first ``limit`` values met, and their further
members the best hits within them, found by searches filtered to them where the field
has a payload index (as Qdrant's own grouping does), else by reading the ranking deeper.
At most ``MAX_GROUP_CANDIDATES`` hits are read: past that, a group may hold fewer hits
than asked although more would match. Hits are read with the grouping field alone; the payloads and
vectors asked for are fetched for the hits kept, so deep pages cost no long stored texts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import InvalidRequest
from .stable_pages import Ranked, stable_page
from .types import (
    OBJECT_PATH,
    Condition,
    Filter,
    HasId,
    MatchAny,
    Record,
    ScoredPoint,
    SearchParams,
    is_path,
)

MAX_GROUP_CANDIDATES = 10_000
MAX_GROUP_SIZE = 100
DEFAULT_GROUP_SIZE = 3  # as Qdrant's
# The first page holds this many times the hits the groups could hold at most.
FIRST_PAGE_FACTOR = 4
GroupKey = str | int


@dataclass(frozen=True)
class GroupBy:
    """Group hits by ``key``, a payload field (a dotted path reaches into objects) holding
    a string or an integer, or a list of them (the hit joins each value's group); hits
    without such a value are left out. At most ``size`` hits per group."""

    key: str
    size: int = DEFAULT_GROUP_SIZE

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not is_path(OBJECT_PATH, self.key):
            raise InvalidRequest(
                "group_by.key must be a payload key, or keys joined by dots into objects "
                f"(letters, digits, _ and -), got {self.key!r}"
            )
        s = self.size
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= MAX_GROUP_SIZE:
            raise InvalidRequest(f"group_by.size must be from 1 to {MAX_GROUP_SIZE}, got {s!r}")

    @property
    def top_key(self) -> str:
        return self.key.split(".", 1)[0]

    def values(self, payload: dict[str, Any] | None) -> Iterator[GroupKey]:
        """The group keys of a hit with this payload, each once."""
        value: Any = payload
        for part in self.key.split("."):
            if not isinstance(value, dict):
                return
            value = value.get(part)
        items = value if isinstance(value, list) else [value]
        seen: set[GroupKey] = set()
        for item in items:
            # bool is an int to Python, not to a payload index.
            if isinstance(item, str | int) and not isinstance(item, bool) and item not in seen:
                seen.add(item)
                yield item


@dataclass(frozen=True)
class HitGroup:
    key: GroupKey
    hits: list[ScoredPoint]


def check_grouping(params: SearchParams, group: GroupBy) -> None:
    if params.offset:
        raise InvalidRequest("a grouped search takes no offset")
    if params.diversity is not None:
        raise InvalidRequest("a grouped search takes no diversity")
    if params.limit * group.size > MAX_GROUP_CANDIDATES:
        raise InvalidRequest(
            f"limit x group_by.size is {params.limit * group.size}; at most "
            f"{MAX_GROUP_CANDIDATES} hits in the groups of one search"
        )


def search_groups(
    search: Ranked,
    filter: Filter | None,
    params: SearchParams,
    group: GroupBy,
    retrieve: Callable[[list[str], bool], list[Record]],
    indexed: bool,
) -> list[HitGroup]:
    """The first ``params.limit`` groups of the hits ``search`` ranks under ``filter``,
    each with its best ``group.size`` hits in rank order. ``search`` runs the caller's
    query with the filter and params it is given; its hits carry the grouping field alone,
    and ``retrieve`` (ids, with vectors) fetches what the caller asked for of those kept.

    The groups are the first ``limit`` values met in rank order (equal scores by id), read
    in growing pages.
    Where the field has a payload index (``indexed``), their further members come from
    searches within those groups only (the filter gains the groups' values and leaves out
    the hits already read), so members that rank far apart cost a filtered search, not a
    page deep enough to reach them. Without an index such a filter would read every
    point's payload, so the pages grow on until the groups are full."""
    check_grouping(params, group)
    fetch = min(MAX_GROUP_CANDIDATES, max(params.limit * group.size * FIRST_PAGE_FACTOR, 64))
    while True:
        hits = stable_page(search, filter, _keys_only(params, group, fetch))
        groups = _group(hits, params.limit, group)
        exhausted = len(hits) < fetch
        full = all(len(g.hits) == group.size for g in groups)
        found = len(groups) == params.limit and (indexed or full)
        if exhausted or found or fetch >= MAX_GROUP_CANDIDATES:
            break
        fetch = min(MAX_GROUP_CANDIDATES, fetch * FIRST_PAGE_FACTOR)
    read = len(hits)
    while indexed and not exhausted and read < MAX_GROUP_CANDIDATES:
        open_groups = {g.key: g for g in groups if len(g.hits) < group.size}
        if not open_groups:
            break
        missing = sum(group.size - len(g.hits) for g in open_groups.values())
        within = _within(filter, group, open_groups)
        more = stable_page(search, within, _keys_only(params, group, missing))
        read += len(more)
        exhausted = len(more) < missing
        for hit in more:
            for key in group.values(hit.payload):
                member = open_groups.get(key)
                if member is not None and len(member.hits) < group.size:
                    member.hits.append(hit)
    return _as_asked(groups, params, group, retrieve)


def groups_of(
    hits: list[ScoredPoint],
    params: SearchParams,
    group: GroupBy,
    retrieve: Callable[[list[str], bool], list[Record]],
) -> list[HitGroup]:
    """The first ``params.limit`` groups of ``hits`` in their order (a ranking made
    elsewhere, e.g. by a reranker), each with its first ``group.size`` hits; payloads and
    vectors as ``params`` asks. The hits carry the grouping field."""
    check_grouping(params, group)
    return _as_asked(_group(hits, params.limit, group), params, group, retrieve)


def _keys_only(params: SearchParams, group: GroupBy, limit: int) -> SearchParams:
    """``params`` for a page of ``limit`` hits carrying the grouping field alone."""
    return dataclasses.replace(
        params, limit=limit, with_payload=True, payload_keys=(group.top_key,), with_vectors=False
    )


def _within(filter: Filter | None, group: GroupBy, open_groups: dict[GroupKey, HitGroup]) -> Filter:
    """``filter`` narrowed to the open groups' values, less the hits they hold."""
    texts = tuple(k for k in open_groups if isinstance(k, str))
    numbers = tuple(k for k in open_groups if isinstance(k, int))
    values: list[Condition] = [MatchAny(group.key, v) for v in (texts, numbers) if v]
    held = tuple(dict.fromkeys(h.id for g in open_groups.values() for h in g.hits))
    in_groups: Condition = values[0] if len(values) == 1 else Filter(should=tuple(values))
    must: tuple[Condition, ...] = (in_groups,) if filter is None else (filter, in_groups)
    return Filter(must=must, must_not=(HasId(held),) if held else ())


def _group(hits: list[ScoredPoint], limit: int, group: GroupBy) -> list[HitGroup]:
    groups: dict[GroupKey, HitGroup] = {}
    for hit in hits:
        for key in group.values(hit.payload):
            if key not in groups:
                if len(groups) == limit:
                    continue
                groups[key] = HitGroup(key, [])
            if len(groups[key].hits) < group.size:
                groups[key].hits.append(hit)
    return list(groups.values())


def _as_asked(
    groups: list[HitGroup],
    params: SearchParams,
    group: GroupBy,
    retrieve: Callable[[list[str], bool], list[Record]],
) -> list[HitGroup]:
    """The groups' hits with the payloads and vectors the caller asked for. A hit deleted
    since its page was read is left out."""
    keys = params.payload_keys
    if not params.with_vectors and (not params.with_payload or keys == (group.top_key,)):
        payload = params.with_payload
        return [
            HitGroup(
                g.key,
                [dataclasses.replace(h, payload=h.payload if payload else None) for h in g.hits],
            )
            for g in groups
        ]
    ids = list(dict.fromkeys(h.id for g in groups for h in g.hits))
    records = {r.id: r for r in retrieve(ids, params.with_vectors)} if ids else {}

    def full(hit: ScoredPoint) -> ScoredPoint | None:
        record = records.get(hit.id)
        if record is None:
            return None
        payload: dict[str, Any] | None = None
        if params.with_payload:
            payload = (
                record.payload
                if keys is None
                else {k: v for k, v in record.payload.items() if k in keys}
            )
        vector = record.vector if params.with_vectors else None
        return ScoredPoint(hit.id, hit.score, payload, vector)

    asked = [HitGroup(g.key, [f for h in g.hits if (f := full(h)) is not None]) for g in groups]
    return [g for g in asked if g.hits]
