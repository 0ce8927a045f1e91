"""lp_pool1d/2d/3d and their gradients: torch's composition of average (or max) pooling and
elementwise powers, on adapool's own pools.

torch implements the op in Python (torch/nn/functional.py), and its results -- NaN, inf, zeros,
the ceil_mode windows, float16 rounding -- are those of that composition, so adapool composes
the same steps in the same order::

    p = +inf:  max_pool(|x|)              p = -inf:  -max_pool(-|x|)
    else:      s = avg_pool(x ** p, kernel, stride, 0, ceil_mode)
               y = (sign(s) * relu(|s|) * kernel_area) ** (1 / p)

Consequences kept on purpose: a ceil_mode window that hangs over the edge is divided by its
clamped area (there is no padding to count) yet multiplied by the full kernel area; a negative
window sum (odd p, negative input) gives NaN for most p (a negative number to the power 1/p);
NaN propagates; p = 0 is torch's ZeroDivisionError (``1.0 / norm_type``), after the pool's own
argument checks; ``norm_type`` = ±inf only takes the max path when it is a Python int/float
(np.float32('inf') is not, in torch either, and goes through the powers).

The gradient is what torch.autograd gives through that composition: pow's backward
(``grad * (e * s ** (e - 1))``, zero for e == 0), sign's zero gradient, relu's threshold at 0
(so a zero window sum passes no gradient, though ``0 ** (1/p - 1)`` is inf there), abs's
``grad * sign``, then the pool's own backward.

float16 is computed as torch computes it on CPU: each elementwise op in float32, its result
rounded to float16 before the next op (the pools read and write float16 themselves).

No loops over data: every step is a whole-array NumPy op or an adapool pool. For ndarrays of
float16/32/64 the two elementwise stages (the power of the input; the scaling and root of the
pooled result) run instead in one parallel kernel pass each (adapool/_elementwise.pxi), with
the same operations in the same types, so the same bits: NumPy's ops run on one thread and
allocate a temporary per op, which made channels-last lp_pool slower than torch's. The NumPy
composition stays the reference, and the path of bfloat16 and dask arrays. (One difference:
np.power leaves its SIMD loop for a negatively strided input, so the composition's general
powers of such an input differ in the last bit from those of its positive-stride copy; the
kernel gives the latter's bits for every layout.)
"""
from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from itertools import repeat

import numpy as np
import numpy.typing as npt

from . import _pooling
from ._dispatch import kernels as _kernels
from ._pooling import _checked_pool_args, _is_dask
from ._bfloat16 import BFLOAT16, is_bfloat16, to_bfloat16, to_float32
from ._threads import threads_for
from ._validation import as_float_array, check_grad_output

__all__ = ["lp_pool1d", "lp_pool2d", "lp_pool3d", "lp_pool1d_backward", "lp_pool2d_backward", "lp_pool3d_backward"]

_HALF = np.dtype(np.float16)


# ---- torch's argument handling -------------------------------------------------------------

def _ntuple(v, n: int) -> tuple:
    """torch.nn.modules.utils._pair/_triple: an iterable as a tuple, anything else repeated."""
    return tuple(v) if isinstance(v, Iterable) else tuple(repeat(v, n))


def _kernel_area(kernel_size, nd: int):
    """The factor torch multiplies by, found as torch finds it (before any other check for
    2-d and 3-d: ``kw, kh = _pair(kernel_size)`` raises Python's unpacking ValueError for a
    sequence of another length)."""
    if nd == 1:
        return kernel_size   # checked after the pool (see _check_1d_factor)
    if nd == 2:
        kw, kh = _ntuple(kernel_size, 2)
        return kw * kh
    kd, kw, kh = _ntuple(kernel_size, 3)
    return kd * kw * kh


def _check_1d_factor(kernel_size) -> None:
    # torch's lp_pool1d multiplies by kernel_size itself: avg_pool1d takes (k,), Tensor.mul
    # does not, so a sequence fails there, after the pool.
    if isinstance(kernel_size, (list, tuple)):
        raise TypeError(f"mul(): argument 'other' (position 1) must be Tensor, not {type(kernel_size).__name__}")


