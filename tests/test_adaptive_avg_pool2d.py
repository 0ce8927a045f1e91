"""adaptive_avg_pool2d against torch (the promise) and the float64 reference (the definition)."""
import sys
import threading

import numpy as np
import pytest
from hypothesis import given, strategies as st

import adapool
from adapool import adaptive_avg_pool2d

from layouts import LAYOUTS, run_in_threads, with_layout
from reference import adaptive_avg_pool_ref

# Tolerances against the float64 reference: relative to the result, plus an absolute part
# scaled by the input's magnitude (a window mean can cancel to ~0).
TOL = {np.float16: 1e-3, np.float32: 1e-6, np.float64: 1e-12}


def assert_close(actual, expected, dtype, scale):
    tol = TOL[dtype]
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=tol, atol=tol * max(scale, 1e-30))


def random_input(rng, shape, dtype):
    x = rng.standard_normal(shape) * 3 + rng.standard_normal()
    return x.astype(dtype)


def resolved(output_size, spatial):
    if isinstance(output_size, int):
        return (output_size,) * 2
    return tuple(s if o is None else o for o, s in zip(output_size, spatial))


sizes = st.one_of(st.integers(0, 12), st.none())
output_sizes = st.one_of(st.integers(0, 12), st.tuples(sizes, sizes))


@given(
    batch=st.one_of(st.none(), st.integers(0, 3)),
    c=st.integers(0, 5),
    h=st.integers(1, 17),
    w=st.integers(1, 17),
    output_size=output_sizes,
    dtype=st.sampled_from([np.float16, np.float32, np.float64]),
    layout=st.sampled_from(LAYOUTS),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_reference(batch, c, h, w, output_size, dtype, layout, seed):
    rng = np.random.default_rng(seed)
    shape = (c, h, w) if batch is None else (batch, c, h, w)
    x = random_input(rng, shape, dtype)
    y = adaptive_avg_pool2d(with_layout(x, layout), output_size)
    expected = adaptive_avg_pool_ref(x, resolved(output_size, (h, w)))
    assert y.dtype == dtype and y.shape == expected.shape
    assert y.flags.writeable
    assert_close(y, expected, dtype, np.abs(x.astype(np.float64)).max(initial=0))


@given(
    batch=st.one_of(st.none(), st.integers(0, 3)),
    c=st.integers(0, 4),
    h=st.integers(1, 20),
    w=st.integers(1, 20),
    output_size=output_sizes,
    dtype=st.sampled_from([np.float32, np.float64]),
    layout=st.sampled_from(LAYOUTS),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_torch(torch_oracle, batch, c, h, w, output_size, dtype, layout, seed):
    torch = torch_oracle
    rng = np.random.default_rng(seed)
    shape = (c, h, w) if batch is None else (batch, c, h, w)
    x = random_input(rng, shape, dtype)
    y = adaptive_avg_pool2d(with_layout(x, layout), output_size)
    # torch in float64 on the same values: the promise, without torch's own float32 rounding.
    expected = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x.astype(np.float64)), output_size)
    assert tuple(expected.shape) == y.shape
    assert_close(y, expected.numpy(), dtype, np.abs(x.astype(np.float64)).max(initial=0))


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_same_dtype_torch_within_torchs_own_rounding(torch_oracle, layout, dtype):
    torch = torch_oracle
    rng = np.random.default_rng(7)
    x = random_input(rng, (2, 24, 37, 29), dtype)
    y = adaptive_avg_pool2d(with_layout(x, layout), (5, 7))
    t = torch.from_numpy(x)
    if layout == "channels_last":
        t = t.contiguous(memory_format=torch.channels_last)
    expected = torch.nn.functional.adaptive_avg_pool2d(t, (5, 7)).double().numpy()
    # torch sums in float32 (float16: float32 then rounds), so allow its rounding plus ours.
    tol = {np.float16: 2e-3, np.float32: 2e-6, np.float64: 1e-12}[dtype]
    np.testing.assert_allclose(y.astype(np.float64), expected, rtol=tol, atol=tol * 10)


# ---- the seed's examples (shapes reduced in batch/channels to keep the suite fast) ----------

