"""The strategy table: every form a pooling call can take in ONNX, when each one is exact, and
the short function that emits it. ``choose`` reads the table; nothing else decides."""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import onnx
import onnx.numpy_helper
from onnx import helper

from adapool import _fractional, _lp
from adapool._bfloat16 import BFLOAT16
from adapool._windows import adaptive_windows, pool_output_size

from ._builder import DEFAULT_TARGETS, DOMAIN, Builder, onnx_dtype
from ._spec import STRIDED, ExportError, fractional_samples, inner_spec  # noqa: F401 (ExportError is re-exported)
from ._windows import dynamic_axes, size_product, size_vector, static_axes




# onnxruntime's CPU EP has no float64 kernel for these: `auto` avoids them for float64 graphs.
ORT_CPU_NO_FLOAT64 = frozenset({"AveragePool", "GlobalAveragePool", "GlobalMaxPool"})


def compute_dtype(spec) -> np.dtype:
    """Average pooling accumulates float16 in float32 and rounds once, as torch does."""
    return np.dtype(np.float32) if spec.dtype == np.float16 and spec.kind in ("avg", "avgpool") else spec.dtype


# ---- pieces shared by the strategies -------------------------------------------------------------

def _batched(b: Builder, spec, x: str, fn: Callable[[str], str]) -> str:
    """Run an ONNX pooling op, which needs (N, C, ...), on unbatched input too: (C, ...) runs
    as (C, 1, ...), since onnxruntime's pooling kernels accept an empty N but not an empty C."""
    if spec.batched:
        return fn(x)
    return b.squeeze(fn(b.unsqueeze(x, 1)), 1)


def _suspect(b: Builder, spec, x: str, y: str) -> str:
    """Whether a runtime's max pool ``y`` of ``x`` may differ from torch's: the input's sum is
    NaN (it holds NaN, or both infinities) or some output is at or below the lowest finite
    value (an all -inf window, or MaxPool's starting value). A 0-d bool."""
    dt = spec.dtype
    total_dt = np.float32 if dt == np.float16 else dt
    # Plane sums first, then their sum of squares: onnxruntime runs a reduction to one scalar
    # on one thread (0.77 ms on (4,512,56,56) at 2 threads), one with a value per plane on all
    # of them (0.38 ms). A NaN anywhere still makes its plane's sum, and so the total, NaN.
    # (Two ReduceSums would be merged back into one by onnxsim, whose renaming then clashes
    # with the names inside the If below: an invalid graph.)
    lead = spec.rank - spec.nd
    planes = b.reduce("ReduceSum", b.cast(x, total_dt) if total_dt != dt else x,
                      list(range(lead, spec.rank)), keepdims=False)
    total = b.reduce("ReduceSumSquare", planes, list(range(lead)), keepdims=False)
    smallest = b.reduce("ReduceMin", b.op("Concat", b.op("Reshape", y, b.ints(-1)), b.const(np.array([0], dt)), axis=0),
                        [0], keepdims=False)
    return b.op("Or", b.isnan(total, total_dt), b.op("LessOrEqual", smallest, b.scalar(float(np.finfo(dt).min), dt)))


def _exact_max(b: Builder, spec, x: str, pool: Callable[[Builder, str], str]) -> str:
    """A max pool with torch's answers for NaN and -inf.

    onnxruntime's MaxPool, GlobalMaxPool, ReduceMax and Max skip NaN depending on where it
    sits, and MaxPool/GlobalMaxPool start from the lowest finite value (an all -inf window
    gives -3.4e38). So the fast result is checked: when the input's sum is NaN (it holds NaN,
    or both infinities) or some output is at or below the lowest finite value, a code per
    element, pooled through the same windows, fixes it: 2 = NaN, 1 = anything else, 0 = -inf.
    """
    dt = spec.dtype
    y = pool(b, x)
    suspect = _suspect(b, spec, x, y)

    def fix(sub):
        code = sub.op("Add", sub.op("Mul", sub.cast(sub.isnan(x, dt), dt), sub.scalar(2, dt)),
                      sub.cast(sub.op("Greater", x, sub.scalar(-np.inf, dt)), dt))
        worst = pool(sub, code)
        fixed = sub.op("Where", sub.op("Equal", worst, sub.scalar(0, dt)), sub.scalar(-np.inf, dt), y)
        return sub.op("Where", sub.op("Greater", worst, sub.scalar(1, dt)), sub.scalar(np.nan, dt), fixed)

    return _if(b, suspect, fix, lambda sub: y, dt)


# Small planes pool faster as one MatMul by the Kronecker product of the axes' matrices
# (onnxruntime runs a MatMul whose left operand is broadcast as many tiny GEMMs): up to this
# many (input pixels x output pixels) per plane, 128 KiB of float32 (benchmarks/README.md).
KRONECKER_MAX = 32768


def _if(b: Builder, cond: str, then_fn, else_fn, dtype):
    """An If node whose branches are built by ``then_fn(sub_builder)`` / ``else_fn(...)``, each
    returning its output value, or a list of them when ``dtype`` is a list (outer values are
    visible inside the branches). For targets that can't run If (``Builder.if_free``) both sides
    are computed and Where picks one: only for choices whose two sides are safe to compute on
    any input."""
    many = isinstance(dtype, (list, tuple))
    dtypes = list(dtype) if many else [dtype]
    as_list = lambda v: list(v) if many else [v]   # noqa: E731
    if b.if_free:
        picked = [b.op("Where", cond, t, e) for t, e in zip(as_list(then_fn(b)), as_list(else_fn(b)))]
        return picked if many else picked[0]
    b.take_if()
    branches = []
    for fn, name in ((then_fn, "then"), (else_fn, "else")):
        sub = b.subgraph()
        returned = as_list(fn(sub))
        outer = {o for n in b.nodes for o in n.output}
        made = {o for n in sub.nodes for o in n.output}
        outs = []
        for out in returned:
            if out in outer or out not in made or out in outs:
                out = sub.op("Identity", out)   # a branch must produce each of its outputs itself
            outs.append(out)
        branches.append(helper.make_graph(sub.nodes, name, [], [helper.make_tensor_value_info(o, onnx_dtype(d), None)
                                                                 for o, d in zip(outs, dtypes)]))
    result = b.op("If", cond, outputs=len(dtypes), then_branch=branches[0], else_branch=branches[1])
    return (result if len(dtypes) > 1 else [result]) if many else result


def _kronecker_average(b: Builder, spec, x: str, axes) -> str:
    """Y = X · (P_d ⊗ P_h ⊗ P_w)ᵀ on the flattened plane: one GEMM, for small planes."""
    nd, lead = spec.nd, spec.rank - spec.nd
    dt = compute_dtype(spec)
    outs = [ax.out_size for ax in axes]
    ins = [ax.in_size for ax in axes]
    if not all(isinstance(o, int) for o in outs):
        # This branch only runs when every output size is > 0, but onnxruntime infers the
        # branch's shapes at load time from the folded sizes: keep them positive for it.
        outs = [b.op("Max", o, b.ints(1)) for o in outs]
    if all(isinstance(o, int) for o in outs):
        matrix = np.ones((1, 1))
        for ax in axes:
            matrix = np.kron(matrix, ax.dense())
        kron_t = b.const(matrix.T.astype(dt))
    else:   # (o_0 .. o_n, c_0 .. c_n) as a product of broadcast matrices, then 2-D
        total = None
        for i, ax in enumerate(axes):
            p = b.unsqueeze(ax.matrix(dt, builder=b), *[j for j in range(2 * nd) if j not in (i, nd + i)])
            total = p if total is None else b.op("Mul", total, p)
        n_out, n_in = outs[0], ins[0]
        for o, c in zip(outs[1:], ins[1:]):
            n_out, n_in = size_product(b, n_out, o), size_product(b, n_in, c)
        kron_t = b.op("Transpose", b.op("Reshape", total, size_vector(b, [n_out, n_in])), perm=[1, 0])
    n_in = ins[0]
    for c in ins[1:]:
        n_in = size_product(b, n_in, c)
    # Leading dims spelled out (a "0 = copy" Reshape is rewritten to -1 by onnxruntime once a
    # function is inlined, which fails when N or C is 0); allowzero arrived in opset 14.
    lead_dims = [b.dims(x, 0, lead)] if lead and b.opset >= 14 else [0] * lead
    zero_ok = {"allowzero": 1} if b.opset >= 14 else {}
    flat = b.op("Reshape", x, size_vector(b, lead_dims + [n_in]), **zero_ok)
    return b.op("Reshape", b.op("MatMul", flat, kron_t), size_vector(b, lead_dims + outs), **zero_ok)


def _kronecker_fits(spec, axes) -> bool:
    outs = [ax.out_size for ax in axes]
    return spec.nd > 1 and all(o > 0 for o in outs) and int(np.prod(spec.spatial)) * int(np.prod(outs)) <= KRONECKER_MAX


def _matmul_average(b: Builder, spec, x: str, axes) -> str:
    """The MatMul form: Kronecker for small planes, else separable. Static windows decide here;
    dynamic ones decide in the graph, on the sizes it meets. Under TF32 (``_tf32_safe``) only
    the separable form is built."""
    if spec.nd == 1 or _tf32_safe(b, compute_dtype(spec)):
        return _separable_average(b, spec, x, axes)
    if isinstance(axes[0].out_size, int):
        fits = _kronecker_fits(spec, axes)
        return (_kronecker_average if fits else _separable_average)(b, spec, x, axes)
    if "tract" in b.targets:   # the Kronecker form is only safe behind an If (its matrix grows with
        # the plane), whose branches read values of data-dependent length: tract can't type them
        return _separable_average(b, spec, x, axes)
    n_out, n_in = axes[0].out_size, axes[0].in_size
    for ax in axes[1:]:
        n_out, n_in = b.op("Mul", n_out, ax.out_size), b.op("Mul", n_in, ax.in_size)
    small = b.op("And", b.op("LessOrEqual", b.op("Mul", n_out, n_in), b.ints(KRONECKER_MAX)),
                 b.op("Greater", n_out, b.ints(0)))
    lead = spec.rank - spec.nd   # and no empty N or C (the Kronecker form reshapes them)
    planes = b.reduce("ReduceProd", b.dims(x, 0, lead), [0], keepdims=True)
    small = b.op("And", small, b.op("Greater", planes, b.ints(0)))
    return _if(b, b.squeeze(small, 0), lambda sub: _kronecker_average(sub, spec, x, axes),
               lambda sub: _separable_average(sub, spec, x, axes), compute_dtype(spec))


