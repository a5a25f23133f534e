"""An NDJSON body's lines, however its bytes arrive: split at every byte, a byte order mark
split across the first chunks, CRLF ends, blank lines; each line held to max_message_bytes.

The unfinished line is kept as its pieces (it was re-joined and re-split with every chunk:
a 60 MB line took seconds on the event loop), so its ends are checked at every split."""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any, TypeVar

import pytest

from embedserve.server.errors import InvalidArgument
from embedserve.server.http.ndjson import lines_of

BOM = codecs.BOM_UTF8
T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never waits (its chunks are all there): a few thousand runs,
    without an event loop's start and stop each."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("the lines waited for something")


async def _arriving(chunks: Sequence[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
    yield b""  # as Starlette's request.stream() ends


def _lines(chunks: Sequence[bytes], limit: int = 1000) -> list[tuple[int, bytes]]:
    async def collect() -> list[tuple[int, bytes]]:
        return [line async for line in lines_of(_arriving(chunks), limit)]

    return _run(collect())


def _splits(body: bytes) -> list[list[bytes]]:
    """The body whole, in single bytes, and cut in two and in three at every place."""
    ways = [[body], [body[i : i + 1] for i in range(len(body))]]
    for i in range(len(body) + 1):
        ways.append([body[:i], body[i:]])
        ways.extend([body[:i], body[i:j], body[j:]] for j in range(i, len(body) + 1))
    return ways


BODY = b'{"a": 1}\r\n\n  \n{"b": "two"}\n{"c": [3]}'
EXPECTED = [(1, b'{"a": 1}\r'), (4, b'{"b": "two"}'), (5, b'{"c": [3]}')]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (BODY, EXPECTED),
        (BOM + BODY, EXPECTED),  # dropped, however the mark's three bytes arrive
        (BODY + b"\n", EXPECTED),
        (b"\n" + BOM + b"x\n", [(2, BOM + b"x")]),  # only the body's first bytes: kept
        (BOM, []),
        (BOM[:2], [(1, BOM[:2])]),  # not a whole mark: a line (a JSON error, later)
        (b"", []),
        (b"\n\n", []),
    ],
)
def test_lines_are_the_same_however_the_body_is_split(
    body: bytes, expected: list[tuple[int, bytes]]
) -> None:
    for chunks in _splits(body):
        assert _lines(chunks) == expected, chunks


def test_a_line_over_the_limit_is_refused_at_every_split() -> None:
    """Exactly at the limit a line passes; one byte over, it is refused naming its line,
    after the lines before it, whether its end has arrived yet or not."""
    fits, over = b"x" * 10, b"y" * 11
    for chunks in _splits(b"a\n" + fits + b"\n" + fits):
        assert _lines(chunks, limit=10) == [(1, b"a"), (2, fits), (3, fits)], chunks
    for body in (b"a\n" + over + b"\nb\n", b"a\n" + over):
        for chunks in _splits(body):
            seen: list[tuple[int, bytes]] = []
            with pytest.raises(InvalidArgument, match=r"^line 2 is over 10 bytes"):
                _run(_collect_into(seen, chunks, 10))
            assert seen == [(1, b"a")], chunks


async def _collect_into(seen: list[tuple[int, bytes]], chunks: list[bytes], limit: int) -> None:
    async for line in lines_of(_arriving(chunks), limit):
        seen.append(line)


def test_a_long_line_in_many_chunks_comes_whole() -> None:
    line = bytes(range(32, 127)) * 700  # 66,500 bytes, in 1,000 chunks of at most 67
    chunks = [line[i : i + 67] for i in range(0, len(line), 67)]
    assert _lines([*chunks[:-1], chunks[-1] + b"\n", b"next"], limit=len(line)) == [
        (1, line),
        (2, b"next"),
    ]
    with pytest.raises(InvalidArgument, match="line 1 is over"):
        _lines(chunks, limit=len(line) - 1)
