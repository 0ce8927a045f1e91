"""onnx_export of lp_pool1d/2d/3d: torch's composition of powers around the strided pools'
own graphs. Every strategy x op x p x dtype x static/dynamic under onnxruntime's CPU EP
against adapool's kernel, auto's graphs against torch, every runtime through validate(), and
the edge cases (pow's special cases, -0.0 window sums, p = ±inf, ceil_mode's extra window,
torch's error order) by name."""
import json

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adapool
from onnx_export import STRATEGIES, ExportError, export, validate
from onnx_export._spec import OPS, make_spec
from onnx_export._strategies import LP_STRATEGIES
from test_onnx_export import (TOL, VALIDATE_RUNTIMES, assert_validated, case_id, dynamic_shape, export_quiet, run_model,
                              run_sizes, strategy_of)

INF = float("inf")
# torch's pow special cases (1, 2, 3, 0.5, -0.5, -1, -2 as exponent p or 1/p), general powers,
# an int and a float of the same p, and the max paths
NORMS = [1, 2, 3, 2.0, 4, 1.5, 0.5, -0.5, -1, -2, -1.5, INF, -INF]
# (op, kwargs, input shape): ceil_mode adding a window (14 with k3 s2: 7 windows, 6 without),
# uneven kernels and strides, unbatched
CASES = [
    ("lp_pool1d", dict(kernel_size=3, stride=2, ceil_mode=True), (2, 3, 14)),
    ("lp_pool1d", dict(kernel_size=2), (3, 9)),
    ("lp_pool2d", dict(kernel_size=3, stride=2, ceil_mode=True), (2, 3, 14, 13)),
    ("lp_pool2d", dict(kernel_size=(3, 2), stride=(1, 2)), (3, 8, 9)),
    ("lp_pool3d", dict(kernel_size=(2, 3, 2), stride=(1, 2, 3), ceil_mode=True), (1, 2, 5, 7, 8)),
]


def odd(p):
    return float(p).is_integer() and not np.isinf(p) and int(p) % 2 == 1


def lp_inputs(shape, dtype, p, rng):
    """Magnitudes (away from 0), and data with ties, zeros, NaN and ±inf. Odd p: magnitudes
    only, since signed powers cancel in a window's sum and another summation order (a
    MatMul's) then gives a wholly different tiny sum (validate does the same)."""
    pos = (np.abs(rng.standard_normal(shape)) + 0.25).astype(dtype)
    x = np.round(rng.standard_normal(shape) * 4) / 4
    if odd(p):
        x = np.abs(x)
    flat = x.reshape(-1)
    if flat.size >= 8:
        for value, step in ((np.inf, 17), (INF if odd(p) else -INF, 23), (np.nan, 13)):
            flat[rng.integers(0, step):: step] = value
    return [pos, x.astype(dtype)]


def assert_close(got, want, dtype, p, what):
    """A result s ** (1/p) carries |1/p| times the relative error of the pooled sum s."""
    rtol, atol = TOL[dtype]
    rtol *= 1 + (0 if np.isinf(p) else abs(1 / p))
    (g,), w = got, want
    assert g.shape == w.shape and g.dtype == w.dtype, what
    np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=f"{what}: NaN positions")
    np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol, atol=atol, err_msg=what)


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_strategy_is_exact(case, dtype, dynamic, ort, rng):
    op, kw, shape = case
    nd = OPS[op][1]
    in_shape = dynamic_shape(shape, nd) if dynamic else shape
    # every p for float32 at static sizes; a sample of the kinds of p otherwise (time)
    for p in NORMS if (dtype == "float32" and not dynamic) else [2, 1.5, -INF] if dynamic else [2, 3, 1.5, -1, -INF]:
        exported = []
        for name in STRATEGIES:
            try:
                model = export_quiet(op, in_shape, dtype=dtype, strategy=name, norm_type=p, **kw)
            except ExportError:
                continue
            exported.append(name)
            for size in run_sizes(shape, nd, dynamic):
                for x in lp_inputs(size, dtype, p, rng):
                    got = run_model(model, x, ort)   # float64 AveragePool: NaN zeroed (see run_model)
                    assert_close(got, getattr(adapool, op)(x, p, **kw), dtype, p, f"{name} p={p} at {size}")
        # at least auto's form and the dynamic ones (the function form included)
        assert {"dynamic", "function"} <= set(exported), (p, exported)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_auto_graphs_match_torch(case, ort, torch_oracle, rng):
    op, kw, shape = case
    nd = OPS[op][1]
    for p in (2, 3, 1.5, -1, INF):
        for in_shape in (shape, dynamic_shape(shape, nd)):
            model = export_quiet(op, in_shape, norm_type=p, **kw)
            for size in run_sizes(shape, nd, in_shape != shape):
                for x in lp_inputs(size, np.float32, p, rng):
                    want = getattr(torch_oracle.nn.functional, op)(torch_oracle.from_numpy(x), p, **kw).numpy()
                    assert_close(run_model(model, x.copy(), ort), want, "float32", p, f"{op} p={p} {in_shape}")


