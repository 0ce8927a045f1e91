"""PyTorch models to ONNX through adapool: torch's exporters with exact translations installed
for aten's adaptive pools and strided pools (avg_pool1d/2d/3d, max_pool1d/2d/3d with and
without indices).

    from onnx_export.torch import export, translations

    model_proto = export(model, (x,), "model.onnx", dynamo=True, dynamic_shapes=...)
    with translations():                       # around your own torch.onnx.export call
        torch.onnx.export(model, (x,), "model.onnx", dynamo=False, dynamic_axes=...)

Both exporters first emit one adapool-domain node per pooling call (a symbolic function for
``dynamo=False``, a custom translation table for ``dynamo=True``); the model is then lowered:
each node becomes the graph of the chosen strategy for the shapes ONNX shape inference finds
(static sizes: static graphs; unknown sizes: the dynamic form, exact at every size).

torch stays optional: importing adapool or onnx_export never imports torch, and this module says
what is missing (torch, or onnxscript for ``dynamo=True``).
"""
from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Iterator, Sequence
from typing import IO, Any

import numpy as np
import onnx
from onnx import defs

from ._builder import DOMAIN, DOMAIN_VERSION
from ._export import check_targets
from ._lower import lower
from ._strategies import ExportError

try:
    import torch
except ImportError:   # pragma: no cover - exercised in a subprocess without torch
    torch = None

