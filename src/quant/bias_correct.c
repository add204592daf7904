/* quant/bias_correct: empirical bias correction (Nagel et al. 2019, "Data-Free Quantization Through
 * Weight Equalization and Bias Correction", section 4.2; AIMET's empirical form). The errors of
 * quantized weights and activations do not average to zero per output channel, and the next layer,
 * an activation or a softmax turns such a shift into a wrong decision. After the static rewrite,
 * each Conv/Gemm whose bias became int32 moves that bias by the mean, per output channel, of
 * (float output - quantized output) over the calibration data. Where the weights are quantized per
 * output channel, the channel's gain is corrected too: its weight and bias scales are multiplied by
 * std(float output) / std(quantized output) (the rounded weights and clipped inputs shrink or grow
 * a channel as a whole), and the mean is then matched with that gain.
 *
 * The layers are corrected one after the other, in graph order, each measured on the quantized
 * model that carries the corrections made so far: a layer's mean error includes the error it
 * inherits from the layers before it, so correcting every layer from one measurement counts that
 * inherited error again in every later layer and overshoots (PaddleOCR's recognizer: 17 -> 8 dB
 * all at once, 17 -> 20 dB one by one). So one pass over the data per corrected layer, plus one
 * float pass; memory is one running sum per output channel, whatever the number of samples. Each
 * pass reads the first max_samples samples (128 by default): a per-channel mean settles long before
 * a large calibration set ends, and L layers cost L passes (MobileNetV2 has 52). With adaptive rounding
 * (adaround.c), each Conv's weights are rounded against its output error first, in the same order and
 * on the same corrected model, which costs one more pass per Conv. */
#include "quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- per-channel means of named values over the data ---- */

typedef struct chan_sums {
    double *sum;     /* per channel (axis 1) */
    double *sumsq;   /* of the squares */
    double *range;   /* smallest x per channel, then largest, when asked for (want_range) */
    bool want_range;
    int64_t nch;     /* channels; 0: not seen yet */
    int64_t count;   /* values summed per channel */
    int64_t inner;   /* values per channel of one sample (the last batch's) */
    bool bad;        /* shape changed between batches, or not float */
} chan_sums;

void bc_accumulate(const float *x, int64_t outer, int64_t ch, int64_t inner, double *sum)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < ch; c++) {
            const float *p = x + (o * ch + c) * inner;
            double s = 0;
            for (int64_t i = 0; i < inner; i++)
                s += p[i];
            sum[c] += s;
        }
}

void bc_accumulate_sq(const float *x, int64_t outer, int64_t ch, int64_t inner, double *sumsq)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < ch; c++) {
            const float *p = x + (o * ch + c) * inner;
            double s = 0;
            for (int64_t i = 0; i < inner; i++)
                s += (double)p[i] * p[i];
            sumsq[c] += s;
        }
}

void bc_range(const float *x, int64_t outer, int64_t ch, int64_t inner, double *lo, double *hi)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < ch; c++) {
            const float *p = x + (o * ch + c) * inner;
            float mn = (float)lo[c], mx = (float)hi[c];
            for (int64_t i = 0; i < inner; i++) {
                mn = p[i] < mn ? p[i] : mn; /* NaN is skipped */
                mx = p[i] > mx ? p[i] : mx;
            }
            lo[c] = mn, hi[c] = mx;
        }
}

