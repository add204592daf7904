/* quant/equalize_data: data-driven equalization of Conv inputs, a step of static quantization
 * between preparation and calibration. The preparation's cross-layer equalization
 * (passes/equalize_conv.c) needs a positively homogeneous activation between two layers and bounds
 * the activation by the weights alone; the pointwise Conv after a HardSwish (MobileNetV3, PP-OCR)
 * reads channels whose ranges differ 30-500x through one per-tensor input range. A decomposed
 * HardSwish ends in a Div by 6, though (often followed by a scalar affine step), a linear bottleneck
 * ends in a Conv, a squeeze-and-excitation block in a Mul by a [N, C, 1, 1] gate: dividing channel c
 * there by k_c, passing the scale on through Add/Sub/Mul/Div by constants, residual Adds, Relu and
 * pooling, and multiplying the weights of input channel c of every Conv that reads the result by
 * k_c computes the same function. The ranges per channel are measured on the calibration data. */
#include "passes/pass.h"
#include "quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_MEMBERS = 64, MAX_STEPS = 64 };

/* What a node of a group does when its channels are divided by k. */
enum step_kind {
    ENTRY_CONST,    /* x * a, a * x, x / a, a / x with x outside the group: a is divided by k (multiplied
                     * when it is a divisor) */
    ENTRY_CONV,     /* a Conv with constant weights: output channel c's weights and bias / k_c */
    ENTRY_GATE,     /* x * s, both values outside the group, one of them [N, C, 1, 1] (a squeeze-and-
                     * excitation gate, which the data tells): s gets a new Mul by 1 / k */
    PASS_CONST,     /* member + a, member - a, a - member: a / k */
    CONSUMER        /* a Conv reading a member: its weights of input channel c * k_c */
};

typedef struct eq_step {
    size_t node;
    enum step_kind kind;
    int slot;       /* the constant input (ENTRY_CONST, PASS_CONST) */
    bool divide;    /* ENTRY_CONST: the constant is divided by k (else multiplied: a Div's divisor) */
    size_t gate[2]; /* ENTRY_GATE: indices of its two inputs among the measured values */
} eq_step;

/* A set of values whose channel c can be divided by k_c together: every node that writes one is an
 * entry (the scale goes in there) or passes it on from another member, every node that reads one
 * passes it on or is a Conv that takes it back out. Members are channel-wise related by Relu,
 * LeakyRelu, pooling, Add/Sub (a residual stream), Mul/Div by a constant or by a gate. */
typedef struct eq_group {
    int64_t ch;
    int rank;
    bool linear; /* no Relu, LeakyRelu or MaxPool between members: a channel may change sign */
    const char *member[MAX_MEMBERS];
    bool read_int8[MAX_MEMBERS]; /* read by a Conv consumer or by an Add/Sub of two members: a value
                                  * quantization will quantize, whose range counts */
    size_t n_members, first; /* first: index of member[0] among the measured values */
    eq_step step[MAX_STEPS];
    size_t n_steps;
    /* Mul/Div nodes seen from either side: sorted out once the members are known */
    size_t muldiv[MAX_STEPS];
    size_t n_muldiv;
} eq_group;

static const oq_tensor *const_f32(const oq_graph *g, const char *name)
{
    const oq_tensor *t = name && name[0] ? oq_graph_initializer(g, name) : NULL;
    return t && t->dtype == OQ_FLOAT && t->data ? t : NULL;
}

/* One value, or one per channel of a rank-`rank` NCHW tensor ([C, 1, 1], [1, C, 1, 1]). */
static bool per_channel_or_scalar(const oq_tensor *t, int64_t ch, int rank)
{
    int64_t n = oq_tensor_numel(t);
    if (n == 1)
        return true;
    int spatial = rank - 2;
    return n == ch && t->ndim >= spatial + 1 && t->ndim <= rank && t->dims[t->ndim - 1 - spatial] == ch;
}

