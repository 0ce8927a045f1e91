"""max_unpool2d (and its 1-d/3-d forms, and the gradient) against torch eager, side by side (issue 15).

Each seed shape is max-pooled (kernel 2, or 3/2/1 like the ResNet stem) with indices, and the
pooled values are unpooled back to the seed's size (output_size given, so odd sizes round
trip). float32, contiguous and channels-last; adapool and torch alternate within each round and
the table gives the medians over the rounds and the ratio torch / adapool (above 1: adapool is
faster). The gradient row times adapool's max_unpool2d_backward against torch's autograd
backward of max_unpool2d (a gather), both from grad_output.

    python benchmarks/bench_unpool.py [--rounds 7] [--threads 2]
"""
import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

import adapool

SHAPES = [(32, 2048, 7, 7), (4, 512, 56, 56), (8, 256, 14, 14), (16, 256, 100, 100)]
POOLS = [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1)]


def _timed(f, n):
    start = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - start) / n * 1e3


def _layout(x, layout):
    if layout == "contiguous":
        return x
    order = (0,) + tuple(range(2, x.ndim)) + (1,)
    return np.ascontiguousarray(x.transpose(order)).transpose(np.argsort(order))


def _cases(rng):
    """(label, kwargs, layout, adapool call, torch call)."""
    for pool in POOLS:
        for shape in SHAPES:
            for layout in ("contiguous", "channels_last"):
                x = _layout(rng.standard_normal(shape, dtype=np.float32), layout)
                y, ind = adapool.max_pool2d(x, return_indices=True, **pool)
                ty, ti = torch.from_numpy(y), torch.from_numpy(ind)   # the same strides on torch's side
                kw = dict(pool, output_size=shape[2:])
                yield ("max_unpool2d", pool, y.shape, layout,
                       lambda y=y, ind=ind, kw=kw: adapool.max_unpool2d(y, ind, **kw),
                       lambda ty=ty, ti=ti, kw=kw: F.max_unpool2d(ty, ti, **kw))
                if pool != POOLS[0]:
                    continue
                go = _layout(rng.standard_normal(shape, dtype=np.float32), layout)
                tg = torch.from_numpy(go)
                leaf = ty.clone().requires_grad_(True)
                out = F.max_unpool2d(leaf, ti, **kw)

                def torch_grad(out=out, tg=tg, leaf=leaf):
                    (g,) = torch.autograd.grad(out, leaf, tg, retain_graph=True)
                    return g
                yield ("max_unpool2d_backward", pool, y.shape, layout,
                       lambda go=go, ind=ind, s=y.shape, kw=kw: adapool.max_unpool2d_backward(go, ind, s, **kw),
                       torch_grad)
    for shape in SHAPES[1:3]:   # 1-d: (N, C, H*W); 3-d: (N, C/4, 4, H, W)
        x1 = rng.standard_normal((shape[0], shape[1], shape[2] * shape[3]), dtype=np.float32)
        x3 = rng.standard_normal((shape[0], shape[1] // 4, 4) + shape[2:], dtype=np.float32)
        for nd, x in ((1, x1), (3, x3)):
            y, ind = getattr(adapool, f"max_pool{nd}d")(x, 2, return_indices=True)
            ty, ti = torch.from_numpy(y), torch.from_numpy(ind)
            yield (f"max_unpool{nd}d", dict(kernel_size=2), y.shape, "contiguous",
                   lambda nd=nd, y=y, ind=ind, s=x.shape: getattr(adapool, f"max_unpool{nd}d")(y, ind, 2, output_size=s),
                   lambda nd=nd, ty=ty, ti=ti, s=x.shape: getattr(F, f"max_unpool{nd}d")(ty, ti, 2, output_size=s))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=adapool.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    adapool.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"{time.strftime('%Y-%m-%d')}, {args.threads} thread(s); adapool {adapool.__version__}, torch {torch.__version__}\n")
    print("| op | pool | pooled input | layout | adapool ms | torch ms | x torch |")
    print("|---|---|---|---|---|---|---|")
    for op, pool, shape, layout, ours, theirs in _cases(rng):
        ours(), theirs()
        n = int(min(2000, max(3, 30 / max(_timed(ours, 2), 1e-3))))
        a, b = [], []
        for _ in range(args.rounds):
            a.append(_timed(ours, n))
            b.append(_timed(theirs, n))
        a, b = float(np.median(a)), float(np.median(b))
        text = ", ".join(f"{k}={v}" for k, v in pool.items())
        print(f"| {op} | {text} | {tuple(shape)} | {layout} | {a:.4f} | {b:.4f} | {b / a:.2f} |", flush=True)


if __name__ == "__main__":
    main()
