/* quant/qoperator: turns the static quantizer's QDQ graph into the QOperator
 * form: a node whose activation inputs all come from DequantizeLinear and whose
 * output goes only to QuantizeLinear becomes its integer operator (QLinearConv,
 * QLinearMatMul, com.microsoft QGemm / QLinearAdd / QLinearMul / QLinearConcat /
 * QLinearAveragePool / QLinearGlobalAveragePool), and data movement (MaxPool,
 * Flatten, Reshape, ...) runs directly on the int8 tensor; a MatMul of int8 inputs
 * whose output is read in float becomes com.microsoft MatMulIntegerToFloat. Q/DQ pairs remain
 * only where float and int8 parts of the graph meet. */
#include "passes/pass.h"
#include "quant/quant.h"

#include <stdlib.h>
#include <string.h>

typedef struct dq_info {
    const char *q, *scale, *zp; /* zp may be "" */
} dq_info;

static bool is_op(const oq_node *n, const char *op) { return oq_domain_is_default(n->domain) && !strcmp(n->op_type, op); }

static bool from_dq(const oq_graph *g, const char *name, dq_info *d)
{
    size_t p = name && name[0] ? oq_graph_producer(g, name) : SIZE_MAX;
    if (p == SIZE_MAX || !is_op(&g->nodes[p], "DequantizeLinear"))
        return false;
    const oq_node *n = &g->nodes[p];
    d->q = n->inputs[0];
    d->scale = n->n_inputs > 1 ? n->inputs[1] : "";
    d->zp = n->n_inputs > 2 ? n->inputs[2] : "";
    return true;
}

/* The single QuantizeLinear reading name (name not a graph output), or SIZE_MAX. */
static size_t to_q(const oq_graph *g, const char *name)
{
    size_t r = oq_graph_single_reader(g, name);
    return r != SIZE_MAX && is_op(&g->nodes[r], "QuantizeLinear") ? r : SIZE_MAX;
}

