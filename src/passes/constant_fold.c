/* passes/constant_fold: evaluates at preparation time what does not depend on
 * the model's inputs — Constant nodes, nodes whose inputs are all initializers,
 * and Shape/Size of values whose shape is static — through the operator
 * registry, and stores the results as initializers. */
#include "ops/op.h"
#include "passes/pass.h"

#include <stdlib.h>
#include <string.h>

/* Folded results above this size stay computed at run time unless they are no
 * larger than twice their inputs (a transposed or cast weight, say). */
#define FOLD_MAX_BYTES ((size_t)1 << 20)
#define FILL_MAX_BYTES ((size_t)4096)

static int64_t node_opset(const oq_model *m, const oq_node *n)
{
    int64_t opset = oq_model_opset(m, n->domain);
    return opset == 0 && !oq_domain_is_default(n->domain) ? 1 : opset;
}

static size_t tensor_bytes(const oq_tensor *t)
{
    int64_t numel = oq_shape_numel(t->ndim, t->dims);
    size_t es = t->dtype == OQ_STRING ? sizeof(char *) : oq_dtype_size(t->dtype);
    return numel < 0 ? SIZE_MAX : (size_t)numel * es;
}

static void op_node_init(oq_op_node *op, const oq_model *m, const oq_node *n, const oq_tensor *const *consts)
{
    memset(op, 0, sizeof *op);
    op->node = n;
    op->label = n->name && n->name[0] ? n->name : (n->n_outputs ? n->outputs[0] : n->op_type);
    op->opset = node_opset(m, n);
    op->n_inputs = n->n_inputs;
    op->n_outputs = n->n_outputs;
    op->consts = consts;
}

oq_status oq_pass_eval_node(const oq_model *m, const oq_node *n, const oq_tensor *const *in, size_t max_bytes,
                            oq_tensor **out)
{
    char lb[256];
    const oq_op_entry *e = oq_op_find(n->domain, n->op_type, node_opset(m, n));
    if (!e)
        return oq_error(OQ_E_UNSUPPORTED, "node '%s': %s is not implemented at this opset",
                        oq_node_label(n, lb, sizeof lb), n->op_type);
    if (n->n_outputs == 0)
        return oq_error(OQ_E_GRAPH, "node '%s' has no outputs", oq_node_label(n, lb, sizeof lb));
    oq_op_node op;
    op_node_init(&op, m, n, in);
    oq_tensor **t = oq_calloc(n->n_outputs, sizeof *t);
    oq_status st = t ? OQ_OK : oq_error(OQ_E_NOMEM, "out of memory");
    for (size_t o = 0; o < n->n_outputs && st == OQ_OK; o++)
        if (!(t[o] = calloc(1, sizeof **t)))
            st = oq_error(OQ_E_NOMEM, "out of memory");
    if (st == OQ_OK && e->def->prepare)
        st = e->def->prepare(&op);
    if (st == OQ_OK && e->def->infer) {
        st = e->def->infer(&op, in, t);
        size_t total = 0;
        for (size_t o = 0; o < n->n_outputs && st == OQ_OK; o++)
            if (t[o]->dtype != OQ_UNDEFINED)
                total += tensor_bytes(t[o]);
        if (st == OQ_OK && max_bytes && total > max_bytes)
            st = OQ_E_UNSUPPORTED; /* too large to keep: not an error worth a message */
        for (size_t o = 0; o < n->n_outputs && st == OQ_OK; o++) {
            if (t[o]->dtype == OQ_UNDEFINED)
                continue;
            int64_t dims[OQ_MAX_DIMS];
            memcpy(dims, t[o]->dims, sizeof dims);
            st = oq_tensor_alloc(t[o], t[o]->dtype, t[o]->ndim, dims);
        }
    }
    if (st == OQ_OK)
        st = e->def->run(&op, in, t);
    if (st == OQ_OK && !e->def->infer && max_bytes) {
        size_t total = 0;
        for (size_t o = 0; o < n->n_outputs; o++)
            if (t[o]->dtype != OQ_UNDEFINED)
                total += tensor_bytes(t[o]);
        if (total > max_bytes)
            st = OQ_E_UNSUPPORTED;
    }
    if (op.state && e->def->destroy)
        e->def->destroy(op.state);
    for (size_t o = 0; t && o < n->n_outputs; o++) {
        if (st == OQ_OK && t[o]->dtype != OQ_UNDEFINED) {
            out[o] = t[o];
        } else {
            if (st == OQ_OK)
                out[o] = NULL;
            oq_tensor_destroy(t[o]);
        }
    }
    free(t);
    return st;
}

