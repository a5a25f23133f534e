"""Every operation of the OpenAPI document describes its success body: clients generated
from it are typed, and test_openapi_contract.py checks every answer against it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest

from embedserve.server.auth import KeyRing
from embedserve.server.config import Settings
from embedserve.server.drain import Drain
from embedserve.server.http.app import build_app
from embedserve.server.http.backend import Backend
from embedserve.server.http.ndjson import NDJSON
from embedserve.server.metrics import Metrics

STREAMS = {"/api/v1/embed-stream", "/api/v1/collections/{name}/ingest"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_app(Backend(Settings(), KeyRing([]), Drain()), Metrics()).openapi()


def success_schemas(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in document["paths"].items():
        for verb, operation in operations.items():
            content = operation["responses"]["200"].get("content", {})
            media_type = NDJSON if path in STREAMS else "application/json"
            assert list(content) == [media_type], (verb, path)
            yield verb, path, content[media_type]["schema"]


def test_every_operation_describes_its_success_body(document: dict[str, Any]) -> None:
    operations = list(success_schemas(document))
    assert len(operations) == 48
    for verb, path, schema in operations:
        assert schema, f"{verb} {path}: no schema for its 200"


def objects_in(schema: Any, components: dict[str, Any], seen: set[str]) -> Iterator[dict[str, Any]]:
    """The object schemas with named properties in ``schema``, references followed."""
    if isinstance(schema, list):
        for item in schema:
            yield from objects_in(item, components, seen)
    elif isinstance(schema, dict):
        if ref := schema.get("$ref"):
            name = ref.removeprefix("#/components/schemas/")
            if name not in seen:
                seen.add(name)
                yield from objects_in(components[name], components, seen)
            return
        if "properties" in schema:
            yield schema
        for value in schema.values():
            yield from objects_in(value, components, seen)


def test_success_bodies_name_every_field(document: dict[str, Any]) -> None:
    # The contract test's conformance check then fails on a field the document lacks.
    components = document["components"]["schemas"]
    seen: set[str] = set()
    for verb, path, schema in success_schemas(document):
        for found in objects_in(schema, components, seen):
            if path not in ("/health", "/"):  # {"status"}, in app.py
                assert found.get("additionalProperties") is False, (verb, path, found.get("title"))


def enums_in(schema: Any) -> Iterator[list[Any]]:
    if isinstance(schema, list):
        for item in schema:
            yield from enums_in(item)
    elif isinstance(schema, dict):
        if isinstance(schema.get("enum"), list):
            yield schema["enum"]
        for value in schema.values():
            yield from enums_in(value)


def test_no_enum_holds_two_spellings_of_one_name(document: dict[str, Any]) -> None:
    # Generators name an enum's members by its values in capitals: "right" and "Right"
    # would be two members RIGHT (openapi-python-client refuses the document).
    for values in enums_in(document):
        names = [value.upper() for value in values if isinstance(value, str)]
        assert len(names) == len(set(names)), values


def test_stream_lines_are_answers_or_the_last_error_line(document: dict[str, Any]) -> None:
    for path in STREAMS:
        content = document["paths"][path]["post"]["responses"]["200"]["content"]
        answer, error = content[NDJSON]["schema"]["oneOf"]
        assert answer["additionalProperties"] is False and answer["required"], path
        assert error == {"$ref": "#/components/schemas/Error"}, path


def test_cohere_embed_body_takes_texts_or_inputs_exactly(document: dict[str, Any]) -> None:
    """The server refuses a body with neither or both: the document says so, for clients
    generated from it and for schemathesis."""
    schema = {"$ref": "#/components/schemas/CohereEmbedRequest", **document}
    validator = jsonschema_rs.Draft202012Validator(schema)
    inputs = [{"content": [{"type": "text", "text": "b"}]}]
    assert validator.is_valid({"texts": ["a"]})
    assert validator.is_valid({"inputs": inputs})
    assert not validator.is_valid({})
    assert not validator.is_valid({"texts": ["a"], "inputs": inputs})
