"""bfloat16 (ml_dtypes.bfloat16) for every op, forward and backward, against torch's bfloat16
results and against the float32 computation rounded once.

torch's CPU kernels compute bfloat16 in float32 and round once; adapool widens to float32 and
rounds once, so values agree to one bfloat16 ulp (rounding the same float32 sum, summed in
another order) and are mostly identical; maxima and indices agree exactly.
"""
from __future__ import annotations

import numpy as np
import pytest

import adapool
from adapool._bfloat16 import BFLOAT16, to_bfloat16, to_float32

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16_ULP = 2.0 ** -7   # spacing of bfloat16 values in [1, 2)

# (op, input shape, args, kwargs); backward is derived from the forward call
CALLS = [
    ("adaptive_avg_pool1d", (2, 5, 11), (4,), {}),
    ("adaptive_avg_pool2d", (2, 5, 15, 13), ((4, 5),), {}),
    ("adaptive_avg_pool3d", (2, 3, 7, 9, 11), ((3, 2, 5),), {}),
    ("adaptive_max_pool1d", (2, 5, 11), (4,), {"return_indices": True}),
    ("adaptive_max_pool2d", (2, 5, 15, 13), ((4, 5),), {"return_indices": True}),
    ("adaptive_max_pool3d", (2, 3, 7, 9, 11), ((3, 2, 5),), {"return_indices": True}),
    ("avg_pool1d", (2, 5, 11), (3, 2, 1), {}),
    ("avg_pool2d", (2, 5, 15, 13), (3, 2, 1), {"ceil_mode": True}),
    ("avg_pool2d", (2, 5, 15, 13), (2,), {"divisor_override": 3}),
    ("avg_pool3d", (2, 3, 7, 9, 11), (2,), {}),
    ("max_pool1d", (2, 5, 11), (3, 2, 1), {"return_indices": True}),
    ("max_pool2d", (2, 5, 15, 13), (3, 2, 1), {"return_indices": True, "dilation": 2}),
    ("max_pool3d", (2, 3, 7, 9, 11), (2,), {"return_indices": True}),
]
IDS = [f"{op}-{i}" for i, (op, *_) in enumerate(CALLS)]
# torch 2.13's adaptive_avg_pool3d rounds its bfloat16 sums as it goes (~4x the error of rounding
# once: measured against float64), and avg_pool3d has no bfloat16 kernel: for these the float32
# computation rounded once is the oracle, and torch's result only a loose cross-check
TORCH_ROUNDS_AS_IT_GOES = {"adaptive_avg_pool3d"}
TORCH_HAS_NO_BFLOAT16 = {"avg_pool3d"}


def torch_view(torch, a: np.ndarray):
    """A torch bfloat16 tensor over the same bits and strides."""
    return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)


def numpy_view(t) -> np.ndarray:
    import torch
    return t.detach().view(torch.int16).numpy().view(BFLOAT16)


def channels_last(a: np.ndarray) -> np.ndarray:
    order = (0,) + tuple(range(2, a.ndim)) + (1,)
    back = np.argsort(order)
    return np.ascontiguousarray(a.transpose(order)).transpose(back)


def bf16_input(shape, seed=0, layout="contiguous"):
    x = to_bfloat16(np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 3)
    return channels_last(x) if layout == "channels_last" else x


