/* quant/qgraph: small graph-building helpers the quantizer's rewriters share:
 * attributes, uniquely named initializers, opset imports (a node:
 * oq_graph_add_node in passes/util.c). */
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static oq_attr *new_attr(oq_node *n, const char *name, oq_attr_type type)
{
    oq_attr *a = oq_realloc(n->attrs, sizeof *a * (n->n_attrs + 1));
    if (!a)
        return NULL;
    n->attrs = a;
    a = &n->attrs[n->n_attrs];
    memset(a, 0, sizeof *a);
    if (!(a->name = oq_strdup(name)))
        return NULL;
    a->type = type;
    n->n_attrs++;
    return a;
}

oq_status qg_attr_float(oq_node *n, const char *name, float v)
{
    oq_attr *a = new_attr(n, name, OQ_ATTR_FLOAT);
    if (!a)
        return oq_error(OQ_E_NOMEM, "out of memory");
    a->f = v;
    return OQ_OK;
}

oq_status qg_copy_attr(oq_node *n, const oq_attr *src)
{
    if (src->type != OQ_ATTR_INT && src->type != OQ_ATTR_INTS && src->type != OQ_ATTR_FLOAT &&
        src->type != OQ_ATTR_STRING && src->type != OQ_ATTR_FLOATS && src->type != OQ_ATTR_STRINGS)
        return oq_error(OQ_E_UNSUPPORTED, "attribute '%s' of this type cannot be carried over", src->name);
    oq_attr *a = new_attr(n, src->name, src->type);
    if (!a)
        return oq_error(OQ_E_NOMEM, "out of memory");
    a->i = src->i;
    a->f = src->f;
    if (src->type == OQ_ATTR_STRING) {
        if (!(a->s.data = oq_strndup(src->s.data, src->s.len)))
            return oq_error(OQ_E_NOMEM, "out of memory");
        a->s.len = src->s.len;
    }
    if (src->n_ints) {
        if (!(a->ints = oq_malloc(sizeof *a->ints * src->n_ints)))
            return oq_error(OQ_E_NOMEM, "out of memory");
        memcpy(a->ints, src->ints, sizeof *a->ints * src->n_ints);
        a->n_ints = src->n_ints;
    }
    if (src->n_strings) {
        if (!(a->strings = oq_calloc(src->n_strings, sizeof *a->strings)))
            return oq_error(OQ_E_NOMEM, "out of memory");
        a->n_strings = src->n_strings;
        for (size_t k = 0; k < src->n_strings; k++) {
            if (!(a->strings[k].data = oq_strndup(src->strings[k].data, src->strings[k].len)))
                return oq_error(OQ_E_NOMEM, "out of memory");
            a->strings[k].len = src->strings[k].len;
        }
    }
    if (src->n_floats) {
        if (!(a->floats = oq_malloc(sizeof *a->floats * src->n_floats)))
            return oq_error(OQ_E_NOMEM, "out of memory");
        memcpy(a->floats, src->floats, sizeof *a->floats * src->n_floats);
        a->n_floats = src->n_floats;
    }
    return OQ_OK;
}

oq_tensor *quant_scope_initializer(const quant_scope *s, const char *name)
{
    for (; s && name; s = s->up) {
        oq_tensor *t = oq_graph_initializer(s->g, name);
        if (t)
            return t;
    }
    return NULL;
}

static bool used_above(const quant_scope *s, const char *name)
{
    for (; s; s = s->up) {
        /* oq_graph_unique_name's test, on a graph we may not edit */
        char *u = oq_graph_unique_name(s->g, name, "");
        bool same = u && !strcmp(u, name);
        free(u);
        if (!same)
            return true;
    }
    return false;
}

char *qg_unique_name(const quant_scope *s, const char *base, const char *suffix)
{
    char *nm = oq_graph_unique_name(s->g, base, suffix);
    if (!nm || !s->up || !used_above(s->up, nm))
        return nm;
    size_t len = strlen(base) + strlen(suffix) + 24;
    char *alt = oq_malloc(len);
    for (unsigned k = 1; alt; k++) {
        snprintf(alt, len, "%s%s_s%u", base, suffix, k);
        char *u = oq_graph_unique_name(s->g, alt, "");
        bool free_here = u && !strcmp(u, alt);
        free(u);
        if (free_here && !used_above(s->up, alt))
            break;
    }
    free(nm);
    return alt;
}

