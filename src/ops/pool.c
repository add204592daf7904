/* ops/pool: MaxPool (with Indices, int8/uint8), AveragePool, LpPool and their
 * Global forms over 1 to 3 spatial dims (NCHW). Each (image, channel) plane is a
 * task on the thread pool; windows are clipped once per output row/column. */
#include "ops/op.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

typedef struct pool_geom {
    int r;
    size_t in[3], out[3], k[3], s[3], d[3];
    ptrdiff_t pb[3], pe[3];
} pool_geom;

static oq_status read_ints(const oq_op_node *n, const char *name, int r, int64_t dflt, int64_t *dst, int64_t min)
{
    const int64_t *v;
    size_t c = oq_node_attr_ints(n->node, name, &v);
    if (v && c != (size_t)r)
        return oq_op_error(n, OQ_E_INVALID_ARG, "%s has %zu values, expected %d", name, c, r);
    for (int i = 0; i < r; i++) {
        dst[i] = v ? v[i] : dflt;
        if (dst[i] < min)
            return oq_op_error(n, OQ_E_INVALID_ARG, "%s[%d] = %lld is out of range", name, i, (long long)dst[i]);
    }
    return OQ_OK;
}

/* Geometry of a windowed pool over x (rank 3..5), unused leading dims set to 1. */
static oq_status pool_geometry(const oq_op_node *n, const oq_tensor *x, pool_geom *pg)
{
    oq_status st;
    int r = x->ndim - 2;
    if (r < 1 || r > 3)
        return oq_op_error(n, OQ_E_UNSUPPORTED, "pooling over %d spatial dimensions is not supported (1 to 3)", r);
    int64_t k[3], s[3], d[3], pads[6] = {0};
    const int64_t *ks;
    if (oq_node_attr_ints(n->node, "kernel_shape", &ks) != (size_t)r)
        return oq_op_error(n, OQ_E_INVALID_ARG, "kernel_shape must have %d values", r);
    if ((st = read_ints(n, "kernel_shape", r, 1, k, 1)) || (st = read_ints(n, "strides", r, 1, s, 1)) ||
        (st = read_ints(n, "dilations", r, 1, d, 1)))
        return st;
    const int64_t *pv;
    size_t np = oq_node_attr_ints(n->node, "pads", &pv);
    if (pv && np != (size_t)(2 * r))
        return oq_op_error(n, OQ_E_INVALID_ARG, "pads has %zu values, expected %d", np, 2 * r);
    for (size_t i = 0; pv && i < np; i++) {
        if (pv[i] < 0)
            return oq_op_error(n, OQ_E_INVALID_ARG, "negative pads are not supported");
        pads[i] = pv[i];
    }
    const char *ap = oq_node_attr_string(n->node, "auto_pad", "NOTSET");
    bool ceil_mode = oq_node_attr_int(n->node, "ceil_mode", 0) != 0;
    int off = 3 - r;
    pg->r = r;
    for (int i = 0; i < 3; i++) {
        pg->in[i] = pg->out[i] = pg->k[i] = pg->s[i] = pg->d[i] = 1;
        pg->pb[i] = pg->pe[i] = 0;
    }
    for (int i = 0; i < r; i++) {
        int64_t in = x->dims[2 + i], ext = (k[i] - 1) * d[i] + 1, pb = pads[i], pe = pads[r + i], o;
        if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
            o = (in + s[i] - 1) / s[i];
            int64_t total = (o - 1) * s[i] + ext - in;
            if (total < 0)
                total = 0;
            pb = !strcmp(ap, "SAME_UPPER") ? total / 2 : total - total / 2;
            pe = total - pb;
        } else {
            if (!strcmp(ap, "VALID"))
                pb = pe = 0;
            else if (strcmp(ap, "NOTSET") != 0)
                return oq_op_error(n, OQ_E_INVALID_ARG, "auto_pad '%s' is not valid", ap);
            int64_t span = in + pb + pe - ext;
            if (span < 0)
                return oq_op_error(n, OQ_E_SHAPE, "pooling window %lld exceeds padded input %lld", (long long)ext,
                                   (long long)(in + pb + pe));
            o = (ceil_mode ? (span + s[i] - 1) / s[i] : span / s[i]) + 1;
            /* the last window must start inside the input or its leading pad */
            if (ceil_mode && (o - 1) * s[i] >= in + pb)
                o--;
        }
        pg->in[off + i] = (size_t)in;
        pg->out[off + i] = (size_t)o;
        pg->k[off + i] = (size_t)k[i];
        pg->s[off + i] = (size_t)s[i];
        pg->d[off + i] = (size_t)d[i];
        pg->pb[off + i] = (ptrdiff_t)pb;
        pg->pe[off + i] = (ptrdiff_t)pe;
    }
    return OQ_OK;
}

/* Window of output o along one dim: taps t in [*t0, *t1) are inside the input;
 * *first is the input index of tap 0. *padded counts taps inside input + pads. */
