"""adaptive_avg_pool2d: adapool vs torch (same thread count) vs a read floor, side by side.

Contenders are timed interleaved, round after round, in one process, and each reported number
is a median over rounds; what matters are the ratios, which survive a noisy machine far better
than absolute times.

    python benchmarks/bench_adaptive_avg_pool2d.py [--threads 2] [--rounds 15] [--json out.json]

Columns: times in ms; `x torch` = torch time / adapool time (higher is better for adapool) for
the contiguous (NCHW) and channels-last (NHWC) layouts; `/ floor` = adapool time / the time of
one full read of the same bytes (torch.sum with the same threads; numpy sum without torch).
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

import adapool

SHAPES = [
    ((32, 2048, 7, 7), 1),
    ((4, 512, 56, 56), 7),
    ((4, 512, 112, 112), 7),
    ((8, 256, 14, 14), 7),
    ((16, 256, 100, 100), 10),
    ((8, 256, 15, 15), 7),
    ((1, 16, 223, 223), 7),
    ((1, 1, 8, 8), 2),
]


def _time_once(fn, inner: int) -> float:
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def run(threads: int, rounds: int):
    try:
        import torch
        import torch.nn.functional as F
        torch.set_num_threads(threads)
    except ImportError:
        torch = None
    adapool.set_num_threads(threads)
    rows = []
    for shape, out in SHAPES:
        x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        x_cl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        fns = {
            "adapool": lambda: adapool.adaptive_avg_pool2d(x, out),
            "adapool_cl": lambda: adapool.adaptive_avg_pool2d(x_cl, out),
        }
        if torch is not None:
            tx = torch.from_numpy(x)
            tx_cl = tx.contiguous(memory_format=torch.channels_last)
            fns["torch"] = lambda: F.adaptive_avg_pool2d(tx, out)
            fns["torch_cl"] = lambda: F.adaptive_avg_pool2d(tx_cl, out)
            fns["floor"] = lambda: tx.sum()
        else:
            fns["floor"] = lambda: x.sum()
        # Calls per timing sample: enough for ~2 ms, so tiny shapes are not timer noise.
        inner = {k: max(1, int(2e-3 / max(_time_once(f, 3), 1e-7))) for k, f in fns.items()}
        samples = {k: [] for k in fns}
        for _ in range(rounds):
            for k, f in fns.items():
                samples[k].append(_time_once(f, inner[k]))
        med = {k: float(np.median(v)) * 1e3 for k, v in samples.items()}
        rows.append({"shape": list(shape), "output_size": out, **med})
    return rows


def table(rows, threads):
    has_torch = "torch" in rows[0]
    lines = [
        f"threads={threads}, numpy {np.__version__}, adapool {adapool.__version__}, "
        f"{platform.processor() or platform.machine()}",
        "",
        "| input | out | adapool | adapool CL | torch | torch CL | x torch | x torch CL | floor | / floor |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r.get("torch", float("nan"))
        tc = r.get("torch_cl", float("nan"))
        lines.append(
            f"| {tuple(r['shape'])} | {r['output_size']} | {r['adapool']:.4f} | {r['adapool_cl']:.4f} | "
            f"{t:.4f} | {tc:.4f} | {t / r['adapool']:.2f} | {tc / r['adapool_cl']:.2f} | "
            f"{r['floor']:.4f} | {r['adapool'] / r['floor']:.2f} |"
        )
    if not has_torch:
        lines.append("\n(torch not installed: torch columns are NaN; floor is numpy's single-threaded sum)")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", help="also write the medians here")
    args = parser.parse_args()
    rows = run(args.threads, args.rounds)
    print(table(rows, args.threads))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"threads": args.threads, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