static oq_status add_sums(chan_sums *cs, const oq_tensor *t)
{
    if (cs->bad)
        return OQ_OK;
    if (t->dtype != OQ_FLOAT || t->ndim < 2 || !t->data) {
        cs->bad = true;
        return OQ_OK;
    }
    int64_t ch = t->dims[1], inner = 1;
    for (int d = 2; d < t->ndim; d++)
        inner *= t->dims[d];
    if (cs->nch == 0) {
        if (ch <= 0)
            return cs->bad = true, OQ_OK;
        if (!(cs->sum = oq_calloc((size_t)ch, sizeof *cs->sum)) || !(cs->sumsq = oq_calloc((size_t)ch, sizeof *cs->sumsq)) ||
            (cs->want_range && !(cs->range = oq_malloc(2 * (size_t)ch * sizeof *cs->range))))
            return oq_error(OQ_E_NOMEM, "out of memory");
        for (int64_t c = 0; cs->range && c < ch; c++)
            cs->range[c] = INFINITY, cs->range[ch + c] = -INFINITY;
        cs->nch = ch;
    } else if (cs->nch != ch) {
        cs->bad = true;
        return OQ_OK;
    }
    bc_accumulate(t->data, t->dims[0], ch, inner, cs->sum);
    bc_accumulate_sq(t->data, t->dims[0], ch, inner, cs->sumsq);
    if (cs->range)
        bc_range(t->data, t->dims[0], ch, inner, cs->range, cs->range + ch);
    cs->count += t->dims[0] * inner;
    cs->inner = inner;
    return OQ_OK;
}

oq_status quant_exposed_session(const oq_model *m, const char *const *names, size_t n, int threads, oq_model **copy,
                                oq_session **session)
{
    oq_model *c = NULL;
    oq_session *s = NULL;
    oq_status st = oq_model_clone(m, &c);
    if (st == OQ_OK) {
        /* the named values are the only outputs, and only what computes them runs: a bias
         * correction pass for a layer near the input runs that much of the model */
        oq_graph *g = c->graph;
        for (size_t i = 0; i < g->n_outputs; i++)
            oq_value_info_clear(&g->outputs[i]);
        g->n_outputs = 0;
        oq_value_info *v = oq_realloc(g->outputs, sizeof *v * (n + 1));
        if (!v)
            st = oq_error(OQ_E_NOMEM, "out of memory");
        else
            g->outputs = v;
        for (size_t i = 0; st == OQ_OK && i < n; i++) {
            if (oq_graph_is_output(g, names[i]))
                continue;
            oq_value_info *o = &g->outputs[g->n_outputs];
            memset(o, 0, sizeof *o);
            o->dtype = OQ_FLOAT;
            o->ndim = -1;
            if (!(o->name = oq_strdup(names[i])))
                st = oq_error(OQ_E_NOMEM, "out of memory");
            else
                g->n_outputs++;
        }
        oq_pass_ctx ctx = {0};
        if (st == OQ_OK)
            st = pass_dead_nodes(c, g, &ctx);
    }
    oq_session_options so = oq_session_options_default();
    so.threads = threads;
    if (st == OQ_OK)
        st = oq_session_create(c, &so, &s);
    if (st != OQ_OK) {
        oq_model_destroy(c);
        return st;
    }
    *copy = c;
    *session = s;
    return OQ_OK;
}

size_t quant_session_output_index(const oq_session *s, const char *name)
{
    for (size_t k = 0; k < oq_session_output_count(s); k++)
        if (!strcmp(oq_session_output(s, k)->name, name))
            return k;
    return SIZE_MAX;
}

/* Runs m (a private copy with names exposed as outputs) over the data; sums[i] gets the
 * per-channel sums of names[i]. */
