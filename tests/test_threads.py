"""Thread-count control: OMP_NUM_THREADS, set_num_threads, threadpoolctl, serial builds."""
import os
import subprocess
import sys

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
