"""Optional OpenTelemetry tracing: one server span per RPC, joined to the caller's trace.

The span continues a trace started by the client (W3C ``traceparent`` metadata) and
carries the gRPC semantic-convention attributes and the request id. Where the spans go is
OpenTelemetry's business: a tracer provider configured by ``opentelemetry-instrument`` or
by the embedding application is used as is; with none, and the SDK and OTLP exporter
installed (``pip install 'embedserve[otel]'``), one is set up that exports over OTLP as the
standard ``OTEL_EXPORTER_OTLP_*`` variables say.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc

from embedserve.server import callctx
from embedserve.server.call_hooks import CallHooks, Context, HookInterceptor, code_name
from embedserve.server.errors import FailedPrecondition

log = logging.getLogger(__name__)

# Server-side failures; the others are the caller's and leave the span's status unset
# (OpenTelemetry's gRPC conventions).
_SERVER_ERRORS = {"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE"}
_CODE_NUMBERS = {code.name: code.value[0] for code in grpc.StatusCode}


def _ensure_provider() -> None:
    from opentelemetry import trace

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return  # configured by the application or opentelemetry-instrument
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "otel_tracing is on but no tracer provider is configured and the OpenTelemetry "
            "SDK or OTLP exporter is missing: spans go nowhere (pip install 'embedserve[otel]' "
            "or run under opentelemetry-instrument)"
        )
        return
    provider = TracerProvider(resource=Resource.create({"service.name": "embedserve"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


class _Span(CallHooks):
    def __init__(self, tracer: Any, method: str, metadata: dict[str, str]) -> None:
        self._tracer = tracer
        self._method = method
        self._metadata = metadata

    async def begin(self, context: Context) -> Any:
        from opentelemetry import propagate, trace

        service, _, method = self._method.lstrip("/").partition("/")
        return self._tracer.start_span(
            f"{service}/{method}",
            context=propagate.extract(self._metadata),
            kind=trace.SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": service,
                "rpc.method": method,
                "embedserve.request_id": callctx.request_id.get(),
            },
        )

    def end(self, state: Any, context: Context, error: BaseException | None) -> None:
        from opentelemetry.trace import Status, StatusCode

        code = code_name(context, error)
        state.set_attribute("rpc.grpc.status_code", _CODE_NUMBERS.get(code, 2))
        if code in _SERVER_ERRORS:
            state.set_status(Status(StatusCode.ERROR, code))
        state.end()


class TracingInterceptor(HookInterceptor):
    """Sits inside the observing interceptor, so the request id is already set."""

    def __init__(self) -> None:
        try:
            from opentelemetry import trace
        except ImportError as exc:
            raise FailedPrecondition(
                "otel_tracing needs OpenTelemetry: pip install 'embedserve[otel]'"
            ) from exc
        _ensure_provider()
        self._tracer = trace.get_tracer("embedserve.server")

    def hooks_for(self, method: str, metadata: dict[str, str]) -> CallHooks | None:
        return _Span(self._tracer, method, metadata)
