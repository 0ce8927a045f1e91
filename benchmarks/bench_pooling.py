"""adapool vs torch (same thread count), side by side, for every pooling op and its gradient.

Contenders are timed interleaved, round after round, in one process; every number is a median
over rounds. What matters are the ratios, which survive a noisy machine far better than
absolute times.

    python benchmarks/bench_pooling.py [--ops avg,max,avgpool,avg_bwd,max_bwd,avgpool_bwd]
                                       [--threads 2] [--rounds 15] [--json out.json]

Columns: times in ms for contiguous (NCHW) and channels-last (CL) float32 input; `x torch` =
torch's time / adapool's on the same layout (above 1: adapool is faster). For `avg`, `/ floor`
= adapool's time / one full read of the input (torch.sum with the same threads).
Backward ops are timed alone: torch's via the aten backward kernels, not autograd.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

import adapool

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


def _channels_last(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def contenders(op, shape, out, torch):
    """{name: callable} for one op and shape: adapool and torch, contiguous and channels-last."""
    F = torch.nn.functional if torch else None
    aten = torch.ops.aten if torch else None
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    layouts = {"": x, "_cl": _channels_last(x)}
    fns = {}
    for suffix, xi in layouts.items():
        tx = torch.from_numpy(np.ascontiguousarray(xi)) if torch else None
        if torch and suffix:
            tx = tx.contiguous(memory_format=torch.channels_last)
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


def run(ops, threads: int, rounds: int):
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        torch = None
    adapool.set_num_threads(threads)
    rows = []
    for op in ops:
        for shape, out in SEED_SHAPES:
            fns = contenders(op, shape, out, torch)
            # Calls per timing sample: enough for ~2 ms, so tiny shapes are not timer noise.
            inner = {k: max(1, int(2e-3 / max(_time_once(f, 3), 1e-7))) for k, f in fns.items()}
            samples = {k: [] for k in fns}
            for _ in range(rounds):
                for k, f in fns.items():
                    samples[k].append(_time_once(f, inner[k]))
            rows.append({"op": op, "shape": list(shape), "output_size": out,
                         **{k: float(np.median(v)) * 1e3 for k, v in samples.items()}})
    return rows


def table(rows, threads):
    nan = float("nan")
    lines = [
        f"threads={threads}, numpy {np.__version__}, adapool {adapool.__version__} "
        f"({adapool._dispatch.kernels.simd_level()} kernels), {platform.machine()}",
        "",
        "| op | input | out | adapool | torch | x torch | adapool CL | torch CL | x torch CL | / floor |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t, tc = r.get("torch", nan), r.get("torch_cl", nan)
        floor = f"{r['adapool'] / r['floor']:.2f}" if "floor" in r else ""
        out = "3,2,1" if r["op"].startswith("avgpool") else r["output_size"]
        lines.append(
            f"| {r['op']} | {tuple(r['shape'])} | {out} | {r['adapool']:.4f} | {t:.4f} | "
            f"{t / r['adapool']:.2f} | {r['adapool_cl']:.4f} | {tc:.4f} | {tc / r['adapool_cl']:.2f} | {floor} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", default=",".join(OPS), help=f"comma-separated subset of {OPS}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", help="also write the medians here")
    args = parser.parse_args()
    ops = [o for o in args.ops.split(",") if o]
    unknown = set(ops) - set(OPS)
    if unknown:
        parser.error(f"unknown ops {sorted(unknown)}; choose from {OPS}")
    rows = run(ops, args.threads, args.rounds)
    print(table(rows, args.threads))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"threads": args.threads, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
