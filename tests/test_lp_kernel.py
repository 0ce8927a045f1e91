"""lp_pool's elementwise kernel (adapool/_elementwise.pxi): the power of the input and the
scaling and root of the pooled result, in parallel, in place of the NumPy composition
(adapool/_lp.py). The composition is the reference here: the kernel must give its bits (values,
signs of zero, NaN where NaN, the result's strides) for every dtype, layout, special exponent
and thread count; it is also checked against torch, NumPy's own power, and for what its entry
point refuses."""
import contextlib

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

import adapool
from adapool import _lp, _threads
from adapool._bfloat16 import BFLOAT16
from adapool._dispatch import kernels
from layouts import LAYOUTS, assert_same_bits_on_1_and_2_threads, with_layout

INF = float("inf")
DTYPES = [np.float16, np.float32, np.float64]
# every kernel mode as the exponent of the power and of the root (1/p): ones (a NumPy float32
# inf: 1/p = 0), copy, square, cube, sqrt, 1/sqrt, reciprocal, reciprocal square, and general
# powers, including ones whose float16 exponent rounds (2.5: 1/p = 0.4) or lands on a special
# case only after rounding
NORMS = [1, 2, 3, 4, 0.5, -0.5, -1, -2, 1.5, 2.5, -1.5, 0.3, 1 / 3, 1.0000001, np.float32("inf"), 2.0]
MODES = len(_lp._SPECIAL_POWERS) + 1


@contextlib.contextmanager
def composition_only():
    """lp_pool through the NumPy composition alone (the kernel's reference)."""
    original = _lp._Steps.in_kernel
    _lp._Steps.in_kernel = lambda self, a: False
    try:
        yield
    finally:
        _lp._Steps.in_kernel = original


@contextlib.contextmanager
def threads(n):
    """n threads for every call, however small (the kernels split a call of 1024 elements or
    more): small arrays exercise the parallel split too."""
    before, minimum = adapool.get_num_threads(), _threads.PARALLEL_MIN_ELEMENTS
    adapool.set_num_threads(n)
    _threads.PARALLEL_MIN_ELEMENTS = 0
    try:
        yield
    finally:
        adapool.set_num_threads(before)
        _threads.PARALLEL_MIN_ELEMENTS = minimum


@contextlib.contextmanager
def kernel_calls():
    """The modes the elementwise kernel is called with, in order."""
    calls = []
    real = _lp._kernels

    class Spy:
        def __getattr__(self, name):
            return getattr(real, name)

        def lp_elementwise(self, src, dst, mode, *rest):
            calls.append(mode)
            return real.lp_elementwise(src, dst, mode, *rest)

    _lp._kernels = Spy()
    try:
        yield calls
    finally:
        _lp._kernels = real


