"""Argument checks shared by every op. All error messages live in the Python layer, worded as
torch words them where torch has a message, because the kernels trust what they are given."""
from __future__ import annotations

import operator
from typing import NamedTuple

import numpy as np

from ._windows import INT64_SAFE, pool_output_size

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


# ---- avg_pool2d ------------------------------------------------------------------------------

class Pool2dArgs(NamedTuple):
    out_size: tuple
    key: tuple   # (in_hw, out_hw, kernel, stride, padding, count_include_pad, divisor_override)


def _pair(v, name: str, what: str, pos: int, message: str, allow_empty: bool = False) -> tuple | None:
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name}(): argument '{what}' (position {pos}) must be tuple of ints, not bool")
    if isinstance(v, (int, np.integer)):
        return (operator.index(v),) * 2
    if not isinstance(v, (tuple, list)):
        raise TypeError(f"{name}(): argument '{what}' (position {pos}) must be tuple of ints, not {type(v).__name__}")
    for i, e in enumerate(v):
        if isinstance(e, (bool, np.bool_)) or not isinstance(e, (int, np.integer)):
            raise TypeError(
                f"{name}(): argument '{what}' (position {pos}) must be tuple of ints, but found "
                f"element of type {type(e).__name__} at pos {i}"
            )
    if len(v) == 0 and allow_empty:
        return None
    if len(v) not in (1, 2):
        raise ValueError(message)
    return (operator.index(v[0]),) * 2 if len(v) == 1 else (operator.index(v[0]), operator.index(v[1]))


def _trunc_half(k: int) -> int:
    return int(k / 2)  # C++ integer division truncates towards zero


def pool2d_args(shape: tuple, kernel_size, stride, padding, ceil_mode, count_include_pad,
                divisor_override) -> Pool2dArgs:
    """Validate avg_pool2d's arguments against an input shape, in torch's order and words."""
    name = "avg_pool2d"
    kernel = _pair(kernel_size, name, "kernel_size", 2,
                   "avg_pool2d: kernel_size must either be a single int, or a tuple of two ints")
    step = kernel if stride is None else _pair(
        stride, name, "stride", 3,
        "avg_pool2d: stride must either be omitted, a single int, or a tuple of two ints", allow_empty=True)
    step = kernel if step is None else step
    pad = _pair(padding, name, "padding", 4, "avg_pool2d: padding must either be a single int, or a tuple of two ints")
    if divisor_override is not None:
        if isinstance(divisor_override, (bool, np.bool_)) or not isinstance(divisor_override, (int, np.integer)):
            raise TypeError(f"avg_pool2d(): argument 'divisor_override' must be int, not {type(divisor_override).__name__}")
        divisor_override = operator.index(divisor_override)
        if divisor_override == 0:
            raise ValueError("divisor must be not zero")
        if not -2**63 <= divisor_override < 2**63:
            raise ValueError(f"avg_pool2d: divisor_override must fit in int64, got {divisor_override}")
    for what, flag in (("ceil_mode", ceil_mode), ("count_include_pad", count_include_pad)):
        if not isinstance(flag, (bool, np.bool_)):   # torch takes bools only, not 0/1 or strings
            raise TypeError(f"{name}(): argument '{what}' must be bool, not {type(flag).__name__}")
    ceil_mode, count_include_pad = bool(ceil_mode), bool(count_include_pad)
    if len(shape) not in (3, 4) or 0 in shape[-3:]:
        raise ValueError(
            "Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for input, "
            f"but got:{list(shape)}"
        )
    for k, s, p in zip(kernel, step, pad):   # torch's pooling_output_shape, H then W
        if s == 0:
            raise ValueError("stride should not be zero")
        if p < 0:
            raise ValueError(f"pad must be non-negative, but got pad: {p}")
        if p > _trunc_half(k):
            raise ValueError(
                f"pad should be at most half of effective kernel size, but got pad={p}, "
                f"kernel_size={k} and dilation=1"
            )
    if kernel[0] <= 0 or kernel[1] <= 0:
        raise ValueError(f"kernel size should be greater than zero, but got kH: {kernel[0]} kW: {kernel[1]}")
    if step[0] <= 0 or step[1] <= 0:
        raise ValueError(f"stride should be greater than zero, but got dH: {step[0]} dW: {step[1]}")
    in_hw = tuple(shape[-2:])
    # Window starts (o * stride - pad), ends and divisors (kH * kW at most) are int64 in the
    # kernels: refuse sizes whose arithmetic could overflow rather than pool wrong windows.
    if any(i + 2 * p + s + k >= INT64_SAFE for i, k, s, p in zip(in_hw, kernel, step, pad)) \
            or kernel[0] * kernel[1] >= INT64_SAFE:
        raise ValueError(
            f"avg_pool2d: kernel_size {kernel}, stride {step} and padding {pad} are too large for "
            f"an input of size {in_hw} (window arithmetic would overflow int64)"
        )
    out_hw = tuple(pool_output_size(i, k, s, p, ceil_mode) for i, k, s, p in zip(in_hw, kernel, step, pad))
    if out_hw[0] < 1 or out_hw[1] < 1:
        c = shape[-3]
        raise ValueError(
            f"Given input size: ({c}x{in_hw[0]}x{in_hw[1]}). Calculated output size: "
            f"({c}x{out_hw[0]}x{out_hw[1]}). Output size is too small"
        )
    return Pool2dArgs(out_hw, (in_hw, out_hw, kernel, step, pad, count_include_pad, divisor_override))


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
    if _self_overlapping(out):
        raise ValueError(f"{name}(): out has elements that overlap each other (a zero or too small stride)")
    return out


def _self_overlapping(a: np.ndarray) -> bool:
    """True unless the axes, sorted by stride, each step past the whole extent of the smaller
    ones: every layout made by slicing or transposing an array passes, broadcast views fail."""
    if a.size == 0:   # nothing is written (numpy gives empty arrays zero strides)
        return False
    dims = sorted((abs(s), n) for s, n in zip(a.strides, a.shape) if n > 1)
    extent = a.itemsize
    for stride, n in dims:
        if stride < extent:
            return True
        extent = stride * n
    return False
