"""The model section of the settings: which encoder to load and how to run it.

Torch-free, so the settings layer (and the command line built from it) does not import
torch; ``EncoderModel.load`` takes this section whole.
"""

from __future__ import annotations

import dataclasses

# The settings that are choices, checked with the others before anything loads.
DTYPES = ("auto", "float32", "float16", "bfloat16")
BACKENDS = ("torch", "torch-int8", "onnx", "onnx-int8")
FORWARD_PATHS = ("auto", "fast", "reference")  # bert_path, modernbert_path
# The devices, checked before anything starts: a pattern, for cuda:N names any GPU (whether
# it exists is checked at load). model.pick_device gives torch any device but cuda as it
# is, so mps (Apple GPUs) is one too.
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
DEVICE_PATTERN = r"auto|cpu|cuda(:[0-9]+)?|mps"


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    model: str = "modernbert-embed-large"  # alias, hub id or local folder
    # A hub model's branch, tag or commit; "": its main branch, which can change under a
    # deployment (pin a commit in production). Refused for an alias or a local folder.
    model_revision: str = ""
    # Run the Python code a model folder brings (config.json's auto_map: nomic-embed,
    # jina-embeddings, gte v1.5); it runs in this process, so only for folders one trusts.
    trust_remote_code: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16
    # torch | torch-int8 (int8 linear layers) | onnx | onnx-int8 (ONNX Runtime); all but
    # torch run on a CPU in float32 only; bench/backends.py compares them
    backend: str = "torch"
    max_tokens: int = 0  # 0: the model's own maximum
    # ModernBERT forward pass: packed tokens with windowed local attention (fast), or
    # transformers' own (reference); auto picks fast unless flash-attention 2 runs it.
    modernbert_path: str = "auto"  # auto | fast | reference
    # BERT's forward pass: projections and feed-forward layers on the real tokens only,
    # packed (fast; auto is fast), or transformers' own (reference).
    bert_path: str = "auto"  # auto | fast | reference
    # Compile the forward pass with torch.compile at load (torch backend, transformers'
    # own forward): faster passes, a slower start (see compiled.py)
    torch_compile: bool = False
    chunk_overlap_tokens: int = 128  # overlap between the windows of a CHUNK input
    torch_threads: int = 0  # CPU threads used by torch (and ONNX Runtime); 0 lets torch decide
    # Keep the memory forward passes free for the next pass instead of handing it back to
    # the system (glibc; allocator.py): fewer page faults, resident memory at its peak.
    keep_freed_memory: bool = True
    # where the ONNX backends keep their exported models; "": $XDG_CACHE_HOME/embedserve,
    # else ~/.cache/embedserve
    cache_dir: str = ""


@dataclasses.dataclass(frozen=True)
class RerankerSettings:
    """The reranker section: a cross-encoder served beside the encoder (Rerank), on the
    encoder's device, number format and model thread."""

    reranker: str = ""  # hub id or local folder of a cross-encoder; "": no reranker
    reranker_revision: str = ""  # as model_revision, for the reranker
    reranker_max_tokens: int = 0  # tokens of one (query, document) pair; 0: the model's own
