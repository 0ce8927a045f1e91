"""Which build of the kernels to run: the AVX2 one where the CPU has AVX2, else the baseline.

ADAPOOL_KERNELS=baseline forces the baseline build (the tests use it to check that both builds
give the same bits); ADAPOOL_KERNELS=avx2 insists on AVX2 and fails loudly without it.
"""
import os

from . import _kernels as _baseline


def _select():
    wanted = os.environ.get("ADAPOOL_KERNELS", "auto").lower()
    if wanted not in ("auto", "baseline", "avx2"):
        raise ImportError(f"ADAPOOL_KERNELS must be auto, baseline or avx2, not {wanted!r}")
    if wanted == "baseline":
        return _baseline
    try:
        from . import _kernels_avx2
    except ImportError:
        _kernels_avx2 = None
    if _kernels_avx2 is not None and _baseline.cpu_has_avx2():
        return _kernels_avx2
    if wanted == "avx2":
        raise ImportError("ADAPOOL_KERNELS=avx2, but the AVX2 build is missing or this CPU lacks AVX2")
    return _baseline


kernels = _select()
