"""lp_pool1d/2d/3d and their gradients: values, NaN/inf, layouts, float16 rounding and error
messages, against the float64 reference (tests/reference.py, built on adapool's window module)
and torch (its Python composition of pow, avg_pool/max_pool, sign, relu and pow again)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import adapool
from layouts import LAYOUTS, with_layout
from reference import lp_pool_backward_ref, lp_pool_ref

INF = float("inf")
# int and float forms of the same p, torch's pow special cases (2, 3, 0.5, -0.5, -1, -2 and
# their inverses), general powers, and the max paths
NORMS = [1, 2, 3, 2.0, 3.0, 4, 1.5, 2.5, 0.5, -0.5, -1, -2, -1.5, INF, -INF]
DTYPES = [np.float16, np.float32, np.float64]
TOL = {np.float16: 1e-2, np.float32: 2e-5, np.float64: 1e-12}


def _op(nd, backward=False):
    return getattr(adapool, f"lp_pool{nd}d" + ("_backward" if backward else ""))


def _values(draw, shape, signed):
    """Positive values (no cancellation: every dtype is compared tightly), signed values
    (float64 only: odd p cancel, fractional p give NaN), or small integers with zeros and
    optionally NaN/inf mixed in."""
    kind = draw(st.sampled_from(["positive", "signed", "ties", "specials"] if signed else
                                ["positive", "ties", "specials"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "positive":
        return rng.uniform(0.25, 3.0, shape)
    if kind == "signed":
        return rng.standard_normal(shape) * 2
    x = rng.integers(-2 if signed else 0, 3, shape).astype(np.float64)
    if kind == "specials":
        x[rng.random(shape) < 0.1] = np.nan
        x[rng.random(shape) < 0.1] = np.inf
    return x


@st.composite
def lp_calls(draw, nds=(1, 2, 3), signed=True, norms=NORMS):
    """(nd, x, batched, args, kwargs, (kernel, stride)): valid lp_pool calls (input at least
    the kernel: there is no padding)."""
    nd = draw(st.sampled_from(nds))
    p = draw(st.sampled_from(norms))
    side = 3 if nd == 3 else 4
    kernel = tuple(draw(st.integers(1, side)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    ceil_mode = draw(st.booleans())
    spatial = tuple(draw(st.integers(k, k + (4 if nd == 3 else 7))) for k in kernel)
    batched = draw(st.booleans())
    shape = ((draw(st.integers(1, 2)),) if batched else ()) + (draw(st.integers(1, 3)),) + spatial
    x = _values(draw, shape, signed)

    def form(v):   # an int when every axis agrees (lp_pool1d's kernel must be one), else the tuple
        return v[0] if nd == 1 or (len(set(v)) == 1 and draw(st.booleans())) else v

    kw = dict(ceil_mode=ceil_mode)
    how = draw(st.sampled_from(["given", "none"]))
    if how == "given":
        kw["stride"] = form(stride) if nd > 1 else draw(st.sampled_from([stride[0], stride]))
    else:
        kw["stride"], stride = None, kernel
    if nd == 1:
        kernel_arg = kernel[0]
    else:
        kernel_arg = form(kernel)
    return nd, x, batched, (p, kernel_arg), kw, (kernel, stride)


def _assert_close(actual, expected, tol):
    """Equal NaN and inf positions (and signs), finite values to ``tol`` relative (atol for
    results that are 0 in the reference)."""
    actual = np.asarray(actual, dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    inf = np.isinf(expected)
    np.testing.assert_array_equal(actual[inf], expected[inf])
    finite = np.isfinite(expected)
    np.testing.assert_allclose(actual[finite], expected[finite], rtol=tol, atol=tol)


@given(call=lp_calls(), dtype=st.sampled_from(DTYPES), layout=st.sampled_from(LAYOUTS))
@settings(max_examples=120)
def test_lp_matches_reference(call, dtype, layout):
    nd, x, batched, (p, kernel_arg), kw, (kernel, stride) = call
    if dtype != np.float64:
        x = np.abs(x)   # signed sums cancel: compared in float64 only
    x = x.astype(dtype)
    y = _op(nd)(with_layout(x, layout, batched=batched), p, kernel_arg, **kw)
    expected = lp_pool_ref(x, p, kernel, stride, kw["ceil_mode"])
    assert y.dtype == dtype and y.shape == expected.shape
    if dtype == np.float16:   # results past float16's range are inf in both
        expected = expected.astype(np.float16).astype(np.float64)
    _assert_close(y, expected, TOL[dtype])


def _torch_input(torch, x, layout, batched, nd):
    t = torch.from_numpy(np.ascontiguousarray(x))
    if layout == "channels_last" and batched and nd > 1:   # the same layout on torch's side
        t = t.contiguous(memory_format=torch.channels_last if nd == 2 else torch.channels_last_3d)
    return t


@given(call=lp_calls(), dtype=st.sampled_from(DTYPES), layout=st.sampled_from(["contiguous", "channels_last",
                                                                              "strided_all"]))
@settings(max_examples=120)
def test_lp_matches_torch(torch_oracle, call, dtype, layout):
    torch = torch_oracle
    nd, x, batched, args, kw, _ = call
    if dtype == np.float16 and nd == 3:
        dtype = np.float32   # torch has no float16 avg_pool3d on CPU (see the named test)
    if dtype != np.float64:
        x = np.abs(x)
    x = x.astype(dtype)
    y = _op(nd)(with_layout(x, layout, batched=batched), *args, **kw)
    ty = getattr(torch.nn.functional, f"lp_pool{nd}d")(_torch_input(torch, x, layout, batched, nd), *args, **kw)
    assert y.dtype == dtype and y.shape == tuple(ty.shape)
    if dtype == np.float16:
        # torch's half ops round after every step, and so does adapool: the same bits except
        # where the pool's sums differ in their last bit
        _assert_close(y, ty.double().numpy(), 2e-3)
    else:
        _assert_close(y, ty.double().numpy(), 1e-5 if dtype == np.float32 else 1e-12)


@given(call=lp_calls(signed=True))
@settings(max_examples=120)
def test_lp_backward_matches_torch_autograd(torch_oracle, call):
    torch = torch_oracle
    nd, x, batched, args, kw, _ = call
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = getattr(torch.nn.functional, f"lp_pool{nd}d")(t, *args, **kw)
    go = np.random.default_rng(1).standard_normal(tuple(ty.shape))
    ty.backward(torch.from_numpy(go))
    gi = _op(nd, backward=True)(go, x, *args, **kw)
    expected = t.grad.numpy()
    assert gi.shape == x.shape and gi.dtype == np.float64
    scale = np.abs(expected[np.isfinite(expected)]).max(initial=1.0)
    np.testing.assert_array_equal(np.isnan(gi), np.isnan(expected))
    np.testing.assert_array_equal(gi[np.isinf(expected)], expected[np.isinf(expected)])
    finite = np.isfinite(expected)
    np.testing.assert_allclose(gi[finite], expected[finite], rtol=1e-12, atol=1e-12 * scale)


@given(call=lp_calls(norms=[n for n in NORMS if abs(n) != INF]), layout=st.sampled_from(LAYOUTS))
@settings(max_examples=60)
def test_lp_backward_matches_reference(call, layout):
    nd, x, batched, (p, kernel_arg), kw, (kernel, stride) = call
    x = np.where(np.isfinite(x), x, 1.0)
    y = _op(nd)(x, p, kernel_arg, **kw)
    go = np.random.default_rng(2).standard_normal(y.shape)
    gi = _op(nd, backward=True)(with_layout(go, layout, batched=batched), with_layout(x, layout, batched=batched),
                                p, kernel_arg, **kw)
    expected = lp_pool_backward_ref(go, x, p, kernel, stride, kw["ceil_mode"])
    scale = np.abs(expected[np.isfinite(expected)]).max(initial=1.0)
    np.testing.assert_array_equal(np.isnan(gi), np.isnan(expected))
    np.testing.assert_array_equal(gi[np.isinf(expected)], expected[np.isinf(expected)])
    finite = np.isfinite(expected)
    np.testing.assert_allclose(gi[finite], expected[finite], rtol=1e-9, atol=1e-9 * scale)


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("p", [2, 3, 1.5, -1, 0.5])
def test_float16_backward_close_to_torch(torch_oracle, nd, p):
    # adapool's average-pool gradient sums in float64 and rounds once; torch's half kernel adds
    # overlapping windows in half, so the two differ by float16 rounding, not more
    torch = torch_oracle
    x = np.random.default_rng(3).uniform(0.25, 2.0, (2, 3) + (9,) * nd).astype(np.float16)
    t = torch.from_numpy(x).requires_grad_(True)
    ty = getattr(torch.nn.functional, f"lp_pool{nd}d")(t, p, 3, 2, True)
    go = np.random.default_rng(4).standard_normal(tuple(ty.shape)).astype(np.float16)
    ty.backward(torch.from_numpy(go))
    gi = _op(nd, backward=True)(go, x, p, 3, 2, True)
    assert gi.dtype == np.float16
    expected = t.grad.double().numpy()
    np.testing.assert_allclose(gi.astype(np.float64), expected, rtol=1e-2, atol=1e-2 * np.abs(expected).max())


# ---- named edge cases -------------------------------------------------------------------------

def test_ceil_mode_window_divides_by_its_clamped_area_and_multiplies_by_the_full_one(torch_oracle):
    # L = 5, kernel 2, ceil_mode: the last window holds one element; avg_pool (no padding to
    # count) divides by 1, and the factor is still the kernel's 2
    x = np.ones((1, 1, 5))
    y = adapool.lp_pool1d(x, 1, 2, ceil_mode=True)
    assert y.tolist() == [[[2.0, 2.0, 2.0]]]
    np.testing.assert_array_equal(y, torch_oracle.nn.functional.lp_pool1d(torch_oracle.from_numpy(x), 1, 2,
                                                                           ceil_mode=True).numpy())
    assert adapool.lp_pool2d(np.ones((1, 3, 3)), 2, 2, ceil_mode=True)[0, 1, 1] == 2.0   # sqrt(4 * 1)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_negative_window_sums(torch_oracle, nd):
    # odd p and negative input: p = 3 gives a negative sum, whose cube root torch's pow makes
    # NaN; p = 1 and p = -1 keep the sign (1/p is an integer)
    x = -np.ones((1, 1) + (2,) * nd)
    F = torch_oracle.nn.functional
    for p, expected in ((3, np.nan), (3.0, np.nan), (1, -(2.0 ** nd)), (-1, -(2.0 ** -nd))):
        y = _op(nd)(x, p, 2)
        np.testing.assert_array_equal(y, np.full(y.shape, expected))
        np.testing.assert_array_equal(y, getattr(F, f"lp_pool{nd}d")(torch_oracle.from_numpy(x), p, 2).numpy())


def test_zero_window_sums_give_zero_and_no_gradient(torch_oracle):
    torch = torch_oracle
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 2:, 2:] = [[1.0, -1.0], [1.0, -1.0]]   # p = 3: a window whose sum is exactly 0
    for p in (2, 3, 1.5):
        y = adapool.lp_pool2d(x, p, 2)
        assert (y == 0).sum() >= 3 and not np.isnan(y[0, 0, 0, 0])
        t = torch.from_numpy(x).requires_grad_(True)
        torch.nn.functional.lp_pool2d(t, p, 2).sum().backward()
        g = adapool.lp_pool2d_backward(np.ones(y.shape), x, p, 2)
        # 0 ** (1/p - 1) is inf, yet relu's threshold passes nothing back; p * 0 ** (p - 1) is 0
        # for p >= 1
        np.testing.assert_array_equal(g, t.grad.numpy())
        assert (g[0, 0, :2, :2] == 0).all()


@pytest.mark.parametrize("p", [0.5, -1, -0.5])
def test_zero_inputs_with_p_below_one(torch_oracle, p):
    # pow's backward at x = 0: p * 0 ** (p - 1) is inf, times a finite gradient gives ±inf,
    # times a zero one (a zero window sum) NaN; torch gives the same
    torch = torch_oracle
    x = np.array([[[0.0, 1.0, 0.0, 0.0, 2.0, 3.0]]])
    t = torch.from_numpy(x).requires_grad_(True)
    ty = torch.nn.functional.lp_pool1d(t, p, 2)
    ty.backward(torch.ones_like(ty))
    np.testing.assert_array_equal(adapool.lp_pool1d(x, p, 2), ty.detach().numpy())
    np.testing.assert_array_equal(adapool.lp_pool1d_backward(np.ones(ty.shape), x, p, 2), t.grad.numpy())


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_infinite_norms_are_max_and_min_of_abs(torch_oracle, nd):
    torch = torch_oracle
    x = np.random.default_rng(5).standard_normal((2, 3) + (5,) * nd)
    x[0, 0].flat[0] = 0.0
    fn, F = _op(nd), getattr(torch.nn.functional, f"lp_pool{nd}d")
    for p in (INF, -INF):
        y = fn(x, p, 2, 1, True)
        assert np.array_equal(y, F(torch.from_numpy(x), p, 2, 1, True).numpy())
        t = torch.from_numpy(x).requires_grad_(True)
        go = np.random.default_rng(6).standard_normal(y.shape)
        F(t, p, 2, 1, True).backward(torch.from_numpy(go))
        np.testing.assert_array_equal(_op(nd, backward=True)(go, x, p, 2, 1, True), t.grad.numpy())
    np.testing.assert_array_equal(fn(x, INF, 2), np.abs(adapool.__dict__[f"max_pool{nd}d"](np.abs(x), 2)))


def test_numpy_float32_inf_takes_the_power_path_as_in_torch(torch_oracle):
    # torch's inf check is isinstance(norm_type, (int, float)): a NumPy float32 inf is neither,
    # so x ** inf is pooled and raised to 1/inf = 0 (ones, or NaN where the sum is NaN)
    x = np.array([[[0.5, 2.0, 1.0, 1.0]]])
    p = np.float32("inf")
    y = adapool.lp_pool1d(x, p, 2)
    np.testing.assert_array_equal(y, torch_oracle.nn.functional.lp_pool1d(torch_oracle.from_numpy(x), p, 2).numpy())
    assert y.tolist() == [[[1.0, 1.0]]]
    assert adapool.lp_pool1d(x, np.float64("inf"), 2).tolist() == [[[2.0, 1.0]]]   # a float subclass


def test_integer_valued_p_as_int_or_float_gives_the_same_bits():
    x = np.random.default_rng(7).standard_normal((2, 3, 9, 9)).astype(np.float32)
    for p in (1, 2, 3, 4, -1, -2):
        np.testing.assert_array_equal(adapool.lp_pool2d(x, p, 3, 2), adapool.lp_pool2d(x, float(p), 3, 2))
        np.testing.assert_array_equal(adapool.lp_pool2d(x, np.int64(p), 3, 2), adapool.lp_pool2d(x, p, 3, 2))
    assert adapool.lp_pool2d(x, True, 3).dtype == np.float32   # bool p is 1, as in torch's pow


def test_p_one_is_the_window_sum():
    x = np.random.default_rng(8).standard_normal((2, 8))
    np.testing.assert_allclose(adapool.lp_pool1d(x, 1, 2), x.reshape(2, 4, 2).sum(-1), rtol=1e-15)


def test_fractional_p_with_negative_input_is_nan():
    x = np.array([[[1.0, -1.0, 2.0, 2.0]]])
    y = adapool.lp_pool1d(x, 2.5, 2)
    assert np.isnan(y[0, 0, 0]) and y[0, 0, 1] == pytest.approx((2 * 2.0 ** 2.5) ** 0.4)


def test_nan_and_inf_inputs(torch_oracle):
    x = np.array([[[np.nan, 1.0, np.inf, 1.0, -np.inf, 1.0, 0.0, 0.0]]])
    F = torch_oracle.nn.functional
    for p in (1, 2, 3, 0.5, -1, -2, INF, -INF):
        np.testing.assert_array_equal(adapool.lp_pool1d(x, p, 2),
                                      F.lp_pool1d(torch_oracle.from_numpy(x), p, 2).numpy(), err_msg=str(p))


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("p", [2, 3, 1.5, 2.5, -1, -0.5, 4, 0.3])
def test_float16_rounds_every_step_as_torch(torch_oracle, nd, p):
    # torch's half pow casts its exponent to half (1/2.5 = 0.4 becomes 0.39990234) and computes
    # in float; each op's result is rounded to half. adapool does the same, so the bits agree
    # where the pool's own sums do (small windows of positive values: they do here)
    x = np.random.default_rng(9).uniform(0.5, 2.0, (2, 4) + (8,) * nd).astype(np.float16)
    y = _op(nd)(x, p, 2)
    ty = getattr(torch_oracle.nn.functional, f"lp_pool{nd}d")(torch_oracle.from_numpy(x), p, 2).numpy()
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, ty)


def test_float16_lp_pool3d_works_where_torch_has_no_kernel(torch_oracle):
    # torch: "avg_pool3d_out_frame" not implemented for 'Half'; adapool's avg_pool3d has one
    x = np.random.default_rng(10).uniform(0.5, 2.0, (1, 2, 4, 4, 4)).astype(np.float16)
    with pytest.raises(NotImplementedError):
        torch_oracle.nn.functional.lp_pool3d(torch_oracle.from_numpy(x), 2, 2)
    y = adapool.lp_pool3d(x, 2, 2)
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.astype(np.float64), lp_pool_ref(x, 2, (2, 2, 2), (2, 2, 2)), rtol=2e-3)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_empty_batch_and_unbatched(nd):
    fn = _op(nd)
    assert fn(np.ones((0, 2) + (4,) * nd), 2, 2).shape == (0, 2) + (2,) * nd
    x = np.random.default_rng(11).uniform(0.5, 2, (2,) + (4,) * nd)
    np.testing.assert_array_equal(fn(x, 3, 2), fn(x[None], 3, 2)[0])
    assert _op(nd, backward=True)(np.ones((0, 2) + (2,) * nd), np.ones((0, 2) + (4,) * nd), 2, 2).shape == \
        (0, 2) + (4,) * nd


def test_result_layouts_follow_torch(torch_oracle):
    torch = torch_oracle
    F = torch.nn.functional
    for nd in (1, 2, 3):
        x = np.random.default_rng(0).uniform(0.5, 2, (2, 8) + (6,) * nd).astype(np.float32)
        cl = with_layout(x, "channels_last", batched=True)
        t = torch.from_numpy(x)
        t = t.contiguous(memory_format=torch.channels_last) if nd == 2 else (
            t.contiguous(memory_format=torch.channels_last_3d) if nd == 3 else t.transpose(1, 2).contiguous().transpose(1, 2))
        for p in (2, 3, INF, -INF):   # the max path: max_pool3d keeps channels-last, avg_pool3d does not
            ours = _op(nd)(cl, p, 2)
            theirs = getattr(F, f"lp_pool{nd}d")(t, p, 2)
            assert ours.flags.c_contiguous == theirs.is_contiguous(), (nd, p)
            assert ours.strides == tuple(s * 4 for s in theirs.stride()), (nd, p)


def test_read_only_non_native_and_list_inputs():
    x = np.random.default_rng(12).uniform(0.5, 2, (2, 3, 6, 6))
    expected = adapool.lp_pool2d(x, 3, 2)
    ro = x.copy()
    ro.flags.writeable = False
    np.testing.assert_array_equal(adapool.lp_pool2d(ro, 3, 2), expected)
    np.testing.assert_array_equal(adapool.lp_pool2d(x.astype(">f8"), 3, 2), expected)
    np.testing.assert_array_equal(adapool.lp_pool2d(x.tolist(), 3, 2), expected)


# ---- errors ------------------------------------------------------------------------------------

ERROR_CASES = [
    # (nd, shape, args, kwargs)
    (1, (1, 2, 4), (2, (2,)), {}),            # torch's Tensor.mul refuses the 1-tuple kernel
    (1, (1, 2, 4), (2, [2]), {}),
    (1, (1, 2, 4), (2, (2, 2)), {}),          # avg_pool1d's length check comes first
    (1, (1, 2, 4), (2, 0), {}),
    (1, (1, 2, 4), (2, 5), {}),
    (1, (1, 2, 4), (2, 2.0), {}),
    (1, (4,), (2, 2), {}),
    (1, (1, 2, 4), (0, 2), {}),               # p = 0: 1.0 / norm_type
    (1, (1, 2, 4), (0, 5), {}),               # ... after the pool's own checks
    (1, (1, 2, 4), (2, 2), dict(ceil_mode=1)),
    (2, (1, 2, 4, 4), (2, (2,)), {}),         # _pair's unpacking
    (2, (1, 2, 4, 4), (2, (2, 2, 2)), {}),
    (2, (1, 2, 4, 4), (INF, (2,)), {}),       # before the max path too
    (2, (1, 2, 4, 4), (2, 0), {}),
    (2, (1, 2, 4, 4), (2, -1), {}),
    (2, (1, 2, 4, 4), (2, 5), {}),
    (2, (1, 2, 4, 4), (2, 2, 0), {}),
    (2, (1, 2, 4, 4), (2, 2.0), {}),
    (2, (1, 2, 4, 4), (2, 2, (1, 2, 3)), {}),
    (2, (1, 2, 4, 4), (INF, 5), {}),          # max_pool2d's checks
    (2, (1, 2, 4, 4), (-INF, 0), {}),
    (2, (1, 2, 4, 4), ("a", 2), {}),          # pow's argument parser
    (2, (1, 2, 4, 4), (None, 2), {}),
    (2, (1, 2, 4, 4), (0, 2), {}),
    (2, (1, 2, 4, 4), (0.0, 2), {}),
    (2, (1, 2, 4, 4), (False, 2), {}),
    (2, (2, 4), (2, 2), {}),
    (3, (1, 2, 4, 4, 4), (2, (2, 2)), {}),
    (3, (1, 2, 4, 4, 4), (2, 5), {}),
    (3, (1, 2, 4, 4, 4), (2, 0), {}),
    (3, (1, 2, 4, 4, 4), (0, 2), {}),
    (3, (1, 2, 4, 4, 4), (INF, 5), {}),
    (3, (2, 4, 4), (2, 2), {}),
]


def _torch_error(torch, nd, shape, args, kw):
    try:
        getattr(torch.nn.functional, f"lp_pool{nd}d")(torch.ones(shape, dtype=torch.float64), *args, **kw)
    except (RuntimeError, TypeError, ValueError, IndexError, ZeroDivisionError) as e:
        return e
    return None


@pytest.mark.parametrize("nd, shape, args, kw", ERROR_CASES, ids=lambda v: str(v).replace(" ", ""))
def test_error_messages_match_torch(torch_oracle, nd, shape, args, kw):
    theirs = _torch_error(torch_oracle, nd, shape, args, kw)
    assert theirs is not None, "torch accepts this call: not an error case"
    expected_type = (ZeroDivisionError if isinstance(theirs, ZeroDivisionError) else
                     TypeError if isinstance(theirs, TypeError) else ValueError)
    with pytest.raises(expected_type) as ours:
        _op(nd)(np.ones(shape), *args, **kw)
    if str(theirs).startswith("Dimension out of range"):
        # torch's avg_pool2d on a 2-d input fails in its shape arithmetic; adapool names the rank
        assert str(ours.value).startswith("Expected 3D or 4D (batch mode) tensor")
        return
    assert str(ours.value).strip() == str(theirs).strip()   # (torch ends its pow message with newlines)
    with pytest.raises(expected_type):   # the gradient takes the forward call's errors
        _op(nd, backward=True)(np.ones((1, 2) + (2,) * nd), np.ones(shape), *args, **kw)


def test_backward_checks_grad_output():
    x = np.ones((1, 2, 4, 4))
    with pytest.raises(ValueError, match="grad_output has shape"):
        adapool.lp_pool2d_backward(np.ones((1, 2, 3, 3)), x, 2, 2)
    with pytest.raises(ValueError, match="grad_output has shape"):
        adapool.lp_pool2d_backward(np.ones((1, 2, 3, 3)), x, INF, 2)
    with pytest.raises(TypeError, match="dtype"):
        adapool.lp_pool2d_backward(np.ones((1, 2, 2, 2), np.float32), x, 2, 2)
    with pytest.raises(TypeError, match="not implemented for 'int64'"):
        adapool.lp_pool2d(np.ones((1, 2, 4, 4), np.int64), 2, 2)
    with pytest.raises(TypeError, match="real number"):
        adapool.lp_pool2d(x, 2j, 2)


# ---- dask --------------------------------------------------------------------------------------

@given(call=lp_calls(signed=False), chunk=st.integers(1, 4))
@settings(max_examples=25)
def test_dask_equals_the_in_memory_result(dask_array, call, chunk):
    import adapool.dask
    nd, x, batched, args, kw, _ = call
    x = x.astype(np.float32)
    got = getattr(adapool.dask, f"lp_pool{nd}d")(dask_array.from_array(x, chunks=chunk), *args, **kw)
    with np.errstate(all="ignore"):
        got = got.compute()
    want = _op(nd)(x, *args, **kw)
    assert got.dtype == want.dtype and got.shape == want.shape
    eps = np.finfo(np.float32).eps
    _assert_close(got, want.astype(np.float64), 16 * eps)
    with pytest.raises(ValueError, match="not enough values to unpack"):
        adapool.dask.lp_pool2d(dask_array.ones((1, 2, 4, 4), chunks=2), 2, (2,))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("e", [0, 1, 2, 3, -0.5, -1, -2, 0.5, 2.5, 1 / 3])
def test_powers_are_torchs(torch_oracle, dtype, e):
    # torch's CPU pow has special cases (fill, copy, square, cube, rsqrt, reciprocals) that
    # round differently from a general pow; adapool takes the same ones and gets torch's bits.
    # Other exponents (0.5 included: torch's is a vectorised pow, not sqrt) go through a
    # general pow, torch's vectorised and NumPy's correctly rounded or nearly: within 2 ulp.
    from adapool._lp import _pow
    x = np.random.default_rng(13).uniform(0.1, 3.0, 4096).astype(dtype)
    ours, theirs = _pow(x, e), torch_oracle.from_numpy(x).pow(e).numpy()
    assert ours.dtype == dtype
    if e in (0, 1, 2, 3, -0.5, -1, -2):
        np.testing.assert_array_equal(ours, theirs)
    else:
        np.testing.assert_array_max_ulp(ours, theirs, maxulp=2)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("p", [2, INF])
def test_gradient_layout_is_the_inputs_as_in_torch(torch_oracle, nd, p):
    # torch's gradient keeps the input's strides whatever grad_output's layout is, except
    # lp_pool3d with finite p: avg_pool3d's backward gives C order
    torch = torch_oracle
    x = np.random.default_rng(14).uniform(0.5, 2, (2, 8) + (6,) * nd)
    y = _op(nd)(x, p, 2)
    for x_layout in ("contiguous", "channels_last"):
        for go_layout in ("contiguous", "channels_last"):
            xl, gol = with_layout(x, x_layout, batched=True), with_layout(np.ones(y.shape), go_layout, batched=True)
            t = torch.from_numpy(xl).requires_grad_(True)
            g, = torch.autograd.grad(getattr(torch.nn.functional, f"lp_pool{nd}d")(t, p, 2), t, torch.from_numpy(gol))
            ours = _op(nd, backward=True)(gol, xl, p, 2)
            assert ours.strides == tuple(s * 8 for s in g.stride()), (x_layout, go_layout)
            np.testing.assert_allclose(ours, g.numpy(), rtol=1e-12)