static bool is_op(const oq_node *n, const char *op) { return !strcmp(n->op_type, op); }

static bool has_member(const eq_group *gr, const char *name)
{
    for (size_t i = 0; i < gr->n_members; i++)
        if (!strcmp(gr->member[i], name))
            return true;
    return false;
}

static void mark_int8(eq_group *gr, const char *name)
{
    for (size_t i = 0; i < gr->n_members; i++)
        if (!strcmp(gr->member[i], name))
            gr->read_int8[i] = true;
}

static bool add_member(eq_group *gr, const char *name)
{
    if (has_member(gr, name))
        return true;
    if (gr->n_members == MAX_MEMBERS)
        return false;
    gr->member[gr->n_members++] = name;
    return true;
}

static bool add_step(eq_group *gr, size_t node, enum step_kind kind, int slot, bool divide)
{
    for (size_t i = 0; i < gr->n_steps; i++)
        if (gr->step[i].node == node)
            return gr->step[i].kind == kind;
    if (gr->n_steps == MAX_STEPS)
        return false;
    gr->step[gr->n_steps++] = (eq_step){node, kind, slot, divide, {SIZE_MAX, SIZE_MAX}};
    return true;
}

static bool add_muldiv(eq_group *gr, size_t node)
{
    for (size_t i = 0; i < gr->n_muldiv; i++)
        if (gr->muldiv[i] == node)
            return true;
    if (gr->n_muldiv == MAX_STEPS)
        return false;
    gr->muldiv[gr->n_muldiv++] = node;
    return true;
}

/* A Conv with a constant weight that can take input channel c back out: plain or depthwise. */
static bool consumer(const oq_graph *g, const oq_node *n, int64_t ch, int rank)
{
    if (!is_op(n, "Conv") || n->n_inputs < 2)
        return false;
    const oq_tensor *w = const_f32(g, n->inputs[1]);
    int64_t group = oq_node_attr_int(n, "group", 1);
    return w && w->ndim == rank && group >= 1 && w->dims[0] % group == 0 && (group == 1 || w->dims[1] == 1) &&
           w->dims[1] * group == ch;
}

/* The constant input of a two-input node whose other input is a value (slot), or -1. */
static int const_slot(const oq_graph *g, const oq_node *n)
{
    if (n->n_inputs != 2)
        return -1;
    bool c0 = const_f32(g, n->inputs[0]) != NULL, c1 = const_f32(g, n->inputs[1]) != NULL;
    bool i0 = oq_graph_initializer(g, n->inputs[0]) != NULL, i1 = oq_graph_initializer(g, n->inputs[1]) != NULL;
    return c0 && !i1 ? 0 : c1 && !i0 ? 1 : -1;
}

static bool channel_wise(const oq_node *n)
{
    return (is_op(n, "Relu") || is_op(n, "LeakyRelu") || is_op(n, "GlobalAveragePool") || is_op(n, "AveragePool") ||
            (is_op(n, "MaxPool") && (n->n_outputs == 1 || !n->outputs[1][0]))) && n->n_inputs == 1;
}

/* Relu, LeakyRelu, MaxPool: f(x / k) = f(x) / k for k > 0 only. */
static bool nonlinear(const oq_node *n) { return !is_op(n, "GlobalAveragePool") && !is_op(n, "AveragePool"); }

