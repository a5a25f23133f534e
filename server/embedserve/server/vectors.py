"""The transport-free vector API: embed documents and queries, call the store, map its errors.

Store calls are blocking (the embedded engine is in-process Rust, the server client does
network I/O), so they run on a small thread pool; the event loop keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import json
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from concurrent.futures import Executor
from enum import StrEnum
from typing import Any, TypeVar

import numpy as np

from embedserve.client._struct_numbers import whole_to_int
from embedserve.connectors import errors as store_errors
from embedserve.connectors.groups import (
    GroupBy,
    HitGroup,
    check_grouping,
    groups_of,
    search_groups,
)
from embedserve.connectors.keywords import document_terms, query_terms
from embedserve.connectors.ordered_scroll import ScrollOrder, order_index, ordered_page
from embedserve.connectors.payload_fields import as_asked, with_fields, without
from embedserve.connectors.rank_windows import first_stage_span, in_windows, page_of
from embedserve.connectors.spec_cache import SETTINGS_TTL_S, SpecCache
from embedserve.connectors.stable_pages import Ranked, stable_page
from embedserve.connectors.store import VectorStore
from embedserve.connectors.types import (
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
    VectorLike,
)
from embedserve.connectors.validation import check_document, spec_vector
from embedserve.connectors.weighing import Weighing, check_weighings, rank_weighed
from embedserve.server.batcher import Priority
from embedserve.server.embedder import Embedder, EmbedParams, Task, Timings
from embedserve.server.errors import (
    AlreadyExists,
    EmbedServeError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    NotReady,
    OutOfSpace,
    StoreDown,
    StoreFailed,
    named,
)
from embedserve.server.input_names import InputNames
from embedserve.server.metrics import Metrics
from embedserve.server.model_identity import fingerprints_of, model_fingerprint
from embedserve.server.model_spec import SimilarityFunction
from embedserve.server.passages import (
    DOC_ID_KEY,
    DocumentLocks,
    PassageSplit,
    check_passage_payload,
    check_split_id,
    passage_id,
    passage_payload,
    replaced_ids,
    stale_points,
)
from embedserve.server.reranking import Reranker, RerankParams, no_reranker
from embedserve.server.search_rerank import RerankStage, hit_texts
from embedserve.server.windows import FloatArray

T = TypeVar("T")

TEXT_PAYLOAD_KEY = "text"
# A collection created without a distance ranks as the model's similarity function does.
MODEL_DISTANCES = {
    SimilarityFunction.COSINE: Distance.COSINE,
    SimilarityFunction.DOT: Distance.DOT,
    SimilarityFunction.EUCLIDEAN: Distance.EUCLID,
    SimilarityFunction.MANHATTAN: Distance.MANHATTAN,
}


def stored_numbers(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` as every door stores it: each whole float an int64 holds (``1.0``) as an
    int, as a gRPC Struct's doubles are read, so that integer filters match it; integers as
    they are (past 2**53 too), other floats as floats."""
    return {key: whole_to_int(value) for key, value in payload.items()}


@dataclasses.dataclass(frozen=True)
class DocumentIn:
    """A document to write: text to embed or a ready vector, with its payload."""

    id: str
    text: str | None = None
    vector: Sequence[float] | None = None
    payload: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class WriteSettings:
    embed: EmbedParams = dataclasses.field(default_factory=lambda: EmbedParams(Task.DOCUMENT))
    store_text: bool = False
    split: PassageSplit | None = None  # store texts as passages, one point each


@dataclasses.dataclass(frozen=True)
class PreparedBatch:
    """Documents turned into points, ready to write."""

    points: list[PointRecord]
    tokens: int
    # The documents stored as passages, and how many each has now.
    passage_counts: dict[str, int] = dataclasses.field(default_factory=dict)
    embedded_at: int | None = None  # the vector size its texts were embedded at
    # The keyword settings (bm25, bm25_language) its points were made for; None: any.
    keywords_for: tuple[bool, str] | None = None
    timings: Timings = dataclasses.field(default_factory=Timings)  # of its embedding


@dataclasses.dataclass(frozen=True)
class QueryIn:
    """A query or recommendation example: exactly one of a text, a vector or a stored id."""

    text: str | None = None
    vector: Sequence[float] | None = None
    id: str | None = None

    def check(self, field: str) -> None:
        """``field`` names a recommendation example; empty for a search query."""
        given = sum(v is not None for v in (self.text, self.vector, self.id))
        if given != 1:
            raise InvalidArgument(
                f"{field} needs exactly one of id, text or vector"
                if field
                else "a search needs exactly one of text or vector"
            )
        if self.text == "":
            raise InvalidArgument(f"{field + '.' if field else ''}text must not be empty")

    def value(self) -> Example:
        """The store's form of an id or vector example."""
        return self.id if self.id is not None else list(self.vector or ())


