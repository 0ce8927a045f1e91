"""float32 average pooling of small dense planes, eight planes (channels) at a time: the planes
are transposed into an eight-lane channels-last tile, each output sums its window's pixels in
row-major order in float32 from +0.0 (windows of at most 16 pixels; a shorter window adds +0.0
for the pixels it lacks, which changes no bit), times its float64 1 / divisor, rounded once; a
sum that came out inf or NaN is redone in float64. Every path that pools the same windows gives
the same bits: these tests compare with that order written out in NumPy, with the
channels-last kernel on the same values, and with the general tile that strided layouts take.
"""
import numpy as np
import pytest

import adapool
from layouts import assert_same_bits_on_1_and_2_threads, sum_bits32 as _bits, spiked_values as _values, with_layout
from reference import adaptive_avg_pool_ref, avg_pool2d_ref, ordered_f32_avg_pool2d, pool2d_pairs
from adapool._windows import window_end, window_start


def _ordered_adaptive(x, output_size):
    """adaptive_avg_pool1d/2d in the kernels' order (float32 sums of at most 16 pixels)."""
    nd = len(output_size)
    spatial = x.shape[-nd:]
    y = np.empty(x.shape[:-nd] + tuple(output_size), np.float32)
    for idx in np.ndindex(*output_size):
        ranges = [range(window_start(i, o, s), window_end(i, o, s)) for i, o, s in zip(idx, output_size, spatial)]
        acc = np.zeros(x.shape[:-nd], np.float32)
        wide = np.zeros(x.shape[:-nd])
        count = 0
        for pixel in np.ndindex(*[len(r) for r in ranges]):
            at = (Ellipsis,) + tuple(r[k] for r, k in zip(ranges, pixel))
            with np.errstate(over="ignore", invalid="ignore"):
                acc = acc + x[at]
                wide = wide + x[at].astype(np.float64)
            count += 1
        with np.errstate(over="ignore", invalid="ignore"):
            total = np.where(np.isfinite(acc), acc.astype(np.float64), wide)
            y[(Ellipsis,) + idx] = (total * (1.0 / count)).astype(np.float32)
    return y


POOL_ARGS = [
    # (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    (3, 2, 1, False, True, None),      # ResNet's stem pooling: padded windows
    (3, 2, 1, True, False, None),
    (3, 1, 1, False, False, None),
    (2, 2, 0, True, True, None),       # a clipped last window (ceil_mode)
    (4, 3, 2, True, True, None),       # 16-pixel windows, the most this path takes
    ((3, 5), (2, 3), (1, 2), False, True, 7),
    ((1, 3), 1, (0, 1), False, True, None),
]
PLANES = [(7, 7), (14, 14), (15, 15), (5, 9), (9, 4), (28, 28), (30, 30)]


@pytest.mark.parametrize("c", [8, 11, 16, 21])
@pytest.mark.parametrize("hw", PLANES, ids=str)
@pytest.mark.parametrize("args", POOL_ARGS, ids=str)
def test_avg_pool2d_sums_in_row_major_order(args, hw, c):
    x = _values(np.random.default_rng(c * 100 + hw[0]), (2, c) + hw)
    want = ordered_f32_avg_pool2d(x, *args)
    got = adapool.avg_pool2d(x, *args)
    np.testing.assert_array_equal(_bits(got), _bits(want))
    np.testing.assert_array_equal(_bits(adapool.avg_pool2d(with_layout(x, "channels_last"), *args)), _bits(want))


@pytest.mark.parametrize("args", POOL_ARGS[:3], ids=str)
@pytest.mark.parametrize("view", ["channels_sliced", "channels_reversed", "batch_sliced", "strided_rows", "negative",
                                  "unbatched"])