# ---- every runtime, through validate() ---------------------------------------------------------

@pytest.mark.parametrize("p", [2, 3, 0.5, -1.5, -INF])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_auto_graphs_exact_on_every_runtime(p, dtype):
    for op, kw, shape in (CASES[0], CASES[2], CASES[4]):
        nd = OPS[op][1]
        # dynamic graphs in float32 for two p only: the average ones with ceil_mode load slowly
        for in_shape in (shape, dynamic_shape(shape, nd))[:2 if dtype == "float32" and p in (2, -INF) else 1]:
            model = export_quiet(op, in_shape, dtype=dtype, norm_type=p, **kw)
            assert_validated(model, make_spec(op, in_shape, dtype=dtype, norm_type=p, **kw), LP_STRATEGIES)


def test_optimized_graphs_stay_exact():
    """The -0.0 guard is a Where, not + 0.0, which optimizers may fold away."""
    for p in (1, 2, INF):
        op, kw, shape = CASES[2]
        model = export_quiet(op, shape, norm_type=p, **kw)
        report = assert_validated(model, make_spec(op, shape, norm_type=p, **kw), LP_STRATEGIES,
                                  optimize=["onnxsim", "onnxslim", "onnxoptimizer"])
        assert any("onnxslim" in row.runtime for row in report.rows)


# ---- the cases by name -------------------------------------------------------------------------

def _op_types(model):
    return [n.op_type for n in model.graph.node]


def test_power_special_cases_are_torchs():
    """torch's pow special-cases p = 2 (a square), 3, 0.5 (sqrt), -1, ...; the graph takes the
    same steps (a general Pow rounds differently), and p = 1 has no power at all."""
    shape = (1, 2, 8, 8)
    assert "Pow" not in _op_types(export("lp_pool2d", shape, norm_type=2, kernel_size=2)) + \
        _op_types(export("lp_pool2d", shape, norm_type=0.5, kernel_size=2))   # 1/2 = 0.5: Sqrt
    assert "Sqrt" in _op_types(export("lp_pool2d", shape, norm_type=2, kernel_size=2))
    assert _op_types(export("lp_pool2d", shape, norm_type=1.5, kernel_size=2)).count("Pow") == 2
    assert _op_types(export("lp_pool2d", shape, norm_type=1, kernel_size=2)).count("Pow") == 0


def test_infinite_norm_is_a_max_pool_of_abs(ort, rng):
    """p = inf: max_pool(|x|), MaxPool on Abs with the NaN/-inf guard; -inf: -max_pool(-|x|)."""
    x = np.array([[[0, np.nan, 1, -3, -np.inf, 2, -0.5, 0.25, 5]]], np.float32)
    for p in (INF, -INF):
        model = export("lp_pool1d", (1, 1, 9), norm_type=p, kernel_size=3, stride=2)
        assert {"Abs", "MaxPool"} <= set(_op_types(model)) and "Pow" not in _op_types(model)
        (got,) = run_model(model, x.copy(), ort)
        want = adapool.lp_pool1d(x, p, 3, 2)
        np.testing.assert_array_equal(got, want)
    assert np.isnan(want[0, 0, 0]) and list(want[0, 0, 1:]) == [1, 0.5, 0.25]   # the smallest |x|


def test_negative_zero_sum_gives_positive_zero(ort):
    """A window of -0.0 with p = 1: torch's sign(s) * relu(|s|) turns the sum -0.0 into +0.0.
    With p = -1 the powers are -inf, not zeros, and the result is -0.0, as in torch."""
    x = np.full((1, 1, 4), -0.0, np.float32)
    for p, negative in ((1, False), (3, False), (-1, True)):
        model = export("lp_pool1d", (1, 1, 4), norm_type=p, kernel_size=2)
        (got,) = run_model(model, x.copy(), ort)
        want = adapool.lp_pool1d(x, p, 2)
        assert np.all(want == 0) and np.all(np.signbit(want) == negative)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


def test_float16_rounds_after_every_step(ort):
    """float16: each elementwise step in float32 rounded to float16, the exponents themselves
    rounded to float16 (1/3 -> 0.33325), as torch's CPU half ops: exact, not just close."""
    rng = np.random.default_rng(5)
    x = (np.abs(rng.standard_normal((2, 3, 16, 16))) + 0.1).astype(np.float16)
    for p in (3, 1.5):
        model = export("lp_pool2d", (2, 3, 16, 16), dtype="float16", norm_type=p, kernel_size=2, strategy="pool")
        (got,) = run_model(model, x, ort)
        np.testing.assert_array_equal(got, adapool.lp_pool2d(x, p, 2))


