"""Signed zeros in max pooling: torch keeps a window's first maximum (``val > maxval``), so on a
window of +0.0 and -0.0 it returns whichever zero comes first. adapool's kernels do the same for
every max op, dtype and layout (torch as the oracle, bit patterns compared with np.signbit);
the ONNX graphs that pick each window's element by ArgMax (every form with indices but MaxPool's
own, and fractional max pooling) do too, under every runtime. The forms without indices
(MaxPool, ReduceMax, Max) leave the sign of a zero maximum to the runtime: README's limits say so,
and the last test pins that one of them really differs, so the note goes when it stops being true."""
import warnings

import ml_dtypes
import numpy as np
import pytest

import adapool
from layouts import with_layout
from onnx_export import ExportError, export
from onnx_export._export import inline_functions
from onnx_export._runtimes import RUNTIMES

# every max op, with windows that overlap, pad, dilate and (fractional) vary per plane
CALLS = [
    ("adaptive_max_pool1d", dict(output_size=4), (2, 16, 11)),
    ("adaptive_max_pool2d", dict(output_size=(3, 4)), (2, 16, 11, 9)),
    ("adaptive_max_pool3d", dict(output_size=(2, 3, 2)), (2, 16, 5, 7, 5)),
    ("max_pool1d", dict(kernel_size=3, stride=2, padding=1), (2, 16, 11)),
    ("max_pool1d", dict(kernel_size=3, stride=1, dilation=2), (2, 16, 40)),
    ("max_pool2d", dict(kernel_size=2, stride=2), (2, 16, 8, 8)),
    ("max_pool2d", dict(kernel_size=3, stride=2, padding=1, dilation=2), (2, 16, 9, 9)),
    ("max_pool3d", dict(kernel_size=3, stride=2, padding=1), (2, 16, 5, 5, 5)),
    ("fractional_max_pool2d", dict(kernel_size=2, output_size=4), (2, 16, 9, 9)),
    ("fractional_max_pool3d", dict(kernel_size=2, output_size=3), (2, 16, 7, 7, 7)),
]
DTYPES = [np.float16, np.float32, np.float64, ml_dtypes.bfloat16]


def zeros_input(shape, dtype, rng):
    """+0.0 and -0.0 at random, some -1: most windows' maximum is a zero of either sign."""
    x = np.where(rng.random(shape) < 0.5, 0.0, -0.0)
    return np.where(rng.random(shape) < 0.2, -1.0, x).astype(dtype)


def to_torch(torch, a):
    """bfloat16 arrays go over through float32 (exact); the rest as they are."""
    if a.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)
    return torch.from_numpy(a)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "unbatched"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op, kw, shape", CALLS, ids=lambda v: v if isinstance(v, str) else None)
def test_kernels_keep_torchs_zero(op, kw, shape, dtype, layout, torch_oracle, rng):
    torch = torch_oracle
    nd = len(shape) - 2
    x = zeros_input(shape, dtype, rng)
    if layout == "channels_last":
        x = with_layout(x, "channels_last", batched=True)
    elif layout == "unbatched":
        x = x[0]
    kw = dict(kw)
    tkw = dict(kw)
    if op.startswith("fractional"):   # samples per (n, c), in the input's dtype
        samples = rng.random(((x.shape[0] if x.ndim == nd + 2 else 1), shape[1], nd)).astype(dtype)
        kw["_random_samples"] = samples
        tkw["_random_samples"] = to_torch(torch, samples)
    tx = to_torch(torch, x)
    if layout == "channels_last" and nd > 1:   # torch's channels-last kernels, not a copy to C order
        tx = tx.contiguous(memory_format=torch.channels_last if nd == 2 else torch.channels_last_3d)
    elif layout == "channels_last":
        tx = tx.transpose(1, 2).contiguous().transpose(1, 2)
    for return_indices in (False, True):
        ours = getattr(adapool, op)(x, **kw, return_indices=return_indices)
        theirs = getattr(torch.nn.functional, op)(tx, **tkw, return_indices=return_indices)
        y, want = (ours[0], theirs[0]) if return_indices else (ours, theirs)
        want = want.float().numpy()
        y = np.asarray(y, np.float32)
        # the case can fail: torch's results hold zeros of both signs
        assert (want == 0).any() and np.signbit(want[want == 0]).any() and (~np.signbit(want[want == 0])).any()
        np.testing.assert_array_equal(y, want)
        np.testing.assert_array_equal(np.signbit(y), np.signbit(want), err_msg=f"{op} return_indices={return_indices}")


# the graphs whose values are each window's element at its ArgMax slot: the dynamic forms with
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