def assert_close_bf16(ours, theirs, ulps=1, exact_share=0.97):
    assert ours.dtype == BFLOAT16 and ours.shape == theirs.shape
    a, b = to_float32(ours).astype(np.float64), to_float32(theirs).astype(np.float64)
    assert (np.isnan(a) == np.isnan(b)).all()
    fin = ~np.isnan(a)
    # ulps relative to each value, and to the array's scale where sums cancel to near zero
    scale = np.abs(b[fin]).max(initial=0.0)
    np.testing.assert_allclose(a[fin], b[fin], rtol=ulps * BF16_ULP, atol=ulps * BF16_ULP * scale / 2)
    if a.size:
        assert np.mean(a[fin] == b[fin]) >= exact_share


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("op, shape, args, kw", CALLS, ids=IDS)
def test_forward_matches_torch_bfloat16(torch_oracle, op, shape, args, kw, layout):
    torch = torch_oracle
    x = bf16_input(shape, layout=layout)
    ours = getattr(adapool, op)(x, *args, **kw)
    # the float32 computation, rounded once, is the definition adapool follows
    want = getattr(adapool, op)(to_float32(x), *args, **kw)
    want = want[0] if isinstance(want, tuple) else want
    got = ours[0] if isinstance(ours, tuple) else ours
    assert np.array_equal(got.view(np.uint16), to_bfloat16(want).view(np.uint16))
    if op in TORCH_HAS_NO_BFLOAT16:
        with pytest.raises((NotImplementedError, RuntimeError), match="not implemented for 'BFloat16'"):
            getattr(torch.nn.functional, op)(torch_view(torch, x), *args, **kw)
        return
    theirs = getattr(torch.nn.functional, op)(torch_view(torch, x), *args, **kw)
    if op in TORCH_ROUNDS_AS_IT_GOES:
        exact = getattr(torch.nn.functional, op)(torch_view(torch, x).double(), *args, **kw).numpy()
        ours_err = np.abs(to_float32(got) - exact).max()
        assert ours_err <= np.abs(to_float32(numpy_view(theirs)) - exact).max()
        assert_close_bf16(got, numpy_view(theirs), ulps=8, exact_share=0.1)
        return
    if kw.get("return_indices"):
        (ours, ours_i), (theirs, theirs_i) = ours, theirs
        np.testing.assert_array_equal(ours_i, theirs_i.numpy())
        assert ours_i.dtype == np.int64
        assert np.array_equal(ours.view(np.uint16), numpy_view(theirs).view(np.uint16))   # maxima: exact
    assert_close_bf16(ours, numpy_view(theirs))
    # result layout: torch's
    theirs_cl = theirs.is_contiguous(memory_format=torch.channels_last) and not theirs.is_contiguous() \
        if theirs.dim() == 4 else None
    if theirs_cl is not None:
        assert (not ours.flags.c_contiguous) == theirs_cl


def _backward(op, x, args, kw, go, indices):
    fn = getattr(adapool, op + "_backward")
    adaptive = op.startswith("adaptive")
    if "max" in op:
        rest = () if adaptive else args
        extra = {k: v for k, v in kw.items() if k in ("dilation", "ceil_mode")}
        if not adaptive and "dilation" in extra:   # positional order: kernel, stride, padding, dilation
            return fn(go, indices, x.shape, *rest, dilation=extra["dilation"])
        return fn(go, indices, x.shape, *rest, **extra)
    if adaptive:
        return fn(go, x.shape)
    return fn(go, x.shape, *args, **kw)


@pytest.mark.parametrize("op, shape, args, kw", CALLS, ids=IDS)
def test_backward_matches_torch_autograd_bfloat16(torch_oracle, op, shape, args, kw):
    torch = torch_oracle
    x = bf16_input(shape, seed=1)
    y = getattr(adapool, op)(x, *args, **kw)
    y, indices = y if isinstance(y, tuple) else (y, None)
    go = bf16_input(y.shape, seed=2)
    ours = _backward(op, x, args, kw, go, indices)
    want = _backward(op, to_float32(x), args, kw, to_float32(go), indices)
    assert np.array_equal(ours.view(np.uint16), to_bfloat16(want).view(np.uint16))
    if op in TORCH_HAS_NO_BFLOAT16:
        return
    tx = torch_view(torch, x).clone().requires_grad_(True)
    ty = getattr(torch.nn.functional, op)(tx, *args, **kw)
    ty = ty[0] if isinstance(ty, tuple) else ty
    ty.backward(torch_view(torch, go))
    # torch adds overlapping contributions in bfloat16 (one rounding per add); adapool adds in
    # float32 or float64 and rounds once: a few ulps apart where windows overlap
    loose = op in TORCH_ROUNDS_AS_IT_GOES
    assert_close_bf16(ours, numpy_view(tx.grad), ulps=8 if loose else 4, exact_share=0.1 if loose else 0.6)
    # and adapool is no further from the float64 gradient than torch is
    x64 = torch_view(torch, x).double().requires_grad_(True)
    y64 = getattr(torch.nn.functional, op)(x64, *args, **kw)
    (y64[0] if isinstance(y64, tuple) else y64).backward(torch_view(torch, go).double())
    exact = x64.grad.numpy()
    assert np.abs(to_float32(ours) - exact).max() <= np.abs(to_float32(numpy_view(tx.grad)) - exact).max()


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_unpool_matches_torch_bfloat16(torch_oracle, nd):
    torch = torch_oracle
    shape = (2, 3) + (6, 7, 5)[:nd]
    x = bf16_input(shape, seed=3)
    pooled, indices = getattr(adapool, f"max_pool{nd}d")(x, 2, return_indices=True)
    ours = getattr(adapool, f"max_unpool{nd}d")(pooled, indices, 2, output_size=shape[2:])
    theirs = getattr(torch.nn.functional, f"max_unpool{nd}d")(torch_view(torch, pooled), torch.from_numpy(indices), 2,
                                                               output_size=shape[2:])
    assert ours.dtype == BFLOAT16
    assert np.array_equal(ours.view(np.uint16), numpy_view(theirs).view(np.uint16))   # a copy: exact
    go = bf16_input(ours.shape, seed=4)
    grad = getattr(adapool, f"max_unpool{nd}d_backward")(go, indices, pooled.shape, 2, output_size=shape[2:])
    tp = torch_view(torch, pooled).clone().requires_grad_(True)
    getattr(torch.nn.functional, f"max_unpool{nd}d")(tp, torch.from_numpy(indices), 2,
                                                      output_size=shape[2:]).backward(torch_view(torch, go))
    assert grad.dtype == BFLOAT16
    assert np.array_equal(grad.view(np.uint16), numpy_view(tp.grad).view(np.uint16))


