"""No memory growth: every op, called tens of thousands of times, leaves the process's memory
where it was after a warm-up -- on its error paths too, where leaks like to hide (an exception
raised after the kernel allocated its scratch, a refused out=, a bad index found mid-kernel).

Two measures, both read before and after the loop (after a gc.collect()):

* the resident set size from /proc/self/statm, with a generous bound (20 MiB), and
* where glibc has ``mallinfo2``, the bytes malloc has handed out and not got back -- much more
  sensitive (256 KiB over 20,000 calls is 13 bytes a call, less than any malloc), and steady
  enough for it (a few hundred bytes of noise): the
  kernels' scratch, numpy's small buffers and the window tables all come from malloc.

Inputs are small (the whole file takes well under a minute); a few cases are large enough
(>= 32K elements, 2 threads) to run the parallel path, which allocates per-thread scratch and
status arrays.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os

import numpy as np
import pytest

import adapool

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/statm"),
    reason="the resident set size is read from /proc/self/statm, which this platform (no /proc) lacks")

CALLS = 20_000          # valid calls per case, after the warm-up
ERROR_EVERY = 2         # ... plus one failing call after every ERROR_EVERY valid ones
WARMUP = 1_000
RSS_BOUND = 20 * 2**20
HEAP_BOUND = 256 * 2**10


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mallinfo2():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    fn.argtypes = []
    return fn


_MALLINFO2 = _mallinfo2()


def heap_bytes() -> int | None:
    """Bytes malloc has handed out (small blocks and mmapped ones), or None without mallinfo2."""
    if _MALLINFO2 is None:
        return None
    m = _MALLINFO2()
    return m.uordblks + m.hblkhd


# ---- the calls ----------------------------------------------------------------------------------

RNG = np.random.default_rng(3)


def _x(shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def _channels_last(a):
    nd = a.ndim - 2
    order = (0,) + tuple(range(2, nd + 2)) + (1,)
    return np.ascontiguousarray(a.transpose(order)).transpose(np.argsort(order))


SPATIAL = {1: (256,), 2: (4, 64), 3: (2, 4, 32)}
OUTPUT = {1: (75,), 2: (3, 25), 3: (2, 3, 10)}


def _adaptive(kind, nd, layout="c", threads=None, indices=False):
    """(valid call, failing call, expected error, message fragment) for one adaptive op."""
    shape = (2, 4) + SPATIAL[nd] if threads is None else (2, 128) + SPATIAL[nd]
    x = _x(shape)
    if layout == "cl":
        x = _channels_last(x)
    f = getattr(adapool, f"adaptive_{kind}_pool{nd}d")
    osize = OUTPUT[nd]
    if kind == "avg":
        out = np.empty(x.shape[:2] + osize, np.float64)           # wrong dtype for float32 input
        return (lambda: f(x, osize), lambda: f(x, osize, out=out), TypeError, "out has dtype float64")
    bad_size = (1,) * (nd - 1) + (-3,)
    return (lambda: f(x, osize, return_indices=indices), lambda: f(x.astype(">f4"), bad_size, return_indices=indices),
            ValueError, "negative dimension -3")


def _adaptive_backward(kind, nd, layout="c", threads=None):
    shape = (2, 4) + SPATIAL[nd] if threads is None else (2, 128) + SPATIAL[nd]
    x = _x(shape)
    # max backward counts grad_output's elements to choose threads: keep it big when parallel
    osize = OUTPUT[nd] if threads is None or kind == "avg" else SPATIAL[nd]
    f = getattr(adapool, f"adaptive_{kind}_pool{nd}d_backward")
    go = _x(shape[:2] + osize)
    if layout == "cl":
        go = _channels_last(go)
    if kind == "avg":
        return (lambda: f(go, shape), lambda: f(go, shape[:1] + (5,) + shape[2:]), ValueError, "grad_output has shape")
    _, ind = getattr(adapool, f"adaptive_max_pool{nd}d")(x, osize, return_indices=True)
    if layout == "cl":
        ind = _channels_last(ind)
    bad = ind.copy()
    bad.reshape(-1)[-1] = int(np.prod(SPATIAL[nd]))     # found by the kernel, at the very end
    return (lambda: f(go, ind, shape), lambda: f(go, bad, shape), ValueError, "found an index outside")


def _pool(layout="c", threads=None, out=False):
    shape = (2, 4, 8, 64) if threads is None else (2, 64, 8, 64)
    x = _x(shape)
    if layout == "cl":
        x = _channels_last(x)
    kw = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    if out:
        y = np.empty((2, shape[1], 5, 33), np.float32)
        return (lambda: adapool.avg_pool2d(x, **kw, out=y), lambda: adapool.avg_pool2d(x, **kw, out=x[:, :, :5, :33]),
                ValueError, "out overlaps the input")
    return (lambda: adapool.avg_pool2d(x, **kw), lambda: adapool.avg_pool2d(x, (9, 3)),
            ValueError, "Output size is too small")


def _pool_backward(layout="c", threads=None):
    shape = (2, 4, 8, 64) if threads is None else (2, 64, 8, 64)
    kw = dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)
    go = _x(shape[:2] + (4, 32))
    if layout == "cl":
        go = _channels_last(go)
    return (lambda: adapool.avg_pool2d_backward(go, shape, **kw),
            lambda: adapool.avg_pool2d_backward(go.astype(np.int32), shape, **kw), TypeError, "not implemented for 'int32'")


CASES = {}
for _nd in (1, 2, 3):
    CASES[f"adaptive_avg_pool{_nd}d"] = lambda nd=_nd: _adaptive("avg", nd)
    CASES[f"adaptive_max_pool{_nd}d"] = lambda nd=_nd: _adaptive("max", nd)
    CASES[f"adaptive_avg_pool{_nd}d_backward"] = lambda nd=_nd: _adaptive_backward("avg", nd)
    CASES[f"adaptive_max_pool{_nd}d_backward"] = lambda nd=_nd: _adaptive_backward("max", nd)
CASES.update({
    "adaptive_max_pool2d-return_indices": lambda: _adaptive("max", 2, indices=True),
    "adaptive_max_pool3d-return_indices-channels_last": lambda: _adaptive("max", 3, "cl", indices=True),
    "adaptive_avg_pool2d-channels_last": lambda: _adaptive("avg", 2, "cl"),
    "adaptive_max_pool2d_backward-channels_last": lambda: _adaptive_backward("max", 2, "cl"),
    "adaptive_avg_pool2d_backward-channels_last": lambda: _adaptive_backward("avg", 2, "cl"),
    "avg_pool2d": lambda: _pool(),
    "avg_pool2d-out": lambda: _pool(out=True),
    "avg_pool2d-channels_last": lambda: _pool("cl"),
    "avg_pool2d_backward": lambda: _pool_backward(),
    "avg_pool2d_backward-channels_last": lambda: _pool_backward("cl"),
})
# the parallel path: >= 32K input elements, 2 threads (fewer calls: each does more work)
PARALLEL = {
    "adaptive_avg_pool2d-parallel": lambda: _adaptive("avg", 2, threads=2),
    "adaptive_max_pool3d-return_indices-parallel": lambda: _adaptive("max", 3, threads=2, indices=True),
    "adaptive_avg_pool1d_backward-parallel": lambda: _adaptive_backward("avg", 1, threads=2),
    "adaptive_max_pool2d_backward-parallel": lambda: _adaptive_backward("max", 2, threads=2),
    "avg_pool2d-channels_last-parallel": lambda: _pool("cl", threads=2),
    "avg_pool2d_backward-parallel": lambda: _pool_backward(threads=2),
}


def _measure(valid, failing, error, fragment, calls):
    with pytest.raises(error, match=fragment):    # the error path is the one meant
        failing()

    def loop(n):
        for i in range(n):
            valid()
            if i % ERROR_EVERY == 0:
                try:
                    failing()
                except error:
                    pass

    loop(WARMUP)
    gc.collect()
    rss0, heap0 = rss_bytes(), heap_bytes()
    loop(calls)
    gc.collect()
    rss1, heap1 = rss_bytes(), heap_bytes()
    n_calls = calls + calls // ERROR_EVERY
    assert rss1 - rss0 < RSS_BOUND, f"RSS grew by {(rss1 - rss0) / 2**20:.1f} MiB over {n_calls} calls"
    if heap0 is not None:
        assert heap1 - heap0 < HEAP_BOUND, (
            f"malloc'd memory grew by {(heap1 - heap0) / 2**10:.0f} KiB over {n_calls} calls "
            f"({(heap1 - heap0) / n_calls:.0f} bytes a call)")


@pytest.mark.parametrize("name", list(CASES))
def test_no_growth(name):
    _measure(*CASES[name](), calls=CALLS)


@pytest.mark.parametrize("name", list(PARALLEL))
def test_no_growth_parallel(name):
    try:
        adapool.set_num_threads(2)
        _measure(*PARALLEL[name](), calls=CALLS // 4)
    finally:
        adapool.set_num_threads(None)


def test_no_growth_across_many_shapes_once_the_caches_are_full():
    # The window tables are cached per shape (bounded lru_caches): cycling through more shapes
    # than the caches hold must not grow memory without bound either.
    xs = [_x((1, 2, 5 + i % 40, 7 + i // 40)) for i in range(1200)]

    def valid():
        for x in xs:
            adapool.adaptive_avg_pool2d(x, (3, 2))
            adapool.avg_pool2d(x, 3, 2, 1)

    def failing():
        adapool.adaptive_avg_pool2d(xs[0], -1)

    for _ in range(2):
        valid()
    gc.collect()
    rss0, heap0 = rss_bytes(), heap_bytes()
    for _ in range(6):
        valid()
        with pytest.raises(ValueError):
            failing()
    gc.collect()
    assert rss_bytes() - rss0 < RSS_BOUND
    if heap0 is not None:
        assert heap_bytes() - heap0 < HEAP_BOUND
