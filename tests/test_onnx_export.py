"""onnx_export: every op x strategy x dtype x static/dynamic, run under onnxruntime's CPU EP
(onnx's reference evaluator where the CPU EP has no kernel for the dtype) and compared with
adapool's kernel and with torch, on inputs holding inf, -inf, NaN and ties."""
import json
import os
import warnings

import numpy as np
import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import adapool
import onnx_export
from onnx_export import ExportError, STRATEGIES, build, export, validate
from onnx_export._strategies import AUTO_ORDER, ORT_CPU_NO_FLOAT64

TOL = {"float16": (2e-3, 1e-3), "float32": (2e-5, 2e-6), "float64": (1e-12, 1e-13)}

# (op, kwargs, input shape): non-divisible, divisible, output 1, output 0, output larger than
# input, None (keep), unbatched, and every avg_pool2d parameter class.
CASES = [
    ("adaptive_avg_pool1d", dict(output_size=4), (2, 3, 11)),
    ("adaptive_avg_pool1d", dict(output_size=5), (3, 10)),
    ("adaptive_avg_pool1d", dict(output_size=1), (2, 3, 9)),
    ("adaptive_avg_pool2d", dict(output_size=7), (2, 3, 15, 15)),
    ("adaptive_avg_pool2d", dict(output_size=(7, 7)), (2, 3, 14, 21)),
    ("adaptive_avg_pool2d", dict(output_size=1), (2, 3, 9, 7)),
    ("adaptive_avg_pool2d", dict(output_size=(4, None)), (3, 11, 9)),
    ("adaptive_avg_pool2d", dict(output_size=(9, 11)), (1, 2, 5, 7)),
    ("adaptive_avg_pool2d", dict(output_size=(0, 3)), (2, 3, 5, 7)),
    ("adaptive_avg_pool3d", dict(output_size=(3, 4, 5)), (2, 3, 7, 9, 11)),
    ("adaptive_avg_pool3d", dict(output_size=(2, 3, 4)), (1, 2, 4, 6, 8)),
    ("adaptive_avg_pool3d", dict(output_size=1), (2, 5, 3, 4)),
    ("adaptive_max_pool1d", dict(output_size=4), (2, 3, 11)),
    ("adaptive_max_pool1d", dict(output_size=4, return_indices=True), (3, 11)),
    ("adaptive_max_pool1d", dict(output_size=1), (2, 3, 9)),
    ("adaptive_max_pool2d", dict(output_size=7), (2, 3, 15, 15)),
    ("adaptive_max_pool2d", dict(output_size=(3, 5), return_indices=True), (2, 3, 15, 14)),
    ("adaptive_max_pool2d", dict(output_size=(4, 4)), (2, 3, 8, 12)),
    ("adaptive_max_pool2d", dict(output_size=1, return_indices=True), (2, 3, 6, 5)),
    ("adaptive_max_pool2d", dict(output_size=(6, None), return_indices=True), (3, 5, 4)),
    ("adaptive_max_pool2d", dict(output_size=1), (2, 3, 6, 5)),
    ("adaptive_max_pool3d", dict(output_size=(3, 2, 5), return_indices=True), (2, 3, 7, 9, 11)),
    ("adaptive_max_pool3d", dict(output_size=(2, 3, 2)), (1, 2, 4, 6, 8)),
    ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1), (2, 3, 14, 14)),
    ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), (2, 3, 14, 14)),
    ("avg_pool2d", dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 1), ceil_mode=True,
                        count_include_pad=False), (2, 3, 14, 13)),
    ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1, divisor_override=5), (2, 3, 13, 13)),
    ("avg_pool2d", dict(kernel_size=2, stride=3, ceil_mode=True, divisor_override=-3), (3, 11, 10)),
    ("avg_pool2d", dict(kernel_size=(2, 4), stride=(4, 1), padding=(1, 2)), (1, 2, 9, 8)),
]


def strategy_of(model):
    return {p.key: p.value for p in model.metadata_props}["adapool.strategy"]


def export_quiet(*args, **kwargs):
    """export() without auto's warnings (for the forms tract refuses, the bfloat16 gaps)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export(*args, **kwargs)


VALIDATE_RUNTIMES = ["onnxruntime-cpu", "openvino", "tract", "onnx-reference"]


def assert_validated(model, spec, table=None, **kwargs):
    """validate() under every runtime: each row passes, or is tract refusing a form that
    ``table`` (default: STRATEGIES) says tract refuses."""
    def admitted(row):
        if not (row.runtime.endswith("tract") and row.status == "failed"):
            return False
        refuses = (STRATEGIES if table is None else table)[strategy_of(model)].target_refuses.get("tract")
        return refuses is not None and bool(refuses(spec))

    report = validate(model, runtimes=VALIDATE_RUNTIMES, **kwargs)
    for row in report.rows:
        if row.status == "skipped":
            pytest.skip(row.detail)   # a runtime that isn't installed (the test extra has them all)
        assert row.passed or admitted(row), str(report)
    return report


def case_id(case):
    op, kw, shape = case
    return f"{op}-{'x'.join(map(str, shape))}-" + ",".join(f"{k}={v}" for k, v in kw.items())


def nasty_input(shape, dtype, rng):
    """Normal data rounded to create ties, with +inf, -inf and NaN sprinkled in."""
    x = np.round(rng.standard_normal(shape) * 4) / 4
    flat = x.reshape(-1)
    if flat.size >= 8:
        for value, step in ((np.inf, 17), (-np.inf, 23), (np.nan, 13)):
            flat[rng.integers(0, step):: step] = value
    return x.astype(dtype)


def as_list(y):
    return list(y) if isinstance(y, tuple) else [y]


def dynamic_shape(shape, nd):
    """Batch and every spatial dim dynamic (channels stay static, as in most models)."""
    lead = len(shape) - nd
    return tuple(("N" if (lead == 2 and i == 0) else s) if i < lead else f"S{i - lead}"
                 for i, s in enumerate(shape))


def run_sizes(shape, nd, dynamic):
    if not dynamic:
        return [shape]
    lead = len(shape) - nd
    bigger = tuple(s + (1 if i < lead and lead == 2 and i == 0 else 0) + (3 + i if i >= lead else 0)
                   for i, s in enumerate(shape))
    return [shape, bigger]


def needs_reference_evaluator(model, dtype):
    """onnxruntime's CPU EP has no float64 kernel for some pooling ops."""
    return dtype == "float64" and any(n.op_type in ORT_CPU_NO_FLOAT64 for n in model.graph.node)


def run_model(model, x, ort):
    if needs_reference_evaluator(model, x.dtype.name):
        from onnx.reference import ReferenceEvaluator
        # The reference evaluator's AveragePool skips NaN (a fault of that runtime, reported
        # as such by validate): NaN is tested under onnxruntime, here only inf.
        x[np.isnan(x)] = 0
        return ReferenceEvaluator(model).run(None, {"input": x})
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})


