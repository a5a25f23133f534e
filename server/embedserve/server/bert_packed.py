"""A BERT (or RoBERTa, XLM-RoBERTa) forward pass whose token-wise work skips the padding.

transformers runs a padded batch: every projection, feed-forward and layer norm
also computes the padding rows, which a batch of texts of similar but unequal
length (short queries from many clients: 17 to 20% padding) pays in full. Here
the model's own modules run on the real tokens only, packed end to end ([T,
hidden]); attention, the one step that needs the batch's shape, scatters its
queries, keys and values into the padded layout and gathers the result back.
That pass took 1.10x to 1.26x less time on batches of 15 to 25 tokens, 1.43x to
1.56x on mixed lengths and 0.98x on batches without padding (MiniLM, float32, one
thread; docs/benchmarks.md, "Packed BERT pass (CPU)").

It computes what the model computes, up to float rounding (the tests compare it
with transformers' own forward pass).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from embedserve.server.attention import align_keys, pads_keys
from embedserve.server.modernbert_packed import PackedOutput
from embedserve.server.row_buckets import bucket_rows, bucketed

# RoBERTa and XLM-RoBERTa (multilingual-e5, bge-m3) are BERT's layers with positions
# counted from the padding id + 1 instead of 0 (first_position).
PACKED_TYPES = ("bert", "roberta", "xlm-roberta")


def first_position(model: Any) -> int:
    """The position id of a text's first token: 0, or for embeddings that count from
    the padding id (RoBERTa, XLM-RoBERTa, CamemBERT, MPNet) that id + 1."""
    embeddings = getattr(model, "embeddings", None)
    if isinstance(embeddings, torch.nn.Embedding):  # XLM's word table: positions from 0
        return 0
    padding_idx = getattr(embeddings, "padding_idx", None)
    return 0 if padding_idx is None else int(padding_idx) + 1


def packs(config: Any) -> bool:
    """Whether a model with ``config`` is a plain BERT-style encoder this pass
    reproduces: absolute positions, no decoder or cross-attention parts."""
    return (
        config.model_type in PACKED_TYPES
        and not getattr(config, "is_decoder", False)
        and not getattr(config, "add_cross_attention", False)
        and getattr(config, "position_embedding_type", "absolute") == "absolute"
    )


class PackedBertLayers(torch.nn.Module):
    """Embeddings and encoder layers of a transformers ``BertModel`` (or RoBERTa) on packed tokens.

    Its inputs are tensors only, so torch.compile can take it whole: ``rows`` and
    ``cols`` [T] give each real token's place in the padded batch; ``ids`` and
    ``positions`` [R >= T] each row's token id and position, the real tokens first and
    then filler rows that only make the token-wise products' shape a known one
    (row_buckets.py); ``keep`` [B, L] is the padded batch's attention mask.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        self.heads = int(model.config.num_attention_heads)

    def forward(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        keep: torch.Tensor,
    ) -> torch.Tensor:
        model = self.model
        hidden = model.embeddings(
            input_ids=ids[None],
            token_type_ids=torch.zeros_like(ids)[None],
            position_ids=positions[None],
        )[0]
        for layer in model.encoder.layer:
            attended = self._attention(layer.attention.self, hidden, rows, cols, keep)
            hidden = layer.attention.output(attended, hidden)
            hidden = layer.output(layer.intermediate(hidden), hidden)
        return hidden  # type: ignore[no-any-return]

    def _attention(
        self,
        attention: Any,
        hidden: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        keep: torch.Tensor,
    ) -> torch.Tensor:
        total = rows.shape[0]
        filler = hidden.shape[0] - total
        count, longest = keep.shape
        head_dim = attention.attention_head_size

        def padded(x: torch.Tensor) -> torch.Tensor:
            out = x.new_zeros(count, longest, self.heads, head_dim)
            out[rows, cols] = x[:total].view(total, self.heads, head_dim)
            return out.transpose(1, 2)  # [B, heads, L, d]

        query = padded(attention.query(hidden))
        key = padded(attention.key(hidden))
        value = padded(attention.value(hidden))
        mask: torch.Tensor | None = keep[:, None, None, :]
        if pads_keys(query):  # bfloat16 on a CPU: see attention.py
            key, value, mask = align_keys(key, value, mask)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
        return F.pad(out.transpose(1, 2)[rows, cols].reshape(total, -1), (0, 0, 0, filler))


class PackedBert:
    """Runs a transformers ``BertModel`` (or RoBERTa) on packed tokens; called like the model.

    Takes the right-padded ``input_ids`` and ``attention_mask`` that
    ``EncoderModel.compute`` builds and returns ``last_hidden_state`` in the same
    padded layout (zeros at padding). ``run`` is the packed pass: ``layers`` itself,
    or ``layers`` compiled (compiled.py).
    """

    def __init__(self, model: Any) -> None:
        self.config = model.config
        self.layers = PackedBertLayers(model)
        self.run: Any = self.layers
        weight = next(model.parameters())
        self.bucketed = bucketed(weight.device, weight.dtype)
        self.first_position = first_position(model)

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> PackedOutput:
        keep = attention_mask.bool()
        rows, cols = keep.nonzero(as_tuple=True)
        total = rows.shape[0]
        filler = bucket_rows(total) - total if self.bucketed else 0
        # Filler rows: token 0 at the first position, dropped before attention and after.
        ids = F.pad(input_ids[keep], (0, filler))
        positions = F.pad(cols + self.first_position, (0, filler))
        hidden = self.run(ids, positions, rows, cols, keep)
        return PackedOutput.unpacked(hidden[:total], keep)
