"""`embedserve export` then `embedserve ingest`: a collection restored as it was, settings too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from embedserve.client import EmbedClient
from embedserve.client.cli import main as cli_main

DOCS = [
    {"id": f"d{i}", "text": text, "payload": {"topic": topic, "n": i}}
    for i, (text, topic) in enumerate(
        [
            ("the rocket reached orbit after a long countdown", "space"),
            ("the probe landed on a frozen moon", "space"),
            ("bake the bread until the crust is brown", "food"),
            ("simmer the tomato sauce with garlic", "food"),
            ("the striker scored in the final minute", "sport"),
        ]
    )
]


def test_a_restored_collection_has_its_settings_vectors_and_payloads(
    minilm_server: Any, tmp_path: Path, capsys: Any
) -> None:
    target = ["--target", minilm_server.target]
    with EmbedClient(minilm_server.target) as client:
        client.create_collection(
            "articles",
            dimensions=128,  # not the model's width: a default collection could not take them
            distance="dot",
            payload_indexes={"topic": "keyword", "n": "integer"},
            bm25=True,
            hnsw_m=8,
            full_scan_threshold_kb=2000,
        )
        client.upsert("articles", DOCS, store_text=True)
    backup = tmp_path / "articles.jsonl"
    assert cli_main(["export", "articles", "-o", str(backup), *target]) == 0
    assert "ingest makes the collection with them" in capsys.readouterr().err
    saved = json.loads((tmp_path / "articles.jsonl.collection.json").read_text())
    assert saved["collection"] == "articles" and saved["config"]["dimensions"] == 128

    assert cli_main(["ingest", str(backup), "-c", "restored", *target]) == 0
    assert "with the settings in" in capsys.readouterr().err
    with EmbedClient(minilm_server.target) as client:
        original, restored = client.get_collection("articles"), client.get_collection("restored")
        assert restored.config == original.config
        ids = [d["id"] for d in DOCS]
        before = {d.id: d for d in client.get("articles", ids, with_vectors=True)}
        after = {d.id: d for d in client.get("restored", ids, with_vectors=True)}
        assert {i: d.payload for i, d in after.items()} == {i: d.payload for i, d in before.items()}
        for i in ids:
            assert np.allclose(after[i].vector, before[i].vector, atol=1e-6)
        keyword = client.search("restored", "tomato garlic", mode="keyword", limit=1)
        assert [h.id for h in keyword] == ["d3"]  # its BM25 vectors came along

    # Vectors of another model: refused before anything is made.
    sidecar = tmp_path / "articles.jsonl.collection.json"
    other = {**saved, "model_id": "other-model", "model_fingerprint": "0123456789abcdef"}
    sidecar.write_text(json.dumps(other))
    (tmp_path / "articles.jsonl.progress").unlink(missing_ok=True)
    assert cli_main(["ingest", str(backup), "-c", "elsewhere", *target]) == 2
    assert "embeddings of model 'other-model'" in capsys.readouterr().err
    with EmbedClient(minilm_server.target) as client:
        assert "elsewhere" not in client.list_collections()
        assert saved["model_fingerprint"] == client.model_info().fingerprint
        client.create_collection("made_first", dimensions=128)
    # Nor into a collection made first, whose queries embed with this server's model.
    assert cli_main(["ingest", str(backup), "-c", "made_first", *target]) == 2
    assert "collection 'made_first' embeds with" in capsys.readouterr().err
    with EmbedClient(minilm_server.target) as client:
        assert client.count("made_first") == 0

    # Without the settings file, the size of the first vector (not the model's width, which
    # these 128-d vectors would not fit); the other settings are the server's defaults.
    (tmp_path / "articles.jsonl.collection.json").unlink()
    (tmp_path / "articles.jsonl.progress").unlink(missing_ok=True)
    assert cli_main(["ingest", str(backup), "-c", "plain", *target]) == 0
    with EmbedClient(minilm_server.target) as client:
        assert client.get_collection("plain").config.dimensions == 128
        assert client.count("plain") == len(ids)

    (tmp_path / "articles.jsonl.collection.json").write_text('{"config": {"dimensions": "x"}}')
    assert cli_main(["ingest", str(backup), "-c", "broken", *target]) == 2
    assert "not a collection's settings" in capsys.readouterr().err
    with EmbedClient(minilm_server.target) as client:
        assert "broken" not in client.list_collections()


def test_an_export_recording_the_former_fingerprint_is_the_served_models(
    minilm_server: Any, tmp_path: Path, capsys: Any
) -> None:
    """An export taken before fingerprints read every byte records the former kind (the
    first 16 MiB of each weights file), which GetModelInfo reports as former_fingerprint:
    ingest refused it, into a new collection and into one the server made."""
    target = ["--target", minilm_server.target]
    with EmbedClient(minilm_server.target) as client:
        client.create_collection("articles", dimensions=128, payload_indexes={"n": "integer"})
        client.upsert("articles", DOCS, store_text=True)
        info = client.model_info()
    assert info.former_fingerprint and info.former_fingerprint != info.fingerprint
    backup = tmp_path / "articles.jsonl"
    assert cli_main(["export", "articles", "-o", str(backup), *target]) == 0
    sidecar = tmp_path / "articles.jsonl.collection.json"
    saved = json.loads(sidecar.read_text())
    assert saved["model_fingerprint"] == info.fingerprint
    sidecar.write_text(json.dumps({**saved, "model_fingerprint": info.former_fingerprint}))
    capsys.readouterr()

    assert cli_main(["ingest", str(backup), "-c", "restored", *target]) == 0
    assert "with the settings in" in capsys.readouterr().err
    with EmbedClient(minilm_server.target) as client:
        restored = client.get_collection("restored")
        assert restored.config == client.get_collection("articles").config
        assert restored.points_count == len(DOCS)
        # A collection the server makes records the fingerprint of today's kind.
        client.create_collection("made_first", dimensions=128)
        assert client.get_collection("made_first").model_fingerprint == info.fingerprint
    (tmp_path / "articles.jsonl.progress").unlink(missing_ok=True)
    assert cli_main(["ingest", str(backup), "-c", "made_first", *target]) == 0
    with EmbedClient(minilm_server.target) as client:
        assert client.count("made_first") == len(DOCS)
        hits = client.search("made_first", "tomato garlic", limit=1)
        assert [h.id for h in hits] == ["d3"]
