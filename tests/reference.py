"""Slow, readable float64 reference for the pooling ops, built on adapool's window module.

This is the specification in executable form: each output element is the mean of the input
elements in its window, with windows taken from `adapool._windows` (torch's formulas).
"""
import numpy as np

from adapool._windows import window_end, window_start


def _windows(output_size, spatial):
    """Every output position with its window's slices, in C order."""
    for idx in np.ndindex(*output_size):
        yield idx, tuple(
            slice(window_start(i, o, s), window_end(i, o, s)) for i, o, s in zip(idx, output_size, spatial)
        )


def adaptive_avg_pool_ref(x, output_size):
    """Adaptive average pooling over the last len(output_size) axes, in float64."""
    x = np.asarray(x, dtype=np.float64)
    nd = len(output_size)
    out = np.empty(x.shape[:-nd] + tuple(output_size))
    for idx, window in _windows(output_size, x.shape[-nd:]):
        out[(Ellipsis,) + idx] = x[(Ellipsis,) + window].mean(axis=tuple(range(-nd, 0)))
    return out


def adaptive_max_pool_ref(x, output_size):
    """Adaptive max pooling over the last len(output_size) axes: (values, int64 indices).

    torch's rule, stated as a result: a window with a NaN gives NaN at its last NaN; otherwise
    the maximum at its first occurrence in row-major window order (an all -inf window: its
    first element). Indices are flattened over the pooled axes of the input.
    """
    x = np.asarray(x)
    nd = len(output_size)
    spatial = x.shape[-nd:]
    lead = x.shape[:-nd]
    values = np.empty(lead + tuple(output_size), dtype=x.dtype)
    indices = np.empty(lead + tuple(output_size), dtype=np.int64)
    for idx, window in _windows(output_size, spatial):
        block = x[(Ellipsis,) + window]
        flat = block.reshape(lead + (-1,))
        nan = np.isnan(flat)
        last_nan = flat.shape[-1] - 1 - np.argmax(nan[..., ::-1], axis=-1)
        first_max = np.argmax(np.where(nan, -np.inf, flat), axis=-1)
        local = np.where(nan.any(axis=-1), last_nan, first_max)
        coords = np.unravel_index(local, block.shape[-nd:])
        plane = np.zeros_like(local)
        for axis, (c, w) in enumerate(zip(coords, window)):
            plane = plane * spatial[axis] + c + w.start
        values[(Ellipsis,) + idx] = np.take_along_axis(flat, local[..., None], axis=-1)[..., 0]
        indices[(Ellipsis,) + idx] = plane
    return values, indices


def int_pair(v):
    """An avg_pool2d size argument as (h, w) ints, as the op reads it (an int means both)."""
    if isinstance(v, (int, np.integer)):
        return (int(v),) * 2
    v = [int(e) for e in v]
    return (v[0],) * 2 if len(v) == 1 else (v[0], v[1])


def pool2d_pairs(kernel_size, stride=None, padding=0):
    """avg_pool2d's (kernel, stride, padding) as int pairs; a stride of None or () is the kernel."""
    k = int_pair(kernel_size)
    s = k if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) else int_pair(stride)
    return k, s, int_pair(padding)