def test_ceil_mode_window_is_scaled_by_the_full_kernel(ort):
    """lp_pool2d(2, 3, stride 2, ceil_mode) on 14 columns: the 7th window [12, 15) holds 2
    columns, averaged over them (no padding to count) but multiplied by the full kernel area
    9, as torch's. AveragePool would count that window differently: `pool` refuses it."""
    kw = dict(norm_type=1, kernel_size=3, stride=2, ceil_mode=True)
    with pytest.raises(ExportError, match="counts differently"):
        export("lp_pool2d", (1, 1, 14, 14), strategy="pool", **kw)
    model = export("lp_pool2d", (1, 1, 14, 14), **kw)
    assert strategy_of(model) == "matmul"
    x = np.ones((1, 1, 14, 14), np.float32)
    (got,) = run_model(model, x, ort)
    assert got[0, 0, 0, -1] == pytest.approx(9.0) and got[0, 0, 0, 0] == 9.0
    np.testing.assert_array_equal(got, adapool.lp_pool2d(x, **kw))


def test_strategies_that_serve_lp_pool():
    shape = (1, 2, 8, 8)
    with pytest.raises(ExportError, match="does not serve"):
        export("lp_pool2d", shape, norm_type=2, kernel_size=2, strategy="global")
    with pytest.raises(ExportError, match="doesn't serve average pooling"):
        export("lp_pool2d", shape, norm_type=2, kernel_size=2, strategy="gather")
    assert strategy_of(export("lp_pool2d", shape, norm_type=INF, kernel_size=2, strategy="gather")) == "gather"
    with pytest.raises(ExportError, match="doesn't serve max pooling"):
        export("lp_pool2d", shape, norm_type=INF, kernel_size=2, strategy="matmul")
    # onnxruntime has no float64 AveragePool: matmul, as for avg_pool2d
    assert strategy_of(export("lp_pool2d", shape, dtype="float64", norm_type=2, kernel_size=2)) == "matmul"
    assert strategy_of(export("lp_pool2d", shape, norm_type=2, kernel_size=2)) == "pool"
    # not measured on the CUDA EP: no strategy is claimed exact there
    with pytest.warns(UserWarning, match="onnxruntime-cuda"):
        export("lp_pool2d", shape, norm_type=2, kernel_size=2, targets=["onnxruntime-cuda"])


@pytest.mark.parametrize("op,shape,kw", [
    ("lp_pool2d", (1, 3, 8, 8), dict(norm_type=0, kernel_size=3)),             # torch's 1.0 / norm_type
    ("lp_pool1d", (1, 3, 8), dict(norm_type=2, kernel_size=[3])),             # Tensor.mul by a list
    ("lp_pool2d", (1, 3, 8, 8), dict(norm_type=2, kernel_size=(3, 3, 3))),    # _pair's unpacking
    ("lp_pool3d", (1, 3, 2, 8, 8), dict(norm_type=2, kernel_size=3)),         # avg_pool3d: input too small
    ("lp_pool2d", (1, 3, 8, 8), dict(norm_type="2", kernel_size=3)),          # pow's TypeError
    ("lp_pool2d", (1, 3, 8, 8), dict(norm_type=0, kernel_size=(3, 3, 3))),    # the unpacking first
    ("lp_pool1d", (1, 3, 8), dict(norm_type=INF, kernel_size=3, stride=0)),   # max_pool1d's check
])
def test_export_errors_match_the_numpy_call(op, shape, kw):
    x = np.zeros(shape, np.float32)
    with pytest.raises((ValueError, TypeError, ZeroDivisionError)) as numpy_error:
        getattr(adapool, op)(x, **kw)
    with pytest.raises(type(numpy_error.value)) as export_error:
        export(op, shape, **kw)
    assert str(export_error.value) == str(numpy_error.value)


def test_numpy_float32_norm_is_refused():
    """torch reads a NumPy float32 p as float32 (1/p a float32 quotient; inf not its max path):
    export takes Python numbers only, rather than build a graph of another p."""
    with pytest.raises(TypeError, match="Python int or float"):
        export("lp_pool2d", (1, 2, 8, 8), norm_type=np.float32(2.5), kernel_size=2)
    assert strategy_of(export("lp_pool2d", (1, 2, 8, 8), norm_type=np.float64(2.5), kernel_size=2)) == "pool"


def test_metadata_records_the_call():
    model = export("lp_pool1d", (1, 2, 9), norm_type=INF, kernel_size=3, ceil_mode=True)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["adapool.op"] == "lp_pool1d"
    assert json.loads(meta["adapool.kwargs"]) == dict(norm_type=INF, kernel_size=3, stride=[3], ceil_mode=True)
    kwargs = json.loads({p.key: p.value for p in export("lp_pool3d", (2, 5, 5, 6), norm_type=2, kernel_size=2,
                                                         stride=(1, 2, 1)).metadata_props}["adapool.kwargs"])
    assert kwargs == dict(norm_type=2, kernel_size=[2, 2, 2], stride=[1, 2, 1], ceil_mode=False)


