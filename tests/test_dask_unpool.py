"""adapool.dask's max_unpool1d/2d/3d (whole planes per task) and bfloat16 input for every dask
pooling op: equal to the NumPy functions on the same data in memory, for any chunking."""
import ml_dtypes
import numpy as np
import pytest

import adapool

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


def test_bfloat16_lp_pool_is_refused(ad, dask_array):
    x = dask_array.ones((2, 3, 8), chunks=2, dtype=BF16)
    with pytest.raises(TypeError, match="bfloat16 is not supported on dask arrays yet"):
        ad.lp_pool1d(x, 2, 3)