def avg_pool2d_windows(in_hw, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """(output size, per-axis windows) of avg_pool2d: each window (start, end, axis factor)."""
    from adapool._windows import pool_output_size, pool_windows

    out = tuple(pool_output_size(i, k, s, p, ceil_mode) for i, k, s, p in zip(in_hw, kernel, stride, padding))
    axes = [pool_windows(o, i, k, s, p, count_include_pad) for o, i, k, s, p in zip(out, in_hw, kernel, stride, padding)]
    return out, axes


def avg_pool2d_ref(x, kernel, stride, padding, ceil_mode=False, count_include_pad=True, divisor_override=None):
    """avg_pool2d in float64: window sum over the clamped window / divisor (0 for empty)."""
    x = np.asarray(x, dtype=np.float64)
    out, ((h0, h1, hf), (w0, w1, wf)) = avg_pool2d_windows(
        x.shape[-2:], kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    y = np.zeros(x.shape[:-2] + out)
    for i in range(out[0]):
        for j in range(out[1]):
            divisor = divisor_override if divisor_override is not None else hf[i] * wf[j]
            if h1[i] > h0[i] and w1[j] > w0[j]:
                y[..., i, j] = x[..., h0[i]:h1[i], w0[j]:w1[j]].sum(axis=(-2, -1)) / divisor
    return y


def ordered_f32_avg_pool2d(x, kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                           divisor_override=None):
    """float32 avg_pool2d as the kernels sum it: each window's pixels in row-major order in
    float32 from +0.0, times float64 1 / divisor, rounded once; a sum that came out inf or NaN
    redone in float64 (windows of at most 16 pixels: no float64 flushes)."""
    k, s, p = pool2d_pairs(kernel, stride, padding)
    out, ((h0, h1, hf), (w0, w1, wf)) = avg_pool2d_windows(
        x.shape[-2:], k, s, p, ceil_mode, count_include_pad, divisor_override)
    y = np.empty(x.shape[:-2] + out, np.float32)
    for i in range(out[0]):
        for j in range(out[1]):
            acc = np.zeros(x.shape[:-2], np.float32)
            wide = np.zeros(x.shape[:-2])
            for h in range(h0[i], h1[i]):
                for w in range(w0[j], w1[j]):
                    with np.errstate(over="ignore", invalid="ignore"):
                        acc = acc + x[..., h, w]               # one float32 rounding
                        wide = wide + x[..., h, w].astype(np.float64)
            divisor = divisor_override if divisor_override is not None else hf[i] * wf[j]
            with np.errstate(over="ignore", invalid="ignore"):
                total = np.where(np.isfinite(acc), acc.astype(np.float64), wide)
                y[..., i, j] = (total * (1.0 / divisor)).astype(np.float32)
    return y


def adaptive_avg_pool_backward_ref(grad_output, input_shape, nd):
    """Each input element gets grad / window size from every window that contains it."""
    go = np.asarray(grad_output, dtype=np.float64)
    output_size = go.shape[-nd:]
    spatial = tuple(input_shape[-nd:])
    gi = np.zeros(tuple(input_shape))
    for idx, window in _windows(output_size, spatial):
        area = np.prod([w.stop - w.start for w in window])
        gi[(Ellipsis,) + window] += go[(Ellipsis,) + idx][(Ellipsis,) + (None,) * nd] / area
    return gi


def adaptive_max_pool_backward_ref(grad_output, indices, input_shape, nd):
    """grad_input[index] += grad_output, per plane of the pooled axes."""
    go = np.asarray(grad_output, dtype=np.float64)
    lead = go.shape[:-nd]
    plane = int(np.prod(input_shape[-nd:]))
    gi = np.zeros(lead + (plane,))
    flat_go = go.reshape(lead + (-1,))
    flat_ind = np.asarray(indices).reshape(lead + (-1,))
    for pos in np.ndindex(*lead):
        np.add.at(gi[pos], flat_ind[pos], flat_go[pos])
    return gi.reshape(tuple(input_shape))


def avg_pool2d_backward_ref(grad_output, input_shape, kernel, stride, padding, ceil_mode=False,
                            count_include_pad=True, divisor_override=None):
    """grad / divisor spread over each clamped window."""
    go = np.asarray(grad_output, dtype=np.float64)
    out, ((h0, h1, hf), (w0, w1, wf)) = avg_pool2d_windows(
        tuple(input_shape[-2:]), kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    gi = np.zeros(tuple(input_shape))
    for i in range(out[0]):
        for j in range(out[1]):
            divisor = divisor_override if divisor_override is not None else hf[i] * wf[j]
            if h1[i] > h0[i] and w1[j] > w0[j]:
                gi[..., h0[i]:h1[i], w0[j]:w1[j]] += (go[..., i, j] / divisor)[..., None, None]
    return gi


# ---- the strided pools of any rank (max_pool1d/2d/3d, avg_pool1d/2d/3d) -------------------------

def strided_ref(op, x, kernel, stride, padding, dilation, ceil_mode=False, count_include_pad=True,
                divisor_override=None):
    """The strided pool ``op`` over the last nd axes of ``x``, with per-axis int tuples for the
    sizes (stride already defaulted). avg: float64 window sums / divisor; max: (values in x's
    dtype, int64 indices), torch's rule as in adaptive_max_pool_ref, over each window's
    elements (its dilated positions) in scan order."""
    from adapool._windows import max_pool_windows, pool_output_size, pool_windows

    nd = len(kernel)
    spatial = x.shape[-nd:]
    out = tuple(pool_output_size(i, k, s, p, ceil_mode, d)
                for i, k, s, p, d in zip(spatial, kernel, stride, padding, dilation))
    lead = x.shape[:-nd]
    if op.startswith("avg"):
        x = np.asarray(x, dtype=np.float64)
        axes = [pool_windows(o, i, k, s, p, count_include_pad)
                for o, i, k, s, p in zip(out, spatial, kernel, stride, padding)]
        y = np.zeros(lead + out)
        for idx in np.ndindex(*out):
            window = tuple(slice(a[0][j], a[1][j]) for a, j in zip(axes, idx))
            divisor = divisor_override if divisor_override is not None else np.prod([a[2][j] for a, j in zip(axes, idx)])
            if all(w.stop > w.start for w in window):
                y[(Ellipsis,) + idx] = x[(Ellipsis,) + window].sum(axis=tuple(range(-nd, 0))) / divisor
        return y
    axes = [max_pool_windows(o, i, k, s, p, d) for o, i, k, s, p, d in zip(out, spatial, kernel, stride, padding, dilation)]
    values = np.empty(lead + out, dtype=x.dtype)
    indices = np.empty(lead + out, dtype=np.int64)
    for idx in np.ndindex(*out):
        positions = [np.arange(a[0][j], a[1][j], a[2][j]) for a, j in zip(axes, idx)]
        if any(len(p) == 0 for p in positions):
            # no element in the window (dilation and padding): -inf, and torch's index, its
            # first position flattened as if in the plane (it may lie past the plane's end)
            first = 0
            for a, j, size in zip(axes, idx, spatial):
                first = first * size + int(a[0][j])
            values[(Ellipsis,) + idx] = -np.inf
            indices[(Ellipsis,) + idx] = first
            continue
        grid = np.ix_(*positions)
        block = x[(Ellipsis,) + grid]
        flat = block.reshape(lead + (-1,))
        plane_index = np.ravel_multi_index(np.meshgrid(*positions, indexing="ij"), spatial).reshape(-1)
        nan = np.isnan(flat)
        last_nan = flat.shape[-1] - 1 - np.argmax(nan[..., ::-1], axis=-1)
        first_max = np.argmax(np.where(nan, -np.inf, flat), axis=-1)
        local = np.where(nan.any(axis=-1), last_nan, first_max)
        values[(Ellipsis,) + idx] = np.take_along_axis(flat, local[..., None], axis=-1)[..., 0]
        indices[(Ellipsis,) + idx] = plane_index[local]
    return values, indices


def strided_avg_backward_ref(grad_output, input_shape, kernel, stride, padding, ceil_mode=False,
                             count_include_pad=True, divisor_override=None):
    """grad / divisor spread over each clamped window, any rank."""
    from adapool._windows import pool_output_size, pool_windows

    nd = len(kernel)
    go = np.asarray(grad_output, dtype=np.float64)
    spatial = tuple(input_shape[-nd:])
    out = tuple(pool_output_size(i, k, s, p, ceil_mode) for i, k, s, p in zip(spatial, kernel, stride, padding))
    axes = [pool_windows(o, i, k, s, p, count_include_pad) for o, i, k, s, p in zip(out, spatial, kernel, stride, padding)]
    gi = np.zeros(tuple(input_shape))
    for idx in np.ndindex(*out):
        window = tuple(slice(a[0][j], a[1][j]) for a, j in zip(axes, idx))
        divisor = divisor_override if divisor_override is not None else np.prod([a[2][j] for a, j in zip(axes, idx)])
        if all(w.stop > w.start for w in window):
            gi[(Ellipsis,) + window] += (go[(Ellipsis,) + idx] / divisor)[(Ellipsis,) + (None,) * nd]
    return gi


def strided_max_empty_windows(input_shape, kernel, stride, padding, dilation, ceil_mode=False):
    """Boolean mask over a max pool's output positions: True where the window holds no element."""
    from adapool._windows import max_pool_windows, pool_output_size

    nd = len(kernel)
    spatial = tuple(input_shape[-nd:])
    out = tuple(pool_output_size(i, k, s, p, ceil_mode, d)
                for i, k, s, p, d in zip(spatial, kernel, stride, padding, dilation))
    axes = [max_pool_windows(o, i, k, s, p, d) for o, i, k, s, p, d in zip(out, spatial, kernel, stride, padding, dilation)]
    mask = np.zeros(out, dtype=bool)
    for idx in np.ndindex(*out):
        mask[idx] = any(a[1][j] <= a[0][j] for a, j in zip(axes, idx))
    return mask


def strided_max_backward_ref(grad_output, indices, input_shape, kernel, stride, padding, dilation, ceil_mode=False):
    """grad_input[index] += grad_output, except from outputs whose window holds no element
    (they are a constant -inf: no input gets their gradient)."""
    empty = strided_max_empty_windows(input_shape, kernel, stride, padding, dilation, ceil_mode)
    go = np.where(empty, 0.0, np.asarray(grad_output, dtype=np.float64))
    return adaptive_max_pool_backward_ref(go, np.where(empty, 0, indices), input_shape, len(kernel))


def unpool_default_size(in_sizes, kernel, stride, padding):
    """max_unpool's output size per axis when none is given: the input size of a max pool with
    these arguments that gives ``in_sizes`` without overhang, (in - 1) * stride + kernel - 2 * padding."""
    return tuple((i - 1) * s + k - 2 * p for i, k, s, p in zip(in_sizes, kernel, stride, padding))


def max_unpool_ref(x, indices, out_sizes):
    """max_unpool over the last len(out_sizes) axes, in float64: zeros, then each value written
    at its index (flattened per plane), in input order, so that a repeated index keeps the last
    value written there. An index outside the plane raises IndexError."""
    x = np.asarray(x, dtype=np.float64)
    nd = len(out_sizes)
    lead = x.shape[:-nd]
    plane = int(np.prod(out_sizes))
    out = np.zeros(lead + (plane,))
    values = x.reshape(lead + (-1,))
    where = np.asarray(indices).reshape(lead + (-1,))
    for at in np.ndindex(*lead):
        for k in range(values.shape[-1]):
            i = int(where[at + (k,)])
            if not 0 <= i < plane:
                raise IndexError(i)
            out[at + (i,)] = values[at + (k,)]
    return out.reshape(lead + tuple(out_sizes))


def max_unpool_backward_ref(grad_output, indices, nd):
    """The input's gradient of max_unpool, in float64: each input element gets grad_output at
    its index (a gather: repeated indices all get it)."""
    go = np.asarray(grad_output, dtype=np.float64)
    lead = go.shape[:-nd]
    flat = go.reshape(lead + (-1,))
    where = np.asarray(indices).reshape(lead + (-1,))
    gi = np.empty(where.shape)
    for at in np.ndindex(*lead):
        for k in range(where.shape[-1]):
            gi[at + (k,)] = flat[at + (int(where[at + (k,)]),)]
    return gi.reshape(np.asarray(indices).shape)
def fractional_starts_ref(u, size, out, k):
    """Window starts of one axis of fractional max pooling for one plane's sample ``u`` (a
    numpy float16/32/64 scalar), written as torch's generate_intervals reads, one scalar
    operation at a time in u's type (numpy scalars round every operation to their type, as
    c10::Half does). Independent of adapool._fractional.interval_starts, which vectorises it.
    For samples in [0, 1] (int() here is C's truncation only for values that fit)."""
    t = type(u)
    starts = []
    if out > 1:
        alpha = t(size - k) / t(out - 1)
        for i in range(out - 1):
            starts.append(int((t(i) + u) * alpha) - int(u * alpha))
    if out > 0:
        starts.append(size - k)
    return starts


def fractional_max_pool_ref(x, kernel, output_size, samples):
    """Fractional max pooling of (N, C, *spatial) ``x``: (values, int64 indices). Plane (n, c)
    uses ``samples[n, c]``: 2-d W from sample 0 and H from sample 1; 3-d T, H, W from samples
    0, 1, 2. Each window is then pooled by torch's max rule, as adaptive_max_pool_ref states it."""
    nd = len(kernel)
    columns = (1, 0) if nd == 2 else (0, 1, 2)
    spatial = x.shape[-nd:]
    values = np.empty(x.shape[:2] + tuple(output_size), dtype=x.dtype)
    indices = np.empty(x.shape[:2] + tuple(output_size), dtype=np.int64)
    for n, c in np.ndindex(*x.shape[:2]):
        starts = [fractional_starts_ref(samples[n, c, j], spatial[a], output_size[a], kernel[a])
                  for a, j in enumerate(columns)]
        for idx in np.ndindex(*output_size):
            window = tuple(slice(s[i], s[i] + k) for s, i, k in zip(starts, idx, kernel))
            block = x[(n, c) + window]
            flat = block.reshape(-1)
            nan = np.isnan(flat)
            local = (flat.size - 1 - np.argmax(nan[::-1]) if nan.any()
                     else np.argmax(np.where(nan, -np.inf, flat)))
            coords = np.unravel_index(local, block.shape)
            plane = 0
            for axis, (co, w) in enumerate(zip(coords, window)):
                plane = plane * spatial[axis] + int(co) + w.start
            values[(n, c) + idx] = flat[local]
            indices[(n, c) + idx] = plane
    return values, indices
# ---- lp_pool1d/2d/3d -------------------------------------------------------------------------

def _lp_windows(spatial, kernel, stride, ceil_mode):
    """Each output's window (a tuple of slices) and clamped area: lp_pool pools without padding."""
    from adapool._windows import pool_output_size, pool_windows

    out = tuple(pool_output_size(i, k, s, 0, ceil_mode) for i, k, s in zip(spatial, kernel, stride))
    axes = [pool_windows(o, i, k, s, 0, False) for o, i, k, s in zip(out, spatial, kernel, stride)]
    for idx in np.ndindex(*out):
        window = tuple(slice(a[0][j], a[1][j]) for a, j in zip(axes, idx))
        yield idx, window, int(np.prod([w.stop - w.start for w in window]))


def lp_pool_ref(x, p, kernel, stride, ceil_mode=False):
    """torch's lp_pool over the last nd axes in float64, with per-axis tuples (stride
    defaulted): for finite p, S = kernel area * (sum of x**p over the clamped window) / its
    clamped area, and the result S ** (1/p) (NaN when S < 0 and 1/p is not an integer, as
    NumPy's power gives); p = inf: the largest |x|, p = -inf: the smallest (NaN if any is)."""
    nd = len(kernel)
    x = np.asarray(x, dtype=np.float64)
    area = int(np.prod(kernel))
    out_shape = None
    results = {}
    with np.errstate(all="ignore"):
        for idx, window, clamped in _lp_windows(x.shape[-nd:], kernel, stride, ceil_mode):
            block = x[(Ellipsis,) + window].reshape(x.shape[:-nd] + (-1,))
            if p == np.inf:
                results[idx] = np.max(np.abs(block), axis=-1)
            elif p == -np.inf:
                results[idx] = np.min(np.abs(block), axis=-1)
            else:
                s = area * np.sum(block ** p, axis=-1) / clamped
                results[idx] = s ** (1.0 / p)
            out_shape = tuple(i + 1 for i in idx)
    y = np.empty(x.shape[:-nd] + out_shape)
    for idx, v in results.items():
        y[(Ellipsis,) + idx] = v
    return y


def lp_pool_backward_ref(grad_output, x, p, kernel, stride, ceil_mode=False):
    """The gradient of lp_pool_ref by hand (finite p), as torch's autograd composes it: each
    window passes ``grad * (1/p) * S ** (1/p - 1) * area / clamped`` to its elements unless
    S == 0 (relu's threshold), and each element then multiplies its sum by ``p * x ** (p-1)``."""
    nd = len(kernel)
    x = np.asarray(x, dtype=np.float64)
    go = np.asarray(grad_output, dtype=np.float64)
    area = int(np.prod(kernel))
    g_pow = np.zeros(x.shape)
    with np.errstate(all="ignore"):
        for idx, window, clamped in _lp_windows(x.shape[-nd:], kernel, stride, ceil_mode):
            block = x[(Ellipsis,) + window].reshape(x.shape[:-nd] + (-1,))
            s = area * np.sum(block ** p, axis=-1) / clamped
            d = go[(Ellipsis,) + idx] * (1.0 / p) * s ** (1.0 / p - 1) * area / clamped
            d = np.where(s == 0, 0.0, d)
            g_pow[(Ellipsis,) + window] += d[(Ellipsis,) + (None,) * nd]
        return g_pow * (p * x ** (p - 1.0))
