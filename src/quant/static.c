/* quant/static: static quantization to QDQ. A plan decides which nodes run in
 * int8 and which tensors need ranges (shared with calibration, so both see the
 * same tensors); the rewrite inserts QuantizeLinear/DequantizeLinear pairs on
 * activations, int8 weights (per channel) and int32 biases behind
 * DequantizeLinear, and folds Relu/Clip(0, x) into the producer's output range. */
#include "passes/pass.h"
#include "quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum kind { K_NONE = 0, K_WEIGHTED, K_ARITH, K_OWN, K_SHARED, K_ACT };

typedef struct op_kind {
    const char *op;
    enum kind kind;
} op_kind;

static const op_kind kinds[] = {
    {"Conv", K_WEIGHTED}, {"Gemm", K_WEIGHTED}, {"MatMul", K_WEIGHTED}, {"Add", K_ARITH},
    {"Mul", K_ARITH}, {"AveragePool", K_OWN}, {"GlobalAveragePool", K_OWN}, {"Concat", K_ARITH},
    {"Relu", K_ACT}, {"Clip", K_ACT}, {"MaxPool", K_SHARED}, {"Flatten", K_SHARED},
    {"Reshape", K_SHARED}, {"Transpose", K_SHARED}, {"Squeeze", K_SHARED}, {"Unsqueeze", K_SHARED},
    {"Pad", K_SHARED},
};

static enum kind kind_of(const oq_node *n)
{
    if (!oq_domain_is_default(n->domain))
        return K_NONE;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(kinds[i].op, n->op_type))
            return kinds[i].kind;
    return K_NONE;
}

typedef struct qtensor {
    const char *name;  /* borrowed from the graph (stable: strings are not moved) */
    size_t root;       /* tensor whose range and parameters this one shares */
    bool quant_producer;
    qparams p;
    char *dq;          /* name of the dequantized value */
    const char *sn, *zn; /* scale and zero-point initializer names */
    char *keys[2];     /* owned map keys (the graph's strings may be replaced while rewriting) */
} qtensor;

typedef struct qnode {
    enum kind kind;
    bool q, folded;    /* folded: a Relu/Clip removed into its producer's range */
    bool float_in;     /* K_SHARED left float because its input is (see quantize_before_shared) */
    quant_rule rule;
    const char *why;
} qnode;

typedef struct plan {
    const oq_graph *g;
    const quant_scope *scope;  /* g and the graphs enclosing it */
    const struct plan *up;     /* the enclosing graph's plan (types of outer values), or NULL */
    const oq_calib_table *table; /* subgraphs: a node whose tensors have no range stays float */
    const oq_strmap *shared;   /* names defined in more than one graph (sibling branches), or NULL */
    size_t n_unseen;           /* nodes kept float for that reason */
    bool not_run;              /* a body calibration never ran (nor, then, its own bodies) */
    qnode *nodes;
    qtensor *t;
    size_t n_t, cap_t;
    oq_strmap tmap;    /* name -> t index */
    oq_strmap types;   /* name -> dtype */
} plan;

static void plan_free(plan *p)
{
    free(p->nodes);
    for (size_t i = 0; i < p->n_t; i++) {
        free(p->t[i].dq);
        free(p->t[i].keys[0]);
        free(p->t[i].keys[1]);
    }
    free(p->t);
    oq_strmap_free(&p->tmap);
    oq_strmap_free(&p->types);
}

static oq_dtype type_of(const plan *p, const char *name)
{
    size_t v;
    for (; p; p = p->up)
        if (oq_strmap_get(&p->types, name, &v))
            return (oq_dtype)v;
    return OQ_UNDEFINED;
}

/* Output o's element type of a node with subgraphs, from the body's declared outputs. */
static oq_dtype body_output_type(const oq_node *n, size_t o)
{
    const oq_attr *a = oq_node_attr(n, !strcmp(n->op_type, "If") ? "then_branch" : "body");
    size_t k = o + (!strcmp(n->op_type, "Loop") ? 1 : 0); /* a Loop body's output 0 is the condition */
    return a && a->g && k < a->g->n_outputs ? a->g->outputs[k].dtype : OQ_UNDEFINED;
}

static const char *const reason_unseen = "no calibration range (this branch did not run on the calibration data)";

/* Element types of every value, from inputs, initializers and simple per-op rules:
 * enough to keep shape arithmetic (int64) out of quantization. */
static oq_status infer_types(plan *p)
{
    const oq_graph *g = p->g;
    oq_status st = oq_strmap_init(&p->types, g->n_nodes * 2 + g->n_inputs + g->n_initializers + 8);
    for (size_t i = 0; st == OQ_OK && i < g->n_inputs; i++)
        st = oq_strmap_put(&p->types, g->inputs[i].name, (size_t)g->inputs[i].dtype);
    for (size_t i = 0; st == OQ_OK && i < g->n_initializers; i++)
        st = oq_strmap_put(&p->types, g->initializers[i]->name, (size_t)g->initializers[i]->dtype);
    for (size_t i = 0; st == OQ_OK && i < g->n_value_infos; i++)
        if (g->value_infos[i].dtype != OQ_UNDEFINED)
            st = oq_strmap_put(&p->types, g->value_infos[i].name, (size_t)g->value_infos[i].dtype);
    for (size_t i = 0; st == OQ_OK && i < g->n_nodes; i++) {
        const oq_node *n = &g->nodes[i];
        oq_dtype t = OQ_UNDEFINED;
        const char *op = n->op_type;
        if (!strcmp(op, "Shape") || !strcmp(op, "Size") || !strcmp(op, "NonZero") || !strcmp(op, "ArgMax") ||
            !strcmp(op, "ArgMin"))
            t = OQ_INT64;
        else if (!strcmp(op, "Cast"))
            t = (oq_dtype)oq_node_attr_int(n, "to", 0);
        else if (!strcmp(op, "Equal") || !strcmp(op, "Less") || !strcmp(op, "Greater") || !strcmp(op, "Not") ||
                 !strcmp(op, "And") || !strcmp(op, "Or") || !strcmp(op, "IsNaN"))
            t = OQ_BOOL;
        else if (!strcmp(op, "ConstantOfShape")) {
            const oq_attr *a = oq_node_attr(n, "value");
            t = a && a->t ? a->t->dtype : OQ_FLOAT; /* not the type of its shape input */
        } else if (!strcmp(op, "Constant")) {
            const oq_attr *a = oq_node_attr(n, "value");
            t = a && a->t ? a->t->dtype : OQ_UNDEFINED;
        } else
            for (size_t k = 0; k < n->n_inputs && t == OQ_UNDEFINED; k++)
                if (n->inputs[k][0])
                    t = type_of(p, n->inputs[k]);
        bool control = !strcmp(op, "If") || !strcmp(op, "Loop") || !strcmp(op, "Scan");
        /* every output has the input's type. (Not LSTM/GRU's Y_h, Y_c: left untyped, recurrent
         * state is never quantized — 8-bit steps compound when the state is carried to the next call.) */
        bool same = !strcmp(op, "Split");
        for (size_t o = 0; o < n->n_outputs && st == OQ_OK; o++) {
            size_t have;
            oq_dtype to = control ? body_output_type(n, o) : o == 0 || same ? t : OQ_UNDEFINED;
            if (n->outputs[o][0] && !oq_strmap_get(&p->types, n->outputs[o], &have))
                st = oq_strmap_put(&p->types, n->outputs[o], (size_t)to);
        }
    }
    return st;
}

