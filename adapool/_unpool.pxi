# Max unpooling (included from _kernels.pyx: it uses the .pyx's real_t, Geom, Walk, _geometry,
# _indices, _check_writeable and _raise_for).
#
# Forward: a scatter with assignment. Each (n, c) plane of the result is zeroed, then every
# element of the pooled input is written at its index, in input order, so when indices repeat
# the last write wins (torch's kernel on one thread; on several threads torch's winner depends
# on timing, adapool's never does). Backward: a gather, grad_input = grad_output at each index
# (every element that named a position gets its gradient, duplicates included), as
# torch.autograd's max_pool_double_backward gathers.
#
# Indices come from the caller, so each is checked against the plane before it is used: an
# out-of-range index is reported, never followed. Item = one plane (planar) or one image and
# block of channels (channels-last): an item only ever touches its own planes, so threads never
# share an element. The geometry is _geometry's with the unpooled side (the forward's result,
# the backward's grad_output) as the "input" (d, h, w; xs) and the pooled side (the forward's
# input, the indices, the backward's result) as the "output" (od, oh, ow; ys). Both sides are
# dense in their layout (the wrapper checks), so a plane or an image is one run.

cdef int _unpool_planar(bint gather, const real_t* src, const int64_t* ind, real_t* dst,
                        const Geom* g, Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    cdef Py_ssize_t P = g.d * g.h * g.w, Q = g.od * g.oh * g.ow, it, k
    cdef const int64_t* ip
    cdef const real_t* sp
    cdef real_t* dp
    cdef uint64_t i
    cdef int bad = 0
    for it in range(begin, end):
        ip = ind + it * Q
        if gather:   # dst: pooled plane, src: unpooled plane
            sp = src + it * P
            dp = dst + it * Q
            for k in range(Q):
                i = <uint64_t>ip[k]   # a negative index wraps to a huge one: one compare
                if i >= <uint64_t>P:
                    bad = 1
                    dp[k] = 0
                else:
                    dp[k] = sp[i]
        else:        # dst: unpooled plane, src: pooled plane
            sp = src + it * Q
            dp = dst + it * P
            memset(dp, 0, P * sizeof(real_t))   # all-zero bits: +0.0 in every dtype
            for k in range(Q):
                i = <uint64_t>ip[k]
                if i >= <uint64_t>P:
                    bad = 1
                else:
                    dp[i] = sp[k]
    return bad


cdef int _unpool_cl(bint gather, const real_t* src, const int64_t* ind, real_t* dst,
                    const Geom* g, Py_ssize_t cblock, Py_ssize_t begin,
                    Py_ssize_t end) noexcept nogil:
    cdef Py_ssize_t nblocks = (g.c + cblock - 1) // cblock
    cdef Walk at = _walk_from(begin, 1, 1, nblocks)
    cdef Py_ssize_t P = g.d * g.h * g.w, Q = g.od * g.oh * g.ow, C = g.c, it, q, k, c0, cl, px
    cdef const int64_t* ip
    cdef const real_t* sp
    cdef real_t* dp
    cdef uint64_t i
    cdef int bad = 0
    for it in range(begin, end):
        c0 = at.i3 * cblock
        cl = min(cblock, C - c0)
        ip = ind + at.i0 * Q * C + c0
        if gather:
            sp = src + at.i0 * P * C + c0
            dp = dst + at.i0 * Q * C + c0
            for q in range(Q):
                for k in range(cl):
                    i = <uint64_t>ip[q * C + k]
                    if i >= <uint64_t>P:
                        bad = 1
                        dp[q * C + k] = 0
                    else:
                        dp[q * C + k] = sp[<Py_ssize_t>i * C + k]
        else:
            sp = src + at.i0 * Q * C + c0
            dp = dst + at.i0 * P * C + c0
            if cl == C:
                memset(dp, 0, P * C * sizeof(real_t))   # the whole image is one run
            else:
                for px in range(P):
                    memset(dp + px * C, 0, cl * sizeof(real_t))
            # Pixels in input order, so a repeated index's last write wins as in the planar
            # kernel: the two layouts give the same bits.
            for q in range(Q):
                for k in range(cl):
                    i = <uint64_t>ip[q * C + k]
                    if i >= <uint64_t>P:
                        bad = 1
                    else:
                        dp[<Py_ssize_t>i * C + k] = sp[q * C + k]
        _step(&at)
    return bad


cdef int _unpool_run(bint gather, const real_t* src, const int64_t* ind, real_t* dst, Geom g,
                     bint cl, Py_ssize_t cblock, int nthreads) noexcept nogil:
    """0 on success, -1 when scratch could not be allocated, 1 for an out-of-range index."""
    cdef Py_ssize_t nitems = g.n * ((g.c + cblock - 1) // cblock) if cl else g.n * g.c
    cdef Py_ssize_t begin, end
    cdef int* status
    cdef int64_t* stamps
    cdef int t, rc = 0
    if nitems == 0:
        return 0
    nthreads = <int>max(1, min(<Py_ssize_t>nthreads, nitems))
    if nthreads > 1 and adapool_serial_now():
        nthreads = 1   # backing off from a contended machine (see adapool_note_parallel)
    if nthreads == 1:
        if cl:
            return _unpool_cl(gather, src, ind, dst, &g, cblock, 0, nitems)
        return _unpool_planar(gather, src, ind, dst, &g, 0, nitems)
    status = <int*>malloc(nthreads * sizeof(int))
    stamps = <int64_t*>malloc(2 * nthreads * sizeof(int64_t))
    if status == NULL or stamps == NULL:
        free(status)
        free(stamps)
        return -1
    for t in prange(nthreads, num_threads=nthreads, schedule="static", chunksize=1):
        begin = nitems * t // nthreads   # assigned in the loop body: thread-private (see _run)
        end = nitems * (t + 1) // nthreads
        stamps[2 * t] = adapool_now_ns()
        if cl:
            status[t] = _unpool_cl(gather, src, ind, dst, &g, cblock, begin, end)
        else:
            status[t] = _unpool_planar(gather, src, ind, dst, &g, begin, end)
        stamps[2 * t + 1] = adapool_now_ns()
    adapool_note_parallel(adapool_skewed(stamps, nthreads))
    for t in range(nthreads):
        rc = rc | status[t]
    free(status)
    free(stamps)
    return rc


cdef bint _dense_side(const Py_ssize_t* s, Py_ssize_t n, Py_ssize_t c, Py_ssize_t d,
                      Py_ssize_t h, Py_ssize_t w, bint cl) noexcept:
    """Whether element strides ``s`` (N, C, D, H, W) lay the array out densely: C order, or
    channels-last (C fastest). An axis of length 1 has no stride that matters."""
    cdef Py_ssize_t P = d * h * w
    if cl:
        return ((c == 1 or s[1] == 1) and (w == 1 or s[4] == c) and (h == 1 or s[3] == w * c)
                and (d == 1 or s[2] == h * w * c) and (n == 1 or s[0] == P * c))
    return ((w == 1 or s[4] == 1) and (h == 1 or s[3] == w) and (d == 1 or s[2] == h * w)
            and (c == 1 or s[1] == P) and (n == 1 or s[0] == c * P))


cdef int _unpool_checked(bint gather, int nd, cnp.ndarray unpooled, cnp.ndarray pooled,
                         cnp.ndarray indices, bint channels_last, Py_ssize_t cblock,
                         int nthreads) except -2:
    """The wrapper's checks, then the kernel; returns its status (0, -1 or 1)."""
    cdef Geom g
    cdef int rc, t = cnp.PyArray_TYPE(unpooled)
    _geometry(unpooled, pooled, nd, channels_last, &g)
    _check_writeable(pooled if gather else unpooled)
    if not (_dense_side(g.xs, g.n, g.c, g.d, g.h, g.w, channels_last)
            and _dense_side(g.ys, g.n, g.c, g.od, g.oh, g.ow, channels_last)):
        raise ValueError("unpooling arrays must be dense in their layout")
    if channels_last and cblock < 1:
        raise ValueError("channel block must be positive")
    cdef int64_t* idx = _indices(indices, nd, &g)   # the pooled side's shape and strides
    cdef const void* src = cnp.PyArray_DATA(unpooled if gather else pooled)
    cdef void* dst = cnp.PyArray_DATA(pooled if gather else unpooled)
    with nogil:
        if t == cnp.NPY_FLOAT:
            rc = _unpool_run(gather, <const float*>src, idx, <float*>dst, g, channels_last, cblock, nthreads)
        elif t == cnp.NPY_DOUBLE:
            rc = _unpool_run(gather, <const double*>src, idx, <double*>dst, g, channels_last, cblock, nthreads)
        else:
            rc = _unpool_run(gather, <const half_bits*>src, idx, <half_bits*>dst, g, channels_last, cblock,
                             nthreads)
    return rc


def max_unpool_forward(int nd, cnp.ndarray x, cnp.ndarray indices, cnp.ndarray y,
                       bint channels_last, Py_ssize_t cblock, int nthreads):
    """Zero y (N, C, *out), then y[n, c].flat[indices[n, c, i]] = x[n, c, i] in input order.

    x, indices and y must be dense in one layout (C order, or channels-last when
    ``channels_last``). Raises IndexError, having written nothing out of bounds, when an index
    is outside its plane."""
    _raise_for(_unpool_checked(False, nd, y, x, indices, channels_last, cblock, nthreads))


def max_unpool_backward(int nd, cnp.ndarray grad_output, cnp.ndarray indices,
                        cnp.ndarray grad_input, bint channels_last, Py_ssize_t cblock, int nthreads):
    """grad_input[n, c, i] = grad_output[n, c].flat[indices[n, c, i]]; layouts as for
    max_unpool_forward. Raises IndexError when an index is outside its plane."""
    _raise_for(_unpool_checked(True, nd, grad_output, grad_input, indices, channels_last, cblock, nthreads))
