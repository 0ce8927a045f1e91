"""Python layer of max_unpool1d/2d/3d and their gradients: torch's argument handling (its
Python side, ``torch.nn.functional._unpool_output_size``, then its C++ checks, in that order and
in their words), the layout, allocation and threads; the scatter and the gather are kernels
(adapool/_unpool.pxi). No loops over data here."""
from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Union

import numpy as np
import numpy.typing as npt

from ._dispatch import kernels as _kernels
from ._pooling import _dense, _empty, _is_dask, _kernel_layout, _nc, _plan, _on_dask
from ._bfloat16 import in_float32, is_bfloat16
from ._validation import _int_tuple, as_float_array, check_grad_output, input_shape_arg

__all__ = ["max_unpool1d", "max_unpool2d", "max_unpool3d",
           "max_unpool1d_backward", "max_unpool2d_backward", "max_unpool3d_backward"]

# torch's names for the dtypes its index check reports (c10's ScalarType names)
_TORCH_DTYPE = {"int8": "Char", "uint8": "Byte", "int16": "Short", "int32": "Int", "uint16": "UInt16",
                "uint32": "UInt32", "uint64": "UInt64", "float16": "Half", "float32": "Float",
                "float64": "Double", "bool": "Bool", "complex64": "ComplexFloat", "complex128": "ComplexDouble"}
_WORDS = {2: "two elements (height, width)", 3: "three elements (depth, height, width)"}


def _ntuple(v, n: int) -> tuple:
    """torch's _single/_pair/_triple: a sequence as it is (any length), anything else n times."""
    return tuple(v) if isinstance(v, (tuple, list, np.ndarray)) else (v,) * n


def _ints(v: tuple, name: str, what: str) -> tuple:
    """Entries of kernel_size, stride or padding as Python ints. torch does arithmetic with
    them (bools count as 0 and 1 there); other types fail in torch at odd places, here at once."""
    for i, e in enumerate(v):
        if not isinstance(e, (int, np.integer)):   # bool is an int, as in torch's arithmetic
            raise TypeError(f"{name}(): argument '{what}' must be int or tuple of ints, but found element "
                            f"of type {type(e).__name__} at pos {i}")
    return tuple(operator.index(e) for e in v)


def _rank_error(nd: int, ndim: int) -> ValueError:
    """torch's C++ rank check; the 1-d ops run as 2-d ones on (..., L, 1), so they count one more."""
    op, lo = ("max_unpooling3d", 4) if nd == 3 else ("max_unpooling2d", 3)
    return ValueError(f"Input to {op} should be a {lo}d or {lo + 1}d Tensor, but got a tensor with "
                      f"{ndim + (nd == 1)} dimensions.")


def _output_size(name: str, nd: int, shape: tuple, kernel_size, stride, padding, output_size):
    """(output spatial sizes, stride, padding) as torch's Python side computes them
    (``_unpool_output_size``): the default ``(in - 1) * stride + kernel - 2 * padding``, or
    ``output_size`` (its last len(kernel) entries when it has two more) within one stride of it."""
    kernel = _ints(_ntuple(kernel_size, nd), name, "kernel_size")
    step = kernel if stride is None else _ints(_ntuple(stride, nd), name, "stride")
    pad = _ints(_ntuple(padding, nd), name, "padding")
    k = len(kernel)
    if k > len(shape):
        raise _rank_error(nd, len(shape))
    if len(step) < k or len(pad) < k:
        # torch's loop indexes stride and padding by the kernel's length: an IndexError there
        raise ValueError(f"tuple index out of range ({name}: stride and padding need as many entries as "
                         f"kernel_size, {k}; got {len(step)} and {len(pad)})")
    default = [(shape[len(shape) - k + d] - 1) * step[d] + kernel[d] - 2 * pad[d] for d in range(k)]
    if output_size is None:
        sizes = default
    else:
        if not hasattr(output_size, "__len__"):
            raise TypeError(f"object of type '{type(output_size).__name__}' has no len()")
        if len(output_size) == k + 2:   # (N, C, *spatial): N and C are ignored, as in torch
            output_size = output_size[2:]
        if len(output_size) != k:
            raise ValueError(f"output_size should be a sequence containing {k} or {k + 2} elements, but it has "
                             f"a length of '{len(output_size)}'")
        for d in range(k):
            lo, hi = default[d] - step[d], default[d] + step[d]
            if not lo < output_size[d] < hi:
                raise ValueError(f'invalid output_size "{output_size}" (dim {d} must be between {lo} and {hi})')
        sizes = output_size
    for d in range(k):
        if sizes[d] < 0:
            raise ValueError("max_unpooling: output_size must contain non-negative spatial dimensions, but got "
                             f"output_size[{d}]={sizes[d]}")
    # torch's argument parser reads the sizes next (the 1-d ops call max_unpool2d)
    sizes = _int_tuple(list(sizes), "max_unpool3d" if nd == 3 else "max_unpool2d", "output_size", 3, nd)
    return sizes, step, pad


