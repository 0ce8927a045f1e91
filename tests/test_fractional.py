"""Fractional max pooling (fractional_max_pool2d/3d) and its gradients. With the samples given,
values and indices against torch bit for bit and against the float64 reference
(tests/reference.py); samples drawn from ``rng``; named edge cases; torch's error messages."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import adapool
from layouts import assert_same_bits_on_1_and_2_threads, sample_values, with_layout
from reference import adaptive_max_pool_backward_ref, fractional_max_pool_ref, fractional_starts_ref

DTYPES = [np.float16, np.float32, np.float64]
LAYOUTS = ["contiguous", "channels_last", "strided_rows", "strided_all", "negative_w"]
# Samples that matter: the ends of [0, 1) (and 1 itself, which torch accepts) besides uniform ones.
EDGE_SAMPLES = {"zero": lambda dt: dt(0), "below_one": lambda dt: np.nextafter(dt(1), dt(0)), "one": lambda dt: dt(1)}


def _fn(nd, backward=False):
    return getattr(adapool, f"fractional_max_pool{nd}d" + ("_backward" if backward else ""))


def _samples(draw, shape, dtype):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    s = rng.random(shape).astype(dtype)
    kind = draw(st.sampled_from(["uniform", "uniform", "edges"]))
    if kind == "edges":
        picks = rng.integers(0, 3, shape)
        for i, make in enumerate(EDGE_SAMPLES.values()):
            s[picks == i] = make(dtype)
    return s


@st.composite
def fractional_calls(draw, nds=(2, 3)):
    """(nd, x, batched, kernel, output sizes, kwargs with output_size or output_ratio, samples)
    for valid calls; output sizes span 1 to torch's limit (input - kernel + 1 in 2-d, input -
    kernel in 3-d)."""
    nd = draw(st.sampled_from(nds))
    dtype = draw(st.sampled_from(DTYPES))
    slack = 1 if nd == 2 else 0
    kernel, spatial, out = [], [], []
    for _ in range(nd):
        k = draw(st.integers(1, 4))
        size = draw(st.integers(k + 1 - slack, k + (12 if nd == 2 else 6)))
        kernel.append(k)
        spatial.append(size)
        out.append(draw(st.integers(1, size - k + slack)))
    batched = draw(st.booleans())
    shape = ((draw(st.integers(1, 3)),) if batched else ()) + (draw(st.integers(1, 4)),) + tuple(spatial)
    x = sample_values(draw, shape).astype(dtype)
    n = shape[0] if batched else 1
    samples = _samples(draw, (n + draw(st.integers(0, 1)), shape[-nd - 1], nd), dtype)   # extra rows are ignored
    kernel_arg = kernel[0] if len(set(kernel)) == 1 and draw(st.booleans()) else tuple(kernel)
    if draw(st.booleans()):
        # a ratio that gives the drawn size: int(size * ratio) == out
        kwargs = dict(output_ratio=tuple((o + 0.5) / s for o, s in zip(out, spatial)))
    else:
        kwargs = dict(output_size=out[0] if len(set(out)) == 1 and draw(st.booleans()) else tuple(out))
    return nd, x, batched, kernel_arg, tuple(kernel), tuple(out), kwargs, samples


def _torch_tensor(torch, x, layout, batched, nd):
    t = torch.from_numpy(np.ascontiguousarray(x))
    if layout == "channels_last" and batched:
        t = t.contiguous(memory_format=torch.channels_last if nd == 2 else torch.channels_last_3d)
    return t


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint8 if a.dtype.itemsize == 1 else f"u{a.dtype.itemsize}")


@given(call=fractional_calls(), layout=st.sampled_from(LAYOUTS))
@settings(max_examples=80)
def test_matches_torch_bit_for_bit(torch_oracle, call, layout):
    torch = torch_oracle
    nd, x, batched, kernel_arg, _, out, kwargs, samples = call
    tf = getattr(torch.nn.functional, f"fractional_max_pool{nd}d")
    t = _torch_tensor(torch, x, layout, batched, nd)
    ty, ti = tf(t, kernel_arg, return_indices=True, _random_samples=torch.from_numpy(samples), **kwargs)
    xl = with_layout(x, layout, batched=batched)
    y, ind = _fn(nd)(xl, kernel_arg, return_indices=True, _random_samples=samples, **kwargs)
    assert y.shape == tuple(ty.shape) and y.dtype == x.dtype and ind.dtype == np.int64
    np.testing.assert_array_equal(_bits(y), _bits(ty.numpy()))
    np.testing.assert_array_equal(ind, ti.numpy())
    # torch returns C order for every input layout
    assert ty.is_contiguous() and y.flags.c_contiguous and ind.flags.c_contiguous
    np.testing.assert_array_equal(_bits(_fn(nd)(xl, kernel_arg, _random_samples=samples, **kwargs)), _bits(y))


@given(call=fractional_calls())
@settings(max_examples=60)
def test_matches_reference(call):
    nd, x, batched, kernel_arg, kernel, out, kwargs, samples = call
    y, ind = _fn(nd)(x, kernel_arg, return_indices=True, _random_samples=samples, **kwargs)
    xb = x if batched else x[None]
    ey, ei = fractional_max_pool_ref(xb, kernel, out, samples)
    if not batched:
        ey, ei = ey[0], ei[0]
    np.testing.assert_array_equal(y, ey)
    np.testing.assert_array_equal(np.signbit(y), np.signbit(ey))
    np.testing.assert_array_equal(ind, ei)


def _starts_through_the_op(u, size, out, k):
    """The H windows' starts the op uses for sample ``u``: on an all-zero (1, 1, size, 1)
    input every window ties, and torch's rule picks its first element."""
    x = np.zeros((1, 1, size, 1), u.dtype)
    s = np.array([[[0, u]]], u.dtype)   # (W's sample, H's sample)
    return adapool.fractional_max_pool2d(x, (k, 1), (out, 1), return_indices=True, _random_samples=s)[1][0, 0, :, 0]


