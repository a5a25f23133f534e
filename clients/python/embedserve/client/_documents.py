"""Documents, filters and hits: plain Python values to VectorService messages and back."""

from __future__ import annotations

import dataclasses
import json
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from google.protobuf import json_format

from embedserve.client._options import Vectors, check_uint32, listed
from embedserve.client._struct_numbers import inexact_integer, whole_to_int, wide_integer
from embedserve.client._unicode import surrogate_problem
from embedserve.v1 import vector_pb2 as pb

M = TypeVar("M", pb.Filter, pb.Example)

DocumentLike = Mapping[str, Any] | pb.Document
FilterLike = Mapping[str, Any] | pb.Filter
IdLike = str | int  # an integer id: its decimal string
ExampleLike = IdLike | Sequence[float] | Mapping[str, Any] | pb.Example
# The server's limit (connectors' validation.MAX_PAYLOAD_DEPTH, which README states):
# objects and arrays nest at most this deep, the payload's own object the first level.
MAX_PAYLOAD_DEPTH = 32
_PLAIN_NUMBERS = frozenset({float, int})
_CONTAINERS = (Mapping, list, tuple, np.ndarray)


@dataclasses.dataclass(frozen=True)
class Hit:
    """One search or recommendation result."""

    id: str
    score: float
    payload: dict[str, Any]
    vector: Vectors | None = None


@dataclasses.dataclass(frozen=True)
class HitGroup:
    """The best hits that share one value of the grouping payload field."""

    key: str | int
    hits: list[Hit]


@dataclasses.dataclass(frozen=True)
class FacetCount:
    """A payload value and how many documents hold it."""

    value: str | int | bool
    count: int


def facet_counts(values: Iterable[Any]) -> list[FacetCount]:
    return [FacetCount(getattr(v, v.WhichOneof("value")), int(v.count)) for v in values]


@dataclasses.dataclass(frozen=True)
class StoredDocument:
    id: str
    payload: dict[str, Any]
    vector: Vectors | None = None


def document(value: DocumentLike) -> pb.Document:
    """``{"id": ..., "text": ... | "vector": [...], "payload": {...}}`` as a Document."""
    if isinstance(value, pb.Document):
        return value
    if (problem := document_problem(value)) is not None:
        raise ValueError(f"document {value.get('id')!r} {problem}")
    if (problem := field_problem(value)) is not None:
        raise ValueError(f"document {value.get('id')!r}: {problem}")
    doc = pb.Document(id=str(value["id"]))  # an integer id: its decimal string
    if value.get("text") is not None:
        doc.text = str(value["text"])
    else:
        doc.vector.values.extend(float(x) for x in value["vector"])
    payload = value.get("payload")
    if payload:
        _set_payload(doc, payload, f"document {value.get('id')!r}")
    return doc


