"""The row-vector paths of float32 pooling: planar inputs whose W windows are uniform (stride 1
or 2, at most 4 wide) with at most 8 outputs a row (14x14 and 15x15 -> 7x7, the FPN heads) are
pooled one output row per AVX2 vector.

Average pooling: each lane's window summed in float32 in row-major order from 0, so its bits
are exactly those of a float32 emulation of that sum and equal to the channels-last kernel's.
Max pooling: each lane runs torch's rule (x > best or x is NaN), so values (NaN payloads and
-0.0 included) and indices are torch's bit for bit. Edges: channel counts below the tile path's
8, rows read past their end (into the next row, never past the array: a guard page proves it),
outputs written 8 lanes at a time (never past the result), reversed and strided rows, windows
of H that vary, avg_pool2d's divisors, max_pool2d, one thread and two.

Global max pooling of float32 planes of 16 elements or more (adapool_max_plane_f32): torch's
pick (last NaN, else first maximum) at every position of planes around the kernel's vector,
tail and 64-element group edges."""
import mmap
import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import adapool
from adapool._dispatch import kernels
from adapool._windows import window_end, window_start

from conftest import torch
from layouts import assert_same_bits_on_1_and_2_threads, with_layout
from layouts import hostile
from reference import adaptive_avg_pool_ref, adaptive_max_pool_ref

# The baseline kernels (ADAPOOL_KERNELS=baseline, or a CPU without AVX2) take the planar and
# tile paths, whose bits for fewer than 8 channels are float64 sums: other tests cover them.
pytestmark = pytest.mark.skipif(kernels.simd_level() != "avx2", reason="the row-vector path is in the AVX2 kernels only")


def adaptive_sums(x, oh, ow):
    """out[..., i, j] = float32(float64(s) / area) with s the float32 sum of adaptive window
    (i, j), rows outer, columns inner, from +0.0 (numpy's float32 add is IEEE's)."""
    x = np.asarray(x, dtype=np.float32)
    H, W = x.shape[-2:]
    out = np.empty(x.shape[:-2] + (oh, ow), np.float32)
    for i in range(oh):
        r0, r1 = window_start(i, oh, H), window_end(i, oh, H)
        for j in range(ow):
            c0, c1 = window_start(j, ow, W), window_end(j, ow, W)
            acc = np.zeros(x.shape[:-2], np.float32)
            acc64 = np.zeros(x.shape[:-2], np.float64)
            with np.errstate(over="ignore", invalid="ignore"):
                for r in range(r0, r1):
                    for c in range(c0, c1):
                        acc = acc + x[..., r, c]
                        acc64 = acc64 + x[..., r, c].astype(np.float64)
            # a float32 sum that came out inf or NaN is redone in float64 (an overflow of finite
            # values then gives the finite mean; inf and NaN inputs give inf and NaN again)
            total = np.where(np.isfinite(acc), acc.astype(np.float64), acc64)
            out[..., i, j] = (total * (1.0 / ((r1 - r0) * (c1 - c0)))).astype(np.float32)
    return out


