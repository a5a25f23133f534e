"""The range of each numeric setting (and the values of a choice), checked once when the
settings are made.

Out of range, a setting failed far from its flag or not at all: ``--max-queue-items 0``
refused the warm-up pass as "the queue is full", ``--max-batch-size 0`` quietly ran
batches of one, ``--sort-window 0`` made a server that did not stop on SIGTERM, and
``--port 70000`` listened on port 4464 (gRPC keeps the low 16 bits). A choice failed
late too: ``--device foo`` only once the ports were bound, naming neither flag nor variable.
"""

from __future__ import annotations

import math
import re
from typing import Any

from embedserve.connectors.types import MAX_SHARD_NUMBER
from embedserve.server.http.settings import OPENAI_TOKEN_IDS
from embedserve.server.logs import FORMATS, LEVELS
from embedserve.server.model_settings import (
    BACKENDS,
    DEVICE_PATTERN,
    DEVICES,
    DTYPES,
    FORWARD_PATHS,
)

PORT = (0, 65535)
# field: (lowest, highest or None). Where 0 means "off" or "the default", 0 is allowed.
BOUNDS: dict[str, tuple[float, float | None]] = {
    "max_tokens": (0, None),  # 0: the model's own maximum
    "reranker_max_tokens": (0, None),  # 0: the reranker's own maximum
    "chunk_overlap_tokens": (0, None),
    "torch_threads": (0, None),  # 0: torch decides
    "port": PORT,  # 0: any free port
    "http_port": PORT,  # 0: no HTTP
    "metrics_port": PORT,  # 0: no metrics endpoint
    "qdrant_grpc_port": PORT,  # 0: Qdrant's default
    "max_batch_tokens": (0, None),  # 0: picked for the device
    "max_batch_size": (1, None),
    "max_wait_ms": (0, None),
    "max_queue_items": (1, None),
    "sort_window": (1, None),
    "max_padding_share": (0, 1),
    "parallel_passes": (0, None),  # 0: picked for the model
    "max_inputs_per_request": (1, None),
    "max_input_chars": (1, None),
    "max_message_bytes": (1, None),
    "max_streams_per_connection": (1, None),
    "stream_inflight": (1, None),
    "query_cache_size": (0, None),  # 0: off
    "query_cache_max_tokens": (1, None),
    "qdrant_timeout_s": (0.001, None),
    "store_retry_attempts": (1, None),
    "store_retry_max_s": (0, None),
    "ingest_inflight": (1, None),
    "max_write_points": (1, None),
    "default_shard_number": (1, MAX_SHARD_NUMBER),  # every create would refuse more
    "default_replication_factor": (1, None),
    "default_write_consistency_factor": (1, None),
    "grace_period_s": (0, None),
    "rate_limit_rps": (0, None),  # 0: off
    "rate_limit_burst": (0, None),  # 0: from the rate
}


# field: the values it takes, where it is a choice (the others are checked where used).
CHOICES: dict[str, tuple[str, ...]] = {
    "openai_token_ids": OPENAI_TOKEN_IDS,
    "dtype": DTYPES,
    "backend": BACKENDS,
    "bert_path": FORWARD_PATHS,
    "modernbert_path": FORWARD_PATHS,
    "log_format": FORMATS,
}
# field: (the values it takes as a pattern, the values as the message names them).
PATTERNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "device": (DEVICE_PATTERN, DEVICES),  # else only the model's load refused it
    "log_level": ("(?i)" + "|".join(LEVELS), LEVELS),  # in any case
}


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')} (EMBEDSERVE_{name.upper()})"


def check_bounds(values: dict[str, Any]) -> None:
    """Raise ValueError naming the first setting out of its range, as its flag."""
    for name, choices in CHOICES.items():
        if values[name] not in choices:
            raise ValueError(
                f"{_flag(name)} must be one of {', '.join(choices)}; got {values[name]!r}"
            )
    for name, (pattern, named) in PATTERNS.items():
        if not re.fullmatch(pattern, values[name]):
            raise ValueError(
                f"{_flag(name)} must be one of {', '.join(named)}; got {values[name]!r}"
            )
    for name, (lowest, highest) in BOUNDS.items():
        value = values[name]
        flag = _flag(name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{flag} must be a finite number; got {value}")
        if value < lowest or (highest is not None and value > highest):
            span = f"at least {lowest}" if highest is None else f"from {lowest} to {highest}"
            raise ValueError(f"{flag} must be {span}; got {value}")
