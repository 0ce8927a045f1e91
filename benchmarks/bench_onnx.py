"""Each ONNX strategy's graph under onnxruntime's CPU EP vs adapool's kernel vs torch eager.

Timed interleaved, round after round, in one process (medians; the ratios are what matter on a
noisy machine). Static graphs are exported for the exact input shape; `dynamic` and `function`
graphs are exported with dynamic N, H, W and run at the same shape.

    python benchmarks/bench_onnx.py [--ops avg,max,avgpool,maxpool,maxpool_indices] [--threads 2] [--rounds 9] [--json out.json]

Columns: ms per call; `x torch` = torch eager's time / the graph's (above 1: the graph is faster);
`dyn / static` = the dynamic graph's time / the fastest static graph's.
"""
from __future__ import annotations

import argparse
import platform
import sys

import numpy as np

import adapool  # noqa: E402
from adapool import _bench  # noqa: E402
from adapool._bench import POOL, SEED_SHAPES, interleaved_ms  # noqa: E402
import onnx_export  # noqa: E402

OPS = {"avg": "adaptive_avg_pool2d", "max": "adaptive_max_pool2d", "avgpool": "avg_pool2d",
       "maxpool": "max_pool2d", "maxpool_indices": "max_pool2d"}
STRIDED = ("avgpool", "maxpool", "maxpool_indices")


def _kwargs(op, out):
    if op == "maxpool_indices":
        return dict(POOL, return_indices=True)
    return dict(POOL) if op in STRIDED else {"output_size": out}


def _session(model, threads):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # onnxruntime's idle workers spin after each run, which steals the cores from the
    # contenders timed next (adapool and torch came out 5-10x slower with spinning on)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])


def contenders(op, shape, out, threads, torch):
    name = OPS[op]
    kw = _kwargs(op, out)
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    fns = {"adapool": lambda: getattr(adapool, name)(x, **kw)}
    if torch is not None:
        tx = torch.from_numpy(x)
        fns["torch"] = lambda: getattr(torch.nn.functional, name)(tx, **kw)
    nodes = {}
    for strategy in onnx_export.STRATEGIES:
        dynamic = strategy in ("dynamic", "function")
        in_shape = ("N", shape[1], "H", "W") if dynamic else shape
        try:
            model = onnx_export.export(name, in_shape, strategy=strategy, **kw)
        except onnx_export.ExportError:
            continue
        sess = _session(model, threads)
        fns[strategy] = lambda sess=sess: sess.run(None, {"input": x})
        nodes[strategy] = len(model.graph.node)
    auto = onnx_export.export(name, shape, **kw)
    chosen = {p.key: p.value for p in auto.metadata_props}["adapool.strategy"]
    return fns, nodes, chosen


def run(ops, threads, rounds):
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        torch = None
    adapool.set_num_threads(threads)
    rows = []
    for op in ops:
        for shape, out in SEED_SHAPES:
            fns, nodes, chosen = contenders(op, shape, out, threads, torch)
            rows.append({"op": op, "shape": list(shape), "output_size": out, "auto": chosen, "nodes": nodes,
                         "ms": interleaved_ms(fns, rounds)})
            print(f"  {op} {shape} done", file=sys.stderr)
    return rows


def table(rows, threads):
    import onnxruntime as ort
    lines = [f"threads={threads}, onnxruntime {ort.__version__}, onnx {__import__('onnx').__version__}, "
             f"numpy {np.__version__}, {platform.machine()}", "",
             "| op | input | out | strategy (nodes) | graph ms | adapool ms | torch ms | x torch | dyn / static |",
             "|---|---|---|---|---|---|---|---|---|"]
    nan = float("nan")
    for r in rows:
        ms = r["ms"]
        static = [s for s in ms if s in ("global", "reduce", "pool", "matmul", "gather")]
        best_static = min((ms[s] for s in static), default=nan)
        out = "3,2,1" if r["op"] in STRIDED else r["output_size"]
        for s in [s for s in onnx_export.STRATEGIES if s in ms]:
            mark = " (auto)" if s == r["auto"] else ""
            dyn = f"{ms[s] / best_static:.2f}" if s in ("dynamic", "function") else ""
            lines.append(f"| {r['op']} | {tuple(r['shape'])} | {out} | {s}{mark} ({r['nodes'][s]}) | {ms[s]:.3f} | "
                         f"{ms['adapool']:.3f} | {ms.get('torch', nan):.3f} | {ms.get('torch', nan) / ms[s]:.2f} | {dyn} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", default="avg,max,avgpool")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json")
    args = parser.parse_args()
    ops = [o for o in args.ops.split(",") if o]
    if set(ops) - set(OPS):
        parser.error(f"unknown ops {sorted(set(ops) - set(OPS))}; choose from {list(OPS)}")
    rows = run(ops, args.threads, args.rounds)
    _bench.emit(table(rows, args.threads), args.json, {"threads": args.threads, "rows": rows})


if __name__ == "__main__":
    main()
