/* ops/reduce: Reduce* operators (axes as attribute or, from opset 13/18, as an
 * input), ArgMax/ArgMin and CumSum. Float reductions over trailing axes take a
 * vectorized row path; every other case accumulates in double through a generic walk. */
#include "ops/elementwise.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

typedef enum red_op { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_L1, R_L2, R_LOGSUM, R_LOGSUMEXP, R_SUMSQUARE } red_op;

typedef struct red_plan {
    bool noop;                   /* empty axes with noop_with_empty_axes: output = input */
    bool reduced[OQ_MAX_DIMS];   /* per input dim */
    int out_nd;
    int64_t out_dims[OQ_MAX_DIMS];
    /* coalesced view: groups of neighbouring dims with the same flag */
    int ng;
    int64_t gdim[OQ_MAX_DIMS];
    bool gred[OQ_MAX_DIMS];
    size_t count; /* elements reduced into each output */
} red_plan;

/* Axes come from the attribute before opset 13 (ReduceSum) / 18 (the others), from input 1 after. */
static oq_status red_axes(oq_op_node *n, const oq_tensor *const *in, bool axes_input, int64_t *axes, size_t *n_axes)
{
    *n_axes = 0;
    if (axes_input) {
        if (n->n_inputs < 2 || !in[1])
            return OQ_OK;
        const oq_tensor *a = in[1];
        if (a->dtype != OQ_INT64 && a->dtype != OQ_INT32)
            return oq_op_error(n, OQ_E_TYPE, "axes must be int64, got %s", oq_dtype_name(a->dtype));
        int64_t cnt = oq_tensor_numel(a);
        if (cnt > OQ_MAX_DIMS)
            return oq_op_error(n, OQ_E_INVALID_ARG, "too many axes (%lld)", (long long)cnt);
        for (int64_t i = 0; i < cnt; i++)
            axes[i] = oq_tensor_get_i64(a, i);
        *n_axes = (size_t)cnt;
        return OQ_OK;
    }
    const int64_t *v;
    size_t cnt = oq_node_attr_ints(n->node, "axes", &v);
    if (cnt > OQ_MAX_DIMS)
        return oq_op_error(n, OQ_E_INVALID_ARG, "too many axes (%zu)", cnt);
    if (cnt)
        memcpy(axes, v, cnt * sizeof *axes);
    *n_axes = cnt;
    return OQ_OK;
}

static oq_status red_make_plan(oq_op_node *n, const oq_tensor *const *in, red_op op, red_plan *p)
{
    if (n->n_inputs < 1 || !in[0])
        return oq_op_error(n, OQ_E_INVALID_ARG, "input 0 is missing");
    const oq_tensor *x = in[0];
    if (!(oq_ew_is_float(x->dtype) || oq_ew_is_int(x->dtype)))
        return oq_op_error(n, OQ_E_TYPE, "type %s is not supported", oq_dtype_name(x->dtype));
    bool axes_input = n->opset >= 18 || (op == R_SUM && n->opset >= 13);
    int64_t axes[OQ_MAX_DIMS];
    size_t n_axes;
    oq_status st = red_axes(n, in, axes_input, axes, &n_axes);
    if (st != OQ_OK)
        return st;
    int keep = (int)oq_node_attr_int(n->node, "keepdims", 1);
    int noop_empty = (int)oq_node_attr_int(n->node, "noop_with_empty_axes", 0);
    int r = x->ndim;
    memset(p, 0, sizeof *p);
    p->noop = n_axes == 0 && noop_empty;
    for (int d = 0; d < r; d++)
        p->reduced[d] = n_axes == 0 && !p->noop;
    for (size_t k = 0; k < n_axes; k++) {
        int a;
        if (r == 0 && (axes[k] == 0 || axes[k] == -1))
            continue;
        st = oq_norm_axis(n, axes[k], r, &a);
        if (st != OQ_OK)
            return st;
        p->reduced[a] = true;
    }
    p->count = 1;
    for (int d = 0; d < r; d++) {
        if (p->reduced[d]) {
            p->count *= (size_t)x->dims[d];
            if (keep)
                p->out_dims[p->out_nd++] = 1;
        } else {
            p->out_dims[p->out_nd++] = x->dims[d];
        }
    }
    for (int d = 0; d < r; d++) {
        if (x->dims[d] == 1)
            continue;
        if (p->ng > 0 && p->gred[p->ng - 1] == p->reduced[d]) {
            p->gdim[p->ng - 1] *= x->dims[d];
        } else {
            p->gdim[p->ng] = x->dims[d];
            p->gred[p->ng] = p->reduced[d];
            p->ng++;
        }
    }
    return OQ_OK;
}