class SearchMode(StrEnum):
    """How a search ranks: by embedding, by BM25 keywords, or both fused by rank."""

    DENSE = "dense"
    KEYWORD = "keyword"
    HYBRID = "hybrid"


@dataclasses.dataclass(frozen=True)
class SearchIn:
    """One search of a batch: what ``VectorCore.search`` takes besides the collection."""

    query: QueryIn
    filter: Filter | None
    params: SearchParams
    embed: EmbedParams
    mode: SearchMode = SearchMode.DENSE
    group: GroupBy | None = None  # the best hits per value of a payload field
    # Fresher or nearer documents first among equally good matches.
    weighings: tuple[Weighing, ...] = ()
    rerank: RerankStage | None = None  # the best hits reordered by the reranker


@dataclasses.dataclass(frozen=True)
class QueryResult:
    results: list[ScoredPoint]  # empty for a grouped search
    tokens: int  # spent embedding the query texts
    timings: Timings  # of that embedding
    search_ms: float
    groups: list[HitGroup] | None = None  # a grouped search's


@dataclasses.dataclass(frozen=True)
class _EmbeddedExamples:
    examples: list[Example]
    tokens: int
    timings: Timings
    embedded_at: tuple[int, ...] = ()  # the vector size its texts were embedded at, if any

    def result(
        self, results: list[ScoredPoint], started: float, groups: list[HitGroup] | None = None
    ) -> QueryResult:
        search_ms = (time.monotonic() - started) * 1000.0
        return QueryResult(results, self.tokens, self.timings, search_ms, groups)


SCROLL_PAGE = 256  # documents per Scroll page when the caller names no limit
# Runs of a call again after its collection changed size under it; an alias moved back and
# forth while the call runs may change it more than once.
SIZE_CHANGE_RETRIES = 3


class SizeChanged(FailedPrecondition):
    """The store holds a collection at another vector size (or without the bm25 vectors)
    than this server had cached: another server on the same Qdrant deleted and re-created
    it. The entry is dropped, so the same call, run again, embeds at the new settings."""


def translate_store_error(exc: store_errors.StoreError) -> EmbedServeError:
    """The vector store's errors in the core's terms (and so in the one status table)."""
    message = str(exc)
    if isinstance(exc, store_errors.InvalidRequest):
        return InvalidArgument(message)
    if isinstance(
        exc,
        store_errors.CollectionNotFound | store_errors.PointNotFound | store_errors.AliasNotFound,
    ):
        return NotFound(message)
    if isinstance(exc, store_errors.CollectionExists):
        return AlreadyExists(message)
    if isinstance(
        exc, store_errors.StoreLocked | store_errors.NameIsAlias | store_errors.StoreRefused
    ):
        return FailedPrecondition(message)
    if isinstance(exc, store_errors.StoreFull):
        return OutOfSpace(message)
    if isinstance(exc, store_errors.StoreClosed):
        return NotReady(message)
    if isinstance(exc, store_errors.EngineFailure):
        return StoreFailed(
            f"{message}; retrying will not help (a file of the data directory may be damaged)"
        )
    return StoreDown(message)


