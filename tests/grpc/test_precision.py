"""Embed in fewer bits: int8, uint8 and the packed sign bits, over gRPC and the client."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from sentence_transformers.util.quantization import quantize_embeddings

from embedserve.client import AsyncEmbedClient, EmbedClient
from embedserve.v1 import embedding_pb2 as pb
from embedserve.v1 import embedding_pb2_grpc as pb_grpc

TEXTS = [
    "the cat sat on the mat",
    "a kitten rests on a rug",
    "quarterly revenue grew by twelve percent",
    "how do I reset my password?",
    "the stock market fell sharply today",
]


def _signed_reference(vectors: np.ndarray) -> np.ndarray:
    """int8 as documented: each vector times 127 over its largest absolute value, rounded."""
    scale = 127.0 / np.abs(vectors).max(axis=1, keepdims=True)
    return np.rint(vectors * scale).astype(np.int8)


def test_int8_scales_each_vector_by_itself_and_keeps_cosine(minilm_server) -> None:
    with EmbedClient(minilm_server.target) as client:
        floats = client.embed(TEXTS)
        signed = client.embed_quantized(TEXTS, "int8")
        unsigned = client.embed_quantized(TEXTS, "uint8")
        alone = client.embed_quantized(TEXTS[2], "int8")
    assert signed.dtype == np.int8 and signed.shape == floats.shape
    np.testing.assert_array_equal(signed, _signed_reference(floats))
    assert (np.abs(signed.astype(int)).max(axis=1) == 127).all()
    # A vector's bytes do not depend on the batch it met.
    np.testing.assert_array_equal(alone[0], signed[2])
    assert unsigned.dtype == np.uint8
    np.testing.assert_array_equal(unsigned.astype(int), signed.astype(int) + 128)
    as_float = signed.astype(np.float32)
    as_float /= np.linalg.norm(as_float, axis=1, keepdims=True)
    exact = floats @ floats.T
    approx = as_float @ as_float.T
    assert np.abs(exact - approx).max() < 0.01
    # The nearest other text of each is the same in both.
    np.fill_diagonal(exact, -2)
    np.fill_diagonal(approx, -2)
    assert (exact.argmax(axis=1) == approx.argmax(axis=1)).all()


@pytest.mark.parametrize("dimensions", [None, 100])
def test_binary_formats_equal_sentence_transformers(minilm_server, dimensions) -> None:
    options = {} if dimensions is None else {"dimensions": dimensions}
    with EmbedClient(minilm_server.target) as client:
        floats = client.embed(TEXTS, **options)
        signed = client.embed_quantized(TEXTS, "binary", **options)
        unsigned = client.embed_quantized(TEXTS, "ubinary", **options)
    width = floats.shape[1]
    assert signed.shape == unsigned.shape == (len(TEXTS), (width + 7) // 8)
    np.testing.assert_array_equal(signed, quantize_embeddings(floats, precision="binary"))
    np.testing.assert_array_equal(unsigned, quantize_embeddings(floats, precision="ubinary"))
    bits = np.unpackbits(unsigned, axis=1)[:, :width]
    np.testing.assert_array_equal(bits, (floats > 0).astype(np.uint8))


def test_raw_rpcs_carry_bytes_and_the_vector_width(minilm_server) -> None:
    with grpc.insecure_channel(minilm_server.target) as channel:
        stub = pb_grpc.EmbeddingServiceStub(channel)
        answer = stub.Embed(
            pb.EmbedRequest(
                inputs=TEXTS[:2],
                options=pb.EmbedOptions(dimensions=64),
                precision=pb.PRECISION_UBINARY,
            )
        )
        assert answer.dimensions == 64
        for embedding in answer.embeddings:
            assert len(embedding.quantized) == 8 and not embedding.values
            assert embedding.token_count > 0
        floats = stub.Embed(pb.EmbedRequest(inputs=TEXTS[:2], precision=pb.PRECISION_FLOAT32))
        assert all(len(e.values) == 384 and not e.quantized for e in floats.embeddings)
        streamed = list(
            stub.EmbedStream(
                iter(
                    [
                        pb.EmbedStreamRequest(
                            request_id=str(i), inputs=[text], precision=pb.PRECISION_INT8
                        )
                        for i, text in enumerate(TEXTS)
                    ]
                )
            )
        )
        direct = stub.Embed(pb.EmbedRequest(inputs=TEXTS, precision=pb.PRECISION_INT8))
        assert [s.embeddings[0].quantized for s in streamed] == [
            e.quantized for e in direct.embeddings
        ]
        with pytest.raises(grpc.RpcError) as refused:
            stub.Embed(pb.EmbedRequest(inputs=TEXTS[:1], precision=9))  # type: ignore[arg-type]
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "precision has the unknown value 9" in (refused.value.details() or "")


def test_client_refuses_an_unknown_precision_before_sending(minilm_server) -> None:
    with EmbedClient(minilm_server.target) as client, pytest.raises(ValueError, match="int8"):
        client.embed_quantized(TEXTS, "int4")  # type: ignore[arg-type]


@pytest.mark.parametrize("precision", ["int8", "ubinary"])
def test_streams_yield_the_rows_embed_quantized_returns(minilm_server, precision) -> None:
    with EmbedClient(minilm_server.target) as client:
        expected = client.embed_quantized(TEXTS, precision, task="query")
        streamed = list(
            client.embed_quantized_iter(
                iter(TEXTS), precision, batch_size=2, max_in_flight=2, task="query"
            )
        )
        floats = list(client.embed_iter(iter(TEXTS), batch_size=2))
    assert [row.dtype for row in streamed] == [expected.dtype] * len(TEXTS)
    np.testing.assert_array_equal(np.stack(streamed), expected)
    assert all(row.dtype == np.float32 and row.shape == (384,) for row in floats)


def test_the_async_stream_yields_quantized_rows(minilm_server) -> None:
    async def run() -> tuple[np.ndarray, list[np.ndarray]]:
        async with AsyncEmbedClient(minilm_server.target) as client:
            expected = await client.embed_quantized(TEXTS, "binary")
            streamed = [row async for row in client.embed_quantized_iter(TEXTS, "binary")]
            with pytest.raises(ValueError, match="int8"):
                client.embed_quantized_iter(TEXTS, "float32")  # type: ignore[arg-type]
        return expected, streamed

    expected, streamed = asyncio.run(run())
    np.testing.assert_array_equal(np.stack(streamed), expected)
