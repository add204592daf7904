/* passes/fuse_qdq: QDQ graphs onto integer kernels. At session creation,
 * DequantizeLinear -> {Conv, MatMul, Gemm, Add, Mul, AveragePool, GlobalAveragePool,
 * Sigmoid, LeakyRelu, Concat} [-> Relu/Clip] -> QuantizeLinear becomes one QOperator
 * node (QLinearConv, QLinearMatMul, com.microsoft QGemm, QLinearAdd, ...); data
 * movement between DQ and Q with equal parameters runs on the int8 tensor, and so does
 * a Relu/Clip there (folded into its integer producer's output stage); DQ nodes
 * left without readers go. What cannot be fused stays float and is logged (INFO). */
#include "ops/op.h"
#include "passes/pass.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_DOMAIN "com.microsoft"
/* Cast / ConstantOfShape outputs up to this many elements are folded (zero points, shapes). */
#define FOLD_LIMIT 65536

typedef struct fq {
    oq_model *m;
    oq_graph *g;
    bool *dead; /* per node; dead nodes are removed at the end */
    size_t fused, qlinear, passthrough, stayed;
    unsigned uid;
    bool made_ms; /* a com.microsoft node was created */
} fq;

/* One quantized side of a pattern: a DQ input or the Q output. */
typedef struct qside {
    const char *q;           /* the integer tensor: DQ input, or Q output */
    const char *scale, *zp;  /* initializer names; zp NULL when omitted */
    const oq_tensor *ts, *tz;
    oq_dtype type;
    int64_t count;           /* scale elements; 1 is per-tensor */
    int64_t axis;
} qside;

static bool is_op(const oq_node *n, const char *op) { return oq_domain_is_default(n->domain) && !strcmp(n->op_type, op); }

static long producer(const fq *f, const char *name)
{
    for (size_t i = 0; i < f->g->n_nodes; i++) {
        if (f->dead[i])
            continue;
        const oq_node *n = &f->g->nodes[i];
        for (size_t k = 0; k < n->n_outputs; k++)
            if (n->outputs[k][0] && !strcmp(n->outputs[k], name))
                return (long)i;
    }
    return -1;
}

/* Readers among live nodes (subgraphs and graph outputs included). */
static size_t live_readers(const fq *f, const char *name)
{
    size_t c = oq_graph_count_readers(f->g, name);
    for (size_t i = 0; i < f->g->n_nodes; i++)
        if (f->dead[i])
            for (size_t k = 0; k < f->g->nodes[i].n_inputs; k++)
                c -= !strcmp(f->g->nodes[i].inputs[k], name);
    return c;
}

/* The one live node reading name directly, or -1 (several readers, a subgraph or a graph output). */
static long only_reader(const fq *f, const char *name)
{
    if (oq_graph_is_output(f->g, name) || live_readers(f, name) != 1)
        return -1;
    for (size_t i = 0; i < f->g->n_nodes; i++) {
        if (f->dead[i])
            continue;
        const oq_node *n = &f->g->nodes[i];
        for (size_t k = 0; k < n->n_inputs; k++)
            if (!strcmp(n->inputs[k], name))
                return (long)i;
    }
    return -1;
}

static oq_dtype q_node_type(const fq *f, const oq_node *q)
{
    const char *zp = oq_node_input(q, 2);
    if (zp) {
        const oq_tensor *t = oq_graph_initializer(f->g, zp);
        return t ? t->dtype : OQ_UNDEFINED;
    }
    int64_t od = oq_node_attr_int(q, "output_dtype", 0);
    return od ? (oq_dtype)od : OQ_UINT8;
}

/* Element type of a value when the graph says it without running anything. */
static oq_dtype value_type(const fq *f, const char *name)
{
    const oq_tensor *t = oq_graph_initializer(f->g, name);
    if (t)
        return t->dtype;
    long p = producer(f, name);
    if (p >= 0) {
        const oq_node *n = &f->g->nodes[p];
        if (is_op(n, "QuantizeLinear"))
            return q_node_type(f, n);
        if (is_op(n, "Cast"))
            return (oq_dtype)oq_node_attr_int(n, "to", 0);
        if (!strcmp(n->domain, MS_DOMAIN) || is_op(n, "QLinearConv") || is_op(n, "QLinearMatMul")) {
            const char *zp = NULL; /* the output zero point names the type */
            if (is_op(n, "QLinearConv") || is_op(n, "QLinearMatMul"))
                zp = oq_node_input(n, 7);
            else if (!strcmp(n->op_type, "QGemm"))
                zp = oq_node_input(n, 8);
            else if (!strcmp(n->op_type, "QLinearConcat"))
                zp = oq_node_input(n, 1);
            else if (!strcmp(n->op_type, "QLinearAdd") || !strcmp(n->op_type, "QLinearMul"))
                zp = oq_node_input(n, 7);
            else
                zp = oq_node_input(n, 4);
            const oq_tensor *z = zp ? oq_graph_initializer(f->g, zp) : NULL;
            return z ? z->dtype : OQ_UNDEFINED;
        }
        return OQ_UNDEFINED;
    }
    for (size_t i = 0; i < f->g->n_inputs; i++)
        if (!strcmp(f->g->inputs[i].name, name))
            return f->g->inputs[i].dtype;
    for (size_t i = 0; i < f->g->n_value_infos; i++)
        if (!strcmp(f->g->value_infos[i].name, name))
            return f->g->value_infos[i].dtype;
    return OQ_UNDEFINED;
}

static bool is_q8(oq_dtype t) { return t == OQ_UINT8 || t == OQ_INT8; }

/* Scale and zero point of a Q or DQ node, constant. */
static bool node_qparams(const fq *f, const oq_node *n, qside *s, const char **why)
{
    memset(s, 0, sizeof *s);
    s->scale = oq_node_input(n, 1);
    s->zp = oq_node_input(n, 2);
    s->ts = s->scale ? oq_graph_initializer(f->g, s->scale) : NULL;
    s->tz = s->zp ? oq_graph_initializer(f->g, s->zp) : NULL;
    if (!s->ts || (s->zp && !s->tz)) {
        *why = "its scale or zero point is not a constant";
        return false;
    }
    if (s->ts->dtype != OQ_FLOAT || s->ts->ndim > 1 || (s->tz && oq_tensor_numel(s->tz) != oq_tensor_numel(s->ts))) {
        *why = "its scale is not float, or scale and zero point shapes differ";
        return false;
    }
    if (oq_node_attr_int(n, "block_size", 0) != 0) {
        *why = "blocked quantization";
        return false;
    }
    s->count = oq_tensor_numel(s->ts);
    s->axis = oq_node_attr_int(n, "axis", 1);
    for (int64_t c = 0; c < s->count; c++) {
        float v = ((const float *)s->ts->data)[c];
        if (!(v > 0.0f) || !isfinite(v)) {
            *why = "a scale is not positive and finite";
            return false;
        }
    }
    return true;
}

