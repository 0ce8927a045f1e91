"""Slow, readable float64 reference for the pooling ops, built on adapool's window module.

This is the specification in executable form: each output element is the mean of the input
elements in its window, with windows taken from `adapool._windows` (torch's formulas).
"""
import numpy as np

from adapool._windows import window_end, window_start


def adaptive_avg_pool_ref(x, output_size):
    """Adaptive average pooling over the last len(output_size) axes, in float64."""
    x = np.asarray(x, dtype=np.float64)
    nd = len(output_size)
    spatial = x.shape[-nd:]
    out = np.empty(x.shape[:-nd] + tuple(output_size))
    for idx in np.ndindex(*output_size):
        window = tuple(
            slice(window_start(i, o, s), window_end(i, o, s))
            for i, o, s in zip(idx, output_size, spatial)
        )
        out[(Ellipsis,) + idx] = x[(Ellipsis,) + window].mean(axis=tuple(range(-nd, 0)))
    return out
