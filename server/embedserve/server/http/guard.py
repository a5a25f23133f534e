"""Per-request policy, as a FastAPI dependency: drain, API key and role, collection, rate limit.

The role comes from the one table in ``auth``: each route names the RPC it mirrors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

from fastapi import Request

from embedserve.server import callctx
from embedserve.server.auth import (
    METHOD_ROLES,
    ROUTE_METHODS,
    ApiKey,
    Role,
    check_collection,
    check_role,
    identify,
    presented_token,
)
from embedserve.server.drain import ServerDraining
from embedserve.server.errors import EmbedServeError
from embedserve.server.http.backend import backend_of
from embedserve.server.ratelimit import client_address

T = TypeVar("T")


def route_key(request: Request) -> str:
    """'VERB /path/{template}' of the matched route: its key in ``ROUTE_METHODS``."""
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path_format', request.url.path)}"


def rpc_of(request: Request) -> str:
    return ROUTE_METHODS.get(route_key(request), "")


async def guard(request: Request) -> ApiKey | None:
    """The caller's key (``None`` with auth off), once every policy let the request in.
    Run once per request: by StrictJsonRoute before the body is read, then as the route's
    dependency, which takes that outcome."""
    if hasattr(request.state, "guarded"):
        guarded: ApiKey | None = request.state.guarded
        return guarded
    backend = backend_of(request)
    if backend.drain.started:
        backend.drain.refused()  # as gRPC's: the listeners stay while callers keep coming
        raise ServerDraining("the server is shutting down; send the request elsewhere")
    key: ApiKey | None = None
    request.state.keys_generation = backend.keys.generation
    if len(backend.keys):
        key = _authorize(request)
    if backend.limiter is not None:
        client = client_address(request.client.host) if request.client else ""
        backend.limiter.check(callctx.caller.get() or client)
    request.state.guarded = key
    return key


def is_guarded(dependencies: Sequence[Any]) -> bool:
    """Whether a route's dependencies (FastAPI's Dependant tree) hold ``guard``."""
    return any(d.call is guard or is_guarded(d.dependencies) for d in dependencies)


def _authorize(request: Request) -> ApiKey:
    """The request's key, if it may call the route's RPC on the path's collection."""
    method = rpc_of(request)
    role = METHOD_ROLES.get(method, Role.ADMIN)  # a route missing from the table: fail closed
    token = presented_token(request.headers.getlist("authorization"))
    key = identify(backend_of(request).keys, token)
    callctx.set_caller(key.key_id)  # noted for the access log line, if refused too
    check_role(key, role, method or route_key(request))
    check_collection(key, request.path_params.get("name", ""))
    return key


async def held_to_reloads(request: Request, lines: AsyncIterator[T]) -> AsyncIterator[T]:
    """A stream's lines, each let through only while the keys, if they were reloaded since
    the request was let in, still let it in: a key revoked, lowered or narrowed to other
    collections meanwhile ends the stream at its next line."""
    keys = backend_of(request).keys
    async for line in lines:
        if len(keys) and keys.generation != request.state.keys_generation:
            request.state.keys_generation = keys.generation
            try:
                _authorize(request)
            except EmbedServeError as exc:
                exc.message = f"the API keys were reloaded during this call: {exc.message}"
                raise
        yield line
