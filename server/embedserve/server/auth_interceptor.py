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
    bearer_token,
    check_alias_change,
    check_collection,
    required_role,
    visible_aliases,
)
from embedserve.server.call_hooks import CallHooks, Context, HookInterceptor
from embedserve.server.errors import EmbedServeError
from embedserve.server.status import status_of
from embedserve.v1 import vector_pb2


class _Check(CallHooks):
    def __init__(self, keys: KeyRing, role: Role, method: str, token: str | None) -> None:
        self._keys = keys
        self._role = role
        self._method = method
        self._token = token
        self._key: ApiKey | None = None
        # Only VectorService requests name a collection subject to the allow-list.
        self._check_collection = method.startswith(VECTOR_SERVICE_PREFIX)

    async def begin(self, context: Context) -> Any:
        try:
            key = authorize(self._keys, self._token, self._role, self._method)
        except EmbedServeError as exc:
            await context.abort(status_of(exc), exc.message)
            raise  # unreachable: abort raises
        self._key = key
        return callctx.caller.set(key.key_id)

    async def on_request(self, request: Any, context: Context) -> None:
        if self._key is None or not self._check_collection or not self._key.collections:
            return
        try:
            if isinstance(request, vector_pb2.UpdateAliasesRequest):
                check_alias_change(self._key, dict(request.set), list(request.delete))
            # CreateCollection/GetCollection/DeleteCollection name it 'name'; the rest
            # 'collection'.
            for field in ("collection", "name"):
                name = getattr(request, field, None)
                if isinstance(name, str):
                    check_collection(self._key, name)
        except EmbedServeError as exc:
            await context.abort(status_of(exc), exc.message)

    def on_response(self, response: Any) -> Any:
        # ListCollections names no collection: show a restricted key only its own.
        if isinstance(response, vector_pb2.ListCollectionsResponse) and self._key is not None:
            allowed = [n for n in response.names if self._key.allows_collection(n)]
            return vector_pb2.ListCollectionsResponse(names=allowed)
        if isinstance(response, vector_pb2.ListAliasesResponse) and self._key is not None:
            shown = visible_aliases(self._key, {a.alias: a.collection for a in response.aliases})
            return vector_pb2.ListAliasesResponse(
                aliases=[vector_pb2.Alias(alias=a, collection=c) for a, c in shown.items()]
            )
        return response

    def end(self, state: Any, context: Context, error: BaseException | None) -> None:
        if state is not None:
            callctx.reset(callctx.caller, state)


class AuthInterceptor(HookInterceptor):
    def __init__(self, keys: KeyRing, auth_health: bool) -> None:
        self._keys = keys
        self._auth_health = auth_health

    def hooks_for(self, method: str, metadata: dict[str, str]) -> CallHooks | None:
        role = required_role(method, self._auth_health)
        if role is None:
            return None
        token = bearer_token(metadata.get("authorization"))
        return _Check(self._keys, role, method, token)
