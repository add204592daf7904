/* passes/equalize_conv: cross-layer equalization (Nagel et al. 2019, "Data-Free
 * Quantization"), a preparation pass of the quantizer. A -> [Relu|LeakyRelu] -> B computes
 * the same when output channel c of A is divided by s_c and input channel c of B multiplied
 * by it (the activation is positively homogeneous: f(x / s) = f(x) / s). A is a Conv, or a
 * per-channel affine Mul(x, gamma) [-> Add(beta)] (a layer norm's scale and shift); B is a
 * Conv, or a Gemm/MatMul with a constant weight. With s_c = sqrt(r_A[c] / r_B[c]) (r_A: A's
 * output range, r_B: B's weight range, see equalize) both become sqrt(r_A r_B), and the
 * activation between them, which is quantized per tensor, no longer has channels that use
 * a small part of its range (the depthwise convolutions of MobileNet-style nets, the
 * channels a layer norm scales apart). */
#include "passes/pass.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { A_CONV, A_AFFINE };
enum { B_CONV, B_ROWS, B_COLUMNS }; /* input channel c of B: Conv W[:, c]; W[c, :]; W[:, c] of a 2-D W */

typedef struct conv_pair {
    size_t a, b;       /* node indices (A_AFFINE: a is the Mul) */
    int a_kind, b_kind;
    int64_t ch;
    oq_tensor *wa, *ba, *wb; /* private copies (ba may be NULL): weight and bias, or gamma and beta */
} conv_pair;

static const oq_tensor *const_f32(const oq_graph *g, const char *name)
{
    const oq_tensor *t = name && name[0] ? oq_graph_initializer(g, name) : NULL;
    return t && t->dtype == OQ_FLOAT && t->data ? t : NULL;
}

static bool is_conv(const oq_node *n) { return !strcmp(n->op_type, "Conv") && oq_domain_is_default(n->domain); }

/* The only reader of name, if it is one node and not a graph output. */
static size_t only_reader(const oq_graph *g, const char *name)
{
    if (oq_graph_is_output(g, name) || oq_graph_count_readers(g, name) != 1)
        return SIZE_MAX;
    for (size_t i = 0; i < g->n_nodes; i++)
        for (size_t k = 0; k < g->nodes[i].n_inputs; k++)
            if (!strcmp(g->nodes[i].inputs[k], name))
                return i;
    return SIZE_MAX;
}

/* The constant input of a two-input node whose other input is not constant (slot, or -1). */
static int const_slot(const oq_graph *g, const oq_node *n)
{
    if (n->n_inputs != 2 || !oq_domain_is_default(n->domain))
        return -1;
    bool c0 = const_f32(g, n->inputs[0]) != NULL, c1 = const_f32(g, n->inputs[1]) != NULL;
    return c0 == c1 ? -1 : c0 ? 0 : 1;
}

/* t holds one value per channel of B's input: [C] or [.., C] before a Gemm/MatMul, [.., C, 1, 1]
 * before a Conv. */
static bool per_channel(const oq_tensor *t, int64_t ch, bool conv)
{
    if (!t || oq_tensor_numel(t) != ch || t->ndim < (conv ? 3 : 1))
        return false;
    return conv ? t->dims[t->ndim - 3] == ch : t->dims[t->ndim - 1] == ch;
}

