"""SmoothQuant-style scaling of linear layers' inputs before dynamic int8 quantization.

A transformer's activations carry a few channels with values many times larger
than the rest (on MiniLM, up to 15 times the median). Dynamic int8 gives a whole
batch's activations one scale, so those channels flatten every other one (on
MiniLM: a lowest per-text cosine of 0.95 against float32). Dividing each input
channel by ``s`` and multiplying the matching weight column by ``s`` leaves the
product unchanged in exact arithmetic and moves part of the range from the
activations into the weights, which are quantized per output channel (Xiao et
al., "SmoothQuant", 2023):
``s_j = max|x_j| ** alpha / max|w_j| ** (1 - alpha)``.

The input ranges are measured at load time on random token sequences from the
model's vocabulary, so no calibration data ships with the server; on MiniLM
these gave the same quality as calibrating on real text (docs/benchmarks.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch

from embedserve.server.bert_packed import first_position

log = logging.getLogger(__name__)

ALPHA = 0.7
# (count, tokens) of the calibration batches: equal lengths, so no padding is measured.
CALIBRATION_BATCHES = ((8, 16), (8, 32), (8, 64), (8, 128))


class SmoothedLinear(torch.nn.Module):
    """``linear`` applied to its input divided channel-wise by the smoothing scale."""

    inverse_scale: torch.Tensor

    def __init__(self, linear: torch.nn.Module, inverse_scale: torch.Tensor) -> None:
        super().__init__()
        self.linear = linear  # an nn.Linear, or its int8 replacement after quantization
        self.register_buffer("inverse_scale", inverse_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(x * self.inverse_scale)
        return out


def calibration_inputs(
    tokenizer: Any, vocab_size: int, max_tokens: int, seed: int = 0
) -> Iterable[torch.Tensor]:
    """Batches of random ordinary tokens, each sequence framed by the special tokens the
    tokenizer puts around an empty text (BERT's [CLS] ... [SEP], RoBERTa's <s> ... </s>)."""
    framing = tokenizer("")["input_ids"]
    prefix, suffix = framing[:1], framing[1:]
    special = set(tokenizer.all_special_ids)
    ordinary = torch.tensor([i for i in range(vocab_size) if i not in special])
    generator = torch.Generator().manual_seed(seed)
    for count, tokens in CALIBRATION_BATCHES:
        length = min(tokens, max_tokens) - len(framing)
        picks = torch.randint(len(ordinary), (count, length), generator=generator)
        yield torch.tensor([prefix + ordinary[row].tolist() + suffix for row in picks])


@torch.inference_mode()
def input_ranges(
    model: Any, layers: dict[str, torch.nn.Linear], batches: Iterable[torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The largest absolute value of each input channel of each of ``layers``."""
    ranges: dict[str, torch.Tensor] = {}

    def recorder(name: str) -> Callable[[Any, tuple[torch.Tensor, ...]], None]:
        def record(_: Any, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(dim=0).float()
            ranges[name] = torch.maximum(ranges[name], x) if name in ranges else x

        return record

    hooks = [layer.register_forward_pre_hook(recorder(name)) for name, layer in layers.items()]
    try:
        for input_ids in batches:
            model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
    finally:
        for hook in hooks:
            hook.remove()
    return ranges


def smooth(
    model: Any, layers: dict[str, torch.nn.Linear], tokenizer: Any, alpha: float = ALPHA
) -> list[str]:
    """Wrap each of ``layers`` in a ``SmoothedLinear`` with its weight scaled to match;
    returns the names of the wrapped ``nn.Linear`` modules (``NAME.linear``)."""
    started = time.perf_counter()
    config = model.config
    vocab_size = min(len(tokenizer), config.vocab_size)
    # The positions a text can use: RoBERTa's count from its padding id + 1.
    positions = getattr(config, "max_position_embeddings", None) or 512
    max_tokens = positions - first_position(model)
    ranges = input_ranges(model, layers, calibration_inputs(tokenizer, vocab_size, max_tokens))
    wrapped: list[str] = []
    for name, layer in layers.items():
        if name not in ranges:  # not on the forward path (never called)
            continue
        weight_range = layer.weight.detach().abs().amax(dim=0).float()
        scale = ranges[name].clamp(min=1e-5) ** alpha / weight_range.clamp(min=1e-5) ** (1 - alpha)
        scale = scale.clamp(min=1e-5)
        with torch.no_grad():
            layer.weight.mul_(scale.to(layer.weight.dtype))
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, SmoothedLinear(layer, (1 / scale).to(layer.weight.dtype)))
        wrapped.append(f"{name}.linear")
    log.info(
        "smoothed the inputs of %d linear layers (alpha %.2f) in %.1f s",
        len(wrapped),
        alpha,
        time.perf_counter() - started,
    )
    return wrapped
