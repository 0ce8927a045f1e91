"""What is being exported: one pooling call, its input's (possibly symbolic) shape and dtype,
validated with adapool's own checks so an export fails with the message the call would."""
from __future__ import annotations

import inspect
from dataclasses import dataclass, replace

import numpy as np

import adapool
from adapool import _fractional, _lp, _unpool, _validation
from adapool._bfloat16 import BFLOAT16


class ExportError(ValueError):
    """The call can't be exported exactly with the requested strategy or opset."""

from adapool._windows import pool_output_size

# op name -> (kind, number of spatial axes); kind "avg" / "max" are adaptive, "avgpool" and
# "maxpool" the strided pools (avg_pool1d/2d/3d, max_pool1d/2d/3d), "lppool" lp_pool1d/2d/3d
# (torch's composition of powers around a strided pool: see ``inner_spec``), "unpool"
# max_unpool1d/2d/3d (two inputs: the values and torch's per-plane int64 indices),
# "fractional" fractional_max_pool2d/3d (static shapes, its samples given at export)
STRIDED = ("avgpool", "maxpool")
OPS = {
    "adaptive_avg_pool1d": ("avg", 1),
    "adaptive_avg_pool2d": ("avg", 2),
    "adaptive_avg_pool3d": ("avg", 3),
    "adaptive_max_pool1d": ("max", 1),
    "adaptive_max_pool2d": ("max", 2),
    "adaptive_max_pool3d": ("max", 3),
    "avg_pool1d": ("avgpool", 1),
    "avg_pool2d": ("avgpool", 2),
    "avg_pool3d": ("avgpool", 3),
    "max_pool1d": ("maxpool", 1),
    "max_pool2d": ("maxpool", 2),
    "max_pool3d": ("maxpool", 3),
    "lp_pool1d": ("lppool", 1),
    "lp_pool2d": ("lppool", 2),
    "lp_pool3d": ("lppool", 3),
    "max_unpool1d": ("unpool", 1),
    "max_unpool2d": ("unpool", 2),
    "max_unpool3d": ("unpool", 3),
    "fractional_max_pool2d": ("fractional", 2),
    "fractional_max_pool3d": ("fractional", 3),
}
# bfloat16 calls are exported as their float32 graph between two Casts (_strategies.emit)
DTYPES = ("float16", "float32", "float64", "bfloat16")
_ROLE_NAMES = {1: "L", 2: "HW", 3: "DHW"}
# A stand-in for a dynamic spatial size while avg_pool2d's arguments are checked: large enough
# for any kernel that can be exported, far below the int64 overflow guard.
_PROBE_SIZE = 2**40


@dataclass(frozen=True)
class PoolSpec:
    op: str
    kind: str
    nd: int
    shape: tuple          # ints for static dims, str names for dynamic ones
    dtype: np.dtype
    out: tuple            # adaptive: per spatial axis, an int, or None to keep a dynamic size
    return_indices: bool = False
    kernel: tuple = ()    # the strided pools only
    stride: tuple = ()
    padding: tuple = ()
    dilation: tuple = ()  # max pools; () for the average pools
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = None
    norm_type: float | None = None   # lp_pool: p (a Python int or float, ±inf included)
    samples: tuple = ()   # fractional max pool: _random_samples[:N] flattened, as Python floats
    bfloat16_windows: bool = False   # a bfloat16 call's float32 inner graph: windows as bfloat16 gives them

    @property
    def batched(self) -> bool:
        return len(self.shape) == self.nd + 2

    @property
    def spatial(self) -> tuple:
        return self.shape[-self.nd:]

    @property
    def static_spatial(self) -> bool:
        return all(isinstance(s, int) for s in self.spatial)

    @property
    def rank(self) -> int:
        return len(self.shape)

    def kwargs(self) -> dict:
        """The call's torch arguments, as adapool's op takes them."""
        if self.kind == "fractional":
            return dict(kernel_size=list(self.kernel), output_size=list(self.out), return_indices=self.return_indices,
                        _random_samples=fractional_samples(self).tolist())
        if self.kind == "unpool":   # out: the output's spatial sizes (None: the default, computed at run time)
            return dict(kernel_size=list(self.kernel), stride=list(self.stride), padding=list(self.padding),
                        output_size=None if None in self.out else list(self.out))
        if self.kind == "lppool":   # lp_pool1d multiplies by its kernel_size: an int there
            return dict(norm_type=self.norm_type, kernel_size=self.kernel[0] if self.nd == 1 else list(self.kernel),
                        stride=list(self.stride), ceil_mode=self.ceil_mode)
        if self.kind == "maxpool":
            return dict(kernel_size=list(self.kernel), stride=list(self.stride), padding=list(self.padding),
                        dilation=list(self.dilation), ceil_mode=self.ceil_mode,
                        return_indices=self.return_indices)
        if self.kind == "avgpool":
            kw = dict(kernel_size=list(self.kernel), stride=list(self.stride), padding=list(self.padding),
                      ceil_mode=self.ceil_mode, count_include_pad=self.count_include_pad)
            if self.nd != 1:   # avg_pool1d has no divisor_override
                kw["divisor_override"] = self.divisor_override
            return kw
        out = [None if o is None else o for o in self.out]
        kw = {"output_size": out}
        if self.kind == "max":
            kw["return_indices"] = self.return_indices
        return kw

    def output_shape(self) -> tuple:
        """Static output dims as ints, dynamic ones as None (batch and channel names are kept)."""
        lead = self.shape[:-self.nd]
        if self.kind in STRIDED or self.kind == "lppool":   # each static axis has a static output size
            return lead + tuple(
                None if not isinstance(c, int) else pool_output_size(c, k, s, p, self.ceil_mode, d)
                for c, k, s, p, d in zip(self.spatial, self.kernel, self.stride, self.padding, self.dilations))
        if self.kind == "unpool":   # a size computed in the graph has no name
            return lead + tuple(self.out)
        return lead + tuple(s if o is None else o for o, s in zip(self.out, self.spatial))

    @property
    def inputs(self) -> int:
        """How many graph inputs the call reads: max_unpool's values and indices, else one."""
        return 2 if self.kind == "unpool" else 1

    @property
    def dilations(self) -> tuple:
        """Per-axis dilation, 1 for the average pools."""
        return self.dilation or (1,) * self.nd

    def _pool_args(self):
        return (self.kernel, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                self.divisor_override)