# aten op -> (kind, spatial axes); a max_pool*d_with_indices op also outputs the indices
ATEN_OPS = {
    "adaptive_avg_pool1d": ("avg", 1), "adaptive_avg_pool2d": ("avg", 2), "adaptive_avg_pool3d": ("avg", 3),
    "adaptive_max_pool1d": ("max", 1), "adaptive_max_pool2d": ("max", 2), "adaptive_max_pool3d": ("max", 3),
    "avg_pool1d": ("avgpool", 1), "avg_pool2d": ("avgpool", 2), "avg_pool3d": ("avgpool", 3),
    "max_pool1d": ("maxpool", 1), "max_pool2d": ("maxpool", 2), "max_pool3d": ("maxpool", 3),
    "max_pool1d_with_indices": ("maxpool", 1), "max_pool2d_with_indices": ("maxpool", 2),
    "max_pool3d_with_indices": ("maxpool", 3),
}
# the adapool-domain node's attributes per kind (onnx_export._strategies.FUNCTION_ATTRS)
_ATTRS = {"avg": ["output_size"], "max": ["output_size"],
          "avgpool": ["kernel", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"],
          "maxpool": ["kernel", "stride", "padding", "dilation", "ceil_mode"]}


class SpecialisedSizeError(ExportError):
    """torch fixed a size adapool needs to keep dynamic, so no exact graph can be exported."""


class CheckFailed(ExportError):
    """``export(..., check=True)``: a runtime disagreed with torch eager; ``.report`` says which."""

    def __init__(self, report):
        super().__init__(f"the exported model disagrees with torch eager:\n{report}")
        self.report = report


def _require_torch():
    if torch is None:
        raise ImportError("onnx_export.torch needs PyTorch: pip install torch==2.13.0 (the CPU build; or the build of your choice)")
    return torch


def _require_onnxscript():
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        raise ImportError("torch.onnx.export(dynamo=True) needs onnxscript: pip install 'adapool[torch]' "
                          "(or pip install onnxscript; or export with dynamo=False)") from None


def _node_name(kind: str, nd: int, indices: bool = True) -> str:
    base = {"avg": "AdaptiveAvgPool", "max": "AdaptiveMaxPool", "avgpool": "AvgPool", "maxpool": "MaxPool"}[kind]
    return f"{base}{nd}d" + ("WithIndices" if kind in ("max", "maxpool") and indices else "")


def _per_axis(v, nd: int) -> list:
    """An int or a sequence of one or nd ints, as nd ints (torch's rule for the pooling args;
    the lowering checks them again with adapool's validation)."""
    v = list(v) if isinstance(v, (list, tuple)) else [int(v)]
    return v * nd if len(v) == 1 else v


def _pool_attrs(kernel, stride, padding, ceil_mode, count_include_pad, divisor_override, nd: int = 2) -> dict:
    kernel = _per_axis(kernel, nd)
    stride = _per_axis(stride, nd) if stride not in (None, [], ()) else kernel
    return {"kernel": kernel, "stride": stride, "padding": _per_axis(padding, nd), "ceil_mode": [int(bool(ceil_mode))],
            "count_include_pad": [int(bool(count_include_pad))], "divisor_override": [int(divisor_override or 0)]}


def _max_pool_attrs(kernel, stride, padding, dilation, ceil_mode, nd: int) -> dict:
    kernel = _per_axis(kernel, nd)
    stride = _per_axis(stride, nd) if stride not in (None, [], ()) else kernel
    return {"kernel": kernel, "stride": stride, "padding": _per_axis(padding, nd),
            "dilation": _per_axis(dilation, nd), "ceil_mode": [int(bool(ceil_mode))]}


def _ints_only(name: str, *args) -> None:
    for a in args:
        for v in (a if isinstance(a, (list, tuple)) else [a]):
            if not isinstance(v, int) or isinstance(v, bool):
                raise SpecialisedSizeError(f"{name}: kernel_size, stride, padding and dilation must be ints to export")


# ---- ONNX schemas for the placeholder ops (onnxscript, which builds dynamo's graphs, needs one) --

def _schemas():
    fp = defs.OpSchema.FormalParameter
    types = [("T", ["tensor(float16)", "tensor(float)", "tensor(double)", "tensor(bfloat16)"], "")]
    ints = defs.OpSchema.AttrType.INTS
    out = {}
    for name, (kind, nd) in ATEN_OPS.items():
        variants = [True, False] if kind in ("max", "maxpool") else [False]
        for indices in variants:
            outputs = [fp("Y", "T")] + ([fp("Indices", "tensor(int64)")] if indices else [])
            attributes = [defs.OpSchema.Attribute(a, ints, "") for a in _ATTRS[kind]]
            attributes.append(defs.OpSchema.Attribute("_rank", defs.OpSchema.AttrType.INT, "", required=False))
            op_name = _node_name(kind, nd, indices)   # max_pool2d and its _with_indices share them
            out[op_name] = defs.OpSchema(op_name, DOMAIN, DOMAIN_VERSION, inputs=[fp("X", "T")], outputs=outputs,
                                         type_constraints=types, attributes=attributes)
    return list(out.values())


# ---- dynamo=True: a custom translation table ---------------------------------------------------

_state = threading.local()


def _dynamo_sizes(sizes, what: str) -> list:
    """Ints stay; a symbolic size is the input's own size (checked on the FX graph before export
    by _check_exported_program), written as -1 (keep)."""
    out = []
    for s in sizes:
        if isinstance(s, int):
            out.append(s)
        elif getattr(_state, "verified", False):
            out.append(-1)
        else:
            raise SpecialisedSizeError(
                f"{what}: a size in output_size depends on the input's shape and adapool could not check "
                "that it is the input's own size (torch.export of the model failed before torch.onnx.export)")
    return out


def _dynamo_table():
    from onnxscript import values
    ops = values.Opset(DOMAIN, DOMAIN_VERSION)
    table = {}
    for name, (kind, nd) in ATEN_OPS.items():
        overload = getattr(torch.ops.aten, name).default
        if kind == "avgpool":
            def translate(self, kernel_size, stride=(), padding=(0,), ceil_mode=False, count_include_pad=True,
                          divisor_override=None, _nd=nd, _name=name):
                _ints_only(_name, kernel_size, stride or [], padding)
                return getattr(ops, _node_name("avgpool", _nd))(
                    self, _rank=len(self.shape),
                    **_pool_attrs(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, _nd))
        elif kind == "maxpool":
            def translate(self, kernel_size, stride=(), padding=(0,), dilation=(1,), ceil_mode=False, _nd=nd,
                          _name=name):
                _ints_only(_name, kernel_size, stride or [], padding, dilation)
                indices = _name.endswith("_with_indices")
                return getattr(ops, _node_name("maxpool", _nd, indices))(
                    self, _rank=len(self.shape), **_max_pool_attrs(kernel_size, stride, padding, dilation, ceil_mode, _nd))
        elif kind == "max":
            def translate(self, output_size, _nd=nd, _name=name):
                return getattr(ops, _node_name("max", _nd))(self, output_size=_dynamo_sizes(output_size, _name),
                                                           _rank=len(self.shape))
        else:
            def translate(self, output_size, _nd=nd, _name=name):
                return getattr(ops, _node_name("avg", _nd))(self, output_size=_dynamo_sizes(output_size, _name),
                                                           _rank=len(self.shape))
        table[overload] = translate
    return table


def _same_size(a, b) -> bool:
    ea, eb = getattr(getattr(a, "node", None), "expr", a), getattr(getattr(b, "node", None), "expr", b)
    try:
        return bool(ea == eb)
    except TypeError:
        return False


def _check_exported_program(ep) -> None:
    """Every non-int output size of an adaptive pool must be the input's own size on that axis
    (what output_size=None resolves to); anything else would bake a size or compute it in a way
    the adapool node can't express."""
    for node in ep.graph.nodes:
        if node.op != "call_function":
            continue
        name = getattr(getattr(node.target, "_schema", None), "name", "").replace("aten::", "")
        if name not in ATEN_OPS:
            continue
        kind, nd = ATEN_OPS[name]
        x = node.args[0].meta.get("val")
        if kind in ("avgpool", "maxpool"):
            if any(isinstance(v, torch.fx.Node) for a in node.args[1:5] for v in (a if isinstance(a, (list, tuple)) else [a])):
                raise SpecialisedSizeError(f"{name}: kernel_size, stride, padding and dilation must be ints to export")
            continue
        for i, s in enumerate(node.args[1]):
            if isinstance(s, torch.fx.Node):
                size = s.meta.get("val")
                if x is None or not _same_size(size, x.shape[x.dim() - nd + i]):
                    raise SpecialisedSizeError(
                        f"{name}: output_size[{i}] is {size}, computed from shapes, not the input's own size "
                        f"{x.shape[x.dim() - nd + i] if x is not None else '?'}; adapool exports int sizes or None. Pass an "
                        "int (a fixed output size) or None (keep the input's size on that axis), or export with "
                        "that dim static")


# ---- dynamo=False: symbolic functions --------------------------------------------------------

def _ts_sizes(x, output_size, nd: int, what: str) -> list:
    from torch.onnx import symbolic_helper as sh
    const = sh._maybe_get_const(output_size, "is")
    if not sh._is_value(const):
        return [int(v) for v in const]
    node = output_size.node()
    if node.kind() != "prim::ListConstruct":
        raise SpecialisedSizeError(f"{what}: output_size is computed in the graph ({node.kind()}); adapool exports "
                                   "int sizes or None")
    rank = x.type().dim()
    sizes = []
    for i, v in enumerate(node.inputs()):
        c = sh._maybe_get_const(v, "i")
        if not sh._is_value(c):
            sizes.append(int(c))
            continue
        # None resolves to input.size(axis): traced as Gather(Shape(input), axis)
        producer = v.node()
        ok = producer.kind() == "onnx::Gather" and producer.inputsAt(0).node().kind() == "onnx::Shape" \
            and producer.inputsAt(0).node().inputsAt(0) == x
        axis = sh._maybe_get_const(producer.inputsAt(1), "i") if ok else None
        if not ok or sh._is_value(axis) or rank is None or (axis % rank) != rank - nd + i:
            raise SpecialisedSizeError(f"{what}: output_size[{i}] is computed from shapes, not the input's own "
                                       "size; adapool exports int sizes or None")
        sizes.append(-1)
    return sizes


def _ts_symbolics():
    from torch.onnx import symbolic_helper as sh
    out = {}
    for name, (kind, nd) in ATEN_OPS.items():
        if kind == "avgpool":
            def symbolic(g, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override=None,
                         _nd=nd, _name=name):
                vals = [sh._maybe_get_const(v, t) for v, t in ((kernel_size, "is"), (stride, "is"), (padding, "is"),
                                                               (ceil_mode, "b"), (count_include_pad, "b"))]
                d = None if divisor_override is None or sh._is_none(divisor_override) else \
                    sh._maybe_get_const(divisor_override, "i")
                if any(sh._is_value(v) for v in vals) or sh._is_value(d):
                    raise SpecialisedSizeError(f"{_name}: kernel_size, stride, padding and divisor_override must "
                                               "be constants to export")
                attrs = {k + "_i": v for k, v in _pool_attrs(*vals, d, nd=_nd).items()}
                rank = x.type().dim()
                if rank is not None:
                    attrs["_rank_i"] = rank
                return g.op(f"{DOMAIN}::{_node_name('avgpool', _nd)}", x, **attrs)
        elif kind == "maxpool":
            def symbolic(g, x, kernel_size, stride, padding, dilation, ceil_mode, _nd=nd, _name=name):
                vals = [sh._maybe_get_const(v, t) for v, t in ((kernel_size, "is"), (stride, "is"), (padding, "is"),
                                                               (dilation, "is"), (ceil_mode, "b"))]
                if any(sh._is_value(v) for v in vals):
                    raise SpecialisedSizeError(f"{_name}: kernel_size, stride, padding and dilation must be constants "
                                               "to export")
                attrs = {k + "_i": v for k, v in _max_pool_attrs(*vals, nd=_nd).items()}
                rank = x.type().dim()
                if rank is not None:
                    attrs["_rank_i"] = rank
                if _name.endswith("_with_indices"):
                    return g.op(f"{DOMAIN}::{_node_name('maxpool', _nd)}", x, outputs=2, **attrs)
                return g.op(f"{DOMAIN}::{_node_name('maxpool', _nd, False)}", x, **attrs)
        else:
            def symbolic(g, x, output_size, _kind=kind, _nd=nd, _name=name):
                attrs = {"output_size_i": _ts_sizes(x, output_size, _nd, _name)}
                if x.type().dim() is not None:
                    attrs["_rank_i"] = x.type().dim()
                if _kind == "max":
                    return g.op(f"{DOMAIN}::{_node_name('max', _nd)}", x, outputs=2, **attrs)
                return g.op(f"{DOMAIN}::{_node_name('avg', _nd)}", x, **attrs)
        out[f"aten::{name}"] = symbolic
    return out


# ---- installing and removing the translations ------------------------------------------------

@contextlib.contextmanager
def translations(strategy: str = "auto", targets: Sequence[str] | None = None) -> Iterator[None]:
    """Install adapool's translations around your own ``torch.onnx.export`` call(s).

    Inside the block ``torch.onnx.export`` exports aten's adaptive and strided pools exactly,
    with either exporter, and lowers them with ``strategy``; on exit torch's symbolic registry,
    ``torch.onnx.export`` and onnx's schema registry are as they were (custom symbolics you had
    registered for these ops are put back). Inside the block, ``dynamo=True`` returns torch's
    ``ONNXProgram`` holding the lowered model; ``dynamo=False`` writes the lowered model to
    ``f`` and returns None.

    torch equivalent: ``torch.onnx.register_custom_op_symbolic`` (``dynamo=False``) and
    ``torch.onnx.export``'s ``custom_translation_table`` (``dynamo=True``), set up for you.

    Parameters
    ----------
    strategy : str
        How each pooling call is lowered: "auto" or a name from ``onnx_export.STRATEGIES``.
    targets : sequence of str, optional
        The runtimes the pooling graphs must be exact on ("onnxruntime", "openvino", "tract";
        default: all of them), as for :func:`onnx_export.export`.

    Returns
    -------
    contextlib.AbstractContextManager
        A context manager (``with translations(): ...``); entering it gives None.

    Raises
    ------
    ImportError
        torch is not installed (on entering the block).
    """
    _require_torch()
    check_targets(targets)   # a bad name fails on entering, not after torch's export
    from torch.onnx._internal.torchscript_exporter import registration
    from torch.onnx._internal.torchscript_exporter import utils as ts_utils
    original_export = torch.onnx.export
    opsets = range(7, _max_ts_opset() + 1)
    saved = {}
    for name in _ts_symbolics():
        group = registration.registry.get_function_group(name)
        overrides = getattr(getattr(group, "_functions", None), "_overrides", {}) if group else {}
        saved[name] = dict(overrides)
    registered_schemas = []
    try:
        for name, fn in _ts_symbolics().items():
            for opset in opsets:
                ts_utils.register_custom_op_symbolic(name, fn, opset)
        for schema in _schemas():
            try:
                defs.get_schema(schema.name, DOMAIN_VERSION, DOMAIN)
            except defs.SchemaError:
                defs.register_schema(schema)
                registered_schemas.append(schema)
        torch.onnx.export = _patched_export(original_export, strategy, targets)
        yield
    finally:
        torch.onnx.export = original_export
        for name, overrides in saved.items():
            for opset in opsets:
                registration.registry.unregister(name, opset) if _overridden(registration, name, opset) else None
                if opset in overrides:
                    ts_utils.register_custom_op_symbolic(name, overrides[opset], opset)
        for schema in registered_schemas:
            defs.deregister_schema(schema.name, schema.since_version, schema.domain)


def _overridden(registration, name, opset) -> bool:
    group = registration.registry.get_function_group(name)
    return bool(group) and group._functions.overridden(opset)


def _max_ts_opset() -> int:
    from torch.onnx import _constants
    return _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET if hasattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET") \
        else _constants.ONNX_MAX_OPSET


def _patched_export(original, strategy, targets):
    def export(model, args=(), f=None, *, kwargs=None, dynamo=True, custom_translation_table=None,
               custom_opsets=None, dynamic_shapes=None, **rest):
        if dynamo:
            _require_onnxscript()
            table = dict(custom_translation_table or {})
            table.update(_dynamo_table())
            requested = None
            if isinstance(model, torch.nn.Module):
                args, kwargs, dynamic_shapes = _torch_onnx_inputs(model, args, kwargs, dynamic_shapes, rest)
                requested = _requested_axes(model, args, kwargs, dynamic_shapes)
                model = _exported_program(model, args, kwargs, dynamic_shapes)
            else:
                _state.verified = False
            if isinstance(model, torch.export.ExportedProgram):
                _check_exported_program(model)
                _state.verified = True
            try:
                # An ExportedProgram's dims are fixed; torch reads dynamic_shapes then only to
                # name the ONNX model's dynamic axes as the user named them.
                program = original(model, args, None, kwargs=kwargs, dynamo=True, custom_translation_table=table,
                                   dynamic_shapes=dynamic_shapes, **rest)
            finally:
                _state.verified = False
            lowered = lower(program.model_proto, strategy, targets)
            _replace_program_model(program, lowered)
            if requested is not None:
                _check_dynamic_inputs(requested, model if isinstance(model, torch.export.ExportedProgram) else None,
                                      lowered)
            if f is not None:
                program.save(f)
            return program
        buffer = io.BytesIO()
        opsets = dict(custom_opsets or {})
        opsets[DOMAIN] = DOMAIN_VERSION
        original(model, args, buffer, kwargs=kwargs, dynamo=False, custom_opsets=opsets, **rest)
        lowered = lower(onnx.load_from_string(buffer.getvalue()), strategy, targets)
        if f is not None:
            _save(lowered, f)
        return None
    return export


def _torch_onnx_inputs(model, args, kwargs, dynamic_shapes, rest):
    """args, kwargs and dynamic_shapes as torch.onnx.export(dynamo=True) hands them to
    torch.export: a trailing dict of args is kwargs; ``dynamic_axes`` (popped from ``rest``)
    becomes dynamic_shapes, by torch's own conversion (dropped here, dynamic_axes would give a
    model with every dim static, since torch reads them only when it captures the model)."""
    args = args if isinstance(args, tuple) else (args,)
    if not kwargs and args and isinstance(args[-1], dict):
        kwargs, args = args[-1], args[:-1]
    dynamic_axes = rest.pop("dynamic_axes", None)
    if dynamic_shapes is None and dynamic_axes is not None:
        _dynamic_shapes = _torch_onnx_internal("_dynamic_shapes")
        if _dynamic_shapes is None:   # a torch without it: torch.onnx.export converts them itself
            rest["dynamic_axes"] = dynamic_axes
            return args, kwargs, None
        dynamic_shapes, args, kwargs = _dynamic_shapes.from_dynamic_axes_to_dynamic_shapes(
            model, args, kwargs, dynamic_axes=dynamic_axes, input_names=rest.get("input_names"),
            output_names=set(rest.get("output_names") or ()))
    return args, kwargs, dynamic_shapes


def _export_dims(dynamic_shapes):
    """The spec torch.export takes: axis names given as strings are Dim.DYNAMIC (torch.onnx's
    reading)."""
    _dynamic_shapes = _torch_onnx_internal("_dynamic_shapes")
    return dynamic_shapes if _dynamic_shapes is None else _dynamic_shapes.convert_str_to_export_dim(dynamic_shapes)[0]


def _torch_onnx_internal(name: str):
    """A module of torch.onnx's exporter (private; torch 2.13 has them), or None."""
    import importlib
    try:
        return importlib.import_module(f"torch.onnx._internal.exporter.{name}")
    except ImportError:
        return None


def _exported_program(model, args, kwargs, dynamic_shapes):
    """torch.export of the model exactly as torch.onnx.export(dynamo=True) captures it (its own
    capture strategies: backed_size_oblivious, deferred runtime asserts instead of guards, a
    retry with torch's suggested fixes, then strict mode), so the bridge exports what torch's
    exporter exports and the pooling calls' sizes can be checked on the FX graph. A capture
    that fails everywhere is left to torch.onnx.export (sizes then unverified), unless torch
    found a dynamic dim that must be static."""
    _capture_strategies = _torch_onnx_internal("_capture_strategies")
    errors = []
    if _capture_strategies is None:   # a torch without them: torch.export as it comes
        try:
            return torch.export.export(model, args, kwargs=kwargs, dynamic_shapes=_export_dims(dynamic_shapes),
                                       strict=False)
        except Exception as e:
            errors.append(e)
    for strategy in getattr(_capture_strategies, "CAPTURE_STRATEGIES", ()):
        result = strategy(verbose=False)(model, args, kwargs, dynamic_shapes=_export_dims(dynamic_shapes))
        if result.exported_program is not None:
            return result.exported_program
        errors.append(result.exception)
    first = errors[0] if errors else None
    if first is not None and ("Constraints violated" in str(first) or "specializ" in str(first).lower()):
        raise SpecialisedSizeError(
            "torch specialised a dimension you asked to be dynamic (torch.export's words below): the model "
            "only runs at one size of it, or at sizes outside the range you gave. Mark that dim static, or give "
            f"it the range torch suggests, or use Dim.AUTO to let torch decide.\n{first}") from first
    _state.verified = False
    return model


# ---- the dims the user asked dynamic ------------------------------------------------------------

def _is_dynamic_request(v) -> bool:
    """A dynamic_shapes leaf that asks for a dynamic dim: a named Dim, Dim.AUTO or Dim.DYNAMIC,
    or an axis name (dynamic_axes, or a string in dynamic_shapes)."""
    return isinstance(v, (str, torch.export.Dim)) or (
        type(v).__name__ == "_DimHint" and "STATIC" not in str(getattr(v, "type", v)).upper())


def _describe(v) -> str:
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, torch.export.Dim):
        return f"Dim({v.__name__!r})"
    return "Dim." + str(getattr(v, "type", v)).split(".")[-1].split(":")[0].strip("<> ").upper()


