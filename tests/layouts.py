"""Memory layouts the kernels must handle: the same values behind different strides."""
import numpy as np

LAYOUTS = (
    "contiguous",      # NCHW, C order
    "channels_last",   # NHWC buffer viewed as NCHW (C has unit stride)
    "strided_rows",    # every other row/plane of a bigger buffer: W keeps unit stride
    "strided_cl",      # channels-last buffer with every other pixel: C keeps unit stride
    "strided_all",     # every other element on every axis: no unit stride at all
    "negative",        # reversed H (negative stride), W unit stride
    "negative_w",      # reversed W (stride -1)
    "fortran",         # column-major
)


def _embed(x, steps):
    """A view of a bigger buffer with x's values, taking every steps[i]-th element on axis i."""
    big = np.zeros(tuple(s * k for s, k in zip(x.shape, steps)), dtype=x.dtype)
    view = big[tuple(slice(None, None, k) for k in steps)]
    view[...] = x
    return view


def _channels_last_order(ndim, batched):
    # (N, C, *spatial) -> (N, *spatial, C); unbatched (C, *spatial) -> (*spatial, C)
    lead = 1 if batched else 0
    return tuple(range(lead)) + tuple(range(lead + 1, ndim)) + (lead,)


def with_layout(x, layout, batched=None):
    """Return an array equal to x (same shape and values) stored with the given layout.
    ``batched`` says whether axis 0 is N (default: 4-d and up are batched)."""
    if batched is None:
        batched = x.ndim >= 4
    if layout == "contiguous":
        return np.ascontiguousarray(x)
    if layout in ("channels_last", "strided_cl"):
        order = _channels_last_order(x.ndim, batched)
        inverse = tuple(np.argsort(order))
        stored = np.ascontiguousarray(x.transpose(order))
        if layout == "strided_cl":
            steps = [2] * x.ndim
            steps[-1] = 1
            stored = _embed(stored, steps)
        return stored.transpose(inverse)
    if layout == "strided_rows":
        steps = [2] * x.ndim
        steps[-1] = 1
        return _embed(x, steps)
    if layout == "strided_all":
        return _embed(x, [2] * x.ndim)
    if layout == "negative":
        return np.ascontiguousarray(x[..., ::-1, :])[..., ::-1, :]
    if layout == "negative_w":
        return np.ascontiguousarray(x[..., ::-1])[..., ::-1]
    if layout == "fortran":
        return np.asfortranarray(x)
    raise ValueError(layout)


def run_in_threads(calls, repeat):
    """Run each zero-argument call ``repeat`` times, all calls at once in their own Python
    thread; return each call's last result. Any exception in a thread is re-raised."""
    import threading

    results, errors = [None] * len(calls), []

    def work(i):
        try:
            for _ in range(repeat):
                results[i] = calls[i]()
        except Exception as e:  # re-raised below, in the test's thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def assert_same_bits_on_1_and_2_threads(calls):
    """Each zero-argument call gives the same bits (every array of a tuple result too) with
    adapool on one thread and on two."""
    import adapool

    before = adapool.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            adapool.set_num_threads(threads)
            results.append([c() for c in calls])
    finally:
        adapool.set_num_threads(before)
    for a, b in zip(*results):
        for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            assert u.dtype == v.dtype and u.shape == v.shape
            bits = np.dtype(f"u{u.itemsize}")   # NaN payloads and -0.0 included
            assert np.array_equal(u.view(bits), v.view(bits)), "results differ between 1 and 2 threads"


def sample_values(draw, shape, neg_inf=0.1):
    """Test data for pooling, drawn with hypothesis's ``draw``: normal values, or small integers
    (full of ties), or ties with NaN and -inf mixed in."""
    from hypothesis import strategies as st

    data = draw(st.sampled_from(["normal", "ties", "specials"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if data == "normal":
        return rng.standard_normal(shape) * 3
    x = rng.integers(0, 3, shape).astype(np.float64)
    if data == "specials":
        x[rng.random(shape) < 0.1] = np.nan
        x[rng.random(shape) < neg_inf] = -np.inf
    return x


def hostile(rng, shape, dtype):
    """Values with ties, NaNs, infinities and signed zeros, in every plane."""
    x = rng.integers(-3, 4, shape).astype(np.float64)
    marks = rng.random(shape)
    x[marks < 0.03] = np.nan
    x[(marks >= 0.03) & (marks < 0.06)] = -np.inf
    x[(marks >= 0.06) & (marks < 0.08)] = np.inf
    x[(marks >= 0.08) & (marks < 0.12)] = -0.0
    return x.astype(dtype)


def spiked_values(rng, shape):
    """float32 values spread over seven decades, with one NaN, inf, -inf and -0.0 somewhere."""
    x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)).astype(np.float32)
    x.flat[rng.integers(0, x.size, 4)] = [np.nan, np.inf, -np.inf, -0.0]
    return x


def sum_bits32(a):
    """A float32 array of sums' bit patterns (C order), every NaN as one pattern: which NaN a
    sum of two NaNs returns (inf + -inf's, an input's) is the first operand's on x86, and the
    compiler may swap an addition's operands (IEEE 754 leaves the choice open). An ASan build
    of the wide rows gave +NaN where the -O3 build and the oracle gave -NaN."""
    b = np.ascontiguousarray(a).view(np.uint32).copy()
    b[np.isnan(np.ascontiguousarray(a))] = 0x7FC00000
    return b