/* The DequantizeLinear producing name. */
static bool read_dq(const fq *f, const char *name, qside *s, const char **why)
{
    long p = name ? producer(f, name) : -1;
    if (p < 0 || !is_op(&f->g->nodes[p], "DequantizeLinear")) {
        *why = "an input does not come from DequantizeLinear";
        return false;
    }
    const oq_node *n = &f->g->nodes[p];
    if (!node_qparams(f, n, s, why))
        return false;
    s->q = n->inputs[0];
    s->type = s->tz ? s->tz->dtype : value_type(f, s->q);
    if (!is_q8(s->type)) {
        *why = "an input is not dequantized from uint8/int8";
        return false;
    }
    return true;
}

static bool read_q(const fq *f, long qi, qside *s, const char **why)
{
    const oq_node *n = &f->g->nodes[qi];
    if (!node_qparams(f, n, s, why))
        return false;
    s->q = n->outputs[0];
    s->type = q_node_type(f, n);
    if (!is_q8(s->type)) {
        *why = "the output is not quantized to uint8/int8";
        return false;
    }
    if (s->count != 1) {
        *why = "the output is quantized per axis";
        return false;
    }
    return true;
}

static float scale0(const qside *s) { return ((const float *)s->ts->data)[0]; }
static float scale_c(const qside *s, int64_t c) { return ((const float *)s->ts->data)[s->count == 1 ? 0 : c]; }
static int32_t zp0(const qside *s) { return s->tz ? (int32_t)oq_tensor_get_i64(s->tz, 0) : 0; }
static void qlimits(oq_dtype t, int32_t *lo, int32_t *hi)
{
    *lo = t == OQ_INT8 ? -128 : 0;
    *hi = t == OQ_INT8 ? 127 : 255;
}

/* ---- graph edits ---- */

static oq_status add_initializer(fq *f, oq_tensor *t)
{
    oq_graph *g = f->g;
    oq_status st = oq_grow((void **)&g->initializers, &g->cap_initializers, g->n_initializers + 1,
                           sizeof *g->initializers);
    if (st != OQ_OK)
        return st;
    g->initializers[g->n_initializers++] = t;
    return OQ_OK;
}

/* A fresh initializer name derived from base. */
static char *fresh_name(fq *f, const char *base, const char *tag)
{
    char buf[512];
    do
        snprintf(buf, sizeof buf, "%.400s_onnxq_%s%u", base, tag, f->uid++);
    while (oq_graph_initializer(f->g, buf) || producer(f, buf) >= 0);
    return oq_strdup(buf);
}

/* Zero point 0 of type t shaped like the scale (QLinearConv/QLinearMatMul need one). */
static oq_status zero_point_for(fq *f, qside *s)
{
    if (s->zp)
        return OQ_OK;
    oq_tensor *t = NULL;
    oq_status st = oq_tensor_create(s->type, s->ts->ndim, s->ts->dims, &t);
    if (st != OQ_OK)
        return st;
    t->name = fresh_name(f, s->scale, "zp");
    if (!t->name || (st = add_initializer(f, t)) != OQ_OK) {
        oq_tensor_destroy(t);
        return st != OQ_OK ? st : oq_error(OQ_E_NOMEM, "out of memory");
    }
    s->zp = t->name;
    s->tz = t;
    return OQ_OK;
}

static oq_status copy_attr(oq_attr *dst, const oq_attr *src)
{
    memset(dst, 0, sizeof *dst);
    dst->name = oq_strdup(src->name);
    dst->type = src->type;
    dst->f = src->f;
    dst->i = src->i;
    if (!dst->name)
        return oq_error(OQ_E_NOMEM, "out of memory");
    if (src->n_ints) {
        if (!(dst->ints = oq_malloc(src->n_ints * sizeof *dst->ints)))
            return oq_error(OQ_E_NOMEM, "out of memory");
        memcpy(dst->ints, src->ints, src->n_ints * sizeof *dst->ints);
        dst->n_ints = src->n_ints;
    }
    if (src->n_floats) {
        if (!(dst->floats = oq_malloc(src->n_floats * sizeof *dst->floats)))
            return oq_error(OQ_E_NOMEM, "out of memory");
        memcpy(dst->floats, src->floats, src->n_floats * sizeof *dst->floats);
        dst->n_floats = src->n_floats;
    }
    if (src->s.data) {
        if (!(dst->s.data = oq_strndup(src->s.data, src->s.len)))
            return oq_error(OQ_E_NOMEM, "out of memory");
        dst->s.len = src->s.len;
    }
    return OQ_OK;
}

/* A node under construction: inputs and kept attribute names. */
#define MAX_FUSED_INPUTS 64
typedef struct fused {
    const char *op_type, *domain;
    const char *inputs[MAX_FUSED_INPUTS];
    size_t n_inputs;
    const char *keep[8]; /* attributes copied from the original node */
    const char *act;     /* onnxq_activation, or NULL */
    float act_params[2];
} fused;

static void push(fused *u, const char *name) { u->inputs[u->n_inputs++] = name ? name : ""; }

static void push_side(fused *u, const qside *s)
{
    push(u, s->q);
    push(u, s->scale);
    push(u, s->zp);
}

