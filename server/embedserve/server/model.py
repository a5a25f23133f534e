"""The encoder: loading, one padded forward pass per batch, pooling.

Everything here runs on the model thread; the batcher decides what goes in.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from collections.abc import Sequence
from typing import Any

import torch

from embedserve.server.attention import register_aligned_sdpa
from embedserve.server.backends import apply_backend
from embedserve.server.bert_packed import first_position
from embedserve.server.compiled import CompiledEncoder, check_compilable, compile_encoder
from embedserve.server.cpu_features import cpu_flags
from embedserve.server.dense_head import DenseHead
from embedserve.server.errors import InferenceFailed, ModelLoadError
from embedserve.server.model_settings import ModelSettings
from embedserve.server.model_spec import (
    ModelSpec,
    PoolingMode,
    read_model_spec,
    resolve_model_path,
)
from embedserve.server.packed_paths import (
    pick_bert_path,
    pick_modernbert_path,
    refuse_off_the_torch_module,
)
from embedserve.server.tokenization import NoRoomForText, TextTokenizer
from embedserve.server.windows import FloatArray, Window

log = logging.getLogger(__name__)


DEVICE_FLAG = "--device (EMBEDSERVE_DEVICE)"


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:  # torch lists every device type it knows, most of them not ours
        raise ModelLoadError(
            f"device must be auto, cpu, cuda or cuda:N (or another torch device); got {requested!r}"
        ) from None
    if device.type == "mps" and not torch.backends.mps.is_available():
        # Else the load went on and failed later with a traceback.
        raise ModelLoadError(
            f"{DEVICE_FLAG} '{requested}' was requested but this torch has no MPS device "
            "(Apple GPUs); use auto or cpu"
        )
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise ModelLoadError(
            f"{DEVICE_FLAG} '{requested}' was requested but no CUDA device is available"
        )
    if (device.index or 0) >= (count := torch.cuda.device_count()):
        raise ModelLoadError(
            f"{DEVICE_FLAG} '{requested}': there are {count} CUDA devices (cuda:0 first)"
        )
    return device


def pick_dtype(requested: str, device: torch.device, backend: str = "torch") -> torch.dtype:
    """``auto``: bfloat16 (or float16) on a GPU; on a CPU bfloat16 where the cores multiply
    it in hardware (Intel AMX) and the backend is torch, else float32."""
    if requested == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if backend == "torch" and cpu_has_bf16_matrix_units():
            return torch.bfloat16
        return torch.float32
    names = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if requested not in names:
        raise ModelLoadError(f"dtype must be one of auto, {', '.join(names)}; got '{requested}'")
    return names[requested]


def cpu_has_bf16_matrix_units() -> bool:
    """Whether this CPU has AMX bfloat16 tiles the OS lets torch use: there a bfloat16
    pass runs about 2x float32's (docs/benchmarks.md), elsewhere it may run slower."""
    if "amx_bf16" not in cpu_flags():
        return False
    init_amx = getattr(torch._C._cpu, "_init_amx", None)  # asks the kernel for the tiles
    return bool(init_amx()) if init_amx is not None else True


def pick_attention(device: torch.device) -> str:
    if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    if device.type == "cpu":
        return register_aligned_sdpa()  # sdpa, with bfloat16 keys aligned (attention.py)
    return "sdpa"


def load_weights(
    path: Any, dtype: torch.dtype, attention: str, trust_remote_code: bool, auto: Any = None
) -> Any:
    """The encoder in ``path`` (through ``auto``, transformers' AutoModel unless given) with
    ``attention``, or with its own default attention where its architecture has no such
    implementation (MPNet, DeBERTa: eager only). Of an encoder-decoder (T5, as in
    sentence-t5 and gtr-t5) only the encoder is kept."""
    if auto is None:
        from transformers import AutoModel as auto

    options: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code}
    try:
        model = auto.from_pretrained(path, attn_implementation=attention, **options)
    except ValueError as exc:
        try:
            model = auto.from_pretrained(path, **options)
        except ValueError:
            raise exc from None  # not the attention, then: the first error says what
        implementation = model.config._attn_implementation
        log.info("%s has no %s attention; it runs %s", path, attention, implementation)
    if getattr(model.config, "is_encoder_decoder", False):
        return model.get_encoder()
    return model


