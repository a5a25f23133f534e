"""The synchronous vector-store protocol that every backend implements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, Self, runtime_checkable

from .ordered_scroll import OrderValue, ScrollOrder
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


@runtime_checkable
class VectorStore(Protocol):
    """A vector store addressed by collection name and external string ids.

    Implementations are safe to call from several threads at once. Every method raises
    only ``embedserve.connectors.errors.StoreError`` subclasses.
    """

    def create_collection(self, spec: CollectionSpec) -> None: ...

    def list_collections(self) -> list[str]:
        """Collection names, sorted."""
        ...

    def get_collection(self, name: str) -> CollectionInfo: ...

    def delete_collection(self, name: str) -> None: ...

    def update_collection(self, name: str, update: CollectionUpdate) -> None:
        """Add or drop payload indexes (built over the points already stored) and set the
        default search beam; nothing is embedded again."""
        ...

    def update_aliases(self, assign: Mapping[str, str], remove: Sequence[str] = ()) -> None:
        """Point each alias in ``assign`` at its collection (a new alias, or one that moves)
        and delete the aliases in ``remove``; every change is checked before any is made.
        Every method that takes a collection name also takes an alias of it, except
        ``delete_collection`` (NameIsAlias)."""
        ...

    def list_aliases(self) -> dict[str, str]:
        """Alias -> collection, sorted by alias."""
        ...

    def upsert(self, collection: str, points: Sequence[PointRecord]) -> None:
        """Insert or overwrite points; returns once the write is durable."""
        ...

    def update_payload(
        self,
        collection: str,
        ids: Sequence[str] | None = None,
        filter: Filter | None = None,
        *,
        values: Mapping[str, Any] | None = None,
        delete_keys: Sequence[str] = (),
    ) -> None:
        """Set top-level payload keys to ``values`` and remove ``delete_keys``, vectors
        untouched, on the points named by ``ids`` (all must exist: PointNotFound names the
        missing, and nothing changes) or matching ``filter`` (with ids: both)."""
        ...

    def facet(
        self, collection: str, key: str, filter: Filter | None = None, limit: int = 10
    ) -> list[FacetHit]:
        """How many points (matching ``filter``) hold each value of the payload field
        ``key``, most frequent first; the field needs a keyword, integer or bool index."""
        ...

    def search(
        self,
        collection: str,
        vector: VectorLike | None,
        filter: Filter | None = None,
        params: SearchParams | None = None,
        *,
        keywords: SparseTerms | None = None,
    ) -> list[ScoredPoint]:
        """Nearest points to ``vector``, best BM25 matches of ``keywords`` (collections
        created with ``bm25``), or both lists fused by reciprocal rank."""
        ...

    def recommend(
        self,
        collection: str,
        positive: Sequence[Example],
        negative: Sequence[Example] = (),
        strategy: RecommendStrategy = RecommendStrategy.AVERAGE_VECTOR,
        filter: Filter | None = None,
        params: SearchParams | None = None,
    ) -> list[ScoredPoint]:
        """Points like ``positive`` and unlike ``negative``.

        Examples are external ids or raw vectors; points given by id are never returned.
        """
        ...

    def retrieve(
        self, collection: str, ids: Sequence[str], with_vectors: bool = False
    ) -> list[Record]:
        """The stored points among ``ids``, in the order asked; missing ids are skipped."""
        ...

    def delete(
        self, collection: str, ids: Sequence[str] | None = None, filter: Filter | None = None
    ) -> None:
        """Delete points by id, by filter, or the ids that also match the filter."""
        ...

    def count(self, collection: str, filter: Filter | None = None, exact: bool = True) -> int: ...

    def scroll(
        self,
        collection: str,
        filter: Filter | None = None,
        limit: int = 256,
        cursor: str | None = None,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> ScrollPage:
        """One page of points in the engine's id order, starting at ``cursor``."""
        ...

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
        """Up to ``limit`` points in the order of ``order.key``'s values, from
        ``start_from`` on (included), each with the value that placed it: a point comes
        once per value it holds. Points sharing a value come in no promised order
        (``ordered_page`` makes pages of this). Needs an integer, float or datetime index
        on the key.
        """
        ...

    def optimize(self, collection: str) -> bool:
        """Build pending indexes now; True if anything was done."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None:
        """Closes the store."""
        ...


class ContextManagerMixin:
    """``with open_store(...) as store:`` closes the store on exit."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
