"""`adapool bench`: adapool against torch (same thread count), the ONNX graph of each forward
call under onnxruntime, and one full read of the input, side by side in one process.

Contenders are timed interleaved, round after round; every number is a median over rounds.
The ratios are what matter on a noisy machine. benchmarks/bench_pooling.py and
benchmarks/bench_onnx.py are the detailed versions (channels-last, every ONNX strategy).
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

from . import _pooling as adapool
from ._threads import get_num_threads, set_num_threads

SEED_SHAPES = [
    ((32, 2048, 7, 7), 1),
    ((4, 512, 56, 56), 7),
    ((4, 512, 112, 112), 7),
    ((8, 256, 14, 14), 7),
    ((16, 256, 100, 100), 10),
    ((8, 256, 15, 15), 7),
    ((1, 16, 223, 223), 7),
    ((1, 1, 8, 8), 2),
]
OPS = ["avg", "max", "avgpool", "avg_bwd", "max_bwd", "avgpool_bwd"]
POOL = dict(kernel_size=3, stride=2, padding=1)   # ResNet's stem pooling shape


def _time_once(fn, inner: int) -> float:
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def interleaved_ms(fns: dict, rounds: int, sample_s: float = 2e-3) -> dict:
    """Median ms per call of each contender, timed round after round in turn (so a slow spell
    of a shared machine hits them all); each sample repeats a call enough for ``sample_s``."""
    inner = {k: max(1, int(sample_s / max(_time_once(f, 2), 1e-7))) for k, f in fns.items()}
    samples = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            samples[k].append(_time_once(f, inner[k]))
    return {k: float(np.median(v)) * 1e3 for k, v in samples.items()}


def _channels_last(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def _compiled(torch, fn):
    """torch.compile (inductor, static shapes) of one forward call: compiled on its first call,
    which interleaved_ms makes before timing; compile time is not timed."""
    return torch.compile(fn, dynamic=False)


def contenders(op, shape, out, torch, compile: bool = False):
    """{name: callable} for one op and shape: adapool and torch (and torch.compile for the
    forward ops when asked), contiguous and channels-last."""
    F = torch.nn.functional if torch else None
    aten = torch.ops.aten if torch else None
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    layouts = {"": x, "_cl": _channels_last(x)}
    fns = {}
    if torch and compile:
        # dynamo keys its cache on the code object: without a reset, the lambdas below hit its
        # recompile limit after a few shapes and silently run eager
        torch._dynamo.reset()
        forward = {"avg": lambda t: F.adaptive_avg_pool2d(t, out),
                   "max": lambda t: F.adaptive_max_pool2d(t, out, return_indices=True),
                   "avgpool": lambda t: F.avg_pool2d(t, **POOL)}.get(op)
    for suffix, xi in layouts.items():
        tx = torch.from_numpy(np.ascontiguousarray(xi)) if torch else None
        if torch and suffix:
            tx = tx.contiguous(memory_format=torch.channels_last)
        if torch and compile and forward is not None:
            fns["compile" + suffix] = lambda tx=tx, f=_compiled(torch, forward): f(tx)
        if op == "avg":
            fns["adapool" + suffix] = lambda xi=xi: adapool.adaptive_avg_pool2d(xi, out)
            if torch:
                fns["torch" + suffix] = lambda tx=tx: F.adaptive_avg_pool2d(tx, out)
        elif op == "max":
            fns["adapool" + suffix] = lambda xi=xi: adapool.adaptive_max_pool2d(xi, out, return_indices=True)
            if torch:
                fns["torch" + suffix] = lambda tx=tx: F.adaptive_max_pool2d(tx, out, return_indices=True)
        elif op == "avgpool":
            fns["adapool" + suffix] = lambda xi=xi: adapool.avg_pool2d(xi, **POOL)
            if torch:
                fns["torch" + suffix] = lambda tx=tx: F.avg_pool2d(tx, **POOL)
        elif op == "avg_bwd":
            go = adapool.adaptive_avg_pool2d(xi, out)
            fns["adapool" + suffix] = lambda go=go: adapool.adaptive_avg_pool2d_backward(go, shape)
            if torch:
                tgo = F.adaptive_avg_pool2d(tx, out)
                fns["torch" + suffix] = lambda tgo=tgo, tx=tx: aten._adaptive_avg_pool2d_backward(tgo, tx)
        elif op == "max_bwd":
            go, ind = adapool.adaptive_max_pool2d(xi, out, return_indices=True)
            fns["adapool" + suffix] = lambda go=go, ind=ind: adapool.adaptive_max_pool2d_backward(go, ind, shape)
            if torch:
                tgo, tind = F.adaptive_max_pool2d(tx, out, return_indices=True)
                fns["torch" + suffix] = lambda tgo=tgo, tx=tx, tind=tind: aten.adaptive_max_pool2d_backward(tgo, tx, tind)
        elif op == "avgpool_bwd":
            go = adapool.avg_pool2d(xi, **POOL)
            fns["adapool" + suffix] = lambda go=go: adapool.avg_pool2d_backward(go, shape, **POOL)
            if torch:
                tgo = F.avg_pool2d(tx, **POOL)
                fns["torch" + suffix] = lambda tgo=tgo, tx=tx: aten.avg_pool2d_backward(
                    tgo, tx, [3, 3], [2, 2], [1, 1], False, True, None)
    if op == "avg":
        fns["floor"] = (lambda t=torch.from_numpy(x): t.sum()) if torch else (lambda: x.sum())
    return fns



QUICK_SHAPES = [((32, 2048, 7, 7), 1), ((4, 512, 56, 56), 7), ((8, 256, 15, 15), 7)]
FORWARD = {"avg": "adaptive_avg_pool2d", "max": "adaptive_max_pool2d", "avgpool": "avg_pool2d"}


def _onnx_contender(op, shape, out, threads):
    """The auto-strategy ONNX graph of a forward call under onnxruntime's CPU EP, or None."""
    if op not in FORWARD:
        return None, None
    try:
        import onnxruntime as ort
    except ImportError:
        return None, None
    import onnx_export
    kwargs = dict(POOL) if op == "avgpool" else {"output_size": out}
    if op == "max":
        kwargs["return_indices"] = True
    model = onnx_export.export(FORWARD[op], shape, **kwargs)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    # idle onnxruntime workers spin after a run and would steal the cores from the next contender
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    strategy = {p.key: p.value for p in model.metadata_props}["adapool.strategy"]
    return (lambda: sess.run(None, {"input": x})), strategy


