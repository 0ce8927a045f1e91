"""The planned fast path of the adaptive forward ops (adapool/_pooling.py, _PLANS): a repeated
call reuses its validation and window table; nothing a fresh validation would refuse or
convert gets through it."""
import numpy as np
import pytest

import adapool
from adapool import _pooling

OPS = [("adaptive_avg_pool1d", 1), ("adaptive_avg_pool2d", 2), ("adaptive_avg_pool3d", 3),
       ("adaptive_max_pool1d", 1), ("adaptive_max_pool2d", 2), ("adaptive_max_pool3d", 3)]


def call(op, x, size, **kw):
    return getattr(adapool, op)(x, size, **kw)


@pytest.mark.parametrize("op,nd", OPS)
@pytest.mark.parametrize("batched", [True, False])
def test_a_planned_call_gives_the_same_bits(op, nd, batched, rng):
    shape = ((2,) if batched else ()) + (3,) + (7, 9, 11)[:nd]
    x = rng.standard_normal(shape).astype(np.float32)
    _pooling._PLANS.clear()
    first = call(op, x, 3, **({"return_indices": True} if "max" in op else {}))
    assert len(_pooling._PLANS) == 1   # planned
    again = call(op, x.copy(), 3, **({"return_indices": True} if "max" in op else {}))
    for a, b in zip(first if isinstance(first, tuple) else (first,), again if isinstance(again, tuple) else (again,)):
        np.testing.assert_array_equal(a, b)
        assert a.shape == b.shape and a.strides == b.strides


def test_channels_last_and_float16_plans(rng):
    x = np.ascontiguousarray(rng.standard_normal((2, 5, 6, 16)).astype(np.float16)).transpose(0, 3, 1, 2)
    _pooling._PLANS.clear()
    a = adapool.adaptive_avg_pool2d(x, (3, 4))
    b = adapool.adaptive_avg_pool2d(x, (3, 4))
    np.testing.assert_array_equal(a, b)
    assert a.strides == b.strides and b.transpose(0, 2, 3, 1).flags.c_contiguous   # channels-last result


def test_arguments_validation_refuses_are_refused_after_a_plan(rng):
    x = rng.standard_normal((1, 2, 8, 8)).astype(np.float32)
    adapool.adaptive_avg_pool2d(x, 1)   # plans output_size=1 for this key
    with pytest.raises(TypeError):
        adapool.adaptive_avg_pool2d(x, True)    # True == 1 and hashes alike: validated afresh
    with pytest.raises(ValueError):
        adapool.adaptive_avg_pool2d(x, -1)
    np.testing.assert_array_equal(adapool.adaptive_avg_pool2d(x, np.int64(1)), adapool.adaptive_avg_pool2d(x, 1))


def test_misaligned_and_byte_swapped_inputs_take_the_checked_path(rng):
    x = rng.standard_normal((1, 2, 8, 8)).astype(np.float32)
    want = adapool.adaptive_avg_pool2d(x, 3)   # planned for (1, 2, 8, 8) float32 C order
    raw = np.empty(x.nbytes + 1, np.uint8)
    shifted = raw[1:].view(np.float32).reshape(x.shape)   # same shape, strides and dtype, misaligned
    assert not shifted.flags.aligned
    shifted[...] = x
    np.testing.assert_array_equal(adapool.adaptive_avg_pool2d(shifted, 3), want)
    np.testing.assert_array_equal(adapool.adaptive_avg_pool2d(x.astype(">f4"), 3), want)


def test_the_plan_cache_stays_bounded(rng):
    _pooling._PLANS.clear()
    for w in range(1, _pooling._PLANS_MAX + 50):
        adapool.adaptive_avg_pool1d(np.ones((1, w), np.float32), 1)
    assert 0 < len(_pooling._PLANS) <= _pooling._PLANS_MAX


