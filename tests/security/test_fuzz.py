"""Property-based fuzzing of every EmbeddingService and VectorService RPC against a real server.

Request strategies are derived from the protobuf descriptors, so a field added to the API
is fuzzed without touching this file. Values lean towards what the server knows about
(seeded collections, stored ids, indexed payload keys, vectors of the right width) so that
calls get past validation into the embedder and the vector store, where the interesting
failures live. A caller's mistake must come back as a specific status code: never
INTERNAL or UNKNOWN (an unhandled exception), never a hang, and never a dead server.
"""

from __future__ import annotations

import enum
import functools
import math
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import grpc
import numpy as np
import pytest
from google.protobuf import struct_pb2
from google.protobuf.descriptor import (
    Descriptor,
    FieldDescriptor,
    MethodDescriptor,
    OneofDescriptor,
)
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from running_server import free_port

from embedserve.v1 import embedding_pb2 as epb
from embedserve.v1 import embedding_pb2_grpc as epb_grpc
from embedserve.v1 import vector_pb2 as vpb
from embedserve.v1 import vector_pb2_grpc as vpb_grpc

CALL_TIMEOUT_S = 20.0
# Examples per RPC grow with its number of field names (each gets its turn as the odd one
# out); RPCs that run the model on every input get fewer. See budget().
EXAMPLES_PER_FIELD = 6
EXAMPLES_PER_FIELD_HEAVY = 3
HEAVY = ("Embed", "EmbedStream", "EmbedTokens", "Similarity", "Rerank")
RANDOM_SHARE = 0.15  # on top: fresh examples each run (a failure prints its reproduction blob)
MAX_DEPTH = 4  # nesting of messages below the request (Filter -> Condition -> Filter ...)
# Lowered limits, so modest fuzz inputs also reach the "too many" / "too long" paths.
MAX_INPUTS = 16
MAX_INPUT_CHARS = 4000
WIDTH = 384  # MiniLM
SMALL_WIDTH = 8

# Codes that mean the server, not the caller, went wrong. UNAVAILABLE is included: with the
# model loaded and a local store, it means a component fell over or a caller's mistake was
# misread as an outage (and clients retry UNAVAILABLE).
SERVER_FAULTS = {
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAVAILABLE,
}

SERVICES = (
    epb.DESCRIPTOR.services_by_name["EmbeddingService"],
    vpb.DESCRIPTOR.services_by_name["VectorService"],
)
DESTRUCTIVE = ("Delete", "DeleteCollection")  # fuzzed last, so the others see seeded data
METHODS: list[MethodDescriptor] = sorted(
    (m for service in SERVICES for m in service.methods),
    key=lambda m: DESTRUCTIVE.index(m.name) + 1 if m.name in DESTRUCTIVE else 0,
)

# -- value pools: what the server knows (valid), what it must cope with (edge) -------------


@dataclass(frozen=True)
class Pool:
    valid: tuple[Any, ...]
    edge: tuple[Any, ...]


