"""Window arithmetic: the one place that says which input elements an output element reads.

The kernels' wrappers, the tests' float64 reference and (later) the ONNX exporter all ask this
module, so "which elements does output (i, j) average?" has exactly one answer in the code base.

Formulas are torch's (aten/src/ATen/native/AdaptivePooling.h), in integer arithmetic so that
huge sizes neither round nor overflow.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["window_start", "window_end", "adaptive_windows", "pool_output_size", "pool_windows", "max_pool_windows",
           "windows_containing"]

# Sizes (and size products) at or above this could overflow int64 window arithmetic: numpy
# intermediates here, the kernels' window tables and divisors there.
INT64_SAFE = 2**62
# adaptive_windows builds int64 tables of this many windows at most (32 GiB); more is refused.
MAX_WINDOWS = 2**32


def _ints(fn: str, **values) -> list:
    """The named arguments as Python ints; bools, floats, strings and the like are refused
    before any arithmetic (a str times an int would be a repeated string)."""
    out = []
    for name, v in values.items():
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{fn}(): {name} must be an int, got {type(v).__name__}")
        out.append(int(v))
    return out


def _window_args(fn: str, a, b, c) -> list:
    a, b, c = _ints(fn, a=a, b=b, c=c)
    if b < 1 or not 0 <= a < b or c < 0:
        raise ValueError(f"{fn}(): needs 0 <= a < b and c >= 0, got a={a}, b={b}, c={c}")
    return [a, b, c]


def window_start(a: int, b: int, c: int) -> int:
    """First input index of adaptive window ``a`` of ``b`` over ``c`` inputs: ``floor(a*c/b)``.

    torch equivalent: none in Python; aten's C++ ``start_index``
    (aten/src/ATen/native/AdaptivePooling.h), in Python ints so it never overflows.

    Parameters
    ----------
    a : int
        Window (output) index, ``0 <= a < b``.
    b : int
        Number of windows (the output size), > 0.
    c : int
        Input size.

    Returns
    -------
    int
        ``(a // b) * c + ((a % b) * c) // b``.
    """
    a, b, c = _window_args("window_start", a, b, c)
    return (a // b) * c + ((a % b) * c) // b


def window_end(a: int, b: int, c: int) -> int:
    """One past the last input index of adaptive window ``a``: ``ceil((a+1)*c/b)``.

    torch equivalent: none in Python; aten's C++ ``end_index``
    (aten/src/ATen/native/AdaptivePooling.h), in Python ints so it never overflows.

    Parameters
    ----------
    a : int
        Window (output) index, ``0 <= a < b``.
    b : int
        Number of windows (the output size), > 0.
    c : int
        Input size.

    Returns
    -------
    int
        ``1 + ((a + 1) * c - 1) // b``.
    """
    a, b, c = _window_args("window_end", a, b, c)
    return 1 + ((a + 1) * c - 1) // b


@lru_cache(maxsize=512, typed=True)   # typed: 2.0 must not hit 2's entry
def adaptive_windows(out_size: int, in_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of every adaptive window, as read-only int64 arrays.

    Windows may overlap by one element when ``in_size % out_size != 0`` and repeat when
    ``out_size > in_size``. Cached: a model calls the same few sizes over and over (the same
    arrays are returned for the same sizes).

    torch equivalent: none in Python; aten's ``start_index`` / ``end_index`` for every output
    index.

    Parameters
    ----------
    out_size : int
        Number of windows, >= 0.
    in_size : int
        Input size.

    Returns
    -------
    starts, ends : numpy.ndarray
        int64, length ``out_size`` each: :func:`window_start` and :func:`window_end` of every
        window (vectorised; exact Python-int arithmetic where ``out_size * in_size`` reaches
        2**62).
    """
    out_size, in_size = _ints("adaptive_windows", out_size=out_size, in_size=in_size)
    if out_size < 0 or in_size < 1 or in_size >= 2**63:   # the tables are int64
        raise ValueError(f"adaptive_windows(): needs out_size >= 0 and 1 <= in_size < 2**63, "
                         f"got {out_size}, {in_size}")
    if out_size > MAX_WINDOWS:
        raise MemoryError(f"adaptive_windows(): {out_size} windows need {16 * out_size:,} bytes of tables")
    if out_size == 0:
        starts = ends = np.zeros(0, dtype=np.int64)
    elif out_size * in_size < INT64_SAFE:
        a = np.arange(out_size, dtype=np.int64)
        starts = (a // out_size) * in_size + ((a % out_size) * in_size) // out_size
        ends = 1 + ((a + 1) * in_size - 1) // out_size
    else:
        # a*c overflows int64: split c = q*b + r, then a*c//b = a*q + a*r//b with a*r < b*b
        # <= 2**64 in uint64 (b <= MAX_WINDOWS), exact, vectorised
        q, r = divmod(in_size, out_size)
        a = np.arange(out_size, dtype=np.uint64)
        starts = (a * np.uint64(q) + (a * np.uint64(r)) // np.uint64(out_size)).astype(np.int64)
        a1 = a + np.uint64(1)
        ends = (a1 * np.uint64(q) + (a1 * np.uint64(r) + np.uint64(out_size - 1)) // np.uint64(out_size)).astype(np.int64)
    starts.flags.writeable = False
    ends.flags.writeable = False
    return starts, ends


def _output_length(in_size: int, kernel: int, stride: int, pad: int, dilation: int, ceil_mode: bool) -> int:
    """torch's pooling_output_shape arithmetic on Python ints (the callers check the arguments)."""
    numerator = in_size + 2 * pad - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = numerator // stride + 1   # floor division, as torch's div_rtn
    if ceil_mode and (out - 1) * stride >= in_size + pad:
        out -= 1
    return out


def pool_output_size(in_size: int, kernel: int, stride: int, pad: int, ceil_mode: bool, dilation: int = 1) -> int:
    """Output length of a strided pooling window (torch's pooling_output_shape).

    With ceil_mode the last window must start inside the input or the left padding.

    torch equivalent: none in Python; aten's C++ ``pooling_output_shape``
    (aten/src/ATen/native/Pool.h).

    Parameters
    ----------
    in_size : int
        Input length.
    kernel, stride, pad : int
        Window length, step (> 0) and padding on each side. Not validated here
        (the ops check them).
    ceil_mode : bool
        Round the division up instead of down.
    dilation : int
        Spacing of the window's elements (max pooling; 1 for the average pools).

    Returns
    -------
    int
        The output length; below 1 when the padded input is shorter than the kernel (the ops
        reject that).
    """
    in_size, kernel, stride, pad, dilation = _ints("pool_output_size", in_size=in_size, kernel=kernel,
                                                   stride=stride, pad=pad, dilation=dilation)
    if in_size < 0 or kernel < 1 or stride < 1 or pad < 0 or dilation < 1:
        raise ValueError(f"pool_output_size(): needs in_size >= 0, kernel >= 1, stride >= 1, pad >= 0, "
                         f"dilation >= 1, got {in_size}, {kernel}, {stride}, {pad}, {dilation}")
    return _output_length(in_size, kernel, stride, pad, dilation, bool(ceil_mode))


def max_pool_windows(out_size: int, in_size: int, kernel: int, stride: int, pad: int,
                     dilation: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The elements each window of a max pool reads on one axis, as (start, end, step).

    Window ``o`` reads ``o*stride - pad + j*dilation`` for ``j < kernel``; positions before 0
    (the padding) are skipped in steps of ``dilation`` and positions from ``in_size`` on are cut
    off, so it reads ``range(start, end, step)``: start is its first in-bounds element,
    ``end = min(o*stride - pad + (kernel-1)*dilation + 1, in_size)`` and ``step = dilation``.

    torch equivalent: none in Python; the window arithmetic of aten's max pooling CPU kernels
    (aten/src/ATen/native/cpu/MaxPoolKernel.cpp), one axis at a time.

    Parameters
    ----------
    out_size : int
        Number of windows (:func:`pool_output_size`).
    in_size : int
        Input length.
    kernel, stride, pad, dilation : int
        Window length (elements), step between windows, padding on each side, spacing of a
        window's elements.

    Returns
    -------
    start, end, step : numpy.ndarray
        int64, length ``out_size`` each; ``start <= in_size`` and ``end >= start`` (an empty
        range when the window holds no element).
    """
    out_size, in_size, kernel, stride, pad, dilation = _ints(
        "max_pool_windows", out_size=out_size, in_size=in_size, kernel=kernel, stride=stride, pad=pad,
        dilation=dilation)
    if out_size < 0 or in_size < 0 or kernel < 1 or stride < 1 or pad < 0 or dilation < 1 or out_size > MAX_WINDOWS:
        raise ValueError(f"max_pool_windows(): needs 0 <= out_size <= 2**32, in_size >= 0, kernel, stride and "
                         f"dilation >= 1, pad >= 0, got {out_size}, {in_size}, {kernel}, {stride}, {pad}, {dilation}")
    first = np.arange(out_size, dtype=np.int64) * stride - pad
    end = np.minimum(first + (kernel - 1) * dilation + 1, in_size)
    start = np.where(first < 0, first + (-first + dilation - 1) // dilation * dilation, first)
    start = np.minimum(start, in_size)
    return start, np.maximum(end, start), np.full_like(start, dilation)


def pool_windows(out_size: int, in_size: int, kernel: int, stride: int, pad: int,
                 count_include_pad: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clamped windows of a strided pooling op and each window's divisor factor on this axis.

    Window ``o`` starts at ``o*stride - pad`` and ends at ``min(start + kernel, in_size + pad)``;
    it is then clamped to the input. The factor is the length before clamping (declared padding
    counts, the ceil_mode overhang past ``in_size + pad`` does not) when ``count_include_pad``,
    else the clamped length. An empty window has clamped length 0 (its output is 0).

    torch equivalent: none in Python; the window and divisor arithmetic of aten's avg_pool2d
    CPU kernel (aten/src/ATen/native/cpu/AvgPoolKernel.cpp), one axis at a time.

    Parameters
    ----------
    out_size : int
        Number of windows (:func:`pool_output_size`).
    in_size : int
        Input length.
    kernel, stride, pad : int
        Window length, step and padding on each side.
    count_include_pad : bool
        Which factor to return (see above).

    Returns
    -------
    start, end, factor : numpy.ndarray
        int64, length ``out_size`` each: the clamped window ``[start, end)`` (``end >= start``)
        and its divisor factor on this axis (the op's divisor is the product over the axes).
    """
    out_size, in_size, kernel, stride, pad = _ints("pool_windows", out_size=out_size, in_size=in_size,
                                                   kernel=kernel, stride=stride, pad=pad)
    if out_size < 0 or in_size < 0 or kernel < 1 or stride < 1 or pad < 0 or out_size > MAX_WINDOWS:
        raise ValueError(f"pool_windows(): needs 0 <= out_size <= 2**32, in_size >= 0, kernel >= 1, stride >= 1, "
                         f"pad >= 0, got {out_size}, {in_size}, {kernel}, {stride}, {pad}")
    o = np.arange(out_size, dtype=np.int64)
    start = o * stride - pad
    end = np.minimum(start + kernel, in_size + pad)
    padded = end - start
    start = np.maximum(start, 0)
    end = np.minimum(end, in_size)
    clamped = np.maximum(end - start, 0)
    return start, np.maximum(end, start), (padded if count_include_pad else clamped)


def windows_containing(starts: np.ndarray, ends: np.ndarray, in_size: int) -> tuple[np.ndarray, np.ndarray]:
    """For every input index ``i``, the range ``[lo[i], hi[i])`` of windows that contain it.

    Needs non-decreasing starts and ends, which adaptive and strided windows both have; empty
    windows fall outside every range. Backward passes use it to gather each input element's
    gradient from exactly the outputs that read it.

    torch equivalent: none (an adapool helper for the backward kernels).

    Parameters
    ----------
    starts, ends : numpy.ndarray
        Window starts and ends (exclusive), non-decreasing, as :func:`adaptive_windows` or
        :func:`pool_windows` give them.
    in_size : int
        Input length.

    Returns
    -------
    lo, hi : numpy.ndarray
        int64, length ``in_size`` each, ``hi >= lo``.
    """
    i = np.arange(in_size, dtype=np.int64)
    lo = np.searchsorted(ends, i, side="right").astype(np.int64)
    hi = np.searchsorted(starts, i, side="right").astype(np.int64)
    return lo, np.maximum(hi, lo)
