"""Batching across clients, health and reflection, and what bad input gets back."""

from __future__ import annotations

import threading

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from embedserve.client import EmbedClient
from embedserve.v1 import embedding_pb2 as pb
from embedserve.v1 import embedding_pb2_grpc as pb_grpc


def test_64_concurrent_clients_share_batches(minilm_server, sentence_transformer) -> None:
    texts = [f"client number {i} asks about topic {i * 7 % 13}" for i in range(64)]
    reference = sentence_transformer.encode(texts, normalize_embeddings=True)
    results: dict[int, np.ndarray] = {}
    barrier = threading.Barrier(64)
    registry = minilm_server.server.metrics.registry

    def batch_counts() -> tuple[float, float, float]:
        """(batches, sequences, batches of one) so far; warm-up has run some already."""
        return (
            registry.get_sample_value("embedserve_batch_size_count"),
            registry.get_sample_value("embedserve_batch_size_sum"),
            registry.get_sample_value("embedserve_batch_size_bucket", {"le": "1.0"}),
        )

    before = batch_counts()

    def one(index: int) -> None:
        with EmbedClient(minilm_server.target) as client:
            client.health()  # connect first, so all 64 requests leave together
            barrier.wait()
            results[index] = client.embed(texts[index])[0]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(results) == list(range(64))
    for index in range(64):
        assert float(results[index] @ reference[index]) >= 0.99999
    batches, sequences, singles = (a - b for a, b in zip(batch_counts(), before, strict=True))
    assert sequences == 64  # each client's text computed once
    assert batches - singles >= 1, "no batch held more than one client's text"
    assert sequences / batches > 1.5


