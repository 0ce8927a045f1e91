"""bfloat16 arrays (``ml_dtypes.bfloat16``) for every op.

torch's CPU pooling kernels compute bfloat16 in float32 (sums accumulate in float32, maxima
compare float32 values) and round each result once. A bfloat16 is the top half of a float32, so
widening is exact: adapool widens the bfloat16 arguments to float32, runs the float32 path (its
sums are float64-flushed, so at least as accurate), and rounds each float result once to
bfloat16, to nearest even; indices are unchanged. Widening and rounding are bit operations on
whole arrays (the same layout in and out), a few times faster than ml_dtypes' casts.
"""
from __future__ import annotations


import ml_dtypes
import numpy as np

from ._validation import check_out

BFLOAT16 = np.dtype(ml_dtypes.bfloat16)


def is_bfloat16(a) -> bool:
    return getattr(a, "dtype", None) is BFLOAT16


def to_float32(a: np.ndarray) -> np.ndarray:
    """Exact widening, in the same memory layout (channels-last stays channels-last)."""
    bits = a.view(np.uint16)
    wide = np.empty_like(bits, dtype=np.uint32)
    np.left_shift(bits, 16, out=wide, dtype=np.uint32)
    return wide.view(np.float32)


def to_bfloat16(a: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16, rounded to nearest even; NaN stays NaN (quieted, sign and payload's
    top bits kept), ±inf stays ±inf, values past bfloat16's largest round to ±inf."""
    a = np.asarray(a, dtype=np.float32)
    bits = a.view(np.uint32)
    lsb = np.right_shift(bits, 16) & np.uint32(1)
    rounded = np.right_shift(bits + np.uint32(0x7FFF) + lsb, 16)   # NaN bits may wrap: fixed below
    out = rounded.astype(np.uint16, order="K")
    nan = np.isnan(a)
    if nan.any():
        out[nan] = (np.right_shift(bits[nan], 16) | np.uint32(0x0040)).astype(np.uint16)
    return out.view(BFLOAT16)


def _narrow(result):
    if isinstance(result, tuple):
        return tuple(_narrow(r) for r in result)
    if isinstance(result, np.ndarray) and result.dtype == np.float32:
        return to_bfloat16(result)
    return result


def in_float32(call, a: np.ndarray, out=None, name: str = ""):
    """``call(a widened to float32)`` with its float results rounded to bfloat16; a bfloat16
    ``out=`` gets the result under the same checks as a float32 call's out=. The ops call this
    from their slow path (after their planned fast path), so other dtypes pay nothing for it."""
    result = _narrow(call(to_float32(a)))
    if out is None:
        return result
    values = result[0] if isinstance(result, tuple) else result
    check_out(out, values.shape, BFLOAT16, a, name)
    out[...] = values
    return (out,) + result[1:] if isinstance(result, tuple) else out
