"""JSON bodies held to Unicode: a lone surrogate escape (``"\\ud800"``) is a 400.

Python's ``json`` turns such an escape into a string that is no text (it cannot be encoded
as UTF-8), which the tokenizer and the store then fail on far from the request. gRPC never
sees one: protobuf refuses a string that is not UTF-8. The routes here use
:class:`StrictJsonRoute`, whose request decodes JSON as Python does and then refuses them.

Bodies are read as sent, as UTF-8: one declared compressed (``Content-Encoding: gzip``)
or in another charset is refused with 415 before it is read, rather than failing as text
that is not UTF-8 (or, declared ``br`` and sent plain, being read as something the client
did not mean).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from embedserve.server.http.guard import guard, is_guarded
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
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # an integer over Python's digit limit (int_max_str_digits)
        raise _not_read(text, exc) from None
    if (position := lone_surrogate_at(text)) is not None:
        escape = text[position : position + 6]
        raise json.JSONDecodeError(
            f"{escape} is half of a surrogate pair, not a character", text, position
        )
    return value


# A JSON string (skipped whole: its digits are text) or number.
_STRING_OR_NUMBER = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d+(\.\d+)?([eE][-+]?\d+)?')


def _not_read(text: str, error: ValueError) -> json.JSONDecodeError:
    """``error`` (not a JSONDecodeError) as one: the integer too long for Python to read
    (sys.get_int_max_str_digits), named with where it starts."""
    limit = sys.get_int_max_str_digits()
    for match in _STRING_OR_NUMBER.finditer(text):
        token = match.group()
        integer = not token.startswith('"') and match.group(1) is None and match.group(2) is None
        if integer and limit and len(token.lstrip("-")) > limit:
            digits = len(token.lstrip("-"))
            message = f"a number too long: {digits} digits, over the {limit} an integer may have"
            return json.JSONDecodeError(message, text, match.start())
    return json.JSONDecodeError(str(error), text, 0)


def refuse_encoded_body(request: Request) -> None:
    """Refuse (415) a request whose body is declared compressed (``Content-Encoding``
    other than ``identity``): bodies are read as sent. A request without a body passes."""
    values = request.headers.getlist("content-encoding")
    codings = [c.strip().lower() for value in values for c in value.split(",")]
    encoded = [c for c in codings if c not in {"", "identity"}]
    if encoded and _has_body(request):
        raise HTTPException(
            415,
            f"the body is sent with content-encoding {', '.join(encoded)!r}; this server "
            "takes uncompressed bodies only: send it without a content-encoding",
            headers={"Accept-Encoding": "identity"},  # RFC 7694: the codings it takes
        )


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return "transfer-encoding" in request.headers or (length or "0").strip() != "0"


# UTF-8, and the charsets whose bodies are UTF-8 as sent; none named is UTF-8 too.
_READ_AS_SENT = {"utf-8", "utf8", "us-ascii", "ascii", ""}


def refuse_other_charset(request: Request) -> None:
    """Refuse (415) a body declared in a charset other than UTF-8 (``Content-Type: ...;
    charset=utf-16le``): JSON is UTF-8 (RFC 8259), and such a body read as UTF-8 failed
    as JSON that is not (NUL bytes are UTF-8), naming no charset. A request without a
    body passes, whatever its headers say (clients send a default one on every call)."""
    if not _has_body(request):
        return
    _, _, parameters = request.headers.get("content-type", "").partition(";")
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"').strip().lower()
        if name.strip().lower() == "charset" and charset not in _READ_AS_SENT:
            raise HTTPException(
                415,
                f"the body is declared charset={charset}; this server reads JSON as UTF-8 "
                "(RFC 8259): send it as UTF-8",
            )


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """A route whose JSON body must be text, sent uncompressed: see the module's docstring.
    A guarded route's policies (drain, key, rate limit) are applied before its body is
    read: FastAPI reads and parses the body before it runs the dependencies, and a caller
    without a key, or past its rate, was answered how its body failed to parse."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        guarded = is_guarded(self.dependant.dependencies)

        async def strict(request: Request) -> Response:
            if guarded:
                await guard(request)
            refuse_encoded_body(request)  # before FastAPI reads the body as JSON
            refuse_other_charset(request)
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict
