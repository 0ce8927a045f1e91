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
def _window_table(out_sizes: tuple, in_sizes: tuple) -> np.ndarray:
    """Packed [d0, d1, h0, h1, w0, w1] tables, the layout the kernels read; ranks below 3 get
    leading axes of size 1 (one window covering the single element)."""
    pad = (1,) * (3 - len(out_sizes))
    parts = []
    for o, i in zip(pad + tuple(out_sizes), pad + tuple(in_sizes)):
        parts.extend(adaptive_windows(o, i))
    table = np.concatenate(parts)
    table.flags.writeable = False
    return table


def _kernel_layout(x: np.ndarray):
    """Choose the kernel for a 5-d view: (x, False) -> planar kernel (W has unit stride);
    (x, True) -> channels-last kernel (C has unit stride). A view with neither is copied to
    C order first. A length-1 axis counts as unit stride: its stride is never used."""
    if x.flags.c_contiguous:
        return x, False
    n, c, d, h, w = x.shape
    item = x.itemsize
    if x.transpose(0, 2, 3, 4, 1).flags.c_contiguous:
        return x, True
    if w == 1 or x.strides[4] == item:
        return x, False
    if c == 1 or x.strides[1] == item:
        return x, True
    return np.ascontiguousarray(x), False


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
    spatial = x.shape[-nd:]
    osize = adaptive_output_size(output_size, spatial, name)
    xb = x if batched else x[None]
    n, c = xb.shape[:2]
    # The kernels are written for (N, C, D, H, W): lower ranks get leading spatial axes of 1.
    pad = (slice(None), slice(None)) + (None,) * (3 - nd)
    x5, channels_last = _kernel_layout(xb[pad])
    # Output layout follows the input, as torch's does (channels-last in, channels-last out);
    # torch returns unbatched results contiguous.
    if channels_last and batched:
        y = np.empty((n,) + osize + (c,), dtype=x.dtype).transpose((0, nd + 1) + tuple(range(1, nd + 1)))
    else:
        y = np.empty((n, c) + osize, dtype=x.dtype)
    if y.size:
        # Work items: output rows, per channel (planar) or per block of channels (channels-last).
        rows = n * (osize[-2] if nd > 1 else 1) * (osize[-3] if nd > 2 else 1)
        nthreads = threads_for(x5.size, rows * c)
        block = _channel_block(c, rows, nthreads) if channels_last else c
        y5 = y[pad]
        if x.dtype.itemsize == 2:
            x5, y5 = x5.view(np.uint16), y5.view(np.uint16)
        _AVG[x.dtype](x5, y5, _window_table(osize, spatial), channels_last, block, nthreads)
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
