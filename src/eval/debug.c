/* eval/debug: the numeric suite. Matches every activation a QDQ model quantizes
 * (QuantizeLinear on a float tensor X) to X in the float model, runs both models
 * over the same data and measures, per layer:
 *   - the error of X in the quantized model against the float model (errors of
 *     all layers before it included),
 *   - the error the layer adds on its own: the float model's values of the
 *     layer's inputs fed into a session holding only that layer's quantized
 *     pattern (DQ inputs -> op -> Q -> DQ), which runs on the integer kernels
 *     (or emulated in float with emulate); for a float node with no quantized input
 *     whose output is quantized, that quantization of its float output,
 *   - the SQNR of its dequantized weights against the float model's weights
 *     (after the same preparation passes the quantizer runs: BatchNorm folding).
 * Values are streamed batch by batch; one batch of the float model's quantized
 * tensors is kept at a time. Activations inside If branches are layers too (both
 * branches run at most once per run; the float session keeps its bodies unfused so
 * their values reach the observer); their own error needs the layer alone, which is
 * built for main-graph layers only. Loop/Scan bodies run many times per run: both
 * sessions show a body's value once per iteration, so the float model's values of
 * a run are kept in order and the quantized model's k-th value is compared with the
 * float model's k-th (a loop that ends after a different number of iterations in
 * the two models is compared over the iterations both ran). */
#include "eval/eval.h"
#include "core/core.h"
#include "ir/graph.h"
#include "passes/pass.h"
#include "quant/quant.h"
#include "runtime/exec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct layer {
    const char *x;      /* float tensor (name in the quantized model) */
    const char *ref;    /* its name in the float model */
    const char *xq;     /* QuantizeLinear output */
    const char *ydq;    /* DequantizeLinear output reading xq, or NULL */
    float scale;
    int32_t zp;
    int32_t qmin, qmax; /* the quantized type's range */
    const quant_rescaled *rescaled; /* x = ref / divisor[c] (the quantizer rescaled it), or NULL */
    const oq_node *producer; /* node writing x in the quantized model; NULL for a graph input */
    bool in_body;            /* inside an If branch or a Loop/Scan body */
    bool in_loop;            /* inside a Loop/Scan body: one value per iteration */
    oq_session *own;    /* the layer alone, or NULL */
    size_t *own_in;     /* float tensors feeding `own`, as layer indices (the stored values) */
    size_t n_own_in;
    oq_layer_report *rep;
} layer;

typedef struct debug_ctx {
    layer *layers;
    size_t n;
    oq_strmap by_ref, by_xq; /* float name -> layer, QuantizeLinear output -> layer */
    oq_tensor **ref_vals;    /* this batch's float values per layer */
    /* layers in loop bodies: this batch's float values, iteration by iteration, and
     * how many of them the quantized run has matched so far */
    oq_tensor ***iter_vals;
    size_t *n_iter, *cap_iter, *q_iter;
    size_t unmatched; /* QuantizeLinear of a float tensor the float model has no value of that name for */
    const quant_rescaled *rescaled; /* the values the quantized model records as rescaled */
    oq_strmap by_rescaled;          /* their new names -> index */
    oq_status st;
} debug_ctx;

static float scalar_f(const oq_tensor *t, float dflt)
{
    return t && oq_tensor_numel(t) == 1 ? (float)oq_tensor_get_f64(t, 0) : dflt;
}

static bool produces(const oq_graph *g, const char *name, const oq_node **by)
{
    for (size_t i = 0; i < g->n_inputs; i++)
        if (!strcmp(g->inputs[i].name, name)) {
            *by = NULL;
            return true;
        }
    for (size_t i = 0; i < g->n_nodes; i++)
        for (size_t k = 0; k < g->nodes[i].n_outputs; k++)
            if (!strcmp(g->nodes[i].outputs[k], name)) {
                *by = &g->nodes[i];
                return true;
            }
    return false;
}

/* produces(), searching If/Loop bodies too (names are unique across a model's graphs). */
static bool produces_deep(const oq_graph *g, const char *name, const oq_node **by)
{
    if (produces(g, name, by))
        return true;
    for (size_t i = 0; i < g->n_nodes; i++)
        for (size_t a = 0; a < g->nodes[i].n_attrs; a++) {
            const oq_attr *at = &g->nodes[i].attrs[a];
            if (at->g && produces_deep(at->g, name, by))
                return true;
            for (size_t k = 0; k < at->n_graphs; k++)
                if (at->graphs[k] && produces_deep(at->graphs[k], name, by))
                    return true;
        }
    return false;
}

