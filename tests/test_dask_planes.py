"""adapool.dask's ops that need whole planes per task -- max_unpool1d/2d/3d and
fractional_max_pool2d/3d (spatial axes rechunked, chunks along N and C kept, fractional samples
split by them) -- and bfloat16 input for every dask pooling op: equal to the NumPy functions on
the same data in memory (bit for bit where those are exact), for any chunking."""
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adapool
from test_dask import chunkings

BF16 = np.dtype(ml_dtypes.bfloat16)


@pytest.fixture(scope="module")
def ad(dask_array):
    import adapool.dask
    return adapool.dask


def bits(a):
    return np.asarray(a).view(np.uint16 if a.dtype.itemsize == 2 else np.uint32 if a.dtype.itemsize == 4 else np.uint64)


UNPOOL = [
    # output sizes: the pooled input's (its indices point anywhere in it), within one stride
    (1, (3, 4, 12), dict(kernel_size=3, stride=2, padding=1, output_size=(12,)), (2, 3, 5)),
    (2, (3, 4, 8, 10), dict(kernel_size=2), (1, 3, 2, 4)),
    (2, (2, 3, 9, 11), dict(kernel_size=3, stride=2, padding=1, output_size=(10, 11)), (2, 2, 3, 5)),
    (3, (2, 3, 5, 6, 7), dict(kernel_size=2, output_size=(5, 6, 7)), (1, 2, 2, 3, 2)),
]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, BF16], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("nd, shape, kw, chunks", UNPOOL)
def test_max_unpool_equals_numpy(ad, dask_array, nd, shape, kw, chunks, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[::7] = np.nan
    pool_kw = {k: v for k, v in kw.items() if k != "output_size"}
    values, indices = getattr(adapool, f"max_pool{nd}d")(x, **pool_kw, return_indices=True)
    op = f"max_unpool{nd}d"
    want = getattr(adapool, op)(values, indices, **kw)
    # the indices chunked otherwise than the values, and as a NumPy array
    for ind in (dask_array.from_array(indices, chunks=(1,) + indices.shape[1:]), indices):
        lazy = getattr(ad, op)(dask_array.from_array(values, chunks=chunks), ind, **kw)
        assert lazy.shape == want.shape and lazy.dtype == want.dtype
        got = lazy.compute()
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(bits(got), bits(want))


def test_numpy_functions_hand_dask_arrays_over(ad, dask_array, rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    values, indices = adapool.max_pool2d(x, 2, return_indices=True)
    lazy = adapool.max_unpool2d(dask_array.from_array(values, chunks=1), indices, 2)
    assert isinstance(lazy, dask_array.Array)
    np.testing.assert_array_equal(lazy.compute(), adapool.max_unpool2d(values, indices, 2))
    samples = rng.random((2, 3, 2)).astype(np.float32)
    lazy = adapool.fractional_max_pool2d(dask_array.from_array(x, chunks=1), 2, 4, None, True, samples)
    assert isinstance(lazy[0], dask_array.Array)
    for got, want in zip(lazy, adapool.fractional_max_pool2d(x, 2, 4, None, True, samples)):
        np.testing.assert_array_equal(got.compute(), want)


@st.composite
def plane_cases(draw, ranks=(1, 2, 3)):
    """(nd, shape, dtype, seed): any rank, batched or not (an empty batch too), any dtype."""
    nd = draw(st.sampled_from(ranks))
    batched = draw(st.booleans())
    lead = ((draw(st.integers(0, 3)),) if batched else ()) + (draw(st.integers(1, 3)),)
    spatial = tuple(draw(st.integers(3, 9)) for _ in range(nd))
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64, BF16]))
    return nd, lead + spatial, dtype, draw(st.integers(0, 2**32 - 1))


@given(case=plane_cases(), data=st.data())
@settings(max_examples=40)
def test_unpool_any_chunking_equals_numpy(ad, dask_array, case, data):
    nd, shape, dtype, seed = case
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    # overlapping windows: repeated indices carrying one value
    values, indices = getattr(adapool, f"max_pool{nd}d")(x, 2, 1, 1, return_indices=True)
    kw = dict(kernel_size=2, stride=1, padding=1, output_size=shape[-nd:])
    lazy = getattr(ad, f"max_unpool{nd}d")(dask_array.from_array(values, chunks=chunkings(data.draw, values.shape)),
                                           dask_array.from_array(indices, chunks=chunkings(data.draw, indices.shape)),
                                           **kw)
    want = getattr(adapool, f"max_unpool{nd}d")(values, indices, **kw)
    np.testing.assert_array_equal(bits(lazy.compute()), bits(want))