/* An initializer of g or of an enclosing graph (ONNX scoping), or NULL. */
static const oq_tensor *plan_init(const plan *p, const char *name) { return quant_scope_initializer(p->scope, name); }

static bool is_init(const plan *p, const char *name) { return name && plan_init(p, name); }

static bool has_range(const plan *p, const char *name)
{
    float mn, mx;
    return !p->table || oq_calib_table_get(p->table, name, &mn, &mx);
}

/* Sibling bodies may define the same name (ONNX scoping allows it); calibration keys ranges by
 * name, so such a tensor's range may come from the other body. */
static bool is_shared(const plan *p, const char *name)
{
    size_t v;
    return p->shared && oq_strmap_get(p->shared, name, &v) && v > 1;
}

static const char *const reason_shared = "a tensor name is also defined in another subgraph (its range is ambiguous)";

static size_t find_t(const plan *p, const char *name)
{
    size_t v;
    return oq_strmap_get(&p->tmap, name, &v) ? v : SIZE_MAX;
}

static oq_status add_t(plan *p, const char *name, size_t root, bool quant_producer, size_t *idx)
{
    size_t have = find_t(p, name);
    if (have != SIZE_MAX) {
        p->t[have].quant_producer |= quant_producer;
        if (idx)
            *idx = have;
        return OQ_OK;
    }
    if (oq_grow((void **)&p->t, &p->cap_t, p->n_t + 1, sizeof *p->t) != OQ_OK)
        return oq_error(OQ_E_NOMEM, "out of memory");
    qtensor *t = &p->t[p->n_t];
    memset(t, 0, sizeof *t);
    t->name = name;
    t->root = root == SIZE_MAX ? p->n_t : root;
    t->quant_producer = quant_producer;
    if (!(t->keys[0] = oq_strdup(name)))
        return oq_error(OQ_E_NOMEM, "out of memory");
    if (idx)
        *idx = p->n_t;
    return oq_strmap_put(&p->tmap, t->keys[0], p->n_t++);
}

/* Inputs that carry activations (quantized through Q/DQ) for a node of kind k. */
static bool act_slot(const plan *p, const oq_node *n, enum kind k, size_t slot)
{
    const char *in = oq_node_input(n, slot);
    if (!in)
        return false;
    switch (k) {
    case K_WEIGHTED:
        if (slot == 0)
            return true;
        return slot == 1 && !strcmp(n->op_type, "MatMul") && !is_init(p, in);
    case K_ARITH:
        return !is_init(p, in);
    case K_OWN:
    case K_ACT:
    case K_SHARED:
        return slot == 0;
    default:
        return false;
    }
}

static bool has_subgraph(const oq_node *n)
{
    for (size_t a = 0; a < n->n_attrs; a++)
        if (n->attrs[a].g || n->attrs[a].n_graphs)
            return true;
    return false;
}

static bool is_range_op(const oq_node *n)
{
    static const char *const ops[] = {"Log", "Sqrt", "Pow", "Exp", "Reciprocal"};
    for (size_t i = 0; oq_domain_is_default(n->domain) && i < sizeof ops / sizeof ops[0]; i++)
        if (!strcmp(n->op_type, ops[i]))
            return true;
    return false;
}

/* Does an elementwise node sit next to a dynamic-range operator: an activation input made by
 * Sqrt/Pow/Exp/..., or its output read by Log/Sqrt/...? (A power or magnitude spectrum before
 * its log: on a uniform 8-bit grid over [0, max] most of its small values become 0, and the log
 * turns that into large errors — Silero VAD's STFT magnitude path: SQNR 10 -> 24 dB kept float.) */
static bool next_to_range_op(const plan *p, const oq_node *n, enum kind k)
{
    for (size_t s = 0; s < n->n_inputs; s++) {
        size_t pi = act_slot(p, n, k, s) ? oq_graph_producer(p->g, n->inputs[s]) : SIZE_MAX;
        if (pi != SIZE_MAX && is_range_op(&p->g->nodes[pi]))
            return true;
    }
    for (size_t i = 0; n->n_outputs && i < p->g->n_nodes; i++)
        for (size_t s = 0; s < p->g->nodes[i].n_inputs; s++)
            if (!strcmp(p->g->nodes[i].inputs[s], n->outputs[0]) && is_range_op(&p->g->nodes[i]))
                return true;
    return false;
}

static bool has_any_subgraph(const oq_graph *g)
{
    for (size_t i = 0; i < g->n_nodes; i++)
        if (has_subgraph(&g->nodes[i]))
            return true;
    return false;
}

/* Can node n run in int8 at all (types, constant weights)? Returns the reason if not. */
/* A Pad shares its input's range when the values it adds are in it: constant 0 (a quantized
 * range always holds 0 exactly), or copies of x (edge, reflect, wrap); pads from an input (opset 11+). */
static const char *pad_blocker(const plan *p, const oq_node *n)
{
    const char *pads = oq_node_input(n, 1), *value = oq_node_input(n, 2);
    if (!pads || !is_init(p, pads))
        return "pads are not a constant input";
    if (oq_node_input(n, 3))
        return "Pad with axes";
    const char *mode = oq_node_attr_string(n, "mode", "constant");
    if (strcmp(mode, "constant"))
        return strcmp(mode, "edge") && strcmp(mode, "reflect") && strcmp(mode, "wrap") ? "unknown Pad mode" : NULL;
    const oq_tensor *v = value ? plan_init(p, value) : NULL;
    if (value && (!v || v->dtype != OQ_FLOAT || oq_tensor_numel(v) != 1 || !v->data || oq_tensor_get_f64(v, 0) != 0))
        return "the pad value is not a constant 0";
    return NULL;
}

static const char *blocker(const plan *p, const oq_node *n, enum kind k)
{
    for (size_t s = 0; s < n->n_inputs; s++)
        if (act_slot(p, n, k, s) && type_of(p, n->inputs[s]) != OQ_FLOAT)
            return "input is not float";
    if (n->n_outputs < 1 || type_of(p, n->outputs[0]) != OQ_FLOAT)
        return "output is not float";
    if (k == K_WEIGHTED) {
        const char *w = oq_node_input(n, 1);
        if (!w)
            return "no weight";
        if (strcmp(n->op_type, "MatMul") != 0 && !is_init(p, w))
            return "weight is not constant";
        if (is_init(p, w) && plan_init(p, w)->dtype != OQ_FLOAT)
            return "weight is not float";
    }
    if (k == K_ARITH && next_to_range_op(p, n, k))
        return "next to Log/Sqrt/Pow/Exp (8-bit steps lose the small values of that range)";
    if (k == K_ARITH)
        for (size_t s = 0; s < n->n_inputs; s++)
            if (is_init(p, n->inputs[s]) && plan_init(p, n->inputs[s])->dtype != OQ_FLOAT)
                return "constant input is not float";
    if (!strcmp(n->op_type, "MaxPool") && n->n_outputs > 1 && n->outputs[1][0])
        return "MaxPool indices output";
    if (!strcmp(n->op_type, "Pad"))
        return pad_blocker(p, n);
    if (!strcmp(n->op_type, "Clip")) {
        for (size_t s = 1; s < n->n_inputs; s++)
            if (n->inputs[s][0] && !is_init(p, n->inputs[s]))
                return "Clip bounds are not constant";
    }
    return NULL;
}