static inline double red_pre(red_op op, double v)
{
    switch (op) {
    case R_L1: return fabs(v);
    case R_L2: case R_SUMSQUARE: return v * v;
    default: return v;
    }
}

static inline double red_init(red_op op)
{
    switch (op) {
    case R_MAX: return -INFINITY;
    case R_MIN: return INFINITY;
    case R_PROD: return 1.0;
    default: return 0.0;
    }
}

static inline double red_post(red_op op, double acc, size_t count)
{
    switch (op) {
    case R_MEAN: return acc / (double)count;
    case R_L2: return sqrt(acc);
    case R_LOGSUM: return log(acc);
    default: return acc;
    }
}

/* ---- float rows: innermost group reduced, contiguous runs of `len` elements ---- */

typedef struct red_rows_job {
    const float *x;
    float *y;
    size_t len;
    red_op op;
} red_rows_job;

static float row_reduce_f32(const float *restrict x, size_t n, red_op op)
{
    float acc[16];
    size_t i = 0;
    float r;
    if (op == R_MAX || op == R_MIN) {
        r = x[0];
        if (n >= 16) {
            for (int k = 0; k < 16; k++)
                acc[k] = x[k];
            for (i = 16; i + 16 <= n; i += 16) {
                if (op == R_MAX)
                    for (int k = 0; k < 16; k++)
                        acc[k] = x[i + k] > acc[k] ? x[i + k] : acc[k];
                else
                    for (int k = 0; k < 16; k++)
                        acc[k] = x[i + k] < acc[k] ? x[i + k] : acc[k];
            }
            for (int k = 0; k < 16; k++)
                r = op == R_MAX ? (acc[k] > r ? acc[k] : r) : (acc[k] < r ? acc[k] : r);
        }
        for (; i < n; i++)
            r = op == R_MAX ? (x[i] > r ? x[i] : r) : (x[i] < r ? x[i] : r);
        return r;
    }
    for (int k = 0; k < 16; k++)
        acc[k] = 0.0f;
    if (op == R_L2 || op == R_SUMSQUARE) {
        for (; i + 16 <= n; i += 16)
            for (int k = 0; k < 16; k++)
                acc[k] += x[i + k] * x[i + k];
    } else if (op == R_L1) {
        for (; i + 16 <= n; i += 16)
            for (int k = 0; k < 16; k++)
                acc[k] += fabsf(x[i + k]);
    } else {
        for (; i + 16 <= n; i += 16)
            for (int k = 0; k < 16; k++)
                acc[k] += x[i + k];
    }
    double s = 0.0;
    for (int k = 0; k < 16; k++)
        s += acc[k];
    for (; i < n; i++)
        s += red_pre(op, x[i]);
    return (float)red_post(op, s, n);
}

static void red_rows_range(void *ctx, size_t s, size_t e)
{
    const red_rows_job *j = ctx;
    for (size_t r = s; r < e; r++)
        j->y[r] = row_reduce_f32(j->x + r * j->len, j->len, j->op);
}

/* ---- generic walk in double ---- */

