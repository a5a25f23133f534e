"""What the HTTP routes reach: the core (attached once warm) and the server's policies."""

from __future__ import annotations

import dataclasses

from starlette.requests import Request

from embedserve.server.auth import KeyRing
from embedserve.server.config import Settings
from embedserve.server.drain import Drain
from embedserve.server.embedder import Embedder
from embedserve.server.errors import NotFound, NotReady
from embedserve.server.ratelimit import RateLimiter
from embedserve.server.reranking import Reranker, no_reranker
from embedserve.server.vectors import VectorCore


@dataclasses.dataclass
class Backend:
    settings: Settings
    keys: KeyRing
    drain: Drain
    limiter: RateLimiter | None = None
    _embedder: Embedder | None = None
    _vectors: VectorCore | None = None
    _reranker: Reranker | None = None

    def attach(
        self, embedder: Embedder, vectors: VectorCore, reranker: Reranker | None = None
    ) -> None:
        self._embedder = embedder
        self._vectors = vectors
        self._reranker = reranker

    @property
    def reranker_if_served(self) -> Reranker | None:
        return self._reranker

    @property
    def reranker(self) -> Reranker:
        if self._reranker is None:
            if self._embedder is None:
                raise NotReady("the model is still loading; wait for GET /health to answer 200")
            raise no_reranker()
        return self._reranker

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            raise NotReady("the model is still loading; wait for GET /health to answer 200")
        return self._embedder

    @property
    def vectors(self) -> VectorCore:
        if self._vectors is None:
            raise NotReady("the server is still starting; wait for GET /health to answer 200")
        return self._vectors

    @property
    def ready(self) -> bool:
        return self._vectors is not None and not self.drain.started

    def served_model(self, name: str | None) -> str:
        """The served model's id; NotFound where a request's ``model`` names another (it
        may use the model's id or the name it was served by)."""
        served = self.embedder.model.spec.model_id
        if name and name not in {served, self.settings.model}:
            raise NotFound(f"model {name!r} is not served here; this server serves {served!r}")
        return served


def backend_of(request: Request) -> Backend:
    """The backend the application serving ``request`` was built with."""
    backend: Backend = request.app.state.backend
    return backend
