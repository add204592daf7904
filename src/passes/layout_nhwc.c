/* passes/layout_nhwc: chains of int8 convolutions run channels-last. The q8
 * GEMM multiplies activation rows by packed weight columns, so an NHWC tensor is
 * its A operand as it stands (a 1x1 convolution reads it in place, a k x k one
 * copies runs of kw*C bytes per output pixel) and its C operand is the next NHWC
 * tensor: no transposes between layers, no im2col interleave, no crop. NCHW
 * QLinearConv pays those on every layer.
 *
 * Candidates: QLinearConv (group 1 or depthwise, 2-D, constant weights, quantized output),
 * MaxPool, com.microsoft QLinearAdd/QLinearMul and QLinearGlobalAveragePool /
 * QLinearAveragePool (their channels_last attribute). A convolution joins
 * whatever its input is (a Transpose to NHWC is put in front when that input is
 * NCHW); the others join only when every activation input comes from a node that
 * joined (or is a one-value constant), so every NHWC tensor is int8 and rank 4.
 * A connected group of such nodes is converted when it has at least 3
 * convolutions and at least twice as many as the layout changes (Transposes) it
 * needs at its borders: a ResNet's or a MobileNet's whole body is one group with
 * one Transpose in (or none) and one out. Outputs are bit-identical: the integer sums and
 * the output stage do not depend on the layout.
 *
 * Main graph only; not in sessions that observe values (calibration, debug), whose
 * names must keep their meaning. ONNXQ_LAYOUT=nchw turns the pass off. */
#include "passes/pass.h"

#include <stdlib.h>
#include <string.h>

/* K_CONV_IN: a chain's first convolution reading NCHW x, writing NHWC y (onnxq_nhwc 2) */
enum { K_NONE, K_CONV, K_POOL, K_ELTWISE, K_CL_POOL, K_CONV_IN };

static bool is_op(const oq_node *n, const char *domain, const char *op)
{
    return !strcmp(n->op_type, op) &&
           (domain ? n->domain && !strcmp(n->domain, domain) : oq_domain_is_default(n->domain));
}

static int kind_of(const oq_graph *g, const oq_node *n)
{
    const int64_t *v;
    if (n->n_outputs < 1 || !n->outputs[0][0])
        return K_NONE;
    if (is_op(n, NULL, "QLinearConv")) {
        const oq_tensor *w = n->n_inputs >= 8 ? oq_graph_initializer(g, n->inputs[3]) : NULL;
        int64_t group = oq_node_attr_int(n, "group", 1);
        bool ok = w && w->ndim == 4 && (group == 1 || (group == w->dims[0] && w->dims[1] == 1)) &&
                  !oq_node_attr_int(n, "onnxq_float_output", 0) && n->n_outputs == 1;
        return ok ? K_CONV : K_NONE;
    }
    if (is_op(n, NULL, "MaxPool"))
        return oq_node_attr_ints(n, "kernel_shape", &v) == 2 && (n->n_outputs == 1 || !n->outputs[1][0]) ? K_POOL
                                                                                                          : K_NONE;
    if (is_op(n, "com.microsoft", "QLinearAdd") || is_op(n, "com.microsoft", "QLinearMul"))
        return n->n_inputs >= 7 && n->n_outputs == 1 ? K_ELTWISE : K_NONE;
    if (is_op(n, "com.microsoft", "QLinearGlobalAveragePool") && !oq_node_attr_int(n, "channels_last", 0))
        return n->n_outputs == 1 ? K_CL_POOL : K_NONE;
    if (is_op(n, "com.microsoft", "QLinearAveragePool") && !oq_node_attr_int(n, "channels_last", 0))
        return oq_node_attr_ints(n, "kernel_shape", &v) == 2 && n->n_outputs == 1 ? K_CL_POOL : K_NONE;
    return K_NONE;
}

/* The activation inputs of a kind (the tensors whose layout changes). */
static size_t act_inputs(int kind, size_t idx[2])
{
    idx[0] = 0;
    if (kind == K_ELTWISE) {
        idx[1] = 3;
        return 2;
    }
    return kind == K_NONE || kind == K_CONV_IN ? 0 : 1;
}

/* A convolution that is not 1x1 stride 1: its NCHW form builds its own operand
 * and can write channels-last directly, with no Transpose in front (ResNet's
 * 7x7 stem: C = 3, where channels-last rows of 3-byte runs are slow). */
static bool spatial_conv(const oq_graph *g, const oq_node *n)
{
    const oq_tensor *w = oq_graph_initializer(g, n->inputs[3]);
    const int64_t *st;
    size_t ns = oq_node_attr_ints(n, "strides", &st);
    bool strided = false;
    for (size_t i = 0; i < ns; i++)
        strided |= st[i] > 1;
    return w && oq_node_attr_int(n, "group", 1) == 1 && (w->dims[2] > 1 || w->dims[3] > 1 || strided);
}

static bool is_act_input(int kind, size_t k)
{
    size_t idx[2], c = act_inputs(kind, idx);
    for (size_t i = 0; i < c; i++)
        if (idx[i] == k)
            return true;
    return false;
}

static size_t find(size_t *parent, size_t i)
{
    while (parent[i] != i)
        i = parent[i] = parent[parent[i]];
    return i;
}

static oq_status append_transpose(oq_graph *g, const char *from, const char *to, bool to_nhwc)
{
    static const int64_t in_perm[4] = {0, 2, 3, 1}, out_perm[4] = {0, 3, 1, 2};
    oq_node *n = NULL;
    oq_status st = oq_graph_add_node(g, "Transpose", "", to, &from, 1, &to, 1, &n);
    return st == OQ_OK ? oq_node_add_attr_ints(n, "perm", to_nhwc ? in_perm : out_perm, 4) : st;
}

static oq_status set_channels_last(oq_node *n)
{
    for (size_t a = 0; a < n->n_attrs; a++)
        if (!strcmp(n->attrs[a].name, "channels_last")) {
            n->attrs[a].i = 1;
            return OQ_OK;
        }
    return oq_node_add_attr_int(n, "channels_last", 1);
}

/* Replaces the activation inputs of the selected readers of `from` (among the
 * first n nodes, those the pass found) with `to`. */
static oq_status rename_reads(oq_graph *g, size_t n, const int *kind, const bool *sel, const char *from, const char *to)
{
    for (size_t j = 0; j < n; j++) {
        if (!sel[j])
            continue;
        oq_node *r = &g->nodes[j];
        for (size_t k = 0; k < r->n_inputs; k++)
            if (is_act_input(kind[j], k) && !strcmp(r->inputs[k], from)) {
                char *d = oq_strdup(to);
                if (!d)
                    return oq_error(OQ_E_NOMEM, "out of memory");
                free(r->inputs[k]);
                r->inputs[k] = d;
            }
    }
    return OQ_OK;
}

