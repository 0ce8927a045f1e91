"""adapool.dask: every forward op on dask arrays equals the in-memory NumPy result (values to
the dtype's rounding, indices exactly) for every chunking, including chunks smaller than a
window and windows over many chunks; same checks and words as the NumPy functions."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adapool
from test_strided import strided_calls

ADAPTIVE = [(f"adaptive_{kind}_pool{nd}d", nd) for kind in ("avg", "max") for nd in (1, 2, 3)]


@pytest.fixture(scope="module")
def ad(dask_array):
    import adapool.dask
    return adapool.dask


def close(got, want, dtype):
    """The dask path sums each window in float64 and rounds once; the in-memory float32 kernel
    sums in float32 lanes flushed to float64: equal to a few units of the dtype's rounding."""
    eps = np.finfo(dtype).eps
    scale = max(1.0, float(np.nanmax(np.abs(want.astype(np.float64)))) if want.size else 1.0)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=8 * eps, atol=8 * eps * scale)


def run(ad, dask_array, op, x, chunks, *args, **kwargs):
    """(dask result computed, in-memory result) of one op."""
    import dask
    got = getattr(ad, op)(dask_array.from_array(x, chunks=chunks), *args, **kwargs)
    got = dask.compute(*got) if isinstance(got, tuple) else got.compute()
    return got, getattr(adapool, op)(x, *args, **kwargs)


def check(got, want, op, dtype):
    if isinstance(want, tuple):
        assert got[0].dtype == want[0].dtype and got[1].dtype == np.int64
        np.testing.assert_array_equal(got[0], want[0])          # max: the same element's value...
        np.testing.assert_array_equal(got[1], want[1])          # ... and index
    elif "max" in op:
        np.testing.assert_array_equal(got, want)
    else:
        assert got.shape == want.shape and got.dtype == want.dtype
        close(got, want, dtype)


def chunkings(draw, shape):
    """Per axis: one chunk, single elements, or uneven random cuts."""
    out = []
    for size in shape:
        kind = draw(st.sampled_from(["whole", "ones", "cuts"]))
        if kind == "whole" or size <= 1:
            out.append((size,))
        elif kind == "ones":
            out.append((1,) * size)
        else:
            cuts = sorted(set(draw(st.lists(st.integers(1, size - 1), max_size=4))))
            out.append(tuple(np.diff([0, *cuts, size]).tolist()))
    return tuple(out)


@st.composite
def adaptive_cases(draw):
    op, nd = draw(st.sampled_from(ADAPTIVE))
    batched = draw(st.booleans()) or nd == 3 or "max" in op
    lead = ((draw(st.integers(1, 3)),) if batched else ()) + (draw(st.integers(1, 3)),)
    spatial = tuple(draw(st.integers(1, 13)) for _ in range(nd))
    out = tuple(draw(st.integers(1, 9)) for _ in range(nd))
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    return op, lead + spatial, out, dtype, chunkings(draw, lead + spatial), draw(st.integers(0, 2**32 - 1))


@given(adaptive_cases())
def test_adaptive_ops_equal_the_in_memory_result(ad, dask_array, case):
    op, shape, out, dtype, chunks, seed = case
    r = np.random.default_rng(seed)
    x = r.standard_normal(shape).astype(dtype)
    if "max" in op and x.size > 2:
        x.flat[r.integers(x.size)] = x.flat[r.integers(x.size)]   # a tie, wherever it falls
    kwargs = {"return_indices": True} if "max" in op else {}
    got, want = run(ad, dask_array, op, x, chunks, out, **kwargs)
    check(got, want, op, dtype)


@st.composite
def avg_pool2d_cases(draw):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    p = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    h, w = draw(st.integers(max(1, k[0] - 2 * p[0]), 14)), draw(st.integers(max(1, k[1] - 2 * p[1]), 14))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w)
    kwargs = dict(kernel_size=k, stride=s, padding=p, ceil_mode=draw(st.booleans()),
                  count_include_pad=draw(st.booleans()), divisor_override=draw(st.sampled_from([None, 3, -2])))
    return shape, kwargs, chunkings(draw, shape), draw(st.sampled_from([np.float32, np.float64]))


@given(avg_pool2d_cases())
def test_avg_pool2d_equals_the_in_memory_result(ad, dask_array, case):
    shape, kwargs, chunks, dtype = case
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    got, want = run(ad, dask_array, "avg_pool2d", x, chunks, **kwargs)
    check(got, want, "avg_pool2d", dtype)


@given(call=strided_calls(), data=st.data())
@settings(max_examples=120)
def test_strided_ops_equal_the_in_memory_result(ad, dask_array, call, data):
    # max_pool1d/2d/3d (dilation 1: dask takes contiguous windows) and avg_pool1d/2d/3d
    op, x, batched, kwargs, _ = call
    if op.startswith("max"):
        kwargs["dilation"] = 1
        kwargs["return_indices"] = True
    dtype = data.draw(st.sampled_from([np.float16, np.float32, np.float64]))
    x = x.astype(dtype)
    got, want = run(ad, dask_array, op, x, chunkings(data.draw, x.shape), **kwargs)
    check(got, want, op, dtype)


