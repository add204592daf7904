/* ops/qlinear_eltwise: the com.microsoft quantized elementwise and pooling
 * operators onnxruntime's quantizer writes (QLinearAdd, QLinearMul, QLinearSigmoid,
 * QLinearLeakyRelu, QLinearGlobalAveragePool, QLinearAveragePool, QLinearConcat),
 * uint8 and int8. Unary maps and requantizing copies are 256-entry tables (exact);
 * sums are exact integers scaled once: q = saturate(round_half_even(v) + zp). */
#include "ops/op.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define OQ_QE_X86 1
#endif

/* ---- quantization parameters ---- */

typedef struct qp {
    float scale;
    int32_t zp;
} qp;

static bool is_q8(oq_dtype t) { return t == OQ_UINT8 || t == OQ_INT8; }

static const oq_tensor *opt_in(const oq_op_node *n, const oq_tensor *const *in, size_t i)
{
    return i < n->n_inputs ? in[i] : NULL;
}

/* Per-tensor scale (input si) and optional zero point (input zi) of data type t. */
static oq_status read_qp(const oq_op_node *n, const oq_tensor *const *in, size_t si, size_t zi, oq_dtype t, qp *p)
{
    const oq_tensor *s = opt_in(n, in, si), *z = opt_in(n, in, zi);
    if (!s)
        return oq_op_error(n, OQ_E_INVALID_ARG, "scale input %zu is missing", si);
    if (s->dtype != OQ_FLOAT || oq_tensor_numel(s) != 1)
        return oq_op_error(n, OQ_E_UNSUPPORTED, "scale input %zu must be one float (per-tensor)", si);
    p->scale = *(const float *)s->data;
    if (!(p->scale > 0.0f) || !isfinite(p->scale))
        return oq_op_error(n, OQ_E_INVALID_ARG, "scale input %zu must be positive and finite", si);
    p->zp = 0;
    if (z) {
        if (z->dtype != t || oq_tensor_numel(z) != 1)
            return oq_op_error(n, OQ_E_TYPE, "zero point input %zu must be one %s", zi, oq_dtype_name(t));
        p->zp = (int32_t)oq_tensor_get_i64(z, 0);
    }
    return OQ_OK;
}

static void qlimits(oq_dtype t, int32_t *lo, int32_t *hi)
{
    *lo = t == OQ_INT8 ? -128 : 0;
    *hi = t == OQ_INT8 ? 127 : 255;
}

/* saturate(round_half_even(v) + zp); clamping first keeps the conversion in range. */
static inline int32_t requant(float v, int32_t zp, int32_t lo, int32_t hi)
{
    float flo = (float)(lo - zp), fhi = (float)(hi - zp);
    v = v > flo ? v : flo;
    v = v < fhi ? v : fhi;
    return (int32_t)nearbyintf(v) + zp;
}

static inline int32_t qload(const void *p, oq_dtype t, size_t i)
{
    return t == OQ_INT8 ? ((const int8_t *)p)[i] : ((const uint8_t *)p)[i];
}

/* Tables are indexed by the raw byte, so one layout serves uint8 and int8. */
static inline uint8_t byte_of(int32_t q) { return (uint8_t)(q & 0xff); }
static inline int32_t value_of_byte(unsigned b, oq_dtype t) { return t == OQ_INT8 ? (int8_t)b : (int32_t)b; }

/* table[b] = Q_y(f(DQ_x(b))) with f computed in float, as onnxruntime builds its tables. */
typedef float (*unary_fn)(float x, float param);
static void build_table(uint8_t table[256], oq_dtype t, qp x, qp y, unary_fn fn, float param)
{
    int32_t lo, hi;
    qlimits(t, &lo, &hi);
    for (unsigned b = 0; b < 256; b++) {
        float v = (float)(value_of_byte(b, t) - x.zp) * x.scale;
        table[b] = byte_of(requant(fn(v, param) / y.scale, y.zp, lo, hi));
    }
}