def _tf32_safe(b: Builder, dt) -> bool:
    """onnxruntime's CUDA EP runs float32 MatMul in TF32 by default (provider option use_tf32=1:
    10-bit mantissas); on an H200 the plain MatMul forms came out ~1e-3 off. With the CUDA EP
    among the targets, float32 MatMuls take a form exact there (``_split_matmul``)."""
    return "onnxruntime-cuda" in b.targets and np.dtype(dt) == np.float32


def _split_matmul(b: Builder, data: str, mask: str, data_first: bool) -> str:
    """``data · mask`` (or ``mask · data``) for a 0/1 ``mask``, exact under TF32: the data is
    split (Veltkamp: c = x·8193, hi = c - (c - x), lo = x - hi) into a part of 11 significant bits,
    which TF32 holds exactly, and the rest, whose TF32 rounding is below 2^-23 of x. A value so
    large that x·8193 overflows gives NaN, which the MatMul forms' NaN probe reroutes to the
    exact masked-sum form."""
    c = b.op("Mul", data, b.scalar(8193, np.float32))
    hi = b.op("Sub", c, b.op("Sub", c, data))
    lo = b.op("Sub", data, hi)
    mm = (lambda d: b.op("MatMul", d, mask)) if data_first else (lambda d: b.op("MatMul", mask, d))
    return b.op("Add", mm(hi), mm(lo))


def _separable_average(b: Builder, spec, x: str, axes) -> str:
    """Y = P_d · (P_h · X · P_wᵀ): one MatMul per pooled axis, the last axis first. For TF32
    (``_tf32_safe``) each MatMul is by the 0/1 window mask on split data, then scaled by 1/factor."""
    nd = spec.nd
    dt = compute_dtype(spec)
    split = _tf32_safe(b, dt)

    def by(ax, x, data_first, axis_from_end):
        if not split:
            m = ax.matrix(dt, transposed=data_first, builder=b)
            return b.op("MatMul", x, m) if data_first else b.op("MatMul", m, x)
        y = _split_matmul(b, x, ax.mask(dt, transposed=data_first, builder=b), data_first)
        w = ax.weights(dt)
        return b.op("Mul", y, b.unsqueeze(w, 1) if axis_from_end == 2 else w)

    for i in reversed(range(nd)):
        ax = axes[i]
        if ax.identity:
            continue
        if i == nd - 1:
            x = by(ax, x, True, 1)
        elif i == nd - 2:
            x = by(ax, x, False, 2)
        else:   # depth: move it last and back (a Reshape would need sizes that may be 0)
            r = spec.rank
            to_last = list(range(r - 3)) + [r - 2, r - 1, r - 3]
            x = b.op("Transpose", x, perm=to_last)
            x = by(ax, x, True, 1)
            x = b.op("Transpose", x, perm=list(range(r - 3)) + [r - 1, r - 3, r - 2])
    return x


def _masked_sum_average(b: Builder, spec, x: str, axes) -> str:
    """The same averages without multiplying by zeros: gather each window (padded), zero the
    padding with Where, ReduceSum, scale. Exact for inf and NaN (0 * inf is NaN in a MatMul),
    but it reads every window whole, so it only runs when the MatMul form met a non-finite value."""
    nd = spec.nd
    dt = compute_dtype(spec)
    if spec.rank == 2:   # (C, L) runs as (1, C, L): OpenVINO's CPU plugin gave wrong averages for
        # non-uniform windows on the rank-2 form (adaptive_avg_pool1d (3, 11) -> 4 with an inf)
        return b.squeeze(_masked_sum_average(b, _with_batch(spec), b.unsqueeze(x, 0), axes), 0)
    for i in reversed(range(nd)):
        ax = axes[i]
        if ax.identity:
            continue
        a, trailing = i - nd, nd - 1 - i
        g = b.op("Gather", x, ax.table(), axis=a)                    # (..., o, k, rest)
        valid = ax.valid()
        if trailing:
            valid = b.unsqueeze(valid, *range(2, 2 + trailing))
        g = b.op("Where", valid, g, b.scalar(0, dt))
        w = ax.weights(dt)
        if trailing:
            w = b.unsqueeze(w, *range(1, 1 + trailing))
        x = b.op("Mul", b.reduce("ReduceSum", g, [a], keepdims=False), w)
    return x


def _with_batch(spec):
    """The spec of the same call on a (1, ...) batched input."""
    return dataclasses.replace(spec, shape=(1,) + tuple(spec.shape))


def _branch_axes(axes, rebuild):
    """The axes an If branch should use: dynamic windows are computed again inside the branch
    from Shape(x), since tract can't type a branch that reads outer values of data-dependent
    length; static ones are constants and are shared."""
    return (lambda sub: axes if sub.if_free or rebuild is None else rebuild(sub))


def _average_matmul_exact(b: Builder, spec, x: str, axes, rebuild=None) -> str:
    """MatMul form, falling back to the masked-sum form when the result holds inf or NaN
    (checked on the small output: y - y sums to NaN exactly when some y is not finite; not
    y * 0, which tract folds to 0). ``rebuild(builder)`` makes dynamic axes anew in a branch."""
    dt = compute_dtype(spec)
    y = _matmul_average(b, spec, x, axes)
    probe = b.reduce("ReduceSum", b.op("Sub", y, y), list(range(spec.rank)), keepdims=False)
    branch_axes = _branch_axes(axes, rebuild)
    return _if(b, b.isnan(probe, dt), lambda sub: _masked_sum_average(sub, spec, x, branch_axes(sub)),
               lambda sub: y, dt)


def _separable_max(b: Builder, spec, x: str, axes) -> str:
    """Gather each window's indices along one axis ((out, window) table), ReduceMax over the
    window; axis by axis (max is separable), NaN handled by the caller."""
    nd = spec.nd
    for i in reversed(range(nd)):
        if not axes[i].identity:
            a = i - nd
            x = b.reduce("ReduceMax", b.op("Gather", x, axes[i].table(), axis=a), [a], keepdims=False)
    return x


def _sliding_max_axis(b: Builder, spec, x: str, ax, i: int) -> str | None:
    """Max over every window of one axis without gathering windows whole: a sliding max of
    width p built by doubling (MaxPool of kernel 2 and dilation q turns width q into 2q), then,
    max being idempotent, each window [s, e) is max(m_p[s], m_p[e-p]) when its length lies in
    [p, 2p]. None when the window lengths are too uneven for one width."""
    lengths = ax.ends - ax.starts
    p = int(lengths.min()) if lengths.size else 0
    if p < 1 or int(lengths.max()) > 2 * p:
        return None
    nd, a = spec.nd, i - spec.nd

    def widen(m, dilation):   # m'[j] = max(m[j], m[j + dilation]) along this axis
        kernel, dil = [1] * nd, [1] * nd
        kernel[i], dil[i] = 2, dilation
        return _batched(b, spec, m, lambda u: b.op("MaxPool", u, kernel_shape=kernel, dilations=dil))
    m, q = x, 1
    while 2 * q <= p:
        m, q = widen(m, q), 2 * q
    if q < p:
        m = widen(m, p - q)
    first = b.op("Gather", m, b.const(ax.starts.astype(np.int64)), axis=a)
    if bool(np.all(lengths == p)):
        return first
    return b.op("Max", first, b.op("Gather", m, b.const((ax.ends - p).astype(np.int64)), axis=a))


def _sliding_max(b: Builder, spec, x: str, axes) -> str:
    nd = spec.nd
    for i in reversed(range(nd)):
        ax = axes[i]
        if ax.identity:
            continue
        a = i - nd
        y = _sliding_max_axis(b, spec, x, ax, i)
        x = y if y is not None else b.reduce("ReduceMax", b.op("Gather", x, ax.table(), axis=a), [a], keepdims=False)
    return x


def _flat_indices(b: Builder, spec, axes, static: bool, x: str) -> str:
    """For every output position and window slot, the input index torch reports
    (``(d * H + h) * W + w`` within the plane), flattened to (prod(out) * prod(window),)."""
    nd = spec.nd
    if static:
        strides = np.cumprod((spec.spatial[1:] + (1,))[::-1])[::-1]
        total = np.zeros([1] * (2 * nd), dtype=np.int64)
        for i, ax in enumerate(axes):
            t = ax.table_array()
            shape = [1] * (2 * nd)
            shape[i], shape[nd + i] = t.shape
            total = total + t.reshape(shape) * int(strides[i])
        return b.const(total.reshape(-1))
    total = None
    stride = None
    for i in reversed(range(nd)):
        t = axes[i].table()
        axes_to_add = [j for j in range(2 * nd) if j not in (i, nd + i)]
        t = b.unsqueeze(t, *axes_to_add) if axes_to_add else t
        if stride is not None:
            t = b.op("Mul", t, stride)
        total = t if total is None else b.op("Add", total, t)
        stride = axes[i].in_size if stride is None else b.op("Mul", stride, axes[i].in_size)
    return b.op("Reshape", total, b.ints(-1))


def _torch_max_rule(b: Builder, g: str, dt, window) -> tuple:
    """torch's max over the last axis of ``g`` (each window's elements in row-major order): the
    last NaN if there is one, else the first maximum. (values without that axis, the slot k
    with it kept.) ArgMax and ReduceMax only ever see NaN-free data (NaN -> -inf), so no
    runtime's NaN handling matters."""
    isnan = b.isnan(g, dt)
    nan01 = b.cast(isnan, dt)
    clean = b.op("Where", isnan, b.scalar(-np.inf, dt), g)
    first_max = b.op("ArgMax", clean, axis=-1, keepdims=1, select_last_index=0)
    last_nan = b.op("ArgMax", nan01, axis=-1, keepdims=1, select_last_index=1)
    has_nan = b.op("Greater", b.reduce("ReduceMax", nan01, [-1], keepdims=True), b.scalar(0, dt))
    k = b.op("Where", has_nan, last_nan, first_max)
    # the element at k itself, not ReduceMax: OpenVINO's and tract's ReduceMax of a row of
    # -inf is the lowest finite float (OpenVINO's CPU reduce starts from -FLT_MAX, see
    # openvinotoolkit/openvino#5494); nor a Where of it summed with zeros: onnxruntime's Where
    # returns -0.0 as +0.0, where torch returns the -0.0 it picked. GatherElements from (rows,
    # window) by a (rows, 1) index, axis 1: onnx's reference evaluator rejects a negative axis,
    # an index narrower than the data on the other axes, and more than 64 choices unless 2-d.
    rows = b.op("Reshape", g, size_vector(b, [-1, window]))
    picked = b.op("GatherElements", rows, b.op("Reshape", k, b.ints(-1, 1)), axis=1)
    return b.op("Reshape", picked, b.dims(k, 0, -1)), k


