/* quant/dynamic: dynamic quantization. MatMul/Gemm with a constant 2-D weight get
 * int8 weights per output column ahead of time; the activation is quantized per
 * input at run time. Output forms (both load in onnxruntime): com.microsoft
 * DynamicQuantizeMatMul (default, one node), or the standard-ops chain
 * DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul (scales) -> Add (bias).
 * An LSTM with constant W and R becomes com.microsoft DynamicQuantizeLSTM (int8
 * W and R per gate column, stored transposed as onnxruntime's quantizer writes them).
 * A Conv with a constant weight becomes DynamicQuantizeLinear -> ConvInteger -> Cast ->
 * Mul (x_scale * w_scale per output channel) [-> Add bias], as onnxruntime writes it;
 * onnxq's session fuses the chain back into one integer convolution (passes/fuse_dynamic). */
#include "passes/pass.h"
#include "quant/quant.h"

#include <stdlib.h>
#include <string.h>

static double mib(int64_t b) { return (double)b / (1024.0 * 1024.0); }

static const char *label(const oq_node *n, char *buf, size_t len)
{
    if (n->name && n->name[0])
        return n->name;
    if (n->n_outputs && n->outputs[0][0])
        return n->outputs[0];
    return oq_node_label(n, buf, len);
}

/* Why node n cannot be quantized dynamically, or NULL. */
static const char *blocker(const quant_scope *g, const oq_node *n)
{
    const char *b = oq_node_input(n, 1);
    const oq_tensor *w = b ? quant_scope_initializer(g, b) : NULL;
    if (!w)
        return "weight is not constant";
    if (w->dtype != OQ_FLOAT || w->ndim != 2)
        return "weight is not a float matrix";
    if (!strcmp(n->op_type, "Gemm")) {
        if (oq_node_attr_int(n, "transA", 0))
            return "Gemm with transA";
        const char *c = oq_node_input(n, 2);
        const oq_tensor *ct = c ? quant_scope_initializer(g, c) : NULL;
        int64_t N = oq_node_attr_int(n, "transB", 0) ? w->dims[0] : w->dims[1];
        if (c && (!ct || ct->dtype != OQ_FLOAT || oq_tensor_numel(ct) != N))
            return "Gemm bias is not a constant vector";
    }
    return NULL;
}

/* The weight as [K, N] (Gemm transB transposed), alpha folded in. */
static oq_status weight_kn(const quant_scope *g, const oq_node *n, oq_tensor **out)
{
    const oq_tensor *w = quant_scope_initializer(g, n->inputs[1]);
    bool gemm = !strcmp(n->op_type, "Gemm"), tb = gemm && oq_node_attr_int(n, "transB", 0);
    float alpha = gemm ? oq_node_attr_float(n, "alpha", 1.0f) : 1.0f;
    int64_t K = tb ? w->dims[1] : w->dims[0], N = tb ? w->dims[0] : w->dims[1], dims[2] = {K, N};
    oq_status st = oq_tensor_create(OQ_FLOAT, 2, dims, out);
    if (st != OQ_OK)
        return st;
    const float *src = w->data;
    float *dst = (*out)->data;
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < N; j++)
            dst[k * N + j] = alpha * (tb ? src[j * K + k] : src[k * N + j]);
    if (!((*out)->name = oq_strdup(w->name))) {
        oq_tensor_destroy(*out);
        return oq_error(OQ_E_NOMEM, "out of memory");
    }
    return OQ_OK;
}