def assert_same(got, want, dtype, what):
    rtol, atol = TOL[dtype]
    assert len(got) == len(want), what
    for g, w in zip(got, want):
        assert g.shape == w.shape, f"{what}: shape {g.shape} != {w.shape}"
        if w.dtype == np.int64:
            assert g.dtype == np.int64, what
            np.testing.assert_array_equal(g, w, err_msg=f"{what}: indices")
        else:
            assert g.dtype == w.dtype, what
            np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=f"{what}: NaN positions")
            np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol, atol=atol,
                                       err_msg=what)


def torch_call(torch, op, x, kw):
    """torch's own result in float64 (float16 input: computed in float32, as torch does)."""
    t = torch.from_numpy(x.astype(np.float32 if x.dtype == np.float16 else np.float64))
    y = getattr(torch.nn.functional, op)(t, **kw)
    ys = y if isinstance(y, tuple) else (y,)
    return [v.numpy().astype(x.dtype) if v.dtype.is_floating_point else v.numpy() for v in ys]


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_strategy_is_exact(case, dtype, dynamic, ort, rng):
    op, kw, shape = case
    nd = onnx_export._spec.OPS[op][1]
    in_shape = dynamic_shape(shape, nd) if dynamic else shape
    exported = 0
    for name in STRATEGIES:
        try:
            model = export(op, in_shape, dtype=dtype, strategy=name, **kw)
        except ExportError:
            continue
        exported += 1
        if needs_reference_evaluator(model, dtype) and name == "global" and nd == 1 and "max" in op:
            continue   # ReferenceEvaluator's GlobalMaxPool drops an axis of 1-d input (a known fault)
        for size in run_sizes(shape, nd, dynamic):
            # finite data takes the graphs' fast paths; inf/NaN their exact fallbacks
            for x in (rng.standard_normal(size).astype(dtype), nasty_input(size, dtype, rng)):
                got = run_model(model, x, ort)
                want = as_list(getattr(adapool, op)(x, **kw))
                assert_same(got, want, dtype, f"{name} at {size}, finite={np.isfinite(x).all()}")
    assert exported >= 2   # auto's choice and at least the dynamic / function forms


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_auto_graphs_match_torch(case, ort, torch_oracle, rng):
    op, kw, shape = case
    nd = onnx_export._spec.OPS[op][1]
    for in_shape in (shape, dynamic_shape(shape, nd)):
        model = export(op, in_shape, **kw)
        for size in run_sizes(shape, nd, in_shape != shape):
            x = nasty_input(size, np.float32, rng)
            assert_same(run_model(model, x, ort), torch_call(torch_oracle, op, x, kw), "float32",
                        f"{op} {in_shape} at {size}")


# ---- the cases where torch's exporters fail or export wrong graphs (SEMANTICS.md) ---------------

def test_non_divisible_static_size(ort, rng):
    """TorchScript: 'output size that are not factor of input size'. adapool: exact MatMul."""
    model = export("adaptive_avg_pool2d", (1, 16, 223, 223), output_size=7)
    assert onnx_export._export.json.loads(model.metadata_props[1].value) == {"output_size": [7, 7]}
    assert {n.op_type for n in model.graph.node} >= {"MatMul", "If"}
    x = rng.standard_normal((1, 16, 223, 223)).astype(np.float32)
    assert_same(run_model(model, x, ort), [adapool.adaptive_avg_pool2d(x, 7)], "float32", "223->7")


@pytest.mark.parametrize("strategy", ["dynamic", "function"])
def test_dynamic_hw_is_exact_at_every_size(strategy, ort, rng):
    """dynamo bakes the example's windows into a 'dynamic' graph; adapool computes them in the graph."""
    model = export("adaptive_avg_pool2d", ("N", 256, "H", "W"), output_size=7, strategy=strategy)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for h, w in [(15, 15), (14, 14), (7, 7), (3, 5), (23, 40), (100, 100)]:
        x = rng.standard_normal((2, 256, h, w)).astype(np.float32)
        assert_same(sess.run(None, {"input": x}), [adapool.adaptive_avg_pool2d(x, 7)], "float32", f"{h}x{w}")


@pytest.mark.parametrize("strategy", ["pool", "matmul", "dynamic", "function"])
def test_divisor_override_is_applied(strategy, ort, rng):
    """Both torch exporters drop divisor_override silently."""
    kw = dict(kernel_size=3, stride=2, padding=1, divisor_override=4)
    model = export("avg_pool2d", (1, 3, 12, 12), strategy=strategy, **kw)
    x = rng.standard_normal((1, 3, 12, 12)).astype(np.float32)
    got = run_model(model, x, ort)[0]
    assert_same([got], [adapool.avg_pool2d(x, **kw)], "float32", strategy)
    plain = adapool.avg_pool2d(x, 3, 2, 1)
    assert not np.allclose(got, plain)   # the override changed the numbers


@pytest.mark.parametrize("dynamic", [False, True])
def test_adaptive_max_non_divisible_with_indices(dynamic, ort, rng):
    """dynamo: 'No ONNX function found for aten.adaptive_max_pool2d'."""
    shape = ("N", 64, "H", "W") if dynamic else (2, 64, 15, 15)
    model = export("adaptive_max_pool2d", shape, output_size=7, return_indices=True)
    assert [o.name for o in model.graph.output] == ["output", "indices"]
    assert model.graph.output[1].type.tensor_type.elem_type == onnx.TensorProto.INT64
    for size in [(2, 64, 15, 15), (1, 64, 23, 9)][: 2 if dynamic else 1]:
        x = nasty_input(size, np.float32, rng)
        assert_same(run_model(model, x, ort), list(adapool.adaptive_max_pool2d(x, 7, True)), "float32", str(size))


def test_adaptive_avg_pool3d_non_divisible(ort, rng):
    """dynamo fails on non-divisible 3d average pooling."""
    model = export("adaptive_avg_pool3d", (1, 4, 7, 10, 13), output_size=(3, 4, 5))
    x = rng.standard_normal((1, 4, 7, 10, 13))
    x = x.astype(np.float32)
    assert_same(run_model(model, x, ort), [adapool.adaptive_avg_pool3d(x, (3, 4, 5))], "float32", "3d")


def test_nonfinite_values_stay_in_their_windows(ort):
    """A MatMul multiplies the zeros outside each window too (0 * inf = NaN); the exported
    graph must still give torch's result: inf only where a window holds it."""
    x = np.zeros((1, 1, 9, 9), np.float32)
    x[0, 0, 0, 0] = np.inf
    x[0, 0, 8, 8] = np.nan
    model = export("adaptive_avg_pool2d", (1, 1, 9, 9), output_size=4, strategy="matmul")
    y = run_model(model, x, ort)[0]
    want = adapool.adaptive_avg_pool2d(x, 4)
    assert np.isinf(y[0, 0, 0, 0]) and np.isnan(y[0, 0, 3, 3])
    assert np.isfinite(y).sum() == 14
    assert_same([y], [want], "float32", "nonfinite")