/* B of the pair that starts at node a, or SIZE_MAX; fills p's kinds, slots and channels. */
static size_t pair_of(const oq_graph *g, size_t a, conv_pair *p, size_t *add, int *gslot, int *bslot)
{
    const oq_node *na = &g->nodes[a];
    *add = SIZE_MAX, *gslot = *bslot = -1;
    const oq_tensor *wa = NULL;
    if (is_conv(na)) {
        wa = const_f32(g, oq_node_input(na, 1));
        if (!wa || wa->ndim < 3)
            return SIZE_MAX;
        const char *ba = oq_node_input(na, 2);
        if (ba && (!const_f32(g, ba) || oq_tensor_numel(const_f32(g, ba)) != wa->dims[0]))
            return SIZE_MAX;
        p->a_kind = A_CONV;
    } else if (!strcmp(na->op_type, "Mul") && (*gslot = const_slot(g, na)) >= 0) {
        p->a_kind = A_AFFINE;
    } else {
        return SIZE_MAX;
    }
    if (na->n_outputs != 1)
        return SIZE_MAX;
    size_t r = only_reader(g, na->outputs[0]);
    if (r == SIZE_MAX)
        return SIZE_MAX;
    const oq_node *n = &g->nodes[r];
    if (p->a_kind == A_AFFINE && !strcmp(n->op_type, "Add") && (*bslot = const_slot(g, n)) >= 0 &&
        n->n_outputs == 1) {
        *add = r;
        if ((r = only_reader(g, n->outputs[0])) == SIZE_MAX)
            return SIZE_MAX;
        na = n;
        n = &g->nodes[r];
    }
    if (oq_domain_is_default(n->domain) && (!strcmp(n->op_type, "Relu") || !strcmp(n->op_type, "LeakyRelu")) &&
        n->n_outputs == 1 && !strcmp(n->inputs[0], na->outputs[0])) {
        if ((r = only_reader(g, n->outputs[0])) == SIZE_MAX)
            return SIZE_MAX;
        na = n; /* the value B must read */
    }
    const oq_node *nb = &g->nodes[r];
    const oq_tensor *wb = const_f32(g, oq_node_input(nb, 1));
    if (!wb || !oq_domain_is_default(nb->domain) || strcmp(nb->inputs[0], na->outputs[0]))
        return SIZE_MAX;
    if (is_conv(nb)) {
        int64_t group = oq_node_attr_int(nb, "group", 1);
        if (wb->ndim < 3 || group < 1 || wb->dims[0] % group)
            return SIZE_MAX;
        p->b_kind = B_CONV;
        p->ch = wb->dims[1] * group;
    } else if ((!strcmp(nb->op_type, "Gemm") && !oq_node_attr_int(nb, "transA", 0)) || !strcmp(nb->op_type, "MatMul")) {
        if (wb->ndim != 2 || p->a_kind != A_AFFINE)
            return SIZE_MAX;
        p->b_kind = !strcmp(nb->op_type, "Gemm") && oq_node_attr_int(nb, "transB", 0) ? B_COLUMNS : B_ROWS;
        p->ch = p->b_kind == B_COLUMNS ? wb->dims[1] : wb->dims[0];
    } else {
        return SIZE_MAX;
    }
    if (p->a_kind == A_CONV)
        return wa->dims[0] == p->ch && wb->ndim == wa->ndim ? r : SIZE_MAX;
    if (!per_channel(const_f32(g, g->nodes[a].inputs[*gslot]), p->ch, p->b_kind == B_CONV))
        return SIZE_MAX;
    if (*add != SIZE_MAX && !per_channel(const_f32(g, g->nodes[*add].inputs[*bslot]), p->ch, p->b_kind == B_CONV))
        return SIZE_MAX;
    return r;
}

/* A private copy of node n's input `slot`, which the pass may then change in place. */
static oq_status own_copy(oq_graph *g, oq_node *n, size_t slot, oq_tensor **out)
{
    const oq_tensor *src = oq_graph_initializer(g, n->inputs[slot]);
    oq_tensor *t = NULL;
    oq_status st = oq_tensor_create(OQ_FLOAT, src->ndim, src->dims, &t);
    if (st != OQ_OK)
        return st;
    memcpy(t->data, src->data, src->nbytes);
    if ((st = oq_node_set_input_initializer(g, n, slot, t, "_eq")) != OQ_OK)
        return st;
    *out = t;
    return OQ_OK;
}


/* The values between A and B hold other numbers than the model's tensors of those names
 * (channel c divided by s_c): new names, so that nothing (onnxq debug, a range table made
 * for the float model) matches them to the originals. */
static oq_status rename_between(oq_graph *g, size_t a, size_t b)
{
    size_t chain[4], n = 0;
    for (size_t i = a; i != b && i != SIZE_MAX && n < 4; i = only_reader(g, g->nodes[i].outputs[0]))
        chain[n++] = i;
    oq_status st = OQ_OK;
    for (size_t k = 0; k < n && st == OQ_OK; k++)
        st = oq_graph_rename_value(g, g->nodes[chain[k]].outputs[0], "_eq", NULL);
    return st;
}

/* The copy a node already owns for its weight (it is B of one pair and A of the next). */
static oq_tensor *owned(const conv_pair *p, size_t n, size_t node, bool bias)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i].a == node)
            return bias ? p[i].ba : p[i].wa;
        if (p[i].b == node && !bias)
            return p[i].wb;
    }
    return NULL;
}

/* Elements of B's weight that multiply input channel c: count, and the k-th one's index. */
static int64_t b_count(const oq_graph *g, const conv_pair *p)
{
    if (p->b_kind == B_CONV) {
        int64_t group = oq_node_attr_int(&g->nodes[p->b], "group", 1);
        return p->wb->dims[0] / group * (oq_tensor_numel(p->wb) / (p->wb->dims[0] * p->wb->dims[1]));
    }
    return p->b_kind == B_ROWS ? p->wb->dims[1] : p->wb->dims[0];
}

static int64_t b_index(const oq_graph *g, const conv_pair *p, int64_t c, int64_t k)
{
    const oq_tensor *w = p->wb;
    if (p->b_kind == B_ROWS)
        return c * w->dims[1] + k;
    if (p->b_kind == B_COLUMNS)
        return k * w->dims[1] + c;
    int64_t group = oq_node_attr_int(&g->nodes[p->b], "group", 1), cin = w->dims[1];
    int64_t per = oq_tensor_numel(w) / (w->dims[0] * cin), o = c / cin * (w->dims[0] / group) + k / per;
    return (o * cin + c % cin) * per + k % per;
}

