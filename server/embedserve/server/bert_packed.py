"""A BERT-style forward pass whose token-wise work skips the padding.

transformers runs a padded batch: every projection, feed-forward and layer norm
also computes the padding rows, which a batch of texts of similar but unequal
length (short queries from many clients: 17 to 20% padding) pays in full. Here
the model's own modules run on the real tokens only, packed end to end ([T,
hidden]); attention, the one step that needs the batch's shape, scatters its
queries, keys and values into the padded layout and gathers the result back.
That pass took 1.10x to 1.26x less time on batches of 15 to 25 tokens, 1.43x to
1.56x on mixed lengths and 0.98x on batches without padding (MiniLM, float32, one
thread; docs/benchmarks.md, "Packed BERT pass (CPU)").

The families share that shape and differ in module names: BERT, RoBERTa and
XLM-RoBERTa (MiniLM, bge, e5, bge-m3), DistilBERT (msmarco-distilbert-base-tas-b,
multi-qa-distilbert, distiluse) and MPNet (all-mpnet-base-v2), whose attention adds
a relative position bias. Each computes what the model computes, up to float
rounding (the tests compare it with transformers' own forward pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from embedserve.server.attention import align_keys, pads_keys
from embedserve.server.modernbert_packed import PackedOutput
from embedserve.server.row_buckets import bucket_rows, bucketed

# RoBERTa and XLM-RoBERTa (multilingual-e5, bge-m3) are BERT's layers with positions
# counted from the padding id + 1 instead of 0 (first_position); so are MPNet's.
BERT_TYPES = ("bert", "roberta", "xlm-roberta")
PACKED_TYPES = (*BERT_TYPES, "distilbert", "mpnet")


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
    Subclasses name another family's modules.
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        self.heads = int(model.config.num_attention_heads)

    def embed(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.model.embeddings(  # type: ignore[no-any-return]
            input_ids=ids[None],
            token_type_ids=torch.zeros_like(ids)[None],
            position_ids=positions[None],
        )[0]

    def blocks(self) -> Sequence[Any]:
        return self.model.encoder.layer  # type: ignore[no-any-return]

    def projections(self, block: Any) -> tuple[Any, Any, Any]:
        """The block's query, key and value projections."""
        attention = block.attention.self
        return attention.query, attention.key, attention.value

    def finish(self, block: Any, attended: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """The rest of the block after attention: output projection, feed-forward, norms."""
        hidden = block.attention.output(attended, hidden)
        return block.output(block.intermediate(hidden), hidden)  # type: ignore[no-any-return]

    def position_bias(self, keep: torch.Tensor) -> torch.Tensor | None:
        """An additive [1, heads, L, L] bias on the attention scores, where the family has one."""
        return None

    def forward(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        keep: torch.Tensor,
    ) -> torch.Tensor:
        hidden = self.embed(ids, positions)
        bias = self.position_bias(keep)
        mask = keep[:, None, None, :]
        if bias is not None:
            mask = bias.masked_fill(~mask, torch.finfo(bias.dtype).min)
        for block in self.blocks():
            attended = self._attention(block, hidden, rows, cols, mask)
            hidden = self.finish(block, attended, hidden)
        return hidden

    def _attention(
        self,
        block: Any,
        hidden: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """``mask``: boolean or additive, broadcast over [B, heads, L, L]."""
        total = rows.shape[0]
        filler = hidden.shape[0] - total
        count, longest = mask.shape[0], mask.shape[-1]
        head_dim = hidden.shape[-1] // self.heads

        def padded(x: torch.Tensor) -> torch.Tensor:
            out = x.new_zeros(count, longest, self.heads, head_dim)
            out[rows, cols] = x[:total].view(total, self.heads, head_dim)
            return out.transpose(1, 2)  # [B, heads, L, d]

        query, key, value = (padded(project(hidden)) for project in self.projections(block))
        attn_mask: torch.Tensor | None = mask
        if pads_keys(query):  # bfloat16 on a CPU: see attention.py
            key, value, attn_mask = align_keys(key, value, attn_mask)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask)
        return F.pad(out.transpose(1, 2)[rows, cols].reshape(total, -1), (0, 0, 0, filler))


class PackedDistilBertLayers(PackedBertLayers):
    """DistilBERT: no token types; projections and norms under its own names."""

    def embed(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.model.embeddings(  # type: ignore[no-any-return]
            input_ids=ids[None], position_ids=positions[None]
        )[0]

    def blocks(self) -> Sequence[Any]:
        return self.model.transformer.layer  # type: ignore[no-any-return]

    def projections(self, block: Any) -> tuple[Any, Any, Any]:
        attention = block.attention
        return attention.q_lin, attention.k_lin, attention.v_lin

    def finish(self, block: Any, attended: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        hidden = block.sa_layer_norm(block.attention.out_lin(attended) + hidden)
        return block.output_layer_norm(block.ffn(hidden) + hidden)  # type: ignore[no-any-return]


class PackedMPNetLayers(PackedBertLayers):
    """MPNet: BERT's blocks under other names, with a relative position bias in attention
    (the same for every block and, being relative, for every text of the batch)."""

    def embed(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.model.embeddings(  # type: ignore[no-any-return]
            input_ids=ids[None], position_ids=positions[None]
        )[0]

    def projections(self, block: Any) -> tuple[Any, Any, Any]:
        attention = block.attention.attn
        return attention.q, attention.k, attention.v

    def finish(self, block: Any, attended: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        attention = block.attention
        hidden = attention.LayerNorm(attention.attn.o(attended) + hidden)
        return block.output(block.intermediate(hidden), hidden)  # type: ignore[no-any-return]

    def position_bias(self, keep: torch.Tensor) -> torch.Tensor | None:
        # compute_position_bias reads only the shape of its argument: one row of [1, L]
        # (keep[0][None] has a batch of exactly 1 where keep[:1] has min(1, B) to compile).
        return self.model.encoder.compute_position_bias(keep[0][None])  # type: ignore[no-any-return]


_LAYERS: dict[str, type[PackedBertLayers]] = {
    **dict.fromkeys(BERT_TYPES, PackedBertLayers),
    "distilbert": PackedDistilBertLayers,
    "mpnet": PackedMPNetLayers,
}


class PackedBert:
    """Runs a transformers BERT-style model (``PACKED_TYPES``) on packed tokens; called like
    the model.

    Takes the right-padded ``input_ids`` and ``attention_mask`` that
    ``EncoderModel.compute`` builds and returns ``last_hidden_state`` in the same
    padded layout (zeros at padding). ``run`` is the packed pass: ``layers`` itself,
    or ``layers`` compiled (compiled.py).
    """

    def __init__(self, model: Any) -> None:
        self.config = model.config
        self.layers = _LAYERS[model.config.model_type](model)
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
        positions = F.pad(self._positions(input_ids, keep, cols), (0, filler))
        hidden = self.run(ids, positions, rows, cols, keep)
        return PackedOutput.unpacked(hidden[:total], keep)

    def _positions(
        self, input_ids: torch.Tensor, keep: torch.Tensor, cols: torch.Tensor
    ) -> torch.Tensor:
        """Each kept token's position id. Embeddings that count from the padding id do as
        transformers' ``create_position_ids_from_input_ids``: a padding id inside a text
        (a literal "<pad>") takes the padding position, and the tokens after it count on
        from the one before it."""
        if not self.first_position:
            return cols
        pad = self.first_position - 1
        real = input_ids != pad
        return (torch.cumsum(real, dim=1) * real + pad)[keep]
