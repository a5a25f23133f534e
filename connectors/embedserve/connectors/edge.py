"""Embedded backend: Qdrant's own engine in-process through ``qdrant-edge-py``.

Layout of the data directory::

    <data_dir>/.lock                              held while a store has it open
    <data_dir>/collections/<name>/collection.json the CollectionSpec; written last on create
    <data_dir>/collections/<name>/shard/          the engine's shard (segments + WAL)
    <data_dir>/aliases.json                       alias -> collection, replaced whole on change

Every update goes through the engine's write-ahead log before ``update()`` returns, so an
acknowledged upsert survives the process being killed; ``durability="flush"`` also
flushes segments to disk on every write, for power-loss safety at a throughput cost.

The engine keeps new points in plain (brute-force) segments and builds HNSW indexes only
when asked to optimise. With ``auto_optimize`` (the default) each write ends with an
optimisation pass, which is a no-op costing microseconds until a segment outgrows the
indexing threshold; then that write also pays for the index build (seconds). The engine
holds the GIL while it optimises, so other Python threads pause meanwhile.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import qdrant_edge as qe

from ._edge_convert import (
    INDEX_KINDS,
    edge_filter,
    engine_config,
    engine_errors,
    engine_search_params,
    point_vector,
    sparse_vector,
)
from ._locks import DirectoryLock, RWLock
from ._results import (
    engine_point_id,
    missing_ids,
    named_hits,
    ordered_records,
    point_scores,
    records_in_order,
    records_of,
    scored_points,
    vector_of,
)
from .aliases import aliases_after, check_alias_changes
from .errors import (
    CollectionExists,
    CollectionNotFound,
    EngineFailure,
    InvalidRequest,
    NameIsAlias,
    PointNotFound,
    StoreClosed,
    StoreError,
    TransientStoreError,
    os_failure,
)
from .ids import RESERVED_KEY, point_ids, point_index
from .keywords import KEYWORD_VECTOR
from .ordered_scroll import OrderValue, ScrollOrder, order_index
from .stable_pages import fused_page
from .store import ContextManagerMixin
from .thresholds import thresholded
from .types import (
    MAX_FACET_LIMIT,
    CollectionInfo,
    CollectionSpec,
    CollectionUpdate,
    Example,
    FacetHit,
    Filter,
    HasId,
    PayloadIndexKind,
    PointRecord,
    RecommendStrategy,
    Record,
    ScoredPoint,
    ScrollPage,
    SearchParams,
    SparseTerms,
    VectorLike,
    check_scroll_limit,
    diversity_candidates,
    validate_collection_name,
)
from .validation import (
    check_facet,
    check_filter,
    check_id_list,
    check_new_collection,
    check_payload_update,
    engine_cursor,
    facet_hits,
    payload_selector,
    prepare_points,
    recommend_params,
    require_text_indexes,
    search_params,
    search_vector,
    split_examples,
    strategy_of,
    text_match_keys,
)

log = logging.getLogger(__name__)

SPEC_FILE = "collection.json"
SHARD_DIR = "shard"
ALIASES_FILE = "aliases.json"
# How often a collection being written flushes its segments, which lets the engine trim its
# write-ahead log (a Qdrant server's flush_interval_sec, 5 by default).
FLUSH_INTERVAL_S = 5.0
# Of collection.json and aliases.json. Raised for a change an older embedserve would
# misread; a new setting is caught by its name too (_read_versioned, _read_spec).
_FORMAT = 1


def _narrowed(filter: Filter, ids: Sequence[str] | None) -> qe.Filter:
    """The engine's filter, restricted to ``ids`` when they are given too."""
    scope: list[Any] = [edge_filter(filter)]
    if ids is not None:
        scope.append(qe.HasIdCondition(set(point_ids(ids))))
    return qe.Filter(must=scope)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


_NEWER_HINT = "Run that version on this folder, or this one on a copy made before."