/* One equalization step on a pair; returns the largest |log s| applied. r_A bounds the
 * range of A's output channel for inputs in [-1, 1]: |bias| + sum |w| (|beta| + |gamma| for
 * an affine A). The paper balances the largest |w| instead, which suits per-tensor weights;
 * with per-channel weights A's scale does not matter, the activation's range does, and a
 * channel that is nearly its bias (PP-OCRv4's stem: one channel sits at -3.2 with a spread
 * of 0.004) must not be blown up by its small weights. r_B is the largest |w| that
 * multiplies B's input channel. */
static double equalize(const oq_graph *g, conv_pair *p, float *r)
{
    int64_t ch = p->ch, per_a = p->a_kind == A_CONV ? oq_tensor_numel(p->wa) / ch : 1, nb = b_count(g, p);
    float *wa = p->wa->data, *wb = p->wb->data, *ba = p->ba ? p->ba->data : NULL;
    double moved = 0;
    for (int64_t c = 0; c < ch; c++) {
        float ra = ba ? fabsf(ba[c]) : 0, rb = 0;
        for (int64_t i = 0; i < per_a; i++)
            ra += fabsf(wa[c * per_a + i]);
        for (int64_t k = 0; k < nb; k++)
            rb = fmaxf(rb, fabsf(wb[b_index(g, p, c, k)]));
        float s = ra > 0 && rb > 0 && isfinite(ra) && isfinite(rb) ? sqrtf(ra / rb) : 1.0f;
        s = s < 1e-3f ? 1e-3f : s > 1e3f ? 1e3f : s;
        r[c] = s;
        moved = fmax(moved, fabs(log((double)s)));
    }
    for (int64_t c = 0; c < ch; c++) {
        for (int64_t i = 0; i < per_a; i++)
            wa[c * per_a + i] /= r[c];
        if (ba)
            ba[c] /= r[c];
        for (int64_t k = 0; k < nb; k++)
            wb[b_index(g, p, c, k)] *= r[c];
    }
    return moved;
}

oq_status pass_equalize_conv(oq_model *m, oq_graph *g, oq_pass_ctx *ctx)
{
    (void)m;
    conv_pair *pairs = NULL;
    size_t n = 0, cap = 0, max_ch = 1;
    oq_status st = OQ_OK;
    for (size_t a = 0; a < g->n_nodes && st == OQ_OK; a++) {
        conv_pair pp = {0};
        size_t add;
        int gslot, bslot;
        size_t b = pair_of(g, a, &pp, &add, &gslot, &bslot);
        if (b == SIZE_MAX)
            continue;
        if ((st = oq_grow((void **)&pairs, &cap, n + 1, sizeof *pairs)) != OQ_OK)
            break;
        conv_pair *p = &pairs[n];
        *p = pp;
        p->a = a, p->b = b;
        if (p->a_kind == A_AFFINE) {
            st = own_copy(g, &g->nodes[a], (size_t)gslot, &p->wa);
            if (st == OQ_OK && add != SIZE_MAX)
                st = own_copy(g, &g->nodes[add], (size_t)bslot, &p->ba);
        } else {
            /* A chain A -> B -> C: B's weight is one tensor for both pairs */
            if (!(p->wa = owned(pairs, n, a, false)))
                st = own_copy(g, &g->nodes[a], 1, &p->wa);
            if (st == OQ_OK && oq_node_input(&g->nodes[a], 2) && !(p->ba = owned(pairs, n, a, true)))
                st = own_copy(g, &g->nodes[a], 2, &p->ba);
        }
        if (st == OQ_OK && !(p->wb = owned(pairs, n, b, false)))
            st = own_copy(g, &g->nodes[b], 1, &p->wb);
        if (st == OQ_OK)
            st = rename_between(g, a, b);
        if (st == OQ_OK) {
            max_ch = (size_t)p->ch > max_ch ? (size_t)p->ch : max_ch;
            n++;
        }
    }
    float *r = st == OQ_OK && n ? oq_malloc(max_ch * sizeof *r) : NULL;
    if (st == OQ_OK && n && !r)
        st = oq_error(OQ_E_NOMEM, "out of memory");
    /* chains share tensors, so equalizing one pair moves its neighbours: repeat */
    for (int round = 0; st == OQ_OK && n && round < 16; round++) {
        double moved = 0;
        for (size_t i = 0; i < n; i++)
            moved = fmax(moved, equalize(g, &pairs[i], r));
        if (moved < 1e-3)
            break;
    }
    free(r);
    free(pairs);
    if (st == OQ_OK && n) {
        ctx->changed += n;
        oq_pass_note(ctx, "equalize_conv", "%zu Conv/affine -> Conv/Gemm/MatMul pairs equalized across the activation between them", n);
    }
    return st;
}
