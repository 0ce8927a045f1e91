# The 1-d strided pools' own paths (included from _kernels.pyx: it uses the .pyx's Geom, Win,
# Walk, Run, _uniform_run, _max_run_block, _transpose, _tile_stride, _geometry, _int64_table,
# _check_writeable and _raise_for). Issue 15: torch's 1-d kernels beat the general (D, H, W)
# kernels on these calls, which pool1d_fast takes (the Python layer falls back to the general
# kernel where it declines):
#
# - max_pool1d without indices, rows with unit stride (contiguous input). Rows shorter than
#   _LONG_ROW (with >= 8 rows): the rows are the lanes of a transposed tile (_max1d_tiles).
#   Longer rows: each row's uniform run (its interior) a block of a multiple of 8 outputs at a
#   time, the last block overlapping the one before it (a max is idempotent: outputs written
#   twice get the same bits), the clipped windows at the ends one element at a time
#   (_max1d_rows). The general path paid two transposes and pick tracking on short rows, and a
#   vector prologue and scalar tail per row on long ones. Runs of k = 3 at step 2 (the ResNet
#   stem's pool) on rows of >= _K3S2_ROW elements, or on < 8 rows, take _max1d_k3s2 instead:
#   the even/odd elements straight from the row, no tiles (whose transposes were most of the
#   time at L = 196 and 225: 0.85x torch there).
# - max_pool1d without indices on channels-last input (_max1d_cl) and avg_pool1d on
#   channels-last input into a channels-last result (_avg1d_cl): per output pixel, the window's
#   pixel vectors in lanes over C, no per-item scratch rows. Item = one image and _PIXELS
#   output pixels, so that N = 1 splits over threads. With few channels (N = 1, C = 16) the
#   general kernel's per-item bookkeeping was most of its time.
#
# Same values as the general kernels (and torch): max takes torch's pick (greater, or NaN, the
# element itself: NaN payloads and -0.0 kept); the average sums a window's pixels in order from
# +0.0 (float32 in float32, flushed into float64 every _F32_FLUSH pixels; float64 and float16 in
# float64) and multiplies once by 1 / divisor, as _avg_fwd_cl does. float16 max keeps the
# general path (its compares need the conversion).

ctypedef fused float_t:   # the max rows compare and select natively: float16 keeps the general path
    float
    double


cdef enum:
    _ROW_LANES = 16     # long max rows: the shortest uniform run this path takes (_uniform_run's)
    _LONG_ROW = 512     # max rows at least this long take their uniform run, shorter ones tiles
    _LANES_BYTES = 128  # rows per max tile: a tile of 225-element rows stays in L1
    _LANES_F32 = 32     # (_LANES_BYTES of float32)
    _K3S2_ROW = 192     # k = 3, step 2 rows at least this long (or < 8 rows) take _max1d_k3s2:
                        # shorter ones lost to the tiles (L = 49: 0.4x them, L = 100: 0.5x)
    _PIXELS = 64        # output pixels per average item
    _CHANNELS = 512     # channels per accumulator block


cdef inline void _max_row_run(const float_t* src, float_t* out, Py_ssize_t n, Py_ssize_t step,
                              Py_ssize_t k) noexcept nogil:
    """The n >= _ROW_LANES outputs of a uniform run, ``src`` its first window's start: blocks of
    a multiple of 8 outputs (whole vectors, no scalar tail), the last one ending at the run's
    end. The maxima go through a stack block, as in _max_run: pooled straight into ``out``, which
    gcc can't tell apart from ``src``, the loop stayed scalar. The block length is a run time
    value on purpose: a constant one gets unrolled completely, its selects left as branches
    (both measured ~10x slower)."""
    cdef float_t best[_RUN_BLOCK]
    cdef Py_ssize_t lanes = min(<Py_ssize_t>_RUN_BLOCK, n - n % 8)
    cdef Py_ssize_t b = 0
    while b < n:
        if b + lanes > n:
            b = n - lanes
        _max_run_block(src + b * step, step, k, lanes, best, NULL)
        memcpy(out + b, best, lanes * sizeof(float_t))
        b += lanes


cdef inline float_t _max_window(const float_t* row, Py_ssize_t w0, Py_ssize_t w1) noexcept nogil:
    # torch's rule one element at a time: the clipped windows at a row's ends (one or two a row)
    cdef float_t best = row[w0]
    cdef float_t v
    cdef Py_ssize_t iw
    for iw in range(w0 + 1, w1):
        v = row[iw]
        if (v > best) | (v != v):
            best = v
    return best


