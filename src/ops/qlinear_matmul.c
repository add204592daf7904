/* ops/qlinear_matmul: the quantized matrix products on the q8 u8s8 GEMM —
 * QLinearMatMul, MatMulInteger (numpy-style batches), and the com.microsoft
 * QGemm, MatMulIntegerToFloat and DynamicQuantizeMatMul. A is converted to u8
 * and B to s8 while packing (x ^ 0x80, zero points shifted by 128), constant B
 * is packed once at prepare, per-column B scales and zero points are per output
 * column, and a fused Relu/Clip (onnxq_activation) narrows the output range. */
#include "kernels/q8/q8.h"
#include "ops/op.h"

#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

typedef enum qmm_kind { QMM_QLINEAR, QMM_INTEGER, QMM_TO_FLOAT, QMM_DYNAMIC, QMM_QGEMM } qmm_kind;

/* Input positions per operator (-1: absent). */
typedef struct qmm_io {
    int a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp, bias;
    size_t min_in, max_in;
    const char *name;
} qmm_io;
static const qmm_io IO[] = {
    [QMM_QLINEAR] = {0, 1, 2, 3, 4, 5, 6, 7, -1, 8, 8, "QLinearMatMul"},
    [QMM_INTEGER] = {0, -1, 2, 1, -1, 3, -1, -1, -1, 2, 4, "MatMulInteger"},
    [QMM_TO_FLOAT] = {0, 2, 4, 1, 3, 5, -1, -1, 6, 4, 7, "MatMulIntegerToFloat"},
    [QMM_DYNAMIC] = {0, -1, -1, 1, 2, 3, -1, -1, 4, 3, 5, "DynamicQuantizeMatMul"},
    [QMM_QGEMM] = {0, 1, 2, 3, 4, 5, 7, 8, 6, 6, 9, "QGemm"},
};

typedef struct qmm_state {
    qmm_kind kind;
    const oq_q8_gemm_variant *v;
    uint8_t *packed_b; /* per batch of B, packed_size bytes each */
    int32_t *colsum;   /* per batch of B, n each */
    size_t packed_size;
    const void *b_data;
    bool trans_a, trans_b;
    float alpha, act_min, act_max;
    oq_scratch ws; /* grown per run */
} qmm_state;

static const oq_tensor *input(const oq_op_node *n, const oq_tensor *const *in, int i)
{
    return i >= 0 && (size_t)i < n->n_inputs ? in[i] : NULL;
}

static bool is_q8(oq_dtype t) { return t == OQ_UINT8 || t == OQ_INT8; }

static void qmm_destroy(void *p)
{
    qmm_state *s = p;
    if (!s)
        return;
    oq_aligned_free(s->packed_b);
    free(s->colsum);
    oq_scratch_free(&s->ws);
    free(s);
}

/* Matrix view of B: K x N per batch and the strides of element (p, j). */
typedef struct bview {
    size_t k, n, rs, cs, batches;
} bview;

static bool b_view(const qmm_state *s, const oq_tensor *b, bview *v)
{
    if (b->ndim < 1)
        return false;
    if (s->kind == QMM_QGEMM) {
        if (b->ndim != 2)
            return false;
        size_t r = (size_t)b->dims[0], c = (size_t)b->dims[1];
        *v = s->trans_b ? (bview){c, r, 1, c, 1} : (bview){r, c, c, 1, 1};
        return true;
    }
    size_t k = (size_t)b->dims[b->ndim == 1 ? 0 : b->ndim - 2], nn = b->ndim == 1 ? 1 : (size_t)b->dims[b->ndim - 1];
    int64_t total = oq_tensor_numel(b);
    *v = (bview){k, nn, nn, 1, (k * nn != 0) ? (size_t)total / (k * nn) : 1};
    return true;
}

