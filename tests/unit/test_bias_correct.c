/* Unit tests of empirical bias correction (quant/bias_correct.c): the per-channel sums, the
 * int32 bias shift (rounding, near-zero scales, saturation), and a one-Gemm model whose
 * corrected bias is computed here by hand from the quantized parameters and the data. */
#include "passes/pass.h"
#include "quant/quant.h"
#include "test.h"
#include "test_graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_accumulate(void)
{
    /* [outer 2, ch 3, inner 2] */
    const float x[12] = {1, 2, 3, 4, 5, 6, 10, 20, 30, 40, 50, 60};
    double sum[3] = {0, 0, 0};
    bc_accumulate(x, 2, 3, 2, sum);
    CHECK_NEAR(sum[0], 1 + 2 + 10 + 20, 0);
    CHECK_NEAR(sum[1], 3 + 4 + 30 + 40, 0);
    CHECK_NEAR(sum[2], 5 + 6 + 50 + 60, 0);
}

static void test_shift(void)
{
    int32_t b[4] = {10, -5, 0, 2147483600};
    const float s[4] = {0.5f, 0.25f, 1e-9f, 1.0f};
    const double d[4] = {1.0, -0.3, 1.0, 100.0};
    /* +2; -1.2 -> -1; 1e9 steps: skipped (weights ~0); saturates at INT32_MAX */
    int64_t moved = bc_shift_bias(b, s, 4, d, 4);
    CHECK(b[0] == 12 && b[1] == -6 && b[2] == 0 && b[3] == 2147483647);
    CHECK(moved == 2 + 1 + 47);
    int32_t c[2] = {0, 0};
    const float one[1] = {0.1f};
    const double e[2] = {0.26, -0.24}; /* one scale for every channel: 2.6 -> 3, -2.4 -> -2 */
    CHECK(bc_shift_bias(c, one, 1, e, 2) == 5 && c[0] == 3 && c[1] == -2);
    const double nan_d[1] = {NAN};
    CHECK(bc_shift_bias(c, one, 1, nan_d, 1) == 0 && c[0] == 3);
}

static const oq_tensor *init(const oq_model *m, const char *name)
{
    const oq_tensor *t = oq_graph_initializer(m->graph, name);
    CHECK(t != NULL);
    return t;
}

/* y = x W^T + b (Gemm, transB), y a graph output. W[0][1] = 0.003 is below half a weight step
 * (1/127) and becomes 0, while x[1] is always about 100: channel 0 of the int8 model is short of
 * about 0.3 on every sample, a mean error the correction must put back into the bias. */
static void test_gemm(void)
{
    oq_model *m = test_model_new();
    oq_graph *g = m->graph;
    test_add_value(g, false, "x", 2, (const int64_t[]){1, 2});
    test_add_value(g, true, "y", 2, (const int64_t[]){1, 2});
    const int64_t wd[2] = {2, 2}, bd[1] = {2};
    const float w[4] = {1.0f, 0.003f, 0.5f, -0.25f}, b[2] = {0.1f, 0.2f};
    test_add_init(g, "W", 2, wd, w);
    test_add_init(g, "b", 1, bd, b);
    const char *in[3] = {"x", "W", "b"}, *out[1] = {"y"};
    oq_node *gemm = NULL;
    CHECK_OK(oq_graph_add_node(g, "Gemm", "", "gemm", in, 3, out, 1, &gemm));
    if (gemm)
        CHECK_OK(oq_node_add_attr_int(gemm, "transB", 1));
    /* 16 samples */
    enum { N = 16 };
    int64_t xd[2] = {N, 2};
    oq_tensor *x = NULL;
    CHECK_OK(oq_tensor_create(OQ_FLOAT, 2, xd, &x));
    for (int i = 0; x && i < N; i++) {
        ((float *)x->data)[2 * i] = (float)i / 8.0f - 1.0f;
        ((float *)x->data)[2 * i + 1] = 100.0f + 0.01f * (float)i;
    }
    const char *path = "/tmp/oq_test_bias_correct.npy";
    CHECK_OK(oq_npy_save(path, x));
    oq_data_reader *r = NULL;
    CHECK_OK(oq_data_reader_open(path, m, NULL, &r));
    oq_quant_options o = oq_quant_options_default();
    o.calib.method = OQ_CALIB_MINMAX;
    o.compact = 0; /* the generated names (W_q, b_s, ...) are read back below */
    oq_model *q0 = NULL, *q1 = NULL;
    o.bias_correction = 0;
    if (r)
        CHECK_OK(oq_quantize(m, &o, r, &q0));
    o.bias_correction = 1;
    if (r)
        CHECK_OK(oq_quantize(m, &o, r, &q1));
    if (q0 && q1 && x) {
        /* by hand: the uncorrected int8 Gemm's mean output per channel, from its parameters */
        const oq_tensor *wq = init(q0, "W_q"), *ws = init(q0, "W_s"), *bq = init(q0, "b_q"), *bs = init(q0, "b_s"),
                        *xs = init(q0, "x_s"), *xz = init(q0, "x_zp"), *bq1 = init(q1, "b_q");
        if (wq && ws && bq && bs && xs && xz && bq1) {
            float sx = *(const float *)xs->data;
            int zx = *(const uint8_t *)xz->data;
            for (int c = 0; c < 2; c++) {
                double mf = 0, mq = 0;
                for (int i = 0; i < N; i++) {
                    const float *xi = (const float *)x->data + 2 * i;
                    double yq = ((const int32_t *)bq->data)[c] * (double)((const float *)bs->data)[c];
                    for (int k = 0; k < 2; k++) {
                        double xk = nearbyint(xi[k] / sx) + zx;
                        xk = (xk < 0 ? 0 : xk > 255 ? 255 : xk) - zx;
                        yq += (double)((const int8_t *)wq->data)[2 * c + k] * ((const float *)ws->data)[c] * xk * sx;
                    }
                    mq += yq / N;
                    mf += ((double)w[2 * c] * xi[0] + (double)w[2 * c + 1] * xi[1] + b[c]) / N;
                }
                int32_t expect = ((const int32_t *)bq->data)[c] +
                                 (int32_t)nearbyint((mf - mq) / ((const float *)bs->data)[c]);
                CHECK(abs(((const int32_t *)bq1->data)[c] - expect) <= 1); /* float sums in another order */
                if (c == 0)
                    CHECK(mf - mq > 0.25 && ((const int32_t *)bq1->data)[0] > ((const int32_t *)bq->data)[0]);
            }
        }
    }
    oq_model_destroy(q0);
    oq_model_destroy(q1);
    /* without data (a range table) there is nothing to correct with: no error */
    oq_calib_table *t = oq_calloc(1, sizeof *t);
    if (t) {
        CHECK_OK(calib_table_add(t, "x", -1, 100, -1, 100));
        CHECK_OK(calib_table_add(t, "y", -2, 2, -2, 2));
    }
    o.table = t;
    CHECK_OK(oq_quantize(m, &o, NULL, &q0));
    oq_model_destroy(q0);
    oq_calib_table_destroy(t);
    oq_data_reader_destroy(r);
    oq_tensor_destroy(x);
    oq_model_destroy(m);
    remove(path);
}