/* Replaces node i by u writing `output`; the original's kept attributes move over. */
static oq_status replace_node(fq *f, size_t i, const fused *u, const char *output)
{
    oq_node *old = &f->g->nodes[i];
    oq_node n = {0};
    oq_status st = OQ_OK;
    n.name = oq_strdup(old->name ? old->name : "");
    n.op_type = oq_strdup(u->op_type);
    n.domain = oq_strdup(u->domain);
    n.inputs = oq_calloc(u->n_inputs + 1, sizeof *n.inputs);
    n.outputs = oq_calloc(1, sizeof *n.outputs);
    n.attrs = oq_calloc(old->n_attrs + 1, sizeof *n.attrs);
    if (!n.name || !n.op_type || !n.domain || !n.inputs || !n.outputs || !n.attrs)
        st = oq_error(OQ_E_NOMEM, "out of memory");
    for (size_t k = 0; st == OQ_OK && k < u->n_inputs; k++) {
        if (!(n.inputs[k] = oq_strdup(u->inputs[k])))
            st = oq_error(OQ_E_NOMEM, "out of memory");
        n.n_inputs = k + 1;
    }
    if (st == OQ_OK) {
        if (!(n.outputs[0] = oq_strdup(output)))
            st = oq_error(OQ_E_NOMEM, "out of memory");
        n.n_outputs = 1;
    }
    for (size_t a = 0; st == OQ_OK && a < old->n_attrs; a++)
        for (size_t k = 0; k < 8 && u->keep[k]; k++)
            if (!strcmp(old->attrs[a].name, u->keep[k])) {
                st = copy_attr(&n.attrs[n.n_attrs], &old->attrs[a]);
                n.n_attrs++;
                break;
            }
    if (st == OQ_OK && u->act) {
        st = oq_node_add_attr_string(&n, "onnxq_activation", u->act);
        if (st == OQ_OK)
            st = oq_node_add_attr_floats(&n, "onnxq_activation_params", u->act_params, 2);
    }
    if (st != OQ_OK) {
        oq_node_clear(&n);
        return st;
    }
    oq_node_clear(old);
    *old = n;
    if (!strcmp(u->domain, MS_DOMAIN))
        f->made_ms = true;
    return OQ_OK;
}

/* ---- activation between the op and Q ---- */

static bool const_float(const fq *f, const oq_node *n, size_t i, float *v)
{
    const char *name = oq_node_input(n, i);
    if (!name)
        return true;
    const oq_tensor *t = oq_graph_initializer(f->g, name);
    if (!t || oq_tensor_numel(t) != 1 || t->dtype != OQ_FLOAT)
        return false;
    *v = *(const float *)t->data;
    return true;
}

static bool act_bounds(const fq *f, const oq_node *a, float *lo, float *hi)
{
    *lo = -INFINITY;
    *hi = INFINITY;
    if (is_op(a, "Relu")) {
        *lo = 0.0f;
        return true;
    }
    if (!is_op(a, "Clip"))
        return false;
    if (oq_model_opset(f->m, "") < 11) {
        *lo = oq_node_attr_float(a, "min", -FLT_MAX);
        *hi = oq_node_attr_float(a, "max", FLT_MAX);
        return true;
    }
    return const_float(f, a, 1, lo) && const_float(f, a, 2, hi);
}

/* QuantizeLinear of one real value with the output's parameters. */
static int32_t quantize1(const qside *y, float v)
{
    int32_t lo, hi;
    qlimits(y->type, &lo, &hi);
    float q = nearbyintf(v / scale0(y)) + (float)zp0(y);
    return q < (float)lo ? lo : q > (float)hi ? hi : (int32_t)q;
}

/* ---- bias ---- */

/* Bias of Conv/Gemm as int32 in the accumulator's scale alpha * s_x * s_w[c], zero
 * point 0 (what onnxruntime does). A DQ of int32 already in that scale is used as is. */
static bool make_bias(fq *f, const char *name, const qside *x, const qside *w, int64_t n_out, double alpha,
                      double beta, const char **bias_out, const char **why)
{
    *bias_out = NULL;
    if (!name)
        return true;
    const oq_tensor *src = oq_graph_initializer(f->g, name);
    qside b = {0};
    if (!src) {
        long p = producer(f, name);
        if (p < 0 || !is_op(&f->g->nodes[p], "DequantizeLinear") || !node_qparams(f, &f->g->nodes[p], &b, why)) {
            *why = "the bias is neither a constant nor a DequantizeLinear of one";
            return false;
        }
        b.q = f->g->nodes[p].inputs[0];
        src = oq_graph_initializer(f->g, b.q);
        if (!src || (src->dtype != OQ_INT32 && !is_q8(src->dtype))) {
            *why = "the bias is not a DequantizeLinear of a constant integer tensor";
            return false;
        }
        if (b.count != 1 && b.count != oq_tensor_numel(src)) {
            *why = "the bias scale is neither per-tensor nor per element";
            return false;
        }
    } else if (src->dtype != OQ_FLOAT) {
        *why = "the bias is not float";
        return false;
    }
    int64_t nb = oq_tensor_numel(src);
    if (nb != n_out && nb != 1) {
        *why = "the bias does not have one value per output channel";
        return false;
    }
    /* Use an int32 bias as is when it is already in the accumulator's scale. */
    if (b.ts && src->dtype == OQ_INT32 && nb == n_out && alpha == 1.0 && beta == 1.0 && zp0(&b) == 0 &&
        (!b.tz || b.tz->dtype == OQ_INT32)) {
        bool same = true;
        for (int64_t c = 0; c < n_out && same; c++) {
            double want = (double)scale0(x) * scale_c(w, c), have = scale_c(&b, c);
            same = fabs(have - want) <= 1e-5 * want;
        }
        if (same) {
            *bias_out = b.q;
            return true;
        }
    }
    oq_tensor *t = NULL;
    int64_t dims[1] = {n_out};
    if (oq_tensor_create(OQ_INT32, 1, dims, &t) != OQ_OK) {
        *why = "out of memory";
        return false;
    }
    int32_t *q = t->data;
    for (int64_t c = 0; c < n_out; c++) {
        int64_t e = nb == 1 ? 0 : c;
        double v = b.ts ? (double)(oq_tensor_get_i64(src, e) - (b.tz ? oq_tensor_get_i64(b.tz, b.count == 1 ? 0 : e) : 0)) *
                              (double)scale_c(&b, e)
                        : (double)((const float *)src->data)[e];
        double r = nearbyint(beta * v / (alpha * (double)scale0(x) * (double)scale_c(w, c)));
        q[c] = r > 2147483647.0 ? INT32_MAX : r < -2147483648.0 ? INT32_MIN : (int32_t)r;
    }
    t->name = fresh_name(f, name, "bias");
    if (!t->name || add_initializer(f, t) != OQ_OK) {
        oq_tensor_destroy(t);
        *why = "out of memory";
        return false;
    }
    *bias_out = t->name;
    return true;
}

/* ---- the fusion of one node ---- */

typedef enum fuse_result { FUSE_NO, FUSE_DONE, FUSE_ERROR } fuse_result;