def _assert_same(actual, expected):
    """The composition's bits: values, NaN where NaN, the sign of every zero (and of every NaN:
    NaN payloads are not compared), dtype and strides (of the axes longer than 1: the stride
    of the others is never used, and the pools' results may differ there as their inputs do)."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    long_axes = [a for a, n in enumerate(actual.shape) if n > 1]
    assert [actual.strides[a] for a in long_axes] == [expected.strides[a] for a in long_axes]
    np.testing.assert_array_equal(actual, expected)
    np.testing.assert_array_equal(np.signbit(actual), np.signbit(expected))


def _values(rng, shape, kind):
    if kind == "positive":
        return rng.uniform(0.25, 3.0, shape)
    if kind == "signed":
        return rng.standard_normal(shape) * 2
    # zeros of both signs, NaN, ±inf, subnormals (of every dtype) and values whose powers
    # overflow float16 and float32
    pool = np.array([0.0, -0.0, 1.0, -1.0, 2.0, -3.0, np.nan, np.inf, -np.inf, 1e-7, 6e-8, 1e-40,
                     3e-320, 300.0, 7e4, 1e13, -1e13, 0.5])
    return rng.choice(pool, shape)


@st.composite
def kernel_calls_args(draw):
    nd = draw(st.sampled_from([1, 2, 3]))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    spatial = tuple(draw(st.integers(k, k + (4 if nd == 3 else 9))) for k in kernel)
    batched = draw(st.booleans())
    # C up to 40: channels-last rows long enough for a piece of the kernel's staging, and
    # enough elements (> 1024) for two threads in some draws
    shape = ((draw(st.integers(1, 3)),) if batched else ()) + (draw(st.integers(1, 40)),) + spatial
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = _values(rng, shape, draw(st.sampled_from(["positive", "signed", "specials"])))
    kw = dict(stride=stride if nd > 1 else stride[0], ceil_mode=draw(st.booleans()))
    return nd, x, batched, (kernel if nd > 1 else kernel[0]), kw


@given(call=kernel_calls_args(), p=st.sampled_from(NORMS), dtype=st.sampled_from(DTYPES),
       layout=st.sampled_from(LAYOUTS), nthreads=st.sampled_from([1, 2]))
@settings(max_examples=150, deadline=None)
# a 3x3 window whose float32 sum (row-vector kernel, reversed rows) and float64 sum (global path
# of the positive-stride copy) round to neighbouring float32 means
@example(call=(2, np.array([[[2.00164464, 0.99191346, 0.36267719], [0.295451, 2.48649316, 2.76007784],
                             [1.91824838, 2.25611554, 1.74496873]]]), False, (3, 3),
               {"stride": (1, 1), "ceil_mode": False}),
         p=1, dtype=np.float32, layout="negative", nthreads=1)
def test_kernel_gives_the_composition_bits(call, p, dtype, layout, nthreads):
    nd, x, batched, kernel, kw = call
    fn = getattr(adapool, f"lp_pool{nd}d")
    x = with_layout(x.astype(dtype), layout, batched=batched)
    with np.errstate(all="ignore"), threads(nthreads):
        with kernel_calls() as calls:
            ours = fn(x, p, kernel, **kw)
        with composition_only():
            # p = 1 on float32/float64: both pool x itself (no power to stage), and the pool's
            # float32 bits may depend on the layout (windows of at most 16 elements are summed
            # in float32 lanes by the row-vector and channels-last kernels, in float64 by the
            # others), so the reference reads x as the kernel does
            reads_x = p == 1 and dtype != np.float16
            expected = fn(x if reads_x else _positive_strides(x), p, kernel, **kw)
    assert calls, "the kernel was not used"
    _assert_same(ours, expected)


def _positive_strides(x):
    """x, or for negative strides its copy in x's axis order (what NumPy's ops allocate).
    np.power's general power gives other bits through a negative stride (NumPy falls back from
    its SIMD loop there: np.power(x[::-1], 4.0) != np.power(x, 4.0)[::-1] on ~20% of float32
    values on an AVX-512 CPU); the kernel stages every layout through one contiguous buffer,
    so its bits are the composition's on positive strides whatever the layout."""
    if all(s >= 0 for s in x.strides):
        return x
    copy = np.empty_like(x)
    copy[...] = x
    return copy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p, modes", [
    (1, ["copy"]),                        # float32/64: the pool reads x itself
    (2, ["square", "sqrt"]),
    (3, ["cube", "general"]),
    (0.5, ["sqrt", "square"]),
    (-0.5, ["rsqrt", "reciprocal square"]),
    (-1, ["reciprocal", "reciprocal"]),
    (-2, ["reciprocal square", "rsqrt"]),
    (1.5, ["general", "general"]),
    (np.float32("inf"), ["general", "ones"]),
])
def test_fast_path_is_taken_with_torch_special_cases(dtype, p, modes):
    names = ["ones", "copy", "square", "cube", "sqrt", "rsqrt", "reciprocal", "reciprocal square", "general"]
    x = np.random.default_rng(0).uniform(0.5, 2, (2, 3, 8, 8)).astype(dtype)
    with kernel_calls() as calls:
        adapool.lp_pool2d(x, p, 2)
    if dtype == np.float16 and p == 1:
        modes = ["copy", "copy"]          # the composition's float32 round trip: a copy
    elif p == 1:
        modes = ["copy"]                  # the root of 1/p = 1 only scales
    assert [names[m] for m in calls] == modes


