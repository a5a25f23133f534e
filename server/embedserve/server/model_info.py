"""What the server serves: the model, its settings and the limits, for every transport."""

from __future__ import annotations

import dataclasses

from embedserve.server.batcher import BatchLimits
from embedserve.server.embedder import Embedder, RequestLimits
from embedserve.server.model_identity import former_model_fingerprints, model_fingerprint
from embedserve.server.model_spec import PoolingMode, SimilarityFunction, hub_commit
from embedserve.server.reranking import Reranker


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    model_id: str
    dimensions: int
    max_tokens: int
    pooling: PoolingMode
    normalize: bool
    prompts: dict[str, str]
    default_prompt_name: str
    dtype: str
    device: str
    backend: str  # what runs the forward pass (--backend)
    model_type: str
    similarity: SimilarityFunction
    model_revision: str  # the hub commit served; "" for other folders
    fingerprint: str  # of the model's files (model_identity.py)
    former_fingerprint: str  # of the former kind, which older collections record
    former_fingerprints: list[str]  # every one of the former kind naming this model
    batching: BatchLimits
    limits: RequestLimits
    reranker: RerankerInfo | None


@dataclasses.dataclass(frozen=True)
class RerankerInfo:
    model_id: str
    max_tokens: int
    model_type: str
    activation: str  # sigmoid, identity or tanh


def model_info(embedder: Embedder, reranker: Reranker | None = None) -> ModelInfo:
    model = embedder.model
    spec = model.spec
    return ModelInfo(
        model_id=spec.model_id,
        dimensions=model.dimensions,
        max_tokens=spec.max_tokens,
        pooling=spec.pooling,
        normalize=spec.normalize,
        prompts=dict(spec.prompts),
        default_prompt_name=spec.default_prompt_name or "",
        dtype=str(model.dtype).removeprefix("torch."),
        device=str(model.device),
        backend=model.backend,
        model_type=model.model_type,
        similarity=spec.similarity,
        model_revision=hub_commit(spec.path),
        fingerprint=model_fingerprint(spec.path),
        former_fingerprint=former_model_fingerprints(spec.path)[0],
        former_fingerprints=list(former_model_fingerprints(spec.path)),
        batching=embedder.batcher.limits,
        limits=embedder.limits,
        reranker=None if reranker is None else reranker_info(reranker),
    )


def reranker_info(reranker: Reranker) -> RerankerInfo:
    spec = reranker.model.spec
    return RerankerInfo(
        spec.reranker_id, spec.max_tokens, reranker.model.model_type, spec.activation.name.lower()
    )
