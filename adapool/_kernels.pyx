# Pooling kernels. Compiler directives (boundscheck, wraparound, cdivision, ...) are set once, in
# setup.py. Every function here trusts its arguments: the Python layer (adapool/_pooling.py)
# validates shapes, strides, dtypes and window tables before anything reaches a kernel.
#
# Layering (see ../shared/STYLE.md): `def` wrappers take ndarrays, read the geometry through
# numpy's C API, check what the loops assume and call one `cdef ... noexcept nogil` driver
# (_run); it splits independent work items (output rows, input rows or planes, depending on the
# kernel) into one static range per thread and runs them serially or with `prange`; the range
# functions are pure arithmetic.
#
# Every op is written for rank 3 (D, H, W): 2d is D = 1 and 1d is D = H = 1, so one kernel
# serves all ranks at the cost of loops with a trip count of 1.

from cython.parallel cimport prange
from libc.stdint cimport int32_t, int64_t, uint64_t, uintptr_t
from libc.math cimport INFINITY
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset
cimport numpy as cnp

cnp.import_array()

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

    /* A loaded machine. libgomp's idle workers spin, so a worker whose core another process
       also wants uses up its fair share spinning and is then descheduled for a whole time
       slice: the team's end barrier waits for it (5-20x a call's quiet time, measured).
       A parallel call whose threads finish further apart than the work itself took marks the
       machine contended; calls then run on the calling thread for a back-off period that
       doubles while the contention lasts (20 ms up to 1 s) and halves after each clean
       parallel call (below 40 ms: back to none). Results do not depend on the thread count, so this changes speed only. The state
       is process-wide (relaxed atomics: a heuristic, races only blur it). */
    #include <time.h>
    #define ADAPOOL_BACKOFF_MIN_NS 20000000LL
    #define ADAPOOL_BACKOFF_MAX_NS 1000000000LL
    #define ADAPOOL_SKEW_MIN_NS 200000LL
    static int64_t adapool_serial_until = 0, adapool_backoff = 0;
    static inline int64_t adapool_now_ns(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (int64_t)t.tv_sec * 1000000000LL + (int64_t)t.tv_nsec;
    }
    static inline int adapool_serial_now(void) {
        return adapool_now_ns() < __atomic_load_n(&adapool_serial_until, __ATOMIC_RELAXED);
    }
    static inline void adapool_note_parallel(int contended) {
        int64_t b;
        b = __atomic_load_n(&adapool_backoff, __ATOMIC_RELAXED);
        if (!contended) {   /* halve, not reset: under lasting load a lucky probe is common */
            __atomic_store_n(&adapool_backoff, b < 2 * ADAPOOL_BACKOFF_MIN_NS ? 0 : b / 2, __ATOMIC_RELAXED);
            return;
        }
        b = b == 0 ? ADAPOOL_BACKOFF_MIN_NS : (2 * b > ADAPOOL_BACKOFF_MAX_NS ? ADAPOOL_BACKOFF_MAX_NS : 2 * b);
        __atomic_store_n(&adapool_backoff, b, __ATOMIC_RELAXED);
        __atomic_store_n(&adapool_serial_until, adapool_now_ns() + b, __ATOMIC_RELAXED);
    }
    /* stamps: (start, end) per thread. Contended: the last thread finished more than the
       fastest thread's whole run (and 0.2 ms) after the first one did. */
    static inline int adapool_skewed(const int64_t* stamps, int n) {
        int64_t first = stamps[1], last = stamps[1], fastest = stamps[1] - stamps[0];
        for (int t = 1; t < n; t++) {
            int64_t end = stamps[2 * t + 1], run = end - stamps[2 * t];
            if (end < first) first = end;
            if (end > last) last = end;
            if (run < fastest) fastest = run;
        }
        return last - first > (fastest > ADAPOOL_SKEW_MIN_NS ? fastest : ADAPOOL_SKEW_MIN_NS);
    }
    static inline void adapool_reset_contention(void) {
        __atomic_store_n(&adapool_backoff, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&adapool_serial_until, 0, __ATOMIC_RELAXED);
    }
    static inline int64_t adapool_serial_left_ns(void) {
        int64_t left = __atomic_load_n(&adapool_serial_until, __ATOMIC_RELAXED) - adapool_now_ns();
        return left > 0 ? left : 0;
    }
    static inline int64_t adapool_backoff_ns(void) { return __atomic_load_n(&adapool_backoff, __ATOMIC_RELAXED); }

    /* Transposing gather for the small-plane tiles: t[j * tb + k] = src[k * cs + j] for pixels
       j < n of one contiguous run and channels k < cl. 8x8 (AVX) or 4x4 (SSE2) blocks are
       transposed in registers; a scalar loop takes the edges. Moves bits only: NaN payloads
       and signed zeros are kept. */
    #if defined(__AVX__) || defined(__SSE2__)
    #include <immintrin.h>
    #endif
    #include <stddef.h>
    #if defined(__AVX__)
    /* Eight float32 sums times their float64 1 / divisors (lanes 0-3 in lo, 4-7 in hi), each
       rounded once to float32: the scalar (float)((double)s * inv). */
    static inline __m256 adapool_scale8(__m256 s, __m256d lo, __m256d hi) {
        __m128 a = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(s)), lo));
        __m128 b = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(s, 1)), hi));
        return _mm256_insertf128_ps(_mm256_castps128_ps256(a), b, 1);
    }
    #endif
    #if defined(__AVX2__)
    /* float32 inf or NaN, eight lanes: all ones where the exponent is all ones (the float32
       sums _f32_repair_all redoes). */
    static inline __m256i adapool_nonfinite8(__m256i v) {
        const __m256i e = _mm256_set1_epi32(0x7f800000);
        return _mm256_cmpeq_epi32(_mm256_and_si256(v, e), e);
    }
    static inline int adapool_nonfinite_mask8(__m256 s) {
        return _mm256_movemask_ps(_mm256_castsi256_ps(adapool_nonfinite8(_mm256_castps_si256(s))));
    }
    #endif
    static void adapool_tile_f32(const float* src, ptrdiff_t cs, ptrdiff_t n, ptrdiff_t cl,
                                 float* t, ptrdiff_t tb) {
        ptrdiff_t k0 = 0, j0, j, k;
    #if defined(__AVX__)
        for (; k0 + 8 <= cl; k0 += 8) {
            const float* s = src + k0 * cs;
            for (j0 = 0; j0 + 8 <= n; j0 += 8) {
                __m256 r0 = _mm256_loadu_ps(s + j0), r1 = _mm256_loadu_ps(s + cs + j0);
                __m256 r2 = _mm256_loadu_ps(s + 2 * cs + j0), r3 = _mm256_loadu_ps(s + 3 * cs + j0);
                __m256 r4 = _mm256_loadu_ps(s + 4 * cs + j0), r5 = _mm256_loadu_ps(s + 5 * cs + j0);
                __m256 r6 = _mm256_loadu_ps(s + 6 * cs + j0), r7 = _mm256_loadu_ps(s + 7 * cs + j0);
                __m256 a0 = _mm256_unpacklo_ps(r0, r1), a1 = _mm256_unpackhi_ps(r0, r1);
                __m256 a2 = _mm256_unpacklo_ps(r2, r3), a3 = _mm256_unpackhi_ps(r2, r3);
                __m256 a4 = _mm256_unpacklo_ps(r4, r5), a5 = _mm256_unpackhi_ps(r4, r5);
                __m256 a6 = _mm256_unpacklo_ps(r6, r7), a7 = _mm256_unpackhi_ps(r6, r7);
                __m256 b0 = _mm256_shuffle_ps(a0, a2, 0x44), b1 = _mm256_shuffle_ps(a0, a2, 0xEE);
                __m256 b2 = _mm256_shuffle_ps(a1, a3, 0x44), b3 = _mm256_shuffle_ps(a1, a3, 0xEE);
                __m256 b4 = _mm256_shuffle_ps(a4, a6, 0x44), b5 = _mm256_shuffle_ps(a4, a6, 0xEE);
                __m256 b6 = _mm256_shuffle_ps(a5, a7, 0x44), b7 = _mm256_shuffle_ps(a5, a7, 0xEE);
                float* d = t + j0 * tb + k0;
                _mm256_storeu_ps(d, _mm256_permute2f128_ps(b0, b4, 0x20));
                _mm256_storeu_ps(d + tb, _mm256_permute2f128_ps(b1, b5, 0x20));
                _mm256_storeu_ps(d + 2 * tb, _mm256_permute2f128_ps(b2, b6, 0x20));
                _mm256_storeu_ps(d + 3 * tb, _mm256_permute2f128_ps(b3, b7, 0x20));
                _mm256_storeu_ps(d + 4 * tb, _mm256_permute2f128_ps(b0, b4, 0x31));
                _mm256_storeu_ps(d + 5 * tb, _mm256_permute2f128_ps(b1, b5, 0x31));
                _mm256_storeu_ps(d + 6 * tb, _mm256_permute2f128_ps(b2, b6, 0x31));
                _mm256_storeu_ps(d + 7 * tb, _mm256_permute2f128_ps(b3, b7, 0x31));
            }
            for (j = j0; j < n; j++)
                for (k = 0; k < 8; k++) t[j * tb + k0 + k] = s[k * cs + j];
        }
    #elif defined(__SSE2__)
        for (; k0 + 4 <= cl; k0 += 4) {
            const float* s = src + k0 * cs;
            for (j0 = 0; j0 + 4 <= n; j0 += 4) {
                __m128 r0 = _mm_loadu_ps(s + j0), r1 = _mm_loadu_ps(s + cs + j0);
                __m128 r2 = _mm_loadu_ps(s + 2 * cs + j0), r3 = _mm_loadu_ps(s + 3 * cs + j0);
                float* d = t + j0 * tb + k0;
                _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
                _mm_storeu_ps(d, r0);
                _mm_storeu_ps(d + tb, r1);
                _mm_storeu_ps(d + 2 * tb, r2);
                _mm_storeu_ps(d + 3 * tb, r3);
            }
            for (j = j0; j < n; j++)
                for (k = 0; k < 4; k++) t[j * tb + k0 + k] = s[k * cs + j];
        }
    #endif
        for (j = 0; j < n; j++)
            for (k = k0; k < cl; k++) t[j * tb + k] = src[k * cs + j];
    }

    /* The same for 64-bit elements (float64 values, int64 indices: bits moved as doubles, never
       computed on): 4x4 (AVX) or 2x2 (SSE2) blocks. */
    static void adapool_tile_b64(const double* src, ptrdiff_t cs, ptrdiff_t n, ptrdiff_t cl,
                                 double* t, ptrdiff_t tb) {
        ptrdiff_t k0 = 0, j0, j, k;
    #if defined(__AVX__)
        for (; k0 + 4 <= cl; k0 += 4) {
            const double* s = src + k0 * cs;
            for (j0 = 0; j0 + 4 <= n; j0 += 4) {
                __m256d r0 = _mm256_loadu_pd(s + j0), r1 = _mm256_loadu_pd(s + cs + j0);
                __m256d r2 = _mm256_loadu_pd(s + 2 * cs + j0), r3 = _mm256_loadu_pd(s + 3 * cs + j0);
                __m256d a0 = _mm256_unpacklo_pd(r0, r1), a1 = _mm256_unpackhi_pd(r0, r1);
                __m256d a2 = _mm256_unpacklo_pd(r2, r3), a3 = _mm256_unpackhi_pd(r2, r3);
                double* d = t + j0 * tb + k0;
                _mm256_storeu_pd(d, _mm256_permute2f128_pd(a0, a2, 0x20));
                _mm256_storeu_pd(d + tb, _mm256_permute2f128_pd(a1, a3, 0x20));
                _mm256_storeu_pd(d + 2 * tb, _mm256_permute2f128_pd(a0, a2, 0x31));
                _mm256_storeu_pd(d + 3 * tb, _mm256_permute2f128_pd(a1, a3, 0x31));
            }
            for (j = j0; j < n; j++)
                for (k = 0; k < 4; k++) t[j * tb + k0 + k] = s[k * cs + j];
        }
    #elif defined(__SSE2__)
        for (; k0 + 2 <= cl; k0 += 2) {
            const double* s = src + k0 * cs;
            for (j0 = 0; j0 + 2 <= n; j0 += 2) {
                __m128d r0 = _mm_loadu_pd(s + j0), r1 = _mm_loadu_pd(s + cs + j0);
                double* d = t + j0 * tb + k0;
                _mm_storeu_pd(d, _mm_unpacklo_pd(r0, r1));
                _mm_storeu_pd(d + tb, _mm_unpackhi_pd(r0, r1));
            }
            for (j = j0; j < n; j++)
                for (k = 0; k < 2; k++) t[j * tb + k0 + k] = s[k * cs + j];
        }
    #endif
        for (j = 0; j < n; j++)
            for (k = k0; k < cl; k++) t[j * tb + k] = src[k * cs + j];
    }

    /* Global average pooling of small float32 planes: the sums of four planes (plane stride
       ps elements) at once, each bit-identical to _sum_run's (the same eight float32 lanes,
       flushed into float64 every 16 rows of 8, the same tree, then the tail in order). One
       plane's sum is a chain of dependent adds: on 7x7 planes the per-plane loop waited on
       it (~8 ns a plane); four independent chains halve that (measured in C, one thread:
       65,536 planes of 49, 0.41 -> 0.21 ms). Only for planes of at most 64 elements: out of
       cache, four interleaved streams of larger planes ran up to 2x slower on this EPYC. */
    #if defined(__AVX__)
    #define ADAPOOL_HAS_SUMS4 1
    static inline __m256d adapool_sums4_vec(const float* p, ptrdiff_t ps, ptrdiff_t P) {
        ptrdiff_t rows = P / 8, b, j, j1, j0;
        int k;
        __m256d lo[4], hi[4], t;
        __m256 f[4];
        for (k = 0; k < 4; k++) { lo[k] = _mm256_setzero_pd(); hi[k] = _mm256_setzero_pd(); }
        for (b = 0; b < rows; b += 16) {
            j1 = b + 16 < rows ? b + 16 : rows;
            for (k = 0; k < 4; k++) f[k] = _mm256_setzero_ps();
            for (j = b; j < j1; j++) {
                f[0] = _mm256_add_ps(f[0], _mm256_loadu_ps(p + 8 * j));
                f[1] = _mm256_add_ps(f[1], _mm256_loadu_ps(p + ps + 8 * j));
                f[2] = _mm256_add_ps(f[2], _mm256_loadu_ps(p + 2 * ps + 8 * j));
                f[3] = _mm256_add_ps(f[3], _mm256_loadu_ps(p + 3 * ps + 8 * j));
            }
            for (k = 0; k < 4; k++) {
                lo[k] = _mm256_add_pd(lo[k], _mm256_cvtps_pd(_mm256_castps256_ps128(f[k])));
                hi[k] = _mm256_add_pd(hi[k], _mm256_cvtps_pd(_mm256_extractf128_ps(f[k], 1)));
            }
        }
        {
            /* per plane ((d0+d1)+(d2+d3)) + ((d4+d5)+(d6+d7)), _sum_run's tree, for the four
               planes at once: hadd gives (k:d0+d1, m:d0+d1, k:d2+d3, m:d2+d3) for planes k, m;
               the 128-bit halves of two such, regrouped, put planes 0-3 in lane order */
            __m256d l01 = _mm256_hadd_pd(lo[0], lo[1]), l23 = _mm256_hadd_pd(lo[2], lo[3]);
            __m256d h01 = _mm256_hadd_pd(hi[0], hi[1]), h23 = _mm256_hadd_pd(hi[2], hi[3]);
            __m256d s1 = _mm256_add_pd(_mm256_permute2f128_pd(l01, l23, 0x20), _mm256_permute2f128_pd(l01, l23, 0x31));
            __m256d s2 = _mm256_add_pd(_mm256_permute2f128_pd(h01, h23, 0x20), _mm256_permute2f128_pd(h01, h23, 0x31));
            t = _mm256_add_pd(s1, s2);
        }
        for (j0 = rows * 8; j0 < P; j0++)   /* the tail in order, one element per plane a step */
            t = _mm256_add_pd(t, _mm256_set_pd((double)p[3 * ps + j0], (double)p[2 * ps + j0],
                                               (double)p[ps + j0], (double)p[j0]));
        return t;
    }
    static void adapool_sums4_f32(const float* p, ptrdiff_t ps, ptrdiff_t P, double* out) {
        _mm256_storeu_pd(out, adapool_sums4_vec(p, ps, P));
    }
    /* The four planes' means, sum * inv rounded once to float32 (as _store does), stored to
       four consecutive outputs: one vector multiply, convert and store instead of four of each
       (the per-plane stores and the tail's scalar chains were a third of a 7x7 plane's time). */
    static void adapool_means4_f32(const float* p, ptrdiff_t ps, ptrdiff_t P, double inv, float* y) {
        _mm_storeu_ps(y, _mm256_cvtpd_ps(_mm256_mul_pd(adapool_sums4_vec(p, ps, P), _mm256_set1_pd(inv))));
    }
    #else
    #define ADAPOOL_HAS_SUMS4 0
    static void adapool_sums4_f32(const float* p, ptrdiff_t ps, ptrdiff_t P, double* out) {
        (void)p; (void)ps; (void)P; (void)out;   /* never called: ADAPOOL_HAS_SUMS4 is 0 */
    }
    static void adapool_means4_f32(const float* p, ptrdiff_t ps, ptrdiff_t P, double inv, float* y) {
        (void)p; (void)ps; (void)P; (void)inv; (void)y;
    }
    #endif

    /* Average pooling of small float32 planes whose W windows are uniform: output column j
       reads columns sw * j + c, c < kw (sw 1 or 2, kw <= 4, ow <= 8). One output row is one
       vector of ow lanes: each window row's kw column vectors come from a stride-sw
       deinterleave of the row, and each lane adds its window up in float32, rows outer and
       columns inner, from 0 (the channels-last kernel's order and bits for windows of at most
       _F32_FLUSH pixels, the only ones this takes), then sum * inv in float64, rounded once
       (a sum that overflowed is redone afterwards, by _f32_repair_all).
       Per-plane and per-row loops over 7 outputs were the cost of the planar kernels on 14x14
       and 15x15 planes (the channels-last tile's transposes in and out were a third of it).
       Loads overrun a row by up to 17 floats (into the next row, or the next plane): rows
       whose span would pass xend (one past the array's last element) are copied out first. */
    #include <math.h>
    /* Inlined into each caller (constant strides and widths there): for code both builds share. */
    #if defined(__GNUC__) || defined(__clang__)
    #define ADAPOOL_ALWAYS_INLINE static inline __attribute__((always_inline))
    #else
    #define ADAPOOL_ALWAYS_INLINE static inline
    #endif
    /* One output of adapool_avg_wide_f32 (both builds): its window's pixels in row-major order
       in float32 from +0.0, times its float64 1 / divisor, rounded once; 1 if the sum came
       out inf or NaN. */
    static inline int adapool_avg_wide_one(const float* first_row, ptrdiff_t kd, ptrdiff_t ds,
                                           ptrdiff_t kh, ptrdiff_t hs, ptrdiff_t c0, ptrdiff_t c1,
                                           double inv, float* out) {
        float f = 0.0f;
        ptrdiff_t id, ih, c;
        for (id = 0; id < kd; id++)
            for (ih = 0; ih < kh; ih++) {
                const float* r = first_row + id * ds + ih * hs;
                for (c = c0; c < c1; c++) f += r[c];
            }
        *out = (float)((double)f * inv);
        return !(f - f == 0.0f);
    }
    /* Floats adapool_add_row reads from q: kw + 7 at stride 1; at stride 2 16 (kw <= 2), 17
       (kw = 3: its third column from the odd lanes at q + 1, the last one read q + 16) or 18. */
    #define ADAPOOL_ROW_SPAN(sw, kw) ((sw) == 1 ? (kw) + 7 : ((kw) > 3 ? 18 : ((kw) == 3 ? 17 : 16)))
    #if defined(__AVX2__)
    #define ADAPOOL_HAS_ROWS 1
    static inline const float* adapool_safe_span(const float* p, ptrdiff_t need, const float* xend,
                                                 float* buf) {
        ptrdiff_t i, avail;
        if (p + need <= xend) return p;
        avail = xend - p;
        for (i = 0; i < need; i++) buf[i] = i < avail ? p[i] : 0.0f;
        return buf;
    }
    /* How far past a plane's start its windows' rows are read: the highest row start (rows may
       run backwards) plus span floats. A plane at xp with xp + reach <= xend needs no per-row
       bounds check. 0 when no window has a row. */
    static inline ptrdiff_t adapool_rows_reach(const int64_t* h0, const int64_t* h1, ptrdiff_t oh,
                                               ptrdiff_t xrs, ptrdiff_t span) {
        ptrdiff_t i, rlo = h0[0], rhi = h1[0] - 1;
        for (i = 1; i < oh; i++) {
            if (h0[i] < rlo) rlo = h0[i];
            if (h1[i] - 1 > rhi) rhi = h1[i] - 1;
        }
        return rhi < rlo ? 0 : (rlo * xrs > rhi * xrs ? rlo * xrs : rhi * xrs) + span;
    }
    /* The even (odd) elements of a and b, in the order a0 a2 b0 b2 a4 a6 b4 b6: every vector a
       window adds is in that same order, so the sum is put in column order once, at the end
       (one lane-crossing permute an output row instead of one a column vector). */
    static inline __m256 adapool_even_lanes(__m256 a, __m256 b) {
        return _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    }
    static inline __m256 adapool_odd_lanes(__m256 a, __m256 b) {
        return _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    }
    /* Output row i of a plane (ow values at out): lanes past ow land on the next rows' outputs,
       which are stored after this one; past the plane's last output (i * ow + 8 > oh * ow) they
       go through a buffer. */
    static inline void adapool_store_row_f32(float* out, __m256 v, ptrdiff_t i, ptrdiff_t oh, ptrdiff_t ow) {
        float last[8];
        if (i * ow + 8 <= oh * ow) {
            _mm256_storeu_ps(out, v);
        } else {
            _mm256_storeu_ps(last, v);
            memcpy(out, last, (size_t)ow * sizeof(float));
        }
    }
    static inline void adapool_store_row_i64(int64_t* out, __m256i v, ptrdiff_t i, ptrdiff_t oh, ptrdiff_t ow) {
        int64_t last[8];
        __m256i lo = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v)), hi = _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1));
        if (i * ow + 8 <= oh * ow) {
            _mm256_storeu_si256((__m256i*)out, lo);
            _mm256_storeu_si256((__m256i*)(out + 4), hi);
        } else {
            _mm256_storeu_si256((__m256i*)last, lo);
            _mm256_storeu_si256((__m256i*)(last + 4), hi);
            memcpy(out, last, (size_t)ow * sizeof(int64_t));
        }
    }
    /* One window row's kw column vectors added in column order (q: the row, readable for
       ADAPOOL_ROW_SPAN(sw, kw) floats). */
    static inline __attribute__((always_inline)) __m256 adapool_add_row(__m256 acc, const float* q,
                                                                        int sw, int kw) {
        __m256 a, b;
        if (sw == 1) {
            acc = _mm256_add_ps(acc, _mm256_loadu_ps(q));
            if (kw > 1) acc = _mm256_add_ps(acc, _mm256_loadu_ps(q + 1));
            if (kw > 2) acc = _mm256_add_ps(acc, _mm256_loadu_ps(q + 2));
            if (kw > 3) acc = _mm256_add_ps(acc, _mm256_loadu_ps(q + 3));
            return acc;
        }
        a = _mm256_loadu_ps(q);
        b = _mm256_loadu_ps(q + 8);
        acc = _mm256_add_ps(acc, adapool_even_lanes(a, b));
        if (kw > 1) acc = _mm256_add_ps(acc, adapool_odd_lanes(a, b));
        if (kw == 3) {
            /* columns q + 2, ..., q + 16: the same lanes as the even ones from q + 2 (as kw = 4
               takes them), without reading q + 17, so that a row's last whole windows fit */
            a = _mm256_loadu_ps(q + 1);
            b = _mm256_loadu_ps(q + 9);
            acc = _mm256_add_ps(acc, adapool_odd_lanes(a, b));
        } else if (kw > 3) {
            a = _mm256_loadu_ps(q + 2);
            b = _mm256_loadu_ps(q + 10);
            acc = _mm256_add_ps(acc, adapool_even_lanes(a, b));
            acc = _mm256_add_ps(acc, adapool_odd_lanes(a, b));
        }
        return acc;
    }
    /* Specialised by the caller for each (sw, kw): constant trip counts, no branches per row. */
    static inline __attribute__((always_inline)) int adapool_avg_rows_body(
            const float* x, ptrdiff_t xps, ptrdiff_t xrs, const float* xend, float* y, ptrdiff_t yps,
            ptrdiff_t nplanes, ptrdiff_t oh, ptrdiff_t ow, const int64_t* h0, const int64_t* h1,
            int sw, int kw, const double* inv8, const float* div8) {
        float buf[24];
        int nonfinite = 0;
        ptrdiff_t p, i, r;
        ptrdiff_t span = ADAPOOL_ROW_SPAN(sw, kw), reach = adapool_rows_reach(h0, h1, oh, xrs, span);
        const float* xp;
        __m256 acc;
        int fast;
        for (p = 0; p < nplanes; p++) {
            xp = x + p * xps;
            fast = xp + reach <= xend;   /* every row this plane reads is span floats from xend */
            for (i = 0; i < oh; i++) {
                acc = _mm256_setzero_ps();
                if (fast)
                    for (r = h0[i]; r < h1[i]; r++) acc = adapool_add_row(acc, xp + r * xrs, sw, kw);
                else
                    for (r = h0[i]; r < h1[i]; r++)
                        acc = adapool_add_row(acc, adapool_safe_span(xp + r * xrs, span, xend, buf), sw, kw);
                if (sw == 2)
                    acc = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(acc), _MM_SHUFFLE(3, 1, 2, 0)));
                {
                    /* divided by the float32 divisors where the caller has them: the same bits
                       (see adapool_avg_wide_block8) */
                    __m256 v = div8 != NULL ? _mm256_div_ps(acc, _mm256_loadu_ps(div8 + 8 * i))
                                            : adapool_scale8(acc, _mm256_loadu_pd(inv8 + 8 * i),
                                                             _mm256_loadu_pd(inv8 + 8 * i + 4));
                    /* a sum that is inf or NaN: flagged, redone by _f32_repair_all */
                    nonfinite |= adapool_nonfinite_mask8(acc) & ((1 << ow) - 1);
                    adapool_store_row_f32(y + p * yps + i * ow, v, i, oh, ow);
                }
            }
        }
        return nonfinite;
    }
    static int adapool_avg_rows_f32(const float* x, ptrdiff_t xps, ptrdiff_t xrs, const float* xend,
                                    float* y, ptrdiff_t yps, ptrdiff_t nplanes, ptrdiff_t oh,
                                    ptrdiff_t ow, const int64_t* h0, const int64_t* h1, int sw,
                                    int kw, const double* inv8, const float* div8) {
    #define ADAPOOL_ROWS_CASE(SW, KW) \
        case 8 * SW + KW: return adapool_avg_rows_body(x, xps, xrs, xend, y, yps, nplanes, oh, ow, h0, h1, SW, KW, inv8, div8);
        switch (8 * sw + kw) {
            ADAPOOL_ROWS_CASE(1, 1) ADAPOOL_ROWS_CASE(1, 2) ADAPOOL_ROWS_CASE(1, 3) ADAPOOL_ROWS_CASE(1, 4)
            ADAPOOL_ROWS_CASE(2, 1) ADAPOOL_ROWS_CASE(2, 2) ADAPOOL_ROWS_CASE(2, 3) ADAPOOL_ROWS_CASE(2, 4)
            default: break;   /* _rows_fit admits nothing else */
        }
    #undef ADAPOOL_ROWS_CASE
        return 0;
    }
    /* Max pooling of the same planes (uniform W windows, <= 8 outputs a row), one output row
       per vector: each lane keeps torch's running rule over its window in row-major order,
       take = x > best or x is NaN (the first maximum, the last NaN; best starts at -inf with
       the window's first index, so an all -inf window reports its first element), as
       blends of the element itself (-0.0 and NaN payloads kept) and of its plane index (int32
       lanes: planes below 2^31 elements). Replaces the channels-last tile's two transposes. */
    static inline __attribute__((always_inline)) void adapool_max_take(__m256 v, __m256i at, __m256* best,
                                                                      __m256i* idx, int with_idx) {
        __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, *best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
        *best = _mm256_blendv_ps(*best, v, take);
        if (with_idx)
            *idx = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(*idx), _mm256_castsi256_ps(at), take));
    }
    static inline __attribute__((always_inline)) void adapool_max_row(const float* q, ptrdiff_t at0,
            __m256i jv, int sw, int kw, __m256* best, __m256i* idx, int with_idx) {
        __m256 a, b;
        __m256i base = _mm256_add_epi32(_mm256_set1_epi32((int)at0), jv);
        if (sw == 1) {
            adapool_max_take(_mm256_loadu_ps(q), base, best, idx, with_idx);
            if (kw > 1) adapool_max_take(_mm256_loadu_ps(q + 1), _mm256_add_epi32(base, _mm256_set1_epi32(1)), best, idx, with_idx);
            if (kw > 2) adapool_max_take(_mm256_loadu_ps(q + 2), _mm256_add_epi32(base, _mm256_set1_epi32(2)), best, idx, with_idx);
            if (kw > 3) adapool_max_take(_mm256_loadu_ps(q + 3), _mm256_add_epi32(base, _mm256_set1_epi32(3)), best, idx, with_idx);
            return;
        }
        a = _mm256_loadu_ps(q);
        b = _mm256_loadu_ps(q + 8);
        adapool_max_take(adapool_even_lanes(a, b), base, best, idx, with_idx);
        if (kw > 1) adapool_max_take(adapool_odd_lanes(a, b), _mm256_add_epi32(base, _mm256_set1_epi32(1)), best, idx, with_idx);
        if (kw > 2) {
            a = _mm256_loadu_ps(q + 2);
            b = _mm256_loadu_ps(q + 10);
            adapool_max_take(adapool_even_lanes(a, b), _mm256_add_epi32(base, _mm256_set1_epi32(2)), best, idx, with_idx);
            if (kw > 3) adapool_max_take(adapool_odd_lanes(a, b), _mm256_add_epi32(base, _mm256_set1_epi32(3)), best, idx, with_idx);
        }
    }
    static inline __attribute__((always_inline)) void adapool_max_rows_body(
            const float* x, ptrdiff_t xps, ptrdiff_t xrs, const float* xend, ptrdiff_t W, float* y,
            int64_t* yi, ptrdiff_t yps, ptrdiff_t nplanes, ptrdiff_t oh, ptrdiff_t ow,
            const int64_t* h0, const int64_t* h1, int sw, int kw, int with_idx) {
        float buf[24];
        ptrdiff_t p, i, r;
        ptrdiff_t span = sw == 1 ? kw + 7 : (kw > 2 ? 18 : 16), reach = adapool_rows_reach(h0, h1, oh, xrs, span);
        const float* xp;
        __m256 best;
        __m256i idx, jv;
        int fast;
        /* lane L holds output column j = L (stride 1) or, deinterleaved, 0 1 4 5 2 3 6 7 */
        jv = sw == 1 ? _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7) : _mm256_setr_epi32(0, 2, 8, 10, 4, 6, 12, 14);
        for (p = 0; p < nplanes; p++) {
            xp = x + p * xps;
            fast = xp + reach <= xend;
            for (i = 0; i < oh; i++) {
                best = _mm256_set1_ps(-INFINITY);
                idx = _mm256_add_epi32(_mm256_set1_epi32((int)(h0[i] * W)), jv);
                if (fast)
                    for (r = h0[i]; r < h1[i]; r++)
                        adapool_max_row(xp + r * xrs, r * W, jv, sw, kw, &best, &idx, with_idx);
                else
                    for (r = h0[i]; r < h1[i]; r++)
                        adapool_max_row(adapool_safe_span(xp + r * xrs, span, xend, buf), r * W, jv, sw, kw,
                                        &best, &idx, with_idx);
                if (sw == 2) {
                    best = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(best), _MM_SHUFFLE(3, 1, 2, 0)));
                    idx = _mm256_permute4x64_epi64(idx, _MM_SHUFFLE(3, 1, 2, 0));
                }
                adapool_store_row_f32(y + p * yps + i * ow, best, i, oh, ow);
                if (with_idx)
                    adapool_store_row_i64(yi + p * yps + i * ow, idx, i, oh, ow);
            }
        }
    }
    static void adapool_max_rows_f32(const float* x, ptrdiff_t xps, ptrdiff_t xrs, const float* xend,
                                     ptrdiff_t W, float* y, int64_t* yi, ptrdiff_t yps, ptrdiff_t nplanes,
                                     ptrdiff_t oh, ptrdiff_t ow, const int64_t* h0, const int64_t* h1,
                                     int sw, int kw) {
    #define ADAPOOL_MAX_ROWS_CASE(SW, KW) \
        case 8 * SW + KW: \
            if (yi) adapool_max_rows_body(x, xps, xrs, xend, W, y, yi, yps, nplanes, oh, ow, h0, h1, SW, KW, 1); \
            else adapool_max_rows_body(x, xps, xrs, xend, W, y, yi, yps, nplanes, oh, ow, h0, h1, SW, KW, 0); \
            break;
        switch (8 * sw + kw) {
            ADAPOOL_MAX_ROWS_CASE(1, 1) ADAPOOL_MAX_ROWS_CASE(1, 2) ADAPOOL_MAX_ROWS_CASE(1, 3) ADAPOOL_MAX_ROWS_CASE(1, 4)
            ADAPOOL_MAX_ROWS_CASE(2, 1) ADAPOOL_MAX_ROWS_CASE(2, 2) ADAPOOL_MAX_ROWS_CASE(2, 3) ADAPOOL_MAX_ROWS_CASE(2, 4)
            default: break;   /* _rows_fit admits nothing else */
        }
    #undef ADAPOOL_MAX_ROWS_CASE
    }
    /* The maximum of v's eight lanes in every lane (NaN-free v; a zero's sign is either's). */
    static inline __m256 adapool_hmax8(__m256 v) {
        v = _mm256_max_ps(v, _mm256_permute2f128_ps(v, v, 1));
        v = _mm256_max_ps(v, _mm256_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
        return _mm256_max_ps(v, _mm256_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1)));
    }
    /* Global max of one dense plane of P >= 8 floats: torch's pick, the plane
       index of the last NaN or else of the first maximum (the first element if all are
       -inf). Two passes over the plane (from L1 the second time): the maximum by two
       independent chains of vector max (exact without NaN, a zero's sign aside, which ==
       ignores), then the first element equal to it, 64 elements a step from the compare
       masks' bits. A plane holding NaN is scanned again by torch's rule, element by element.
       Replaces the channels-last tile's transposes for 7x7 planes (6.3x one read of the input). */
    static inline __attribute__((always_inline)) ptrdiff_t adapool_max_plane_body(const float* p, ptrdiff_t P) {
        ptrdiff_t n8 = P & ~(ptrdiff_t)7, i, j, pick;
        __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0, un = _mm256_setzero_ps(), a, c, mv;
        uint64_t bits;
        float v, m;
        for (i = 0; i + 16 <= n8; i += 16) {
            a = _mm256_loadu_ps(p + i);
            c = _mm256_loadu_ps(p + i + 8);
            m0 = _mm256_max_ps(m0, a);
            m1 = _mm256_max_ps(m1, c);
            un = _mm256_or_ps(un, _mm256_cmp_ps(a, c, _CMP_UNORD_Q));
        }
        if (i < n8) {
            a = _mm256_loadu_ps(p + i);
            m0 = _mm256_max_ps(m0, a);
            un = _mm256_or_ps(un, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
        }
        m = _mm256_cvtss_f32(adapool_hmax8(_mm256_max_ps(m0, m1)));
        for (i = n8; i < P; i++) {
            v = p[i];
            m = v > m ? v : m;
            if (v != v) un = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
        }
        if (_mm256_movemask_ps(un)) {   /* NaN somewhere: torch's rule, one by one */
            pick = 0;
            m = -INFINITY;
            for (i = 0; i < P; i++) {
                v = p[i];
                if (v > m || v != v) {
                    m = v;
                    pick = i;
                }
            }
            return pick;
        }
        mv = _mm256_set1_ps(m);
        for (i = 0; i < n8; i += 64) {
            bits = 0;
            for (j = 0; j < 8 && i + 8 * j < n8; j++)
                bits |= (uint64_t)(unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p + i + 8 * j), mv, _CMP_EQ_OQ)) << (8 * j);
            if (bits)
                return i + __builtin_ctzll(bits);
        }
        for (i = n8; i < P; i++)
            if (p[i] == m)
                return i;
        return 0;   /* not reached: some element equals the maximum */
    }
    static ptrdiff_t adapool_max_plane_f32(const float* p, ptrdiff_t P) {
        /* common plane sizes as constants: gcc unrolls their loops (7x7: 10 -> 7 ns a plane) */
        switch (P) {
            case 16: return adapool_max_plane_body(p, 16);
            case 25: return adapool_max_plane_body(p, 25);
            case 36: return adapool_max_plane_body(p, 36);
            case 49: return adapool_max_plane_body(p, 49);
            case 64: return adapool_max_plane_body(p, 64);
            case 81: return adapool_max_plane_body(p, 81);
            case 100: return adapool_max_plane_body(p, 100);
            default: return adapool_max_plane_body(p, P);
        }
    }
    /* The planar max kernel's pick for a window at most 8 columns wide (float32): colmax and
       colrow hold each column's maximum and the row of its first maximum (torch's rule per
       column); lanes from w0, kw of them valid (the scratch has 8 lanes of room past W). The
       column of torch's pick (the earliest row among the columns holding the window's
       maximum, then the leftmost) with its row in *row, or -1 when a column holds NaN. */
    static inline ptrdiff_t adapool_pick8_f32(const float* colmax, const int32_t* colrow, ptrdiff_t w0,
                                              int kw, int32_t* row) {
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        __m256 valid = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(kw), lane));
        __m256 v = _mm256_loadu_ps(colmax + w0), m, eq;
        __m256i r = _mm256_loadu_si256((const __m256i*)(colrow + w0)), rr;
        if (_mm256_movemask_ps(_mm256_and_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), valid)))
            return -1;
        v = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), v, valid);
        m = adapool_hmax8(v);
        eq = _mm256_and_ps(_mm256_cmp_ps(v, m, _CMP_EQ_OQ), valid);   /* all -inf: every valid lane */
        rr = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)),
                                                  _mm256_castsi256_ps(r), eq));
        rr = _mm256_min_epi32(rr, _mm256_permute2x128_si256(rr, rr, 1));
        rr = _mm256_min_epi32(rr, _mm256_shuffle_epi32(rr, _MM_SHUFFLE(1, 0, 3, 2)));
        rr = _mm256_min_epi32(rr, _mm256_shuffle_epi32(rr, _MM_SHUFFLE(2, 3, 0, 1)));
        *row = _mm256_cvtsi256_si32(rr);
        eq = _mm256_and_ps(eq, _mm256_castsi256_ps(_mm256_cmpeq_epi32(r, rr)));
        return w0 + __builtin_ctz((unsigned)_mm256_movemask_ps(eq));
    }
    /* One output row of _avg_fwd_planar's row-sum branch where every W window starts at a
       multiple of 8 columns and is a multiple of 8 wide (adaptive 56 -> 7, 112 -> 7), with the
       same additions in the same order, so the same bits as _sum_rows and _sum_span: per
       column a float32 sum over the window rows from 0, rows in order, flushed into a float64
       sum (from 0) every _F32_FLUSH (16) rows; per window its columns in four float64 chains
       from 0 (column w0 + j into chain j % 4, in column order), (c0 + c1) + (c2 + c3); times
       1 / divisor, rounded once. The float32 sums of up to 112 columns (ADAPOOL_ROW8_MAX
       vectors; wider rows in blocks of that many) stay in registers across
       the rows (_sum_rows keeps them in memory: a load and a store per vector and row), each
       row read in address order as _sum_rows reads it (walking down one window's rows at a
       time was 1.3-2x slower on DRAM-resident planes), and the windows' chains run as vectors.
       stream: the input is larger than the last-level cache; each row then also asks for the
       same columns kh rows on (the next output row's, where windows tile the plane). Without
       it this was 13-15% slower than _sum_rows on (4,512,112,112) -> 7, with it on
       cache-resident inputs up to 25% slower than without. acc: float64 scratch for columns
       [0, w1 max). */
    #define ADAPOOL_ROW8_MAX 14   /* vectors of float32 sums held across the rows (of 16 registers) */
    static inline __attribute__((always_inline)) void adapool_colsums8_body(
            const float* first_row, ptrdiff_t kd, ptrdiff_t ds, ptrdiff_t kh, ptrdiff_t hs, ptrdiff_t c0,
            double* acc, int stream, const int NB) {
        __m256 f[14];
        ptrdiff_t id, ih, pending = 0;
        int b;
        const float* r;
        for (b = 0; b < NB; b++) {
            f[b] = _mm256_setzero_ps();
            _mm256_storeu_pd(acc + c0 + 8 * b, _mm256_setzero_pd());
            _mm256_storeu_pd(acc + c0 + 8 * b + 4, _mm256_setzero_pd());
        }
        for (id = 0; id < kd; id++)
            for (ih = 0; ih < kh; ih++) {
                r = first_row + id * ds + ih * hs + c0;
                for (b = 0; b < NB; b++) {
                    if (stream && b % 2 == 0)   /* the next output row's lines (see above) */
                        _mm_prefetch((const char*)(r + kh * hs + 8 * b), _MM_HINT_T0);
                    f[b] = _mm256_add_ps(f[b], _mm256_loadu_ps(r + 8 * b));
                }
                if (++pending == 16 || (id == kd - 1 && ih == kh - 1)) {
                    for (b = 0; b < NB; b++) {
                        _mm256_storeu_pd(acc + c0 + 8 * b, _mm256_add_pd(_mm256_loadu_pd(acc + c0 + 8 * b),
                                         _mm256_cvtps_pd(_mm256_castps256_ps128(f[b]))));
                        _mm256_storeu_pd(acc + c0 + 8 * b + 4, _mm256_add_pd(_mm256_loadu_pd(acc + c0 + 8 * b + 4),
                                         _mm256_cvtps_pd(_mm256_extractf128_ps(f[b], 1))));
                        f[b] = _mm256_setzero_ps();
                    }
                    pending = 0;
                }
            }
    }
    static void adapool_avg_row8_f32(const float* first_row, ptrdiff_t kd, ptrdiff_t ds, ptrdiff_t kh,
                                     ptrdiff_t hs, const int64_t* w0, const int64_t* w1, ptrdiff_t ow,
                                     const double* inv, float* out, ptrdiff_t os, double* acc, int stream) {
        ptrdiff_t o, c, lo = w0[0], hi = w1[0];
        __m256d chains, t;
        for (o = 1; o < ow; o++) {
            lo = w0[o] < lo ? w0[o] : lo;
            hi = w1[o] > hi ? w1[o] : hi;
        }
        for (c = lo; c < hi; c += 8 * ADAPOOL_ROW8_MAX) {
            /* a constant NB per case, so that the body's vectors unroll into registers */
    #define ADAPOOL_COLSUMS_CASE(NB) \
            case NB: adapool_colsums8_body(first_row, kd, ds, kh, hs, c, acc, stream, NB); break;
            switch ((hi - c) >= 8 * ADAPOOL_ROW8_MAX ? ADAPOOL_ROW8_MAX : (int)((hi - c) / 8)) {
                ADAPOOL_COLSUMS_CASE(14) ADAPOOL_COLSUMS_CASE(13) ADAPOOL_COLSUMS_CASE(12) ADAPOOL_COLSUMS_CASE(11)
                ADAPOOL_COLSUMS_CASE(10) ADAPOOL_COLSUMS_CASE(9) ADAPOOL_COLSUMS_CASE(8) ADAPOOL_COLSUMS_CASE(7)
                ADAPOOL_COLSUMS_CASE(6) ADAPOOL_COLSUMS_CASE(5) ADAPOOL_COLSUMS_CASE(4) ADAPOOL_COLSUMS_CASE(3)
                ADAPOOL_COLSUMS_CASE(2)
                default: adapool_colsums8_body(first_row, kd, ds, kh, hs, c, acc, stream, 1); break;
            }
    #undef ADAPOOL_COLSUMS_CASE
        }
        for (o = 0; o < ow; o++) {
            chains = _mm256_setzero_pd();
            for (c = w0[o]; c < w1[o]; c += 8)   /* columns c..c+3 into chains 0-3, then c+4..c+7 */
                chains = _mm256_add_pd(_mm256_add_pd(chains, _mm256_loadu_pd(acc + c)), _mm256_loadu_pd(acc + c + 4));
            t = _mm256_hadd_pd(chains, chains);   /* (c0 + c1, c0 + c1, c2 + c3, c2 + c3) */
            out[o * os] = (float)((_mm_cvtsd_f64(_mm256_castpd256_pd128(t))
                                   + _mm_cvtsd_f64(_mm256_extractf128_pd(t, 1))) * inv[o]);
        }
    }
    /* _max_fwd_planar's column pass for float32 2-d windows on rows of 8 * NB columns (NB <= 7):
       per column torch's rule over the window's rows in order (take = x > max or x is NaN; the
       first row initialises), each column's maximum and the row that set it kept in registers
       across the rows instead of in memory; stored to colmax / colrow once. */
    static inline __attribute__((always_inline)) void adapool_colmax8_body(
            const float* first_row, ptrdiff_t kh, ptrdiff_t hs, int32_t h0, float* colmax, int32_t* colrow,
            const int NB) {
        __m256 m[7], v, take;
        __m256i r[7], at;
        ptrdiff_t ih;
        int b;
        for (b = 0; b < NB; b++) {
            m[b] = _mm256_loadu_ps(first_row + 8 * b);
            r[b] = _mm256_set1_epi32(h0);
        }
        for (ih = 1; ih < kh; ih++) {
            at = _mm256_set1_epi32(h0 + (int32_t)ih);
            for (b = 0; b < NB; b++) {
                v = _mm256_loadu_ps(first_row + ih * hs + 8 * b);
                take = _mm256_or_ps(_mm256_cmp_ps(v, m[b], _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
                m[b] = _mm256_blendv_ps(m[b], v, take);
                r[b] = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(r[b]), _mm256_castsi256_ps(at), take));
            }
        }
        for (b = 0; b < NB; b++) {
            _mm256_storeu_ps(colmax + 8 * b, m[b]);
            _mm256_storeu_si256((__m256i*)(colrow + 8 * b), r[b]);
        }
    }
    static void adapool_colmax8_f32(const float* first_row, ptrdiff_t kh, ptrdiff_t hs, int32_t h0,
                                    ptrdiff_t W, float* colmax, int32_t* colrow) {
        /* a constant NB per case, so that the body's vectors unroll into registers */
    #define ADAPOOL_COLMAX_CASE(NB) \\
            case NB: adapool_colmax8_body(first_row, kh, hs, h0, colmax, colrow, NB); break;
        switch (W / 8) {
            ADAPOOL_COLMAX_CASE(7) ADAPOOL_COLMAX_CASE(6) ADAPOOL_COLMAX_CASE(5)
            ADAPOOL_COLMAX_CASE(4) ADAPOOL_COLMAX_CASE(3)
            default: adapool_colmax8_body(first_row, kh, hs, h0, colmax, colrow, 2); break;
        }
    #undef ADAPOOL_COLMAX_CASE
    }
    /* 8 outputs of adapool_avg_wide_f32 whose whole windows start at q, sw apart, kw columns
       wide (each window row's loads read span floats from q: see adapool_avg_wide_body):
       adapool_add_row per window row, the sums put in column order, times inv[0..8) in
       float64 and rounded once, or divided by divf[0..8) in float32 where the caller has the
       divisors as floats (1 <= divisor <= 2^24: one correctly rounded division, the same bits;
       see _run), stored os apart. Returns nonzero if a sum came out inf or NaN. */
    static inline __attribute__((always_inline)) int adapool_avg_wide_block8(
            const float* q, ptrdiff_t kd, ptrdiff_t ds, ptrdiff_t kh, ptrdiff_t hs,
            const double* inv, const float* divf, float* out, ptrdiff_t os, int sw, int kw) {
        __m256 acc = _mm256_setzero_ps(), v;
        ptrdiff_t id, ih, c;
        for (id = 0; id < kd; id++)
            for (ih = 0; ih < kh; ih++)
                acc = adapool_add_row(acc, q + id * ds + ih * hs, sw, kw);
        if (sw == 2)
            acc = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(acc), _MM_SHUFFLE(3, 1, 2, 0)));
        v = divf != NULL ? _mm256_div_ps(acc, _mm256_loadu_ps(divf))
                         : adapool_scale8(acc, _mm256_loadu_pd(inv), _mm256_loadu_pd(inv + 4));
        if (os == 1) {
            _mm256_storeu_ps(out, v);
        } else {
            float lane[8];
            _mm256_storeu_ps(lane, v);
            for (c = 0; c < 8; c++) out[c * os] = lane[c];
        }
        return adapool_nonfinite_mask8(acc);
    }
    /* Average pooling of small dense float32 planes, eight at a time, whatever their windows
       (each at most _F32_FLUSH pixels): the eight planes (channels c..c+7 of one image) are
       transposed into a channels-last tile of eight lanes (adapool_tile_f32), each output adds
       its window's pixels up in float32 from +0.0, rows outer and columns inner (the
       channels-last kernel's order and bits), times its float64 1 / divisor, rounded once
       (or divided by divf[o], the same bits: see adapool_avg_wide_block8), and the output
       tile goes back transposed. The general small-plane tile (blocks of up to
       128 channels through _avg_fwd_cl) spent 2-3x the channels-last kernel's time on 7x7
       planes in its two transposes and per-tile set-up.
       offs: K tile offsets (floats) per output, its window's pixels in row-major order, then
       the offset of a zero vector for a window of fewer than K pixels: +0.0 added to a sum
       that starts at +0.0 changes no bit (the sum is never -0.0), so every output runs one
       unrolled chain of K adds and consecutive outputs' chains overlap. nplanes <= 8 (lanes
       past it are computed and dropped). tile: P * 8 floats then the zero vector, otile:
       O * 8, both 32-byte aligned. Returns whether a kept sum came out inf or NaN (redone by
       _f32_repair_all). */
    static inline __attribute__((always_inline)) int adapool_avg_planes8_body(
            const float* tile, float* otile, ptrdiff_t O, const int32_t* offs, const double* inv,
            const float* divf, int nplanes, const int K) {
        __m256 acc;
        __m256d v;
        __m256i bad = _mm256_setzero_si256();
        ptrdiff_t o;
        int m;
        for (o = 0; o < O; o++, offs += K) {
            acc = _mm256_setzero_ps();
            for (m = 0; m < K; m++)
                acc = _mm256_add_ps(acc, _mm256_load_ps(tile + offs[m]));
            bad = _mm256_or_si256(bad, adapool_nonfinite8(_mm256_castps_si256(acc)));
            if (divf != NULL) {   /* the same bits (see adapool_avg_wide_block8) */
                _mm256_store_ps(otile + o * 8, _mm256_div_ps(acc, _mm256_broadcast_ss(divf + o)));
            } else {
                v = _mm256_broadcast_sd(inv + o);
                _mm256_store_ps(otile + o * 8, adapool_scale8(acc, v, v));
            }
        }
        return (_mm256_movemask_ps(_mm256_castsi256_ps(bad)) & ((1 << nplanes) - 1)) != 0;
    }
    static int adapool_avg_planes8_f32(const float* x, ptrdiff_t xps, int nplanes, ptrdiff_t P,
                                       float* y, ptrdiff_t yps, ptrdiff_t O, int K,
                                       const int32_t* offs, const double* inv, const float* divf,
                                       float* tile, float* otile) {
        int bad;
        adapool_tile_f32(x, xps, P, nplanes, tile, 8);
        switch (K) {
    #define ADAPOOL_PLANES8_CASE(KK) case KK: bad = adapool_avg_planes8_body(tile, otile, O, offs, inv, divf, nplanes, KK); break;
            ADAPOOL_PLANES8_CASE(1) ADAPOOL_PLANES8_CASE(2) ADAPOOL_PLANES8_CASE(3) ADAPOOL_PLANES8_CASE(4)
            ADAPOOL_PLANES8_CASE(5) ADAPOOL_PLANES8_CASE(6) ADAPOOL_PLANES8_CASE(7) ADAPOOL_PLANES8_CASE(8)
            ADAPOOL_PLANES8_CASE(9) ADAPOOL_PLANES8_CASE(10) ADAPOOL_PLANES8_CASE(11) ADAPOOL_PLANES8_CASE(12)
            ADAPOOL_PLANES8_CASE(13) ADAPOOL_PLANES8_CASE(14) ADAPOOL_PLANES8_CASE(15) ADAPOOL_PLANES8_CASE(16)
    #undef ADAPOOL_PLANES8_CASE
            default: bad = adapool_avg_planes8_body(tile, otile, O, offs, inv, divf, nplanes, K); break;
        }
        adapool_tile_f32(otile, 8, nplanes, O, y, yps);
        return bad;
    }
    #else
    #define ADAPOOL_HAS_ROWS 0
    static int adapool_avg_planes8_f32(const float* x, ptrdiff_t xps, int nplanes, ptrdiff_t P,
                                       float* y, ptrdiff_t yps, ptrdiff_t O, int K,
                                       const int32_t* offs, const double* inv, const float* divf,
                                       float* tile, float* otile) {
        /* never called: ADAPOOL_HAS_ROWS is 0 */
        (void)x; (void)xps; (void)nplanes; (void)P; (void)y; (void)yps; (void)O; (void)K;
        (void)offs; (void)inv; (void)divf; (void)tile; (void)otile;
        return 0;
    }
    static inline ptrdiff_t adapool_pick8_f32(const float* colmax, const int32_t* colrow, ptrdiff_t w0,
                                              int kw, int32_t* row) {
        (void)colmax; (void)colrow; (void)w0; (void)kw; (void)row;   /* never called: ADAPOOL_HAS_ROWS is 0 */
        return -1;
    }
    static ptrdiff_t adapool_max_plane_f32(const float* p, ptrdiff_t P) {
        (void)p; (void)P;   /* never called: ADAPOOL_HAS_ROWS is 0 */
        return 0;
    }
    static void adapool_max_rows_f32(const float* x, ptrdiff_t xps, ptrdiff_t xrs, const float* xend,
                                     ptrdiff_t W, float* y, int64_t* yi, ptrdiff_t yps, ptrdiff_t nplanes,
                                     ptrdiff_t oh, ptrdiff_t ow, const int64_t* h0, const int64_t* h1,
                                     int sw, int kw) {
        /* never called: ADAPOOL_HAS_ROWS is 0 */
        (void)x; (void)xps; (void)xrs; (void)xend; (void)W; (void)y; (void)yi; (void)yps;
        (void)nplanes; (void)oh; (void)ow; (void)h0; (void)h1; (void)sw; (void)kw;
    }
    static void adapool_colmax8_f32(const float* first_row, ptrdiff_t kh, ptrdiff_t hs, int32_t h0,
                                    ptrdiff_t W, float* colmax, int32_t* colrow) {
        /* never called: ADAPOOL_HAS_ROWS is 0 */
        (void)first_row; (void)kh; (void)hs; (void)h0; (void)W; (void)colmax; (void)colrow;
    }
    /* The same 8 outputs without AVX2 (the baseline build): plain loops, each output's
       additions in the same order, so both builds give the same bits. */
    ADAPOOL_ALWAYS_INLINE int adapool_avg_wide_block8(const float* q, ptrdiff_t kd, ptrdiff_t ds,
                                                      ptrdiff_t kh, ptrdiff_t hs, const double* inv,
                                                      const float* divf, float* out, ptrdiff_t os,
                                                      int sw, int kw) {
        float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
        ptrdiff_t id, ih, c, t;
        (void)divf;   /* times inv in float64: the same bits as a division by divf */
        int nonfinite = 0;
        for (id = 0; id < kd; id++)
            for (ih = 0; ih < kh; ih++) {
                const float* r = q + id * ds + ih * hs;
                for (c = 0; c < kw; c++)
                    for (t = 0; t < 8; t++) acc[t] += r[sw * t + c];
            }
        for (t = 0; t < 8; t++) {
            out[t * os] = (float)((double)acc[t] * inv[t]);
            nonfinite |= !(acc[t] - acc[t] == 0.0f);
        }
        return nonfinite;
    }
    static void adapool_avg_row8_f32(const float* first_row, ptrdiff_t kd, ptrdiff_t ds, ptrdiff_t kh,
                                     ptrdiff_t hs, const int64_t* w0, const int64_t* w1, ptrdiff_t ow,
                                     const double* inv, float* out, ptrdiff_t os, double* acc, int stream) {
        /* never called: ADAPOOL_HAS_ROWS is 0 */
        (void)first_row; (void)kd; (void)ds; (void)kh; (void)hs; (void)w0; (void)w1; (void)ow;
        (void)inv; (void)out; (void)os; (void)acc; (void)stream;
    }
    static int adapool_avg_rows_f32(const float* x, ptrdiff_t xps, ptrdiff_t xrs, const float* xend,
                                     float* y, ptrdiff_t yps, ptrdiff_t nplanes, ptrdiff_t oh,
                                     ptrdiff_t ow, const int64_t* h0, const int64_t* h1, int sw,
                                     int kw, const double* inv8, const float* div8) {
        /* never called: ADAPOOL_HAS_ROWS is 0 */
        (void)x; (void)xps; (void)xrs; (void)xend; (void)y; (void)yps; (void)nplanes; (void)oh;
        (void)ow; (void)h0; (void)h1; (void)sw; (void)kw; (void)inv8; (void)div8;
        return 0;
    }
    #endif
    /* One output row of a plane whose windows are at most 16 pixels (both builds): outputs
       [jlo, jhi) have whole windows of kw columns starting at sw * j - pw, 8 of them a block
       (adapool_avg_wide_block8); the others, and a last block whose loads would pass the row's
       W floats, one at a time. Rows: kd x kh of them, ds and hs apart. Each output sums its
       window's pixels in row-major order in float32 from +0.0 (the channels-last kernels'
       order), times its float64 1 / divisor inv[j], rounded once. Returns whether a sum came
       out inf or NaN (redone by _f32_repair_all). */
    ADAPOOL_ALWAYS_INLINE int adapool_avg_wide_body(
            const float* first_row, ptrdiff_t kd, ptrdiff_t ds, ptrdiff_t kh, ptrdiff_t hs,
            ptrdiff_t W, const int64_t* w0, const int64_t* w1, ptrdiff_t ow, ptrdiff_t pw,
            ptrdiff_t jlo, ptrdiff_t jhi, const double* inv, const float* divf, float* out, ptrdiff_t os,
            int sw, int kw) {
        const ptrdiff_t span = ADAPOOL_ROW_SPAN(sw, kw);
        ptrdiff_t j = 0, jb;
        int nonfinite = 0;
        while (j < ow) {
            /* fewer than 8 whole windows left: the block that ends at jhi, its first outputs
               computed again (the same bits) */
            jb = j + 8 <= jhi ? j : jhi - 8;
            if (j >= jlo && j < jhi && jb >= jlo && sw * jb - pw + span <= W) {
                nonfinite |= adapool_avg_wide_block8(first_row + sw * jb - pw, kd, ds, kh, hs, inv + jb,
                                                     divf != NULL ? divf + jb : NULL, out + jb * os, os, sw, kw);
                j = jb + 8;
            } else {
                nonfinite |= adapool_avg_wide_one(first_row, kd, ds, kh, hs, w0[j], w1[j], inv[j], out + j * os);
                j++;
            }
        }
        return nonfinite != 0;
    }
    static int adapool_avg_wide_f32(const float* first_row, ptrdiff_t kd, ptrdiff_t ds, ptrdiff_t kh,
                                    ptrdiff_t hs, ptrdiff_t W, const int64_t* w0, const int64_t* w1,
                                    ptrdiff_t ow, ptrdiff_t pw, ptrdiff_t jlo, ptrdiff_t jhi,
                                    const double* inv, const float* divf, float* out, ptrdiff_t os,
                                    int sw, int kw) {
    #define ADAPOOL_WIDE_CASE(SW, KW) \
        case 8 * SW + KW: return adapool_avg_wide_body(first_row, kd, ds, kh, hs, W, w0, w1, ow, pw, jlo, jhi, inv, divf, out, os, SW, KW);
        switch (8 * sw + kw) {
            ADAPOOL_WIDE_CASE(1, 1) ADAPOOL_WIDE_CASE(1, 2) ADAPOOL_WIDE_CASE(1, 3) ADAPOOL_WIDE_CASE(1, 4)
            ADAPOOL_WIDE_CASE(2, 1) ADAPOOL_WIDE_CASE(2, 2) ADAPOOL_WIDE_CASE(2, 3) ADAPOOL_WIDE_CASE(2, 4)
            default: break;
        }
    #undef ADAPOOL_WIDE_CASE
        /* other strides and widths: every output one at a time (jlo = jhi = 0) */
        return adapool_avg_wide_body(first_row, kd, ds, kh, hs, W, w0, w1, ow, pw, 0, 0, inv, divf, out, os, 1, 1);
    }

    /* float32 inf or NaN: an exponent of all ones, tested on the integer bits (one value, or
       eight lanes, all ones where so), so OR reductions of it vectorise without reassociating
       float arithmetic. */
    static inline uint32_t adapool_nonfinite_bits(uint32_t b) {
        return (uint32_t)((b & 0x7f800000u) == 0x7f800000u);
    }
    /* Whether any of a[0..n) is inf or NaN (AVX2: 8 lanes a step; the plain loop ran ~3x
       slower, unvectorised). */
    static inline int adapool_any_nonfinite_f32(const float* a, ptrdiff_t n) {
        uint32_t any = 0, b;
        ptrdiff_t k = 0;
    #if defined(__AVX2__)
        __m256i acc = _mm256_setzero_si256();
        for (; k + 8 <= n; k += 8)
            acc = _mm256_or_si256(acc, adapool_nonfinite8(_mm256_loadu_si256((const __m256i*)(a + k))));
        any = (uint32_t)_mm256_movemask_epi8(acc);
    #endif
        for (; k < n; k++) {
            memcpy(&b, a + k, sizeof b);
            any |= adapool_nonfinite_bits(b);
        }
        return any != 0;
    }
    static inline void adapool_flag(int* f) { if (f) __atomic_store_n(f, 1, __ATOMIC_RELAXED); }
    /* out[k] = (float)((double)s[k] * inv) for k < n, the same rounding as the scalar loop,
       with streaming (non-temporal) stores: a large output then neither reads its lines from
       memory before writing them nor evicts the input from the cache on its way out. Whole
       64-byte lines only; the partial lines at either end take plain stores.
       adapool_stream_fence() orders the streamed stores before the caller's range is done. */
    static void adapool_stream_means_f32(const float* s, double inv, float* out, ptrdiff_t n) {
        ptrdiff_t k = 0;
    #if defined(__AVX__) || defined(__SSE2__)
        ptrdiff_t h;
        for (; k < n && ((uintptr_t)(out + k) & 63); k++) out[k] = (float)((double)s[k] * inv);
        for (; k + 16 <= n; k += 16) {
    #if defined(__AVX__)
            __m256d iv = _mm256_set1_pd(inv);
            for (h = 0; h < 16; h += 8)
                _mm256_stream_ps(out + k + h, adapool_scale8(_mm256_loadu_ps(s + k + h), iv, iv));
    #else
            __m128d iv = _mm_set1_pd(inv);
            for (h = 0; h < 16; h += 4) {
                __m128 v = _mm_loadu_ps(s + k + h);
                __m128 lo = _mm_cvtpd_ps(_mm_mul_pd(_mm_cvtps_pd(v), iv));
                __m128 hi = _mm_cvtpd_ps(_mm_mul_pd(_mm_cvtps_pd(_mm_movehl_ps(v, v)), iv));
                _mm_stream_ps(out + k + h, _mm_movelh_ps(lo, hi));
            }
    #endif
        }
    #endif
        for (; k < n; k++) out[k] = (float)((double)s[k] * inv);
    }
    static inline void adapool_stream_fence(void) {
    #if defined(__SSE2__) || defined(__AVX__)
        _mm_sfence();
    #endif
    }
    /* The whole-pixel walk's last pixel of a float32 window that never flushed, added with
       the store: out[k] = (float)((double)(fa[k] + p[k]) * inv) (first: +0.0 + p[k], a
       one-pixel window), the scalar loops' operations per lane, so their bits; returns whether
       any sum was inf or NaN (the caller's float64 redo), tested in the same pass. The row of
       sums is then neither stored for the last pixel nor read twice more (store, then scan):
       avg_pool2d(3,2,1) channels-last (4,512,56,56) 0.84-0.89x the time. AVX2 builds only. */
    #if defined(__AVX__) && defined(__AVX2__)
    #define ADAPOOL_FUSED_LAST 1
    static int adapool_last_pixel_f32(const float* p, const float* fa, ptrdiff_t n, int first,
                                      double inv, float* out) {
        ptrdiff_t k = 0;
        uint32_t any = 0, b;
        float v;
        __m256d iv = _mm256_set1_pd(inv);
        __m256i acc = _mm256_setzero_si256();
        for (; k + 8 <= n; k += 8) {
            __m256 s = _mm256_add_ps(first ? _mm256_setzero_ps() : _mm256_loadu_ps(fa + k), _mm256_loadu_ps(p + k));
            acc = _mm256_or_si256(acc, adapool_nonfinite8(_mm256_castps_si256(s)));
            _mm256_storeu_ps(out + k, adapool_scale8(s, iv, iv));
        }
        any = (uint32_t)_mm256_movemask_epi8(acc);
        for (; k < n; k++) {
            v = (first ? 0.0f : fa[k]) + p[k];
            memcpy(&b, &v, sizeof b);
            any |= adapool_nonfinite_bits(b);
            out[k] = (float)((double)v * inv);
        }
        return any != 0;
    }
    #else
    #define ADAPOOL_FUSED_LAST 0
    /* (never called: the caller checks ADAPOOL_FUSED_LAST) */
    static int adapool_last_pixel_f32(const float* p, const float* fa, ptrdiff_t n, int first,
                                      double inv, float* out) { return 0; }
    #endif
    static inline int adapool_any_nonfinite_f64(const double* a, ptrdiff_t n) {
        uint64_t any = 0, b;
        ptrdiff_t k = 0;
    #if defined(__AVX2__)
        __m256i e = _mm256_set1_epi64x(0x7ff0000000000000ll), acc = _mm256_setzero_si256();
        for (; k + 4 <= n; k += 4)
            acc = _mm256_or_si256(acc, _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_loadu_si256((const __m256i*)(a + k)), e), e));
        any = (uint64_t)(uint32_t)_mm256_movemask_epi8(acc);
    #endif
        for (; k < n; k++) {
            memcpy(&b, a + k, sizeof b);
            any |= (uint64_t)((b & 0x7ff0000000000000ull) == 0x7ff0000000000000ull);
        }
        return any != 0;
    }

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
    int64_t adapool_now_ns() noexcept nogil
    int adapool_serial_now() noexcept nogil
    void adapool_note_parallel(int contended) noexcept nogil
    int adapool_skewed(const int64_t* stamps, int n) noexcept nogil
    void adapool_reset_contention() noexcept nogil
    int64_t adapool_serial_left_ns() noexcept nogil
    int64_t adapool_backoff_ns() noexcept nogil
    double adapool_half_to_double(unsigned short h) noexcept nogil
    void adapool_tile_f32(const float* src, Py_ssize_t cs, Py_ssize_t n, Py_ssize_t cl,
                          float* t, Py_ssize_t tb) noexcept nogil
    void adapool_tile_b64(const double* src, Py_ssize_t cs, Py_ssize_t n, Py_ssize_t cl,
                          double* t, Py_ssize_t tb) noexcept nogil
    unsigned short adapool_double_to_half(double d) noexcept nogil
    bint ADAPOOL_HAS_SUMS4
    void adapool_sums4_f32(const float* p, Py_ssize_t ps, Py_ssize_t P, double* out) noexcept nogil
    void adapool_means4_f32(const float* p, Py_ssize_t ps, Py_ssize_t P, double inv, float* y) noexcept nogil
    bint ADAPOOL_HAS_ROWS
    int adapool_any_nonfinite_f32(const float* a, Py_ssize_t n) noexcept nogil
    int adapool_any_nonfinite_f64(const double* a, Py_ssize_t n) noexcept nogil
    bint ADAPOOL_FUSED_LAST
    int adapool_last_pixel_f32(const float* p, const float* fa, Py_ssize_t n, int first, double inv,
                               float* out) noexcept nogil
    void adapool_flag(int* f) noexcept nogil
    void adapool_stream_means_f32(const float* s, double inv, float* out, Py_ssize_t n) noexcept nogil
    void adapool_stream_fence() noexcept nogil
    Py_ssize_t adapool_max_plane_f32(const float* p, Py_ssize_t P) noexcept nogil
    Py_ssize_t adapool_pick8_f32(const float* colmax, const int32_t* colrow, Py_ssize_t w0, int kw,
                                 int32_t* row) noexcept nogil
    void adapool_max_rows_f32(const float* x, Py_ssize_t xps, Py_ssize_t xrs, const float* xend,
                              Py_ssize_t W, float* y, int64_t* yi, Py_ssize_t yps, Py_ssize_t nplanes,
                              Py_ssize_t oh, Py_ssize_t ow, const int64_t* h0, const int64_t* h1,
                              int sw, int kw) noexcept nogil
    void adapool_colmax8_f32(const float* first_row, Py_ssize_t kh, Py_ssize_t hs, int32_t h0,
                             Py_ssize_t W, float* colmax, int32_t* colrow) noexcept nogil
    int adapool_avg_wide_f32(const float* first_row, Py_ssize_t kd, Py_ssize_t ds, Py_ssize_t kh,
                             Py_ssize_t hs, Py_ssize_t W, const int64_t* w0, const int64_t* w1,
                             Py_ssize_t ow, Py_ssize_t pw, Py_ssize_t jlo, Py_ssize_t jhi,
                             const double* inv, const float* divf, float* out, Py_ssize_t os,
                             int sw, int kw) noexcept nogil
    void adapool_avg_row8_f32(const float* first_row, Py_ssize_t kd, Py_ssize_t ds, Py_ssize_t kh,
                              Py_ssize_t hs, const int64_t* w0, const int64_t* w1, Py_ssize_t ow,
                              const double* inv, float* out, Py_ssize_t os, double* acc, int stream) noexcept nogil
    int adapool_avg_rows_f32(const float* x, Py_ssize_t xps, Py_ssize_t xrs, const float* xend,
                              float* y, Py_ssize_t yps, Py_ssize_t nplanes, Py_ssize_t oh,
                              Py_ssize_t ow, const int64_t* h0, const int64_t* h1, int sw,
                              int kw, const double* inv8, const float* div8) noexcept nogil
    int adapool_avg_planes8_f32(const float* x, Py_ssize_t xps, int nplanes, Py_ssize_t P,
                                float* y, Py_ssize_t yps, Py_ssize_t O, int K,
                                const int32_t* offs, const double* inv, const float* divf,
                                float* tile, float* otile) noexcept nogil


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


