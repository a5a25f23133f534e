"""Payload numbers copied exactly whatever the door: integers past 2**53 (64-bit ids) written
over HTTP survive `embedserve export` + `ingest` and `reembed`, which read and write over
gRPC (Document.payload_json and exact_payloads, not a Struct's doubles); a whole float is
stored as an int by HTTP as by gRPC; payload_json is checked as strictly as a payload."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from embedserve.client import EmbedClient
from embedserve.client.cli import main as cli_main
from embedserve.v1 import vector_pb2 as pb
from embedserve.v1 import vector_pb2_grpc as pb_grpc

P53 = 2**53 + 1  # 9007199254740993: a double makes it 9007199254740992
EXACT = {
    "p53": P53,
    "max": 2**63 - 1,
    "min": -(2**63),
    "nested": {"ids": [P53, [2**63 - 1, -(2**63)]], "n": 3},
    "half": 0.5,
}


def http_client(both: Any) -> httpx.Client:
    return httpx.Client(base_url=f"{both.url}/api/v1", timeout=120)


def http_payloads(http: httpx.Client, collection: str, ids: list[str]) -> dict[str, Any]:
    reply = http.post(f"/collections/{collection}/get", json={"ids": ids})
    assert reply.status_code == 200, reply.text
    return {d["id"]: d["payload"] for d in reply.json()["documents"]}


def kinds(value: Any) -> Any:
    """``value`` with each number replaced by its type: 1 and 1.0 compare equal."""
    if isinstance(value, dict):
        return {k: kinds(v) for k, v in value.items()}
    if isinstance(value, list):
        return [kinds(v) for v in value]
    return type(value)


def write_over_http(both: Any, collection: str, documents: list[dict[str, Any]]) -> None:
    with http_client(both) as http:
        assert http.post("/collections", json={"name": collection}).status_code == 200
        body = {"documents": documents, "options": {"store_text": True}}
        reply = http.post(f"/collections/{collection}/upsert", json=body)
        assert reply.status_code == 200, reply.text


def test_export_ingest_and_reembed_copy_integers_past_2_53_exactly(
    both: Any, tmp_path: Path, capsys: Any
) -> None:
    target = ["--target", both.target]
    write_over_http(both, "re1", [{"id": "r1", "text": "hello", "payload": EXACT}])

    backup = tmp_path / "re1.jsonl"
    assert cli_main(["export", "re1", "-o", str(backup), *target]) == 0
    [line] = backup.read_text().splitlines()
    assert json.loads(line)["payload"] == {**EXACT, "text": "hello"}
    assert "9007199254740993" in line and "9223372036854775807" in line
    assert cli_main(["ingest", str(backup), "-c", "copy", *target]) == 0
    assert cli_main(["reembed", "re1", "--to", "re2", *target]) == 0
    capsys.readouterr()

    with http_client(both) as http:
        for collection in ("copy", "re2"):
            payload = http_payloads(http, collection, ["r1"])["r1"]
            assert payload == {**EXACT, "text": "hello"}, collection
            assert kinds(payload) == kinds({**EXACT, "text": "hello"}), collection
        # Integer filters still match the copied ids (a float 9.223372036854776e18 would not).
        biggest = {"filter": {"must": [{"match": {"key": "max", "integer": 2**63 - 1}}]}}
        for collection in ("re1", "copy", "re2"):
            count = http.post(f"/collections/{collection}/count", json=biggest).json()["count"]
            assert count == 1, collection


def test_get_and_scroll_with_exact_payloads_return_exact_integers(both: Any) -> None:
    write_over_http(both, "ids", [{"id": "a", "text": "first", "payload": EXACT}])
    with EmbedClient(both.target) as client:
        [exact] = client.get("ids", ["a"], exact_payloads=True)
        assert exact.payload == {**EXACT, "text": "first"}
        assert kinds(exact.payload) == kinds({**EXACT, "text": "first"})
        page, _ = client.scroll("ids", exact_payloads=True)
        assert [d.payload for d in page] == [exact.payload]
        assert [d.payload for d in client.scroll_iter("ids", exact_payloads=True)] == [
            exact.payload
        ]
        [doubles] = client.get("ids", ["a"])  # the Struct, as before: nearest doubles
        assert doubles.payload["p53"] == 2**53
        bare, _ = client.scroll("ids", exact_payloads=True, with_payload=False)
        assert [d.payload for d in bare] == [{}]
    with grpc.insecure_channel(both.target) as channel:
        stub = pb_grpc.VectorServiceStub(channel)
        got = stub.Get(pb.GetRequest(collection="ids", ids=["a"], exact_payloads=True))
        [document] = got.documents
        assert not document.HasField("payload")
        assert '"p53":9007199254740993' in document.payload_json  # compact
        scrolled = stub.Scroll(pb.ScrollRequest(collection="ids", exact_payloads=True))
        assert [d.payload_json for d in scrolled.documents] == [document.payload_json]
        plain = stub.Get(pb.GetRequest(collection="ids", ids=["a"]))
        assert plain.documents[0].payload_json == "" and plain.documents[0].payload.fields


def test_the_command_lines_get_and_scroll_print_exact_integers(both: Any, capsys: Any) -> None:
    """Their JSONL documents go back through ingest: nearest doubles changed the ids."""
    write_over_http(both, "cli_ids", [{"id": "a", "text": "first", "payload": EXACT}])
    target = ["--target", both.target]
    for verb in (["get", "cli_ids", "a"], ["scroll", "cli_ids"]):
        assert cli_main([*verb, *target]) == 0
        [line] = capsys.readouterr().out.splitlines()
        assert json.loads(line)["payload"] == {**EXACT, "text": "first"}


def test_a_stream_refusing_a_payload_json_names_the_batch(both: Any) -> None:
    with EmbedClient(both.target) as client:
        client.create_collection("streamed")
    bad = pb.Document(id="x", text="t", payload_json='{"a": NaN}')
    good = pb.Document(id="ok", text="fine")
    request = pb.IngestStreamRequest(batch_id="b7", collection="streamed", documents=[good, bad])
    with grpc.insecure_channel(both.target) as channel:
        stub = pb_grpc.VectorServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            list(stub.IngestStream(iter([request])))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith("batch_id 'b7': documents[1].payload_json: NaN")


def test_a_whole_float_is_stored_as_an_int_through_every_door(both: Any) -> None:
    floats = {"f": 1.0, "nested": {"g": [2.0, 2.5]}, "big": 1e19}
    write_over_http(both, "whole", [{"id": "h", "text": "over http", "payload": floats}])
    with grpc.insecure_channel(both.target) as channel:
        pb_grpc.VectorServiceStub(channel).Upsert(
            pb.UpsertRequest(
                collection="whole",
                documents=[
                    pb.Document(id="j", text="as json text", payload_json=json.dumps(floats))
                ],
            )
        )
    with EmbedClient(both.target) as client:
        client.upsert("whole", [{"id": "g", "text": "over grpc", "payload": floats}])
    stored = {"f": 1, "nested": {"g": [2, 2.5]}, "big": 1e19}
    with http_client(both) as http:
        payloads = http_payloads(http, "whole", ["h", "j", "g"])
        for doc in ("h", "j", "g"):
            payload = {k: v for k, v in payloads[doc].items() if k != "text"}
            assert kinds(payload) == kinds(stored), doc
        one = {"filter": {"must": [{"match": {"key": "f", "integer": 1}}]}}
        assert http.post("/collections/whole/count", json=one).json()["count"] == 3
        # A payload update over HTTP stores its whole floats as ints too.
        update = {"ids": ["h"], "payload": {"u": 3.0}}
        assert http.post("/collections/whole/payload", json=update).status_code == 200
        assert type(http_payloads(http, "whole", ["h"])["h"]["u"]) is int
        three = {"filter": {"must": [{"match": {"key": "u", "integer": 3}}]}}
        assert http.post("/collections/whole/count", json=three).json()["count"] == 1


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            pb.Document(id="x", text="t", payload_json='{"a": 1}', payload={"a": 1}),
            "documents[1]: give payload or payload_json, not both",
        ),
        (pb.Document(id="x", text="t", payload_json='{"a": '), "documents[1].payload_json is not"),
        (pb.Document(id="x", text="t", payload_json='{"a": NaN}'), "NaN is not JSON"),
        (pb.Document(id="x", text="t", payload_json='{"a": -Infinity}'), "-Infinity is not JSON"),
        (pb.Document(id="x", text="t", payload_json="[1, 2]"), "must be a JSON object, not an"),
        (
            pb.Document(id="x", text="t", payload_json='{"a": "\\ud800"}'),
            "\\ud800 at character 8 is half of a surrogate pair",
        ),
        (
            pb.Document(id="x", text="t", payload_json='{"a": 18446744073709551616}'),
            "documents[1].payload_json.a: integer out of the 64-bit range",
        ),
        (
            pb.Document(id="x", text="t", payload_json='{"_embedserve_id": 1}'),
            "documents[1]: payload key '_embedserve_id' is reserved",
        ),
        (
            pb.Document(id="x", text="t", payload_json='{"": 1}'),
            "documents[1]: payload keys must be non-empty strings, got ''",
        ),
        (
            pb.Document(id="x", text="t", payload={"": 1}),
            "documents[1]: payload keys must be non-empty strings, got ''",
        ),
        pytest.param(
            pb.Document(id="x", text="t", payload_json='{"a": 1' + "0" * 5000 + "}"),
            "documents[1].payload_json is not JSON this server reads: Exceeds the limit",
            id="5001 digits",
        ),
    ],
)
def test_a_bad_payload_json_is_invalid_argument_naming_the_document(
    both: Any, document: pb.Document, message: str
) -> None:
    with EmbedClient(both.target) as client:
        client.create_collection("strict")
    good = pb.Document(id="ok", text="fine", payload_json='{"n": 9007199254740993}')
    with grpc.insecure_channel(both.target) as channel:
        stub = pb_grpc.VectorServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Upsert(pb.UpsertRequest(collection="strict", documents=[good, document]))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in refused.value.details()
        assert stub.Count(pb.CountRequest(collection="strict")).count == 0


def test_the_python_client_writes_integers_past_2_53_exactly(both: Any) -> None:
    with EmbedClient(both.target) as client:
        client.create_collection("py", payload_indexes={"p53": "integer"})
        client.upsert("py", [{"id": "d", "text": "a star", "payload": EXACT}])
        list(client.ingest_iter("py", [{"id": "e", "text": "a moon", "payload": EXACT}]))
        for stored in client.get("py", ["d", "e"], exact_payloads=True):
            assert stored.payload == EXACT and kinds(stored.payload) == kinds(EXACT)
        exact = {"must": [{"match": {"key": "p53", "integer": P53}}]}
        assert client.count("py", filter=exact) == 2
        below = {"must": [{"match": {"key": "p53", "integer": P53 - 1}}]}
        assert client.count("py", filter=below) == 0
    with http_client(both) as http:
        assert http_payloads(http, "py", ["d"])["d"] == EXACT


def jsonl(*documents: Any) -> str:
    return "".join(json.dumps(d) + "\n" for d in documents)


@pytest.mark.parametrize(
    ("third", "message"),
    [
        ('{"id": "c", "text": "three", "payload": {"x": NaN}}', "not JSON (NaN is no JSON"),
        ('{"id": "c", "text": "three", "payload": {"x": [1, Infinity]}}', "(Infinity is no"),
        (
            json.dumps({"id": "c", "text": "three", "payload": {"x": {"y": 2**64}}}),
            "'payload.x.y': 18446744073709551616 is outside the 64-bit integer range",
        ),
        (
            json.dumps({"id": "c", "text": "three", "payload": {"x": -(2**63) - 1}}),
            "is outside the 64-bit integer range",
        ),
    ],
)
def test_ingest_names_the_line_of_a_number_json_or_the_store_has_not(
    both: Any, tmp_path: Path, capsys: Any, third: str, message: str
) -> None:
    source = tmp_path / "numbers.jsonl"
    good = [
        {"id": "a", "text": "one", "payload": {"big": P53}},
        {"id": "b", "text": "two", "payload": {"max": 2**63 - 1}},
    ]
    source.write_text(jsonl(*good) + third + "\n")
    assert cli_main(["ingest", str(source), "-c", "lines", "--target", both.target]) == 2
    err = capsys.readouterr().err
    assert f"{source} line 3: " in err and message in err, err
    with EmbedClient(both.target) as client:
        stored = client.get("lines", ["a", "b", "c"], exact_payloads=True)
    assert {d.id: d.payload for d in stored} == {"a": {"big": P53}, "b": {"max": 2**63 - 1}}