static oq_status qmm_prepare_kind(oq_op_node *n, qmm_kind kind)
{
    qmm_state *s = calloc(1, sizeof *s);
    if (!s)
        return oq_error(OQ_E_NOMEM, "out of memory");
    n->state = s;
    s->kind = kind;
    const qmm_io *io = &IO[kind];
    if (n->n_inputs < io->min_in || n->n_inputs > io->max_in || n->n_outputs != 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "%s takes %zu to %zu inputs and one output", io->name, io->min_in,
                           io->max_in);
    s->v = oq_q8_gemm_default(OQ_Q8_U8S8);
    s->trans_a = oq_node_attr_int(n->node, "transA", 0) != 0;
    s->trans_b = oq_node_attr_int(n->node, "transB", 0) != 0;
    s->alpha = kind == QMM_QGEMM ? oq_node_attr_float(n->node, "alpha", 1.0f) : 1.0f;
    if (!(s->alpha > 0.0f) || !(s->alpha < INFINITY))
        return oq_op_error(n, OQ_E_UNSUPPORTED, "alpha = %g is not supported (positive finite only)", (double)s->alpha);
    s->act_min = -INFINITY;
    s->act_max = INFINITY;
    const char *act = oq_node_attr_string(n->node, "onnxq_activation", NULL);
    if (act) {
        const float *p = NULL;
        size_t np = oq_node_attr_floats(n->node, "onnxq_activation_params", &p);
        if (!strcmp(act, "Relu"))
            s->act_min = 0.0f;
        else if (!strcmp(act, "Clip") && np == 2) {
            s->act_min = p[0];
            s->act_max = p[1];
        } else
            return oq_op_error(n, OQ_E_UNSUPPORTED, "fused activation '%s' is not supported on a quantized node", act);
    }
    const oq_tensor *b = n->consts[io->b];
    bview bv;
    if (b && is_q8(b->dtype) && b_view(s, b, &bv) && bv.k * bv.n > 0) {
        s->packed_size = oq_q8_packed_b_size(s->v, bv.k, bv.n);
        s->packed_b = oq_aligned_alloc(bv.batches * s->packed_size + 64);
        s->colsum = malloc(bv.batches * bv.n * sizeof(int32_t));
        if (!s->packed_b || !s->colsum)
            return oq_error(OQ_E_NOMEM, "out of memory packing the weights of '%s'", n->label);
        uint8_t x = b->dtype == OQ_UINT8 ? 0x80 : 0;
        for (size_t t = 0; t < bv.batches; t++)
            oq_q8_pack_b(s->v, bv.k, bv.n, (const uint8_t *)b->data + t * bv.k * bv.n, bv.rs, bv.cs, x,
                         s->packed_b + t * s->packed_size, s->colsum + t * bv.n);
        s->b_data = b->data;
    }
    return OQ_OK;
}

static oq_status qlinearmatmul_prepare(oq_op_node *n) { return qmm_prepare_kind(n, QMM_QLINEAR); }
static oq_status matmulinteger_prepare(oq_op_node *n) { return qmm_prepare_kind(n, QMM_INTEGER); }
static oq_status matmulintegertofloat_prepare(oq_op_node *n) { return qmm_prepare_kind(n, QMM_TO_FLOAT); }
static oq_status dynamicquantizematmul_prepare(oq_op_node *n) { return qmm_prepare_kind(n, QMM_DYNAMIC); }
static oq_status qgemm_prepare(oq_op_node *n) { return qmm_prepare_kind(n, QMM_QGEMM); }

/* Shapes of one product: A batches x M x K times B batches x K x N. */
typedef struct qmm_shape {
    size_t m, k, n;
    size_t a_rs, a_cs;
    bview b;
    int out_ndim, batch_ndim;
    int64_t out_dims[OQ_MAX_DIMS], batch_dims[OQ_MAX_DIMS];
    int64_t a_batch_dims[OQ_MAX_DIMS], b_batch_dims[OQ_MAX_DIMS]; /* aligned to batch_ndim, 1-padded */
    size_t a_batches;
} qmm_shape;