def test_empty_batch(ort):
    for in_shape in ((0, 3, 9, 9), ("N", 3, 9, 9)):
        model = export("lp_pool2d", in_shape, norm_type=2, kernel_size=3, stride=2)
        x = np.zeros((0, 3, 9, 9), np.float32)
        (got,) = run_model(model, x, ort)
        assert got.shape == (0, 3, 4, 4)


def test_checker_and_shape_inference():
    for op, kw, shape in CASES:
        for p in (2, INF):
            for name in LP_STRATEGIES:
                try:
                    model = export_quiet(op, shape, norm_type=p, strategy=name, **kw)
                except ExportError:
                    continue
                onnx.checker.check_model(model, full_check=True)
                inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
                dims = [d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim]
                assert dims == list(make_spec(op, shape, norm_type=p, **kw).output_shape())


def test_command_line_takes_the_lp_arguments(tmp_path):
    from onnx_export.__main__ import main
    out = tmp_path / "p.onnx"
    assert main(["export", "lp_pool2d", "--input-shape", "1,3,15,15", "--norm-type", "2", "--kernel-size", "3",
                 "--stride", "2", "--ceil-mode", "-o", str(out), "--no-validate"]) == 0
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert json.loads(meta["adapool.kwargs"]) == dict(norm_type=2, kernel_size=[3, 3], stride=[2, 2], ceil_mode=True)
    assert main(["export", "lp_pool1d", "--input-shape", "1,3,15", "--norm-type=-inf", "--kernel-size", "3",
                 "-o", str(out), "--no-validate"]) == 0
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert json.loads(meta["adapool.kwargs"])["norm_type"] == -INF and json.loads(meta["adapool.kwargs"])["kernel_size"] == 3
    for bad in (["--padding", "1"], ["--return-indices"], []):   # lp_pool has no padding; p is required
        args = ["export", "lp_pool1d", "--input-shape", "1,3,15", "--kernel-size", "3", "-o", str(out), "--no-validate"]
        assert main(args + bad + (["--norm-type", "2"] if bad else [])) == 2
    assert main(["export", "max_pool1d", "--input-shape", "1,3,15", "--kernel-size", "3", "--norm-type", "2",
                 "-o", str(out), "--no-validate"]) == 2


# ---- properties --------------------------------------------------------------------------------

@st.composite
def lp_calls(draw):
    nd = draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 4)) for _ in range(nd)]
    stride = [draw(st.integers(1, 4)) for _ in range(nd)]
    sizes = [draw(st.integers(k, 11)) for k in kernel]
    kw = dict(norm_type=draw(st.sampled_from(NORMS)), kernel_size=kernel[0] if nd == 1 else kernel,
              stride=stride, ceil_mode=draw(st.booleans()))
    lead = draw(st.sampled_from([(2, 3), (3,)]))
    return f"lp_pool{nd}d", kw, lead + tuple(sizes), draw(st.sampled_from(["float16", "float32", "float64"]))


@settings(max_examples=30, deadline=None)
@given(call=lp_calls(), seed=st.integers(0, 2**16))
def test_lp_property(call, seed, ort):
    """Random ops, p, arguments, shapes and dtypes: auto's graph and the dynamic one equal
    adapool's kernel on magnitudes and on data with ties, zeros, NaN and ±inf."""
    op, kw, shape, dtype = call
    for x in lp_inputs(shape, dtype, kw["norm_type"], np.random.default_rng(seed)):
        want = getattr(adapool, op)(x, **kw)
        for strategy in ("auto", "dynamic"):
            model = export_quiet(op, shape, dtype=dtype, strategy=strategy, **kw)
            assert_close(run_model(model, x.copy(), ort), want, dtype, kw["norm_type"], f"{strategy}: {op} {kw} {shape}")


# ---- max_unpool1d/2d/3d ------------------------------------------------------------------------

UNPOOL_CASES = [
    ("max_unpool1d", dict(kernel_size=3, stride=2, padding=1), (3, 6)),
    ("max_unpool1d", dict(kernel_size=2, output_size=[9]), (2, 3, 4)),
    ("max_unpool2d", dict(kernel_size=2), (2, 3, 4, 5)),
    ("max_unpool2d", dict(kernel_size=3, stride=(2, 1), padding=1, output_size=(8, 5)), (3, 4, 5)),
    ("max_unpool3d", dict(kernel_size=2, stride=(1, 2, 2)), (1, 2, 3, 3, 4)),
]


def run_unpool(model, x, idx, ort):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x, "indices": idx})