def _progress(done: int, total: int, label: str) -> None:
    if not sys.stderr.isatty() and os.environ.get("ADAPOOL_PROGRESS") != "1":
        return
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label:40s}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def run(ops, shapes, threads: int, rounds: int, channels_last: bool = False, onnx: bool = True,
        compile: bool = True):
    """Medians (ms) for every op x shape: adapool, torch, torch.compile (forward ops), the ONNX
    graph, the read floor (and the channels-last contenders, keys ending in _cl, when asked)."""
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        torch = None
    previous = get_num_threads()
    set_num_threads(threads)
    rows = []
    try:
        total = len(ops) * len(shapes)
        for i, (op, (shape, out)) in enumerate((o, s) for o in ops for s in shapes):
            _progress(i, total, f"{op} {shape}")
            fns = {k: f for k, f in contenders(op, shape, out, torch, compile).items()
                   if channels_last or not k.endswith("_cl")}
            graph, strategy = _onnx_contender(op, shape, out, threads) if onnx else (None, None)
            if graph is not None:
                fns["onnx"] = graph
            rows.append({"op": op, "shape": list(shape), "output_size": out, "onnx_strategy": strategy,
                         **interleaved_ms(fns, rounds)})
        _progress(total, total, "done")
    finally:
        set_num_threads(previous)
    return rows