def _shape(input_shape, nd: int, op: str) -> tuple:
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__iter__"):
        raise TypeError(f"{op}: input_shape must be a sequence of ints, names or None, got {input_shape!r}")
    shape = tuple(input_shape)
    if len(shape) not in (nd + 1, nd + 2):
        raise ValueError(_validation._rank_message(op, nd, ["?" if not isinstance(s, int) else s for s in shape]))
    roles = ("N", "C") if len(shape) == nd + 2 else ("C",)
    roles += tuple(_ROLE_NAMES[nd])
    out = []
    for i, s in enumerate(shape):
        if s is None:
            out.append(roles[i])
        elif isinstance(s, str):
            if not s.isidentifier():
                raise ValueError(f"{op}: dimension names must be identifiers, got {s!r}")
            out.append(s)
        elif isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)):
            if s < 0:
                raise ValueError(f"{op}: input_shape must not be negative, got {list(shape)}")
            out.append(int(s))
        else:
            raise TypeError(f"{op}: input_shape entries must be int, str or None, got {type(s).__name__} at pos {i}")
    return tuple(out)


def _kwargs_for(op: str, kwargs: dict) -> dict:
    """Bind ``kwargs`` to the op's own signature (so defaults and unknown names behave as they do
    for the NumPy call)."""
    # max_unpool's indices are the graph's second input, not an argument
    skip = ("out", "indices") if OPS[op][0] == "unpool" else ("out",)
    params = [p for p in list(inspect.signature(getattr(adapool, op)).parameters.values())[1:] if p.name not in skip]
    names = [p.name for p in params]
    unknown = set(kwargs) - set(names)
    if unknown:
        raise TypeError(f"{op}() got an unexpected keyword argument {sorted(unknown)[0]!r}")
    bound = {}
    for p in params:
        if p.name in kwargs:
            bound[p.name] = kwargs[p.name]
        elif p.default is inspect.Parameter.empty:
            raise TypeError(f"{op}() missing required argument {p.name!r}")
        else:
            bound[p.name] = p.default
    return bound


