/* Unit tests of the data-driven equalization of Conv inputs (quant/equalize_data.c): a Conv after a
 * decomposed HardSwish and a scalar affine step, and one after a squeeze-and-excitation gate, get
 * their input channels balanced without changing the float model's outputs; a value read twice is
 * left alone; and the int8 model of the HardSwish chain comes closer to the float one with it. */
#include "eval/eval.h"
#include "passes/pass.h"
#include "quant/quant.h"
#include "runtime/exec.h"
#include "test.h"
#include "test_graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { N = 32, C = 3, H = 4, W = 4 };

/* x -> Conv A (channel gains 1, 12, 0.08) -> HardSwish as Add, Clip, Mul, Div -> then either a
 * scalar affine (Mul 0.5, Add 0.1) or a gate Mul(h, Sigmoid(GlobalAveragePool(h))) -> Conv B -> y.
 * shared: h is also a graph output (read twice: no equalization). */
static oq_model *model(bool gate, bool shared)
{
    oq_model *m = test_model_new();
    oq_graph *g = m->graph;
    test_add_value(g, false, "x", 4, (const int64_t[]){-1, C, H, W});
    test_add_value(g, true, "y", 4, (const int64_t[]){-1, 2, H, W});
    const int64_t wd[4] = {C, C, 1, 1}, bd[1] = {C}, wbd[4] = {2, C, 1, 1}, bbd[1] = {2}, one[1] = {1};
    const float wa[C * C] = {1, 0, 0, 0, 12, 0, 0, 0, 0.08f}, ba[C] = {0.1f, -0.5f, 0.02f};
    const float wb[2 * C] = {0.5f, 0.02f, 1.0f, -0.3f, 0.04f, 2.0f}, bb[2] = {0.1f, -0.2f};
    const float three = 3, zero = 0, six = 6, half = 0.5f, tenth = 0.1f;
    test_add_init(g, "WA", 4, wd, wa);
    test_add_init(g, "BA", 1, bd, ba);
    test_add_init(g, "WB", 4, wbd, wb);
    test_add_init(g, "BB", 1, bbd, bb);
    test_add_init(g, "three", 1, one, &three);
    test_add_init(g, "zero", 1, one, &zero);
    test_add_init(g, "six", 1, one, &six);
    test_add_init(g, "half", 1, one, &half);
    test_add_init(g, "tenth", 1, one, &tenth);
    const char *ca[3] = {"x", "WA", "BA"}, *oa[1] = {"a"};
    CHECK_OK(oq_graph_add_node(g, "Conv", "", "convA", ca, 3, oa, 1, NULL));
    test_node(g, "Add", "a", "three", NULL, "a3");
    const char *cl[3] = {"a3", "zero", "six"}, *ocl[1] = {"clip"};
    CHECK_OK(oq_graph_add_node(g, "Clip", "", "clip", cl, 3, ocl, 1, NULL));
    test_node(g, "Mul", "a", "clip", NULL, "am");
    test_node(g, "Div", "am", "six", NULL, "h");
    if (gate) {
        test_node(g, "GlobalAveragePool", "h", NULL, NULL, "gap");
        test_node(g, "Sigmoid", "gap", NULL, NULL, "s");
        test_node(g, "Mul", "h", "s", NULL, "hb");
    } else {
        test_node(g, "Mul", "h", "half", NULL, "hm");
        test_node(g, "Add", "hm", "tenth", NULL, "hb");
    }
    if (shared)
        test_add_value(g, true, "hb", 4, (const int64_t[]){-1, C, H, W});
    const char *cb[3] = {"hb", "WB", "BB"}, *ob[1] = {"y"};
    CHECK_OK(oq_graph_add_node(g, "Conv", "", "convB", cb, 3, ob, 1, NULL));
    return m;
}