static oq_status channel_sums(const oq_model *m, const char *const *names, size_t n, int threads,
                              int64_t max_samples, oq_data_reader *data, chan_sums *sums)
{
    oq_model *copy = NULL;
    oq_session *s = NULL;
    oq_tensor **res = NULL;
    size_t *which = NULL, n_out = 0;
    oq_status st = quant_exposed_session(m, names, n, threads, &copy, &s);
    if (st == OQ_OK) {
        n_out = oq_session_output_count(s);
        res = oq_calloc(n_out + 1, sizeof *res);
        which = oq_calloc(n_out + 1, sizeof *which);
        if (!res || !which)
            st = oq_error(OQ_E_NOMEM, "out of memory");
        for (size_t k = 0; st == OQ_OK && k < n_out; k++) {
            which[k] = SIZE_MAX;
            for (size_t i = 0; i < n && which[k] == SIZE_MAX; i++)
                if (!strcmp(oq_session_output(s, k)->name, names[i]))
                    which[k] = i;
        }
    }
    if (st == OQ_OK && oq_session_input_count(s) != oq_data_reader_input_count(data))
        st = oq_error(OQ_E_INVALID_ARG, "the model takes %zu inputs but the calibration data has %zu",
                      oq_session_input_count(s), oq_data_reader_input_count(data));
    if (st == OQ_OK)
        st = oq_data_reader_rewind(data);
    int64_t seen = 0;
    while (st == OQ_OK && (max_samples <= 0 || seen < max_samples)) {
        const oq_tensor *const *batch = NULL;
        if ((st = oq_data_reader_next(data, &batch)) != OQ_OK || !batch)
            break;
        seen += batch[0]->ndim > 0 ? batch[0]->dims[0] : 1;
        st = oq_session_run(s, batch, oq_data_reader_input_count(data), res, n_out);
        for (size_t k = 0; k < n_out; k++) {
            if (st == OQ_OK && which[k] != SIZE_MAX)
                st = add_sums(&sums[which[k]], res[k]);
            oq_tensor_destroy(res[k]);
            res[k] = NULL;
        }
    }
    free(res);
    free(which);
    oq_session_destroy(s);
    oq_model_destroy(copy);
    return st;
}

