/* Building small models by hand in unit tests: an empty opset-13 model, float graph inputs and
 * outputs, float initializers, nodes; counting a graph's nodes of a type. Include after test.h and
 * the graph headers. */
#ifndef OQ_TEST_GRAPH_H
#define OQ_TEST_GRAPH_H
#include <stdlib.h>
#include <string.h>

/* A model with an empty main graph, IR 8, default-domain opset 13. */
static inline oq_model *test_model_new(void)
{
    oq_model *m = oq_model_new();
    m->ir_version = 8;
    m->n_opsets = 1;
    m->opsets = calloc(1, sizeof *m->opsets);
    m->opsets[0] = (oq_opset_import){oq_strdup(""), 13};
    m->graph = oq_graph_new();
    return m;
}

/* A float graph input (or output) of ndim dims. */
static inline void test_add_value(oq_graph *g, bool output, const char *name, int ndim, const int64_t *dims)
{
    oq_value_info **vs = output ? &g->outputs : &g->inputs;
    size_t *n = output ? &g->n_outputs : &g->n_inputs;
    *vs = realloc(*vs, (*n + 1) * sizeof **vs);
    oq_value_info *v = &(*vs)[(*n)++];
    memset(v, 0, sizeof *v);
    v->name = oq_strdup(name);
    v->dtype = OQ_FLOAT;
    v->ndim = ndim;
    memcpy(v->dims, dims, (size_t)ndim * sizeof *dims);
}

/* A float initializer holding v. */
static inline void test_add_init(oq_graph *g, const char *name, int ndim, const int64_t *dims, const float *v)
{
    oq_tensor *t = NULL;
    CHECK_OK(oq_tensor_create(OQ_FLOAT, ndim, dims, &t));
    if (!t)
        return;
    t->name = oq_strdup(name);
    memcpy(t->data, v, t->nbytes);
    CHECK_OK(oq_graph_add_initializer(g, t));
}
/* A default-domain node named after its output, reading a [, b [, c]] ("" or NULL for an omitted
 * input before a given one). */
static inline void test_node(oq_graph *g, const char *op, const char *a, const char *b, const char *c, const char *out)
{
    const char *in[3] = {a, b ? b : "", c ? c : ""}, *o[1] = {out};
    CHECK_OK(oq_graph_add_node(g, op, "", out, in, c ? 3 : b ? 2 : 1, o, 1, NULL));
}

/* Nodes of g of type op. */
static inline size_t test_count_op(const oq_graph *g, const char *op)
{
    size_t n = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        n += !strcmp(g->nodes[i].op_type, op);
    return n;
}
#endif