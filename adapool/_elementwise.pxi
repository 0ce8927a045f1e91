# Elementwise powers for lp_pool (included from _kernels.pyx: it uses the .pyx's real_t,
# half_bits, the half conversions and the contention back-off).
#
# lp_pool is torch's composition x ** p -> avg_pool -> (s * area) ** (1/p) (adapool/_lp.py).
# Its two elementwise steps run here, in parallel and without temporaries:
#   power:  dst = x ** e                            over the whole input, any strides
#   finish: dst = (s * area + 0.0) ** e             over the pooled result, in place
# computed exactly as the NumPy composition computes them, so both give the same bits:
#   - in the work type: float32 for float16 and float32 (torch's half ops compute in float),
#     float64 for float64; float16 rounds to half after the scaling and after the power;
#   - the pow special cases of torch's CPU pow (_lp._pow: ones, copy, square, cube, sqrt,
#     1/sqrt, reciprocal, reciprocal square), each as the same IEEE operations;
#   - any other exponent through NumPy's own float32/float64 power loop (the one np.power runs,
#     SIMD or not, depending on the CPU NumPy dispatched to), handed over by the wrapper; square
#     roots through np.sqrt's loop (correctly rounded like C's sqrt, and vectorised: C's sqrt
#     keeps errno and so stays scalar, 5x slower than the rest of the finish step).
# "+ 0.0" after the scaling turns -0.0 into +0.0 (torch's sign(s) * relu(|s|) does; -0.0
# ** -1 would be -inf); -ffp-contract=off keeps the multiply and the add separate.
#
# Items: the flat elements of the (permuted) source in C order, one contiguous range per
# thread; dst is the C-contiguous array of the same elements, so element i goes to dst[i]
# and threads never share an element. Each range is walked run by run along the innermost
# axis, in pieces of at most _LP_PIECE elements staged in per-thread scratch.

from numpy import power as _numpy_power, sqrt as _numpy_sqrt

# The modes, in _lp._SPECIAL_POWERS's order (that tuple's index is the mode): e == 0, 1, 2, 3,
# 0.5, -0.5, -1, -2; anything else is POW_GENERAL.
cdef enum:
    POW_ONES = 0
    POW_COPY = 1
    POW_SQUARE = 2
    POW_CUBE = 3
    POW_SQRT = 4
    POW_RSQRT = 5
    POW_RECIPROCAL = 6
    POW_RECIPROCAL_SQUARE = 7
    POW_GENERAL = 8

cdef enum:
    _LP_PIECE = 512   # elements staged at a time: 4 KiB of float64, in L1 with its source

# NumPy's inner-loop signature (PyUFuncGenericFunction); its float loops need no GIL.
ctypedef void (*_ufunc_loop)(char**, cnp.npy_intp*, cnp.npy_intp*, void*) noexcept nogil

ctypedef fused work_t:
    float
    double


cdef struct Power:
    int mode
    bint scale          # the finish step: multiply by area and add 0.0 before the power
    double e            # the exponent (a work-type value: float16's already rounded to half)
    double area         # the finish step's factor
    _ufunc_loop loop    # np.power's loop for the work type (POW_GENERAL)
    void* loop_data
    _ufunc_loop sqrt_loop   # np.sqrt's (POW_SQRT, POW_RSQRT)
    void* sqrt_data


