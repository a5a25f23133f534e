"""A collection records the model whose embeddings it holds: another model of the same
vector size may not embed texts for it (its answers would be meaningless, silently); the
same model may, from another folder or on another backend."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from embedserve.client import EmbedClient

DOCS = [
    {"id": "1", "text": "the rocket reached orbit"},
    {"id": "2", "text": "bake the bread for forty minutes"},
]


def _written_by_minilm(start_server: Any, minilm_model: Any, data: str) -> str:
    """A 64-d collection (a Matryoshka cut) written by MiniLM; its model's fingerprint."""
    old = start_server(loaded=minilm_model, data_dir=data)
    with EmbedClient(old.target) as client:
        info = client.create_collection("notes", dimensions=64)
        client.upsert("notes", DOCS)
        served = client.model_info()
        assert (info.model_id, info.model_fingerprint) == (served.model_id, served.fingerprint)
        assert len(served.fingerprint) == 16
    old.run(old.server.stop(0))
    return served.fingerprint


def test_another_model_of_the_same_size_may_not_embed_for_it(
    start_server: Any, minilm_model: Any, build_tiny_model: Any, tmp_path: Path
) -> None:
    data = str(tmp_path / "data")
    fingerprint = _written_by_minilm(start_server, minilm_model, data)
    new = start_server(model=str(build_tiny_model()), data_dir=data)  # 64-d as well
    with EmbedClient(new.target) as client:
        assert client.model_info().fingerprint != fingerprint
        refused = [
            lambda: client.search("notes", "space travel"),
            lambda: client.upsert("notes", [{"id": "3", "text": "a goal"}]),
            lambda: client.recommend("notes", positive=[{"text": "baking"}]),
        ]
        for call in refused:
            with pytest.raises(grpc.RpcError) as error:
                call()
            assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "reembed notes" in error.value.details()
            assert fingerprint in error.value.details()
        # What embeds nothing still works: by vector, by stored example, by id.
        assert len(client.search("notes", vector=np.full(64, 0.1), limit=2)) == 2
        assert [h.id for h in client.recommend("notes", positive=["1"], limit=1)] == ["2"]
        assert client.count("notes") == 2
        # A collection it creates is its own.
        client.create_collection("fresh")
        client.upsert("fresh", DOCS)
        assert client.get_collection("fresh").model_fingerprint == client.model_info().fingerprint


def test_the_same_model_from_another_folder_and_backend_embeds_for_it(
    start_server: Any, minilm_model: Any, minilm_path: Path, tmp_path: Path
) -> None:
    data = str(tmp_path / "data")
    fingerprint = _written_by_minilm(start_server, minilm_model, data)
    moved = shutil.copytree(minilm_path, tmp_path / "models" / "minilm-copy")
    same = start_server(model=str(moved), data_dir=data, backend="torch-int8")
    with EmbedClient(same.target) as client:
        assert client.model_info().fingerprint == fingerprint
        assert [h.id for h in client.search("notes", "space travel", limit=1)] == ["1"]
        client.upsert("notes", [{"id": "3", "text": "the striker scored a goal"}])
        assert client.count("notes") == 3


def test_a_collection_recording_the_former_fingerprint_stays_the_models(
    start_server: Any, minilm_model: Any, minilm_path: Path, tmp_path: Path
) -> None:
    """Fingerprints were once of the first 16 MiB of each weights file: collections that
    record one are still the served model's where it matches."""
    from embedserve.connectors import CollectionSpec, EdgeStore
    from embedserve.server.model_identity import former_model_fingerprint

    data = tmp_path / "data"
    former = former_model_fingerprint(minilm_path)
    with EdgeStore(data) as store:
        spec = CollectionSpec("older", 384, model_id="minilm", model_fingerprint=former)
        store.create_collection(spec)
    server = start_server(loaded=minilm_model, data_dir=str(data))
    with EmbedClient(server.target) as client:
        info = client.model_info()
        assert info.former_fingerprint == former != info.fingerprint
        client.upsert("older", DOCS)
        assert [h.id for h in client.search("older", "space travel", limit=1)] == ["1"]


def test_a_finetuned_models_collection_recording_its_report_stays_the_models(
    start_server: Any, minilm_path: Path, tmp_path: Path
) -> None:
    """Fingerprints of the former kind once counted the report `embedserve finetune`
    writes beside the weights: collections and exports a fine-tuned model made then
    record that one, and are still that model's."""
    from embedserve.connectors import CollectionSpec, EdgeStore
    from embedserve.server.model_identity import FORMER_HEAD_BYTES, _fingerprint

    tuned = shutil.copytree(minilm_path, tmp_path / "tuned")
    (tuned / "finetune-report.json").write_text('{"base": "minilm"}')
    recorded = _fingerprint(tuned, FORMER_HEAD_BYTES, skipped=frozenset())
    data = tmp_path / "data"
    with EdgeStore(data) as store:
        spec = CollectionSpec("older", 384, model_id=str(tuned), model_fingerprint=recorded)
        store.create_collection(spec)
    server = start_server(model=str(tuned), data_dir=str(data))
    with EmbedClient(server.target) as client:
        info = client.model_info()
        assert recorded != info.former_fingerprint
        assert list(info.former_fingerprints) == [info.former_fingerprint, recorded]
        client.upsert("older", DOCS)
        assert [h.id for h in client.search("older", "space travel", limit=1)] == ["1"]
