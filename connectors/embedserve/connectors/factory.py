"""Pick a backend from configuration."""

from __future__ import annotations

from .edge import EdgeStore
from .errors import InvalidRequest
from .process import ProcessStore
from .retry import RetryingStore, RetryPolicy
from .store import VectorStore

_DEFAULT_RETRY = RetryPolicy()
DEFAULT_GRPC_PORT = 6334  # qdrant-client's own default


def open_store(
    url: str | None = None,
    data_dir: str = "data",
    api_key: str | None = None,
    prefer_grpc: bool = True,
    timeout_s: float = 10.0,
    *,
    grpc_port: int = 0,
    retry: RetryPolicy | None = _DEFAULT_RETRY,
    isolate: bool = False,
) -> VectorStore:
    """Open the vector store that ``url`` names.

    - no url: the embedded engine, persisted in ``data_dir``;
    - ``:memory:``: qdrant-client's in-memory local mode (nothing persisted);
    - ``local:PATH``: qdrant-client's local mode persisted in PATH (``data_dir`` if empty);
    - ``http://`` or ``https://``: a Qdrant server or cluster (gRPC when ``prefer_grpc``,
      on ``grpc_port``; 0 means Qdrant's default, 6334, whatever port the url names).

    Transient failures are retried under ``retry``; pass None to get the bare store.
    ``isolate`` runs the embedded engine in a child process (see ``process.py``).
    """
    from .remote import RemoteStore  # imported on demand: qdrant-client is slow to import

    store: VectorStore
    if not url:
        store = ProcessStore(data_dir) if isolate else EdgeStore(data_dir)
    elif url == ":memory:":
        store = RemoteStore.local()
    elif url.startswith("local:"):
        store = RemoteStore.local(url.removeprefix("local:") or data_dir)
    elif url.startswith(("http://", "https://")):
        if timeout_s <= 0:
            raise InvalidRequest(f"timeout_s must be positive, got {timeout_s}")
        if not 0 <= grpc_port <= 65535:
            raise InvalidRequest(f"grpc_port must be 0-65535, got {grpc_port}")
        store = RemoteStore.connect(
            url,
            api_key=api_key,
            prefer_grpc=prefer_grpc,
            timeout_s=timeout_s,
            grpc_port=grpc_port or DEFAULT_GRPC_PORT,
        )
    else:
        raise InvalidRequest(
            f"unsupported vector store url {url!r}: use http(s)://host:port, ':memory:', "
            "'local:PATH', or no url for the embedded store"
        )
    return store if retry is None else RetryingStore(store, retry)