def test_views_give_the_same_bits(view, args):
    # channel/batch slices keep dense planes (this path, planes further apart); strided rows
    # and a reversed H take the general tile
    big = _values(np.random.default_rng(5), (4, 34, 7, 7))
    x = {"channels_sliced": big[:, ::2], "channels_reversed": big[:, ::-1], "batch_sliced": big[::2, 3:30], "strided_rows": with_layout(big, "strided_rows"),
         "negative": with_layout(big, "negative"), "unbatched": big[1]}[view]
    np.testing.assert_array_equal(_bits(adapool.avg_pool2d(x, *args)), _bits(ordered_f32_avg_pool2d(np.ascontiguousarray(x), *args)))


@pytest.mark.parametrize("c", [8, 13, 24])
@pytest.mark.parametrize("spatial, output_size", [((15, 15), (7, 7)), ((7, 7), (3, 3)), ((14, 14), (5, 6)),
                                                 ((28, 28), (9, 8)), ((11, 30), (4, 10))], ids=str)
def test_adaptive_2d_sums_in_row_major_order(spatial, output_size, c):
    x = _values(np.random.default_rng(c + spatial[1]), (2, c) + spatial)
    got = adapool.adaptive_avg_pool2d(x, output_size)
    np.testing.assert_array_equal(_bits(got), _bits(_ordered_adaptive(x, output_size)))
    np.testing.assert_array_equal(_bits(adapool.adaptive_avg_pool2d(with_layout(x, "channels_last"), output_size)),
                                  _bits(got))


@pytest.mark.parametrize("length, out", [(100, 10), (49, 7), (30, 4), (900, 60)])
def test_adaptive_1d_sums_in_order(length, out):
    x = _values(np.random.default_rng(length), (3, 19, length))
    np.testing.assert_array_equal(_bits(adapool.adaptive_avg_pool1d(x, out)), _bits(_ordered_adaptive(x, (out,))))


def test_close_to_the_float64_reference():
    x = np.random.default_rng(2).standard_normal((3, 40, 15, 15)).astype(np.float32)
    for args in POOL_ARGS:
        k, s, p = pool2d_pairs(*args[:3])
        np.testing.assert_allclose(adapool.avg_pool2d(x, *args), avg_pool2d_ref(x, k, s, p, *args[3:]),
                                   rtol=3e-6, atol=1e-6)
    np.testing.assert_allclose(adapool.adaptive_avg_pool2d(x, 7), adaptive_avg_pool_ref(x, (7, 7)), rtol=3e-6, atol=1e-6)


@pytest.mark.parametrize("c", [8, 9, 11])
def test_overflowing_sums_are_redone_in_float64_in_every_lane(c):
    # the last block of 9 or 11 channels has 1 or 3 real lanes; its other lanes must neither
    # flag nor hide an overflow
    x = np.random.default_rng(c).standard_normal((2, c, 7, 7)).astype(np.float32)
    x[1, c - 1] = 3e38                       # every 3x3 float32 sum overflows: redone, finite
    x[0, c - 1] = -0.0                       # all -0.0 windows: a +0.0 mean
    x[0, 0, 3, 3] = np.inf                   # a true inf stays inf
    got = adapool.avg_pool2d(x, 3, 2, 1)
    np.testing.assert_array_equal(_bits(got), _bits(ordered_f32_avg_pool2d(x, 3, 2, 1)))
    assert np.isfinite(got[1, c - 1]).all() and not np.signbit(got[0, c - 1]).any()
    assert got[0, 0, 1, 1] == np.inf


def test_into_out_dense_and_strided():
    x = _values(np.random.default_rng(4), (2, 16, 7, 7))
    want = ordered_f32_avg_pool2d(x, 3, 2, 1)
    dense = np.full((2, 16, 4, 4), 7.0, np.float32)
    adapool.avg_pool2d(x, 3, 2, 1, out=dense)
    np.testing.assert_array_equal(_bits(dense), _bits(want))
    store = np.zeros((2, 16, 4, 8), np.float32)      # out with strided columns: the general tile
    adapool.avg_pool2d(x, 3, 2, 1, out=store[..., ::2])
    np.testing.assert_array_equal(_bits(store[..., ::2]), _bits(want))
    assert (store[..., 1::2] == 0).all()


