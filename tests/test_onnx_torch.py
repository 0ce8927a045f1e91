"""onnx_export.torch: real architectures through both of torch's exporters, static and dynamic
H/W, run under onnxruntime and compared with torch eager at several input sizes."""
import io
import subprocess
import sys

import numpy as np
import onnx
import pytest

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def bridge(torch_oracle, ort):
    pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript (in the test extra)")
    import onnx_export.torch as bridge
    return bridge


@pytest.fixture(scope="module")
def models(torch_oracle):
    import models
    return models


def dynamic_kwargs(torch, dynamo, rank):
    spatial = list(range(2, rank))
    if dynamo:
        dims = {0: torch.export.Dim("N", min=1, max=64)}
        dims.update({d: torch.export.Dim(f"S{d}", min=4, max=4096) for d in spatial})
        return {"dynamic_shapes": (dims,)}
    return {"input_names": ["x"], "dynamic_axes": {"x": {0: "N", **{d: f"S{d}" for d in spatial}}}}


def export_model(bridge, torch, name, dynamo, dynamic):
    """One of tests/models.py's models through the bridge: (model, example input, ONNX model,
    the other shapes to run it at)."""
    import models
    factory, shape, others = models.MODELS[name]
    torch.manual_seed(0)
    model = factory().eval()
    x = torch.randn(*shape)
    kwargs = dynamic_kwargs(torch, dynamo, len(shape)) if dynamic else {}
    return model, x, bridge.export(model, (x,), dynamo=dynamo, **kwargs), others


def run_and_compare(ort, torch, model, proto, shapes, seed=0):
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    for shape in shapes:
        x = torch.randn(*shape, generator=gen)
        with torch.no_grad():
            want = model(x)
        want = [w.numpy() for w in (want if isinstance(want, tuple) else (want,))]
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape, shape
            if w.dtype == np.int64:
                np.testing.assert_array_equal(g, w, err_msg=f"indices at {shape}")
            else:
                np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5, err_msg=f"at {shape}")


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("name", ["resnet_head", "pspnet_ppm", "max_indices", "video3d", "divisor_override",
                                  "strided_stem", "max_pool_indices", "lp_pool_head"])
def test_architectures(name, dynamo, dynamic, bridge, torch_oracle, ort):
    torch = torch_oracle
    model, x, proto, others = export_model(bridge, torch, name, dynamo, dynamic)
    assert not any(n.domain == "adapool" for n in proto.graph.node)   # lowered to standard ops
    onnx.checker.check_model(proto)
    run_and_compare(ort, torch, model, proto, [tuple(x.shape)] + (others if dynamic else []))


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("name", ["strided_video", "max_pool1d_head"])
def test_strided_models_as_far_as_torch_captures_them(name, dynamo, dynamic, bridge, torch_oracle, ort):
    """Exact wherever torch's capture keeps the sizes dynamic. Under dynamo with dynamic sizes
    torch.export itself refuses avg_pool3d with ceil_mode (it emits the guard
    2*(D//2) < 1 + D, then reports it violated for D >= 4), and fixes the length of a
    max_pool1d without indices to the example's: the first fails in torch's own exporter too,
    the second is the bridge's warning (a dim torch fixed) and a static model."""
    torch = torch_oracle
    import models
    factory, shape, others = models.MODELS[name]
    if not (dynamo and dynamic):
        model, x, proto, others = export_model(bridge, torch, name, dynamo, dynamic)
        assert not any(n.domain == "adapool" for n in proto.graph.node)
        onnx.checker.check_model(proto)
        run_and_compare(ort, torch, model, proto, [tuple(x.shape)] + (others if dynamic else []))
        return
    model, x = factory().eval(), torch.randn(*shape)
    kwargs = dynamic_kwargs(torch, True, len(shape))
    if name == "strided_video":
        with pytest.raises(Exception, match="export"):
            torch.onnx.export(model, (x,), dynamo=True, **kwargs)
        with pytest.raises(Exception, match="export"):
            bridge.export(model, (x,), dynamo=True, **kwargs)
        return
    with pytest.warns(UserWarning, match="17"):
        proto = bridge.export(model, (x,), dynamo=True, **kwargs)
    assert proto.graph.input[0].type.tensor_type.shape.dim[2].dim_value == 17
    run_and_compare(ort, torch, model, proto, [tuple(x.shape)])


