/* passes/fuse_elementwise: chains of float Add, Sub, Mul, Div, Clip, Sigmoid, two-input Max/Min and
 * LeakyRelu nodes, each reading
 * the one before it (its only reader) and either the chain's input x or a float constant, become one
 * session-only onnxq.ElementwiseChain node (ops/ew_chain.c) that runs them in one pass over x. A
 * decomposed HardSwish (Add 3, Clip 0..6, Mul x, Div 6) is such a chain: MobileNetV3-style models
 * (the PaddleOCR models) keep it in float between their int8 convolutions, four passes over each
 * activation; a Swish, x * Sigmoid(x), is two; a LeakyRelu clamped from below by a Max (TensorFlow
 * exports: openWakeWord) is two. A chain needs a float constant in its first node (integer shape
 * arithmetic is left alone) or a Sigmoid or LeakyRelu of a float layer's output there, and two
 * nodes at least (or one and the per-tensor QuantizeLinear to u8/s8 after it, which
 * then joins: the next int8 layer's input in a QDQ model); no constant may change x's shape (see
 * shape_of). Values a calibration or debug session observes are never inside a chain. */
#include "ops/op.h"
#include "passes/pass.h"

#include <stdlib.h>
#include <string.h>

enum { MAX_LINKS = 16 };

/* What the pass knows of x's shape: its rank and channels (dim 1), -1 when unknown. From the
 * Conv-family node that makes it (rank and output channels of its constant weights) or the graph
 * input it is; a constant may only be one that cannot change x's shape: a rank-0 scalar, a one-value
 * tensor of no higher rank than x, or per channel along x's dim 1. */
typedef struct x_shape {
    int rank;
    int64_t ch;
} x_shape;

static x_shape shape_of(const oq_graph *g, const char *x)
{
    x_shape s = {-1, -1};
    size_t p = oq_graph_producer(g, x);
    if (p != SIZE_MAX) {
        const oq_node *n = &g->nodes[p];
        int wi = !strcmp(n->op_type, "QLinearConv") ? 3 : !strcmp(n->op_type, "Conv") || !strcmp(n->op_type, "ConvInteger") ? 1 : -1;
        const oq_tensor *w = wi >= 0 && (size_t)wi < n->n_inputs ? oq_graph_initializer(g, n->inputs[wi]) : NULL;
        if (w && w->ndim >= 3 && n->n_outputs >= 1 && !strcmp(n->outputs[0], x) && !oq_node_attr(n, "onnxq_nhwc"))
            s.rank = w->ndim, s.ch = w->dims[0];
        return s;
    }
    for (size_t i = 0; i < g->n_inputs; i++)
        if (!strcmp(g->inputs[i].name, x) && g->inputs[i].ndim >= 0) {
            s.rank = g->inputs[i].ndim;
            s.ch = s.rank >= 2 && g->inputs[i].dims[1] > 0 ? g->inputs[i].dims[1] : -1;
        }
    return s;
}

static bool float_const(const oq_graph *g, const char *name, x_shape xs)
{
    const oq_tensor *t = name && name[0] ? oq_graph_initializer(g, name) : NULL;
    if (!t || t->dtype != OQ_FLOAT || !t->data)
        return false;
    if (t->ndim == 0)
        return true;
    if (xs.rank < t->ndim)
        return false;
    int off = xs.rank - t->ndim;
    for (int d = 0; d < t->ndim; d++)
        if (t->dims[d] != 1 && (off + d != 1 || t->dims[d] != xs.ch))
            return false;
    return true;
}

/* Whether x is the float output of a layer with float weights (Conv, Gemm, MatMul) or of an integer
 * layer with a float output (QLinearConv made float, MatMulIntegerToFloat, DynamicQuantizeMatMul). */