static void window(const pool_geom *pg, int i, size_t o, ptrdiff_t *first, size_t *t0, size_t *t1, size_t *padded)
{
    ptrdiff_t st = (ptrdiff_t)(o * pg->s[i]) - pg->pb[i], d = (ptrdiff_t)pg->d[i];
    ptrdiff_t in = (ptrdiff_t)pg->in[i], lim = in + pg->pe[i];
    size_t a = 0, b = 0, c = 0;
    for (size_t t = 0; t < pg->k[i]; t++) {
        ptrdiff_t p = st + (ptrdiff_t)t * d;
        if (p < 0)
            a = t + 1;
        if (p < in)
            b = t + 1;
        if (p < lim)
            c = t + 1;
    }
    if (b < a)
        b = a;
    *first = st;
    *t0 = a;
    *t1 = b;
    *padded = c;
}

static void set_out_shape(oq_tensor *out, oq_dtype dt, const oq_tensor *x, const pool_geom *pg)
{
    int64_t dims[5] = {x->dims[0], x->dims[1]};
    for (int i = 0; i < pg->r; i++)
        dims[2 + i] = (int64_t)pg->out[3 - pg->r + i];
    oq_set_shape(out, dt, x->ndim, dims);
}

/* LpPool's p: a float attribute in opset 1, an int from opset 2. */
static float lp_p(const oq_op_node *n)
{
    const oq_attr *a = oq_node_attr(n->node, "p");
    if (!a)
        return 2.0f;
    return a->type == OQ_ATTR_FLOAT ? a->f : (float)a->i;
}

typedef enum pool_kind { POOL_MAX, POOL_AVG, POOL_LP } pool_kind;

typedef struct pool_job {
    pool_geom g;
    pool_kind kind;
    oq_dtype dt;
    const void *x;
    void *y;
    int64_t *indices;
    int storage_order;
    bool count_include_pad;
    float p;
    size_t channels; /* nhwc: channels per pixel */
} pool_job;

#define PLANE_IN(g) ((g)->in[0] * (g)->in[1] * (g)->in[2])
#define PLANE_OUT(g) ((g)->out[0] * (g)->out[1] * (g)->out[2])

/* Max pooling of one plane for element type T. */
#define DEFINE_MAX_PLANE(name, T)                                                                                     \
    static void name(const pool_job *j, size_t plane)                                                                 \
    {                                                                                                                 \
        const pool_geom *g = &j->g;                                                                                   \
        const T *x = (const T *)j->x + plane * PLANE_IN(g);                                                           \
        T *y = (T *)j->y + plane * PLANE_OUT(g);                                                                      \
        int64_t *ind = j->indices ? j->indices + plane * PLANE_OUT(g) : NULL;                                         \
        size_t o = 0;                                                                                                 \
        for (size_t oz = 0; oz < g->out[0]; oz++) {                                                                   \
            ptrdiff_t fz;                                                                                             \
            size_t z0, z1, pz;                                                                                        \
            window(g, 0, oz, &fz, &z0, &z1, &pz);                                                                     \
            for (size_t oy = 0; oy < g->out[1]; oy++) {                                                               \
                ptrdiff_t fy;                                                                                         \
                size_t y0, y1, py;                                                                                    \
                window(g, 1, oy, &fy, &y0, &y1, &py);                                                                 \
                for (size_t ox = 0; ox < g->out[2]; ox++, o++) {                                                      \
                    ptrdiff_t fx;                                                                                     \
                    size_t x0, x1, px;                                                                                \
                    window(g, 2, ox, &fx, &x0, &x1, &px);                                                             \
                    bool any = false;                                                                                 \
                    T best = 0;                                                                                       \
                    size_t bi = 0;                                                                                    \
                    for (size_t tz = z0; tz < z1; tz++) {                                                             \
                        size_t iz = (size_t)(fz + (ptrdiff_t)(tz * g->d[0]));                                         \
                        for (size_t ty = y0; ty < y1; ty++) {                                                         \
                            size_t iy = (size_t)(fy + (ptrdiff_t)(ty * g->d[1]));                                     \
                            const T *row = x + (iz * g->in[1] + iy) * g->in[2];                                       \
                            for (size_t tx = x0; tx < x1; tx++) {                                                     \
                                size_t ix = (size_t)(fx + (ptrdiff_t)(tx * g->d[2]));                                 \
                                T v = row[ix];                                                                        \
                                if (!any || v > best) {                                                               \
                                    best = v;                                                                         \
                                    bi = (iz * g->in[1] + iy) * g->in[2] + ix;                                        \
                                    if (j->storage_order)                                                             \
                                        bi = (ix * g->in[1] + iy) * g->in[0] + iz;                                    \
                                    any = true;                                                                       \
                                }                                                                                     \
                            }                                                                                         \
                        }                                                                                             \
                    }                                                                                                 \
                    y[o] = best;                                                                                      \
                    if (ind)                                                                                          \
                        ind[o] = (int64_t)(plane * PLANE_IN(g) + bi);                                                 \
                }                                                                                                     \
            }                                                                                                         \
        }                                                                                                             \
    }
