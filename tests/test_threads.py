"""Thread-count control: OMP_NUM_THREADS, set_num_threads, threadpoolctl, serial builds."""
import os
import subprocess
import sys

import numpy as np
import pytest

import adapool
from adapool import _kernels

# CI sets this so that a build that silently lost OpenMP fails instead of passing serially.
REQUIRE_OPENMP = os.environ.get("ADAPOOL_REQUIRE_OPENMP", "") == "1"

needs_openmp = pytest.mark.skipif(not adapool.openmp_enabled(), reason="this build has no OpenMP (serial kernels)")


def test_tests_use_the_compiled_extension():
    assert _kernels.__file__.endswith((".so", ".pyd")), _kernels.__file__


def test_openmp_present_when_required():
    if REQUIRE_OPENMP:
        assert adapool.openmp_enabled()
    assert isinstance(adapool.openmp_enabled(), bool)


def _threads_in_subprocess(env_threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(env_threads))
    out = subprocess.run(
        [sys.executable, "-c", "import adapool; print(adapool.get_num_threads())"],
        env=env, capture_output=True, text=True, check=True,
    )
    return int(out.stdout)


@needs_openmp
@pytest.mark.parametrize("n", [1, 3])
def test_default_honours_omp_num_threads(n):
    assert _threads_in_subprocess(n) == n


def test_set_num_threads_round_trip():
    try:
        adapool.set_num_threads(3)
        assert adapool.get_num_threads() == (3 if adapool.openmp_enabled() else 1)
    finally:
        adapool.set_num_threads(None)


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError), (True, TypeError)])
def test_set_num_threads_rejects_bad_values(bad, exc):
    with pytest.raises(exc):
        adapool.set_num_threads(bad)


@needs_openmp
def test_threadpoolctl_limits_apply():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert adapool.get_num_threads() == 1
    assert adapool.get_num_threads() == _kernels.omp_max_threads()


# ---- a loaded machine: back off to the calling thread ------------------------------------------

def test_contention_back_off_doubles_then_resets():
    """The state machine behind the loaded-machine back-off (adapool/_kernels.pyx): a contended
    parallel call starts a 20 ms serial period, each further one doubles it up to 1 s, each
    clean parallel call halves it (below 40 ms: none)."""
    k = adapool._dispatch.kernels
    try:
        assert k._contention(reset=True) == (0, 0)
        left, backoff = k._contention(note=True)
        assert backoff == 20_000_000 and 0 < left <= backoff
        backoffs = [k._contention(note=True)[1] for _ in range(8)]
        assert backoffs == [40_000_000, 80_000_000, 160_000_000, 320_000_000, 640_000_000] + [1_000_000_000] * 3
        clean = [k._contention(note=False)[1] for _ in range(7)]
        assert clean == [500_000_000, 250_000_000, 125_000_000, 62_500_000, 31_250_000, 0, 0]
    finally:
        k._contention(reset=True)


@needs_openmp
def test_results_are_the_same_while_backing_off(rng):
    """While backing off, parallel-sized calls run on one thread: same bits as two threads."""
    k = adapool._dispatch.kernels
    x = rng.standard_normal((4, 64, 33, 35)).astype(np.float32)
    ops = [lambda: adapool.adaptive_avg_pool2d(x, (7, 6)), lambda: adapool.adaptive_max_pool2d(x, 5, return_indices=True),
           lambda: adapool.avg_pool2d(x, 3, 2, 1), lambda: adapool.adaptive_avg_pool2d_backward(x[:, :, :7, :6], x.shape)]
    adapool.set_num_threads(2)
    try:
        k._contention(reset=True)
        parallel = [op() for op in ops]
        k._contention(note=True)   # as after a contended call: the next calls run serially
        assert k._contention()[0] > 0
        backing_off = [op() for op in ops]
    finally:
        adapool.set_num_threads(None)
        k._contention(reset=True)
    for a, b in zip(parallel, backing_off):
        for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("shape,out", [((1, 16, 223, 223), 7), ((8, 256, 14, 14), 7), ((2, 8, 64, 64), 3)])
def test_gradients_same_bits_on_one_thread_and_two(shape, out, rng):
    """The gradients are planned on the size of grad_input (zeroing it is most of the work when
    grad_output is small): splitting them over threads must not change a bit."""
    x = rng.integers(-3, 4, shape).astype(np.float32)   # ties: the first index must win on every split
    y, idx = adapool.adaptive_max_pool2d(x, out, return_indices=True)
    go = rng.standard_normal(y.shape).astype(np.float32)
    results = []
    try:
        for n in (1, 2):
            adapool.set_num_threads(n)
            results.append((adapool.adaptive_max_pool2d_backward(go, idx, shape),
                            adapool.adaptive_avg_pool2d_backward(go, shape),
                            adapool.avg_pool2d_backward(go, shape, 2) if shape[-1] // 2 == out else None))
    finally:
        adapool.set_num_threads(None)
    for a, b in zip(*results):
        assert (a is None and b is None) or np.array_equal(a.view(np.uint8), b.view(np.uint8))
    gi = results[0][0]
    assert gi.sum(dtype=np.float64) == pytest.approx(go.sum(dtype=np.float64), rel=1e-5)
    assert np.count_nonzero(gi) <= go.size
