"""The ONNX Runtime backends against float32 torch MiniLM: equal vectors (onnx), vectors
within the int8 bound (onnx-int8), the export cache, refusals, and a server on onnx-int8."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from labelled_corpus import QUERIES, documents, normalised
from labelled_corpus import precision_at_10 as labelled_precision

from embedserve.client import EmbedClient
from embedserve.server.backends import apply_backend
from embedserve.server.errors import ModelLoadError
from embedserve.server.model import EncoderModel
from embedserve.server.model_settings import ModelSettings
from embedserve.server.onnx_backend import OnnxEncoder
from embedserve.server.tokenization import Overflow
from embedserve.server.windows import Window

pytest.importorskip("onnxruntime")

# The quality bound. Measured on MiniLM in batches of 16 to 64: lowest cosine 0.995 on the
# labelled corpus, 0.992 on 60 mixed-length texts of 5 to 300 tokens (docs/benchmarks.md).
INT8_MIN_COSINE = 0.99


def embed(model: EncoderModel, texts: list[str], batch: int = 16) -> np.ndarray:
    """Mean-pooled unit vectors, in batches of mixed lengths (shapes the export never saw)."""
    encoded = model.tokenizer.encode(texts, "", Overflow.TRUNCATE_RIGHT)
    windows = [Window(t.windows[0], t.pool_start) for t in encoded]
    out: list[np.ndarray] = []
    for start in range(0, len(windows), batch):
        out.extend(model.compute(windows[start : start + batch]))
    return normalised(np.stack(out))


def texts() -> list[str]:
    """The labelled corpus's documents and queries, and long texts (up to 256 tokens)."""
    docs = [str(d["text"]) for d in documents()]
    long = [" ".join(docs[i : i + n]) for i, n in ((0, 5), (40, 12), (90, 20), (150, 30))]
    return docs + [q for q, _ in QUERIES] + long


def entries(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "onnx").iterdir())


def load(backend: str, cache: Path, **settings: Any) -> EncoderModel:
    return EncoderModel.load(
        ModelSettings(
            model="minilm", device="cpu", backend=backend, cache_dir=str(cache), **settings
        )
    )


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def onnx_int8(cache: Path) -> EncoderModel:
    return load("onnx-int8", cache)  # exports float32 first, then quantizes it


@pytest.fixture(scope="module")
def onnx_float(cache: Path, onnx_int8: EncoderModel) -> EncoderModel:
    return load("onnx", cache)  # the float32 export onnx-int8 made


@pytest.fixture(scope="module")
def fp32_vectors(minilm_model: EncoderModel) -> np.ndarray:
    return embed(minilm_model, texts())


def test_onnx_float32_vectors_equal_torch(onnx_float: EncoderModel, fp32_vectors) -> None:
    assert isinstance(onnx_float._model, OnnxEncoder)
    # Its threads sleep between runs instead of spinning on the cores the server needs.
    options = onnx_float._model.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    cosines = (embed(onnx_float, texts()) * fp32_vectors).sum(axis=1)
    assert cosines.min() >= 0.9999


def test_onnx_int8_stays_within_the_quality_bound(onnx_int8: EncoderModel, fp32_vectors) -> None:
    import onnx

    graph = onnx.load(str(onnx_int8._model.path)).graph
    assert any(node.op_type in {"MatMulInteger", "DynamicQuantizeMatMul"} for node in graph.node)
    int8_vectors = embed(onnx_int8, texts())
    cosines = (int8_vectors * fp32_vectors).sum(axis=1)
    assert cosines.min() >= INT8_MIN_COSINE
    assert cosines.min() < 0.99999  # the weights really are int8: vectors moved a little
    assert precision_at_10(int8_vectors) >= precision_at_10(fp32_vectors) - 0.01


def precision_at_10(vectors: np.ndarray) -> float:
    """The labelled queries' precision@10 over ``texts()``'s vectors (documents first)."""
    docs = len(documents())
    return labelled_precision(vectors[:docs], vectors[docs : docs + len(QUERIES)])