def same_bits(a, b):
    """Equal bits, signed zeros included; NaN equals any NaN (which operand's NaN an add returns
    is the instruction's choice, and torch leaves an average's NaN payload undefined)."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    keep = ~np.isnan(a)
    return np.array_equal(a[keep].view(np.uint32), b[keep].view(np.uint32))


# W = ow (1 wide, stride 1), ow + 1 (2 wide, stride 1), 2 ow (2 wide, stride 2), 2 ow + 1 (3 wide,
# stride 2): adaptive windows on W that are uniform, the ones this path takes.
W_OF = {"ow": lambda ow: ow, "ow+1": lambda ow: ow + 1, "2ow": lambda ow: 2 * ow, "2ow+1": lambda ow: 2 * ow + 1}


@pytest.mark.parametrize("c", [1, 2, 3, 7, 8, 9, 256])
@pytest.mark.parametrize("hw,o", [((14, 14), 7), ((15, 15), 7), ((16, 16), 8), ((15, 15), (3, 7)), ((9, 8), (4, 7))])
def test_bits_are_the_float32_row_major_sum(c, hw, o, rng):
    # c < 8 went through the float64-summing planar kernel before: its bits differ from these
    # on most windows of random data, so this test fails without the row-vector path there.
    x = rng.standard_normal((2, c) + hw).astype(np.float32)
    y = adapool.adaptive_avg_pool2d(x, o)
    oh, ow = (o, o) if isinstance(o, int) else o
    assert same_bits(y, adaptive_sums(x, oh, ow))
    assert same_bits(y, adapool.adaptive_avg_pool2d(with_layout(x, "channels_last"), o))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 12), h=st.integers(1, 24), oh=st.integers(1, 10),
       ow=st.integers(1, 8), wmode=st.sampled_from(sorted(W_OF)),
       layout=st.sampled_from(["contiguous", "strided_rows", "negative"]),
       data=st.sampled_from(["normal", "specials", "huge"]), seed=st.integers(0, 2**32 - 1))
def test_property_bits_against_the_emulation(n, c, h, oh, ow, wmode, layout, data, seed):
    w = W_OF[wmode](ow)
    kh = max(window_end(i, oh, h) - window_start(i, oh, h) for i in range(oh))
    kw = max(window_end(j, ow, w) - window_start(j, ow, w) for j in range(ow))
    assume(kh * kw <= 16)   # larger float32 windows are flushed into float64: another kernel
    assume((oh, ow) != (1, 1))   # global pooling: the float64 run sum of _avg_fwd_global
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, c, h, w)) * 100).astype(np.float32)
    if data == "huge":       # finite values whose float32 sums overflow
        x = (np.sign(x) * np.finfo(np.float32).max * rng.uniform(0.3, 1.0, x.shape)).astype(np.float32)
    if data == "specials":   # inf - inf = NaN, NaN anywhere, signed zeros
        marks = rng.random(x.shape)
        x[marks < 0.05] = np.nan
        x[(marks >= 0.05) & (marks < 0.1)] = np.inf
        x[(marks >= 0.1) & (marks < 0.15)] = -np.inf
        x[(marks >= 0.15) & (marks < 0.3)] = -0.0
    y = adapool.adaptive_avg_pool2d(with_layout(x, layout), (oh, ow))
    assert same_bits(y, adaptive_sums(x, oh, ow))


def test_all_minus_zero_windows_sum_to_plus_zero(rng):
    # The sum starts from +0.0 (as torch's and the channels-last kernel's): -0.0 + +0.0 = +0.0.
    x = np.full((1, 3, 14, 14), -0.0, np.float32)
    y = adapool.adaptive_avg_pool2d(x, 7)
    assert np.all(y == 0) and not np.any(np.signbit(y))


def _guarded(shape, dtype=np.float32):
    """An array whose last byte is the last byte before a page that can't be read: any read
    past its end kills the process (SIGSEGV), which the test run reports as a crash."""
    import ctypes

    page = mmap.PAGESIZE
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    size = (nbytes + page - 1) // page * page + page
    buf = mmap.mmap(-1, size, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    assert libc.mprotect(base + size - page, page, 0) == 0, ctypes.get_errno()   # PROT_NONE
    a = np.frombuffer(buf, dtype, int(np.prod(shape)), offset=size - page - nbytes).reshape(shape)
    return a, buf


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="guard pages through mprotect: Linux only")
@pytest.mark.parametrize("shape,o", [((1, 1, 14, 14), 7), ((2, 3, 15, 15), 7), ((1, 2, 15, 15), (5, 7)),
                                     ((1, 1, 2, 2), 1), ((1, 1, 9, 8), (4, 7)), ((3, 1, 5, 4), (5, 3))])
def test_rows_are_never_read_past_the_array(shape, o, rng):
    x, buf = _guarded(shape)
    x[...] = rng.standard_normal(shape).astype(np.float32)
    y = adapool.adaptive_avg_pool2d(x, o)
    oh, ow = (o, o) if isinstance(o, int) else o
    assert same_bits(y, adaptive_sums(x, oh, ow))
    # reversed rows: the last row read is the buffer's first, the first one its last
    assert same_bits(adapool.adaptive_avg_pool2d(x[:, :, ::-1], o), adaptive_sums(x[:, :, ::-1], oh, ow))
    del x, y
    buf.close()


@pytest.mark.parametrize("shape,o", [((1, 1, 2, 2), 1), ((1, 1, 4, 4), 2), ((2, 3, 6, 6), (3, 3)),
                                     ((1, 2, 14, 14), 7), ((1, 1, 3, 10), (1, 5))])
def test_outputs_are_never_written_past_the_result(shape, o, rng):
    # Rows are stored 8 lanes at a time; the lanes past a row spill into the next rows, and the
    # plane's last rows go through a buffer: out= a view of a bigger buffer shows any stray store.
    x = rng.standard_normal(shape).astype(np.float32)
    oh, ow = (o, o) if isinstance(o, int) else o
    count = shape[0] * shape[1] * oh * ow
    big = np.full(count + 16, 7.0, np.float32)
    out = big[:count].reshape(shape[:2] + (oh, ow))
    y = adapool.adaptive_avg_pool2d(x, o, out=out)
    assert y is out and same_bits(y, adaptive_sums(x, oh, ow))
    assert np.all(big[count:] == 7.0)


@pytest.mark.parametrize("kernel,stride,padding,ceil_mode,count_include_pad,divisor_override", [
    (2, 2, 0, False, True, None), ((3, 2), 2, (1, 0), False, False, None), ((3, 2), 2, (1, 0), True, True, None),
    ((2, 3), (1, 2), 0, False, True, 5), ((4, 1), (3, 2), (2, 0), False, False, None),
])
def test_avg_pool2d_divisors(kernel, stride, padding, ceil_mode, count_include_pad, divisor_override, rng):
    # Windows of H clamped by padding and divisors that vary by row go through the same path
    # (W windows uniform, unpadded); the bits equal the channels-last kernel's.
    x = rng.standard_normal((2, 5, 15, 14)).astype(np.float32)   # W = 14: no partial window on W
    args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    y = adapool.avg_pool2d(x, *args)
    assert same_bits(y, adapool.avg_pool2d(with_layout(x, "channels_last"), *args))
    if torch is not None:   # CI requires torch (conftest)
        t = torch.nn.functional.avg_pool2d(torch.from_numpy(x), *args).numpy()
        np.testing.assert_allclose(y, t, rtol=2e-6, atol=1e-6)


def test_matches_torch_and_the_reference(torch_oracle, rng):
    for shape, o in [((8, 256, 14, 14), 7), ((8, 256, 15, 15), 7), ((1, 3, 15, 15), (5, 7))]:
        x = rng.standard_normal(shape).astype(np.float32)
        y = adapool.adaptive_avg_pool2d(x, o)
        t = torch_oracle.nn.functional.adaptive_avg_pool2d(torch_oracle.from_numpy(x), o).numpy()
        np.testing.assert_allclose(y, t, rtol=2e-6, atol=1e-6)
        np.testing.assert_allclose(y, adaptive_avg_pool_ref(x, (o, o) if isinstance(o, int) else o), rtol=2e-6, atol=1e-6)


def test_one_thread_and_two_give_the_same_bits(rng):
    x = rng.standard_normal((8, 256, 15, 15)).astype(np.float32)
    x3 = rng.standard_normal((5, 3, 14, 14)).astype(np.float32)
    assert_same_bits_on_1_and_2_threads([lambda: adapool.adaptive_avg_pool2d(x, 7),
                                         lambda: adapool.adaptive_avg_pool2d(x3, 7)])


M32 = np.finfo(np.float32).max


def _cl(x):
    return with_layout(x, "channels_last")


@pytest.mark.parametrize("call", [
    lambda x: adapool.adaptive_avg_pool2d(x, 7),           # rows (c < 8) or tiles (c >= 8)
    lambda x: adapool.adaptive_avg_pool2d(_cl(x), 7),      # channels-last kernel, float32 only
    lambda x: adapool.adaptive_avg_pool2d(x, 2),           # 7x7 windows: float32 flushed into float64
    lambda x: adapool.adaptive_avg_pool2d(_cl(x), 2),
    lambda x: adapool.adaptive_avg_pool2d(x, 1),           # global: four planes at once, or one
    lambda x: adapool.adaptive_avg_pool2d(x[:, :, :, :13], (3, 1)),   # planar rows of 13
    lambda x: adapool.adaptive_avg_pool1d(x.reshape(x.shape[0], x.shape[1], -1), 3),
    lambda x: adapool.avg_pool1d(_cl(x.reshape(x.shape[0], x.shape[1], -1)), 20),   # 1-d channels-last
    lambda x: adapool.avg_pool1d(_cl(x.reshape(x.shape[0], x.shape[1], -1)), 4),
    lambda x: adapool.avg_pool2d(x, 4, 2),
    lambda x: adapool.avg_pool2d(_cl(x), 4, 2),
    lambda x: adapool.adaptive_avg_pool3d(x.reshape(x.shape[0], x.shape[1], 2, 7, 14), (2, 3, 3)),
    lambda x: adapool.avg_pool3d(x.reshape(x.shape[0], x.shape[1], 2, 7, 14), 2),
], ids=["rows/tiles", "cl-small", "planar-flushed", "cl-flushed", "global", "planar-narrow",
        "adaptive1d", "avg1d-cl-long", "avg1d-cl-short", "avg2d", "avg2d-cl", "adaptive3d", "avg3d"])
@pytest.mark.parametrize("c", [3, 16])
def test_sums_that_overflow_float32_give_the_finite_mean(call, c):
    # torch's float32 sums overflow to inf here; adapool's means are the float64 reference's
    x = np.full((2, c, 14, 14), M32, np.float32)
    x[1] = -M32
    y = call(x)
    assert np.all(np.isfinite(y)), "a float32 sum overflowed to inf"
    assert np.all(y[0] == M32) and np.all(y[1] == -M32)
    # inf and NaN inputs still give inf and NaN
    x[0, 0, 0, 0], x[1, 0, 0, 0] = np.inf, np.nan
    y = call(x)
    assert np.isposinf(y[0, 0].flat[0]) and np.isnan(y[1, 0].flat[0])


# ---- max pooling ----------------------------------------------------------------------------

def check_max_bits(x, o, ref_input=None):
    """Values (bits: NaN payloads, -0.0) and indices against the reference, with and without
    indices requested (two specialisations of the kernel)."""
    oh, ow = (o, o) if isinstance(o, int) else o
    ref_y, ref_i = adaptive_max_pool_ref(x if ref_input is None else ref_input, (oh, ow))
    fn = adapool.adaptive_max_pool2d if x.ndim == 4 else adapool.adaptive_max_pool1d
    y, i = fn(x, o, return_indices=True)
    np.testing.assert_array_equal(i, ref_i)
    assert np.array_equal(y, ref_y, equal_nan=True) and np.array_equal(np.signbit(y), np.signbit(ref_y))
    assert np.array_equal(fn(x, o).view(np.uint32), y.view(np.uint32))
    return y, i


@pytest.mark.parametrize("layout", ["contiguous", "strided_rows", "negative"])
@pytest.mark.parametrize("c", [1, 3, 8, 9, 256])
@pytest.mark.parametrize("hw,o", [((14, 14), 7), ((15, 15), 7), ((16, 16), 8), ((15, 15), (3, 7)), ((9, 8), (4, 7)),
                                  ((30, 15), (6, 7)), ((5, 4), (5, 3))])
def test_max_matches_the_reference_bit_for_bit(c, hw, o, layout, rng):
    x = hostile(rng, (2, c) + hw, np.float32)
    check_max_bits(with_layout(x, layout), o, x)


def test_max_matches_torch_bit_for_bit(torch_oracle, rng):
    F = torch_oracle.nn.functional
    for shape, o in [((8, 256, 14, 14), 7), ((8, 256, 15, 15), 7), ((2, 3, 15, 15), (5, 7)), ((1, 5, 9, 8), (4, 7))]:
        x = hostile(rng, shape, np.float32)
        y, i = adapool.adaptive_max_pool2d(x, o, return_indices=True)
        ty, ti = F.adaptive_max_pool2d(torch_oracle.from_numpy(x), o, return_indices=True)
        np.testing.assert_array_equal(i, ti.numpy())
        assert np.array_equal(y.view(np.uint32), ty.numpy().view(np.uint32))
    # max_pool2d's windows through the same kernel: (2, 2) and (3, 2) without padding on W
    x = hostile(rng, (2, 5, 15, 14), np.float32)
    for args in [dict(kernel_size=2), dict(kernel_size=(3, 3), stride=(2, 2), padding=(1, 0)),
                 dict(kernel_size=(2, 3), stride=(1, 2))]:
        y, i = adapool.max_pool2d(x, return_indices=True, **args)
        ty, ti = F.max_pool2d(torch_oracle.from_numpy(x), return_indices=True, **args)
        np.testing.assert_array_equal(i, ti.numpy())
        assert np.array_equal(y.view(np.uint32), ty.numpy().view(np.uint32))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 12), h=st.integers(1, 40), oh=st.integers(1, 10),
       ow=st.integers(1, 8), wmode=st.sampled_from(sorted(W_OF)),
       layout=st.sampled_from(["contiguous", "strided_rows", "negative"]), seed=st.integers(0, 2**32 - 1))
def test_property_max_against_the_reference(n, c, h, oh, ow, wmode, layout, seed):
    x = hostile(np.random.default_rng(seed), (n, c, h, W_OF[wmode](ow)), np.float32)
    check_max_bits(with_layout(x, layout), (oh, ow), x)


def test_max_window_rules():
    # all -inf: the window's first index; NaN: the last NaN; ties and -0.0/+0.0: the first
    x = np.zeros((1, 1, 14, 14), np.float32)
    x[0, 0, 0:2, 0:2] = -np.inf
    x[0, 0, 0:2, 2:4] = [[np.nan, 1], [np.float32("nan"), 2]]
    x.view(np.uint32)[0, 0, 1, 2] = 0x7fc00123          # a second NaN with its own payload
    x[0, 0, 0:2, 4:6] = [[-0.0, 0.0], [0.0, -0.0]]
    x[0, 0, 0:2, 6:8] = [[5, 5], [5, 5]]
    y, i = adapool.adaptive_max_pool2d(x, 7, return_indices=True)
    assert y[0, 0, 0, 0] == -np.inf and i[0, 0, 0, 0] == 0
    assert y.view(np.uint32)[0, 0, 0, 1] == 0x7fc00123 and i[0, 0, 0, 1] == 14 + 2
    assert y[0, 0, 0, 2] == 0 and np.signbit(y[0, 0, 0, 2]) and i[0, 0, 0, 2] == 4
    assert y[0, 0, 0, 3] == 5 and i[0, 0, 0, 3] == 6


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="guard pages through mprotect: Linux only")
@pytest.mark.parametrize("shape,o", [((1, 1, 14, 14), 7), ((2, 3, 15, 15), 7), ((1, 1, 2, 2), 1), ((3, 1, 5, 4), (5, 3))])
def test_max_rows_are_never_read_past_the_array(shape, o, rng):
    x, buf = _guarded(shape)
    x[...] = hostile(rng, shape, np.float32)
    check_max_bits(x, o)
    check_max_bits(x[:, :, ::-1], o, np.ascontiguousarray(x[:, :, ::-1]))
    del x
    buf.close()


def test_max_one_thread_and_two_give_the_same_bits(rng):
    x = hostile(rng, (8, 64, 15, 15), np.float32)
    x3 = hostile(rng, (5, 3, 14, 14), np.float32)
    assert_same_bits_on_1_and_2_threads([lambda: adapool.adaptive_max_pool2d(x, 7, return_indices=True),
                                         lambda: adapool.adaptive_max_pool2d(x3, 7, return_indices=True)])


# ---- global max pooling of float32 planes (adapool_max_plane_f32) ---------------------------
# Planes of 16 elements or more: the maximum by vector max, then the first element equal to
# it from the compare masks (64 a step); planes holding NaN are rescanned by torch's rule.
# Sizes around the kernel's edges: 16 (two accumulators, no tail), 17 (tail of one), 24 (a
# third vector), 49 and the other unrolled sizes, 63/64/65 and 130 (a second group of 64).
GLOBAL_PLANES = [(4, 4), (1, 17), (3, 8), (5, 5), (6, 6), (7, 7), (9, 7), (8, 8), (9, 9), (1, 63), (13, 5),
                 (1, 65), (10, 10), (10, 13), (56, 56)]


def _check_global(x):
    """adaptive_max_pool2d(x, 1) with and without indices, and max_pool2d over the whole plane,
    against the reference: values bit for bit (NaN payloads, -0.0) and indices."""
    ref_y, ref_i = adaptive_max_pool_ref(np.ascontiguousarray(x), (1, 1))
    y, i = adapool.adaptive_max_pool2d(x, 1, return_indices=True)
    np.testing.assert_array_equal(i, ref_i)
    assert np.array_equal(y.view(np.uint32), ref_y.view(np.uint32))
    assert np.array_equal(adapool.adaptive_max_pool2d(x, 1).view(np.uint32), y.view(np.uint32))
    y2, i2 = adapool.max_pool2d(x, x.shape[-2:], return_indices=True)
    np.testing.assert_array_equal(i2, ref_i)
    assert np.array_equal(y2.view(np.uint32), ref_y.view(np.uint32))


@pytest.mark.parametrize("hw", GLOBAL_PLANES)
@pytest.mark.parametrize("c", [1, 5, 64])
def test_global_max_matches_the_reference_bit_for_bit(hw, c, rng):
    _check_global(hostile(rng, (2, c) + hw, np.float32))
    # random reals (one maximum per plane, anywhere) and integer ties (the first wins)
    _check_global(rng.standard_normal((2, c) + hw).astype(np.float32))
    _check_global(rng.integers(-2, 3, (2, c) + hw).astype(np.float32))


@pytest.mark.parametrize("hw", GLOBAL_PLANES)
def test_global_max_window_rules_at_every_position(hw):
    """One plane per position p of the marked element: the maximum there (after a tie of the
    same value later, and a -0.0/+0.0 pair), a NaN there (and a later NaN with its own payload
    in the next plane), a plane all -inf but one finite element at p, all -inf."""
    H, W = hw
    P = H * W
    planes = []
    for p in range(P):
        a = np.zeros(P, np.float32)
        a[p] = 7
        if p + 1 < P:
            a[-1] = 7                   # a later tie: p stays the pick
        planes.append(a)
        b = np.full(P, -1.0, np.float32)
        b[p] = np.nan
        planes.append(b)
        c = np.full(P, -1.0, np.float32)
        c[p] = np.nan
        c.view(np.uint32)[P - 1 - (p % 2)] = 0x7fc00123 + p   # a later NaN (unless at p): it wins
        planes.append(c)
        d = np.full(P, -np.inf, np.float32)
        d[p] = -3.0e38
        planes.append(d)
        e = np.full(P, -1.0, np.float32)
        e[p] = -0.0
        e[(p + 1) % P] = 0.0            # the first zero in row-major order wins, whatever its sign
        planes.append(e)
    planes.append(np.full(P, -np.inf, np.float32))
    x = np.stack(planes).reshape(1, len(planes), H, W)
    _check_global(x)
    y, i = adapool.adaptive_max_pool2d(x, 1, return_indices=True)
    assert i[0, -1, 0, 0] == 0 and y[0, -1, 0, 0] == -np.inf
    assert np.all(i[0, 0:-1:5, 0, 0] == np.arange(P))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 20), h=st.integers(1, 20), w=st.integers(1, 20),
       layout=st.sampled_from(["contiguous", "strided_rows", "negative", "channels_last"]),
       kind=st.sampled_from(["hostile", "ties", "reals"]), seed=st.integers(0, 2**32 - 1))
def test_property_global_max_against_the_reference(n, c, h, w, layout, kind, seed):
    r = np.random.default_rng(seed)
    x = {"hostile": lambda: hostile(r, (n, c, h, w), np.float32),
         "ties": lambda: r.integers(-1, 2, (n, c, h, w)).astype(np.float32),
         "reals": lambda: r.standard_normal((n, c, h, w)).astype(np.float32)}[kind]()
    ref_y, ref_i = adaptive_max_pool_ref(x, (1, 1))
    y, i = adapool.adaptive_max_pool2d(with_layout(x, layout), 1, return_indices=True)
    np.testing.assert_array_equal(i, ref_i)
    assert np.array_equal(y.view(np.uint32), ref_y.view(np.uint32))


def test_global_max_matches_torch_bit_for_bit(torch_oracle, rng):
    F = torch_oracle.nn.functional
    for shape in [(32, 64, 7, 7), (2, 9, 8, 8), (1, 3, 13, 5), (2, 4, 56, 56)]:
        for x in (hostile(rng, shape, np.float32), rng.integers(-2, 3, shape).astype(np.float32)):
            y, i = adapool.adaptive_max_pool2d(x, 1, return_indices=True)
            ty, ti = F.adaptive_max_pool2d(torch_oracle.from_numpy(x), 1, return_indices=True)
            np.testing.assert_array_equal(i, ti.numpy())
            assert np.array_equal(y.view(np.uint32), ty.numpy().view(np.uint32))
    x = hostile(rng, (3, 5, 49), np.float32)      # 1-d and 3-d global windows take the same kernel
    y, i = adapool.adaptive_max_pool1d(x, 1, return_indices=True)
    ty, ti = F.adaptive_max_pool1d(torch_oracle.from_numpy(x), 1, return_indices=True)
    np.testing.assert_array_equal(i, ti.numpy())
    assert np.array_equal(y.view(np.uint32), ty.numpy().view(np.uint32))
    x = hostile(rng, (2, 3, 4, 5, 6), np.float32)
    y, i = adapool.adaptive_max_pool3d(x, 1, return_indices=True)
    ty, ti = F.adaptive_max_pool3d(torch_oracle.from_numpy(x), 1, return_indices=True)
    np.testing.assert_array_equal(i, ti.numpy())
    assert np.array_equal(y.view(np.uint32), ty.numpy().view(np.uint32))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="guard pages through mprotect: Linux only")
@pytest.mark.parametrize("shape", [(1, 1, 4, 4), (1, 3, 7, 7), (2, 1, 1, 17), (1, 1, 9, 9)])
def test_global_max_never_reads_past_the_array(shape, rng):
    x, buf = _guarded(shape)
    x[...] = hostile(rng, shape, np.float32)
    _check_global(x)
    del x
    buf.close()


def test_global_max_one_thread_and_two_give_the_same_bits(rng):
    x = hostile(rng, (8, 256, 7, 7), np.float32)
    x2 = rng.integers(-1, 2, (4, 64, 10, 13)).astype(np.float32)
    assert_same_bits_on_1_and_2_threads([lambda: adapool.adaptive_max_pool2d(x, 1, return_indices=True),
                                         lambda: adapool.adaptive_max_pool2d(x2, 1, return_indices=True)])
