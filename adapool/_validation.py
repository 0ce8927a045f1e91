"""Argument checks shared by every op. All error messages live in the Python layer, worded as
torch words them where torch has a message, because the kernels trust what they are given."""
from __future__ import annotations

import math
import operator
from typing import NamedTuple

import numpy as np

from ._dispatch import kernels as _kernels
from ._windows import INT64_SAFE
from ._windows import _output_length as _windows_output_length

# The dtypes the kernels read, native byte order (float16 reaches them as its bit pattern).
FLOAT_DTYPES = frozenset([np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)])


def as_float_array(input, name: str) -> np.ndarray:
    """``input`` as an ndarray the kernels can read: float16/32/64, native byte order,
    aligned (numpy's flag covers the data pointer and every stride). Copies only when one of
    those fails."""
    x = input if type(input) is np.ndarray else np.asarray(input)
    dt = x.dtype
    if dt not in FLOAT_DTYPES:  # fast path: one hash lookup for the common case
        if dt.kind != "f" or dt.itemsize not in (2, 4, 8):
            raise TypeError(
                f'"{name}" not implemented for \'{dt}\' (adapool supports float16, float32 and float64)'
            )
        # Non-native byte order: the right numbers, never garbage (keeps the layout).
        x = x.astype(dt.newbyteorder("="), order="K")
    if not x.flags.aligned:
        x = np.array(x, order="K", copy=True)
    return x


def _rank_message(name: str, nd: int, shape) -> str:
    if nd == 1:  # torch's 1d ops check the rank with its generic argument checker
        return (f"Expected 2 to 3 dimensions, but got {len(shape)}-dimensional tensor for "
                f"argument #1 'self' (while checking arguments for {name})")
    got = "but got: " if "max" in name else "but got "
    return f"{name}(): Expected {nd + 1}D or {nd + 2}D tensor, {got}{list(shape)}"


def check_output_size_rank(output_size, ndim: int, nd: int) -> None:
    """torch's Python wrappers of the 2-d and 3-d adaptive pools fill ``None`` entries from the
    input's trailing sizes before anything else, and refuse a sequence at least as long as the
    input's rank (``_list_with_default``): that message comes before the rank check's."""
    if nd > 1 and isinstance(output_size, (tuple, list)) and ndim <= len(output_size):
        raise ValueError(f"Input dimension should be at least {len(output_size) + 1}")


def check_rank(x: np.ndarray, nd: int, name: str, channels_nonempty: bool = False) -> bool:
    """Check (C, *spatial) or (N, C, *spatial); True when batched.

    The spatial dims must be non-empty; with ``channels_nonempty`` every dim after the first
    must be (torch's max pools and adaptive_avg_pool3d reject C = 0 in batched input).
    """
    if x.ndim != nd + 1 and x.ndim != nd + 2:
        raise ValueError(_rank_message(name, nd, x.shape))
    first = 1 if channels_nonempty else x.ndim - nd
    if 0 in x.shape[first:]:
        dim = first + x.shape[first:].index(0)
        raise ValueError(
            f"{name}(): Expected input to have non-zero size for non-batch dimensions, "
            f"but input has sizes {list(x.shape)} with dimension {dim} being empty"
        )
    return x.ndim == nd + 2


def _int_arg(v, name: str, what: str, pos: int) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(
            f"{name}(): argument '{what}' must be int or tuple of ints, but found element of "
            f"type {type(v).__name__} at pos {pos}"
        )
    return operator.index(v)


