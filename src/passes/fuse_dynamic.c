/* passes/fuse_dynamic: the standard-operator form of dynamic quantization (what
 * onnxruntime's quantize_dynamic writes for Conv, and `onnxq quantize --dynamic-form
 * matmulinteger` for MatMul) onto one fused integer node at session creation:
 *   DynamicQuantizeLinear(x) -> ConvInteger(xq, W, xz[, Wz]) -> Cast(float) -> Mul(., xs * Ws) [-> Add(., B)]
 *     becomes QLinearConv(x, -, -, W, Ws, Wz[, -, -, B]) with the session-only attributes
 *     onnxq_float_output and onnxq_dynamic_input (x quantized per run, float bias);
 *   DynamicQuantizeLinear(x) -> MatMulInteger(xq, W, xz[, Wz]) -> Cast -> Mul(., xs * Ws) [-> Add(., B)]
 *     becomes com.microsoft DynamicQuantizeMatMul(x, W, Ws, Wz[, B]).
 * The fused node computes what the chain does, in the same order: the exact int32 sum,
 * converted to float, times (x_scale * w_scale), plus the bias. Every fused reader of
 * x quantizes it again (one pass over x, next to a whole product); DynamicQuantizeLinear
 * and the scale Mul go with the dead nodes when nothing else reads them. */
#include "passes/pass.h"

#include <stdlib.h>
#include <string.h>

static bool is_op(const oq_node *n, const char *op) { return oq_domain_is_default(n->domain) && !strcmp(n->op_type, op); }

/* The node that reads name, when it is the only reader and name is no graph output. */
static oq_node *sole_reader(oq_graph *g, const char *name, size_t *index)
{
    if (oq_graph_is_output(g, name) || oq_graph_count_readers(g, name) != 1)
        return NULL;
    size_t r = oq_graph_single_reader(g, name);
    if (r == SIZE_MAX)
        return NULL;
    *index = r;
    return &g->nodes[r];
}

/* The other input of a two-input node, given one of them. */
static const char *other_input(const oq_node *n, const char *one)
{
    if (n->n_inputs != 2)
        return NULL;
    return !strcmp(n->inputs[0], one) ? n->inputs[1] : !strcmp(n->inputs[1], one) ? n->inputs[0] : NULL;
}

/* A constant float per-channel vector: one value, or `channels` values along axis
 * `axis_from_end` of the output (counted from its last dimension; every other dimension 1). */
static bool channel_vector(const oq_tensor *t, int64_t channels, int axis_from_end)
{
    if (!t || t->dtype != OQ_FLOAT || !t->data)
        return false;
    int64_t c = oq_tensor_numel(t);
    if (c == 1)
        return true;
    if (c != channels || t->ndim < axis_from_end + 1)
        return false;
    return t->dims[t->ndim - 1 - axis_from_end] == channels;
}

/* name as a 1-D initializer of its values: itself when it is one already, else a copy. */
static oq_status flat_initializer(oq_graph *g, const oq_tensor *t, const char **name)
{
    if (t->ndim <= 1) {
        *name = t->name;
        return OQ_OK;
    }
    int64_t c = oq_tensor_numel(t);
    oq_tensor *f = NULL;
    oq_status st = oq_tensor_create(OQ_FLOAT, 1, &c, &f);
    if (st != OQ_OK)
        return st;
    memcpy(f->data, t->data, (size_t)c * sizeof(float));
    if (!(f->name = oq_graph_unique_name(g, t->name, "_flat"))) {
        oq_tensor_destroy(f);
        return oq_error(OQ_E_NOMEM, "out of memory");
    }
    if ((st = oq_graph_add_initializer(g, f)) != OQ_OK) {
        oq_tensor_destroy(f);
        return st;
    }
    *name = f->name;
    return OQ_OK;
}

typedef enum { FUSE_NO, FUSE_DONE, FUSE_ERROR } fuse_result;

/* Node i is a ConvInteger or MatMulInteger: fuse its chain when it has the shape above.
 * dead[] marks the Cast, Mul and Add it absorbs. */
