"""Hostile inputs for every public function of adapool.

The kernels run without bounds checks, so the Python layer is the only guard. Every case here
either raises a clean ``ValueError`` / ``TypeError`` / ``MemoryError`` (asserted by type AND by a
fragment of its message), or returns the right answer: tests/reference.py's float64 reference, or
the same call on a clean copy of the hostile argument. Arguments that are arrays must come back
unchanged (nothing is ever written into an input, also when the call fails).

Cases are data, not hand-written tests: ``CASES`` is (public function x hostile argument kind),
built by the ``_*_cases`` generators below and run by one test. The most dangerous calls (huge
sizes, bad indices) also run in a subprocess (``test_dangerous_calls_in_a_subprocess``), so a
crash fails a test instead of killing pytest.

The bugs these cases found were fixed; each fix keeps its description in a ``fixed_bug``
marker (a no-op) on the cases that found it.
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import textwrap
import zlib
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable

import numpy as np
import pytest

import adapool
from adapool import _pooling


def fixed_bug(reason: str):
    """Marks the cases that found a bug, now fixed: a mark with no effect that keeps the story."""
    return pytest.mark.fixed_bug(reason=reason)


from layouts import LAYOUTS, with_layout
from reference import (
    pool2d_pairs,
    adaptive_avg_pool_backward_ref,
    adaptive_avg_pool_ref,
    adaptive_max_pool_backward_ref,
    adaptive_max_pool_ref,
    avg_pool2d_backward_ref,
    avg_pool2d_ref,
    avg_pool2d_windows,
)

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(TESTS_DIR)

# Messages numpy gives for allocations that cannot exist (its wording differs between versions).
HUGE = r"too big|Maximum allowed dimension|Unable to allocate|exceed"


# ---- the public ops ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Op:
    name: str
    kind: str        # "avg" / "max" (adaptive) or "pool" (avg_pool2d)
    nd: int
    backward: bool

    @property
    def fn(self):
        return getattr(adapool, self.name)

    @property
    def data_slot(self):
        return "grad_output" if self.backward else "input"

    def __repr__(self):
        return self.name


FORWARD = [Op(f"adaptive_{k}_pool{nd}d", k, nd, False) for k in ("avg", "max") for nd in (1, 2, 3)]
FORWARD.append(Op("avg_pool2d", "pool", 2, False))
BACKWARD = [Op(o.name + "_backward", o.kind, o.nd, True) for o in FORWARD]
OPS = FORWARD + BACKWARD

LEAD = (2, 3)                                   # (N, C) of every base call
SPATIAL = {1: (7,), 2: (7, 6), 3: (5, 4, 6)}
OUT = {1: (3,), 2: (3, 4), 3: (2, 3, 4)}        # adaptive output sizes (non-divisible windows)
POOL = dict(kernel_size=3, stride=2, padding=1)  # avg_pool2d's base arguments


def _rng(*key):
    return np.random.default_rng([zlib.crc32(repr(key).encode())])


def _output_size_arg(nd):
    return OUT[nd][0] if nd == 1 else OUT[nd]


def _triple(a):
    """avg_pool2d's (kernel, stride, padding) as int pairs, as the op reads them."""
    return pool2d_pairs(a["kernel_size"], a.get("stride"), a.get("padding", 0))


def _pool_out(a, in_hw):
    k, s, p = _triple(a)
    out, _ = avg_pool2d_windows(tuple(in_hw), k, s, p, bool(a.get("ceil_mode", False)),
                                bool(a.get("count_include_pad", True)), a.get("divisor_override"))
    return out


def _resolve(output_size, spatial):
    if isinstance(output_size, (int, np.integer)):
        return (int(output_size),) * len(spatial)
    return tuple(s if o is None else int(o) for o, s in zip(output_size, spatial))


def base_args(op: Op, dtype=np.float64) -> dict:
    """A valid call of ``op`` by keyword: (2, 3, *spatial) data, non-divisible windows."""
    rng = _rng(op.name, np.dtype(dtype).str)
    x = rng.standard_normal(LEAD + SPATIAL[op.nd]).astype(dtype)
    fwd: dict[str, Any] = {"input": x}
    if op.kind == "pool":
        fwd.update(POOL)
        out = LEAD + _pool_out(POOL, SPATIAL[2])
    else:
        fwd["output_size"] = _output_size_arg(op.nd)
        out = LEAD + OUT[op.nd]
    if op.kind == "max":
        fwd["return_indices"] = True
    if not op.backward:
        return fwd
    args: dict[str, Any] = {"grad_output": rng.standard_normal(out).astype(dtype), "input_shape": x.shape}
    if op.kind == "max":
        _, args["indices"] = getattr(adapool, op.name[:-len("_backward")])(x, OUT[op.nd], return_indices=True)
    if op.kind == "pool":
        args.update(POOL)
    return args


def call(op: Op, args: dict):
    return op.fn(**args)


def _empty_reference(op: Op, a: dict):
    """The answer of a valid call with an empty result (tests/reference.py's max pooling
    reshapes with -1, which an empty batch refuses): empty arrays, or a zero gradient."""
    if op.backward:
        shape = tuple(int(s) for s in a["input_shape"])
        if 0 in shape or 0 in np.asarray(a["grad_output"]).shape:
            return np.zeros(shape)
        return None
    x = np.asarray(a["input"])
    if op.kind == "pool":
        return None
    shape = x.shape[:-op.nd] + _resolve(a["output_size"], x.shape[-op.nd:])
    if 0 not in shape:
        return None
    if op.kind == "max":
        return np.zeros(shape, x.dtype.newbyteorder("=")), np.zeros(shape, np.int64)
    return np.zeros(shape)


def reference(op: Op, a: dict):
    """The float64 reference for a call that is valid (max forward: (values, indices))."""
    empty = _empty_reference(op, a)
    if empty is not None:
        return empty
    if not op.backward:
        x = np.asarray(a["input"])
        x = x.astype(x.dtype.newbyteorder("="))
        if op.kind == "pool":
            k, s, p = _triple(a)
            return avg_pool2d_ref(x.astype(np.float64), k, s, p, bool(a.get("ceil_mode", False)),
                                  bool(a.get("count_include_pad", True)), a.get("divisor_override"))
        osize = _resolve(a["output_size"], x.shape[-op.nd:])
        if op.kind == "avg":
            return adaptive_avg_pool_ref(x.astype(np.float64), osize)
        return adaptive_max_pool_ref(x, osize)
    go = np.asarray(a["grad_output"]).astype(np.float64)
    shape = tuple(int(s) for s in a["input_shape"])
    if op.kind == "avg":
        return adaptive_avg_pool_backward_ref(go, shape, op.nd)
    if op.kind == "max":
        return adaptive_max_pool_backward_ref(go, np.asarray(a["indices"]).astype(np.int64), shape, op.nd)
    k, s, p = _triple(a)
    return avg_pool2d_backward_ref(go, shape, k, s, p, bool(a.get("ceil_mode", False)),
                                   bool(a.get("count_include_pad", True)), a.get("divisor_override"))


TOL = {2: 2e-3, 4: 2e-6, 8: 1e-12}   # relative tolerance by itemsize


def assert_close(got, want, dtype, scale=1.0):
    """got (adapool's result, dtype) equals want (float64) rounded to dtype: same shape, NaN
    and +-inf in exactly the same places, finite values within the dtype's tolerance."""
    dtype = np.dtype(dtype)
    assert isinstance(got, np.ndarray), type(got)
    assert got.dtype == dtype, (got.dtype, dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = np.asarray(want, np.float64).astype(dtype).astype(np.float64)
    g = got.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(g), np.isnan(rounded), err_msg="NaN positions differ")
    np.testing.assert_array_equal(np.isposinf(g), np.isposinf(rounded), err_msg="+inf positions differ")
    np.testing.assert_array_equal(np.isneginf(g), np.isneginf(rounded), err_msg="-inf positions differ")
    finite = np.isfinite(rounded)
    tol = TOL[dtype.itemsize]
    np.testing.assert_allclose(g[finite], rounded[finite], rtol=tol, atol=tol * max(scale, 1e-300))


def _scale(op, a):
    data = np.asarray(a[op.data_slot]).astype(np.float64)
    finite = data[np.isfinite(data)]
    scale = float(np.abs(finite).max(initial=0.0)) or 1.0
    if op.kind == "max" and op.backward:
        ind = np.asarray(a["indices"]).reshape(-1, max(1, int(np.prod(np.asarray(a["indices"]).shape[-op.nd:]))))
        scale *= max((np.bincount(r).max() for r in ind if r.size and r.min() >= 0), default=1)
    return scale


def _result_dtype(op, a):
    data = np.asarray(a[op.data_slot])
    return data.dtype.newbyteorder("=")


def assert_matches_reference(op, a, got):
    want = reference(op, a)
    dtype = _result_dtype(op, a)
    if op.kind == "max" and not op.backward:
        y, ind = got
        ref_y, ref_ind = want
        assert y.dtype == dtype and ind.dtype == np.int64
        np.testing.assert_array_equal(y, ref_y)      # max picks an element: exact, NaN included
        np.testing.assert_array_equal(ind, ref_ind)
    else:
        assert_close(got, want, dtype, _scale(op, a))


def assert_same(op, got, clean, exact):
    if op.kind == "max" and not op.backward:
        for g, c in zip(got, clean):
            assert g.dtype == c.dtype and g.shape == c.shape
            np.testing.assert_array_equal(g, c)
    elif exact:
        assert got.dtype == clean.dtype and got.shape == clean.shape
        np.testing.assert_array_equal(got, clean)
    else:
        scale = float(np.abs(clean[np.isfinite(clean)]).max(initial=0.0)) or 1.0
        assert_close(got, clean.astype(np.float64), clean.dtype, scale)


# ---- what a case expects ----------------------------------------------------------------------

@dataclass(frozen=True)
class Raises:
    types: Any
    pattern: str


@dataclass(frozen=True)
class Reference:
    """The result equals tests/reference.py's answer for the (hostile) arguments."""


