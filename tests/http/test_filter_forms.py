"""Lists of objects, value counts and "at least N of" filters end to end with MiniLM, over
gRPC, HTTP and the command line."""

from __future__ import annotations

import json
from typing import Any

import grpc
import httpx
import pytest

from embedserve.client import EmbedClient
from embedserve.client.cli import main as cli_main

RECIPES = [
    {"id": i, "text": text, "payload": {"tags": tags, "reviews": reviews}}
    for i, text, tags, reviews in [
        (
            "soup",
            "a warm tomato soup with basil",
            ["vegan", "quick", "cheap"],
            [{"by": "ana", "stars": 5}, {"by": "bo", "stars": 2}],
        ),
        (
            "stew",
            "a slow beef stew with red wine",
            ["hearty"],
            [{"by": "ana", "stars": 2}, {"by": "bo", "stars": 5}],
        ),
        ("salad", "a crisp green salad with lemon", ["vegan", "quick"], []),
        ("bread", "a crusty sourdough bread", [], [{"by": "ana", "stars": 4}]),
    ]
]
# One review by ana with 4 stars or more: the stew has ana's review and a 5-star review,
# but not in the same object.
ANA_LIKED = {
    "must": [
        {
            "nested": {
                "key": "reviews",
                "filter": {
                    "must": [
                        {"match": {"key": "by", "text": "ana"}},
                        {"range": {"key": "stars", "gte": 4}},
                    ]
                },
            }
        }
    ]
}
# Two of: vegan, quick, reviewed more than once.
TWO_OF = {
    "min_should": {
        "conditions": [
            {"match": {"key": "tags", "text": "vegan"}},
            {"match": {"key": "tags", "text": "quick"}},
            {"values_count": {"key": "reviews", "gt": 1}},
        ],
        "min_count": 2,
    }
}
UNTAGGED_OR_ONE = {"must": [{"values_count": {"key": "tags", "lte": 1}}]}


def _ids(found: Any) -> set[str]:
    return {hit.id for hit in found}


def test_nested_counted_and_least_filters(both: Any, capsys: Any) -> None:
    with EmbedClient(both.target) as client:
        client.create_collection("recipes")
        client.upsert("recipes", RECIPES)
        assert _ids(client.search("recipes", "food", filter=ANA_LIKED)) == {"soup", "bread"}
        assert _ids(client.search("recipes", "food", filter=TWO_OF)) == {"soup", "salad"}
        assert _ids(client.search("recipes", "food", filter=UNTAGGED_OR_ONE)) == {"stew", "bread"}
        assert client.count("recipes", filter=TWO_OF) == 2
        inside = json.loads(json.dumps(ANA_LIKED))
        inside["must"][0]["nested"]["filter"]["must"].append({"has_id": {"ids": ["soup"]}})
        with pytest.raises(grpc.RpcError) as error:
            client.count("recipes", filter=inside)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "has_id cannot be used inside a nested filter" in (error.value.details() or "")

    with httpx.Client(base_url=both.url) as http:
        body = {"text": "food", "filter": TWO_OF, "params": {"limit": 10}}
        found = http.post("/api/v1/collections/recipes/search", json=body).json()
        assert {r["id"] for r in found["results"]} == {"soup", "salad"}
        counted = http.post("/api/v1/collections/recipes/count", json={"filter": ANA_LIKED})
        assert counted.json()["count"] == 2
        too_many = {"min_should": {**TWO_OF["min_should"], "min_count": 4}}
        refused = http.post("/api/v1/collections/recipes/count", json={"filter": too_many})
        assert refused.status_code == 400
        assert "min_count must be from 1 to its 3 conditions, got 4" in refused.text

    target = ["--target", both.target]
    liked = json.dumps(ANA_LIKED)
    assert cli_main(["search", "recipes", "bread", "--filter", liked, "--limit", "1", *target]) == 0
    assert "bread" in capsys.readouterr().out