static float f_identity(float x, float p)
{
    (void)p;
    return x;
}
static float f_sigmoid(float x, float p)
{
    (void)p;
    return 1.0f / (1.0f + expf(-x));
}
static float f_leaky(float x, float alpha) { return x >= 0.0f ? x : x * alpha; }

typedef struct lut_job {
    const uint8_t *x;
    uint8_t *y;
    const uint8_t *table;
    size_t n, chunk;
} lut_job;

static void lut_task(void *ctx, size_t task, size_t thread)
{
    (void)thread;
    const lut_job *j = ctx;
    size_t s = task * j->chunk, e = s + j->chunk < j->n ? s + j->chunk : j->n;
    for (size_t i = s; i < e; i++)
        j->y[i] = j->table[j->x[i]];
}

#define CHUNK 65536

static void run_lut(const oq_op_node *n, const void *x, void *y, size_t count, const uint8_t *table)
{
    lut_job j = {x, y, table, count, CHUNK};
    size_t tasks = (count + CHUNK - 1) / CHUNK;
    if (tasks <= 1) {
        if (count)
            lut_task(&j, 0, 0);
    } else
        oq_parallel_for(n->tp, tasks, lut_task, &j);
}

/* ---- QLinearSigmoid, QLinearLeakyRelu: X, X_scale, X_zp?, Y_scale, Y_zp? ---- */

static oq_status unary_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    if (n->n_inputs < 4 || !in[0])
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects X, X_scale, X_zero_point, Y_scale[, Y_zero_point]");
    if (!is_q8(in[0]->dtype))
        return oq_op_error(n, OQ_E_TYPE, "X must be uint8 or int8, got %s", oq_dtype_name(in[0]->dtype));
    oq_set_shape(out[0], in[0]->dtype, in[0]->ndim, in[0]->dims);
    return OQ_OK;
}

static oq_status unary_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out, unary_fn fn, float p)
{
    oq_dtype t = in[0]->dtype;
    qp x, y;
    oq_status st = read_qp(n, in, 1, 2, t, &x);
    if (st == OQ_OK)
        st = read_qp(n, in, 3, 4, t, &y);
    if (st != OQ_OK)
        return st;
    uint8_t table[256];
    build_table(table, t, x, y, fn, p);
    run_lut(n, in[0]->data, out[0]->data, (size_t)oq_tensor_numel(in[0]), table);
    return OQ_OK;
}

static oq_status sigmoid_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return unary_run(n, in, out, f_sigmoid, 0.0f);
}

static oq_status leaky_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return unary_run(n, in, out, f_leaky, oq_node_attr_float(n->node, "alpha", 0.01f));
}

const oq_op_def oq_op_qlinear_sigmoid = {NULL, unary_infer, sigmoid_run, NULL};
const oq_op_def oq_op_qlinear_leaky_relu = {NULL, unary_infer, leaky_run, NULL};

/* ---- QLinearAdd, QLinearMul: A, A_scale, A_zp?, B, B_scale, B_zp?, C_scale, C_zp? ---- */

static oq_status binary_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    if (n->n_inputs < 7 || !in[0] || !in[3])
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects A, A_scale, A_zero_point, B, B_scale, B_zero_point, C_scale"
                                                "[, C_zero_point]");
    if (!is_q8(in[0]->dtype) || in[3]->dtype != in[0]->dtype)
        return oq_op_error(n, OQ_E_TYPE, "A and B must both be uint8 or both int8 (got %s, %s)",
                           oq_dtype_name(in[0]->dtype), oq_dtype_name(in[3]->dtype));
    int nd;
    int64_t dims[OQ_MAX_DIMS];
    oq_status st = oq_broadcast_shape(n, in[0]->ndim, in[0]->dims, in[3]->ndim, in[3]->dims, &nd, dims);
    if (st == OQ_OK)
        oq_set_shape(out[0], in[0]->dtype, nd, dims);
    return st;
}