def test_health_is_not_serving_until_warm_then_serving(start_server) -> None:
    running = start_server(wait=False)  # loads the packaged MiniLM by name
    with grpc.insecure_channel(running.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        first = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert first.status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as early:
            pb_grpc.EmbeddingServiceStub(channel).Embed(pb.EmbedRequest(inputs=["x"]), timeout=5)
        assert early.value.code() == grpc.StatusCode.UNAVAILABLE
        running.wait_ready()
        for service in ("", "embedserve.v1.EmbeddingService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_services_and_describes_methods(minilm_server) -> None:
    with grpc.insecure_channel(minilm_server.target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {"embedserve.v1.EmbeddingService", "grpc.health.v1.Health"} <= services
        file = database.FindFileContainingSymbol("embedserve.v1.EmbeddingService")
        methods = {m.name for m in file.service[0].method}
    assert {
        "Embed",
        "EmbedStream",
        "EmbedTokens",
        "Tokenize",
        "Similarity",
        "GetModelInfo",
    } <= methods


BAD_REQUESTS = [
    (pb.EmbedRequest(), "inputs must not be empty"),
    (pb.EmbedRequest(inputs=["ok", ""]), "inputs[1] is empty"),
    (pb.EmbedRequest(inputs=["x"], options=pb.EmbedOptions(dimensions=0)), "options.dimensions"),
    (pb.EmbedRequest(inputs=["x"], options=pb.EmbedOptions(dimensions=385)), "options.dimensions"),
    (pb.EmbedRequest(inputs=["x"], options=pb.EmbedOptions(task=42)), "options.task"),  # type: ignore[arg-type]
    (pb.EmbedRequest(inputs=["x"], options=pb.EmbedOptions(pooling=9)), "options.pooling"),  # type: ignore[arg-type]
    (pb.EmbedRequest(inputs=["x"], options=pb.EmbedOptions(overflow=-1)), "options.overflow"),  # type: ignore[arg-type]
    (pb.EmbedRequest(inputs=["x" * 5001]), "inputs[0] has 5001 characters"),
    (pb.EmbedRequest(inputs=["y"] * 65), "inputs has 65 items"),
    (pb.EmbedRequest(inputs=["z" * 4000] * 5), "max_message_bytes"),
    (
        pb.EmbedRequest(
            inputs=["word " * 400], options=pb.EmbedOptions(overflow=pb.OVERFLOW_POLICY_ERROR)
        ),
        "inputs[0] has 402 tokens, more than the model's maximum of 256",
    ),
]


@pytest.fixture
def strict_server(start_server, minilm_model):
    return start_server(
        loaded=minilm_model,
        max_input_chars=5000,
        max_inputs_per_request=64,
        max_message_bytes=16000,
    )


@pytest.mark.parametrize(("request_message", "named"), BAD_REQUESTS)
def test_bad_input_is_invalid_argument_naming_the_field(
    strict_server, request_message, named
) -> None:
    with grpc.insecure_channel(strict_server.target) as channel:
        stub = pb_grpc.EmbeddingServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.Embed(request_message, timeout=30)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert named in error.value.details()
        assert stub.Embed(pb.EmbedRequest(inputs=["still fine"]), timeout=30).dimensions == 384
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_the_server_starts_under_the_smallest_limits_its_settings_allow(
    start_server, minilm_model, tiny_reranker_path
) -> None:
    """The warm-ups of the model and the reranker went through the callers' limits: one
    input per request, a few characters or a queue of one stopped the server at start."""
    server = start_server(
        loaded=minilm_model,
        reranker=str(tiny_reranker_path),
        max_inputs_per_request=1,
        max_input_chars=8,
        max_queue_items=1,
    )
    with EmbedClient(server.target) as client:
        assert client.embed(["hello"]).shape == (1, 384)
        assert len(client.rerank("cats", ["a cat"])) == 1
        with pytest.raises(grpc.RpcError) as refused:
            client.embed(["hello", "world"])
    assert "(max_inputs_per_request)" in (refused.value.details() or "")


def test_similarity_takes_as_many_pairs_as_a_request_takes_texts(strict_server) -> None:
    """Each side of the pairs is a request's inputs: 64 pairs pass where 64 texts do (both
    sides counted together, 33 were refused as 66 items)."""
    pairs = [(f"first {i}", f"second {i}") for i in range(64)]
    with EmbedClient(strict_server.target) as client:
        scores = client.similarity(pairs=pairs)
        assert len(scores) == 64
        alone = client.similarity(pairs=pairs[5:6])
        assert abs(scores[5] - alone[0]) < 1e-4
        with pytest.raises(grpc.RpcError) as refused:
            client.similarity(pairs=[*pairs, ("a", "b")])
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "pairs.pairs has 65 items; the limit is 64" in (refused.value.details() or "")


def test_recommendations_take_as_many_examples_as_a_request_takes_texts(strict_server) -> None:
    """Examples by id were not counted: 50,000 (each a scan in the store) held every
    caller of the store for seconds."""
    with EmbedClient(strict_server.target) as client:
        client.create_collection("few")
        client.upsert("few", [{"id": "d1", "text": "a rocket"}, {"id": "d2", "text": "bread"}])
        hits = client.recommend("few", positive=["d1"] * 40, negative=["d2"] * 24)
        assert [hit.id for hit in hits] == []  # both are examples, left out of the hits
        with pytest.raises(grpc.RpcError) as refused:
            client.recommend("few", positive=["d1"] * 40, negative=["d2"] * 25)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "") == (
        "positive and negative hold 65 examples; the limit is 64 per request "
        "(max_inputs_per_request)"
    )


def test_texts_gathered_from_several_fields_are_named_where_the_request_put_them(
    minilm_server,
) -> None:
    """Upserts, recommendations and similarity pairs embed their texts in one call; an
    error names the document, example or pair side, not the text's place among the texts."""
    long = "word " * 400  # 402 tokens with [CLS] and [SEP]; MiniLM takes 256
    vector = [0.1] * 384
    with EmbedClient(minilm_server.target) as client:
        client.create_collection("named")
        client.upsert("named", [{"id": "v", "vector": vector}])
        cases = [
            (
                lambda: client.upsert(
                    "named",
                    [
                        {"id": "a", "vector": vector},
                        {"id": "b", "text": "ok"},
                        {"id": "c", "text": long},
                    ],
                    overflow="error",
                ),
                "documents[2].text has 402 tokens",
            ),
            (
                lambda: client.upsert(
                    "named", [{"id": "a", "vector": vector}, {"id": "b", "text": ""}]
                ),
                "documents[1].text is empty",
            ),
            (
                lambda: client.recommend(
                    "named",
                    positive=["v", {"text": long}],
                    negative=[{"text": "x"}],
                    overflow="error",
                ),
                "positive[1].text has 402 tokens",
            ),
            (
                lambda: client.recommend(
                    "named", positive=[{"text": "x"}], negative=[{"text": long}], overflow="error"
                ),
                "negative[0].text has 402 tokens",
            ),
            (
                lambda: client.upsert(
                    "named",
                    [{"id": "a", "text": "ok"}, {"id": "b", "vector": [float("nan")] * 384}],
                ),
                "documents[1]: vector values must be finite",
            ),
            (lambda: client.search("named", long, overflow="error"), "text has 402 tokens"),
            (
                lambda: client.similarity(pairs=[("a", "b"), ("c", long)], overflow="error"),
                "pairs.pairs[1].b has 402 tokens",
            ),
            (lambda: client.similarity(pairs=[("a", "b"), ("", "c")]), "pairs.pairs[1].a is empty"),
            (
                lambda: client.similarity(long, ["a"], overflow="error"),
                "query_candidates.query has 402 tokens",
            ),
        ]
        for call, named in cases:
            with pytest.raises(grpc.RpcError) as error:
                call()
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert error.value.details().startswith(named), error.value.details()


def test_bad_stream_message_ends_stream_naming_its_request_id(minilm_server) -> None:
    def requests():
        yield pb.EmbedStreamRequest(request_id="good", inputs=["fine"])
        yield pb.EmbedStreamRequest(request_id="bad-one", inputs=[])

    with grpc.insecure_channel(minilm_server.target) as channel:
        stub = pb_grpc.EmbeddingServiceStub(channel)
        received = []
        with pytest.raises(grpc.RpcError) as error:
            for response in stub.EmbedStream(requests(), timeout=30):
                received.append(response.request_id)
    assert received == ["good"]
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id 'bad-one'" in error.value.details()
    assert "inputs must not be empty" in error.value.details()


def test_similarity_equals_cosine_of_embeddings(minilm_server) -> None:
    with EmbedClient(minilm_server.target) as client:
        candidates = ["a kitten sleeps on the sofa", "the stock market fell", "cats purr"]
        scores = client.similarity("my cat", candidates)
        vectors = client.embed(["my cat", *candidates])
        pair_scores = client.similarity(pairs=[("my cat", c) for c in candidates])
    expected = vectors[1:] @ vectors[0]
    assert np.abs(scores - expected).max() < 1e-5
    assert np.abs(pair_scores - expected).max() < 1e-5
    assert scores[0] > scores[1] and scores[2] > scores[1]


def test_tokenize_and_token_vectors(minilm_server, sentence_transformer) -> None:
    with EmbedClient(minilm_server.target) as client:
        tokenized = client.tokenize(["Hello world", "word " * 300]).results
        tokens = client.embed_tokens(["Hello world"], normalize=False)
        pooled = client.embed(["Hello world"])[0]
    assert list(tokenized[0].tokens) == ["[CLS]", "hello", "world", "[SEP]"]
    assert tokenized[0].token_count == 4 and not tokenized[0].exceeds_max_tokens
    assert tokenized[1].token_count == 302 and tokenized[1].exceeds_max_tokens
    items = tokens.results[0].tokens
    assert [(t.token, t.start, t.end) for t in items] == [
        ("[CLS]", 0, 0),
        ("hello", 0, 5),
        ("world", 6, 11),
        ("[SEP]", 0, 0),
    ]
    mean = np.mean([np.array(t.values) for t in items], axis=0)
    assert float(mean @ pooled / np.linalg.norm(mean)) >= 0.99999


def test_upsert_answers_the_timings_of_its_embedding(minilm_server) -> None:
    """UpsertResponse.timings was declared and never filled."""
    from embedserve.v1 import vector_pb2 as vpb
    from embedserve.v1 import vector_pb2_grpc as vpb_grpc

    with EmbedClient(minilm_server.target) as client:
        client.create_collection("timed")
    with grpc.insecure_channel(minilm_server.target) as channel:
        stub = vpb_grpc.VectorServiceStub(channel)
        texts = [vpb.Document(id=f"t{n}", text=f"text number {n}") for n in range(3)]
        embedded = stub.Upsert(vpb.UpsertRequest(collection="timed", documents=texts))
        vector = vpb.Document(id="v", vector=vpb.Vector(values=[0.1] * 384))
        given = stub.Upsert(vpb.UpsertRequest(collection="timed", documents=[vector]))
    assert embedded.upserted == 3 and embedded.usage.total_tokens > 0
    assert 0 < embedded.timings.inference_ms <= embedded.timings.total_ms
    assert given.HasField("timings") and given.timings.total_ms == 0  # nothing embedded


@pytest.mark.parametrize("name", ["a" * 16_000, "é" * 3_000, "🚀" * 2_000])
def test_a_refusal_quoting_a_long_value_keeps_its_status(minilm_server, name) -> None:
    """The whole name went into the status message, a header: the client refused it past
    8 to 16 KiB and reported RESOURCE_EXHAUSTED (metadata size) in place of the refusal."""
    with EmbedClient(minilm_server.target) as client:
        for _ in range(5):  # the client's soft limit refuses at random
            with pytest.raises(grpc.RpcError) as error:
                client.create_collection(name)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            details = error.value.details() or ""
            assert details.startswith("invalid collection name '"), details[:100]
            assert len(details.encode()) <= 1024 + 60
            assert " characters left out ...] " in details


def _length_delimited(field: int, body: bytes) -> bytes:
    """A protobuf field of ``body`` (a message), by hand: the Python runtime will not build
    a message nested past the depth it reads."""
    size, length = b"", len(body)
    while True:
        size += bytes([(length & 0x7F) | (0x80 if length > 0x7F else 0)])
        length >>= 7
        if not length:
            break
    return bytes([field << 3 | 2]) + size + body


def test_a_message_past_protobufs_depth_is_refused_naming_the_limits(minilm_server) -> None:
    """Go and Java clients send messages as deep as asked; the server's refusal said only
    "Exceeded upb_DecodeOptions_MaxDepth"."""
    from embedserve.v1 import vector_pb2 as vpb

    must = vpb.Filter.DESCRIPTOR.fields_by_name["must"].number
    sub_filter = vpb.Condition.DESCRIPTOR.fields_by_name["filter"].number
    inner = vpb.Filter(must=[vpb.Condition(is_empty=vpb.IsEmpty(key="x"))]).SerializeToString()
    for _ in range(50):
        inner = _length_delimited(must, _length_delimited(sub_filter, inner))
    body = vpb.CountRequest(collection="any").SerializeToString() + _length_delimited(
        vpb.CountRequest.DESCRIPTOR.fields_by_name["filter"].number, inner
    )
    with grpc.insecure_channel(minilm_server.target) as channel:
        count = channel.unary_unary(
            "/embedserve.v1.VectorService/Count",
            request_serializer=bytes,
            response_deserializer=vpb.CountResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as refused:
            count(body, timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").endswith(
        "it nests messages deeper than protobuf reads (100 levels; filters go at most 48 deep "
        "within one another, 32 through nested or min_should; payloads 32 objects or arrays "
        "deep)"
    )
