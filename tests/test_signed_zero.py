"""Signed zeros in max pooling: torch keeps a window's first maximum (``val > maxval``), so on a
window of +0.0 and -0.0 it returns whichever zero comes first. adapool's kernels do the same for
every max op, dtype and layout (torch as the oracle, bit patterns compared with np.signbit).
The ONNX graphs' zeros are tests/test_onnx_signed_zero.py (a file of its own: the sanitizer runs
of .ci/run leave out the ONNX tests, whose runtimes abort under ASan)."""
import ml_dtypes
import numpy as np
import pytest

import adapool
from layouts import with_layout

# every max op, with windows that overlap, pad, dilate and (fractional) vary per plane
CALLS = [
    ("adaptive_max_pool1d", dict(output_size=4), (2, 16, 11)),
    ("adaptive_max_pool2d", dict(output_size=(3, 4)), (2, 16, 11, 9)),
    ("adaptive_max_pool3d", dict(output_size=(2, 3, 2)), (2, 16, 5, 7, 5)),
    ("max_pool1d", dict(kernel_size=3, stride=2, padding=1), (2, 16, 11)),
    ("max_pool1d", dict(kernel_size=3, stride=1, dilation=2), (2, 16, 40)),
    ("max_pool2d", dict(kernel_size=2, stride=2), (2, 16, 8, 8)),
    ("max_pool2d", dict(kernel_size=3, stride=2, padding=1, dilation=2), (2, 16, 9, 9)),
    ("max_pool3d", dict(kernel_size=3, stride=2, padding=1), (2, 16, 5, 5, 5)),
    ("fractional_max_pool2d", dict(kernel_size=2, output_size=4), (2, 16, 9, 9)),
    ("fractional_max_pool3d", dict(kernel_size=2, output_size=3), (2, 16, 7, 7, 7)),
]
DTYPES = [np.float16, np.float32, np.float64, ml_dtypes.bfloat16]


def zeros_input(shape, dtype, rng):
    """+0.0 and -0.0 at random, some -1: most windows' maximum is a zero of either sign."""
    x = np.where(rng.random(shape) < 0.5, 0.0, -0.0)
    return np.where(rng.random(shape) < 0.2, -1.0, x).astype(dtype)


def to_torch(torch, a):
    """bfloat16 arrays go over through float32 (exact); the rest as they are."""
    if a.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)
    return torch.from_numpy(a)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "unbatched"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("op, kw, shape", CALLS, ids=lambda v: v if isinstance(v, str) else None)
def test_kernels_keep_torchs_zero(op, kw, shape, dtype, layout, torch_oracle, rng):
    torch = torch_oracle
    nd = len(shape) - 2
    x = zeros_input(shape, dtype, rng)
    if layout == "channels_last":
        x = with_layout(x, "channels_last", batched=True)
    elif layout == "unbatched":
        x = x[0]
    kw = dict(kw)
    tkw = dict(kw)
    if op.startswith("fractional"):   # samples per (n, c), in the input's dtype
        samples = rng.random(((x.shape[0] if x.ndim == nd + 2 else 1), shape[1], nd)).astype(dtype)
        kw["_random_samples"] = samples
        tkw["_random_samples"] = to_torch(torch, samples)
    tx = to_torch(torch, x)
    if layout == "channels_last" and nd > 1:   # torch's channels-last kernels, not a copy to C order
        tx = tx.contiguous(memory_format=torch.channels_last if nd == 2 else torch.channels_last_3d)
    elif layout == "channels_last":
        tx = tx.transpose(1, 2).contiguous().transpose(1, 2)
    for return_indices in (False, True):
        ours = getattr(adapool, op)(x, **kw, return_indices=return_indices)
        theirs = getattr(torch.nn.functional, op)(tx, **tkw, return_indices=return_indices)
        y, want = (ours[0], theirs[0]) if return_indices else (ours, theirs)
        want = want.float().numpy()
        y = np.asarray(y, np.float32)
        # the case can fail: torch's results hold zeros of both signs
        assert (want == 0).any() and np.signbit(want[want == 0]).any() and (~np.signbit(want[want == 0])).any()
        np.testing.assert_array_equal(y, want)
        np.testing.assert_array_equal(np.signbit(y), np.signbit(want), err_msg=f"{op} return_indices={return_indices}")


# the graphs whose values are each window's element at its ArgMax slot: the dynamic forms with