SEEDED = ("docs", "small")
SCRATCH = ("scratch", "scratch-2", "Scratch.v1_x")
BAD_NAMES = ("missing", "", "-bad", ".hidden", "a" * 129, "a/b", "newline\n")
TOPICS = ("space", "food", "sport")
TEXTS = (
    "hello world",
    "a rocket flew to the moon",
    "fresh bread from the oven",
    "the team scored a goal",
    "naïve café 日本語 🙂",
)
ODD_TEXTS = (
    "",
    " ",
    "\x00",
    "\n\t\r",
    "word " * 300,  # > 256 tokens: truncation and CHUNK windows
    "y" * (MAX_INPUT_CHARS + 1),
)
U32_MAX = 2**32 - 1
POOLS: dict[str, Pool] = {
    "collection": Pool(SEEDED, BAD_NAMES),
    "name": Pool((*SEEDED, *SCRATCH), BAD_NAMES),
    "name@DeleteCollection": Pool(SCRATCH, BAD_NAMES),  # never the seeded collections
    "name@UpdateCollection": Pool(("small",), BAD_NAMES),  # "docs" keeps its indexes
    # UpdateAliases: its map's keys and its deletes are aliases, its map's values collections.
    "key@UpdateAliases": Pool(("latest", "docs-alias", "v.2"), (*BAD_NAMES, *SEEDED)),
    "label@UpdateAliases": Pool(SEEDED, (*BAD_NAMES, "latest")),
    "id": Pool(("d0", "d1", "d2", "s0", "s1", "new-1", "ünï/cødé id"), ("", "nope", "x" * 1025)),
    "key": Pool(
        ("topic", "n", "when", "at", "flag", "score", "nested.a", "é"),
        # "a b" and on are not valid payload paths for the store.
        ("", "_embedserve_id", "nope", "a b", "x[", "$", "\x07"),
    ),
    "topic": Pool(TOPICS, ("", "SPACE")),
    # DatetimeRange bounds: RFC 3339 and its relatives, the edges of the years, non-dates.
    "datetime": Pool(
        ("2026-12-01T10:00:00Z", "2026-12-01", "2026-12-01T12:00:00+02:00", "2026-12-01 09:00"),
        ("0001-01-01", "9999-12-31T23:59:59.999999Z", "yesterday", "2026-13-01", "\x00"),
    ),
    "text": Pool(TEXTS, ODD_TEXTS),
    "prompt": Pool(("", "query: ", "search_document: ", "🙂"), ("long prompt " * 300, "\x00")),
    # "\u00b2" (superscript 2) and "\u0661" (Arabic-Indic 1) pass str.isdigit().
    "read_consistency": Pool(
        ("", "all", "majority", "quorum", "2"), ("0", "-1", "\u00b2", "\u0661", "many")
    ),
    "label": Pool(("b1", "b2", "req-1"), ("", "\x00", "é" * 300)),
    "dimensions": Pool((SMALL_WIDTH, 32, WIDTH), (0, 1, WIDTH - 1, WIDTH + 1, U32_MAX)),
    "limit": Pool((1, 3, 10), (0, 10_000, U32_MAX)),
    "offset": Pool((0, 1, 2), (100, U32_MAX)),
    "hnsw_ef": Pool((4, 64), (0, 1, U32_MAX)),
    "hnsw_m": Pool((4, 16), (0, 1, U32_MAX)),
    "hnsw_ef_construct": Pool((16, 100), (0, 1, U32_MAX)),
    "shard_number": Pool((1,), (0, 2, U32_MAX)),
    "replication_factor": Pool((1,), (0, 2, U32_MAX)),
    "write_consistency_factor": Pool((1,), (0, 2, U32_MAX)),
}
STRING_POOLS = {
    "collection": "collection",
    "name": "name",
    "id": "id",
    "ids": "id",
    "key": "key",
    "texts": "topic",
    "text": "text",
    "inputs": "text",
    "query": "text",
    "candidates": "text",
    "a": "text",
    "b": "text",
    "prompt": "prompt",
    "read_consistency": "read_consistency",
    "delete": "key",
    "drop_payload_indexes": "key",
    "gt": "datetime",
    "gte": "datetime",
    "lt": "datetime",
    "lte": "datetime",
    "now": "datetime",
}
# Repeated fields that a useful request needs at least one of.
NON_EMPTY = ("inputs", "candidates", "documents", "ids", "positive", "pairs")
# Fields a call cannot do without: always sent (their edge values include "" and []).
ALWAYS_SENT = ("collection", "name", "id", "key", "query", "a", "b", "values", *NON_EMPTY)
FLOAT_EDGES = (math.nan, math.inf, -math.inf, -0.0, 3.4e38, -3.4e38, 1e-45)
INT_RANGES: dict[int, tuple[int, int]] = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, U32_MAX),
    FieldDescriptor.TYPE_FIXED32: (0, U32_MAX),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}

Strategy = st.SearchStrategy[Any]


class Mode(enum.Enum):
    """How far values stray from what the server can serve."""

    VALID = "valid"  # realistic values only: the call reaches the embedder and the store
    EDGE = "edge"  # a value the server must cope with: empty, too big, unknown, NaN ...
    WILD = "wild"  # any of those, or anything the wire format allows


def any_text(max_size: int = 30) -> st.SearchStrategy[str]:
    return st.text(st.characters(codec="utf-8"), max_size=max_size)