/* Gemm's bias times beta as a [N] float initializer name, or NULL. */
static oq_status bias_name(oq_graph *g, const quant_scope *s, const oq_node *n, const char **name)
{
    *name = NULL;
    const char *c = strcmp(n->op_type, "Gemm") ? NULL : oq_node_input(n, 2);
    if (!c)
        return OQ_OK;
    const oq_tensor *ct = quant_scope_initializer(s, c);
    float beta = oq_node_attr_float(n, "beta", 1.0f);
    int64_t N = oq_tensor_numel(ct);
    if (beta == 1.0f && ct->ndim == 1) {
        *name = ct->name;
        return OQ_OK;
    }
    oq_tensor *b = NULL;
    oq_status st = oq_tensor_create(OQ_FLOAT, 1, &N, &b);
    if (st != OQ_OK)
        return st;
    for (int64_t i = 0; i < N; i++)
        ((float *)b->data)[i] = beta * ((const float *)ct->data)[i];
    char *base = oq_strdup(ct->name);
    if (!base) {
        oq_tensor_destroy(b);
        return oq_error(OQ_E_NOMEM, "out of memory");
    }
    st = qg_add_init_in(g, s, b, base, "_beta", name);
    free(base);
    return st;
}

/* The standard-operator chain of a dynamically quantized product, as onnxruntime writes it:
 * DynamicQuantizeLinear(a) -> op(aq, qn, az, zn) -> Cast(float) -> Mul(a_scale * sn) [-> Add bn]
 * -> y; op is MatMulInteger or ConvInteger, whose attributes come from node attrs_from of g
 * (SIZE_MAX: none). New values are named after base. */
static oq_status emit_integer_chain(oq_graph *g, const quant_scope *s, const char *base, const char *op,
                                    size_t attrs_from, const char *a, const char *y, const char *name, const char *qn,
                                    const char *sn, const char *zn, const char *bn)
{
    oq_status st = OQ_OK;
    char *aq = qg_unique_name(s, base, "_aq"), *as = qg_unique_name(s, base, "_as"), *az = qg_unique_name(s, base, "_az"),
         *yi = qg_unique_name(s, base, "_yi"), *yf = qg_unique_name(s, base, "_yf"), *sc = qg_unique_name(s, base, "_ys"),
         *ym = bn ? qg_unique_name(s, base, "_ym") : oq_strdup(y);
    if (!aq || !as || !az || !yi || !yf || !sc || !ym)
        st = oq_error(OQ_E_NOMEM, "out of memory");
    oq_node *added = NULL;
    if (st == OQ_OK) {
        const char *in[1] = {a}, *out[3] = {aq, as, az};
        st = oq_graph_add_node(g, "DynamicQuantizeLinear", "", "", in, 1, out, 3, NULL);
    }
    if (st == OQ_OK) {
        const char *in[4] = {aq, qn, az, zn}, *out[1] = {yi};
        st = oq_graph_add_node(g, op, "", name, in, 4, out, 1, NULL);
    }
    /* (g->nodes may have moved: the node is found again by index) */
    for (size_t k = 0; st == OQ_OK && attrs_from != SIZE_MAX && k < g->nodes[attrs_from].n_attrs; k++)
        if (g->nodes[attrs_from].attrs[k].type != OQ_ATTR_GRAPH)
            st = qg_copy_attr(&g->nodes[g->n_nodes - 1], &g->nodes[attrs_from].attrs[k]);
    if (st == OQ_OK) {
        const char *in[1] = {yi}, *out[1] = {yf};
        st = oq_graph_add_node(g, "Cast", "", "", in, 1, out, 1, &added);
    }
    if (st == OQ_OK)
        st = oq_node_add_attr_int(added, "to", OQ_FLOAT);
    if (st == OQ_OK) {
        const char *in[2] = {as, sn}, *out[1] = {sc};
        st = oq_graph_add_node(g, "Mul", "", "", in, 2, out, 1, NULL);
    }
    if (st == OQ_OK) {
        const char *in[2] = {yf, sc}, *out[1] = {ym};
        st = oq_graph_add_node(g, "Mul", "", "", in, 2, out, 1, NULL);
    }
    if (st == OQ_OK && bn) {
        const char *in[2] = {ym, bn}, *out[1] = {y};
        st = oq_graph_add_node(g, "Add", "", "", in, 2, out, 1, NULL);
    }
    free(aq), free(as), free(az), free(yi), free(yf), free(sc), free(ym);
    return st;
}