@dataclass(frozen=True)
class SameAsClean:
    """The result equals the same call with ``clean(args)`` (a plain copy of the hostile value)."""
    clean: Callable
    exact: bool = True


@dataclass(frozen=True)
class Check:
    """A custom check of the result: fn(op, args, result)."""
    fn: Callable


def V(pattern):
    return Raises(ValueError, pattern)


def T(pattern):
    return Raises(TypeError, pattern)


HUGE_ERROR = Raises((ValueError, MemoryError), HUGE)


@dataclass
class Case:
    op: Op
    slot: str
    kind: str
    mutate: Callable[[dict], None]   # edits a fresh base_args(op) in place
    expect: Any
    marks: tuple = ()

    @property
    def id(self):
        return f"{self.op.name}-{self.slot}-{self.kind}"


def _set(**kw):
    def mutate(a):
        a.update(kw)
    return mutate


def _set_fn(slot, fn):
    def mutate(a):
        a[slot] = fn(a[slot])
    return mutate


def _rank_pattern(op):
    if op.kind == "pool":
        return r"Expected 3D or 4D \(batch mode\) tensor"
    if op.nd == 1:
        return r"Expected 2 to 3 dimensions, but got"
    # a sequence output_size at least as long as the input's rank fails first in torch's Python
    # wrapper (_list_with_default), with its own words
    return rf"{op.name}\(\): Expected {op.nd + 1}D or {op.nd + 2}D tensor|^Input dimension should be at least {op.nd + 1}$"


def _dtype_pattern(op):
    return re.escape(f'"{op.name}" not implemented for')


# ---- hostile data: input (forward) or grad_output (backward) ---------------------------------

BAD_DTYPES = ["object", "complex64", "complex128", "int8", "int16", "int32", "int64", "uint8",
              "uint64", "bool", "U3", "S3", "V8", "datetime64[s]", "timedelta64[s]",
              "longdouble", "f4,f4"]


def _bad_dtype_array(x, dt):
    if dt == "object":
        return x.astype(object)
    if dt == "longdouble" and np.dtype(np.longdouble).itemsize in (2, 4, 8):
        return x.astype(np.complex64)          # no distinct long double here: still a bad dtype
    return np.zeros(x.shape, dtype=np.dtype(dt))


def _ragged(x):
    lst = x.tolist()
    lst[0] = lst[0][:1]
    return lst


def _reversed_all(x):
    flip = (slice(None, None, -1),) * x.ndim
    return np.ascontiguousarray(x[flip])[flip]


def _unaligned(x):
    buf = np.zeros(x.nbytes + 1, np.uint8)
    view = buf[1:].view(x.dtype).reshape(x.shape)
    view[...] = x
    assert not view.flags.aligned
    return view


def _read_only(x):
    x = np.array(x, copy=True)
    x.flags.writeable = False
    return x


def _broadcast_view(x):
    # zero strides on every axis but the last: a read-only view of one row
    return np.broadcast_to(x[(0,) * (x.ndim - 1)], x.shape)


def _layout_view(layout):
    def make(x):
        if layout == "reversed_all":
            return _reversed_all(x)
        if layout == "unaligned":
            return _unaligned(x)
        if layout == "broadcast":
            return _broadcast_view(x)
        if layout == "transposed_lead":     # N and C swapped twice: a non-contiguous identity view
            return np.ascontiguousarray(x.swapaxes(0, 1)).swapaxes(0, 1)
        return with_layout(x, layout, batched=True)
    return make


