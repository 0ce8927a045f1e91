"""The planar max kernel's pick (planes past the channels-last tile's 4096 elements, float32
planes of 2048 or more with windows of at most 8 columns and 32 elements, or fewer channels
than a tile): pass (1) keeps each column's maximum and the row of its first maximum
(torch's rule per column, so a NaN sticks); pass (2) picks, among the window's columns whose
maximum is the window's, the one whose first maximum lies in the earliest row, then the
leftmost (float32 windows at most 8 wide: in one AVX2 vector); windows holding NaN are
rescanned for their last NaN. These tests put the maximum,
its ties, NaNs, signed zeros and -inf where that order matters, in float32 and float64."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import adapool

from layouts import hostile, with_layout
from reference import adaptive_max_pool_ref

# (70, 70) planes take the planar kernel at any channel count (4900 > 4096 elements); (9, 11)
# planes take it with fewer channels than a tile (3 < 8).
# Windows at most 8 wide (float32, AVX2) take one vector pick (adapool_pick8_f32): (70, 70) -> 10
# (7 and 8 wide, the last reaching the plane's right edge), (64, 64) -> 8 (exactly 8), (9, 11).
# float32 planes of 2048 elements or more whose windows are at most 8 wide and hold 32 or more
# take the planar kernel at any channel count too (_planar_max_wins): (56, 56) -> 7 with 16
# channels, (48, 48) -> 6, (64, 48) -> (8, 6), (45, 47) -> (6, 6) (windows of 7-9 rows, 7-9
# columns: some wider than 8, so the tile).
SHAPES = [((1, 2, 70, 70), (3, 3)), ((1, 2, 70, 70), (7, 4)), ((2, 3, 9, 11), (2, 3)), ((2, 3, 9, 11), (4, 5)),
          ((1, 2, 70, 70), (10, 10)), ((1, 3, 64, 64), (8, 8)), ((1, 2, 70, 70), (5, 35)),
          ((1, 16, 56, 56), (7, 7)), ((2, 8, 48, 48), (6, 6)), ((1, 9, 64, 48), (8, 6)), ((1, 8, 45, 47), (6, 6))]


def check(x, o):
    ref_y, ref_i = adaptive_max_pool_ref(np.ascontiguousarray(x), o)
    y, i = adapool.adaptive_max_pool2d(x, o, return_indices=True)
    np.testing.assert_array_equal(i, ref_i)
    bits = np.uint32 if x.dtype == np.float32 else np.uint64
    assert np.array_equal(y.view(bits), ref_y.view(bits))
    assert np.array_equal(adapool.adaptive_max_pool2d(x, o).view(bits), y.view(bits))


def _windows(H, W, o):
    from adapool._windows import window_end, window_start
    return [(window_start(i, o[0], H), window_end(i, o[0], H), window_start(j, o[1], W), window_end(j, o[1], W))
            for i in range(o[0]) for j in range(o[1])]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,o", SHAPES)
def test_first_maximum_in_row_major_order(shape, o, dtype, rng):
    """In every window: a later row's maximum in an earlier column, ties in one row, and the
    pick's row and column drawn at random."""
    x = rng.integers(-5, 0, shape).astype(dtype)
    H, W = shape[-2:]
    for (r0, r1, c0, c1) in _windows(H, W, o):
        r = rng.integers(r0, r1)
        c = rng.integers(c0, c1)
        x[..., r, c] = 3
        if r + 1 < r1 and c > c0:
            x[..., r + 1, c0] = 3          # a tie in a later row but an earlier column
        if c + 1 < c1:
            x[..., r, c1 - 1] = 3          # a tie later in the same row
    check(x, o)
    y, i = adapool.adaptive_max_pool2d(x, o, return_indices=True)
    assert np.all(y == 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,o", SHAPES)
def test_zeros_nan_and_minus_inf(shape, o, dtype, rng):
    H, W = shape[-2:]
    # -0.0 before +0.0 in row-major order (the -0.0 one column to the right, a row above)
    x = np.full(shape, -1, dtype)
    for (r0, r1, c0, c1) in _windows(H, W, o):
        x[..., r0 + (r1 - r0) // 2, c0] = 0.0
        x[..., r0 + (r1 - r0) // 2 - 1, min(c0 + 1, c1 - 1)] = -0.0
    check(x, o)
    assert np.all(np.signbit(adapool.adaptive_max_pool2d(x, o)))
    # all -inf: the window's first element; a single finite element anywhere
    x = np.full(shape, -np.inf, dtype)
    check(x, o)
    x.reshape(-1)[rng.integers(0, x.size, 5)] = -3.0e38
    check(x, o)
    # NaN with payloads: the last one in row-major order, above the maximum
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    pos = rng.choice(x.size, 12, replace=False)
    flat[pos] = np.nan
    bits = flat.view(np.uint32 if dtype == np.float32 else np.uint64)
    bits[pos] |= np.arange(1, 13, dtype=bits.dtype)
    check(x, o)
    # a column whose first row is NaN, the rest larger numbers: the NaN still wins
    x = rng.standard_normal(shape).astype(dtype)
    x[..., 0, :] = np.nan
    check(x, o)


@settings(max_examples=80, deadline=None)
@given(c=st.integers(1, 3), h=st.integers(1, 30), w=st.integers(1, 30), oh=st.integers(1, 6), ow=st.integers(1, 6),
       dtype=st.sampled_from([np.float32, np.float64]), kind=st.sampled_from(["hostile", "ties"]),
       layout=st.sampled_from(["contiguous", "strided_rows", "negative"]), seed=st.integers(0, 2**32 - 1))
def test_property_against_the_reference(c, h, w, oh, ow, dtype, kind, layout, seed):
    r = np.random.default_rng(seed)
    x = hostile(r, (2, c, h, w), dtype) if kind == "hostile" else r.integers(-1, 2, (2, c, h, w)).astype(dtype)
    ref_y, ref_i = adaptive_max_pool_ref(x, (oh, ow))
    y, i = adapool.adaptive_max_pool2d(with_layout(x, layout), (oh, ow), return_indices=True)
    np.testing.assert_array_equal(i, ref_i)
    assert np.array_equal(y, ref_y, equal_nan=True) and np.array_equal(np.signbit(y), np.signbit(ref_y))


def test_matches_torch(torch_oracle, rng):
    F = torch_oracle.nn.functional
    for shape, o in [((1, 16, 223, 223), 7), ((2, 3, 70, 70), (3, 5)), ((2, 16, 56, 56), 7)]:
        for x in (hostile(rng, shape, np.float32), rng.integers(-2, 3, shape).astype(np.float32)):
            y, i = adapool.adaptive_max_pool2d(x, o, return_indices=True)
            ty, ti = F.adaptive_max_pool2d(torch_oracle.from_numpy(x), o, return_indices=True)
            np.testing.assert_array_equal(i, ti.numpy())
            assert np.array_equal(y.view(np.uint32), ty.numpy().view(np.uint32))
    x = hostile(rng, (2, 4, 71, 69), np.float32)
    for args in [dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=(4, 2), stride=(3, 1))]:
        y, i = adapool.max_pool2d(x, return_indices=True, **args)
        ty, ti = F.max_pool2d(torch_oracle.from_numpy(x), return_indices=True, **args)
        np.testing.assert_array_equal(i, ti.numpy())
        assert np.array_equal(y.view(np.uint32), ty.numpy().view(np.uint32))


def test_routed_planes_same_bits_in_every_layout_and_thread_count(rng):
    # the (56, 56) -> 7 planes that left the tile: the layouts that keep a unit-stride W take
    # the planar kernel, the others the tile or channels-last kernels; every result the same
    from layouts import assert_same_bits_on_1_and_2_threads
    x = hostile(rng, (2, 16, 56, 56), np.float32)
    want = adapool.adaptive_max_pool2d(x, 7, return_indices=True)
    for layout in ["channels_last", "strided_rows", "negative", "strided_all", "fortran"]:
        got = adapool.adaptive_max_pool2d(with_layout(x, layout), 7, return_indices=True)
        np.testing.assert_array_equal(got[1], want[1])
        assert np.array_equal(got[0].view(np.uint32), want[0].view(np.uint32))
    assert_same_bits_on_1_and_2_threads([lambda: adapool.adaptive_max_pool2d(x, 7, return_indices=True),
                                         lambda: adapool.adaptive_max_pool2d(x, 7)])
