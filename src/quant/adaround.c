/* quant/adaround: adaptive rounding of Conv weights (Nagel et al. 2020, "Up or Down? Adaptive Rounding
 * for Post-Training Quantization"), a step of bias correction. Rounding each weight to its nearest
 * int8 level minimizes the weight's own error, not the layer's output error: the errors of the weights
 * of one output channel meet in one sum, over inputs that are correlated. With x the layer's input as
 * the quantized model computes it (the layers before already rounded and corrected) and y the float
 * model's output for the same sample, each output channel's weights w = scale * q pick q per weight
 * among floor(w_f / scale) and the level above, to lower E(q) = sum over output positions of
 * (w . x_patch + b - y)^2 with b the best bias for that q (centered statistics): the rounding also
 * takes back part of the error the layer's input brings (AdaRound's asymmetric reconstruction).
 * E is quadratic, so one pass over the data that sums the Gram matrix of the input patches and their
 * products with y (per output channel) is all it needs; the rounding is then greedy coordinate descent
 * from round-to-nearest, each flip taken when it lowers E. Memory: a k x k matrix per group (k the
 * weights of one output channel), a k-vector per output channel. Layers with too few patches for their
 * k (a Conv on a [N, C, 1, 1] gate) keep nearest rounding: the fit would follow the calibration data. */
#include "quant/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* multiply-adds a layer's statistics may cost (patch positions are thinned to stay below) */
#define AR_BUDGET 1.5e9
enum {
    AR_MAX_K = 1024,            /* weights per output channel (a k x k Gram matrix per group) */
    AR_MIN_PATCHES_PER_WEIGHT = 16,
    AR_MAX_SWEEPS = 16,
};

void ar_stats_free(ar_stats *s)
{
    if (!s)
        return;
    free(s->gram);
    free(s->psum);
    free(s->cross);
    free(s->ysum);
    free(s->patch);
    memset(s, 0, sizeof *s);
}

static int64_t gcd64(int64_t a, int64_t b)
{
    while (b) {
        int64_t t = a % b;
        a = b, b = t;
    }
    return a;
}

oq_status ar_stats_init(ar_stats *s, const ar_geom *g, int64_t expected_samples)
{
    memset(s, 0, sizeof *s);
    s->g = *g;
    int64_t cin_g = g->cin / g->group, cout_g = g->cout / g->group;
    s->k = cin_g * g->kh * g->kw;
    int64_t k = s->k;
    if (!(s->gram = oq_calloc((size_t)(g->group * k * k), sizeof *s->gram)) ||
        !(s->psum = oq_calloc((size_t)(g->group * k), sizeof *s->psum)) ||
        !(s->cross = oq_calloc((size_t)(g->cout * k), sizeof *s->cross)) ||
        !(s->ysum = oq_calloc((size_t)g->cout, sizeof *s->ysum)) || !(s->patch = oq_malloc(sizeof *s->patch * (size_t)k))) {
        ar_stats_free(s);
        return oq_error(OQ_E_NOMEM, "out of memory");
    }
    /* every step-th output position (counted over the samples), step coprime with the row length
     * so the positions taken do not line up in a few columns */
    double per_pos = (double)g->group * ((double)k * (double)k / 2 + (double)cout_g * (double)k);
    double total = per_pos * (double)(g->oh * g->ow) * (double)(expected_samples > 0 ? expected_samples : 128);
    s->step = total > AR_BUDGET ? (int64_t)ceil(total / AR_BUDGET) : 1;
    while (s->step > 1 && gcd64(s->step, g->ow) != 1)
        s->step++;
    return OQ_OK;
}

