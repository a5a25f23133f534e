"""``model_revision`` loads the hub model's branch, tag or commit asked for, from the hub's
own cache layout (the tests run offline: huggingface_hub resolves revisions there as it
does for a model downloaded before), and is refused where a model has no versions."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from running_server import free_port

from embedserve.client import EmbedClient
from embedserve.server.errors import ModelLoadError
from embedserve.server.model import EncoderModel
from embedserve.server.model_settings import ModelSettings
from embedserve.server.model_spec import resolve_model_path

REPO = "acme/tiny-encoder"
MAIN, TAGGED = "1" * 40, "2" * 40  # commit hashes


@pytest.fixture
def hub_cache(tmp_path: Path, minilm_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hub cache holding two commits of REPO: main (max 128 tokens) and tag v2 (64)."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    repo = cache / "models--acme--tiny-encoder"
    for commit, ref, max_tokens in ((MAIN, "main", 128), (TAGGED, "v2", 64)):
        snapshot = repo / "snapshots" / commit
        snapshot.mkdir(parents=True)
        for item in minilm_path.iterdir():  # links, as the hub's cache keeps its files
            os.symlink(item, snapshot / item.name)
        (snapshot / "sentence_bert_config.json").unlink()
        (snapshot / "sentence_bert_config.json").write_text(
            json.dumps({"max_seq_length": max_tokens, "do_lower_case": False})
        )
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return repo


def test_each_revision_resolves_to_its_own_snapshot(hub_cache: Path) -> None:
    assert resolve_model_path(REPO) == (REPO, hub_cache / "snapshots" / MAIN)
    assert resolve_model_path(REPO, "v2") == (REPO, hub_cache / "snapshots" / TAGGED)
    assert resolve_model_path(REPO, MAIN)[1] == hub_cache / "snapshots" / MAIN
    with pytest.raises(ModelLoadError, match=r"'acme/tiny-encoder' at revision 'v9'"):
        resolve_model_path(REPO, "v9")


def test_the_server_loads_the_pinned_revision_and_says_which(
    hub_cache: Path, start_server: Any, minilm_server: Any
) -> None:
    pinned = EncoderModel.load(ModelSettings(model=REPO, model_revision="v2", device="cpu"))
    assert pinned.spec.model_id == REPO
    assert pinned.spec.max_tokens == 64  # v2's own files, not main's 128
    server = start_server(loaded=pinned, http_port=free_port())
    with EmbedClient(server.target) as client:
        assert client.model_info().model_revision == TAGGED  # the commit the tag named
    with httpx.Client(base_url=f"http://127.0.0.1:{server.server.http.port}") as http:
        assert http.get("/info").json()["model_sha"] == TAGGED  # TEI's name for it
    with EmbedClient(minilm_server.target) as client:
        assert client.model_info().model_revision == ""  # no hub cache: no commit


@pytest.mark.parametrize("name", ["minilm", "local"])
def test_a_model_without_versions_refuses_a_revision(tmp_path: Path, name: str) -> None:
    model = name if name == "minilm" else str(tmp_path)
    with pytest.raises(ModelLoadError, match="model_revision 'v2' names a version of a hub model"):
        resolve_model_path(model, "v2")


@pytest.mark.parametrize("name", ["/no/such/model", "./no-such-model", "~/models/none", "a/b/c"])
def test_a_folder_that_is_not_there_is_named_so(name: str) -> None:
    """Not "weights neither cached nor downloadable (HFValidationError)": no hub id looks
    like these."""
    with pytest.raises(
        ModelLoadError, match=rf"cannot load model '{re.escape(name)}': no such folder\. "
    ):
        resolve_model_path(name)


def test_a_file_given_as_a_model_folder_is_named_so(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"model\.safetensors': a file, not a folder\. "):
        resolve_model_path(str(weights))