def make_spec(op: str, input_shape, dtype="float32", **kwargs) -> PoolSpec:
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; exportable ops: {', '.join(OPS)}")
    kind, nd = OPS[op]
    dt = BFLOAT16 if isinstance(dtype, str) and dtype == "bfloat16" else \
        np.dtype(dtype) if not isinstance(dtype, str) or dtype in DTYPES else None
    if dt is None or dt.name not in DTYPES:
        raise TypeError(f"{op}: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    shape = _shape(input_shape, nd, op)
    args = _kwargs_for(op, kwargs)
    static = tuple(s if isinstance(s, int) else None for s in shape)
    if kind == "lppool":
        return _lp_spec(op, nd, input_shape, dt, args)
    if kind == "unpool":
        return _unpool_spec(op, nd, _shape(input_shape, nd, op), dt, args)
    if kind == "fractional":
        return _fractional_spec(op, nd, _shape(input_shape, nd, op), dt, args)
    if kind in STRIDED and op != "avg_pool2d":
        return _strided_spec(op, kind, nd, shape, dt, static, args)
    if kind == "avgpool":
        probe = tuple(_PROBE_SIZE if s is None else s for s in static)
        _validation.pool2d_args(probe, args["kernel_size"], args["stride"], args["padding"],
                                args["ceil_mode"], args["count_include_pad"], args["divisor_override"])
        if all(isinstance(s, int) for s in shape[-3:]):
            _validation.pool2d_args(shape, args["kernel_size"], args["stride"], args["padding"],
                                    args["ceil_mode"], args["count_include_pad"], args["divisor_override"])
        pair = lambda v, name: _validation._pair(v, op, name, 0, "", allow_empty=True)  # noqa: E731 (checked above)
        kernel = pair(args["kernel_size"], "kernel_size")
        stride = kernel if args["stride"] is None else (pair(args["stride"], "stride") or kernel)   # [] = kernel
        return PoolSpec(op, kind, nd, shape, dt, (), kernel=kernel, stride=stride,
                        padding=pair(args["padding"], "padding"), ceil_mode=bool(args["ceil_mode"]),
                        count_include_pad=bool(args["count_include_pad"]),
                        divisor_override=args["divisor_override"] if args["divisor_override"] is None
                        else int(args["divisor_override"]))
    # Adaptive ops: the same checks as the NumPy call, on the static part of the shape.
    first = 1 if kind == "max" or nd == 3 else len(shape) - nd   # as adapool's check_rank
    if 0 in static[first:]:
        dim = first + static[first:].index(0)
        raise ValueError(
            f"{op}(): Expected input to have non-zero size for non-batch dimensions, but input has sizes "
            f"{list(shape)} with dimension {dim} being empty")
    size_arg = args["output_size"]
    out = _validation.adaptive_output_size(size_arg, tuple(1 if s is None else s for s in static[-nd:]),
                                           op, kind == "max", static)
    if isinstance(size_arg, (tuple, list)):   # None keeps a size that is only known at run time
        out = tuple(None if v is None and static[len(static) - nd + i] is None else o
                    for i, (v, o) in enumerate(zip(size_arg, out)))
    return_indices = bool(args.get("return_indices", False))
    if any(o is not None and o >= _validation.INT64_SAFE for o in out):
        raise ValueError(f"{op}: output_size {list(out)} is too large")
    return PoolSpec(op, kind, nd, shape, dt, tuple(out), return_indices=return_indices)


def _strided_spec(op, kind, nd, shape, dt, static, args) -> PoolSpec:
    """avg_pool1d/3d and max_pool1d/2d/3d: adapool's own checks (torch's order and words) on the
    static shape, and on a probe shape standing in for the dynamic sizes."""
    is_max = kind == "maxpool"
    extra = dict(dilation=args["dilation"], return_indices=args["return_indices"]) if is_max else \
        dict(count_include_pad=args["count_include_pad"], divisor_override=args.get("divisor_override"))
    call = lambda shape_: _validation.pool_args(   # noqa: E731
        op, shape_, args["kernel_size"], args["stride"], args["padding"], ceil_mode=args["ceil_mode"], **extra)
    checked = call(tuple(_PROBE_SIZE if s is None else s for s in static))
    if all(isinstance(s, int) for s in shape[-nd - 1:]):
        checked = call(shape)
    _, _, kernel, stride, padding, *rest = checked.key
    common = dict(kernel=tuple(kernel), stride=tuple(stride), padding=tuple(padding),
                  ceil_mode=bool(args["ceil_mode"]))
    if is_max:
        return PoolSpec(op, kind, nd, shape, dt, (), return_indices=bool(args["return_indices"]),
                        dilation=tuple(rest[0]), **common)
    divisor = extra["divisor_override"]
    return PoolSpec(op, kind, nd, shape, dt, (), count_include_pad=bool(rest[0]),
                    divisor_override=None if divisor is None else int(divisor), **common)


def inner_spec(spec: PoolSpec) -> PoolSpec:
    """The strided pool inside an lp_pool call, as torch composes it: ``avg_poolNd(x ** p,
    kernel, stride, 0, ceil_mode)`` (count_include_pad, no divisor), or ``max_poolNd(|x|, kernel,
    stride, 0, 1, ceil_mode)`` for p = ±inf. It keeps the lp_pool op name, for messages."""
    if _infinite_norm(spec.norm_type):
        return replace(spec, kind="maxpool", dilation=(1,) * spec.nd, norm_type=None)
    return replace(spec, kind="avgpool", count_include_pad=True, divisor_override=None, norm_type=None)


def _infinite_norm(p) -> int:
    return _lp._infinite(p)


def _lp_spec(op, nd, input_shape, dt, args) -> PoolSpec:
    """lp_pool1d/2d/3d: adapool's checks in its order (the kernel's unpacking, norm_type's type,
    the inner pool's arguments, lp_pool1d's int kernel, p = 0), then the inner pool's spec."""
    p, kernel_size = args["norm_type"], args["kernel_size"]
    _lp._kernel_area(kernel_size, nd)
    if not _lp._infinite(p):
        _lp._norm_type(p)
    if isinstance(p, np.floating) and not isinstance(p, float):
        # torch reads a float32 p as itself (1/p a float32 quotient, inf not the max path): the
        # graph's constants are built from a Python number
        raise TypeError(f"{op}: export takes norm_type as a Python int or float, got {type(p).__name__}")
    pool = f"max_pool{nd}d" if _lp._infinite(p) else f"avg_pool{nd}d"
    inner = make_spec(pool, input_shape, dt, kernel_size=kernel_size, stride=args["stride"], padding=0,
                      ceil_mode=args["ceil_mode"])
    if not _lp._infinite(p):
        if nd == 1:
            _lp._check_1d_factor(kernel_size)
        _lp._inverse(p)   # p = 0: torch's ZeroDivisionError
        p = _lp._norm_type(p)
    else:
        p = float(p)
    return replace(inner, op=op, kind="lppool", dilation=(), return_indices=False, count_include_pad=True,
                   divisor_override=None, norm_type=p)


def _unpool_spec(op, nd, shape, dt, args) -> PoolSpec:
    """max_unpool1d/2d/3d: the output size comes from the input's spatial sizes (torch's
    ``_unpool_output_size``). A dynamic spatial size gets the default output size computed in
    the graph, ``(in - 1) * stride + kernel - 2 * padding`` (``out`` None there). A given
    output_size must lie within one stride of that default, which pins the input's sizes: it
    takes static spatial sizes."""
    dynamic = [not isinstance(s, int) for s in shape[-nd:]]
    if any(dynamic) and args["output_size"] is not None:
        raise ExportError(f"{op}: a given output_size needs static spatial sizes (torch checks it lies within one "
                          "stride of the size the input's sizes give); leave it None for dynamic ones")
    # adapool's checks on a probe: a dynamic N or C as 1, a dynamic spatial size large enough
    # for a positive default output (the probe's product still fits an int64)
    lead = len(shape) - nd
    probe = tuple((1 if i < lead else 2**16) if not isinstance(s, int) else s for i, s in enumerate(shape))
    sizes, step, pad = _unpool._output_size(op, nd, probe, args["kernel_size"], args["stride"], args["padding"],
                                            args["output_size"])
    kernel = _unpool._ints(_unpool._ntuple(args["kernel_size"], nd), op, "kernel_size")
    # the NumPy call's checks, with indices of the input's shape as the graph's input will be
    _unpool._check(nd, probe, np.broadcast_to(np.int64(0), probe), sizes, step, pad)
    out = tuple(None if dyn else int(o) for dyn, o in zip(dynamic, sizes))
    return PoolSpec(op, "unpool", nd, shape, dt, out, kernel=tuple(kernel[:nd]), stride=tuple(step[:nd]),
                    padding=tuple(pad[:nd]))


def fractional_samples(spec: PoolSpec) -> np.ndarray:
    """The call's samples, (N, C, nd) in its dtype (N = 1 for unbatched input)."""
    planes = spec.shape[:-spec.nd] if spec.batched else (1,) + spec.shape[:-spec.nd]
    return np.array(spec.samples, dtype=spec.dtype).reshape(planes + (spec.nd,))


def _fractional_spec(op, nd, shape, dt, args) -> PoolSpec:
    """fractional_max_pool2d/3d: every plane's windows come from its samples, so the graph's
    windows are constants: static N, C and sizes, and ``_random_samples`` given. adapool's own
    call on zeros of the shape checks everything, in torch's words, and gives the output size."""
    if not all(isinstance(s, int) for s in shape):
        raise ExportError(f"{op}: export needs static N, C and spatial sizes (each plane's windows are "
                          "constants computed from its samples)")
    if args["_random_samples"] is None:
        raise ExportError(f"{op}: export needs _random_samples (torch draws them with torch.rand at each call; "
                          "a graph with constant windows needs them given)")
    if args.get("rng") is not None:
        raise ExportError(f"{op}: rng draws samples at call time; pass _random_samples instead")
    y = getattr(adapool, op)(np.zeros(shape, dt), args["kernel_size"], args["output_size"], args["output_ratio"],
                             False, args["_random_samples"])
    kernel = _fractional._per_axis(args["kernel_size"], nd, op, "kernel_size", 2)
    n = shape[0] if len(shape) == nd + 2 else 1
    samples = np.asarray(args["_random_samples"])[:n]
    return PoolSpec(op, "fractional", nd, shape, dt, tuple(y.shape[-nd:]),
                    return_indices=bool(args["return_indices"]), kernel=tuple(kernel),
                    samples=tuple(float(v) for v in samples.reshape(-1)))
