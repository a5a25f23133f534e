"""JSON bodies held to Unicode: a lone surrogate escape (``"\\ud800"``) is a 400.

Python's ``json`` turns such an escape into a string that is no text (it cannot be encoded
as UTF-8), which the tokenizer and the store then fail on far from the request. gRPC never
sees one: protobuf refuses a string that is not UTF-8. The routes here use
:class:`StrictJsonRoute`, whose request decodes JSON as Python does and then refuses them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

# An escape of a surrogate code point, with the backslashes before it (an even number of
# them would make it literal text, not an escape).
_SURROGATE_ESCAPE = re.compile(r"(\\+)u([dD][89a-fA-F][0-9a-fA-F]{2})")


def _escape_at(match: re.Match[str]) -> int | None:
    """Where the escape starts, or None when the backslashes make it literal text."""
    return match.start(2) - 2 if len(match.group(1)) % 2 else None


def lone_surrogate_at(text: str) -> int | None:
    """The offset of the first surrogate escape that is not half of a pair, if any."""
    high: re.Match[str] | None = None  # a high surrogate waiting for its low half
    for match in _SURROGATE_ESCAPE.finditer(text):
        at = _escape_at(match)
        if at is None:
            continue
        is_high = int(match.group(2), 16) < 0xDC00
        if high is not None:
            if not is_high and at == high.end():
                high = None
                continue
            return _escape_at(high)
        if not is_high:
            return at
        high = match
    return None if high is None else _escape_at(high)


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
    # Only a body with a surrogate escape can hold one; the scan is skipped otherwise.
    if "\\u" in text and (position := lone_surrogate_at(text)) is not None:
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
