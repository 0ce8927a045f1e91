"""Run a model under every available runtime and compare each with adapool's kernel."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import onnx

import adapool

from ._builder import DOMAIN
from ._strategies import call_from_node
from ._spec import OPS

# Tolerances against adapool's kernel, per dtype: a few ulps of the result for float16 (both
# round once from float32), sum-order differences of float32/float64 sums.
TOLERANCES = {
    np.dtype(np.float16): (2e-3, 1e-3),
    np.dtype(np.float32): (2e-5, 2e-6),
    np.dtype(np.float64): (1e-12, 1e-13),
}
# Sizes tried for each dynamic dimension: batch, channels, spatial (odd and even, non-divisible).
_DYNAMIC_SIZES = {"batch": (2, 1, 3), "channels": (3, 2, 5), "spatial": (11, 16, 23)}
_NP_DTYPES = {onnx.TensorProto.FLOAT16: np.float16, onnx.TensorProto.FLOAT: np.float32,
              onnx.TensorProto.DOUBLE: np.float64}


class UnsupportedModel(ValueError):
    """The model holds something adapool can't compute, so there is nothing to compare with."""


@dataclass
class Row:
    runtime: str
    provider: str = "-"
    max_abs: float = float("nan")
    max_rel: float = float("nan")
    status: str = "ok"      # ok, mismatch, failed, skipped, known fault
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status in ("ok", "skipped", "known fault")


@dataclass
class Report:
    """What :func:`validate` found: one row per runtime.

    ``ok`` is True when every runtime that ran agreed with the kernel and at least one did
    (skipped runtimes and known faults of a runtime are shown, not counted as failures).
    ``str(report)`` is a table of the rows, the input shapes, and OK or FAILED.

    torch equivalent: none.

    Attributes
    ----------
    rows : list of Row
        Per runtime: ``runtime``, ``provider``, ``max_abs`` and ``max_rel`` (largest absolute
        and relative errors against the kernel, NaN when nothing was compared), ``status``
        ("ok", "mismatch", "failed", "skipped" or "known fault") and ``detail`` (why).
    cases : list of tuple
        The input shapes that were compared.
    """
    rows: list[Row]
    cases: list[tuple] = field(default_factory=list)   # input shapes that were compared

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.rows) and any(r.status == "ok" for r in self.rows)

    def row(self, runtime: str) -> Row:
        return next(r for r in self.rows if r.runtime == runtime)

    def __str__(self) -> str:
        head = ("runtime", "provider", "max abs err", "max rel err", "status")
        body = [(r.runtime, r.provider, _fmt(r.max_abs), _fmt(r.max_rel),
                 r.status + (f": {r.detail}" if r.detail else "")) for r in self.rows]
        widths = [max(len(str(x[i])) for x in [head] + body) for i in range(4)]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4]
                 for row in [head] + body]
        lines.insert(1, "-" * len(lines[0]))
        cases = ", ".join("x".join(map(str, c)) for c in self.cases)
        lines.append(f"inputs: {cases}" if cases else "inputs: none")
        lines.append("OK" if self.ok else "FAILED")
        return "\n".join(lines)


def _fmt(v: float) -> str:
    return "-" if v != v else f"{v:.3g}"


# ---- what the model computes, in adapool's terms -----------------------------------------------