def _norm_type(norm_type):
    """``norm_type`` as Tensor.pow takes it: a real number (bools and NumPy scalars included)."""
    # as a Python int or float: a NumPy float64 scalar would otherwise make float32 arrays
    # float64 (torch reads every Number as a double)
    if isinstance(norm_type, (bool, np.bool_, numbers.Integral)):
        return int(norm_type)
    if isinstance(norm_type, numbers.Real):
        return float(norm_type)
    if isinstance(norm_type, numbers.Complex):
        raise TypeError(f"lp_pool: norm_type must be a real number, got {type(norm_type).__name__} "
                        "(adapool has no complex dtypes)")
    name = type(norm_type).__name__
    raise TypeError(
        f"pow() received an invalid combination of arguments - got ({name}), but expected one of:\n"
        " * (Tensor exponent)\n"
        f"      didn't match because some of the arguments have invalid types: (!{name}!)\n"
        " * (Number exponent)\n"
        f"      didn't match because some of the arguments have invalid types: (!{name}!)\n")


def _infinite(norm_type) -> int:
    """+1 or -1 when torch takes its max-pool path (a Python int/float equal to ±inf), else 0."""
    if isinstance(norm_type, (int, float)):
        if norm_type == float("inf"):
            return 1
        if norm_type == -float("inf"):
            return -1
    return 0


# ---- torch's elementwise steps -------------------------------------------------------------

def _pow(a, e):
    """``a ** e`` as torch's CPU pow with a scalar exponent computes it: its special cases
    (fill with 1, copy, square, cube, rsqrt, reciprocal, reciprocal square) round differently
    from a general pow, and they are faster. 0.5 is sqrt here (correctly rounded, and 5x
    faster than NumPy's pow); torch's is its vectorised pow, within an ulp of it."""
    if e == 0:
        return np.ones_like(a)          # NaN ** 0 is 1 too
    if e == 1:
        return a                        # torch copies; nothing here writes into it
    if e == 2:
        return a * a
    if e == 3:
        r = a * a
        r *= a                          # into the fresh square: one allocation, not two
        return r
    if e == 0.5:
        return np.sqrt(a)
    if e == -0.5:
        return 1 / np.sqrt(a)
    if e == -1:
        return 1 / a
    if e == -2:
        r = a * a
        return np.divide(1, r, out=r) if isinstance(r, np.ndarray) else 1 / r
    return np.power(a, e)


# _pow's special exponents in its order of tests; an exponent's index here is the kernel's mode
# for it (adapool/_elementwise.pxi), len() for any other exponent (the general power).
_SPECIAL_POWERS = (0, 1, 2, 3, 0.5, -0.5, -1, -2)
_COPY = _SPECIAL_POWERS.index(1)


def _power_mode(e) -> int:
    for mode, special in enumerate(_SPECIAL_POWERS):
        if e == special:
            return mode
    return len(_SPECIAL_POWERS)


def _sign(a):
    """torch.sign for real input: 0 for NaN (numpy's sign gives NaN)."""
    return (a > 0).astype(a.dtype) - (a < 0).astype(a.dtype)


class _Steps:
    """The dtype each elementwise step computes in and the rounding after it: float16 and
    bfloat16 run in float32, rounded to their type after every op (torch's CPU reduced-precision
    ops compute in float); float32 and float64 run as they are."""

    def __init__(self, dtype):
        dtype = np.dtype(dtype)
        self.bf16 = dtype == BFLOAT16
        self.half = dtype == _HALF or self.bf16   # a reduced type, computed in float32
        self.work = np.float32 if self.half else dtype

    def up(self, a):
        if self.bf16 and a.dtype == BFLOAT16:
            return to_float32(a)
        return a.astype(np.float32) if self.half else a

    def round(self, a):
        if self.bf16:
            return to_float32(to_bfloat16(a))
        return a.astype(np.float16).astype(np.float32) if self.half else a

    def exponent(self, e):
        # torch's reduced-precision pow casts its scalar exponent to the tensor's type (a
        # multiply keeps it in float)
        if self.bf16:
            return float(to_float32(to_bfloat16(np.float32(e)))) if np.isfinite(e) else e
        return float(np.float16(e)) if self.half else e

    def pow(self, a, e):
        e = self.exponent(e)
        if self.bf16 and e in (3, -2):
            # torch's bfloat16 cube and reciprocal square round the square to bfloat16 first
            # (its half ones don't; measured on 100k values: 78% / 73% agreement otherwise)
            square = self.round(a * a)
            return square * a if e == 3 else 1 / square
        return _pow(a, e)

    def down(self, a):
        if self.bf16:
            return to_bfloat16(a)
        return a.astype(np.float16) if self.half else a

    def in_kernel(self, a) -> bool:
        """Whether the elementwise kernel takes ``a``: an ndarray of float16/32/64 in native
        byte order, aligned (as_float_array's arrays and the pools' results are). bfloat16
        keeps the composition (its cube and reciprocal square round the square first)."""
        return (not self.bf16 and type(a) is np.ndarray and a.dtype in _KERNEL_DTYPES
                and a.flags.aligned)