def _requested_axes(model, args, kwargs, dynamic_shapes) -> list | None:
    """For each tensor among the model's flattened inputs (torch.export's order: the forward's
    parameters, then pytree order within each), {axis: spec leaf} of the axes asked dynamic.
    None when the spec's structure isn't one this reads (then nothing is checked)."""
    import inspect
    if dynamic_shapes is None:
        return None
    try:
        names = list(inspect.signature(getattr(model, "forward", model)).parameters)
    except (TypeError, ValueError):
        return None
    kwargs = kwargs or {}
    inputs = list(zip(names, args)) + [(n, kwargs[n]) for n in names[len(args):] if n in kwargs]
    if isinstance(dynamic_shapes, dict):
        specs = [dynamic_shapes.get(n) for n, _ in inputs]
    elif isinstance(dynamic_shapes, (tuple, list)) and len(dynamic_shapes) == len(inputs):
        specs = list(dynamic_shapes)
    else:
        return None
    out: list = []

    def walk(value, spec) -> bool:
        if isinstance(value, torch.Tensor):
            if spec is None:
                out.append({})
            elif isinstance(spec, dict):
                out.append({a: v for a, v in spec.items() if _is_dynamic_request(v)})
            elif isinstance(spec, (list, tuple)):
                out.append({a: v for a, v in enumerate(spec) if _is_dynamic_request(v)})
            else:
                return False
            return True
        if isinstance(value, (list, tuple)):
            if spec is None:
                return all(walk(v, None) for v in value)
            return isinstance(spec, (list, tuple)) and len(spec) == len(value) and all(map(walk, value, spec))
        if isinstance(value, dict):
            if spec is None:
                return all(walk(v, None) for v in value.values())
            return isinstance(spec, dict) and all(walk(v, spec.get(k)) for k, v in value.items())
        return True   # ints, floats, None: not graph inputs
    return out if all(walk(v, s) for (_, v), s in zip(inputs, specs)) else None


