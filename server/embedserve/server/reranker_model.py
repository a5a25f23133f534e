"""The reranker: a cross-encoder that reads a query and a document together and scores
how well the document answers it (a sequence-classification model with one output, as
sentence-transformers' CrossEncoder runs it).

Its passes run on the model thread, as the encoder's do; its batches come from a batcher
of its own (``reranking.py``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any

import torch

from embedserve.server.errors import InferenceFailed, ModelLoadError
from embedserve.server.model import load_weights, pick_attention, pick_device, pick_dtype
from embedserve.server.model_settings import ModelSettings, RerankerSettings
from embedserve.server.model_spec import resolve_model_path
from embedserve.server.reranking import Activation, RerankerSpec
from embedserve.server.windows import FloatArray, Window

log = logging.getLogger(__name__)

RERANKER_HINT = "--reranker takes a hub id (fetched once, then cached) or a local folder."


def read_activation(reranker_id: str, config: Any) -> Activation:
    """The activation the model's sentence-transformers config names (under
    ``sentence_transformers.activation_fn``, or the older ``sbert_ce_default_activation_function``);
    sigmoid when it names none, as CrossEncoder does for a model with one output."""
    saved = getattr(config, "sentence_transformers", None) or {}
    name = saved.get("activation_fn") or getattr(
        config, "sbert_ce_default_activation_function", None
    )
    if not name:
        return Activation.SIGMOID
    aliases = {"torch.nn.Sigmoid": Activation.SIGMOID, "torch.nn.Identity": Activation.IDENTITY}
    aliases["torch.nn.Tanh"] = Activation.TANH
    known = {activation.value: activation for activation in Activation} | aliases
    if name not in known:
        raise ModelLoadError(
            f"reranker '{reranker_id}' scores with activation {name!r}; this server runs "
            f"{', '.join(sorted(known))}"
        )
    return known[name]


class RerankerModel:
    """A cross-encoder with its tokenizer; ``compute`` returns each pair's raw logit."""

    def __init__(
        self,
        spec: RerankerSpec,
        model: Any,
        tokenizer: Any,
        device: torch.device,
        dtype: torch.dtype,
        model_type: str,
    ) -> None:
        self.spec = spec
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = dtype
        self.model_type = model_type
        self._model = model
        # Token types reach the model only where both read them (BERT's pairs do; models
        # whose tokenizer returns none, or whose forward takes none, go without).
        takes_types = "token_type_ids" in inspect.signature(model.forward).parameters
        self._token_types = takes_types and "token_type_ids" in tokenizer.model_input_names

    @classmethod
    def load(cls, reranker: RerankerSettings, model: ModelSettings) -> RerankerModel:
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        reranker_id, path = resolve_model_path(
            reranker.reranker, reranker.reranker_revision, "reranker", RERANKER_HINT
        )
        device = pick_device(model.device)
        dtype = pick_dtype(model.dtype, device)
        trusted = model.trust_remote_code
        try:
            config = AutoConfig.from_pretrained(path, trust_remote_code=trusted)
            if getattr(config, "num_labels", 1) != 1:
                raise ModelLoadError(
                    f"reranker '{reranker_id}' has {config.num_labels} outputs; a reranker "
                    "scores each pair with one (a cross-encoder with num_labels 1)"
                )
            activation = read_activation(reranker_id, config)
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trusted)
            weights = load_weights(
                path, dtype, pick_attention(device), trusted, AutoModelForSequenceClassification
            )
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"cannot load reranker '{reranker_id}' from {path}: {exc}"
            ) from exc
        weights.to(device).eval()
        spec = RerankerSpec(
            reranker_id,
            path,
            _max_tokens(config, tokenizer, reranker.reranker_max_tokens),
            activation,
        )
        log.info(
            "loaded reranker %s (%s) on %s as %s, max %d tokens a pair, %s scores",
            reranker_id,
            config.model_type,
            device,
            dtype,
            spec.max_tokens,
            activation.name.lower(),
        )
        return cls(spec, weights, tokenizer, device, dtype, str(config.model_type))

    @torch.inference_mode()
    def compute(self, windows: Sequence[Window]) -> list[FloatArray]:
        """One padded pass; each window's score (a 1-element array), in order."""
        longest = max(len(window.ids) for window in windows)
        # Padding is masked out, so a tokenizer without a pad token pads with id 0.
        input_ids = torch.full((len(windows), longest), self.tokenizer.pad_token_id or 0)
        attention_mask = torch.zeros((len(windows), longest), dtype=torch.long)
        token_types = torch.zeros((len(windows), longest), dtype=torch.long)
        for row, window in enumerate(windows):
            input_ids[row, : len(window.ids)] = torch.tensor(window.ids)
            attention_mask[row, : len(window.ids)] = 1
            if window.second_start:
                token_types[row, window.second_start : len(window.ids)] = 1
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self._token_types:
            inputs["token_type_ids"] = token_types
        try:
            logits = self._model(**{k: v.to(self.device) for k, v in inputs.items()}).logits
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
            raise InferenceFailed(
                f"the reranker failed on a batch of {len(windows)}: {exc}"
            ) from exc
        return list(logits.float().cpu().numpy().reshape(len(windows), 1))


def _max_tokens(config: Any, tokenizer: Any, requested: int) -> int:
    """The tokenizer's maximum, capped by the model's positions (as CrossEncoder caps it),
    then by ``requested`` when set."""
    limit = int(getattr(tokenizer, "model_max_length", 0) or 0)
    positions = getattr(config, "max_position_embeddings", None)
    if positions and (not limit or limit > positions):
        limit = int(positions)
    if not limit:
        raise ModelLoadError("the reranker's tokenizer and config name no maximum length")
    if requested:
        if requested > limit:
            log.warning("reranker_max_tokens %d is more than the reranker's %d", requested, limit)
        limit = min(requested, limit)
    return limit
