"""Run a model under every available runtime and compare each with a reference: adapool's kernel
(a model of one pooling call), user-supplied expected outputs, or a reference runtime."""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import onnx

import adapool
from adapool import _unpool
from adapool._bfloat16 import BFLOAT16

from ._builder import DOMAIN
from ._export import inline_functions
from ._runtimes import DEFAULT_RUNTIMES, OPTIMIZERS, RUNTIMES as RUNTIME_TABLE, MixedProviders, RuntimeSkipped
from ._runtimes import optimize as run_optimizer
from ._spec import OPS
from ._strategies import DTYPE_GAPS, call_from_node

# Tolerances against adapool's kernel, per dtype: a few ulps of the result for float16 (both
# round once from float32), sum-order differences of float32/float64 sums; for bfloat16 one
# ulp (2**-7 of the value), since a float32 result a few float32 ulps off can round to the
# neighbouring bfloat16 near a tie (the atol: float32's, for sums that cancel to near 0).
TOLERANCES = {
    np.dtype(np.float16): (2e-3, 1e-3),
    np.dtype(np.float32): (2e-5, 2e-6),
    np.dtype(np.float64): (1e-12, 1e-13),
    BFLOAT16: (2.0**-7, 2e-6),
}
# Tolerances against a reference runtime or expected outputs (a whole model: convolutions and
# matmuls sum in each runtime's own order, and torch's kernels differ from all of them).
MODEL_TOLERANCES = {
    np.dtype(np.float16): (1e-2, 1e-3),
    np.dtype(np.float32): (1e-4, 1e-5),
    np.dtype(np.float64): (1e-9, 1e-10),
    BFLOAT16: (2.0**-4, 2.0**-7),   # float16's, scaled by the ulps' ratio (8)
}
# The names validate runs by default (the whole table is onnx_export._runtimes.RUNTIMES).
RUNTIMES = DEFAULT_RUNTIMES
# Sizes tried for each dynamic dimension: batch, channels, spatial (odd and even, non-divisible).
_DYNAMIC_SIZES = {"batch": (2, 1, 3), "channels": (3, 2, 5), "spatial": (11, 16, 23)}
_NP_DTYPES = {onnx.TensorProto.FLOAT16: np.float16, onnx.TensorProto.FLOAT: np.float32,
              onnx.TensorProto.DOUBLE: np.float64, onnx.TensorProto.BFLOAT16: BFLOAT16}
# Runtimes that can't run bfloat16 graphs at all: their refusal is reported as a limitation
_BFLOAT16_REFUSED = {"tract": DTYPE_GAPS[("tract", "bfloat16")]}
_F32_MAX = float(np.finfo(np.float32).max)
_OPENVINO_F64 = "OpenVINO computes float64 in float32"
_AGREE = "the runtimes agree node by node; the graph itself differs from the reference"


class UnsupportedModel(ValueError):
    """There is nothing to compare the model with: adapool can't compute it and no reference
    runtime can, or it can't be read, or its inputs can't be generated."""


@dataclass
class Row:
    runtime: str
    provider: str = "-"
    max_abs: float = float("nan")
    max_rel: float = float("nan")
    status: str = "ok"      # ok, mismatch, failed, skipped, known fault, limitation, reference
    detail: str = ""
    first_divergence: str = ""   # for a mismatch: the first node whose output differs

    @property
    def passed(self) -> bool:
        return self.status in ("ok", "skipped", "known fault", "limitation", "reference", "not a target")


@dataclass
class Report:
    """What :func:`validate` found: one row per runtime (and per optimized variant).

    ``ok`` is True when every runtime that ran agreed with the reference and at least one did
    (skipped runtimes, known faults and limitations of a runtime are shown, not counted as
    failures). ``str(report)`` is a table of the rows, the input shapes, the reference, and OK
    or FAILED.

    torch equivalent: none.

    Attributes
    ----------
    rows : list of Row
        Per runtime: ``runtime`` (e.g. "openvino", or "onnxsim → openvino" for an optimized
        graph), ``provider``, ``max_abs`` and ``max_rel`` (largest absolute and relative errors
        against the reference, NaN when nothing was compared), ``status`` ("ok", "mismatch",
        "failed", "skipped", "known fault", "limitation", "not a target" or "reference"),
        ``detail`` (why) and
        ``first_divergence`` (for a mismatch: the first node whose output differs between this
        runtime and a trusted one).
    cases : list of tuple
        The input shapes that were compared (a tuple of shapes per case for several inputs).
    reference : str
        What the outputs were compared with: adapool's kernel, a runtime, or expected outputs.
    """
    rows: list[Row]
    cases: list[tuple] = field(default_factory=list)   # input shapes that were compared
    reference: str = ""

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.rows) and any(r.status == "ok" for r in self.rows)

    def row(self, runtime: str) -> Row:
        return next(r for r in self.rows if r.runtime == runtime)

    def __str__(self) -> str:
        head = ("runtime", "provider", "max abs err", "max rel err", "status")
        body = [(r.runtime, r.provider, _fmt(r.max_abs), _fmt(r.max_rel), _status_text(r)) for r in self.rows]
        widths = [max(len(str(x[i])) for x in [head] + body) for i in range(4)]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4]
                 for row in [head] + body]
        lines.insert(1, "-" * len(lines[0]))
        cases = ", ".join(_shape_text(c) for c in self.cases)
        lines.append(f"inputs: {cases}" if cases else "inputs: none")
        if self.reference:
            lines.append(f"reference: {self.reference}")
        lines.append("OK" if self.ok else "FAILED")
        return "\n".join(lines)


def _status_text(r: Row) -> str:
    text = r.status + (f": {r.detail}" if r.detail else "")
    return text + (f"; first divergence: {r.first_divergence}" if r.first_divergence else "")


def _shape_text(case) -> str:
    if case and isinstance(case[0], tuple):   # several inputs
        return " & ".join("x".join(map(str, s)) for s in case)
    return "x".join(map(str, case))


def _fmt(v: float) -> str:
    return "-" if v != v else f"{v:.3g}"


# ---- what the model computes, in adapool's terms -----------------------------------------------

def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


@dataclass
class _Call:
    """One adapool call: ``op(x, **kwargs)``, with a fix-up ``mode`` ("crop", "crop+onnx_indices",
    "unsqueeze" or None), and for LpPool the power ``p`` (the call then sums |x|^p)."""
    op: str
    kwargs: dict
    mode: str | None = None
    p: int | None = None
    node: object = None    # a standard node: re-resolved at each input size (auto_pad, ceil_mode)