def _check_dynamic_inputs(requested: list, program, proto: onnx.ModelProto) -> None:
    """Every dim asked dynamic is dynamic in the ONNX model's inputs, or the user is told. torch
    fixing one in its capture (the same as torch.onnx.export's) is a warning naming it; a dim
    dynamic in torch's program but static in the ONNX model would be a bridge bug: an error."""
    import warnings
    init = {t.name for t in proto.graph.initializer}
    graph_inputs = [i for i in proto.graph.input if i.name not in init]
    if len(graph_inputs) != len(requested):
        return   # (inputs torch dropped or added: nothing to line up)
    placeholders = None
    if program is not None:
        user = set(program.graph_signature.user_inputs)
        placeholders = [n for n in program.graph.nodes if n.op == "placeholder" and n.name in user
                        and isinstance(n.meta.get("val"), torch.Tensor)]
        if len(placeholders) != len(requested):
            placeholders = None
    for k, (axes, onnx_input) in enumerate(zip(requested, graph_inputs)):
        dims = onnx_input.type.tensor_type.shape.dim
        for axis, spec in sorted(axes.items()):
            if axis >= len(dims) or dims[axis].dim_param or not dims[axis].HasField("dim_value"):
                continue
            where = f"axis {axis} of input {onnx_input.name!r} (asked {_describe(spec)})"
            in_program = placeholders[k].meta["val"].shape[axis] if placeholders is not None else None
            if in_program is not None and not isinstance(in_program, int):
                raise ExportError(f"{where} is dynamic in torch's program but came out static "
                                  f"({dims[axis].dim_value}) in the ONNX model: please report this")
            warnings.warn(f"{where} was fixed to {dims[axis].dim_value} by torch.export (torch.onnx.export "
                          "fixes it too): the ONNX model accepts only that size there", UserWarning, stacklevel=4)


