"""Documents stored as passages, end to end with MiniLM over gRPC and HTTP: what each
passage holds, that its vector is its text's, that a rewrite replaces every point of a
document, and that grouped search answers once per document."""

from __future__ import annotations

import itertools
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from embedserve.client import EmbedClient

SENTENCES = [
    "The harbour freezes over in the coldest weeks of January.",
    "Fishing boats stay in port until the ice breaks up in spring.",
    "Tourists come in summer for the long evenings and the islands.",
    "The old lighthouse was turned into a small museum of shipwrecks.",
    "Ferries cross to the islands every hour from May to September.",
]
TAIL = "A recipe for cinnamon buns closes the guide, baked with cardamom."


def long_text(sentences: int) -> str:
    """Far past MiniLM's 256 tokens, with a subject only its last sentence speaks of."""
    return " ".join(SENTENCES[i % len(SENTENCES)] for i in range(sentences)) + " " + TAIL


@pytest.fixture
def client(both: Any) -> Any:
    with EmbedClient(both.target) as client:
        client.create_collection("guides")
        yield client


def stored(client: Any, doc: str) -> dict[str, Any]:
    """The passages of ``doc`` by their number, through Count and Get."""
    count = client.count("guides", filter={"must": [{"match": {"key": "doc_id", "text": doc}}]})
    found = client.get("guides", [f"{doc}#{n}" for n in range(count + 5)], with_vectors=True)
    return {d.payload["passage"]: d for d in found}


def test_each_passage_holds_its_span_its_payload_and_its_own_vector(client: Any) -> None:
    text = long_text(60)
    split = {"max_tokens": 64, "overlap_tokens": 8}
    written = client.upsert(
        "guides",
        [{"id": "north", "text": text, "payload": {"region": "north"}}],
        store_text=True,
        split=split,
    )
    passages = stored(client, "north")
    assert written == len(passages) > 10
    assert sorted(passages) == list(range(len(passages)))
    spans = [passages[n].payload["span"] for n in range(len(passages))]
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    for (start, end), (next_start, _) in itertools.pairwise(spans):
        assert start < next_start < end  # they overlap, and move on
    texts = [text[start:end] for start, end in spans]
    for n, passage in passages.items():
        assert passage.payload == {
            "region": "north",
            "doc_id": "north",
            "passage": n,
            "passages": len(passages),
            "span": spans[n],
            "text": texts[n],
        }
    counts = [len(t.ids) - 2 for t in client.tokenize(texts, task="none").results]
    assert max(counts) <= 64 and min(counts[:-1]) > 32
    expected = client.embed(texts, task="document")
    got = np.stack([passages[n].vector for n in range(len(passages))])
    assert np.min(np.sum(expected * got, axis=1)) > 0.9999
    # The last sentence is found, which one vector of the first 256 tokens would not hold.
    hits = client.search("guides", "how to bake cinnamon buns", limit=1)
    assert hits[0].id == f"north#{len(passages) - 1}"


def test_a_rewrite_replaces_every_point_of_the_document(client: Any) -> None:
    client.upsert("guides", [{"id": "south", "text": long_text(3)}])  # unsplit first
    assert [d.id for d in client.get("guides", ["south"])] == ["south"]
    split = {"max_tokens": 48, "overlap_tokens": 4}
    client.upsert("guides", [{"id": "south", "text": long_text(40)}], split=split)
    longer = stored(client, "south")
    assert client.get("guides", ["south"]) == []  # the unsplit point went
    client.upsert("guides", [{"id": "south", "text": long_text(12)}], split=split)
    shorter = stored(client, "south")
    assert 1 < len(shorter) < len(longer)
    assert all(d.payload["passages"] == len(shorter) for d in shorter.values())
    assert client.count("guides") == len(shorter)
    # In one ingestion stream, a document sent twice ends as its last version.
    batches = [
        [{"id": "east", "text": long_text(40)}],
        [{"id": "east", "text": long_text(8)}, {"id": "west", "text": long_text(8)}],
    ]
    acks = list(
        client.ingest_iter("guides", [d for b in batches for d in b], batch_size=1, split=split)
    )
    assert [list(a.ids) for a in acks] == [["east"], ["east"], ["west"]]
    east = stored(client, "east")
    assert len(east) == len(stored(client, "west"))
    assert all(d.payload["passages"] == len(east) for d in east.values())
    # Twice in one batch too: the earlier version is left out, none of its passages stay.
    twice = [{"id": "north", "text": long_text(40)}, {"id": "north", "text": long_text(8)}]
    for write in (
        lambda: client.upsert("guides", twice, split=split),
        lambda: list(client.ingest_iter("guides", twice, batch_size=2, split=split)),
    ):
        client.delete("guides", filter={"must": [{"match": {"key": "doc_id", "text": "north"}}]})
        write()
        north = stored(client, "north")
        assert len(north) == len(stored(client, "west"))
        assert all(d.payload["passages"] == len(north) for d in north.values())