static oq_status rewrite(oq_graph *g, size_t ni, const char *op, const char *domain, const char *const *in, size_t n_in,
                         const char *out, bool keep_attrs)
{
    oq_node *n = &g->nodes[ni];
    char **ins = oq_calloc(n_in + 1, sizeof *ins);
    char *o = oq_strdup(out), *opc = oq_strdup(op), *dom = oq_strdup(domain);
    bool ok = ins && o && opc && dom;
    for (size_t i = 0; ok && i < n_in; i++)
        ok = (ins[i] = oq_strdup(in[i] ? in[i] : "")) != NULL;
    if (!ok) {
        for (size_t i = 0; ins && i < n_in; i++)
            free(ins[i]);
        free(ins), free(o), free(opc), free(dom);
        return oq_error(OQ_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n->n_inputs; i++)
        free(n->inputs[i]);
    free(n->inputs);
    n->inputs = ins;
    n->n_inputs = n_in;
    free(n->outputs[0]);
    n->outputs[0] = o;
    free(n->op_type);
    n->op_type = opc;
    free(n->domain);
    n->domain = dom;
    if (!keep_attrs) {
        for (size_t i = 0; i < n->n_attrs; i++)
            oq_attr_clear(&n->attrs[i]);
        n->n_attrs = 0;
    }
    return OQ_OK;
}

/* Drops attributes the integer operator does not take (onnxq's own fusion marks). */
static void drop_attr(oq_node *n, const char *name)
{
    for (size_t i = 0; i < n->n_attrs; i++)
        if (!strcmp(n->attrs[i].name, name)) {
            oq_attr_clear(&n->attrs[i]);
            memmove(&n->attrs[i], &n->attrs[i + 1], (n->n_attrs - i - 1) * sizeof *n->attrs);
            n->n_attrs--;
            return;
        }
}

static bool same_params(const dq_info *a, const oq_node *q)
{
    return q->n_inputs >= 3 && !strcmp(a->scale, q->inputs[1]) && !strcmp(a->zp, q->inputs[2]);
}

/* One graph (a body's patterns are local to it: Q, DQ and the node live in the same graph). */
static oq_status qoperator_graph(quant_ctx *q, oq_graph *g, const quant_scope *s)
{
    (void)s;
    bool *drop = oq_calloc(g->n_nodes + 1, sizeof *drop);
    if (!drop)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = OQ_OK;
    size_t converted = 0, n_nodes = g->n_nodes;
    bool contrib = false;
    for (size_t i = 0; i < n_nodes && st == OQ_OK; i++) {
        oq_node *n = &g->nodes[i];
        if (!oq_domain_is_default(n->domain) || n->n_outputs < 1 || is_op(n, "QuantizeLinear") ||
            is_op(n, "DequantizeLinear"))
            continue;
        size_t qi = to_q(g, n->outputs[0]);
        dq_info a, b, c;
        if (qi == SIZE_MAX) {
            /* a MatMul of int8 inputs whose output stays float (its reader is float):
             * the integer product scaled to float */
            if (is_op(n, "MatMul") && n->n_inputs == 2 && from_dq(g, n->inputs[0], &a) &&
                from_dq(g, n->inputs[1], &b)) {
                const char *in[6] = {a.q, b.q, a.scale, b.scale, a.zp, b.zp};
                char *y = oq_strdup(n->outputs[0]);
                if (!y) {
                    st = oq_error(OQ_E_NOMEM, "out of memory");
                    break;
                }
                st = rewrite(g, i, "MatMulIntegerToFloat", "com.microsoft", in, 6, y, false);
                free(y);
                contrib = true;
                converted++;
            }
            continue;
        }
        const oq_node *qn = &g->nodes[qi];
        const char *ys = qn->inputs[1], *yz = qn->n_inputs > 2 ? qn->inputs[2] : "", *yq = qn->outputs[0];
        const char *op = n->op_type;
        if (!strcmp(op, "Conv") && from_dq(g, oq_node_input(n, 0), &a) && from_dq(g, oq_node_input(n, 1), &b)) {
            bool has_b = oq_node_input(n, 2) != NULL;
            if (has_b && !from_dq(g, n->inputs[2], &c))
                continue;
            const char *in[9] = {a.q, a.scale, a.zp, b.q, b.scale, b.zp, ys, yz, has_b ? c.q : ""};
            drop_attr(n, "onnxq_activation");
            drop_attr(n, "onnxq_activation_params");
            st = rewrite(g, i, "QLinearConv", "", in, has_b ? 9 : 8, yq, true);
        } else if (!strcmp(op, "MatMul") && from_dq(g, n->inputs[0], &a) && from_dq(g, n->inputs[1], &b)) {
            const char *in[8] = {a.q, a.scale, a.zp, b.q, b.scale, b.zp, ys, yz};
            st = rewrite(g, i, "QLinearMatMul", "", in, 8, yq, false);
        } else if (!strcmp(op, "Gemm") && from_dq(g, n->inputs[0], &a) && from_dq(g, n->inputs[1], &b)) {
            bool has_c = oq_node_input(n, 2) != NULL;
            if (has_c && !from_dq(g, n->inputs[2], &c))
                continue;
            const char *in[9] = {a.q, a.scale, a.zp, b.q, b.scale, b.zp, has_c ? c.q : "", ys, yz};
            drop_attr(n, "beta");
            drop_attr(n, "onnxq_activation");
            drop_attr(n, "onnxq_activation_params");
            st = rewrite(g, i, "QGemm", "com.microsoft", in, 9, yq, true);
            contrib = true;
        } else if ((!strcmp(op, "Add") || !strcmp(op, "Mul")) && n->n_inputs == 2 && from_dq(g, n->inputs[0], &a) &&
                   from_dq(g, n->inputs[1], &b)) {
            const char *in[8] = {a.q, a.scale, a.zp, b.q, b.scale, b.zp, ys, yz};
            st = rewrite(g, i, !strcmp(op, "Add") ? "QLinearAdd" : "QLinearMul", "com.microsoft", in, 8, yq, false);
            contrib = true;
        } else if ((!strcmp(op, "AveragePool") || !strcmp(op, "GlobalAveragePool")) && from_dq(g, n->inputs[0], &a)) {
            const char *in[5] = {a.q, a.scale, a.zp, ys, yz};
            bool global = !strcmp(op, "GlobalAveragePool");
            st = rewrite(g, i, global ? "QLinearGlobalAveragePool" : "QLinearAveragePool", "com.microsoft", in, 5, yq,
                         !global);
            if (st == OQ_OK && global)
                st = oq_node_add_attr_int(&g->nodes[i], "channels_last", 0);
            contrib = true;
        } else if (!strcmp(op, "Concat")) {
            size_t k = n->n_inputs;
            const char **in = oq_calloc(2 + 3 * k, sizeof *in);
            bool ok = in != NULL;
            if (!ok) {
                st = oq_error(OQ_E_NOMEM, "out of memory");
                break;
            }
            in[0] = ys, in[1] = yz;
            for (size_t s = 0; ok && s < k; s++) {
                ok = from_dq(g, n->inputs[s], &a);
                in[2 + 3 * s] = a.q, in[3 + 3 * s] = a.scale, in[4 + 3 * s] = a.zp;
            }
            if (ok) {
                st = rewrite(g, i, "QLinearConcat", "com.microsoft", in, 2 + 3 * k, yq, true);
                contrib = true;
            }
            free(in);
            if (!ok)
                continue;
        } else if ((!strcmp(op, "MaxPool") || !strcmp(op, "Flatten") || !strcmp(op, "Reshape") ||
                    !strcmp(op, "Transpose") || !strcmp(op, "Squeeze") || !strcmp(op, "Unsqueeze") ||
                    !strcmp(op, "Pad")) &&
                   from_dq(g, n->inputs[0], &a) && same_params(&a, qn) && a.zp[0]) {
            /* the same scale in and out: the operator moves int8 values as they are (a Pad the
             * quantizer took pads with 0, which is the zero point; other modes copy values) */
            const char **in = oq_calloc(n->n_inputs + 3, sizeof *in);
            if (!in) {
                st = oq_error(OQ_E_NOMEM, "out of memory");
                break;
            }
            in[0] = a.q;
            for (size_t s = 1; s < n->n_inputs; s++)
                in[s] = n->inputs[s];
            bool constant_pad = !strcmp(op, "Pad") && !strcmp(oq_node_attr_string(n, "mode", "constant"), "constant");
            size_t n_in = n->n_inputs;
            if (!strcmp(op, "Pad")) {
                in[2] = constant_pad ? a.zp : "";
                n_in = n_in > 3 ? n_in : 3;
            }
            st = rewrite(g, i, op, "", in, n_in, yq, true);
            free(in);
        } else {
            continue;
        }
        drop[qi] = true;
        converted++;
    }
    for (size_t i = n_nodes; st == OQ_OK && i-- > 0;)
        if (drop[i])
            oq_graph_remove_node(g, i);
    free(drop);
    if (st == OQ_OK && contrib)
        st = qg_ensure_opset(q->m, "com.microsoft", 1);
    if (st == OQ_OK) {
        oq_pass_ctx ctx = {0};
        st = pass_dead_nodes(q->m, g, &ctx);
    }
    q->qoperator_converted += converted;
    return st;
}

oq_status quant_qdq_to_qoperator(quant_ctx *q)
{
    q->qoperator_converted = 0;
    oq_status st = qg_each_graph(q, q->m->graph, qoperator_graph);
    if (st == OQ_OK)
        quant_report(q, "qoperator: %zu nodes now run on integer operators", q->qoperator_converted);
    return st;
}