static void red_generic(const red_plan *p, red_op op, const oq_tensor *x, oq_tensor *y, double *acc, double *mx)
{
    size_t out_n = (size_t)oq_tensor_numel(y);
    size_t total = (size_t)oq_tensor_numel(x);
    /* output strides of each group (0 for reduced groups) */
    size_t ostr[OQ_MAX_DIMS], s = 1;
    for (int g = p->ng - 1; g >= 0; g--) {
        ostr[g] = p->gred[g] ? 0 : s;
        if (!p->gred[g])
            s *= (size_t)p->gdim[g];
    }
    int passes = op == R_LOGSUMEXP ? 2 : 1;
    for (int pass = 0; pass < passes; pass++) {
        bool max_pass = passes == 2 && pass == 0;
        for (size_t o = 0; o < out_n; o++)
            acc[o] = max_pass ? -INFINITY : red_init(op);
        size_t idx[OQ_MAX_DIMS] = {0}, o = 0;
        for (size_t i = 0; i < total; i++) {
            double v = oq_ew_load(x->data, x->dtype, i);
            if (max_pass) {
                if (v > acc[o])
                    acc[o] = v;
            } else if (op == R_LOGSUMEXP) {
                acc[o] += exp(v - mx[o]);
            } else if (op == R_MAX) {
                if (v > acc[o] || v != v)
                    acc[o] = v;
            } else if (op == R_MIN) {
                if (v < acc[o] || v != v)
                    acc[o] = v;
            } else if (op == R_PROD) {
                acc[o] *= v;
            } else {
                acc[o] += red_pre(op, v);
            }
            /* odometer over the groups, tracking the output offset */
            for (int g = p->ng - 1; g >= 0; g--) {
                o += ostr[g];
                if (++idx[g] < (size_t)p->gdim[g])
                    break;
                o -= ostr[g] * (size_t)p->gdim[g];
                idx[g] = 0;
            }
        }
        if (max_pass) {
            for (size_t k = 0; k < out_n; k++)
                mx[k] = isinf(acc[k]) ? 0.0 : acc[k];
        }
    }
    for (size_t k = 0; k < out_n; k++) {
        double v = op == R_LOGSUMEXP ? log(acc[k]) + mx[k] : red_post(op, acc[k], p->count);
        oq_ew_store(y->data, y->dtype, k, v);
    }
}

static oq_status red_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out, red_op op)
{
    red_plan p;
    oq_status st = red_make_plan(n, in, op, &p);
    if (st != OQ_OK)
        return st;
    if (p.noop)
        oq_set_shape(out[0], in[0]->dtype, in[0]->ndim, in[0]->dims);
    else
        oq_set_shape(out[0], in[0]->dtype, p.out_nd, p.out_dims);
    return OQ_OK;
}

static oq_status red_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out, red_op op)
{
    red_plan p;
    oq_status st = red_make_plan(n, in, op, &p);
    if (st != OQ_OK)
        return st;
    const oq_tensor *x = in[0];
    oq_tensor *y = out[0];
    size_t out_n = (size_t)oq_tensor_numel(y);
    if (p.noop) {
        memcpy(y->data, x->data, (size_t)oq_tensor_numel(x) * oq_dtype_size(x->dtype));
        return OQ_OK;
    }
    if (out_n == 0)
        return OQ_OK;
    if (p.count == 0 || oq_tensor_numel(x) == 0) {
        /* reducing nothing: the identity of the operation (log 0 = -inf for LogSum*) */
        double v = op == R_LOGSUMEXP ? -INFINITY : red_post(op, red_init(op), 1);
        for (size_t k = 0; k < out_n; k++)
            oq_ew_store(y->data, y->dtype, k, v);
        return OQ_OK;
    }
    /* Only the innermost group reduced (groups alternate, so at most two groups):
     * each output is one contiguous run of the input. */
    bool fast_op = op != R_PROD && op != R_LOGSUMEXP;
    if (x->dtype == OQ_FLOAT && fast_op && p.ng >= 1 && p.ng <= 2 && p.gred[p.ng - 1]) {
        red_rows_job j = {x->data, y->data, (size_t)p.gdim[p.ng - 1], op};
        oq_ew_parallel(n->tp, out_n, j.len >= 256 ? 64 : 4096, 1, red_rows_range, &j);
        return OQ_OK;
    }
    double *acc = oq_malloc(out_n * sizeof(double) * 2);
    if (!acc)
        return oq_op_error(n, OQ_E_NOMEM, "out of memory");
    red_generic(&p, op, x, y, acc, acc + out_n);
    free(acc);
    return OQ_OK;
}

