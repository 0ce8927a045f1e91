"""Python layer of the pooling ops: validate, pick the layout, allocate, choose threads, call
the kernel. No loops over data here; all error messages live here and in _validation."""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache, partial

import numpy as np
import numpy.typing as npt

from ._bfloat16 import in_float32, is_bfloat16
from ._dispatch import kernels as _kernels
from ._threads import PARALLEL_MIN_ELEMENTS, get_num_threads, threads_for
from ._validation import (
    adaptive_output_size,
    as_float_array,
    check_grad_output,
    check_indices,
    check_out,
    check_output_size_rank,
    check_rank,
    input_shape_arg,
    pool_args,
)
from ._windows import adaptive_windows, max_pool_windows, pool_windows, windows_containing

__all__ = [
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "avg_pool1d", "avg_pool2d", "avg_pool3d", "max_pool1d", "max_pool2d", "max_pool3d",
    "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d_backward", "adaptive_avg_pool3d_backward",
    "adaptive_max_pool1d_backward", "adaptive_max_pool2d_backward", "adaptive_max_pool3d_backward",
    "avg_pool2d_backward",
    "avg_pool1d_backward", "avg_pool3d_backward",
    "max_pool1d_backward", "max_pool2d_backward", "max_pool3d_backward",
]


# ---- window tables (the kernels' packed form of _windows' answers) ---------------------------

_UNIT_AXIS = (np.zeros(1, np.int64), np.ones(1, np.int64), np.ones(1, np.int64))


def _pack(axes) -> np.ndarray:
    """[d0 d1 dk | h0 h1 hk | w0 w1 wk] for (start, end, divisor factor) triples of the
    spatial axes; ranks below 3 get leading axes of one window covering one element."""
    axes = [_UNIT_AXIS] * (3 - len(axes)) + list(axes)
    table = np.concatenate([np.asarray(part, dtype=np.int64) for axis in axes for part in axis])
    table.flags.writeable = False
    return table


def _rows(axes, in_sizes) -> np.ndarray:
    """[dlo dhi | hlo hhi]: for each input index on D and H, the outputs that read it."""
    axes = [_UNIT_AXIS] * (3 - len(axes)) + list(axes)
    in_sizes = (1,) * (3 - len(in_sizes)) + tuple(in_sizes)
    parts = []
    for (starts, ends, _), size in zip(axes[:2], in_sizes[:2]):
        parts.extend(windows_containing(starts, ends, size))
    table = np.concatenate(parts)
    table.flags.writeable = False
    return table


@lru_cache(maxsize=512)
def _adaptive_axes(out_sizes: tuple, in_sizes: tuple) -> tuple:
    axes = []
    for o, i in zip(out_sizes, in_sizes):
        starts, ends = adaptive_windows(o, i)
        axes.append((starts, ends, ends - starts))
    return tuple(axes)


@lru_cache(maxsize=512)
def _adaptive_table(out_sizes: tuple, in_sizes: tuple) -> np.ndarray:
    return _pack(_adaptive_axes(out_sizes, in_sizes))


@lru_cache(maxsize=512)
def _adaptive_rows(out_sizes: tuple, in_sizes: tuple) -> np.ndarray:
    return _rows(_adaptive_axes(out_sizes, in_sizes), in_sizes)


@lru_cache(maxsize=512)
def _pool2d_table(*key) -> np.ndarray:
    return _pack(_pool2d_axes(*key))


@lru_cache(maxsize=512)
def _pool2d_rows(*key) -> np.ndarray:
    return _rows(_pool2d_axes(*key), key[0])


@lru_cache(maxsize=512)
def _pool2d_axes(in_sizes: tuple, out_sizes: tuple, kernel: tuple, stride: tuple, padding: tuple,
                 count_include_pad: bool, divisor_override) -> tuple:
    """The average pools' windows and divisor factors, any rank (the name is avg_pool2d's)."""
    axes = [pool_windows(o, i, k, s, p, count_include_pad)
            for o, i, k, s, p in zip(out_sizes, in_sizes, kernel, stride, padding)]
    if divisor_override is not None:
        # The divisor is one number: carry it on the last axis, 1 on the others (the product is
        # what counts).
        axes = [(a0, a1, np.ones_like(a0)) for a0, a1, _ in axes[:-1]] + \
               [(axes[-1][0], axes[-1][1], np.full_like(axes[-1][0], divisor_override))]
    return tuple(axes)


@lru_cache(maxsize=512)
def _max_pool_axes(in_sizes: tuple, out_sizes: tuple, kernel: tuple, stride: tuple, padding: tuple,
                   dilation: tuple) -> tuple:
    """max_pool_windows for each axis."""
    return tuple(max_pool_windows(o, i, k, s, p, d)
                 for o, i, k, s, p, d in zip(out_sizes, in_sizes, kernel, stride, padding, dilation))


@lru_cache(maxsize=512)
def _empty_windows(*key) -> np.ndarray | None:
    """A boolean mask over the output's spatial shape of the windows that hold no element (only
    dilation with padding makes them), or None when there are none."""
    axes = _max_pool_axes(*key)
    if all((a1 > a0).all() for a0, a1, _ in axes):
        return None
    mask = np.zeros(key[1], dtype=bool)
    for axis, (a0, a1, _) in enumerate(axes):
        shape = [1] * len(axes)
        shape[axis] = -1
        mask |= (a1 <= a0).reshape(shape)
    mask.flags.writeable = False
    return mask


@lru_cache(maxsize=512)
def _max_pool_table(*key) -> np.ndarray:
    """The dilated kernel's table (steps in the third column), or without dilation the plain
    max kernels' (window lengths there, as adaptive tables have: a whole-plane window then
    takes the global path)."""
    axes = _max_pool_axes(*key)
    if any(d != 1 for d in key[5]):
        return _pack(axes)
    return _pack([(a0, a1, a1 - a0) for a0, a1, _ in axes])


# ---- layouts ---------------------------------------------------------------------------------

def _nc(shape: tuple, nd: int) -> tuple:
    """(N, C) of a (N, C, *spatial) or (C, *spatial) shape: N = 1 unbatched."""
    return shape[:2] if len(shape) == nd + 2 else (1, shape[0])


def _channels_to_end(ndim: int, nd: int) -> tuple:
    """The axis order that moves C of an (N, C, *spatial) or (C, *spatial) array to the end."""
    c = ndim - nd - 1
    return tuple(range(c)) + tuple(range(c + 1, ndim)) + (c,)


def _kernel_layout(x: np.ndarray, nd: int):
    """Choose the kernel for an (N, C, *spatial) or (C, *spatial) array: (x, False) -> planar
    kernel (W has unit stride); (x, True) -> channels-last kernel (C has unit stride). An array
    with neither is copied to C order first. A length-1 axis counts as unit stride: its stride
    is never used."""
    if x.flags.c_contiguous:
        return x, False
    if x.transpose(_channels_to_end(x.ndim, nd)).flags.c_contiguous:
        return x, True
    c = x.ndim - nd - 1
    if x.shape[-1] == 1 or x.strides[-1] == x.itemsize:
        return x, False
    if x.shape[c] == 1 or x.strides[c] == x.itemsize:
        return x, True
    return np.ascontiguousarray(x), False


def _empty(shape: tuple, dtype, channels_last: bool) -> np.ndarray:
    """A new (N, C, *spatial) array, stored channels-last (C fastest) or C-contiguous."""
    if not channels_last:
        return np.empty(shape, dtype=dtype)
    nd = len(shape) - 2
    stored = np.empty((shape[0],) + shape[2:] + (shape[1],), dtype=dtype)
    return stored.transpose((0, nd + 1) + tuple(range(1, nd + 1)))


def _typed(v):
    """A cache key that tells 2 from 2.0 and True (they hash alike): only exact ints, bools,
    None and tuples of ints are cached; anything else is validated afresh."""
    if v is None or type(v) in (int, bool):
        return (type(v).__name__, v)
    if type(v) is tuple and all(type(e) is int for e in v):
        return ("tuple", v)
    return None


def _forward_result(out, shape: tuple, dtype, channels_last: bool, x, name: str):
    """The array a forward op writes, of the result's ``shape`` ((N, C, *spatial), or
    (C, *spatial) unbatched): the caller's ``out`` (validated; the average kernels write through
    any strides, so any layout) or a new array in the layout torch would give."""
    if out is None:
        return _empty(shape, dtype, channels_last)
    return check_out(out, shape, dtype, x, name)


