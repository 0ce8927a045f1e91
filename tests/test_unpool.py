"""max_unpool1d/2d/3d and their gradients: values (round trips with the max pools, random and
repeated indices), result layouts, the gradient (a gather), bad indices and error messages,
against the float64 reference (tests/reference.py) and torch.
"""
import contextlib

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import adapool
from adapool._dispatch import kernels
from layouts import LAYOUTS, assert_same_bits_on_1_and_2_threads, sample_values, with_layout
from reference import max_unpool_backward_ref, max_unpool_ref, unpool_default_size

DTYPES = [np.float16, np.float32, np.float64]


@contextlib.contextmanager
def torch_threads(torch, n):
    """torch's unpooling kernel splits every call over its threads, and where indices repeat
    across a split the winning write depends on timing: comparisons with repeated indices run
    torch on one thread, where the last write in input order wins."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@st.composite
def unpool_calls(draw, nds=(1, 2, 3)):
    """(nd, x, indices, kwargs, out_sizes): valid calls with C >= 1 and a non-empty result
    (empty ones have named tests). Indices: uniform over the plane, crowded onto a few
    positions (many repeats), or distinct within each plane."""
    nd = draw(st.sampled_from(nds))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    given_stride = draw(st.booleans())
    stride = tuple(draw(st.integers(1, 4)) for _ in range(nd)) if given_stride else kernel
    in_sizes = tuple(draw(st.integers(1, 4 if nd == 3 else 6)) for _ in range(nd))
    default = unpool_default_size(in_sizes, kernel, stride, padding)
    assume(min(default) >= 1)   # a default of 0 (one input, kernel = 2 * padding): named tests
    kwargs = dict(kernel_size=_form(draw, kernel), padding=_form(draw, padding),
                  stride=_form(draw, stride) if given_stride else None)
    batched = draw(st.booleans())
    lead = ((draw(st.integers(1, 3)),) if batched else ()) + (draw(st.integers(1, 5)),)
    form = draw(st.sampled_from(["default", "spatial", "list", "with N and C"]))
    out_sizes = default
    if form != "default":   # torch's range: strictly within one stride of the default
        out_sizes = tuple(draw(st.integers(max(1, d - s + 1), d + s - 1)) for d, s in zip(default, stride))
        given_sizes = ((2, 3) if form == "with N and C" else ()) + out_sizes
        kwargs["output_size"] = list(given_sizes) if form == "list" else given_sizes
    x = sample_values(draw, lead + in_sizes)
    plane = int(np.prod(out_sizes))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mode = draw(st.sampled_from(["uniform", "crowded", "distinct"]))
    if mode == "uniform":
        ind = rng.integers(0, plane, x.shape)
    elif mode == "crowded":
        ind = rng.integers(0, min(plane, 3), x.shape)
    else:
        q = int(np.prod(in_sizes))
        rows = [rng.permutation(max(plane, q))[:q] % plane for _ in range(int(np.prod(lead)))]
        ind = np.array(rows).reshape(x.shape)
    return nd, x, ind.astype(np.int64), kwargs, out_sizes


def _form(draw, v):
    """An int when every axis agrees (sometimes), else the tuple."""
    return v[0] if len(set(v)) == 1 and draw(st.booleans()) else v


def _fn(nd, backward=False):
    return getattr(adapool, f"max_unpool{nd}d" + ("_backward" if backward else ""))


def _assert_bits(actual, expected):
    """Equal values, NaN where NaN, signed zeros kept: unpooling moves values, never rounds."""
    np.testing.assert_array_equal(np.asarray(actual, np.float64), expected)
    np.testing.assert_array_equal(np.signbit(np.asarray(actual, np.float64)), np.signbit(expected))


@given(call=unpool_calls(), dtype=st.sampled_from(DTYPES), layout=st.sampled_from(LAYOUTS),
       ind_layout=st.sampled_from(LAYOUTS))
@settings(max_examples=80)
def test_unpool_matches_reference(call, dtype, layout, ind_layout):
    nd, x, ind, kwargs, out_sizes = call
    x = x.astype(dtype)
    batched = x.ndim == nd + 2
    y = _fn(nd)(with_layout(x, layout, batched=batched), with_layout(ind, ind_layout, batched=batched), **kwargs)
    assert y.dtype == dtype and y.shape == x.shape[:-nd] + out_sizes
    _assert_bits(y, max_unpool_ref(x, ind, out_sizes))
    # torch's result layout: C order but for batched channels-last 2-d input (the torch test
    # and the named ones check that case)
    if layout == "contiguous" or not (batched and nd == 2):
        assert y.flags.c_contiguous


@given(call=unpool_calls(), layout=st.sampled_from(["contiguous", "channels_last", "strided_all"]))
def test_unpool_matches_torch(torch_oracle, call, layout):
    torch = torch_oracle
    nd, x, ind, kwargs, out_sizes = call
    x = x.astype(np.float32)
    batched = x.ndim == nd + 2
    t, ti = torch.from_numpy(x.copy()), torch.from_numpy(ind)
    if layout == "channels_last" and batched and nd > 1:
        fmt = torch.channels_last if nd == 2 else torch.channels_last_3d
        t, ti = t.contiguous(memory_format=fmt), ti.contiguous(memory_format=fmt)
    with torch_threads(torch, 1):
        expected = getattr(torch.nn.functional, f"max_unpool{nd}d")(t, ti, **kwargs)
    y = _fn(nd)(with_layout(x, layout, batched=batched), with_layout(ind, layout, batched=batched), **kwargs)
    _assert_bits(y, expected.numpy().astype(np.float64))
    if layout != "strided_all":
        assert y.flags.c_contiguous == expected.is_contiguous() or x.shape[1] == 1 or y.size <= x.shape[0]


@given(call=unpool_calls(), dtype=st.sampled_from(DTYPES), layout=st.sampled_from(LAYOUTS))
@settings(max_examples=60)
def test_unpool_backward_matches_reference(call, dtype, layout):
    nd, x, ind, kwargs, out_sizes = call
    batched = x.ndim == nd + 2
    go = np.random.default_rng(0).standard_normal(x.shape[:-nd] + out_sizes).astype(dtype)
    gi = _fn(nd, True)(with_layout(go, layout, batched=batched), with_layout(ind, layout, batched=batched),
                       x.shape, **kwargs)
    assert gi.shape == x.shape and gi.dtype == dtype
    _assert_bits(gi, max_unpool_backward_ref(go, ind, nd))
    # the gradient follows the indices' layout (the forward input's)
    if layout == "contiguous" or not batched:
        assert gi.flags.c_contiguous
    elif layout == "channels_last" and x.shape[1] > 1 and x[0, 0].size > 1:   # (else also C order)
        assert gi.strides[1] == gi.itemsize


@given(call=unpool_calls())
def test_unpool_backward_matches_torch_autograd(torch_oracle, call):
    torch = torch_oracle
    nd, x, ind, kwargs, out_sizes = call
    t = torch.from_numpy(np.nan_to_num(x, nan=1.0, neginf=-1.0)).requires_grad_(True)
    y = getattr(torch.nn.functional, f"max_unpool{nd}d")(t, torch.from_numpy(ind), **kwargs)
    go = np.random.default_rng(1).standard_normal(tuple(y.shape))
    y.backward(torch.from_numpy(go))
    gi = _fn(nd, True)(go, ind, x.shape, **kwargs)
    np.testing.assert_array_equal(gi, t.grad.numpy())


# ---- round trips with the max pools -------------------------------------------------------------

@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_puts_each_maximum_back(torch_oracle, nd, layout, dtype):
    torch = torch_oracle
    rng = np.random.default_rng(nd)
    x = with_layout(rng.standard_normal((2, 6) + (9,) * nd).astype(dtype), layout)
    for k, s, p in ((2, 2, 0), (3, 2, 1), (3, 1, 1)):
        y, ind = getattr(adapool, f"max_pool{nd}d")(x, k, s, p, return_indices=True)
        u = _fn(nd)(y, ind, k, s, p, output_size=x.shape)
        expected = np.where(u != 0, x, 0)   # each kept value sits where it came from
        np.testing.assert_array_equal(u, expected)
        assert np.count_nonzero(u) == np.unique(ind.reshape(12, -1) + 10**6 * np.arange(12)[:, None]).size
        t = torch.from_numpy(np.ascontiguousarray(y).astype(np.float32))
        with torch_threads(torch, 1):
            tu = getattr(torch.nn.functional, f"max_unpool{nd}d")(t, torch.from_numpy(np.ascontiguousarray(ind)),
                                                                   k, s, p, output_size=x.shape)
        np.testing.assert_array_equal(u.astype(np.float32), tu.numpy())


# ---- named edge cases -------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_repeated_indices_last_write_wins(torch_oracle, layout):
    torch = torch_oracle
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]])
    ind = np.array([[[[0, 5], [5, 0]], [[3, 3], [3, 3]]]])
    y = adapool.max_unpool2d(with_layout(x, layout), with_layout(ind, layout), 2)
    assert y[0, 0].ravel().tolist() == [4.0, 0, 0, 0, 0, 3.0] + [0.0] * 10
    assert y[0, 1].ravel().tolist() == [0, 0, 0, 8.0] + [0.0] * 12
    t, ti = torch.from_numpy(x), torch.from_numpy(ind)
    if layout == "channels_last":
        t, ti = t.contiguous(memory_format=torch.channels_last), ti.contiguous(memory_format=torch.channels_last)
    with torch_threads(torch, 1):
        np.testing.assert_array_equal(y, torch.nn.functional.max_unpool2d(t, ti, 2).numpy())


def test_gradient_reaches_every_repeated_index(torch_oracle):
    torch = torch_oracle
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64, requires_grad=True)
    ind = np.array([[[[0, 0], [5, 0]]]])
    y = torch.nn.functional.max_unpool2d(x, torch.from_numpy(ind), 2)
    go = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    y.backward(torch.from_numpy(go))
    gi = adapool.max_unpool2d_backward(go, ind, (1, 1, 2, 2), 2)
    assert gi.tolist() == [[[[1.0, 1.0], [6.0, 1.0]]]] == x.grad.tolist()   # three inputs got go[0]


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_empty_batch_unbatched_and_empty_output(nd):
    fn = _fn(nd)
    y = fn(np.ones((0, 2) + (3,) * nd, np.float32), np.zeros((0, 2) + (3,) * nd, np.int64), 2)
    assert y.shape == (0, 2) + (6,) * nd and y.dtype == np.float32
    # an empty batch reads no index: torch checks none
    assert fn(np.ones((0, 2) + (3,) * nd), np.full((0, 2) + (3,) * nd, 99), 2).shape == (0, 2) + (6,) * nd
    # unbatched C = 0 is accepted (torch checks only the dims after the first)
    assert fn(np.ones((0,) + (3,) * nd), np.zeros((0,) + (3,) * nd, np.int64), 2).shape == (0,) + (6,) * nd
    x = np.random.default_rng(3).standard_normal((3,) + (2,) * nd)
    ind = np.random.default_rng(4).integers(0, 3**nd, x.shape)
    np.testing.assert_array_equal(fn(x, ind, 2, 1), fn(x[None], ind[None], 2, 1)[0])
    # kernel 0 (stride 1 for 3-d, which requires a positive stride): output size 0, no index read
    empty = fn(np.ones((1, 2) + (1,) * nd), np.full((1, 2) + (1,) * nd, 7), 0, 1 if nd == 3 else None)
    assert empty.shape == (1, 2) + (0,) * nd


def test_empty_output_with_data_is_an_index_error_in_the_gradient():
    # output size 0 in the forward op: nothing written, indices unread; its gradient has
    # nowhere to gather from (torch's gather raises too)
    with pytest.raises(ValueError, match="Found an invalid max index: 0"):
        adapool.max_unpool2d_backward(np.ones((1, 2, 0, 0)), np.zeros((1, 2, 1, 1), np.int64), (1, 2, 1, 1), 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_values_move_bit_for_bit(dtype):
    x = np.array([[[-0.0, np.nan, np.inf, -np.inf]]], dtype)
    if dtype == np.float32:
        x[0, 0, 1] = np.array([0x7FC01234], np.uint32).view(np.float32)[0]   # a NaN payload
    ind = np.array([[[1, 3, 5, 7]]])
    y = adapool.max_unpool1d(x, ind, 2)
    np.testing.assert_array_equal(y[0, 0, 1::2].view(f"u{x.itemsize}"), x[0, 0].view(f"u{x.itemsize}"))
    assert not np.signbit(y[0, 0, 0::2]).any()   # the zeros written are +0.0
    gi = adapool.max_unpool1d_backward(y, ind, x.shape, 2)
    np.testing.assert_array_equal(gi.view(f"u{x.itemsize}"), x.view(f"u{x.itemsize}"))


@pytest.mark.parametrize("shape", [(2, 1, 3, 3), (2, 5, 1, 1), (1, 4, 1, 3)])
def test_ambiguous_layouts_follow_torch(torch_oracle, shape):
    # C = 1 or a 1x1 plane: a C-contiguous array is also "channels-last"; torch's
    # suggest_memory_format then says contiguous, and so does adapool
    torch = torch_oracle
    x = with_layout(np.ones(shape), "channels_last")
    ind = np.zeros(shape, np.int64)
    t = torch.from_numpy(np.ascontiguousarray(x)).contiguous(memory_format=torch.channels_last)
    ours, theirs = adapool.max_unpool2d(x, ind, 2), torch.nn.functional.max_unpool2d(t, torch.from_numpy(ind), 2)
    assert ours.flags.c_contiguous == theirs.is_contiguous()
    assert [st for st, n in zip(ours.strides, ours.shape) if n > 1] == \
        [st * 8 for st, n in zip(theirs.stride(), theirs.shape) if n > 1]


def test_result_layouts_follow_torch(torch_oracle):
    torch = torch_oracle
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    for nd, fmt in ((1, None), (2, torch.channels_last), (3, torch.channels_last_3d)):
        x = rng.standard_normal((2, 8) + (4,) * nd)
        ind = rng.integers(0, 8**nd, x.shape)
        t = torch.from_numpy(x)
        t = t.contiguous(memory_format=fmt) if fmt else t.transpose(1, 2).contiguous().transpose(1, 2)
        ours = _fn(nd)(with_layout(x, "channels_last"), ind, 2)
        theirs = getattr(F, f"max_unpool{nd}d")(t, torch.from_numpy(ind), 2)
        assert ours.flags.c_contiguous == theirs.is_contiguous(), nd
        unbatched = _fn(nd)(with_layout(x[0], "channels_last", batched=False), ind[0], 2)
        assert unbatched.flags.c_contiguous


# ---- bad indices ------------------------------------------------------------------------------

BAD_INDEX_CASES = [
    # (nd, layout, where to put the bad values, the values)
    (1, "contiguous", [(0, 0, 1)], [100]), (1, "contiguous", [(1, 2, 0)], [-1]),
    (2, "contiguous", [(0, 0, 0, 0), (0, 0, 1, 1)], [100, 200]),
    (2, "contiguous", [(0, 1, 0, 0), (0, 2, 1, 0)], [-5, 300]),
    (2, "channels_last", [(0, 0, 0, 1), (0, 1, 0, 0)], [-5, 300]),   # pixel order: -5 is last
    (2, "channels_last", [(1, 2, 1, 1)], [2**62]),
    (3, "contiguous", [(0, 0, 0, 0, 0)], [64]), (3, "channels_last", [(1, 1, 1, 1, 1), (0, 2, 0, 0, 0)], [-2, 999]),
]


@pytest.mark.parametrize("nd, layout, where, values", BAD_INDEX_CASES)
def test_bad_indices_raise_torchs_message(torch_oracle, nd, layout, where, values):
    torch = torch_oracle
    shape = (2, 3) + (2,) * nd
    x = np.random.default_rng(0).standard_normal(shape)
    ind = np.zeros(shape, np.int64)
    for w, v in zip(where, values):
        ind[w] = v
    t, ti = torch.from_numpy(x), torch.from_numpy(ind)
    if layout == "channels_last" and nd > 1:
        fmt = torch.channels_last if nd == 2 else torch.channels_last_3d
        t, ti = t.contiguous(memory_format=fmt), ti.contiguous(memory_format=fmt)
    with torch_threads(torch, 1), pytest.raises(RuntimeError) as theirs:
        getattr(torch.nn.functional, f"max_unpool{nd}d")(t, ti, 2)
    with pytest.raises(ValueError) as ours:
        _fn(nd)(with_layout(x, layout), with_layout(ind, layout), 2)
    assert str(ours.value) == str(theirs.value).splitlines()[0]
    with pytest.raises(ValueError, match="Found an invalid max index"):
        _fn(nd, True)(np.ones((2, 3) + (4,) * nd), with_layout(ind, layout), shape, 2)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_kernels_write_nothing_outside_their_arrays(channels_last, dtype):
    # The wrappers' own contract: an index outside its plane is reported (IndexError) and never
    # followed. The result arrays sit inside guard buffers whose edges must stay untouched.
    rng = np.random.default_rng(9)
    n, c, q, p = 2, 3, 4, 9
    x = rng.standard_normal((n, c, q)).astype(dtype)
    ind = rng.integers(0, p, (n, c, q))
    ind[0, 1, 2], ind[1, 2, 3] = p, -1
    guard = np.full(n * c * p + 64, 7.0, dtype)
    y = guard[32:-32].reshape(n, c, p)
    go = rng.standard_normal((n, c, p)).astype(dtype)
    gguard = np.full(n * c * q + 64, 7.0, dtype)
    gi = gguard[32:-32].reshape(n, c, q)
    if channels_last:
        y = guard[32:-32].reshape(n, p, c).transpose(0, 2, 1)
        gi = gguard[32:-32].reshape(n, q, c).transpose(0, 2, 1)
        x, ind, go = (with_layout(a, "channels_last", batched=True) for a in (x, ind, go))
    for threads in (1, 2):
        with pytest.raises(IndexError):
            kernels.max_unpool_forward(1, x, ind, y, channels_last, 2, threads)
        with pytest.raises(IndexError):
            kernels.max_unpool_backward(1, go, ind, gi, channels_last, 2, threads)
        assert (guard[:32] == 7).all() and (guard[-32:] == 7).all()
        assert (gguard[:32] == 7).all() and (gguard[-32:] == 7).all()


def test_kernel_wrappers_check_what_their_loops_assume():
    x, y = np.ones((1, 2, 4)), np.ones((1, 2, 8))
    ind = np.zeros((1, 2, 4), np.int64)
    f = kernels.max_unpool_forward
    with pytest.raises(ValueError, match="dense"):
        f(1, np.ones((1, 2, 8))[:, :, ::2], ind, y, False, 2, 1)
    with pytest.raises(ValueError, match="dense"):
        f(1, x, ind, np.ones((1, 2, 16))[:, :, :8], False, 2, 1)
    with pytest.raises(ValueError, match="indices must have the output's shape and layout"):
        f(1, x, np.zeros((1, 2, 3), np.int64), y, False, 2, 1)
    with pytest.raises(ValueError, match="layout"):
        f(1, x, np.zeros((1, 4, 2), np.int64).transpose(0, 2, 1), y, False, 2, 1)
    with pytest.raises(TypeError, match="int64"):
        f(1, x, ind.astype(np.int32), y, False, 2, 1)
    with pytest.raises(TypeError, match="one dtype"):
        f(1, x.astype(np.float32), ind, y, False, 2, 1)
    with pytest.raises(ValueError, match="N and C"):
        f(1, x, ind, np.ones((1, 3, 8)), False, 2, 1)
    ro = np.ones((1, 2, 8))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        f(1, x, ind, ro, False, 2, 1)
    cl = [with_layout(a, "channels_last", batched=True) for a in (x, ind, y)]
    with pytest.raises(ValueError, match="channel block"):
        f(1, *cl, True, 0, 1)
    with pytest.raises(ValueError, match="unit-stride"):
        f(1, x, ind, y, True, 2, 1)   # planar arrays given as channels-last
    gro = np.ones((1, 2, 4))
    gro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        kernels.max_unpool_backward(1, y, ind, gro, False, 2, 1)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_results_do_not_depend_on_thread_count(layout):
    rng = np.random.default_rng(7)
    x = with_layout(rng.standard_normal((4, 32, 17, 19)).astype(np.float32), layout)
    crowded = with_layout(rng.integers(0, 5, x.shape), layout)   # repeats: the last write must win
    uniform = with_layout(rng.integers(0, 34 * 38, x.shape), layout)
    go = with_layout(rng.standard_normal((4, 32, 34, 38)).astype(np.float32), layout)
    calls = [lambda: adapool.max_unpool2d(x, crowded, 2), lambda: adapool.max_unpool2d(x, uniform, 2),
             lambda: adapool.max_unpool1d(x[:, :, 0], crowded[:, :, 0], 3, 2, 1),
             lambda: adapool.max_unpool3d(x[:, :, :4], crowded[:, :, :4], 2),
             lambda: adapool.max_unpool2d_backward(go, uniform, x.shape, 2)]
    assert_same_bits_on_1_and_2_threads(calls)


# ---- errors: torch's words ----------------------------------------------------------------------

def _case(nd, shape=None, ind_shape=None, ind_dtype="int64", args=(2,), **kw):
    shape = shape or (2, 3) + (2,) * nd
    return nd, shape, ind_shape or shape, ind_dtype, args, kw


ERROR_CASES = [
    *[_case(nd, ind_dtype=dt) for nd in (1, 2, 3) for dt in ("int32", "float32", "uint8", "bool", "float64")],
    *[_case(nd, shape=s) for nd, s in ((1, (4,)), (1, (1, 2, 3, 4)), (2, (4, 4)), (2, (1, 1, 2, 2, 2)),
                                       (3, (2, 2, 2)), (3, (1, 1, 1, 2, 2, 2)))],
    *[_case(nd, ind_shape=(2, 3) + (1,) * nd) for nd in (1, 2, 3)],
    *[_case(nd, shape=(2, 0) + (2,) * nd) for nd in (1, 2, 3)],
    *[_case(nd, shape=(2, 3, 0) + (2,) * (nd - 1)) for nd in (1, 2, 3)],
    *[_case(nd, ind_shape=(2, 1) + (2,) * nd, shape=(2, 0) + (2,) * nd) for nd in (2, 3)],
    *[_case(nd, output_size=o) for nd in (1, 2, 3) for o in (
        (9,) * nd, (1,) * nd, (3,) * (nd + 1), 5, [9] * nd, (2, 3) + (9,) * nd)],
    _case(2, output_size=(4.0, 4)), _case(2, output_size=(4, 4.0)), _case(3, output_size=(4, 4.0, 4)),
    _case(1, output_size=(4.0,)), _case(2, output_size=(None, 4)),
    *[_case(nd, args=(1, 1, 3)) for nd in (1, 2, 3)],           # a negative default output size
    *[_case(nd, args=(-1,)) for nd in (1, 2, 3)],
    _case(2, args=((2,),)), _case(3, args=((2, 2),)), _case(2, args=((2, 2, 2),)), _case(1, args=((2, 2),)),
    _case(2, args=(2, (2,))), _case(2, args=(2, 2, (0,))),
    _case(3, args=(2, (2, 2, 2, 2))), _case(3, args=(2, 2, (0, 0, 0, 0))), _case(3, args=(2, (0, 2, 2, 2))),
    *[_case(3, args=a) for a in ((0,), (2, 0), (2, -1), (2, (1, 0, 1)))],
    _case(2, args=(2,), output_size=(3, 3, 3, 3, 3)),
]


def _torch_error(torch, nd, shape, ind_shape, ind_dtype, args, kw):
    x = torch.ones(shape)
    ind = torch.from_numpy(np.zeros(ind_shape, dtype=ind_dtype))
    try:
        with torch_threads(torch, 1):
            getattr(torch.nn.functional, f"max_unpool{nd}d")(x, ind, *args, **kw)
    except (RuntimeError, TypeError, ValueError, IndexError) as e:
        return e
    return None


@pytest.mark.parametrize("nd, shape, ind_shape, ind_dtype, args, kw", ERROR_CASES,
                         ids=lambda v: str(v).replace(" ", ""))
def test_error_messages_match_torch(torch_oracle, nd, shape, ind_shape, ind_dtype, args, kw):
    theirs = _torch_error(torch_oracle, nd, shape, ind_shape, ind_dtype, args, kw)
    assert theirs is not None, "torch accepts this call: not an error case"
    # a wrong dtype is a TypeError (torch raises RuntimeError for indices)
    wrong_type = isinstance(theirs, TypeError) or str(theirs).startswith("elements in indices should be type")
    expected_type = TypeError if wrong_type else ValueError
    ind = np.zeros(ind_shape, dtype=ind_dtype)
    with pytest.raises(expected_type) as ours:
        _fn(nd)(np.ones(shape), ind, *args, **kw)
    if isinstance(theirs, IndexError):
        # torch's Python side indexes stride, padding or the shape past their ends; adapool
        # says which (after torch's own words) or, for a short shape, names the rank
        assert str(ours.value).startswith(("tuple index out of range", "Input to max_unpooling"))
        return
    assert str(ours.value) == str(theirs).splitlines()[0]
    # the gradient takes the forward call's arguments: the same errors
    if ind_shape == shape and 0 not in shape[-nd:]:
        with pytest.raises(expected_type) as grad_error:
            _fn(nd, True)(np.ones(shape), ind, shape, *args, **kw)
        # (or the gradient's own words about its shapes)
        message = str(grad_error.value)
        assert message == str(ours.value) or "grad_output has shape" in message or "input_shape must" in message


def test_errors_for_data_types():
    with pytest.raises(TypeError, match="not implemented for 'int64'"):
        adapool.max_unpool2d(np.ones((1, 1, 2, 2), np.int64), np.zeros((1, 1, 2, 2), np.int64), 2)
    with pytest.raises(TypeError, match="kernel_size"):
        adapool.max_unpool2d(np.ones((1, 1, 2, 2)), np.zeros((1, 1, 2, 2), np.int64), 2.0)
    with pytest.raises(ValueError, match="grad_output has shape"):
        adapool.max_unpool2d_backward(np.ones((1, 1, 3, 3)), np.zeros((1, 1, 2, 2), np.int64), (1, 1, 2, 2), 2)
    with pytest.raises(ValueError, match="input_shape"):
        adapool.max_unpool2d_backward(np.ones((1, 1, 4, 4)), np.zeros((1, 1, 2, 2), np.int64), (1, 1, 0, 2), 2)
    # byte-swapped int64 indices are int64: read right
    ind = np.array([[[[3, 0], [1, 2]]]], dtype=">i8")
    y = adapool.max_unpool2d(np.arange(1.0, 5.0).reshape(1, 1, 2, 2), ind, 1)
    assert y.tolist() == [[[[2.0, 3.0], [4.0, 1.0]]]]


@pytest.mark.parametrize("nd, args", [
    (3, (0, 1)), (2, (2, 0)), (1, (2, 0)), (2, (3, 2, 2)), (3, (3, 2, (0, 2, 0))), (2, (2, 2, -1)),
    (2, (2, -1)), (1, (2, 3, 3)), (2, (True,)), (3, (2, 2, -1)),
])
def test_unchecked_arguments_work_as_in_torch(torch_oracle, nd, args):
    # torch checks no kernel size or padding (nor, below 3-d, the stride): they only enter the
    # output size, (in - 1) * stride + kernel - 2 * padding, which may then be 0 or smaller
    # than the indices need
    torch = torch_oracle
    shape = (2, 3) + (2,) * nd
    x = np.random.default_rng(1).standard_normal(shape)
    for ind in (np.zeros(shape, np.int64), np.random.default_rng(2).integers(0, 5, shape)):
        t, ti = torch.from_numpy(x), torch.from_numpy(ind)
        try:
            with torch_threads(torch, 1):
                expected = getattr(torch.nn.functional, f"max_unpool{nd}d")(t, ti, *args)
        except (RuntimeError, ValueError) as e:
            with pytest.raises(ValueError) as ours:
                _fn(nd)(x, ind, *args)
            assert str(ours.value) == str(e).splitlines()[0]
            continue
        y = _fn(nd)(x, ind, *args)
        assert y.shape == tuple(expected.shape)
        np.testing.assert_array_equal(y, expected.numpy())


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_huge_sizes_raise_instead_of_crashing(nd):
    # Sizes come from Python ints (no overflow there); numpy refuses the allocation
    x, ind = np.ones((2, 3) + (2,) * nd), np.zeros((2, 3) + (2,) * nd, np.int64)
    for args in ((2**40,), (2**62,), (2**64,), (2, 2**70), (2, 1, -2**70)):
        with pytest.raises((ValueError, MemoryError), match="too big|Maximum allowed dimension|Unable to allocate"):
            _fn(nd)(x, ind, *args)
    with pytest.raises(ValueError, match="grad_output has shape"):   # checked before any allocation
        _fn(nd, True)(np.ones((2, 3) + (4,) * nd), ind, x.shape, 2**62)
