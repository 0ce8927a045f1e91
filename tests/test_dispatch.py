"""Runtime dispatch between the baseline and AVX2 builds of the kernels: same bits, either way."""
import os
import subprocess
import sys

import numpy as np
import pytest

import adapool
from adapool import _dispatch, _kernels

from layouts import with_layout

CASES = [
    ((2, 37, 41, 43), (6, 5), "contiguous"),
    ((2, 37, 41, 43), (6, 5), "channels_last"),
    ((3, 20, 7, 7), 1, "contiguous"),
    ((3, 20, 40, 40), 1, "channels_last"),
    ((1, 5, 75, 131), (2, 9), "strided_rows"),
    ((1, 70, 9, 9), (4, 4), "strided_cl"),
    ((2, 24, 40, 37), (3, 4), "channels_last"),   # narrow pixels, windows past 16 pixels: row sums
    ((1, 32, 40, 37), (3, 4), "channels_last"),   # in registers (a 32-channel chunk; 8-lane ones)
]
DTYPES = ["float16", "float32", "float64"]

SCRIPT = """
import sys, numpy as np
sys.path.insert(0, {tests!r})
import adapool
from test_dispatch import _all_results
assert adapool._dispatch.kernels.simd_level() == "baseline"
np.savez({path!r}, **_all_results())
"""


def _inputs(shape, dtype):
    return np.random.default_rng(sum(shape)).standard_normal(shape).astype(dtype)


def _all_results():
    """Every op on every case, dtype and layout, keyed by a name."""
    out = {}
    for i, (shape, size, layout) in enumerate(CASES):
        for dt in DTYPES:
            x = with_layout(_inputs(shape, dt), layout)
            key = f"{i}-{dt}"
            out["avg" + key] = adapool.adaptive_avg_pool2d(x, size)
            out["max" + key], ind = adapool.adaptive_max_pool2d(x, size, return_indices=True)
            out["ind" + key] = ind
            go = with_layout(_inputs(out["avg" + key].shape, dt), layout)
            out["avgb" + key] = adapool.adaptive_avg_pool2d_backward(go, shape)
            out["maxb" + key] = adapool.adaptive_max_pool2d_backward(go, ind, shape)
            out["ap" + key] = adapool.avg_pool2d(x, 3, 2, 1, ceil_mode=True)
            go = with_layout(_inputs(out["ap" + key].shape, dt), layout)
            out["apb" + key] = adapool.avg_pool2d_backward(go, shape, 3, 2, 1, ceil_mode=True)
            out["avg3" + key] = adapool.adaptive_avg_pool3d(x[:, :, None], (1, 2, 3))
    return out


def test_selected_build_matches_cpu():
    if _kernels.cpu_has_avx2() and os.environ.get("ADAPOOL_KERNELS", "auto") != "baseline":
        try:
            from adapool import _kernels_avx2  # noqa: F401
        except ImportError:
            pytest.skip("this build has no AVX2 kernels (non-x86 or ADAPOOL_NO_AVX2)")
        assert _dispatch.kernels.simd_level() == "avx2"
    else:
        assert _dispatch.kernels.simd_level() == "baseline"


def test_baseline_and_dispatched_builds_give_identical_bits(tmp_path):
    path = str(tmp_path / "baseline.npz")
    env = dict(os.environ, ADAPOOL_KERNELS="baseline")
    script = SCRIPT.format(tests=os.path.dirname(__file__), path=path)
    subprocess.run([sys.executable, "-c", script], env=env, check=True)
    baseline = np.load(path)
    ours = _all_results()
    assert sorted(ours) == sorted(baseline.files)
    for key, value in ours.items():
        np.testing.assert_array_equal(value, baseline[key], err_msg=key)


def test_unknown_kernel_choice_is_an_import_error():
    env = dict(os.environ, ADAPOOL_KERNELS="sse9")
    proc = subprocess.run([sys.executable, "-c", "import adapool"], env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "ADAPOOL_KERNELS must be auto, baseline or avx2" in proc.stderr
