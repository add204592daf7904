/* ops/norm: normalization operators — BatchNormalization (inference, and
 * training-mode statistics), InstanceNormalization, LayerNormalization,
 * GroupNormalization, LpNormalization, MeanVarianceNormalization.
 * Float tensors take row kernels (statistics in double, the affine map in float). */
#include "ops/elementwise.h"

#include <math.h>
#include <stdlib.h>

static oq_status check_float_input(oq_op_node *n, const oq_tensor *const *in, size_t i)
{
    if (i >= n->n_inputs || !in[i])
        return oq_op_error(n, OQ_E_INVALID_ARG, "input %zu is missing", i);
    if (!oq_ew_is_float(in[i]->dtype))
        return oq_op_error(n, OQ_E_TYPE, "input %zu has unsupported type %s", i, oq_dtype_name(in[i]->dtype));
    return OQ_OK;
}

/* Per-channel parameter of length c (or 1, broadcast). */
static oq_status check_param(oq_op_node *n, const oq_tensor *const *in, size_t i, size_t c, const char *what)
{
    oq_status st = check_float_input(n, in, i);
    if (st != OQ_OK)
        return st;
    int64_t k = oq_tensor_numel(in[i]);
    if (k != (int64_t)c && k != 1)
        return oq_op_error(n, OQ_E_SHAPE, "%s has %lld elements, expected %zu", what, (long long)k, c);
    return OQ_OK;
}

static inline double param(const oq_tensor *t, size_t c)
{
    return oq_ew_load(t->data, t->dtype, oq_tensor_numel(t) == 1 ? 0 : c);
}

/* y[i] = x[i] * a + b over a plane; float fast path or through double. */
static void affine_plane(const oq_tensor *x, oq_tensor *y, size_t off, size_t len, double a, double b)
{
    if (x->dtype == OQ_FLOAT) {
        const float *xs = (const float *)x->data + off;
        float *ys = (float *)y->data + off;
        float fa = (float)a, fb = (float)b;
        OQ_EW_BLOCKED(len, ys[i] = xs[i] * fa + fb);
    } else {
        for (size_t i = 0; i < len; i++)
            oq_ew_store(y->data, y->dtype, off + i, oq_ew_load(x->data, x->dtype, off + i) * a + b);
    }
}

/* mean and population variance of a contiguous run */
static void moments(const oq_tensor *x, size_t off, size_t len, double *mean, double *var)
{
    double s = 0, ss = 0;
    if (x->dtype == OQ_FLOAT) {
        const float *p = (const float *)x->data + off;
        float acc[16] = {0};
        size_t i = 0;
        for (; i + 16 <= len; i += 16)
            for (int k = 0; k < 16; k++)
                acc[k] += p[i + k];
        for (int k = 0; k < 16; k++)
            s += acc[k];
        for (; i < len; i++)
            s += p[i];
        double m = len ? s / (double)len : 0.0;
        float fm = (float)m;
        float acc2[16] = {0};
        for (i = 0; i + 16 <= len; i += 16)
            for (int k = 0; k < 16; k++) {
                float d = p[i + k] - fm;
                acc2[k] += d * d;
            }
        for (int k = 0; k < 16; k++)
            ss += acc2[k];
        for (; i < len; i++)
            ss += ((double)p[i] - m) * ((double)p[i] - m);
        *mean = m;
        *var = len ? ss / (double)len : 0.0;
        return;
    }
    for (size_t i = 0; i < len; i++)
        s += oq_ew_load(x->data, x->dtype, off + i);
    double m = len ? s / (double)len : 0.0;
    for (size_t i = 0; i < len; i++) {
        double d = oq_ew_load(x->data, x->dtype, off + i) - m;
        ss += d * d;
    }
    *mean = m;
    *var = len ? ss / (double)len : 0.0;
}

/* ---- BatchNormalization ---- */

