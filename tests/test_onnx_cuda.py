"""Graphs built for onnxruntime's CUDA EP (``targets=(..., "onnxruntime-cuda")``).

The CUDA EP runs float32 MatMul in TF32 by default (10-bit mantissas); on an H200 the plain
MatMul forms were ~1e-3 off (benchmarks/README.md). CI has no GPU, so TF32 is emulated here:
onnx's reference evaluator with a MatMul that rounds both operands to TF32 first, as the tensor
cores do. The test can fail: the default graphs are shown to be off under the same emulation.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import adapool
import onnx_export
from onnx_export._builder import DEFAULT_TARGETS, TARGETS
from onnx_export._validate import TOLERANCES

reference = pytest.importorskip("onnx.reference")
from onnx.reference.op_run import OpRun  # noqa: E402

CUDA_TARGETS = DEFAULT_TARGETS + ("onnxruntime-cuda",)


def to_tf32(a: np.ndarray) -> np.ndarray:
    """Round float32 to TF32 (10 explicit mantissa bits), to nearest, ties to even."""
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32)
    finite = (bits & 0x7F800000) != 0x7F800000
    lsb = (bits >> 13) & 1
    rounded = ((bits.astype(np.uint64) + 0x0FFF + lsb) & 0xFFFFE000).astype(np.uint32)
    return np.where(finite, rounded, bits).view(np.float32).reshape(np.shape(a))


class TF32MatMul(OpRun):
    op_domain = ""

    def _run(self, a, b):
        if a.dtype == np.float32:
            a, b = to_tf32(a), to_tf32(b)
        return (np.matmul(a, b).astype(a.dtype),)


TF32MatMul.__name__ = "MatMul"


def run_tf32(model, x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # `auto` warns that float32 is unmeasured on the GPU
        sess = reference.ReferenceEvaluator(model, new_ops=[TF32MatMul])
    return sess.run(None, {"input": x})[0]


CALLS = [
    ("adaptive_avg_pool2d", (2, 3, 15, 13), dict(output_size=(4, 5))),
    ("adaptive_avg_pool2d", (2, 3, 40, 37), dict(output_size=(7, 6))),   # separable (no Kronecker)
    ("adaptive_avg_pool1d", (2, 3, 11), dict(output_size=4)),
    ("adaptive_avg_pool3d", (2, 3, 7, 9, 11), dict(output_size=(3, 2, 5))),
    ("avg_pool2d", (2, 3, 13, 13), dict(kernel_size=3, stride=2, padding=1, divisor_override=5)),
    ("avg_pool2d", (1, 2, 9, 8), dict(kernel_size=(2, 4), stride=(4, 1), padding=(1, 2))),
]


def _export(op, shape, kw, targets, strategy="matmul"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return onnx_export.export(op, shape, strategy=strategy, targets=targets, **kw)


def test_tf32_emulation_rounds_like_the_tensor_cores():
    x = np.array([1 + 2**-10, 1 + 2**-11, 1 + 3 * 2**-11, 1 + 2**-12, -3.0, np.inf, np.nan], np.float32)
    got = to_tf32(x)
    assert got[0] == 1 + 2**-10                  # representable: kept
    assert got[1] == 1.0                         # a tie: to even
    assert got[2] == 1 + 2**-9                   # a tie: to even (up)
    assert got[3] == 1.0
    assert got[4] == -3.0 and got[5] == np.inf and np.isnan(got[6])


@pytest.mark.parametrize("op, shape, kw", CALLS, ids=[f"{c[0]}-{c[1]}" for c in CALLS])
def test_cuda_target_matmul_forms_are_exact_under_tf32(op, shape, kw):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    want = getattr(adapool, op)(x, **kw)
    rtol, atol = TOLERANCES[np.dtype(np.float32)]
    got = run_tf32(_export(op, shape, kw, CUDA_TARGETS), x)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    # the default graph under the same emulation is what a CUDA user got before: off by ~1e-3
    plain = run_tf32(_export(op, shape, kw, DEFAULT_TARGETS), x)
    assert np.max(np.abs(plain - want)) > 1e-4


def test_cuda_target_dynamic_average_is_exact_under_tf32():
    kw = dict(output_size=(4, 5))
    model = _export("adaptive_avg_pool2d", ("N", 3, "H", "W"), kw, CUDA_TARGETS, strategy="dynamic")
    rtol, atol = TOLERANCES[np.dtype(np.float32)]
    for shape in [(1, 3, 15, 13), (2, 3, 40, 23)]:
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32) * 5
        np.testing.assert_allclose(run_tf32(model, x), adapool.adaptive_avg_pool2d(x, **kw), rtol=rtol, atol=atol)


def test_cuda_target_handles_values_whose_split_overflows():
    # x * 8193 overflows above ~4e34: the split gives NaN, which the MatMul form's NaN probe
    # reroutes to the masked-sum form, exact for such values
    op, shape, kw = CALLS[0]
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    x[0, 0, :3, :3] = 3e37
    x[1, 2, 5, 5] = -np.inf
    want = adapool.adaptive_avg_pool2d(x, **kw)
    got = run_tf32(_export(op, shape, kw, CUDA_TARGETS), x)
    assert np.isfinite(want[0, 0, 0, 0]) and np.isinf(want).any()
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    assert (np.isinf(got) == np.isinf(want)).all() and not np.isnan(got).any()


def test_cuda_target_leaves_float64_alone():
    # TF32 only concerns float32 MatMuls (float16 inputs are averaged in float32, so they are
    # split too): float64 keeps the default graph, node for node
    op, shape, kw = CALLS[0]
    plain = onnx_export.export(op, shape, strategy="matmul", dtype="float64", targets=DEFAULT_TARGETS, **kw)
    cuda = onnx_export.export(op, shape, strategy="matmul", dtype="float64", targets=CUDA_TARGETS, **kw)
    assert [n.op_type for n in cuda.graph.node] == [n.op_type for n in plain.graph.node]
    half = onnx_export.export(op, shape, strategy="matmul", dtype="float16", targets=CUDA_TARGETS, **kw)
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float16)
    np.testing.assert_allclose(run_tf32(half, x).astype(np.float64), adapool.adaptive_avg_pool2d(x, **kw), rtol=2e-3, atol=1e-3)


def test_cuda_is_a_target_but_not_a_default_one():
    assert "onnxruntime-cuda" in TARGETS and "onnxruntime-cuda" not in DEFAULT_TARGETS
    model = onnx_export.export("adaptive_avg_pool2d", (1, 3, 15, 13), output_size=(4, 5))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["adapool.targets"] == ",".join(DEFAULT_TARGETS)
    with pytest.raises(ValueError, match="onnxruntime-cuda"):
        onnx_export.export("adaptive_avg_pool2d", (1, 3, 15, 13), output_size=4, targets=("cuda",))


def test_auto_says_what_the_cuda_ep_refuses():
    with pytest.warns(UserWarning, match="onnxruntime-cuda.*indices graph on the CPU EP"):
        onnx_export.export("adaptive_max_pool2d", (1, 3, 14, 14), output_size=7, return_indices=True,
                           targets=CUDA_TARGETS)
    with pytest.warns(UserWarning, match="not known to be exact there in float32"):
        onnx_export.export("adaptive_avg_pool2d", (1, 3, 15, 13), output_size=(4, 5), targets=CUDA_TARGETS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # measured exact on the GPU: no warning
        onnx_export.export("adaptive_avg_pool2d", (1, 3, 14, 14), output_size=7, targets=CUDA_TARGETS)
        onnx_export.export("adaptive_max_pool2d", (1, 3, 15, 13), output_size=(4, 5), targets=CUDA_TARGETS)


def test_ops_never_run_on_the_cuda_ep_are_not_claimed_there():
    # the GPU run covered the adaptive pools and avg_pool2d: the strided max pools and the 1-d/3-d
    # average pools exported since are not claimed exact on the CUDA EP
    with pytest.warns(UserWarning, match="max_pool2d graphs have not run on onnxruntime's CUDA EP"):
        onnx_export.export("max_pool2d", (1, 3, 14, 14), kernel_size=3, stride=2, padding=1, targets=CUDA_TARGETS)
    with pytest.warns(UserWarning, match="avg_pool3d graphs have not run"):
        onnx_export.export("avg_pool3d", (1, 3, 6, 6, 6), kernel_size=2, targets=CUDA_TARGETS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        onnx_export.export("avg_pool2d", (1, 3, 14, 14), kernel_size=3, stride=2, padding=1, targets=CUDA_TARGETS)