#define RED_OP(impl, OP)                                                                           \
    static oq_status infer_##impl(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out) \
    {                                                                                              \
        return red_infer(n, in, out, OP);                                                          \
    }                                                                                              \
    static oq_status run_##impl(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)  \
    {                                                                                              \
        return red_run(n, in, out, OP);                                                            \
    }                                                                                              \
    const oq_op_def oq_op_##impl = {NULL, infer_##impl, run_##impl, NULL};

RED_OP(reduce_sum, R_SUM)
RED_OP(reduce_mean, R_MEAN)
RED_OP(reduce_max, R_MAX)
RED_OP(reduce_min, R_MIN)
RED_OP(reduce_prod, R_PROD)
RED_OP(reduce_l1, R_L1)
RED_OP(reduce_l2, R_L2)
RED_OP(reduce_log_sum, R_LOGSUM)
RED_OP(reduce_log_sum_exp, R_LOGSUMEXP)
RED_OP(reduce_sum_square, R_SUMSQUARE)

/* ---- ArgMax / ArgMin ---- */

static oq_status arg_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    if (n->n_inputs < 1 || !in[0])
        return oq_op_error(n, OQ_E_INVALID_ARG, "input 0 is missing");
    const oq_tensor *x = in[0];
    if (!(oq_ew_is_float(x->dtype) || oq_ew_is_int(x->dtype)))
        return oq_op_error(n, OQ_E_TYPE, "type %s is not supported", oq_dtype_name(x->dtype));
    int axis;
    oq_status st = oq_norm_axis(n, oq_node_attr_int(n->node, "axis", 0), x->ndim, &axis);
    if (st != OQ_OK)
        return st;
    if (x->ndim == 0 || x->dims[axis] == 0)
        return oq_op_error(n, OQ_E_SHAPE, "cannot take the arg of an empty axis");
    int64_t dims[OQ_MAX_DIMS];
    int nd = 0;
    bool keep = oq_node_attr_int(n->node, "keepdims", 1) != 0;
    for (int d = 0; d < x->ndim; d++) {
        if (d != axis)
            dims[nd++] = x->dims[d];
        else if (keep)
            dims[nd++] = 1;
    }
    oq_set_shape(out[0], OQ_INT64, nd, dims);
    return OQ_OK;
}

static oq_status arg_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    const oq_tensor *x = in[0];
    int axis;
    oq_status st = oq_norm_axis(n, oq_node_attr_int(n->node, "axis", 0), x->ndim, &axis);
    if (st != OQ_OK)
        return st;
    bool is_max = !strcmp(n->node->op_type, "ArgMax");
    bool last = oq_node_attr_int(n->node, "select_last_index", 0) != 0;
    size_t outer = oq_ew_span(x->dims, 0, axis), len = (size_t)x->dims[axis];
    size_t inner = oq_ew_span(x->dims, axis + 1, x->ndim);
    int64_t *y = out[0]->data;
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < inner; i++) {
            size_t base = o * len * inner + i, best = 0;
            double bv = oq_ew_load(x->data, x->dtype, base);
            for (size_t k = 1; k < len; k++) {
                double v = oq_ew_load(x->data, x->dtype, base + k * inner);
                bool better = is_max ? (last ? v >= bv : v > bv) : (last ? v <= bv : v < bv);
                if (better) {
                    bv = v;
                    best = k;
                }
            }
            y[o * inner + i] = (int64_t)best;
        }
    return OQ_OK;
}

const oq_op_def oq_op_arg_max = {NULL, arg_infer, arg_run, NULL};
const oq_op_def oq_op_arg_min = {NULL, arg_infer, arg_run, NULL};