def test_strategy_function_keeps_one_node_per_call(bridge, models, torch_oracle, ort):
    torch = torch_oracle
    model = models.PyramidPooling().eval()
    x = torch.randn(2, 16, 15, 17)
    proto = bridge.export(model, (x,), dynamo=False, strategy="function", **dynamic_kwargs(torch, False, 4))
    pools = [n for n in proto.graph.node if n.domain == "adapool"]
    assert [n.op_type for n in pools] == ["AdaptiveAvgPool2d"] * 4
    assert [f.name for f in proto.functions] == ["AdaptiveAvgPool2d"]
    assert all(not a.name.startswith("_") for n in pools for a in n.attribute)
    run_and_compare(ort, torch, model, proto, [(2, 16, 15, 17), (1, 16, 23, 9)])


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_dilated_max_pool_with_padding_at_dynamic_sizes(bridge, torch_oracle, ort, dynamo):
    """MaxPool2d with dilation and padding exports at dynamic H and W (the dynamic form), exact
    at sizes where a window holds no element (-inf: H = 3, dilation 4, padding 1)."""
    torch = torch_oracle
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.MaxPool2d(2, padding=1, dilation=(4, 1))).eval()
    x = torch.randn(1, 3, 9, 8)
    if dynamo:
        dims = {2: torch.export.Dim("H", min=3, max=64), 3: torch.export.Dim("W", min=2, max=64)}
        proto = bridge.export(model, (x,), dynamo=True, dynamic_shapes=(dims,))
    else:
        proto = bridge.export(model, (x,), dynamo=False, input_names=["x"], dynamic_axes={"x": {2: "H", 3: "W"}})
    with torch.no_grad():
        assert torch.isneginf(model(torch.randn(1, 3, 3, 5))).any()   # the size below has empty windows
    run_and_compare(ort, torch, model, proto, [(1, 3, 3, 5), (1, 3, 9, 8), (1, 3, 4, 2)])


def test_unused_indices_are_not_computed(bridge, torch_oracle):
    torch = torch_oracle
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.AdaptiveMaxPool2d(5)).eval()
    proto = bridge.export(model, (torch.randn(1, 3, 13, 13),), dynamo=False)
    assert not any(n.op_type == "ArgMax" for n in proto.graph.node)


def test_static_export_uses_static_graphs(bridge, models, torch_oracle):
    torch = torch_oracle
    proto = bridge.export(models.ResNetHead().eval(), (torch.randn(2, 3, 30, 30),), dynamo=False)
    assert "Range" not in {n.op_type for n in proto.graph.node}   # windows are constants


def test_saves_to_f(bridge, torch_oracle, tmp_path):
    torch = torch_oracle
    model = torch.nn.AdaptiveAvgPool2d(3).eval()
    for dynamo in (False, True):
        path = tmp_path / f"m{dynamo}.onnx"
        proto = bridge.export(model, (torch.randn(1, 2, 7, 7),), path, dynamo=dynamo)
        assert onnx.load(str(path)).graph.node[0].op_type == proto.graph.node[0].op_type
    buffer = io.BytesIO()
    bridge.export(model, (torch.randn(1, 2, 7, 7),), buffer, dynamo=False)
    assert onnx.load_from_string(buffer.getvalue()).graph.node


# ---- torch's own exporters on the same models: the before of the README's before/after ----------

def test_torchscript_exporter_rejects_non_divisible_sizes(models, torch_oracle):
    torch = torch_oracle
    with pytest.raises(Exception, match="not factor of input size"):
        torch.onnx.export(models.ResNetHead().eval(), (torch.randn(2, 3, 30, 30),), io.BytesIO(), dynamo=False)


def test_torch_exporters_drop_divisor_override(models, torch_oracle, ort):
    torch = torch_oracle
    model = models.DivisorPool().eval()
    x = torch.randn(2, 3, 13, 14)
    buffer = io.BytesIO()
    torch.onnx.export(model, (x,), buffer, dynamo=False)
    sess = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = model(x).numpy()
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert not np.allclose(got, want, rtol=1e-3)   # torch's graph is silently wrong