def _replace_program_model(program, proto: onnx.ModelProto) -> None:
    try:
        import onnx_ir as ir
    except ImportError:   # older onnxscript keeps the IR inside itself
        from onnxscript import ir
    program.model = ir.serde.deserialize_model(proto)


def _save(model: onnx.ModelProto, f) -> None:
    if isinstance(f, (str, os.PathLike)):
        onnx.save(model, os.fspath(f))
    else:
        f.write(model.SerializeToString())


def export(model: torch.nn.Module | torch.export.ExportedProgram, args: tuple[Any, ...],
           f: str | os.PathLike | IO[bytes] | None = None, *, strategy: str = "auto",
           targets: Sequence[str] | None = None, check: bool = False, **kwargs: Any) -> onnx.ModelProto:
    """``torch.onnx.export(model, args, f, **kwargs)`` with adapool's exact pooling translations.

    Each aten adaptive or strided pool call is exported as one adapool-domain node, then
    lowered (:func:`onnx_export.lower`) to the strategy's standard-op graph for the shapes ONNX
    shape inference finds: static sizes get static graphs, unknown sizes the dynamic form.

    torch equivalent: ``torch.onnx.export`` (this calls it, inside :func:`translations`).

    Parameters
    ----------
    model : torch.nn.Module or torch.export.ExportedProgram
        As for ``torch.onnx.export``.
    args : tuple
        Example positional inputs, as for ``torch.onnx.export``.
    f : path or binary file, optional
        Where to save the model (also returned). A file object only with ``dynamo=False``
        (torch's ``ONNXProgram.save`` takes a path).
    strategy : str
        How each pooling call is lowered (see ``onnx_export.STRATEGIES``); "auto" picks the
        exact, fastest form for the shapes ONNX shape inference finds; "function" keeps one
        node per call with a model-local function.
    targets : sequence of str, optional
        The runtimes the pooling graphs must be exact on ("onnxruntime", "openvino", "tract";
        default: all), as for :func:`onnx_export.export`.
    check : bool
        Run :func:`validate_torch` on the result (every available runtime against torch eager,
        at the example size and other sizes of each dynamic dim) and raise ``CheckFailed``
        (carrying the report) when it is not ok. The model is saved to ``f`` only after.
    **kwargs
        ``torch.onnx.export``'s keyword arguments: ``dynamo`` (default True, as in torch),
        ``dynamic_shapes`` (``dynamo=True``), ``dynamic_axes`` (``dynamo=False``),
        ``opset_version``, ``input_names``, ...

    Returns
    -------
    onnx.ModelProto
        The lowered model. An unused indices output of a max pool is not computed.

    Raises
    ------
    ImportError
        torch is not installed, or onnxscript is not (``dynamo=True``).
    SpecialisedSizeError
        torch fixed a size that must stay dynamic: an ``output_size`` computed from shapes
        (other than None), non-constant ``kernel_size``/``stride``/``padding``, or a dim asked
        dynamic that every capture of torch.onnx.export's found must be static (torch.export's
        constraint violations). (An ExportError.)
    CheckFailed
        ``check=True`` and a runtime disagreed with torch eager (``.report``). (An ExportError.)

    Warns
    -----
    UserWarning
        ``dynamo=True``: a dim asked dynamic (``dynamic_shapes`` or ``dynamic_axes``) that
        torch's capture fixed, as torch.onnx.export's own does (the model pins its size); the
        warning names the input, the axis and the size.
    ExportError
        Lowering failed: ``strategy`` not exact for a call's shapes, or a pooling input whose
        type or rank shape inference can't tell.
    """
    _require_torch()
    dynamo = kwargs.pop("dynamo", True)
    # with check=True nothing is saved until the check passed
    target = None if check else f
    with translations(strategy, targets):
        if dynamo:
            proto = torch.onnx.export(model, args, target, dynamo=True, **kwargs).model_proto
        else:
            buffer = io.BytesIO()
            torch.onnx.export(model, args, buffer, dynamo=False, **kwargs)
            proto = onnx.load_from_string(buffer.getvalue())
            if target is not None:
                _save(proto, target)
    if check:
        report = validate_torch(model, proto, args)
        if not report.ok:
            raise CheckFailed(report)
        if f is not None:
            _save(proto, f)
    return proto


