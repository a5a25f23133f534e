"""Points written into a Qdrant collection by another tool (integer or UUID point ids, no
embedserve id in their payload) are named ``qdrant:<point id>``, and that name addresses
them in every call that takes ids."""

from __future__ import annotations

import uuid

import pytest
from qdrant_client import models as qm

from embedserve.connectors import (
    RESERVED_KEY,
    CollectionSpec,
    Filter,
    HasId,
    InvalidRequest,
    PointNotFound,
    PointRecord,
    RemoteStore,
    VectorStore,
)

DIM = 4
FOREIGN_UUID = str(uuid.UUID(int=0xABCDEF12))


@pytest.fixture(params=["qdrant-local", "qdrant-server"])
def written_elsewhere(request: pytest.FixtureRequest, make_store) -> RemoteStore:
    """A collection holding an embedserve document and three points another tool wrote."""
    store: RemoteStore = make_store(request.param)
    store.create_collection(CollectionSpec("shared", vector_size=DIM))
    store.upsert("shared", [PointRecord("ours", [0.0, 0.0, 1.0, 0.0], {"kind": "ours"})])
    store._client.upsert(  # as another tool writes: its own ids, no embedserve id
        "shared",
        [
            qm.PointStruct(id=5, vector=[1.0, 0.0, 0.0, 0.0], payload={"kind": "five"}),
            qm.PointStruct(id=FOREIGN_UUID, vector=[0.0, 1.0, 0.0, 0.0], payload={"kind": "u"}),
            qm.PointStruct(
                id=6, vector=[0.9, 0.1, 0.0, 0.0], payload={"kind": "six", RESERVED_KEY: 123}
            ),
        ],
        wait=True,
    )
    return store


def test_reads_name_them_and_the_names_address_them(written_elsewhere: RemoteStore) -> None:
    store = written_elsewhere
    page = store.scroll("shared", limit=10)
    named = {r.id: r.payload for r in page.records}
    assert named == {
        "ours": {"kind": "ours"},
        "qdrant:5": {"kind": "five"},
        f"qdrant:{FOREIGN_UUID}": {"kind": "u"},
        "qdrant:6": {"kind": "six", RESERVED_KEY: 123},  # not an embedserve id: theirs
    }
    hits = store.search("shared", [1.0, 0.0, 0.0, 0.0])
    assert [h.id for h in hits[:2]] == ["qdrant:5", "qdrant:6"]

    got = store.retrieve("shared", ["qdrant:6", f"qdrant:{FOREIGN_UUID}", "ours"])
    assert [r.id for r in got] == ["qdrant:6", f"qdrant:{FOREIGN_UUID}", "ours"]
    by_id = Filter(must=(HasId(("qdrant:5", "ours")),))
    assert store.count("shared", by_id) == 2
    liked = store.recommend("shared", ["qdrant:5"])
    assert liked[0].id == "qdrant:6" and "qdrant:5" not in [h.id for h in liked]
    with pytest.raises(PointNotFound) as missing:
        store.recommend("shared", ["qdrant:77"])
    assert list(missing.value.ids) == ["qdrant:77"]

    store.update_payload("shared", ["qdrant:5"], values={"seen": True})
    assert store.retrieve("shared", ["qdrant:5"])[0].payload == {"kind": "five", "seen": True}
    store.delete("shared", ["qdrant:5", f"qdrant:{FOREIGN_UUID}"])
    assert sorted(r.id for r in store.scroll("shared", limit=10).records) == ["ours", "qdrant:6"]


def test_pages_of_one_visit_every_point_whatever_its_id(written_elsewhere: RemoteStore) -> None:
    """The engine's next page may start at an integer point id: that cursor is taken back."""
    store = written_elsewhere
    seen: list[str] = []
    cursor = None
    while True:
        page = store.scroll("shared", limit=1, cursor=cursor)
        seen += [r.id for r in page.records]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(["ours", "qdrant:5", "qdrant:6", f"qdrant:{FOREIGN_UUID}"])
    for handed_out_by_no_page in ("05", "+5", "-5", str(2**64), "five"):
        with pytest.raises(InvalidRequest, match="not one this store handed out"):
            store.scroll("shared", cursor=handed_out_by_no_page)


def test_written_under_its_name_a_foreign_point_keeps_it(written_elsewhere: RemoteStore) -> None:
    """Written again through embedserve (re-embedded, say), a foreign point is overwritten
    in place, not copied under another point id."""
    store = written_elsewhere
    store.upsert("shared", [PointRecord("qdrant:6", [0.0, 0.0, 0.0, 1.0], {"kind": "new"})])
    assert store.count("shared") == 4
    assert store.retrieve("shared", ["qdrant:6"])[0].payload == {"kind": "new"}


@pytest.mark.parametrize(
    "name", ["qdrant:05", "qdrant:-1", f"qdrant:{2**64}", "qdrant:x", "qdrant:", "qdrant:1.0"]
)
def test_a_name_that_is_no_point_id_as_reads_show_it_is_refused(
    store: VectorStore, name: str
) -> None:
    store.create_collection(CollectionSpec("c", vector_size=DIM))
    with pytest.raises(InvalidRequest, match="names a Qdrant point id"):
        store.upsert("c", [PointRecord(name, [1.0, 0.0, 0.0, 0.0], {})])
    with pytest.raises(InvalidRequest, match="names a Qdrant point id"):
        store.retrieve("c", [name])
    upper = f"qdrant:{FOREIGN_UUID.upper()}"
    with pytest.raises(InvalidRequest, match="lowercase hyphenated UUID"):
        store.delete("c", [upper])


def test_every_engine_stores_and_finds_a_point_by_its_qdrant_name(store: VectorStore) -> None:
    store.create_collection(CollectionSpec("c", vector_size=DIM))
    names = ["qdrant:7", f"qdrant:{FOREIGN_UUID}", "7"]
    store.upsert("c", [PointRecord(n, [1.0, float(i), 0.0, 0.0], {}) for i, n in enumerate(names)])
    assert store.count("c") == 3  # "7" is a caller's id: a point of its own
    assert [r.id for r in store.retrieve("c", names)] == names
    store.delete("c", ["qdrant:7"])
    assert [r.id for r in store.retrieve("c", names)] == names[1:]