/* Weight side: a DQ of a constant, per-tensor or per channel along want_axis of a rank-r tensor. */
static bool weight_side(const fq *f, const char *name, int want_axis, qside *w, int64_t *n_ch, const char **why)
{
    if (!read_dq(f, name, w, why))
        return false;
    const oq_tensor *t = oq_graph_initializer(f->g, w->q);
    if (!t) {
        *why = "the weight is not a constant";
        return false;
    }
    int axis = (int)(w->axis < 0 ? w->axis + t->ndim : w->axis);
    *n_ch = t->ndim > want_axis ? t->dims[want_axis] : 1;
    if (w->count != 1 && (axis != want_axis || w->count != *n_ch)) {
        *why = "the weight is quantized per axis along an axis that is not the output channel";
        return false;
    }
    return true;
}

/* DQ -> MatMul <- DQ whose float output is read as float (a bias Add or a residual
 * kept in float): com.microsoft MatMulIntegerToFloat, the integer product scaled
 * to float in the GEMM's output stage, as onnxruntime fuses it. */
/* Node i becomes u, keeping its output's name (its readers stay as they are). */
static oq_status replace_same_output(fq *f, size_t i, const fused *u)
{
    char *out = oq_strdup(f->g->nodes[i].outputs[0]);
    if (!out)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = replace_node(f, i, u, out);
    free(out);
    return st;
}

static fuse_result fuse_matmul_to_float(fq *f, size_t i, const char **why)
{
    oq_node *n = &f->g->nodes[i];
    qside x, w;
    if (!read_dq(f, oq_node_input(n, 0), &x, why) || !read_dq(f, oq_node_input(n, 1), &w, why))
        return FUSE_NO;
    if (x.count != 1) {
        *why = "the input is quantized per axis";
        return FUSE_NO;
    }
    if (w.count != 1) {
        int64_t nch;
        if (!weight_side(f, oq_node_input(n, 1), 1, &w, &nch, why))
            return FUSE_NO;
        const oq_tensor *t = oq_graph_initializer(f->g, w.q);
        if (t->ndim != 2) {
            *why = "a per-column weight of rank other than 2";
            return FUSE_NO;
        }
    }
    fused u = {0};
    u.domain = MS_DOMAIN;
    u.op_type = "MatMulIntegerToFloat";
    push(&u, x.q);
    push(&u, w.q);
    push(&u, x.scale);
    push(&u, w.scale);
    push(&u, x.zp);
    push(&u, w.zp);
    return replace_same_output(f, i, &u) == OQ_OK ? FUSE_DONE : FUSE_ERROR;
}

/* DQ -> Conv <- DQ whose float output is read as float (a HardSwish, a residual Add kept
 * in float): QLinearConv with the session-only attribute onnxq_float_output, which scales
 * the exact integer sum to float instead of requantizing it. */
