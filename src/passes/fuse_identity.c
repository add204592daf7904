/* passes/fuse_identity: Identity nodes, and Dropout in inference (mask
 * unused), copy their input; readers are pointed at the input instead, so
 * neither a copy nor a node remains. */
#include "passes/pass.h"

#include <stdlib.h>
#include <string.h>

static bool is_defined_here(const oq_graph *g, const char *name)
{
    if (oq_graph_initializer(g, name))
        return true;
    for (size_t i = 0; i < g->n_inputs; i++)
        if (!strcmp(g->inputs[i].name, name))
            return true;
    return false;
}

static bool is_passthrough(const oq_model *m, const oq_graph *g, const oq_node *n)
{
    if (!oq_domain_is_default(n->domain) || n->n_outputs < 1 || !oq_node_input(n, 0) || !n->outputs[0][0])
        return false;
    if (!strcmp(n->op_type, "Identity"))
        return n->n_outputs == 1;
    if (strcmp(n->op_type, "Dropout"))
        return false;
    for (size_t o = 1; o < n->n_outputs; o++)
        if (n->outputs[o][0] && oq_graph_count_readers(g, n->outputs[o]))
            return false;
    /* opset 12+: a training_mode input that is not a constant false keeps it. */
    const char *tm = oq_node_input(n, 2);
    if (tm) {
        const oq_tensor *t = oq_graph_initializer(g, tm);
        if (!t || oq_tensor_numel(t) != 1 || oq_tensor_get_i64(t, 0) != 0)
            return false;
    }
    return oq_model_opset(m, n->domain) >= 7 || oq_node_attr_int(n, "is_test", 0) != 0;
}

oq_status pass_fuse_identity(oq_model *m, oq_graph *g, oq_pass_ctx *ctx)
{
    size_t removed[2] = {0, 0};
    for (size_t i = 0; i < g->n_nodes;) {
        oq_node *n = &g->nodes[i];
        if (!is_passthrough(m, g, n)) {
            i++;
            continue;
        }
        const char *x = n->inputs[0], *y = n->outputs[0];
        oq_status st = OQ_OK;
        if (oq_graph_is_output(g, y)) {
            /* y must keep its name: the producer of x writes y instead, when x is
             * produced by a node here and is not itself an output. */
            size_t p = oq_graph_producer(g, x);
            if (p == SIZE_MAX || p > i || oq_graph_is_output(g, x) || is_defined_here(g, x)) {
                i++;
                continue;
            }
            oq_node *pn = &g->nodes[p];
            size_t k = 0;
            while (strcmp(pn->outputs[k], x))
                k++;
            char *xs = pn->outputs[k];
            pn->outputs[k] = n->outputs[0];
            n->outputs[0] = xs; /* freed with the node */
            st = oq_graph_replace_uses(g, xs, pn->outputs[k]);
        } else {
            st = oq_graph_replace_uses(g, y, x);
        }
        if (st != OQ_OK)
            return st;
        removed[!strcmp(g->nodes[i].op_type, "Dropout")]++;
        oq_graph_remove_node(g, i);
        ctx->changed++;
    }
    if (removed[0])
        oq_pass_note(ctx, "fuse_identity", "%zu Identity removed", removed[0]);
    if (removed[1])
        oq_pass_note(ctx, "fuse_identity", "%zu Dropout removed (inference)", removed[1]);
    return OQ_OK;
}
