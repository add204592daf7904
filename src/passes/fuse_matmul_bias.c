/* passes/fuse_matmul_bias: MatMul(A, W) + b with a 2-D A, constant W [K,N]
 * and constant b of N values is exactly Gemm(A, W, b): the bias is then added
 * in the GEMM's output stage instead of by a second pass over the result.
 * Likewise the com.microsoft DynamicQuantizeMatMul / MatMulIntegerToFloat
 * (what dynamic quantization writes) + b of N values take b as their own bias
 * input, for A of any rank: their output stage adds it after the scaling, the
 * same two float operations the Add did. */
#include "passes/pass.h"

#include <stdlib.h>
#include <string.h>

/* Operators whose output has the rank of their first input. */
static bool keeps_rank(const char *op)
{
    static const char *const ops[] = {"Relu", "Sigmoid", "Tanh", "Clip", "Softmax", "LogSoftmax", "Erf", "Gelu",
                                      "LayerNormalization", "BatchNormalization", "Cast", "Identity", "Dropout",
                                      "LeakyRelu", "HardSigmoid", "HardSwish", "Neg", "Abs", "Sqrt", "Exp"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (!strcmp(op, ops[i]))
            return true;
    return false;
}

/* Rank of a value when the graph tells it without running: declared, or
 * carried through rank-preserving operators; -1 when unknown. */
static int declared_rank(const oq_graph *g, const char *name, int depth)
{
    const oq_tensor *t = oq_graph_initializer(g, name);
    if (t)
        return t->ndim;
    for (size_t i = 0; i < g->n_inputs; i++)
        if (!strcmp(g->inputs[i].name, name))
            return g->inputs[i].ndim;
    for (size_t i = 0; i < g->n_value_infos; i++)
        if (!strcmp(g->value_infos[i].name, name) && g->value_infos[i].ndim >= 0)
            return g->value_infos[i].ndim;
    size_t p = oq_graph_producer(g, name);
    if (p == SIZE_MAX || depth > 16 || !g->nodes[p].n_inputs)
        return -1;
    const oq_node *n = &g->nodes[p];
    if (!oq_domain_is_default(n->domain) && strcmp(n->op_type, "Gelu"))
        return -1;
    if (!strcmp(n->op_type, "Gemm") || !strcmp(n->op_type, "Flatten"))
        return 2;
    if (keeps_rank(n->op_type))
        return declared_rank(g, n->inputs[0], depth + 1);
    if ((!strcmp(n->op_type, "Add") || !strcmp(n->op_type, "Mul") || !strcmp(n->op_type, "Sub") ||
         !strcmp(n->op_type, "Div")) && n->n_inputs == 2) {
        int a = declared_rank(g, n->inputs[0], depth + 1), b = declared_rank(g, n->inputs[1], depth + 1);
        return a < 0 || b < 0 ? -1 : a > b ? a : b;
    }
    return -1;
}

/* DynamicQuantizeMatMul (bias is input 4) and MatMulIntegerToFloat (input 6)
 * without a bias, followed by Add of a float initializer of shape [N]. */
static oq_status fuse_integer_bias(oq_graph *g, oq_pass_ctx *ctx)
{
    size_t fused = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        oq_node *mm = &g->nodes[i];
        if (!mm->domain || strcmp(mm->domain, "com.microsoft") || mm->n_outputs != 1)
            continue;
        size_t slot = !strcmp(mm->op_type, "DynamicQuantizeMatMul") ? 4
                      : !strcmp(mm->op_type, "MatMulIntegerToFloat") ? 6
                                                                      : 0;
        if (!slot || mm->n_inputs < 2 || (mm->n_inputs > slot && mm->inputs[slot] && mm->inputs[slot][0]))
            continue;
        const oq_tensor *w = mm->inputs[1] ? oq_graph_initializer(g, mm->inputs[1]) : NULL;
        if (!w || w->ndim != 2)
            continue;
        size_t j = oq_graph_single_reader(g, mm->outputs[0]);
        if (j == SIZE_MAX || strcmp(g->nodes[j].op_type, "Add") || !oq_domain_is_default(g->nodes[j].domain) ||
            g->nodes[j].n_inputs != 2 || g->nodes[j].n_outputs != 1 ||
            !strcmp(g->nodes[j].inputs[0] ? g->nodes[j].inputs[0] : "", g->nodes[j].inputs[1] ? g->nodes[j].inputs[1] : ""))
            continue;
        oq_node *add = &g->nodes[j];
        size_t bi = add->inputs[0] && !strcmp(add->inputs[0], mm->outputs[0]) ? 1 : 0;
        const oq_tensor *b = add->inputs[bi] ? oq_graph_initializer(g, add->inputs[bi]) : NULL;
        if (!b || b->dtype != OQ_FLOAT || b->ndim != 1 || b->dims[0] != w->dims[1])
            continue;
        if (mm->n_inputs <= slot) {
            char **in = realloc(mm->inputs, (slot + 1) * sizeof *in);
            if (!in)
                return oq_error(OQ_E_NOMEM, "out of memory");
            mm->inputs = in;
            for (size_t k = mm->n_inputs; k < slot; k++) {
                if (!(in[k] = oq_strdup(""))) { /* an omitted optional input */
                    mm->n_inputs = k;
                    return oq_error(OQ_E_NOMEM, "out of memory");
                }
                mm->n_inputs = k + 1;
            }
            in[slot] = NULL;
            mm->n_inputs = slot + 1;
        } else
            free(mm->inputs[slot]);
        mm->inputs[slot] = add->inputs[bi];
        add->inputs[bi] = NULL;
        char *y = add->outputs[0];
        add->outputs[0] = mm->outputs[0];
        mm->outputs[0] = y;
        oq_graph_remove_node(g, j);
        fused++;
        ctx->changed++;
    }
    if (fused)
        oq_pass_note(ctx, "fuse_matmul_bias", "%zu integer MatMul + Add: the Add became their bias", fused);
    return OQ_OK;
}