DEFINE_MAX_PLANE(max_plane_f32, float)
DEFINE_MAX_PLANE(max_plane_f64, double)
DEFINE_MAX_PLANE(max_plane_i8, int8_t)
DEFINE_MAX_PLANE(max_plane_u8, uint8_t)

/* col[i] = max(col[i], row[i]) for the element types of the fast path below. maxps(a, b)
 * is a > b ? a : b, the scalar rule (a NaN in row is skipped); int8 goes through the
 * unsigned max with the sign bit flipped (SSE2 has no signed byte max). */
static void row_max_f32(float *col, const float *row, size_t n)
{
    size_t i = 0;
#if defined(__SSE2__)
    for (; i + 4 <= n; i += 4)
        _mm_storeu_ps(col + i, _mm_max_ps(_mm_loadu_ps(row + i), _mm_loadu_ps(col + i)));
#endif
    for (; i < n; i++)
        col[i] = row[i] > col[i] ? row[i] : col[i];
}

static void row_max_u8(uint8_t *col, const uint8_t *row, size_t n)
{
    size_t i = 0;
#if defined(__SSE2__)
    for (; i + 16 <= n; i += 16)
        _mm_storeu_si128((__m128i *)(col + i), _mm_max_epu8(_mm_loadu_si128((const __m128i *)(row + i)),
                                                            _mm_loadu_si128((const __m128i *)(col + i))));
#endif
    for (; i < n; i++)
        col[i] = row[i] > col[i] ? row[i] : col[i];
}

static void row_max_i8(int8_t *col, const int8_t *row, size_t n)
{
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i sign = _mm_set1_epi8((char)0x80);
    for (; i + 16 <= n; i += 16) {
        __m128i a = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(row + i)), sign);
        __m128i b = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(col + i)), sign);
        _mm_storeu_si128((__m128i *)(col + i), _mm_xor_si128(_mm_max_epu8(a, b), sign));
    }
#endif
    for (; i < n; i++)
        col[i] = row[i] > col[i] ? row[i] : col[i];
}

/* Column windows of 3 at stride 2 (ResNet's stem pool, u8 between quantized
 * layers) for the outputs whose window lies inside the row, 16 at a time: even
 * and odd bytes of col split by mask-and-pack. Writes y[ox] for ox in [*a, *b);
 * reads col up to one byte past the row. */
static void col_max_k3s2_u8(const pool_geom *g, const uint8_t *col, const ptrdiff_t *fxs, uint8_t *y, size_t *a,
                            size_t *b)
{
    *a = *b = 0;
#if defined(__SSE2__)
    if (g->k[2] != 3 || g->s[2] != 2 || g->d[2] != 1)
        return;
    size_t n = g->out[2], iw = g->in[2], ox = 0;
    while (ox < n && fxs[ox] < 0)
        ox++;
    *a = ox;
    const __m128i m = _mm_set1_epi16(0x00FF);
    /* the last tap of output ox + 15 is fxs[ox] + 32 */
    for (; ox + 16 <= n && (size_t)fxs[ox] + 32 < iw; ox += 16) {
        const uint8_t *p = col + fxs[ox];
        __m128i v0 = _mm_loadu_si128((const __m128i *)p), v1 = _mm_loadu_si128((const __m128i *)(p + 16));
        __m128i w0 = _mm_loadu_si128((const __m128i *)(p + 2)), w1 = _mm_loadu_si128((const __m128i *)(p + 18));
        __m128i e = _mm_packus_epi16(_mm_and_si128(v0, m), _mm_and_si128(v1, m));
        __m128i o = _mm_packus_epi16(_mm_srli_epi16(v0, 8), _mm_srli_epi16(v1, 8));
        __m128i e2 = _mm_packus_epi16(_mm_and_si128(w0, m), _mm_and_si128(w1, m));
        _mm_storeu_si128((__m128i *)(y + ox), _mm_max_epu8(_mm_max_epu8(e, o), e2));
    }
    *b = ox;
#else
    (void)g, (void)col, (void)fxs, (void)y;
#endif
}
#define COL_MAX_NONE(g, col, fxs, y, a, b) (*(a) = *(b) = 0)

/* One output row of a 2x2 stride-2 float max pool, 4 outputs at a time: the even and odd columns of
 * rows r0 and r1 split by shuffles, then max(v, m) = v > m ? v : m in the scalar loop's order (r0
 * even, r0 odd, r1 even, r1 odd, from -inf), so NaN and signed zeros come out the same. Returns
 * the outputs written (the rest: the scalar loop). */
static size_t max2x2_f32(const float *r0, const float *r1, float *y, size_t ow)
{
    size_t ox = 0;
#if defined(__SSE2__)
    const __m128 lowest = _mm_set1_ps(-INFINITY);
    for (; ox + 4 <= ow; ox += 4) {
        __m128 a0 = _mm_loadu_ps(r0 + 2 * ox), a1 = _mm_loadu_ps(r0 + 2 * ox + 4);
        __m128 b0 = _mm_loadu_ps(r1 + 2 * ox), b1 = _mm_loadu_ps(r1 + 2 * ox + 4);
        __m128 m = _mm_max_ps(_mm_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0)), lowest);
        m = _mm_max_ps(_mm_shuffle_ps(a0, a1, _MM_SHUFFLE(3, 1, 3, 1)), m);
        m = _mm_max_ps(_mm_shuffle_ps(b0, b1, _MM_SHUFFLE(2, 0, 2, 0)), m);
        m = _mm_max_ps(_mm_shuffle_ps(b0, b1, _MM_SHUFFLE(3, 1, 3, 1)), m);
        _mm_storeu_ps(y + ox, m);
    }
