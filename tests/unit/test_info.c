/* Unit tests for ir/info: a hand-built model with initializers, a subgraph,
 * Constant nodes and quantized operators, summarized by oq_model_info_get. */
#include "ir/graph.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static oq_node *add_node(oq_graph *g, const char *op, const char *domain)
{
    CHECK_OK(oq_grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes));
    oq_node *n = &g->nodes[g->n_nodes++];
    memset(n, 0, sizeof *n);
    n->op_type = oq_strdup(op);
    n->domain = oq_strdup(domain);
    n->name = oq_strdup(op);
    return n;
}

static oq_attr *add_attr(oq_node *n, const char *name, oq_attr_type type)
{
    n->attrs = realloc(n->attrs, (n->n_attrs + 1) * sizeof *n->attrs);
    oq_attr *a = &n->attrs[n->n_attrs++];
    memset(a, 0, sizeof *a);
    a->name = oq_strdup(name);
    a->type = type;
    return a;
}

static oq_tensor *make_tensor(const char *name, oq_dtype t, int ndim, const int64_t *dims)
{
    oq_tensor *x = NULL;
    CHECK_OK(oq_tensor_create(t, ndim, dims, &x));
    if (x && name)
        x->name = oq_strdup(name);
    return x;
}

static void add_initializer(oq_graph *g, oq_tensor *t)
{
    CHECK_OK(oq_grow((void **)&g->initializers, &g->cap_initializers, g->n_initializers + 1, sizeof(oq_tensor *)));
    g->initializers[g->n_initializers++] = t;
}

static void set_value(oq_value_info *v, const char *name, oq_dtype t, int ndim, const int64_t *dims,
                      const char *param0)
{
    memset(v, 0, sizeof *v);
    v->name = oq_strdup(name);
    v->dtype = t;
    v->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        v->dims[i] = dims[i];
    if (param0)
        v->dim_params[0] = oq_strdup(param0);
}

static oq_model *build_model(void)
{
    oq_model *m = oq_model_new();
    m->ir_version = 8;
    m->producer_name = oq_strdup("pytorch");
    m->producer_version = oq_strdup("2.1.0");
    m->n_opsets = 2;
    m->opsets = calloc(2, sizeof *m->opsets);
    m->opsets[0] = (oq_opset_import){oq_strdup(""), 17};
    m->opsets[1] = (oq_opset_import){oq_strdup("com.microsoft"), 1};
    oq_graph *g = m->graph = oq_graph_new();
    g->name = oq_strdup("main");

    int64_t xd[4] = {-1, 3, 8, 8}, wd[4] = {4, 3, 3, 3}, bd[1] = {4}, yd[2] = {-1, 10};
    g->n_inputs = 3;
    g->inputs = calloc(3, sizeof *g->inputs);
    set_value(&g->inputs[0], "x", OQ_FLOAT, 4, xd, "batch");
    set_value(&g->inputs[1], "w", OQ_FLOAT, 4, wd, NULL); /* an initializer listed as input (IR < 4 style) */
    set_value(&g->inputs[2], "mask", OQ_BOOL, -1, NULL, NULL);
    g->n_outputs = 1;
    g->outputs = calloc(1, sizeof *g->outputs);
    set_value(&g->outputs[0], "y", OQ_FLOAT, 2, yd, "batch");
    add_initializer(g, make_tensor("w", OQ_FLOAT, 4, wd));  /* 108 floats */
    add_initializer(g, make_tensor("b", OQ_INT64, 1, bd));  /* 4 int64 */

    add_node(g, "Conv", "");
    add_node(g, "Relu", "");
    add_node(g, "Relu", "ai.onnx");
    add_node(g, "QuantizeLinear", "");
    add_node(g, "DequantizeLinear", "");
    add_node(g, "MatMulInteger", "");
    add_node(g, "QLinearConv", "");
    add_node(g, "QGemm", "com.microsoft");
    add_node(g, "Gelu", "com.microsoft");
    oq_node *c = add_node(g, "Constant", "");
    int64_t cd[2] = {2, 5};
    add_attr(c, "value", OQ_ATTR_TENSOR)->t = make_tensor(NULL, OQ_FLOAT, 2, cd); /* 10 floats */
    oq_node *c2 = add_node(g, "Constant", "");
    oq_attr *vi = add_attr(c2, "value_ints", OQ_ATTR_INTS);
    vi->ints = calloc(3, sizeof(int64_t));
    vi->n_ints = 3; /* 3 int64 */

    /* If with a then-branch holding Relu + Constant + an initializer, else-branch a Loop body */
    oq_node *iff = add_node(g, "If", "");
    oq_graph *then_g = oq_graph_new(), *else_g = oq_graph_new(), *body = oq_graph_new();
    add_attr(iff, "then_branch", OQ_ATTR_GRAPH)->g = then_g;
    add_attr(iff, "else_branch", OQ_ATTR_GRAPH)->g = else_g;
    add_node(then_g, "Relu", "");
    oq_node *c3 = add_node(then_g, "Constant", "");
    add_attr(c3, "value_float", OQ_ATTR_FLOAT)->f = 1.0f; /* 1 float */
    int64_t sd[1] = {6};
    add_initializer(then_g, make_tensor("s", OQ_UINT8, 1, sd)); /* 6 bytes */
    oq_node *loop = add_node(else_g, "Loop", "");
    add_attr(loop, "body", OQ_ATTR_GRAPH)->g = body;
    add_node(body, "DynamicQuantizeLinear", "");
    add_node(body, "Relu", "");
    return m;
}

