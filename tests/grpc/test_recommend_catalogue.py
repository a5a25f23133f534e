"""Recommendation quality on the shop catalogue of docs/data (214 items in ten categories),
over gRPC with the packaged MiniLM and the embedded store: positives from one category, a
negative from a neighbouring one, and each strategy's own way of weighing them."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from running_server import RunningServer

from embedserve.client import EmbedClient
from embedserve.server import cli

CATALOGUE = Path(__file__).resolve().parents[2] / "docs" / "data" / "catalogue.jsonl"
STRATEGIES = ("average_vector", "best_score", "sum_scores")

# Two positives from one category and a negative from a neighbouring category.
SCENARIOS = [
    (["ridgeline-trail-runner", "ultra-cruiser-max"], "ridge-mid-hiking-boot"),
    (["hand-coffee-grinder", "ceramic-pour-over-dripper"], "electric-spice-grinder"),
    (["ridgecamp-2-tent", "alpine-down-sleeping-bag"], "expedition-65-trekking-pack"),
]


def items() -> list[dict[str, Any]]:
    with CATALOGUE.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def documents() -> list[dict[str, Any]]:
    """What the tutorial ingests: name and description embedded, the rest as payload."""
    return [
        {
            "id": item["id"],
            "text": f"{item['name']}. {item['description']}",
            "payload": {k: item[k] for k in ("name", "category", "price", "tags")},
        }
        for item in items()
    ]


CATEGORY = {item["id"]: item["category"] for item in items()}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, minilm_model: Any) -> Iterator[str]:
    from embedserve.server.config import Settings

    settings = Settings(
        port=0, http_port=0, model="minilm", data_dir=str(tmp_path_factory.mktemp("data"))
    )
    running = RunningServer(settings, minilm_model).wait_ready()
    try:
        with EmbedClient(running.target) as client:
            client.create_collection(
                "catalogue", payload_indexes={"category": "keyword", "price": "float"}
            )
            assert client.ingest("catalogue", documents(), batch_size=64) == len(CATEGORY)
        yield running.target
    finally:
        running.stop()


@pytest.fixture
def client(server: str) -> Iterator[EmbedClient]:
    with EmbedClient(server) as opened:
        yield opened


def ranking(
    client: EmbedClient,
    positive: Sequence[Any],
    negative: Sequence[Any] = (),
    strategy: str = "average_vector",
    limit: int | None = None,
) -> list[str]:
    """Ids in recommended order; without a limit, every stored item but the examples."""
    hits = client.recommend(
        "catalogue", positive, negative, strategy=strategy, limit=limit or len(CATEGORY)
    )
    return [hit.id for hit in hits]


def share(ids: Sequence[str], categories: set[str]) -> float:
    return sum(CATEGORY[i] in categories for i in ids) / len(ids)


def test_the_catalogue_reads_like_a_shop() -> None:
    catalogue = items()
    assert len(catalogue) >= 200
    assert len({item["id"] for item in catalogue}) == len(catalogue)
    for item in catalogue:
        assert set(item) == {"id", "name", "description", "category", "price", "tags"}, item
        assert isinstance(item["price"], float) and item["price"] > 0, item["id"]
        assert item["tags"] and all(isinstance(t, str) for t in item["tags"]), item["id"]
        sentences = len(re.findall(r"[.!?](?:\s|$)", item["description"]))
        assert 1 <= sentences <= 3, item["id"]
    sizes = Counter(item["category"] for item in catalogue)
    assert len(sizes) >= 8 and min(sizes.values()) >= 15, sizes
    # Not one sentence with a word swapped: descriptions differ in length and wording.
    descriptions = [item["description"] for item in catalogue]
    assert len({d.split()[0] for d in descriptions}) >= 40
    lengths = sorted(len(d.split()) for d in descriptions)
    assert lengths[0] <= 15 and lengths[-1] >= 35


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_top_results_come_from_the_positives_category(client: EmbedClient, strategy: str) -> None:
    shares = []
    for positive, negative in SCENARIOS:
        top = ranking(client, positive, [negative], strategy, limit=10)
        assert len(top) == 10 and not set(top) & {*positive, negative}
        shares.append(share(top, {CATEGORY[positive[0]]}))
    # Measured: 0.9, 0.9, 0.8 (average_vector, sum_scores) and 0.8, 1.0, 0.8 (best_score).
    assert min(shares) >= 0.7 and sum(shares) / len(shares) >= 0.8, shares


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_negative_pushes_its_neighbours_down(client: EmbedClient, strategy: str) -> None:
    for positive, negative in SCENARIOS:
        # The negative's nearest items outside the positives' category.
        near = ranking(client, [negative], limit=20)
        neighbours = [i for i in near if CATEGORY[i] != CATEGORY[positive[0]]][:5]
        without = ranking(client, positive, strategy=strategy)
        with_negative = ranking(client, positive, [negative], strategy)
        assert negative not in with_negative and len(with_negative) == len(without) - 1
        before = [without.index(i) for i in neighbours]
        after = [with_negative.index(i) for i in neighbours]
        # Measured mean ranks, average_vector and sum_scores: 12 -> 53, 31 -> 106, 17 -> 51;
        # best_score sends those nearer the negative than any positive to the very bottom.
        assert sum(after) / 5 >= sum(before) / 5 + 25, (negative, before, after)
        assert sum(a > b for a, b in zip(after, before, strict=True)) >= 4, (before, after)


def test_one_positive_ranks_alike_with_every_strategy(client: EmbedClient) -> None:
    rankings = {
        s: ranking(client, ["compact-espresso-machine"], [], s, limit=20) for s in STRATEGIES
    }
    assert len(rankings["average_vector"]) == 20
    assert rankings["best_score"] == rankings["average_vector"] == rankings["sum_scores"]


def test_unrelated_positives_best_score_serves_both_average_neither(client: EmbedClient) -> None:
    positive = ["ridgecamp-2-tent", "quiet-700-anc-headphones"]
    best = ranking(client, positive, [], "best_score", limit=8)
    average = ranking(client, positive, [], "average_vector", limit=8)
    # best_score: neighbours of each positive (measured 8 of 8: five audio, three camping);
    # the average of a tent and headphones lands near neither (measured 5 of 8).
    assert share(best, {"camping", "audio"}) == 1.0, best
    assert {CATEGORY[i] for i in best} == {"camping", "audio"}
    assert share(average, {"camping", "audio"}) <= 0.75, average


def test_best_score_vetoes_average_vector_reshuffles(client: EmbedClient) -> None:
    positive, negative = SCENARIOS[0]
    for strategy in ("best_score", "average_vector"):
        without = ranking(client, positive, [], strategy)
        top = ranking(client, positive, [negative], strategy, limit=10)
        kept = [i for i in without if i in top]
        if strategy == "best_score":
            # Items nearer the negative drop out; the others keep their order.
            assert top == kept
            assert top[0] == without[0] == "mudrunner-waterproof-trail-shoe"
        else:
            # The query moves away from the negative: the waterproof trail shoe, about as
            # close to the boot as to the positives, falls from 2nd to 10th (measured).
            assert top != kept
            assert top.index("mudrunner-waterproof-trail-shoe") > 5


def test_sum_scores_weighs_a_negative_like_a_positive(client: EmbedClient) -> None:
    # 2 * mean(positive) - mean(negative) is p1 + p2 - n, the sum of scores, for two
    # positives and one negative; for one of each the average leans twice as far to p.
    positive, negative = SCENARIOS[0]
    assert ranking(client, positive, [negative], "average_vector", limit=10) == ranking(
        client, positive, [negative], "sum_scores", limit=10
    )
    one = (["compact-espresso-machine"], ["cordless-electric-kettle"])
    average = ranking(client, *one, "average_vector", limit=8)
    summed = ranking(client, *one, "sum_scores", limit=8)
    # Measured: 8 of 8 coffee against 3 of 8, the rest merely far from a kettle.
    assert share(average, {"coffee"}) == 1.0, average
    assert share(summed, {"coffee"}) <= 0.5, summed


def test_a_text_example_and_a_filter(client: EmbedClient) -> None:
    examples = ([{"text": "shoes for muddy forest trails"}], ["ridge-mid-hiking-boot"])
    everything = client.recommend("catalogue", *examples, strategy="best_score", limit=300)
    assert everything[0].id == "mudrunner-waterproof-trail-shoe"
    running_under_160 = {
        "must": [
            {"match": {"key": "category", "text": "running"}},
            {"range": {"key": "price", "lte": 160}},
        ]
    }
    hits = client.recommend(
        "catalogue", *examples, strategy="best_score", limit=5, filter=running_under_160
    )
    # A filter is a hard rule applied to the same ranking: nothing reordered, nothing else.
    expected = [
        h.id for h in everything if h.payload["category"] == "running" and h.payload["price"] <= 160
    ]
    assert [h.id for h in hits] == expected[:5]


def test_cli_takes_ids_and_texts_and_names_the_missing_flag(
    server: str, client: EmbedClient, capsys: Any
) -> None:
    args = ["recommend", "catalogue", "--target", server, "--strategy", "best_score"]
    examples = ["--positive-text", "shoes for muddy forest trails", "-n", "ridge-mid-hiking-boot"]
    assert cli.main([*args, *examples, "--limit", "4"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = client.recommend(
        "catalogue",
        [{"text": "shoes for muddy forest trails"}],
        ["ridge-mid-hiking-boot"],
        strategy="best_score",
        limit=4,
    )
    assert [p["id"] for p in printed] == [h.id for h in expected]
    assert printed[0]["payload"]["name"] == "Mudrunner Waterproof Trail Shoe"

    assert cli.main([*args, "--negative-text", "hiking boots"]) == 2
    assert "--positive ID or --positive-text TEXT" in capsys.readouterr().err