cdef inline void _power_into(const work_t* a, work_t* out, Py_ssize_t n, const Power* pw) noexcept nogil:
    """out[k] = a[k] ** e for k < n, in the work type (a and out may be the same buffer)."""
    cdef Py_ssize_t k
    cdef work_t v, one = 1
    cdef work_t e = <work_t>pw.e
    cdef char* args[3]
    cdef cnp.npy_intp dims[1]
    cdef cnp.npy_intp steps[3]
    if pw.mode == POW_ONES:           # NaN ** 0 is 1 too
        for k in range(n):
            out[k] = one
    elif pw.mode == POW_COPY:
        if out != a:
            for k in range(n):
                out[k] = a[k]
    elif pw.mode == POW_SQUARE:
        for k in range(n):
            out[k] = a[k] * a[k]
    elif pw.mode == POW_CUBE:         # (a * a) * a, unrounded square: torch's float and half cube
        for k in range(n):
            v = a[k]
            out[k] = v * v * v
    elif pw.mode == POW_SQRT or pw.mode == POW_RSQRT:
        args[0] = <char*>a
        args[1] = <char*>out
        dims[0] = n
        steps[0] = sizeof(work_t)
        steps[1] = sizeof(work_t)
        pw.sqrt_loop(args, dims, steps, pw.sqrt_data)
        if pw.mode == POW_RSQRT:
            for k in range(n):
                out[k] = one / out[k]
    elif pw.mode == POW_RECIPROCAL:
        for k in range(n):
            out[k] = one / a[k]
    elif pw.mode == POW_RECIPROCAL_SQUARE:
        for k in range(n):
            out[k] = one / (a[k] * a[k])
    else:
        # np.power(a, e) with e a broadcast scalar: the exponent's stride is 0, as there
        args[0] = <char*>a
        args[1] = <char*>&e
        args[2] = <char*>out
        dims[0] = n
        steps[0] = sizeof(work_t)
        steps[1] = 0
        steps[2] = sizeof(work_t)
        pw.loop(args, dims, steps, pw.loop_data)


cdef inline void _lp_piece(const real_t* src, Py_ssize_t ss, real_t* dst, Py_ssize_t n,
                           const Power* pw, double* scratch) noexcept nogil:
    """dst[k] = step(src[k * ss]) for k < n <= _LP_PIECE."""
    cdef Py_ssize_t k
    cdef float* f = <float*>scratch
    cdef float fa = <float>pw.area, fz = 0
    cdef double z = 0
    if real_t is half_bits:
        for k in range(n):
            f[k] = <float>adapool_half_to_double(src[k * ss])
        if pw.scale:   # (s * area + 0.0) in float, rounded to half before the power
            for k in range(n):
                f[k] = <float>adapool_half_to_double(adapool_double_to_half(f[k] * fa + fz))
        _power_into(f, f, n, pw)
        for k in range(n):
            dst[k] = adapool_double_to_half(f[k])
    elif real_t is float:
        if ss == 1 and not pw.scale:
            _power_into(src, dst, n, pw)
            return
        for k in range(n):
            f[k] = src[k * ss]
        if pw.scale:
            for k in range(n):
                f[k] = f[k] * fa + fz
        _power_into(f, dst, n, pw)
    else:
        if ss == 1 and not pw.scale:
            _power_into(src, dst, n, pw)
            return
        for k in range(n):
            scratch[k] = src[k * ss]
        if pw.scale:
            for k in range(n):
                scratch[k] = scratch[k] * pw.area + z
        _power_into(scratch, dst, n, pw)


