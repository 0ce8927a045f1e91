"""Python layer of fractional max pooling (torch's fractional_max_pool2d/3d): torch's argument
handling and checks in torch's order and words, the per-plane window starts from the random
samples, allocation; the kernel is adapool/_fractional.pxi. No loops over data here."""
from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from ._dispatch import kernels as _kernels
from ._pooling import _PLANS, _adaptive_max_backward, _exact_ints, _is_dask, _remember
from ._threads import threads_for
from ._bfloat16 import in_float32, is_bfloat16, to_float32
from ._validation import as_float_array

__all__ = [
    "fractional_max_pool2d", "fractional_max_pool3d",
    "fractional_max_pool2d_backward", "fractional_max_pool3d_backward",
]

_AXES = {2: ("height", "width"), 3: ("time", "height", "width")}
_INT_TYPES = (int, np.integer)
_BOOL_TYPES = (bool, np.bool_)


def _tensor_size(shape: tuple, dim: int) -> int:
    """``shape[dim]`` as torch's ``Tensor.size(dim)`` reads it, with its words (an IndexError
    in torch; here a ValueError)."""
    ndim = len(shape)
    if ndim == 0:
        raise ValueError(f"Dimension specified as {dim} but tensor has no dimensions")
    if not -ndim <= dim < ndim:
        raise ValueError(f"Dimension out of range (expected to be in range of [{-ndim}, {ndim - 1}], but got {dim})")
    return shape[dim]


def _ratio_sizes(shape: tuple, output_ratio, nd: int, name: str) -> list:
    """torch's Python side: ``int(size * ratio)`` per axis. The 2-d op takes ``len()`` of the
    ratio first, so a plain number fails there with Python's TypeError (torch 2.13 does this;
    the 3-d op broadcasts a number). No range check, as in torch."""
    if nd == 2 and len(output_ratio) > 2:
        raise ValueError(f"{name} requires output_ratio to either be a single Int or tuple of Ints.")
    ratio = tuple(output_ratio) if isinstance(output_ratio, Iterable) else (output_ratio,) * nd
    try:
        return [int(_tensor_size(shape, i - nd) * ratio[i]) for i in range(nd)]
    except IndexError as e:   # a ratio tuple shorter than nd (torch's IndexError)
        raise ValueError(str(e)) from None


def _int_list(v, name: str, what: str, pos: int) -> tuple:
    """An ``int[N]`` argument as torch's parser reads it: an int (not a bool) stands for every
    axis (returned as a 1-tuple with ``broadcast`` semantics by the caller); in a tuple or list
    the first element must be an int, later ones may also be bools (the parser unpacks them)."""
    if isinstance(v, _INT_TYPES) and not isinstance(v, _BOOL_TYPES):
        return None, operator.index(v)
    if not isinstance(v, (tuple, list)):
        raise TypeError(f"{name}(): argument '{what}' (position {pos}) must be tuple of ints, not {type(v).__name__}")
    out = []
    for i, e in enumerate(v):
        if not isinstance(e, _INT_TYPES) or (i == 0 and isinstance(e, _BOOL_TYPES)):
            if i == 0:
                raise TypeError(f"{name}(): argument '{what}' (position {pos}) must be tuple of ints, "
                                f"but found element of type {type(e).__name__} at pos 0")
            raise TypeError(f"{name}(): argument '{what}' failed to unpack the object at pos {i + 1} with "
                            f"error \"type must be tuple of ints,but got {type(e).__name__}\"")
        out.append(operator.index(e))
    return tuple(out), None


def _per_axis(v, nd: int, name: str, what: str, pos: int) -> tuple:
    values, scalar = _int_list(v, name, what, pos)
    if values is None:
        return (scalar,) * nd
    if len(values) != nd:
        ints = "Ints" if nd == 2 else "three Ints"
        raise ValueError(f"{name}: {what} must either be a single Int or tuple of {ints}")
    return values


