# Pooling kernels. Compiler directives (boundscheck, wraparound, cdivision, ...) are set once, in
# setup.py. Every function here trusts its arguments: the Python layer (adapool/_pooling.py)
# validates shapes, strides, dtypes and window tables before anything reaches a kernel.
#
# Layering (see ../shared/STYLE.md): `def` wrappers take typed memoryviews, read the geometry
# and call a `cdef ... noexcept nogil` driver; the driver runs independent work items (one
# output row each) serially or with `prange`; the item functions are pure arithmetic.
#
# Every op is written for rank 3 (D, H, W): 2d is D = 1 and 1d is D = H = 1, so one kernel
# serves all ranks at the cost of loops with a trip count of 1.

from cython.parallel cimport prange, threadid
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memset

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #ifdef _OPENMP
    #include <omp.h>
    static int adapool_openmp_enabled(void) { return 1; }
    static int adapool_omp_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int adapool_openmp_enabled(void) { return 0; }
    static int adapool_omp_max_threads(void) { return 1; }
    #endif

    /* Whether this CPU (and OS) can run the AVX2 build of these kernels. */
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    static int adapool_cpu_has_avx2(void) { __builtin_cpu_init(); return __builtin_cpu_supports("avx2") != 0; }
    #else
    static int adapool_cpu_has_avx2(void) { return 0; }
    #endif
    #ifdef __AVX2__
    static const char* adapool_simd_level(void) { return "avx2"; }
    #else
    static const char* adapool_simd_level(void) { return "baseline"; }
    #endif

    /* IEEE binary16 <-> binary64, exact conversion and round-to-nearest-even, in plain C so
       that the build needs no F16C instructions and no compiler-specific _Float16. */
    static inline double adapool_half_to_double(uint16_t h) {
        uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
        uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
        float f;
        if (exp == 0) {                        /* zero or subnormal: mant * 2^-24, exact */
            f = (float)mant * 5.9604644775390625e-08f;
            return sign ? -(double)f : (double)f;
        }
        if (exp == 31) bits = sign | 0x7f800000u | (mant << 13);   /* inf, NaN (payload kept) */
        else bits = sign | ((exp + 112u) << 23) | (mant << 13);
        memcpy(&f, &bits, sizeof f);
        return (double)f;
    }

    static inline uint16_t adapool_double_to_half(double d) {
        uint64_t b, absb, m, rem, halfway;
        uint16_t sign, q;
        int e, shift;
        memcpy(&b, &d, sizeof b);
        sign = (uint16_t)((b >> 48) & 0x8000u);
        absb = b & 0x7fffffffffffffffULL;
        if (absb >= 0x7ff0000000000000ULL) {   /* inf, or NaN kept quiet */
            if (absb == 0x7ff0000000000000ULL) return sign | 0x7c00u;
            return sign | 0x7e00u | (uint16_t)((absb >> 42) & 0x3ffu);
        }
        e = (int)(absb >> 52) - 1023;
        if (e >= 16) return sign | 0x7c00u;    /* >= 2^16 overflows */
        if (e < -25) return sign;              /* < 2^-25 rounds to zero */
        m = (absb & 0xfffffffffffffULL) | 0x10000000000000ULL;
        shift = e >= -14 ? 42 : 42 + (-14 - e);   /* normal: keep 11 bits; subnormal: fewer */
        q = (uint16_t)(m >> shift);
        rem = m & ((1ULL << shift) - 1);
        halfway = 1ULL << (shift - 1);
        if (rem > halfway || (rem == halfway && (q & 1u))) q++;
        /* A rounding carry out of the significand bumps the exponent, up to inf: correct. */
        if (e >= -14) return sign | (uint16_t)(((uint16_t)(e + 14) << 10) + q);
        return sign | q;
    }
    """
    int adapool_openmp_enabled() noexcept nogil
    int adapool_omp_max_threads() noexcept nogil
    int adapool_cpu_has_avx2() noexcept nogil
    const char* adapool_simd_level() noexcept nogil
    double adapool_half_to_double(unsigned short h) noexcept nogil
    unsigned short adapool_double_to_half(double d) noexcept nogil


# numpy float16 arrays reach the kernels viewed as uint16: Cython has no half type.
ctypedef unsigned short half_bits

ctypedef fused real_t:
    float
    double
    half_bits


cdef struct Geom:
    # Extents of input (n, c, d, h, w) and output (od, oh, ow); strides in elements.
    Py_ssize_t n, c, d, h, w, od, oh, ow
    Py_ssize_t xs[5]
    Py_ssize_t ys[5]


cdef inline double _load(const real_t v) noexcept nogil:
    if real_t is half_bits:
        return adapool_half_to_double(v)
    else:
        return <double>v


cdef inline void _store(real_t* dst, double v) noexcept nogil:
    if real_t is half_bits:
        dst[0] = adapool_double_to_half(v)
    else:
        dst[0] = <real_t>v


cdef inline Py_ssize_t _pad8(Py_ssize_t k) noexcept nogil:
    # Per-thread scratch rounded to 64 bytes so threads never share a cache line.
    return (k + 7) & ~(<Py_ssize_t>7)


# ---------------------------------------------------------------------------------------------
# The one reduction every average kernel is built on: sum a grid of equal-length rows.
#
#   acc[k] = sum over i < n1, j < n2, l < n3 of base[i*s1 + j*s2 + l*s3 + k],   k < L
#
# Planar windows are a (kd, kh) grid of W-long rows; channels-last windows a (kd, kh, kw) grid
# of C-long pixel vectors. Rows are added into an L1-resident accumulator row with plain
# unit-stride loops, which gcc vectorises. float32 input is summed in a float32 row that is
# flushed into the float64 row every _F32_FLUSH input rows: float32 SIMD speed, and an error
# bound of ~_F32_FLUSH ulp instead of the window size that torch's plain float32 sum has.
# float64 and float16 input is summed in float64 directly.

cdef enum:
    _F32_FLUSH = 16


cdef inline void _sum_rows(const real_t* base, Py_ssize_t L,
                           Py_ssize_t n1, Py_ssize_t s1, Py_ssize_t n2, Py_ssize_t s2,
                           Py_ssize_t n3, Py_ssize_t s3, double* acc,
                           float* facc) noexcept nogil:
    cdef Py_ssize_t k, i, j, l, pending = 0
    cdef const real_t* p
    memset(acc, 0, L * sizeof(double))
    if real_t is float:
        memset(facc, 0, L * sizeof(float))
    for i in range(n1):
        for j in range(n2):
            for l in range(n3):
                p = base + i * s1 + j * s2 + l * s3
                if real_t is float:
                    for k in range(L):
                        facc[k] += p[k]
                    pending += 1
                    if pending == _F32_FLUSH:
                        for k in range(L):
                            acc[k] += facc[k]
                            facc[k] = 0.0
                        pending = 0
                else:
                    for k in range(L):
                        acc[k] += _load(p[k])
    if real_t is float:
        if pending:
            for k in range(L):
                acc[k] += facc[k]


cdef inline double _sum_run(const real_t* p, Py_ssize_t P) noexcept nogil:
    """Sum of one contiguous run (a window that spans whole rows, e.g. global pooling).

    Eight independent accumulators in registers: no scratch, no memset, no alias checks, and
    no long serial dependency chain. float32 lanes are flushed into float64 every _F32_FLUSH
    additions, the same error bound as _sum_rows."""
    cdef Py_ssize_t j, b, j0, j1, rows = P // 8
    cdef const real_t* q
    cdef double total
    cdef float f0, f1, f2, f3, f4, f5, f6, f7
    cdef double d0 = 0, d1 = 0, d2 = 0, d3 = 0, d4 = 0, d5 = 0, d6 = 0, d7 = 0
    # Branch-free inner loops so that gcc can vectorise the eight lanes.
    for b in range((rows + _F32_FLUSH - 1) // _F32_FLUSH):
        j0 = b * _F32_FLUSH
        j1 = min(j0 + _F32_FLUSH, rows)
        if real_t is float:
            f0 = f1 = f2 = f3 = f4 = f5 = f6 = f7 = 0
            for j in range(j0, j1):
                q = p + 8 * j
                f0 += q[0]; f1 += q[1]; f2 += q[2]; f3 += q[3]
                f4 += q[4]; f5 += q[5]; f6 += q[6]; f7 += q[7]
            d0 += f0; d1 += f1; d2 += f2; d3 += f3
            d4 += f4; d5 += f5; d6 += f6; d7 += f7
        else:
            for j in range(j0, j1):
                q = p + 8 * j
                d0 += _load(q[0]); d1 += _load(q[1]); d2 += _load(q[2]); d3 += _load(q[3])
                d4 += _load(q[4]); d5 += _load(q[5]); d6 += _load(q[6]); d7 += _load(q[7])
    total = ((d0 + d1) + (d2 + d3)) + ((d4 + d5) + (d6 + d7))
    for j in range(rows * 8, P):
        total += _load(p[j])
    return total


cdef inline double _sum_span(const double* a, Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    """a[begin] + ... + a[end-1] with four independent chains (a single chain is bound by the
    add latency, ~4 cycles an element)."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t i = begin
    while i + 4 <= end:
        s0 += a[i]
        s1 += a[i + 1]
        s2 += a[i + 2]
        s3 += a[i + 3]
        i += 4
    while i < end:
        s0 += a[i]
        i += 1
    return (s0 + s1) + (s2 + s3)


