/* onnx/validate: after loading, checks every graph (subgraphs with the names
 * of their enclosing scopes visible), sorts nodes, and checks that every
 * operator is implemented for the model's opset. */
#include "onnx/onnx_io.h"
#include "ops/op.h"

#include <stdlib.h>
#include <string.h>

typedef struct scope {
    const char **names;
    size_t n, cap;
} scope;

static oq_status scope_add(scope *s, const char *name)
{
    oq_status st = oq_grow((void **)&s->names, &s->cap, s->n + 1, sizeof *s->names);
    if (st == OQ_OK)
        s->names[s->n++] = name;
    return st;
}

static oq_status validate_graph(oq_graph *g, scope *outer, const char *file)
{
    oq_status st = oq_graph_verify(g, outer->names, outer->n);
    if (st == OQ_OK)
        st = oq_graph_toposort(g, outer->names, outer->n);
    if (st != OQ_OK)
        return oq_error_context(st, "%s: graph '%s'", file, g->name ? g->name : "");
    size_t mark = outer->n;
    for (size_t i = 0; i < g->n_inputs && st == OQ_OK; i++)
        st = scope_add(outer, g->inputs[i].name);
    for (size_t i = 0; i < g->n_initializers && st == OQ_OK; i++)
        st = scope_add(outer, g->initializers[i]->name);
    for (size_t i = 0; i < g->n_nodes && st == OQ_OK; i++)
        for (size_t o = 0; o < g->nodes[i].n_outputs && st == OQ_OK; o++)
            st = scope_add(outer, g->nodes[i].outputs[o]);
    for (size_t i = 0; i < g->n_nodes && st == OQ_OK; i++) {
        oq_node *n = &g->nodes[i];
        for (size_t a = 0; a < n->n_attrs && st == OQ_OK; a++) {
            if (n->attrs[a].g)
                st = validate_graph(n->attrs[a].g, outer, file);
            for (size_t k = 0; k < n->attrs[a].n_graphs && st == OQ_OK; k++)
                st = validate_graph(n->attrs[a].graphs[k], outer, file);
        }
    }
    outer->n = mark;
    return st;
}

oq_status oq_model_validate(oq_model *m)
{
    scope s = {0};
    oq_status st = validate_graph(m->graph, &s, m->path ? m->path : "<model>");
    free(s.names);
    return st;
}

static oq_status check_graph(const oq_model *m, const oq_graph *g)
{
    char lb[256];
    for (size_t i = 0; i < g->n_nodes; i++) {
        const oq_node *n = &g->nodes[i];
        int64_t opset = oq_model_opset(m, n->domain);
        if (opset == 0 && !oq_domain_is_default(n->domain))
            opset = 1; /* custom domains without an import: accept version 1 */
        if (!oq_op_find(n->domain, n->op_type, opset)) {
            const oq_op_entry *any = oq_op_find_any(n->domain, n->op_type);
            const char *dom = oq_domain_is_default(n->domain) ? "ai.onnx" : n->domain;
            if (any)
                return oq_error(OQ_E_UNSUPPORTED,
                                "%s: node '%s': operator %s (domain %s) at opset %lld is not supported; onnxq implements "
                                "it for opsets %d to %d",
                                m->path ? m->path : "<model>", oq_node_label(n, lb, sizeof lb), n->op_type, dom,
                                (long long)opset, any->first_opset, any->last_opset);
            return oq_error(OQ_E_UNSUPPORTED, "%s: node '%s': operator %s (domain %s, opset %lld) is not implemented",
                            m->path ? m->path : "<model>", oq_node_label(n, lb, sizeof lb), n->op_type, dom,
                            (long long)opset);
        }
        for (size_t a = 0; a < n->n_attrs; a++) {
            oq_status st = OQ_OK;
            if (n->attrs[a].g)
                st = check_graph(m, n->attrs[a].g);
            for (size_t k = 0; k < n->attrs[a].n_graphs && st == OQ_OK; k++)
                st = check_graph(m, n->attrs[a].graphs[k]);
            if (st != OQ_OK)
                return st;
        }
    }
    return OQ_OK;
}

oq_status oq_model_check_supported(const oq_model *m)
{
    if (!m)
        return oq_error(OQ_E_INVALID_ARG, "oq_model_check_supported: NULL model");
    int64_t opset = oq_model_opset(m, "");
    if (opset > 21)
        return oq_error(OQ_E_UNSUPPORTED, "%s: the model uses opset %lld of the default domain; onnxq supports up to 21",
                        m->path ? m->path : "<model>", (long long)opset);
    return check_graph(m, m->graph);
}