_KERNEL_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))   # native order


def _elementwise(src, dst, e, area=None):
    """One kernel pass: ``dst = src ** e``, or in place ``dst = (dst * area + 0.0) ** e``
    (``src`` is ``dst``), each step in the dtype's work type and rounding (see
    adapool/_elementwise.pxi). ``dst`` is dense (a new array, or a pool's result); the kernel
    walks both in ``dst``'s memory order, so it writes ``dst`` front to back."""
    if not dst.flags.c_contiguous:
        order = sorted(range(dst.ndim), key=lambda a: -dst.strides[a])   # dst's axes, outermost first
        src, dst = src.transpose(order), dst.transpose(order)
        assert dst.flags.c_contiguous, "the elementwise kernel writes dense arrays"
    _kernels.lp_elementwise(src, dst.reshape(-1), _power_mode(e), e, area is not None,
                            0.0 if area is None else float(area), threads_for(dst.size, dst.size))


def _power(x, p, steps):
    """``x ** p`` in x's dtype, laid out as NumPy's ops lay out their results (x's axis order,
    dense): the pool then reads it as the composition's, and pools it to the same bits."""
    if not steps.in_kernel(x):
        return steps.down(steps.pow(steps.up(x), p))
    e = steps.exponent(p)
    if _power_mode(e) == _COPY and not steps.half:
        return x                        # _pow's copy: the pool reads x itself
    powered = np.empty_like(x)
    _elementwise(x, powered, e)
    return powered


def _forward_parts(x, nd, p, kernel_size, stride, ceil_mode, pools):
    """(the pooled powers, in the input's dtype; its value as the next steps read it)."""
    steps = _Steps(x.dtype)
    powered = _power(x, p, steps)
    pooled = getattr(pools, f"avg_pool{nd}d")(powered, kernel_size, stride, 0, ceil_mode)
    return pooled, steps


def _inverse(norm_type) -> float:
    """1/p as torch computes it (``1.0 / norm_type``: its ZeroDivisionError for p = 0, and a
    float32 quotient for a NumPy float32 p), as a Python float."""
    return float(1.0 / norm_type)


def _finish(pooled, steps, area, e):
    # sign(s) * relu(|s|) * area is s * area exactly (NaN stays NaN) except that torch's
    # sign makes -0.0 +0.0, which adding +0.0 does too (and -0.0 ** -1 would be -inf)
    if steps.in_kernel(pooled) and pooled.flags.writeable:
        _elementwise(pooled, pooled, steps.exponent(e), area)   # the pool's own new array, in place
        return pooled
    scaled = steps.up(pooled) * area
    scaled += 0.0
    scaled = steps.round(scaled)
    return steps.down(steps.pow(scaled, e))


def _compose(nd: int, norm_type, kernel_size, stride, ceil_mode, pools, x):
    """lp_pool on ``x`` (validated: an ndarray, or a dask array) with ``pools`` the module whose
    avg_poolNd/max_poolNd run the pooling (adapool's, or adapool.dask's)."""
    area = _kernel_area(kernel_size, nd)
    direction = _infinite(norm_type)
    if direction:
        max_pool = getattr(pools, f"max_pool{nd}d")
        if direction > 0:
            return max_pool(np.abs(x), kernel_size, stride, 0, 1, ceil_mode)
        return np.negative(max_pool(np.negative(np.abs(x)), kernel_size, stride, 0, 1, ceil_mode))
    p = _norm_type(norm_type)
    pooled, steps = _forward_parts(x, nd, p, kernel_size, stride, ceil_mode, pools)
    if nd == 1:
        _check_1d_factor(kernel_size)
    return _finish(pooled, steps, int(area), _inverse(norm_type))


def _check_args(nd: int, shape: tuple, norm_type, kernel_size, stride, ceil_mode) -> None:
    """torch's checks, in its order, before any data is touched: the kernel's unpacking, then
    norm_type's type, then the pool's arguments (the pool repeats these from its cache)."""
    _kernel_area(kernel_size, nd)
    if not _infinite(norm_type):
        _norm_type(norm_type)
        _checked_pool_args(f"avg_pool{nd}d", shape, kernel_size, stride, 0, 1, ceil_mode, True, None, False)