/* Member v's producer: an entry, or a node whose inputs join the group. */
static bool visit_producer(const oq_graph *g, eq_group *gr, const char *v)
{
    size_t p = oq_graph_producer(g, v);
    if (p == SIZE_MAX)
        return false; /* a graph input */
    const oq_node *n = &g->nodes[p];
    if (!oq_domain_is_default(n->domain) || n->n_outputs < 1 || strcmp(n->outputs[0], v))
        return false;
    if (is_op(n, "Conv")) {
        const oq_tensor *wa = const_f32(g, oq_node_input(n, 1)), *ba = const_f32(g, oq_node_input(n, 2));
        return n->n_outputs == 1 && wa && wa->ndim == gr->rank && wa->dims[0] == gr->ch &&
               (!oq_node_input(n, 2) || (ba && oq_tensor_numel(ba) == gr->ch)) && add_step(gr, p, ENTRY_CONV, 0, true);
    }
    if (channel_wise(n)) {
        gr->linear &= !nonlinear(n);
        return add_member(gr, n->inputs[0]);
    }
    if (n->n_outputs != 1 || n->n_inputs != 2)
        return false;
    int cs = const_slot(g, n);
    if (is_op(n, "Add") || is_op(n, "Sub")) {
        if (cs >= 0)
            return per_channel_or_scalar(const_f32(g, n->inputs[cs]), gr->ch, gr->rank) &&
                   add_step(gr, p, PASS_CONST, cs, true) && add_member(gr, n->inputs[1 - cs]);
        return !oq_graph_initializer(g, n->inputs[0]) && !oq_graph_initializer(g, n->inputs[1]) &&
               add_member(gr, n->inputs[0]) && add_member(gr, n->inputs[1]);
    }
    if (is_op(n, "Mul") || is_op(n, "Div"))
        return add_muldiv(gr, p);
    return false;
}

/* A node reading member v: it passes the scale on to its output, or is a Conv that takes it out. */
static bool visit_reader(const oq_graph *g, eq_group *gr, size_t r, const char *v)
{
    const oq_node *n = &g->nodes[r];
    if (!oq_domain_is_default(n->domain))
        return false;
    if (is_op(n, "Conv")) {
        mark_int8(gr, v);
        return !strcmp(n->inputs[0], v) && strcmp(n->inputs[1], v) && (n->n_inputs < 3 || strcmp(n->inputs[2], v)) &&
               consumer(g, n, gr->ch, gr->rank) && add_step(gr, r, CONSUMER, 0, true);
    }
    if (n->n_outputs < 1 || !n->outputs[0][0])
        return false;
    if (channel_wise(n)) {
        gr->linear &= !nonlinear(n);
        return add_member(gr, n->outputs[0]);
    }
    if (n->n_outputs != 1 || n->n_inputs != 2)
        return false;
    int cs = const_slot(g, n);
    if (is_op(n, "Add") || is_op(n, "Sub")) {
        if (cs >= 0)
            return per_channel_or_scalar(const_f32(g, n->inputs[cs]), gr->ch, gr->rank) &&
                   add_step(gr, r, PASS_CONST, cs, true) && add_member(gr, n->outputs[0]);
        if (oq_graph_initializer(g, n->inputs[0]) || oq_graph_initializer(g, n->inputs[1]) ||
            !add_member(gr, n->inputs[0]) || !add_member(gr, n->inputs[1]) || !add_member(gr, n->outputs[0]))
            return false;
        mark_int8(gr, n->inputs[0]);
        mark_int8(gr, n->inputs[1]);
        return true;
    }
    if (is_op(n, "Mul") || is_op(n, "Div"))
        return add_muldiv(gr, r) && add_member(gr, n->outputs[0]);
    return false;
}

/* Mul/Div nodes once the members are known: with no member input and a member output, an entry;
 * with one member input (not a divisor) and a member output, they pass the scale on. */
