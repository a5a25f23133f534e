"""Grouped search end to end with MiniLM, over gRPC and HTTP: the best passages of each
document, in every search mode and within a batch."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import pytest

from embedserve.client import EmbedClient, HitGroup

PASSAGES = {
    "moon": [
        "The rocket carried three astronauts to the Moon",
        "A lunar lander touched down near the crater",
        "Moon rocks came back to Earth for study",
    ],
    "bread": [
        "Knead the dough until it is smooth",
        "Sourdough needs a slow rise overnight",
    ],
    "trains": [
        "The night train to Vienna leaves at ten",
        "High speed rail links the two capitals",
        "A rocket engine is nothing like a train's",
    ],
}


@pytest.fixture
def client(both: Any) -> Any:
    with EmbedClient(both.target) as client:
        client.create_collection("passages", bm25=True)
        documents = [
            {"id": f"{doc}-{n}", "text": text, "payload": {"doc": doc, "part": n}}
            for doc, texts in PASSAGES.items()
            for n, text in enumerate(texts)
        ]
        client.upsert("passages", documents)
        yield client


def expected(hits: list[Any], limit: int, size: int) -> list[tuple[str, list[str]]]:
    """Groups formed from the plain ranking of every passage."""
    groups: dict[str, list[str]] = {}
    for hit in hits:
        doc = hit.id.rsplit("-", 1)[0]
        if doc in groups or len(groups) < limit:
            members = groups.setdefault(doc, [])
            if len(members) < size:
                members.append(hit.id)
    return list(groups.items())


def shape(groups: list[HitGroup]) -> list[tuple[Any, list[str]]]:
    return [(g.key, [h.id for h in g.hits]) for g in groups]


def json_shape(groups: list[dict[str, Any]]) -> list[tuple[Any, list[str]]]:
    return [(g["key"], [h["id"] for h in g["hits"]]) for g in groups]


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_groups_follow_the_ranking_in_every_mode(client: Any, mode: str) -> None:
    query = "rocket to the moon"
    everything = client.search("passages", query, mode=mode, limit=100, exact=True)
    groups = client.search_groups(
        "passages", query, group_by="doc", group_size=2, limit=2, mode=mode, exact=True
    )
    assert shape(groups) == expected(everything, 2, 2)
    assert groups[0].key == "moon"
    scores = {h.id: h.score for h in everything}
    assert all(h.score == pytest.approx(scores[h.id]) for g in groups for h in g.hits)
    assert all(h.payload["doc"] == g.key for g in groups for h in g.hits)


def test_http_matches_grpc_with_integer_keys_and_batches(both: Any, client: Any) -> None:
    by_part = client.search_groups("passages", "rocket", group_by="part", group_size=1, limit=3)
    assert [g.key for g in by_part] and all(isinstance(g.key, int) for g in by_part)
    body = {"text": "rocket", "params": {"limit": 3}, "group_by": {"key": "part", "size": 1}}
    with httpx.Client(base_url=both.url, timeout=60) as http:
        reply = http.post("/api/v1/collections/passages/search", json=body)
        assert reply.status_code == 200, reply.text
        answer = reply.json()
        assert answer["results"] == []
        assert json_shape(answer["groups"]) == shape(by_part)
        plain = {"text": "bread", "params": {"limit": 2}}
        batch = http.post(
            "/api/v1/collections/passages/search-batch", json={"searches": [body, plain]}
        )
        assert batch.status_code == 200, batch.text
        first, second = batch.json()["responses"]
        # The same groups; scores may differ in the last bits, embedded in another batch.
        assert json_shape(first["groups"]) == json_shape(answer["groups"])
        assert first["results"] == []
        assert second["groups"] == [] and len(second["results"]) == 2
        refused = http.post(
            "/api/v1/collections/passages/search",
            json={**body, "params": {"limit": 3, "offset": 1}},
        )
        assert refused.status_code == 400 and "takes no offset" in refused.text
        too_big = http.post(
            "/api/v1/collections/passages/search",
            json={**body, "group_by": {"key": "doc", "size": 101}},
        )
        assert too_big.status_code == 400


def test_misuse_is_refused_before_embedding(client: Any) -> None:
    for options, message in [
        ({"group_by": "doc", "offset": 1}, "takes no offset"),
        ({"group_by": "doc", "diversity": 0.5}, "takes no diversity"),
        ({"group_by": "doc", "group_size": 0}, "group_by.size must be from 1 to 100"),
        ({"group_by": ""}, "group_by.key must be a payload key"),
    ]:
        with pytest.raises(grpc.RpcError) as refused:
            client.search_groups("passages", "rocket", **options)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in refused.value.details()


def test_recommendations_in_groups(both: Any, client: Any) -> None:
    positive, negative = ["moon-0"], [{"text": "baking bread"}]
    everything = client.recommend("passages", positive, negative, limit=100, exact=True)
    groups = client.recommend_groups(
        "passages", positive, negative, group_by="doc", group_size=2, limit=2, exact=True
    )
    assert shape(groups) == expected(everything, 2, 2)
    assert "moon-0" not in {h.id for g in groups for h in g.hits}  # examples never return
    body = {
        "positive": [{"id": "moon-0"}],
        "params": {"limit": 3, "exact": True},
        "group_by": {"key": "doc", "size": 1},
    }
    with httpx.Client(base_url=both.url, timeout=60) as http:
        reply = http.post("/api/v1/collections/passages/recommend", json=body)
        assert reply.status_code == 200, reply.text
        alone = client.recommend("passages", ["moon-0"], limit=100, exact=True)
        assert json_shape(reply.json()["groups"]) == expected(alone, 3, 1)
        assert reply.json()["results"] == []
    with pytest.raises(grpc.RpcError) as refused:
        client.recommend_groups("passages", positive, group_by="doc", offset=2)
    assert "takes no offset" in refused.value.details()


def test_a_batch_of_grouped_searches_answers_as_each_alone(client: Any) -> None:
    queries = ["rocket to the moon", "baking bread"]
    batch = client.search_batch_groups(
        "passages", queries, group_by="doc", group_size=2, limit=2, exact=True
    )
    alone = [
        client.search_groups("passages", q, group_by="doc", group_size=2, limit=2, exact=True)
        for q in queries
    ]
    assert [shape(groups) for groups in batch] == [shape(groups) for groups in alone]
    assert [groups[0].key for groups in batch] == ["moon", "bread"]
    with pytest.raises(TypeError, match="a list of queries"):
        client.search_batch_groups("passages", "rocket", group_by="doc")
    with pytest.raises(grpc.RpcError) as error:
        client.search_batch_groups("passages", queries, group_by="doc", offset=1)
    assert "searches[0]" in error.value.details() and "takes no offset" in error.value.details()
