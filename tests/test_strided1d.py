"""The 1-d pools' own paths (issue 15, adapool/_strided1d.pxi): max_pool1d without indices on
rows with unit stride (k = 3 at step 2 on rows of >= 192 elements, or on < 8 rows: their own
even/odd kernel; other rows of < 512 elements and >= 8 rows: transposed tiles; longer rows, or
fewer: uniform runs a vector block at a time) and on channels-last input (lanes over C), and
avg_pool1d on channels-last input into a channels-last result. Each path against the float64 reference, torch, and the general kernel
(adapool._dispatch.kernels' max_pool_forward / avg_pool_forward, which the paths replace) bit
for bit, across the thresholds, layouts and dtypes, with NaN, -inf, ties and -0.0.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import adapool
from adapool import _pooling
from adapool._dispatch import kernels
from adapool._windows import pool_output_size
from layouts import assert_same_bits_on_1_and_2_threads, with_layout
from reference import strided_ref

DTYPES = [np.float16, np.float32, np.float64]
TOL = {np.float16: 1e-3, np.float32: 1e-6, np.float64: 1e-12}


def _bits(a):
    return np.asarray(a).view(f"u{a.itemsize}")


def _same_sums(actual, expected):
    """Average results equal bit for bit, NaN only as NaN: which NaN a sum gives (an input's, or
    the default NaN of inf - inf) depends on the order gcc puts an addition's operands in."""
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    nan = np.isnan(expected)
    np.testing.assert_array_equal(_bits(np.where(nan, 0, actual)), _bits(np.where(nan, 0, expected)))


def _data(rng, shape, dtype, kind):
    """normal values, ties (small integers), or ties with NaN (some with a payload), -inf,
    +inf and -0.0 mixed in"""
    if kind == "normal":
        return (rng.standard_normal(shape) * 3).astype(dtype)
    x = rng.integers(-2, 3, shape).astype(dtype)
    if kind == "specials":
        x[rng.random(shape) < 0.06] = np.nan
        x[rng.random(shape) < 0.08] = -np.inf
        x[rng.random(shape) < 0.02] = np.inf
        x[rng.random(shape) < 0.1] = -0.0
        if dtype == np.float32:
            payload = np.array([0x7FC01234], np.uint32).view(np.float32)[0]
            x.reshape(-1)[rng.integers(0, x.size, 3)] = payload
    return x


def _sizes(L, k, s, p, ceil_mode):
    return ((L,), (pool_output_size(L, k, s, p, ceil_mode, 1),), (k,), (s,), (p,))


def _general_max(x, k, s, p, ceil_mode):
    """What the general kernel gives (the path before issue 15), values only, into a C-order
    result (torch's for max_pool1d without indices, in either layout)."""
    sizes = _sizes(x.shape[-1], k, s, p, ceil_mode)
    y = np.empty(x.shape[:-1] + sizes[1], x.dtype)
    xk, channels_last = _pooling._kernel_layout(x, 1)
    kernels.max_pool_forward(1, xk, y, None, _pooling._max_pool_table(*sizes, (1,)), channels_last, x.shape[-2], 1)
    return y


def _general_avg_cl(x, k, s, p, ceil_mode, count_include_pad):
    """The general channels-last kernel's result for channels-last x (N, C, L)."""
    sizes = _sizes(x.shape[-1], k, s, p, ceil_mode)
    n, c = x.shape[:2]
    y = np.empty((n, sizes[1][0], c), x.dtype).transpose(0, 2, 1)
    kernels.avg_pool_forward(1, x, y, _pooling._pool2d_table(*sizes, count_include_pad, None), True, c, 1)
    return y


def _assert_max_equal(actual, expected):
    np.testing.assert_array_equal(actual, expected)                          # NaN where NaN
    np.testing.assert_array_equal(np.signbit(actual), np.signbit(expected))  # -0.0 kept