static void test_info(void)
{
    oq_model *m = build_model();
    oq_model_info *info = NULL;
    CHECK_OK(oq_model_info_get(m, &info));
    if (!info) {
        oq_model_destroy(m);
        return;
    }
    CHECK(info->ir_version == 8);
    CHECK(strcmp(info->producer, "pytorch 2.1.0") == 0);
    CHECK(strcmp(info->graph_name, "main") == 0);
    CHECK(info->n_opsets == 2 && info->opsets[1].version == 1 && strcmp(info->opsets[1].domain, "com.microsoft") == 0);

    CHECK(info->n_inputs == 2);
    CHECK(strcmp(info->inputs[0].name, "x") == 0 && info->inputs[0].ndim == 4);
    CHECK(info->inputs[0].dims[0] == -1 && info->inputs[0].dim_params[0] &&
          strcmp(info->inputs[0].dim_params[0], "batch") == 0);
    CHECK(info->inputs[0].dims[1] == 3 && info->inputs[0].dim_params[1] == NULL);
    CHECK(strcmp(info->inputs[1].name, "mask") == 0 && info->inputs[1].ndim == -1 && info->inputs[1].dtype == OQ_BOOL);
    CHECK(info->n_outputs == 1 && strcmp(info->outputs[0].name, "y") == 0);

    /* 12 top-level nodes + 2 in then + 1 in else + 2 in the loop body */
    CHECK(info->n_nodes == 17);
    CHECK(info->op_types[0].count == 4 && strcmp(info->op_types[0].op_type, "Relu") == 0);
    CHECK(info->op_types[1].count == 3 && strcmp(info->op_types[1].op_type, "Constant") == 0);
    size_t total = 0;
    for (size_t i = 0; i < info->n_op_types; i++) {
        total += info->op_types[i].count;
        if (i)
            CHECK(info->op_types[i - 1].count >= info->op_types[i].count);
    }
    CHECK(total == info->n_nodes);
    CHECK(info->n_op_types == 12);

    CHECK(info->n_initializers == 3);
    CHECK(info->n_parameters == 108 + 4 + 10 + 3 + 1 + 6);
    CHECK(info->parameter_bytes == 108 * 4 + 4 * 8 + 10 * 4 + 3 * 8 + 4 + 6);
    CHECK(info->is_quantized);
    /* QuantizeLinear, DequantizeLinear, MatMulInteger, QLinearConv, QGemm, DynamicQuantizeLinear */
    CHECK(info->n_quantized_nodes == 6);
    oq_model_info_destroy(info);
    oq_model_destroy(m);

    /* a float model is not quantized */
    m = oq_model_new();
    m->graph = oq_graph_new();
    add_node(m->graph, "Gemm", "");
    info = NULL;
    CHECK_OK(oq_model_info_get(m, &info));
    if (info) {
        CHECK(!info->is_quantized && info->n_quantized_nodes == 0 && info->n_nodes == 1);
        CHECK(strcmp(info->producer, "") == 0 && info->n_inputs == 0 && info->n_parameters == 0);
    }
    oq_model_info_destroy(info);
    oq_model_destroy(m);

    oq_model_info_destroy(NULL);
    CHECK(oq_model_info_get(NULL, &info) == OQ_E_INVALID_ARG);
}

int main(void)
{
    test_info();
    return test_summary("test_info");
}
