"""The range of each numeric setting (and the values of a choice), checked once when the
settings are made.

Out of range, a setting failed far from its flag or not at all: ``--max-queue-items 0``
refused the warm-up pass as "the queue is full", ``--max-batch-size 0`` quietly ran
batches of one, ``--sort-window 0`` made a server that did not stop on SIGTERM, and
``--port 70000`` listened on port 4464 (gRPC keeps the low 16 bits). A choice failed
late too: ``--device foo`` only once the ports were bound, naming neither flag nor variable.
Some bounds are above: ``--max-wait-ms 1e300`` never reached SERVING (and held off
SIGTERM), ``--qdrant-timeout-s 1e300`` failed every store call, and ``--torch-threads
2147483648`` ended the warm-up with an OverflowError. Some settings are bounded by each
other (``ORDERED``): ``--sort-window 4`` quietly capped batches of ``--max-batch-size
256`` at 4, and a default write consistency above the default replication factor
refused every create that relied on the defaults.
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
# The highest of max_wait_ms: waiting longer for company than this only delays work.
MAX_WAIT_MS = 10_000
# The highest of qdrant_timeout_s (a day): far larger values overflow the client's deadline.
MAX_QDRANT_TIMEOUT_S = 86_400
# The highest of torch_threads: more threads than any CPU has (torch takes a C int).
MAX_TORCH_THREADS = 1024
# field: (lowest, highest or None). Where 0 means "off" or "the default", 0 is allowed.
BOUNDS: dict[str, tuple[float, float | None]] = {
    "max_tokens": (0, None),  # 0: the model's own maximum
    "reranker_max_tokens": (0, None),  # 0: the reranker's own maximum
    "chunk_overlap_tokens": (0, None),
    "torch_threads": (0, MAX_TORCH_THREADS),  # 0: torch decides
    "port": PORT,  # 0: any free port
    "http_port": PORT,  # 0: no HTTP
    "http_body_idle_s": (0, None),  # 0: bodies are not timed
    "metrics_port": PORT,  # 0: no metrics endpoint
    "qdrant_grpc_port": PORT,  # 0: Qdrant's default
    "max_batch_tokens": (0, None),  # 0: picked for the device
    "max_batch_size": (1, None),
    "max_wait_ms": (0, MAX_WAIT_MS),
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
    "qdrant_timeout_s": (0.001, MAX_QDRANT_TIMEOUT_S),
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


# (setting, "at least" or "at most", other setting, why): settings bounded by each other.
ORDERED: tuple[tuple[str, str, str, str], ...] = (
    (
        "sort_window",
        "at least",
        "max_batch_size",
        "a batch is cut from at most sort_window queued inputs",
    ),
    (
        "default_write_consistency_factor",
        "at most",
        "default_replication_factor",
        "a create that takes both defaults would be refused",
    ),
)
# (setting, the setting it applies with, why): set alone, it was silently unused.
NEEDS: tuple[tuple[str, str, str], ...] = (
    (
        "qdrant_api_key",
        "qdrant_url",
        "without a Qdrant server the embedded store is used, which takes no key",
    ),
    (
        "qdrant_grpc_port",
        "qdrant_url",
        "without a Qdrant server the embedded store is used, which has no port",
    ),
)
# Text settings that may not be empty (or blank): "" meant something nobody asked for.
NOT_EMPTY: dict[str, str] = {
    "data_dir": "a folder (an empty one would be the current directory)",
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
    for name, relation, other, why in ORDERED:
        value, bound = values[name], values[other]
        if value < bound if relation == "at least" else value > bound:
            raise ValueError(
                f"{_flag(name)} must be {relation} {_flag(other)}, {bound}: {why}; got {value}"
            )
    for name, needed, why in NEEDS:
        if values[name] and not values[needed]:
            raise ValueError(f"{_flag(name)} is set, {_flag(needed)} is not: {why}")
    for name, what in NOT_EMPTY.items():
        if not values[name].strip():
            raise ValueError(f"{_flag(name)} must name {what}; got {values[name]!r}")
