"""avg_pool2d of float32 planes with W unit stride (NCHW and its strided views), rows wider than
16, windows of at most 16 pixels and at most 4 columns at stride 1 or 2, where at least 8
outputs of a row have whole windows: those are summed 8 to a vector, the clipped edge
windows one at a time. (Other rows sum columns first; they are checked against the float64
reference here.)

Every output sums its window's pixels in row-major order in float32 from +0.0 (the order the
channels-last kernels keep), times its float64 1 / divisor, rounded once; a float32 sum that
came out inf or NaN is redone in float64. These tests write that order out in NumPy and
compare bits, and check that NCHW and channels-last input give the same bits.
"""
import numpy as np
import pytest

import adapool
from layouts import assert_same_bits_on_1_and_2_threads, sum_bits32 as _bits, spiked_values as _values, with_layout
from reference import avg_pool2d_ref, ordered_f32_avg_pool2d as _ordered_means, pool2d_pairs


def _reference(x, kernel, stride=None, padding=0, *rest):
    return avg_pool2d_ref(x, *pool2d_pairs(kernel, stride, padding), *rest)


ARGS = [
    # (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    (3, 2, 1, False, True, None),
    (2, 2, 0, False, True, None),
    (3, 1, 1, False, True, None),
    (4, 2, 1, False, True, None),
    (2, 1, 0, False, True, None),
    (3, 2, 0, True, True, None),
    (3, 2, 1, False, False, None),
    (3, 2, 1, True, False, None),
    (3, 2, 1, False, True, 5),
    ((2, 4), (1, 2), (1, 2), False, True, None),
    ((4, 3), (3, 1), (2, 1), True, True, None),
    ((5, 3), 2, (2, 1), False, False, None),     # 15-pixel windows
]


@pytest.mark.parametrize("width", [23, 24, 31, 56, 113, 223])
@pytest.mark.parametrize("args", ARGS, ids=str)
def test_wide_rows_sum_in_row_major_order(args, width):
    k, s, p, ceil, include, divisor = args
    x = _values(np.random.default_rng(width), (2, 3, 11, width))
    want = _ordered_means(x, k, s, p, ceil, include, divisor)
    got = adapool.avg_pool2d(x, k, s, p, ceil, include, divisor)
    np.testing.assert_array_equal(_bits(got), _bits(want))
    cl = adapool.avg_pool2d(with_layout(x, "channels_last"), k, s, p, ceil, include, divisor)
    np.testing.assert_array_equal(_bits(cl), _bits(got))
    for layout in ("strided_rows", "negative"):
        np.testing.assert_array_equal(_bits(adapool.avg_pool2d(with_layout(x, layout), k, s, p, ceil, include, divisor)),
                                      _bits(want))


def test_close_to_the_float64_reference():
    x = np.random.default_rng(3).standard_normal((2, 4, 40, 223)).astype(np.float32)
    for args in ARGS:
        np.testing.assert_allclose(adapool.avg_pool2d(x, *args), _reference(x, *args), rtol=3e-6, atol=1e-6)


def test_into_an_out_with_strided_columns():
    x = _values(np.random.default_rng(4), (1, 2, 9, 40))
    want = _ordered_means(x, 3, 2, 1)
    store = np.zeros((1, 2, 5, 40), np.float32)
    adapool.avg_pool2d(x, 3, 2, 1, out=store[..., ::2])
    np.testing.assert_array_equal(_bits(store[..., ::2]), _bits(want))
    assert (store[..., 1::2] == 0).all()


def test_overflowing_float32_sums_are_redone_in_float64():
    x = np.full((1, 3, 6, 40), 3e38, np.float32)   # every 3x3 float32 sum overflows
    x[0, 1] = -0.0                                  # all -0.0 windows: a +0.0 mean
    x[0, 2, 0, 5] = np.inf                          # a true inf stays inf
    got = adapool.avg_pool2d(x, 3, 2, 1)
    np.testing.assert_array_equal(_bits(got), _bits(_ordered_means(x, 3, 2, 1)))
    assert np.isfinite(got[0, 0]).all() and not np.signbit(got[0, 1]).any()
    assert got[0, 2, 0, 2] == np.inf


def test_rows_that_end_the_buffer():
    # the last plane's last row ends the array's buffer: a vector block there would load past
    # it (the AddressSanitizer run in CI reports such a read); widths on both sides of a
    # whole last block
    # 18-60: a row's last block (which ends at its last whole window, its first outputs
    # computed again) reads exactly to the row's end for some of these (17 columns hold fewer
    # than 8 whole windows of these: their columns are summed first, in float64)
    for width in range(18, 61):
        x = _values(np.random.default_rng(width), (1, 1, 5, width))
        for args in ((3, 2, 1), (2, 1), (4, 2, 2), (3, 1, 1)):
            np.testing.assert_array_equal(_bits(adapool.avg_pool2d(x, *args)), _bits(_ordered_means(x, *args)))


@pytest.mark.parametrize("shape, args", [((2, 3, 9, 17), (3, 2, 1)),    # 7 whole windows a row
                                         ((2, 3, 9, 17), (4, 2, 1)),
                                         ((2, 3, 30, 56), (3, 3)),      # stride 3
                                         ((2, 3, 30, 56), (5, 2, 2)),   # 25-pixel windows
                                         ((2, 3, 30, 56), (1, 5))])     # 5 columns
def test_other_rows_stay_close_to_the_reference(shape, args):
    x = np.random.default_rng(9).standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(adapool.avg_pool2d(x, *args), _reference(x, *args), rtol=3e-6, atol=1e-6)


def test_wide_rows_do_not_depend_on_thread_count():
    rng = np.random.default_rng(6)
    xs = [_values(rng, (2, 5, 30, 223)), _values(rng, (1, 64, 56, 56))]
    assert_same_bits_on_1_and_2_threads([lambda x=x, a=a: adapool.avg_pool2d(x, *a) for x in xs for a in ARGS])


def test_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(8).standard_normal((1, 16, 223, 223)).astype(np.float32)
    F = torch.nn.functional
    for args in ARGS:
        np.testing.assert_allclose(adapool.avg_pool2d(x, *args), F.avg_pool2d(torch.from_numpy(x), *args).numpy(),
                                   rtol=3e-6, atol=1e-6)