static bool float_layer_output(const oq_graph *g, const char *x)
{
    size_t p = oq_graph_producer(g, x);
    if (p == SIZE_MAX || strcmp(g->nodes[p].outputs[0], x))
        return false;
    const oq_node *n = &g->nodes[p];
    if (!strcmp(n->op_type, "MatMulIntegerToFloat") || !strcmp(n->op_type, "DynamicQuantizeMatMul") ||
        (!strcmp(n->op_type, "QLinearConv") && oq_node_attr_int(n, "onnxq_float_output", 0)))
        return true;
    if (strcmp(n->op_type, "Conv") && strcmp(n->op_type, "Gemm") && strcmp(n->op_type, "MatMul"))
        return false;
    for (size_t k = 0; k < n->n_inputs && k < 3; k++) {
        const oq_tensor *w = n->inputs[k][0] ? oq_graph_initializer(g, n->inputs[k]) : NULL;
        if (w)
            return w->dtype == OQ_FLOAT;
    }
    return false;
}

typedef struct link {
    size_t node;
    int step[2];           /* one or two steps (Clip: max then min) */
    const char *operand[2]; /* NULL: a scalar initializer of value alpha, made when the chain is fused */
    float alpha;
    int n;
} link;

/* Node i as a step on `cur` (x: the chain's input), or false. */
static bool as_step(const oq_graph *g, size_t i, const char *cur, const char *x, x_shape xs, link *l)
{
    const oq_node *n = &g->nodes[i];
    if (!oq_domain_is_default(n->domain) || n->n_outputs != 1)
        return false;
    l->node = i;
    l->n = 1;
    if (!strcmp(n->op_type, "Sigmoid")) {
        l->step[0] = OQ_EW_STEP_SIGMOID;
        l->operand[0] = x ? x : cur; /* not read */
        return n->n_inputs == 1 && !strcmp(n->inputs[0], cur);
    }
    if (!strcmp(n->op_type, "LeakyRelu")) {
        l->step[0] = OQ_EW_STEP_LEAKYRELU;
        l->operand[0] = NULL;
        l->alpha = oq_node_attr_float(n, "alpha", 0.01f);
        return n->n_inputs == 1 && !strcmp(n->inputs[0], cur);
    }
    if (!strcmp(n->op_type, "Clip")) {
        if (n->n_inputs < 1 || strcmp(n->inputs[0], cur) || oq_node_attr(n, "min") || oq_node_attr(n, "max"))
            return false; /* Clip-6 attributes: left to the Clip node */
        const char *lo = n->n_inputs > 1 ? n->inputs[1] : "", *hi = n->n_inputs > 2 ? n->inputs[2] : "";
        if ((lo[0] && !float_const(g, lo, xs)) || (hi[0] && !float_const(g, hi, xs)) || (!lo[0] && !hi[0]))
            return false;
        if ((lo[0] && oq_tensor_numel(oq_graph_initializer(g, lo)) != 1) ||
            (hi[0] && oq_tensor_numel(oq_graph_initializer(g, hi)) != 1))
            return false;
        l->n = 0;
        if (lo[0])
            l->step[l->n] = OQ_EW_STEP_MAX, l->operand[l->n++] = lo;
        if (hi[0])
            l->step[l->n] = OQ_EW_STEP_MIN, l->operand[l->n++] = hi;
        return true;
    }
    static const char *const ops[] = {"Add", "Sub", "Mul", "Div", "Max", "Min"};
    static const int fwd[] = {OQ_EW_STEP_ADD, OQ_EW_STEP_SUB,     OQ_EW_STEP_MUL,
                              OQ_EW_STEP_DIV, OQ_EW_STEP_MAXIMUM, OQ_EW_STEP_MINIMUM};
    static const int rev[] = {OQ_EW_STEP_ADD,  OQ_EW_STEP_RSUB,     OQ_EW_STEP_MUL,
                              OQ_EW_STEP_RDIV, OQ_EW_STEP_RMAXIMUM, OQ_EW_STEP_RMINIMUM};
    int k = -1;
    for (int o = 0; o < 6 && k < 0; o++)
        if (!strcmp(n->op_type, ops[o]))
            k = o;
    if (k < 0 || n->n_inputs != 2)
        return false;
    int side = !strcmp(n->inputs[0], cur) ? 0 : !strcmp(n->inputs[1], cur) ? 1 : -1;
    if (side < 0 || !strcmp(n->inputs[0], n->inputs[1]))
        return false;
    const char *other = n->inputs[1 - side];
    if (!float_const(g, other, xs) && !(x && !strcmp(other, x)))
        return false;
    l->step[0] = side == 0 ? fwd[k] : rev[k];
    l->operand[0] = other;
    return true;
}

