"""Python layer of the pooling ops: validate, pick the layout, allocate, choose threads, call
the kernel. No loops over data here."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from ._dispatch import kernels as _kernels
from ._threads import threads_for
from ._validation import adaptive_output_size, as_float_array, check_rank
from ._windows import adaptive_windows

__all__ = ["adaptive_avg_pool2d"]

# The fused kernel's specialisations, looked up once: Cython's run-time dispatch on a fused
# `def` costs microseconds, more than a whole small pooling call.
_AVG = {
    np.dtype(np.float16): _kernels.adaptive_avg_pool["half_bits"],
    np.dtype(np.float32): _kernels.adaptive_avg_pool["float"],
    np.dtype(np.float64): _kernels.adaptive_avg_pool["double"],
}

@lru_cache(maxsize=512)
def _window_table(out3: tuple, in3: tuple) -> np.ndarray:
    """Packed [d0, d1, h0, h1, w0, w1] tables, the layout the kernels read."""
    parts = []
    for o, i in zip(out3, in3):
        parts.extend(adaptive_windows(o, i))
    table = np.concatenate(parts)
    table.flags.writeable = False
    return table


def _is_channels_last(x: np.ndarray) -> bool:
    """Choose the kernel layout for a 5-d view: True -> C has unit stride (channels-last
    kernel); False -> W has unit stride (planar kernel). The caller copies when neither holds."""
    n, c, d, h, w = x.shape
    if x.flags.c_contiguous:
        return False
    item = x.itemsize
    if x.transpose(0, 2, 3, 4, 1).flags.c_contiguous:
        return True
    if w == 1 or x.strides[4] == item:
        return False
    return c == 1 or x.strides[1] == item


def _unit_stride_ok(x: np.ndarray, channels_last: bool) -> bool:
    axis = 1 if channels_last else 4
    return x.shape[axis] == 1 or x.strides[axis] == x.itemsize


def _channel_block(c: int, rows: int, nthreads: int) -> int:
    """Channels per work item in the channels-last kernel: all of them (whole input rows are
    then read in order), unless that leaves too few items to share among the threads (global
    pooling of one image, say). Blocks stay >= 16 channels: a 64-byte line of float32."""
    block = c
    while block >= 32 and rows * -(-c // block) < 4 * nthreads:
        block = (block + 1) // 2
    return block


def _adaptive_avg(input, output_size, nd: int, name: str) -> np.ndarray:
    x = as_float_array(input, name)
    batched = check_rank(x, nd, name)
    osize = adaptive_output_size(output_size, x.shape[-nd:], name)
    xb = x if batched else x[None]
    n, c = xb.shape[:2]
    # The kernels are written for (N, C, D, H, W): lower ranks get leading spatial axes of 1.
    pad = (None,) * (3 - nd)
    x5 = xb[(slice(None), slice(None)) + pad]
    channels_last = _is_channels_last(x5)
    if not _unit_stride_ok(x5, channels_last):
        x5 = np.ascontiguousarray(x5)
        channels_last = False
    # Output layout follows the input, as torch's does (channels-last in, channels-last out);
    # torch returns unbatched results contiguous.
    if channels_last and batched:
        y = np.empty((n,) + osize + (c,), dtype=x.dtype).transpose((0, nd + 1) + tuple(range(1, nd + 1)))
    else:
        y = np.empty((n, c) + osize, dtype=x.dtype)
    if y.size:
        y5 = y[(slice(None), slice(None)) + pad]
        out3 = y5.shape[2:]
        table = _window_table(out3, x5.shape[2:])
        # Work items: output rows, per channel (planar) or per block of channels (channels-last).
        rows = n * out3[0] * out3[1]
        nthreads = threads_for(x5.size, rows * c)
        block = _channel_block(c, rows, nthreads) if channels_last else c
        if x.dtype.itemsize == 2:
            x5, y5 = x5.view(np.uint16), y5.view(np.uint16)
        _AVG[x.dtype](x5, y5, table, channels_last, block, nthreads)
    return y if batched else y[0]


def adaptive_avg_pool2d(input, output_size) -> np.ndarray:
    """Adaptive 2-d average pooling, ``torch.nn.functional.adaptive_avg_pool2d`` for NumPy.

    Parameters
    ----------
    input : array_like
        (C, H, W) or (N, C, H, W), float16, float32 or float64, any memory layout.
    output_size : int or (int or None, int or None)
        Target (OH, OW); an int means (k, k); None keeps that input size.

    Returns
    -------
    numpy.ndarray
        (C, OH, OW) or (N, C, OH, OW), same dtype. Channels-last input gives channels-last
        output. Window ``i`` along an axis of size ``c`` pooled to ``b`` covers
        ``[floor(i*c/b), ceil((i+1)*c/b))``.
    """
    return _adaptive_avg(input, output_size, 2, "adaptive_avg_pool2d")