/* saturate(round_half_even(v)) for v already holding the zero point: onnxruntime's
 * QLinearAdd/QLinearMul round after adding it, which differs from rounding first at ties. */
static inline int32_t round_sat(float v, int32_t lo, int32_t hi)
{
    float r = nearbyintf(v);
    return r < (float)lo ? lo : r > (float)hi ? hi : (int32_t)r;
}

#ifdef OQ_QE_X86
/* The add over contiguous rows, 32 bytes at a time; returns how many it did. Same
 * fused multiply-adds as the scalar tail, so results do not depend on the split. */
__attribute__((target("avx2,fma"))) static size_t add_avx2(const uint8_t *a, const uint8_t *b, uint8_t *c, size_t n,
                                                           float ra, float rb, float fixed, int is_signed)
{
    const __m256 vra = _mm256_set1_ps(ra), vrb = _mm256_set1_ps(rb), vfx = _mm256_set1_ps(fixed);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            __m128i a8 = _mm_loadl_epi64((const __m128i *)(a + i + 8 * k));
            __m128i b8 = _mm_loadl_epi64((const __m128i *)(b + i + 8 * k));
            __m256i ai = is_signed ? _mm256_cvtepi8_epi32(a8) : _mm256_cvtepu8_epi32(a8);
            __m256i bi = is_signed ? _mm256_cvtepi8_epi32(b8) : _mm256_cvtepu8_epi32(b8);
            __m256 v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(bi), vrb, vfx);
            v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ai), vra, v);
            q[k] = _mm256_cvtps_epi32(v);
        }
        __m256i ab = _mm256_packs_epi32(q[0], q[1]), cd = _mm256_packs_epi32(q[2], q[3]);
        __m256i r = is_signed ? _mm256_packs_epi16(ab, cd) : _mm256_packus_epi16(ab, cd);
        _mm256_storeu_si256((__m256i *)(c + i), _mm256_permutevar8x32_epi32(r, perm));
    }
    return i;
}
#endif

typedef struct bin_job {
    bool avx2;
    bool mul;
    oq_dtype t;
    const uint8_t *a, *b;
    uint8_t *c;
    float ra, rb, fixed; /* add: c = a * ra + (b * rb + fixed), fixed = zc - (ra * za + rb * zb) */
    float ratio;         /* mul: c = (a - za) * (b - zb) * ratio + zc, ratio = sa * sb / sc */
    int32_t za, zb, zc, lo, hi;
    /* output viewed as [rows, inner]; per row the offsets of A and B, inner strides 0 or 1 */
    size_t rows, inner;
    int nd;
    int64_t odims[OQ_MAX_DIMS], astr[OQ_MAX_DIMS], bstr[OQ_MAX_DIMS];
    size_t rows_per_task;
} bin_job;

static void bin_row(const bin_job *j, size_t row)
{
    size_t ao = 0, bo = 0, r = row;
    for (int d = j->nd - 2; d >= 0; d--) {
        size_t idx = r % (size_t)j->odims[d];
        r /= (size_t)j->odims[d];
        ao += idx * (size_t)j->astr[d];
        bo += idx * (size_t)j->bstr[d];
    }
    size_t as = j->nd ? (size_t)j->astr[j->nd - 1] : 0, bs = j->nd ? (size_t)j->bstr[j->nd - 1] : 0;
    const uint8_t *a = j->a + ao, *b = j->b + bo;
    uint8_t *c = j->c + row * j->inner;
    if (!j->mul) {
        size_t i = 0;
#ifdef OQ_QE_X86
        if (as == 1 && bs == 1 && j->avx2)
            i = add_avx2(a, b, c, j->inner, j->ra, j->rb, j->fixed, j->t == OQ_INT8);
#endif
        for (; i < j->inner; i++) {
            float v = fmaf((float)value_of_byte(a[i * as], j->t), j->ra,
                           fmaf((float)value_of_byte(b[i * bs], j->t), j->rb, j->fixed));
            c[i] = byte_of(round_sat(v, j->lo, j->hi));
        }
        return;
    }
    for (size_t i = 0; i < j->inner; i++) {
        int32_t p = (value_of_byte(a[i * as], j->t) - j->za) * (value_of_byte(b[i * bs], j->t) - j->zb);
        c[i] = byte_of(round_sat((float)p * j->ratio + (float)j->zc, j->lo, j->hi));
    }
}

static void bin_task(void *ctx, size_t task, size_t thread)
{
    (void)thread;
    const bin_job *j = ctx;
    size_t s = task * j->rows_per_task, e = s + j->rows_per_task < j->rows ? s + j->rows_per_task : j->rows;
    for (size_t r = s; r < e; r++)
        bin_row(j, r);
}

/* Element strides of x broadcast to the output's nd dims (0 along broadcast dims). */
static void bcast_strides(const oq_tensor *x, int nd, int64_t *str)
{
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) {
        int xd = d - (nd - x->ndim);
        int64_t len = xd >= 0 ? x->dims[xd] : 1;
        str[d] = len == 1 ? 0 : s;
        s *= len;
    }
}

static oq_status binary_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out, bool mul)
{
    oq_dtype t = in[0]->dtype;
    qp a, b, c;
    oq_status st = read_qp(n, in, 1, 2, t, &a);
    if (st == OQ_OK)
        st = read_qp(n, in, 4, 5, t, &b);
    if (st == OQ_OK)
        st = read_qp(n, in, 6, 7, t, &c);
    if (st != OQ_OK)
        return st;
    bin_job *j = calloc(1, sizeof *j);
    if (!j)
        return oq_op_error(n, OQ_E_NOMEM, "out of memory");
    j->mul = mul;
    j->t = t;
    j->a = in[0]->data;
    j->b = in[3]->data;
    j->c = out[0]->data;
    j->za = a.zp;
    j->zb = b.zp;
    j->zc = c.zp;
    qlimits(t, &j->lo, &j->hi);
    /* onnxruntime's (MLAS) arithmetic, so that fused QDQ models agree with it exactly */
    j->ra = a.scale / c.scale;
    j->rb = b.scale / c.scale;
    j->fixed = (float)c.zp - fmaf(j->ra, (float)a.zp, j->rb * (float)b.zp);
    j->ratio = a.scale * b.scale / c.scale;
    j->avx2 = oq_isa_level() >= OQ_ISA_AVX2 && oq_cpu()->fma;
    j->nd = out[0]->ndim;
    memcpy(j->odims, out[0]->dims, sizeof j->odims);
    size_t total = (size_t)oq_tensor_numel(out[0]);
    if (total && (size_t)oq_tensor_numel(in[0]) == total && (size_t)oq_tensor_numel(in[3]) == total) {
        /* no broadcasting: rows of at least 1024 contiguous elements for the vector path */
        int64_t inner = 1;
        for (int d = out[0]->ndim - 1; d >= 0 && inner < 1024; d--)
            inner *= out[0]->dims[d];
        j->nd = 2;
        j->odims[0] = (int64_t)total / inner;
        j->odims[1] = inner;
        j->astr[0] = j->bstr[0] = inner;
        j->astr[1] = j->bstr[1] = 1;
    } else {
        bcast_strides(in[0], j->nd, j->astr);
        bcast_strides(in[3], j->nd, j->bstr);
    }
    j->inner = j->nd ? (size_t)j->odims[j->nd - 1] : 1;
    j->rows = j->inner ? total / j->inner : 0;
    j->rows_per_task = j->inner >= CHUNK ? 1 : CHUNK / (j->inner ? j->inner : 1);
    size_t tasks = (j->rows + j->rows_per_task - 1) / j->rows_per_task;
    if (tasks == 1)
        bin_task(j, 0, 0);
    else if (tasks > 1)
        oq_parallel_for(n->tp, tasks, bin_task, j);
    free(j);
    return OQ_OK;
}