/* Operators whose result is not a function of their inputs, or that the
 * quantization passes must still see (weights behind DequantizeLinear). */
static bool never_fold(const oq_node *n)
{
    static const char *const ops[] = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                                      "Multinomial", "Bernoulli", "QuantizeLinear", "DequantizeLinear",
                                      "DynamicQuantizeLinear", "If", "Loop", "Scan", "Identity"};
    if (!oq_domain_is_default(n->domain))
        return true;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (!strcmp(n->op_type, ops[i]))
            return true;
    for (size_t a = 0; a < n->n_attrs; a++)
        if (n->attrs[a].g || n->attrs[a].n_graphs)
            return true;
    return false;
}

/* ---- static shapes ----
 * A value's shape is known when it is a graph input declared with fixed dims,
 * or the output of an operator whose output shape follows from its input shapes
 * and attributes plus the values of a few inputs, which must then be constant.
 * Only these operators are trusted: for them infer reads no other input data. */
typedef struct shape_rule {
    const char *op;
    unsigned value_inputs; /* bit i: input i's values decide the shape */
} shape_rule;

static const shape_rule shape_rules[] = {
    {"Abs", 0}, {"Add", 0}, {"And", 0}, {"AveragePool", 0}, {"BatchNormalization", 0}, {"Cast", 0},
    {"Ceil", 0}, {"Clip", 0}, {"Concat", 0}, {"Conv", 0}, {"ConvTranspose", 0}, {"Div", 0}, {"Dropout", 0},
    {"Elu", 0}, {"Equal", 0}, {"Erf", 0}, {"Exp", 0}, {"Expand", 2}, {"Flatten", 0}, {"Floor", 0},
    {"Gather", 0}, {"Gelu", 0}, {"Gemm", 0}, {"GlobalAveragePool", 0}, {"GlobalMaxPool", 0}, {"Greater", 0},
    {"HardSigmoid", 0}, {"HardSwish", 0}, {"Identity", 0}, {"InstanceNormalization", 0},
    {"LayerNormalization", 0}, {"LeakyRelu", 0}, {"Less", 0}, {"Log", 0}, {"LogSoftmax", 0}, {"MatMul", 0},
    {"Max", 0}, {"MaxPool", 0}, {"Mean", 0}, {"Min", 0}, {"Mul", 0}, {"Neg", 0}, {"Not", 0}, {"Or", 0},
    {"Pad", 2 | 8}, {"Pow", 0}, {"PRelu", 0}, {"Reciprocal", 0}, {"ReduceL2", 2}, {"ReduceMax", 2},
    {"ReduceMean", 2}, {"ReduceMin", 2}, {"ReduceProd", 2}, {"ReduceSum", 2}, {"Relu", 0}, {"Reshape", 2},
    {"Resize", 2 | 4 | 8}, {"Round", 0}, {"Selu", 0}, {"Sigmoid", 0}, {"Sign", 0}, {"Sin", 0}, {"Cos", 0},
    {"Slice", 2 | 4 | 8 | 16}, {"Softmax", 0}, {"Softplus", 0}, {"Split", 2}, {"Sqrt", 0}, {"Squeeze", 2},
    {"Sub", 0}, {"Sum", 0}, {"Tanh", 0}, {"Tile", 2}, {"Transpose", 0}, {"Unsqueeze", 2}, {"Upsample", 2},
    {"Where", 0},
};

static const shape_rule *find_shape_rule(const oq_node *n)
{
    if (!oq_domain_is_default(n->domain))
        return NULL;
    for (size_t i = 0; i < sizeof shape_rules / sizeof shape_rules[0]; i++)
        if (!strcmp(shape_rules[i].op, n->op_type))
            return &shape_rules[i];
    return NULL;
}

/* Operators whose infer does not need prepare's state, and whose prepare packs
 * weights (too costly to repeat for a shape). */
static bool skip_prepare(const char *op)
{
    return !strcmp(op, "Conv") || !strcmp(op, "ConvTranspose") || !strcmp(op, "Gemm") || !strcmp(op, "MatMul");
}