oq_status qg_toposort(oq_graph *g, const quant_scope *s)
{
    const char **names = NULL;
    size_t n = 0, cap = 0;
    oq_status st = OQ_OK;
    for (const quant_scope *u = s ? s->up : NULL; u && st == OQ_OK; u = u->up) {
        const oq_graph *o = u->g;
        for (size_t i = 0; i < o->n_inputs && st == OQ_OK; i++)
            if ((st = oq_grow((void **)&names, &cap, n + 1, sizeof *names)) == OQ_OK)
                names[n++] = o->inputs[i].name;
        for (size_t i = 0; i < o->n_initializers && st == OQ_OK; i++)
            if ((st = oq_grow((void **)&names, &cap, n + 1, sizeof *names)) == OQ_OK)
                names[n++] = o->initializers[i]->name;
        for (size_t i = 0; i < o->n_nodes && st == OQ_OK; i++)
            for (size_t k = 0; k < o->nodes[i].n_outputs && st == OQ_OK; k++)
                if ((st = oq_grow((void **)&names, &cap, n + 1, sizeof *names)) == OQ_OK)
                    names[n++] = o->nodes[i].outputs[k];
    }
    if (st == OQ_OK)
        st = oq_graph_toposort(g, names, n);
    free(names);
    return st;
}

static oq_status each_graph(quant_ctx *q, oq_graph *g, const quant_scope *up, const char *where, qg_graph_fn fn,
                            int depth)
{
    if (depth > 64)
        return oq_error(OQ_E_GRAPH, "subgraphs nested more than 64 deep");
    quant_scope s = {g, up, where};
    const char *saved = q->where;
    q->where = where;
    oq_status st = fn(q, g, &s);
    q->where = saved;
    /* fn may have added nodes: walk the nodes as they are now */
    for (size_t i = 0; i < g->n_nodes && st == OQ_OK; i++) {
        const oq_node *n = &g->nodes[i];
        for (size_t a = 0; a < n->n_attrs && st == OQ_OK; a++) {
            const oq_attr *at = &n->attrs[a];
            size_t count = at->g ? 1 : at->n_graphs;
            for (size_t k = 0; k < count && st == OQ_OK; k++) {
                char lb[200], w[512];
                /* as static.c's labels: the node's name, else its first output */
                const char *nl = n->name && n->name[0] ? n->name
                                 : n->n_outputs && n->outputs[0][0] ? n->outputs[0] : oq_node_label(n, lb, sizeof lb);
                snprintf(w, sizeof w, "%s%s.%s/", where, nl, at->name);
                st = each_graph(q, at->g ? at->g : at->graphs[k], &s, w, fn, depth + 1);
            }
        }
    }
    return st;
}

oq_status qg_each_graph(quant_ctx *q, oq_graph *g, qg_graph_fn fn) { return each_graph(q, g, NULL, "", fn, 0); }

int64_t qg_initializer_bytes_deep(const oq_graph *g)
{
    int64_t b = qg_initializer_bytes(g);
    for (size_t i = 0; i < g->n_nodes; i++)
        for (size_t a = 0; a < g->nodes[i].n_attrs; a++) {
            const oq_attr *at = &g->nodes[i].attrs[a];
            if (at->g)
                b += qg_initializer_bytes_deep(at->g);
            for (size_t k = 0; k < at->n_graphs; k++)
                b += qg_initializer_bytes_deep(at->graphs[k]);
        }
    return b;
}

oq_status qg_add_init(oq_graph *g, oq_tensor *t, const char *base, const char *suffix, const char **name)
{
    return qg_add_init_in(g, NULL, t, base, suffix, name);
}

oq_status qg_add_init_in(oq_graph *g, const quant_scope *s, oq_tensor *t, const char *base, const char *suffix,
                         const char **name)
{
    char *nm = s ? qg_unique_name(s, base, suffix) : oq_graph_unique_name(g, base, suffix);
    if (!nm) {
        oq_tensor_destroy(t);
        return oq_error(OQ_E_NOMEM, "out of memory");
    }
    free(t->name);
    t->name = nm;
    oq_status st = oq_graph_add_initializer(g, t);
    if (st != OQ_OK) {
        oq_tensor_destroy(t);
        return st;
    }
    if (name)
        *name = nm;
    return OQ_OK;
}

oq_status qg_ensure_opset(oq_model *m, const char *domain, int64_t version)
{
    for (size_t i = 0; i < m->n_opsets; i++)
        if (!strcmp(m->opsets[i].domain ? m->opsets[i].domain : "", domain)) {
            if (m->opsets[i].version < version)
                m->opsets[i].version = version;
            return OQ_OK;
        }
    oq_opset_import *o = oq_realloc(m->opsets, sizeof *o * (m->n_opsets + 1));
    if (!o)
        return oq_error(OQ_E_NOMEM, "out of memory");
    m->opsets = o;
    if (!(o[m->n_opsets].domain = oq_strdup(domain)))
        return oq_error(OQ_E_NOMEM, "out of memory");
    o[m->n_opsets++].version = version;
    return OQ_OK;
}

size_t qg_initializer_index(const oq_graph *g, const char *name)
{
    for (size_t i = 0; i < g->n_initializers; i++)
        if (g->initializers[i]->name && !strcmp(g->initializers[i]->name, name))
            return i;
    return SIZE_MAX;
}

int64_t qg_initializer_bytes(const oq_graph *g)
{
    int64_t b = 0;
    for (size_t i = 0; i < g->n_initializers; i++)
        b += (int64_t)g->initializers[i]->nbytes;
    return b;
}
