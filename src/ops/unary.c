/* ops/unary: one-input elementwise operators — math functions, activations,
 * Clip, Shrink, logic/bit negation, IsNaN/IsInf, and Cast/CastLike.
 * float16/bfloat16 inputs are computed in float, converted in blocks around the float kernel. */
#include "ops/elementwise.h"
#include "kernels/f32-vmath/vmath.h"

#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <tgmath.h> /* exp(x) on a float is expf */

typedef struct un_params {
    double alpha, beta, gamma; /* attribute values; Clip: alpha = min, beta = max */
    const oq_f32_vmath_table *vm;
    int mode; /* Gelu: 1 for the tanh approximation; IsInf: bit 1 positive, bit 2 negative */
} un_params;

typedef void (*un_fn)(const void *x, void *y, size_t n, const un_params *p);

typedef enum un_op {
    U_ABS, U_NEG, U_EXP, U_LOG, U_SQRT, U_RECIPROCAL, U_FLOOR, U_CEIL, U_ROUND, U_SIGN,
    U_SIN, U_COS, U_TAN, U_ASIN, U_ACOS, U_ATAN, U_SINH, U_COSH, U_ASINH, U_ACOSH, U_ATANH,
    U_ERF, U_TANH, U_SIGMOID, U_RELU, U_LEAKYRELU, U_ELU, U_SELU, U_CELU, U_HARDSIGMOID,
    U_HARDSWISH, U_SOFTPLUS, U_SOFTSIGN, U_THRESHOLDEDRELU, U_GELU, U_MISH, U_SHRINK, U_CLIP,
    U_NOT, U_BITNOT, U_ISNAN, U_ISINF, U_COUNT
} un_op;

static un_fn un_table[U_COUNT][OQ_DTYPE_COUNT];

/* ---- float kernels: EXPR over x of type T, with params p ---- */

#define DEF_UN(fname, T, TO, EXPR)                                              \
    static void fname(const void *vx, void *vy, size_t n, const un_params *p)   \
    {                                                                           \
        const T *x_ = vx;                                                       \
        TO *y_ = vy;                                                            \
        const T pa = (T)p->alpha, pb = (T)p->beta, pg = (T)p->gamma;            \
        const int pm = p->mode;                                                 \
        (void)pa, (void)pb, (void)pg, (void)pm;                                 \
        OQ_EW_BLOCKED(n, const T x = x_[i]; y_[i] = (TO)(EXPR));                \
    }

#define MAXV(a, b) ((a) > (b) ? (a) : (b))
#define MINV(a, b) ((a) < (b) ? (a) : (b))

/* Softplus without overflow: log(1 + e^x) = max(x, 0) + log1p(e^-|x|). */
#define SOFTPLUS(T, x) (MAXV(x, (T)0) + (T)log1p(exp(-fabs((double)(x)))))

