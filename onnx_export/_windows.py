"""Each pooled axis's windows as graph values. The static form computes them with adapool's
own window module and emits constants; the dynamic form computes the same integers inside the
graph from Shape, so one graph is exact at every input size. Both expose the same attributes,
and the strategies never ask which one they hold."""
from __future__ import annotations

import functools

import numpy as np

from adapool._windows import adaptive_windows, max_pool_windows, pool_output_size, pool_windows

from ._builder import Builder


def size_vector(b: Builder, pieces) -> str:
    """A 1-D int64 shape tensor from ints and 1-D int64 values (Concat only when needed)."""
    if all(isinstance(p, int) for p in pieces):
        return b.ints(*pieces)
    parts, run = [], []
    for p in pieces:
        if isinstance(p, int):
            run.append(p)
            continue
        if run:
            parts.append(b.ints(*run))
            run = []
        parts.append(p)
    if run:
        parts.append(b.ints(*run))
    return b.op("Concat", *parts, axis=0)


def size_product(b: Builder, a, c):
    if isinstance(a, int) and isinstance(c, int):
        return a * c
    to_vec = lambda v: b.ints(v) if isinstance(v, int) else v  # noqa: E731
    return b.op("Mul", to_vec(a), to_vec(c))


class StaticAxis:
    """Windows of one axis when its input size is known: constants."""

    def __init__(self, b: Builder, starts: np.ndarray, ends: np.ndarray, factors: np.ndarray, in_size: int):
        self.b, self.starts, self.ends, self.factors = b, starts, ends, factors
        self.in_size = in_size          # ints: sizes usable in shape vectors
        self.out_size = len(starts)
        lengths = ends - starts
        self.window = max(int(lengths.max(initial=0)), 1)
        self.identity = (self.out_size == in_size and bool(np.all(lengths == 1))
                         and bool(np.all(starts == np.arange(in_size))) and bool(np.all(factors == 1)))

    def dense(self) -> np.ndarray:
        """(out, in) float64 averaging matrix: row o holds 1/factor over window o (0 for empty
        windows)."""
        p = np.zeros((self.out_size, self.in_size), dtype=np.float64)
        for o, (s, e, f) in enumerate(zip(self.starts, self.ends, self.factors)):
            if e > s:
                p[o, s:e] = 1.0 / f
        return p

    def matrix(self, dtype, transposed: bool = False, builder=None) -> str:
        p = self.dense().astype(dtype)
        return self.b.const(p.T.copy() if transposed else p)

    def mask(self, dtype, transposed: bool = False, builder=None) -> str:
        """(out, in) 0/1 matrix of the windows (the averaging matrix without its 1/factor)."""
        p = (self.dense() != 0).astype(dtype)
        return self.b.const(p.T.copy() if transposed else p)

    def table_array(self) -> np.ndarray:
        """(out, window) input indices of each window, padded by repeating its last index, which
        changes neither its max nor which element is its first maximum or last NaN."""
        k = np.arange(self.window, dtype=np.int64)
        return np.minimum(self.starts[:, None] + k, self.ends[:, None] - 1).astype(np.int64)

    def table(self) -> str:
        return self.b.const(self.table_array())

    def valid(self) -> str:
        """(out, window) bool: which slots of the table are real window elements."""
        return self.b.const(np.arange(self.window) < (self.ends - self.starts)[:, None])

    def weights(self, dtype) -> str:
        """(out,) 1/factor, 0 for empty windows."""
        f = self.factors.astype(np.float64)
        w = np.divide(1.0, f, out=np.zeros_like(f), where=(f != 0) & (self.ends > self.starts))
        return self.b.const(w.astype(dtype))


class StaticMaxAxis(StaticAxis):
    """Windows of one axis of a strided max pool: ``kernel`` slots ``dilation`` apart, read
    from adapool's max_pool_windows (start, end, step). Slots in the padding or past the input
    repeat the window's nearest element (first before it, last after it): that changes neither
    the max nor which element is the first maximum or the last NaN, since the table stays
    non-decreasing along each axis. A window with no element at all (dilation and padding can
    make one) is flagged in ``empty``; its slots read element 0 and the caller masks them."""

    def __init__(self, b: Builder, o: int, c: int, kernel: int, stride: int, pad: int, dilation: int):
        starts, ends, step = max_pool_windows(o, c, kernel, stride, pad, dilation)
        super().__init__(b, starts, ends, np.ones(o, dtype=np.int64), c)
        self.empty = ends <= starts
        first = np.arange(o, dtype=np.int64)[:, None] * stride - pad + np.arange(kernel, dtype=np.int64) * dilation
        last = starts + np.maximum(ends - 1 - starts, 0) // dilation * dilation   # the last element read
        table = np.clip(first, starts[:, None], last[:, None])
        self._table = np.where(self.empty[:, None], 0, table).astype(np.int64)
        self.window = kernel
        self.identity = (o == c and kernel == 1 and stride == 1 and pad == 0)

    def table_array(self) -> np.ndarray:
        return self._table


