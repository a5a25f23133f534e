"""API keys and roles: loading keys, the one table from RPC method to role, key lookup.

Keys come from a file (JSON, or lines ``key role [collection ...]``) or from
``EMBEDSERVE_API_KEYS`` (the same lines, ``;``-separated). A key is never logged: logs
and metrics name a key by ``key_id``, a short hash of it.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from embedserve.server.errors import FailedPrecondition, PermissionDenied, Unauthenticated
from embedserve.v1 import embedding_pb2, vector_pb2


class Role(enum.IntEnum):
    """Ordered: each role may do everything the roles below it may."""

    READ = 1
    WRITE = 2
    ADMIN = 3


@dataclasses.dataclass(frozen=True)
class ApiKey:
    key: str = dataclasses.field(repr=False)
    role: Role
    # Empty: every collection. Otherwise VectorService calls may only name these.
    collections: frozenset[str] = frozenset()

    @property
    def key_id(self) -> str:
        """A stable, non-secret name for logs and metrics."""
        return "key-" + hashlib.sha256(self.key.encode()).hexdigest()[:8]

    def allows_collection(self, name: str) -> bool:
        return not self.collections or name in self.collections


def _method_roles() -> dict[str, Role]:
    embedding = embedding_pb2.DESCRIPTOR.services_by_name["EmbeddingService"]
    vectors = vector_pb2.DESCRIPTOR.services_by_name["VectorService"]
    # Cluster can write labels into payloads (write_label).
    writes = {"Upsert", "Ingest", "IngestStream", "Delete", "UpdatePayload", "Cluster"}
    admin = {"CreateCollection", "UpdateCollection", "DeleteCollection", "UpdateAliases"}
    table: dict[str, Role] = {}
    for method in embedding.methods:
        table[f"/{embedding.full_name}/{method.name}"] = Role.READ
    for method in vectors.methods:
        role = (
            Role.ADMIN
            if method.name in admin
            else Role.WRITE
            if method.name in writes
            else Role.READ
        )
        table[f"/{vectors.full_name}/{method.name}"] = role
    return table


# The one table: full gRPC method name -> the least role allowed to call it.
METHOD_ROLES: dict[str, Role] = _method_roles()
VECTOR_SERVICE_PREFIX = (
    "/" + vector_pb2.DESCRIPTOR.services_by_name["VectorService"].full_name + "/"
)
# HTTP routes ("VERB /path/template") -> the RPC each mirrors, so one table gives both
# transports their roles. A route missing here needs ADMIN (fail closed).
_E = "/" + embedding_pb2.DESCRIPTOR.services_by_name["EmbeddingService"].full_name + "/"
_V = VECTOR_SERVICE_PREFIX
ROUTE_METHODS: dict[str, str] = {
    "POST /v1/embeddings": _E + "Embed",
    "GET /v1/models": _E + "GetModelInfo",
    "GET /v1/models/{model}": _E + "GetModelInfo",
    "POST /embeddings": _E + "Embed",
    "GET /models": _E + "GetModelInfo",
    "POST /api/v1/embed": _E + "Embed",
    "POST /api/v1/embed-stream": _E + "EmbedStream",
    "POST /api/v1/embed-tokens": _E + "EmbedTokens",
    "POST /api/v1/tokenize": _E + "Tokenize",
    "POST /api/v1/similarity": _E + "Similarity",
    "GET /api/v1/model": _E + "GetModelInfo",
    "POST /api/v1/rerank": _E + "Rerank",
    "POST /v1/rerank": _E + "Rerank",
    # Cohere's routes (http/cohere_routes.py)
    "POST /v1/embed": _E + "Embed",
    "POST /v2/embed": _E + "Embed",
    "POST /v2/rerank": _E + "Rerank",
    "GET /api/v1/collections": _V + "ListCollections",
    "POST /api/v1/collections": _V + "CreateCollection",
    "GET /api/v1/collections/{name}": _V + "GetCollection",
    "PATCH /api/v1/collections/{name}": _V + "UpdateCollection",
    "DELETE /api/v1/collections/{name}": _V + "DeleteCollection",
    "POST /api/v1/collections/{name}/upsert": _V + "Upsert",
    "POST /api/v1/collections/{name}/ingest": _V + "IngestStream",
    "POST /api/v1/collections/{name}/search": _V + "Search",
    "POST /api/v1/collections/{name}/search-batch": _V + "SearchBatch",
    "POST /api/v1/collections/{name}/recommend": _V + "Recommend",
    "POST /api/v1/collections/{name}/get": _V + "Get",
    "POST /api/v1/collections/{name}/delete": _V + "Delete",
    "POST /api/v1/collections/{name}/payload": _V + "UpdatePayload",
    "POST /api/v1/collections/{name}/count": _V + "Count",
    "POST /api/v1/collections/{name}/facet": _V + "Facet",
    "POST /api/v1/collections/{name}/scroll": _V + "Scroll",
    "POST /api/v1/collections/{name}/cluster": _V + "Cluster",
    "POST /api/v1/cluster": _V + "Cluster",
    "POST /api/v1/collections/{name}/find-duplicates": _V + "FindDuplicates",
    "POST /api/v1/find-duplicates": _V + "FindDuplicates",
    "GET /api/v1/aliases": _V + "ListAliases",
    "POST /api/v1/aliases": _V + "UpdateAliases",
    # text-embeddings-inference's routes (http/tei_routes.py)
    "POST /": _E + "Embed",
    "POST /embed": _E + "Embed",
    "POST /embed_all": _E + "EmbedTokens",
    "POST /similarity": _E + "Similarity",
    "POST /tokenize": _E + "Tokenize",
    "POST /decode": _E + "Tokenize",
    "GET /info": _E + "GetModelInfo",
    "POST /rerank": _E + "Rerank",
}
# Health and reflection: open unless --auth-health; then any valid key may call them.
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def required_role(method: str, auth_health: bool) -> Role | None:
    """The role a method needs; ``None``: open. Unknown methods need ADMIN (fail closed)."""
    if method.startswith(OPEN_PREFIXES):
        return Role.READ if auth_health else None
    return METHOD_ROLES.get(method, Role.ADMIN)


def bearer_token(header: str | None) -> str | None:
    """The key in an ``authorization`` value; ``None`` when absent. A wrong scheme counts as
    an invalid key (""), not a missing one."""
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def presented_token(authorization: Sequence[str]) -> str | None:
    """The key in a request's ``authorization`` values (as ``bearer_token``). More than one
    is refused: which would count differs by reader (gRPC's metadata keeps the last, HTTP's
    headers give the first, a proxy or a log may take either), so one request could be
    let in or refused, and rate-limited and logged as one key or another, by transport."""
    if len(authorization) > 1:
        raise Unauthenticated(
            f"the request has {len(authorization)} authorization headers; send exactly one, "
            "'authorization: Bearer <key>'"
        )
    return bearer_token(authorization[0] if authorization else None)


def authorize(keys: KeyRing, token: str | None, role: Role, method: str) -> ApiKey:
    """The caller's key, if it may call ``method``; else Unauthenticated or PermissionDenied."""
    key = identify(keys, token)
    check_role(key, role, method)
    return key


