/* passes/fold_batchnorm: an inference BatchNormalization whose input is the
 * only use of a Conv, ConvTranspose or Gemm output with constant weights is an
 * affine map per output channel, so it folds into new weight and bias
 * initializers (the originals stay while something else reads them). */
#include "passes/pass.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const oq_tensor *const_f32(const oq_graph *g, const oq_node *n, size_t i)
{
    const char *name = oq_node_input(n, i);
    const oq_tensor *t = name ? oq_graph_initializer(g, name) : NULL;
    return t && t->dtype == OQ_FLOAT && t->data ? t : NULL;
}

static bool is_vector(const oq_tensor *t, int64_t len)
{
    if (!t || oq_tensor_numel(t) != len)
        return false;
    for (int d = 0; d < t->ndim - 1; d++)
        if (t->dims[d] != 1)
            return false;
    return true;
}

/* New float initializer named after base. */
static oq_status new_tensor(oq_graph *g, const char *base, const char *suffix, int ndim, const int64_t *dims,
                            oq_tensor **out)
{
    oq_tensor *t = NULL;
    oq_status st = oq_tensor_create(OQ_FLOAT, ndim, dims, &t);
    if (st != OQ_OK)
        return st;
    t->name = oq_graph_unique_name(g, base, suffix);
    if (!t->name) {
        oq_tensor_destroy(t);
        return oq_error(OQ_E_NOMEM, "out of memory");
    }
    if ((st = oq_graph_add_initializer(g, t)) != OQ_OK) {
        oq_tensor_destroy(t);
        return st;
    }
    *out = t;
    return OQ_OK;
}

static oq_status set_input(oq_node *n, size_t i, const char *name)
{
    if (i >= n->n_inputs) {
        char **in = realloc(n->inputs, (i + 1) * sizeof *in);
        if (!in)
            return oq_error(OQ_E_NOMEM, "out of memory");
        n->inputs = in;
        for (size_t k = n->n_inputs; k <= i; k++)
            in[k] = NULL;
        for (size_t k = n->n_inputs; k < i; k++)
            if (!(in[k] = oq_strdup("")))
                return oq_error(OQ_E_NOMEM, "out of memory");
        n->n_inputs = i + 1;
    }
    char *s = oq_strdup(name);
    if (!s)
        return oq_error(OQ_E_NOMEM, "out of memory");
    free(n->inputs[i]);
    n->inputs[i] = s;
    return OQ_OK;
}

static bool bn_is_inference(const oq_model *m, const oq_graph *g, const oq_node *bn)
{
    (void)m;
    /* training_mode (opset 14+), spatial=0 (opset < 9) and is_test=0 (opset < 7) are not inference. */
    if (oq_node_attr_int(bn, "training_mode", 0) || oq_node_attr_int(bn, "spatial", 1) != 1 ||
        oq_node_attr_int(bn, "is_test", 1) == 0)
        return false;
    for (size_t o = 1; o < bn->n_outputs; o++)
        if (bn->outputs[o][0] && oq_graph_count_readers(g, bn->outputs[o]))
            return false;
    return bn->n_inputs >= 5;
}

/* Folds bn (per channel y = a*x + c) into producer p. Returns false (nothing
 * changed) when the shapes do not fit. */