/* The initializer name of g or of any body inside it. */
static const oq_tensor *init_deep(const oq_graph *g, const char *name)
{
    const oq_tensor *t = oq_graph_initializer(g, name);
    for (size_t i = 0; !t && i < g->n_nodes; i++)
        for (size_t a = 0; !t && a < g->nodes[i].n_attrs; a++) {
            const oq_attr *at = &g->nodes[i].attrs[a];
            if (at->g)
                t = init_deep(at->g, name);
            for (size_t k = 0; !t && k < at->n_graphs; k++)
                if (at->graphs[k])
                    t = init_deep(at->graphs[k], name);
        }
    return t;
}

/* The node called name in g or any body inside it. */
static const oq_node *node_deep(const oq_graph *g, const char *name)
{
    for (size_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].name && !strcmp(g->nodes[i].name, name))
            return &g->nodes[i];
    for (size_t i = 0; i < g->n_nodes; i++)
        for (size_t a = 0; a < g->nodes[i].n_attrs; a++) {
            const oq_attr *at = &g->nodes[i].attrs[a];
            const oq_node *n = at->g ? node_deep(at->g, name) : NULL;
            if (n)
                return n;
        }
    return NULL;
}

static const oq_node *first_reader(const oq_graph *g, const char *name, const char *op_type, size_t *slot)
{
    for (size_t i = 0; i < g->n_nodes; i++)
        for (size_t k = 0; k < g->nodes[i].n_inputs; k++)
            if (!strcmp(g->nodes[i].inputs[k], name) && (!op_type || !strcmp(g->nodes[i].op_type, op_type))) {
                if (slot)
                    *slot = k;
                return &g->nodes[i];
            }
    return NULL;
}

/* ---- weights ---- */

/* How the quantizer rescaled a Conv's weights along with its input and output (NULL: not): it
 * multiplied input channel c by in->divisor[c] and output channel o by 1 / out->divisor[o]. */
typedef struct weight_rescale {
    const quant_rescaled *in, *out;
    int64_t group;
} weight_rescale;

/* The factor that takes element i of rescaled weights w (a Conv's [O, I/group, ...]) back to the
 * float model's, or NaN when the shapes do not fit the record. */
static double weight_unscale(const weight_rescale *r, const oq_tensor *w, int64_t i)
{
    if (!r || (!r->in && !r->out))
        return 1;
    int64_t o_n = w->dims[0], per_o = oq_tensor_numel(w) / o_n, ig = w->ndim > 1 ? w->dims[1] : 1;
    int64_t spatial = per_o / ig, o = i / per_o, cl = i % per_o / spatial;
    double f = 1;
    if (r->out)
        f *= r->out->ch == o_n ? r->out->divisor[o] : NAN;
    if (r->in) {
        int64_t g = r->group > 0 && o_n % r->group == 0 ? r->group : 1, c = o / (o_n / g) * ig + cl;
        f /= r->in->ch == g * ig ? r->in->divisor[c] : NAN;
    }
    return f;
}

/* SQNR (dB) of the dequantized DequantizeLinear input (an initializer), taken back through r
 * (may be NULL), against w. */
static double dq_weight_sqnr(const oq_graph *qg, const oq_node *dq, const oq_tensor *w, const weight_rescale *r)
{
    const oq_tensor *q = init_deep(qg, dq->inputs[0]);
    const oq_tensor *s = dq->n_inputs > 1 ? init_deep(qg, dq->inputs[1]) : NULL;
    const oq_tensor *z = dq->n_inputs > 2 && dq->inputs[2][0] ? init_deep(qg, dq->inputs[2]) : NULL;
    if (!q || !s || !w || w->dtype != OQ_FLOAT || oq_tensor_numel(q) != oq_tensor_numel(w) || q->ndim < 1)
        return NAN;
    int64_t axis = oq_node_attr_int(dq, "axis", 1), ns = oq_tensor_numel(s);
    if (axis < 0)
        axis += q->ndim;
    int64_t inner = 1, ch = ns > 1 && axis < q->ndim ? q->dims[axis] : 1;
    for (int d = (int)axis + 1; ns > 1 && d < q->ndim; d++)
        inner *= q->dims[d];
    if (ns > 1 && ns != ch)
        return NAN;
    double sig = 0, err = 0;
    const float *wf = w->data;
    for (int64_t i = 0, n = oq_tensor_numel(q); i < n; i++) {
        int64_t c = ns > 1 ? i / inner % ch : 0;
        double sc = oq_tensor_get_f64(s, c), zp = z ? oq_tensor_get_f64(z, ns > 1 && oq_tensor_numel(z) > 1 ? c : 0) : 0;
        double v = (oq_tensor_get_f64(q, i) - zp) * sc * weight_unscale(r, q, i);
        if (isnan(v))
            return NAN;
        sig += (double)wf[i] * wf[i];
        err += (v - wf[i]) * (v - wf[i]);
    }
    return err > 0 ? 10 * log10(sig / err) : INFINITY;
}

/* Weight SQNR of node n of the quantized graph: its first input written by a
 * DequantizeLinear of an int8/uint8 initializer, against the same input of the
 * node with the same name in the prepared float graph. */