def test_does_not_depend_on_thread_count():
    rng = np.random.default_rng(6)
    xs = [_values(rng, (4, 200, 7, 7)), _values(rng, (2, 77, 15, 15))]
    calls = [lambda x=x, a=a: adapool.avg_pool2d(x, *a) for x in xs for a in POOL_ARGS]
    calls += [lambda x=x: adapool.adaptive_avg_pool2d(x, 3) for x in xs]
    assert_same_bits_on_1_and_2_threads(calls)


@pytest.mark.parametrize("args", POOL_ARGS, ids=str)
def test_matches_torch(torch_oracle, args):
    x = np.random.default_rng(8).standard_normal((4, 37, 14, 14)).astype(np.float32)
    F = torch_oracle.nn.functional
    np.testing.assert_allclose(adapool.avg_pool2d(x, *args), F.avg_pool2d(torch_oracle.from_numpy(x), *args).numpy(),
                               rtol=3e-6, atol=1e-6)
    np.testing.assert_allclose(adapool.adaptive_avg_pool2d(x, 5),
                               F.adaptive_avg_pool2d(torch_oracle.from_numpy(x), 5).numpy(), rtol=3e-6, atol=1e-6)


# The planar float32 kernels (these blocks, the wide rows, the one-vector-a-row planes) divide
# each sum by its divisor as a float32 where every divisor is in [1, 2^24]: the same bits as
# the float64 product with 1 / divisor that the other kernels and the oracle take.
DIVISOR_CALLS = {
    "blocks": ((3, 40, 7, 7), (3, 2, 1)),
    "wide rows": ((2, 3, 9, 56), (3, 2, 1)),
    "row vectors": ((2, 9, 14, 14), (2, 2)),
}


@pytest.mark.parametrize("divisor", [None, 1, 3, 7, 1 << 24, (1 << 24) + 1, 10 ** 9, -3], ids=str)
@pytest.mark.parametrize("call", DIVISOR_CALLS)
def test_float32_division_gives_the_float64_products_bits(call, divisor):
    shape, args = DIVISOR_CALLS[call]
    rng = np.random.default_rng(11)
    x = _values(rng, shape)
    tiny = np.float32(1e-38) * rng.standard_normal(shape[-2:]).astype(np.float32)
    x[0, 1] = tiny                                         # subnormal means
    x[0, 2] = np.array(0x7FC01234, np.uint32).view(np.float32)   # a NaN payload
    got = adapool.avg_pool2d(x, *args, divisor_override=divisor)
    np.testing.assert_array_equal(_bits(got), _bits(ordered_f32_avg_pool2d(x, *args, divisor_override=divisor)))
    assert (got[0, 2].view(np.uint32) == 0x7FC01234).all()   # one NaN's payload, kept


@pytest.mark.parametrize("divisor", list(range(1, 17)) + [25, 49, 100, 1000003, (1 << 24) - 1, 1 << 24])
def test_float32_division_equals_the_rounded_float64_product(divisor):
    # the identity the kernels rely on, on 2^22 random bit patterns (NaNs, infs, subnormals
    # included) and every float32 of the lowest binades; all 2^32 patterns were checked for
    # d = 1 ... 16, 25, 49, 100, 1000003 and 2^24 - 1 when it was introduced
    rng = np.random.default_rng(divisor)
    bits = np.concatenate([rng.integers(0, 1 << 32, 1 << 22, dtype=np.uint64).astype(np.uint32),
                           np.arange(1 << 20, dtype=np.uint32), np.arange(1 << 20, dtype=np.uint32) | 0x80000000])
    s = bits.view(np.float32)
    with np.errstate(all="ignore"):
        product = (s.astype(np.float64) * (1.0 / divisor)).astype(np.float32)
        quotient = s / np.float32(divisor)
    np.testing.assert_array_equal(product.view(np.uint32), quotient.view(np.uint32))
