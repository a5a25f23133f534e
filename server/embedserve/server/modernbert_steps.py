"""The token-wise parts of a packed ModernBERT layer as functions of tensors, for torch.compile.

On a GPU most of a ModernBERT pass outside its matrix products is small
elementwise kernels, each a trip through memory: the rotary embedding alone
(computed in float32, as transformers does) reads and writes the queries and
keys about ten times, and GeGLU, the norms and the residual adds add more. The
matrix products ran near the device's peak while these took most of the pass
(docs/benchmarks.md, "GPU: ModernBERT paths"). torch.compile fuses them. Compiled
as modules, each of a model's layers would compile on its own (dynamo guards on
the module); as functions of the weights, one graph serves every layer.

``project`` (norm, fused qkv projection, rotary embedding) and ``finish``
(output projection, residual, norm, GeGLU MLP, residual) compute what the
layer's modules compute; attention runs between them, outside the graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
ProjectFn = Callable[..., tuple[Tensor, Tensor, Tensor]]
FinishFn = Callable[..., Tensor]


def make_steps(config: Any, act: Callable[[Tensor], Tensor]) -> tuple[ProjectFn, FinishFn]:
    """(project, finish) for a model of this config; ``act``: its MLP activation."""
    from transformers.models.modernbert.modeling_modernbert import apply_rotary_pos_emb

    heads = int(config.num_attention_heads)
    eps = float(config.norm_eps)

    def norm(x: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
        if weight is None:  # the first layer's attention norm is an identity
            return x
        return F.layer_norm(x, (x.shape[-1],), weight, bias, eps)

    def project(
        hidden: Tensor,
        norm_weight: Tensor | None,
        norm_bias: Tensor | None,
        qkv_weight: Tensor,
        qkv_bias: Tensor | None,
        cos: Tensor,
        sin: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        normed = norm(hidden, norm_weight, norm_bias)
        qkv = F.linear(normed, qkv_weight, qkv_bias).view(hidden.shape[0], 3, heads, -1)
        query, key, value = qkv.unbind(dim=1)
        query, key = apply_rotary_pos_emb(query, key, cos, sin, unsqueeze_dim=1)
        return query, key, value

    def finish(
        hidden: Tensor,
        attended: Tensor,
        out_weight: Tensor,
        out_bias: Tensor | None,
        norm_weight: Tensor,
        norm_bias: Tensor | None,
        in_weight: Tensor,
        in_bias: Tensor | None,
        mlp_out_weight: Tensor,
        mlp_out_bias: Tensor | None,
    ) -> Tensor:
        hidden = hidden + F.linear(attended.reshape(hidden.shape[0], -1), out_weight, out_bias)
        gate_input, gate = F.linear(norm(hidden, norm_weight, norm_bias), in_weight, in_bias).chunk(
            2, dim=-1
        )
        return hidden + F.linear(act(gate_input) * gate, mlp_out_weight, mlp_out_bias)

    return project, finish


def plain_all(*weights: Tensor | None) -> tuple[Tensor | None, ...]:
    """Parameters as plain tensors (same storage): dynamo guards on a parameter's
    identity when inductor freezes weights (``compiled.py`` turns that on), which
    would compile the steps once per layer again."""
    return tuple(None if weight is None else weight.detach() for weight in weights)


class CompiledSteps:
    """``project`` and ``finish`` compiled once, called with a layer's weights."""

    def __init__(self, model: Any) -> None:
        project, finish = make_steps(model.config, model.layers[0].mlp.act)
        self._project = torch.compile(project)
        self._finish = torch.compile(finish)
        # Each layer's weights in the order the steps take them, gathered once.
        self._project_weights = [
            plain_all(
                getattr(layer.attn_norm, "weight", None),  # the first layer has no norm
                getattr(layer.attn_norm, "bias", None),
                layer.attn.Wqkv.weight,
                layer.attn.Wqkv.bias,
            )
            for layer in model.layers
        ]
        self._finish_weights = [
            plain_all(
                layer.attn.Wo.weight,
                layer.attn.Wo.bias,
                layer.mlp_norm.weight,
                layer.mlp_norm.bias,
                layer.mlp.Wi.weight,
                layer.mlp.Wi.bias,
                layer.mlp.Wo.weight,
                layer.mlp.Wo.bias,
            )
            for layer in model.layers
        ]

    def project(
        self, index: int, hidden: Tensor, cos: Tensor, sin: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Layer ``index``'s queries, keys and values [T, heads, d] of ``hidden``."""
        for tensor in (hidden, cos, sin):
            torch._dynamo.maybe_mark_dynamic(tensor, 0)  # the packed token count varies
        norm_weight, norm_bias, qkv_weight, qkv_bias = self._project_weights[index]
        return self._project(hidden, norm_weight, norm_bias, qkv_weight, qkv_bias, cos, sin)

    def finish(self, index: int, hidden: Tensor, attended: Tensor) -> Tensor:
        """Layer ``index``'s output, given its attention's output ``attended``."""
        for tensor in (hidden, attended):
            torch._dynamo.maybe_mark_dynamic(tensor, 0)
        out: Tensor = self._finish(hidden, attended, *self._finish_weights[index])
        return out