/* Lower bound of a Relu or constant Clip (NAN if not a fixed clamp at 0). */
static double clamp_low(const plan *p, const oq_node *n)
{
    if (!strcmp(n->op_type, "Relu"))
        return 0;
    double lo = oq_node_attr_float(n, "min", -INFINITY);
    const char *mn = oq_node_input(n, 1);
    const oq_tensor *mt = mn ? plan_init(p, mn) : NULL;
    if (mn && (!mt || oq_tensor_numel(mt) != 1 || !mt->data ||
               (mt->dtype != OQ_FLOAT && mt->dtype != OQ_DOUBLE && mt->dtype != OQ_FLOAT16)))
        return NAN;
    if (mt)
        lo = oq_tensor_get_f64(mt, 0);
    return lo;
}

/* Is name read inside the subgraph of one of g's nodes (an implicit input)? */
static bool read_by_subgraph(const oq_graph *g, const char *name)
{
    size_t direct = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        for (size_t k = 0; k < g->nodes[i].n_inputs; k++)
            direct += !strcmp(g->nodes[i].inputs[k], name);
    for (size_t i = 0; i < g->n_outputs; i++)
        direct += !strcmp(g->outputs[i].name, name);
    return oq_graph_count_readers(g, name) > direct;
}

/* A folded activation's float readers read the dequantized value. When such a reader's
 * output (or the value itself) goes into a subgraph, onnxruntime 1.30 fails to load the
 * file (its QDQ propagation moves the DequantizeLinear past a Transpose whose only reader
 * is an If branch and indexes past the If's explicit inputs), so such an activation stays. */
static bool feeds_subgraph(const oq_graph *g, const char *name)
{
    if (read_by_subgraph(g, name))
        return true;
    for (size_t i = 0; i < g->n_nodes; i++)
        for (size_t k = 0; k < g->nodes[i].n_inputs; k++)
            if (!strcmp(g->nodes[i].inputs[k], name))
                for (size_t o = 0; o < g->nodes[i].n_outputs; o++)
                    if (g->nodes[i].outputs[o][0] && read_by_subgraph(g, g->nodes[i].outputs[o]))
                        return true;
    return false;
}

/* A data-movement node (MaxPool, Reshape, Transpose...) left float because its input is float, whose
 * output is quantized anyway for an int8 reader: quantizing its input instead, with the output's
 * parameters, gives the same values (quantization is monotone, so it commutes with taking a maximum,
 * and with moving values), and the node runs on int8 (a MaxPool on a quarter of the bytes; the
 * QuantizeLinear joins the float ops before it). Last node first, so that a MaxPool before a Reshape
 * moves too. */
static oq_status quantize_before_shared(plan *p)
{
    oq_status st = OQ_OK;
    for (size_t i = p->g->n_nodes; i-- > 0 && st == OQ_OK;) {
        const oq_node *n = &p->g->nodes[i];
        qnode *qn = &p->nodes[i];
        size_t out = qn->float_in ? find_t(p, n->outputs[0]) : SIZE_MAX;
        if (out == SIZE_MAX || read_by_subgraph(p->g, n->outputs[0]) || find_t(p, n->inputs[0]) != SIZE_MAX)
            continue;
        qn->q = true;
        qn->why = NULL;
        qn->float_in = false;
        p->t[out].quant_producer = true;
        st = add_t(p, n->inputs[0], p->t[out].root, false, NULL);
    }
    return st;
}

/* scope: g's; up: the enclosing graph's plan; table (subgraphs only): nodes whose tensors have no range stay float;
 * forced: nodes kept float because running them in int8 gains nothing (see plan_int8_worth); may be NULL */
static oq_status make_plan(const oq_graph *g, const quant_rules *rules, bool fold, bool symmetric,
                           const quant_scope *scope, const plan *up, const oq_calib_table *table,
                           const oq_strmap *shared, const bool *forced, plan *p)
{
    memset(p, 0, sizeof *p);
    p->shared = shared;
    p->g = g;
    p->scope = scope;
    p->up = up;
    p->table = table;
    p->nodes = oq_calloc(g->n_nodes + 1, sizeof *p->nodes);
    if (!p->nodes)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = infer_types(p);
    if (st == OQ_OK)
        st = oq_strmap_init(&p->tmap, g->n_nodes * 2 + 8);
    for (size_t i = 0; st == OQ_OK && i < g->n_nodes; i++) {
        const oq_node *n = &g->nodes[i];
        qnode *qn = &p->nodes[i];
        qn->kind = kind_of(n);
        if (rules) {
            qn->rule = quant_rules_for(rules, n);
        } else {
            qn->rule.quantize = 1;
            qn->rule.per_channel = 1;
        }
        if (qn->kind == K_NONE) {
            qn->why = "no int8 form";
            continue;
        }
        if (!qn->rule.quantize) {
            qn->why = qn->rule.why;
            continue;
        }
        if ((qn->why = blocker(p, n, qn->kind)) != NULL)
            continue;
        if (forced && forced[i]) {
            qn->why = "its output feeds no int8 node";
            continue;
        }
        if (qn->kind == K_ARITH || qn->kind == K_OWN) {
            /* element-wise and pooling ops run in int8 only when int8 already flows in on every
             * activation input: a float input would be rounded once more for nothing, as the
             * node's output is quantized for its int8 readers either way (a Mul of x by
             * HardSigmoid(x), with the HardSigmoid kept in float) */
            const char *fl = NULL;
            for (size_t s = 0; s < n->n_inputs && !fl; s++) {
                if (!act_slot(p, n, qn->kind, s))
                    continue;
                size_t t = find_t(p, n->inputs[s]);
                if (t == SIZE_MAX || !p->t[t].quant_producer)
                    fl = "input is float";
            }
            if (fl) {
                qn->why = fl;
                continue;
            }
        }
        if (qn->kind == K_SHARED || qn->kind == K_ACT) {
            /* data movement, or an activation, is worth it only when int8 already flows in:
             * otherwise quantizing its input just adds a second rounding (a Relu after a
             * Conv kept in float) */
            size_t t = find_t(p, n->inputs[0]);
            if (t == SIZE_MAX || !p->t[t].quant_producer) {
                qn->why = "input is float";
                qn->float_in = qn->kind == K_SHARED;
                continue;
            }
            /* DequantizeLinear -> Transpose -> If branch: see feeds_subgraph */
            if (qn->kind == K_SHARED && read_by_subgraph(g, n->outputs[0])) {
                qn->why = "its output goes into a subgraph";
                continue;
            }
        }
        if (p->table) {
            bool seen = qn->kind == K_SHARED || has_range(p, n->outputs[0]);
            for (size_t s = 0; seen && s < n->n_inputs; s++)
                seen = !act_slot(p, n, qn->kind, s) || has_range(p, n->inputs[s]);
            if (!seen) {
                qn->why = reason_unseen;
                p->n_unseen++;
                continue;
            }
            bool shared = qn->kind != K_SHARED && is_shared(p, n->outputs[0]);
            for (size_t s = 0; !shared && s < n->n_inputs; s++)
                shared = act_slot(p, n, qn->kind, s) && is_shared(p, n->inputs[s]);
            if (shared) {
                qn->why = reason_shared;
                continue;
            }
        }
        qn->q = true;
        /* Relu/Clip(0, hi) right after an int8 producer: the asymmetric output range does the
         * clamp, so the activation goes. Symmetric ranges cannot clamp at 0: the activation
         * stays, and its input shares its output's range (values below -max saturate, then
         * clamp to 0 anyway), so calibration never needs the pre-activation range. */
        if (fold && qn->kind == K_ACT && clamp_low(p, n) == 0 && !feeds_subgraph(g, n->outputs[0])) {
            size_t pi = oq_graph_producer(g, n->inputs[0]);
            if (pi != SIZE_MAX && pi < i && p->nodes[pi].q && p->nodes[pi].kind != K_SHARED &&
                p->nodes[pi].kind != K_ACT && oq_graph_single_reader(g, n->inputs[0]) == i && symmetric) {
                size_t in_t = find_t(p, n->inputs[0]), out_t;
                st = add_t(p, n->outputs[0], SIZE_MAX, true, &out_t);
                if (st == OQ_OK && in_t != SIZE_MAX)
                    p->t[in_t].root = out_t;
                continue;
            }
            if (pi != SIZE_MAX && pi < i && p->nodes[pi].q && p->nodes[pi].kind != K_SHARED &&
                p->nodes[pi].kind != K_ACT && oq_graph_single_reader(g, n->inputs[0]) == i) {
                qn->folded = true;
                size_t t = find_t(p, n->inputs[0]);
                /* the producer's output now is the Relu's output: re-key its entry */
                if (t != SIZE_MAX) {
                    p->t[t].name = n->outputs[0];
                    free(p->t[t].keys[1]);
                    if (!(p->t[t].keys[1] = oq_strdup(n->outputs[0])))
                        st = oq_error(OQ_E_NOMEM, "out of memory");
                    else
                        st = oq_strmap_put(&p->tmap, p->t[t].keys[1], t);
                }
                continue;
            }
        }
        for (size_t s = 0; s < n->n_inputs && st == OQ_OK; s++)
            if (act_slot(p, n, qn->kind, s))
                st = add_t(p, n->inputs[s], SIZE_MAX, false, NULL);
        if (st != OQ_OK)
            break;
        size_t root = qn->kind == K_SHARED ? p->t[find_t(p, n->inputs[0])].root : SIZE_MAX;
        st = add_t(p, n->outputs[0], root, true, NULL);
    }
    if (st == OQ_OK)
        st = quantize_before_shared(p);
    return st;
}