#else
    (void)r0, (void)r1, (void)y, (void)ow;
#endif
    return ox;
}

/* The same for bytes, 8 outputs per 16 input columns: the max of the two rows, then of each column
 * pair in 16-bit lanes, all in registers. A row's last chunk overlaps the one before it (the
 * outputs they share are written twice, the same), so no byte past the row is read; the CNNs'
 * pooled rows are 14 and 7 wide. flip 0x80 makes int8 compare as uint8. Returns the outputs
 * written: all, or none when the row is narrower than 8 bytes. */
#if defined(__SSE2__)
static inline __m128i pairs_max8(__m128i a, __m128i b, __m128i f)
{
    const __m128i m = _mm_set1_epi16(0x00FF);
    __m128i v = _mm_max_epu8(_mm_xor_si128(a, f), _mm_xor_si128(b, f));
    __m128i h = _mm_max_epi16(_mm_and_si128(v, m), _mm_srli_epi16(v, 8)); /* 0..255 in 16-bit lanes */
    return _mm_xor_si128(_mm_packus_epi16(h, h), f);                    /* the low 8 (or 4) bytes */
}
#endif

static size_t max2x2_8(const uint8_t *r0, const uint8_t *r1, uint8_t *y, size_t ow, uint8_t flip)
{
#if defined(__SSE2__)
    const size_t iw = 2 * ow;
    const __m128i f = _mm_set1_epi8((char)flip);
    if (iw >= 16) {
        for (size_t i = 0;; i += 16) {
            if (i + 16 > iw)
                i = iw - 16;
            _mm_storel_epi64((__m128i *)(y + i / 2), pairs_max8(_mm_loadu_si128((const __m128i *)(r0 + i)),
                                                               _mm_loadu_si128((const __m128i *)(r1 + i)), f));
            if (i + 16 >= iw)
                return ow;
        }
    }
    if (iw >= 8) {
        for (size_t i = 0;; i += 8) {
            if (i + 8 > iw)
                i = iw - 8;
            int32_t out = _mm_cvtsi128_si32(pairs_max8(_mm_loadl_epi64((const __m128i *)(r0 + i)),
                                                       _mm_loadl_epi64((const __m128i *)(r1 + i)), f));
            memcpy(y + i / 2, &out, 4);
            if (i + 8 >= iw)
                return ow;
        }
    }
#else
    (void)r0, (void)r1, (void)y, (void)ow, (void)flip;
#endif
    return 0;
}
#define max2x2_u8(r0, r1, y, ow) max2x2_8(r0, r1, y, ow, 0)
#define max2x2_i8(r0, r1, y, ow) max2x2_8((const uint8_t *)(r0), (const uint8_t *)(r1), (uint8_t *)(y), ow, 0x80)

/* Max pooling without Indices, the hot case (ResNet's 3x3/2 stem pool, in float or
 * in int8 between quantized layers): column windows are computed once per plane, the
 * inner loop is a bare max. Returns false when the plane is too wide for it. */