def _max_with_indices(b: Builder, spec, x: str, axes, static: bool) -> list:
    """Gather every window whole (padded by repeating its last index), then torch's rule over
    its elements in row-major order: the last NaN if there is one, else the first maximum.
    ArgMax and ReduceMax only ever see NaN-free data (NaN -> -inf), so no runtime's NaN
    handling matters."""
    nd, lead = spec.nd, spec.rank - spec.nd
    g = x
    for i in range(nd):
        g = b.op("Gather", g, axes[i].table(), axis=i - nd)        # (..., o_i, k_i, ...)
    if nd > 1:
        perm = list(range(lead)) + [lead + 2 * i for i in range(nd)] + [lead + 2 * i + 1 for i in range(nd)]
        g = b.op("Transpose", g, perm=perm)
    window = axes[0].window
    for ax in axes[1:]:
        window = size_product(b, window, ax.window)
    outs = [ax.out_size for ax in axes]
    # explicit leading dims and allowzero: an output size of 0 must not read as "copy this dim"
    # (allowzero arrived in opset 14; `choose` refuses zero sizes with indices before that)
    zero_ok = {"allowzero": 1} if b.opset >= 14 else {}
    g = b.op("Reshape", g, size_vector(b, ([b.dims(x, 0, lead)] if lead else []) + outs + [window]), **zero_ok)
    values, k = _torch_max_rule(b, g, spec.dtype, window)
    # position of (output, slot) in the flat table: linear(output) * window + slot
    if static:
        n_out = int(np.prod([ax.out_size for ax in axes]))
        base = b.const((np.arange(n_out, dtype=np.int64) * window).reshape(outs + [1]))
    else:
        n_out = outs[0]
        for o in outs[1:]:
            n_out = b.op("Mul", n_out, o)
        rng = b.op("Range", b.scalar(0, np.int64), b.squeeze(n_out, 0), b.scalar(1, np.int64))
        base = b.op("Reshape", b.op("Mul", rng, window), size_vector(b, outs + [1]), **zero_ok)
    table = _flat_indices(b, spec, axes, static, x)
    indices = b.squeeze(b.op("Gather", table, b.op("Add", base, k), axis=0), -1)
    return [values, indices]



def _to_compute(b: Builder, spec, x: str) -> str:
    dt = compute_dtype(spec)
    return x if dt == spec.dtype else b.cast(x, dt)


def _from_compute(b: Builder, spec, y: str) -> str:
    return y if compute_dtype(spec) == spec.dtype else b.cast(y, spec.dtype)


# ---- the strategies ---------------------------------------------------------------------------

def emit(b: Builder, strategy: "Strategy", spec, x: str, indices: str | None = None) -> list:
    """The call's output values, by ``strategy`` (or the empty-output form). A bfloat16 call is
    its float32 graph between two Casts, as adapool and torch compute it: widening is exact,
    and each float result is rounded once, to nearest even where the runtime's Cast does
    (onnxruntime's and onnx's reference evaluator's do; OpenVINO's doesn't, see
    ``_openvino_bfloat16``). Max pooling's values are inputs, so they come back exact
    whatever the rounding; indices are the float32 graph's. ``indices``: max_unpool's second
    input (int64, never cast)."""
    def source(v):
        return v if indices is None else (v, indices)

    if spec.dtype != BFLOAT16:
        return list(empty_outputs(b, spec, x) or strategy.build(b, spec, source(x)))
    inner = dataclasses.replace(spec, dtype=np.dtype(np.float32), bfloat16_windows=True)
    x32 = b.cast(x, np.float32)
    outs = list(empty_outputs(b, inner, x32) or strategy.build(b, inner, source(x32)))
    return [b.cast(outs[0], BFLOAT16)] + outs[1:]


def empty_outputs(b: Builder, spec, x: str):
    """An output size of 0 gives an empty result whatever the strategy: ConstantOfShape, not a
    pooling graph over an emptied axis (OpenVINO rejects empty constant matrices, crashes on
    the dynamic form's Where over empty windows and, with SIGFPE, on an Expand to an empty
    shape). Plus one corner element of the input, so that graph optimizers don't fold the
    output into a constant and drop the input (onnxslim does). A static batch or channel
    count of 0 too (OpenVINO crashes, SIGFPE or heap corruption, on pooling graphs over
    them). None when no output dim is 0."""
    lead = spec.rank - spec.nd
    empty_lead = any(d == 0 for d in spec.shape[:lead])
    if spec.kind in ("lppool", "fractional"):   # lp_pool: its inner pool's graph decides; fractional: refused
        return None
    if spec.kind in STRIDED:   # output sizes are never 0; an empty batch with static sizes only
        # (OpenVINO refuses MaxPool/AveragePool over a static batch of 0: "Batch size is zero")
        if not (empty_lead and spec.static_spatial):
            return None
        out = spec.output_shape()[lead:]
    elif not (empty_lead or any(o == 0 for o in spec.out)):
        return None
    else:
        out = spec.out
    dims = [b.dims(x, 0, lead)] + [o if o is not None else b.dims(x, lead + i, lead + i + 1)
                                   for i, o in enumerate(out)]
    shape = size_vector(b, dims)
    # empty where the output is (OpenVINO broadcasts a 0-length axis against 1 to 1)
    ends = [1] * lead + [0 if o == 0 else 1 for o in out]
    corner = b.op("Slice", x, b.ints(*[0] * spec.rank), b.ints(*ends))
    zeros = b.op("ConstantOfShape", shape, value=onnx.numpy_helper.from_array(np.zeros(1, spec.dtype)))
    y = b.op("Add", zeros, corner)
    return [y, b.cast(y, np.int64)] if spec.return_indices else [y]


def _build_global(b, spec, x):
    if spec.kind == "max":
        return [_exact_max(b, spec, x, lambda sb, v: _batched(sb, spec, v, lambda u: sb.op("GlobalMaxPool", u)))]
    y = _batched(b, spec, _to_compute(b, spec, x), lambda u: b.op("GlobalAveragePool", u))
    return [_from_compute(b, spec, y)]


def _build_reduce(b, spec, x):
    axes = list(range(-spec.nd, 0))
    if spec.kind == "max":
        return [_exact_max(b, spec, x, lambda sb, v: sb.reduce("ReduceMax", v, axes, keepdims=True))]
    return [_from_compute(b, spec, b.reduce("ReduceMean", _to_compute(b, spec, x), axes, keepdims=True))]


def strided_pads(spec):
    """ONNX pads (begins + ends) that give a strided pool torch's windows without ceil_mode:
    the padding on both sides, and on the right as much more as the windows ceil_mode adds
    need (MaxPool never picks a pad; AveragePool without count_include_pad doesn't count
    them). A reason string when no pads do it exactly."""
    ends = []
    for i, c in enumerate(spec.spatial):
        k, s, p, d = spec.kernel[i], spec.stride[i], spec.padding[i], spec.dilations[i]
        if not isinstance(c, int):
            if spec.ceil_mode:
                return "ceil_mode at dynamic sizes can add a window past the padding, which the pads can't follow"
            ends.append(p)
            continue
        o = pool_output_size(c, k, s, p, spec.ceil_mode, d)
        ends.append(max(p, (o - 1) * s + (k - 1) * d + 1 - c - p))
    if any(e > p for e, p in zip(ends, spec.padding)) and spec.kind == "avgpool" \
            and spec.count_include_pad and spec.divisor_override is None:
        return "ceil_mode adds a window past the padding here, which AveragePool counts differently"
    # onnxruntime: "Pad should be smaller than kernel"
    if any(max(p, e) >= k for p, e, k in zip(spec.padding, ends, spec.kernel)):
        return "its padding (with the windows ceil_mode adds) reaches the kernel size, which onnxruntime rejects"
    return list(spec.padding) + ends


def _build_strided_pool(b, spec, x):
    pads = strided_pads(spec)
    kernel, stride = list(spec.kernel), list(spec.stride)
    if spec.kind == "maxpool":
        dilations = list(spec.dilations)
        if spec.return_indices:
            return _maxpool_indices(b, spec, x, x, spec.spatial, kernel, stride, pads=pads, dilations=dilations)
        return [_exact_max(b, spec, x, lambda sb, v: _batched(
            sb, spec, v, lambda u: sb.op("MaxPool", u, kernel_shape=kernel, strides=stride, pads=pads,
                                         dilations=dilations)))]
    include = spec.count_include_pad or spec.divisor_override is not None

    def pool(u):
        return b.op("AveragePool", u, kernel_shape=kernel, strides=stride, pads=pads, count_include_pad=int(include))
    y = _batched(b, spec, _to_compute(b, spec, x), pool)
    if spec.divisor_override is not None:   # every window lies inside the pads: prod(kernel) counted
        y = b.op("Mul", y, b.scalar(float(np.prod(kernel)) / spec.divisor_override, compute_dtype(spec)))
    return [_from_compute(b, spec, y)]


def _build_pool(b, spec, x):
    if spec.kind in STRIDED:
        return _build_strided_pool(b, spec, x)
    kernel, stride = (list(v) for v in zip(*(uniform_windows(o, c) for c, o in zip(spec.spatial, spec.out))))
    if spec.kind == "max" and spec.return_indices:
        return _pool_with_indices(b, spec, x, kernel, stride)
    if spec.kind == "max":
        return [_exact_max(b, spec, x, lambda sb, v: _batched(
            sb, spec, v, lambda u: sb.op("MaxPool", u, kernel_shape=kernel, strides=stride)))]
    y = _batched(b, spec, _to_compute(b, spec, x),
                 lambda u: b.op("AveragePool", u, kernel_shape=kernel, strides=stride))
    return [_from_compute(b, spec, y)]