/* The float tensor that node input `name` dequantizes (DQ(Q(x)) -> x), or name itself. */
static const char *float_source(const oq_graph *qg, const char *name)
{
    const oq_node *dq = NULL, *qn = NULL;
    if (produces_deep(qg, name, &dq) && dq && !strcmp(dq->op_type, "DequantizeLinear") &&
        produces_deep(qg, dq->inputs[0], &qn) && qn && !strcmp(qn->op_type, "QuantizeLinear"))
        return qn->inputs[0];
    return name;
}

static const quant_rescaled *rescaled_value(const debug_ctx *c, const char *name)
{
    size_t r;
    return c->rescaled && oq_strmap_get(&c->by_rescaled, name, &r) ? &c->rescaled[r] : NULL;
}

static double node_weight_sqnr(const debug_ctx *c, const oq_graph *qg, const oq_node *n, const oq_graph *fg)
{
    if (!n || !n->name || !n->name[0] || n->n_inputs == 0 || n->n_outputs == 0)
        return NAN;
    /* an input or output the quantizer rescaled per channel (the data-driven equalization): the
     * weights were rescaled with it, and are taken back through the record before comparing */
    weight_rescale r = {rescaled_value(c, float_source(qg, n->inputs[0])), rescaled_value(c, n->outputs[0]),
                        oq_node_attr_int(n, "group", 1)};
    const oq_node *by = NULL, *qn = first_reader(qg, n->outputs[0], "QuantizeLinear", NULL);
    const oq_node *dq = qn ? first_reader(qg, qn->outputs[0], "DequantizeLinear", NULL) : NULL;
    bool out_known = produces_deep(fg, n->outputs[0], &by) || (dq && produces_deep(fg, dq->outputs[0], &by)) ||
                     (r.out && produces_deep(fg, r.out->from, &by));
    bool in_known = produces_deep(fg, float_source(qg, n->inputs[0]), &by) ||
                    (r.in && produces_deep(fg, r.in->from, &by));
    if (!in_known || !out_known)
        return NAN;
    if ((r.in || r.out) && strcmp(n->op_type, "Conv"))
        return NAN; /* the equalization rescales Conv weights only */
    const oq_node *fn = node_deep(fg, n->name);
    for (size_t k = 1; fn && k < n->n_inputs && k < fn->n_inputs; k++) {
        const oq_node *dq = NULL;
        if (!produces_deep(qg, n->inputs[k], &dq) || !dq || strcmp(dq->op_type, "DequantizeLinear"))
            continue;
        const oq_tensor *q = init_deep(qg, dq->inputs[0]);
        if (!q || (q->dtype != OQ_INT8 && q->dtype != OQ_UINT8))
            continue;
        return dq_weight_sqnr(qg, dq, init_deep(fg, fn->inputs[k]), k == 1 ? &r : NULL);
    }
    return NAN;
}

/* ---- the layer alone ---- */

/* A copy of the quantized model reduced to what computes l->ydq from the float
 * tensors at the layer's quantized inputs, which become the graph inputs. */
