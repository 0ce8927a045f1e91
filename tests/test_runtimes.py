"""The runtime table (onnxruntime, OpenVINO, tract, onnx.reference), graph optimizers, validate()
on any model (a reference runtime, expected outputs, sizes, localization of a divergence) and the
torch bridge's check against torch eager."""
import dataclasses
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper
from onnx.reference.op_run import OpRun

from onnx_export import export, validate
from onnx_export.__main__ import main
from onnx_export._runtimes import DEFAULT_RUNTIMES, OPTIMIZERS, RUNTIMES, Runtime, optimize
from onnx_export._validate import UnsupportedModel

pytestmark = pytest.mark.filterwarnings("ignore")


def small_net(dynamic=False):
    """Conv -> Relu -> Add(second input) -> MaxPool, with two outputs (the pool and the Add)."""
    n = "N" if dynamic else 1
    w = numpy_helper.from_array(np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu1"),
             helper.make_node("Add", ["r", "bias"], ["a"], name="add1"),
             helper.make_node("MaxPool", ["a"], ["y"], name="pool1", kernel_shape=[2, 2], strides=[2, 2])]
    graph = helper.make_graph(
        nodes, "net",
        [helper.make_tensor_value_info("x", TP.FLOAT, [n, 3, 8, 8]),
         helper.make_tensor_value_info("bias", TP.FLOAT, [n, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TP.FLOAT, None), helper.make_tensor_value_info("a", TP.FLOAT, None)],
        [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


class Relu(OpRun):
    """A Relu that is off by 0.25: the deliberately broken node (ReferenceEvaluator's new_ops
    replace the op whose name is the class name)."""
    op_domain = ""

    def _run(self, x):
        return (np.maximum(x, 0) + np.float32(0.25),)


def _run_broken(model, feeds):
    from onnx.reference import ReferenceEvaluator
    sess = ReferenceEvaluator(model, new_ops=[Relu])
    return [sess.run(None, dict(f)) for f in feeds], "onnx.reference with a wrong Relu"


@pytest.fixture
def broken(monkeypatch):
    monkeypatch.setitem(RUNTIMES, "broken", Runtime("broken", "onnx", "-", _run_broken))
    return "broken"


def one_node(op_type, shape, **attrs):
    node = helper.make_node(op_type, ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], "one", [helper.make_tensor_value_info("x", TP.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TP.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


# ---- the table ---------------------------------------------------------------------------------

def test_table_rows():
    assert set(RUNTIMES) == {"onnxruntime-cpu", "onnxruntime-cuda", "openvino", "openvino-default", "tract",
                             "onnx-reference"}
    assert "openvino-default" not in DEFAULT_RUNTIMES and set(DEFAULT_RUNTIMES) < set(RUNTIMES)
    assert [n for n, r in RUNTIMES.items() if not r.functions] == ["openvino", "openvino-default", "tract"]
    assert RUNTIMES["openvino"].install == "pip install openvino" and RUNTIMES["tract"].install == "pip install tract"
    assert set(OPTIMIZERS) == {"onnxsim", "onnxslim", "onnxoptimizer"}


@pytest.mark.parametrize("name,hint", [("openvino", "pip install openvino"), ("tract", "pip install tract")])
def test_missing_runtime_is_skipped_with_the_install_hint(name, hint, monkeypatch, ort):
    monkeypatch.setitem(RUNTIMES, name, dataclasses.replace(RUNTIMES[name], module="no_such_module_here"))
    report = validate(export("adaptive_avg_pool2d", (1, 3, 9, 9), output_size=4), runtimes=["onnxruntime-cpu", name])
    row = report.row(name)
    assert row.status == "skipped" and hint in row.detail and report.ok


def test_openvino_and_tract_agree_with_the_kernel(openvino, tract, ort):
    report = validate(export("adaptive_avg_pool2d", ("N", 3, "H", "W"), output_size=7))
    assert report.ok, str(report)
    assert report.row("openvino").status == "ok" and report.row("openvino").provider == "CPU (f32)"
    assert report.row("tract").status == "ok" and report.row("tract").max_abs < 1e-5
    assert report.reference == "adapool kernel (adaptive_avg_pool2d)"


def test_functions_are_inlined_for_openvino_and_tract(openvino, tract, ort):
    model = export("adaptive_avg_pool2d", (2, 3, 11, 16), output_size=7, strategy="function")
    assert len(model.functions) == 1
    report = validate(model, runtimes=["onnxruntime-cpu", "openvino", "tract"])
    assert report.ok, str(report)
    assert "functions inlined" in report.row("openvino").detail and "functions inlined" in report.row("tract").detail
    assert "inlined" not in report.row("onnxruntime-cpu").detail


def test_openvino_float64_is_a_limitation_not_a_failure(openvino, ort, rng):
    model = export("adaptive_max_pool2d", (1, 2, 8, 8), output_size=4, dtype="float64")
    x = rng.standard_normal((1, 2, 8, 8))
    x[0, 0, 0, 0] = 1e300   # beyond float32's range: OpenVINO's float32 can't hold it
    report = validate(model, x, runtimes=["onnxruntime-cpu", "openvino"])
    row = report.row("openvino")
    assert row.status == "limitation" and "OpenVINO computes float64 in float32" in row.detail, str(report)
    assert report.ok and "limitation" in str(report)
    assert report.row("onnxruntime-cpu").status == "ok"


def test_openvino_default_precision_is_available_on_request(openvino, ort):
    report = validate(export("adaptive_avg_pool2d", (1, 3, 9, 9), output_size=4), runtimes=["openvino-default"])
    row = report.row("openvino-default")
    assert row.provider == "CPU (default precision)" and row.status in ("ok", "mismatch")


# ---- optimizers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimized_graphs_validate(name, request, ort):
    request.getfixturevalue(name)
    model = export("adaptive_avg_pool2d", ("N", 3, "H", "W"), output_size=5)
    optimized = optimize(model, name)
    dims = [d.dim_param or d.dim_value for d in optimized.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 3, "H", "W"]   # no input shapes given: dims stay symbolic
    report = validate(model, runtimes=["onnxruntime-cpu"], optimize=name)
    assert [r.runtime for r in report.rows] == ["onnxruntime-cpu", f"{name} → onnxruntime-cpu"]
    assert report.ok, str(report)


def test_unknown_optimizer_and_missing_one(monkeypatch, ort):
    model = export("adaptive_avg_pool2d", (1, 3, 9, 9), output_size=4)
    with pytest.raises(ValueError, match="unknown optimizer"):
        validate(model, optimize="polish")
    monkeypatch.setitem(OPTIMIZERS, "onnxsim", dataclasses.replace(OPTIMIZERS["onnxsim"], module="no_such_module"))
    row = validate(model, runtimes=["onnxruntime-cpu"], optimize=["onnxsim"]).row("onnxsim → onnxruntime-cpu")
    assert row.status == "skipped" and "pip install onnxsim" in row.detail
    with pytest.raises(ImportError, match="pip install onnxsim"):
        optimize(model, "onnxsim")


# ---- any model -----------------------------------------------------------------------------------

def test_any_model_against_the_reference_runtime(ort):
    report = validate(small_net(dynamic=True), runtimes=["onnxruntime-cpu", "openvino", "tract", "onnx-reference"])
    assert report.reference == "runtime onnxruntime-cpu"
    assert report.row("onnxruntime-cpu").status == "reference"
    for name in ("openvino", "tract"):
        assert report.row(name).status in ("ok", "skipped"), str(report)
    assert report.row("onnx-reference").status == "ok" and report.ok, str(report)
    assert len(report.cases) == 3 and len(report.cases[0]) == 2   # two inputs per case, three batch sizes
    assert {c[0][0] for c in report.cases} == {1, 2, 3} and all(c[0][0] == c[1][0] for c in report.cases)
    assert "reference: runtime onnxruntime-cpu" in str(report)


def test_broken_node_is_localized(broken, ort):
    report = validate(small_net(), runtimes=["onnxruntime-cpu", broken])
    row = report.row(broken)
    assert row.status == "mismatch" and not report.ok
    assert row.first_divergence.startswith("node relu1 (Relu): max abs err 0.25"), row.first_divergence
    assert "first divergence: node relu1 (Relu)" in str(report)


def test_a_wrong_graph_is_the_graph_not_the_runtime(ort):
    model = export("adaptive_avg_pool2d", (1, 4, 15, 15), output_size=7, strategy="matmul")
    model = onnx.ModelProto.FromString(model.SerializeToString())
    init = next(i for i in model.graph.initializer if numpy_helper.to_array(i).size > 1)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.01), init.name))
    row = validate(model, runtimes=["onnxruntime-cpu"]).row("onnxruntime-cpu")
    assert row.status == "mismatch"
    assert row.first_divergence.startswith("the runtimes agree node by node; the graph itself differs")


def test_expected_outputs_and_reference_choice(ort, rng):
    model = small_net()
    feeds = [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32),
              "bias": rng.standard_normal((1, 4, 8, 8)).astype(np.float32)}]
    (want,) = RUNTIMES["onnx-reference"].run(model, feeds)[0]
    report = validate(model, feeds, expected=[want], runtimes=["onnxruntime-cpu"])
    assert report.ok and report.reference == "expected outputs"
    wrong = [want[0] + 1, want[1]]
    assert validate(model, feeds, expected=[wrong], runtimes=["onnxruntime-cpu"]).row("onnxruntime-cpu").status \
        == "mismatch"
    report = validate(model, feeds, reference="onnx-reference", runtimes=["onnxruntime-cpu", "onnx-reference"])
    assert report.reference == "runtime onnx-reference" and report.row("onnxruntime-cpu").status == "ok"
    with pytest.raises(ValueError, match="need the inputs"):
        validate(model, expected=[want])
    with pytest.raises(ValueError, match="list of dicts"):
        validate(model, [feeds[0]["x"]])