def _result_channels_last(channels_last: bool, batched: bool, nd: int) -> bool:
    # torch: 1d and 2d results follow the input's layout; 3d results and unbatched results
    # are contiguous.
    return channels_last and batched and nd <= 2


def _channel_block(c: int, rows: int, nthreads: int) -> int:
    """Channels per work item in the channels-last kernels: all of them (whole input rows are
    then read in order), unless that leaves too few items to share among the threads (global
    pooling of one image, say). Blocks stay >= 16 channels: a 64-byte line of float32."""
    block = c
    while block >= 32 and rows * -(-c // block) < 4 * nthreads:
        block = (block + 1) // 2
    return block


def _plan(n: int, c: int, rows: int, elements: int, channels_last: bool):
    """(threads, channel block) for a call with ``rows`` output rows per (n, c)."""
    nthreads = threads_for(elements, n * rows * c)
    return nthreads, (_channel_block(c, n * rows, nthreads) if channels_last else c)


def _rows_of(sizes: tuple) -> int:
    """Kernel rows per (n, c) for spatial sizes (..., H, W): the product of all but W."""
    return 1 if len(sizes) == 1 else (sizes[0] if len(sizes) == 2 else sizes[0] * sizes[1])


# ---- forward ---------------------------------------------------------------------------------

# Tiny calls: validating and planning a call costs more than pooling an 8x8 plane. A call
# whose input is an aligned ndarray used without a copy is planned once per (op, output_size or
# avg_pool2d's arguments, shape, strides, dtype) and the plan reused: the same checks would pass
# again for the same key, and the kernel then reads a view of the call's own array with the
# plan's window table. An ``out=`` is checked on every call (check_out) and never part of the
# plan. output_size takes part only as an exact int or tuple of ints (True, numpy ints, lists
# and None entries are validated every time). Failed calls are never cached.
_PLANS: dict = {}
_PLANS_MAX = 1024


def _remember(key, plan) -> None:
    if len(_PLANS) >= _PLANS_MAX:
        _PLANS.clear()
    _PLANS[key] = plan


_INT = {int}


def _exact_ints(v) -> bool:
    """An argument that can take part in a plan's key: None, an exact int or a tuple of exact
    ints (bools, floats and numpy ints hash like ints; they, and lists, are validated every
    time)."""
    return v is None or type(v) is int or (type(v) is tuple and set(map(type, v)) <= _INT)


def _exact_pool_args(kernel_size, stride, padding, dilation, ceil_mode, count_include_pad=True,
                     divisor_override=None) -> bool:
    """A strided pool's arguments, all of a kind that can take part in a plan's key."""
    return (type(ceil_mode) is bool and type(count_include_pad) is bool and _exact_ints(kernel_size)
            and _exact_ints(stride) and _exact_ints(padding) and _exact_ints(dilation)
            and _exact_ints(divisor_override))


def _size_key(output_size):
    return output_size if output_size is not None and _exact_ints(output_size) else None


class _ForwardPlan:
    """What validating and planning one adaptive or avg_pool2d forward call found (see _PLANS;
    avg_pool2d's window table takes the place of the adaptive one). ``shape`` is the result's
    shape as torch gives it ((N, C, *out) or, unbatched, (C, *out))."""
    __slots__ = ("nd", "is_max", "channels_last", "out_cl", "shape", "nc", "rows", "table",
                 "serial_block", "dilated", "as_rows", "path1d", "table1d", "direct")

    def __init__(self, nd, is_max, channels_last, out_cl, n, c, shape, table, elements, dilated=False,
                 strided=False):
        self.nd, self.is_max, self.channels_last, self.dilated = nd, is_max, channels_last, dilated
        self.out_cl, self.shape, self.nc, self.table = out_cl, shape, (n, c), table
        # max_pool1d without indices and avg_pool1d channels-last have their own kernels
        # (issue 15: torch's 1-d kernels beat the general ones there); the kernel declines
        # calls outside what it takes (float16 max, short runs, another result layout) and the
        # general kernel runs them. Max with indices keeps the general kernel (_run_plan checks).
        self.path1d = None
        if strided and nd == 1 and not dilated and table is not None:
            if is_max:
                self.path1d = "max_cl" if channels_last else "max"
            elif channels_last:
                self.path1d = "avg"
        self.table1d = table
        self.rows = _rows_of(shape[-nd:])
        # 1-d channels-last input with long outputs runs as (..., L, 1): L on the kernels' row
        # axis. The channels-last kernels keep every output column of a row in scratch, which
        # for a long L is megabytes; as rows, each output is its own item (measured 3x faster
        # at L = 12544, the same at L = 49).
        self.as_rows = nd == 1 and channels_last and shape[-1] > 32
        if self.as_rows:
            self.rows = shape[-1]
            if table is not None:   # [D | H | W] axes of (start, end, factor): move W's to H
                self.table = np.concatenate([table[:3], table[6:], table[3:6]])
        # (1 thread, block) for inputs too small to share (threads_for always runs them on the
        # calling thread, so their split is fixed); else None: split per call by _plan, for the
        # thread count of the moment (the recorded call redoes it when that count changes)
        self.serial_block = ((1, _channel_block(c, n * self.rows, 1) if channels_last else c)
                             if elements < PARALLEL_MIN_ELEMENTS else None)
        # The kernel call _run_plan made for this plan, once it is one that repeats as it is
        # (a _kernels.Recorded: the kernel and its arguments but the arrays); see _record_direct.
        self.direct = None


def _record_direct(plan: _ForwardPlan, x: np.ndarray, kernel: str, head, table: np.ndarray,
                   channels_last: bool = False, block: int = 0, nthreads: int = 1) -> None:
    """Remember ``kernel(head, x, y, [indices or None,] table, ...)`` as the plan's whole call
    where no (..., 1) views stand between the call and the kernel. For the same key, _run_plan
    would make the same call again: its choices read only the plan, the key's shape, strides
    and dtype, the result's layout (which the recorded call allocates as _empty does) and,
    for inputs large enough to share, adapool's thread count (the recorded call asks
    get_num_threads on each call and redoes the split, _plan, when it has changed); so a call
    skips them (about 0.3 us of an 8x8 call's 2; 1.2 us of a channels-last (8,256,14,14) call)."""
    if plan.as_rows:
        return
    shared = {}
    if plan.serial_block is None:   # split per thread count, as _run_plan does
        shared = dict(threads=get_num_threads,
                      split=partial(_plan, *plan.nc, plan.rows, x.size, plan.channels_last))
    plan.direct = _kernels.Recorded(kernel, head, table, channels_last, block, nthreads, x.shape, plan.shape,
                                    out_cl=plan.out_cl, **shared)


def _planned(key, input: np.ndarray, return_indices: bool = False):
    """The result of a call through its plan when ``key`` has one and ``input`` is aligned;
    else None (the call is then validated and planned)."""
    plan = _PLANS.get(key)
    if plan is None:
        return None
    direct = plan.direct
    if direct is not None:
        # None for unaligned input
        y = (direct.pool_indexed(input) if direct.indexed else None) if return_indices else direct.pool(input)
        if y is not None:
            return y
    if not input.flags.aligned:
        return None
    return _run_planned(plan, input, return_indices)


def _run_planned(plan: _ForwardPlan, input: np.ndarray, return_indices: bool):
    """A planned call on the key's own aligned ``input`` that its recorded call, if any, did not
    serve (pool and pool_indexed take every aligned input of a max or average kernel): none
    recorded, indices asked of pool1d_fast, or pool1d_fast declining (never, for a key it once
    took). _run_plan makes the call."""
    y = _empty(plan.shape, input.dtype, plan.out_cl)
    direct = plan.direct
    if direct is None or return_indices or not direct.run(input, y):
        return _run_plan(plan, input, y, return_indices)
    return y


def _run_planned_out(plan: _ForwardPlan, input: np.ndarray, out: np.ndarray, return_indices: bool, name: str):
    """A planned call on the key's own ``input`` into a caller's ``out=``, after its checks (a
    planned key skips only the input's validation and the planning, ~7 us of an (8,256,14,14)
    call)."""
    y = check_out(out, plan.shape, input.dtype, input, name)
    # The recorded call makes _run_plan's own choices, which read the plan and the input, not
    # the result's layout: only pool1d_fast looks at it, and declines (run: False) where it
    # can't take it.
    if not return_indices and plan.direct is not None and plan.direct.run(input, y):
        return out
    result = _run_plan(plan, input, y, return_indices, record=False)
    return (out, result[1]) if return_indices else out


def _run_plan(plan: _ForwardPlan, x: np.ndarray, y: np.ndarray, return_indices: bool,
              record: bool = True):
    """Run a planned forward call on ``x`` (the input, or its copy in a layout the kernels take,
    in torch's shape) into ``y`` (the result). ``record``: whether the kernel call may become
    the plan's direct call; not for a caller's ``out=``, whose layout can make the 1-d kernels
    decline a call that they take into the result's own layout."""
    if plan.path1d is not None and y.size and not return_indices:
        nthreads, _ = plan.serial_block or _plan(*plan.nc, plan.rows, x.size, plan.channels_last)
        if _kernels.pool1d_fast(plan.path1d, x, y, plan.table1d, nthreads):
            if record:
                _record_direct(plan, x, "pool1d_fast", plan.path1d, plan.table1d, nthreads=nthreads)
            return y
    nd, xk, yk = plan.nd, x, y
    if plan.as_rows:
        nd, xk, yk = 2, x[..., None], y[..., None]
    if plan.is_max:
        # Without return_indices the kernels write values only (int64 indices are most of a
        # small window's memory traffic, and allocating them faults in fresh pages).
        indices = _empty(plan.shape, np.int64, plan.out_cl) if return_indices else None
        if y.size:
            ik = indices[..., None] if plan.as_rows and indices is not None else indices
            nthreads, block = plan.serial_block or _plan(*plan.nc, plan.rows, x.size, plan.channels_last)
            if plan.dilated:
                _kernels.max_pool_forward_dilated(nd, xk, yk, ik, plan.table, plan.channels_last, nthreads)
                if record:
                    _record_direct(plan, x, "max_pool_forward_dilated", nd, plan.table, plan.channels_last,
                                   nthreads=nthreads)
            else:
                _kernels.max_pool_forward(nd, xk, yk, ik, plan.table, plan.channels_last, block, nthreads)
                if record:
                    _record_direct(plan, x, "max_pool_forward", nd, plan.table, plan.channels_last, block, nthreads)
        return (y, indices) if return_indices else y
    if y.size:
        nthreads, block = plan.serial_block or _plan(*plan.nc, plan.rows, x.size, plan.channels_last)
        _kernels.avg_pool_forward(nd, xk, yk, plan.table, plan.channels_last, block, nthreads)
        if record:
            _record_direct(plan, x, "avg_pool_forward", nd, plan.table, plan.channels_last, block, nthreads)
    return y


def _is_dask(a) -> bool:
    return type(a).__module__.startswith("dask.") and hasattr(a, "chunks")


def _on_dask(name: str, out, *args):
    """A dask array given to a NumPy function: the lazy op of adapool.dask (``out=`` can't be)."""
    if out is not None:
        raise TypeError(f"{name}(): out= is not supported for dask arrays (the result is lazy)")
    from . import dask as _dask
    return getattr(_dask, name)(*args)


def _adaptive_forward(input, output_size, nd: int, name: str, is_max: bool,
                      return_indices: bool = False, out=None):
    key = None
    if (out is None or type(out) is np.ndarray) and type(input) is np.ndarray:
        size_key = _size_key(output_size)
        if size_key is not None:
            key = (nd, is_max, size_key, input.shape, input.strides, input.dtype)
            if out is None:
                result = _planned(key, input, return_indices)
                if result is not None:
                    return result
            elif input.flags.aligned:
                plan = _PLANS.get(key)   # (one lookup: another thread may clear the cache)
                if plan is not None:
                    return _run_planned_out(plan, input, out, return_indices, name)
    if _is_dask(input):
        return _on_dask(name, out, input, output_size, *((return_indices,) if is_max else ()))
    if is_bfloat16(input):
        return in_float32(lambda x: _adaptive_forward(x, output_size, nd, name, is_max, return_indices),
                          input, out, name)
    x = as_float_array(input, name)
    check_output_size_rank(output_size, x.ndim, nd)
    batched = check_rank(x, nd, name, is_max or nd == 3)
    spatial = x.shape[-nd:]
    osize = adaptive_output_size(output_size, spatial, name, is_max, x.shape)
    xk, channels_last = _kernel_layout(x, nd)
    out_cl = _result_channels_last(channels_last, batched, nd)
    shape = x.shape[:-nd] + osize
    y = _forward_result(out, shape, x.dtype, out_cl, x, name)
    plan = _ForwardPlan(nd, is_max, channels_last, out_cl, *_nc(x.shape, nd), shape,
                        _adaptive_table(osize, spatial) if y.size else None, x.size)
    if key is not None and xk is input:   # no copy was needed: the plan holds for the key
        _remember(key, plan)                 # (with out= or not: the plan does not depend on it)
    result = _run_plan(plan, xk, y, return_indices, record=out is None)
    if out is not None:
        return (out, result[1]) if return_indices else out
    return result


def adaptive_avg_pool1d(input: npt.ArrayLike, output_size: int | Sequence[int], *,
                        out: np.ndarray | None = None) -> np.ndarray:
    """Adaptive 1-d average pooling of a NumPy array.

    torch equivalent: ``torch.nn.functional.adaptive_avg_pool1d``.

    Parameters
    ----------
    input : array_like
        (C, L) or (N, C, L), float16, float32 or float64, any memory layout. L must be
        non-empty; N = 0 or C = 0 gives an empty result.
    output_size : int or (int,)
        Target length OL; 0 gives an empty result. ``None`` is rejected, as in torch.
    out : numpy.ndarray, optional
        Write the result here instead (adapool's addition, torch's function has none): the
        result's shape and dtype, writeable, aligned, any layout, not overlapping ``input``.

    Returns
    -------
    numpy.ndarray
        (C, OL) or (N, C, OL), same dtype (``out`` when given). Window ``i`` covers
        ``[floor(i*L/OL), ceil((i+1)*L/OL))``. Batched channels-last input (an NLC buffer viewed
        as NCL) gives channels-last output, other input C order.

    Raises
    ------
    TypeError
        A dtype other than float16/32/64; ``output_size`` not an int or a sequence of one int;
        ``out`` not an ndarray or of another dtype.
    ValueError
        Input not 2-d or 3-d, or L = 0; ``output_size`` negative or of length other than 1;
        ``out`` of another shape, read-only, unaligned or overlapping the input.
    """
    return _adaptive_forward(input, output_size, 1, "adaptive_avg_pool1d", False, out=out)


def adaptive_avg_pool2d(input: npt.ArrayLike, output_size: int | Sequence[int | None], *,
                        out: np.ndarray | None = None) -> np.ndarray:
    """Adaptive 2-d average pooling of a NumPy array.

    torch equivalent: ``torch.nn.functional.adaptive_avg_pool2d``.

    Parameters
    ----------
    input : array_like
        (C, H, W) or (N, C, H, W), float16, float32 or float64, any memory layout. H and W must
        be non-empty; N = 0 or C = 0 gives an empty result.
    output_size : int or (int or None, int or None)
        Target (OH, OW); an int k means (k, k); None keeps that input size; 0 gives an empty
        result.
    out : numpy.ndarray, optional
        Write the result here instead (adapool's addition, torch's function has none): the
        result's shape and dtype, writeable, aligned, any layout, not overlapping ``input``.

    Returns
    -------
    numpy.ndarray
        (C, OH, OW) or (N, C, OH, OW), same dtype (``out`` when given). Batched channels-last
        input gives channels-last output, other input C order. Window ``i`` along an axis of
        size ``c`` pooled to ``b`` covers ``[floor(i*c/b), ceil((i+1)*c/b))``.

    Raises
    ------
    TypeError
        A dtype other than float16/32/64; ``output_size`` not an int or a sequence of ints and
        None; ``out`` not an ndarray or of another dtype.
    ValueError
        Input not 3-d or 4-d, or H or W = 0; ``output_size`` negative or of length other than 2;
        ``out`` of another shape, read-only, unaligned or overlapping the input.

    Notes
    -----
    float32 sums run in float32 vector lanes flushed into float64 every 16 additions; float16
    and float64 sum in float64; each mean is rounded once to the output dtype.
    """
    return _adaptive_forward(input, output_size, 2, "adaptive_avg_pool2d", False, out=out)


def adaptive_avg_pool3d(input: npt.ArrayLike, output_size: int | Sequence[int | None], *,
                        out: np.ndarray | None = None) -> np.ndarray:
    """Adaptive 3-d average pooling of a NumPy array.

    torch equivalent: ``torch.nn.functional.adaptive_avg_pool3d``.

    Parameters
    ----------
    input : array_like
        (C, D, H, W) or (N, C, D, H, W), float16, float32 or float64, any memory layout. D, H,
        W and, in batched input, C must be non-empty (as in torch).
    output_size : int or (int or None, int or None, int or None)
        Target (OD, OH, OW); an int k means (k, k, k); None keeps that input size.
    out : numpy.ndarray, optional
        Write the result here instead (adapool's addition, torch's function has none): the
        result's shape and dtype, writeable, aligned, any layout, not overlapping ``input``.

    Returns
    -------
    numpy.ndarray
        (C, OD, OH, OW) or (N, C, OD, OH, OW), same dtype, C-contiguous as torch's (``out``
        when given).

    Raises
    ------
    TypeError
        A dtype other than float16/32/64; ``output_size`` not an int or a sequence of ints and
        None; ``out`` not an ndarray or of another dtype.
    ValueError
        Input not 4-d or 5-d, or an empty D, H, W or batched C; ``output_size`` negative or of
        length other than 3; ``out`` of another shape, read-only, unaligned or overlapping the
        input.
    """
    return _adaptive_forward(input, output_size, 3, "adaptive_avg_pool3d", False, out=out)


def adaptive_max_pool1d(input: npt.ArrayLike, output_size: int | Sequence[int],
                        return_indices: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Adaptive 1-d max pooling of a NumPy array.

    torch equivalent: ``torch.nn.functional.adaptive_max_pool1d``.

    Parameters
    ----------
    input : array_like
        (C, L) or (N, C, L), float16, float32 or float64, any memory layout. L and, in batched
        input, C must be non-empty (as in torch).
    output_size : int or (int,)
        Target length OL. ``None`` is rejected, as in torch.
    return_indices : bool
        Also return the int64 position along L of each maximum.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, numpy.ndarray)
        The pooled array, (C, OL) or (N, C, OL), same dtype; with ``return_indices`` also the
        indices, same shape and layout. Batched channels-last input gives channels-last
        results. Ties keep the first maximum; NaN propagates and the last NaN's index wins; an
        all -inf window reports its first element.

    Raises
    ------
    TypeError
        A dtype other than float16/32/64; ``output_size`` not an int or a sequence of one int.
    ValueError
        Input not 2-d or 3-d, or an empty L or batched C; ``output_size`` negative or of length
        other than 1.
    """
    return _adaptive_forward(input, output_size, 1, "adaptive_max_pool1d", True, return_indices)


def adaptive_max_pool2d(input: npt.ArrayLike, output_size: int | Sequence[int | None],
                        return_indices: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Adaptive 2-d max pooling of a NumPy array.

    torch equivalent: ``torch.nn.functional.adaptive_max_pool2d``.

    Parameters
    ----------
    input : array_like
        (C, H, W) or (N, C, H, W), float16, float32 or float64, any memory layout. H, W and, in
        batched input, C must be non-empty (as in torch).
    output_size : int or (int or None, int or None)
        Target (OH, OW); an int k means (k, k); None keeps that input size.
    return_indices : bool
        Also return int64 indices of the maxima, flattened per (n, c) plane (``h * W + w``).

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, numpy.ndarray)
        The pooled array, (C, OH, OW) or (N, C, OH, OW), same dtype; with ``return_indices``
        also the indices, same shape and layout. Batched channels-last input gives
        channels-last results. Ties keep the first maximum in row-major window order; NaN
        propagates and the last NaN's index wins; an all -inf window reports its first element.

    Raises
    ------
    TypeError
        A dtype other than float16/32/64; ``output_size`` not an int or a sequence of ints and
        None.
    ValueError
        Input not 3-d or 4-d, or an empty H, W or batched C; ``output_size`` negative or of
        length other than 2.
    """
    return _adaptive_forward(input, output_size, 2, "adaptive_max_pool2d", True, return_indices)


def adaptive_max_pool3d(input: npt.ArrayLike, output_size: int | Sequence[int | None],
                        return_indices: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Adaptive 3-d max pooling of a NumPy array.

    torch equivalent: ``torch.nn.functional.adaptive_max_pool3d``.

    Parameters
    ----------
    input : array_like
        (C, D, H, W) or (N, C, D, H, W), float16, float32 or float64, any memory layout. D, H, W
        and, in batched input, C must be non-empty (as in torch).
    output_size : int or (int or None, int or None, int or None)
        Target (OD, OH, OW); an int k means (k, k, k); None keeps that input size.
    return_indices : bool
        Also return int64 indices of the maxima, flattened per (n, c) volume:
        ``(d * H + h) * W + w``.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, numpy.ndarray)
        The pooled array, (C, OD, OH, OW) or (N, C, OD, OH, OW), same dtype; with
        ``return_indices`` also the indices. Both C-contiguous, as torch's. Ties, NaN and -inf
        as in :func:`adaptive_max_pool2d`.

    Raises
    ------
    TypeError
        A dtype other than float16/32/64; ``output_size`` not an int or a sequence of ints and
        None.
    ValueError
        Input not 4-d or 5-d, or an empty D, H, W or batched C; ``output_size`` negative or of
        length other than 3.
    """
    return _adaptive_forward(input, output_size, 3, "adaptive_max_pool3d", True, return_indices)


def avg_pool2d(input: npt.ArrayLike, kernel_size: int | Sequence[int],
               stride: int | Sequence[int] | None = None, padding: int | Sequence[int] = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None, *, out: np.ndarray | None = None) -> np.ndarray:
    """2-d average pooling of a NumPy array.

    torch equivalent: ``torch.nn.functional.avg_pool2d``.

    Parameters
    ----------
    input : array_like
        (C, H, W) or (N, C, H, W), float16, float32 or float64, any memory layout. C, H and W
        must be non-empty; N = 0 gives an empty result.
    kernel_size, stride, padding : int or (int, int)
        An int or a 1-sequence means the same on H and W. ``stride`` defaults to
        ``kernel_size`` (so does an empty sequence); kernel and stride must be positive;
        padding is non-negative and at most half the kernel.
    ceil_mode : bool
        Round the output size up; the last window must still start inside the input or the
        left padding.
    count_include_pad : bool
        Divide by the window area including declared padding (not the ceil_mode overhang);
        False: by the area clamped to the input.
    divisor_override : int, optional
        Divide every window sum by this (non-zero, may be negative) instead.
    out : numpy.ndarray, optional
        Write the result here instead (adapool's addition, torch's function has none): the
        result's shape and dtype, writeable, aligned, any layout, not overlapping ``input``.

    Returns
    -------
    numpy.ndarray
        (C, OH, OW) or (N, C, OH, OW), same dtype (``out`` when given). Batched channels-last
        input gives channels-last output, other input C order.

    Raises
    ------
    TypeError
        A dtype other than float16/32/64 (torch also takes int64, adapool does not);
        ``kernel_size``, ``stride``, ``padding`` or ``divisor_override`` not ints; ``out`` not
        an ndarray or of another dtype.
    ValueError
        Input not 3-d or 4-d, or an empty C, H or W; a sequence of length other than 1 or 2
        (an empty stride is allowed); a non-positive kernel or stride; padding negative or over
        half the kernel; an output size below 1 (input smaller than the kernel);
        ``divisor_override`` zero; sizes whose window arithmetic would overflow int64; ``out``
        of another shape, read-only, unaligned or overlapping the input.
    """
    return _strided_forward("avg_pool2d", input, kernel_size, stride, padding, 1, ceil_mode, False,
                            count_include_pad, divisor_override, out)


# ---- strided pooling: max_pool1d/2d/3d, avg_pool1d/2d/3d -------------------------------------

def _strided_out_cl(op: str, channels_last: bool, batched: bool, return_indices: bool) -> bool:
    """torch's result layout for channels-last input: max_pool3d keeps it (avg_pool3d does not);
    max_pool1d without indices runs its own kernel, which gives C order."""
    if not (channels_last and batched):
        return False
    return op != "avg_pool3d" and not (op == "max_pool1d" and not return_indices)


@lru_cache(maxsize=256)
def _pool_args_cached(op, shape, key, *args):
    return pool_args(op, shape, *args)


def _checked_pool_args(op, shape, *args):
    """pool_args, cached for plain int arguments: validating kernel, stride and padding costs
    more than pooling a small input. The key carries each argument's type, so the cache never
    accepts what a fresh validation would refuse."""
    key = tuple(_typed(a) for a in args)
    if None in key:
        return pool_args(op, shape, *args)
    return _pool_args_cached(op, shape, key, *args)


def _strided_forward(op: str, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices,
                     count_include_pad=True, divisor_override=None, out=None):
    key = None
    # The plain call (int sizes, bool flags) is checked inline: a tiny call's whole budget is ~1.5 us.
    if ((out is None or type(out) is np.ndarray) and type(input) is np.ndarray and type(return_indices) is bool
            and type(ceil_mode) is bool and type(count_include_pad) is bool
            and ((type(kernel_size) is int and type(padding) is int and type(dilation) is int
                  and (stride is None or type(stride) is int) and divisor_override is None)
                 or _exact_pool_args(kernel_size, stride, padding, dilation, ceil_mode, count_include_pad,
                                     divisor_override))):
        key = (op, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override,
               return_indices, input.shape, input.strides, input.dtype)
        plan = _PLANS.get(key)
        if plan is not None and out is not None:
            if input.flags.aligned:
                return _run_planned_out(plan, input, out, return_indices, op)
        elif plan is not None:
            # _planned inline (a call frame is ~5% of a tiny call)
            direct = plan.direct
            if direct is not None:
                # None for unaligned input
                y = (direct.pool_indexed(input) if direct.indexed else None) if return_indices else direct.pool(input)
                if y is not None:
                    return y
            if input.flags.aligned:
                return _run_planned(plan, input, return_indices)
    nd = int(op[-2])
    is_max = op.startswith("max")
    if _is_dask(input):
        if is_max:
            return _on_dask(op, out, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
        return _on_dask(op, out, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                        *((divisor_override,) if nd > 1 else ()))
    if is_bfloat16(input):
        return in_float32(lambda x: _strided_forward(op, x, kernel_size, stride, padding, dilation, ceil_mode,
                                                     return_indices, count_include_pad, divisor_override),
                          input, out, op)
    x = as_float_array(input, op)
    args = _checked_pool_args(op, x.shape, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad,
                              divisor_override, bool(return_indices))
    batched = x.ndim == nd + 2
    xk, channels_last = _kernel_layout(x, nd)
    out_cl = _strided_out_cl(op, channels_last, batched, bool(return_indices))
    shape = x.shape[:-nd] + args.out_size
    y = _forward_result(out, shape, x.dtype, out_cl, x, op)
    dilated = is_max and any(d != 1 for d in args.key[5])
    table = None
    if y.size:
        table = _max_pool_table(*args.key) if is_max else _pool2d_table(*args.key)
    plan = _ForwardPlan(nd, is_max, channels_last, out_cl, *_nc(x.shape, nd), shape, table, x.size, dilated,
                        strided=True)
    if key is not None and xk is input:   # as in _adaptive_forward
        _remember(key, plan)
    result = _run_plan(plan, xk, y, bool(return_indices), record=out is None)
    if out is not None:
        return out
    return result


_MAX_POOL_DOC = """{nd}-d max pooling of a NumPy array.

    torch equivalent: ``torch.nn.functional.max_pool{nd}d``.

    Parameters
    ----------
    input : array_like
        {shapes}, float16, float32 or float64, any memory layout. C and the
        pooled axes must be non-empty; N = 0 gives an empty result.
    kernel_size, stride, padding, dilation : int or {seq}
        An int (or a 1-sequence) means the same on every pooled axis. ``stride`` defaults to
        ``kernel_size`` (so does an empty sequence). The window of output ``o`` reads
        ``o * stride - padding + j * dilation`` for ``j < kernel_size``; padding reads as -inf
        and is at most half the kernel.
    ceil_mode : bool
        Round the output size up; the last window must still start inside the input or the
        left padding.
    return_indices : bool
        Also return int64 indices of the maxima, flattened per (n, c) plane{flat}.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, numpy.ndarray)
        The pooled array, same dtype; with ``return_indices`` also the indices, same shape and
        layout. {layout} Ties keep the first maximum in scan order; NaN propagates and the
        last NaN's index wins; an all -inf window reports its first element.

    Raises
    ------
    TypeError
        A dtype other than float16/32/64 (torch also takes integers, adapool does not); the
        size arguments not ints or sequences of ints; ``ceil_mode`` not a bool.
    ValueError
        The errors torch raises, in its words: input of another rank or with an empty C or
        pooled axis, sequences of the wrong length, a non-positive kernel, stride or
        dilation, negative padding or padding over half the kernel, an output size below 1.
    """


def max_pool1d(input: npt.ArrayLike, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
               padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1, ceil_mode: bool = False,
               return_indices: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    return _strided_forward("max_pool1d", input, kernel_size, stride, padding, dilation, ceil_mode,
                            return_indices)


def max_pool2d(input: npt.ArrayLike, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
               padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1, ceil_mode: bool = False,
               return_indices: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    return _strided_forward("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode,
                            return_indices)


def max_pool3d(input: npt.ArrayLike, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
               padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1, ceil_mode: bool = False,
               return_indices: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    return _strided_forward("max_pool3d", input, kernel_size, stride, padding, dilation, ceil_mode,
                            return_indices)


max_pool1d.__doc__ = _MAX_POOL_DOC.format(
    nd=1, shapes="(C, L) or (N, C, L)", seq="(int,)", flat=" (the position along L)",
    layout="Batched channels-last input gives channels-last results with return_indices (C order "
           "without: torch's own 1-d kernel).")
max_pool2d.__doc__ = _MAX_POOL_DOC.format(
    nd=2, shapes="(C, H, W) or (N, C, H, W)", seq="(int, int)", flat=" (``h * W + w``)",
    layout="Batched channels-last input gives channels-last results.")
max_pool3d.__doc__ = _MAX_POOL_DOC.format(
    nd=3, shapes="(C, D, H, W) or (N, C, D, H, W)", seq="(int, int, int)", flat=" (``(d * H + h) * W + w``)",
    layout="Batched channels-last input gives channels-last results, as torch's channels_last_3d.")


def avg_pool1d(input: npt.ArrayLike, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
               padding: int | Sequence[int] = 0, ceil_mode: bool = False, count_include_pad: bool = True, *,
               out: np.ndarray | None = None) -> np.ndarray:
    """1-d average pooling of a NumPy array.

    torch equivalent: ``torch.nn.functional.avg_pool1d``.

    Parameters
    ----------
    input : array_like
        (C, L) or (N, C, L), float16, float32 or float64, any memory layout. C and L must be
        non-empty; N = 0 gives an empty result.
    kernel_size, stride, padding : int or (int,)
        ``stride`` defaults to ``kernel_size`` (so does an empty sequence); padding is
        non-negative and at most half the kernel.
    ceil_mode, count_include_pad : bool
        As for :func:`avg_pool2d`.
    out : numpy.ndarray, optional
        Write the result here instead (adapool's addition): the result's shape and dtype,
        writeable, aligned, any layout, not overlapping ``input``.

    Returns
    -------
    numpy.ndarray
        (C, OL) or (N, C, OL), same dtype (``out`` when given); batched channels-last input
        gives channels-last output, as torch's.

    Raises
    ------
    TypeError, ValueError
        As torch raises them, in its words (see :func:`avg_pool2d`); a sequence of length other
        than 1.
    """
    return _strided_forward("avg_pool1d", input, kernel_size, stride, padding, 1, ceil_mode, False,
                            count_include_pad, None, out)


def avg_pool3d(input: npt.ArrayLike, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
               padding: int | Sequence[int] = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None, *, out: np.ndarray | None = None) -> np.ndarray:
    """3-d average pooling of a NumPy array.

    torch equivalent: ``torch.nn.functional.avg_pool3d``.

    Parameters
    ----------
    input : array_like
        (C, D, H, W) or (N, C, D, H, W), float16, float32 or float64, any memory layout. C, D,
        H and W must be non-empty and at least the kernel (torch's rule for this op); N = 0
        gives an empty result.
    kernel_size, stride, padding : int or (int, int, int)
        As for :func:`avg_pool2d`, per axis.
    ceil_mode, count_include_pad, divisor_override
        As for :func:`avg_pool2d`.
    out : numpy.ndarray, optional
        Write the result here instead (adapool's addition).

    Returns
    -------
    numpy.ndarray
        (C, OD, OH, OW) or (N, C, OD, OH, OW), same dtype, C order (as torch's, whatever the
        input's layout), or ``out`` when given.

    Raises
    ------
    TypeError, ValueError
        As torch raises them, in its words (see :func:`avg_pool2d`).
    """
    return _strided_forward("avg_pool3d", input, kernel_size, stride, padding, 1, ceil_mode, False,
                            count_include_pad, divisor_override, out)


# ---- backward --------------------------------------------------------------------------------

# Tiny calls, as in the forward ops (see _PLANS): a gradient call whose grad_output (and
# indices) are aligned ndarrays used without a copy, with ``input_shape`` a tuple of exact ints,
# is planned once per (op, its arguments, input_shape, and each array's shape, strides and
# dtype). Validating and planning cost 2-3 us, more than the gradient of an 8x8 plane.

def _exact_shape(input_shape) -> bool:
    """A tuple of exact ints (see _exact_ints)."""
    return type(input_shape) is tuple and _exact_ints(input_shape)


class _BackwardPlan:
    """What validating and planning one backward call found: grad_input's shape (the forward
    input's) and layout, the kernel's tables and its thread split."""
    __slots__ = ("nd", "name", "channels_last", "shape", "nc", "rows", "work", "tables", "serial_block")

    def __init__(self, nd, name, channels_last, shape, rows, work, tables):
        self.nd, self.name, self.channels_last, self.shape = nd, name, channels_last, shape
        n, c = self.nc = _nc(shape, nd)
        self.rows, self.work, self.tables = rows, work, tables
        # As in _ForwardPlan: calls too small to share always run on the calling thread.
        self.serial_block = ((1, _channel_block(c, n * rows, 1) if channels_last else c)
                             if work < PARALLEL_MIN_ELEMENTS else None)


def _run_backward(plan: _BackwardPlan, go: np.ndarray, ind: np.ndarray | None = None,
                  gi: np.ndarray | None = None) -> np.ndarray:
    """grad_input for ``go`` (and, for max pooling, ``ind``), each already in a layout the
    kernel takes; into ``gi`` when given (the plan's new result array)."""
    if gi is None:
        gi = _empty(plan.shape, go.dtype, plan.channels_last)
    if gi.size and not go.size:
        gi[...] = 0  # an empty output reads nothing: zero gradient (torch raises here)
    elif gi.size:
        nthreads, block = plan.serial_block or _plan(*plan.nc, plan.rows, plan.work, plan.channels_last)
        if ind is None:
            _kernels.avg_pool_backward(plan.nd, go, gi, *plan.tables, plan.channels_last, block, nthreads)
            return gi
        try:
            _kernels.max_pool_backward(plan.nd, go, ind, gi, plan.channels_last, block, nthreads)
        except IndexError:
            plane = int(np.prod(plan.shape[-plan.nd:]))
            raise ValueError(
                f"{plan.name}: found an index outside [0, {plane}): indices must come from the "
                f"forward pass over an input of shape {list(plan.shape)}"
            ) from None
    return gi


def _planned_backward(key, go, ind=None):
    plan = _PLANS.get(key)
    if plan is None or not go.flags.aligned or (ind is not None and not ind.flags.aligned):
        return None
    return _run_backward(plan, go, ind)


def _avg_backward(key, grad_output, go: np.ndarray, input_shape, nd: int, name: str, tables):
    """Shared by the average backward ops, after their checks (``go`` is already a float
    array): ``tables()`` gives the forward op's packed window table and the backward row table
    (both cached per shape)."""
    gk, go_cl = _kernel_layout(go, nd)
    spatial = input_shape[-nd:]
    channels_last = _result_channels_last(go_cl, go.ndim == nd + 2, nd)   # grad_input's layout
    shape = go.shape[:-nd] + spatial
    gi = _empty(shape, go.dtype, channels_last)   # first: an impossible size fails here, in numpy's words
    plan = _BackwardPlan(nd, name, channels_last, shape, _rows_of(spatial), gi.size,
                         tables() if go.size and gi.size else None)
    if key is not None and gk is grad_output:   # no copy was needed: the plan holds for the key
        _remember(key, plan)
    return _run_backward(plan, gk, gi=gi)


def _adaptive_avg_backward(grad_output, input_shape, nd: int, name: str):
    key = None
    if type(grad_output) is np.ndarray and _exact_shape(input_shape):
        key = (name, input_shape, grad_output.shape, grad_output.strides, grad_output.dtype)
        result = _planned_backward(key, grad_output)
        if result is not None:
            return result
    if is_bfloat16(grad_output):
        return in_float32(lambda g: _adaptive_avg_backward(g, input_shape, nd, name), grad_output)
    input_shape = input_shape_arg(input_shape, nd, name)
    go = as_float_array(grad_output, name)
    check_grad_output(go, input_shape[:-nd] + go.shape[-nd:], name)  # rank and batch dims
    out_in = (go.shape[-nd:], tuple(input_shape[-nd:]))
    return _avg_backward(key, grad_output, go, input_shape, nd, name,
                         lambda: (_adaptive_table(*out_in), _adaptive_rows(*out_in)))


def adaptive_avg_pool1d_backward(grad_output: npt.ArrayLike, input_shape: Sequence[int]) -> np.ndarray:
    """Gradient of :func:`adaptive_avg_pool1d` with respect to its input.

    Each input element receives ``grad_output / window_length`` from every window that
    contains it (overlapping windows add up), summed in float64 and rounded once.

    torch equivalent: what ``torch.autograd`` gives for ``adaptive_avg_pool1d``'s input (torch
    computes it with ``torch.ops.aten._adaptive_avg_pool2d_backward`` on an H = 1 view).

    Parameters
    ----------
    grad_output : array_like
        (C, OL) or (N, C, OL): the forward output's shape, float16, float32 or float64. Its
        length is the forward call's output size.
    input_shape : sequence of int
        The forward input's shape, (C, L) or (N, C, L), L > 0 (torch's op takes the input
        tensor itself).

    Returns
    -------
    numpy.ndarray
        The input's gradient: shape ``input_shape``, grad_output's dtype; channels-last when a
        batched grad_output is, else C order. Zero when grad_output is empty (torch raises).

    Raises
    ------
    TypeError
        A dtype other than float16/32/64; ``input_shape`` not a tuple or list of ints.
    ValueError
        ``input_shape`` of another rank, negative, or with an empty L; ``grad_output``
        whose rank or (N, C) dims differ from ``input_shape``'s.
    """
    return _adaptive_avg_backward(grad_output, input_shape, 1, "adaptive_avg_pool1d_backward")


def adaptive_avg_pool2d_backward(grad_output: npt.ArrayLike, input_shape: Sequence[int]) -> np.ndarray:
    """Gradient of :func:`adaptive_avg_pool2d` with respect to its input.

    ``grad_output / (kh * kw)`` spread over each window (overlapping windows add up), summed in
    float64 and rounded once, as torch.autograd computes it.

    torch equivalent: ``torch.ops.aten._adaptive_avg_pool2d_backward`` / what ``torch.autograd``
    gives for ``adaptive_avg_pool2d``'s input.

    Parameters
    ----------
    grad_output : array_like
        (C, OH, OW) or (N, C, OH, OW): the forward output's shape, float16, float32 or float64.
        Its spatial sizes are the forward call's output size.
    input_shape : sequence of int
        The forward input's shape, (C, H, W) or (N, C, H, W), H and W > 0 (torch's op takes
        the input tensor itself).

    Returns
    -------
    numpy.ndarray
        The input's gradient: shape ``input_shape``, grad_output's dtype; channels-last when a
        batched grad_output is, else C order. Zero when grad_output is empty (torch raises).

    Raises
    ------
    TypeError
        A dtype other than float16/32/64; ``input_shape`` not a tuple or list of ints.
    ValueError
        ``input_shape`` of another rank, negative, or with an empty H or W; ``grad_output``
        whose rank or (N, C) dims differ from ``input_shape``'s.
    """
    return _adaptive_avg_backward(grad_output, input_shape, 2, "adaptive_avg_pool2d_backward")


def adaptive_avg_pool3d_backward(grad_output: npt.ArrayLike, input_shape: Sequence[int]) -> np.ndarray:
    """Gradient of :func:`adaptive_avg_pool3d` with respect to its input.

    ``grad_output / (kd * kh * kw)`` spread over each window (overlapping windows add up),
    summed in float64 and rounded once.

    torch equivalent: ``torch.ops.aten._adaptive_avg_pool3d_backward`` / what ``torch.autograd``
    gives for ``adaptive_avg_pool3d``'s input.

    Parameters
    ----------
    grad_output : array_like
        (C, OD, OH, OW) or (N, C, OD, OH, OW): the forward output's shape, float16, float32 or
        float64. Its spatial sizes are the forward call's output size.
    input_shape : sequence of int
        The forward input's shape, (C, D, H, W) or (N, C, D, H, W), D, H and W > 0 (torch's
        op takes the input tensor itself).

    Returns
    -------
    numpy.ndarray
        The input's gradient: shape ``input_shape``, grad_output's dtype, C-contiguous. Zero
        when grad_output is empty (torch raises).

    Raises
    ------
    TypeError
        A dtype other than float16/32/64; ``input_shape`` not a tuple or list of ints.
    ValueError
        ``input_shape`` of another rank, negative, or with an empty D, H or W; ``grad_output``
        whose rank or (N, C) dims differ from ``input_shape``'s.
    """
    return _adaptive_avg_backward(grad_output, input_shape, 3, "adaptive_avg_pool3d_backward")


def avg_pool2d_backward(grad_output: npt.ArrayLike, input_shape: Sequence[int],
                        kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
                        padding: int | Sequence[int] = 0, ceil_mode: bool = False,
                        count_include_pad: bool = True, divisor_override: int | None = None) -> np.ndarray:
    """Gradient of :func:`avg_pool2d` with respect to its input.

    ``grad_output / divisor`` spread over each clamped window (overlapping windows add up),
    summed in float64 and rounded once. Takes the forward op's arguments and its input's shape.

    torch equivalent: ``torch.ops.aten.avg_pool2d_backward`` / what ``torch.autograd`` gives for
    ``avg_pool2d``'s input.

    Parameters
    ----------
    grad_output : array_like
        (C, OH, OW) or (N, C, OH, OW): the forward output's shape, float16, float32 or float64.
    input_shape : sequence of int
        The forward input's shape, (C, H, W) or (N, C, H, W) (torch's op takes the input tensor
        itself).
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        The forward call's arguments, as for :func:`avg_pool2d`.

    Returns
    -------
    numpy.ndarray
        The input's gradient: shape ``input_shape``, grad_output's dtype; channels-last when a
        batched grad_output is, else C order.

    Raises
    ------
    TypeError
        A dtype other than float16/32/64; ``input_shape`` not a tuple or list of ints; the
        forward arguments' type errors, as :func:`avg_pool2d` raises them.
    ValueError
        ``input_shape`` of another rank, negative, or with an empty C, H or W; the forward
        arguments' errors, as :func:`avg_pool2d` raises them; ``grad_output`` not of the
        forward output's shape.
    """
    return _strided_avg_backward("avg_pool2d", grad_output, input_shape, kernel_size, stride, padding,
                                 ceil_mode, count_include_pad, divisor_override)


def _strided_avg_backward(op, grad_output, input_shape, kernel_size, stride, padding, ceil_mode,
                          count_include_pad, divisor_override):
    nd = int(op[-2])
    name = op + "_backward"
    key = None
    if (type(grad_output) is np.ndarray and _exact_shape(input_shape)
            and _exact_pool_args(kernel_size, stride, padding, 1, ceil_mode, count_include_pad, divisor_override)):
        key = (name, input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
               divisor_override, grad_output.shape, grad_output.strides, grad_output.dtype)
        result = _planned_backward(key, grad_output)
        if result is not None:
            return result
    if is_bfloat16(grad_output):
        return in_float32(lambda g: _strided_avg_backward(op, g, input_shape, kernel_size, stride, padding, ceil_mode,
                                                          count_include_pad, divisor_override), grad_output)
    input_shape = input_shape_arg(input_shape, nd, name)
    args = _checked_pool_args(op, input_shape, kernel_size, stride, padding, 1, ceil_mode, count_include_pad,
                              divisor_override, False)
    go = as_float_array(grad_output, name)
    check_grad_output(go, input_shape[:-nd] + args.out_size, name)
    return _avg_backward(key, grad_output, go, input_shape, nd, name,
                         lambda: (_pool2d_table(*args.key), _pool2d_rows(*args.key)))


def _adaptive_max_backward(grad_output, indices, input_shape, nd: int, name: str, pool=None):
    """The max pools' gradient (a scatter at the indices); ``pool`` = (op, its arguments) for the
    strided max pools, whose output size the arguments fix (an adaptive one's is grad_output's)."""
    key = None
    if (type(grad_output) is np.ndarray and type(indices) is np.ndarray and _exact_shape(input_shape)
            and (pool is None or _exact_pool_args(*pool[1:]))):
        key = (name, input_shape, grad_output.shape, grad_output.strides, grad_output.dtype,
               indices.shape, indices.strides, indices.dtype, pool)
        result = _planned_backward(key, grad_output, indices)
        if result is not None:
            return result
    if is_bfloat16(grad_output):
        return in_float32(lambda g: _adaptive_max_backward(g, indices, input_shape, nd, name, pool), grad_output)
    input_shape = input_shape_arg(input_shape, nd, name)
    go = as_float_array(grad_output, name)
    if pool is None:
        check_grad_output(go, input_shape[:-nd] + go.shape[-nd:], name)
    else:
        op, kernel_size, stride, padding, dilation, ceil_mode = pool
        args = _checked_pool_args(op, input_shape, kernel_size, stride, padding, dilation, ceil_mode, True,
                                  None, True)
        check_grad_output(go, input_shape[:-nd] + args.out_size, name)
    ind = check_indices(indices, go.shape, name)
    if pool is not None and (empty := _empty_windows(*args.key)) is not None:
        # Outputs whose window holds no element (-inf, with torch's index past the window's
        # start, which may lie outside the plane) depend on no input: their gradient goes
        # nowhere (torch's scatter writes it into the next plane). Copies keep the layout.
        go, ind = go.copy(order="K"), ind.copy(order="K")
        go[..., empty] = 0
        ind[..., empty] = 0
        key = None
    gk, go_cl = _kernel_layout(go, nd)
    channels_last = _result_channels_last(go_cl, go.ndim == nd + 2, nd)
    # The kernel reads grad_output and indices at the same positions: give them one layout.
    gk = _dense(gk, nd, channels_last)
    ik = _dense(ind, nd, channels_last)
    shape = go.shape[:-nd] + input_shape[-nd:]
    gi = _empty(shape, go.dtype, channels_last)
    # The work is zeroing grad_input (often far larger than grad_output) and the scatter.
    plan = _BackwardPlan(nd, name, channels_last, shape, 1, gi.size + go.size, None)
    if key is not None and gk is grad_output and ik is indices:   # as in _avg_backward
        _remember(key, plan)
    return _run_backward(plan, gk, ik, gi)


def _dense(a: np.ndarray, nd: int, channels_last: bool) -> np.ndarray:
    """``a`` ((N, C, *spatial) or (C, *spatial)) itself if dense in the given layout, else a
    dense copy in that layout."""
    if channels_last:
        to_end = _channels_to_end(a.ndim, nd)
        moved = a.transpose(to_end)
        return a if moved.flags.c_contiguous else np.ascontiguousarray(moved).transpose(np.argsort(to_end))
    return np.ascontiguousarray(a)


def adaptive_max_pool1d_backward(grad_output: npt.ArrayLike, indices: npt.ArrayLike,
                                 input_shape: Sequence[int]) -> np.ndarray:
    """Gradient of :func:`adaptive_max_pool1d` with respect to its input.

    ``grad_input[n, c, index] += grad_output`` for each output element, in output order and in
    grad_output's dtype, as torch does (repeated indices add up).

    torch equivalent: what ``torch.autograd`` gives for ``adaptive_max_pool1d``'s input (torch
    computes it with ``torch.ops.aten.adaptive_max_pool2d_backward`` on an H = 1 view).

    Parameters
    ----------
    grad_output : array_like
        (C, OL) or (N, C, OL): the forward output's shape, float16, float32 or float64.
    indices : array_like
        int64, grad_output's shape: the positions along L the forward op returned with
        ``return_indices=True``.
    input_shape : sequence of int
        The forward input's shape, (C, L) or (N, C, L), L > 0 (torch's op takes the input
        tensor itself).

    Returns
    -------
    numpy.ndarray
        The input's gradient: shape ``input_shape``, grad_output's dtype; channels-last when a
        batched grad_output is, else C order. Zero when grad_output is empty (torch raises).

    Raises
    ------
    TypeError
        A dtype other than float16/32/64; ``input_shape`` not a tuple or list of ints;
        ``indices`` not int64.
    ValueError
        ``input_shape`` of another rank, negative, or with an empty L; ``grad_output`` whose
        rank or (N, C) dims differ from ``input_shape``'s; ``indices`` of another shape than
        ``grad_output``; an index outside [0, L) (nothing is written there).
    """
    return _adaptive_max_backward(grad_output, indices, input_shape, 1, "adaptive_max_pool1d_backward")


def adaptive_max_pool2d_backward(grad_output: npt.ArrayLike, indices: npt.ArrayLike,
                                 input_shape: Sequence[int]) -> np.ndarray:
    """Gradient of :func:`adaptive_max_pool2d` with respect to its input.

    ``grad_input[n, c].flat[index] += grad_output`` for each output element, in output order
    and in grad_output's dtype, as torch does (repeated indices add up).

    torch equivalent: ``torch.ops.aten.adaptive_max_pool2d_backward`` / what ``torch.autograd``
    gives for ``adaptive_max_pool2d``'s input.

    Parameters
    ----------
    grad_output : array_like
        (C, OH, OW) or (N, C, OH, OW): the forward output's shape, float16, float32 or float64.
    indices : array_like
        int64, grad_output's shape: the indices the forward op returned with
        ``return_indices=True`` (``h * W + w`` per plane).
    input_shape : sequence of int
        The forward input's shape, (C, H, W) or (N, C, H, W), H and W > 0 (torch's op takes
        the input tensor itself).

    Returns
    -------
    numpy.ndarray
        The input's gradient: shape ``input_shape``, grad_output's dtype; channels-last when a
        batched grad_output is, else C order. Zero when grad_output is empty (torch raises).

    Raises
    ------
    TypeError
        A dtype other than float16/32/64; ``input_shape`` not a tuple or list of ints;
        ``indices`` not int64.
    ValueError
        ``input_shape`` of another rank, negative, or with an empty H or W; ``grad_output``
        whose rank or (N, C) dims differ from ``input_shape``'s; ``indices`` of another shape
        than ``grad_output``; an index outside [0, H*W) (nothing is written there).
    """
    return _adaptive_max_backward(grad_output, indices, input_shape, 2, "adaptive_max_pool2d_backward")


def adaptive_max_pool3d_backward(grad_output: npt.ArrayLike, indices: npt.ArrayLike,
                                 input_shape: Sequence[int]) -> np.ndarray:
    """Gradient of :func:`adaptive_max_pool3d` with respect to its input.

    ``grad_input[n, c].flat[index] += grad_output`` for each output element, in output order
    and in grad_output's dtype, as torch does (repeated indices add up).

    torch equivalent: ``torch.ops.aten.adaptive_max_pool3d_backward`` / what ``torch.autograd``
    gives for ``adaptive_max_pool3d``'s input.

    Parameters
    ----------
    grad_output : array_like
        (C, OD, OH, OW) or (N, C, OD, OH, OW): the forward output's shape, float16, float32 or
        float64.
    indices : array_like
        int64, grad_output's shape: the indices the forward op returned with
        ``return_indices=True`` (``(d * H + h) * W + w`` per volume).
    input_shape : sequence of int
        The forward input's shape, (C, D, H, W) or (N, C, D, H, W), D, H and W > 0 (torch's op
        takes the input tensor itself).

    Returns
    -------
    numpy.ndarray
        The input's gradient: shape ``input_shape``, grad_output's dtype, C-contiguous. Zero
        when grad_output is empty (torch raises).

    Raises
    ------
    TypeError
        A dtype other than float16/32/64; ``input_shape`` not a tuple or list of ints;
        ``indices`` not int64.
    ValueError
        ``input_shape`` of another rank, negative, or with an empty D, H or W; ``grad_output``
        whose rank or (N, C) dims differ from ``input_shape``'s; ``indices`` of another shape
        than ``grad_output``; an index outside [0, D*H*W) (nothing is written there).
    """
    return _adaptive_max_backward(grad_output, indices, input_shape, 3, "adaptive_max_pool3d_backward")


def _strided_backward_doc(op: str, is_max: bool) -> str:
    nd = int(op[-2])
    if is_max:
        return f"""Gradient of :func:`{op}` with respect to its input.

    ``grad_input[n, c].flat[index] += grad_output`` for each output element, in output order
    (windows that share a maximum add up), as torch's scatter.

    torch equivalent: what ``torch.autograd`` gives for ``{op}``'s input
    (``torch.ops.aten.{"max_pool2d_with_indices" if nd < 3 else "max_pool3d_with_indices"}_backward``).

    Parameters
    ----------
    grad_output : array_like
        The forward output's shape, float16, float32 or float64.
    indices : array_like
        int64, grad_output's shape: the indices the forward op returned.
    input_shape : sequence of int
        The forward input's shape.
    kernel_size, stride, padding, dilation, ceil_mode
        The forward call's arguments: they fix the output size grad_output must have.

    Returns
    -------
    numpy.ndarray
        The input's gradient: shape ``input_shape``, grad_output's dtype; channels-last when a
        batched grad_output is, else C order.

    Raises
    ------
    TypeError, ValueError
        The forward op's argument errors; ``input_shape`` not a shape; ``grad_output`` or
        ``indices`` not of the forward output's shape; indices not int64; an index outside
        its plane (nothing is written there).
    """
    return f"""Gradient of :func:`{op}` with respect to its input.

    ``grad_output / divisor`` spread over each clamped window (overlapping windows add up),
    summed in float64 and rounded once.

    torch equivalent: what ``torch.autograd`` gives for ``{op}``'s input.

    Parameters
    ----------
    grad_output : array_like
        The forward output's shape, float16, float32 or float64.
    input_shape : sequence of int
        The forward input's shape.
    kernel_size, stride, padding, ceil_mode, count_include_pad{", divisor_override" if nd > 1 else ""}
        The forward call's arguments.

    Returns
    -------
    numpy.ndarray
        The input's gradient: shape ``input_shape``, grad_output's dtype; channels-last when a
        batched grad_output is, else C order.

    Raises
    ------
    TypeError, ValueError
        The forward op's argument errors; ``input_shape`` not a shape; ``grad_output`` not of
        the forward output's shape.
    """


def max_pool1d_backward(grad_output: npt.ArrayLike, indices: npt.ArrayLike, input_shape: Sequence[int],
                        kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
                        padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1,
                        ceil_mode: bool = False) -> np.ndarray:
    return _adaptive_max_backward(grad_output, indices, input_shape, 1, "max_pool1d_backward",
                                  ("max_pool1d", kernel_size, stride, padding, dilation, ceil_mode))


def max_pool2d_backward(grad_output: npt.ArrayLike, indices: npt.ArrayLike, input_shape: Sequence[int],
                        kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
                        padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1,
                        ceil_mode: bool = False) -> np.ndarray:
    return _adaptive_max_backward(grad_output, indices, input_shape, 2, "max_pool2d_backward",
                                  ("max_pool2d", kernel_size, stride, padding, dilation, ceil_mode))


def max_pool3d_backward(grad_output: npt.ArrayLike, indices: npt.ArrayLike, input_shape: Sequence[int],
                        kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
                        padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1,
                        ceil_mode: bool = False) -> np.ndarray:
    return _adaptive_max_backward(grad_output, indices, input_shape, 3, "max_pool3d_backward",
                                  ("max_pool3d", kernel_size, stride, padding, dilation, ceil_mode))


def avg_pool1d_backward(grad_output: npt.ArrayLike, input_shape: Sequence[int], kernel_size: int | Sequence[int],
                        stride: int | Sequence[int] | None = None, padding: int | Sequence[int] = 0,
                        ceil_mode: bool = False, count_include_pad: bool = True) -> np.ndarray:
    return _strided_avg_backward("avg_pool1d", grad_output, input_shape, kernel_size, stride, padding,
                                 ceil_mode, count_include_pad, None)


def avg_pool3d_backward(grad_output: npt.ArrayLike, input_shape: Sequence[int], kernel_size: int | Sequence[int],
                        stride: int | Sequence[int] | None = None, padding: int | Sequence[int] = 0,
                        ceil_mode: bool = False, count_include_pad: bool = True,
                        divisor_override: int | None = None) -> np.ndarray:
    return _strided_avg_backward("avg_pool3d", grad_output, input_shape, kernel_size, stride, padding,
                                 ceil_mode, count_include_pad, divisor_override)


for _f, _is_max in ((max_pool1d_backward, True), (max_pool2d_backward, True), (max_pool3d_backward, True),
                    (avg_pool1d_backward, False), (avg_pool3d_backward, False)):
    _f.__doc__ = _strided_backward_doc(_f.__name__[:-len("_backward")], _is_max)
del _f, _is_max
