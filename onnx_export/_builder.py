"""A small ONNX node emitter: unique names, constants, and the few ops whose signature changed
between opsets (Reduce* axes became an input in opset 18). Strategies only talk to this class,
so the same strategy code writes a graph's nodes or a FunctionProto's body."""
from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from adapool._bfloat16 import BFLOAT16

MIN_OPSET = 13        # Unsqueeze/Squeeze/ReduceSum take axes as inputs from 13 on
DEFAULT_OPSET = 18
DOMAIN = "adapool"    # custom-domain ops (the "function" strategy)
DOMAIN_VERSION = 1
# The runtimes an exported graph can be built to be exact on (``export(..., targets=...)``), and
# the default set. onnxruntime's CUDA EP is opt-in: its float32 MatMul runs in TF32 by default,
# and the forms that stay exact there cost onnxruntime's CPU EP time (see _strategies._tf32_safe).
TARGETS = ("onnxruntime", "openvino", "tract", "onnxruntime-cuda")
DEFAULT_TARGETS = ("onnxruntime", "openvino", "tract")

_ONNX_DTYPES = {
    np.dtype(np.float16): TensorProto.FLOAT16,
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float64): TensorProto.DOUBLE,
    BFLOAT16: TensorProto.BFLOAT16,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.bool_): TensorProto.BOOL,
}


def onnx_dtype(dtype) -> int:
    return _ONNX_DTYPES[np.dtype(dtype)]


class Builder:
    """Collects nodes and initializers for one strategy's subgraph.

    ``prefix`` keeps names unique when several subgraphs share a graph (the torch bridge). In a
    function body (``in_function=True``) constants are Constant nodes, since functions have no
    initializers, and ``attr_ints`` reads the function's attributes. ``targets`` are the
    runtimes the graph must load and be exact on; some constructs depend on them.
    """

    def __init__(self, opset: int, prefix: str = "adapool", in_function: bool = False, targets=DEFAULT_TARGETS,
                 if_budget: int | None = None):
        self.opset = opset
        self.prefix = prefix
        self.in_function = in_function
        self.targets = tuple(targets)
        # If nodes this graph scope may still hold (None: any number); see ``if_free``
        self.if_budget = if_budget
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._ids = itertools.count()
        self._consts: dict = {}
        self.functions: dict = {}   # name -> (spec, FunctionProto) for custom-domain nodes

    def subgraph(self) -> "Builder":
        """A builder for an If branch: its own node list; names, initializers and functions are
        shared with this one (outer-scope values are visible inside a branch)."""
        child = Builder(self.opset, self.prefix, self.in_function, self.targets,
                        if_budget=None if self.if_budget is None else 1)   # a branch is a scope of its own
        child._ids, child.initializers, child.functions = self._ids, self.initializers, self.functions
        if not self.in_function:   # Constant nodes inside a branch are visible only there
            child._consts = self._consts
        return child

    def name(self, hint: str) -> str:
        return f"{self.prefix}/{hint}_{next(self._ids)}"

    def op(self, op_type: str, *inputs: str, outputs: int = 1, domain: str = "", **attrs):
        outs = [self.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=self.name(op_type),
                                           domain=domain or None, **attrs))
        return outs[0] if outputs == 1 else outs

    # ---- constants ----------------------------------------------------------------------------
    def const(self, value, dtype=None) -> str:
        """A constant tensor, shared when the same value is asked for twice."""
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key in self._consts:
            return self._consts[key]
        name = self.name("const")
        tensor = numpy_helper.from_array(arr, name)
        if self.in_function:
            self.nodes.append(helper.make_node("Constant", [], [name], name=self.name("Constant"), value=tensor))
        else:
            self.initializers.append(tensor)
        self._consts[key] = name
        return name

    def ints(self, *values: int) -> str:
        return self.const(np.array(values, dtype=np.int64))

    def scalar(self, value, dtype) -> str:
        return self.const(np.array(value, dtype=dtype))

    def attr_ints(self, attr: str) -> str:
        """A function attribute (a list of ints) as a 1-D int64 tensor."""
        out = self.name(attr)
        node = helper.make_node("Constant", [], [out], name=self.name("Constant"))
        node.attribute.append(onnx.AttributeProto(name="value_ints", ref_attr_name=attr,
                                                  type=onnx.AttributeProto.INTS))
        self.nodes.append(node)
        return out

    @property
    def if_free(self) -> bool:
        """Whether the next choice must be made with Where (both sides computed) instead of an
        If node. tract wires every If under the name "If", so a graph scope holding two fails
        to load ("Duplicate node name: If", whatever the nodes' names; its If::to_typed), and
        it can't type a branch that reads a value of data-dependent length (dynamic shapes):
        with tract among the targets, a scope gets ``if_budget`` If nodes (1 for static
        shapes, 0 for dynamic ones) and Where after that. Where costs: both sides always run."""
        return self.if_budget is not None and self.if_budget <= 0

    def take_if(self) -> None:
        if self.if_budget is not None:
            self.if_budget -= 1

    def isnan(self, x: str, dtype) -> str:
        """IsNaN, or x != x where a target lacks IsNaN for the dtype (tract: no float64 IsNaN)."""
        if np.dtype(dtype) == np.float64 and "tract" in self.targets:
            return self.op("Not", self.op("Equal", x, x))
        return self.op("IsNaN", x)

    # ---- ops whose form depends on the opset ---------------------------------------------------
    def reduce(self, op_type: str, x: str, axes, keepdims: bool) -> str:
        axes = [int(a) for a in axes]
        if self.opset >= 18 or op_type == "ReduceSum":
            return self.op(op_type, x, self.ints(*axes), keepdims=int(keepdims))
        return self.op(op_type, x, axes=axes, keepdims=int(keepdims))

    def unsqueeze(self, x: str, *axes: int) -> str:
        return self.op("Unsqueeze", x, self.ints(*axes))

    def squeeze(self, x: str, *axes: int) -> str:
        return self.op("Squeeze", x, self.ints(*axes))

    def cast(self, x: str, dtype) -> str:
        return self.op("Cast", x, to=onnx_dtype(dtype))

    def dims(self, x: str, start: int, end: int | None = None) -> str:
        """``Shape(x)[start:end]`` as a 1-D int64 tensor."""
        shape = self.op("Shape", x)
        ends = [np.iinfo(np.int64).max if end is None else end]
        return self.op("Slice", shape, self.ints(start), self.ints(*ends), self.ints(0))

    def dim(self, x: str, axis: int) -> str:
        """One dimension of ``x`` as a 0-d int64 tensor."""
        return self.op("Gather", self.op("Shape", x), self.scalar(axis, np.int64), axis=0)
