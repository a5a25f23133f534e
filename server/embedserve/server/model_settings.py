"""The model section of the settings: which encoder to load and how to run it.

Torch-free, so the settings layer (and the command line built from it) does not import
torch; ``EncoderModel.load`` takes this section whole.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    model: str = "modernbert-embed-large"  # alias, hub id or local folder
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16
    backend: str = "torch"  # torch | torch-int8 (CPU: int8 linear layers, bench/backends.py)
    max_tokens: int = 0  # 0: the model's own maximum
    # ModernBERT forward pass: packed tokens with windowed local attention (fast), or
    # transformers' own (reference); auto picks fast unless flash-attention 2 runs it.
    modernbert_path: str = "auto"  # auto | fast | reference
    chunk_overlap_tokens: int = 128  # overlap between the windows of a CHUNK input
    torch_threads: int = 0  # CPU threads used by torch; 0 lets torch decide
