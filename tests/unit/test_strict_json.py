"""The HTTP body decoder's surrogate check, against what json.loads makes of each body."""

from __future__ import annotations

import json

import pytest

from embedserve.server.http.strict_json import loads
from embedserve.server.json_escapes import lone_surrogate_at

HIGH, LOW = "\\ud83d", "\\ude00"


@pytest.mark.parametrize(
    ("text", "lone_at"),
    [
        (f'"{HIGH}{LOW}"', None),  # a pair: one character
        (f'"a{HIGH}"', 2),  # a high half at the end
        (f'"{LOW}"', 1),  # a low half first
        (f'"{HIGH}{HIGH}{LOW}"', 1),  # the first high has no low after it
        (f'"{HIGH}x{LOW}"', 1),
        (f'"\\{HIGH}"', None),  # an escaped backslash, then the letters "ud83d"
        (f'"\\\\{HIGH}"', 3),  # an escaped backslash, then an escape
        (f'"{HIGH}\\\\{LOW}"', 1),  # the low half after a literal backslash
        ('"\\uD800"', 1),  # upper case hex
        ('"\\u00e9\\ud7ff\\ue000"', None),  # not surrogates
    ],
)
def test_lone_surrogates_are_found_where_json_loads_keeps_them(
    text: str, lone_at: int | None
) -> None:
    decoded = json.loads(text)
    keeps_one = any(0xD800 <= ord(c) <= 0xDFFF for c in decoded)
    assert keeps_one == (lone_at is not None)
    assert lone_surrogate_at(text) == lone_at


def test_loads_refuses_them_with_a_json_error() -> None:
    assert loads(f'{{"a": ["{HIGH}{LOW}"]}}'.encode()) == {"a": ["\U0001f600"]}
    assert loads(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}  # a UTF-8 byte order mark
    with pytest.raises(json.JSONDecodeError, match=r"\\ud83d is half of a surrogate pair"):
        loads(f'{{"a": "{HIGH}"}}'.encode())
    with pytest.raises(json.JSONDecodeError, match="nested too deeply"):
        loads(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(json.JSONDecodeError, match="not UTF-8"):
        loads('{"a": "é"}'.encode("latin-1"))
