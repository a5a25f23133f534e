"""bfloat16 on a CPU: the dtype ``auto`` picks where the cores have AMX, against float32."""

from __future__ import annotations

import numpy as np
import torch
from labelled_corpus import QUERIES, documents, embed_local, normalised, precision_at_10

from embedserve.client import EmbedClient
from embedserve.server.model import EncoderModel, cpu_has_bf16_matrix_units, pick_dtype
from embedserve.server.model_settings import ModelSettings

CPU = torch.device("cpu")


def test_bfloat16_vectors_match_float32_and_keep_retrieval_quality(
    start_server, minilm_model
) -> None:
    server = start_server(dtype="bfloat16", device="cpu")
    texts = [str(d["text"]) for d in documents()]
    queries = [q for q, _ in QUERIES]
    with EmbedClient(server.target) as client:
        assert client.model_info().dtype == "bfloat16"
        bf16_docs = normalised(client.embed(texts, task="document"))
        bf16_queries = normalised(client.embed(queries, task="query"))
    fp32_docs = normalised(np.stack(embed_local(minilm_model, texts)))
    fp32_queries = normalised(np.stack(embed_local(minilm_model, queries)))

    cosines = np.concatenate(
        [(bf16_docs * fp32_docs).sum(axis=1), (bf16_queries * fp32_queries).sum(axis=1)]
    )
    assert cosines.min() >= 0.99  # the bound int8 is held to; bfloat16 measured 0.9998
    assert cosines.min() < 0.999999  # it really ran in bfloat16: vectors moved a little
    fp32 = precision_at_10(fp32_docs, fp32_queries)
    assert precision_at_10(bf16_docs, bf16_queries) >= fp32 - 0.01


def test_auto_picks_bfloat16_on_a_cpu_only_with_amx_and_torch() -> None:
    with open("/proc/cpuinfo") as cpuinfo:
        flags = next(line for line in cpuinfo if line.startswith("flags")).split()
    fast = cpu_has_bf16_matrix_units()
    assert fast <= ("amx_bf16" in flags)  # never claimed without the hardware
    assert pick_dtype("auto", CPU) == (torch.bfloat16 if fast else torch.float32)
    # The other CPU backends run in float32 only.
    for backend in ("torch-int8", "onnx", "onnx-int8"):
        assert pick_dtype("auto", CPU, backend) == torch.float32
    assert pick_dtype("float32", CPU) == torch.float32
    assert pick_dtype("bfloat16", CPU, "torch") == torch.bfloat16


def test_the_default_server_reports_the_dtype_it_runs(start_server, minilm_path) -> None:
    server = start_server(model=str(minilm_path), device="cpu", dtype="auto")
    expected = "bfloat16" if cpu_has_bf16_matrix_units() else "float32"
    with EmbedClient(server.target) as client:
        assert client.model_info().dtype == expected
        vector = np.asarray(client.embed(["a short sentence about cooking"])[0])
    assert vector.dtype == np.float32 and np.isfinite(vector).all()
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-3


def batch_drift(model: EncoderModel, texts: list[str]) -> tuple[float, float]:
    """How far each text's vector moves between being embedded alone and in batches of
    2 to 32 other texts: the largest component difference and the lowest cosine."""
    alone = normalised(np.stack([embed_local(model, [text])[0] for text in texts]))
    worst, lowest = 0.0, 1.0
    for size in (2, 5, 12, 32):
        order = np.random.default_rng(size).permutation(len(texts))
        for start in range(0, len(texts), size):
            part = order[start : start + size]
            batched = normalised(np.stack(embed_local(model, [texts[i] for i in part])))
            worst = max(worst, float(np.abs(batched - alone[part]).max()))
            lowest = min(lowest, float((batched * alone[part]).sum(axis=1).min()))
    return worst, lowest


def test_a_texts_vector_moves_with_its_batch_only_by_rounding(minilm_model, minilm_path) -> None:
    # Matrix kernels round differently with the batch's shape, so the same text in
    # another batch gets a vector that differs in its last bits: in float32 by about
    # 1e-7, in bfloat16 by up to about 2e-3 (README, "Same text, another batch").
    texts = [str(d["text"]) for d in documents(per_topic=8)] + [q for q, _ in QUERIES[:8]]
    worst, lowest = batch_drift(minilm_model, texts)
    assert worst <= 1e-6 and lowest >= 0.999999
    bf16 = EncoderModel.load(ModelSettings(model=str(minilm_path), device="cpu", dtype="bfloat16"))
    worst, lowest = batch_drift(bf16, texts)
    assert worst <= 5e-3 and lowest >= 0.9998
