/* passes/fuse_layernorm: layer normalization over the last axis as exporters
 * decompose it below opset 17 —
 *   m = ReduceMean(x)  d = x - m  v = ReduceMean(d^2)  y = d / Sqrt(v + eps) * gamma + beta
 * — becomes one LayerNormalization node: one pass over x instead of nine. */
#include "passes/pass.h"

#include <stdlib.h>
#include <string.h>

static bool is_op(const oq_graph *g, size_t i, const char *op)
{
    return i < g->n_nodes && !strcmp(g->nodes[i].op_type, op) && oq_domain_is_default(g->nodes[i].domain) &&
           g->nodes[i].n_outputs == 1;
}

/* ReduceMean over the last axis only, keeping dims. */
static bool mean_last_axis(const oq_model *m, const oq_graph *g, const oq_node *n)
{
    if (n->n_inputs < 1 || oq_node_attr_int(n, "keepdims", 1) != 1)
        return false;
    const int64_t *axes = NULL;
    size_t count = oq_node_attr_ints(n, "axes", &axes);
    if (oq_model_opset(m, n->domain) >= 18 && oq_node_input(n, 1)) {
        const oq_tensor *t = oq_graph_initializer(g, n->inputs[1]);
        return t && oq_tensor_numel(t) == 1 && oq_tensor_get_i64(t, 0) == -1;
    }
    return count == 1 && axes[0] == -1 && !oq_node_input(n, 1);
}

/* The input of binary node n that is not `name`, or NULL when n does not read name. */
static const char *other_input(const oq_node *n, const char *name)
{
    if (n->n_inputs != 2)
        return NULL;
    if (!strcmp(n->inputs[0], name))
        return n->inputs[1];
    if (!strcmp(n->inputs[1], name))
        return n->inputs[0];
    return NULL;
}

static const oq_tensor *const_vector(const oq_graph *g, const char *name)
{
    const oq_tensor *t = name ? oq_graph_initializer(g, name) : NULL;
    return t && t->dtype == OQ_FLOAT && t->ndim == 1 && t->dims[0] >= 2 ? t : NULL;
}

static oq_status set_attrs(oq_node *n, float eps)
{
    for (size_t a = 0; a < n->n_attrs; a++)
        oq_attr_clear(&n->attrs[a]);
    n->n_attrs = 0;
    oq_attr *attrs = realloc(n->attrs, 2 * sizeof *attrs);
    if (!attrs)
        return oq_error(OQ_E_NOMEM, "out of memory");
    n->attrs = attrs;
    memset(attrs, 0, 2 * sizeof *attrs);
    attrs[0].name = oq_strdup("axis");
    attrs[0].type = OQ_ATTR_INT;
    attrs[0].i = -1;
    attrs[1].name = oq_strdup("epsilon");
    attrs[1].type = OQ_ATTR_FLOAT;
    attrs[1].f = eps;
    n->n_attrs = 2;
    if (!attrs[0].name || !attrs[1].name)
        return oq_error(OQ_E_NOMEM, "out of memory");
    return OQ_OK;
}

