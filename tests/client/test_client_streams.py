"""The clients' ordered streams: bounded reading of the caller's iterable, answers in
order (a server answering out of order is faked: a real one cannot be made to)."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent import futures

import grpc
import pytest

from embedserve.client import AsyncEmbedClient, EmbedClient
from embedserve.v1 import embedding_pb2 as pb
from embedserve.v1 import embedding_pb2_grpc as pb_grpc

IN_FLIGHT = 2
TAKEN = 12


class Counted:
    """An endless iterable of texts that counts how many were taken."""

    def __init__(self) -> None:
        self.taken = 0

    def __iter__(self) -> Iterator[str]:
        for n in itertools.count():
            self.taken += 1
            yield f"text {n}"


def test_blocking_stream_reads_only_as_fast_as_answers_come(minilm_server) -> None:
    texts = Counted()
    with EmbedClient(minilm_server.target) as client:
        stream = client.embed_iter(texts, batch_size=1, max_in_flight=IN_FLIGHT)
        for answered, _ in enumerate(stream, 1):
            # answered + in flight + the one batch waiting for a slot
            assert texts.taken <= answered + IN_FLIGHT + 1
            if answered == TAKEN:
                break
        stream.close()
    assert texts.taken <= TAKEN + IN_FLIGHT + 1


def test_async_stream_reads_only_as_fast_as_answers_come(minilm_server) -> None:
    texts = Counted()

    async def run() -> None:
        async with AsyncEmbedClient(minilm_server.target) as client:
            answered = 0
            stream = client.embed_iter(texts, batch_size=1, max_in_flight=IN_FLIGHT)
            async for _ in stream:
                answered += 1
                assert texts.taken <= answered + IN_FLIGHT + 1
                if answered == TAKEN:
                    break
            await stream.aclose()  # type: ignore[attr-defined]

    asyncio.run(run())
    assert texts.taken <= TAKEN + IN_FLIGHT + 1


class SkipsAnId(pb_grpc.EmbeddingServiceServicer):
    """Answers the first request with the id of the second."""

    def EmbedStream(self, request_iterator, context):
        for request in request_iterator:
            yield pb.EmbedStreamResponse(request_id=str(int(request.request_id) + 1))


@pytest.fixture
def skipping_server() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_EmbeddingServiceServicer_to_server(SkipsAnId(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0)


def test_an_answer_out_of_order_ends_both_clients_streams(skipping_server: str) -> None:
    message = "stream out of order: got request_id '1', expected '0'"
    with EmbedClient(skipping_server) as client, pytest.raises(RuntimeError, match=message):
        list(client.embed_iter(["a", "b", "c"], batch_size=1))

    async def run() -> None:
        async with AsyncEmbedClient(skipping_server) as client:
            async for _ in client.embed_iter(["a", "b", "c"], batch_size=1):
                pass

    with pytest.raises(RuntimeError, match=message):
        asyncio.run(run())


class ReaderFailed(Exception):
    """What the caller's own iterable raises part-way."""


def texts_then_failure(count: int) -> Iterator[str]:
    for n in range(count):
        yield f"text {n}"
    raise ReaderFailed(f"read {count} texts, then the source failed")


def test_blocking_stream_answers_what_was_sent_then_raises_the_callers_error(
    minilm_server,
) -> None:
    answered: list[object] = []
    with (
        EmbedClient(minilm_server.target) as client,
        pytest.raises(ReaderFailed, match="read 5 texts"),
    ):
        answered.extend(client.embed_iter(texts_then_failure(5), batch_size=2))
    assert len(answered) == 5  # every text sent before the failure came back


def test_async_stream_answers_what_was_sent_then_raises_the_callers_error(minilm_server) -> None:
    async def texts() -> AsyncIterator[str]:
        for text in texts_then_failure(3):
            yield text

    async def run() -> int:
        answered = 0
        async with AsyncEmbedClient(minilm_server.target) as client:
            # grpc.aio alone ends such a call as cancelled (asyncio.CancelledError)
            with pytest.raises(ReaderFailed, match="read 3 texts"):
                async for _ in client.embed_iter(texts(), batch_size=1):
                    answered += 1
        return answered

    assert asyncio.run(run()) == 3


