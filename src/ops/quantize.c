/* ops/quantize: QuantizeLinear, DequantizeLinear (per-tensor and per-axis,
 * 8- and 16-bit) and DynamicQuantizeLinear. They sit between every layer of a
 * QDQ model that stayed float, so the float <-> int8 loops have AVX2 versions
 * that round exactly like the scalar ones (divide, clamp, round half to even). */
#include "ops/op.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define OQ_Q_X86 1
#endif

/* Elements per thread-pool task: large enough that a task outweighs its dispatch. */
#define Q_CHUNK 16384

static void qrange(oq_dtype t, int32_t *lo, int32_t *hi)
{
    switch (t) {
    case OQ_INT8: *lo = -128; *hi = 127; break;
    case OQ_UINT16: *lo = 0; *hi = 65535; break;
    case OQ_INT16: *lo = -32768; *hi = 32767; break;
    default: *lo = 0; *hi = 255; break;
    }
}

/* ---- float -> integer kernels: y = saturate(round_half_even(x / scale) + zp) ---- */

/* Clamping to [lo - zp, hi - zp] before rounding equals rounding then saturating
 * (rounding is monotonic and keeps integers), keeps the conversion in range and
 * sends NaN to lo, which is what the vector max/min do too. */
static inline int32_t q_one(float x, float scale, float flo, float fhi, int32_t zp)
{
    float v = x / scale;
    v = v > flo ? v : flo;
    v = v < fhi ? v : fhi;
    return (int32_t)nearbyintf(v) + zp;
}

static void q_scalar(const float *x, size_t n, float scale, int32_t zp, oq_dtype t, void *y)
{
    int32_t lo, hi;
    qrange(t, &lo, &hi);
    float flo = (float)(lo - zp), fhi = (float)(hi - zp);
    switch (t) {
    case OQ_INT8:
        for (size_t i = 0; i < n; i++)
            ((int8_t *)y)[i] = (int8_t)q_one(x[i], scale, flo, fhi, zp);
        break;
    case OQ_UINT16:
        for (size_t i = 0; i < n; i++)
            ((uint16_t *)y)[i] = (uint16_t)q_one(x[i], scale, flo, fhi, zp);
        break;
    case OQ_INT16:
        for (size_t i = 0; i < n; i++)
            ((int16_t *)y)[i] = (int16_t)q_one(x[i], scale, flo, fhi, zp);
        break;
    default:
        for (size_t i = 0; i < n; i++)
            ((uint8_t *)y)[i] = (uint8_t)q_one(x[i], scale, flo, fhi, zp);
        break;
    }
}

#ifdef OQ_Q_X86
/* 32 floats -> 32 bytes. packs/packus work per 128-bit lane, so the result's
 * 32-bit groups come out as 0,4,1,5,2,6,3,7 and one permute restores order. */
__attribute__((target("avx2"))) static void q8_avx2(const float *x, size_t n, float scale, int32_t zp, int is_signed,
                                                    void *y)
{
    int32_t lo = is_signed ? -128 : 0, hi = is_signed ? 127 : 255;
    const __m256 vs = _mm256_set1_ps(scale), vlo = _mm256_set1_ps((float)(lo - zp)),
                 vhi = _mm256_set1_ps((float)(hi - zp));
    const __m256i vzp = _mm256_set1_epi32(zp), perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    uint8_t *out = y;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            __m256 v = _mm256_div_ps(_mm256_loadu_ps(x + i + 8 * k), vs);
            v = _mm256_min_ps(_mm256_max_ps(v, vlo), vhi);
            q[k] = _mm256_add_epi32(_mm256_cvtps_epi32(v), vzp);
        }
        __m256i ab = _mm256_packs_epi32(q[0], q[1]), cd = _mm256_packs_epi32(q[2], q[3]);
        __m256i r = is_signed ? _mm256_packs_epi16(ab, cd) : _mm256_packus_epi16(ab, cd);
        _mm256_storeu_si256((__m256i *)(out + i), _mm256_permutevar8x32_epi32(r, perm));
    }
    q_scalar(x + i, n - i, scale, zp, is_signed ? OQ_INT8 : OQ_UINT8, out + i);
}

