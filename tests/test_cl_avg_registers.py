"""Channels-last average pooling of small windows (at most 16 pixels) over images of at most
512 KiB, inputs of at most 16 MiB (N x D x H x W x pixel stride), or pixels of at most 128
bytes: each chunk of channels sums its window in SIMD registers instead of the scratch row.

The order of additions per channel is fixed: the window's pixels in row-major order, added in
float32 (float64 for float64 input) to +0.0; the sum times the window's float64 reciprocal is
rounded once. A float32 sum that came out inf or NaN is redone in float64 in the same order.
These tests write that order out in NumPy and compare bits, on both sides of the lane and
image-size thresholds, 1 and 2 threads, C-order and channel-strided results.
"""
import numpy as np
import pytest

import adapool
from layouts import assert_same_bits_on_1_and_2_threads, with_layout


def _windows(size, out, k=None, s=None, p=0):
    """[start, end) per output: adaptive when k is None, else the strided pool's in-bounds part."""
    if k is None:
        return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]
    return [(max(i * s - p, 0), min(i * s - p + k, size)) for i in range(out)]


def _emulated(x, rows, cols, divisor):
    """(N, C, len(rows), len(cols)) means in the kernels' order; divisor(r, c) per window."""
    dt = x.dtype
    y = np.empty(x.shape[:2] + (len(rows), len(cols)), dt)
    for i, (h0, h1) in enumerate(rows):
        for j, (w0, w1) in enumerate(cols):
            acc = np.zeros(x.shape[:2], dt)
            wide = np.zeros(x.shape[:2])
            for h in range(h0, h1):
                for w in range(w0, w1):
                    with np.errstate(over="ignore", invalid="ignore"):
                        acc = acc + x[:, :, h, w]            # one rounding in the input type
                    wide = wide + x[:, :, h, w].astype(np.float64)
            inv = 1.0 / divisor(h1 - h0, w1 - w0)
            with np.errstate(over="ignore", invalid="ignore"):
                total = np.where(np.isfinite(acc), acc.astype(np.float64), wide)   # the repair pass
                y[:, :, i, j] = (total * inv).astype(dt)
    return y


def _bits(a):
    return np.ascontiguousarray(a).view(f"u{a.itemsize}")


def _values(rng, shape, dtype):
    x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)).astype(dtype)
    x.flat[rng.integers(0, x.size, 3)] = [np.nan, np.inf, -0.0]
    return x