class VectorCore:
    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        executor: Executor,
        metrics: Metrics,
        reranker: Reranker | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self._embedder = embedder
        self._reranker = reranker
        self._executor = executor
        # Settings by collection or alias name. Other servers on the same Qdrant may
        # re-create or change a collection, so they are read again every few seconds, and
        # at once where the store refuses a call made for settings it no longer has.
        self._specs = SpecCache(SETTINGS_TTL_S)
        # Held by each write of split documents over its removal of stale passages and its
        # write of the new ones.
        self._documents = DocumentLocks()

    @property
    def model_width(self) -> int:
        return self._embedder.model.dimensions

    @property
    def model_distance(self) -> Distance:
        """The distance that ranks as the model's similarity function does."""
        return MODEL_DISTANCES[self._embedder.model.spec.similarity]

    async def call(self, fn: Callable[..., T], *args: Any, embedded_at: Collection[int] = ()) -> T:
        """Run a store call off the event loop, its errors in the core's terms.
        ``embedded_at``: the sizes this call's texts were embedded at, from the cached
        settings; a store that wants another size has had the collection re-created, or the
        alias used moved, since they were cached."""
        loop = asyncio.get_running_loop()
        # In the call's context, so that the store's log lines carry its request id.
        in_context = functools.partial(contextvars.copy_context().run, fn, *args)
        try:
            return await loop.run_in_executor(self._executor, in_context)
        except store_errors.DimensionMismatch as exc:
            stale = [size for size in embedded_at if size != exc.expected]
            if not stale:
                raise translate_store_error(exc) from exc
            self._specs.clear()  # it may be cached under the collection's name or an alias
            raise SizeChanged(
                f"collection {exc.collection!r} holds {exc.expected}-d vectors now; this "
                f"call embedded its texts at {stale[0]} dimensions; send it again"
            ) from exc
        except store_errors.SettingsChanged as exc:
            self._specs.clear()
            raise SizeChanged(f"{exc}; send it again") from exc
        except store_errors.StoreError as exc:
            raise translate_store_error(exc) from exc

    @staticmethod
    async def at_current_size(run: Callable[[], Awaitable[T]]) -> T:
        """``run`` embeds at a collection's cached size, then calls the store; if the
        collection was re-created at another size meanwhile (by another server), or an
        alias moved to a collection of another size, it runs again at the new size."""
        for _ in range(SIZE_CHANGE_RETRIES):
            try:
                return await run()
            except SizeChanged:
                pass
        return await run()

    # -- collections -------------------------------------------------------------

    async def create_collection(self, spec: CollectionSpec) -> CollectionInfo:
        model = self._embedder.model.spec
        spec = dataclasses.replace(
            spec, model_id=model.model_id, model_fingerprint=model_fingerprint(model.path)
        )
        width = self._embedder.model.dimensions
        if spec.vector_size > width:
            raise FailedPrecondition(
                f"collection {spec.name!r} asks for {spec.vector_size}-d vectors but the served "
                f"model gives {width}-d vectors; use dimensions <= {width}"
            )
        await self.call(self.store.create_collection, spec)
        info = await self.call(self.store.get_collection, spec.name)
        self._specs.put(spec.name, info.spec)
        return info

    async def list_collections(self) -> list[str]:
        return await self.call(self.store.list_collections)

    async def get_collection(self, name: str) -> CollectionInfo:
        """The collection ``name`` names (itself or by an alias), with its own name and
        the aliases that name it."""
        aliases = await self.list_aliases()
        own_name = aliases.get(name, name)
        info = await self.call(self.store.get_collection, own_name)
        for known_as in {name, own_name}:  # the caller sees these settings: so does the core
            self._specs.put(known_as, info.spec)
        named_by = tuple(a for a, c in aliases.items() if c == own_name)
        return dataclasses.replace(info, aliases=named_by)

    async def update_collection(self, name: str, update: CollectionUpdate) -> CollectionInfo:
        await self.call(self.store.update_collection, name, update)
        self._specs.clear()  # cached under its name and its aliases
        return await self.get_collection(name)

    async def delete_collection(self, name: str) -> None:
        self._specs.clear()  # entries cached under its aliases go too
        await self.call(self.store.delete_collection, name)

    async def update_aliases(self, assign: Mapping[str, str], remove: Sequence[str]) -> None:
        try:
            await self.call(self.store.update_aliases, assign, remove)
        finally:
            self._specs.clear()  # an alias may name another collection now

    async def list_aliases(self, collection: str = "") -> dict[str, str]:
        """Alias -> collection, sorted by alias; only ``collection``'s when given (by its
        name or by one of its aliases)."""
        aliases = await self.call(self.store.list_aliases)
        own_name = aliases.get(collection, collection)
        named = {a: c for a, c in aliases.items() if not collection or c == own_name}
        if collection and not named:
            await self.collection_spec(collection)  # a collection of no alias, or NOT_FOUND
        return named

    async def collection_spec(self, collection: str, fresh: bool = False) -> CollectionSpec:
        """The collection's settings, cached for a few seconds; ``fresh`` asks the store
        again."""
        spec = None if fresh else self._specs.get(collection)
        if spec is None:
            spec = (await self.call(self.store.get_collection, collection)).spec
            self._specs.put(collection, spec)
        return spec

    async def vector_size(self, collection: str, fresh: bool = False) -> int:
        return (await self.collection_spec(collection, fresh)).vector_size

    # -- writes ------------------------------------------------------------------

    async def prepare(
        self,
        collection: str,
        documents: Sequence[DocumentIn],
        settings: WriteSettings,
        wait_for_room: bool = False,
    ) -> PreparedBatch:
        """Validate documents and embed their texts (with the collection's vector size)."""
        if not collection:
            raise InvalidArgument("collection must be set")
        if not documents:
            raise InvalidArgument("documents must not be empty")
        spec = await self.collection_spec(collection)
        size = spec.vector_size
        split = settings.split
        written_as_text: list[tuple[int, DocumentIn]] = []
        # Split into passages, an earlier version of a document is left out, not written
        # with the last: its passages past the last version's count would stay behind.
        last_index = {doc.id: index for index, doc in enumerate(documents)}
        checked: list[DocumentIn] = []  # their payloads' numbers as they are stored
        for index, doc in enumerate(documents):
            if not doc.id:
                raise InvalidArgument(f"documents[{index}].id must not be empty")
            try:  # the store's own checks, run here so a bad document costs no model time
                check_document(doc.id, doc.payload)
            except store_errors.InvalidRequest as exc:
                raise InvalidArgument(f"documents[{index}]: {exc}") from exc
            doc = dataclasses.replace(doc, payload=stored_numbers(doc.payload))
            checked.append(doc)
            if (doc.text is None) == (doc.vector is None):
                raise InvalidArgument(f"documents[{index}] needs exactly one of text or vector")
            if doc.vector is not None and len(doc.vector) != size:
                spec = await self.collection_spec(collection, fresh=True)  # re-created?
                size = spec.vector_size
            if doc.vector is not None:
                try:
                    spec_vector(doc.vector, spec)
                except store_errors.DimensionMismatch:
                    raise InvalidArgument(
                        f"documents[{index}].vector has {len(doc.vector)} dimensions; "
                        f"collection {collection!r} stores {size}"
                    ) from None
                except store_errors.InvalidRequest as exc:
                    raise InvalidArgument(f"documents[{index}]: {exc}") from exc
            else:
                if split is not None:
                    check_split_id(doc.id, f"documents[{index}]")
                    check_passage_payload(doc.payload, f"documents[{index}]")
                if split is None or last_index[doc.id] == index:
                    written_as_text.append((index, doc))
        kept = [d for i, d in enumerate(checked) if split is None or last_index[d.id] == i]
        texts = [doc.text or "" for _, doc in written_as_text]
        text_names = [f"documents[{index}].text" for index, _ in written_as_text]
        params = settings.embed
        spans = [[(0, len(text))] for text in texts]
        if texts:
            params = self._params_for(spec, settings.embed)
            # The request's limits hold for its documents, however many passages they make.
            self._embedder.validate_inputs(texts, InputNames.listed("documents", text_names))
        if split is not None and texts:
            spans = await self._split(written_as_text, texts, split, params)
        passages = [text[a:b] for text, cuts in zip(texts, spans, strict=True) for a, b in cuts]
        names = [name for name, cuts in zip(text_names, spans, strict=True) for _ in cuts]
        vectors: FloatArray | None = None
        tokens, timings = 0, Timings()
        if passages:
            # A batch of documents split into passages may hold more than one request's
            # inputs; each passage is named as its document's text.
            vectors, tokens, timings = await self._embed_in_slices(
                passages,
                params,
                lambda start, end: InputNames.listed("documents", names[start:end]),
                wait_for_room,
            )
        points, counts = _points(kept, spans, vectors, settings, spec)
        keywords_for = (spec.bm25, spec.bm25_language)
        embedded_at = spec.vector_size if texts else None
        return PreparedBatch(points, tokens, counts, embedded_at, keywords_for, timings)

    async def _split(
        self,
        written_as_text: Sequence[tuple[int, DocumentIn]],
        texts: Sequence[str],
        split: PassageSplit,
        params: EmbedParams,
    ) -> list[list[tuple[int, int]]]:
        """The passage spans of each document given as text (``texts``, in order), their
        ids checked."""
        spans = await self._embedder.passage_spans(texts, split, params, "options.split")
        # Each passage carries its document's payload: tiny passages of a document with a
        # large payload wrote hundreds of copies (a 110 kB request, 600 MB on disk).
        copies, limit = 0, self._embedder.limits.max_message_bytes
        for (index, doc), cuts in zip(written_as_text, spans, strict=True):
            try:  # the longest passage id
                check_document(passage_id(doc.id, len(cuts) - 1), {})
            except store_errors.InvalidRequest as exc:
                raise InvalidArgument(f"documents[{index}]: {exc}") from exc
            size = len(json.dumps(doc.payload, ensure_ascii=False).encode())
            copies += len(cuts) * size
            if copies > limit:
                raise InvalidArgument(
                    f"documents[{index}]: its {len(cuts)} passages would each carry its "
                    f"payload of {size} bytes, and the request's passages more than one "
                    f"request may carry ({limit}, max_message_bytes): split into larger "
                    "passages, or write fewer documents a request"
                )
        return spans

    async def _embed_in_slices(
        self,
        texts: Sequence[str],
        params: EmbedParams,
        field_of: Callable[[int, int], str | InputNames],
        wait_for_room: bool = False,
    ) -> tuple[FloatArray, int, Timings]:
        """Embed ``texts`` in slices of the per-request input limit, side by side in the
        batcher's bulk lane (documents to write or to analyse, not queries);
        ``field_of(start, end)`` names a slice's texts in errors. Returns the vectors, the
        tokens spent and the timings (of the slowest slice, as they ran side by side)."""
        step = self._embedder.limits.max_inputs_per_request
        results = await asyncio.gather(
            *(
                self._embedder.embed(
                    texts[start : start + step],
                    params,
                    wait_for_room=wait_for_room,
                    field=field_of(start, min(start + step, len(texts))),
                    priority=Priority.BULK,
                    cached=False,
                )
                # No texts: one call, which refuses them as an empty request does.
                for start in range(0, max(1, len(texts)), step)
            )
        )
        timings = Timings()
        for result in results:
            timings.merge(result.timings)
        vectors = np.concatenate([r.vectors for r in results])
        return vectors, sum(r.total_tokens for r in results), timings

    def _params_for(self, spec: CollectionSpec, params: EmbedParams) -> EmbedParams:
        """``params`` for texts embedded into (or to query) the collection of ``spec``,
        at its size, by the model whose embeddings it holds."""
        collection, size = spec.name, spec.vector_size
        model = self._embedder.model.spec
        served = model_fingerprint(model.path)
        if spec.model_fingerprint and spec.model_fingerprint not in fingerprints_of(model.path):
            raise FailedPrecondition(
                f"collection {collection!r} holds embeddings of model {spec.model_id!r} "
                f"(fingerprint {spec.model_fingerprint}); this server serves {model.model_id!r} "
                f"({served}), whose embeddings do not compare with "
                f"them. Embed its texts again: embedserve reembed {collection} --to NEW_NAME; "
                "searches by vector still work"
            )
        width = self._embedder.model.dimensions
        if size > width:
            raise FailedPrecondition(
                f"collection {collection!r} stores {size}-d vectors but the served model gives "
                f"{width}-d vectors"
            )
        return dataclasses.replace(params, dimensions=size if size < width else None)

    async def upsert(
        self, collection: str, documents: Sequence[DocumentIn], settings: WriteSettings
    ) -> PreparedBatch:
        """Embed and write one batch; returns once it is durable."""

        async def once() -> PreparedBatch:
            prepared = await self.prepare(collection, documents, settings)
            await self.write(collection, [prepared])
            return prepared

        return await self.at_current_size(once)

    async def write(self, collection: str, batches: Sequence[PreparedBatch]) -> None:
        """Returns once the batches' points are durable (retries of transient errors
        included), in one store write where no document split into passages repeats."""
        for run in _runs_without_repeats(batches):
            await self._write_run(collection, run)

    async def _write_run(self, collection: str, batches: Sequence[PreparedBatch]) -> None:
        """A document split into passages replaces what its id held: the point written
        unsplit under its id and its passages past the new count go before the new
        passages are written, so a write cut short and sent again leaves nothing stale
        behind. Two writes of one split document in this process take turns (one lock per
        document, over removal and write); other documents' writes go on meanwhile."""
        points = [point for batch in batches for point in batch.points]
        counts = {doc: n for batch in batches for doc, n in batch.passage_counts.items()}
        sizes = {b.embedded_at for b in batches if b.embedded_at is not None}
        # The collection's own name, read once: each store call given an alias reads it
        # again, so a move meanwhile would check the settings of one collection and write
        # to another, or remove a document's passages from one and write them to the
        # other. Writes through an alias and by name meet in the document locks too.
        own_name = (await self.list_aliases()).get(collection, collection)
        spec = await self.collection_spec(own_name)
        try:
            _check_keywords_for(spec, collection, batches)
        except SizeChanged:
            self._specs.clear()  # prepared on an alias's cached settings: read them anew
            raise
        started = time.perf_counter()
        async with self._documents.held(own_name, counts):  # none without split documents
            if counts:
                await self._remove_replaced(own_name, spec, counts)
            await self.call(self.store.upsert, own_name, points, embedded_at=sizes)
        self.metrics.store_write_seconds.observe(time.perf_counter() - started)
        self.metrics.store_write_points.observe(len(points))

    async def _remove_replaced(
        self, collection: str, spec: CollectionSpec, counts: Mapping[str, int]
    ) -> None:
        """Remove what split documents (``counts``: each one's new passage count) replace.
        With a keyword index on ``doc_id``: by filter, in one request, every passage from
        the new count on, whatever count the stored ones say (passages an earlier write
        left, such as one of another process that raced this one, go too). Without one a
        filter would read every point of the collection (about 200 ms per 200,000 points,
        per write): the first passages are read, and the passages past the new count up to
        the count each first one says are removed by id."""
        if spec.payload_indexes.get(DOC_ID_KEY) is PayloadIndexKind.KEYWORD:
            await self.call(self.store.delete, collection, None, stale_points(counts))
            return
        firsts = [passage_id(doc, 0) for doc in counts]
        stored = await self.call(self.store.retrieve, collection, firsts)
        replaced = replaced_ids(counts, {r.id: r.payload for r in stored})
        await self.call(self.store.delete, collection, replaced)

    # -- queries -----------------------------------------------------------------

    async def search(self, collection: str, search: SearchIn) -> QueryResult:
        """Neighbours of a text (embedded with the query prompt) or of a vector; in
        keyword and hybrid modes, the text's BM25 matches, alone or fused with those;
        grouped by a payload field when ``search.group`` says so."""
        query, mode, group = search.query, search.mode, search.group
        if query.id is not None:
            raise InvalidArgument("a search takes a text or a vector, not an id")
        query.check("")
        if search.rerank is not None:
            if self._reranker is None:
                raise no_reranker()
            weighings = [w.name for w in search.weighings]
            search.rerank.check(search.params, query.text, weighings)
        await self._check_reranking(collection, search.params, group, search.weighings)
        keywords = None
        if mode is not SearchMode.DENSE:
            if query.text is None:
                raise InvalidArgument(f"a {mode} search needs a text query, not a vector")
            spec = await self.collection_spec(collection)
            if not spec.bm25:  # refused on settings read now, not on cached ones
                spec = await self.collection_spec(collection, fresh=True)
            if not spec.bm25:
                raise FailedPrecondition(
                    f"collection {collection!r} was created without bm25, so it has no "
                    f"keyword vectors for a {mode} search; create it with bm25 set"
                )
            keywords = query_terms(query.text, spec.bm25_language)

        async def once() -> QueryResult:
            vector: VectorLike | None = None
            if mode is SearchMode.KEYWORD:
                embedded = _EmbeddedExamples([], 0, Timings())
            else:
                embedded = await self._embed_examples(collection, [query], search.embed, "")
                example = embedded.examples[0]
                assert not isinstance(example, str)  # a search has no id example
                vector = example
            ranked = functools.partial(self.store.search, collection, vector, keywords=keywords)
            if search.rerank is not None:
                assert query.text is not None  # checked above
                return await self._reranked(collection, ranked, search, query.text, embedded)
            return await self._rank(
                collection,
                ranked,
                search.filter,
                search.params,
                group,
                embedded,
                search.weighings,
                fused=mode is SearchMode.HYBRID,
            )

        return await self.at_current_size(once)

    async def search_batch(
        self, collection: str, searches: Sequence[SearchIn]
    ) -> list[QueryResult]:
        """Several searches of one collection at once: their query texts meet in the
        batcher and embed together; the first failure, named by its index, ends them all."""
        if not searches:
            raise InvalidArgument("searches must not be empty")
        most = self._embedder.limits.max_inputs_per_request
        if len(searches) > most:
            raise InvalidArgument(
                f"{len(searches)} searches; at most {most} per request (max_inputs_per_request)"
            )

        async def one(index: int, s: SearchIn) -> QueryResult:
            with named(f"searches[{index}]"):
                return await self.search(collection, s)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(i, s)) for i, s in enumerate(searches)]
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        return [task.result() for task in tasks]

    async def recommend(
        self,
        collection: str,
        positive: Sequence[QueryIn],
        negative: Sequence[QueryIn],
        strategy: RecommendStrategy,
        filter: Filter | None,
        params: SearchParams,
        embed: EmbedParams,
        group: GroupBy | None = None,
        weighings: Sequence[Weighing] = (),
    ) -> QueryResult:
        """More like the positive examples, less like the negative ones; texts in one batch;
        grouped by a payload field when ``group`` says so, weighed by ``weighings``."""
        if not positive:
            raise InvalidArgument("positive must hold at least one example")
        # Each example is a scan of the collection in the store (which serves one call at a
        # time): 50,000 of them, ids repeated, held every caller for seconds.
        limit = self._embedder.limits.max_inputs_per_request
        if (count := len(positive) + len(negative)) > limit:
            raise InvalidArgument(
                f"positive and negative hold {count} examples; the limit is {limit} per "
                "request (max_inputs_per_request)"
            )
        await self._check_reranking(collection, params, group, weighings)
        fields = [f"positive[{i}]" for i in range(len(positive))]
        fields += [f"negative[{i}]" for i in range(len(negative))]

        async def once() -> QueryResult:
            examples = [*positive, *negative]
            embedded = await self._embed_examples(collection, examples, embed, fields)
            ranked = functools.partial(
                self.store.recommend,
                collection,
                embedded.examples[: len(positive)],
                embedded.examples[len(positive) :],
                strategy,
            )
            return await self._rank(collection, ranked, filter, params, group, embedded, weighings)

        return await self.at_current_size(once)

    async def _rank(
        self,
        collection: str,
        ranked: Ranked,
        filter: Filter | None,
        params: SearchParams,
        group: GroupBy | None,
        embedded: _EmbeddedExamples,
        weighings: Sequence[Weighing] = (),
        fused: bool = False,
    ) -> QueryResult:
        """Run a store query (``ranked`` under ``filter``): its hits, weighed by
        ``weighings`` when any, or its groups when ``group`` is set. A ``fused`` (hybrid)
        ranking's scores depend on the candidates fused, so its groups are not filled by
        searches within them, which would fuse other candidates."""
        started = time.monotonic()
        sizes = embedded.embedded_at
        if weighings:
            weighed = functools.partial(rank_weighed, ranked)
            hits = await self.call(weighed, filter, params, weighings, embedded_at=sizes)
            return embedded.result(hits, started)
        if group is None:
            page = functools.partial(stable_page, ranked)
            hits = await self.call(page, filter, params, embedded_at=sizes)
            return embedded.result(hits, started)
        retrieve = functools.partial(self.store.retrieve, collection)
        indexes = (await self.collection_spec(collection)).payload_indexes
        indexed = not fused and indexes.get(group.key) in (
            PayloadIndexKind.KEYWORD,
            PayloadIndexKind.INTEGER,
        )
        grouping = functools.partial(search_groups, retrieve=retrieve, indexed=indexed)
        groups = await self.call(grouping, ranked, filter, params, group, embedded_at=sizes)
        return embedded.result([], started, groups)

    async def _reranked(
        self,
        collection: str,
        ranked: Ranked,
        search: SearchIn,
        text: str,
        embedded: _EmbeddedExamples,
    ) -> QueryResult:
        """The best hits of ``ranked`` reordered by the reranker, and the page (or, with
        ``search.group``, the groups) cut from them."""
        assert self._reranker is not None and search.rerank is not None
        started = time.monotonic()
        stage, params, group = search.rerank, search.params, search.group
        wide, added = with_fields(params, [stage.text_key, *([group.key] if group else [])])
        window = stage.window(params)
        start, count = first_stage_span(window, params)
        first = dataclasses.replace(wide, offset=start, limit=count)
        read_first = functools.partial(stable_page, ranked)
        hits = await self.call(read_first, search.filter, first, embedded_at=embedded.embedded_at)
        found = embedded.result([], started, [] if group else None)  # the store's time
        if not hits:
            return found
        texts = hit_texts(hits, stage.text_key)
        read = await self._reranker.rerank(text, texts, RerankParams(), requested=False)
        scores = {r.index: r.score for r in read.ranked}
        scored = [dataclasses.replace(hit, score=scores[i]) for i, hit in enumerate(hits)]
        order = in_windows(scored, window)
        timings = dataclasses.replace(embedded.timings)
        timings.merge(read.timings)
        tokens = found.tokens + read.total_tokens
        if group is None:
            page = as_asked(page_of(order, start, params), params, added)
            return dataclasses.replace(found, results=page, tokens=tokens, timings=timings)
        if stage.text_key in added:  # read for the reranker only
            order = [
                dataclasses.replace(h, payload=without(h.payload, stage.text_key)) for h in order
            ]
        retrieve = functools.partial(self.store.retrieve, collection)
        groups = await self.call(groups_of, order, params, group, retrieve)
        return dataclasses.replace(found, groups=groups, tokens=tokens, timings=timings)

    async def _check_reranking(
        self,
        collection: str,
        params: SearchParams,
        group: GroupBy | None,
        weighings: Sequence[Weighing],
    ) -> None:
        """Refuse a grouping or a weighing the params rule out before the query costs
        model time."""
        _check_grouping(params, group)
        if not weighings:
            return
        if group is not None:
            raise InvalidArgument(f"a grouped search takes no {weighings[0].name}")
        distance = (await self.collection_spec(collection)).distance
        try:
            check_weighings(params, weighings, distance)
        except store_errors.InvalidRequest as exc:
            raise InvalidArgument(str(exc)) from exc

    async def _embed_examples(
        self,
        collection: str,
        examples: Sequence[QueryIn],
        params: EmbedParams,
        fields: Sequence[str] | str,
    ) -> _EmbeddedExamples:
        """Check each example holds one thing; embed all texts in one call."""
        texts: list[str] = []
        text_names: list[str] = []
        for index, example in enumerate(examples):
            field = fields if isinstance(fields, str) else fields[index]
            example.check(field)
            if example.text is not None:
                texts.append(example.text)
                text_names.append(f"{field}.text" if field else "text")
        if not texts:
            return _EmbeddedExamples([e.value() for e in examples], 0, Timings())
        spec = await self.collection_spec(collection)
        result = await self._embedder.embed(
            texts,
            self._params_for(spec, params),
            field=InputNames.listed("examples", text_names),
        )
        rows = iter(result.vectors)
        chosen: list[Example] = [next(rows) if e.text is not None else e.value() for e in examples]
        return _EmbeddedExamples(chosen, result.total_tokens, result.timings, (spec.vector_size,))

    async def get(self, collection: str, ids: Sequence[str], with_vectors: bool) -> list[Record]:
        if not ids:
            raise InvalidArgument("ids must not be empty")
        return await self.call(self.store.retrieve, collection, ids, with_vectors)

    async def delete(self, collection: str, ids: Sequence[str], filter: Filter | None) -> None:
        if not ids and filter is None:
            raise InvalidArgument(
                "give ids, a filter or both; deleting everything takes DeleteCollection"
            )
        await self.call(self.store.delete, collection, ids or None, filter)

    async def update_payload(
        self,
        collection: str,
        ids: Sequence[str],
        filter: Filter | None,
        values: dict[str, Any],
        delete_keys: Sequence[str],
    ) -> None:
        """Set and remove top-level payload keys; vectors (and keywords) stay as they are."""
        if not ids and filter is None:
            raise InvalidArgument("give ids, a filter or both")
        update = functools.partial(
            self.store.update_payload, values=stored_numbers(values), delete_keys=list(delete_keys)
        )
        await self.call(update, collection, ids or None, filter)

    async def facet(
        self, collection: str, key: str, filter: Filter | None, limit: int
    ) -> list[FacetHit]:
        return await self.call(self.store.facet, collection, key, filter, limit)

    async def count(self, collection: str, filter: Filter | None) -> int:
        return await self.call(self.store.count, collection, filter)

    async def scroll(
        self,
        collection: str,
        filter: Filter | None,
        limit: int = SCROLL_PAGE,
        cursor: str | None = None,
        with_payload: bool = True,
        with_vectors: bool = False,
        order: ScrollOrder | None = None,
    ) -> ScrollPage:
        if not collection:
            raise InvalidArgument("collection must be set")
        if order is None:
            return await self.call(
                self.store.scroll, collection, filter, limit, cursor, with_payload, with_vectors
            )
        spec = await self.collection_spec(collection)

        def page() -> ScrollPage:
            kind = order_index(spec, order)
            return ordered_page(
                self.store,
                collection,
                order,
                kind,
                filter,
                limit,
                cursor,
                with_payload,
                with_vectors,
            )

        return await self.call(page)

    async def embed_documents(self, texts: Sequence[str], field: str) -> FloatArray:
        """Embed free texts (not bound for a collection) with the DOCUMENT prompt, in
        slices of the per-request input limit, so an analysis may hold more texts than one
        Embed call. Errors name an item within its slice: texts[2048:4096][3]."""
        whole = len(texts) <= self._embedder.limits.max_inputs_per_request
        vectors, _, _ = await self._embed_in_slices(
            texts,
            EmbedParams(Task.DOCUMENT),
            lambda start, end: field if whole else f"{field}[{start}:{end}]",
        )
        return vectors