def _lp_forward(nd: int, input, norm_type, kernel_size, stride, ceil_mode):
    op = f"lp_pool{nd}d"
    if _is_dask(input):
        from . import dask as _dask
        return getattr(_dask, op)(input, norm_type, kernel_size, stride, ceil_mode)
    x = input if is_bfloat16(input) else as_float_array(input, op)   # bfloat16: each step below rounds to it
    _check_args(nd, x.shape, norm_type, kernel_size, stride, ceil_mode)
    with np.errstate(all="ignore"):   # NaN and inf are results here, as in torch
        return _compose(nd, norm_type, kernel_size, stride, ceil_mode, _pooling, x)


def lp_on_dask(nd: int, input, norm_type, kernel_size, stride, ceil_mode):
    """lp_pool of a dask array: the same composition over adapool.dask's pools (lazy)."""
    from . import dask as _dask
    x = _dask._check_input(input, f"lp_pool{nd}d")
    _check_args(nd, tuple(int(s) for s in x.shape), norm_type, kernel_size, stride, ceil_mode)
    if x.dtype == BFLOAT16 and not _infinite(norm_type):
        # bfloat16's steps widen and round NumPy arrays (adapool._bfloat16): chunk by chunk
        return _compose_bfloat16_dask(nd, norm_type, kernel_size, stride, ceil_mode, _dask, x)
    return _compose(nd, norm_type, kernel_size, stride, ceil_mode, _dask, x)


def _compose_bfloat16_dask(nd: int, norm_type, kernel_size, stride, ceil_mode, pools, x):
    """_compose's finite-p path for a bfloat16 dask array: the same steps, each elementwise
    part run on every chunk by map_blocks, the pool by adapool.dask's."""
    p = _norm_type(norm_type)
    steps = _Steps(x.dtype)
    meta = np.empty((0,) * x.ndim, BFLOAT16)

    def power(block):
        with np.errstate(all="ignore"):
            return steps.down(steps.pow(steps.up(block), p))
    pooled = getattr(pools, f"avg_pool{nd}d")(x.map_blocks(power, dtype=BFLOAT16, meta=meta),
                                              kernel_size, stride, 0, ceil_mode)
    if nd == 1:
        _check_1d_factor(kernel_size)
    area, e = int(_kernel_area(kernel_size, nd)), _inverse(norm_type)

    def finish(block):
        with np.errstate(all="ignore"):
            return _finish(block, steps, area, e)
    return pooled.map_blocks(finish, dtype=BFLOAT16, meta=np.empty((0,) * pooled.ndim, BFLOAT16))


# ---- gradient ------------------------------------------------------------------------------

def _pow_backward(grad, base, e, steps):
    """torch's pow_backward for a scalar exponent: ``grad * (e * base ** (e - 1))``, zero
    for e == 0; each op rounded as torch rounds it."""
    if e == 0:
        return np.zeros_like(grad)
    return steps.round(grad * steps.round(e * steps.round(steps.pow(base, e - 1))))


def _lp_backward(nd: int, grad_output, input, norm_type, kernel_size, stride, ceil_mode):
    with np.errstate(all="ignore"):   # NaN and inf are results here, as in torch
        return _backward(nd, grad_output, input, norm_type, kernel_size, stride, ceil_mode)