def _read_versioned(path: Path) -> dict[str, Any]:
    """The JSON object of a file this store wrote, refused if a newer format wrote it."""
    data = json.loads(path.read_text("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    written = data.get("format", 1)
    if not isinstance(written, int) or isinstance(written, bool):
        raise ValueError(f"its format is {written!r}, not a whole number")
    if written > _FORMAT:
        raise StoreError(
            f"{str(path)!r} is of format {written!r}, newer than this embedserve reads "
            f"({_FORMAT}): a newer version wrote it. {_NEWER_HINT}"
        )
    return data


def _write_spec(folder: Path, spec: CollectionSpec) -> None:
    _write_json_atomic(folder / SPEC_FILE, {"format": _FORMAT, "spec": spec.to_dict()})


def _index_fields(shard: qe.EdgeShard, indexes: Mapping[str, PayloadIndexKind]) -> None:
    for key, kind in indexes.items():
        shard.update(qe.UpdateOperation.create_field_index(key, INDEX_KINDS[kind]))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Collection:
    """One open shard and the lock that orders reads against writes on it."""

    def __init__(self, spec: CollectionSpec, shard: qe.EdgeShard, path: Path) -> None:
        self.spec = spec
        self.shard = shard
        self.path = path
        self.lock = RWLock()
        self.closed = False
        self.flushed_at = time.monotonic()

    def close(self) -> None:
        with self.lock.write():
            if not self.closed:
                self.closed = True
                with engine_errors():
                    try:
                        self.shard.flush()  # segments on disk, not only the WAL
                    finally:
                        self.shard.close()


@contextmanager
def _failures_named(col: _Collection) -> Iterator[None]:
    """The engine's failures on ``col`` name it and its folder (the engine's own message
    may name neither, "elements range 0..36 is out of bounds")."""
    try:
        yield
    except EngineFailure as exc:
        exc.args = (f"collection {col.spec.name!r} (folder {str(col.path)!r}): {exc}",)
        raise


class EdgeStore(ContextManagerMixin):
    """A VectorStore kept in a local data directory by Qdrant's embedded engine."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        durability: Literal["wal", "flush"] = "wal",
        auto_optimize: bool = True,
    ) -> None:
        if durability not in ("wal", "flush"):
            raise InvalidRequest(f"durability must be 'wal' or 'flush', got {durability!r}")
        self.data_dir = Path(data_dir)
        self._durability = durability
        self._auto_optimize = auto_optimize
        self._lock = threading.RLock()
        self._collections: dict[str, _Collection] = {}
        # Names whose folder a delete has yet to move away: not free for a create until then.
        self._deleting: set[str] = set()
        self._aliases: dict[str, str] = {}
        self._closed = False
        try:
            self._root = self.data_dir / "collections"
            self._root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise os_failure(f"cannot use data directory {str(self.data_dir)!r}", exc) from exc
        self._dir_lock = DirectoryLock(self.data_dir)
        try:
            self._load_all()
        except BaseException as exc:
            self._close_all()
            self._dir_lock.release()
            if isinstance(exc, OSError):
                raise os_failure(f"cannot load {str(self.data_dir)!r}", exc) from exc
            raise

    # ------------------------------------------------------------------ lifecycle

    def _load_all(self) -> None:
        # Every file read and checked before the engine opens any shard (which rewrites
        # files of its own): a folder refused is left as it was, for the version that
        # wrote it.
        specs = [self._read_spec(entry) for entry in sorted(self._root.iterdir())]
        found = {spec.name: spec for spec in specs if spec is not None}
        aliases = self._read_aliases(set(found))
        for name, spec in found.items():
            folder = self._root / name
            try:
                with engine_errors():
                    shard = qe.EdgeShard.load(str(folder / SHARD_DIR))
            except StoreError as exc:
                exc.args = (f"cannot open collection {name!r} (folder {str(folder)!r}): {exc}",)
                raise
            self._collections[name] = _Collection(spec, shard, folder)
        self._aliases = aliases

    def _read_spec(self, entry: Path) -> CollectionSpec | None:
        """The settings of the collection in folder ``entry``; None for a folder holding
        none: a create cut short (left, and logged) or a delete cut short (removed)."""
        if entry.name.startswith("."):  # a delete that was interrupted
            shutil.rmtree(entry, ignore_errors=True)
            return None
        spec_path = entry / SPEC_FILE
        if not spec_path.is_file():
            log.warning("ignoring %s: no %s (an interrupted create?)", entry, SPEC_FILE)
            return None
        try:
            saved = _read_versioned(spec_path)["spec"]
            if not isinstance(saved, dict):
                raise TypeError("'spec' is no object")
            spec = CollectionSpec.from_dict(saved)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreError(f"unreadable collection spec {str(spec_path)!r}: {exc}") from exc
        if unknown := sorted(set(saved) - set(CollectionSpec.__dataclass_fields__)):
            raise StoreError(
                f"{str(spec_path)!r} holds settings this embedserve does not know "
                f"({', '.join(unknown)}): a newer version wrote it. {_NEWER_HINT}"
            )
        if spec.name != entry.name:
            raise StoreError(f"{str(spec_path)!r} names collection {spec.name!r}")
        return spec

    def _read_aliases(self, collections: set[str]) -> dict[str, str]:
        path = self.data_dir / ALIASES_FILE
        if not path.is_file():
            return {}
        try:
            aliases = _read_versioned(path)["aliases"]
            if not isinstance(aliases, dict) or not all(
                isinstance(name, str) for pair in aliases.items() for name in pair
            ):
                raise TypeError("'aliases' is no object of names")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"unreadable aliases file {str(path)!r}: {exc}") from exc
        # An alias resolves first, so a collection of its name could not be reached (an
        # older embedserve, which did not read this file, may have created one).
        if clashes := sorted(set(aliases) & collections):
            raise StoreError(
                f"{str(path)!r} names alias {clashes[0]!r}, which is also the name of a "
                f"collection: remove the alias from the file (or move the collection's "
                f"folder out of {str(self._root)!r}) before starting"
            )
        # A delete cut short after its aliases were written may leave none dangling, but
        # keep the table exact whatever happened to the folders.
        return {a: c for a, c in aliases.items() if c in collections}

    def _save_aliases(self, aliases: dict[str, str]) -> None:
        try:
            _write_json_atomic(
                self.data_dir / ALIASES_FILE, {"format": _FORMAT, "aliases": aliases}
            )
        except OSError as exc:
            raise os_failure("cannot write the aliases", exc) from exc
        self._aliases = aliases

    def _close_all(self) -> None:
        errors = []
        for col in self._collections.values():
            try:
                col.close()
            except StoreError as exc:
                errors.append(exc)
        self._collections.clear()
        if errors:
            raise errors[0]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._close_all()
            finally:
                self._dir_lock.release()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed()

    def _get(self, name: str) -> _Collection:
        with self._lock:
            self._check_open()
            validate_collection_name(name)
            col = self._collections.get(self._aliases.get(name, name))
        if col is None:
            raise CollectionNotFound(name)
        return col

    @contextmanager
    def _reading(self, name: str) -> Iterator[_Collection]:
        col = self._get(name)
        with col.lock.read(), _failures_named(col):
            if col.closed:  # deleted while we waited
                raise CollectionNotFound(name)
            yield col

    @contextmanager
    def _writing(self, name: str) -> Iterator[_Collection]:
        col = self._get(name)
        with col.lock.write(), _failures_named(col):
            if col.closed:
                raise CollectionNotFound(name)
            yield col

    # ---------------------------------------------------------------- collections

    def create_collection(self, spec: CollectionSpec) -> None:
        check_new_collection(spec)
        with self._lock:
            self._check_open()
            if spec.name in self._collections or spec.name in self._aliases:
                raise CollectionExists(spec.name)
            if spec.name in self._deleting:  # its folder is still the deleted collection's
                raise TransientStoreError(f"collection {spec.name!r} is being deleted")
            path = self._root / spec.name
            if path.exists():  # leftovers of an interrupted create: no spec file
                shutil.rmtree(path, ignore_errors=True)
            shard: qe.EdgeShard | None = None
            try:
                path.mkdir(parents=True)
                with engine_errors():
                    shard = qe.EdgeShard.create(str(path / SHARD_DIR), engine_config(spec))
                    _index_fields(shard, spec.payload_indexes)
                    shard.flush()
                # The spec file is the commit point: without it the folder is not a collection.
                _write_spec(path, spec)
            except BaseException as exc:
                if shard is not None:
                    shard.close()
                shutil.rmtree(path, ignore_errors=True)
                if isinstance(exc, OSError):
                    raise os_failure(f"cannot create collection {spec.name!r}", exc) from exc
                raise
            self._collections[spec.name] = _Collection(spec, shard, path)

    def list_collections(self) -> list[str]:
        with self._lock:
            self._check_open()
            return sorted(self._collections)

    def get_collection(self, name: str) -> CollectionInfo:
        with self._reading(name) as col, engine_errors():
            info = col.shard.info()
            count = col.shard.count(qe.CountRequest(exact=True))
        return CollectionInfo(
            spec=col.spec, points_count=count, indexed_vectors_count=info.indexed_vectors_count
        )

    def delete_collection(self, name: str) -> None:
        with self._lock:
            if name in self._aliases:
                raise NameIsAlias(name, self._aliases[name])
            col = self._get(name)
            del self._collections[name]
            self._deleting.add(name)
            # Its aliases go at once here, and from the file once the folder is gone: a
            # delete cut short before then keeps both (loading drops dangling aliases).
            aliased = any(c == name for c in self._aliases.values())
            if aliased:
                self._aliases = {a: c for a, c in self._aliases.items() if c != name}
        try:
            col.close()  # once the writes under way end
            # Rename first so a crash mid-removal never leaves a half-deleted collection.
            trash = self._root / f".deleted-{name}-{uuid.uuid4().hex}"
            try:
                os.replace(col.path, trash)
            except OSError as exc:
                raise os_failure(f"cannot remove collection {name!r}", exc) from exc
        finally:
            with self._lock:
                self._deleting.discard(name)
        if aliased:
            with self._lock:
                self._save_aliases(dict(self._aliases))
        shutil.rmtree(trash, ignore_errors=True)

    def update_collection(self, name: str, update: CollectionUpdate) -> None:
        """The saved settings never name an index the engine lacks, whenever a crash comes:
        they lose a dropped index before the engine does, and gain a built one after."""
        with self._writing(name) as col:
            spec = update.applied_to(col.spec)
            dropped = update.indexes_to_drop(col.spec)
            if dropped:
                kept = {k: v for k, v in col.spec.payload_indexes.items() if k not in dropped}
                self._save_spec(col, dataclasses.replace(col.spec, payload_indexes=kept))
            with engine_errors():
                for key in dropped:
                    col.shard.update(qe.UpdateOperation.delete_field_index(key))
                _index_fields(col.shard, update.indexes_to_build(col.spec))
                col.shard.flush()
            self._save_spec(col, spec)

    @staticmethod
    def _save_spec(col: _Collection, spec: CollectionSpec) -> None:
        try:
            _write_spec(col.path, spec)
        except OSError as exc:
            raise os_failure(f"cannot update collection {spec.name!r}", exc) from exc
        col.spec = spec

    def update_aliases(self, assign: Mapping[str, str], remove: Sequence[str] = ()) -> None:
        with self._lock:
            self._check_open()
            check_alias_changes(assign, remove, self._collections, self._aliases)
            self._save_aliases(aliases_after(self._aliases, assign, remove))

    def list_aliases(self) -> dict[str, str]:
        with self._lock:
            self._check_open()
            return dict(sorted(self._aliases.items()))

    # --------------------------------------------------------------------- writes

    def upsert(self, collection: str, points: Sequence[PointRecord]) -> None:
        col = self._get(collection)
        prepared = prepare_points(col.spec, points)
        if not prepared:
            return
        op = qe.UpdateOperation.upsert_points(
            [qe.Point(p.point_id, point_vector(p.vector, p.keywords), p.payload) for p in prepared]
        )
        with self._writing(collection) as col, engine_errors():
            col.shard.update(op)
            self._after_write(col)

    def delete(
        self, collection: str, ids: Sequence[str] | None = None, filter: Filter | None = None
    ) -> None:
        filter = check_filter(filter)
        if ids is None and filter is None:
            # Deleting everything must be asked for explicitly (delete_collection).
            raise InvalidRequest("delete needs ids or a non-empty filter")
        if ids is not None:
            check_id_list(ids)
        if ids is not None and not ids:
            self._get(collection)  # still report a missing collection
            return
        if filter is None:
            op = qe.UpdateOperation.delete_points(list(point_ids(ids or ())))
        else:
            require_text_indexes(self._get(collection).spec, text_match_keys(filter))
            op = qe.UpdateOperation.delete_points_by_filter(_narrowed(filter, ids))
        with self._writing(collection) as col, engine_errors():
            col.shard.update(op)
            self._after_write(col)

    def update_payload(
        self,
        collection: str,
        ids: Sequence[str] | None = None,
        filter: Filter | None = None,
        *,
        values: Mapping[str, Any] | None = None,
        delete_keys: Sequence[str] = (),
    ) -> None:
        filter = check_filter(filter)
        changes = check_payload_update(ids, filter, values, delete_keys)
        col = self._get(collection)
        if ids is not None and not ids:
            return
        require_text_indexes(col.spec, text_match_keys(filter))
        with self._writing(collection) as col, engine_errors():
            if filter is None:
                self._check_exist(col, ids or ())
                targets: list[Any] = point_ids(ids or ())
                op = qe.UpdateOperation.set_payload(targets, changes)
            else:
                op = qe.UpdateOperation.set_payload_by_filter(_narrowed(filter, ids), changes)
            col.shard.update(op)
            self._after_write(col)

    @staticmethod
    def _check_exist(col: _Collection, ids: Sequence[str]) -> None:
        """Before an update by ids: the engine would apply it to the points it has, then
        fail on the first it lacks."""
        wanted = point_index(ids)
        keys: list[Any] = point_ids(ids)
        if missing := missing_ids(wanted, col.shard.retrieve(keys, False, False)):
            raise PointNotFound(col.spec.name, missing)

    def _after_write(self, col: _Collection) -> None:
        """Under the collection's write lock. The engine trims its write-ahead log only
        once the segments are flushed: without a flush now and then it grew by every
        write (about 2 KB a point written) until the store stopped."""
        now = time.monotonic()
        if self._durability == "flush" or now - col.flushed_at >= FLUSH_INTERVAL_S:
            col.shard.flush()
            col.flushed_at = now
        if self._auto_optimize:
            col.shard.optimize()

    def scroll_by_value(
        self,
        collection: str,
        order: ScrollOrder,
        start_from: OrderValue | None,
        limit: int,
        filter: Filter | None = None,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> list[tuple[Record, OrderValue]]:
        spec = self._get(collection).spec
        order_index(spec, order)
        require_text_indexes(spec, text_match_keys(filter := check_filter(filter)))
        direction = qe.Direction.Desc if order.descending else qe.Direction.Asc
        request = qe.ScrollRequest(
            limit=check_scroll_limit(limit),
            filter=edge_filter(filter) if filter else None,
            with_payload=True if with_payload else [RESERVED_KEY],
            with_vector=with_vectors,
            order_by=qe.OrderBy(order.key, direction=direction, start_from=start_from),
        )
        with self._reading(collection) as col, engine_errors():
            records, _ = col.shard.scroll(request)
        return ordered_records(records, with_payload, with_vectors)

    def optimize(self, collection: str) -> bool:
        with self._writing(collection) as col, engine_errors():
            return bool(col.shard.optimize())

    def flush(self, collection: str) -> None:
        with self._writing(collection) as col, engine_errors():
            col.shard.flush()

    # ---------------------------------------------------------------------- reads

    def search(
        self,
        collection: str,
        vector: VectorLike | None,
        filter: Filter | None = None,
        params: SearchParams | None = None,
        *,
        keywords: SparseTerms | None = None,
    ) -> list[ScoredPoint]:
        col = self._get(collection)
        params = search_params(params)
        dense = search_vector(col.spec, vector, keywords, params)
        queries: list[Any] = []
        if dense is not None and params.diversity is not None:
            # The engine's lambda weighs relevance: 1 - diversity.
            candidates = diversity_candidates(params)
            queries.append(qe.Mmr(dense, 1.0 - params.diversity, candidates))
        elif dense is not None:
            queries.append(qe.Query.Nearest(dense))
        if keywords is not None:
            queries.append(qe.Query.Nearest(sparse_vector(keywords), using=KEYWORD_VECTOR))
        if len(queries) == 1:
            return self._query(collection, queries[0], filter, params)
        # Fused here, not by the engine, which ranks equal scores in its own order.
        rankings = [functools.partial(self._ranking, collection, q, filter) for q in queries]
        return fused_page(rankings, functools.partial(self._named, collection), params)

    def recommend(
        self,
        collection: str,
        positive: Sequence[Example],
        negative: Sequence[Example] = (),
        strategy: RecommendStrategy = RecommendStrategy.AVERAGE_VECTOR,
        filter: Filter | None = None,
        params: SearchParams | None = None,
    ) -> list[ScoredPoint]:
        strategy = strategy_of(strategy)
        filter = check_filter(filter)
        params = recommend_params(params)
        col = self._get(collection)
        pos_ids, pos_vecs = split_examples(positive, col.spec)
        neg_ids, neg_vecs = split_examples(negative, col.spec)
        if not (pos_ids or pos_vecs or neg_ids or neg_vecs):
            raise InvalidRequest("recommend needs at least one example")
        if strategy is RecommendStrategy.AVERAGE_VECTOR and not (pos_ids or pos_vecs):
            raise InvalidRequest("the average_vector strategy needs a positive example")

        # The engine takes only vectors: look the id examples up, then keep them out.
        found = self._vectors_by_id(collection, [*pos_ids, *neg_ids])
        pos: list[Any] = [found[i] for i in pos_ids] + pos_vecs
        neg: list[Any] = [found[i] for i in neg_ids] + neg_vecs

        if strategy is RecommendStrategy.AVERAGE_VECTOR:
            mean_pos = np.mean(np.asarray(pos, dtype=np.float64), axis=0)
            target = (
                mean_pos
                if not neg
                else 2 * mean_pos - np.mean(np.asarray(neg, dtype=np.float64), axis=0)
            )
            query = qe.Query.Nearest(target.tolist())
        elif strategy is RecommendStrategy.BEST_SCORE:
            query = qe.Query.RecommendBestScore(qe.RecommendQuery(pos, neg))
        else:
            query = qe.Query.RecommendSumScores(qe.RecommendQuery(pos, neg))

        examples = sorted(set(pos_ids) | set(neg_ids))
        if examples:
            filter = Filter(must=(filter,) if filter else (), must_not=(HasId(tuple(examples)),))
        return thresholded(
            lambda p: self._query(collection, query, filter, p), strategy, col.spec.distance, params
        )

    def _vectors_by_id(self, collection: str, ids: Sequence[str]) -> dict[str, list[float]]:
        if not ids:
            return {}
        wanted = point_index(ids)
        keys: list[Any] = point_ids(ids)
        with self._reading(collection) as col, engine_errors():
            records = col.shard.retrieve(keys, False, True)
        found: dict[str, list[float]] = {}
        for r in records:
            vector = vector_of(r.vector)
            if vector is not None:
                found[wanted[str(r.id)]] = vector
        missing = [i for i in dict.fromkeys(ids) if i not in found]
        if missing:
            raise PointNotFound(collection, missing)
        return found

    def _query(
        self, collection: str, query: Any, filter: Filter | None, params: SearchParams
    ) -> list[ScoredPoint]:
        points = self._points(collection, query, filter, params, payload_selector(params))
        return scored_points(points, params)

    def _ranking(
        self, collection: str, query: Any, filter: Filter | None, params: SearchParams
    ) -> list[ScoredPoint]:
        """``query``'s hits named by point id, no payload read (_results.point_scores)."""
        return point_scores(self._points(collection, query, filter, params, payload=False))

    def _points(
        self,
        collection: str,
        query: Any,
        filter: Filter | None,
        params: SearchParams,
        payload: bool | list[str],
    ) -> list[Any]:
        with self._reading(collection) as col:
            require_text_indexes(col.spec, text_match_keys(filter := check_filter(filter)))
            # The bindings' own argument checks (a payload path they cannot parse) are the
            # caller's mistake: InvalidRequest, as the engine's.
            with engine_errors():
                request = qe.QueryRequest(
                    limit=params.limit,
                    offset=params.offset or None,
                    query=query,
                    filter=edge_filter(filter) if filter else None,
                    score_threshold=params.score_threshold,
                    with_payload=payload,
                    with_vector=params.with_vectors,
                    params=engine_search_params(col.spec, params),
                )
                return list(col.shard.query(request))

    def _named(
        self, collection: str, hits: list[ScoredPoint], params: SearchParams
    ) -> list[ScoredPoint]:
        """``_ranking``'s ``hits`` under the caller's ids (_results.named_hits)."""
        if not hits:
            return []
        keys: list[Any] = [engine_point_id(hit.id) for hit in hits]
        with self._reading(collection) as col, engine_errors():
            records = col.shard.retrieve(keys, payload_selector(params), params.with_vectors)
        return named_hits(hits, records, params)

    def retrieve(
        self, collection: str, ids: Sequence[str], with_vectors: bool = False
    ) -> list[Record]:
        check_id_list(ids)
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            self._get(collection)
            return []
        with self._reading(collection) as col, engine_errors():
            keys: list[Any] = point_ids(wanted)
            records = col.shard.retrieve(keys, True, with_vectors)
        return records_in_order(records, wanted, with_vectors)

    def count(self, collection: str, filter: Filter | None = None, exact: bool = True) -> int:
        require_text_indexes(
            self._get(collection).spec, text_match_keys(filter := check_filter(filter))
        )
        request = qe.CountRequest(exact=exact, filter=edge_filter(filter) if filter else None)
        with self._reading(collection) as col, engine_errors():
            return int(col.shard.count(request))

    def facet(
        self, collection: str, key: str, filter: Filter | None = None, limit: int = 10
    ) -> list[FacetHit]:
        filter = check_filter(filter)
        spec = self._get(collection).spec
        check_facet(spec, key, limit)
        require_text_indexes(spec, text_match_keys(filter))
        # All values: the engine's own cut at the limit breaks count ties arbitrarily.
        request = qe.FacetRequest(
            key, limit=MAX_FACET_LIMIT, exact=True, filter=edge_filter(filter) if filter else None
        )
        with self._reading(collection) as col, engine_errors():
            hits = col.shard.facet(request).hits
        return facet_hits(hits, limit, spec.payload_indexes[key])

    def scroll(
        self,
        collection: str,
        filter: Filter | None = None,
        limit: int = 256,
        cursor: str | None = None,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> ScrollPage:
        require_text_indexes(
            self._get(collection).spec, text_match_keys(filter := check_filter(filter))
        )
        request = qe.ScrollRequest(
            offset=engine_cursor(cursor),
            limit=check_scroll_limit(limit),
            filter=edge_filter(filter) if filter else None,
            # The external id lives in the payload, so it is always fetched.
            with_payload=True if with_payload else [RESERVED_KEY],
            with_vector=with_vectors,
        )
        with self._reading(collection) as col, engine_errors():
            records, next_offset = col.shard.scroll(request)
        return ScrollPage(
            records_of(records, with_payload, with_vectors),
            None if next_offset is None else str(next_offset),
        )