/* The chain starting at node s: its links, x and whether a float constant is in it. */
/* Whether n is of a type a chain holds (before any name lookup: every node is tried as a start). */
static bool chain_op(const oq_node *n)
{
    static const char *const ops[] = {"Add", "Sub", "Mul", "Div", "Clip", "Sigmoid", "LeakyRelu", "Max", "Min"};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        if (!strcmp(n->op_type, ops[k]))
            return oq_domain_is_default(n->domain);
    return false;
}

static size_t chain_at(const oq_graph *g, size_t s, const oq_pass_ctx *ctx, link *links, const char **x)
{
    const oq_node *n = &g->nodes[s];
    if (!chain_op(n) || n->n_inputs < 1 || n->n_outputs != 1)
        return 0;
    /* x: the first node's input that is not a constant */
    *x = NULL;
    for (size_t k = 0; k < n->n_inputs && k < 2 && !*x; k++)
        if (n->inputs[k][0] && !oq_graph_initializer(g, n->inputs[k]))
            *x = n->inputs[k];
    x_shape xs = *x ? shape_of(g, *x) : (x_shape){-1, -1};
    if (!*x || !as_step(g, s, *x, NULL, xs, &links[0]))
        return 0;
    /* a chain starting with a Sigmoid or LeakyRelu has no constant to tell its type: x must be a float
     * layer's output */
    if ((links[0].step[0] == OQ_EW_STEP_SIGMOID || links[0].step[0] == OQ_EW_STEP_LEAKYRELU) &&
        !float_layer_output(g, *x))
        return 0;
    size_t len = 1;
    const char *cur = n->outputs[0];
    while (len < MAX_LINKS && !oq_pass_keeps_value(ctx, g, cur)) {
        size_t r = oq_graph_single_reader(g, cur);
        if (r == SIZE_MAX || !as_step(g, r, cur, *x, xs, &links[len]))
            break;
        cur = g->nodes[r].outputs[0];
        len++;
    }
    return len;
}

/* The per-tensor QuantizeLinear to u8/s8 that is the only reader of v, or SIZE_MAX. */
static size_t final_quantize(const oq_graph *g, const char *v, const oq_pass_ctx *ctx)
{
    if (oq_pass_keeps_value(ctx, g, v))
        return SIZE_MAX;
    size_t q = oq_graph_single_reader(g, v);
    if (q == SIZE_MAX)
        return SIZE_MAX;
    const oq_node *n = &g->nodes[q];
    if (strcmp(n->op_type, "QuantizeLinear") || !oq_domain_is_default(n->domain) || n->n_inputs < 2 ||
        n->n_outputs != 1 || strcmp(n->inputs[0], v) || oq_node_attr_int(n, "block_size", 0) != 0 ||
        oq_node_attr_int(n, "output_dtype", 0) != 0)
        return SIZE_MAX;
    const oq_tensor *sc = oq_graph_initializer(g, n->inputs[1]);
    const oq_tensor *zp = n->n_inputs > 2 && n->inputs[2][0] ? oq_graph_initializer(g, n->inputs[2]) : NULL;
    if (!sc || sc->dtype != OQ_FLOAT || oq_tensor_numel(sc) != 1 || sc->ndim > 1 || !sc->data)
        return SIZE_MAX;
    if (n->n_inputs > 2 && n->inputs[2][0] &&
        (!zp || (zp->dtype != OQ_UINT8 && zp->dtype != OQ_INT8) || oq_tensor_numel(zp) != 1 || zp->ndim > 1))
        return SIZE_MAX;
    return q;
}

