"""``build`` emits one call's nodes into someone else's graph; ``export`` wraps them into a
checked model."""
from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy.typing as npt
import onnx
import onnx.inliner
from onnx import helper

from ._builder import DEFAULT_OPSET, DEFAULT_TARGETS, DOMAIN, DOMAIN_VERSION, MIN_OPSET, TARGETS, Builder, onnx_dtype
from ._spec import make_spec
from ._strategies import ExportError, check_opset_for, choose, emit

MAX_OPSET = onnx.defs.onnx_opset_version()
_CALLS = itertools.count()   # default name prefixes: unique for every build() in a process
# Model-local functions arrived with IR version 8.
_FUNCTIONS_IR = 8


@dataclass
class Built:
    """What ``build`` emitted: output value names (values, then indices with return_indices),
    the nodes, initializers and model-local functions to add to a graph, and the opset imports
    those nodes need."""
    outputs: list
    nodes: list
    initializers: list
    functions: list = field(default_factory=list)
    opset_imports: dict = field(default_factory=dict)
    strategy: str = ""
    spec: object = None


def check_opset(opset) -> int:
    if opset is None:
        return DEFAULT_OPSET
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise TypeError(f"opset must be an int, got {type(opset).__name__}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"opset {opset} is outside the supported range {MIN_OPSET}-{MAX_OPSET}")
    return opset


def check_targets(targets) -> tuple:
    """The runtimes a graph is built for: a subset of TARGETS (default: DEFAULT_TARGETS)."""
    if targets is None:
        return DEFAULT_TARGETS
    if isinstance(targets, str):
        targets = (targets,)
    targets = tuple(targets)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise ValueError(f"targets must be a non-empty subset of {', '.join(TARGETS)}, got {list(targets)}")
    return targets


def build(op: str, input_name: str, input_shape: Sequence[int | str | None], *,
          dtype: npt.DTypeLike = "float32", opset: int | None = None, strategy: str = "auto",
          prefix: str | None = None, targets: Sequence[str] | None = None, if_budget: int | None = -1,
          indices_name: str = "indices", **op_kwargs: Any) -> Built:
    """Emit the nodes of one pooling call reading ``input_name`` into a graph being assembled.

    ``export`` uses it and wraps the result into a checked model; ``lower`` uses it to replace
    adapool-domain nodes.

    torch equivalent: none (``torch.onnx.export`` exports whole models; see
    :func:`onnx_export.torch.export`).

    Parameters
    ----------
    op : str
        An adapool forward op: ``adaptive_avg_pool1d/2d/3d``, ``adaptive_max_pool1d/2d/3d``,
        ``avg_pool1d/2d/3d``, ``max_pool1d/2d/3d``, ``lp_pool1d/2d/3d`` (torch's composition
        of powers around the strided pool's graph: the strategy names that pool's form) or
        ``max_unpool1d/2d/3d`` (a second input, the int64 indices; a given ``output_size``
        needs static spatial sizes) or
        ``fractional_max_pool2d/3d`` (static shapes, ``_random_samples`` given).
    input_name : str
        Name of the graph value the nodes read.
    input_shape : sequence
        ints for static dims; a str (a symbolic name) or None for dynamic dims.
    dtype : {"float16", "float32", "float64", "bfloat16"} or numpy dtype
        bfloat16 (``ml_dtypes.bfloat16``): the float32 graph between Casts, rounded once.
    opset : int, optional
        Default 18; the supported range is 13 to the newest opset the installed onnx knows.
    strategy : str
        "auto" or a name from ``onnx_export.STRATEGIES``.
    prefix : str, optional
        Start of every node, value and initializer name the call introduces (default: the op
        name and a per-process call number), so several calls can share a graph.
    targets : sequence of str, optional
        The runtimes the graph must be exact on: any of "onnxruntime", "openvino", "tract",
        "onnxruntime-cuda" (default: the first three). `auto` takes the fastest strategy exact on all of them, and
        constructs a target can't run are built another way (see ``Builder.if_free``).
    indices_name : str
        max_unpool1d/2d/3d: the graph value holding its int64 indices (the input's shape).
    if_budget : int, optional
        With tract among the targets: how many If nodes the call may add to the graph's top
        level (tract loads one at most). -1 (default): one; ``lower`` passes 0 once the graph
        holds one.
    **op_kwargs
        The op's torch arguments (``output_size``, ``return_indices``, ``kernel_size``,
        ``dilation``, ``norm_type``, ...). lp_pool's ``norm_type``: a Python int or float.

    Returns
    -------
    Built
        Output value names (values, then indices with return_indices), the nodes, initializers
        and model-local functions to add to the graph, the opset imports they need, the
        strategy chosen and the call's spec.

    Raises
    ------
    ExportError
        The requested strategy does not serve the op, is not exact for the call or needs a
        newer opset; the opset is out of range or too old for the call. (A ValueError.)
    ValueError
        An unknown op or strategy; the op's arguments fail adapool's checks (the NumPy call's
        message).
    TypeError
        ``dtype`` not float16/32/64 or bfloat16; ``opset`` not an int; unknown or missing op arguments, or
        arguments of the wrong type (the NumPy call's message).
    ZeroDivisionError
        lp_pool's ``norm_type`` = 0 (the NumPy call's, torch's ``1.0 / norm_type``).
    """
    opset = check_opset(opset)
    targets = check_targets(targets)
    spec = make_spec(op, input_shape, dtype, **op_kwargs)
    check_opset_for(spec, opset)
    chosen = choose(spec, strategy, opset, targets)
    if "tract" not in targets:
        if_budget = None
    elif if_budget == -1:
        if_budget = 1
    b = Builder(opset, prefix=prefix or f"{op}_{next(_CALLS)}", targets=targets, if_budget=if_budget)
    # max_unpool reads two values: its input and the indices
    outputs = emit(b, chosen, spec, input_name, indices_name if spec.inputs == 2 else None)
    imports = {"": opset}
    functions = []
    for fspec, proto in b.functions.values():
        imports[DOMAIN] = DOMAIN_VERSION
        functions.append(proto)
    return Built(list(outputs), b.nodes, b.initializers, functions, imports, chosen.name, spec)


def _rename(nodes, old: str, new: str) -> None:
    for node in nodes:
        for seq in (node.input, node.output):
            for i, v in enumerate(seq):
                if v == old:
                    seq[i] = new


def _value_info(name: str, elem_type: int, dims) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, [d if d is not None else None for d in dims])