static oq_status build_own(const oq_model *q, debug_ctx *c, layer *l, const oq_session_options *so)
{
    const oq_graph *qg = q->graph;
    const oq_node *n = l->producer;
    /* the layer's quantized inputs: DQ(Q(x_in)) with x_in a known layer */
    size_t idx[OQ_MAX_DIMS * 2], k_in = 0;
    for (size_t k = 0; k < n->n_inputs && k_in < sizeof idx / sizeof idx[0]; k++) {
        const oq_node *dq = NULL, *qn = NULL;
        if (!n->inputs[k][0] || !produces(qg, n->inputs[k], &dq) || !dq || strcmp(dq->op_type, "DequantizeLinear"))
            continue;
        if (!produces(qg, dq->inputs[0], &qn) || !qn || strcmp(qn->op_type, "QuantizeLinear"))
            continue;
        size_t li;
        if (oq_strmap_get(&c->by_xq, qn->outputs[0], &li))
            idx[k_in++] = li;
    }
    if (!k_in || !l->ydq)
        return OQ_OK;
    oq_model *m = NULL;
    oq_status st = oq_model_clone(q, &m);
    if (st != OQ_OK)
        return st;
    oq_graph *g = m->graph;
    /* keep the nodes l->ydq depends on, stopping at the inputs' float tensors */
    oq_strmap need;
    bool *keep = oq_calloc(g->n_nodes + 1, sizeof *keep);
    st = keep ? oq_strmap_init(&need, 64) : oq_error(OQ_E_NOMEM, "out of memory");
    if (st == OQ_OK) {
        oq_strmap_put(&need, l->ydq, 1);
        for (size_t i = g->n_nodes; i-- > 0;) {
            const oq_node *nd = &g->nodes[i];
            bool wanted = false, stop = false;
            for (size_t o = 0; o < nd->n_outputs; o++) {
                size_t v;
                wanted |= oq_strmap_get(&need, nd->outputs[o], &v);
                for (size_t j = 0; j < k_in; j++)
                    stop |= !strcmp(nd->outputs[o], c->layers[idx[j]].x);
            }
            if (!wanted || stop)
                continue;
            keep[i] = true;
            for (size_t k = 0; k < nd->n_inputs && st == OQ_OK; k++)
                if (nd->inputs[k][0])
                    st = oq_strmap_put(&need, nd->inputs[k], 1);
        }
        oq_strmap_free(&need);
    }
    for (size_t i = g->n_nodes; st == OQ_OK && i-- > 0;)
        if (!keep[i])
            oq_graph_remove_node(g, i);
    free(keep);
    /* inputs: the float tensors; output: the layer's dequantized output */
    if (st == OQ_OK) {
        for (size_t i = 0; i < g->n_inputs; i++)
            oq_value_info_clear(&g->inputs[i]);
        for (size_t i = 0; i < g->n_outputs; i++)
            oq_value_info_clear(&g->outputs[i]);
        free(g->inputs);
        free(g->outputs);
        g->n_inputs = g->n_outputs = 0;
        g->inputs = oq_calloc(k_in, sizeof *g->inputs);
        g->outputs = oq_calloc(1, sizeof *g->outputs);
        if (!g->inputs || !g->outputs)
            st = oq_error(OQ_E_NOMEM, "out of memory");
    }
    for (size_t j = 0; st == OQ_OK && j < k_in; j++) {
        oq_value_info *vi = &g->inputs[g->n_inputs++];
        vi->dtype = OQ_FLOAT;
        vi->ndim = -1;
        if (!(vi->name = oq_strdup(c->layers[idx[j]].x)))
            st = oq_error(OQ_E_NOMEM, "out of memory");
    }
    if (st == OQ_OK) {
        g->outputs[0].dtype = OQ_FLOAT;
        g->outputs[0].ndim = -1;
        g->n_outputs = 1;
        if (!(g->outputs[0].name = oq_strdup(l->ydq)))
            st = oq_error(OQ_E_NOMEM, "out of memory");
    }
    if (st == OQ_OK)
        st = oq_session_create(m, so, &l->own);
    if (st == OQ_OK && oq_session_input_count(l->own) == k_in) {
        l->own_in = oq_calloc(k_in, sizeof *l->own_in);
        if (!l->own_in)
            st = oq_error(OQ_E_NOMEM, "out of memory");
        /* session inputs are in graph-input order, which is idx order */
        for (size_t j = 0; st == OQ_OK && j < k_in; j++)
            l->own_in[j] = idx[j];
        l->n_own_in = k_in;
    }
    oq_model_destroy(m);
    if (st != OQ_OK) {
        oq_session_destroy(l->own);
        l->own = NULL;
        /* a layer that cannot run alone keeps own = n/a; not an error of the whole run */
        st = OQ_OK;
    }
    return st;
}

/* ---- observers ---- */

/* A copy of the float model's value t as layer l's quantized tensor holds it: divided per channel
 * where the quantizer rescaled it; NULL (OQ_OK) when its shape does not have those channels. */
static oq_status reference_copy(const layer *l, const oq_tensor *t, oq_tensor **out)
{
    *out = NULL;
    const quant_rescaled *r = l->rescaled;
    if (r && (r->axis < 0 || r->axis >= t->ndim || t->dims[r->axis] != r->ch))
        return OQ_OK;
    oq_status st = oq_tensor_clone(t, out);
    if (st != OQ_OK || !r)
        return st;
    int64_t inner = 1, n = oq_tensor_numel(t);
    for (int d = r->axis + 1; d < t->ndim; d++)
        inner *= t->dims[d];
    float *v = (*out)->data;
    for (int64_t i = 0; i < n; i++)
        v[i] /= r->divisor[i / inner % r->ch];
    return OQ_OK;
}

static void observe_float(void *user, const char *name, const oq_tensor *t)
{
    debug_ctx *c = user;
    size_t li;
    if (c->st != OQ_OK || !oq_strmap_get(&c->by_ref, name, &li) || t->dtype != OQ_FLOAT)
        return;
    const layer *l = &c->layers[li];
    if (l->in_loop) {
        oq_tensor *copy = NULL;
        if ((c->st = oq_grow((void **)&c->iter_vals[li], &c->cap_iter[li], c->n_iter[li] + 1,
                             sizeof *c->iter_vals[li])) == OQ_OK &&
            (c->st = reference_copy(l, t, &copy)) == OQ_OK && copy)
            c->iter_vals[li][c->n_iter[li]++] = copy;
        return;
    }
    oq_tensor_destroy(c->ref_vals[li]);
    c->ref_vals[li] = NULL;
    c->st = reference_copy(l, t, &c->ref_vals[li]);
}