def test_max_graphs_propagate_nan_where_onnxruntime_maxpool_does_not(ort):
    x = np.array([[[[1, np.nan, 3, 2], [0, 0, 0, 0], [5, np.nan, 1, 1], [np.nan, 0, 0, 9]]]], np.float32)
    for strategy in ("pool", "gather", "dynamic", "function"):
        model = export("adaptive_max_pool2d", (1, 1, 4, 4), output_size=2, strategy=strategy)
        y = run_model(model, x, ort)[0]
        np.testing.assert_array_equal(np.isnan(y), [[[[True, False], [True, False]]]], err_msg=strategy)
        np.testing.assert_array_equal(y[0, 0, :, 1], [3, 9], err_msg=strategy)
    model = export("adaptive_max_pool2d", (1, 1, 4, 4), output_size=2, return_indices=True)
    _, idx = run_model(model, x, ort)
    np.testing.assert_array_equal(idx, [[[[1, 2], [12, 15]]]])   # last NaN, else first maximum
    np.testing.assert_array_equal(idx, adapool.adaptive_max_pool2d(x, 2, True)[1])


def test_max_pool_graph_keeps_the_sign_of_the_zero_it_picks(ort):
    """torch returns the element at the index it reports: a window whose first maximum is -0.0
    gives -0.0 (0.0 == -0.0, so a later 0.0 doesn't replace it). The MaxPool graph returns
    MaxPool's own values, which must be the elements at its indices."""
    x = np.array([[[[-0.0, 0.0, 0.0, -0.0], [0.0, -0.0, -0.0, -1], [-5, -0.0, 2, 2], [-0.0, -7, 1, 0]]],
                  [[[0.0, -0.0, -0.0, 0.0], [-0.0, 0.0, -1, -0.0], [-0.0, -5, 2, 2], [-7, -0.0, 0, 1]]]], np.float32)
    from onnx_export._runtimes import RUNTIMES
    model = export("adaptive_max_pool2d", x.shape, output_size=2, return_indices=True, strategy="pool")
    ref_y, ref_idx = adapool.adaptive_max_pool2d(x, 2, True)
    assert np.signbit(ref_y[0, 0, 0, 0]) and not np.signbit(ref_y[1, 0, 0, 0])
    ran = []
    for name in ("onnxruntime-cpu", "openvino", "tract", "onnx-reference"):
        if RUNTIMES[name].missing():
            continue   # the runtime matrix (test_runtimes.py) says which are required where
        (y, idx), = RUNTIMES[name].run(model, [{"input": x.copy()}])[0]
        np.testing.assert_array_equal(idx, ref_idx, err_msg=name)
        np.testing.assert_array_equal(y, ref_y, err_msg=name)
        np.testing.assert_array_equal(np.signbit(y), np.signbit(ref_y), err_msg=name)
        ran.append(name)
    assert "onnxruntime-cpu" in ran and "onnx-reference" in ran


# ---- model structure ---------------------------------------------------------------------------

@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_checker_and_shape_inference(strategy):
    for op, kw, shape in CASES:
        for in_shape in (shape, dynamic_shape(shape, onnx_export._spec.OPS[op][1])):
            try:
                model = export(op, in_shape, strategy=strategy, **kw)
            except ExportError:
                continue
            onnx.checker.check_model(model, full_check=True)
            inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
            spec = onnx_export._spec.make_spec(op, in_shape, **kw)
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                    for d in inferred.graph.output[0].type.tensor_type.shape.dim]
            want = spec.output_shape()
            assert len(dims) == len(want), (strategy, op, in_shape, dims)
            for d, w in zip(dims, want):   # static dims exact, names kept, unknown dims symbolic
                assert d == w if w is not None else not isinstance(d, int), (strategy, op, in_shape, dims)


@pytest.mark.parametrize("out,size,expected", [
    (7, 14, (2, 2)), (7, 15, (3, 2)), (1, 9, (9, 9)), (5, 5, (1, 1)), (4, 11, None), (9, 5, None), (0, 5, None),
    (7, 223, None), (3, 7, (3, 2)),
])
def test_uniform_windows(out, size, expected):
    from onnx_export._strategies import uniform_windows
    assert uniform_windows(out, size) == expected
    if expected:   # a strided pool's windows are exactly the adaptive ones
        k, s = expected
        starts, ends = adapool.adaptive_windows(out, size)
        assert (size - k) // s + 1 == out
        np.testing.assert_array_equal(starts, s * np.arange(out))
        np.testing.assert_array_equal(ends, s * np.arange(out) + k)


def test_auto_order_is_the_table():
    assert set(AUTO_ORDER) == {"avg", "max", "avgpool", "maxpool", "unpool", "fractional"}
    for kind, names in AUTO_ORDER.items():
        # always exact (a max pool's dilation at dynamic sizes too: tests/test_onnx_strided.py);
        # max_unpool and fractional max pooling have one form each (static sizes; tests/test_onnx_family.py)
        assert names[-1] == {"unpool": "scatter", "fractional": "constant"}.get(kind, "dynamic")
        assert all(kind in STRATEGIES[n].kinds for n in names)


@pytest.mark.parametrize("op,kw,shape,expected", [
    ("adaptive_avg_pool2d", dict(output_size=1), (32, 2048, 7, 7), "reduce"),
    ("adaptive_avg_pool2d", dict(output_size=1), ("N", 2048, "H", "W"), "reduce"),
    ("adaptive_avg_pool2d", dict(output_size=7), (4, 512, 56, 56), "matmul"),   # faster than AveragePool there
    ("adaptive_avg_pool2d", dict(output_size=7), (8, 256, 14, 14), "pool"),
    ("adaptive_avg_pool2d", dict(output_size=7), (4, 512, 56, 56, "float64"), "matmul"),
    ("adaptive_avg_pool2d", dict(output_size=7), (8, 256, 15, 15), "pool"),   # 15 -> 7: kernel 3, stride 2
    ("adaptive_avg_pool2d", dict(output_size=7), (1, 16, 223, 223), "matmul"),
    ("adaptive_max_pool2d", dict(output_size=7), (1, 16, 223, 223), "sliding"),
    ("adaptive_avg_pool2d", dict(output_size=7), ("N", 256, "H", "W"), "dynamic"),
    ("adaptive_max_pool2d", dict(output_size=7), (4, 512, 56, 56), "pool"),
    ("adaptive_max_pool2d", dict(output_size=7, return_indices=True), (4, 512, 56, 56), "pool"),   # MaxPool's Indices
    ("adaptive_max_pool2d", dict(output_size=7, return_indices=True), (4, 512, 56, 56, "float64"), "gather"),
    ("adaptive_max_pool2d", dict(output_size=5, return_indices=True), (2, 3, 23, 23), "gather"),   # windows not uniform
    ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1), ("N", 3, "H", "W"), "pool"),
    ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), ("N", 3, "H", "W"), "dynamic"),
])
def test_auto_choice(op, kw, shape, expected):
    dtype = "float32"
    if shape[-1] == "float64":
        shape, dtype = shape[:-1], "float64"
    model = export(op, shape, dtype=dtype, **kw)
    assert {p.key: p.value for p in model.metadata_props}["adapool.strategy"] == expected


