"""A payload update racing other writes on a Qdrant server (and local mode): it sets and
removes keys at once, and a point deleted under it is named, not taken for an outage.

The other write is forced in where it hurt: a wrapper around the store's qdrant client
runs it right after the update's first call of the kind named.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from connectors_testdata import StoreFactory

from embedserve.connectors import CollectionSpec, PointNotFound, PointRecord, RemoteStore

DIM = 4
VECTOR = [0.5, 0.5, 0.5, 0.5]
PAYLOAD_WRITES = (
    "set_payload",
    "delete_payload",
    "overwrite_payload",
    "clear_payload",
    "batch_update_points",
)


class Meddling:
    """The store's client, running ``then`` once, right after the first call of ``after``."""

    def __init__(self, client: Any, after: tuple[str, ...], then: Callable[[], None]) -> None:
        self._client, self._after, self._then = client, after, then
        self.ran = False

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._client, name)
        if name not in self._after:
            return found

        def call(*args: Any, **kwargs: Any) -> Any:
            result = found(*args, **kwargs)
            if not self.ran:
                self.ran = True
                self._then()
            return result

        return call


def opened(make_store: StoreFactory, kind: str) -> RemoteStore:
    store = make_store(kind)
    assert isinstance(store, RemoteStore)
    store.create_collection(CollectionSpec("race", vector_size=DIM))
    store.upsert("race", [PointRecord(f"y{i}", VECTOR, {"old": 1, "v": -1}) for i in range(3)])
    return store


@pytest.mark.parametrize("kind", ["qdrant-local", "qdrant-server"])
def test_an_upsert_lands_before_or_after_the_whole_update(
    make_store: StoreFactory, kind: str
) -> None:
    """Set "s" and remove "old"; an upsert writing {old, v} lands right after the update's
    first write. As two writes, the upsert came between them and left {v} alone, which
    neither order of the two calls gives."""
    store = opened(make_store, kind)
    real = store._client

    def upsert() -> None:
        store._client = real  # the upsert itself is not meddled with
        store.upsert("race", [PointRecord("y0", VECTOR, {"old": 1, "v": 7})])
        store._client = meddling

    meddling = Meddling(real, PAYLOAD_WRITES, upsert)
    store._client = meddling
    store.update_payload("race", ["y0", "y1"], values={"s": 7}, delete_keys=["old"])
    store._client = real
    assert meddling.ran
    payloads = {r.id: r.payload for r in store.retrieve("race", ["y0", "y1"])}
    assert payloads["y0"] == {"old": 1, "v": 7}  # the whole update, then the upsert
    assert payloads["y1"] == {"v": -1, "s": 7}


def test_a_point_deleted_during_an_update_by_ids_is_not_found(make_store: StoreFactory) -> None:
    """The ids are checked, then "y2" is deleted, then the update is sent: the server
    fails it on "y2" (having updated the others), which is NOT_FOUND naming "y2", not an
    error a client would retry as an outage."""
    store = opened(make_store, "qdrant-server")
    real = store._client
    meddling = Meddling(real, ("retrieve",), lambda: store.delete("race", ["y2"]))
    store._client = meddling
    with pytest.raises(PointNotFound) as missing:
        store.update_payload("race", ["y0", "y1", "y2"], values={"s": 1})
    store._client = real
    assert meddling.ran
    assert missing.value.ids == ("y2",)
    assert missing.value.collection == "race"