static oq_status qmm_shape_of(const oq_op_node *n, const qmm_state *s, const oq_tensor *a, const oq_tensor *b,
                              oq_dtype a_type, qmm_shape *sh)
{
    const char *name = IO[s->kind].name;
    if (!a || !b || !(a->dtype == a_type || (a_type == OQ_UNDEFINED && is_q8(a->dtype))) || !is_q8(b->dtype))
        return oq_op_error(n, OQ_E_TYPE, "%s needs A of type %s and B of type uint8 or int8", name,
                           a_type == OQ_FLOAT ? "float" : "uint8 or int8");
    memset(sh, 0, sizeof *sh);
    if (s->kind == QMM_QGEMM) {
        if (a->ndim != 2 || b->ndim != 2)
            return oq_op_error(n, OQ_E_SHAPE, "QGemm needs 2-D A and B, got ranks %d and %d", a->ndim, b->ndim);
        size_t r = (size_t)a->dims[0], c = (size_t)a->dims[1];
        sh->m = s->trans_a ? c : r;
        sh->k = s->trans_a ? r : c;
        sh->a_rs = s->trans_a ? 1 : c;
        sh->a_cs = s->trans_a ? c : 1;
        b_view(s, b, &sh->b);
        if (sh->b.k != sh->k)
            return oq_op_error(n, OQ_E_SHAPE, "QGemm inner dimensions differ: %zu and %zu", sh->k, sh->b.k);
        sh->n = sh->b.n;
        sh->out_ndim = 2;
        sh->out_dims[0] = (int64_t)sh->m;
        sh->out_dims[1] = (int64_t)sh->n;
        sh->a_batches = 1;
        return OQ_OK;
    }
    if (a->ndim < 1 || b->ndim < 1)
        return oq_op_error(n, OQ_E_SHAPE, "%s inputs must have rank >= 1", name);
    sh->k = (size_t)a->dims[a->ndim - 1];
    sh->m = a->ndim == 1 ? 1 : (size_t)a->dims[a->ndim - 2];
    sh->a_rs = sh->k;
    sh->a_cs = 1;
    b_view(s, b, &sh->b);
    sh->n = sh->b.n;
    if (sh->b.k != sh->k)
        return oq_op_error(n, OQ_E_SHAPE, "%s inner dimensions differ: A has %zu, B has %zu", name, sh->k, sh->b.k);
    int ra = a->ndim > 2 ? a->ndim - 2 : 0, rb = b->ndim > 2 ? b->ndim - 2 : 0;
    oq_status st = oq_broadcast_shape(n, ra, a->dims, rb, b->dims, &sh->batch_ndim, sh->batch_dims);
    if (st != OQ_OK)
        return st;
    sh->a_batches = 1;
    for (int i = 0; i < sh->batch_ndim; i++) {
        int ia = i - (sh->batch_ndim - ra), ib = i - (sh->batch_ndim - rb);
        sh->a_batch_dims[i] = ia >= 0 ? a->dims[ia] : 1;
        sh->b_batch_dims[i] = ib >= 0 ? b->dims[ib] : 1;
        sh->a_batches *= (size_t)sh->a_batch_dims[i];
    }
    sh->out_ndim = sh->batch_ndim;
    memcpy(sh->out_dims, sh->batch_dims, (size_t)sh->batch_ndim * sizeof(int64_t));
    if (a->ndim > 1)
        sh->out_dims[sh->out_ndim++] = (int64_t)sh->m;
    if (b->ndim > 1)
        sh->out_dims[sh->out_ndim++] = (int64_t)sh->n;
    return OQ_OK;
}

static oq_dtype a_type_of(qmm_kind k) { return k == QMM_DYNAMIC ? OQ_FLOAT : OQ_UNDEFINED; }

static oq_dtype out_type(const qmm_state *s, const oq_tensor *const *in, const oq_op_node *n)
{
    const qmm_io *io = &IO[s->kind];
    switch (s->kind) {
    case QMM_INTEGER: return OQ_INT32;
    case QMM_TO_FLOAT:
    case QMM_DYNAMIC: return OQ_FLOAT;
    case QMM_QLINEAR: {
        const oq_tensor *yz = input(n, in, io->y_zp);
        return yz ? yz->dtype : OQ_UINT8;
    }
    default: {
        const oq_tensor *ys = input(n, in, io->y_scale), *yz = input(n, in, io->y_zp);
        if (!ys)
            return OQ_FLOAT;
        return yz ? yz->dtype : OQ_UINT8;
    }
    }
}

static oq_status qmm_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    const qmm_state *s = n->state;
    qmm_shape sh;
    oq_status st = qmm_shape_of(n, s, input(n, in, IO[s->kind].a), input(n, in, IO[s->kind].b), a_type_of(s->kind), &sh);
    if (st != OQ_OK)
        return st;
    oq_dtype t = out_type(s, in, n);
    if (t != OQ_INT32 && t != OQ_FLOAT && !is_q8(t))
        return oq_op_error(n, OQ_E_TYPE, "y_zero_point must be uint8 or int8");
    oq_set_shape(out[0], t, sh.out_ndim, sh.out_dims);
    return OQ_OK;
}