def _check_keywords_for(
    spec: CollectionSpec, collection: str, batches: Sequence[PreparedBatch]
) -> None:
    """Points made for other keyword settings than the collection has now (an alias moved
    between a collection with bm25 and one without since they were made) would go without
    keyword vectors, or with the wrong language's: made again instead."""
    current = (spec.bm25, spec.bm25_language)
    if any(b.keywords_for not in (None, current) for b in batches):
        raise SizeChanged(
            f"collection {collection!r} has other bm25 settings than its documents were "
            "prepared for; send them again"
        )


def _check_grouping(params: SearchParams, group: GroupBy | None) -> None:
    """Refuse a grouping the params rule out before the query costs model time."""
    if group is None:
        return
    try:
        check_grouping(params, group)
    except store_errors.InvalidRequest as exc:
        raise InvalidArgument(str(exc)) from exc


def _runs_without_repeats(batches: Sequence[PreparedBatch]) -> list[list[PreparedBatch]]:
    """Consecutive batches grouped so that no document split into passages meets, in one
    write, a document of the same id written before it: its replacement runs first."""
    runs: list[list[PreparedBatch]] = []
    seen: set[str] = set()
    for batch in batches:
        if not runs or seen & batch.passage_counts.keys():
            runs.append([])
            seen = set()
        runs[-1].append(batch)
        seen |= batch.passage_counts.keys() | {p.id for p in batch.points}
    return runs