__attribute__((target("avx2"))) static void dq8_avx2(const void *x, size_t n, float scale, int32_t zp, int is_signed,
                                                     float *y)
{
    const __m256 vs = _mm256_set1_ps(scale);
    const __m256i vzp = _mm256_set1_epi32(zp);
    const uint8_t *in = x;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i b = _mm_loadl_epi64((const __m128i *)(in + i));
        __m256i w = is_signed ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b);
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(w, vzp)), vs));
    }
    for (; i < n; i++) {
        int32_t v = is_signed ? ((const int8_t *)x)[i] : ((const uint8_t *)x)[i];
        y[i] = (float)(v - zp) * scale;
    }
}

__attribute__((target("avx2"))) static void minmax_avx2(const float *x, size_t n, float *mn, float *mx)
{
    __m256 vmn = _mm256_set1_ps(*mn), vmx = _mm256_set1_ps(*mx);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        vmn = _mm256_min_ps(vmn, v);
        vmx = _mm256_max_ps(vmx, v);
    }
    float a[8], b[8];
    _mm256_storeu_ps(a, vmn);
    _mm256_storeu_ps(b, vmx);
    for (int k = 0; k < 8; k++) {
        *mn = a[k] < *mn ? a[k] : *mn;
        *mx = b[k] > *mx ? b[k] : *mx;
    }
    for (; i < n; i++) {
        *mn = x[i] < *mn ? x[i] : *mn;
        *mx = x[i] > *mx ? x[i] : *mx;
    }
}
#endif

static bool use_avx2(void) { return oq_isa_level() >= OQ_ISA_AVX2; }

static void quantize_f32(const float *x, size_t n, float scale, int32_t zp, oq_dtype t, void *y)
{
#ifdef OQ_Q_X86
    if ((t == OQ_UINT8 || t == OQ_INT8) && use_avx2()) {
        q8_avx2(x, n, scale, zp, t == OQ_INT8, y);
        return;
    }
#endif
    q_scalar(x, n, scale, zp, t, y);
}

void oq_quantize_f32_to_8bit(const float *x, size_t n, float scale, int32_t zp, bool is_signed, void *y)
{
    quantize_f32(x, n, scale, zp, is_signed ? OQ_INT8 : OQ_UINT8, y);
}

static void dequantize_to_f32(const void *x, oq_dtype t, size_t n, float scale, int32_t zp, float *y)
{
#ifdef OQ_Q_X86
    if ((t == OQ_UINT8 || t == OQ_INT8) && use_avx2()) {
        dq8_avx2(x, n, scale, zp, t == OQ_INT8, y);
        return;
    }
#endif
    switch (t) {
    case OQ_INT8:
        for (size_t i = 0; i < n; i++)
            y[i] = (float)((int32_t)((const int8_t *)x)[i] - zp) * scale;
        break;
    case OQ_UINT8:
        for (size_t i = 0; i < n; i++)
            y[i] = (float)((int32_t)((const uint8_t *)x)[i] - zp) * scale;
        break;
    case OQ_INT16:
        for (size_t i = 0; i < n; i++)
            y[i] = (float)((int32_t)((const int16_t *)x)[i] - zp) * scale;
        break;
    case OQ_UINT16:
        for (size_t i = 0; i < n; i++)
            y[i] = (float)((int32_t)((const uint16_t *)x)[i] - zp) * scale;
        break;
    default: /* int32: the difference is taken in int64 so extreme zero points cannot overflow */
        for (size_t i = 0; i < n; i++)
            y[i] = (float)((int64_t)((const int32_t *)x)[i] - zp) * scale;
        break;
    }
}

/* ---- quantization parameters ---- */

typedef struct qparams {
    size_t outer, channels, inner; /* x viewed as [outer, channels, inner]; channels 1 per-tensor */
    const oq_tensor *scale, *zp;
} qparams;