class EncoderModel:
    """A Hugging Face encoder with its tokenizer and its own usage settings."""

    def __init__(
        self,
        spec: ModelSpec,
        model: Any,
        tokenizer: TextTokenizer,
        device: torch.device,
        dtype: torch.dtype,
        hidden_size: int,
        model_type: str,
        head: DenseHead,
        backend: str = "torch",
    ) -> None:
        self.spec = spec
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = dtype
        self._head = head  # the model's Dense layers after pooling, if any
        self.dimensions = head.width(hidden_size)
        self.token_dimensions = hidden_size
        self.model_type = model_type
        self.backend = backend
        self._model = model

    @classmethod
    def load(cls, settings: ModelSettings) -> EncoderModel:
        from transformers import AutoConfig, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        model_id, path = resolve_model_path(settings.model, settings.model_revision)
        torch_device = pick_device(settings.device)
        torch_dtype = pick_dtype(settings.dtype, torch_device, settings.backend)
        trusted = settings.trust_remote_code
        try:
            config = AutoConfig.from_pretrained(path, trust_remote_code=trusted)
            positions = getattr(config, "max_position_embeddings", None)
            # Before the weights: a model this server would serve wrongly fails fast.
            spec = read_model_spec(model_id, path, positions)
            hf_tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trusted)
            model = load_weights(path, torch_dtype, pick_attention(torch_device), trusted)
        except (OSError, ValueError) as exc:
            if not trusted and "trust_remote_code" in str(exc):
                raise ModelLoadError(
                    f"model '{model_id}' runs Python code of its own (config.json's auto_map, "
                    f"in {path}); it loads only with --trust-remote-code, which runs that code "
                    "in this process: pass it for a folder you trust"
                ) from exc
            raise ModelLoadError(f"cannot load model '{model_id}' from {path}: {exc}") from exc
        model.to(torch_device).eval()
        if positions is not None:  # the rows a real token can use
            positions -= first_position(model)
            spec = dataclasses.replace(spec, max_tokens=min(spec.max_tokens, positions))
        # Refused now, not after the backend's export or quantization.
        refuse_off_the_torch_module(
            model, settings.backend, settings.modernbert_path, settings.bert_path
        )
        if settings.torch_compile:
            check_compilable(settings.backend)
        model = apply_backend(
            model,
            settings.backend,
            torch_device,
            torch_dtype,
            path,
            settings.cache_dir,
            hf_tokenizer,
        )
        model = pick_modernbert_path(model, settings.modernbert_path)
        model = pick_bert_path(model, settings.bert_path)
        if settings.torch_compile:
            model = compile_encoder(model, settings.backend)
        if max_tokens := settings.max_tokens:
            if positions and max_tokens > positions:
                log.warning(
                    "max_tokens %d is more than the model's %d positions; using %d",
                    max_tokens,
                    positions,
                    positions,
                )
            spec = dataclasses.replace(spec, max_tokens=min(max_tokens, positions or max_tokens))
        try:
            tokenizer = TextTokenizer(
                hf_tokenizer,
                spec.max_tokens,
                spec.include_prompt,
                settings.chunk_overlap_tokens,
                spec.lowercase,
            )
        except NoRoomForText as exc:
            raise ModelLoadError(
                f"--max-tokens (EMBEDSERVE_MAX_TOKENS) {settings.max_tokens} leaves no room for "
                f"text beside the {exc.special} special tokens of model '{model_id}'; it takes "
                f"at least {exc.special + 1}"
            ) from exc
        log.info(
            "loaded %s (%s) on %s as %s (backend %s), max %d tokens, %s pooling",
            model_id,
            config.model_type,
            torch_device,
            torch_dtype,
            settings.backend,
            spec.max_tokens,
            spec.pooling.value,
        )
        return cls(
            spec,
            model,
            tokenizer,
            torch_device,
            torch_dtype,
            int(config.hidden_size),
            str(config.model_type),
            DenseHead(path, spec.dense, torch_device),
            settings.backend,
        )

    def warm_up_compiled(self, thread_counts: Sequence[int]) -> None:
        """Compile now, for each thread count passes will run on (see compiled.py)."""
        if isinstance(self._model, CompiledEncoder):
            self._model.warm_up(thread_counts, self.device)

    @torch.inference_mode()
    def compute(self, windows: Sequence[Window]) -> list[FloatArray]:
        """Run one padded batch; identical sequences go through the model once.

        Only the forward pass is shared: windows with the same ids may still pool
        differently (another start or mode), so pooling is keyed on all three.
        """
        row_of: dict[tuple[int, ...], int] = {}
        rows = [row_of.setdefault(window.ids, len(row_of)) for window in windows]
        sequences = list(row_of)
        lengths = torch.tensor([len(seq) for seq in sequences])
        input_ids = torch.full((len(sequences), int(lengths.max())), self.tokenizer.pad_token_id)
        for index, seq in enumerate(sequences):
            input_ids[index, : len(seq)] = torch.tensor(seq)
        positions = torch.arange(input_ids.shape[1])
        attention_mask = (positions[None, :] < lengths[:, None]).long()
        try:
            hidden = self._model(
                input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device)
            ).last_hidden_state.float()
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
            raise InferenceFailed(
                f"the model failed on a batch of {len(sequences)}: {exc}"
            ) from exc
        pooled = _pool(hidden, lengths, windows, rows, self._head)
        results: list[FloatArray] = []
        for window, row in zip(windows, rows, strict=True):
            if window.pooling is None:
                results.append(hidden[row, : int(lengths[row])].cpu().numpy())
            else:
                results.append(pooled[(row, window.pool_start, window.pooling)])
        return results


