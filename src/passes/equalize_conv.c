/* passes/equalize_conv: cross-layer equalization (Nagel et al. 2019, "Data-Free
 * Quantization"), a preparation pass of the quantizer. Conv A -> [Relu|LeakyRelu] -> Conv B
 * computes the same when output channel c of A is divided by s_c and input channel c of B
 * multiplied by it (the activation is positively homogeneous: f(x / s) = f(x) / s). With
 * s_c = sqrt(r_A[c] / r_B[c]) both weight ranges become sqrt(r_A r_B), and the activation
 * between them, which is quantized per tensor, no longer has channels that use a
 * hundredth of its range (the depthwise convolutions of MobileNet-style nets). */
#include "passes/pass.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct conv_pair {
    size_t a, b;       /* node indices */
    oq_tensor *wa, *ba, *wb; /* private copies (ba may be NULL) */
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

/* B of the pair that starts at Conv a, or SIZE_MAX. */
static size_t pair_of(const oq_graph *g, size_t a)
{
    const oq_node *na = &g->nodes[a];
    const oq_tensor *wa = const_f32(g, oq_node_input(na, 1));
    if (!is_conv(na) || !wa || wa->ndim < 3 || na->n_outputs < 1)
        return SIZE_MAX;
    const char *ba = oq_node_input(na, 2);
    if (ba && (!const_f32(g, ba) || oq_tensor_numel(const_f32(g, ba)) != wa->dims[0]))
        return SIZE_MAX;
    size_t r = only_reader(g, na->outputs[0]);
    if (r == SIZE_MAX)
        return SIZE_MAX;
    const oq_node *n = &g->nodes[r];
    if (oq_domain_is_default(n->domain) && (!strcmp(n->op_type, "Relu") || !strcmp(n->op_type, "LeakyRelu")) &&
        n->n_outputs == 1 && !strcmp(n->inputs[0], na->outputs[0])) {
        if ((r = only_reader(g, n->outputs[0])) == SIZE_MAX)
            return SIZE_MAX;
        na = n; /* the value B must read */
    }
    const oq_node *nb = &g->nodes[r];
    const oq_tensor *wb = const_f32(g, oq_node_input(nb, 1));
    int64_t group = is_conv(nb) ? oq_node_attr_int(nb, "group", 1) : 0;
    if (!is_conv(nb) || strcmp(nb->inputs[0], na->outputs[0]) || !wb || wb->ndim != wa->ndim || group < 1 ||
        wb->dims[1] * group != wa->dims[0] || wb->dims[0] % group)
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
    char *name = oq_graph_unique_name(g, src->name, "_eq");
    char *in = name ? oq_strdup(name) : NULL;
    t->name = name;
    if (!name || !in || (st = oq_graph_add_initializer(g, t)) != OQ_OK) {
        free(in);
        oq_tensor_destroy(t);
        return st != OQ_OK ? st : oq_error(OQ_E_NOMEM, "out of memory");
    }
    free(n->inputs[slot]);
    n->inputs[slot] = in;
    *out = t;
    return OQ_OK;
}

/* Renames name to a new unique name in its producer's outputs and every input that reads it. */
static oq_status rename_value(oq_graph *g, const char *name)
{
    char *old = oq_strdup(name), *fresh = old ? oq_graph_unique_name(g, old, "_eq") : NULL;
    oq_status st = old && fresh ? OQ_OK : oq_error(OQ_E_NOMEM, "out of memory");
    for (size_t i = 0; i < g->n_nodes && st == OQ_OK; i++) {
        oq_node *n = &g->nodes[i];
        for (size_t k = 0; k < n->n_inputs + n->n_outputs && st == OQ_OK; k++) {
            char **slot = k < n->n_inputs ? &n->inputs[k] : &n->outputs[k - n->n_inputs];
            if (strcmp(*slot, old))
                continue;
            char *s = oq_strdup(fresh);
            if (!s) {
                st = oq_error(OQ_E_NOMEM, "out of memory");
                break;
            }
            free(*slot);
            *slot = s;
        }
    }
    free(old);
    free(fresh);
    return st;
}

/* The values between A and B hold other numbers than the model's tensors of those names
 * (channel c divided by s_c): new names, so that nothing (onnxq debug, a range table made
 * for the float model) matches them to the originals. */
static oq_status rename_between(oq_graph *g, size_t a, size_t b)
{
    const char *between = g->nodes[b].inputs[0];
    oq_status st = OQ_OK;
    if (strcmp(between, g->nodes[a].outputs[0]))
        st = rename_value(g, g->nodes[a].outputs[0]); /* A -> Relu -> B */
    return st == OQ_OK ? rename_value(g, g->nodes[b].inputs[0]) : st;
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

/* One equalization step on a pair; returns the largest |log s| applied. */
static double equalize(const oq_graph *g, conv_pair *p, float *r)
{
    const oq_node *nb = &g->nodes[p->b];
    int64_t ch = p->wa->dims[0], group = oq_node_attr_int(nb, "group", 1);
    int64_t cin = p->wb->dims[1], out_per_group = p->wb->dims[0] / group;
    int64_t per_a = oq_tensor_numel(p->wa) / ch, per_b = oq_tensor_numel(p->wb) / (p->wb->dims[0] * cin);
    float *wa = p->wa->data, *wb = p->wb->data, *ba = p->ba ? p->ba->data : NULL;
    double moved = 0;
    for (int64_t c = 0; c < ch; c++) {
        float ra = 0, rb = 0;
        for (int64_t i = 0; i < per_a; i++)
            ra = fmaxf(ra, fabsf(wa[c * per_a + i]));
        int64_t g0 = c / cin * out_per_group, ci = c % cin;
        for (int64_t o = g0; o < g0 + out_per_group; o++)
            for (int64_t i = 0; i < per_b; i++)
                rb = fmaxf(rb, fabsf(wb[(o * cin + ci) * per_b + i]));
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
        int64_t g0 = c / cin * out_per_group, ci = c % cin;
        for (int64_t o = g0; o < g0 + out_per_group; o++)
            for (int64_t i = 0; i < per_b; i++)
                wb[(o * cin + ci) * per_b + i] *= r[c];
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
        size_t b = pair_of(g, a);
        if (b == SIZE_MAX)
            continue;
        if ((st = oq_grow((void **)&pairs, &cap, n + 1, sizeof *pairs)) != OQ_OK)
            break;
        conv_pair *p = &pairs[n];
        memset(p, 0, sizeof *p);
        p->a = a, p->b = b;
        /* A chain A -> B -> C: B's weight is one tensor for both pairs */
        if (!(p->wa = owned(pairs, n, a, false)))
            st = own_copy(g, &g->nodes[a], 1, &p->wa);
        if (st == OQ_OK && oq_node_input(&g->nodes[a], 2) && !(p->ba = owned(pairs, n, a, true)))
            st = own_copy(g, &g->nodes[a], 2, &p->ba);
        if (st == OQ_OK && !(p->wb = owned(pairs, n, b, false)))
            st = own_copy(g, &g->nodes[b], 1, &p->wb);
        if (st == OQ_OK)
            st = rename_between(g, a, b);
        if (st == OQ_OK) {
            max_ch = (size_t)p->wa->dims[0] > max_ch ? (size_t)p->wa->dims[0] : max_ch;
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
        oq_pass_note(ctx, "equalize_conv", "%zu Conv pairs equalized across the activation between them", n);
    }
    return st;
}