static bool is_q_type(oq_dtype t) { return t == OQ_UINT8 || t == OQ_INT8 || t == OQ_UINT16 || t == OQ_INT16; }

static float scale_at(const qparams *p, size_t c) { return (float)oq_tensor_get_f64(p->scale, (int64_t)c); }
static int32_t zp_at(const qparams *p, size_t c)
{
    return p->zp ? (int32_t)oq_tensor_get_i64(p->zp, p->zp->ndim ? (int64_t)c : 0) : 0;
}

/* Checks scale/zero point against x and the axis attribute. A one-element 1-D
 * scale is per-tensor, as in onnxruntime. */
static oq_status qparams_get(const oq_op_node *n, const oq_tensor *x, const oq_tensor *scale, const oq_tensor *zp,
                             qparams *p)
{
    if (oq_node_attr_int(n->node, "block_size", 0) != 0)
        return oq_op_error(n, OQ_E_UNSUPPORTED, "blocked quantization (block_size) is not supported");
    if (scale->dtype != OQ_FLOAT && scale->dtype != OQ_FLOAT16 && scale->dtype != OQ_BFLOAT16)
        return oq_op_error(n, OQ_E_TYPE, "scale of type %s is not supported", oq_dtype_name(scale->dtype));
    int64_t ns = oq_tensor_numel(scale);
    if (scale->ndim > 1)
        return oq_op_error(n, OQ_E_SHAPE, "scale must be a scalar or 1-D (rank %d given)", scale->ndim);
    if (zp && (oq_tensor_numel(zp) != ns || zp->ndim > 1))
        return oq_op_error(n, OQ_E_SHAPE, "zero point must have the shape of the scale");
    memset(p, 0, sizeof *p);
    p->scale = scale;
    p->zp = zp;
    size_t total = (size_t)oq_tensor_numel(x);
    p->outer = 1;
    p->channels = 1;
    p->inner = total;
    if (ns == 1)
        return OQ_OK;
    int axis;
    oq_status st = oq_norm_axis(n, oq_node_attr_int(n->node, "axis", 1), x->ndim, &axis);
    if (st != OQ_OK)
        return st;
    if (x->ndim == 0 || x->dims[axis] != ns)
        return oq_op_error(n, OQ_E_SHAPE, "per-axis scale has %lld elements but axis %d of the input has %lld",
                           (long long)ns, axis, (long long)(x->ndim ? x->dims[axis] : 1));
    p->channels = (size_t)ns;
    p->outer = 1;
    for (int d = 0; d < axis; d++)
        p->outer *= (size_t)x->dims[d];
    p->inner = 1;
    for (int d = axis + 1; d < x->ndim; d++)
        p->inner *= (size_t)x->dims[d];
    return OQ_OK;
}

static oq_status check_zp_range(const oq_op_node *n, const qparams *p, oq_dtype t)
{
    if (!p->zp || t == OQ_INT32)
        return OQ_OK;
    int32_t lo, hi;
    qrange(t, &lo, &hi);
    for (size_t c = 0; c < p->channels; c++) {
        int32_t z = zp_at(p, c);
        if (z < lo || z > hi)
            return oq_op_error(n, OQ_E_INVALID_ARG, "zero point %d is out of range for %s", (int)z, oq_dtype_name(t));
    }
    return OQ_OK;
}

/* A block of the [outer, channels, inner] view: one scale, contiguous. Tasks
 * cover whole blocks or Q_CHUNK-sized pieces of one. */
typedef struct qjob {
    const qparams *p;
    const void *x;
    oq_dtype xt, yt;
    void *y;
    size_t pieces; /* per block */
    size_t piece;  /* elements per piece */
    float *tmp;    /* per thread Q_CHUNK floats, for non-f32 inputs */
} qjob;

static void piece_range(const qjob *j, size_t task, size_t *block, size_t *start, size_t *len)
{
    *block = task / j->pieces;
    *start = (task % j->pieces) * j->piece;
    size_t inner = j->p->inner;
    *len = *start + j->piece <= inner ? j->piece : inner - *start;
}