def pooled_indices(op, kw, shape, dtype, rng):
    """The values and indices max pooling gives (overlapping windows repeat an index, with one
    value), pooled from an input of the unpooled size, with ties, NaN and ±inf."""
    nd = OPS[op][1]
    out = make_spec(op, shape, **kw).out
    big = np.round(rng.standard_normal(shape[:-nd] + tuple(out)) * 2).astype(dtype)
    big.reshape(-1)[:: 7] = np.nan
    big.reshape(-1)[3:: 11] = -np.inf
    pool = dict(kernel_size=kw["kernel_size"], stride=kw.get("stride"), padding=kw.get("padding", 0))
    values, idx = getattr(adapool, f"max_pool{nd}d")(big, return_indices=True, **pool)
    return values, idx


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("case", UNPOOL_CASES, ids=case_id)
def test_unpool_matches_adapool_and_torch(case, dtype, ort, torch_oracle, rng):
    """Scatter of each plane: distinct indices (a permutation's head) and max pooling's own
    (repeats carry one value), against adapool's kernel and torch, bit for bit."""
    op, kw, shape = case
    nd = OPS[op][1]
    model = export(op, shape, dtype=dtype, **kw)
    assert [i.name for i in model.graph.input] == ["input", "indices"]
    out = make_spec(op, shape, **kw).out
    n_in, n_out = int(np.prod(shape[-nd:])), int(np.prod(out))
    planes = int(np.prod(shape[:-nd]))
    distinct = np.stack([rng.permutation(n_out)[:n_in] for _ in range(planes)]).reshape(shape)
    feeds = [(rng.standard_normal(shape).astype(dtype), distinct)]
    values, idx = pooled_indices(op, kw, shape, dtype, rng)
    if values.shape == shape:   # max pooling of the unpooled size gives back this shape
        feeds.append((values, idx))
    for x, i in feeds:
        (got,) = run_unpool(model, x, i, ort)
        want = getattr(adapool, op)(x, i, **kw)
        np.testing.assert_array_equal(got, want)
        if dtype != "float16" or nd < 3:   # torch's CPU max_unpool3d has float16 too; keep it to 1/2-d
            t = getattr(torch_oracle.nn.functional, op)(torch_oracle.from_numpy(x), torch_oracle.from_numpy(i), **kw)
            np.testing.assert_array_equal(got, t.numpy())


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_unpool_exact_on_every_runtime(dtype):
    for op, kw, shape in UNPOOL_CASES[1:4]:
        nd = OPS[op][1]
        for in_shape in (shape, ("N",) * (len(shape) - nd) + shape[-nd:]):   # batch and channels may be dynamic
            model = export(op, in_shape, dtype=dtype, **kw)
            report = validate(model, runtimes=VALIDATE_RUNTIMES)
            for row in report.rows:
                assert row.passed, str(report)
            assert report.ok and len(report.cases) >= 2


def test_unpool_given_output_size_needs_static_spatial_sizes():
    """A given output_size must lie within one stride of the size the input's sizes give, which
    pins them: static spatial sizes only, and a static output of that size."""
    with pytest.raises(ExportError, match="a given output_size needs static spatial sizes"):
        export("max_unpool2d", (1, 3, "H", 5), kernel_size=2, output_size=(8, 10))
    model = export("max_unpool2d", ("N", "C", 4, 5), kernel_size=2, output_size=(9, 10))
    assert [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim][2:] == [9, 10]


# dynamic spatial sizes: the output size (torch's default) computed in the graph from Shape
UNPOOL_DYNAMIC = [
    ("max_unpool1d", dict(kernel_size=3, stride=2, padding=1), ("C", "L"), [(3, 6), (2, 11)]),
    ("max_unpool1d", dict(kernel_size=2), ("N", 3, "L"), [(2, 3, 4), (1, 3, 9)]),
    ("max_unpool2d", dict(kernel_size=2), ("N", "C", "H", "W"), [(2, 3, 4, 5), (1, 2, 7, 3), (0, 2, 3, 3)]),
    ("max_unpool2d", dict(kernel_size=3, stride=(2, 1), padding=1), (2, 3, "H", "W"), [(2, 3, 4, 5), (2, 3, 6, 2)]),
    ("max_unpool2d", dict(kernel_size=(3, 2), stride=2, padding=(1, 0)), (3, "H", 5), [(3, 4, 5), (3, 9, 5)]),
    ("max_unpool3d", dict(kernel_size=2, stride=(1, 2, 2)), (1, 2, "D", "H", "W"), [(1, 2, 3, 3, 4), (1, 2, 2, 5, 3)]),
]


