"""A ModernBERT forward pass that skips the work its attention masks throw away.

transformers' sdpa path runs a padded batch and gives every local-attention
layer (two of every three, a window of ``local_attention`` tokens) full
attention under a band mask: at 8,192 tokens almost all of that work is
masked out, and padding tokens go through every layer. This pass runs the
model's own embeddings, rotary embedding and weights on the batch's real tokens
only, packed end to end:

- token-wise parts (projections, MLP, norms; ``modernbert_layer.py``) see no
  padding at all;
- a local layer cuts the packed tokens into blocks; each block attends to
  itself and ``reach`` tokens on either side under a band mask that also
  keeps sequences apart (``banded_attention``);
- a global layer attends over each whole sequence (``full_attention``);
- on a GPU in bfloat16 or float16, both run in torch's variable-length flash
  attention instead (``varlen.py``), the band given as the kernel's window.

It computes what the model computes, up to float rounding (the tests compare
it with transformers' own forward pass).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F

from embedserve.server.modernbert_layer import EagerSteps
from embedserve.server.modernbert_steps import CompiledSteps
from embedserve.server.row_buckets import bucket_rows, bucketed
from embedserve.server.varlen import varlen_attention

# Queries per block of a local layer. Each block reads block + 2 * reach keys, so
# smaller blocks waste fewer keys but make more, smaller matrix products; 64 keeps
# the waste at 1.5x for ModernBERT's 128-token window (reach 64).
DEFAULT_BLOCK = 64


@dataclasses.dataclass(frozen=True)
class PackedOutput:
    """What ``EncoderModel.compute`` reads from a forward pass."""

    last_hidden_state: torch.Tensor

    @classmethod
    def unpacked(cls, hidden: torch.Tensor, keep: torch.Tensor) -> PackedOutput:
        """Packed ``hidden`` [T, d] laid out as the padded batch ``keep`` [B, L] marks
        (zeros at padding)."""
        out = hidden.new_zeros(*keep.shape, hidden.shape[-1])
        out[keep] = hidden
        return cls(out)


@dataclasses.dataclass(frozen=True)
class Packing:
    """Where each sequence lies in the packed token stream."""

    lengths: tuple[int, ...]
    starts: tuple[int, ...]
    positions: torch.Tensor  # [T] position of each token inside its own sequence
    segment: torch.Tensor  # [T] index of each token's sequence
    cu_seqlens: torch.Tensor  # [N + 1] int32: each sequence's start, then T (flash's layout)

    @classmethod
    def of(cls, lengths: list[int], device: torch.device) -> Packing:
        starts = [0]
        for length in lengths:
            starts.append(starts[-1] + length)
        counts = torch.tensor(lengths, device=device)
        segment = torch.repeat_interleave(torch.arange(len(lengths), device=device), counts)
        begin = torch.repeat_interleave(torch.tensor(starts[:-1], device=device), counts)
        positions = torch.arange(starts[-1], device=device) - begin
        cu_seqlens = torch.tensor(starts, dtype=torch.int32, device=device)
        return cls(tuple(lengths), tuple(starts[:-1]), positions, segment, cu_seqlens)


def banded_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    segment: torch.Tensor,
    reach: int,
    block: int = DEFAULT_BLOCK,
) -> torch.Tensor:
    """Attention of each token to the tokens of its own sequence at most ``reach`` away.

    ``query``, ``key``, ``value``: [T, heads, head_dim], packed; ``segment``: [T].
    Block k of queries (positions k*block .. k*block+block-1) reads keys
    k*block-reach .. k*block+block+reach-1: everything its band can reach.
    """
    total, heads, head_dim = query.shape
    blocks = -(-total // block)
    tail = blocks * block - total
    span = block + 2 * reach

    def windows(x: torch.Tensor) -> torch.Tensor:
        # [T, heads, d] -> [blocks, heads, span, d]: overlapping key windows, as a view
        padded = F.pad(x, (0, 0, 0, 0, reach, reach + tail))
        return padded.unfold(0, span, block).permute(0, 1, 3, 2)

    # Padding before the first and after the last token belongs to no sequence: -1.
    # Padded queries then see padded keys only, so no row of the softmax is empty.
    key_segment = F.pad(segment, (reach, reach + tail), value=-1).unfold(0, span, block)
    query_segment = F.pad(segment, (0, tail), value=-1).view(blocks, block)
    offsets = (
        torch.arange(span, device=query.device)[None, :]
        - torch.arange(block, device=query.device)[:, None]
    )
    band = (offsets >= 0) & (offsets <= 2 * reach)  # |key position - query position| <= reach
    mask = band[None] & (query_segment[:, :, None] == key_segment[:, None, :])
    blocked_query = F.pad(query, (0, 0, 0, 0, 0, tail)).view(blocks, block, heads, head_dim)
    out = F.scaled_dot_product_attention(
        blocked_query.transpose(1, 2),
        windows(key),
        windows(value),
        attn_mask=mask[:, None],
    )
    return out.transpose(1, 2).reshape(blocks * block, heads, head_dim)[:total]


def full_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    packing: Packing,
    per_sequence: bool | None = None,
) -> torch.Tensor:
    """Attention of each token to its whole sequence. [T, heads, d] in and out.

    ``per_sequence`` (default: on a CPU) runs each sequence on its own, with no
    padding and no mask; otherwise one padded call with a key mask, since on a
    GPU many small kernels cost more than some padding.
    """
    if per_sequence is None:
        per_sequence = query.device.type == "cpu"
    if len(packing.lengths) == 1 or per_sequence:
        parts = []
        for start, length in zip(packing.starts, packing.lengths, strict=True):
            span = slice(start, start + length)
            out = F.scaled_dot_product_attention(
                query[span].transpose(0, 1), key[span].transpose(0, 1), value[span].transpose(0, 1)
            )
            parts.append(out.transpose(0, 1))
        return parts[0] if len(parts) == 1 else torch.cat(parts)
    longest = max(packing.lengths)
    count = len(packing.lengths)
    rows = packing.segment
    cols = packing.positions

    def padded(x: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(count, longest, *x.shape[1:])
        out[rows, cols] = x
        return out.transpose(1, 2)  # [B, heads, longest, d]

    lengths = torch.tensor(packing.lengths, device=query.device)
    keep = torch.arange(longest, device=query.device)[None, :] < lengths[:, None]
    out = F.scaled_dot_product_attention(
        padded(query), padded(key), padded(value), attn_mask=keep[:, None, None, :]
    )
    return out.transpose(1, 2)[rows, cols]


class PackedModernBert:
    """Runs a transformers ``ModernBertModel`` on packed tokens; called like the model.

    Takes the right-padded ``input_ids`` and ``attention_mask`` that
    ``EncoderModel.compute`` builds and returns ``last_hidden_state`` in the same
    padded layout (zeros at padding).
    """

    def __init__(self, model: Any, block: int = DEFAULT_BLOCK) -> None:
        self.model = model
        self.block = block
        self.config = config = model.config
        # transformers' sliding-window mask: |i - j| <= local_attention // 2
        self.reach = int(config.local_attention) // 2
        self.layer_types = list(config.layer_types)
        self.steps: EagerSteps | CompiledSteps = EagerSteps(model)
        weight = next(model.parameters())
        self.bucketed = bucketed(weight.device, weight.dtype)

    def compile_steps(self) -> None:
        """Run each layer's token-wise parts through torch.compile (``modernbert_steps``)."""
        self.steps = CompiledSteps(self.model)

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> PackedOutput:
        keep = attention_mask.bool()
        lengths = [int(n) for n in keep.sum(dim=1).tolist()]
        return PackedOutput.unpacked(self.forward_packed(input_ids[keep], lengths), keep)

    def forward_packed(self, ids: torch.Tensor, lengths: list[int]) -> torch.Tensor:
        """Hidden states [T, hidden] of sequences packed end to end in ``ids`` [T].

        The token-wise parts may run on filler rows after the real tokens (token 0 at
        position 0), so that their products meet known shapes (row_buckets.py);
        attention never sees them.
        """
        model = self.model
        packing = Packing.of(lengths, ids.device)
        total = ids.shape[0]
        filler = bucket_rows(total) - total if self.bucketed else 0
        positions = F.pad(packing.positions, (0, filler))
        hidden = model.embeddings(input_ids=F.pad(ids, (0, filler))[None])[0]
        # cos and sin [T, head_dim] as the rotary module gives them (rounded to the
        # model's dtype, as transformers uses them), in float32 once for all layers.
        rotary = {
            kind: tuple(part[0].float() for part in model.rotary_emb(hidden, positions[None], kind))
            for kind in set(self.layer_types)
        }
        # A window that covers every sequence whole is plain full attention.
        windowed = max(lengths) - 1 > self.reach
        for index, kind in enumerate(self.layer_types):
            cos, sin = rotary[kind]
            local = windowed and kind == "sliding_attention"
            query, key, value = (
                part[:total] for part in self.steps.project(index, hidden, cos, sin)
            )
            attended = self._attend(query, key, value, packing, local)
            hidden = self.steps.finish(index, hidden, F.pad(attended, (0, 0, 0, 0, 0, filler)))
        return model.final_norm(hidden)[:total]  # type: ignore[no-any-return]

    def _attend(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        packing: Packing,
        local: bool,
    ) -> torch.Tensor:
        """Each token's attention within its sequence (its band in a local layer)."""
        reach = self.reach if local else None
        out = varlen_attention(query, key, value, packing.cu_seqlens, max(packing.lengths), reach)
        if out is not None:
            return out
        if local:  # no flash kernel for this device or dtype
            return banded_attention(query, key, value, packing.segment, self.reach, self.block)
        return full_attention(query, key, value, packing)
