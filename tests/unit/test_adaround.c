/* Unit tests of adaptive rounding (quant/adaround.c): the greedy rounding of one channel against a
 * quadratic error (correlated inputs make rounding to nearest lose; every result is a local minimum
 * no single flip improves; the channel's limit holds), the patch statistics of a strided, padded,
 * grouped Conv checked against a direct convolution, and a quantized model whose two tiny weights on
 * one input repeated twice nearest rounding drops and adaptive rounding puts back. */
#include "passes/pass.h"
#include "quant/quant.h"
#include "test.h"
#include "test_graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double energy(const double *cov, const double *c, int64_t k, double scale, const int8_t *q)
{
    double e = 0;
    for (int64_t i = 0; i < k; i++) {
        for (int64_t j = 0; j < k; j++)
            e += scale * scale * q[i] * cov[i * k + j] * q[j];
        e -= 2 * scale * q[i] * c[i];
    }
    return e;
}

static unsigned rnd_state = 12345;
static double rnd(void)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (double)((rnd_state >> 8) & 0xffff) / 65536.0 - 0.5;
}

static void test_round_channel(void)
{
    /* two inputs that move together: w = 0.4 each rounds to 0 and 0 (error 0.8 x); one of them up
     * leaves 0.2 x */
    const double cov[4] = {1, 1, 1, 1};
    const float w[2] = {0.4f, 0.4f};
    double c[2] = {0.8, 0.8}, r[2];
    int8_t q[2];
    int64_t moved = ar_round_channel(cov, c, 2, 1.0, w, 127, q, r);
    CHECK(moved == 1 && q[0] + q[1] == 1);
    /* the limit: the level above is out of range, nothing moves */
    const float wl[2] = {2.4f, 2.4f};
    double cl[2] = {4.8, 4.8};
    CHECK(ar_round_channel(cov, cl, 2, 1.0, wl, 2, q, r) == 0 && q[0] == 2 && q[1] == 2);

    /* random problems: never worse than nearest, and no single flip within {floor, floor + 1} lowers
     * the result */
    enum { K = 12, M = 40 };
    double a[M * K], cv[K * K], cc[K], rr[K];
    float ww[K];
    int8_t qq[K], qn[K];
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < M * K; i++)
            a[i] = rnd() + (i % K == 0 ? 0 : 0.7 * a[i - 1]); /* correlated neighbours */
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++) {
                double s = 0;
                for (int m = 0; m < M; m++)
                    s += a[m * K + i] * a[m * K + j];
                cv[i * K + j] = s;
            }
        double scale = 0.1;
        for (int i = 0; i < K; i++)
            ww[i] = (float)(rnd() * 3);
        for (int i = 0; i < K; i++) {
            double s = 0;
            for (int j = 0; j < K; j++)
                s += cv[i * K + j] * ww[j];
            cc[i] = s; /* target: the float weights' own output */
        }
        ar_round_channel(cv, cc, K, scale, ww, 127, qq, rr);
        for (int i = 0; i < K; i++)
            qn[i] = (int8_t)nearbyint(ww[i] / scale);
        double e = energy(cv, cc, K, scale, qq);
        CHECK(e <= energy(cv, cc, K, scale, qn) + 1e-9);
        for (int i = 0; i < K; i++) {
            double lo = floor(ww[i] / scale);
            CHECK(qq[i] == lo || qq[i] == lo + 1);
            int8_t save = qq[i];
            qq[i] = (int8_t)(qq[i] == lo ? lo + 1 : lo);
            CHECK(energy(cv, cc, K, scale, qq) >= e - 1e-9);
            qq[i] = save;
        }
    }
}

/* Direct convolution: y[b, o, oy, ox] = bias[o] + sum over its group's inputs and taps. */
static void direct_conv(const ar_geom *g, const float *x, const float *w, const float *bias, int64_t batch, float *y)
{
    int64_t cin_g = g->cin / g->group, cout_g = g->cout / g->group;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t o = 0; o < g->cout; o++)
            for (int64_t oy = 0; oy < g->oh; oy++)
                for (int64_t ox = 0; ox < g->ow; ox++) {
                    double s = bias[o];
                    int64_t gi = o / cout_g;
                    for (int64_t ci = 0; ci < cin_g; ci++)
                        for (int64_t ky = 0; ky < g->kh; ky++)
                            for (int64_t kx = 0; kx < g->kw; kx++) {
                                int64_t iy = oy * g->sh - g->pt + ky * g->dh, ix = ox * g->sw - g->pl + kx * g->dw;
                                if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
                                    continue;
                                s += (double)w[((o * cin_g + ci) * g->kh + ky) * g->kw + kx] *
                                     x[((b * g->cin + gi * cin_g + ci) * g->h + iy) * g->w + ix];
                            }
                    y[((b * g->cout + o) * g->oh + oy) * g->ow + ox] = (float)s;
                }
}

/* With y the Conv's own output, sum(p y_o) = G w_o + b_o sum(p) and sum(y_o) = w_o . sum(p) + n b_o:
 * the patches the statistics took are the ones the convolution reads. */
