/* passes/fuse_matmul_bias: MatMul(A, W) + b with a 2-D A, constant W [K,N]
 * and constant b of N values is exactly Gemm(A, W, b): the bias is then added
 * in the GEMM's output stage instead of by a second pass over the result. */
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
    return OQ_OK;
}
