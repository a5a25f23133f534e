"""One frozen settings object, filled from ``EMBEDSERVE_*`` variables and CLI flags.

``Settings`` is the public layer: one field per flag and variable, with the same names.
The modules own their sections (a frozen dataclass next to the code that uses it, with
the defaults); ``Settings`` takes each default from its section and builds each section
whole from its own fields (``section``), so a setting has one name and one default.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from embedserve.connectors.settings import StoreSettings
from embedserve.server.auth import AuthSettings
from embedserve.server.batcher import BatchLimits
from embedserve.server.connlimit import ConnectionLimits
from embedserve.server.embedder import RequestLimits
from embedserve.server.embedding_service import EmbedStreamLimits
from embedserve.server.http.settings import HttpSettings
from embedserve.server.ingestion import IngestSettings
from embedserve.server.logs import LogSettings
from embedserve.server.model_settings import ModelSettings, RerankerSettings
from embedserve.server.query_cache import QueryCacheSettings
from embedserve.server.ratelimit import RateLimitSettings
from embedserve.server.settings_bounds import check_bounds
from embedserve.server.tls import TlsSettings
from embedserve.server.vector_convert import CollectionLayout

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

ENV_PREFIX = "EMBEDSERVE_"

Section = TypeVar("Section", bound="DataclassInstance")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Server settings. Each field can be set as ``EMBEDSERVE_<FIELD>`` or ``--<field>``;
    what each means is documented in its section."""

    # Model (ModelSettings)
    model: str = ModelSettings.model
    model_revision: str = ModelSettings.model_revision
    trust_remote_code: bool = ModelSettings.trust_remote_code
    device: str = ModelSettings.device
    dtype: str = ModelSettings.dtype
    backend: str = ModelSettings.backend
    max_tokens: int = ModelSettings.max_tokens
    modernbert_path: str = ModelSettings.modernbert_path
    bert_path: str = ModelSettings.bert_path
    torch_compile: bool = ModelSettings.torch_compile
    chunk_overlap_tokens: int = ModelSettings.chunk_overlap_tokens
    torch_threads: int = ModelSettings.torch_threads
    keep_freed_memory: bool = ModelSettings.keep_freed_memory
    cache_dir: str = ModelSettings.cache_dir
    # Reranker (RerankerSettings)
    reranker: str = RerankerSettings.reranker
    reranker_revision: str = RerankerSettings.reranker_revision
    reranker_max_tokens: int = RerankerSettings.reranker_max_tokens
    # Where to listen: gRPC here, HTTP (HttpSettings) and metrics on the same host
    host: str = "127.0.0.1"
    port: int = 50051
    http_port: int = HttpSettings.http_port
    openai_token_ids: str = HttpSettings.openai_token_ids
    cors_allow_origins: str = HttpSettings.cors_allow_origins
    http_body_idle_s: float = HttpSettings.http_body_idle_s
    # Batching (BatchLimits)
    max_batch_tokens: int = BatchLimits.max_batch_tokens
    max_batch_size: int = BatchLimits.max_batch_size
    max_wait_ms: float = BatchLimits.max_wait_ms
    max_queue_items: int = BatchLimits.max_queue_items
    sort_window: int = BatchLimits.sort_window
    max_padding_share: float = BatchLimits.max_padding_share
    calibrate_batches: bool = BatchLimits.calibrate_batches
    parallel_passes: int = BatchLimits.parallel_passes
    # Request limits (RequestLimits, ConnectionLimits, EmbedStreamLimits)
    max_inputs_per_request: int = RequestLimits.max_inputs_per_request
    max_input_chars: int = RequestLimits.max_input_chars
    max_message_bytes: int = RequestLimits.max_message_bytes
    max_streams_per_connection: int = ConnectionLimits.max_streams_per_connection
    stream_inflight: int = EmbedStreamLimits.stream_inflight
    # The query cache (QueryCacheSettings)
    query_cache_size: int = QueryCacheSettings.query_cache_size
    query_cache_max_tokens: int = QueryCacheSettings.query_cache_max_tokens
    # Vector store (StoreSettings)
    data_dir: str = StoreSettings.data_dir
    qdrant_url: str = StoreSettings.qdrant_url
    qdrant_api_key: str = dataclasses.field(default=StoreSettings.qdrant_api_key, repr=False)
    qdrant_prefer_grpc: bool = StoreSettings.qdrant_prefer_grpc
    qdrant_grpc_port: int = StoreSettings.qdrant_grpc_port
    qdrant_timeout_s: float = StoreSettings.qdrant_timeout_s
    store_process: bool = StoreSettings.store_process
    store_retry_attempts: int = StoreSettings.store_retry_attempts
    store_retry_max_s: float = StoreSettings.store_retry_max_s
    # Ingestion (IngestSettings) and the layout of new collections (CollectionLayout)
    ingest_inflight: int = IngestSettings.ingest_inflight
    max_write_points: int = IngestSettings.max_write_points
    default_shard_number: int = CollectionLayout.default_shard_number
    default_replication_factor: int = CollectionLayout.default_replication_factor
    default_write_consistency_factor: int = CollectionLayout.default_write_consistency_factor
    grace_period_s: float = 10.0  # how long calls in flight may finish on shutdown
    # Logging (LogSettings)
    log_level: str = LogSettings.log_level
    log_format: str = LogSettings.log_format
    # Security (AuthSettings, TlsSettings, RateLimitSettings). Keys are never logged, and
    # api_keys has no flag: environment (EMBEDSERVE_API_KEYS) or the file only.
    api_keys_file: str = AuthSettings.api_keys_file
    api_keys: str = dataclasses.field(default=AuthSettings.api_keys, repr=False)
    auth_health: bool = AuthSettings.auth_health
    tls_cert: str = TlsSettings.tls_cert
    tls_key: str = TlsSettings.tls_key
    tls_client_ca: str = TlsSettings.tls_client_ca
    rate_limit_rps: float = RateLimitSettings.rate_limit_rps
    rate_limit_burst: int = RateLimitSettings.rate_limit_burst
    # Observability
    metrics_port: int = 0  # Prometheus /metrics on this port (same host); 0: off
    otel_tracing: bool = False  # an OpenTelemetry span per RPC (needs embedserve[otel])

    def __post_init__(self) -> None:
        # An IPv6 host is taken bare or in brackets ("::1", "[::1]") and kept bare; the
        # brackets go back on only where an address is written host:port (gRPC's).
        object.__setattr__(self, "host", unbracketed(self.host))
        check_bounds({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    def section(self, kind: type[Section]) -> Section:
        """The section ``kind``, built whole from the settings of its fields' names."""
        return kind(**{f.name: getattr(self, f.name) for f in dataclasses.fields(kind)})

    @classmethod
    def from_sources(
        cls, env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Defaults, then environment variables, then explicit (CLI) overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + field.name.upper())
            # Empty or blank is unset, for every setting: " " turned a switch off.
            if raw is not None and raw.strip():
                values[field.name] = _coerce(field.name, raw, type(getattr(cls(), field.name)))
        for name, value in (overrides or {}).items():
            if value is not None:
                values[name] = value
        return cls(**values)


def misspelt_variables(env: Mapping[str, str], also_known: Iterable[str] = ()) -> list[str]:
    """A line for each ``EMBEDSERVE_*`` variable that is no setting but close to one's
    name (in any case): a misspelt name would leave its setting at the default without a
    word. ``also_known`` (the client verbs' variables) are named only where the setting
    they are close to is unset: EMBEDSERVE_API_KEY on a server meant to read
    EMBEDSERVE_API_KEYS left it open. Others (the scripts' own) are not named."""
    settings = [f.name.upper() for f in dataclasses.fields(Settings)]
    lines = []
    for variable in sorted(v for v in env if v.upper().startswith(ENV_PREFIX)):
        name = variable[len(ENV_PREFIX) :]
        if variable.startswith(ENV_PREFIX) and name in settings:
            continue  # read as it is
        close = difflib.get_close_matches(name.upper(), settings, 1, 0.8)
        if not close:
            continue
        meant = ENV_PREFIX + close[0]
        if not variable.startswith(ENV_PREFIX) or name not in also_known:
            lines.append(f"{variable} is not a setting, so it is ignored: did you mean {meant}?")
        elif not env.get(meant, "").strip():  # empty or blank is unset
            lines.append(
                f"{variable} is read by the client commands, not by serve: did you mean {meant}?"
            )
    return lines


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def unbracketed(host: str) -> str:
    """``host`` without the brackets of an IPv6 address written ``[::1]``."""
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def _coerce(name: str, raw: str, kind: type) -> Any:
    try:
        if kind is bool:
            # A typo ("ture") must not turn a setting off, auth_health for one.
            word = raw.strip().lower()
            if word not in _TRUE | _FALSE:
                raise ValueError(f"expected one of {', '.join(sorted(_TRUE | _FALSE))}")
            return word in _TRUE
        return kind(raw)
    except ValueError as exc:
        raise ValueError(
            f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind.__name__}"
            + (f" ({exc})" if kind is bool else "")
        ) from exc
