"""A ``default_prompt_name`` naming no prompt of the model is refused at start, as
sentence-transformers refuses it, rather than reported as applying while default
embeddings go without it. "query" and "document" are always names there ("" unless
configured), so a default naming one of them is served, with no prompt."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embedserve.client import EmbedClient
from embedserve.server.errors import ModelLoadError
from embedserve.server.model import EncoderModel
from embedserve.server.model_settings import ModelSettings

MESSAGE = r"(?i)default prompt name 'classification' not found in the configured prompts"
TEXTS = ["what is a vector database", "cats sleep for most of the day, often in the sun"]


def test_a_default_naming_no_prompt_is_refused_as_sentence_transformers_refuses_it(
    build_tiny_model: Any,
) -> None:
    from sentence_transformers import SentenceTransformer

    folder = build_tiny_model(prompts={"query": "query: "}, default_prompt_name="classification")
    with pytest.raises(ValueError, match=MESSAGE):
        SentenceTransformer(str(folder), device="cpu")
    with pytest.raises(ModelLoadError, match=MESSAGE):
        EncoderModel.load(ModelSettings(model=str(folder), device="cpu"))


def test_serve_exits_2_saying_why(build_tiny_model: Any, tmp_path: Path) -> None:
    folder = build_tiny_model(prompts={"query": "query: "}, default_prompt_name="classification")
    argv = ["serve", "--model", str(folder), "--device", "cpu", "--data-dir", str(tmp_path)]
    # A process with a deadline: a server that starts anyway serves until killed.
    done = subprocess.run(
        [sys.executable, "-m", "embedserve.server.cli", *argv, "--port", "0", "--http-port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 2
    assert "not found in the configured prompts dictionary" in done.stderr


def test_a_default_of_query_without_a_query_prompt_is_served_without_one(
    start_server: Any, build_tiny_model: Any
) -> None:
    from sentence_transformers import SentenceTransformer

    folder = build_tiny_model(prompts={"document": "passage: "}, default_prompt_name="query")
    want = np.asarray(SentenceTransformer(str(folder), device="cpu").encode(TEXTS))
    server = start_server(model=str(folder))
    with EmbedClient(server.target) as client:
        got = client.embed(TEXTS)
    assert np.abs(got - want).max() < 1e-5