void ar_stats_add(ar_stats *s, const float *x, const float *y, int64_t batch)
{
    const ar_geom *g = &s->g;
    int64_t cin_g = g->cin / g->group, cout_g = g->cout / g->group, k = s->k;
    double *p = s->patch;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t oy = 0; oy < g->oh; oy++)
            for (int64_t ox = 0; ox < g->ow; ox++) {
                if (s->counter++ % s->step)
                    continue;
                for (int64_t gi = 0; gi < g->group; gi++) {
                    int64_t i = 0;
                    for (int64_t ci = 0; ci < cin_g; ci++) {
                        const float *plane = x + ((b * g->cin + gi * cin_g + ci) * g->h) * g->w;
                        for (int64_t ky = 0; ky < g->kh; ky++) {
                            int64_t iy = oy * g->sh - g->pt + ky * g->dh;
                            for (int64_t kx = 0; kx < g->kw; kx++, i++) {
                                int64_t ix = ox * g->sw - g->pl + kx * g->dw;
                                p[i] = iy >= 0 && iy < g->h && ix >= 0 && ix < g->w ? plane[iy * g->w + ix] : 0.0;
                            }
                        }
                    }
                    double *gram = s->gram + gi * k * k, *psum = s->psum + gi * k;
                    for (int64_t a = 0; a < k; a++) {
                        double pa = p[a];
                        psum[a] += pa;
                        if (pa == 0)
                            continue; /* Relu outputs and padding: many zeros */
                        double *row = gram + a * k;
                        for (int64_t c = a; c < k; c++)
                            row[c] += pa * p[c];
                    }
                    for (int64_t co = 0; co < cout_g; co++) {
                        int64_t oc = gi * cout_g + co;
                        double yv = y[((b * g->cout + oc) * g->oh + oy) * g->ow + ox];
                        double *cr = s->cross + oc * k;
                        for (int64_t a = 0; a < k; a++)
                            cr[a] += p[a] * yv;
                        s->ysum[oc] += yv;
                    }
                }
                s->n++;
            }
}

int64_t ar_round_channel(const double *cov, const double *c, int64_t k, double scale, const float *w, int32_t qmax,
                         int8_t *q, double *r)
{
    for (int64_t i = 0; i < k; i++) {
        double v = nearbyint(w[i] / scale);
        q[i] = (int8_t)(v < -qmax ? -qmax : v > qmax ? qmax : v);
    }
    for (int64_t i = 0; i < k; i++) {
        double acc = 0;
        for (int64_t j = 0; j < k; j++)
            acc += cov[i * k + j] * q[j];
        r[i] = acc;
    }
    /* E(q) = scale^2 q.C.q - 2 scale q.c; a flip of q_i by d changes it by
     * scale^2 (2 d r_i + d^2 C_ii) - 2 scale d c_i, with r = C q kept up to date */
    for (int sweep = 0; sweep < AR_MAX_SWEEPS; sweep++) {
        int64_t flips = 0;
        for (int64_t i = 0; i < k; i++) {
            double t = w[i] / scale, lo = floor(t);
            int32_t alt = q[i] == (int32_t)lo ? (int32_t)lo + 1 : q[i] == (int32_t)lo + 1 ? (int32_t)lo : q[i];
            if (alt == q[i] || alt < -qmax || alt > qmax)
                continue;
            double d = alt - q[i], cii = cov[i * k + i];
            double de = scale * scale * (2 * d * r[i] + d * d * cii) - 2 * scale * d * c[i];
            if (!(de < -1e-12 * scale * scale * (cii > 0 ? cii : 0)))
                continue;
            q[i] = (int8_t)alt;
            for (int64_t j = 0; j < k; j++)
                r[j] += d * cov[j * k + i];
            flips++;
        }
        if (!flips)
            break;
    }
    int64_t moved = 0;
    for (int64_t i = 0; i < k; i++) {
        double v = nearbyint(w[i] / scale);
        moved += q[i] != (int8_t)(v < -qmax ? -qmax : v > qmax ? qmax : v);
    }
    return moved;
}

bool ar_enough(const ar_stats *s) { return s->n >= AR_MIN_PATCHES_PER_WEIGHT * s->k; }

int64_t ar_round_layer(const ar_stats *s, const float *w, const float *scale, int64_t nscale, int8_t *q,
                       oq_status *st)
{
    const ar_geom *g = &s->g;
    int64_t k = s->k, cout_g = g->cout / g->group, moved = 0;
    double *cov = oq_malloc(sizeof *cov * (size_t)(k * k)), *c = oq_malloc(sizeof *c * (size_t)k),
           *r = oq_malloc(sizeof *r * (size_t)k);
    *st = cov && c && r ? OQ_OK : oq_error(OQ_E_NOMEM, "out of memory");
    double n = (double)s->n;
    for (int64_t gi = 0; *st == OQ_OK && gi < g->group; gi++) {
        const double *gram = s->gram + gi * k * k, *psum = s->psum + gi * k;
        for (int64_t a = 0; a < k; a++)
            for (int64_t b = a; b < k; b++)
                cov[a * k + b] = cov[b * k + a] = gram[a * k + b] - psum[a] * psum[b] / n;
        for (int64_t co = 0; co < cout_g; co++) {
            int64_t oc = gi * cout_g + co;
            double sc = scale[nscale == 1 ? 0 : oc];
            if (!(sc > 0) || !isfinite(sc))
                continue;
            int32_t qmax = 0; /* the channel's own limit: its largest level as nearest rounding set it */
            for (int64_t a = 0; a < k; a++)
                qmax = abs(q[oc * k + a]) > qmax ? abs(q[oc * k + a]) : qmax;
            for (int64_t a = 0; a < k; a++)
                c[a] = s->cross[oc * k + a] - psum[a] * s->ysum[oc] / n;
            moved += ar_round_channel(cov, c, k, sc, w + oc * k, qmax, q + oc * k, r);
        }
    }
    free(cov);
    free(c);
    free(r);
    return moved;
}

