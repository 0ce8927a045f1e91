"""adapool's forward ops on dask arrays: lazy, exact across chunk boundaries, for data larger
than memory.

    import dask.array as da
    import adapool.dask

    x = da.random.random((64, 256, 4096, 4096), chunks=(8, 64, 1024, 1024)).astype("float32")
    y = adapool.dask.adaptive_avg_pool2d(x, 7)            # a dask array; nothing computed yet
    values, indices = adapool.dask.adaptive_max_pool2d(x, 7, return_indices=True)

Each op gives what the NumPy function gives on the same data in memory (values to the dtype's
rounding, indices exactly) for every chunking; nobody needs to rechunk by hand.

How: chunks on N and C are independent. On the pooled axes a window can cross chunk
boundaries (adaptive windows overlap by one element when sizes don't divide; a global window
spans every chunk), so each chunk pools the parts of the windows that intersect it with
adapool's own kernels -- float64 sums for the averages, (value, global index) for max -- and a
second step gathers the parts of each window and combines them: sums add up and are divided
by the window's divisor once, rounded once to the dtype; maxima keep torch's rules (NaN wins,
and among NaNs the last in scan order; among equal values the first). The graph has one task per
input chunk plus one per output chunk (and dask's rechunk of the small partial results between
them); a task holds one input chunk, or the parts of the windows of one output chunk.

Requires dask (``pip install 'adapool[dask]'``); importing adapool itself never imports dask.
"""
from __future__ import annotations

import functools

import numpy as np

try:
    import dask.array as da
except ImportError as _e:   # pragma: no cover - exercised in a subprocess without dask
    raise ImportError("adapool.dask needs dask: pip install 'adapool[dask]' (or pip install 'dask[array]')") from _e

from . import _fractional, _unpool
from ._bfloat16 import BFLOAT16, to_bfloat16, to_float32
from ._dispatch import kernels as _kernels
from ._pooling import _adaptive_axes, _max_pool_axes, _pack, _pool2d_axes
from ._validation import FLOAT_DTYPES, adaptive_output_size, check_output_size_rank, check_rank, pool_args

__all__ = [
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "avg_pool1d", "avg_pool2d", "avg_pool3d", "max_pool1d", "max_pool2d", "max_pool3d",
    "lp_pool1d", "lp_pool2d", "lp_pool3d", "max_unpool1d", "max_unpool2d", "max_unpool3d",
    "fractional_max_pool2d", "fractional_max_pool3d",
]

# A max pool's partial result: the value (float64 holds every float16/32/64 exactly) and the
# element's index in its plane of the whole input.
_PART = np.dtype([("v", np.float64), ("i", np.int64)])
_SLAB_ELEMENTS = 1 << 19   # float64 elements converted at a time (4 MiB)


# ---- validation: the NumPy functions' checks and words, on the dask array's shape --------------

def _check_input(x, name: str):
    if not isinstance(x, da.Array):
        raise TypeError(f"{name}(): expected a dask.array.Array, got {type(x).__name__} "
                        f"(adapool.{name} takes NumPy arrays)")
    if any(np.isnan(c) for axis in x.chunks for c in axis):
        raise ValueError(f"{name}(): the input has chunks of unknown size (NaN); call "
                         "x.compute_chunk_sizes() first")
    dt = x.dtype
    if dt not in FLOAT_DTYPES and dt != BFLOAT16:
        if dt.kind != "f" or dt.itemsize not in (2, 4, 8):
            raise TypeError(f'"{name}" not implemented for \'{dt}\' (adapool supports float16, float32 and float64)')
        x = x.astype(dt.newbyteorder("="))
    return x


def _meta(ndim: int, dtype) -> np.ndarray:
    return np.empty((0,) * ndim, dtype)


def _narrowed(result):
    """float32 dask results rounded to bfloat16 chunk by chunk (adapool._bfloat16's rounding,
    as the NumPy ops round); indices as they are."""
    if isinstance(result, tuple):
        return tuple(_narrowed(r) for r in result)
    if result.dtype != np.float32:
        return result
    return result.map_blocks(to_bfloat16, dtype=BFLOAT16, meta=_meta(result.ndim, BFLOAT16))