# ---------------------------------------------------------------------------------------------
# Work is split into one contiguous range of items per thread (static partition): items are
# then walked with carried counters, never decomposed with integer division per item (three
# 64-bit divisions cost more than pooling a 7x7 plane).

cdef inline void _thread_range(Py_ssize_t nitems, int t, int nthreads,
                               Py_ssize_t* begin, Py_ssize_t* end) noexcept nogil:
    begin[0] = nitems * t // nthreads
    end[0] = nitems * (t + 1) // nthreads


# Adaptive average, planar layout (W has unit stride: NCHW and its strided views).
# Item = one output row (n, c, od, oh): sum the window's (kd, kh) rows into W float64s, then
# each output column adds up its slice. When one window spans whole contiguous rows (OW == 1),
# it is a single run and is summed as such.

cdef void _avg_planar_range(const real_t* x, real_t* y, const int64_t* win, const Geom* g,
                            double* scratch, Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    cdef const int64_t* d0 = win
    cdef const int64_t* d1 = d0 + g.od
    cdef const int64_t* h0 = d1 + g.od
    cdef const int64_t* h1 = h0 + g.oh
    cdef const int64_t* w0 = h1 + g.oh
    cdef const int64_t* w1 = w0 + g.ow
    cdef Py_ssize_t oh = begin % g.oh, t = begin // g.oh
    cdef Py_ssize_t od = t % g.od
    t = t // g.od
    cdef Py_ssize_t c = t % g.c, n = t // g.c
    cdef Py_ssize_t it, ow, id, kd, kh
    cdef bint single_run = g.ow == 1 and (g.h == 1 or g.xs[3] == g.w)
    cdef const real_t* first_row
    cdef real_t* out
    cdef double s
    cdef Py_ssize_t row = _pad8(g.w)
    for it in range(begin, end):
        kd = d1[od] - d0[od]
        kh = h1[oh] - h0[oh]
        first_row = x + n * g.xs[0] + c * g.xs[1] + d0[od] * g.xs[2] + h0[oh] * g.xs[3]
        out = y + n * g.ys[0] + c * g.ys[1] + od * g.ys[2] + oh * g.ys[3]
        if single_run:
            s = 0.0
            for id in range(kd):
                s += _sum_run(first_row + id * g.xs[2], kh * g.w)
            _store(out, s * (1.0 / <double>(kd * kh * g.w)))
        else:
            _sum_rows(first_row, g.w, kd, g.xs[2], kh, g.xs[3], 1, 0, scratch, <float*>(scratch + row))
            for ow in range(g.ow):
                s = _sum_span(scratch, w0[ow], w1[ow])
                _store(out + ow * g.ys[4], s * (1.0 / <double>(kd * kh * (w1[ow] - w0[ow]))))
        oh += 1
        if oh == g.oh:
            oh = 0
            od += 1
            if od == g.od:
                od = 0
                c += 1
                if c == g.c:
                    c = 0
                    n += 1


# Global average of dense planes (output 1x1x1, each (D, H, W) plane one contiguous run): the
# ResNet head. Item = one plane; nothing but the run sum, so per-plane overhead stays a few
# cycles (the general planar item costs more than summing a 7x7 plane).

cdef void _avg_global_range(const real_t* x, real_t* y, const Geom* g, Py_ssize_t begin,
                            Py_ssize_t end) noexcept nogil:
    cdef Py_ssize_t c = begin % g.c, n = begin // g.c, it
    cdef Py_ssize_t P = g.d * g.h * g.w
    cdef double inv_area = 1.0 / <double>P
    for it in range(begin, end):
        _store(y + n * g.ys[0] + c * g.ys[1], _sum_run(x + n * g.xs[0] + c * g.xs[1], P) * inv_area)
        c += 1
        if c == g.c:
            c = 0
            n += 1


# Adaptive average, channels-last layout (C has unit stride: NHWC viewed as NCHW).
# Item = one output row (n, od, oh) and one block of channels. Each input row of the window is
# streamed once, in memory order, pixel vectors added into their output column's accumulators
# (vectorised over C); overlapping windows add a shared pixel to both. Reading whole rows in
# order keeps the hardware prefetcher fed, which a pixel-by-pixel walk of each window does not.
# float32 lanes are flushed into float64 after _F32_FLUSH additions, per output column.

cdef void _avg_cl_range(const real_t* x, real_t* y, const int64_t* win, const Geom* g,
                        Py_ssize_t cblock, double* scratch, Py_ssize_t begin,
                        Py_ssize_t end) noexcept nogil:
    cdef const int64_t* d0 = win
    cdef const int64_t* d1 = d0 + g.od
    cdef const int64_t* h0 = d1 + g.od
    cdef const int64_t* h1 = h0 + g.oh
    cdef const int64_t* w0 = h1 + g.oh
    cdef const int64_t* w1 = w0 + g.ow
    cdef Py_ssize_t nblocks = (g.c + cblock - 1) // cblock
    cdef Py_ssize_t blk = begin % nblocks, t = begin // nblocks
    cdef Py_ssize_t oh = t % g.oh
    t = t // g.oh
    cdef Py_ssize_t od = t % g.od, n = t // g.od
    cdef Py_ssize_t span = g.ow * cblock
    cdef double* acc = scratch
    cdef float* facc = <float*>(scratch + span)
    cdef Py_ssize_t* count = <Py_ssize_t*>(scratch + span + (span + 1) // 2)
    cdef Py_ssize_t it, k, c0, cl, id, ih, iw, ow
    cdef Py_ssize_t ysc = g.ys[1]
    cdef const real_t* row
    cdef const real_t* p
    cdef double* a
    cdef float* fa
    cdef real_t* out
    cdef double inv_area
    cdef Py_ssize_t kw_max = 0
    cdef bint f32_only    # float32 windows of <= _F32_FLUSH pixels never touch the float64 row
    for ow in range(g.ow):
        kw_max = max(kw_max, w1[ow] - w0[ow])
    for it in range(begin, end):
        c0 = blk * cblock
        cl = min(cblock, g.c - c0)
        f32_only = real_t is float and (d1[od] - d0[od]) * (h1[oh] - h0[oh]) * kw_max <= _F32_FLUSH
        if not f32_only:
            memset(acc, 0, span * sizeof(double))
        if real_t is float:
            memset(facc, 0, span * sizeof(float))
            memset(count, 0, g.ow * sizeof(Py_ssize_t))
        for id in range(d0[od], d1[od]):
            for ih in range(h0[oh], h1[oh]):
                row = x + n * g.xs[0] + c0 + id * g.xs[2] + ih * g.xs[3]
                for ow in range(g.ow):
                    a = acc + ow * cblock
                    if real_t is float:
                        fa = facc + ow * cblock
                    for iw in range(w0[ow], w1[ow]):
                        p = row + iw * g.xs[4]
                        if real_t is float:
                            for k in range(cl):
                                fa[k] += p[k]
                            count[ow] += 1
                            if count[ow] == _F32_FLUSH:
                                for k in range(cl):
                                    a[k] += fa[k]
                                    fa[k] = 0.0
                                count[ow] = 0
                        else:
                            for k in range(cl):
                                a[k] += _load(p[k])
        for ow in range(g.ow):
            a = acc + ow * cblock
            fa = facc + ow * cblock
            # One reciprocal per window instead of a division per element: within 1 ulp of
            # float64 division, so float32/float16 results are the same correctly rounded
            # value (torch divides twice, sum / kh / kw, and is no closer).
            inv_area = 1.0 / <double>((d1[od] - d0[od]) * (h1[oh] - h0[oh]) * (w1[ow] - w0[ow]))
            out = y + n * g.ys[0] + c0 * ysc + od * g.ys[2] + oh * g.ys[3] + ow * g.ys[4]
            if real_t is float and f32_only:
                for k in range(cl):
                    _store(out + k * ysc, <double>fa[k] * inv_area)
            else:
                if real_t is float:
                    for k in range(cl):
                        a[k] += fa[k]
                if ysc == 1:
                    for k in range(cl):
                        _store(out + k, a[k] * inv_area)
                else:
                    for k in range(cl):
                        _store(out + k * ysc, a[k] * inv_area)
        blk += 1
        if blk == nblocks:
            blk = 0
            oh += 1
            if oh == g.oh:
                oh = 0
                od += 1
                if od == g.od:
                    od = 0
                    n += 1


cdef inline bint _is_global_dense(const Geom* g, bint channels_last) noexcept nogil:
    return (not channels_last and g.od == 1 and g.oh == 1 and g.ow == 1
            and (g.h == 1 or g.xs[3] == g.w) and (g.d == 1 or g.xs[2] == g.h * g.w))


cdef inline void _avg_range(const real_t* x, real_t* y, const int64_t* win, const Geom* g,
                            bint channels_last, Py_ssize_t cblock, double* scratch,
                            Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    if _is_global_dense(g, channels_last):
        _avg_global_range(x, y, g, begin, end)
    elif channels_last:
        _avg_cl_range(x, y, win, g, cblock, scratch, begin, end)
    else:
        _avg_planar_range(x, y, win, g, scratch, begin, end)


cdef int _avg_run(const real_t* x, real_t* y, const int64_t* win, Geom g, bint channels_last,
                  Py_ssize_t cblock, int nthreads) noexcept nogil:
    cdef Py_ssize_t nitems, stride, begin, end
    cdef double* scratch
    cdef int t
    if channels_last:
        nitems = g.n * g.od * g.oh * ((g.c + cblock - 1) // cblock)
        # float64 row, float32 row (half the room), one counter per output column
        stride = _pad8(g.ow * cblock + (g.ow * cblock + 1) // 2 + g.ow)
    else:
        nitems = g.n * g.c * g.od * g.oh
        stride = 2 * _pad8(g.w)
    nthreads = <int>max(1, min(<Py_ssize_t>nthreads, nitems))
    scratch = <double*>malloc(nthreads * stride * sizeof(double))
    if scratch == NULL:
        return -1
    if nthreads == 1:
        # Small calls never pay for starting a thread team.
        _avg_range(x, y, win, &g, channels_last, cblock, scratch, 0, nitems)
    else:
        for t in prange(nthreads, num_threads=nthreads, schedule="static", chunksize=1):
            _thread_range(nitems, t, nthreads, &begin, &end)
            _avg_range(x, y, win, &g, channels_last, cblock, scratch + t * stride, begin, end)
    free(scratch)
    return 0


# ---------------------------------------------------------------------------------------------
# def wrappers: read geometry from the views, release the GIL, run.

cdef Geom _geometry(const real_t[:, :, :, :, :] x, real_t[:, :, :, :, :] y):
    cdef Geom g
    cdef int k
    g.n, g.c, g.d, g.h, g.w = x.shape[0], x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    g.od, g.oh, g.ow = y.shape[2], y.shape[3], y.shape[4]
    for k in range(5):
        g.xs[k] = x.strides[k] // <Py_ssize_t>sizeof(real_t)
        g.ys[k] = y.strides[k] // <Py_ssize_t>sizeof(real_t)
    return g


def adaptive_avg_pool(const real_t[:, :, :, :, :] x, real_t[:, :, :, :, :] y,
                      const int64_t[::1] windows, bint channels_last, Py_ssize_t cblock,
                      int nthreads):
    """Adaptive average pooling of x (N, C, D, H, W) into y (N, C, OD, OH, OW).

    ``windows`` packs the window tables [d0, d1, h0, h1, w0, w1] (lengths OD, OD, OH, OH, OW,
    OW). The innermost axis (W, or C when ``channels_last``) must have unit stride; x and y
    must be non-empty. The Python layer guarantees all of this.
    """
    cdef Geom g = _geometry(x, y)
    cdef int rc
    # Cheap guard for the one assumption the raw-pointer loops make about layout (the stride
    # of an axis of length 1 is never used).
    if (g.c > 1 and g.xs[1] != 1) if channels_last else (g.w > 1 and g.xs[4] != 1):
        raise ValueError("kernel needs a unit-stride innermost axis")
    if windows.shape[0] != 2 * (g.od + g.oh + g.ow):
        raise ValueError("window table does not match the output shape")
    with nogil:
        rc = _avg_run(&x[0, 0, 0, 0, 0], &y[0, 0, 0, 0, 0], &windows[0], g, channels_last,
                      cblock, nthreads)
    if rc != 0:
        raise MemoryError("adapool: could not allocate kernel scratch space")


def openmp_enabled():
    """Whether this build of the extension was compiled with OpenMP."""
    return bool(adapool_openmp_enabled())


def omp_max_threads():
    """OpenMP's current default team size for the calling thread (1 in a serial build)."""
    return adapool_omp_max_threads()


def cpu_has_avx2():
    """Whether the running CPU and OS support AVX2 (so the AVX2 build may be loaded)."""
    return bool(adapool_cpu_has_avx2())


def simd_level():
    """The instruction set this module was compiled for: "baseline" or "avx2"."""
    return adapool_simd_level().decode()


def _half_to_double(const half_bits[::1] h, double[::1] out):
    """Test hook: the kernels' float16 -> float64 conversion, element-wise."""
    cdef Py_ssize_t i
    for i in range(h.shape[0]):
        out[i] = adapool_half_to_double(h[i])


def _double_to_half(const double[::1] d, half_bits[::1] out):
    """Test hook: the kernels' float64 -> float16 rounding, element-wise."""
    cdef Py_ssize_t i
    for i in range(d.shape[0]):
        out[i] = adapool_double_to_half(d[i])