def _pool_with_indices(b, spec, x, kernel, stride) -> list:
    """MaxPool's own Indices, made per plane as torch's (MaxPool counts over the whole tensor:
    less each plane's offset). MaxPool keeps the first maximum in row-major window order, which
    is torch's rule, except where a window holds NaN (MaxPool skips it; torch reports the last
    NaN) or is all -inf (MaxPool starts from the lowest float). Those are caught as
    ``_exact_max`` catches them (the input's sum is NaN, or an output is at or below the lowest
    float) and both outputs come from the gather form then (one If with two outputs).

    Windows that tile the plane (kernel == stride, out * kernel == size) skip MaxPool's Indices
    output, onnxruntime's slow scalar kernel: ArgMax over each window (see ``_argmax_form``)."""
    form = _argmax_form(spec, kernel, stride)
    if form is not None and not b.if_free:
        return _argmax_pool_with_indices(b, spec, x, kernel, form)
    return _maxpool_indices(b, spec, x, x, spec.spatial, kernel, stride)


def _argmax_form(spec, kernel, stride):
    """Which ArgMax form serves uniform windows, or None (MaxPool's Indices then): windows that
    tile the plane and are runs of it (every axis after the first pooled whole: global pooling,
    1-d, (o, 1) outputs) take one ArgMax over each run, no copy; tiling 2-d windows take the
    separable form where their rows hold ``SEPARABLE_MIN_ROW`` elements or more (onnxruntime's
    ArgMax and ReduceMax along rows of 2, 14 -> 7, cost more than MaxPool's Indices output:
    benchmarks/README.md)."""
    if any(k != s or o * k != c for k, s, o, c in zip(kernel, stride, spec.out, spec.spatial)):
        return None
    if all(o == 1 for o in spec.out[1:]):
        return "runs"
    if spec.nd == 2 and kernel[1] >= SEPARABLE_MIN_ROW:
        return "separable"
    return None


# window row length from which tiling 2-d windows take the separable ArgMax form (measured:
# benchmarks/README.md, "Max pooling with indices as an ONNX graph, wave 3")
SEPARABLE_MIN_ROW = 4


def _argmax_pool_with_indices(b, spec, x, kernel, form) -> list:
    """Max pooling with indices over windows that tile the plane, by ArgMax (first maximum:
    torch's rule on NaN-free data), behind the same NaN/-inf check as ``_maxpool_indices``.
    Values are the elements at the indices, so a -0.0 first maximum stays -0.0.

    "runs": each window is a run of the flattened plane, (rows, plane / o): one ArgMax, the
    element by GatherElements. "separable" (2-d, (kh, kw) windows): ReduceMax along each
    window row's kw elements, then ArgMax of the row maxima over each window's kh rows picks
    the first row holding the window's maximum; that row alone is gathered (GatherND) and its
    first maximum, by ArgMax, is torch's (row-major order). Values are the gathered elements
    at the indices. Indices are per plane from the start, at any batch size."""
    nd, lead = spec.nd, spec.rank - spec.nd
    # the leading dims as Reshape sizes: ints, or Shape(x)'s (not Reshape's 0, which
    # onnxoptimizer's fusion of consecutive Reshapes copies from the wrong tensor)
    lead_dims = list(spec.shape[:lead]) if all(isinstance(d, int) for d in spec.shape[:lead]) else [b.dims(x, 0, lead)]

    def shaped(v, *dims, builder=b):
        return builder.op("Reshape", v, size_vector(builder, lead_dims + list(dims)))

    def first_max(rows):
        """Each row's first maximum of a 2-d (rows, n) view: its slot (rows, 1) and the element
        there. Axis 1, counted from the front: onnx's reference evaluator misreads a negative
        GatherElements axis, and gathers along an axis of more than 64 (numpy's np.choose
        limit) only from a 2-d (rows, 1) index."""
        k = b.op("ArgMax", rows, axis=1, keepdims=1)
        return k, b.op("GatherElements", rows, k, axis=1)

    out = list(spec.out)
    if form == "runs":
        run = int(np.prod(spec.spatial)) // out[0]
        k, first = first_max(b.op("Reshape", x, b.ints(-1, run)))
        y = shaped(first, *out)
        indices = b.op("Add", shaped(k, *out), b.const((np.arange(out[0], dtype=np.int64) * run).reshape([-1] + [1] * (nd - 1))))
    else:
        (H, _), (oh, ow), (kh, kw) = spec.spatial, out, kernel
        # the window's row maxima along axis lead + 1; ArgMax picks the first row holding the
        # maximum (rows of -inf: lowest float on OpenVINO and tract, never above a maximum that
        # passed the check below)
        row_max = b.reduce("ReduceMax", shaped(x, H, ow, kw), [lead + 2], keepdims=False)
        r = b.op("ArgMax", shaped(row_max, oh, kh, ow), axis=lead + 1, keepdims=1)   # (lead, oh, 1, ow)
        # that row of each window, by its number among the plane's (H * ow) rows of kw: one
        # gathered row a window costs less than ArgMax along every row (benchmarks/README.md)
        which = b.op("Add", b.op("Mul", r, b.scalar(ow, np.int64)),
                     b.const((np.arange(oh, dtype=np.int64) * kh * ow).reshape(oh, 1, 1) + np.arange(ow, dtype=np.int64)))
        picked = b.op("Reshape", b.op("GatherND", shaped(x, H * ow, kw), shaped(which, oh * ow, 1), batch_dims=lead),
                      b.ints(-1, kw))                                          # (windows, kw)
        # the element itself: a -0.0 first maximum keeps its sign (ReduceMax's may not)
        c, first = first_max(picked)
        y = shaped(first, oh, ow)
        # row number * kw is the row's first element in the plane
        indices = shaped(b.op("Add", b.op("Mul", shaped(which, oh * ow), b.scalar(kw, np.int64)),
                              shaped(c, oh * ow)), oh, ow)
    return _if(b, _suspect(b, spec, x, y), lambda sub: _max_with_indices(sub, spec, x, static_axes(sub, spec), static=True),
               lambda sub: [y, indices], [spec.dtype, np.int64])


def _maxpool_indices(b, spec, x, src, src_spatial, kernel, stride, lookup=None, pads=None, dilations=None) -> list:
    """MaxPool (values and Indices) over ``src``, whose planes are ``src_spatial``; its flat
    indices less each plane's offset (a constant: static shapes; Mod ran 8x slower), mapped
    to ``x``'s planes through ``lookup`` when ``src`` is a regathered copy of ``x``. MaxPool's
    values are the elements at its indices (one comparison loop picks both, so even a -0.0
    first maximum keeps its sign; ``pads`` never win, as they don't count). Where NaN/-inf
    make MaxPool's answer differ from torch's, one two-output If gives both outputs from the
    gather form."""
    # no If left for the check: the gather form alone is exact everywhere. Also for unbatched
    # 1-d inputs and unbatched copies: onnxsim breaks those graphs ("not in SSA form")
    if b.if_free or (not spec.batched and (spec.nd == 1 or pads or lookup is not None)):
        return _max_with_indices(b, spec, x, static_axes(b, spec), static=True)
    attrs = dict(kernel_shape=kernel, strides=stride, **({"pads": pads} if pads else {}),
                 **({"dilations": dilations} if dilations and any(d != 1 for d in dilations) else {}))
    if spec.batched:
        y, flat = b.op("MaxPool", src, outputs=2, **attrs)
        pooled = lambda sub: (y, flat)   # noqa: E731
    else:   # (C, ...) runs as (C, 1, ...): see _batched
        y1, flat1 = b.op("MaxPool", b.unsqueeze(src, 1), outputs=2, **attrs)
        y = b.squeeze(y1, 1)
        # squeezed inside the branch, not taken from the outer scope: onnxsim rewrote an If
        # returning the outer Squeeze's output out of SSA form
        pooled = lambda sub: (sub.squeeze(y1, 1), sub.squeeze(flat1, 1))   # noqa: E731
    lead_shape = tuple(spec.shape[:spec.rank - spec.nd])
    plane = int(np.prod(src_spatial))

    def fast(sub):
        y, flat = pooled(sub)
        if all(isinstance(d, int) for d in lead_shape):
            offsets = (np.arange(int(np.prod(lead_shape)), dtype=np.int64) * plane).reshape(lead_shape + (1,) * spec.nd)
            indices = sub.op("Sub", flat, sub.const(offsets))
        else:   # a dynamic batch
            indices = sub.op("Mod", flat, sub.scalar(plane, np.int64))
        if lookup is not None:
            indices = sub.op("Gather", sub.const(lookup), indices, axis=0)
        return [y, indices]
    return _if(b, _suspect(b, spec, x, y), lambda sub: _max_with_indices(sub, spec, x, static_axes(sub, spec), static=True),
               fast, [spec.dtype, np.int64])


SLICED_WINDOWS = 32


def _regathered_pool_with_indices(b, spec, x, axes) -> list:
    """Max pooling with indices over windows of any lengths: gather each axis' windows side by
    side, padded to the longest by repeating their last index ((out * window) long), so that
    they tile the copy and MaxPool (kernel = stride = the window) runs on it; a constant table
    maps its indices back to the input's plane. Row-major order within a window is kept and
    the repeats come after the elements they repeat, so MaxPool's first maximum is torch's.
    For windows no padded pool makes (6 -> 4, 12 -> 5); see benchmarks/README.md."""
    lead, nd = spec.rank - spec.nd, spec.nd
    tables = [np.arange(ax.in_size, dtype=np.int64) if ax.identity else ax.table_array().reshape(-1) for ax in axes]
    kernel = [1 if ax.identity else ax.window for ax in axes]
    src = x
    for i in range(nd - 1):
        if not axes[i].identity:
            src = b.op("Gather", src, b.const(tables[i]), axis=lead + i)
    # onnxruntime gathers along the last axis element by element (3.2 ms of the graph's 4.4 on
    # (1,16,223,223)->7; along H, whole rows: 0.2 ms): up to SLICED_WINDOWS windows, that axis
    # is copied as slices of whole windows (and of their last element, for the padding)
    last = axes[-1]
    if not last.identity and last.out_size <= SLICED_WINDOWS:
        pieces = []
        for start, end in zip(last.starts.tolist(), last.ends.tolist()):
            pieces.append(b.op("Slice", src, b.ints(start), b.ints(end), b.ints(-1)))
            pieces += [b.op("Slice", src, b.ints(end - 1), b.ints(end), b.ints(-1))] * (last.window - (end - start))
        src = pieces[0] if len(pieces) == 1 else b.op("Concat", *pieces, axis=-1)
    elif not last.identity:
        src = b.op("Gather", src, b.const(tables[-1]), axis=-1)
    strides = [int(np.prod(spec.spatial[i + 1:])) for i in range(nd)]
    lookup = np.zeros([len(t) for t in tables], dtype=np.int64)
    for i, t in enumerate(tables):   # position in the copy -> index in the plane
        shape = [1] * nd
        shape[i] = len(t)
        lookup = lookup + (t * strides[i]).reshape(shape)
    return _maxpool_indices(b, spec, x, src, lookup.shape, kernel, kernel, lookup.reshape(-1))


