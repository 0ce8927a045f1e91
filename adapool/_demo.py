"""`python -m adapool demo`: the seed card's examples on generated data, timed against a
NumPy implementation and (when installed) torch, with the largest difference from torch."""
from __future__ import annotations

import time

import numpy as np

from . import adaptive_avg_pool2d, get_num_threads, openmp_enabled
from ._windows import adaptive_windows

EXAMPLES = [
    ("ResNet-50 global pooling", (32, 2048, 7, 7), 1),
    ("variable size: small image", (4, 512, 56, 56), 7),
    ("variable size: 2x larger image", (4, 512, 112, 112), 7),
    ("FPN P5 to a 7x7 grid", (8, 256, 14, 14), (7, 7)),
    ("100x100 to 10x10", (16, 256, 100, 100), (10, 10)),
]


def numpy_adaptive_avg_pool2d(x: np.ndarray, output_size) -> np.ndarray:
    """What one would write in plain NumPy: window sums from a float64 integral image."""
    oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
    h0, h1 = adaptive_windows(oh, x.shape[-2])
    w0, w1 = adaptive_windows(ow, x.shape[-1])
    s = np.zeros(x.shape[:-2] + (x.shape[-2] + 1, x.shape[-1] + 1))
    np.cumsum(np.cumsum(x, axis=-2, dtype=np.float64), axis=-1, out=s[..., 1:, 1:])
    total = (s[..., h1[:, None], w1] - s[..., h0[:, None], w1] - s[..., h1[:, None], w0] + s[..., h0[:, None], w0])
    area = (h1 - h0)[:, None] * (w1 - w0)
    return (total / area).astype(x.dtype)


def _median_ms(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def main(repeat: int = 5) -> int:
    try:
        import torch
    except ImportError:
        torch = None
    threads = get_num_threads()
    print(f"adapool demo: adaptive_avg_pool2d on the seed examples, float32, {threads} thread(s)"
          f"{'' if openmp_enabled() else ' (built without OpenMP)'}")
    if torch is not None:
        torch.set_num_threads(threads)
        print(f"torch {torch.__version__} with {threads} thread(s) for comparison")
    else:
        print("torch not installed: torch columns skipped (pip install torch==2.13.0 to add them)")
    rng = np.random.default_rng(0)
    header = f"{'example':32s} {'input -> output':40s} {'adapool ms':>10s} {'numpy ms':>9s}"
    header += f" {'torch ms':>9s} {'vs torch':>8s} {'max |diff|':>10s}" if torch is not None else ""
    print(header)
    print("-" * len(header))
    for name, shape, output_size in EXAMPLES:
        x = rng.standard_normal(shape, dtype=np.float32)
        y = adaptive_avg_pool2d(x, output_size)
        t_ap = _median_ms(lambda: adaptive_avg_pool2d(x, output_size), repeat)
        t_np = _median_ms(lambda: numpy_adaptive_avg_pool2d(x, output_size), max(1, repeat // 2))
        line = f"{name:32s} {str(shape) + ' -> ' + str(y.shape):40s} {t_ap:10.3f} {t_np:9.2f}"
        if torch is not None:
            tx = torch.from_numpy(x)
            ref = torch.nn.functional.adaptive_avg_pool2d(tx, output_size).numpy()
            t_t = _median_ms(lambda: torch.nn.functional.adaptive_avg_pool2d(tx, output_size), repeat)
            line += f" {t_t:9.3f} {t_t / t_ap:7.2f}x {np.abs(ref - y).max():10.2e}"
        print(line)
    return 0