static int32_t q8_at(const oq_tensor *t, size_t i)
{
    if (!t)
        return 0;
    return t->dtype == OQ_INT8 ? ((const int8_t *)t->data)[i] : ((const uint8_t *)t->data)[i];
}

/* Zero point of type like: scalar, or (per > 0) per entries; *vec tells which. */
static oq_status read_zp(const oq_op_node *n, const oq_tensor *zp, oq_dtype like, const char *what, size_t per,
                         bool *vec)
{
    *vec = false;
    if (!zp)
        return OQ_OK;
    if (zp->dtype != like)
        return oq_op_error(n, OQ_E_TYPE, "%s must be %s like its tensor, got %s", what, oq_dtype_name(like),
                           oq_dtype_name(zp->dtype));
    int64_t c = oq_tensor_numel(zp);
    if (c == 1)
        return OQ_OK;
    if (per && (size_t)c == per) {
        *vec = true;
        return OQ_OK;
    }
    return oq_op_error(n, OQ_E_SHAPE, "%s has %lld values: expected 1%s", what, (long long)c,
                       per ? " or one per row/column" : "");
}

static oq_status read_scale(const oq_op_node *n, const oq_tensor *t, const char *what, size_t per, bool *vec)
{
    *vec = false;
    if (!t || t->dtype != OQ_FLOAT)
        return oq_op_error(n, OQ_E_TYPE, "%s must be a float tensor", what);
    int64_t c = oq_tensor_numel(t);
    if (c != 1 && !(per && (size_t)c == per))
        return oq_op_error(n, OQ_E_SHAPE, "%s has %lld values: expected 1%s", what, (long long)c,
                           per ? " or one per column" : "");
    *vec = c != 1;
    for (int64_t i = 0; i < c; i++) {
        float v = ((const float *)t->data)[i];
        if (!(v > 0.0f) || !(v < INFINITY))
            return oq_op_error(n, OQ_E_INVALID_ARG, "%s[%lld] = %g is not a positive finite scale", what, (long long)i,
                               (double)v);
    }
    return OQ_OK;
}

/* DynamicQuantizeLinear of A into u8: the range includes 0, scale = range / 255,
 * zero point and values rounded half to even and saturated. |x / s| <= 255 here, so
 * adding and subtracting 1.5 * 2^23 rounds half to even (the default rounding mode)
 * exactly like nearbyintf; the SSE2 loops do 16 values at a time. NaN becomes 0. */
#if defined(__x86_64__)
/* The same two loops 8 floats wide: operand order keeps the NaN rules of the
 * SSE2 loops (min/max return their second operand on NaN: the running value). */
__attribute__((target("avx2"))) static size_t range_avx2(const float *x, size_t count, float *lo, float *hi)
{
    __m256 vlo = _mm256_setzero_ps(), vhi = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        vlo = _mm256_min_ps(v, vlo);
        vhi = _mm256_max_ps(v, vhi);
    }
    float l8[8], h8[8];
    _mm256_storeu_ps(l8, vlo);
    _mm256_storeu_ps(h8, vhi);
    for (int k = 0; k < 8; k++) {
        *lo = l8[k] < *lo ? l8[k] : *lo;
        *hi = h8[k] > *hi ? h8[k] : *hi;
    }
    return i;
}

__attribute__((target("avx2"))) static size_t quantize_avx2(const float *x, size_t count, uint8_t *q, float s, float z)
{
    const __m256 vs = _mm256_set1_ps(s), vm = _mm256_set1_ps(12582912.0f), vz = _mm256_set1_ps(z);
    const __m256 v0 = _mm256_setzero_ps(), v255 = _mm256_set1_ps(255.0f);
    const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    size_t i = 0;
    for (; i + 32 <= count; i += 32) {
        __m256i w[4];
        for (int k = 0; k < 4; k++) {
            __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + i + 8 * k), vs);
            v = _mm256_add_ps(_mm256_sub_ps(_mm256_add_ps(v, vm), vm), vz);
            v = _mm256_min_ps(_mm256_max_ps(v, v0), v255);
            w[k] = _mm256_cvttps_epi32(v);
        }
        /* packs work per 128-bit lane: groups come out 0,4,1,5,2,6,3,7 */
        __m256i r = _mm256_packus_epi16(_mm256_packs_epi32(w[0], w[1]), _mm256_packs_epi32(w[2], w[3]));
        _mm256_storeu_si256((__m256i *)(q + i), _mm256_permutevar8x32_epi32(r, perm));
    }
    return i;
}
#endif