def test_function_strategy_is_one_readable_node(ort, rng):
    model = export("adaptive_avg_pool2d", ("N", 3, "H", "W"), output_size=(7, None), strategy="function")
    (node,) = model.graph.node
    assert (node.domain, node.op_type) == ("adapool", "AdaptiveAvgPool2d")
    assert [a.ints for a in node.attribute] == [[7, -1]]
    (fn,) = model.functions
    assert fn.name == "AdaptiveAvgPool2d" and list(fn.attribute) == ["output_size"]
    assert all(n.domain in ("", None) for n in fn.node)   # a body of standard ops
    x = rng.standard_normal((2, 3, 20, 9)).astype(np.float32)
    assert_same(run_model(model, x, ort), [adapool.adaptive_avg_pool2d(x, (7, None))], "float32", "function")


@pytest.mark.parametrize("opset", range(onnx_export.MIN_OPSET, onnx_export.MAX_OPSET + 1))
def test_every_supported_opset(opset, ort, rng):
    for op, kw, strategy in [("adaptive_avg_pool2d", dict(output_size=1), "reduce"),
                             ("adaptive_max_pool2d", dict(output_size=1), "reduce"),
                             ("adaptive_avg_pool2d", dict(output_size=3), "matmul"),
                             ("adaptive_max_pool2d", dict(output_size=3, return_indices=True), "gather"),
                             ("adaptive_max_pool2d", dict(output_size=3), "dynamic"),
                             ("avg_pool2d", dict(kernel_size=3, padding=1, ceil_mode=True), "function")]:
        model = export(op, ("N", 2, 8, 7), opset=opset, strategy=strategy, **kw)
        assert model.opset_import[0].version == opset
        x = nasty_input((2, 2, 8, 7), np.float32, rng)
        assert_same(run_model(model, x, ort), as_list(getattr(adapool, op)(x, **kw)), "float32",
                    f"{op} {strategy} opset {opset}")


def test_build_into_a_shared_graph(ort, rng):
    """The lower-level builder: two calls in one graph someone else assembles."""
    a = build("adaptive_avg_pool2d", "x", ("N", 8, 15, 15), output_size=(7, 6), prefix="head")
    b = build("adaptive_max_pool2d", "x", ("N", 8, 15, 15), output_size=(3, 5), prefix="aux", strategy="function")
    assert a.strategy == "matmul" and b.strategy == "function"   # 15 -> 6 has uneven windows
    names = [o for n in a.nodes + b.nodes for o in n.output]
    assert len(names) == len(set(names))
    graph = onnx.helper.make_graph(
        a.nodes + b.nodes, "two", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 8, 15, 15])],
        [onnx.helper.make_tensor_value_info(a.outputs[0], onnx.TensorProto.FLOAT, ["N", 8, 7, 6]),
         onnx.helper.make_tensor_value_info(b.outputs[0], onnx.TensorProto.FLOAT, ["N", 8, 3, 5])],
        initializer=a.initializers + b.initializers)
    imports = {**a.opset_imports, **b.opset_imports}
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid(d, v) for d, v in imports.items()],
                                   functions=a.functions + b.functions, ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    x = rng.standard_normal((3, 8, 15, 15)).astype(np.float32)
    y1, y2 = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert_same([y1], [adapool.adaptive_avg_pool2d(x, (7, 6))], "float32", "head")
    assert_same([y2], [adapool.adaptive_max_pool2d(x, (3, 5))], "float32", "aux")