@given(case=plane_cases(ranks=(2, 3)), data=st.data())
@settings(max_examples=40)
def test_fractional_any_chunking_equals_numpy(ad, dask_array, case, data):
    import dask
    nd, shape, dtype, seed = case
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    out = tuple(data.draw(st.integers(1, s - 2)) for s in shape[-nd:])   # 3-d: out + k - 1 < size, k = 2
    kw = dict(kernel_size=2, output_size=out, return_indices=True)
    lazy = getattr(ad, f"fractional_max_pool{nd}d")(dask_array.from_array(x, chunks=chunkings(data.draw, shape)),
                                                     **kw, rng=np.random.default_rng(seed))
    want = getattr(adapool, f"fractional_max_pool{nd}d")(x, **kw, rng=np.random.default_rng(seed))
    got = dask.compute(*lazy)
    np.testing.assert_array_equal(bits(got[0]), bits(want[0]))
    np.testing.assert_array_equal(got[1], want[1])


def test_max_unpool_checks_at_call_time_and_indices_at_compute_time(ad, dask_array):
    x = dask_array.ones((2, 3, 4, 4), chunks=2, dtype=np.float32)
    ind = np.zeros((2, 3, 4, 4), np.int64)
    with pytest.raises(ValueError, match="invalid output_size"):
        ad.max_unpool2d(x, ind, 2, output_size=(3, 3))
    with pytest.raises(TypeError, match="elements in indices should be type int64"):
        ad.max_unpool2d(x, ind.astype(np.int32), 2)
    with pytest.raises(ValueError, match="Expected shape of indices"):
        ad.max_unpool2d(x, ind[:, :, :3], 2)
    ind[1, 2, 3, 3] = 64   # the output plane holds 8 x 8 = 64 elements
    lazy = ad.max_unpool2d(x, ind, 2)
    with pytest.raises(ValueError, match="Found an invalid max index: 64"):
        lazy.compute()


FRACTIONAL = [
    (2, (3, 5, 11, 13), dict(kernel_size=2, output_size=4), (2, 3, 5, 4)),
    (2, (4, 3, 9, 9), dict(kernel_size=(3, 2), output_ratio=(0.5, 0.6)), (1, 2, 9, 9)),
    (3, (2, 3, 7, 8, 9), dict(kernel_size=2, output_size=(3, 4, 2)), (1, 1, 3, 4, 5)),
]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, BF16], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("nd, shape, kw, chunks", FRACTIONAL)
def test_fractional_equals_numpy(ad, dask_array, nd, shape, kw, chunks, dtype, rng):
    import dask
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[::13] = np.nan
    x.flat[5::17] = -np.inf
    op = f"fractional_max_pool{nd}d"
    given = rng.random((shape[0] + 1, shape[1], nd)).astype(np.float32).astype(dtype)   # N' > N is allowed
    for source in ("given", "rng"):
        for return_indices in (False, True):
            for xs, cs in ((x, chunks), (x[0], chunks[1:])):   # batched, unbatched

                def samples(rows):   # the same samples (or the same draws) for both calls
                    return dict(_random_samples=given[:rows]) if source == "given" else \
                        dict(rng=np.random.default_rng(3))
                lazy = getattr(ad, op)(dask_array.from_array(xs, chunks=cs), **kw, return_indices=return_indices,
                                       **samples(len(given)))
                want = getattr(adapool, op)(xs, **kw, return_indices=return_indices,
                                            **samples(len(given) if xs.ndim == nd + 2 else 1))
                got = dask.compute(*lazy) if return_indices else lazy.compute()
                got_v, want_v = (got[0], want[0]) if return_indices else (got, want)
                assert got_v.dtype == want_v.dtype and got_v.shape == want_v.shape
                np.testing.assert_array_equal(bits(got_v), bits(want_v))
                if return_indices:
                    np.testing.assert_array_equal(got[1], want[1])


