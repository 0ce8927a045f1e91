"""adapool: PyTorch's pooling ops for NumPy arrays, with PyTorch's exact semantics."""
from ._pooling import adaptive_avg_pool2d
from ._threads import get_num_threads, openmp_enabled, set_num_threads
from ._windows import adaptive_windows, window_end, window_start

__version__ = "0.1.0"

__all__ = [
    "adaptive_avg_pool2d",
    "adaptive_windows",
    "get_num_threads",
    "openmp_enabled",
    "set_num_threads",
    "window_end",
    "window_start",
]