oq_status quant_static_tensors(const oq_graph *g, const quant_rules *rules, bool all_ops, const char ***names,
                               size_t *count)
{
    plan p, unfolded;
    memset(&unfolded, 0, sizeof unfolded);
    quant_scope scope = {g, NULL, ""};
    oq_status st = make_plan(g, all_ops ? NULL : rules, true, false, &scope, NULL, NULL, NULL, NULL, &p);
    /* For every configuration, also the ranges an unfolded activation needs: with its
     * producer excluded (kept in float), a Relu is quantized on its own and its input's
     * range is needed too. */
    if (st == OQ_OK && all_ops)
        st = make_plan(g, NULL, false, false, &scope, NULL, NULL, NULL, NULL, &unfolded);
    const char **out = NULL;
    size_t n = 0;
    if (st == OQ_OK && !(out = oq_calloc(p.n_t + unfolded.n_t + 1, sizeof *out)))
        st = oq_error(OQ_E_NOMEM, "out of memory");
    /* for every configuration: every tensor of either plan, not only the roots — a tensor
     * that shares its range with another (a MaxPool's output) becomes a root of its own
     * when the node joining them is kept in float */
    for (size_t i = 0; st == OQ_OK && i < p.n_t; i++)
        if (p.t[i].root == i || all_ops)
            out[n++] = p.t[i].name;
    for (size_t i = 0; st == OQ_OK && i < unfolded.n_t; i++) {
        bool have = false;
        for (size_t k = 0; k < n && !have; k++)
            have = !strcmp(out[k], unfolded.t[i].name);
        if (!have)
            out[n++] = unfolded.t[i].name;
    }
    plan_free(&p);
    if (all_ops)
        plan_free(&unfolded);
    if (st != OQ_OK) {
        free(out);
        return st;
    }
    *names = out;
    *count = n;
    return OQ_OK;
}

typedef struct name_set {
    const char **v;
    size_t n, cap;
    oq_strmap seen;
} name_set;

static oq_status name_set_add(name_set *ns, const char *name)
{
    if (oq_strmap_get(&ns->seen, name, NULL))
        return OQ_OK;
    oq_status st = oq_grow((void **)&ns->v, &ns->cap, ns->n + 1, sizeof *ns->v);
    if (st == OQ_OK)
        st = oq_strmap_put(&ns->seen, name, ns->n);
    if (st == OQ_OK)
        ns->v[ns->n++] = name;
    return st;
}

/* Every tensor the subgraphs of g's nodes (and theirs) may quantize, for every configuration;
 * up: g's plan (the types g's values have). */
static oq_status subgraph_tensors(const oq_graph *g, const plan *up, const quant_scope *scope, name_set *ns,
                                  int depth)
{
    oq_status st = depth > 64 ? oq_error(OQ_E_GRAPH, "subgraphs nested more than 64 deep") : OQ_OK;
    for (size_t i = 0; st == OQ_OK && i < g->n_nodes; i++)
        for (size_t a = 0; st == OQ_OK && a < g->nodes[i].n_attrs; a++) {
            const oq_attr *at = &g->nodes[i].attrs[a];
            for (size_t k = 0; st == OQ_OK && k < (at->g ? 1 : at->n_graphs); k++) {
                const oq_graph *sub = at->g ? at->g : at->graphs[k];
                quant_scope ss = {sub, scope, ""};
                plan p, unfolded;
                memset(&unfolded, 0, sizeof unfolded);
                st = make_plan(sub, NULL, true, false, &ss, up, NULL, NULL, NULL, &p);
                if (st == OQ_OK)
                    st = make_plan(sub, NULL, false, false, &ss, up, NULL, NULL, NULL, &unfolded);
                for (size_t t = 0; st == OQ_OK && t < p.n_t; t++)
                    st = name_set_add(ns, p.t[t].name);
                for (size_t t = 0; st == OQ_OK && t < unfolded.n_t; t++)
                    st = name_set_add(ns, unfolded.t[t].name);
                if (st == OQ_OK)
                    st = subgraph_tensors(sub, &p, &ss, ns, depth + 1);
                plan_free(&p);
                plan_free(&unfolded);
            }
        }
    return st;
}

