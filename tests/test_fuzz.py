"""Fuzz every public pooling function of adapool with random arguments, in a subprocess.

The kernels run without bounds checks, so a bad argument that slips past the Python layer can
crash the interpreter: the fuzz loop therefore runs in a child process (``worker`` below) and a
segfault fails the test instead of killing pytest. Each iteration draws, from its own seed
``(ADAPOOL_FUZZ_SEED, iteration)``, one op and its arguments: random shapes (0-sized ones
included), output sizes (huge, negative, None, wrong types included), kernel / stride / padding /
ceil_mode / count_include_pad / divisor_override, dtypes (bad ones included), layouts (transposes,
slices, reversed axes, unaligned, big-endian, read-only), NaN / +-inf data, out= arrays, indices
(corrupted ones included) and thread counts. One iteration in ten goes to set_num_threads or a
window helper (adaptive_windows, pool_output_size, pool_windows, window_start, window_end) with
sizes up to 2**70, checked against exact Fraction arithmetic or brute force. The generator knows
which draws make a valid call; each call must then

* not crash (the child's exit code is 0),
* raise a clean ValueError / TypeError / MemoryError with a message when the call is invalid,
* return tests/reference.py's float64 answer (float tolerance; max values and indices exactly)
  when it is valid, and
* leave its array arguments unchanged (and an out= view's neighbours untouched).

Huge sizes whose result would be empty may either raise or return the empty result.

Time-bounded: ``ADAPOOL_FUZZ_SECONDS`` (default 18) of fuzzing; ``ADAPOOL_FUZZ_SEED`` picks the
seed. A failing iteration prints its seed, iteration, op and arguments, and a command that
replays it (``replay(seed, iteration)``).

Known bugs (reported in tests/test_hostile.py as strict xfails) are not drawn here, so that the
fuzz stays green until a new bug shows up: non-bool ceil_mode / count_include_pad, integral floats
for avg_pool2d's sizes (the argument cache accepts them), out= with internal overlap, huge
thread counts, negative / fractional / str sizes for the window helpers.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(TESTS_DIR)

DEFAULT_SECONDS = 18.0
DEFAULT_SEED = 20260525
MIN_ITERATIONS = 200

POOL_OPS = [f"adaptive_{k}_pool{nd}d" for k in ("avg", "max") for nd in (1, 2, 3)] + ["avg_pool2d"]
POOL_OPS = POOL_OPS + [o + "_backward" for o in POOL_OPS]
HELPERS = ["adaptive_windows", "pool_output_size", "pool_windows", "window_start", "window_end", "set_num_threads"]
OPS = POOL_OPS + HELPERS


# ---- the test (parent process) ----------------------------------------------------------------

def test_fuzz_every_public_function():
    seconds = float(os.environ.get("ADAPOOL_FUZZ_SECONDS", DEFAULT_SECONDS))
    seed = int(os.environ.get("ADAPOOL_FUZZ_SEED", DEFAULT_SEED))
    code = (f"import sys; sys.path.insert(0, {TESTS_DIR!r}); import test_fuzz; "
            f"sys.exit(test_fuzz.worker({seed}, {seconds}))")
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=seconds + 180, cwd=REPO_DIR, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the fuzz worker hung (seed {seed}): last iterations started:\n"
                    f"{_last_markers(e.stderr or '')}")
    counts = _counts(proc.stdout)
    replay = (f"cd {REPO_DIR} && python -c \"import sys; sys.path.insert(0, 'tests'); "
              f"import test_fuzz; test_fuzz.replay({seed}, ITERATION)\"")
    if proc.returncode != 0:
        pytest.fail(
            (f"the fuzz worker CRASHED (signal {-proc.returncode})" if proc.returncode < 0
             else "the fuzz worker died" if counts is None else "the fuzz found failures")
            + f" (exit code {proc.returncode}, seed {seed})\ncounts: {counts}\n"
            + f"last iteration started: {_last_markers(proc.stderr)}\n"
            + f"replay one with: {replay}\n--- stdout ---\n{proc.stdout[-6000:]}\n"
            + f"--- stderr (tail) ---\n{_strip_markers(proc.stderr)[-4000:]}")
    assert counts is not None, proc.stdout[-2000:]
    assert counts["iterations"] >= MIN_ITERATIONS, f"only {counts['iterations']} iterations: {counts}"
    # the fuzz must reach the kernels, and the checks: both outcomes, for every op
    assert counts["ok"] >= counts["iterations"] // 4, counts
    assert counts["ValueError"] > 0 and counts["TypeError"] > 0, counts
    missing = [op for op in OPS if counts.get(f"ok:{op}", 0) == 0]
    assert not missing, f"no valid call of {missing} in {counts}"


def _counts(stdout):
    for line in reversed(stdout.splitlines()):
        if line.startswith("COUNTS "):
            return json.loads(line[len("COUNTS "):])
    return None


def _last_markers(stderr):
    marks = re.findall(r"^@(\d+)$", stderr, re.M)
    return marks[-1] if marks else "none"


def _strip_markers(stderr):
    return re.sub(r"^@\d+\n", "", stderr, flags=re.M)


# ---- the worker (child process) ---------------------------------------------------------------

def worker(seed: int, seconds: float, max_iterations: int | None = None) -> int:
    import faulthandler
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))     # a crash leaves no core file
    faulthandler.enable()
    import adapool

    counts: Counter = Counter()
    failures = 0
    deadline = time.monotonic() + seconds
    i = 0
    try:
        while time.monotonic() < deadline and (max_iterations is None or i < max_iterations):
            sys.stderr.write(f"@{i}\n")                   # the iteration a crash happened in
            sys.stderr.flush()
            outcome, case, detail = run_one(seed, i)
            counts[outcome] += 1
            if outcome == "ok":
                counts[f"ok:{case['op']}"] += 1
            if outcome == "FAIL":
                failures += 1
                if failures <= 20:
                    print(f"FAIL seed={seed} iteration={i}: {detail}\n    call: {describe(case)}", flush=True)
            i += 1
    finally:
        adapool.set_num_threads(None)
    counts["iterations"] = i
    counts["failures"] = failures
    print("COUNTS " + json.dumps(dict(sorted(counts.items()))), flush=True)
    return 1 if failures else 0


def replay(seed: int, iteration: int):
    """Re-run one iteration verbosely (from the repository root)."""
    outcome, case, detail = run_one(seed, iteration)
    print(f"seed={seed} iteration={iteration}: {outcome}: {detail}\n  call: {describe(case)}")
    return outcome, case


def describe(case) -> str:
    def one(v):
        if isinstance(v, np.ndarray):
            return (f"ndarray(shape={v.shape}, dtype={v.dtype.str}, strides={v.strides}, "
                    f"c_contiguous={v.flags.c_contiguous}, aligned={v.flags.aligned}, "
                    f"writeable={v.flags.writeable})")
        r = repr(v)
        return r if len(r) < 200 else r[:200] + "..."
    args = ", ".join(f"{k}={one(v)}" for k, v in case["args"].items() if not k.startswith("_"))
    return f"adapool.{case['op']}({args}) [expect {case['expect']}, threads {case['threads']}, {'; '.join(case['notes'])}]"


# ---- drawing arguments ------------------------------------------------------------------------

FLOATS = (np.float16, np.float32, np.float64)
BAD_DTYPES = (np.int8, np.int32, np.int64, np.uint8, np.uint64, np.bool_, np.complex64,
              np.complex128, object, "U2")
WORST = {"ok": 0, "either": 1, "error": 2}


class Draw:
    """One iteration's random choices and what they make of the call."""

    def __init__(self, rng):
        self.rng = rng
        self.expect = "ok"
        self.notes = []

    def p(self, prob):
        return self.rng.random() < prob

    def int(self, lo, hi):
        return int(self.rng.integers(lo, hi + 1))

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def worsen(self, expect, note):
        if WORST[expect] > WORST[self.expect]:
            self.expect = expect
        self.notes.append(note)