/* Dequantized copy of t (uint8/int8 with l's scale and zero point, or float as it is). */
static oq_status dequantized(const layer *l, const oq_tensor *t, float **out)
{
    int64_t n = oq_tensor_numel(t);
    float *v = oq_malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (!v)
        return oq_error(OQ_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == OQ_UINT8)
            v[i] = (float)(((const uint8_t *)t->data)[i] - l->zp) * l->scale;
        else if (t->dtype == OQ_INT8)
            v[i] = (float)(((const int8_t *)t->data)[i] - l->zp) * l->scale;
        else
            v[i] = (float)oq_tensor_get_f64(t, i);
    }
    *out = v;
    return OQ_OK;
}

static void add_diff(oq_diff_stats *st, const oq_tensor *ref, const float *test, int64_t n)
{
    if (!ref || oq_tensor_numel(ref) != n)
        return;
    int64_t samples = ref->ndim > 0 ? ref->dims[0] : 1;
    oq_diff_stats_add_f32(st, ref->data, test, n, samples, 0);
}

static void observe_quant(void *user, const char *name, const oq_tensor *t)
{
    debug_ctx *c = user;
    size_t li;
    if (c->st != OQ_OK || !oq_strmap_get(&c->by_xq, name, &li))
        return;
    layer *l = &c->layers[li];
    const oq_tensor *ref = c->ref_vals[li];
    if (l->in_loop) { /* the float model's value of the same iteration */
        size_t k = c->q_iter[li]++;
        ref = k < c->n_iter[li] ? c->iter_vals[li][k] : NULL;
        if (!ref)
            return;
    }
    float *v = NULL;
    c->st = dequantized(l, t, &v);
    if (c->st == OQ_OK)
        add_diff(&l->rep->out, ref, v, oq_tensor_numel(t));
    free(v);
}

/* Whether n reads a value a DequantizeLinear makes (an input quantized upstream). */
static bool producer_reads_dq(const oq_graph *qg, const oq_node *n)
{
    for (size_t k = 0; k < n->n_inputs; k++) {
        const oq_node *dq = NULL;
        if (n->inputs[k][0] && produces(qg, n->inputs[k], &dq) && dq && !strcmp(dq->op_type, "DequantizeLinear") &&
            !init_deep(qg, dq->inputs[0]))
            return true;
    }
    return false;
}

/* ref through l's QuantizeLinear and DequantizeLinear (round half to even), against ref. */
static oq_status add_fake_quant(const layer *l, const oq_tensor *ref, oq_diff_stats *st)
{
    int64_t n = oq_tensor_numel(ref);
    float *v = oq_malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (!v)
        return oq_error(OQ_E_NOMEM, "out of memory");
    const float *x = ref->data;
    for (int64_t i = 0; i < n; i++) {
        float q = nearbyintf(x[i] / l->scale) + (float)l->zp;
        q = q < (float)l->qmin ? (float)l->qmin : q > (float)l->qmax ? (float)l->qmax : q;
        v[i] = (q - (float)l->zp) * l->scale;
    }
    add_diff(st, ref, v, n);
    free(v);
    return OQ_OK;
}

/* ---- the run ---- */

oq_debug_options oq_debug_options_default(void)
{
    oq_debug_options o;
    memset(&o, 0, sizeof o);
    return o;
}

void oq_layer_reports_destroy(oq_layer_report *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++) {
        free(r[i].tensor);
        free(r[i].node);
        free(r[i].op_type);
    }
    free(r);
}

static int cmp_report(const void *a, const void *b)
{
    double x = oq_diff_stats_sqnr_db(&((const oq_layer_report *)a)->out);
    double y = oq_diff_stats_sqnr_db(&((const oq_layer_report *)b)->out);
    if (isnan(x))
        x = INFINITY;
    if (isnan(y))
        y = INFINITY;
    return x < y ? -1 : x > y;
}

static size_t count_q(const oq_graph *g)
{
    size_t c = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        c += !strcmp(g->nodes[i].op_type, "QuantizeLinear");
        for (size_t a = 0; a < g->nodes[i].n_attrs; a++) {
            if (g->nodes[i].attrs[a].g)
                c += count_q(g->nodes[i].attrs[a].g);
            for (size_t k = 0; k < g->nodes[i].attrs[a].n_graphs; k++)
                c += g->nodes[i].attrs[a].graphs[k] ? count_q(g->nodes[i].attrs[a].graphs[k]) : 0;
        }
    }
    return c;
}

/* The layers of qg (the main graph, or an If branch or Loop/Scan body when in_body;
 * in_loop: inside a Loop/Scan body), then those of the bodies of its nodes. */