def _backward(nd: int, grad_output, input, norm_type, kernel_size, stride, ceil_mode):
    op = f"lp_pool{nd}d"
    name = op + "_backward"
    x = input if is_bfloat16(input) else as_float_array(input, name)
    go = grad_output if is_bfloat16(grad_output) else as_float_array(grad_output, name)
    if go.dtype != x.dtype:
        raise TypeError(f"{name}(): grad_output has dtype {go.dtype}, the input has {x.dtype}")
    area = _kernel_area(kernel_size, nd)
    direction = _infinite(norm_type)
    if direction:
        # y = ±max_pool(±|x|): the scatter at the max's indices, times d|x|/dx = sign(x)
        max_pool = getattr(_pooling, f"max_pool{nd}d")
        a = np.abs(x) if direction > 0 else np.negative(np.abs(x))
        _, indices = max_pool(a, kernel_size, stride, 0, 1, ceil_mode, return_indices=True)
        check_grad_output(go, indices.shape, name)
        scattered = getattr(_pooling, f"max_pool{nd}d_backward")(_matching(go, x, nd, True), indices, x.shape,
                                                                   kernel_size, stride, 0, 1, ceil_mode)
        return _like_input(scattered * _sign(x), x, True)   # sign is ±1 or 0: exact in every dtype
    p = _norm_type(norm_type)
    _checked_pool_args(f"avg_pool{nd}d", x.shape, kernel_size, stride, 0, 1, ceil_mode, True, None, False)
    pooled, steps = _forward_parts(x, nd, p, kernel_size, stride, ceil_mode, _pooling)
    check_grad_output(go, pooled.shape, name)
    if nd == 1:
        _check_1d_factor(kernel_size)
    e = _inverse(norm_type)
    area = int(area)
    s = steps.up(pooled)
    sign = _sign(s)
    relu = np.maximum(np.abs(s), 0)
    scaled = steps.round(sign * relu * area)
    g = _pow_backward(steps.up(go), scaled, e, steps)     # through ** (1/p)
    g = steps.round(g * area)                              # through * area
    g = steps.round(g * sign)                              # through sign * relu (sign's own gradient is 0)
    g = np.where(relu <= 0, 0, g).astype(g.dtype)          # relu's threshold_backward (NaN passes)
    g = steps.round(g * sign)                              # through |s|
    g_powered = getattr(_pooling, f"avg_pool{nd}d_backward")(_matching(steps.down(g), x, nd, nd < 3), x.shape,
                                                              kernel_size, stride, 0, ceil_mode)
    # torch's avg_pool3d backward gives C order, and the product after it keeps that
    return _like_input(_pow_backward(steps.up(g_powered), steps.up(x), p, steps), x, nd < 3)


def _matching(g, x, nd: int, keep_layout: bool):
    """grad_output-shaped ``g`` in the layout the gradient will have (the pools' gradients
    follow grad_output's layout), so that the whole-input products after the pool's backward
    run over one layout and need no copy at the end: a copy of the small output-sized array
    instead of one of the input-sized result."""
    channels_last = keep_layout and x.ndim == nd + 2 and _pooling._kernel_layout(x, nd)[1]
    if channels_last == (not g.flags.c_contiguous and _pooling._kernel_layout(g, nd)[1]):
        return g
    out = _pooling._empty(g.shape, g.dtype, channels_last)
    out[...] = g
    return out


def _like_input(a, x, keep_layout: bool):
    """``a`` in ``x``'s dtype, laid out as torch lays out the gradient: the input's strides
    (channels-last included) whatever grad_output's layout, or C order (``keep_layout``
    False: lp_pool3d with finite p). Copies only when the layout or dtype differ (the float16
    steps' last rounding is that copy)."""
    out = np.empty_like(x) if keep_layout else np.empty(x.shape, x.dtype)   # empty_like: x's axis order
    if out.strides == a.strides and out.dtype == a.dtype:
        return a
    np.copyto(out, a, casting="unsafe")
    return out


# ---- public functions ----------------------------------------------------------------------

_DOC = """{nd}-d power-average pooling of a NumPy array.

    ``(sum over the window of x ** p) ** (1 / p)``, computed as torch composes it:
    ``avg_pool{nd}d(x ** p, kernel_size, stride, 0, ceil_mode)``, then
    ``(sign(s) * relu(abs(s)) * kernel_area) ** (1 / p)``; ``norm_type`` = inf is
    ``max_pool{nd}d(abs(x))`` and -inf ``-max_pool{nd}d(-abs(x))``.

    torch equivalent: ``torch.nn.functional.lp_pool{nd}d``.

    Parameters
    ----------
    input : array_like
        {shapes}, float16, float32 or float64, any memory layout.{extra}
    norm_type : int or float
        p. Odd or fractional p with a negative window sum gives NaN (torch does too); p = 0
        raises ZeroDivisionError, as torch's ``1.0 / norm_type`` does.
    kernel_size : {kernel}
    stride : {seq}, optional
        Defaults to ``kernel_size``. No padding.
    ceil_mode : bool
        Round the output size up: a window hanging over the edge averages its clamped area
        but is multiplied by the full kernel area, as torch's.

    Returns
    -------
    numpy.ndarray
        {outs}, same dtype, laid out as torch lays it out (as
        ``avg_pool{nd}d``, or ``max_pool{nd}d`` for p = ±inf, lay out theirs).

    Raises
    ------
    TypeError, ValueError, ZeroDivisionError
        As torch raises them, in its words: the pool's argument errors{pool_errors},
        ``norm_type`` not a number, p = 0.
    """


