"""Thread count: the one place that says how many threads a kernel call may use.

Like scikit-learn's ``_openmp_helpers``: the default is OpenMP's own (``omp_get_max_threads``),
so ``OMP_NUM_THREADS`` and ``threadpoolctl.threadpool_limits`` are honoured; an explicit
``set_num_threads`` overrides it; a build without OpenMP always runs one thread.
"""
from __future__ import annotations

import operator
import os

from ._dispatch import kernels as _kernels

__all__ = ["get_num_threads", "set_num_threads", "openmp_enabled"]

_requested: int | None = None

# Below this many input elements a call runs serially: starting a thread team costs a few
# microseconds, more than pooling a small tensor does.
PARALLEL_MIN_ELEMENTS = 1 << 15


def openmp_enabled() -> bool:
    """Whether the compiled kernels were built with OpenMP (parallel) support.

    torch equivalent: ``torch.backends.openmp.is_available``.

    Returns
    -------
    bool
        False for a serial build (``ADAPOOL_NO_OPENMP=1``, or a compiler without OpenMP): every
        call then runs on the calling thread.
    """
    return _kernels.openmp_enabled()


# Far above any machine's cores, far below where libgomp fails to start a team.
MAX_THREADS = max(1024, 8 * (os.cpu_count() or 1))


def set_num_threads(n: int | None) -> None:
    """Set the number of threads adapool's kernels use.

    ``None`` restores the default: OpenMP's, which follows ``OMP_NUM_THREADS`` and
    ``threadpoolctl``. Process-wide; inputs under 32K elements still run on the calling thread,
    and a build without OpenMP always runs one.

    torch equivalent: ``torch.set_num_threads`` (which sets torch's count, not adapool's).

    Parameters
    ----------
    n : int or None
        A positive thread count, or None for the default.

    Raises
    ------
    TypeError
        ``n`` not an int (bool included) and not None.
    ValueError
        ``n`` <= 0.
    """
    global _requested
    if n is None:
        _requested = None
        return
    if isinstance(n, bool):
        raise TypeError("set_num_threads expects an int, got bool")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"set_num_threads expects an int, got {type(n).__name__}") from None
    if n <= 0:
        raise ValueError(f"set_num_threads expects a positive integer, got {n}")
    if n > MAX_THREADS:   # OpenMP would try to start them all (libgomp aborts or crashes)
        raise ValueError(f"set_num_threads expects at most {MAX_THREADS} threads, got {n}")
    _requested = n


_OPENMP = _kernels.openmp_enabled()


def get_num_threads() -> int:
    """The number of threads adapool's kernels use for large inputs.

    torch equivalent: ``torch.get_num_threads``.

    Returns
    -------
    int
        The count given to :func:`set_num_threads`, else OpenMP's current maximum (at least 1);
        always 1 in a build without OpenMP.
    """
    if not _OPENMP:
        return 1
    if _requested is not None:
        return _requested
    return max(1, _kernels.omp_max_threads())


def threads_for(elements: int, items: int) -> int:
    """Threads for one kernel call reading ``elements`` values in ``items`` independent parts."""
    if elements < PARALLEL_MIN_ELEMENTS:
        return 1
    return max(1, min(get_num_threads(), items))
