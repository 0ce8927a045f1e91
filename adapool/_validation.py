"""Argument checks shared by every op. All error messages live in the Python layer, worded as
torch words them where torch has a message, because the kernels trust what they are given."""
from __future__ import annotations

import operator

import numpy as np

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


def check_rank(x: np.ndarray, nd: int, name: str) -> bool:
    """Check (C, *spatial) or (N, C, *spatial) with non-empty spatial dims; True when batched."""
    if x.ndim != nd + 1 and x.ndim != nd + 2:
        raise ValueError(f"{name}(): Expected {nd + 1}D or {nd + 2}D tensor, but got {list(x.shape)}")
    if 0 in x.shape[-nd:]:
        dim = x.ndim - nd + x.shape[-nd:].index(0)
        raise ValueError(
            f"{name}(): Expected input to have non-zero size for non-batch dimensions, "
            f"but input has sizes {list(x.shape)} with dimension {dim} being empty"
        )
    return x.ndim == nd + 2


def _size_element(v, name: str, what: str, pos: int) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(
            f"{name}(): argument '{what}' must be int or tuple of ints, but found element of "
            f"type {type(v).__name__} at pos {pos}"
        )
    return operator.index(v)


def adaptive_output_size(output_size, spatial: tuple, name: str) -> tuple:
    """Torch's reading of ``output_size``: an int for every axis, or one entry per axis where
    ``None`` keeps that input size. Negative entries are an error; 0 gives an empty output."""
    nd = len(spatial)
    if type(output_size) is int and output_size >= 0:  # the common case, checked cheaply
        return (output_size,) * nd
    if isinstance(output_size, (int, np.integer)) and not isinstance(output_size, (bool, np.bool_)):
        sizes = (operator.index(output_size),) * nd
    elif isinstance(output_size, (tuple, list)):
        if len(output_size) != nd:
            raise ValueError(f"{name}: output_size must be {nd}")
        sizes = tuple(
            spatial[i] if v is None else _size_element(v, name, "output_size", i)
            for i, v in enumerate(output_size)
        )
    else:
        raise TypeError(
            f"{name}(): argument 'output_size' must be int or tuple of ints, "
            f"but got {type(output_size).__name__}"
        )
    if any(s < 0 for s in sizes):
        raise ValueError(
            f"{name}: elements of output_size must be greater than or equal to 0 but received "
            "{" + ", ".join(str(s) for s in sizes) + "}"
        )
    return sizes