static oq_status bn_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    if (n->n_inputs != 5)
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects 5 inputs, got %zu", n->n_inputs);
    oq_status st = check_float_input(n, in, 0);
    if (st != OQ_OK)
        return st;
    const oq_tensor *x = in[0];
    if (x->ndim < 1)
        return oq_op_error(n, OQ_E_SHAPE, "input must have rank >= 1");
    size_t c = x->ndim > 1 ? (size_t)x->dims[1] : 1;
    static const char *names[] = {"", "scale", "B", "input_mean", "input_var"};
    for (size_t i = 1; i < 5 && st == OQ_OK; i++)
        st = check_param(n, in, i, c, names[i]);
    if (st != OQ_OK)
        return st;
    if (n->opset < 9 && oq_node_attr_int(n->node, "spatial", 1) == 0)
        return oq_op_error(n, OQ_E_UNSUPPORTED, "spatial=0 is not supported");
    oq_set_shape(out[0], x->dtype, x->ndim, x->dims);
    bool training = n->opset >= 14 && oq_node_attr_int(n->node, "training_mode", 0);
    for (size_t o = 1; o < n->n_outputs && o < 3; o++) {
        if (training && out[o]) {
            int64_t dc = (int64_t)c; /* one running statistic per channel, whatever shape the input stats had */
            oq_set_shape(out[o], in[3]->dtype, 1, &dc);
        }
        else if (out[o])
            out[o]->dtype = OQ_UNDEFINED; /* not produced in inference mode */
    }
    return OQ_OK;
}

static oq_status bn_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    const oq_tensor *x = in[0];
    size_t nb = (size_t)x->dims[0], c = x->ndim > 1 ? (size_t)x->dims[1] : 1;
    size_t plane = oq_ew_span(x->dims, 2, x->ndim);
    double eps = oq_node_attr_float(n->node, "epsilon", 1e-5f);
    bool training = n->opset >= 14 && oq_node_attr_int(n->node, "training_mode", 0);
    double momentum = oq_node_attr_float(n->node, "momentum", 0.9f);
    for (size_t ch = 0; ch < c; ch++) {
        double mean = param(in[3], ch), var = param(in[4], ch);
        if (training) {
            double s = 0, ss = 0;
            for (size_t b = 0; b < nb; b++) {
                double m, v;
                moments(x, (b * c + ch) * plane, plane, &m, &v);
                s += m;
                ss += v + m * m;
            }
            double bm = s / (double)nb, bv = ss / (double)nb - bm * bm;
            if (n->n_outputs > 1 && out[1] && out[1]->data)
                oq_ew_store(out[1]->data, out[1]->dtype, ch, mean * momentum + bm * (1 - momentum));
            if (n->n_outputs > 2 && out[2] && out[2]->data)
                oq_ew_store(out[2]->data, out[2]->dtype, ch, var * momentum + bv * (1 - momentum));
            mean = bm;
            var = bv;
        }
        double a = param(in[1], ch) / sqrt(var + eps);
        double b = param(in[2], ch) - mean * a;
        for (size_t bi = 0; bi < nb; bi++)
            affine_plane(x, out[0], (bi * c + ch) * plane, plane, a, b);
    }
    return OQ_OK;
}

const oq_op_def oq_op_batch_normalization = {NULL, bn_infer, bn_run, NULL};

/* ---- InstanceNormalization ---- */

static oq_status in_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    if (n->n_inputs != 3)
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects 3 inputs, got %zu", n->n_inputs);
    oq_status st = check_float_input(n, in, 0);
    if (st != OQ_OK)
        return st;
    if (in[0]->ndim < 2)
        return oq_op_error(n, OQ_E_SHAPE, "input must have rank >= 2");
    size_t c = (size_t)in[0]->dims[1];
    if ((st = check_param(n, in, 1, c, "scale")) != OQ_OK || (st = check_param(n, in, 2, c, "B")) != OQ_OK)
        return st;
    oq_set_shape(out[0], in[0]->dtype, in[0]->ndim, in[0]->dims);
    return OQ_OK;
}

typedef struct plane_job {
    const oq_tensor *const *in;
    oq_tensor *y;
    size_t c, plane, groups;
    double eps;
} plane_job;

static void in_planes(void *ctx, size_t s, size_t e)
{
    const plane_job *j = ctx;
    for (size_t p = s; p < e; p++) {
        size_t ch = p % j->c;
        double m, v;
        moments(j->in[0], p * j->plane, j->plane, &m, &v);
        double a = param(j->in[1], ch) / sqrt(v + j->eps);
        affine_plane(j->in[0], j->y, p * j->plane, j->plane, a, param(j->in[2], ch) - m * a);
    }
}