@given(u=st.floats(0, 1, width=16) | st.floats(0, 1, width=32) | st.floats(0, 1),
       dtype=st.sampled_from(DTYPES), size=st.integers(2, 5000), k=st.integers(1, 5),
       out=st.integers(1, 5000))
@settings(max_examples=150)
def test_window_starts_match_the_scalar_reference(u, dtype, size, k, out):
    # Long axes too (up to 5000, past float16's exact integers): every float operation must
    # round as torch's does.
    out = min(out, size - k + 1)
    if out < 1:
        return
    u = dtype(u)
    expected = fractional_starts_ref(u, size, out, k)
    if max(expected) > size - k:   # float16 rounding past the end: refused (see below)
        with pytest.raises(ValueError, match="outside the input"):
            _starts_through_the_op(u, size, out, k)
        return
    np.testing.assert_array_equal(_starts_through_the_op(u, size, out, k), expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nd, shape, kernel, out", [
    (2, (1, 2, 3000, 7), 3, (1500, 2)), (2, (1, 2, 2100, 5), (1, 2), (2090, 4)), (3, (1, 1, 300, 4, 5), 2, (250, 2, 3))])
def test_long_axes_match_torch(torch_oracle, dtype, nd, shape, kernel, out):
    # float16's integers stop being exact past 2048: (i + u) rounds, and torch's result with it.
    torch = torch_oracle
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    for s in (rng.random(shape[:2] + (nd,)).astype(dtype), np.full(shape[:2] + (nd,), np.nextafter(dtype(1), dtype(0)))):
        try:
            ty, ti = getattr(torch.nn.functional, f"fractional_max_pool{nd}d")(
                torch.from_numpy(x), kernel, out, return_indices=True, _random_samples=torch.from_numpy(s))
        except RuntimeError as e:
            # float16 rounding can push a window past the axis's end even for samples in
            # [0, 1); torch's kernel asserts there, adapool refuses before reading
            assert dtype == np.float16 and "INTERNAL ASSERT FAILED" in str(e)
            with pytest.raises(ValueError, match="outside the input"):
                _fn(nd)(x, kernel, out, _random_samples=s)
            continue
        y, ind = _fn(nd)(x, kernel, out, return_indices=True, _random_samples=s)
        np.testing.assert_array_equal(ind, ti.numpy())
        np.testing.assert_array_equal(_bits(y), _bits(ty.numpy()))