def lp_pool1d(input: npt.ArrayLike, norm_type: float, kernel_size: int,
              stride: int | Sequence[int] | None = None, ceil_mode: bool = False) -> np.ndarray:
    return _lp_forward(1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d(input: npt.ArrayLike, norm_type: float, kernel_size: int | Sequence[int],
              stride: int | Sequence[int] | None = None, ceil_mode: bool = False) -> np.ndarray:
    return _lp_forward(2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d(input: npt.ArrayLike, norm_type: float, kernel_size: int | Sequence[int],
              stride: int | Sequence[int] | None = None, ceil_mode: bool = False) -> np.ndarray:
    return _lp_forward(3, input, norm_type, kernel_size, stride, ceil_mode)


_UNPACKING = ("; first a kernel_size\n        sequence of another length than {n}, Python's unpacking "
              "ValueError\n        (torch's ``_{name}``)")
lp_pool1d.__doc__ = _DOC.format(
    nd=1, shapes="(C, L) or (N, C, L)", extra="",
    kernel="int\n        An int only: torch multiplies by it, and a 1-tuple fails there (its TypeError).",
    seq="int or (int,)", outs="(C, OL) or (N, C, OL)", pool_errors="")
lp_pool2d.__doc__ = _DOC.format(
    nd=2, shapes="(C, H, W) or (N, C, H, W)", extra="", kernel="int or (int, int)", seq="int or (int, int)",
    outs="(C, OH, OW) or (N, C, OH, OW)", pool_errors=_UNPACKING.format(n=2, name="pair"))
lp_pool3d.__doc__ = _DOC.format(
    nd=3, shapes="(C, D, H, W) or (N, C, D, H, W)", kernel="int or (int, int, int)",
    extra="\n        float16 works here (torch's CPU avg_pool3d has no float16 kernel: its lp_pool3d\n"
          "        raises NotImplementedError).",
    seq="int or (int, int, int)", outs="(C, OD, OH, OW) or (N, C, OD, OH, OW)",
    pool_errors=_UNPACKING.format(n=3, name="triple"))

_BACKWARD_DOC = """Gradient of :func:`lp_pool{nd}d` with respect to its input.

    torch equivalent: what ``torch.autograd`` gives for ``torch.nn.functional.lp_pool{nd}d``'s
    input, through torch's composition:
    pow's backward ``grad * (e * s ** (e - 1))`` (zero for e == 0), a zero gradient through
    sign, relu's threshold (a zero window sum passes no gradient), ``grad * sign`` through
    abs, then ``avg_pool{nd}d``'s backward and ``grad * (p * x ** (p - 1))``; for p = ±inf
    ``max_pool{nd}d``'s scatter times ``sign(x)``. So zero inputs with p < 1 give inf or NaN,
    as in torch.

    Parameters
    ----------
    grad_output : array_like
        The forward output's shape, the input's dtype (float16, float32 or float64).
    input : array_like
        The forward input itself (the gradient depends on its values).
    norm_type, kernel_size, stride, ceil_mode
        The forward call's arguments.

    Returns
    -------
    numpy.ndarray
        The input's gradient: the input's shape and dtype, laid out as torch lays it out:
        the input's layout (channels-last included), except C order for lp_pool3d with a
        finite p (torch's avg_pool3d backward gives C order).

    Raises
    ------
    TypeError, ValueError, ZeroDivisionError
        The forward call's errors; ``grad_output`` not of the forward output's shape, or of
        another dtype than the input.
    """


def lp_pool1d_backward(grad_output: npt.ArrayLike, input: npt.ArrayLike, norm_type: float, kernel_size: int,
                       stride: int | Sequence[int] | None = None, ceil_mode: bool = False) -> np.ndarray:
    return _lp_backward(1, grad_output, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d_backward(grad_output: npt.ArrayLike, input: npt.ArrayLike, norm_type: float,
                       kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
                       ceil_mode: bool = False) -> np.ndarray:
    return _lp_backward(2, grad_output, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d_backward(grad_output: npt.ArrayLike, input: npt.ArrayLike, norm_type: float,
                       kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
                       ceil_mode: bool = False) -> np.ndarray:
    return _lp_backward(3, grad_output, input, norm_type, kernel_size, stride, ceil_mode)


for _f in (lp_pool1d_backward, lp_pool2d_backward, lp_pool3d_backward):
    _f.__doc__ = _BACKWARD_DOC.format(nd=_f.__name__[len("lp_pool")])
del _f
