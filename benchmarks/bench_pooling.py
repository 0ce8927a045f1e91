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
import platform

import numpy as np

import adapool
from adapool import _bench
from adapool._bench import OPS, SEED_SHAPES



def run(ops, threads: int, rounds: int):
    return _bench.run(ops, SEED_SHAPES, threads, rounds, channels_last=True, onnx=False)


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
    _bench.emit(table(rows, args.threads), args.json, {"threads": args.threads, "rows": rows})


if __name__ == "__main__":
    main()
