/* passes/dead_nodes: removes what cannot affect a graph output — nodes none of
 * whose outputs is read on the way to one, initializers nobody reads, and
 * value_info entries of values that no longer exist. Runs last in the pipelines. */
#include "passes/pass.h"

#include <stdlib.h>
#include <string.h>

static oq_status mark(oq_strmap *live, const char *name) { return oq_strmap_put(live, name, 1); }

oq_status pass_dead_nodes(oq_model *m, oq_graph *g, oq_pass_ctx *ctx)
{
    (void)m;
    oq_strmap live;
    oq_status st = oq_strmap_init(&live, 2 * g->n_nodes + g->n_outputs + 8);
    if (st != OQ_OK)
        return st;
    for (size_t i = 0; i < g->n_outputs && st == OQ_OK; i++)
        st = mark(&live, g->outputs[i].name);
    /* Nodes are in topological order: walking back, a node is live when one of
     * its outputs is, and then everything it reads (its subgraphs' outer reads included) is. */
    bool *keep = oq_calloc(g->n_nodes + 1, sizeof *keep);
    if (!keep && st == OQ_OK)
        st = oq_error(OQ_E_NOMEM, "out of memory");
    for (size_t i = g->n_nodes; i-- > 0 && st == OQ_OK;) {
        const oq_node *n = &g->nodes[i];
        size_t v;
        for (size_t o = 0; o < n->n_outputs && !keep[i]; o++)
            keep[i] = n->outputs[o][0] && oq_strmap_get(&live, n->outputs[o], &v);
        if (!keep[i])
            continue;
        for (size_t k = 0; k < n->n_inputs && st == OQ_OK; k++)
            if (n->inputs[k][0])
                st = mark(&live, n->inputs[k]);
        const char **imp = NULL;
        size_t n_imp = 0;
        if (st == OQ_OK)
            st = oq_node_implicit_inputs(n, &imp, &n_imp);
        for (size_t k = 0; k < n_imp && st == OQ_OK; k++)
            st = mark(&live, imp[k]);
        free(imp);
    }
    size_t removed = 0, removed_init = 0, kept = 0;
    if (st == OQ_OK) {
        for (size_t i = 0; i < g->n_nodes; i++) {
            if (keep[i]) {
                g->nodes[kept++] = g->nodes[i];
                continue;
            }
            oq_node_clear(&g->nodes[i]);
            removed++;
        }
        g->n_nodes = kept;
        /* Initializers also listed as graph inputs (IR < 4) go with their input
         * entry: they were never meant to be fed. */
        for (size_t i = g->n_initializers; i-- > 0;) {
            size_t v;
            const char *name = g->initializers[i]->name;
            if (name && !oq_strmap_get(&live, name, &v)) {
                oq_graph_remove_initializer(g, i);
                removed_init++;
            }
        }
    }
    oq_strmap_free(&live);
    free(keep);
    if (st != OQ_OK)
        return st;
    /* value_info of values that no longer exist would mislead readers of the saved file. */
    oq_strmap made;
    if ((st = oq_strmap_init(&made, 2 * g->n_nodes + 8)) != OQ_OK)
        return st;
    for (size_t i = 0; i < g->n_nodes && st == OQ_OK; i++)
        for (size_t o = 0; o < g->nodes[i].n_outputs && st == OQ_OK; o++)
            st = mark(&made, g->nodes[i].outputs[o]);
    size_t vk = 0;
    for (size_t i = 0; i < g->n_value_infos; i++) {
        size_t v;
        const char *name = g->value_infos[i].name;
        if (st != OQ_OK || (name && oq_strmap_get(&made, name, &v)))
            g->value_infos[vk++] = g->value_infos[i];
        else
            oq_value_info_clear(&g->value_infos[i]);
    }
    oq_strmap_free(&made);
    g->n_value_infos = vk;
    if (st != OQ_OK)
        return st;
    ctx->changed += removed + removed_init;
    if (removed)
        oq_pass_note(ctx, "dead_nodes", "%zu node%s removed (no path to an output)", removed, removed == 1 ? "" : "s");
    if (removed_init)
        oq_pass_note(ctx, "dead_nodes", "%zu unused initializer%s removed", removed_init,
                     removed_init == 1 ? "" : "s");
    return OQ_OK;
}