def test_sizes_and_input_kinds(ort):
    model = export("adaptive_avg_pool2d", ("N", 3, "H", "W"), output_size=4)
    report = validate(model, runtimes=["onnxruntime-cpu"], sizes={"N": [1, 2], "H": [9, 30]})
    assert report.ok and [c[0] for c in report.cases] == [1, 2] and [c[2] for c in report.cases] == [9, 30]
    with pytest.raises(ValueError, match="not a dynamic dim"):
        validate(model, sizes={"C": [3]})
    # int64 inputs: small non-negative ints; a bool input needs inputs=
    node = helper.make_node("Gather", ["table", "i"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("table", TP.FLOAT, [5, 3]),
                                            helper.make_tensor_value_info("i", TP.INT64, ["K"])],
                              [helper.make_tensor_value_info("y", TP.FLOAT, None)])
    gather = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert validate(gather, runtimes=["onnxruntime-cpu", "onnx-reference"]).ok
    graph = helper.make_graph([helper.make_node("Not", ["b"], ["y"])], "n",
                              [helper.make_tensor_value_info("b", TP.BOOL, [3])],
                              [helper.make_tensor_value_info("y", TP.BOOL, None)])
    with pytest.raises(UnsupportedModel, match="pass inputs="):
        validate(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    b = np.array([True, False, True])
    assert validate(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), [{"b": b}],
                    runtimes=["onnxruntime-cpu", "onnx-reference"]).ok