# ---- gradients ---------------------------------------------------------------------------------

@given(call=fractional_calls())
@settings(max_examples=40)
def test_backward_matches_torch_autograd(torch_oracle, call):
    torch = torch_oracle
    nd, x, batched, kernel_arg, _, _, kwargs, samples = call
    x = np.nan_to_num(x.astype(np.float64), nan=1.0, neginf=-1.0)
    samples = samples.astype(np.float64)
    t = torch.from_numpy(x.copy()).requires_grad_(True)
    ty, ti = getattr(torch.nn.functional, f"fractional_max_pool{nd}d")(
        t, kernel_arg, return_indices=True, _random_samples=torch.from_numpy(samples), **kwargs)
    go = np.random.default_rng(1).standard_normal(tuple(ty.shape))
    ty.backward(torch.from_numpy(go))
    _, ind = _fn(nd)(x, kernel_arg, return_indices=True, _random_samples=samples, **kwargs)
    gi = _fn(nd, backward=True)(go, ind, x.shape)
    np.testing.assert_array_equal(gi, t.grad.numpy())   # the same additions in the same order
    np.testing.assert_array_equal(gi, adaptive_max_pool_backward_ref(go, ind, x.shape, nd))


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_dtypes_layouts_and_bad_indices(nd, dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3) + (7,) * nd).astype(dtype)
    y, ind = _fn(nd)(x, 2, 4, return_indices=True, rng=rng)
    go = rng.standard_normal(y.shape).astype(dtype)
    expected = adaptive_max_pool_backward_ref(go, ind, x.shape, nd)
    for layout in ("contiguous", "channels_last", "strided_all"):
        gi = _fn(nd, backward=True)(with_layout(go, layout), with_layout(ind, layout), x.shape)
        assert gi.shape == x.shape and gi.dtype == dtype
        # float16 adds in float16, as torch does (a few additions per element)
        tol = dict(rtol=1e-2, atol=4e-3) if dtype == np.float16 else dict(rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(gi.astype(np.float64), expected, **tol)
    bad = ind.copy()
    bad[0, 1].flat[0] = 7 ** nd
    with pytest.raises(ValueError, match="index outside"):
        _fn(nd, backward=True)(go, bad, x.shape)
    assert not _fn(nd, backward=True)(go[:0], ind[:0], (0,) + x.shape[1:]).size
    # the gradient of an empty output is zero
    np.testing.assert_array_equal(_fn(nd, backward=True)(go[..., :0], ind[..., :0], x.shape), 0)


# ---- samples from rng -----------------------------------------------------------------------------

@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_rng_draws_uniform_samples_reproducibly(nd, dtype):
    x = np.random.default_rng(0).standard_normal((3, 4) + (9,) * nd).astype(dtype)
    f = _fn(nd)
    a = f(x, 2, 5, return_indices=True, rng=np.random.default_rng(11))
    b = f(x, 2, 5, return_indices=True, rng=np.random.default_rng(11))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    # the documented draw: (N, C, nd) U[0, 1) in the input's dtype
    if dtype == np.float16:
        s = (np.random.default_rng(11).integers(0, 2048, (3, 4, nd), dtype=np.int16) * np.float16(2.0**-11)).astype(dtype)
    else:
        s = np.random.default_rng(11).random((3, 4, nd), dtype=dtype)
    explicit = f(x, 2, 5, return_indices=True, _random_samples=s)
    np.testing.assert_array_equal(a[1], explicit[1])
    # other seeds give other windows (so the seed is used); rng=None works
    seeds = {f(x, 2, 5, return_indices=True, rng=np.random.default_rng(seed))[1].tobytes() for seed in range(4)}
    assert len(seeds) > 1
    assert f(x, 2, 5).shape == x.shape[:2] + (5,) * nd
    # unbatched: one row of samples
    np.testing.assert_array_equal(f(x[0], 2, 5, return_indices=True, rng=np.random.default_rng(2))[1],
                                  f(x[:1], 2, 5, return_indices=True, rng=np.random.default_rng(2))[1][0])
    with pytest.raises(TypeError, match="Generator"):
        f(x, 2, 5, rng=np.random.RandomState(0))


def test_float16_draws_stay_below_one():
    s = adapool._fractional.draw_samples(np.random.default_rng(0), (1000, 64, 2), np.float16)
    assert s.dtype == np.float16 and s.min() >= 0 and s.max() < 1


# ---- named edge cases ---------------------------------------------------------------------------

@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("edge", list(EDGE_SAMPLES))
@pytest.mark.parametrize("dtype", DTYPES)
def test_edge_samples_and_output_sizes_match_torch(torch_oracle, nd, edge, dtype):
    torch = torch_oracle
    rng = np.random.default_rng(5)
    spatial = (11, 9, 10)[:nd]
    x = rng.standard_normal((2, 3) + spatial).astype(dtype)
    s = np.full((2, 3, nd), EDGE_SAMPLES[edge](dtype), dtype)
    # output 1; torch's largest output (2-d: input - kernel + 1; 3-d: input - kernel); between
    for out in (1, tuple(v - 3 + (nd == 2) for v in spatial), tuple(v // 2 for v in spatial)):
        y, ind = _fn(nd)(x, 3, out, return_indices=True, _random_samples=s)
        ty, ti = getattr(torch.nn.functional, f"fractional_max_pool{nd}d")(
            torch.from_numpy(x), 3, out, return_indices=True, _random_samples=torch.from_numpy(s))
        np.testing.assert_array_equal(ind, ti.numpy())
        np.testing.assert_array_equal(_bits(y), _bits(ty.numpy()))


@pytest.mark.parametrize("nd", [2, 3])
def test_nan_ties_and_neg_inf_follow_torchs_rule(torch_oracle, nd):
    torch = torch_oracle
    rng = np.random.default_rng(6)
    x = rng.integers(0, 2, (2, 3) + (8,) * nd).astype(np.float32)   # ties everywhere
    x[rng.random(x.shape) < 0.15] = np.nan
    x[rng.random(x.shape) < 0.2] = -np.inf
    x[0, 0] = -np.inf                                               # a plane of -inf
    x[0, 1] = -0.0
    x[0, 1].flat[::3] = 0.0                                         # signed zeros tie
    s = rng.random((2, 3, nd)).astype(np.float32)
    y, ind = _fn(nd)(x, 3, 4, return_indices=True, _random_samples=s)
    ty, ti = getattr(torch.nn.functional, f"fractional_max_pool{nd}d")(
        torch.from_numpy(x), 3, 4, return_indices=True, _random_samples=torch.from_numpy(s))
    np.testing.assert_array_equal(ind, ti.numpy())
    np.testing.assert_array_equal(_bits(y), _bits(ty.numpy()))
    ey, ei = fractional_max_pool_ref(x, (3,) * nd, (4,) * nd, s)
    np.testing.assert_array_equal(ind, ei)
    assert np.isneginf(y[0, 0]).all() and np.isnan(y).any()


@pytest.mark.parametrize("nd", [2, 3])
def test_kernel_sizes_torch_accepts_below_one(torch_oracle, nd):
    # torch takes kernel sizes <= 0: empty windows, -inf with the window start's index (which
    # for kernel 0 can lie past the plane); nothing is read.
    torch = torch_oracle
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3) + (9,) * nd).astype(np.float32)
    s = rng.random((2, 3, nd)).astype(np.float32)
    for kernel in (0, (-2,) + (2,) * (nd - 1), (2,) * (nd - 1) + (0,)):
        y, ind = _fn(nd)(x, kernel, 4, return_indices=True, _random_samples=s)
        ty, ti = getattr(torch.nn.functional, f"fractional_max_pool{nd}d")(
            torch.from_numpy(x), kernel, 4, return_indices=True, _random_samples=torch.from_numpy(s))
        np.testing.assert_array_equal(ind, ti.numpy())
        np.testing.assert_array_equal(y, ty.numpy())


@pytest.mark.parametrize("nd", [2, 3])
def test_samples_outside_unit_interval(torch_oracle, nd):
    # torch does not check the samples' values. Where the windows they give stay inside the
    # input adapool matches torch (NaN and overflowing products give torch's x86 int
    # conversion); where they would not, torch reads outside the input and adapool refuses.
    torch = torch_oracle
    x = np.random.default_rng(9).standard_normal((2, 3) + (9,) * nd).astype(np.float32)
    for v in (5.0, -5.0, np.nan, np.inf, -np.inf, 1e7, 1e30):
        s = np.full((2, 3, nd), v, np.float32)
        y, ind = _fn(nd)(x, 2, 4, return_indices=True, _random_samples=s)
        ty, ti = getattr(torch.nn.functional, f"fractional_max_pool{nd}d")(
            torch.from_numpy(x), 2, 4, return_indices=True, _random_samples=torch.from_numpy(s))
        np.testing.assert_array_equal(ind, ti.numpy())
        np.testing.assert_array_equal(y, ty.numpy())
    # u = 3000 in float16 (spacing 2 there): (i + u) rounds to u for i = 1, to u + 4 for i = 3,
    # and the window of output 3 of a 6-long axis pooled to 5 starts at 6, past L - k = 5
    bad = np.full((1, 1, nd), 3000, np.float16)
    assert max(fractional_starts_ref(bad[0, 0, 0], 6, 5, 1)) > 5
    with pytest.raises(ValueError, match="outside the input"):
        _fn(nd)(np.zeros((1, 1) + (6,) * nd, np.float16), 1, 5 if nd == 2 else (5, 4, 4), _random_samples=bad)


@pytest.mark.parametrize("nd", [2, 3])
def test_empty_batch_unbatched_and_empty_outputs(nd):
    f = _fn(nd)
    x = np.random.default_rng(0).standard_normal((2, 3) + (8,) * nd).astype(np.float32)
    y, ind = f(x[:0], 2, 3, return_indices=True)
    assert y.shape == ind.shape == (0, 3) + (3,) * nd and ind.dtype == np.int64
    y, ind = f(x[0, :0], 2, 3, return_indices=True)     # unbatched C = 0 (torch accepts it)
    assert y.shape == (0,) + (3,) * nd
    assert f(x, 2, (0,) + (3,) * (nd - 1)).shape == (2, 3, 0) + (3,) * (nd - 1)
    # unbatched input uses the samples' first row
    s = np.random.default_rng(1).random((2, 3, nd)).astype(np.float32)
    np.testing.assert_array_equal(f(x[1], 2, 3, _random_samples=s), f(x[:1] * 0 + x[1], 2, 3, _random_samples=s)[0])


def test_samples_in_any_layout_and_byte_order():
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 9))
    s = np.random.default_rng(1).random((2, 3, 2))
    expected = adapool.fractional_max_pool2d(x, 2, 4, return_indices=True, _random_samples=s)[1]
    for other in (np.asfortranarray(s), s.astype(">f8"), s[:, :, ::-1].copy()[:, :, ::-1], s.tolist()):
        np.testing.assert_array_equal(adapool.fractional_max_pool2d(x, 2, 4, return_indices=True, _random_samples=other)[1],
                                      expected)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_results_do_not_depend_on_thread_count(layout):
    rng = np.random.default_rng(7)
    x = with_layout(rng.standard_normal((4, 32, 33, 35)).astype(np.float32), layout)
    x3 = with_layout(rng.standard_normal((2, 16, 9, 10, 11)).astype(np.float32), layout)
    s, s3 = rng.random((4, 32, 2)).astype(np.float32), rng.random((2, 16, 3)).astype(np.float32)
    calls = [lambda: adapool.fractional_max_pool2d(x, 3, (15, 16), return_indices=True, _random_samples=s),
             lambda: adapool.fractional_max_pool3d(x3, 2, (4, 5, 6), return_indices=True, _random_samples=s3)]
    assert_same_bits_on_1_and_2_threads(calls)


