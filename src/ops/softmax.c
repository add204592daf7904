/* ops/softmax: Softmax, LogSoftmax and Hardmax. Before opset 13 the input is
 * coerced to 2-D at `axis` (default 1); from 13 the operation runs along `axis`
 * (default -1). Float rows along the last axis use the vectorized exp kernel. */
#include "ops/elementwise.h"
#include "kernels/f32-vmath/vmath.h"

#include <math.h>
#include <stdlib.h>

typedef enum sm_kind { SM_SOFTMAX, SM_LOG, SM_HARD } sm_kind;

typedef struct sm_geom {
    size_t outer, len, inner;
} sm_geom;

static oq_status sm_geometry(oq_op_node *n, const oq_tensor *x, sm_geom *g)
{
    bool legacy = n->opset < 13;
    int64_t axis_attr = oq_node_attr_int(n->node, "axis", legacy ? 1 : -1);
    int axis = 0;
    if (x->ndim > 0) {
        /* the legacy 2-D coercion accepts axis == rank (rows of one element) */
        if (legacy && axis_attr == x->ndim)
            axis = x->ndim;
        else {
            oq_status st = oq_norm_axis(n, axis_attr, x->ndim, &axis);
            if (st != OQ_OK)
                return st;
        }
    }
    g->outer = oq_ew_span(x->dims, 0, axis);
    if (legacy) {
        g->len = oq_ew_span(x->dims, axis, x->ndim);
        g->inner = 1;
    } else {
        g->len = x->ndim ? (size_t)x->dims[axis] : 1;
        g->inner = oq_ew_span(x->dims, axis + 1, x->ndim);
    }
    return OQ_OK;
}

static oq_status sm_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    if (n->n_inputs < 1 || !in[0])
        return oq_op_error(n, OQ_E_INVALID_ARG, "input 0 is missing");
    if (!oq_ew_is_float(in[0]->dtype))
        return oq_op_error(n, OQ_E_TYPE, "type %s is not supported", oq_dtype_name(in[0]->dtype));
    sm_geom g;
    oq_status st = sm_geometry(n, in[0], &g);
    if (st != OQ_OK)
        return st;
    oq_set_shape(out[0], in[0]->dtype, in[0]->ndim, in[0]->dims);
    return OQ_OK;
}

typedef struct sm_job {
    sm_kind kind;
    sm_geom g;
    const oq_tensor *x;
    oq_tensor *y;
    const oq_f32_vmath_table *vm;
} sm_job;

void oq_softmax_row_f32(const oq_f32_vmath_table *vm, const float *x, float *y, size_t len, float m)
{
    if (isinf(m)) {
        /* all -inf (or a +inf): fall back to the definition */
        for (size_t i = 0; i < len; i++)
            y[i] = x[i] == m ? 1.0f : 0.0f;
        float c = 0;
        for (size_t i = 0; i < len; i++)
            c += y[i];
        for (size_t i = 0; i < len; i++)
            y[i] = y[i] / c;
        return;
    }
    float sum = vm->vexp_sum(x, y, len, m);
    float inv = 1.0f / sum;
    OQ_EW_BLOCKED(len, y[i] = y[i] * inv);
}

/* rows of contiguous float: the hot path */
static void sm_rows_f32(void *ctx, size_t s, size_t e)
{
    const sm_job *j = ctx;
    size_t len = j->g.len;
    for (size_t r = s; r < e; r++) {
        const float *x = (const float *)j->x->data + r * len;
        float *y = (float *)j->y->data + r * len;
        float m = j->vm->vmax(x, len);
        if (j->kind == SM_HARD) {
            size_t best = 0;
            while (x[best] != m && best + 1 < len)
                best++;
            memset(y, 0, len * sizeof *y);
            y[best] = 1.0f;
            continue;
        }
        if (j->kind == SM_SOFTMAX) {
            oq_softmax_row_f32(j->vm, x, y, len, m);
            continue;
        }
        if (isinf(m)) {
            /* all -inf (or a +inf): fall back to the definition */
            for (size_t i = 0; i < len; i++)
                y[i] = x[i] == m ? 1.0f : 0.0f;
            float c = 0;
            for (size_t i = 0; i < len; i++)
                c += y[i];
            for (size_t i = 0; i < len; i++)
                y[i] = logf(y[i] / c);
            continue;
        }
        float sum = j->vm->vexp_sum(x, y, len, m);
        float off = m + logf(sum);
        OQ_EW_BLOCKED(len, y[i] = x[i] - off);
    }
}

/* any layout and float type, in double: tasks are (outer, inner) columns */
static void sm_generic(void *ctx, size_t s, size_t e)
{
    const sm_job *j = ctx;
    size_t len = j->g.len, inner = j->g.inner;
    oq_dtype t = j->x->dtype;
    for (size_t c = s; c < e; c++) {
        size_t o = c / inner, i = c % inner, base = o * len * inner + i;
        double m = oq_ew_load(j->x->data, t, base);
        size_t best = 0;
        for (size_t k = 1; k < len; k++) {
            double v = oq_ew_load(j->x->data, t, base + k * inner);
            if (v > m) {
                m = v;
                best = k;
            }
        }
        if (j->kind == SM_HARD) {
            for (size_t k = 0; k < len; k++)
                oq_ew_store(j->y->data, t, base + k * inner, k == best ? 1.0 : 0.0);
            continue;
        }
        double sum = 0;
        for (size_t k = 0; k < len; k++)
            sum += exp(oq_ew_load(j->x->data, t, base + k * inner) - m);
        for (size_t k = 0; k < len; k++) {
            double v = oq_ew_load(j->x->data, t, base + k * inner) - m;
            oq_ew_store(j->y->data, t, base + k * inner, j->kind == SM_LOG ? v - log(sum) : exp(v) / sum);
        }
    }
}

static oq_status sm_run_kind(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out, sm_kind kind)
{
    sm_job j = {.kind = kind, .x = in[0], .y = out[0], .vm = oq_f32_vmath()};
    oq_status st = sm_geometry(n, in[0], &j.g);
    if (st != OQ_OK)
        return st;
    if (j.g.len == 0 || oq_tensor_numel(in[0]) == 0)
        return OQ_OK;
    if (in[0]->dtype == OQ_FLOAT && j.g.inner == 1)
        oq_ew_parallel(n->tp, j.g.outer, j.g.len >= 1024 ? 2 : (1 << 15) / j.g.len + 1, 1, sm_rows_f32, &j);
    else
        oq_ew_parallel(n->tp, j.g.outer * j.g.inner, (1 << 14) / j.g.len + 1, 1, sm_generic, &j);
    return OQ_OK;
}

static oq_status softmax_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return sm_run_kind(n, in, out, SM_SOFTMAX);
}
static oq_status log_softmax_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return sm_run_kind(n, in, out, SM_LOG);
}
static oq_status hardmax_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return sm_run_kind(n, in, out, SM_HARD);
}

const oq_op_def oq_op_softmax = {NULL, sm_infer, softmax_run, NULL};
const oq_op_def oq_op_log_softmax = {NULL, sm_infer, log_softmax_run, NULL};
const oq_op_def oq_op_hardmax = {NULL, sm_infer, hardmax_run, NULL};
