"""JSON bodies held to Unicode: a lone surrogate escape (``"\\ud800"``) is a 400.

Python's ``json`` turns such an escape into a string that is no text (it cannot be encoded
as UTF-8), which the tokenizer and the store then fail on far from the request. gRPC never
sees one: protobuf refuses a string that is not UTF-8. The routes here use
:class:`StrictJsonRoute`, whose request decodes JSON as Python does and then refuses them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from embedserve.server.json_escapes import lone_surrogate_at


def loads(body: bytes) -> Any:
    """``json.loads`` of a UTF-8 body, refusing a lone surrogate escape; every failure is
    a JSONDecodeError, which FastAPI answers as a 400 naming it."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError("the body is not UTF-8", "", exc.start) from exc
    try:
        value = json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("arrays or objects nested too deeply", "", 0) from None
    if (position := lone_surrogate_at(text)) is not None:
        escape = text[position : position + 6]
        raise json.JSONDecodeError(
            f"{escape} is half of a surrogate pair, not a character", text, position
        )
    return value


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """A route whose JSON body must be text: see the module's docstring."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict
