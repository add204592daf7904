/* ir/graph: construction and destruction of the graph IR, attribute access,
 * the string map used for name lookups. */
#include "ir/graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

oq_graph *oq_graph_new(void) { return calloc(1, sizeof(oq_graph)); }

oq_model *oq_model_new(void) { return calloc(1, sizeof(oq_model)); }

static void bytes_free(oq_bytes *b) { free(b->data); b->data = NULL; b->len = 0; }

void oq_attr_clear(oq_attr *a)
{
    if (!a)
        return;
    free(a->name);
    free(a->ref_attr_name);
    free(a->doc_string);
    bytes_free(&a->s);
    oq_tensor_destroy(a->t);
    oq_graph_destroy(a->g);
    free(a->floats);
    free(a->ints);
    for (size_t i = 0; i < a->n_strings; i++)
        bytes_free(&a->strings[i]);
    free(a->strings);
    for (size_t i = 0; i < a->n_tensors; i++)
        oq_tensor_destroy(a->tensors[i]);
    free(a->tensors);
    for (size_t i = 0; i < a->n_graphs; i++)
        oq_graph_destroy(a->graphs[i]);
    free(a->graphs);
    for (size_t i = 0; i < a->n_raw; i++)
        bytes_free(&a->raw[i]);
    free(a->raw);
    memset(a, 0, sizeof *a);
}

void oq_node_clear(oq_node *n)
{
    if (!n)
        return;
    free(n->name);
    free(n->op_type);
    free(n->domain);
    free(n->doc_string);
    for (size_t i = 0; i < n->n_inputs; i++)
        free(n->inputs[i]);
    free(n->inputs);
    for (size_t i = 0; i < n->n_outputs; i++)
        free(n->outputs[i]);
    free(n->outputs);
    for (size_t i = 0; i < n->n_attrs; i++)
        oq_attr_clear(&n->attrs[i]);
    free(n->attrs);
    memset(n, 0, sizeof *n);
}

void oq_value_info_clear(oq_value_info *v)
{
    if (!v)
        return;
    free(v->name);
    free(v->doc_string);
    for (int i = 0; i < OQ_MAX_DIMS; i++)
        free(v->dim_params[i]);
    bytes_free(&v->type_proto);
    memset(v, 0, sizeof *v);
}

static void value_infos_free(oq_value_info *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        oq_value_info_clear(&v[i]);
    free(v);
}

void oq_graph_destroy(oq_graph *g)
{
    if (!g)
        return;
    free(g->name);
    free(g->doc_string);
    for (size_t i = 0; i < g->n_nodes; i++)
        oq_node_clear(&g->nodes[i]);
    free(g->nodes);
    for (size_t i = 0; i < g->n_initializers; i++)
        oq_tensor_destroy(g->initializers[i]);
    free(g->initializers);
    value_infos_free(g->inputs, g->n_inputs);
    value_infos_free(g->outputs, g->n_outputs);
    value_infos_free(g->value_infos, g->n_value_infos);
    for (size_t i = 0; i < g->n_sparse_initializers; i++)
        bytes_free(&g->sparse_initializers[i]);
    free(g->sparse_initializers);
    free(g);
}

void oq_model_destroy(oq_model *m)
{
    if (!m)
        return;
    free(m->producer_name);
    free(m->producer_version);
    free(m->domain);
    free(m->doc_string);
    for (size_t i = 0; i < m->n_opsets; i++)
        free(m->opsets[i].domain);
    free(m->opsets);
    for (size_t i = 0; i < m->n_metadata; i++) {
        free(m->metadata[i].key);
        free(m->metadata[i].value);
    }
    free(m->metadata);
    for (size_t i = 0; i < m->n_functions; i++)
        bytes_free(&m->functions[i]);
    free(m->functions);
    oq_graph_destroy(m->graph);
    free(m->path);
    free(m);
}

bool oq_domain_is_default(const char *domain)
{
    return !domain || !*domain || !strcmp(domain, "ai.onnx");
}

int64_t oq_model_opset(const oq_model *m, const char *domain)
{
    bool dflt = oq_domain_is_default(domain);
    for (size_t i = 0; i < m->n_opsets; i++) {
        const char *d = m->opsets[i].domain;
        if (dflt ? oq_domain_is_default(d) : (d && !strcmp(d, domain)))
            return m->opsets[i].version;
    }
    return 0;
}

const oq_attr *oq_node_attr(const oq_node *n, const char *name)
{
    for (size_t i = 0; i < n->n_attrs; i++)
        if (n->attrs[i].name && !strcmp(n->attrs[i].name, name))
            return &n->attrs[i];
    return NULL;
}

int64_t oq_node_attr_int(const oq_node *n, const char *name, int64_t dflt)
{
    const oq_attr *a = oq_node_attr(n, name);
    return a && a->type == OQ_ATTR_INT ? a->i : dflt;
}

float oq_node_attr_float(const oq_node *n, const char *name, float dflt)
{
    const oq_attr *a = oq_node_attr(n, name);
    if (a && a->type == OQ_ATTR_FLOAT)
        return a->f;
    if (a && a->type == OQ_ATTR_INT)
        return (float)a->i;
    return dflt;
}

const char *oq_node_attr_string(const oq_node *n, const char *name, const char *dflt)
{
    const oq_attr *a = oq_node_attr(n, name);
    return a && a->type == OQ_ATTR_STRING ? a->s.data : dflt;
}

size_t oq_node_attr_ints(const oq_node *n, const char *name, const int64_t **vals)
{
    const oq_attr *a = oq_node_attr(n, name);
    if (a && a->type == OQ_ATTR_INTS) {
        *vals = a->ints;
        return a->n_ints;
    }
    *vals = NULL;
    return 0;
}

size_t oq_node_attr_floats(const oq_node *n, const char *name, const float **vals)
{
    const oq_attr *a = oq_node_attr(n, name);
    if (a && a->type == OQ_ATTR_FLOATS) {
        *vals = a->floats;
        return a->n_floats;
    }
    *vals = NULL;
    return 0;
}

const char *oq_node_input(const oq_node *n, size_t i)
{
    return i < n->n_inputs && n->inputs[i] && n->inputs[i][0] ? n->inputs[i] : NULL;
}

const char *oq_node_label(const oq_node *n, char *buf, size_t len)
{
    if (n->name && n->name[0])
        return n->name;
    snprintf(buf, len, "%s producing '%s'", n->op_type ? n->op_type : "?",
             n->n_outputs && n->outputs[0] ? n->outputs[0] : "?");
    return buf;
}

oq_tensor *oq_graph_initializer(const oq_graph *g, const char *name)
{
    for (size_t i = 0; i < g->n_initializers; i++)
        if (g->initializers[i]->name && !strcmp(g->initializers[i]->name, name))
            return g->initializers[i];
    return NULL;
}

/* ---- string map: open addressing, FNV-1a ---- */
static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

oq_status oq_strmap_init(oq_strmap *m, size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2 + 1)
        cap *= 2;
    m->keys = calloc(cap, sizeof *m->keys);
    m->vals = calloc(cap, sizeof *m->vals);
    m->cap = cap;
    m->count = 0;
    if (!m->keys || !m->vals) {
        oq_strmap_free(m);
        return oq_error(OQ_E_NOMEM, "out of memory for a name table");
    }
    return OQ_OK;
}

void oq_strmap_free(oq_strmap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

oq_status oq_strmap_put(oq_strmap *m, const char *key, size_t val)
{
    if ((m->count + 1) * 2 > m->cap) {
        oq_strmap bigger;
        oq_status st = oq_strmap_init(&bigger, m->cap);
        if (st != OQ_OK)
            return st;
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i])
                oq_strmap_put(&bigger, m->keys[i], m->vals[i]);
        oq_strmap_free(m);
        *m = bigger;
    }
    size_t i = hash_str(key) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key))
        i = (i + 1) & (m->cap - 1);
    if (!m->keys[i])
        m->count++;
    m->keys[i] = key;
    m->vals[i] = val;
    return OQ_OK;
}

bool oq_strmap_get(const oq_strmap *m, const char *key, size_t *val)
{
    if (!m->cap)
        return false;
    size_t i = hash_str(key) & (m->cap - 1);
    while (m->keys[i]) {
        if (!strcmp(m->keys[i], key)) {
            if (val)
                *val = m->vals[i];
            return true;
        }
        i = (i + 1) & (m->cap - 1);
    }
    return false;
}