CALLS = [
    # (name, spatial, adapool call, rows/cols windows, divisor)
    ("avg_pool2d(3,2,1)", (14, 14), lambda x: adapool.avg_pool2d(x, 3, 2, 1),
     lambda H, W: (_windows(H, 7, 3, 2, 1), _windows(W, 7, 3, 2, 1)), lambda r, c: 9),
    ("avg_pool2d(3,2,1,exclude)", (15, 13), lambda x: adapool.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
     lambda H, W: (_windows(H, 8, 3, 2, 1), _windows(W, 7, 3, 2, 1)), lambda r, c: r * c),
    ("avg_pool2d(4,4,divisor=7)", (8, 12), lambda x: adapool.avg_pool2d(x, 4, divisor_override=7),
     lambda H, W: (_windows(H, 2, 4, 4), _windows(W, 3, 4, 4)), lambda r, c: 7),
    ("adaptive_avg_pool2d(7)", (15, 15), lambda x: adapool.adaptive_avg_pool2d(x, 7),
     lambda H, W: (_windows(H, 7), _windows(W, 7)), lambda r, c: r * c),
    ("adaptive_avg_pool2d((3,5))", (12, 9), lambda x: adapool.adaptive_avg_pool2d(x, (3, 5)),
     lambda H, W: (_windows(H, 3), _windows(W, 5)), lambda r, c: r * c),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", [3, 4, 7, 8, 9, 31, 32, 33, 40, 257])
@pytest.mark.parametrize("call", CALLS, ids=lambda c: c[0])
def test_window_sums_in_registers_are_the_ordered_sums(call, c, dtype):
    _, spatial, fn, windows, divisor = call
    x = _values(np.random.default_rng(c), (2, c) + spatial, dtype)
    want = _emulated(x, *windows(*spatial), divisor)
    got = fn(with_layout(x, "channels_last"))
    assert got.transpose(0, 2, 3, 1).flags.c_contiguous
    np.testing.assert_array_equal(_bits(got), _bits(want))
    strided = with_layout(x, "strided_cl")          # pixels further apart than C
    np.testing.assert_array_equal(_bits(fn(strided)), _bits(want))


@pytest.mark.parametrize("k", [2, 4])
def test_power_of_two_divisors_round_once_down_to_subnormals(k):
    # 1 / 4 and 1 / 16 are taken as float32 multiplications (exact, so rounded once as the
    # float64 product is): sums near the smallest normals give subnormal means, where a second
    # rounding would show
    rng = np.random.default_rng(k)
    x = (rng.standard_normal((2, 40, 8, 8)) * 3e-38).astype(np.float32)
    x[0, 0] = np.float32(1.4e-45)                   # the smallest subnormal: means of 1/k**2 of it
    want = _emulated(x, _windows(8, 8 // k, k, k), _windows(8, 8 // k, k, k), lambda r, c: k * k)
    got = adapool.avg_pool2d(with_layout(x, "channels_last"), k)
    np.testing.assert_array_equal(_bits(got), _bits(want))
    assert (np.abs(got[np.isfinite(got)]) < np.finfo(np.float32).tiny).any()   # subnormal means occur


def test_overflowing_float32_sums_are_redone_in_float64():
    x = np.full((1, 40, 14, 14), 3e38, np.float32)   # every 3x3 sum overflows float32
    x[0, 5] = -3e38
    x[0, 6, 0, 0] = np.inf                           # a true inf stays inf
    got = adapool.avg_pool2d(with_layout(x, "channels_last"), 3, 2, 1)
    want = _emulated(x, _windows(14, 7, 3, 2, 1), _windows(14, 7, 3, 2, 1), lambda r, c: 9)
    np.testing.assert_array_equal(_bits(got), _bits(want))
    assert np.isfinite(got[0, :6]).all() and got[0, 6, 0, 0] == np.inf


def test_into_an_out_with_strided_channels():
    x = _values(np.random.default_rng(1), (2, 40, 15, 15), np.float32)
    want = _emulated(x, _windows(15, 7), _windows(15, 7), lambda r, c: r * c)
    store = np.zeros((2, 80, 7, 7), np.float32)
    adapool.adaptive_avg_pool2d(with_layout(x, "channels_last"), 7, out=store[:, ::2])
    np.testing.assert_array_equal(_bits(store[:, ::2]), _bits(want))
    assert (store[:, 1::2] == 0).all()


@pytest.mark.parametrize("n", [2, 33])
def test_both_sides_of_the_image_size_threshold_agree(n):
    # 512 KiB of 256-byte pixels: (32, 64, 64) float32 is exactly that (registers), (33, 64,
    # 64) one row more. Two images are inputs of 1 MiB (registers on both sides); 33 are past
    # 16 MiB, where the larger image goes to the pixel walk (128-byte pixels would stay in
    # registers at any size)
    for h in (32, 33):
        x = _values(np.random.default_rng(h), (n, 64, h, 64), np.float32)
        want = _emulated(x, _windows(h, -(-h // 2) , 3, 2, 1), _windows(64, 32, 3, 2, 1), lambda r, c: 9)
        np.testing.assert_array_equal(_bits(adapool.avg_pool2d(with_layout(x, "channels_last"), 3, 2, 1)),
                                      _bits(want))


def test_narrow_pixels_of_a_large_image_sum_in_registers():
    # 64-byte pixels (16 float32 channels) of a 590 KB image: registers despite the image size
    x = _values(np.random.default_rng(3), (1, 16, 96, 96), np.float32)
    want = _emulated(x, _windows(96, 48, 3, 2, 1), _windows(96, 48, 3, 2, 1), lambda r, c: 9)
    np.testing.assert_array_equal(_bits(adapool.avg_pool2d(with_layout(x, "channels_last"), 3, 2, 1)), _bits(want))


def test_register_sums_do_not_depend_on_thread_count():
    rng = np.random.default_rng(8)
    xs = [with_layout(_values(rng, (4, c, 15, 15), np.float32), "channels_last") for c in (40, 257)]
    calls = [lambda x=x: adapool.avg_pool2d(x, 3, 2, 1) for x in xs]
    calls += [lambda x=x: adapool.adaptive_avg_pool2d(x, 7) for x in xs]
    assert_same_bits_on_1_and_2_threads(calls)
