"""Per-call observability: request id, latency/count metrics by method and code, access log."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import grpc

from embedserve.server import callctx
from embedserve.server.call_hooks import CallHooks, Context, HookInterceptor
from embedserve.server.metrics import Metrics

log = logging.getLogger("embedserve.access")

REQUEST_ID_KEY = "x-request-id"
_MAX_REQUEST_ID = 128  # a client's id is echoed into logs: bound it


class _Observe(CallHooks):
    def __init__(self, metrics: Metrics, method: str, request_id: str) -> None:
        self._metrics = metrics
        self._method = method
        self._request_id = request_id

    async def begin(self, context: Context) -> Any:
        token = callctx.request_id.set(self._request_id)
        return token, time.perf_counter()

    def end(self, state: Any, context: Context, error: BaseException | None) -> None:
        token, started = state
        seconds = time.perf_counter() - started
        code = _code_of(context, error)
        self._metrics.rpc_seconds.labels(self._method).observe(seconds)
        self._metrics.rpc_total.labels(self._method, code).inc()
        # A caller's mistake is not the server's: only server-side failures log louder.
        level = logging.ERROR if code in {"UNKNOWN", "INTERNAL"} else logging.INFO
        log.log(level, "%s %s %.1f ms", self._method, code, seconds * 1000)
        callctx.reset(callctx.request_id, token)


def _code_of(context: Context, error: BaseException | None) -> str:
    # The client went away: the task is cancelled or the response generator closed.
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            return grpc.StatusCode.DEADLINE_EXCEEDED.name
        return grpc.StatusCode.CANCELLED.name
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):  # grpc.aio reports the raw value on some paths
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), "UNKNOWN")
    return "OK" if error is None else "UNKNOWN"


class ObserveInterceptor(HookInterceptor):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def hooks_for(self, method: str, metadata: dict[str, str]) -> CallHooks | None:
        request_id = metadata.get(REQUEST_ID_KEY, "")[:_MAX_REQUEST_ID] or uuid.uuid4().hex
        return _Observe(self._metrics, method, request_id)
