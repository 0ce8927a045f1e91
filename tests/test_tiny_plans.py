"""Tiny calls of the strided and fractional forward ops (issues 13 and 15): a planned call runs
the kernel call it recorded (``_ForwardPlan.direct``) and the fractional kernel reads torch's
(N', C, nd) samples in place. The same bits as the checked path; nothing that a fresh
validation refuses or converts gets through the inline argument check."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import adapool
from adapool import _pooling

from layouts import with_layout

STRIDED = [("max_pool1d", 1), ("max_pool2d", 2), ("max_pool3d", 3),
           ("avg_pool1d", 1), ("avg_pool2d", 2), ("avg_pool3d", 3)]
DTYPES = [np.float16, np.float32, np.float64]


def checked(op, x, kernel_size, **kw):
    """The call through the checked path: a list kernel size never takes part in a plan."""
    return getattr(adapool, op)(x, [kernel_size] * int(op[-2]), **kw)


def as_tuple(r):
    return r if isinstance(r, tuple) else (r,)


def assert_same(a, b):
    for u, v in zip(as_tuple(a), as_tuple(b), strict=True):
        np.testing.assert_array_equal(u, v)
        assert u.dtype == v.dtype and u.shape == v.shape and u.strides == v.strides


@settings(max_examples=40, deadline=None)
@given(data=st.data(), which=st.sampled_from(STRIDED), dtype=st.sampled_from(DTYPES),
       layout=st.sampled_from(["contiguous", "channels_last", "strided_all", "negative_w"]), batched=st.booleans(),
       kernel=st.integers(1, 3), stride=st.sampled_from([None, 1, 2]), pad=st.integers(0, 1),
       ceil_mode=st.booleans(), return_indices=st.booleans())
def test_planned_calls_give_the_checked_paths_bits(data, which, dtype, layout, batched, kernel, stride, pad,
                                                   ceil_mode, return_indices):
    op, nd = which
    pad = min(pad, kernel // 2)
    sizes = tuple(data.draw(st.integers(kernel, 9)) for _ in range(nd))
    c = data.draw(st.integers(1, 20))
    shape = ((data.draw(st.integers(1, 3)),) if batched else ()) + (c,) + sizes
    x = with_layout(np.random.default_rng(0).standard_normal(shape).astype(dtype), layout, batched=batched)
    kw = dict(stride=stride, padding=pad, ceil_mode=ceil_mode)
    if op.startswith("max"):
        kw["return_indices"] = return_indices
    want = checked(op, x, kernel, **kw)
    _pooling._PLANS.clear()
    for _ in range(3):   # plans, records its kernel call, runs it
        assert_same(getattr(adapool, op)(x, kernel, **kw), want)


@pytest.mark.parametrize("op,nd", STRIDED)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided_all", "negative_w"])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("return_indices", [False, True])
def test_every_layout_keeps_its_result_layout_through_a_plan(op, nd, layout, batched, return_indices, rng):
    # channels-last results (torch's rule) are not what a recorded call allocates: they keep _run_plan
    shape = ((2,) if batched else ()) + (3,) + (8,) * nd
    x = with_layout(rng.standard_normal(shape).astype(np.float32), layout, batched=batched)
    kw = {"return_indices": return_indices} if op.startswith("max") else {}
    want = checked(op, x, 2, **kw)
    _pooling._PLANS.clear()
    for _ in range(3):
        assert_same(getattr(adapool, op)(x, 2, **kw), want)


@pytest.mark.parametrize("op,nd", STRIDED)
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_tiny_c_order_call_runs_its_recorded_kernel_call(op, nd, dtype, rng):
    x = rng.standard_normal((1, 1) + (8,) * nd).astype(dtype)
    _pooling._PLANS.clear()
    want = getattr(adapool, op)(x, 3, 2, 1)
    (plan,) = _pooling._PLANS.values()
    assert plan.direct is not None   # recorded by the first call
    calls = []
    recorded = plan.direct

    class Spy:   # the recorded call, counted
        indexed = recorded.indexed

        def pool(self, x):
            calls.append((x,))
            return recorded.pool(x)

    plan.direct = Spy()
    got = getattr(adapool, op)(x, 3, 2, 1)
    assert len(calls) == 1 and calls[0][0] is x
    assert_same(got, want)


def test_pool1d_fast_declining_records_the_general_kernel(rng):
    # float16 max: pool1d_fast declines, the general kernel runs and is what the plan records
    x = rng.standard_normal((1, 2, 64)).astype(np.float16)
    _pooling._PLANS.clear()
    want = checked("max_pool1d", x, 3, stride=2, padding=1)
    adapool.max_pool1d(x, 3, 2, 1)
    (plan,) = _pooling._PLANS.values()
    assert plan.direct.kernel == "max_pool_forward"
    assert_same(adapool.max_pool1d(x, 3, 2, 1), want)
    x32 = x.astype(np.float32)
    adapool.max_pool1d(x32, 3, 2, 1)
    assert _pooling._PLANS[next(k for k in _pooling._PLANS if k[-1] == np.float32)].direct.kernel == "pool1d_fast"


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_one_adaptive_max_plan_serves_both_return_indices(nd, rng):
    # the adaptive key has no return_indices: its recorded call takes indices or None
    x = rng.standard_normal((1, 3) + (7,) * nd).astype(np.float32)
    op = f"adaptive_max_pool{nd}d"
    want_v, want_i = getattr(adapool, op)(x, [3] * nd, return_indices=True)
    _pooling._PLANS.clear()
    for ri in (False, True, False, True):
        got = getattr(adapool, op)(x, 3, return_indices=ri)
        assert_same(got, (want_v, want_i) if ri else want_v)
    assert len(_pooling._PLANS) == 1 and next(iter(_pooling._PLANS.values())).direct is not None


@pytest.mark.parametrize("op,nd", STRIDED)
def test_arguments_validation_still_refuses_after_a_plan(op, nd, rng):
    x = rng.standard_normal((1, 2) + (8,) * nd).astype(np.float32)
    variants = [dict(kernel_size=2.0), dict(kernel_size=True), dict(stride=2.0), dict(padding=1.0),
                dict(padding=False), dict(kernel_size=np.int64(2)), dict(ceil_mode=1), dict(ceil_mode=0),
                dict(padding=3), dict(kernel_size=0), dict(stride=0)]
    if op.startswith("max"):
        variants += [dict(dilation=1.0), dict(dilation=True), dict(return_indices=1)]
    else:
        variants += [dict(count_include_pad=1)]
        if nd > 1:
            variants += [dict(divisor_override=0), dict(divisor_override=2.0), dict(divisor_override=True)]

    def outcome(kw):
        args = dict(kernel_size=2, stride=2, padding=1, ceil_mode=False)
        args.update(kw)
        try:
            return as_tuple(getattr(adapool, op)(x, **args))
        except (TypeError, ValueError) as e:
            return type(e), str(e)

    _pooling._PLANS.clear()
    fresh = [outcome(kw) for kw in variants]
    for _ in range(2):   # plan the exact-int call with the same values, and record its kernel call
        outcome(dict(stride=2, padding=1))
    assert any(p.direct is not None for p in _pooling._PLANS.values())
    for kw, want in zip(variants, fresh):
        got = outcome(kw)
        if isinstance(want[0], type):
            assert got == want, kw
        else:
            for a, b in zip(got, want, strict=True):
                np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("op,nd", STRIDED)
def test_misaligned_and_byte_swapped_inputs_take_the_checked_path(op, nd, rng):
    x = rng.standard_normal((1, 2) + (8,) * nd).astype(np.float32)
    _pooling._PLANS.clear()
    for _ in range(2):
        want = getattr(adapool, op)(x, 2)
    assert next(iter(_pooling._PLANS.values())).direct is not None
    raw = np.empty(x.nbytes + 1, np.uint8)
    shifted = raw[1:].view(np.float32).reshape(x.shape)   # the planned key's shape, strides, dtype
    assert not shifted.flags.aligned
    shifted[...] = x
    assert_same(getattr(adapool, op)(shifted, 2), want)
    assert_same(getattr(adapool, op)(x.astype(">f4"), 2), want)


# ---- fractional: torch's samples read in place --------------------------------------------------

def sample_views(s, rng):
    """The same samples as (N', C, nd) arrays the kernel reads in place or the Python layer copies:
    a longer batch, reversed channels, a stride over the last axis, Fortran order, misaligned,
    byte-swapped."""
    n, c, nd = s.shape
    longer = np.concatenate([s, rng.random((2, c, nd)).astype(s.dtype)])
    rev = np.ascontiguousarray(s[:, ::-1])[:, ::-1]
    spread = np.zeros((n, c, 2 * nd), s.dtype)
    spread[..., ::2] = s
    raw = np.empty(s.nbytes + 1, np.uint8)
    shifted = raw[1:].view(s.dtype).reshape(s.shape)
    shifted[...] = s
    return [longer, rev, spread[..., ::2], np.asfortranarray(s), shifted, s.astype(s.dtype.newbyteorder(">"))]


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batched", [True, False])
def test_fractional_samples_in_any_layout_give_the_same_bits(nd, dtype, batched, rng):
    shape = ((2,) if batched else ()) + (3,) + (9, 10, 11)[:nd]
    x = rng.standard_normal(shape).astype(dtype)
    s = rng.random((2 if batched else 1, 3, nd)).astype(dtype)
    op = getattr(adapool, f"fractional_max_pool{nd}d")
    _pooling._PLANS.clear()
    want = op(x, 2, output_size=4, return_indices=True, _random_samples=s)
    for v in sample_views(s, rng):
        assert_same(op(x, 2, output_size=4, return_indices=True, _random_samples=v), want)


@pytest.mark.parametrize("nd", [2, 3])
def test_fractional_samples_pick_torchs_axes(nd, rng, torch_oracle):
    # 2-d reads (W, H) from a plane's pair, 3-d (T, H, W): one axis's sample at a time moved
    x = rng.standard_normal((2, 3) + (9, 10, 11)[:nd]).astype(np.float32)
    base = rng.random((2, 3, nd)).astype(np.float32)
    torch = torch_oracle
    F = torch.nn.functional
    for j in range(nd):
        s = base.copy()
        s[..., j] = 0.97
        got = getattr(adapool, f"fractional_max_pool{nd}d")(x, 2, output_size=4, return_indices=True,
                                                            _random_samples=s[:, ::-1].copy()[:, ::-1])
        want = getattr(F, f"fractional_max_pool{nd}d")(torch.from_numpy(x), 2, output_size=4, return_indices=True,
                                                      _random_samples=torch.from_numpy(s))
        np.testing.assert_array_equal(got[0], want[0].numpy())
        np.testing.assert_array_equal(got[1], want[1].numpy())


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d"])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_inputs_large_enough_to_share_split_again_when_the_thread_count_changes(op, layout, rng):
    # a larger call's recorded call follows set_num_threads: its split is the plan's own rule
    # (_plan) for the thread count of the moment, redone when that count changes
    x = with_layout(rng.standard_normal((2, 64, 24, 24)).astype(np.float32), layout, batched=True)
    assert x.size >= _pooling.PARALLEL_MIN_ELEMENTS
    _pooling._PLANS.clear()
    try:
        adapool.set_num_threads(2)
        want = getattr(adapool, op)(x, 2)
        (plan,) = _pooling._PLANS.values()
        rec = plan.direct
        assert rec is not None and rec.threads is not None and plan.serial_block is None
        for n in (1, 3, 2, 1):
            adapool.set_num_threads(n)
            assert rec.split_now == _pooling._plan(*plan.nc, plan.rows, x.size, plan.channels_last)
            assert rec.split_now[0] == n
            assert_same(getattr(adapool, op)(x, 2), want)
    finally:
        adapool.set_num_threads(None)


def test_a_shared_recorded_call_asks_for_its_split_only_when_the_thread_count_changes(rng):
    x = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
    rec = recorded_for("adaptive_avg_pool2d", x, 2)
    want = rec.pool(x)
    count, splits = [2], []

    def split():
        splits.append(count[0])
        return count[0], 4

    shared = adapool._dispatch.kernels.Recorded(rec.kernel, rec.head, rec.table, False, 4, 1, x.shape, want.shape,
                                                threads=lambda: count[0], split=split)
    for n in (2, 2, 2, 1, 1, 3, 3):
        count[0] = n
        assert_same(shared.pool(x), want)   # every split gives the same bits
    assert splits == [2, 1, 3]
    with pytest.raises(ValueError, match="threads and split together"):
        adapool._dispatch.kernels.Recorded(rec.kernel, rec.head, rec.table, False, 4, 1, x.shape, want.shape,
                                           threads=lambda: 1)


@pytest.mark.parametrize("op,nd", [("adaptive_avg_pool1d", 1), ("adaptive_avg_pool2d", 2), ("adaptive_max_pool2d", 2),
                                   ("adaptive_max_pool1d", 1), ("avg_pool1d", 1), ("avg_pool2d", 2), ("max_pool2d", 2)])
@pytest.mark.parametrize("size", ["tiny", "shared"])
def test_a_channels_last_result_keeps_its_layout_through_the_recorded_call(op, nd, size, rng):
    # torch's rule (batched 1-d and 2-d channels-last input gives channels-last output), now
    # allocated by the recorded call itself (max_pool1d's results are contiguous, as torch's;
    # 1-d outputs longer than 32 run as (..., L, 1) views and record no call)
    c, s = (3, 8) if size == "tiny" else ((64, 40) if nd == 2 else (512, 60))
    x = with_layout(rng.standard_normal((2, c) + (s,) * nd).astype(np.float32), "channels_last", batched=True)
    want = checked(op, x, 2) if op.startswith("adaptive") else checked(op, x, 3, stride=2, padding=1)
    args = (2,) if op.startswith("adaptive") else (3, 2, 1)
    _pooling._PLANS.clear()
    first = getattr(adapool, op)(x, *args)
    (plan,) = _pooling._PLANS.values()
    assert plan.out_cl and plan.direct is not None and plan.direct.out_cl
    for got in (first, getattr(adapool, op)(x, *args), plan.direct.pool(x)):
        assert_same(got, want)
        assert got.transpose((0,) + tuple(range(2, nd + 2)) + (1,)).flags.c_contiguous


# ---- the recorded call itself --------------------------------------------------------------------

def recorded_for(op, x, *args):
    _pooling._PLANS.clear()
    getattr(adapool, op)(x, *args)
    (plan,) = _pooling._PLANS.values()
    assert plan.direct is not None
    return plan.direct


@pytest.mark.parametrize("op,nd", STRIDED + [("adaptive_avg_pool2d", 2), ("adaptive_max_pool3d", 3)])
def test_a_recorded_call_takes_only_its_recorded_input_shape(op, nd, rng):
    # its window table is for that shape: another would read outside x
    x = rng.standard_normal((1, 2) + (8,) * nd).astype(np.float32)
    rec = recorded_for(op, x, 2)
    np.testing.assert_array_equal(rec.pool(x), getattr(adapool, op)(x, 2))
    for shape in [(1, 2) + (4,) * nd, (1, 2) + (16,) * nd, (2, 8) + (8,) * nd, (2,) + (8,) * nd,
                  (1, 2) + (8,) * nd + (1,)]:
        with pytest.raises(ValueError, match="recorded shape"):
            rec.pool(np.zeros(shape, np.float32))


def test_a_recorded_call_refuses_what_its_kernel_refuses(rng):
    x = rng.standard_normal((1, 2, 8, 8)).astype(np.float32)
    rec = recorded_for("avg_pool2d", x, 2)
    assert not rec.indexed and rec.kernel == "avg_pool_forward"
    with pytest.raises(TypeError, match="takes no indices"):
        rec.run(x, np.empty((1, 2, 4, 4), np.float32), np.empty((1, 2, 4, 4), np.int64))
    with pytest.raises(TypeError, match="one dtype"):
        rec.pool(x.astype(np.int32))
    with pytest.raises(ValueError, match="read-only|writeable"):
        out = np.empty((1, 2, 4, 4), np.float32)
        out.flags.writeable = False
        rec.run(x, out)
    with pytest.raises(ValueError, match="no recorded call"):
        adapool._dispatch.kernels.Recorded("nope", 2, np.zeros(3, np.int64), False, 1, 1, (1,), (1,))
    with pytest.raises(ValueError, match="at most 5"):
        adapool._dispatch.kernels.Recorded("avg_pool_forward", 2, np.zeros(3, np.int64), False, 1, 1,
                                           (1,) * 6, (1,) * 6)


@pytest.mark.parametrize("op,nd", [("adaptive_avg_pool1d", 1), ("adaptive_avg_pool2d", 2), ("adaptive_max_pool2d", 2),
                                   ("adaptive_max_pool3d", 3)])
def test_a_misaligned_input_of_an_adaptive_plan_is_copied(op, nd, rng):
    # the recorded call declines it (None) and the checked path copies it
    x = rng.standard_normal((1, 2) + (9,) * nd).astype(np.float32)
    rec = recorded_for(op, x, 4)
    want = getattr(adapool, op)(x, 4)
    raw = np.empty(x.nbytes + 1, np.uint8)
    shifted = raw[1:].view(np.float32).reshape(x.shape)
    shifted[...] = x
    assert rec.pool(shifted) is None
    np.testing.assert_array_equal(getattr(adapool, op)(shifted, 4), want)


@pytest.mark.parametrize("op,nd", [("adaptive_max_pool1d", 1), ("adaptive_max_pool2d", 2), ("adaptive_max_pool3d", 3),
                                   ("max_pool1d", 1), ("max_pool2d", 2), ("max_pool3d", 3)])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_a_planned_call_with_indices_runs_its_recorded_call(op, nd, layout, rng):
    # values and indices both allocated by the recorded call (pool_indexed), laid out as the
    # checked path lays them out
    x = with_layout(rng.standard_normal((2, 3) + (8,) * nd).astype(np.float32), layout, batched=True)
    args = (3,) if op.startswith("adaptive") else (3, 2, 1)
    want = checked(op, x, 3, return_indices=True) if op.startswith("adaptive") else \
        checked(op, x, 3, stride=2, padding=1, return_indices=True)
    _pooling._PLANS.clear()
    assert_same(getattr(adapool, op)(x, *args, return_indices=True), want)
    (plan,) = _pooling._PLANS.values()
    rec = plan.direct
    assert rec is not None and rec.indexed
    calls = []

    class Spy:   # the recorded call, counted
        indexed = True

        def pool_indexed(self, v):
            calls.append(v)
            return rec.pool_indexed(v)

    plan.direct = Spy()
    assert_same(getattr(adapool, op)(x, *args, return_indices=True), want)
    assert len(calls) == 1 and calls[0] is x
    assert_same(rec.pool_indexed(x), want)


def test_pool_indexed_refuses_what_it_cannot_run(rng):
    x = rng.standard_normal((1, 2, 8, 8)).astype(np.float32)
    with pytest.raises(TypeError, match="takes no indices"):
        recorded_for("adaptive_avg_pool2d", x, 2).pool_indexed(x)
    rec = recorded_for("adaptive_max_pool2d", x, 2)
    raw = np.empty(x.nbytes + 1, np.uint8)
    shifted = raw[1:].view(np.float32).reshape(x.shape)
    shifted[...] = x
    assert rec.pool_indexed(shifted) is None   # unaligned: the checked path copies it
    assert_same(adapool.adaptive_max_pool2d(shifted, 2, return_indices=True),
                adapool.adaptive_max_pool2d(x, 2, return_indices=True))


@pytest.mark.parametrize("op,nd", [("avg_pool1d", 1), ("avg_pool2d", 2), ("avg_pool3d", 3), ("adaptive_avg_pool1d", 1),
                                   ("adaptive_avg_pool2d", 2), ("adaptive_avg_pool3d", 3)])   # (the ops with out=)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("out_layout", ["contiguous", "channels_last"])
def test_an_out_call_runs_the_plans_recorded_call(op, nd, layout, out_layout, rng):
    # after out='s own checks the recorded call runs into out; where pool1d_fast declines out's
    # layout (run: False) the general kernel writes it
    x = with_layout(rng.standard_normal((2, 16) + (12,) * nd).astype(np.float32), layout, batched=True)
    args = (2,) if op.startswith("adaptive") else (3, 2, 1)
    _pooling._PLANS.clear()
    want = getattr(adapool, op)(x, *args)   # records the plan's call
    (plan,) = _pooling._PLANS.values()
    rec = plan.direct
    assert rec is not None
    ran = []

    class Spy:   # the recorded call, its results counted
        indexed = rec.indexed

        def run(self, *a):
            ran.append(rec.run(*a))
            return ran[-1]

    plan.direct = Spy()
    out = with_layout(np.full(want.shape, np.nan, np.float32), out_layout, batched=True)
    assert getattr(adapool, op)(x, *args, out=out) is out
    np.testing.assert_array_equal(out, want)
    assert len(ran) == 1


def test_recorded_calls_stay_exact_while_another_thread_changes_the_thread_count(rng):
    # the shared calls' split cache (one tuple, replaced whole) under Python threads: dask runs
    # chunks of one shape from several threads, and set_num_threads may change meanwhile
    import threading

    x = with_layout(rng.standard_normal((4, 64, 24, 24)).astype(np.float32), "channels_last", batched=True)
    assert x.size >= _pooling.PARALLEL_MIN_ELEMENTS
    _pooling._PLANS.clear()
    want = {o: adapool.adaptive_avg_pool2d(x, o) for o in (5, 7)}
    want_max = adapool.adaptive_max_pool2d(x, 7, return_indices=True)
    wrong, done = [], threading.Event()

    def caller(k):
        for i in range(60):
            o = 5 if (i + k) % 2 else 7
            got = adapool.adaptive_avg_pool2d(x, o)
            if not np.array_equal(got, want[o]) or got.strides != want[o].strides:
                wrong.append(("avg", o))
            v, idx = adapool.adaptive_max_pool2d(x, 7, return_indices=True)
            if not (np.array_equal(v, want_max[0]) and np.array_equal(idx, want_max[1])):
                wrong.append("max")

    def toggler():
        i = 0
        while not done.is_set():
            adapool.set_num_threads(1 + i % 3)
            i += 1

    callers = [threading.Thread(target=caller, args=(k,)) for k in range(4)]
    toggle = threading.Thread(target=toggler)
    try:
        toggle.start()
        for t in callers:
            t.start()
        for t in callers:
            t.join()
    finally:
        done.set()
        toggle.join()
        adapool.set_num_threads(None)
    assert wrong == []
    assert all(p.direct is not None and p.direct.threads is not None for p in _pooling._PLANS.values())
