/* ir/info: a read-only summary of a loaded model for `onnxq info` and reports —
 * inputs/outputs, opsets, an operator histogram over all subgraphs, parameter
 * totals and whether the model is already quantized. */
#include "ir/graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The info the caller sees comes first so the pointer it gets can be freed as a whole. */
typedef struct info_impl {
    oq_model_info info;
    oq_value_desc *inputs, *outputs;
    oq_opset_desc *opsets;
    oq_op_count *ops;
    size_t cap_ops;
    char *producer;
} info_impl;

static int is_quantized_op(const char *domain, const char *op)
{
    (void)domain;
    static const char *const exact[] = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QGemm",
                                        "QAttention",     "DynamicQuantizeMatMul", "DynamicQuantizeLSTM",
                                        "MatMulIntegerToFloat"};
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strcmp(op, exact[i]) == 0)
            return 1;
    return strncmp(op, "QLinear", 7) == 0 || strstr(op, "Integer") != NULL;
}

static int64_t tensor_bytes(const oq_tensor *t, int64_t numel)
{
    if (t->dtype == OQ_STRING) {
        int64_t b = 0;
        char *const *s = t->data;
        for (int64_t i = 0; s && i < numel && (size_t)i * sizeof(char *) < t->nbytes; i++)
            b += s[i] ? (int64_t)strlen(s[i]) : 0;
        return b;
    }
    return numel * (int64_t)oq_dtype_size(t->dtype);
}

static void count_tensor(info_impl *im, const oq_tensor *t)
{
    if (!t)
        return;
    int64_t n = oq_tensor_numel(t);
    if (n < 0)
        return;
    im->info.n_parameters += n;
    im->info.parameter_bytes += tensor_bytes(t, n);
}

static oq_status count_op(info_impl *im, const oq_node *node)
{
    const char *domain = node->domain ? node->domain : "";
    const char *op = node->op_type ? node->op_type : "";
    im->info.n_nodes++;
    if (is_quantized_op(domain, op)) {
        im->info.is_quantized = 1;
        im->info.n_quantized_nodes++;
    }
    for (size_t i = 0; i < im->info.n_op_types; i++) {
        oq_op_count *c = &im->ops[i];
        if (strcmp(c->op_type, op) == 0 && (strcmp(c->domain, domain) == 0 ||
                                            (oq_domain_is_default(c->domain) && oq_domain_is_default(domain)))) {
            c->count++;
            return OQ_OK;
        }
    }
    oq_status st = oq_grow((void **)&im->ops, &im->cap_ops, im->info.n_op_types + 1, sizeof *im->ops);
    if (st != OQ_OK)
        return st;
    im->ops[im->info.n_op_types++] = (oq_op_count){domain, op, 1};
    return OQ_OK;
}

static oq_status walk_graph(info_impl *im, const oq_graph *g, int depth)
{
    if (!g)
        return OQ_OK;
    if (depth > 64)
        return oq_error(OQ_E_GRAPH, "subgraphs nested more than 64 deep");
    im->info.n_initializers += g->n_initializers;
    for (size_t i = 0; i < g->n_initializers; i++)
        count_tensor(im, g->initializers[i]);
    for (size_t i = 0; i < g->n_nodes; i++) {
        const oq_node *node = &g->nodes[i];
        oq_status st = count_op(im, node);
        if (st != OQ_OK)
            return st;
        int is_constant = node->op_type && strcmp(node->op_type, "Constant") == 0 &&
                          oq_domain_is_default(node->domain ? node->domain : "");
        for (size_t a = 0; a < node->n_attrs; a++) {
            const oq_attr *at = &node->attrs[a];
            if (at->type == OQ_ATTR_GRAPH && (st = walk_graph(im, at->g, depth + 1)) != OQ_OK)
                return st;
            for (size_t k = 0; at->type == OQ_ATTR_GRAPHS && k < at->n_graphs; k++)
                if ((st = walk_graph(im, at->graphs[k], depth + 1)) != OQ_OK)
                    return st;
            if (!is_constant || !at->name)
                continue;
            if (strcmp(at->name, "value") == 0 && at->type == OQ_ATTR_TENSOR) {
                count_tensor(im, at->t);
            } else if (strcmp(at->name, "value_float") == 0 || strcmp(at->name, "value_int") == 0) {
                im->info.n_parameters += 1;
                im->info.parameter_bytes += at->name[6] == 'f' ? 4 : 8;
            } else if (strcmp(at->name, "value_floats") == 0) {
                im->info.n_parameters += (int64_t)at->n_floats;
                im->info.parameter_bytes += 4 * (int64_t)at->n_floats;
            } else if (strcmp(at->name, "value_ints") == 0) {
                im->info.n_parameters += (int64_t)at->n_ints;
                im->info.parameter_bytes += 8 * (int64_t)at->n_ints;
            }
        }
    }
    return OQ_OK;
}