static oq_status in_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    const oq_tensor *x = in[0];
    plane_job j = {in, out[0], (size_t)x->dims[1], oq_ew_span(x->dims, 2, x->ndim), 1,
                   oq_node_attr_float(n->node, "epsilon", 1e-5f)};
    size_t planes = (size_t)x->dims[0] * j.c;
    oq_ew_parallel(n->tp, planes, j.plane >= 4096 ? 2 : (1 << 15) / (j.plane + 1) + 1, 1, in_planes, &j);
    return OQ_OK;
}

const oq_op_def oq_op_instance_normalization = {NULL, in_infer, in_run, NULL};

/* ---- GroupNormalization (opset 18: scale/bias per group; opset 21: per channel) ---- */

static oq_status gn_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    if (n->n_inputs != 3)
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects 3 inputs, got %zu", n->n_inputs);
    oq_status st = check_float_input(n, in, 0);
    if (st != OQ_OK)
        return st;
    const oq_tensor *x = in[0];
    int64_t g = oq_node_attr_int(n->node, "num_groups", 0);
    if (x->ndim < 2 || g <= 0 || x->dims[1] % g)
        return oq_op_error(n, OQ_E_INVALID_ARG, "num_groups %lld must divide the channel count", (long long)g);
    for (size_t i = 1; i < 3; i++) {
        if ((st = check_float_input(n, in, i)) != OQ_OK)
            return st;
        int64_t k = oq_tensor_numel(in[i]);
        if (k != g && k != x->dims[1])
            return oq_op_error(n, OQ_E_SHAPE, "input %zu has %lld elements, expected %lld or %lld", i, (long long)k,
                               (long long)g, (long long)x->dims[1]);
    }
    oq_set_shape(out[0], x->dtype, x->ndim, x->dims);
    return OQ_OK;
}

static void gn_groups(void *ctx, size_t s, size_t e)
{
    const plane_job *j = ctx;
    size_t cpg = j->c / j->groups, glen = cpg * j->plane;
    bool per_channel = (size_t)oq_tensor_numel(j->in[1]) == j->c && j->c != j->groups;
    for (size_t p = s; p < e; p++) {
        size_t g = p % j->groups;
        double m, v;
        moments(j->in[0], p * glen, glen, &m, &v);
        double inv = 1.0 / sqrt(v + j->eps);
        for (size_t k = 0; k < cpg; k++) {
            size_t ch = g * cpg + k, pi = per_channel ? ch : g;
            double a = param(j->in[1], pi) * inv;
            affine_plane(j->in[0], j->y, p * glen + k * j->plane, j->plane, a, param(j->in[2], pi) - m * a);
        }
    }
}

static oq_status gn_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    const oq_tensor *x = in[0];
    size_t groups = (size_t)oq_node_attr_int(n->node, "num_groups", 1);
    plane_job j = {in, out[0], (size_t)x->dims[1], oq_ew_span(x->dims, 2, x->ndim), groups,
                   oq_node_attr_float(n->node, "epsilon", 1e-5f)};
    oq_ew_parallel(n->tp, (size_t)x->dims[0] * groups, 2, 1, gn_groups, &j);
    return OQ_OK;
}

const oq_op_def oq_op_group_normalization = {NULL, gn_infer, gn_run, NULL};

/* ---- LayerNormalization ---- */

static oq_status ln_axis(oq_op_node *n, const oq_tensor *x, int *axis)
{
    return oq_norm_axis(n, oq_node_attr_int(n->node, "axis", -1), x->ndim, axis);
}