# ---- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("args,kwargs,exc,match", [
    (("lp_pool2d_backward", (1, 1, 4, 4)), dict(kernel_size=2), ValueError, "unknown op 'lp_pool2d_backward'"),
    (("adaptive_avg_pool2d", (1, 1, 4, 4)), dict(output_size=2, strategy="fast"), ValueError, "unknown strategy 'fast'"),
    (("adaptive_avg_pool2d", (1, 1, 11, 11)), dict(output_size=4, strategy="pool"), ExportError, "uniform windows"),
    (("adaptive_avg_pool2d", ("N", 1, "H", "W")), dict(output_size=2, strategy="matmul"), ExportError, "static spatial"),
    (("adaptive_max_pool2d", (1, 1, 4, 4)), dict(output_size=2, strategy="matmul"), ExportError, "does not serve"),
    (("adaptive_max_pool2d", (1, 1, 5, 5)), dict(output_size=3, return_indices=True, strategy="pool"), ExportError,
     "uniform windows"),
    (("adaptive_max_pool2d", (1, 1, 4, 4)), dict(output_size=1, return_indices=True, strategy="reduce"), ExportError, "indices"),
    (("adaptive_avg_pool2d", (1, 1, 4, 4)), dict(output_size=2, strategy="reduce"), ExportError, "output size of 1"),
    (("avg_pool2d", ("N", 1, "H", "W")), dict(kernel_size=3, ceil_mode=True, strategy="pool"), ExportError, "ceil_mode"),
    (("adaptive_avg_pool2d", (1, 1, 4, 4)), dict(output_size=2, opset=12), ExportError, "outside the supported range"),
    (("adaptive_avg_pool2d", (1, 1, 4, 4)), dict(output_size=2, opset=99), ExportError, "outside the supported range"),
    (("adaptive_avg_pool2d", (1, 1, 4, 4)), dict(output_size=2, opset="18"), TypeError, "opset must be an int"),
    (("adaptive_avg_pool2d", (1, 1, 4, 4)), dict(output_size=2, dtype="int64"), TypeError, "dtype must be one of"),
    (("adaptive_avg_pool2d", (4, 4)), dict(output_size=2), ValueError, r"Expected 3D or 4D tensor, but got \[4, 4\]"),
    (("adaptive_avg_pool2d", (1, 3, 0, 4)), dict(output_size=2), ValueError, "dimension 2 being empty"),
    (("adaptive_avg_pool2d", (1, 3, 4, 4)), dict(output_size=(-1, 2)), ValueError, r"received \{-1, 2\}"),
    (("adaptive_avg_pool2d", (1, 3, 4, 4)), dict(output_size=(1, 2, 3)), ValueError, "output_size must be 2"),
    (("adaptive_avg_pool2d", (1, 3, 4, 4)), dict(), TypeError, "missing required argument 'output_size'"),
    (("adaptive_avg_pool2d", (1, 3, 4, 4)), dict(output_size=2, kernel_size=3), TypeError, "unexpected keyword"),
    (("avg_pool2d", (1, 3, 4, 4)), dict(kernel_size=3, padding=2), ValueError, "pad should be at most half"),
    (("avg_pool2d", ("N", 3, "H", "W")), dict(kernel_size=3, stride=0), ValueError, "stride should not be zero"),
    (("avg_pool2d", (1, 3, 2, 2)), dict(kernel_size=3), ValueError, "Output size is too small"),
    (("avg_pool2d", (1, 3, 4, 4)), dict(kernel_size=2, divisor_override=0), ValueError, "divisor must be not zero"),
    (("adaptive_avg_pool2d", (1, 3, -4, 4)), dict(output_size=2), ValueError, "must not be negative"),
    (("adaptive_avg_pool2d", (1, 3, 4.0, 4)), dict(output_size=2), TypeError, "must be int, str or None"),
    (("adaptive_avg_pool2d", (1, 3, "4 x", 4)), dict(output_size=2), ValueError, "identifiers"),
    (("adaptive_avg_pool2d", "1,3,4,4"), dict(output_size=2), TypeError, "sequence"),
    (("adaptive_avg_pool2d", (1, 3, 4, 4)), dict(output_size=2**62), ValueError, "too large"),
    (("adaptive_max_pool2d", (1, 3, 4, 4)), dict(output_size=(0, 2), return_indices=True, opset=13), ExportError,
     "opset >= 14"),
])
def test_export_errors(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        export(*args, **kwargs)


def test_export_errors_match_the_numpy_call():
    """Export checks arguments with adapool's own validation: the same words as the call."""
    for op, kw, shape in [("adaptive_max_pool2d", dict(output_size=(-1, 2)), (1, 3, 4, 4)),
                          ("adaptive_avg_pool3d", dict(output_size=2), (1, 0, 4, 4, 4)),
                          ("avg_pool2d", dict(kernel_size=5, stride=2, padding=1), (1, 3, 2, 2))]:
        with pytest.raises(ValueError) as from_call:
            getattr(adapool, op)(np.zeros(shape, np.float32), **kw)
        with pytest.raises(ValueError) as from_export:
            export(op, shape, **kw)
        assert str(from_call.value) == str(from_export.value)


# ---- property test ---------------------------------------------------------------------------

@given(data=st.data())
def test_adaptive_property(data, ort):
    nd = data.draw(st.sampled_from([1, 2, 3]), "nd")
    kind = data.draw(st.sampled_from(["avg", "max"]), "kind")
    op = f"adaptive_{kind}_pool{nd}d"
    batched = data.draw(st.booleans(), "batched")
    spatial = tuple(data.draw(st.integers(1, 13 if nd < 3 else 6), f"in{i}") for i in range(nd))
    out = tuple(data.draw(st.integers(0 if kind == "avg" else 1, 9 if nd < 3 else 5), f"out{i}") for i in range(nd))
    shape = ((data.draw(st.integers(1, 3), "n"),) if batched else ()) + (data.draw(st.integers(1, 3), "c"),) + spatial
    kw = dict(output_size=out)
    if kind == "max":
        kw["return_indices"] = data.draw(st.booleans(), "indices")
    dynamic = data.draw(st.booleans(), "dynamic")
    strategy = data.draw(st.sampled_from(["auto", "dynamic", "function"]), "strategy")
    dtype = data.draw(st.sampled_from(["float16", "float32", "float64"]), "dtype")
    model = export(op, dynamic_shape(shape, nd) if dynamic else shape, dtype=dtype, strategy=strategy, **kw)
    seed_rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), "seed"))
    if data.draw(st.booleans(), "nonfinite"):
        x = nasty_input(shape, dtype, seed_rng)
    else:
        x = seed_rng.standard_normal(shape).astype(dtype)
    assert_same(run_model(model, x, ort), as_list(getattr(adapool, op)(x, **kw)), dtype, f"{op} {kw}")


def test_metadata_records_the_call():
    model = export("avg_pool2d", (1, 3, 8, 8), kernel_size=(3, 2), padding=1, divisor_override=3)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["adapool.op"] == "avg_pool2d"
    assert json.loads(meta["adapool.kwargs"]) == dict(kernel_size=[3, 2], stride=[3, 2], padding=[1, 1],
                                                      ceil_mode=False, count_include_pad=True, divisor_override=3)


@pytest.mark.parametrize("strategy", ["global", "reduce", "pool", "gather", "dynamic", "function"])
def test_all_minus_inf_window_gives_minus_inf(strategy, ort):
    """onnxruntime's MaxPool and GlobalMaxPool start from the lowest finite float: a window of
    -inf alone came out as -3.4e38 before the graphs fixed it up."""
    x = np.full((1, 2, 4, 4), -np.inf, np.float32)
    x[0, 1, 3, 3] = 1.0
    size = 1 if strategy in ("global", "reduce") else 2
    model = export("adaptive_max_pool2d", (1, 2, 4, 4), output_size=size, strategy=strategy)
    y = run_model(model, x, ort)[0]
    assert_same([y], [adapool.adaptive_max_pool2d(x, size)], "float32", strategy)
    assert y[0, 0].max() == -np.inf


# ---- regressions from the review of this module ---------------------------------------------------

def test_empty_stride_means_kernel(ort, rng):
    model = export("avg_pool2d", (1, 2, 6, 6), kernel_size=2, stride=[])
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    assert_same(run_model(model, x, ort), [adapool.avg_pool2d(x, 2, stride=[])], "float32", "stride=[]")


@pytest.mark.parametrize("op,kw,in_shape,run_shape", [
    ("adaptive_avg_pool2d", dict(output_size=2), (2, 0, 4, 6), (2, 0, 4, 6)),
    ("adaptive_avg_pool2d", dict(output_size=2), ("C", 4, 6), (0, 4, 6)),
    ("adaptive_avg_pool1d", dict(output_size=1), (2, 0, 5), (2, 0, 5)),
    ("adaptive_max_pool2d", dict(output_size=2), ("C", 4, 6), (0, 4, 6)),
    ("adaptive_max_pool1d", dict(output_size=1), ("C", 4), (0, 4)),
    ("adaptive_max_pool3d", dict(output_size=2), ("C", 4, 6, 4), (0, 4, 6, 4)),
])
def test_empty_channel_axis(op, kw, in_shape, run_shape, ort):
    """onnxruntime's pooling ops reject C = 0: static C = 0 takes another form, unbatched input
    runs as (C, 1, ...) so its empty C is the (allowed) empty batch. (torch rejects C = 0 for
    batched max pooling and avg_pool2d, and so does adapool.)"""
    model = export(op, in_shape, **kw)
    x = np.zeros(run_shape, np.float32)
    assert_same(run_model(model, x, ort), [getattr(adapool, op)(x, **kw)], "float32", f"{op} {in_shape}")


