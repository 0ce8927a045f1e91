"""Out of core: pool a lazily generated float32 array several times larger than the workers'
memory on a dask LocalCluster, check the result against an independent reference, and record
peak worker memory and throughput against one in-memory call.

    python benchmarks/dask_out_of_core.py                 # 16 GiB on 2 workers of 2 GiB each
    python benchmarks/dask_out_of_core.py --gib 4 --workers 2 --memory-limit 1GiB

The input is x[n, c, h, w] = a[n] + b[c] + f[h] + g[w] (float32, small integers: every sum
exact), generated chunk by chunk on the workers and never held whole. Separable values give a
reference that does not use the chunked path: an adaptive window's mean is the sum of the
per-axis means, its maximum the sum of the per-axis maxima, taken at the first maximum on each
axis (torch's first maximum in scan order).
"""
import argparse
import threading
import time

import numpy as np

import adapool
import adapool.dask

A = lambda n: (n % 5).astype(np.float32)          # noqa: E731 (the four separable parts)
B = lambda c: (c % 3).astype(np.float32) * 8       # noqa: E731
F = lambda h: ((h * 7) % 13).astype(np.float32)    # noqa: E731
G = lambda w: ((w * 5) % 11).astype(np.float32) * 16   # noqa: E731


def block(block_info=None):
    info = block_info[None]
    (n0, n1), (c0, c1), (h0, h1), (w0, w1) = info["array-location"]
    return (A(np.arange(n0, n1))[:, None, None, None] + B(np.arange(c0, c1))[None, :, None, None]
            + F(np.arange(h0, h1))[None, None, :, None] + G(np.arange(w0, w1))[None, None, None, :])


def reference(shape, out):
    n, c, h, w = shape
    (hs, he), (ws, we) = adapool.adaptive_windows(out, h), adapool.adaptive_windows(out, w)
    f, g = F(np.arange(h)).astype(np.float64), G(np.arange(w)).astype(np.float64)
    fm = np.array([f[s:e].mean() for s, e in zip(hs, he)])
    gm = np.array([g[s:e].mean() for s, e in zip(ws, we)])
    fa = np.array([s + np.argmax(f[s:e]) for s, e in zip(hs, he)])
    ga = np.array([s + np.argmax(g[s:e]) for s, e in zip(ws, we)])
    a = A(np.arange(n)).astype(np.float64)[:, None, None, None]
    b = B(np.arange(c)).astype(np.float64)[None, :, None, None]
    mean = a + b + fm[None, None, :, None] + gm[None, None, None, :]
    peak = a + b + f[fa][None, None, :, None] + g[ga][None, None, None, :]
    index = np.broadcast_to((fa[:, None] * w + ga[None, :])[None, None], (n, c, out, out))
    return mean.astype(np.float32), peak.astype(np.float32), index


def main():
    import dask.array as da
    import distributed
    from distributed import Client, LocalCluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="2GiB")
    parser.add_argument("--out", type=int, default=7)
    args = parser.parse_args()

    hw = 2048
    n_c = int(args.gib * 2**30 / (hw * hw * 4))
    c = 64
    shape = (max(1, n_c // c), c, hw, hw)
    chunks = (1, 16, 1024, 1024)   # 64 MiB chunks
    nbytes = int(np.prod(shape)) * 4
    print(f"input {shape} float32 = {nbytes / 2**30:.1f} GiB in {int(np.prod([s // k for s, k in zip(shape, chunks)]))} "
          f"chunks of {np.prod(chunks) * 4 / 2**20:.0f} MiB; {args.workers} workers x {args.memory_limit}")

    # one in-memory call's throughput on this machine, for comparison (1 GiB)
    xm = np.asarray(block(block_info={None: {"array-location": [(0, 4), (0, 16), (0, 2048), (0, 2048)]}}))
    adapool.adaptive_avg_pool2d(xm, args.out)
    t = time.perf_counter()
    adapool.adaptive_avg_pool2d(xm, args.out)
    in_memory = xm.nbytes / (time.perf_counter() - t) / 1e9
    del xm

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, memory_limit=args.memory_limit,
                      processes=True, dashboard_address=None, silence_logs=40) as cluster, Client(cluster) as client:
        x = da.map_blocks(block, dtype=np.float32, chunks=tuple((k,) * (s // k) for s, k in zip(shape, chunks)))
        mean = adapool.dask.adaptive_avg_pool2d(x, args.out)
        peak, index = adapool.dask.adaptive_max_pool2d(x, args.out, return_indices=True)
        rss, stop = {}, threading.Event()

        def sample():
            while not stop.is_set():
                for addr, value in client.run(lambda: __import__("psutil").Process().memory_info().rss).items():
                    rss[addr] = max(rss.get(addr, 0), value)
                stop.wait(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t = time.perf_counter()
        futures = client.compute([mean, peak, index])
        distributed.progress(futures)   # a text progress bar outside notebooks
        got_mean, got_peak, got_index = client.gather(futures)
        wall = time.perf_counter() - t
        stop.set()
        sampler.join()
        # what generating the input alone costs (a reduction that reads one element a chunk), and
        # the average alone
        t = time.perf_counter()
        client.compute(x.map_blocks(lambda b: b[:, :, :1, :1], chunks=(1, 16, 1, 1)).sum(), sync=True)
        generate = time.perf_counter() - t
        t = time.perf_counter()
        client.compute(mean, sync=True)
        avg_only = time.perf_counter() - t

    want_mean, want_peak, want_index = reference(shape, args.out)
    np.testing.assert_allclose(got_mean, want_mean, rtol=1e-6)
    np.testing.assert_array_equal(got_peak, want_peak)
    np.testing.assert_array_equal(got_index, want_index)
    gbs = lambda seconds: nbytes / seconds / 1e9   # noqa: E731 (input bytes per second)
    print("\nright answer (mean, max, indices checked against the separable reference)")
    print(f"avg + max with indices (one pass over the generated input): {wall:.1f} s, {gbs(wall):.2f} GB/s; "
          f"avg alone: {avg_only:.1f} s, {gbs(avg_only):.2f} GB/s; generating the input alone: {generate:.1f} s, "
          f"{gbs(generate):.2f} GB/s; one in-memory adaptive_avg_pool2d call (1 GiB) on this machine: "
          f"{in_memory:.2f} GB/s")
    print("peak RSS per worker: " + ", ".join(f"{v / 2**30:.2f} GiB" for v in rss.values())
          + f" (limit {args.memory_limit})")


if __name__ == "__main__":
    main()