static oq_status ln_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    if (n->n_inputs < 2)
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects at least 2 inputs, got %zu", n->n_inputs);
    oq_status st = check_float_input(n, in, 0);
    if (st != OQ_OK)
        return st;
    const oq_tensor *x = in[0];
    int axis;
    if ((st = ln_axis(n, x, &axis)) != OQ_OK)
        return st;
    size_t len = oq_ew_span(x->dims, axis, x->ndim);
    if ((st = check_param(n, in, 1, len, "Scale")) != OQ_OK)
        return st;
    if (n->n_inputs > 2 && in[2] && (st = check_param(n, in, 2, len, "B")) != OQ_OK)
        return st;
    if (in[1]->dtype != x->dtype)
        return oq_op_error(n, OQ_E_TYPE, "Scale type %s differs from X type %s", oq_dtype_name(in[1]->dtype),
                           oq_dtype_name(x->dtype));
    if (n->n_inputs > 2 && in[2] && in[2]->dtype != x->dtype)
        return oq_op_error(n, OQ_E_TYPE, "B type %s differs from X type %s", oq_dtype_name(in[2]->dtype),
                           oq_dtype_name(x->dtype));
    oq_set_shape(out[0], x->dtype, x->ndim, x->dims);
    int64_t dims[OQ_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        dims[d] = d < axis ? x->dims[d] : 1;
    oq_dtype stash = (oq_dtype)oq_node_attr_int(n->node, "stash_type", OQ_FLOAT);
    for (size_t o = 1; o < 3 && o < n->n_outputs; o++)
        if (out[o])
            oq_set_shape(out[o], oq_ew_is_float(stash) ? stash : OQ_FLOAT, x->ndim, dims);
    return OQ_OK;
}

typedef struct ln_job {
    const oq_tensor *x, *scale, *bias;
    oq_tensor *y, *mean, *inv;
    size_t len;
    double eps;
} ln_job;

static void ln_rows(void *ctx, size_t s, size_t e)
{
    const ln_job *j = ctx;
    size_t len = j->len;
    bool fast = j->x->dtype == OQ_FLOAT && j->scale->dtype == OQ_FLOAT && oq_tensor_numel(j->scale) == (int64_t)len &&
                (!j->bias || (j->bias->dtype == OQ_FLOAT && oq_tensor_numel(j->bias) == (int64_t)len));
    for (size_t r = s; r < e; r++) {
        double m, v;
        moments(j->x, r * len, len, &m, &v);
        double inv = 1.0 / sqrt(v + j->eps);
        if (j->mean && j->mean->data)
            oq_ew_store(j->mean->data, j->mean->dtype, r, m);
        if (j->inv && j->inv->data)
            oq_ew_store(j->inv->data, j->inv->dtype, r, inv);
        if (fast) {
            const float *x = (const float *)j->x->data + r * len, *g = j->scale->data;
            const float *b = j->bias ? j->bias->data : NULL;
            float *y = (float *)j->y->data + r * len;
            float fm = (float)m, fi = (float)inv;
            if (b)
                OQ_EW_BLOCKED(len, y[i] = (x[i] - fm) * fi * g[i] + b[i]);
            else
                OQ_EW_BLOCKED(len, y[i] = (x[i] - fm) * fi * g[i]);
        } else {
            for (size_t i = 0; i < len; i++) {
                double xv = oq_ew_load(j->x->data, j->x->dtype, r * len + i);
                double yv = (xv - m) * inv * param(j->scale, i) + (j->bias ? param(j->bias, i) : 0.0);
                oq_ew_store(j->y->data, j->y->dtype, r * len + i, yv);
            }
        }
    }
}

static oq_status ln_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    const oq_tensor *x = in[0];
    int axis;
    oq_status st = ln_axis(n, x, &axis);
    if (st != OQ_OK)
        return st;
    ln_job j = {x, in[1], n->n_inputs > 2 ? in[2] : NULL, out[0],
                n->n_outputs > 1 ? out[1] : NULL, n->n_outputs > 2 ? out[2] : NULL,
                oq_ew_span(x->dims, axis, x->ndim), oq_node_attr_float(n->node, "epsilon", 1e-5f)};
    size_t rows = oq_ew_span(x->dims, 0, axis);
    if (j.len == 0)
        return OQ_OK;
    oq_ew_parallel(n->tp, rows, (1 << 15) / j.len + 1, 1, ln_rows, &j);
    return OQ_OK;
}

const oq_op_def oq_op_layer_normalization = {NULL, ln_infer, ln_run, NULL};

/* ---- LpNormalization ---- */

static oq_status lp_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = check_float_input(n, in, 0);
    if (st != OQ_OK)
        return st;
    int axis;
    if ((st = oq_norm_axis(n, oq_node_attr_int(n->node, "axis", -1), in[0]->ndim, &axis)) != OQ_OK)
        return st;
    int64_t p = oq_node_attr_int(n->node, "p", 2);
    if (p != 1 && p != 2)
        return oq_op_error(n, OQ_E_INVALID_ARG, "p must be 1 or 2, got %lld", (long long)p);
    oq_set_shape(out[0], in[0]->dtype, in[0]->ndim, in[0]->dims);
    return OQ_OK;
}