typedef struct fold_state {
    const oq_model *m;
    oq_graph *g;
    oq_strmap known; /* value name -> index into shapes */
    oq_tensor *shapes; /* dtype+shape, no data */
    size_t n_shapes, cap_shapes;
} fold_state;

static const oq_tensor *known_shape(const fold_state *fs, const char *name)
{
    size_t i;
    return oq_strmap_get(&fs->known, name, &i) ? &fs->shapes[i] : NULL;
}

static oq_status add_known(fold_state *fs, const char *name, const oq_tensor *t)
{
    oq_status st = oq_grow((void **)&fs->shapes, &fs->cap_shapes, fs->n_shapes + 1, sizeof *fs->shapes);
    if (st != OQ_OK)
        return st;
    oq_tensor *s = &fs->shapes[fs->n_shapes];
    memset(s, 0, sizeof *s);
    s->dtype = t->dtype;
    s->ndim = t->ndim;
    memcpy(s->dims, t->dims, sizeof s->dims);
    return oq_strmap_put(&fs->known, name, fs->n_shapes++);
}

/* Builds zero-filled stand-ins for non-constant inputs of known shape. The data
 * is never meant to be read (only constant inputs decide shapes); calloc keeps
 * large stand-ins cheap. in[i] is NULL when input i is absent. Returns false
 * when some present input is neither constant nor of known shape. */
static bool gather_inputs(const fold_state *fs, const oq_node *n, const oq_tensor **in, oq_tensor *dummies,
                          bool need_values)
{
    for (size_t i = 0; i < n->n_inputs; i++) {
        in[i] = NULL;
        const char *name = oq_node_input(n, i);
        if (!name)
            continue;
        const oq_tensor *c = oq_graph_initializer(fs->g, name);
        if (c) {
            in[i] = c;
            continue;
        }
        const oq_tensor *s = need_values ? NULL : known_shape(fs, name);
        if (!s || s->dtype == OQ_STRING)
            return false;
        dummies[i] = *s;
        size_t bytes = tensor_bytes(s);
        if (bytes == SIZE_MAX)
            return false;
        dummies[i].data = calloc(1, bytes ? bytes : 1);
        dummies[i].nbytes = bytes;
        if (!dummies[i].data)
            return false;
        in[i] = &dummies[i];
    }
    return true;
}

static void free_dummies(const oq_node *n, oq_tensor *dummies)
{
    for (size_t i = 0; i < n->n_inputs; i++) {
        free(dummies[i].data);
        dummies[i].data = NULL;
    }
}

/* Records the output shapes of n when they follow from known input shapes. */
static oq_status propagate_shapes(fold_state *fs, const oq_node *n, const oq_tensor **in, oq_tensor *dummies)
{
    const shape_rule *r = find_shape_rule(n);
    if (!r)
        return OQ_OK;
    for (size_t i = 0; i < n->n_inputs; i++)
        if ((r->value_inputs >> i & 1) && oq_node_input(n, i) && !oq_graph_initializer(fs->g, n->inputs[i]))
            return OQ_OK;
    const oq_op_entry *e = oq_op_find(n->domain, n->op_type, node_opset(fs->m, n));
    if (!e || !e->def->infer)
        return OQ_OK;
    memset(dummies, 0, n->n_inputs * sizeof *dummies);
    bool ok = gather_inputs(fs, n, in, dummies, false);
    oq_tensor out[8];
    oq_tensor *outp[8];
    memset(out, 0, sizeof out);
    for (size_t o = 0; o < 8; o++)
        outp[o] = &out[o];
    oq_op_node op;
    op_node_init(&op, fs->m, n, in);
    oq_status st = OQ_OK;
    if (ok && n->n_outputs <= 8) {
        if (e->def->prepare && !skip_prepare(n->op_type))
            st = e->def->prepare(&op);
        if (st == OQ_OK)
            st = e->def->infer(&op, in, outp);
        for (size_t o = 0; o < n->n_outputs && st == OQ_OK; o++)
            if (out[o].dtype != OQ_UNDEFINED && n->outputs[o][0] && oq_shape_numel(out[o].ndim, out[o].dims) >= 0)
                st = add_known(fs, n->outputs[o], &out[o]);
        if (op.state && e->def->destroy)
            e->def->destroy(op.state);
    }
    free_dummies(n, dummies);
    /* A failure to infer just leaves the shapes unknown; the session reports it later. */
    if (st != OQ_OK && st != OQ_E_NOMEM) {
        oq_error_clear();
        st = OQ_OK;
    }
    return st;
}

