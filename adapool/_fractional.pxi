# Fractional max pooling (torch.nn.functional.fractional_max_pool2d/3d), included from
# _kernels.pyx: it uses that file's real_t, _load/_store and thread helpers.
#
# Every (n, c) plane has its own windows: window (od, oh, ow) of plane p covers
# [sd[p, od], +kd) x [sh[p, oh], +kh) x [sw[p, ow], +kw). The Python layer computes the starts
# from the plane's random sample (adapool/_fractional.py) and the wrapper checks that every
# window lies inside the input, so the loops read nothing else. A kernel size <= 0 (torch
# accepts it) gives empty windows: -inf with the start's index, nothing read.
#
# torch's rule, applied as written (start from -inf and the window's first index; take a value
# when it is greater or NaN): ties keep the first maximum, the last NaN wins, an all -inf
# window reports its first element. The picked element itself is stored (NaN payload, -0.0).
# Results are C-contiguous (P, od, oh, ow), as torch returns them for either input layout.

cdef struct FracGeom:
    Py_ssize_t c, d, h, w, od, oh, ow, kd, kh, kw
    Py_ssize_t xs[5]


cdef void _frac_fwd(const real_t* x, real_t* y, int64_t* yi, const int64_t* sd,
                    const int64_t* sh, const int64_t* sw, const FracGeom* g,
                    Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    cdef Py_ssize_t Q = g.od * g.oh * g.ow
    cdef Py_ssize_t p, n, c, od, oh, ow, id, ih, iw, d0, h0, w0, o, off, pick_off
    cdef int64_t pick
    cdef const real_t* plane
    cdef const real_t* row
    cdef real_t v, best
    cdef double vh, besth
    for p in range(begin, end):
        n = p // g.c
        c = p - n * g.c
        plane = x + n * g.xs[0] + c * g.xs[1]
        o = p * Q
        for od in range(g.od):
            d0 = sd[p * g.od + od]
            for oh in range(g.oh):
                h0 = sh[p * g.oh + oh]
                for ow in range(g.ow):
                    w0 = sw[p * g.ow + ow]
                    pick = (d0 * g.h + h0) * g.w + w0
                    pick_off = -1                 # nothing taken yet: -inf
                    if real_t is half_bits:
                        besth = -INFINITY
                    else:
                        best = <real_t>(-INFINITY)
                    for id in range(d0, d0 + g.kd):
                        for ih in range(h0, h0 + g.kh):
                            row = plane + id * g.xs[2] + ih * g.xs[3]
                            for iw in range(w0, w0 + g.kw):
                                off = iw * g.xs[4]
                                if real_t is half_bits:
                                    vh = _load(row[off])
                                    if vh > besth or vh != vh:
                                        besth = vh
                                        pick_off = (row - plane) + off
                                        pick = (id * g.h + ih) * g.w + iw
                                else:
                                    v = row[off]
                                    if v > best or v != v:
                                        best = v
                                        pick_off = (row - plane) + off
                                        pick = (id * g.h + ih) * g.w + iw
                    if pick_off >= 0:
                        y[o] = plane[pick_off]
                    else:
                        _store(y + o, -INFINITY)
                    if yi != NULL:
                        yi[o] = pick
                    o += 1


cdef int _frac_run(const real_t* x, real_t* y, int64_t* yi, const int64_t* sd,
                   const int64_t* sh, const int64_t* sw, FracGeom g, Py_ssize_t nplanes,
                   int nthreads) noexcept nogil:
    """One static range of planes per thread (a plane's outputs only depend on that plane)."""
    cdef int t
    cdef Py_ssize_t begin, end
    nthreads = <int>max(1, min(<Py_ssize_t>nthreads, nplanes))
    if nthreads > 1 and adapool_serial_now():
        nthreads = 1   # backing off from a contended machine (see adapool_note_parallel)
    if nthreads == 1:
        _frac_fwd(x, y, yi, sd, sh, sw, &g, 0, nplanes)
        return 0
    for t in prange(nthreads, num_threads=nthreads, schedule="static", chunksize=1):
        begin = nplanes * t // nthreads
        end = nplanes * (t + 1) // nthreads
        _frac_fwd(x, y, yi, sd, sh, sw, &g, begin, end)
    return 0


cdef const int64_t* _frac_starts(cnp.ndarray s, Py_ssize_t nplanes, Py_ssize_t nout,
                                 Py_ssize_t size, Py_ssize_t k) except NULL:
    """The (planes, outputs) int64 table of one axis's window starts, every window inside
    [0, size) when k > 0 (what the loops read); starts of empty windows (k <= 0) only make
    indices, but are held to the same range torch's arithmetic gives."""
    cdef Py_ssize_t i
    cdef const int64_t* t
    if (cnp.PyArray_TYPE(s) != cnp.NPY_INT64 or cnp.PyArray_NDIM(s) != 2
            or not cnp.PyArray_IS_C_CONTIGUOUS(s) or not cnp.PyArray_ISALIGNED(s)):
        raise TypeError("window starts must be aligned C-contiguous 2-d int64 arrays")
    if cnp.PyArray_DIM(s, 0) != nplanes or cnp.PyArray_DIM(s, 1) != nout:
        raise ValueError("window starts do not match the output shape")
    t = <const int64_t*>cnp.PyArray_DATA(s)
    for i in range(nplanes * nout):
        if t[i] < 0 or t[i] > size - k:
            raise ValueError("fractional window outside the input")
    return t


def fractional_max_pool_forward(int nd, cnp.ndarray x, cnp.ndarray y, object indices,
                                cnp.ndarray starts_d, cnp.ndarray starts_h, cnp.ndarray starts_w,
                                kernel, int nthreads):
    """Fractional max pooling of x ((N, C, *spatial), any strides) into y, C-contiguous
    (N, C, *out), and ``indices`` (None or int64 of y's shape, C-contiguous). ``starts_*``:
    (N*C, out) int64 window starts per axis (2d: starts_d is (N*C, 1) zeros); ``kernel``:
    (kd, kh, kw)."""
    cdef FracGeom g
    cdef Py_ssize_t i
    cdef Py_ssize_t si[5]
    cdef Py_ssize_t so[5]
    cdef Py_ssize_t ys[5]
    cdef int t = cnp.PyArray_TYPE(x)
    cdef int64_t* idx = NULL
    if t != cnp.PyArray_TYPE(y) or (t != cnp.NPY_FLOAT and t != cnp.NPY_DOUBLE and t != cnp.NPY_FLOAT16):
        raise TypeError("kernel arrays must share one dtype: float16, float32 or float64")
    if cnp.PyArray_NDIM(x) != cnp.PyArray_NDIM(y):
        raise ValueError("kernel arrays must have one rank")
    _axes(x, nd, si, g.xs)
    _axes(y, nd, so, ys)
    if si[0] != so[0] or si[1] != so[1]:
        raise ValueError("kernel arrays must have the same N and C")
    if not cnp.PyArray_IS_C_CONTIGUOUS(y):
        raise ValueError("fractional max pooling writes C-contiguous results")
    _check_writeable(y)
    if indices is not None:
        if (not isinstance(indices, cnp.ndarray) or cnp.PyArray_TYPE(<cnp.ndarray>indices) != cnp.NPY_INT64
                or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>indices)
                or not cnp.PyArray_ISALIGNED(<cnp.ndarray>indices)
                or cnp.PyArray_NDIM(<cnp.ndarray>indices) != cnp.PyArray_NDIM(y)
                or cnp.PyArray_SIZE(<cnp.ndarray>indices) != cnp.PyArray_SIZE(y)):
            raise ValueError("indices must be C-contiguous int64 of the output's shape")
        for i in range(cnp.PyArray_NDIM(y)):
            if cnp.PyArray_DIM(<cnp.ndarray>indices, i) != cnp.PyArray_DIM(y, i):
                raise ValueError("indices must be C-contiguous int64 of the output's shape")
        _check_writeable(<cnp.ndarray>indices)
        idx = <int64_t*>cnp.PyArray_DATA(<cnp.ndarray>indices)
    g.c, g.d, g.h, g.w = si[1], si[2], si[3], si[4]
    g.od, g.oh, g.ow = so[2], so[3], so[4]
    g.kd, g.kh, g.kw = kernel
    if nd == 2 and g.kd != 1:
        raise ValueError("2-d pooling has kd = 1")
    cdef Py_ssize_t nplanes = si[0] * si[1]
    cdef const int64_t* sd = _frac_starts(starts_d, nplanes, g.od, g.d, g.kd)
    cdef const int64_t* sh = _frac_starts(starts_h, nplanes, g.oh, g.h, g.kh)
    cdef const int64_t* sw = _frac_starts(starts_w, nplanes, g.ow, g.w, g.kw)
    cdef const void* src = cnp.PyArray_DATA(x)
    cdef void* dst = cnp.PyArray_DATA(y)
    with nogil:
        if t == cnp.NPY_FLOAT:
            _frac_run(<const float*>src, <float*>dst, idx, sd, sh, sw, g, nplanes, nthreads)
        elif t == cnp.NPY_DOUBLE:
            _frac_run(<const double*>src, <double*>dst, idx, sd, sh, sw, g, nplanes, nthreads)
        else:
            _frac_run(<const half_bits*>src, <half_bits*>dst, idx, sd, sh, sw, g, nplanes, nthreads)
