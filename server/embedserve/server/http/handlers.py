"""Exception handlers: every failure leaves as a status from the one table (an unexpected
exception is answered by ObserveMiddleware: 500, INTERNAL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Mount

from embedserve.server.errors import EmbedServeError
from embedserve.server.http.responses import TEI_PATHS, core_error_response, error_response

_HTTP_CODES = {
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    # A content coding the server does not decode, as gRPC answers a grpc-encoding it lacks.
    415: grpc.StatusCode.UNIMPLEMENTED,
    400: grpc.StatusCode.INVALID_ARGUMENT,
}
# Statuses HTTP has where the status table has none: answered as themselves.
_OWN_STATUSES = frozenset({405, 415})


def _field(location: tuple[object, ...]) -> str:
    # ('body', 'options', 'dimensions') -> 'options.dimensions'; list positions as [i];
    # the branch of a tagged union (a tag with a space, "TEI's body") is left out.
    parts = [p for p in location if p != "body" and not (isinstance(p, str) and " " in p)]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "body"


async def on_core_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EmbedServeError)
    return core_error_response(request, exc)


def validation_message(errors: Sequence[Any]) -> str:
    """The first problem pydantic found, naming its field; a count of the others."""
    first: dict[str, Any] = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    if first.get("type") == "json_invalid":  # FastAPI's loc: ("body", character offset)
        where = [f" (at character {p})" for p in first.get("loc", ()) if isinstance(p, int)]
        return f"body is not valid JSON: {first.get('ctx', {}).get('error', '')}{''.join(where)}"
    field, problem = _field(tuple(first.get("loc", ()))), str(first.get("msg", "invalid"))
    branch = [p for p in first.get("loc", ()) if isinstance(p, str) and " " in p]
    message = problem if problem.startswith(field) else f"{field}: {problem}"
    if branch:
        message += f" ({branch[0]})"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problems)"
    return message


async def on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # TEI answers a body it cannot read as its request with 422 (413: one it refuses).
    status = 422 if request.url.path in TEI_PATHS else None
    message = _not_json(request, exc.errors()) or validation_message(exc.errors())
    return error_response(request, grpc.StatusCode.INVALID_ARGUMENT, message, status=status)


def _not_json(request: Request, errors: Sequence[Any]) -> str | None:
    """The header, where a body arrived as raw bytes because it was not declared JSON
    (curl -d sends form-urlencoded): pydantic would only say it wanted an object."""
    declared = request.headers.get("content-type", "")
    media = declared.split(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json") or not errors:
        return None
    first = errors[0]
    if tuple(first.get("loc", ())) != ("body",) or not isinstance(first.get("input"), bytes):
        return None
    return f"the body must be JSON, sent with content-type application/json; got {declared!r}"


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, grpc.StatusCode.INVALID_ARGUMENT)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # A path that exists, called with another verb: 405 and the verbs it takes, not
        # the 501 of an RPC the server lacks.
        headers["Allow"] = ", ".join(allowed_methods(request))
    status = exc.status_code if exc.status_code in _OWN_STATUSES else None
    return error_response(request, code, str(exc.detail), headers or None, status=status)


_VERBS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """The verbs some route takes on the request's path (HEAD wherever GET: head.py).
    Starlette's own Allow header names only the first route that matched (GET, where GET
    and POST share a path)."""
    routes = request.app.routes
    # Matched from the app's root: within a mount (the docs' assets) the scope's root_path
    # is the mount's, and no route of the app matched there.
    scope = {**request.scope, "root_path": request.scope.get("app_root_path", "")}
    return [
        verb
        for verb in _VERBS
        if any(
            # A mount matches any verb; the app's one serves static files (docs.py).
            (verb in ("GET", "HEAD") or not isinstance(route, Mount))
            and route.matches({**scope, "method": "GET" if verb == "HEAD" else verb})[0]
            is Match.FULL
            for route in routes
        )
    ]


def install(app: FastAPI) -> None:
    app.add_exception_handler(EmbedServeError, on_core_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