def adaptive_output_size(output_size, spatial: tuple, name: str, is_max: bool = False,
                         input_shape: tuple = ()) -> tuple:
    """Torch's reading of ``output_size``: an int for every axis, or one entry per axis where
    ``None`` keeps that input size. Negative entries are an error; 0 gives an empty output.
    ``input_shape`` is only read to word the max pools' negative-size error."""
    nd = len(spatial)
    if type(output_size) is int and output_size >= 0:  # the common case, checked cheaply
        return (output_size,) * nd
    if isinstance(output_size, (int, np.integer)) and not isinstance(output_size, (bool, np.bool_)):
        sizes = (operator.index(output_size),) * nd
    elif isinstance(output_size, (tuple, list)):
        if len(output_size) != nd:
            if nd == 1:
                raise ValueError(f"{name}() argument 'output_size' should contain one int (got {len(output_size)})")
            if is_max:
                raise ValueError(f"{name}(): internal error: output_size.size() must be {nd}")
            raise ValueError(f"{name}: output_size must be {nd}")
        if nd == 1 and output_size[0] is None:  # torch's 1d ops take no None
            raise TypeError(
                f"{name}(): argument 'output_size' (position 2) must be tuple of ints, but found "
                "element of type NoneType at pos 0"
            )
        sizes = tuple(
            spatial[i] if v is None else _int_arg(v, name, "output_size", i)
            for i, v in enumerate(output_size)
        )
    else:
        raise TypeError(
            f"{name}(): argument 'output_size' must be int or tuple of ints, "
            f"but got {type(output_size).__name__}"
        )
    if any(s < 0 for s in sizes):
        if is_max:
            first = next(s for s in sizes if s < 0)
            batch_shape = tuple(input_shape[:len(input_shape) - nd])
            raise ValueError(f"Trying to create tensor with negative dimension {first}: {list(batch_shape + sizes)}")
        raise ValueError(
            f"{name}: elements of output_size must be greater than or equal to 0 but received "
            "{" + ", ".join(str(s) for s in sizes) + "}"
        )
    return sizes


# ---- backward arguments ----------------------------------------------------------------------

def input_shape_arg(input_shape, nd: int, name: str) -> tuple:
    """The forward input's shape: nd+1 or nd+2 non-negative ints, non-empty spatial dims."""
    if not isinstance(input_shape, (tuple, list)):
        raise TypeError(f"{name}(): input_shape must be a tuple of ints, got {type(input_shape).__name__}")
    if type(input_shape) is tuple and all(type(v) is int for v in input_shape):
        shape = input_shape   # x.shape, the common case: the per-element conversion cost 3 us a call
    else:
        shape = tuple(_int_arg(v, name, "input_shape", i) for i, v in enumerate(input_shape))
    if len(shape) not in (nd + 1, nd + 2):
        raise ValueError(f"{name}(): input_shape must have {nd + 1} or {nd + 2} dimensions, got {list(shape)}")
    if any(s < 0 for s in shape):
        raise ValueError(f"{name}(): input_shape must not be negative, got {list(shape)}")
    if 0 in shape[-nd:]:
        raise ValueError(f"{name}(): input_shape has an empty pooled dimension: {list(shape)}")
    return shape


def check_grad_output(go: np.ndarray, expected: tuple, name: str) -> None:
    if go.shape != tuple(expected):
        raise ValueError(
            f"{name}(): grad_output has shape {list(go.shape)}, but the forward pass over this "
            f"input gives {list(expected)}"
        )


def check_indices(indices, shape: tuple, name: str) -> np.ndarray:
    """int64 indices of grad_output's shape, native and aligned. Their values are checked by
    the kernel, which never writes outside the plane."""
    ind = indices if type(indices) is np.ndarray else np.asarray(indices)
    if ind.dtype.kind not in "iu" or ind.dtype.itemsize != 8 or ind.dtype.kind == "u":
        raise TypeError(f"{name}(): indices must be int64 (torch.long), got {ind.dtype}")
    if not ind.dtype.isnative or not ind.flags.aligned:
        ind = ind.astype(np.int64)
    if ind.shape != shape:
        raise ValueError(f"{name}(): indices have shape {list(ind.shape)}, grad_output has {list(shape)}")
    return ind


# ---- strided pooling: max_pool1d/2d/3d, avg_pool1d/2d/3d ---------------------------------------

class PoolArgs(NamedTuple):
    out_size: tuple
    # avg: (in_sizes, out_sizes, kernel, stride, padding, count_include_pad, divisor_override)
    # max: (in_sizes, out_sizes, kernel, stride, padding, dilation)
    key: tuple