static oq_status fold(oq_model *m, oq_graph *g, oq_node *p, const oq_node *bn, bool *done)
{
    (void)m;
    *done = false;
    const oq_tensor *w = const_f32(g, p, 1), *b = NULL;
    const oq_tensor *scale = const_f32(g, bn, 1), *shift = const_f32(g, bn, 2), *mean = const_f32(g, bn, 3),
                    *var = const_f32(g, bn, 4);
    if (!w || !scale || !shift || !mean || !var || w->ndim < 2)
        return OQ_OK;
    bool conv = !strcmp(p->op_type, "Conv"), convt = !strcmp(p->op_type, "ConvTranspose");
    bool gemm = !strcmp(p->op_type, "Gemm");
    int64_t group = oq_node_attr_int(p, "group", 1);
    bool trans_b = oq_node_attr_int(p, "transB", 0) != 0;
    int64_t channels;
    if (conv)
        channels = w->dims[0];
    else if (convt)
        channels = w->dims[1] * group;
    else {
        if (w->ndim != 2)
            return OQ_OK;
        channels = trans_b ? w->dims[0] : w->dims[1];
    }
    if (group < 1 || channels < 1 || (convt && w->dims[0] % group))
        return OQ_OK;
    if (!is_vector(scale, channels) || !is_vector(shift, channels) || !is_vector(mean, channels) ||
        !is_vector(var, channels))
        return OQ_OK;
    float beta = 1.0f;
    if (oq_node_input(p, 2)) {
        b = const_f32(g, p, 2);
        if (!b)
            return OQ_OK;
        if (gemm) {
            beta = oq_node_attr_float(p, "beta", 1.0f);
            if (!is_vector(b, channels) && oq_tensor_numel(b) != 1)
                return OQ_OK;
        } else if (!is_vector(b, channels)) {
            return OQ_OK;
        }
    }
    if (gemm && !b && oq_node_attr_float(p, "beta", 1.0f) != 1.0f)
        return OQ_OK;
    float eps = oq_node_attr_float(bn, "epsilon", 1e-5f);
    const float *s = scale->data, *sh = shift->data, *mu = mean->data, *v = var->data;
    float *a = oq_malloc((size_t)channels * sizeof *a);
    if (!a)
        return oq_error(OQ_E_NOMEM, "out of memory");
    /* onnxruntime computes the normalization in float the same way. */
    for (int64_t c = 0; c < channels; c++)
        a[c] = s[c] / sqrtf(v[c] + eps);

    oq_tensor *nw = NULL, *nb = NULL;
    oq_status st = new_tensor(g, w->name, "_bnfold", w->ndim, w->dims, &nw);
    int64_t bdim = channels;
    if (st == OQ_OK)
        st = new_tensor(g, b ? b->name : w->name, b ? "_bnfold" : "_bias_bnfold", 1, &bdim, &nb);
    if (st == OQ_OK) {
        const float *wd = w->data;
        float *nwd = nw->data, *nbd = nb->data;
        size_t total = (size_t)oq_tensor_numel(w);
        if (conv) {
            size_t per = total / (size_t)channels;
            for (size_t i = 0; i < total; i++)
                nwd[i] = wd[i] * a[i / per];
        } else if (convt) {
            /* W is [C_in, C_out/group, k...]; output channel of (ci, j) is group(ci)*(C_out/group)+j. */
            size_t cin = (size_t)w->dims[0], cpg = (size_t)w->dims[1], k = total / (cin * cpg);
            size_t cin_per_group = cin / (size_t)group;
            for (size_t ci = 0; ci < cin; ci++)
                for (size_t j = 0; j < cpg; j++) {
                    float f = a[(ci / cin_per_group) * cpg + j];
                    for (size_t x = 0; x < k; x++)
                        nwd[(ci * cpg + j) * k + x] = wd[(ci * cpg + j) * k + x] * f;
                }
        } else {
            size_t rows = (size_t)w->dims[0], cols = (size_t)w->dims[1];
            for (size_t r = 0; r < rows; r++)
                for (size_t c = 0; c < cols; c++)
                    nwd[r * cols + c] = wd[r * cols + c] * a[trans_b ? r : c];
        }
        const float *bd = b ? b->data : NULL;
        bool scalar_b = b && oq_tensor_numel(b) == 1;
        for (int64_t c = 0; c < channels; c++) {
            float bias = bd ? beta * bd[scalar_b ? 0 : c] : 0.0f;
            nbd[c] = (bias - mu[c]) * a[c] + sh[c];
        }
        st = set_input(p, 1, nw->name);
        if (st == OQ_OK)
            st = set_input(p, 2, nb->name);
        if (st == OQ_OK && gemm && oq_node_attr(p, "beta")) {
            for (size_t k = 0; k < p->n_attrs; k++)
                if (!strcmp(p->attrs[k].name, "beta"))
                    p->attrs[k].f = 1.0f;
        }
        *done = st == OQ_OK;
    }
    free(a);
    return st;
}

oq_status pass_fold_batchnorm(oq_model *m, oq_graph *g, oq_pass_ctx *ctx)
{
    size_t counts[3] = {0, 0, 0};
    static const char *const producers[3] = {"Conv", "ConvTranspose", "Gemm"};
    for (size_t i = 0; i < g->n_nodes; i++) {
        oq_node *p = &g->nodes[i];
        int kind = -1;
        for (int k = 0; k < 3; k++)
            if (!strcmp(p->op_type, producers[k]))
                kind = k;
        if (kind < 0 || !oq_domain_is_default(p->domain) || p->n_outputs != 1 || oq_node_attr(p, "onnxq_activation"))
            continue;
        const char *y = p->outputs[0];
        if (oq_graph_is_output(g, y) || oq_graph_count_readers(g, y) != 1)
            continue;
        size_t j = i + 1;
        for (; j < g->n_nodes; j++)
            if (g->nodes[j].n_inputs && !strcmp(g->nodes[j].inputs[0], y))
                break;
        if (j == g->n_nodes)
            continue;
        oq_node *bn = &g->nodes[j];
        if (strcmp(bn->op_type, "BatchNormalization") || !oq_domain_is_default(bn->domain) ||
            !bn_is_inference(m, g, bn))
            continue;
        bool done;
        oq_status st = fold(m, g, p, bn, &done);
        if (st != OQ_OK)
            return st;
        if (!done)
            continue;
        /* The producer now writes the normalization's output. */
        p = &g->nodes[i];
        bn = &g->nodes[j];
        char *out = bn->outputs[0];
        bn->outputs[0] = p->outputs[0];
        p->outputs[0] = out;
        oq_graph_remove_node(g, j);
        counts[kind]++;
        ctx->changed++;
    }
    for (int k = 0; k < 3; k++)
        if (counts[k])
            oq_pass_note(ctx, "fold_batchnorm", "%zu BatchNormalization folded into %s", counts[k], producers[k]);
    return OQ_OK;
}