static fuse_result fuse_conv_to_float(fq *f, size_t i, const char **why)
{
    oq_node *n = &f->g->nodes[i];
    qside x, w;
    int64_t m_out;
    const char *bias = NULL;
    if (!read_dq(f, oq_node_input(n, 0), &x, why) || !weight_side(f, oq_node_input(n, 1), 0, &w, &m_out, why))
        return FUSE_NO;
    if (x.count != 1) {
        *why = "the input is quantized per axis";
        return FUSE_NO;
    }
    if (!make_bias(f, oq_node_input(n, 2), &x, &w, m_out, 1.0, 1.0, &bias, why))
        return FUSE_NO;
    if (zero_point_for(f, &x) != OQ_OK || zero_point_for(f, &w) != OQ_OK)
        return FUSE_ERROR;
    fused u = {0};
    u.domain = "";
    u.op_type = "QLinearConv";
    push_side(&u, &x);
    push_side(&u, &w);
    push(&u, NULL); /* no y_scale, y_zero_point: the output is float */
    push(&u, NULL);
    if (bias)
        push(&u, bias);
    const char *keep[] = {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides", NULL};
    memcpy(u.keep, keep, sizeof keep);
    oq_status st = replace_same_output(f, i, &u);
    if (st == OQ_OK)
        st = oq_node_add_attr_int(&f->g->nodes[i], "onnxq_float_output", 1);
    return st == OQ_OK ? FUSE_DONE : FUSE_ERROR;
}

/* Gemm's input (per tensor), weight (per tensor or per output column: axis 0 of B when
 * transB, else axis 1) and bias, as QGemm takes them. */
static bool gemm_sides(fq *f, const oq_node *n, qside *x, qside *w, const char **bias, const char **why)
{
    int trans_b = (int)oq_node_attr_int(n, "transB", 0);
    double alpha = oq_node_attr_float(n, "alpha", 1.0f), beta = oq_node_attr_float(n, "beta", 1.0f);
    int64_t n_out;
    if (!read_dq(f, oq_node_input(n, 0), x, why) ||
        !weight_side(f, oq_node_input(n, 1), trans_b ? 0 : 1, w, &n_out, why))
        return false;
    const oq_tensor *wt = oq_graph_initializer(f->g, w->q);
    if (x->count != 1 || wt->ndim != 2) {
        *why = "the input is quantized per axis or the weight is not 2-D";
        return false;
    }
    if (!(alpha > 0.0)) {
        *why = "alpha is not positive";
        return false;
    }
    return make_bias(f, oq_node_input(n, 2), x, w, n_out, alpha, beta, bias, why);
}

/* QGemm's inputs up to the bias; y_scale and y_zero_point follow, or nothing (float output). */
static void gemm_node(fused *u, const qside *x, const qside *w, const char *bias)
{
    u->op_type = "QGemm";
    u->domain = MS_DOMAIN;
    push_side(u, x);
    push_side(u, w);
    push(u, bias);
    const char *keep[] = {"alpha", "transA", "transB", NULL};
    memcpy(u->keep, keep, sizeof keep);
}

/* DQ -> Gemm <- DQ whose output is read as float (a LayerNorm, a Softmax): QGemm without
 * y_scale, whose output is float (onnxruntime's QDQ transformer makes the same node). */
static fuse_result fuse_gemm_to_float(fq *f, size_t i, const char **why)
{
    oq_node *n = &f->g->nodes[i];
    qside x, w;
    const char *bias = NULL;
    if (!gemm_sides(f, n, &x, &w, &bias, why))
        return FUSE_NO;
    if (zero_point_for(f, &x) != OQ_OK || zero_point_for(f, &w) != OQ_OK)
        return FUSE_ERROR;
    fused u = {0};
    gemm_node(&u, &x, &w, bias);
    return replace_same_output(f, i, &u) == OQ_OK ? FUSE_DONE : FUSE_ERROR;
}

static fuse_result fuse_node(fq *f, size_t i, const char **why)
{
    oq_node *n = &f->g->nodes[i];
    const char *op = n->op_type;
    bool gemm_like = !strcmp(op, "Conv") || !strcmp(op, "MatMul") || !strcmp(op, "Gemm");
    if (n->n_outputs != 1) {
        *why = "it has more than one output";
        return FUSE_NO;
    }
    /* output: [Relu|Clip] -> QuantizeLinear */
    long r = only_reader(f, n->outputs[0]), act = -1;
    if (r >= 0 && (is_op(&f->g->nodes[r], "Relu") || is_op(&f->g->nodes[r], "Clip"))) {
        act = r;
        r = only_reader(f, f->g->nodes[act].outputs[0]);
    }
    /* read in float (a Relu/Clip in between stays a float node of its own) */
    if ((r < 0 || !is_op(&f->g->nodes[r], "QuantizeLinear")) && !strcmp(op, "MatMul"))
        return fuse_matmul_to_float(f, i, why);
    if ((r < 0 || !is_op(&f->g->nodes[r], "QuantizeLinear")) && !strcmp(op, "Conv"))
        return fuse_conv_to_float(f, i, why);
    if ((r < 0 || !is_op(&f->g->nodes[r], "QuantizeLinear")) && !strcmp(op, "Gemm"))
        return fuse_gemm_to_float(f, i, why);
    if (r < 0 || !is_op(&f->g->nodes[r], "QuantizeLinear")) {
        *why = "its output is not read by exactly one QuantizeLinear";
        return FUSE_NO;
    }
    qside y;
    if (!read_q(f, r, &y, why))
        return FUSE_NO;
    fused u = {0};
    u.domain = "";
    if (act >= 0) {
        float lo, hi;
        if (!act_bounds(f, &f->g->nodes[act], &lo, &hi)) {
            *why = "the Clip between it and QuantizeLinear has bounds that are not constant";
            return FUSE_NO;
        }
        int32_t qlo, qhi;
        qlimits(y.type, &qlo, &qhi);
        bool folds = (lo == -INFINITY || quantize1(&y, lo) == qlo) && (hi == INFINITY || quantize1(&y, hi) == qhi);
        if (!folds) {
            if (!gemm_like) {
                *why = "the Relu/Clip before QuantizeLinear does not fold into the output range";
                return FUSE_NO;
            }
            u.act = f->g->nodes[act].op_type;
            u.act_params[0] = lo;
            u.act_params[1] = hi;
        }
    }
    qside x, w;
    const char *bias = NULL;
    if (!strcmp(op, "Conv")) {
        int64_t m_out;
        if (!read_dq(f, oq_node_input(n, 0), &x, why) || !weight_side(f, oq_node_input(n, 1), 0, &w, &m_out, why))
            return FUSE_NO;
        if (x.count != 1) {
            *why = "the input is quantized per axis";
            return FUSE_NO;
        }
        if (!make_bias(f, oq_node_input(n, 2), &x, &w, m_out, 1.0, 1.0, &bias, why))
            return FUSE_NO;
        if (zero_point_for(f, &x) != OQ_OK || zero_point_for(f, &w) != OQ_OK || zero_point_for(f, &y) != OQ_OK)
            return FUSE_ERROR;
        u.op_type = "QLinearConv";
        push_side(&u, &x);
        push_side(&u, &w);
        push(&u, y.scale);
        push(&u, y.zp);
        if (bias)
            push(&u, bias);
        const char *keep[] = {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides", NULL};
        memcpy(u.keep, keep, sizeof keep);
    } else if (!strcmp(op, "MatMul")) {
        if (!read_dq(f, oq_node_input(n, 0), &x, why) || !read_dq(f, oq_node_input(n, 1), &w, why))
            return FUSE_NO;
        if (x.count != 1) {
            *why = "the input is quantized per axis";
            return FUSE_NO;
        }
        if (w.count != 1) {
            int64_t nch;
            if (!weight_side(f, oq_node_input(n, 1), 1, &w, &nch, why))
                return FUSE_NO;
            const oq_tensor *t = oq_graph_initializer(f->g, w.q);
            if (t->ndim != 2) {
                *why = "a per-column weight of rank other than 2";
                return FUSE_NO;
            }
        }
        if (zero_point_for(f, &x) != OQ_OK || zero_point_for(f, &w) != OQ_OK || zero_point_for(f, &y) != OQ_OK)
            return FUSE_ERROR;
        u.op_type = "QLinearMatMul";
        push_side(&u, &x);
        push_side(&u, &w);
        push(&u, y.scale);
        push(&u, y.zp);
    } else if (!strcmp(op, "Gemm")) {
        if (!gemm_sides(f, n, &x, &w, &bias, why))
            return FUSE_NO;
        if (zero_point_for(f, &x) != OQ_OK || zero_point_for(f, &w) != OQ_OK || zero_point_for(f, &y) != OQ_OK)
            return FUSE_ERROR;
        gemm_node(&u, &x, &w, bias);
        push(&u, y.scale);
        push(&u, y.zp);
    } else {
        /* Elementwise, pooling and Concat: every input per-tensor of the output's type. */
        size_t n_in = !strcmp(op, "Add") || !strcmp(op, "Mul") ? 2 : !strcmp(op, "Concat") ? n->n_inputs : 1;
        if (n_in == 0 || n_in > (MAX_FUSED_INPUTS - 2) / 3 || n->n_inputs < n_in) {
            *why = "unexpected number of inputs";
            return FUSE_NO;
        }
        qside in[(MAX_FUSED_INPUTS - 2) / 3];
        for (size_t k = 0; k < n_in; k++) {
            if (!read_dq(f, oq_node_input(n, k), &in[k], why))
                return FUSE_NO;
            if (in[k].count != 1 || in[k].type != y.type) {
                *why = "an input is quantized per axis or to another type than the output";
                return FUSE_NO;
            }
        }
        if (!strcmp(op, "AveragePool")) {
            const int64_t *d;
            size_t nd = oq_node_attr_ints(n, "dilations", &d);
            for (size_t k = 0; k < nd; k++)
                if (d[k] != 1) {
                    *why = "QLinearAveragePool has no dilations";
                    return FUSE_NO;
                }
        }
        u.domain = MS_DOMAIN;
        if (!strcmp(op, "Concat")) {
            u.op_type = "QLinearConcat";
            push(&u, y.scale);
            push(&u, y.zp);
            for (size_t k = 0; k < n_in; k++)
                push_side(&u, &in[k]);
            u.keep[0] = "axis";
        } else {
            for (size_t k = 0; k < n_in; k++)
                push_side(&u, &in[k]);
            push(&u, y.scale);
            push(&u, y.zp);
            static const struct {
                const char *op, *q;
                const char *keep[7];
            } map[] = {
                {"Add", "QLinearAdd", {NULL}},
                {"Mul", "QLinearMul", {NULL}},
                {"Sigmoid", "QLinearSigmoid", {NULL}},
                {"LeakyRelu", "QLinearLeakyRelu", {"alpha", NULL}},
                {"GlobalAveragePool", "QLinearGlobalAveragePool", {NULL}},
                {"AveragePool",
                 "QLinearAveragePool",
                 {"auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides", NULL}},
            };
            for (size_t k = 0; k < sizeof map / sizeof *map; k++)
                if (!strcmp(map[k].op, op)) {
                    u.op_type = map[k].q;
                    memcpy(u.keep, map[k].keep, sizeof map[k].keep);
                }
        }
    }
    char *out = oq_strdup(y.q);
    if (!out)
        return FUSE_ERROR;
    bool is_global = !strcmp(op, "GlobalAveragePool");
    oq_status st = replace_node(f, i, &u, out);
    free(out);
    if (st == OQ_OK && is_global)
        st = oq_node_add_attr_int(&f->g->nodes[i], "channels_last", 0);
    if (st != OQ_OK)
        return FUSE_ERROR;
    f->dead[r] = true;
    if (act >= 0)
        f->dead[act] = true;
    return FUSE_DONE;
}

/* DQ -> MaxPool/Reshape/... -> Q with the same parameters: the op runs on the integer tensor. */
/* A Pad about to run on int8 pads with the quantized pad value, Q(value) (the float graph's
 * Q(Pad(DQ(x), value)) writes exactly that): a new constant input 2. Other modes copy values of x.
 * The attribute form of old opsets is left float. */
static bool pad_value_q8(fq *f, oq_node *n, const qside *y)
{
    if (n->n_inputs < 2 || !n->inputs[1][0])
        return false;
    const char *mode = oq_node_attr_string(n, "mode", "constant");
    if (strcmp(mode, "constant"))
        return !strcmp(mode, "edge") || !strcmp(mode, "reflect") || !strcmp(mode, "wrap");
    float c = 0;
    if (n->n_inputs > 2 && n->inputs[2][0]) {
        const oq_tensor *t = oq_graph_initializer(f->g, n->inputs[2]);
        if (!t || t->dtype != OQ_FLOAT || oq_tensor_numel(t) != 1 || !t->data)
            return false;
        c = ((const float *)t->data)[0];
    }
    oq_tensor *t = NULL;
    if (oq_tensor_create(y->type, 0, NULL, &t) != OQ_OK)
        return false;
    int32_t v = quantize1(y, c);
    if (y->type == OQ_INT8)
        *(int8_t *)t->data = (int8_t)v;
    else
        *(uint8_t *)t->data = (uint8_t)v;
    if (!(t->name = fresh_name(f, y->q, "pad_value")) || add_initializer(f, t) != OQ_OK) {
        oq_tensor_destroy(t);
        return false;
    }
    const char *in[4] = {n->inputs[0], n->inputs[1], t->name, n->n_inputs > 3 ? n->inputs[3] : NULL};
    return oq_node_rewrite(n, "Pad", "", in, n->n_inputs > 3 ? 4 : 3, false) == OQ_OK;
}

static bool pass_through(fq *f, size_t i)
{
    static const char *const ops[] = {"MaxPool", "Reshape",   "Flatten",  "Transpose",
                                      "Squeeze", "Unsqueeze", "Identity", "Pad"};
    oq_node *n = &f->g->nodes[i];
    bool match = false;
    for (size_t k = 0; k < sizeof ops / sizeof *ops; k++)
        match |= is_op(n, ops[k]);
    if (!match || n->n_inputs < 1 || n->n_outputs < 1 || (n->n_outputs > 1 && n->outputs[1][0]))
        return false;
    const char *why;
    qside x, y;
    long r = only_reader(f, n->outputs[0]);
    if (r < 0 || !is_op(&f->g->nodes[r], "QuantizeLinear") || !read_dq(f, n->inputs[0], &x, &why) ||
        !read_q(f, r, &y, &why))
        return false;
    if (x.count != 1 || x.type != y.type || scale0(&x) != scale0(&y) || zp0(&x) != zp0(&y))
        return false;
    if (is_op(n, "Pad") && !pad_value_q8(f, n, &y))
        return false;
    char *in = oq_strdup(x.q), *out = oq_strdup(y.q);
    if (!in || !out) {
        free(in);
        free(out);
        return false;
    }
    free(n->inputs[0]);
    n->inputs[0] = in;
    free(n->outputs[0]);
    n->outputs[0] = out;
    f->dead[r] = true;
    return true;
}

/* DQ -> Relu/Clip -> Q with the same per-tensor parameters (symmetric int8 activations keep
 * the activation node: a standard QLinearConv cannot clamp at 0): the clamp moves into the
 * output stage of the fused QLinearConv/QLinearMatMul/QGemm writing the DQ's input when that
 * is its only reader, else it runs as a Clip on the integer tensor with the bounds quantized
 * by the same rule. Either way the result equals Q(clip(DQ(q))). */
static bool fold_clamp(fq *f, size_t i)
{
    oq_node *n = &f->g->nodes[i];
    float lo, hi;
    if ((!is_op(n, "Relu") && !is_op(n, "Clip")) || n->n_inputs < 1 || n->n_outputs != 1 || !act_bounds(f, n, &lo, &hi))
        return false;
    const char *why;
    qside x, y;
    long r = only_reader(f, n->outputs[0]), d = producer(f, n->inputs[0]);
    if (r < 0 || d < 0 || !is_op(&f->g->nodes[r], "QuantizeLinear") || !read_dq(f, n->inputs[0], &x, &why) ||
        !read_q(f, r, &y, &why))
        return false;
    if (x.count != 1 || y.count != 1 || x.type != y.type || scale0(&x) != scale0(&y) || zp0(&x) != zp0(&y))
        return false;
    if (only_reader(f, n->inputs[0]) != (long)i)
        return false; /* the float value is read elsewhere too: keep it */
    long p = producer(f, x.q);
    oq_node *pn = p >= 0 ? &f->g->nodes[p] : NULL;
    bool into_producer = pn && !f->dead[p] && only_reader(f, x.q) == d && !oq_graph_is_output(f->g, x.q) &&
                         !oq_node_attr(pn, "onnxq_activation") && !oq_node_attr(pn, "onnxq_float_output") &&
                         (is_op(pn, "QLinearConv") || is_op(pn, "QLinearMatMul") ||
                          (!strcmp(pn->op_type, "QGemm") && !strcmp(pn->domain, MS_DOMAIN)));
    char *out = oq_strdup(y.q);
    if (!out)
        return false;
    if (into_producer) {
        float params[2] = {lo, hi};
        if (oq_node_add_attr_string(pn, "onnxq_activation", "Clip") != OQ_OK ||
            oq_node_add_attr_floats(pn, "onnxq_activation_params", params, 2) != OQ_OK) {
            free(out);
            return false;
        }
        free(pn->outputs[0]);
        pn->outputs[0] = out;
        f->dead[d] = f->dead[i] = f->dead[r] = true;
        return true;
    }
    /* a Clip of the integer tensor: bounds in its type (Clip takes integers from opset 12) */
    if (oq_model_opset(f->m, "") < 12) {
        free(out);
        return false;
    }
    const char *bounds[2] = {NULL, NULL};
    int32_t qb[2] = {quantize1(&y, lo), quantize1(&y, hi)};
    bool ok = true;
    for (int k = 0; k < 2 && ok; k++) {
        oq_tensor *t = NULL;
        ok = oq_tensor_create(y.type, 0, NULL, &t) == OQ_OK &&
             (t->name = oq_graph_unique_name(f->g, y.q, k ? "_max" : "_min")) != NULL;
        if (ok) {
            if (y.type == OQ_INT8)
                *(int8_t *)t->data = (int8_t)qb[k];
            else
                *(uint8_t *)t->data = (uint8_t)qb[k];
            ok = oq_graph_add_initializer(f->g, t) == OQ_OK;
        }
        if (ok)
            bounds[k] = t->name;
        else
            oq_tensor_destroy(t);
    }
    /* Clip-6's min/max attributes go: the bounds are inputs now (an unread bound left by a
     * failure here goes with the dead values) */
    const char *ins[3] = {x.q, bounds[0], bounds[1]};
    if (!ok || oq_node_rewrite(n, "Clip", "", ins, 3, true) != OQ_OK) {
        free(out);
        return false;
    }
    free(n->outputs[0]);
    n->outputs[0] = out;
    f->dead[r] = true;
    return true;
}

/* ---- preparation: constants as initializers, no-op Casts ---- */

/* Evaluates a Constant / ConstantOfShape / Cast whose inputs are initializers. */
static oq_status eval_const_node(fq *f, const oq_node *n, oq_tensor **out)
{
    *out = NULL;
    int64_t opset = oq_model_opset(f->m, n->domain);
    const oq_op_entry *e = oq_op_find(n->domain, n->op_type, opset);
    if (!e || n->n_inputs > 4 || n->n_outputs != 1)
        return OQ_E_UNSUPPORTED;
    const oq_tensor *in[4] = {0};
    for (size_t k = 0; k < n->n_inputs; k++)
        if (!(in[k] = oq_graph_initializer(f->g, n->inputs[k])))
            return OQ_E_UNSUPPORTED;
    if (!strcmp(n->op_type, "Cast") && (!in[0] || oq_tensor_numel(in[0]) > FOLD_LIMIT || in[0]->dtype == OQ_STRING))
        return OQ_E_UNSUPPORTED;
    if (!strcmp(n->op_type, "ConstantOfShape") && in[0]) {
        int64_t total = 1;
        for (int64_t k = 0; k < oq_tensor_numel(in[0]); k++) {
            int64_t d = oq_tensor_get_i64(in[0], k);
            if (d < 0 || (total *= d) > FOLD_LIMIT)
                return OQ_E_UNSUPPORTED;
        }
    }
    char lb[128];
    oq_op_node on = {.node = n, .label = oq_node_label(n, lb, sizeof lb), .opset = opset, .n_inputs = n->n_inputs,
                     .n_outputs = 1, .consts = in};
    oq_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = e->def->prepare ? e->def->prepare(&on) : OQ_OK;
    if (st == OQ_OK && e->def->infer) {
        st = e->def->infer(&on, in, &t);
        if (st == OQ_OK) {
            int64_t dims[OQ_MAX_DIMS];
            memcpy(dims, t->dims, sizeof dims);
            st = oq_tensor_alloc(t, t->dtype, t->ndim, dims);
        }
    }
    if (st == OQ_OK)
        st = e->def->run(&on, in, &t);
    if (e->def->destroy)
        e->def->destroy(on.state);
    if (st == OQ_OK && !(t->name = oq_strdup(n->outputs[0])))
        st = oq_error(OQ_E_NOMEM, "out of memory");
    if (st != OQ_OK) {
        oq_tensor_destroy(t);
        oq_error_clear();
        return OQ_E_UNSUPPORTED;
    }
    *out = t;
    return OQ_OK;
}

static oq_status fold_constants(fq *f)
{
    for (size_t i = 0; i < f->g->n_nodes; i++) {
        oq_node *n = &f->g->nodes[i];
        if (f->dead[i] || !(is_op(n, "Constant") || is_op(n, "ConstantOfShape") || is_op(n, "Cast")) ||
            n->n_outputs != 1 || oq_graph_is_output(f->g, n->outputs[0]) || oq_graph_initializer(f->g, n->outputs[0]))
            continue;
        oq_tensor *t;
        if (eval_const_node(f, n, &t) != OQ_OK)
            continue;
        oq_status st = add_initializer(f, t);
        if (st != OQ_OK) {
            oq_tensor_destroy(t);
            return st;
        }
        f->dead[i] = true;
    }
    return OQ_OK;
}

/* Renames direct reads of from into to in live nodes. */
static oq_status rename_reads(fq *f, const char *from, const char *to)
{
    for (size_t i = 0; i < f->g->n_nodes; i++) {
        if (f->dead[i])
            continue;
        oq_node *n = &f->g->nodes[i];
        for (size_t k = 0; k < n->n_inputs; k++)
            if (!strcmp(n->inputs[k], from)) {
                char *s = oq_strdup(to);
                if (!s)
                    return oq_error(OQ_E_NOMEM, "out of memory");
                free(n->inputs[k]);
                n->inputs[k] = s;
            }
    }
    return OQ_OK;
}

/* PyTorch puts Cast(to=uint8) between QuantizeLinear (already uint8) and DequantizeLinear. */
static oq_status drop_noop_casts(fq *f)
{
    for (size_t i = 0; i < f->g->n_nodes; i++) {
        oq_node *n = &f->g->nodes[i];
        if (f->dead[i] || !is_op(n, "Cast") || n->n_inputs != 1 || n->n_outputs != 1 ||
            oq_graph_is_output(f->g, n->outputs[0]))
            continue;
        oq_dtype to = (oq_dtype)oq_node_attr_int(n, "to", 0);
        if (to == OQ_UNDEFINED || value_type(f, n->inputs[0]) != to)
            continue;
        /* only when every reader is a node of this graph (not a subgraph) */
        size_t direct = 0;
        for (size_t j = 0; j < f->g->n_nodes; j++)
            if (!f->dead[j])
                for (size_t k = 0; k < f->g->nodes[j].n_inputs; k++)
                    direct += !strcmp(f->g->nodes[j].inputs[k], n->outputs[0]);
        if (direct != live_readers(f, n->outputs[0]))
            continue;
        f->dead[i] = true;
        oq_status st = rename_reads(f, n->outputs[0], n->inputs[0]);
        if (st != OQ_OK)
            return st;
    }
    return OQ_OK;
}

/* ---- clean-up ---- */

static void compact(fq *f)
{
    oq_graph *g = f->g;
    size_t w = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        if (f->dead[i]) {
            oq_node_clear(&g->nodes[i]);
            continue;
        }
        g->nodes[w] = g->nodes[i];
        f->dead[w] = false;
        w++;
    }
    g->n_nodes = w;
}

static bool is_graph_input(const oq_graph *g, const char *name)
{
    for (size_t i = 0; i < g->n_inputs; i++)
        if (!strcmp(g->inputs[i].name, name))
            return true;
    return false;
}

static void drop_dead_values(fq *f)
{
    bool again = true;
    while (again) {
        again = false;
        for (size_t i = 0; i < f->g->n_nodes; i++) {
            oq_node *n = &f->g->nodes[i];
            if (!f->dead[i] && (is_op(n, "DequantizeLinear") || is_op(n, "QuantizeLinear")) && n->n_outputs == 1 &&
                !oq_graph_is_output(f->g, n->outputs[0]) && live_readers(f, n->outputs[0]) == 0) {
                f->dead[i] = true;
                again = true;
            }
        }
    }
    compact(f);
    oq_graph *g = f->g;
    size_t w = 0;
    for (size_t i = 0; i < g->n_initializers; i++) {
        oq_tensor *t = g->initializers[i];
        if (t->name && !is_graph_input(g, t->name) && !oq_graph_is_output(g, t->name) &&
            oq_graph_count_readers(g, t->name) == 0) {
            oq_tensor_destroy(t);
            continue;
        }
        g->initializers[w++] = t;
    }
    g->n_initializers = w;
}

static bool has_qdq(const oq_graph *g)
{
    for (size_t i = 0; i < g->n_nodes; i++)
        if (is_op(&g->nodes[i], "DequantizeLinear"))
            return true;
    return false;
}

static bool is_target(const oq_node *n)
{
    static const char *const ops[] = {"Conv",      "MatMul",  "Gemm",      "Add",   "Mul", "AveragePool",
                                      "GlobalAveragePool", "Sigmoid", "LeakyRelu", "Concat"};
    for (size_t k = 0; k < sizeof ops / sizeof *ops; k++)
        if (is_op(n, ops[k]))
            return true;
    return false;
}

/* Whether any input of n comes from a DequantizeLinear: a node worth reporting when it stays float. */
static bool reads_dq(const fq *f, const oq_node *n)
{
    for (size_t k = 0; k < n->n_inputs; k++) {
        long p = n->inputs[k][0] ? producer(f, n->inputs[k]) : -1;
        if (p >= 0 && is_op(&f->g->nodes[p], "DequantizeLinear"))
            return true;
    }
    return false;
}

oq_status pass_fuse_qdq(oq_model *m, oq_graph *g, oq_pass_ctx *ctx)
{
    if (!has_qdq(g))
        return OQ_OK;
    fq f = {.m = m, .g = g};
    f.dead = oq_calloc(g->n_nodes + 1, sizeof *f.dead);
    if (!f.dead)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = fold_constants(&f);
    if (st == OQ_OK)
        st = drop_noop_casts(&f);
    for (size_t i = 0; st == OQ_OK && i < g->n_nodes; i++) {
        if (f.dead[i])
            continue;
        oq_node *n = &g->nodes[i];
        if (pass_through(&f, i) || fold_clamp(&f, i)) {
            f.passthrough++;
            continue;
        }
        if (!is_target(n))
            continue;
        char lb[160], tmp[160];
        snprintf(lb, sizeof lb, "%s", oq_node_label(n, tmp, sizeof tmp));
        char op[32];
        snprintf(op, sizeof op, "%s", n->op_type);
        bool in_qdq = reads_dq(&f, n);
        const char *why = "not a quantized pattern";
        fuse_result r = fuse_node(&f, i, &why);
        if (r == FUSE_ERROR)
            st = oq_error(OQ_E_NOMEM, "out of memory while fusing QDQ node '%s'", lb);
        else if (r == FUSE_DONE) {
            f.fused++;
            f.qlinear++;
            oq_log(OQ_LOG_DEBUG, "fuse_qdq: node '%s' (%s) -> %s", lb, op, g->nodes[i].op_type);
        } else if (in_qdq) {
            f.stayed++;
            oq_log(OQ_LOG_INFO, "fuse_qdq: node '%s' (%s) stays float: %s", lb, op, why);
        }
    }
    if (st == OQ_OK) {
        drop_dead_values(&f);
        if (f.made_ms)
            st = oq_model_import_domain(m, MS_DOMAIN, 1);
    }
    free(f.dead);
    if (st != OQ_OK)
        return st;
    size_t q_left = 0, dq_left = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        q_left += is_op(&g->nodes[i], "QuantizeLinear");
        dq_left += is_op(&g->nodes[i], "DequantizeLinear");
    }
    oq_log(OQ_LOG_INFO,
           "fuse_qdq: graph '%s': %zu nodes fused into integer operators, %zu ran on int8 as they are, %zu stayed "
           "float; %zu QuantizeLinear and %zu DequantizeLinear left",
           g->name ? g->name : "", f.qlinear, f.passthrough, f.stayed, q_left, dq_left);
    ctx->changed += f.fused + f.passthrough;
    return OQ_OK;
}
