"""The window module is the single source of window arithmetic: check it against the
definition (floor/ceil of exact fractions) and the properties torch relies on."""
from fractions import Fraction
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from adapool import adaptive_windows, window_end, window_start


@given(st.integers(1, 400), st.integers(1, 400), st.data())
def test_formulas_are_floor_and_ceil(out_size, in_size, data):
    a = data.draw(st.integers(0, out_size - 1))
    assert window_start(a, out_size, in_size) == math.floor(Fraction(a * in_size, out_size))
    assert window_end(a, out_size, in_size) == math.ceil(Fraction((a + 1) * in_size, out_size))


@given(st.integers(1, 300), st.integers(1, 300))
def test_windows_cover_input_in_order(out_size, in_size):
    starts, ends = adaptive_windows(out_size, in_size)
    assert starts.dtype == ends.dtype == np.int64
    assert starts[0] == 0 and ends[-1] == in_size
    assert np.all(ends > starts)  # never empty
    assert np.all(np.diff(starts) >= 0) and np.all(np.diff(ends) >= 0)
    # consecutive windows leave no gap and overlap by at most one element
    assert np.all(starts[1:] <= ends[:-1]) and np.all(ends[:-1] - starts[1:] <= 1)


def test_known_overlap_11_to_4():
    starts, ends = adaptive_windows(4, 11)
    assert list(ends - starts) == [3, 4, 4, 3]


def test_output_larger_than_input_repeats_length_one_windows():
    starts, ends = adaptive_windows(9, 5)
    assert np.all(ends - starts <= 2) and set(starts) == set(range(5))


def test_zero_output_gives_empty_tables():
    starts, ends = adaptive_windows(0, 7)
    assert starts.size == ends.size == 0


def test_huge_sizes_do_not_overflow():
    big = 2**62 + 12345
    starts, ends = adaptive_windows(3, big)
    for a in range(3):
        assert starts[a] == (a * big) // 3
        assert ends[a] == -((-(a + 1) * big) // 3)


def test_tables_are_read_only():
    starts, _ = adaptive_windows(5, 17)
    with pytest.raises(ValueError):
        starts[0] = 3


# ---- strided windows (avg_pool2d) and the inverse tables of the backward passes -------------

@given(st.integers(1, 30), st.integers(1, 6), st.integers(1, 5), st.data(), st.booleans())
def test_pool_output_size_matches_the_definition(in_size, kernel, stride, data, ceil_mode):
    from adapool import pool_output_size
    pad = data.draw(st.integers(0, kernel // 2))
    span = in_size + 2 * pad - kernel
    if span < 0:
        return
    # Definition: count of window starts o*stride - pad whose window fits the padded input
    # (floor), or that start inside the input or the left padding (ceil).
    if ceil_mode:
        expected = -(-span // stride) + 1
        if (expected - 1) * stride >= in_size + pad:
            expected -= 1
    else:
        expected = span // stride + 1
    assert pool_output_size(in_size, kernel, stride, pad, ceil_mode) == expected


@given(st.integers(1, 25), st.integers(1, 6), st.integers(1, 5), st.data(), st.booleans(), st.booleans())
def test_pool_windows_match_brute_force(in_size, kernel, stride, data, ceil_mode, count_pad):
    from adapool import pool_output_size, pool_windows
    pad = data.draw(st.integers(0, kernel // 2))
    out = pool_output_size(in_size, kernel, stride, pad, ceil_mode)
    if out < 1:
        return
    starts, ends, factors = pool_windows(out, in_size, kernel, stride, pad, count_pad)
    for o in range(out):
        lo = o * stride - pad
        hi = min(lo + kernel, in_size + pad)
        inside = [i for i in range(lo, hi) if 0 <= i < in_size]
        assert list(range(starts[o], ends[o])) == inside
        assert factors[o] == (hi - lo if count_pad else len(inside))


@given(st.integers(1, 40), st.integers(1, 40))
def test_windows_containing_inverts_adaptive_windows(out_size, in_size):
    from adapool._windows import windows_containing
    starts, ends = adaptive_windows(out_size, in_size)
    lo, hi = windows_containing(starts, ends, in_size)
    for i in range(in_size):
        assert list(range(lo[i], hi[i])) == [o for o in range(out_size) if starts[o] <= i < ends[o]]
