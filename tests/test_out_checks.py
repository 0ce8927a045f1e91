"""The out= check for self-overlapping arrays (adapool._kernels.self_overlapping, in C since
2026-12-06) against the readable rule it implements and against the arrays' real addresses."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from numpy.lib.stride_tricks import as_strided

import adapool
from adapool._dispatch import kernels


def rule(a):
    """The rule in Python: the axes of more than one element, sorted by |stride|, each step
    past the whole extent of the smaller ones."""
    if a.size == 0:
        return False
    extent = a.itemsize
    for stride, n in sorted((abs(s), n) for s, n in zip(a.strides, a.shape) if n > 1):
        if stride < extent:
            return True
        extent = stride * n
    return False


def collides(a):
    """Whether two elements of ``a`` share a byte (from their offsets)."""
    offsets = sorted(sum(i * s for i, s in zip(idx, a.strides)) for idx in itertools.product(*map(range, a.shape)))
    return any(b - a_ < a.itemsize for a_, b in zip(offsets, offsets[1:]))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), nd=st.integers(0, 5), dtype=st.sampled_from([np.float16, np.float32, np.float64, np.int64]))
def test_self_overlapping_follows_the_rule_and_never_misses_a_collision(data, nd, dtype):
    shape = tuple(data.draw(st.integers(0, 4)) for _ in range(nd))
    itemsize = np.dtype(dtype).itemsize
    strides = tuple(itemsize * data.draw(st.integers(-12, 12)) for _ in range(nd))
    base = np.zeros(4096, dtype)
    start = 2048   # room on both sides for negative and positive strides
    a = as_strided(base[start:], shape=shape, strides=strides)
    got = kernels.self_overlapping(a)
    assert got == rule(a)
    if a.size and collides(a):
        assert got


@pytest.mark.parametrize("make,overlapping", [
    (lambda: np.empty((2, 3, 4, 5), np.float32), False),
    (lambda: np.empty((2, 4, 5, 3), np.float32).transpose(0, 3, 1, 2), False),   # channels-last
    (lambda: np.empty((4, 6, 8), np.float64)[::-1, ::2, 1::3], False),
    (lambda: np.empty((0, 3), np.float32), False),
    (lambda: np.broadcast_to(np.empty((1, 3), np.float32), (4, 3)), True),
    (lambda: as_strided(np.empty(16, np.float32), (4, 4), (4, 4)), True),
    (lambda: np.empty((1, 1, 1), np.float32), False),
])
def test_self_overlapping_named_layouts(make, overlapping):
    assert kernels.self_overlapping(make()) is overlapping


def test_an_out_that_overlaps_itself_is_refused_planned_or_not(rng=np.random.default_rng(0)):
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    bad = as_strided(np.zeros(64, np.float32), (1, 3, 2, 2), (0, 8, 8, 4))   # (c, h + 1) is (c + 1, h)
    for _ in range(2):   # the second call goes through the plan
        with pytest.raises(ValueError, match="overlap each other"):
            adapool.adaptive_avg_pool2d(x, 2, out=bad)
        good = np.empty((1, 2, 2, 3), np.float32).transpose(0, 3, 1, 2)
        assert adapool.adaptive_avg_pool2d(x, 2, out=good) is good
        np.testing.assert_array_equal(good, adapool.adaptive_avg_pool2d(x, 2))
