"""fractional_max_pool2d (and 3d) against torch eager with the same samples, side by side.

The seed shapes with the issue's (kernel, output) pairs, contiguous and channels-last, float32,
values and indices; both sides get the same ``_random_samples`` (so the same windows) and
alternate within each round; the table gives the medians over the rounds and the ratio
torch / adapool (above 1: adapool is faster). The 3-d rows split C into (C/4, 4) as
bench_strided.py does.

    python benchmarks/bench_fractional.py [--rounds 7] [--threads 2] [--no-3d]
"""
import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

import adapool

# (input shape, kernel, output size)
CALLS = [((32, 2048, 7, 7), 2, 5), ((4, 512, 56, 56), 3, 28), ((8, 256, 14, 14), 2, 7),
         ((16, 256, 100, 100), 3, 50)]
CALLS_3D = [((32, 512, 4, 7, 7), 2, (2, 5, 5)), ((4, 128, 4, 56, 56), 2, (2, 28, 28))]


def _timed(f, n):
    start = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - start) / n * 1e3


def _input(shape, layout, rng):
    x = rng.standard_normal(shape, dtype=np.float32)
    if layout == "channels_last":
        order = (0,) + tuple(range(2, x.ndim)) + (1,)
        x = np.ascontiguousarray(x.transpose(order)).transpose(np.argsort(order))
    return x, torch.from_numpy(x)   # the same strides on torch's side


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=adapool.get_num_threads())
    parser.add_argument("--no-3d", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    adapool.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"{time.strftime('%Y-%m-%d')}, {args.threads} thread(s); adapool {adapool.__version__}, torch {torch.__version__}\n")
    print("| op | input | kernel | output | layout | adapool ms | torch ms | x torch |")
    print("|---|---|---|---|---|---|---|---|")
    calls = CALLS + ([] if args.no_3d else CALLS_3D)
    for shape, kernel, out in calls:
        nd = len(shape) - 2
        op = f"fractional_max_pool{nd}d"
        for layout in ("contiguous", "channels_last"):
            x, t = _input(shape, layout, rng)
            s = rng.random((shape[0], shape[1], nd), dtype=np.float32)
            ts = torch.from_numpy(s)
            ours = lambda: getattr(adapool, op)(x, kernel, out, return_indices=True, _random_samples=s)  # noqa: E731
            theirs = lambda: getattr(F, op)(t, kernel, out, return_indices=True, _random_samples=ts)    # noqa: E731
            a, b = ours(), theirs()
            assert np.array_equal(a[1], b[1].numpy()), "adapool and torch disagree"
            n = int(min(2000, max(3, 30 / max(_timed(ours, 2), 1e-3))))
            ta, tb = [], []
            for _ in range(args.rounds):
                ta.append(_timed(ours, n))
                tb.append(_timed(theirs, n))
            ma, mb = float(np.median(ta)), float(np.median(tb))
            print(f"| {op} | {shape} | {kernel} | {out} | {layout} | {ma:.3f} | {mb:.3f} | {mb / ma:.2f} |", flush=True)


if __name__ == "__main__":
    main()