def _bfloat16_in_float32(op):
    """bfloat16 input runs as the NumPy ops run it: widened to float32 (exact), the float32 op,
    its float results rounded once to bfloat16 -- here chunk by chunk, lazily."""
    @functools.wraps(op)
    def wrapper(input, *args, **kwargs):
        if isinstance(input, da.Array) and input.dtype == BFLOAT16:
            wide = input.map_blocks(to_float32, dtype=np.float32, meta=_meta(input.ndim, np.float32))
            return _narrowed(op(wide, *args, **kwargs))
        return op(input, *args, **kwargs)
    return wrapper


def _stand_in(x) -> np.ndarray:
    """A zero-byte ndarray of x's shape and dtype for the NumPy validators."""
    return np.broadcast_to(np.zeros((), x.dtype), x.shape)


# ---- step 1: each chunk pools the parts of the windows that intersect it -----------------------

def _axis_plan(starts: np.ndarray, ends: np.ndarray, chunks: tuple) -> list:
    """For each chunk [a, b) of one pooled axis: (first window, windows, clipped starts, clipped
    ends), the windows being those that intersect the chunk (a contiguous range: starts and
    ends are non-decreasing)."""
    plan, a = [], 0
    for size in chunks:
        b = a + size
        lo = int(np.searchsorted(ends, a, side="right"))   # first window with end > a
        hi = int(np.searchsorted(starts, b, side="left"))  # windows with start < b
        hi = max(hi, lo)
        s, e = starts[lo:hi], ends[lo:hi]
        keep = np.minimum(e, b) > np.maximum(s, a)         # a non-empty intersection (empty chunks have none)
        idx = np.nonzero(keep)[0] + lo
        plan.append((idx, np.maximum(s[keep], a) - a, np.minimum(e[keep], b) - a))
        a = b
    return plan


def _kernel_input(block: np.ndarray, dtype) -> np.ndarray:
    x = np.ascontiguousarray(block, dtype=dtype)
    return x if x.flags.aligned else x.copy()