static oq_status emit(quant_ctx *q, oq_graph *g, const quant_scope *s, size_t ni, const quant_rule *rule)
{
    const oq_quant_options *opt = q->opt;
    oq_tensor *w = NULL, *wq = NULL, *ws = NULL, *wz = NULL;
    const char *qn = NULL, *sn = NULL, *zn = NULL, *bn = NULL;
    char lb[200];
    oq_status st = weight_kn(s, &g->nodes[ni], &w);
    if (st == OQ_OK)
        st = quantize_weight(w, rule->per_channel ? 1 : -1, opt->weight_type, rule->reduce_range, &wq, &ws, &wz);
    if (st != OQ_OK) {
        oq_tensor_destroy(w);
        return oq_error_context(st, "node '%s'", label(&g->nodes[ni], lb, sizeof lb));
    }
    const oq_tensor *orig = quant_scope_initializer(s, g->nodes[ni].inputs[1]);
    quant_report(q, "[%zu/%zu] %s%s  %.2f MiB -> %.2f MiB  %s  sqnr %.1f dB", ++q->weights_done, q->weights_total,
                 q->where ? q->where : "", label(&g->nodes[ni], lb, sizeof lb), mib((int64_t)orig->nbytes), mib((int64_t)wq->nbytes),
                 rule->per_channel ? "per-channel" : "per-tensor", weight_sqnr(w, wq, ws, wz, rule->per_channel ? 1 : -1));
    char *base = oq_strdup(orig->name);
    oq_tensor_destroy(w);
    if (!base) {
        oq_tensor_destroy(wq), oq_tensor_destroy(ws), oq_tensor_destroy(wz);
        return oq_error(OQ_E_NOMEM, "out of memory");
    }
    st = qg_add_init_in(g, s, wq, base, "_q", &qn);
    if (st == OQ_OK)
        st = qg_add_init_in(g, s, ws, base, "_s", &sn);
    else
        oq_tensor_destroy(ws);
    if (st == OQ_OK)
        st = qg_add_init_in(g, s, wz, base, "_zp", &zn);
    else
        oq_tensor_destroy(wz);
    if (st == OQ_OK)
        st = bias_name(g, s, &g->nodes[ni], &bn);
    char *a = NULL, *y = NULL, *name = NULL;
    if (st == OQ_OK) {
        a = oq_strdup(g->nodes[ni].inputs[0]);
        y = oq_strdup(g->nodes[ni].outputs[0]);
        name = oq_strdup(g->nodes[ni].name ? g->nodes[ni].name : "");
        if (!a || !y || !name)
            st = oq_error(OQ_E_NOMEM, "out of memory");
    }
    if (st == OQ_OK && opt->dynamic_form == OQ_DYNAMIC_FUSED) {
        const char *in[5] = {a, qn, sn, zn, bn ? bn : ""}, *out[1] = {y};
        st = oq_graph_add_node(g, "DynamicQuantizeMatMul", "com.microsoft", name, in, bn ? 5 : 4, out, 1, NULL);
        if (st == OQ_OK)
            st = qg_ensure_opset(q->m, "com.microsoft", 1);
    } else if (st == OQ_OK) {
        st = emit_integer_chain(g, s, base, "MatMulInteger", SIZE_MAX, a, y, name, qn, sn, zn, bn);
    }
    free(a), free(y), free(name), free(base);
    return st;
}

static bool is_lstm(const oq_node *nd) { return oq_domain_is_default(nd->domain) && !strcmp(nd->op_type, "LSTM"); }