# ---- checking an exported model against torch eager --------------------------------------------

def _array(t: torch.Tensor) -> np.ndarray:
    """A tensor as a NumPy array; bfloat16 (which ``.numpy()`` refuses) as ml_dtypes' bfloat16,
    bit for bit."""
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        from adapool._bfloat16 import BFLOAT16
        return t.contiguous().view(torch.int16).numpy().view(BFLOAT16)
    return t.numpy()


def _flatten(value) -> list:
    """torch outputs (a tensor, or nested tuples/lists/dicts of them) as a flat list of arrays."""
    if isinstance(value, torch.Tensor):
        return [_array(value)]
    if isinstance(value, dict):
        return [a for v in value.values() for a in _flatten(v)]
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in _flatten(v)]
    raise TypeError(f"validate_torch compares tensor outputs, not {type(value).__name__}")


def _other_sizes(axis: int, size: int) -> list:
    """Sizes to try for a dynamic dim besides the example's: a batch axis gets 1 and one more;
    other axes a size 7 larger (odd/even flips) and one about twice the example's."""
    return [1, size + 1] if axis == 0 else [size + 7, 2 * size + 3]


def _torch_cases(onnx_model: onnx.ModelProto, args: tuple, sizes) -> list:
    """Per case, the positional tensors: the example args, then args of other sizes for every
    dynamic dim of the model's inputs (same-named dims take the same size)."""
    inits = {i.name for i in onnx_model.graph.initializer}
    graph_inputs = [i for i in onnx_model.graph.input if i.name not in inits]
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if len(tensors) != len(graph_inputs):
        raise ValueError(f"the model has {len(graph_inputs)} inputs; args holds {len(tensors)} tensors")
    tries = {}
    for inp, t in zip(graph_inputs, tensors):
        for axis, d in enumerate(inp.type.tensor_type.shape.dim):
            if not d.HasField("dim_value"):
                key = d.dim_param or f"{inp.name}:{axis}"
                tries.setdefault(key, list((sizes or {}).get(key) or _other_sizes(axis, t.shape[axis])))
    unknown = set(sizes or {}) - set(tries)
    if unknown:
        raise ValueError(f"sizes names {sorted(unknown)}, not dynamic dims of the model ({sorted(tries) or 'none'})")
    cases = [list(tensors)]
    gen = torch.Generator().manual_seed(0)
    for i in range(max((len(v) for v in tries.values()), default=0)):
        case = []
        for inp, t in zip(graph_inputs, tensors):
            shape = list(t.shape)
            for axis, d in enumerate(inp.type.tensor_type.shape.dim):
                if not d.HasField("dim_value"):
                    values = tries[d.dim_param or f"{inp.name}:{axis}"]
                    shape[axis] = int(values[i % len(values)])
            case.append(torch.randn(*shape, generator=gen).to(t.dtype) if t.is_floating_point()
                        else torch.randint(0, 4, shape, generator=gen).to(t.dtype))
        cases.append(case)
    return [(case, [i.name for i in graph_inputs]) for case in cases]


