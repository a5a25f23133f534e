"""Collection aliases end to end with MiniLM: every call through an alias, over gRPC and
HTTP; the status of each refusal; a swap seen by another server on the same Qdrant."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import httpx
import pytest

from embedserve.client import EmbedClient

OLD = [
    {"id": "o1", "text": "the rocket reached orbit"},
    {"id": "o2", "text": "bake the bread for forty minutes"},
]
NEW = [
    {"id": "n1", "text": "a spacecraft docked with the station"},
    {"id": "n2", "text": "knead the dough and let it rise"},
    {"id": "n3", "text": "the striker scored in extra time"},
]


@pytest.fixture
def client(both: Any) -> Any:
    with EmbedClient(both.target) as client:
        client.create_collection("news_v1")
        client.upsert("news_v1", OLD)
        client.create_collection("news_v2", dimensions=128)  # a Matryoshka size of its own
        client.upsert("news_v2", NEW)
        yield client


def test_search_writes_and_reads_follow_the_alias_as_it_moves(client: Any) -> None:
    client.update_aliases(set={"news": "news_v1"})
    assert [h.id for h in client.search("news", "space travel", limit=1)] == ["o1"]
    client.update_aliases(set={"news": "news_v2"})
    assert [h.id for h in client.search("news", "space travel", limit=1)] == ["n1"]
    # Written through the alias at the size of the collection it names now.
    client.upsert("news", [{"id": "n4", "text": "the comet passed close to the sun"}])
    assert client.count("news_v2") == 4 and client.count("news_v1") == 2
    assert [d.id for d in client.get("news", ["n4", "o1"])] == ["n4"]
    liked = client.recommend("news", positive=["n1"], limit=1)
    assert [h.id for h in liked] == ["n4"]

    info = client.get_collection("news")
    assert (info.name, list(info.aliases), info.config.dimensions) == ("news_v2", ["news"], 128)
    assert client.list_aliases() == {"news": "news_v2"}
    assert client.list_aliases("news_v1") == {}
    client.update_aliases(set={"latest": "news_v2", "old": "news_v1"}, delete=["news"])
    assert client.list_aliases() == {"latest": "news_v2", "old": "news_v1"}
    assert client.list_aliases("latest") == {"latest": "news_v2"}  # by an alias, too


def test_calls_in_flight_while_the_alias_moves_use_the_size_it_names_at_the_store(
    both: Any, client: Any
) -> None:
    """Searches and writes through an alias moved back and forth between a 384-d and a
    128-d collection: a call that embedded its text at the size the alias named when it
    started is run again at the new size, never refused for its vector's size."""
    client.update_aliases(set={"news": "news_v1"})
    stop = threading.Event()
    failures: list[str] = []
    calls = [0]

    def caller(number: int) -> None:
        with EmbedClient(both.target) as own:
            while not stop.is_set():
                try:
                    if number % 2:
                        own.search("news", "space travel", limit=1)
                    else:
                        own.upsert("news", [{"id": f"w{number}", "text": "a comet"}])
                    calls[0] += 1
                except grpc.RpcError as exc:
                    failures.append(f"{exc.code()}: {exc.details()}")

    callers = [threading.Thread(target=caller, args=(n,)) for n in range(4)]
    for thread in callers:
        thread.start()
    try:
        for move in range(12):  # far faster than any deployment moves one
            client.update_aliases(set={"news": "news_v2" if move % 2 == 0 else "news_v1"})
            time.sleep(0.25)
    finally:
        stop.set()
        for thread in callers:
            thread.join()
    assert failures == [] and calls[0] > 12


def test_each_refusal_has_its_status_and_changes_nothing(client: Any) -> None:
    client.update_aliases(set={"news": "news_v1"})
    refused = [
        (lambda: client.delete_collection("news"), grpc.StatusCode.FAILED_PRECONDITION),
        (lambda: client.create_collection("news"), grpc.StatusCode.ALREADY_EXISTS),
        (lambda: client.update_aliases(set={"news_v2": "news_v1"}), grpc.StatusCode.ALREADY_EXISTS),
        (lambda: client.update_aliases(set={"x": "missing"}), grpc.StatusCode.NOT_FOUND),
        (lambda: client.update_aliases(delete=["missing"]), grpc.StatusCode.NOT_FOUND),
        (lambda: client.update_aliases(set={"x": "news"}), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: client.update_aliases(set={"a b": "news_v1"}), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: client.update_aliases(), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: client.list_aliases("missing"), grpc.StatusCode.NOT_FOUND),
    ]
    for call, code in refused:
        with pytest.raises(grpc.RpcError) as error:
            call()
        assert error.value.code() == code, error.value.details()
    assert client.list_aliases() == {"news": "news_v1"}
    assert client.list_collections() == ["news_v1", "news_v2"]
    client.delete_collection("news_v1")  # its aliases go with it
    assert client.list_aliases() == {}


def test_http_routes_list_change_and_search_through_aliases(both: Any, client: Any) -> None:
    with httpx.Client(base_url=both.url) as http:
        assert http.post("/api/v1/aliases", json={"set": {"news": "news_v2"}}).json() == {}
        assert http.get("/api/v1/aliases").json() == {
            "aliases": [{"alias": "news", "collection": "news_v2"}]
        }
        found = http.post(
            "/api/v1/collections/news/search", json={"text": "bread", "params": {"limit": 1}}
        )
        assert [h["id"] for h in found.json()["results"]] == ["n2"]
        described = http.get("/api/v1/collections/news").json()["collection"]
        assert (described["name"], described["aliases"]) == ("news_v2", ["news"])
        missing = http.post("/api/v1/aliases", json={"delete": ["nope"]})
        assert missing.status_code == 404 and "nope" in missing.json()["error"]["message"]
        deleted = http.delete("/api/v1/collections/news")
        assert deleted.status_code == 400 and "news_v2" in deleted.json()["error"]["message"]
        assert http.post("/api/v1/aliases", json={"delete": ["news"]}).status_code == 200
        assert http.get("/api/v1/aliases?collection=news_v2").json() == {"aliases": []}


def test_a_swap_made_by_another_server_is_followed_at_the_new_size(
    start_server: Any, minilm_model: Any, qdrant_server: Any
) -> None:
    """Replica A caches what "news" is (384-d news_v1); replica B moves the alias to a
    128-d collection. A's next search and write through the alias use the new one."""
    first = start_server(loaded=minilm_model, **qdrant_server.settings())
    second = start_server(loaded=minilm_model, **qdrant_server.settings())
    with EmbedClient(first.target) as a, EmbedClient(second.target) as b:
        a.create_collection("news_v1")
        a.upsert("news_v1", OLD)
        a.update_aliases(set={"news": "news_v1"})
        assert [h.id for h in a.search("news", "space travel", limit=1)] == ["o1"]
        b.create_collection("news_v2", dimensions=128)
        b.upsert("news_v2", NEW)
        b.update_aliases(set={"news": "news_v2"})
        assert [h.id for h in a.search("news", "space travel", limit=1)] == ["n1"]
        a.upsert("news", [{"id": "n4", "text": "the comet passed close to the sun"}])
        assert b.count("news_v2") == 4