oq_status quant_static_subgraph_tensors(const oq_graph *g, const char ***names, size_t *count)
{
    name_set ns = {0};
    quant_scope scope = {g, NULL, ""};
    plan p;
    oq_status st = oq_strmap_init(&ns.seen, 64);
    if (st == OQ_OK)
        st = make_plan(g, NULL, true, false, &scope, NULL, NULL, NULL, NULL, &p);
    if (st == OQ_OK) {
        st = subgraph_tensors(g, &p, &scope, &ns, 0);
        plan_free(&p);
    }
    oq_strmap_free(&ns.seen);
    if (st != OQ_OK) {
        free(ns.v);
        return st;
    }
    *names = ns.v;
    *count = ns.n;
    return OQ_OK;
}

/* ---- rewrite ---- */

/* The plan, less the int8 nodes that gain nothing: an element-wise, pooling or data-movement
 * node whose output no int8 node reads (a graph output, a float Div, the Add/Clip/Mul of a
 * HardSwish before a float Div) would quantize its output only to dequantize it at once —
 * one more rounding, and no integer kernel to show for it. Weighted nodes always stay int8.
 * Keeping such a node float can leave the nodes before it in the same position, hence the
 * repetition until nothing changes. */
static oq_status plan_int8_worth(const oq_graph *g, const quant_rules *rules, bool symmetric, const quant_scope *scope,
                                 const plan *up, const oq_calib_table *table, const oq_strmap *shared, plan *p)
{
    bool *forced = oq_calloc(g->n_nodes + 1, sizeof *forced);
    if (!forced)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = OQ_OK;
    /* each round forces at least one more node, so this ends */
    for (;;) {
        if ((st = make_plan(g, rules, true, symmetric, scope, up, table, shared, forced, p)) != OQ_OK)
            break;
        size_t changed = 0;
        for (size_t i = 0; i < g->n_nodes; i++) {
            const qnode *qn = &p->nodes[i];
            if (!qn->q || qn->folded || qn->kind == K_WEIGHTED)
                continue;
            const char *out = g->nodes[i].outputs[0];
            /* a Relu folded into this node: its readers are the ones that count */
            size_t r = oq_graph_single_reader(g, out);
            if (r != SIZE_MAX && p->nodes[r].folded)
                out = g->nodes[r].outputs[0];
            bool int8_reader = false;
            for (size_t k = 0; k < g->n_nodes && !int8_reader; k++) {
                if (!p->nodes[k].q || p->nodes[k].folded)
                    continue;
                for (size_t s = 0; s < g->nodes[k].n_inputs && !int8_reader; s++)
                    int8_reader = !strcmp(g->nodes[k].inputs[s], out);
            }
            if (!int8_reader) {
                forced[i] = true;
                changed++;
            }
        }
        if (!changed)
            break;
        plan_free(p);
    }
    free(forced);
    return st;
}

static oq_status add_q_dq(quant_ctx *q, oq_graph *g, plan *p, size_t ti, const char *scale, const char *zp)
{
    qtensor *t = &p->t[ti];
    oq_status st;
    char *qname = qg_unique_name(p->scope, t->name, "_q");
    char *dq = qg_unique_name(p->scope, t->name, "_dq");
    if (!qname || !dq) {
        free(qname);
        free(dq);
        return oq_error(OQ_E_NOMEM, "out of memory");
    }
    const char *src = t->name;
    char *renamed = NULL;
    /* A graph output keeps its name on the dequantized value; the producer writes a new name. */
    if (oq_graph_is_output(g, t->name) && t->quant_producer) {
        size_t pi = oq_graph_producer(g, t->name);
        renamed = qg_unique_name(p->scope, t->name, "_f");
        if (!renamed || pi == SIZE_MAX) {
            free(qname), free(dq), free(renamed);
            return renamed ? oq_error(OQ_E_GRAPH, "output '%s' has no producer", t->name)
                           : oq_error(OQ_E_NOMEM, "out of memory");
        }
        free(dq);
        dq = oq_strdup(t->name); /* before the producer's string (t->name) is replaced */
        oq_node *pn = &g->nodes[pi];
        for (size_t o = 0; o < pn->n_outputs; o++)
            if (!strcmp(pn->outputs[o], dq)) {
                char *s = oq_strdup(renamed);
                if (!s)
                    break;
                free(pn->outputs[o]);
                pn->outputs[o] = s;
            }
        t->name = dq;
        src = renamed;
    }
    const char *qin[3] = {src, scale, zp}, *qout[1] = {qname};
    const char *dqin[3] = {qname, scale, zp}, *dqout[1] = {dq};
    st = oq_graph_add_node(g, "QuantizeLinear", "", "", qin, 3, qout, 1, NULL);
    if (st == OQ_OK)
        st = oq_graph_add_node(g, "DequantizeLinear", "", "", dqin, 3, dqout, 1, NULL);
    free(qname);
    free(renamed);
    t->dq = dq;
    (void)q;
    return st;
}

static void set_input(oq_node *n, size_t slot, const char *name)
{
    char *s = oq_strdup(name);
    if (s) {
        free(n->inputs[slot]);
        n->inputs[slot] = s;
    }
}

/* Node name, else its first output (BatchNorm folding and exporters leave names empty). */
static const char *label(const oq_node *n, char *buf, size_t len)
{
    if (n->name && n->name[0])
        return n->name;
    if (n->n_outputs && n->outputs[0][0])
        return n->outputs[0];
    return oq_node_label(n, buf, len);
}

static double mib(int64_t b) { return (double)b / (1024.0 * 1024.0); }

/* Quantizes the constant input `slot` of node ni: weights per channel along axis,
 * other constants per tensor in the activation type. Returns the new DQ output name. */
