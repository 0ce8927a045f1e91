"""The strided pools: max_pool1d/2d/3d (dilation, ceil_mode, indices), avg_pool1d/3d, and
avg_pool2d through the same path. Values, indices, gradients, layouts and error messages,
against the float64 reference (tests/reference.py, built on adapool's window module) and torch.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import adapool
from layouts import LAYOUTS, assert_same_bits_on_1_and_2_threads, sample_values, with_layout
from reference import (strided_avg_backward_ref, strided_max_backward_ref, strided_max_empty_windows,
                       strided_ref)

OPS = ["max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d"]
DTYPES = [np.float16, np.float32, np.float64]
TOL = {np.float16: 1e-3, np.float32: 1e-6, np.float64: 1e-12}


def _nd(op):
    return int(op[-2])


@st.composite
def strided_calls(draw, ops=OPS):
    """(op, x, kwargs, per-axis (kernel, stride, padding, dilation)): valid calls with C >= 1
    (empty batches have a named test); data that is normal, full of ties, or with NaN/-inf."""
    op = draw(st.sampled_from(ops))
    nd, is_max = _nd(op), op.startswith("max")
    side = 3 if nd == 3 else 5
    kernel = tuple(draw(st.integers(1, side)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(nd)) if is_max else (1,) * nd
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    ceil_mode = draw(st.booleans())
    spatial = []
    for k, p, d in zip(kernel, padding, dilation):
        low = max(1, (k - 1) * d + 1 - 2 * p, k if op == "avg_pool3d" else 1)
        spatial.append(draw(st.integers(low, low + (4 if nd == 3 else 9))))
    batched = draw(st.booleans())
    shape = ((draw(st.integers(1, 3)),) if batched else ()) + (draw(st.integers(1, 4)),) + tuple(spatial)
    x = sample_values(draw, shape, neg_inf=0.15)

    def form(v):   # an int when every axis agrees (sometimes), else the tuple
        return v[0] if len(set(v)) == 1 and draw(st.booleans()) else v

    kwargs = dict(kernel_size=form(kernel), padding=form(padding), ceil_mode=ceil_mode)
    stride_form = draw(st.sampled_from(["given", "none", "empty"]))
    if stride_form == "given":
        kwargs["stride"] = form(stride)
    else:
        kwargs["stride"] = None if stride_form == "none" else ()
        stride = kernel
    if is_max:
        kwargs["dilation"] = form(dilation)
    else:
        kwargs["count_include_pad"] = draw(st.booleans())
        if nd > 1 and draw(st.booleans()):
            kwargs["divisor_override"] = draw(st.sampled_from([-3, 1, 2, 7]))
    return op, x, batched, kwargs, (kernel, stride, padding, dilation)


def _reference(op, x, kwargs, axes):
    kernel, stride, padding, dilation = axes
    return strided_ref(op, x, kernel, stride, padding, dilation, kwargs["ceil_mode"],
                       kwargs.get("count_include_pad", True), kwargs.get("divisor_override"))


def _assert_max_equal(actual, expected):
    np.testing.assert_array_equal(actual, expected)                                 # NaN where NaN
    np.testing.assert_array_equal(np.signbit(actual), np.signbit(expected))         # -0.0 kept


@given(call=strided_calls(), dtype=st.sampled_from(DTYPES), layout=st.sampled_from(LAYOUTS))
def test_strided_matches_reference(call, dtype, layout):
    op, x, batched, kwargs, axes = call
    x = x.astype(dtype)
    xl = with_layout(x, layout, batched=batched)
    fn = getattr(adapool, op)
    if op.startswith("max"):
        (y, ind), (ey, ei) = fn(xl, return_indices=True, **kwargs), _reference(op, x, kwargs, axes)
        _assert_max_equal(y, ey)
        np.testing.assert_array_equal(ind, ei)
        np.testing.assert_array_equal(fn(xl, **kwargs), y)   # with or without indices: one answer
        assert y.dtype == dtype and ind.dtype == np.int64
    else:
        y = fn(xl, **kwargs)
        expected = _reference(op, x, kwargs, axes)
        assert y.dtype == dtype and y.shape == expected.shape
        finite = np.isfinite(expected)
        scale = np.abs(np.where(finite, expected, 0)).max(initial=1.0) + np.abs(np.nan_to_num(x.astype(np.float64), posinf=0, neginf=0)).max(initial=0)
        tol = TOL[dtype]
        np.testing.assert_allclose(np.asarray(y, np.float64)[finite], expected[finite], rtol=tol, atol=tol * scale)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
        np.testing.assert_array_equal(np.asarray(y)[np.isinf(expected)], expected[np.isinf(expected)])


def _torch_call(torch, op, x, kwargs, return_indices=False):
    F = torch.nn.functional
    kw = dict(kwargs)
    if op.startswith("max"):
        kw["return_indices"] = return_indices
    return getattr(F, op)(x, **kw)


@given(call=strided_calls(), layout=st.sampled_from(["contiguous", "channels_last", "strided_all"]))
def test_strided_matches_torch(torch_oracle, call, layout):
    torch = torch_oracle
    op, x, batched, kwargs, axes = call
    x = x.astype(np.float32)
    xl = with_layout(x, layout, batched=batched)
    t = torch.from_numpy(np.ascontiguousarray(x))
    if layout == "channels_last" and batched and _nd(op) > 1:   # the same layout on torch's side
        t = t.contiguous(memory_format=torch.channels_last if _nd(op) == 2 else torch.channels_last_3d)
    if op.startswith("max"):
        y, ind = getattr(adapool, op)(xl, return_indices=True, **kwargs)
        ty, ti = _torch_call(torch, op, t, kwargs, return_indices=True)
        _assert_max_equal(y, ty.numpy())
        # A window with no element: torch's index there is whatever its kernel started from,
        # and its contiguous and channels-last kernels disagree; adapool gives the contiguous
        # kernel's (the reference test checks it). Elsewhere the indices are equal.
        empty = strided_max_empty_windows(x.shape, *axes, kwargs["ceil_mode"])
        if layout == "channels_last" and batched and _nd(op) == 3:
            # torch 2.13's channels-last 3-d kernel drops the depth term of an all -inf window's
            # index in the channels past the last multiple of 8 (test_small_planes has the named
            # test); the rule is layout-independent, so its contiguous kernel's indices.
            ti = _torch_call(torch, op, torch.from_numpy(np.ascontiguousarray(x)), kwargs, return_indices=True)[1]
        np.testing.assert_array_equal(np.where(empty, 0, ind), np.where(empty, 0, ti.numpy()))
        _assert_max_equal(getattr(adapool, op)(xl, **kwargs), _torch_call(torch, op, t, kwargs).numpy())
    else:
        y = getattr(adapool, op)(xl, **kwargs)
        ty = _torch_call(torch, op, t, kwargs).numpy()
        finite = np.isfinite(ty)
        np.testing.assert_allclose(y[finite], ty[finite], rtol=2e-5, atol=2e-5 * (1 + np.abs(x[np.isfinite(x)]).max(initial=0)))
        np.testing.assert_array_equal(np.isnan(y), np.isnan(ty))


@given(call=strided_calls(), dtype=st.sampled_from(DTYPES), layout=st.sampled_from(LAYOUTS))
@settings(max_examples=150)
def test_strided_backward_matches_reference(call, dtype, layout):
    op, x, batched, kwargs, axes = call
    x = np.nan_to_num(x, nan=1.0, neginf=-1.0)
    fn = getattr(adapool, op)
    backward = getattr(adapool, op + "_backward")
    sizes = {k: v for k, v in kwargs.items() if k != "count_include_pad" and k != "divisor_override"}
    rng = np.random.default_rng(0)
    if op.startswith("max"):
        y, ind = fn(x, return_indices=True, **kwargs)
        go = rng.standard_normal(y.shape).astype(dtype)
        gi = backward(with_layout(go, layout, batched=batched), with_layout(ind, layout, batched=batched),
                      x.shape, **sizes)
        kernel, stride, padding, dilation = axes
        expected = strided_max_backward_ref(go, ind, x.shape, kernel, stride, padding, dilation, kwargs["ceil_mode"])
    else:
        y = fn(x, **kwargs)
        go = rng.standard_normal(y.shape).astype(dtype)
        gi = backward(with_layout(go, layout, batched=batched), x.shape, **kwargs)
        kernel, stride, padding, _ = axes
        expected = strided_avg_backward_ref(go, x.shape, kernel, stride, padding, kwargs["ceil_mode"],
                                            kwargs["count_include_pad"], kwargs.get("divisor_override"))
    assert gi.shape == x.shape and gi.dtype == dtype
    scale = np.abs(expected).max(initial=1.0)
    np.testing.assert_allclose(np.asarray(gi, np.float64), expected, rtol=TOL[dtype], atol=TOL[dtype] * scale)


@given(call=strided_calls())
@settings(max_examples=150)
def test_strided_backward_matches_torch_autograd(torch_oracle, call):
    torch = torch_oracle
    op, x, batched, kwargs, axes = call
    if op.startswith("max"):   # torch scatters an empty window's gradient (see the named test)
        assume(not strided_max_empty_windows(x.shape, *axes, kwargs["ceil_mode"]).any())
    x = np.nan_to_num(x, nan=1.0, neginf=-1.0)
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    out = _torch_call(torch, op, t, kwargs, return_indices=op.startswith("max"))
    ty = out[0] if op.startswith("max") else out
    go = np.random.default_rng(1).standard_normal(tuple(ty.shape))
    ty.backward(torch.from_numpy(go))
    if op.startswith("max"):
        sizes = {k: v for k, v in kwargs.items()}
        gi = getattr(adapool, op + "_backward")(go, out[1].numpy(), x.shape, **sizes)
    else:
        gi = getattr(adapool, op + "_backward")(go, x.shape, **kwargs)
    np.testing.assert_allclose(gi, t.grad.numpy(), rtol=1e-12, atol=1e-12)


# ---- named edge cases -------------------------------------------------------------------------

def test_max_pool2d_dilation_padding_and_ceil_mode_windows():
    # H = 8, kernel 3, dilation 2, padding 1, stride 2, ceil_mode (4 outputs, 3 without): the
    # windows read rows {-1, 1, 3} -> {1, 3}, {1, 3, 5}, {3, 5, 7}, {5, 7, 9} -> {5, 7}
    x = np.arange(8.0)[None, None, :, None] * np.ones((1, 1, 8, 1))
    y, ind = adapool.max_pool2d(x, (3, 1), stride=(2, 1), padding=(1, 0), dilation=(2, 1), ceil_mode=True,
                                return_indices=True)
    assert y[0, 0, :, 0].tolist() == [3.0, 5.0, 7.0, 7.0]
    assert ind[0, 0, :, 0].tolist() == [3, 5, 7, 7]
    assert adapool.max_pool2d(x, (3, 1), stride=(2, 1), padding=(1, 0), dilation=(2, 1)).shape == (1, 1, 3, 1)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_pool_ties_nan_and_all_neg_inf_windows(nd):
    shape = (1, 2) + (4,) * nd
    x = np.zeros(shape)
    x[0, 1] = -np.inf
    x[(0, 0) + (1,) * nd] = np.nan
    x[(0, 0) + (3,) * nd] = np.nan
    fn = getattr(adapool, f"max_pool{nd}d")
    y, ind = fn(x, 4, return_indices=True)
    assert np.isnan(y[0, 0]).all() and ind[0, 0].item() == int(np.ravel_multi_index((3,) * nd, (4,) * nd))  # last NaN
    assert y[0, 1].item() == -np.inf and ind[0, 1].item() == 0   # all -inf: the first element
    y, ind = fn(np.zeros(shape), 2, return_indices=True)          # ties: the first maximum
    first = np.ravel_multi_index(np.meshgrid(*[np.arange(0, 4, 2)] * nd, indexing="ij"), (4,) * nd)
    np.testing.assert_array_equal(ind[0, 0], first)


def test_max_pool_window_without_elements(torch_oracle):
    # L = 3, kernel 2, dilation 4, padding 1: the window reads positions -1 and 3, neither in
    # the input. torch gives -inf and index 3 (= L, outside the plane); adapool gives the same.
    # Its gradient: that output is a constant, so no input gets it. torch's scatter writes it
    # at index 3 of the flat buffer, which is the next channel's first element (a torch bug);
    # adapool drops it.
    torch = torch_oracle
    x = np.arange(6.0).reshape(1, 2, 3)
    y, ind = adapool.max_pool1d(x, 2, stride=1, padding=1, dilation=4, return_indices=True)
    t = torch.from_numpy(x).requires_grad_(True)
    ty, ti = torch.nn.functional.max_pool1d(t, 2, stride=1, padding=1, dilation=4, return_indices=True)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(ind, ti.numpy())
    assert y.tolist() == [[[-np.inf], [-np.inf]]] and ind.tolist() == [[[3], [3]]]
    gi = adapool.max_pool1d_backward(np.ones_like(y), ind, x.shape, 2, 1, 1, 4)
    assert not gi.any()
    ty.backward(torch.ones_like(ty))
    assert t.grad[0, 1, 0] == 1.0   # torch: channel 0's gradient lands in channel 1


def test_max_pool_keeps_negative_zero_and_nan_payload():
    x = np.array([[[-0.0, -0.0, 1.0]]], np.float32)
    y = adapool.max_pool1d(x, 2, stride=1)
    assert np.signbit(y[0, 0, 0]) and y[0, 0, 1] == 1.0
    payload = np.array([0x7FC01234], np.uint32).view(np.float32)[0]
    x = np.array([[[1.0, payload, 3.0]]], np.float32)
    assert adapool.max_pool1d(x, 3).view(np.uint32)[0, 0, 0] == 0x7FC01234


@pytest.mark.parametrize("op", OPS)
def test_empty_batch_and_unbatched(op):
    nd = _nd(op)
    fn = getattr(adapool, op)
    empty = fn(np.ones((0, 2) + (4,) * nd, np.float32), 2)
    assert empty.shape == (0, 2) + (2,) * nd
    x = np.random.default_rng(3).standard_normal((3,) + (5,) * nd)
    np.testing.assert_array_equal(fn(x, 2, 2), fn(x[None], 2, 2)[0])


def test_result_layouts_follow_torch(torch_oracle):
    torch = torch_oracle
    F = torch.nn.functional
    for op, nd in (("max_pool2d", 2), ("max_pool3d", 3), ("avg_pool3d", 3), ("avg_pool1d", 1), ("max_pool1d", 1)):
        x = np.random.default_rng(0).standard_normal((2, 8) + (6,) * nd).astype(np.float32)
        cl = with_layout(x, "channels_last", batched=True)
        t = torch.from_numpy(x)
        t = t.contiguous(memory_format=torch.channels_last) if nd == 2 else (
            t.contiguous(memory_format=torch.channels_last_3d) if nd == 3 else t.transpose(1, 2).contiguous().transpose(1, 2))
        for indices in ((False, True) if op.startswith("max") else (False,)):
            kw = dict(return_indices=True) if indices else {}
            ours = getattr(adapool, op)(cl, 2, **kw)
            theirs = getattr(F, op)(t, 2, **kw)
            ours, theirs = (ours[1], theirs[1]) if indices else (ours, theirs)
            assert ours.flags.c_contiguous == theirs.is_contiguous(), (op, indices)


def test_max_pool_backward_refuses_indices_outside_the_plane():
    go = np.ones((1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"found an index outside \[0, 16\)"):
        adapool.max_pool2d_backward(go, np.full((1, 1, 2, 2), 16, np.int64), (1, 1, 4, 4), 2)
    with pytest.raises(ValueError, match="grad_output has shape"):
        adapool.max_pool2d_backward(np.ones((1, 1, 3, 3)), np.zeros((1, 1, 3, 3), np.int64), (1, 1, 4, 4), 2)
    with pytest.raises(TypeError, match="int64"):
        adapool.max_pool2d_backward(go, np.zeros((1, 1, 2, 2), np.int32), (1, 1, 4, 4), 2)


def test_argument_cache_does_not_change_validation():
    # A valid call with exact ints is planned and its plan reused; an equal-hashing float or
    # bool must still be refused afterwards.
    x = np.ones((1, 2, 6, 6))
    adapool.max_pool2d(x, 2, 2, 1, 1, True)
    for bad in (dict(kernel_size=2.0), dict(kernel_size=2, ceil_mode=1), dict(kernel_size=2, dilation=True)):
        with pytest.raises(TypeError):
            adapool.max_pool2d(x, **bad)
    go = np.ones((1, 2, 3, 3))
    adapool.avg_pool2d_backward(go, x.shape, 2)
    with pytest.raises(TypeError):
        adapool.avg_pool2d_backward(go, x.shape, 2.0)
    _, ind = adapool.max_pool2d(x, 2, return_indices=True)
    adapool.max_pool2d_backward(go, ind, x.shape, 2)
    with pytest.raises(TypeError):
        adapool.max_pool2d_backward(go, ind, x.shape, 2, ceil_mode=0)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_strided_results_do_not_depend_on_thread_count(layout):
    rng = np.random.default_rng(7)
    x = with_layout(rng.standard_normal((4, 32, 33, 35)).astype(np.float32), layout)
    calls = [lambda: adapool.max_pool2d(x, 3, 2, 1, return_indices=True),
             lambda: adapool.max_pool2d(x, 3, 2, 1, dilation=2, return_indices=True),
             lambda: adapool.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
             lambda: adapool.max_pool1d(x[:, :, 0], 3, 2, 1, return_indices=True),
             lambda: adapool.avg_pool3d(x[:, :, :9], 3, 2, 1)]
    assert_same_bits_on_1_and_2_threads(calls)


# ---- errors: torch's words ----------------------------------------------------------------------

ERROR_CASES = [
    # (op, input shape, positional args after the input, keyword args)
    *[(op, shape, args, kw) for op in ("max_pool1d", "avg_pool1d") for shape, args, kw in [
        ((2,), (1,), {}), ((2, 2, 2, 2), (1,), {}), ((2, 0, 4), (2,), {}), ((2, 2, 0), (2,), {}),
        ((1, 2, 4), (0,), {}), ((1, 2, 4), (-1,), {}), ((1, 2, 4), (2, 0), {}), ((1, 2, 4), (2, -1), {}),
        ((1, 2, 4), (2, 1, -1), {}), ((1, 2, 4), (2, 1, 2), {}), ((1, 2, 2), (3,), {}),
        ((1, 2, 4), ((2, 2),), {}), ((1, 2, 4), (2, (1, 2)), {}), ((1, 2, 4), (2, 1, (1, 2)), {}),
        ((1, 2, 4), ((),), {}), ((1, 2, 4), (2.0,), {}), ((1, 2, 4), ((2.0,),), {}),
        ((1, 2, 4), ((True,),), {}), ((1, 2, 4), (2,), dict(ceil_mode=1)),
    ]],
    *[("max_pool1d", (1, 2, 4), (2, 1, 0), kw) for kw in (dict(dilation=0), dict(dilation=(1, 2)), dict(dilation=4))],
    *[("max_pool1d", (1, 2, 4), (2,), dict(kw, return_indices=True)) for kw in (
        dict(dilation=0), dict(stride=0), dict(padding=2), dict(dilation=5), dict(ceil_mode=1))],
    *[("max_pool1d", shape, (k,), dict(return_indices=True)) for shape, k in (
        ((2,), 1), ((2, 0, 4), 2), ((1, 2, 4), (2, 2)), ((1, 2, 4), 2.0), ((1, 2, 4), -1))],
    *[(op, shape, args, kw) for op in ("max_pool2d", "avg_pool2d") for shape, args, kw in [
        ((2, 2), (1,), {}), ((2, 2, 2, 2, 2), (1,), {}), ((2, 0, 4, 4), (2,), {}), ((2, 2, 0, 4), (2,), {}),
        ((1, 2, 4, 4), (0,), {}), ((1, 2, 4, 4), (-1,), {}), ((1, 2, 4, 4), (2, 0), {}), ((1, 2, 4, 4), (2, -1), {}),
        ((1, 2, 4, 4), (2, 1, -1), {}), ((1, 2, 4, 4), (2, 1, 2), {}), ((1, 2, 2, 2), (3,), {}),
        ((1, 2, 4, 4), ((2, 2, 2),), {}), ((1, 2, 4, 4), (2, (1, 2, 3)), {}), ((1, 2, 4, 4), (2, 1, (1, 2, 3)), {}),
        ((1, 2, 4, 4), ((),), {}), ((1, 2, 4, 4), (2.0,), {}), ((1, 2, 4, 4), ((2, 2.0),), {}),
        ((1, 2, 4, 4), ((2.0, 2),), {}), ((1, 2, 4, 4), ((True, 2),), {}), ((1, 2, 4, 4), (2,), dict(ceil_mode=1)),
        ((2, 0, 4, 5), (2, 1, 3), {}), ((1, 2, 4, 4), (2, 2.5), {}), ((1, 2, 4, 4), (2, 1, 1.0), {}),
    ]],
    *[("max_pool2d", (1, 2, 9, 9), (3, 1, 1), kw) for kw in (
        dict(dilation=0), dict(dilation=(1, 2, 3)), dict(dilation=2.0), dict(dilation=6), dict(dilation=(1, 0)))],
    *[("avg_pool2d", (1, 2, 4, 4), (2,), kw) for kw in (
        dict(divisor_override=0), dict(divisor_override=2.0), dict(count_include_pad=1))],
    *[(op, shape, args, kw) for op in ("max_pool3d", "avg_pool3d") for shape, args, kw in [
        ((2, 2, 2), (1,), {}), ((2, 2, 2, 2, 2, 2), (1,), {}), ((2, 0, 4, 4, 4), (2,), {}), ((2, 2, 0, 4, 4), (2,), {}),
        ((1, 2, 4, 4, 4), (0,), {}), ((1, 2, 4, 4, 4), (-1,), {}), ((1, 2, 4, 4, 4), (2, 0), {}),
        ((1, 2, 4, 4, 4), (2, -1), {}), ((1, 2, 4, 4, 4), (2, 1, -1), {}), ((1, 2, 4, 4, 4), (2, 1, 2), {}),
        ((1, 2, 2, 2, 2), (3,), {}), ((1, 2, 4, 4, 4), ((2, 2),), {}), ((1, 2, 4, 4, 4), (2, (1, 2)), {}),
        ((1, 2, 4, 4, 4), (2, 1, (1, 2)), {}), ((1, 2, 4, 4, 4), ((),), {}), ((1, 2, 4, 4, 4), (2.0,), {}),
        ((1, 2, 4, 4, 4), ((2, 2, 2.0),), {}), ((1, 2, 4, 4, 4), (2,), dict(ceil_mode=1)),
        ((1, 2, 2, 5, 5), ((3, 1, 1),), {}),
    ]],
    *[("max_pool3d", (1, 2, 9, 9, 9), (3, 1, 1), kw) for kw in (dict(dilation=0), dict(dilation=(1, 2)), dict(dilation=6))],
    *[("avg_pool3d", (1, 2, 4, 4, 4), (2,), kw) for kw in (dict(divisor_override=0), dict(divisor_override=1.5))],
]


def _torch_error(torch, op, shape, args, kw):
    try:
        getattr(torch.nn.functional, op)(torch.ones(shape), *args, **kw)
    except (RuntimeError, TypeError, ValueError, IndexError) as e:
        return e
    return None


@pytest.mark.parametrize("op, shape, args, kw", ERROR_CASES, ids=lambda v: str(v).replace(" ", ""))
def test_error_messages_match_torch(torch_oracle, op, shape, args, kw):
    theirs = _torch_error(torch_oracle, op, shape, args, kw)
    assert theirs is not None, "torch accepts this call: not an error case"
    expected_type = TypeError if isinstance(theirs, TypeError) else ValueError
    with pytest.raises(expected_type) as ours:
        getattr(adapool, op)(np.ones(shape), *args, **kw)
    if str(theirs).startswith("Dimension out of range"):
        # torch's avg_pool2d on a 2-d input fails in its shape arithmetic (an IndexError);
        # adapool names the rank, in the words torch uses for a 5-d input
        assert str(ours.value).startswith("Expected 3D or 4D (batch mode) tensor")
        return
    assert str(ours.value) == str(theirs).splitlines()[0]


@pytest.mark.parametrize("op", OPS)
def test_backward_takes_the_forward_arguments_errors(op):
    nd = _nd(op)
    shape = (1, 2) + (4,) * nd
    go = np.ones((1, 2) + (2,) * nd)
    backward = getattr(adapool, op + "_backward")
    args = (go, np.zeros(go.shape, np.int64)) if op.startswith("max") else (go,)
    with pytest.raises(ValueError, match="pad"):
        backward(*args, shape, 2, 2, 2)
    with pytest.raises(TypeError, match="kernel_size"):
        backward(*args, shape, 2.0)
    with pytest.raises(ValueError, match="grad_output has shape"):
        backward(*args, shape, 1)


@pytest.mark.parametrize("layout", ["channels_last", "strided_cl"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("call", [
    ("max_pool1d", dict(kernel_size=3, stride=2, padding=1)),
    ("max_pool1d", dict(kernel_size=3, stride=1, padding=1, dilation=3, ceil_mode=True)),
    ("avg_pool1d", dict(kernel_size=4, stride=3, padding=2, ceil_mode=True, count_include_pad=False)),
    ("adaptive_max_pool1d", dict(output_size=77)),
    ("adaptive_avg_pool1d", dict(output_size=123)),
], ids=lambda v: v if isinstance(v, str) else None)
def test_long_channels_last_1d_runs_as_rows(call, dtype, layout):
    # 1-d channels-last input with more than 32 outputs runs as (..., L, 1) (see _ForwardPlan):
    # the same results as the contiguous input, for values and indices
    op, kw = call
    rng = np.random.default_rng(11)
    x = rng.integers(-3, 4, (2, 24, 301)).astype(dtype)
    x[rng.random(x.shape) < 0.05] = np.nan
    fn = getattr(adapool, op)
    cl = with_layout(x, layout, batched=True)
    if "max" in op:
        (y, ind), (ey, ei) = fn(cl, return_indices=True, **kw), fn(x, return_indices=True, **kw)
        _assert_max_equal(y, ey)
        np.testing.assert_array_equal(ind, ei)
        assert y.strides[1] == y.itemsize or op == "max_pool1d"   # channels-last result, as torch's
    else:
        y, ey = fn(cl, **kw), fn(x, **kw)
        np.testing.assert_allclose(np.asarray(y, np.float64), np.asarray(ey, np.float64), rtol=TOL[dtype], atol=TOL[dtype])
        np.testing.assert_array_equal(np.isnan(y), np.isnan(ey))
    assert y.shape[-1] > 32
    unbatched = with_layout(x[0], layout, batched=False)
    got = fn(unbatched, **kw)
    if "max" in op:
        _assert_max_equal(got, ey[0])
    else:
        np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(ey[0], np.float64), rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided_rows"])
@pytest.mark.parametrize("call", [
    lambda x, **kw: adapool.max_pool2d(x, 3, 2, 1, **kw),                 # small planes: the tiled path
    lambda x, **kw: adapool.max_pool2d(x, (1, 3), (1, 2), (0, 1), **kw),  # one-row windows
    lambda x, **kw: adapool.max_pool2d(x, 3, 1, 1, dilation=2, **kw),     # dilated kernel
    lambda x, **kw: adapool.adaptive_max_pool2d(x, 1, **kw),              # global
    lambda x, **kw: adapool.adaptive_max_pool2d(x, (5, 3), **kw),         # two-pass planar / channels-last
    lambda x, **kw: adapool.max_pool1d(x[:, :, 0], 3, 2, 1, **kw),
], ids=["tiled", "one_row", "dilated", "global", "adaptive", "1d"])
def test_max_values_without_indices_equal_those_with(call, layout, dtype):
    # Without return_indices the kernels skip the index writes on every path
    rng = np.random.default_rng(5)
    for shape in ((2, 24, 9, 11), (2, 3, 40, 37)):
        x = rng.integers(-2, 3, shape).astype(dtype)
        x[rng.random(shape) < 0.05] = np.nan
        x = with_layout(x, layout)
        values, _ = call(x, return_indices=True)
        _assert_max_equal(call(x), values)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k, s, p", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (5, 3, 2), (4, 4, 0)])
@pytest.mark.parametrize("length", [600, 5000])
def test_max_pool1d_long_rows_uniform_runs(torch_oracle, dtype, k, s, p, length):
    # Rows past the tile path pool their uniform windows a block of outputs at a time
    # (vectorised over the outputs): torch's pick rule with ties, NaN runs, -inf runs and
    # -0.0/+0.0 across block boundaries, values and indices against the reference and torch
    rng = np.random.default_rng(length + k)
    x = rng.integers(-3, 4, (2, 3, length)).astype(dtype)      # many ties
    x[0, 0, 100:140] = np.nan
    x[0, 1, 250:270] = -np.inf
    x[1, 2, ::7] = -0.0
    x[1, 0, 255:258] = np.nan                                  # across the 256-output block edge
    x[1, 1, rng.integers(0, length, 50)] = np.nan
    for indices in (False, True):
        ours = adapool.max_pool1d(x, k, s, p, return_indices=indices)
        want_v, want_i = strided_ref("max_pool1d", x, (k,), (s,), (p,), (1,))
        got_v = ours[0] if indices else ours
        np.testing.assert_array_equal(got_v, want_v)
        assert np.array_equal(np.signbit(got_v), np.signbit(want_v))
        if indices:
            np.testing.assert_array_equal(ours[1], want_i)
    tv, ti = torch_oracle.nn.functional.max_pool1d(torch_oracle.from_numpy(x), k, s, p, return_indices=True)
    np.testing.assert_array_equal(adapool.max_pool1d(x, k, s, p, return_indices=True)[1], ti.numpy())
    np.testing.assert_array_equal(adapool.max_pool1d(x, k, s, p), tv.numpy())
