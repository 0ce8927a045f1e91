"""float32 average pooling of planar inputs through the row-sum branch (rows longer than 16):
the bits of an exact model of its order of additions, whichever build and thread count runs it.

The branch sums a window's rows per column in float32 (from +0.0, rows in order, flushed into
a float64 sum every 16 rows), then the window's columns in four float64 chains (column w0 + j
into chain j % 4), (c0 + c1) + (c2 + c3), times float64(1 / divisor), rounded once. Windows
that start at a multiple of 8 columns and are a multiple of 8 wide take the AVX2 build's
register version of it (adapool_avg_row8_f32, issue 13); the others, and the baseline build,
the memory version (_sum_rows, _sum_span). Both must give these bits."""
import numpy as np
import pytest

import adapool
from adapool._windows import adaptive_windows, pool_windows

from layouts import assert_same_bits_on_1_and_2_threads, with_layout

FLUSH = 16


def model(x, hwin, wwin, dwin=None, divisors=None):
    """The branch's result for x (..., [D,] H, W) float32 and per-axis (start, end) windows;
    divisors[(od, oh, ow)] defaults to the window's element count."""
    x = np.asarray(x, np.float32)
    nd = 3 if dwin is not None else 2
    dwin = dwin if dwin is not None else (np.array([0]), np.array([1]))
    if nd == 2:
        x = x[..., None, :, :]
    lead = x.shape[:-3]
    out = np.empty(lead + (len(dwin[0]), len(hwin[0]), len(wwin[0])), np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        for od, (d0, d1) in enumerate(zip(*dwin)):
            for oh, (h0, h1) in enumerate(zip(*hwin)):
                rows = [x[..., d, h, :] for d in range(d0, d1) for h in range(h0, h1)]
                col32 = np.zeros(lead + (x.shape[-1],), np.float32)
                col64 = np.zeros(lead + (x.shape[-1],), np.float64)
                for i, r in enumerate(rows, 1):
                    col32 = col32 + r
                    if i % FLUSH == 0 or i == len(rows):
                        col64 = col64 + col32.astype(np.float64)
                        col32 = np.zeros_like(col32)
                for ow, (w0, w1) in enumerate(zip(*wwin)):
                    chains = [np.zeros(lead, np.float64) for _ in range(4)]
                    for j, c in enumerate(range(w0, w1)):
                        chains[j % 4] = chains[j % 4] + col64[..., c]
                    s = (chains[0] + chains[1]) + (chains[2] + chains[3])
                    n = (d1 - d0) * (h1 - h0) * (w1 - w0)
                    div = n if divisors is None else divisors[od, oh, ow]
                    out[..., od, oh, ow] = (s * (1.0 / div)).astype(np.float32)
    return out[..., 0, :, :] if nd == 2 else out


def windows(out, size):
    return adaptive_windows(out, size)


def strided(size, k, s):
    lo, hi, _ = pool_windows((size - k) // s + 1, size, k, s, 0, True)
    return lo, hi


def values(rng, shape):
    # Each column's values within 1e-3..1e3 of a scale of its own from 1e-15 to 1e15: the float32
    # column sums round, and so do float64 sums of columns (their exponents span more than
    # float64's 53 bits), each at different places in each order of additions.
    col = 10.0 ** rng.integers(-15, 16, shape[-1])
    return (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape) * col).astype(np.float32)


ADAPTIVE_2D = [
    ((2, 3, 56, 56), (7, 7)),         # ResNet's 56 -> 7: 8x8 windows, one 56-column block
    ((1, 2, 112, 112), (7, 7)),       # 16-wide windows, 14 vectors of column sums
    ((1, 2, 112, 112), (14, 14)),
    ((1, 2, 40, 48), (5, 3)),         # 16-wide windows, 8 rows
    ((1, 2, 40, 64), (1, 8)),         # 40 rows a window: flushed at 16 and 32, then 8 rows
    ((1, 2, 16, 256), (2, 32)),       # 256 columns: blocks of 14, 14 and 4 vectors
    ((1, 1, 33, 24), (3, 3)),         # uneven rows (11 a window), 8-wide windows
    ((3, 2, 20, 40), (4, 5)),
    ((1, 2, 20, 60), (4, 5)),         # 12-wide windows: the memory version only
    ((1, 2, 20, 50), (4, 5)),         # 10-wide
    ((1, 2, 20, 44), (4, 4)),         # 11-wide
]


@pytest.mark.parametrize("shape,out", ADAPTIVE_2D)
@pytest.mark.parametrize("layout", ["contiguous", "strided_rows", "negative"])
def test_adaptive_average_gives_the_models_bits(shape, out, layout, rng):
    x = values(rng, shape)
    want = model(x, windows(out[0], shape[-2]), windows(out[1], shape[-1]))
    got = adapool.adaptive_avg_pool2d(with_layout(x, layout), out)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("k,s", [(8, 8), (16, 8), (8, 16), (16, 16), (24, 8)])
def test_avg_pool2d_of_8_column_windows_gives_the_models_bits(k, s, rng):
    # overlapping windows (16, 8), gaps between them (8, 16), 24-wide windows
    x = values(rng, (2, 3, 48, 72))
    want = model(x, strided(48, k, s), strided(72, k, s))
    np.testing.assert_array_equal(adapool.avg_pool2d(x, k, s).view(np.uint32), want.view(np.uint32))


def test_divisor_override_takes_the_branchs_sums(rng):
    x = values(rng, (1, 2, 32, 64))
    hw, ww = strided(32, 8, 8), strided(64, 8, 8)
    div = np.full((1, 4, 8), 7)
    want = model(x, hw, ww, divisors=div)
    got = adapool.avg_pool2d(x, 8, divisor_override=7)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("shape,out", [((1, 2, 4, 16, 64), (2, 2, 8)), ((1, 1, 3, 24, 40), (1, 3, 5)),
                                       ((2, 1, 9, 8, 32), (2, 1, 2))])
def test_3d_windows_sum_their_rows_depth_outer(shape, out, rng):
    # kd x kh rows, depth outer; (9, 8) -> (2, 1): windows of 5 x 8 = 40 rows, flushed twice
    x = values(rng, shape)
    want = model(x, windows(out[1], shape[-2]), windows(out[2], shape[-1]), dwin=windows(out[0], shape[-3]))
    got = adapool.adaptive_avg_pool3d(x, out)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_same_bits_on_one_and_two_threads(rng):
    xs = [values(rng, (4, 64, 56, 56)), values(rng, (2, 16, 112, 112))]
    assert_same_bits_on_1_and_2_threads([lambda: adapool.adaptive_avg_pool2d(xs[0], 7),
                                         lambda: adapool.adaptive_avg_pool2d(xs[1], 7),
                                         lambda: adapool.avg_pool2d(xs[1], 16, 8)])


def test_nan_and_infinities_reach_their_windows_only(rng):
    x = values(rng, (1, 2, 56, 56))
    x[0, 0, 3, 9] = np.nan        # window (0, 1)
    x[0, 1, 20, 40] = np.inf      # window (2, 5)
    x[0, 1, 50, 0] = -np.inf      # window (6, 0)
    got = adapool.adaptive_avg_pool2d(x, 7)
    bad = np.zeros(got.shape, bool)
    bad[0, 0, 0, 1] = bad[0, 1, 2, 5] = bad[0, 1, 6, 0] = True
    assert np.isnan(got[0, 0, 0, 1]) and got[0, 1, 2, 5] == np.inf and got[0, 1, 6, 0] == -np.inf
    assert np.isfinite(got[~bad]).all()
    np.testing.assert_array_equal(got[~bad], model(x, windows(7, 56), windows(7, 56))[~bad])


def test_float32_sums_that_overflow_are_redone_in_float64(rng):
    # 64 values of 3e38 overflow a float32 column sum; their mean is 3e38, finite (torch: inf)
    x = values(rng, (1, 1, 56, 56))
    x[0, 0, :8, 8:16] = 3e38
    got = adapool.adaptive_avg_pool2d(x, 7)
    assert got[0, 0, 0, 1] == np.float32(3e38)
    rest = np.ones(got.shape, bool)
    rest[0, 0, 0, 1] = False   # every other window keeps the branch's bits
    np.testing.assert_array_equal(got[rest], model(x, windows(7, 56), windows(7, 56))[rest])


def test_window_columns_add_in_four_chains_in_column_order():
    # Chain 0 of the first 16x16 window adds columns 0, 4, 8, 12 in that order:
    # ((2^54 + 2^30) + 1) + 1.5 stays at 2^54 + 2^30, float32's midpoint between 2^54 and
    # 2^54 + 2^31, which rounds to even (2^54); adding (1 + 1.5) first would give 2^54 + 2^30 + 4,
    # which rounds up. Any other grouping of the chain's additions changes the float32 result.
    x = np.zeros((1, 1, 16, 32), np.float32)
    x[0, 0, 5, [0, 4, 8, 12]] = [2.0 ** 54, 2.0 ** 30, 1.0, 1.5]
    got = adapool.adaptive_avg_pool2d(x, (1, 2))
    assert got[0, 0, 0, 0] == np.float32(2.0 ** 54 / 256)
    np.testing.assert_array_equal(got, model(x, windows(1, 16), windows(2, 32)))
