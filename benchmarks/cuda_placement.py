"""Which nodes onnxruntime's CUDA EP leaves on the CPU EP, for graphs a strict CUDA session
refuses (benchmarks/README.md: every graph with indices, every dynamic one). Runs each graph in a
session that allows CPU fallback, with profiling, and lists the nodes whose provider is not CUDA.
Needs a CUDA machine with onnxruntime-gpu; elsewhere it says so and exits 2.

    python benchmarks/cuda_placement.py
"""
from __future__ import annotations

import collections
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import onnx_export  # noqa: E402

CASES = [
    ("adaptive_max_pool2d", (2, 3, 6, 5), dict(output_size=1, return_indices=True), "pool"),
    ("adaptive_max_pool2d", (2, 3, 14, 14), dict(output_size=7, return_indices=True), "pool"),
    ("adaptive_max_pool3d", (2, 3, 7, 9, 11), dict(output_size=(3, 2, 5), return_indices=True), "pool"),
    ("adaptive_max_pool2d", (2, 3, 15, 14), dict(output_size=(3, 5), return_indices=True), "gather"),
    ("adaptive_max_pool1d", (3, 11), dict(output_size=4, return_indices=True), "gather"),
    ("max_pool2d", (2, 3, 14, 14), dict(kernel_size=3, stride=2, padding=1, return_indices=True), "auto"),
    ("adaptive_avg_pool2d", (2, 3, "H", "W"), dict(output_size=(4, 5)), "dynamic"),
]


def main():
    import onnxruntime as ort
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print("cuda_placement: onnxruntime without CUDAExecutionProvider", file=sys.stderr)
        sys.exit(2)
    for op, shape, kw, strategy in CASES:
        model = onnx_export.export(op, shape, strategy=strategy, **kw)
        with tempfile.TemporaryDirectory() as tmp:
            opts = ort.SessionOptions()
            opts.enable_profiling = True
            opts.profile_file_prefix = os.path.join(tmp, "p")
            sess = ort.InferenceSession(model.SerializeToString(), opts,
                                        providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
            x = np.random.default_rng(0).standard_normal([d if isinstance(d, int) else 9 for d in shape])
            sess.run(None, {"input": x.astype(np.float32)})
            with open(sess.end_profiling()) as f:
                events = json.load(f)
        on_cpu = collections.Counter(
            (e["args"].get("op_name"), e["name"].rsplit("_kernel_time", 1)[0])
            for e in events if e.get("cat") == "Node"
            and e.get("args", {}).get("provider") not in (None, "CUDAExecutionProvider"))
        print(f"{op} {shape} {kw} [{strategy}]: {len(on_cpu)} nodes on CPU")
        for (op_type, name), _ in sorted(on_cpu.items()):
            print(f"    {op_type:16s} {name}")


if __name__ == "__main__":
    main()