def environment(threads: int) -> dict:
    from . import __version__
    from ._dispatch import kernels
    info = {"threads": threads, "cpu": _cpu_name(), "machine": platform.machine(), "python": platform.python_version(),
            "numpy": np.__version__, "adapool": __version__, "kernels": kernels.simd_level(),
            "date": time.strftime("%Y-%m-%d")}
    for name in ("torch", "onnxruntime", "onnx"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = "not installed"
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ms(row, key) -> str:
    return f"{row[key]:.4f}" if key in row else "-"


def _times(row, key) -> str:
    """row[key] / adapool's time, or '-' where that contender did not run (torch missing)."""
    return f"{row[key] / row['adapool']:.2f}" if key in row else "-"


def table(rows, env) -> str:
    lines = [
        f"{env['date']}, {env['cpu']}, {env['threads']} thread(s); adapool {env['adapool']} ({env['kernels']} kernels), "
        f"numpy {env['numpy']}, torch {env['torch']}, onnxruntime {env['onnxruntime']}",
        "",
        "| op | input | out | adapool ms | torch ms | x torch | torch.compile ms | x compile | ONNX graph ms (strategy) "
        "| x graph | adapool / read floor |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        floor = f"{r['adapool'] / r['floor']:.2f}" if "floor" in r else ""
        graph = f"{r['onnx']:.4f} ({r['onnx_strategy']})" if "onnx" in r else "-"
        out = "3,2,1" if r["op"].startswith("avgpool") else r["output_size"]
        lines.append(f"| {r['op']} | {tuple(r['shape'])} | {out} | {r['adapool']:.4f} | {_ms(r, 'torch')} | "
                     f"{_times(r, 'torch')} | {_ms(r, 'compile')} | {_times(r, 'compile')} | {graph} | "
                     f"{_times(r, 'onnx')} | {floor} |")
    reader = "torch.sum" if env["torch"] != "not installed" else "numpy's sum, torch not being installed"
    lines.append("")
    lines.append("x torch = torch's time / adapool's (above 1: adapool is faster); x compile = the same for "
                 "torch.compile (inductor, static shapes, compiled before timing; forward ops only); x graph = the "
                 f"ONNX graph's time under onnxruntime / adapool's; read floor = one full read of the input ({reader}); "
                 "- = not measured (contender not installed or not applicable).")
    if env.get("load"):
        lines.append(f"load: {env['load']}")
    return "\n".join(lines)


def emit(text: str, json_path: str | None, payload: dict) -> None:
    """Print a benchmark's table and, when asked, write its medians as JSON."""
    print(text)
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(payload, fh, indent=1)


def _matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("adapool bench --plot needs matplotlib: pip install 'adapool[plot]' "
                         "(or pip install matplotlib)") from None
    return matplotlib


def plot(rows, env, path: str) -> None:
    matplotlib = _matplotlib()
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    ops = list(dict.fromkeys(r["op"] for r in rows))
    fig, axes = plt.subplots(len(ops), 1, figsize=(9, 2.2 + 1.9 * len(ops)), squeeze=False)
    for ax, op in zip(axes[:, 0], ops):
        sel = [r for r in rows if r["op"] == op]
        labels = [f"{tuple(r['shape'])}\n→{r['output_size'] if op != 'avgpool' else '3,2,1'}" for r in sel]
        xs = np.arange(len(sel))
        series = [("torch / adapool", [r.get("torch", np.nan) / r["adapool"] for r in sel], "tab:blue"),
                  ("torch.compile / adapool", [r.get("compile", np.nan) / r["adapool"] for r in sel], "tab:green"),
                  ("ONNX graph (onnxruntime) / adapool", [r.get("onnx", np.nan) / r["adapool"] for r in sel], "tab:orange")]
        for k, (name, vals, color) in enumerate(series):
            ax.bar(xs + (k - 1) * 0.27, vals, 0.27, label=name, color=color)
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_yscale("log")
        ticks = [t for t in (0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
                 if np.nanmin([v for _, vals, _ in series for v in vals] + [1]) / 2 <= t
                 <= np.nanmax([v for _, vals, _ in series for v in vals] + [1]) * 2]
        ax.set_yticks(ticks)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_ylabel("time / adapool's")
        ax.set_title(f"{op}: above 1 = adapool is faster", fontsize=9)
    axes[0, 0].legend(fontsize=7, loc="lower left", bbox_to_anchor=(0, 1.12), ncol=2, frameon=False)
    fig.suptitle(f"adapool bench, {env['date']}: {env['cpu']}, {env['threads']} thread(s)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


@contextlib.contextmanager
def busy_core():
    """A process spinning on the last core this process may use, for the block's duration:
    the loaded machine of ``adapool bench --load``. Yields a description of the load."""
    core = sorted(os.sched_getaffinity(0))[-1]
    code = f"import os\nos.sched_setaffinity(0, {{{core}}})\nwhile True:\n    pass"
    proc = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(0.3)   # let it start spinning before anything is timed
    try:
        yield f"a busy process pinned to core {core} (of {len(os.sched_getaffinity(0))})"
    finally:
        proc.kill()
        proc.wait()


def main(ops=None, quick: bool = False, threads: int | None = None, rounds: int | None = None,
         plot_path: str | None = None, json_path: str | None = None, compile: bool = True,
         load: bool = False) -> int:
    threads = threads or get_num_threads()
    ops = ops or (["avg", "max", "avgpool"] if quick else OPS)
    unknown = set(ops) - set(OPS)
    if unknown:
        raise SystemExit(f"adapool bench: unknown ops {sorted(unknown)}; choose from {OPS}")
    shapes = QUICK_SHAPES if quick else SEED_SHAPES
    if plot_path:
        _matplotlib()   # before the run, not after it
    with busy_core() if load else contextlib.nullcontext() as loaded:
        rows = run(ops, shapes, threads, rounds or (5 if quick else 15), compile=compile)
    env = environment(threads)
    if loaded:
        env["load"] = loaded
    emit(table(rows, env), json_path, {"environment": env, "rows": rows})
    if plot_path:
        plot(rows, env, plot_path)
        print(f"plot written to {plot_path}", file=sys.stderr)   # stdout is the table (docs/bench.md)
    return 0
