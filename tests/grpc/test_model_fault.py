"""A model forward pass that raises (as out of memory would) fails only its own batch.

An out-of-memory error cannot be produced on demand on a CPU, so this one fault is
injected: the real model, with ``compute`` wrapped to raise once for a batch holding the
poison text. Everything else is real: server, batcher, gRPC on a loopback port.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from transformers import AutoTokenizer

from embedserve.server.windows import Window
from embedserve.v1 import embedding_pb2 as epb
from embedserve.v1 import embedding_pb2_grpc as epb_grpc

POISON = "poison pill"


class FailOnce:
    """Wraps compute: the first batch containing the poison text raises."""

    def __init__(self, compute: Callable[[Sequence[Window]], Any], tokenizer: Any) -> None:
        self._compute = compute
        self._tokenizer = tokenizer
        self._lock = threading.Lock()
        self.failed_batch: list[str] | None = None

    def __call__(self, windows: Sequence[Window]) -> Any:
        texts = [self._tokenizer.decode(w.ids, skip_special_tokens=True) for w in windows]
        with self._lock:
            if self.failed_batch is None and POISON in texts:
                self.failed_batch = texts
                raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self._compute(windows)


def test_a_failing_forward_pass_fails_only_its_batch(
    start_server: Callable[..., Any],
    minilm_model: Any,
    minilm_path: Path,
    sentence_transformer: Any,
) -> None:
    model = copy.copy(minilm_model)  # the session's model stays untouched
    fault = FailOnce(minilm_model.compute, AutoTokenizer.from_pretrained(minilm_path))
    model.compute = fault
    # A longer wait for company makes the poison share its batch; batches of at most 8
    # leave the other 24 requests to other batches.
    server = start_server(loaded=model, max_wait_ms=50, max_batch_size=8)
    texts = [POISON] + [f"sentence number {i} about the weather" for i in range(31)]

    def embed_one(text: str) -> tuple[str, Any]:
        stub = epb_grpc.EmbeddingServiceStub(channel)
        try:
            response = stub.Embed(epb.EmbedRequest(inputs=[text]), timeout=60)
        except grpc.RpcError as exc:
            return text, exc
        return text, np.array(response.embeddings[0].values, dtype=np.float32)

    with grpc.insecure_channel(server.target) as channel:
        with ThreadPoolExecutor(len(texts)) as pool:
            outcomes = dict(pool.map(embed_one, texts))
        assert fault.failed_batch is not None
        failed = {t for t, o in outcomes.items() if isinstance(o, grpc.RpcError)}
        assert failed == set(fault.failed_batch)  # exactly that batch's requests
        for text in failed:
            error = outcomes[text]
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert "out of memory" in error.details()
        succeeded = [t for t in texts if t not in failed]
        assert succeeded  # the others were served, in other batches
        expected = sentence_transformer.encode(succeeded, normalize_embeddings=True)
        for text, vector in zip(succeeded, expected, strict=True):
            assert float(np.dot(outcomes[text], vector)) > 0.9999
        # The server keeps serving, the poison included, now that the fault has passed.
        _, again = embed_one(POISON)
        assert isinstance(again, np.ndarray)
        reference = sentence_transformer.encode(POISON, normalize_embeddings=True)
        assert float(np.dot(again, reference)) > 0.9999