oq_status pass_fuse_matmul_bias(oq_model *m, oq_graph *g, oq_pass_ctx *ctx)
{
    size_t fused = 0;
    if (oq_model_opset(m, "") < 7)
        return OQ_OK; /* Gemm needed a broadcast attribute for a bias vector */
    for (size_t i = 0; i < g->n_nodes; i++) {
        oq_node *mm = &g->nodes[i];
        if (strcmp(mm->op_type, "MatMul") || !oq_domain_is_default(mm->domain) || mm->n_inputs != 2 ||
            mm->n_outputs != 1)
            continue;
        const oq_tensor *w = oq_graph_initializer(g, mm->inputs[1]);
        if (!w || w->dtype != OQ_FLOAT || w->ndim != 2 || declared_rank(g, mm->inputs[0], 0) != 2)
            continue;
        size_t j = oq_graph_single_reader(g, mm->outputs[0]);
        if (j == SIZE_MAX || strcmp(g->nodes[j].op_type, "Add") || !oq_domain_is_default(g->nodes[j].domain) ||
            g->nodes[j].n_inputs != 2 || g->nodes[j].n_outputs != 1)
            continue;
        oq_node *add = &g->nodes[j];
        size_t bi = strcmp(add->inputs[0], mm->outputs[0]) ? 0 : 1;
        const oq_tensor *b = oq_graph_initializer(g, add->inputs[bi]);
        if (!b || b->dtype != OQ_FLOAT || oq_tensor_numel(b) != w->dims[1] || b->ndim > 2 ||
            (b->ndim == 2 && b->dims[0] != 1))
            continue;
        char **in = realloc(mm->inputs, 3 * sizeof *in);
        char *op = oq_strdup("Gemm");
        if (!in || !op) {
            free(op);
            if (in)
                mm->inputs = in;
            return oq_error(OQ_E_NOMEM, "out of memory");
        }
        mm->inputs = in;
        /* The Gemm takes the bias name and the Add's output; the Add keeps the old names and goes. */
        in[2] = add->inputs[bi];
        add->inputs[bi] = NULL;
        mm->n_inputs = 3;
        free(mm->op_type);
        mm->op_type = op;
        char *y = add->outputs[0];
        add->outputs[0] = mm->outputs[0];
        mm->outputs[0] = y;
        oq_graph_remove_node(g, j);
        fused++;
        ctx->changed++;
    }
    if (fused)
        oq_pass_note(ctx, "fuse_matmul_bias", "%zu MatMul + Add fused into Gemm", fused);
    return fuse_integer_bias(g, ctx);
}