def _points(
    documents: Sequence[DocumentIn],
    spans: Sequence[Sequence[tuple[int, int]]],
    vectors: FloatArray | None,
    settings: WriteSettings,
    spec: CollectionSpec,
) -> tuple[list[PointRecord], dict[str, int]]:
    """The points of a write: one per document given as a vector, one per span (each
    embedded, in order, in ``vectors``) of a document given as text; and each split
    document's passage count."""
    embedded = iter(vectors if vectors is not None else ())
    spans_in_order = iter(spans)  # one per document given as text
    points: list[PointRecord] = []
    counts: dict[str, int] = {}
    for doc in documents:
        if doc.text is None:
            assert doc.vector is not None
            stored_text = doc.payload.get(TEXT_PAYLOAD_KEY)
            keywords = (
                document_terms(stored_text, spec.bm25_language)
                if spec.bm25 and isinstance(stored_text, str)
                else None
            )
            points.append(PointRecord(doc.id, doc.vector, dict(doc.payload), keywords))
            continue
        cuts = next(spans_in_order)
        if settings.split is not None:
            counts[doc.id] = len(cuts)
        for number, (start, end) in enumerate(cuts):
            text = doc.text[start:end]
            payload = dict(doc.payload)
            point_id = doc.id
            if settings.split is not None:
                payload = passage_payload(payload, doc.id, number, cuts)
                point_id = passage_id(doc.id, number)
            if settings.store_text:
                payload[TEXT_PAYLOAD_KEY] = text
            keywords = document_terms(text, spec.bm25_language) if spec.bm25 else None
            points.append(PointRecord(point_id, next(embedded), payload, keywords))
    return points, counts