def unpool_feeds(op, kw, shape, dtype, rng):
    """(values, indices) torch accepts at ``shape``: distinct random indices, and max pooling's
    own (repeats carry one value) from an input of the unpooled size, with NaN and -inf."""
    out = make_spec(op, shape, **kw).out
    nd = OPS[op][1]
    n_in, n_out = int(np.prod(shape[-nd:])), int(np.prod(out))
    planes = int(np.prod(shape[:-nd]))
    distinct = np.stack([rng.permutation(n_out)[:n_in] for _ in range(planes)]) if planes else \
        np.zeros((0, n_in), np.int64)
    feeds = [(rng.standard_normal(shape).astype(dtype), distinct.reshape(shape))]
    values, idx = pooled_indices(op, kw, shape, dtype, rng)
    if values.shape == shape:
        feeds.append((values, idx))
    return feeds


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("case", UNPOOL_DYNAMIC, ids=lambda c: f"{c[0]}-{'x'.join(map(str, c[2]))}")
def test_unpool_at_dynamic_sizes_matches_torch(case, dtype, ort, torch_oracle, rng):
    """One graph, several sizes at run time, under every installed runtime: bit for bit
    adapool's kernel and torch's max_unpool."""
    from onnx_export._runtimes import RUNTIMES
    op, kw, in_shape, sizes = case
    nd = OPS[op][1]
    model = export(op, in_shape, dtype=dtype, **kw)
    out_dims = model.graph.output[0].type.tensor_type.shape.dim
    assert all(not d.HasField("dim_value") for d, s in zip(out_dims[-nd:], in_shape[-nd:]) if isinstance(s, str))
    ran = set()
    for shape in sizes:
        for x, i in unpool_feeds(op, kw, shape, dtype, rng):
            want = getattr(adapool, op)(x, i, **kw)
            if x.size and (dtype != "float16" or nd < 3):
                t = getattr(torch_oracle.nn.functional, op)(torch_oracle.from_numpy(x), torch_oracle.from_numpy(i),
                                                            **kw)
                np.testing.assert_array_equal(want, t.numpy())
            for name in ("onnxruntime-cpu", "onnx-reference", "openvino", "tract"):
                # OpenVINO: no empty batches, and float64 computed in float32 (its documented limits)
                if RUNTIMES[name].missing() or (name == "openvino" and (not x.size or dtype == "float64")):
                    continue
                (got,), = RUNTIMES[name].run(model, [{"input": x, "indices": i}])[0]
                assert got.shape == want.shape, (name, shape)
                np.testing.assert_array_equal(got, want, err_msg=f"{name} at {shape}")
                ran.add(name)
    assert {"onnxruntime-cpu", "onnx-reference"} <= ran


@pytest.mark.parametrize("opset", [13, 18])
def test_unpool_at_dynamic_sizes_validates(opset):
    for op, kw, in_shape, _ in UNPOOL_DYNAMIC[1:4]:
        model = export(op, in_shape, opset=opset, **kw)
        report = validate(model, runtimes=VALIDATE_RUNTIMES)
        assert report.ok, str(report)
        assert len({tuple(c[0]) for c in report.cases}) >= 2   # several sizes (the cases are input shapes)


def test_unpool_indices_the_graph_cannot_check(ort):
    """torch raises on an index outside the output plane; a graph can't raise with its words:
    onnxruntime's ScatterElements fails past the plane, and a negative index in [-size, 0)
    counts from the plane's end (ONNX's rule). Documented in the strategy's notes."""
    model = export("max_unpool1d", (1, 1, 2), kernel_size=2)
    x = np.array([[[1.0, 2.0]]], np.float32)
    with pytest.raises(ValueError, match="index"):
        adapool.max_unpool1d(x, np.array([[[0, 4]]]), 2)
    with pytest.raises(Exception):
        run_unpool(model, x, np.array([[[0, 4]]]), ort)
    (got,) = run_unpool(model, x, np.array([[[0, -1]]]), ort)
    np.testing.assert_array_equal(got, [[[1, 0, 0, 2]]])
    assert "negative" in STRATEGIES["scatter"].notes


@pytest.mark.parametrize("op,shape,kw", [
    ("max_unpool2d", (1, 3, 4, 4), dict(kernel_size=2, output_size=(3, 3))),   # outside one stride
    ("max_unpool3d", (1, 3, 4, 4, 4), dict(kernel_size=2, stride=0)),         # (2-d accepts stride 0, as torch)
    ("max_unpool2d", (1, 3, 4, 4), dict(kernel_size=2.0)),
    ("max_unpool3d", (1, 3, 4, 4), dict(kernel_size=2, output_size=(8, 8))),
    ("max_unpool1d", (1, 3, 4), dict(kernel_size=(2, 2))),
])
def test_unpool_errors_match_the_numpy_call(op, shape, kw):
    x = np.zeros(shape, np.float32)
    with pytest.raises((ValueError, TypeError)) as numpy_error:
        getattr(adapool, op)(x, np.zeros(shape, np.int64), **kw)
    with pytest.raises(type(numpy_error.value)) as export_error:
        export(op, shape, **kw)
    assert str(export_error.value) == str(numpy_error.value)


def test_unpool_checker_metadata_and_command_line(tmp_path):
    for op, kw, shape in UNPOOL_CASES:
        model = export(op, shape, **kw)
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        dims = [d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim]
        assert dims == list(make_spec(op, shape, **kw).output_shape())
    meta = {p.key: p.value for p in export("max_unpool2d", (1, 3, 4, 5), kernel_size=2).metadata_props}
    assert json.loads(meta["adapool.kwargs"]) == dict(kernel_size=[2, 2], stride=[2, 2], padding=[0, 0],
                                                      output_size=[8, 10])
    from onnx_export.__main__ import main
    out = tmp_path / "u.onnx"
    assert main(["export", "max_unpool2d", "--input-shape", "N,3,4,5", "--kernel-size", "2", "--output-size", "9,10",
                 "-o", str(out)]) == 0
    assert [i.name for i in onnx.load(out).graph.input] == ["input", "indices"]
    assert main(["export", "max_unpool2d", "--input-shape", "1,3,4,5", "--kernel-size", "2", "--ceil-mode",
                 "-o", str(out), "--no-validate"]) == 2