def test_sliding_refuses_output_zero(ort, rng):
    with pytest.raises(ExportError, match="above 0"):
        export("adaptive_max_pool2d", (1, 3, 5, 9), output_size=(4, 0), strategy="sliding")
    model = export("adaptive_max_pool2d", (1, 3, 5, 9), output_size=(4, 0))
    x = rng.standard_normal((1, 3, 5, 9)).astype(np.float32)
    assert_same(run_model(model, x, ort), [adapool.adaptive_max_pool2d(x, (4, 0))], "float32", "(4, 0)")


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("op,kw,shape,run", [
    ("adaptive_avg_pool2d", dict(output_size=(2, 3)), ("N", 2, 4, 5), (0, 2, 4, 5)),
    ("adaptive_avg_pool2d", dict(output_size=(2, 3)), ("N", "C", 5, 5), (2, 0, 5, 5)),
    ("avg_pool2d", dict(kernel_size=2), ("N", 3, "H", "W"), (0, 3, 6, 6)),
    ("adaptive_avg_pool3d", dict(output_size=2), ("C", 4, 4, 4), (0, 4, 4, 4)),
])
def test_function_with_empty_batch_or_channels(op, kw, shape, run, opset, ort):
    for strategy in ("function", "dynamic"):
        model = export(op, shape, strategy=strategy, opset=opset, **kw)
        x = np.zeros(run, np.float32)
        assert_same(run_model(model, x, ort), [getattr(adapool, op)(x, **kw)], "float32", f"{op} {run} {strategy}")
    model = export(op, tuple(n if isinstance(n, int) or i < len(shape) - onnx_export._spec.OPS[op][1] else run[i]
                             for i, n in enumerate(shape)), strategy="auto", opset=opset, **kw)
    assert_same(run_model(model, x, ort), [getattr(adapool, op)(x, **kw)], "float32", f"{op} {run} static")


def test_build_twice_with_default_prefixes():
    a = build("adaptive_avg_pool2d", "x", ("N", 4, 8, 8), output_size=3)
    b = build("adaptive_avg_pool2d", "x", ("N", 4, 8, 8), output_size=5)
    names = [o for n in a.nodes + b.nodes for o in n.output] + [i.name for i in a.initializers + b.initializers]
    assert len(names) == len(set(names))
    assert a.outputs != b.outputs


def test_function_names_carry_rank_and_dtype(ort, rng):
    """One model-local function per name: a batched float32 call and an unbatched or float16
    one need different bodies, so different names."""
    calls = [("float32", ("N", 3, 9, 9)), ("float32", (3, 9, 9)), ("float16", ("N", 3, 9, 9))]
    names = []
    for dtype, shape in calls:
        model = export("adaptive_max_pool2d", shape, dtype=dtype, output_size=4, strategy="function")
        names.append(model.graph.node[0].op_type)
        x = rng.standard_normal(tuple(2 if d == "N" else d for d in shape)).astype(dtype)
        assert_same(run_model(model, x, ort), [adapool.adaptive_max_pool2d(x, 4)], dtype, str(shape))
    assert names == ["AdaptiveMaxPool2d", "AdaptiveMaxPool2d_unbatched", "AdaptiveMaxPool2d_f16"]


def test_partially_static_avg_pool2d_output_shape():
    model = export("avg_pool2d", ("N", 3, 8, "W"), kernel_size=2)
    dims = model.graph.output[0].type.tensor_type.shape.dim
    assert dims[2].dim_value == 4 and not dims[3].HasField("dim_value")


# ---- every runtime and graph optimizer (not only onnxruntime's CPU kernels) ---------------------

REQUIRE_RUNTIMES = os.environ.get("ADAPOOL_REQUIRE_RUNTIMES", "") == "1"
# (runtime that runs the graph, optimizer applied first or None)
TARGET_RUNS = [("openvino", None), ("tract", None), ("onnx-reference", None),
               ("onnxruntime-cpu", "onnxsim"), ("onnxruntime-cpu", "onnxslim"), ("onnxruntime-cpu", "onnxoptimizer")]


def _runner(runtime, optimizer):
    """A function model -> (x -> outputs), or a skip saying what is missing (a failure in CI)."""
    from onnx_export._runtimes import OPTIMIZERS, RUNTIMES
    rt = RUNTIMES[runtime]
    missing = rt.missing() or (OPTIMIZERS[optimizer].missing() if optimizer else None)
    if missing:
        if REQUIRE_RUNTIMES:
            pytest.fail(f"ADAPOOL_REQUIRE_RUNTIMES=1 but {missing}")
        pytest.skip(missing)

    def prepare(model):
        if optimizer:
            model = OPTIMIZERS[optimizer].apply(model)
        if not rt.functions and model.functions:
            model = onnx_export._export.inline_functions(model)
        # one call for every input: OpenVINO and tract compile the model once per call
        return lambda xs: [outs for outs in rt.run(model, [{"input": x} for x in xs])[0]]
    return prepare