static oq_status collect_graph(const oq_model *flt, const oq_model *q, const oq_graph *qg, bool in_body,
                               bool in_loop, debug_ctx *c)
{
    const oq_graph *fg = flt->graph;
    oq_status st = OQ_OK;
    for (size_t i = 0; st == OQ_OK && i < qg->n_nodes; i++) {
        const oq_node *qn = &qg->nodes[i];
        bool is_if = !strcmp(qn->op_type, "If") && oq_domain_is_default(qn->domain);
        for (size_t a = 0; st == OQ_OK && a < qn->n_attrs; a++) /* If branches; Loop, Scan bodies */
            if (qn->attrs[a].g)
                st = collect_graph(flt, q, qn->attrs[a].g, true, in_loop || !is_if, c);
        if (is_if)
            continue;
        if (strcmp(qn->op_type, "QuantizeLinear") || qn->n_inputs < 2 || init_deep(q->graph, qn->inputs[0]))
            continue;
        layer l;
        memset(&l, 0, sizeof l);
        l.x = qn->inputs[0];
        l.xq = qn->outputs[0];
        l.in_body = in_body;
        l.in_loop = in_loop;
        const oq_node *dq = first_reader(qg, l.xq, "DequantizeLinear", NULL), *by = NULL;
        l.ydq = dq ? dq->outputs[0] : NULL;
        const oq_tensor *s = init_deep(q->graph, qn->inputs[1]);
        const oq_tensor *z = qn->n_inputs > 2 && qn->inputs[2][0] ? init_deep(q->graph, qn->inputs[2]) : NULL;
        if (!s || oq_tensor_numel(s) != 1)
            continue; /* per-axis activations: not written by onnxq's quantizer */
        l.scale = scalar_f(s, 1);
        l.zp = (int32_t)scalar_f(z, 0);
        l.qmin = z && z->dtype == OQ_INT8 ? -128 : 0; /* no zero point: uint8 */
        l.qmax = z && z->dtype == OQ_INT8 ? 127 : 255;
        size_t r;
        if (produces_deep(fg, l.x, &by))
            l.ref = l.x;
        else if (l.ydq && produces_deep(fg, l.ydq, &by))
            l.ref = l.ydq; /* a graph output the quantizer renamed on its float side */
        else if (oq_strmap_get(&c->by_rescaled, l.x, &r) && produces_deep(fg, c->rescaled[r].from, &by)) {
            l.ref = c->rescaled[r].from; /* rescaled per channel: compared with the float value so divided */
            l.rescaled = &c->rescaled[r];
        } else {
            c->unmatched++;
            continue;
        }
        size_t seen;
        if (oq_strmap_get(&c->by_ref, l.ref, &seen) || oq_strmap_get(&c->by_xq, l.xq, &seen))
            continue;
        produces(qg, l.x, &l.producer);
        if (!l.producer && in_body)
            produces_deep(q->graph, l.x, &l.producer); /* an outer value read in the branch */
        c->layers[c->n] = l;
        st = oq_strmap_put(&c->by_ref, l.ref, c->n);
        if (st == OQ_OK)
            st = oq_strmap_put(&c->by_xq, l.xq, c->n);
        c->n++;
    }
    return st;
}

/* Frees what collect_layers made. */
static void drop_layers(debug_ctx *c)
{
    free(c->layers);
    oq_strmap_free(&c->by_ref);
    oq_strmap_free(&c->by_xq);
}

static oq_status collect_layers(const oq_model *flt, const oq_model *q, debug_ctx *c)
{
    size_t cap = count_q(q->graph);
    c->layers = oq_calloc(cap + 1, sizeof *c->layers);
    if (!c->layers)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = oq_strmap_init(&c->by_ref, cap + 1);
    if (st == OQ_OK)
        st = oq_strmap_init(&c->by_xq, cap + 1);
    if (st == OQ_OK)
        st = collect_graph(flt, q, q->graph, false, false, c);
    return st;
}

