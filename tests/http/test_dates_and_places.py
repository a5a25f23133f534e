"""Dates and places end to end with MiniLM: datetime and geo indexes, datetime_range and
geo filters in searches and counts, and the newest documents first, over gRPC, HTTP and the
command line."""

from __future__ import annotations

import json
from typing import Any

import grpc
import httpx
import pytest

from embedserve.client import EmbedClient
from embedserve.client.cli import main as cli_main

DOCS = [
    {"id": i, "text": text, "payload": {"published": stamp}}
    for i, text, stamp in [
        ("n1", "the rocket reached orbit", "2026-11-02T08:00:00Z"),
        ("n2", "a probe landed on the moon", "2026-12-01T09:30:00+01:00"),
        ("n3", "bake the bread until brown", "2026-12-01"),
        ("n4", "astronauts trained for a mission to mars", "2026-12-03T18:45:00Z"),
    ]
]
DECEMBER = {"must": [{"datetime_range": {"key": "published", "gte": "2026-12-01T00:00:00Z"}}]}


def test_dates_filter_and_order_documents(both: Any, capsys: Any) -> None:
    with EmbedClient(both.target) as client:
        client.create_collection("news", payload_indexes={"published": "datetime"})
        client.upsert("news", DOCS)
        info = client.get_collection("news")
        assert dict(info.config.payload_indexes) == {"published": 6}  # DATETIME
        hits = client.search("news", "space missions", filter=DECEMBER, limit=10)
        assert [h.id for h in hits][:2] == ["n4", "n2"] and len(hits) == 3
        assert client.count("news", filter=DECEMBER) == 3
        newest = [d.id for d in client.scroll_iter("news", order_by="published", descending=True)]
        assert newest == ["n4", "n2", "n3", "n1"]  # 09:30+01:00 is 08:30Z, after midnight
        bad = {"must": [{"datetime_range": {"key": "published", "lt": "last week"}}]}
        with pytest.raises(grpc.RpcError) as error:
            client.count("news", filter=bad)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "'last week' is no date and time" in error.value.details()

    with httpx.Client(base_url=both.url) as http:
        body = {"text": "space missions", "filter": DECEMBER, "params": {"limit": 10}}
        found = http.post("/api/v1/collections/news/search", json=body).json()
        assert [r["id"] for r in found["results"]] == [h.id for h in hits]
        oldest = http.post(
            "/api/v1/collections/news/scroll",
            json={"limit": 1, "order_by": {"key": "published"}},
        ).json()
        assert [d["id"] for d in oldest["documents"]] == ["n1"] and oldest["next_cursor"]
        made = http.post(
            "/api/v1/collections",
            json={"name": "events", "config": {"payload_indexes": {"at": "datetime"}}},
        )
        assert made.json()["collection"]["config"]["payload_indexes"] == {"at": "datetime"}

    target = ["--target", both.target]
    december = json.dumps(DECEMBER)
    assert cli_main(["search", "news", "bread", "--filter", december, "--limit", "1", *target]) == 0
    assert "n3" in capsys.readouterr().out
    assert cli_main(["collections", "update", "events", "--index", "day:datetime", *target]) == 0
    assert '"day": "PAYLOAD_INDEX_KIND_DATETIME"' in capsys.readouterr().out


CAFES = [
    {"id": i, "text": text, "payload": {"at": {"lat": lat, "lon": lon}}}
    for i, text, lat, lon in [
        ("mitte", "a quiet cafe with strong espresso", 52.5200, 13.4050),
        ("alex", "espresso bar by the tv tower", 52.5219, 13.4132),
        ("potsdam", "coffee roastery near the palace", 52.3906, 13.0645),
        ("hamburg", "harbour cafe with espresso", 53.5511, 9.9937),
    ]
] + [{"id": "online", "text": "espresso beans by post", "payload": {}}]
NEARBY = {
    "must": [
        {"geo_radius": {"key": "at", "center": {"lat": 52.52, "lon": 13.405}, "radius_m": 2000}}
    ]
}