cdef void _max1d_rows(const float_t* x, float_t* y, const Win* w, const Geom* g, const Run* r,
                      Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    cdef Walk at = _walk_from(begin, 1, 1, g.c)
    cdef Py_ssize_t it, o, n = r.hi - r.lo
    cdef const float_t* row
    cdef float_t* out
    for it in range(begin, end):
        row = x + at.i0 * g.xs[0] + at.i3 * g.xs[1]
        out = y + at.i0 * g.ys[0] + at.i3 * g.ys[1]
        for o in range(r.lo):
            out[o] = _max_window(row, w.w0[o], w.w1[o])
        # the common steps as constants: gcc turns their strided loads into shuffles
        if r.step == 1:
            _max_row_run(row + w.w0[r.lo], out + r.lo, n, 1, r.k)
        elif r.step == 2:
            _max_row_run(row + w.w0[r.lo], out + r.lo, n, 2, r.k)
        else:
            _max_row_run(row + w.w0[r.lo], out + r.lo, n, r.step, r.k)
        for o in range(r.hi, g.ow):
            out[o] = _max_window(row, w.w0[o], w.w1[o])
        _step(&at)


cdef inline void _max_run_k3s2(const float_t* src, float_t* out, Py_ssize_t n) noexcept nogil:
    """The n >= _ROW_LANES outputs of a uniform run of 3-element windows at step 2
    (max_pool1d(3, 2, p), the ResNet stem's pool), ``src`` its first window's start. Window t
    is (src[2t], src[2t + 1], src[2t + 2]): gcc loads the even and odd elements with shuffles
    from the row itself and does all three compares in registers (_max_run_block makes k passes
    over its stack block). Blocks of a multiple of 8 outputs through a stack block, as in
    _max_row_run, the last block the 8 outputs ending at the run's end (overlapping the one
    before: a max is idempotent). A scalar tail's selects turned into branches, which random
    data mispredicts; a whole last block overlapping the one before pooled up to twice the
    run (n = 97 at L = 196)."""
    cdef float_t best[_RUN_BLOCK]
    cdef Py_ssize_t b = 0, t, nb
    cdef const float_t* s
    cdef float_t m, v
    while b < n:
        nb = min(<Py_ssize_t>_RUN_BLOCK, n - b)
        nb -= nb % 8
        if nb == 0:
            b, nb = n - 8, 8
        s = src + 2 * b
        for t in range(nb):
            m = s[2 * t]
            v = s[2 * t + 1]
            m = v if (v > m) | (v != v) else m
            v = s[2 * t + 2]
            m = v if (v > m) | (v != v) else m
            best[t] = m
        memcpy(out + b, best, nb * sizeof(float_t))
        b += nb


cdef void _max1d_k3s2(const float_t* x, float_t* y, const Win* w, const Geom* g, const Run* r,
                      Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    """_max1d_rows for runs of k = 3 at step 2: no tiles, no transposes (the two tile
    transposes were most of _max1d_tiles' time at L = 196 and 225)."""
    cdef Walk at = _walk_from(begin, 1, 1, g.c)
    cdef Py_ssize_t it, o, n = r.hi - r.lo
    cdef const float_t* row
    cdef float_t* out
    for it in range(begin, end):
        row = x + at.i0 * g.xs[0] + at.i3 * g.xs[1]
        out = y + at.i0 * g.ys[0] + at.i3 * g.ys[1]
        for o in range(r.lo):
            out[o] = _max_window(row, w.w0[o], w.w1[o])
        _max_run_k3s2(row + w.w0[r.lo], out + r.lo, n)
        for o in range(r.hi, g.ow):
            out[o] = _max_window(row, w.w0[o], w.w1[o])
        _step(&at)


# Short rows: the rows are the lanes. A block of _LANES_BYTES of rows (32 float32, 16 float64)
# is transposed into a tile (element-major, rows contiguous), every output's window is pooled
# across the block with unit-stride vectors (any windows: no uniform run needed, no strided
# loads), and the output tile is transposed back. The general tile path does the same through
# the channels-last kernel, which also tracks picks and keeps a scratch row per output column.

cdef void _max1d_tiles(const float_t* x, float_t* y, const Win* w, const Geom* g, float_t* tile,
                       Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    cdef Py_ssize_t R = _LANES_BYTES // sizeof(float_t)
    cdef Py_ssize_t ts = _tile_stride(R, sizeof(float_t))
    cdef Py_ssize_t nblocks = (g.c + R - 1) // R
    cdef Walk at = _walk_from(begin, 1, 1, nblocks)
    cdef float_t* otile = tile + g.w * ts
    cdef float_t acc[_LANES_F32]
    cdef const float_t* src
    cdef float_t* dst
    cdef float_t v
    cdef Py_ssize_t it, c0, cl, o, iw, r
    for it in range(begin, end):
        c0 = at.i3 * R
        cl = min(R, g.c - c0)
        _transpose(x + at.i0 * g.xs[0] + c0 * g.xs[1], g.xs[1], g.w, cl, tile, ts)
        for o in range(g.ow):
            src = tile + w.w0[o] * ts
            for r in range(cl):
                acc[r] = src[r]
            for iw in range(w.w0[o] + 1, w.w1[o]):
                src = tile + iw * ts
                for r in range(cl):
                    v = src[r]
                    acc[r] = v if (v > acc[r]) | (v != v) else acc[r]
            dst = otile + o * ts   # a loop, not memcpy: a call per output cost ~20%
            for r in range(cl):
                dst[r] = acc[r]
        _transpose(otile, ts, cl, g.ow, y + at.i0 * g.ys[0] + c0 * g.ys[1], g.ys[1])
        _step(&at)


# max_pool1d without indices on channels-last input: torch gives a C-order result there. Per
# output pixel, the window's pixel vectors (up to _CHANNELS at a time) are compared in lanes
# over C and the maxima stored down the result's channel rows. With few channels the general
# channels-last kernel's per-item bookkeeping (a scratch row per output column, picks) is most
# of its time (N = 1, C = 16: 0.46x torch on one thread).

cdef void _max1d_cl(const float_t* x, float_t* y, const Win* w, const Geom* g, Py_ssize_t begin,
                    Py_ssize_t end) noexcept nogil:
    cdef Py_ssize_t nblocks = (g.ow + _PIXELS - 1) // _PIXELS
    cdef Walk at = _walk_from(begin, 1, 1, nblocks)
    cdef Py_ssize_t it, o, o1, c0, cl, k, iw, ysc = g.ys[1]
    cdef float_t acc[_CHANNELS]
    cdef const float_t* p
    cdef float_t* out
    cdef float_t v
    for it in range(begin, end):
        o1 = min(g.ow, (at.i3 + 1) * _PIXELS)
        for o in range(at.i3 * _PIXELS, o1):
            out = y + at.i0 * g.ys[0] + o * g.ys[4]
            c0 = 0
            while c0 < g.c:
                cl = min(<Py_ssize_t>_CHANNELS, g.c - c0)
                p = x + at.i0 * g.xs[0] + w.w0[o] * g.xs[4] + c0
                for k in range(cl):
                    acc[k] = p[k]
                for iw in range(1, w.w1[o] - w.w0[o]):
                    p += g.xs[4]
                    for k in range(cl):
                        v = p[k]
                        acc[k] = v if (v > acc[k]) | (v != v) else acc[k]
                for k in range(cl):
                    out[(c0 + k) * ysc] = acc[k]
                c0 += _CHANNELS
        _step(&at)


cdef void _avg1d_cl(const real_t* x, real_t* y, const Win* w, const Geom* g, Py_ssize_t begin,
                    Py_ssize_t end) noexcept nogil:
    cdef Py_ssize_t nblocks = (g.ow + _PIXELS - 1) // _PIXELS
    cdef Walk at = _walk_from(begin, 1, 1, nblocks)
    cdef Py_ssize_t it, o, o1, c0, cl, k, iw, count
    cdef float facc[_CHANNELS]
    cdef double acc[_CHANNELS]
    cdef const real_t* p
    cdef real_t* out
    cdef double inv
    cdef bint f32_only
    for it in range(begin, end):
        o1 = min(g.ow, (at.i3 + 1) * _PIXELS)
        for o in range(at.i3 * _PIXELS, o1):
            inv = _inverse(w.wk[o])
            # float32 windows of <= _F32_FLUSH pixels never touch the float64 lanes
            f32_only = real_t is float and w.w1[o] - w.w0[o] <= _F32_FLUSH
            out = y + at.i0 * g.ys[0] + o * g.ys[4]
            c0 = 0
            while c0 < g.c:
                cl = min(<Py_ssize_t>_CHANNELS, g.c - c0)
                p = x + at.i0 * g.xs[0] + w.w0[o] * g.xs[4] + c0
                if real_t is float:
                    if f32_only:
                        # 0 + the first pixel, as the sum from +0.0 has it (-0.0 becomes +0.0),
                        # without a zeroing pass (gcc made it a `rep stos`: ~10% of the time)
                        for k in range(cl):
                            facc[k] = p[k] + <float>0.0
                        for iw in range(1, w.w1[o] - w.w0[o]):
                            p += g.xs[4]
                            for k in range(cl):
                                facc[k] += p[k]
                        for k in range(cl):
                            out[c0 + k] = <float>(<double>facc[k] * inv)
                        if adapool_any_nonfinite_f32(facc, cl):
                            adapool_flag(w.overflow)   # see _f32_repair_all
                        c0 += _CHANNELS
                        continue
                if real_t is not float:   # float64 and float16 sum in float64, as above
                    for k in range(cl):
                        acc[k] = _load(p[k]) + 0.0
                    for iw in range(1, w.w1[o] - w.w0[o]):
                        p += g.xs[4]
                        for k in range(cl):
                            acc[k] += _load(p[k])
                else:
                    for k in range(cl):
                        acc[k] = 0.0
                        facc[k] = 0.0
                    count = 0
                    for iw in range(w.w1[o] - w.w0[o]):
                        # flush before a lane takes its (_F32_FLUSH + 1)-th addition
                        if count == _F32_FLUSH:
                            for k in range(cl):
                                acc[k] += facc[k]
                                facc[k] = 0.0
                            count = 0
                        for k in range(cl):
                            facc[k] += p[k]
                        count += 1
                        p += g.xs[4]
                if real_t is float:
                    for k in range(cl):
                        acc[k] += facc[k]
                for k in range(cl):
                    _store(out + c0 + k, acc[k] * inv)
                if real_t is float and adapool_any_nonfinite_f64(acc, cl):
                    adapool_flag(w.overflow)
                c0 += _CHANNELS
        _step(&at)


ctypedef enum Path1d:
    MAX1D_ROWS = 0
    AVG1D_CL = 1
    MAX1D_TILES = 2
    MAX1D_CL = 3
    MAX1D_K3S2 = 4


cdef void _range1d(Path1d path, const real_t* x, real_t* y, const Win* w, const Geom* g,
                   const Run* r, double* scratch, Py_ssize_t begin, Py_ssize_t end) noexcept nogil:
    if path == AVG1D_CL:
        _avg1d_cl(x, y, w, g, begin, end)
    elif path == MAX1D_CL:
        if real_t is float:
            _max1d_cl(<const float*>x, <float*>y, w, g, begin, end)
        elif real_t is double:
            _max1d_cl(<const double*>x, <double*>y, w, g, begin, end)
    elif path == MAX1D_K3S2:
        if real_t is float:
            _max1d_k3s2(<const float*>x, <float*>y, w, g, r, begin, end)
        elif real_t is double:
            _max1d_k3s2(<const double*>x, <double*>y, w, g, r, begin, end)
    elif path == MAX1D_TILES:
        if real_t is float:
            _max1d_tiles(<const float*>x, <float*>y, w, g, <float*>scratch, begin, end)
        elif real_t is double:
            _max1d_tiles(<const double*>x, <double*>y, w, g, <double*>scratch, begin, end)
    elif real_t is float:
        _max1d_rows(<const float*>x, <float*>y, w, g, r, begin, end)
    elif real_t is double:
        _max1d_rows(<const double*>x, <double*>y, w, g, r, begin, end)


cdef int _run1d(Path1d path, const real_t* x, real_t* y, const Win* w, Geom g, const Run* r,
                int nthreads) noexcept nogil:
    """One static range of items per thread, as _run splits them; 0, or -1 when scratch could
    not be allocated (only the tiles have any)."""
    cdef Py_ssize_t nitems, begin, end, per_thread = 0, lanes = _LANES_BYTES // sizeof(real_t)
    cdef int64_t stamps[2 * 64]
    cdef double* scratch = NULL
    cdef int t
    if path == AVG1D_CL or path == MAX1D_CL:
        nitems = g.n * ((g.ow + _PIXELS - 1) // _PIXELS)
    elif path == MAX1D_TILES:
        nitems = g.n * ((g.c + lanes - 1) // lanes)
        per_thread = _doubles((g.w + g.ow) * _tile_stride(lanes, sizeof(real_t)), sizeof(real_t))
    else:
        nitems = g.n * g.c
    nthreads = <int>max(1, min(<Py_ssize_t>min(nthreads, 64), nitems))
    if nthreads > 1 and adapool_serial_now():
        nthreads = 1   # backing off from a contended machine (see adapool_note_parallel)
    if per_thread:
        scratch = <double*>malloc(nthreads * per_thread * sizeof(double))
        if scratch == NULL:
            return -1
    if nthreads == 1:
        _range1d(path, x, y, w, &g, r, scratch, 0, nitems)
    else:
        for t in prange(nthreads, num_threads=nthreads, schedule="static", chunksize=1):
            begin = nitems * t // nthreads   # assigned in the loop body: thread-private (see _run)
            end = nitems * (t + 1) // nthreads
            stamps[2 * t] = adapool_now_ns()
            _range1d(path, x, y, w, &g, r, scratch + t * per_thread, begin, end)
            stamps[2 * t + 1] = adapool_now_ns()
        adapool_note_parallel(adapool_skewed(stamps, nthreads))
    if real_t is float and path == AVG1D_CL and w.overflow != NULL and w.overflow[0]:
        _f32_repair_all(x, y, w, &g)   # float32 sums that overflowed (see _f32_repair_all)
    free(scratch)
    return 0


cdef bint _nonempty_windows(const Win* w, const Geom* g) noexcept nogil:
    """Every window non-empty and inside the row: these loops read a window's first element
    unconditionally (the general kernels take any other table)."""
    cdef Py_ssize_t o
    for o in range(g.ow):
        if not (0 <= w.w0[o] < w.w1[o] <= g.w):
            return False
    return True


def pool1d_fast(str op, cnp.ndarray x, cnp.ndarray y, cnp.ndarray table, int nthreads):
    """The 1-d pools' own paths, without indices: ``op`` "max" pools rows of x (N, C, L) (W unit
    stride) into y (N, C, OL) (OL unit stride), "max_cl" channels-last x into y of any layout,
    "avg" channels-last x into channels-last y. Returns False, having written nothing, when the
    call is not one its path takes (float16 max, a long row without a uniform run of 16
    windows, y in another layout, an empty window): the caller then runs the general kernel."""
    return _pool1d_fast(op, x, y, table, nthreads) == 1


cdef int _pool1d_fast(str op, cnp.ndarray x, cnp.ndarray y, cnp.ndarray table, int nthreads) except -1:
    """pool1d_fast: 1 where its path ran, 0 where it declined."""
    cdef Geom g
    cdef Run r
    cdef Path1d path
    cdef int t = cnp.PyArray_TYPE(x)
    if op == "max":
        path = MAX1D_ROWS
    elif op == "max_cl":
        path = MAX1D_CL
    elif op == "avg":
        path = AVG1D_CL
    else:
        raise ValueError("op must be 'max', 'max_cl' or 'avg'")
    _geometry(x, y, 1, path != MAX1D_ROWS, &g)
    _check_writeable(y)
    cdef Win w = _win(_int64_table(table, 3 * (g.od + g.oh + g.ow), "window"), NULL, &g)
    cdef int overflow = 0
    w.overflow = &overflow
    r.lo = r.hi = r.step = r.k = 0
    if not _nonempty_windows(&w, &g):
        return 0
    if path == MAX1D_CL and t == cnp.NPY_FLOAT16:
        return 0
    if path == MAX1D_ROWS:
        if t == cnp.NPY_FLOAT16 or (g.ow > 1 and g.ys[4] != 1):
            return 0
        r = _uniform_run(&w, &g)
        if r.k == 3 and r.step == 2 and r.hi - r.lo >= _ROW_LANES and (g.w >= _K3S2_ROW or g.c < 8):
            path = MAX1D_K3S2
        elif g.w < _LONG_ROW and g.c >= 8:
            path = MAX1D_TILES
        elif r.hi - r.lo < _ROW_LANES:
            return 0
    elif path == AVG1D_CL and g.c > 1 and g.ys[1] != 1:
        return 0
    cdef const void* src = cnp.PyArray_DATA(x)
    cdef void* dst = cnp.PyArray_DATA(y)
    cdef int rc
    with nogil:
        if t == cnp.NPY_FLOAT:
            rc = _run1d(path, <const float*>src, <float*>dst, &w, g, &r, nthreads)
        elif t == cnp.NPY_DOUBLE:
            rc = _run1d(path, <const double*>src, <double*>dst, &w, g, &r, nthreads)
        else:
            rc = _run1d(path, <const half_bits*>src, <half_bits*>dst, &w, g, &r, nthreads)
    _raise_for(rc)
    return 1