def test_kernel_wrapper_checks_its_arrays():
    # The loops trust these; the wrapper checks them (the windows themselves are checked per
    # plane before the plane is read: test_samples_outside_unit_interval).
    k = adapool._dispatch.kernels
    x = np.zeros((1, 2, 5, 5), np.float32)
    y = np.empty((1, 2, 2, 2), np.float32)
    u = np.zeros((1, 2, 2), np.float32)
    k.fractional_max_pool_forward(2, x, y, None, u, (1, 2, 2), 1)
    # torch's (N', C, nd) samples in any strides, N' >= N: read in place
    k.fractional_max_pool_forward(2, x, y, None, np.zeros((3, 2, 4), np.float32)[:, ::-1, ::2], (1, 2, 2), 1)
    misaligned = np.zeros(4 * 4 + 1, np.uint8)[1:].view(np.float32).reshape(1, 2, 2)
    swapped = u.astype(u.dtype.newbyteorder(">"))
    for bad in (u[:0], u[:, :1], u[..., :1], u[0], np.zeros((1, 2, 3), np.float32), u.astype(np.float64),
                misaligned, swapped, np.zeros((1, 2, 2, 1), np.float32)):
        with pytest.raises(ValueError, match="samples"):
            k.fractional_max_pool_forward(2, x, y, None, bad, (1, 2, 2), 1)
    with pytest.raises(ValueError, match="samples"):   # 3-d takes three per plane
        k.fractional_max_pool_forward(3, x[:, :, None], y[:, :, None], None, u, (1, 2, 2), 1)
    with pytest.raises(ValueError, match="C-contiguous"):
        k.fractional_max_pool_forward(2, x, np.empty((1, 2, 2, 2), np.float32)[:, :, ::-1], None, u, (1, 2, 2), 1)
    with pytest.raises(ValueError, match="indices"):
        k.fractional_max_pool_forward(2, x, y, np.empty((1, 2, 2, 3), np.int64), u, (1, 2, 2), 1)
    # any strides: planes read in place, or gathered per block of channels when W is strided
    xs = np.random.default_rng(0).standard_normal((1, 2, 5, 9)).astype(np.float32)
    a, b = np.empty_like(y), np.empty_like(y)
    k.fractional_max_pool_forward(2, xs[..., ::2], a, None, u, (1, 2, 2), 1)
    k.fractional_max_pool_forward(2, np.ascontiguousarray(xs[..., ::2]), b, None, u, (1, 2, 2), 1)
    np.testing.assert_array_equal(a, b)