static void quantize_task(void *ctx, size_t task, size_t thread)
{
    const qjob *j = ctx;
    size_t b, s, len;
    piece_range(j, task, &b, &s, &len);
    size_t c = b % j->p->channels, off = b * j->p->inner + s;
    float scale = scale_at(j->p, c);
    int32_t zp = zp_at(j->p, c);
    char *y = (char *)j->y + off * oq_dtype_size(j->yt);
    if (j->xt == OQ_FLOAT) {
        quantize_f32((const float *)j->x + off, len, scale, zp, j->yt, y);
        return;
    }
    float *tmp = j->tmp + thread * Q_CHUNK;
    for (size_t done = 0; done < len;) {
        size_t k = len - done < Q_CHUNK ? len - done : Q_CHUNK;
        for (size_t i = 0; i < k; i++) {
            size_t e = off + done + i;
            switch (j->xt) {
            case OQ_FLOAT16: tmp[i] = oq_half_to_float(((const uint16_t *)j->x)[e]); break;
            case OQ_BFLOAT16: tmp[i] = oq_bf16_to_float(((const uint16_t *)j->x)[e]); break;
            case OQ_DOUBLE: tmp[i] = (float)((const double *)j->x)[e]; break;
            default: tmp[i] = (float)((const int32_t *)j->x)[e]; break;
            }
        }
        quantize_f32(tmp, k, scale, zp, j->yt, y + done * oq_dtype_size(j->yt));
        done += k;
    }
}

static void dequantize_task(void *ctx, size_t task, size_t thread)
{
    const qjob *j = ctx;
    size_t b, s, len;
    piece_range(j, task, &b, &s, &len);
    size_t c = b % j->p->channels, off = b * j->p->inner + s;
    float scale = scale_at(j->p, c);
    int32_t zp = zp_at(j->p, c);
    const char *x = (const char *)j->x + off * oq_dtype_size(j->xt);
    if (j->yt == OQ_FLOAT) {
        dequantize_to_f32(x, j->xt, len, scale, zp, (float *)j->y + off);
        return;
    }
    float *tmp = j->tmp + thread * Q_CHUNK;
    for (size_t done = 0; done < len;) {
        size_t k = len - done < Q_CHUNK ? len - done : Q_CHUNK;
        dequantize_to_f32(x + done * oq_dtype_size(j->xt), j->xt, k, scale, zp, tmp);
        uint16_t *y = (uint16_t *)j->y + off + done;
        for (size_t i = 0; i < k; i++)
            y[i] = j->yt == OQ_FLOAT16 ? oq_float_to_half(tmp[i]) : oq_float_to_bf16(tmp[i]);
        done += k;
    }
}

static oq_status run_blocks(const oq_op_node *n, qjob *j, oq_task_fn fn, bool need_tmp)
{
    const qparams *p = j->p;
    size_t blocks = p->outer * p->channels;
    j->piece = p->inner < Q_CHUNK ? (p->inner ? p->inner : 1) : Q_CHUNK;
    j->pieces = (p->inner + j->piece - 1) / j->piece;
    if (!blocks || !j->pieces)
        return OQ_OK;
    if (need_tmp) {
        j->tmp = oq_malloc((size_t)oq_threadpool_size(n->tp) * Q_CHUNK * sizeof(float));
        if (!j->tmp)
            return oq_op_error(n, OQ_E_NOMEM, "out of memory");
    }
    size_t tasks = blocks * j->pieces;
    if (tasks == 1 || p->outer * p->channels * p->inner < Q_CHUNK)
        for (size_t t = 0; t < tasks; t++)
            fn(j, t, 0);
    else
        oq_parallel_for(n->tp, tasks, fn, j);
    free(j->tmp);
    j->tmp = NULL;
    return OQ_OK;
}

/* ---- QuantizeLinear ---- */