static oq_status add_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return binary_run(n, in, out, false);
}
static oq_status mul_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return binary_run(n, in, out, true);
}

const oq_op_def oq_op_qlinear_add = {NULL, binary_infer, add_run, NULL};
const oq_op_def oq_op_qlinear_mul = {NULL, binary_infer, mul_run, NULL};

/* ---- pooling: X, x_scale, x_zp, y_scale, y_zp; channels_last ---- */

/* The image viewed as [batch, channels, spatial] with element strides. */
typedef struct qpool_job {
    oq_dtype t;
    const uint8_t *x;
    uint8_t *y;
    size_t batch, channels;
    int r;
    size_t in[3], out[3], k[3], s[3];
    ptrdiff_t pb[3], pe[3];
    bool channels_last, count_pad;
    qp qx, qy;
    int32_t lo, hi;
} qpool_job;

static void qpool_task(void *ctx, size_t task, size_t thread)
{
    (void)thread;
    const qpool_job *j = ctx;
    size_t b = task / j->channels, c = task % j->channels;
    size_t in_sp = j->in[0] * j->in[1] * j->in[2], out_sp = j->out[0] * j->out[1] * j->out[2];
    /* element (b, c, p): NCHW b*C*S + c*S + p; NHWC b*S*C + p*C + c */
    size_t xs = j->channels_last ? j->channels : 1, ys = xs;
    const uint8_t *x = j->x + (j->channels_last ? b * in_sp * j->channels + c : task * in_sp);
    uint8_t *y = j->y + (j->channels_last ? b * out_sp * j->channels + c : task * out_sp);
    for (size_t o0 = 0; o0 < j->out[0]; o0++)
        for (size_t o1 = 0; o1 < j->out[1]; o1++)
            for (size_t o2 = 0; o2 < j->out[2]; o2++) {
                size_t o[3] = {o0, o1, o2}, lo[3], hi[3], padded = 1, valid = 1;
                for (int d = 0; d < 3; d++) {
                    ptrdiff_t st = (ptrdiff_t)(o[d] * j->s[d]) - j->pb[d];
                    ptrdiff_t en = st + (ptrdiff_t)j->k[d], lim = (ptrdiff_t)j->in[d] + j->pe[d];
                    padded *= (size_t)((en < lim ? en : lim) - st);
                    lo[d] = st < 0 ? 0 : (size_t)st;
                    hi[d] = en > (ptrdiff_t)j->in[d] ? j->in[d] : (size_t)(en > 0 ? en : 0);
                    if (hi[d] < lo[d])
                        hi[d] = lo[d];
                    valid *= hi[d] - lo[d];
                }
                int64_t sum = 0;
                for (size_t i0 = lo[0]; i0 < hi[0]; i0++)
                    for (size_t i1 = lo[1]; i1 < hi[1]; i1++)
                        for (size_t i2 = lo[2]; i2 < hi[2]; i2++)
                            sum += qload(x, j->t, ((i0 * j->in[1] + i1) * j->in[2] + i2) * xs);
                size_t count = j->count_pad ? padded : valid;
                int32_t q = j->qy.zp;
                if (count) {
                    /* padded taps hold real 0, i.e. contribute nothing once zx is taken out */
                    /* fp32 scale as onnxruntime's requantization computes it */
                    float scale = j->qx.scale / (j->qy.scale * (float)count);
                    q = requant((float)(sum - (int64_t)valid * j->qx.zp) * scale, j->qy.zp, j->lo, j->hi);
                }
                y[((o0 * j->out[1] + o1) * j->out[2] + o2) * ys] = byte_of(q);
            }
}