#define FLOAT_UNARY(T, S)                                                                                       \
    static inline T clamp01_##S(T v)                                                                            \
    {                                                                                                           \
        v = v < (T)0 ? (T)0 : v;                                                                                \
        return v > (T)1 ? (T)1 : v;                                                                             \
    }                                                                                                           \
    static inline T leaky_##S(T x, T a)                                                                         \
    {                                                                                                           \
        T ax = a * x;                                                                                           \
        return x >= (T)0 ? x : ax;                                                                              \
    }                                                                                                           \
    DEF_UN(abs_##S, T, T, x < 0 ? -x : x)                                                                       \
    DEF_UN(neg_##S, T, T, -x)                                                                                   \
    DEF_UN(exp_##S, T, T, exp(x))                                                                               \
    DEF_UN(log_##S, T, T, log(x))                                                                               \
    DEF_UN(sqrt_##S, T, T, sqrt(x))                                                                             \
    DEF_UN(reciprocal_##S, T, T, (T)1 / x)                                                                      \
    DEF_UN(floor_##S, T, T, floor(x))                                                                           \
    DEF_UN(ceil_##S, T, T, ceil(x))                                                                             \
    DEF_UN(round_##S, T, T, nearbyint(x))                                                                       \
    DEF_UN(sign_##S, T, T, x > 0 ? (T)1 : x < 0 ? (T)-1 : x)                                                   \
    DEF_UN(sin_##S, T, T, sin(x))                                                                               \
    DEF_UN(cos_##S, T, T, cos(x))                                                                               \
    DEF_UN(tan_##S, T, T, tan(x))                                                                               \
    DEF_UN(asin_##S, T, T, asin(x))                                                                             \
    DEF_UN(acos_##S, T, T, acos(x))                                                                             \
    DEF_UN(atan_##S, T, T, atan(x))                                                                             \
    DEF_UN(sinh_##S, T, T, sinh(x))                                                                             \
    DEF_UN(cosh_##S, T, T, cosh(x))                                                                             \
    DEF_UN(asinh_##S, T, T, asinh(x))                                                                           \
    DEF_UN(acosh_##S, T, T, acosh(x))                                                                           \
    DEF_UN(atanh_##S, T, T, atanh(x))                                                                           \
    DEF_UN(erf_##S, T, T, erf(x))                                                                               \
    DEF_UN(tanh_##S, T, T, tanh(x))                                                                             \
    DEF_UN(sigmoid_##S, T, T, x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)))                               \
    DEF_UN(relu_##S, T, T, x > 0 ? x : (T)0)                                                                    \
    DEF_UN(leakyrelu_##S, T, T, leaky_##S(x, pa))                                                   \
    DEF_UN(elu_##S, T, T, x >= 0 ? x : (T)(pa * expm1((double)x)))                                        \
    DEF_UN(selu_##S, T, T, x > 0 ? pg * x : (T)(pg * (pa * exp((double)x) - pa)))    \
    DEF_UN(celu_##S, T, T, MAXV(x, (T)0) + MINV((T)0, (T)(pa * expm1((double)x / pa))))             \
    DEF_UN(hardsigmoid_##S, T, T, clamp01_##S(pa * x + pb))                         \
    DEF_UN(hardswish_##S, T, T, x * clamp01_##S(x * (T)(1.0 / 6.0) + (T)0.5))                        \
    DEF_UN(softplus_##S, T, T, SOFTPLUS(T, x))                                                                  \
    DEF_UN(softsign_##S, T, T, x / (1 + (x < 0 ? -x : x)))                                                      \
    DEF_UN(thresholdedrelu_##S, T, T, x > pa ? x : (T)0)                                               \
    DEF_UN(gelu_##S, T, T,                                                                                      \
           pm ? (T)(0.5 * x * (1 + tanh(0.79788456080286535588 * (x + 0.044715 * (double)x * x * x))))    \
                   : (T)(0.5 * x * (1 + erf((double)x * 0.70710678118654752440))))                              \
    DEF_UN(mish_##S, T, T, x * (T)tanh((double)SOFTPLUS(T, x)))                                                 \
    DEF_UN(shrink_##S, T, T, x < -pa ? x + pb : x > pa ? x - pb : (T)0)       \
    DEF_UN(clip_##S, T, T, x < pa ? pa : x > pb ? pb : x)                     \
    DEF_UN(isnan_##S, T, uint8_t, x != x)                                                                       \
    DEF_UN(isinf_##S, T, uint8_t, ((pm & 1) && x == (T)INFINITY) || ((pm & 2) && x == -(T)INFINITY))
FLOAT_UNARY(float, f32)
FLOAT_UNARY(double, f64)

/* Float kernels for the hot activations go through the vectorized math table. */
static void exp_vf32(const void *x, void *y, size_t n, const un_params *p) { p->vm->vexp(x, y, n); }
static void erf_vf32(const void *x, void *y, size_t n, const un_params *p) { p->vm->verf(x, y, n); }
static void tanh_vf32(const void *x, void *y, size_t n, const un_params *p) { p->vm->vtanh(x, y, n); }
static void sigmoid_vf32(const void *x, void *y, size_t n, const un_params *p) { p->vm->vsigmoid(x, y, n); }
static void clip_vf32(const void *x, void *y, size_t n, const un_params *p)
{
    p->vm->vclip(x, y, n, (float)p->alpha, (float)p->beta);
}
static void hardsigmoid_vf32(const void *x, void *y, size_t n, const un_params *p)
{
    p->vm->vhardsigmoid(x, y, n, (float)p->alpha, (float)p->beta, 0);
}
static void hardswish_vf32(const void *x, void *y, size_t n, const un_params *p)
{
    p->vm->vhardsigmoid(x, y, n, 1.0f / 6.0f, 0.5f, 1);
}
static void leakyrelu_vf32(const void *x, void *y, size_t n, const un_params *p)
{
    p->vm->vleakyrelu(x, y, n, (float)p->alpha);
}
static void gelu_vf32(const void *vx, void *vy, size_t n, const un_params *p)
{
    if (p->mode) {
        gelu_f32(vx, vy, n, p);
        return;
    }
    p->vm->vgelu(vx, vy, n);
}

/* ---- integer and bool kernels ---- */

static inline bool lt0_never(uint64_t v) { (void)v; return false; }
static inline bool lt0_i64(int64_t v) { return v < 0; }
#define LT0(x) _Generic((x), uint8_t: lt0_never, uint16_t: lt0_never, uint32_t: lt0_never, uint64_t: lt0_never, default: lt0_i64)(x)

#define INT_UNARY(DT, T, U, S, SG)                                                              \
    DEF_UN(abs_##S, T, T, LT0(x) ? (T)(0 - (U)x) : x)                                           \
    DEF_UN(neg_##S, T, T, (T)(0 - (U)x))                                                        \
    DEF_UN(sign_##S, T, T, LT0(x) ? (T)-1 : x > 0 ? (T)1 : (T)0)                                \
    DEF_UN(relu_##S, T, T, LT0(x) ? (T)0 : x)                                                   \
    DEF_UN(bitnot_##S, T, T, (T)~x)                                                             \
    static void clip_##S(const void *vx, void *vy, size_t n, const un_params *p)                 \
    {                                                                                           \
        const T *x = vx;                                                                        \
        T *y = vy, lo, hi;                                                                      \
        oq_ew_store(&lo, DT, 0, p->alpha); /* saturating: the bounds may be the type's limits */ \
        oq_ew_store(&hi, DT, 0, p->beta);                                                       \
        OQ_EW_BLOCKED(n, y[i] = x[i] < lo ? lo : x[i] > hi ? hi : x[i]);                        \
    }
OQ_EW_INT_TYPES(INT_UNARY)
DEF_UN(not_b, uint8_t, uint8_t, !x)

static void table_init(void)
{
#define REG_F(S, DT)                                                                                       \
    un_table[U_ABS][DT] = abs_##S, un_table[U_NEG][DT] = neg_##S, un_table[U_EXP][DT] = exp_##S;             \
    un_table[U_LOG][DT] = log_##S, un_table[U_SQRT][DT] = sqrt_##S, un_table[U_RECIPROCAL][DT] = reciprocal_##S; \
    un_table[U_FLOOR][DT] = floor_##S, un_table[U_CEIL][DT] = ceil_##S, un_table[U_ROUND][DT] = round_##S;   \
    un_table[U_SIGN][DT] = sign_##S, un_table[U_SIN][DT] = sin_##S, un_table[U_COS][DT] = cos_##S;           \
    un_table[U_TAN][DT] = tan_##S, un_table[U_ASIN][DT] = asin_##S, un_table[U_ACOS][DT] = acos_##S;         \
    un_table[U_ATAN][DT] = atan_##S, un_table[U_SINH][DT] = sinh_##S, un_table[U_COSH][DT] = cosh_##S;       \
    un_table[U_ASINH][DT] = asinh_##S, un_table[U_ACOSH][DT] = acosh_##S, un_table[U_ATANH][DT] = atanh_##S; \
    un_table[U_ERF][DT] = erf_##S, un_table[U_TANH][DT] = tanh_##S, un_table[U_SIGMOID][DT] = sigmoid_##S;   \
    un_table[U_RELU][DT] = relu_##S, un_table[U_LEAKYRELU][DT] = leakyrelu_##S, un_table[U_ELU][DT] = elu_##S; \
    un_table[U_SELU][DT] = selu_##S, un_table[U_CELU][DT] = celu_##S;                                       \
    un_table[U_HARDSIGMOID][DT] = hardsigmoid_##S, un_table[U_HARDSWISH][DT] = hardswish_##S;               \
    un_table[U_SOFTPLUS][DT] = softplus_##S, un_table[U_SOFTSIGN][DT] = softsign_##S;                       \
    un_table[U_THRESHOLDEDRELU][DT] = thresholdedrelu_##S, un_table[U_GELU][DT] = gelu_##S;                 \
    un_table[U_MISH][DT] = mish_##S, un_table[U_SHRINK][DT] = shrink_##S, un_table[U_CLIP][DT] = clip_##S;   \
    un_table[U_ISNAN][DT] = isnan_##S, un_table[U_ISINF][DT] = isinf_##S;
    REG_F(f32, OQ_FLOAT)
    REG_F(f64, OQ_DOUBLE)
    un_table[U_EXP][OQ_FLOAT] = exp_vf32;
    un_table[U_ERF][OQ_FLOAT] = erf_vf32;
    un_table[U_TANH][OQ_FLOAT] = tanh_vf32;
    un_table[U_SIGMOID][OQ_FLOAT] = sigmoid_vf32;
    un_table[U_GELU][OQ_FLOAT] = gelu_vf32;
    un_table[U_CLIP][OQ_FLOAT] = clip_vf32;
    un_table[U_HARDSIGMOID][OQ_FLOAT] = hardsigmoid_vf32;
    un_table[U_HARDSWISH][OQ_FLOAT] = hardswish_vf32;
    un_table[U_LEAKYRELU][OQ_FLOAT] = leakyrelu_vf32;
#define REG_I(DT, T, U, S, SG)                                                                        \
    un_table[U_ABS][DT] = abs_##S, un_table[U_NEG][DT] = neg_##S, un_table[U_SIGN][DT] = sign_##S;      \
    un_table[U_RELU][DT] = relu_##S, un_table[U_BITNOT][DT] = bitnot_##S, un_table[U_CLIP][DT] = clip_##S;
    OQ_EW_INT_TYPES(REG_I)
    un_table[U_NOT][OQ_BOOL] = not_b;
}

static un_fn un_lookup(un_op op, oq_dtype t)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, table_init);
    if (oq_ew_is_half(t))
        t = OQ_FLOAT;
    return (unsigned)t < OQ_DTYPE_COUNT ? un_table[op][t] : NULL;
}

/* ---- driver ---- */

typedef struct un_job {
    un_fn fn;
    un_params p;
    const char *x;
    char *y;
    oq_dtype tin;
    size_t esi, eso;
    bool out_same; /* output dtype equals input dtype (else bool) */
} un_job;

static void un_range(void *ctx, size_t s, size_t e)
{
    const un_job *j = ctx;
    if (!oq_ew_is_half(j->tin)) {
        j->fn(j->x + s * j->esi, j->y + s * j->eso, e - s, &j->p);
        return;
    }
    float fx[256], fy[256];
    const uint16_t *x = (const uint16_t *)j->x;
    bool f16 = j->tin == OQ_FLOAT16;
    for (size_t b = s; b < e; b += 256) {
        size_t m = e - b < 256 ? e - b : 256;
        for (size_t i = 0; i < m; i++)
            fx[i] = f16 ? oq_half_to_float(x[b + i]) : oq_bf16_to_float(x[b + i]);
        if (j->out_same) {
            j->fn(fx, fy, m, &j->p);
            uint16_t *y = (uint16_t *)j->y;
            for (size_t i = 0; i < m; i++)
                y[b + i] = f16 ? oq_float_to_half(fy[i]) : oq_float_to_bf16(fy[i]);
        } else {
            j->fn(fx, j->y + b * j->eso, m, &j->p);
        }
    }
}

static bool un_to_bool(un_op op) { return op == U_ISNAN || op == U_ISINF; }

static oq_status un_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out, un_op op)
{
    if (n->n_inputs < 1 || !in[0])
        return oq_op_error(n, OQ_E_INVALID_ARG, "input 0 is missing");
    if (!un_lookup(op, in[0]->dtype))
        return oq_op_error(n, OQ_E_TYPE, "type %s is not supported", oq_dtype_name(in[0]->dtype));
    oq_set_shape(out[0], un_to_bool(op) ? OQ_BOOL : in[0]->dtype, in[0]->ndim, in[0]->dims);
    return OQ_OK;
}

/* Lowest/highest value of a dtype, for Clip's missing bounds. */
static void type_range(oq_dtype t, double *lo, double *hi)
{
    switch (t) {
    case OQ_INT8: *lo = INT8_MIN, *hi = INT8_MAX; break;
    case OQ_INT16: *lo = INT16_MIN, *hi = INT16_MAX; break;
    case OQ_INT32: *lo = INT32_MIN, *hi = INT32_MAX; break;
    case OQ_INT64: *lo = (double)INT64_MIN, *hi = (double)INT64_MAX; break;
    case OQ_UINT8: *lo = 0, *hi = UINT8_MAX; break;
    case OQ_UINT16: *lo = 0, *hi = UINT16_MAX; break;
    case OQ_UINT32: *lo = 0, *hi = UINT32_MAX; break;
    case OQ_UINT64: *lo = 0, *hi = (double)UINT64_MAX; break;
    default: *lo = -INFINITY, *hi = INFINITY; break;
    }
}

static oq_status un_params_read(oq_op_node *n, const oq_tensor *const *in, un_op op, un_params *p)
{
    const oq_node *nd = n->node;
    p->vm = oq_f32_vmath();
    p->mode = 0;
    p->alpha = p->beta = p->gamma = 0;
    switch (op) {
    case U_LEAKYRELU: p->alpha = oq_node_attr_float(nd, "alpha", 0.01f); break;
    case U_ELU: case U_CELU: case U_THRESHOLDEDRELU: p->alpha = oq_node_attr_float(nd, "alpha", 1.0f); break;
    case U_SELU:
        p->alpha = oq_node_attr_float(nd, "alpha", 1.67326319217681884765625f);
        p->gamma = oq_node_attr_float(nd, "gamma", 1.05070102214813232421875f);
        break;
    case U_HARDSIGMOID:
        p->alpha = oq_node_attr_float(nd, "alpha", 0.2f);
        p->beta = oq_node_attr_float(nd, "beta", 0.5f);
        break;
    case U_SHRINK:
        p->alpha = oq_node_attr_float(nd, "lambd", 0.5f);
        p->beta = oq_node_attr_float(nd, "bias", 0.0f);
        break;
    case U_GELU: {
        const char *a = oq_node_attr_string(nd, "approximate", "none");
        if (!strcmp(a, "tanh"))
            p->mode = 1;
        else if (strcmp(a, "none"))
            return oq_op_error(n, OQ_E_INVALID_ARG, "approximate must be 'none' or 'tanh', got '%s'", a);
        break;
    }
    case U_ISINF:
        p->mode = (oq_node_attr_int(nd, "detect_positive", 1) ? 1 : 0) | (oq_node_attr_int(nd, "detect_negative", 1) ? 2 : 0);
        break;
    case U_CLIP: {
        type_range(in[0]->dtype, &p->alpha, &p->beta);
        if (n->opset < 11) {
            p->alpha = oq_node_attr_float(nd, "min", -FLT_MAX);
            p->beta = oq_node_attr_float(nd, "max", FLT_MAX);
            break;
        }
        for (size_t k = 1; k < 3 && k < n->n_inputs; k++) {
            const oq_tensor *b = in[k];
            if (!b)
                continue;
            if (b->dtype != in[0]->dtype)
                return oq_op_error(n, OQ_E_TYPE, "input %zu has type %s, expected %s", k, oq_dtype_name(b->dtype),
                                   oq_dtype_name(in[0]->dtype));
            if (oq_tensor_numel(b) != 1)
                return oq_op_error(n, OQ_E_SHAPE, "input %zu (%s) must be a scalar", k, k == 1 ? "min" : "max");
            double v = oq_ew_load(b->data, b->dtype, 0);
            if (k == 1)
                p->alpha = v;
            else
                p->beta = v;
        }
        break;
    }
    default: break;
    }
    return OQ_OK;
}

static oq_status un_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out, un_op op)
{
    un_job j;
    oq_status st = un_params_read(n, in, op, &j.p);
    if (st != OQ_OK)
        return st;
    j.fn = un_lookup(op, in[0]->dtype);
    if (!j.fn)
        return oq_op_error(n, OQ_E_TYPE, "type %s is not supported", oq_dtype_name(in[0]->dtype));
    j.x = in[0]->data;
    j.y = out[0]->data;
    j.tin = in[0]->dtype;
    j.esi = oq_dtype_size(in[0]->dtype);
    j.eso = oq_dtype_size(out[0]->dtype);
    j.out_same = !un_to_bool(op);
    /* Cheap kernels are memory bound: only split large tensors. */
    size_t serial_below = (op == U_RELU || op == U_CLIP || op == U_NEG || op == U_ABS) ? (1 << 17) : (1 << 14);
    oq_ew_parallel(n->tp, (size_t)oq_tensor_numel(in[0]), serial_below, 64, un_range, &j);
    return OQ_OK;
}

#define UN_OP(impl, OP)                                                                            \
    static oq_status infer_##impl(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out) \
    {                                                                                              \
        return un_infer(n, in, out, OP);                                                           \
    }                                                                                              \
    static oq_status run_##impl(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)  \
    {                                                                                              \
        return un_run(n, in, out, OP);                                                             \
    }                                                                                              \
    const oq_op_def oq_op_##impl = {NULL, infer_##impl, run_##impl, NULL};

UN_OP(abs, U_ABS)
UN_OP(neg, U_NEG)
UN_OP(exp, U_EXP)
UN_OP(log, U_LOG)
UN_OP(sqrt, U_SQRT)
UN_OP(reciprocal, U_RECIPROCAL)
UN_OP(floor, U_FLOOR)
UN_OP(ceil, U_CEIL)
UN_OP(round, U_ROUND)
UN_OP(sign, U_SIGN)
UN_OP(sin, U_SIN)
UN_OP(cos, U_COS)
UN_OP(tan, U_TAN)
UN_OP(asin, U_ASIN)
UN_OP(acos, U_ACOS)
UN_OP(atan, U_ATAN)
UN_OP(sinh, U_SINH)
UN_OP(cosh, U_COSH)
UN_OP(asinh, U_ASINH)
UN_OP(acosh, U_ACOSH)
UN_OP(atanh, U_ATANH)
UN_OP(erf, U_ERF)
UN_OP(tanh, U_TANH)
UN_OP(sigmoid, U_SIGMOID)
UN_OP(relu, U_RELU)
UN_OP(leaky_relu, U_LEAKYRELU)
UN_OP(elu, U_ELU)
UN_OP(selu, U_SELU)
UN_OP(celu, U_CELU)
UN_OP(hard_sigmoid, U_HARDSIGMOID)
UN_OP(hard_swish, U_HARDSWISH)
UN_OP(softplus, U_SOFTPLUS)
UN_OP(softsign, U_SOFTSIGN)
UN_OP(thresholded_relu, U_THRESHOLDEDRELU)
UN_OP(gelu, U_GELU)
UN_OP(mish, U_MISH)
UN_OP(shrink, U_SHRINK)
UN_OP(clip, U_CLIP)
UN_OP(not, U_NOT)
UN_OP(bitwise_not, U_BITNOT)
UN_OP(isnan, U_ISNAN)
UN_OP(isinf, U_ISINF)

/* ---- Cast / CastLike ---- */

static bool cast_supported(oq_dtype t) { return oq_ew_is_float(t) || oq_ew_is_int(t) || t == OQ_BOOL || t == OQ_STRING; }

static inline int64_t load_i64(const void *p, oq_dtype t, size_t i)
{
    switch (t) {
    case OQ_INT8: return ((const int8_t *)p)[i];
    case OQ_INT16: return ((const int16_t *)p)[i];
    case OQ_INT32: return ((const int32_t *)p)[i];
    case OQ_INT64: return ((const int64_t *)p)[i];
    case OQ_UINT8: return ((const uint8_t *)p)[i];
    case OQ_UINT16: return ((const uint16_t *)p)[i];
    case OQ_UINT32: return ((const uint32_t *)p)[i];
    case OQ_UINT64: return (int64_t)((const uint64_t *)p)[i];
    case OQ_BOOL: return ((const uint8_t *)p)[i] != 0;
    default: return 0;
    }
}

/* Integer to integer casts wrap modulo the width, as numpy's astype does. */
static inline void store_i64(void *p, oq_dtype t, size_t i, int64_t v)
{
    switch (t) {
    case OQ_INT8: ((int8_t *)p)[i] = (int8_t)(uint8_t)v; break;
    case OQ_INT16: ((int16_t *)p)[i] = (int16_t)(uint16_t)v; break;
    case OQ_INT32: ((int32_t *)p)[i] = (int32_t)(uint32_t)v; break;
    case OQ_INT64: ((int64_t *)p)[i] = v; break;
    case OQ_UINT8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case OQ_UINT16: ((uint16_t *)p)[i] = (uint16_t)v; break;
    case OQ_UINT32: ((uint32_t *)p)[i] = (uint32_t)v; break;
    case OQ_UINT64: ((uint64_t *)p)[i] = (uint64_t)v; break;
    case OQ_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    default: break;
    }
}

/* Shortest decimal text that reads back to the same value (numpy's str of float32/float64). */
static void format_float(char *buf, size_t n, double v, bool single)
{
    if (v != v) {
        snprintf(buf, n, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, n, v > 0 ? "inf" : "-inf");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (single ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v)
            return;
    }
}

static oq_status cast_strings(oq_op_node *n, const oq_tensor *x, oq_tensor *y, size_t cnt)
{
    char buf[64];
    for (size_t i = 0; i < cnt; i++) {
        if (x->dtype == OQ_STRING && y->dtype == OQ_STRING) {
            const char *src = ((char *const *)x->data)[i];
            ((char **)y->data)[i] = oq_strdup(src ? src : "");
        } else if (x->dtype == OQ_STRING) {
            const char *src = ((char *const *)x->data)[i];
            src = src ? src : "";
            if (oq_ew_is_int(y->dtype) && y->dtype != OQ_UINT64)
                store_i64(y->data, y->dtype, i, strtoll(src, NULL, 10));
            else if (y->dtype == OQ_UINT64)
                ((uint64_t *)y->data)[i] = strtoull(src, NULL, 10);
            else
                oq_ew_store(y->data, y->dtype, i, strtod(src, NULL));
            continue;
        } else {
            if (oq_ew_is_float(x->dtype))
                format_float(buf, sizeof buf, oq_ew_load(x->data, x->dtype, i), x->dtype != OQ_DOUBLE);
            else if (x->dtype == OQ_UINT64)
                snprintf(buf, sizeof buf, "%llu", (unsigned long long)((const uint64_t *)x->data)[i]);
            else
                snprintf(buf, sizeof buf, "%lld", (long long)load_i64(x->data, x->dtype, i));
            ((char **)y->data)[i] = oq_strdup(buf);
        }
        if (!((char **)y->data)[i])
            return oq_op_error(n, OQ_E_NOMEM, "out of memory");
    }
    return OQ_OK;
}

typedef struct cast_job {
    const void *x;
    void *y;
    oq_dtype from, to;
} cast_job;

static void cast_range(void *ctx, size_t s, size_t e)
{
    const cast_job *j = ctx;
    oq_dtype f = j->from, t = j->to;
    if (f == OQ_FLOAT && t == OQ_FLOAT16) {
        for (size_t i = s; i < e; i++)
            ((uint16_t *)j->y)[i] = oq_float_to_half(((const float *)j->x)[i]);
    } else if (f == OQ_FLOAT16 && t == OQ_FLOAT) {
        for (size_t i = s; i < e; i++)
            ((float *)j->y)[i] = oq_half_to_float(((const uint16_t *)j->x)[i]);
    } else if (f == OQ_INT64 && t == OQ_FLOAT) {
        OQ_EW_BLOCKED(e - s, ((float *)j->y)[s + i] = (float)((const int64_t *)j->x)[s + i]);
    } else if (f == OQ_INT32 && t == OQ_FLOAT) {
        OQ_EW_BLOCKED(e - s, ((float *)j->y)[s + i] = (float)((const int32_t *)j->x)[s + i]);
    } else if (f == OQ_INT64 && t == OQ_INT32) {
        OQ_EW_BLOCKED(e - s, ((int32_t *)j->y)[s + i] = (int32_t)((const int64_t *)j->x)[s + i]);
    } else if (f == OQ_INT32 && t == OQ_INT64) {
        OQ_EW_BLOCKED(e - s, ((int64_t *)j->y)[s + i] = ((const int32_t *)j->x)[s + i]);
    } else if (f == OQ_DOUBLE && oq_ew_is_half(t)) {
        /* through float, as onnxruntime does */
        for (size_t i = s; i < e; i++)
            oq_ew_store(j->y, t, i, (float)((const double *)j->x)[i]);
    } else if (!oq_ew_is_float(f) && !oq_ew_is_float(t)) {
        for (size_t i = s; i < e; i++)
            store_i64(j->y, t, i, load_i64(j->x, f, i));
    } else if (f == OQ_UINT64) {
        for (size_t i = s; i < e; i++)
            oq_ew_store(j->y, t, i, (double)((const uint64_t *)j->x)[i]);
    } else if (f == OQ_FLOAT && t == OQ_BOOL) {
        for (size_t i = s; i < e; i++)
            ((uint8_t *)j->y)[i] = ((const float *)j->x)[i] != 0.0f;
    } else {
        for (size_t i = s; i < e; i++)
            oq_ew_store(j->y, t, i, oq_ew_load(j->x, f, i));
    }
}

static oq_status cast_target(oq_op_node *n, const oq_tensor *const *in, oq_dtype *to)
{
    if (n->n_inputs < 1 || !in[0])
        return oq_op_error(n, OQ_E_INVALID_ARG, "input 0 is missing");
    bool like = !strcmp(n->node->op_type, "CastLike");
    if (like) {
        if (n->n_inputs < 2 || !in[1])
            return oq_op_error(n, OQ_E_INVALID_ARG, "input 1 (target_type) is missing");
        *to = in[1]->dtype;
    } else {
        const oq_attr *a = oq_node_attr(n->node, "to");
        if (!a || a->type != OQ_ATTR_INT)
            return oq_op_error(n, OQ_E_INVALID_ARG, "attribute 'to' is missing");
        if (a->i <= 0 || a->i >= OQ_DTYPE_COUNT)
            return oq_op_error(n, OQ_E_UNSUPPORTED, "cast to type %lld is not supported", (long long)a->i);
        *to = (oq_dtype)a->i;
    }
    if (!cast_supported(*to) || !cast_supported(in[0]->dtype))
        return oq_op_error(n, OQ_E_UNSUPPORTED, "cast from %s to %s is not supported", oq_dtype_name(in[0]->dtype),
                           oq_dtype_name(*to));
    return OQ_OK;
}

static oq_status cast_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_dtype to = OQ_UNDEFINED;
    oq_status st = cast_target(n, in, &to);
    if (st != OQ_OK)
        return st;
    oq_set_shape(out[0], to, in[0]->ndim, in[0]->dims);
    return OQ_OK;
}

static oq_status cast_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    cast_job j = {in[0]->data, out[0]->data, in[0]->dtype, out[0]->dtype};
    size_t cnt = (size_t)oq_tensor_numel(in[0]);
    if (j.from == OQ_STRING || j.to == OQ_STRING)
        return cast_strings(n, in[0], out[0], cnt);
    if (j.from == j.to) {
        if (cnt)
            memcpy(j.y, j.x, cnt * oq_dtype_size(j.from));
        return OQ_OK;
    }
    oq_ew_parallel(n->tp, cnt, 1 << 16, 64, cast_range, &j);
    return OQ_OK;
}

const oq_op_def oq_op_cast = {NULL, cast_infer, cast_run, NULL};
const oq_op_def oq_op_cast_like = {NULL, cast_infer, cast_run, NULL};
