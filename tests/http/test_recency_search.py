"""Fresher documents first, end to end with MiniLM: searches, batches and recommendations
weighed by a date field, over gRPC, HTTP and the command line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import pytest

from embedserve.client import EmbedClient
from embedserve.client.cli import main as cli_main

TODAY = datetime.now(UTC)
QUERY = "the rocket launch was delayed by bad weather"
DOCS = [
    {"id": i, "text": text, "payload": {"published": (TODAY - timedelta(days=age)).isoformat()}}
    for i, text, age in [
        ("old", "The rocket launch was delayed by bad weather.", 300),
        ("new", "Storms delayed the launch of the rocket.", 1),
        ("bread", "Bake the bread for forty minutes.", 0),
    ]
]
WEEK = {"key": "published", "half_life_hours": 168}


def test_fresher_documents_rise_among_close_matches(both: Any, capsys: Any) -> None:
    with EmbedClient(both.target) as client:
        client.create_collection("news")
        client.upsert("news", DOCS)
        plain = client.search("news", QUERY, limit=2)
        assert [h.id for h in plain] == ["old", "new"]
        fresh = client.search("news", QUERY, limit=2, recency=WEEK)
        assert [h.id for h in fresh] == ["new", "old"]
        # Scores are weighed: the old one keeps about half, the new one nearly all.
        scores = {h.id: h.score for h in plain}
        assert fresh[1].score == pytest.approx(scores["old"] * 0.5, abs=1e-3)
        assert fresh[0].score == pytest.approx(
            scores["new"] * (0.5 + 0.5 * 0.5 ** (24 / 168)), abs=2e-2
        )
        # Seen from a year on, both are stale: similarity decides again.
        later = {**WEEK, "now": (TODAY + timedelta(days=365)).isoformat()}
        assert [h.id for h in client.search("news", QUERY, limit=2, recency=later)] == [
            "old",
            "new",
        ]
        batch = client.search_batch("news", [QUERY, "space travel"], limit=1, recency=WEEK)
        assert [hits[0].id for hits in batch] == ["new", "new"]
        liked = client.recommend("news", [{"text": QUERY}], limit=2, recency=WEEK)
        assert [h.id for h in liked] == ["new", "old"]

        for options, message in [
            ({"diversity": 0.5}, "takes no diversity"),
            ({"recency": {**WEEK, "weight": 2}}, "weight must be above 0 and at most 1"),
            ({"recency": {"key": "published", "half_life_hours": 0}}, "half_life_hours"),
            ({"proximity": {"key": "at", "half_distance_m": 5}}, "proximity needs a center"),
        ]:
            with pytest.raises(grpc.RpcError) as error:
                client.search("news", QUERY, **({"recency": WEEK} | options))
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert message in error.value.details()
        with pytest.raises(grpc.RpcError) as grouped:
            client.search_groups("news", QUERY, group_by="published", recency=WEEK)
        assert "a grouped search takes no recency" in grouped.value.details()
        client.create_collection("distances", distance="euclid")
        with pytest.raises(grpc.RpcError) as euclid:
            client.search("distances", QUERY, recency=WEEK)
        assert "ranks by euclid distance" in euclid.value.details()

    with httpx.Client(base_url=both.url) as http:
        body = {"text": QUERY, "params": {"limit": 2, "with_payload": False}, "recency": WEEK}
        found = http.post("/api/v1/collections/news/search", json=body).json()
        assert [(r["id"], r["payload"]) for r in found["results"]] == [("new", {}), ("old", {})]
        bad = http.post("/api/v1/collections/news/search", json={**body, "recency": {"key": "x"}})
        assert bad.status_code == 400 and "half_life_hours" in bad.text

    target = ["--target", both.target]
    assert (
        cli_main(["search", "news", QUERY, "--limit", "2", "--recency", "published", *target]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert [line.split('"id": "')[1].split('"')[0] for line in lines] == ["new", "old"]
    assert cli_main(["search", "news", QUERY, "--recency-weight", "0.5", *target]) == 2
    assert "--recency-weight needs --recency FIELD" in capsys.readouterr().err