def vectors(mode: Mode) -> st.SearchStrategy[list[float]]:
    """Vectors of the seeded widths; EDGE ones are mis-sized or hold one non-finite value."""

    def make(size: int, seed: int, poison: float | None) -> list[float]:
        rng = np.random.default_rng(seed)
        values: list[float] = rng.standard_normal(size).astype(np.float32).tolist()
        if poison is not None and values:
            values[seed % len(values)] = poison
        return values

    seeds = st.integers(0, 2**16)
    valid = st.builds(make, st.sampled_from((SMALL_WIDTH, WIDTH)), seeds, st.none())
    edge = st.one_of(
        st.builds(make, st.sampled_from((0, 1, WIDTH + 1)), seeds, st.none()),
        st.builds(make, st.sampled_from((SMALL_WIDTH, WIDTH)), seeds, st.sampled_from(FLOAT_EDGES)),
    )
    if mode is Mode.VALID:
        return valid
    if mode is Mode.EDGE:
        return edge
    return st.one_of(valid, edge, st.lists(st.floats(width=32), max_size=6))


def json_values(mode: Mode) -> Strategy:
    """Payload values: JSON in VALID mode; EDGE adds non-finite numbers, WILD any text."""
    leaves: list[Strategy] = [
        st.none(),
        st.booleans(),
        st.sampled_from(TOPICS),
        st.integers(-1000, 1000),
    ]
    keys: Strategy = st.sampled_from(POOLS["key"].valid)
    if mode is Mode.VALID:
        leaves.append(st.floats(-1e6, 1e6))
    else:
        leaves += [st.sampled_from(FLOAT_EDGES), st.floats(), any_text(12)]
        keys = st.one_of(keys, st.sampled_from(POOLS["key"].edge), any_text(8))
    return st.recursive(
        st.one_of(leaves),
        lambda children: st.one_of(
            st.lists(children, max_size=3), st.dictionaries(keys, children, max_size=3)
        ),
        max_leaves=8,
    )


# -- strategies from descriptors ---------------------------------------------------------


def is_synthetic(oneof: OneofDescriptor) -> bool:
    """proto3 ``optional`` fields sit in a one-field oneof named after the field."""
    return len(oneof.fields) == 1 and oneof.name == "_" + oneof.fields[0].name


def is_map(field: FieldDescriptor) -> bool:
    entry = field.message_type
    return entry is not None and bool(entry.GetOptions().map_entry)


def message_type(field: FieldDescriptor) -> Descriptor:
    assert field.message_type is not None, field.full_name
    return field.message_type


def owner(field: FieldDescriptor) -> str:
    """The name of the message that declares ``field``."""
    return field.containing_type.name if field.containing_type is not None else ""


@functools.cache
def field_names(descriptor: Descriptor, depth: int = 0) -> frozenset[str]:
    """Every field name in a message's tree from ``depth`` on (Struct internals excluded)."""
    names: set[str] = set()
    if depth > MAX_DEPTH or descriptor.full_name == "google.protobuf.Struct":
        return frozenset()
    for field in descriptor.fields:
        names.add(field.name)
        if field.type == FieldDescriptor.TYPE_MESSAGE and not is_map(field):
            names |= field_names(message_type(field), depth + 1)
    return frozenset(names)


