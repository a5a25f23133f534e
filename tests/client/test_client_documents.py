"""Documents the client refuses before building a message, naming the document and the
field: ids and texts of other types (once written as Python reprs such as "None"),
vectors that are no list of numbers, payloads that are no object or nest too deep (once a
protobuf DecodeError)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from embedserve.client import EmbedClient


def nested(levels: int) -> dict[str, Any]:
    """A payload of ``levels`` objects and arrays, itself the outermost."""
    payload: dict[str, Any] = {"leaf": [1, 2]}
    for _ in range(levels - 2):
        payload = {"a": payload}
    return payload


def test_a_payload_nested_too_deep_is_refused_naming_the_document(minilm_server) -> None:
    deep = r"payload\.a\.a.*: objects and arrays nest at most 32 deep"
    with EmbedClient(minilm_server.target) as client:
        client.create_collection("deep")
        for levels in (33, 40):
            document = {"id": "n", "text": "x", "payload": nested(levels)}
            with pytest.raises(ValueError, match=f"^document 'n': {deep}"):
                client.upsert("deep", [document])
            with pytest.raises(ValueError, match=f"^document 'n': {deep}"):
                client.ingest("deep", [document])
            with pytest.raises(ValueError, match=f"^update_payload: {deep}"):
                client.update_payload("deep", ["n"], payload=nested(levels))
        # numpy arrays count their dimensions as levels, as the lists they become
        with pytest.raises(ValueError, match=r"^document 'np': payload\.m: objects and"):
            client.upsert(
                "deep", [{"id": "np", "text": "x", "payload": {"m": np.zeros((1,) * 32)}}]
            )
        client.upsert("deep", [{"id": "n", "text": "x", "payload": nested(32)}])
        [stored] = client.get("deep", ["n"])
    assert stored.payload == nested(32)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"id": None, "text": "x"}, "document None: id must be a string or an integer, not null"),
        ({"id": True, "text": "x"}, "document True: id must be a string or an integer, not bool"),
        ({"id": 1.0, "text": "x"}, "document 1.0: id must be a string or an integer, not float"),
        ({"id": ["a"], "text": "x"}, r"document \['a'\]: id must be .*, not list"),
        ({"id": "t", "text": ["a", "b"]}, "document 't': text must be a string, not list"),
        ({"id": "t", "text": None, "vector": "abc"}, "'t': vector must be a list of numbers, not"),
        ({"id": "t", "vector": [1, "2"]}, "'t': vector must be a list of numbers; item 1 is str"),
        ({"id": "t", "vector": np.zeros((2, 2))}, "'t': vector must be a list of numbers; item 0"),
        ({"id": "t", "text": "x", "payload": [1]}, "'t': payload must be an object, not list"),
    ],
)
def test_documents_of_the_wrong_types_are_refused(
    minilm_server, document: dict[str, Any], message: str
) -> None:
    with EmbedClient(minilm_server.target) as client:
        client.create_collection("typed", dimensions=2)
        with pytest.raises(ValueError, match=message):
            client.upsert("typed", [document])
        with pytest.raises(ValueError, match=message):
            client.ingest("typed", [{"id": "fine", "text": "kept"}, document], batch_size=1)
        assert [d.id for d in client.scroll_iter("typed")] == ["fine"]


def test_integer_ids_are_their_decimal_strings(minilm_server) -> None:
    with EmbedClient(minilm_server.target) as client:
        client.create_collection("numbered", dimensions=2)
        client.upsert(
            "numbered",
            [
                {"id": 7, "text": "seven"},
                {"id": np.int64(8), "vector": np.array([0.6, 0.8], dtype=np.float32)},
                {"id": "9", "vector": [1, 0]},
            ],
        )
        assert sorted(d.id for d in client.scroll_iter("numbered")) == ["7", "8", "9"]


def test_a_lone_surrogate_in_an_id_text_or_query_is_named() -> None:
    """protobuf's own error ("'utf-8' codec can't encode character '\\ud800' in position
    1") named neither the document nor the field; refused before anything is sent."""
    with EmbedClient("127.0.0.1:9") as client:  # nothing listens: nothing is sent
        with pytest.raises(ValueError, match=r"^document 'a\\ud800': field 'id' holds \\ud800 at"):
            client.upsert("c", [{"id": "a\ud800", "text": "fine"}])
        with pytest.raises(ValueError, match=r"^document 'd2': field 'text' holds \\udc00 at char"):
            client.upsert("c", [{"id": "d1", "text": "ok"}, {"id": "d2", "text": "ab\udc00"}])
        with pytest.raises(ValueError, match=r"^the query text holds \\ud83d at character 1"):
            client.search("c", "\ud83d")
