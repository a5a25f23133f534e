"""How a search reads a quantized collection, for both engines."""

from __future__ import annotations

import dataclasses

from .errors import InvalidRequest
from .types import CollectionSpec, Quantization, SearchParams

# A search of a BINARY collection reads this many times its limit by the bits, then
# scores those again with the float vectors: one bit per dimension alone orders the
# nearest neighbours too roughly (MiniLM's vectors: recall@10 0.830 at 1, 0.974 at 3;
# bench/quantized_search.py).
BINARY_OVERSAMPLING = 3.0


@dataclasses.dataclass(frozen=True)
class QuantizedSearch:
    ignore: bool  # the float vectors alone: an exact search
    oversampling: float | None  # None: the engine's own (1)


def quantized_search(spec: CollectionSpec, params: SearchParams) -> QuantizedSearch | None:
    """None for a collection without quantization (where oversampling is refused)."""
    if spec.quantization is Quantization.NONE:
        if params.oversampling is not None:
            raise InvalidRequest(
                f"oversampling applies to quantized collections; {spec.name!r} has no quantization"
            )
        return None
    default = BINARY_OVERSAMPLING if spec.quantization is Quantization.BINARY else None
    oversampling = params.oversampling if params.oversampling is not None else default
    return QuantizedSearch(ignore=params.exact, oversampling=oversampling)
