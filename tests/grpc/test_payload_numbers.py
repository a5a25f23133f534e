"""Payload numbers over gRPC, whose google.protobuf.Struct carries every number as a double:
whole ones an int64 holds are stored as integers (integer filters match them), larger ones
stay numbers, and an integer a double would change is sent in a document as JSON text
(payload_json), exactly, and refused in a payload update before it is sent."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from embedserve.client import EmbedClient

NUMBERS = {
    "small": 7,
    "negative": -3,
    "exact_big": 2**60,  # past 2**53, yet a double holds it
    "half": 1.5,
    "past_int64": 1e19,
    "mass_kg": 1.989e30,
    "huge": 1e300,
    "listed": [1, 2.5, 1e19],
    "nested": {"n": 4, "x": 1.989e30},
}


@pytest.fixture
def server(start_server: Any, minilm_model: Any) -> Any:
    return start_server(loaded=minilm_model)


@pytest.fixture
def client(server: Any) -> Any:
    with EmbedClient(server.target) as client:
        client.create_collection("numbers", payload_indexes={"small": "integer"})
        yield client


def test_numbers_are_stored_as_the_store_keeps_them(server: Any, client: Any) -> None:
    from embedserve.v1 import vector_pb2 as vpb
    from embedserve.v1 import vector_pb2_grpc as vpb_grpc

    payload = struct_pb2.Struct()
    payload.update(NUMBERS)  # as any gRPC client sends them: doubles
    with grpc.insecure_channel(server.target) as channel:
        vpb_grpc.VectorServiceStub(channel).Upsert(
            vpb.UpsertRequest(
                collection="numbers",
                documents=[vpb.Document(id="d", text="a star", payload=payload)],
            )
        )
    [stored] = client.get("numbers", ["d"])
    assert stored.payload == NUMBERS
    kinds = {k: type(v) for k, v in stored.payload.items() if not isinstance(v, list | dict)}
    assert kinds == {
        "small": int,
        "negative": int,
        "exact_big": int,
        "half": float,
        "past_int64": float,  # no int64 holds it: a number, not refused
        "mass_kg": float,
        "huge": float,
    }
    assert type(stored.payload["nested"]["x"]) is float
    small = {"must": [{"range": {"key": "small", "gte": 7, "lte": 7}}]}
    assert client.count("numbers", filter=small) == 1
    # What was read is written back unchanged: a re-embedding copies payloads this way.
    client.upsert("numbers", [{"id": "copy", "text": "a star", "payload": stored.payload}])
    assert client.get("numbers", ["copy"])[0].payload == NUMBERS


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"id64": 2**53 + 1}, "'id64': 9007199254740993"),
        ({"deep": {"ids": [1, 2**63 - 1]}}, "'deep.ids[1]': 9223372036854775807"),
    ],
)
def test_an_integer_a_double_would_change_is_written_exactly_or_refused_before_it_is_sent(
    client: Any, payload: dict[str, Any], where: str
) -> None:
    client.upsert("numbers", [{"id": "d", "text": "a star", "payload": payload}])
    assert client.get("numbers", ["d"], exact_payloads=True)[0].payload == payload
    # A payload update has no JSON form: it still refuses what a double would change.
    with pytest.raises(ValueError, match="past 2\\*\\*53") as refused:
        client.update_payload("numbers", ["d"], payload={"other": payload})
    assert f"'other.{where[1:]}" in str(refused.value)
    assert "send it as a string" in str(refused.value)
    assert client.get("numbers", ["d"], exact_payloads=True)[0].payload == payload