def _build_matmul(b, spec, x):
    return [_from_compute(b, spec, _average_matmul_exact(b, spec, _to_compute(b, spec, x), static_axes(b, spec)))]


def _strided_max_gather(b, spec, x) -> list:
    """Max pooling over each window's gathered elements (max_pool_windows' tables): ReduceMax
    axis by axis, or the ArgMax form for indices. A window with no element at all (dilation and
    padding can leave one) is -inf with torch's index, its first in-bounds position on each
    axis (past the window's start, possibly outside the plane): constants put in by Where."""
    axes = static_axes(b, spec)
    if spec.return_indices:
        outs = _max_with_indices(b, spec, x, axes, static=True)
    else:
        outs = [_exact_max(b, spec, x, lambda sb, v: _separable_max(sb, spec, v, axes))]
    nd = spec.nd
    if not any(ax.empty.any() for ax in axes):
        return outs
    empty = np.zeros([1] * nd, dtype=bool)
    first = np.zeros([1] * nd, dtype=np.int64)
    strides = [int(np.prod(spec.spatial[i + 1:])) for i in range(nd)]
    for i, ax in enumerate(axes):
        shape = [1] * nd
        shape[i] = ax.out_size
        empty = empty | ax.empty.reshape(shape)
        first = first + (ax.starts * strides[i]).reshape(shape)
    mask = b.const(empty)
    outs[0] = b.op("Where", mask, b.scalar(-np.inf, spec.dtype), outs[0])
    if spec.return_indices:
        outs[1] = b.op("Where", mask, b.const(first), outs[1])
    return outs


def _build_gather(b, spec, x):
    if spec.kind == "maxpool":
        return _strided_max_gather(b, spec, x)
    axes = static_axes(b, spec)
    if spec.return_indices:
        if spec.dtype == np.float64:   # onnx's reference evaluator: wrong float64 MaxPool indices
            return _max_with_indices(b, spec, x, axes, static=True)
        padded = [padded_windows(o, c) for o, c in zip(spec.out, spec.spatial)]
        # pads up to half the kernel, as torch's max_pool allows (the reference evaluator
        # fails on a window that is half pad or more)
        if all(p and 2 * max(p[2], p[3]) < p[0] for p in padded):
            kernel, stride, begin, end = (list(v) for v in zip(*padded))
            return _maxpool_indices(b, spec, x, x, spec.spatial, kernel, stride, pads=begin + end)
        return _regathered_pool_with_indices(b, spec, x, axes)
    return [_exact_max(b, spec, x, lambda sb, v: _separable_max(sb, spec, v, axes))]


def _build_sliding(b, spec, x):
    axes = static_axes(b, spec)
    return [_exact_max(b, spec, x, lambda sb, v: _sliding_max(sb, spec, v, axes))]


def _build_dynamic(b, spec, x, params=None):
    if params is None and _all_ones(spec) is None:   # output 1 is exact at any size as a reduction
        return _build_reduce(b, spec, x)
    if spec.kind in ("max", "maxpool"):
        axes = dynamic_axes(b, spec, x, params)
        if spec.return_indices:
            outs = _max_with_indices(b, spec, x, axes, static=False)
        else:
            branch_axes = _branch_axes(axes, lambda sub: dynamic_axes(sub, spec, x, params))
            outs = [_exact_max(b, spec, x,
                               lambda sb, v: _separable_max(sb, spec, v, axes if sb is b else branch_axes(sb)))]
        if spec.kind == "maxpool" and any(d > 1 for d in spec.dilation) and any(spec.padding):
            outs = _empty_windows(b, spec, axes, outs)
        return outs
    xc = _to_compute(b, spec, x)
    return [_from_compute(b, spec, _average_matmul_exact(b, spec, xc, dynamic_axes(b, spec, xc, params),
                                                         rebuild=lambda sub: dynamic_axes(sub, spec, xc, params)))]


def _empty_windows(b, spec, axes, outs) -> list:
    """Dilation and padding can leave a window without an element at some sizes: -inf there,
    with torch's index, the window's first in-bounds position on each axis (past its start,
    possibly outside the plane), as the static tables give it (_strided_max_gather)."""
    nd = spec.nd
    empty, first, stride = None, None, None
    for i in reversed(range(nd)):   # flat positions: the last axis first, its plane stride 1
        ax = axes[i]
        shape_axes = [j for j in range(nd) if j != i]
        e = b.unsqueeze(ax.empty, *shape_axes) if shape_axes else ax.empty
        f = b.unsqueeze(ax.first_in_bounds, *shape_axes) if shape_axes else ax.first_in_bounds
        if stride is not None:
            f = b.op("Mul", f, stride)
        empty = e if empty is None else b.op("Or", empty, e)
        first = f if first is None else b.op("Add", first, f)
        stride = ax.in_size if stride is None else b.op("Mul", stride, ax.in_size)
    # -inf as Where's first choice: the kept values, second, keep their signs under onnxruntime
    outs = [b.op("Where", empty, b.scalar(-np.inf, spec.dtype), outs[0])] + outs[1:]
    if spec.return_indices:
        outs[1] = b.op("Where", empty, first, outs[1])
    return outs