def draw_values(d: Draw, shape, allow_big=True):
    """float64 data: normal, ties, with NaN / +-inf, or huge magnitudes."""
    style = d.pick(["normal", "normal", "ties", "specials", "specials", "big"] if allow_big
                   else ["normal", "ties", "specials"])
    rng = d.rng
    if style == "ties":
        x = rng.integers(0, 3, shape).astype(np.float64)
    elif style == "big":
        x = rng.standard_normal(shape) * 1e300
    else:
        x = rng.standard_normal(shape) * 3
    if style == "specials":
        u = rng.random(shape)
        x[u < 0.08] = np.nan
        x[(u >= 0.08) & (u < 0.16)] = np.inf
        x[(u >= 0.16) & (u < 0.24)] = -np.inf
    d.notes.append(f"data={style}")
    return x


def as_dtype(d: Draw, x):
    """x in a float dtype (mostly) or a bad one."""
    if d.p(0.06):
        dt = d.pick(BAD_DTYPES)
        d.worsen("error", f"bad dtype {np.dtype(dt)}")
        if dt == "U2":
            return np.zeros(x.shape, "U2")
        with np.errstate(invalid="ignore", over="ignore"):
            return np.nan_to_num(x).astype(dt) if np.dtype(dt).kind in "iub" else x.astype(dt)
    dt = d.pick(FLOATS)
    with np.errstate(over="ignore"):
        return x.astype(dt)