def runtime_inputs(size, dtype, rng):
    """Normal data, data with ties/NaN/±inf, rows whose first half is -inf (whole windows of
    -inf: MaxPool and ReduceMax start from the lowest float on some runtimes), a column of +inf."""
    minus = rng.standard_normal(size).astype(dtype)
    minus[..., : max(1, size[-1] // 2)] = -np.inf
    plus = rng.standard_normal(size).astype(dtype)
    plus[..., :1] = np.inf
    return [rng.standard_normal(size).astype(dtype), nasty_input(size, dtype, rng), minus, plus]


def known_gap(runtime, optimizer, model, spec, dtype, x):
    """Why a runtime can't give torch's answer here through no fault of the graph, or None.
    Each is that runtime's documented limitation (validate() reports them as such)."""
    if runtime == "openvino" and dtype == "float64":
        return "OpenVINO computes float64 in float32"
    if runtime == "onnx-reference" and x.ndim == 3 and any(n.op_type == "GlobalMaxPool" for n in model.graph.node):
        return "ReferenceEvaluator's GlobalMaxPool drops an axis of rank-3 input"
    if runtime == "onnx-reference" and not np.isfinite(x).all():
        ops = {n.op_type for n in model.graph.node}
        if "AveragePool" in ops and np.isnan(x).any():
            return "ReferenceEvaluator's AveragePool skips NaN"
        if ops & {"MaxPool", "GlobalMaxPool"}:
            return "ReferenceEvaluator's MaxPool/GlobalMaxPool drop NaN and crash on all-NaN windows"
    return None


def admitted_refusal(runtime, model, spec):
    """Whether the strategy table says this runtime can't run the graph (tract's symbolic dims:
    dynamic return_indices and avg_pool2d): it may refuse it then, loudly, never be wrong."""
    chosen = {p.key: p.value for p in model.metadata_props}["adapool.strategy"]
    return runtime in STRATEGIES[chosen].target_refuses and bool(STRATEGIES[chosen].target_refuses[runtime](spec))


@pytest.mark.parametrize("runtime,optimizer", TARGET_RUNS,
                         ids=[f"{o}->{r}" if o else r for r, o in TARGET_RUNS])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_auto_graphs_exact_on_every_runtime(case, runtime, optimizer, rng):
    """export()'s default graphs (targets: onnxruntime, openvino, tract) on every runtime and
    after every graph optimizer, static and dynamic, float16/32/64, against adapool's kernel."""
    prepare = _runner(runtime, optimizer)
    op, kw, shape = case
    nd = onnx_export._spec.OPS[op][1]
    checked = 0
    for dynamic in (False, True):
        in_shape = dynamic_shape(shape, nd) if dynamic else shape
        for dtype in ("float16", "float32", "float64"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # auto's warning for what tract refuses
                model = export(op, in_shape, dtype=dtype, **kw)
            spec = onnx_export._spec.make_spec(op, in_shape, dtype=dtype, **kw)
            refusal_ok = admitted_refusal(runtime, model, spec)
            xs = [x for size in run_sizes(shape, nd, dynamic) for x in runtime_inputs(size, dtype, rng)
                  if not known_gap(runtime, optimizer, model, spec, dtype, x)]
            try:
                results = prepare(model)([x.copy() for x in xs])
            except Exception:
                if refusal_ok:   # tract refuses loudly: never a wrong answer
                    continue
                raise
            for x, got in zip(xs, results):
                want = as_list(getattr(adapool, op)(x, **kw))
                assert_same([np.asarray(g) for g in got], want, dtype,
                            f"{runtime} {optimizer} {in_shape} {dtype} at {x.shape}, finite={np.isfinite(x).all()}")
                checked += 1
    assert checked > 0


# ---- targets ------------------------------------------------------------------------------------

def _if_counts(graph, out=None):
    """The number of If nodes in each graph scope (the top level and every branch)."""
    out = [] if out is None else out
    out.append(sum(n.op_type == "If" for n in graph.node))
    for n in graph.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                _if_counts(a.g, out)
    return out


def test_targets_are_checked_and_recorded():
    model = export("adaptive_avg_pool2d", (1, 3, 9, 9), output_size=4)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["adapool.targets"] == "onnxruntime,openvino,tract"
    model = export("adaptive_avg_pool2d", (1, 3, 9, 9), output_size=4, targets="openvino")
    assert {p.key: p.value for p in model.metadata_props}["adapool.targets"] == "openvino"
    for bad in (["tensorrt"], [], ("onnxruntime", "onnx")):
        with pytest.raises(ValueError, match="targets must be a non-empty subset of onnxruntime, openvino, tract"):
            export("adaptive_avg_pool2d", (1, 3, 9, 9), output_size=4, targets=bad)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_tract_targeted_graphs_hold_one_if_per_scope(case):
    """tract wires every If under one name: a scope with two fails to load there."""
    op, kw, shape = case
    nd = onnx_export._spec.OPS[op][1]
    for in_shape in (shape, dynamic_shape(shape, nd)):
        for strategy in ("auto", "function"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = export(op, in_shape, strategy=strategy, inline=True, **kw)
            assert max(_if_counts(model.graph)) <= 1, (in_shape, strategy, _if_counts(model.graph))


def test_targets_without_tract_keep_the_faster_if_forms(ort, rng):
    """Without tract the dynamic average graph keeps its Kronecker If (faster under
    onnxruntime); both are exact."""
    kw = dict(output_size=7)
    everywhere = export("adaptive_avg_pool2d", ("N", 8, "H", "W"), **kw)
    ort_only = export("adaptive_avg_pool2d", ("N", 8, "H", "W"), targets=("onnxruntime",), **kw)
    assert sum(_if_counts(ort_only.graph)) > sum(_if_counts(everywhere.graph))
    x = rng.standard_normal((2, 8, 13, 17)).astype(np.float32)
    for model in (everywhere, ort_only):
        (y,) = run_model(model, x.copy(), ort)
        np.testing.assert_allclose(y, adapool.adaptive_avg_pool2d(x, **kw), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("op,kw", [("adaptive_max_pool2d", dict(output_size=3, return_indices=True)),
                                   ("avg_pool2d", dict(kernel_size=3, stride=2, ceil_mode=True))])
def test_auto_warns_when_no_strategy_is_exact_on_a_target(op, kw):
    with pytest.warns(UserWarning, match=r"no strategy is exact on tract for this call \(tract: .+\); using 'dynamic'"):
        model = export(op, ("N", 3, "H", "W"), **kw)
    assert {p.key: p.value for p in model.metadata_props}["adapool.strategy"] == "dynamic"
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # exact on every target named: no warning
        export(op, ("N", 3, "H", "W"), targets=("onnxruntime", "openvino"), **kw)
        export(op, (2, 3, 15, 15), **kw)   # static shapes: exact on tract too


def test_every_strategy_row_says_where_it_is_exact():
    from onnx_export._builder import DEFAULT_TARGETS, TARGETS
    for name, s in STRATEGIES.items():
        assert set(s.exact_on) == set(TARGETS), name
        assert all(set(d) <= {"float16", "float32", "float64", "bfloat16"} and d for d in s.exact_on.values()), name
        assert set(s.target_refuses) <= set(TARGETS), name
    # the rows measured (benchmarks/runtime_matrix.py): onnxruntime's CPU EP lacks the float64 kernels
    assert "float64" not in STRATEGIES["pool"].exact_on["onnxruntime"]
    assert "float64" not in STRATEGIES["global"].exact_on["onnxruntime"]
    spec = onnx_export._spec.make_spec("adaptive_max_pool2d", ("N", 3, "H", "W"), "float32", output_size=3,
                                       return_indices=True)
    assert STRATEGIES["dynamic"].not_exact_on(spec, DEFAULT_TARGETS) == ["tract"]
    # measured on an H200: a strict CUDA session refuses every indices graph and every dynamic one
    assert STRATEGIES["dynamic"].not_exact_on(spec, TARGETS) == ["tract", "onnxruntime-cuda"]
    assert STRATEGIES["pool"].not_exact_on(onnx_export._spec.make_spec(
        "adaptive_max_pool2d", (1, 3, 8, 8), "float32", output_size=4, return_indices=True), TARGETS) == ["onnxruntime-cuda"]
    spec64 = onnx_export._spec.make_spec("adaptive_avg_pool2d", (1, 3, 8, 8), "float64", output_size=4)
    # float64 on OpenVINO is its limitation (it computes in float32), not a gap of the graph
    assert STRATEGIES["matmul"].not_exact_on(spec64, TARGETS) == []
    assert STRATEGIES["pool"].not_exact_on(spec64, TARGETS) == ["onnxruntime"]
    spec32 = onnx_export._spec.make_spec("adaptive_avg_pool2d", (1, 3, 9, 9), "float32", output_size=4)
    assert STRATEGIES["matmul"].not_exact_on(spec32, TARGETS) == ["onnxruntime-cuda"]   # TF32-safe form unmeasured


def test_inline_gives_the_function_body_as_standard_nodes(ort, rng):
    model = export("adaptive_avg_pool2d", ("N", 3, "H", "W"), output_size=(4, 5), strategy="function", inline=True)
    assert not model.functions
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)
    assert all(o.domain != onnx_export.DOMAIN for o in model.opset_import)
    x = rng.standard_normal((2, 3, 11, 13)).astype(np.float32)
    (y,) = run_model(model, x, ort)
    np.testing.assert_allclose(y, adapool.adaptive_avg_pool2d(x, (4, 5)), rtol=2e-5, atol=2e-6)
    # no effect on a strategy without functions
    plain = export("adaptive_avg_pool2d", (1, 3, 8, 8), output_size=4, inline=True)
    assert plain.graph == export("adaptive_avg_pool2d", (1, 3, 8, 8), output_size=4).graph


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("shape,out,strategy,form", [
    ((1, 2, 4, 6), (2, 3), "pool", "MaxPool"),          # uniform windows
    ((1, 2, 5, 7), (3, 4), "gather", "padded"),         # 5 -> 3 and 7 -> 4: kernel 3, stride 2, pads 1
    ((2, 5, 7), (3, 4), "gather", "padded"),            # unbatched: (C, 1, H, W) through MaxPool
    ((1, 2, 6, 10), (4, 4), "gather", "regathered"),    # 6 -> 4: windows no padded pool makes
    ((1, 2, 12, 6), (5, 4), "gather", "regathered"),    # 12 -> 5 (lengths 3 and 4), 6 -> 4
    ((1, 2, 6, 35), (4, 33), "gather", "regathered"),   # more than SLICED_WINDOWS: the last axis gathered
])
def test_maxpool_indices_form_keeps_torchs_rules(shape, out, strategy, form, dtype, ort):
    """The MaxPool forms of max pooling with indices (uniform windows; windows of a padded
    pool; windows gathered side by side into a copy) read MaxPool's own Indices; the windows
    where MaxPool's rule isn't torch's (NaN: torch takes the last NaN; all -inf or all the
    lowest float: MaxPool starts from the lowest float) take the gather form's indices."""
    model = export("adaptive_max_pool2d", shape, dtype=dtype, output_size=out, return_indices=True)
    # float64: onnxruntime's CPU EP lacks float64 AveragePool, so `pool` isn't auto there; the
    # gather strategy takes the same MaxPool form
    assert {p.key: p.value for p in model.metadata_props}["adapool.strategy"] == ("gather" if dtype == "float64" else strategy)
    padded = [onnx_export._strategies.padded_windows(o, c) for o, c in zip(out, shape[-2:])]
    assert {"MaxPool": all(padded) and not any(p[2] for p in padded), "padded": all(padded) and any(p[2] for p in padded),
            "regathered": not all(padded)}[form]
    lowest = np.finfo(dtype).min
    base = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape) % 5
    lead = (0, 0) if len(shape) == 4 else (0,)
    other = (0, 1) if len(shape) == 4 else (1,)
    cases = {"ties": np.zeros_like(base), "plain": base}
    nan2 = base.copy()
    nan2[lead + (0, 0)] = nan2[lead + (1, 1)] = np.nan   # two NaN in one window: the last one's index
    cases["two NaN"] = nan2
    minf = base.copy()
    minf[other + (slice(-3, None), slice(-3, None))] = -np.inf   # a whole window of -inf
    cases["-inf window"] = minf
    low = base.copy()
    low[lead + (slice(-3, None), slice(0, 3))] = lowest          # a whole window of the lowest float
    cases["lowest window"] = low
    for name, x in cases.items():
        x = x.astype(dtype)
        y, i = run_model(model, x.copy(), ort)
        want_y, want_i = adapool.adaptive_max_pool2d(x, out, return_indices=True)
        np.testing.assert_array_equal(i, want_i, err_msg=name)
        np.testing.assert_array_equal(y, want_y, err_msg=name)


def test_maxpool_indices_form_without_an_if_left(ort, rng):
    """A call built after the graph's one If (tract targeted, as `lower` builds a model's later
    calls) takes the gather form's indices alone: still exact, no If."""
    built = build("adaptive_max_pool2d", "x", (2, 3, 8, 12), output_size=4, return_indices=True, if_budget=0)
    assert built.strategy == "pool" and not any(n.op_type == "If" for n in built.nodes)
    graph = onnx.helper.make_graph(
        built.nodes, "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3, 8, 12])],
        [onnx.helper.make_tensor_value_info(built.outputs[0], onnx.TensorProto.FLOAT, None),
         onnx.helper.make_tensor_value_info(built.outputs[1], onnx.TensorProto.INT64, None)],
        initializer=built.initializers)
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)], ir_version=8)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for x in (rng.standard_normal((2, 3, 8, 12)).astype(np.float32), nasty_input((2, 3, 8, 12), "float32", rng)):
        got = sess.run(None, {"x": x})
        assert_same(got, list(adapool.adaptive_max_pool2d(x, 4, return_indices=True)), "float32", "no If")