def validate_torch(model: torch.nn.Module | torch.export.ExportedProgram, onnx_model: onnx.ModelProto,
                   args: tuple[Any, ...], *,
                   sizes: dict[str, list[int]] | None = None,
                   runtimes: list[str] | None = None) -> "onnx_export.Report":
    """Compare an exported model under every runtime with torch eager, at several sizes.

    Runs ``model`` (in eval mode, without gradients) on ``args`` and on inputs of other sizes
    for each dynamic dimension of ``onnx_model``'s inputs, then ``onnx_export.validate`` with
    those inputs and torch's outputs as the expected ones.

    torch equivalent: comparing ``torch.onnx.export``'s model with ``model(*args)`` by hand.

    Parameters
    ----------
    model : torch.nn.Module or torch.export.ExportedProgram
        The model that was exported (switched to eval mode).
    onnx_model : onnx.ModelProto
        Its export (e.g. from :func:`export`); graph inputs in the order of ``args``.
    args : tuple
        The example positional tensors the model was exported with.
    sizes : dict, optional
        Dynamic dim name (the ONNX ``dim_param``) -> sizes to try. Default: for a dim on axis 0,
        1 and the example's size + 1; elsewhere the example's size + 7 and twice it + 3.
    runtimes : list of str, optional
        As for ``onnx_export.validate`` (default: every runtime but "openvino-default").

    Returns
    -------
    onnx_export.Report
        One row per runtime, compared with torch eager (``report.reference`` says "expected
        outputs"); ``report.ok`` says whether every runtime that ran agreed.

    Raises
    ------
    ImportError
        torch is not installed.
    ValueError
        ``args`` does not match the model's inputs, or ``sizes`` names a dim that is not dynamic.
    TypeError
        The model returns something other than tensors.
    """
    _require_torch()
    from ._validate import validate
    args = args if isinstance(args, tuple) else (args,)
    if isinstance(model, torch.export.ExportedProgram):
        model = model.module()
    if isinstance(model, torch.nn.Module):
        model.eval()
    feeds, expected = [], []
    with torch.no_grad():
        for case, names in _torch_cases(onnx_model, args, sizes):
            expected.append(_flatten(model(*case)))
            feeds.append({n: _array(t) for n, t in zip(names, case)})
    return validate(onnx_model, feeds, expected=expected, runtimes=runtimes)