enum { FAST_COLS = 1024 };
#define DEFINE_MAX_PLANE_FAST(name, T, LOWEST, ROW_MAX, COL_MAX, MAX2X2)                                                       \
    static bool name(const pool_job *j, size_t plane)                                                                 \
    {                                                                                                                 \
        const pool_geom *g = &j->g;                                                                                   \
        if (g->out[2] > FAST_COLS || g->k[2] > 65535)                                                                 \
            return false;                                                                                             \
        if (g->in[0] == 1 && g->k[0] == 1 && g->out[0] == 1 && g->k[1] == 2 && g->k[2] == 2 && g->s[1] == 2 &&       \
            g->s[2] == 2 && g->d[1] == 1 && g->d[2] == 1 && g->pb[1] == 0 && g->pb[2] == 0 &&                         \
            2 * g->out[1] <= g->in[1] && 2 * g->out[2] <= g->in[2]) {                                                 \
            /* 2x2 stride 2 inside the plane (the small CNNs' pool): no window set-up per plane, four               \
             * compares per output in the order the general loop takes (same NaN handling) */                         \
            const T *x = (const T *)j->x + plane * PLANE_IN(g);                                                       \
            T *y = (T *)j->y + plane * PLANE_OUT(g);                                                                  \
            const size_t iw = g->in[2], ow = g->out[2];                                                               \
            for (size_t oy = 0; oy < g->out[1]; oy++) {                                                               \
                const T *r0 = x + 2 * oy * iw, *r1 = r0 + iw;                                                         \
                T *yr = y + oy * ow;                                                                                  \
                for (size_t ox = MAX2X2(r0, r1, yr, ow); ox < ow; ox++) {                                             \
                    T m = LOWEST;                                                                                     \
                    m = r0[2 * ox] > m ? r0[2 * ox] : m;                                                              \
                    m = r0[2 * ox + 1] > m ? r0[2 * ox + 1] : m;                                                      \
                    m = r1[2 * ox] > m ? r1[2 * ox] : m;                                                              \
                    m = r1[2 * ox + 1] > m ? r1[2 * ox + 1] : m;                                                      \
                    yr[ox] = m;                                                                                       \
                }                                                                                                     \
            }                                                                                                         \
            return true;                                                                                              \
        }                                                                                                             \
        ptrdiff_t fxs[FAST_COLS];                                                                                     \
        uint16_t x0s[FAST_COLS], x1s[FAST_COLS];                                                                      \
        for (size_t ox = 0; ox < g->out[2]; ox++) {                                                                   \
            size_t a, b, c;                                                                                           \
            window(g, 2, ox, &fxs[ox], &a, &b, &c);                                                                   \
            x0s[ox] = (uint16_t)a;                                                                                    \
            x1s[ox] = (uint16_t)b;                                                                                    \
        }                                                                                                             \
        const T *x = (const T *)j->x + plane * PLANE_IN(g);                                                           \
        T *y = (T *)j->y + plane * PLANE_OUT(g);                                                                      \
        const size_t dx = g->d[2];                                                                                    \
        if (g->in[0] == 1 && g->k[0] == 1 && g->out[0] == 1 && g->in[2] <= FAST_COLS) {                               \
            /* 2-D: the max over the window's rows first (vectorized), then over columns,                             \
             * so overlapping windows do not compare the same inputs again */                                         \
            T col[FAST_COLS + 16];                                                                                    \
            const size_t iw = g->in[2];                                                                               \
            for (size_t oy = 0; oy < g->out[1]; oy++, y += g->out[2]) {                                               \
                ptrdiff_t fy;                                                                                         \
                size_t y0, y1, py;                                                                                    \
                window(g, 1, oy, &fy, &y0, &y1, &py);                                                                 \
                for (size_t i = 0; i < iw; i++)                                                                       \
                    col[i] = LOWEST;                                                                                  \
                for (size_t ty = y0; ty < y1; ty++)                                                                   \
                    ROW_MAX(col, x + (size_t)(fy + (ptrdiff_t)(ty * g->d[1])) * iw, iw);                              \
                size_t va, vb;                                                                                        \
                COL_MAX(g, col, fxs, y, &va, &vb);                                                                    \
                for (size_t ox = 0; ox < g->out[2]; ox++) {                                                           \
                    if (ox == va && vb > va)                                                                          \
                        ox = vb;                                                                                      \
                    if (ox >= g->out[2])                                                                              \
                        break;                                                                                        \
                    T m = LOWEST;                                                                                     \
                    /* fxs may be negative (left padding); tx starts where the index is >= 0 */                       \
                    for (size_t tx = x0s[ox]; tx < x1s[ox]; tx++) {                                                   \
                        T v = col[fxs[ox] + (ptrdiff_t)(tx * dx)];                                                    \
                        m = v > m ? v : m;                                                                            \
                    }                                                                                                 \
                    y[ox] = m;                                                                                        \
                }                                                                                                     \
            }                                                                                                         \
            return true;                                                                                              \
        }                                                                                                             \
        for (size_t oz = 0; oz < g->out[0]; oz++) {                                                                   \
            ptrdiff_t fz;                                                                                             \
            size_t z0, z1, pz;                                                                                        \
            window(g, 0, oz, &fz, &z0, &z1, &pz);                                                                     \
            for (size_t oy = 0; oy < g->out[1]; oy++, y += g->out[2]) {                                               \
                ptrdiff_t fy;                                                                                         \
                size_t y0, y1, py;                                                                                    \
                window(g, 1, oy, &fy, &y0, &y1, &py);                                                                 \
                for (size_t ox = 0; ox < g->out[2]; ox++)                                                             \
                    y[ox] = LOWEST;                                                                                   \
                for (size_t tz = z0; tz < z1; tz++) {                                                                 \
                    size_t iz = (size_t)(fz + (ptrdiff_t)(tz * g->d[0]));                                             \
                    for (size_t ty = y0; ty < y1; ty++) {                                                             \
                        size_t iy = (size_t)(fy + (ptrdiff_t)(ty * g->d[1]));                                         \
                        const T *row = x + (iz * g->in[1] + iy) * g->in[2];                                           \
                        for (size_t ox = 0; ox < g->out[2]; ox++) {                                                   \
                            T m = y[ox];                                                                              \
                            const ptrdiff_t f = fxs[ox];                                                              \
                            for (size_t tx = x0s[ox]; tx < x1s[ox]; tx++) {                                           \
                                T v = row[f + (ptrdiff_t)(tx * dx)];                                                  \
                                m = v > m ? v : m;                                                                    \
                            }                                                                                         \
                            y[ox] = m;                                                                                \
                        }                                                                                             \
                    }                                                                                                 \
                }                                                                                                     \
            }                                                                                                         \
        }                                                                                                             \
        return true;                                                                                                  \
    }
