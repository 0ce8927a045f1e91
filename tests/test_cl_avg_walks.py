"""Channels-last average pooling past the register kernel's reach (pixels wider than 128
bytes over images larger than 512 KiB, windows of more than 16 pixels or inputs of more than
16 MiB): two more walks of each output row.

- Pixel by pixel: each output's window pixels added whole into one row of sums kept in L1.
  Taken where the input's footprint (N x D x H x W x pixel stride) is at most 16 MiB, and for
  windows of at most 16 pixels from 16 up to 32 MiB (up to 16 MiB they sum in registers).
- Rows: each input row of the window streamed once, in memory order, into every output
  column's sums. Taken past those sizes, and for narrow pixels (at most 128 bytes) wherever the
  register kernel does not take the window (more than 16 pixels, or fewer than 8 channels); up
  to 32 channels the row's sums then stay in registers.

Both keep the kernels' one order of additions: a window's pixels in row-major order from
+0.0; float32 in float32, flushed into a float64 sum before a lane's 17th addition; float64 and
float16 in float64; the sum times the window's float64 reciprocal, rounded once. A float32 sum
that came out inf or NaN is redone in float64. These tests write that order out in NumPy and
compare bits on both sides of the size rules.
"""
import numpy as np
import pytest

import adapool
from layouts import assert_same_bits_on_1_and_2_threads, with_layout

_FLUSH = 16
_MIB = 1 << 20


def _windows(size, out, k=None, s=None, p=0):
    """[start, end) per output: adaptive when k is None, else the strided pool's in-bounds part."""
    if k is None:
        return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]
    return [(max(i * s - p, 0), min(i * s - p + k, size)) for i in range(out)]


def _pool(size, k, s, p=0):
    return _windows(size, (size + 2 * p - k) // s + 1, k, s, p)


def _ordered_means(x, rows, cols, divisor):
    """(N, C, len(rows), len(cols)) means summed in the kernels' order; divisor(r, c) per window."""
    dt = x.dtype
    y = np.empty(x.shape[:2] + (len(rows), len(cols)), dt)
    for i, (h0, h1) in enumerate(rows):
        for j, (w0, w1) in enumerate(cols):
            pixels = [x[:, :, h, w] for h in range(h0, h1) for w in range(w0, w1)]
            wide = np.zeros(x.shape[:2])
            for v in pixels:
                wide = wide + v.astype(np.float64)
            total = wide
            if dt == np.float32:
                with np.errstate(over="ignore", invalid="ignore"):
                    acc, part = np.zeros(x.shape[:2]), np.zeros(x.shape[:2], np.float32)
                    for n, v in enumerate(pixels):
                        if n and n % _FLUSH == 0:
                            acc, part = acc + part.astype(np.float64), np.zeros_like(part)
                        part = part + v                       # one float32 rounding
                    f32 = part.astype(np.float64) if len(pixels) <= _FLUSH else acc + part
                    total = np.where(np.isfinite(f32), f32, wide)   # the float64 redo
            with np.errstate(over="ignore", invalid="ignore"):
                y[:, :, i, j] = (total * (1.0 / divisor(h1 - h0, w1 - w0))).astype(dt)
    return y


def _bits(a):
    return np.ascontiguousarray(a).view(f"u{a.itemsize}")


def _values(rng, shape, dtype):
    x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)).astype(dtype)
    x.flat[rng.integers(0, x.size, 4)] = [np.nan, np.inf, -np.inf, -0.0]
    return x


def _small(call, spatial):
    """Whether the call's windows hold at most 16 pixels (the register kernel's windows)."""
    rows, cols = call[3](*spatial)
    return max(b - a for a, b in rows) * max(b - a for a, b in cols) <= _FLUSH