static void describe(oq_value_desc *d, const oq_value_info *v)
{
    memset(d, 0, sizeof *d);
    d->name = v->name ? v->name : "";
    d->dtype = v->dtype;
    d->ndim = v->ndim < -1 || v->ndim > OQ_MAX_DIMS ? -1 : v->ndim;
    for (int k = 0; k < d->ndim; k++) {
        d->dims[k] = v->dims[k];
        d->dim_params[k] = v->dim_params[k];
    }
}

static int by_count_desc(const void *a, const void *b)
{
    const oq_op_count *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    int c = strcmp(x->op_type, y->op_type);
    return c ? c : strcmp(x->domain, y->domain);
}

oq_status oq_model_info_get(const oq_model *m, oq_model_info **out)
{
    if (!m || !out)
        return oq_error(OQ_E_INVALID_ARG, "oq_model_info_get: NULL argument");
    if (!m->graph)
        return oq_error(OQ_E_GRAPH, "model%s%s%s has no graph", m->path ? " '" : "", m->path ? m->path : "",
                        m->path ? "'" : "");
    const oq_graph *g = m->graph;
    info_impl *im = calloc(1, sizeof *im);
    if (!im)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = OQ_OK;
    oq_model_info *info = &im->info;
    info->ir_version = m->ir_version;
    info->graph_name = g->name ? g->name : "";

    const char *pn = m->producer_name ? m->producer_name : "", *pv = m->producer_version ? m->producer_version : "";
    size_t plen = strlen(pn) + strlen(pv) + 2;
    im->producer = malloc(plen);
    im->inputs = calloc(g->n_inputs ? g->n_inputs : 1, sizeof *im->inputs);
    im->outputs = calloc(g->n_outputs ? g->n_outputs : 1, sizeof *im->outputs);
    im->opsets = calloc(m->n_opsets ? m->n_opsets : 1, sizeof *im->opsets);
    if (!im->producer || !im->inputs || !im->outputs || !im->opsets) {
        st = oq_error(OQ_E_NOMEM, "out of memory");
        goto error;
    }
    snprintf(im->producer, plen, "%s%s%s", pn, *pn && *pv ? " " : "", pv);
    info->producer = im->producer;

    for (size_t i = 0; i < g->n_inputs; i++) {
        const oq_value_info *v = &g->inputs[i];
        if (v->name && oq_graph_initializer(g, v->name))
            continue;
        describe(&im->inputs[info->n_inputs++], v);
    }
    for (size_t i = 0; i < g->n_outputs; i++)
        describe(&im->outputs[info->n_outputs++], &g->outputs[i]);
    for (size_t i = 0; i < m->n_opsets; i++) {
        im->opsets[i].domain = m->opsets[i].domain ? m->opsets[i].domain : "";
        im->opsets[i].version = m->opsets[i].version;
    }
    info->n_opsets = m->n_opsets;

    if ((st = walk_graph(im, g, 0)) != OQ_OK)
        goto error;
    if (info->n_op_types)
        qsort(im->ops, info->n_op_types, sizeof *im->ops, by_count_desc);
    info->inputs = im->inputs;
    info->outputs = im->outputs;
    info->opsets = im->opsets;
    info->op_types = im->ops;
    *out = info;
    return OQ_OK;

error:
    oq_model_info_destroy(info);
    return st;
}

void oq_model_info_destroy(oq_model_info *info)
{
    if (!info)
        return;
    info_impl *im = (info_impl *)info;
    free(im->inputs);
    free(im->outputs);
    free(im->opsets);
    free(im->ops);
    free(im->producer);
    free(im);
}
