# Fractional max pooling (torch.nn.functional.fractional_max_pool2d/3d), included from
# _kernels.pyx: it uses that file's real_t, _load/_store and thread helpers.
#
# Every (n, c) plane has its own windows: along each axis, output i of size ``out`` from input
# size L with kernel k starts at int((i + u) * alpha) - int(u * alpha), alpha = (L - k) /
# (out - 1), the last at L - k (torch's generate_intervals), where u is the plane's sample for
# that axis. The kernel computes the starts per plane in the sample's float type as torch does
# (float16: every operation rounded to float then to half, as c10::Half's operators do), then
# checks each window lies inside the input before reading the plane: a plane whose samples give
# a window outside (torch's kernel asserts there) is not read and the call fails. A kernel size
# <= 0 (torch accepts it) gives empty windows: -inf with the start's index, nothing read.
#
# torch's rule (start from -inf and the window's first index; take a value when it is greater
# or NaN): ties keep the first maximum, the last NaN wins, an all -inf window reports its first
# element. The picked element itself is stored (NaN payload, -0.0).
# Results are C-contiguous (P, od, oh, ow), as torch returns them for either input layout.
# Inputs whose W axis is not of unit stride (channels-last) are gathered into planes per block
# of channels, in the kernel's threads (torch copies them to C order first).

cdef extern from *:
    """
    /* static_cast<int>(v) as torch's x86-64 build computes it: truncation toward zero, and
       INT_MIN (cvttsd2si's "indefinite" value) for NaN and values outside int32. */
    static inline int64_t adapool_c_int(double v) {
        return (v > -2147483649.0 && v < 2147483648.0) ? (int64_t)(int32_t)v : (int64_t)INT32_MIN;
    }
    /* A float rounded to bfloat16 (and back), to nearest even: c10::BFloat16's result of one
       operation. NaN stays NaN. */
    static inline float adapool_bf16_round(float f) {
        uint32_t bits;
        if (f != f) return f;
        memcpy(&bits, &f, 4);
        bits = (bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u;
        memcpy(&f, &bits, 4);
        return f;
    }
    /* int32 subtraction as x86-64 wraps it. */
    static inline int64_t adapool_int32_sub(int64_t a, int64_t b) {
        return (int64_t)(int32_t)(uint32_t)(uint64_t)(a - b);
    }
    """
    int64_t adapool_c_int(double v) noexcept nogil
    int64_t adapool_int32_sub(int64_t a, int64_t b) noexcept nogil
    float adapool_bf16_round(float f) noexcept nogil


cdef struct FracGeom:
    Py_ssize_t c, d, h, w, od, oh, ow, kd, kh, kw
    Py_ssize_t xs[5]
    Py_ssize_t us[3]   # element strides of the samples (N', C, nd)
    int nd
    bint bf16   # float32 data widened from bfloat16: starts computed as c10::BFloat16 would


cdef inline float _half_round(float f) noexcept nogil:
    """A float rounded to float16 (and back): c10::Half's result of one operation."""
    return <float>adapool_half_to_double(adapool_double_to_half(<double>f))


cdef bint _frac_axis(const real_t u, Py_ssize_t size, Py_ssize_t out, Py_ssize_t k,
                     int64_t* seq, bint bf16) noexcept nogil:
    """One axis's window starts for a plane's sample ``u`` into seq[:out], in u's float type as
    torch's generate_intervals computes them (``bf16``: u is a widened bfloat16, and each
    operation rounds to bfloat16 as c10::BFloat16's do); False when a window leaves [0, size)."""
    cdef Py_ssize_t i
    cdef int64_t b
    cdef float af, uf
    cdef double ad
    if out > 1:
        if real_t is float and bf16:
            af = adapool_bf16_round(adapool_bf16_round(<float>(size - k)) / adapool_bf16_round(<float>(out - 1)))
            b = adapool_c_int(adapool_bf16_round(u * af))
            for i in range(out - 1):
                # c10 converts the int to BFloat16 before adding
                seq[i] = adapool_int32_sub(adapool_c_int(adapool_bf16_round(
                    adapool_bf16_round(adapool_bf16_round(<float>i) + u) * af)), b)
        elif real_t is float:
            af = <float>(size - k) / <float>(out - 1)
            b = adapool_c_int(u * af)
            for i in range(out - 1):
                seq[i] = adapool_int32_sub(adapool_c_int((<float>i + u) * af), b)
        elif real_t is double:
            ad = <double>(size - k) / <double>(out - 1)
            b = adapool_c_int(u * ad)
            for i in range(out - 1):
                seq[i] = adapool_int32_sub(adapool_c_int((<double>i + u) * ad), b)
        else:
            uf = <float>adapool_half_to_double(u)
            af = _half_round(_half_round(<float>(size - k)) / _half_round(<float>(out - 1)))
            b = adapool_c_int(_half_round(uf * af))
            for i in range(out - 1):
                # c10 converts the int to Half before adding
                seq[i] = adapool_int32_sub(adapool_c_int(_half_round(_half_round(_half_round(<float>i) + uf) * af)), b)
    if out > 0:
        seq[out - 1] = size - k
    for i in range(out):
        if seq[i] < 0 or seq[i] > size - k:
            return False
    return True