OUT_CALLS = [
    ("adaptive_avg_pool2d", lambda x, **k: adapool.adaptive_avg_pool2d(x, 3, **k)),
    ("adaptive_avg_pool1d", lambda x, **k: adapool.adaptive_avg_pool1d(x[:, :, 0], 3, **k)),
    ("avg_pool2d", lambda x, **k: adapool.avg_pool2d(x, 3, 2, 1, **k)),
    ("avg_pool1d", lambda x, **k: adapool.avg_pool1d(x[:, :, 0], 3, 2, 1, **k)),
    ("avg_pool3d", lambda x, **k: adapool.avg_pool3d(x[:, :, None], (1, 3, 3), **k)),
]


@pytest.mark.parametrize("name, fn", OUT_CALLS, ids=[c[0] for c in OUT_CALLS])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_out_calls_are_planned_and_checked_every_time(name, fn, layout, rng, monkeypatch):
    # the plan does not depend on out=: an out= call plans its key, and a planned key serves
    # out= calls after out's own checks, every call
    x = rng.standard_normal((2, 16, 9, 8)).astype(np.float32)
    if layout == "channels_last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    want = fn(x.copy())
    _pooling._PLANS.clear()
    out = np.full(want.shape, np.nan, np.float32)
    assert fn(x, out=out) is out
    assert len(_pooling._PLANS) == 1
    (plan,) = _pooling._PLANS.values()
    assert plan.direct is None   # an out= call never becomes the plan's recorded call
    again = np.full(want.shape, np.nan, np.float32)
    with monkeypatch.context() as m:   # the input is not validated or planned again: only out is checked
        m.setattr(_pooling, "as_float_array", _unplanned)
        assert fn(x, out=again) is again and plan.direct is None
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(again, want)
    with pytest.raises(ValueError, match="shape"):
        fn(x, out=np.empty(want.shape[:-1] + (want.shape[-1] + 1,), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        fn(x, out=np.empty(want.shape, np.float64))
    with pytest.raises(TypeError, match="ndarray"):
        fn(x, out=want.tolist())
    frozen = np.empty(want.shape, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fn(x, out=frozen)
    raw = np.empty(want.nbytes + 1, np.uint8)
    with pytest.raises(ValueError, match="aligned"):
        fn(x, out=raw[1:].view(np.float32).reshape(want.shape))
    # an out inside the input's own buffer (the input has the planned key's strides)
    store = np.zeros(x.size + want.size, np.float32)
    inside = np.lib.stride_tricks.as_strided(store, x.shape, x.strides)
    assert inside.strides == x.strides and np.shares_memory(inside, store[:want.size])
    with pytest.raises(ValueError, match="overlap"):
        fn(inside, out=store[:want.size].reshape(want.shape))
    assert len(_pooling._PLANS) == 1


def _unplanned(*args, **kwargs):
    raise AssertionError("a planned call validated its input again")


@pytest.mark.parametrize("name, fn", OUT_CALLS, ids=[c[0] for c in OUT_CALLS])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_out_calls_between_planned_calls_change_nothing(name, fn, layout, rng):
    # a plan first made and recorded without out=, then out= calls into other layouts (C order,
    # channels-last, strided), then calls without out= again: the same bits throughout, and the
    # recorded call what the first calls recorded
    x = rng.standard_normal((1, 8, 9, 8)).astype(np.float32)
    if layout == "channels_last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    _pooling._PLANS.clear()
    want = fn(x)
    fn(x)
    (plan,) = _pooling._PLANS.values()
    recorded = plan.direct and plan.direct.kernel
    shape = want.shape
    perm = (0,) + tuple(range(2, len(shape))) + (1,)
    outs = [np.empty(shape, np.float32),
            np.empty(tuple(shape[i] for i in perm), np.float32).transpose(np.argsort(perm)),
            np.empty(shape[:-1] + (2 * shape[-1],), np.float32)[..., ::2]]
    for out in outs:
        assert fn(x, out=out) is out
        np.testing.assert_array_equal(out, want)
    for _ in range(2):
        y = fn(x)
        np.testing.assert_array_equal(y, want)
        assert y.strides == want.strides
    assert (plan.direct and plan.direct.kernel) == recorded
    # an unaligned input of the planned key's shape, strides and dtype: the checked path
    raw = np.empty(x.nbytes + 1, np.uint8)
    shifted = np.lib.stride_tricks.as_strided(raw[1:].view(np.float32), x.shape, x.strides)
    shifted[...] = x
    assert not shifted.flags.aligned
    into = np.empty(shape, np.float32)
    assert fn(shifted, out=into) is into
    np.testing.assert_array_equal(into, want)


@pytest.mark.parametrize("args", [dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=(3, 2), stride=None),
                                  dict(kernel_size=2, ceil_mode=True, count_include_pad=False),
                                  dict(kernel_size=3, stride=(2, 1), padding=(1, 0), divisor_override=-5)])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("batched", [True, False])
def test_avg_pool2d_plans_give_the_same_bits(args, layout, batched, rng):
    from layouts import with_layout
    shape = ((2,) if batched else ()) + (12, 9, 11)
    x = with_layout(rng.standard_normal(shape).astype(np.float32), layout, batched)
    _pooling._PLANS.clear()
    first = adapool.avg_pool2d(x, **args)
    assert len(_pooling._PLANS) == 1   # planned
    again = adapool.avg_pool2d(x, **args)
    np.testing.assert_array_equal(first, again)
    assert first.strides == again.strides
    x2 = x.copy(order="K")   # another array, same key: the plan runs on it, not on x
    x2 *= 2
    assert x2.strides == x.strides
    np.testing.assert_allclose(adapool.avg_pool2d(x2, **args), 2 * first, rtol=1e-6)
    assert len(_pooling._PLANS) == 1


def test_avg_pool2d_arguments_validation_refuses_are_refused_after_a_plan(rng):
    x = rng.standard_normal((1, 2, 8, 8)).astype(np.float32)
    want = adapool.avg_pool2d(x, 2)   # planned
    with pytest.raises(TypeError):
        adapool.avg_pool2d(x, True)    # True == 1 and hashes alike: validated afresh
    with pytest.raises(ValueError):
        adapool.avg_pool2d(x, 2, padding=2)   # padding over half the kernel
    with pytest.raises(ValueError):
        adapool.avg_pool2d(x, 2, divisor_override=0)
    np.testing.assert_array_equal(adapool.avg_pool2d(x, np.int64(2)), want)
    np.testing.assert_array_equal(adapool.avg_pool2d(x, [2, 2]), want)
    out = np.empty_like(want)
    assert adapool.avg_pool2d(x, 2, out=out) is out   # out= never takes the planned path
    np.testing.assert_array_equal(out, want)


# ---- the gradients' plans ---------------------------------------------------------------------

GRADS = [("adaptive_avg_pool1d", 1), ("adaptive_avg_pool2d", 2), ("adaptive_avg_pool3d", 3),
         ("adaptive_max_pool1d", 1), ("adaptive_max_pool2d", 2), ("adaptive_max_pool3d", 3),
         ("avg_pool2d", 2)]


def grad_call(op, go, ind, shape, **kw):
    f = getattr(adapool, op + "_backward")
    return f(go, ind, shape) if "max" in op else f(go, shape, **kw)


def forward(op, x):
    if op == "avg_pool2d":
        return adapool.avg_pool2d(x, 3, stride=2, padding=1), None
    if "max" in op:
        return getattr(adapool, op)(x, 3, return_indices=True)
    return getattr(adapool, op)(x, 3), None


@pytest.mark.parametrize("op,nd", GRADS)
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_a_planned_gradient_gives_the_same_bits(op, nd, batched, layout, rng, monkeypatch):
    from layouts import with_layout
    shape = ((2,) if batched else ()) + (5,) + (7, 9, 11)[:nd]
    x = with_layout(rng.standard_normal(shape).astype(np.float32), layout if nd < 3 else "contiguous", batched)
    y, ind = forward(op, x)
    go = with_layout(rng.standard_normal(y.shape).astype(np.float32), layout if nd < 3 else "contiguous", batched)
    if ind is not None and go.strides != y.strides:
        ind = np.ascontiguousarray(ind)   # (the fast path wants both in one layout; this one copies)
    kw = dict(kernel_size=3, stride=2, padding=1) if op == "avg_pool2d" else {}
    _pooling._PLANS.clear()
    first = grad_call(op, go, ind, x.shape, **kw)
    planned = len(_pooling._PLANS)
    again = grad_call(op, go.copy(order="K"), None if ind is None else ind.copy(order="K"), x.shape, **kw)
    np.testing.assert_array_equal(first, again)
    assert first.shape == again.shape == x.shape and first.strides == again.strides
    doubled = grad_call(op, 2 * go, ind, x.shape, **kw)   # another array, same key: read afresh
    np.testing.assert_allclose(doubled, 2 * first, rtol=1e-6)
    assert len(_pooling._PLANS) == planned
    if ind is None or go.strides == ind.strides and go.flags.c_contiguous:
        assert planned == 1   # no copy was needed, so the call was planned
        def not_again(*args):
            raise AssertionError("validated again")
        monkeypatch.setattr(_pooling, "input_shape_arg", not_again)
        np.testing.assert_array_equal(grad_call(op, go, ind, x.shape, **kw), first)   # the plan ran


@pytest.mark.parametrize("op", ["adaptive_avg_pool2d", "adaptive_max_pool2d", "avg_pool2d"])
def test_gradient_arguments_are_validated_after_a_plan(op, rng):
    x = rng.standard_normal((1, 2, 8, 8)).astype(np.float32)
    y, ind = forward(op, x)
    go = rng.standard_normal(y.shape).astype(np.float32)
    kw = dict(kernel_size=3, stride=2, padding=1) if op == "avg_pool2d" else {}
    want = grad_call(op, go, ind, (1, 2, 8, 8), **kw)   # planned
    with pytest.raises(TypeError):
        grad_call(op, go, ind, (True, 2, 8, 8), **kw)   # True == 1, hashes alike: validated afresh
    with pytest.raises(TypeError):
        grad_call(op, go, ind, (1.0, 2, 8, 8), **kw)
    np.testing.assert_array_equal(grad_call(op, go, ind, (np.int64(1), 2, 8, 8), **kw), want)
    np.testing.assert_array_equal(grad_call(op, go, ind, [1, 2, 8, 8], **kw), want)
    np.testing.assert_array_equal(grad_call(op, go.astype(">f4"), ind, (1, 2, 8, 8), **kw), want)
    raw = np.empty(go.nbytes + 1, np.uint8)
    shifted = raw[1:].view(np.float32).reshape(go.shape)   # same key, misaligned: copied
    shifted[...] = go
    np.testing.assert_array_equal(grad_call(op, shifted, ind, (1, 2, 8, 8), **kw), want)
    if op == "avg_pool2d":
        with pytest.raises(TypeError):
            grad_call(op, go, None, (1, 2, 8, 8), kernel_size=True, stride=2, padding=1)
        with pytest.raises(TypeError):
            grad_call(op, go, None, (1, 2, 8, 8), kernel_size=3, stride=2, padding=1, ceil_mode=1)
    if ind is not None:
        np.testing.assert_array_equal(grad_call(op, go, ind.astype(">i8"), (1, 2, 8, 8)), want)
        with pytest.raises(TypeError):
            grad_call(op, go, ind.astype(np.int32), (1, 2, 8, 8))
        bad = ind.copy()
        bad.flat[0] = 64   # outside the 8x8 plane: refused through the plan as on the first call
        with pytest.raises(ValueError, match="outside"):
            grad_call(op, go, bad, (1, 2, 8, 8))
        np.testing.assert_array_equal(grad_call(op, go, ind, (1, 2, 8, 8)), want)


# ---- fractional max pooling's plans ---------------------------------------------------------

@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("return_indices", [False, True])
def test_a_planned_fractional_call_gives_the_same_bits(nd, batched, return_indices, rng, monkeypatch):
    from adapool import _fractional
    shape = ((2,) if batched else ()) + (3,) + (9, 10, 11)[:nd]
    x = rng.standard_normal(shape).astype(np.float32)
    f = getattr(adapool, f"fractional_max_pool{nd}d")
    samples = rng.random((2 if batched else 1, 3, nd), dtype=np.float32)
    _pooling._PLANS.clear()
    first = f(x, 2, output_size=4, return_indices=return_indices, _random_samples=samples)
    assert len(_pooling._PLANS) == 1   # planned

    def not_again(*args):
        raise AssertionError("validated again")
    monkeypatch.setattr(_fractional, "_per_axis", not_again)
    again = f(x.copy(), 2, output_size=4, return_indices=return_indices, _random_samples=samples.copy())
    for a, b in zip(first if return_indices else (first,), again if return_indices else (again,)):
        np.testing.assert_array_equal(a, b)
        assert a.shape == b.shape and a.strides == b.strides
    other = rng.random(samples.shape, dtype=np.float32)   # the samples are read afresh
    monkeypatch.undo()
    fresh = f(x, 2, output_size=4, return_indices=return_indices, _random_samples=other)
    _pooling._PLANS.clear()
    unplanned = f(x, 2, output_size=4, return_indices=return_indices, _random_samples=other)
    for a, b in zip(fresh if return_indices else (fresh,), unplanned if return_indices else (unplanned,)):
        np.testing.assert_array_equal(a, b)
    # drawn samples: the rng is used on the planned path as on the checked one
    a = f(x, 2, output_size=4, rng=np.random.default_rng(5))
    b = f(x, 2, output_size=4, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert len(_pooling._PLANS) == 1


def test_fractional_samples_are_checked_after_a_plan(rng):
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    s = rng.random((2, 3, 2), dtype=np.float32)
    want = adapool.fractional_max_pool2d(x, 2, output_size=4, _random_samples=s)   # planned
    with pytest.raises(TypeError, match="same dtype"):
        adapool.fractional_max_pool2d(x, 2, output_size=4, _random_samples=s.astype(np.float64))
    with pytest.raises(ValueError, match="no less then input batch size"):
        adapool.fractional_max_pool2d(x, 2, output_size=4, _random_samples=s[:1])
    with pytest.raises(ValueError, match="equals to input channel size"):
        adapool.fractional_max_pool2d(x, 2, output_size=4, _random_samples=s[:, :2])
    # float16 spacing at 3000 is 2: (i + u) rounds, and a window starts past the end (as in
    # test_fractional's test_samples_outside_unit_interval)
    h = x[:1, :1, :6, :6].astype(np.float16)
    adapool.fractional_max_pool2d(h, 1, output_size=5, _random_samples=np.full((1, 1, 2), 0.5, np.float16))
    with pytest.raises(ValueError, match="outside the input"):
        adapool.fractional_max_pool2d(h, 1, output_size=5, _random_samples=np.full((1, 1, 2), 3000, np.float16))
    with pytest.raises(TypeError, match="rng must be"):
        adapool.fractional_max_pool2d(x, 2, output_size=4, rng=5)
    np.testing.assert_array_equal(adapool.fractional_max_pool2d(x, 2, output_size=4, _random_samples=s.astype(">f4")),
                                  want)
    longer = np.concatenate([s, rng.random((1, 3, 2), dtype=np.float32)])   # N' > N: the first N rows
    np.testing.assert_array_equal(adapool.fractional_max_pool2d(x, 2, output_size=4, _random_samples=longer), want)
    with pytest.raises(ValueError, match="too large"):
        adapool.fractional_max_pool2d(x, 2, output_size=9, _random_samples=s)


def test_fractional_bfloat16_and_float32_plans_stay_apart(rng):
    import ml_dtypes
    x = rng.standard_normal((1, 2, 300, 9)).astype(np.float32)
    s = np.full((1, 2, 2), 0.7, np.float32)
    _pooling._PLANS.clear()
    xb = x.astype(ml_dtypes.bfloat16)
    adapool.fractional_max_pool2d(xb, 2, output_size=(160, 4), _random_samples=s.astype(ml_dtypes.bfloat16),
                                  return_indices=True)
    planned = adapool.fractional_max_pool2d(x, 2, output_size=(160, 4), _random_samples=s, return_indices=True)
    _pooling._PLANS.clear()
    fresh = adapool.fractional_max_pool2d(x, 2, output_size=(160, 4), _random_samples=s, return_indices=True)
    np.testing.assert_array_equal(planned[1], fresh[1])