static oq_tensor *data(void)
{
    int64_t d[4] = {N, C, H, W};
    oq_tensor *x = NULL;
    CHECK_OK(oq_tensor_create(OQ_FLOAT, 4, d, &x));
    unsigned s = 1;
    for (int64_t i = 0; x && i < oq_tensor_numel(x); i++) {
        s = s * 1103515245u + 12345u;
        ((float *)x->data)[i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
    return x;
}

/* y of m on x (the first output). */
static oq_tensor *run(const oq_model *m, const oq_tensor *x)
{
    oq_session *s = NULL;
    oq_session_options so = oq_session_options_default();
    so.threads = 1;
    oq_tensor *out[2] = {NULL, NULL};
    CHECK_OK(oq_session_create(m, &so, &s));
    if (s)
        CHECK_OK(oq_session_run(s, &x, 1, out, oq_session_output_count(s) > 1 ? 2 : 1));
    oq_session_destroy(s);
    oq_tensor_destroy(out[1]);
    return out[0];
}

typedef struct capture {
    const char *name;
    oq_tensor *t;
} capture;

static void on_value(void *user, const char *name, const oq_tensor *t)
{
    capture *c = user;
    if (!c->t && !strcmp(name, c->name))
        CHECK_OK(oq_tensor_clone(t, &c->t));
}

/* Value `name` of m on x (NULL if no node makes it). */
static oq_tensor *value_of(const oq_model *m, const oq_tensor *x, const char *name)
{
    oq_session *s = NULL;
    oq_session_options so = oq_session_options_default();
    so.threads = 1;
    oq_tensor *out[2] = {NULL, NULL};
    capture c = {name, NULL};
    CHECK_OK(oq_session_create_observable(m, &so, &s));
    if (s) {
        oq_session_set_observer(s, on_value, &c);
        CHECK_OK(oq_session_run(s, &x, 1, out, oq_session_output_count(s) > 1 ? 2 : 1));
    }
    oq_session_destroy(s);
    oq_tensor_destroy(out[0]);
    oq_tensor_destroy(out[1]);
    return c.t;
}

/* The metadata records every value the equalization renamed: each new value is its float value
 * divided per channel by the recorded divisors, which are bfloat16 numbers (what `onnxq debug`
 * relies on to compare them). */
static void check_records(const oq_model *m, const oq_model *e, const oq_tensor *x)
{
    quant_rescaled *r = NULL;
    size_t n = 0;
    CHECK_OK(quant_rescaled_read(e, &r, &n));
    CHECK(n >= 1);
    for (size_t i = 0; i < n; i++) {
        CHECK(r[i].axis == 1 && r[i].ch == C);
        CHECK(oq_graph_producer(m->graph, r[i].to) == SIZE_MAX && oq_graph_producer(e->graph, r[i].from) == SIZE_MAX);
        bool spread = false;
        for (int64_t c = 0; c < r[i].ch; c++) {
            CHECK(r[i].divisor[c] == (float)quant_round_bf16(r[i].divisor[c]) && r[i].divisor[c] != 0);
            spread |= fabsf(r[i].divisor[c]) < 0.9f;
        }
        CHECK(spread);
        oq_tensor *a = value_of(m, x, r[i].from), *b = value_of(e, x, r[i].to);
        CHECK(a && b && oq_tensor_numel(a) == oq_tensor_numel(b) && a->ndim == 4 && a->dims[1] == C);
        if (a && b && oq_tensor_numel(a) == oq_tensor_numel(b) && a->ndim == 4 && a->dims[1] == C) {
            int64_t inner = a->dims[2] * a->dims[3];
            double s = 0, err = 0;
            for (int64_t k = 0; k < oq_tensor_numel(a); k++) {
                double want = ((const float *)a->data)[k] / r[i].divisor[k / inner % C];
                double got = ((const float *)b->data)[k];
                s += want * want, err += (want - got) * (want - got);
            }
            CHECK(s > 0 && err <= s * 1e-10);
        }
        oq_tensor_destroy(a);
        oq_tensor_destroy(b);
    }
    quant_rescaled_free(r, n);
    /* a malformed record is skipped, not an error */
    oq_model *bad = NULL;
    CHECK_OK(oq_model_clone(e, &bad));
    for (size_t i = 0; bad && i < bad->n_metadata; i++)
        if (!strncmp(bad->metadata[i].key, "onnxq.rescaled.", 15))
            bad->metadata[i].value[strlen(bad->metadata[i].value) / 2] = '\x01';
    r = NULL, n = 99;
    if (bad)
        CHECK_OK(quant_rescaled_read(bad, &r, &n));
    quant_rescaled_free(r, n);
    oq_model_destroy(bad);
}

static double sqnr(const oq_tensor *a, const oq_tensor *b)
{
    double s = 0, e = 0;
    for (int64_t i = 0; i < oq_tensor_numel(a); i++) {
        double u = ((const float *)a->data)[i], v = ((const float *)b->data)[i];
        s += u * u, e += (u - v) * (u - v);
    }
    return 10 * log10(s / e);
}

/* A copy of m after the data-driven equalization on x (saved to path for the reader, then removed);
 * *done: the groups it rescaled. */
static oq_model *equalized(const oq_model *m, const oq_tensor *x, const char *path, size_t *done)
{
    oq_model *e = NULL;
    oq_data_reader *r = NULL;
    CHECK_OK(oq_npy_save(path, x));
    CHECK_OK(oq_data_reader_open(path, m, NULL, &r));
    CHECK_OK(oq_model_clone(m, &e));
    if (r && e)
        CHECK_OK(quant_equalize_inputs(e, 1, 0, r, done));
    oq_data_reader_destroy(r);
    remove(path);
    return e;
}

static void test_rewrite(bool gate, bool shared, const char *path)
{
    oq_model *m = model(gate, shared);
    oq_tensor *x = data(), *y0 = NULL, *y1 = NULL;
    size_t done = 99;
    oq_model *e = equalized(m, x, path, &done);
    CHECK(done == (shared ? 0u : 1u));
    if (e && !shared) {
        /* the Conv's weight is a new tensor; the gate got a Mul of its own, the chain's constants
         * became per-channel (the scalar Mul ends the chain: it is where the scale goes in, and the
         * Add after it follows): the largest over the smallest is well above 1 */
        CHECK(strcmp(e->graph->nodes[e->graph->n_nodes - 1].inputs[1], "WB") != 0);
        CHECK(test_count_op(e->graph, "Mul") == test_count_op(m->graph, "Mul") + (gate ? 1 : 0));
        for (size_t i = 0; !gate && i < e->graph->n_nodes; i++)
            if (!strcmp(e->graph->nodes[i].op_type, "Add") || (!strcmp(e->graph->nodes[i].op_type, "Mul") &&
                                                               !strcmp(e->graph->nodes[i].inputs[0], "h"))) {
                const oq_tensor *d = oq_graph_initializer(e->graph, e->graph->nodes[i].inputs[1]);
                if (d && !strcmp(d->name, "three"))
                    continue; /* the HardSwish's own Add */
                CHECK(d && oq_tensor_numel(d) == C);
                if (d && oq_tensor_numel(d) == C) {
                    const float *v = d->data;
                    float lo = fminf(v[0], fminf(v[1], v[2])), hi = fmaxf(v[0], fmaxf(v[1], v[2]));
                    CHECK(lo > 0 && hi / lo > 3);
                }
            }
    }
    if (e && x) {
        y0 = run(m, x);
        y1 = run(e, x);
        CHECK(y0 && y1 && sqnr(y0, y1) > 100); /* the same function */
        if (!shared)
            check_records(m, e, x);
    }
    oq_tensor_destroy(y0);
    oq_tensor_destroy(y1);
    oq_model_destroy(e);
    oq_tensor_destroy(x);
    oq_model_destroy(m);
}

/* The default recipe on the HardSwish chain, with and without the equalization. */
static void test_quantized(void)
{
    const char *path = "/tmp/oq_test_equalize_data_q.npy";
    oq_model *m = model(false, false), *q0 = NULL, *q1 = NULL;
    oq_tensor *x = data(), *yf = NULL, *y0 = NULL, *y1 = NULL;
    oq_data_reader *r = NULL;
    CHECK_OK(oq_npy_save(path, x));
    CHECK_OK(oq_data_reader_open(path, m, NULL, &r));
    oq_quant_options o = oq_quant_options_default();
    o.equalize_data = 0;
    if (r)
        CHECK_OK(oq_quantize(m, &o, r, &q0));
    o.equalize_data = 1;
    if (r)
        CHECK_OK(oq_quantize(m, &o, r, &q1));
    if (q0 && q1 && x) {
        yf = run(m, x), y0 = run(q0, x), y1 = run(q1, x);
        if (yf && y0 && y1) {
            double s0 = sqnr(yf, y0), s1 = sqnr(yf, y1);
            printf("  int8 output SQNR: %.1f dB without, %.1f dB with the equalization\n", s0, s1);
            CHECK(s1 > s0 + 3);
        }
        /* debug compares every activation of both, the rescaled ones through the record */
        for (int eq = 0; eq < 2; eq++) {
            const oq_model *q = eq ? q1 : q0;
            size_t acts = 0, n = 0;
            for (size_t i = 0; i < q->graph->n_nodes; i++)
                acts += !strcmp(q->graph->nodes[i].op_type, "QuantizeLinear") &&
                        !oq_graph_initializer(q->graph, q->graph->nodes[i].inputs[0]);
            oq_layer_report *rep = NULL;
            oq_debug_options dopt = oq_debug_options_default();
            dopt.threads = 1;
            CHECK_OK(oq_debug_layers(m, q, r, &dopt, &rep, &n));
            CHECK(acts >= 3 && n == acts);
            quant_rescaled *rs = NULL;
            size_t n_rs = 0, seen = 0, convs = 0;
            CHECK_OK(quant_rescaled_read(q, &rs, &n_rs));
            CHECK(eq ? n_rs > 0 : n_rs == 0);
            for (size_t i = 0; i < n; i++) {
                CHECK(rep[i].out.count > 0 && oq_diff_stats_sqnr_db(&rep[i].out) > (eq ? 30 : 15));
                /* every layer has an own error: a float node's is the quantization of its output */
                CHECK(rep[i].own.count > 0 && oq_diff_stats_sqnr_db(&rep[i].own) >= oq_diff_stats_sqnr_db(&rep[i].out) - 1);
                for (size_t k = 0; k < n_rs; k++)
                    seen += !strcmp(rep[i].tensor, rs[k].from);
                /* a Conv's weights, rescaled with its input, are taken back through the record */
                if (!strcmp(rep[i].op_type, "Conv")) {
                    convs++;
                    CHECK(rep[i].weight_sqnr_db > 35 && rep[i].weight_sqnr_db < 80);
                }
            }
            CHECK(!eq || seen > 0);
            CHECK(convs >= 1);
            quant_rescaled_free(rs, n_rs);
            oq_layer_reports_destroy(rep, n);
        }
    }
    oq_tensor_destroy(yf), oq_tensor_destroy(y0), oq_tensor_destroy(y1);
    oq_model_destroy(q0), oq_model_destroy(q1);
    oq_data_reader_destroy(r);
    oq_tensor_destroy(x);
    oq_model_destroy(m);
    remove(path);
}

/* x -> Conv A (1x1; channel 1 sits near -5) -> [Relu] -> Conv B (depthwise 3x3, pad 1) -> y; with
 * residual: x -> Conv A2 too, Add(A, A2) -> B. A linear group may flip channel 1 (k < 0), one with a
 * Relu may not; either way the function stays. */
static oq_model *linear_model(bool relu, bool residual)
{
    oq_model *m = test_model_new();
    oq_graph *g = m->graph;
    test_add_value(g, false, "x", 4, (const int64_t[]){-1, C, H, W});
    test_add_value(g, true, "y", 4, (const int64_t[]){-1, C, H, W});
    const int64_t wd[4] = {C, C, 1, 1}, bd[1] = {C}, dwd[4] = {C, 1, 3, 3};
    const float wa[C * C] = {1, 0.2f, 0, 0.1f, 0.3f, 0, 0, 0.1f, 2}, ba[C] = {0.1f, -5.0f, 0.3f};
    const float wa2[C * C] = {0.5f, 0, 0, 0, 0.2f, 0, 0, 0, 0.5f}, ba2[C] = {0, -1.0f, 0};
    float dw[C * 9];
    for (int i = 0; i < C * 9; i++)
        dw[i] = 0.1f * (float)((i * 7) % 11) - 0.4f;
    test_add_init(g, "WA", 4, wd, wa);
    test_add_init(g, "BA", 1, bd, ba);
    test_add_init(g, "WA2", 4, wd, wa2);
    test_add_init(g, "BA2", 1, bd, ba2);
    test_add_init(g, "WB", 4, dwd, dw);
    const char *ca[3] = {"x", "WA", "BA"}, *oa[1] = {"a"};
    CHECK_OK(oq_graph_add_node(g, "Conv", "", "convA", ca, 3, oa, 1, NULL));
    const char *in = "a";
    if (residual) {
        const char *c2[3] = {"x", "WA2", "BA2"}, *o2[1] = {"a2"};
        CHECK_OK(oq_graph_add_node(g, "Conv", "", "convA2", c2, 3, o2, 1, NULL));
        test_node(g, "Add", "a", "a2", NULL, "r");
        in = "r";
    }
    if (relu) {
        test_node(g, "Relu", in, NULL, NULL, "ar");
        in = "ar";
    }
    const char *cb[2] = {in, "WB"}, *ob[1] = {"y"};
    oq_node *b = NULL;
    CHECK_OK(oq_graph_add_node(g, "Conv", "", "convB", cb, 2, ob, 1, &b));
    if (b) {
        CHECK_OK(oq_node_add_attr_int(b, "group", C));
        CHECK_OK(oq_node_add_attr_string(b, "auto_pad", "SAME_UPPER")); /* zero padding: borders see 0, not -5 */
    }
    return m;
}

static void test_linear(bool relu, bool residual, const char *path)
{
    oq_model *m = linear_model(relu, residual);
    oq_tensor *x = data(), *y0 = NULL, *y1 = NULL;
    size_t done = 99;
    oq_model *e = equalized(m, x, path, &done);
    /* a group with a Relu between members is the preparation's cross-layer equalization's: left alone */
    CHECK(done == (relu ? 0u : 1u));
    for (size_t i = 0; e && i < e->graph->n_nodes; i++) {
        const oq_node *n = &e->graph->nodes[i];
        if (strcmp(n->name, "convA"))
            continue;
        /* channel 1 of A: always below 0, so flipped (a linear group may change signs) */
        const oq_tensor *b = oq_graph_initializer(e->graph, n->inputs[2]);
        CHECK(b && (relu ? strcmp(b->name, "BA") == 0 : strcmp(b->name, "BA") != 0));
        if (b)
            CHECK(relu ? ((const float *)b->data)[1] < 0 : ((const float *)b->data)[1] > 0);
    }
    if (e && x) {
        y0 = run(m, x);
        y1 = run(e, x);
        CHECK(y0 && y1 && sqnr(y0, y1) > 100);
    }
    oq_tensor_destroy(y0);
    oq_tensor_destroy(y1);
    oq_model_destroy(e);
    oq_tensor_destroy(x);
    oq_model_destroy(m);
}

int main(void)
{
    test_linear(false, false, "/tmp/oq_test_equalize_data_4.npy");
    test_linear(true, false, "/tmp/oq_test_equalize_data_5.npy");
    test_linear(false, true, "/tmp/oq_test_equalize_data_6.npy");
    test_rewrite(false, false, "/tmp/oq_test_equalize_data_1.npy");
    test_rewrite(true, false, "/tmp/oq_test_equalize_data_2.npy");
    test_rewrite(false, true, "/tmp/oq_test_equalize_data_3.npy");
    test_quantized();
    return test_summary("test_equalize_data");
}
