"""Pick a backend from configuration."""

from __future__ import annotations

from .edge import EdgeStore
from .errors import InvalidRequest
from .process import ProcessStore
from .retry import RetryingStore
from .settings import DEFAULT_GRPC_PORT, StoreSettings
from .store import VectorStore


def open_store(settings: StoreSettings | None = None, *, retry: bool = True) -> VectorStore:
    """Open the vector store that ``settings.qdrant_url`` names.

    - no url: the embedded engine, persisted in ``data_dir`` (in a child process when
      ``store_process``, see ``process.py``);
    - ``:memory:``: qdrant-client's in-memory local mode (nothing persisted);
    - ``local:PATH``: qdrant-client's local mode persisted in PATH (``data_dir`` if empty);
    - ``http://`` or ``https://``: a Qdrant server or cluster (gRPC when
      ``qdrant_prefer_grpc``, on ``qdrant_grpc_port``; 0 means Qdrant's default, 6334,
      whatever port the url names).

    Transient failures are retried as ``store_retry_*`` allow; ``retry=False`` gives the
    bare store.
    """
    from .remote import RemoteStore  # imported on demand: qdrant-client is slow to import

    settings = settings or StoreSettings()
    url = settings.qdrant_url
    store: VectorStore
    if not url:
        store = (
            ProcessStore(settings.data_dir)
            if settings.store_process
            else EdgeStore(settings.data_dir)
        )
    elif url == ":memory:":
        store = RemoteStore.local()
    elif url.startswith("local:"):
        store = RemoteStore.local(url.removeprefix("local:") or settings.data_dir)
    elif url.startswith(("http://", "https://")):
        if settings.qdrant_timeout_s <= 0:
            raise InvalidRequest(
                f"qdrant_timeout_s must be positive, got {settings.qdrant_timeout_s}"
            )
        if not 0 <= settings.qdrant_grpc_port <= 65535:
            raise InvalidRequest(
                f"qdrant_grpc_port must be 0-65535, got {settings.qdrant_grpc_port}"
            )
        store = RemoteStore.connect(
            url,
            api_key=settings.qdrant_api_key or None,
            prefer_grpc=settings.qdrant_prefer_grpc,
            timeout_s=settings.qdrant_timeout_s,
            grpc_port=settings.qdrant_grpc_port or DEFAULT_GRPC_PORT,
        )
    else:
        raise InvalidRequest(
            f"unsupported vector store url {url!r}: use http(s)://host:port, ':memory:', "
            "'local:PATH', or no url for the embedded store"
        )
    return RetryingStore(store, settings.retry_policy()) if retry else store