def test_a_second_load_reuses_the_cache(
    cache: Path, onnx_int8: EncoderModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = onnx_int8._model.path
    built = path.stat().st_mtime_ns
    assert len(entries(cache)) == 2  # float32 and int8; no staging folder left behind

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    monkeypatch.setattr("onnxruntime.quantization.quantize_dynamic", refuse)
    again = load("onnx-int8", cache)
    assert again._model.path == path
    assert path.stat().st_mtime_ns == built
    assert len(entries(cache)) == 2


def test_a_failed_build_leaves_no_entry(
    cache: Path, onnx_int8: EncoderModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "cache"
    # The float32 entry is copied over: only the int8 step runs here.
    for entry in (cache / "onnx").iterdir():
        if "-onnx-int8-" not in entry.name:
            shutil.copytree(entry, own / "onnx" / entry.name)

    def half_written(source: Path, path: Path) -> None:
        path.write_bytes(b"\x08\x07")  # the start of a protobuf, then the process "dies"
        raise OSError("disk full")

    monkeypatch.setattr("embedserve.server.onnx_backend.quantize_int8", half_written)
    with pytest.raises(ModelLoadError, match=r"onnx-int8.*disk full"):
        load("onnx-int8", own)
    assert len(entries(own)) == 1  # the float32 one: neither the half file nor its folder
    monkeypatch.undo()
    assert load("onnx-int8", own)._model.path.stat().st_size > 1_000_000
    assert len(entries(own)) == 2


def test_onnx_backends_refuse_other_devices_and_dtypes(minilm_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="backend 'onnx-int8' runs on a CPU in float32"):
        EncoderModel.load(
            ModelSettings(
                model=str(minilm_path), device="cpu", dtype="bfloat16", backend="onnx-int8"
            )
        )
    with pytest.raises(ModelLoadError, match="backend 'onnx' runs on a CPU in float32; got cuda"):
        apply_backend(None, "onnx", torch.device("cuda"), torch.float32, minilm_path, "", None)


def test_a_missing_extra_names_it(
    minilm_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed
    with pytest.raises(ModelLoadError, match=r"pip install 'embedserve\[onnx\]'"):
        load("onnx", tmp_path)


def test_server_serves_onnx_int8_over_grpc(
    start_server, cache: Path, onnx_int8: EncoderModel, minilm_model: EncoderModel
) -> None:
    server = start_server(backend="onnx-int8", cache_dir=str(cache))
    sample = texts()[::7]
    with EmbedClient(server.target) as client:
        served = normalised(client.embed(sample, task="document"))
    cosines = (served * embed(minilm_model, sample)).sum(axis=1)
    assert cosines.min() >= INT8_MIN_COSINE
    assert len(entries(cache)) == 2  # the server loaded from the cache


def test_modernbert_runs_its_reference_forward_on_onnx(
    tiny_modernbert_path: Path, tmp_path: Path
) -> None:
    def tiny(**settings: Any) -> EncoderModel:
        return EncoderModel.load(
            ModelSettings(model=str(tiny_modernbert_path), device="cpu", **settings)
        )

    # Past the tiny model's 16-token local window, in one padded batch of mixed lengths.
    sample = ["short", "a few more words here", " ".join(f"word{i} token" for i in range(60))]
    onnx_model = tiny(backend="onnx", cache_dir=str(tmp_path))
    assert isinstance(onnx_model._model, OnnxEncoder)
    reference = embed(tiny(modernbert_path="reference"), sample)
    assert (embed(onnx_model, sample) * reference).sum(axis=1).min() >= 0.9999
    # Refused before the export (minutes for a large model), not after it.
    untouched = tmp_path / "untouched"
    with pytest.raises(ModelLoadError, match="modernbert_path 'fast' runs on the torch backends"):
        tiny(backend="onnx", modernbert_path="fast", cache_dir=str(untouched))
    with pytest.raises(ModelLoadError, match="torch_compile runs the torch backend only"):
        tiny(backend="onnx", torch_compile=True, cache_dir=str(untouched))
    assert not untouched.exists() or not any(untouched.iterdir())