/* The Conv's geometry from its attributes and the shapes; false when it is not a 2-D Conv this
 * handles (explicit or no padding). */
static bool conv_geom(const oq_node *n, const oq_tensor *w, const oq_tensor *x, ar_geom *g)
{
    if (w->ndim != 4 || x->ndim != 4 || strcmp(oq_node_attr_string(n, "auto_pad", "NOTSET"), "NOTSET"))
        return false;
    const int64_t *v = NULL;
    memset(g, 0, sizeof *g);
    g->cin = x->dims[1], g->h = x->dims[2], g->w = x->dims[3];
    g->cout = w->dims[0], g->kh = w->dims[2], g->kw = w->dims[3];
    g->group = oq_node_attr_int(n, "group", 1);
    g->sh = g->sw = g->dh = g->dw = 1;
    if (oq_node_attr_ints(n, "strides", &v) == 2)
        g->sh = v[0], g->sw = v[1];
    if (oq_node_attr_ints(n, "dilations", &v) == 2)
        g->dh = v[0], g->dw = v[1];
    int64_t pb = 0, pr = 0;
    if (oq_node_attr_ints(n, "pads", &v) == 4)
        g->pt = v[0], g->pl = v[1], pb = v[2], pr = v[3];
    if (g->group <= 0 || g->cin % g->group || g->cout % g->group || w->dims[1] != g->cin / g->group ||
        g->sh <= 0 || g->sw <= 0 || g->dh <= 0 || g->dw <= 0)
        return false;
    g->oh = (g->h + g->pt + pb - g->dh * (g->kh - 1) - 1) / g->sh + 1;
    g->ow = (g->w + g->pl + pr - g->dw * (g->kw - 1) - 1) / g->sw + 1;
    return g->oh > 0 && g->ow > 0 && w->dims[1] * g->kh * g->kw <= AR_MAX_K;
}

