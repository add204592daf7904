/* passes/util: small graph-editing helpers shared by the passes, and the
 * default pass pipeline the session runs. */
#include "passes/pass.h"

#include <stdlib.h>
#include <string.h>

static size_t readers_in(const oq_graph *g, const char *name);

static size_t readers_in_attrs(const oq_node *n, const char *name)
{
    size_t c = 0;
    for (size_t a = 0; a < n->n_attrs; a++) {
        if (n->attrs[a].g)
            c += readers_in(n->attrs[a].g, name);
        for (size_t k = 0; k < n->attrs[a].n_graphs; k++)
            c += readers_in(n->attrs[a].graphs[k], name);
    }
    return c;
}

static size_t readers_in(const oq_graph *g, const char *name)
{
    size_t c = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const oq_node *n = &g->nodes[i];
        for (size_t k = 0; k < n->n_inputs; k++)
            c += !strcmp(n->inputs[k], name);
        c += readers_in_attrs(n, name);
    }
    for (size_t i = 0; i < g->n_outputs; i++)
        c += !strcmp(g->outputs[i].name, name);
    return c;
}

size_t oq_graph_count_readers(const oq_graph *g, const char *name) { return readers_in(g, name); }

bool oq_graph_is_output(const oq_graph *g, const char *name)
{
    for (size_t i = 0; i < g->n_outputs; i++)
        if (!strcmp(g->outputs[i].name, name))
            return true;
    return false;
}

void oq_graph_remove_node(oq_graph *g, size_t i)
{
    oq_node_clear(&g->nodes[i]);
    memmove(&g->nodes[i], &g->nodes[i + 1], (g->n_nodes - i - 1) * sizeof *g->nodes);
    g->n_nodes--;
}

static oq_attr *new_attr(oq_node *n, const char *name, oq_attr_type type)
{
    oq_attr *a = realloc(n->attrs, (n->n_attrs + 1) * sizeof *a);
    if (!a)
        return NULL;
    n->attrs = a;
    a = &n->attrs[n->n_attrs];
    memset(a, 0, sizeof *a);
    a->name = oq_strdup(name);
    a->type = type;
    if (!a->name)
        return NULL;
    n->n_attrs++;
    return a;
}

oq_status oq_node_add_attr_string(oq_node *n, const char *name, const char *value)
{
    oq_attr *a = new_attr(n, name, OQ_ATTR_STRING);
    if (!a || !(a->s.data = oq_strdup(value)))
        return oq_error(OQ_E_NOMEM, "out of memory");
    a->s.len = strlen(value);
    return OQ_OK;
}

oq_status oq_node_add_attr_floats(oq_node *n, const char *name, const float *v, size_t count)
{
    oq_attr *a = new_attr(n, name, OQ_ATTR_FLOATS);
    if (!a || !(a->floats = oq_malloc(count * sizeof *v)))
        return oq_error(OQ_E_NOMEM, "out of memory");
    memcpy(a->floats, v, count * sizeof *v);
    a->n_floats = count;
    return OQ_OK;
}

static oq_status run_graph(oq_model *m, oq_graph *g, oq_pass_ctx *ctx)
{
    oq_status st = pass_fuse_activation(m, g, ctx);
    for (size_t i = 0; i < g->n_nodes && st == OQ_OK; i++)
        for (size_t a = 0; a < g->nodes[i].n_attrs && st == OQ_OK; a++) {
            if (g->nodes[i].attrs[a].g)
                st = run_graph(m, g->nodes[i].attrs[a].g, ctx);
        }
    return st;
}

oq_status oq_passes_run_default(oq_model *m, oq_pass_ctx *ctx) { return run_graph(m, m->graph, ctx); }