cdef inline Py_ssize_t _pixel_bytes(const Geom* g, Py_ssize_t itemsize) noexcept nogil:
    # bytes from one pixel to the next along W, whichever way W runs (the channels-last
    # kernels' size rules)
    return (g.xs[4] if g.xs[4] >= 0 else -g.xs[4]) * itemsize


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
    _DIVF_MAX = 16777216   # 2^24: every integer up to it is a float32
    _NARROW = 16          # rows at most this long are summed per window, not per row
    _SUMS4_MAX = 64       # global planes at most this large are summed four at a time
    _SMALL_PLANE = 1024   # planes at most this large take the average gradient as a gather per
                          # image and block of channels (_avg_bwd_gather)
    _CL_REG_IMAGE = 524288   # bytes of a channels-last image up to which average windows sum in registers
    _MAX_CL_SCRATCH = 28672  # bytes of channels-last max scratch (maxima and picks) kept in L1
    _LLC_BYTES = 33554432  # inputs larger than this are read from memory, not cache (the L3 of
                           # the machines measured: 32 MiB); see adapool_avg_row8_f32


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
# Work is split into one contiguous range of items per thread (static partition, in _run): items
# are then walked with carried counters, never decomposed with integer division per item (three
# 64-bit divisions cost more than pooling a 7x7 plane).