def _indices_array(indices) -> np.ndarray:
    ind = indices if type(indices) is np.ndarray else np.asarray(indices)
    if ind.dtype.kind == "i" and ind.dtype.itemsize == 8 and not (ind.dtype.isnative and ind.flags.aligned):
        ind = ind.astype(np.int64)   # the right numbers in the kernels' byte order
    return ind


def _check(nd: int, shape: tuple, ind: np.ndarray, sizes: tuple, step: tuple, pad: tuple) -> None:
    """torch's C++ checks (max_unpooling2d/3d_forward_out_cpu), in its order. The 1-d ops run
    as 2-d ones on (..., L, 1) arrays, so their messages show those shapes."""
    if ind.dtype != np.int64:
        got = "" if nd == 3 else f" but got: {_TORCH_DTYPE.get(ind.dtype.name, ind.dtype.name)}"
        raise TypeError(f"elements in indices should be type int64{got}")
    if len(shape) not in (nd + 1, nd + 2):
        raise _rank_error(nd, len(shape))
    want = 3 if nd == 3 else 2
    sizes = sizes + (1,) * (nd == 1)
    if len(sizes) != want:
        raise ValueError(f"There should be exactly {_WORDS[want]} in output_size, but got "
                         f"{len(sizes)} elements.")
    if nd == 3:
        for what, v in (("stride", step), ("padding", pad)):
            if len(v) != 3:
                raise ValueError(f"There should be exactly {_WORDS[3]} in {what}, but got: "
                                 f"{len(v)} elements.")
    seen, ind_shape = tuple(shape) + (1,) * (nd == 1), ind.shape + (1,) * (nd == 1)
    if ind.shape != tuple(shape):
        raise ValueError(f"Expected shape of indices to be same as that of the input tensor ({list(seen)}) but "
                         f"got indices tensor with shape: {list(ind_shape)}")
    for i in range(1, len(seen)):
        if seen[i] == 0:
            op = "max_unpooling3d" if nd == 3 else "max_unpooling2d"
            raise ValueError(f"{op}_forward_out_cpu(): Expected input to have non-zero size for non-batch "
                             f"dimensions, but got {list(seen)} with dimension {i} being empty.")
    if nd == 3 and min(step) <= 0:
        raise ValueError(f"strides should be greater than zero, but got stride: {list(step)}")


def _invalid_index(nd: int, ind: np.ndarray, sizes: tuple, torch_order_cl: bool) -> ValueError:
    """torch's message for an index outside its plane. torch reports the last bad index its
    loop met; on one thread that is the last in memory order of the layout its kernel runs in
    (channels-last for batched channels-last 2-d input, else C order). Only reached on error."""
    plane = int(np.prod(sizes))
    flat = (np.moveaxis(ind, 1, -1) if torch_order_cl else ind).reshape(-1)
    bad = flat[(flat < 0) | (flat >= plane)]
    size = "x".join(str(s) for s in sizes + (1,) * (nd == 1))
    return ValueError(f"Found an invalid max index: {int(bad[-1])} (output volumes are of size {size})")


def _forward(nd: int, name: str, input, indices, kernel_size, stride, padding, output_size) -> np.ndarray:
    if _is_dask(input):   # lazy, on adapool.dask
        return _on_dask(name, None, input, indices, kernel_size, stride, padding, output_size)
    if is_bfloat16(input):   # widening and rounding back are exact for a copy (NaN stays NaN)
        return in_float32(lambda x: _forward(nd, name, x, indices, kernel_size, stride, padding, output_size), input)
    x = as_float_array(input, name)
    ind = _indices_array(indices)
    sizes, step, pad = _output_size(name, nd, x.shape, kernel_size, stride, padding, output_size)
    _check(nd, x.shape, ind, sizes, step, pad)
    # torch: batched channels-last 2-d input gives a channels-last result (its 1-d and 3-d ops
    # and unbatched input give C order). The kernel reads and writes in one layout.
    channels_last = x.ndim == 4 and nd == 2 and _kernel_layout(x, nd)[1]
    y = _empty(x.shape[:-nd] + sizes, x.dtype, channels_last)
    if y.size == 0:   # nothing to write, and torch checks no index then
        return y
    return _run(_kernels.max_unpool_forward, nd, x, ind, y, sizes, channels_last)