/* ---- CumSum ---- */

static oq_status cumsum_axis(oq_op_node *n, const oq_tensor *const *in, int *axis)
{
    if (n->n_inputs != 2 || !in[0] || !in[1])
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects 2 inputs (x, axis)");
    if ((in[1]->dtype != OQ_INT32 && in[1]->dtype != OQ_INT64) || oq_tensor_numel(in[1]) != 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "axis must be an int32/int64 scalar");
    return oq_norm_axis(n, oq_tensor_get_i64(in[1], 0), in[0]->ndim, axis);
}

static oq_status cumsum_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    int axis;
    oq_status st = cumsum_axis(n, in, &axis);
    if (st != OQ_OK)
        return st;
    if (!(oq_ew_is_float(in[0]->dtype) || oq_ew_is_int(in[0]->dtype)))
        return oq_op_error(n, OQ_E_TYPE, "type %s is not supported", oq_dtype_name(in[0]->dtype));
    oq_set_shape(out[0], in[0]->dtype, in[0]->ndim, in[0]->dims);
    return OQ_OK;
}

#define CUMSUM_LOOP(T, ACC)                                                                 \
    do {                                                                                    \
        const T *x = in[0]->data;                                                           \
        T *y = out[0]->data;                                                                \
        for (size_t o = 0; o < outer; o++)                                                  \
            for (size_t i = 0; i < inner; i++) {                                            \
                ACC acc = 0;                                                                \
                for (size_t kk = 0; kk < len; kk++) {                                       \
                    size_t k = rev ? len - 1 - kk : kk;                                     \
                    size_t at = (o * len + k) * inner + i;                                  \
                    T v = x[at];                                                            \
                    if (excl) {                                                             \
                        y[at] = (T)acc;                                                     \
                        acc += v;                                                           \
                    } else {                                                                \
                        acc += v;                                                           \
                        y[at] = (T)acc;                                                     \
                    }                                                                       \
                }                                                                           \
            }                                                                               \
    } while (0)

static oq_status cumsum_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    int axis;
    oq_status st = cumsum_axis(n, in, &axis);
    if (st != OQ_OK)
        return st;
    const oq_tensor *t = in[0];
    bool excl = oq_node_attr_int(n->node, "exclusive", 0) != 0;
    bool rev = oq_node_attr_int(n->node, "reverse", 0) != 0;
    size_t outer = oq_ew_span(t->dims, 0, axis), len = (size_t)(t->ndim ? t->dims[axis] : 1);
    size_t inner = oq_ew_span(t->dims, axis + 1, t->ndim);
    switch (t->dtype) {
    case OQ_FLOAT: CUMSUM_LOOP(float, double); break;
    case OQ_DOUBLE: CUMSUM_LOOP(double, double); break;
    case OQ_INT32: CUMSUM_LOOP(int32_t, uint32_t); break;
    case OQ_INT64: CUMSUM_LOOP(int64_t, uint64_t); break;
    case OQ_UINT32: CUMSUM_LOOP(uint32_t, uint32_t); break;
    case OQ_UINT64: CUMSUM_LOOP(uint64_t, uint64_t); break;
    default: {
        /* narrow and half types: accumulate in double */
        for (size_t o = 0; o < outer; o++)
            for (size_t i = 0; i < inner; i++) {
                double acc = 0;
                for (size_t kk = 0; kk < len; kk++) {
                    size_t k = rev ? len - 1 - kk : kk, at = (o * len + k) * inner + i;
                    double v = oq_ew_load(t->data, t->dtype, at);
                    if (excl)
                        oq_ew_store(out[0]->data, t->dtype, at, acc);
                    acc += v;
                    if (!excl)
                        oq_ew_store(out[0]->data, t->dtype, at, acc);
                }
            }
    }
    }
    return OQ_OK;
}

const oq_op_def oq_op_cum_sum = {NULL, cumsum_infer, cumsum_run, NULL};