/* Global pooling of channels-last images: a task is a block of channels of one
 * image, summed pixel after pixel across the block (contiguous bytes, a loop the
 * compiler vectorizes) instead of one strided walk per channel. Same sums, same
 * requantization as qpool_task. */
enum { GAP_BLOCK = 256 };

static void gap_cl_task(void *ctx, size_t task, size_t thread)
{
    (void)thread;
    const qpool_job *j = ctx;
    size_t blocks = (j->channels + GAP_BLOCK - 1) / GAP_BLOCK, b = task / blocks, c0 = task % blocks * GAP_BLOCK;
    size_t nc = j->channels - c0 < GAP_BLOCK ? j->channels - c0 : GAP_BLOCK, sp = j->in[0] * j->in[1] * j->in[2];
    const uint8_t *x = j->x + b * sp * j->channels + c0;
    int32_t acc[GAP_BLOCK] = {0};
    if (j->t == OQ_INT8)
        for (size_t p = 0; p < sp; p++)
            for (size_t c = 0; c < nc; c++)
                acc[c] += (int8_t)x[p * j->channels + c];
    else
        for (size_t p = 0; p < sp; p++)
            for (size_t c = 0; c < nc; c++)
                acc[c] += x[p * j->channels + c];
    float scale = j->qx.scale / (j->qy.scale * (float)sp);
    for (size_t c = 0; c < nc; c++) {
        int32_t q = j->qy.zp;
        if (sp)
            q = requant((float)((int64_t)acc[c] - (int64_t)sp * j->qx.zp) * scale, j->qy.zp, j->lo, j->hi);
        j->y[b * j->channels + c0 + c] = byte_of(q);
    }
}

/* Reads kernel/strides/pads and the output size of each spatial dim (ONNX pooling rules). */
static oq_status qpool_geometry(const oq_op_node *n, const oq_tensor *x, bool global, bool cl, qpool_job *j)
{
    int r = x->ndim - 2;
    if (r < 1 || r > 3)
        return oq_op_error(n, OQ_E_UNSUPPORTED, "pooling over %d spatial dimensions is not supported (1 to 3)", r);
    j->r = r;
    j->batch = (size_t)x->dims[0];
    j->channels = (size_t)x->dims[cl ? x->ndim - 1 : 1];
    int off = 3 - r;
    for (int d = 0; d < 3; d++) {
        j->in[d] = j->out[d] = j->k[d] = j->s[d] = 1;
        j->pb[d] = j->pe[d] = 0;
    }
    const int64_t *ks = NULL, *ss = NULL, *ps = NULL;
    size_t nk = global ? 0 : oq_node_attr_ints(n->node, "kernel_shape", &ks);
    size_t ns = global ? 0 : oq_node_attr_ints(n->node, "strides", &ss);
    size_t np = global ? 0 : oq_node_attr_ints(n->node, "pads", &ps);
    if (!global && (nk != (size_t)r || (ss && ns != (size_t)r) || (ps && np != (size_t)(2 * r))))
        return oq_op_error(n, OQ_E_INVALID_ARG, "kernel_shape, strides and pads must have %d, %d and %d values", r,
                           r, 2 * r);
    const char *ap = global ? "VALID" : oq_node_attr_string(n->node, "auto_pad", "NOTSET");
    bool ceil_mode = !global && oq_node_attr_int(n->node, "ceil_mode", 0) != 0;
    for (int i = 0; i < r; i++) {
        int64_t in = x->dims[cl ? 1 + i : 2 + i];
        int64_t k = global ? in : ks[i], s = ss ? ss[i] : 1, pb = ps ? ps[i] : 0, pe = ps ? ps[r + i] : 0, o;
        if (k < 1 || s < 1 || pb < 0 || pe < 0)
            return oq_op_error(n, OQ_E_INVALID_ARG, "kernel, strides and pads must be positive");
        if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
            o = (in + s - 1) / s;
            int64_t total = (o - 1) * s + k - in;
            total = total < 0 ? 0 : total;
            pb = !strcmp(ap, "SAME_UPPER") ? total / 2 : total - total / 2;
            pe = total - pb;
        } else {
            if (!strcmp(ap, "VALID"))
                pb = pe = 0;
            else if (strcmp(ap, "NOTSET"))
                return oq_op_error(n, OQ_E_INVALID_ARG, "auto_pad '%s' is not valid", ap);
            int64_t span = in + pb + pe - k;
            if (span < 0)
                return oq_op_error(n, OQ_E_SHAPE, "pooling window %lld exceeds the padded input %lld", (long long)k,
                                   (long long)(in + pb + pe));
            o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
            if (ceil_mode && (o - 1) * s >= in + pb)
                o--; /* a last window starting in the trailing pad is dropped */
        }
        j->in[off + i] = (size_t)in;
        j->out[off + i] = (size_t)o;
        j->k[off + i] = (size_t)k;
        j->s[off + i] = (size_t)s;
        j->pb[off + i] = (ptrdiff_t)pb;
        j->pe[off + i] = (ptrdiff_t)pe;
    }
    return OQ_OK;
}

