"""onnx_export of the strided pools (max_pool1d/2d/3d, avg_pool1d/3d; avg_pool2d's ceil_mode
pads): every strategy x op x dtype x static/dynamic under onnxruntime's CPU EP against adapool's
kernel, auto's graphs against torch, under every runtime and optimizer through validate(), and
the edge cases (ceil_mode's extra windows, windows that hold no element, dilation at dynamic
sizes) by name."""
import json

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adapool
from onnx_export import STRATEGIES, ExportError, export, validate
from onnx_export._spec import OPS, make_spec
from onnx_export._strategies import AUTO_ORDER, call_from_node, strided_pads
from test_onnx_export import (as_list, assert_same, assert_validated, case_id, dynamic_shape, export_quiet,
                              nasty_input, run_model, run_sizes, strategy_of, torch_call)

# (op, kwargs, input shape): every argument class of each op. ceil_mode that adds a window
# (14 with k3 s2 p1: 8 windows, 7 without), dilation, a window with no element (L = 3, k 2,
# dilation 4, padding 1), uneven kernels and strides, unbatched, divisor_override.
CASES = [
    ("max_pool1d", dict(kernel_size=3, stride=2, padding=1), (2, 3, 11)),
    ("max_pool1d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, return_indices=True), (3, 14)),
    ("max_pool1d", dict(kernel_size=2, padding=1, dilation=4, return_indices=True), (2, 2, 3)),
    ("max_pool2d", dict(kernel_size=3, stride=2, padding=1), (2, 3, 14, 14)),
    ("max_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), (2, 3, 14, 13)),
    ("max_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, return_indices=True), (2, 3, 14, 14)),
    ("max_pool2d", dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), dilation=(2, 3), ceil_mode=True,
                        return_indices=True), (2, 3, 13, 11)),
    ("max_pool2d", dict(kernel_size=2, padding=1, dilation=(4, 1), return_indices=True), (1, 2, 3, 5)),
    ("max_pool2d", dict(kernel_size=2, stride=2), (3, 8, 9)),
    ("max_pool3d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, return_indices=True), (2, 2, 6, 7, 8)),
    ("max_pool3d", dict(kernel_size=(2, 3, 2), stride=(1, 2, 3), dilation=(1, 1, 2)), (1, 2, 5, 7, 9)),
    ("avg_pool1d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), (2, 3, 14)),
    ("avg_pool1d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False), (3, 14)),
    ("avg_pool1d", dict(kernel_size=4, stride=3, padding=2), (2, 3, 13)),
    ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False), (2, 3, 14, 14)),
    ("avg_pool3d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, divisor_override=5), (2, 2, 6, 7, 8)),
    ("avg_pool3d", dict(kernel_size=(2, 3, 2), stride=(1, 2, 3), padding=(1, 1, 0)), (1, 2, 5, 7, 8)),
    ("avg_pool3d", dict(kernel_size=2, ceil_mode=True, count_include_pad=False), (2, 5, 5, 6)),
    ("avg_pool1d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), (3, 14)),
]
STRIDED_OPS = sorted({op for op, _, _ in CASES} - {"avg_pool2d"} | {"max_pool1d", "max_pool2d", "max_pool3d"})


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_strategy_is_exact(case, dtype, dynamic, ort, rng):
    op, kw, shape = case
    nd = OPS[op][1]
    in_shape = dynamic_shape(shape, nd) if dynamic else shape
    exported = []
    for name in STRATEGIES:
        try:
            model = export(op, in_shape, dtype=dtype, strategy=name, **kw)
        except ExportError:
            continue
        exported.append(name)
        for size in run_sizes(shape, nd, dynamic):
            for x in (rng.standard_normal(size).astype(dtype), nasty_input(size, dtype, rng)):
                got = run_model(model, x, ort)
                want = as_list(getattr(adapool, op)(x, **kw))
                assert_same(got, want, dtype, f"{name} at {size}, finite={np.isfinite(x).all()}")
    dilated = any(d > 1 for d in np.atleast_1d(kw.get("dilation", 1)))
    # auto's form and at least one more (the dynamic and function forms at dynamic sizes); with
    # dilation the dynamic forms refuse: at static sizes gather serves every call, at dynamic
    # ones MaxPool where no window can be empty, else none (test_dilation_at_dynamic_sizes)
    assert len(exported) >= ((0 if dynamic else 1) if dilated else 2), exported


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_auto_graphs_match_torch(case, ort, torch_oracle, rng):
    op, kw, shape = case
    nd = OPS[op][1]
    for in_shape in (shape, dynamic_shape(shape, nd)):
        model = export_quiet(op, in_shape, **kw)   # every call, dilation with padding at dynamic sizes too
        for size in run_sizes(shape, nd, in_shape != shape):
            x = nasty_input(size, np.float32, rng)
            assert_same(run_model(model, x, ort), torch_call(torch_oracle, op, x, kw), "float32",
                        f"{op} {in_shape} at {size}")


# ---- every runtime, through validate() ---------------------------------------------------------

# one sample of each op and argument class per dtype: OpenVINO and tract load slowly
RUNTIME_CASES = [CASES[i] for i in (1, 2, 5, 6, 9, 10, 12, 14, 15, 18)]


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("case", RUNTIME_CASES, ids=case_id)
def test_auto_graphs_exact_on_every_runtime(case, dtype):
    op, kw, shape = case
    nd = OPS[op][1]
    # dynamic graphs in float32 only: the average ones with ceil_mode take 5 s a dtype to load
    for in_shape in (shape, dynamic_shape(shape, nd))[:2 if dtype == "float32" else 1]:
        try:
            model = export_quiet(op, in_shape, dtype=dtype, **kw)
        except ExportError:
            continue
        assert_validated(model, make_spec(op, in_shape, dtype=dtype, **kw))


@pytest.mark.parametrize("case", [CASES[5], CASES[6], CASES[11], CASES[15]], ids=case_id)
def test_optimized_graphs_stay_exact(case):
    op, kw, shape = case
    model = export_quiet(op, shape, **kw)
    report = assert_validated(model, make_spec(op, shape, **kw), optimize=["onnxsim", "onnxslim", "onnxoptimizer"])
    assert any("onnxslim" in row.runtime for row in report.rows)


@pytest.mark.parametrize("op,kw", [
    ("avg_pool1d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
    ("adaptive_avg_pool1d", dict(output_size=4)),
])
@pytest.mark.parametrize("strategy", ["matmul", "dynamic"])
def test_unbatched_1d_averages_with_inf_on_openvino(op, kw, strategy):
    """(C, L) input, windows of different lengths, an inf: the MatMul forms fall back to the
    masked sum, whose rank-2 form OpenVINO's CPU plugin computed wrong (every window's weight
    off, adaptive_avg_pool1d (3, 11) -> 4 included); it runs as (1, C, L) now."""
    pytest.importorskip("openvino")
    shape = (3, 14) if op == "avg_pool1d" else (3, 11)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    x[:, 0] = np.inf
    model = export(op, shape if strategy == "matmul" else (3, "L"), strategy=strategy, **kw)
    report = validate(model, [x], runtimes=["openvino"])
    assert report.ok, str(report)


@pytest.mark.parametrize("strategy", ["pool", "gather", "dynamic", "function"])
def test_max_strategies_on_every_runtime(strategy):
    """Each max form alone (auto shows only one) on every runtime, with ceil_mode and indices."""
    op, kw, shape = "max_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), (2, 3, 14, 13)
    for indices in (False, True):
        model = export(op, shape, strategy=strategy, return_indices=indices, **kw)
        assert_validated(model, make_spec(op, shape, return_indices=indices, **kw))


# ---- the cases by name -------------------------------------------------------------------------

def _all_attrs(graph):
    for node in graph.node:
        for a in node.attribute:
            yield node, a
            if a.type == onnx.AttributeProto.GRAPH:
                yield from _all_attrs(a.g)


def test_ceil_mode_windows_become_right_padding(ort, rng):
    """max_pool2d(3, 2, 1, ceil_mode=True) on 14x14: torch's 8th window starts at 13 and ends
    in the overhang; MaxPool gets one more pad on the right (never picked), no ceil_mode."""
    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    model = export("max_pool2d", (2, 3, 14, 14), **kw)
    assert strategy_of(model) == "pool"
    pools = [n for n, _ in _all_attrs(model.graph) if n.op_type == "MaxPool"]
    assert pools and not any(a.name == "ceil_mode" and a.i for _, a in _all_attrs(model.graph))
    pads = {tuple(a.ints) for n, a in _all_attrs(model.graph) if n.op_type == "MaxPool" and a.name == "pads"}
    assert pads == {(1, 1, 2, 2)}
    assert model.graph.output[0].type.tensor_type.shape.dim[2].dim_value == 8
    x = -np.abs(rng.standard_normal((2, 3, 14, 14)).astype(np.float32))   # all negative: a pad read as 0 would win
    assert_same(run_model(model, x, ort), as_list(adapool.max_pool2d(x, **kw)), "float32", "ceil pads")


def test_ceil_mode_average_counts_as_torch(ort, rng):
    """avg_pool1d(3, 2, 1, ceil_mode=True) on 14: the 8th window [13, 16) is cut at 15 = L + p;
    counting the declared pad and not the overhang, its divisor is 2. AveragePool would count
    the extra pad (3), so `pool` refuses it and auto takes the MatMul form; without
    count_include_pad the pads count for nothing and `pool` is exact."""
    shape = (2, 3, 14)
    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    with pytest.raises(ExportError, match="counts differently"):
        export("avg_pool1d", shape, strategy="pool", **kw)
    model = export("avg_pool1d", shape, **kw)
    assert strategy_of(model) == "matmul"
    x = np.ones(shape, np.float32)
    got = run_model(model, x, ort)[0]
    want = adapool.avg_pool1d(x, **kw)
    assert want[0, 0, -1] == pytest.approx(0.5)   # one element over a divisor of 2
    assert_same([got], [want], "float32", "ceil average")
    model = export("avg_pool1d", shape, count_include_pad=False, **kw)
    assert strategy_of(model) == "pool"
    assert_same(run_model(model, x, ort), [adapool.avg_pool1d(x, count_include_pad=False, **kw)], "float32", "")


@pytest.mark.parametrize("strategy", ["auto", "gather"])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_window_without_elements(strategy, dtype, ort, rng):
    """Dilation and padding: L = 3, kernel 2, dilation 4, padding 1 reads positions -1 and 3,
    none of them in the input. torch: -inf, index 3 (past the window's start, outside the
    plane). MaxPool gives the lowest float there: `pool` refuses, `gather` puts torch's answer in."""
    kw = dict(kernel_size=2, padding=1, dilation=4, return_indices=True)
    with pytest.raises(ExportError, match="no element"):
        export("max_pool1d", (2, 2, 3), strategy="pool", **kw)
    model = export("max_pool1d", (2, 2, 3), dtype=dtype, strategy=strategy, **kw)
    x = rng.standard_normal((2, 2, 3)).astype(dtype)
    y, idx = run_model(model, x, ort)
    assert np.all(y == -np.inf) and np.all(idx == 3)
    assert_same([y, idx], as_list(adapool.max_pool1d(x, **kw)), dtype, "empty window")


def test_max_pool_nan_and_minus_inf_windows(ort):
    """A window of NaN and -inf gives NaN at the last NaN; one of -inf alone gives -inf at its
    first element (MaxPool under onnxruntime: skips NaN, starts from the lowest float)."""
    x = np.array([[[0, np.nan, 1, np.nan, -np.inf, -np.inf, -np.inf, -np.inf, 2, 5]]], np.float32)
    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, return_indices=True)
    y_want, i_want = adapool.max_pool1d(x, **kw)
    assert np.isnan(y_want[0, 0, 1]) and i_want[0, 0, 1] == 3 and y_want[0, 0, 3] == -np.inf
    for strategy in ("pool", "gather", "dynamic"):
        model = export("max_pool1d", (1, 1, 10), strategy=strategy, **kw)
        assert_same(run_model(model, x.copy(), ort), [y_want, i_want], "float32", strategy)


# dilation with padding at dynamic sizes: a window holds no element at some sizes (L = 3, k 2,
# dilation 4, padding 1 reads -1 and 3; 5 x 4 in 2-d below), and elements elsewhere
DILATED_DYNAMIC = [
    ("max_pool1d", dict(kernel_size=2, padding=1, dilation=4), ("N", "C", "L"), [(2, 2, 3), (1, 2, 9), (2, 1, 5)]),
    ("max_pool2d", dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1), dilation=(2, 3), ceil_mode=True),
     ("N", 3, "H", "W"), [(2, 3, 13, 11), (1, 3, 5, 2), (2, 3, 3, 3)]),
    ("max_pool2d", dict(kernel_size=2, padding=1, dilation=(4, 1)), (3, "H", "W"), [(3, 3, 5), (3, 7, 6)]),
    ("max_pool3d", dict(kernel_size=2, stride=1, padding=1, dilation=(1, 3, 2)), (1, 2, "D", "H", "W"),
     [(1, 2, 3, 4, 5), (1, 2, 2, 2, 3)]),
]


@pytest.mark.parametrize("return_indices", [False, True], ids=["values", "indices"])
@pytest.mark.parametrize("case", DILATED_DYNAMIC, ids=lambda c: f"{c[0]}-{'x'.join(map(str, c[2]))}")
def test_dilation_with_padding_at_dynamic_sizes(case, return_indices, ort, torch_oracle, rng):
    """The dynamic form's windows with dilation (max_pool_windows' tables computed from Shape):
    one graph, exact against torch at sizes with and without empty windows (-inf and torch's
    index there), under every runtime that loads it (tract refuses dynamic indices graphs)."""
    from onnx_export._runtimes import RUNTIMES
    op, kw, in_shape, sizes = case
    model = export_quiet(op, in_shape, **kw, return_indices=return_indices)
    assert strategy_of(model) == "dynamic"
    ran, empty_windows = set(), 0
    for size in sizes:
        finite = rng.standard_normal(size).astype(np.float32)
        for x in (finite, nasty_input(size, np.float32, rng)):
            want = torch_call(torch_oracle, op, x, dict(kw, return_indices=return_indices))
            for name in ("onnxruntime-cpu", "onnx-reference", "openvino", "tract"):
                if RUNTIMES[name].missing() or (name == "tract" and return_indices):
                    continue
                (got,), _ = RUNTIMES[name].run(model, [{"input": x}])
                assert_same(list(got), want, "float32", f"{name} at {size}")
                ran.add(name)
        # a window with no element: -inf from finite data
        empty_windows += int(np.isneginf(torch_call(torch_oracle, op, finite, kw)[0]).sum())
    assert {"onnxruntime-cpu", "onnx-reference"} <= ran
    assert empty_windows


def test_dilation_at_dynamic_sizes_picks_a_form():
    """Dilation with padding at dynamic sizes: the dynamic form (MaxPool would be wrong on an
    empty window); without padding MaxPool is exact; the function form has no dilation yet."""
    model = export_quiet("max_pool2d", (1, 3, "H", "W"), kernel_size=2, padding=1, dilation=3)
    assert strategy_of(model) == "dynamic"
    with pytest.raises(ExportError, match="function body has no dilation yet"):
        export("max_pool2d", (1, 3, "H", "W"), kernel_size=2, padding=1, dilation=3, strategy="function")
    with pytest.raises(ExportError, match="can hold no element"):
        export("max_pool2d", (1, 3, "H", "W"), kernel_size=2, padding=1, dilation=3, strategy="pool")
    model = export("max_pool2d", (1, 3, "H", "W"), kernel_size=2, dilation=3)
    assert strategy_of(model) == "pool"


@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("op", STRIDED_OPS)
def test_checker_and_shape_inference(op, strategy):
    nd = OPS[op][1]
    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    if op.startswith("max"):
        kw["return_indices"] = True
    shape = (2, 3) + (9, 10, 11)[:nd]
    try:
        model = export(op, shape, strategy=strategy, **kw)
    except ExportError as e:
        assert strategy not in ("gather", "dynamic", "function") or op.startswith("avg"), e
        return
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    want = make_spec(op, shape, **kw).output_shape()
    for out in inferred.graph.output:
        assert [d.dim_value for d in out.type.tensor_type.shape.dim] == list(want)


def test_auto_order_and_choices():
    assert AUTO_ORDER["maxpool"] == ("pool", "gather", "dynamic")
    assert AUTO_ORDER["avgpool"] == ("pool", "matmul", "dynamic")
    assert strategy_of(export("max_pool2d", (8, 64, 56, 56), kernel_size=3, stride=2, padding=1)) == "pool"
    # onnxruntime has no float64 AveragePool; onnx's reference evaluator wrong float64 MaxPool indices
    assert strategy_of(export("avg_pool3d", (1, 2, 6, 6, 6), dtype="float64", kernel_size=2)) == "matmul"
    assert strategy_of(export("max_pool2d", (1, 2, 6, 6), dtype="float64", kernel_size=2)) == "gather"
    assert strategy_of(export_quiet("max_pool1d", ("N", 3, "L"), kernel_size=3, stride=2, padding=1,
                                    ceil_mode=True)) == "dynamic"


@pytest.mark.parametrize("shape,kw,want", [
    ((9,), dict(kernel_size=(3,), stride=(2,), padding=(1,), ceil_mode=True), [1, 1]),
    ((10,), dict(kernel_size=(3,), stride=(2,), padding=(1,), ceil_mode=True), [1, 2]),
    ((10, "W"), dict(kernel_size=(3, 3), stride=(2, 2), padding=(1, 0), ceil_mode=False), [1, 0, 1, 0]),
    ((11,), dict(kernel_size=(2,), stride=(5,), padding=(0,), ceil_mode=True), [0, 1]),
    # dilation: the window ceil_mode adds can need pads of the kernel size, which onnxruntime rejects
    ((5,), dict(kernel_size=(2,), stride=(3,), padding=(0,), dilation=(3,), ceil_mode=True), "reaches the kernel"),
])
def test_strided_pads(shape, kw, want):
    """The pads `pool` gives MaxPool/AveragePool: ceil_mode's extra window as right padding."""
    spec = make_spec(f"max_pool{len(shape)}d", (1, 1) + shape, **kw)
    got = strided_pads(spec)
    assert got == want if isinstance(want, list) else want in got


def test_function_nodes_round_trip(ort, rng):
    """The adapool-domain node carries the call; call_from_node reads it back (validate uses it)."""
    for op, kw in (("max_pool3d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, return_indices=True)),
                   ("avg_pool1d", dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
                   ("avg_pool3d", dict(kernel_size=2, divisor_override=3))):
        nd = OPS[op][1]
        shape = (2, 3) + (7, 8, 9)[:nd]
        model = export(op, shape, strategy="function", **kw)
        (node,) = model.graph.node
        assert node.domain == "adapool" and node.op_type.startswith(("MaxPool", "AvgPool"))
        got_op, got_kw = call_from_node(node)
        assert got_op == op
        full = make_spec(op, shape, **kw).kwargs()
        assert got_kw == full
        x = nasty_input(shape, np.float32, rng)
        assert_same(run_model(model, x, ort), as_list(getattr(adapool, op)(x, **kw)), "float32", op)


def test_metadata_records_the_call():
    model = export("max_pool2d", (1, 2, 9, 9), kernel_size=3, stride=(2, 1), dilation=2, return_indices=True)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["adapool.op"] == "max_pool2d"
    assert json.loads(meta["adapool.kwargs"]) == dict(kernel_size=[3, 3], stride=[2, 1], padding=[0, 0],
                                                      dilation=[2, 2], ceil_mode=False, return_indices=True)
    assert "divisor_override" not in json.loads(
        {p.key: p.value for p in export("avg_pool1d", (2, 5), kernel_size=2).metadata_props}["adapool.kwargs"])


@pytest.mark.parametrize("op,shape,kw", [
    ("max_pool2d", (1, 3, 8, 8), dict(kernel_size=3, padding=2)),
    ("max_pool1d", (1, 3, 8), dict(kernel_size=3, dilation=0)),
    ("avg_pool3d", (1, 3, 2, 8, 8), dict(kernel_size=3)),
    ("avg_pool3d", (1, 3, 8, 8, 8), dict(kernel_size=3, divisor_override=0)),
    ("max_pool2d", (1, 3, 8, 8), dict(kernel_size=(3, 3, 3))),
    ("avg_pool1d", (1, 3, 8), dict(kernel_size=3, divisor_override=2)),
])
def test_export_errors_match_the_numpy_call(op, shape, kw):
    x = np.zeros(shape, np.float32)
    with pytest.raises((ValueError, TypeError)) as numpy_error:
        getattr(adapool, op)(x, **kw)
    with pytest.raises(type(numpy_error.value)) as export_error:
        export(op, shape, **kw)
    assert str(export_error.value) == str(numpy_error.value)


def test_empty_batch(ort):
    """N = 0: an empty result. With the batch static the graph is ConstantOfShape, no pooling
    node (OpenVINO refuses MaxPool/AveragePool over a static batch of 0: "Batch size is zero")."""
    for op, kw in (("max_pool2d", dict(kernel_size=3, stride=2, padding=1, return_indices=True)),
                   ("avg_pool1d", dict(kernel_size=3, stride=2, padding=1))):
        nd = OPS[op][1]
        shape = (0, 3) + (9, 9)[:nd]
        for in_shape in (shape, ("N", 3) + shape[2:]):
            model = export(op, in_shape, **kw)
            pools = {n.op_type for n in model.graph.node} & {"MaxPool", "AveragePool", "MatMul"}
            assert not pools if in_shape == shape else pools
            x = np.zeros(shape, np.float32)
            assert_same(run_model(model, x, ort), as_list(getattr(adapool, op)(x, **kw)), "float32", op)


def test_command_line_takes_the_strided_arguments(tmp_path):
    from onnx_export.__main__ import main
    out = tmp_path / "p.onnx"
    rc = main(["export", "max_pool2d", "--input-shape", "1,3,15,15", "--kernel-size", "3", "--stride", "2",
               "--padding", "1", "--dilation", "2", "--ceil-mode", "--return-indices", "-o", str(out),
               "--no-validate"])
    assert rc == 0
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert json.loads(meta["adapool.kwargs"]) == dict(kernel_size=[3, 3], stride=[2, 2], padding=[1, 1],
                                                      dilation=[2, 2], ceil_mode=True, return_indices=True)
    assert main(["export", "avg_pool1d", "--input-shape", "1,3,15", "--kernel-size", "3",
                 "--no-count-include-pad", "-o", str(out), "--no-validate"]) == 0
    assert main(["export", "avg_pool2d", "--input-shape", "1,3,15,15", "--kernel-size", "3", "--dilation", "2",
                 "-o", str(out), "--no-validate"]) == 2   # avg pools have no dilation
    assert main(["export", "max_pool1d", "--input-shape", "1,3,15", "--kernel-size", "3",
                 "--divisor-override", "2", "-o", str(out), "--no-validate"]) == 2


# ---- properties --------------------------------------------------------------------------------

@st.composite
def strided_calls(draw):
    op = draw(st.sampled_from(STRIDED_OPS + ["avg_pool2d"]))
    nd = OPS[op][1]
    is_max = op.startswith("max")
    kernel = [draw(st.integers(1, 4)) for _ in range(nd)]
    stride = [draw(st.integers(1, 4)) for _ in range(nd)]
    dilation = [draw(st.integers(1, 3)) if is_max else 1 for _ in range(nd)]
    padding = [draw(st.integers(0, ((k - 1) * d + 1) // 2 if is_max else k // 2))
               for k, d in zip(kernel, dilation)]
    sizes = [draw(st.integers(max(1, (k - 1) * d + 1 - 2 * p), 12))
             for k, d, p in zip(kernel, dilation, padding)]
    kw = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=draw(st.booleans()))
    if is_max:
        kw.update(dilation=dilation, return_indices=draw(st.booleans()))
    else:
        kw["count_include_pad"] = draw(st.booleans())
        if nd > 1 and draw(st.booleans()):
            kw["divisor_override"] = draw(st.integers(-5, 9).filter(bool))
    lead = draw(st.sampled_from([(2, 3), (3,)]))
    return op, kw, lead + tuple(sizes), draw(st.sampled_from(["float16", "float32", "float64"]))


@settings(max_examples=40, deadline=None)
@given(call=strided_calls(), seed=st.integers(0, 2**16))
def test_strided_property(call, seed, ort):
    """Random ops, arguments, shapes and dtypes: auto's graph (and the last resort of each
    kind) equals adapool's kernel on data with ties, NaN and ±inf."""
    op, kw, shape, dtype = call
    x = nasty_input(shape, dtype, np.random.default_rng(seed))
    try:
        want = as_list(getattr(adapool, op)(x, **kw))
    except ValueError:   # e.g. avg_pool3d's input smaller than its kernel
        with pytest.raises(ValueError):
            export(op, shape, dtype=dtype, **kw)
        return
    for strategy in ("auto", "gather" if op.startswith("max") else "matmul"):
        model = export_quiet(op, shape, dtype=dtype, strategy=strategy, **kw)
        assert_same(run_model(model, x.copy(), ort), want, dtype, f"{strategy}: {op} {kw} {shape}")