def static_axes(b: Builder, spec) -> list:
    axes = []
    for i, c in enumerate(spec.spatial):
        if spec.kind == "maxpool":
            o = pool_output_size(c, spec.kernel[i], spec.stride[i], spec.padding[i], spec.ceil_mode, spec.dilation[i])
            axes.append(StaticMaxAxis(b, o, c, spec.kernel[i], spec.stride[i], spec.padding[i], spec.dilation[i]))
            continue
        if spec.kind == "avgpool":
            o = pool_output_size(c, spec.kernel[i], spec.stride[i], spec.padding[i], spec.ceil_mode)
            s, e, f = pool_windows(o, c, spec.kernel[i], spec.stride[i], spec.padding[i], spec.count_include_pad)
            if spec.divisor_override is not None:   # the whole divisor goes on the last axis
                f = np.full(o, spec.divisor_override if i == spec.nd - 1 else 1, dtype=np.int64)
        else:
            s, e = adaptive_windows(spec.out[i], c)
            f = e - s
        axes.append(StaticAxis(b, s, e, f, c))
    return axes


class DynamicAxis:
    """Windows of one axis computed in the graph from the input's runtime size.

    ``out`` is a 0-d int64 value for adaptive pooling (None keeps the input size: an identity
    axis); ``pool`` holds a strided pool's parameters as 0-d values, a max pool's ``dilation``
    among them when it spaces the windows' elements (max_pool_windows' tables, as
    StaticMaxAxis builds them; ``empty`` flags the windows with no element). Mirrors
    adapool._windows."""

    def __init__(self, b: Builder, x: str, axis: int, *, out=None, keep_if_negative: bool = False,
                 pool: dict | None = None, last: bool = False):
        self.b = b
        self._c = b.squeeze(b.dims(x, axis, axis + 1 if axis != -1 else None), 0)
        self.in_size = b.unsqueeze(self._c, 0)
        self.identity = out is None and pool is None
        self._out, self._keep, self._pool, self._last = out, keep_if_negative, pool, last

    @functools.cached_property
    def _windows(self):
        """(out, starts, ends, factors), emitted on first use so identity axes add no nodes."""
        b, c, i64 = self.b, self._c, np.int64
        zero, one = b.scalar(0, i64), b.scalar(1, i64)
        if self._pool is None:
            out = c if self._out is None else self._out
            if self._keep:   # a function attribute of -1 keeps the input size
                out = b.op("Where", b.op("Less", out, zero), c, out)
            i = b.op("Range", zero, out, one)
            # an output size of 0 leaves i empty; divide by at least 1 (onnxruntime rejects a
            # constant integer divisor of 0 when it builds the session)
            div = b.op("Max", out, one)
            start = b.op("Div", b.op("Mul", i, c), div)
            end = b.op("Div", b.op("Add", b.op("Mul", b.op("Add", i, one), c), b.op("Sub", out, one)), div)
            return out, start, end, b.op("Sub", end, start)
        pool = self._pool
        k, s, p = pool["kernel"], pool["stride"], pool["padding"]
        ceil = pool["ceil_mode"]   # 0-d int64, 0 or 1
        if "dilation" in pool:   # the span a window covers: dilation * (kernel - 1) + 1
            k = b.op("Add", b.op("Mul", pool["dilation"], b.op("Sub", k, one)), one)
        numer = b.op("Add", b.op("Sub", b.op("Add", c, b.op("Mul", p, b.scalar(2, i64))), k),
                     b.op("Mul", ceil, b.op("Sub", s, one)))
        out = b.op("Add", b.op("Div", numer, s), one)
        # ceil_mode: the last window must start inside the input or the left padding, so at
        # most (c + p - 1) // s + 1 windows; exactly torch's "drop the last one if it starts past
        # c + p" since p < k. Arithmetic, not a comparison: tract keeps the size symbolic then
        # (a Cast of a comparison makes it data-dependent, and the If reading it untypable).
        fits = b.op("Add", b.op("Div", b.op("Sub", b.op("Add", c, p), one), s), one)
        out = b.op("Sub", out, b.op("Mul", ceil, b.op("Sub", out, b.op("Min", out, fits))))
        i = b.op("Range", zero, out, one)
        start = b.op("Sub", b.op("Mul", i, s), p)
        end = b.op("Min", b.op("Add", start, k), b.op("Add", c, p))
        padded = b.op("Sub", end, start)   # declared padding counts, the ceil overhang does not
        start = b.op("Max", start, zero)
        end = b.op("Max", b.op("Min", end, c), start)
        factor = b.op("Where", b.cast(pool["count_include_pad"], np.bool_), padded, b.op("Sub", end, start))
        # divisor_override (0 = none): the whole divisor goes on the last axis
        d = pool["divisor_override"]
        fixed = d if self._last else one
        factor = b.op("Where", b.op("Equal", d, zero), factor, b.op("Expand", fixed, b.op("Shape", factor)))
        return out, start, end, factor

    @property
    def out_size(self) -> str:
        return self.in_size if self.identity else self.b.unsqueeze(self._windows[0], 0)

    @property
    def starts(self):
        return self._windows[1]

    @property
    def ends(self):
        return self._windows[2]

    @property
    def factors(self):
        return self._windows[3]

    def matrix(self, dtype, transposed: bool = False, builder=None, weighted: bool = True) -> str:
        """(out, in) averaging matrix, emitted into ``builder`` (an If branch that needs it);
        with ``weighted=False`` the 0/1 window mask."""
        b = builder or self.b
        starts, ends, factors = self.starts, self.ends, self.factors   # 1-D: stay in the outer graph
        h = b.unsqueeze(b.op("Range", b.scalar(0, np.int64), self._c, b.scalar(1, np.int64)), 0)
        inside = b.op("And", b.op("GreaterOrEqual", h, b.unsqueeze(starts, 1)), b.op("Less", h, b.unsqueeze(ends, 1)))
        weight = b.unsqueeze(b.op("Div", b.scalar(1, dtype), b.cast(factors, dtype)), 1) if weighted \
            else b.scalar(1, dtype)
        p = b.op("Where", inside, weight, b.scalar(0, dtype))
        return b.op("Transpose", p, perm=[1, 0]) if transposed else p

    def mask(self, dtype, transposed: bool = False, builder=None) -> str:
        return self.matrix(dtype, transposed, builder, weighted=False)

    @functools.cached_property
    def window(self) -> str:
        """A bound on the window lengths (at least 1) as a 1-D value: the kernel size for
        the strided pools; for adaptive windows ceil(c / o) + 1, since a window spans less than
        c / o + 2 positions. A formula of the sizes, not a ReduceMax over the lengths, so
        that tract can still read the shapes built from it as expressions of the input's
        symbolic dims ("shape input is variable" otherwise). Table slots past a window's end
        repeat its last index and are masked where it matters."""
        b, i64 = self.b, np.int64
        if self._pool is not None:
            return b.unsqueeze(self._pool["kernel"], 0)
        out = b.op("Max", self._windows[0], b.scalar(1, i64))
        ceil = b.op("Div", b.op("Sub", b.op("Add", self._c, out), b.scalar(1, i64)), out)
        return b.unsqueeze(b.op("Add", ceil, b.scalar(1, i64)), 0)

    def valid(self) -> str:
        b = self.b
        k = b.op("Range", b.scalar(0, np.int64), b.squeeze(self.window, 0), b.scalar(1, np.int64))
        return b.op("Less", b.unsqueeze(k, 0), b.unsqueeze(b.op("Sub", self.ends, self.starts), 1))

    def weights(self, dtype) -> str:
        b = self.b
        inv = b.op("Div", b.scalar(1, dtype), b.cast(self.factors, dtype))
        empty = b.op("Or", b.op("Equal", self.factors, b.scalar(0, np.int64)),
                     b.op("Equal", self.ends, self.starts))
        return b.op("Where", empty, b.scalar(0, dtype), inv)

    @functools.cached_property
    def _dilated(self):
        """A dilated max pool's windows as max_pool_windows gives them: (first in-bounds
        position, clamped to the size, as torch's index of an empty window; the window table;
        empty). Slots before the first element or past the last repeat them (the max and which
        element is the first maximum or the last NaN don't change), an empty window's read 0."""
        b, c, i64 = self.b, self._c, np.int64
        zero, one = b.scalar(0, i64), b.scalar(1, i64)
        pool = self._pool
        d = pool["dilation"]
        first = b.op("Sub", b.op("Mul", b.op("Range", zero, self._windows[0], one), pool["stride"]), pool["padding"])
        # the padding skipped in steps of the dilation (-first > 0 there: Div floors)
        skip = b.op("Mul", b.op("Div", b.op("Sub", b.op("Add", b.op("Neg", first), d), one), d), d)
        start = b.op("Min", b.op("Where", b.op("Less", first, zero), b.op("Add", first, skip), first), c)
        end = b.op("Min", b.op("Add", first, b.op("Add", b.op("Mul", b.op("Sub", pool["kernel"], one), d), one)), c)
        empty = b.op("LessOrEqual", end, start)
        last = b.op("Add", start, b.op("Mul", b.op("Div", b.op("Max", b.op("Sub", b.op("Sub", end, one), start), zero),
                                                    d), d))
        j = b.op("Range", zero, pool["kernel"], one)
        slots = b.op("Add", b.unsqueeze(first, 1), b.unsqueeze(b.op("Mul", j, d), 0))
        table = b.op("Min", b.op("Max", slots, b.unsqueeze(start, 1)), b.unsqueeze(last, 1))
        table = b.op("Where", b.unsqueeze(empty, 1), b.scalar(0, i64), table)
        return start, table, empty

    @property
    def first_in_bounds(self) -> str:
        return self._dilated[0]

    @property
    def empty(self) -> str:
        return self._dilated[2]

    @functools.lru_cache(maxsize=None)   # noqa: B019 (one axis object per export)
    def table(self) -> str:
        b = self.b
        if self._pool is not None and "dilation" in self._pool:
            return self._dilated[1]
        k = b.op("Range", b.scalar(0, np.int64), b.squeeze(self.window, 0), b.scalar(1, np.int64))
        idx = b.op("Add", b.unsqueeze(self.starts, 1), b.unsqueeze(k, 0))
        return b.op("Min", idx, b.unsqueeze(b.op("Sub", self.ends, b.scalar(1, np.int64)), 1))