def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _standard_node(node, rank: int):
    """A single standard pooling node as an adapool call (op, kwargs, index fix-up)."""
    nd = rank - 2
    a = _attrs(node)
    if nd not in (1, 2, 3):
        raise UnsupportedModel(f"{node.op_type} on a rank-{rank} input has no adapool equivalent")
    if node.op_type == "GlobalAveragePool":
        return f"adaptive_avg_pool{nd}d", {"output_size": [1] * nd}, None
    if node.op_type == "GlobalMaxPool":
        return f"adaptive_max_pool{nd}d", {"output_size": [1] * nd}, None
    try:
        kernel = [int(v) for v in a.get("kernel_shape", [])]
        strides = [int(v) for v in a.get("strides", [1] * nd)]
        pads = [int(v) for v in a.get("pads", [0] * 2 * nd)]
        ceil_mode, include_pad = int(a.get("ceil_mode", 0)), int(a.get("count_include_pad", 0))
        dilations = [int(v) for v in a.get("dilations", [1] * nd)]
    except (TypeError, ValueError):
        raise UnsupportedModel(f"{node.op_type} node: kernel_shape, strides, pads and dilations must be "
                               "lists of ints, ceil_mode and count_include_pad ints") from None
    if len(kernel) != nd or len(strides) != nd or len(pads) != 2 * nd or min(kernel + strides) < 1 or min(pads) < 0:
        raise UnsupportedModel(f"{node.op_type} node on a rank-{rank} input needs {nd} positive kernel_shape "
                               f"and strides entries (kernel_size) and {2 * nd} non-negative pads")
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or any(d != 1 for d in dilations):
        raise UnsupportedModel(f"{node.op_type} with auto_pad or dilations has no adapool equivalent")
    if pads[:nd] != pads[nd:]:
        raise UnsupportedModel(f"{node.op_type} with asymmetric pads has no adapool equivalent")
    if node.op_type == "AveragePool" and nd == 2:
        return "avg_pool2d", {"kernel_size": kernel, "stride": strides, "padding": pads[:2],
                              "ceil_mode": bool(ceil_mode), "count_include_pad": bool(include_pad)}, None
    if kernel == strides and not any(pads) and not ceil_mode and a.get("storage_order", 0) == 0:
        # non-overlapping windows: adaptive pooling of the part of the input the windows cover
        kind = "avg" if node.op_type == "AveragePool" else "max"
        return f"adaptive_{kind}_pool{nd}d", {"kernel": kernel}, "crop"
    raise UnsupportedModel(f"{node.op_type} with these attributes has no adapool equivalent")


def _describe(model: onnx.ModelProto):
    """(op, kwargs, mode) for the call the model computes: from export's metadata, or from a
    graph that is one pooling node (standard or adapool-domain)."""
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
        return op, kwargs, None
    nodes = [n for n in model.graph.node if n.op_type != "Identity"]
    if len(nodes) != 1 or len(model.graph.input) != 1:
        raise UnsupportedModel(
            f"the graph has {len(nodes)} computing nodes and {len(model.graph.input)} inputs; "
            "adapool compares models of one pooling call (exported by onnx_export, or one pooling node)")
    node = nodes[0]
    if node.domain == DOMAIN:
        try:
            op, kwargs = call_from_node(node)
        except ValueError as e:
            raise UnsupportedModel(str(e)) from None
        return op, kwargs, None
    if node.domain not in ("", "ai.onnx") or node.op_type not in ("GlobalAveragePool", "GlobalMaxPool",
                                                                   "AveragePool", "MaxPool"):
        raise UnsupportedModel(f"adapool can't compute {node.domain + '.' if node.domain else ''}{node.op_type} nodes")
    rank = len(model.graph.input[0].type.tensor_type.shape.dim)
    op, kw, mode = _standard_node(node, rank)
    if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
        mode = "crop+onnx_indices"
    return op, kw, mode


def _reference(model: onnx.ModelProto):
    """A function input -> list of outputs, computed by adapool's kernels."""
    op, kwargs, mode = _describe(model)
    fn = getattr(adapool, op)
    if mode is None:
        def run(x):
            y = fn(x, **kwargs)
            return list(y) if isinstance(y, tuple) else [y]
        return run
    kernel = kwargs["kernel"]
    nd = len(kernel)

    def run_cropped(x):
        spatial = x.shape[-nd:]
        out = [s // k for s, k in zip(spatial, kernel)]
        crop = x[(...,) + tuple(slice(0, o * k) for o, k in zip(out, kernel))]
        if "max" not in op:
            return [fn(crop, out)]
        y, idx = fn(crop, out, return_indices=True)
        if mode == "crop":
            return [y]
        # ONNX MaxPool's indices count over the whole tensor, in the uncropped input
        coords = np.unravel_index(idx, crop.shape[-nd:])
        flat = np.ravel_multi_index(coords, spatial)
        planes = np.arange(int(np.prod(x.shape[:-nd]))).reshape(x.shape[:-nd] + (1,) * nd)
        return [y, flat + planes * int(np.prod(spatial))]
    return run_cropped


# ---- inputs ---------------------------------------------------------------------------------

def _input_info(model: onnx.ModelProto):
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise UnsupportedModel(f"the model has {len(inputs)} inputs; adapool compares one-input pooling models")
    if not inputs[0].type.HasField("tensor_type"):
        raise UnsupportedModel(f"input {inputs[0].name!r} is not a tensor")
    t = inputs[0].type.tensor_type
    if t.elem_type not in _NP_DTYPES:
        raise UnsupportedModel(f"input {inputs[0].name!r} has element type "
                               f"{onnx.TensorProto.DataType.Name(t.elem_type)}; adapool computes float16/32/64")
    dims = []
    for d in t.shape.dim:
        if d.HasField("dim_value"):
            if d.dim_value > 2**31:
                raise UnsupportedModel(f"input dimension {d.dim_value} is too large to generate")
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or None)
    return inputs[0].name, np.dtype(_NP_DTYPES[t.elem_type]), dims