static oq_status lp_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    const oq_tensor *x = in[0];
    int axis;
    oq_status st = oq_norm_axis(n, oq_node_attr_int(n->node, "axis", -1), x->ndim, &axis);
    if (st != OQ_OK)
        return st;
    bool l1 = oq_node_attr_int(n->node, "p", 2) == 1;
    size_t outer = oq_ew_span(x->dims, 0, axis), len = (size_t)x->dims[axis];
    size_t inner = oq_ew_span(x->dims, axis + 1, x->ndim);
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < inner; i++) {
            size_t base = o * len * inner + i;
            double s = 0;
            for (size_t k = 0; k < len; k++) {
                double v = oq_ew_load(x->data, x->dtype, base + k * inner);
                s += l1 ? fabs(v) : v * v;
            }
            double norm = l1 ? s : sqrt(s);
            for (size_t k = 0; k < len; k++) {
                double v = oq_ew_load(x->data, x->dtype, base + k * inner);
                oq_ew_store(out[0]->data, x->dtype, base + k * inner, norm == 0 ? 0.0 : v / norm);
            }
        }
    return OQ_OK;
}

const oq_op_def oq_op_lp_normalization = {NULL, lp_infer, lp_run, NULL};

/* ---- MeanVarianceNormalization: (x - mean) / (std + 1e-9) over `axes` ---- */

static oq_status mvn_mask(oq_op_node *n, const oq_tensor *x, bool *red)
{
    static const int64_t dflt[] = {0, 2, 3};
    const int64_t *axes;
    size_t cnt = oq_node_attr_ints(n->node, "axes", &axes);
    if (!axes) {
        axes = dflt;
        cnt = 3;
    }
    for (int d = 0; d < x->ndim; d++)
        red[d] = false;
    for (size_t k = 0; k < cnt; k++) {
        int a;
        oq_status st = oq_norm_axis(n, axes[k], x->ndim, &a);
        if (st != OQ_OK)
            return st;
        red[a] = true;
    }
    return OQ_OK;
}

static oq_status mvn_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = check_float_input(n, in, 0);
    if (st != OQ_OK)
        return st;
    bool red[OQ_MAX_DIMS];
    if ((st = mvn_mask(n, in[0], red)) != OQ_OK)
        return st;
    oq_set_shape(out[0], in[0]->dtype, in[0]->ndim, in[0]->dims);
    return OQ_OK;
}

static oq_status mvn_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    const oq_tensor *x = in[0];
    bool red[OQ_MAX_DIMS];
    oq_status st = mvn_mask(n, x, red);
    if (st != OQ_OK)
        return st;
    /* statistics index of every element: strides over the kept dims */
    size_t sstr[OQ_MAX_DIMS], ns = 1, count = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        sstr[d] = red[d] ? 0 : ns;
        if (red[d])
            count *= (size_t)x->dims[d];
        else
            ns *= (size_t)x->dims[d];
    }
    size_t total = (size_t)oq_tensor_numel(x);
    double *acc = oq_calloc(ns * 2, sizeof(double));
    if (!acc)
        return oq_op_error(n, OQ_E_NOMEM, "out of memory");
    for (int pass = 0; pass < 2; pass++) {
        size_t idx[OQ_MAX_DIMS] = {0}, si = 0;
        for (size_t i = 0; i < total; i++) {
            double v = oq_ew_load(x->data, x->dtype, i);
            if (pass == 0) {
                acc[si] += v;
                acc[ns + si] += v * v;
            } else {
                double m = acc[si] / (double)count;
                double var = acc[ns + si] / (double)count - m * m;
                oq_ew_store(out[0]->data, x->dtype, i, (v - m) / (sqrt(var > 0 ? var : 0) + 1e-9));
            }
            for (int d = x->ndim - 1; d >= 0; d--) {
                si += sstr[d];
                if (++idx[d] < (size_t)x->dims[d])
                    break;
                si -= sstr[d] * (size_t)x->dims[d];
                idx[d] = 0;
            }
        }
    }
    free(acc);
    return OQ_OK;
}

const oq_op_def oq_op_mean_variance_normalization = {NULL, mvn_infer, mvn_run, NULL};