def _pixel_walk_stride(call, n, spatial):
    """A pixel stride (bytes) that sends the call to the pixel walk: 4 KiB for windows of more
    than 16 pixels; for smaller windows one that puts the footprint at 24-28 MiB, past the
    register kernel's 16 MiB."""
    if not _small(call, spatial):
        return 4096
    return 4096 * -(-(24 * _MIB) // (n * int(np.prod(spatial)) * 4096))


def _wide_pixels(x, pixel_bytes):
    """x (N, C, H, W) channels-last, each pixel ``pixel_bytes`` apart (the channels first, the
    rest of the pixel zeros): a footprint of N x H x W x pixel_bytes."""
    n, c, h, w = x.shape
    stride = pixel_bytes // x.itemsize
    assert stride >= c
    store = np.zeros((n, h, w, stride), x.dtype)
    store[..., :c] = x.transpose(0, 2, 3, 1)
    return store[..., :c].transpose(0, 3, 1, 2)


CALLS = [
    # (name, spatial, adapool call, rows/cols windows, divisor)
    ("avg_pool2d(3,2,1)", (20, 19), lambda x, **k: adapool.avg_pool2d(x, 3, 2, 1, **k),
     lambda H, W: (_pool(H, 3, 2, 1), _pool(W, 3, 2, 1)), lambda r, c: 9),
    ("avg_pool2d(2)", (20, 18), lambda x, **k: adapool.avg_pool2d(x, 2, **k),
     lambda H, W: (_pool(H, 2, 2), _pool(W, 2, 2)), lambda r, c: 4),
    ("avg_pool2d(3,1,1,exclude)", (9, 11), lambda x, **k: adapool.avg_pool2d(x, 3, 1, 1, count_include_pad=False, **k),
     lambda H, W: (_pool(H, 3, 1, 1), _pool(W, 3, 1, 1)), lambda r, c: r * c),
    ("avg_pool2d(5,3,2)", (16, 17), lambda x, **k: adapool.avg_pool2d(x, 5, 3, 2, **k),   # 25-pixel windows
     lambda H, W: (_pool(H, 5, 3, 2), _pool(W, 5, 3, 2)), lambda r, c: 25),
    ("adaptive_avg_pool2d(7)", (28, 30), lambda x, **k: adapool.adaptive_avg_pool2d(x, 7, **k),
     lambda H, W: (_windows(H, 7), _windows(W, 7)), lambda r, c: r * c),
    ("adaptive_avg_pool2d(1)", (12, 13), lambda x, **k: adapool.adaptive_avg_pool2d(x, 1, **k),
     lambda H, W: (_windows(H, 1), _windows(W, 1)), lambda r, c: r * c),
    ("avg_pool2d(1,2)", (20, 19), lambda x, **k: adapool.avg_pool2d(x, 1, 2, **k),   # one-pixel windows
     lambda H, W: (_pool(H, 1, 2), _pool(W, 1, 2)), lambda r, c: 1),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("c", [33, 40, 100, 257])
@pytest.mark.parametrize("call", CALLS, ids=lambda c: c[0])
def test_pixel_walk_sums_in_order(call, c, dtype):
    _, spatial, fn, windows, divisor = call
    x = _values(np.random.default_rng(c), (2, c) + spatial, dtype)
    pixel = _pixel_walk_stride(call, 2, spatial)    # > 128 bytes, images past 512 KiB
    footprint = 2 * np.prod(spatial) * pixel
    assert 512 * 1024 < footprint / 2
    assert footprint <= 16 * _MIB if not _small(call, spatial) else 16 * _MIB < footprint <= 32 * _MIB
    want = _ordered_means(x, *windows(*spatial), divisor)
    got = fn(_wide_pixels(x, pixel))
    assert got.transpose(0, 2, 3, 1).flags.c_contiguous
    np.testing.assert_array_equal(_bits(got), _bits(want))
    into = np.zeros(want.shape, dtype)              # a C-order out: channels H x W apart
    fn(_wide_pixels(x, pixel), out=into)
    np.testing.assert_array_equal(_bits(into), _bits(want))


@pytest.mark.parametrize("call", [CALLS[0], CALLS[3], CALLS[4]], ids=lambda c: c[0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_walk_sums_in_order(call, dtype):
    # pixels 64 KiB apart: a footprint of 34.5 MiB, past both limits
    _, _, fn, windows, divisor = call
    spatial = (24, 23)
    x = _values(np.random.default_rng(5), (1, 40) + spatial, dtype)
    pixel = 65536
    assert np.prod(spatial) * pixel > 32 * _MIB
    want = _ordered_means(x, *windows(*spatial), divisor)
    np.testing.assert_array_equal(_bits(fn(_wide_pixels(x, pixel))), _bits(want))


@pytest.mark.parametrize("extra_rows", [0, 1])
@pytest.mark.parametrize("limit_mib, call", [(16, CALLS[4]), (16, CALLS[0]), (32, CALLS[0])],
                         ids=["16MiB-adaptive", "16MiB-3x3", "32MiB-3x3"])
def test_both_sides_of_the_footprint_rules(limit_mib, call, extra_rows):
    # footprint exactly at the limit and one input row more: 25-pixel windows go from the pixel
    # walk to rows at 16 MiB; 3x3 windows from registers to the pixel walk at 16 MiB, and from
    # the pixel walk to rows at 32 MiB
    _, _, fn, windows, divisor = call
    w, pixel = 32, 16384
    h = limit_mib * _MIB // (w * pixel) + extra_rows
    x = _values(np.random.default_rng(h), (1, 48, h, w), np.float32)
    want = _ordered_means(x, *windows(h, w), divisor)
    np.testing.assert_array_equal(_bits(fn(_wide_pixels(x, pixel))), _bits(want))


@pytest.mark.parametrize("call", [CALLS[0], CALLS[3], CALLS[4]], ids=lambda c: c[0])
def test_overflowing_float32_sums_are_redone_in_float64(call):
    _, spatial, fn, windows, divisor = call
    x = np.full((1, 40) + spatial, 3e38, np.float32)   # every window's float32 sum overflows
    x[0, 5] = -3e38
    x[0, 6] = -0.0                                   # all -0.0 windows: a +0.0 mean
    x[0, 7, 0, 0] = np.inf                           # a true inf stays inf
    want = _ordered_means(x, *windows(*spatial), divisor)
    got = fn(_wide_pixels(x, _pixel_walk_stride(call, 1, spatial)))
    np.testing.assert_array_equal(_bits(got), _bits(want))
    assert np.isfinite(got[0, :6]).all() and got[0, 7, 0, 0] == np.inf
    assert not np.signbit(got[0, 6]).any()


def test_into_an_out_with_strided_channels():
    _, spatial, fn, windows, divisor = CALLS[4]
    x = _values(np.random.default_rng(2), (2, 40) + spatial, np.float32)
    want = _ordered_means(x, *windows(*spatial), divisor)
    store = np.zeros((2, 80, 7, 7), np.float32)
    fn(_wide_pixels(x, 4096), out=store[:, ::2])
    np.testing.assert_array_equal(_bits(store[:, ::2]), _bits(want))
    assert (store[:, 1::2] == 0).all()


def test_walks_do_not_depend_on_thread_count():
    rng = np.random.default_rng(9)
    xs = [_wide_pixels(_values(rng, (3, c, 20, 19), np.float32), 4096) for c in (40, 257)]
    calls = [lambda x=x, call=call: call[2](x) for x in xs for call in CALLS]
    big = _wide_pixels(_values(rng, (1, 40, 16, 17), np.float32), 65536)   # rows
    calls += [lambda: adapool.avg_pool2d(big, 5, 3, 2), lambda: adapool.adaptive_avg_pool2d(big, 7)]
    mid = _wide_pixels(_values(rng, (1, 40, 20, 19), np.float32), 65536)   # 23.8 MiB: pixels
    calls += [lambda: adapool.avg_pool2d(mid, 3, 2, 1), lambda: adapool.avg_pool2d(mid, 2)]
    assert_same_bits_on_1_and_2_threads(calls)


def test_matches_torch_channels_last():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(4).standard_normal((2, 96, 40, 41)).astype(np.float32)
    cl = with_layout(x, "channels_last")   # 384-byte pixels, 1.2 MB: registers (3x3), pixel walk (-> 7)
    tx = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
    F = torch.nn.functional
    np.testing.assert_allclose(adapool.avg_pool2d(cl, 3, 2, 1), F.avg_pool2d(tx, 3, 2, 1).numpy(), rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(adapool.adaptive_avg_pool2d(cl, 7), F.adaptive_avg_pool2d(tx, 7).numpy(),
                               rtol=2e-6, atol=1e-6)


# Narrow pixels (at most 128 bytes): windows of more than 16 pixels, and any window of fewer than
# 8 channels, take the row walk, whose float32 sums run along each window row in registers up
# to 32 channels. Channel counts around the 8-lane and 32-channel chunks; windows that flush
# mid-row and at a row's end.
NARROW_C = [2, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32]   # (one channel is planar to the kernels)


@pytest.mark.parametrize("c", NARROW_C)
@pytest.mark.parametrize("call", [CALLS[3], CALLS[4], CALLS[5]], ids=lambda c: c[0])
def test_narrow_row_walk_sums_in_order(call, c):
    _, spatial, fn, windows, divisor = call
    x = _values(np.random.default_rng(c), (2, c) + spatial, np.float32)
    want = _ordered_means(x, *windows(*spatial), divisor)
    got = fn(with_layout(x, "channels_last"))
    np.testing.assert_array_equal(_bits(got), _bits(want))
    # pixels 128 bytes apart (channels then zeros), and W reversed (a negative pixel stride)
    np.testing.assert_array_equal(_bits(fn(_wide_pixels(x, 128))), _bits(want))
    flipped = np.ascontiguousarray(x[..., ::-1].transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)[..., ::-1]
    np.testing.assert_array_equal(_bits(fn(flipped)), _bits(want))


@pytest.mark.parametrize("c", [2, 3, 7])
@pytest.mark.parametrize("call", [CALLS[0], CALLS[2]], ids=lambda c: c[0])
def test_few_channels_small_windows_sum_in_order(call, c):
    # fewer channels than a vector: the register kernel declines, the row walk takes them
    _, spatial, fn, windows, divisor = call
    x = _values(np.random.default_rng(c + 50), (3, c) + spatial, np.float32)
    want = _ordered_means(x, *windows(*spatial), divisor)
    np.testing.assert_array_equal(_bits(fn(with_layout(x, "channels_last"))), _bits(want))


@pytest.mark.parametrize("c", [3, 16, 24, 32])
def test_narrow_overflowing_float32_sums_are_redone_in_float64(c):
    _, spatial, fn, windows, divisor = CALLS[4]
    x = np.full((1, c) + spatial, 3e38, np.float32)
    x[0, 0] = -3e38
    x[0, -1, :, :5] = -0.0
    x[0, c // 2, 3, 3] = np.nan
    want = _ordered_means(x, *windows(*spatial), divisor)
    got = fn(with_layout(x, "channels_last"))
    np.testing.assert_array_equal(_bits(got), _bits(want))
    assert np.isfinite(got[0, : c // 2]).all()


def test_narrow_row_walk_does_not_depend_on_thread_count():
    rng = np.random.default_rng(11)
    xs = [with_layout(_values(rng, (3, c, 33, 31), np.float32), "channels_last") for c in (3, 16, 24)]
    assert_same_bits_on_1_and_2_threads([lambda x=x: adapool.adaptive_avg_pool2d(x, (3, 5)) for x in xs]
                                        + [lambda x=x: adapool.avg_pool2d(x, 5, 3, 2) for x in xs])


def test_narrow_row_walk_matches_torch_channels_last():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(6).standard_normal((2, 16, 223, 223)).astype(np.float32)
    tx = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
    np.testing.assert_allclose(adapool.adaptive_avg_pool2d(with_layout(x, "channels_last"), 7),
                               torch.nn.functional.adaptive_avg_pool2d(tx, 7).numpy(), rtol=2e-6, atol=1e-6)


# Outputs of more than 16 MiB are written with streaming stores (channels-last float32 results,
# unit channel stride): whole cache lines only, the partial lines at each pixel's ends with
# plain stores. The values are the plain stores' (the C-order out= below takes those).
@pytest.mark.parametrize("shape, k, s, p", [
    ((1, 256, 130, 130), 3, 1, 1),    # 17.3 MB input and output: the pixel walk (<= 32 MiB)
    ((1, 256, 182, 182), 3, 1, 1),    # 33.9 MB input and output: the row walk (> 32 MiB)
    ((1, 4, 1100, 1000), 3, 1, 1),    # 16-byte pixels (no whole line in one): the row walk
], ids=["pixel-walk", "row-walk", "few-channels"])
def test_large_outputs_streamed_with_the_same_bits(shape, k, s, p):
    n, c, h, w = shape
    x = with_layout(np.random.default_rng(c).standard_normal(shape, dtype=np.float32), "channels_last")
    got = adapool.avg_pool2d(x, k, s, p)
    assert got.nbytes > 16 * _MIB and got.transpose(0, 2, 3, 1).flags.c_contiguous
    if c == 256:   # 1 KiB pixels: whole pixels up to a 32 MiB footprint (3x3 windows), rows past it
        assert (x.nbytes <= 32 * _MIB) == (h == 130)
    plain = np.empty(got.shape, np.float32)           # C order: channels apart, plain stores
    adapool.avg_pool2d(x, k, s, p, out=plain)
    np.testing.assert_array_equal(_bits(got), _bits(plain))
    # a channels-last out one float past a line boundary: every pixel starts mid-line
    oh, ow = got.shape[2:]
    store = np.zeros(n * oh * ow * c + 17, np.float32)
    odd = store[1:-16].reshape(n, oh, ow, c).transpose(0, 3, 1, 2)
    adapool.avg_pool2d(x, k, s, p, out=odd)
    np.testing.assert_array_equal(_bits(odd), _bits(plain))
    assert store[0] == 0 and (store[-16:] == 0).all()
    window = x[0, :, 37 * s - p:37 * s - p + k, 20 * s - p:20 * s - p + k].astype(np.float64)
    np.testing.assert_allclose(got[0, :, 37, 20], window.sum((1, 2)) / (k * k), rtol=1e-5, atol=1e-6)
    # two threads split the rows (each thread's range fenced after its streaming stores)
    assert_same_bits_on_1_and_2_threads([lambda: adapool.avg_pool2d(x, k, s, p)])
