"""onnx_export.validate and the `python -m onnx_export` CLI."""
import dataclasses
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import adapool
from onnx_export import export, validate
from onnx_export.__main__ import main
from onnx_export import _runtimes
from onnx_export._validate import RUNTIMES, UnsupportedModel


def single_node_model(op_type, shape, outputs=("y",), **attrs):
    node = helper.make_node(op_type, ["x"], list(outputs), **attrs)
    graph = helper.make_graph([node], "one", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT if i == 0 else onnx.TensorProto.INT64, None)
                               for i, o in enumerate(outputs)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def tampered(model):
    """The same model with its first float constant scaled by 1.01: a wrong graph."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype.kind == "f" and arr.size > 1:
            init.CopyFrom(numpy_helper.from_array((arr * 1.01).astype(arr.dtype), init.name))
            return model
    raise AssertionError("no float constant to tamper with")


def test_report_rows_and_table(ort):
    model = export("adaptive_avg_pool2d", ("N", 3, "H", "W"), output_size=7)
    report = validate(model)
    assert report.ok
    assert [r.runtime for r in report.rows] == list(RUNTIMES)
    cpu = report.row("onnxruntime-cpu")
    assert cpu.status == "ok" and cpu.provider == "CPUExecutionProvider"
    assert 0 <= cpu.max_abs < 1e-5 and cpu.max_rel < 1e-3
    assert len(report.cases) == 3 and len({c[2:] for c in report.cases}) == 3   # several dynamic sizes
    text = str(report)
    assert "max abs err" in text and "onnxruntime-cpu" in text and text.endswith("OK")


def test_cuda_row_is_strict_or_skipped_with_reason(ort):
    model = export("adaptive_avg_pool2d", (2, 3, 15, 15), output_size=7)
    row = validate(model, runtimes=["onnxruntime-cuda"]).row("onnxruntime-cuda")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert row.status == "skipped" and "onnxruntime-gpu" in row.detail
        pytest.skip("CUDAExecutionProvider not available: the strict CUDA run was reported as skipped")
    # on a GPU: every node on CUDA (from profiling), or a refusal reported as a failure
    assert row.status in ("ok", "failed"), row
    if row.status == "ok":
        assert row.provider.startswith("CUDAExecutionProvider")


def test_wrong_graph_is_reported(ort):
    report = validate(tampered(export("adaptive_avg_pool2d", (1, 4, 15, 15), output_size=7, strategy="matmul")))
    assert not report.ok
    assert report.row("onnxruntime-cpu").status == "mismatch"
    assert "beyond rtol" in report.row("onnxruntime-cpu").detail
    assert str(report).endswith("FAILED")


def test_max_validation_includes_nan_and_ties(ort):
    report = validate(export("adaptive_max_pool2d", (2, 3, 9, 9), output_size=4, return_indices=True))
    assert report.ok and len(report.cases) == 2   # normal data, and data with ties, NaN and -inf


@pytest.mark.parametrize("op_type,shape,attrs,outputs", [
    ("GlobalAveragePool", [2, 3, 9, 7], {}, ("y",)),
    ("GlobalMaxPool", [2, 3, 9, 7], {}, ("y",)),
    ("AveragePool", [2, 3, 14, 14], dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), ("y",)),
    ("AveragePool", [2, 3, 14, 14], dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                                          count_include_pad=1, ceil_mode=1), ("y",)),
    ("AveragePool", [2, 3, 13], dict(kernel_shape=[3], strides=[3]), ("y",)),
    ("MaxPool", [2, 3, 13, 9], dict(kernel_shape=[2, 3], strides=[2, 3]), ("y", "i")),
    ("MaxPool", ["N", 3, 8, 8], dict(kernel_shape=[2, 2], strides=[2, 2]), ("y",)),
])
def test_standard_single_node_models(op_type, shape, attrs, outputs, ort, rng):
    model = single_node_model(op_type, shape, outputs, **attrs)
    report = validate(model, runtimes=["onnxruntime-cpu"])
    if "Max" not in op_type:
        assert report.ok, str(report)
        return
    # onnxruntime's MaxPool / GlobalMaxPool skip NaN where torch propagates it: validate's
    # default inputs hold NaN for max pooling, so a plain MaxPool graph is caught...
    row = report.row("onnxruntime-cpu")
    assert not report.ok and row.status == "mismatch" and row.detail.startswith("NaN"), str(report)
    # ...and agrees with the kernel on finite data.
    x = rng.standard_normal([2 if isinstance(d, str) else d for d in shape]).astype(np.float32)
    assert validate(model, x, runtimes=["onnxruntime-cpu"]).ok


def test_known_fault_of_the_reference_evaluator_is_named(ort):
    """SEMANTICS.md: ReferenceEvaluator shifts AveragePool windows with ceil_mode and stride >= 3."""
    model = single_node_model("AveragePool", [1, 2, 10, 10], kernel_shape=[3, 3], strides=[3, 3], ceil_mode=1)
    report = validate(model)
    ref = report.row("onnx-reference")
    assert report.row("onnxruntime-cpu").status == "ok"
    assert ref.status == "known fault" and "ceil_mode" in ref.detail and ref.max_abs > 0.1
    assert report.ok   # shown, not counted against the model


def test_given_inputs_and_tolerances(ort, rng):
    model = export("avg_pool2d", ("N", 3, "H", "W"), kernel_size=3, stride=2, padding=1)
    x = rng.standard_normal((2, 3, 10, 12)).astype(np.float32)
    report = validate(model, [x, x[:1, :, :7, :9]], runtimes=["onnxruntime-cpu"])
    assert report.ok and report.cases == [(2, 3, 10, 12), (1, 3, 7, 9)]
    strict = validate(model, x, runtimes=["onnxruntime-cpu"], rtol=0, atol=0)
    assert strict.row("onnxruntime-cpu").max_abs == report.row("onnxruntime-cpu").max_abs or strict.ok
    with pytest.raises(ValueError, match="inputs must be float32"):
        validate(model, x.astype(np.float64))
    with pytest.raises(ValueError, match="unknown runtime"):
        validate(model, runtimes=["tensorrt"])


@pytest.mark.parametrize("build,match", [
    (lambda: single_node_model("Relu", [1, 3, 4, 4]), "can't compute Relu"),
    (lambda: single_node_model("AveragePool", [1, 3, 8, 8], kernel_shape=[3, 3], pads=[0, 0, 1, 1]), "asymmetric"),
    (lambda: single_node_model("MaxPool", [1, 3, 8, 8], kernel_shape=[3, 3], strides=[1, 1]), "no adapool equivalent"),
])
def test_models_adapool_cannot_compute_use_the_reference_runtime(build, match, ort, monkeypatch):
    """Compared with onnxruntime's CPU EP; without a reference runtime, the clean error of before."""
    report = validate(build(), runtimes=["onnxruntime-cpu", "onnx-reference"])
    assert report.reference == "runtime onnxruntime-cpu" and report.row("onnxruntime-cpu").status == "reference"
    assert report.row("onnx-reference").status in ("ok", "known fault"), str(report)
    assert "reference: runtime onnxruntime-cpu" in str(report)
    monkeypatch.setitem(_runtimes.RUNTIMES, "onnxruntime-cpu",
                        dataclasses.replace(_runtimes.RUNTIMES["onnxruntime-cpu"], module="not_a_module_here"))
    with pytest.raises(UnsupportedModel, match=match) as info:
        validate(build())
    assert "reference runtime onnxruntime-cpu is not available" in str(info.value)