def ir_version_for(opset: int, functions: bool) -> int:
    ir = helper.find_min_ir_version_for([helper.make_opsetid("", opset)], ignore_unknown=True)
    return max(ir, _FUNCTIONS_IR) if functions else ir


def export(op: str, input_shape: Sequence[int | str | None], *, dtype: npt.DTypeLike = "float32",
           opset: int | None = None, strategy: str = "auto", targets: Sequence[str] | None = None,
           inline: bool = False, **op_kwargs: Any) -> onnx.ModelProto:
    """An ONNX model computing ``adapool.<op>(input, **op_kwargs)`` exactly, like torch.

    torch equivalent: none for one call (``torch.onnx.export`` exports whole models; see
    :func:`onnx_export.torch.export`, which uses these graphs).

    Parameters
    ----------
    op : str
        An adapool forward op: ``adaptive_avg_pool1d/2d/3d``, ``adaptive_max_pool1d/2d/3d``,
        ``avg_pool1d/2d/3d``, ``max_pool1d/2d/3d``, ``lp_pool1d/2d/3d`` (torch's composition
        of powers around the strided pool's graph: the strategy names that pool's form) or
        ``max_unpool1d/2d/3d`` (a second input, the int64 indices; a given ``output_size``
        needs static spatial sizes) or
        ``fractional_max_pool2d/3d`` (static shapes, ``_random_samples`` given).
    input_shape : sequence
        ints for static dims; a str (a symbolic name) or None for dynamic dims.
    dtype : {"float16", "float32", "float64", "bfloat16"} or numpy dtype
        bfloat16 (``ml_dtypes.bfloat16``): the float32 graph between Casts, rounded once.
    opset : int, optional
        Default 18; the supported range is 13 to the newest opset the installed onnx knows.
    strategy : str
        "auto" or a name from ``onnx_export.STRATEGIES``.
    targets : sequence of str, optional
        The runtimes the graph must be exact on: any of "onnxruntime", "openvino", "tract",
        "onnxruntime-cuda" (default: the first three; see ``STRATEGIES[name].exact_on``). With
        "onnxruntime-cuda", float32 MatMul forms are built to stay exact under the CUDA EP's
        default TF32 MatMul.
    inline : bool
        Inline the ``function`` strategy's model-local function into the graph (OpenVINO and
        tract don't run model-local functions); no effect on other strategies.
    **op_kwargs
        The op's torch arguments (``output_size``, ``return_indices``, ``kernel_size``,
        ``dilation``, ``norm_type``, ...). lp_pool's ``norm_type``: a Python int or float.

    Returns
    -------
    onnx.ModelProto
        One input "input" (max_unpool: and "indices", int64, the input's shape); output "output" (and "indices", int64, with return_indices). It passes
        ``onnx.checker.check_model(full_check=True)``. The call is recorded in the model's
        metadata (``adapool.op``, ``adapool.kwargs``, ``adapool.strategy``) so ``validate`` can
        recompute it.

    Raises
    ------
    ExportError
        The requested strategy does not serve the op, is not exact for the call or needs a
        newer opset; the opset is out of range or too old for the call. (A ValueError.)
    ValueError
        An unknown op or strategy; the op's arguments fail adapool's checks (the NumPy call's
        message).
    TypeError
        ``dtype`` not float16/32/64 or bfloat16; ``opset`` not an int; unknown or missing op arguments, or
        arguments of the wrong type (the NumPy call's message).
    ZeroDivisionError
        lp_pool's ``norm_type`` = 0 (the NumPy call's, torch's ``1.0 / norm_type``).
    """
    built = build(op, "input", input_shape, dtype=dtype, opset=opset, strategy=strategy, prefix=op,
                  targets=targets, **op_kwargs)
    spec = built.spec
    names = ["output", "indices"][:len(built.outputs)]
    for old, new in zip(built.outputs, names):
        if old == "input":   # an identity call: the output is the input itself
            built.nodes.append(helper.make_node("Identity", ["input"], [new]))
        else:
            _rename(built.nodes, old, new)
    elem = onnx_dtype(spec.dtype)
    outputs = [_value_info("output", elem, spec.output_shape())]
    if len(names) == 2:
        outputs.append(_value_info("indices", onnx.TensorProto.INT64, spec.output_shape()))
    inputs = [_value_info("input", elem, spec.shape)]
    if spec.inputs == 2:   # max_unpool: torch's per-plane indices, the input's shape
        inputs.append(_value_info("indices", onnx.TensorProto.INT64, spec.shape))
    graph = helper.make_graph(built.nodes, f"{op}_{built.strategy}", inputs, outputs, initializer=built.initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in built.opset_imports.items()],
        functions=built.functions, producer_name="adapool.onnx_export",
        ir_version=ir_version_for(built.opset_imports[""], bool(built.functions)))
    helper.set_model_props(model, {
        "adapool.op": op,
        "adapool.kwargs": json.dumps(spec.kwargs()),
        "adapool.strategy": built.strategy,
        "adapool.targets": ",".join(check_targets(targets)),
    })
    if inline and model.functions:
        model = inline_functions(model)
    onnx.checker.check_model(model, full_check=True)
    return model


def inline_functions(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with its model-local functions inlined and the adapool opset import dropped."""
    out = onnx.inliner.inline_local_functions(model)
    keep = [o for o in out.opset_import if o.domain != DOMAIN]
    del out.opset_import[:]
    out.opset_import.extend(keep)
    return out