def test_dilated_max_pool_is_refused_on_dask(ad, dask_array):
    x = dask_array.zeros((1, 2, 9, 9), chunks=3)
    with pytest.raises(NotImplementedError, match="dilation > 1"):
        ad.max_pool2d(x, 3, dilation=2)
    with pytest.raises(NotImplementedError, match="dilation > 1"):
        adapool.max_pool2d(x, 3, dilation=2)   # the NumPy function hands dask arrays over
    assert ad.max_pool2d(x, 3, dilation=1).shape == (1, 2, 3, 3)


# ---- named edges ---------------------------------------------------------------------------------

@pytest.mark.parametrize("op,nd", ADAPTIVE)
def test_global_pooling_over_many_chunks(op, nd, ad, dask_array, rng):
    shape = (2, 3) + (17, 9, 6)[:nd]
    x = rng.standard_normal(shape).astype(np.float32)
    chunks = (1, 2) + (3, 2, 1)[:nd]   # every window spans every chunk of its axis
    kwargs = {"return_indices": True} if "max" in op else {}
    got, want = run(ad, dask_array, op, x, chunks, 1, **kwargs)
    check(got, want, op, np.float32)


@pytest.mark.parametrize("chunks", [(1, 1, 1, 1), (1, 1, 2, 3), (1, 1, 5, 5), (1, 1, 4, 1)])
def test_max_rules_across_chunk_boundaries(chunks, ad, dask_array):
    """Ties keep the first index, NaN wins and the last NaN's index is kept, all -inf and
    lowest-float windows keep their first element -- wherever the chunk boundaries fall."""
    x = np.zeros((1, 1, 10, 10), np.float32)
    x[0, 0, 0:5, 0:5] = 3.0                       # one tie over a whole window
    x[0, 0, 0:5, 5:10] = -np.inf                  # a window of -inf
    x[0, 0, 5:10, 0:5] = np.finfo(np.float32).min
    x[0, 0, 6, 1] = np.nan                         # two NaN in one window: the last one's index
    x[0, 0, 8, 3] = np.nan
    x[0, 0, 5:10, 5:10] = -0.0
    x[0, 0, 9, 9] = 0.0
    for out in (2, 3, 4):
        got, want = run(ad, dask_array, "adaptive_max_pool2d", x, chunks, out, return_indices=True)
        check(got, want, "adaptive_max_pool2d", np.float32)
        np.testing.assert_array_equal(np.signbit(got[0]), np.signbit(want[0]))


def test_windows_larger_than_the_input_and_chunks_smaller_than_windows(ad, dask_array, rng):
    x = rng.standard_normal((2, 2, 3, 5)).astype(np.float64)
    for op in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
        got, want = run(ad, dask_array, op, x, (1, 1, 1, 2), (7, 11))   # repeated windows
        check(got, want, op, np.float64)
    x = rng.standard_normal((1, 2, 40, 40)).astype(np.float32)
    got, want = run(ad, dask_array, "adaptive_avg_pool2d", x, (1, 1, 3, 7), 3)   # 14-wide windows, 3-wide chunks
    check(got, want, "adaptive_avg_pool2d", np.float32)


def test_unbatched_float16_and_byte_swapped_inputs(ad, dask_array, rng):
    x = rng.standard_normal((3, 11, 7)).astype(np.float16)
    for op in ("adaptive_avg_pool2d", "adaptive_max_pool2d", "avg_pool2d"):
        args = (2,) if op == "avg_pool2d" else (4,)
        got, want = run(ad, dask_array, op, x, (2, 4, 3), *args)
        check(got, want, op, np.float16)
    got, want = run(ad, dask_array, "adaptive_avg_pool2d", x.astype(">f4"), (1, 5, 2), 3)
    check(got, want.astype(np.float32), "adaptive_avg_pool2d", np.float32)


def test_empty_chunks(ad, dask_array, rng):
    """dask allows chunks of length 0 (after slicing, say): they hold no part of any window."""
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    chunks = ((1, 0, 1), (3,), (4, 0, 5), (0, 8))
    for op in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
        got, want = run(ad, dask_array, op, x, chunks, 4, **({"return_indices": True} if "max" in op else {}))
        check(got, want, op, np.float32)
    got, want = run(ad, dask_array, "avg_pool2d", x, chunks, 3, 2, 1)
    check(got, want, "avg_pool2d", np.float32)


def test_empty_outputs(ad, dask_array):
    x = np.ones((0, 3, 8, 8), np.float32)
    got, want = run(ad, dask_array, "adaptive_max_pool2d", x, (1, 2, 3, 3), 2, return_indices=True)
    assert got[0].shape == want[0].shape == (0, 3, 2, 2) and got[1].dtype == np.int64
    got, want = run(ad, dask_array, "adaptive_avg_pool2d", np.ones((1, 3, 8, 8), np.float32), (1, 2, 3, 3), (0, 2))
    assert got.shape == want.shape == (1, 3, 0, 2)