def test_places_filter_searches(both: Any, capsys: Any) -> None:
    with EmbedClient(both.target) as client:
        client.create_collection("cafes", payload_indexes={"at": "geo"})
        client.upsert("cafes", CAFES)
        hits = client.search("cafes", "espresso", filter=NEARBY, limit=10)
        assert {h.id for h in hits} == {"mitte", "alex"}
        box = {
            "must": [
                {
                    "geo_bounding_box": {
                        "key": "at",
                        "top_left": {"lat": 53.0, "lon": 12.5},
                        "bottom_right": {"lat": 52.0, "lon": 14.0},
                    }
                }
            ]
        }
        assert client.count("cafes", filter=box) == 3
        # Without a filter, nearness weighs in: the Hamburg cafe sinks below Berlin's.
        plain = [h.id for h in client.search("cafes", "harbour cafe with espresso", limit=5)]
        assert plain[0] == "hamburg"
        near = {"key": "at", "center": {"lat": 52.52, "lon": 13.405}, "half_distance_m": 5000}
        weighed = client.search("cafes", "harbour cafe with espresso", limit=5, proximity=near)
        ranks = {h.id: n for n, h in enumerate(weighed)}
        assert ranks["hamburg"] > ranks["mitte"] and ranks["hamburg"] > ranks["alex"]
        assert ranks["online"] == 4  # no place: no closeness
        nowhere = {"must": [{"is_empty": {"key": "at"}}]}
        assert [d.id for d in client.scroll_iter("cafes", filter=nowhere)] == ["online"]
        off = {
            "must": [{"geo_radius": {"key": "at", "center": {"lat": 95, "lon": 0}, "radius_m": 1}}]
        }
        with pytest.raises(grpc.RpcError) as error:
            client.count("cafes", filter=off)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "lat must be a number from -90 to 90" in error.value.details()

    with httpx.Client(base_url=both.url) as http:
        body = {"text": "espresso", "filter": NEARBY, "params": {"limit": 10}}
        found = http.post("/api/v1/collections/cafes/search", json=body).json()
        assert {r["id"] for r in found["results"]} == {"mitte", "alex"}
        body["proximity"] = {"key": "at", "center": {"lat": 91, "lon": 0}, "half_distance_m": 9}
        off_globe = http.post("/api/v1/collections/cafes/search", json=body)
        assert off_globe.status_code == 400 and "lat" in off_globe.text
        made = http.post(
            "/api/v1/collections",
            json={"name": "shops", "config": {"payload_indexes": {"at": "geo"}}},
        )
        assert made.json()["collection"]["config"]["payload_indexes"] == {"at": "geo"}
        indexed = http.patch(
            "/api/v1/collections/shops", json={"add_payload_indexes": {"b": "geo"}}
        )
        assert indexed.json()["collection"]["config"]["payload_indexes"] == {
            "at": "geo",
            "b": "geo",
        }
        no_center = {"must": [{"geo_radius": {"key": "at", "radius_m": 5}}]}
        reply = http.post("/api/v1/collections/cafes/count", json={"filter": no_center})
        assert reply.status_code == 400 and "needs a center" in reply.text

    command = ["search", "cafes", "harbour cafe with espresso", "--limit", "2"]
    command += ["--proximity", "at", "--center", "52.52,13.405", "--half-distance", "5000"]
    assert cli_main([*command, "--target", both.target]) == 0
    assert '"id": "hamburg"' not in capsys.readouterr().out
    assert cli_main(["search", "cafes", "x", "--proximity", "at", "--target", both.target]) == 2
    assert "--proximity needs --center LAT,LON" in capsys.readouterr().err
    nearby = json.dumps(NEARBY)
    assert cli_main(["count", "cafes", "--filter", nearby, "--target", both.target]) == 0
    assert capsys.readouterr().out.strip() == "2"
