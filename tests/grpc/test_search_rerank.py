"""Search with a rerank stage: the first stage's best hits, read by the reranker with the
query text and reordered by its scores, over gRPC, HTTP and the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from running_server import free_port
from server_records import sample

from embedserve.client import EmbedClient

TEXTS = {
    "r1": "The rocket reached orbit after a long climb.",
    "r2": "A probe landed on Mars and sent pictures back.",
    "r3": "Astronauts trained for the mission to the moon.",
    "f1": "Bake the bread for forty minutes in a hot oven.",
    "f2": "Whisk the eggs with sugar until pale.",
    "s1": "The striker scored a late penalty.",
    "s2": "The goalkeeper saved two shots in the final.",
    "m1": "Interest rates rose again this quarter.",
}
QUERY = "space missions to other planets"


@pytest.fixture
def served(start_server: Any, minilm_model: Any, tiny_reranker_path: Path) -> Any:
    running = start_server(
        loaded=minilm_model, reranker=str(tiny_reranker_path), http_port=free_port()
    )
    with EmbedClient(running.target) as client:
        client.create_collection("news", payload_indexes={"topic": "keyword"})
        documents = [
            {"id": i, "text": t, "payload": {"topic": i[0], "body": t}} for i, t in TEXTS.items()
        ]
        client.upsert("news", documents, store_text=True)
        client.create_collection("bare")
        client.upsert("bare", [{"id": i, "text": t} for i, t in TEXTS.items()])
    return running


def expected(client: EmbedClient, candidates: int, **first: Any) -> list[tuple[str, float]]:
    """The first stage's best ``candidates`` hits, ranked by the Rerank RPC."""
    hits = client.search("news", QUERY, limit=candidates, **first)
    ranked = client.rerank(QUERY, [h.payload["text"] for h in hits])
    return [(hits[r.index].id, r.score) for r in ranked]


def pairs(hits: Any) -> list[tuple[str, float]]:
    return [(h.id, h.score) for h in hits]


def test_hits_are_the_first_stages_best_in_the_rerankers_order(served: Any) -> None:
    with EmbedClient(served.target) as client:
        every = expected(client, len(TEXTS))
        assert pairs(client.search("news", QUERY, limit=3, rerank=True)) == every[:3]
        assert pairs(client.search("news", QUERY, limit=3, offset=2, rerank=True)) == every[2:5]
        few = expected(client, 4)
        assert few != every[:4]  # only the first stage's best 4 were read
        assert pairs(client.search("news", QUERY, limit=2, rerank={"candidates": 4})) == few[:2]
        space = {"must": [{"match": {"key": "topic", "text": "r"}}]}
        filtered = client.search("news", QUERY, filter=space, rerank=True)
        assert pairs(filtered) == expected(client, 3, filter=space)
        keyword_less = client.search("news", QUERY, limit=2, rerank={"text_key": "body"})
        assert pairs(keyword_less) == every[:2]


def test_pages_past_the_first_window_fit_together(served: Any) -> None:
    """The reranker reorders the first stage's hits three at a time; pages of two, cut
    across those windows, show every document once, in the windows' order."""
    with EmbedClient(served.target) as client:
        first_stage = [h.id for h in client.search("news", QUERY, limit=len(TEXTS))]
        windows = [first_stage[start : start + 3] for start in range(0, len(TEXTS), 3)]
        want = []
        for window in windows:
            ranked = client.rerank(QUERY, [TEXTS[i] for i in window])
            want += [window[r.index] for r in ranked]
        pages = [
            client.search("news", QUERY, limit=2, offset=offset, rerank={"candidates": 3})
            for offset in range(0, len(TEXTS), 2)
        ]
    assert [h.id for page in pages for h in page] == want
    assert sorted(want) == sorted(TEXTS)


def test_equal_reranker_scores_are_ordered_by_id(served: Any) -> None:
    twins = ["t7", "t2", "t9", "t1", "t5"]
    with EmbedClient(served.target) as client:
        client.create_collection("twins")
        client.upsert("twins", [{"id": i, "text": "the same text"} for i in twins], store_text=True)
        hits = client.search("twins", QUERY, rerank=True)
    assert len({h.score for h in hits}) == 1
    assert [h.id for h in hits] == sorted(twins)


def test_equal_documents_are_read_once_and_tie_in_request_order(served: Any) -> None:
    """A pair's score shifts in its last digits with the batch it lands in: equal texts
    read in different batches could part, out of request order, and pages of a
    reranked search over equal texts overlapped under load."""
    pairs_read = "embedserve_rerank_batch_size_sum"
    documents = ["the same text", TEXTS["f1"], "the same text", TEXTS["r1"], "the same text"]
    before = sample(served, pairs_read)
    with EmbedClient(served.target) as client:
        ranked = client.rerank(QUERY, documents)
    assert sample(served, pairs_read) - before == 3  # distinct texts
    twins = [r for r in ranked if documents[r.index] == "the same text"]
    assert [r.index for r in twins] == [0, 2, 4]
    assert len({r.score for r in twins}) == 1


def test_the_stored_texts_a_search_reranks_are_no_request_items(
    start_server: Any, minilm_model: Any, tiny_reranker_path: Path
) -> None:
    """The request's limits (inputs per request, characters per input) are for what a
    caller sends; a reranked search of one query read 50 hits and was refused."""
    running = start_server(
        loaded=minilm_model,
        reranker=str(tiny_reranker_path),
        max_inputs_per_request=3,
        max_input_chars=60,
    )
    long_text = "A rocket climbed to orbit. " * 4  # past 60 characters
    with EmbedClient(running.target) as client:
        client.create_collection("few")
        for start in range(0, 8, 2):
            batch = [
                {"id": f"d{n}", "text": f"a rocket, number {n}"} for n in range(start, start + 2)
            ]
            client.upsert("few", batch)
            client.update_payload("few", [d["id"] for d in batch], payload={"body": long_text})
        hits = client.search("few", "rocket", limit=2, rerank={"text_key": "body"})
        assert len(hits) == 2
        with pytest.raises(grpc.RpcError) as refused:
            client.search("few", "rocket", limit=1001, rerank=True)
        assert "at most 1000 candidates" in (refused.value.details() or "")