static oq_status quant_const(quant_ctx *q, oq_graph *g, const plan *p, size_t ni, size_t slot, int axis,
                             oq_dtype type, int reduce, char **dq_name, const oq_tensor **w_scale, bool is_weight)
{
    oq_node *n = &g->nodes[ni];
    const oq_tensor *w = plan_init(p, n->inputs[slot]);
    oq_tensor *tq = NULL, *ts = NULL, *tz = NULL;
    oq_status st;
    if (type == OQ_INT8 || axis >= 0) {
        st = quantize_weight(w, axis, type, reduce, &tq, &ts, &tz);
    } else {
        /* a constant operand of Add/Mul/Concat: its own exact range */
        float lo = 0, hi = 0;
        const float *x = w->data;
        for (int64_t i = 0; i < oq_tensor_numel(w); i++)
            lo = x[i] < lo ? x[i] : lo, hi = x[i] > hi ? x[i] : hi;
        qparams qp = qparams_activation(lo, hi, type, 0);
        st = oq_tensor_create(type, w->ndim, w->dims, &tq);
        if (st == OQ_OK)
            st = make_scalar_f32(qp.scale, &ts);
        if (st == OQ_OK)
            st = make_scalar_zp(qp.zero_point, type, &tz);
        for (int64_t i = 0; st == OQ_OK && i < oq_tensor_numel(w); i++) {
            double v = nearbyint(x[i] / qp.scale) + qp.zero_point;
            v = v < (type == OQ_INT8 ? -128 : 0) ? (type == OQ_INT8 ? -128 : 0) : v > (type == OQ_INT8 ? 127 : 255) ? (type == OQ_INT8 ? 127 : 255) : v;
            if (type == OQ_INT8)
                ((int8_t *)tq->data)[i] = (int8_t)v;
            else
                ((uint8_t *)tq->data)[i] = (uint8_t)v;
        }
    }
    if (st != OQ_OK) {
        oq_tensor_destroy(tq), oq_tensor_destroy(ts), oq_tensor_destroy(tz);
        char lb[200];
        return oq_error_context(st, "node '%s'", label(n, lb, sizeof lb));
    }
    char lbuf[200];
    const char *lb = label(n, lbuf, sizeof lbuf); /* the node's name, or lbuf */
    if (is_weight)
        quant_report(q, "[%zu/%zu] %s%s  %.2f MiB -> %.2f MiB  %s  sqnr %.1f dB", ++q->weights_done,
                     q->weights_total, q->where ? q->where : "", lb,
                     mib((int64_t)w->nbytes), mib((int64_t)tq->nbytes), axis >= 0 ? "per-channel" : "per-tensor",
                     weight_sqnr(w, tq, ts, tz, axis));
    const char *base = w->name;
    char *basecopy = oq_strdup(base);
    const char *qn = NULL, *sn = NULL, *zn = NULL;
    if (!basecopy) {
        oq_tensor_destroy(tq), oq_tensor_destroy(ts), oq_tensor_destroy(tz);
        return oq_error(OQ_E_NOMEM, "out of memory");
    }
    if (w_scale)
        *w_scale = ts;
    st = qg_add_init_in(g, p->scope, tq, basecopy, "_q", &qn);
    if (st == OQ_OK)
        st = qg_add_init_in(g, p->scope, ts, basecopy, "_s", &sn);
    else
        oq_tensor_destroy(ts);
    if (st == OQ_OK)
        st = qg_add_init_in(g, p->scope, tz, basecopy, "_zp", &zn);
    else
        oq_tensor_destroy(tz);
    char *dq = st == OQ_OK ? qg_unique_name(p->scope, basecopy, "_dq") : NULL;
    free(basecopy);
    if (st == OQ_OK && !dq)
        st = oq_error(OQ_E_NOMEM, "out of memory");
    oq_node *dn = NULL;
    if (st == OQ_OK) {
        const char *in[3] = {qn, sn, zn}, *out[1] = {dq};
        st = oq_graph_add_node(g, "DequantizeLinear", "", "", in, 3, out, 1, &dn);
    }
    if (st == OQ_OK && axis >= 0)
        st = oq_node_add_attr_int(dn, "axis", axis);
    if (st != OQ_OK) {
        free(dq);
        return st;
    }
    *dq_name = dq;
    return OQ_OK;
}

static oq_status quant_bias(oq_graph *g, const plan *p, size_t ni, float x_scale, const oq_tensor *w_scale,
                            char **dq_name)
{
    const oq_tensor *b = plan_init(p, g->nodes[ni].inputs[2]);
    oq_tensor *tq = NULL, *ts = NULL;
    oq_status st = quantize_bias(b, x_scale, w_scale, &tq, &ts);
    if (st != OQ_OK) {
        char lb[200];
        return oq_error_context(st, "node '%s'", label(&g->nodes[ni], lb, sizeof lb));
    }
    char *base = oq_strdup(b->name);
    const char *qn = NULL, *sn = NULL;
    bool per_channel = ts->ndim == 1;
    if (!base) {
        oq_tensor_destroy(tq), oq_tensor_destroy(ts);
        return oq_error(OQ_E_NOMEM, "out of memory");
    }
    st = qg_add_init_in(g, p->scope, tq, base, "_q", &qn);
    if (st == OQ_OK)
        st = qg_add_init_in(g, p->scope, ts, base, "_s", &sn);
    else
        oq_tensor_destroy(ts);
    char *dq = st == OQ_OK ? qg_unique_name(p->scope, base, "_dq") : NULL;
    free(base);
    if (st == OQ_OK && !dq)
        st = oq_error(OQ_E_NOMEM, "out of memory");
    oq_node *dn = NULL;
    if (st == OQ_OK) {
        const char *in[2] = {qn, sn}, *out[1] = {dq};
        st = oq_graph_add_node(g, "DequantizeLinear", "", "", in, 2, out, 1, &dn);
    }
    if (st == OQ_OK && per_channel)
        st = oq_node_add_attr_int(dn, "axis", 0);
    if (st != OQ_OK) {
        free(dq);
        return st;
    }
    *dq_name = dq;
    return OQ_OK;
}

/* Weight axis of the output channels: Conv weight [M, C/g, k...] axis 0; MatMul B [K, N]
 * axis 1; Gemm B axis 1, or 0 when transB. */
static int weight_axis(const oq_node *n, const oq_tensor *w)
{
    if (!strcmp(n->op_type, "Conv"))
        return 0;
    if (w->ndim != 2)
        return -1;
    if (!strcmp(n->op_type, "Gemm"))
        return oq_node_attr_int(n, "transB", 0) ? 0 : 1;
    return 1;
}

static bool bias_ok(const plan *p, const oq_node *n, const oq_tensor *w, int axis)
{
    const char *b = oq_node_input(n, 2);
    const oq_tensor *bt = b ? plan_init(p, b) : NULL;
    if (!bt || bt->dtype != OQ_FLOAT || bt->ndim != 1)
        return false;
    if (!strcmp(n->op_type, "Gemm") && (oq_node_attr_float(n, "beta", 1.0f) != 1.0f ||
                                        oq_node_attr_float(n, "alpha", 1.0f) != 1.0f))
        return false;
    int ax = axis >= 0 ? axis : (!strcmp(n->op_type, "Gemm") && oq_node_attr_int(n, "transB", 0) ? 0 : 1);
    if (!strcmp(n->op_type, "Conv"))
        ax = 0;
    return ax < w->ndim && bt->dims[0] == w->dims[ax];
}

/* Calls fn on every subgraph of g's nodes with its scope (where: "If_25.then_branch/"). */
typedef oq_status (*sub_fn)(quant_ctx *q, oq_graph *sub, const quant_scope *s, const plan *up, int depth);
static oq_status each_subgraph(quant_ctx *q, oq_graph *g, const quant_scope *scope, const plan *up, int depth,
                               sub_fn fn)
{
    if (depth > 64)
        return oq_error(OQ_E_GRAPH, "subgraphs nested more than 64 deep");
    oq_status st = OQ_OK;
    for (size_t i = 0; st == OQ_OK && i < g->n_nodes; i++)
        for (size_t a = 0; st == OQ_OK && a < g->nodes[i].n_attrs; a++) {
            oq_attr *at = &g->nodes[i].attrs[a];
            for (size_t k = 0; st == OQ_OK && k < (at->g ? 1 : at->n_graphs); k++) {
                char lb[200], *where = oq_malloc(strlen(scope->where) + strlen(at->name) + 210);
                if (!where)
                    return oq_error(OQ_E_NOMEM, "out of memory");
                sprintf(where, "%s%s.%s/", scope->where, label(&g->nodes[i], lb, sizeof lb), at->name);
                quant_scope ss = {at->g ? at->g : at->graphs[k], scope, where};
                st = fn(q, at->g ? at->g : at->graphs[k], &ss, up, depth + 1);
                free(where);
            }
        }
    return st;
}

