"""The asyncio client offers what the blocking one does, with the same answers."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterable
from typing import Any

import numpy as np

from embedserve.client import AsyncEmbedClient, EmbedClient

TEXTS = [f"sentence number {n} about {topic}" for n, topic in enumerate(["cats", "stars"] * 5)]
DOCS = [
    {"id": f"{topic}-{n}", "text": f"a note on {topic}, {n}", "payload": {"topic": topic}}
    for n, topic in enumerate(["rockets and orbits", "pasta and garlic"] * 4)
]


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in vars(cls).items()
        if callable(member) and not name.startswith("_")
    }


def shape(signature: inspect.Signature) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


def test_every_blocking_method_has_an_async_twin_with_the_same_signature() -> None:
    blocking = public_methods(EmbedClient)
    asynchronous = public_methods(AsyncEmbedClient)
    assert set(blocking) == set(asynchronous)
    # The same parameters; what comes back differs by design (awaitables, async iterators),
    # and the asyncio client's streams also take async iterables.
    assert [n for n in blocking if shape(blocking[n]) != shape(asynchronous[n])] == []
    for name in ("tokenize", "similarity", "search", "recommend", "ingest", "count"):
        assert inspect.iscoroutinefunction(getattr(AsyncEmbedClient, name)), name


async def aiter_of(values: Iterable[Any]) -> AsyncIterator[Any]:
    for value in values:
        await asyncio.sleep(0)
        yield value


def test_async_client_against_a_live_server(minilm_server) -> None:
    with EmbedClient(minilm_server.target) as client:
        expected = client.embed(TEXTS)
        tokens = client.tokenize("Hello world")
        scores = client.similarity("a cat", ["a kitten", "a truck"])

    async def scenario() -> dict[str, Any]:
        async with AsyncEmbedClient(minilm_server.target) as client:
            await client.wait_until_serving(timeout=30)
            out: dict[str, Any] = {"health": await client.health()}
            out["embed"] = await client.embed(TEXTS, batch_size=3, max_in_flight=2)
            out["stream"] = [
                v async for v in client.embed_iter(aiter_of(TEXTS), batch_size=3, max_in_flight=2)
            ]
            out["tokens"] = await client.tokenize("Hello world")
            out["scores"] = await client.similarity("a cat", ["a kitten", "a truck"])
            await client.create_collection("notes", payload_indexes={"topic": "keyword"})
            out["acks"] = [ack async for ack in client.ingest_iter("notes", DOCS[:5], batch_size=2)]
            out["ingested"] = await client.ingest("notes", aiter_of(DOCS[5:]), batch_size=2)
            out["count"] = await client.count("notes")
            out["collections"] = await client.list_collections()
            out["search"] = await client.search("notes", "spaceflight", limit=1)
            out["recommend"] = await client.recommend("notes", ["rockets and orbits-0"], limit=2)
            out["get"] = await client.get("notes", ["pasta and garlic-1"])
            await client.delete("notes", ["pasta and garlic-1"])
            out["count_after"] = await client.count("notes")
            await client.delete_collection("notes")
            out["collections_after"] = await client.list_collections()
            return out

    got = asyncio.run(scenario())
    assert got["health"] == "SERVING"
    assert np.abs(got["embed"] - expected).max() < 1e-6
    assert np.abs(np.stack(got["stream"]) - expected).max() < 1e-6
    assert list(got["tokens"].results[0].ids) == list(tokens.results[0].ids)
    assert np.abs(got["scores"] - scores).max() < 1e-6
    assert [a.batch_id for a in got["acks"]] == ["0", "1", "2"]
    assert got["acks"][-1].total_acknowledged == 5
    assert got["ingested"] == 3 and got["count"] == 8
    assert "notes" in got["collections"] and "notes" not in got["collections_after"]
    assert got["search"][0].payload["topic"] == "rockets and orbits"
    recommended = [h.id for h in got["recommend"]]
    assert "rockets and orbits-0" not in recommended
    assert all(i.startswith("rockets") for i in recommended)
    assert [d.id for d in got["get"]] == ["pasta and garlic-1"]
    assert got["count_after"] == 7