static bool sort_muldiv(const oq_graph *g, eq_group *gr)
{
    for (size_t i = 0; i < gr->n_muldiv; i++) {
        size_t p = gr->muldiv[i];
        const oq_node *n = &g->nodes[p];
        bool m0 = has_member(gr, n->inputs[0]), m1 = has_member(gr, n->inputs[1]);
        bool out = has_member(gr, n->outputs[0]), div = is_op(n, "Div");
        int cs = const_slot(g, n);
        if (!out || (m0 && m1) || (div && m1))
            return false;
        if (cs >= 0 && !per_channel_or_scalar(const_f32(g, n->inputs[cs]), gr->ch, gr->rank))
            return false;
        if (m0 || m1)
            continue; /* x/k * a = (x * a)/k, (x/k) / a = (x / a)/k, (x/k) * s = (x * s)/k */
        if (cs >= 0) {
            /* (a * x)/k = (a/k) * x; (x / a)/k = x / (a k); (a / x)/k = (a/k) / x */
            if (!add_step(gr, p, ENTRY_CONST, cs, !(div && cs == 1)))
                return false;
        } else if (div || oq_graph_initializer(g, n->inputs[0]) || oq_graph_initializer(g, n->inputs[1]) ||
                   !add_step(gr, p, ENTRY_GATE, -1, true)) {
            return false;
        }
    }
    return true;
}

/* The group of Conv node i's input, if every node around it can take the scale. */
static bool group_of(const oq_graph *g, size_t i, eq_group *gr)
{
    const oq_node *b = &g->nodes[i];
    memset(gr, 0, sizeof *gr);
    if (!is_op(b, "Conv") || !oq_domain_is_default(b->domain) || b->n_inputs < 2)
        return false;
    const oq_tensor *w = const_f32(g, b->inputs[1]);
    if (!w || w->ndim < 3)
        return false;
    gr->rank = (int)w->ndim;
    gr->ch = w->dims[1] * oq_node_attr_int(b, "group", 1);
    gr->linear = true;
    if (!consumer(g, b, gr->ch, gr->rank) || !add_member(gr, b->inputs[0]))
        return false;
    for (size_t m = 0; m < gr->n_members; m++) {
        const char *v = gr->member[m];
        if (!v[0] || oq_graph_is_output(g, v) || oq_graph_initializer(g, v) || !visit_producer(g, gr, v))
            return false;
        size_t direct = 0;
        for (size_t r = 0; r < g->n_nodes; r++) {
            bool reads = false;
            for (size_t s = 0; s < g->nodes[r].n_inputs; s++)
                reads |= !strcmp(g->nodes[r].inputs[s], v);
            if (!reads)
                continue;
            direct++;
            if (!visit_reader(g, gr, r, v))
                return false;
        }
        if (direct != oq_graph_count_readers(g, v))
            return false; /* read inside a subgraph */
    }
    return sort_muldiv(g, gr);
}

/* Replaces node n's constant input `slot` by a new [C, 1, ..] tensor (rank - 1 dims): the old
 * value(s) with channel c divided (or multiplied) by k[c]. */
static oq_status rescale_const(oq_graph *g, oq_node *n, int slot, bool divide, const double *k, int64_t ch,
                               int rank)
{
    const oq_tensor *old = oq_graph_initializer(g, n->inputs[slot]);
    int64_t dims[OQ_MAX_DIMS];
    dims[0] = ch;
    for (int d = 1; d < rank - 1; d++)
        dims[d] = 1;
    oq_tensor *t = NULL;
    oq_status st = oq_tensor_create(OQ_FLOAT, rank - 1, dims, &t);
    if (st != OQ_OK)
        return st;
    const float *src = old->data;
    float *dst = t->data;
    bool one = oq_tensor_numel(old) == 1;
    for (int64_t c = 0; c < ch; c++) {
        double v = src[one ? 0 : c];
        dst[c] = (float)(divide ? v / k[c] : v * k[c]);
    }
    return oq_node_set_input_initializer(g, n, (size_t)slot, t, "_eq");
}

