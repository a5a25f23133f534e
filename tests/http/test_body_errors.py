"""Bodies the server cannot read are named, in each route family's error shape.

A JSON integer over Python's digit limit got FastAPI's "There was an error parsing the
body" (400; 413 on TEI's routes, where other invalid JSON is TEI's 422). A compressed body
(``Content-Encoding: gzip``) was read as text, "not UTF-8", and one declared ``br`` but
sent plain was accepted.
"""

from __future__ import annotations

import gzip
import json
import sys
from typing import Any

import httpx

from embedserve.server.auth import KeyRing
from embedserve.server.config import Settings
from embedserve.server.drain import Drain
from embedserve.server.http.app import build_app
from embedserve.server.http.backend import Backend
from embedserve.server.metrics import Metrics

JSON = {"content-type": "application/json"}


def test_an_integer_too_long_to_read_is_invalid_json_naming_it(both: Any) -> None:
    limit = sys.get_int_max_str_digits()
    number = "9" * (limit + 700)
    body = '{"inputs": "hi", "dimensions": ' + number + "}"
    expected = (
        f"body is not valid JSON: a number too long: {limit + 700} digits, over the {limit} "
        f"an integer may have (at character {body.index(number)})"
    )
    with httpx.Client(base_url=both.url, headers=JSON, timeout=60) as http:
        rest = http.post("/api/v1/embed", content=body)
        assert rest.status_code == 400, rest.text
        assert rest.json()["error"] == {
            "code": 400,
            "status": "INVALID_ARGUMENT",
            "message": expected,
        }
        # TEI's: its 422 for a body it cannot read, as for any other invalid JSON.
        tei = http.post("/embed", content=body)
        assert (tei.status_code, tei.json()) == (
            422,
            {"error": expected, "error_type": "Validation"},
        )
        assert http.post("/embed", content="{bad").status_code == 422
        openai = http.post("/v1/embeddings", content=body.replace("inputs", "input"))
        assert openai.status_code == 400, openai.text
        assert openai.json()["error"]["type"] == "invalid_request_error"
        assert openai.json()["error"]["message"].startswith("body is not valid JSON: a number")
        cohere = http.post("/v2/embed", content=body.replace('"inputs": "hi"', '"texts": ["x"]'))
        assert cohere.status_code == 400, cohere.text
        assert cohere.json()["message"].startswith("body is not valid JSON: a number too long")
        # Digits in a string are text, and a long decimal fraction is a float: both read.
        text = json.dumps({"inputs": [number]})
        assert http.post("/api/v1/embed", content=text).status_code == 200
        fraction = '{"inputs": ["x"], "dimensions": 0.' + number + "}"
        assert "number too long" not in http.post("/api/v1/embed", content=fraction).text


