"""The ``onnx`` and ``onnx-int8`` backends: the loaded encoder exported once, cached on
disk, and run by ONNX Runtime behind the torch model's own call."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedserve.server.errors import ModelLoadError
from embedserve.server.onnx_cache import build_once, cache_root, entry_name, folder_fingerprint
from embedserve.server.onnx_export import (
    INPUTS,
    INT8_RECIPE,
    OPSET,
    OUTPUT,
    export_float32,
    quantize_int8,
)

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"


@dataclasses.dataclass(frozen=True)
class OnnxOutput:
    last_hidden_state: torch.Tensor


class OnnxEncoder:
    """An ONNX Runtime session answering the call ``EncoderModel.compute`` makes of a
    torch model: the same keywords, an object with ``last_hidden_state``."""

    def __init__(self, session: Any, config: Any, path: Path) -> None:
        self.session = session
        self.config = config
        self.path = path

    def __call__(self, *, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> OnnxOutput:
        feeds = {
            name: tensor.cpu().numpy().astype(np.int64)
            for name, tensor in zip(INPUTS, (input_ids, attention_mask), strict=True)
        }
        try:
            (hidden,) = self.session.run([OUTPUT], feeds)
        except Exception as exc:  # ONNX Runtime's own types: the model fails this batch only
            raise RuntimeError(f"ONNX Runtime: {exc}") from exc
        return OnnxOutput(torch.from_numpy(hidden))


def load_onnx(model: Any, backend: str, source: Path, cache_dir: str) -> OnnxEncoder:
    """``model`` (float32, CPU, loaded from ``source``) as an ONNX Runtime session, from
    the cache when an entry for it exists, else exported (and quantized) into it first."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise ModelLoadError(
            f"backend '{backend}' needs ONNX Runtime: pip install 'embedserve[onnx]'"
        ) from exc
    import transformers

    root = cache_root(cache_dir) / "onnx"
    depends = [
        folder_fingerprint(source),
        f"opset {OPSET}",
        f"onnxruntime {onnxruntime.__version__}",
        f"torch {torch.__version__}",
        f"transformers {transformers.__version__}",
    ]
    label = f"{source.resolve().name}-opset{OPSET}-ort{onnxruntime.__version__}"
    float_entry = root / entry_name(f"{label}-onnx", depends)
    path = float_entry / MODEL_FILE
    _build(float_entry, backend, lambda out: export_float32(model, out / MODEL_FILE))
    if backend == "onnx-int8":
        int8_entry = root / entry_name(f"{label}-onnx-int8", [*depends, INT8_RECIPE])
        _build(int8_entry, backend, lambda out: quantize_int8(path, out / MODEL_FILE))
        path = int8_entry / MODEL_FILE
    return OnnxEncoder(open_session(path), model.config, path)


def _build(entry: Path, backend: str, build: Callable[[Path], None]) -> None:
    started = time.perf_counter()
    try:
        built = build_once(entry, build)
    except Exception as exc:  # the exporters' and quantizer's errors are of many types
        raise ModelLoadError(
            f"backend '{backend}' could not build {entry.name}: {type(exc).__name__}: {exc}"
        ) from exc
    if built:
        log.info("built %s in %.1f s", entry, time.perf_counter() - started)
    else:
        log.info("reusing %s", entry)


def open_session(path: Path) -> Any:
    """A CPU session with every graph optimization, on as many threads as torch uses
    (``torch_threads``), whose threads sleep between runs."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    # ONNX Runtime's threads spin after each run by default, taking the cores that the
    # event loop and the tokenizer need between passes: off, 64 one-text clients got
    # 1.2x the texts/s and one batching client 1.15x (docs/benchmarks.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