cdef void _lp_range(const real_t* src, real_t* dst, const Py_ssize_t* shape, const Py_ssize_t* st,
                    const Power* pw, double* scratch, Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    """Elements begin..end (C order over ``shape``, 5 axes) of src into dst[begin:end]."""
    cdef Py_ssize_t idx[5]
    cdef Py_ssize_t pos = begin, r = begin, run, off, j, m
    cdef int a
    for a in range(4, -1, -1):
        idx[a] = r % shape[a]
        r = r // shape[a]
    while pos < end:
        run = min(shape[4] - idx[4], end - pos)
        off = idx[0] * st[0] + idx[1] * st[1] + idx[2] * st[2] + idx[3] * st[3] + idx[4] * st[4]
        j = 0
        while j < run:
            m = min(<Py_ssize_t>_LP_PIECE, run - j)
            _lp_piece(src + off + j * st[4], st[4], dst + pos + j, m, pw, scratch)
            j += m
        pos += run
        idx[4] += run
        a = 4
        while a > 0 and idx[a] == shape[a]:   # carry into the outer axes
            idx[a] = 0
            idx[a - 1] += 1
            a -= 1


cdef int _lp_run(const real_t* src, real_t* dst, Py_ssize_t* shape, Py_ssize_t* st, Power pw,
                 int nthreads) noexcept nogil:
    """0 on success, -1 when scratch could not be allocated."""
    cdef Py_ssize_t total = 1, begin, end
    cdef double* scratch
    cdef int64_t* stamps
    cdef int a, t
    for a in range(5):
        total *= shape[a]
    if total == 0:
        return 0
    # whole pieces per thread: a thread with fewer elements than that is not worth its start
    nthreads = <int>max(1, min(<Py_ssize_t>nthreads, total // _LP_PIECE))
    if nthreads > 1 and adapool_serial_now():
        nthreads = 1   # backing off from a contended machine (see adapool_note_parallel)
    scratch = <double*>malloc(nthreads * _LP_PIECE * sizeof(double))
    stamps = <int64_t*>malloc(2 * nthreads * sizeof(int64_t))
    if scratch == NULL or stamps == NULL:
        free(scratch)
        free(stamps)
        return -1
    if nthreads == 1:
        _lp_range(src, dst, shape, st, &pw, scratch, 0, total)
    else:
        for t in prange(nthreads, num_threads=nthreads, schedule="static", chunksize=1):
            begin = total * t // nthreads   # assigned in the loop body: thread-private (see _run)
            end = total * (t + 1) // nthreads
            stamps[2 * t] = adapool_now_ns()
            _lp_range(src, dst, shape, st, &pw, scratch + t * _LP_PIECE, begin, end)
            stamps[2 * t + 1] = adapool_now_ns()
        adapool_note_parallel(adapool_skewed(stamps, nthreads))
    free(scratch)
    free(stamps)
    return 0


cdef void _coalesce(Py_ssize_t* shape, Py_ssize_t* st) noexcept:
    """Merge axes that step through the source evenly (an outer stride equal to the inner
    axis's stride times its length), axes of length 1 dropped, into the innermost of 5 axes:
    contiguous data becomes one long run. Same elements, same C order."""
    cdef Py_ssize_t ms[5]
    cdef Py_ssize_t mst[5]
    cdef int k, m = 0
    for k in range(5):
        if shape[k] == 1:
            continue
        if m > 0 and mst[m - 1] == st[k] * shape[k]:
            ms[m - 1] *= shape[k]
            mst[m - 1] = st[k]
        else:
            ms[m] = shape[k]
            mst[m] = st[k]
            m += 1
    for k in range(5):
        if k < 5 - m:
            shape[k] = 1
            st[k] = 0
        else:
            shape[k] = ms[k - 5 + m]
            st[k] = mst[k - 5 + m]


cdef int _numpy_loop(cnp.ufunc f, int typenum, _ufunc_loop* loop, void** data) except -1:
    """f's inner loop for typenum in and out: the first loop in its type table that takes
    exactly that type for every argument, the one NumPy's own loop search picks for it."""
    cdef int i, k, nargs = f.nargs
    for i in range(f.ntypes):
        for k in range(nargs):
            if f.types[nargs * i + k] != typenum:
                break
        else:
            # through void*: NumPy declares its loops without nogil, yet its float loops
            # are plain C that touches no Python object
            loop[0] = <_ufunc_loop><void*>f.functions[i]
            data[0] = f.data[i]
            return 0
    raise TypeError(f"numpy's {f.__name__} has no loop for this dtype")


def lp_elementwise(cnp.ndarray src, cnp.ndarray dst, int mode, double exponent, bint scale, double area,
                   int nthreads):
    """dst.flat[i] = step(src's element i in C order), the lp_pool step described at the top
    of _elementwise.pxi: ``src ** exponent`` (``scale`` False), or ``(src * area + 0.0) **
    exponent`` rounded as the dtype's composition rounds it (``scale`` True).

    src: 1 to 5 axes, any strides; dst: 1-d, C-contiguous, writeable, src's size and dtype
    (float16, float32 or float64, native and aligned). dst must not overlap src, except by
    being src itself (src C-contiguous at dst's address: the step runs in place)."""
    cdef int t = cnp.PyArray_TYPE(src)
    cdef int r = cnp.PyArray_NDIM(src), a, k
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(src), total = 1, lo = 0, hi = 0, extent
    cdef Py_ssize_t shape[5]
    cdef Py_ssize_t st[5]
    cdef char* s = <char*>cnp.PyArray_DATA(src)
    cdef char* d = <char*>cnp.PyArray_DATA(dst)
    cdef Power pw
    cdef bint in_place
    cdef int rc, work
    if t != cnp.PyArray_TYPE(dst) or (t != cnp.NPY_FLOAT and t != cnp.NPY_DOUBLE and t != cnp.NPY_FLOAT16):
        raise TypeError("lp_elementwise arrays must share one dtype: float16, float32 or float64")
    if not (cnp.PyArray_ISALIGNED(src) and cnp.PyArray_ISALIGNED(dst)
            and cnp.PyArray_ISNOTSWAPPED(src) and cnp.PyArray_ISNOTSWAPPED(dst)):
        raise ValueError("lp_elementwise arrays must be aligned, in native byte order")
    if r < 1 or r > 5:
        raise ValueError("lp_elementwise source must have 1 to 5 axes")
    if cnp.PyArray_NDIM(dst) != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(dst):
        raise ValueError("lp_elementwise destination must be 1-d and contiguous")
    _check_writeable(dst)
    if mode < POW_ONES or mode > POW_GENERAL:
        raise ValueError("unknown lp_elementwise mode")
    # the source as 5 axes (leading axes of length 1), strides in elements
    for k in range(5):
        a = k - 5 + r
        if a < 0:
            shape[k] = 1
            st[k] = 0
        else:
            shape[k] = cnp.PyArray_DIM(src, a)
            if cnp.PyArray_STRIDE(src, a) % item:
                raise ValueError("lp_elementwise needs strides in whole elements")
            st[k] = cnp.PyArray_STRIDE(src, a) // item
            if shape[k] > 1:
                extent = (shape[k] - 1) * st[k]
                if extent < 0:
                    lo += extent
                else:
                    hi += extent
        total *= shape[k]
    if cnp.PyArray_DIM(dst, 0) != total:
        raise ValueError("lp_elementwise destination must have the source's size")
    if total == 0:
        return
    # Writes go to dst[0:total] only. Reading elements another thread (or an earlier piece)
    # has already overwritten would give wrong answers: refuse any overlap but the exact one.
    in_place = s == d and cnp.PyArray_IS_C_CONTIGUOUS(src)
    if not in_place and s + lo * item < d + total * item and d < s + (hi + 1) * item:
        raise ValueError("lp_elementwise destination overlaps the source")
    _coalesce(shape, st)
    pw.mode = mode
    pw.scale = scale
    pw.e = exponent
    pw.area = area
    pw.loop = NULL
    pw.loop_data = NULL
    pw.sqrt_loop = NULL
    pw.sqrt_data = NULL
    work = cnp.NPY_DOUBLE if t == cnp.NPY_DOUBLE else cnp.NPY_FLOAT
    if mode == POW_GENERAL:
        _numpy_loop(_numpy_power, work, &pw.loop, &pw.loop_data)
    elif mode == POW_SQRT or mode == POW_RSQRT:
        _numpy_loop(_numpy_sqrt, work, &pw.sqrt_loop, &pw.sqrt_data)
    with nogil:
        if t == cnp.NPY_FLOAT:
            rc = _lp_run(<const float*>s, <float*>d, shape, st, pw, nthreads)
        elif t == cnp.NPY_DOUBLE:
            rc = _lp_run(<const double*>s, <double*>d, shape, st, pw, nthreads)
        else:
            rc = _lp_run(<const half_bits*>s, <half_bits*>d, shape, st, pw, nthreads)
    _raise_for(rc)
