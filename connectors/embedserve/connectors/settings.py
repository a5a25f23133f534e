"""The vector-store section of the server's settings: which store, and how to reach it."""

from __future__ import annotations

import dataclasses

from .retry import RetryPolicy

DEFAULT_GRPC_PORT = 6334  # Qdrant's (and qdrant-client's) own default


@dataclasses.dataclass(frozen=True)
class StoreSettings:
    """Where the store is and how to reach it; ``open_store`` takes it whole.

    The embedded engine keeps its collections in ``data_dir`` unless ``qdrant_url`` names
    a server (``http(s)://host:port``), ``:memory:`` or ``local:PATH`` (qdrant-client's
    local mode).
    """

    data_dir: str = "./data"
    qdrant_url: str = ""
    qdrant_api_key: str = dataclasses.field(default="", repr=False)
    qdrant_prefer_grpc: bool = True
    qdrant_grpc_port: int = 0  # the server's gRPC port when preferred; 0: DEFAULT_GRPC_PORT
    qdrant_timeout_s: float = 10.0
    # Run the embedded engine in a child process, so its index builds never stall the server.
    store_process: bool = True
    store_retry_attempts: int = RetryPolicy.max_attempts
    store_retry_max_s: float = RetryPolicy.max_total_s

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.store_retry_attempts, max_total_s=self.store_retry_max_s
        )
