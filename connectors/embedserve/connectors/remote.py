"""Server backend: a Qdrant server or cluster through ``qdrant-client``.

The same class drives qdrant-client's local mode (``:memory:`` or a folder), which speaks
the same client API with exact numpy search; it stands in for a server in tests.

The CollectionSpec is kept in the collection's metadata, so settings that the server does
not report back (the default search ``hnsw_ef``, the bm25 language, the model) survive; the
rest is read from the server's config, which other clients may change. Collections made by
other tools still open: their spec is derived from the server config alone.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import grpc
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from ._remote_convert import (
    DATATYPES,
    DISTANCES,
    INDEX_KINDS,
    ErrorContext,
    OutcomeUnknown,
    change_in_doubt,
    client_errors,
    engine_search_params,
    in_doubt,
    optional_filter,
    point_vector,
    quantization_config,
    read_consistency_of,
    remote_filter,
    saved_spec,
    sparse_vector,
    spec_from_info,
)
from ._results import (
    as_float32,
    engine_point_id,
    missing_ids,
    named_hits,
    ordered_records,
    point_scores,
    records_in_order,
    records_of,
    scored_points,
)
from .aliases import check_alias_changes
from .errors import (
    CollectionExists,
    CollectionNotFound,
    InvalidRequest,
    NameIsAlias,
    PointNotFound,
    SettingsChanged,
    StoreClosed,
    StoreError,
    StoreLocked,
    TransientStoreError,
)
from .ids import RESERVED_KEY, check_external_id, point_id, point_ids, point_index
from .keywords import KEYWORD_VECTOR
from .ordered_scroll import OrderValue, ScrollOrder, order_index
from .quantization import quantized_search
from .settings import DEFAULT_GRPC_PORT, StoreSettings
from .spec_cache import SETTINGS_TTL_S, SpecCache
from .stable_pages import fused_page
from .store import ContextManagerMixin
from .thresholds import kept_better, thresholded
from .types import (
    MAX_FACET_LIMIT,
    CollectionInfo,
    CollectionSpec,
    CollectionUpdate,
    Distance,
    Example,
    FacetHit,
    Filter,
    PayloadIndexKind,
    PointRecord,
    RecommendStrategy,
    Record,
    ScoredPoint,
    ScrollPage,
    SearchParams,
    SparseTerms,
    VectorLike,
    check_layout,
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
    spec_vector,
    strategy_of,
    text_match_keys,
)

T = TypeVar("T")
log = logging.getLogger(__name__)


def _without_bm25(spec: CollectionSpec) -> SettingsChanged:
    """Keywords for a collection without a bm25 vector: the caller read settings that the
    collection had, or had not yet, before another client re-created it."""
    return SettingsChanged(
        f"collection {spec.name!r} has no bm25 keyword vectors: it was created without bm25 "
        "(or re-created so since the caller read its settings)"
    )


def _selector(
    ids: Sequence[str] | None, filter: Filter | None
) -> qm.PointIdsList | qm.FilterSelector:
    """The points named by ids, those matching the filter, or the ids that also match it."""
    if filter is None:
        return qm.PointIdsList(points=list(point_ids(ids or ())))
    scope: list[Any] = [remote_filter(filter)]
    if ids is not None:
        scope.append(qm.HasIdCondition(has_id=list(point_ids(ids))))
    return qm.FilterSelector(filter=qm.Filter(must=scope))


# gRPC waits longer and longer between attempts to reconnect a channel whose server is down
# (1.6x each time, up to 120 s); until the next attempt every call fails at once. After a
# 45 s Qdrant outage, calls kept failing for about 18.5 s after the server was back; with
# attempts at least once a second, for under a second.
RECONNECT_OPTIONS = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
}


class RemoteStore(ContextManagerMixin):
    """A VectorStore on a Qdrant server or cluster (or qdrant-client's local mode)."""

    def __init__(self, client: QdrantClient, *, local: bool = False) -> None:
        self._client = client
        self._local = local
        # Local mode is not thread-safe; server clients are.
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if local else contextlib.nullcontext()
        )
        # Local mode's data is this process's alone (its folder is locked); a server's
        # collections may be changed by any of its clients, so their settings are read again
        # every few seconds.
        self._specs = SpecCache(None if local else SETTINGS_TTL_S)
        self._closed = False

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        api_key: str | None = None,
        prefer_grpc: bool = StoreSettings.qdrant_prefer_grpc,
        timeout_s: float = StoreSettings.qdrant_timeout_s,
        grpc_port: int = DEFAULT_GRPC_PORT,
    ) -> RemoteStore:
        """A server or cluster at ``url`` (REST); gRPC, when preferred, uses ``grpc_port``."""
        client = QdrantClient(
            url=url,
            api_key=api_key,
            prefer_grpc=prefer_grpc,
            grpc_port=grpc_port,
            timeout=max(1, math.ceil(timeout_s)),
            check_compatibility=False,  # avoid a blocking round trip in the constructor
            grpc_options=dict(RECONNECT_OPTIONS),  # qdrant-client adds its own keys to it
        )
        store = cls(client)
        store._check_access()
        return store

    def _check_access(self) -> None:
        """One cheap call, so that a refused API key fails the start (StoreRefused), where
        the server would otherwise serve and fail every vector call. A server not reachable
        yet is only logged: it may start after this one, and calls retry it."""
        try:
            with self._call(ErrorContext()):
                self._client.get_collections()
        except TransientStoreError as exc:
            log.warning("the Qdrant server is not reachable yet: %s", exc)

    @classmethod
    def local(cls, path: str | None = None) -> RemoteStore:
        """qdrant-client's local mode: in memory, or persisted in ``path``."""
        try:
            if path is None:
                client = QdrantClient(location=":memory:")
            else:
                # Our own lock serialises calls, so worker threads may share the connection.
                client = QdrantClient(path=path, force_disable_check_same_thread=True)
        except RuntimeError as exc:
            raise StoreLocked(str(exc)) from exc
        return cls(client, local=True)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._client.close()

    @contextlib.contextmanager
    def _call(self, ctx: ErrorContext) -> Iterator[None]:
        with self._lock:
            if self._closed:
                raise StoreClosed()
            try:
                try:
                    with client_errors(ctx):
                        yield
                except StoreError as exc:
                    if ctx.collection and self._cancelled_by_a_delete(exc, ctx.collection):
                        raise CollectionNotFound(ctx.collection) from exc
                    raise
            except CollectionNotFound as exc:
                self._specs.drop(exc.name)
                raise

    def _cancelled_by_a_delete(self, exc: StoreError, collection: str) -> bool:
        """A server cancels the calls in flight on a collection it deletes (gRPC
        CANCELLED, "Stream removed"); this client never cancels its own calls."""
        if isinstance(exc, TransientStoreError | OutcomeUnknown):
            return False  # cancelled by the server as the call's deadline passed
        cause = exc.__cause__
        if not isinstance(cause, grpc.RpcError) or cause.code() != grpc.StatusCode.CANCELLED:
            return False
        try:
            return not self._client.collection_exists(collection)
        except Exception:  # the original error says more than a failed second look
            return False

    # ---------------------------------------------------------------- collections

    def _spec(self, name: str) -> CollectionSpec:
        validate_collection_name(name)
        return self._specs.get(name) or self._read_spec(name)

    def _read_spec(self, name: str) -> CollectionSpec:
        validate_collection_name(name)
        with self._call(ErrorContext(name)):
            info = self._client.get_collection(name)
        return self._keep_spec(name, info)

    def _keep_spec(self, name: str, info: qm.CollectionInfo) -> CollectionSpec:
        spec = spec_from_info(name, info, server=not self._local)
        self._specs.put(name, spec)
        return spec

    def _check_text_matches(self, collection: str, filter: Filter | None) -> None:
        # Most filters have no match_text: the spec is looked up only for those that do.
        if keys := text_match_keys(check_filter(filter)):
            self._validated(collection, lambda spec: require_text_indexes(spec, keys))

    def _validated(self, name: str, run: Callable[[CollectionSpec], T]) -> T:
        """``run`` a call with the collection's settings. Cached ones may be stale (another
        client re-created the collection at another size or without bm25, or added or
        dropped a payload index): refused on them, it runs once more on settings read anew,
        if those differ."""
        spec = self._spec(name)
        try:
            return run(spec)
        except InvalidRequest:
            fresh = self._read_spec(name)
            if fresh == spec:
                raise
        return run(fresh)

    def create_collection(self, spec: CollectionSpec) -> None:
        check_new_collection(spec)
        ctx = ErrorContext(spec.name)
        with self._call(ctx):
            # Local mode keeps one copy of everything, however many shards it is asked for.
            check_layout(spec, None if self._local else self._nodes())
            if self._client.collection_exists(spec.name):
                raise CollectionExists(spec.name)
            change = f"creating collection {spec.name!r}"
            check = f"whether it exists, with the settings asked for (GetCollection {spec.name})"
            with change_in_doubt(change, check):
                self._create(spec)
        self._specs.drop(spec.name)  # read back as the server reports it

    def _create(self, spec: CollectionSpec) -> None:
        # Local mode has no payload indexes (and warns about them): its metadata keeps them.
        # A server's metadata claims them once they are built, for readers that trust it.
        unindexed = spec if self._local else replace(spec, payload_indexes={})
        try:
            self._create_bare(unindexed)
        except Exception as exc:
            # With a node of the cluster down, Qdrant answers a create only once it has
            # waited out the activation of the replicas there, past this client's timeout:
            # made meanwhile, the collection still gets its indexes and settings below.
            if not (in_doubt(exc) and self._made_after_all(spec.name)):
                raise
        if unindexed != spec:
            self._index_fields(spec.name, spec.payload_indexes)
            self._client.update_collection(spec.name, metadata=saved_spec(spec))

    def _made_after_all(self, name: str) -> bool:
        """Whether a collection whose create timed out exists (False if that cannot be told
        either: the create stays in doubt)."""
        try:
            return self._client.collection_exists(name)
        except Exception:
            return False

    def _create_bare(self, spec: CollectionSpec) -> None:
        self._client.create_collection(
            collection_name=spec.name,
            vectors_config=qm.VectorParams(
                size=spec.vector_size,
                distance=DISTANCES[spec.distance],
                on_disk=spec.on_disk,
                datatype=DATATYPES[spec.datatype],
            ),
            hnsw_config=qm.HnswConfigDiff(
                m=spec.hnsw_m,
                ef_construct=spec.hnsw_ef_construct,
                full_scan_threshold=spec.full_scan_threshold_kb,
            ),
            optimizers_config=qm.OptimizersConfigDiff(
                indexing_threshold=spec.full_scan_threshold_kb
            ),
            quantization_config=quantization_config(spec.quantization),
            shard_number=spec.shard_number,
            replication_factor=spec.replication_factor,
            write_consistency_factor=spec.write_consistency_factor,
            sparse_vectors_config=(
                {KEYWORD_VECTOR: qm.SparseVectorParams(modifier=qm.Modifier.IDF)}
                if spec.bm25
                else None
            ),
            metadata=saved_spec(spec),
        )

    def _nodes(self) -> int:
        """How many nodes the server's cluster has (a server out of distributed mode: 1)."""
        status = self._client.cluster_status()
        peers = getattr(status, "peers", None)
        return len(peers) if peers else 1

    def _index_fields(self, name: str, indexes: Mapping[str, PayloadIndexKind]) -> None:
        for key, kind in indexes.items():
            self._client.create_payload_index(name, key, field_schema=INDEX_KINDS[kind], wait=True)

    def list_collections(self) -> list[str]:
        with self._call(ErrorContext()):
            return sorted(c.name for c in self._client.get_collections().collections)

    def get_collection(self, name: str) -> CollectionInfo:
        validate_collection_name(name)
        with self._call(ErrorContext(name)):
            info = self._client.get_collection(name)
            count = self._client.count(name, exact=True).count
        spec = self._keep_spec(name, info)
        return CollectionInfo(
            spec=spec, points_count=count, indexed_vectors_count=info.indexed_vectors_count
        )

    def delete_collection(self, name: str) -> None:
        validate_collection_name(name)
        self._specs.drop(name)
        with self._call(ErrorContext(name)):
            # The server resolves an alias here and answers "not deleted"; say why instead.
            if (collection := self._aliases().get(name)) is not None:
                raise NameIsAlias(name, collection)
            if not self._client.collection_exists(name):
                raise CollectionNotFound(name)
            check = f"whether it is gone (ListCollections, GetCollection {name})"
            with change_in_doubt(f"deleting collection {name!r}", check):
                self._client.delete_collection(name)

    def update_collection(self, name: str, update: CollectionUpdate) -> None:
        # Read now: the indexes to build or drop are the server's, not those cached or saved.
        current = self._read_spec(name)
        spec = update.applied_to(current)
        with self._call(ErrorContext(name)):
            if not self._local:  # local mode has no payload indexes (see create_collection)
                for key in update.indexes_to_drop(current):
                    self._client.delete_payload_index(name, key, wait=True)
                self._index_fields(name, update.indexes_to_build(current))
            self._client.update_collection(name, metadata=saved_spec(spec))
        self._specs.drop(name)

    def _aliases(self) -> dict[str, str]:
        found = self._client.get_aliases().aliases
        return {a.alias_name: a.collection_name for a in sorted(found, key=lambda a: a.alias_name)}

    def update_aliases(self, assign: Mapping[str, str], remove: Sequence[str] = ()) -> None:
        with self._call(ErrorContext()):
            collections = {c.name for c in self._client.get_collections().collections}
            check_alias_changes(assign, remove, collections, self._aliases())
            # The server applies its operations one by one; the checks above make a batch
            # whole or not at all, short of a change made meanwhile by another client.
            removals = [
                qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=a)) for a in remove
            ]
            creations = [
                qm.CreateAliasOperation(
                    create_alias=qm.CreateAlias(collection_name=c, alias_name=a)
                )
                for a, c in assign.items()
            ]
            with change_in_doubt("changing aliases", "the aliases (ListAliases)"):
                self._client.update_collection_aliases([*removals, *creations])
        self._specs.clear()  # specs cached under an alias may be another collection's now

    def list_aliases(self) -> dict[str, str]:
        with self._call(ErrorContext()):
            return self._aliases()

    # --------------------------------------------------------------------- writes

    def upsert(self, collection: str, points: Sequence[PointRecord]) -> None:
        def write(spec: CollectionSpec) -> None:
            if not spec.bm25 and any(p.keywords is not None for p in points):
                raise _without_bm25(spec)
            prepared = prepare_points(spec, points)
            if not prepared:
                return
            structs = [
                qm.PointStruct(
                    id=p.point_id, vector=point_vector(p.vector, p.keywords), payload=p.payload
                )
                for p in prepared
            ]
            with self._call(ErrorContext(collection)):
                self._client.upsert(collection, points=structs, wait=True)

        self._validated(collection, write)

    def delete(
        self, collection: str, ids: Sequence[str] | None = None, filter: Filter | None = None
    ) -> None:
        filter = check_filter(filter)
        if ids is None and filter is None:
            # Deleting everything must be asked for explicitly (delete_collection).
            raise InvalidRequest("delete needs ids or a non-empty filter")
        if ids is not None:
            check_id_list(ids)
        validate_collection_name(collection)
        if ids is not None and not ids:
            self._spec(collection)  # still report a missing collection
            return
        self._check_text_matches(collection, filter)
        with self._call(ErrorContext(collection)):
            self._client.delete(collection, points_selector=_selector(ids, filter), wait=True)

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
        self._spec(collection)
        if ids is not None and not ids:
            return
        self._check_text_matches(collection, filter)
        selector = _selector(ids, filter)
        wanted = point_index(ids or ())
        with self._lock:  # local mode: no other call between the check and the write
            if filter is None:
                with self._call(ErrorContext(collection)):
                    found = self._client.retrieve(collection, point_ids(ids or ()), False, False)
                if missing := missing_ids(wanted, found):  # the server would update the others
                    raise PointNotFound(collection, missing)
            # A server: a point deleted since the check fails the write, after the server
            # updated the others; NOT_FOUND names it (not an outage, for a client to retry).
            with self._call(ErrorContext(collection, wanted)):
                self._client.set_payload(collection, changes, selector, wait=True)

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
        validate_collection_name(collection)
        filter = check_filter(filter)
        direction = qm.Direction.DESC if order.descending else qm.Direction.ASC

        def scroll(spec: CollectionSpec) -> list[tuple[Record, OrderValue]]:
            order_index(spec, order)
            require_text_indexes(spec, text_match_keys(filter))
            with self._call(ErrorContext(collection)):
                records, _ = self._client.scroll(
                    collection,
                    scroll_filter=optional_filter(filter),
                    limit=check_scroll_limit(limit),
                    order_by=qm.OrderBy(key=order.key, direction=direction, start_from=start_from),
                    with_payload=True if with_payload else [RESERVED_KEY],
                    with_vectors=with_vectors,
                )
            return ordered_records(records, with_payload, with_vectors)

        return self._validated(collection, scroll)

    def optimize(self, collection: str) -> bool:
        """Servers optimise in the background and local mode has no index: nothing to do."""
        self._spec(collection)
        return False

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
        params, ctx = search_params(params), ErrorContext(collection)

        def run(spec: CollectionSpec) -> list[ScoredPoint]:
            if keywords is not None and not spec.bm25:
                raise _without_bm25(spec)
            dense = search_vector(spec, vector, keywords, params)
            queries: list[tuple[Any, str | None]] = []
            if dense is not None and params.diversity is not None:
                candidates = diversity_candidates(params)
                mmr = qm.Mmr(diversity=params.diversity, candidates_limit=candidates)
                queries.append((qm.NearestQuery(nearest=dense, mmr=mmr), None))
            elif dense is not None:
                queries.append((dense, None))
            if keywords is not None:
                queries.append((sparse_vector(keywords), KEYWORD_VECTOR))
            if len(queries) == 1:
                query, using = queries[0]
                return self._query(spec, query, filter, params, ctx, using=using)
            # Fused here, not by the engine, which ranks equal scores in its own order.
            rankings = [
                functools.partial(self._ranking, spec, q, filter, ctx=ctx, using=using)
                for q, using in queries
            ]
            return fused_page(rankings, functools.partial(self._named, spec, ctx), params)

        return self._validated(collection, run)

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
        params = recommend_params(params)
        by_point: dict[str, str] = {}

        def examples(given: Sequence[Example], spec: CollectionSpec) -> list[Any]:
            if isinstance(given, str):
                raise InvalidRequest("examples must be a list of ids or vectors, not a string")
            out: list[Any] = []
            for e in given:
                if isinstance(e, str):
                    pid = point_id(check_external_id(e))
                    by_point[str(pid)] = e
                    out.append(pid)
                else:
                    out.append(spec_vector(e, spec))
            return out

        def run(spec: CollectionSpec) -> list[ScoredPoint]:
            pos, neg = examples(positive, spec), examples(negative, spec)
            if not (pos or neg):
                raise InvalidRequest("recommend needs at least one example")
            if strategy is RecommendStrategy.AVERAGE_VECTOR and not pos:
                raise InvalidRequest("the average_vector strategy needs a positive example")
            # The server looks up id examples itself and leaves them out of the results.
            query = qm.RecommendQuery(
                recommend=qm.RecommendInput(
                    positive=pos, negative=neg, strategy=qm.RecommendStrategy(strategy.value)
                )
            )
            ctx = ErrorContext(collection, by_point)
            return thresholded(
                lambda p: self._query(spec, query, filter, p, ctx), strategy, spec.distance, params
            )

        return self._validated(collection, run)

    def _query(
        self,
        spec: CollectionSpec,
        query: Any,
        filter: Filter | None,
        params: SearchParams,
        ctx: ErrorContext,
        using: str | None = None,
    ) -> list[ScoredPoint]:
        """Run ``query`` against the vector named ``using`` (None: the dense one)."""
        points = self._points(spec, query, filter, params, ctx, using, payload_selector(params))
        hits = scored_points(points, params)
        if self._local:  # it cut by its float64 scores (thresholds.py)
            distances = using is None and spec.distance in (Distance.EUCLID, Distance.MANHATTAN)
            threshold = self._engine_threshold(params.score_threshold)
            return kept_better(hits, threshold, smaller_is_better=distances)
        return hits

    def _ranking(
        self,
        spec: CollectionSpec,
        query: Any,
        filter: Filter | None,
        params: SearchParams,
        ctx: ErrorContext,
        using: str | None = None,
    ) -> list[ScoredPoint]:
        """``query``'s hits named by point id, no payload read (_results.point_scores)."""
        return point_scores(self._points(spec, query, filter, params, ctx, using, payload=False))

    def _points(
        self,
        spec: CollectionSpec,
        query: Any,
        filter: Filter | None,
        params: SearchParams,
        ctx: ErrorContext,
        using: str | None,
        payload: bool | list[str],
    ) -> list[Any]:
        # Local mode always searches exactly and warns when given search params; they are
        # still checked, so that it refuses what the other stores refuse (oversampling on
        # a collection without quantization).
        quantized_search(spec, params)
        search_params = None if self._local else engine_search_params(spec, params)
        require_text_indexes(spec, text_match_keys(filter := check_filter(filter)))
        with self._call(ctx):
            response = self._client.query_points(
                spec.name,
                query=query,
                using=using,
                query_filter=optional_filter(filter),
                search_params=search_params,
                limit=params.limit,
                offset=params.offset or None,
                with_payload=payload,
                with_vectors=params.with_vectors,
                score_threshold=self._engine_threshold(params.score_threshold),
                consistency=read_consistency_of(params.read_consistency),
            )
        return list(response.points)

    def _engine_threshold(self, threshold: float | None) -> float | None:
        """The threshold as the engine compares it: a server in float32 (as the embedded
        store does), local mode as given, so it is rounded here."""
        return as_float32(threshold) if self._local and threshold is not None else threshold

    def _named(
        self, spec: CollectionSpec, ctx: ErrorContext, hits: list[ScoredPoint], params: SearchParams
    ) -> list[ScoredPoint]:
        """``_ranking``'s ``hits`` under the caller's ids (_results.named_hits)."""
        if not hits:
            return []
        with self._call(ctx):
            records = self._client.retrieve(
                spec.name,
                ids=[engine_point_id(hit.id) for hit in hits],
                with_payload=payload_selector(params),
                with_vectors=params.with_vectors,
                consistency=read_consistency_of(params.read_consistency),
            )
        return named_hits(hits, records, params)

    def retrieve(
        self, collection: str, ids: Sequence[str], with_vectors: bool = False
    ) -> list[Record]:
        check_id_list(ids)
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            self._spec(collection)
            return []
        validate_collection_name(collection)
        with self._call(ErrorContext(collection)):
            records = self._client.retrieve(
                collection, ids=point_ids(wanted), with_payload=True, with_vectors=with_vectors
            )
        return records_in_order(records, wanted, with_vectors)

    def count(self, collection: str, filter: Filter | None = None, exact: bool = True) -> int:
        validate_collection_name(collection)
        self._check_text_matches(collection, filter)
        with self._call(ErrorContext(collection)):
            return int(
                self._client.count(
                    collection, count_filter=optional_filter(filter), exact=exact
                ).count
            )

    def facet(
        self, collection: str, key: str, filter: Filter | None = None, limit: int = 10
    ) -> list[FacetHit]:
        filter = check_filter(filter)

        def run(spec: CollectionSpec) -> list[FacetHit]:
            check_facet(spec, key, limit)
            require_text_indexes(spec, text_match_keys(filter))
            with self._call(ErrorContext(collection)):
                response = self._client.facet(
                    collection,
                    key,
                    facet_filter=optional_filter(filter),
                    limit=MAX_FACET_LIMIT,  # ties at the limit are cut by value, here
                    exact=True,
                )
            return facet_hits(response.hits, limit, spec.payload_indexes[key])

        return self._validated(collection, run)

    def scroll(
        self,
        collection: str,
        filter: Filter | None = None,
        limit: int = 256,
        cursor: str | None = None,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> ScrollPage:
        validate_collection_name(collection)
        self._check_text_matches(collection, filter)
        offset = engine_cursor(cursor)
        with self._call(ErrorContext(collection)):
            records, next_offset = self._client.scroll(
                collection,
                scroll_filter=optional_filter(filter),
                limit=check_scroll_limit(limit),
                offset=offset,
                # The external id lives in the payload, so it is always fetched.
                with_payload=True if with_payload else [RESERVED_KEY],
                with_vectors=with_vectors,
            )
        return ScrollPage(
            records_of(records, with_payload, with_vectors),
            None if next_offset is None else str(next_offset),
        )
