"""onnx_export in bfloat16: every op family x strategy, static and dynamic, is the float32 graph
between two Casts; run under onnxruntime (through validate's own bfloat16 plumbing) against
adapool's bfloat16 kernel, and under every runtime through validate(); what each runtime's Cast
to bfloat16 does on ties, near-ties, NaN and inf (the reason for the exact_on entries); auto's
warnings; the command line and the torch bridge with a bfloat16 model."""
import os
import tempfile
import warnings

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

import adapool
from adapool._bfloat16 import BFLOAT16, to_bfloat16, to_float32
from onnx_export import STRATEGIES, ExportError, export, validate
from onnx_export._runtimes import RUNTIMES as RUNTIME_TABLE
from onnx_export._spec import OPS
from onnx_export._strategies import DTYPE_GAPS
from onnx_export._validate import MODEL_TOLERANCES, TOLERANCES
from test_onnx_export import as_list, case_id, dynamic_shape, export_quiet, nasty_input, run_sizes

# (op, kwargs, input shape): each op family, with indices, ceil_mode's extra window, dilation,
# non-divisible adaptive windows, output 1, unbatched input.
CASES = [
    ("adaptive_avg_pool2d", dict(output_size=(4, 3)), (2, 3, 11, 9)),
    ("adaptive_avg_pool1d", dict(output_size=1), (3, 10)),
    ("adaptive_avg_pool3d", dict(output_size=2), (1, 2, 5, 4, 6)),
    ("adaptive_max_pool2d", dict(output_size=(4, 3)), (2, 3, 11, 9)),
    ("adaptive_max_pool2d", dict(output_size=3, return_indices=True), (2, 3, 9, 12)),
    ("adaptive_max_pool1d", dict(output_size=1), (2, 3, 10)),
    ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
     (2, 3, 14, 13)),
    ("avg_pool1d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), (2, 3, 14)),
    ("avg_pool3d", dict(kernel_size=2, stride=2, divisor_override=3), (1, 2, 6, 5, 4)),
    ("max_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), (2, 3, 14, 13)),
    ("max_pool2d", dict(kernel_size=3, stride=2, padding=1, return_indices=True), (2, 3, 13, 14)),
    ("max_pool1d", dict(kernel_size=2, padding=1, dilation=2, return_indices=True), (3, 11)),
    ("max_pool3d", dict(kernel_size=2, stride=(1, 2, 2)), (1, 2, 5, 6, 7)),
]
ULP = 2.0**-7


def ort_run(model, x):
    """The model under onnxruntime's CPU EP, through validate's runner (bfloat16 feeds and
    outputs as OrtValues; onnxruntime's numpy API refuses them)."""
    outs, _ = RUNTIME_TABLE["onnxruntime-cpu"].run(model, [{"input": x}])
    return outs[0]


def bits(a):
    return np.asarray(a).view(np.uint16)


def assert_bfloat16_close(got, want, what, exact=False, same_bits=False):
    """Indices identical; values NaN where want is, infinities equal, the rest within one
    bfloat16 ulp; ``exact``: equal (-0 equals 0: the float32 max graphs keep a MaxPool's
    choice among zeros of both signs, as the float32 tests allow); ``same_bits``: bit for bit
    (but any NaN for NaN)."""
    assert len(got) == len(want), what
    for g, w in zip(got, want):
        assert g.shape == w.shape, f"{what}: shape {g.shape} != {w.shape}"
        assert g.dtype == w.dtype, f"{what}: dtype {g.dtype} != {w.dtype}"
        if w.dtype == np.int64:
            np.testing.assert_array_equal(g, w, err_msg=f"{what}: indices")
            continue
        g32, w32 = to_float32(g), to_float32(w)
        np.testing.assert_array_equal(np.isnan(g32), np.isnan(w32), err_msg=f"{what}: NaN positions")
        keep = ~np.isnan(w32)
        if same_bits:
            np.testing.assert_array_equal(bits(g)[keep], bits(w)[keep], err_msg=f"{what}: not bit for bit")
        elif exact:
            np.testing.assert_array_equal(g32[keep], w32[keep], err_msg=f"{what}: not equal")
        else:
            np.testing.assert_allclose(g32[keep].astype(np.float64), w32[keep].astype(np.float64), rtol=ULP,
                                       atol=2e-6, err_msg=what)


def inputs(shape, rng):
    """Normal data (averages of it sit anywhere between bfloat16s), and data with ties, ±inf and
    NaN, both bfloat16."""
    return [rng.standard_normal(shape).astype(BFLOAT16), nasty_input(shape, np.float32, rng).astype(BFLOAT16)]


# ---- every strategy under onnxruntime ------------------------------------------------------------

@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_strategy_is_the_float32_graph_rounded_once(case, dynamic, ort, rng):
    """bfloat16 in and out, int64 indices; against adapool's bfloat16 kernel: max values equal
    (they are inputs) and indices identical, averages within one ulp; and bit for bit the
    float32 graph of the same strategy on the widened input, rounded to nearest even (which
    onnxruntime's Cast does: test_cast_rounding)."""
    op, kw, shape = case
    nd = OPS[op][1]
    in_shape = dynamic_shape(shape, nd) if dynamic else shape
    exported = []
    for name in STRATEGIES:
        try:
            model = export_quiet(op, in_shape, dtype="bfloat16", strategy=name, **kw)
        except ExportError:
            continue
        exported.append(name)
        onnx.checker.check_model(model, full_check=True)
        outputs = [o.type.tensor_type.elem_type for o in model.graph.output]
        assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.BFLOAT16
        assert outputs == [TensorProto.BFLOAT16] + [TensorProto.INT64] * kw.get("return_indices", False)
        model32 = export_quiet(op, in_shape, dtype="float32", strategy=name, **kw)
        for size in run_sizes(shape, nd, dynamic):
            for x in inputs(size, rng):
                got = ort_run(model, x)
                what = f"{name} at {size}, finite={np.isfinite(to_float32(x)).all()}"
                assert_bfloat16_close(got, as_list(getattr(adapool, op)(x, **kw)), what, exact="max" in op)
                rounded = [to_bfloat16(y) if y.dtype == np.float32 else y for y in ort_run(model32, to_float32(x))]
                assert_bfloat16_close(got, rounded, what + " vs float32 graph rounded", same_bits=True)
    # at dynamic sizes a max pool with dilation and padding has one form (dynamic)
    dilated = any(d > 1 for d in np.atleast_1d(kw.get("dilation", 1)))
    assert len(exported) >= (2 if not dynamic else 1), exported
    assert not dilated or not dynamic or "dynamic" in exported, exported


@pytest.mark.parametrize("op,shape,kw,run", [
    ("adaptive_avg_pool2d", (2, 3, 5, 5), dict(output_size=(0, 2)), (2, 3, 5, 5)),
    ("adaptive_max_pool2d", ("N", 3, "H", "W"), dict(output_size=2, return_indices=True), (0, 3, 5, 5)),
    ("avg_pool1d", (0, 3, 9), dict(kernel_size=3), (0, 3, 9)),
])
def test_empty_outputs(op, shape, kw, run, ort):
    """An output size of 0 and an empty batch: the float32 empty form between the Casts."""
    model = export_quiet(op, shape, dtype="bfloat16", **kw)
    x = np.ones(run, BFLOAT16)
    assert_bfloat16_close(ort_run(model, x), as_list(getattr(adapool, op)(x, **kw)), op, exact=True)


@pytest.mark.parametrize("op,kw", [("avg_pool2d", dict(kernel_size=3, stride=2, padding=1)),
                                   ("adaptive_avg_pool2d", dict(output_size=7))])
def test_average_pool_rounds_as_torch(op, kw, ort, torch_oracle, rng):
    """A bfloat16 window's float32 sum is mostly exact, so its mean is often an exact bfloat16
    tie: AveragePool (sum, then divide) rounds those as torch does, bit for bit; the MatMul
    forms (weights 1/n applied before summing) land a float32 ulp off and round some the other
    way, within one ulp. That is why auto takes `pool` for bfloat16 averages on any plane."""
    torch = torch_oracle
    x = rng.standard_normal((4, 8, 64, 64)).astype(BFLOAT16)
    t = torch.from_numpy(x.view(np.int16)).view(torch.bfloat16)
    want = getattr(torch.nn.functional, op)(t, **kw).view(torch.int16).numpy().view(BFLOAT16)
    model = export(op, x.shape, dtype="bfloat16", targets=("onnxruntime",), **kw)
    assert {p.key: p.value for p in model.metadata_props}["adapool.strategy"] == "pool"
    assert_bfloat16_close(ort_run(model, x), [want], op, same_bits=True)
    (got,) = ort_run(export(op, x.shape, dtype="bfloat16", strategy="matmul", **kw), x)
    differ = (bits(got) != bits(want)).sum()
    assert 0 < differ < got.size // 50, differ
    assert_bfloat16_close([got], [want], op + " matmul")


# ---- what each runtime's Cast does ---------------------------------------------------------------

# float32 bit patterns: exact ties (even and odd bfloat16 below), near-ties, the largest float
# (rounds to inf) and the largest that doesn't, ±inf, NaNs with and without low payload bits,
# subnormals, -0
CAST_BITS = np.array([0x3F808000, 0x3F818000, 0x3F807FFF, 0x3F808001, 0x3F817FFF, 0x3F818001, 0xBF808001,
                      0x7F7FFFFF, 0x7F7F8000, 0x7F7F7FFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000,
                      0x7FC00000, 0xFFC00000, 0x7FFFFFFF, 0xFFFFFFFF, 0x7F800001, 0x7F808000,
                      0x00008000, 0x00018000, 0x00000001, 0x007FFFFF, 0x80000000], dtype=np.uint32)


def _cast_model(src, dst):
    graph = helper.make_graph([helper.make_node("Cast", ["input"], ["output"], to=dst)], "cast",
                              [helper.make_tensor_value_info("input", src, ["n"])],
                              [helper.make_tensor_value_info("output", dst, ["n"])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)


@pytest.mark.parametrize("runtime", ["onnxruntime-cpu", "openvino", "tract", "onnx-reference"])
def test_cast_rounding(runtime):
    """float32 -> bfloat16 must round to nearest even, as torch does (adapool's to_bfloat16):
    onnxruntime and onnx's reference evaluator do (NaN stays NaN, payload canonicalized).
    OpenVINO 2026.4, in a graph with a dynamic dim, truncates where the bfloat16 below is even
    (0x3F808001 -> 0x3F80) and turns NaNs with low payload bits into ±0 or inf; at static shapes
    it flushes subnormals to zero (test_openvino_bfloat16_graphs; _openvino_bfloat16). tract
    loads no bfloat16 at all (DTYPE_GAPS). Widening is exact wherever it runs."""
    rt = RUNTIME_TABLE[runtime]
    if rt.missing():
        pytest.skip(rt.missing())
    x = CAST_BITS.view(np.float32)
    want = to_bfloat16(x)
    if runtime == "tract":
        for src, dst, feed in ((TensorProto.FLOAT, TensorProto.BFLOAT16, x),
                               (TensorProto.BFLOAT16, TensorProto.FLOAT, want)):
            with pytest.raises(Exception):
                rt.run(_cast_model(src, dst), [{"input": feed}])
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # the reference evaluator's cast of NaN
        (got,), _ = rt.run(_cast_model(TensorProto.FLOAT, TensorProto.BFLOAT16), [{"input": x}])
        (wide,), _ = rt.run(_cast_model(TensorProto.BFLOAT16, TensorProto.FLOAT), [{"input": want}])
    assert got[0].dtype == BFLOAT16
    np.testing.assert_array_equal(wide[0].view(np.uint32), to_float32(want).view(np.uint32))
    nan = np.isnan(x)
    if runtime != "openvino":
        np.testing.assert_array_equal(bits(got[0])[~nan], bits(want)[~nan])
        assert np.isnan(to_float32(got[0])[nan]).all()
        return
    wrong = {int(b) for b, g, w in zip(CAST_BITS, bits(got[0]), bits(want)) if g != w}
    # one ulp low on near-ties above an even bfloat16 (both signs); NaN payloads lost
    assert {0x3F808001, 0xBF808001, 0x7FFFFFFF, 0xFFFFFFFF, 0x7F800001} <= wrong, sorted(map(hex, wrong))
    assert 0x3F808000 not in wrong and 0x3F818000 not in wrong and 0x3F818001 not in wrong


@pytest.mark.parametrize("op", ["avg_pool2d", "max_pool2d"])
def test_openvino_bfloat16_graphs(op, openvino, rng):
    """OpenVINO's two faults on exported graphs (_openvino_bfloat16), against its own float32
    graph rounded to nearest even: with a dynamic dim, averages come out one ulp low (towards
    zero) on many outputs, never high, while max pools are exact, subnormals included; at
    static shapes the rounding is right but subnormal results are flushed to zero."""
    x = rng.standard_normal((2, 8, 32, 32)).astype(np.float32)
    x[0, 0] = 1e-39   # a plane of subnormals (bfloat16 has float32's exponent range)
    x = x.astype(BFLOAT16)
    kw = dict(kernel_size=3, stride=2, padding=1)
    ov = RUNTIME_TABLE["openvino"]
    for shape in (x.shape, ("N", 8, "H", "W")):
        model = export_quiet(op, shape, dtype="bfloat16", strategy="pool", **kw)
        model32 = export_quiet(op, shape, dtype="float32", strategy="pool", **kw)
        (got,), _ = ov.run(model, [{"input": x}])
        (ref,), _ = ov.run(model32, [{"input": to_float32(x)}])
        got, want = got[0], to_bfloat16(ref[0])
        subnormal = np.zeros(got.shape, dtype=bool)
        subnormal[0, 0] = True
        assert (to_float32(want)[subnormal] != 0).all()
        if shape == x.shape:
            assert (to_float32(got)[subnormal] == 0).all()   # flushed
            np.testing.assert_array_equal(bits(got)[~subnormal], bits(want)[~subnormal])
            continue
        diff = bits(got).astype(np.int32) - bits(want).astype(np.int32)
        if op == "max_pool2d":
            np.testing.assert_array_equal(bits(got), bits(want))
        else:
            assert (diff != 0).sum() > got.size // 20 and set(np.unique(diff)) == {-1, 0}   # magnitude bits
    # validate's one-ulp tolerance passes them on normal data all the same
    model = export_quiet(op, ("N", 8, "H", "W"), dtype="bfloat16", **kw)
    report = validate(model, runtimes=["openvino"])
    assert report.ok, str(report)


# ---- auto and the strategy table ----------------------------------------------------------------

def test_exact_on_and_auto_warnings():
    """tract lacks bfloat16 in every strategy's exact_on; OpenVINO is refused static graphs and
    dynamic averages; onnxruntime's CPU EP takes every strategy that its float32 graph can."""
    for s in STRATEGIES.values():
        assert "bfloat16" not in s.exact_on["tract"] and "bfloat16" in s.exact_on["onnxruntime"], s.name
        assert "bfloat16" not in s.exact_on["onnxruntime-cuda"], s.name   # not measured
    assert ("tract", "bfloat16") in DTYPE_GAPS
    with pytest.warns(UserWarning, match=r"no strategy is exact on tract for this call \(tract: tract loads no "
                                         r"bfloat16"):
        export("max_pool2d", ("N", 3, "H", "W"), dtype="bfloat16", kernel_size=2)
    with pytest.warns(UserWarning, match=r"exact on openvino, tract .*openvino: OpenVINO flushes subnormal"):
        export("max_pool2d", (1, 3, 8, 8), dtype="bfloat16", kernel_size=2)
    with pytest.warns(UserWarning, match=r"exact on openvino, tract .*openvino: OpenVINO's Cast to bfloat16"):
        export("adaptive_avg_pool2d", ("N", 3, "H", "W"), dtype="bfloat16", output_size=7)
    with pytest.warns(UserWarning, match="openvino, tract"):
        model = export("adaptive_avg_pool2d", (1, 3, 64, 64), dtype="bfloat16", output_size=7)
    # the strategy auto takes all the same: AveragePool for bfloat16 (test_average_pool_rounds_as_torch)
    assert {p.key: p.value for p in model.metadata_props}["adapool.strategy"] == "pool"
    model = export("adaptive_avg_pool2d", (1, 3, 64, 64), dtype="bfloat16", output_size=6, targets=("onnxruntime",))
    assert {p.key: p.value for p in model.metadata_props}["adapool.strategy"] == "matmul"   # windows not uniform
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        export("adaptive_avg_pool2d", (1, 3, 8, 8), dtype="bfloat16", output_size=3, targets=("onnxruntime",))
        export("max_pool2d", ("N", 3, "H", "W"), dtype="bfloat16", kernel_size=2, targets=("onnxruntime", "openvino"))
    with pytest.raises(TypeError, match="float16, float32, float64, bfloat16"):
        export("max_pool2d", (1, 3, 8, 8), dtype="int8", kernel_size=2)


# ---- every runtime, through validate() ---------------------------------------------------------

VALIDATE_RUNTIMES = ["onnxruntime-cpu", "openvino", "tract", "onnx-reference"]


def assert_validated(model, **kwargs):
    report = validate(model, runtimes=VALIDATE_RUNTIMES, **kwargs)
    assert report.ok, str(report)
    rows = {r.runtime: r for r in report.rows}
    for name in VALIDATE_RUNTIMES:
        if rows[name].status == "skipped":
            pytest.skip(rows[name].detail)
    assert rows["onnxruntime-cpu"].status == "ok" and rows["openvino"].status == "ok", str(report)
    assert rows["tract"].status == "limitation" and "bfloat16" in rows["tract"].detail, str(report)
    assert rows["onnx-reference"].status in ("ok", "known fault"), str(report)
    return report


@pytest.mark.parametrize("case", [CASES[i] for i in (0, 4, 6, 10, 11)], ids=case_id)
def test_auto_graphs_on_every_runtime(case):
    """validate() generates bfloat16 inputs (with ties, NaN and -inf for max), reads each
    runtime's bfloat16 outputs back and compares them with adapool's bfloat16 kernel."""
    op, kw, shape = case
    for in_shape in (shape, dynamic_shape(shape, OPS[op][1])):
        model = export_quiet(op, in_shape, dtype="bfloat16", **kw)
        report = assert_validated(model)
        assert "max" not in op or len(report.cases) > 1   # the copy with NaN and -inf


def test_function_strategy_on_every_runtime():
    """One float32 adapool-domain node between Casts; OpenVINO gets it inlined."""
    model = export_quiet("adaptive_max_pool2d", ("N", 3, "H", "W"), dtype="bfloat16", output_size=3,
                         return_indices=True, strategy="function")
    assert [n.op_type for n in model.graph.node] == ["Cast", "AdaptiveMaxPool2dWithIndices", "Cast"]
    assert_validated(model)


def test_validate_tolerance_is_one_ulp(ort, rng):
    """Expected outputs one ulp away pass, three ulps away fail; NaN must stay NaN; the
    tolerance tables hold bfloat16."""
    assert TOLERANCES[BFLOAT16][0] == ULP and BFLOAT16 in MODEL_TOLERANCES
    model = export_quiet("adaptive_avg_pool2d", (1, 2, 6, 6), dtype="bfloat16", output_size=2)
    x = rng.uniform(1, 2, (1, 2, 6, 6)).astype(BFLOAT16)
    want = adapool.adaptive_avg_pool2d(x, 2)
    near = (bits(want) + 1).view(BFLOAT16)
    far = (bits(want) + 3).view(BFLOAT16)
    assert validate(model, [x], runtimes=["onnxruntime-cpu"], expected=[[want]], rtol=ULP, atol=0).ok
    assert validate(model, [x], runtimes=["onnxruntime-cpu"], expected=[[near]], rtol=ULP, atol=0).ok
    report = validate(model, [x], runtimes=["onnxruntime-cpu"], expected=[[far]], rtol=ULP, atol=0)
    assert not report.ok and "beyond rtol" in report.rows[0].detail
    nan = want.copy()
    nan[0, 0, 0, 0] = np.nan
    report = validate(model, [x], runtimes=["onnxruntime-cpu"], expected=[[nan]])
    assert not report.ok and "NaN" in report.rows[0].detail
    with pytest.raises(ValueError, match="bfloat16"):   # inputs of the model's dtype only
        validate(model, [to_float32(x)], runtimes=["onnxruntime-cpu"])


def test_command_line_exports_bfloat16(tmp_path, ort):
    from onnx_export.__main__ import main
    out = tmp_path / "p.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["export", "adaptive_max_pool2d", "--input-shape", "N,3,H,W", "--output-size", "3,3",
                   "--dtype", "bfloat16", "--targets", "onnxruntime", "-o", str(out)])
    assert rc == 0
    model = onnx.load(out)
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.BFLOAT16
    assert main(["check", str(out), "--runtimes", "onnxruntime-cpu,onnx-reference"]) == 0


