"""Per-call observability: request id, latency/count metrics by method and code, access log
(naming the caller's key_id for a call made with a key)."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from embedserve.server import callctx
from embedserve.server.call_hooks import CallHooks, Context, HookInterceptor, code_name
from embedserve.server.metrics import Metrics

log = logging.getLogger("embedserve.access")

REQUEST_ID_KEY = "x-request-id"
_MAX_REQUEST_ID = 128  # a client's id is echoed into logs: bound it
# The label of calls to methods the server does not have: a caller names them, so their
# names would make label values without bound.
UNKNOWN_METHOD = "unknown"


class _Observe(CallHooks):
    def __init__(self, metrics: Metrics, method: str, request_id: str) -> None:
        self._metrics = metrics
        self._method = method
        self._request_id = request_id

    async def begin(self, context: Context) -> Any:
        token = callctx.request_id.set(self._request_id)
        call = callctx.Call()
        return token, callctx.call.set(call), call, time.perf_counter()

    def end(self, state: Any, context: Context, error: BaseException | None) -> None:
        token, call_token, call, started = state
        seconds = time.perf_counter() - started
        code = code_name(context, error)
        self._metrics.rpc_seconds.labels(self._method, "grpc").observe(seconds)
        self._metrics.rpc_total.labels(self._method, code, "grpc").inc()
        # A caller's mistake is not the server's: only server-side failures log louder.
        level = logging.ERROR if code in {"UNKNOWN", "INTERNAL"} else logging.INFO
        # A call made with a key names it by its key_id, a short hash: never the key.
        by = f" {call.key_id}" if call.key_id else ""
        log.log(level, "%s %s %.1f ms%s", self._method, code, seconds * 1000, by)
        callctx.reset(callctx.call, call_token)
        callctx.reset(callctx.request_id, token)


class ObserveInterceptor(HookInterceptor):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def hooks_for(self, method: str, metadata: dict[str, str]) -> CallHooks | None:
        return _Observe(self._metrics, method, _request_id(metadata))

    def unhandled(self, method: str, metadata: dict[str, str]) -> None:
        code = "UNIMPLEMENTED"
        self._metrics.rpc_total.labels(UNKNOWN_METHOD, code, "grpc").inc()
        token = callctx.request_id.set(_request_id(metadata))
        log.info("%s %s %r", UNKNOWN_METHOD, code, method[:_MAX_REQUEST_ID])
        callctx.reset(callctx.request_id, token)


def _request_id(metadata: dict[str, str]) -> str:
    """The caller's id for its call, or a fresh uuid4 hex when it sent none."""
    return metadata.get(REQUEST_ID_KEY, "")[:_MAX_REQUEST_ID] or uuid.uuid4().hex
