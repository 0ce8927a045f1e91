"""`adapool demo`: the seed card's examples on generated data — adapool against torch (when
installed), each exported to ONNX and run under every available runtime."""
from __future__ import annotations

import time

import numpy as np

from . import adaptive_avg_pool2d, get_num_threads, openmp_enabled

# (example, input shape, output_size, ONNX input shape: None = the static shape)
EXAMPLES = [
    ("ResNet-50 global pooling", (32, 2048, 7, 7), 1, None),
    ("variable sizes: small image", (4, 512, 56, 56), 7, ("N", 512, "H", "W")),
    ("variable sizes: 2x larger image", (4, 512, 112, 112), 7, ("N", 512, "H", "W")),
    ("FPN P5 to a 7x7 grid", (8, 256, 14, 14), (7, 7), None),
    ("100x100 to 10x10", (16, 256, 100, 100), (10, 10), None),
]
# one column per runtime validate() runs by default (onnx_export._runtimes.DEFAULT_RUNTIMES)
RUNTIME_LABELS = {"onnxruntime-cpu": "ORT CPU", "onnxruntime-cuda": "ORT CUDA", "openvino": "OpenVINO",
                  "tract": "tract", "onnx-reference": "onnx ref"}


def _median_ms(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def _cell(row) -> str:
    if row.status == "ok":
        return f"{row.max_abs:.1e}"
    return {"skipped": "skipped", "known fault": "known fault"}.get(row.status, row.status.upper())


def main(repeat: int = 5) -> int:
    import onnx_export
    try:
        import torch
    except ImportError:
        torch = None
    threads = get_num_threads()
    print(f"adapool demo: adaptive_avg_pool2d on the seed examples, float32, {threads} thread(s)"
          f"{'' if openmp_enabled() else ' (built without OpenMP)'}")
    if torch is not None:
        torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    head = (f"{'example':32s} {'input -> output':36s} {'adapool ms':>10s} {'torch ms':>9s} {'x torch':>7s}"
            f"  {'ONNX graph':34s} " + " ".join(f"{v:>11s}" for v in RUNTIME_LABELS.values()))
    print(head)
    print("-" * len(head))
    skipped, failures, models = {}, 0, {}
    for name, shape, output_size, onnx_shape in EXAMPLES:
        x = rng.standard_normal(shape, dtype=np.float32)
        y = adaptive_avg_pool2d(x, output_size)
        t_ap = _median_ms(lambda: adaptive_avg_pool2d(x, output_size), repeat)
        line = f"{name:32s} {str(shape) + ' -> ' + str(y.shape[2:]):36s} {t_ap:10.3f}"
        if torch is not None:
            tx = torch.from_numpy(x)
            t_t = _median_ms(lambda: torch.nn.functional.adaptive_avg_pool2d(tx, output_size), repeat)
            if not np.allclose(torch.nn.functional.adaptive_avg_pool2d(tx, output_size).numpy(), y,
                               rtol=1e-5, atol=1e-6):
                failures += 1
                line += "  MISMATCH with torch"
            line += f" {t_t:9.3f} {t_t / t_ap:6.2f}x"
        else:
            line += f" {'-':>9s} {'-':>7s}"
        key = (onnx_shape or shape, str(output_size))
        if key not in models:   # the two variable-size examples share one dynamic graph
            models[key] = onnx_export.export("adaptive_avg_pool2d", onnx_shape or shape, output_size=output_size)
        model = models[key]
        strategy = {p.key: p.value for p in model.metadata_props}["adapool.strategy"]
        graph = f"{strategy}{' (dynamic H,W)' if onnx_shape else ''}, {len(model.graph.node)} node(s)"
        report = onnx_export.validate(model, [x], runtimes=list(RUNTIME_LABELS))
        failures += not report.ok
        for row in report.rows:
            if row.status == "skipped":
                skipped[row.runtime] = row.detail
        line += f"  {graph:34s} " + " ".join(f"{_cell(report.row(rt)):>11s}" for rt in RUNTIME_LABELS)
        print(line)
    print()
    print("runtime columns: max |runtime's output - adapool's| for the exported graph on the same input")
    if torch is None:
        print("torch: not installed, its columns are skipped (pip install torch==2.13.0, the CPU build, to add them)")
    for runtime, why in skipped.items():
        print(f"{RUNTIME_LABELS.get(runtime, runtime)}: skipped — {why}")
    print(f"all examples agree across adapool{', torch' if torch is not None else ''} and every runtime that ran"
          if not failures else f"{failures} example(s) disagreed: see the rows marked above")
    return 0 if not failures else 1