/* Counts the weights the rewrite will quantize in g and below (the [k/n] lines). */
static oq_status count_weights(quant_ctx *q, oq_graph *g, const quant_scope *scope, const plan *up, int depth)
{
    plan p;
    oq_status st = make_plan(g, q->rules, true, q->opt->activation_symmetric != 0, scope, up,
                             scope->up ? q->table : NULL, q->shared_names, NULL, &p);
    for (size_t i = 0; st == OQ_OK && i < g->n_nodes; i++)
        if (p.nodes[i].q && !p.nodes[i].folded && p.nodes[i].kind == K_WEIGHTED &&
            is_init(&p, oq_node_input(&g->nodes[i], 1)))
            q->weights_total++;
    if (st == OQ_OK)
        st = each_subgraph(q, g, scope, &p, depth, count_weights);
    plan_free(&p);
    return st;
}

/* Static QDQ on g: the plan, then the subgraphs (they see g's values as they are before
 * the rewrite), then g itself. */
static oq_status static_graph(quant_ctx *q, oq_graph *g, const quant_scope *scope, const plan *up, int depth)
{
    const oq_quant_options *opt = q->opt;
    oq_dtype at = opt->activation_type == OQ_INT8 ? OQ_INT8 : OQ_UINT8;
    plan p;
    oq_status st = plan_int8_worth(g, q->rules, opt->activation_symmetric != 0, scope, up,
                                   scope->up ? q->table : NULL, q->shared_names, &p);
    if (st == OQ_OK) {
        bool any_q = false;
        for (size_t i = 0; i < g->n_nodes; i++)
            any_q |= p.nodes[i].q;
        p.not_run = (up && up->not_run) || (p.n_unseen && !any_q);
        st = each_subgraph(q, g, scope, &p, depth, static_graph);
    }
    const char *saved_where = q->where;
    q->where = scope->where;
    size_t n_orig = g->n_nodes;
    /* parameters of every activation tensor */
    for (size_t i = 0; st == OQ_OK && i < p.n_t; i++) {
        qtensor *t = &p.t[i];
        if (t->root != i)
            continue;
        float mn, mx;
        if (!q->table || !oq_calib_table_get(q->table, t->name, &mn, &mx)) {
            st = oq_error(OQ_E_INVALID_ARG,
                          "no calibration range for tensor '%s' (was the table made for another model or with "
                          "other preparation?)", t->name);
            break;
        }
        t->p = qparams_activation(mn, mx, at, opt->activation_symmetric);
    }
    for (size_t i = 0; st == OQ_OK && i < p.n_t; i++)
        if (p.t[i].root != i)
            p.t[i].p = p.t[p.t[i].root].p;
    /* scale and zero point initializers per root tensor, then Q/DQ pairs */
    for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; st == OQ_OK && i < p.n_t; i++) {
        if ((p.t[i].root == i) != (pass == 0))
            continue;
        const char *sn = NULL, *zn = NULL;
        oq_tensor *s = NULL, *z = NULL;
        if (p.t[i].root != i && p.t[p.t[i].root].sn) {
            /* same parameters as the tensor it shares them with: same initializers */
            p.t[i].sn = p.t[p.t[i].root].sn;
            p.t[i].zn = p.t[p.t[i].root].zn;
            st = add_q_dq(q, g, &p, i, p.t[i].sn, p.t[i].zn);
            continue;
        }
        st = make_scalar_f32(p.t[i].p.scale, &s);
        if (st == OQ_OK)
            st = make_scalar_zp(p.t[i].p.zero_point, at, &z);
        if (st != OQ_OK) {
            oq_tensor_destroy(s);
            oq_tensor_destroy(z);
            break;
        }
        char *base = oq_strdup(p.t[i].name);
        if (!base) {
            oq_tensor_destroy(s), oq_tensor_destroy(z);
            st = oq_error(OQ_E_NOMEM, "out of memory");
            break;
        }
        st = qg_add_init_in(g, scope, s, base, "_s", &sn);
        if (st == OQ_OK)
            st = qg_add_init_in(g, scope, z, base, "_zp", &zn);
        else
            oq_tensor_destroy(z);
        free(base);
        p.t[i].sn = sn, p.t[i].zn = zn;
        if (st == OQ_OK)
            st = add_q_dq(q, g, &p, i, sn, zn);
    }
    /* point the int8 nodes at dequantized values */
    for (size_t i = 0; st == OQ_OK && i < n_orig; i++) {
        qnode *qn = &p.nodes[i];
        if (!qn->q || qn->folded)
            continue;
        for (size_t s = 0; s < g->nodes[i].n_inputs && st == OQ_OK; s++) {
            const char *in = oq_node_input(&g->nodes[i], s);
            if (!in)
                continue;
            if (act_slot(&p, &g->nodes[i], qn->kind, s)) {
                size_t ti = find_t(&p, in);
                if (ti != SIZE_MAX && p.t[ti].dq)
                    set_input(&g->nodes[i], s, p.t[ti].dq);
            } else if (qn->kind == K_WEIGHTED && s == 1) {
                const oq_tensor *w = plan_init(&p, in);
                int axis = qn->rule.per_channel ? weight_axis(&g->nodes[i], w) : -1;
                const oq_tensor *ws = NULL;
                char *dq = NULL;
                bool with_bias = bias_ok(&p, &g->nodes[i], w, axis);
                if (axis >= 0 && oq_model_opset(q->m, "") < 13)
                    axis = -1; /* DequantizeLinear gained axis in opset 13 */
                st = quant_const(q, g, &p, i, 1, axis, OQ_INT8, qn->rule.reduce_range, &dq, &ws, true);
                if (st == OQ_OK) {
                    set_input(&g->nodes[i], 1, dq);
                    free(dq);
                }
                if (st == OQ_OK && with_bias) {
                    size_t xi = find_t(&p, g->nodes[i].inputs[0]);
                    /* input 0 was renamed to its dq name: find it by dq */
                    for (size_t k = 0; xi == SIZE_MAX && k < p.n_t; k++)
                        if (p.t[k].dq && !strcmp(p.t[k].dq, g->nodes[i].inputs[0]))
                            xi = k;
                    if (xi != SIZE_MAX) {
                        st = quant_bias(g, &p, i, p.t[xi].p.scale, ws, &dq);
                        if (st == OQ_OK) {
                            set_input(&g->nodes[i], 2, dq);
                            free(dq);
                        }
                    }
                }
            } else if (qn->kind == K_ARITH && is_init(&p, in)) {
                char *dq = NULL;
                st = quant_const(q, g, &p, i, s, -1, at, 0, &dq, NULL, false);
                if (st == OQ_OK) {
                    set_input(&g->nodes[i], s, dq);
                    free(dq);
                }
            }
        }
    }
    /* A float node reading a folded activation's output must read the dequantized value:
     * the clamp now lives in that tensor's quantization, the producer's float output has
     * none (a Gemm kept in float after a quantized Gemm whose Relu was folded). */
    for (size_t i = 0; st == OQ_OK && i < n_orig; i++) {
        if (p.nodes[i].q || p.nodes[i].folded)
            continue;
        for (size_t s = 0; s < g->nodes[i].n_inputs; s++) {
            const char *in = oq_node_input(&g->nodes[i], s);
            size_t pi = in ? oq_graph_producer(g, in) : SIZE_MAX, ti;
            if (pi == SIZE_MAX || pi >= n_orig || !p.nodes[pi].folded)
                continue;
            if ((ti = find_t(&p, in)) != SIZE_MAX && p.t[ti].dq)
                set_input(&g->nodes[i], s, p.t[ti].dq);
        }
    }
    /* the same for reads from inside subgraphs (an If branch reading a folded Relu's output) */
    for (size_t f = 0; st == OQ_OK && f < n_orig; f++) {
        size_t ti = p.nodes[f].folded ? find_t(&p, g->nodes[f].outputs[0]) : SIZE_MAX;
        if (ti == SIZE_MAX || !p.t[ti].dq || !strcmp(p.t[ti].dq, g->nodes[f].outputs[0]))
            continue;
        for (size_t i = 0; st == OQ_OK && i < n_orig; i++)
            for (size_t a = 0; st == OQ_OK && a < g->nodes[i].n_attrs; a++) {
                oq_attr *at = &g->nodes[i].attrs[a];
                for (size_t k = 0; st == OQ_OK && k < (at->g ? 1 : at->n_graphs); k++)
                    st = oq_graph_replace_uses(at->g ? at->g : at->graphs[k], g->nodes[f].outputs[0], p.t[ti].dq);
            }
    }
    /* a branch that never ran: say which of its nodes stay float */
    if (st == OQ_OK && p.n_unseen) {
        char list[600];
        size_t len = 0, shown = 0;
        list[0] = 0;
        for (size_t i = 0; i < n_orig && len < sizeof list - 80; i++)
            if (p.nodes[i].why == reason_unseen) {
                char lb[200];
                len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", shown++ ? ", " : "",
                                        label(&g->nodes[i], lb, sizeof lb));
            }
        quant_report(q, "%s: %zu node%s float, %s no calibration range (this branch did not run on the "
                     "calibration data): %s%s", scope->where, p.n_unseen, p.n_unseen == 1 ? " stays" : "s stay",
                     p.n_unseen == 1 ? "its tensors have" : "their tensors have", list,
                     shown < p.n_unseen ? ", ..." : "");
    }
    /* tally, then drop the folded activations; a body that never ran is one item */
    if (st == OQ_OK && p.not_run && up && up->not_run) {
        q->n_float_nodes += n_orig; /* the enclosing body's item covers it */
    } else if (st == OQ_OK && p.not_run) {
        char what[300];
        snprintf(what, sizeof what, "%s: its %zu node%s%s (the branch did not run on the calibration data)",
                 scope->where, n_orig, n_orig == 1 ? "" : "s", has_any_subgraph(g) ? " and its subgraphs'" : "");
        quant_note_float_group(q, n_orig, what);
    }
    for (size_t i = 0; st == OQ_OK && !p.not_run && i < n_orig; i++) {
        if (p.nodes[i].folded)
            continue;
        if (p.nodes[i].q)
            q->n_quant_nodes++;
        else
            quant_note_float(q, &g->nodes[i], has_subgraph(&g->nodes[i]) ? "no int8 form (its subgraphs are "
                             "quantized on their own)" : p.nodes[i].why);
    }
    size_t folded = 0;
    for (size_t i = n_orig; st == OQ_OK && i-- > 0;)
        if (p.nodes[i].folded) {
            /* the producer takes over the activation's output name */
            char *in = g->nodes[i].inputs[0], *out = g->nodes[i].outputs[0];
            size_t pi = oq_graph_producer(g, in);
            if (pi != SIZE_MAX)
                for (size_t o = 0; o < g->nodes[pi].n_outputs; o++)
                    if (!strcmp(g->nodes[pi].outputs[o], in)) {
                        char *s = oq_strdup(out);
                        if (!s) {
                            st = oq_error(OQ_E_NOMEM, "out of memory");
                            break;
                        }
                        free(g->nodes[pi].outputs[o]);
                        g->nodes[pi].outputs[o] = s;
                    }
            oq_graph_remove_node(g, i);
            folded++;
        }
    if (folded)
        quant_report(q, "%s%s%zu Relu/Clip folded into the output range of their producers", scope->where,
                     scope->where[0] ? " " : "", folded);
    plan_free(&p);
    q->where = saved_where;
    if (st == OQ_OK)
        st = qg_toposort(g, scope);
    return st;
}

