"""How a TFLite tensor maps its integers to real values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Quantization:
    """Affine quantisation ``real = scale * (q - zero_point)``; ``scale == 0`` means a float tensor."""

    scale: float = 0.0
    zero_point: int = 0

    @property
    def is_float(self) -> bool:
        return self.scale == 0.0


FLOAT = Quantization()


def dequantize(values: np.ndarray, quant: Quantization) -> np.ndarray:
    """Real values of a (possibly quantised) array, as float32 of the same shape."""
    if quant.is_float:
        return values.astype(np.float32, copy=False)
    return (values.astype(np.float32) - np.float32(quant.zero_point)) * np.float32(quant.scale)


def dequantize_table(quant: Quantization, dtype: np.dtype | type = np.int8) -> np.ndarray:
    """Real value of every byte of a quantised 8-bit array, so dequantising is one lookup.

    ``dequantize_table(quant, values.dtype).take(values.view(np.uint8))`` equals
    ``dequantize(values, quant)`` bit for bit (the same float32 operations per value).

    Args:
        quant: The array's quantisation (not ``FLOAT``).
        dtype: ``int8`` or ``uint8``: how the bytes read as integers.

    Returns:
        ``(256,)`` float32, indexed by the byte.
    """
    codes = np.arange(256, dtype=np.uint8).view(np.dtype(dtype))
    return dequantize(codes, quant)
