"""Vectors in fewer bits: the int8 and binary formats of Embed's answers.

int8 scales each vector by itself (127 over its largest absolute value), so the answer
depends on nothing but that vector (not on the batch it met, as a per-dimension range
would) and the angle between two vectors, what cosine similarity compares, is kept up to
rounding. The unsigned and binary formats are sentence-transformers' and Cohere's.
"""

from __future__ import annotations

import base64
import enum

import numpy as np
import numpy.typing as npt

from embedserve.server.windows import FloatArray

ByteArray = npt.NDArray[np.int8] | npt.NDArray[np.uint8]


class Precision(enum.Enum):
    FLOAT32 = "float32"
    INT8 = "int8"  # one signed byte per dimension
    UINT8 = "uint8"  # INT8's values plus 128
    BINARY = "binary"  # the sign bits, eight to a byte, each byte minus 128 (signed)
    UBINARY = "ubinary"  # the same bits unsigned, for Hamming distance

    @property
    def packed(self) -> bool:
        return self in (Precision.BINARY, Precision.UBINARY)


def quantize(vectors: FloatArray, precision: Precision) -> ByteArray:
    """``vectors`` (rows) in ``precision``; not for FLOAT32, which needs nothing done."""
    if precision is Precision.FLOAT32:
        raise ValueError("float32 vectors are not quantized")
    if precision.packed:
        # A bit is 1 where the value is above 0; the first dimension is the highest bit.
        bits = np.packbits(vectors > 0, axis=-1)
        if precision is Precision.UBINARY:
            return bits
        return (bits.astype(np.int16) - 128).astype(np.int8)
    largest = np.abs(vectors).max(axis=-1, keepdims=True)
    scale = 127.0 / np.where(largest > 0, largest, 1.0)
    signed = np.clip(np.rint(vectors * scale), -127, 127).astype(np.int8)
    if precision is Precision.INT8:
        return signed
    return (signed.astype(np.int16) + 128).astype(np.uint8)


def float32_base64(vectors: FloatArray) -> list[str]:
    """Each row's little-endian float32 bytes in base64 (OpenAI's and Cohere's base64)."""
    little = vectors.astype("<f4", copy=False)
    return [base64.b64encode(row.tobytes()).decode("ascii") for row in little]