def _samples(samples, x: np.ndarray, n: int, c: int, nd: int) -> np.ndarray:
    """torch's checks of ``_random_samples`` (fractional_max_pool_check_shape), in its order."""
    s = samples if type(samples) is np.ndarray else np.asarray(samples)
    if s.dtype.kind == "f" and not s.dtype.isnative:
        s = s.astype(s.dtype.newbyteorder("="))
    if s.dtype != x.dtype:
        raise TypeError("Expect _random_samples to have the same dtype as input")
    if s.ndim != 3:
        raise ValueError(f"Expect _random_samples to have 3 dimensions, got {s.ndim}")
    if s.shape[0] < n:
        raise ValueError("Expect _random_samples.size(0) no less then input batch size.")
    if s.shape[1] != c:
        raise ValueError("Expect _random_samples.size(1) equals to input channel size.")
    if s.shape[2] != nd:
        raise ValueError(f"Expect _random_samples.size(2) equals to {nd}; got {s.shape[2]}.")
    return s


def draw_samples(rng, shape: tuple, dtype, bf16: bool = False) -> np.ndarray:
    """U[0, 1) samples of ``shape`` in ``dtype`` from a numpy Generator. float16 ones are
    multiples of 2**-11 (a float32 draw rounded to float16 could round up to 1.0); with
    ``bf16`` (float32 standing for bfloat16) multiples of 2**-8, for the same reason."""
    gen = np.random.default_rng() if rng is None else rng
    if not isinstance(gen, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or None, not {type(rng).__name__}")
    if bf16:
        return (gen.integers(0, 256, size=shape, dtype=np.int16) * np.float32(2.0**-8)).astype(np.float32)
    if np.dtype(dtype) == np.float16:
        return (gen.integers(0, 2048, size=shape, dtype=np.int16) * np.float16(2.0**-11)).astype(np.float16)
    return gen.random(shape, dtype=dtype)


def checked_call(nd: int, x: np.ndarray, kernel_size, output_size, output_ratio, samples, rng, bf16: bool = False):
    """torch's checks of a call on ``x`` (read for its shape and dtype only) and the samples:
    (kernel, output size, samples, N, C, batched, result shape). adapool.dask runs them on a
    stand-in of the whole array."""
    name = f"fractional_max_pool{nd}d"
    cname = name if nd == 2 else name + "_out"   # the 3-d checks' prefix
    shape = x.shape
    # torch's Python side, in its order
    if output_size is None and output_ratio is None:
        raise ValueError(f"{name} requires specifying either an output_size or an output_ratio")
    if output_size is None:
        output_size = _ratio_sizes(shape, output_ratio, nd, name)
    if samples is None:
        n = 1 if x.ndim == nd + 1 else _tensor_size(shape, 0)
        _tensor_size(shape, -(nd + 1))
    # torch's argument parser, then its meta function
    kernel = _per_axis(kernel_size, nd, name, "kernel_size", 2)
    out = _per_axis(output_size, nd, name, "output_size", 3)
    if x.ndim not in (nd + 1, nd + 2):
        raise ValueError(f"{cname}(): Expected {nd + 1}D or {nd + 2}D tensor, but got: {list(shape)}")
    for dim in range(1, x.ndim):
        if shape[dim] == 0:
            raise ValueError(f"{cname}(): Expected input to have non-zero size for non-batch dimensions, "
                             f"but got{list(shape)} with dimension {dim} being empty.")
    spatial = shape[-nd:]
    for axis, o, k, size in zip(_AXES[nd], out, kernel, spatial):
        # 2-d: o + k - 1 <= size; the 3-d op checks with < (so its last window can't end at
        # the input's end)
        if (o + k - 1 > size) if nd == 2 else (o + k - 1 >= size):
            raise ValueError(f"{cname}(): pool {axis} {k} too large relative to input {axis} {size}")
    batched = x.ndim == nd + 2
    n, c = (shape[0], shape[1]) if batched else (1, shape[0])
    result_shape = shape[:-nd] + out
    if min(out) < 0:
        raise ValueError(f"Trying to create tensor with negative dimension {min(o for o in out if o < 0)}: "
                         f"{list(result_shape)}")
    if samples is None:
        s = draw_samples(rng, (n, c, nd), x.dtype, bf16)
    else:
        s = _samples(samples, x, n, c, nd)
    return kernel, out, s, n, c, batched, result_shape


class _Plan:
    """What validating one call found (see _PLANS in _pooling.py): the result's shape, N and C
    (N = 1 unbatched) and the kernel size as the kernel takes it."""
    __slots__ = ("nd", "shape", "n", "c", "batched", "kernel")

    def __init__(self, nd, shape, n, c, batched, kernel):
        self.nd, self.shape, self.n, self.c, self.batched, self.kernel = nd, shape, n, c, batched, kernel


def _planned_samples(samples, rng, plan: _Plan, dtype, bf16: bool):
    """The samples of a planned call, or None when they need torch's checks (the call then
    takes the checked path, which raises in torch's order)."""
    if samples is None:
        return draw_samples(rng, (plan.n, plan.c, plan.nd), dtype, bf16)
    if (type(samples) is np.ndarray and samples.dtype == dtype and samples.ndim == 3
            and samples.shape[0] >= plan.n and samples.shape[1] == plan.c and samples.shape[2] == plan.nd):
        return samples
    return None


def _fractional_forward(nd, input, kernel_size, output_size, output_ratio, return_indices, samples, rng,
                        bf16: bool = False):
    # Tiny calls: as the other forward ops (_PLANS in _pooling.py), a call with an aligned
    # ndarray, exact-int sizes and a bool return_indices is validated once per (sizes, bf16,
    # shape, strides, dtype); the samples are checked (or drawn) on every call.
    key = None
    if (type(input) is np.ndarray and output_size is not None and output_ratio is None
            and type(return_indices) is bool and _exact_ints(kernel_size) and _exact_ints(output_size)):
        key = ("fractional", nd, kernel_size, output_size, bf16, input.shape, input.strides, input.dtype)
        plan = _PLANS.get(key)
        if plan is not None and input.flags.aligned:
            s = _planned_samples(samples, rng, plan, input.dtype, bf16)
            if s is not None:
                return _run(plan, input, s, return_indices, bf16)
    name = f"fractional_max_pool{nd}d"
    if _is_dask(input):   # lazy, on adapool.dask
        from . import dask as _dask
        return getattr(_dask, name)(input, kernel_size, output_size, output_ratio, return_indices, samples, rng=rng)
    if is_bfloat16(input):
        # widened to float32, with the window starts computed as c10::BFloat16 computes them
        if samples is not None:
            if not is_bfloat16(samples):
                raise TypeError("Expect _random_samples to have the same dtype as input")
            samples = to_float32(samples)
        return in_float32(lambda x: _fractional_forward(nd, x, kernel_size, output_size, output_ratio,
                                                        return_indices, samples, rng, bf16=True), input)
    x = as_float_array(input, name)
    kernel, out, s, n, c, batched, result_shape = checked_call(nd, x, kernel_size, output_size, output_ratio,
                                                               samples, rng, bf16)
    plan = _Plan(nd, result_shape, n, c, batched, ((1,) if nd == 2 else ()) + kernel)
    if key is not None and x is input:   # no copy was needed: the plan holds for the key
        _remember(key, plan)
    return _run(plan, x, s, return_indices, bf16)


def _run(plan: _Plan, x: np.ndarray, s: np.ndarray, return_indices, bf16: bool):
    """Pool ``x`` (validated, in a layout the kernel takes) with checked samples ``s``."""
    y = np.empty(plan.shape, x.dtype)
    # torch's boolean_dispatch reads return_indices by truth value
    indices = np.empty(plan.shape, np.int64) if return_indices else None
    if y.size:
        nd = plan.nd
        # The kernel reads the samples as torch's (N', C, nd) array in place, each plane's in
        # torch's order (2-d: W, H; 3-d: T, H, W): a tiny call spent a microsecond rearranging
        # them. Byte-swapped or misaligned samples (the checked path lets them through) are
        # copied: the kernel refuses them.
        if not (s.flags.aligned and s.dtype.isnative):
            s = np.require(s, s.dtype.newbyteorder("="), "A")
        # any layout: the kernel reads planes in place or gathers them per block of channels
        batched = plan.batched
        try:
            _kernels.fractional_max_pool_forward(
                nd, x if batched else x[None], y if batched else y[None],
                None if indices is None else (indices if batched else indices[None]),
                s, plan.kernel, threads_for(x.size, plan.n * plan.c), bf16)
        except ValueError as e:
            if "outside the input" not in str(e):
                raise
            raise ValueError(f"fractional_max_pool{nd}d(): _random_samples give a window outside the input "
                             "(torch's kernel fails an internal assert or reads outside it)") from None
    return (y, indices) if return_indices else y


_FORWARD_DOC = """{nd}-d fractional max pooling of a NumPy array (Graham, 2014).

    Every (n, c) plane is pooled over its own pseudo-random windows: along each axis, output
    ``i`` of size ``out`` from input size ``L`` with kernel ``k`` starts at
    ``int((i + u) * alpha) - int(u * alpha)``, ``alpha = (L - k) / (out - 1)``, computed in the
    input's float type as torch does; the last window starts at ``L - k``. ``u`` is the
    plane's sample for that axis (``_random_samples[n, c, j]``: {which}, as in torch).

    torch equivalent: ``torch.nn.functional.fractional_max_pool{nd}d``. With ``_random_samples``
    given, values and indices equal torch's bit for bit.

    Parameters
    ----------
    input : array_like
        {shapes}, float16, float32 or float64, any memory layout. The dims after the first
        must be non-empty (so N = 0, and C = 0 unbatched, give empty results).
    kernel_size : int or tuple of {nd} ints
        The window size per axis{axes}. torch accepts sizes <= 0: empty windows, -inf with
        the start's index.
    output_size : int or tuple of {nd} ints, optional
        Output size per axis. Needs ``out + k - 1 {cmp} L`` on every axis (torch's check).
    output_ratio : float or tuple of {nd} floats, optional
        Used when ``output_size`` is None: ``out = int(L * ratio)`` per axis (not range
        checked, as in torch).{ratio_note}
    return_indices : bool
        Also return int64 indices of the maxima, flattened per (n, c) plane ({flat}).
    _random_samples : array_like, optional
        (N', C, {nd}) samples in the input's dtype, N' >= N (1 for unbatched input); the first N
        rows are used. Values in [0, 1], or any as in torch, as long as the windows they give
        lie inside the input (else ValueError, where torch's kernel fails an internal assert or
        reads outside the input). In float16 even samples in [0, 1) can give such windows on
        axes longer than 2048: ``i + u`` rounds to float16's spacing there.
    rng : numpy.random.Generator, optional
        Keyword only, used when ``_random_samples`` is None: the samples are drawn from it as
        U[0, 1) of shape (N, C, {nd}) in the input's dtype (``rng.random``; float16: multiples
        of 2**-11). None draws from a fresh ``numpy.random.default_rng()``. torch draws with
        ``torch.rand`` instead, so only given samples reproduce torch's windows.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, numpy.ndarray)
        The pooled array, {out_shapes}, the input's dtype, C order for every input layout (as
        torch returns it); with ``return_indices`` also the int64 indices, same shape, C order.
        Ties keep the first maximum (row-major in the window), NaN propagates and the last
        NaN's index wins, an all -inf window reports its first element.

    Raises
    ------
    TypeError
        A dtype other than float16/32/64; ``kernel_size``/``output_size`` not an int or a
        sequence of ints; samples of another dtype than the input; ``rng`` not a Generator.
    ValueError
        Neither ``output_size`` nor ``output_ratio``; sizes of the wrong length or too large;
        negative output sizes; input of the wrong rank or with empty dims after the first;
        samples of the wrong shape, or giving windows outside the input. The words are torch's.
    """


def fractional_max_pool2d(input: npt.ArrayLike, kernel_size: int | Sequence[int],
                          output_size: int | Sequence[int] | None = None,
                          output_ratio: float | Sequence[float] | None = None,
                          return_indices: bool = False, _random_samples: npt.ArrayLike | None = None, *,
                          rng: np.random.Generator | None = None) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    return _fractional_forward(2, input, kernel_size, output_size, output_ratio, return_indices,
                               _random_samples, rng)


def fractional_max_pool3d(input: npt.ArrayLike, kernel_size: int | Sequence[int],
                          output_size: int | Sequence[int] | None = None,
                          output_ratio: float | Sequence[float] | None = None,
                          return_indices: bool = False, _random_samples: npt.ArrayLike | None = None, *,
                          rng: np.random.Generator | None = None) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    return _fractional_forward(3, input, kernel_size, output_size, output_ratio, return_indices,
                               _random_samples, rng)


fractional_max_pool2d.__doc__ = _FORWARD_DOC.format(
    nd=2, which="j = 0 for W, 1 for H", shapes="(C, H, W) or (N, C, H, W)", axes=" (kH, kW)", cmp="<=",
    ratio_note=" A plain number fails with Python's ``object of type 'float' has no len()``, as "
               "torch 2.13's does; give a pair.",
    flat="``h * W + w``", out_shapes="(C, oH, oW) or (N, C, oH, oW)")
fractional_max_pool3d.__doc__ = _FORWARD_DOC.format(
    nd=3, which="j = 0 for T, 1 for H, 2 for W", shapes="(C, T, H, W) or (N, C, T, H, W)", axes=" (kT, kH, kW)", cmp="<",
    ratio_note="", flat="``(t * H + h) * W + w``", out_shapes="(C, oT, oH, oW) or (N, C, oT, oH, oW)")


_BACKWARD_DOC = """Gradient of :func:`fractional_max_pool{nd}d` with respect to its input.

    ``grad_input[n, c, index] += grad_output`` for each output element, in output order and in
    grad_output's dtype, as torch does (indices can repeat: windows overlap).

    torch equivalent: what ``torch.autograd`` gives for ``fractional_max_pool{nd}d``'s input
    (``torch.ops.aten.fractional_max_pool{nd}d_backward``).

    Parameters
    ----------
    grad_output : array_like
        {out_shapes}: the forward output's shape, float16, float32 or float64.
    indices : array_like
        int64, grad_output's shape: what the forward op returned with ``return_indices=True``.
    input_shape : sequence of int
        The forward input's shape (torch's op takes the input tensor itself).

    Returns
    -------
    numpy.ndarray
        The input's gradient: shape ``input_shape``, grad_output's dtype, in grad_output's
        layout (torch's follows the forward input's layout, which ``input_shape`` does not
        carry; the values are the same). Zero when grad_output is empty.

    Raises
    ------
    TypeError
        A dtype other than float16/32/64; ``input_shape`` not a tuple or list of ints;
        ``indices`` not int64.
    ValueError
        ``input_shape`` of another rank, negative, or with an empty pooled dim; grad_output
        whose leading dims differ from ``input_shape``'s; ``indices`` of another shape than
        ``grad_output``; an index outside the plane (nothing is written there).
    """


def fractional_max_pool2d_backward(grad_output: npt.ArrayLike, indices: npt.ArrayLike,
                                   input_shape: Sequence[int]) -> np.ndarray:
    return _adaptive_max_backward(grad_output, indices, input_shape, 2, "fractional_max_pool2d_backward")


def fractional_max_pool3d_backward(grad_output: npt.ArrayLike, indices: npt.ArrayLike,
                                   input_shape: Sequence[int]) -> np.ndarray:
    return _adaptive_max_backward(grad_output, indices, input_shape, 3, "fractional_max_pool3d_backward")


fractional_max_pool2d_backward.__doc__ = _BACKWARD_DOC.format(nd=2, out_shapes="(C, oH, oW) or (N, C, oH, oW)")
fractional_max_pool3d_backward.__doc__ = _BACKWARD_DOC.format(nd=3, out_shapes="(C, oT, oH, oW) or (N, C, oT, oH, oW)")