def _backward(nd: int, name: str, grad_output, indices, input_shape, kernel_size, stride, padding,
              output_size) -> np.ndarray:
    if is_bfloat16(grad_output):
        return in_float32(lambda g: _backward(nd, name, g, indices, input_shape, kernel_size, stride, padding,
                                              output_size), grad_output)
    input_shape = input_shape_arg(input_shape, nd, name)
    go = as_float_array(grad_output, name)
    ind = _indices_array(indices)
    sizes, step, pad = _output_size(name, nd, input_shape, kernel_size, stride, padding, output_size)
    _check(nd, input_shape, ind, sizes, step, pad)   # the forward call's errors
    check_grad_output(go, input_shape[:-nd] + sizes, name)
    # The gradient is laid out as the indices are (the forward input's layout, when they came
    # from a max pool of it): channels-last when batched channels-last, else C order.
    channels_last = ind.ndim == nd + 2 and _kernel_layout(ind, nd)[1]
    gi = _empty(input_shape, go.dtype, channels_last)
    if gi.size == 0:
        return gi
    if go.size == 0:   # every index is outside an empty plane
        raise _invalid_index(nd, ind, sizes, channels_last)
    return _run(_kernels.max_unpool_backward, nd, go, ind, gi, sizes, channels_last)


def _run(kernel, nd: int, src: np.ndarray, ind: np.ndarray, dst: np.ndarray, sizes: tuple,
         channels_last: bool) -> np.ndarray:
    """The scatter (forward) or gather (backward) ``kernel`` from ``src`` into ``dst`` at the
    per-plane ``ind``, both read in ``dst``'s layout; the kernel raises IndexError for an index
    outside the plane (nothing is written outside ``dst``), reworded here in torch's terms."""
    sk, ik = _dense(src, nd, channels_last), _dense(ind, nd, channels_last)
    n, c = _nc(dst.shape, nd)
    nthreads, block = _plan(n, c, 1, src.size + dst.size, channels_last)
    try:
        kernel(nd, sk, ik, dst, channels_last, block, nthreads)
    except IndexError:
        raise _invalid_index(nd, ind, sizes, channels_last) from None
    return dst


def _forward_doc(nd: int) -> str:
    dims = {1: "L", 2: "H, W", 3: "D, H, W"}[nd]
    layout = ("Batched channels-last input gives a channels-last result, other input C order"
              if nd == 2 else "C-contiguous, as torch's")
    return f"""Partial inverse of :func:`max_pool{nd}d`: each value put back at its index, zeros elsewhere.

    torch equivalent: ``torch.nn.functional.max_unpool{nd}d``.

    Parameters
    ----------
    input : array_like
        (C, {dims}) or (N, C, {dims}) pooled values, float16, float32 or float64, any memory
        layout. {dims} and, in batched input, C must be non-empty; N = 0 (and unbatched C = 0)
        give an empty result.
    indices : array_like
        int64, input's shape: positions flattened per (n, c) plane of the result, as
        ``max_pool{nd}d(..., return_indices=True)`` returns them.
    kernel_size, stride, padding : int or sequence of int
        The pooling's arguments (``stride`` defaults to ``kernel_size``); they fix the default
        output size ``(in - 1) * stride + kernel_size - 2 * padding`` per axis and the range
        ``output_size`` must lie in. As in torch, they need not be positive (3-d: ``stride``
        must be).
    output_size : sequence of int, optional
        The result's spatial sizes ({nd} entries, or {nd + 2} whose first two are ignored),
        each strictly within one stride of the default.

    Returns
    -------
    numpy.ndarray
        Zeros of shape (C, *out) or (N, C, *out), input's dtype, with
        ``result[n, c].flat[indices[n, c, i]] = input[n, c, i]``. Where indices repeat, the
        last in input order wins (torch's kernel on one thread; on several threads torch's
        winner varies). {layout}.

    Raises
    ------
    TypeError
        A dtype other than float16/32/64; indices not int64; sizes not ints; ``output_size``
        not a sequence.
    ValueError
        torch's errors, in its words: rank, indices' shape, empty dimensions, an
        ``output_size`` of the wrong length or out of range, negative output sizes, 3-d
        strides not positive, an index outside its plane (nothing is written there; the
        message names the last such index).
    """


