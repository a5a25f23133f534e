"""HEAD wherever GET is answered (RFC 9110 §9.3.2), as one pure ASGI middleware.

FastAPI's routes take only the verbs they name, so a HEAD (probes, monitors, ``curl -I``)
was a 405 on every GET route. Here it runs as that GET, through the same route, keys,
roles and limits, and is answered with the GET's status and headers but no body. The
OpenAPI document is left alone: HEAD is not an operation of its own.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self._app(scope, receive, send)
            return
        # A copy: the server keeps its own scope's HEAD, and writes no body for it.
        as_get = {**scope, "method": "GET"}
        answered = False

        async def without_body(message: Message) -> None:
            # Ended with the head: a client has its whole answer then and may close, and a
            # file streamed after that, for no one, ended as a call its client cancelled.
            nonlocal answered
            if answered:
                return
            await send(message)
            if message["type"] == "http.response.start":
                answered = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        try:
            await self._app(as_get, receive, without_body)
        finally:
            # What routing and the handlers noted (the route, the status code) is read by
            # the middleware outside for its metrics and access line.
            scope.update({key: value for key, value in as_get.items() if key != "method"})