# ---- fractional_max_pool2d/3d --------------------------------------------------------------------

FRACTIONAL_CASES = [
    ("fractional_max_pool2d", dict(kernel_size=2, output_size=(4, 5)), (2, 3, 9, 10)),
    ("fractional_max_pool2d", dict(kernel_size=(3, 2), output_ratio=(0.5, 0.7)), (3, 11, 7)),
    ("fractional_max_pool2d", dict(kernel_size=1, output_size=(9, 1)), (1, 2, 9, 4)),   # one window, every row
    ("fractional_max_pool3d", dict(kernel_size=2, output_size=(3, 4, 4)), (1, 2, 6, 7, 8)),
    ("fractional_max_pool3d", dict(kernel_size=(1, 2, 3), output_ratio=0.5), (2, 6, 7, 9)),
]


def samples_for(op, shape, dtype, rng):
    nd = OPS[op][1]
    n = shape[0] if len(shape) == nd + 2 else 1
    return adapool._fractional.draw_samples(rng, (n, shape[-nd - 1], nd), dtype)


def tricky(shape, dtype, rng):
    """Ties, NaN (several in some windows) and -inf (whole windows of it in places)."""
    x = np.round(rng.standard_normal(shape) * 2).astype(dtype)
    x.reshape(-1)[:: 7] = np.nan
    x.reshape(-1)[3:: 5] = -np.inf
    return x


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("case", FRACTIONAL_CASES, ids=case_id)
def test_fractional_matches_adapool_and_torch(case, dtype, ort, torch_oracle, rng):
    """Each plane's own windows, from its samples: values and indices bit for bit, with NaN,
    ties and -inf windows; against torch too (float32/float64: its CPU 3-d op has no float16)."""
    op, kw, shape = case
    for return_indices in (False, True):
        s = samples_for(op, shape, dtype, rng)
        model = export(op, shape, dtype=dtype, return_indices=return_indices, _random_samples=s, **kw)
        for x in (rng.standard_normal(shape).astype(dtype), tricky(shape, dtype, rng)):
            got = ort.InferenceSession(model.SerializeToString(),
                                       providers=["CPUExecutionProvider"]).run(None, {"input": x})
            want = getattr(adapool, op)(x, return_indices=return_indices, _random_samples=s, **kw)
            want = list(want) if return_indices else [want]
            assert len(got) == len(want)
            for g, w in zip(got, want):
                np.testing.assert_array_equal(g, w)
            if dtype != "float16" and return_indices:
                t = getattr(torch_oracle.nn.functional, op)(torch_oracle.from_numpy(x), return_indices=True,
                                                             _random_samples=torch_oracle.from_numpy(s), **kw)
                np.testing.assert_array_equal(got[0], t[0].numpy())
                np.testing.assert_array_equal(got[1], t[1].numpy())


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_fractional_exact_on_every_runtime(dtype, rng):
    for op, kw, shape in (FRACTIONAL_CASES[0], FRACTIONAL_CASES[4]):
        for return_indices in (False, True):
            model = export(op, shape, dtype=dtype, return_indices=return_indices,
                           _random_samples=samples_for(op, shape, dtype, rng), **kw)
            report = validate(model, runtimes=VALIDATE_RUNTIMES)
            for row in report.rows:
                assert row.passed, str(report)
            assert report.ok


def test_fractional_windows_are_the_kernels(rng):
    """The constant tables are the windows adapool's kernel pools: every window starts where
    torch's interval generation puts it (the last at size - kernel) and is kernel long."""
    from onnx_export._strategies import fractional_tables
    op, kw, shape = FRACTIONAL_CASES[0]
    s = samples_for(op, shape, "float32", rng)
    spec = make_spec(op, shape, _random_samples=s, **kw)
    table = fractional_tables(spec)
    assert table.shape == (6, 20, 4)
    rows, cols = np.unravel_index(table, (9, 10))
    assert np.all(rows.max(-1) - rows.min(-1) == 1) and np.all(cols.max(-1) - cols.min(-1) == 1)
    assert np.all(rows[:, -1].min(-1) == 9 - 2) and np.all(cols[:, -1].min(-1) == 10 - 2)
    # planes with different samples get different windows
    assert len({table[p].tobytes() for p in range(6)}) > 1