def dress(d: Draw, x, batched):
    """The same values behind a random memory layout, byte order and writeability."""
    from layouts import LAYOUTS, with_layout

    if x.dtype.kind == "f" and d.p(0.15):
        x = x.astype(x.dtype.newbyteorder(">"))
        d.notes.append("big-endian")
    r = d.rng.random()
    if r < 0.6 and x.ndim >= 2:
        layout = d.pick(LAYOUTS)
        x = with_layout(x, layout, batched=batched)
        d.notes.append(f"layout={layout}")
    elif r < 0.7 and x.ndim >= 1:
        flip = (slice(None, None, -1),) * x.ndim
        x = np.ascontiguousarray(x[flip])[flip]
        d.notes.append("layout=reversed_all")
    elif r < 0.77 and x.ndim >= 1 and x.dtype != object:
        buf = np.zeros(x.nbytes + 1, np.uint8)
        v = buf[1:].view(x.dtype).reshape(x.shape)
        v[...] = x
        x = v
        d.notes.append("layout=unaligned")
    if d.p(0.1):
        x = x.view()
        x.flags.writeable = False
        d.notes.append("read-only")
    return x


def draw_lead(d: Draw, nd, kind, batched):
    n = 0 if d.p(0.07) else d.int(1, 3)
    big_c = d.p(0.05)
    c = 0 if d.p(0.05) else (d.int(300, 2500) if big_c else d.int(1, 5))
    return ((n,) if batched else ()) + (c,), big_c


def draw_output_size(d: Draw, nd, spatial, cap=12):
    """(value, resolved sizes or None) -- resolved None when the value is not a valid size."""
    r = d.rng.random()
    if r < 0.5:
        v = d.int(0, cap)
        return v, (v,) * nd
    if r < 0.8:
        entries = [None if (nd > 1 and d.p(0.25)) else d.int(0, cap) for _ in range(nd)]
        v = tuple(entries) if d.p(0.6) else list(entries)
        return v, tuple(s if e is None else e for e, s in zip(entries, spatial))
    hostile = [
        (2**62, "either", (2**62,) * nd), (2**63, "either", (2**63,) * nd), (2**64, "either", (2**64,) * nd),
        ((2**46,) + (1,) * (nd - 1), "either", (2**46,) + (1,) * (nd - 1)),
        ((2**62,) + (0,) * (nd - 1), "either", (2**62,) + (0,) * (nd - 1)),
        (-1, "error", None), (-2**63, "error", None), (None, "error", None), (2.5, "error", None),
        (True, "error", None), ("3", "error", None), ((1,) * (nd + 1), "error", None),
        ([[2]] * nd, "error", None), (np.array(2), "error", None), (object(), "error", None),
        (np.int64(3), "ok", (3,) * nd), (np.uint8(2), "ok", (2,) * nd),
    ]
    if nd == 1:
        hostile.append(((None,), "error", None))
    v, expect, resolved = d.pick(hostile)
    d.worsen(expect, f"output_size={v!r}")
    return v, resolved


def gen_adaptive_forward(d: Draw, kind, nd):
    name = f"adaptive_{kind}_pool{nd}d"
    batched = d.p(0.75)
    lead, big_c = draw_lead(d, nd, kind, batched)
    side = 3 if big_c else (9 if nd < 3 else 6)
    spatial = tuple(0 if d.p(0.03) else d.int(1, side) for _ in range(nd))
    shape = lead + spatial
    if 0 in spatial:
        d.worsen("error", "empty spatial dim")
    if batched and lead[1] == 0 and (kind == "max" or nd == 3):
        d.worsen("error", "empty batched channels")
    if d.p(0.03):
        shape = shape + (2,) if batched else shape[1:]
        d.worsen("error", "wrong rank")
    x64 = draw_values(d, shape)
    x = dress(d, as_dtype(d, x64), batched)
    osize, resolved = draw_output_size(d, nd, spatial, cap=4 if big_c else 12)
    args = {"input": x, "output_size": osize}
    if kind == "max":
        args["return_indices"] = d.p(0.6)
    elif d.p(0.2) and resolved is not None and d.expect == "ok":
        draw_out(d, args, lead + resolved, x, batched)
    return name, args