# ---- pooling nodes adapool now computes ------------------------------------------------------------

@pytest.mark.parametrize("shape,attrs", [
    ([2, 3, 13], dict(kernel_shape=[3], strides=[2], pads=[1, 1])),                        # 1-d, overlapping
    ([2, 3, 13], dict(kernel_shape=[4], strides=[3], pads=[1, 1], count_include_pad=1)),
    ([2, 3, 12, 12], dict(kernel_shape=[3, 3], strides=[1, 1], auto_pad="SAME_UPPER")),    # pads 1, 1
    ([2, 3, 12, 11], dict(kernel_shape=[3, 2], strides=[2, 2], auto_pad="VALID")),
], ids=["1d", "1d-include-pad", "same-upper", "valid"])
def test_average_pool_forms(shape, attrs, ort):
    report = validate(one_node("AveragePool", shape, **attrs), runtimes=["onnxruntime-cpu"])
    assert report.reference == "adapool kernel (avg_pool2d)" and report.ok, str(report)


@pytest.mark.parametrize("shape,attrs", [
    ([2, 3, 9, 10], dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 0], p=2)),
    ([2, 3, 12], dict(kernel_shape=[3], strides=[2], p=3)),
    ([1, 2, 6, 6, 8], dict(kernel_shape=[2, 3, 4], strides=[2, 3, 4], p=1)),
], ids=["2d", "1d-p3", "3d-p1"])
def test_lp_pool(shape, attrs, ort):
    report = validate(one_node("LpPool", shape, **attrs), runtimes=["onnxruntime-cpu", "onnx-reference"])
    assert report.reference.startswith("adapool kernel") and report.ok, str(report)