FUNCTION_ATTRS = {
    "avg": ("output_size",), "max": ("output_size",),
    "avgpool": ("kernel", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    "maxpool": ("kernel", "stride", "padding", "dilation", "ceil_mode"),
}


_DTYPE_SUFFIX = {"float16": "_f16", "float32": "", "float64": "_f64"}


def function_name(spec) -> str:
    """The custom-domain op name. A function body depends on the input's rank and dtype, and a
    model can hold one function per name: batched float32 calls get the plain name, others a
    suffix (AdaptiveAvgPool2d_unbatched_f16)."""
    base = {"avg": "AdaptiveAvgPool", "max": "AdaptiveMaxPool", "avgpool": "AvgPool", "maxpool": "MaxPool"}[spec.kind]
    name = f"{base}{spec.nd}d" + ("WithIndices" if spec.return_indices else "")
    return name + ("" if spec.batched else "_unbatched") + _DTYPE_SUFFIX[spec.dtype.name]


def function_attributes(spec) -> dict:
    if spec.kind == "maxpool":
        return {"kernel": list(spec.kernel), "stride": list(spec.stride), "padding": list(spec.padding),
                "dilation": list(spec.dilations), "ceil_mode": [int(spec.ceil_mode)]}
    if spec.kind == "avgpool":
        return {"kernel": list(spec.kernel), "stride": list(spec.stride), "padding": list(spec.padding),
                "ceil_mode": [int(spec.ceil_mode)], "count_include_pad": [int(spec.count_include_pad)],
                "divisor_override": [spec.divisor_override or 0]}
    return {"output_size": [-1 if o is None else o for o in spec.out]}


def call_from_node(node) -> tuple:
    """(op, kwargs) of an adapool-domain node (the inverse of function_name/function_attributes)."""
    a = {}
    for att in node.attribute:
        if att.name.startswith("_"):
            continue
        if att.type != onnx.AttributeProto.INTS:
            raise ValueError(f"{DOMAIN}.{node.op_type} node {node.name!r}: attribute {att.name!r} must be a list of ints")
        a[att.name] = [int(v) for v in att.ints]
    if len(node.input) != 1 or not node.input[0]:
        raise ValueError(f"{DOMAIN}.{node.op_type} node {node.name!r} must have exactly one input")
    op_type = node.op_type
    for suffix in ("_f16", "_f64", "_unbatched"):   # function_name's variants
        op_type = op_type[:-len(suffix)] if op_type.endswith(suffix) else op_type
    try:
        for nd in (1, 2, 3):
            for kind in ("avg", "max"):
                base = f"Adaptive{kind.capitalize()}Pool{nd}d"
                if op_type in (base, base + "WithIndices") and (kind == "max" or op_type == base):
                    kwargs = {"output_size": [None if o < 0 else o for o in a["output_size"]]}
                    if kind == "max":
                        kwargs["return_indices"] = op_type.endswith("WithIndices")
                    if len(node.output) < (2 if kwargs.get("return_indices") else 1):
                        raise ValueError(f"{DOMAIN}.{node.op_type} node {node.name!r} has too few outputs")
                    return f"adaptive_{kind}_pool{nd}d", kwargs
        for nd in (1, 2, 3):
            if op_type == f"AvgPool{nd}d":
                kwargs = {"kernel_size": a["kernel"], "stride": a["stride"], "padding": a["padding"],
                          "ceil_mode": bool(a["ceil_mode"][0]), "count_include_pad": bool(a["count_include_pad"][0])}
                if nd != 1:   # avg_pool1d has no divisor_override
                    kwargs["divisor_override"] = a["divisor_override"][0] or None
                return f"avg_pool{nd}d", kwargs
            if op_type in (f"MaxPool{nd}d", f"MaxPool{nd}dWithIndices"):
                indices = op_type.endswith("WithIndices")
                if len(node.output) < (2 if indices else 1):
                    raise ValueError(f"{DOMAIN}.{node.op_type} node {node.name!r} has too few outputs")
                return f"max_pool{nd}d", {"kernel_size": a["kernel"], "stride": a["stride"], "padding": a["padding"],
                                          "dilation": a["dilation"], "ceil_mode": bool(a["ceil_mode"][0]),
                                          "return_indices": indices}
    except (KeyError, IndexError) as e:
        raise ValueError(f"{DOMAIN}.{node.op_type} node {node.name!r} lacks attribute {e}") from None
    raise ValueError(f"unknown {DOMAIN}-domain op {node.op_type!r}")


# Constant tables (pooling matrices, window indices) of static strategies stay below this many
# entries per axis; beyond it `auto` takes the dynamic form, which computes them at run time.
TABLE_LIMIT = 2**26


def _tables_fit(spec):
    if spec.kind in STRIDED:
        outs = [o for o in spec.output_shape()[-spec.nd:]]
    else:
        outs = list(spec.out)
    for o, c in zip(outs, spec.spatial):
        if isinstance(o, int) and isinstance(c, int) and max(o, 1) * c > TABLE_LIMIT:
            return f"its constant tables would hold {max(o, 1) * c:,} entries on one axis (over {TABLE_LIMIT:,})"
    return None


def make_function(spec, opset: int, targets):
    """The model-local FunctionProto behind a custom-domain node: the dynamic graph, its
    arguments read from the node's attributes, so one definition serves every call."""
    name = function_name(spec)
    # With tract targeted the body holds one If (tract loads one per scope), the dynamic
    # graph's own; the choice of a reduction for output 1 would be a second one around it,
    # whose branches tract can't type (If ToTypedTranslator): the dynamic graph serves output 1
    # too, exactly.
    tract = "tract" in targets
    body = Builder(opset, prefix=name, in_function=True, targets=targets, if_budget=1 if tract else None)
    params = {a: body.attr_ints(a) for a in FUNCTION_ATTRS[spec.kind]}
    if spec.kind in STRIDED or spec.return_indices or tract:
        outs = _build_dynamic(body, spec, "X", params)
    else:   # output 1 everywhere (global pooling) runs as a reduction, decided per node
        ones = body.op("Equal", params["output_size"], body.ints(*[1] * spec.nd))
        global_pool = body.squeeze(body.op("Cast", body.reduce("ReduceMin", body.cast(ones, np.int64), [0], True),
                                           to=onnx_dtype(np.bool_)), 0)
        outs = [_if(body, global_pool, lambda sub: _build_reduce(sub, spec, "X")[0],
                    lambda sub: _build_dynamic(sub, spec, "X", params)[0], spec.dtype)]
    names = ["Y", "Indices"][:len(outs)]
    body.nodes.append(helper.make_node("Identity", [outs[0]], ["Y"], name=f"{name}/Y"))
    if len(outs) == 2:
        body.nodes.append(helper.make_node("Identity", [outs[1]], ["Indices"], name=f"{name}/Indices"))
    return helper.make_function(DOMAIN, name, ["X"], names, body.nodes,
                                [helper.make_opsetid("", opset)], list(FUNCTION_ATTRS[spec.kind]))


def _build_function(b, spec, x):
    outs = b.op(function_name(spec), x, outputs=2 if spec.return_indices else 1, domain=DOMAIN,
                **function_attributes(spec))
    b.functions[function_name(spec)] = (spec, make_function(spec, b.opset, b.targets))
    return outs if spec.return_indices else [outs]


# ---- when each strategy is exact ---------------------------------------------------------------

def _pooling_op_runs(spec):
    """onnxruntime's MaxPool/AveragePool/Global*Pool reject an empty channel axis."""
    if spec.batched and spec.shape[1] == 0:
        return "onnxruntime's pooling ops reject an empty channel axis (C = 0)"
    return None


def _all_ones(spec):
    if spec.return_indices:
        return "it has no indices output"
    if spec.kind in STRIDED or any(o != 1 for o in spec.out):
        return "it needs an output size of 1 on every pooled axis"
    return None


def _static(spec):
    return ("it needs static spatial sizes" if not spec.static_spatial else None) or _tables_fit(spec)


def _divisible(spec):
    if spec.kind in STRIDED:
        return _strided_pool_refuses(spec)
    reason = _static(spec)
    if reason:
        return reason
    if any(uniform_windows(o, c) is None for c, o in zip(spec.spatial, spec.out)):
        return "it needs uniform windows (one length at one stride: divisible sizes, or sizes like 15 -> 7)"
    return None


def _strided_pool_refuses(spec):
    """AveragePool / MaxPool with explicit pads (and dilations): where their windows are
    torch's, counted as torch counts them, and never empty."""
    pads = strided_pads(spec)
    if isinstance(pads, str):
        return pads
    if spec.kind == "maxpool" and any(d > 1 for d in spec.dilations) and any(spec.padding):
        if not spec.static_spatial:
            return "with dilation and padding a window can hold no element at some sizes (MaxPool's value there isn't torch's)"
        if any(ax.empty.any() for ax in static_axes(Builder(13), spec)):
            return "a window holds no element (dilation and padding), where MaxPool's answer isn't torch's"
    if spec.return_indices and not spec.static_spatial:
        return "its indices are made per plane with a constant plane size: static spatial sizes"
    return None


def uniform_windows(out: int, size: int):
    """(kernel, stride) when the adaptive windows of an axis are exactly a strided pool's
    windows: divisible sizes, and others such as 15 -> 7 (length 3, stride 2). Else None."""
    if out < 1:
        return None
    starts, ends = adaptive_windows(out, size)
    kernel = int(ends[0] - starts[0])
    stride = int(starts[1] - starts[0]) if out > 1 else kernel
    if stride < 1 or np.any(ends - starts != kernel) or np.any(starts != stride * np.arange(out)):
        return None
    return kernel, stride


def padded_windows(out: int, size: int):
    """(kernel, stride, pad_begin, pad_end) when the adaptive windows of an axis are a strided
    pool's windows over the axis padded on both sides (the pads count for nothing in MaxPool):
    223 -> 7 is kernel 33, stride 32, pads (1, 1), its windows 32 or 33 long. Else None."""
    if out < 1:
        return None
    starts, ends = adaptive_windows(out, size)
    for pad in range(int((ends - starts).max())):
        kernel = int(ends[0]) + pad
        stride = int(starts[1]) + pad if out > 1 else 1
        first = stride * np.arange(out) - pad
        if (stride < 1 or np.any(np.maximum(first, 0) != starts) or np.any(np.minimum(first + kernel, size) != ends)):
            continue
        pad_end = max(0, int(first[-1]) + kernel - size)
        if pad_end < kernel and (size + pad + pad_end - kernel) // stride + 1 == out:
            return kernel, stride, pad, pad_end
    return None


def _sliding_refuses(spec):
    if spec.return_indices:
        return "it has no indices output"
    if any(o == 0 for o in spec.out):   # its MaxPools would run on an emptied axis
        return "it needs output sizes above 0"
    return _static(spec) or _pooling_op_runs(spec)


_ALL_DTYPES = ("float16", "float32", "float64", "bfloat16")
# tract 0.23 has no bfloat16 at all: a bfloat16 graph input fails to load ("translating to
# fact: ... Bfloat16"), and so does a Cast to bfloat16 ("Building node (Cast)"). bfloat16 on
# onnxruntime's CUDA EP has not been measured.
_NO_BFLOAT16 = ("float16", "float32", "float64")
_EVERYWHERE = {"onnxruntime": _ALL_DTYPES, "openvino": _ALL_DTYPES, "tract": _NO_BFLOAT16,
               "onnxruntime-cuda": _NO_BFLOAT16}
# Why a runtime lacks a dtype in every strategy's exact_on (auto's warning says it)
DTYPE_GAPS = {("tract", "bfloat16"): "tract loads no bfloat16 tensor (graph input, output or Cast)",
              ("onnxruntime-cuda", "bfloat16"): "bfloat16 graphs have not run on onnxruntime's CUDA EP yet"}
# Runtimes that compute float64 in float32: no graph is exact there in float64, which is the
# runtime's limitation (validate() reports it as such), so it doesn't steer `auto`
# (OpenVINO's CPU plugin clamps float64 ±inf to ±FLT_MAX: openvinotoolkit/openvino#37968).
FLOAT64_IN_FLOAT32 = frozenset({"openvino"})


def _openvino_bfloat16(spec):
    """OpenVINO 2026.4's CPU plugin converts float32 to bfloat16 two ways, both measured wrong
    (tests/test_onnx_bfloat16.py::test_cast_rounding, ::test_openvino_bfloat16_graphs). In a
    graph with a dynamic dim it doesn't round to nearest even: a value whose bfloat16 truncation
    is even is truncated (0x3F808001 -> 0x3F80, not 0x3F81: one ulp low on about a quarter of
    all float32 values), and NaNs with low payload bits become ±0 or inf; a max pool's values
    are bfloat16 inputs, which it gives back exactly. In a graph of static shape it rounds to
    nearest even but flushes subnormal results to zero, max pools' too."""
    if spec.dtype != BFLOAT16:
        return None
    if all(isinstance(d, int) for d in spec.shape):
        return "OpenVINO flushes subnormal bfloat16 results to zero in graphs of static shape"
    if spec.kind in ("avg", "avgpool"):
        return "OpenVINO's Cast to bfloat16 truncates where it should round up (one ulp low) at dynamic shapes"
    return None


def _cuda_shape_nodes_refuse(spec):
    """Measured on an H200 (onnxruntime-gpu 1.31.1): onnxruntime places the shape arithmetic
    (Shape, Range, Gather on int64 sizes) on its CPU EP on purpose, which a strict CUDA
    session refuses (benchmarks/README.md)."""
    return "onnxruntime's CUDA EP leaves the graph's shape computations to the CPU EP (a strict session refuses it)"


def _cuda_unmeasured(spec):
    """The CUDA EP run covered the adaptive pools and avg_pool2d; the ops exported since have
    not run there."""
    if spec.kind == "maxpool" or (spec.kind == "avgpool" and spec.nd != 2):
        return f"{spec.op} graphs have not run on onnxruntime's CUDA EP yet"
    return None


def _cuda_indices_refuse(spec):
    """Measured on an H200 (onnxruntime-gpu 1.31.1): every graph with an indices output, in every
    strategy, had nodes placed on the CPU EP, which a strict CUDA session refuses (which nodes:
    not yet localized)."""
    if spec.return_indices:
        return "onnxruntime's CUDA EP left nodes of the indices graph on the CPU EP (a strict session refuses it)"
    return _cuda_unmeasured(spec)


def _dynamic_refuses(spec):
    return None


def _function_refuses(spec):
    # one function body serves every call of its name in a model, whatever its dilation
    # attribute: the body's windows are the contiguous ones
    if spec.kind == "maxpool" and any(d > 1 for d in spec.dilations):
        return "its function body has no dilation yet (the dynamic strategy has)"
    return None


def _tract_dynamic_refuses(spec):
    """tract's shape arithmetic: what it can't take in the dynamic form."""
    if spec.return_indices:   # even at static shapes; casts don't help (tract folds them)
        return "tract hands shape-derived int64 outputs back as TDim, which its Python API can't return"
    # static: runs; the max pools' windows (no divisors) run at dynamic sizes too
    if spec.kind == "avgpool" and not all(isinstance(d, int) for d in spec.shape):
        return f"tract's optimizer can't evaluate the symbolic slices of {spec.op}'s windows computed from Shape"
    return None


def _tract_function_refuses(spec):
    """The function body also reads output sizes from attributes: a kept size (None, -1 in the
    attribute) becomes a symbolic divisor, which tract's shape arithmetic can't divide by."""
    if spec.kind not in STRIDED and any(o is None for o in spec.out):
        return "tract can't divide by the symbolic size an output_size of None keeps (function attribute -1)"
    return _tract_dynamic_refuses(spec)


@dataclass(frozen=True)
class Strategy:
    """One form a call can take. ``exact_on`` maps each target runtime to the dtypes its
    graphs are exact on there, as measured by benchmarks/runtime_matrix.py on every call of
    the export test matrix (random data, and data with ties, NaN, +inf, -inf); ``auto`` only
    picks a strategy exact on every target. OpenVINO computes float64 in float32: that is its
    limitation, reported by validate(), not a gap of the graph."""
    name: str
    kinds: tuple                    # op kinds it serves: "avg", "max", "avgpool", "maxpool"
    summary: str
    refuses: Callable               # spec -> reason it is not exact here, or None
    build: Callable                 # (builder, spec, input value) -> output values
    exact_on: dict = field(default_factory=lambda: dict(_EVERYWHERE))
    min_opset: int = 13
    auto_if: Callable = lambda spec: True   # further conditions for `auto` (measured speed)
    notes: str = ""                 # where the table's runtimes need a caveat
    target_refuses: dict = field(default_factory=dict)   # target -> (spec -> reason or None)

    def not_exact_on(self, spec, targets) -> list:
        """The targets among ``targets`` this strategy's graph for ``spec`` is not exact on."""
        dtype = spec.dtype.name
        return [t for t in targets
                if not (dtype == "float64" and t in FLOAT64_IN_FLOAT32)
                and (dtype not in self.exact_on.get(t, ()) or (t in self.target_refuses and self.target_refuses[t](spec)))]


STRATEGIES = {s.name: s for s in (
    Strategy("global", ("avg", "max"), "GlobalAveragePool / GlobalMaxPool (output 1)",
             lambda spec: _all_ones(spec) or _pooling_op_runs(spec), _build_global,
             exact_on={**_EVERYWHERE, "onnxruntime": ("float16", "float32", "bfloat16")},
             target_refuses={"openvino": _openvino_bfloat16},
             notes="onnxruntime's CPU EP has no float64 GlobalAveragePool/GlobalMaxPool kernel"),
    Strategy("reduce", ("avg", "max"), "ReduceMean / ReduceMax over the pooled axes (output 1)",
             _all_ones, _build_reduce,
             target_refuses={"onnxruntime-cuda": _cuda_unmeasured, "openvino": _openvino_bfloat16}),
    # onnxruntime's CPU EP has no float64 AveragePool: `auto` takes the MatMul form there
    # onnxruntime's CPU AveragePool is ~2x slower than the MatMul form on planes above 32x32
    # (benchmarks/README.md): `auto` takes it for adaptive averages of small planes only, and
    # for every bfloat16 one: it sums (a bfloat16 window's float32 sum is mostly exact) and then
    # divides, so it rounds as torch does, where the MatMul forms' weights (1/n applied before
    # summing) put ~0.6% of bfloat16 results one ulp off (test_onnx_bfloat16.py)
    Strategy("pool", ("avg", "max", "avgpool", "maxpool"),
             "AveragePool / MaxPool (uniform windows; the strided pools, with pads for ceil_mode's windows)",
             lambda spec: _divisible(spec) or _pooling_op_runs(spec), _build_pool,
             exact_on={**_EVERYWHERE, "onnxruntime": ("float16", "float32", "bfloat16")},
             auto_if=lambda spec: spec.kind != "avg" or spec.dtype == BFLOAT16 or int(np.prod(spec.spatial)) <= 1024,
             target_refuses={"onnxruntime-cuda": _cuda_indices_refuse, "openvino": _openvino_bfloat16},
             notes="onnxruntime's CPU EP has no float64 AveragePool kernel; the CUDA EP places part of the "
                   "indices graph on CPU"),
    # The CUDA EP's TF32 MatMul made the plain float32 form ~1e-3 off (H200, onnxruntime-gpu
    # 1.31.1); the TF32-safe form built for that target is exact on the CPU runtimes but has not
    # run on a GPU yet, so float32 is not claimed there
    Strategy("matmul", ("avg", "avgpool"), "exact separable MatMul with constant pooling matrices",
             _static, _build_matmul, exact_on={**_EVERYWHERE, "onnxruntime-cuda": ("float16", "float64")},
             target_refuses={"onnxruntime-cuda": _cuda_unmeasured, "openvino": _openvino_bfloat16},
             notes="onnxruntime-cuda: float32 not measured in its TF32-safe form"),
    Strategy("sliding", ("max",), "sliding-window max (dilated MaxPool doubling), then Gather of each window's two halves",
             _sliding_refuses, _build_sliding,
             target_refuses={"onnxruntime-cuda": _cuda_unmeasured, "openvino": _openvino_bfloat16}),
    Strategy("gather", ("max", "maxpool"), "Gather of each window's indices, then ReduceMax (ArgMax for indices)",
             _static, _build_gather,
             target_refuses={"onnxruntime-cuda": _cuda_indices_refuse, "openvino": _openvino_bfloat16},
             notes="the CUDA EP places part of the indices graph on CPU"),
    Strategy("dynamic", ("avg", "max", "avgpool", "maxpool"), "windows computed in the graph from Shape: any size",
             _dynamic_refuses, _build_dynamic,
             target_refuses={"tract": _tract_dynamic_refuses, "onnxruntime-cuda": _cuda_shape_nodes_refuse,
                             "openvino": _openvino_bfloat16},
             notes="tract: not with return_indices, nor avg_pool2d at dynamic sizes (see target_refuses)"),
    Strategy("function", ("avg", "max", "avgpool", "maxpool"),
             "one adapool-domain node whose model-local function body is the dynamic graph",
             _function_refuses, _build_function,
             target_refuses={"tract": _tract_function_refuses, "onnxruntime-cuda": _cuda_shape_nodes_refuse,
                             "openvino": _openvino_bfloat16},
             notes="OpenVINO and tract run it once inlined (export(inline=True); validate() inlines for them)"),
)}

# `auto` takes the first strategy in this order that is exact for the call (ReduceMean before
# GlobalAveragePool: onnxruntime's CPU EP runs it faster; see benchmarks/README.md).
AUTO_ORDER = {
    "avg": ("reduce", "pool", "matmul", "dynamic"),
    "max": ("reduce", "pool", "sliding", "gather", "dynamic"),
    "avgpool": ("pool", "matmul", "dynamic"),
    "maxpool": ("pool", "gather", "dynamic"),
    "unpool": ("scatter",),
    "fractional": ("constant",),
}


# ---- max_unpool: a scatter into zeros ------------------------------------------------------------

def _build_scatter(b: Builder, spec, xs) -> list:
    """max_unpool: each plane flattened, its values written at torch's per-plane indices into a
    zero plane of the output's size (ScatterElements along the last axis), reshaped back. A
    dynamic spatial size's output size is torch's default, ``(in - 1) * stride + kernel - 2 *
    padding``, computed from Shape. Indices the graph can't check as torch does: an index past
    the plane fails at run time (onnxruntime's ScatterElements checks bounds); a negative one in
    [-size, 0) counts from the plane's end (ONNX's rule; torch raises); repeated indices write in
    an order ONNX leaves open (torch: the last one wins), which can't matter for max pooling's,
    whose repeats carry the same value."""
    x, idx = xs
    lead = spec.rank - spec.nd
    ins = [s if isinstance(s, int) else b.dims(x, lead + d, lead + d + 1) for d, s in enumerate(spec.spatial)]
    outs = [o if o is not None else
            b.op("Add", b.op("Mul", b.op("Sub", c, b.ints(1)), b.ints(st)), b.ints(k - 2 * p))
            for o, c, st, k, p in zip(spec.out, ins, spec.stride, spec.kernel, spec.padding)]
    n_in, n_out = ins[0], outs[0]
    for c, o in zip(ins[1:], outs[1:]):
        n_in, n_out = size_product(b, n_in, c), size_product(b, n_out, o)
    # leading dims spelled out (an N of 0 must not read as "copy"); allowzero arrived in opset 14
    zero_ok = {"allowzero": 1} if b.opset >= 14 else {}
    lead_dims = [b.dims(x, 0, lead)] if b.opset >= 14 else [0] * lead
    flat = size_vector(b, lead_dims + [n_in])
    zeros = b.op("ConstantOfShape", size_vector(b, [b.dims(x, 0, lead), n_out]),
                 value=onnx.numpy_helper.from_array(np.zeros(1, spec.dtype)))
    y = b.op("ScatterElements", zeros, b.op("Reshape", idx, flat, **zero_ok), b.op("Reshape", x, flat, **zero_ok),
             axis=-1)
    return [b.op("Reshape", y, size_vector(b, lead_dims + outs), **zero_ok)]


# max_unpool's one form (it has no other kind's windows)
STRATEGIES["scatter"] = Strategy(
    "scatter", ("unpool",), "ScatterElements of each plane's values at its indices into zeros (max_unpool)",
    lambda spec: None, _build_scatter, target_refuses={"onnxruntime-cuda": lambda spec: "max_unpool graphs have "
                                                       "not run on onnxruntime's CUDA EP yet"},
    notes="indices past the plane fail at run time; negative ones count from the plane's end (torch raises)")


# ---- fractional max pooling: constant per-plane windows -------------------------------------------

def fractional_tables(spec) -> np.ndarray:
    """(planes, prod(out), prod(kernel)): each plane's windows as flat in-plane input indices,
    row-major within a window, found by adapool's own kernel: pooling a ramp along one axis
    (constant along the others) with the call's samples, its index is each window's last
    position on that axis (the largest value; ties elsewhere keep the first), less kernel - 1
    its start. So the starts are the kernel's, in the samples' own float type."""
    nd, spatial, kernel, out = spec.nd, spec.spatial, spec.kernel, spec.out
    samples = fractional_samples(spec)
    full = samples.shape[:2] + spatial
    planes = full[0] * full[1]
    strides = [int(np.prod(spatial[j + 1:])) for j in range(nd)]
    total = np.zeros((planes,) + tuple(out) + tuple(kernel), np.int64)
    for j in range(nd):
        ramp = np.arange(spatial[j], dtype=spec.dtype).reshape([-1 if i == j else 1 for i in range(nd)])
        ramp = np.ascontiguousarray(np.broadcast_to(ramp, full))
        # a bfloat16 call's windows: its samples' bfloat16 arithmetic, on a float32 ramp
        _, idx = _fractional._fractional_forward(nd, ramp, list(kernel), list(out), None, True, samples, None,
                                                 bf16=spec.bfloat16_windows)
        last = np.unravel_index(idx.reshape(planes, -1), spatial)[j].reshape((planes,) + tuple(out))
        starts = last[(slice(None),) + tuple(slice(None) if i == j else 0 for i in range(nd))] - (kernel[j] - 1)
        shape = [planes] + [1] * (2 * nd)
        shape[1 + j] = out[j]
        offsets = [1] * (1 + 2 * nd)
        offsets[1 + nd + j] = kernel[j]
        total += (starts.reshape(shape) + np.arange(kernel[j]).reshape(offsets)) * strides[j]
    return total.reshape(planes, int(np.prod(out)), int(np.prod(kernel)))


def _fractional_refuses(spec):
    if 0 in spec.shape or 0 in spec.out:
        # OpenVINO rejects the empty constant tables, and tract returns the empty int64 indices
        # of the ConstantOfShape form as TDim: no graph is exact everywhere yet
        return "an empty input or output (a batch or an output size of 0) is not exported yet"
    # the ramp's positions must be exact in the dtype for the probe to find the windows
    if spec.dtype == np.float16 and max(spec.spatial) > 2048:
        return "float16 windows are found on a ramp of positions, exact up to 2048"
    entries = int(np.prod(spec.shape[:-spec.nd])) * int(np.prod(spec.out)) * int(np.prod(spec.kernel))
    if entries > TABLE_LIMIT:   # one table entry per plane, output and window slot
        return f"its constant window tables would hold {entries:,} entries (over {TABLE_LIMIT:,})"
    return None


def _build_fractional(b: Builder, spec, x: str) -> list:
    """Each plane's windows (constants, offset by the plane's start) gathered from the flattened
    input, then torch's rule (last NaN, else first maximum) over each window; indices are the
    table's entry at the chosen slot. Gather, not GatherElements, whose onnx reference
    implementation fails on these shapes."""
    table = fractional_tables(spec)
    planes, n_out, window = table.shape
    plane = int(np.prod(spec.spatial))
    offsets = (np.arange(planes, dtype=np.int64) * plane).reshape(planes, 1, 1)
    g = b.op("Gather", b.op("Reshape", x, b.ints(-1)), b.const(table + offsets), axis=0)   # (planes, out, window)
    values, k = _torch_max_rule(b, g, spec.dtype, window)
    shape = b.ints(*spec.output_shape())
    outs = [b.op("Reshape", values, shape)]
    if spec.return_indices:   # the table's entry at (plane, output, k)
        base = (np.arange(planes * n_out, dtype=np.int64) * window).reshape(planes, n_out, 1)
        outs.append(b.op("Reshape", b.op("Gather", b.const(table.reshape(-1)), b.op("Add", b.const(base), k), axis=0),
                         shape))
    return outs


STRATEGIES["constant"] = Strategy(
    "constant", ("fractional",), "fractional max pooling: each plane's constant windows gathered, torch's max "
    "rule by ArgMax", _fractional_refuses, _build_fractional,
    target_refuses={"onnxruntime-cuda": lambda spec: "fractional max pool graphs have not run on onnxruntime's "
                                                     "CUDA EP yet"})


# ---- lp_pool: powers around the strided pools' own forms -----------------------------------------

def _lp_steps(b: Builder, spec):
    """torch's elementwise steps as adapool's lp_pool computes them (adapool._lp._Steps): float16
    in float32, rounded to float16 after every op; float32 and float64 as they are."""
    half = spec.dtype == np.float16
    work = np.dtype(np.float32) if half else spec.dtype
    up = (lambda v: b.cast(v, np.float32)) if half else (lambda v: v)             # noqa: E731
    down = (lambda v: b.cast(v, np.float16)) if half else (lambda v: v)           # noqa: E731

    def power(v, e):
        """``v ** e`` with torch's special cases, each rounding as torch's (adapool._lp._pow)."""
        if e == 0:   # NaN ** 0 is 1 too
            return b.op("ConstantOfShape", b.op("Shape", v), value=onnx.numpy_helper.from_array(np.ones(1, work)))
        if e == 1:
            return v
        if e in (2, 3, -2):
            square = b.op("Mul", v, v)
            return {2: square, 3: b.op("Mul", square, v), -2: b.op("Div", b.scalar(1, work), square)}[e]
        if e == 0.5:
            return b.op("Sqrt", v)
        if e == -0.5:
            return b.op("Div", b.scalar(1, work), b.op("Sqrt", v))
        if e == -1:
            return b.op("Div", b.scalar(1, work), v)
        return b.op("Pow", v, b.scalar(e, work))
    return work, up, down, power


def _build_lp(b: Builder, spec, x: str, pool: Callable) -> list:
    """lp_pool as torch composes it: ``pool`` (the chosen strategy's builder for the inner
    avg/max pool, ``inner_spec``) between the powers. p = ±inf: ±max_pool(±|x|)."""
    inner = inner_spec(spec)
    direction = _lp._infinite(spec.norm_type)
    if direction:
        a = b.op("Abs", x)
        if direction < 0:
            return [b.op("Neg", pool(b, inner, b.op("Neg", a))[0])]
        return pool(b, inner, a)
    steps = _lp._Steps(spec.dtype)
    p, e = steps.exponent(spec.norm_type), steps.exponent(_lp._inverse(spec.norm_type))
    work, up, down, power = _lp_steps(b, spec)
    pooled = pool(b, inner, down(power(up(x), p)))[0]
    scaled = b.op("Mul", up(pooled), b.scalar(float(np.prod(spec.kernel)), work))
    # torch's sign(s) * relu(|s|) makes -0.0 +0.0 (-0.0 ** -1 would be -inf); not s + 0.0, which
    # graph optimizers may drop
    scaled = b.op("Where", b.op("Equal", scaled, b.scalar(0, work)), b.scalar(0, work), scaled)
    if spec.dtype == np.float16:
        scaled = up(down(scaled))
    return [down(power(scaled, e))]


def _lp_strategy(s: Strategy) -> Strategy:
    """``s`` for lp_pool: it refuses what it refuses for the inner pool, and builds the powers
    around its graph. The CUDA EP has not run these graphs."""
    def refuses(spec):
        inner = inner_spec(spec)
        if inner.kind not in s.kinds:
            return f"it doesn't serve {'max' if inner.kind == 'maxpool' else 'average'} pooling (the inner pool here)"
        return s.refuses(inner)

    wrapped = {t: (lambda spec, f=f: f(inner_spec(spec))) for t, f in s.target_refuses.items()}
    wrapped["onnxruntime-cuda"] = lambda spec: "lp_pool graphs have not run on onnxruntime's CUDA EP yet"
    return replace(s, kinds=("lppool",), refuses=refuses, build=lambda b, spec, x: _build_lp(b, spec, x, s.build),
                   auto_if=lambda spec: s.auto_if(inner_spec(spec)), target_refuses=wrapped)


# the forms of the inner strided pools; `auto` takes them in their own order
LP_STRATEGIES = {name: _lp_strategy(s) for name, s in STRATEGIES.items() if {"avgpool", "maxpool"} & set(s.kinds)}


def _table(spec) -> tuple:
    """(the strategies serving ``spec``'s kind, auto's order of them)."""
    if spec.kind == "lppool":
        return LP_STRATEGIES, [n for n in AUTO_ORDER[inner_spec(spec).kind]]
    return STRATEGIES, AUTO_ORDER[spec.kind]


def choose(spec, strategy: str, opset: int, targets=DEFAULT_TARGETS) -> Strategy:
    table, order = _table(spec)
    if strategy == "auto":
        usable = [table[n] for n in order if table[n].refuses(spec) is None and opset >= table[n].min_opset]
        if not usable:   # never a wrong graph: say what each form lacks
            raise ExportError(f"{spec.op}: no strategy exports this call exactly: " + "; ".join(
                f"{n}: {table[n].refuses(spec) or f'needs opset >= {table[n].min_opset}'}" for n in order))
        for s in usable:
            if not s.not_exact_on(spec, targets) and s.auto_if(spec):
                return s
        # dynamic serves every call; only a target's own limits leave nothing exact everywhere
        # fewest targets missed; among those, the one exact on onnxruntime, then OpenVINO, then
        # the one auto picks for its speed (a bfloat16 call misses tract with every strategy)
        s = min(usable, key=lambda s: (len(s.not_exact_on(spec, targets)),
                                       "onnxruntime" in s.not_exact_on(spec, targets),
                                       "openvino" in s.not_exact_on(spec, targets), not s.auto_if(spec)))
        missing = s.not_exact_on(spec, targets)
        refusals = {t: DTYPE_GAPS.get((t, spec.dtype.name)) if spec.dtype.name not in s.exact_on.get(t, ())
                    else s.target_refuses[t](spec) if t in s.target_refuses else None for t in missing}
        reasons = "; ".join(f"{t}: {why}" for t, why in refusals.items() if why)
        what = ("which is not exact there, for those reasons" if spec.dtype == BFLOAT16 and all(refusals.values())
                else "which those runtimes refuse to load or run" if all(refusals.get(t) for t in missing)
                else f"which is not known to be exact there in {spec.dtype.name}")
        warnings.warn(f"{spec.op}: no strategy is exact on {', '.join(missing)} for this call ({reasons or 'dtype'}); "
                      f"using {s.name!r}, {what} (pass targets= without them to silence this)", stacklevel=4)
        return s
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of: auto, {', '.join(STRATEGIES)}")
    s = table.get(strategy, STRATEGIES[strategy])
    if spec.kind not in s.kinds:
        raise ExportError(f"{spec.op}: strategy {strategy!r} does not serve this op "
                          f"(it serves {', '.join(k for k in s.kinds)} pooling)")
    reason = s.refuses(spec)
    if reason is not None:
        raise ExportError(f"{spec.op}: strategy {strategy!r} is not exact for this call: {reason}")
    if opset < s.min_opset:
        raise ExportError(f"{spec.op}: strategy {strategy!r} needs opset >= {s.min_opset}, got {opset}")
    return s


def check_opset_for(spec, opset: int) -> None:
    """Limits that depend on the call, whatever the strategy."""
    if opset < 14 and spec.return_indices and any(o == 0 for o in spec.out):
        raise ExportError(f"{spec.op}: an output size of 0 with return_indices needs opset >= 14 "
                          f"(Reshape's allowzero), got {opset}")