def dynamic_axes(b: Builder, spec, x: str, params: dict | None = None) -> list:
    """Dynamic windows for every spatial axis. ``params`` (function bodies) maps each argument
    name to a 1-D int64 value; otherwise the spec's own values become constants."""
    nd = spec.nd
    strided = spec.kind in ("avgpool", "maxpool")
    if params is None:
        if strided:
            params = {"kernel": spec.kernel, "stride": spec.stride, "padding": spec.padding,
                      "ceil_mode": [int(spec.ceil_mode)]}
    if strided and spec.kind == "maxpool":   # the factors are not used: constants
        params = {**params, "count_include_pad": [1], "divisor_override": [0]}
        if any(dl > 1 for dl in spec.dilation) and "dilation" not in params:
            params["dilation"] = spec.dilation
    elif strided and "count_include_pad" not in params:
        params = {**params, "count_include_pad": [int(spec.count_include_pad)],
                  "divisor_override": [spec.divisor_override or 0]}
    # dilated windows: the function strategy refuses them, so only the spec's own constants
    dilated = strided and spec.kind == "maxpool" and "dilation" in params and not isinstance(params["dilation"], str)

    def pick(vec, i):   # entry i as a 0-d value: a constant, or a Gather from an attribute
        if isinstance(vec, str):
            return b.op("Gather", vec, b.scalar(i, np.int64), axis=0)
        return b.scalar(vec[i], np.int64)
    axes = []
    for i in range(nd):
        a = i - nd
        if strided:
            pool = {k: pick(params[k], i if len_i > 1 else 0) for k, len_i in
                    (("kernel", nd), ("stride", nd), ("padding", nd), ("ceil_mode", 1),
                     ("count_include_pad", 1), ("divisor_override", 1)) + ((("dilation", nd),) if dilated else ())}
            axes.append(DynamicAxis(b, x, a, pool=pool, last=(i == nd - 1)))
        elif params is not None:
            axes.append(DynamicAxis(b, x, a, out=pick(params["output_size"], i), keep_if_negative=True))
        else:
            o = spec.out[i]
            axes.append(DynamicAxis(b, x, a, out=None if o is None else b.scalar(o, np.int64)))
    return axes