def test_ceil_mode_that_adds_no_window_and_one_that_does(ort, rng):
    x = rng.standard_normal((1, 2, 9, 9)).astype(np.float32)
    exact = one_node("MaxPool", [1, 2, 9, 9], kernel_shape=[3, 3], strides=[3, 3], ceil_mode=1)
    report = validate(exact, x, runtimes=["onnxruntime-cpu"])
    assert report.reference == "adapool kernel (adaptive_max_pool2d)" and report.ok
    adds = one_node("MaxPool", [1, 2, 10, 10], kernel_shape=[3, 3], strides=[3, 3], ceil_mode=1)
    report = validate(adds, np.pad(x, ((0, 0), (0, 0), (0, 1), (0, 1))), runtimes=["onnxruntime-cpu", "onnx-reference"])
    assert report.reference == "runtime onnxruntime-cpu"   # adapool can't: the runtime is the reference


def test_same_pads_that_are_asymmetric_use_the_runtime(ort):
    model = one_node("AveragePool", [1, 2, 8, 8], kernel_shape=[2, 2], strides=[1, 1], auto_pad="SAME_UPPER")
    report = validate(model, runtimes=["onnxruntime-cpu", "onnx-reference"])
    assert report.reference == "runtime onnxruntime-cpu" and report.row("onnx-reference").passed


# ---- CLI and the working directory ---------------------------------------------------------------