typedef struct def_count {
    oq_strmap map; /* name -> number of graphs defining it */
    char **keys;   /* owned: the rewrite replaces the graphs' strings */
    size_t n, cap;
} def_count;

static oq_status count_def(def_count *d, const char *name)
{
    size_t v = 0;
    if (!name[0])
        return OQ_OK;
    if (oq_strmap_get(&d->map, name, &v))
        return oq_strmap_put(&d->map, name, v + 1); /* the key is already owned */
    if (oq_grow((void **)&d->keys, &d->cap, d->n + 1, sizeof *d->keys) != OQ_OK || !(d->keys[d->n] = oq_strdup(name)))
        return oq_error(OQ_E_NOMEM, "out of memory");
    return oq_strmap_put(&d->map, d->keys[d->n++], 1);
}

static oq_status count_defs(def_count *d, const oq_graph *g, int depth)
{
    oq_status st = depth > 64 ? oq_error(OQ_E_GRAPH, "subgraphs nested more than 64 deep") : OQ_OK;
    for (size_t i = 0; st == OQ_OK && i < g->n_inputs; i++)
        st = count_def(d, g->inputs[i].name);
    for (size_t i = 0; st == OQ_OK && i < g->n_nodes; i++) {
        const oq_node *n = &g->nodes[i];
        for (size_t o = 0; st == OQ_OK && o < n->n_outputs; o++)
            st = count_def(d, n->outputs[o]);
        for (size_t a = 0; st == OQ_OK && a < n->n_attrs; a++)
            for (size_t k = 0; st == OQ_OK && k < (n->attrs[a].g ? 1 : n->attrs[a].n_graphs); k++)
                st = count_defs(d, n->attrs[a].g ? n->attrs[a].g : n->attrs[a].graphs[k], depth + 1);
    }
    return st;
}

oq_status quant_static_qdq(quant_ctx *q)
{
    quant_scope scope = {q->m->graph, NULL, ""};
    def_count defs = {0};
    q->weights_total = q->weights_done = 0;
    oq_status st = oq_strmap_init(&defs.map, 64);
    if (st == OQ_OK)
        st = count_defs(&defs, q->m->graph, 0);
    q->shared_names = &defs.map;
    if (st == OQ_OK)
        st = count_weights(q, q->m->graph, &scope, NULL, 0);
    if (st == OQ_OK)
        st = static_graph(q, q->m->graph, &scope, NULL, 0);
    q->shared_names = NULL;
    oq_strmap_free(&defs.map);
    for (size_t i = 0; i < defs.n; i++)
        free(defs.keys[i]);
    free(defs.keys);
    return st;
}