# Walk a 4-level C-order index space (i0, i1, i2, i3) from any flat position, one step at a time.

cdef struct Walk:
    # Position (i0, i1, i2, i3) with sizes (-, n1, n2, n3); i0 is the slowest index.
    Py_ssize_t i0, i1, i2, i3, n1, n2, n3


cdef inline Walk _walk_from(Py_ssize_t begin, Py_ssize_t n1, Py_ssize_t n2,
                            Py_ssize_t n3) noexcept nogil:
    cdef Walk w
    w.n1, w.n2, w.n3 = n1, n2, n3
    w.i3 = begin % n3
    begin = begin // n3
    w.i2 = begin % n2
    begin = begin // n2
    w.i1 = begin % n1
    w.i0 = begin // n1
    return w


cdef inline void _step(Walk* w) noexcept nogil:
    w.i3 += 1
    if w.i3 == w.n3:
        w.i3 = 0
        w.i2 += 1
        if w.i2 == w.n2:
            w.i2 = 0
            w.i1 += 1
            if w.i1 == w.n1:
                w.i1 = 0
                w.i0 += 1


# Window tables, packed by the Python layer as [d0 d1 dk | h0 h1 hk | w0 w1 wk]: start, end
# (clamped, exclusive) and divisor factor of each output index on each axis. The divisor of
# output (od, oh, ow) is dk[od] * hk[oh] * wk[ow]: the window area for adaptive pooling, the
# padded or clamped area (or divisor_override) for avg_pool2d. Backward passes also get
# [dlo dhi | hlo hhi]: for each input index on D and H, the outputs whose window contains it.

cdef struct Win:
    const int64_t* d0
    const int64_t* d1
    const int64_t* dk
    const int64_t* h0
    const int64_t* h1
    const int64_t* hk
    const int64_t* w0
    const int64_t* w1
    const int64_t* wk
    const int64_t* dlo
    const int64_t* dhi
    const int64_t* hlo
    const int64_t* hhi
    const double* inv    # 1 / divisor of each output position (od, oh, ow), C order
    const float* divf    # the divisors as float32, or NULL unless every one is in [1, 2^24]
    int* overflow        # set (relaxed atomic store) by a float32 average kernel whose sum came
                         # out inf or NaN: the call then runs _f32_repair_all


cdef inline Win _win(const int64_t* t, const int64_t* rows, const Geom* g) noexcept nogil:
    cdef Win w
    w.d0 = t
    w.d1 = t + g.od
    w.dk = t + 2 * g.od
    w.h0 = t + 3 * g.od
    w.h1 = w.h0 + g.oh
    w.hk = w.h0 + 2 * g.oh
    w.w0 = w.h0 + 3 * g.oh
    w.w1 = w.w0 + g.ow
    w.wk = w.w0 + 2 * g.ow
    w.dlo = rows
    w.dhi = rows + g.d if rows != NULL else NULL
    w.hlo = rows + 2 * g.d if rows != NULL else NULL
    w.hhi = rows + 2 * g.d + g.h if rows != NULL else NULL
    w.inv = NULL
    w.divf = NULL
    w.overflow = NULL
    return w


cdef inline double _inv(const Win* w, const Geom* g, Py_ssize_t od, Py_ssize_t oh,
                        Py_ssize_t ow) noexcept nogil:
    return w.inv[(od * g.oh + oh) * g.ow + ow]


cdef inline double _inverse(int64_t divisor) noexcept nogil:
    # One reciprocal per window instead of a division per element: within 1 ulp of float64
    # division, so float32/float16 results are the same correctly rounded value (torch divides
    # twice, sum / kh / kw, and is no closer). An empty window (divisor 0) sums to 0 and stays 0.
    return 0.0 if divisor == 0 else 1.0 / <double>divisor


# ---------------------------------------------------------------------------------------------
# float32 sums run in float32 lanes (flushed into float64 every _F32_FLUSH additions, or not at
# all for small windows): values within ~16x of the largest float overflow a lane to inf, where
# the float64 sum and the mean are finite. Each float32 average kernel flags a sum that came out
# inf or NaN (w.overflow; one vector scan of a row's sums or a range's outputs, or a test per
# output where the loop is scalar anyway: a test per output in the vector kernels cost 5-14%),
# and after such a call every output that is inf or NaN is recomputed from a float64 sum of its
# window, in the same order. Inputs holding inf or NaN give inf or NaN again; finite inputs get
# the finite mean that the float64 reference gives (torch's float32 sums: inf).

cdef inline bint _nonfinite(double v) noexcept nogil:
    return not (v - v == 0)


cdef void _f32_repair_all(const real_t* x, real_t* y, const Win* w, const Geom* g) noexcept nogil:
    """Recompute, from a float64 sum of its window, every output of a float32 average pooling
    call that came out inf or NaN (after a kernel flagged w.overflow). Windows and divisors from
    the tables (w.inv not needed)."""
    cdef Py_ssize_t n, c, od, oh, ow, id, ih, iw
    cdef double s
    cdef real_t* o
    cdef const real_t* plane
    if real_t is float:
        for n in range(g.n):
            for c in range(g.c):
                plane = x + n * g.xs[0] + c * g.xs[1]
                for od in range(g.od):
                    for oh in range(g.oh):
                        for ow in range(g.ow):
                            o = y + n * g.ys[0] + c * g.ys[1] + od * g.ys[2] + oh * g.ys[3] + ow * g.ys[4]
                            if not _nonfinite(o[0]):
                                continue
                            s = 0.0
                            for id in range(w.d0[od], w.d1[od]):
                                for ih in range(w.h0[oh], w.h1[oh]):
                                    for iw in range(w.w0[ow], w.w1[ow]):
                                        s += plane[id * g.xs[2] + ih * g.xs[3] + iw * g.xs[4]]
                            o[0] = <float>(s * _inverse(w.dk[od] * w.hk[oh] * w.wk[ow]))


# ---------------------------------------------------------------------------------------------
# Average pooling forward, planar layout (W has unit stride: NCHW and its strided views).
# Item = one output row (n, c, od, oh): sum the window's (kd, kh) rows into W float64s, then
# each output column adds up its slice. A window of whole contiguous rows is one run.

