"""A damaged file of the embedded store is an error to mend, not an outage to retry: a
search that reads a truncated vector file answers INTERNAL (HTTP 500), naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from embedserve.client import EmbedClient


def test_a_truncated_vector_file_is_internal_not_unavailable(
    start_http_server: Any, minilm_model: Any, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    writer = start_http_server(loaded=minilm_model, data_dir=str(data))
    vectors = np.random.default_rng(3).standard_normal((50, 8)).astype(np.float32)
    with EmbedClient(writer.target) as client:
        client.create_collection("notes", dimensions=8)
        client.upsert("notes", [{"id": str(i), "vector": v} for i, v in enumerate(vectors)])
    writer.run(writer.server.stop(0))
    (chunk,) = data.glob("collections/notes/**/vector_storage/vectors/chunk_0.mmap")
    chunk.write_bytes(b"")  # cut to nothing, as a failed copy or restore leaves it
    reader = start_http_server(loaded=minilm_model, data_dir=str(data))
    with EmbedClient(reader.target) as client:
        assert client.count("notes") == 50  # what does not read the vectors still works
        with pytest.raises(grpc.RpcError) as error:
            client.search("notes", vector=vectors[0], limit=3, exact=True)
    assert error.value.code() == grpc.StatusCode.INTERNAL
    assert "not readable" in error.value.details()
    folder = data / "collections" / "notes"
    assert f"collection 'notes' (folder '{folder}')" in error.value.details()
    assert "retrying will not help" in error.value.details()
    body = {"vector": vectors[0].tolist(), "params": {"limit": 3, "exact": True}}
    answer = httpx.post(f"{reader.url}/api/v1/collections/notes/search", json=body, timeout=60)
    assert answer.status_code == 500
    assert "retrying will not help" in answer.text