def test_fractional_checks_at_call_time(ad, dask_array):
    x = dask_array.ones((2, 3, 8, 8), chunks=2, dtype=np.float32)
    with pytest.raises(ValueError, match="pool height 6 too large relative to input height 8"):
        ad.fractional_max_pool2d(x, 6, output_size=4, _random_samples=np.zeros((2, 3, 2), np.float32))
    with pytest.raises(ValueError, match="Expect _random_samples.size\\(1\\) equals to input channel size"):
        ad.fractional_max_pool2d(x, 2, output_size=4, _random_samples=np.zeros((2, 2, 2), np.float32))
    with pytest.raises(TypeError, match="same dtype as input"):
        ad.fractional_max_pool2d(x, 2, output_size=4, _random_samples=np.zeros((2, 3, 2)))
    with pytest.raises(ValueError, match="requires specifying either an output_size or an output_ratio"):
        ad.fractional_max_pool2d(x, 2)
    bf = dask_array.ones((2, 3, 8, 8), chunks=2, dtype=BF16)
    with pytest.raises(TypeError, match="same dtype as input"):
        ad.fractional_max_pool2d(bf, 2, output_size=4, _random_samples=np.zeros((2, 3, 2), np.float32))


def test_fractional_empty_batch(ad, dask_array):
    x = np.zeros((0, 3, 8, 8), np.float32)
    got = ad.fractional_max_pool2d(dask_array.from_array(x), 2, output_size=4, return_indices=True)
    assert got[0].shape == (0, 3, 4, 4) and got[0].compute().shape == (0, 3, 4, 4)
    assert got[1].compute().dtype == np.int64


CALLS = [
    ("adaptive_avg_pool2d", (4,), {}),
    ("adaptive_max_pool1d", (4,), dict(return_indices=True)),
    ("adaptive_max_pool3d", (2,), dict(return_indices=True)),
    ("avg_pool2d", (3, 2, 1), dict(ceil_mode=True)),
    ("avg_pool1d", (3, 2, 1), {}),
    ("max_pool2d", (3, 2, 1), dict(return_indices=True)),
    ("max_pool3d", (2,), {}),
]


@pytest.mark.parametrize("op, args, kw", CALLS, ids=lambda v: v if isinstance(v, str) else None)
def test_bfloat16_equals_numpy(ad, dask_array, op, args, kw, rng):
    nd = int(op[-2])
    shape = (3, 5) + (11, 13, 7)[:nd]
    x = rng.standard_normal(shape).astype(BF16)
    x.flat[::11] = np.nan
    lazy = getattr(ad, op)(dask_array.from_array(x, chunks=(2, 3) + (5, 4, 3)[:nd]), *args, **kw)
    want = getattr(adapool, op)(x, *args, **kw)
    import dask
    got = dask.compute(*lazy) if isinstance(lazy, tuple) else lazy.compute()
    lazy_v, got_v, want_v = (lazy[0], got[0], want[0]) if isinstance(want, tuple) else (lazy, got, want)
    assert lazy_v.dtype == BF16 and got_v.dtype == BF16 and lazy_v._meta.dtype == BF16
    if "max" in op:   # the elements themselves, NaN and signs included
        np.testing.assert_array_equal(bits(got_v), bits(want_v))
        np.testing.assert_array_equal(got[1], want[1])
    else:   # float64 sums per window on dask, the kernel's on NumPy: the same bfloat16 but for ties
        np.testing.assert_allclose(got_v.astype(np.float64), want_v.astype(np.float64), rtol=2 ** -7, atol=0)
        assert np.mean(bits(got_v) == bits(want_v)) > 0.99


@pytest.mark.parametrize("nd, p", [(1, 2), (2, 3), (2, 1.5), (3, 2), (2, float("inf")), (1, -float("inf"))])
def test_bfloat16_lp_pool_equals_numpy(ad, dask_array, nd, p, rng):
    """torch's composition rounded to bfloat16 after every step, chunk by chunk: bit for bit the
    NumPy function's but where the float64 window sums (dask) and the kernel's round a tie
    differently."""
    shape = (2, 3) + (10, 9, 7)[:nd]
    x = rng.standard_normal(shape).astype(BF16)
    lazy = getattr(ad, f"lp_pool{nd}d")(dask_array.from_array(x, chunks=(1, 2) + (4, 5, 3)[:nd]), p, 3, 2,
                                         ceil_mode=True)
    want = getattr(adapool, f"lp_pool{nd}d")(x, p, 3, 2, ceil_mode=True)
    assert lazy.dtype == BF16 and lazy._meta.dtype == BF16
    got = lazy.compute()
    assert got.dtype == BF16 and got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got.astype(np.float32)), np.isnan(want.astype(np.float32)))
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=2 ** -6, atol=0)
    assert np.mean(bits(got) == bits(want)) > 0.99