def draw_out(d: Draw, args, shape, x, batched):
    """out= (of the result's ``shape``) for the average forward ops: valid in any layout, or
    hostile."""
    from layouts import LAYOUTS, with_layout

    dtype = x.dtype.newbyteorder("=")
    r = d.rng.random()
    if r < 0.55:
        if d.p(0.5):
            out = with_layout(np.full(shape, np.nan, dtype), d.pick(LAYOUTS), batched=batched)
        else:   # a strided view inside a sentinel buffer: nothing outside it may change
            big = np.full(tuple(2 * s + 1 for s in shape), -7, dtype)
            out = big[tuple(slice(1, 1 + 2 * s, 2) for s in shape)]
            args["_sentinel"] = big
        d.notes.append("out=valid")
    elif r < 0.65:
        out = np.empty(shape[:-1] + (shape[-1] + 1,), dtype)
        d.worsen("error", "out of the wrong shape")
    elif r < 0.75:
        out = np.empty(shape, np.float64 if dtype != np.float64 else np.float32)
        d.worsen("error", "out of the wrong dtype")
    elif r < 0.85:
        out = np.empty(shape, dtype)
        out.flags.writeable = False
        d.worsen("error", "read-only out")
    else:
        flat = x.reshape(-1) if x.flags.c_contiguous else None
        if flat is None or flat.size < int(np.prod(shape)) or 0 in shape or not x.flags.writeable \
                or x.dtype != dtype:
            out = np.empty(shape, dtype)
            d.notes.append("out=valid (no overlap possible)")
        else:
            out = flat[:int(np.prod(shape))].reshape(shape)
            d.worsen("error", "out overlapping the input")
    args["out"] = out


def draw_input_shape(d: Draw, lead, spatial, nd):
    shape = lead + spatial
    if d.p(0.1):
        j = d.int(0, len(shape) - 1)
        bad = d.pick([(-1, "error"), (0, "error" if j >= len(shape) - nd else None), (2**62, "either"),
                      (2**63, "either"), (6.0, "error"), (None, "error"), (True, "error")])
        value, expect = bad
        if expect is not None:
            shape = shape[:j] + (value,) + shape[j + 1:]
            d.worsen(expect, f"input_shape[{j}]={value!r}")
    elif d.p(0.03):
        shape = d.pick(["2,3,4", None, 7, np.array(shape)])
        d.worsen("error", f"input_shape={shape!r}")
        return shape
    return list(shape) if d.p(0.3) else tuple(shape)


def gen_adaptive_backward(d: Draw, kind, nd):
    name = f"adaptive_{kind}_pool{nd}d_backward"
    batched = d.p(0.75)
    lead, big_c = draw_lead(d, nd, kind, batched)
    side = 3 if big_c else (9 if nd < 3 else 6)
    spatial = tuple(d.int(1, side) for _ in range(nd))
    osize = tuple(0 if d.p(0.05) else d.int(1, 12 if not big_c else 4) for _ in range(nd))
    go_shape = lead + osize
    if d.p(0.04):
        go_shape = (go_shape[0] + 1,) + go_shape[1:]
        d.worsen("error", "grad_output lead mismatch")
    elif d.p(0.03):
        go_shape = go_shape[1:] if batched else (1,) + go_shape
        d.worsen("error", "grad_output rank mismatch")
    go = dress(d, as_dtype(d, draw_values(d, go_shape, allow_big=kind == "avg")), batched)
    args = {"grad_output": go}
    if kind == "max":
        from reference import adaptive_max_pool_ref

        x = draw_values(d, lead + spatial, allow_big=False)
        if 0 in lead or 0 in osize:
            ind = np.zeros(lead + osize, np.int64)
        else:
            _, ind = adaptive_max_pool_ref(x, osize)
        plane = int(np.prod(spatial))
        if ind.size and d.p(0.12):
            bad = d.pick([-1, plane, plane + 1, 2**40, 2**63 - 1, -2**63])
            ind = ind.copy()
            ind.reshape(-1)[d.int(0, ind.size - 1)] = bad
            d.worsen("error", f"index {bad}")
        elif d.p(0.06):
            dt = d.pick([np.int32, np.uint64, np.float64, np.int16, np.bool_])
            ind = ind.astype(dt)
            d.worsen("error", f"indices dtype {np.dtype(dt)}")
        elif d.p(0.04) and ind.ndim and ind.shape[-1] > 1:
            ind = ind[..., :-1]
            d.worsen("error", "indices shape")
        if ind.dtype == np.int64 and d.p(0.15):
            ind = ind.astype(">i8")
        args["indices"] = dress(d, ind, batched) if ind.ndim else ind
        if d.p(0.05) and ind.size and ind.dtype.kind == "i":   # a smaller input than the indices came from
            spatial = (1,) * nd
            if np.asarray(ind).max() >= 1:
                d.worsen("error", "input smaller than the indices' plane")
    args["input_shape"] = draw_input_shape(d, lead, spatial, nd)
    return name, args