def test_dynamo_exporter_bakes_the_example_size(models, torch_oracle, ort, bridge):
    """torch's dynamo graph for a dynamic non-divisible adaptive pool, checked at other sizes;
    adapool's graph is exact at all of them."""
    torch = torch_oracle
    model = models.ResNetHead().eval()
    x = torch.randn(2, 3, 30, 30)
    kwargs = dynamic_kwargs(torch, True, 4)
    program = torch.onnx.export(model, (x,), dynamo=True, **kwargs)
    sess = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    errors = []
    for shape in [(1, 3, 45, 37), (3, 3, 64, 64)]:
        xi = torch.randn(*shape)
        with torch.no_grad():
            want = model(xi).numpy()
        try:
            got = sess.run(None, {sess.get_inputs()[0].name: xi.numpy()})[0]
            errors.append(float(np.abs(got - want).max()))
        except Exception as e:
            errors.append(type(e).__name__)
    proto = bridge.export(model, (x,), dynamo=True, **kwargs)
    run_and_compare(ort, torch, model, proto, [(1, 3, 45, 37), (3, 3, 64, 64)])
    # torch 2.13's graph keeps the example's windows: silently wrong at the other sizes
    # (max abs errors of ~0.03 on outputs of ~0.3; the README's before/after)
    assert all(isinstance(e, float) and e > 1e-3 for e in errors), errors


# ---- sizes torch fixes before adapool sees them: fail loudly -----------------------------------