def identify(keys: KeyRing, token: str | None) -> ApiKey:
    """The key ``token`` is, whatever it may call; else Unauthenticated."""
    key = keys.lookup(token) if token is not None else None
    if key is None:
        reason = "missing" if token is None else "invalid"
        raise Unauthenticated(f"{reason} API key: send 'authorization: Bearer <key>'")
    return key


def check_role(key: ApiKey, role: Role, method: str) -> None:
    if key.role < role:
        raise PermissionDenied(
            f"{method} needs role {role.name.lower()}; this key has role {key.role.name.lower()}"
        )


def check_collection(key: ApiKey, name: str) -> None:
    if name and not key.allows_collection(name):
        raise PermissionDenied(f"this key may not use collection {name!r}")


def check_alias_change(key: ApiKey, assign: dict[str, str], remove: list[str]) -> None:
    """A key limited to some collections changes only aliases among them, pointing at
    them: its list names both the aliases it may use and what they may name."""
    for name in (*assign, *assign.values(), *remove):
        check_collection(key, name)


def shown_aliases(key: ApiKey | None, aliases: Iterable[str]) -> list[str]:
    """Of a collection's aliases, those a key sees: the ones its list holds (every one
    without a key or for an unrestricted key)."""
    return [a for a in aliases if key is None or key.allows_collection(a)]