def test_grouped_search_answers_once_per_document(both: Any, client: Any) -> None:
    documents = [
        {"id": "harbour", "text": long_text(30)},
        {"id": "bakery", "text": "Cinnamon buns and cardamom bread, baked each morning. " * 30},
    ]
    split = {"max_tokens": 64}
    client.upsert("guides", documents, split=split)
    groups = client.search_groups("guides", "islands and ferries", group_by="doc_id", limit=2)
    assert [g.key for g in groups] == ["harbour", "bakery"]
    assert len(groups[0].hits) == 3 and all(
        h.payload["doc_id"] == "harbour" for h in groups[0].hits
    )
    body = {
        "documents": [{"id": "shop", "text": "Fresh bread daily. " * 200}],
        "options": {"split": {"max_tokens": 100, "overlap_tokens": 0}, "store_text": True},
    }
    with httpx.Client(base_url=both.url, timeout=60) as http:
        reply = http.post("/api/v1/collections/guides/upsert", json=body)
        assert reply.status_code == 200, reply.text
        shop = stored(client, "shop")
        assert reply.json()["upserted"] == len(shop) > 5
        # Without overlap, the passages' texts put together give the text's words back.
        joined = " ".join(
            body["documents"][0]["text"][slice(*shop[n].payload["span"])] for n in range(len(shop))
        )
        assert joined.split() == body["documents"][0]["text"].split()
        refused = http.post(
            "/api/v1/collections/guides/upsert",
            json={**body, "options": {"split": {"max_tokens": 255}}},
        )
        assert refused.status_code == 400
        assert "options.split.max_tokens must be from 1 to 254" in refused.text


@pytest.mark.parametrize(
    ("documents", "split", "message"),
    [
        (
            [{"id": "a", "text": "x", "payload": {"doc_id": "b"}}],
            True,
            "documents[0].payload has 'doc_id'",
        ),
        ([{"id": "a", "text": "x"}], {"max_tokens": 300}, "from 1 to 254"),
        ([{"id": "a", "text": "x"}], {"max_tokens": 20, "overlap_tokens": 11}, "half of"),
        ([{"id": "a", "text": "x"}], {"size": 20}, None),
    ],
)
def test_misuse_is_refused(client: Any, documents: Any, split: Any, message: str | None) -> None:
    if message is None:
        with pytest.raises(ValueError, match="max_tokens and overlap_tokens"):
            client.upsert("guides", documents, split=split)
        return
    with pytest.raises(grpc.RpcError) as refused:
        client.upsert("guides", documents, split=split)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in refused.value.details()
    assert client.count("guides") == 0


def test_passages_past_the_request_limit_embed_in_slices(
    start_server: Any, minilm_model: Any
) -> None:
    """The limits hold for the documents; their passages may be more."""
    server = start_server(loaded=minilm_model, max_inputs_per_request=4, max_input_chars=3000)
    text = long_text(12)[:2900]
    split = {"max_tokens": 24, "overlap_tokens": 0}
    with EmbedClient(server.target) as client:
        client.create_collection("small")
        written = client.upsert("small", [{"id": "d", "text": text}], split=split)
        assert written > 4  # slices of at most four passages
        passages = client.get("small", [f"d#{n}" for n in range(written)], with_vectors=True)
        assert [d.payload["passage"] for d in passages] == list(range(written))
        last = [text[slice(*d.payload["span"])] for d in passages[-4:]]
        expected = client.embed(last, task="document")
        got = np.stack([d.vector for d in passages[-4:]])
        assert np.min(np.sum(expected * got, axis=1)) > 0.9999
        for documents, message in [
            ([{"id": f"d{n}", "text": "x"} for n in range(5)], "documents has 5 items"),
            ([{"id": "long", "text": "y " * 1600}], "documents[0].text has 3200 characters"),
        ]:
            with pytest.raises(grpc.RpcError) as refused:
                client.upsert("small", documents, split=split)
            assert message in refused.value.details()


def test_passages_carrying_more_payload_than_a_request_may_are_refused(
    start_server: Any, minilm_model: Any
) -> None:
    """Each passage carries its document's payload: one document of tiny passages and a
    large payload wrote hundreds of copies of it (a 110 kB request, 600 MB on disk)."""
    server = start_server(loaded=minilm_model, max_message_bytes=20_000)
    payload = {"blob": "z" * 990}  # 1,002 bytes as JSON
    document = {"id": "d", "text": "word " * 200, "payload": payload}
    with EmbedClient(server.target) as client:
        client.create_collection("copies")
        written = client.upsert("copies", [document], split={"max_tokens": 64})
        assert written * 1002 <= 20_000  # a few passages: taken
        with pytest.raises(grpc.RpcError) as refused:
            client.upsert("copies", [document], split={"max_tokens": 4, "overlap_tokens": 0})
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (refused.value.details() or "").startswith(
            "documents[0]: its 50 passages would each carry its payload of 1002 bytes, and "
            "the request's passages more than one request may carry (20000, max_message_bytes)"
        )
        assert client.count("copies") == written