@pytest.mark.parametrize("build,match", [
    (lambda: b"\x08\x01garbage" * 10, "not an ONNX model|can't compute|inputs|can't run the model"),
    (lambda: "/nonexistent/model.onnx", "can't read the model"),
])
def test_unsupported_models_raise_cleanly(build, match):
    with pytest.raises(UnsupportedModel, match=match):
        validate(build())


# ---- CLI -------------------------------------------------------------------------------------

def test_cli_export_then_check(tmp_path, capsys, ort):
    path = tmp_path / "m.onnx"
    assert main(["export", "adaptive_avg_pool2d", "--input-shape", "N,16,H,W", "--output-size", "7,7",
                 "-o", str(path)]) == 0
    out = capsys.readouterr().out
    assert "strategy dynamic" in out and out.rstrip().endswith("OK")
    model = onnx.load(str(path))
    assert model.graph.input[0].type.tensor_type.shape.dim[2].dim_param == "H"
    assert main(["check", str(path), "--runtimes", "onnxruntime-cpu"]) == 0
    assert "onnxruntime-cpu" in capsys.readouterr().out


def test_cli_avg_pool2d_and_strategy(tmp_path, capsys, ort):
    path = tmp_path / "p.onnx"
    assert main(["export", "avg_pool2d", "--input-shape", "1,3,15,15", "--kernel-size", "3", "--stride", "2",
                 "--padding", "1", "--ceil-mode", "--divisor-override", "4", "--strategy", "function",
                 "--opset", "21", "--dtype", "float64", "-o", str(path)]) == 0
    assert "strategy function, opset 21" in capsys.readouterr().out
    (node,) = onnx.load(str(path)).graph.node
    assert node.op_type == "AvgPool2d_f64"   # function names carry a non-float32 dtype