#if defined(__x86_64__)
/* The same loops 16 floats wide (AVX-512 F/BW), same operand order. */
__attribute__((target("avx512f,avx512bw"))) static size_t range_avx512(const float *x, size_t count, float *lo,
                                                                      float *hi)
{
    __m512 vlo = _mm512_setzero_ps(), vhi = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        vlo = _mm512_min_ps(v, vlo);
        vhi = _mm512_max_ps(v, vhi);
    }
    float l16[16], h16[16];
    _mm512_storeu_ps(l16, vlo);
    _mm512_storeu_ps(h16, vhi);
    for (int k = 0; k < 16; k++) {
        *lo = l16[k] < *lo ? l16[k] : *lo;
        *hi = h16[k] > *hi ? h16[k] : *hi;
    }
    return i;
}

__attribute__((target("avx512f,avx512bw"))) static size_t quantize_avx512(const float *x, size_t count, uint8_t *q,
                                                                         float s, float z)
{
    const __m512 vs = _mm512_set1_ps(s), vm = _mm512_set1_ps(12582912.0f), vz = _mm512_set1_ps(z);
    const __m512 v0 = _mm512_setzero_ps(), v255 = _mm512_set1_ps(255.0f);
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        __m512 v = _mm512_div_ps(_mm512_loadu_ps(x + i), vs);
        v = _mm512_add_ps(_mm512_sub_ps(_mm512_add_ps(v, vm), vm), vz);
        v = _mm512_min_ps(_mm512_max_ps(v, v0), v255);
        _mm_storeu_si128((__m128i *)(q + i), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(v)));
    }
    return i;
}
#endif

