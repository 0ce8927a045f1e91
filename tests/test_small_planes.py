"""Issues 15 and 13: channels-last max pooling with its running maxima in SIMD registers, and
the average gradients of small planes as a gather over channels.

Max forward (channels-last input; planar small planes reach the same kernel through their
channels-last tiles): channel counts around the kernel's chunks (32 float32 / 16 float64
channels a step, then 8 / 4, then an overlapping last vector), views whose pixels or rows are strided or
reversed, results stored channels-last or, for unbatched and adaptive 3-d calls, in C order;
NaN/tie/-inf/signed-zero data; float16/32/64; the bits of the reference and of torch; 1 and 2
threads. The register kernel's lane threshold (blocks narrower than one vector run the
scratch-row kernel) and its overlapping tail: every channel count on both sides, 2-d and 3-d.
Average gradients of planes up to 1024 elements (both layouts): the float64 sum of grad /
divisor in increasing output order from 0, rounded once, checked bit for bit against that sum
written out in NumPy, against the float64 reference and against torch.autograd.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import adapool
from layouts import assert_same_bits_on_1_and_2_threads, hostile, with_layout
from reference import adaptive_avg_pool_backward_ref, adaptive_max_pool_ref, strided_avg_backward_ref, strided_ref

DTYPES = [np.float16, np.float32, np.float64]
CHANNELS = [1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40, 48, 65]
CL_LAYOUTS = ["channels_last", "strided_cl", "reversed_cl"]


def _layout(x, layout, batched=True):
    """with_layout, plus a channels-last buffer read with H reversed (C keeps unit stride, the
    row stride is negative)."""
    if layout == "reversed_cl":
        stored = with_layout(np.ascontiguousarray(x[..., ::-1, :]), "channels_last", batched=batched)
        return stored[..., ::-1, :]
    return with_layout(x, layout, batched=batched)


def _bits(a):
    return np.ascontiguousarray(a).view(f"u{a.itemsize}")


def _assert_same_bits(actual, expected):
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    np.testing.assert_array_equal(_bits(actual), _bits(expected))   # NaN payloads, -0.0 included


# ---- max pooling forward, channels-last ----------------------------------------------------------

MAX_CALLS = [
    # (name, spatial shape, call, reference)
    ("max_pool2d(3,2,1)", (9, 8), lambda x, **k: adapool.max_pool2d(x, 3, 2, 1, **k),
     lambda x: strided_ref("max_pool2d", x, (3, 3), (2, 2), (1, 1), (1, 1))),
    ("max_pool2d(2)", (7, 6), lambda x, **k: adapool.max_pool2d(x, 2, **k),
     lambda x: strided_ref("max_pool2d", x, (2, 2), (2, 2), (0, 0), (1, 1))),
    ("max_pool2d(3,1,1,ceil)", (5, 7), lambda x, **k: adapool.max_pool2d(x, 3, 1, 1, ceil_mode=True, **k),
     lambda x: strided_ref("max_pool2d", x, (3, 3), (1, 1), (1, 1), (1, 1), True)),
    ("max_pool2d((1,4),(2,3),ceil)", (6, 11), lambda x, **k: adapool.max_pool2d(x, (1, 4), (2, 3), ceil_mode=True, **k),
     lambda x: strided_ref("max_pool2d", x, (1, 4), (2, 3), (0, 0), (1, 1), True)),
    ("adaptive_max_pool2d((5,3))", (11, 7), lambda x, **k: adapool.adaptive_max_pool2d(x, (5, 3), **k),
     lambda x: adaptive_max_pool_ref(x, (5, 3))),
    ("max_pool3d(2,1)", (3, 4, 5), lambda x, **k: adapool.max_pool3d(x, 2, 1, **k),
     lambda x: strided_ref("max_pool3d", x, (2, 2, 2), (1, 1, 1), (0, 0, 0), (1, 1, 1))),
    ("adaptive_max_pool3d((2,3,2))", (3, 5, 4), lambda x, **k: adapool.adaptive_max_pool3d(x, (2, 3, 2), **k),
     lambda x: adaptive_max_pool_ref(x, (2, 3, 2))),
]


def _check_cl_max(call, c, dtype, layout, rng):
    """A max call on hostile (2, c, ...) data in ``layout``, with and without indices, against the
    reference's values and indices bit for bit; returns the values."""
    _, spatial, fn, ref = call
    x = hostile(rng, (2, c) + spatial, dtype)
    y, i = fn(_layout(x, layout), return_indices=True)
    ey, ei = ref(x)
    np.testing.assert_array_equal(i, ei)
    _assert_same_bits(y, ey)   # the picked element itself: NaN payload, -0.0
    _assert_same_bits(fn(_layout(x, layout)), ey)   # values only: the same picks
    return y