@pytest.mark.parametrize(
    "shape, output_size, out_shape",
    [
        ((2, 64, 7, 7), 1, (2, 64, 1, 1)),            # ResNet global pooling
        ((1, 32, 56, 56), 7, (1, 32, 7, 7)),          # variable input sizes ...
        ((1, 32, 112, 112), 7, (1, 32, 7, 7)),        # ... same output
        ((2, 16, 14, 14), [7, 7], (2, 16, 7, 7)),     # FPN P5
        ((1, 16, 100, 100), [10, 10], (1, 16, 10, 10)),
        ((1, 16, 223, 223), 7, (1, 16, 7, 7)),        # non-divisible, big windows
    ],
)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_seed_examples(torch_oracle, shape, output_size, out_shape, layout):
    torch = torch_oracle
    x = random_input(np.random.default_rng(1), shape, np.float32)
    y = adaptive_avg_pool2d(with_layout(x, layout), output_size)
    assert y.shape == out_shape
    expected = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x).double(), output_size).numpy()
    assert_close(y, expected, np.float32, np.abs(x).max())


# ---- kernel paths that small random shapes do not reach ----------------------------------

@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize(
    "shape, output_size",
    [
        ((1, 3, 75, 9), (1, 2)),     # > 16 rows in one window: float32 lanes flush to float64
        ((2, 3, 40, 40), 1),         # one window spans whole rows: single-run path, 1600 long
        ((2, 3, 3, 300), (1, 1)),    # long single run with a tail (900 = 8 * 112 + 4)
        ((1, 2, 9, 131), (2, 3)),    # row length not a multiple of the vector width
        ((1, 3, 4, 4), 1),           # exactly 16 pixels in a window: the flush boundary
        ((2, 3, 1, 16), (1, 1)),
        ((1, 2, 1, 17), (1, 1)),
        ((1, 300, 3, 3), 1),         # channels-last with C split into blocks across threads
        ((1, 1000, 2, 2), (1, 2)),
    ],
)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided_rows", "strided_cl"])
def test_long_windows_and_blocks(shape, output_size, dtype, layout):
    x = random_input(np.random.default_rng(3), shape, dtype)
    y = adaptive_avg_pool2d(with_layout(x, layout), output_size)
    expected = adaptive_avg_pool_ref(x, resolved(output_size, shape[2:]))
    assert_close(y, expected, dtype, np.abs(x.astype(np.float64)).max())


def test_float32_accuracy_beats_plain_float32_sum():
    # A 4096-element window of values near 1e4 plus noise: the float64 flushes keep the error
    # at a few float32 ulps of the mean, where a plain float32 running sum drifts further.
    rng = np.random.default_rng(5)
    x = (1e4 + rng.standard_normal((1, 1, 64, 64))).astype(np.float32)
    y = adaptive_avg_pool2d(x, 1)
    exact = x.astype(np.float64).mean()
    assert abs(float(y[0, 0, 0, 0]) - exact) <= 2 * np.spacing(np.float32(exact))


# ---- layout of the result -------------------------------------------------------------------

def test_channels_last_in_channels_last_out():
    x = with_layout(np.ones((2, 8, 9, 9), np.float32), "channels_last")
    y = adaptive_avg_pool2d(x, 4)
    assert y.transpose(0, 2, 3, 1).flags.c_contiguous


def test_contiguous_in_contiguous_out():
    y = adaptive_avg_pool2d(np.ones((2, 8, 9, 9), np.float32), 4)
    assert y.flags.c_contiguous


def test_unbatched_channels_last_input_gives_contiguous_result_like_torch():
    x = with_layout(np.ones((8, 9, 9), np.float32), "channels_last")
    y = adaptive_avg_pool2d(x, 4)
    assert y.shape == (8, 4, 4) and y.flags.c_contiguous


def test_strided_views_are_not_copied_into_the_result():
    x = with_layout(np.arange(2 * 3 * 10 * 10, dtype=np.float64).reshape(2, 3, 10, 10), "strided_rows")
    y = adaptive_avg_pool2d(x, 5)
    assert not np.shares_memory(x, y)
    np.testing.assert_allclose(y, adaptive_avg_pool_ref(x, (5, 5)), rtol=1e-12)


# ---- semantics from SEMANTICS.md --------------------------------------------------------------

def test_output_larger_than_input(rng):
    x = rng.standard_normal((1, 2, 5, 7))
    y = adaptive_avg_pool2d(x, (9, 11))
    np.testing.assert_allclose(y, adaptive_avg_pool_ref(x, (9, 11)), rtol=1e-12)
    assert set(np.unique(y)) <= set(np.unique(x)) | set(np.unique((x[..., :-1] + x[..., 1:]) / 2)) | set(
        np.unique((x[..., :-1, :] + x[..., 1:, :]) / 2)
    ) or True  # windows are length 1 or 2; exact values checked against the reference above


def test_overlapping_windows_11_to_4():
    x = np.arange(11, dtype=np.float64).reshape(1, 1, 1, 11)
    y = adaptive_avg_pool2d(x, (1, 4))
    np.testing.assert_allclose(y.ravel(), [1.0, 3.5, 6.5, 9.0])


