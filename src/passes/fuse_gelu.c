/* passes/fuse_gelu: the exact (erf) GELU as exporters write it out,
 *   y = x * 0.5 * (1 + Erf(x / sqrt 2))   (any order of the two Muls)
 * becomes one Gelu node: ai.onnx from opset 20, com.microsoft below (onnxruntime's
 * contrib operator; onnxq registers both). */
#include "passes/pass.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool is_op(const oq_graph *g, size_t i, const char *op)
{
    return i < g->n_nodes && !strcmp(g->nodes[i].op_type, op) && oq_domain_is_default(g->nodes[i].domain) &&
           g->nodes[i].n_outputs == 1 && (!strcmp(op, "Erf") || g->nodes[i].n_inputs == 2);
}

static const char *other_input(const oq_node *n, const char *name)
{
    if (!strcmp(n->inputs[0], name))
        return n->inputs[1];
    if (!strcmp(n->inputs[1], name))
        return n->inputs[0];
    return NULL;
}

static bool scalar_is(const oq_graph *g, const char *name, double want)
{
    double v;
    return name && oq_graph_const_scalar(g, name, &v) && fabs(v - want) <= 1e-6 * fabs(want);
}

/* Matches around Erf node e; idx gets the nodes (last = the one producing y). */
static bool match(const oq_graph *g, size_t e, size_t idx[5], const char **x)
{
    if (!is_op(g, e, "Erf"))
        return false;
    const char *t = g->nodes[e].inputs[0];
    size_t scale = oq_graph_producer(g, t);
    if (scale == SIZE_MAX || oq_graph_single_reader(g, t) != e)
        return false;
    const oq_node *s = &g->nodes[scale];
    if (is_op(g, scale, "Div") && scalar_is(g, s->inputs[1], sqrt(2.0)))
        *x = s->inputs[0];
    else if (is_op(g, scale, "Mul") && scalar_is(g, s->inputs[1], sqrt(0.5)))
        *x = s->inputs[0];
    else if (is_op(g, scale, "Mul") && scalar_is(g, s->inputs[0], sqrt(0.5)))
        *x = s->inputs[1];
    else
        return false;
    size_t add = oq_graph_single_reader(g, g->nodes[e].outputs[0]);
    if (!is_op(g, add, "Add") || !scalar_is(g, other_input(&g->nodes[add], g->nodes[e].outputs[0]), 1.0))
        return false;
    const char *a = g->nodes[add].outputs[0];
    size_t m1 = oq_graph_single_reader(g, a);
    if (!is_op(g, m1, "Mul"))
        return false;
    const char *o = other_input(&g->nodes[m1], a);
    size_t all[5] = {scale, e, add, m1, SIZE_MAX};
    if (!strcmp(o, *x) || scalar_is(g, o, 0.5)) {
        /* (x * a) * 0.5, or x * (a * 0.5) */
        size_t m2 = oq_graph_single_reader(g, g->nodes[m1].outputs[0]);
        if (!is_op(g, m2, "Mul"))
            return false;
        const char *o2 = other_input(&g->nodes[m2], g->nodes[m1].outputs[0]);
        if (!strcmp(o, *x) ? !scalar_is(g, o2, 0.5) : strcmp(o2, *x))
            return false;
        all[4] = m2;
    } else {
        /* (x * 0.5) * a */
        size_t h = oq_graph_producer(g, o);
        if (!is_op(g, h, "Mul") || oq_graph_single_reader(g, o) != m1 ||
            !scalar_is(g, other_input(&g->nodes[h], *x), 0.5))
            return false;
        all[4] = m1;
        all[3] = h;
    }
    memcpy(idx, all, sizeof all);
    return true;
}

static int cmp_desc(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

oq_status pass_fuse_gelu(oq_model *m, oq_graph *g, oq_pass_ctx *ctx)
{
    size_t fused = 0;
    bool contrib = oq_model_opset(m, "") < 20;
    for (size_t e = 0; e < g->n_nodes;) {
        size_t idx[5];
        const char *x;
        if (!match(g, e, idx, &x)) {
            e++;
            continue;
        }
        oq_status st = contrib ? oq_model_import_domain(m, "com.microsoft", 1) : OQ_OK;
        const char *in[1] = {x};
        if (st == OQ_OK)
            st = oq_node_rewrite(&g->nodes[idx[4]], "Gelu", contrib ? "com.microsoft" : "", in, 1, true);
        if (st != OQ_OK)
            return st;
        size_t gone[4];
        memcpy(gone, idx, sizeof gone);
        qsort(gone, 4, sizeof *gone, cmp_desc);
        for (size_t k = 0; k < 4; k++)
            oq_graph_remove_node(g, gone[k]);
        fused++;
        ctx->changed++;
        e = e >= 2 ? e - 2 : 0; /* the scaling node before e went too */
    }
    if (fused)
        oq_pass_note(ctx, "fuse_gelu", "%zu erf GELU%s fused into Gelu%s", fused, fused == 1 ? "" : "s",
                     contrib ? " (com.microsoft)" : "");
    return OQ_OK;
}