def test_calls_are_lazy_and_the_graph_grows_with_the_chunks_not_the_windows(ad, dask_array):
    """Tasks per input chunk stay bounded (measured: at most 8.5) whatever the number of
    windows or how many cross chunk boundaries (1, 7, 200, 239 windows on 240)."""
    for chunks in [(2, 4, 120, 120), (2, 4, 60, 60), (1, 1, 30, 30)]:
        x = dask_array.ones((2, 4, 240, 240), chunks=chunks, dtype=np.float32)
        for out in (1, 7, 200, 239):
            for y in (ad.adaptive_avg_pool2d(x, out), ad.adaptive_max_pool2d(x, out, return_indices=True)[1]):
                assert len(dict(y.__dask_graph__())) <= 10 * x.npartitions, (chunks, out)


@pytest.mark.parametrize("op,args", [("adaptive_avg_pool2d", (-1,)), ("adaptive_avg_pool2d", ((2, 2, 2),)),
                                     ("adaptive_max_pool2d", (2.5,)), ("avg_pool2d", (3, 2, 2)),
                                     ("avg_pool2d", (0,)), ("adaptive_max_pool1d", (2,))])
def test_errors_are_the_numpy_functions(op, args, ad, dask_array):
    x = np.ones((2, 3, 8, 8), np.float32)
    with pytest.raises((TypeError, ValueError)) as want:
        getattr(adapool, op)(x, *args)
    with pytest.raises(type(want.value), match=None) as got:
        getattr(ad, op)(dask_array.from_array(x, chunks=(1, 1, 3, 3)), *args)   # raised at call time
    assert str(got.value) == str(want.value)


def test_bad_inputs(ad, dask_array):
    with pytest.raises(TypeError, match="not implemented for 'int32'"):
        ad.adaptive_avg_pool2d(dask_array.ones((1, 2, 4, 4), dtype=np.int32), 2)
    with pytest.raises(TypeError, match="expected a dask.array.Array"):
        ad.adaptive_avg_pool2d(np.ones((1, 2, 4, 4), np.float32), 2)
    x = dask_array.ones((1, 2, 8, 8), chunks=4, dtype=np.float32)
    unknown = x[x[:, 0, 0, 0] > 0]   # a boolean mask: N's chunks become unknown
    with pytest.raises(ValueError, match="unknown size"):
        ad.adaptive_avg_pool2d(unknown, 2)


@pytest.fixture(scope="module")
def cluster_client(distributed):
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster, set_as_default=False) as client:
        yield client


def test_a_process_cluster_gives_the_same_result(ad, dask_array, cluster_client, rng):
    x = rng.standard_normal((2, 3, 31, 29)).astype(np.float32)
    want_avg = adapool.adaptive_avg_pool2d(x, 7)
    want_max = adapool.adaptive_max_pool2d(x, 7, return_indices=True)
    dx = dask_array.from_array(x, chunks=(1, 2, 8, 5))
    avg, values, indices = cluster_client.compute([ad.adaptive_avg_pool2d(dx, 7),
                                                   *ad.adaptive_max_pool2d(dx, 7, return_indices=True)], sync=True)
    close(avg, want_avg, np.float32)
    np.testing.assert_array_equal(values, want_max[0])
    np.testing.assert_array_equal(indices, want_max[1])


@settings(max_examples=12)   # each example is a round trip through two worker processes
@given(adaptive_cases())
def test_adaptive_ops_on_a_process_cluster(ad, dask_array, cluster_client, case):
    op, shape, out, dtype, chunks, seed = case
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    kwargs = {"return_indices": True} if "max" in op else {}
    lazy = getattr(ad, op)(dask_array.from_array(x, chunks=chunks), out, **kwargs)
    got = cluster_client.compute(list(lazy) if isinstance(lazy, tuple) else lazy, sync=True)
    check(tuple(got) if isinstance(lazy, tuple) else got, getattr(adapool, op)(x, out, **kwargs), op, dtype)


def test_the_numpy_functions_dispatch_dask_arrays(ad, dask_array, rng):
    x = rng.standard_normal((2, 3, 9, 11)).astype(np.float32)
    dx = dask_array.from_array(x, chunks=(1, 2, 4, 4))
    lazy = adapool.adaptive_avg_pool2d(dx, 4)
    assert isinstance(lazy, dask_array.Array)
    close(lazy.compute(), adapool.adaptive_avg_pool2d(x, 4), np.float32)
    values, indices = adapool.adaptive_max_pool2d(dx, 4, return_indices=True)
    np.testing.assert_array_equal(indices.compute(), adapool.adaptive_max_pool2d(x, 4, return_indices=True)[1])
    close(adapool.avg_pool2d(dx, 3, 2, 1).compute(), adapool.avg_pool2d(x, 3, 2, 1), np.float32)
    with pytest.raises(TypeError, match="out= is not supported for dask arrays"):
        adapool.adaptive_avg_pool2d(dx, 4, out=np.empty((2, 3, 4, 4), np.float32))