def _chunk_parts(block, *, nd: int, is_max: bool, plans: list, block_info=None):
    loc = block_info[0]["chunk-location"]
    spatial_loc = loc[-nd:]
    parts = [plans[k][spatial_loc[k]] for k in range(nd)]
    shape = block.shape[:-nd] + tuple(len(p[0]) for p in parts)
    if 0 in shape or 0 in block.shape:
        return np.zeros(shape, _PART if is_max else np.float64)
    table = _pack([(s, e, np.ones_like(s)) for _, s, e in parts])
    nc = block.shape[:-nd]
    # The kernels need aligned C-order input (chunks a process worker unpickles may be neither).
    if not is_max:
        # Sums in float64 (rounded once, at the end): the chunk goes through a float64 buffer
        # a few channels at a time (converting it whole doubled its memory and took 3x the
        # kernel's time in page faults).
        y = np.empty(shape, np.float64)
        plane = int(np.prod(block.shape[-nd:]))
        step = max(1, _SLAB_ELEMENTS // plane)
        lead = block.reshape((-1,) + block.shape[-nd:])
        out = y.reshape((-1,) + shape[-nd:])
        buf = np.empty((min(step, lead.shape[0]),) + block.shape[-nd:], np.float64)
        for i in range(0, lead.shape[0], step):
            part = buf[: min(step, lead.shape[0] - i)]
            np.copyto(part, lead[i:i + step])
            _kernels.avg_pool_forward(nd, part, out[i:i + step], table, False, part.shape[0], 1)
        return y
    x = _kernel_input(block, block.dtype)
    y = np.empty(shape, x.dtype)
    ind = np.empty(shape, np.int64)
    _kernels.max_pool_forward(nd, x, y, ind, table, False, nc[-1], 1)
    # the chunk's flat index -> the whole plane's
    offsets = [block_info[0]["array-location"][-nd + k][0] for k in range(nd)]
    local = np.unravel_index(ind, block.shape[-nd:])
    whole = block_info[0]["shape"][-nd:]
    out = np.empty(shape, _PART)
    out["v"] = y
    out["i"] = np.ravel_multi_index(tuple(l + o for l, o in zip(local, offsets)), whole)
    return out


# ---- step 2: gather each window's parts and combine them ----------------------------------------

def _better(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where part ``a`` wins over part ``b`` under torch's max rules (a scan in index order that
    takes a value when it is greater or NaN): NaN beats a number, the later NaN beats an earlier
    one, the greater number wins and equal numbers keep the earlier index."""
    an, bn = np.isnan(a["v"]), np.isnan(b["v"])
    return np.where(an | bn, an & (~bn | (a["i"] > b["i"])),
                    (a["v"] > b["v"]) | ((a["v"] == b["v"]) & (a["i"] < b["i"])))


def _combine_axis(parts: np.ndarray, seg: np.ndarray, nwin: int, axis: int, is_max: bool) -> np.ndarray:
    """Combine along ``axis`` the parts that belong to one window: ``seg`` holds each part's
    window (relative to the block's first, non-decreasing); windows without parts (empty
    windows) get zero sums."""
    shape = list(parts.shape)
    shape[axis] = nwin
    if not is_max:
        out = np.zeros(shape, np.float64)
        if parts.size:
            np.add.at(out, (slice(None),) * axis + (seg,), parts)
        return out
    out = np.empty(shape, _PART)
    first = np.r_[True, seg[1:] != seg[:-1]] if len(seg) else np.zeros(0, bool)
    head = (slice(None),) * axis
    out[head + (seg[first],)] = parts[head + (np.nonzero(first)[0],)]
    for p in np.nonzero(~first)[0]:   # the few parts of windows that cross a chunk boundary
        w = head + (seg[p],)
        cand = parts[head + (p,)]
        out[w] = np.where(_better(cand, out[w]), cand, out[w])
    return out


def _finish(parts, *, nd: int, is_max: bool, segs: list, divisors: list, out_dtype, block_info=None):
    loc = block_info[None]["chunk-location"][-nd:]
    out = parts
    for k in range(nd):
        seg, nwin = segs[k][loc[k]]
        out = _combine_axis(out, seg, nwin, out.ndim - nd + k, is_max)
    if is_max:
        return out   # (values still float64: exact; cast to the dtype by the caller)
    divisor = np.ones(())   # the product of the per-axis factors over the block's windows
    for k in range(nd):
        divisor = np.multiply.outer(divisor, divisors[k][loc[k]].astype(np.float64))
    return (out / divisor).astype(out_dtype)


def _pool(x, nd: int, is_max: bool, axes: list, batched: bool, dtype):
    """Pool the (N, C, *spatial) dask array ``x`` over the windows ``axes`` ((starts, ends,
    divisor factor) per pooled axis)."""
    def unbatched(result):
        if batched:
            return result
        return tuple(r[0] for r in result) if is_max else result[0]

    if not batched:
        x = x[None]
    out_sizes = tuple(len(s) for s, _, _ in axes)
    out_shape = x.shape[:2] + out_sizes
    if 0 in out_shape:
        empty = da.zeros(out_shape, dtype=dtype)
        return unbatched((empty, da.zeros(out_shape, dtype=np.int64)) if is_max else empty)
    spatial_chunks = x.chunks[-nd:]
    plans = [_axis_plan(s, e, c) for (s, e, _), c in zip(axes, spatial_chunks)]
    part_dtype = _PART if is_max else np.float64
    parts = x.map_blocks(_chunk_parts, nd=nd, is_max=is_max, plans=plans, dtype=part_dtype,
                         chunks=x.chunks[:-nd] + tuple(tuple(len(p[0]) for p in plan) for plan in plans),
                         meta=np.empty((0,) * x.ndim, part_dtype))
    # Output chunks: each window goes with the first input chunk it meets, so the output is
    # chunked like the input; its parts are consecutive in ``parts`` (sorted by window where
    # needed) and dask's rechunk gathers them.
    out_chunks, part_chunks, segs, divisors = [], [], [], []
    for k, ((starts, ends, factor), plan) in enumerate(zip(axes, plans)):
        windows = np.concatenate([p[0] for p in plan])          # each part's window, in order
        if np.any(windows[1:] < windows[:-1]):
            # Windows that overlap by more than one element (a kernel longer than its stride)
            # cross a chunk boundary several at a time: sort the parts by window first.
            order = np.argsort(windows, kind="stable")
            parts = parts[(slice(None),) * (x.ndim - nd + k) + (order,)]
            windows = windows[order]
        first = np.full(len(starts), -1, np.int64)
        for j in range(len(plan) - 1, -1, -1):
            first[plan[j][0]] = j
        # an empty window (no parts; its sum is 0) goes with the window before it
        first = np.maximum.accumulate(np.maximum(first, 0))
        bounds = np.unique(np.r_[0, np.cumsum(np.bincount(first, minlength=len(plan)))])
        oc, pc, sg, dv = [], [], [], []
        for w0, w1 in zip(bounds[:-1], bounds[1:]):
            sel = (windows >= w0) & (windows < w1)
            oc.append(int(w1 - w0))
            pc.append(int(sel.sum()))
            sg.append((windows[sel] - w0, int(w1 - w0)))
            dv.append(factor[w0:w1])
        out_chunks.append(tuple(oc))
        part_chunks.append(tuple(pc))
        segs.append(sg)
        divisors.append(dv)
    parts = parts.rechunk(x.chunks[:-nd] + tuple(part_chunks))
    final_dtype = _PART if is_max else dtype
    result = parts.map_blocks(_finish, nd=nd, is_max=is_max, segs=segs, divisors=divisors, out_dtype=dtype, dtype=final_dtype,
                              chunks=x.chunks[:-nd] + tuple(out_chunks), meta=np.empty((0,) * x.ndim, final_dtype))
    return unbatched((result["v"].astype(dtype), result["i"]) if is_max else result)


def _adaptive(input, output_size, nd: int, name: str, is_max: bool):
    x = _check_input(input, name)
    stand_in = _stand_in(x)
    check_output_size_rank(output_size, x.ndim, nd)
    batched = check_rank(stand_in, nd, name, is_max or nd == 3)
    spatial = tuple(int(s) for s in x.shape[-nd:])
    osize = adaptive_output_size(output_size, spatial, name, is_max, x.shape)
    return _pool(x, nd, is_max, list(_adaptive_axes(osize, spatial)), batched, x.dtype)


@_bfloat16_in_float32
def adaptive_avg_pool1d(input, output_size):
    """:func:`adapool.adaptive_avg_pool1d` of a dask array, lazily (a dask array)."""
    return _adaptive(input, output_size, 1, "adaptive_avg_pool1d", False)


@_bfloat16_in_float32
def adaptive_avg_pool2d(input, output_size):
    """:func:`adapool.adaptive_avg_pool2d` of a dask array, lazily (a dask array)."""
    return _adaptive(input, output_size, 2, "adaptive_avg_pool2d", False)


@_bfloat16_in_float32
def adaptive_avg_pool3d(input, output_size):
    """:func:`adapool.adaptive_avg_pool3d` of a dask array, lazily (a dask array)."""
    return _adaptive(input, output_size, 3, "adaptive_avg_pool3d", False)


def _max(input, output_size, return_indices: bool, nd: int, name: str):
    values, indices = _adaptive(input, output_size, nd, name, True)
    return (values, indices) if return_indices else values


@_bfloat16_in_float32
def adaptive_max_pool1d(input, output_size, return_indices: bool = False):
    """:func:`adapool.adaptive_max_pool1d` of a dask array, lazily: values, or (values,
    indices) -- both dask arrays, computed together by ``dask.compute(values, indices)``."""
    return _max(input, output_size, return_indices, 1, "adaptive_max_pool1d")


@_bfloat16_in_float32
def adaptive_max_pool2d(input, output_size, return_indices: bool = False):
    """:func:`adapool.adaptive_max_pool2d` of a dask array, lazily (see adaptive_max_pool1d)."""
    return _max(input, output_size, return_indices, 2, "adaptive_max_pool2d")


@_bfloat16_in_float32
def adaptive_max_pool3d(input, output_size, return_indices: bool = False):
    """:func:`adapool.adaptive_max_pool3d` of a dask array, lazily (see adaptive_max_pool1d)."""
    return _max(input, output_size, return_indices, 3, "adaptive_max_pool3d")


def _strided(op: str, input, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad=True,
             divisor_override=None, return_indices=False):
    nd = int(op[-2])
    x = _check_input(input, op)
    shape = tuple(int(s) for s in x.shape)
    args = pool_args(op, shape, kernel_size, stride, padding, dilation, ceil_mode, count_include_pad,
                     divisor_override, return_indices)
    batched = x.ndim == nd + 2
    if not op.startswith("max"):
        return _pool(x, nd, False, list(_pool2d_axes(*args.key)), batched, x.dtype)
    if any(d != 1 for d in args.key[5]):
        # The chunked path pools contiguous windows; a dilated window skips elements.
        raise NotImplementedError(f"adapool.dask.{op}(): dilation > 1 is not supported on dask arrays "
                                  f"(got dilation={args.key[5]}); use the NumPy function on each in-memory block")
    values, indices = _pool(x, nd, True, list(_max_pool_axes(*args.key)), batched, x.dtype)
    return (values, indices) if return_indices else values


@_bfloat16_in_float32
def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True):
    """:func:`adapool.avg_pool1d` of a dask array, lazily (a dask array)."""
    return _strided("avg_pool1d", input, kernel_size, stride, padding, 1, ceil_mode, count_include_pad)


@_bfloat16_in_float32
def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override=None):
    """:func:`adapool.avg_pool2d` of a dask array, lazily (a dask array)."""
    return _strided("avg_pool2d", input, kernel_size, stride, padding, 1, ceil_mode, count_include_pad,
                    divisor_override)


@_bfloat16_in_float32
def avg_pool3d(input, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override=None):
    """:func:`adapool.avg_pool3d` of a dask array, lazily (a dask array)."""
    return _strided("avg_pool3d", input, kernel_size, stride, padding, 1, ceil_mode, count_include_pad,
                    divisor_override)


@_bfloat16_in_float32
def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """:func:`adapool.max_pool1d` of a dask array, lazily (see adaptive_max_pool1d); dilation 1
    only."""
    return _strided("max_pool1d", input, kernel_size, stride, padding, dilation, ceil_mode,
                    return_indices=return_indices)


@_bfloat16_in_float32
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """:func:`adapool.max_pool2d` of a dask array, lazily (see adaptive_max_pool1d); dilation 1
    only."""
    return _strided("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode,
                    return_indices=return_indices)


@_bfloat16_in_float32
def max_pool3d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """:func:`adapool.max_pool3d` of a dask array, lazily (see adaptive_max_pool1d); dilation 1
    only."""
    return _strided("max_pool3d", input, kernel_size, stride, padding, dilation, ceil_mode,
                    return_indices=return_indices)


def lp_pool1d(input, norm_type, kernel_size, stride=None, ceil_mode: bool = False):
    """:func:`adapool.lp_pool1d` of a dask array, lazily: torch's composition of powers and
    :func:`avg_pool1d` (or :func:`max_pool1d` for p = ±inf) on the dask array."""
    from ._lp import lp_on_dask
    return lp_on_dask(1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input, norm_type, kernel_size, stride=None, ceil_mode: bool = False):
    """:func:`adapool.lp_pool2d` of a dask array, lazily (see lp_pool1d)."""
    from ._lp import lp_on_dask
    return lp_on_dask(2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input, norm_type, kernel_size, stride=None, ceil_mode: bool = False):
    """:func:`adapool.lp_pool3d` of a dask array, lazily (see lp_pool1d)."""
    from ._lp import lp_on_dask
    return lp_on_dask(3, input, norm_type, kernel_size, stride, ceil_mode)


# ---- max_unpool: whole planes ----------------------------------------------------------------------

def _unpool_block(x, ind, *, nd: int, kernel_size, stride, padding, sizes):
    return getattr(_unpool, f"max_unpool{nd}d")(x, ind, kernel_size, stride, padding, output_size=sizes)


def _max_unpool(nd: int, input, indices, kernel_size, stride, padding, output_size):
    """An index points anywhere in its (n, c) plane of the output, so each task holds whole
    planes: the spatial axes are rechunked to one chunk each (chunks along N and C stay), and
    the indices get the input's chunks."""
    name = f"max_unpool{nd}d"
    x = _check_input(input, name)
    ind = indices if isinstance(indices, da.Array) else da.asarray(np.asarray(indices))
    shape = tuple(int(s) for s in x.shape)
    sizes, step, pad = _unpool._output_size(name, nd, shape, kernel_size, stride, padding, output_size)
    _unpool._check(nd, shape, np.broadcast_to(np.zeros((), ind.dtype), tuple(int(s) for s in ind.shape)),
                   sizes, step, pad)
    whole = x.chunks[:-nd] + tuple((int(s),) for s in shape[-nd:])
    x, ind = x.rechunk(whole), ind.rechunk(whole)
    return da.map_blocks(_unpool_block, x, ind, nd=nd, kernel_size=kernel_size, stride=stride, padding=padding,
                         sizes=sizes, dtype=x.dtype, chunks=x.chunks[:-nd] + tuple((s,) for s in sizes),
                         meta=_meta(x.ndim, x.dtype))


@_bfloat16_in_float32
def max_unpool1d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """:func:`adapool.max_unpool1d` of a dask array (``indices`` a dask or NumPy array of its
    shape), lazily. Each task unpools whole planes: the spatial axis is rechunked to one chunk
    (chunks along N and C are kept). An index outside its plane raises when computed, naming
    the last bad index of its chunk."""
    return _max_unpool(1, input, indices, kernel_size, stride, padding, output_size)


@_bfloat16_in_float32
def max_unpool2d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """:func:`adapool.max_unpool2d` of a dask array, lazily (see max_unpool1d: the spatial axes
    are rechunked to whole planes)."""
    return _max_unpool(2, input, indices, kernel_size, stride, padding, output_size)


@_bfloat16_in_float32
def max_unpool3d(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    """:func:`adapool.max_unpool3d` of a dask array, lazily (see max_unpool1d: the spatial axes
    are rechunked to whole planes)."""
    return _max_unpool(3, input, indices, kernel_size, stride, padding, output_size)


# ---- fractional max pooling: whole planes, each with its own samples --------------------------------

def _fractional_block(block, *, nd: int, kernel: tuple, out: tuple, samples: np.ndarray, return_indices: bool,
                      block_info=None):
    """One block of whole planes, with its (n, c) rows of the samples. With indices, values and
    indices come back together as (value, index) pairs (float64 holds every value exactly)."""
    (n0, n1), (c0, c1) = block_info[0]["array-location"][:2]
    result = _fractional._fractional_forward(nd, block, kernel, out, None, return_indices,
                                             samples[n0:n1, c0:c1], None)
    if not return_indices:
        return result
    pairs = np.empty(result[0].shape, _PART)
    pairs["v"], pairs["i"] = result
    return pairs


def _fractional_max_pool(nd: int, input, kernel_size, output_size, output_ratio, return_indices, samples, rng):
    """Every plane's windows depend on the whole plane and on its own samples, so each task holds
    whole planes (the spatial axes rechunked to one chunk each, chunks along N and C kept) and
    gets its (n, c) rows of the samples, drawn here once for the whole array when not given."""
    name = f"fractional_max_pool{nd}d"
    x = _check_input(input, name)
    bf16 = x.dtype == BFLOAT16
    # torch's checks, on a stand-in of the whole array (bfloat16: as the NumPy op runs them, on
    # float32, with the samples widened and drawn as bfloat16 values)
    stand_in = np.broadcast_to(np.zeros((), np.float32 if bf16 else x.dtype), x.shape)
    if bf16 and samples is not None:
        samples = np.asarray(samples)
        if samples.dtype != BFLOAT16:
            raise TypeError("Expect _random_samples to have the same dtype as input")
        samples = to_float32(samples)
    kernel, out, s, n, c, batched, result_shape = _fractional.checked_call(
        nd, stand_in, kernel_size, output_size, output_ratio, samples, rng, bf16)
    s = np.ascontiguousarray(to_bfloat16(s) if bf16 else s)[:n]   # exact: they are bfloat16 values
    if not batched:
        x = x[None]
    x = x.rechunk(x.chunks[:2] + tuple((int(d),) for d in x.shape[2:]))
    dtype = _PART if return_indices else x.dtype
    y = x.map_blocks(_fractional_block, nd=nd, kernel=kernel, out=out, samples=s, return_indices=bool(return_indices),
                     dtype=dtype, chunks=x.chunks[:2] + tuple((o,) for o in out), meta=_meta(x.ndim, dtype))
    result = (y["v"].astype(x.dtype), y["i"]) if return_indices else y
    if not batched:
        result = tuple(r[0] for r in result) if return_indices else result[0]
    return result


def fractional_max_pool2d(input, kernel_size, output_size=None, output_ratio=None, return_indices: bool = False,
                          _random_samples=None, *, rng=None):
    """:func:`adapool.fractional_max_pool2d` of a dask array, lazily (values, or values and
    indices). Each task pools whole planes: the spatial axes are rechunked to one chunk each
    (chunks along N and C are kept), and each task gets its (n, c) rows of ``_random_samples``
    (a NumPy array), or of the samples drawn from ``rng`` at call time as the NumPy function
    draws them (so the same generator state gives the same result)."""
    return _fractional_max_pool(2, input, kernel_size, output_size, output_ratio, return_indices,
                                _random_samples, rng)


def fractional_max_pool3d(input, kernel_size, output_size=None, output_ratio=None, return_indices: bool = False,
                          _random_samples=None, *, rng=None):
    """:func:`adapool.fractional_max_pool3d` of a dask array, lazily (see fractional_max_pool2d:
    whole planes per task, the samples split by the N and C chunks)."""
    return _fractional_max_pool(3, input, kernel_size, output_size, output_ratio, return_indices,
                                _random_samples, rng)