/* Gate Mul node p: its input `side` ([N, C, 1, 1]) is read through a new Mul by 1/k[c]. */
static oq_status rescale_gate(oq_graph *g, size_t p, int side, const double *k, int64_t ch, int rank)
{
    int64_t dims[OQ_MAX_DIMS];
    dims[0] = ch;
    for (int d = 1; d < rank - 1; d++)
        dims[d] = 1;
    oq_tensor *t = NULL;
    oq_status st = oq_tensor_create(OQ_FLOAT, rank - 1, dims, &t);
    if (st != OQ_OK)
        return st;
    for (int64_t c = 0; c < ch; c++)
        ((float *)t->data)[c] = (float)(1.0 / k[c]);
    const char *in = g->nodes[p].inputs[side];
    char *name = oq_graph_unique_name(g, in, "_eq_scale"), *out = oq_graph_unique_name(g, in, "_eq");
    t->name = name;
    if (!name || !out || (st = oq_graph_add_initializer(g, t)) != OQ_OK) {
        free(out);
        oq_tensor_destroy(t);
        return st != OQ_OK ? st : oq_error(OQ_E_NOMEM, "out of memory");
    }
    const char *mi[2] = {in, name}, *mo[1] = {out};
    st = oq_graph_add_node(g, "Mul", "", "", mi, 2, mo, 1, NULL);
    char *copy = st == OQ_OK ? oq_strdup(out) : NULL;
    if (st == OQ_OK && !copy)
        st = oq_error(OQ_E_NOMEM, "out of memory");
    if (st == OQ_OK) {
        free(g->nodes[p].inputs[side]);
        g->nodes[p].inputs[side] = copy;
    }
    free(out);
    return st;
}

/* Producer Conv a: its own copies of weight and bias, with output channel c divided by k[c]. */
static oq_status rescale_producer(oq_graph *g, oq_node *a, const double *k)
{
    oq_status st = OQ_OK;
    for (size_t slot = 1; slot < 3 && st == OQ_OK; slot++) {
        const char *in = oq_node_input(a, slot);
        const oq_tensor *src = in ? oq_graph_initializer(g, in) : NULL;
        if (!src)
            continue;
        oq_tensor *t = NULL;
        if ((st = oq_tensor_create(OQ_FLOAT, src->ndim, src->dims, &t)) != OQ_OK)
            break;
        int64_t per = oq_tensor_numel(src) / src->dims[0];
        for (int64_t c = 0; c < src->dims[0]; c++)
            for (int64_t i = 0; i < per; i++)
                ((float *)t->data)[c * per + i] = (float)(((const float *)src->data)[c * per + i] / k[c]);
        st = oq_node_set_input_initializer(g, a, slot, t, "_eq");
    }
    return st;
}

/* The Conv's own copy of its weight with input channel c multiplied by k[c]. */
static oq_status rescale_weight(oq_graph *g, oq_node *b, const double *k)
{
    const oq_tensor *src = oq_graph_initializer(g, b->inputs[1]);
    oq_tensor *t = NULL;
    oq_status st = oq_tensor_create(OQ_FLOAT, src->ndim, src->dims, &t);
    if (st != OQ_OK)
        return st;
    int64_t group = oq_node_attr_int(b, "group", 1), cin = src->dims[1], m = src->dims[0];
    int64_t per = oq_tensor_numel(src) / (m * cin);
    const float *w = src->data;
    float *d = t->data;
    for (int64_t o = 0; o < m; o++)
        for (int64_t ci = 0; ci < cin; ci++) {
            /* input channel of this weight row: ci (group 1), or o's group (depthwise) */
            int64_t c = group == 1 ? ci : o / (m / group);
            for (int64_t s = 0; s < per; s++)
                d[(o * cin + ci) * per + s] = (float)(w[(o * cin + ci) * per + s] * k[c]);
        }
    return oq_node_set_input_initializer(g, b, 1, t, "_eq");
}


/* The best k (> 0) for channels [lo[c], hi[c]] (hi[c] >= -lo[c] when signs could be flipped) that a
 * Conv quantized per channel reads (a depthwise one: its weights do not care): all channels then share
 * one range [-a, 1], and each should cover as much of it as it can. k[c] = max(hi[c], -lo[c] / a);
 * a is the one (on a grid) that maximizes the sum over channels of log(span / (k (1 + a))), the
 * levels each channel gets. A channel one-sided in [0, hi] wants a = 0, a symmetric one a = 1. */