@st.composite
def max_calls(draw):
    """Rows on both sides of the thresholds: C across 8 (tiles) and 32 (one tile's rows), L
    across 192 (k = 3, step 2: tiles vs their own kernel) and 512 (tiles vs runs) and short
    enough for runs under 16 windows; k = 3 at step 2 often, as the ResNet stem has it."""
    k, s = draw(st.one_of(st.just((3, 2)), st.tuples(st.integers(1, 6), st.integers(1, 4))))
    p = draw(st.integers(0, k // 2))
    L = draw(st.one_of(st.integers(max(1, k - 2 * p), 80), st.integers(180, 240), st.integers(490, 620)))
    shape = ((draw(st.integers(1, 3)),) if draw(st.booleans()) else ()) + (draw(st.sampled_from([1, 3, 7, 8, 9, 33, 40])), L)
    return shape, k, s, p, draw(st.booleans())


@settings(max_examples=40, deadline=None)
@given(call=max_calls(), dtype=st.sampled_from(DTYPES), kind=st.sampled_from(["normal", "ties", "specials"]),
       layout=st.sampled_from(["contiguous", "strided_rows", "negative", "channels_last", "strided_cl"]),
       seed=st.integers(0, 2**16))
def test_max_pool1d_without_indices_matches_reference_and_general_kernel(call, dtype, kind, layout, seed):
    shape, k, s, p, ceil_mode = call
    x = _data(np.random.default_rng(seed), shape, dtype, kind)
    xl = with_layout(x, layout, batched=len(shape) == 3)
    y = adapool.max_pool1d(xl, k, s, p, ceil_mode=ceil_mode)
    values, _ = strided_ref("max_pool1d", x, (k,), (s,), (p,), (1,), ceil_mode)
    _assert_max_equal(y, values)
    assert y.dtype == dtype and y.flags.c_contiguous   # torch's layout without indices
    np.testing.assert_array_equal(_bits(y), _bits(_general_max(xl, k, s, p, ceil_mode)))


@st.composite
def avg_calls(draw):
    k = draw(st.sampled_from([1, 2, 3, 4, 5, 17, 20]))   # windows past _F32_FLUSH (16) too
    s = draw(st.integers(1, 4))
    p = draw(st.integers(0, k // 2))
    L = draw(st.integers(max(1, k - 2 * p), 150))
    shape = (draw(st.integers(1, 3)), draw(st.sampled_from([1, 2, 16, 63, 64, 65, 130])), L)
    return shape, k, s, p, draw(st.booleans()), draw(st.booleans())


@settings(max_examples=40, deadline=None)
@given(call=avg_calls(), dtype=st.sampled_from(DTYPES), kind=st.sampled_from(["normal", "ties", "specials"]),
       layout=st.sampled_from(["channels_last", "strided_cl"]), seed=st.integers(0, 2**16))
def test_avg_pool1d_channels_last_matches_reference_and_general_kernel(call, dtype, kind, layout, seed):
    shape, k, s, p, ceil_mode, count_include_pad = call
    x = _data(np.random.default_rng(seed), shape, dtype, kind)
    xl = with_layout(x, layout, batched=True)
    y = adapool.avg_pool1d(xl, k, s, p, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    # C = 1 or L = 1 is C order too: the planar kernel takes it (other sums: no bit comparison)
    channels_last = _pooling._kernel_layout(xl, 1)[1]
    assert y.dtype == dtype and (y.strides[1] == y.itemsize or not channels_last)   # as torch's
    expected = strided_ref("avg_pool1d", x, (k,), (s,), (p,), (1,), ceil_mode, count_include_pad)
    finite = np.isfinite(expected)
    tol = TOL[dtype]
    scale = np.abs(np.where(np.isfinite(x), x, 0).astype(np.float64)).max(initial=1.0)
    np.testing.assert_allclose(np.asarray(y, np.float64)[finite], expected[finite], rtol=tol, atol=tol * scale)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    np.testing.assert_array_equal(np.asarray(y)[np.isinf(expected)], expected[np.isinf(expected)])
    if channels_last:
        general = _general_avg_cl(with_layout(x, "channels_last", batched=True), k, s, p, ceil_mode, count_include_pad)
        _same_sums(y, general)


# ---- named cases: which path a call takes, and its edges ----------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, path", [
    ((2, 8, 49), "tiles"), ((2, 7, 49), "run"), ((1, 33, 225), "tiles"), ((1, 32, 511), "tiles"),
    ((1, 32, 512), "run"), ((2, 3, 600), "run"), ((1, 1, 64), "run")])
def test_max_pool1d_paths_take_their_calls(shape, path, dtype):
    # pool1d_fast takes the call (True) and gives the general kernel's bits; a long row whose
    # uniform run is shorter than 16 windows is declined (False), nothing written
    x = _data(np.random.default_rng(1), shape, dtype, "specials")
    sizes = _sizes(shape[-1], 3, 2, 1, False)
    y = np.full(shape[:-1] + sizes[1], 7.0, dtype)
    assert kernels.pool1d_fast("max", x, y, _pooling._max_pool_table(*sizes, (1,)), 2)
    np.testing.assert_array_equal(_bits(y), _bits(_general_max(x, 3, 2, 1, False)))
    if path == "run":
        sizes = _sizes(shape[-1], 3, 40, 1, False)   # windows 40 apart: a run of < 16 on 600
        y = np.full(shape[:-1] + sizes[1], 7.0, dtype)
        taken = kernels.pool1d_fast("max", x, y, _pooling._max_pool_table(*sizes, (1,)), 1)
        assert taken == (sizes[1][0] - 1 >= 16)
        if not taken:
            assert (y == 7.0).all()


def test_pool1d_fast_declines_what_it_does_not_take():
    x = np.ones((2, 16, 40), np.float16)
    sizes = _sizes(40, 3, 2, 1, False)
    y = np.zeros((2, 16, sizes[1][0]), np.float16)
    assert not kernels.pool1d_fast("max", x, y, _pooling._max_pool_table(*sizes, (1,)), 1)   # float16 max
    assert not y.any()
    xc = with_layout(np.ones((2, 16, 40), np.float32), "channels_last", batched=True)
    yc = np.zeros((2, 16, sizes[1][0]), np.float32)   # a C-order result: the general kernel's
    assert not kernels.pool1d_fast("avg", xc, yc, _pooling._pool2d_table(*sizes, True, None), 1)
    assert not yc.any()
    xc16 = with_layout(np.ones((2, 16, 40), np.float16), "channels_last", batched=True)
    assert not kernels.pool1d_fast("max_cl", xc16, y, _pooling._max_pool_table(*sizes, (1,)), 1)   # float16
    assert not y.any()
    with pytest.raises(ValueError, match="op must be"):
        kernels.pool1d_fast("min", xc, yc, _pooling._pool2d_table(*sizes, True, None), 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, p, ceil_mode", [
    ((1, 8, 192), 1, False), ((1, 8, 191), 1, False), ((2, 7, 49), 1, False), ((1, 1, 35), 0, False),
    ((1, 3, 36), 1, True), ((1, 9, 225), 0, True), ((2, 40, 523), 1, False), ((1, 2, 600), 0, False)])
def test_max_pool1d_k3_step2_kernel(shape, p, ceil_mode, dtype):
    # k = 3, step 2: rows of >= 192 elements (or < 8 rows) take the even/odd kernel, whose run
    # (>= 16 windows) is pooled in blocks of a multiple of 8 with an overlapping last block of 8;
    # run lengths 16, 17, 97, 112, 261 and 299 here. 191 at 8 rows stays with the tiles.
    x = _data(np.random.default_rng(sum(shape)), shape, dtype, "specials")
    x[0, 0, 1::2] = np.nan             # NaN at every odd element: each window holds one
    x[-1, -1, (shape[-1] - 18) & ~1::2] = -0.0   # -0.0 up to the last window (even elements: the NaN stay)
    sizes = _sizes(shape[-1], 3, 2, p, ceil_mode)
    y = np.full(shape[:-1] + sizes[1], 7.0, dtype)
    assert kernels.pool1d_fast("max", x, y, _pooling._max_pool_table(*sizes, (1,)), 2)
    expected = _general_max(x, 3, 2, p, ceil_mode)
    np.testing.assert_array_equal(_bits(y), _bits(expected))
    _assert_max_equal(y, strided_ref("max_pool1d", x, (3,), (2,), (p,), (1,), ceil_mode)[0])
    assert np.isnan(y[0, 0, 1:-1]).all()


@pytest.mark.parametrize("length", [49, 225, 511, 512, 3136])
def test_max_pool1d_specials_across_tiles_and_blocks(length):
    # NaN (with payload) runs, -inf runs, ties and -0.0 at tile-row and 256-block boundaries
    rng = np.random.default_rng(length)
    x = rng.integers(-3, 4, (2, 40, length)).astype(np.float32)
    payload = np.array([0x7FC01234], np.uint32).view(np.float32)[0]
    x[0, 31:34, 5:9] = payload          # rows 31-33: across the 32-row tile edge
    x[1, 0, :] = -np.inf
    x[1, 1, ::3] = -0.0
    x[1, 2, 250:262] = np.nan           # across the 256-output block edge on long rows
    x[0, 39, -3:] = np.nan              # the last window
    for k, s, p in ((3, 2, 1), (2, 2, 0), (3, 1, 1), (5, 3, 2)):
        y = adapool.max_pool1d(x, k, s, p)
        _assert_max_equal(y, strided_ref("max_pool1d", x, (k,), (s,), (p,), (1,))[0])
        np.testing.assert_array_equal(_bits(y), _bits(_general_max(x, k, s, p, False)))
    assert adapool.max_pool1d(x, 3, 2, 1).view(np.uint32)[0, 32, 3] == 0x7FC01234


@pytest.mark.parametrize("view", ["reversed_rows", "reversed_batch", "row_slice", "stepped_channels",
                                  "cl_reversed_pixels", "cl_channel_slice"])
def test_max_pool1d_views(view):
    x = np.random.default_rng(2).standard_normal((3, 40, 230)).astype(np.float32)
    cl = with_layout(x, "channels_last", batched=True)
    xv = {"reversed_rows": x[:, ::-1], "reversed_batch": x[::-1], "row_slice": x[:, :, 3:-4],
          "stepped_channels": x[:, ::3], "cl_reversed_pixels": cl[:, :, ::-1], "cl_channel_slice": cl[:, 5:-3]}[view]
    y = adapool.max_pool1d(xv, 3, 2, 1)
    _assert_max_equal(y, adapool.max_pool1d(np.ascontiguousarray(xv), 3, 2, 1, return_indices=True)[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_avg_pool1d_channels_last_long_windows_flush(dtype):
    # windows of 17-40 pixels: float32 lanes flushed into float64 every 16 additions, as the
    # general kernel does; values large enough that the order of additions shows
    rng = np.random.default_rng(4)
    x = with_layout((rng.standard_normal((2, 70, 300)) * 1e4 + 1e6).astype(dtype), "channels_last", batched=True)
    for k, s, p, cip in ((17, 3, 8, False), (40, 7, 0, True), (20, 20, 10, True)):
        y = adapool.avg_pool1d(x, k, s, p, ceil_mode=True, count_include_pad=cip)
        _same_sums(y, _general_avg_cl(x, k, s, p, True, cip))


def test_avg_pool1d_channels_last_signed_zeros_and_out():
    # an all -0.0 window averages to +0.0 (the sum starts at +0.0, as torch's); out= in either
    # layout gets the same values (a C-order out= takes the general kernel)
    x = with_layout(np.full((1, 16, 50), -0.0, np.float32), "channels_last", batched=True)
    y = adapool.avg_pool1d(x, 3, 2, 1)
    assert not np.signbit(y).any()
    x = with_layout(np.random.default_rng(5).standard_normal((2, 20, 90)).astype(np.float32), "channels_last",
                    batched=True)
    want = adapool.avg_pool1d(x, 4, 3, 2)
    for layout in ("channels_last", "contiguous"):
        out = with_layout(np.zeros(want.shape, np.float32), layout, batched=True)
        assert adapool.avg_pool1d(x, 4, 3, 2, out=out) is out
        _same_sums(np.ascontiguousarray(out), np.ascontiguousarray(want))


def test_new_paths_same_bits_on_1_and_2_threads():
    rng = np.random.default_rng(6)
    short = _data(rng, (4, 64, 225), np.float32, "specials")
    long = _data(rng, (1, 16, 5000), np.float64, "specials")
    many = _data(rng, (3, 50, 196), np.float32, "specials")   # k = 3, step 2: the even/odd kernel
    cl = with_layout(_data(rng, (1, 16, 6000), np.float32, "normal"), "channels_last", batched=True)
    assert_same_bits_on_1_and_2_threads([
        lambda: adapool.max_pool1d(short, 3, 2, 1), lambda: adapool.max_pool1d(long, 4, 3, 1),
        lambda: adapool.max_pool1d(many, 3, 2, 1), lambda: adapool.max_pool1d(long, 3, 2, 0, ceil_mode=True),
        lambda: adapool.max_pool1d(cl, 3, 2, 1), lambda: adapool.max_pool1d(with_layout(short, "channels_last"), 5, 3, 2),
        lambda: adapool.avg_pool1d(cl, 3, 2, 1), lambda: adapool.avg_pool1d(cl, 20, 5, 10, count_include_pad=False)])


@pytest.mark.parametrize("shape", [(4, 64, 49), (2, 32, 196), (1, 8, 225), (1, 16, 3001), (1, 1, 64), (2, 9, 192)])
def test_against_torch(torch_oracle, shape):
    torch = torch_oracle
    F = torch.nn.functional
    x = _data(np.random.default_rng(7), shape, np.float32, "specials")
    _assert_max_equal(adapool.max_pool1d(x, 3, 2, 1), F.max_pool1d(torch.from_numpy(x), 3, 2, 1).numpy())
    xcl = with_layout(x, "channels_last", batched=True)
    y, ty = adapool.max_pool1d(xcl, 3, 2, 1), F.max_pool1d(torch.from_numpy(xcl), 3, 2, 1)
    _assert_max_equal(y, ty.numpy())
    assert y.flags.c_contiguous == ty.is_contiguous()   # C order without indices, as torch's
    cl = with_layout(np.nan_to_num(x, nan=0.5, neginf=-1.0, posinf=1.0), "channels_last", batched=True)
    t = torch.from_numpy(cl)   # the same strides on torch's side
    for args in ((3, 2, 1), (4, 4, 0, True, False)):
        y, ty = adapool.avg_pool1d(cl, *args), F.avg_pool1d(t, *args)
        assert y.flags.c_contiguous == ty.is_contiguous()   # the same layout (channels-last for C > 1)
        np.testing.assert_allclose(y, ty.numpy(), rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pool1d_fast_takes_channels_last_calls(dtype):
    # the channels-last paths take these calls (float16 max excepted) and give the general
    # kernel's values: max into a C-order result, avg into a channels-last one
    x = with_layout(_data(np.random.default_rng(8), (2, 70, 75), dtype, "specials"), "channels_last", batched=True)
    sizes = _sizes(75, 3, 2, 1, True)
    y = np.zeros((2, 70, sizes[1][0]), dtype)
    taken = kernels.pool1d_fast("max_cl", x, y, _pooling._max_pool_table(*sizes, (1,)), 2)
    assert taken == (dtype != np.float16)
    if taken:
        np.testing.assert_array_equal(_bits(y), _bits(_general_max(x, 3, 2, 1, True)))
    ya = np.zeros((2, sizes[1][0], 70), dtype).transpose(0, 2, 1)
    assert kernels.pool1d_fast("avg", x, ya, _pooling._pool2d_table(*sizes, False, None), 2)
    _same_sums(ya, _general_avg_cl(x, 3, 2, 1, True, False))
