"""The small-plane path of the forward kernels: planar inputs with at least 8 channels and
small planes are gathered into channels-last tiles (blocks of up to 128 channels) and pooled
there. Its edges: channel counts around the block sizes, strided and reversed planes,
non-contiguous out=, float16/float32/float64 (three different transposers), global windows,
NaN/tie/-inf rules of max pooling, one thread and two. Checked against the float64 reference
and, bit for bit where torch defines the bits (max pooling), against torch."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import adapool

from conftest import torch
from layouts import hostile, with_layout
from reference import adaptive_avg_pool_ref, adaptive_max_pool_ref

TOL = {np.float16: 1e-3, np.float32: 1e-6, np.float64: 1e-12}
DTYPES = [np.float16, np.float32, np.float64]
PLANAR = ["contiguous", "strided_rows", "negative"]   # the layouts the planar kernels take as they are


def check_avg(x, output_size, out=None):
    y = adapool.adaptive_avg_pool2d(x, output_size, out=out) if x.ndim == 4 else adapool.adaptive_avg_pool3d(x, output_size, out=out)
    ref = adaptive_avg_pool_ref(x, (output_size,) * (x.ndim - 2) if isinstance(output_size, int) else output_size)
    tol = TOL[x.dtype.type]
    np.testing.assert_allclose(y.astype(np.float64), ref, rtol=tol, atol=tol * max(np.abs(ref).max(initial=0), 1e-30))
    return y


def check_max(x, output_size):
    fn = adapool.adaptive_max_pool2d if x.ndim == 4 else adapool.adaptive_max_pool3d
    y, i = fn(x, output_size, return_indices=True)
    sizes = (output_size,) * (x.ndim - 2) if isinstance(output_size, int) else output_size
    ref_y, ref_i = adaptive_max_pool_ref(x, sizes)
    np.testing.assert_array_equal(i, ref_i)
    assert np.array_equal(y, ref_y, equal_nan=True)
    assert np.array_equal(np.signbit(y), np.signbit(ref_y))   # the picked element itself: -0.0 stays -0.0
    return y, i


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("c", [8, 9, 15, 16, 17, 127, 129, 300])
def test_channel_counts_around_the_blocks(c, dtype, rng):
    x = hostile(rng, (2, c, 14, 14), dtype)
    check_max(x, 7)
    check_max(x, (5, 3))
    check_avg(rng.standard_normal((2, c, 15, 15)).astype(dtype), 7)


@pytest.mark.parametrize("layout", PLANAR)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,output_size", [
    ((2, 24, 14, 14), 7), ((1, 40, 15, 15), 7), ((3, 16, 28, 28), (7, 5)), ((1, 9, 7, 7), 1),
    ((1, 33, 7, 7), 3), ((2, 16, 1, 30), (1, 7)), ((1, 8, 13, 5), (20, 11)), ((1, 16, 64, 64), 7),
])
def test_layouts_and_windows(shape, output_size, dtype, layout, rng):
    check_avg(with_layout(rng.standard_normal(shape).astype(dtype), layout), output_size)
    check_max(with_layout(hostile(rng, shape, dtype), layout), output_size)


@pytest.mark.parametrize("dtype", DTYPES)
def test_3d_planes(dtype, rng):
    x = hostile(rng, (2, 20, 4, 6, 5), dtype)
    check_max(x, (3, 4, 2))
    check_avg(rng.standard_normal((2, 20, 4, 6, 5)).astype(dtype), (3, 4, 2))


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_out_is_written_in_place(dtype, rng):
    # out= a view into a bigger buffer: the output tile goes back element by element, and
    # nothing outside the view is touched.
    x = rng.standard_normal((2, 24, 14, 14)).astype(dtype)
    big = np.full((2, 48, 7, 14), 7.0, dtype)
    out = big[:, ::2, :, ::2]
    y = check_avg(x, 7, out=out)
    assert y is out
    assert np.all(big[:, 1::2] == 7) and np.all(big[:, :, :, 1::2] == 7)


def test_one_thread_and_two_give_the_same_bits(rng):
    x = rng.standard_normal((8, 256, 28, 28)).astype(np.float32)
    xm = hostile(rng, (8, 256, 28, 28), np.float32)
    results = []
    before = adapool.get_num_threads()
    try:
        for n in (1, 2):
            adapool.set_num_threads(n)
            results.append((adapool.adaptive_avg_pool2d(x, 7), *adapool.adaptive_max_pool2d(xm, 7, return_indices=True)))
    finally:
        adapool.set_num_threads(before)
    for a, b in zip(*results):
        assert np.array_equal(a.view(np.uint8), b.view(np.uint8))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torch_bit_for_bit_on_max(torch_oracle, dtype, rng):
    torch = torch_oracle
    for shape, o in [((4, 64, 14, 14), 7), ((2, 130, 15, 15), (7, 4)), ((2, 24, 7, 7), 1), ((1, 16, 56, 56), 7)]:
        x = hostile(rng, shape, dtype)
        y, i = adapool.adaptive_max_pool2d(x, o, return_indices=True)
        ty, ti = torch.nn.functional.adaptive_max_pool2d(torch.from_numpy(x), o, return_indices=True)
        np.testing.assert_array_equal(i, ti.numpy())
        assert np.array_equal(y.view(np.uint8), ty.numpy().view(np.uint8))   # NaN payloads and -0.0 too


def test_matches_torch_on_avg(torch_oracle, rng):
    torch = torch_oracle
    for shape, o in [((8, 256, 14, 14), 7), ((8, 256, 15, 15), 7), ((2, 20, 28, 28), (5, 9))]:
        x = rng.standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(adapool.adaptive_avg_pool2d(x, o),
                                   torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x), o).numpy(),
                                   rtol=2e-6, atol=1e-6)


@given(c=st.integers(8, 140), h=st.integers(1, 20), w=st.integers(1, 20), oh=st.integers(1, 22),
       ow=st.integers(1, 22), dtype=st.sampled_from(DTYPES), layout=st.sampled_from(PLANAR),
       seed=st.integers(0, 2**32 - 1))
def test_property_against_the_reference(c, h, w, oh, ow, dtype, layout, seed):
    rng = np.random.default_rng(seed)
    check_max(with_layout(hostile(rng, (1, c, h, w), dtype), layout), (oh, ow))
    check_avg(with_layout(rng.standard_normal((1, c, h, w)).astype(dtype), layout), (oh, ow))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel,stride,padding,ceil_mode,count_include_pad,divisor_override", [
    (3, 2, 1, False, True, None), (3, 2, 1, True, False, None), (2, 2, 0, False, True, None),
    ((3, 2), (2, 1), (1, 0), True, True, 5), (5, 3, 2, True, False, None),
])
def test_avg_pool2d_through_tiles(kernel, stride, padding, ceil_mode, count_include_pad, divisor_override,
                                  dtype, rng):
    from reference import avg_pool2d_ref, pool2d_pairs
    x = rng.standard_normal((2, 20, 15, 14)).astype(dtype)
    args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    y = adapool.avg_pool2d(x, *args)
    ref = avg_pool2d_ref(x, *pool2d_pairs(kernel, stride, padding), ceil_mode, count_include_pad, divisor_override)
    tol = TOL[dtype]
    np.testing.assert_allclose(y.astype(np.float64), ref, rtol=tol, atol=tol * np.abs(ref).max())
    if torch is not None and dtype is not np.float16:   # CI requires torch (conftest)
        t = torch.nn.functional.avg_pool2d(torch.from_numpy(x), *args).numpy()
        np.testing.assert_allclose(y, t, rtol=10 * tol, atol=10 * tol)