/* Why LSTM node n cannot become DynamicQuantizeLSTM, or NULL. */
static const char *lstm_blocker(const quant_ctx *q, const quant_scope *g, const oq_node *n)
{
    if (q->opt->dynamic_form != OQ_DYNAMIC_FUSED)
        return "no standard-operator int8 form (DynamicQuantizeLSTM is com.microsoft)";
    for (size_t i = 1; i <= 2; i++) {
        const char *name = oq_node_input(n, i);
        const oq_tensor *w = name ? quant_scope_initializer(g, name) : NULL;
        if (!w)
            return i == 1 ? "W is not constant" : "R is not constant";
        if (w->dtype != OQ_FLOAT || w->ndim != 3)
            return i == 1 ? "W is not a float 3-D tensor" : "R is not a float 3-D tensor";
    }
    if (oq_node_attr_int(n, "layout", 0) != 0)
        return "layout = 1 has no DynamicQuantizeLSTM form";
    return NULL;
}

/* W or R [D, G, K] quantized per (direction, gate column) (per direction when not
 * per_channel), as int8/uint8 [D, K, G] with scale and zero point [D, G] (or [D]). */
static oq_status lstm_weight(const oq_tensor *w, bool per_channel, oq_dtype type, int reduce_range, oq_tensor **q,
                             oq_tensor **scale, oq_tensor **zp, double *sqnr)
{
    int64_t D = w->dims[0], G = w->dims[1], K = w->dims[2];
    oq_tensor view = *w; /* the same data seen as [D*G, K] or [D, G*K] */
    view.ndim = 2;
    view.dims[0] = per_channel ? D * G : D;
    view.dims[1] = per_channel ? K : G * K;
    oq_tensor *wq = NULL, *t = NULL;
    oq_status st = quantize_weight(&view, 0, type, reduce_range, &wq, scale, zp);
    if (st != OQ_OK)
        return st;
    *sqnr = weight_sqnr(&view, wq, *scale, *zp, 0);
    int64_t dims[3] = {D, K, G};
    st = oq_tensor_create(type, 3, dims, &t);
    if (st != OQ_OK) {
        oq_tensor_destroy(wq), oq_tensor_destroy(*scale), oq_tensor_destroy(*zp);
        return st;
    }
    const uint8_t *src = wq->data; /* int8 and uint8 are both bytes */
    uint8_t *dst = t->data;
    for (int64_t d = 0; d < D; d++)
        for (int64_t g = 0; g < G; g++)
            for (int64_t k = 0; k < K; k++)
                dst[(d * K + k) * G + g] = src[(d * G + g) * K + k];
    oq_tensor_destroy(wq);
    if (per_channel) {
        (*scale)->ndim = (*zp)->ndim = 2;
        (*scale)->dims[0] = (*zp)->dims[0] = D;
        (*scale)->dims[1] = (*zp)->dims[1] = G;
    }
    *q = t;
    return OQ_OK;
}