def _text(v) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def _same_pads(spatial, kernel, strides, auto_pad: str, op_type: str) -> list:
    """ONNX's SAME_UPPER/SAME_LOWER pads for these sizes, when they are symmetric."""
    pads = []
    for size, k, s in zip(spatial, kernel, strides):
        out = -(-size // s)
        total = max((out - 1) * s + k - size, 0)
        if total % 2:
            raise UnsupportedModel(f"{op_type} with auto_pad {auto_pad} pads input size {size} asymmetrically "
                                   f"(total pad {total}); adapool has no equivalent")
        pads.append(total // 2)
    return pads + pads


def _pool_attrs(node, nd: int, rank: int):
    a = _attrs(node)
    try:
        kernel = [int(v) for v in a.get("kernel_shape", [])]
        strides = [int(v) for v in a.get("strides", [1] * nd)]
        pads = [int(v) for v in a.get("pads", [0] * 2 * nd)]
        ceil_mode, include_pad = int(a.get("ceil_mode", 0)), int(a.get("count_include_pad", 0))
        dilations = [int(v) for v in a.get("dilations", [1] * nd)]
        p = int(a.get("p", 2))
    except (TypeError, ValueError):
        raise UnsupportedModel(f"{node.op_type} node: kernel_shape, strides, pads and dilations must be "
                               "lists of ints, ceil_mode, count_include_pad and p ints") from None
    if len(kernel) != nd or len(strides) != nd or len(pads) != 2 * nd or min(kernel + strides) < 1 or min(pads) < 0:
        raise UnsupportedModel(f"{node.op_type} node on a rank-{rank} input needs {nd} positive kernel_shape "
                               f"and strides entries (kernel_size) and {2 * nd} non-negative pads")
    if any(d != 1 for d in dilations):
        raise UnsupportedModel(f"{node.op_type} with dilations has no adapool equivalent")
    if node.op_type == "LpPool" and p < 1:
        raise UnsupportedModel(f"LpPool with p={p}: p must be a positive int")
    return kernel, strides, pads, ceil_mode, include_pad, p, _text(a.get("auto_pad", "NOTSET")), a


def _standard_node(node, rank: int, spatial=None) -> _Call:
    """A single standard pooling node as an adapool call. ``spatial``: the input's spatial sizes,
    which auto_pad and ceil_mode resolve against (None: checks that need them are deferred)."""
    nd = rank - 2
    if nd not in (1, 2, 3):
        raise UnsupportedModel(f"{node.op_type} on a rank-{rank} input has no adapool equivalent")
    if node.op_type == "GlobalAveragePool":
        return _Call(f"adaptive_avg_pool{nd}d", {"output_size": [1] * nd})
    if node.op_type == "GlobalMaxPool":
        return _Call(f"adaptive_max_pool{nd}d", {"output_size": [1] * nd})
    kernel, strides, pads, ceil_mode, include_pad, p, auto_pad, a = _pool_attrs(node, nd, rank)
    if auto_pad not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise UnsupportedModel(f"{node.op_type} with auto_pad {auto_pad!r} has no adapool equivalent")
    if auto_pad != "NOTSET":
        # VALID and SAME give floor-mode output sizes whatever ceil_mode says (ONNX's formulas)
        ceil_mode = 0
        pads = [0] * 2 * nd if auto_pad == "VALID" or spatial is None else \
            _same_pads(spatial, kernel, strides, auto_pad, node.op_type)
    if pads[:nd] != pads[nd:]:
        raise UnsupportedModel(f"{node.op_type} with asymmetric pads has no adapool equivalent")
    pad = pads[:nd]
    avg_like = node.op_type == "AveragePool" or node.op_type == "LpPool"
    lp = p if node.op_type == "LpPool" else None
    if node.op_type == "LpPool" or node.op_type == "MaxPool":
        # only avg_pool2d has a ceil_mode; elsewhere ceil_mode=1 is exact when it adds no window
        if ceil_mode and spatial is not None:
            if any((size + 2 * q - k) % s for size, q, k, s in zip(spatial, pad, kernel, strides)):
                raise UnsupportedModel(f"{node.op_type} with ceil_mode=1 adds a window at input size "
                                       f"{list(spatial)}; adapool has no equivalent")
        ceil_mode = 0 if spatial is not None else ceil_mode
    if avg_like and nd in (1, 2):
        # 1-d pooling is 2-d pooling over a unit axis; LpPool sums |x|^p (divisor 1)
        lead = [1] if nd == 1 else []
        kwargs = {"kernel_size": lead + kernel, "stride": lead + strides, "padding": [0] * (2 - nd) + pad,
                  "ceil_mode": bool(ceil_mode), "count_include_pad": bool(include_pad)}
        if lp is not None:
            kwargs.update(ceil_mode=False, count_include_pad=True, divisor_override=1)
        return _Call("avg_pool2d", kwargs, "unsqueeze" if nd == 1 else None, lp, node)
    non_overlapping = kernel == strides and not any(pad) and not (ceil_mode and spatial is not None)
    if non_overlapping and a.get("storage_order", 0) == 0:
        # non-overlapping windows: adaptive pooling of the part of the input the windows cover
        kind = "max" if node.op_type == "MaxPool" else "avg"
        return _Call(f"adaptive_{kind}_pool{nd}d", {"kernel": kernel}, "crop", lp, node)
    raise UnsupportedModel(f"{node.op_type} with these attributes has no adapool equivalent")


def _describe(model: onnx.ModelProto) -> _Call:
    """The call the model computes: from export's metadata, or from a graph that is one pooling
    node (standard or adapool-domain)."""
    meta = {p.key: p.value for p in model.metadata_props}
    if "adapool.op" in meta:
        op = meta["adapool.op"]
        if op not in OPS:
            raise UnsupportedModel(f"unknown adapool.op {op!r} in the model's metadata")
        try:
            kwargs = json.loads(meta.get("adapool.kwargs", "{}"))
        except (ValueError, RecursionError) as e:
            raise UnsupportedModel(f"unreadable adapool.kwargs metadata: {type(e).__name__}") from None
        if not isinstance(kwargs, dict):
            raise UnsupportedModel("adapool.kwargs metadata must be a JSON object")
        inits = {i.name for i in model.graph.initializer}
        if OPS[op][0] == "fractional" and "_random_samples" in kwargs:   # JSON lists: the input's dtype again
            elem = model.graph.input[0].type.tensor_type.elem_type
            try:
                kwargs["_random_samples"] = np.asarray(kwargs["_random_samples"], _NP_DTYPES.get(elem, np.float64))
            except (TypeError, ValueError) as e:
                raise UnsupportedModel(f"unreadable _random_samples in adapool.kwargs: {e}") from None
        n_inputs = sum(i.name not in inits for i in model.graph.input)
        if n_inputs != (2 if OPS[op][0] == "unpool" else 1):   # max_unpool: values and indices
            raise UnsupportedModel(f"the model has {n_inputs} inputs; adapool's kernel computes one-input "
                                   "pooling models")
        return _Call(op, kwargs)
    nodes = [n for n in model.graph.node if n.op_type != "Identity"]
    if len(nodes) != 1 or len(model.graph.input) != 1:
        raise UnsupportedModel(
            f"the graph has {len(nodes)} computing nodes and {len(model.graph.input)} inputs; adapool's kernel "
            "computes models of one pooling call (exported by onnx_export, or one pooling node)")
    node = nodes[0]
    if node.domain == DOMAIN:
        try:
            op, kwargs = call_from_node(node)
        except ValueError as e:
            raise UnsupportedModel(str(e)) from None
        return _Call(op, kwargs)
    if node.domain not in ("", "ai.onnx") or node.op_type not in ("GlobalAveragePool", "GlobalMaxPool",
                                                                   "AveragePool", "MaxPool", "LpPool"):
        raise UnsupportedModel(f"adapool can't compute {node.domain + '.' if node.domain else ''}{node.op_type} nodes")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    spatial = [d.dim_value for d in dims[2:]] if all(d.HasField("dim_value") for d in dims[2:]) else None
    call = _standard_node(node, len(dims), spatial)
    if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
        call.mode = "crop+onnx_indices"
    return call


def _kernel(call: _Call) -> Callable:
    """A function input array -> list of outputs, computed by adapool's kernel."""
    def run(x, *more):   # more: max_unpool's indices
        if more:
            return _run_call(call, x, *more)
        if call.node is not None:   # a standard node: auto_pad and ceil_mode resolve at this size
            resolved = _standard_node(call.node, x.ndim, x.shape[2:])
            resolved.mode = call.mode if call.mode == "crop+onnx_indices" else resolved.mode
        else:
            resolved = call
        if resolved.p is None:
            return _run_call(resolved, x)
        # LpPool: (sum |x|^p)^(1/p), summed in float64
        (y,) = _run_call(resolved, np.abs(x.astype(np.float64)) ** resolved.p)
        if resolved.mode == "crop":
            y = y * float(np.prod(resolved.kwargs["kernel"]))   # a mean of the window: times its size
        return [(y ** (1.0 / resolved.p)).astype(x.dtype)]
    return run


def _run_call(call: _Call, x, *more) -> list:
    fn = getattr(adapool, call.op)
    if call.mode is None:
        y = fn(x, *more, **call.kwargs)
        return list(y) if isinstance(y, tuple) else [y]
    if call.mode == "unsqueeze":
        return [fn(x[..., None, :], **call.kwargs)[..., 0, :]]
    kernel = call.kwargs["kernel"]
    nd = len(kernel)
    spatial = x.shape[-nd:]
    out = [s // k for s, k in zip(spatial, kernel)]
    crop = x[(...,) + tuple(slice(0, o * k) for o, k in zip(out, kernel))]
    if "max" not in call.op:
        return [fn(crop, out)]
    y, idx = fn(crop, out, return_indices=True)
    if call.mode == "crop":
        return [y]
    # ONNX MaxPool's indices count over the whole tensor, in the uncropped input
    coords = np.unravel_index(idx, crop.shape[-nd:])
    flat = np.ravel_multi_index(coords, spatial)
    planes = np.arange(int(np.prod(x.shape[:-nd]))).reshape(x.shape[:-nd] + (1,) * nd)
    return [y, flat + planes * int(np.prod(spatial))]


# ---- inputs ---------------------------------------------------------------------------------

@dataclass
class _Input:
    name: str
    elem: int
    dims: list   # ints, and names (or None) for dynamic dims

    @property
    def dtype(self):
        try:
            return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(self.elem))
        except (KeyError, TypeError, ValueError):
            return None


def _inputs(model: onnx.ModelProto) -> list:
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    out = []
    for i in graph.input:
        if i.name in inits:
            continue
        if not i.type.HasField("tensor_type"):
            raise UnsupportedModel(f"input {i.name!r} is not a tensor")
        t = i.type.tensor_type
        dims = []
        for d in t.shape.dim:
            if d.HasField("dim_value"):
                if d.dim_value > 2**31:
                    raise UnsupportedModel(f"input dimension {d.dim_value} is too large to generate")
                dims.append(int(d.dim_value))
            else:
                dims.append(d.dim_param or None)
        out.append(_Input(i.name, t.elem_type, dims))
    if not out:
        raise UnsupportedModel("the model has no inputs to feed")
    return out


def _roles(rank: int, nd: int | None) -> list:
    """Which default sizes each axis gets: batch, channels, then spatial axes."""
    nd = max(rank - 2, 0) if nd is None else nd
    lead = rank - nd
    return (["batch", "channels"][max(2 - lead, 0):] + ["spatial"] * nd)[:rank] if lead <= 2 else \
        ["batch"] + ["channels"] * (lead - 1) + ["spatial"] * nd


def _dim_keys(inputs: list) -> list:
    """The dynamic dims, by name (an unnamed one is keyed by input and axis), first seen first."""
    keys = []
    for inp in inputs:
        for axis, d in enumerate(inp.dims):
            if not isinstance(d, int):
                key = d or f"{inp.name}:{axis}"
                if key not in keys:
                    keys.append(key)
    return keys


def _case_shapes(inputs: list, sizes: Mapping | None, nd: int | None, extra: int) -> list:
    """Per case, one concrete shape per input. Dynamic dims take ``sizes[name]`` in turn, else
    default sizes that differ from each other in each case (non-square, odd and even)."""
    keys = _dim_keys(inputs)
    sizes = dict(sizes or {})
    unknown = [k for k in sizes if k not in keys]
    if unknown:
        raise ValueError(f"sizes names {', '.join(map(repr, unknown))}, not a dynamic dim of the model "
                         f"(its dynamic dims: {', '.join(keys) or 'none'})")
    for k, v in sizes.items():
        if isinstance(v, int):
            sizes[k] = [v]
        if not sizes[k] or any(not isinstance(s, (int, np.integer)) or s < 0 for s in sizes[k]):
            raise ValueError(f"sizes[{k!r}] must be a non-empty list of non-negative ints")
    if not keys:
        return [tuple(tuple(inp.dims) for inp in inputs)]
    count = max((len(v) for v in sizes.values()), default=3)
    shapes = []
    for case in range(count):
        chosen = {}
        for inp in inputs:
            roles = _roles(len(inp.dims), nd)
            for axis, (d, role) in enumerate(zip(inp.dims, roles)):
                key = None if isinstance(d, int) else (d or f"{inp.name}:{axis}")
                if key is None or key in chosen:
                    continue
                if key in sizes:
                    chosen[key] = int(sizes[key][case % len(sizes[key])])
                else:
                    base = _DYNAMIC_SIZES[role]
                    chosen[key] = base[(case + axis) % len(base)] + (extra if role == "spatial" else 0)
        shapes.append(tuple(tuple(d if isinstance(d, int) else chosen[d or f"{inp.name}:{axis}"]
                                  for axis, d in enumerate(inp.dims)) for inp in inputs))
    return shapes


# Generated inputs and computed references stay below this many elements (2 GiB of float64).
INPUT_LIMIT = 2**28


def _elements(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _kernel_extra(call: _Call) -> tuple[int, int]:
    """(spatial rank, smallest dynamic size) for a pooling call: sizes at least a (dilated)
    kernel wide (avg_pool2d/3d reject smaller inputs, a max pool's dilated kernel must fit)."""
    nd = OPS[call.op][1] if call.mode != "unsqueeze" else 1
    kernel = call.kwargs.get("kernel_size") or call.kwargs.get("kernel") or [0]
    dilation = call.kwargs.get("dilation") or 1
    try:
        if not isinstance(kernel, (list, tuple)):
            kernel = [kernel]
        dilation = list(dilation) if isinstance(dilation, (list, tuple)) else [dilation] * len(kernel)
        extra = max((int(k) - 1) * int(d) + 1 for k, d in zip(kernel, dilation + [1] * len(kernel)))
    except (TypeError, ValueError):
        raise UnsupportedModel(f"malformed kernel size {kernel!r}") from None
    return nd, min(extra, INPUT_LIMIT)


def random_inputs(model: onnx.ModelProto, seed: int = 0, sizes: Mapping | None = None) -> list:
    """Feeds (dicts input name -> array) of the model's shapes, several sizes for each dynamic
    dim: normal data for float inputs, small non-negative ints for int64 inputs; for an adapool
    max pooling model also a copy with ties, NaN and -inf, which exercise torch's selection rules."""
    inputs = _inputs(model)
    try:
        call = _describe(model)
    except UnsupportedModel:
        call = None
    nd, extra = _kernel_extra(call) if call is not None else (None, 0)
    if call is not None and len(inputs[0].dims) < nd + 1:
        raise UnsupportedModel(f"input rank {len(inputs[0].dims)} is too small for {call.op}")
    for inp in inputs:
        if inp.elem not in _NP_DTYPES and inp.elem != onnx.TensorProto.INT64:
            name = onnx.TensorProto.DataType.Name(inp.elem) if inp.elem in onnx.TensorProto.DataType.values() \
                else str(inp.elem)
            raise UnsupportedModel(f"input {inp.name!r} has element type {name}; validate generates float16/32/64, "
                                   "bfloat16 and int64 inputs: pass inputs= (a list of dicts input name -> array)")
    rng = np.random.default_rng(seed)
    cases = []
    for shapes in _case_shapes(inputs, sizes, nd, extra):
        for s in shapes:
            if _elements(s) > INPUT_LIMIT:
                raise UnsupportedModel(f"an input of shape {list(s)} is too large to generate "
                                       f"(over {INPUT_LIMIT:,} elements); pass inputs= instead")
        feeds = {}
        for inp, s in zip(inputs, shapes):
            if inp.elem == onnx.TensorProto.INT64:
                feeds[inp.name] = rng.integers(0, 4, s, dtype=np.int64)
            else:
                feeds[inp.name] = rng.standard_normal(s).astype(_NP_DTYPES[inp.elem])
        cases.append(feeds)
        x = feeds[inputs[0].name]
        if call is not None and OPS[call.op][0] == "unpool":
            _unpool_inputs(model, feeds, [i.name for i in inputs], rng, cases)
            continue
        if call is not None and call.op.startswith("lp_pool") and x.size:
            _lp_inputs(feeds, inputs[0].name, call.kwargs.get("norm_type"), rng, cases)
            continue
        if call is not None and "max" in call.op and x.size:
            tricky = np.round(x * 2).astype(x.dtype)
            flat = tricky.reshape(-1)
            flat[rng.integers(0, flat.size, max(1, flat.size // 20))] = np.nan
            flat[rng.integers(0, flat.size, max(1, flat.size // 20))] = -np.inf
            cases.append({inputs[0].name: tricky})
    return cases


def _unpool_inputs(model, feeds: dict, names: list, rng, cases: list) -> None:
    """max_unpool's cases: indices torch accepts, per plane in [0, output plane size). First
    distinct ones (a random permutation's head, where the output plane has room), then repeats
    carrying one value each (what max pooling's overlapping windows give, where ONNX leaves the
    write order open), with NaN and ±inf among the values."""
    x_name, i_name = names
    x = feeds[x_name]
    call = _describe(model)
    nd = OPS[call.op][1]
    kw = call.kwargs   # the output size at this input's size (a dynamic graph's changes with it)
    out, _, _ = _unpool._output_size(call.op, nd, x.shape, kw["kernel_size"], kw.get("stride"), kw.get("padding", 0),
                                     kw.get("output_size"))
    n_in, n_out = _elements(x.shape[-nd:]), _elements(out)
    planes = _elements(x.shape[:-nd])
    if n_in <= n_out:
        idx = np.stack([rng.permutation(n_out)[:n_in] for _ in range(planes)]) if planes else \
            np.zeros((0, n_in), np.int64)
    else:
        idx = rng.integers(0, max(n_out, 1), (planes, n_in))
    feeds[i_name] = idx.reshape(x.shape).astype(np.int64)
    if not planes:   # an empty batch: nothing to repeat
        return
    repeats = rng.integers(0, max(n_out, 1), (planes, n_in)) if n_out else np.zeros((planes, n_in), np.int64)
    table = rng.standard_normal((planes, max(n_out, 1))).astype(x.dtype)
    flat = table.reshape(-1)
    flat[rng.integers(0, flat.size, max(1, flat.size // 20))] = np.nan
    flat[rng.integers(0, flat.size, max(1, flat.size // 20))] = -np.inf
    values = np.take_along_axis(table, repeats, axis=1)
    cases.append({x_name: values.reshape(x.shape), i_name: repeats.reshape(x.shape).astype(np.int64)})


def _odd_power(p) -> bool:
    return isinstance(p, (int, float)) and float(p).is_integer() and int(p) % 2 == 1


def _lp_inputs(feeds: dict, name: str, p, rng, cases: list) -> None:
    """lp_pool's cases: the normal data, and a copy with ties, zeros, NaN and ±inf. With an
    odd integer p, magnitudes only: signed powers cancel in a window's sum, where any other
    summation order (a MatMul's) gives a wholly different tiny sum."""
    x = feeds[name]
    if _odd_power(p):
        feeds[name] = x = np.abs(x)
    tricky = np.round(x * 2).astype(x.dtype)
    flat = tricky.reshape(-1)
    for value in (np.nan, np.inf, -np.inf if not _odd_power(p) else np.inf):
        flat[rng.integers(0, flat.size, max(1, flat.size // 20))] = value
    cases.append({name: tricky})


def _lp_tolerance(tolerance: Callable, p) -> Callable:
    """A result ``s ** (1/p)`` carries |1/p| times the relative error of the pooled sum ``s``
    (a different summation order): the relative tolerance grows with it."""
    scale = 1.0 if isinstance(p, (int, float)) and np.isinf(p) else 1.0 + abs(1.0 / float(p))

    def scaled(dtype):
        rtol, atol = tolerance(dtype)
        return rtol * scale, atol
    return scaled


def _given_inputs(inputs, specs: list) -> list:
    """``inputs=`` as a list of feeds, each checked against the model's inputs."""
    names = [s.name for s in specs]
    if isinstance(inputs, Mapping):
        cases = [dict(inputs)]
    elif isinstance(inputs, np.ndarray):
        cases = [{names[0]: inputs}]
    else:
        items = list(inputs)
        cases = [dict(x) if isinstance(x, Mapping) else {names[0]: x} for x in items]
        if len(names) > 1 and not all(isinstance(x, Mapping) for x in items):
            raise ValueError(f"the model has {len(names)} inputs ({', '.join(names)}): pass inputs as a list of "
                             "dicts input name -> array")
    out = []
    for feeds in cases:
        if set(feeds) != set(names):
            raise ValueError(f"inputs must name the model's inputs {names}, got {sorted(feeds)}")
        feeds = {n: np.asarray(feeds[n]) for n in names}
        for spec in specs:
            want = spec.dtype
            if want is not None and feeds[spec.name].dtype != want:
                what = "inputs" if len(specs) == 1 else f"input {spec.name!r}"
                raise ValueError(f"{what} must be {want}, like the model's input")
        out.append(feeds)
    return out


def _case_label(feeds: dict) -> tuple:
    shapes = tuple(tuple(np.shape(v)) for v in feeds.values())
    return shapes[0] if len(shapes) == 1 else shapes


# ---- the reference ----------------------------------------------------------------------------

def _check_output_size(call: _Call, x) -> None:
    """Refuse a reference whose output would be absurdly large before allocating it."""
    sizes = call.kwargs.get("output_size")
    if isinstance(sizes, (list, tuple)) and all(isinstance(s, int) or s is None for s in sizes):
        nd = OPS[call.op][1]
        out = [x.shape[len(x.shape) - nd + i] if s is None else s for i, s in enumerate(sizes)]
        total = _elements(x.shape[:len(x.shape) - nd]) * _elements([max(o, 0) for o in out])
        if total > INPUT_LIMIT:
            raise MemoryError(f"the output would be too large: {total:,} elements (over {INPUT_LIMIT:,})")


def _kernel_expected(call: _Call, cases: list) -> list:
    run = _kernel(call)
    try:
        xs = [list(feeds.values()) for feeds in cases]   # the input first; max_unpool's indices next
        for x in xs:
            _check_output_size(call, x[0])
        return [run(*x) for x in xs]
    except UnsupportedModel as e:
        raise UnsupportedModel(f"adapool rejects the inputs: {e}") from None
    except (ValueError, TypeError, MemoryError) as e:
        raise UnsupportedModel(f"adapool rejects the inputs: {type(e).__name__}: {e}") from None


def _runtime_expected(model, cases: list, name: str, why: UnsupportedModel | None):
    """The reference runtime's outputs, or UnsupportedModel when it can't give them."""
    rt = RUNTIME_TABLE[name]
    prefix = f"{why}; " if why else ""
    missing = rt.missing()
    if missing:
        raise UnsupportedModel(f"{prefix}and the reference runtime {name} is not available: {missing}")
    try:
        outs, used, _ = _run(rt, model, cases)
    except Exception as e:   # noqa: BLE001 (nothing to compare with: say why)
        raise UnsupportedModel(f"{prefix}and the reference runtime {name} can't run the model: {_first_line(e)}") \
            from None
    return outs, used


def _given_expected(expected, cases: list, n_outputs: int) -> list:
    expected = list(expected)
    if len(expected) != len(cases):
        raise ValueError(f"expected has {len(expected)} entries for {len(cases)} input cases")
    out = []
    for want in expected:
        want = [want] if isinstance(want, np.ndarray) else list(want)
        if len(want) != n_outputs:
            raise ValueError(f"expected holds {len(want)} outputs per case; the model has {n_outputs}")
        out.append([np.asarray(w) for w in want])
    return out


# ---- running and comparing --------------------------------------------------------------------

def _first_line(e: BaseException) -> str:
    """The line of an error that says what went wrong (OpenVINO's first lines say where)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    said = [line for line in lines if not line.startswith(("Exception from src/", "Check '"))]
    return (said or lines or [type(e).__name__])[0][:300]


def _run(rt, model: onnx.ModelProto, cases: list):
    """(outputs per case, provider, notes): a runtime that can't run model-local functions gets
    the model with them inlined."""
    notes = []
    if not rt.functions and len(model.functions):
        model = inline_functions(model)
        notes.append("functions inlined")
    outs, used = rt.run(model, cases)
    return outs, used, notes


def _known_fault(model: onnx.ModelProto, runtime: str, problem: str) -> str | None:
    """Faults of a runtime (SEMANTICS.md, and found here) that this model's nodes can hit."""
    if runtime != "onnx-reference":
        return None
    for node in model.graph.node:
        a = _attrs(node)
        if node.op_type == "MaxPool" and "zero-size array" in problem:
            return "ReferenceEvaluator's MaxPool drops NaN and crashes on an all-NaN window"
        if node.op_type == "GlobalMaxPool" and problem.startswith("shape"):
            return "ReferenceEvaluator's GlobalMaxPool drops an axis of rank-3 (1-d) input"
        if node.op_type == "AveragePool" and problem.startswith("NaN"):
            return "ReferenceEvaluator's AveragePool skips NaN inputs"
        if node.op_type == "AveragePool" and a.get("ceil_mode") and max(a.get("strides", [1])) >= 3:
            return "ReferenceEvaluator shifts AveragePool windows with ceil_mode and stride >= 3"
        if node.op_type == "MaxPool" and max(a.get("strides", [1])) == 1 and any(a.get("pads", [])):
            return "ReferenceEvaluator mis-reads MaxPool pads with stride 1"
    return None


def _compare(got: list, want: list, tolerance: Callable) -> tuple[float, float, str]:
    """(max abs err, max rel err, problem or ""): ints and NaN/inf positions exactly, floats
    within ``tolerance(dtype) -> (rtol, atol)``."""
    max_abs = max_rel = 0.0
    problem = ""
    if len(got) != len(want):
        return float("nan"), float("nan"), f"{len(got)} outputs, expected {len(want)}"
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        if g.shape != w.shape:
            return float("nan"), float("nan"), f"shape {list(g.shape)}, expected {list(w.shape)}"
        if not _is_float(w.dtype):
            if g.dtype != w.dtype or not np.array_equal(g, w):
                kind = "indices" if w.dtype == np.int64 else "values"
                problem = problem or (f"{int(np.sum(g != w))} {kind} differ" if g.dtype.kind == w.dtype.kind
                                      else f"dtype {g.dtype}, expected {w.dtype}")
            continue
        rtol, atol = tolerance(w.dtype)
        g64, w64 = g.astype(np.float64), w.astype(np.float64)
        if not np.array_equal(np.isnan(g64), np.isnan(w64)):
            problem = problem or f"NaN in {int(np.sum(np.isnan(g64) != np.isnan(w64)))} places differs"
        finite = np.isfinite(w64) & np.isfinite(g64)
        if not np.array_equal(g64[~finite & ~np.isnan(w64)], w64[~finite & ~np.isnan(w64)]):
            problem = problem or "infinities differ"
        if finite.any():
            err = np.abs(g64[finite] - w64[finite])
            max_abs = max(max_abs, float(err.max()))
            tiny = float(np.finfo(np.float32 if w.dtype == BFLOAT16 else w.dtype).tiny)   # bfloat16's is float32's
            max_rel = max(max_rel, float((err / np.maximum(np.abs(w64[finite]), tiny)).max()))
            if np.any(err > atol + rtol * np.abs(w64[finite])):
                problem = problem or f"beyond rtol={rtol:g}, atol={atol:g}"
    return max_abs, max_rel, problem


def _is_float(dtype) -> bool:
    """NumPy's float kinds, and bfloat16 (ml_dtypes' dtypes are of kind "V")."""
    return dtype.kind == "f" or dtype == BFLOAT16


def _holds_bfloat16(model: onnx.ModelProto) -> bool:
    """Whether any top-level value is bfloat16, or a Cast makes one."""
    g = model.graph
    values = list(g.input) + list(g.output) + list(g.value_info)
    return any(v.type.tensor_type.elem_type == onnx.TensorProto.BFLOAT16 for v in values) or any(
        n.op_type == "Cast" and _attrs(n).get("to") == onnx.TensorProto.BFLOAT16 for n in g.node)


def _computes_float64(model: onnx.ModelProto) -> bool:
    values = list(model.graph.input) + list(model.graph.output) + list(model.graph.value_info)
    if any(v.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE for v in values):
        return True
    if any(i.data_type == onnx.TensorProto.DOUBLE for i in model.graph.initializer):
        return True
    return any(n.op_type == "Cast" and _attrs(n).get("to") == onnx.TensorProto.DOUBLE for n in model.graph.node)


def _float32_explains(got: list, want: list, feeds: dict, tolerance: Callable) -> bool:
    """Whether got differs from want only as float32 arithmetic would: values beyond float32's
    range or non-finite in the reference (inf saturated, NaN lost), non-finite results where the
    input itself holds such values, and float32-sized rounding elsewhere."""
    extreme = any(v.dtype.kind == "f" and v.size and not np.all(np.abs(v.astype(np.float64)) <= _F32_MAX)
                  for v in map(np.asarray, feeds.values()))
    rtol, atol = tolerance(np.dtype(np.float32))
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        if g.shape != w.shape:
            return False
        if w.dtype.kind != "f":
            if not np.array_equal(g, w):
                return False
            continue
        g64, w64 = g.astype(np.float64), w.astype(np.float64)
        excused = ~np.isfinite(w64) | (np.abs(w64) > _F32_MAX)
        if extreme:
            excused |= ~np.isfinite(g64) | (np.abs(g64) >= _F32_MAX)
        rest = ~excused
        if not np.all(np.isfinite(g64[rest])):
            return False
        if np.any(np.abs(g64[rest] - w64[rest]) > atol + rtol * np.abs(w64[rest])):
            return False
    return True


def _row(label: str, name: str, model, cases: list, expected: list, tolerance: Callable) -> Row:
    """Run ``model`` under runtime ``name`` on every case and compare with ``expected``."""
    rt = RUNTIME_TABLE[name]
    missing = rt.missing()
    if missing:
        return Row(label, status="skipped", detail=missing)
    try:
        outs, used, notes = _run(rt, model, cases)
    except RuntimeSkipped as e:
        return Row(label, status="skipped", detail=str(e))
    except MixedProviders as e:
        return Row(label, provider="mixed", status="failed", detail=str(e))
    except Exception as e:   # a runtime refusing the graph is a result, not a crash
        msg = _first_line(e)
        if name in _BFLOAT16_REFUSED and _holds_bfloat16(model):
            return Row(label, status="limitation", detail=f"{_BFLOAT16_REFUSED[name]} ({msg[:200]})")
        fault = _known_fault(model, name, "crash: " + msg)
        return Row(label, status="known fault" if fault else "failed",
                   detail=f"{fault} ({msg[:200]})" if fault else msg)
    row = Row(label, provider=used)
    bad = None
    for i, (got, want) in enumerate(zip(outs, expected)):
        a, r, problem = _compare(got, want, tolerance)
        row.max_abs = a if row.max_abs != row.max_abs else max(row.max_abs, a)
        row.max_rel = r if row.max_rel != row.max_rel else max(row.max_rel, r)
        if problem and bad is None:
            bad = (i, problem)
    details = list(notes)
    if bad is not None:
        i, problem = bad
        fault = _known_fault(model, name, problem)
        if fault:
            row.status, details = "known fault", [f"{fault} ({problem})"] + details
        elif name.startswith("openvino") and _computes_float64(model) and all(
                _float32_explains(g, w, f, tolerance) for g, w, f in zip(outs, expected, cases)):
            row.status, details = "limitation", [f"{_OPENVINO_F64} ({problem})"] + details
        else:
            row.status, details = "mismatch", [problem] + details
            row.first_divergence = _localize(model, name, cases[i], tolerance)
    row.detail = "; ".join(details)
    return row


# ---- where a runtime diverges -----------------------------------------------------------------

def _trusted_for(name: str) -> str | None:
    ort_ok = RUNTIME_TABLE["onnxruntime-cpu"].missing() is None
    if name != "onnxruntime-cpu" and ort_ok:
        return "onnxruntime-cpu"
    return "onnx-reference" if name != "onnx-reference" else None


def _expose_intermediates(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with every top-level intermediate value whose type shape inference knows added
    as a graph output (values inside If/Loop bodies stay hidden)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v for v in inferred.graph.value_info if v.type.tensor_type.elem_type}
    exposed = onnx.ModelProto.FromString(model.SerializeToString())
    seen = {o.name for o in exposed.graph.output}
    for node in exposed.graph.node:
        for out in node.output:
            if out and out not in seen and out in types:
                exposed.graph.output.append(types[out])
                seen.add(out)
    return exposed


def _localize(model: onnx.ModelProto, name: str, feeds: dict, tolerance: Callable) -> str:
    """The first node (graph order) whose output differs between runtime ``name`` and a trusted
    runtime, beyond tolerance or in its NaN/inf pattern."""
    trusted = _trusted_for(name)
    if trusted is None:
        return ""
    rt = RUNTIME_TABLE[name]
    if not rt.functions and len(model.functions):
        model = inline_functions(model)   # the nodes the failing runtime ran
    try:
        exposed = _expose_intermediates(model)
        names = [o.name for o in exposed.graph.output]
        got = dict(zip(names, _run(rt, exposed, [feeds])[0][0]))
        want = dict(zip(names, _run(RUNTIME_TABLE[trusted], exposed, [feeds])[0][0]))
    except Exception as e:   # noqa: BLE001 (localizing is a bonus: say why it could not be done)
        return f"could not localize ({_first_line(e)[:150]})"
    for index, node in enumerate(model.graph.node):
        for out in node.output:
            if out not in got or out not in want:
                continue
            a, _, problem = _compare([got[out]], [want[out]], tolerance)
            if problem:
                what = f"max abs err {a:.3g}" if a == a else problem
                if problem.startswith(("NaN", "infinities")):
                    what += f" ({problem})"
                return f"node {node.name or '#' + str(index)} ({node.op_type}): {what} vs {trusted}"
    return f"{_AGREE} (checked against {trusted})"


# ---- validate ---------------------------------------------------------------------------------

def _names(runtimes) -> list:
    names = list(runtimes) if runtimes else list(DEFAULT_RUNTIMES)
    for rt in names:
        if rt not in RUNTIME_TABLE:
            raise ValueError(f"unknown runtime {rt!r}; choose from {', '.join(RUNTIME_TABLE)}")
    return names


def _optimizers(optimize) -> list:
    names = [] if not optimize else [optimize] if isinstance(optimize, str) else list(optimize)
    for name in names:
        if name not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    return names


def _tolerance(table: dict, rtol, atol) -> Callable:
    def tolerance(dtype):
        default_rtol, default_atol = table.get(np.dtype(dtype), table[np.dtype(np.float64)])
        return (default_rtol if rtol is None else rtol), (default_atol if atol is None else atol)
    return tolerance


def validate(model: onnx.ModelProto | bytes | str | os.PathLike,
             inputs: npt.ArrayLike | Sequence[npt.ArrayLike] | Sequence[Mapping[str, npt.ArrayLike]] | None = None,
             *, runtimes: Sequence[str] | None = None, rtol: float | None = None, atol: float | None = None,
             reference: str | None = None, expected: Sequence[Sequence[npt.ArrayLike]] | None = None,
             sizes: Mapping[str, Sequence[int]] | None = None,
             optimize: str | Sequence[str] | None = None) -> Report:
    """Run ``model`` under every available runtime and compare each with a reference.

    The reference is, in this order: ``expected`` when given; adapool's kernel when the model is
    one adapool call (written by ``export``, or one pooling node); else the runtime named by
    ``reference``.

    torch equivalent: none (``onnx_export.torch.validate_torch`` compares with torch eager).

    Parameters
    ----------
    model : onnx.ModelProto, bytes or path
        Any ONNX model. Exported by ``onnx_export.export``, or one GlobalAveragePool,
        GlobalMaxPool, AveragePool, MaxPool, LpPool or adapool-domain node, it is compared with
        adapool's kernel; anything else with the reference runtime.
    inputs : array, list of arrays, or list of dicts, optional
        Input cases: arrays for a one-input model, dicts input name -> array for any model, in
        the inputs' dtypes. Default: random inputs of the graph's shapes (normal data for float
        inputs, small non-negative ints for int64 ones), three sizes for each dynamic dimension
        (plus inputs with ties, NaN and -inf for max pooling).
    runtimes : sequence of str, optional
        Names from ``onnx_export._runtimes.RUNTIMES``: "onnxruntime-cpu", "onnxruntime-cuda",
        "openvino", "openvino-default", "tract", "onnx-reference". Default: all but
        "openvino-default". The CUDA run is strict: only CUDAExecutionProvider, CPU fallback
        disabled, and every node's provider read back from profiling. OpenVINO runs in f32
        precision ("openvino-default": the plugin's own, bf16/f16 on some CPUs). OpenVINO and
        tract get model-local functions inlined first.
    rtol, atol : float, optional
        Override the per-dtype tolerances (``TOLERANCES`` against adapool's kernel,
        ``MODEL_TOLERANCES`` against a runtime or ``expected``). Integer outputs and NaN
        positions must always match exactly.
    reference : str, optional
        The runtime whose outputs are the reference when adapool can't compute the model
        (default "onnxruntime-cpu"). Its own row then says "reference".
    expected : list of lists of arrays, optional
        Expected outputs: per input case, one array per graph output. Needs ``inputs``.
    sizes : dict, optional
        Dynamic dimension name -> sizes to try for it (case ``i`` takes the ``i``-th, cycling);
        dims not named get the default sizes.
    optimize : str or list of str, optional
        Names from ``OPTIMIZERS`` ("onnxsim", "onnxslim", "onnxoptimizer"): also run each
        optimized graph under every runtime, in rows labelled "onnxsim → onnxruntime-cpu".

    Returns
    -------
    Report
        One row per runtime asked for (and per optimized variant); a runtime that is missing is
        "skipped" (with how to install it), one that refuses or crashes on the graph is
        "failed", documented faults of the reference evaluator are "known fault", OpenVINO's
        float32 arithmetic on a float64 model is a "limitation"; a model ``export`` built for
        some targets only fails or disagrees on the others as "not a target" (shown, not
        counted). A mismatch names the first node
        whose output diverges (``Row.first_divergence``). ``report.ok`` says whether the model
        agreed.

    Raises
    ------
    UnsupportedModel
        (A ValueError.) The model can't be read; or adapool can't compute it and the reference
        runtime is missing or can't run it either; or adapool rejects the inputs; or inputs
        can't be generated (an input that is not float or int64: pass ``inputs``).
    ValueError
        ``inputs`` of another dtype than the model's inputs or missing an input; ``expected``
        without ``inputs`` or of the wrong length; an unknown runtime, optimizer or dynamic
        dimension name in ``sizes``.
    ImportError
        An optimizer in ``optimize`` is not installed.
    """
    model = _load(model)
    names, optimizers = _names(runtimes), _optimizers(optimize)
    ref_name = reference or "onnxruntime-cpu"
    if ref_name not in RUNTIME_TABLE:
        raise ValueError(f"unknown reference runtime {ref_name!r}; choose from {', '.join(RUNTIME_TABLE)}")
    if expected is not None and inputs is None:
        raise ValueError("expected outputs need the inputs they were computed from (inputs=)")
    call, why = None, None
    if expected is None:
        try:
            call = _describe(model)
        except UnsupportedModel as e:
            if any(p.key == "adapool.op" for p in model.metadata_props):
                raise   # it says it is adapool's call, and its record of the call is broken
            why = e
    try:
        specs = _inputs(model)
        cases = random_inputs(model, sizes=sizes) if inputs is None else _given_inputs(inputs, specs)
    except UnsupportedModel as e:
        # say first why adapool's kernel can't be the reference, when it can't
        raise UnsupportedModel(f"{why}; {e}" if why and str(why) not in str(e) else str(e)) from None
    ref_row = None
    if expected is not None:
        want, label, table = _given_expected(expected, cases, len(model.graph.output)), "expected outputs", \
            MODEL_TOLERANCES
    else:
        want, label, table = None, f"adapool kernel ({call.op})" if call else "", TOLERANCES
        if call is not None:
            try:
                want = _kernel_expected(call, cases)
            except UnsupportedModel as e:
                if call.node is None:
                    raise
                why = e   # a pooling node adapool can't express at some size (auto_pad, ceil_mode)
    if want is None:
        want, used = _runtime_expected(model, cases, ref_name, why)
        label, table = f"runtime {ref_name}", MODEL_TOLERANCES
        ref_row = Row(ref_name, provider=used, status="reference", detail="the reference")
    tolerance = _tolerance(table, rtol, atol)
    if call is not None and call.op.startswith("lp_pool") and rtol is None and table is TOLERANCES:
        tolerance = _lp_tolerance(tolerance, call.kwargs.get("norm_type"))
    rows = []
    for prefix, variant in [("", model)] + [(opt, None) for opt in optimizers]:
        if prefix:
            variant, why_not = _optimized(model, prefix)
            if variant is None:
                rows.extend(Row(f"{prefix} → {name}", status=why_not[0], detail=why_not[1]) for name in names)
                continue
        for name in names:
            if ref_row is not None and not prefix and name == ref_name:
                rows.append(ref_row)
                continue
            rows.append(_row(f"{prefix} → {name}" if prefix else name, name, variant, cases, want, tolerance))
    _untargeted(model, rows)
    return Report(rows, [_case_label(c) for c in cases], reference=label)


# the export target (onnx_export.export's targets=) each runtime row belongs to
_TARGET_OF = {"onnxruntime-cpu": "onnxruntime", "onnxruntime-cuda": "onnxruntime", "openvino": "openvino",
              "openvino-default": "openvino", "tract": "tract"}


def _untargeted(model: onnx.ModelProto, rows: list) -> None:
    """A model exported for some targets only (``adapool.targets`` metadata): a runtime outside
    them that fails or disagrees is shown as "not a target", not counted against the model."""
    meta = {p.key: p.value for p in model.metadata_props}
    value = meta.get("adapool.targets")
    if not isinstance(value, str):   # absent, or not UTF-8 (protobuf hands back bytes): count them all
        return
    targets = set(value.split(","))
    for r in rows:
        target = _TARGET_OF.get(r.runtime.split(" → ")[-1])
        if target is not None and target not in targets and r.status in ("failed", "mismatch"):
            r.detail = f"exported for {', '.join(sorted(targets))} only; {r.status}: {r.detail}"
            r.status = "not a target"


def _optimized(model: onnx.ModelProto, name: str):
    """(optimized model, None), or (None, (status, why)): a missing optimizer is skipped, one
    that fails on the graph is a failure of every row of that variant."""
    missing = OPTIMIZERS[name].missing()
    if missing:
        return None, ("skipped", missing)
    try:
        return run_optimizer(model, name), None
    except Exception as e:   # noqa: BLE001 (an optimizer breaking on the graph is a result)
        return None, ("failed", f"{name} failed: {_first_line(e)}")


def _load(model) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    try:
        if isinstance(model, bytes):
            return onnx.load_from_string(model)
        return onnx.load(os.fspath(model))
    except (OSError, ValueError) as e:
        raise UnsupportedModel(f"can't read the model: {e}") from None
    except Exception as e:   # protobuf's DecodeError and friends
        raise UnsupportedModel(f"not an ONNX model: {type(e).__name__}: {e}") from None