def test_payloads_as_asked_and_usage(served: Any, tiny_reranker_path: Path) -> None:
    from embedserve.v1 import vector_pb2 as vpb
    from embedserve.v1 import vector_pb2_grpc as vpb_grpc

    with EmbedClient(served.target) as client:
        bare = client.search("news", QUERY, limit=2, rerank=True, with_payload=False)
        assert [h.payload for h in bare] == [{}, {}]
        topics = client.search("news", QUERY, limit=2, rerank=True, payload_keys=["topic"])
        assert all(set(h.payload) == {"topic"} for h in topics)
    with grpc.insecure_channel(served.target) as channel:
        stub = vpb_grpc.VectorServiceStub(channel)
        plain = stub.Search(vpb.SearchRequest(collection="news", text=QUERY))
        reranked = stub.Search(
            vpb.SearchRequest(collection="news", text=QUERY, rerank=vpb.SearchRerank())
        )
    # The query's tokens, then those of the 8 pairs the reranker read as well.
    assert reranked.usage.total_tokens > plain.usage.total_tokens + 8 * 10
    assert reranked.timings.inference_ms > 0


def test_a_document_without_text_is_named(served: Any) -> None:
    with EmbedClient(served.target) as client:
        with pytest.raises(grpc.RpcError) as missing:
            client.search("bare", QUERY, rerank=True)
        assert missing.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "has no text at payload key 'text'" in (missing.value.details() or "")
        assert "store_text" in (missing.value.details() or "")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"vector": [0.1] * 384}, "rerank needs a text query"),
        ({"diversity": 0.5}, "takes no diversity"),
        ({"recency": {"key": "at", "half_life_hours": 1}}, "takes no recency"),
        ({"rerank": {"candidates": 3}, "limit": 4}, "at least the limit (4)"),
        ({"rerank": {"candidates": 1001}}, "between 1 and 1000"),
        ({"rerank": {"text_key": "a b"}}, "not a payload key"),
    ],
)
def test_refused_before_any_work(served: Any, options: dict[str, Any], message: str) -> None:
    options = {"rerank": True, **options}
    text = None if "vector" in options else QUERY
    with EmbedClient(served.target) as client, pytest.raises(grpc.RpcError) as refused:
        client.search("news", text, **options)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert message in (refused.value.details() or "")


def test_grouped_search_groups_in_the_rerankers_order(served: Any) -> None:
    with EmbedClient(served.target) as client:
        order = [i for i, _ in expected(client, len(TEXTS))]
        scores = dict(expected(client, len(TEXTS)))
        groups = client.search_groups(
            "news", QUERY, group_by="topic", group_size=2, limit=2, rerank=True
        )
        bare = client.search_groups(
            "news", QUERY, group_by="topic", limit=1, rerank=True, with_payload=False
        )
        keyed = client.search_groups(
            "news", QUERY, group_by="topic", limit=1, rerank=True, payload_keys=["topic"]
        )
        plain = client.search_groups("news", QUERY, group_by="topic", group_size=2, limit=2)
    topics = list(dict.fromkeys(i[0] for i in order))[:2]
    want = [(t, [i for i in order if i[0] == t][:2]) for t in topics]
    assert [(g.key, [h.id for h in g.hits]) for g in groups] == want
    assert all(h.score == pytest.approx(scores[h.id], abs=1e-6) for g in groups for h in g.hits)
    # Payloads as asked: the text read for the reranker is left out where none was asked.
    assert all(set(h.payload) == {"topic", "body", "text"} for g in groups for h in g.hits)
    assert [h.payload for g in bare for h in g.hits] == [{}] * len(bare[0].hits)
    assert all(set(h.payload) == {"topic"} for g in keyed for h in g.hits)
    assert [(g.key, [h.id for h in g.hits]) for g in plain] != want  # the order is the reranker's


def test_without_a_reranker(minilm_server: Any) -> None:
    with EmbedClient(minilm_server.target) as client:
        client.create_collection("news")
        client.upsert("news", [{"id": "a", "text": "a text"}], store_text=True)
        with pytest.raises(grpc.RpcError) as refused:
            client.search("news", "text", rerank=True)
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "--reranker" in (refused.value.details() or "")


def test_http_batches_and_command_line(served: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from embedserve.client.cli import main as cli_main

    with EmbedClient(served.target) as client:
        best = expected(client, len(TEXTS))[:3]
        batch = client.search_batch("news", [QUERY, QUERY], limit=3, rerank=True)
    assert [pairs(hits) for hits in batch] == [best, best]
    url = f"http://127.0.0.1:{served.server.http.port}"
    body = {"text": QUERY, "params": {"limit": 3}, "rerank": {"candidates": 8}}
    reply = httpx.post(f"{url}/api/v1/collections/news/search", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    got = [(r["id"], r["score"]) for r in reply.json()["results"]]
    assert [i for i, _ in got] == [i for i, _ in best]
    assert [s for _, s in got] == pytest.approx([s for _, s in best], abs=1e-6)
    assert (
        cli_main(["search", "news", QUERY, "--limit", "3", "--rerank", "--target", served.target])
        == 0
    )
    printed = [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()]
    assert printed == [i for i, _ in best]