/* y = Conv 1x1 (one channel, weight 1) of Conv 1x1 (weight 1) of x [16, 1, 32, 32]: mostly small values
 * and a few large ones, which a 99th-percentile range clips between the two, so the int8 output varies
 * less than the float one. The gain correction
 * must raise the channel's weight scale (and its bias scale with it), bringing the spread back. */
static void test_gain(void)
{
    oq_model *m = test_model_new();
    oq_graph *g = m->graph;
    test_add_value(g, false, "x", 2, (const int64_t[]){1, 1});
    test_add_value(g, true, "y", 2, (const int64_t[]){1, 1});
    g->inputs[0].ndim = g->outputs[0].ndim = 4;
    g->inputs[0].dims[0] = g->outputs[0].dims[0] = -1;
    g->inputs[0].dims[2] = g->inputs[0].dims[3] = g->outputs[0].dims[2] = g->outputs[0].dims[3] = 32;
    const int64_t wd[4] = {1, 1, 1, 1}, bd[1] = {1};
    const float w[1] = {1.0f}, b[1] = {0.5f};
    test_add_init(g, "W", 4, wd, w);
    test_add_init(g, "b", 1, bd, b);
    const float w0[1] = {0.75f};
    test_add_init(g, "W0", 4, wd, w0);
    /* a Conv before it: the range of its output is the one the percentile clips */
    const char *in0[2] = {"x", "W0"}, *out0[1] = {"h"}, *in[3] = {"h", "W", "b"}, *out[1] = {"y"};
    CHECK_OK(oq_graph_add_node(g, "Conv", "", "conv0", in0, 2, out0, 1, NULL));
    CHECK_OK(oq_graph_add_node(g, "Conv", "", "conv", in, 3, out, 1, NULL));
    int64_t xd[4] = {16, 1, 32, 32};
    oq_tensor *x = NULL;
    CHECK_OK(oq_tensor_create(OQ_FLOAT, 4, xd, &x));
    unsigned r = 7;
    for (int64_t i = 0; x && i < oq_tensor_numel(x); i++) {
        r = r * 1103515245u + 12345u;
        double u = (double)((r >> 8) & 0xffff) / 65536.0 - 0.5;
        ((float *)x->data)[i] = (float)(i % 97 == 0 ? 4 * u : u); /* 1% of the values 4x wider */
    }
    const char *path = "/tmp/oq_test_bias_gain.npy";
    CHECK_OK(oq_npy_save(path, x));
    oq_data_reader *rd = NULL;
    CHECK_OK(oq_data_reader_open(path, m, NULL, &rd));
    oq_quant_options o = oq_quant_options_default();
    o.compact = 0;
    o.calib.method = OQ_CALIB_PERCENTILE;
    o.calib.percentile = 99.0;
    o.equalize_data = 0; /* the names below are the static rewrite's */
    oq_model *q0 = NULL, *q1 = NULL;
    o.bias_correction = 0;
    if (rd)
        CHECK_OK(oq_quantize(m, &o, rd, &q0));
    o.bias_correction = 1;
    if (rd)
        CHECK_OK(oq_quantize(m, &o, rd, &q1));
    if (q0 && q1) {
        /* (the preparation's cross-layer equalization renamed W: W_eq) */
        const oq_tensor *w0 = init(q0, "W_eq_s"), *w1 = init(q1, "W_eq_s"), *b0 = init(q0, "b_s"), *b1 = init(q1, "b_s");
        if (w0 && w1 && b0 && b1) {
            double g0 = ((const float *)w1->data)[0] / ((const float *)w0->data)[0];
            double g1 = ((const float *)b1->data)[0] / ((const float *)b0->data)[0];
            printf("  gain correction: weight scale x%.4f, bias scale x%.4f\n", g0, g1);
            CHECK(g0 > 1.01 && g0 <= 2 && fabs(g1 - g0) < 1e-5 * g0);
        }
    }
    oq_model_destroy(q0);
    oq_model_destroy(q1);
    oq_data_reader_destroy(rd);
    oq_tensor_destroy(x);
    oq_model_destroy(m);
    remove(path);
}

int main(void)
{
    test_gain();
    test_accumulate();
    test_shift();
    test_gemm();
    return test_summary("test_bias_correct");
}