static oq_status q_out_type(const oq_op_node *n, const oq_tensor *zp, oq_dtype *t)
{
    if (zp)
        *t = zp->dtype;
    else {
        int64_t od = oq_node_attr_int(n->node, "output_dtype", 0);
        *t = od ? (oq_dtype)od : OQ_UINT8;
        if (od < 0 || od >= OQ_DTYPE_COUNT)
            return oq_op_error(n, OQ_E_UNSUPPORTED, "output_dtype %lld is not supported", (long long)od);
    }
    if (!is_q_type(*t))
        return oq_op_error(n, OQ_E_UNSUPPORTED, "quantizing to %s is not supported (uint8, int8, uint16, int16 are)",
                           oq_dtype_name(*t));
    return OQ_OK;
}

static oq_status ql_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    if (n->n_inputs < 2 || !in[0] || !in[1])
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects x and y_scale");
    const oq_tensor *x = in[0], *zp = n->n_inputs > 2 ? in[2] : NULL;
    if (x->dtype != OQ_FLOAT && x->dtype != OQ_FLOAT16 && x->dtype != OQ_BFLOAT16 && x->dtype != OQ_INT32 &&
        x->dtype != OQ_DOUBLE)
        return oq_op_error(n, OQ_E_TYPE, "input of type %s is not supported", oq_dtype_name(x->dtype));
    oq_dtype t;
    oq_status st = q_out_type(n, zp, &t);
    if (st != OQ_OK)
        return st;
    oq_set_shape(out[0], t, x->ndim, x->dims);
    return OQ_OK;
}

static oq_status ql_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    const oq_tensor *zp = n->n_inputs > 2 ? in[2] : NULL;
    qparams p;
    oq_status st = qparams_get(n, in[0], in[1], zp, &p);
    if (st == OQ_OK)
        st = check_zp_range(n, &p, out[0]->dtype);
    if (st != OQ_OK)
        return st;
    for (size_t c = 0; c < p.channels; c++) {
        float s = scale_at(&p, c);
        if (!(s > 0.0f) && !(s < 0.0f))
            return oq_op_error(n, OQ_E_INVALID_ARG, "y_scale must be nonzero and not NaN");
    }
    qjob j = {.p = &p, .x = in[0]->data, .xt = in[0]->dtype, .yt = out[0]->dtype, .y = out[0]->data};
    return run_blocks(n, &j, quantize_task, in[0]->dtype != OQ_FLOAT);
}

const oq_op_def oq_op_quantize_linear = {NULL, ql_infer, ql_run, NULL};

/* ---- DequantizeLinear ---- */

static oq_status dql_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    if (n->n_inputs < 2 || !in[0] || !in[1])
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects x and x_scale");
    const oq_tensor *x = in[0], *zp = n->n_inputs > 2 ? in[2] : NULL;
    if (!is_q_type(x->dtype) && x->dtype != OQ_INT32)
        return oq_op_error(n, OQ_E_TYPE, "input of type %s is not supported", oq_dtype_name(x->dtype));
    if (zp && zp->dtype != x->dtype)
        return oq_op_error(n, OQ_E_TYPE, "zero point type %s differs from the input's %s", oq_dtype_name(zp->dtype),
                           oq_dtype_name(x->dtype));
    oq_dtype yt = in[1]->dtype;
    if (yt != OQ_FLOAT && yt != OQ_FLOAT16 && yt != OQ_BFLOAT16)
        return oq_op_error(n, OQ_E_TYPE, "scale of type %s is not supported", oq_dtype_name(yt));
    oq_set_shape(out[0], yt, x->ndim, x->dims);
    return OQ_OK;
}

static oq_status dql_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    const oq_tensor *zp = n->n_inputs > 2 ? in[2] : NULL;
    qparams p;
    oq_status st = qparams_get(n, in[0], in[1], zp, &p);
    if (st != OQ_OK)
        return st;
    if (in[0]->dtype == OQ_INT32)
        for (size_t c = 0; zp && c < p.channels; c++)
            if (zp_at(&p, c) != 0)
                return oq_op_error(n, OQ_E_INVALID_ARG, "an int32 input needs a zero point of 0");
    qjob j = {.p = &p, .x = in[0]->data, .xt = in[0]->dtype, .yt = out[0]->dtype, .y = out[0]->data};
    return run_blocks(n, &j, dequantize_task, out[0]->dtype != OQ_FLOAT);
}