static int cmp_desc(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Matches the pattern rooted at ReduceMean node r; on success idx holds the
 * nine nodes (the last one, the final Add or Mul, is rewritten). */
static bool match(const oq_model *m, const oq_graph *g, size_t r, size_t idx[9], const char **x, const char **gamma,
                  const char **beta, double *eps)
{
    const oq_node *mean = &g->nodes[r];
    if (!is_op(g, r, "ReduceMean") || !mean_last_axis(m, g, mean))
        return false;
    *x = mean->inputs[0];
    size_t sub = oq_graph_single_reader(g, mean->outputs[0]);
    if (!is_op(g, sub, "Sub") || g->nodes[sub].n_inputs != 2 || strcmp(g->nodes[sub].inputs[0], *x) ||
        strcmp(g->nodes[sub].inputs[1], mean->outputs[0]))
        return false;
    const char *d = g->nodes[sub].outputs[0];
    if (oq_graph_is_output(g, d) || oq_graph_count_readers(g, d) != 2)
        return false;
    size_t pw = SIZE_MAX, dv = SIZE_MAX;
    for (size_t i = sub + 1; i < g->n_nodes; i++) {
        const oq_node *n = &g->nodes[i];
        if (n->n_inputs == 2 && !strcmp(n->inputs[0], d)) {
            if (is_op(g, i, "Pow"))
                pw = i;
            else if (is_op(g, i, "Div"))
                dv = i;
        }
    }
    double two;
    if (pw == SIZE_MAX || dv == SIZE_MAX || !oq_graph_const_scalar(g, g->nodes[pw].inputs[1], &two) || two != 2.0)
        return false;
    size_t var = oq_graph_single_reader(g, g->nodes[pw].outputs[0]);
    if (!is_op(g, var, "ReduceMean") || !mean_last_axis(m, g, &g->nodes[var]))
        return false;
    size_t add = oq_graph_single_reader(g, g->nodes[var].outputs[0]);
    if (!is_op(g, add, "Add") || !oq_graph_const_scalar(g, other_input(&g->nodes[add], g->nodes[var].outputs[0]), eps))
        return false;
    size_t sq = oq_graph_single_reader(g, g->nodes[add].outputs[0]);
    if (!is_op(g, sq, "Sqrt") || oq_graph_single_reader(g, g->nodes[sq].outputs[0]) != dv ||
        strcmp(g->nodes[dv].inputs[1], g->nodes[sq].outputs[0]))
        return false;
    size_t mul = oq_graph_single_reader(g, g->nodes[dv].outputs[0]);
    if (!is_op(g, mul, "Mul") || !const_vector(g, *gamma = other_input(&g->nodes[mul], g->nodes[dv].outputs[0])))
        return false;
    size_t bias = oq_graph_single_reader(g, g->nodes[mul].outputs[0]);
    const oq_tensor *gt = oq_graph_initializer(g, *gamma), *bt = NULL;
    if (is_op(g, bias, "Add") && (bt = const_vector(g, other_input(&g->nodes[bias], g->nodes[mul].outputs[0]))) &&
        bt->dims[0] == gt->dims[0]) {
        *beta = bt->name;
    } else {
        *beta = NULL;
        bias = SIZE_MAX;
    }
    size_t all[9] = {r, sub, pw, var, add, sq, dv, mul, bias};
    memcpy(idx, all, sizeof all);
    return true;
}

oq_status pass_fuse_layernorm(oq_model *m, oq_graph *g, oq_pass_ctx *ctx)
{
    size_t fused = 0;
    for (size_t r = 0; r < g->n_nodes;) {
        size_t idx[9];
        const char *x, *gamma, *beta;
        double eps;
        if (!match(m, g, r, idx, &x, &gamma, &beta, &eps)) {
            r++;
            continue;
        }
        size_t last = idx[8] != SIZE_MAX ? idx[8] : idx[7];
        oq_node *n = &g->nodes[last];
        char *in[3] = {oq_strdup(x), oq_strdup(gamma), beta ? oq_strdup(beta) : NULL};
        char *op = oq_strdup("LayerNormalization");
        if (!in[0] || !in[1] || (beta && !in[2]) || !op) {
            free(in[0]);
            free(in[1]);
            free(in[2]);
            free(op);
            return oq_error(OQ_E_NOMEM, "out of memory");
        }
        char **inputs = realloc(n->inputs, 3 * sizeof *inputs);
        if (!inputs) {
            free(in[0]);
            free(in[1]);
            free(in[2]);
            free(op);
            return oq_error(OQ_E_NOMEM, "out of memory");
        }
        for (size_t k = 0; k < n->n_inputs; k++)
            free(inputs[k]);
        n->inputs = inputs;
        n->n_inputs = beta ? 3 : 2;
        memcpy(inputs, in, 3 * sizeof *in);
        free(n->op_type);
        n->op_type = op;
        oq_status st = set_attrs(n, (float)eps);
        if (st != OQ_OK)
            return st;
        /* The other nodes go, highest index first so the rest stay valid. */
        size_t gone[8], n_gone = 0;
        for (size_t k = 0; k < 9; k++)
            if (idx[k] != SIZE_MAX && idx[k] != last)
                gone[n_gone++] = idx[k];
        qsort(gone, n_gone, sizeof *gone, cmp_desc);
        for (size_t k = 0; k < n_gone; k++)
            oq_graph_remove_node(g, gone[k]);
        fused++;
        ctx->changed++;
    }
    if (fused)
        oq_pass_note(ctx, "fuse_layernorm", "%zu decomposed layer norm%s fused into LayerNormalization", fused,
                     fused == 1 ? "" : "s");
    return OQ_OK;
}