/* Running min and max of x with 0 (NaN skipped), widest loop first. */
static void range_of(const float *x, size_t count, float *lo_out, float *hi_out)
{
    float lo = 0.0f, hi = 0.0f;
    size_t i = 0;
#if defined(__x86_64__)
    oq_isa isa = oq_isa_level();
    if (isa >= OQ_ISA_AVX512)
        i = range_avx512(x, count, &lo, &hi);
    else if (isa >= OQ_ISA_AVX2)
        i = range_avx2(x, count, &lo, &hi);
#endif
#if defined(__SSE2__)
    __m128 vlo = _mm_setzero_ps(), vhi = _mm_setzero_ps();
    for (; i + 4 <= count; i += 4) {
        __m128 v = _mm_loadu_ps(x + i);
        vlo = _mm_min_ps(v, vlo); /* a NaN in x keeps the running value (second operand) */
        vhi = _mm_max_ps(v, vhi);
    }
    float l4[4], h4[4];
    _mm_storeu_ps(l4, vlo);
    _mm_storeu_ps(h4, vhi);
    for (int k = 0; k < 4; k++) {
        lo = l4[k] < lo ? l4[k] : lo;
        hi = h4[k] > hi ? h4[k] : hi;
    }
#endif
    for (; i < count; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    *lo_out = lo;
    *hi_out = hi;
}

static void quantize_with(const float *x, size_t count, uint8_t *q, float s, float z)
{
    const float magic = 12582912.0f;
    size_t i = 0;
#if defined(__x86_64__)
    oq_isa isa = oq_isa_level();
    if (isa >= OQ_ISA_AVX512)
        i = quantize_avx512(x, count, q, s, z);
    else if (isa >= OQ_ISA_AVX2)
        i = quantize_avx2(x, count, q, s, z);
#endif
#if defined(__SSE2__)
    const __m128 vs = _mm_set1_ps(s), vm = _mm_set1_ps(magic), vz = _mm_set1_ps(z);
    const __m128 v0 = _mm_setzero_ps(), v255 = _mm_set1_ps(255.0f);
    for (; i + 16 <= count; i += 16) {
        __m128i w[4];
        for (int k = 0; k < 4; k++) {
            __m128 v = _mm_div_ps(_mm_loadu_ps(x + i + 4 * k), vs);
            v = _mm_add_ps(_mm_sub_ps(_mm_add_ps(v, vm), vm), vz);
            v = _mm_min_ps(_mm_max_ps(v, v0), v255); /* maxps(NaN, 0) is 0 */
            w[k] = _mm_cvttps_epi32(v);
        }
        __m128i h0 = _mm_packs_epi32(w[0], w[1]), h1 = _mm_packs_epi32(w[2], w[3]);
        _mm_storeu_si128((__m128i *)(q + i), _mm_packus_epi16(h0, h1));
    }
#endif
    for (; i < count; i++) {
        float v = ((x[i] / s + magic) - magic) + z;
        v = v > 0.0f ? v : 0.0f;
        q[i] = (uint8_t)(v < 255.0f ? v : 255.0f);
    }
}

/* Large inputs are cut into chunks for the thread pool: the range of each (min and
 * max are exact, so any cut gives the same result), then the values. */
enum { DQ_CHUNK_MIN = 16384, DQ_MAX_CHUNKS = 64 };
typedef struct dq_job {
    const float *x;
    uint8_t *q;
    size_t count, chunk;
    float lo[DQ_MAX_CHUNKS], hi[DQ_MAX_CHUNKS];
    float s, z;
} dq_job;

static void dq_range_task(void *ctx, size_t t, size_t thread)
{
    (void)thread;
    dq_job *j = ctx;
    size_t i0 = t * j->chunk, n = j->count - i0 < j->chunk ? j->count - i0 : j->chunk;
    range_of(j->x + i0, n, &j->lo[t], &j->hi[t]);
}

static void dq_quantize_task(void *ctx, size_t t, size_t thread)
{
    (void)thread;
    dq_job *j = ctx;
    size_t i0 = t * j->chunk, n = j->count - i0 < j->chunk ? j->count - i0 : j->chunk;
    quantize_with(j->x + i0, n, j->q + i0, j->s, j->z);
}

void oq_quantize_dynamic_u8(const float *x, size_t count, uint8_t *q, float *scale, int32_t *zp,
                            oq_threadpool *tp)
{
    size_t threads = (size_t)oq_threadpool_size(tp), chunks = 1;
    if (threads > 1 && count >= 2 * DQ_CHUNK_MIN) {
        chunks = count / DQ_CHUNK_MIN < 4 * threads ? count / DQ_CHUNK_MIN : 4 * threads;
        chunks = chunks < DQ_MAX_CHUNKS ? chunks : DQ_MAX_CHUNKS;
    }
    dq_job j = {.x = x, .q = q, .count = count};
    j.chunk = (count + chunks - 1) / chunks;
    j.chunk = (j.chunk + 63) / 64 * 64; /* whole vectors in every chunk but the last */
    chunks = j.chunk ? (count + j.chunk - 1) / j.chunk : 1;
    if (chunks <= 1)
        range_of(x, count, &j.lo[0], &j.hi[0]);
    else
        oq_parallel_for(tp, chunks, dq_range_task, &j);
    float lo = 0.0f, hi = 0.0f;
    for (size_t t = 0; t < chunks; t++) {
        lo = j.lo[t] < lo ? j.lo[t] : lo;
        hi = j.hi[t] > hi ? j.hi[t] : hi;
    }
    float s = (hi - lo) / 255.0f;
    if (!(s > 0.0f) || !(s < INFINITY))
        s = 1.0f;
    float z = nearbyintf(-lo / s);
    z = z < 0.0f ? 0.0f : z > 255.0f ? 255.0f : z;
    j.s = s;
    j.z = z;
    if (chunks <= 1)
        quantize_with(x, count, q, s, z);
    else
        oq_parallel_for(tp, chunks, dq_quantize_task, &j);
    *scale = s;
    *zp = (int32_t)z;
}

static size_t up64(size_t x) { return (x + 63) / 64 * 64; }

static oq_status qmm_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    qmm_state *s = n->state;
    const qmm_io *io = &IO[s->kind];
    const oq_tensor *a = input(n, in, io->a), *b = input(n, in, io->b);
    qmm_shape sh;
    oq_status st = qmm_shape_of(n, s, a, b, a_type_of(s->kind), &sh);
    if (st != OQ_OK)
        return st;
    size_t m = sh.m, k = sh.k, nn = sh.n;
    oq_dtype yt = out_type(s, in, n);
    const oq_tensor *a_zp = input(n, in, io->a_zp), *b_zp = input(n, in, io->b_zp);
    const oq_tensor *a_sc = input(n, in, io->a_scale), *b_sc = input(n, in, io->b_scale);
    const oq_tensor *y_sc = input(n, in, io->y_scale), *y_zp = input(n, in, io->y_zp), *bias = input(n, in, io->bias);
    bool azv = false, bzv = false, bsv = false, dummy;
    if (s->kind != QMM_DYNAMIC &&
        (st = read_zp(n, a_zp, a->dtype, "a_zero_point", s->kind == QMM_INTEGER ? m : 0, &azv)))
        return st;
    if ((st = read_zp(n, b_zp, b->dtype, "b_zero_point", sh.b.batches == 1 ? nn : 0, &bzv)))
        return st;
    bool scaled = s->kind != QMM_INTEGER, requant = is_q8(yt);
    float sa = 1.0f, sy = 1.0f;
    int32_t yzp = 0;
    if (scaled) {
        if (s->kind != QMM_DYNAMIC) {
            if ((st = read_scale(n, a_sc, "a_scale", 0, &dummy)))
                return st;
            sa = *(const float *)a_sc->data;
        }
        if ((st = read_scale(n, b_sc, "b_scale", nn, &bsv)))
            return st;
    }
    if (requant) {
        if ((st = read_scale(n, y_sc, "y_scale", 0, &dummy)) || (st = read_zp(n, y_zp, yt, "y_zero_point", 0, &dummy)))
            return st;
        sy = *(const float *)y_sc->data;
        yzp = q8_at(y_zp, 0);
    }
    if (bias) {
        int64_t c = oq_tensor_numel(bias);
        oq_dtype bt = s->kind == QMM_QGEMM ? OQ_INT32 : OQ_FLOAT;
        if (bias->dtype != bt || (c != 1 && (size_t)c != nn) || (bias->ndim >= 2 && bias->dims[bias->ndim - 2] != 1))
            return oq_op_error(n, OQ_E_UNSUPPORTED, "bias must be %s with 1 or N = %zu values (one row)",
                               oq_dtype_name(bt), nn);
    }

    /* workspace: folded rows (zp), columns (zp, scale, bias), quantized A, packed B, gemm */
    bool fold = sh.b.batches == 1; /* one B for every A batch: batches become rows */
    size_t rows = fold ? sh.a_batches * m : m;
    size_t a_count = (size_t)oq_tensor_numel(a);
    bool packed = s->packed_b && s->b_data == b->data;
    oq_q8_gemm_args probe = oq_q8_gemm_args_init(rows, nn, k);
    size_t n_threads = (size_t)oq_threadpool_size(n->tp);
    size_t gws = oq_q8_gemm_workspace_size(s->v, &probe, n_threads);
    size_t bytes = up64(rows * 4) + 3 * up64(nn * 4) + (s->kind == QMM_DYNAMIC ? up64(a_count) : 0) + gws + 128;
    uint8_t *w = oq_scratch_get(&s->ws, bytes);
    if (!w)
        return oq_error(OQ_E_NOMEM, "out of memory for the workspace of '%s'", n->label);
    int32_t *zrows = (int32_t *)w;
    w += up64(rows * 4);
    int32_t *zcols = (int32_t *)w, *bias_i = (int32_t *)(w + up64(nn * 4));
    float *scales = (float *)(w + 2 * up64(nn * 4));
    w += 3 * up64(nn * 4);
    const uint8_t *adata = a->data;
    uint8_t a_xor = a->dtype == OQ_INT8 ? 0x80 : 0, b_xor = b->dtype == OQ_UINT8 ? 0x80 : 0;
    int32_t za = q8_at(a_zp, 0) + (a_xor ? 128 : 0);
    if (s->kind == QMM_DYNAMIC) {
        oq_quantize_dynamic_u8(a->data, a_count, w, &sa, &za, n->tp);
        adata = w;
        a_xor = 0;
        w += up64(a_count);
    }
    for (size_t i = 0; i < rows && azv; i++)
        zrows[i] = q8_at(a_zp, i % m) + (a_xor ? 128 : 0);
    for (size_t j = 0; j < nn; j++) {
        zcols[j] = q8_at(b_zp, bzv ? j : 0) - (b_xor ? 128 : 0);
        float sb = scaled ? ((const float *)b_sc->data)[bsv ? j : 0] : 1.0f;
        scales[j] = requant ? oq_requant_scale(sa * s->alpha, sb, sy) : sa * s->alpha * sb;
        if (bias && s->kind == QMM_QGEMM)
            bias_i[j] = ((const int32_t *)bias->data)[oq_tensor_numel(bias) == 1 ? 0 : j];
        else if (bias)
            ((float *)bias_i)[j] = ((const float *)bias->data)[oq_tensor_numel(bias) == 1 ? 0 : j];
    }

    oq_q8_gemm_args g = oq_q8_gemm_args_init(rows, nn, k);
    g.a_rs = sh.a_rs;
    g.a_cs = sh.a_cs;
    g.a_xor = a_xor;
    g.a_zp = za;
    g.a_zp_rows = azv ? zrows : NULL;
    g.b_rs = sh.b.rs;
    g.b_cs = sh.b.cs;
    g.b_xor = b_xor;
    g.b_zp = zcols[0];
    g.b_zp_cols = zcols;
    if (bias && s->kind == QMM_QGEMM) {
        g.bias = bias_i;
        g.bias_mode = OQ_Q8_PER_COL;
    } else if (bias)
        g.bias_f = (const float *)bias_i;
    g.scale = scales;
    g.scale_mode = OQ_Q8_PER_COL;
    g.out = yt == OQ_INT32 ? OQ_Q8_OUT_I32 : yt == OQ_FLOAT ? OQ_Q8_OUT_F32 : yt == OQ_INT8 ? OQ_Q8_OUT_S8 : OQ_Q8_OUT_U8;
    if (requant) {
        int32_t qmin, qmax;
        oq_requant_bounds(yt == OQ_INT8, sy, yzp, s->act_min, s->act_max, &qmin, &qmax);
        g.range = oq_requant_range_make(yzp, qmin, qmax);
    }
    g.ldc = nn;
    size_t esize = oq_dtype_size(yt);
    uint8_t *y = out[0]->data;
    if (fold) {
        g.a = adata;
        if (packed) {
            g.b_packed = s->packed_b;
            g.b_colsum = s->colsum;
        } else
            g.b = b->data;
        g.c = y;
        oq_q8_gemm_run(s->v, &g, w, n->tp);
        return OQ_OK;
    }
    /* one product per output batch, with numpy broadcasting of the batch dims */
    size_t out_batches = (size_t)oq_shape_numel(sh.batch_ndim, sh.batch_dims);
    g.m = m;
    for (size_t t = 0; t < out_batches; t++) {
        size_t ai = 0, bi = 0, rem = t;
        size_t astride = 1, bstride = 1;
        for (int d = sh.batch_ndim - 1; d >= 0; d--) {
            size_t idx = rem % (size_t)sh.batch_dims[d];
            rem /= (size_t)sh.batch_dims[d];
            if (sh.a_batch_dims[d] != 1)
                ai += idx * astride;
            if (sh.b_batch_dims[d] != 1)
                bi += idx * bstride;
            astride *= (size_t)sh.a_batch_dims[d];
            bstride *= (size_t)sh.b_batch_dims[d];
        }
        g.a = adata + ai * m * k;
        g.b_packed = NULL;
        g.b = NULL;
        if (packed) {
            g.b_packed = s->packed_b + bi * s->packed_size;
            g.b_colsum = s->colsum + bi * nn;
        } else
            g.b = (const uint8_t *)b->data + bi * k * nn;
        g.c = y + t * m * nn * esize;
        oq_q8_gemm_run(s->v, &g, w, n->tp);
    }
    return OQ_OK;
}

const oq_op_def oq_op_qlinearmatmul = {qlinearmatmul_prepare, qmm_infer, qmm_run, qmm_destroy};
const oq_op_def oq_op_matmulinteger = {matmulinteger_prepare, qmm_infer, qmm_run, qmm_destroy};
const oq_op_def oq_op_matmulintegertofloat = {matmulintegertofloat_prepare, qmm_infer, qmm_run, qmm_destroy};
const oq_op_def oq_op_dynamicquantizematmul = {dynamicquantizematmul_prepare, qmm_infer, qmm_run, qmm_destroy};
const oq_op_def oq_op_qgemm = {qgemm_prepare, qmm_infer, qmm_run, qmm_destroy};
