"""The transport-free vector API: embed documents and queries, call the store, map its errors.

Store calls are blocking (the embedded engine is in-process Rust, the server client does
network I/O), so they run on a small thread pool; the event loop keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any, TypeVar

from embedserve.connectors import errors as store_errors
from embedserve.connectors.store import VectorStore
from embedserve.connectors.types import (
    CollectionInfo,
    CollectionSpec,
    Example,
    Filter,
    PointRecord,
    RecommendStrategy,
    Record,
    ScoredPoint,
    SearchParams,
)
from embedserve.server.embedder import Embedder, EmbedParams, EmbedResult, Task, Timings
from embedserve.server.errors import (
    AlreadyExists,
    EmbedServeError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    NotReady,
    StoreDown,
)
from embedserve.server.metrics import Metrics
from embedserve.server.model import FloatArray

T = TypeVar("T")

TEXT_PAYLOAD_KEY = "text"


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


@dataclasses.dataclass(frozen=True)
class TextExample:
    """A recommendation example given as text: embedded as a query first."""

    text: str


# A recommendation example: a stored document's id, a vector, or a text to embed.
ExampleIn = str | Sequence[float] | TextExample


@dataclasses.dataclass
class QueryOutcome:
    results: list[ScoredPoint]
    tokens: int
    timings: Timings
    search_ms: float


@dataclasses.dataclass(frozen=True)
class PreparedBatch:
    """Documents turned into points, ready to write."""

    points: list[PointRecord]
    tokens: int


def translate_store_error(exc: store_errors.StoreError) -> EmbedServeError:
    """The vector store's errors in the core's terms (and so in the one status table)."""
    message = str(exc)
    if isinstance(exc, store_errors.InvalidRequest):
        return InvalidArgument(message)
    if isinstance(exc, store_errors.CollectionNotFound | store_errors.PointNotFound):
        return NotFound(message)
    if isinstance(exc, store_errors.CollectionExists):
        return AlreadyExists(message)
    if isinstance(exc, store_errors.StoreLocked):
        return FailedPrecondition(message)
    if isinstance(exc, store_errors.StoreClosed):
        return NotReady(message)
    return StoreDown(message)


class VectorCore:
    def __init__(
        self, store: VectorStore, embedder: Embedder, executor: Executor, metrics: Metrics
    ) -> None:
        self.store = store
        self.metrics = metrics
        self._embedder = embedder
        self._executor = executor
        self._sizes: dict[str, int] = {}

    @property
    def model_width(self) -> int:
        return self._embedder.model.dimensions

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except store_errors.StoreError as exc:
            raise translate_store_error(exc) from exc

    # -- collections -------------------------------------------------------------

    async def create_collection(self, spec: CollectionSpec) -> CollectionInfo:
        width = self._embedder.model.dimensions
        if spec.vector_size > width:
            raise FailedPrecondition(
                f"collection {spec.name!r} asks for {spec.vector_size}-d vectors but the served "
                f"model gives {width}-d vectors; use dimensions <= {width}"
            )
        await self.call(self.store.create_collection, spec)
        self._sizes[spec.name] = spec.vector_size
        return await self.call(self.store.get_collection, spec.name)

    async def delete_collection(self, name: str) -> None:
        self._sizes.pop(name, None)
        await self.call(self.store.delete_collection, name)

    async def vector_size(self, collection: str) -> int:
        if collection not in self._sizes:
            info = await self.call(self.store.get_collection, collection)
            self._sizes[collection] = info.spec.vector_size
        return self._sizes[collection]

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
        size = await self.vector_size(collection)
        texts: list[str] = []
        for index, doc in enumerate(documents):
            if not doc.id:
                raise InvalidArgument(f"documents[{index}].id must not be empty")
            if (doc.text is None) == (doc.vector is None):
                raise InvalidArgument(f"documents[{index}] needs exactly one of text or vector")
            if doc.vector is not None and len(doc.vector) != size:
                raise InvalidArgument(
                    f"documents[{index}].vector has {len(doc.vector)} dimensions; collection "
                    f"{collection!r} stores {size}"
                )
            if doc.text is not None:
                texts.append(doc.text)
        vectors: FloatArray | None = None
        tokens = 0
        if texts:
            params = self._params_for(collection, size, settings.embed)
            result = await self._embedder.embed(
                texts, params, wait_for_room=wait_for_room, field="documents (texts)"
            )
            vectors, tokens = result.vectors, result.total_tokens
        points: list[PointRecord] = []
        text_row = 0
        for doc in documents:
            payload = dict(doc.payload)
            if doc.text is not None:
                assert vectors is not None
                vector: Sequence[float] | FloatArray = vectors[text_row]
                text_row += 1
                if settings.store_text:
                    payload[TEXT_PAYLOAD_KEY] = doc.text
            else:
                assert doc.vector is not None
                vector = doc.vector
            points.append(PointRecord(doc.id, vector, payload))
        return PreparedBatch(points, tokens)

    def _params_for(self, collection: str, size: int, params: EmbedParams) -> EmbedParams:
        width = self._embedder.model.dimensions
        if size > width:
            raise FailedPrecondition(
                f"collection {collection!r} stores {size}-d vectors but the served model gives "
                f"{width}-d vectors"
            )
        return dataclasses.replace(params, dimensions=size if size < width else None)

    async def write(self, collection: str, points: Sequence[PointRecord]) -> None:
        """Returns once the points are durable (retries of transient errors included)."""
        started = time.perf_counter()
        await self.call(self.store.upsert, collection, points)
        self.metrics.store_write_seconds.observe(time.perf_counter() - started)
        self.metrics.store_write_points.observe(len(points))

    # -- queries -----------------------------------------------------------------

    async def embed_query(self, collection: str, text: str, params: EmbedParams) -> EmbedResult:
        """Embed a query text to the collection's vector size."""
        size = await self.vector_size(collection)
        return await self._embedder.embed(
            [text], self._params_for(collection, size, params), field="text"
        )

    async def search(
        self,
        collection: str,
        vector: Sequence[float] | FloatArray,
        filter: Filter | None,
        params: SearchParams,
    ) -> tuple[list[ScoredPoint], float]:
        started = time.monotonic()
        results = await self.call(self.store.search, collection, vector, filter, params)
        return results, (time.monotonic() - started) * 1000.0

    async def recommend(
        self,
        collection: str,
        positive: Sequence[Example],
        negative: Sequence[Example],
        strategy: RecommendStrategy,
        filter: Filter | None,
        params: SearchParams,
    ) -> tuple[list[ScoredPoint], float]:
        if not positive:
            raise InvalidArgument("positive must hold at least one example")
        started = time.monotonic()
        results = await self.call(
            self.store.recommend, collection, positive, negative, strategy, filter, params
        )
        return results, (time.monotonic() - started) * 1000.0

    async def search_query(
        self,
        collection: str,
        text: str | None,
        vector: Sequence[float] | None,
        embed: EmbedParams,
        filter: Filter | None,
        params: SearchParams,
    ) -> QueryOutcome:
        """Search by a text (embedded as a query first) or by a vector: exactly one."""
        timings = Timings()
        tokens = 0
        if text is not None and vector is None:
            if not text:
                raise InvalidArgument("text must not be empty")
            embedded = await self.embed_query(collection, text, embed)
            query: Sequence[float] | FloatArray = embedded.vectors[0]
            tokens, timings = embedded.total_tokens, embedded.timings
        elif vector is not None and text is None:
            query = vector
        else:
            raise InvalidArgument("one of text or vector must be set")
        results, search_ms = await self.search(collection, query, filter, params)
        return QueryOutcome(results, tokens, timings, search_ms)

    async def recommend_examples(
        self,
        collection: str,
        positive: Sequence[ExampleIn],
        negative: Sequence[ExampleIn],
        strategy: RecommendStrategy,
        filter: Filter | None,
        params: SearchParams,
        embed: EmbedParams,
    ) -> QueryOutcome:
        """Recommend from ids, vectors or texts (texts are embedded as queries first)."""
        tokens = 0

        async def resolve(example: ExampleIn) -> Example:
            nonlocal tokens
            if not isinstance(example, TextExample):
                return example
            embedded = await self.embed_query(collection, example.text, embed)
            tokens += embedded.total_tokens
            vector: Example = embedded.vectors[0]
            return vector

        resolved_positive = [await resolve(e) for e in positive]
        resolved_negative = [await resolve(e) for e in negative]
        results, search_ms = await self.recommend(
            collection, resolved_positive, resolved_negative, strategy, filter, params
        )
        return QueryOutcome(results, tokens, Timings(), search_ms)

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

    async def count(self, collection: str, filter: Filter | None) -> int:
        return await self.call(self.store.count, collection, filter)