@pytest.mark.parametrize("layout", CL_LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", CHANNELS)
@pytest.mark.parametrize("call", MAX_CALLS, ids=lambda c: c[0])
def test_channels_last_max_matches_reference_bits(call, c, dtype, layout, rng):
    _check_cl_max(call, c, dtype, layout, rng)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", [5, 33, 40])
def test_unbatched_channels_last_max_writes_c_order(c, dtype, rng):
    # (C, H, W) with C unit stride runs the channels-last kernel into a C-order result: the
    # kernel's per-lane stores, not its vector stores.
    x = hostile(rng, (c, 9, 10), dtype)
    xl = _layout(x, "channels_last", batched=False)
    y, i = adapool.max_pool2d(xl, 3, 2, 1, return_indices=True)
    assert y.flags.c_contiguous and i.flags.c_contiguous
    ey, ei = strided_ref("max_pool2d", x, (3, 3), (2, 2), (1, 1), (1, 1))
    np.testing.assert_array_equal(i, ei)
    _assert_same_bits(y, ey)


@st.composite
def cl_max_calls(draw):
    c = draw(st.sampled_from(CHANNELS + [2, 64, 100]))
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = tuple(draw(st.integers(0, kk // 2)) for kk in k)
    hw = tuple(draw(st.integers(max(1, kk - 2 * pp), 16)) for kk, pp in zip(k, p))
    n = draw(st.integers(1, 3))
    return (n, c) + hw, dict(kernel_size=k, stride=s, padding=p, ceil_mode=draw(st.booleans()))


@given(call=cl_max_calls(), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_channels_last_max_matches_torch(torch_oracle, call, dtype, seed):
    shape, kw = call
    x = _layout(hostile(np.random.default_rng(seed), shape, dtype), "channels_last")
    t = torch_oracle.from_numpy(np.ascontiguousarray(x)).contiguous(memory_format=torch_oracle.channels_last)
    y, i = adapool.max_pool2d(x, **kw, return_indices=True)
    ty, ti = torch_oracle.nn.functional.max_pool2d(t, **kw, return_indices=True)
    np.testing.assert_array_equal(i, ti.numpy())
    np.testing.assert_array_equal(y, ty.numpy())                              # NaN where NaN
    np.testing.assert_array_equal(np.signbit(y), np.signbit(ty.numpy()))     # -0.0 where -0.0
    for ours in (y, i):   # torch's layout (an input of 1x1 planes is C-contiguous too: torch's C order then)
        assert ours.transpose(0, 2, 3, 1).flags.c_contiguous == ty.is_contiguous(memory_format=torch_oracle.channels_last)
        assert ours.flags.c_contiguous == ty.is_contiguous()


def test_channels_last_max_results_do_not_depend_on_thread_count():
    rng = np.random.default_rng(3)
    x = _layout(hostile(rng, (4, 40, 33, 35), np.float32), "channels_last")
    x64 = x.astype(np.float64)   # keeps the layout
    calls = [lambda: adapool.max_pool2d(x, 3, 2, 1, return_indices=True),
             lambda: adapool.max_pool2d(x, 2),
             lambda: adapool.adaptive_max_pool2d(x, (7, 5), return_indices=True),
             lambda: adapool.max_pool2d(x64, 3, 2, 1, return_indices=True),
             lambda: adapool.max_pool2d(np.ascontiguousarray(x), 3, 2, 1, return_indices=True)]   # tiles
    assert_same_bits_on_1_and_2_threads(calls)


# ---- average gradients of small planes ----------------------------------------------------------

def _ordered_avg_backward(go, spatial, windows, divisors, dtype):
    """The kernel's documented sum: float64, from 0, each output's grad * (1 / divisor) added over
    its window in increasing output order, rounded once to ``dtype``."""
    go = np.asarray(go, dtype=np.float64)
    gi = np.zeros(go.shape[:2] + spatial)
    (h0, h1), (w0, w1) = windows
    for oh in range(go.shape[2]):
        for ow in range(go.shape[3]):
            term = go[:, :, oh, ow] * (1.0 / divisors[oh, ow])
            gi[:, :, h0[oh]:h1[oh], w0[ow]:w1[ow]] += term[:, :, None, None]
    return gi.astype(dtype)


def _pool2d_windows(spatial, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    from adapool._windows import pool_output_size, pool_windows

    axes = [pool_windows(pool_output_size(i, k, s, p, ceil_mode), i, k, s, p, count_include_pad)
            for i, k, s, p in zip(spatial, kernel, stride, padding)]
    divisors = np.multiply.outer(axes[0][2], axes[1][2]).astype(np.int64)
    if divisor_override is not None:
        divisors[...] = divisor_override
    return [(a[0], a[1]) for a in axes], divisors


AVG_CALLS = [
    # (spatial, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    ((7, 7), (3, 3), (2, 2), (1, 1), False, True, None),
    ((15, 15), (3, 3), (2, 2), (1, 1), False, True, None),
    ((14, 9), (2, 3), (2, 1), (0, 1), True, False, None),
    ((10, 11), (1, 1), (3, 2), (0, 0), False, True, None),      # columns and rows no window reads
    ((8, 13), (4, 3), (3, 2), (2, 1), True, True, -3),
    ((32, 32), (3, 3), (2, 2), (1, 1), True, True, None),       # 1024 elements: the largest gathered
]


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided_cl", "strided_rows", "negative"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", [1, 7, 8, 15, 16, 17, 33, 300])
@pytest.mark.parametrize("call", AVG_CALLS, ids=str)
def test_small_plane_avg_gradient_is_the_ordered_float64_sum(call, c, dtype, layout, rng):
    spatial, kernel, stride, padding, ceil_mode, cip, div = call
    windows, divisors = _pool2d_windows(spatial, kernel, stride, padding, ceil_mode, cip, div)
    out = tuple(len(w[0]) for w in windows)
    go = (rng.standard_normal((2, c) + out) * 4).astype(dtype)
    go[rng.random(go.shape) < 0.1] = -0.0   # 0.0 + -0.0 is +0.0: the sum starts from 0
    shape = (2, c) + spatial
    gi = adapool.avg_pool2d_backward(_layout(go, layout), shape, kernel, stride, padding, ceil_mode, cip, div)
    _assert_same_bits(gi, _ordered_avg_backward(go, spatial, windows, divisors, dtype))
    ref = strided_avg_backward_ref(go, shape, kernel, stride, padding, ceil_mode, cip, div)
    np.testing.assert_allclose(gi.astype(np.float64), ref, rtol=2e-3 if dtype == np.float16 else 1e-6, atol=1e-6)
    cl = layout in ("channels_last", "strided_cl")   # grad_input follows grad_output's layout
    assert gi.transpose(0, 2, 3, 1).flags.c_contiguous if cl else gi.flags.c_contiguous


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_small_plane_adaptive_avg_gradient(dtype, layout, rng):
    go = rng.standard_normal((3, 19, 5, 4)).astype(dtype)
    shape = (3, 19, 11, 7)   # overlapping windows on both axes
    gi = adapool.adaptive_avg_pool2d_backward(_layout(go, layout), shape)
    ref = adaptive_avg_pool_backward_ref(go, shape, 2)
    np.testing.assert_allclose(gi.astype(np.float64), ref, rtol=2e-3 if dtype == np.float16 else 1e-6, atol=1e-6)


@given(call=st.sampled_from(AVG_CALLS), c=st.integers(1, 40), n=st.integers(1, 3),
       layout=st.sampled_from(["contiguous", "channels_last"]), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_small_plane_avg_gradient_matches_torch_autograd(torch_oracle, call, c, n, layout, seed):
    spatial, kernel, stride, padding, ceil_mode, cip, div = call
    torch = torch_oracle
    x = torch.zeros((n, c) + spatial, dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.avg_pool2d(x, kernel, stride, padding, ceil_mode, cip, div)
    go = np.random.default_rng(seed).standard_normal(tuple(y.shape))
    y.backward(torch.from_numpy(go))
    gi = adapool.avg_pool2d_backward(_layout(go, layout), x.shape, kernel, stride, padding, ceil_mode, cip, div)
    np.testing.assert_allclose(gi, x.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_small_plane_avg_gradient_does_not_depend_on_thread_count():
    rng = np.random.default_rng(5)
    go = rng.standard_normal((6, 300, 8, 8)).astype(np.float32)
    gcl = _layout(go, "channels_last")
    calls = [lambda: adapool.avg_pool2d_backward(go, (6, 300, 15, 15), 3, 2, 1),
             lambda: adapool.avg_pool2d_backward(gcl, (6, 300, 15, 15), 3, 2, 1),
             lambda: adapool.adaptive_avg_pool2d_backward(gcl, (6, 300, 17, 13)),
             lambda: adapool.avg_pool2d_backward(gcl.astype(np.float64), (6, 300, 16, 16), 2),
             lambda: adapool.avg_pool2d_backward(gcl[:1], (1, 300, 15, 15), 3, 2, 1)]   # one image: split by channels
    assert_same_bits_on_1_and_2_threads(calls)


# ---- max gradients, channels-last -----------------------------------------------------------------

def _ordered_max_backward(go, ind, input_shape):
    """grad_input[index] += grad_output per (n, c) plane, in output order, in go's dtype."""
    n, c = go.shape[:2]
    gi = np.zeros((n, c, int(np.prod(input_shape[2:]))), dtype=go.dtype)
    flat_go, flat_ind = go.reshape(n, c, -1), ind.reshape(n, c, -1)
    for a in range(n):
        for b in range(c):
            np.add.at(gi[a, b], flat_ind[a, b], flat_go[a, b])
    return gi.reshape(input_shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", [1, 5, 16, 33, 259])
@pytest.mark.parametrize("indices", ["forward", "repeated"])
def test_channels_last_max_gradient_is_the_ordered_scatter(indices, c, dtype, rng):
    shape = (2, c, 9, 8)
    x = _layout(hostile(rng, shape, dtype), "channels_last")
    _, ind = adapool.max_pool2d(x, 3, 2, 1, return_indices=True)   # channels-last
    if indices == "repeated":   # any index of the plane, many outputs on one element
        ind[...] = rng.integers(0, 4, ind.shape) * 17
    go = _layout((rng.standard_normal(ind.shape) * 3).astype(dtype), "channels_last")
    gi = adapool.max_pool2d_backward(go, ind, shape, 3, 2, 1)
    assert gi.transpose(0, 2, 3, 1).flags.c_contiguous or c == 1
    _assert_same_bits(gi, _ordered_max_backward(go, ind, shape))
    adaptive = adapool.adaptive_max_pool2d_backward(go, ind, shape)
    _assert_same_bits(adaptive, gi)


def test_channels_last_max_gradient_refuses_an_index_outside_the_plane(rng):
    go = _layout(rng.standard_normal((1, 40, 3, 3)).astype(np.float32), "channels_last")
    ind = _layout(rng.integers(0, 36, go.shape), "channels_last")
    for bad in (36, -1):
        ind[0, 37, 2, 1] = bad
        with pytest.raises(ValueError, match=r"outside \[0, 36\)"):
            adapool.adaptive_max_pool2d_backward(go, ind, (1, 40, 6, 6))


# ---- channels-last max forward: the register kernel's lane threshold and overlapping tail ------
# Blocks narrower than one register vector (8 float32 / 4 float64 channels) run the scratch-row
# kernel; wider ones the register kernel, whose tail narrower than a vector is the block's last
# full vector again, overlapping channels already stored. Channel counts on both sides of the
# threshold and of every tail width, large enough planes that the block is the whole of C.

LANES = {np.float16: 8, np.float32: 8, np.float64: 4}   # float16: the scratch row throughout


def _lane_edges(dtype):
    v = LANES[dtype]
    return sorted({1, 2, v - 1, v, v + 1, v + v // 2, 2 * v - 1, 3 * v + 1, 4 * v - 1,
                   4 * v + 1, 5 * v - 1, 5 * v + v // 2})


LANE_CASES = [(dtype, c) for dtype in DTYPES for c in _lane_edges(dtype)]


@pytest.mark.parametrize("layout", CL_LAYOUTS)
@pytest.mark.parametrize("dtype,c", LANE_CASES, ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize("call", [MAX_CALLS[0], MAX_CALLS[1], MAX_CALLS[4], MAX_CALLS[5]], ids=lambda c: c[0])
def test_channels_last_max_around_the_lane_threshold(call, dtype, c, layout, rng):
    y = _check_cl_max(call, c, dtype, layout, rng)
    assert y.transpose(0, *range(2, y.ndim), 1).flags.c_contiguous   # channels-last like torch's


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", [3, 5, 12, 13, 19])
def test_unbatched_overlapping_tail_writes_c_order(c, dtype, rng):
    # (C, H, W) with C unit stride: C-order results, so the overlapped channels are stored lane
    # by lane (twice), not as vectors.
    x = hostile(rng, (c, 11, 9), dtype)
    y, i = adapool.max_pool2d(_layout(x, "channels_last", batched=False), 2, return_indices=True)
    assert y.flags.c_contiguous and i.flags.c_contiguous
    ey, ei = strided_ref("max_pool2d", x, (2, 2), (2, 2), (0, 0), (1, 1))
    np.testing.assert_array_equal(i, ei)
    _assert_same_bits(y, ey)


def test_lane_threshold_all_ties_and_all_minus_inf_pick_the_first():
    # A window of equal values keeps its first element; all -inf too (the start value is -inf
    # with the window's first index: a greater-only rule must never move it).
    for dtype in (np.float32, np.float64):
        for c in (3, 4, 8, 12, 13):
            for fill in (1.5, -np.inf, -0.0):
                x = np.full((1, c, 6, 6), fill, dtype)
                y, i = adapool.max_pool2d(_layout(x, "channels_last"), 3, 3, return_indices=True)
                _assert_same_bits(y, np.full((1, c, 2, 2), fill, dtype))
                np.testing.assert_array_equal(i[0, :, :, :], np.broadcast_to([[0, 3], [18, 21]], (c, 2, 2)))


def test_lane_threshold_nan_takes_the_last_nan():
    for dtype in (np.float32, np.float64):
        for c in (3, 4, 9, 13):
            x = np.zeros((1, c, 4, 4), dtype)
            x[0, :, 0, 1] = np.nan
            x[0, :, 1, 0] = 7.0
            x[0, :, 1, 1] = np.nan
            y, i = adapool.max_pool2d(_layout(x, "channels_last"), 2, return_indices=True)
            assert np.isnan(y[0, :, 0, 0]).all()
            np.testing.assert_array_equal(i[0, :, 0, 0], 5)   # (1, 1): the last NaN in scan order


@given(c=st.integers(1, 45), nd=st.sampled_from([2, 3]), k=st.integers(1, 3), s=st.integers(1, 3),
       dtype=st.sampled_from(DTYPES), layout=st.sampled_from(CL_LAYOUTS), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=50, deadline=None)
def test_channels_last_max_any_channel_count_matches_torch(torch_oracle, c, nd, k, s, dtype, layout, seed):
    spatial = (5, 7) if nd == 2 else (3, 4, 6)
    x = hostile(np.random.default_rng(seed), (2, c) + spatial, dtype)
    fmt = torch_oracle.channels_last if nd == 2 else torch_oracle.channels_last_3d
    t = torch_oracle.from_numpy(x).contiguous(memory_format=fmt)
    fn = adapool.max_pool2d if nd == 2 else adapool.max_pool3d
    tfn = torch_oracle.nn.functional.max_pool2d if nd == 2 else torch_oracle.nn.functional.max_pool3d
    y, i = fn(_layout(x, layout), k, s, return_indices=True)
    ty, ti = tfn(t, k, s, return_indices=True)
    # Indices from torch's contiguous kernel: its channels-last 3-d one drops the depth term of
    # an all -inf window's index in the channels past the last multiple of 8 (the named test
    # below); the rule is layout-independent.
    np.testing.assert_array_equal(i, tfn(torch_oracle.from_numpy(x), k, s, return_indices=True)[1].numpy())
    if nd == 2:
        np.testing.assert_array_equal(i, ti.numpy())
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(np.signbit(y), np.signbit(ty.numpy()))
    for ours in (y, i):
        assert ours.transpose(0, *range(2, nd + 2), 1).flags.c_contiguous == ty.is_contiguous(memory_format=fmt)


@pytest.mark.parametrize("c", [3, 8, 12])
def test_all_minus_inf_3d_windows_report_the_first_index(torch_oracle, c):
    # torch 2.13 CPU, channels_last_3d, channels c % 8 != 0 past the last 8: an all -inf window
    # reports (ih * W + iw), without the depth term; its contiguous kernel and adapool (either
    # layout) report the first element, (id * H + ih) * W + iw.
    x = np.full((1, c, 3, 4, 6), -np.inf, np.float32)
    expected = np.arange(72).reshape(3, 4, 6)
    for layout in ("contiguous", "channels_last"):
        y, i = adapool.max_pool3d(with_layout(x, layout), 1, 1, return_indices=True)
        np.testing.assert_array_equal(i, np.broadcast_to(expected, i.shape))
    ti = torch_oracle.nn.functional.max_pool3d(torch_oracle.from_numpy(x), 1, 1, return_indices=True)[1]
    np.testing.assert_array_equal(ti.numpy(), np.broadcast_to(expected, i.shape))


def test_lane_threshold_results_do_not_depend_on_thread_count():
    rng = np.random.default_rng(5)
    calls = []
    for c in (4, 7, 12, 13, 36):
        x = _layout(hostile(rng, (2, c, 30, 31), np.float32), "channels_last")
        x64 = x.astype(np.float64)
        x3 = _layout(hostile(rng, (1, c, 4, 20, 21), np.float32), "channels_last")
        calls += [lambda x=x: adapool.max_pool2d(x, 2, return_indices=True),
                  lambda x64=x64: adapool.max_pool2d(x64, 3, 2, 1, return_indices=True),
                  lambda x3=x3: adapool.max_pool3d(x3, 2, return_indices=True)]
    assert_same_bits_on_1_and_2_threads(calls)
