"""A loaded encoder to an ONNX file (float32), and that file to dynamic int8.

The float32 graph is traced by torch's TorchScript exporter (``dynamo=False``: it needs
neither onnxscript nor ``torch.export``'s shape guards) with dynamic batch and sequence
axes. The int8 graph is ONNX Runtime's dynamic quantization of the float32 one: MatMul
weights in int8 with one scale per output channel, activations quantized per batch at
run time with one scale per tensor (weights in 7 bits on CPUs without VNNI, see
``REDUCE_RANGE``). Kept in float32 (``keeps_float_in_int8``): the
feed-forward output projections, as for ``torch-int8``, and the feed-forward input
projections of the first half of the layers. On MiniLM, with batches of 16, 32 and 64
texts, that kept every text's cosine to float32 >= 0.992; the feed-forward outputs alone
gave 0.988 on long texts in batches of 32 and 64 (a batch's one activation scale is set
by its largest value, so the bound depends on the batch), and the whole feed-forward
block in float32 gave 0.995 but ran slower in the probes (docs/benchmarks.md).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import torch

from embedserve.server.backends import keeps_float
from embedserve.server.cpu_features import cpu_has_vnni

OPSET = 17
INPUTS = ("input_ids", "attention_mask")
OUTPUT = "last_hidden_state"
# Weights in 7 bits where int8 products go through AVX2's vpmaddubsw, whose int16 sums
# saturate with full-range weights (ONNX Runtime's quantization notes): on an AVX2-only
# CPU, full-range weights put one MiniLM text at cosine 0.989 to float32, 7-bit ones kept
# every text at 0.994 or more. With VNNI the products are exact, so all 8 bits are kept.
REDUCE_RANGE = not cpu_has_vnni()
# What the int8 graph is made with; part of its cache entry's name, so that changing it
# makes a new entry instead of reusing one built another way.
INT8_RECIPE = (
    f"MatMul per_channel=True reduce_range={REDUCE_RANGE} weights=QInt8 keep=ffn-out,ffn-in<half"
)


class _LastHidden(torch.nn.Module):
    """The encoder with positional inputs and one tensor out, as the exporter wants."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return out.last_hidden_state  # type: ignore[no-any-return]


def export_float32(model: Any, path: Path) -> None:
    """Trace ``model`` (float32, on the CPU) into ``path``."""
    batch, length = 2, 16
    input_ids = torch.arange(batch * length).reshape(batch, length) % int(model.config.vocab_size)
    attention_mask = torch.ones(batch, length, dtype=torch.long)
    # One padded row: with none, the trace could drop the attention mask as all ones.
    attention_mask[1, length // 2 :] = 0
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about every Python branch on a shape; those of the encoders
        # served here do not depend on the batch or sequence size.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _LastHidden(model),
            (input_ids, attention_mask),
            str(path),
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_axes={name: axes for name in (*INPUTS, OUTPUT)},
            opset_version=OPSET,
            dynamo=False,
        )


def layer_of(node_name: str) -> str:
    """The module path of an exported node: ``/encoder/layer.0/output/dense/MatMul`` is
    ``encoder.layer.0.output.dense``, the name ``keeps_float`` knows."""
    return ".".join(node_name.strip("/").split("/")[:-1])


def keeps_float_in_int8(layer: str, layers: int) -> bool:
    """Feed-forward output projections, and the input projections (BERT's
    ``intermediate.dense``, ModernBERT's ``mlp.Wi``) of layers below ``layers // 2``."""
    if keeps_float(layer):
        return True
    index = re.search(r"\.layers?\.(\d+)\.", f".{layer}")
    ffn_in = layer.endswith(("intermediate.dense", "mlp.Wi"))
    return ffn_in and index is not None and int(index.group(1)) < layers // 2


def quantize_int8(source: Path, path: Path) -> None:
    """Dynamic int8 of ``source``'s MatMuls into ``path`` (the recipe is ``INT8_RECIPE``)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source), load_external_data=False).graph
    matmuls = [layer_of(n.name) for n in graph.node if n.op_type == "MatMul"]
    layers = sum(keeps_float(layer) for layer in matmuls)  # one feed-forward output each
    keep = [
        n.name
        for n in graph.node
        if n.op_type == "MatMul" and keeps_float_in_int8(layer_of(n.name), layers)
    ]
    quantize_dynamic(
        source,
        path,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        reduce_range=REDUCE_RANGE,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=keep,
    )