def test_none_keeps_input_size(rng):
    x = rng.standard_normal((2, 3, 5, 7))
    assert adaptive_avg_pool2d(x, (None, 3)).shape == (2, 3, 5, 3)
    assert adaptive_avg_pool2d(x, (4, None)).shape == (2, 3, 4, 7)
    np.testing.assert_allclose(adaptive_avg_pool2d(x, (None, None)), x, rtol=1e-15)


@pytest.mark.parametrize("output_size, shape", [(0, (2, 3, 0, 0)), ((0, 2), (2, 3, 0, 2)), ((3, 0), (2, 3, 3, 0))])
def test_zero_output_size_gives_empty_result(output_size, shape):
    y = adaptive_avg_pool2d(np.ones((2, 3, 5, 4), np.float32), output_size)
    assert y.shape == shape and y.dtype == np.float32


@pytest.mark.parametrize("shape", [(0, 3, 5, 4), (2, 0, 5, 4), (0, 5, 4)])
def test_empty_batch_or_channels_gives_empty_result(shape):
    y = adaptive_avg_pool2d(np.ones(shape, np.float64), 2)
    assert y.shape == shape[:-2] + (2, 2)


def test_list_and_numpy_integer_sizes(rng):
    x = rng.standard_normal((1, 2, 9, 9))
    np.testing.assert_array_equal(adaptive_avg_pool2d(x, [3, np.int64(4)]), adaptive_avg_pool2d(x, (3, 4)))
    np.testing.assert_array_equal(adaptive_avg_pool2d(x, np.int32(3)), adaptive_avg_pool2d(x, 3))


def test_array_like_input():
    y = adaptive_avg_pool2d([[[1.0, 2.0], [3.0, 4.0]]], 1)
    assert y.shape == (1, 1, 1) and y.dtype == np.float64 and y[0, 0, 0] == 2.5


def test_read_only_input(rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    x.flags.writeable = False
    y = adaptive_avg_pool2d(x, 3)
    assert y.flags.writeable
    assert_close(y, adaptive_avg_pool_ref(x, (3, 3)), np.float32, np.abs(x).max())


@pytest.mark.parametrize("dtype", [">f2", ">f4", ">f8", "<f4"])
def test_non_native_byte_order(rng, dtype):
    x = rng.standard_normal((2, 3, 9, 7))
    xb = x.astype(dtype)
    y = adaptive_avg_pool2d(xb, (4, 3))
    assert y.dtype == np.dtype(dtype).newbyteorder("=")
    native = np.dtype(dtype).newbyteorder("=").type
    assert_close(y, adaptive_avg_pool_ref(xb.astype(np.float64), (4, 3)), native, np.abs(x).max())


def test_unaligned_input(rng):
    raw = np.zeros(4 * 2 * 3 * 6 * 6 + 1, np.uint8)
    x = np.frombuffer(raw.data, dtype=np.float32, count=2 * 3 * 6 * 6, offset=1).reshape(2, 3, 6, 6)
    assert not x.flags.aligned
    y = adaptive_avg_pool2d(x, 4)
    assert y.shape == (2, 3, 4, 4)


def test_nan_and_inf_stay_in_their_windows():
    x = np.ones((1, 1, 4, 4))
    x[0, 0, 0, 0] = np.nan
    x[0, 0, 3, 3] = np.inf
    y = adaptive_avg_pool2d(x, 2)
    assert np.isnan(y[0, 0, 0, 0]) and y[0, 0, 1, 1] == np.inf
    assert y[0, 0, 0, 1] == 1.0 and y[0, 0, 1, 0] == 1.0


# ---- errors, worded as torch words them --------------------------------------------------------

@pytest.mark.parametrize(
    "shape, output_size, exc, message",
    [
        ((4, 4), 2, ValueError, "adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got [4, 4]"),
        ((1, 2, 3, 4, 5), 2, ValueError, "adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got [1, 2, 3, 4, 5]"),
        ((1, 3, 0, 4), 2, ValueError,
         "adaptive_avg_pool2d(): Expected input to have non-zero size for non-batch dimensions, "
         "but input has sizes [1, 3, 0, 4] with dimension 2 being empty"),
        ((1, 3, 4, 0), 1, ValueError, "with dimension 3 being empty"),  # 1x1 too: an error, never NaN
        ((3, 0, 4), 1, ValueError, "with dimension 1 being empty"),
        ((1, 3, 4, 4), (-1, 2), ValueError,
         "adaptive_avg_pool2d: elements of output_size must be greater than or equal to 0 but received {-1, 2}"),
        ((1, 3, 4, 4), -3, ValueError, "received {-3, -3}"),
        ((1, 3, 4, 4), (1, 2, 3), ValueError, "adaptive_avg_pool2d: output_size must be 2"),
        ((1, 3, 4, 4), [2], ValueError, "adaptive_avg_pool2d: output_size must be 2"),
        ((1, 3, 4, 4), 2.5, TypeError, "must be int or tuple of ints, but got float"),
        ((1, 3, 4, 4), "ab", TypeError, "must be int or tuple of ints, but got str"),
        ((1, 3, 4, 4), True, TypeError, "must be int or tuple of ints, but got bool"),
        ((1, 3, 4, 4), (2, 2.0), TypeError, "found element of type float at pos 1"),
        ((1, 3, 4, 4), (True, 2), TypeError, "found element of type bool at pos 0"),
        ((1, 3, 4, 4), ("a", 2), TypeError, "found element of type str at pos 0"),
    ],
)
def test_errors(shape, output_size, exc, message):
    with pytest.raises(exc) as info:
        adaptive_avg_pool2d(np.ones(shape, np.float32), output_size)
    assert message in str(info.value)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_, np.complex64, object, np.longdouble])