def test_a_compressed_body_is_415_in_each_routes_shape(both: Any) -> None:
    plain = json.dumps({"inputs": ["hi"]}).encode()
    gzip_json = {**JSON, "content-encoding": "gzip"}
    taken = "takes uncompressed bodies only"
    with httpx.Client(base_url=both.url, timeout=60) as http:
        http.post("/api/v1/collections", json={"name": "docs"}).raise_for_status()
        rest = http.post("/api/v1/embed", content=gzip.compress(plain), headers=gzip_json)
        assert rest.status_code == 415, rest.text
        assert rest.headers["accept-encoding"] == "identity"
        error = rest.json()["error"]
        assert (error["code"], error["status"]) == (415, "UNIMPLEMENTED")
        assert error["message"] == (
            "the body is sent with content-encoding 'gzip'; this server takes uncompressed "
            "bodies only: send it without a content-encoding"
        )
        # Declared compressed, sent plain: not read as what the client did not mean.
        br = http.post("/api/v1/embed", content=plain, headers={**JSON, "content-encoding": "br"})
        assert br.status_code == 415, br.text
        assert "'br'" in br.json()["error"]["message"]
        tei = http.post("/embed", content=gzip.compress(b'{"inputs": "hi"}'), headers=gzip_json)
        assert tei.status_code == 415, tei.text
        assert tei.json()["error_type"] == "Validation" and taken in tei.json()["error"]
        openai = http.post(
            "/v1/embeddings", content=gzip.compress(b'{"input": "hi"}'), headers=gzip_json
        )
        assert openai.status_code == 415, openai.text
        assert openai.json()["error"]["type"] == "invalid_request_error"
        cohere = http.post(
            "/v2/embed", content=gzip.compress(b'{"texts": ["x"]}'), headers=gzip_json
        )
        assert cohere.status_code == 415 and taken in cohere.json()["message"], cohere.text
        # NDJSON streams, read after the route's checks, refused before any line is read.
        ndjson = {"content-type": "application/x-ndjson", "content-encoding": "gzip"}
        for path, line in (
            ("/api/v1/collections/docs/ingest", b'{"documents": [{"id": "a", "text": "x"}]}\n'),
            ("/api/v1/embed-stream", b'{"inputs": ["x"]}\n'),
        ):
            streamed = http.post(path, content=gzip.compress(line), headers=ndjson)
            assert streamed.status_code == 415, (path, streamed.text)
            assert streamed.json()["error"]["code"] == 415
        assert http.post("/api/v1/collections/docs/count", json={}).json()["count"] == 0
        # identity is no coding; a request without a body has nothing encoded.
        identity = {**JSON, "content-encoding": "identity"}
        assert http.post("/api/v1/embed", content=plain, headers=identity).status_code == 200
        assert http.get("/api/v1/collections", headers={"content-encoding": "gzip"}).is_success


def test_a_body_in_another_charset_is_415_naming_it(both: Any) -> None:
    """Read as UTF-8, a UTF-16 body failed as JSON that is not ("Expecting property name",
    its NUL bytes being UTF-8), naming no charset."""
    body = json.dumps({"inputs": ["hi"]})
    with httpx.Client(base_url=both.url, timeout=60) as http:
        declared = {"content-type": "application/json; charset=UTF-16LE"}
        refused = http.post("/api/v1/embed", content=body.encode("utf-16-le"), headers=declared)
        assert refused.status_code == 415, refused.text
        assert refused.json()["error"]["message"] == (
            "the body is declared charset=utf-16le; this server reads JSON as UTF-8 "
            "(RFC 8259): send it as UTF-8"
        )
        ndjson = {"content-type": "application/x-ndjson; charset=latin-1"}
        streamed = http.post("/api/v1/embed-stream", content=body.encode(), headers=ndjson)
        assert streamed.status_code == 415, streamed.text
        for utf8 in ("utf-8", '"UTF8"', "us-ascii", '"utf-8 "'):
            named = {"content-type": f"application/json; charset={utf8}"}
            assert http.post("/api/v1/embed", content=body, headers=named).status_code == 200
        # A request without a body is not refused for what its headers say of one.
        latin = {"content-type": "application/json; charset=iso-8859-1"}
        http.post("/api/v1/collections", json={"name": "kept"}).raise_for_status()
        assert http.get("/api/v1/collections/kept", headers=latin).status_code == 200
        assert http.delete("/api/v1/collections/kept", headers=latin).status_code == 200


def test_the_document_lists_415_for_every_operation_taking_a_body() -> None:
    document = build_app(Backend(Settings(), KeyRing([]), Drain()), Metrics()).openapi()
    operations = [(v, p, o) for p, ops in document["paths"].items() for v, o in ops.items()]
    with_body = [(v, p) for v, p, o in operations if "requestBody" in o]
    assert ("post", "/api/v1/collections/{name}/ingest") in with_body
    assert ("post", "/embed") in with_body
    for verb, path, operation in operations:
        assert ("415" in operation["responses"]) == ("requestBody" in operation), (verb, path)
    tei = document["paths"]["/embed"]["post"]["responses"]["415"]
    assert tei["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/TeiError"}