static oq_status qpool_infer_common(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out, bool global)
{
    if (n->n_inputs < 4 || !in[0])
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects X, x_scale, x_zero_point, y_scale[, y_zero_point]");
    if (!is_q8(in[0]->dtype))
        return oq_op_error(n, OQ_E_TYPE, "X must be uint8 or int8, got %s", oq_dtype_name(in[0]->dtype));
    bool cl = oq_node_attr_int(n->node, "channels_last", 0) != 0;
    qpool_job j;
    oq_status st = qpool_geometry(n, in[0], global, cl, &j);
    if (st != OQ_OK)
        return st;
    int64_t dims[5];
    int nd = in[0]->ndim, off = 3 - j.r;
    dims[0] = in[0]->dims[0];
    dims[cl ? nd - 1 : 1] = (int64_t)j.channels;
    for (int i = 0; i < j.r; i++)
        dims[cl ? 1 + i : 2 + i] = (int64_t)j.out[off + i];
    oq_set_shape(out[0], in[0]->dtype, nd, dims);
    return OQ_OK;
}

static oq_status qpool_run_common(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out, bool global)
{
    qpool_job j = {0};
    j.t = in[0]->dtype;
    j.channels_last = oq_node_attr_int(n->node, "channels_last", 0) != 0;
    j.count_pad = !global && oq_node_attr_int(n->node, "count_include_pad", 0) != 0;
    oq_status st = qpool_geometry(n, in[0], global, j.channels_last, &j);
    if (st == OQ_OK)
        st = read_qp(n, in, 1, 2, j.t, &j.qx);
    if (st == OQ_OK)
        st = read_qp(n, in, 3, 4, j.t, &j.qy);
    if (st != OQ_OK)
        return st;
    qlimits(j.t, &j.lo, &j.hi);
    j.x = in[0]->data;
    j.y = out[0]->data;
    size_t tasks = j.batch * j.channels;
    /* int32 sums: up to 2^23 pixels of 255 */
    if (global && j.channels_last && j.in[0] * j.in[1] * j.in[2] < ((size_t)1 << 23)) {
        tasks = j.batch * ((j.channels + GAP_BLOCK - 1) / GAP_BLOCK);
        if (tasks)
            oq_parallel_for(n->tp, tasks, gap_cl_task, &j);
        return OQ_OK;
    }
    if (tasks)
        oq_parallel_for(n->tp, tasks, qpool_task, &j);
    return OQ_OK;
}

static oq_status gap_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return qpool_infer_common(n, in, out, true);
}
static oq_status gap_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return qpool_run_common(n, in, out, true);
}
static oq_status ap_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return qpool_infer_common(n, in, out, false);
}
static oq_status ap_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return qpool_run_common(n, in, out, false);
}