const oq_op_def oq_op_dequantize_linear = {NULL, dql_infer, dql_run, NULL};

/* ---- DynamicQuantizeLinear ---- */

static oq_status dyn_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    if (n->n_inputs < 1 || !in[0])
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects an input");
    if (in[0]->dtype != OQ_FLOAT)
        return oq_op_error(n, OQ_E_TYPE, "input must be float, got %s", oq_dtype_name(in[0]->dtype));
    if (n->n_outputs != 3)
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects 3 outputs, got %zu", n->n_outputs);
    oq_set_shape(out[0], OQ_UINT8, in[0]->ndim, in[0]->dims);
    oq_set_shape(out[1], OQ_FLOAT, 0, NULL);
    oq_set_shape(out[2], OQ_UINT8, 0, NULL);
    return OQ_OK;
}

typedef struct minmax_job {
    const float *x;
    size_t n, chunk;
    float *mn, *mx; /* per task */
} minmax_job;

static void minmax_task(void *ctx, size_t task, size_t thread)
{
    (void)thread;
    minmax_job *j = ctx;
    size_t s = task * j->chunk, len = s + j->chunk <= j->n ? j->chunk : j->n - s;
    float mn = 0.0f, mx = 0.0f; /* the range always includes 0 */
#ifdef OQ_Q_X86
    if (use_avx2())
        minmax_avx2(j->x + s, len, &mn, &mx);
    else
#endif
        for (size_t i = s; i < s + len; i++) {
            mn = j->x[i] < mn ? j->x[i] : mn;
            mx = j->x[i] > mx ? j->x[i] : mx;
        }
    j->mn[task] = mn;
    j->mx[task] = mx;
}

/* The parameters onnxruntime computes: the range widened to include 0,
 * scale = (max - min) / 255 (1 when the range is empty, where the spec would divide
 * by zero), zero point = round_half_even(clamp(0 - min / scale, 0, 255)). */
static oq_status dyn_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    size_t total = (size_t)oq_tensor_numel(in[0]);
    size_t chunk = 4 * Q_CHUNK, tasks = total ? (total + chunk - 1) / chunk : 1;
    minmax_job j = {.x = in[0]->data, .n = total, .chunk = chunk};
    j.mn = oq_malloc(2 * tasks * sizeof(float));
    if (!j.mn)
        return oq_op_error(n, OQ_E_NOMEM, "out of memory");
    j.mx = j.mn + tasks;
    if (tasks == 1)
        minmax_task(&j, 0, 0);
    else
        oq_parallel_for(n->tp, tasks, minmax_task, &j);
    float mn = 0.0f, mx = 0.0f;
    for (size_t t = 0; t < tasks; t++) {
        mn = j.mn[t] < mn ? j.mn[t] : mn;
        mx = j.mx[t] > mx ? j.mx[t] : mx;
    }
    free(j.mn);
    if (!isfinite(mn) || !isfinite(mx))
        return oq_op_error(n, OQ_E_INVALID_ARG, "the input holds infinite values; no finite scale exists");
    float scale = mx == mn ? 1.0f : (mx - mn) / 255.0f;
    float zpf = 0.0f - mn / scale;
    zpf = zpf < 0.0f ? 0.0f : zpf > 255.0f ? 255.0f : zpf;
    int32_t zp = (int32_t)nearbyintf(zpf);
    *(float *)out[1]->data = scale;
    *(uint8_t *)out[2]->data = (uint8_t)zp;
    qparams p = {.outer = 1, .channels = 1, .inner = total, .scale = out[1], .zp = out[2]};
    qjob q = {.p = &p, .x = in[0]->data, .xt = OQ_FLOAT, .yt = OQ_UINT8, .y = out[0]->data};
    return run_blocks(n, &q, quantize_task, false);
}

const oq_op_def oq_op_dynamic_quantize_linear = {NULL, dyn_infer, dyn_run, NULL};
