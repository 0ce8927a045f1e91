"""Window arithmetic: the one place that says which input elements an output element reads.

The kernels' wrappers, the tests' float64 reference and (later) the ONNX exporter all ask this
module, so "which elements does output (i, j) average?" has exactly one answer in the code base.

Formulas are torch's (aten/src/ATen/native/AdaptivePooling.h), in integer arithmetic so that
huge sizes neither round nor overflow.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["window_start", "window_end", "adaptive_windows"]

# Above this product numpy's int64 intermediates could overflow; Python ints take over.
_INT64_SAFE = 2**62


def window_start(a: int, b: int, c: int) -> int:
    """First input index of adaptive window ``a`` of ``b`` over ``c`` inputs: ``floor(a*c/b)``."""
    return (a // b) * c + ((a % b) * c) // b


def window_end(a: int, b: int, c: int) -> int:
    """One past the last input index of adaptive window ``a``: ``ceil((a+1)*c/b)``."""
    return 1 + ((a + 1) * c - 1) // b


@lru_cache(maxsize=512)
def adaptive_windows(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of every adaptive window, as read-only int64 arrays.

    Windows may overlap by one element when ``in_size % out_size != 0`` and repeat when
    ``out_size > in_size``. Cached: a model calls the same few sizes over and over.
    """
    if out_size == 0:
        starts = ends = np.zeros(0, dtype=np.int64)
    elif out_size * in_size < _INT64_SAFE:
        a = np.arange(out_size, dtype=np.int64)
        starts = (a // out_size) * in_size + ((a % out_size) * in_size) // out_size
        ends = 1 + ((a + 1) * in_size - 1) // out_size
    else:
        starts = np.array([window_start(a, out_size, in_size) for a in range(out_size)], dtype=np.int64)
        ends = np.array([window_end(a, out_size, in_size) for a in range(out_size)], dtype=np.int64)
    starts.flags.writeable = False
    ends.flags.writeable = False
    return starts, ends