# ---- the torch bridge ----------------------------------------------------------------------------

def _pooling_net(torch):
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.avg = nn.AdaptiveAvgPool2d((3, 4))
            self.max = nn.AdaptiveMaxPool2d(2, return_indices=True)

        def forward(self, x):   # onnxruntime's CPU EP has no bfloat16 Relu or Conv: pooling alone
            y, i = self.max(x)
            return self.avg(x), y, i

    return Net().eval().to(torch.bfloat16)


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
def test_torch_bridge_exports_a_bfloat16_model(dynamo, torch_oracle, ort):
    """model.to(torch.bfloat16) through onnx_export.torch.export: the lowering reads bfloat16
    from shape inference; the graphs agree with torch eager under onnxruntime and the reference
    evaluator (bfloat16 tensors handed over bit for bit)."""
    torch = torch_oracle
    import onnx_export.torch as bridge
    model = _pooling_net(torch)
    x = torch.randn(2, 3, 11, 13).to(torch.bfloat16)
    if dynamo:
        kwargs = {"dynamic_shapes": ({0: torch.export.Dim("N", max=64), 2: torch.export.Dim("H", min=4, max=512),
                                      3: torch.export.Dim("W", min=4, max=512)},)}
    else:
        kwargs = {"input_names": ["x"], "dynamic_axes": {"x": {0: "N", 2: "H", 3: "W"}}}
    with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp:
        warnings.simplefilter("ignore")
        proto = bridge.export(model, (x,), os.path.join(tmp, "m.onnx"), dynamo=dynamo, **kwargs)
    assert not any(n.domain == "adapool" for n in proto.graph.node)
    assert proto.graph.input[0].type.tensor_type.elem_type == TensorProto.BFLOAT16
    report = bridge.validate_torch(model, proto, (x,), runtimes=["onnxruntime-cpu", "onnx-reference"])
    assert report.ok and len(report.cases) == 3, str(report)