@pytest.mark.parametrize("seed", range(6))
def test_fractional_max_pool_matches_torch_bfloat16_bit_for_bit(torch_oracle, seed):
    # the window starts are computed as c10::BFloat16 computes them (every operation rounded
    # to bfloat16): on long axes they differ from float32 arithmetic on the same samples
    torch = torch_oracle
    rng = np.random.default_rng(seed)
    nd = 2 if seed % 2 == 0 else 3
    spatial = tuple(int(v) for v in rng.integers(300, 600, nd)) if nd == 2 else (5, 40, 300)
    out = tuple(int(rng.integers(1, c - 1)) for c in spatial)
    x = bf16_input((2, 3) + spatial, seed=seed)
    samples = to_bfloat16(rng.random((2, 3, nd)).astype(np.float32))
    fn = f"fractional_max_pool{nd}d"

    def theirs():
        return getattr(torch.nn.functional, fn)(torch_view(torch, x), 2, output_size=out, return_indices=True,
                                                _random_samples=torch_view(torch, samples))
    try:
        y, i = getattr(adapool, fn)(x, 2, output_size=out, return_indices=True, _random_samples=samples)
    except ValueError as e:
        # bfloat16's spacing is 2-4 on such axes: i + u rounds, and a window can leave the input,
        # where torch's kernel fails its internal assert
        assert "window outside the input" in str(e)
        with pytest.raises(RuntimeError, match="INTERNAL ASSERT FAILED"):
            theirs()
        return
    ty, ti = theirs()
    np.testing.assert_array_equal(i, ti.numpy())
    assert y.dtype == BFLOAT16 and np.array_equal(y.view(np.uint16), numpy_view(ty).view(np.uint16))
    if nd == 2:   # float32 windows from the same samples are another answer: the emulation matters
        _, i32 = getattr(adapool, fn)(to_float32(x), 2, output_size=out, return_indices=True,
                                      _random_samples=to_float32(samples))
        assert not np.array_equal(i32, i)
    go = bf16_input(y.shape, seed=seed + 10)
    grad = getattr(adapool, fn + "_backward")(go, i, x.shape)
    tx = torch_view(torch, x).clone().requires_grad_(True)
    getattr(torch.nn.functional, fn)(tx, 2, output_size=out, _random_samples=torch_view(torch, samples)).backward(
        torch_view(torch, go))
    assert_close_bf16(grad, numpy_view(tx.grad), ulps=4, exact_share=0.9)


