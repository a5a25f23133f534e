"""A packed ModernBERT layer's token-wise parts, run eagerly in fewer kernels.

On a GPU most of a ModernBERT pass outside its matrix products is small
elementwise kernels, each a trip through memory (docs/benchmarks.md, "GPU:
ModernBERT paths"). transformers rotates the queries and then the keys, each in
float32 through about eight kernels (two casts, a negation, a concatenation,
two multiplies, an add, a cast back). Here:

- the queries and keys are rotated together, each half by one multiply and one
  multiply-add computed in float32, then cast back once (on a GPU the inputs are
  promoted inside the kernels, so no float32 copy is made);
- a residual add rides in its matrix product (``addmm``) where the layer is a
  plain linear layer without a bias.

The layer's own modules still run its norms and products, so a backend that
replaces them (``torch-int8``) runs here too. ``modernbert_steps.py`` is the
same layer for torch.compile, which fuses the plain formulas itself.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

Tensor = torch.Tensor


def rotate(pairs: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """transformers' ``apply_rotary_pos_emb`` of queries and keys stacked in ``pairs``.

    ``pairs``: [n, T, heads, d] (any strides); ``cos``, ``sin``: [T, d]. Returns
    ``x * cos + rotate_half(x) * sin``, computed in float32, in ``pairs``' dtype and
    contiguous, so that each ``out[i]`` is a whole tensor.
    """
    dtype = pairs.dtype
    if pairs.device.type == "cpu":
        # CPU kernels that mix bfloat16 and float32 inputs run slower than a copy to
        # float32 and float32 kernels (4,096 tokens x 12 heads: 23 ms against 18 ms).
        pairs = pairs.float()
    return rotated_float32(pairs, cos, sin).to(dtype)


def rotated_float32(pairs: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """``rotate``'s result in float32, each input promoted inside the kernels."""
    half = pairs.shape[-1] // 2
    cos = cos.float()[:, None]  # [T, 1, d], against [n, T, heads, d]
    sin = sin.float()[:, None]
    low, high = pairs[..., :half], pairs[..., half:]
    out = torch.empty(pairs.shape, dtype=torch.float32, device=pairs.device)
    out_low, out_high = out[..., :half], out[..., half:]
    # rotate_half(x) is (-high, low)
    torch.mul(low, cos[..., :half], out=out_low)
    out_low.addcmul_(high, sin[..., :half], value=-1)
    torch.mul(high, cos[..., half:], out=out_high)
    out_high.addcmul_(low, sin[..., half:])
    return out


def add_product(hidden: Tensor, linear: Any, x: Tensor) -> Tensor:
    """``hidden + linear(x)``, the add inside the product for a plain bias-free layer."""
    if type(linear) is nn.Linear and linear.bias is None:
        return torch.addmm(hidden, x, linear.weight.t())
    out: Tensor = hidden + linear(x)
    return out


class EagerSteps:
    """``project`` and ``finish`` of each layer, through the layer's modules."""

    def __init__(self, model: Any) -> None:
        self.layers = list(model.layers)
        self.heads = int(model.config.num_attention_heads)

    def project(
        self, index: int, hidden: Tensor, cos: Tensor, sin: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Layer ``index``'s queries, keys and values [T, heads, d] of ``hidden``."""
        layer = self.layers[index]
        qkv = layer.attn.Wqkv(layer.attn_norm(hidden)).view(hidden.shape[0], 3, self.heads, -1)
        rotated = rotate(qkv[:, :2].transpose(0, 1), cos, sin)
        return rotated[0], rotated[1], qkv[:, 2]

    def finish(self, index: int, hidden: Tensor, attended: Tensor) -> Tensor:
        """Layer ``index``'s output, given its attention's output ``attended``."""
        layer = self.layers[index]
        hidden = add_product(hidden, layer.attn.Wo, attended.reshape(hidden.shape[0], -1))
        gate_input, gate = layer.mlp.Wi(layer.mlp_norm(hidden)).chunk(2, dim=-1)
        return add_product(hidden, layer.mlp.Wo, layer.mlp.act(gate_input) * gate)