def test_cli_check_fails_on_a_wrong_graph(tmp_path, capsys, ort):
    path = tmp_path / "bad.onnx"
    onnx.save(tampered(export("adaptive_avg_pool2d", (1, 4, 15, 15), output_size=7, strategy="matmul")), str(path))
    assert main(["check", str(path)]) == 1
    assert "mismatch" in capsys.readouterr().out


@pytest.mark.parametrize("content", [b"", b"\x00\xff" * 50, b"not onnx at all"])
def test_cli_corrupt_file_is_one_line(tmp_path, content):
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "onnx_export", "check", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("argv,match", [
    (["export", "adaptive_avg_pool2d", "--input-shape", "1,3,8,8", "-o", "x.onnx"], "needs --output-size"),
    (["export", "avg_pool2d", "--input-shape", "1,3,8,8", "-o", "x.onnx"], "needs --kernel-size"),
    (["export", "adaptive_avg_pool2d", "--input-shape", "1,3,8,8", "--output-size", "3,x", "-o", "x.onnx"],
     "expected comma-separated ints"),
    (["export", "adaptive_avg_pool2d", "--input-shape", "1,3,11,11", "--output-size", "4", "--strategy", "pool",
      "-o", "x.onnx"], "uniform windows"),
    (["check", "missing.onnx"], "can't read the model"),
])
def test_cli_errors(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and match in err
    assert not (tmp_path / "x.onnx").exists()


def test_cli_export_matches_the_kernel_for_none_sizes(tmp_path, capsys, ort, rng):
    path = tmp_path / "k.onnx"
    assert main(["export", "adaptive_max_pool2d", "--input-shape", "2,3,H,9", "--output-size", "4,None",
                 "--return-indices", "-o", str(path), "--no-validate"]) == 0
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = rng.standard_normal((2, 3, 13, 9)).astype(np.float32)
    y, idx = sess.run(None, {"input": x})
    want_y, want_idx = adapool.adaptive_max_pool2d(x, (4, None), return_indices=True)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(idx, want_idx)


def test_importing_never_imports_torch_or_onnxruntime():
    code = ("import sys, adapool, onnx_export; onnx_export.export('adaptive_avg_pool2d', (1, 3, 9, 9), output_size=4); "
            "print(sorted(m for m in ('torch', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_sliding_graph_validates_despite_the_reference_evaluator(ort, capsys, tmp_path):
    """onnx.reference's MaxPool crashes on all-NaN windows: reported as that runtime's known
    fault, not as a failure of a correct graph."""
    path = tmp_path / "s.onnx"
    assert main(["export", "adaptive_max_pool2d", "--input-shape", "2,16,15,15", "--output-size", "6",
                 "-o", str(path)]) == 0
    out = capsys.readouterr().out
    assert "strategy sliding" in out and out.rstrip().endswith("OK")


def test_dynamic_avg_pool2d_with_a_large_kernel_validates(ort):
    report = validate(export("avg_pool2d", ("N", 3, "H", "W"), kernel_size=13))
    assert report.ok and all(min(c[2:]) >= 13 for c in report.cases)


def test_cli_rejects_flags_of_the_other_op(capsys):
    assert main(["export", "adaptive_avg_pool2d", "--input-shape", "1,3,8,8", "--output-size", "2",
                 "--ceil-mode", "-o", "x.onnx"]) == 2
    assert "apply to the strided pools only" in capsys.readouterr().err
    assert main(["export", "avg_pool2d", "--input-shape", "1,3,8,8", "--kernel-size", "2",
                 "--output-size", "2", "-o", "x.onnx"]) == 2
    assert "adaptive ops" in capsys.readouterr().err


def test_validate_and_check_leave_no_file_behind(ort, tmp_path, monkeypatch):
    # Profiling (the strict CUDA run reads providers back from a profile), optimizers and
    # runtimes must write into temporary folders only, never the caller's working directory.
    monkeypatch.chdir(tmp_path)
    model = export("adaptive_max_pool2d", ("N", 8, "H", "W"), output_size=(3, 2), return_indices=True,
                   targets=("onnxruntime",))
    validate(model, optimize=["onnxsim", "onnxslim", "onnxoptimizer"])
    onnx.save(model, "m.onnx")
    proc = subprocess.run([sys.executable, "-m", "onnx_export", "check", "m.onnx", "--optimize", "onnxsim"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