DEFINE_MAX_PLANE_FAST(max_plane_f32_fast, float, -INFINITY, row_max_f32, COL_MAX_NONE, max2x2_f32)
DEFINE_MAX_PLANE_FAST(max_plane_u8_fast, uint8_t, 0, row_max_u8, col_max_k3s2_u8, max2x2_u8)
DEFINE_MAX_PLANE_FAST(max_plane_i8_fast, int8_t, INT8_MIN, row_max_i8, COL_MAX_NONE, max2x2_i8)

/* Average or Lp pooling of one float plane. */
static void avg_plane(const pool_job *j, size_t plane)
{
    const pool_geom *g = &j->g;
    const float *x = (const float *)j->x + plane * PLANE_IN(g);
    float *y = (float *)j->y + plane * PLANE_OUT(g);
    size_t o = 0;
    for (size_t oz = 0; oz < g->out[0]; oz++) {
        ptrdiff_t fz;
        size_t z0, z1, pz;
        window(g, 0, oz, &fz, &z0, &z1, &pz);
        for (size_t oy = 0; oy < g->out[1]; oy++) {
            ptrdiff_t fy;
            size_t y0, y1, py;
            window(g, 1, oy, &fy, &y0, &y1, &py);
            for (size_t ox = 0; ox < g->out[2]; ox++, o++) {
                ptrdiff_t fx;
                size_t x0, x1, px;
                window(g, 2, ox, &fx, &x0, &x1, &px);
                float sum = 0.0f;
                for (size_t tz = z0; tz < z1; tz++) {
                    size_t iz = (size_t)(fz + (ptrdiff_t)(tz * g->d[0]));
                    for (size_t ty = y0; ty < y1; ty++) {
                        size_t iy = (size_t)(fy + (ptrdiff_t)(ty * g->d[1]));
                        const float *row = x + (iz * g->in[1] + iy) * g->in[2];
                        if (j->kind == POOL_AVG && g->d[2] == 1) {
                            for (size_t tx = x0; tx < x1; tx++)
                                sum += row[(size_t)fx + tx];
                        } else
                            for (size_t tx = x0; tx < x1; tx++) {
                                float v = row[(size_t)(fx + (ptrdiff_t)(tx * g->d[2]))];
                                sum += j->kind == POOL_AVG ? v : (j->p == 2.0f ? v * v : powf(fabsf(v), j->p));
                            }
                    }
                }
                if (j->kind == POOL_LP) {
                    y[o] = j->p == 2.0f ? sqrtf(sum) : powf(sum, 1.0f / j->p);
                    continue;
                }
                size_t cnt = j->count_include_pad ? pz * py * px : (z1 - z0) * (y1 - y0) * (x1 - x0);
                y[o] = cnt ? sum / (float)cnt : 0.0f;
            }
        }
    }
}

static void pool_task(void *ctx, size_t plane, size_t thread)
{
    (void)thread;
    const pool_job *j = ctx;
    if (j->kind != POOL_MAX)
        avg_plane(j, plane);
    else if (j->dt == OQ_FLOAT) {
        if (j->indices || !max_plane_f32_fast(j, plane))
            max_plane_f32(j, plane);
    }
    else if (j->dt == OQ_DOUBLE)
        max_plane_f64(j, plane);
    else if (j->dt == OQ_INT8) {
        if (j->indices || !max_plane_i8_fast(j, plane))
            max_plane_i8(j, plane);
    } else if (j->indices || !max_plane_u8_fast(j, plane))
        max_plane_u8(j, plane);
}

/* Channels-last MaxPool (onnxq_nhwc, set by the layout pass between int8
 * convolutions; 2-D, u8 or s8, no Indices): output row `task` of image and
 * row, each pixel the bytewise max of its in-image taps' channel runs. */
static void max_nhwc_task(void *ctx, size_t task, size_t thread)
{
    (void)thread;
    const pool_job *j = ctx;
    const pool_geom *g = &j->g;
    size_t c = j->channels, b = task / g->out[1], oy = task % g->out[1];
    const uint8_t *x = (const uint8_t *)j->x + b * PLANE_IN(g) * c;
    uint8_t *y = (uint8_t *)j->y + (b * PLANE_OUT(g) + oy * g->out[2]) * c;
    ptrdiff_t fy, fx;
    size_t y0, y1, py, x0, x1, px;
    window(g, 1, oy, &fy, &y0, &y1, &py);
    for (size_t ox = 0; ox < g->out[2]; ox++, y += c) {
        window(g, 2, ox, &fx, &x0, &x1, &px);
        bool first = true;
        for (size_t ty = y0; ty < y1; ty++) {
            size_t iy = (size_t)(fy + (ptrdiff_t)(ty * g->d[1]));
            for (size_t tx = x0; tx < x1; tx++) {
                const uint8_t *v = x + (iy * g->in[2] + (size_t)(fx + (ptrdiff_t)(tx * g->d[2]))) * c;
                if (first)
                    memcpy(y, v, c);
                else if (j->dt == OQ_INT8)
                    row_max_i8((int8_t *)y, (const int8_t *)v, c);
                else
                    row_max_u8(y, v, c);
                first = false;
            }
        }
        if (first) /* no tap inside the image: 0, as the NCHW loops give */
            memset(y, 0, c);
    }
}