def visible_aliases(key: ApiKey, aliases: dict[str, str]) -> dict[str, str]:
    """The aliases a limited key may use: those whose own name its list holds."""
    return {a: c for a, c in aliases.items() if key.allows_collection(a)}


class KeyRing:
    def __init__(self, keys: Iterable[ApiKey]) -> None:
        # Compared as SHA-256 digests: equal lengths, so not even a key's length leaks.
        # One tuple, so that ``replace`` swaps the whole set at once for calls in flight.
        self._digests = tuple((_digest(k.key), k) for k in keys)
        # Counts reloads, so that a stream authorised before one asks again.
        self.generation = 0

    def __len__(self) -> int:
        return len(self._digests)

    def replace(self, other: KeyRing) -> None:
        """Take ``other``'s keys (a reload); every holder of this ring sees them."""
        self._digests = other._digests
        self.generation += 1

    def lookup(self, presented: str) -> ApiKey | None:
        """Constant time in the key's content: every key is compared, no early exit."""
        candidate = _digest(presented)
        found: ApiKey | None = None
        for digest, key in self._digests:
            if hmac.compare_digest(digest, candidate) and found is None:
                found = key
        return found


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _role(text: str, where: str) -> Role:
    try:
        return Role[text.strip().upper()]
    except KeyError:
        # Named only when it looks like a role: a line written "role key" has its key here.
        near = difflib.get_close_matches(text.strip().lower(), [r.name.lower() for r in Role])
        named = repr(text) if near else "(not named: it may be a key; lines are 'key role')"
        raise FailedPrecondition(
            f"{where}: unknown role {named}; use read, write or admin"
        ) from None


def parse_lines(lines: Iterable[str], where: str, unit: str = "line") -> list[ApiKey]:
    """``key role [collection ...]`` per line; a word starting with ``#`` ends the line (a
    comment), so a comment after a key's collections is not read as more collections."""
    keys = []
    for number, raw in enumerate(lines, 1):
        words = raw.split()
        comment = next((i for i, word in enumerate(words) if word.startswith("#")), len(words))
        parts = words[:comment]
        if not parts:
            continue
        if len(parts) < 2:
            # The line holds at most the key: do not echo it.
            raise FailedPrecondition(f"{where} {unit} {number}: expected 'key role [collections]'")
        keys.append(
            ApiKey(parts[0], _role(parts[1], f"{where} {unit} {number}"), frozenset(parts[2:]))
        )
    return keys


_JSON_FIELDS = ("key", "role", "collections")


def parse_json(text: str, where: str) -> list[ApiKey]:
    """A list of ``{"key", "role", "collections"}`` objects, or ``{"keys": [...]}``.

    Strict, for a lenient reading fails open: a misspelt ``collection`` would have left its
    key unrestricted, and ``"collections": "news"`` limited it to the letters of "news"."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:  # its message quotes no content: no key is echoed
        raise FailedPrecondition(f"{where} line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if isinstance(data, dict):
        if "key" in data:
            raise FailedPrecondition(
                f"{where}: holds one key's object; write a list of them, [{{...}}, ...]"
            )
        if "keys" not in data:
            raise FailedPrecondition(
                f"{where}: a JSON object must hold 'keys', a list of {{key, role, collections}}"
            )
        if extra := set(data) - {"keys"}:
            raise FailedPrecondition(f"{where}: {_unknown(extra, ('keys',))} beside 'keys'")
        data = data["keys"]
    if not isinstance(data, list):
        raise FailedPrecondition(
            f"{where}: expected a list of {{key, role, collections}} objects "
            f'(or {{"keys": [...]}}); got a JSON {type(data).__name__}'
        )
    return [_json_key(entry, f"{where} entry {number}") for number, entry in enumerate(data, 1)]


def _unknown(names: Iterable[str], known: tuple[str, ...]) -> str:
    """Says which fields are unknown. One close to a known field is a misspelling and is
    named; any other might be a key written as a field's name, so it is only counted."""
    said, hidden = [], 0
    for name in sorted(names):
        if close := difflib.get_close_matches(name, known, 1, 0.6):
            said.append(f"unknown field {name!r} (did you mean {close[0]!r}?)")
        else:
            hidden += 1
    if hidden:
        said.append(f"{hidden} unknown field{'s' * (hidden > 1)} (not named: it may be a key)")
    return "; ".join(said)


