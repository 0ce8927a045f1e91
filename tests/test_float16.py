"""The kernels' own float16 conversions (plain C, no F16C): exhaustive against NumPy."""
import numpy as np

from adapool import _kernels


def test_every_half_converts_exactly_to_double():
    bits = np.arange(2**16, dtype=np.uint16)
    ours = np.empty(bits.size, np.float64)
    _kernels._half_to_double(bits, ours)
    theirs = bits.view(np.float16).astype(np.float64)
    nan = np.isnan(theirs)
    np.testing.assert_array_equal(ours[~nan], theirs[~nan])
    assert np.all(np.isnan(ours[nan]))
    assert np.array_equal(np.signbit(ours), np.signbit(theirs))  # -0.0 and negative NaN keep their sign


def _round_trip(values):
    ours = np.empty(values.size, np.uint16)
    _kernels._double_to_half(np.ascontiguousarray(values, dtype=np.float64), ours)
    return ours.view(np.float16)


def test_double_to_half_rounds_to_nearest_even_like_numpy():
    rng = np.random.default_rng(0)
    halves = np.arange(2**16, dtype=np.uint16).view(np.float16).astype(np.float64)
    finite = halves[np.isfinite(halves)]
    finite = np.sort(finite)
    mids = (finite[:-1] + finite[1:]) / 2  # exact ties: must go to the even neighbour
    near = np.concatenate([np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf)])
    samples = np.concatenate([
        finite, mids, near,
        rng.standard_normal(200_000) * 10.0 ** rng.integers(-9, 6, 200_000),
        [65504.0, 65519.99, 65520.0, 1e300, -1e300, 2.0**-25, 2.0**-25 * 1.0000001, 2.0**-26, 5e-324, 0.0, -0.0],
    ])
    ours = _round_trip(samples)
    with np.errstate(over="ignore"):  # +-1e300 overflow to inf on purpose
        theirs = samples.astype(np.float16)
    assert np.array_equal(ours.view(np.uint16), theirs.view(np.uint16))


def test_double_to_half_special_values():
    out = _round_trip(np.array([np.inf, -np.inf, np.nan, -0.0]))
    assert out[0] == np.inf and out[1] == -np.inf and np.isnan(out[2])
    assert out[3] == 0 and np.signbit(out[3])
