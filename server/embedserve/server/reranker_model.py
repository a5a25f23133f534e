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

from embedserve.server.bert_packed import first_position
from embedserve.server.errors import InferenceFailed, ModelLoadError
from embedserve.server.model import load_weights, pick_attention, pick_device, pick_dtype
from embedserve.server.model_settings import ModelSettings, RerankerSettings
from embedserve.server.model_spec import read_json_object, resolve_model_path
from embedserve.server.reranking import Activation, RerankerSpec
from embedserve.server.windows import FloatArray, Window

log = logging.getLogger(__name__)

RERANKER_HINT = "--reranker takes a hub id (fetched once, then cached) or a local folder."


def read_activation(reranker_id: str, config: Any, saved: dict[str, Any]) -> Activation:
    """The activation the model's sentence-transformers config names, where CrossEncoder
    looks for it: ``activation_fn`` in ``config_sentence_transformers.json`` (``saved``),
    then under ``sentence_transformers`` in config.json, then the older
    ``sbert_ce_default_activation_function``; sigmoid when none names one, as
    CrossEncoder does for a model with one output."""
    in_config = getattr(config, "sentence_transformers", None) or {}
    name = (
        saved.get("activation_fn")
        or in_config.get("activation_fn")
        or getattr(config, "sbert_ce_default_activation_function", None)
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


def _query_prompt(reranker_id: str, saved: dict[str, Any]) -> str:
    """The prompt CrossEncoder puts before each query: the one its config names as the
    default ("" without)."""
    name = saved.get("default_prompt_name")
    if not name:
        return ""
    prompts = saved.get("prompts") or {}
    if not isinstance(prompts, dict) or not isinstance(prompts.get(name), str):
        raise ModelLoadError(
            f"reranker '{reranker_id}' names the default prompt {name!r}, which its "
            "config_sentence_transformers.json does not hold"
        )
    return str(prompts[name])


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
    def load(
        cls,
        reranker: RerankerSettings,
        model: ModelSettings,
        dtype: torch.dtype | None = None,
    ) -> RerankerModel:
        """``dtype``: the encoder's number format, which the reranker runs in too; None:
        the one the encoder would pick with ``model``'s dtype, device and backend (float32
        where the backend is not torch, whatever the CPU)."""
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        reranker_id, path = resolve_model_path(
            reranker.reranker, reranker.reranker_revision, "reranker", RERANKER_HINT
        )
        device = pick_device(model.device)
        if dtype is None:
            dtype = pick_dtype(model.dtype, device, model.backend)
        trusted = model.trust_remote_code
        try:
            config = AutoConfig.from_pretrained(path, trust_remote_code=trusted)
            if getattr(config, "num_labels", 1) != 1:
                raise ModelLoadError(
                    f"reranker '{reranker_id}' has {config.num_labels} outputs; a reranker "
                    "scores each pair with one (a cross-encoder with num_labels 1)"
                )
            # CrossEncoder keeps its activation and prompts there.
            saved = read_json_object(path / "config_sentence_transformers.json")
            activation = read_activation(reranker_id, config, saved)
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trusted)
            weights = load_weights(
                path, dtype, pick_attention(device), trusted, AutoModelForSequenceClassification
            )
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"cannot load reranker '{reranker_id}' from {path}: {exc}"
            ) from exc
        weights.to(device).eval()
        prompt = _query_prompt(reranker_id, saved)
        spec = RerankerSpec(
            reranker_id,
            path,
            _max_tokens(
                config,
                tokenizer,
                reranker.reranker_max_tokens,
                prompt,
                first_position(weights.base_model),
            ),
            activation,
            prompt,
        )
        # The limit (spec.max_tokens) is ours to enforce, pairs read whole first: silence
        # the tokenizer's warning that a pair is longer ("will result in indexing errors").
        tokenizer.model_max_length = 1 << 30
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


def _max_tokens(
    config: Any, tokenizer: Any, requested: int, prompt: str = "", first_position: int = 0
) -> int:
    """The tokenizer's maximum, capped by the model's positions (as CrossEncoder caps it)
    less the first ones a token cannot use (``first_position``: RoBERTa counts from its
    padding id + 1, so 514 positions hold 512 tokens), then by ``requested`` when set; a
    ``requested`` below what a pair needs (its special tokens, the query prompt's, and a
    token of each text) is refused."""
    limit = int(getattr(tokenizer, "model_max_length", 0) or 0)
    positions = getattr(config, "max_position_embeddings", None)
    if positions:
        positions -= first_position
    if positions and (not limit or limit > positions):
        limit = int(positions)
    if not limit:
        raise ModelLoadError("the reranker's tokenizer and config name no maximum length")
    # Fewer, and every pair was cut to its special tokens (all scores equal), or ran whole
    # above the limit, which truncation could not reach.
    fixed = int(tokenizer.num_special_tokens_to_add(pair=True))
    if prompt:
        fixed += len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    smallest = fixed + 2
    if requested and requested < smallest:
        raise ModelLoadError(
            f"--reranker-max-tokens (EMBEDSERVE_RERANKER_MAX_TOKENS) {requested} leaves no "
            f"room for a query and a document beside the reranker's "
            f"{fixed} special {'and prompt ' if prompt else ''}tokens; it takes at least {smallest}"
        )
    if requested:
        if requested > limit:
            log.warning("reranker_max_tokens %d is more than the reranker's %d", requested, limit)
        limit = min(requested, limit)
    return limit