/* x as the NCHW code reads its dims (a channels-last x: channel dim moved to 1). */
static const oq_tensor *pool_x(const oq_op_node *n, const oq_tensor *x, oq_tensor *view)
{
    return !x || x->ndim != 4 || !oq_node_attr_int(n->node, "onnxq_nhwc", 0) ? x : oq_nchw_view(x, view);
}

static oq_status pool_check(oq_op_node *n, const oq_tensor *const *in, pool_kind kind, pool_geom *pg)
{
    if (oq_node_attr_int(n->node, "onnxq_nhwc", 0) &&
        (kind != POOL_MAX || !in[0] || in[0]->ndim != 4 || (in[0]->dtype != OQ_UINT8 && in[0]->dtype != OQ_INT8) ||
         (n->n_outputs > 1 && n->node->outputs[1][0])))
        return oq_op_error(n, OQ_E_UNSUPPORTED, "onnxq_nhwc: only a 2-D uint8/int8 MaxPool without Indices");
    oq_status st = kind == POOL_MAX ? oq_check_input(n, in, 0, OQ_FLOAT, OQ_DOUBLE, OQ_INT8, OQ_UINT8, OQ_UNDEFINED)
                                    : oq_check_input(n, in, 0, OQ_FLOAT, OQ_UNDEFINED);
    if (st != OQ_OK)
        return st;
    if (n->n_outputs < 1 || n->n_outputs > (kind == POOL_MAX ? 2u : 1u))
        return oq_op_error(n, OQ_E_INVALID_ARG, "wrong number of outputs (%zu)", n->n_outputs);
    if (kind == POOL_LP && !(lp_p(n) >= 1.0f))
        return oq_op_error(n, OQ_E_INVALID_ARG, "p must be >= 1");
    if (n->n_outputs > 1 && oq_node_attr_int(n->node, "storage_order", 0) > 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "storage_order must be 0 or 1");
    oq_tensor view;
    return pool_geometry(n, pool_x(n, in[0], &view), pg);
}

static oq_status pool_infer_kind(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out, pool_kind kind)
{
    pool_geom pg;
    oq_status st = pool_check(n, in, kind, &pg);
    if (st != OQ_OK)
        return st;
    oq_tensor view;
    set_out_shape(out[0], in[0]->dtype, pool_x(n, in[0], &view), &pg);
    if (oq_node_attr_int(n->node, "onnxq_nhwc", 0)) { /* [N, H, W, C] */
        int64_t d[4] = {in[0]->dims[0], out[0]->dims[2], out[0]->dims[3], in[0]->dims[3]};
        oq_set_shape(out[0], in[0]->dtype, 4, d);
    }
    if (n->n_outputs > 1 && out[1])
        set_out_shape(out[1], OQ_INT64, in[0], &pg);
    return OQ_OK;
}

static oq_status pool_run_kind(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out, pool_kind kind)
{
    pool_job j;
    memset(&j, 0, sizeof j);
    oq_status st = pool_check(n, in, kind, &j.g);
    if (st != OQ_OK)
        return st;
    j.kind = kind;
    j.dt = in[0]->dtype;
    j.x = in[0]->data;
    j.y = out[0]->data;
    j.indices = n->n_outputs > 1 && out[1] ? out[1]->data : NULL;
    j.storage_order = (int)oq_node_attr_int(n->node, "storage_order", 0);
    j.count_include_pad = oq_node_attr_int(n->node, "count_include_pad", 0) != 0;
    j.p = lp_p(n);
    size_t planes = (size_t)(in[0]->dims[0] * in[0]->dims[1]);
    if (PLANE_OUT(&j.g) == 0)
        return OQ_OK;
    if (oq_node_attr_int(n->node, "onnxq_nhwc", 0)) {
        j.channels = (size_t)in[0]->dims[3];
        oq_parallel_for(n->tp, (size_t)in[0]->dims[0] * j.g.out[1], max_nhwc_task, &j);
        return OQ_OK;
    }
    oq_parallel_for(n->tp, planes, pool_task, &j);
    return OQ_OK;
}

static oq_status maxpool_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return pool_infer_kind(n, in, out, POOL_MAX);
}
static oq_status maxpool_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return pool_run_kind(n, in, out, POOL_MAX);
}
static oq_status avgpool_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return pool_infer_kind(n, in, out, POOL_AVG);
}
static oq_status avgpool_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return pool_run_kind(n, in, out, POOL_AVG);
}
static oq_status lppool_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return pool_infer_kind(n, in, out, POOL_LP);
}
static oq_status lppool_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return pool_run_kind(n, in, out, POOL_LP);
}

