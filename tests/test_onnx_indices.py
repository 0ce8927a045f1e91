"""onnx_export's ArgMax forms of adaptive max pooling with indices over windows that tile the
plane (issue 13): "runs" (each window a run of the flattened plane: global pooling, 1-d,
(o, 1) outputs; one ArgMax) and "separable" (2-d windows whose rows hold 4 elements or more:
ArgMax and ReduceMax along each row, then the first row holding the window's maximum). Which form each
window case takes, exactness against torch on every seed shape's window case (fast path: ties,
±0, ±inf; the checked path: NaN, all -inf windows), every runtime and graph optimizer through
validate(), dynamic batch, and a property test over tiling shapes, dtypes and layouts."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adapool
from layouts import LAYOUTS, with_layout
from onnx_export import export
from onnx_export._spec import make_spec
from onnx_export._strategies import _argmax_form, uniform_windows
from test_onnx_export import assert_validated, run_model, strategy_of

OPS = {1: "adaptive_max_pool1d", 2: "adaptive_max_pool2d", 3: "adaptive_max_pool3d"}


def op_of(shape, out):
    return OPS[len(out)]


def form_of(shape, out):
    spec = make_spec(op_of(shape, out), shape, output_size=out, return_indices=True)
    windows = [uniform_windows(o, c) for o, c in zip(spec.out, spec.spatial)]
    if None in windows:
        return None   # not a strided pool's windows: not the pool strategy's
    kernel, stride = zip(*windows)
    return _argmax_form(spec, kernel, stride)


def op_types(model):
    return [n.op_type for n in model.graph.node]


def all_op_types(graph):
    """Op types in the graph and in every If branch under it."""
    types = []
    for n in graph.node:
        types.append(n.op_type)
        for a in n.attribute:
            if a.type == a.GRAPH:
                types += all_op_types(a.g)
    return types


def export_indices(shape, out, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # bfloat16's warning about tract and OpenVINO
        return export(op_of(shape, out), shape, output_size=out, return_indices=True, **kw)


def tricky(shape, dtype, rng, nan=False, minus_inf_window=False, infinities="+-"):
    """Values on a coarse grid (ties within and across rows), ±0 (the zero torch returns keeps
    its sign), and the ``infinities`` asked for sprinkled in. The graphs check the input's sum:
    +inf alone or -inf alone keeps it off NaN (the fast path); both, NaN, or a whole window of
    -inf (on request) take the checked path (onnxruntime's reductions don't follow torch there)."""
    x = np.round(rng.standard_normal(shape) * 2) / 2
    x[x == 0] = rng.choice([-0.0, 0.0], size=int((x == 0).sum()))
    flat = x.reshape(-1)
    if flat.size >= 8:
        if "+" in infinities:
            flat[rng.integers(0, 29)::29] = np.inf
        if "-" in infinities:
            flat[rng.integers(0, 11)::11] = -np.inf
        if nan:
            flat[rng.integers(0, 37)::37] = np.nan
    if minus_inf_window:
        x[(0,) * (x.ndim - 2)] = -np.inf   # one whole plane: every window of it
    return x.astype(dtype)


def torch_indices(torch, x, out):
    """torch's values and indices in x's dtype (float16 through float32: max picks an element)."""
    t = torch.from_numpy(np.ascontiguousarray(x.astype(np.float32) if x.dtype == np.float16 else x))
    y, idx = getattr(torch.nn.functional, op_of(x.shape, out))(t, out, return_indices=True)
    return y.numpy().astype(x.dtype), idx.numpy()


def assert_exact(got, want, what):
    """Indices equal, values equal bit for bit up to NaN payloads: NaN where NaN, the sign of
    every zero."""
    (y, idx), (y_want, idx_want) = got, want
    assert y.shape == y_want.shape and idx.shape == idx_want.shape, what
    assert y.dtype == y_want.dtype and idx.dtype == np.int64, what
    np.testing.assert_array_equal(idx, idx_want, err_msg=f"{what}: indices")
    np.testing.assert_array_equal(np.isnan(y), np.isnan(y_want), err_msg=f"{what}: NaN positions")
    np.testing.assert_array_equal(y[~np.isnan(y)], y_want[~np.isnan(y_want)], err_msg=f"{what}: values")
    np.testing.assert_array_equal(np.signbit(y[y == 0]), np.signbit(y_want[y_want == 0]), err_msg=f"{what}: zero signs")


# ---- which form each window case takes ------------------------------------------------------------

# every seed shape's window case (channels cut down: the windows are what matter), the form
# auto's `pool` graph takes, and smaller relatives of each class
SEEDS = [
    ((2, 8, 14, 14), 7, None),              # 2x2 windows: MaxPool's Indices (ArgMax along rows of 2 is slower)
    ((2, 8, 7, 7), 1, "runs"),              # global: one ArgMax over each plane
    ((1, 4, 56, 56), 7, "separable"),       # 8x8
    ((1, 2, 112, 112), 7, "separable"),     # 16x16
    ((1, 2, 100, 100), 10, "separable"),    # 10x10
    ((2, 8, 15, 15), 7, None),              # kernel 3, stride 2: overlapping, MaxPool's Indices
    ((1, 2, 223, 223), 7, None),            # not uniform: the gather strategy's padded MaxPool
]
FORMS = [
    ((2, 3, 20), (4,), "runs"),             # 1-d windows are always runs
    ((3, 20), (5,), "runs"),                # unbatched
    ((2, 3, 12, 10), (3, 1), "runs"),       # (o, 1): whole rows of the plane
    ((2, 3, 12, 32), (1, 2), "separable"),  # (1, o): columns are not runs
    ((2, 3, 4, 6, 8), (1, 1, 1), "runs"),   # 3-d global
    ((2, 3, 4, 6, 8), (2, 1, 1), "runs"),
    ((2, 3, 4, 6, 8), (2, 2, 2), None),     # 3-d tiles that are not runs: MaxPool's Indices
    ((2, 3, 2, 8), (2, 2), "separable"),    # 1x4: the shortest separable window row
    ((2, 3, 8, 6), (2, 2), None),           # 4x3: rows too short, MaxPool
    ((1, 2, 66, 32), (2, 2), "separable"),  # 33 rows a window (no gather along a window's rows)
    ((2, 3, 9, 9), (2, 2), None),           # overlapping: kernel 5, stride 4
]


@pytest.mark.parametrize("shape,out,form", [(s, (o, o), f) for s, o, f in SEEDS] + FORMS)
def test_form_of_each_window_case(shape, out, form):
    assert form_of(shape, out) == form
    model = export_indices(shape, out)
    types = op_types(model)
    if form is None:   # MaxPool's own Indices on the fast path
        assert "MaxPool" in types, types
        return
    assert strategy_of(model) == "pool"
    # no MaxPool at all: onnxruntime's MaxPool with an Indices output is the slow kernel
    assert "MaxPool" not in types and "ArgMax" in types and types.count("If") == 1, types
    # separable: one gathered row a window (GatherND), no nested If
    assert ("GatherND" in types) == (form == "separable"), types
    assert all_op_types(model.graph).count("If") == 1


# ---- exact against torch --------------------------------------------------------------------------

CHECKED = dict(fast_plus=dict(infinities="+"), fast_minus=dict(infinities="-"), both_infinities=dict(),
               nan=dict(nan=True), minus_inf_window=dict(infinities="", minus_inf_window=True))


@pytest.mark.parametrize("case", list(CHECKED))
@pytest.mark.parametrize("shape,out,form", SEEDS, ids=[f"{'x'.join(map(str, s))}-{o}" for s, o, _ in SEEDS])
def test_seed_window_cases_match_torch(shape, out, form, case, ort, torch_oracle, rng):
    """Every seed shape's window case: auto's graph against torch float32, on the fast path
    (ties, ±0, +inf or -inf) and on the checked one (both infinities, NaN, a plane of -inf)."""
    x = tricky(shape, np.float32, rng, **CHECKED[case])
    model = export_indices(shape, (out, out))
    assert_exact(run_model(model, x, ort), torch_indices(torch_oracle, x, (out, out)), f"{shape}->{out} {case}")


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "bfloat16"])
@pytest.mark.parametrize("shape,out,form", FORMS[:8], ids=[f"{'x'.join(map(str, s))}-{o}" for s, o, _ in FORMS[:8]])
def test_forms_match_adapool_in_every_dtype(shape, out, form, dtype, ort, rng):
    """float16 and bfloat16 too (bfloat16: the float32 graph between Casts); float64 takes the
    gather strategy (onnx's reference evaluator returns wrong float64 MaxPool indices)."""
    from adapool._bfloat16 import BFLOAT16
    np_dtype = BFLOAT16 if dtype == "bfloat16" else np.dtype(dtype)
    model = export_indices(shape, out, dtype=dtype)
    assert strategy_of(model) == ("gather" if dtype == "float64" else "pool")
    for nan in (False, True):
        x = tricky(shape, np.float32, rng, nan=nan, infinities="+").astype(np_dtype)
        if dtype == "bfloat16":   # onnxruntime's NumPy API refuses bfloat16: validate() hands OrtValues
            from onnx_export._runtimes import RUNTIMES
            got = RUNTIMES["onnxruntime-cpu"].run(model, [{"input": x}])[0][0]
        else:
            got = run_model(model, x, ort)
        want = adapool.adaptive_max_pool1d(x, out[0], True) if len(out) == 1 else \
            getattr(adapool, op_of(shape, out))(x, out, True)
        assert_exact(got, list(want), f"{dtype} nan={nan}")


def test_first_row_with_the_maximum_wins(ort):
    """Row-major order: a maximum in an earlier row wins over one further left in a later row
    (the separable form picks the row first, then the column in it), and within a row the
    first of equal maxima."""
    x = np.zeros((1, 1, 8, 32), np.float32)
    x[0, 0, 1, 3] = x[0, 0, 2, 0] = x[0, 0, 1, 2] = 5       # window (0, 0): row 1, column 2 -> 34
    x[0, 0, 0, 31] = x[0, 0, 3, 16] = 4                     # window (0, 1): row 0 -> 31
    x[0, 0, 4:, :16] = -1
    x[0, 0, 7, 3] = x[0, 0, 6, 1] = -0.5                    # window (1, 0): row 6 -> 193
    model = export_indices(x.shape, (2, 2))
    assert form_of(x.shape, (2, 2)) == "separable"
    y, idx = run_model(model, x, ort)
    np.testing.assert_array_equal(idx[0, 0], [[34, 31], [193, 144]])
    assert_exact((y, idx), adapool.adaptive_max_pool2d(x, 2, True), "ties")


def test_minus_inf_rows_inside_a_window(ort):
    """Whole rows of -inf in a window whose maximum is finite (OpenVINO's and tract's ReduceMax
    of such a row is the lowest float, below any maximum the check lets through), and a window
    whose maximum is +inf."""
    x = np.full((1, 2, 8, 32), -np.inf, np.float32)
    x[0, 0, 3, 2] = -7
    x[0, 0, 5, 21] = x[0, 0, 6, 20] = 3
    x[0, 1, 2, 1] = np.inf
    x[0, 1, 6, 22] = np.inf
    x[0, 1, 4:, :16] = 1
    x[0, 1, 0:4, 16:] = -3e38
    model = export_indices(x.shape, (2, 2))
    for name, got in _every_runtime(model, x):
        assert_exact(got, adapool.adaptive_max_pool2d(x, 2, True), name)


def _every_runtime(model, x):
    from onnx_export._runtimes import RUNTIMES
    ran = []
    for name in ("onnxruntime-cpu", "openvino", "tract", "onnx-reference"):
        if RUNTIMES[name].missing():
            continue   # the runtime matrix (test_runtimes.py) says which are required where
        ran.append(name)
        yield name, RUNTIMES[name].run(model, [{"input": x.copy()}])[0][0]
    assert "onnxruntime-cpu" in ran and "onnx-reference" in ran


@pytest.mark.parametrize("shape,out", [((2, 1, 4, 4), (1, 1)), ((2, 1, 8, 32), (2, 2)), ((2, 1, 8), (2,))])
def test_zero_signs_on_every_runtime(shape, out):
    """A window whose first maximum is -0.0 gives -0.0 (0.0 == -0.0: a later 0.0 doesn't
    replace it), one whose first maximum is 0.0 gives 0.0: the graphs gather the element at
    the index, never a reduction's zero."""
    x = np.full(shape, -1.0, np.float32)
    first = x.reshape(shape[0], -1)
    first[0, ::2] = -0.0
    first[0, 1::2] = 0.0
    first[1, ::2] = 0.0
    first[1, 1::2] = -0.0
    want = getattr(adapool, op_of(shape, out))(x, out if len(out) > 1 else out[0], True)
    assert np.signbit(want[0]).reshape(2, -1)[0].all() and not np.signbit(want[0]).reshape(2, -1)[1].any()
    model = export_indices(shape, out)
    for name, got in _every_runtime(model, x):
        assert_exact(got, want, name)


@pytest.mark.parametrize("strategy", ["dynamic", "gather"])
def test_argmax_fallback_keeps_the_sign_of_zero(strategy, ort):
    """The ArgMax form (the dynamic graph; every fast form's NaN fallback) picks the element by
    multiplying it by ones elsewhere in its window: a sum with zeros there turned a picked
    -0.0 into +0.0 under onnxruntime."""
    x = np.array([[[[-0.0, 0.0, 0.0, -0.0], [0.0, -0.0, -0.0, -1], [-5, -0.0, 2, 2], [-0.0, -7, 1, 0]]],
                  [[[0.0, -0.0, -0.0, 0.0], [-0.0, 0.0, -1, -0.0], [-0.0, -5, 2, 2], [-7, -0.0, np.nan, 1]]]],
                 np.float32)
    want = adapool.adaptive_max_pool2d(x, 2, True)
    assert np.signbit(want[0][0, 0, 0, 0]) and np.signbit(want[0][1, 0, 0, 0]) is np.False_
    shape = ("N", 1, "H", "W") if strategy == "dynamic" else x.shape
    model = export("adaptive_max_pool2d", shape, output_size=2, return_indices=True, strategy=strategy)
    assert_exact(run_model(model, x, ort), want, strategy)
    # the NaN sends auto's graph (global windows: the runs form) to its fallback
    model = export_indices(x.shape, (1, 1))
    assert_exact(run_model(model, x, ort), adapool.adaptive_max_pool2d(x, 1, True), "runs + NaN")


# ---- every runtime and graph optimizer ------------------------------------------------------------

RUNTIME_CASES = [
    ((2, 3, 7, 7), (1, 1)), ((3, 20), (5,)), ((2, 3, 12, 10), (3, 1)), ((2, 2, 4, 6, 8), (1, 1, 1)),
    ((2, 3, 16, 64), (2, 4)), (("N", 3, 16, 64), (4, 4)), ((3, 8, 48), (2, 3)),
    # separable windows of 33 rows, and gathered rows of 70 (onnx's evaluator gathers along
    # more than 64 choices only from a 2-d (rows, 1) index)
    ((1, 2, 66, 32), (2, 2)), ((1, 2, 4, 140), (2, 2)),
]


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("shape,out", RUNTIME_CASES, ids=[f"{'x'.join(map(str, s))}-{o}" for s, o in RUNTIME_CASES])
def test_forms_exact_on_every_runtime(shape, out, dtype):
    """validate(): onnxruntime, OpenVINO, tract and onnx's reference evaluator against adapool's
    kernel, on random data and on data with ties, NaN and -inf."""
    assert form_of(tuple(1 if isinstance(d, str) else d for d in shape), out) is not None
    model = export_indices(shape, out, dtype=dtype)
    assert_validated(model, make_spec(op_of(shape, out), shape, output_size=out, return_indices=True, dtype=dtype))


@pytest.mark.parametrize("shape,out", [((2, 3, 7, 7), (1, 1)), ((3, 20), (5,)), ((2, 3, 16, 64), (2, 4)),
                                       (("N", 3, 16, 64), (4, 4))])
def test_optimized_forms_stay_exact(shape, out):
    """onnxsim, onnxslim and onnxoptimizer (which fuses consecutive Reshapes: a Reshape 0 that
    copies a dim would copy it from the wrong tensor there)."""
    model = export_indices(shape, out)
    report = assert_validated(model, make_spec(op_of(shape, out), shape, output_size=out, return_indices=True),
                              optimize=["onnxsim", "onnxslim", "onnxoptimizer"])
    assert any("onnxoptimizer" in row.runtime for row in report.rows)


def test_dynamic_batch(ort, rng):
    """A dynamic batch (and N = 0): the indices are per plane from the start, no plane offsets."""
    for shape, out in [(("N", 3, 8, 32), (2, 2)), (("N", 3, 7, 7), (1, 1)), (("N", "C", 12), (3,))]:
        model = export_indices(shape, out)
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        for n in (0, 1, 3):
            size = tuple(n if d == "N" else 4 if d == "C" else d for d in shape)
            x = tricky(size, np.float32, rng, infinities="-")
            want = getattr(adapool, op_of(size, out))(x, out if len(out) > 1 else out[0], True)
            assert_exact(sess.run(None, {"input": x}), want, f"{shape} at {size}")


# ---- properties ----------------------------------------------------------------------------------

@st.composite
def tiling_calls(draw):
    nd = draw(st.sampled_from([1, 2, 2, 3]))
    out = [draw(st.integers(1, 3)) for _ in range(nd)]
    kernel = [draw(st.integers(1, 6)) for _ in range(nd)]
    if nd == 2 and draw(st.booleans()):
        kernel[1] = draw(st.integers(3, 5))   # around the separable form's shortest row
    if nd == 3 and draw(st.booleans()):
        out[1:] = [1, 1]   # runs
    lead = draw(st.sampled_from([(2, 3), (3,), (1, 1)]))
    shape = lead + tuple(o * k for o, k in zip(out, kernel))
    return shape, tuple(out), draw(st.sampled_from(["float16", "float32"])), draw(st.sampled_from(LAYOUTS))


@settings(max_examples=30, deadline=None)
@given(call=tiling_calls(), seed=st.integers(0, 2**16), nan=st.booleans(), infinities=st.sampled_from(["+", "-", "+-"]))
def test_tiling_property(call, seed, nan, infinities, ort):
    """Windows that tile the plane, every form (runs, separable, MaxPool's Indices): auto's
    graph equals adapool's kernel (torch's rules) bit for bit, zero signs included, on data
    with ties, ±0, ±inf and sometimes NaN, in any memory layout of the input."""
    shape, out, dtype, layout = call
    x = tricky(shape, dtype, np.random.default_rng(seed), nan=nan, infinities=infinities)
    want = getattr(adapool, op_of(shape, out))(x, out if len(out) > 1 else out[0], True)
    model = export_indices(shape, out, dtype=dtype)
    got = run_model(model, with_layout(x, layout, batched=len(shape) - len(out) == 2), ort)
    assert_exact(got, want, f"{shape}->{out} {dtype} {layout} form={form_of(shape, out)}")