def test_cli_check_any_model(tmp_path, capsys, ort, broken):
    path = tmp_path / "net.onnx"
    onnx.save(small_net(dynamic=True), str(path))
    argv = ["check", str(path), "--runtimes", "onnxruntime-cpu,onnx-reference", "--sizes", "N=1,4"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "reference: runtime onnxruntime-cpu" in out and "one pooling call" not in out and out.rstrip().endswith("OK")
    assert "inputs: 1x3x8x8 & 1x4x8x8, 4x3x8x8 & 4x4x8x8" in out
    assert main(["check", str(path), "--runtimes", "broken", "--reference", "onnx-reference"]) == 1
    assert "first divergence: node relu1 (Relu)" in capsys.readouterr().out


def test_cli_bad_sizes_exit_2(tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["check", "m.onnx", "--sizes", "N"])
    assert info.value.code == 2


def test_validate_and_check_leave_no_file(tmp_path, monkeypatch, ort, capsys):
    path = tmp_path.parent / f"{tmp_path.name}-model.onnx"
    onnx.save(export("adaptive_avg_pool2d", ("N", 3, "H", "W"), output_size=4, strategy="function"), str(path))
    monkeypatch.chdir(tmp_path)
    validate(str(path), runtimes=list(RUNTIMES), optimize=list(OPTIMIZERS))
    validate(small_net())
    assert main(["check", str(path), "--optimize", "onnxslim"]) in (0, 1)
    assert os.listdir(tmp_path) == []
    path.unlink()


# ---- the torch bridge ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bridge(torch_oracle):
    pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript (in the test extra)")
    import onnx_export.torch as bridge
    return bridge


# tract (0.23) refuses these dynamic-shape graphs; each names the node
TRACT_FAILS = {
    "pspnet_ppm": "Resize",   # torch's own bilinear F.interpolate node with a dynamic size, not adapool's
    "max_indices": "Reshape",  # adapool's dynamic max graph: a Reshape with allowzero=1 ("Failed analyse")
}


# static exports through one exporter (the lowered pooling graphs are the same), dynamic through both
@pytest.mark.parametrize("dynamo,dynamic", [(False, False), (False, True), (True, True)],
                         ids=["torchscript-static", "torchscript-dynamic", "dynamo-dynamic"])
@pytest.mark.parametrize("name", ["resnet_head", "pspnet_ppm", "max_indices", "video3d", "divisor_override"])
def test_validate_torch(name, dynamo, dynamic, bridge, torch_oracle, ort):
    from test_onnx_torch import export_model
    model, x, proto, _ = export_model(bridge, torch_oracle, name, dynamo, dynamic)
    report = bridge.validate_torch(model, proto, (x,))
    assert report.reference == "expected outputs" and len(report.cases) == (3 if dynamic else 1)
    for rt in ("onnxruntime-cpu", "openvino", "onnx-reference"):
        assert report.row(rt).status in ("ok", "skipped"), str(report)
    tract = report.row("tract")
    if dynamic and name in TRACT_FAILS and tract.status == "failed":
        assert TRACT_FAILS[name] in tract.detail, str(report)
        pytest.xfail(f"tract refuses the dynamic graph at a {TRACT_FAILS[name]} node: {tract.detail[:120]}")
    assert tract.status in ("ok", "skipped"), str(report)
    assert report.ok


def test_export_check(bridge, torch_oracle, ort, monkeypatch, tmp_path):
    torch = torch_oracle
    import models
    model = models.ResNetHead().eval()
    x = torch.randn(2, 3, 30, 30)
    path = tmp_path / "m.onnx"
    proto = bridge.export(model, (x,), path, dynamo=False, check=True, input_names=["x"],
                          dynamic_axes={"x": {0: "N", 2: "H", 3: "W"}})
    assert path.exists() and proto.graph.node
    monkeypatch.setitem(RUNTIMES, "onnx-reference", Runtime("onnx-reference", "onnx", "-", _run_broken))
    bad = tmp_path / "bad.onnx"
    with pytest.raises(bridge.CheckFailed) as info:
        bridge.export(model, (x,), bad, dynamo=False, check=True)
    row = info.value.report.row("onnx-reference")
    assert row.status == "mismatch" and "(Relu)" in row.first_divergence
    assert not bad.exists()   # nothing saved when the check fails


def test_a_cycle_is_refused_before_openvino_reads_it(openvino, ort):
    """OpenVINO's frontend took 80 s to refuse a two-node cycle: it is refused up front."""
    import time
    nodes = [helper.make_node("GlobalAveragePool", ["b"], ["y"]), helper.make_node("Identity", ["y"], ["b"])]
    graph = helper.make_graph(nodes, "cycle", [helper.make_tensor_value_info("x", TP.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TP.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    start = time.perf_counter()
    row = validate(model, runtimes=["openvino"]).row("openvino")
    assert row.status == "failed" and "not acyclic" in row.detail and "'y'" in row.detail, row
    assert time.perf_counter() - start < 20


def test_bridge_passes_targets_on(bridge, torch_oracle, ort):
    torch = torch_oracle
    import models
    model = models.ResNetHead().eval()
    x = torch.randn(2, 3, 30, 30)
    dyn = dict(dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "N", 2: "H", 3: "W"}})
    everywhere = bridge.export(model, (x,), **dyn)
    ort_only = bridge.export(model, (x,), targets=("onnxruntime",), **dyn)
    from test_onnx_export import _if_counts
    assert sum(_if_counts(ort_only.graph)) > sum(_if_counts(everywhere.graph))   # the Kronecker If tract can't take
    assert bridge.validate_torch(model, ort_only, (x,), runtimes=["onnxruntime-cpu"]).ok
    with pytest.raises(ValueError, match="targets must be"):
        bridge.export(model, (x,), targets=("tensorrt",), **dyn)


def test_cli_export_targets_and_inline(tmp_path, capsys, ort):
    path = tmp_path / "f.onnx"
    argv = ["export", "adaptive_avg_pool2d", "--input-shape", "N,3,H,W", "--output-size", "5,5",
            "--strategy", "function", "--inline", "--targets", "onnxruntime,openvino", "-o", str(path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    # tract can't run this graph (it was built without tract's constraints): shown, not counted
    assert "not a target: exported for onnxruntime, openvino only" in out or "tract (CPU)" in out, out
    model = onnx.load(str(path))
    assert not model.functions and all(n.domain == "" for n in model.graph.node)
    assert {p.key: p.value for p in model.metadata_props}["adapool.targets"] == "onnxruntime,openvino"
    capsys.readouterr()
    assert main(["export", "adaptive_avg_pool2d", "--input-shape", "1,3,8,8", "--output-size", "4",
                 "--targets", "tensorrt", "-o", str(tmp_path / "g.onnx")]) == 2
    assert capsys.readouterr().err.startswith("error: targets must be")
    assert not (tmp_path / "g.onnx").exists()


def test_openvino_is_not_run_on_empty_inputs(openvino, ort):
    """OpenVINO 2026.4 killed the process (SIGFPE) on graphs over an empty batch: the row is
    skipped, saying why, instead of the process dying; a static empty batch gets a graph
    OpenVINO runs."""
    model = export("adaptive_avg_pool2d", ("N", 3, 8, 8), output_size=3)
    row = validate(model, [np.zeros((0, 3, 8, 8), np.float32)], runtimes=["openvino"]).row("openvino")
    assert row.status == "skipped" and "empty" in row.detail
    static = export("adaptive_max_pool2d", (0, 3, 8, 8), output_size=3, return_indices=True)
    assert {n.op_type for n in static.graph.node} >= {"ConstantOfShape"}
    assert validate(static, runtimes=["onnxruntime-cpu", "onnx-reference"]).ok