def test_fast_path_is_not_taken_for_bfloat16_and_infinite_p():
    x = np.random.default_rng(1).uniform(0.5, 2, (2, 3, 8, 8))
    with kernel_calls() as calls:
        adapool.lp_pool2d(x.astype(BFLOAT16), 2, 2)   # bfloat16 keeps the composition
        adapool.lp_pool2d(x, INF, 2)                  # the max paths have no powers
        adapool.lp_pool2d(x, -INF, 2)
    assert calls == []


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("e", [1.5, 1 / 3, 2 / 3, 0.4, 2.5, -1.5, 4.0, 7.0, -3.0, 0.1, 1e-8, 60.0, INF, -INF,
                               np.nan, 0.5, -0.5])
def test_general_power_and_sqrt_are_numpys_bit_for_bit(dtype, e):
    # the kernel runs np.power's own inner loop for general exponents and np.sqrt's for 0.5
    # and -0.5 (SIMD where NumPy dispatched to it): their bits are NumPy's on every CPU, for
    # contiguous and strided sources
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.uniform(0, 4, 5000), -rng.uniform(0, 4, 500), rng.standard_normal(500) * 1e-3,
                        [0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e-45, 1e-310, 3e38, 1e300]]).astype(dtype)
    for src in (x, x[::-3], with_layout(x[:4800].reshape(2, 40, 60), "strided_all", batched=True)):
        out = np.empty(src.size, dtype)
        with np.errstate(all="ignore"), threads(2):
            kernels.lp_elementwise(src, out, _lp._power_mode(e), e, False, 0.0, 2)
            expected = np.ascontiguousarray(src).reshape(-1)
            expected = (np.sqrt(expected) if e == 0.5 else 1 / np.sqrt(expected) if e == -0.5 else
                        np.power(expected, dtype(e)))
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(np.signbit(out), np.signbit(expected))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("e", _lp._SPECIAL_POWERS)
def test_special_powers_are_the_compositions(dtype, e):
    # each special mode against _Steps.pow (float16: computed in float32, rounded once)
    x = np.array([0.0, -0.0, 0.5, 1.0, -1.0, 2.0, -3.0, 1e-7, 6e-8, 300.0, 7e4, 1e20, np.nan, np.inf, -np.inf])
    x = x.astype(dtype)
    steps = _lp._Steps(dtype)
    out = np.empty(x.size, dtype)
    with np.errstate(all="ignore"):
        kernels.lp_elementwise(x, out, _lp._power_mode(e), e, False, 0.0, 1)
        expected = steps.down(steps.pow(steps.up(x), e))
    _assert_same(out, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_finish_scales_rounds_and_makes_negative_zero_positive(dtype):
    # (s * area + 0.0) ** e: -0.0 sums become +0.0 (torch's sign(s) * relu(|s|) gives +0.0), so
    # e = -1 gives +inf, not -inf; float16 rounds the scaled sum to half before the root
    s = np.array([-0.0, 0.0, 1.0, 2.5, -2.0, 1e-5, 3000.0, np.nan, np.inf], dtype)
    steps = _lp._Steps(dtype)
    for e, area in ((-1, 4), (0.5, 9), (1 / 3, 27), (1, 2), (2.0, 3)):
        out = s.copy()
        with np.errstate(all="ignore"):
            kernels.lp_elementwise(out, out, _lp._power_mode(steps.exponent(e)), steps.exponent(e), True,
                                   float(area), 1)
            expected = _lp._finish(s.copy(), _Composition(dtype), area, e)
        _assert_same(out, expected)
    out = s.copy()
    kernels.lp_elementwise(out, out, _lp._power_mode(-1), -1.0, True, 4.0, 1)
    assert out[0] == np.inf and out[1] == np.inf


class _Composition(_lp._Steps):
    def in_kernel(self, a):
        return False


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided_cl", "negative", "negative_w"])
@pytest.mark.parametrize("p", [1, -1, 2, 3, 0.5, -2, 1.5])
def test_float64_matches_torch_on_every_layout(torch_oracle, layout, p):
    # NaN, ±inf, zeros and negative inputs land where torch puts them, on one thread and two
    # (the sign of NaN is not compared: inf - inf is -NaN on x86, in torch's sums too or not).
    # Bit for bit where both of torch's powers are exact IEEE operations (p = ±1: copy and
    # reciprocal); elsewhere to a few ulps: torch's float64 sqrt (p = 2's root: 1.3% of these
    # values) and its general pow are not correctly rounded, adapool's sqrt is and its
    # general power is NumPy's
    torch = torch_oracle
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 40, 24, 30))
    x[rng.random(x.shape) < 0.02] = np.nan
    x[rng.random(x.shape) < 0.02] = np.inf
    x[rng.random(x.shape) < 0.02] = -np.inf
    x[rng.random(x.shape) < 0.05] = 0.0
    theirs = torch.nn.functional.lp_pool2d(torch.from_numpy(x), p, (1, 2)).numpy()
    xl = with_layout(x, layout)
    for n in (1, 2):
        with np.errstate(all="ignore"), threads(n):
            ours = adapool.lp_pool2d(xl, p, (1, 2))
        nan = np.isnan(theirs)
        np.testing.assert_array_equal(np.isnan(ours), nan)
        np.testing.assert_array_equal(np.signbit(ours)[~nan], np.signbit(theirs)[~nan])   # -0.0 and -inf
        if p in (1, -1):
            np.testing.assert_array_equal(ours, theirs)
        else:
            np.testing.assert_allclose(ours, theirs, rtol=1e-15, atol=0)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("p", [2, 3, 2.5, -1, 0.3])