# ---- properties --------------------------------------------------------------------------------

@st.composite
def bfloat16_calls(draw):
    # the pooling ops proper (lp_pool, max_unpool and fractional max pool: named tests below)
    op = draw(st.sampled_from(sorted(o for o, (kind, _) in OPS.items() if kind in ("avg", "max", "avgpool", "maxpool"))))
    kind, nd = OPS[op]
    sizes = [draw(st.integers(3, 10)) for _ in range(nd)]
    if kind in ("avg", "max"):
        kw = dict(output_size=[draw(st.integers(1, s)) for s in sizes])
        if kind == "max":
            kw["return_indices"] = draw(st.booleans())
    else:
        kernel = [draw(st.integers(1, 3)) for _ in range(nd)]
        kw = dict(kernel_size=kernel, stride=[draw(st.integers(1, 3)) for _ in range(nd)],
                  padding=[draw(st.integers(0, k // 2)) for k in kernel], ceil_mode=draw(st.booleans()))
        if kind == "maxpool":
            kw["return_indices"] = draw(st.booleans())
        else:
            kw["count_include_pad"] = draw(st.booleans())
    lead = draw(st.sampled_from([(2, 3), (3,)]))
    return op, kw, lead + tuple(sizes), draw(st.booleans())


@settings(max_examples=30, deadline=None)
@given(call=bfloat16_calls(), seed=st.integers(0, 2**16))
def test_bfloat16_property(call, seed, ort):
    """Random ops, arguments, shapes, static or dynamic: auto's graph under onnxruntime equals
    adapool's bfloat16 kernel (max equal, averages within one ulp) on data with ties,
    NaN and ±inf."""
    op, kw, shape, dynamic = call
    x = nasty_input(shape, np.float32, np.random.default_rng(seed)).astype(BFLOAT16)
    want = as_list(getattr(adapool, op)(x, **kw))
    in_shape = dynamic_shape(shape, OPS[op][1]) if dynamic else shape
    model = export_quiet(op, in_shape, dtype="bfloat16", **kw)
    assert_bfloat16_close(ort_run(model, x), want, f"{op} {kw} {in_shape}", exact="max" in op)


def test_bfloat16_lp_unpool_and_fractional_graphs(ort):
    """The newer ops in bfloat16 under onnxruntime: lp_pool within an ulp of adapool's (which
    rounds each step as torch does; the graph rounds once), max_unpool and fractional max pool
    exactly, the latter with its windows from bfloat16 arithmetic on a 500-long axis (float32
    arithmetic on the same samples gives other windows there)."""
    rng = np.random.default_rng(3)
    samples = to_bfloat16(rng.random((1, 2, 2)).astype(np.float32))
    calls = [("lp_pool2d", (2, 3, 15, 13), dict(norm_type=2, kernel_size=3, stride=2, ceil_mode=True)),
             ("max_unpool2d", (2, 3, 7, 7), dict(kernel_size=2)),
             ("fractional_max_pool2d", (1, 2, 40, 500), dict(kernel_size=2, output_size=(20, 400),
                                                              _random_samples=samples, return_indices=True))]
    for op, shape, kw in calls:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = export(op, shape, dtype="bfloat16", targets=("onnxruntime",), **kw)
        report = validate(model, runtimes=["onnxruntime-cpu", "onnx-reference"])
        assert report.ok, str(report)