Pool2dArgs = PoolArgs   # (the name avg_pool2d's callers know)

_WORDS = {1: "one", 2: "two", 3: "three"}


def _type_name(v) -> str:
    return type(v).__name__


def _int_tuple(v, fname: str, what: str, pos: int, nd: int) -> tuple:
    """An int-or-ints argument as torch's argument parser reads it: an int (not a bool) or a
    tuple/list of ints; the tuple's length is checked by the caller. The wording of a wrong type
    follows torch's parser for positional arguments (a float after the first element fails to
    unpack; other elements are named)."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return (operator.index(v),)
    if not isinstance(v, (tuple, list)):
        raise TypeError(f"{fname}(): argument '{what}' (position {pos}) must be tuple of ints, not {_type_name(v)}")
    for i, e in enumerate(v):
        if isinstance(e, (bool, np.bool_)) or not isinstance(e, (int, np.integer)):
            if i > 0 and isinstance(e, (float, np.floating)):   # past the first: the parser's unpacking wording
                raise TypeError(f"{fname}(): argument '{what}' failed to unpack the object at pos {i + 1} with "
                                f"error \"type must be tuple of ints,but got {_type_name(e)}\"")
            raise TypeError(f"{fname}(): argument '{what}' (position {pos}) must be tuple of ints, "
                            f"but found element of type {_type_name(e)} at pos {i}")
    return tuple(operator.index(e) for e in v)


def _bool_arg(v, fname: str, what: str, pos: int | None) -> bool:
    if not isinstance(v, (bool, np.bool_)):   # torch takes bools only, not 0/1 or strings
        where = "" if pos is None else f" (position {pos})"
        raise TypeError(f"{fname}(): argument '{what}'{where} must be bool, not {_type_name(v)}")
    return bool(v)


def _trunc_half(k: int) -> int:
    return int(k / 2) if abs(k) < 2**53 else (abs(k) // 2) * (1 if k >= 0 else -1)  # C++ division


def _length_message(op: str, what: str, nd: int) -> str:
    """torch's message for a kernel_size/stride/padding/dilation tuple of the wrong length."""
    if op == "max_pool1d":
        allowed = {"kernel_size": "an int, list of ints or tuple of ints",
                   "stride": "None, an int, list of ints, or tuple of ints",
                   "padding": "an int, list of ints, or tuple of ints",
                   "dilation": "an int, list of ints or tuple of ints"}[what]
        return f"max_pool1d() {what} must be {allowed} of size 1 but got size {{}}"
    either = "either " if op.startswith("max") or op == "avg_pool2d" else ""
    if what == "dilation":
        return f"{op}: dilation must be either a single int, or a tuple of {_WORDS[nd]} ints"
    if what == "stride":
        return f"{op}: stride must {either}be omitted, a single int, or a tuple of {_WORDS[nd]} ints"
    return f"{op}: {what} must {either}be a single int, or a tuple of {_WORDS[nd]} ints"


def _per_axis(v: tuple, nd: int, op: str, what: str, fname: str, via_parser: bool,
              allow_empty: bool = False) -> tuple | None:
    if allow_empty and len(v) == 0:
        return None
    if via_parser:   # torch's 1-d signatures take exactly one int (IntArrayRef[1])
        if len(v) != 1:
            raise ValueError(f"{op}() argument '{what}' should contain one int (got {len(v)})")
        return v
    if len(v) == 1:
        return v * nd
    if len(v) != nd:
        raise ValueError(_length_message(op, what, nd).format(len(v)))
    return v