PoolKey = tuple[int, int, PoolingMode]  # (row of the batch, pooling start, mode)


def _pool(
    hidden: torch.Tensor,
    lengths: torch.Tensor,
    windows: Sequence[Window],
    rows: Sequence[int],
    head: DenseHead,
) -> dict[PoolKey, FloatArray]:
    """One pooled vector per distinct (row, start, mode) among the windows, through
    ``head``."""
    keys = list(
        dict.fromkeys(
            (row, window.pool_start, window.pooling)
            for window, row in zip(windows, rows, strict=True)
            if window.pooling is not None
        )
    )
    pooled: dict[PoolKey, FloatArray] = {}
    mean_keys = [key for key in keys if key[2] is PoolingMode.MEAN]
    if mean_keys:
        key_rows = torch.tensor([row for row, _, _ in mean_keys])
        starts = torch.tensor([start for _, start, _ in mean_keys])
        positions = torch.arange(hidden.shape[1])
        ends = lengths[key_rows]
        mask = (positions[None, :] < ends[:, None]) & (positions[None, :] >= starts[:, None])
        mask_f = mask.to(hidden.device, hidden.dtype).unsqueeze(-1)
        summed = (hidden[key_rows.to(hidden.device)] * mask_f).sum(dim=1)
        means = head(summed / mask_f.sum(dim=1).clamp(min=1e-9)).cpu().numpy()
        pooled.update(zip(mean_keys, means, strict=True))
    # CLS and LAST_TOKEN each take one token: its position is all that differs. CLS is the
    # first pooled token: [CLS] itself, or the text's first when pooling leaves the prompt
    # out (sentence-transformers masks the prompt and takes the first token left).
    token_keys = [key for key in keys if key[2] is not PoolingMode.MEAN]
    if token_keys:
        key_rows = torch.tensor([row for row, _, _ in token_keys], device=hidden.device)
        picks = torch.tensor(
            [
                start if mode is PoolingMode.CLS else int(lengths[row]) - 1
                for row, start, mode in token_keys
            ],
            device=hidden.device,
        )
        picked = head(hidden[key_rows, picks]).cpu().numpy()
        pooled.update(zip(token_keys, picked, strict=True))
    return pooled