def gen_pool(d: Draw, backward):
    from adapool._windows import pool_output_size

    name = "avg_pool2d_backward" if backward else "avg_pool2d"
    kernel = (d.int(1, 5), d.int(1, 5))
    stride = (d.int(1, 4), d.int(1, 4))
    pad = (d.int(0, kernel[0] // 2), d.int(0, kernel[1] // 2))
    kw = {"kernel_size": kernel[0] if kernel[0] == kernel[1] and d.p(0.5) else (list(kernel) if d.p(0.2) else kernel)}
    r = d.rng.random()
    kw["stride"] = None if r < 0.25 else (() if r < 0.3 else (stride if r < 0.8 else stride[0]))
    if r >= 0.8:
        stride = (stride[0],) * 2
    if r < 0.3:
        stride = kernel
    kw["padding"] = pad if pad[0] != pad[1] or d.p(0.5) else pad[0]
    kw["ceil_mode"] = bool(d.p(0.5)) if d.p(0.8) else np.bool_(d.p(0.5))
    kw["count_include_pad"] = bool(d.p(0.5))
    kw["divisor_override"] = None if d.p(0.6) else d.pick([1, 2, 3, 7, -1, -5, 2**62, -2**63])
    if d.p(0.03):   # huge but valid: a 2**40-long window that padding makes fit
        kernel, stride, pad = (2**40, kernel[1]), (d.pick([1, 2**40]), stride[1]), (2**39, pad[1])
        kw.update(kernel_size=kernel, stride=stride, padding=pad)
        d.notes.append("huge valid kernel")
    if d.p(0.2):
        slot = d.pick(["kernel_size", "stride", "padding", "divisor_override"])
        bad = {
            "kernel_size": [(0, None), (-1, None), (2**62, None), (2**63, None), (2.5, "error"), (True, "error"),
                            ((1, 2, 3), "error"), ("3", "error"), (None, "error"), (20, None)],
            "stride": [(0, None), (-2, None), (2**62, None), (1.5, "error"), ((1, 2, 3), "error"), (False, "error"),
                       (50, None), ((1,), None)],
            "padding": [(-1, None), (3, None), (2**62, None), (0.5, "error"), (None, "error"), ((), "error")],
            "divisor_override": [(0, "error"), (2**63, "error"), (-2**63 - 1, "error"), (2.5, "error"), (True, "error")],
        }[slot]
        value, expect = d.pick(bad)
        kw[slot] = value
        if expect is not None:
            d.worsen(expect, f"{slot}={value!r}")
        else:   # an int: valid or not depending on the rest, worked out below
            d.notes.append(f"{slot}={value!r}")
    batched = d.p(0.75)
    n = 0 if d.p(0.07) else d.int(1, 3)
    c = 0 if d.p(0.03) else (d.int(300, 2000) if d.p(0.04) else d.int(1, 5))
    hw = (d.int(1, 12), d.int(1, 12))
    shape = ((n,) if batched else ()) + (c,) + hw
    if c == 0:
        d.worsen("error", "C = 0")
    out_hw = None
    if d.expect != "error":
        from reference import pool2d_pairs
        k, s, p = pool2d_pairs(kw["kernel_size"], kw["stride"], kw["padding"])
        problems = []
        for ki, si, pi in zip(k, s, p):
            if si == 0:
                problems.append("stride 0")
            if pi < 0 or pi > int(ki / 2):
                problems.append("padding")
        if min(k) <= 0 or min(s) <= 0:
            problems.append("non-positive kernel/stride")
        if any(i + 2 * pi + si + ki >= 2**62 for i, ki, si, pi in zip(hw, k, s, p)) or k[0] * k[1] >= 2**62:
            problems.append("int64 overflow")
        if not problems:
            out_hw = tuple(pool_output_size(i, ki, si, pi, bool(kw["ceil_mode"])) for i, ki, si, pi in zip(hw, k, s, p))
            if min(out_hw) < 1:
                problems.append("output too small")
        if problems:
            d.worsen("error", ",".join(problems))
            out_hw = None
    if not backward:
        x = dress(d, as_dtype(d, draw_values(d, shape)), batched)
        args = {"input": x, **kw}
        if d.p(0.15) and d.expect == "ok":
            draw_out(d, args, ((n,) if batched else ()) + (c,) + out_hw, x, batched)
        return name, args
    go_hw = out_hw if out_hw is not None else (d.int(1, 5), d.int(1, 5))
    go_shape = shape[:-2] + go_hw
    if d.p(0.05):
        go_shape = go_shape[:-1] + (go_shape[-1] + 1,)
        d.worsen("error", "grad_output shape")
    go = dress(d, as_dtype(d, draw_values(d, go_shape)), batched)
    return name, {"grad_output": go, "input_shape": draw_input_shape(d, shape[:-2], hw, 2), **kw}


def gen_helper(d: Draw, name):
    """The window helpers and set_num_threads: sizes up to 2**70 (the helpers are exact Python
    int arithmetic), and wrong types."""
    big = [d.int(0, 40), d.int(0, 40), 2**62 + d.int(0, 99), 2**63 + d.int(0, 99), 2**70 + d.int(0, 99)]
    # a wrong type: None only (a str size is multiplied -- string repetition -- before anything
    # checks it: a known bug, reported in test_hostile.py)
    bad = None if d.p(0.9) else "none"
    if name == "set_num_threads":
        v = d.pick([1, 2, 3, 8, None, np.int64(2), 0, -1, True, 2.5, "2"])
        if isinstance(v, (bool, float, str)) or (v is not None and v <= 0):
            d.worsen("error", f"n={v!r}")
        return name, {"n": v}
    if name == "adaptive_windows":
        args = {"out_size": d.int(0, 40), "in_size": d.pick([d.int(1, 40)] + big[2:])}   # an input axis is non-empty
        if args["in_size"] >= 2**63:
            d.worsen("either", "in_size beyond int64")   # OverflowError: int64 tables cannot hold it
    elif name == "pool_output_size":
        k = d.int(1, 6)
        args = {"in_size": d.pick(big), "kernel": k, "stride": d.pick([d.int(1, 5), 2**64 + 1]),
                "pad": d.int(0, k // 2), "ceil_mode": d.p(0.5)}
        if args["in_size"] + 2 * args["pad"] < k:
            d.notes.append("output below 1")
    elif name == "pool_windows":
        k = d.int(1, 6)
        args = {"in_size": d.int(1, 25), "kernel": k, "stride": d.int(1, 5), "pad": d.int(0, k // 2),
                "count_include_pad": d.p(0.5)}
        from adapool import pool_output_size
        args = {"out_size": max(0, pool_output_size(args["in_size"], k, args["stride"], args["pad"], d.p(0.5))), **args}
    else:
        b = d.pick([d.int(1, 40), 2**62 + 1, 2**70 + 3])
        args = {"a": d.int(0, 39) % b, "b": b, "c": d.pick(big)}
    if bad is not None and args.get("out_size") != 0:   # no windows: nothing is computed, nothing checked
        key = d.pick(list(args))
        if not isinstance(args[key], bool):
            args[key] = None
            d.worsen("error", f"{key}=None")
    return name, args


def generate(seed: int, iteration: int):
    d = Draw(np.random.default_rng([seed, iteration]))
    # the pooling ops get most iterations; the helpers one in ten
    op = d.pick(HELPERS) if d.p(0.1) else POOL_OPS[int(d.rng.integers(len(POOL_OPS)))]
    backward = op.endswith("_backward")
    if op in HELPERS:
        name, args = gen_helper(d, op)
    elif op.startswith("avg_pool2d"):
        name, args = gen_pool(d, backward)
    else:
        kind = "max" if "max" in op else "avg"
        nd = int(op.split("pool")[1][0])
        name, args = (gen_adaptive_backward if backward else gen_adaptive_forward)(d, kind, nd)
    threads = d.pick([None, 1, 2, 3])
    return {"op": name, "args": args, "expect": d.expect, "notes": d.notes, "threads": threads}


# ---- running and checking one call ------------------------------------------------------------

TOL = {2: 2e-3, 4: 2e-6, 8: 1e-12}


def _snapshot(args):
    return {k: np.array(v, copy=True) for k, v in args.items()
            if isinstance(v, np.ndarray) and k not in ("out", "_sentinel")}


def run_one(seed: int, iteration: int):
    import adapool

    try:
        case = generate(seed, iteration)
    except Exception as e:   # noqa: BLE001 - a generator bug is a failure, not a crash
        return "FAIL", {"op": "?", "args": {}, "expect": "?", "notes": [], "threads": None}, \
            f"the generator raised {type(e).__name__}: {e}"
    args = dict(case["args"])
    sentinel = args.pop("_sentinel", None)
    sentinel_before = None if sentinel is None else sentinel.copy()
    before = _snapshot(args)
    adapool.set_num_threads(case["threads"])
    fn = getattr(adapool, case["op"])
    try:
        with np.errstate(all="ignore"):
            result = fn(*args.values()) if case["op"] in HELPERS else fn(**args)
    except (ValueError, TypeError, MemoryError) as e:
        outcome = next(c.__name__ for c in (ValueError, TypeError, MemoryError) if isinstance(e, c))
        if case["expect"] == "ok":
            return "FAIL", case, f"refused a valid call: {outcome}: {e}"
        if not str(e).strip():
            return "FAIL", case, f"{outcome} without a message"
        problem = _unchanged(args, before)
        if problem:
            return "FAIL", case, f"{outcome} raised, but {problem}"
        return outcome, case, str(e)
    except OverflowError as e:
        if case["expect"] != "either":
            return "FAIL", case, f"unexpected OverflowError: {e}"
        return "OverflowError", case, str(e)
    except BaseException as e:   # noqa: BLE001 - any other exception is a failure
        return "FAIL", case, f"unexpected {type(e).__name__}: {e}"
    if case["expect"] == "error":
        return "FAIL", case, "accepted an invalid call"
    try:
        problem = check_result(case, args, result)
    except Exception as e:   # noqa: BLE001 - a broken check must show up, not crash the worker
        problem = f"checking the result raised {type(e).__name__}: {e}"
    problem = problem or _unchanged(args, before)
    if not problem and sentinel is not None and not np.array_equal(sentinel, sentinel_before, equal_nan=True):
        # only the view itself may change
        view_mask = np.zeros(sentinel.shape, bool)
        view_mask[tuple(slice(1, 1 + 2 * ((s - 1) // 2), 2) for s in sentinel.shape)] = True
        if not np.array_equal(sentinel[~view_mask], sentinel_before[~view_mask]):
            problem = "out= wrote outside its view"
    if problem:
        return "FAIL", case, problem
    return "ok", case, ""


def _unchanged(args, before):
    for k, v in before.items():
        now = np.asarray(args[k])
        if v.dtype == object:   # the copy holds the same objects (NaN != NaN)
            same = now.shape == v.shape and all(p is q for p, q in zip(now.ravel(), v.ravel()))
        else:
            same = np.array_equal(now, v, equal_nan=v.dtype.kind in "fc")
        if not same:
            return f"argument {k!r} was modified"
    return None


def _pool_triple(a):
    from reference import pool2d_pairs
    return pool2d_pairs(a["kernel_size"], a.get("stride"), a.get("padding", 0))


def expected(op, a):
    """(expected shape, reference(), dtype): reference() computes tests/reference.py's answer."""
    from reference import (adaptive_avg_pool_backward_ref, adaptive_avg_pool_ref,
                           adaptive_max_pool_backward_ref, adaptive_max_pool_ref,
                           avg_pool2d_backward_ref, avg_pool2d_ref, avg_pool2d_windows)

    flags = lambda: (bool(a.get("ceil_mode", False)), bool(a.get("count_include_pad", True)), a.get("divisor_override"))
    if op.endswith("_backward"):
        go = np.asarray(a["grad_output"])
        dtype = go.dtype.newbyteorder("=")
        shape = tuple(int(s) for s in a["input_shape"])
        go64 = go.astype(np.float64)
        nd = 2 if op.startswith("avg_pool2d") else int(op.split("pool")[1][0])
        if 0 in shape or go.size == 0:
            return shape, (lambda: np.zeros(shape)), dtype
        if op.startswith("avg_pool2d"):
            k, s, p = _pool_triple(a)
            return shape, (lambda: avg_pool2d_backward_ref(go64, shape, k, s, p, *flags())), dtype
        if "avg" in op:
            return shape, (lambda: adaptive_avg_pool_backward_ref(go64, shape, nd)), dtype
        ind = np.asarray(a["indices"]).astype(np.int64)
        return shape, (lambda: adaptive_max_pool_backward_ref(go64, ind, shape, nd)), dtype
    x = np.asarray(a["input"])
    x = x.astype(x.dtype.newbyteorder("="))
    dtype = x.dtype
    if op == "avg_pool2d":
        k, s, p = _pool_triple(a)
        out, _ = avg_pool2d_windows(x.shape[-2:], k, s, p, *flags())
        return x.shape[:-2] + out, (lambda: avg_pool2d_ref(x.astype(np.float64), k, s, p, *flags())), dtype
    nd = int(op.split("pool")[1][0])
    o = a["output_size"]
    spatial = x.shape[-nd:]
    osize = (int(o),) * nd if isinstance(o, (int, np.integer)) else tuple(s if e is None else int(e) for e, s in zip(o, spatial))
    shape = x.shape[:-nd] + osize
    if "avg" in op:
        return shape, (lambda: adaptive_avg_pool_ref(x.astype(np.float64), osize)), dtype
    return shape, (lambda: adaptive_max_pool_ref(x, osize)), dtype


def check_helper(op, a, result):
    from fractions import Fraction
    import math

    import adapool

    if op == "set_num_threads":
        want = a["n"] if adapool.openmp_enabled() and a["n"] is not None else None
        if result is not None or (want is not None and adapool.get_num_threads() != want):
            return f"set_num_threads({a['n']!r}) -> get_num_threads() = {adapool.get_num_threads()}"
        return None
    if op in ("window_start", "window_end"):
        x, b, c = a["a"], a["b"], a["c"]
        want = (math.floor(Fraction(x * c, b)) if op == "window_start" else math.ceil(Fraction((x + 1) * c, b)))
        return None if result == want else f"{op}{(x, b, c)} = {result}, exactly {want}"
    if op == "adaptive_windows":
        b, c = a["out_size"], a["in_size"]
        starts, ends = result
        ws = [math.floor(Fraction(i * c, b)) for i in range(b)]
        we = [math.ceil(Fraction((i + 1) * c, b)) for i in range(b)]
        if starts.dtype != np.int64 or starts.tolist() != ws or ends.tolist() != we:
            return f"adaptive_windows({b}, {c}) differs from floor/ceil of exact fractions"
        return None
    if op == "pool_output_size":
        i, k, s, p, ceil = a["in_size"], a["kernel"], a["stride"], a["pad"], a["ceil_mode"]
        span = Fraction(i + 2 * p - k, s)
        want = (math.ceil(span) if ceil else math.floor(span)) + 1
        if ceil and (want - 1) * s >= i + p:
            want -= 1
        return None if result == want else f"pool_output_size{(i, k, s, p, ceil)} = {result}, expected {want}"
    # pool_windows: brute force over the padded input
    o_n, i, k, s, p, cip = (a[n] for n in ("out_size", "in_size", "kernel", "stride", "pad", "count_include_pad"))
    starts, ends, factors = result
    for o in range(o_n):
        lo = o * s - p
        hi = min(lo + k, i + p)
        inside = [j for j in range(lo, hi) if 0 <= j < i]
        if list(range(starts[o], ends[o])) != inside or factors[o] != (hi - lo if cip else len(inside)):
            return f"pool_windows window {o} is [{starts[o]}, {ends[o]}) / {factors[o]}, expected {inside}"
    return None


def check_result(case, args, result):
    op, a = case["op"], args
    if op in HELPERS:
        return check_helper(op, a, result)
    shape, ref, dtype = expected(op, a)
    is_max_fwd = op.startswith("adaptive_max") and not op.endswith("_backward")
    if is_max_fwd and a.get("return_indices"):
        if not (isinstance(result, tuple) and len(result) == 2):
            return f"expected (values, indices), got {type(result).__name__}"
        y, ind = result
        if ind.dtype != np.int64 or ind.shape != shape:
            return f"indices of dtype {ind.dtype} and shape {ind.shape}, expected int64 {shape}"
    else:
        y, ind = result, None
    if not isinstance(y, np.ndarray):
        return f"result is a {type(y).__name__}"
    if "out" in a and a["out"] is not None and y is not a["out"]:
        return "out= given but a different array returned"
    if y.shape != shape or y.dtype != dtype:
        return f"result {y.dtype} {y.shape}, expected {dtype} {shape}"
    if y.size == 0:
        return None
    if int(np.prod(shape)) > 2**26:
        return f"returned an implausibly large result {shape}"
    with np.errstate(all="ignore"):
        want = ref()
    if is_max_fwd:
        ref_y, ref_ind = want
        if not np.array_equal(y, ref_y, equal_nan=True):
            return f"max values differ from the reference (first at {_first_diff(y, ref_y)})"
        if ind is not None and not np.array_equal(ind, ref_ind):
            return f"max indices differ from the reference (first at {_first_diff(ind, ref_ind)})"
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = np.asarray(want, np.float64).astype(dtype).astype(np.float64)
    g = y.astype(np.float64)
    for what, mask in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        if not np.array_equal(mask(g), mask(rounded)):
            return f"{what} positions differ from the reference (first at {_first_diff(mask(g), mask(rounded))})"
    finite = np.isfinite(rounded)
    data = np.asarray(a["grad_output" if op.endswith("_backward") else "input"]).astype(np.float64)
    scale = float(np.abs(data[np.isfinite(data)]).max(initial=0.0)) or 1.0
    if op.startswith("adaptive_max") and op.endswith("_backward"):
        ind_all = np.asarray(a["indices"]).astype(np.int64)
        planes = ind_all.reshape(-1, max(1, int(np.prod(ind_all.shape[-int(op.split("pool")[1][0]):]))))
        scale *= max((np.bincount(r).max() for r in planes if r.size), default=1)
    tol = TOL[np.dtype(dtype).itemsize]
    err = np.abs(g[finite] - rounded[finite])
    bound = tol * np.abs(rounded[finite]) + tol * scale
    if (err > bound).any():
        worst = int(np.argmax(err - bound))
        return f"values differ from the reference: |{g[finite][worst]} - {rounded[finite][worst]}| > {bound[worst]}"
    return None


def _first_diff(a, b):
    diff = ~((a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind == "f" else (a == b))
    idx = np.argwhere(diff)
    return tuple(int(i) for i in idx[0]) if idx.size else None
