"""The pooling family and its gradients: adaptive avg/max over 1, 2 and 3 spatial dims,
avg_pool2d, and every backward op, against the float64 reference and torch (float64 autograd).
Tests are generated over an op table, as in bottleneck's suite, not hand-listed per op."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import adapool

from layouts import LAYOUTS, run_in_threads, sample_values, with_layout
from reference import (
    adaptive_avg_pool_backward_ref,
    adaptive_avg_pool_ref,
    adaptive_max_pool_backward_ref,
    adaptive_max_pool_ref,
    avg_pool2d_backward_ref,
    avg_pool2d_ref,
)

TOL = {np.float16: 1e-3, np.float32: 1e-6, np.float64: 1e-12}
DTYPES = [np.float16, np.float32, np.float64]
ADAPTIVE = [(nd, kind) for nd in (1, 2, 3) for kind in ("avg", "max")]


def op(kind, nd, backward=False):
    return getattr(adapool, f"adaptive_{kind}_pool{nd}d" + ("_backward" if backward else ""))


def torch_op(torch, kind, nd):
    return getattr(torch.nn.functional, f"adaptive_{kind}_pool{nd}d")


def assert_close(actual, expected, dtype, scale):
    tol = TOL[dtype]
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=tol, atol=tol * max(scale, 1e-30))


def resolve(output_size, spatial):
    if isinstance(output_size, int):
        return (output_size,) * len(spatial)
    return tuple(s if o is None else o for o, s in zip(output_size, spatial))


@st.composite
def adaptive_cases(draw, nd):
    """(x, output_size, batched): shapes with C >= 1 (empties have named tests); data that is
    normal, full of ties, or ties with NaN and -inf mixed in."""
    side = 17 if nd < 3 else 7
    batched = draw(st.booleans())
    shape = ((draw(st.integers(1, 3)),) if batched else ()) + (draw(st.integers(1, 4)),)
    shape += tuple(draw(st.integers(1, side)) for _ in range(nd))
    size = st.integers(0, side + 3)
    keep = st.none() if nd > 1 else st.nothing()  # torch's 1d ops take no None
    output_size = draw(st.one_of(size, st.tuples(*[st.one_of(size, keep)] * nd)))
    x = sample_values(draw, shape)
    return x, output_size, batched


def _layout(x, layout, batched):
    return with_layout(x, layout, batched=batched)


# ---- adaptive forward --------------------------------------------------------------------------

@pytest.mark.parametrize("nd, kind", ADAPTIVE)
@given(data=st.data(), dtype=st.sampled_from(DTYPES), layout=st.sampled_from(LAYOUTS))
def test_adaptive_matches_reference(nd, kind, data, dtype, layout):
    x, output_size, batched = data.draw(adaptive_cases(nd))
    x = x.astype(dtype)
    osize = resolve(output_size, x.shape[-nd:])
    xl = _layout(x, layout, batched)
    if kind == "avg":
        assume(not np.isnan(x).any() and not np.isinf(x).any())
        y = op(kind, nd)(xl, output_size)
        assert y.dtype == dtype and y.shape == x.shape[:-nd] + osize
        assert_close(y, adaptive_avg_pool_ref(x, osize), dtype, np.abs(x.astype(np.float64)).max())
    else:
        y, ind = op(kind, nd)(xl, output_size, return_indices=True)
        ref_y, ref_ind = adaptive_max_pool_ref(x, osize)
        assert y.dtype == dtype and ind.dtype == np.int64 and y.shape == ind.shape == ref_y.shape
        np.testing.assert_array_equal(y, ref_y)       # max picks an element: exact, NaN included
        np.testing.assert_array_equal(ind, ref_ind)
        np.testing.assert_array_equal(op(kind, nd)(xl, output_size), y)   # without indices


@pytest.mark.parametrize("nd, kind", ADAPTIVE)
@given(data=st.data(), layout=st.sampled_from(LAYOUTS))
def test_adaptive_matches_torch(torch_oracle, nd, kind, data, layout):
    torch = torch_oracle
    x, output_size, batched = data.draw(adaptive_cases(nd))
    if kind == "avg":
        assume(np.isfinite(x).all())
    xl = _layout(x, layout, batched)
    f = torch_op(torch, kind, nd)
    if kind == "avg":
        np.testing.assert_allclose(op(kind, nd)(xl, output_size), f(torch.from_numpy(x), output_size).numpy(),
                                   rtol=1e-12, atol=1e-12)
    else:
        y, ind = op(kind, nd)(xl, output_size, return_indices=True)
        ty, tind = f(torch.from_numpy(x), output_size, return_indices=True)
        np.testing.assert_array_equal(y, ty.numpy())
        np.testing.assert_array_equal(ind, tind.numpy())


@pytest.mark.parametrize("nd, kind", ADAPTIVE)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_result_layout_follows_torch(torch_oracle, nd, kind, layout):
    torch = torch_oracle
    x = with_layout(np.random.default_rng(0).standard_normal((2, 3) + (6,) * nd), layout, batched=True)
    y = op(kind, nd)(x, 3)
    t = torch.from_numpy(np.ascontiguousarray(x))
    if layout == "channels_last":
        t = t.permute(0, *range(2, nd + 2), 1).contiguous().permute(0, nd + 1, *range(1, nd + 1))
    ty = torch_op(torch, kind, nd)(t, 3)
    assert tuple(s // y.itemsize for s in y.strides) == ty.stride()


# ---- max pooling: torch's update rule, named cases ------------------------------------------

@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_max_ties_keep_first_nan_takes_last_all_neg_inf_reports_first(nd, layout):
    # One window over the whole (2,)*nd input, C = 3 channels exercising each rule.
    shape = (1, 3) + (2,) * nd
    x = np.zeros(shape)
    flat = x.reshape(1, 3, -1)
    flat[0, 0, :] = 5.0                                # all tied: first element
    flat[0, 1, :] = [1.0] + [np.nan] * (flat.shape[-1] - 1)  # NaNs: the last NaN
    flat[0, 2, :] = -np.inf                            # all -inf: first element
    y, ind = op("max", nd)(with_layout(x, layout), 1, return_indices=True)
    assert y[0, 0].ravel()[0] == 5.0 and ind[0, 0].ravel()[0] == 0
    assert np.isnan(y[0, 1].ravel()[0]) and ind[0, 1].ravel()[0] == flat.shape[-1] - 1
    assert y[0, 2].ravel()[0] == -np.inf and ind[0, 2].ravel()[0] == 0


def test_max_single_nan_wins_over_larger_values():
    x = np.array([[[1.0, np.nan, 7.0, 3.0]]])
    y, ind = adapool.adaptive_max_pool1d(x, 1, return_indices=True)
    assert np.isnan(y[0, 0, 0]) and ind[0, 0, 0] == 1


def test_max_indices_are_per_plane_in_channels_last_too():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    y, ind = adapool.adaptive_max_pool2d(with_layout(x, "channels_last"), (2, 2), return_indices=True)
    assert ind.max() < 20 and ind.min() >= 0
    np.testing.assert_array_equal(np.take_along_axis(x.reshape(2, 3, 20), ind.reshape(2, 3, 4), -1).reshape(y.shape), y)


def test_max_empty_results():
    y, ind = adapool.adaptive_max_pool2d(np.ones((0, 2, 4, 4)), 2, return_indices=True)
    assert y.shape == ind.shape == (0, 2, 2, 2)
    y, ind = adapool.adaptive_max_pool2d(np.ones((0, 4, 4)), 2, return_indices=True)  # unbatched C = 0
    assert y.shape == (0, 2, 2)
    y, ind = adapool.adaptive_max_pool3d(np.ones((2, 3, 4, 4, 4)), 0, return_indices=True)
    assert y.shape == ind.shape == (2, 3, 0, 0, 0)


# ---- avg_pool2d ----------------------------------------------------------------------------------

@st.composite
def pool2d_cases(draw):
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 4), st.integers(1, 4)), st.integers(1, 4)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    kwargs = dict(
        kernel_size=kernel, stride=stride, padding=padding, ceil_mode=draw(st.booleans()),
        count_include_pad=draw(st.booleans()),
        divisor_override=draw(st.one_of(st.none(), st.integers(-4, 6).filter(bool))),
    )
    batched = draw(st.booleans())
    shape = ((draw(st.integers(1, 3)),) if batched else ()) + (draw(st.integers(1, 4)),)
    shape += (draw(st.integers(kernel[0], 16)), draw(st.integers(kernel[1], 16)))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).standard_normal(shape) * 3, kwargs, batched


def _triple(kwargs):
    k = kwargs["kernel_size"]
    s = kwargs["stride"]
    s = k if s is None else ((s, s) if isinstance(s, int) else s)
    return k, s, kwargs["padding"]


@given(case=pool2d_cases(), dtype=st.sampled_from(DTYPES), layout=st.sampled_from(LAYOUTS))
def test_avg_pool2d_matches_reference(case, dtype, layout):
    x, kwargs, batched = case
    x = x.astype(dtype)
    k, s, p = _triple(kwargs)
    y = adapool.avg_pool2d(_layout(x, layout, batched), **kwargs)
    expected = avg_pool2d_ref(x, k, s, p, kwargs["ceil_mode"], kwargs["count_include_pad"], kwargs["divisor_override"])
    assert y.dtype == dtype and y.shape == expected.shape
    assert_close(y, expected, dtype, np.abs(x.astype(np.float64)).max())


@given(case=pool2d_cases(), layout=st.sampled_from(LAYOUTS))
def test_avg_pool2d_matches_torch(torch_oracle, case, layout):
    torch = torch_oracle
    x, kwargs, batched = case
    expected = torch.nn.functional.avg_pool2d(torch.from_numpy(x), **kwargs).numpy()
    y = adapool.avg_pool2d(_layout(x, layout, batched), **kwargs)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(kernel_size=3, stride=2, padding=1),                                   # the ResNet stem shape
        dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),          # padding excluded
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),                   # ceil_mode overhang
        dict(kernel_size=4, stride=3, padding=2, ceil_mode=True),                   # overhang + padding
        dict(kernel_size=4, stride=3, padding=2, ceil_mode=True, count_include_pad=False),
        dict(kernel_size=2, stride=5, padding=1, ceil_mode=True),                   # stride > kernel
        dict(kernel_size=3, divisor_override=2),
        dict(kernel_size=3, stride=1, padding=1, divisor_override=-3),              # negative divisor
        dict(kernel_size=(1, 5), stride=(2, 1), padding=(0, 2)),
    ],
)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_avg_pool2d_parameter_classes(torch_oracle, kwargs, layout):
    torch = torch_oracle
    x = np.random.default_rng(2).standard_normal((2, 5, 11, 13))
    expected = torch.nn.functional.avg_pool2d(torch.from_numpy(x), **kwargs).numpy()
    np.testing.assert_allclose(adapool.avg_pool2d(with_layout(x, layout), **kwargs), expected, rtol=1e-12, atol=1e-14)


def test_ceil_mode_overhang_is_not_counted_as_padding():
    # H = 4, kernel 3, stride 2, pad 1, ceil_mode: windows [-1,2), [1,4), [3,6) -> the last is
    # cut at H + pad = 5, so its divisor counts 2 rows (one real row, one pad), not 3.
    x = np.ones((1, 1, 4, 1))
    y = adapool.avg_pool2d(x, (3, 1), (2, 1), (1, 0), ceil_mode=True)
    np.testing.assert_allclose(y.ravel(), [2 / 3, 1.0, 1 / 2])


def test_avg_pool2d_output_layout_and_empty_batch():
    y = adapool.avg_pool2d(with_layout(np.ones((2, 8, 9, 9)), "channels_last"), 3)
    assert y.transpose(0, 2, 3, 1).flags.c_contiguous
    assert adapool.avg_pool2d(np.ones((0, 3, 5, 5)), 2).shape == (0, 3, 2, 2)


# ---- gradients --------------------------------------------------------------------------------

@pytest.mark.parametrize("nd, kind", ADAPTIVE)
@given(data=st.data(), dtype=st.sampled_from(DTYPES), layout=st.sampled_from(["contiguous", "channels_last", "strided_all"]))
def test_adaptive_backward_matches_reference(nd, kind, data, dtype, layout):
    x, output_size, batched = data.draw(adaptive_cases(nd))
    osize = resolve(output_size, x.shape[-nd:])
    rng = np.random.default_rng(0)
    go = rng.standard_normal(x.shape[:-nd] + osize).astype(dtype)
    gol = _layout(go, layout, batched)
    if kind == "avg":
        gi = op(kind, nd, True)(gol, x.shape)
        expected = adaptive_avg_pool_backward_ref(go, x.shape, nd)
    else:
        _, ind = op(kind, nd)(x, output_size, return_indices=True)
        gi = op(kind, nd, True)(gol, _layout(ind, layout, batched), x.shape)
        expected = adaptive_max_pool_backward_ref(go, ind, x.shape, nd)
    assert gi.dtype == dtype and gi.shape == x.shape
    scale = np.abs(go.astype(np.float64)).max(initial=0)
    if kind == "max":
        # Max backward adds in the output dtype, as torch does: one rounding per addition, so
        # the error bound grows with the most times one input element was selected.
        planes = ind.reshape(-1, int(np.prod(ind.shape[-nd:]))) if ind.size else []
        repeats = max((np.bincount(plane).max() for plane in planes), default=1)
        scale *= repeats
    assert_close(gi, expected, dtype, scale)


@pytest.mark.parametrize("nd, kind", ADAPTIVE)
@given(data=st.data())
def test_adaptive_backward_matches_torch_autograd(torch_oracle, nd, kind, data):
    torch = torch_oracle
    x, output_size, batched = data.draw(adaptive_cases(nd))
    assume(np.isfinite(x).all())
    assume(0 not in resolve(output_size, x.shape[-nd:]))  # torch's backward refuses empty outputs
    tx = torch.from_numpy(x).requires_grad_()
    f = torch_op(torch, kind, nd)
    if kind == "avg":
        ty = f(tx, output_size)
    else:
        ty, tind = f(tx, output_size, return_indices=True)
    go = torch.from_numpy(np.random.default_rng(1).standard_normal(tuple(ty.shape)))
    (expected,) = torch.autograd.grad(ty, tx, go)
    if kind == "avg":
        gi = op(kind, nd, True)(go.numpy(), x.shape)
    else:
        gi = op(kind, nd, True)(go.numpy(), tind.numpy(), x.shape)
    np.testing.assert_allclose(gi, expected.numpy(), rtol=1e-12, atol=1e-12)


@given(case=pool2d_cases(), dtype=st.sampled_from(DTYPES), layout=st.sampled_from(["contiguous", "channels_last"]))
def test_avg_pool2d_backward_matches_reference(case, dtype, layout):
    x, kwargs, batched = case
    y = avg_pool2d_ref(x, *_triple(kwargs), kwargs["ceil_mode"], kwargs["count_include_pad"], kwargs["divisor_override"])
    go = np.random.default_rng(3).standard_normal(y.shape).astype(dtype)
    gi = adapool.avg_pool2d_backward(_layout(go, layout, batched), x.shape, **kwargs)
    expected = avg_pool2d_backward_ref(go, x.shape, *_triple(kwargs), kwargs["ceil_mode"],
                                       kwargs["count_include_pad"], kwargs["divisor_override"])
    assert gi.dtype == dtype and gi.shape == x.shape
    assert_close(gi, expected, dtype, np.abs(go.astype(np.float64)).max(initial=0))


@given(case=pool2d_cases())
def test_avg_pool2d_backward_matches_torch_autograd(torch_oracle, case):
    torch = torch_oracle
    x, kwargs, batched = case
    tx = torch.from_numpy(x).requires_grad_()
    ty = torch.nn.functional.avg_pool2d(tx, **kwargs)
    go = torch.from_numpy(np.random.default_rng(4).standard_normal(tuple(ty.shape)))
    (expected,) = torch.autograd.grad(ty, tx, go)
    gi = adapool.avg_pool2d_backward(go.numpy(), x.shape, **kwargs)
    np.testing.assert_allclose(gi, expected.numpy(), rtol=1e-12, atol=1e-12)


def test_max_backward_repeated_indices_add_up():
    # Output larger than input: windows repeat, so one input element is the max of several.
    x = np.array([[[1.0, 3.0]]])
    y, ind = adapool.adaptive_max_pool1d(x, 5, return_indices=True)
    gi = adapool.adaptive_max_pool1d_backward(np.ones_like(y), ind, x.shape)
    np.testing.assert_array_equal(gi, [[[np.sum(ind == 0), np.sum(ind == 1)]]])
    assert gi.sum() == 5


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_backward_of_an_empty_output_is_zero(nd):
    shape = (2, 3) + (4,) * nd
    gi = op("avg", nd, True)(np.ones((2, 3) + (0,) * nd), shape)
    assert gi.shape == shape and not gi.any()
    gi = op("max", nd, True)(np.ones((2, 3) + (0,) * nd), np.zeros((2, 3) + (0,) * nd, np.int64), shape)
    assert gi.shape == shape and not gi.any()


def test_avg_backward_overlapping_windows_add_up():
    gi = adapool.adaptive_avg_pool1d_backward(np.ones((1, 1, 4)), (1, 1, 11))
    # windows of 11 -> 4: [0,3) [2,6) [5,9) [8,11): elements 2, 5, 8 are in two windows
    np.testing.assert_allclose(gi.ravel(), [1/3, 1/3, 1/3 + 1/4, 1/4, 1/4, 1/4 + 1/4, 1/4, 1/4, 1/4 + 1/3, 1/3, 1/3])


# ---- errors ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "fn, args, exc, message",
    [
        ("adaptive_avg_pool1d", ((4,), 2), ValueError,
         "Expected 2 to 3 dimensions, but got 1-dimensional tensor for argument #1 'self' (while checking arguments for adaptive_avg_pool1d)"),
        ("adaptive_avg_pool1d", ((2, 3, 5), (2, 3)), ValueError, "adaptive_avg_pool1d() argument 'output_size' should contain one int (got 2)"),
        ("adaptive_avg_pool1d", ((2, 3, 0), 2), ValueError, "with dimension 2 being empty"),
        ("adaptive_avg_pool1d", ((2, 3, 5), -1), ValueError, "must be greater than or equal to 0 but received {-1}"),
        ("adaptive_avg_pool3d", ((2, 3), 2), ValueError, "adaptive_avg_pool3d(): Expected 4D or 5D tensor, but got [2, 3]"),
        ("adaptive_avg_pool3d", ((1, 2, 3, 0, 4), 2), ValueError,
         "adaptive_avg_pool3d(): Expected input to have non-zero size for non-batch dimensions, but input has sizes [1, 2, 3, 0, 4] with dimension 3 being empty"),
        ("adaptive_avg_pool3d", ((1, 0, 3, 3, 4), 2), ValueError, "with dimension 1 being empty"),
        ("adaptive_avg_pool3d", ((1, 2, 3, 3, 4), (1, 2)), ValueError, "adaptive_avg_pool3d: output_size must be 3"),
        ("adaptive_max_pool2d", ((3,), 2), ValueError, "adaptive_max_pool2d(): Expected 3D or 4D tensor, but got: [3]"),
        ("adaptive_max_pool2d", ((1, 0, 4, 4), 2), ValueError,
         "adaptive_max_pool2d(): Expected input to have non-zero size for non-batch dimensions, but input has sizes [1, 0, 4, 4] with dimension 1 being empty"),
        ("adaptive_max_pool2d", ((2, 3, 5, 5), -1), ValueError, "Trying to create tensor with negative dimension -1: [2, 3, -1, -1]"),
        ("adaptive_max_pool2d", ((2, 3, 5, 5), (1, 2, 3)), ValueError, "adaptive_max_pool2d(): internal error: output_size.size() must be 2"),
        ("adaptive_max_pool3d", ((3,), 2), ValueError, "adaptive_max_pool3d(): Expected 4D or 5D tensor, but got: [3]"),
        ("adaptive_max_pool1d", ((1, 0, 4), 2), ValueError, "with dimension 1 being empty"),
        ("adaptive_max_pool2d", ((1, 3, 4, 4), 1.5), TypeError, "must be int or tuple of ints"),
        ("adaptive_max_pool1d", ((1, 3, 4), (None,)), TypeError, "found element of type NoneType at pos 0"),
        ("avg_pool2d", ((2, 3, 5, 7), 0), ValueError, "stride should not be zero"),
        ("avg_pool2d", ((2, 3, 5, 7), 3, 0), ValueError, "stride should not be zero"),
        ("avg_pool2d", ((2, 3, 5, 7), 3, 1, -1), ValueError, "pad must be non-negative, but got pad: -1"),
        ("avg_pool2d", ((2, 3, 5, 7), 3, 1, 2), ValueError,
         "pad should be at most half of effective kernel size, but got pad=2, kernel_size=3 and dilation=1"),
        ("avg_pool2d", ((2, 3, 5, 7), 3, None, 0, False, True, 0), ValueError, "divisor must be not zero"),
        ("avg_pool2d", ((3, 5, 7), (6, 1)), ValueError,
         "Given input size: (3x5x7). Calculated output size: (3x0x7). Output size is too small"),
        ("avg_pool2d", ((2, 3, 5, 7), (1, 2, 3)), ValueError, "avg_pool2d: kernel_size must either be a single int, or a tuple of two ints"),
        ("avg_pool2d", ((2, 3, 5, 7), 3, (1, 2, 3)), ValueError,
         "avg_pool2d: stride must either be omitted, a single int, or a tuple of two ints"),
        ("avg_pool2d", ((2, 3, 5, 7), 3, 1, (1, 1, 1)), ValueError, "avg_pool2d: padding must either be a single int, or a tuple of two ints"),
        ("avg_pool2d", ((2, 0, 5, 7), 2), ValueError,
         "Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for input, but got:[2, 0, 5, 7]"),
        ("avg_pool2d", ((5, 7), 2), ValueError, "Expected 3D or 4D (batch mode) tensor"),
        ("avg_pool2d", ((2, 3, 5, 7), 2.5), TypeError, "avg_pool2d(): argument 'kernel_size' (position 2) must be tuple of ints, not float"),
        ("avg_pool2d", ((2, 3, 5, 7), (True, 2)), TypeError, "found element of type bool at pos 0"),
        ("avg_pool2d", ((2, 3, 5, 7), 3, None, 0, False, True, 2.5), TypeError, "argument 'divisor_override' must be int, not float"),
        ("avg_pool2d", ((2, 3, 5, 7), -1, 1), ValueError, "kernel size should be greater than zero, but got kH: -1 kW: -1"),
        ("avg_pool2d", ((2, 3, 5, 7), 2, -1), ValueError, "stride should be greater than zero, but got dH: -1 dW: -1"),
    ],
)
def test_errors(fn, args, exc, message):
    shape, *rest = args
    with pytest.raises(exc) as info:
        getattr(adapool, fn)(np.ones(shape), *rest)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "fn, shape, rest",
    [
        ("adaptive_avg_pool3d", (2, 3), (2,)),
        ("adaptive_avg_pool3d", (1, 2, 3, 0, 4), (2,)),
        ("adaptive_avg_pool3d", (1, 0, 3, 3, 4), (2,)),
        ("adaptive_avg_pool3d", (1, 2, 3, 3, 4), ((1, 2),)),
        ("adaptive_max_pool2d", (3,), (2,)),
        ("adaptive_max_pool2d", (1, 0, 4, 4), (2,)),
        ("adaptive_max_pool2d", (2, 3, 5, 5), (-1,)),
        ("adaptive_max_pool2d", (2, 3, 5, 5), ((1, 2, 3),)),
        ("adaptive_max_pool3d", (1, 3, 0, 4, 4), (2,)),
        ("adaptive_avg_pool1d", (2, 3, 5), ((2, 3),)),
        ("avg_pool2d", (2, 3, 5, 7), (0,)),
        ("avg_pool2d", (2, 3, 5, 7), (3, 1, -1)),
        ("avg_pool2d", (2, 3, 5, 7), (3, 1, 2)),
        ("avg_pool2d", (3, 5, 7), ((6, 1),)),
        ("avg_pool2d", (2, 3, 5, 7), ((1, 2, 3),)),
        ("avg_pool2d", (2, 0, 5, 7), (2,)),
    ],
)
def test_error_messages_match_torch(torch_oracle, fn, shape, rest):
    torch = torch_oracle
    with pytest.raises(RuntimeError) as theirs:
        getattr(torch.nn.functional, fn)(torch.ones(shape), *rest)
    with pytest.raises(ValueError) as ours:
        getattr(adapool, fn)(np.ones(shape), *rest)
    assert str(ours.value) == str(theirs.value).splitlines()[0]


@pytest.mark.parametrize(
    "fn, shape, output_size",
    [
        ("adaptive_avg_pool2d", (4, 4), (2, None)),
        ("adaptive_avg_pool2d", (4, 4), (2, 2)),
        ("adaptive_avg_pool2d", (4,), [2, 2]),
        ("adaptive_avg_pool2d", (1, 2, 4, 4), (1, 2, 3, 4)),
        ("adaptive_max_pool2d", (4, 4), (None, 2)),
        ("adaptive_max_pool2d", (2, 3, 4), (1, 1, 1)),
        ("adaptive_avg_pool3d", (4, 4, 4), (2, None, 2)),
        ("adaptive_avg_pool3d", (4, 4), (2, 2, 2)),
        ("adaptive_max_pool3d", (4, 4, 4), (2, 2, 2)),
        ("adaptive_max_pool3d", (1, 2, 4, 4, 4), (1, 1, 1, 1, 1)),
    ],
)
def test_output_size_longer_than_the_input_rank_gets_torchs_python_error(torch_oracle, fn, shape, output_size):
    # torch's Python wrappers refuse these before its C++ rank check runs (_list_with_default)
    with pytest.raises(ValueError) as theirs:
        getattr(torch_oracle.nn.functional, fn)(torch_oracle.ones(shape), output_size)
    with pytest.raises(ValueError) as ours:
        getattr(adapool, fn)(np.ones(shape), output_size)
    assert str(ours.value) == str(theirs.value)
    assert str(ours.value).startswith("Input dimension should be at least")


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_max_backward_rejects_bad_indices(nd):
    shape = (2, 3) + (5,) * nd
    x = np.random.default_rng(0).standard_normal(shape)
    y, ind = op("max", nd)(x, 2, return_indices=True)
    go = np.ones_like(y)
    backward = op("max", nd, True)
    for bad in (-1, 5**nd, 2**62):
        wrong = ind.copy()
        wrong.flat[3] = bad
        with pytest.raises(ValueError, match="found an index outside"):
            backward(go, wrong, shape)
    with pytest.raises(TypeError, match="indices must be int64"):
        backward(go, ind.astype(np.int32), shape)
    with pytest.raises(TypeError, match="indices must be int64"):
        backward(go, ind.astype(np.float64), shape)
    with pytest.raises(ValueError, match="indices have shape"):
        backward(go, ind[..., :1], shape)


@pytest.mark.parametrize(
    "call",
    [
        lambda: adapool.adaptive_avg_pool2d_backward(np.ones((2, 3, 4, 4)), (2, 4, 9, 9)),     # C mismatch
        lambda: adapool.adaptive_avg_pool2d_backward(np.ones((2, 3, 4, 4)), (3, 9, 9)),        # rank mismatch
        lambda: adapool.avg_pool2d_backward(np.ones((2, 3, 4, 4)), (2, 3, 9, 9), 3),           # forward gives 3x3
        lambda: adapool.adaptive_max_pool1d_backward(np.ones((2, 3, 4)), np.zeros((2, 3, 4), np.int64), (2, 5, 9)),
    ],
)
def test_backward_rejects_grad_output_of_the_wrong_shape(call):
    with pytest.raises(ValueError, match="grad_output has shape"):
        call()


@pytest.mark.parametrize("bad", [(2, 3, 0, 4), (2, 3, -1, 4), (3, 4), "abc", (2, 3, 4.0, 4)])
def test_backward_rejects_bad_input_shapes(bad):
    with pytest.raises((ValueError, TypeError)):
        adapool.adaptive_avg_pool2d_backward(np.ones((2, 3, 2, 2)), bad)


# ---- threads and builds ----------------------------------------------------------------------

def _all_ops(x, go_avg, go_max, ind):
    """Every kind of kernel call on x (N, C, D, H, W), in a fixed order."""
    pooled = adapool.avg_pool2d(x[:, :, 0], (4, 5), (3, 3), 1)
    return [
        adapool.adaptive_avg_pool3d(x, (3, 4, 5)),
        *adapool.adaptive_max_pool3d(x, (3, 4, 5), return_indices=True),
        adapool.avg_pool2d(x[:, :, 0], 3, 2, 1, ceil_mode=True),
        adapool.adaptive_avg_pool3d_backward(go_avg, x.shape),
        adapool.adaptive_max_pool3d_backward(go_max, ind, x.shape),
        pooled,
        adapool.avg_pool2d_backward(pooled, x[:, :, 0].shape, (4, 5), (3, 3), 1),
    ]


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_every_op_is_bitwise_independent_of_thread_count(layout):
    rng = np.random.default_rng(8)
    x = with_layout(rng.standard_normal((3, 40, 9, 10, 11)).astype(np.float32), layout)
    go = rng.standard_normal((3, 40, 3, 4, 5)).astype(np.float32)
    _, ind = adapool.adaptive_max_pool3d(x, (3, 4, 5), return_indices=True)
    try:
        runs = []
        for n in (1, 2, 3):
            adapool.set_num_threads(n)
            runs.append(_all_ops(x, go, go, ind))
    finally:
        adapool.set_num_threads(None)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            np.testing.assert_array_equal(a, b)


def test_every_output_is_written_with_more_threads_than_cores():
    # Regression: the per-thread [begin, end) ranges were once shared between threads (set
    # through a pointer inside prange), so two threads could take the same range and leave
    # another range of outputs unwritten. In a normal build the window is too narrow to hit
    # reliably; under the sanitizer build in .ci/run (slower code) this and the thread-count
    # tests caught it in 2 runs of 3. Oversubscribed teams widen the window; a buffer just
    # freed full of NaN makes an unwritten output visible.
    rng = np.random.default_rng(12)
    x = rng.standard_normal((1, 16, 100, 100)).astype(np.float32)
    expected = adaptive_avg_pool_ref(x, (10, 10))
    try:
        adapool.set_num_threads(8)
        for _ in range(30):
            poison = np.full((1, 16, 10, 10), np.nan, np.float32)
            del poison                                      # the result may reuse this memory
            y = adapool.adaptive_avg_pool2d(x, (10, 10))
            assert not np.isnan(y).any()
            np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
    finally:
        adapool.set_num_threads(None)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: adapool.adaptive_avg_pool2d(x, (2**62, 2**62)),        # size product overflows
        lambda x: adapool.adaptive_avg_pool2d(x, (2**40, 1)),            # 8 TiB: MemoryError
        lambda x: adapool.adaptive_avg_pool2d(x, 2**70),                 # beyond int64
        lambda x: adapool.adaptive_max_pool3d(x, (2**30,) * 3),
        lambda x: adapool.avg_pool2d(x, 2**62),                          # window arithmetic would overflow
        lambda x: adapool.avg_pool2d(x, 2, 2**62),
        lambda x: adapool.avg_pool2d(x, 2**62, 1, 2**61),
        lambda x: adapool.avg_pool2d(x, 2, divisor_override=2**70),
        lambda x: adapool.adaptive_avg_pool2d_backward(np.ones((1, 2, 3, 3), np.float32), (1, 2, 2**62, 2**62)),
        lambda x: adapool.adaptive_max_pool2d_backward(np.ones((1, 2, 3, 3), np.float32), np.zeros((1, 2, 3, 3), np.int64), (1, 2, 2**62, 2**62)),
        lambda x: adapool.avg_pool2d_backward(np.ones((1, 2, 1, 1), np.float32), (1, 2, 2**62, 2**62), 2**62),
    ],
)
def test_huge_sizes_are_clean_errors(call):
    x = np.ones((1, 2, 5, 6), np.float32)
    with pytest.raises((ValueError, MemoryError)):
        call(x)


def test_huge_but_valid_divisor_override():
    y = adapool.avg_pool2d(np.ones((1, 2, 5, 6)), 2, divisor_override=2**62)
    np.testing.assert_allclose(y, 4 / 2**62)


def test_every_op_from_many_python_threads_matches_serial():
    rng = np.random.default_rng(21)
    jobs = []
    for i in range(6):
        x = rng.standard_normal((2, 24, 6 + i, 9, 10 + i)).astype(np.float32)
        go = rng.standard_normal((2, 24, 3, 4, 5)).astype(np.float32)
        _, ind = adapool.adaptive_max_pool3d(x, (3, 4, 5), return_indices=True)
        jobs.append((x, go, ind))
    expected = [_all_ops(x, go, go, ind) for x, go, ind in jobs]
    results = run_in_threads([lambda job=job: _all_ops(job[0], job[1], job[1], job[2]) for job in jobs], repeat=10)
    for got, want in zip(results, expected):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


def test_changing_the_thread_count_while_other_threads_compute():
    """set_num_threads from one Python thread while others run every op: each call reads the
    count once, so results stay identical to serial calls (they don't depend on the count)."""
    import threading
    rng = np.random.default_rng(22)
    x = rng.standard_normal((2, 40, 9, 11, 13)).astype(np.float32)
    go = rng.standard_normal((2, 40, 3, 4, 5)).astype(np.float32)
    _, ind = adapool.adaptive_max_pool3d(x, (3, 4, 5), return_indices=True)
    expected = _all_ops(x, go, go, ind)
    stop = threading.Event()

    def toggle():
        k = 0
        while not stop.is_set():
            adapool.set_num_threads(1 + k % 4)
            k += 1
    toggler = threading.Thread(target=toggle)
    toggler.start()
    try:
        results = run_in_threads([lambda: _all_ops(x, go, go, ind)] * 4, repeat=8)
    finally:
        stop.set()
        toggler.join()
        adapool.set_num_threads(None)
    for got in results:
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)