static void fit_interval(const double *lo, const double *hi, int64_t ch, double *k)
{
    double best = -INFINITY, best_a = 1;
    for (int i = 0; i <= 40; i++) {
        double a = pow(10.0, -2.0 + i * 0.1), score = 0; /* 0.01 .. 100 */
        for (int64_t c = 0; c < ch; c++) {
            double kc = fmax(fmax(hi[c], -lo[c] / a), 1e-4), span = fmax(hi[c] - lo[c], 1e-4);
            score += log(span / kc);
        }
        score -= (double)ch * log(1 + a);
        if (score > best)
            best = score, best_a = a;
    }
    for (int64_t c = 0; c < ch; c++)
        k[c] = fmax(fmax(hi[c], -lo[c] / best_a), 1e-4);
}

/* k per channel of a group, from the channels' ranges: each member's [lo, hi] per channel as a
 * fraction of its largest |x| (the union over the members that int8 nodes read). In a group of linear
 * steps only, k may be negative: a channel that is mostly negative is flipped, so the members become
 * mostly one-sided and their ranges lose no levels to the side the channels rarely use. Then:
 * - with plain Conv consumers, the cross-layer rule on the magnitudes: |k| = sqrt(rx / rw), rx the
 *   channel's largest |x|, rw its largest weight in the consumers (each consumer as a fraction of its
 *   largest), so both sides end at sqrt(rx rw);
 * - with only depthwise consumers (or pooling), whose weights are quantized per channel, the
 *   channels are fitted to one range (fit_interval).
 * Largest |k| = 1. range: the members' measured ranges. Returns false when there is nothing to balance. */
static bool scales(const oq_graph *g, const eq_group *gr, double *const *range, const int64_t *nch, double *k)
{
    int64_t ch = gr->ch;
    double *rw = k + ch, *lo = k + 2 * ch, *hi = k + 3 * ch, *sign = k + 4 * ch;
    for (int64_t c = 0; c < ch; c++)
        rw[c] = 0, lo[c] = INFINITY, hi[c] = -INFINITY;
    bool any_x = false, any_w = false;
    for (size_t m = 0; m < gr->n_members; m++) {
        const double *r = range[gr->first + m];
        if (!r || nch[gr->first + m] != ch || !gr->read_int8[m])
            continue;
        double mx = 0;
        for (int64_t c = 0; c < 2 * ch; c++)
            mx = isfinite(r[c]) && fabs(r[c]) > mx ? fabs(r[c]) : mx;
        for (int64_t c = 0; mx > 0 && c < ch; c++)
            if (isfinite(r[c]) && isfinite(r[ch + c])) {
                lo[c] = fmin(lo[c], r[c] / mx);
                hi[c] = fmax(hi[c], r[ch + c] / mx);
            }
        any_x |= mx > 0;
    }
    for (size_t i = 0; i < gr->n_steps; i++) {
        const oq_node *b = &g->nodes[gr->step[i].node];
        if (gr->step[i].kind != CONSUMER || oq_node_attr_int(b, "group", 1) != 1)
            continue;
        const oq_tensor *w = oq_graph_initializer(g, b->inputs[1]);
        int64_t m = w->dims[0], per = oq_tensor_numel(w) / (m * ch);
        const float *wd = w->data;
        double mx = 0;
        for (int64_t j = 0; j < m * ch * per; j++)
            mx = isfinite(wd[j]) && fabs(wd[j]) > mx ? fabs(wd[j]) : mx;
        for (int64_t o = 0; mx > 0 && o < m; o++)
            for (int64_t c = 0; c < ch; c++)
                for (int64_t s = 0; s < per; s++) {
                    double v = fabs(wd[(o * ch + c) * per + s]) / mx;
                    rw[c] = isfinite(v) && v > rw[c] ? v : rw[c];
                }
        any_w |= mx > 0;
    }
    if (!any_x)
        return false;
    for (int64_t c = 0; c < ch; c++) {
        if (!(lo[c] <= hi[c]))
            lo[c] = hi[c] = 0; /* never seen */
        sign[c] = gr->linear && -lo[c] > hi[c] ? -1 : 1;
        if (sign[c] < 0) {
            double t = lo[c];
            lo[c] = -hi[c], hi[c] = -t;
        }
    }
    if (any_w) {
        /* floors: a dead channel (or one with no weight) neither blows up nor vanishes */
        for (int64_t c = 0; c < ch; c++) {
            double x = fmax(fmax(hi[c], -lo[c]), 1e-4);
            k[c] = sqrt(x / fmax(rw[c], 1e-4));
        }
    } else {
        fit_interval(lo, hi, ch, k);
    }
    double kmax = 0;
    for (int64_t c = 0; c < ch; c++)
        kmax = k[c] > kmax ? k[c] : kmax;
    bool moved = false;
    for (int64_t c = 0; c < ch; c++) {
        /* to 8 significant bits: the model records them in 2 bytes each (quant/rescaled.c) */
        k[c] = quant_round_bf16(sign[c] * k[c] / kmax);
        moved |= k[c] < 0.99;
    }
    return moved;
}