cdef void _avg_fwd_planar(const real_t* x, real_t* y, const Win* w, const Geom* g,
                          double* scratch, Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    cdef Walk at = _walk_from(begin, g.c, g.od, g.oh)
    cdef Py_ssize_t it, ow, id, ih, iw, kd, kh
    cdef const real_t* row
    cdef bint single_run = (g.ow == 1 and w.w0[0] == 0 and w.w1[0] == g.w
                            and (g.h == 1 or g.xs[3] == g.w))
    # float32 windows of whole 8-column blocks: the row branch's sums in registers
    cdef bint row8 = real_t is float and ADAPOOL_HAS_ROWS and g.w > _NARROW
    cdef int stream = g.n * g.c * g.d * g.h * g.w * <Py_ssize_t>sizeof(real_t) > _LLC_BYTES
    # float32 windows of <= 4 columns at stride 1 or 2 (avg_pool's): outputs [jlo, jhi) whose
    # whole windows start at sw * j - pw take 8 outputs a vector (adapool_avg_wide_f32)
    cdef Py_ssize_t sw = 0, kw = 0, pw = 0, jlo = 0, jhi = 0, jm, kw_all = 0
    cdef bint wide = False
    for ow in range(g.ow):
        row8 = row8 and w.w0[ow] % 8 == 0 and w.w1[ow] > w.w0[ow] and (w.w1[ow] - w.w0[ow]) % 8 == 0
        kw_all = max(kw_all, w.w1[ow] - w.w0[ow])
    if real_t is float and g.w > _NARROW and g.ow >= 8 and not single_run:
        jm = g.ow // 2
        kw = w.w1[jm] - w.w0[jm]
        sw = w.w0[jm + 1] - w.w0[jm]
        pw = sw * jm - w.w0[jm]
        if 1 <= sw <= 2 and 1 <= kw <= 4:
            jlo = jm
            while jlo > 0 and w.w0[jlo - 1] == sw * (jlo - 1) - pw and w.w1[jlo - 1] == w.w0[jlo - 1] + kw:
                jlo -= 1
            jhi = jm + 1
            while jhi < g.ow and w.w0[jhi] == sw * jhi - pw and w.w1[jhi] == w.w0[jhi] + kw:
                jhi += 1
            wide = jhi - jlo >= 8
    cdef const real_t* first_row
    cdef real_t* out
    cdef double s, s2
    for it in range(begin, end):
        kd = w.d1[at.i2] - w.d0[at.i2]
        kh = w.h1[at.i3] - w.h0[at.i3]
        first_row = x + at.i0 * g.xs[0] + at.i1 * g.xs[1] + w.d0[at.i2] * g.xs[2] + w.h0[at.i3] * g.xs[3]
        out = y + at.i0 * g.ys[0] + at.i1 * g.ys[1] + at.i2 * g.ys[2] + at.i3 * g.ys[3]
        if single_run:
            s = 0.0
            for id in range(kd):
                s += _sum_run(first_row + id * g.xs[2], kh * g.w)
            _store(out, s * _inv(w, g, at.i2, at.i3, 0))
            if real_t is float and _nonfinite(s):
                adapool_flag(w.overflow)
        elif g.w <= _NARROW:
            # Rows too short to vectorise: sum each window straight into a register.
            for ow in range(g.ow):
                s = 0.0
                if w.w1[ow] - w.w0[ow] == 2:
                    s2 = 0.0
                    for id in range(kd):
                        row = first_row + id * g.xs[2] + w.w0[ow]
                        for ih in range(kh):
                            s += _load(row[0])
                            s2 += _load(row[1])
                            row += g.xs[3]
                    s = s + s2
                else:
                    for id in range(kd):
                        for ih in range(kh):
                            row = first_row + id * g.xs[2] + ih * g.xs[3]
                            for iw in range(w.w0[ow], w.w1[ow]):
                                s += _load(row[iw])
                _store(out + ow * g.ys[4], s * _inv(w, g, at.i2, at.i3, ow))
        else:
            if real_t is float and wide and kd * kh * kw_all <= _F32_FLUSH:
                if adapool_avg_wide_f32(first_row, kd, g.xs[2], kh, g.xs[3], g.w, w.w0, w.w1, g.ow,
                                        pw, jlo, jhi, w.inv + (at.i2 * g.oh + at.i3) * g.ow,
                                        w.divf + (at.i2 * g.oh + at.i3) * g.ow if w.divf != NULL else NULL,
                                        out, g.ys[4], sw, kw):
                    adapool_flag(w.overflow)
                _step(&at)
                continue
            if real_t is float and row8 and kd * kh > 0:
                adapool_avg_row8_f32(first_row, kd, g.xs[2], kh, g.xs[3], w.w0, w.w1, g.ow,
                                     w.inv + (at.i2 * g.oh + at.i3) * g.ow, out, g.ys[4], scratch, stream)
            else:
                _sum_rows(first_row, g.w, kd, g.xs[2], kh, g.xs[3], 1, 0, scratch,
                          <float*>(scratch + _pad8(g.w)))
                for ow in range(g.ow):
                    s = _sum_span(scratch, w.w0[ow], w.w1[ow])
                    _store(out + ow * g.ys[4], s * _inv(w, g, at.i2, at.i3, ow))
            # float32 sums that came out inf or NaN (see _f32_repair_all): the row's stored
            # means, one vector scan (a test per output in the loop above cost 9% of
            # avg_pool2d(3, 2, 1) on (4,512,56,56))
            if real_t is float and g.ys[4] == 1 and adapool_any_nonfinite_f32(<const float*>out, g.ow):
                adapool_flag(w.overflow)
            elif real_t is float and g.ys[4] != 1:
                for ow in range(g.ow):
                    if _nonfinite(_load(out[ow * g.ys[4]])):
                        adapool_flag(w.overflow)
        _step(&at)


# Global average of dense planes (one output per plane, its window the whole plane, each
# (D, H, W) plane one contiguous run): the ResNet head. Item = one plane and nothing but the
# run sum, so per-plane overhead stays a few cycles.

cdef inline bint _is_global_dense(const Win* w, const Geom* g, bint channels_last) noexcept nogil:
    return (not channels_last and g.od == 1 and g.oh == 1 and g.ow == 1
            and w.d0[0] == 0 and w.d1[0] == g.d and w.h0[0] == 0 and w.h1[0] == g.h
            and w.w0[0] == 0 and w.w1[0] == g.w and w.dk[0] * w.hk[0] * w.wk[0] == g.d * g.h * g.w
            and (g.h == 1 or g.xs[3] == g.w) and (g.d == 1 or g.xs[2] == g.h * g.w))


cdef void _avg_fwd_global(const real_t* x, real_t* y, const Geom* g, int* overflow,
                          Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    cdef Walk at = _walk_from(begin, 1, 1, g.c)
    cdef Py_ssize_t P = g.d * g.h * g.w, it = begin, k
    cdef double inv_area = 1.0 / <double>P
    cdef double sums[4]
    while it < end:
        if (real_t is float and ADAPOOL_HAS_SUMS4 and P <= _SUMS4_MAX and it + 4 <= end
                and at.i3 + 4 <= g.c):
            # four planes of one image: same bits as four _sum_run calls, twice as fast
            if g.ys[1] == 1:
                adapool_means4_f32(<const float*>(x + at.i0 * g.xs[0] + at.i3 * g.xs[1]), g.xs[1], P,
                                   inv_area, <float*>(y + at.i0 * g.ys[0] + at.i3))
                for k in range(4):
                    _step(&at)
            else:
                adapool_sums4_f32(<const float*>(x + at.i0 * g.xs[0] + at.i3 * g.xs[1]), g.xs[1], P, sums)
                for k in range(4):
                    _store(y + at.i0 * g.ys[0] + at.i3 * g.ys[1], sums[k] * inv_area)
                    _step(&at)
            it += 4
        else:
            _store(y + at.i0 * g.ys[0] + at.i3 * g.ys[1],
                   _sum_run(x + at.i0 * g.xs[0] + at.i3 * g.xs[1], P) * inv_area)
            _step(&at)
            it += 1
    # float32 sums that came out inf or NaN (see _f32_repair_all), from this range's outputs:
    # one vector scan where they are dense (a test per plane in the loop cost 10-13% of
    # (32,2048,7,7) -> 1, the scan ~2%)
    if real_t is float and _outputs_nonfinite(y, g, begin, end):
        adapool_flag(overflow)


cdef bint _outputs_nonfinite(const real_t* y, const Geom* g, Py_ssize_t begin,
                             Py_ssize_t end) noexcept nogil:
    """Whether any output of global pooling items [begin, end) (one per plane) is inf or NaN."""
    cdef Walk at
    cdef Py_ssize_t it
    if real_t is float and g.ys[1] == 1 and (g.n == 1 or g.ys[0] == g.c):
        return adapool_any_nonfinite_f32(<const float*>y + begin, end - begin)
    at = _walk_from(begin, 1, 1, g.c)
    for it in range(begin, end):
        if _nonfinite(_load(y[at.i0 * g.ys[0] + at.i3 * g.ys[1]])):
            return True
        _step(&at)
    return False


# Average pooling forward, channels-last layout (C has unit stride: NHWC viewed as NCHW).
# Item = one output row (n, od, oh) and one block of channels, walked one of three ways; each
# sums a window's pixels in row-major order from +0.0 (float32 in float32, flushed into float64
# after _F32_FLUSH additions; other types in float64), so all three give the same bits.
# - Windows of <= _F32_FLUSH pixels over a small image, or of narrow pixels: in SIMD registers
#   per chunk of channels (adapool_avg_cl_f32/f64).
# - Other windows of <= _F32_FLUSH pixels: one output pixel at a time, the window's pixels
#   added whole into one row of sums in L1 (_avg_cl_pixels).
# - Larger windows: each input row of the window streamed once, in memory order, pixel vectors
#   added into their output column's accumulators; overlapping windows add a shared pixel to
#   both. Whole rows in order keep the hardware prefetcher fed where a window's many rows
#   would be walked pixel by pixel (adaptive (16,256,100,100) -> 10, one thread: 8.9 ms
#   streamed, 13.0 pixel by pixel).

cdef inline void _store_means(real_t* out, const double* acc, Py_ssize_t cl, Py_ssize_t ysc,
                              double inv) noexcept nogil:
    """out[k * ysc] = acc[k] * inv for k < cl, rounded once (a unit stride as its own loop, which
    vectorises)."""
    cdef Py_ssize_t k
    if ysc == 1:
        for k in range(cl):
            _store(out + k, acc[k] * inv)
    else:
        for k in range(cl):
            _store(out + k * ysc, acc[k] * inv)


cdef inline void _store_fmeans(float* out, const float* f, Py_ssize_t cl, Py_ssize_t ysc, double inv,
                               bint nt) noexcept nogil:
    """out[k * ysc] = f[k] * inv for k < cl, float32 sums to float32 means rounded once;
    streaming stores where nt is set and the stride is one (see _avg_fwd_cl)."""
    cdef Py_ssize_t k
    if ysc == 1 and nt:
        adapool_stream_means_f32(f, inv, out, cl)
    elif ysc == 1:
        for k in range(cl):
            out[k] = <float>(<double>f[k] * inv)
    else:
        for k in range(cl):
            out[k * ysc] = <float>(<double>f[k] * inv)


cdef void _avg_cl_pixels(const real_t* x, real_t* y, const Win* w, const Geom* g, Py_ssize_t n,
                         Py_ssize_t od, Py_ssize_t oh, Py_ssize_t c0, Py_ssize_t cl, double* acc,
                         float* facc, bint nt) noexcept nogil:
    """One output row, channels [c0, c0 + cl), one output pixel at a time: the window's pixels
    added whole, in row-major order, into one cl-long row of sums that stays in L1, which is
    then stored. The first pixel after each flush starts the float32 row (+0.0 + p: the same
    bits as adding it to zeros)."""
    cdef Py_ssize_t ysc = g.ys[1]
    cdef Py_ssize_t k, id, ih, iw, ow, nf
    cdef const real_t* row
    cdef const real_t* p
    cdef real_t* out
    cdef double inv
    cdef bint wide    # float32 sums flushed into float64 (windows of > _F32_FLUSH pixels)
    cdef bint fuse
    cdef const real_t* last
    for ow in range(g.ow):
        wide = real_t is not float or (w.d1[od] - w.d0[od]) * (w.h1[oh] - w.h0[oh]) * (w.w1[ow] - w.w0[ow]) > _F32_FLUSH
        nf = 0
        # float32 windows that never flush, into unit-stride plain stores: the last pixel is
        # added as the means are stored (adapool_last_pixel_f32)
        fuse = (real_t is float and ADAPOOL_FUSED_LAST and not wide and ysc == 1 and not nt
                and w.d1[od] > w.d0[od] and w.h1[oh] > w.h0[oh] and w.w1[ow] > w.w0[ow])
        last = x + n * g.xs[0] + c0 + (w.d1[od] - 1) * g.xs[2] + (w.h1[oh] - 1) * g.xs[3] + (w.w1[ow] - 1) * g.xs[4]
        if wide:
            memset(acc, 0, cl * sizeof(double))
        for id in range(w.d0[od], w.d1[od]):
            for ih in range(w.h0[oh], w.h1[oh]):
                row = x + n * g.xs[0] + c0 + id * g.xs[2] + ih * g.xs[3]
                for iw in range(w.w0[ow], w.w1[ow]):
                    p = row + iw * g.xs[4]
                    if fuse and iw == w.w1[ow] - 1 and ih == w.h1[oh] - 1 and id == w.d1[od] - 1:
                        break   # the last pixel: added with the store below (by position:
                                # a zero-stride view repeats addresses)
                    if real_t is float:
                        # flushed before a lane would take its (_F32_FLUSH + 1)-th addition
                        if nf == _F32_FLUSH:
                            for k in range(cl):
                                acc[k] += facc[k]
                            nf = 0
                        if nf == 0:
                            for k in range(cl):
                                facc[k] = p[k] + <float>0.0
                        else:
                            for k in range(cl):
                                facc[k] += p[k]
                        nf += 1
                    else:
                        for k in range(cl):
                            acc[k] += _load(p[k])
        inv = _inv(w, g, od, oh, ow)
        out = y + n * g.ys[0] + c0 * ysc + od * g.ys[2] + oh * g.ys[3] + ow * g.ys[4]
        if fuse:
            if adapool_last_pixel_f32(<const float*>last, facc, cl, nf == 0, inv, <float*>out):
                adapool_flag(w.overflow)
            continue
        if real_t is float and not wide:   # never flushed
            if nf == 0:   # (an empty window: every window holds a pixel today)
                memset(facc, 0, cl * sizeof(float))
            _store_fmeans(<float*>out, facc, cl, ysc, inv, nt)
            # float32 sums that came out inf or NaN are redone in float64 (_f32_repair_all)
            if adapool_any_nonfinite_f32(facc, cl):
                adapool_flag(w.overflow)
            continue
        if real_t is float and nf:
            for k in range(cl):
                acc[k] += facc[k]
        _store_means(out, acc, cl, ysc, inv)
        if real_t is float and adapool_any_nonfinite_f64(acc, cl):
            adapool_flag(w.overflow)


cdef void _avg_fwd_cl(const real_t* x, real_t* y, const Win* w, const Geom* g,
                      Py_ssize_t cblock, double* scratch, Py_ssize_t begin,
                      Py_ssize_t end) noexcept nogil:
    cdef Py_ssize_t nblocks = (g.c + cblock - 1) // cblock
    cdef Walk at = _walk_from(begin, g.od, g.oh, nblocks)
    cdef Py_ssize_t span = g.ow * cblock
    cdef double* acc = scratch
    cdef float* facc = <float*>(scratch + span)
    cdef Py_ssize_t* count = <Py_ssize_t*>(scratch + span + (span + 1) // 2)
    cdef Py_ssize_t it, k, c0, cl, id, ih, iw, ow, n, od, oh
    cdef Py_ssize_t ysc = g.ys[1]
    cdef Py_ssize_t kw_max = 0
    cdef const real_t* row
    cdef const real_t* p
    cdef double* a
    cdef float* fa
    cdef real_t* out
    cdef double inv
    cdef bint small       # windows of <= _F32_FLUSH pixels
    cdef bint f32_only    # float32 windows of <= _F32_FLUSH pixels never touch the float64 row
    cdef Py_ssize_t lanes = 8 if real_t is float else 4   # the register kernel's vector
    # The register kernel walks each window per chunk of channels, so overlapping windows read
    # a pixel once per window and the pixels' lines a pixel stride apart. Where the input's
    # footprint (N x D x H x W x pixel stride) is at most half the LLC, it stays in the cache
    # between calls and that walk is the fastest (avg_pool2d(3,2,1), 2 threads, time in
    # registers / whole pixels: (2,512,40,40) 0.58, (1,256,100,100) 0.63, (2,512,56,56) 0.65-0.82,
    # float64 (2,256,40,40) 0.71; benchmarks/README.md). Past it, from an image of more than
    # _CL_REG_IMAGE bytes (past L2) of pixels wider than two cache lines, the two walks below
    # are faster ((4,512,56,56) 1.0-1.05, (4,512,112,112) 1.2-1.3; (16,256,100,100) 8.6 ms
    # streamed, 10.1 in registers; (1,16,223,223), 64-byte pixels, 0.21 and 0.12 ms).
    cdef Py_ssize_t pix = _pixel_bytes(g, sizeof(real_t))
    cdef Py_ssize_t footprint = g.n * g.d * g.h * g.w * pix
    cdef bint regs = (pix <= 128 or g.d * g.h * g.w * pix <= _CL_REG_IMAGE
                      or footprint <= _LLC_BYTES // 2)
    # Past the registers' reach, whole pixels of more than two lines into one row of sums in
    # L1 (_avg_cl_pixels) where the input fits the cache, else whole input rows streamed in
    # order (see above).
    cdef bint pixels = pix > 128 and footprint <= _LLC_BYTES // 2
    cdef bint rows_pixels = pix > 128 and footprint <= _LLC_BYTES   # windows of <= _F32_FLUSH pixels
    # float32 outputs of more than half the LLC, stored with a unit channel stride, go out with
    # streaming stores (adapool_stream_means_f32): no read of each line before it is written, and the
    # input keeps the cache. avg_pool2d(3,2,1) (4,512,112,112), 25.7 MB out: 0.96x the time
    # (median of 8 process pairs, never slower); (4,512,56,56), 6.4 MB out, took 0.97-1.11x
    # its time streamed (no gain), so smaller outputs keep plain stores.
    cdef Py_ssize_t out_bytes = g.n * g.c * g.od * g.oh * g.ow * <Py_ssize_t>sizeof(real_t)
    cdef bint nt = real_t is float and out_bytes > _LLC_BYTES // 2
    for ow in range(g.ow):
        kw_max = max(kw_max, w.w1[ow] - w.w0[ow])
    for it in range(begin, end):
        n, od, oh = at.i0, at.i1, at.i2
        c0 = at.i3 * cblock
        cl = min(cblock, g.c - c0)
        small = (w.d1[od] - w.d0[od]) * (w.h1[oh] - w.h0[oh]) * kw_max <= _F32_FLUSH
        f32_only = real_t is float and small
        if real_t is not half_bits and ADAPOOL_VECTOR_AVG_CL and cl >= lanes and regs and small:
            row = x + n * g.xs[0] + c0
            out = y + n * g.ys[0] + c0 * ysc + od * g.ys[2] + oh * g.ys[3]
            if real_t is float:
                if adapool_avg_cl_f32(row, g.xs[2], g.xs[3], g.xs[4], w.d0[od], w.d1[od], w.h0[oh],
                                      w.h1[oh], w.w0, w.w1, g.ow, w.inv + (od * g.oh + oh) * g.ow,
                                      cl, out, g.ys[4], ysc):
                    adapool_flag(w.overflow)
            elif real_t is double:
                adapool_avg_cl_f64(row, g.xs[2], g.xs[3], g.xs[4], w.d0[od], w.d1[od], w.h0[oh],
                                   w.h1[oh], w.w0, w.w1, g.ow, w.inv + (od * g.oh + oh) * g.ow,
                                   cl, out, g.ys[4], ysc)
            _step(&at)
            continue
        if pixels or (small and rows_pixels):
            _avg_cl_pixels(x, y, w, g, n, od, oh, c0, cl, acc, facc, nt)
            _step(&at)
            continue
        if not f32_only:
            memset(acc, 0, span * sizeof(double))
        if real_t is float:
            memset(facc, 0, span * sizeof(float))
            memset(count, 0, g.ow * sizeof(Py_ssize_t))
        for id in range(w.d0[od], w.d1[od]):
            for ih in range(w.h0[oh], w.h1[oh]):
                row = x + n * g.xs[0] + c0 + id * g.xs[2] + ih * g.xs[3]
                for ow in range(g.ow):
                    a = acc + ow * cblock
                    fa = facc + ow * cblock
                    if real_t is float and ADAPOOL_VECTOR_AVG_CL and cl <= 32:
                        # narrow pixels: sums in registers along the row (wider ones keep the
                        # loop below: a chunk at a time walked lines a pixel apart, 1.2-1.5x
                        # slower at 256 and 512 channels; 64 and 128 the same)
                        count[ow] = adapool_row_run_f32(row + w.w0[ow] * g.xs[4], g.xs[4],
                                                        w.w1[ow] - w.w0[ow], cl, fa, a, count[ow],
                                                        _F32_FLUSH)
                        continue
                    for iw in range(w.w0[ow], w.w1[ow]):
                        p = row + iw * g.xs[4]
                        if real_t is float:
                            # Flush before a lane would take its (_F32_FLUSH + 1)-th addition,
                            # so windows of <= _F32_FLUSH pixels never flush (f32_only).
                            if count[ow] == _F32_FLUSH:
                                for k in range(cl):
                                    a[k] += fa[k]
                                    fa[k] = 0.0
                                count[ow] = 0
                            for k in range(cl):
                                fa[k] += p[k]
                            count[ow] += 1
                        else:
                            for k in range(cl):
                                a[k] += _load(p[k])
        for ow in range(g.ow):
            a = acc + ow * cblock
            fa = facc + ow * cblock
            inv = _inv(w, g, od, oh, ow)
            out = y + n * g.ys[0] + c0 * ysc + od * g.ys[2] + oh * g.ys[3] + ow * g.ys[4]
            if real_t is float and f32_only:
                _store_fmeans(<float*>out, fa, cl, ysc, inv, nt)
            else:
                if real_t is float:
                    for k in range(cl):
                        a[k] += fa[k]
                _store_means(out, a, cl, ysc, inv)
        # float32 sums that came out inf or NaN: one vector scan of the row's sums (see
        # _f32_repair_all; a test per output cost up to 14% on 28x28 tiles)
        if real_t is float and (adapool_any_nonfinite_f32(facc, span) if f32_only
                                else adapool_any_nonfinite_f64(acc, span)):
            adapool_flag(w.overflow)
        _step(&at)
    if nt:
        adapool_stream_fence()


# ---------------------------------------------------------------------------------------------
# Average pooling backward. Item = one input row; it gathers from every output whose window
# contains it (rows from the [lo, hi) tables, columns by walking each output's window), sums
# in float64 and writes the row once: no two threads touch the same element, no zeroing pass.
# Here Geom's "input" side (n..w, xs) is grad_input and its "output" side (od..ow, ys) is
# grad_output.

cdef inline bint _same_sources(const Walk* at, const Win* w, Py_ssize_t* prev) noexcept nogil:
    """Whether this input row reads the same outputs as the previous item's (then its gradient
    is the same row): compares (i0, i1) and the D and H source ranges, and remembers them."""
    cdef Py_ssize_t key[6]
    cdef int k
    cdef bint same = True
    key[0], key[1] = at.i0, at.i1
    key[2], key[3] = w.dlo[at.i2], w.dhi[at.i2]
    key[4], key[5] = w.hlo[at.i3], w.hhi[at.i3]
    for k in range(6):
        if key[k] != prev[k]:
            same = False
        prev[k] = key[k]
    return same


cdef inline double* _expanded_row(const real_t* go, const Win* w, const Geom* g,
                                  Py_ssize_t n, Py_ssize_t c, Py_ssize_t od, Py_ssize_t oh,
                                  double* slots, Py_ssize_t* keys, Py_ssize_t nslots) noexcept nogil:
    """Output row (n, c, od, oh) of grad_output spread over W: e[iw] = sum of grad / divisor
    over the windows containing iw. Kept in a small cache (slot = row mod nslots), because an
    input row and its neighbours read the same output rows when windows overlap."""
    cdef Py_ssize_t slot = (od * g.oh + oh) % nslots, ow, iw
    cdef Py_ssize_t* key = keys + 4 * slot
    cdef double* e = slots + slot * g.w
    cdef const real_t* grow
    cdef double v
    if key[0] == n and key[1] == c and key[2] == od and key[3] == oh:
        return e
    key[0], key[1], key[2], key[3] = n, c, od, oh
    memset(e, 0, g.w * sizeof(double))
    grow = go + n * g.ys[0] + c * g.ys[1] + od * g.ys[2] + oh * g.ys[3]
    for ow in range(g.ow):
        v = _load(grow[ow * g.ys[4]]) * _inv(w, g, od, oh, ow)
        for iw in range(w.w0[ow], w.w1[ow]):
            e[iw] += v
    return e


cdef void _avg_bwd_planar(const real_t* go, real_t* gi, const Win* w, const Geom* g,
                          double* scratch, Py_ssize_t nslots, Py_ssize_t begin,
                          Py_ssize_t end) noexcept nogil:
    # scratch: the input row's gradient (W), then nslots cached expanded output rows (W each),
    # then their keys (4 each).
    cdef Walk at = _walk_from(begin, g.c, g.d, g.h)
    cdef double* acc = scratch
    cdef double* slots = scratch + g.w
    cdef Py_ssize_t* keys = <Py_ssize_t*>(slots + nslots * g.w)
    cdef Py_ssize_t it, od, oh, iw, k, nsrc = 0
    cdef Py_ssize_t prev[6]
    cdef double* e
    cdef double* grad = acc
    cdef real_t* row
    for k in range(6):
        prev[k] = -1    # nothing computed yet (no row index is -1)
    for k in range(4 * nslots):
        keys[k] = -1
    for it in range(begin, end):
        if not _same_sources(&at, w, prev):
            # The row's gradient: its one source row itself, or the sum of its sources.
            nsrc = 0
            for od in range(w.dlo[at.i2], w.dhi[at.i2]):
                for oh in range(w.hlo[at.i3], w.hhi[at.i3]):
                    if nsrc == 1:
                        # Copy the first source out before the next expansion can reuse its
                        # cache slot (rows of different od may share one).
                        memcpy(acc, grad, g.w * sizeof(double))
                        grad = acc
                    e = _expanded_row(go, w, g, at.i0, at.i1, od, oh, slots, keys, nslots)
                    if nsrc == 0:
                        grad = e
                    else:
                        for iw in range(g.w):
                            acc[iw] += e[iw]
                    nsrc += 1
        row = gi + at.i0 * g.xs[0] + at.i1 * g.xs[1] + at.i2 * g.xs[2] + at.i3 * g.xs[3]
        if nsrc == 0:
            for iw in range(g.w):    # no window reads this row (padding-only gaps)
                _store(row + iw, 0.0)
        else:
            for iw in range(g.w):
                _store(row + iw, grad[iw])    # grad_input is allocated dense: unit stride
        _step(&at)


# Average backward for small planes with fewer than _TILE_MIN channels: item = one plane,
# torch's scatter order (each element's sum in increasing output order from 0, as the gather
# below). Per-row bookkeeping costs more than a 7x7 plane's arithmetic, so a plane is zeroed
# in float64 scratch, each output's grad / divisor is added over its window, and the plane is
# rounded once into grad_input (dense, allocated by the Python layer). The gather's per-pixel
# calls cost more than this on so few channels (1x1x8x8: 4.7 -> 5.4 us a call).

cdef void _avg_bwd_small_planes(const real_t* go, real_t* gi, const Win* w, const Geom* g,
                                double* acc, Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    cdef Walk at = _walk_from(begin, 1, 1, g.c)
    cdef Py_ssize_t P = g.d * g.h * g.w, it, od, oh, ow, id, ih, iw, i
    cdef const real_t* gp
    cdef double* row
    cdef real_t* plane
    cdef double v
    for it in range(begin, end):
        memset(acc, 0, P * sizeof(double))
        gp = go + at.i0 * g.ys[0] + at.i3 * g.ys[1]
        for od in range(g.od):
            for oh in range(g.oh):
                for ow in range(g.ow):
                    v = _load(gp[od * g.ys[2] + oh * g.ys[3] + ow * g.ys[4]]) * _inv(w, g, od, oh, ow)
                    for id in range(w.d0[od], w.d1[od]):
                        for ih in range(w.h0[oh], w.h1[oh]):
                            row = acc + (id * g.h + ih) * g.w
                            for iw in range(w.w0[ow], w.w1[ow]):
                                row[iw] += v
        plane = gi + at.i0 * g.xs[0] + at.i3 * g.xs[1]
        for i in range(P):
            _store(plane + i, acc[i])
        _step(&at)


# Average backward on small planes, either layout, as a gather vectorised over channels. Item =
# one image and block of channels. Each output's grad / divisor is computed once into a float64
# tile of (output pixel, channel) rows; then every input pixel adds up, channel vector by
# channel vector, the rows of the outputs whose windows contain it, in increasing (od, oh, ow)
# order, from 0: the same float64 sums, term for term, as the per-plane scatter (torch's order)
# and the row gather of _avg_bwd_cl, so the same bits. Channels-last
# gradients are stored from there; planar ones go through a channels-last output tile and the
# small-plane transposes (a store per plane per pixel would touch a cache line per channel).
# Runs planes of at most _SMALL_PLANE elements in place of the per-plane scatter above (scalar,
# ~6 ns an element on 7x7 planes; kept for fewer than _TILE_MIN planar channels) and of the
# per-row gather (scratch rows as wide as the image).

# One input pixel's gradient over cl channels: the float64 sum, from 0, of the term rows
# (od * OH + oh) * OW + ow of the output ranges given, in that order, rounded once into ``out``.
# Sixteen channels a step in registers (GCC/clang vector extensions); the loop it replaces
# loaded and stored a float64 row in scratch for every term (half its time).
cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define ADAPOOL_VECTOR_GATHER 1
    typedef double adapool_g4d __attribute__((vector_size(32), aligned(8), may_alias));
    typedef float adapool_g4f __attribute__((vector_size(16), aligned(4), may_alias));
    #define ADAPOOL_GATHER_SUM(NAME, T, STORE4)                                                \\
    static void NAME(const double* terms, ptrdiff_t sb, ptrdiff_t d0, ptrdiff_t d1,            \\
                     ptrdiff_t h0, ptrdiff_t h1, ptrdiff_t w0, ptrdiff_t w1, ptrdiff_t OH,     \\
                     ptrdiff_t OW, ptrdiff_t cl, T* out) {                                     \\
        ptrdiff_t k = 0, od, oh, ow;                                                           \\
        for (; k + 16 <= cl; k += 16) {                                                        \\
            adapool_g4d a0 = {0, 0, 0, 0}, a1 = a0, a2 = a0, a3 = a0;                          \\
            for (od = d0; od < d1; od++)                                                       \\
                for (oh = h0; oh < h1; oh++)                                                   \\
                    for (ow = w0; ow < w1; ow++) {                                             \\
                        const double* t = terms + ((od * OH + oh) * OW + ow) * sb + k;         \\
                        a0 += *(const adapool_g4d*)t;                                          \\
                        a1 += *(const adapool_g4d*)(t + 4);                                    \\
                        a2 += *(const adapool_g4d*)(t + 8);                                    \\
                        a3 += *(const adapool_g4d*)(t + 12);                                   \\
                    }                                                                          \\
            STORE4(out + k, a0); STORE4(out + k + 4, a1);                                      \\
            STORE4(out + k + 8, a2); STORE4(out + k + 12, a3);                                 \\
        }                                                                                      \\
        for (; k < cl; k++) {                                                                  \\
            double a = 0;                                                                      \\
            for (od = d0; od < d1; od++)                                                       \\
                for (oh = h0; oh < h1; oh++)                                                   \\
                    for (ow = w0; ow < w1; ow++)                                               \\
                        a += terms[((od * OH + oh) * OW + ow) * sb + k];                       \\
            out[k] = (T)a;                                                                     \\
        }                                                                                      \\
    }
    #define ADAPOOL_STORE4_F32(p, v) (*(adapool_g4f*)(p) = __builtin_convertvector((v), adapool_g4f))
    #define ADAPOOL_STORE4_F64(p, v) (*(adapool_g4d*)(p) = (v))
    ADAPOOL_GATHER_SUM(adapool_gather_sum_f32, float, ADAPOOL_STORE4_F32)
    ADAPOOL_GATHER_SUM(adapool_gather_sum_f64, double, ADAPOOL_STORE4_F64)
    #else
    #define ADAPOOL_VECTOR_GATHER 0
    static void adapool_gather_sum_f32(const double* terms, ptrdiff_t sb, ptrdiff_t d0,
        ptrdiff_t d1, ptrdiff_t h0, ptrdiff_t h1, ptrdiff_t w0, ptrdiff_t w1, ptrdiff_t OH,
        ptrdiff_t OW, ptrdiff_t cl, float* out) {}
    static void adapool_gather_sum_f64(const double* terms, ptrdiff_t sb, ptrdiff_t d0,
        ptrdiff_t d1, ptrdiff_t h0, ptrdiff_t h1, ptrdiff_t w0, ptrdiff_t w1, ptrdiff_t OH,
        ptrdiff_t OW, ptrdiff_t cl, double* out) {}
    #endif
    """
    int ADAPOOL_VECTOR_GATHER
    void adapool_gather_sum_f32(const double* terms, Py_ssize_t sb, Py_ssize_t d0, Py_ssize_t d1,
                                Py_ssize_t h0, Py_ssize_t h1, Py_ssize_t w0, Py_ssize_t w1,
                                Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t cl, float* out) noexcept nogil
    void adapool_gather_sum_f64(const double* terms, Py_ssize_t sb, Py_ssize_t d0, Py_ssize_t d1,
                                Py_ssize_t h0, Py_ssize_t h1, Py_ssize_t w0, Py_ssize_t w1,
                                Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t cl, double* out) noexcept nogil


cdef inline Py_ssize_t _gather_block(const Geom* g, bint channels_last, Py_ssize_t itemsize) noexcept nogil:
    """Channels pooled together by _avg_bwd_gather (a multiple of 8): the float64 tile of the
    outputs' terms (and the planar output tile) within ~256 KiB, at most 256 channels."""
    cdef Py_ssize_t O = g.od * g.oh * g.ow, P = g.d * g.h * g.w
    cdef Py_ssize_t per_channel = 8 * O + (0 if channels_last else P * itemsize)
    return max(<Py_ssize_t>8, min(<Py_ssize_t>4096 if channels_last else <Py_ssize_t>256,
                                  (<Py_ssize_t>262144 // per_channel) & ~(<Py_ssize_t>7)))


cdef inline Py_ssize_t _gather_scratch(const Geom* g, bint channels_last, Py_ssize_t sb,
                                       Py_ssize_t itemsize) noexcept nogil:
    """Per-thread scratch of _avg_bwd_gather, in doubles: the terms (O x sb), one pixel's sums
    (sb), each input column's range of output columns (2 W), the planar output tile."""
    cdef Py_ssize_t n = _pad8(g.od * g.oh * g.ow * sb) + _pad8(sb) + _pad8(2 * g.w)
    if not channels_last:
        n += _doubles(g.d * g.h * g.w * _tile_stride(sb, itemsize), itemsize)
    return n


cdef void _avg_bwd_gather(const real_t* go, real_t* gi, const Win* w, const Geom* g,
                          bint channels_last, Py_ssize_t cblock, double* scratch,
                          Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    cdef Py_ssize_t nblocks = (g.c + cblock - 1) // cblock
    cdef Walk at = _walk_from(begin, 1, 1, nblocks)
    cdef Py_ssize_t O = g.od * g.oh * g.ow, P = g.d * g.h * g.w
    cdef Py_ssize_t sb = _gather_block(g, channels_last, sizeof(real_t))
    cdef Py_ssize_t ts = _tile_stride(sb, sizeof(real_t))
    cdef double* terms = scratch
    cdef double* acc = terms + _pad8(O * sb)
    cdef Py_ssize_t* wlo = <Py_ssize_t*>(acc + _pad8(sb))
    cdef Py_ssize_t* whi = wlo + g.w
    cdef real_t* otile = <real_t*>(<double*>wlo + _pad8(2 * g.w))
    cdef Py_ssize_t it, n, b0, bl, c0, cl, k, o, od, oh, ow, id, ih, iw, lo, hi
    cdef Py_ssize_t ysc = g.ys[1]
    cdef const real_t* gp
    cdef const real_t* src
    cdef const double* t
    cdef real_t* out
    cdef double inv
    # Each input column's output columns [wlo, whi), as windows_containing gives them (windows
    # are non-decreasing in start and end; an empty range for columns no window reads).
    lo = hi = 0
    for iw in range(g.w):
        while lo < g.ow and w.w1[lo] <= iw:
            lo += 1
        while hi < g.ow and w.w0[hi] <= iw:
            hi += 1
        wlo[iw] = lo
        whi[iw] = max(hi, lo)
    for it in range(begin, end):
        n = at.i0
        b0 = at.i3 * cblock
        bl = min(cblock, g.c - b0)
        c0 = b0
        while c0 < b0 + bl:
            cl = min(sb, b0 + bl - c0)
            # The terms: grad / divisor of every output, a row of cl channels per output pixel.
            gp = go + n * g.ys[0] + c0 * ysc
            o = 0
            for od in range(g.od):
                for oh in range(g.oh):
                    for ow in range(g.ow):
                        inv = _inv(w, g, od, oh, ow)
                        src = gp + od * g.ys[2] + oh * g.ys[3] + ow * g.ys[4]
                        if ysc == 1:
                            for k in range(cl):
                                terms[o * sb + k] = _load(src[k]) * inv
                        else:
                            for k in range(cl):
                                terms[o * sb + k] = _load(src[k * ysc]) * inv
                        o += 1
            for id in range(g.d):
                for ih in range(g.h):
                    for iw in range(g.w):
                        if channels_last:   # grad_input dense channels-last: C unit stride
                            out = gi + n * g.xs[0] + c0 + id * g.xs[2] + ih * g.xs[3] + iw * g.xs[4]
                        else:
                            out = otile + ((id * g.h + ih) * g.w + iw) * ts
                        if real_t is float and ADAPOOL_VECTOR_GATHER:
                            adapool_gather_sum_f32(terms, sb, w.dlo[id], w.dhi[id], w.hlo[ih], w.hhi[ih],
                                                   wlo[iw], whi[iw], g.oh, g.ow, cl, out)
                            continue
                        if real_t is double and ADAPOOL_VECTOR_GATHER:
                            adapool_gather_sum_f64(terms, sb, w.dlo[id], w.dhi[id], w.hlo[ih], w.hhi[ih],
                                                   wlo[iw], whi[iw], g.oh, g.ow, cl, out)
                            continue
                        memset(acc, 0, cl * sizeof(double))
                        for od in range(w.dlo[id], w.dhi[id]):
                            for oh in range(w.hlo[ih], w.hhi[ih]):
                                for ow in range(wlo[iw], whi[iw]):
                                    t = terms + ((od * g.oh + oh) * g.ow + ow) * sb
                                    for k in range(cl):
                                        acc[k] += t[k]
                        for k in range(cl):
                            _store(out + k, acc[k])
            if not channels_last:   # grad_input dense planar: planes of P elements
                _transpose(otile, ts, cl, P, gi + n * g.xs[0] + c0 * g.xs[1], g.xs[1])
            c0 += sb
        _step(&at)


# The gradient of global pooling over dense planes: every element of a plane gets the same
# value, grad / plane size. Item = one plane, a plain fill.

cdef void _avg_bwd_global(const real_t* go, real_t* gi, const Geom* g, Py_ssize_t begin,
                          Py_ssize_t end) noexcept nogil:
    cdef Walk at = _walk_from(begin, 1, 1, g.c)
    cdef Py_ssize_t P = g.d * g.h * g.w, it, i
    cdef double inv_area = 1.0 / <double>P
    cdef real_t* plane
    cdef real_t v
    for it in range(begin, end):
        _store(&v, _load(go[at.i0 * g.ys[0] + at.i3 * g.ys[1]]) * inv_area)
        plane = gi + at.i0 * g.xs[0] + at.i3 * g.xs[1]
        for i in range(P):
            plane[i] = v
        _step(&at)


cdef void _avg_bwd_cl(const real_t* go, real_t* gi, const Win* w, const Geom* g,
                      Py_ssize_t cblock, double* acc, Py_ssize_t begin,
                      Py_ssize_t end) noexcept nogil:
    cdef Py_ssize_t nblocks = (g.c + cblock - 1) // cblock
    cdef Walk at = _walk_from(begin, g.d, g.h, nblocks)
    cdef Walk src
    cdef Py_ssize_t it, od, oh, ow, iw, k, c0, cl, n, id, ih
    cdef Py_ssize_t ysc = g.ys[1], xsc = g.xs[1]
    cdef Py_ssize_t prev[6]
    cdef const real_t* gp
    cdef real_t* out
    cdef double* a
    cdef double inv
    for k in range(6):
        prev[k] = -1    # nothing computed yet (no row index is -1)
    for it in range(begin, end):
        n, id, ih = at.i0, at.i1, at.i2
        c0 = at.i3 * cblock
        cl = min(cblock, g.c - c0)
        # Same sources as the previous row: (n, block) and the D/H ranges.
        src.i0, src.i1, src.i2, src.i3 = n, at.i3, id, ih
        if not _same_sources(&src, w, prev):
            memset(acc, 0, g.w * cblock * sizeof(double))
            for od in range(w.dlo[id], w.dhi[id]):
                for oh in range(w.hlo[ih], w.hhi[ih]):
                    for ow in range(g.ow):
                        inv = _inv(w, g, od, oh, ow)
                        gp = go + n * g.ys[0] + c0 * ysc + od * g.ys[2] + oh * g.ys[3] + ow * g.ys[4]
                        for iw in range(w.w0[ow], w.w1[ow]):
                            a = acc + iw * cblock
                            for k in range(cl):
                                a[k] += _load(gp[k * ysc]) * inv
        for iw in range(g.w):
            a = acc + iw * cblock
            out = gi + n * g.xs[0] + c0 * xsc + id * g.xs[2] + ih * g.xs[3] + iw * g.xs[4]
            for k in range(cl):
                _store(out + k, a[k])    # grad_input is allocated dense: C has unit stride
        _step(&at)


# ---------------------------------------------------------------------------------------------
# Max pooling forward with indices: torch's update rule, in torch's scan order (d, then h,
# then w within the window): start from -inf and the window's first element, take a value
# when it is greater or NaN. So ties keep the first maximum, NaN propagates with the last
# NaN's index, and an all -inf window reports its first element. Indices are flattened per
# (n, c) plane, (d * H + h) * W + w, in either layout. The channels-last kernel applies the rule
# as written, vectorised over C; the planar and global kernels reach the same pick in two passes.

cdef inline Py_ssize_t _find_in_window(const real_t* plane, const Geom* g, Py_ssize_t d0,
                                       Py_ssize_t d1, Py_ssize_t h0, Py_ssize_t h1,
                                       Py_ssize_t w0, Py_ssize_t w1, double best,
                                       bint has_nan, Py_ssize_t* offset) noexcept nogil:
    """Plane index of torch's pick in a planar window whose maximum is known: the last NaN
    (scanning backwards) when there is one, else the first element equal to the maximum. Its
    memory offset from ``plane`` goes to ``offset`` (recovering it from the index took three
    64-bit divisions, more than the rest of a 3-wide window's work)."""
    cdef Py_ssize_t id, ih, iw
    cdef const real_t* row
    cdef double v
    if has_nan:
        for id in range(d1 - 1, d0 - 1, -1):
            for ih in range(h1 - 1, h0 - 1, -1):
                row = plane + id * g.xs[2] + ih * g.xs[3]
                for iw in range(w1 - 1, w0 - 1, -1):
                    v = _load(row[iw])
                    if v != v:
                        offset[0] = id * g.xs[2] + ih * g.xs[3] + iw
                        return (id * g.h + ih) * g.w + iw
    else:
        for id in range(d0, d1):
            for ih in range(h0, h1):
                row = plane + id * g.xs[2] + ih * g.xs[3]
                for iw in range(w0, w1):
                    if _load(row[iw]) == best:
                        offset[0] = id * g.xs[2] + ih * g.xs[3] + iw
                        return (id * g.h + ih) * g.w + iw
    offset[0] = d0 * g.xs[2] + h0 * g.xs[3] + w0
    return (d0 * g.h + h0) * g.w + w0   # all -inf: the window's first element


# Runs of equal windows at a fixed step (every strided pool's interior, and adaptive windows
# when sizes divide): the outputs of a block are independent lanes, pooled offset by offset
# across the block, which vectorises over the outputs. One output at a time the select chain
# costs ~20 cycles an output (7.4 ns on rows past the tile path's 4096 elements, 10x torch's
# max_pool1d); same rule, same picks: take a value when greater or NaN, start from the first.

cdef enum:
    _RUN_BLOCK = 256   # outputs per block: their maxima and offsets stay in L1


cdef struct Run:
    Py_ssize_t lo, hi, step, k   # outputs [lo, hi) have windows [w0[lo] + (o - lo) * step, ... + k)


cdef inline Run _uniform_run(const Win* w, const Geom* g) noexcept nogil:
    """The longest run of full-length windows at one step (none: hi - lo < 16)."""
    cdef Run r
    cdef Py_ssize_t o, k = 0, lo, step
    r.lo = r.hi = r.step = r.k = 0
    for o in range(g.ow):
        k = max(k, <Py_ssize_t>(w.w1[o] - w.w0[o]))
    if k < 2:
        return r
    o = 0
    while o < g.ow:
        if w.w1[o] - w.w0[o] != k or o + 1 >= g.ow or w.w1[o + 1] - w.w0[o + 1] != k:
            o += 1
            continue
        lo = o
        step = w.w0[o + 1] - w.w0[o]
        o += 1
        while o + 1 < g.ow and w.w1[o + 1] - w.w0[o + 1] == k and w.w0[o + 1] - w.w0[o] == step:
            o += 1
        if o + 1 - lo > r.hi - r.lo and step > 0:
            r.lo, r.hi, r.step, r.k = lo, o + 1, step, k
        o += 1
    if r.hi - r.lo < 16:
        r.hi = r.lo
    return r


cdef inline void _max_run_block(const real_t* src, Py_ssize_t step, Py_ssize_t k, Py_ssize_t nb,
                                real_t* best, int32_t* at) noexcept nogil:
    """best[t] (and at[t] unless ``at`` is NULL): torch's pick among src[t * step + j], j < k,
    for t < nb (float/double)."""
    cdef Py_ssize_t t, j
    cdef real_t v
    cdef bint take
    if real_t is not half_bits:   # float16 bits need their conversion: the one-at-a-time path
        for t in range(nb):
            best[t] = src[t * step]
        if at == NULL:
            for j in range(1, k):
                for t in range(nb):
                    v = src[t * step + j]
                    best[t] = v if (v > best[t]) | (v != v) else best[t]
            return
        for t in range(nb):
            at[t] = 0
        for j in range(1, k):
            for t in range(nb):
                v = src[t * step + j]
                take = (v > best[t]) | (v != v)
                best[t] = v if take else best[t]
                at[t] = <int32_t>j if take else at[t]


cdef inline void _max_run(const real_t* row, real_t* y, int64_t* yi, const Win* w, const Geom* g,
                          const Run* r, Py_ssize_t o, Py_ssize_t base) noexcept nogil:
    cdef real_t best[_RUN_BLOCK]
    cdef int32_t at_buf[_RUN_BLOCK]
    cdef int32_t* at = at_buf if yi != NULL else NULL
    cdef Py_ssize_t b, t, nb, first
    b = r.lo
    while b < r.hi:
        nb = min(<Py_ssize_t>_RUN_BLOCK, r.hi - b)
        first = w.w0[b]
        # the common steps as constants: gcc turns their strided loads into shuffles
        if r.step == 1:
            _max_run_block(row + first, 1, r.k, nb, best, at)
        elif r.step == 2:
            _max_run_block(row + first, 2, r.k, nb, best, at)
        else:
            _max_run_block(row + first, r.step, r.k, nb, best, at)
        for t in range(nb):
            y[o + (b + t) * g.ys[4]] = best[t]   # the element itself (a select, never arithmetic)
        if yi != NULL:
            for t in range(nb):
                yi[o + (b + t) * g.ys[4]] = base + first + t * r.step + at[t]
        b += nb


cdef inline void _max_row_windows(const real_t* row, real_t* y, int64_t* yi, const Win* w,
                                  const Geom* g, Py_ssize_t o, Py_ssize_t base,
                                  const Run* run) noexcept nogil:
    """Every output of one output row whose windows lie in the input row ``row`` (W unit
    stride); ``o``: the output row's offset, ``base``: the row's first plane index; ``run``:
    outputs pooled as a uniform run (float/double input)."""
    cdef Py_ssize_t ow, iw
    cdef int64_t pick, mask
    cdef uint64_t vb, bb
    cdef double v, best
    if real_t is not half_bits:
        if run.hi > run.lo:
            _max_run(row, y, yi, w, g, run, o, base)
    for ow in range(g.ow):
        if real_t is not half_bits:
            if run.lo <= ow < run.hi:
                continue
        best = -INFINITY
        pick = w.w0[ow]
        for iw in range(w.w0[ow], w.w1[ow]):
            v = _load(row[iw])
            # Selects through bit masks: gcc turned `v if take else best` into a branch, which
            # on real data mispredicts about once a window (~10 ns an output on long rows).
            mask = -<int64_t>((v > best) | (v != v))   # all ones when v takes (a NaN always does)
            memcpy(&vb, &v, 8)
            memcpy(&bb, &best, 8)
            bb = (vb & <uint64_t>mask) | (bb & ~<uint64_t>mask)
            memcpy(&best, &bb, 8)
            pick = (iw & mask) | (pick & ~mask)
        if yi != NULL:
            yi[o + ow * g.ys[4]] = base + pick
        y[o + ow * g.ys[4]] = row[pick]   # the element itself (NaN payload, -0.0)


cdef void _max_fwd_planar(const real_t* x, real_t* y, int64_t* yi, const Win* w,
                          const Geom* g, double* scratch, Py_ssize_t begin,
                          Py_ssize_t end) noexcept nogil:
    # Two passes instead of torch's one, same result: (1) column maxima by torch's rule per
    # column (a NaN sticks; float16 keeps NaN flags instead) and the row of each column's first
    # maximum, over the window's rows, independent lanes that vectorise; (2) per output, the
    # maximum of its columns, then torch's pick: from the kept rows (2-d windows without NaN;
    # windows up to 8 wide in one vector), else by a scan of the window. A single pass carries a
    # compare-select dependency through every element, several cycles each.
    cdef Walk at = _walk_from(begin, g.c, g.od, g.oh)
    cdef real_t* colmax = <real_t*>scratch                 # float/double input
    cdef double* colmax_h = scratch                        # float16 input, as float64
    cdef unsigned char* colnan = <unsigned char*>(scratch + g.w)   # float16 only
    # the row of each column's first maximum, as wide as the element (lanes that vectorise)
    # (8 lanes of room past W, for adapool_pick8_f32's loads of the last columns)
    cdef int32_t* colrow32 = <int32_t*>(scratch + g.w + 8)
    cdef int64_t* colrow64 = <int64_t*>(scratch + g.w + 8)
    cdef int32_t r32
    cdef Py_ssize_t it, id, ih, iw, ow, n, c, od, oh, o, pick, off, r, col
    cdef bint take, rows_pick
    cdef const real_t* plane
    cdef const real_t* row
    cdef real_t v
    cdef double vh, best
    cdef bint has_nan, first
    cdef Run run = _uniform_run(w, g)
    for it in range(begin, end):
        n, c, od, oh = at.i0, at.i1, at.i2, at.i3
        plane = x + n * g.xs[0] + c * g.xs[1]
        if w.d1[od] - w.d0[od] == 1 and w.h1[oh] - w.h0[oh] == 1:
            # Windows within one row (every 1-d pool): torch's one-pass rule per output, with
            # selects instead of branches. Two passes over a long row cost ~10 ns an output
            # (the pick scan's branch mispredicts once per window), this ~2.
            _max_row_windows(plane + w.d0[od] * g.xs[2] + w.h0[oh] * g.xs[3], y, yi, w, g,
                             n * g.ys[0] + c * g.ys[1] + od * g.ys[2] + oh * g.ys[3],
                             (w.d0[od] * g.h + w.h0[oh]) * g.w, &run)
            _step(&at)
            continue
        first = True
        if (real_t is float and ADAPOOL_HAS_ROWS and g.w % 8 == 0 and 16 <= g.w <= 56
                and w.d1[od] - w.d0[od] == 1 and w.h1[oh] > w.h0[oh] and g.h <= 2147483647):
            # rows of 16-56 columns: the column pass in registers (the same rule, same results);
            # first = False then leaves the loop below no rows to run
            adapool_colmax8_f32(<const float*>plane + w.d0[od] * g.xs[2] + w.h0[oh] * g.xs[3],
                                w.h1[oh] - w.h0[oh], g.xs[3], <int32_t>w.h0[oh], g.w,
                                <float*>colmax, colrow32)
            first = False
        for id in range(w.d0[od], w.d1[od] if first else w.d0[od]):
            for ih in range(w.h0[oh], w.h1[oh]):
                row = plane + id * g.xs[2] + ih * g.xs[3]   # W has unit stride (checked)
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
                        colmax[iw] = row[iw]
                    if real_t is float:
                        for iw in range(g.w):
                            colrow32[iw] = <int32_t>ih
                    else:
                        for iw in range(g.w):
                            colrow64[iw] = ih
                elif real_t is float:
                    # torch's rule per column: a NaN, once taken, stays (x > NaN is false)
                    for iw in range(g.w):
                        v = row[iw]
                        take = (v > colmax[iw]) | (v != v)
                        colmax[iw] = v if take else colmax[iw]
                        colrow32[iw] = <int32_t>ih if take else colrow32[iw]
                else:
                    for iw in range(g.w):
                        v = row[iw]
                        take = (v > colmax[iw]) | (v != v)
                        colmax[iw] = v if take else colmax[iw]
                        colrow64[iw] = ih if take else colrow64[iw]
                first = False
        o = n * g.ys[0] + c * g.ys[1] + od * g.ys[2] + oh * g.ys[3]
        # the kept rows give the pick: 2-d windows (rows of one D index), rows that fit the
        # row lanes (int32 for float32)
        rows_pick = (real_t is not half_bits and w.d1[od] - w.d0[od] == 1
                     and (real_t is double or g.h <= 2147483647))
        for ow in range(g.ow):
            if real_t is float and ADAPOOL_HAS_ROWS and rows_pick and 0 < w.w1[ow] - w.w0[ow] <= 8:
                col = adapool_pick8_f32(<const float*>colmax, colrow32, w.w0[ow], w.w1[ow] - w.w0[ow], &r32)
                if col >= 0:
                    off = w.d0[od] * g.xs[2] + r32 * g.xs[3] + col
                    if yi != NULL:
                        yi[o + ow * g.ys[4]] = (w.d0[od] * g.h + r32) * g.w + col
                    y[o + ow * g.ys[4]] = plane[off]
                    continue
                # a column holds NaN: the scan below
            best = -INFINITY
            has_nan = False
            for iw in range(w.w0[ow], w.w1[ow]):
                if real_t is half_bits:
                    vh = colmax_h[iw]
                    has_nan = has_nan | colnan[iw]
                else:
                    vh = colmax[iw]
                    has_nan = has_nan | (vh != vh)
                best = vh if vh > best else best
            if rows_pick and not has_nan:
                # The first maximum in row-major order: of the columns whose maximum is the
                # window's, the one whose first maximum lies in the earliest row (then the
                # leftmost), from the rows kept in pass (1), not a rescan of the window.
                r = w.h1[oh]
                col = w.w0[ow]
                for iw in range(w.w0[ow], w.w1[ow]):
                    if real_t is float:
                        if colmax[iw] == best and colrow32[iw] < r:
                            r = colrow32[iw]
                            col = iw
                    elif colmax[iw] == best and colrow64[iw] < r:
                        r = colrow64[iw]
                        col = iw
                if r == w.h1[oh]:   # all -inf: the window's first element
                    r = w.h0[oh]
                off = w.d0[od] * g.xs[2] + r * g.xs[3] + col
                pick = (w.d0[od] * g.h + r) * g.w + col
            else:
                pick = _find_in_window(plane, g, w.d0[od], w.d1[od], w.h0[oh], w.h1[oh],
                                       w.w0[ow], w.w1[ow], best, has_nan, &off)
            if yi != NULL:
                yi[o + ow * g.ys[4]] = pick
            # The picked element itself: the NaN with its payload, or the first maximum
            # (which keeps the sign of a zero maximum, as torch does).
            y[o + ow * g.ys[4]] = plane[off]
        _step(&at)


cdef inline bint _max_plane_simd(Py_ssize_t P) noexcept nogil:
    """Whether float32 global max pooling of P-element planes takes adapool_max_plane_f32."""
    return ADAPOOL_HAS_ROWS and P >= 16   # below 16: the tile path, as fast


# Global max of dense planes: the plane is one run. float32 planes of 16 elements or more take
# adapool_max_plane_f32; others eight independent maxima over the run (they vectorise), then
# the scan for torch's pick, as in the planar kernel.

cdef inline Py_ssize_t _plane_pick(const real_t* p, Py_ssize_t P) noexcept nogil:
    """Torch's pick in a dense plane of P elements: the last NaN, else the first maximum."""
    cdef Py_ssize_t i, j, rows = P // 8
    cdef double m[8]
    cdef double v, best
    cdef bint has_nan = False
    for j in range(8):
        m[j] = -INFINITY
    for i in range(rows):
        for j in range(8):
            v = _load(p[8 * i + j])
            m[j] = v if v > m[j] else m[j]
            has_nan = has_nan | (v != v)
    best = -INFINITY
    for j in range(8):
        best = m[j] if m[j] > best else best
    for i in range(rows * 8, P):
        v = _load(p[i])
        best = v if v > best else best
        has_nan = has_nan | (v != v)
    if has_nan:
        for i in range(P - 1, -1, -1):
            v = _load(p[i])
            if v != v:
                return i
    else:
        for i in range(P):
            if _load(p[i]) == best:
                return i
    return 0


cdef void _max_fwd_global(const real_t* x, real_t* y, int64_t* yi, const Geom* g,
                          Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    cdef Walk at = _walk_from(begin, 1, 1, g.c)
    cdef Py_ssize_t P = g.d * g.h * g.w, it, o, pick
    cdef const real_t* p
    for it in range(begin, end):
        p = x + at.i0 * g.xs[0] + at.i3 * g.xs[1]
        if real_t is float and _max_plane_simd(P):
            pick = adapool_max_plane_f32(p, P)
        else:
            pick = _plane_pick(p, P)
        o = at.i0 * g.ys[0] + at.i3 * g.ys[1]
        y[o] = p[pick]
        if yi != NULL:
            yi[o] = pick
        _step(&at)


# Channels-last max: per output row, every output column's maxima and picks over a block of
# channels, vectorised over C. Maxima stay in the input type for float32/float64 (float16: as
# float64) and picks are kept as int32 while a plane has fewer than 2**31 elements, so that
# values and indices fill SIMD lanes of the same width (float32 compared in float64 next to
# int64 picks ran at a quarter of the lanes).

# Channels-last max with its running maxima and picks in SIMD registers (GCC/clang vector
# extensions: AVX2 in the AVX2 build, SSE2 pairs in the baseline one). Per output pixel and
# chunk of channels the window is walked with the maxima held in registers and the result
# stored once: the scratch-row kernel below loads and stores each output column's maxima and
# picks for every window element (two loads and two stores per vector; (8,256,15,15) ran at
# 0.55x torch). Same rule, same scan order, same bits: take a value when greater or NaN.
cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define ADAPOOL_VECTOR_MAX_CL 1
    typedef float adapool_v8f __attribute__((vector_size(32), aligned(4), may_alias));
    typedef int32_t adapool_v8i __attribute__((vector_size(32), aligned(4), may_alias));
    typedef int64_t adapool_v8l __attribute__((vector_size(64), aligned(8), may_alias));
    typedef double adapool_v4d __attribute__((vector_size(32), aligned(8), may_alias));
    typedef int64_t adapool_v4l __attribute__((vector_size(32), aligned(8), may_alias));

    /* One output row's pixels (n, od, oh, *) over channels [c0, c0 + cl): x points at input
       (n, c0, 0, 0, 0), y (and yi, or NULL) at output (n, c0, od, oh, 0); strides in elements,
       the input's channel stride 1. Window rows [d0, d1) x [h0, h1), columns [w0[o], w1[o]);
       picks are plane indices (id * H + ih) * W + iw (int32 lanes for float32: the caller
       checks that a plane has fewer than 2**31 elements). */
    #define ADAPOOL_MAX_CL(NAME, T, VT, IT, VIT, LANES, WIDE)                                   \\
    static void NAME(const T* x, ptrdiff_t sd, ptrdiff_t sh, ptrdiff_t sw,                    \\
                     ptrdiff_t d0, ptrdiff_t d1, ptrdiff_t h0, ptrdiff_t h1,                  \\
                     const int64_t* w0, const int64_t* w1, ptrdiff_t now, ptrdiff_t H,        \\
                     ptrdiff_t W, ptrdiff_t cl, T* y, ptrdiff_t ysw, ptrdiff_t ysc,           \\
                     int64_t* yi) {                                                           \\
        ptrdiff_t o, k0, k, id, ih, iw;                                                        \\
        for (o = 0; o < now; o++) {                                                            \\
            const ptrdiff_t wa = (ptrdiff_t)w0[o], wb = (ptrdiff_t)w1[o];                     \\
            const IT first = (IT)((d0 * H + h0) * W + wa);                                     \\
            T* yo = y + o * ysw;                                                               \\
            int64_t* io = yi ? yi + o * ysw : NULL;                                            \\
            k0 = 0;                                                                            \\
            while (k0 < cl) {                                                                  \\
                /* 4 vectors a step (independent chains), then one; a tail narrower than a   \\
                   vector is the last full vector again (below), overlapping channels done    \\
                   already: same values and picks stored twice. Lane by lane each of those    \\
                   channels walked the window on its own (C = 12 ran 0.42x torch); that path  \\
                   is left for cl < LANES, which the caller sends to the scratch-row kernel */\\
                const ptrdiff_t nv = cl - k0 >= 4 * LANES ? 4 : (cl - k0 >= LANES ? 1 : 0);    \\
                VT b0, b1, b2, b3; VIT i0, i1, i2, i3;                                         \\
                T tb[LANES]; IT ti[LANES];                                                     \\
                if (nv == 0) {                                                                 \\
                    for (k = k0; k < cl; k++) {                                                \\
                        T best = -INFINITY; IT at = first;                                     \\
                        for (id = d0; id < d1; id++)                                           \\
                            for (ih = h0; ih < h1; ih++) {                                     \\
                                const T* r = x + id * sd + ih * sh + k;                        \\
                                const IT base = (IT)((id * H + ih) * W);                       \\
                                for (iw = wa; iw < wb; iw++) {                                 \\
                                    T v = r[iw * sw];                                          \\
                                    if (v > best || v != v) { best = v; at = base + (IT)iw; } \\
                                }                                                              \\
                            }                                                                  \\
                        yo[k * ysc] = best;                                                    \\
                        if (io) io[k * ysc] = at;                                              \\
                    }                                                                          \\
                    break;                                                                     \\
                }                                                                              \\
                b0 = b1 = b2 = b3 = (VT){0} - INFINITY;                                        \\
                i0 = i1 = i2 = i3 = (VIT){0} + first;                                          \\
                for (id = d0; id < d1; id++)                                                   \\
                    for (ih = h0; ih < h1; ih++) {                                             \\
                        const T* r = x + id * sd + ih * sh + k0;                               \\
                        const IT base = (IT)((id * H + ih) * W);                               \\
                        for (iw = wa; iw < wb; iw++) {                                         \\
                            const T* p = r + iw * sw;                                          \\
                            const VIT at = (VIT){0} + (base + (IT)iw);                         \\
                            VT v; VIT t;                                                       \\
                            /* take: greater, or NaN (v != v); selects through masks */       \\
                            v = *(const VT*)p;                                                 \\
                            t = (v > b0) | (v != v);                                           \\
                            b0 = (VT)(((VIT)v & t) | ((VIT)b0 & ~t)); i0 = (at & t) | (i0 & ~t); \\
                            if (nv == 4) {                                                     \\
                                /* this pixel's two lines of the next chunk, into L2: past the \\
                                   L3 the prefetchers lose a large window's pixel streams */  \\
                                __builtin_prefetch(p + 4 * LANES, 0, 2);                       \\
                                __builtin_prefetch(p + 6 * LANES, 0, 2);                       \\
                                v = *(const VT*)(p + LANES);                                   \\
                                t = (v > b1) | (v != v);                                       \\
                                b1 = (VT)(((VIT)v & t) | ((VIT)b1 & ~t)); i1 = (at & t) | (i1 & ~t); \\
                                v = *(const VT*)(p + 2 * LANES);                               \\
                                t = (v > b2) | (v != v);                                       \\
                                b2 = (VT)(((VIT)v & t) | ((VIT)b2 & ~t)); i2 = (at & t) | (i2 & ~t); \\
                                v = *(const VT*)(p + 3 * LANES);                               \\
                                t = (v > b3) | (v != v);                                       \\
                                b3 = (VT)(((VIT)v & t) | ((VIT)b3 & ~t)); i3 = (at & t) | (i3 & ~t); \\
                            }                                                                  \\
                        }                                                                      \\
                    }                                                                          \\
                {                                                                              \\
                    VT bs[4]; VIT is[4]; ptrdiff_t j;                                          \\
                    bs[0] = b0; bs[1] = b1; bs[2] = b2; bs[3] = b3;                            \\
                    is[0] = i0; is[1] = i1; is[2] = i2; is[3] = i3;                            \\
                    for (j = 0; j < nv; j++) {                                                 \\
                        T* yv = yo + (k0 + j * LANES) * ysc;                                   \\
                        if (ysc == 1) {                                                        \\
                            *(VT*)yv = bs[j];                                                  \\
                            if (io) *(WIDE*)(io + k0 + j * LANES) = __builtin_convertvector(is[j], WIDE); \\
                        } else {                                                               \\
                            memcpy(tb, &bs[j], sizeof tb); memcpy(ti, &is[j], sizeof ti);      \\
                            for (k = 0; k < LANES; k++) {                                      \\
                                yv[k * ysc] = tb[k];                                           \\
                                if (io) io[(k0 + j * LANES + k) * ysc] = ti[k];                \\
                            }                                                                  \\
                        }                                                                      \\
                    }                                                                          \\
                }                                                                              \\
                k0 += nv * LANES;                                                              \\
                if (k0 < cl && cl - k0 < LANES) k0 = cl - LANES;                               \\
            }                                                                                  \\
        }                                                                                      \\
    }
    ADAPOOL_MAX_CL(adapool_max_cl_f32, float, adapool_v8f, int32_t, adapool_v8i, 8, adapool_v8l)
    ADAPOOL_MAX_CL(adapool_max_cl_f64, double, adapool_v4d, int64_t, adapool_v4l, 4, adapool_v4l)
    #else
    #define ADAPOOL_VECTOR_MAX_CL 0
    static void adapool_max_cl_f32(const float* x, ptrdiff_t sd, ptrdiff_t sh, ptrdiff_t sw,
        ptrdiff_t d0, ptrdiff_t d1, ptrdiff_t h0, ptrdiff_t h1, const int64_t* w0,
        const int64_t* w1, ptrdiff_t now, ptrdiff_t H, ptrdiff_t W, ptrdiff_t cl, float* y,
        ptrdiff_t ysw, ptrdiff_t ysc, int64_t* yi) {}
    static void adapool_max_cl_f64(const double* x, ptrdiff_t sd, ptrdiff_t sh, ptrdiff_t sw,
        ptrdiff_t d0, ptrdiff_t d1, ptrdiff_t h0, ptrdiff_t h1, const int64_t* w0,
        const int64_t* w1, ptrdiff_t now, ptrdiff_t H, ptrdiff_t W, ptrdiff_t cl, double* y,
        ptrdiff_t ysw, ptrdiff_t ysc, int64_t* yi) {}
    #endif
    """
    int ADAPOOL_VECTOR_MAX_CL
    void adapool_max_cl_f32(const float* x, Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t sw,
                            Py_ssize_t d0, Py_ssize_t d1, Py_ssize_t h0, Py_ssize_t h1,
                            const int64_t* w0, const int64_t* w1, Py_ssize_t now, Py_ssize_t H,
                            Py_ssize_t W, Py_ssize_t cl, float* y, Py_ssize_t ysw,
                            Py_ssize_t ysc, int64_t* yi) noexcept nogil
    void adapool_max_cl_f64(const double* x, Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t sw,
                            Py_ssize_t d0, Py_ssize_t d1, Py_ssize_t h0, Py_ssize_t h1,
                            const int64_t* w0, const int64_t* w1, Py_ssize_t now, Py_ssize_t H,
                            Py_ssize_t W, Py_ssize_t cl, double* y, Py_ssize_t ysw,
                            Py_ssize_t ysc, int64_t* yi) noexcept nogil



# Channels-last average of small windows (float32: at most _F32_FLUSH pixels, whose float32
# sums never flush; float64: the same small windows) with each chunk's sums in SIMD registers:
# the scratch-row kernel loads and stores every output column's sums for each window pixel
# ((8,256,14,14) avg_pool2d(3,2,1) ran 0.54-0.69x torch's channels-last kernel). Same order of
# additions per channel (window order from +0.0), the same sum * inverse in float64 rounded once:
# the same bits.
cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define ADAPOOL_VECTOR_AVG_CL 1
    typedef double adapool_v8d __attribute__((vector_size(64), aligned(8), may_alias));
    /* One vector of sums to means, stored: times 1 / divisor in T where that is exact (see
       below), else in double and rounded once. */
    #define ADAPOOL_AVG_PUT(T, VT, LANES, WIDE, SV, YV) do {                                   \\
            VT m_;                                                                             \\
            T* yv_ = (YV);                                                                     \\
            if (exact) m_ = (SV) * (T)iv;                                                      \\
            else m_ = __builtin_convertvector(__builtin_convertvector((SV), WIDE) * iv, VT);   \\
            if (ysc == 1) {                                                                    \\
                *(VT*)yv_ = m_;                                                                \\
            } else {                                                                           \\
                T l_[LANES];                                                                   \\
                memcpy(l_, &m_, sizeof l_);                                                    \\
                for (k = 0; k < LANES; k++) yv_[k * ysc] = l_[k];                              \\
            }                                                                                  \\
        } while (0)
    /* One output row's pixels (n, od, oh, *) over channels [c0, c0 + cl), cl >= LANES: x at
       input (n, c0, 0, 0, 0), y at output (n, c0, od, oh, 0), strides in elements (the input's
       channel stride 1); window rows [d0, d1) x [h0, h1), columns [w0[o], w1[o]); inv[o] the
       output's 1 / divisor. Returns whether some sum came out inf or NaN. */
    #define ADAPOOL_AVG_CL(NAME, T, VT, LANES, WIDE)                                           \\
    static int NAME(const T* x, ptrdiff_t sd, ptrdiff_t sh, ptrdiff_t sw,                     \\
                    ptrdiff_t d0, ptrdiff_t d1, ptrdiff_t h0, ptrdiff_t h1,                   \\
                    const int64_t* w0, const int64_t* w1, ptrdiff_t now, const double* inv,   \\
                    ptrdiff_t cl, T* y, ptrdiff_t ysw, ptrdiff_t ysc) {                       \\
        ptrdiff_t o, k0, k, id, ih, iw;                                                        \\
        VT bad = (VT){0};   /* + (s - s) per sum: NaN once any sum is inf or NaN */            \\
        T lane[LANES];                                                                         \\
        for (o = 0; o < now; o++) {                                                            \\
            const ptrdiff_t wa = (ptrdiff_t)w0[o], wb = (ptrdiff_t)w1[o];                     \\
            const double iv = inv[o];                                                          \\
            uint64_t ib;                                                                       \\
            int exact;                                                                         \\
            T* yo = y + o * ysw;                                                               \\
            /* 1 / a power of two (no mantissa bits, 2**-60 or more): the product is exact in    \\
               T as in double, so it rounds once either way (2x2 windows: half the kernel's      \\
               time was the widening) */                                                         \\
            memcpy(&ib, &iv, sizeof ib);                                                       \\
            exact = (ib & 0xFFFFFFFFFFFFFULL) == 0 && (ib >> 52) >= 1023 - 60 && (ib >> 52) <= 1023; \\
            /* Four vectors a step, in a loop of their own: one loop for both widths, testing \\
               the width per pixel, took 1.15x the time on adaptive 14 -> 7 and 1.05-1.13x on   \\
               avg_pool2d(3,2,1), float32. Four named sums, not an array: gcc kept an array   \\
               indexed below on the stack, an add then waiting on a store and a load. */      \\
            for (k0 = 0; k0 + 4 * LANES <= cl; k0 += 4 * LANES) {                             \\
                VT s0 = (VT){0}, s1 = (VT){0}, s2 = (VT){0}, s3 = (VT){0};                     \\
                for (id = d0; id < d1; id++)                                                   \\
                    for (ih = h0; ih < h1; ih++) {                                             \\
                        const T* r = x + id * sd + ih * sh + k0;                               \\
                        for (iw = wa; iw < wb; iw++) {                                         \\
                            const T* p = r + iw * sw;                                          \\
                            s0 += *(const VT*)p;                                               \\
                            s1 += *(const VT*)(p + LANES);                                     \\
                            s2 += *(const VT*)(p + 2 * LANES);                                 \\
                            s3 += *(const VT*)(p + 3 * LANES);                                 \\
                        }                                                                      \\
                    }                                                                          \\
                bad += (s0 - s0) + (s1 - s1) + (s2 - s2) + (s3 - s3);                          \\
                ADAPOOL_AVG_PUT(T, VT, LANES, WIDE, s0, yo + k0 * ysc);                        \\
                ADAPOOL_AVG_PUT(T, VT, LANES, WIDE, s1, yo + (k0 + LANES) * ysc);              \\
                ADAPOOL_AVG_PUT(T, VT, LANES, WIDE, s2, yo + (k0 + 2 * LANES) * ysc);          \\
                ADAPOOL_AVG_PUT(T, VT, LANES, WIDE, s3, yo + (k0 + 3 * LANES) * ysc);          \\
            }                                                                                  \\
            /* then one vector a step; a tail narrower than a vector is the last full vector   \\
               again: the same sums of the same channels, stored twice */                      \\
            while (k0 < cl) {                                                                  \\
                VT s0 = (VT){0};                                                               \\
                if (cl - k0 < LANES) k0 = cl - LANES;                                          \\
                for (id = d0; id < d1; id++)                                                   \\
                    for (ih = h0; ih < h1; ih++) {                                             \\
                        const T* r = x + id * sd + ih * sh + k0;                               \\
                        for (iw = wa; iw < wb; iw++)                                           \\
                            s0 += *(const VT*)(r + iw * sw);                                   \\
                    }                                                                          \\
                bad += s0 - s0;                                                                \\
                ADAPOOL_AVG_PUT(T, VT, LANES, WIDE, s0, yo + k0 * ysc);                        \\
                k0 += LANES;                                                                   \\
            }                                                                                  \\
        }                                                                                      \\
        memcpy(lane, &bad, sizeof lane);                                                       \\
        for (k = 0; k < LANES; k++)                                                            \\
            if (lane[k] != lane[k]) return 1;                                                  \\
        return 0;                                                                              \\
    }
    ADAPOOL_AVG_CL(adapool_avg_cl_f32, float, adapool_v8f, 8, adapool_v8d)
    ADAPOOL_AVG_CL(adapool_avg_cl_f64, double, adapool_v4d, 4, adapool_v4d)

    /* The channels-last row stream's additions (_avg_fwd_cl) of one window row to one output
       column, float32: fa[k] += p[j * ps + k] for the row's pixels j < L in order, and before
       a lane would take its (flush + 1)-th float32 addition, acc[k] += fa[k] and fa[k]
       restarts from +0.0: the scalar loop's operations per lane, so its bits. count is how
       many additions fa holds; the new count is returned. Chunks of 32 channels (then 8) run
       the row with their sums in registers (the scalar loop loaded and stored fa for every
       pixel: (1,16,223,223) -> 7, 16 channels, took 2 ns a pixel); cl % 8 channels go one at
       a time. */
    #define ADAPOOL_RUN_CHUNK(NV) do {                                                        \\
            adapool_v8f f0 = *(adapool_v8f*)(fa + k0), f1 = f0, f2 = f0, f3 = f0;             \\
            if (NV == 4) {                                                                    \\
                f1 = *(adapool_v8f*)(fa + k0 + 8);                                            \\
                f2 = *(adapool_v8f*)(fa + k0 + 16);                                           \\
                f3 = *(adapool_v8f*)(fa + k0 + 24);                                           \\
            }                                                                                 \\
            c = count;                                                                        \\
            for (j = 0; j < L; ) {                                                            \\
                if (c == flush) {                                                             \\
                    *(adapool_v8d*)(acc + k0) += __builtin_convertvector(f0, adapool_v8d);    \\
                    f0 = (adapool_v8f){0};                                                    \\
                    if (NV == 4) {                                                            \\
                        *(adapool_v8d*)(acc + k0 + 8) += __builtin_convertvector(f1, adapool_v8d);  \\
                        *(adapool_v8d*)(acc + k0 + 16) += __builtin_convertvector(f2, adapool_v8d); \\
                        *(adapool_v8d*)(acc + k0 + 24) += __builtin_convertvector(f3, adapool_v8d); \\
                        f1 = f2 = f3 = (adapool_v8f){0};                                      \\
                    }                                                                         \\
                    c = 0;                                                                    \\
                }                                                                             \\
                m = L - j < flush - c ? L - j : flush - c;                                    \\
                c += m;                                                                       \\
                for (; m > 0; m--, j++) {                                                     \\
                    const float* q = p + j * ps + k0;                                         \\
                    f0 += *(const adapool_v8f*)q;                                             \\
                    if (NV == 4) {                                                            \\
                        f1 += *(const adapool_v8f*)(q + 8);                                   \\
                        f2 += *(const adapool_v8f*)(q + 16);                                  \\
                        f3 += *(const adapool_v8f*)(q + 24);                                  \\
                    }                                                                         \\
                }                                                                             \\
            }                                                                                 \\
            *(adapool_v8f*)(fa + k0) = f0;                                                    \\
            if (NV == 4) {                                                                    \\
                *(adapool_v8f*)(fa + k0 + 8) = f1;                                            \\
                *(adapool_v8f*)(fa + k0 + 16) = f2;                                           \\
                *(adapool_v8f*)(fa + k0 + 24) = f3;                                           \\
            }                                                                                 \\
            k0 += 8 * NV;                                                                     \\
        } while (0)
    static ptrdiff_t adapool_row_run_f32(const float* p, ptrdiff_t ps, ptrdiff_t L, ptrdiff_t cl,
                                         float* fa, double* acc, ptrdiff_t count, ptrdiff_t flush) {
        ptrdiff_t k0 = 0, k, j, m, c = count;
        while (cl - k0 >= 32) ADAPOOL_RUN_CHUNK(4);
        while (cl - k0 >= 8) ADAPOOL_RUN_CHUNK(1);
        for (k = k0; k < cl; k++) {
            c = count;
            for (j = 0; j < L; j++) {
                if (c == flush) {
                    acc[k] += fa[k];
                    fa[k] = 0.0f;
                    c = 0;
                }
                fa[k] += p[j * ps + k];
                c++;
            }
        }
        return c;
    }
    #undef ADAPOOL_RUN_CHUNK
    #else
    #define ADAPOOL_VECTOR_AVG_CL 0
    static int adapool_avg_cl_f32(const float* x, ptrdiff_t sd, ptrdiff_t sh, ptrdiff_t sw,
        ptrdiff_t d0, ptrdiff_t d1, ptrdiff_t h0, ptrdiff_t h1, const int64_t* w0,
        const int64_t* w1, ptrdiff_t now, const double* inv, ptrdiff_t cl, float* y,
        ptrdiff_t ysw, ptrdiff_t ysc) { return 0; }
    static int adapool_avg_cl_f64(const double* x, ptrdiff_t sd, ptrdiff_t sh, ptrdiff_t sw,
        ptrdiff_t d0, ptrdiff_t d1, ptrdiff_t h0, ptrdiff_t h1, const int64_t* w0,
        const int64_t* w1, ptrdiff_t now, const double* inv, ptrdiff_t cl, double* y,
        ptrdiff_t ysw, ptrdiff_t ysc) { return 0; }
    /* (never called: the caller checks ADAPOOL_VECTOR_AVG_CL) */
    static ptrdiff_t adapool_row_run_f32(const float* p, ptrdiff_t ps, ptrdiff_t L, ptrdiff_t cl,
        float* fa, double* acc, ptrdiff_t count, ptrdiff_t flush) { return count; }
    #endif
    """
    int ADAPOOL_VECTOR_AVG_CL
    Py_ssize_t adapool_row_run_f32(const float* p, Py_ssize_t ps, Py_ssize_t L, Py_ssize_t cl,
                                   float* fa, double* acc, Py_ssize_t count, Py_ssize_t flush) noexcept nogil
    int adapool_avg_cl_f32(const float* x, Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t sw,
                           Py_ssize_t d0, Py_ssize_t d1, Py_ssize_t h0, Py_ssize_t h1,
                           const int64_t* w0, const int64_t* w1, Py_ssize_t now, const double* inv,
                           Py_ssize_t cl, float* y, Py_ssize_t ysw, Py_ssize_t ysc) noexcept nogil
    int adapool_avg_cl_f64(const double* x, Py_ssize_t sd, Py_ssize_t sh, Py_ssize_t sw,
                           Py_ssize_t d0, Py_ssize_t d1, Py_ssize_t h0, Py_ssize_t h1,
                           const int64_t* w0, const int64_t* w1, Py_ssize_t now, const double* inv,
                           Py_ssize_t cl, double* y, Py_ssize_t ysw, Py_ssize_t ysc) noexcept nogil

ctypedef fused pick_t:
    int32_t
    int64_t


cdef inline void _max_cl_item(const real_t* x, real_t* y, int64_t* yi, const Win* w,
                              const Geom* g, Py_ssize_t pitch, double* scratch, pick_t* where,
                              Py_ssize_t n, Py_ssize_t od, Py_ssize_t oh,
                              Py_ssize_t c0, Py_ssize_t cl) noexcept nogil:
    # channels [c0, c0 + cl) of output row (n, od, oh); each output column's maxima and picks
    # are pitch apart in the scratch (pitch >= cl)
    cdef Py_ssize_t id, ih, iw, ow, k, o
    cdef Py_ssize_t ysc = g.ys[1]
    cdef real_t* best = <real_t*>scratch     # float/double input
    cdef double* best_h = scratch            # float16 input, as float64
    cdef pick_t idx, first
    cdef Py_ssize_t base
    cdef real_t v
    cdef double vh
    cdef bint take
    cdef const real_t* row
    cdef const real_t* p
    cdef real_t* bv
    cdef double* bh
    cdef pick_t* bi
    for ow in range(g.ow):
        first = <pick_t>((w.d0[od] * g.h + w.h0[oh]) * g.w + w.w0[ow])
        for k in range(cl):
            if real_t is half_bits:
                best_h[ow * pitch + k] = -INFINITY
            else:
                best[ow * pitch + k] = -INFINITY
            where[ow * pitch + k] = first
    for id in range(w.d0[od], w.d1[od]):
        for ih in range(w.h0[oh], w.h1[oh]):
            row = x + n * g.xs[0] + c0 + id * g.xs[2] + ih * g.xs[3]
            base = (id * g.h + ih) * g.w
            for ow in range(g.ow):
                bv = best + ow * pitch
                bh = best_h + ow * pitch
                bi = where + ow * pitch
                for iw in range(w.w0[ow], w.w1[ow]):
                    p = row + iw * g.xs[4]
                    idx = <pick_t>(base + iw)
                    # Selects, not branches, so that gcc vectorises over C. A NaN always
                    # takes (the last NaN wins); otherwise only a strictly greater value (the
                    # first maximum wins).
                    if real_t is half_bits:
                        for k in range(cl):
                            vh = _load(p[k])
                            take = (vh > bh[k]) | (vh != vh)
                            bh[k] = vh if take else bh[k]
                            bi[k] = idx if take else bi[k]
                    else:
                        for k in range(cl):
                            v = p[k]
                            take = (v > bv[k]) | (v != v)
                            bv[k] = v if take else bv[k]
                            bi[k] = idx if take else bi[k]
    for ow in range(g.ow):
        o = n * g.ys[0] + c0 * ysc + od * g.ys[2] + oh * g.ys[3] + ow * g.ys[4]
        for k in range(cl):
            if real_t is half_bits:
                _store(y + o + k * ysc, best_h[ow * pitch + k])
            else:
                y[o + k * ysc] = best[ow * pitch + k]
            if yi != NULL:
                yi[o + k * ysc] = where[ow * pitch + k]


cdef void _max_fwd_cl(const real_t* x, real_t* y, int64_t* yi, const Win* w, const Geom* g,
                      Py_ssize_t cblock, double* scratch, Py_ssize_t begin,
                      Py_ssize_t end) noexcept nogil:
    cdef Py_ssize_t nblocks = (g.c + cblock - 1) // cblock
    cdef Walk at = _walk_from(begin, g.od, g.oh, nblocks)
    cdef Py_ssize_t span = g.ow * cblock, it
    cdef bint narrow = g.d * g.h * g.w <= 2147483647
    cdef Py_ssize_t c0, od, oh, cl, xo, yo
    cdef Py_ssize_t ysc = g.ys[1]
    # Blocks narrower than one register vector (8 float32, 4 float64 lanes) keep the
    # scratch-row kernel: the register kernel would walk each output pixel's window once per
    # channel, lane by lane (C = 4 float32 ran 0.42x torch, 3.4x slower than the scratch row).
    cdef Py_ssize_t lanes = 8 if real_t is float else 4
    # Large windows over wide pixels walk the input in address order instead (the scratch-row
    # kernel): the register kernel reads 2 cache lines of every window pixel per chunk of
    # channels, a pixel's stride apart, which the hardware prefetchers don't follow once the
    # window has dozens of pixels, and a pixel stride of a multiple of 4 KiB maps them all to
    # one L1 set. Measured, one thread, float32 (benchmarks/README.md): (32,2048,7,7) -> 1
    # 0.76 -> 0.32 ms, (4,512,56,56) -> 7 3.2 -> 1.5 ms; windows of 2x2 or 3x3 pixels and
    # narrower pixels stay faster in registers.
    cdef Py_ssize_t isz = 8 if real_t is half_bits else sizeof(real_t)
    cdef Py_ssize_t pix = _pixel_bytes(g, sizeof(real_t))
    cdef Py_ssize_t area = 0                            # a middle output's window (no item: none)
    if begin < end:
        area = ((w.d1[g.od // 2] - w.d0[g.od // 2]) * (w.h1[g.oh // 2] - w.h0[g.oh // 2])
                * (w.w1[g.ow // 2] - w.w0[g.ow // 2]))
    cdef bint scan = area >= 16 and (pix >= 4096 or (g.od * g.oh * g.ow == 1 and pix >= 512) or (
        pix >= 1024 and g.n * g.c * g.d * g.h * g.w * sizeof(real_t) > _LLC_BYTES // 2))
    # the scratch row's maxima and picks of every output column stay within L1: blocks of
    # channels wider than that are walked in equal parts (2 KiB of each 8 KiB pixel still
    # streams), a multiple of 16 channels
    cdef Py_ssize_t per = g.ow * (isz + (4 if narrow else 8))
    cdef Py_ssize_t parts = (per * cblock + _MAX_CL_SCRATCH - 1) // _MAX_CL_SCRATCH
    cdef Py_ssize_t sub = cblock if parts <= 1 else min(cblock, ((cblock + parts - 1) // parts + 15) & ~15)
    cdef Py_ssize_t s0
    for it in range(begin, end):
        c0 = at.i3 * cblock
        cl = min(cblock, g.c - c0)
        if (real_t is not half_bits and ADAPOOL_VECTOR_MAX_CL and narrow and cl >= lanes
                and not scan):
            od, oh = at.i1, at.i2
            xo = at.i0 * g.xs[0] + c0
            yo = at.i0 * g.ys[0] + c0 * ysc + od * g.ys[2] + oh * g.ys[3]
            if real_t is float:
                adapool_max_cl_f32(x + xo, g.xs[2], g.xs[3], g.xs[4], w.d0[od], w.d1[od], w.h0[oh],
                                   w.h1[oh], w.w0, w.w1, g.ow, g.h, g.w, cl, y + yo, g.ys[4], ysc,
                                   yi + yo if yi != NULL else NULL)
            elif real_t is double:
                adapool_max_cl_f64(x + xo, g.xs[2], g.xs[3], g.xs[4], w.d0[od], w.d1[od], w.h0[oh],
                                   w.h1[oh], w.w0, w.w1, g.ow, g.h, g.w, cl, y + yo, g.ys[4], ysc,
                                   yi + yo if yi != NULL else NULL)
        else:
            s0 = c0
            while s0 < c0 + cl:
                if narrow:
                    _max_cl_item(x, y, yi, w, g, sub, scratch, <int32_t*>(scratch + span),
                                 at.i0, at.i1, at.i2, s0, min(sub, c0 + cl - s0))
                else:
                    _max_cl_item(x, y, yi, w, g, sub, scratch, <int64_t*>(scratch + span),
                                 at.i0, at.i1, at.i2, s0, min(sub, c0 + cl - s0))
                s0 += sub
        _step(&at)


# Dilated max pooling (max_poolNd with dilation > 1): windows are arithmetic progressions, so
# the table's third column per axis is the step (the dilation) instead of a divisor factor, and
# [start, end) is torch's: the first in-bounds element and min(start + (k-1)*d + 1, size).
# Item = one output row (n, c, od, oh); torch's one-pass rule as written, any strides.

cdef void _max_fwd_dilated(const real_t* x, real_t* y, int64_t* yi, const Win* w,
                           const Geom* g, Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    cdef Walk at = _walk_from(begin, g.c, g.od, g.oh)
    cdef Py_ssize_t it, id, ih, iw, ow, o, pick, off, best_off
    cdef const real_t* plane
    cdef double v, best
    cdef bint found
    for it in range(begin, end):
        plane = x + at.i0 * g.xs[0] + at.i1 * g.xs[1]
        o = at.i0 * g.ys[0] + at.i1 * g.ys[1] + at.i2 * g.ys[2] + at.i3 * g.ys[3]
        for ow in range(g.ow):
            best = -INFINITY
            pick = (w.d0[at.i2] * g.h + w.h0[at.i3]) * g.w + w.w0[ow]
            best_off = 0
            found = False   # (offsets may be negative: reversed views)
            id = w.d0[at.i2]
            while id < w.d1[at.i2]:
                ih = w.h0[at.i3]
                while ih < w.h1[at.i3]:
                    iw = w.w0[ow]
                    while iw < w.w1[ow]:
                        off = id * g.xs[2] + ih * g.xs[3] + iw * g.xs[4]
                        v = _load(plane[off])
                        if v > best or v != v:
                            best = v
                            best_off = off
                            found = True
                            pick = (id * g.h + ih) * g.w + iw
                        iw = iw + w.wk[ow]
                    ih = ih + w.hk[at.i3]
                id = id + w.dk[at.i2]
            if yi != NULL:
                yi[o + ow * g.ys[4]] = pick
            if found:
                y[o + ow * g.ys[4]] = plane[best_off]   # the element itself (NaN payload, -0.0)
            else:
                _store(y + o + ow * g.ys[4], -INFINITY)   # no element in the window
        _step(&at)


# ---------------------------------------------------------------------------------------------
# Max pooling backward: grad_input[index] += grad_output for every output, in output order.
# Indices come from the caller, so each is checked against the plane before it is used: an
# out-of-range index is reported, never written. Item = one plane (planar) or one image and
# block of channels (channels-last): a plane's outputs only ever write that plane, so threads
# never share an element. grad_input is dense in its layout (the Python layer allocates it).

cdef int _max_bwd_planar(const real_t* go, const int64_t* ind, real_t* gi, const Geom* g,
                         Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    # grad_input is dense (the wrapper checks), so plane `it` starts at it * P; so are
    # grad_output and the indices (the Python layer makes them so), which lets a plane's
    # outputs be one run. An index is checked with one unsigned compare (a negative one wraps
    # to a huge value).
    cdef Walk at = _walk_from(begin, 1, 1, g.c)
    cdef Py_ssize_t P = g.d * g.h * g.w, Q = g.od * g.oh * g.ow, it, k, od, oh, ow, o, base
    cdef bint dense = ((g.ow == 1 or g.ys[4] == 1) and (g.oh == 1 or g.ys[3] == g.ow)
                       and (g.od == 1 or g.ys[2] == g.oh * g.ow) and (g.c == 1 or g.ys[1] == Q)
                       and (g.n == 1 or g.ys[0] == g.c * Q))
    cdef real_t* plane
    cdef const real_t* gp
    cdef const int64_t* ip
    cdef int bad = 0
    for it in range(begin, end):
        plane = gi + it * P
        memset(plane, 0, P * sizeof(real_t))
        if dense:
            gp = go + it * Q
            ip = ind + it * Q
            for k in range(Q):
                bad |= _scatter(plane, ip[k], P, gp[k])
        else:
            base = at.i0 * g.ys[0] + at.i3 * g.ys[1]
            for od in range(g.od):
                for oh in range(g.oh):
                    for ow in range(g.ow):
                        o = base + od * g.ys[2] + oh * g.ys[3] + ow * g.ys[4]
                        bad |= _scatter(plane, ind[o], P, go[o])
        _step(&at)
    return bad


cdef inline int _scatter(real_t* plane, int64_t index, Py_ssize_t P, real_t grad) noexcept nogil:
    """plane[index] += grad, or 1 (and nothing written) when index is outside [0, P)."""
    cdef uint64_t i = <uint64_t>index
    if i >= <uint64_t>P:
        return 1
    if real_t is half_bits:
        _store(plane + i, _load(plane[i]) + _load(grad))
    else:
        plane[i] += grad
    return 0


cdef int _max_bwd_cl(const real_t* go, const int64_t* ind, real_t* gi, const Geom* g,
                     Py_ssize_t cblock, Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    cdef Py_ssize_t nblocks = (g.c + cblock - 1) // cblock
    cdef Walk at = _walk_from(begin, 1, 1, nblocks)
    cdef Py_ssize_t P = g.d * g.h * g.w, it, od, oh, ow, o, k, c0, cl, px, C = g.c
    cdef Py_ssize_t ysc = g.ys[1]
    cdef int64_t i
    cdef real_t* image
    cdef real_t* q
    cdef int bad = 0
    for it in range(begin, end):
        c0 = at.i3 * cblock
        cl = min(cblock, g.c - c0)
        image = gi + at.i0 * g.xs[0] + c0
        if cl == g.c:
            memset(image, 0, P * g.c * sizeof(real_t))   # the whole image is one run
        else:
            for px in range(P):
                memset(image + px * g.c, 0, cl * sizeof(real_t))
        for od in range(g.od):
            for oh in range(g.oh):
                for ow in range(g.ow):
                    o = at.i0 * g.ys[0] + c0 * ysc + od * g.ys[2] + oh * g.ys[3] + ow * g.ys[4]
                    if ysc == 1:
                        bad |= _scatter_pixel(image, go + o, ind + o, cl, P, C)
                        continue
                    for k in range(cl):
                        i = ind[o + k * ysc]
                        if i < 0 or i >= P:
                            bad = 1
                            continue
                        q = image + i * g.c + k
                        if real_t is half_bits:
                            _store(q, _load(q[0]) + _load(go[o + k * ysc]))
                        else:
                            q[0] += go[o + k * ysc]
        _step(&at)
    return bad


cdef inline int _scatter_pixel(real_t* image, const real_t* go, const int64_t* ind, Py_ssize_t cl,
                               Py_ssize_t P, Py_ssize_t C) noexcept nogil:
    """One output pixel's channels into a channels-last image: image[ind[k] * C + k] += go[k],
    in channel order, or 1 (nothing written there) for an index outside [0, P). The geometry is
    in locals: through Geom, every store (gcc may not assume it can't alias) reloaded it."""
    cdef Py_ssize_t k
    cdef uint64_t i
    cdef int bad = 0
    for k in range(cl):
        i = <uint64_t>ind[k]
        if i >= <uint64_t>P:
            bad = 1
        elif real_t is half_bits:
            _store(image + i * C + k, _load(image[i * C + k]) + _load(go[k]))
        else:
            image[i * C + k] += go[k]
    return bad


# The kernels, as _run names them.
cdef enum Kind:
    AVG_FWD = 0
    AVG_BWD = 1
    MAX_FWD = 2
    MAX_BWD = 3
    MAX_FWD_DILATED = 4
    AVG_FWD_ROWS = 5      # chosen by _run for AVG_FWD (_rows_fit), never passed in
    MAX_FWD_ROWS = 6      # and for MAX_FWD
    AVG_FWD_PLANES8 = 7   # chosen by _run for AVG_FWD (_planes8_fit), never passed in


# ---------------------------------------------------------------------------------------------
# Small planes, planar layout: per-plane and per-row overhead, not memory, is the cost of the
# planar forward kernels on planes of a few hundred elements (~2 ns an element on 14x14, 20x the
# read of the input). Such planes are gathered, a block of channels at a time, into a
# channels-last tile that stays in L1/L2, and the channels-last kernel pools the tile,
# vectorised over the block. Item = one image and block of channels. Values, picks and
# rounding are the channels-last kernel's, which the planar kernel's equal.

cdef enum:
    _TILE_BYTES = 262144  # one tile: L2-resident (a quarter of L2 on the machines measured)
    _TILE_MIN = 8         # channels per tile at least (one float32 AVX2 vector) ...
    _TILE_MAX = 128       # ... and at most (256 float32 channels: 3x slower max on 14x14)
    # Largest planes that take the tile path, measured against the planar kernels on one
    # thread: average pooling gains 1.6-4x up to 28x28 and loses from 32x32 (its planar kernel
    # vectorises rows wider than _NARROW); max pooling gains 1.6-10x up to 56x56.
    _TILE_PLANE_AVG = 900
    _TILE_PLANE_MAX = 4096
    # ... except float32 max pooling of planes this large with windows at most 8 wide and at
    # least this large (_planar_max_wins): since the planar kernel picks from column maxima
    # in one vector per window, it wins there
    _PLANAR_MAX_PLANE = 2048
    _PLANAR_MAX_AREA = 32


cdef inline Py_ssize_t _tile_channels(int kind, const Geom* g, Py_ssize_t itemsize) noexcept nogil:
    """Channels per tile for the small-plane path (equal blocks, a multiple of 8), or 0 when
    the planes are too large or there are too few channels to fill a tile."""
    cdef Py_ssize_t P = g.d * g.h * g.w, t, nb
    if g.c < _TILE_MIN or P > (_TILE_PLANE_AVG if kind == AVG_FWD else _TILE_PLANE_MAX):
        return 0
    if kind == MAX_FWD and g.d == 1 and g.h == 1 and g.w >= 512:
        return 0   # long 1-d rows: the planar kernel's uniform runs vectorise over the outputs (2-3x faster)
    t = max(<Py_ssize_t>_TILE_MIN, min(<Py_ssize_t>_TILE_MAX, _TILE_BYTES // (P * itemsize)))
    nb = (g.c + t - 1) // t
    return (((g.c + nb - 1) // nb) + 7) & ~(<Py_ssize_t>7)


cdef inline bint _planar_max_wins(const Win* w, const Geom* g) noexcept nogil:
    """float32 max pooling of 2-d planes of at least _PLANAR_MAX_PLANE elements whose windows
    are at most 8 wide (adapool_pick8_f32 picks each in one vector) and hold at least
    _PLANAR_MAX_AREA elements: the planar kernel, not the tile. Measured 2026-12-05 (2 threads,
    against torch eager in the same process): 56x56 -> 7 1.4-1.9x and 64x64 -> 8 1.2-1.4x
    faster; 44x44 -> 6 even; the tile stays 2-4x faster on 32x32 -> 7 and 28x28 -> 5 (smaller
    planes and windows) and even on 56x56 -> 5 (windows 11-12 wide)."""
    cdef Py_ssize_t i, kw = g.w, kh = g.h
    if not ADAPOOL_HAS_ROWS or g.d != 1 or g.h * g.w < _PLANAR_MAX_PLANE:
        return False
    for i in range(g.ow):
        if w.w1[i] - w.w0[i] > 8 or w.w1[i] <= w.w0[i]:
            return False
        kw = min(kw, w.w1[i] - w.w0[i])
    for i in range(g.oh):
        kh = min(kh, w.h1[i] - w.h0[i])
    return kw * kh >= _PLANAR_MAX_AREA


cdef inline Py_ssize_t _tile_stride(Py_ssize_t tb, Py_ssize_t itemsize) noexcept nogil:
    # A pixel stride of a multiple of 256 bytes puts the eight stores of a transposed block
    # (and the window's pixels) 4 KiB apart, which the load/store unit serialises: 3x slower
    # at 256 float32 channels. Eight lanes of padding break the pattern.
    return tb + 8 if (tb * itemsize) % 256 == 0 else tb


cdef inline Py_ssize_t _doubles(Py_ssize_t count, Py_ssize_t itemsize) noexcept nogil:
    return _pad8((count * itemsize + 7) // 8)


cdef inline Py_ssize_t _tiled_scratch(int kind, const Geom* g, Py_ssize_t tb,
                                      Py_ssize_t itemsize) noexcept nogil:
    """Per-thread scratch of the small-plane path, in doubles: the input tile, the output tile
    (and its picks), then the channels-last kernel's own scratch."""
    cdef Py_ssize_t O = g.od * g.oh * g.ow, ts = _tile_stride(tb, itemsize)
    cdef Py_ssize_t n = _doubles(g.d * g.h * g.w * ts, itemsize) + _doubles(O * ts, itemsize)
    if kind == AVG_FWD:
        return n + _pad8(g.ow * tb) * 2 + g.ow
    return n + _doubles(O * ts, 8) + 2 * g.ow * tb


cdef inline void _transpose(const real_t* src, Py_ssize_t cs, Py_ssize_t n, Py_ssize_t cl,
                            real_t* dst, Py_ssize_t ds) noexcept nogil:
    """dst[j * ds + k] = src[k * cs + j] for j < n, k < cl: bits copied, in-register blocks
    for float32/float64 (a scalar gather costs 0.75-1.2 ns an element, more than pooling)."""
    cdef Py_ssize_t j, k
    if real_t is float:
        adapool_tile_f32(src, cs, n, cl, dst, ds)
    elif real_t is double:
        adapool_tile_b64(src, cs, n, cl, dst, ds)
    else:
        # Pixel by pixel, the channels in turn: dst is written in order and each source
        # run's current cache line serves the next pixels.
        for j in range(n):
            for k in range(cl):
                dst[j * ds + k] = src[k * cs + j]


cdef void _fwd_tiled(int kind, const real_t* x, real_t* y, int64_t* yi, const Win* w,
                     const Geom* g, Py_ssize_t tb, double* scratch, Py_ssize_t begin,
                     Py_ssize_t end) noexcept nogil:
    cdef Py_ssize_t nblocks = (g.c + tb - 1) // tb
    cdef Walk at = _walk_from(begin, 1, 1, nblocks)
    cdef Py_ssize_t P = g.d * g.h * g.w, O = g.od * g.oh * g.ow
    cdef Py_ssize_t ts = _tile_stride(tb, sizeof(real_t))
    cdef Py_ssize_t it, k, c0, cl, id, ih, od, oh, ow, o, yo, at_o
    cdef real_t* tile = <real_t*>scratch
    cdef real_t* otile = <real_t*>(scratch + _doubles(P * ts, sizeof(real_t)))
    cdef int64_t* itile = <int64_t*>(<double*>otile + _doubles(O * ts, sizeof(real_t)))
    cdef double* rest = <double*>itile + (_doubles(O * ts, 8) if kind == MAX_FWD else 0)
    cdef const real_t* plane
    cdef bint dense_in = (g.h == 1 or g.xs[3] == g.w) and (g.d == 1 or g.xs[2] == g.h * g.w)
    # Output planes dense (C-contiguous results): the output tile goes back in blocks too.
    cdef bint dense_out = ((g.ow == 1 or g.ys[4] == 1) and (g.oh == 1 or g.ys[3] == g.ow)
                           and (g.od == 1 or g.ys[2] == g.oh * g.ow))
    cdef Geom tg = g[0]     # the tile: one image of cl channels, channels-last in and out
    tg.n = 1
    tg.xs[0] = 0
    tg.xs[1] = 1
    tg.xs[4] = ts
    tg.xs[3] = g.w * ts
    tg.xs[2] = g.h * g.w * ts
    tg.ys[0] = 0
    tg.ys[1] = 1
    tg.ys[4] = ts
    tg.ys[3] = g.ow * ts
    tg.ys[2] = g.oh * g.ow * ts
    for it in range(begin, end):
        c0 = at.i3 * tb
        cl = min(tb, g.c - c0)
        tg.c = cl
        plane = x + at.i0 * g.xs[0] + c0 * g.xs[1]
        if dense_in:
            _transpose(plane, g.xs[1], P, cl, tile, ts)
        else:
            for id in range(g.d):
                for ih in range(g.h):
                    _transpose(plane + id * g.xs[2] + ih * g.xs[3], g.xs[1], g.w, cl,
                               tile + (id * g.h + ih) * g.w * ts, ts)
        if kind == AVG_FWD:
            _avg_fwd_cl(tile, otile, w, &tg, tb, rest, 0, g.od * g.oh)
        else:
            _max_fwd_cl(tile, otile, itile, w, &tg, tb, rest, 0, g.od * g.oh)
        # Back to planar: scattered stores to every plane of the block cost more than the
        # pooling (each one a different cache line).
        yo = at.i0 * g.ys[0] + c0 * g.ys[1]
        if dense_out:
            _transpose(otile, ts, cl, O, y + yo, g.ys[1])
            if kind == MAX_FWD and yi != NULL:
                adapool_tile_b64(<double*>itile, ts, cl, O, <double*>(yi + yo), g.ys[1])
        else:
            o = 0
            for od in range(g.od):
                for oh in range(g.oh):
                    for ow in range(g.ow):
                        at_o = yo + od * g.ys[2] + oh * g.ys[3] + ow * g.ys[4]
                        for k in range(cl):
                            y[at_o + k * g.ys[1]] = otile[o * ts + k]
                            if kind == MAX_FWD and yi != NULL:
                                yi[at_o + k * g.ys[1]] = itile[o * ts + k]
                        o += 1
        _step(&at)


# ---------------------------------------------------------------------------------------------
# Small planes, planar layout, float32, W windows uniform and at most 8 outputs a row (the FPN
# heads' 14x14 and 15x15 -> 7x7): one output row is one AVX2 vector (adapool_avg_rows_f32,
# adapool_max_rows_f32), the window's columns deinterleaved from each input row. No
# transposes, so faster than the channels-last tile on these planes, and any channel count.
# Item = one plane.

cdef inline int _rows_kw(const Win* w) noexcept nogil:
    return <int>(w.w1[0] - w.w0[0])     # the W windows' width


cdef inline int _rows_sw(const Win* w, const Geom* g) noexcept nogil:
    return <int>(w.w0[1] - w.w0[0]) if g.ow > 1 else 1     # and stride


cdef inline bint _rows_fit(int kind, const Win* w, const Geom* g) noexcept nogil:
    cdef Py_ssize_t j, i, sw, kw, kh = 0
    if (not ADAPOOL_HAS_ROWS or g.d != 1 or g.od != 1 or g.ow > 8 or g.xs[4] != 1
            or g.ys[4] != 1 or (g.oh > 1 and g.ys[3] != g.ow)):
        return False
    kw = _rows_kw(w)
    sw = _rows_sw(w, g)
    if w.w0[0] != 0 or sw < 1 or sw > 2 or kw < 1 or kw > 4:
        return False
    for j in range(g.ow):
        if w.w0[j] != sw * j or w.w1[j] != sw * j + kw:
            return False
    if kind == MAX_FWD:
        return g.h * g.w < 2147483647   # int32 index lanes
    for i in range(g.oh):
        kh = max(kh, w.h1[i] - w.h0[i])
    # float32 sums only, as the channels-last kernel keeps them for windows this small
    return kh * kw <= _F32_FLUSH


cdef inline const real_t* _last_element_end(const real_t* x, const Geom* g) noexcept nogil:
    """One past the input's highest-addressed element (strides may be negative)."""
    cdef Py_ssize_t hi = 0, k
    cdef Py_ssize_t ext[5]
    ext[0], ext[1], ext[2], ext[3], ext[4] = g.n, g.c, g.d, g.h, g.w
    for k in range(5):
        if ext[k] > 1 and g.xs[k] > 0:
            hi += (ext[k] - 1) * g.xs[k]
    return x + hi + 1


cdef void _fwd_rows(int kind, const real_t* x, real_t* y, int64_t* yi, const Win* w, const Geom* g,
                    double* scratch, Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    """AVG_FWD_ROWS or MAX_FWD_ROWS over planes [begin, end), in runs of planes of one image."""
    cdef Py_ssize_t it = begin, n = begin // g.c, c = begin % g.c, cnt, i, j, xo, yo
    cdef int sw, kw
    cdef double* inv8 = scratch     # average: each output row's 1 / divisor, padded to 8 lanes
    cdef float* div8 = <float*>(scratch + 8 * g.oh) if w.divf != NULL else NULL   # or divisors
    cdef const real_t* xend = _last_element_end(x, g)
    if real_t is float:
        kw = _rows_kw(w)
        sw = _rows_sw(w, g)
        if kind == AVG_FWD_ROWS:
            for i in range(g.oh):
                for j in range(8):
                    inv8[8 * i + j] = _inv(w, g, 0, i, j) if j < g.ow else 0.0
                    if div8 != NULL:
                        div8[8 * i + j] = w.divf[i * g.ow + j] if j < g.ow else 1.0
        while it < end:
            cnt = min(end - it, g.c - c)
            xo = n * g.xs[0] + c * g.xs[1]
            yo = n * g.ys[0] + c * g.ys[1]
            if kind == MAX_FWD_ROWS:
                adapool_max_rows_f32(x + xo, g.xs[1], g.xs[3], xend, g.w, y + yo,
                                     yi + yo if yi != NULL else NULL, g.ys[1], cnt, g.oh, g.ow,
                                     w.h0, w.h1, sw, kw)
            elif adapool_avg_rows_f32(x + xo, g.xs[1], g.xs[3], xend, y + yo, g.ys[1], cnt, g.oh,
                                      g.ow, w.h0, w.h1, sw, kw, inv8, div8):
                adapool_flag(w.overflow)
            it += cnt
            n += 1
            c = 0


# Small planes (2-d and 1-d), planar layout, float32, any windows of at most _F32_FLUSH pixels
# (avg_pool's padded windows and adaptive ones, which _rows_fit refuses): eight planes at a time
# through an eight-lane channels-last tile in the thread's scratch (adapool_avg_planes8_f32),
# instead of the general tile. Measured against it (float32, A/B in one process):
# avg_pool2d(3,2,1) on (32,2048,7,7) 0.50x the time at one thread, 0.71x at two; on
# (8,256,14,14) and (8,256,15,15) 0.96-1.02x; (8,256,28,28) 0.92x; adaptive 28 -> 12 0.87x.
# Item = one image and block of 8 channels.

cdef inline int _planes8_k(const Win* w, const Geom* g) noexcept nogil:
    """The most rows of any window times its most columns: the chain length of
    adapool_avg_planes8_f32, at least every window's pixel count."""
    cdef Py_ssize_t i, kh = 0, kw = 0
    for i in range(g.oh):
        kh = max(kh, w.h1[i] - w.h0[i])
    for i in range(g.ow):
        kw = max(kw, w.w1[i] - w.w0[i])
    return <int>(kh * kw)


cdef inline bint _planes8_fit(const Win* w, const Geom* g) noexcept nogil:
    if (not ADAPOOL_HAS_ROWS or g.d != 1 or g.od != 1 or g.c < _TILE_MIN
            or g.h * g.w > _TILE_PLANE_AVG or g.xs[4] != 1 or (g.h > 1 and g.xs[3] != g.w)
            or g.ys[4] != 1 or (g.oh > 1 and g.ys[3] != g.ow)):
        return False
    # float32 sums only, as the channels-last kernel keeps them for windows this small
    return _planes8_k(w, g) <= _F32_FLUSH


cdef inline Py_ssize_t _planes8_scratch(const Win* w, const Geom* g) noexcept nogil:
    """Per-thread scratch in doubles: the tile and its zero vector, the output tile, the
    offsets (int32)."""
    cdef Py_ssize_t O = g.oh * g.ow
    return _pad8(g.h * g.w * 4 + 4) + _pad8(O * 4) + _pad8((O * _planes8_k(w, g) + 1) // 2)


cdef void _fwd_planes8(const float* x, float* y, const Win* w, const Geom* g, double* scratch,
                       Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    cdef Py_ssize_t ng = (g.c + 7) // 8, P = g.h * g.w, O = g.oh * g.ow
    cdef Py_ssize_t it, n, c0, i, j, r, c, m
    cdef int K = _planes8_k(w, g)
    cdef float* tile = <float*>scratch
    cdef float* otile = <float*>(scratch + _pad8(P * 4 + 4))
    cdef int32_t* offs = <int32_t*>(scratch + _pad8(P * 4 + 4) + _pad8(O * 4))
    # Lanes of a last block of fewer than eight channels are computed and dropped: zeros, not
    # whatever the allocation held; tile[P * 8 ...] is the zero vector short windows add.
    memset(tile, 0, (P + 1) * 8 * sizeof(float))
    for i in range(g.oh):
        for j in range(g.ow):
            m = (i * g.ow + j) * K
            for r in range(w.h0[i], w.h1[i]):
                for c in range(w.w0[j], w.w1[j]):
                    offs[m] = <int32_t>((r * g.w + c) * 8)
                    m += 1
            while m < (i * g.ow + j + 1) * K:
                offs[m] = <int32_t>(P * 8)
                m += 1
    for it in range(begin, end):
        n = it // ng
        c0 = (it % ng) * 8
        if adapool_avg_planes8_f32(x + n * g.xs[0] + c0 * g.xs[1], g.xs[1], <int>min(<Py_ssize_t>8, g.c - c0),
                                   P, y + n * g.ys[0] + c0 * g.ys[1], g.ys[1], O, K, offs, w.inv,
                                   w.divf, tile, otile):
            adapool_flag(w.overflow)


# ---------------------------------------------------------------------------------------------
# One driver for every kernel: split the items into one static range per thread, give each
# thread its scratch, run serially for one thread (no team start-up for small calls).

cdef inline int _range(int kind, const real_t* src, real_t* dst, int64_t* idx, const Win* w,
                       const Geom* g, bint cl, Py_ssize_t cblock, Py_ssize_t nslots,
                       Py_ssize_t tb, double* scratch, Py_ssize_t begin,
                       Py_ssize_t end) noexcept nogil:
    if tb:
        _fwd_tiled(kind, src, dst, idx, w, g, tb, scratch, begin, end)
    elif kind == AVG_FWD_ROWS or kind == MAX_FWD_ROWS:
        _fwd_rows(kind, src, dst, idx, w, g, scratch, begin, end)
    elif kind == AVG_FWD_PLANES8:
        if real_t is float:
            _fwd_planes8(src, dst, w, g, scratch, begin, end)
    elif kind == AVG_FWD:
        if _is_global_dense(w, g, cl):
            _avg_fwd_global(src, dst, g, w.overflow, begin, end)
        elif cl:
            _avg_fwd_cl(src, dst, w, g, cblock, scratch, begin, end)
        else:
            _avg_fwd_planar(src, dst, w, g, scratch, begin, end)
    elif kind == AVG_BWD:
        if _is_global_dense(w, g, cl):
            _avg_bwd_global(src, dst, g, begin, end)
        elif g.d * g.h * g.w <= _SMALL_PLANE and not cl and g.c < _TILE_MIN:
            _avg_bwd_small_planes(src, dst, w, g, scratch, begin, end)
        elif g.d * g.h * g.w <= _SMALL_PLANE:
            _avg_bwd_gather(src, dst, w, g, cl, cblock, scratch, begin, end)
        elif cl:
            _avg_bwd_cl(src, dst, w, g, cblock, scratch, begin, end)
        else:
            _avg_bwd_planar(src, dst, w, g, scratch, nslots, begin, end)
    elif kind == MAX_FWD:
        if _is_global_dense(w, g, cl):
            _max_fwd_global(src, dst, idx, g, begin, end)
        elif cl:
            _max_fwd_cl(src, dst, idx, w, g, cblock, scratch, begin, end)
        else:
            _max_fwd_planar(src, dst, idx, w, g, scratch, begin, end)
    elif kind == MAX_FWD_DILATED:
        _max_fwd_dilated(src, dst, idx, w, g, begin, end)
    else:
        if cl:
            return _max_bwd_cl(src, idx, dst, g, cblock, begin, end)
        return _max_bwd_planar(src, idx, dst, g, begin, end)
    return 0


cdef int _run(int kind, const real_t* src, real_t* dst, int64_t* idx, const int64_t* table,
              const int64_t* rows, Geom g, bint cl, Py_ssize_t cblock,
              int nthreads) noexcept nogil:
    """0 on success, -1 when scratch could not be allocated, 1 for an out-of-range index."""
    cdef Py_ssize_t nblocks = (g.c + cblock - 1) // cblock if cl else g.c
    cdef Py_ssize_t nitems, per_thread, begin, end
    cdef Win w = _win(table, rows, &g)
    cdef double* scratch
    cdef double* scratch_raw
    cdef double* inv = NULL
    cdef int64_t divisor, last_divisor = 0
    cdef double last_inv = _inverse(0)   # a true pair: any divisor (divisor_override: any int) may come first
    cdef float* divf = NULL
    cdef bint divf_exact = True
    cdef int* status
    cdef int64_t* stamps
    cdef int t, rc = 0, overflow = 0
    cdef Py_ssize_t i, od, oh, ow, nslots = 1, most_d = 0, most_h = 0, tb = 0
    if kind == AVG_FWD:
        nitems = g.n * g.od * g.oh * nblocks
        # float64 row + float32 row (+ per-column counters, channels-last)
        per_thread = (_pad8(g.ow * cblock) * 2 + g.ow) if cl else 2 * _pad8(g.w)
    elif kind == AVG_BWD:
        nitems = g.n * g.d * g.h * nblocks
        if cl:
            per_thread = g.w * cblock
        else:
            # One cache slot more than the most output rows any input row reads (each output
            # row is then expanded once per sweep over H): the most outputs reading one input
            # index on D, times the most on H.
            for i in range(g.d):
                most_d = max(most_d, w.dhi[i] - w.dlo[i])
            for i in range(g.h):
                most_h = max(most_h, w.hhi[i] - w.hlo[i])
            nslots = most_d * most_h + 1
            per_thread = g.w * (1 + nslots) + 4 * nslots
    elif kind == MAX_FWD_DILATED:
        nitems = g.n * g.c * g.od * g.oh
        per_thread = 0
    elif kind == MAX_FWD:
        nitems = g.n * g.od * g.oh * nblocks
        # channels-last: values + indices per column; planar: column maxima + their rows (NaN
        # flags for float16)
        per_thread = 2 * g.ow * cblock if cl else 2 * g.w + 16
    else:
        nitems = g.n * nblocks
        per_thread = 0
    if (real_t is float and kind == AVG_FWD and not cl and not _is_global_dense(&w, &g, cl)
            and _rows_fit(kind, &w, &g)):
        kind = AVG_FWD_ROWS
        nitems = g.n * g.c
        per_thread = 12 * g.oh     # inv8 (8 doubles a row) and div8 (8 floats)
    elif real_t is float and kind == MAX_FWD and not cl and _rows_fit(kind, &w, &g):
        kind = MAX_FWD_ROWS
        nitems = g.n * g.c
        per_thread = 0
    elif (real_t is float and kind == AVG_FWD and not cl and not _is_global_dense(&w, &g, cl)
            and _planes8_fit(&w, &g)):
        kind = AVG_FWD_PLANES8
        nitems = g.n * ((g.c + 7) // 8)
        per_thread = _planes8_scratch(&w, &g)
    elif (kind == AVG_FWD or kind == MAX_FWD) and not cl:
        # Small planes go through a channels-last tile; for max pooling even global ones
        # (4x faster than the per-plane scan on 7x7 planes; average pooling's global path is
        # as fast as the tile).
        if kind == MAX_FWD and _is_global_dense(&w, &g, cl) and real_t is float and _max_plane_simd(g.d * g.h * g.w):
            tb = 0   # adapool_max_plane_f32: no transposes
        elif kind == MAX_FWD and real_t is float and _planar_max_wins(&w, &g):
            tb = 0
        elif kind == MAX_FWD or not _is_global_dense(&w, &g, cl):
            tb = _tile_channels(kind, &g, sizeof(real_t))
    if tb:
        nitems = g.n * ((g.c + tb - 1) // tb)
        per_thread = _tiled_scratch(kind, &g, tb, sizeof(real_t))
    elif kind != MAX_BWD and kind != MAX_FWD_DILATED and _is_global_dense(&w, &g, cl):
        nitems = g.n * g.c          # the global paths take one plane per item
    elif kind == AVG_BWD and not cl and g.c < _TILE_MIN and g.d * g.h * g.w <= _SMALL_PLANE:
        nitems = g.n * g.c          # per plane (_avg_bwd_small_planes)
        per_thread = max(per_thread, g.d * g.h * g.w)
    elif kind == AVG_BWD and g.d * g.h * g.w <= _SMALL_PLANE:
        # Small planes' gradients: one image and block of channels per item (planar: the
        # gather's own block; channels-last: the caller's, for the thread split).
        if not cl:
            cblock = _gather_block(&g, cl, sizeof(real_t))
        else:
            # The caller's block counts output rows as items (the row kernel's); here an item is
            # a whole image, so one image (N = 1) would run on one thread: split its channels.
            while cblock > 16 and g.n * ((g.c + cblock - 1) // cblock) < 2 * nthreads:
                cblock = (cblock + 1) // 2
        nitems = g.n * ((g.c + cblock - 1) // cblock)
        per_thread = _gather_scratch(&g, cl, _gather_block(&g, cl, sizeof(real_t)), sizeof(real_t))
    if nitems == 0:
        return 0
    # Each thread's scratch starts on its own 128-byte pair of cache lines: with 64-byte
    # padding from malloc's 16-byte alignment, in some processes (ASLR picks the offset) the
    # line thread 0 writes last and the one thread 1 writes first shared a pair, which the
    # adjacent-line prefetcher pulls together: planar max (4,512,56,56) -> 7 took 1.2-1.3 ms
    # instead of ~0.8 for a whole process (2 or 1 in 6 and 12 processes; 0 in 22 aligned).
    per_thread = (per_thread + 15) & ~(<Py_ssize_t>15)
    nthreads = <int>max(1, min(<Py_ssize_t>nthreads, nitems))
    if nthreads > 1 and adapool_serial_now():
        nthreads = 1   # backing off from a contended machine (see adapool_note_parallel)
    scratch_raw = <double*>malloc((nthreads * per_thread + 1 + 16) * sizeof(double))
    scratch = <double*>((<uintptr_t>scratch_raw + 127) & ~(<uintptr_t>127)) if scratch_raw != NULL else NULL
    status = <int*>malloc(nthreads * sizeof(int))
    stamps = <int64_t*>malloc(2 * nthreads * sizeof(int64_t))
    if kind == AVG_FWD or kind == AVG_FWD_ROWS or kind == AVG_FWD_PLANES8 or kind == AVG_BWD:
        # 1 / divisor per output position, once per call (not once per row that reads it), then
        # the divisors as float32.
        inv = <double*>malloc((g.od * g.oh * g.ow + 1) * sizeof(double)
                              + (g.od * g.oh * g.ow + 1) * sizeof(float))
    if scratch == NULL or status == NULL or stamps == NULL or (
            (kind == AVG_FWD or kind == AVG_FWD_ROWS or kind == AVG_FWD_PLANES8 or kind == AVG_BWD)
            and inv == NULL):
        free(scratch_raw)
        free(status)
        free(inv)
        free(stamps)
        return -1
    w.overflow = &overflow
    if inv != NULL:
        divf = <float*>(inv + g.od * g.oh * g.ow + 1)
        # A division per output costs more than a tiny call's pooling (64 of them: ~0.1 us of
        # avg_pool3d on 8x8x8); uniform windows share one divisor, so divide when it changes.
        for od in range(g.od):
            for oh in range(g.oh):
                for ow in range(g.ow):
                    divisor = w.dk[od] * w.hk[oh] * w.wk[ow]
                    if divisor != last_divisor:
                        last_divisor, last_inv = divisor, _inverse(divisor)
                    inv[(od * g.oh + oh) * g.ow + ow] = last_inv
                    divf[(od * g.oh + oh) * g.ow + ow] = <float>divisor
                    divf_exact = divf_exact and 1 <= divisor <= _DIVF_MAX
        w.inv = inv
        # float32 sums of the planar kernels may divide by a float32 divisor instead (vdivps:
        # 0.82-0.95x the time of the float64 product's conversions, A/B on 2026-12-06, AMD EPYC):
        # for 1 <= d <= 2^24, (float)((double)s * (1.0 / d)) == s / (float)d for every float32 s.
        # The product is within 2^-52 relative of s / d, and s / d is never closer than 2^-25 / d
        # relative to a float32 rounding boundary (s / d = m 2^e / d is never a midpoint: d's
        # odd part would have to divide m), so both round to the same float32; NaN payloads and
        # signed zeros pass the same way (checked for all 2^32 float32 s and d = 1 ... 16, 25,
        # 49, 100, 1000003, 2^24 - 1; tests/test_plane_blocks.py checks the kernels' bits).
        w.divf = divf if divf_exact else NULL
    if nthreads == 1:
        status[0] = _range(kind, src, dst, idx, &w, &g, cl, cblock, nslots, tb, scratch, 0, nitems)
    else:
        for t in prange(nthreads, num_threads=nthreads, schedule="static", chunksize=1):
            # Assigned here, not through a pointer: Cython makes a variable thread-private
            # only when it sees it assigned in the loop body (through &begin they were shared,
            # and two threads could compute the same range and leave another unwritten).
            begin = nitems * t // nthreads
            end = nitems * (t + 1) // nthreads
            stamps[2 * t] = adapool_now_ns()
            status[t] = _range(kind, src, dst, idx, &w, &g, cl, cblock, nslots, tb,
                               scratch + t * per_thread, begin, end)
            stamps[2 * t + 1] = adapool_now_ns()
        adapool_note_parallel(adapool_skewed(stamps, nthreads))
    for t in range(nthreads):
        rc = rc | status[t]
    if real_t is float and rc == 0 and overflow:   # (the parallel region's end orders the stores)
        _f32_repair_all(src, dst, &w, &g)
    free(scratch_raw)
    free(status)
    free(inv)
    free(stamps)
    return rc


# ---------------------------------------------------------------------------------------------
# def wrappers: read the geometry straight from the ndarrays (numpy's C API: a typed memoryview
# costs ~0.2 us an array to acquire, more than pooling an 8x8 plane), check what the raw loops
# assume, release the GIL, run. The arrays come as torch lays them out, (N, C, *spatial) or
# (C, *spatial) with ``nd`` spatial axes; the kernels see them as (N, C, D, H, W), the missing
# axes of length 1 (their stride is never read). float16 runs as its bit patterns (half_bits).

cdef int _axes(cnp.ndarray a, int nd, Py_ssize_t* shape, Py_ssize_t* strides) except -1:
    """Extents and element strides of ``a`` as (N, C, D, H, W)."""
    cdef int r = cnp.PyArray_NDIM(a)
    cdef int k, src
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(a)
    if nd < 1 or nd > 3 or r < nd + 1 or r > nd + 2:
        raise ValueError("kernel arrays must be (N, C, *spatial) or (C, *spatial)")
    if not cnp.PyArray_ISALIGNED(a):
        raise ValueError("kernel arrays must be aligned")
    for k in range(5):
        if k == 0:
            src = 0 if r == nd + 2 else -1
        elif k == 1:
            src = r - nd - 1
        else:
            src = k - 5 + r if k >= 5 - nd else -1
        if src < 0:
            shape[k] = 1
            strides[k] = 0
        else:
            shape[k] = cnp.PyArray_DIM(a, src)
            if cnp.PyArray_STRIDE(a, src) % item:
                raise ValueError("kernel arrays need strides in whole elements")
            strides[k] = cnp.PyArray_STRIDE(a, src) // item
        if shape[k] == 0:
            raise ValueError("kernel arrays must be non-empty (the Python layer skips empty calls)")
    return 0


cdef int _geometry(cnp.ndarray a_in, cnp.ndarray a_out, int nd, bint channels_last,
                   Geom* g) except -1:
    """The geometry of an input-shaped and an output-shaped array of one dtype; checks that they
    agree on rank, N and C, and the one layout assumption the raw loops make."""
    cdef Py_ssize_t si[5]
    cdef Py_ssize_t so[5]
    cdef int t = cnp.PyArray_TYPE(a_in)
    if t != cnp.PyArray_TYPE(a_out) or (t != cnp.NPY_FLOAT and t != cnp.NPY_DOUBLE and t != cnp.NPY_FLOAT16):
        raise TypeError("kernel arrays must share one dtype: float16, float32 or float64")
    if cnp.PyArray_NDIM(a_in) != cnp.PyArray_NDIM(a_out):
        raise ValueError("kernel arrays must have one rank")
    _axes(a_in, nd, si, g.xs)
    _axes(a_out, nd, so, g.ys)
    if si[0] != so[0] or si[1] != so[1]:
        raise ValueError("kernel arrays must have the same N and C")
    g.n, g.c, g.d, g.h, g.w = si[0], si[1], si[2], si[3], si[4]
    g.od, g.oh, g.ow = so[2], so[3], so[4]
    # The raw loops assume unit stride on the input-shaped array's innermost axis (W, or C
    # when channels-last); the stride of an axis of length 1 is never used.
    if (g.c > 1 and g.xs[1] != 1) if channels_last else (g.w > 1 and g.xs[4] != 1):
        raise ValueError("kernel needs a unit-stride innermost axis")
    return 0


cdef int _check_writeable(cnp.ndarray a) except -1:
    if not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError("kernel output must be writeable")
    return 0


cdef const int64_t* _int64_table(cnp.ndarray table, Py_ssize_t length, str what) except NULL:
    if (cnp.PyArray_TYPE(table) != cnp.NPY_INT64 or cnp.PyArray_NDIM(table) != 1
            or not cnp.PyArray_IS_C_CONTIGUOUS(table) or not cnp.PyArray_ISALIGNED(table)):
        raise TypeError("window tables must be aligned contiguous 1-d int64 arrays")
    if cnp.PyArray_DIM(table, 0) != length:
        raise ValueError(f"{what} table does not match the {'output' if what == 'window' else 'input'} shape")
    return <const int64_t*>cnp.PyArray_DATA(table)


cdef int64_t* _indices(cnp.ndarray ind, int nd, const Geom* g) except NULL:
    # The kernels read indices at the output's element offsets (the stride of an axis of
    # length 1 is never used).
    cdef Py_ssize_t shape[5]
    cdef Py_ssize_t strides[5]
    cdef Py_ssize_t want[5]
    cdef int k
    want[0], want[1], want[2], want[3], want[4] = g.n, g.c, g.od, g.oh, g.ow
    if cnp.PyArray_TYPE(ind) != cnp.NPY_INT64:
        raise TypeError("indices must be int64")
    _axes(ind, nd, shape, strides)
    for k in range(5):
        if shape[k] != want[k] or (shape[k] > 1 and strides[k] != g.ys[k]):
            raise ValueError("indices must have the output's shape and layout")
    return <int64_t*>cnp.PyArray_DATA(ind)


cdef int64_t* _optional_indices(object indices, int nd, const Geom* g) except? NULL:
    """The forward max kernels' index output: NULL for None (the caller wants values only;
    writing int64 indices is most of the memory traffic of a small window), else checked as
    _indices checks it."""
    if indices is None:
        return NULL
    if not isinstance(indices, cnp.ndarray):
        raise TypeError("indices must be an ndarray or None")
    _check_writeable(indices)
    return _indices(<cnp.ndarray>indices, nd, g)


cdef int _dispatch(int kind, int dtype, const void* src, void* dst, int64_t* idx,
                   const int64_t* table, const int64_t* rows, Geom g, bint cl,
                   Py_ssize_t cblock, int nthreads) noexcept nogil:
    if dtype == cnp.NPY_FLOAT:
        return _run(kind, <const float*>src, <float*>dst, idx, table, rows, g, cl, cblock, nthreads)
    if dtype == cnp.NPY_DOUBLE:
        return _run(kind, <const double*>src, <double*>dst, idx, table, rows, g, cl, cblock, nthreads)
    return _run(kind, <const half_bits*>src, <half_bits*>dst, idx, table, rows, g, cl, cblock, nthreads)


cdef _raise_for(int rc):
    if rc == -1:
        raise MemoryError("adapool: could not allocate kernel scratch space")
    if rc == 1:
        raise IndexError("index out of range")


def avg_pool_forward(int nd, cnp.ndarray x, cnp.ndarray y, cnp.ndarray table,
                     bint channels_last, Py_ssize_t cblock, int nthreads):
    """Average pooling of x (N, C, *spatial) into y (N, C, *out) over the windows and divisors
    of ``table`` (unbatched: both without N)."""
    _avg_pool_forward(nd, x, y, table, channels_last, cblock, nthreads)


cdef int _avg_pool_forward(int nd, cnp.ndarray x, cnp.ndarray y, cnp.ndarray table,
                           bint channels_last, Py_ssize_t cblock, int nthreads) except -1:
    cdef Geom g
    cdef int rc, t = cnp.PyArray_TYPE(x)
    _geometry(x, y, nd, channels_last, &g)
    _check_writeable(y)
    cdef const int64_t* tab = _int64_table(table, 3 * (g.od + g.oh + g.ow), "window")
    cdef const void* src = cnp.PyArray_DATA(x)
    cdef void* dst = cnp.PyArray_DATA(y)
    with nogil:
        rc = _dispatch(AVG_FWD, t, src, dst, NULL, tab, NULL, g, channels_last, cblock, nthreads)
    _raise_for(rc)
    return 0


def avg_pool_backward(int nd, cnp.ndarray grad_output, cnp.ndarray grad_input, cnp.ndarray table,
                      cnp.ndarray rows, bint channels_last, Py_ssize_t cblock, int nthreads):
    """Gradient of avg_pool_forward: writes every element of grad_input (N, C, *spatial)."""
    cdef Geom g
    cdef int rc, t = cnp.PyArray_TYPE(grad_input)
    _geometry(grad_input, grad_output, nd, channels_last, &g)
    _check_writeable(grad_input)
    cdef const int64_t* tab = _int64_table(table, 3 * (g.od + g.oh + g.ow), "window")
    cdef const int64_t* rws = _int64_table(rows, 2 * (g.d + g.h), "row")
    cdef const void* src = cnp.PyArray_DATA(grad_output)
    cdef void* dst = cnp.PyArray_DATA(grad_input)
    with nogil:
        rc = _dispatch(AVG_BWD, t, src, dst, NULL, tab, rws, g, channels_last, cblock, nthreads)
    _raise_for(rc)


def max_pool_forward(int nd, cnp.ndarray x, cnp.ndarray y, object indices, cnp.ndarray table,
                     bint channels_last, Py_ssize_t cblock, int nthreads):
    """Max pooling of x into y with torch's indices; ``indices`` has y's shape and layout (None:
    values only)."""
    _max_pool_forward(nd, x, y, indices, table, channels_last, cblock, nthreads)


cdef int _max_pool_forward(int nd, cnp.ndarray x, cnp.ndarray y, object indices, cnp.ndarray table,
                           bint channels_last, Py_ssize_t cblock, int nthreads) except -1:
    cdef Geom g
    cdef int rc, t = cnp.PyArray_TYPE(x)
    _geometry(x, y, nd, channels_last, &g)
    _check_writeable(y)
    cdef const int64_t* tab = _int64_table(table, 3 * (g.od + g.oh + g.ow), "window")
    cdef int64_t* idx = _optional_indices(indices, nd, &g)
    cdef const void* src = cnp.PyArray_DATA(x)
    cdef void* dst = cnp.PyArray_DATA(y)
    with nogil:
        rc = _dispatch(MAX_FWD, t, src, dst, idx, tab, NULL, g, channels_last, cblock, nthreads)
    _raise_for(rc)
    return 0


def max_pool_forward_dilated(int nd, cnp.ndarray x, cnp.ndarray y, object indices,
                             cnp.ndarray table, bint channels_last, int nthreads):
    """Max pooling over dilated windows: ``table`` holds (start, end, step) per axis, every
    start in [0, size], end <= size and step >= 1 (checked here: the loop reads what they say)."""
    _max_pool_forward_dilated(nd, x, y, indices, table, channels_last, nthreads)


cdef int _max_pool_forward_dilated(int nd, cnp.ndarray x, cnp.ndarray y, object indices,
                                   cnp.ndarray table, bint channels_last, int nthreads) except -1:
    cdef Geom g
    cdef int rc, t = cnp.PyArray_TYPE(x)
    cdef Py_ssize_t i, o, size
    cdef Py_ssize_t outs[3]
    cdef Py_ssize_t sizes[3]
    _geometry(x, y, nd, channels_last, &g)
    _check_writeable(y)
    cdef const int64_t* tab = _int64_table(table, 3 * (g.od + g.oh + g.ow), "window")
    outs[0], outs[1], outs[2] = g.od, g.oh, g.ow
    sizes[0], sizes[1], sizes[2] = g.d, g.h, g.w
    o = 0
    for i in range(3):
        for size in range(outs[i]):
            if not (0 <= tab[o + size] <= sizes[i] and tab[o + outs[i] + size] <= sizes[i]
                    and tab[o + 2 * outs[i] + size] >= 1):
                raise ValueError("dilated window table out of range")
        o += 3 * outs[i]
    cdef int64_t* idx = _optional_indices(indices, nd, &g)
    cdef const void* src = cnp.PyArray_DATA(x)
    cdef void* dst = cnp.PyArray_DATA(y)
    with nogil:
        rc = _dispatch(MAX_FWD_DILATED, t, src, dst, idx, tab, NULL, g, channels_last, g.c, nthreads)
    _raise_for(rc)
    return 0


cdef enum:
    _REC_AVG = 0
    _REC_MAX = 1
    _REC_MAX_DILATED = 2
    _REC_POOL1D = 3


cdef class Recorded:
    """A forward kernel call that the Python layer repeats unchanged for every call of a plan
    (adapool._pooling._record_direct): the kernel and every argument but the arrays. A call
    then makes one method call with the arrays (the kernel's own call, its seven arguments
    spread from a tuple and converted each time, cost ~0.06-0.1 us of a 1.5-2 us call); run
    validates x, y and indices as the kernel's own entry point does.

    A call large enough to share among threads takes its thread count and channel block from
    ``split()`` (the plan's own rule), asked again only when ``threads()`` (adapool's thread
    count) has changed since the last call. A channels-last result (torch's rule for batched
    1-d and 2-d input) is allocated channels-last, as the planned path does."""
    cdef readonly str kernel
    cdef readonly object head
    cdef readonly cnp.ndarray table
    cdef readonly bint channels_last
    cdef readonly Py_ssize_t cblock    # the recorded split (a shared call's first)
    cdef readonly int nthreads
    cdef readonly bint indexed      # a max kernel: run takes indices (or None for values only)
    cdef readonly bint out_cl       # pool allocates the result channels-last
    cdef readonly object threads    # None: the recorded split serves every call
    cdef object split
    cdef object last                # (threads(), nthreads, cblock) of the latest split, one object
    cdef int kind
    cdef int nd
    cdef int out_ndim
    cdef cnp.npy_intp out_shape[5]
    cdef cnp.npy_intp stored_shape[5]   # out_cl: (N, *spatial, C)
    cdef cnp.npy_intp to_torch[5]       # out_cl: the axes of the stored array in torch's order
    cdef int in_ndim
    cdef cnp.npy_intp in_shape[5]

    def __init__(self, str kernel, object head, cnp.ndarray table, bint channels_last,
                 Py_ssize_t cblock, int nthreads, tuple in_shape, tuple out_shape, *,
                 bint out_cl=False, object threads=None, object split=None):
        """``kernel``: "avg_pool_forward", "max_pool_forward", "max_pool_forward_dilated" (head:
        nd) or "pool1d_fast" (head: its op); the rest as that kernel takes them; ``in_shape``:
        the only input shape it takes (``table``'s windows are for it); ``out_shape``: the
        result that ``pool`` allocates (torch's shape), stored channels-last where ``out_cl``.
        ``threads`` and ``split``: both or neither; then every call whose ``threads()``
        differs from the previous call's takes ``split()``'s (nthreads, cblock)."""
        cdef int i, nd
        if len(in_shape) > 5 or len(out_shape) != len(in_shape):
            raise ValueError("a recorded call's input and result have one rank, at most 5")
        if (threads is None) != (split is None):
            raise ValueError("a recorded call takes threads and split together")
        if out_cl and len(out_shape) < 3:
            raise ValueError("a channels-last result has N, C and spatial axes")
        self.in_ndim = self.out_ndim = len(out_shape)
        for i in range(self.out_ndim):
            self.in_shape[i], self.out_shape[i] = in_shape[i], out_shape[i]
        # (N, C, *spatial) stored as (N, *spatial, C); to_torch: (0, nd + 1, 1, ..., nd)
        nd = self.out_ndim - 2
        for i in range(self.out_ndim):
            self.stored_shape[i] = out_shape[0] if i == 0 else (out_shape[1] if i == nd + 1 else out_shape[i + 1])
            self.to_torch[i] = 0 if i == 0 else (nd + 1 if i == 1 else i - 1)
        kinds = {"avg_pool_forward": _REC_AVG, "max_pool_forward": _REC_MAX,
                 "max_pool_forward_dilated": _REC_MAX_DILATED, "pool1d_fast": _REC_POOL1D}
        if kernel not in kinds:
            raise ValueError(f"no recorded call for kernel {kernel!r}")
        self.kind = kinds[kernel]
        if self.kind == _REC_POOL1D:
            if not isinstance(head, str):
                raise TypeError("pool1d_fast's head is its op")
            self.nd = 1
        else:
            self.nd = head
        self.kernel, self.head, self.table = kernel, head, table
        self.channels_last, self.cblock, self.nthreads = channels_last, cblock, nthreads
        self.indexed = self.kind == _REC_MAX or self.kind == _REC_MAX_DILATED
        self.out_cl, self.threads, self.split = out_cl, threads, split
        self.last = None

    cdef int _split_now(self, int* nthreads, Py_ssize_t* cblock) except -1:
        cdef object tn, last
        if self.threads is None:
            nthreads[0], cblock[0] = self.nthreads, self.cblock
            return 0
        tn = self.threads()
        last = self.last   # one read: another Python thread may replace it meanwhile
        if last is None or last[0] != tn:
            nt, cb = self.split()
            last = (tn, nt, cb)
            self.last = last
        nthreads[0], cblock[0] = last[1], last[2]
        return 0

    @property
    def split_now(self):
        """(nthreads, cblock) that a call made now would take."""
        cdef int nthreads
        cdef Py_ssize_t cblock
        self._split_now(&nthreads, &cblock)
        return nthreads, cblock

    def run(self, cnp.ndarray x, cnp.ndarray y, object indices=None):
        """The recorded call on x into y (and ``indices``, max kernels only). Returns False where
        pool1d_fast declined (having written nothing), else True."""
        cdef int i, nthreads
        cdef Py_ssize_t cblock
        if indices is not None and not self.indexed:
            raise TypeError(f"{self.kernel} takes no indices")
        # The kernels read x where the table's windows say: only the recorded shape is safe.
        if cnp.PyArray_NDIM(x) != self.in_ndim:
            raise ValueError("x is not of the recorded shape")
        for i in range(self.in_ndim):
            if cnp.PyArray_DIMS(x)[i] != self.in_shape[i]:
                raise ValueError("x is not of the recorded shape")
        self._split_now(&nthreads, &cblock)
        if self.kind == _REC_AVG:
            _avg_pool_forward(self.nd, x, y, self.table, self.channels_last, cblock, nthreads)
        elif self.kind == _REC_MAX:
            _max_pool_forward(self.nd, x, y, indices, self.table, self.channels_last, cblock,
                              nthreads)
        elif self.kind == _REC_MAX_DILATED:
            _max_pool_forward_dilated(self.nd, x, y, indices, self.table, self.channels_last,
                                      nthreads)
        else:
            return _pool1d_fast(self.head, x, y, self.table, nthreads) == 1
        return True

    cdef object _result(self, int typenum):
        """A new array of ``out_shape`` (C order, or channels-last where ``out_cl``)."""
        cdef cnp.PyArray_Dims perm
        if self.out_cl:
            perm.ptr, perm.len = self.to_torch, self.out_ndim
            return cnp.PyArray_Transpose(cnp.PyArray_EMPTY(self.out_ndim, self.stored_shape, typenum, 0), &perm)
        return cnp.PyArray_EMPTY(self.out_ndim, self.out_shape, typenum, 0)

    def pool(self, cnp.ndarray x):
        """The values-only call into a new array of ``out_shape`` and x's dtype (C order, or
        channels-last where ``out_cl``; np.empty from Python costs ~0.1 us more), or None,
        having written nothing the caller sees, where x is not aligned (the caller copies it)
        or pool1d_fast declined."""
        if not cnp.PyArray_ISALIGNED(x):
            return None
        y = self._result(cnp.PyArray_TYPE(x))
        return y if self.run(x, y) else None

    def pool_indexed(self, cnp.ndarray x):
        """A max kernel's call with indices: (values, int64 indices), both new arrays laid out
        as ``pool``'s result; None where x is not aligned (two arrays from Python cost ~0.4 us
        of a 1.8 us (1,1,8,8) call)."""
        if not self.indexed:
            raise TypeError(f"{self.kernel} takes no indices")
        if not cnp.PyArray_ISALIGNED(x):
            return None
        y = self._result(cnp.PyArray_TYPE(x))
        indices = self._result(cnp.NPY_INT64)
        self.run(x, y, indices)
        return y, indices


def max_pool_backward(int nd, cnp.ndarray grad_output, cnp.ndarray indices, cnp.ndarray grad_input,
                      bint channels_last, Py_ssize_t cblock, int nthreads):
    """Scatter-add grad_output into grad_input at ``indices`` (flattened per plane).

    grad_input must be dense: C-contiguous (planar) or channels-last contiguous. Raises
    IndexError, having written nothing out of bounds, when an index is outside its plane."""
    cdef Geom g
    cdef int rc, t = cnp.PyArray_TYPE(grad_input)
    _geometry(grad_input, grad_output, nd, channels_last, &g)
    _check_writeable(grad_input)
    cdef Py_ssize_t P = g.d * g.h * g.w
    # Dense: each pixel (or plane) follows the previous one; axes of length 1 have no stride
    # that matters.
    if channels_last:
        dense = ((g.c == 1 or g.xs[1] == 1) and (g.w == 1 or g.xs[4] == g.c)
                 and (g.h == 1 or g.xs[3] == g.w * g.c) and (g.d == 1 or g.xs[2] == g.h * g.w * g.c)
                 and (g.n == 1 or g.xs[0] == P * g.c))
    else:
        dense = ((g.w == 1 or g.xs[4] == 1) and (g.h == 1 or g.xs[3] == g.w)
                 and (g.d == 1 or g.xs[2] == g.h * g.w) and (g.c == 1 or g.xs[1] == P)
                 and (g.n == 1 or g.xs[0] == g.c * P))
    if not dense:
        raise ValueError("grad_input must be dense in its layout")
    cdef int64_t* idx = _indices(indices, nd, &g)
    cdef const void* src = cnp.PyArray_DATA(grad_output)
    cdef void* dst = cnp.PyArray_DATA(grad_input)
    with nogil:
        rc = _dispatch(MAX_BWD, t, src, dst, idx, NULL, NULL, g, channels_last, cblock, nthreads)
    _raise_for(rc)


# Max unpooling and its gradient: their own file, so that edits there and here do not collide.
include "_unpool.pxi"

# The 1-d pools' own paths (issue 15): their own file, as the unpooling kernels.
include "_strided1d.pxi"


def openmp_enabled():
    """Whether this build of the extension was compiled with OpenMP."""
    return bool(adapool_openmp_enabled())


def omp_max_threads():
    """OpenMP's current default team size for the calling thread (1 in a serial build)."""
    return adapool_omp_max_threads()


def self_overlapping(cnp.ndarray a):
    """True unless the axes, sorted by stride, each step past the whole extent of the smaller
    ones: every layout made by slicing or transposing an array passes, broadcast views fail.
    (adapool._validation's out= check; in Python the sort cost ~1 us of a 3 us tiny call.)"""
    cdef int nd = cnp.PyArray_NDIM(a), i, j, m = 0
    cdef Py_ssize_t st[64]
    cdef Py_ssize_t ns[64]
    cdef Py_ssize_t s, n, extent
    if cnp.PyArray_SIZE(a) == 0:   # nothing is written (numpy gives empty arrays zero strides)
        return False
    for i in range(nd):
        n = cnp.PyArray_DIMS(a)[i]
        if n <= 1:
            continue
        s = cnp.PyArray_STRIDES(a)[i]
        s = -s if s < 0 else s
        j = m   # insertion by stride (ties in either order give the same answer)
        while j > 0 and st[j - 1] > s:
            st[j], ns[j] = st[j - 1], ns[j - 1]
            j -= 1
        st[j], ns[j] = s, n
        m += 1
    extent = cnp.PyArray_ITEMSIZE(a)
    for i in range(m):
        if st[i] < extent:
            return True
        extent = st[i] * ns[i]
    return False


def cpu_has_avx2():
    """Whether the running CPU and OS support AVX2 (so the AVX2 build may be loaded)."""
    return bool(adapool_cpu_has_avx2())


def _contention(reset=False, note=None):
    """Test hook: the loaded-machine back-off's state, (ns of serial running left, current
    back-off in ns); ``note`` records a parallel call as contended (True) or clean (False)
    first, ``reset`` clears the state first."""
    if reset:
        adapool_reset_contention()
    if note is not None:
        adapool_note_parallel(1 if note else 0)
    return adapool_serial_left_ns(), adapool_backoff_ns()


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


include "_fractional.pxi"

# lp_pool's elementwise powers: their own file, so that edits there and here do not collide.
include "_elementwise.pxi"