def _backward_doc(nd: int) -> str:
    return f"""Gradient of :func:`max_unpool{nd}d` with respect to its input.

    ``grad_input[n, c, i] = grad_output[n, c].flat[indices[n, c, i]]``: a gather, so every
    input element gets the gradient at its index, repeated indices included (what
    ``torch.autograd`` gives, although only one of them was written by the forward op).

    torch equivalent: what ``torch.autograd`` gives for ``max_unpool{nd}d``'s input.

    Parameters
    ----------
    grad_output : array_like
        The forward result's shape, float16, float32 or float64.
    indices : array_like
        int64, the forward input's shape: the indices given to the forward op.
    input_shape : sequence of int
        The forward input's shape.
    kernel_size, stride, padding, output_size
        The forward call's arguments: they fix the shape grad_output must have.

    Returns
    -------
    numpy.ndarray
        The input's gradient: shape ``input_shape``, grad_output's dtype; channels-last when
        batched channels-last indices are (the forward input's layout, as the indices of a max
        pool keep it), else C order.

    Raises
    ------
    TypeError, ValueError
        The forward op's errors; ``input_shape`` not a shape; ``grad_output`` not of the
        forward result's shape; an index outside its plane.
    """


Size = Union[int, Sequence[int]]   # (not int | ...: a runtime expression on Python 3.9)


def max_unpool1d(input: npt.ArrayLike, indices: npt.ArrayLike, kernel_size: Size, stride: Size | None = None,
                 padding: Size = 0, output_size: Sequence[int] | None = None) -> np.ndarray:
    return _forward(1, "max_unpool1d", input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(input: npt.ArrayLike, indices: npt.ArrayLike, kernel_size: Size, stride: Size | None = None,
                 padding: Size = 0, output_size: Sequence[int] | None = None) -> np.ndarray:
    return _forward(2, "max_unpool2d", input, indices, kernel_size, stride, padding, output_size)


def max_unpool3d(input: npt.ArrayLike, indices: npt.ArrayLike, kernel_size: Size, stride: Size | None = None,
                 padding: Size = 0, output_size: Sequence[int] | None = None) -> np.ndarray:
    return _forward(3, "max_unpool3d", input, indices, kernel_size, stride, padding, output_size)


def max_unpool1d_backward(grad_output: npt.ArrayLike, indices: npt.ArrayLike, input_shape: Sequence[int],
                          kernel_size: Size, stride: Size | None = None, padding: Size = 0,
                          output_size: Sequence[int] | None = None) -> np.ndarray:
    return _backward(1, "max_unpool1d_backward", grad_output, indices, input_shape, kernel_size, stride, padding,
                     output_size)


def max_unpool2d_backward(grad_output: npt.ArrayLike, indices: npt.ArrayLike, input_shape: Sequence[int],
                          kernel_size: Size, stride: Size | None = None, padding: Size = 0,
                          output_size: Sequence[int] | None = None) -> np.ndarray:
    return _backward(2, "max_unpool2d_backward", grad_output, indices, input_shape, kernel_size, stride, padding,
                     output_size)


def max_unpool3d_backward(grad_output: npt.ArrayLike, indices: npt.ArrayLike, input_shape: Sequence[int],
                          kernel_size: Size, stride: Size | None = None, padding: Size = 0,
                          output_size: Sequence[int] | None = None) -> np.ndarray:
    return _backward(3, "max_unpool3d_backward", grad_output, indices, input_shape, kernel_size, stride, padding,
                     output_size)


for _nd, _fns in ((1, (max_unpool1d, max_unpool1d_backward)), (2, (max_unpool2d, max_unpool2d_backward)),
                  (3, (max_unpool3d, max_unpool3d_backward))):
    _fns[0].__doc__, _fns[1].__doc__ = _forward_doc(_nd), _backward_doc(_nd)
del _nd, _fns