oq_status quant_adaround_conv(oq_model *qm, size_t ni, const oq_model *fmodel, const char *float_out, int threads,
                              int64_t max_samples, oq_data_reader *data, int64_t *moved)
{
    oq_graph *g = qm->graph;
    const oq_node *n = &g->nodes[ni];
    *moved = -1;
    /* the int8 weights behind their DequantizeLinear (symmetric: no zero point or 0), the float ones
     * in the float model's Conv writing float_out */
    size_t wi = oq_graph_producer(g, n->inputs[1]);
    if (wi == SIZE_MAX || strcmp(g->nodes[wi].op_type, "DequantizeLinear") || g->nodes[wi].n_inputs < 2)
        return OQ_OK;
    const oq_node *dq = &g->nodes[wi];
    oq_tensor *qw = oq_graph_initializer(g, dq->inputs[0]), *ws = oq_graph_initializer(g, dq->inputs[1]);
    const oq_tensor *zp = dq->n_inputs > 2 && dq->inputs[2][0] ? oq_graph_initializer(g, dq->inputs[2]) : NULL;
    if (!qw || !ws || qw->dtype != OQ_INT8 || ws->dtype != OQ_FLOAT || qw->ndim != 4 ||
        (oq_tensor_numel(ws) != 1 && oq_tensor_numel(ws) != qw->dims[0]))
        return OQ_OK;
    for (int64_t i = 0; zp && i < oq_tensor_numel(zp); i++)
        if (zp->dtype != OQ_INT8 || ((const int8_t *)zp->data)[i])
            return OQ_OK;
    const oq_graph *fg = fmodel->graph;
    const oq_tensor *fw = NULL;
    for (size_t i = 0; i < fg->n_nodes && !fw; i++)
        if (fg->nodes[i].n_outputs && !strcmp(fg->nodes[i].outputs[0], float_out) &&
            !strcmp(fg->nodes[i].op_type, "Conv") && fg->nodes[i].n_inputs >= 2)
            fw = oq_graph_initializer(fg, fg->nodes[i].inputs[1]);
    if (!fw || fw->dtype != OQ_FLOAT || fw->ndim != 4 || memcmp(fw->dims, qw->dims, sizeof *fw->dims * 4))
        return OQ_OK;

    /* one pass: the quantized model's input of the Conv, the float model's output */
    const char *qname = n->inputs[0];
    oq_session *qs = NULL, *fs = NULL;
    oq_model *qcopy = NULL, *fcopy = NULL;
    size_t qk = SIZE_MAX, fk = SIZE_MAX;
    oq_status st = quant_exposed_session(qm, &qname, 1, threads, &qcopy, &qs);
    if (st == OQ_OK)
        st = quant_exposed_session(fmodel, &float_out, 1, threads, &fcopy, &fs);
    if (st == OQ_OK) {
        qk = quant_session_output_index(qs, qname);
        fk = quant_session_output_index(fs, float_out);
        if (qk == SIZE_MAX || fk == SIZE_MAX)
            st = oq_error(OQ_E_INVALID_ARG, "adaptive rounding: value '%s' or '%s' not found", qname, float_out);
    }
    if (st == OQ_OK && (oq_session_input_count(qs) != oq_data_reader_input_count(data) ||
                        oq_session_input_count(fs) != oq_data_reader_input_count(data)))
        st = oq_error(OQ_E_INVALID_ARG, "the model takes %zu inputs but the calibration data has %zu",
                      oq_session_input_count(qs), oq_data_reader_input_count(data));
    size_t nq = qs ? oq_session_output_count(qs) : 0, nf = fs ? oq_session_output_count(fs) : 0;
    oq_tensor **qo = oq_calloc(nq + 1, sizeof *qo), **fo = oq_calloc(nf + 1, sizeof *fo);
    if (st == OQ_OK && (!qo || !fo))
        st = oq_error(OQ_E_NOMEM, "out of memory");
    if (st == OQ_OK)
        st = oq_data_reader_rewind(data);
    ar_stats s = {0};
    bool ok = true, init = false;
    int64_t seen = 0;
    size_t nin = oq_data_reader_input_count(data);
    while (st == OQ_OK && ok && (max_samples <= 0 || seen < max_samples)) {
        const oq_tensor *const *batch = NULL;
        if ((st = oq_data_reader_next(data, &batch)) != OQ_OK || !batch)
            break;
        seen += batch[0]->ndim > 0 ? batch[0]->dims[0] : 1;
        st = oq_session_run(qs, batch, nin, qo, nq);
        if (st == OQ_OK)
            st = oq_session_run(fs, batch, nin, fo, nf);
        if (st == OQ_OK) {
            const oq_tensor *x = qo[qk], *y = fo[fk];
            ar_geom geo;
            ok = x && y && x->dtype == OQ_FLOAT && y->dtype == OQ_FLOAT && x->data && y->data &&
                 conv_geom(n, fw, x, &geo) && y->ndim == 4 && y->dims[0] == x->dims[0] && y->dims[1] == geo.cout &&
                 y->dims[2] == geo.oh && y->dims[3] == geo.ow;
            if (ok && !init) {
                st = ar_stats_init(&s, &geo, max_samples);
                init = st == OQ_OK;
            } else if (ok) {
                ok = !memcmp(&geo, &s.g, sizeof geo);
            }
            if (ok && init)
                ar_stats_add(&s, x->data, y->data, x->dims[0]);
        }
        for (size_t k = 0; k < nq; k++)
            oq_tensor_destroy(qo[k]), qo[k] = NULL;
        for (size_t k = 0; k < nf; k++)
            oq_tensor_destroy(fo[k]), fo[k] = NULL;
    }
    free(qo);
    free(fo);
    oq_session_destroy(qs);
    oq_session_destroy(fs);
    oq_model_destroy(qcopy);
    oq_model_destroy(fcopy);
    if (st == OQ_OK && ok && init && ar_enough(&s))
        *moved = ar_round_layer(&s, fw->data, ws->data, oq_tensor_numel(ws), qw->data, &st);
    ar_stats_free(&s);
    return st;
}