def test_float16_matches_torch_bit_for_bit_in_both_layouts(torch_oracle, layout, p):
    # torch's half lp_pool rounds after every step, its exponents rounded to half: so does the
    # kernel (windows of two: the pool's sums agree with torch's)
    torch = torch_oracle
    x = np.random.default_rng(4).uniform(0.5, 2.0, (2, 64, 16, 16)).astype(np.float16)
    t = torch.from_numpy(x)
    if layout == "channels_last":
        t = t.contiguous(memory_format=torch.channels_last)
    theirs = torch.nn.functional.lp_pool2d(t, p, (1, 2)).numpy()
    with threads(2):
        ours = adapool.lp_pool2d(with_layout(x, layout), p, (1, 2))
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided_all"])
def test_results_do_not_depend_on_thread_count(layout):
    rng = np.random.default_rng(5)
    calls = []
    for dtype in DTYPES:
        x = with_layout(rng.uniform(0.2, 3, (4, 48, 30, 34)).astype(dtype), layout)
        x3 = with_layout(rng.uniform(0.2, 3, (2, 16, 12, 14, 10)).astype(dtype), layout)
        for p in (2, 3, 1.5, -0.5):
            calls.append(lambda x=x, p=p: adapool.lp_pool2d(x, p, 3, 2, True))
            calls.append(lambda x3=x3, p=p: adapool.lp_pool3d(x3, p, 2))
    assert_same_bits_on_1_and_2_threads(calls)


