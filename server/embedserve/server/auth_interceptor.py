"""Authentication and authorisation of every call, from the ``authorization`` metadata."""

from __future__ import annotations

from typing import Any

import grpc

from embedserve.server import callctx
from embedserve.server.auth import VECTOR_SERVICE_PREFIX, ApiKey, KeyRing, Role, required_role
from embedserve.server.call_hooks import CallHooks, Context, HookInterceptor
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
        key = self._keys.lookup(self._token) if self._token is not None else None
        if key is None:
            reason = "missing" if self._token is None else "invalid"
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                f"{reason} API key: send metadata 'authorization: Bearer <key>'",
            )
            return None  # unreachable: abort raises
        if key.role < self._role:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{self._method} needs role {self._role.name.lower()}; "
                f"this key has role {key.role.name.lower()}",
            )
        self._key = key
        return callctx.caller.set(key.key_id)

    async def on_request(self, request: Any, context: Context) -> None:
        if self._key is None or not self._check_collection or not self._key.collections:
            return
        # CreateCollection/GetCollection/DeleteCollection name it 'name'; the rest 'collection'.
        for field in ("collection", "name"):
            name = getattr(request, field, None)
            if isinstance(name, str) and name and not self._key.allows_collection(name):
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"this key may not use collection {name!r}",
                )

    def on_response(self, response: Any) -> Any:
        # ListCollections names no collection: show a restricted key only its own.
        if isinstance(response, vector_pb2.ListCollectionsResponse) and self._key is not None:
            allowed = [n for n in response.names if self._key.allows_collection(n)]
            return vector_pb2.ListCollectionsResponse(names=allowed)
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
        header = metadata.get("authorization")
        token: str | None = None
        if header is not None:
            scheme, _, value = header.partition(" ")
            # A wrong scheme counts as an invalid key, not a missing one.
            token = value.strip() if scheme.lower() == "bearer" else ""
        return _Check(self._keys, role, method, token)