def test_fractional_bfloat16_samples_must_be_bfloat16_and_draws_are_reproducible():
    x = bf16_input((2, 3, 20, 20))
    with pytest.raises(TypeError, match="Expect _random_samples to have the same dtype as input"):
        adapool.fractional_max_pool2d(x, 2, output_size=9, _random_samples=np.full((2, 3, 2), 0.5, np.float32))
    a = adapool.fractional_max_pool2d(x, 2, output_size=9, rng=np.random.default_rng(7))
    b = adapool.fractional_max_pool2d(x, 2, output_size=9, rng=np.random.default_rng(7))
    assert a.dtype == BFLOAT16 and np.array_equal(a.view(np.uint16), b.view(np.uint16))


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("p", [1, 2, 3, 1.5, 0.4, float("inf"), -2])
def test_lp_pool_matches_torch_bfloat16(torch_oracle, nd, p):
    # torch's composition in bfloat16: each elementwise op rounded to bfloat16 (its cube and
    # reciprocal square round the square first), the pool rounded once
    torch = torch_oracle
    shape = (2, 5) + (17, 13)[:nd]
    x = to_bfloat16(np.abs(to_float32(bf16_input(shape, seed=3))) + np.float32(0.1))
    ours = getattr(adapool, f"lp_pool{nd}d")(x, p, 3, 2, True)
    theirs = getattr(torch.nn.functional, f"lp_pool{nd}d")(torch_view(torch, x), p, 3, 2, True)
    if p == -2:   # 1/p = -0.5: torch's bfloat16 rsqrt differs from float32's by an ulp on ~0.01% of values
        assert_close_bf16(ours, numpy_view(theirs), ulps=1, exact_share=0.9)
    else:
        assert np.array_equal(ours.view(np.uint16), numpy_view(theirs).view(np.uint16))
    go = bf16_input(ours.shape, seed=5)
    grad = getattr(adapool, f"lp_pool{nd}d_backward")(go, x, p, 3, 2, True)
    tx = torch_view(torch, x).clone().requires_grad_(True)
    getattr(torch.nn.functional, f"lp_pool{nd}d")(tx, p, 3, 2, True).backward(torch_view(torch, go))
    assert grad.dtype == BFLOAT16
    assert_close_bf16(grad, numpy_view(tx.grad), ulps=4, exact_share=0.6)


def test_out_takes_a_bfloat16_array():
    x = bf16_input((2, 5, 15, 13))
    out = np.empty((2, 5, 4, 5), BFLOAT16)
    assert adapool.adaptive_avg_pool2d(x, (4, 5), out=out) is out
    assert np.array_equal(out.view(np.uint16), adapool.adaptive_avg_pool2d(x, (4, 5)).view(np.uint16))
    with pytest.raises(TypeError, match="out has dtype float32, the result has bfloat16"):
        adapool.adaptive_avg_pool2d(x, (4, 5), out=np.empty((2, 5, 4, 5), np.float32))
    with pytest.raises(ValueError, match="out has shape"):
        adapool.avg_pool2d(x, 2, out=np.empty((2, 5, 4, 5), BFLOAT16))


def test_special_values_and_rounding_to_nearest_even():
    # 1 + 2**-8 is halfway between two bfloat16 values: the mean rounds to even (1.0)
    x = np.array([[[1.0, 1.0 + 2.0 ** -7, np.inf, -np.inf, np.nan, 1.0, 3.0e38, 3.3e38]]], np.float32)
    xb = to_bfloat16(x)
    y = to_float32(adapool.avg_pool1d(xb, 2))
    assert y[0, 0, 0] == 1.0                       # (1 + 1.0078125) / 2 = 1.00390625, a tie: to even
    assert np.isnan(y[0, 0, 1])                    # inf + -inf
    assert np.isnan(y[0, 0, 2])                    # NaN propagates
    assert np.isfinite(y[0, 0, 3]) and y[0, 0, 3] > 3e38   # summed in float64: no overflow to inf
    v, i = adapool.max_pool1d(xb, 2, return_indices=True)
    assert np.isnan(to_float32(v)[0, 0, 2]) and i[0, 0, 2] == 4


def test_widening_and_rounding_agree_with_ml_dtypes():
    bits = np.random.default_rng(0).integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    nan = np.isnan(x)
    with np.errstate(invalid="ignore"):
        theirs = x.astype(ml_dtypes.bfloat16)
    ours = to_bfloat16(x)
    np.testing.assert_array_equal(ours.view(np.uint16)[~nan], theirs.view(np.uint16)[~nan])
    assert np.isnan(to_float32(ours)[nan]).all()
    b = np.arange(2**16, dtype=np.uint16).view(BFLOAT16)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(to_float32(b).view(np.uint32), b.astype(np.float32).view(np.uint32))


def test_other_dtypes_are_untouched_and_bfloat16_errors_name_the_op():
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d\(\): Expected 3D or 4D tensor"):
        adapool.adaptive_avg_pool2d(bf16_input((4, 4)), 2)
    with pytest.raises(TypeError, match="not implemented for 'int32'"):
        adapool.adaptive_avg_pool2d(np.ones((1, 2, 4, 4), np.int32), 2)