def test_large_channels_last_call_matches_the_composition():
    # the bench's shape: one run of 256 channels per pixel, two threads
    x = np.abs(np.random.default_rng(6).standard_normal((8, 256, 14, 14), dtype=np.float32))
    x = with_layout(x, "channels_last")
    for p, k, s in ((2, 2, None), (3, 3, 2), (1.5, 2, None)):
        with threads(2):
            ours = adapool.lp_pool2d(x, p, k, s)
        with composition_only():
            expected = adapool.lp_pool2d(x, p, k, s)
        _assert_same(ours, expected)
        assert not ours.flags.c_contiguous   # channels-last, as torch's


# ---- the kernel's entry point refuses what its loops cannot take --------------------------------

def _pair(n=64, dtype=np.float32):
    return np.ones(n, dtype), np.empty(n, dtype)


@pytest.mark.parametrize("make, error, pattern", [
    (lambda: (np.ones(8, np.float32), np.empty(8, np.float64)), TypeError, "one dtype"),
    (lambda: (np.ones(8, np.int32), np.empty(8, np.int32)), TypeError, "one dtype"),
    (lambda: (np.ones(8, ">f4"), np.empty(8, ">f4")), ValueError, "native byte order"),
    (lambda: (np.zeros(33, np.uint8)[1:].view(np.float32), np.empty(8, np.float32)), ValueError, "aligned"),
    (lambda: (np.ones(8, np.float32), np.frombuffer(bytearray(37), np.float32, 8, 1)), ValueError, "aligned"),
    (lambda: (np.ones(()), np.empty(1)), ValueError, "1 to 5 axes"),
    (lambda: (np.ones((1,) * 6), np.empty(1)), ValueError, "1 to 5 axes"),
    (lambda: (np.ones(8), np.empty((2, 4))), ValueError, "1-d and contiguous"),
    (lambda: (np.ones(8), np.empty(16)[::2]), ValueError, "1-d and contiguous"),
    (lambda: (np.ones(8), np.empty(9)), ValueError, "source's size"),
    (lambda: (np.ones(8), np.empty(7)), ValueError, "source's size"),
])
def test_kernel_entry_refuses_bad_arrays(make, error, pattern):
    src, dst = make()
    with pytest.raises(error, match=pattern):
        kernels.lp_elementwise(src, dst, 2, 2.0, False, 0.0, 1)


def test_kernel_entry_refuses_read_only_output_unknown_modes_and_overlap():
    src, dst = _pair()
    dst.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        kernels.lp_elementwise(src, dst, 2, 2.0, False, 0.0, 1)
    src, dst = _pair()
    for mode in (-1, MODES):
        with pytest.raises(ValueError, match="mode"):
            kernels.lp_elementwise(src, dst, mode, 2.0, False, 0.0, 1)
    buf = np.arange(100, dtype=np.float64)
    for s, d in ((buf[:50], buf[10:60]),          # shifted: later reads would see earlier writes
                 (buf[10:60], buf[:50]),
                 (buf[::2], buf[:50]),             # same start, another stride
                 (buf[::-2], buf[50:]),
                 (buf[:50].reshape(5, 10).T, buf[:50])):   # in place, but not element for element
        with pytest.raises(ValueError, match="overlaps"):
            kernels.lp_elementwise(s, d, 2, 2.0, False, 0.0, 1)
    assert np.array_equal(buf, np.arange(100.0))   # nothing written by a refused call


def test_kernel_entry_takes_exact_in_place_disjoint_views_and_empty_arrays():
    buf = np.arange(100, dtype=np.float64)
    kernels.lp_elementwise(buf[:50], buf[50:], 2, 2.0, False, 0.0, 1)   # adjacent, disjoint
    assert np.array_equal(buf[50:], np.arange(50.0) ** 2)
    view = buf[:50].reshape(5, 10)
    kernels.lp_elementwise(view, buf[:50], 1, 1.0, True, 3.0, 2)        # in place: x * 3 + 0
    assert np.array_equal(buf[:50], np.arange(50.0) * 3)
    kernels.lp_elementwise(np.ones((0, 3)), np.empty(0), 2, 2.0, False, 0.0, 2)