# ---- out= (adapool's addition to the average forward ops) -----------------------------------

AVG_FORWARD = [
    ("adaptive_avg_pool1d", (2, 5, 23), (7,)),
    ("adaptive_avg_pool2d", (2, 5, 11, 13), ((4, 5),)),
    ("adaptive_avg_pool3d", (2, 3, 7, 9, 11), ((3, 4, 5),)),
    ("avg_pool2d", (2, 5, 11, 13), (3, 2, 1, True)),
]


@pytest.mark.parametrize("fn, shape, args", AVG_FORWARD)
@pytest.mark.parametrize("out_layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_out_any_layout_gives_the_same_bits(fn, shape, args, out_layout, dtype):
    x = np.random.default_rng(5).standard_normal(shape).astype(dtype)
    expected = getattr(adapool, fn)(x, *args)
    out = with_layout(np.full(expected.shape, np.nan, dtype), out_layout, batched=True)
    result = getattr(adapool, fn)(x, *args, out=out)
    assert result is out
    np.testing.assert_array_equal(out, expected)


def test_out_unbatched():
    x = np.random.default_rng(6).standard_normal((5, 11, 13))
    out = np.empty((5, 4, 5))
    adapool.adaptive_avg_pool2d(x, (4, 5), out=out)
    np.testing.assert_array_equal(out, adapool.adaptive_avg_pool2d(x, (4, 5)))


@pytest.mark.parametrize(
    "make_out, exc, message",
    [
        (lambda x: np.empty((2, 5, 4, 4), np.float32), ValueError, "out has shape"),
        (lambda x: np.empty((2, 5, 4, 5), np.float64), TypeError, "out has dtype float64"),
        (lambda x: np.empty((2, 5, 4, 5), np.float32).tolist(), TypeError, "out must be a numpy.ndarray"),
        (lambda x: _read_only(np.empty((2, 5, 4, 5), np.float32)), ValueError, "out is read-only"),
        (lambda x: x[:, :, :4, :5], ValueError, "out overlaps the input"),
        (lambda x: np.empty((2, 5, 4, 5), ">f4"), TypeError, "out has dtype >f4"),
    ],
)
def test_out_is_validated(make_out, exc, message):
    x = np.random.default_rng(7).standard_normal((2, 5, 11, 13)).astype(np.float32)
    before = x.copy()
    with pytest.raises(exc, match=message):
        adapool.adaptive_avg_pool2d(x, (4, 5), out=make_out(x))
    np.testing.assert_array_equal(x, before)   # nothing was written into the input


def _read_only(a):
    a.flags.writeable = False
    return a


def test_empty_out_is_accepted():
    """numpy gives empty arrays all-zero strides: that is not an overlapping out=."""
    out = np.empty((0, 3, 2))
    assert adapool.adaptive_avg_pool1d(np.ones((0, 3, 5)), 2, out=out) is out
    full = np.lib.stride_tricks.as_strided(np.zeros(1), (1, 1, 2, 2), (0, 0, 0, 0))
    with pytest.raises(ValueError, match="overlap each other"):
        adapool.adaptive_avg_pool2d(np.arange(16.).reshape(1, 1, 4, 4), 2, out=full)
