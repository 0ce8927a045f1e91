"""Signed zeros in the max pooling graphs: the graphs that pick each window's element by ArgMax
(every form with indices but MaxPool's own, and fractional max pooling) keep torch's zero (the
window's first), under every runtime. The forms without indices (MaxPool, ReduceMax, Max) leave
the sign of a zero maximum to the runtime: README's limits say so, and the last test pins that one
of them really differs, so the note goes when it stops being true. The kernels' zeros:
tests/test_signed_zero.py."""
import warnings

import numpy as np
import pytest

from onnx_export import ExportError, export
from onnx_export._export import inline_functions
from onnx_export._runtimes import RUNTIMES
from test_signed_zero import zeros_input


# indices, and the strided pools' gather form (the adaptive pool and gather forms with indices
# return MaxPool's values at its own Indices: test_onnx_export's
# test_max_pool_graph_keeps_the_sign_of_the_zero_it_picks)
INDEXED_FORMS = [
    ("adaptive_max_pool1d", dict(output_size=4), (2, 3, 11), ("dynamic", "function")),
    ("adaptive_max_pool2d", dict(output_size=(3, 4)), (2, 3, 11, 9), ("dynamic", "function")),
    ("adaptive_max_pool2d", dict(output_size=1), (2, 3, 5, 5), ("dynamic",)),
    ("adaptive_max_pool3d", dict(output_size=(2, 3, 2)), (2, 2, 5, 7, 5), ("dynamic",)),
    ("max_pool1d", dict(kernel_size=3, stride=2, padding=1), (2, 3, 11), ("gather", "dynamic")),
    ("max_pool2d", dict(kernel_size=2, stride=2), (2, 3, 8, 8), ("gather", "dynamic", "function")),
    ("max_pool2d", dict(kernel_size=3, stride=2, padding=1, dilation=2), (2, 3, 9, 9), ("gather", "dynamic")),
    ("max_pool3d", dict(kernel_size=2, stride=2), (2, 2, 4, 4, 4), ("gather", "dynamic")),
]
RUNTIME_NAMES = ["onnxruntime-cpu", "onnx-reference", "openvino", "tract"]


def run_everywhere(model, x):
    """(runtime, outputs) under each installed runtime that loads the model (tract refuses the
    dynamic indices graphs, README's runtime table)."""
    ran = []
    for name in RUNTIME_NAMES:
        runtime = RUNTIMES[name]
        if runtime.missing():
            continue
        try:
            (outs,), _ = runtime.run(model if runtime.functions else inline_functions(model), [{"input": x}])
        except Exception:   # noqa: BLE001 (a refusal to load is that runtime's documented limit)
            if name in ("onnxruntime-cpu", "onnx-reference"):
                raise
            continue
        ran.append((name, outs))
    return ran


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("op, kw, shape, forms", INDEXED_FORMS, ids=lambda v: v if isinstance(v, str) else None)
def test_argmax_graphs_keep_torchs_zero(op, kw, shape, forms, dynamic, ort, torch_oracle, rng):
    torch = torch_oracle
    nd = len(shape) - 2
    in_shape = shape[:2] + tuple("DHW"[3 - nd:]) if dynamic else shape
    x = zeros_input(shape, np.float32, rng)
    want_y, want_i = getattr(torch.nn.functional, op)(torch.from_numpy(x), **kw, return_indices=True)
    want_y = want_y.numpy()
    assert np.signbit(want_y[want_y == 0]).any() and (~np.signbit(want_y[want_y == 0])).any()
    checked = 0
    for form in forms:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = export(op, in_shape, strategy=form, return_indices=True, **kw)
        except ExportError:   # gather is static only; nothing dynamic takes dilation with padding
            assert (dynamic and form == "gather") or (form == "dynamic" and kw.get("dilation", 1) > 1), (op, form)
            continue
        ran = run_everywhere(model, x)
        assert {"onnxruntime-cpu", "onnx-reference"} <= {name for name, _ in ran}
        for name, (y, idx) in ran:
            np.testing.assert_array_equal(idx, want_i.numpy(), err_msg=f"{form} {name}")
            np.testing.assert_array_equal(np.signbit(y), np.signbit(want_y), err_msg=f"{form} {name}")
            checked += 1
    assert checked or (dynamic and kw.get("dilation", 1) > 1)


def test_fractional_graph_keeps_torchs_zero(ort, torch_oracle, rng):
    torch = torch_oracle
    x = zeros_input((2, 3, 9, 9), np.float32, rng)
    samples = rng.random((2, 3, 2)).astype(np.float32)
    want_y, want_i = torch.nn.functional.fractional_max_pool2d(
        torch.from_numpy(x), 2, output_size=4, return_indices=True, _random_samples=torch.from_numpy(samples))
    want_y = want_y.numpy()
    assert np.signbit(want_y[want_y == 0]).any() and (~np.signbit(want_y[want_y == 0])).any()
    model = export("fractional_max_pool2d", x.shape, kernel_size=2, output_size=4, return_indices=True,
                   _random_samples=samples)
    for name, (y, idx) in run_everywhere(model, x):
        np.testing.assert_array_equal(idx, want_i.numpy(), err_msg=name)
        np.testing.assert_array_equal(np.signbit(y), np.signbit(want_y), err_msg=name)


def test_where_keeps_only_its_second_choices_sign_under_onnxruntime(ort):
    """Why _torch_max_rule routes a -0.0 through Where's second input: onnxruntime 1.32 writes a
    chosen -0.0 of the first as +0.0. When this fails, onnxruntime fixed it."""
    from onnx import TensorProto, helper
    c = np.array([True, False, True, False])
    neg = np.full(4, -0.0, np.float32)
    graph = helper.make_graph([helper.make_node("Where", ["c", "x", "y"], ["o"])], "g",
                              [helper.make_tensor_value_info("c", TensorProto.BOOL, [4]),
                               helper.make_tensor_value_info("x", TensorProto.FLOAT, [4]),
                               helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("o", TensorProto.FLOAT, [4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    (o,), = RUNTIMES["onnxruntime-cpu"].run(model, [{"c": c, "x": neg, "y": neg}])[0]
    np.testing.assert_array_equal(np.signbit(o), [False, True, False, True])


def test_forms_without_indices_leave_the_zeros_sign_to_the_runtime(ort, torch_oracle, rng):
    """README's limit: MaxPool/ReduceMax/Max don't say which of two equal zeros they return.
    onnxruntime's MaxPool without Indices returns the other one than torch on some windows;
    when this fails, that limit (README, the strategies' notes) should be re-measured."""
    torch = torch_oracle
    x = zeros_input((2, 3, 8, 8), np.float32, rng)
    want = torch.nn.functional.max_pool2d(torch.from_numpy(x), 2).numpy()
    model = export("max_pool2d", x.shape, kernel_size=2, strategy="pool")
    (y,), = RUNTIMES["onnxruntime-cpu"].run(model, [{"input": x}])[0]
    np.testing.assert_array_equal(y, want)                              # equal as numbers
    assert (np.signbit(y) != np.signbit(want)).any()                   # not as bits
