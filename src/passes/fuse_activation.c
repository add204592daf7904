/* passes/fuse_activation: Conv or Gemm whose only reader is a Relu or a Clip
 * with constant bounds takes the activation into its output stage, so the
 * kernel clamps while the tile is still in registers. */
#include "passes/pass.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Constant scalar input of a Clip (opset >= 11), from an initializer. */
static bool const_scalar(const oq_graph *g, const oq_node *n, size_t i, float *v)
{
    const char *name = oq_node_input(n, i);
    if (!name)
        return true; /* absent: keep the default */
    const oq_tensor *t = oq_graph_initializer(g, name);
    if (!t || oq_tensor_numel(t) != 1 || (t->dtype != OQ_FLOAT))
        return false;
    *v = *(const float *)t->data;
    return true;
}

static bool activation_bounds(const oq_model *m, const oq_graph *g, const oq_node *act, float *lo, float *hi)
{
    if (!oq_domain_is_default(act->domain))
        return false;
    if (!strcmp(act->op_type, "Relu")) {
        *lo = 0.0f;
        *hi = INFINITY;
        return true;
    }
    if (strcmp(act->op_type, "Clip"))
        return false;
    *lo = -INFINITY;
    *hi = INFINITY;
    if (oq_model_opset(m, act->domain) < 11) {
        *lo = oq_node_attr_float(act, "min", -FLT_MAX);
        *hi = oq_node_attr_float(act, "max", FLT_MAX);
        return true;
    }
    return const_scalar(g, act, 1, lo) && const_scalar(g, act, 2, hi);
}

oq_status pass_fuse_activation(oq_model *m, oq_graph *g, oq_pass_ctx *ctx)
{
    for (size_t i = 0; i < g->n_nodes; i++) {
        oq_node *p = &g->nodes[i];
        if (!oq_domain_is_default(p->domain) || (strcmp(p->op_type, "Conv") && strcmp(p->op_type, "Gemm")) ||
            p->n_outputs != 1 || oq_node_attr(p, "onnxq_activation"))
            continue;
        const char *y = p->outputs[0];
        if (oq_pass_keeps_value(ctx, g, y) || oq_graph_count_readers(g, y) != 1)
            continue;
        size_t j = i + 1;
        for (; j < g->n_nodes; j++)
            if (g->nodes[j].n_inputs && !strcmp(g->nodes[j].inputs[0], y))
                break;
        if (j == g->n_nodes || g->nodes[j].n_outputs != 1)
            continue;
        oq_node *act = &g->nodes[j];
        float bounds[2];
        if (!activation_bounds(m, g, act, &bounds[0], &bounds[1]))
            continue;
        oq_status st = oq_node_add_attr_string(p, "onnxq_activation", act->op_type);
        if (st == OQ_OK)
            st = oq_node_add_attr_floats(p, "onnxq_activation_params", bounds, 2);
        if (st != OQ_OK)
            return st;
        /* The producer now writes the activation's output. */
        char *out = act->outputs[0];
        act->outputs[0] = p->outputs[0];
        p->outputs[0] = out;
        oq_graph_remove_node(g, j);
        ctx->changed++;
    }
    return OQ_OK;
}