def _output_length(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """torch's pooling_output_shape, with its checks (stride first, then padding)."""
    if s == 0:
        raise ValueError("stride should not be zero")
    if p < 0:
        raise ValueError(f"pad must be non-negative, but got pad: {p}")
    if p > _trunc_half((k - 1) * d + 1):
        raise ValueError(f"pad should be at most half of effective kernel size, but got pad={p}, "
                         f"kernel_size={k} and dilation={d}")
    return _windows_output_length(size, k, s, p, d, ceil_mode)


_AXES = {2: ("H", "W"), 3: ("T", "H", "W")}


def pool_args(op: str, shape: tuple, kernel_size, stride, padding, dilation=1, ceil_mode=False,
              count_include_pad=True, divisor_override=None, return_indices=False) -> PoolArgs:
    """Validate a strided pooling op's arguments against an input shape, in torch's order and
    words (torch.nn.functional's op of that name, on CPU)."""
    nd = int(op[-2])
    is_max = op.startswith("max")
    fname = op + "_with_indices" if is_max and return_indices else op
    # torch's own 1-d max pool (no indices) has its own checks; the other 1-d ops run the 2-d op
    # on an (..., 1, L) view after torch's argument parser has checked each tuple's length.
    own_1d = op == "max_pool1d" and not return_indices
    via_parser = nd == 1 and not own_1d
    kernel = _int_tuple(kernel_size, fname, "kernel_size", 2, nd)
    step = None if stride is None else _int_tuple(stride, fname, "stride", 3, nd)
    pad = _int_tuple(padding, fname, "padding", 4, nd)
    dil = _int_tuple(dilation, fname, "dilation", 5, nd) if is_max else (1,)
    if via_parser:   # the parser checks every argument before the op runs
        kernel = _per_axis(kernel, nd, op, "kernel_size", fname, True)
        step = None if step is None else _per_axis(step, nd, op, "stride", fname, True, allow_empty=True)
        pad = _per_axis(pad, nd, op, "padding", fname, True)
        dil = _per_axis(dil, nd, op, "dilation", fname, True)
    ceil_mode = _bool_arg(ceil_mode, fname, "ceil_mode", 6 if is_max else None)
    if not is_max:
        count_include_pad = _bool_arg(count_include_pad, fname, "count_include_pad", None)
        if divisor_override is not None:
            if isinstance(divisor_override, (bool, np.bool_)) or not isinstance(divisor_override, (int, np.integer)):
                raise TypeError(f"{op}(): argument 'divisor_override' must be int, not {_type_name(divisor_override)}")
            divisor_override = operator.index(divisor_override)
    if own_1d:
        return _max_pool1d_args(shape, kernel, step, pad, dil, ceil_mode)
    if via_parser:
        # torch.nn.functional's 1-d ops check the rank themselves, then pool an (..., 1, L) view
        if len(shape) not in (2, 3):
            raise ValueError(f"Expected 2 to 3 dimensions, but got {len(shape)}-dimensional tensor for "
                             f"argument #1 'self' (while checking arguments for {op})")
        view = tuple(shape[:-1]) + (1, shape[-1])
        args = _pool_nd_args(op, 2, view, (1,) + kernel, None if step is None else (1,) + step,
                             (0,) + pad, (1,) + dil, ceil_mode, divisor_override)
        return _keyed(args, 1, is_max, count_include_pad, divisor_override)
    kernel = _per_axis(kernel, nd, op, "kernel_size", fname, False)
    step = None if step is None else _per_axis(step, nd, op, "stride", fname, False, allow_empty=True)
    pad = _per_axis(pad, nd, op, "padding", fname, False)
    dil = _per_axis(dil, nd, op, "dilation", fname, False)
    _check_divisor(op, divisor_override)
    if len(shape) not in (nd + 1, nd + 2):
        if op == "avg_pool2d":
            raise ValueError("Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for "
                             f"input, but got:{list(shape)}")
        raise ValueError(f"non-empty {nd + 1}D or {nd + 2}D (batch mode) tensor expected for input")
    args = _pool_nd_args(op, nd, tuple(shape), kernel, step, pad, dil, ceil_mode, divisor_override)
    return _keyed(args, nd, is_max, count_include_pad, divisor_override)


def _keyed(args: tuple, nd: int, is_max: bool, count_include_pad: bool, divisor_override) -> PoolArgs:
    """PoolArgs for the op's own ``nd`` axes from the (possibly 2-d view's) checked arguments."""
    in_sizes, out_sizes, kernel, step, pad, dil = (tuple(a[-nd:]) for a in args)
    if is_max:
        return PoolArgs(out_sizes, (in_sizes, out_sizes, kernel, step, pad, dil))
    return PoolArgs(out_sizes, (in_sizes, out_sizes, kernel, step, pad, count_include_pad, divisor_override))


def _check_divisor(op: str, divisor_override) -> None:
    if divisor_override == 0:
        raise ValueError("divisor must be not zero")
    if divisor_override is not None and not -2**63 <= divisor_override < 2**63:
        raise ValueError(f"{op}: divisor_override must fit in int64, got {divisor_override}")


def _pool_nd_args(op, nd, shape, kernel, step, pad, dil, ceil_mode, divisor_override):
    """torch's checks for its 2-d and 3-d ops (the 1-d ops arrive as an (..., 1, L) view), in its
    order: the divisor, each axis's output length, then the shape check."""
    step = kernel if step is None else step
    in_sizes = tuple(shape[-nd:])
    out_sizes = tuple(_output_length(i, k, s, p, d, ceil_mode)
                      for i, k, s, p, d in zip(in_sizes, kernel, step, pad, dil))
    axes = _AXES[nd]
    if min(kernel) <= 0:
        raise ValueError("kernel size should be greater than zero, but got "
                         + " ".join(f"k{a}: {k}" for a, k in zip(axes, kernel)))
    if min(step) <= 0:
        raise ValueError("stride should be greater than zero, but got "
                         + " ".join(f"d{a}: {s}" for a, s in zip(axes, step)))
    if min(dil) <= 0:
        raise ValueError("dilation should be greater than zero, but got "
                         + " ".join(f"dilation{a}: {d}" for a, d in zip(axes, dil)))
    if 0 in shape[-nd - 1:]:
        if nd == 2:
            raise ValueError("Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for "
                             f"input, but got:{list(shape)}")
        where = "max_pool3d_with_indices_out_cpu_template" if op.startswith("max") else "avg_pool3d"
        # torch's message names dimension 0 whichever dimension is empty; it is kept word for word
        raise ValueError(f"{where}(): Expected input's non-batch dimensions to have positive length, but "
                         f"input has a shape of {list(shape)} and non-batch dimension 0 has length zero!")
    if op == "avg_pool3d" and any(i < k for i, k in zip(in_sizes, kernel)):
        raise ValueError(f"input image (T: {in_sizes[0]} H: {in_sizes[1]} W: {in_sizes[2]}) smaller than "
                         f"kernel size (kT: {kernel[0]} kH: {kernel[1]} kW: {kernel[2]})")
    if any(p > _trunc_half(k) for k, p in zip(kernel, pad)):
        if nd == 2:
            raise ValueError(f"pad should be smaller than or equal to half of kernel size, but got padW = "
                             f"{pad[1]}, padH = {pad[0]}, kW = {kernel[1]}, kH = {kernel[0]}")
        raise ValueError(f"pad should be smaller than or equal to half of kernel size, but got kT: {kernel[0]} "
                         f"kW: {kernel[2]} kH: {kernel[1]} padT: {pad[0]} padW: {pad[2]} padH: {pad[1]}")
    # Window starts (o * stride - pad), ends and divisors are int64 in the kernels: refuse sizes
    # whose arithmetic could overflow rather than pool wrong windows (the checks above are on
    # Python ints, which cannot overflow).
    if any(i + 2 * p + s + k * d >= INT64_SAFE for i, k, s, p, d in zip(in_sizes, kernel, step, pad, dil)) \
            or math.prod(kernel) >= INT64_SAFE:
        raise ValueError(
            f"{op}: kernel_size {kernel}, stride {step} and padding {pad} are too large for an input "
            f"of size {in_sizes} (window arithmetic would overflow int64)"
        )
    if min(out_sizes) < 1:
        c = shape[-nd - 1]
        given = "x".join(str(v) for v in (c,) + in_sizes)
        calculated = "x".join(str(v) for v in (c,) + out_sizes)
        raise ValueError(f"Given input size: ({given}). Calculated output size: ({calculated}). "
                         "Output size is too small")
    return in_sizes, out_sizes, kernel, step, pad, dil


def _max_pool1d_args(shape, kernel, step, pad, dil, ceil_mode) -> PoolArgs:
    """torch's own checks for max_pool1d without indices (aten's check_max_pool1d), in order."""
    if len(shape) not in (2, 3) or 0 in shape[-2:]:
        raise ValueError("max_pool1d: Expected 2D or 3D (batch mode) tensor with optional 0 dim batch size "
                         f"for input, but got:{list(shape)}")
    for what, v in (("kernel_size", kernel), ("stride", step), ("padding", pad), ("dilation", dil)):
        if v is not None and len(v) != 1 and not (what == "stride" and len(v) == 0):
            raise ValueError(_length_message("max_pool1d", what, 1).format(len(v)))
    (k,), (p,), (d,) = kernel, pad, dil
    s = k if not step else step[0]
    if k <= 0:
        raise ValueError(f"max_pool1d() kernel_size must be greater than zero, but got {k}")
    if s <= 0:
        raise ValueError(f"max_pool1d() stride must be greater than zero, but got {s}")
    if p < 0:
        raise ValueError(f"max_pool1d() padding must be non-negative, but got {p}")
    if p > k // 2:
        raise ValueError(f"max_pool1d() padding should be at most half of kernel size, but got padding={p} "
                         f"and kernel_size={k}")
    if d <= 0:
        raise ValueError(f"max_pool1d() dilation must be greater than zero, but got {d}")
    if abs(shape[-1]) + 2 * p + s + k * d >= INT64_SAFE:
        raise ValueError(f"max_pool1d: kernel_size {kernel}, stride {(s,)} and padding {pad} are too large for "
                         f"an input of size {(shape[-1],)} (window arithmetic would overflow int64)")
    out = _output_length(shape[-1], k, s, p, d, ceil_mode)
    if out <= 0:
        raise ValueError(f"max_pool1d() Invalid computed output size: {out}")
    return PoolArgs((out,), ((shape[-1],), (out,), (k,), (s,), (p,), (d,)))


def pool2d_args(shape: tuple, kernel_size, stride, padding, ceil_mode, count_include_pad,
                divisor_override) -> PoolArgs:
    """avg_pool2d's arguments (see pool_args)."""
    return pool_args("avg_pool2d", shape, kernel_size, stride, padding, 1, ceil_mode, count_include_pad,
                     divisor_override)


def _pair(v, name: str, what: str, pos: int, message: str, allow_empty: bool = False) -> tuple | None:
    """An int or a 1- or 2-sequence of ints as a pair (None for an empty sequence when
    ``allow_empty``); ``message`` for other lengths."""
    t = _int_tuple(v, name, what, pos, 2)
    if len(t) == 0 and allow_empty:
        return None
    if len(t) not in (1, 2):
        raise ValueError(message)
    return t * 2 if len(t) == 1 else t


def check_out(out, shape: tuple, dtype, x: np.ndarray, name: str) -> np.ndarray:
    """A caller's ``out=`` array: an ndarray of the result's shape and dtype, writeable,
    aligned, native byte order, and sharing no memory with the input (the kernels read the
    input while writing the output)."""
    if type(out) is not np.ndarray:
        raise TypeError(f"{name}(): out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"{name}(): out has shape {list(out.shape)}, the result has {list(shape)}")
    if out.dtype != dtype:
        raise TypeError(f"{name}(): out has dtype {out.dtype}, the result has {np.dtype(dtype)}")
    if not out.flags.writeable:
        raise ValueError(f"{name}(): out is read-only")
    if not out.flags.aligned:
        raise ValueError(f"{name}(): out must be aligned")
    if np.may_share_memory(out, x):
        raise ValueError(f"{name}(): out overlaps the input")
    # (its own loop in the kernels module: ~0.05 us, ~1 us as a sort in Python)
    if _kernels.self_overlapping(out):
        raise ValueError(f"{name}(): out has elements that overlap each other (a zero or too small stride)")
    return out