oq_status pass_layout_nhwc(oq_model *m, oq_graph *g, oq_pass_ctx *ctx)
{
    const char *env = getenv("ONNXQ_LAYOUT");
    if (g != m->graph || ctx->keep_values || ctx->keep_subgraph_values || (env && !strcmp(env, "nchw")) ||
        g->n_nodes == 0)
        return OQ_OK;
    size_t n = g->n_nodes;
    int *kind = oq_calloc(n, sizeof *kind);
    bool *sel = oq_calloc(n, sizeof *sel), *exit_out = oq_calloc(n, sizeof *exit_out);
    size_t *parent = oq_calloc(n, sizeof *parent), *convs = oq_calloc(n, sizeof *convs);
    size_t *borders = oq_calloc(n, sizeof *borders);
    oq_strmap prod = {0};
    oq_status st = kind && sel && exit_out && parent && convs && borders ? oq_strmap_init(&prod, n + 1)
                                                                        : oq_error(OQ_E_NOMEM, "out of memory");
    for (size_t i = 0; st == OQ_OK && i < n; i++) {
        kind[i] = kind_of(g, &g->nodes[i]);
        sel[i] = kind[i] == K_CONV;
        parent[i] = i;
        for (size_t k = 0; st == OQ_OK && k < g->nodes[i].n_outputs; k++)
            if (g->nodes[i].outputs[k][0])
                st = oq_strmap_put(&prod, g->nodes[i].outputs[k], i);
    }
    /* the others join when all their activation inputs are NHWC (to a fixed point) */
    for (bool again = true; st == OQ_OK && again;) {
        again = false;
        for (size_t i = 0; i < n; i++) {
            if (sel[i] || kind[i] == K_NONE)
                continue;
            size_t idx[2], c = act_inputs(kind[i], idx), from_sel = 0, ok = 0;
            for (size_t a = 0; a < c; a++) {
                const char *t = oq_node_input(&g->nodes[i], idx[a]);
                size_t p;
                const oq_tensor *init = t ? oq_graph_initializer(g, t) : NULL;
                if (t && oq_strmap_get(&prod, t, &p) && sel[p])
                    from_sel++, ok++;
                else if (kind[i] == K_ELTWISE && init && oq_tensor_numel(init) == 1)
                    ok++;
            }
            if (c && ok == c && from_sel) {
                sel[i] = true;
                again = true;
            }
        }
    }
    /* groups: selected nodes joined by NHWC tensors */
    for (size_t i = 0; st == OQ_OK && i < n; i++) {
        size_t idx[2], c = act_inputs(kind[i], idx), p;
        for (size_t a = 0; sel[i] && a < c; a++) {
            const char *t = oq_node_input(&g->nodes[i], idx[a]);
            if (t && oq_strmap_get(&prod, t, &p) && sel[p])
                parent[find(parent, i)] = find(parent, p);
        }
    }
    /* outputs read in NCHW: by an unselected node, a non-activation input, a subgraph, the graph */
    for (size_t j = 0; st == OQ_OK && j < n; j++) {
        const oq_node *r = &g->nodes[j];
        size_t p;
        for (size_t k = 0; k < r->n_inputs; k++)
            if (r->inputs[k][0] && oq_strmap_get(&prod, r->inputs[k], &p) && sel[p] &&
                !(sel[j] && is_act_input(kind[j], k)))
                exit_out[p] = true;
        const char **imp = NULL;
        size_t n_imp = 0;
        if ((st = oq_node_implicit_inputs(r, &imp, &n_imp)) != OQ_OK)
            break;
        for (size_t k = 0; k < n_imp; k++)
            if (oq_strmap_get(&prod, imp[k], &p) && sel[p])
                exit_out[p] = true;
        free(imp);
    }
    for (size_t i = 0; st == OQ_OK && i < g->n_outputs; i++) {
        size_t p;
        if (oq_strmap_get(&prod, g->outputs[i].name, &p) && sel[p])
            exit_out[p] = true;
    }
    /* per group: convolutions and border Transposes (an input read by several
     * selected nodes counts once per reader: an upper bound is enough here) */
    for (size_t i = 0; st == OQ_OK && i < n; i++) {
        if (!sel[i])
            continue;
        size_t root = find(parent, i), idx[2], c = act_inputs(kind[i], idx), p;
        convs[root] += kind[i] == K_CONV;
        borders[root] += exit_out[i];
        for (size_t a = 0; a < c; a++) {
            const char *t = oq_node_input(&g->nodes[i], idx[a]);
            if (t && !oq_graph_initializer(g, t) && !(oq_strmap_get(&prod, t, &p) && sel[p]))
                borders[root]++;
        }
    }
    size_t groups = 0, converted = 0;
    for (size_t i = 0; st == OQ_OK && i < n; i++) {
        if (!sel[i])
            continue;
        size_t root = find(parent, i);
        if (convs[root] < 3 || convs[root] < 2 * borders[root])
            sel[i] = false;
        else {
            converted++;
            groups += root == i;
        }
    }
    /* rewrite: inputs from NCHW producers get a Transpose in (a spatial
     * convolution reads them as they are); outputs get new names, and a Transpose
     * back to the old name where NCHW readers need it */
    for (size_t i = 0; st == OQ_OK && i < n; i++) {
        size_t p;
        const char *t = sel[i] && kind[i] == K_CONV ? oq_node_input(&g->nodes[i], 0) : NULL;
        if (t && !(oq_strmap_get(&prod, t, &p) && sel[p]) && spatial_conv(g, &g->nodes[i]))
            kind[i] = K_CONV_IN;
    }
    for (size_t i = 0; st == OQ_OK && i < n; i++) {
        if (!sel[i])
            continue;
        size_t idx[2], c = act_inputs(kind[i], idx), p;
        for (size_t a = 0; st == OQ_OK && a < c; a++) {
            const char *t = oq_node_input(&g->nodes[i], idx[a]);
            if (!t || oq_graph_initializer(g, t) || (oq_strmap_get(&prod, t, &p) && sel[p]))
                continue;
            char *from = oq_strdup(t), *to = oq_graph_unique_name(g, t, "_nhwc");
            st = from && to ? append_transpose(g, from, to, true) : oq_error(OQ_E_NOMEM, "out of memory");
            if (st == OQ_OK)
                st = rename_reads(g, n, kind, sel, from, to);
            /* its other selected readers now read the Transpose's output: no second one */
            if (st == OQ_OK)
                st = oq_strmap_put(&prod, g->nodes[g->n_nodes - 1].outputs[0], i);
            free(from);
            free(to);
        }
    }
    for (size_t i = 0; st == OQ_OK && i < n; i++) {
        if (!sel[i])
            continue;
        oq_node *nd = &g->nodes[i];
        char *from = oq_strdup(nd->outputs[0]), *to = oq_graph_unique_name(g, nd->outputs[0], "_nhwc");
        st = from && to ? rename_reads(g, n, kind, sel, from, to) : oq_error(OQ_E_NOMEM, "out of memory");
        if (st == OQ_OK) {
            free(nd->outputs[0]);
            nd->outputs[0] = to;
            to = NULL;
            if (exit_out[i])
                st = append_transpose(g, g->nodes[i].outputs[0], from, false);
        }
        nd = &g->nodes[i]; /* append may have moved the array */
        if (st == OQ_OK)
            st = kind[i] == K_CL_POOL ? set_channels_last(nd)
                                      : oq_node_add_attr_int(nd, "onnxq_nhwc", kind[i] == K_CONV_IN ? 2 : 1);
        free(from);
        free(to);
    }
    if (st == OQ_OK && converted)
        st = oq_graph_toposort(g, NULL, 0);
    if (st == OQ_OK && converted) {
        oq_log(OQ_LOG_INFO, "layout_nhwc: %zu int8 nodes in %zu group%s run channels-last, %zu Transposes at the borders",
               converted, groups, groups == 1 ? "" : "s", g->n_nodes - n);
        ctx->changed += converted;
        oq_pass_note(ctx, "layout_nhwc", "%zu int8 nodes in %zu group%s run channels-last", converted, groups,
                     groups == 1 ? "" : "s");
    }
    oq_strmap_free(&prod);
    free(kind);
    free(sel);
    free(exit_out);
    free(parent);
    free(convs);
    free(borders);
    return st;
}