const oq_op_def oq_op_qlinear_global_average_pool = {NULL, gap_infer, gap_run, NULL};
const oq_op_def oq_op_qlinear_average_pool = {NULL, ap_infer, ap_run, NULL};

/* ---- QLinearConcat: Y_scale, Y_zero_point, then (X, X_scale, X_zero_point) per input ---- */

static oq_status concat_check(const oq_op_node *n, const oq_tensor *const *in, int *axis)
{
    if (n->n_inputs < 5 || (n->n_inputs - 2) % 3 != 0)
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects Y_scale, Y_zero_point and (X, X_scale, X_zero_point) triples");
    const oq_tensor *x0 = in[2];
    if (!x0 || !in[1])
        return oq_op_error(n, OQ_E_INVALID_ARG, "missing input or Y_zero_point");
    oq_status st = oq_norm_axis(n, oq_node_attr_int(n->node, "axis", 0), x0->ndim, axis);
    if (st != OQ_OK)
        return st;
    for (size_t k = 2; k < n->n_inputs; k += 3) {
        const oq_tensor *x = in[k];
        if (!x || x->dtype != in[1]->dtype || !is_q8(x->dtype))
            return oq_op_error(n, OQ_E_TYPE, "input %zu must be %s like Y_zero_point", k,
                               oq_dtype_name(in[1]->dtype));
        if (x->ndim != x0->ndim)
            return oq_op_error(n, OQ_E_SHAPE, "inputs have different ranks");
        for (int d = 0; d < x->ndim; d++)
            if (d != *axis && x->dims[d] != x0->dims[d])
                return oq_op_error(n, OQ_E_SHAPE, "input %zu differs from the first outside the axis", k);
    }
    return OQ_OK;
}

static oq_status concat_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    int axis;
    oq_status st = concat_check(n, in, &axis);
    if (st != OQ_OK)
        return st;
    int64_t dims[OQ_MAX_DIMS];
    memcpy(dims, in[2]->dims, sizeof dims);
    dims[axis] = 0;
    for (size_t k = 2; k < n->n_inputs; k += 3)
        dims[axis] += in[k]->dims[axis];
    oq_set_shape(out[0], in[1]->dtype, in[2]->ndim, dims);
    return OQ_OK;
}

static oq_status concat_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    int axis;
    oq_status st = concat_check(n, in, &axis);
    if (st != OQ_OK)
        return st;
    oq_dtype t = in[1]->dtype;
    qp y;
    if ((st = read_qp(n, in, 0, 1, t, &y)) != OQ_OK)
        return st;
    size_t outer = 1, inner = 1;
    for (int d = 0; d < axis; d++)
        outer *= (size_t)out[0]->dims[d];
    for (int d = axis + 1; d < out[0]->ndim; d++)
        inner *= (size_t)out[0]->dims[d];
    size_t orow = (size_t)out[0]->dims[axis] * inner, col = 0;
    uint8_t *dst = out[0]->data;
    for (size_t k = 2; k < n->n_inputs; k += 3) {
        qp x;
        if ((st = read_qp(n, in, k + 1, k + 2, t, &x)) != OQ_OK)
            return st;
        size_t row = (size_t)in[k]->dims[axis] * inner;
        const uint8_t *src = in[k]->data;
        if (x.scale == y.scale && x.zp == y.zp) {
            for (size_t o = 0; o < outer; o++)
                memcpy(dst + o * orow + col, src + o * row, row);
        } else {
            uint8_t table[256];
            build_table(table, t, x, y, f_identity, 0.0f);
            for (size_t o = 0; o < outer; o++)
                for (size_t i = 0; i < row; i++)
                    dst[o * orow + col + i] = table[src[o * row + i]];
        }
        col += row;
    }
    return OQ_OK;
}

const oq_op_def oq_op_qlinear_concat = {NULL, concat_infer, concat_run, NULL};
