"""Payload numbers in the messages the Python client builds and reads, no server: a payload
holding an integer a double would change goes as JSON text (Document.payload_json), any
other as a Struct; a payload_json read back keeps its integers; the CLI's JSONL reader
refuses NaN, the infinities and integers no int64 holds, naming the line."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from google.protobuf.struct_pb2 import Struct

from embedserve.client._documents import document, fill_payload, stored
from embedserve.client._struct_numbers import whole_to_int, wide_integer
from embedserve.client.cli_vectors import read_documents
from embedserve.v1 import vector_pb2 as pb

P53 = 2**53 + 1


@pytest.mark.parametrize(
    "payload",
    [
        {"id64": P53},
        {"deep": {"ids": [1, 2**63 - 1]}, "f": 1.5},
        {"n": np.int64(2**63 - 1)},  # numpy numbers as Python's own
    ],
)
def test_a_payload_a_double_would_change_goes_as_json_text(payload: dict[str, Any]) -> None:
    message = document({"id": "d", "text": "x", "payload": payload})
    assert not message.HasField("payload")
    assert json.loads(message.payload_json) == payload
    assert " " not in message.payload_json  # compact


def test_other_payloads_go_as_a_struct() -> None:
    payload = {"small": 7, "exact_big": 2**60, "min": -(2**63), "text": "é"}
    message = document({"id": "d", "text": "x", "payload": payload})
    assert message.payload_json == "" and message.HasField("payload")
    assert whole_to_int(dict(message.payload)) == payload


def test_a_json_payload_is_refused_naming_the_document_when_it_is_no_json() -> None:
    with pytest.raises(ValueError, match=r"^document 'd': payload numbers must be finite"):
        document({"id": "d", "text": "x", "payload": {"id64": P53, "bad": float("nan")}})
    with pytest.raises(ValueError, match=r"^document 'd': a payload holds JSON values only"):
        document({"id": "d", "text": "x", "payload": {"id64": P53, "bad": {1, 2}}})
    with pytest.raises(ValueError, match=r"^document 'd': a payload holds JSON .*surrogates"):
        document({"id": "d", "text": "x", "payload": {"id64": P53, "bad": "\ud800"}})


def test_payload_json_is_read_back_exactly() -> None:
    text = '{"p53":9007199254740993,"max":9223372036854775807,"f":1.5,"big":1e19}'
    [exact] = stored([pb.StoredDocument(id="d", payload_json=text)])
    assert exact.payload == {"p53": P53, "max": 2**63 - 1, "f": 1.5, "big": 1e19}
    assert type(exact.payload["max"]) is int and type(exact.payload["big"]) is float
    struct = pb.StoredDocument(id="d")
    struct.payload.update({"n": 4.0})
    [doubles] = stored([struct])
    assert doubles.payload == {"n": 4} and type(doubles.payload["n"]) is int


def test_wide_integers_are_named_by_their_path() -> None:
    assert wide_integer({"a": [2**63 - 1, -(2**63)], "b": True}) is None
    assert wide_integer({"a": {"b": [0, 2**63]}}, "payload") == (
        "'payload.a.b[1]': 9223372036854775808 is outside the 64-bit integer range "
        "(-2**63 to 2**63 - 1)"
    )


def test_whole_to_int_stops_past_any_storable_depth() -> None:
    deep: Any = 1.0
    for _ in range(5000):  # past Python's recursion limit
        deep = [deep]
    assert whole_to_int(deep) is not None  # left as it is below, for the store to refuse
    assert whole_to_int([[2.0]]) == [[2]]


@pytest.mark.parametrize(
    ("third", "message"),
    [
        ('{"id": "c", "text": "t", "payload": {"x": NaN}}', "not JSON (NaN is no JSON number)"),
        ('{"id": "c", "vector": [1, -Infinity]}', "not JSON (-Infinity is no JSON number)"),
        (
            json.dumps({"id": "c", "text": "t", "payload": {"x": [2**64]}}),
            "'payload.x[0]': 18446744073709551616 is outside the 64-bit integer range "
            "(-2**63 to 2**63 - 1)",
        ),
        # Python reads these as an infinity, or not at all.
        ('{"id": "c", "text": "t", "payload": {"x": -1e400}}', "not JSON (-1e400 is past"),
        pytest.param(
            '{"id": "c", "text": "t", "payload": {"x": 1' + "0" * 5000 + "}}",
            "not JSON (Exceeds",
            id="5001 digits",
        ),
    ],
)
def test_the_jsonl_reader_names_the_line_of_a_number_no_store_keeps(
    third: str, message: str
) -> None:
    lines = [
        json.dumps({"id": "a", "text": "t", "payload": {"n": P53}}),
        json.dumps({"id": "b", "text": "t", "payload": {"n": 2**63 - 1}}),
        third,
    ]
    documents = read_documents(io.StringIO("\n".join(lines) + "\n"), False, "f.jsonl")
    assert [d["payload"] for d in (next(documents), next(documents))] == [
        {"n": P53},
        {"n": 2**63 - 1},
    ]
    with pytest.raises(ValueError) as refused:
        next(documents)
    assert str(refused.value).startswith(f"f.jsonl line 3: {message}")


def test_a_csv_payload_column_holding_nan_is_no_json() -> None:
    rows = io.StringIO('id,text,payload\n1,fine,"{""x"": NaN}"\n')
    with pytest.raises(ValueError, match=r"line 2: the payload column is not JSON \(NaN is no"):
        list(read_documents(rows, True, "f.csv"))


@pytest.mark.parametrize(
    "number", [2**63, -(2**63) - 1, 2**64, 10**400], ids=["2**63", "-2**63-1", "2**64", "10**400"]
)
def test_an_integer_no_store_keeps_is_refused_though_a_double_holds_it(number: int) -> None:
    """2**63 passed as the double 9.223372036854776e18 and was stored as a float, which no
    integer filter matches; 10**400 raised a bare OverflowError."""
    with pytest.raises(ValueError, match=r"document 'a': payload 'n': -?\d+ is outside the 64-bit"):
        document({"id": "a", "text": "t", "payload": {"n": number}})
    with pytest.raises(ValueError, match="outside the 64-bit integer range"):
        fill_payload(Struct(), {"n": [number]}, "update")
