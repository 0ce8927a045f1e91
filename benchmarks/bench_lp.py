"""lp_pool2d against torch eager, side by side (issue 15).

The seed shapes, contiguous and channels-last, float32; adapool and torch alternate within each
round and the table gives the medians over the rounds and the ratio torch / adapool (above 1:
adapool is faster). Both run the same composition (powers, an average pool, the root);
``--backward`` times the gradients too (torch: one autograd backward through the composition,
its forward not timed); ``--composition`` also times the forward through the NumPy
composition alone (adapool/_lp.py without its elementwise kernel: the code before that kernel),
interleaved with the other two, and prints both ratios.

    python benchmarks/bench_lp.py [--rounds 7] [--threads 2] [--backward] [--composition]
"""
import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

import adapool
from adapool import _lp

SHAPES = [(32, 2048, 7, 7), (4, 512, 56, 56), (8, 256, 14, 14), (16, 256, 100, 100)]
CALLS = [
    dict(norm_type=2, kernel_size=2),
    dict(norm_type=3, kernel_size=3, stride=2),
    dict(norm_type=1, kernel_size=2),
    dict(norm_type=1.5, kernel_size=2),
]


class _Composition(_lp._Steps):
    def in_kernel(self, a):
        return False


def _composition(f):
    """f through the NumPy composition alone."""
    def run():
        steps, _lp._Steps = _lp._Steps, _Composition
        try:
            return f()
        finally:
            _lp._Steps = steps
    return run


def _timed(f, n):
    start = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - start) / n * 1e3


def _input(shape, layout, rng):
    # positive values: with p = 3 a negative window sum is NaN, in both libraries alike
    x = np.abs(rng.standard_normal(shape, dtype=np.float32))
    if layout == "channels_last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return x, torch.from_numpy(x)   # the same strides on torch's side


def _row(name, kw, x, layout, ours, theirs, rounds, before=None):
    contenders = [ours, theirs] + ([before] if before else [])
    for f in contenders:
        f()
    n = int(min(2000, max(3, 30 / max(_timed(ours, 2), 1e-3))))
    times = [[] for _ in contenders]
    for _ in range(rounds):
        for f, t in zip(contenders, times):
            t.append(_timed(f, n))
    a, b, *c = (float(np.median(t)) for t in times)
    text = ", ".join(f"{k}={v}" for k, v in kw.items())
    extra = f" {c[0]:.3f} | {b / c[0]:.2f} |" if c else ""
    print(f"| {name} | {text} | {tuple(x.shape)} | {layout} | {a:.3f} | {b:.3f} | {b / a:.2f} |{extra}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=adapool.get_num_threads())
    parser.add_argument("--backward", action="store_true")
    parser.add_argument("--composition", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    adapool.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"{time.strftime('%Y-%m-%d')}, {args.threads} thread(s); adapool {adapool.__version__}, torch {torch.__version__}\n")
    more = " composition ms | composition x torch |" if args.composition else ""
    print("| op | arguments | input | layout | adapool ms | torch ms | x torch |" + more)
    print("|---|---|---|---|---|---|---|" + "---|---|" * args.composition)
    for kw in CALLS:
        for shape in SHAPES:
            for layout in ("contiguous", "channels_last"):
                x, t = _input(shape, layout, rng)
                ours = lambda: adapool.lp_pool2d(x, **kw)  # noqa: E731
                _row("lp_pool2d", kw, x, layout, ours, lambda: F.lp_pool2d(t, **kw), args.rounds,
                     _composition(ours) if args.composition else None)
                if not args.backward:
                    continue
                tg = t.clone().requires_grad_(True)
                ty = F.lp_pool2d(tg, **kw)
                go = np.ones(tuple(ty.shape), np.float32)
                tgo = torch.from_numpy(go)
                _row("lp_pool2d_backward", kw, x, layout, lambda: adapool.lp_pool2d_backward(go, x, **kw),
                     lambda: torch.autograd.grad(ty, tg, tgo, retain_graph=True), args.rounds)


if __name__ == "__main__":
    main()