def test_computed_output_size_fails_loudly(bridge, torch_oracle):
    torch = torch_oracle

    class Half(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.adaptive_avg_pool2d(x, (x.shape[-2] // 2, 3))

    x = torch.randn(2, 2, 10, 10)
    with pytest.raises(bridge.SpecialisedSizeError, match="output_size"):
        bridge.export(Half(), (x,), dynamo=True, **dynamic_kwargs(torch, True, 4))
    with pytest.raises(Exception, match="output_size"):
        bridge.export(Half(), (x,), dynamo=False, **dynamic_kwargs(torch, False, 4))


def test_none_output_size_stays_dynamic(bridge, torch_oracle, ort):
    torch = torch_oracle
    model = torch.nn.AdaptiveAvgPool2d((4, None)).eval()
    for dynamo in (False, True):
        proto = bridge.export(model, (torch.randn(2, 2, 9, 7),), dynamo=dynamo, **dynamic_kwargs(torch, dynamo, 4))
        run_and_compare(ort, torch, model, proto, [(2, 2, 9, 7), (1, 2, 13, 22)])


def test_avg_pool2d_ceil_mode_with_dynamic_sizes_exports_exactly(bridge, models, torch_oracle, ort):
    """avg_pool2d with ceil_mode makes torch.export guard H and W; captured as torch.onnx.export
    captures it (guards deferred to runtime asserts) it exports, exact at every size tried --
    where the window ceil_mode adds is kept and where it is dropped."""
    torch = torch_oracle
    torch.manual_seed(0)
    model = models.DivisorPool(ceil_mode=True).eval()
    proto = bridge.export(model, (torch.randn(2, 3, 13, 14),), dynamo=True, **dynamic_kwargs(torch, True, 4))
    assert input_dims(proto) == [["N", 3, "S2", "S3"]]
    run_and_compare(ort, torch, model, proto, [(1, 3, h, w) for h in (4, 5, 6, 7, 13, 14, 21) for w in (4, 9, 22)]
                    + [(3, 3, 13, 14)])


# ---- capturing the program as torch.onnx.export does (issue 16) ----------------------------------

def input_dims(proto):
    return [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in proto.graph.input]


def named_hw(torch, lo=5):
    Dim = torch.export.Dim
    return ({2: Dim("H", min=lo, max=1024), 3: Dim("W", min=lo, max=1024)},)


@pytest.mark.parametrize("name", ["MaxPoolHead", "ConvNeXtBlock"])
def test_range_guards_are_not_refused_as_specialisations(name, bridge, models, torch_oracle, ort):
    """A max pool's output `!= 1` guard (MaxPoolHead: issue 16's reproducer) and a ConvNeXt-style
    block with named H/W Dims: torch.onnx.export exports them, so the bridge does, exactly."""
    torch = torch_oracle
    torch.manual_seed(0)
    model = getattr(models, name)().eval()
    lo = 8 if name == "ConvNeXtBlock" else 5
    proto = bridge.export(model, (torch.randn(1, 3, 32, 32),), dynamo=True, dynamic_shapes=named_hw(torch, lo))
    assert input_dims(proto) == [[1, 3, "H", "W"]]
    run_and_compare(ort, torch, model, proto, [(1, 3, 32, 32), (1, 3, lo, lo), (1, 3, 45, 37), (1, 3, 7 * lo, 3 * lo + 1)])


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
def test_a_batch_of_one_stays_dynamic(dynamo, bridge, models, torch_oracle, ort):
    """An example batch of 1 with N asked dynamic: N stays dynamic (the bridge used to fix it to
    1 silently under dynamo=True with Dim.AUTO)."""
    torch = torch_oracle
    torch.manual_seed(0)
    model = models.ResNetHead().eval()
    if dynamo:
        auto = torch.export.Dim.AUTO
        kwargs = {"dynamic_shapes": ({0: auto, 2: auto, 3: auto},)}
    else:
        kwargs = dynamic_kwargs(torch, False, 4)
    proto = bridge.export(model, (torch.randn(1, 3, 30, 30),), dynamo=dynamo, **kwargs)
    dims = input_dims(proto)[0]
    assert isinstance(dims[0], str) and dims[1] == 3 and all(isinstance(d, str) for d in dims[2:]), dims
    run_and_compare(ort, torch, model, proto, [(1, 3, 30, 30), (3, 3, 30, 30), (2, 3, 45, 37), (5, 3, 64, 64)])


def test_dynamic_axes_are_honoured_under_dynamo(bridge, models, torch_oracle, ort):
    """dynamic_axes with dynamo=True: converted as torch.onnx.export converts them (the bridge
    used to ignore them and export every dim static, without a word); axis names kept."""
    torch = torch_oracle
    torch.manual_seed(0)
    model = models.ResNetHead().eval()
    proto = bridge.export(model, (torch.randn(1, 3, 30, 30),), dynamo=True, input_names=["x"],
                          dynamic_axes={"x": {0: "N", 2: "H", 3: "W"}})
    assert input_dims(proto) == [["N", 3, "H", "W"]]
    run_and_compare(ort, torch, model, proto, [(1, 3, 30, 30), (4, 3, 41, 33)])


def test_a_dim_torch_fixes_is_named_in_a_warning(bridge, torch_oracle, ort):
    """A named Dim the model pins (a branch on H == 32): torch's capture fixes it, as
    torch.onnx.export does -- and the bridge says so, naming the axis, instead of staying quiet."""
    torch = torch_oracle

    class Branch(torch.nn.Module):
        def forward(self, x):
            y = torch.nn.functional.adaptive_avg_pool2d(x, 3)
            return y * 2 if x.shape[2] == 32 else y

    with pytest.warns(UserWarning, match=r"axis 2 of input 'x' \(asked Dim\('H'\)\) was fixed to 32"):
        proto = bridge.export(Branch().eval(), (torch.randn(1, 3, 32, 32),), dynamo=True,
                              dynamic_shapes=named_hw(torch))
    assert input_dims(proto) == [[1, 3, 32, "W"]]
    run_and_compare(ort, torch, Branch().eval(), proto, [(1, 3, 32, 32), (1, 3, 32, 47)])


def test_a_dim_lost_after_torchs_capture_is_an_error(bridge, models, torch_oracle):
    """Dynamic in torch's program but static in the ONNX model would be the bridge's own bug:
    the check refuses it (exercised on a model edited to look so)."""
    torch = torch_oracle
    model = models.ResNetHead().eval()
    x = torch.randn(2, 3, 30, 30)
    spec = named_hw(torch)
    proto = bridge.export(model, (x,), dynamo=True, dynamic_shapes=spec)
    program = bridge._exported_program(model, (x,), None, spec)
    requested = bridge._requested_axes(model, (x,), None, spec)
    assert list(requested[0]) == [2, 3]
    bridge._check_dynamic_inputs(requested, program, proto)   # as exported: fine
    proto.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 30
    with pytest.raises(bridge.ExportError, match=r"axis 3 of input 'x' \(asked Dim\('W'\)\) is dynamic in torch's program"):
        bridge._check_dynamic_inputs(requested, program, proto)


def test_a_real_specialisation_fails_loudly_saying_what_to_do(bridge, models, torch_oracle, monkeypatch):
    """When every capture fails because a dim asked dynamic must be static, the error says so and
    what to do (torch's own message follows)."""
    torch = torch_oracle
    from torch.onnx._internal.exporter import _capture_strategies

    class Refused:
        def __init__(self, **_):
            pass

        def __call__(self, *args, **kwargs):
            return _capture_strategies.Result(None, "Refused", RuntimeError("Constraints violated (H)! H = 32"))

    monkeypatch.setattr(_capture_strategies, "CAPTURE_STRATEGIES", (Refused,))
    with pytest.raises(bridge.SpecialisedSizeError, match=r"(?s)Mark that dim static.*Constraints violated \(H\)"):
        bridge.export(models.ResNetHead().eval(), (torch.randn(2, 3, 30, 30),), dynamo=True,
                      dynamic_shapes=named_hw(torch))


# ---- torch's global state ------------------------------------------------------------------------

def test_translations_leave_torch_as_they_found_it(bridge, torch_oracle):
    torch = torch_oracle
    from torch.onnx._internal.torchscript_exporter import registration
    original = torch.onnx.export

    def user_symbolic(g, x, output_size):
        return g.op("Identity", x)

    torch.onnx.register_custom_op_symbolic("aten::adaptive_avg_pool2d", user_symbolic, 11)
    try:
        with bridge.translations():
            assert torch.onnx.export is not original
            assert registration.registry.get_function_group("aten::adaptive_avg_pool2d").get(17) is not user_symbolic
            onnx.defs.get_schema("AdaptiveAvgPool2d", 1, "adapool")
        assert torch.onnx.export is original
        group = registration.registry.get_function_group("aten::adaptive_avg_pool2d")
        assert group.get(11) is user_symbolic and group.get(17) is user_symbolic   # the user's is back
        with pytest.raises(onnx.defs.SchemaError):
            onnx.defs.get_schema("AdaptiveAvgPool2d", 1, "adapool")
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::adaptive_avg_pool2d", 11)
    assert not registration.registry.get_function_group("aten::adaptive_avg_pool2d")._functions.overridden(9)


def test_translations_restore_state_after_an_error(bridge, torch_oracle):
    torch = torch_oracle
    original = torch.onnx.export
    with pytest.raises(RuntimeError, match="boom"):
        with bridge.translations():
            raise RuntimeError("boom")
    assert torch.onnx.export is original


def test_user_export_call_inside_translations(bridge, models, torch_oracle, ort, tmp_path):
    torch = torch_oracle
    model = models.ResNetHead().eval()
    path = tmp_path / "user.onnx"
    with bridge.translations():
        torch.onnx.export(model, (torch.randn(2, 3, 30, 30),), str(path), dynamo=False,
                          **dynamic_kwargs(torch, False, 4))
    run_and_compare(ort, torch, model, onnx.load(str(path)), [(2, 3, 30, 30), (1, 3, 45, 37)])


@pytest.mark.parametrize("missing,match", [("torch", "needs PyTorch"), ("onnxscript", "needs onnxscript")])
def test_missing_dependencies_are_named(missing, match, tmp_path, request):
    if missing == "onnxscript":   # the call that needs onnxscript needs torch first
        request.getfixturevalue("torch_oracle")
    code = (f"import sys; sys.modules[{missing!r}] = None\nmissing = {missing!r}\n"
            "import onnx_export.torch as b\n"
            "try:\n"
            "    if missing == 'torch':\n"
            "        b.export(object(), ())\n"
            "    import torch; m = torch.nn.AdaptiveAvgPool2d(2); b.export(m, (torch.randn(1, 1, 4, 4),), dynamo=True)\n"
            "except ImportError as e:\n"
            "    print('ImportError:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert match in out.stdout, out.stdout + out.stderr