def _json_key(entry: object, where: str) -> ApiKey:
    if not isinstance(entry, dict):
        raise FailedPrecondition(f"{where}: expected an object {{key, role, collections}}")
    if extra := set(entry) - set(_JSON_FIELDS):
        raise FailedPrecondition(
            f"{where}: {_unknown(extra, _JSON_FIELDS)}; the fields are {', '.join(_JSON_FIELDS)}"
        )
    key, role = entry.get("key"), entry.get("role")
    if not isinstance(key, str) or not key:
        raise FailedPrecondition(f"{where}: needs a non-empty string 'key'")
    # No default role: the README documents none, and a forgotten one is better refused.
    if not isinstance(role, str):
        raise FailedPrecondition(f"{where}: needs a 'role': read, write or admin")
    collections = entry.get("collections", ())
    if "collections" in entry and (
        not isinstance(collections, list)
        or not collections
        or not all(isinstance(name, str) and name for name in collections)
    ):
        raise FailedPrecondition(
            f"{where}: 'collections' must be a non-empty list of collection names, such as "
            '["news"]; leave it out for a key that may use every collection'
        )
    return ApiKey(key, _role(role, where), frozenset(collections))


@dataclasses.dataclass(frozen=True)
class AuthSettings:
    """The auth section of the settings. No keys: auth is off."""

    api_keys_file: str = ""  # JSON, or 'key role [collections...]' lines
    api_keys: str = dataclasses.field(default="", repr=False)  # the same lines, ';'-separated
    auth_health: bool = False  # also require a key for health and reflection


def load_keys(settings: AuthSettings) -> KeyRing:
    """The keys of the file and the variable. A source that is given but holds no key is
    refused, at start as on a reload: auth would be off (or, on a reload, the keys thought
    to be in force would not be)."""
    keys: list[ApiKey] = []
    if path := settings.api_keys_file:
        try:
            # utf-8-sig: a byte order mark is not part of the first key.
            text = Path(path).read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise FailedPrecondition(f"cannot read api keys file {path}: {exc.strerror}") from exc
        except UnicodeDecodeError:
            raise FailedPrecondition(f"api keys file {path} is not UTF-8 text") from None
        if text.lstrip().startswith(("[", "{")):
            from_file = parse_json(text, path)
        else:
            from_file = parse_lines(text.splitlines(), path)
        if not from_file:
            raise FailedPrecondition(
                f"api keys file {path} holds no key, which would turn auth off; give at least "
                "one 'key role [collection ...]' line, or no --api-keys-file to run without auth"
            )
        keys += from_file
    if settings.api_keys.strip():
        from_env = parse_lines(settings.api_keys.split(";"), "EMBEDSERVE_API_KEYS", "entry")
        if not from_env:
            raise FailedPrecondition(
                "EMBEDSERVE_API_KEYS holds no key, which would turn auth off; give at least "
                "one 'key role [collection ...]' entry, or leave it unset to run without auth"
            )
        keys += from_env
    if any(not k.key for k in keys):
        raise FailedPrecondition("api keys must not be empty")
    return KeyRing(keys)