oq_status oq_debug_layers(const oq_model *flt, const oq_model *q, oq_data_reader *data, const oq_debug_options *opt,
                          oq_layer_report **out, size_t *n_out)
{
    if (!flt || !q || !data || !out || !n_out)
        return oq_error(OQ_E_INVALID_ARG, "oq_debug_layers: NULL argument");
    oq_debug_options o = opt ? *opt : oq_debug_options_default();
    debug_ctx c;
    memset(&c, 0, sizeof c);
    oq_model *prepared = NULL;
    const oq_model *ref = NULL;
    oq_session *fs = NULL, *qs = NULL;
    oq_layer_report *rep = NULL;
    oq_tensor **fo = NULL, **qo = NULL;
    quant_rescaled *rescaled = NULL;
    size_t n_rescaled = 0;
    /* the float model as the quantizer prepared it: BatchNorm folded into the weights, and the
     * values its cross-layer equalization rescaled under the new names the quantized model has */
    oq_status st = quant_prepare(flt, 1, 13, &prepared, NULL, NULL);
    if (st == OQ_OK)
        st = quant_rescaled_read(q, &rescaled, &n_rescaled);
    if (st == OQ_OK)
        st = oq_strmap_init(&c.by_rescaled, n_rescaled + 1);
    for (size_t i = 0; st == OQ_OK && i < n_rescaled; i++)
        st = oq_strmap_put(&c.by_rescaled, rescaled[i].to, i);
    c.rescaled = rescaled;
    /* compared with the prepared model, or with the model itself when that matches more of the
     * quantized model's tensors (a QDQ file from another tool, made without onnxq's preparation) */
    if (st == OQ_OK)
        st = collect_layers(prepared, q, &c);
    ref = prepared;
    if (st == OQ_OK && (c.unmatched || c.n == 0)) {
        debug_ctx alt;
        memset(&alt, 0, sizeof alt);
        alt.rescaled = c.rescaled;
        alt.by_rescaled = c.by_rescaled;
        if (collect_layers(flt, q, &alt) == OQ_OK && alt.n > c.n) {
            drop_layers(&c);
            c = alt; /* the same record of rescaled values, the other layers */
            ref = flt;
        } else {
            drop_layers(&alt);
        }
    }
    if (st == OQ_OK && c.n == 0)
        st = oq_error(OQ_E_INVALID_ARG,
                      "'%s' holds no QuantizeLinear of a float tensor that '%s' also computes: debug compares a QDQ "
                      "model with the float model it was made from",
                      q->path ? q->path : "quantized model", flt->path ? flt->path : "float model");
    if (st == OQ_OK && c.unmatched)
        oq_log(OQ_LOG_WARN,
               "debug: %zu quantized tensors have no value of the same name in the float model and are left out "
               "(values the quantizer rewrote, with no record of how)",
               c.unmatched);
    if (st == OQ_OK) {
        rep = oq_calloc(c.n, sizeof *rep);
        c.ref_vals = oq_calloc(c.n, sizeof *c.ref_vals);
        c.iter_vals = oq_calloc(c.n, sizeof *c.iter_vals);
        c.n_iter = oq_calloc(c.n, sizeof *c.n_iter);
        c.cap_iter = oq_calloc(c.n, sizeof *c.cap_iter);
        c.q_iter = oq_calloc(c.n, sizeof *c.q_iter);
        if (!rep || !c.ref_vals || !c.iter_vals || !c.n_iter || !c.cap_iter || !c.q_iter)
            st = oq_error(OQ_E_NOMEM, "out of memory");
    }
    oq_session_options so = oq_session_options_default();
    so.threads = o.threads;
    oq_session_options qso = so;
    qso.emulate_qdq = o.emulate;
    for (size_t i = 0; st == OQ_OK && i < c.n; i++) {
        layer *l = &c.layers[i];
        l->rep = &rep[i];
        oq_diff_stats_init(&rep[i].out);
        oq_diff_stats_init(&rep[i].own);
        rep[i].weight_sqnr_db = NAN;
        rep[i].tensor = oq_strdup(l->ref);
        rep[i].node = oq_strdup(l->producer ? (l->producer->name && l->producer->name[0] ? l->producer->name
                                                                                           : l->producer->op_type)
                                            : l->x);
        rep[i].op_type = oq_strdup(l->producer ? l->producer->op_type : "(graph input)");
        if (!rep[i].tensor || !rep[i].node || !rep[i].op_type)
            st = oq_error(OQ_E_NOMEM, "out of memory");
        if (st == OQ_OK && l->producer) {
            rep[i].weight_sqnr_db = node_weight_sqnr(&c, q->graph, l->producer, prepared->graph);
            if (!l->in_body)
                st = build_own(q, &c, l, &qso);
        }
    }
    if (st == OQ_OK)
        st = oq_session_create_observable(ref, &so, &fs); /* If branches unfused: their values are seen */
    /* observable: values keep their names and layout (no channels-last chains), Q outputs in bodies are seen */
    if (st == OQ_OK)
        st = oq_session_create_observable(q, &qso, &qs);
    size_t nfo = fs ? oq_session_output_count(fs) : 0, nqo = qs ? oq_session_output_count(qs) : 0;
    if (st == OQ_OK) {
        fo = oq_calloc(nfo + 1, sizeof *fo);
        qo = oq_calloc(nqo + 1, sizeof *qo);
        if (!fo || !qo)
            st = oq_error(OQ_E_NOMEM, "out of memory");
    }
    if (st == OQ_OK) {
        oq_session_set_observer(fs, observe_float, &c);
        oq_session_set_observer(qs, observe_quant, &c);
        st = oq_data_reader_rewind(data);
    }
    int64_t done = 0, total = oq_data_reader_sample_count(data);
    while (st == OQ_OK) {
        const oq_tensor *const *batch = NULL;
        st = oq_data_reader_next(data, &batch);
        if (st != OQ_OK || !batch)
            break;
        size_t n_in = oq_data_reader_input_count(data);
        /* a branch the float model does not take this batch leaves no value to compare with */
        for (size_t i = 0; i < c.n; i++) {
            oq_tensor_destroy(c.ref_vals[i]);
            c.ref_vals[i] = NULL;
            for (size_t k = 0; k < c.n_iter[i]; k++)
                oq_tensor_destroy(c.iter_vals[i][k]);
            c.n_iter[i] = c.q_iter[i] = 0;
        }
        /* graph inputs are no node's output: the observer does not see them */
        for (size_t k = 0; k < n_in && k < oq_session_input_count(fs); k++)
            observe_float(&c, oq_session_input(fs, k)->name, batch[k]);
        st = c.st;
        if (st == OQ_OK)
            st = oq_session_run(fs, batch, n_in, fo, nfo);
        if (st == OQ_OK)
            st = c.st;
        if (st == OQ_OK)
            st = oq_session_run(qs, batch, n_in, qo, nqo);
        if (st == OQ_OK)
            st = c.st;
        /* each layer alone, fed the float model's values */
        for (size_t i = 0; st == OQ_OK && i < c.n; i++) {
            layer *l = &c.layers[i];
            if (!l->producer) {
                rep[i].own = rep[i].out; /* the input's own error is its quantization */
                continue;
            }
            if (!l->own) {
                /* a float node whose output is quantized (no quantized input: nothing else of it runs
                 * in int8): its own error is that quantization of its float output */
                rep[i].float_node = !producer_reads_dq(q->graph, l->producer);
                if (!l->n_own_in && !l->in_body && c.ref_vals[i] && rep[i].float_node)
                    st = add_fake_quant(l, c.ref_vals[i], &rep[i].own);
                continue;
            }
            const oq_tensor *in[OQ_MAX_DIMS * 2];
            bool ok = true;
            for (size_t j = 0; j < l->n_own_in; j++)
                ok &= (in[j] = c.ref_vals[l->own_in[j]]) != NULL;
            oq_tensor *y = NULL;
            if (!ok || oq_session_run(l->own, in, l->n_own_in, &y, 1) != OQ_OK || !y) {
                oq_tensor_destroy(y);
                continue; /* shapes the layer alone cannot take: own stays n/a */
            }
            float *v = NULL;
            st = dequantized(l, y, &v);
            if (st == OQ_OK)
                add_diff(&rep[i].own, c.ref_vals[i], v, oq_tensor_numel(y));
            free(v);
            oq_tensor_destroy(y);
        }
        for (size_t k = 0; k < nfo; k++) {
            oq_tensor_destroy(fo[k]);
            fo[k] = NULL;
        }
        for (size_t k = 0; k < nqo; k++) {
            oq_tensor_destroy(qo[k]);
            qo[k] = NULL;
        }
        done += batch[0]->ndim > 0 ? batch[0]->dims[0] : 1;
        if (o.progress)
            o.progress(o.progress_user, done, total);
    }
    /* a layer the quantized session never showed (fused away under another name) has no result */
    size_t kept = 0;
    for (size_t i = 0; st == OQ_OK && i < c.n; i++) {
        if (rep[i].out.count == 0) {
            free(rep[i].tensor), free(rep[i].node), free(rep[i].op_type);
            continue;
        }
        rep[kept++] = rep[i];
    }
    if (st == OQ_OK)
        qsort(rep, kept, sizeof *rep, cmp_report);
    for (size_t i = 0; i < c.n; i++) {
        oq_session_destroy(c.layers[i].own);
        free(c.layers[i].own_in);
        if (c.ref_vals)
            oq_tensor_destroy(c.ref_vals[i]);
        for (size_t k = 0; c.iter_vals && k < c.n_iter[i]; k++)
            oq_tensor_destroy(c.iter_vals[i][k]);
        if (c.iter_vals)
            free(c.iter_vals[i]);
    }
    free(c.iter_vals);
    free(c.n_iter);
    free(c.cap_iter);
    free(c.q_iter);
    free(fo);
    free(qo);
    free(c.ref_vals);
    free(c.layers);
    oq_strmap_free(&c.by_ref);
    oq_strmap_free(&c.by_xq);
    oq_strmap_free(&c.by_rescaled);
    quant_rescaled_free(rescaled, n_rescaled);
    oq_session_destroy(fs);
    oq_session_destroy(qs);
    oq_model_destroy(prepared);
    if (st != OQ_OK) {
        oq_layer_reports_destroy(rep, st == OQ_OK ? kept : c.n);
        return st;
    }
    *out = rep;
    *n_out = kept;
    return OQ_OK;
}
