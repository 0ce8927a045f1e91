"""Global average pooling of dense planes: the float32 sum order is fixed (eight float32 lanes
flushed into float64 every 16 rows of 8, a fixed tree, then the tail in order), whether planes
are summed one at a time or four at a time (the AVX path for planes of at most 64 elements).
The float32 results are checked bit for bit against a NumPy emulation of that order."""
import numpy as np
import pytest

import adapool

from layouts import assert_same_bits_on_1_and_2_threads


def _emulated_means(planes: np.ndarray) -> np.ndarray:
    """float32 means of the rows of a (M, P) float32 array, in the kernels' summation order."""
    m, p = planes.shape
    rows = p // 8
    d = np.zeros((m, 8))
    for b in range(0, rows, 16):
        f = np.zeros((m, 8), np.float32)
        for j in range(b, min(b + 16, rows)):
            f = f + planes[:, 8 * j:8 * j + 8]      # float32 + float32: one IEEE rounding
        d += f.astype(np.float64)
    with np.errstate(invalid="ignore"):   # inf - inf planes: NaN, as in the kernels
        total = ((d[:, 0] + d[:, 1]) + (d[:, 2] + d[:, 3])) + ((d[:, 4] + d[:, 5]) + (d[:, 6] + d[:, 7]))
    for j in range(rows * 8, p):
        total = total + planes[:, j].astype(np.float64)
    return (total * (1.0 / p)).astype(np.float32)


def _wide_values(shape, seed):
    """Values over many binades, so that another summation order gives other bits."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * 10.0 ** rng.integers(-4, 5, shape)).astype(np.float32)


# (N, C, H, W): plane sizes around the four-plane path's limit (64) and the lane width (8),
# channel counts around the group of four, so that groups straddle images and thread ranges.
SHAPES = [
    (2, 9, 7, 7), (3, 4, 8, 8), (1, 5, 1, 7), (2, 6, 3, 3), (1, 17, 9, 7), (2, 3, 5, 13),
    (1, 8, 1, 1), (4, 7, 2, 4), (1, 64, 7, 7), (2, 5, 11, 12), (1, 12, 16, 16), (2, 4, 7, 9),
]


@pytest.mark.parametrize("shape", SHAPES)
def test_global_average_matches_the_fixed_sum_order(shape):
    x = _wide_values(shape, sum(shape))
    got = adapool.adaptive_avg_pool2d(x, 1)
    n, c, h, w = shape
    want = _emulated_means(x.reshape(n * c, h * w)).reshape(n, c, 1, 1)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_the_emulated_order_is_not_any_order():
    # The bit test above can fail: a plain float32 sum of the same planes differs somewhere.
    x = _wide_values((64, 49), 3)
    plain = (np.cumsum(x, axis=1, dtype=np.float32)[:, -1].astype(np.float64) / 49).astype(np.float32)
    assert (plain.view(np.uint32) != _emulated_means(x).view(np.uint32)).any()


def test_planes_of_a_channel_strided_view():
    # Every other channel: planes stay dense, but the plane stride is 2 * H * W.
    base = _wide_values((2, 18, 7, 7), 7)
    x = base[:, ::2]
    got = adapool.adaptive_avg_pool2d(x, 1)
    want = _emulated_means(np.ascontiguousarray(x).reshape(18, 49)).reshape(2, 9, 1, 1)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("shape", [(2, 9, 7, 7), (1, 13, 5, 5), (3, 8, 8, 8)])
def test_into_an_out_whose_channels_are_strided(shape):
    # Four planes' means are stored as one vector where the outputs' channels are adjacent;
    # an ``out`` with a channel stride of 2 takes the four sums one by one: the same bits.
    x = _wide_values(shape, 3 * sum(shape))
    n, c, h, w = shape
    want = _emulated_means(x.reshape(n * c, h * w)).reshape(n, c, 1, 1)
    store = np.full((n, 2 * c, 1, 1), 7.0, np.float32)
    adapool.adaptive_avg_pool2d(x, 1, out=store[:, ::2])
    np.testing.assert_array_equal(store[:, ::2].view(np.uint32), want.view(np.uint32))
    assert (store[:, 1::2] == 7.0).all()   # the gaps are never written
    np.testing.assert_array_equal(adapool.adaptive_avg_pool2d(x, 1).view(np.uint32), want.view(np.uint32))


def test_unbatched_1d_and_3d_global_pools():
    x = _wide_values((11, 6, 6), 11)
    want = _emulated_means(x.reshape(11, 36))
    np.testing.assert_array_equal(adapool.adaptive_avg_pool2d(x, 1).reshape(11).view(np.uint32),
                                  want.view(np.uint32))
    x3 = _wide_values((2, 5, 2, 4, 6), 5)
    want3 = _emulated_means(x3.reshape(10, 48))
    np.testing.assert_array_equal(adapool.adaptive_avg_pool3d(x3, 1).reshape(10).view(np.uint32),
                                  want3.view(np.uint32))
    x1 = _wide_values((3, 13, 40), 13)
    want1 = _emulated_means(x1.reshape(39, 40))
    np.testing.assert_array_equal(adapool.adaptive_avg_pool1d(x1, 1).reshape(39).view(np.uint32),
                                  want1.view(np.uint32))


def test_nan_and_inf_planes():
    x = _wide_values((1, 9, 7, 7), 1)
    x[0, 1, 3, 3] = np.nan
    x[0, 4, 0, 0] = np.inf
    x[0, 5, 6, 6] = -np.inf
    x[0, 6, 2, 2] = np.inf
    x[0, 6, 2, 3] = -np.inf
    got = adapool.adaptive_avg_pool2d(x, 1).reshape(9)
    assert np.isnan(got[1]) and got[4] == np.inf and got[5] == -np.inf and np.isnan(got[6])
    finite = [0, 2, 3, 7, 8]
    np.testing.assert_array_equal(got[finite], _emulated_means(x.reshape(9, 49))[finite])


def test_same_bits_on_1_and_2_threads():
    x = _wide_values((3, 37, 7, 7), 2)
    assert_same_bits_on_1_and_2_threads([lambda: adapool.adaptive_avg_pool2d(x, 1)])
