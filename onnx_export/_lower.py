"""Replace adapool-domain nodes in a model (the torch bridge's placeholders, or the `function`
strategy's nodes) by the graph of a chosen strategy, on the shapes ONNX shape inference finds."""
from __future__ import annotations

from collections.abc import Sequence

import onnx
from onnx import helper

from ._builder import DOMAIN
from ._export import _rename, build, ir_version_for
from ._strategies import ExportError, call_from_node

_ELEM_DTYPES = {onnx.TensorProto.FLOAT16: "float16", onnx.TensorProto.FLOAT: "float32",
                onnx.TensorProto.DOUBLE: "float64", onnx.TensorProto.BFLOAT16: "bfloat16"}


def _value_types(model: onnx.ModelProto) -> dict:
    """name -> TypeProto, from ONNX's own shape inference on the graph inputs. Shapes a producer
    wrote into value_info are dropped first: an exporter may record the example's sizes."""
    bare = onnx.ModelProto()
    bare.CopyFrom(model)
    del bare.graph.value_info[:]
    inferred = onnx.shape_inference.infer_shapes(bare, strict_mode=False)
    g = inferred.graph
    return {v.name: v.type for v in list(g.input) + list(g.value_info) + list(g.output)}


def _input_shape(tp, node, rank_hint):
    t = tp.tensor_type if tp is not None else None
    if t is None or t.elem_type not in _ELEM_DTYPES:
        raise ExportError(f"{node.op_type} node {node.name!r}: its input's type is unknown or not float16/32/64 "
                          "or bfloat16")
    if t.HasField("shape"):
        return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim], _ELEM_DTYPES[t.elem_type]
    if rank_hint is None:
        raise ExportError(f"{node.op_type} node {node.name!r}: shape inference can't tell its input's rank")
    return [None] * rank_hint, _ELEM_DTYPES[t.elem_type]


def _used(model: onnx.ModelProto, name: str) -> bool:
    if any(o.name == name for o in model.graph.output):
        return True
    return any(name in n.input for n in model.graph.node)


def lower(model: onnx.ModelProto, strategy: str = "auto",
          targets: Sequence[str] | None = None) -> onnx.ModelProto:
    """A copy of ``model`` with every adapool-domain node replaced by ``strategy``'s graph.

    The nodes are the torch bridge's placeholders or the ``function`` strategy's nodes. Static
    input sizes get static graphs, unknown ones the dynamic form: exact at every size either
    way. Sizes come from ONNX's own shape inference on the graph inputs (shapes a producer
    wrote into value_info are ignored).

    torch equivalent: none (:func:`onnx_export.torch.export` runs it on what
    ``torch.onnx.export`` produced).

    Parameters
    ----------
    model : onnx.ModelProto
        Any model; it is not modified.
    strategy : str
        "auto" or a name from ``onnx_export.STRATEGIES``; ``"function"`` keeps the nodes and
        adds their model-local functions.
    targets : sequence of str, optional
        The runtimes the graphs must be exact on (see :func:`onnx_export.export`; default: all).

    Returns
    -------
    onnx.ModelProto
        The lowered copy, passing ``onnx.checker.check_model``. An unused indices output of a
        max pool node is not computed; the adapool opset import is dropped when no
        adapool-domain node is left.

    Raises
    ------
    ExportError
        The model imports no default ONNX opset; a node's input type is unknown or not
        float16/32/64 or bfloat16, or its rank can't be inferred; ``strategy`` is not exact for a node's
        shapes. (A ValueError.)
    ValueError
        An unknown adapool-domain op, or a node missing an attribute or whose arguments fail
        adapool's checks; an unknown strategy.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    opset = next((o.version for o in out.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise ExportError("the model imports no default ONNX opset")
    functions = {f.name: f for f in out.functions if f.domain == DOMAIN}
    for i, n in enumerate(out.graph.node):   # every placeholder gets a name to be found by
        if n.domain == DOMAIN and not n.name:
            n.name = f"{DOMAIN}_{n.op_type}_{i}"
    pending = [n.name for n in out.graph.node if n.domain == DOMAIN]
    # tract loads one If per graph scope (Builder.if_free): count those the graph holds
    ifs = sum(n.op_type == "If" for n in out.graph.node)
    for count, name in enumerate(pending):
        nodes = list(out.graph.node)
        pos = next(i for i, n in enumerate(nodes) if n.name == name and n.domain == DOMAIN)
        node = nodes[pos]
        try:
            op, kwargs = call_from_node(node)
        except ValueError as e:
            raise ExportError(f"{e}; its input's type is unknown") if not node.input or not node.input[0] \
                else ExportError(str(e)) from None
        rank = next((a.i for a in node.attribute if a.name == "_rank"), None)
        shape, dtype = _input_shape(_value_types(out).get(node.input[0]), node, rank)
        if kwargs.get("return_indices") and not _used(out, node.output[1]):
            kwargs["return_indices"] = False   # torch's max pool always makes indices; often unused
        built = build(op, node.input[0], shape, dtype=dtype, opset=opset, strategy=strategy, targets=targets,
                      if_budget=1 if ifs == 0 else 0,
                      prefix=f"{node.name}/adapool{count}", **kwargs)
        new_nodes = list(built.nodes)
        ifs += sum(n.op_type == "If" for n in new_nodes)
        for old, new in zip(built.outputs, node.output):
            if old == node.input[0]:   # an identity call: the output is the input itself
                new_nodes.append(helper.make_node("Identity", [old], [new], name=f"{new}/identity"))
            else:
                _rename(new_nodes, old, new)
        for proto in built.functions:   # names encode rank and dtype: one body per name
            functions[proto.name] = proto
        del out.graph.node[:]
        out.graph.node.extend(nodes[:pos] + new_nodes + nodes[pos + 1:])
        out.graph.initializer.extend(built.initializers)
    del out.functions[:]
    out.functions.extend(functions.values())
    if not any(n.domain == DOMAIN for n in out.graph.node):
        keep = [o for o in out.opset_import if o.domain != DOMAIN]
        del out.opset_import[:]
        out.opset_import.extend(keep)
    elif not any(o.domain == DOMAIN for o in out.opset_import):
        out.opset_import.append(helper.make_opsetid(DOMAIN, 1))
    if functions:
        out.ir_version = max(out.ir_version, ir_version_for(opset, True))
    onnx.checker.check_model(out)
    return out