const oq_op_def oq_op_maxpool = {NULL, maxpool_infer, maxpool_run, NULL};
const oq_op_def oq_op_averagepool = {NULL, avgpool_infer, avgpool_run, NULL};
const oq_op_def oq_op_lppool = {NULL, lppool_infer, lppool_run, NULL};

/* ---- Global pools: one value per (image, channel) plane ---- */
typedef struct global_job {
    pool_kind kind;
    oq_dtype dt;
    const void *x;
    void *y;
    size_t plane;
    float p;
} global_job;

static void global_task(void *ctx, size_t c, size_t thread)
{
    (void)thread;
    const global_job *j = ctx;
    if (j->dt == OQ_DOUBLE) {
        const double *x = (const double *)j->x + c * j->plane;
        double acc = j->kind == POOL_MAX ? -INFINITY : 0.0;
        for (size_t i = 0; i < j->plane; i++)
            acc = j->kind == POOL_MAX ? (x[i] > acc ? x[i] : acc) : acc + x[i];
        ((double *)j->y)[c] = j->kind == POOL_AVG ? acc / (double)j->plane : acc;
        return;
    }
    const float *x = (const float *)j->x + c * j->plane;
    float r;
    if (j->kind == POOL_MAX) {
        float m = -INFINITY;
        for (size_t i = 0; i < j->plane; i++)
            m = x[i] > m ? x[i] : m;
        r = m;
    } else if (j->kind == POOL_AVG) {
        /* four partial sums: vectorizes and loses less precision over large planes */
        float s[4] = {0, 0, 0, 0};
        size_t i = 0;
        for (; i + 4 <= j->plane; i += 4)
            for (int k = 0; k < 4; k++)
                s[k] += x[i + k];
        for (; i < j->plane; i++)
            s[0] += x[i];
        r = ((s[0] + s[1]) + (s[2] + s[3])) / (float)j->plane;
    } else {
        float s = 0;
        for (size_t i = 0; i < j->plane; i++)
            s += j->p == 2.0f ? x[i] * x[i] : powf(fabsf(x[i]), j->p);
        r = j->p == 2.0f ? sqrtf(s) : powf(s, 1.0f / j->p);
    }
    ((float *)j->y)[c] = r;
}

static oq_status global_check(oq_op_node *n, const oq_tensor *const *in, pool_kind kind)
{
    oq_status st = oq_check_input(n, in, 0, OQ_FLOAT, OQ_DOUBLE, OQ_UNDEFINED);
    if (st != OQ_OK)
        return st;
    if (in[0]->ndim < 2)
        return oq_op_error(n, OQ_E_SHAPE, "input must have rank >= 2, got %d", in[0]->ndim);
    if (kind == POOL_LP && in[0]->dtype != OQ_FLOAT)
        return oq_op_error(n, OQ_E_TYPE, "GlobalLpPool supports float only");
    return OQ_OK;
}

static oq_status global_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out, pool_kind kind)
{
    oq_status st = global_check(n, in, kind);
    if (st != OQ_OK)
        return st;
    int64_t dims[OQ_MAX_DIMS];
    for (int i = 0; i < in[0]->ndim; i++)
        dims[i] = i < 2 ? in[0]->dims[i] : 1;
    oq_set_shape(out[0], in[0]->dtype, in[0]->ndim, dims);
    return OQ_OK;
}

static oq_status global_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out, pool_kind kind)
{
    oq_status st = global_check(n, in, kind);
    if (st != OQ_OK)
        return st;
    global_job j = {kind, in[0]->dtype, in[0]->data, out[0]->data, 1,
                    lp_p(n)};
    for (int i = 2; i < in[0]->ndim; i++)
        j.plane *= (size_t)in[0]->dims[i];
    size_t planes = (size_t)(in[0]->dims[0] * in[0]->dims[1]);
    if (j.plane == 0) {
        /* empty window: pooling over nothing */
        for (size_t c = 0; c < planes; c++)
            if (j.dt == OQ_DOUBLE)
                ((double *)j.y)[c] = kind == POOL_MAX ? -INFINITY : (kind == POOL_AVG ? NAN : 0.0);
            else
                ((float *)j.y)[c] = kind == POOL_MAX ? -INFINITY : (kind == POOL_AVG ? NAN : 0.0f);
        return OQ_OK;
    }
    oq_parallel_for(planes * j.plane > 65536 ? n->tp : NULL, planes, global_task, &j);
    return OQ_OK;
}

#define GLOBAL_DEF(name, kind)                                                                         \
    static oq_status name##_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out) \
    {                                                                                                  \
        return global_infer(n, in, out, kind);                                                         \
    }                                                                                                  \
    static oq_status name##_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)   \
    {                                                                                                  \
        return global_run(n, in, out, kind);                                                           \
    }                                                                                                  \
    const oq_op_def oq_op_##name = {NULL, name##_infer, name##_run, NULL};
GLOBAL_DEF(globalaveragepool, POOL_AVG)
GLOBAL_DEF(globalmaxpool, POOL_MAX)
GLOBAL_DEF(globallppool, POOL_LP)