def _with_specials(kind, dtype):
    """Data of ``dtype`` with NaN / +-inf / extreme values at a few fixed places."""
    def make(x):
        x = np.array(x, dtype=dtype)
        flat = x.reshape(-1)
        n = flat.size
        if kind == "nan":
            flat[[1, n // 3, n - 2]] = np.nan
        elif kind == "posinf":
            flat[[0, n // 2]] = np.inf
        elif kind == "neginf":
            flat[[2, n // 2 + 1]] = -np.inf
        elif kind == "mixed":
            flat[[3, n // 4]] = np.nan
            flat[[n // 2, n // 2 + 2]] = np.inf
            flat[[n // 2 + 1, n - 1]] = -np.inf
        elif kind == "inf_minus_inf":       # +inf and -inf in one window: NaN
            flat[0], flat[1] = np.inf, -np.inf
        elif kind == "all_nan":
            flat[:] = np.nan
        elif kind == "all_neginf":
            flat[:] = -np.inf
        elif kind == "finite_max":          # sums overflow the dtype; means must not
            flat[:] = np.finfo(dtype).max
        elif kind == "tiny":                # subnormals
            flat[:] = np.finfo(dtype).smallest_subnormal * np.arange(1, n + 1) % 7
        return x
    return make


def _data_cases(op):
    s = op.data_slot
    cases = []
    for dt in BAD_DTYPES:
        cases.append(Case(op, s, f"dtype_{dt}", _set_fn(s, lambda x, dt=dt: _bad_dtype_array(x, dt)),
                          T(_dtype_pattern(op))))
    bad_rank = V(r"grad_output has shape") if op.backward else V(_rank_pattern(op))
    cases += [
        Case(op, s, "none", _set(**{s: None}), T(_dtype_pattern(op) + " 'object'")),
        Case(op, s, "str", _set(**{s: "abc"}), T(_dtype_pattern(op) + " '<U3'")),
        Case(op, s, "dict", _set(**{s: {"a": 1.0}}), T(_dtype_pattern(op) + " 'object'")),
        Case(op, s, "object_instance", _set(**{s: object()}), T(_dtype_pattern(op) + " 'object'")),
        Case(op, s, "ragged_list", _set_fn(s, _ragged), V(r"inhomogeneous|setting an array element with a sequence")),
        Case(op, s, "python_float", _set(**{s: 3.0}), bad_rank),
        Case(op, s, "nested_list", _set_fn(s, lambda x: x.tolist()), Reference()),
        Case(op, s, "list_of_arrays", _set_fn(s, lambda x: list(x.astype(np.float32))), Reference()),
    ]
    # ranks 0-d to 6-d
    for r in range(7):
        valid = r in (op.nd + 1, op.nd + 2)
        if op.backward and valid:
            continue   # the base call is the valid one; others are wrong ranks
        if op.backward:
            exp = bad_rank
        else:
            exp = Reference() if valid else V(_rank_pattern(op))
        cases.append(Case(op, s, f"rank{r}", _set(**{s: np.ones((3,) * r) if r else np.array(2.0)}), exp))
    # empty dims
    cases += _empty_cases(op)
    # NaN / inf / extremes, in every float dtype
    for dtype in (np.float16, np.float32, np.float64):
        for kind in ("nan", "posinf", "neginf", "mixed", "inf_minus_inf", "all_nan", "all_neginf",
                     "finite_max", "tiny"):
            cases.append(Case(op, s, f"{kind}_{np.dtype(dtype).name}", _set_fn(s, _with_specials(kind, dtype)), Reference()))
    # byte order, read-only, layouts: the same answer as a clean native contiguous copy
    for dtype in ("f2", "f4", "f8"):
        cases.append(Case(op, s, f"big_endian_{dtype}", _set_fn(s, lambda x, d=dtype: x.astype(">" + d)),
                          SameAsClean(lambda v, d=dtype: v.astype("=" + d))))
    cases.append(Case(op, s, "read_only", _set_fn(s, _read_only), SameAsClean(np.array)))
    cases.append(Case(op, s, "read_only_big_endian_unaligned",
                      _set_fn(s, lambda x: _read_only(_unaligned(x.astype(">f4")))),
                      SameAsClean(lambda v: v.astype("=f4"))))
    for layout in list(LAYOUTS) + ["reversed_all", "unaligned", "broadcast", "transposed_lead"]:
        cases.append(Case(op, s, f"layout_{layout}", _set_fn(s, _layout_view(layout)),
                          SameAsClean(np.ascontiguousarray, exact=op.kind == "max")))
    return cases


def _empty_cases(op):
    s = op.data_slot
    nd = op.nd
    cases = []
    if not op.backward:
        spatial = SPATIAL[nd]
        cases.append(Case(op, s, "empty_batch", _set(input=np.ones((0, 3) + spatial)), Reference()))
        if op.kind == "pool":
            cases.append(Case(op, s, "empty_channels", _set(input=np.ones((2, 0) + spatial)), V(_rank_pattern(op))))
            cases.append(Case(op, s, "empty_channels_unbatched", _set(input=np.ones((0,) + spatial)), V(_rank_pattern(op))))
        elif op.kind == "max" or nd == 3:
            cases.append(Case(op, s, "empty_channels", _set(input=np.ones((2, 0) + spatial)),
                              V(r"with dimension 1 being empty")))
            cases.append(Case(op, s, "empty_channels_unbatched", _set(input=np.ones((0,) + spatial)), Reference()))
        else:
            cases.append(Case(op, s, "empty_channels", _set(input=np.ones((2, 0) + spatial)), Reference()))
            cases.append(Case(op, s, "empty_channels_unbatched", _set(input=np.ones((0,) + spatial)), Reference()))
        for j in range(nd):
            shape = list(LEAD + spatial)
            shape[2 + j] = 0
            exp = V(_rank_pattern(op)) if op.kind == "pool" else V(rf"with dimension {2 + j} being empty")
            cases.append(Case(op, s, f"empty_spatial{j}", _set(input=np.ones(shape)), exp))
            cases.append(Case(op, s, f"empty_spatial{j}_unbatched", _set(input=np.ones(shape[1:])),
                              V(_rank_pattern(op)) if op.kind == "pool" else V(rf"with dimension {1 + j} being empty")))
        return cases

    def empty_batch(a):
        a["grad_output"] = np.ones((0,) + a["grad_output"].shape[1:])
        a["input_shape"] = (0,) + tuple(a["input_shape"][1:])
        if "indices" in a:
            a["indices"] = np.zeros(a["grad_output"].shape, np.int64)

    def empty_channels(a):
        a["grad_output"] = np.ones(a["grad_output"].shape[:1] + (0,) + a["grad_output"].shape[2:])
        a["input_shape"] = tuple(a["input_shape"][:1]) + (0,) + tuple(a["input_shape"][2:])
        if "indices" in a:
            a["indices"] = np.zeros(a["grad_output"].shape, np.int64)

    cases.append(Case(op, s, "empty_batch", empty_batch, Reference()))
    cases.append(Case(op, s, "empty_channels", empty_channels,
                      V(r"Expected 3D or 4D \(batch mode\)") if op.kind == "pool" else Reference()))
    for j in range(nd):
        def empty_out(a, j=j):
            shape = list(a["grad_output"].shape)
            shape[2 + j] = 0
            a["grad_output"] = np.ones(shape)
            if "indices" in a:
                a["indices"] = np.zeros(shape, np.int64)
        # adaptive: an output size of 0 is a valid forward call, its gradient is zero;
        # avg_pool2d's forward never has an empty output.
        cases.append(Case(op, s, f"empty_output{j}", empty_out,
                          V(r"grad_output has shape") if op.kind == "pool" else Reference()))
    shape = LEAD + OUT[nd]
    cases.append(Case(op, s, "wrong_batch", _set(grad_output=np.ones((5,) + shape[1:])), V(r"grad_output has shape \[5")))
    cases.append(Case(op, s, "wrong_channels", _set(grad_output=np.ones((2, 4) + shape[2:])), V(r"grad_output has shape \[2, 4")))
    cases.append(Case(op, s, "unbatched", _set(grad_output=np.ones(shape[1:])), V(r"grad_output has shape")))
    if op.kind == "pool":
        cases.append(Case(op, s, "wrong_spatial", _set(grad_output=np.ones(LEAD + (3, 3))),
                          V(r"grad_output has shape \[2, 3, 3, 3\], but the forward pass over this input gives \[2, 3, 4, 3\]")))
    return cases


# ---- output_size (adaptive forward ops) -------------------------------------------------------

def _output_size_cases(op):
    nd = op.nd
    neg = (V(r"Trying to create tensor with negative dimension") if op.kind == "max"
           else V(r"elements of output_size must be greater than or equal to 0"))
    badtype = T(r"argument 'output_size' must be int or tuple of ints")
    badlen = (V(r"argument 'output_size' should contain one int") if nd == 1
              else V(r"internal error: output_size.size\(\) must be") if op.kind == "max"
              else V(rf"output_size must be {nd}"))
    table = [
        ("2**62", 2**62, HUGE_ERROR),
        ("2**62-1", 2**62 - 1, HUGE_ERROR),
        ("2**62+1", 2**62 + 1, HUGE_ERROR),
        ("2**63-1", 2**63 - 1, HUGE_ERROR),
        ("2**63", 2**63, V(HUGE)),
        ("2**64", 2**64, V(HUGE)),
        ("2**100", 2**100, V(HUGE)),
        ("np_uint64_max", np.uint64(2**64 - 1), V(HUGE)),
        ("2**46_first_axis", (2**46,) + (1,) * (nd - 1), Raises(MemoryError, r"Unable to allocate")),
        ("2**62_and_0", (2**62,) + (0,) * (nd - 1) if nd > 1 else (2**62,), HUGE_ERROR),
        ("2**31_squared", (2**31,) * nd, HUGE_ERROR),
        ("-1", -1, neg),
        ("-2**63", -2**63, neg),
        ("np_int8_neg", np.int8(-3), neg),
        ("negative_last", (1,) * (nd - 1) + (-2,), neg),
        ("true", True, T(r"but got bool")),
        ("np_true", np.True_, T(r"but got bool")),
        ("bool_element", (True,) * nd, T(r"found element of type bool at pos 0")),
        ("float", 2.0, badtype),
        ("float_half", 2.5, badtype),
        ("np_float", np.float64(2.0), badtype),
        ("float_element", (2,) * (nd - 1) + (2.0,), T(rf"found element of type float at pos {nd - 1}")),
        ("str", "2", badtype),
        ("bytes", b"2", badtype),
        ("none", None, badtype),
        ("object", object(), badtype),
        ("dict", {0: 2}, badtype),
        ("set", {2}, badtype),
        ("nested_list", [[2]] * nd, T(r"found element of type list at pos 0")),
        ("ndarray", np.array(OUT[nd]), T(r"but got ndarray")),
        ("ndarray_0d", np.array(2), T(r"but got ndarray")),
        ("empty_tuple", (), badlen),
        ("too_long", (2,) * (nd + 1), badlen),
        ("zero", 0, Reference()),
        ("zero_one_axis", (0,) + OUT[nd][1:], Reference()),
        ("larger_than_input", 20, Reference()),
        ("one", 1, Reference()),
        ("np_int64", np.int64(2), Reference()),
        ("np_uint8", np.uint8(2), Reference()),
        ("list", list(OUT[nd]), Reference()),
        ("np_int_elements", tuple(np.int32(o) for o in OUT[nd]), Reference()),
    ]
    if nd == 1:
        table += [("none_element", (None,), T(r"found element of type NoneType at pos 0"))]
    else:
        table += [
            ("all_none", (None,) * nd, Reference()),
            ("none_and_2**63", (None,) * (nd - 1) + (2**63,), V(HUGE)),
            ("none_and_negative", (None,) * (nd - 1) + (-1,), neg),
        ]
    return [Case(op, "output_size", k, _set(output_size=v), e) for k, v, e in table]


# ---- avg_pool2d's kernel_size / stride / padding / divisor_override / flags -------------------

BOOL_FLAG_BUG = fixed_bug(
    reason="fixed, was: ceil_mode / count_include_pad are read with bool(), so a string ('False', 'no') "
           "or None is silently taken as a flag instead of raising TypeError as torch does "
           "(avg_pool2d(x, 2, ceil_mode='False') pools with ceil_mode=True)")

_TOO_LARGE = V(r"are too large for an input of size .* \(window arithmetic would overflow int64\)")
_TOO_SMALL = V(r"Output size is too small")
_POS = {"kernel_size": 2, "stride": 3, "padding": 4}


def _pool_arg_cases(op):
    def kt(what, tname):
        return T(rf"avg_pool2d\(\): argument '{what}' \(position {_POS[what]}\) must be tuple of ints, not {tname}")

    def et(what, tname, pos):
        if pos > 0 and tname == "float":   # torch's parser: a float after the first element fails to unpack
            return T(rf"argument '{what}' failed to unpack the object at pos {pos + 1} with error "
                     r'"type must be tuple of ints,but got float"')
        return T(rf"argument '{what}' \(position {_POS[what]}\) must be tuple of ints, but found element of type {tname} at pos {pos}")

    R = Reference()
    table = [
        # kernel_size (stride/padding given explicitly so that each check is reached)
        ("kernel_size", "zero", dict(kernel_size=0, stride=None, padding=0), V(r"stride should not be zero")),
        ("kernel_size", "zero_stride1", dict(kernel_size=0, stride=1, padding=0), V(r"kernel size should be greater than zero, but got kH: 0 kW: 0")),
        ("kernel_size", "negative", dict(kernel_size=-1, stride=1, padding=0), V(r"kernel size should be greater than zero, but got kH: -1 kW: -1")),
        # torch checks the padding against half the kernel first: trunc(-2 / 2) = -1 < pad 0
        ("kernel_size", "negative_pair", dict(kernel_size=(3, -2), stride=1, padding=0), V(r"pad should be at most half of effective kernel size, but got pad=0, kernel_size=-2 and dilation=1")),
        ("kernel_size", "int64_min", dict(kernel_size=-2**63, stride=1, padding=0), V(r"pad should be at most half of effective kernel size|kernel size should be greater than zero")),
        ("kernel_size", "past_input", dict(kernel_size=8, stride=None, padding=0), _TOO_SMALL),
        ("kernel_size", "past_input_w", dict(kernel_size=(7, 7), stride=1, padding=0), V(r"Calculated output size: \(3x1x0\)")),
        ("kernel_size", "equal_to_input", dict(kernel_size=(7, 6), stride=None, padding=0), R),
        ("kernel_size", "past_input_fits_padding", dict(kernel_size=9, stride=1, padding=4), R),
        ("kernel_size", "past_input_fits_padding_excluded", dict(kernel_size=9, stride=1, padding=4, count_include_pad=False), R),
        ("kernel_size", "2**31_area_overflows", dict(kernel_size=2**31, stride=1, padding=0), _TOO_LARGE),
        ("kernel_size", "2**32_by_1", dict(kernel_size=(2**32, 1), stride=1, padding=0), _TOO_SMALL),
        ("kernel_size", "2**62", dict(kernel_size=2**62, stride=None, padding=0), _TOO_LARGE),
        ("kernel_size", "2**63", dict(kernel_size=2**63, stride=1, padding=0), _TOO_LARGE),
        ("kernel_size", "2**64", dict(kernel_size=2**64, stride=None, padding=0), _TOO_LARGE),
        ("kernel_size", "2**100", dict(kernel_size=(3, 2**100), stride=1, padding=0), _TOO_LARGE),
        ("kernel_size", "np_uint64_max", dict(kernel_size=np.uint64(2**64 - 1), stride=None, padding=0), _TOO_LARGE),
        ("kernel_size", "huge_valid_area_2**61", dict(kernel_size=(2**31, 2**30), stride=1, padding=(2**30, 2**29)), R),
        ("kernel_size", "huge_valid_2**40", dict(kernel_size=(2**40, 1), stride=1, padding=(2**39, 0)), R),
        ("kernel_size", "huge_valid_2**40_pad_excluded", dict(kernel_size=(2**40, 1), stride=1, padding=(2**39, 0), count_include_pad=False), R),
        ("kernel_size", "huge_valid_2**40_ceil", dict(kernel_size=(2**40, 3), stride=(2**40, 2), padding=(2**39, 1), ceil_mode=True), R),
        ("kernel_size", "one_element_list", dict(kernel_size=[3]), R),
        ("kernel_size", "list", dict(kernel_size=[3, 2]), R),
        ("kernel_size", "np_int64", dict(kernel_size=np.int64(3)), R),
        ("kernel_size", "np_uint8_pair", dict(kernel_size=(np.uint8(3), np.int16(2))), R),
        ("kernel_size", "bool", dict(kernel_size=True), kt("kernel_size", "bool")),
        ("kernel_size", "np_bool", dict(kernel_size=np.True_), kt("kernel_size", "bool")),
        ("kernel_size", "bool_element", dict(kernel_size=(True, 3)), et("kernel_size", "bool", 0)),
        ("kernel_size", "float", dict(kernel_size=3.0), kt("kernel_size", "float")),
        ("kernel_size", "float_half", dict(kernel_size=2.5), kt("kernel_size", "float")),
        ("kernel_size", "np_float", dict(kernel_size=np.float64(3.0)), kt("kernel_size", "float64")),
        ("kernel_size", "float_element", dict(kernel_size=(3, 2.0)), et("kernel_size", "float", 1)),
        ("kernel_size", "str", dict(kernel_size="3"), kt("kernel_size", "str")),
        ("kernel_size", "none", dict(kernel_size=None), kt("kernel_size", "NoneType")),
        ("kernel_size", "object", dict(kernel_size=object()), kt("kernel_size", "object")),
        ("kernel_size", "ndarray", dict(kernel_size=np.array([3, 3])), kt("kernel_size", "ndarray")),
        ("kernel_size", "nested_list", dict(kernel_size=[[3]]), et("kernel_size", "list", 0)),
        ("kernel_size", "none_element", dict(kernel_size=(3, None)), et("kernel_size", "NoneType", 1)),
        ("kernel_size", "empty", dict(kernel_size=()), V(r"avg_pool2d: kernel_size must either be a single int, or a tuple of two ints")),
        ("kernel_size", "three", dict(kernel_size=(3, 3, 3)), V(r"avg_pool2d: kernel_size must either be a single int, or a tuple of two ints")),
        # stride
        ("stride", "zero", dict(stride=0), V(r"stride should not be zero")),
        ("stride", "zero_pair", dict(stride=(2, 0)), V(r"stride should not be zero")),
        ("stride", "negative", dict(stride=-1), V(r"stride should be greater than zero, but got dH: -1 dW: -1")),
        ("stride", "minus_2**64", dict(stride=-2**64), V(r"stride should be greater than zero")),
        ("stride", "past_input", dict(stride=100), R),
        ("stride", "past_input_ceil", dict(stride=100, ceil_mode=True), R),
        ("stride", "2**61", dict(stride=2**61, padding=0), R),
        ("stride", "2**61_ceil", dict(stride=2**61, padding=1, ceil_mode=True), R),
        ("stride", "2**62", dict(stride=2**62), _TOO_LARGE),
        ("stride", "2**63", dict(stride=(1, 2**63)), _TOO_LARGE),
        ("stride", "2**64", dict(stride=2**64), _TOO_LARGE),
        ("stride", "np_uint64_max", dict(stride=np.uint64(2**64 - 1)), _TOO_LARGE),
        ("stride", "none", dict(stride=None), R),
        ("stride", "empty_tuple", dict(stride=()), R),
        ("stride", "empty_list", dict(stride=[]), R),
        ("stride", "one_element", dict(stride=(1,)), R),
        ("stride", "bool", dict(stride=True), kt("stride", "bool")),
        ("stride", "float", dict(stride=1.0), kt("stride", "float")),
        ("stride", "float_element", dict(stride=(1, 1.5)), et("stride", "float", 1)),
        ("stride", "str", dict(stride="1"), kt("stride", "str")),
        ("stride", "object", dict(stride=object()), kt("stride", "object")),
        ("stride", "three", dict(stride=(1, 1, 1)), V(r"avg_pool2d: stride must either be omitted, a single int, or a tuple of two ints")),
        # padding
        ("padding", "negative", dict(padding=-1), V(r"pad must be non-negative, but got pad: -1")),
        ("padding", "int64_min", dict(padding=-2**63), V(r"pad must be non-negative, but got pad: -9223372036854775808")),
        ("padding", "over_half", dict(padding=2), V(r"pad should be at most half of effective kernel size, but got pad=2, kernel_size=3 and dilation=1")),
        ("padding", "over_half_w", dict(padding=(0, 2)), V(r"pad should be at most half of effective kernel size, but got pad=2")),
        ("padding", "2**62", dict(padding=2**62), V(r"pad should be at most half of effective kernel size")),
        ("padding", "2**64", dict(padding=2**64), V(r"pad should be at most half of effective kernel size")),
        ("padding", "pair", dict(padding=(1, 0)), R),
        ("padding", "list", dict(padding=[0]), R),
        ("padding", "bool", dict(padding=True), kt("padding", "bool")),
        ("padding", "float", dict(padding=0.0), kt("padding", "float")),
        ("padding", "none", dict(padding=None), kt("padding", "NoneType")),
        ("padding", "str", dict(padding="1"), kt("padding", "str")),
        ("padding", "empty", dict(padding=()), V(r"avg_pool2d: padding must either be a single int, or a tuple of two ints")),
        # divisor_override
        ("divisor_override", "zero", dict(divisor_override=0), V(r"divisor must be not zero")),
        ("divisor_override", "np_zero", dict(divisor_override=np.int64(0)), V(r"divisor must be not zero")),
        ("divisor_override", "2**63", dict(divisor_override=2**63), V(r"divisor_override must fit in int64, got 9223372036854775808")),
        ("divisor_override", "below_int64", dict(divisor_override=-2**63 - 1), V(r"divisor_override must fit in int64")),
        ("divisor_override", "2**100", dict(divisor_override=2**100), V(r"divisor_override must fit in int64")),
        ("divisor_override", "np_uint64_max", dict(divisor_override=np.uint64(2**64 - 1)), V(r"divisor_override must fit in int64")),
        ("divisor_override", "int64_min", dict(divisor_override=-2**63), R),
        ("divisor_override", "int64_max", dict(divisor_override=2**63 - 1), R),
        ("divisor_override", "negative", dict(divisor_override=-1), R),
        ("divisor_override", "np_int", dict(divisor_override=np.int16(-3)), R),
        ("divisor_override", "seven", dict(divisor_override=7), R),
        ("divisor_override", "bool", dict(divisor_override=True), T(r"argument 'divisor_override' must be int, not bool")),
        ("divisor_override", "float", dict(divisor_override=2.0), T(r"argument 'divisor_override' must be int, not float")),
        ("divisor_override", "str", dict(divisor_override="2"), T(r"argument 'divisor_override' must be int, not str")),
        ("divisor_override", "list", dict(divisor_override=[2]), T(r"argument 'divisor_override' must be int, not list")),
        ("divisor_override", "object", dict(divisor_override=object()), T(r"argument 'divisor_override' must be int, not object")),
    ]
    for flag in ("ceil_mode", "count_include_pad"):
        for k, v in (("true", True), ("false", False), ("np_bool", np.True_)):
            table.append((flag, k, {flag: v, "kernel_size": 4, "stride": 3, "padding": 2}, R))
        for k, v in (("zero", 0), ("one", 1)):   # torch: "must be bool, not int"
            table.append((flag, k, {flag: v, "kernel_size": 4, "stride": 3, "padding": 2},
                          T(rf"argument '{flag}' must be bool, not int")))
    cases = [Case(op, slot, k, _set(**kw), e) for slot, k, kw, e in table]
    for flag in ("ceil_mode", "count_include_pad"):
        for k, v in (("str_False", "False"), ("str_no", "no"), ("none", None)):
            cases.append(Case(op, flag, k, _set(**{flag: v, "kernel_size": 4, "stride": 3, "padding": 2}),
                              T(rf"argument '{flag}' must be bool"), marks=(BOOL_FLAG_BUG,)))
    return cases


# ---- input_shape (backward ops) ---------------------------------------------------------------

def _input_shape_cases(op):
    nd = op.nd
    base = LEAD + SPATIAL[nd]
    name = re.escape(op.name)
    mismatch = V(r"grad_output has shape")
    pool = op.kind == "pool"

    def with_last(v):
        return base[:-1] + (v,)

    huge62 = _TOO_LARGE if pool else HUGE_ERROR
    huge63 = _TOO_LARGE if pool else V(HUGE)
    huge46 = mismatch if pool else Raises(MemoryError, r"Unable to allocate")
    not_tuple = T(rf"{name}\(\): input_shape must be a tuple of ints, got")
    table = [
        ("negative_spatial", with_last(-1), V(rf"{name}\(\): input_shape must not be negative, got \[2, 3")),
        ("negative_batch", (-1,) + base[1:], V(r"input_shape must not be negative")),
        ("int64_min", (-2**63,) + base[1:], V(r"input_shape must not be negative")),
        ("zero_spatial", with_last(0), V(rf"{name}\(\): input_shape has an empty pooled dimension")),
        ("2**62", with_last(2**62), huge62),
        ("2**62-1", with_last(2**62 - 1), huge62),
        ("2**63-1", with_last(2**63 - 1), huge62),
        ("2**63", with_last(2**63), huge63),
        ("2**64", with_last(2**64), huge63),
        ("2**46", with_last(2**46), huge46),
        ("float_element", with_last(6.0), T(rf"argument 'input_shape' must be int or tuple of ints, but found element of type float at pos {nd + 1}")),
        ("bool_element", (True,) + base[1:], T(r"found element of type bool at pos 0")),
        ("none_element", with_last(None), T(r"found element of type NoneType")),
        ("str_element", with_last("6"), T(r"found element of type str")),
        ("nested", [list(base)], T(r"found element of type list at pos 0")),
        ("str", "2356", not_tuple),
        ("none", None, not_tuple),
        ("int", 7, not_tuple),
        ("ndarray", np.array(base), not_tuple),
        ("dict", dict(enumerate(base)), not_tuple),
        ("empty", (), V(rf"input_shape must have {nd + 1} or {nd + 2} dimensions, got \[\]")),
        ("too_many_dims", base + (1,), V(rf"input_shape must have {nd + 1} or {nd + 2} dimensions")),
        ("unbatched", base[1:], mismatch),
        ("wrong_batch", (5,) + base[1:], mismatch),
        ("wrong_channels", (2, 4) + base[2:], mismatch),
        ("list", list(base), Reference()),
        ("np_ints", tuple(np.int64(v) for v in base), Reference()),
    ]
    if op.kind == "avg":
        table += [("bigger_spatial", LEAD + (9,) * nd, Reference()),
                  ("smaller_spatial", LEAD + (1,) * nd, Reference())]
    elif op.kind == "max":
        table += [("bigger_spatial", LEAD + tuple(s + 2 for s in SPATIAL[nd]), Reference()),
                  ("smaller_spatial", LEAD + (1,) * nd, V(rf"{name}: found an index outside \[0, 1\)"))]
    else:
        table += [("bigger_spatial", LEAD + (9, 9), V(r"grad_output has shape \[2, 3, 4, 3\], but the forward pass over this input gives \[2, 3, 5, 5\]"))]
    return [Case(op, "input_shape", k, _set(input_shape=v), e) for k, v, e in table]


# ---- indices (max backward ops) ---------------------------------------------------------------

def _indices_cases(op):
    nd = op.nd
    plane = int(np.prod(SPATIAL[nd]))
    outside = V(rf"{re.escape(op.name)}: found an index outside \[0, {plane}\): indices must come from the forward pass over an input of shape \[2, 3")
    int64 = T(rf"{re.escape(op.name)}\(\): indices must be int64 \(torch.long\), got")
    bad_shape = V(r"indices have shape")

    def poke(value, where):
        def mutate(a):
            ind = a["indices"].copy()
            ind.reshape(-1)[where] = value
            a["indices"] = ind
        return mutate

    cases = []
    for k, v in (("negative", -1), ("plane_size", plane), ("past_plane", plane + 1), ("2**40", 2**40),
                 ("int64_max", 2**63 - 1), ("int64_min", -2**63)):
        for where, pos in (("first", 0), ("last", -1)):
            cases.append(Case(op, "indices", f"{k}_{where}", poke(v, pos), outside))
    for dt in ("int32", "uint64", "uint32", "int16", "uint8", "float64", "float32", "bool", "object", "U3", "complex128"):
        cases.append(Case(op, "indices", f"dtype_{dt}", _set_fn("indices", lambda i, dt=dt: i.astype(dt)), int64))
    cases += [
        Case(op, "indices", "none", _set(indices=None), int64),
        Case(op, "indices", "str", _set(indices="0"), int64),
        Case(op, "indices", "float_list", _set_fn("indices", lambda i: (i + 0.5).tolist()), int64),
        Case(op, "indices", "sliced", _set_fn("indices", lambda i: i[..., :1]), bad_shape),
        Case(op, "indices", "broadcastable", _set_fn("indices", lambda i: i[:1]), bad_shape),
        Case(op, "indices", "scalar", _set(indices=np.int64(0)), bad_shape),
        Case(op, "indices", "extra_dim", _set_fn("indices", lambda i: i[..., None]), bad_shape),
        Case(op, "indices", "unbatched", _set_fn("indices", lambda i: i[0]), bad_shape),
        Case(op, "indices", "big_endian", _set_fn("indices", lambda i: i.astype(">i8")), SameAsClean(lambda i: i.astype(np.int64))),
        Case(op, "indices", "nested_list", _set_fn("indices", lambda i: i.tolist()), SameAsClean(lambda i: np.array(i, np.int64))),
        Case(op, "indices", "intp", _set_fn("indices", lambda i: i.astype(np.intp)), SameAsClean(np.array)),
        Case(op, "indices", "read_only", _set_fn("indices", _read_only), SameAsClean(np.array)),
        Case(op, "indices", "all_zero", _set_fn("indices", np.zeros_like), Reference()),
        Case(op, "indices", "all_last", _set_fn("indices", lambda i: np.full_like(i, plane - 1)), Reference()),
    ]
    for layout in list(LAYOUTS) + ["reversed_all", "unaligned", "broadcast", "transposed_lead"]:
        cases.append(Case(op, "indices", f"layout_{layout}", _set_fn("indices", _layout_view(layout)),
                          SameAsClean(np.ascontiguousarray)))
    return cases


# ---- out= (the average forward ops) -----------------------------------------------------------

INTERNAL_OVERLAP_BUG = fixed_bug(
    reason="fixed, was: a writeable out= whose elements overlap each other (zero strides, e.g. "
           "np.lib.stride_tricks.as_strided(buf, shape, (0,)*ndim)) is accepted: every output is "
           "written to the same element and the call returns garbage instead of raising (torch "
           "refuses outputs with internal overlap)")


def _out_shape(op):
    if op.kind == "pool":
        return LEAD + _pool_out(POOL, SPATIAL[2])
    return LEAD + OUT[op.nd]


def _out_cases(op):
    shape = _out_shape(op)
    name = re.escape(op.name)
    if op.kind == "max" or op.backward:
        return [Case(op, "out", "not_accepted", _set(out=np.empty(shape)), T(r"unexpected keyword argument 'out'"))]

    def identity_call(a):
        # an op whose result has the input's shape, with out= the input itself
        if op.kind == "pool":
            a.update(kernel_size=1, stride=1, padding=0)
        else:
            a["output_size"] = SPATIAL[op.nd][0] if op.nd == 1 else (None,) * op.nd
        a["out"] = a["input"]

    def view_of_input(step):
        def mutate(a):
            x = a["input"]
            a["out"] = x[(slice(None), slice(None)) + tuple(
                slice(0, o) if step == 1 else slice(o - 1, None, -1) for o in shape[2:])]
        return mutate

    def overlapping_tail(a):
        # input and out are views of one buffer; out starts inside the input's last elements
        n = int(np.prod(shape))
        buf = np.zeros(a["input"].size + n // 2 + n)
        x = buf[:a["input"].size].reshape(a["input"].shape)
        x[...] = a["input"]
        a["input"] = x
        a["out"] = buf[a["input"].size - n // 2:a["input"].size - n // 2 + n].reshape(shape)

    def sentinel_view(a):
        big = np.full(tuple(2 * s + 1 for s in shape), -777.0)
        a["out"] = big[tuple(slice(1, 1 + 2 * s, 2) for s in shape)]
        a["_sentinel"] = (big, a["out"])

    def zero_strides(a):
        a["out"] = np.lib.stride_tricks.as_strided(np.zeros(1), shape, (0,) * len(shape))

    def check_written_into_out(op_, a, result):
        assert result is a["out"]
        assert_close(result, reference(op_, a), np.float64)
        if "_sentinel" in a:
            big, view = a["_sentinel"]
            mask = np.ones(big.shape, bool)
            mask[tuple(slice(1, 1 + 2 * s, 2) for s in shape)] = False
            assert (big[mask] == -777.0).all(), "out= wrote outside its view"

    ro = np.empty(shape)
    ro.flags.writeable = False
    cases = [
        Case(op, "out", "none", _set(out=None), Reference()),
        Case(op, "out", "c_order", _set(out=np.full(shape, np.nan)), Check(check_written_into_out)),
        Case(op, "out", "sentinel_strided_view", sentinel_view, Check(check_written_into_out)),
        Case(op, "out", "is_input", identity_call, V(rf"{name}\(\): out overlaps the input")),
        Case(op, "out", "view_of_input", view_of_input(1), V(r"out overlaps the input")),
        Case(op, "out", "reversed_view_of_input", view_of_input(-1), V(r"out overlaps the input")),
        Case(op, "out", "overlapping_tail", overlapping_tail, V(r"out overlaps the input")),
        Case(op, "out", "wrong_shape", _set(out=np.empty(shape[:-1] + (shape[-1] + 1,))), V(rf"{name}\(\): out has shape")),
        Case(op, "out", "unbatched_shape", _set(out=np.empty(shape[1:])), V(r"out has shape")),
        Case(op, "out", "extra_dim", _set(out=np.empty(shape + (1,))), V(r"out has shape")),
        Case(op, "out", "scalar", _set(out=np.array(0.0)), V(r"out has shape \[\]")),
        Case(op, "out", "dtype_float32", _set(out=np.empty(shape, np.float32)), T(rf"{name}\(\): out has dtype float32, the result has float64")),
        Case(op, "out", "dtype_int64", _set(out=np.empty(shape, np.int64)), T(r"out has dtype int64")),
        Case(op, "out", "dtype_object", _set(out=np.empty(shape, object)), T(r"out has dtype object")),
        Case(op, "out", "big_endian", _set(out=np.empty(shape, ">f8")), T(r"out has dtype >f8")),
        Case(op, "out", "read_only", _set(out=ro), V(rf"{name}\(\): out is read-only")),
        Case(op, "out", "broadcast", _set(out=np.broadcast_to(np.zeros(1), shape)), V(r"out is read-only")),
        Case(op, "out", "unaligned", _set(out=_unaligned(np.zeros(shape))), V(rf"{name}\(\): out must be aligned")),
        Case(op, "out", "list", _set(out=np.zeros(shape).tolist()), T(rf"{name}\(\): out must be a numpy.ndarray, got list")),
        Case(op, "out", "subclass", _set(out=np.zeros(shape).view(np.recarray)), T(r"out must be a numpy.ndarray, got recarray")),
        Case(op, "out", "internal_overlap", zero_strides, V(r"out"), marks=(INTERNAL_OVERLAP_BUG,)),
    ]
    for layout in LAYOUTS:
        def layout_out(a, layout=layout):
            a["out"] = with_layout(np.full(shape, np.nan), layout, batched=True)
        cases.append(Case(op, "out", f"layout_{layout}", layout_out, Check(check_written_into_out)))
    return cases


# ---- the table ---------------------------------------------------------------------------------

def _all_cases():
    cases = []
    for op in OPS:
        cases += _data_cases(op)
        if op.kind in ("avg", "max") and not op.backward:
            cases += _output_size_cases(op)
        if op.kind == "pool":
            cases += _pool_arg_cases(op)
        if op.backward:
            cases += _input_shape_cases(op)
        if op.kind == "max" and op.backward:
            cases += _indices_cases(op)
        cases += _out_cases(op)
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return cases


CASES = _all_cases()


@pytest.fixture(autouse=True)
def _fresh_argument_cache():
    # avg_pool2d caches validated arguments by equality; clear it so that each case's validation
    # runs (test_pool_argument_types_do_not_depend_on_call_history covers the cache itself).
    _pooling._pool_args_cached.cache_clear()
    yield


def _fix_pool_grad_output(op, a):
    """avg_pool2d_backward cases whose forward arguments changed need a grad_output of the new
    forward output's shape (when that forward call is valid)."""
    if not (op.backward and op.kind == "pool"):
        return
    out = _pool_out(a, tuple(a["input_shape"])[-2:])
    if np.asarray(a["grad_output"]).shape == LEAD + _pool_out(POOL, SPATIAL[2]):
        a["grad_output"] = _rng(op.name, "go", out).standard_normal(LEAD + tuple(out))


def _snapshot(a):
    snap = {}
    for k, v in a.items():
        if k in ("out", "_sentinel") or not isinstance(v, np.ndarray):
            continue
        snap[k] = np.array(v, copy=True)
    return snap


def run_case(case: Case):
    op = case.op
    a = base_args(op)
    case.mutate(a)
    if isinstance(case.expect, (Reference, Check)):
        _fix_pool_grad_output(op, a)
    sentinel = a.pop("_sentinel", None)
    before = _snapshot(a)
    exp = case.expect
    if isinstance(exp, Raises):
        with pytest.raises(exp.types) as info:
            call(op, a)
        assert re.search(exp.pattern, str(info.value)), f"{type(info.value).__name__}: {info.value!r} does not match {exp.pattern!r}"
    elif isinstance(exp, Reference):
        assert_matches_reference(op, a, call(op, a))
    elif isinstance(exp, SameAsClean):
        got = call(op, a)
        clean = dict(a)
        clean[case.slot] = exp.clean(a[case.slot])
        assert_same(op, got, call(op, clean), exp.exact)
    else:
        if sentinel is not None:
            a["_sentinel"] = sentinel
        result = call(op, {k: v for k, v in a.items() if k != "_sentinel"})
        exp.fn(op, a, result)
        a.pop("_sentinel", None)
    for k, v in before.items():   # nothing is ever written into an argument
        np.testing.assert_array_equal(a[k], v, err_msg=f"{case.id}: argument {k!r} was modified")


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_hostile(case):
    with np.errstate(all="ignore"):
        run_case(case)


# ---- max pooling's NaN rule, stated directly (not through the reference) ----------------------

@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided_all", "negative_w"])
def test_max_nan_wins_and_the_last_nan_index_is_reported(nd, dtype, layout):
    # One window over the whole plane; NaN at two places and +inf elsewhere: NaN wins over
    # larger values and +inf, and the index is the last NaN's (row-major in the window).
    shape = (2, 3) + (4,) * nd
    x = np.zeros(shape, dtype)
    flat = x.reshape(2, 3, -1)
    plane = flat.shape[-1]
    flat[..., 0] = np.inf
    flat[:, :, plane // 3] = np.nan
    flat[:, :, plane - 2] = np.nan
    flat[:, :, plane - 1] = np.finfo(dtype).max
    y, ind = getattr(adapool, f"adaptive_max_pool{nd}d")(with_layout(x, layout), 1, return_indices=True)
    assert np.isnan(y).all()
    assert (ind == plane - 2).all()
    # and a NaN only lands in the windows that contain it: 2 windows per axis, NaN in the first
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape).astype(dtype)
    x[(Ellipsis,) + (0,) * nd] = np.nan
    y, ind = getattr(adapool, f"adaptive_max_pool{nd}d")(with_layout(x, layout), 2, return_indices=True)
    nan_at = np.zeros((2,) * nd, bool)
    nan_at[(0,) * nd] = True
    np.testing.assert_array_equal(np.isnan(y), np.broadcast_to(nan_at, y.shape))
    np.testing.assert_array_equal(ind[(Ellipsis,) + (0,) * nd], 0)


# ---- set_num_threads ----------------------------------------------------------------------------

SET_THREADS_CASES = [
    ("zero", 0, V(r"set_num_threads expects a positive integer, got 0")),
    ("negative", -1, V(r"set_num_threads expects a positive integer, got -1")),
    ("int64_min", -2**63, V(r"expects a positive integer")),
    ("np_zero", np.int64(0), V(r"expects a positive integer, got 0")),
    ("true", True, T(r"set_num_threads expects an int, got bool")),
    ("false", False, T(r"set_num_threads expects an int, got bool")),
    ("np_true", np.True_, T(r"set_num_threads expects an int, got bool")),
    ("float", 2.0, T(r"set_num_threads expects an int, got float")),
    ("np_float", np.float64(2.0), T(r"set_num_threads expects an int, got float64")),
    ("str", "2", T(r"set_num_threads expects an int, got str")),
    ("list", [2], T(r"set_num_threads expects an int, got list")),
    ("object", object(), T(r"set_num_threads expects an int, got object")),
    ("ndarray", np.array([2]), T(r"set_num_threads expects an int, got ndarray")),
    ("one", 1, 1),
    ("three", 3, 3),
    ("np_int", np.int64(2), 2),
    ("np_uint8", np.uint8(2), 2),
    ("none", None, None),
]


@pytest.mark.parametrize("value, expect", [pytest.param(v, e, id=k) for k, v, e in SET_THREADS_CASES])
def test_set_num_threads_hostile(value, expect):
    try:
        before = adapool.get_num_threads()
        if isinstance(expect, Raises):
            with pytest.raises(expect.types, match=expect.pattern):
                adapool.set_num_threads(value)
            assert adapool.get_num_threads() == before        # a refused value changes nothing
        else:
            adapool.set_num_threads(value)
            if expect is not None:
                assert adapool.get_num_threads() == (expect if adapool.openmp_enabled() else 1)
        # the ops still work and give the serial answer
        x = np.random.default_rng(0).standard_normal((2, 64, 20, 30)).astype(np.float32)
        np.testing.assert_allclose(adapool.adaptive_avg_pool2d(x, (3, 4)), adaptive_avg_pool_ref(x, (3, 4)), rtol=1e-5, atol=1e-6)
    finally:
        adapool.set_num_threads(None)


# ---- window helpers -----------------------------------------------------------------------------

HELPER_VALIDATION_BUG = fixed_bug(
    reason="fixed, was: the window helpers do not validate their arguments: adaptive_windows(-1, 10) "
           "returns empty tables, adaptive_windows(3, -5) windows with end < start (negative "
           "indices, which numpy would wrap around), adaptive_windows(2.5, 10) float tables -- no "
           "error; a str size is multiplied (string repetition) before anything checks its type: "
           "adaptive_windows('3', 2**62) and window_end(2**62, 3, 'x') raise a MemoryError without "
           "a message (and adaptive_windows('3', 10**9) builds a 1 GB string before its TypeError)")


def _exact_windows(b, c):
    starts = [math.floor(Fraction(a * c, b)) for a in range(b)]
    ends = [math.ceil(Fraction((a + 1) * c, b)) for a in range(b)]
    return starts, ends


def _check_windows(b, c):
    def check(result):
        starts, ends = result
        assert starts.dtype == ends.dtype == np.int64
        es, ee = _exact_windows(b, c)
        assert starts.tolist() == es and ends.tolist() == ee
    return check


def _check_value(expected):
    def check(result):
        assert result == expected, (result, expected)
    return check


BIG = 2**70 + 12345

HELPER_CASES = [
    # adaptive_windows(out_size, in_size)
    ("adaptive_windows", "small", (4, 11), Check(_check_windows(4, 11))),
    ("adaptive_windows", "zero_out", (0, 11), Check(lambda r: r[0].size == r[1].size == 0)),
    ("adaptive_windows", "out_larger", (13, 5), Check(_check_windows(13, 5))),
    ("adaptive_windows", "in_near_2**62", (3, 2**62 + 12345), Check(_check_windows(3, 2**62 + 12345))),
    ("adaptive_windows", "in_2**62_exact_path", (2, 2**62 - 1), Check(_check_windows(2, 2**62 - 1))),
    ("adaptive_windows", "in_past_int64", (3, 2**63), Raises(ValueError, r"in_size < 2\*\*63")),
    ("adaptive_windows", "out_2**40", (2**40, 3), Raises(MemoryError, r"windows need")),
    ("adaptive_windows", "out_2**62_small_product", (2**62, 0), Raises(ValueError, r"1 <= in_size")),
    ("adaptive_windows", "out_2**32_uint64_path", (2**20, 2**62 - 7), Check(_check_windows(2**20, 2**62 - 7))),
    ("adaptive_windows", "str", ("3", 10), T(r"out_size must be an int, got str")),
    ("adaptive_windows", "none", (None, 10), T(r"out_size must be an int, got NoneType")),
    ("adaptive_windows", "list", ([3], 10), T(r"unhashable type")),
    ("adaptive_windows", "negative_out", (-1, 10), Raises((ValueError, TypeError), r"out_size|non-negative|>= 0|negative")),
    ("adaptive_windows", "negative_in", (3, -5), Raises((ValueError, TypeError), r"in_size|non-negative|>= 0|negative")),
    ("adaptive_windows", "fractional_out", (2.5, 10), Raises((ValueError, TypeError), r"out_size|int")),
    ("adaptive_windows", "str_times_huge", ("3", 2**62), T(r"out_size|int|str")),
    # pool_output_size(in_size, kernel, stride, pad, ceil_mode): documented as not validated
    ("pool_output_size", "small", (7, 3, 2, 1, False), Check(_check_value(4))),
    ("pool_output_size", "ceil", (4, 3, 2, 1, True), Check(_check_value(3))),
    ("pool_output_size", "huge_exact", (BIG, 3, 2, 1, True), Check(_check_value((BIG + 2 - 3 + 1) // 2 + 1))),
    ("pool_output_size", "huge_stride", (7, 2, 2**80, 0, True), Check(_check_value(1))),
    ("pool_output_size", "stride_zero", (7, 3, 0, 1, False), Raises(ValueError, r"stride >= 1")),
    ("pool_output_size", "str", ("7", 3, 2, 1, False), T(r"in_size must be an int")),
    ("pool_output_size", "none", (None, 3, 2, 1, False), T(r"in_size must be an int")),
    # pool_windows(out_size, in_size, kernel, stride, pad, count_include_pad)
    ("pool_windows", "small", (4, 7, 3, 2, 1, True), Check(lambda r: [v.tolist() for v in r] == [[0, 1, 3, 5], [2, 4, 6, 7], [3, 3, 3, 3]])),
    ("pool_windows", "small_excluded", (4, 7, 3, 2, 1, False), Check(lambda r: r[2].tolist() == [2, 3, 3, 2])),
    ("pool_windows", "out_2**62", (2**62, 7, 3, 2, 1, True), Raises(ValueError, r"out_size <= 2\*\*32")),
    ("pool_windows", "out_2**40", (2**40, 7, 3, 2, 1, True), Raises(ValueError, r"out_size <= 2\*\*32")),
    ("pool_windows", "str", ("4", 7, 3, 2, 1, True), T(r"out_size must be an int, got str")),
    ("pool_windows", "none", (None, 7, 3, 2, 1, True), T(r"out_size must be an int, got NoneType")),
    # window_start / window_end (a, b, c): pure Python ints, exact at any size
    ("window_start", "huge", (2, 3, BIG), Check(_check_value(math.floor(Fraction(2 * BIG, 3))))),
    ("window_end", "huge", (2, 3, BIG), Check(_check_value(math.ceil(Fraction(3 * BIG, 3))))),
    ("window_start", "huge_b", (BIG - 1, BIG, 10), Check(_check_value(math.floor(Fraction((BIG - 1) * 10, BIG))))),
    ("window_end", "huge_b", (BIG - 1, BIG, 10), Check(_check_value(10))),
    ("window_start", "b_zero", (0, 0, 10), Raises(ValueError, r"needs 0 <= a < b")),
    ("window_end", "b_zero", (0, 0, 10), Raises(ValueError, r"needs 0 <= a < b")),
    ("window_start", "str", ("a", 3, 10), T(r"a must be an int, got str")),
    ("window_end", "str", ("a", 3, 10), T(r"a must be an int, got str")),
    ("window_start", "none", (None, 3, 10), T(r"a must be an int, got NoneType")),
    ("window_end", "none", (0, None, 10), T(r"b must be an int, got NoneType")),
    ("window_end", "str_times_huge", (2**62, 3, "x"), T(r"int|str|unsupported operand")),
]


def _helper_marks(fn, kind):
    if kind in ("negative_out", "negative_in", "fractional_out", "str_times_huge"):
        return (HELPER_VALIDATION_BUG,)
    return ()


@pytest.mark.parametrize("fn, args, expect", [
    pytest.param(fn, args, exp, id=f"{fn}-{kind}", marks=_helper_marks(fn, kind))
    for fn, kind, args, exp in HELPER_CASES])
def test_window_helpers_hostile(fn, args, expect):
    f = getattr(adapool, fn)
    if isinstance(expect, Raises):
        with pytest.raises(expect.types) as info:
            f(*args)
        assert re.search(expect.pattern, str(info.value)), str(info.value)
    else:
        expect.fn(f(*args))


@fixed_bug(reason=(
    "fixed, was: adaptive_windows(out_size, in_size) with out_size * in_size >= 2**62 builds its tables "
    "in a Python loop over out_size windows, so a huge out_size (2**62, 2) runs for ever and eats "
    "all memory (OOM-killed without a limit) instead of raising MemoryError at once as "
    "adaptive_windows(2**40, 3) does"))
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc to limit the child's memory")
def test_adaptive_windows_huge_count_fails_fast():
    code = textwrap.dedent("""
        import os, resource, sys
        import adapool
        # 2 GiB more address space than the imports took: a MemoryError, not the OOM killer
        used = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (used + (2 << 30), used + (2 << 30)))
        try:
            adapool.adaptive_windows(2**62, 2)
        except (MemoryError, ValueError):
            sys.exit(0)
        sys.exit(3)
    """)
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=5, cwd=REPO_DIR)
    except subprocess.TimeoutExpired:
        pytest.fail("adaptive_windows(2**62, 2) did not fail within 5 s")
    assert proc.returncode == 0, proc.stderr[-2000:]


# ---- avg_pool2d's argument cache must not change what is valid -------------------------------

CACHE_BUG = fixed_bug(
    reason="fixed, was: avg_pool2d / avg_pool2d_backward cache validated arguments in an lru_cache keyed "
           "by equality, so after a call with kernel_size=2 (or padding=1, divisor_override=1) "
           "the equal-hashing 2.0 / True / 1.0 hit the cache and are accepted, while the same "
           "call in a fresh process raises TypeError: validation depends on call history")


@pytest.mark.parametrize("fn", ["avg_pool2d", "avg_pool2d_backward"])
@pytest.mark.parametrize("good, bad, message", [
    (dict(kernel_size=2), dict(kernel_size=2.0), r"argument 'kernel_size' \(position 2\) must be tuple of ints, not float"),
    (dict(kernel_size=(2, 3)), dict(kernel_size=(2.0, 3)), r"found element of type float at pos 0"),
    (dict(kernel_size=3, stride=2), dict(kernel_size=3, stride=2.0), r"argument 'stride' \(position 3\) must be tuple of ints, not float"),
    (dict(kernel_size=3, padding=1), dict(kernel_size=3, padding=True), r"argument 'padding' \(position 4\) must be tuple of ints, not bool"),
    (dict(kernel_size=2, divisor_override=1), dict(kernel_size=2, divisor_override=1.0), r"argument 'divisor_override' must be int, not float"),
    (dict(kernel_size=2, divisor_override=1), dict(kernel_size=2, divisor_override=True), r"argument 'divisor_override' must be int, not bool"),
], ids=["kernel_float", "kernel_float_element", "stride_float", "padding_bool", "divisor_float", "divisor_bool"])
@CACHE_BUG
def test_pool_argument_types_do_not_depend_on_call_history(fn, good, bad, message):
    x = np.ones((1, 2, 7, 6))

    go = np.ones(x.shape[:2] + _pool_out(good, x.shape[2:]))   # not through avg_pool2d's cache

    def run(kw):
        if fn == "avg_pool2d":
            return adapool.avg_pool2d(x, **kw)
        return adapool.avg_pool2d_backward(go, x.shape, **kw)

    with pytest.raises(TypeError, match=message):   # fresh cache: refused
        run(bad)
    run(good)                                        # an equal int call fills the cache
    with pytest.raises(TypeError, match=message):   # ... and must not change the answer
        run(bad)


# ---- huge thread counts ---------------------------------------------------------------------

@pytest.mark.skipif(not adapool.openmp_enabled(), reason="a serial build never starts threads")
@fixed_bug(reason=(
    "fixed, was: set_num_threads accepts any positive int (2**31 - 1, 2**63, ...) and a call with that "
    "many independent work items then asks OpenMP for one thread per item: the process dies "
    "(SIGSEGV from libgomp's team start-up with ~200000 items, or 'libgomp: Thread creation "
    "failed' and exit 1 with ~40000) instead of capping the count or raising ValueError"))
def test_huge_thread_count_does_not_crash():
    code = textwrap.dedent("""
        import resource
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))   # no core file from the crash
        import numpy as np, adapool
        try:
            adapool.set_num_threads(2**31 - 1)
            raise SystemExit("set_num_threads(2**31 - 1) was accepted")
        except ValueError as e:
            assert "at most" in str(e)
        adapool.set_num_threads(adapool._threads.MAX_THREADS)   # the most it takes: still runs
        x = np.ones((1, 200000, 1, 1), np.float32)
        y = adapool.adaptive_avg_pool2d(x, 1)
        assert y.shape == (1, 200000, 1, 1) and (y == 1).all()
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO_DIR)
    assert proc.returncode == 0 and "ok" in proc.stdout, (proc.returncode, proc.stderr[-2000:])


# ---- the dangerous calls again, in a subprocess: a crash fails this test, not pytest ------------

DANGEROUS = r'''
import re, resource, sys
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
import numpy as np
import adapool

HUGE = r"too big|Maximum allowed dimension|Unable to allocate|exceed|too large|must fit in int64"
failures, count = [], 0


def expect(label, fn, types=(ValueError, MemoryError), pattern=HUGE):
    global count
    count += 1
    try:
        fn()
    except types as e:
        if not re.search(pattern, str(e)):
            failures.append(f"{label}: {type(e).__name__}: {e} (expected /{pattern}/)")
        return
    except BaseException as e:
        failures.append(f"{label}: {type(e).__name__}: {e}")
        return
    failures.append(f"{label}: no error")


rng = np.random.default_rng(7)
for threads in (1, 2, 4):
    adapool.set_num_threads(threads)
    for nd in (1, 2, 3):
        x = rng.standard_normal((2, 3) + (5,) * nd).astype(np.float32)
        for kind in ("avg", "max"):
            f = getattr(adapool, f"adaptive_{kind}_pool{nd}d")
            for size in (2**62, 2**63, 2**64, (2**46,) + (1,) * (nd - 1), (2**31,) * nd, np.uint64(2**64 - 1)):
                expect(f"{kind}{nd}d output_size={size!r}", lambda: f(x, size))
            for shape in ((2, 3) + (2**62,) * nd, (2, 3) + (2**63,) + (1,) * (nd - 1), (2, 3) + (2**46,) + (1,) * (nd - 1)):
                go = np.ones((2, 3) + (2,) * nd, np.float32)
                if kind == "avg":
                    b = getattr(adapool, f"adaptive_avg_pool{nd}d_backward")
                    expect(f"avg{nd}d_backward input_shape={shape}", lambda: b(go, shape))
                else:
                    b = getattr(adapool, f"adaptive_max_pool{nd}d_backward")
                    expect(f"max{nd}d_backward input_shape={shape}", lambda: b(go, np.zeros(go.shape, np.int64), shape))
        # bad indices, small and large (parallel) calls, planar and channels-last
        for shape in ((2, 3) + (5,) * nd, (2, 4096) + (4,) * nd):
            x = rng.standard_normal(shape)
            y, ind = getattr(adapool, f"adaptive_max_pool{nd}d")(x, 2, return_indices=True)
            b = getattr(adapool, f"adaptive_max_pool{nd}d_backward")
            plane = 5**nd if shape[1] == 3 else 4**nd
            for layout in ("c", "channels_last"):
                for bad in (-1, plane, plane + 1, 2**31, 2**32, 2**62, 2**63 - 1, -2**63):
                    for where in (0, ind.size // 2, ind.size - 1):
                        wrong = ind.copy()
                        wrong.reshape(-1)[where] = bad
                        go = np.ones_like(y)
                        if layout == "channels_last":
                            order = (0,) + tuple(range(2, nd + 2)) + (1,)
                            back = tuple(np.argsort(order))
                            wrong = np.ascontiguousarray(wrong.transpose(order)).transpose(back)
                            go = np.ascontiguousarray(go.transpose(order)).transpose(back)
                        expect(f"max{nd}d_backward index={bad} at {where} {layout} {shape}",
                               lambda: b(go, wrong, shape), ValueError, r"found an index outside")
            # and after all that, a valid gradient is still right
            gi = b(np.ones_like(y), ind, shape)
            assert gi.sum() == y.size, "max backward lost or duplicated a gradient after bad calls"
    x = rng.standard_normal((2, 3, 7, 6))
    for kw in (dict(kernel_size=2**62), dict(kernel_size=2**31), dict(kernel_size=2, stride=2**62),
               dict(kernel_size=2**62, stride=1, padding=2**61), dict(kernel_size=(2**63, 2), stride=1),
               dict(kernel_size=2, divisor_override=2**63), dict(kernel_size=2, divisor_override=-2**63 - 1)):
        expect(f"avg_pool2d {kw}", lambda: adapool.avg_pool2d(x, **kw))
        expect(f"avg_pool2d_backward {kw}", lambda: adapool.avg_pool2d_backward(np.ones((2, 3, 3, 3)), x.shape, **kw))
    for shape in ((2, 3, 2**62, 2**62), (2, 3, 2**46, 2**46), (2, 3, 2**63, 7)):
        expect(f"avg_pool2d_backward input_shape={shape}",
               lambda: adapool.avg_pool2d_backward(np.ones((2, 3, 1, 1)), shape, 2**46),
               (ValueError, MemoryError), HUGE + "|grad_output has shape")
    # out= overlapping the input: refused before anything is written
    before = x.copy()
    expect("out overlaps input", lambda: adapool.adaptive_avg_pool2d(x, (7, 6), out=x), ValueError, "overlaps")
    expect("out view of input", lambda: adapool.avg_pool2d(x, 1, out=x[:, :, ::1, ::1]), ValueError, "overlaps")
    assert (x == before).all(), "a refused out= call wrote into its input"
adapool.set_num_threads(None)
print(f"{count} dangerous calls, {len(failures)} failures")
for f in failures:
    print("FAIL", f)
sys.exit(1 if failures else 0)
'''


def test_dangerous_calls_in_a_subprocess():
    proc = subprocess.run([sys.executable, "-c", DANGEROUS], capture_output=True, text=True, timeout=300, cwd=REPO_DIR)
    assert proc.returncode == 0, (
        f"exit code {proc.returncode} (negative: killed by signal {-proc.returncode})\n"
        f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    assert " 0 failures" in proc.stdout


# ---- the kernels' own entry checks -------------------------------------------------------------
# The Python layer validates everything first; the kernels' def wrappers still refuse arrays
# that break what their raw loops assume, so a caller that bypasses the Python layer (or a bug
# in it) gets an exception, never a write out of bounds.

def _entry_arrays():
    from adapool._pooling import _adaptive_table
    x = np.ones((2, 3, 8, 8), np.float32)
    y = np.empty((2, 3, 2, 2), np.float32)
    ind = np.empty((2, 3, 2, 2), np.int64)
    return x, y, ind, _adaptive_table((2, 2), (8, 8))


@pytest.mark.parametrize("bad, error, pattern", [
    (dict(y=np.empty((3, 3, 2, 2), np.float32)), ValueError, "same N and C"),
    (dict(y=np.empty((2, 4, 2, 2), np.float32)), ValueError, "same N and C"),
    (dict(y=np.empty((2, 3, 2, 2), np.float64)), TypeError, "one dtype"),
    (dict(x=np.ones((2, 3, 8, 8), np.int32), y=np.empty((2, 3, 2, 2), np.int32)), TypeError, "float16, float32"),
    (dict(y=np.empty((3, 2, 2), np.float32)), ValueError, "one rank"),
    (dict(x=np.ones((8, 8), np.float32), y=np.empty((2, 2), np.float32)), ValueError, r"\(C, \*spatial\)"),
    (dict(y=np.empty((2, 3, 3, 2), np.float32)), ValueError, "window table"),
    (dict(y=np.empty((2, 0, 2, 2), np.float32), x=np.ones((2, 0, 8, 8), np.float32)), ValueError, "non-empty"),
    (dict(x=np.ones((2, 3, 8, 16), np.float32)[..., ::2]), ValueError, "unit-stride"),
    (dict(table=np.zeros(12, np.int32)), TypeError, "int64"),
    (dict(ind=np.empty((2, 3, 2, 2), np.int32)), TypeError, "int64"),
    (dict(ind=np.empty((2, 3, 2, 3), np.int64)[..., :2]), ValueError, "output's shape and layout"),
    (dict(ind=np.empty((2, 3, 2, 1), np.int64)), ValueError, "output's shape and layout"),
])
@pytest.mark.parametrize("kernel", ["avg", "max"])
def test_kernel_entries_refuse_what_their_loops_cannot_take(bad, error, pattern, kernel):
    from adapool._dispatch import kernels
    if kernel == "avg" and "ind" in bad:
        return   # (the average kernel takes no indices)
    x, y, ind, table = _entry_arrays()
    a = dict(x=x, y=y, ind=ind, table=table) | bad
    with pytest.raises(error, match=pattern):
        if kernel == "avg":
            kernels.avg_pool_forward(2, a["x"], a["y"], a["table"], False, 3, 1)
        else:
            kernels.max_pool_forward(2, a["x"], a["y"], a["ind"], a["table"], False, 3, 1)


def test_kernel_entries_refuse_read_only_and_misaligned_outputs():
    from adapool._dispatch import kernels
    x, y, ind, table = _entry_arrays()
    y.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        kernels.avg_pool_forward(2, x, y, table, False, 3, 1)
    raw = np.empty(y.nbytes + 1, np.uint8)
    shifted = raw[1:].view(np.float32).reshape(y.shape)
    with pytest.raises(ValueError, match="aligned"):
        kernels.avg_pool_forward(2, x, shifted, table, False, 3, 1)
    gi = np.empty((2, 3, 8, 8), np.float32)
    go = np.ones((2, 3, 2, 2), np.float32)
    with pytest.raises(ValueError, match="dense"):
        kernels.max_pool_backward(2, go, np.zeros((2, 3, 2, 2), np.int64), np.empty((2, 3, 8, 16), np.float32)[..., :8], False, 3, 1)
    with pytest.raises(IndexError):
        kernels.max_pool_backward(2, go, np.full((2, 3, 2, 2), 64, np.int64), gi, False, 3, 1)


def test_max_backward_kernel_refuses_a_grad_input_not_dense_across_images():
    from adapool._dispatch import kernels
    go = np.ones((2, 3, 2, 2), np.float32)
    ind = np.zeros((2, 3, 2, 2), np.int64)
    # each image dense, but a gap between images: plane n * C + c no longer starts at its
    # offset, which the planar scatter relies on
    gapped = np.empty((2, 4, 8, 8), np.float32)[:, :3]
    with pytest.raises(ValueError, match="dense"):
        kernels.max_pool_backward(2, go, ind, gapped, False, 3, 1)
    gapped_cl = np.empty((2, 8, 8, 4), np.float32)[..., :3].transpose(0, 3, 1, 2)
    with pytest.raises(ValueError, match="dense"):
        kernels.max_pool_backward(2, go, ind, gapped_cl, True, 3, 1)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_max_backward_kernel_scatters_strided_grad_output_like_dense(dtype):
    # The Python layer always passes grad_output and indices dense; the kernel entry also takes
    # strided views (its second loop) and must give the same bits.
    from adapool._dispatch import kernels
    rng = np.random.default_rng(5)
    go_big = rng.standard_normal((2, 3, 4, 6)).astype(dtype)
    ind_big = rng.integers(0, 64, (2, 3, 4, 6)).astype(np.int64)
    go, ind = go_big[:, :, ::2, ::3], ind_big[:, :, ::2, ::3]
    strided = np.empty((2, 3, 8, 8), dtype)
    dense = np.empty((2, 3, 8, 8), dtype)
    kernels.max_pool_backward(2, go, ind, strided, False, 3, 2)
    kernels.max_pool_backward(2, np.ascontiguousarray(go), np.ascontiguousarray(ind), dense, False, 3, 1)
    expected = adaptive_max_pool_backward_ref(go.astype(np.float64), ind, (2, 3, 8, 8), 2)
    np.testing.assert_array_equal(strided, dense)
    np.testing.assert_allclose(dense.astype(np.float64), expected, rtol=1e-3 if dtype == np.float16 else 1e-6)
    with pytest.raises(IndexError):
        bad = ind_big.copy()
        bad[1, 2, 0, 3] = -1   # the strided view's [1, 2, 0, 1]
        kernels.max_pool_backward(2, go, bad[:, :, ::2, ::3], strided, False, 3, 1)
