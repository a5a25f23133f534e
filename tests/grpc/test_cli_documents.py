"""``embedserve get | count | scroll | payload | delete`` against a live server with MiniLM:
what they print, what they change, and how they refuse."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from running_server import RunningServer

from embedserve.client import EmbedClient
from embedserve.client.cli import main as cli_main

DOCS = [
    {"id": f"d{i}", "text": text, "payload": {"topic": topic, "n": i}}
    for i, (text, topic) in enumerate(
        [
            ("the rocket reached orbit", "space"),
            ("a probe landed on the moon", "space"),
            ("bake the bread until brown", "food"),
            ("whisk the eggs with sugar", "food"),
            ("the striker scored late", "sport"),
        ]
    )
]
FOOD = '{"must":[{"match":{"key":"topic","text":"food"}}]}'


@pytest.fixture
def target(tmp_path_factory: pytest.TempPathFactory, minilm_model: Any) -> Iterator[str]:
    from embedserve.server.config import Settings

    data = str(tmp_path_factory.mktemp("data"))
    running = RunningServer(
        Settings(port=0, http_port=0, model="minilm", data_dir=data), minilm_model
    )
    running.wait_ready()
    with EmbedClient(running.target) as client:
        client.create_collection("notes", payload_indexes={"topic": "keyword", "n": "integer"})
        client.upsert("notes", DOCS)
    yield running.target
    running.stop()


def _lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def test_get_count_and_scroll_print_documents(target: str, capsys: Any) -> None:
    at = ["--target", target]
    assert cli_main(["get", "notes", "d2", "d0", "--vectors", *at]) == 0
    got = _lines(capsys.readouterr().out)
    assert [(d["id"], d["payload"]["topic"]) for d in got] == [("d2", "food"), ("d0", "space")]
    assert all(len(d["vector"]) == 384 for d in got)
    assert cli_main(["get", "notes", "d1", "nope", *at]) == 1
    captured = capsys.readouterr()
    assert [d["id"] for d in _lines(captured.out)] == ["d1"]
    assert "not found: nope" in captured.err

    assert cli_main(["count", "notes", *at]) == 0
    assert capsys.readouterr().out.strip() == "5"
    assert cli_main(["count", "notes", "--filter", FOOD, *at]) == 0
    assert capsys.readouterr().out.strip() == "2"

    assert cli_main(["scroll", "notes", "--order-by", "n", "--desc", "--limit", "2", *at]) == 0
    assert [d["id"] for d in _lines(capsys.readouterr().out)] == ["d4", "d3"]


def test_payload_and_delete_change_what_they_select(target: str, capsys: Any) -> None:
    at = ["--target", target]
    assert cli_main(["payload", "notes", "--filter", FOOD, "--set", '{"aisle": 3}', *at]) == 0
    assert cli_main(["payload", "notes", "d4", "--unset", "n", *at]) == 0
    capsys.readouterr()
    with EmbedClient(target) as client:
        stored = {d.id: d.payload for d in client.get("notes", ["d2", "d3", "d4", "d0"])}
    assert stored["d2"]["aisle"] == stored["d3"]["aisle"] == 3
    assert "aisle" not in stored["d0"] and "n" not in stored["d4"]

    assert cli_main(["delete", "notes", "d0", "d2", "--filter", FOOD, *at]) == 0
    assert "deleted 1 document(s)" in capsys.readouterr().err  # d2: an id that is food
    assert cli_main(["delete", "notes", "--filter", FOOD, *at]) == 0
    assert "deleted 1 document(s)" in capsys.readouterr().err  # d3
    assert cli_main(["count", "notes", *at]) == 0
    assert capsys.readouterr().out.strip() == "3"

    for command, message in [
        (["delete", "notes"], "name the documents: ids, --filter, or both"),
        (["payload", "notes", "d1"], "nothing to change"),
        (["payload", "notes", "d1", "--set", "[1]"], "--set: a JSON object expected"),
        (["payload", "notes", "d1", "--set", "{oops"], "--set: not valid JSON"),
    ]:
        assert cli_main([*command, *at]) == 2
        assert message in capsys.readouterr().err
    assert cli_main(["payload", "notes", "missing", "--set", '{"a": 1}', *at]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err