static void test_stats(void)
{
    ar_geom g = {.cin = 4, .h = 7, .w = 9, .cout = 6, .group = 2, .kh = 3, .kw = 2, .sh = 2, .sw = 1,
                 .pt = 1, .pl = 1, .dh = 1, .dw = 2};
    int64_t pb = 0, pr = 1;
    g.oh = (g.h + g.pt + pb - g.dh * (g.kh - 1) - 1) / g.sh + 1;
    g.ow = (g.w + g.pl + pr - g.dw * (g.kw - 1) - 1) / g.sw + 1;
    enum { B = 3 };
    int64_t k = g.cin / g.group * g.kh * g.kw, nx = B * g.cin * g.h * g.w, ny = B * g.cout * g.oh * g.ow;
    float *x = malloc(sizeof *x * (size_t)nx), *y = malloc(sizeof *y * (size_t)ny);
    float *w = malloc(sizeof *w * (size_t)(g.cout * k)), bias[6];
    for (int64_t i = 0; i < nx; i++)
        x[i] = (float)rnd();
    for (int64_t i = 0; i < g.cout * k; i++)
        w[i] = (float)rnd();
    for (int i = 0; i < 6; i++)
        bias[i] = (float)rnd();
    direct_conv(&g, x, w, bias, B, y);
    for (int step = 1; step <= 3; step += 2) {
        ar_stats s;
        CHECK_OK(ar_stats_init(&s, &g, B));
        CHECK(s.k == k && s.step == 1);
        s.step = step; /* every third position too */
        ar_stats_add(&s, x, y, 1);
        ar_stats_add(&s, x + g.cin * g.h * g.w, y + g.cout * g.oh * g.ow, B - 1);
        CHECK(s.n == (B * g.oh * g.ow + step - 1) / step);
        int64_t cout_g = g.cout / g.group;
        for (int64_t o = 0; o < g.cout; o++) {
            const double *gram = s.gram + (o / cout_g) * k * k, *psum = s.psum + (o / cout_g) * k;
            double ys = (double)s.n * bias[o];
            for (int64_t a = 0; a < k; a++) {
                double v = bias[o] * psum[a];
                for (int64_t b = 0; b < k; b++)
                    v += (a <= b ? gram[a * k + b] : gram[b * k + a]) * w[o * k + b];
                CHECK_NEAR(s.cross[o * k + a], v, 1e-4 * (1 + fabs(v)));
                ys += w[o * k + a] * psum[a];
            }
            CHECK_NEAR(s.ysum[o], ys, 1e-4 * (1 + fabs(ys)));
        }
        ar_stats_free(&s);
    }
    free(x);
    free(y);
    free(w);
}

/* y = Conv1x1(x) with W = [1, 0.0039, 0.0039]: the weight step is 1/127 = 0.00787, so nearest rounding
 * makes both small weights 0 (0.0039 is 0.495 steps), and the output loses 0.0078 x1 (x2 = x1, an
 * input repeated). Adaptive rounding rounds exactly one of them up. */
static void test_model(void)
{
    oq_model *m = test_model_new();
    oq_graph *g = m->graph;
    test_add_value(g, false, "x", 2, (const int64_t[]){1, 3});
    test_add_value(g, true, "y", 2, (const int64_t[]){1, 1});
    g->inputs[0].ndim = g->outputs[0].ndim = 4;
    g->inputs[0].dims[0] = g->outputs[0].dims[0] = -1;
    g->inputs[0].dims[2] = g->inputs[0].dims[3] = g->outputs[0].dims[2] = g->outputs[0].dims[3] = 8;
    const float w[3] = {1.0f, 0.0039f, 0.0039f}, b[1] = {0.1f};
    test_add_init(g, "W", 4, (const int64_t[]){1, 3, 1, 1}, w);
    test_add_init(g, "b", 1, (const int64_t[]){1}, b);
    const char *in[3] = {"x", "W", "b"}, *out[1] = {"y"};
    CHECK_OK(oq_graph_add_node(g, "Conv", "", "conv", in, 3, out, 1, NULL));
    int64_t xd[4] = {8, 3, 8, 8};
    oq_tensor *x = NULL;
    CHECK_OK(oq_tensor_create(OQ_FLOAT, 4, xd, &x));
    for (int64_t n = 0; x && n < 8; n++)
        for (int64_t i = 0; i < 64; i++) {
            float *p = (float *)x->data + n * 192;
            p[i] = (float)rnd();
            p[64 + i] = p[128 + i] = (float)(2 * rnd());
        }
    const char *path = "/tmp/oq_test_adaround.npy";
    CHECK_OK(oq_npy_save(path, x));
    oq_data_reader *rd = NULL;
    CHECK_OK(oq_data_reader_open(path, m, NULL, &rd));
    oq_quant_options o = oq_quant_options_default();
    o.compact = 0;
    o.equalize_data = 0;
    int8_t got[2][3] = {{9, 9, 9}, {9, 9, 9}};
    for (int ar = 0; ar < 2 && rd; ar++) {
        oq_model *q = NULL;
        o.adaptive_rounding = ar;
        CHECK_OK(oq_quantize(m, &o, rd, &q));
        for (size_t i = 0; q && i < q->graph->n_initializers; i++) {
            const oq_tensor *t = q->graph->initializers[i];
            if (t->dtype == OQ_INT8 && oq_tensor_numel(t) == 3)
                memcpy(got[ar], t->data, 3);
        }
        oq_model_destroy(q);
    }
    printf("  int8 weights: nearest %d %d %d, adaptive %d %d %d\n", got[0][0], got[0][1], got[0][2], got[1][0],
           got[1][1], got[1][2]);
    CHECK(got[0][0] == 127 && got[0][1] == 0 && got[0][2] == 0);
    CHECK(got[1][0] == 127 && got[1][1] + got[1][2] == 1);
    o.bias_correction = 0; /* adaptive rounding is a step of it */
    oq_model *q = NULL;
    CHECK(rd && oq_quantize(m, &o, rd, &q) == OQ_E_INVALID_ARG && !q);
    oq_data_reader_destroy(rd);
    oq_tensor_destroy(x);
    oq_model_destroy(m);
    remove(path);
}

int main(void)
{
    test_round_channel();
    test_stats();
    test_model();
    return test_summary("test_adaround");
}