def _shapes(dims: list, nd: int, extra: int = 0) -> list:
    """Three concrete shapes for a shape with dynamic dims; spatial axes get different sizes
    from each other in each case (non-square, odd and even)."""
    if all(isinstance(d, int) for d in dims):
        return [tuple(dims)]
    lead = len(dims) - nd
    roles = ["batch", "channels"][2 - lead:] + ["spatial"] * nd
    shapes = []
    for case in range(3):
        shape = []
        for axis, (d, role) in enumerate(zip(dims, roles)):
            sizes = _DYNAMIC_SIZES[role]
            size = sizes[(case + axis) % len(sizes)] + (extra if role == "spatial" else 0)
            shape.append(d if isinstance(d, int) else size)
        shapes.append(tuple(shape))
    return shapes


# Generated inputs and computed references stay below this many elements (2 GiB of float64).
INPUT_LIMIT = 2**28


def _elements(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def random_inputs(model: onnx.ModelProto, seed: int = 0) -> list:
    """Inputs of the model's shape (several sizes for each dynamic dim): normal data, and for
    max pooling a copy with ties, NaN and -inf, which exercise torch's selection rules."""
    name, dtype, dims = _input_info(model)
    op, kwargs, _ = _describe(model)
    nd = OPS[op][1]
    if len(dims) < nd + 1:
        raise UnsupportedModel(f"input rank {len(dims)} is too small for {op}")
    # dynamic sizes at least a kernel wide (avg_pool2d rejects smaller inputs)
    kernel = kwargs.get("kernel_size") or kwargs.get("kernel") or [0]
    try:
        extra = max(int(k) for k in kernel) if isinstance(kernel, (list, tuple)) else int(kernel)
    except (TypeError, ValueError):
        raise UnsupportedModel(f"malformed kernel size {kernel!r}") from None
    rng = np.random.default_rng(seed)
    cases = []
    for shape in _shapes(dims, nd, min(extra, INPUT_LIMIT)):
        if _elements(shape) > INPUT_LIMIT:
            raise UnsupportedModel(f"an input of shape {list(shape)} is too large to generate "
                                   f"(over {INPUT_LIMIT:,} elements); pass inputs= instead")
        x = rng.standard_normal(shape).astype(dtype)
        cases.append(x)
        if "max" in op and x.size:
            tricky = np.round(x * 2).astype(dtype)
            flat = tricky.reshape(-1)
            flat[rng.integers(0, flat.size, max(1, flat.size // 20))] = np.nan
            flat[rng.integers(0, flat.size, max(1, flat.size // 20))] = -np.inf
            cases.append(tricky)
    return cases


# ---- runtimes -------------------------------------------------------------------------------

def _ort_session(model_bytes: bytes, provider: str, profile_dir: str | None = None):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if provider == "CUDAExecutionProvider":
        # strict: no silent CPU fallback, and profiling says where each node ran
        opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(profile_dir, "adapool")
    return ort.InferenceSession(model_bytes, sess_options=opts, providers=[provider])


def _profile_providers(path: str) -> set:
    with open(path) as f:
        events = json.load(f)
    return {e.get("args", {}).get("provider") for e in events
            if e.get("cat") == "Node" and e.get("args", {}).get("provider")}


def _run_ort(model_bytes, input_name, cases, provider):
    import onnxruntime as ort
    if provider not in ort.get_available_providers():
        how = "pip install onnxruntime-gpu (instead of onnxruntime) on a machine with CUDA"
        return None, f"{provider} not available in this onnxruntime ({how})", None
    with tempfile.TemporaryDirectory() as tmp:
        sess = _ort_session(model_bytes, provider, tmp)
        outs = [sess.run(None, {input_name: x}) for x in cases]
        used = sess.get_providers()[0]
        if provider == "CUDAExecutionProvider":
            providers = _profile_providers(sess.end_profiling())
            if providers - {"CUDAExecutionProvider"}:
                return outs, None, "nodes ran on " + ", ".join(sorted(providers))
            used = "CUDAExecutionProvider (every node, from profiling)"
    return outs, None, used


def _run_reference_evaluator(model: onnx.ModelProto, input_name, cases):
    from onnx.reference import ReferenceEvaluator
    sess = ReferenceEvaluator(model)
    return [sess.run(None, {input_name: x}) for x in cases], None, "onnx.reference"


RUNTIMES = ("onnxruntime-cpu", "onnxruntime-cuda", "onnx-reference")


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


def _compare(got: list, want: list, dtype, rtol: float, atol: float) -> tuple[float, float, str]:
    max_abs = max_rel = 0.0
    problem = ""
    for g, w in zip(got, want):
        g = np.asarray(g)
        if g.shape != w.shape:
            return float("nan"), float("nan"), f"shape {list(g.shape)}, expected {list(w.shape)}"
        if w.dtype == np.int64:
            if g.dtype != np.int64 or not np.array_equal(g, w):
                problem = problem or f"{int(np.sum(g != w))} indices differ"
            continue
        g64, w64 = g.astype(np.float64), w.astype(np.float64)
        if not np.array_equal(np.isnan(g64), np.isnan(w64)):
            problem = problem or f"NaN in {int(np.sum(np.isnan(g64) != np.isnan(w64)))} places differs"
        finite = np.isfinite(w64) & np.isfinite(g64)
        if not np.array_equal(g64[~finite & ~np.isnan(w64)], w64[~finite & ~np.isnan(w64)]):
            problem = problem or "infinities differ"
        if finite.any():
            err = np.abs(g64[finite] - w64[finite])
            max_abs = max(max_abs, float(err.max()))
            max_rel = max(max_rel, float((err / np.maximum(np.abs(w64[finite]), np.finfo(dtype).tiny)).max()))
            if np.any(err > atol + rtol * np.abs(w64[finite])):
                problem = problem or f"beyond rtol={rtol:g}, atol={atol:g}"
    return max_abs, max_rel, problem


def _check_output_size(model, x) -> None:
    """Refuse a reference whose output would be absurdly large before allocating it."""
    op, kwargs, _ = _describe(model)
    sizes = kwargs.get("output_size")
    if isinstance(sizes, (list, tuple)) and all(isinstance(s, int) or s is None for s in sizes):
        nd = OPS[op][1]
        out = [x.shape[len(x.shape) - nd + i] if s is None else s for i, s in enumerate(sizes)]
        total = _elements(x.shape[:len(x.shape) - nd]) * _elements([max(o, 0) for o in out])
        if total > INPUT_LIMIT:
            raise MemoryError(f"the output would be too large: {total:,} elements (over {INPUT_LIMIT:,})")


def validate(model: onnx.ModelProto | bytes | str | os.PathLike,
             inputs: npt.ArrayLike | Sequence[npt.ArrayLike] | None = None, *,
             runtimes: Sequence[str] | None = None, rtol: float | None = None,
             atol: float | None = None) -> Report:
    """Run ``model`` under every available runtime and compare each with adapool's kernel.

    torch equivalent: none.

    Parameters
    ----------
    model : onnx.ModelProto, bytes or path
        A model exported by ``onnx_export.export``, or one whose graph is one pooling node
        (GlobalAveragePool, GlobalMaxPool, AveragePool, MaxPool or an adapool-domain op).
    inputs : array or list of arrays, optional
        In the model input's dtype. Default: random inputs of the graph's shape, three sizes
        for each dynamic dimension (plus inputs with ties, NaN and -inf for max pooling).
    runtimes : sequence of str, optional
        Any of "onnxruntime-cpu", "onnxruntime-cuda", "onnx-reference" (default: all).
        The CUDA run is strict: only CUDAExecutionProvider, CPU fallback disabled, and every
        node's provider read back from profiling.
    rtol, atol : float, optional
        Override the per-dtype tolerances (``TOLERANCES``). Indices and NaN positions must
        always match exactly.

    Returns
    -------
    Report
        One row per runtime asked for; a runtime that is missing is "skipped", one that
        refuses or crashes on the graph is "failed" (both with the reason), documented faults
        of the reference evaluator are "known fault". ``report.ok`` says whether the model
        agreed.

    Raises
    ------
    UnsupportedModel
        (A ValueError.) The model can't be read, or is not one adapool can compute (not from
        ``export`` and not one pooling node, attributes with no adapool equivalent, more than
        one input, an input that is not float16/32/64), or adapool rejects the inputs.
    ValueError
        ``inputs`` of another dtype than the model's input; an unknown runtime name.
    """
    model = _load(model)
    run = _reference(model)
    name, dtype, _ = _input_info(model)
    cases = random_inputs(model) if inputs is None else (
        [np.asarray(inputs)] if isinstance(inputs, np.ndarray) else [np.asarray(x) for x in inputs])
    if any(x.dtype != dtype for x in cases):
        raise ValueError(f"inputs must be {dtype}, like the model's input")
    try:
        for x in cases:
            _check_output_size(model, x)
        expected = [run(x) for x in cases]
    except (ValueError, TypeError, MemoryError) as e:
        raise UnsupportedModel(f"adapool rejects the inputs: {type(e).__name__}: {e}") from None
    default_rtol, default_atol = TOLERANCES[dtype]
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    rows = []
    model_bytes = model.SerializeToString()
    for rt in (runtimes or RUNTIMES):
        if rt not in RUNTIMES:
            raise ValueError(f"unknown runtime {rt!r}; choose from {', '.join(RUNTIMES)}")
        row = Row(rt)
        try:
            if rt.startswith("onnxruntime"):
                try:
                    import onnxruntime  # noqa: F401
                except ImportError:
                    rows.append(Row(rt, status="skipped", detail="onnxruntime is not installed "
                                    "(pip install onnxruntime, or onnxruntime-gpu for CUDA)"))
                    continue
                provider = "CPUExecutionProvider" if rt.endswith("cpu") else "CUDAExecutionProvider"
                outs, skip, used = _run_ort(model_bytes, name, cases, provider)
            else:
                outs, skip, used = _run_reference_evaluator(model, name, cases)
        except Exception as e:   # a runtime refusing the graph is a result, not a crash
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            fault = _known_fault(model, rt, "crash: " + msg)
            rows.append(Row(rt, status="known fault" if fault else "failed",
                            detail=f"{fault} ({msg[:200]})" if fault else msg[:300]))
            continue
        if skip:
            rows.append(Row(rt, status="skipped", detail=skip))
            continue
        if outs is None or (rt == "onnxruntime-cuda" and used and used.startswith("nodes ran on")):
            rows.append(Row(rt, provider="mixed", status="failed", detail=used))
            continue
        row.provider = used
        problems = []
        for got, want in zip(outs, expected):
            a, r, problem = _compare(got, want, dtype, rtol, atol)
            row.max_abs = a if row.max_abs != row.max_abs else max(row.max_abs, a)
            row.max_rel = r if row.max_rel != row.max_rel else max(row.max_rel, r)
            if problem:
                problems.append(problem)
        if problems:
            fault = _known_fault(model, rt, problems[0])
            row.status = "known fault" if fault else "mismatch"
            row.detail = f"{fault} ({problems[0]})" if fault else problems[0]
        rows.append(row)
    return Report(rows, [x.shape for x in cases])


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