oq_status quant_channel_range(const oq_model *m, const char *const *names, size_t n, int threads,
                              int64_t max_samples, oq_data_reader *data, double **range, int64_t *nch,
                              int64_t *inner)
{
    chan_sums *sums = oq_calloc(n + 1, sizeof *sums);
    if (!sums)
        return oq_error(OQ_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        sums[i].want_range = true;
    oq_status st = channel_sums(m, names, n, threads, max_samples, data, sums);
    for (size_t i = 0; i < n; i++) {
        bool ok = st == OQ_OK && !sums[i].bad && sums[i].range;
        range[i] = ok ? sums[i].range : NULL;
        nch[i] = ok ? sums[i].nch : 0;
        inner[i] = ok ? sums[i].inner : 0;
        if (!ok)
            free(sums[i].range);
        free(sums[i].sum);
        free(sums[i].sumsq);
    }
    free(sums);
    return st;
}

/* ---- the float side: every Conv/Gemm output of the prepared model ---- */

struct quant_bias_means {
    oq_model *model; /* the float model, kept for adaptive rounding (else NULL) */
    char **names;   /* Conv/Gemm outputs (pre-activation) */
    char **aliases; /* the output of the Relu/Clip reading it alone (a folded activation's name), or NULL */
    chan_sums *sums;
    size_t n;
};

void quant_bias_means_destroy(quant_bias_means *fm)
{
    if (!fm)
        return;
    oq_model_destroy(fm->model);
    for (size_t i = 0; i < fm->n; i++) {
        free(fm->names[i]);
        free(fm->aliases[i]);
        free(fm->sums[i].sum);
        free(fm->sums[i].sumsq);
    }
    free(fm->names);
    free(fm->aliases);
    free(fm->sums);
    free(fm);
}

static bool corrected_op(const oq_node *n)
{
    return oq_domain_is_default(n->domain) && (!strcmp(n->op_type, "Conv") || !strcmp(n->op_type, "Gemm")) &&
           n->n_outputs >= 1 && n->outputs[0][0];
}

oq_status quant_bias_float_means(const oq_model *prep, int threads, int64_t max_samples, oq_data_reader *data,
                                 bool keep_model, quant_bias_means **out)
{
    const oq_graph *g = prep->graph;
    quant_bias_means *fm = oq_calloc(1, sizeof *fm);
    oq_status st = fm ? OQ_OK : oq_error(OQ_E_NOMEM, "out of memory");
    if (st == OQ_OK && (!(fm->names = oq_calloc(g->n_nodes + 1, sizeof *fm->names)) ||
                        !(fm->aliases = oq_calloc(g->n_nodes + 1, sizeof *fm->aliases)) ||
                        !(fm->sums = oq_calloc(g->n_nodes + 1, sizeof *fm->sums))))
        st = oq_error(OQ_E_NOMEM, "out of memory");
    for (size_t i = 0; st == OQ_OK && i < g->n_nodes; i++) {
        const oq_node *n = &g->nodes[i];
        if (!corrected_op(n))
            continue;
        size_t r = oq_graph_single_reader(g, n->outputs[0]);
        const oq_node *rn = r != SIZE_MAX ? &g->nodes[r] : NULL;
        bool act = rn && oq_domain_is_default(rn->domain) && (!strcmp(rn->op_type, "Relu") ||
                                                               !strcmp(rn->op_type, "Clip")) && rn->n_outputs;
        if (!(fm->names[fm->n] = oq_strdup(n->outputs[0])) || (act && !(fm->aliases[fm->n] = oq_strdup(rn->outputs[0]))))
            st = oq_error(OQ_E_NOMEM, "out of memory");
        fm->n++;
    }
    if (st == OQ_OK && keep_model)
        st = oq_model_clone(prep, &fm->model);
    if (st == OQ_OK && fm->n)
        st = channel_sums(prep, (const char *const *)fm->names, fm->n, threads, max_samples, data, fm->sums);
    if (st != OQ_OK) {
        quant_bias_means_destroy(fm);
        return oq_error_context(st, "bias correction (float pass)");
    }
    *out = fm;
    return OQ_OK;
}

/* The float entry for the quantized model's value `name` (its Conv/Gemm's output). */
static size_t float_index(const quant_bias_means *fm, const oq_graph *g, const char *name)
{
    for (int hop = 0; hop < 2 && name; hop++) {
        for (size_t i = 0; i < fm->n; i++)
            if (!strcmp(fm->names[i], name) || (fm->aliases[i] && !strcmp(fm->aliases[i], name)))
                return i;
        /* a graph output keeps its name on the DequantizeLinear; the producer writes another:
         * follow QuantizeLinear -> DequantizeLinear */
        size_t qi = oq_graph_single_reader(g, name), di;
        if (qi == SIZE_MAX || strcmp(g->nodes[qi].op_type, "QuantizeLinear") || !g->nodes[qi].n_outputs ||
            (di = oq_graph_single_reader(g, g->nodes[qi].outputs[0])) == SIZE_MAX ||
            strcmp(g->nodes[di].op_type, "DequantizeLinear") || !g->nodes[di].n_outputs)
            return SIZE_MAX;
        name = g->nodes[di].outputs[0];
    }
    return SIZE_MAX;
}

int64_t bc_shift_bias(int32_t *bias, const float *scale, int64_t nscale, const double *diff, int64_t nch)
{
    int64_t moved = 0;
    for (int64_t c = 0; c < nch; c++) {
        double s = scale[nscale == 1 ? 0 : c], k = s > 0 ? nearbyint(diff[c] / s) : 0;
        /* a channel whose weights are (nearly) all zero has a scale near 0: its mean error says
         * nothing a bias of that scale could fix */
        if (!isfinite(k) || fabs(k) > (double)(1 << 24))
            continue;
        double v = (double)bias[c] + k;
        v = v < -2147483647.0 ? -2147483647.0 : v > 2147483647.0 ? 2147483647.0 : v;
        moved += (int64_t)fabs(v - bias[c]);
        bias[c] = (int32_t)v;
    }
    return moved;
}

/* ---- the correction ---- */

enum { GAIN_MIN_COUNT = 4096 }; /* values per channel a gain correction needs */

oq_status quant_bias_correct(quant_ctx *q, const quant_bias_means *fm, int threads, int64_t max_samples,
                             oq_data_reader *data)
{
    oq_graph *g = q->m->graph;
    size_t done = 0, layers = 0, rounded = 0;
    int64_t moved = 0, rounded_moved = 0;
    oq_status st = OQ_OK;
    for (size_t i = 0; st == OQ_OK && i < g->n_nodes; i++) {
        const oq_node *n = &g->nodes[i];
        if (!corrected_op(n) || n->n_inputs < 3 || !n->inputs[2][0])
            continue;
        size_t di = oq_graph_producer(g, n->inputs[2]);
        if (di == SIZE_MAX || strcmp(g->nodes[di].op_type, "DequantizeLinear") || g->nodes[di].n_inputs < 2)
            continue;
        oq_tensor *b = oq_graph_initializer(g, g->nodes[di].inputs[0]);
        oq_tensor *sc = oq_graph_initializer(g, g->nodes[di].inputs[1]);
        size_t fi = float_index(fm, g, n->outputs[0]);
        const chan_sums *f = fi != SIZE_MAX ? &fm->sums[fi] : NULL;
        if (!b || !sc || b->dtype != OQ_INT32 || b->ndim != 1 || sc->dtype != OQ_FLOAT || !f || f->bad ||
            f->nch != b->dims[0] || f->count <= 0 || (oq_tensor_numel(sc) != 1 && oq_tensor_numel(sc) != f->nch))
            continue;
        layers++;
        if (fm->model && !strcmp(n->op_type, "Conv")) {
            int64_t m = -1;
            st = quant_adaround_conv(q->m, i, fm->model, fm->names[fi], threads, max_samples, data, &m);
            n = &g->nodes[i];
            if (st == OQ_OK && m >= 0)
                rounded++, rounded_moved += m;
        }
        const char *name = n->outputs[0];
        chan_sums qs = {0};
        if (st == OQ_OK)
            st = channel_sums(q->m, &name, 1, threads, max_samples, data, &qs);
        if (st == OQ_OK && !qs.bad && qs.nch == f->nch && qs.count > 0) {
            double *diff = oq_malloc(sizeof *diff * (size_t)f->nch);
            if (!diff) {
                st = oq_error(OQ_E_NOMEM, "out of memory");
            } else {
                /* the weight scales, when per channel: each output channel's gain can move too */
                size_t wi = oq_graph_producer(g, n->inputs[1]);
                oq_tensor *ws = wi != SIZE_MAX && !strcmp(g->nodes[wi].op_type, "DequantizeLinear") &&
                                        g->nodes[wi].n_inputs >= 2
                                    ? oq_graph_initializer(g, g->nodes[wi].inputs[1])
                                    : NULL;
                /* a variance from few values per channel (a Gemm's output: one a sample) is too rough
                 * to move a gain by: its relative error is about sqrt(2 / count) */
                bool gain = ws && ws->dtype == OQ_FLOAT && oq_tensor_numel(ws) == f->nch &&
                            oq_tensor_numel(sc) == f->nch && f->count >= GAIN_MIN_COUNT && qs.count >= GAIN_MIN_COUNT;
                for (int64_t c = 0; c < f->nch; c++) {
                    double mf = f->sum[c] / (double)f->count, mq = qs.sum[c] / (double)qs.count;
                    double a = 1;
                    if (gain) {
                        double vf = f->sumsq[c] / (double)f->count - mf * mf;
                        double vq = qs.sumsq[c] / (double)qs.count - mq * mq;
                        a = vf > 0 && vq > 0 ? sqrt(vf / vq) : 1;
                        a = isfinite(a) ? fmin(fmax(a, 0.5), 2.0) : 1;
                        ((float *)ws->data)[c] = (float)(((float *)ws->data)[c] * a);
                        ((float *)sc->data)[c] = (float)(((float *)sc->data)[c] * a);
                    }
                    diff[c] = mf - a * mq;
                }
                moved += bc_shift_bias(b->data, sc->data, oq_tensor_numel(sc), diff, f->nch);
                done++;
                free(diff);
            }
        }
        free(qs.sum);
        free(qs.sumsq);
        if (st != OQ_OK) {
            char lb[200];
            st = oq_error_context(st, "bias correction of node '%s'", oq_node_label(n, lb, sizeof lb));
        }
    }
    if (st == OQ_OK && layers)
        quant_report(q, "bias correction: %zu of %zu Conv/Gemm biases corrected (one pass over the calibration data "
                     "each), %lld steps moved in all", done, layers, (long long)moved);
    if (st == OQ_OK && fm->model)
        quant_report(q, "adaptive rounding: %zu Conv layers rounded against their output error (one more pass "
                     "each), %lld weights moved off nearest", rounded, (long long)rounded_moved);
    return st;
}
