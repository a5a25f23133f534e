"""Per-request policy, as a FastAPI dependency: drain, API key and role, collection, rate limit.

The role comes from the one table in ``auth``: each route names the RPC it mirrors.
"""

from __future__ import annotations

from fastapi import Request

from embedserve.server import callctx
from embedserve.server.auth import (
    METHOD_ROLES,
    ROUTE_METHODS,
    ApiKey,
    Role,
    authorize,
    bearer_token,
    check_collection,
)
from embedserve.server.drain import ServerDraining
from embedserve.server.http.backend import backend_of


def route_key(request: Request) -> str:
    """'VERB /path/{template}' of the matched route: its key in ``ROUTE_METHODS``."""
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path_format', request.url.path)}"


def rpc_of(request: Request) -> str:
    return ROUTE_METHODS.get(route_key(request), "")


async def guard(request: Request) -> ApiKey | None:
    """The caller's key (``None`` with auth off), once every policy let the request in."""
    backend = backend_of(request)
    if backend.drain.started:
        raise ServerDraining("the server is shutting down; send the request elsewhere")
    key: ApiKey | None = None
    if len(backend.keys):
        method = rpc_of(request)
        role = METHOD_ROLES.get(method, Role.ADMIN)  # a route missing from the table: fail closed
        token = bearer_token(request.headers.get("authorization"))
        key = authorize(backend.keys, token, role, method or route_key(request))
        callctx.caller.set(key.key_id)
        check_collection(key, request.path_params.get("name", ""))
    if backend.limiter is not None:
        client = request.client.host if request.client else ""
        backend.limiter.check(callctx.caller.get() or client)
    return key