cdef int _frac_plane(const real_t* plane, Py_ssize_t s2, Py_ssize_t s3, real_t* y, int64_t* yi,
                     Py_ssize_t p, const real_t* u, const FracGeom* g, double* scratch) noexcept nogil:
    """Plane ``p`` (its D and H strides ``s2``, ``s3``; W of unit stride): its starts from its
    samples, then its outputs; 2 (and the plane not read) when a window leaves the input.

    The planar max kernel's two passes (_max_fwd_planar), on this plane's windows: (1) per
    output row, column maxima and NaN flags over its window's rows, whole input rows at a time
    (independent lanes that vectorise); (2) per output, the maximum of its columns, then
    _find_in_window's scan for the element torch's rule picks. torch's one pass carries a
    compare-select dependency through every element."""
    cdef Py_ssize_t od, oh, ow, id, ih, iw, d0, h0, w0, off
    cdef Py_ssize_t o = p * g.od * g.oh * g.ow
    cdef real_t* colmax = <real_t*>scratch                 # float/double input
    cdef double* colmax_h = scratch                        # float16 input, as float64
    cdef unsigned char* colnan = <unsigned char*>(scratch + g.w)
    cdef int64_t* sd = <int64_t*>(scratch + 2 * g.w)       # this plane's starts
    cdef int64_t* sh = sd + g.od
    cdef int64_t* sw = sh + g.oh
    cdef const real_t* row
    cdef real_t v
    cdef double vh, best
    cdef bint has_nan, first
    cdef int64_t pick
    cdef Geom pg                                           # what _find_in_window reads
    # The plane's samples: torch's 2-d kernel reads (W, H), the 3-d one (T, H, W); a 2-d
    # call's D axis (length 1, kernel 1) takes 0.
    cdef const real_t* up = u + (p // g.c) * g.us[0] + (p % g.c) * g.us[1]
    cdef real_t zero = 0
    cdef real_t ud = up[0] if g.nd == 3 else zero
    cdef real_t uh = up[g.us[2]]
    cdef real_t uw = up[2 * g.us[2]] if g.nd == 3 else up[0]
    if not (_frac_axis(ud, g.d, g.od, g.kd, sd, g.bf16) & _frac_axis(uh, g.h, g.oh, g.kh, sh, g.bf16)
            & _frac_axis(uw, g.w, g.ow, g.kw, sw, g.bf16)):
        return 2
    pg.h, pg.w = g.h, g.w
    pg.xs[2], pg.xs[3] = s2, s3
    for od in range(g.od):
        d0 = sd[od]
        for oh in range(g.oh):
            h0 = sh[oh]
            if g.kd <= 0 or g.kh <= 0 or g.kw <= 0:   # empty windows
                for ow in range(g.ow):
                    _store(y + o, -INFINITY)
                    if yi != NULL:
                        yi[o] = (d0 * g.h + h0) * g.w + sw[ow]
                    o += 1
                continue
            first = True
            for id in range(d0, d0 + g.kd):
                for ih in range(h0, h0 + g.kh):
                    row = plane + id * s2 + ih * s3
                    if real_t is half_bits:
                        for iw in range(g.w):
                            vh = _load(row[iw])
                            if first:
                                colmax_h[iw] = vh
                                colnan[iw] = vh != vh
                            else:
                                colmax_h[iw] = vh if vh > colmax_h[iw] else colmax_h[iw]
                                colnan[iw] = colnan[iw] | (vh != vh)
                    elif first:
                        for iw in range(g.w):
                            v = row[iw]
                            colmax[iw] = v
                            colnan[iw] = v != v
                    else:
                        for iw in range(g.w):
                            v = row[iw]
                            colmax[iw] = v if v > colmax[iw] else colmax[iw]
                            colnan[iw] = colnan[iw] | (v != v)
                    first = False
            for ow in range(g.ow):
                w0 = sw[ow]
                best = -INFINITY
                has_nan = False
                for iw in range(w0, w0 + g.kw):
                    if real_t is half_bits:
                        vh = colmax_h[iw]
                    else:
                        vh = colmax[iw]
                    best = vh if vh > best else best
                    has_nan = has_nan | colnan[iw]
                pick = _find_in_window(plane, &pg, d0, d0 + g.kd, h0, h0 + g.kh, w0, w0 + g.kw,
                                       best, has_nan, &off)
                if yi != NULL:
                    yi[o] = pick
                y[o] = plane[off]   # the element itself (NaN payload, -0.0)
                o += 1
    return 0


cdef int _frac_range(const real_t* x, real_t* y, int64_t* yi, const real_t* u, const FracGeom* g,
                     bint gather, Py_ssize_t cblock, Py_ssize_t tile_at, double* scratch,
                     Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    """Items [begin, end): planes read in place (W of unit stride), or, with ``gather``, blocks
    of ``cblock`` channels of one image copied into planes in scratch first (channels-last
    input: a plane read in place would touch a cache line per element; the block's pixels are
    a cache line each)."""
    cdef Py_ssize_t it, n, c, c0, cn, k, d, h, w, pix
    cdef Py_ssize_t P = g.d * g.h * g.w
    cdef Py_ssize_t nblocks = (g.c + cblock - 1) // cblock
    cdef real_t* tile = <real_t*>(scratch + tile_at)
    cdef const real_t* src
    cdef int status = 0
    for it in range(begin, end):
        if not gather:
            n = it // g.c
            c = it - n * g.c
            status |= _frac_plane(x + n * g.xs[0] + c * g.xs[1], g.xs[2], g.xs[3], y, yi, it, u, g, scratch)
            continue
        n = it // nblocks
        c0 = (it - n * nblocks) * cblock
        cn = min(cblock, g.c - c0)
        pix = 0
        for d in range(g.d):
            for h in range(g.h):
                for w in range(g.w):
                    src = x + n * g.xs[0] + c0 * g.xs[1] + d * g.xs[2] + h * g.xs[3] + w * g.xs[4]
                    for k in range(cn):
                        tile[k * P + pix] = src[k * g.xs[1]]
                    pix += 1
        for k in range(cn):
            status |= _frac_plane(tile + k * P, g.h * g.w, g.w, y, yi, n * g.c + c0 + k, u, g, scratch)
    return status


cdef int _frac_run(const real_t* x, real_t* y, int64_t* yi, const real_t* u, FracGeom g,
                   Py_ssize_t n, int nthreads) noexcept nogil:
    """One static range of items per thread (a plane's outputs only depend on that plane).
    0; -1 when scratch could not be allocated; 2 when some window lies outside the input."""
    cdef int t, rc = 0
    cdef bint gather = g.w > 1 and g.xs[4] != 1
    cdef Py_ssize_t cblock = max(1, 64 // <Py_ssize_t>sizeof(real_t))   # a cache line of channels
    cdef Py_ssize_t nitems = n * ((g.c + cblock - 1) // cblock) if gather else n * g.c
    cdef Py_ssize_t tile_at = _pad8(2 * g.w + g.od + g.oh + g.ow)
    cdef Py_ssize_t per_thread = tile_at
    cdef Py_ssize_t begin, end
    cdef double* scratch
    cdef int* status
    if gather:
        per_thread = tile_at + _pad8((cblock * g.d * g.h * g.w * sizeof(real_t) + 7) // 8)
    if nitems == 0:
        return 0
    nthreads = <int>max(1, min(<Py_ssize_t>nthreads, nitems))
    if nthreads > 1 and adapool_serial_now():
        nthreads = 1   # backing off from a contended machine (see adapool_note_parallel)
    scratch = <double*>malloc((nthreads * per_thread + 1) * sizeof(double))
    status = <int*>malloc(nthreads * sizeof(int))
    if scratch == NULL or status == NULL:
        free(scratch)
        free(status)
        return -1
    if nthreads == 1:
        status[0] = _frac_range(x, y, yi, u, &g, gather, cblock, tile_at, scratch, 0, nitems)
    else:
        for t in prange(nthreads, num_threads=nthreads, schedule="static", chunksize=1):
            begin = nitems * t // nthreads
            end = nitems * (t + 1) // nthreads
            status[t] = _frac_range(x, y, yi, u, &g, gather, cblock, tile_at, scratch + t * per_thread,
                                    begin, end)
    for t in range(nthreads):
        rc = rc | status[t]
    free(scratch)
    free(status)
    return rc


def fractional_max_pool_forward(int nd, cnp.ndarray x, cnp.ndarray y, object indices,
                                cnp.ndarray samples, kernel, int nthreads, bint bf16_starts=False):
    """Fractional max pooling of x ((N, C, *spatial), any strides) into y, C-contiguous
    (N, C, *out), and ``indices`` (None or C-contiguous int64 of y's shape). ``samples``:
    torch's (N', C, nd) with N' >= N, in x's dtype, aligned, any strides (the caller's own
    array: no per-call copy); 2-d reads (W, H) from each plane's pair, 3-d (T, H, W);
    ``kernel``: (kd, kh, kw). Raises ValueError, having read nothing outside x, when some
    plane's samples give a window outside the input."""
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
                or cnp.PyArray_NDIM(<cnp.ndarray>indices) != cnp.PyArray_NDIM(y)):
            raise ValueError("indices must be C-contiguous int64 of the output's shape")
        for i in range(cnp.PyArray_NDIM(y)):
            if cnp.PyArray_DIM(<cnp.ndarray>indices, i) != cnp.PyArray_DIM(y, i):
                raise ValueError("indices must be C-contiguous int64 of the output's shape")
        _check_writeable(<cnp.ndarray>indices)
        idx = <int64_t*>cnp.PyArray_DATA(<cnp.ndarray>indices)
    g.c, g.d, g.h, g.w = si[1], si[2], si[3], si[4]
    g.od, g.oh, g.ow = so[2], so[3], so[4]
    if bf16_starts and t != cnp.NPY_FLOAT:
        raise ValueError("bfloat16 starts are computed for float32 (widened bfloat16) data")
    g.bf16 = bf16_starts
    g.kd, g.kh, g.kw = kernel
    if nd == 2 and g.kd != 1:
        raise ValueError("2-d pooling has kd = 1")
    # Byte order counts too: a byte-swapped array has the same type number.
    if (cnp.PyArray_TYPE(samples) != t or cnp.PyArray_NDIM(samples) != 3
            or not cnp.PyArray_ISALIGNED(samples) or not cnp.PyArray_ISNOTSWAPPED(samples)
            or cnp.PyArray_DIM(samples, 0) < si[0] or cnp.PyArray_DIM(samples, 1) != si[1]
            or cnp.PyArray_DIM(samples, 2) != nd):
        raise ValueError("samples must be aligned (N' >= N, C, nd) in the input's dtype")
    if nd != 2 and nd != 3:
        raise ValueError("fractional max pooling is 2-d or 3-d")
    g.nd = nd
    for i in range(3):
        if cnp.PyArray_STRIDE(samples, i) % cnp.PyArray_ITEMSIZE(samples):
            raise ValueError("samples need strides in whole elements")
        g.us[i] = cnp.PyArray_STRIDE(samples, i) // cnp.PyArray_ITEMSIZE(samples)
    cdef const void* u = cnp.PyArray_DATA(samples)
    cdef const void* src = cnp.PyArray_DATA(x)
    cdef void* dst = cnp.PyArray_DATA(y)
    cdef int rc
    with nogil:
        if t == cnp.NPY_FLOAT:
            rc = _frac_run(<const float*>src, <float*>dst, idx, <const float*>u, g, si[0], nthreads)
        elif t == cnp.NPY_DOUBLE:
            rc = _frac_run(<const double*>src, <double*>dst, idx, <const double*>u, g, si[0], nthreads)
        else:
            rc = _frac_run(<const half_bits*>src, <half_bits*>dst, idx, <const half_bits*>u, g, si[0], nthreads)
    if rc == 2:
        raise ValueError("fractional window outside the input")
    _raise_for(rc)