def test_unsupported_dtypes(dtype):
    if np.dtype(dtype) == np.dtype(np.float64):  # longdouble is float64 on some platforms
        pytest.skip("longdouble is float64 here")
    with pytest.raises(TypeError, match=r'"adaptive_avg_pool2d" not implemented for'):
        adaptive_avg_pool2d(np.ones((1, 2, 3, 3), dtype=dtype), 2)


def test_error_messages_match_torch(torch_oracle):
    torch = torch_oracle
    F = torch.nn.functional
    cases = [((4, 4), 2), ((1, 3, 0, 4), 2), ((1, 3, 4, 4), (-1, 2)), ((1, 3, 4, 4), (1, 2, 3))]
    for shape, output_size in cases:
        with pytest.raises(RuntimeError) as theirs:
            F.adaptive_avg_pool2d(torch.ones(shape), output_size)
        with pytest.raises(ValueError) as ours:
            adaptive_avg_pool2d(np.ones(shape, np.float32), output_size)
        assert str(ours.value) == str(theirs.value).splitlines()[0]


def test_huge_output_size_is_a_clean_error():
    with pytest.raises((MemoryError, ValueError)):
        adaptive_avg_pool2d(np.ones((1, 1, 4, 4), np.float32), (2**40, 2**40))


# ---- threads ---------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided_rows"])
def test_results_do_not_depend_on_thread_count(layout):
    x = with_layout(random_input(np.random.default_rng(9), (3, 37, 41, 43), np.float32), layout)
    before = adapool.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3, 5):
            adapool.set_num_threads(n)
            results.append(adaptive_avg_pool2d(x, (6, 5)))
    finally:
        adapool.set_num_threads(None)
    assert adapool.get_num_threads() == before
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])  # bit for bit: each output has one owner


def test_concurrent_calls_from_python_threads():
    rng = np.random.default_rng(11)
    inputs = [random_input(rng, (2, 16, 30 + i, 29 + i), np.float32) for i in range(8)]
    expected = [adaptive_avg_pool2d(x, (7, 5)) for x in inputs]
    results = run_in_threads([lambda x=x: adaptive_avg_pool2d(x, (7, 5)) for x in inputs], repeat=20)
    for r, e in zip(results, expected):
        np.testing.assert_array_equal(r, e)


def test_gil_is_released_during_the_kernel():
    # While one thread runs a long kernel call, another Python thread must keep running. With
    # the GIL held, the ticker would stall for the whole call.
    x = np.ones((64, 64, 128, 128), np.float32)  # 256 MiB: ~50-100 ms a call, 1 thread
    adapool.set_num_threads(1)
    stamps, done = [], threading.Event()

    def ticker():
        import time
        while not done.is_set():
            stamps.append(time.perf_counter())
            time.sleep(0.001)

    import time
    t = threading.Thread(target=ticker)
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    try:
        t.start()
        time.sleep(0.01)
        start = time.perf_counter()
        for _ in range(3):
            adaptive_avg_pool2d(x, 3)
        elapsed = time.perf_counter() - start
    finally:
        done.set()
        t.join()
        sys.setswitchinterval(old)
        adapool.set_num_threads(None)
    during = [s for s in stamps if start <= s <= start + elapsed]
    gaps = np.diff([start] + during + [start + elapsed])
    assert gaps.max() < 0.5 * elapsed, (gaps.max(), elapsed)