/* A rank-0 float initializer holding v, named after node n; *name points at its name in g. */
static oq_status alpha_initializer(oq_graph *g, const oq_node *n, float v, const char **name)
{
    oq_tensor *t = NULL;
    oq_status st = oq_tensor_create(OQ_FLOAT, 0, NULL, &t);
    if (st != OQ_OK)
        return st;
    *(float *)t->data = v;
    if ((st = oq_graph_add_named_initializer(g, t, n->outputs[0], "_alpha")) == OQ_OK)
        *name = t->name;
    return st;
}

oq_status pass_fuse_elementwise(oq_model *m, oq_graph *g, oq_pass_ctx *ctx)
{
    (void)m;
    /* a debug session observes every value, a calibration session those it keeps */
    if (ctx->keep_subgraph_values && !ctx->keep_values)
        return OQ_OK;
    size_t fused = 0, quantized = 0;
    for (size_t s = 0; s < g->n_nodes;) {
        link links[MAX_LINKS];
        const char *x = NULL;
        size_t len = chain_at(g, s, ctx, links, &x);
        size_t q = len ? final_quantize(g, g->nodes[links[len - 1].node].outputs[0], ctx) : SIZE_MAX;
        if (len < 2 && !(len == 1 && q != SIZE_MAX)) {
            s++;
            continue;
        }
        /* inputs: x, then each distinct operand; steps name them by index */
        const char *in[2 * MAX_LINKS + 1];
        int64_t steps[4 * MAX_LINKS];
        size_t n_in = 1, n_steps = 0;
        in[0] = x;
        for (size_t l = 0; l < len; l++)
            for (int k = 0; k < links[l].n; k++) {
                oq_status st = links[l].operand[k] ? OQ_OK
                                                   : alpha_initializer(g, &g->nodes[links[l].node], links[l].alpha,
                                                                       &links[l].operand[k]);
                if (st != OQ_OK)
                    return st;
                size_t at = 0;
                while (at < n_in && strcmp(in[at], links[l].operand[k]))
                    at++;
                if (at == n_in)
                    in[n_in++] = links[l].operand[k];
                steps[2 * n_steps] = links[l].step[k];
                steps[2 * n_steps + 1] = (int64_t)at;
                n_steps++;
            }
        /* the last node (or the QuantizeLinear after it) becomes the chain: its output and place
         * stay; the others go */
        int64_t qin[2] = {-1, -1};
        if (q != SIZE_MAX) {
            const oq_node *qn = &g->nodes[q];
            qin[0] = (int64_t)n_in;
            in[n_in++] = qn->inputs[1];
            if (qn->n_inputs > 2 && qn->inputs[2][0]) {
                qin[1] = (int64_t)n_in;
                in[n_in++] = qn->inputs[2];
            }
        }
        oq_node *last = &g->nodes[q != SIZE_MAX ? q : links[len - 1].node];
        oq_status st = oq_node_rewrite(last, "ElementwiseChain", "onnxq", in, n_in, true);
        if (st == OQ_OK)
            st = oq_node_add_attr_ints(last, "onnxq_steps", steps, 2 * n_steps);
        if (st == OQ_OK && q != SIZE_MAX)
            st = oq_node_add_attr_ints(last, "onnxq_quantize", qin, 2);
        if (st != OQ_OK)
            return st;
        for (size_t l = q != SIZE_MAX ? len : len - 1; l-- > 0;)
            oq_graph_remove_node(g, links[l].node); /* in graph order, so later indices first */
        quantized += q != SIZE_MAX;
        fused++;
        ctx->changed++; /* node s went: the one after it is at s now */
    }
    if (fused)
        oq_pass_note(ctx, "fuse_elementwise", "%zu chain%s of float Add/Sub/Mul/Div/Clip/Sigmoid/Max/Min/LeakyRelu fused into "
                     "onnxq.ElementwiseChain (%zu with the QuantizeLinear after them)", fused, fused == 1 ? "" : "s",
                     quantized);
    return OQ_OK;
}
