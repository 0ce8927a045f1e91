"""max_pool1d/2d/3d and avg_pool1d/3d against torch eager, side by side (issue 15).

The seed shapes, contiguous and channels-last, float32; adapool and torch alternate within each
round and the table gives the medians over the rounds and the ratio torch / adapool (above 1:
adapool is faster). 2-d shapes are flattened to (N, C, H*W) for the 1-d ops and split to
(N, C/4, 4, H, W) for the 3-d ops.

    python benchmarks/bench_strided.py [--rounds 7] [--ops max_pool2d,avg_pool3d] [--threads 2]
"""
import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

import adapool

SHAPES = [(32, 2048, 7, 7), (4, 512, 56, 56), (4, 512, 112, 112), (8, 256, 14, 14), (16, 256, 100, 100),
          (8, 256, 15, 15), (1, 16, 223, 223), (1, 1, 8, 8)]
CALLS = [
    ("max_pool2d", dict(kernel_size=3, stride=2, padding=1), False),   # the ResNet stem's pool
    ("max_pool2d", dict(kernel_size=2), False),
    ("max_pool2d", dict(kernel_size=3, stride=2, padding=1), True),
    ("max_pool1d", dict(kernel_size=3, stride=2, padding=1), False),
    ("avg_pool1d", dict(kernel_size=3, stride=2, padding=1), False),
    ("max_pool3d", dict(kernel_size=2), False),
    ("avg_pool3d", dict(kernel_size=2), False),
]


def _timed(f, n):
    start = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - start) / n * 1e3


def _input(op, shape, layout, rng):
    x = rng.standard_normal(shape, dtype=np.float32)
    if op.endswith("1d"):
        x = x.reshape(shape[0], shape[1], -1)
    elif op.endswith("3d"):
        if shape[1] < 4 or shape[2] < 4:
            return None
        x = np.ascontiguousarray(x.reshape(shape[0], shape[1] // 4, 4, shape[2], shape[3]))
    t = torch.from_numpy(x)
    if layout == "channels_last":
        order = (0,) + tuple(range(2, x.ndim)) + (1,)
        x = np.ascontiguousarray(x.transpose(order)).transpose(np.argsort(order))
        t = torch.from_numpy(x)   # the same strides on torch's side
    return x, t


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ops", default="")
    parser.add_argument("--threads", type=int, default=adapool.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    adapool.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    wanted = set(filter(None, args.ops.split(",")))
    print(f"{time.strftime('%Y-%m-%d')}, {args.threads} thread(s); adapool {adapool.__version__}, torch {torch.__version__}\n")
    print("| op | arguments | input | layout | adapool ms | torch ms | x torch |")
    print("|---|---|---|---|---|---|---|")
    for op, kw, indices in CALLS:
        if wanted and op not in wanted:
            continue
        extra = dict(return_indices=True) if indices else {}
        for shape in SHAPES:
            for layout in ("contiguous", "channels_last"):
                made = _input(op, shape, layout, rng)
                if made is None:
                    continue
                x, t = made
                ours = lambda: getattr(adapool, op)(x, **kw, **extra)      # noqa: E731
                theirs = lambda: getattr(F, op)(t, **kw, **extra)          # noqa: E731
                ours(), theirs()
                n = int(min(2000, max(3, 30 / max(_timed(ours, 2), 1e-3))))
                a, b = [], []
                for _ in range(args.rounds):
                    a.append(_timed(ours, n))
                    b.append(_timed(theirs, n))
                a, b = float(np.median(a)), float(np.median(b))
                text = ", ".join(f"{k}={v}" for k, v in kw.items()) + (", return_indices" if indices else "")
                print(f"| {op} | {text} | {tuple(x.shape)} | {layout} | {a:.4f} | {b:.4f} | {b / a:.2f} |", flush=True)


if __name__ == "__main__":
    main()