static fuse_result fuse_chain(oq_model *m, oq_graph *g, size_t i, bool *dead, oq_status *err)
{
    oq_node *n = &g->nodes[i];
    bool conv = is_op(n, "ConvInteger");
    if (n->n_inputs < 3 || n->n_outputs != 1 || !n->inputs[2][0])
        return FUSE_NO;
    size_t d = oq_graph_producer(g, n->inputs[0]);
    if (d == SIZE_MAX || !is_op(&g->nodes[d], "DynamicQuantizeLinear") || g->nodes[d].n_outputs != 3 ||
        strcmp(g->nodes[d].outputs[0], n->inputs[0]) || strcmp(g->nodes[d].outputs[2], n->inputs[2]))
        return FUSE_NO;
    const char *x = g->nodes[d].inputs[0], *xs = g->nodes[d].outputs[1];
    const oq_tensor *w = oq_graph_initializer(g, n->inputs[1]);
    const char *wz = n->n_inputs > 3 && n->inputs[3][0] ? n->inputs[3] : NULL;
    if (!w || (w->dtype != OQ_INT8 && w->dtype != OQ_UINT8) || (wz && !oq_graph_initializer(g, wz)))
        return FUSE_NO;
    if (conv ? w->ndim < 3 : w->ndim != 2)
        return FUSE_NO;
    int64_t channels = conv ? w->dims[0] : w->dims[1];
    int axis_from_end = conv ? w->ndim - 2 : 0; /* the output's channel axis: 1 for NC..., last for MatMul */
    size_t ic, im, ia;
    oq_node *cast = sole_reader(g, n->outputs[0], &ic);
    if (!cast || !is_op(cast, "Cast") || oq_node_attr_int(cast, "to", 0) != OQ_FLOAT)
        return FUSE_NO;
    oq_node *mul = sole_reader(g, cast->outputs[0], &im);
    const char *s = mul && is_op(mul, "Mul") ? other_input(mul, cast->outputs[0]) : NULL;
    size_t sm = s ? oq_graph_producer(g, s) : SIZE_MAX;
    if (sm == SIZE_MAX || !is_op(&g->nodes[sm], "Mul"))
        return FUSE_NO;
    const char *ws_name = other_input(&g->nodes[sm], xs);
    const oq_tensor *ws = ws_name ? oq_graph_initializer(g, ws_name) : NULL;
    if (!channel_vector(ws, channels, axis_from_end))
        return FUSE_NO;
    const char *out = mul->outputs[0];
    const oq_tensor *bias = NULL;
    oq_node *add = sole_reader(g, out, &ia);
    if (add && is_op(add, "Add")) {
        const char *b = other_input(add, out);
        bias = b ? oq_graph_initializer(g, b) : NULL;
        if (bias && channel_vector(bias, channels, axis_from_end) && oq_tensor_numel(bias) == channels)
            out = add->outputs[0];
        else
            bias = NULL;
    }
    /* a scale or bias of higher rank than the output would broadcast it to a larger shape
     * (a MatMul's output may be 1-D) */
    int max_rank = conv ? w->ndim : 1;
    if (ws->ndim > max_rank || (bias && bias->ndim > max_rank))
        return FUSE_NO;
    /* inputs, then the node rewritten in place (its position keeps the order topological) */
    const char *wsf = NULL, *bf = NULL;
    *err = flat_initializer(g, ws, &wsf);
    if (*err == OQ_OK && bias)
        *err = flat_initializer(g, bias, &bf);
    if (*err != OQ_OK)
        return FUSE_ERROR;
    n = &g->nodes[i]; /* (no node was added, but keep the pointer honest) */
    char *on = oq_strdup(out);
    if (!on) {
        *err = oq_error(OQ_E_NOMEM, "out of memory");
        return FUSE_ERROR;
    }
    const char *conv_in[9] = {x, "", "", n->inputs[1], wsf, wz, "", "", bf};
    const char *mm_in[5] = {x, n->inputs[1], wsf, wz, bf};
    *err = conv ? oq_node_rewrite(n, "QLinearConv", "", conv_in, bf ? 9 : 6, false)
                : oq_node_rewrite(n, "DynamicQuantizeMatMul", "com.microsoft", mm_in, bf ? 5 : 4, false);
    if (*err == OQ_OK) {
        free(n->outputs[0]); /* one output (checked above) */
        n->outputs[0] = on;
        on = NULL;
    }
    free(on);
    if (*err == OQ_OK && conv)
        *err = oq_node_add_attr_int(n, "onnxq_float_output", 1);
    if (*err == OQ_OK && conv)
        *err = oq_node_add_attr_int(n, "onnxq_dynamic_input", 1);
    if (*err == OQ_OK && !conv)
        *err = oq_model_import_domain(m, "com.microsoft", 1);
    if (*err != OQ_OK)
        return FUSE_ERROR;
    dead[ic] = dead[im] = true;
    if (bias)
        dead[ia] = true;
    return FUSE_DONE;
}

oq_status pass_fuse_dynamic(oq_model *m, oq_graph *g, oq_pass_ctx *ctx)
{
    bool *dead = oq_calloc(g->n_nodes + 1, sizeof *dead);
    if (!dead)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = OQ_OK;
    size_t fused = 0;
    for (size_t i = 0; i < g->n_nodes && st == OQ_OK; i++) {
        if (dead[i] || (!is_op(&g->nodes[i], "ConvInteger") && !is_op(&g->nodes[i], "MatMulInteger")))
            continue;
        fused += fuse_chain(m, g, i, dead, &st) == FUSE_DONE;
    }
    for (size_t i = g->n_nodes; i-- > 0;)
        if (dead[i])
            oq_graph_remove_node(g, i);
    free(dead);
    if (st == OQ_OK && fused) {
        ctx->changed += fused;
        oq_log(OQ_LOG_INFO, "fuse_dynamic: %zu dynamically quantized ConvInteger/MatMulInteger chains fused", fused);
    }
    return st;
}