static oq_status emit_lstm(quant_ctx *q, oq_graph *g, const quant_scope *s, size_t ni, const quant_rule *rule)
{
    const oq_quant_options *opt = q->opt;
    const char *names[4] = {NULL, NULL, NULL, NULL}; /* Wq, Rq and their scale/zp below */
    const char *qp[4] = {NULL, NULL, NULL, NULL};    /* W scale, W zp, R scale, R zp */
    char lb[200];
    oq_status st = OQ_OK;
    for (size_t i = 1; st == OQ_OK && i <= 2; i++) {
        const oq_tensor *w = quant_scope_initializer(s, g->nodes[ni].inputs[i]);
        oq_tensor *wq = NULL, *ws = NULL, *wz = NULL;
        double sqnr = 0;
        st = lstm_weight(w, rule->per_channel, opt->weight_type, rule->reduce_range, &wq, &ws, &wz, &sqnr);
        if (st != OQ_OK)
            return oq_error_context(st, "node '%s'", label(&g->nodes[ni], lb, sizeof lb));
        quant_report(q, "[%zu/%zu] %s%s.%s  %.2f MiB -> %.2f MiB  %s  sqnr %.1f dB", ++q->weights_done,
                     q->weights_total, q->where ? q->where : "", label(&g->nodes[ni], lb, sizeof lb), i == 1 ? "W" : "R",
                     mib((int64_t)w->nbytes), mib((int64_t)wq->nbytes), rule->per_channel ? "per-channel" : "per-tensor",
                     sqnr);
        char *base = oq_strdup(w->name);
        if (!base) {
            oq_tensor_destroy(wq), oq_tensor_destroy(ws), oq_tensor_destroy(wz);
            return oq_error(OQ_E_NOMEM, "out of memory");
        }
        st = qg_add_init_in(g, s, wq, base, "_q", &names[i - 1]);
        if (st == OQ_OK)
            st = qg_add_init_in(g, s, ws, base, "_s", &qp[2 * (i - 1)]);
        else
            oq_tensor_destroy(ws);
        if (st == OQ_OK)
            st = qg_add_init_in(g, s, wz, base, "_zp", &qp[2 * (i - 1) + 1]);
        else
            oq_tensor_destroy(wz);
        free(base);
    }
    if (st != OQ_OK)
        return st;
    /* X, W, R, B, sequence_lens, initial_h, initial_c, P, W_scale, W_zero_point, R_scale, R_zero_point */
    const oq_node *nd = &g->nodes[ni];
    char *in[12] = {NULL}, *name = NULL, **out = oq_calloc(nd->n_outputs + 1, sizeof *out);
    for (size_t i = 0; i < 12; i++) {
        const char *v = i == 1 || i == 2 ? names[i - 1] : i >= 8 ? qp[i - 8] : oq_node_input(nd, i);
        if (!(in[i] = oq_strdup(v ? v : "")))
            st = oq_error(OQ_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; out && i < nd->n_outputs; i++)
        if (!(out[i] = oq_strdup(nd->outputs[i])))
            st = oq_error(OQ_E_NOMEM, "out of memory");
    if (!out || !(name = oq_strdup(nd->name ? nd->name : "")))
        st = oq_error(OQ_E_NOMEM, "out of memory");
    oq_node *added = NULL;
    size_t n_out = nd->n_outputs;
    if (st == OQ_OK)
        st = oq_graph_add_node(g, "DynamicQuantizeLSTM", "com.microsoft", name, (const char *const *)in, 12,
                         (const char *const *)out, n_out, &added);
    /* g->nodes may have moved: the LSTM is still at ni */
    for (size_t a = 0; st == OQ_OK && a < g->nodes[ni].n_attrs; a++)
        if (strcmp(g->nodes[ni].attrs[a].name, "layout"))
            st = qg_copy_attr(&g->nodes[g->n_nodes - 1], &g->nodes[ni].attrs[a]);
    if (st == OQ_OK)
        st = qg_ensure_opset(q->m, "com.microsoft", 1);
    for (size_t i = 0; i < 12; i++)
        free(in[i]);
    for (size_t i = 0; out && i < n_out; i++)
        free(out[i]);
    free(out);
    free(name);
    (void)added;
    return st;
}

static bool is_conv(const oq_node *nd) { return oq_domain_is_default(nd->domain) && !strcmp(nd->op_type, "Conv"); }

/* Why Conv node n cannot be quantized dynamically, or NULL. */
static const char *conv_blocker(const quant_scope *g, const oq_node *n)
{
    const char *wn = oq_node_input(n, 1), *bn = oq_node_input(n, 2);
    const oq_tensor *w = wn ? quant_scope_initializer(g, wn) : NULL;
    if (!w)
        return "weight is not constant";
    if (w->dtype != OQ_FLOAT || w->ndim < 3 || w->ndim > 5 || w->dims[0] < 1)
        return "weight is not a float 3-D to 5-D tensor";
    const oq_tensor *b = bn ? quant_scope_initializer(g, bn) : NULL;
    if (bn && (!b || b->dtype != OQ_FLOAT || oq_tensor_numel(b) != w->dims[0]))
        return "bias is not a constant vector";
    return NULL;
}

/* A copy of a per-channel vector shaped [C, 1, ...] (rank dims) to broadcast over NC... outputs. */
static oq_status channel_shaped(const oq_tensor *v, int rank, oq_tensor **out)
{
    int64_t dims[OQ_MAX_DIMS] = {oq_tensor_numel(v)};
    for (int i = 1; i < rank; i++)
        dims[i] = 1;
    oq_status st = oq_tensor_create(v->dtype, rank, dims, out);
    if (st == OQ_OK)
        memcpy((*out)->data, v->data, v->nbytes);
    return st;
}

static oq_status emit_conv(quant_ctx *q, oq_graph *g, const quant_scope *s, size_t ni, const quant_rule *rule)
{
    const oq_quant_options *opt = q->opt;
    char lb[200];
    const oq_node *nd = &g->nodes[ni];
    const oq_tensor *w = quant_scope_initializer(s, nd->inputs[1]);
    const char *bias = oq_node_input(nd, 2);
    oq_tensor *wq = NULL, *ws = NULL, *wz = NULL, *wss = NULL, *bs = NULL;
    bool per_channel = rule->per_channel && w->dims[0] > 1;
    oq_status st = quantize_weight(w, per_channel ? 0 : -1, opt->weight_type, rule->reduce_range, &wq, &ws, &wz);
    if (st != OQ_OK)
        return oq_error_context(st, "node '%s'", label(nd, lb, sizeof lb));
    quant_report(q, "[%zu/%zu] %s%s  %.2f MiB -> %.2f MiB  %s  sqnr %.1f dB", ++q->weights_done, q->weights_total,
                 q->where ? q->where : "", label(nd, lb, sizeof lb), mib((int64_t)w->nbytes), mib((int64_t)wq->nbytes),
                 per_channel ? "per-channel" : "per-tensor", weight_sqnr(w, wq, ws, wz, per_channel ? 0 : -1));
    /* symmetric int8: every zero point is 0, one scalar serves (onnxruntime's ConvInteger takes a scalar) */
    if (opt->weight_type == OQ_INT8 && wz->ndim) {
        oq_tensor *z = NULL;
        st = make_scalar_zp(0, OQ_INT8, &z);
        oq_tensor_destroy(wz);
        wz = z;
    }
    /* scale (and bias) per output channel, shaped to broadcast over [N, M, spatial...];
     * per tensor, the scalar scale as it is */
    if (st == OQ_OK && per_channel)
        st = channel_shaped(ws, w->ndim - 1, &wss);
    else if (st == OQ_OK) {
        wss = ws;
        ws = NULL;
    }
    if (st == OQ_OK && bias)
        st = channel_shaped(quant_scope_initializer(s, bias), w->ndim - 1, &bs);
    oq_tensor_destroy(ws);
    const char *qn = NULL, *sn = NULL, *zn = NULL, *bn = NULL;
    char *base = oq_strdup(w->name);
    if (st == OQ_OK && !base)
        st = oq_error(OQ_E_NOMEM, "out of memory");
    if (st == OQ_OK) {
        st = qg_add_init_in(g, s, wq, base, "_q", &qn);
        wq = NULL;
    }
    if (st == OQ_OK) {
        st = qg_add_init_in(g, s, wss, base, "_s", &sn);
        wss = NULL;
    }
    if (st == OQ_OK) {
        st = qg_add_init_in(g, s, wz, base, "_zp", &zn);
        wz = NULL;
    }
    if (st == OQ_OK && bs) {
        st = qg_add_init_in(g, s, bs, base, "_bias", &bn);
        bs = NULL;
    }
    oq_tensor_destroy(wq), oq_tensor_destroy(wss), oq_tensor_destroy(wz), oq_tensor_destroy(bs);
    if (st != OQ_OK) {
        free(base);
        return st;
    }
    char *a = oq_strdup(nd->inputs[0]), *y = oq_strdup(nd->outputs[0]), *name = oq_strdup(nd->name ? nd->name : "");
    if (!a || !y || !name)
        st = oq_error(OQ_E_NOMEM, "out of memory");
    if (st == OQ_OK) /* the Conv (still at ni) gives ConvInteger its geometry */
        st = emit_integer_chain(g, s, base, "ConvInteger", ni, a, y, name, qn, sn, zn, bn);
    free(a), free(y), free(name), free(base);
    return st;
}

static bool is_matmul(const oq_node *nd)
{
    return oq_domain_is_default(nd->domain) && (!strcmp(nd->op_type, "MatMul") || !strcmp(nd->op_type, "Gemm"));
}

/* Counts the weights of g (one graph) for the [k/n] lines. */
static oq_status count_graph(quant_ctx *q, oq_graph *g, const quant_scope *s)
{
    for (size_t i = 0; i < g->n_nodes; i++) {
        quant_rule rule = quant_rules_for(q->rules, &g->nodes[i]);
        q->weights_total += is_matmul(&g->nodes[i]) && rule.quantize && !blocker(s, &g->nodes[i]);
        q->weights_total += 2 * (is_lstm(&g->nodes[i]) && rule.quantize && !lstm_blocker(q, s, &g->nodes[i]));
        q->weights_total += is_conv(&g->nodes[i]) && rule.quantize && !conv_blocker(s, &g->nodes[i]);
    }
    return OQ_OK;
}

/* One graph: MatMul/Gemm with constant weights (of g or an enclosing graph) become int8. */
static oq_status dynamic_graph(quant_ctx *q, oq_graph *g, const quant_scope *s)
{
    size_t n = g->n_nodes;
    bool *todo = oq_calloc(n + 1, sizeof *todo);
    quant_rule *rules = oq_calloc(n + 1, sizeof *rules);
    oq_status st = todo && rules ? OQ_OK : oq_error(OQ_E_NOMEM, "out of memory");
    bool any = false;
    for (size_t i = 0; st == OQ_OK && i < n; i++) {
        const oq_node *nd = &g->nodes[i];
        bool lstm = is_lstm(nd), conv = is_conv(nd), mm = is_matmul(nd) || lstm || conv;
        rules[i] = quant_rules_for(q->rules, nd);
        const char *why = !mm ? (quant_rules_op_enabled(q->rules, nd->op_type) ? "no dynamic int8 form" : NULL)
                          : !rules[i].quantize ? rules[i].why
                          : lstm ? lstm_blocker(q, s, nd)
                          : conv ? conv_blocker(s, nd)
                                 : blocker(s, nd);
        if (mm && !why) {
            todo[i] = any = true;
        } else if (why || mm) {
            quant_note_float(q, nd, why);
        }
    }
    for (size_t i = 0; st == OQ_OK && i < n; i++)
        if (todo[i]) {
            st = is_lstm(&g->nodes[i])   ? emit_lstm(q, g, s, i, &rules[i])
                 : is_conv(&g->nodes[i]) ? emit_conv(q, g, s, i, &rules[i])
                                         : emit(q, g, s, i, &rules[i]);
            q->n_quant_nodes++;
        }
    for (size_t i = n; st == OQ_OK && i-- > 0;)
        if (todo[i])
            oq_graph_remove_node(g, i);
    free(todo);
    free(rules);
    if (st == OQ_OK && any)
        st = qg_toposort(g, s);
    return st;
}

oq_status quant_dynamic(quant_ctx *q)
{
    q->weights_total = q->weights_done = 0;
    oq_status st = qg_each_graph(q, q->m->graph, count_graph);
    if (st == OQ_OK)
        st = qg_each_graph(q, q->m->graph, dynamic_graph);
    return st;
}
