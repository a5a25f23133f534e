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


CAFES = [
    {"id": i, "text": name, "payload": {"name": name, "at": {"lat": lat, "lon": lon}, "lang": lang}}
    for i, name, lat, lon, lang in [
        ("mitte", "Espresso Bar Mitte", 52.5200, 13.4050, "de"),
        ("alex", "Tower Coffee", 52.5219, 13.4132, "en"),
        ("potsdam", "Palace Roastery", 52.3906, 13.0645, "de"),
        ("hamburg", "Harbour Espresso", 53.5511, 9.9937, "de"),
    ]
]
# A ring around Berlin and Potsdam, open: the server closes it.
AROUND_BERLIN = {
    "key": "at",
    "exterior": {
        "corners": [
            {"lat": 52.7, "lon": 13.0},
            {"lat": 52.7, "lon": 13.8},
            {"lat": 52.3, "lon": 13.8},
            {"lat": 52.3, "lon": 13.0},
        ]
    },
}


def test_polygons_any_word_and_except(both: Any) -> None:
    with EmbedClient(both.target) as client:
        client.create_collection("cafes", payload_indexes={"name": "text", "at": "geo"})
        client.upsert("cafes", CAFES)
        inside = {"must": [{"geo_polygon": AROUND_BERLIN}]}
        assert _ids(client.search("cafes", "coffee", filter=inside)) == {"mitte", "alex", "potsdam"}
        espresso_or_coffee = {
            "must": [{"match_text_any": {"key": "name", "text": "coffee ESPRESSO"}}]
        }
        found = _ids(client.search("cafes", "coffee", filter=espresso_or_coffee))
        assert found == {"mitte", "alex", "hamburg"}
    with httpx.Client(base_url=both.url) as http:
        body = {
            "text": "coffee",
            "filter": {
                "must": [
                    {"geo_polygon": AROUND_BERLIN},
                    {"match_except": {"key": "lang", "texts": ["en"]}},
                ]
            },
        }
        found = http.post("/api/v1/collections/cafes/search", json=body).json()["results"]
        assert {r["id"] for r in found} == {"mitte", "potsdam"}
        line = {
            "must": [
                {"geo_polygon": {"key": "at", "exterior": {"corners": [{"lat": 1, "lon": 1}] * 3}}}
            ]
        }
        refused = http.post("/api/v1/collections/cafes/count", json={"filter": line})
        assert refused.status_code == 400
        assert "needs 3 or more different corners, got 1" in refused.text


def _within(depth: int, step: str) -> dict[str, Any]:
    """A filter of ``depth`` filters within one another, by sub-filters or nested."""
    inner: dict[str, Any] = {"must": [{"values_count": {"key": "tags", "gte": 0}}]}
    for _ in range(depth):
        within = {"key": "reviews", "filter": inner} if step == "nested" else inner
        inner = {"must": [{step: within}]}
    return inner


@pytest.mark.parametrize(("step", "deepest"), [("filter", 48), ("nested", 32)])
def test_filters_nested_past_protobufs_depth_are_refused_in_a_line(
    both: Any, step: str, deepest: int
) -> None:
    """protobuf's refusal repeated a line per level (1,500 characters) in the client and
    over HTTP."""
    message = (
        "nested too deep; filters go at most 48 deep within one another "
        "(32 through nested or min_should)"
    )
    with EmbedClient(both.target) as client:
        client.create_collection(f"deep-{step}")
        assert client.count(f"deep-{step}", filter=_within(deepest, step)) == 0
        with pytest.raises(ValueError) as refused:
            client.count(f"deep-{step}", filter=_within(deepest + 1, step))
        assert str(refused.value) == f"filter: {message}"
    with httpx.Client(base_url=both.url) as http:
        url = f"/api/v1/collections/deep-{step}/count"
        assert http.post(url, json={"filter": _within(deepest, step)}).status_code == 200
        answer = http.post(url, json={"filter": _within(deepest + 1, step)})
        assert answer.status_code == 400
        assert answer.json()["error"]["message"] == f"filter: {message}"


def test_a_filter_of_more_conditions_than_a_store_call_should_test_is_refused(both: Any) -> None:
    """6,000 should-conditions on a field without an index held every store call for 19 s.
    The service's own conditions around a caller's filter (recommend's examples left out,
    groups' values, an ordered scroll's ties) are not counted."""

    def anyone_of(count: int, nested: bool = False) -> dict[str, Any]:
        each = [{"match": {"key": "tags", "text": f"tag-{n}"}} for n in range(count)]
        if nested:  # counted inside nested and inner filters too
            return {"must": [{"nested": {"key": "reviews", "filter": {"should": each}}}]}
        return {"should": each}

    limit = "at most 1024 are taken (match_any takes a list of values as one condition)"
    with EmbedClient(both.target) as client:
        client.create_collection("many", payload_indexes={})
        client.upsert("many", RECIPES)
        assert client.count("many", filter=anyone_of(1024)) == 0
        assert client.recommend("many", positive=["soup"], filter=anyone_of(1024)) == []
        for refused_filter, count in ((anyone_of(1024 + 1), 1025), (anyone_of(1024, True), 1025)):
            with pytest.raises(grpc.RpcError) as refused:
                client.count("many", filter=refused_filter)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert refused.value.details() == f"filter holds {count} conditions; {limit}"
    with httpx.Client(base_url=both.url) as http:
        answer = http.post(
            "/api/v1/collections/many/search", json={"text": "soup", "filter": anyone_of(2000)}
        )
        assert answer.status_code == 400
        assert answer.json()["error"]["message"] == f"filter holds 2000 conditions; {limit}"
