"""Server assembly: model, batcher and servicers on one gRPC port, with health and reflection.

Health reports NOT_SERVING until the model is loaded and warmed up, and again
while the server drains on shutdown.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import torch
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from embedserve.connectors import StoreError, StoreSettings, VectorStore, open_store
from embedserve.server.allocator import keep_freed_memory
from embedserve.server.auth import AuthSettings, load_keys
from embedserve.server.auth_interceptor import AuthInterceptor
from embedserve.server.batch_cost import CalibrationStopped, PassCost, calibrate_model
from embedserve.server.batcher import Batcher, BatchLimits, ComputeFn, SidePasses
from embedserve.server.call_hooks import HookChain, HookInterceptor
from embedserve.server.config import Settings
from embedserve.server.connlimit import ConnectionLimitInterceptor, ConnectionLimits
from embedserve.server.decode_guard import DecodeGuardInterceptor
from embedserve.server.drain import Drain, RefuseWhileDraining
from embedserve.server.embedder import Embedder, EmbedParams, RequestLimits
from embedserve.server.embedding_service import EmbeddingService, EmbedStreamLimits
from embedserve.server.errors import FailedPrecondition
from embedserve.server.http.app import build_app
from embedserve.server.http.backend import Backend
from embedserve.server.http.server import HttpServer
from embedserve.server.http.settings import HttpSettings
from embedserve.server.ingestion import IngestSettings
from embedserve.server.key_reload import KeyReloader
from embedserve.server.listening import CannotListen, cannot_listen, host_port
from embedserve.server.metrics import Metrics
from embedserve.server.metrics_http import MetricsEndpoint
from embedserve.server.model import EncoderModel
from embedserve.server.model_identity import fingerprints_of
from embedserve.server.model_settings import ModelSettings, RerankerSettings
from embedserve.server.observe import ObserveInterceptor
from embedserve.server.pass_threads import narrow_threads, on_threads, side_passes
from embedserve.server.query_cache import QueryCache, QueryCacheSettings
from embedserve.server.ratelimit import RateLimiter, RateLimitInterceptor, RateLimitSettings
from embedserve.server.reranker_model import RerankerModel
from embedserve.server.reranking import Reranker, RerankParams, calibrate_reranker
from embedserve.server.thread_names import namer
from embedserve.server.tls import Certificates, TlsSettings, tls_enabled
from embedserve.server.tracing import TracingInterceptor
from embedserve.server.vector_convert import CollectionLayout
from embedserve.server.vector_service import VectorService
from embedserve.server.vectors import VectorCore
from embedserve.v1 import embedding_pb2, embedding_pb2_grpc, vector_pb2, vector_pb2_grpc

log = logging.getLogger(__name__)

# The worker threads' names as the OS shows them (top -H, /proc/<pid>/task/*/comm).
MODEL_THREAD = "es-model"
TOKENIZE_THREAD = "es-tokenize"
STORE_THREAD = "es-store"
# On shutdown the transport stops once no new call was refused for DRAIN_CALM_S, or after
# DRAIN_CALM_LIMIT_S (within the grace period) at the most.
DRAIN_CALM_S = 0.1
# The shortest keepalive ping interval a client may use on an idle connection.
KEEPALIVE_MIN_PING_MS = 5000
DRAIN_CALM_LIMIT_S = 1.0

API_SERVICES = (
    embedding_pb2.DESCRIPTOR.services_by_name["EmbeddingService"].full_name,
    vector_pb2.DESCRIPTOR.services_by_name["VectorService"].full_name,
)
SERVICE_NAMES = (
    *API_SERVICES,
    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
    reflection.SERVICE_NAME,
)


# A Qdrant server's calls mostly wait on the network: a node that hangs holds each one for
# up to qdrant_timeout_s, and more threads keep the others from queueing behind it. The
# embedded store's calls use this machine's cores.
SERVER_STORE_THREADS = 8
EMBEDDED_STORE_THREADS = 2


def store_threads(settings: StoreSettings) -> int:
    remote = settings.qdrant_url.startswith(("http://", "https://"))
    return SERVER_STORE_THREADS if remote else EMBEDDED_STORE_THREADS


class EmbedServer:
    """One server instance. ``start()`` binds the port; ``ready`` completes when SERVING."""

    def __init__(self, settings: Settings, model: EncoderModel | None = None) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.model = model
        self.embedder: Embedder | None = None
        self.health = HealthServicer()
        self.tls = settings.section(TlsSettings)
        record = self.metrics.reload_recorder
        self.certificates = Certificates(self.tls, record("tls")) if tls_enabled(self.tls) else None
        self._credentials = self.certificates.grpc_credentials() if self.certificates else None
        auth = settings.section(AuthSettings)
        self.keys = load_keys(auth)
        # A keys file may change while serving; keys only in the environment cannot, and
        # auth that is off stays off (its interceptor is not installed).
        self.key_reloader = (
            KeyReloader(auth, self.keys, record("api_keys"))
            if auth.api_keys_file and len(self.keys)
            else None
        )
        self._watches: list[asyncio.Task[None]] = []
        self.drain = Drain()
        self.request_limits = settings.section(RequestLimits)
        # Outermost first: every call is observed (auth failures too), refused while the
        # server drains, counted per connection, traced, authenticated, and rate-limited by
        # the key it authenticated as; then oversized or undecodable requests are refused
        # (each message goes through the hooks in this order once every hook has begun).
        interceptors: list[HookInterceptor] = [
            ObserveInterceptor(self.metrics),
            RefuseWhileDraining(self.drain),
            DecodeGuardInterceptor(self.request_limits.max_message_bytes),
            ConnectionLimitInterceptor(settings.section(ConnectionLimits)),
        ]
        if settings.otel_tracing:
            interceptors.append(TracingInterceptor())
        if len(self.keys):
            interceptors.append(AuthInterceptor(self.keys, settings.auth_health))
        # One limiter for both transports: a key's budget covers its gRPC and HTTP calls.
        rate_limits = settings.section(RateLimitSettings)
        limiter = RateLimiter(rate_limits) if rate_limits.rate_limit_rps > 0 else None
        if limiter is not None:
            interceptors.append(RateLimitInterceptor(limiter))
        self.metrics_endpoint: MetricsEndpoint | None = None
        # The transport ceiling sits above our own limit so oversized requests get a clear
        # INVALID_ARGUMENT from the decode guard instead of a bare transport error.
        transport_limit = min(2 * self.request_limits.max_message_bytes, 2**31 - 1)
        self._grpc = grpc.aio.server(
            interceptors=[HookChain(interceptors)],
            options=[
                # gRPC shares ports by default: a second server would split the traffic.
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", transport_limit),
                # Answers are bounded by what requests may ask (and EmbedTokens' by the
                # limit itself): a cap here failed an answer after the work, logged as OK.
                ("grpc.max_send_message_length", -1),
                # Clients that keep idle connections alive with pings (load balancers, Go's
                # and Java's keepalive options) may ping every 5 s: gRPC's default of one
                # per 5 minutes ended their open streams with "too many pings".
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_MIN_PING_MS),
            ],
        )
        self._model_executor = ThreadPoolExecutor(
            1, thread_name_prefix="model", initializer=namer(MODEL_THREAD)
        )
        self._tokenize_executor = ThreadPoolExecutor(
            1, thread_name_prefix="tokenize", initializer=namer(TOKENIZE_THREAD)
        )
        self._store_executor = ThreadPoolExecutor(
            store_threads(settings.section(StoreSettings)),
            thread_name_prefix="store",
            initializer=namer(STORE_THREAD),
        )
        self._side_executor: ThreadPoolExecutor | None = None  # narrow passes under load
        self.http_backend = Backend(settings, self.keys, self.drain, limiter)
        self.http: HttpServer | None = None
        self.embedding_service = EmbeddingService(settings.section(EmbedStreamLimits), self.drain)
        self.vector_service = VectorService(
            settings.section(IngestSettings), settings.section(CollectionLayout), self.drain
        )
        self.store: VectorStore | None = None
        self.port = 0
        self.ready = asyncio.Event()
        self._batcher: Batcher | None = None
        self._rerank_batcher: Batcher | None = None
        self._warmup: asyncio.Task[None] | None = None
        # Set at shutdown: a warm-up's calibration, on the model thread, runs no more
        # passes (the process would wait for them all before it exits).
        self._shutdown_started = threading.Event()
        self._stopping: asyncio.Future[None] | None = None

    async def start(self) -> int:
        embedding_pb2_grpc.add_EmbeddingServiceServicer_to_server(
            self.embedding_service, self._grpc
        )
        vector_pb2_grpc.add_VectorServiceServicer_to_server(self.vector_service, self._grpc)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._grpc)
        reflection.enable_server_reflection(SERVICE_NAMES, self._grpc)
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self._listen_grpc()
        self._warn_if_exposed()
        host = self.settings.host
        http_port = self.settings.section(HttpSettings).http_port
        try:
            if self.settings.metrics_port:
                port = self.settings.metrics_port
                with cannot_listen("metrics", host, port, "--metrics-port"):
                    self.metrics_endpoint = MetricsEndpoint(self.metrics.registry, host, port)
            if http_port:
                app = build_app(self.http_backend, self.metrics)
                with cannot_listen("HTTP", host, http_port, "--http-port"):
                    self.http = HttpServer(
                        app,
                        host,
                        http_port,
                        self.tls,
                        self.settings.grace_period_s,
                        self.settings.http_body_idle_s,
                    )
        except CannotListen:
            if self.metrics_endpoint is not None:
                self.metrics_endpoint.close()
            await self._grpc.stop(0)
            raise
        await self._grpc.start()
        if self.http is not None:
            await self.http.start()
            if self.certificates is not None and self.http.ssl_context is not None:
                self.certificates.serve_http(self.http.ssl_context)
        log.info(
            "listening on %s (%s, auth %s; NOT_SERVING until warm)",
            host_port(host, self.port),
            "plaintext" if self._credentials is None else "TLS",
            f"on, {len(self.keys)} keys" if len(self.keys) else "off",
        )
        if self.http is not None:
            log.info("HTTP API on %s", host_port(host, self.http.port))
        loop = asyncio.get_running_loop()
        self._warmup = loop.create_task(self._load_and_warm())
        for watched in (self.key_reloader, self.certificates):
            if watched is not None:
                self._watches.append(loop.create_task(watched.watch()))
        return self.port

    def _listen_grpc(self) -> None:
        address = host_port(self.settings.host, self.settings.port)
        try:
            if self._credentials is None:
                self.port = self._grpc.add_insecure_port(address)
            else:
                self.port = self._grpc.add_secure_port(address, self._credentials)
        except RuntimeError:  # "Failed to bind", with no reason given
            self.port = 0
        if self.port == 0:
            raise CannotListen(
                f"cannot listen for gRPC on {address} (--host, --port): the port is in use, "
                "or the host is not an address of this machine"
            )

    def reload(self) -> None:
        """SIGHUP: read the API keys file and the TLS certificate and key again."""
        if self.key_reloader is not None:
            self.key_reloader.reload()
        elif len(self.keys):
            log.warning("keys not reloaded: they come from EMBEDSERVE_API_KEYS only")
        else:
            log.warning("keys not reloaded: auth is off, and turning it on takes a restart")
        if self.certificates is not None:
            self.certificates.reload()

    def _warn_if_exposed(self) -> None:
        host = self.settings.host
        loopback = host == "localhost" or _is_loopback_address(host)
        if not loopback and not len(self.keys):
            log.warning(
                "listening on %s without API keys: anyone who can reach the port may call "
                "every RPC, including DeleteCollection; set --api-keys-file or "
                "EMBEDSERVE_API_KEYS",
                host,
            )
        if not loopback and self._credentials is None:
            log.warning("listening on %s in plaintext; set --tls-cert and --tls-key", host)

    async def _load_and_warm(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        model_settings = settings.section(ModelSettings)
        if model_settings.torch_threads > 0:
            torch.set_num_threads(model_settings.torch_threads)
        if model_settings.keep_freed_memory and keep_freed_memory():
            log.info("freed memory is kept for later passes (glibc trim threshold raised)")
        if self.model is None:
            self.model = await loop.run_in_executor(
                self._model_executor, EncoderModel.load, model_settings
            )
        # Read whole (gigabytes: seconds) before serving, not on the first call that needs it.
        await loop.run_in_executor(self._store_executor, fingerprints_of, self.model.spec.path)
        limits = settings.section(BatchLimits).for_device(self.model.device.type)
        threads = torch.get_num_threads()  # read before a narrow pass sets its own count
        side = self._side_passes(limits, model_settings.backend, threads)
        # Served as resolved (GET /api/v1/model): an automatic count (0) by the one chosen.
        limits = dataclasses.replace(limits, parallel_passes=1 if side is None else side.passes)
        if model_settings.torch_compile:
            counts = [threads] if side is None else [threads, narrow_threads(threads, side.passes)]
            started = time.perf_counter()
            await loop.run_in_executor(self._model_executor, self.model.warm_up_compiled, counts)
            log.info("forward pass compiled in %.1f s", time.perf_counter() - started)
        cost = None
        if limits.calibrate_batches:
            cost = await self._calibrate(calibrate_model, self.model)
            if cost is not None:
                self.metrics.observe_pass_cost(cost.fixed_s, cost.per_token_s)

        # With narrow passes about, a wide one sets its thread count too.
        def wide(compute: ComputeFn) -> ComputeFn:
            return compute if side is None else on_threads(compute, threads)

        self._batcher = Batcher(
            wide(self.model.compute), limits, self._model_executor, self.metrics, cost, side
        )
        self._batcher.start()
        cache = QueryCache(settings.section(QueryCacheSettings), self.metrics)
        embedder = Embedder(
            self.model, self._batcher, self._tokenize_executor, self.request_limits, cache
        )
        # Warmed up outside the callers' limits, which may allow less than this (one input).
        warm_up = Embedder(self.model, self._batcher, self._tokenize_executor, RequestLimits())
        await warm_up.embed(["warm-up", "a somewhat longer warm-up input " * 8], EmbedParams())
        reranker = await self._start_reranker(limits, wide, side, threads)
        try:
            self.store = await loop.run_in_executor(
                self._store_executor, open_store, settings.section(StoreSettings)
            )
        except StoreError as exc:
            raise FailedPrecondition(f"cannot open the vector store: {exc}") from exc
        self.embedder = embedder
        self.embedding_service.attach(embedder, reranker)
        vectors = VectorCore(self.store, embedder, self._store_executor, self.metrics, reranker)
        self.vector_service.attach(vectors)
        self.http_backend.attach(embedder, vectors, reranker)
        await self._set_health(health_pb2.HealthCheckResponse.SERVING)
        self.ready.set()
        log.info("SERVING %s", self.model.spec.model_id)

    async def _start_reranker(
        self,
        limits: BatchLimits,
        wide: Callable[[ComputeFn], ComputeFn],
        side: SidePasses | None,
        threads: int,
    ) -> Reranker | None:
        """The reranker, loaded and warm; None when none is served."""
        if not self.settings.reranker:
            return None
        model_settings = self.settings.section(ModelSettings)
        loop = asyncio.get_running_loop()
        assert self.model is not None
        # In the encoder's number format, as loaded (float32 under the int8 and ONNX backends).
        model = await loop.run_in_executor(
            self._model_executor,
            RerankerModel.load,
            self.settings.section(RerankerSettings),
            model_settings,
            self.model.dtype,
        )
        cost = None
        if limits.calibrate_batches:
            cost = await self._calibrate(calibrate_reranker, model)
        # A queue and batches of its own, on the encoder's model thread and side threads.
        if side is not None:
            narrow = on_threads(model.compute, narrow_threads(threads, side.passes))
            side = SidePasses(narrow, side.executor, side.passes)
        self._rerank_batcher = Batcher(
            wide(model.compute), limits, self._model_executor, self.metrics.rerank, cost, side
        )
        self._rerank_batcher.start()
        overlap = model_settings.chunk_overlap_tokens
        batcher, executor = self._rerank_batcher, self._tokenize_executor
        warm_up = Reranker(model, batcher, executor, RequestLimits(), overlap)
        await warm_up.rerank("warm-up", ["a warm-up document " * 8], RerankParams())
        return Reranker(model, batcher, executor, self.request_limits, overlap)

    async def _calibrate(
        self, calibrate: Callable[[Any, threading.Event], PassCost | None], model: Any
    ) -> PassCost | None:
        """``calibrate(model)`` on the model thread; a shutdown meanwhile stops it after the
        pass running, and the warm-up ends as cancelled, as the shutdown cancels it."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._model_executor, calibrate, model, self._shutdown_started
            )
        except CalibrationStopped:
            raise asyncio.CancelledError from None

    async def wait_ready(self) -> None:
        """Wait for SERVING; re-raise a failed model load."""
        assert self._warmup is not None, "start() first"
        await asyncio.shield(self._warmup)

    async def _set_health(
        self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType
    ) -> None:
        await self.health.set("", status)
        for name in API_SERVICES:
            await self.health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        """Drain: report NOT_SERVING and refuse new calls; streams end after the messages
        they accepted (answered, or written and acknowledged); other calls in flight
        finish within the grace period. Then the batcher stops and the store is closed.
        A second call waits for the first one's shutdown."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._shut_down(grace))
        await asyncio.shield(self._stopping)

    async def _shut_down(self, grace: float | None) -> None:
        self._shutdown_started.set()
        self.drain.start()  # first: once health says NOT_SERVING, new calls are refused
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        grace_s = self.settings.grace_period_s if grace is None else grace
        # New calls are refused (UNAVAILABLE, retried elsewhere) until callers notice; only
        # then does the transport stop, which would cancel calls caught in between.
        await self.drain.quiet(DRAIN_CALM_S, min(DRAIN_CALM_LIMIT_S, grace_s))
        self.drain.transports_stop(grace_s)  # calls left at the grace's end are cancelled
        await asyncio.gather(
            self._grpc.stop(grace_s),
            *([self.http.stop(grace_s)] if self.http is not None else []),
        )
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.close()
        for task in (self._warmup, *self._watches):
            if task is not None and not task.done():
                task.cancel()
        for batcher in (self._batcher, self._rerank_batcher):
            if batcher is not None:
                await batcher.stop()
        if self.store is not None:
            await asyncio.get_running_loop().run_in_executor(self._store_executor, self.store.close)
        executors = [self._model_executor, self._tokenize_executor, self._store_executor]
        if self._side_executor is not None:
            executors.append(self._side_executor)
        for executor in executors:
            executor.shutdown(wait=False, cancel_futures=True)

    def _side_passes(self, limits: BatchLimits, backend: str, threads: int) -> SidePasses | None:
        assert self.model is not None
        passes = side_passes(limits.parallel_passes, self.model.device.type, backend, threads)
        if passes < 2:
            return None
        narrow = narrow_threads(threads, passes)
        log.info("under load up to %d passes run side by side, %d threads each", passes, narrow)
        self._side_executor = ThreadPoolExecutor(
            passes, thread_name_prefix="model", initializer=namer(MODEL_THREAD)
        )
        compute = on_threads(self.model.compute, narrow)
        return SidePasses(compute, self._side_executor, passes)

    async def wait_for_termination(self) -> None:
        await self._grpc.wait_for_termination()


def _is_loopback_address(host: str) -> bool:
    """An address of this machine only; an IPv4 one written as IPv6 (::ffff:127.0.0.1) too."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool((mapped or address).is_loopback)