@given(out=st.integers(1, 40), size=st.integers(1, 300))
def test_padded_windows_are_the_adaptive_windows(out, size):
    """Where padded_windows finds a padded strided pool, its windows clipped to the axis are
    the adaptive windows, its output size is `out`, and each pad is under the kernel."""
    found = onnx_export._strategies.padded_windows(out, size)
    starts, ends = onnx_export._windows.adaptive_windows(out, size)
    if found is None:
        # two windows are always a padded pool, unless they repeat one element (out > size:
        # stride 0, which MaxPool can't take)
        assert (out > 2 or out > size) and onnx_export._strategies.uniform_windows(out, size) is None
        return
    kernel, stride, begin, end = found
    first = stride * np.arange(out) - begin
    np.testing.assert_array_equal(np.clip(first, 0, size), starts)
    np.testing.assert_array_equal(np.clip(first + kernel, 0, size), ends)
    assert 0 <= begin < kernel and 0 <= end < kernel
    assert (size + begin + end - kernel) // stride + 1 == out


def test_padded_windows_of_the_seed_like_shapes():
    pw = onnx_export._strategies.padded_windows
    assert pw(7, 223) == (33, 32, 1, 1)
    assert pw(7, 15) == (3, 2, 0, 0) and pw(7, 14) == (2, 2, 0, 0)
    assert pw(5, 23) is None and pw(4, 6) is None
    assert pw(2, 1) is None   # both windows are the one element: stride 0
