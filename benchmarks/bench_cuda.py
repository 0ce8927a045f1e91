"""adapool's exported graphs under onnxruntime's CUDA EP (strict: every node on the GPU) against
torch's own CUDA kernels, on the seed shapes. Needs a CUDA machine with onnxruntime-gpu and a CUDA
build of torch; elsewhere it says what is missing and exits 2.

    python benchmarks/bench_cuda.py [--rounds 15] [--json out.json]

Input and output stay on the GPU for both (onnxruntime through IO binding), so what is timed is
the pooling, not PCIe copies; each sample synchronises the device. Columns: ms per call (medians
of interleaved rounds); `x torch` = torch's time / the graph's (above 1: the graph is faster);
`read` = one full read of the input on the GPU (torch's sum), the memory floor.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from adapool._bench import POOL, SEED_SHAPES, emit, interleaved_ms  # noqa: E402
import onnx_export  # noqa: E402
from onnx_export._runtimes import _ort_session  # noqa: E402

OPS = {"avg": "adaptive_avg_pool2d", "max": "adaptive_max_pool2d", "avgpool": "avg_pool2d"}


def _kwargs(op, out):
    return dict(POOL) if op == "avgpool" else {"output_size": out}


def _ort_cuda(model, x_gpu, torch):
    """A strict CUDA session (no CPU fallback) run through IO binding on device buffers."""
    import onnxruntime as ort
    import tempfile
    tmp = tempfile.mkdtemp()
    sess = _ort_session(model.SerializeToString(), "CUDAExecutionProvider", tmp)
    binding = sess.io_binding()
    binding.bind_input("input", "cuda", 0, np.float32, list(x_gpu.shape), x_gpu.data_ptr())
    for o in sess.get_outputs():
        binding.bind_output(o.name, "cuda", 0)

    def run():
        sess.run_with_iobinding(binding)
        torch.cuda.synchronize()
    run()
    return run, sess, ort


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json")
    args = parser.parse_args()
    try:
        import onnxruntime as ort
        import torch
    except ImportError as e:
        sys.exit(f"bench_cuda needs torch and onnxruntime-gpu: {e}")
    if not torch.cuda.is_available() or "CUDAExecutionProvider" not in ort.get_available_providers():
        print("bench_cuda: no CUDA device, or onnxruntime without CUDAExecutionProvider", file=sys.stderr)
        sys.exit(2)
    F = torch.nn.functional
    rows = []
    for op in OPS:
        for shape, out in SEED_SHAPES:
            name = OPS[op]
            kw = _kwargs(op, out)
            x = torch.randn(shape, device="cuda")
            fns = {"torch": lambda: (getattr(F, name)(x, **kw), torch.cuda.synchronize()),
                   "read": lambda: (x.sum(), torch.cuda.synchronize())}
            strategy = "?"
            try:
                model = onnx_export.export(name, shape, **kw)
                strategy = {p.key: p.value for p in model.metadata_props}["adapool.strategy"]
                fns["onnx"], _, _ = _ort_cuda(model, x, torch)
            except Exception as e:   # noqa: BLE001 (a refused graph is a result)
                strategy += f" (refused: {str(e).splitlines()[0][:80]})"
            ms = interleaved_ms(fns, args.rounds)
            rows.append({"op": op, "shape": list(shape), "out": out, "strategy": strategy, **ms})
            print(f"  {op} {shape}", file=sys.stderr)
    lines = [f"torch {torch.__version__}, onnxruntime {ort.__version__}, {torch.cuda.get_device_name()}", "",
             "| op | shape → out | graph | torch ms | onnx ms | x torch | read ms |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        onnx_ms = r.get("onnx")
        ratio = f"{r['torch'] / onnx_ms:.2f}" if onnx_ms else "—"
        lines.append(f"| {r['op']} | {tuple(r['shape'])} → {r['out']} | {r['strategy']} | {r['torch']:.4f} | "
                     f"{onnx_ms if onnx_ms is None else f'{onnx_ms:.4f}'} | {ratio} | {r['read']:.4f} |")
    emit("\n".join(lines), args.json, {"rows": rows})


if __name__ == "__main__":
    main()