# ---- errors: torch's words ------------------------------------------------------------------------

S2 = ("samples", (2, 3, 2))
ERROR_CASES = [
    # (nd, input shape, positional args after the input, keyword args); ("samples", shape[, dtype])
    # stands for a uniform samples array
    *[(2, (2, 3, 9, 11), args, kw) for args, kw in [
        ((2,), {}), ((2,), dict(output_ratio=0.5)), ((2,), dict(output_ratio=(0.5, 0.5, 0.5))),
        ((2,), dict(output_ratio=(0.5,))), ((2,), dict(output_ratio=(1.5, 0.5))), ((2,), dict(output_ratio=(-0.5, 0.5))),
        ((2, 9), {}), ((2, (8, 3, 3)), {}), (((2, 2, 2), (8, 3)), {}), ((2, (3,)), {}), (((2,), 3), {}),
        (((), 3), {}), ((2, (-1, 3)), {}), ((12, (1, 1)), {}), (((2, 12), (3, 1)), {}),
        ((2, 3), dict(_random_samples=("samples", (2, 3, 2), np.float64))), ((2, 3), dict(_random_samples=("samples", (2, 3)))),
        ((2, 3), dict(_random_samples=("samples", (1, 3, 2)))), ((2, 3), dict(_random_samples=("samples", (2, 4, 2)))),
        ((2, 3), dict(_random_samples=("samples", (2, 3, 3)))), ((9, 3), dict(_random_samples=("samples", (2, 3, 3)))),
        ((2, (-1, 3)), dict(_random_samples=("samples", (2, 3, 3)))),
        ((True, 3), {}), (((True, 2), 3), {}), ((2.0, 3), {}), (((2, 2.0), 3), {}), ((2, (3.0, 3)), {}),
        ((2, (3, None)), {}), ((2, "ab"), {}), ((2, True), {}), ((2, (True, 3)), {}),
    ]],
    *[(2, shape, (2, (3, 3)), {}) for shape in ((2, 0, 9, 11), (2, 3, 0, 11), (3, 0, 11), (1, 2, 3, 9, 11))],
    (2, (9, 11), (2, (3, 3)), dict(_random_samples=("samples", (1, 9, 2)))),
    (2, (9, 11), (2, (3, 3)), {}), (2, (9,), (2,), dict(output_ratio=(0.5, 0.5))), (2, (), (2, 3), {}),
    *[(3, (2, 3, 6, 7, 8), args, kw) for args, kw in [
        ((2,), {}), ((2,), dict(output_ratio=(0.5, 0.5))), ((2,), dict(output_ratio=(0.5, 0.5, None))),
        ((2, (6, 3, 3)), {}), ((2, (4, 6, 3)), {}), ((2, (4, 4, 7)), {}), ((1, (6, 7, 8)), {}), ((2, (3, 3)), {}),
        (((2, 2), (3, 3, 3)), {}), ((2, (-1, 2, 3)), {}), ((2, (3, 3, 3)), dict(_random_samples=("samples", (2, 3, 2)))),
        ((2, (3, 3, 3)), dict(_random_samples=("samples", (2, 3, 3, 1)))),
        ((2, (3, 3, 3)), dict(_random_samples=("samples", (2, 3, 3), np.float64))),
    ]],
    *[(3, shape, (2, (3, 3, 3)), {}) for shape in ((2, 0, 6, 7, 8), (3, 0, 9, 11), (3, 9), (3, 4, 5, 6, 7, 8), (5, 6, 7))],
    (3, (5, 6, 7), (2, (3, 2, 3)), dict(_random_samples=("samples", (3, 4, 3)))),
]


