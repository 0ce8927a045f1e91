"""Channels-last max pooling of large windows over wide pixels: the input walked in address
order (the scratch-row kernel) instead of per chunk of channels in registers, and blocks of
channels whose scratch row would outgrow L1 walked in equal parts.

The kernel takes that path for windows of 16 or more pixels when a pixel spans 4 KiB or more
(float32 C >= 1024, float64 C >= 512), when the call has a single output per plane and a pixel
spans 512 bytes or more, or when a pixel spans 1 KiB or more and the input is larger than
16 MiB. Every case here is checked bit for bit (values with NaN payloads and signed zeros,
indices) against the float64 reference, on 1 and 2 threads, with and without indices, and
against torch where it is installed.
"""
import numpy as np
import pytest

import adapool
from layouts import assert_same_bits_on_1_and_2_threads, hostile, with_layout
from reference import adaptive_max_pool_ref, strided_ref


def _bits(a):
    return np.ascontiguousarray(a).view(f"u{a.itemsize}")


def _cl(x):
    return with_layout(x, "channels_last")


# (shape, output_size): which rule sends each one down the address-order path
SCAN_CALLS = [
    ((2, 1024, 8, 8), (2, 2)),      # 4 KiB float32 pixels, 4x4 windows
    ((1, 1040, 28, 28), 7),         # scratch row of 7 columns x 1040 channels: three parts of 352, 352, 336
    ((2, 1024, 10, 9), (2, 2)),     # uneven adaptive windows (5x4 and 5x5)
    ((3, 128, 7, 7), 1),            # one output per plane, 512-byte pixels
    ((1, 2048, 7, 7), 1),           # one image: the channels split into blocks among the threads
    ((2, 1032, 12, 12), (3, 3)),    # a channel count off the 8-lane and 16-channel grid
]


def _check(x, output_size):
    ey, ei = adaptive_max_pool_ref(x, output_size if isinstance(output_size, tuple) else (output_size,) * 2)
    y, i = adapool.adaptive_max_pool2d(_cl(x), output_size, return_indices=True)
    np.testing.assert_array_equal(i, ei)
    np.testing.assert_array_equal(_bits(y), _bits(ey))      # the element itself: NaN payload, -0.0
    np.testing.assert_array_equal(_bits(adapool.adaptive_max_pool2d(_cl(x), output_size)), _bits(ey))
    assert y.transpose(0, 2, 3, 1).flags.c_contiguous       # torch's layout for channels-last input


@pytest.mark.parametrize("shape,output_size", SCAN_CALLS, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_address_order_path_matches_the_reference_bits(shape, output_size, dtype):
    x = hostile(np.random.default_rng(sum(shape)), shape, dtype)
    _check(x, output_size)


def test_large_input_with_1_kib_pixels():
    # 2 x 256 x 96 x 96 float32 is 18.9 MB: past half the 32 MiB last-level cache the
    # address-order path takes 1 KiB pixels too (32x32 windows)
    x = hostile(np.random.default_rng(5), (2, 256, 96, 96), np.float32)
    _check(x, 3)


def test_all_minus_inf_and_all_nan_windows():
    x = np.random.default_rng(2).standard_normal((1, 1040, 28, 28)).astype(np.float32)
    x[0, 3] = -np.inf                                   # a whole plane of -inf: the first index
    x[0, 700, :4, :4] = np.nan                          # one whole window of NaN: its last NaN
    x[0, 701, 4:8, 8:12] = -np.inf                      # one window of -inf among finite values
    x[0, 1039, 24:, 24:] = 5.0                          # ties over the last part's last window
    y, i = adapool.adaptive_max_pool2d(_cl(x), 7, return_indices=True)
    assert (y[0, 3] == -np.inf).all()
    np.testing.assert_array_equal(i[0, 3], (np.arange(7)[:, None] * 4 * 28 + np.arange(7) * 4))
    assert np.isnan(y[0, 700, 0, 0]) and i[0, 700, 0, 0] == 3 * 28 + 3
    assert y[0, 701, 1, 2] == -np.inf and i[0, 701, 1, 2] == 4 * 28 + 8
    assert y[0, 1039, 6, 6] == 5.0 and i[0, 1039, 6, 6] == 24 * 28 + 24
    ey, ei = adaptive_max_pool_ref(x, (7, 7))
    np.testing.assert_array_equal(i, ei)
    np.testing.assert_array_equal(_bits(y), _bits(ey))


def test_strided_max_pool_with_large_windows_and_padding():
    # max_pool2d(5, 3, 2) on 4 KiB pixels: 25-pixel windows, clipped at the edges
    x = hostile(np.random.default_rng(9), (1, 1024, 13, 11), np.float32)
    y, i = adapool.max_pool2d(_cl(x), 5, 3, 2, return_indices=True)
    ey, ei = strided_ref("max_pool2d", x, (5, 5), (3, 3), (2, 2), (1, 1))
    np.testing.assert_array_equal(i, ei)
    np.testing.assert_array_equal(_bits(y), _bits(ey))


def test_address_order_path_does_not_depend_on_thread_count():
    rng = np.random.default_rng(4)
    xs = [_cl(hostile(rng, shape, np.float32)) for shape, _ in SCAN_CALLS]
    calls = [lambda x=x, o=o: adapool.adaptive_max_pool2d(x, o, return_indices=True)
             for x, (_, o) in zip(xs, SCAN_CALLS)]
    assert_same_bits_on_1_and_2_threads(calls)


@pytest.mark.parametrize("shape,output_size", [((2, 1024, 8, 8), 2), ((1, 1040, 28, 28), 7), ((3, 256, 7, 7), 1)])
def test_address_order_path_matches_torch(torch_oracle, shape, output_size):
    x = hostile(np.random.default_rng(11), shape, np.float32)
    t = torch_oracle.from_numpy(x).contiguous(memory_format=torch_oracle.channels_last)
    ty, ti = torch_oracle.nn.functional.adaptive_max_pool2d(t, output_size, return_indices=True)
    y, i = adapool.adaptive_max_pool2d(_cl(x), output_size, return_indices=True)
    np.testing.assert_array_equal(i, ti.numpy())
    np.testing.assert_array_equal(_bits(y), _bits(ty.numpy()))
