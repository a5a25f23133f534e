"""Authentication and authorisation of every call, from the ``authorization`` metadata."""

from __future__ import annotations

from typing import Any

from embedserve.server import callctx
from embedserve.server.auth import (
    VECTOR_SERVICE_PREFIX,
    ApiKey,
    KeyRing,
    Role,
    authorize,
    check_alias_change,
    check_collection,
    check_role,
    identify,
    presented_token,
    required_role,
    shown_aliases,
    visible_aliases,
)
from embedserve.server.call_hooks import CallHooks, Context, HookInterceptor, Metadata
from embedserve.server.errors import EmbedServeError
from embedserve.server.status import details_of, status_of
from embedserve.v1 import vector_pb2


class _Check(CallHooks):
    def __init__(
        self, keys: KeyRing, role: Role, method: str, authorization: tuple[str, ...]
    ) -> None:
        self._keys = keys
        self._role = role
        self._method = method
        self._authorization = authorization  # every value sent: more than one is refused
        self._token: str | None = None
        self._key: ApiKey | None = None
        self._generation = 0  # of the key ring, when the key was looked up
        self._collections: set[str] = set()  # named by this call's messages so far
        # Only VectorService requests name a collection subject to the allow-list.
        self._check_collection = method.startswith(VECTOR_SERVICE_PREFIX)

    async def begin(self, context: Context) -> Any:
        try:
            self._token = presented_token(self._authorization)
            key = identify(self._keys, self._token)
            state = callctx.set_caller(key.key_id)  # named in the access log if refused too
            check_role(key, self._role, self._method)
        except EmbedServeError as exc:
            await context.abort(status_of(exc), details_of(exc))
            raise  # unreachable: abort raises
        self._key, self._generation = key, self._keys.generation
        return state

    async def on_request(self, request: Any, context: Context) -> None:
        if self._key is None:
            return
        # A stream opened before a reload gets no further message through with a key that
        # was revoked, lowered or narrowed to other collections meanwhile.
        reloaded = self._keys.generation != self._generation
        try:
            if reloaded:
                self._generation = self._keys.generation
                self._key = authorize(self._keys, self._token, self._role, self._method)
            if not self._check_collection:
                return
            if isinstance(request, vector_pb2.UpdateAliasesRequest):
                check_alias_change(self._key, dict(request.set), list(request.delete))
            # CreateCollection/GetCollection/DeleteCollection name it 'name'; the rest
            # 'collection'. A stream's later messages may leave it out: the names used so
            # far are checked again after a reload.
            named = [getattr(request, field, None) for field in ("collection", "name")]
            this_message = [n for n in named if isinstance(n, str) and n]
            self._collections.update(this_message)
            for name in self._collections if reloaded else this_message:
                check_collection(self._key, name)
        except EmbedServeError as exc:
            # Raised, not aborted: a stream ends with it after the earlier messages' answers.
            if reloaded:
                exc.message = "the API keys were reloaded during this call: " + exc.message
            raise

    def on_response(self, response: Any) -> Any:
        # ListCollections names no collection: show a restricted key only its own.
        if isinstance(response, vector_pb2.ListCollectionsResponse) and self._key is not None:
            allowed = [n for n in response.names if self._key.allows_collection(n)]
            return vector_pb2.ListCollectionsResponse(names=allowed)
        if isinstance(response, _WITH_COLLECTION_INFO) and self._key is not None:
            aliases = response.collection.aliases
            kept = shown_aliases(self._key, aliases)
            if len(kept) != len(aliases):
                del aliases[:]
                aliases.extend(kept)
            return response
        if isinstance(response, vector_pb2.ListAliasesResponse) and self._key is not None:
            shown = visible_aliases(self._key, {a.alias: a.collection for a in response.aliases})
            return vector_pb2.ListAliasesResponse(
                aliases=[vector_pb2.Alias(alias=a, collection=c) for a, c in shown.items()]
            )
        return response

    def end(self, state: Any, context: Context, error: BaseException | None) -> None:
        if state is not None:
            callctx.reset(callctx.caller, state)


# Answers naming a collection's aliases: a restricted key sees only those on its list, as
# ListAliases shows it.
_WITH_COLLECTION_INFO = (
    vector_pb2.CreateCollectionResponse,
    vector_pb2.GetCollectionResponse,
    vector_pb2.UpdateCollectionResponse,
)


class AuthInterceptor(HookInterceptor):
    def __init__(self, keys: KeyRing, auth_health: bool) -> None:
        self._keys = keys
        self._auth_health = auth_health

    def hooks_for(self, method: str, metadata: Metadata) -> CallHooks | None:
        role = required_role(method, self._auth_health)
        if role is None:
            return None
        return _Check(self._keys, role, method, metadata.every("authorization"))