def _materialize(kw, module, dtype):
    out = dict(kw)
    if isinstance(out.get("_random_samples"), tuple):
        _, shape, *dt = out["_random_samples"]
        s = np.random.default_rng(0).random(shape).astype(dt[0] if dt else dtype)
        out["_random_samples"] = s if module is np else module.from_numpy(s)
    return out


@pytest.mark.parametrize("nd, shape, args, kw", ERROR_CASES, ids=lambda v: str(v).replace(" ", ""))
def test_error_messages_match_torch(torch_oracle, nd, shape, args, kw):
    torch = torch_oracle
    try:
        getattr(torch.nn.functional, f"fractional_max_pool{nd}d")(
            torch.ones(shape), *args, **_materialize(kw, torch, np.float32))
        theirs = None
    except (RuntimeError, TypeError, ValueError, IndexError) as e:
        theirs = e
    assert theirs is not None, "torch accepts this call: not an error case"
    # a dtype mismatch is a TypeError in adapool, as its other dtype errors are
    expected_type = TypeError if isinstance(theirs, TypeError) or "dtype" in str(theirs) else ValueError
    with pytest.raises(expected_type) as ours:
        _fn(nd)(np.ones(shape, np.float32), *args, **_materialize(kw, np, np.float32))
    assert str(ours.value) == str(theirs).splitlines()[0]


def test_dtype_errors():
    with pytest.raises(TypeError, match="not implemented for 'int64'"):
        adapool.fractional_max_pool2d(np.ones((1, 2, 5, 5), np.int64), 2, 3)
    with pytest.raises(TypeError, match="same dtype"):
        adapool.fractional_max_pool2d(np.ones((1, 2, 5, 5), np.float16), 2, 3, _random_samples=np.zeros((1, 2, 2)))


@pytest.mark.parametrize("nd", [2, 3])
def test_hostile_inputs_read_right(nd):
    # read-only, non-native byte order, unaligned (a float32 view one byte into a buffer)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 3) + (7,) * nd).astype(np.float32)
    s = rng.random((2, 3, nd)).astype(np.float32)
    expected = _fn(nd)(x, 2, 3, return_indices=True, _random_samples=s)
    ro = x.copy()
    ro.flags.writeable = False
    buf = np.zeros(x.nbytes + 1, np.uint8)
    unaligned = buf[1:].view(np.float32).reshape(x.shape)
    unaligned[...] = x
    assert not unaligned.flags.aligned
    for variant in (ro, x.astype(">f4"), unaligned):
        got = _fn(nd)(variant, 2, 3, return_indices=True, _random_samples=s)
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)