def build(cls: type[Message], values: Mapping[str, Any]) -> Message:
    """A message with the given fields set (empty sub-messages still count as set)."""
    message = cls()
    descriptor = cast(Descriptor, cls.DESCRIPTOR)  # upb and pure-Python stubs differ
    for name, value in values.items():
        field = descriptor.fields_by_name[name]
        target = getattr(message, name)
        if is_map(field):
            for key, item in value.items():
                if isinstance(item, Message):
                    target[key].CopyFrom(item)
                else:
                    target[key] = item
        elif field.is_repeated:
            target.extend(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            target.SetInParent()
            target.MergeFrom(value)
        else:
            setattr(message, name, value)
    return message


@dataclass(frozen=True)
class Requests:
    """Request strategies for one RPC (``method`` steers the pools).

    ``focus`` names one field that is always sent with a value that strays (EDGE for a
    scalar, WILD for a whole sub-message) while everything else follows ``mode``: one odd
    value at a time gets past the checks that would otherwise stop at the first oddity.
    """

    method: str
    mode: Mode
    focus: str | None = None

    def leads_to_focus(self, field: FieldDescriptor, depth: int) -> bool:
        """Whether ``field`` is, or holds, the focus field (so it must be sent)."""
        if field.name == self.focus:
            return True
        if self.focus is None or field.type != FieldDescriptor.TYPE_MESSAGE or is_map(field):
            return False
        return self.focus in field_names(message_type(field), depth + 1)

    def strayed(self, field: FieldDescriptor) -> Requests:
        compound = field.type == FieldDescriptor.TYPE_MESSAGE and not is_map(field)
        return Requests(self.method, Mode.WILD if compound else Mode.EDGE)

    def pick(self, pool: Pool, other: Strategy) -> Strategy:
        if self.mode is Mode.VALID:
            return st.sampled_from(pool.valid)
        if self.mode is Mode.EDGE:
            return st.one_of(st.sampled_from(pool.edge), st.sampled_from(pool.edge), other)
        return st.one_of(st.sampled_from(pool.valid), st.sampled_from(pool.edge), other)

    def string(self, field: FieldDescriptor) -> Strategy:
        name = field.name
        if name == "text" and owner(field) == "MatchValue":
            return self.pick(POOLS["topic"], any_text(8))
        pool = STRING_POOLS.get(name, "label")
        if f"{pool}@{self.method}" in POOLS:
            pool = f"{pool}@{self.method}"
        return self.pick(POOLS[pool], any_text(40 if pool == "text" else 12))

    def scalar(self, field: FieldDescriptor) -> Strategy:
        kind = field.type
        if kind == FieldDescriptor.TYPE_STRING:
            return self.string(field)
        if kind == FieldDescriptor.TYPE_BYTES:
            return st.binary(max_size=64)
        if kind == FieldDescriptor.TYPE_BOOL:
            return st.booleans()
        if kind == FieldDescriptor.TYPE_ENUM:
            assert field.enum_type is not None
            known = tuple(v.number for v in field.enum_type.values)
            return self.pick(Pool(known, (-1, 5, 99, 2**31 - 1, -(2**31))), st.integers(-9, 9))
        if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
            other = st.floats(width=32 if kind == FieldDescriptor.TYPE_FLOAT else 64)
            return self.pick(Pool((0.0, 0.25, 0.5, -1.0, 2.0), FLOAT_EDGES), other)
        low, high = INT_RANGES[kind]
        if field.name in POOLS:
            return self.pick(POOLS[field.name], st.integers(low, high))
        edges = tuple(sorted({low, high, max(low, -1)}))
        return self.pick(Pool((0, 1, 2, 3, 5), edges), st.integers(low, high))

    def value(self, field: FieldDescriptor, depth: int) -> Strategy:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            return self.message(message_type(field), depth + 1)
        return self.scalar(field)

    def field(self, field: FieldDescriptor, depth: int) -> Strategy:
        if field.name == self.focus:
            return self.strayed(field).field(field, depth)
        if is_map(field):
            entry = message_type(field)
            return st.dictionaries(
                self.value(entry.fields_by_name["key"], depth),
                self.value(entry.fields_by_name["value"], depth),
                max_size=3,
            )
        if field.name == "values" and owner(field) == "Vector":
            return vectors(self.mode)
        if not field.is_repeated:
            return self.value(field, depth)
        element = self.value(field, depth)
        size = 3 if depth < 2 else 2
        if self.mode is Mode.VALID:
            return st.lists(element, min_size=int(field.name in NON_EMPTY), max_size=size)
        lists = [st.just([]), st.lists(element, min_size=1, max_size=size)]
        if field.name in ("inputs", "candidates"):
            many = st.sampled_from(TEXTS)
            lists.append(st.lists(many, min_size=MAX_INPUTS + 1, max_size=MAX_INPUTS + 2))
        return st.one_of(lists)

    def message(self, descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
        if descriptor.full_name == "google.protobuf.Struct":
            keys = self.pick(POOLS["key"], any_text(8))
            return st.dictionaries(keys, json_values(self.mode), max_size=4).map(make_struct)
        cls = GetMessageClass(descriptor)
        if depth > MAX_DEPTH:
            return st.builds(cls)
        required: dict[str, Strategy] = {}
        optional: dict[str, Strategy] = {}
        groups: list[Strategy] = []
        for oneof in descriptor.oneofs:
            if is_synthetic(oneof):
                continue
            members = {f.name: self.field(f, depth).map(named(f.name)) for f in oneof.fields}
            towards = [members[f.name] for f in oneof.fields if self.leads_to_focus(f, depth)]
            if towards:
                groups.append(st.one_of(towards))
            elif self.mode is Mode.VALID:
                groups.append(st.one_of(list(members.values())))
            else:
                groups.append(st.one_of(st.just({}), *members.values()))
        for field in descriptor.fields:
            group = field.containing_oneof
            if group is not None and not is_synthetic(group):
                continue
            sent = field.name in ALWAYS_SENT or self.leads_to_focus(field, depth)
            (required if sent else optional)[field.name] = self.field(field, depth)
        plain = st.fixed_dictionaries(required, optional=optional)

        def merge(parts: tuple[dict[str, Any], ...]) -> Message:
            return build(cls, {k: v for part in parts for k, v in part.items()})

        return st.tuples(plain, *groups).map(merge)

    def calls(self, method: MethodDescriptor) -> st.SearchStrategy[list[Message]]:
        """One request, or a short stream of them for client streaming."""
        request = self.message(method.input_type)
        if not method.client_streaming:
            return request.map(lambda r: [r])
        if self.mode is Mode.VALID:
            return st.lists(request, min_size=1, max_size=3)
        return st.lists(request, max_size=3)


def named(name: str) -> Callable[[Any], dict[str, Any]]:
    """Wraps a drawn value as ``{name: value}``, the form build() takes."""
    return lambda value: {name: value}


def make_struct(values: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


def calls(method: MethodDescriptor) -> st.SearchStrategy[list[Message]]:
    """A quarter valid requests, half with one strayed field, a quarter wild ones."""
    valid = Requests(method.name, Mode.VALID).calls(method)
    wild = Requests(method.name, Mode.WILD).calls(method)
    names = sorted(field_names(method.input_type))
    if not names:  # e.g. GetModelInfoRequest: there is only the empty message
        return valid
    focused = {n: Requests(method.name, Mode.VALID, n).calls(method) for n in names}
    focus = st.sampled_from(names).flatmap(focused.__getitem__)
    return st.one_of(valid, focus, focus, wild)


# -- the server ---------------------------------------------------------------------------


def server_env() -> dict[str, str]:
    repo = Path(__file__).resolve().parents[2]
    paths = [str(repo / root) for root in ("server", "connectors", "clients/python")]
    return dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        EMBEDSERVE_HTTP_PORT="0",
        PYTHONPATH=os.pathsep.join(paths),
    )


@dataclass
class Served:
    """A server subprocess on a loopback port, its combined output file and a channel to it."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    channel: grpc.Channel

    def log_from(self, offset: int) -> str:
        """Server output since ``offset``, minus the access log lines (they only add noise)."""
        with self.log.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", "replace")
        return "\n".join(line for line in text.splitlines() if "embedserve.access" not in line)

    def log_size(self) -> int:
        return self.log.stat().st_size

    def health(self) -> int:
        stub = health_pb2_grpc.HealthStub(self.channel)
        return int(stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status)

    def assert_serving(self) -> None:
        """Alive, health SERVING, and a real Embed gives unit vectors of the model's width."""
        assert self.process.poll() is None, f"server died:\n{self.log_from(0)[-6000:]}"
        assert self.health() == health_pb2.HealthCheckResponse.SERVING
        response = epb_grpc.EmbeddingServiceStub(self.channel).Embed(
            epb.EmbedRequest(inputs=["still here", "and well"]), timeout=CALL_TIMEOUT_S
        )
        assert [len(e.values) for e in response.embeddings] == [WIDTH, WIDTH]
        assert all(abs(np.linalg.norm(e.values) - 1) < 1e-4 for e in response.embeddings)


def wait_serving(served: Served, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while True:
        assert served.process.poll() is None, f"server exited:\n{served.log_from(0)}"
        try:
            if served.health() == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        assert time.monotonic() < end, f"server not SERVING in {timeout} s:\n{served.log_from(0)}"
        time.sleep(0.2)


@contextmanager
def running_server(folder: Path, *options: str) -> Iterator[Served]:
    """``embedserve serve --model minilm`` on a free port until the block ends; it must then
    stop cleanly (exit code 0) within 30 s."""
    log = folder / "server.log"
    port = free_port()
    command = [
        *(sys.executable, "-m", "embedserve.server.cli", "serve", "--model", "minilm"),
        *("--port", str(port), "--data-dir", str(folder / "data"), *options),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=server_env(), stdout=out, stderr=out)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    served = Served(process, port, log, channel)
    try:
        wait_serving(served)
        yield served
    finally:
        channel.close()
        process.terminate()
        try:
            code = process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            raise AssertionError(f"server did not stop:\n{served.log_from(0)[-4000:]}") from None
        assert code == 0, f"server exited with {code}:\n{served.log_from(0)[-4000:]}"


def seed(channel: grpc.Channel) -> None:
    """Two collections of different widths, distances and indexes, with a few documents."""
    vectors_api = vpb_grpc.VectorServiceStub(channel)
    vectors_api.CreateCollection(
        vpb.CreateCollectionRequest(
            name="docs",
            config=vpb.CollectionConfig(
                payload_indexes={
                    "topic": vpb.PAYLOAD_INDEX_KIND_KEYWORD,
                    "n": vpb.PAYLOAD_INDEX_KIND_INTEGER,
                    "when": vpb.PAYLOAD_INDEX_KIND_DATETIME,
                    "at": vpb.PAYLOAD_INDEX_KIND_GEO,
                }
            ),
        ),
        timeout=CALL_TIMEOUT_S,
    )
    vectors_api.CreateCollection(
        vpb.CreateCollectionRequest(
            name="small",
            config=vpb.CollectionConfig(
                dimensions=SMALL_WIDTH,
                distance=vpb.DISTANCE_DOT,
                quantization=vpb.QUANTIZATION_SCALAR_INT8,
                on_disk=True,
            ),
        ),
        timeout=CALL_TIMEOUT_S,
    )
    for collection, prefix in (("docs", "d"), ("small", "s")):
        documents = []
        for i in range(6):
            payload = struct_pb2.Struct()
            payload.update(
                {
                    "topic": TOPICS[i % 3],
                    "n": i,
                    "when": f"2026-12-0{i + 1}T10:00:00Z",
                    "at": {"lat": 0.25 * i, "lon": 0.5 * i},
                    "flag": i % 2 == 0,
                    "score": i / 4,
                    "nested": {"a": [i, "x"]},
                }
            )
            document = vpb.Document(id=f"{prefix}{i}", payload=payload)
            if i % 2 and collection == "small":
                document.vector.values.extend([float(i + k) for k in range(SMALL_WIDTH)])
            else:
                document.text = f"{TEXTS[1 + i % 3]} number {i}"
            documents.append(document)
        vectors_api.Upsert(
            vpb.UpsertRequest(
                collection=collection,
                documents=documents,
                options=vpb.WriteOptions(store_text=True),
            ),
            timeout=CALL_TIMEOUT_S,
        )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_reranker_path: Path) -> Iterator[Served]:
    limits = (
        "--max-inputs-per-request",
        str(MAX_INPUTS),
        "--max-input-chars",
        str(MAX_INPUT_CHARS),
        "--reranker",
        str(tiny_reranker_path),
    )
    with running_server(tmp_path_factory.mktemp("fuzz"), *limits) as served:
        seed(served.channel)
        yield served


# -- calls -----------------------------------------------------------------------------


def invoke(
    channel: grpc.Channel, method: MethodDescriptor, requests: list[Message]
) -> tuple[grpc.StatusCode, str]:
    """Call ``method`` with raw descriptors (no generated stub), draining any response stream."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    kwargs: dict[str, Any] = {
        "request_serializer": lambda m: m.SerializeToString(),
        "response_deserializer": GetMessageClass(method.output_type).FromString,
    }
    try:
        if method.client_streaming and method.server_streaming:
            list(channel.stream_stream(path, **kwargs)(iter(requests), timeout=CALL_TIMEOUT_S))
        elif method.client_streaming:
            channel.stream_unary(path, **kwargs)(iter(requests), timeout=CALL_TIMEOUT_S)
        elif method.server_streaming:
            list(channel.unary_stream(path, **kwargs)(requests[0], timeout=CALL_TIMEOUT_S))
        else:
            channel.unary_unary(path, **kwargs)(requests[0], timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


# Status codes seen per RPC, so the last test can show (and check) how deep the fuzzing got.
OUTCOMES: dict[str, Counter[str]] = defaultdict(Counter)


def check(served: Served, method: MethodDescriptor, requests: list[Message]) -> None:
    offset = served.log_size()
    code, details = invoke(served.channel, method, requests)
    OUTCOMES[method.name][code.name] += 1
    alive = served.process.poll() is None
    if code in SERVER_FAULTS or not alive:
        shown = "\n---\n".join(str(r) or "<empty>" for r in requests) or "<no messages>"
        raise AssertionError(
            f"{method.name} -> {code.name} {details!r} (server alive: {alive})\n"
            f"request(s):\n{shown}\nserver output:\n{served.log_from(offset)[-6000:]}"
        )


def nan_payload() -> struct_pb2.Struct:
    return make_struct({"n": math.nan})


def bad_path_filter() -> vpb.Filter:
    return vpb.Filter(must=[vpb.Condition(is_null=vpb.IsNull(key="a b"))])


# Failures this fuzzing has found, pinned as explicit examples of the fixed sweep so that a
# fix is verified on every run (the generated sweep may not happen to hit them again).
def nan_write(cls: type[Message]) -> list[list[Message]]:
    document = vpb.Document(id="d0", text="x", payload=nan_payload())
    return [[cls(collection="docs", documents=[document])]]


FOUND: dict[str, list[list[Message]]] = {
    "Upsert": nan_write(vpb.UpsertRequest),
    "Ingest": nan_write(vpb.IngestRequest),
    "IngestStream": nan_write(vpb.IngestStreamRequest),
    "Search": [
        [
            vpb.SearchRequest(
                collection="docs", text="hello", params=vpb.QueryParams(read_consistency="\u00b2")
            )
        ],
        [vpb.SearchRequest(collection="docs", text="hello", filter=bad_path_filter())],
    ],
    "Recommend": [
        [
            vpb.RecommendRequest(
                collection="docs",
                positive=[vpb.Example(id="d1")],
                params=vpb.QueryParams(read_consistency="\u00b2"),
            )
        ],
        [
            vpb.RecommendRequest(
                collection="docs", positive=[vpb.Example(id="d1")], filter=bad_path_filter()
            )
        ],
    ],
    "Count": [[vpb.CountRequest(collection="docs", filter=bad_path_filter())]],
    # a sample of 3 points leaves k at most 2, below k_min
    "Cluster": [[vpb.ClusterRequest(collection="docs", k_min=3, max_points=3)]],
    "Delete": [[vpb.DeleteRequest(collection="docs", filter=bad_path_filter())]],
}


def fuzz(served: Served, method: MethodDescriptor, examples: int, derandomize: bool) -> None:
    def run(requests: list[Message]) -> None:
        check(served, method, requests)

    for requests in FOUND.get(method.name, []) if derandomize else []:
        run = example(requests)(run)
    configured = settings(
        max_examples=examples,
        derandomize=derandomize,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
    )
    configured(given(calls(method))(run))()


def budget(method: MethodDescriptor) -> int:
    per_field = EXAMPLES_PER_FIELD_HEAVY if method.name in HEAVY else EXAMPLES_PER_FIELD
    return 10 + per_field * len(field_names(method.input_type))


# Per RPC the fixed sweep, then the random one; destructive RPCs come last (see METHODS).
SWEEPS = [
    pytest.param(method, fixed, id=f"{method.name}-{'fixed' if fixed else 'random'}")
    for method in METHODS
    for fixed in (True, False)
]


@pytest.mark.parametrize(("method", "fixed"), SWEEPS)
def test_fuzz(served: Served, method: MethodDescriptor, fixed: bool) -> None:
    """fixed: the same requests on every run. random: a few fresh ones each run, so CI slowly
    explores beyond the fixed sweep (a failure prints the blob that reproduces it)."""
    examples = budget(method) if fixed else max(2, round(RANDOM_SHARE * budget(method)))
    fuzz(served, method, examples, derandomize=fixed)


def test_server_still_serves_after_fuzzing(served: Served) -> None:
    """Runs last in this module: whatever the fuzzing did, the server is alive and correct."""
    served.assert_serving()
    names = vpb_grpc.VectorServiceStub(served.channel).ListCollections(
        vpb.ListCollectionsRequest(), timeout=CALL_TIMEOUT_S
    )
    assert set(SEEDED) <= set(names.names)
    print("\n".join(f"{name}: {dict(codes)}" for name, codes in OUTCOMES.items()))
    # Guards the strategies: each RPC must sometimes get past validation, or it is not fuzzed.
    assert not [name for name, codes in OUTCOMES.items() if not codes["OK"]], OUTCOMES