static bool static_input(const oq_value_info *v)
{
    if (v->ndim < 0 || v->dtype == OQ_UNDEFINED)
        return false;
    for (int d = 0; d < v->ndim; d++)
        if (v->dims[d] < 0 || v->dim_params[d])
            return false;
    return true;
}

static bool needs_shapes(const oq_graph *g)
{
    for (size_t i = 0; i < g->n_nodes; i++) {
        const oq_node *n = &g->nodes[i];
        if (oq_domain_is_default(n->domain) && (!strcmp(n->op_type, "Shape") || !strcmp(n->op_type, "Size")) &&
            n->n_inputs && !oq_graph_initializer(g, n->inputs[0]))
            return true;
    }
    return false;
}

/* Replaces node i by initializers holding its outputs. */
static oq_status replace_by_constants(oq_graph *g, size_t i, oq_tensor **out)
{
    oq_node *n = &g->nodes[i];
    oq_status st = OQ_OK;
    for (size_t o = 0; o < n->n_outputs; o++) {
        if (!out[o] || !n->outputs[o][0]) {
            oq_tensor_destroy(out[o]);
            out[o] = NULL;
            continue;
        }
        if (st == OQ_OK) {
            /* The name moves from the node to the initializer. */
            free(out[o]->name);
            out[o]->name = n->outputs[o];
            n->outputs[o] = NULL;
            st = oq_graph_add_initializer(g, out[o]);
        }
        if (st != OQ_OK)
            oq_tensor_destroy(out[o]);
        out[o] = NULL;
    }
    if (st == OQ_OK)
        oq_graph_remove_node(g, i);
    return st;
}

static oq_status fold_graph(fold_state *fs, oq_pass_ctx *ctx, size_t *n_constants, size_t *n_folded,
                            size_t *n_shapes)
{
    oq_graph *g = fs->g;
    bool shapes = needs_shapes(g);
    oq_status st = OQ_OK;
    for (size_t i = 0; shapes && i < g->n_inputs && st == OQ_OK; i++)
        if (static_input(&g->inputs[i]) && !oq_graph_initializer(g, g->inputs[i].name)) {
            oq_tensor t = {0};
            t.dtype = g->inputs[i].dtype;
            t.ndim = g->inputs[i].ndim;
            memcpy(t.dims, g->inputs[i].dims, sizeof t.dims);
            st = add_known(fs, g->inputs[i].name, &t);
        }
    size_t cap = 1;
    for (size_t i = 0; i < g->n_nodes; i++)
        cap = g->nodes[i].n_inputs > cap ? g->nodes[i].n_inputs : cap;
    const oq_tensor **in = oq_calloc(cap, sizeof *in);
    oq_tensor *dummies = oq_calloc(cap, sizeof *dummies);
    oq_tensor *outs[8];
    if (st == OQ_OK && (!in || !dummies))
        st = oq_error(OQ_E_NOMEM, "out of memory");
    for (size_t i = 0; i < g->n_nodes && st == OQ_OK;) {
        oq_node *n = &g->nodes[i];
        bool is_constant = !strcmp(n->op_type, "Constant") && oq_domain_is_default(n->domain);
        bool shape_of = (!strcmp(n->op_type, "Shape") || !strcmp(n->op_type, "Size")) &&
                        oq_domain_is_default(n->domain);
        if (never_fold(n) || n->n_outputs == 0 || n->n_outputs > 8) {
            if (shapes)
                st = propagate_shapes(fs, n, in, dummies);
            i++;
            continue;
        }
        memset(dummies, 0, n->n_inputs * sizeof *dummies);
        /* Shape and Size read only their input's shape, so a stand-in will do. */
        bool ready = gather_inputs(fs, n, in, dummies, !shape_of);
        size_t in_bytes = 0;
        for (size_t k = 0; ready && k < n->n_inputs; k++)
            if (in[k] && in[k] != &dummies[k])
                in_bytes += tensor_bytes(in[k]);
        size_t limit = is_constant ? 0 : (2 * in_bytes > FOLD_MAX_BYTES ? 2 * in_bytes : FOLD_MAX_BYTES);
        /* a fill (ConstantOfShape, Expand, Tile) costs nothing to compute at run time, but
         * folded it is stored in full: BlazeFace's zero channel padding was 172 KB of its 442 */
        if (!strcmp(n->op_type, "ConstantOfShape") || !strcmp(n->op_type, "Expand") || !strcmp(n->op_type, "Tile"))
            limit = FILL_MAX_BYTES > 2 * in_bytes ? FILL_MAX_BYTES : 2 * in_bytes;
        oq_status est = ready ? oq_pass_eval_node(fs->m, n, in, limit, outs) : OQ_E_UNSUPPORTED;
        free_dummies(n, dummies);
        if (est == OQ_E_NOMEM) {
            st = est;
            break;
        }
        if (est != OQ_OK) {
            /* Left for run time (e.g. too large, or it fails on these values: the session will say why). */
            oq_error_clear();
            if (shapes)
                st = propagate_shapes(fs, n, in, dummies);
            i++;
            continue;
        }
        if (is_constant)
            (*n_constants)++;
        else if (shape_of && !oq_graph_initializer(g, n->inputs[0]))
            (*n_shapes)++;
        else
            (*n_folded)++;
        if (st == OQ_OK)
            st = replace_by_constants(g, i, outs);
        ctx->changed++;
    }
    free(in);
    free(dummies);
    return st;
}