oq_status quant_equalize_inputs(oq_model *m, int threads, int64_t max_samples, oq_data_reader *data, size_t *done)
{
    oq_graph *g = m->graph;
    *done = 0;
    eq_group *grp = NULL;
    size_t n = 0, cap = 0, nn = 0, ncap = 0, max_ch = 1;
    bool *used = oq_calloc(g->n_nodes + 1, sizeof *used); /* Conv consumers already in a group */
    const char **names = NULL;
    oq_status st = used ? OQ_OK : oq_error(OQ_E_NOMEM, "out of memory");
    for (size_t i = 0; st == OQ_OK && i < g->n_nodes; i++) {
        if (used[i])
            continue;
        if ((st = oq_grow((void **)&grp, &cap, n + 1, sizeof *grp)) != OQ_OK)
            break;
        eq_group *gr = &grp[n];
        if (!group_of(g, i, gr))
            continue;
        /* a Conv can be an entry of one group (its output) and a consumer of another (its input);
         * anything else two groups share would be one group */
        bool clash = false;
        for (size_t s = 0; s < gr->n_steps; s++)
            clash |= gr->step[s].kind == CONSUMER && used[gr->step[s].node];
        if (clash)
            continue;
        for (size_t s = 0; s < gr->n_steps; s++)
            used[gr->step[s].node] |= gr->step[s].kind == CONSUMER;
        n++;
        /* only linear groups are rescaled (below), so only they are measured (ResNet18's groups all
         * pass a Relu: measuring them read 128 samples for nothing); the others still hold their
         * Convs, as they did */
        if (!gr->linear)
            continue;
        if ((st = oq_grow((void **)&names, &ncap, nn + gr->n_members + 2 * gr->n_steps, sizeof *names)) != OQ_OK)
            break;
        gr->first = nn;
        for (size_t k = 0; k < gr->n_members; k++)
            names[nn++] = gr->member[k];
        for (size_t s = 0; s < gr->n_steps; s++)
            if (gr->step[s].kind == ENTRY_GATE)
                for (int side = 0; side < 2; side++) {
                    gr->step[s].gate[side] = nn;
                    names[nn++] = g->nodes[gr->step[s].node].inputs[side];
                }
        max_ch = (size_t)gr->ch > max_ch ? (size_t)gr->ch : max_ch;
    }
    double **range = st == OQ_OK ? oq_calloc(nn + 1, sizeof *range) : NULL;
    int64_t *nch = st == OQ_OK ? oq_calloc(nn + 1, sizeof *nch) : NULL, *inner = st == OQ_OK ? oq_calloc(nn + 1, sizeof *inner) : NULL;
    double *k = st == OQ_OK ? oq_malloc(5 * max_ch * sizeof *k) : NULL;
    if (st == OQ_OK && (!range || !nch || !inner || !k))
        st = oq_error(OQ_E_NOMEM, "out of memory");
    if (st == OQ_OK && nn)
        st = quant_channel_range(m, names, nn, threads, max_samples, data, range, nch, inner);
    bool added = false;
    /* names point into the graph: every range is read before anything is renamed */
    for (size_t i = 0; st == OQ_OK && i < n; i++) {
        eq_group *gr = &grp[i];
        int side[MAX_STEPS];
        bool ok = gr->linear;
        for (size_t s = 0; s < gr->n_steps && ok; s++) {
            const eq_step *e = &gr->step[s];
            side[s] = -1;
            for (int d = 0; e->kind == ENTRY_GATE && d < 2 && side[s] < 0; d++)
                if (range[e->gate[d]] && nch[e->gate[d]] == gr->ch && inner[e->gate[d]] == 1)
                    side[s] = d;
            ok = e->kind != ENTRY_GATE || side[s] >= 0;
        }
        /* every member must have the group's channels (a broadcast could have made one narrower) */
        for (size_t v = 0; v < gr->n_members && ok; v++)
            ok = range[gr->first + v] && nch[gr->first + v] == gr->ch;
        /* Only groups with no Relu, LeakyRelu or MaxPool between members: a positively homogeneous
         * path is the preparation's cross-layer equalization's (which `onnxq debug` replays on the float
         * model), and a group rescaled here hides its values from debug (new names) and changes its
         * Convs' weights against the float model's. On the OCR models the linear groups alone gave
         * ocr_rec 22.3 dB (all groups: 21.4) and ocr_cls 22.6 dB (24.5), the same agreement; the
         * Fashion-MNIST CNN (all its groups pass a Relu) keeps every layer comparable. */
        if (!ok || !gr->linear || !scales(g, gr, range, nch, k))
            continue;
        for (size_t s = 0; st == OQ_OK && s < gr->n_steps; s++) {
            const eq_step *e = &gr->step[s];
            oq_node *nd = &g->nodes[e->node];
            switch (e->kind) {
            case CONSUMER: st = rescale_weight(g, nd, k); break;
            case ENTRY_CONV: st = rescale_producer(g, nd, k); break;
            case ENTRY_CONST:
            case PASS_CONST: st = rescale_const(g, nd, e->slot, e->divide, k, gr->ch, gr->rank); break;
            case ENTRY_GATE:
                st = rescale_gate(g, e->node, side[s], k, gr->ch, gr->rank);
                added = true;
                break;
            }
        }
        /* other numbers than the float model's values: new names, and the factors in the model's
         * metadata so that `onnxq debug` can still compare them (quant/rescaled.c) */
        char *from[MAX_MEMBERS] = {0}, *to[MAX_MEMBERS] = {0};
        for (size_t v = 0; st == OQ_OK && v < gr->n_members; v++) {
            if (!(from[v] = oq_strdup(gr->member[v])))
                st = oq_error(OQ_E_NOMEM, "out of memory");
            else
                st = oq_graph_rename_value(g, from[v], "_eq", &to[v]);
        }
        if (st == OQ_OK)
            st = quant_note_rescaled(m, (const char *const *)from, (const char *const *)to, gr->n_members, 1, k,
                                     gr->ch);
        for (size_t v = 0; v < gr->n_members; v++)
            free(from[v]), free(to[v]);
        if (st == OQ_OK)
            ++*done;
    }
    if (st == OQ_OK && added)
        st = oq_graph_toposort(g, NULL, 0);
    for (size_t i = 0; range && i < nn; i++)
        free(range[i]);
    free(k);
    free(inner);
    free(nch);
    free(range);
    free(names);
    free(grp);
    free(used);
    return st == OQ_OK ? OQ_OK : oq_error_context(st, "equalizing Conv inputs on the data");
}