def _set_payload(doc: pb.Document, payload: Mapping[str, Any], what: str) -> None:
    """The payload as a Struct, or, when it holds an integer a Struct's doubles would
    change (past 2**53), as JSON text in payload_json, whose numbers are exact."""
    plain = _plain_payload(payload, what)
    if inexact_integer(plain) is None:
        _struct_update(doc.payload, plain, what)
        return
    # inexact_integer found one: it is past 2**53, and within the int64 range (below).
    try:
        text = json.dumps(plain, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:  # NaN and infinities have no JSON form; the server refuses them too
        raise ValueError(f"{what}: payload numbers must be finite") from None
    except TypeError as exc:
        raise ValueError(f"{what}: {_JSON_ONLY}: {exc}") from None
    try:
        doc.payload_json = text
    except ValueError as exc:  # a string that is no text (a lone surrogate), as a Struct's
        raise ValueError(f"{what}: {_JSON_ONLY}: {exc}") from None


def field_problem(value: Mapping[str, Any]) -> str | None:
    """What is wrong with a document's fields, by name and type: the id (a string or an
    integer), text (a string), vector (a list of numbers) or payload (an object of at most
    MAX_PAYLOAD_DEPTH levels). str() would make "None" or "['a']" of them silently."""
    doc_id, text = value.get("id"), value.get("text")
    if (problem := _id_problem(doc_id)) is not None:
        return problem
    if text is not None and not isinstance(text, str):
        return f"text must be a string, not {_type_name(text)}"
    for name, field in (("id", doc_id), ("text", text)):  # protobuf's error names neither
        if isinstance(field, str) and (problem := surrogate_problem(field)) is not None:
            return f"field '{name}' {problem}"  # as the command line names it
    if text is None and (problem := _vector_problem(value.get("vector"))) is not None:
        return problem
    return payload_problem(value.get("payload"))


def _id_problem(doc_id: Any) -> str | None:
    if not isinstance(doc_id, str | numbers.Integral) or isinstance(doc_id, bool):
        return f"id must be a string or an integer, not {_type_name(doc_id)}"
    return None


def point_ids(ids: Iterable[IdLike]) -> list[str]:
    """Ids as the messages carry them: an integer id as its decimal string, as
    ``document`` writes it; a single string is refused (``listed``)."""
    values = listed(ids, "ids takes a list of ids")
    for position, value in enumerate(values):
        if (problem := _id_problem(value)) is not None:
            raise ValueError(f"ids[{position}]: {problem}")
    return [str(value) for value in values]


def _vector_problem(vector: Any) -> str | None:
    if isinstance(vector, np.ndarray) and vector.ndim == 1 and vector.dtype.kind in "iuf":
        return None
    not_a_list = isinstance(vector, str | bytes | Mapping) or not isinstance(vector, Iterable)
    if not_a_list or (isinstance(vector, np.ndarray) and vector.ndim == 0):
        return f"vector must be a list of numbers, not {_type_name(vector)}"
    for index, item in enumerate(vector):
        if type(item) in _PLAIN_NUMBERS:
            continue
        # bool is a number to Python and a string passes float(): neither is meant
        if not isinstance(item, numbers.Real) or isinstance(item, bool | np.bool_):
            return f"vector must be a list of numbers; item {index} is {_type_name(item)}"
    return None


def payload_problem(payload: Any) -> str | None:
    """Why ``payload`` cannot be a document's payload: not an object, or nested deeper
    than the server stores (where protobuf's own copy of the message fails with a
    DecodeError that names nothing)."""
    if payload is None:
        return None
    if not isinstance(payload, Mapping):
        return f"payload must be an object, not {_type_name(payload)}"
    return _nesting_problem(payload, "payload", 0)


def _nesting_problem(value: Any, path: str, depth: int) -> str | None:
    """The first object or array (``value`` is one, at ``depth``; the payload's own is 0)
    at depth MAX_PAYLOAD_DEPTH or deeper, as the server counts; a numpy array counts its
    dimensions, as the lists it becomes."""
    levels = value.ndim if isinstance(value, np.ndarray) else 1
    if depth + levels > MAX_PAYLOAD_DEPTH:
        return f"{path}: objects and arrays nest at most {MAX_PAYLOAD_DEPTH} deep"
    if isinstance(value, np.ndarray):
        return None  # within the limit, and its items are numbers
    mapping = isinstance(value, Mapping)
    items: Iterable[tuple[Any, Any]] = value.items() if mapping else enumerate(value)
    for key, item in items:
        if isinstance(item, _CONTAINERS):  # a path is made only for what may go deeper
            where = f"{path}.{key}" if mapping else f"{path}[{key}]"
            if (problem := _nesting_problem(item, where, depth + 1)) is not None:
                return problem
    return None


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def fill_payload(struct: Any, payload: Mapping[str, Any], what: str) -> None:
    """Copy a JSON-like payload into a Struct, naming ``what`` when it is not JSON, or
    when it holds an integer a Struct's doubles would change (past 2**53)."""
    plain = _plain_payload(payload, what)
    if (problem := inexact_integer(plain)) is not None:
        raise ValueError(f"{what}: payload {problem}")
    _struct_update(struct, plain, what)


def _plain_payload(payload: Mapping[str, Any], what: str) -> dict[str, Any]:
    """The payload in Python's own types, checked: JSON values, nesting, and integers a
    store keeps (a double holds 2**63 exactly, so the Struct would carry it, and the
    store would keep a float no integer filter matches)."""
    if (problem := payload_problem(payload)) is not None:
        raise ValueError(f"{what}: {problem}")
    plain = {str(k): _plain(v) for k, v in dict(payload).items()}
    if (problem := wide_integer(plain)) is not None:
        raise ValueError(f"{what}: payload {problem}")
    return plain


_JSON_ONLY = (
    "a payload holds JSON values only (str, int, float, bool, None, lists and dicts of them)"
)


def _struct_update(struct: Any, plain: dict[str, Any], what: str) -> None:
    try:
        struct.update(plain)
    except (TypeError, ValueError) as exc:  # protobuf says only "Unexpected type"
        raise ValueError(f"{what}: {_JSON_ONLY}: {exc}") from None


def _plain(value: Any) -> Any:
    """numpy numbers and arrays (as pandas and numpy hand them out) as Python's own."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def payload_dict(struct: Any) -> dict[str, Any]:
    """A payload as written. A Struct's numbers are doubles on the wire; the store keeps
    whole ones as integers (integer filters match them), and so they come back here."""
    return {key: whole_to_int(value) for key, value in json_format.MessageToDict(struct).items()}


def stored_payload(message: pb.StoredDocument) -> dict[str, Any]:
    """A stored document's payload: from payload_json (a read with exact_payloads, numbers
    exactly as stored) when it is there, else from the Struct."""
    if message.payload_json:
        payload: dict[str, Any] = json.loads(message.payload_json)
        return payload
    return payload_dict(message.payload)


def document_problem(value: Mapping[str, Any]) -> str | None:
    """What a document lacks (an id; a text or a vector), naming the fields it has; one
    that is null is none (JSON's ``"text": null``, a CSV row that ends before its text)."""
    text, vector = value.get("text"), value.get("vector")
    if text is not None and vector is not None:
        return "takes a text or a vector, not both"
    if "id" in value and (text is not None or vector is not None):
        return None  # an id of null: field_problem names it
    given = [str(key) for key, item in value.items() if item is not None]
    problem = f"needs an id and a text or a vector; this one has {', '.join(given) or 'no fields'}"
    nulls = [key for key in ("id", "text", "vector") if key in value and value[key] is None]
    if nulls:
        problem += f", and its {' and '.join(nulls)} {'is' if len(nulls) == 1 else 'are'} null"
    return problem


def documents(values: Iterable[DocumentLike]) -> list[pb.Document]:
    return [document(v) for v in values]


def query_filter(value: FilterLike | None) -> pb.Filter | None:
    """A Filter message, or its JSON form, e.g.
    ``{"must": [{"match": {"key": "topic", "text": "space"}}]}``."""
    if value is None or isinstance(value, pb.Filter):
        return value
    try:
        return _parsed(value, pb.Filter(), "filter")
    except ValueError as exc:  # protobuf's own words repeat a line per level: 1,500 characters
        if "Message too deep" in str(exc):
            raise ValueError(f"filter: {FILTER_TOO_DEEP}") from None
        raise


# protobuf reads messages at most 100 deep: a filter in a condition in a filter takes two
# levels a step, through nested three.
FILTER_TOO_DEEP = (
    "nested too deep; filters go at most 48 deep within one another "
    "(32 through nested or min_should)"
)


def _parsed(value: Mapping[str, Any], message: M, name: str) -> M:
    """``value`` in ``message``'s JSON form, or a ValueError naming what it is: a client
    mistake, like the other checks made before sending."""
    try:
        return json_format.ParseDict(dict(value), message)
    except json_format.ParseError as exc:
        raise ValueError(f"{name}: {exc}") from exc


def example(value: ExampleLike) -> pb.Example:
    """A stored id (str or int), a vector, ``{"text": ...}`` or an Example message."""
    if isinstance(value, pb.Example):
        return value
    if isinstance(value, str | int | np.integer):
        if (problem := _id_problem(value)) is not None:  # True is no id
            raise ValueError(f"example: {problem}")
        return pb.Example(id=str(value))
    if isinstance(value, Mapping):
        return _parsed(value, pb.Example(), "example")
    return pb.Example(vector=pb.Vector(values=[float(x) for x in value]))


def query_params(
    limit: int | None = None,
    offset: int = 0,
    score_threshold: float | None = None,
    with_payload: bool | None = None,
    with_vectors: bool = False,
    exact: bool = False,
    hnsw_ef: int | None = None,
    read_consistency: str = "",
    diversity: float | None = None,
    diversity_candidates: int | None = None,
    payload_keys: Sequence[str] = (),
    keyword_weight: float | None = None,
    oversampling: float | None = None,
) -> pb.QueryParams:
    numbers = {
        "limit": limit,
        "offset": offset,
        "hnsw_ef": hnsw_ef,
        "diversity_candidates": diversity_candidates,
    }
    for name, number in numbers.items():
        check_uint32(name, number)
    params = pb.QueryParams(
        offset=offset, with_vectors=with_vectors, exact=exact, read_consistency=read_consistency
    )
    if limit is not None:
        params.limit = limit
    if score_threshold is not None:
        params.score_threshold = score_threshold
    if with_payload is not None:
        params.with_payload = with_payload
    if hnsw_ef is not None:
        params.hnsw_ef = hnsw_ef
    if diversity is not None:
        params.diversity = diversity
    if diversity_candidates is not None:
        params.diversity_candidates = diversity_candidates
    params.payload_keys.extend(listed(payload_keys, "payload_keys takes a list of keys"))
    if keyword_weight is not None:
        params.keyword_weight = keyword_weight
    if oversampling is not None:
        params.oversampling = oversampling
    return params


def _vector(message: pb.ScoredDocument | pb.StoredDocument) -> Vectors | None:
    if not message.HasField("vector"):
        return None
    return np.array(message.vector.values, dtype=np.float32)


def hits(results: Sequence[pb.ScoredDocument]) -> list[Hit]:
    return [Hit(r.id, r.score, payload_dict(r.payload), _vector(r)) for r in results]


def hit_groups(groups: Sequence[pb.HitGroup]) -> list[HitGroup]:
    return [HitGroup(getattr(g, g.WhichOneof("key") or "text"), hits(g.hits)) for g in groups]


def stored(results: Sequence[pb.StoredDocument]) -> list[StoredDocument]:
    return [StoredDocument(r.id, stored_payload(r), _vector(r)) for r in results]
