"""Retries of transient store failures, with capped exponential backoff and full jitter."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import (
    AliasNotFound,
    CollectionExists,
    CollectionNotFound,
    InvalidRequest,
    StoreUnavailable,
    TransientStoreError,
)
from .ordered_scroll import OrderValue, ScrollOrder
from .store import ContextManagerMixin, VectorStore
from .types import (
    CollectionInfo,
    CollectionSpec,
    CollectionUpdate,
    Example,
    FacetHit,
    Filter,
    PointRecord,
    RecommendStrategy,
    Record,
    ScoredPoint,
    ScrollPage,
    SearchParams,
    SparseTerms,
    VectorLike,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds on retrying: whichever of ``max_attempts`` and ``max_total_s`` comes first."""

    max_attempts: int = 5
    max_total_s: float = 15.0
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise InvalidRequest("max_attempts must be at least 1")
        if self.max_total_s < 0 or self.initial_backoff_s < 0 or self.max_backoff_s < 0:
            raise InvalidRequest("retry durations must not be negative")
        if self.multiplier < 1:
            raise InvalidRequest("multiplier must be at least 1")

    def backoff(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """Sleep before retry number ``retry`` (1-based): uniform in [0, capped exponential].

        Full jitter spreads the retries of many clients that failed together.
        """
        cap = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (retry - 1))
        return cap * rand()


def call_with_retry(
    fn: Callable[[int], T],
    policy: RetryPolicy,
    *,
    what: str = "store call",
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``fn(attempt)`` until it stops raising TransientStoreError or the bounds are hit.

    Other errors propagate at once. When the bounds are hit, StoreUnavailable is raised
    with the number of attempts made and the last transient error as its cause.
    """
    start = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn(attempt)
        except TransientStoreError as exc:
            elapsed = clock() - start
            remaining = policy.max_total_s - elapsed
            if attempt >= policy.max_attempts or remaining <= 0:
                raise StoreUnavailable(attempt, elapsed, exc) from exc
            delay = min(policy.backoff(attempt), remaining)
            log.warning("%s failed (attempt %d), retrying in %.2fs: %s", what, attempt, delay, exc)
            sleep(delay)


class RetryingStore(ContextManagerMixin):
    """A VectorStore that retries its inner store's transient failures.

    Every operation is safe to repeat: upserts and deletes are idempotent (ids are
    deterministic), and a create or delete that succeeded on an attempt whose reply was
    lost is recognised on the next attempt instead of failing.
    """

    def __init__(self, inner: VectorStore, policy: RetryPolicy | None = None) -> None:
        self.inner = inner
        self.policy = policy or RetryPolicy()

    def _retry(self, what: str, fn: Callable[[], T]) -> T:
        return call_with_retry(lambda _attempt: fn(), self.policy, what=what)

    def create_collection(self, spec: CollectionSpec) -> None:
        def attempt(n: int) -> None:
            try:
                self.inner.create_collection(spec)
            except CollectionExists:
                if n == 1 or self.inner.get_collection(spec.name).spec != spec:
                    raise

        call_with_retry(attempt, self.policy, what="create_collection")

    def list_collections(self) -> list[str]:
        return self._retry("list_collections", self.inner.list_collections)

    def get_collection(self, name: str) -> CollectionInfo:
        return self._retry("get_collection", lambda: self.inner.get_collection(name))

    def delete_collection(self, name: str) -> None:
        def attempt(n: int) -> None:
            try:
                self.inner.delete_collection(name)
            except CollectionNotFound:
                if n == 1:
                    raise

        call_with_retry(attempt, self.policy, what="delete_collection")

    def update_collection(self, name: str, update: CollectionUpdate) -> None:
        def attempt(n: int) -> None:
            try:
                self.inner.update_collection(name, update)
            except InvalidRequest:
                # An earlier attempt whose reply was lost dropped the index already.
                if n == 1 or not update.made_in(self.inner.get_collection(name).spec):
                    raise

        call_with_retry(attempt, self.policy, what="update_collection")

    def update_aliases(self, assign: Mapping[str, str], remove: Sequence[str] = ()) -> None:
        def attempt(n: int) -> None:
            try:
                self.inner.update_aliases(assign, remove)
            except AliasNotFound:
                # An earlier attempt whose reply was lost made the change already.
                if n == 1 or any(self.inner.list_aliases().get(a) != c for a, c in assign.items()):
                    raise

        call_with_retry(attempt, self.policy, what="update_aliases")

    def list_aliases(self) -> dict[str, str]:
        return self._retry("list_aliases", self.inner.list_aliases)

    def upsert(self, collection: str, points: Sequence[PointRecord]) -> None:
        self._retry("upsert", lambda: self.inner.upsert(collection, points))

    def search(
        self,
        collection: str,
        vector: VectorLike | None,
        filter: Filter | None = None,
        params: SearchParams | None = None,
        *,
        keywords: SparseTerms | None = None,
    ) -> list[ScoredPoint]:
        return self._retry(
            "search",
            lambda: self.inner.search(collection, vector, filter, params, keywords=keywords),
        )

    def recommend(
        self,
        collection: str,
        positive: Sequence[Example],
        negative: Sequence[Example] = (),
        strategy: RecommendStrategy = RecommendStrategy.AVERAGE_VECTOR,
        filter: Filter | None = None,
        params: SearchParams | None = None,
    ) -> list[ScoredPoint]:
        return self._retry(
            "recommend",
            lambda: self.inner.recommend(collection, positive, negative, strategy, filter, params),
        )

    def retrieve(
        self, collection: str, ids: Sequence[str], with_vectors: bool = False
    ) -> list[Record]:
        return self._retry("retrieve", lambda: self.inner.retrieve(collection, ids, with_vectors))

    def delete(
        self, collection: str, ids: Sequence[str] | None = None, filter: Filter | None = None
    ) -> None:
        self._retry("delete", lambda: self.inner.delete(collection, ids, filter))

    def update_payload(
        self,
        collection: str,
        ids: Sequence[str] | None = None,
        filter: Filter | None = None,
        *,
        values: Mapping[str, Any] | None = None,
        delete_keys: Sequence[str] = (),
    ) -> None:
        self._retry(
            "update_payload",
            lambda: self.inner.update_payload(
                collection, ids, filter, values=values, delete_keys=delete_keys
            ),
        )

    def facet(
        self, collection: str, key: str, filter: Filter | None = None, limit: int = 10
    ) -> list[FacetHit]:
        return self._retry("facet", lambda: self.inner.facet(collection, key, filter, limit))

    def count(self, collection: str, filter: Filter | None = None, exact: bool = True) -> int:
        return self._retry("count", lambda: self.inner.count(collection, filter, exact))

    def scroll(
        self,
        collection: str,
        filter: Filter | None = None,
        limit: int = 256,
        cursor: str | None = None,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> ScrollPage:
        return self._retry(
            "scroll",
            lambda: self.inner.scroll(
                collection, filter, limit, cursor, with_payload, with_vectors
            ),
        )

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
        return self._retry(
            "scroll_by_value",
            lambda: self.inner.scroll_by_value(
                collection, order, start_from, limit, filter, with_payload, with_vectors
            ),
        )

    def optimize(self, collection: str) -> bool:
        return self._retry("optimize", lambda: self.inner.optimize(collection))

    def close(self) -> None:
        self.inner.close()