def test_fractional_needs_static_shapes_and_samples(rng):
    op, kw, shape = FRACTIONAL_CASES[0]
    s = samples_for(op, shape, "float32", rng)
    with pytest.raises(ExportError, match="_random_samples"):
        export(op, shape, **kw)
    with pytest.raises(ExportError, match="static N, C and spatial"):
        export(op, ("N", 3, 9, 10), _random_samples=s, **kw)
    with pytest.raises(ExportError, match="static N, C and spatial"):
        export(op, (2, 3, "H", 10), _random_samples=s, **kw)
    with pytest.raises(TypeError, match="same dtype"):   # the NumPy call's check: samples in the input's dtype
        export(op, shape, dtype="float64", _random_samples=s, **kw)


@pytest.mark.parametrize("kw", [
    dict(kernel_size=4, output_size=(7, 5)),                                     # window too large
    dict(kernel_size=2),                                                          # neither size nor ratio
    dict(kernel_size=2, output_size=(4, 5, 6)),
])
def test_fractional_errors_match_the_numpy_call(kw, rng):
    shape = (2, 3, 9, 10)
    s = samples_for("fractional_max_pool2d", shape, "float32", rng)
    with pytest.raises((ValueError, TypeError)) as numpy_error:
        adapool.fractional_max_pool2d(np.zeros(shape, np.float32), _random_samples=s, **kw)
    with pytest.raises(type(numpy_error.value)) as export_error:
        export("fractional_max_pool2d", shape, _random_samples=s, **kw)
    assert str(export_error.value) == str(numpy_error.value)


def test_fractional_checker_and_metadata(rng):
    for op, kw, shape in FRACTIONAL_CASES:
        s = samples_for(op, shape, "float16", rng)
        model = export(op, shape, dtype="float16", return_indices=True, _random_samples=s, **kw)
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        for out in inferred.graph.output:
            assert [d.dim_value for d in out.type.tensor_type.shape.dim] == list(make_spec(
                op, shape, dtype="float16", _random_samples=s, **kw).output_shape())
        meta = json.loads({p.key: p.value for p in model.metadata_props}["adapool.kwargs"])
        np.testing.assert_array_equal(np.asarray(meta["_random_samples"], np.float16), s)


def test_fractional_command_line_says_to_use_python(tmp_path, capsys):
    from onnx_export.__main__ import main
    assert main(["export", "fractional_max_pool2d", "--input-shape", "1,3,9,9", "--kernel-size", "2",
                 "--output-size", "4,4", "-o", str(tmp_path / "f.onnx")]) == 2
    assert "_random_samples" in capsys.readouterr().err and not (tmp_path / "f.onnx").exists()


def test_fractional_refuses_tables_too_large(monkeypatch, rng):
    """One constant entry per plane, output and window slot: past TABLE_LIMIT a clear
    ExportError, not a model protobuf can't hold."""
    import onnx_export._strategies as strategies
    op, kw, shape = FRACTIONAL_CASES[0]
    s = samples_for(op, shape, "float32", rng)
    monkeypatch.setattr(strategies, "TABLE_LIMIT", 6 * 20 * 4 - 1)
    with pytest.raises(ExportError, match="constant window tables would hold 480 entries"):
        export(op, shape, _random_samples=s, **kw)
    monkeypatch.setattr(strategies, "TABLE_LIMIT", 6 * 20 * 4)
    assert strategy_of(export(op, shape, _random_samples=s, **kw)) == "constant"


def test_fractional_empty_calls_are_refused(rng):
    """An output size or a batch of 0: no form is exact on every target yet (OpenVINO rejects
    empty constants; tract hands back ConstantOfShape's int64 as TDim): an ExportError."""
    s = samples_for("fractional_max_pool2d", (2, 3, 9, 10), "float32", rng)
    for shape, out in (((2, 3, 9, 10), (0, 5)), ((0, 3, 9, 10), (4, 5))):
        assert getattr(adapool, "fractional_max_pool2d")(np.zeros(shape, np.float32), 2, out,
                                                           _random_samples=s).size == 0
        with pytest.raises(ExportError, match="empty"):
            export("fractional_max_pool2d", shape, kernel_size=2, output_size=out, _random_samples=s)


def test_unpool_empty_batch_and_output(ort):
    """An empty batch (static or dynamic) and an output size of 0 (kernel 2, padding 1 on a
    length-1 axis): empty results of the right shape on every runtime."""
    for shape, kw, sizes in (((0, 3, 4, 5), dict(kernel_size=2), None), ((2, 3, 1, 5), dict(kernel_size=2, padding=1), None),
                             (("N", 3, 4, 5), dict(kernel_size=2), {"N": [0, 2]})):
        model = export("max_unpool2d", shape, **kw)
        report = validate(model, runtimes=VALIDATE_RUNTIMES, sizes=sizes)
        assert report.ok, str(report)
    x = np.zeros((2, 3, 1, 5), np.float32)
    (got,) = run_unpool(export("max_unpool2d", x.shape, kernel_size=2, padding=1), x, np.zeros(x.shape, np.int64), ort)
    assert got.shape == (2, 3, 0, 8)
