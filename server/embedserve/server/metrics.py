"""Prometheus metrics of one server instance (its own registry, so tests can run several)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_TOKEN_BUCKETS = (16, 64, 256, 1024, 4096, 16384, 65536, 262144)


class BatchMetrics:
    """The batches of one batcher: its queue, batch sizes, tokens and model time."""

    def __init__(self, registry: CollectorRegistry, prefix: str, what: str) -> None:
        """``prefix``: the metric names' start; ``what``: what its queue holds."""
        self._real = 0
        self._padded = 0
        self.queue_depth = Gauge(
            f"{prefix}_queue_depth", f"{what} waiting for a batch", registry=registry
        )
        self.batch_size = Histogram(
            f"{prefix}_batch_size",
            "Sequences per model batch",
            buckets=_SIZE_BUCKETS,
            registry=registry,
        )
        self.batch_tokens = Histogram(
            f"{prefix}_batch_tokens",
            "Real (unpadded) tokens per model batch",
            buckets=_TOKEN_BUCKETS,
            registry=registry,
        )
        self.real_tokens = Counter(f"{prefix}_tokens", "Real tokens computed", registry=registry)
        self.padded_tokens = Counter(
            f"{prefix}_padded_tokens", "Tokens computed including padding", registry=registry
        )
        self.batch_seconds = Histogram(
            f"{prefix}_batch_seconds", "Model time per batch", registry=registry
        )
        self.lane_depth = Gauge(
            f"{prefix}_lane_queue_depth",
            f"{what} waiting in each lane (interactive, bulk)",
            ["lane"],
            registry=registry,
        )
        self.lane_batches = Counter(
            f"{prefix}_lane_batches", "Batches cut from each lane", ["lane"], registry=registry
        )
        self.lane_wait = Histogram(
            f"{prefix}_lane_wait_seconds",
            f"Time {what.lower()} waited in each lane before their batch was cut",
            ["lane"],
            registry=registry,
        )

    def observe_batch(
        self, size: int, real_tokens: int, padded_tokens: int, seconds: float
    ) -> None:
        self._real += real_tokens
        self._padded += padded_tokens
        self.batch_size.observe(size)
        self.batch_tokens.observe(real_tokens)
        self.real_tokens.inc(real_tokens)
        self.padded_tokens.inc(padded_tokens)
        self.batch_seconds.observe(seconds)

    def padding_share(self) -> float:
        """Share of computed tokens that were padding, since start."""
        return 0.0 if self._padded == 0 else (self._padded - self._real) / self._padded


class Metrics(BatchMetrics):
    """Every metric of one server; the encoder's batches under ``embedserve_``, the
    reranker's (``rerank``) under ``embedserve_rerank_``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        super().__init__(self.registry, "embedserve", "Inputs")
        self.rerank = BatchMetrics(self.registry, "embedserve_rerank", "Pairs")
        self.rpc_seconds = Histogram(
            "embedserve_rpc_seconds",
            "Call latency (gRPC or HTTP)",
            ["method", "transport"],
            registry=self.registry,
        )
        self.rpc_total = Counter(
            "embedserve_rpc",
            "Calls by method (the RPC an HTTP route mirrors), status code and transport",
            ["method", "code", "transport"],
            registry=self.registry,
        )

        self.pass_cost = Gauge(
            "embedserve_pass_cost_seconds",
            "Calibrated forward-pass cost: fixed per pass, and per padded token",
            ["part"],
            registry=self.registry,
        )

        self.query_cache_hits = Counter(
            "embedserve_query_cache_hits",
            "Short windows answered from the query cache (query_cache_size)",
            registry=self.registry,
        )
        self.query_cache_misses = Counter(
            "embedserve_query_cache_misses",
            "Short windows the query cache did not hold, computed by the model",
            registry=self.registry,
        )

        self.ingest_documents = Counter(
            "embedserve_ingest_documents",
            "Documents acknowledged by ingestion streams (durably written)",
            registry=self.registry,
        )
        self.ingest_acks = Counter(
            "embedserve_ingest_acks",
            "Ingested messages written durably (acknowledged each; Ingest answers once at its end)",
            registry=self.registry,
        )
        self.store_write_seconds = Histogram(
            "embedserve_store_write_seconds",
            "Latency of one store write (Upsert or ingestion, retries included)",
            registry=self.registry,
        )
        self.store_write_points = Histogram(
            "embedserve_store_write_points",
            "Points per store write (Upsert or ingestion)",
            buckets=(*_SIZE_BUCKETS, 1024, 2048, 4096),
            registry=self.registry,
        )

        self.reloads = Counter(
            "embedserve_reloads",
            "Files read again while serving (SIGHUP or a change): applied, or refused and "
            "the old ones kept",
            ["file", "result"],
            registry=self.registry,
        )

    def reload_recorder(self, file: str) -> Callable[[bool], None]:
        """Counts the reloads of ``file`` ("api_keys", "tls") by their outcome."""
        return lambda applied: self.reloads.labels(file, "applied" if applied else "refused").inc()

    def observe_pass_cost(self, fixed_s: float, per_token_s: float) -> None:
        self.pass_cost.labels(part="fixed").set(fixed_s)
        self.pass_cost.labels(part="per_token").set(per_token_s)