def test_a_text_that_is_not_a_string_is_named_by_its_position(minilm_server) -> None:
    with EmbedClient(minilm_server.target) as client:
        with pytest.raises(TypeError, match="text 1 is NoneType"):
            client.embed(["fine", None])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="text 5 is int"):
            list(client.embed_iter(["a", "b", "c", "d", "e", 7], batch_size=2))  # type: ignore[list-item]


def test_a_text_that_is_no_text_is_named_by_its_position(minilm_server) -> None:
    """A lone surrogate was protobuf's "'utf-8' codec can't encode character '\\ud800' in
    position 1", which names neither the text nor where it is in the list."""
    with EmbedClient(minilm_server.target) as client:
        with pytest.raises(ValueError, match=r"text 1 holds \\ud800 at character 2, half of"):
            client.embed(["café", "a\ud800"])
        with pytest.raises(ValueError, match=r"text 0 holds \\udc00"):
            client.embed("x\udc00")
        with pytest.raises(ValueError, match=r"text 3 holds \\ud83d"):
            list(client.embed_iter(["a", "b", "c", "\ud83d"], batch_size=2))
        assert client.embed(["café"]).shape == (1, 384)


LONG = 270  # the one text past the model's limit, in the fourth request of 64
TEXTS_ONE_LONG = [("word " * 2000 if n == LONG else f"short text {n}") for n in range(300)]


def test_a_refused_text_is_named_by_its_place_in_the_callers_list(minilm_server) -> None:
    """The server names a text by its place in the request (or stream message) that
    carried it: text 270 of a list cut into requests of 64 was "inputs[14]"."""
    refused = r"^inputs\[270\] has \d+ tokens"
    in_stream = r"^request_id '4': inputs\[270\] has \d+ tokens"

    def code_and_details(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.RpcError) as info:
            call()
        return info.value.code(), info.value.details()

    with EmbedClient(minilm_server.target) as client:
        for call in (
            lambda: client.embed(TEXTS_ONE_LONG, batch_size=64, overflow="error"),
            lambda: client.embed_quantized(TEXTS_ONE_LONG, "int8", overflow="error"),
            lambda: list(client.embed_iter(TEXTS_ONE_LONG, batch_size=64, overflow="error")),
        ):
            code, details = code_and_details(call)
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert re.match(refused, details) or re.match(in_stream, details), details
        assert client.embed(TEXTS_ONE_LONG[:LONG]).shape == (LONG, 384)  # the others are fine

    async def run() -> list[tuple[grpc.StatusCode, str]]:
        got = []
        async with AsyncEmbedClient(minilm_server.target) as client:
            for make in (
                lambda: client.embed(TEXTS_ONE_LONG, batch_size=64, overflow="error"),
                lambda: consume(client.embed_iter(TEXTS_ONE_LONG, batch_size=64, overflow="error")),
            ):
                try:
                    await make()
                except grpc.RpcError as exc:
                    got.append((exc.code(), exc.details()))
        return got

    answers = asyncio.run(run())
    assert [code for code, _ in answers] == [grpc.StatusCode.INVALID_ARGUMENT] * 2
    assert re.match(refused, answers[0][1]), answers[0][1]
    assert re.match(in_stream, answers[1][1]), answers[1][1]


def test_a_refused_document_of_an_ingestion_is_named_by_its_place_in_the_stream(
    minilm_server,
) -> None:
    """As above, for ingest_iter: document 270 was "batch_id '4': documents[14]"."""
    documents = [{"id": f"d{n}", "text": text} for n, text in enumerate(TEXTS_ONE_LONG)]
    documents[LONG]["id"] = "d270#1"  # an id of a passage's form: refused with split
    with EmbedClient(minilm_server.target) as client:
        client.create_collection("named")
        with pytest.raises(grpc.RpcError) as refused:
            list(client.ingest_iter("named", documents, batch_size=64, split=True))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("batch_id '4': documents[270].id 'd270#1' ends in")


async def consume(outputs: AsyncIterator[object]) -> None:
    async for _ in outputs:
        pass
