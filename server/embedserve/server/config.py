"""One frozen settings object, filled from ``EMBEDSERVE_*`` variables and CLI flags."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

ENV_PREFIX = "EMBEDSERVE_"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Server settings. Each field can be set as ``EMBEDSERVE_<FIELD>`` or ``--<field>``."""

    model: str = "modernbert-embed-large"
    host: str = "127.0.0.1"
    port: int = 50051
    http_port: int = 8080  # HTTP/1.1 JSON API (OpenAI-compatible and REST), same host; 0: off
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16
    backend: str = "torch"  # torch | torch-int8 (CPU: int8 linear layers, bench/backends.py)
    max_tokens: int = 0  # 0: the model's own maximum
    # ModernBERT forward pass: packed tokens with windowed local attention (fast), or
    # transformers' own (reference); auto picks fast unless flash-attention 2 runs it.
    modernbert_path: str = "auto"  # auto | fast | reference
    # Batching
    # Padded cost (longest input x count) of one batch; 0: 16384 on a GPU, 2048 on a CPU,
    # where larger batches run slower per token (bench/model_batch_cost.py).
    max_batch_tokens: int = 0
    max_batch_size: int = 256
    max_wait_ms: float = 2.0  # wait for company when the model is idle and the batch small
    max_queue_items: int = 100_000
    sort_window: int = 2048  # queued inputs considered together when cutting a batch
    max_padding_share: float = 0.10  # a batch stops growing past this share of padding
    # Time a few passes at warm-up and size batches by that cost (fixed per pass + per
    # token); max_padding_share then applies only if calibration is off.
    calibrate_batches: bool = True
    chunk_overlap_tokens: int = 128
    # Request limits
    max_inputs_per_request: int = 2048
    max_input_chars: int = 1_000_000
    max_message_bytes: int = 64 * 1024 * 1024
    max_streams_per_connection: int = 256  # concurrent calls on one client connection
    stream_inflight: int = 32  # requests of one EmbedStream embedded at once; more wait
    # Threads used by torch on CPU; 0 lets torch decide.
    torch_threads: int = 0
    # Vector store: the embedded engine in data_dir unless qdrant_url names a server
    # (http(s)://host:port), ':memory:' or 'local:PATH' (qdrant-client's local mode).
    data_dir: str = "./data"
    qdrant_url: str = ""
    qdrant_api_key: str = dataclasses.field(default="", repr=False)
    qdrant_prefer_grpc: bool = True
    qdrant_grpc_port: int = 0  # the server's gRPC port when preferred; 0: 6334
    qdrant_timeout_s: float = 10.0
    # Run the embedded engine in a child process, so its index builds never stall the server.
    store_process: bool = True
    store_retry_attempts: int = 5
    store_retry_max_s: float = 15.0
    ingest_inflight: int = 16  # messages of one ingestion stream being embedded at once
    # Cluster layout of collections created without their own (Qdrant server/cluster only).
    default_shard_number: int = 1
    default_replication_factor: int = 1
    default_write_consistency_factor: int = 1
    max_write_points: int = 1024  # points joined into one store write
    grace_period_s: float = 10.0
    log_level: str = "INFO"
    log_format: str = "text"  # text | json (one JSON object per line, with request_id)
    # Security. No keys: auth is off. Keys: file (JSON or 'key role [collections...]' lines)
    # and/or EMBEDSERVE_API_KEYS (the same lines, ';'-separated). Never logged.
    api_keys_file: str = ""
    api_keys: str = dataclasses.field(default="", repr=False)
    auth_health: bool = False  # also require a key for health and reflection
    tls_cert: str = ""  # PEM server certificate (chain); with tls_key, the port speaks TLS
    tls_key: str = ""
    tls_client_ca: str = ""  # PEM CA: require client certificates signed by it (mTLS)
    rate_limit_rps: float = 0.0  # calls per second per key (or per peer without auth); 0: off
    rate_limit_burst: int = 0  # bucket size; 0: ceil(rate_limit_rps)
    # Observability
    metrics_port: int = 0  # Prometheus /metrics on this port (same host); 0: off
    otel_tracing: bool = False  # an OpenTelemetry span per RPC (needs embedserve[otel])

    @classmethod
    def from_sources(
        cls, env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Defaults, then environment variables, then explicit (CLI) overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + field.name.upper())
            if raw is not None and raw != "":
                values[field.name] = _coerce(field.name, raw, type(getattr(cls(), field.name)))
        for name, value in (overrides or {}).items():
            if value is not None:
                values[name] = value
        return cls(**values)


def _coerce(name: str, raw: str, kind: type) -> Any:
    try:
        if kind is bool:
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        return kind(raw)
    except ValueError as exc:
        raise ValueError(
            f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind.__name__}"
        ) from exc