oq_status pass_constant_fold(oq_model *m, oq_graph *g, oq_pass_ctx *ctx)
{
    fold_state fs = {0};
    fs.m = m;
    fs.g = g;
    size_t n_constants = 0, n_folded = 0, n_shapes = 0;
    oq_status st = oq_strmap_init(&fs.known, g->n_nodes + g->n_inputs + 1);
    if (st == OQ_OK)
        st = fold_graph(&fs, ctx, &n_constants, &n_folded, &n_shapes);
    oq_strmap_free(&fs.known);
    free(fs.shapes);
    if (n_constants)
        oq_pass_note(ctx, "constant_fold", "%zu Constant node%s turned into initializers", n_constants,
                     n_constants == 1 ? "" : "s");
    if (n_shapes)
        oq_pass_note(ctx, "constant_fold", "%zu Shape/Size of static shapes evaluated", n_shapes);
    if (n_folded)
        oq_pass_note(ctx, "constant_fold", "%zu node%s with constant inputs evaluated", n_folded,
                     n_folded == 1 ? "" : "s");
    return st;
}

/* A DequantizeLinear of constants that the QDQ fusion left in place (its reader stays a
 * float node: an operator with no integer form, an input quantized per axis) would
 * dequantize the same weights on every run, and its reader could not pack them once. It is
 * evaluated here, once, into a float initializer. Values the session observes stay. */
oq_status pass_fold_dequantize(oq_model *m, oq_graph *g, oq_pass_ctx *ctx)
{
    size_t n_folded = 0;
    oq_status st = OQ_OK;
    for (size_t i = 0; i < g->n_nodes && st == OQ_OK;) {
        oq_node *n = &g->nodes[i];
        bool all_const = n->n_outputs == 1 && n->n_inputs >= 2 && n->n_inputs <= 3;
        const oq_tensor *in[3] = {NULL, NULL, NULL};
        for (size_t k = 0; all_const && k < n->n_inputs; k++)
            all_const = !n->inputs[k][0] || (in[k] = oq_graph_initializer(g, n->inputs[k])) != NULL;
        if (!all_const || strcmp(n->op_type, "DequantizeLinear") || !oq_domain_is_default(n->domain) ||
            oq_pass_keeps_value(ctx, g, n->outputs[0])) {
            i++;
            continue;
        }
        oq_tensor *out[1] = {NULL};
        oq_status est = oq_pass_eval_node(m, n, in, 0, out);
        if (est == OQ_E_NOMEM) {
            st = est;
            break;
        }
        if (est != OQ_OK || !out[0]) {
            /* a malformed node is left for run time, where the session names it */
            oq_tensor_destroy(out[0]);
            oq_error_clear();
            i++;
            continue;
        }
        st = replace_by_constants(g, i, out);
        n_folded++;
        ctx->changed++;
    }
    if (n_folded)
        oq_pass_note(ctx, "fold_dequantize", "%zu DequantizeLinear of constants evaluated once (their readers stay "
                     "float)", n_folded);
    return st;
}
