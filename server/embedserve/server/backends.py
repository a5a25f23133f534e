"""Inference backends: what runs the encoder's forward pass once it is loaded.

- ``torch``: the model as loaded, in its dtype (float32 on a CPU).
- ``torch-int8``: torch's dynamic int8 quantization of the ``nn.Linear``
  layers (weights stored in int8 per output channel, activations quantized per
  batch), their inputs smoothed first (``smoothing.py``); CPU only, no export
  step. The feed-forward output projections stay in float32: their inputs (after
  the GELU) carry outliers that neither a per-batch int8 scale nor smoothing
  tames (on MiniLM, quantizing them too, smoothed or not, took the lowest
  per-text cosine to float32 below 0.97). ``bench/backends.py`` measures speed
  and quality against float32.
- ``onnx``: the model exported to ONNX (float32) and run by ONNX Runtime with all its
  graph optimizations; CPU only, needs the ``onnx`` extra.
- ``onnx-int8``: that export with ONNX Runtime's dynamic int8 quantization of the
  MatMuls (per output channel; the feed-forward output projections again in float32).

The ONNX files are built at the first load and kept under ``cache_dir`` (see
``onnx_cache``), so later loads of the same model folder skip the export.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import torch

from embedserve.server.errors import ModelLoadError
from embedserve.server.model_settings import BACKENDS
from embedserve.server.smoothing import smooth

log = logging.getLogger(__name__)


def apply_backend(
    model: Any,
    backend: str,
    device: torch.device,
    dtype: torch.dtype,
    source: Path,
    cache_dir: str,
    tokenizer: Any,
) -> Any:
    """Return what runs forward passes for ``backend``: a torch module, or for the ONNX
    backends an ``OnnxEncoder`` built from ``model``, loaded from the folder ``source``.
    ``tokenizer`` frames the calibration sequences of ``torch-int8``."""
    if backend not in BACKENDS:
        raise ModelLoadError(f"backend must be one of {', '.join(BACKENDS)}; got '{backend}'")
    if backend == "torch":
        return model
    if device.type != "cpu" or dtype != torch.float32:
        raise ModelLoadError(
            f"backend '{backend}' runs on a CPU in float32; got {device.type} with "
            f"{str(dtype).removeprefix('torch.')}"
        )
    if backend == "torch-int8":
        return quantize_int8(model, tokenizer)
    from embedserve.server.onnx_backend import load_onnx

    return load_onnx(model, backend, source, cache_dir)


# Feed-forward output projections: BERT-style ("layer.N.output.dense", not the
# attention's "attention.output.dense") and ModernBERT ("mlp.Wo").
def keeps_float(layer_name: str) -> bool:
    bert_ffn_out = layer_name.endswith("output.dense") and "attention" not in layer_name
    return bert_ffn_out or layer_name.endswith("mlp.Wo")


def int8_layers(model: Any) -> dict[str, torch.nn.Linear]:
    """The linear layers ``torch-int8`` quantizes, by name: all but ``keeps_float``'s."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not keeps_float(name)
    }


def quantize_int8(model: Any, tokenizer: Any) -> Any:
    """Dynamic int8 quantization of the smoothed linear layers (weights now, activations
    per batch)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    smoothed = smooth(model, int8_layers(model), tokenizer)
    layers = {name: per_channel_dynamic_qconfig for name in smoothed}
    with warnings.catch_warnings():
        # torch.ao.quantization warns that it is deprecated in favour of torchao, an
        # extra dependency; its dynamic int8 linear path is still the one torch ships.
        warnings.simplefilter("ignore")
        quantized = quantize_dynamic(model, layers, dtype=torch.qint8)  # type: ignore[no-untyped-call]
    log.info("%d linear layers quantized to int8 (dynamic activations)", len(layers))
    return quantized
