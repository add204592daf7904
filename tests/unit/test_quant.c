/* Unit tests of the quantizer: JSON reader, globs and rules, quantization
 * parameters, weight/bias quantization, histogram observers (memory fixed,
 * thresholds), the calibration data reader (.npy split/batched, .npz stored),
 * and static/dynamic quantization of the Fashion-MNIST fixtures. */
#include "passes/pass.h"
#include "quant/quant.h"
#include "test.h"
#include "test_graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_json(void)
{
    json_value v;
    const char *t = "{\"a\": [1, 2.5e1, true, null], \"b\": {\"c\": \"x\\\"y\"}}";
    CHECK_OK(json_parse(t, strlen(t), "t", &v));
    const json_value *a = json_get(&v, "a");
    CHECK(a && a->type == JSON_ARRAY && a->n == 4 && a->items[1].num == 25 && a->items[2].type == JSON_BOOL);
    const json_value *c = json_get(json_get(&v, "b"), "c");
    CHECK(c && c->type == JSON_STRING && !strcmp(c->str, "x\"y"));
    json_free(&v);
    const char *bad[] = {"{", "{\"a\" 1}", "[1,]x", "\"abc", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(json_parse(bad[i], strlen(bad[i]), "bad", &v) == OQ_E_PARSE);
    }
}

static void test_glob_rules(void)
{
    CHECK(quant_glob("layer*.conv?", "layer3.conv1"));
    CHECK(!quant_glob("layer*.conv?", "layer3.conv12"));
    CHECK(quant_glob("*", ""));
    oq_quant_options o = oq_quant_options_default();
    o.exclude = "fc,blk.*";
    const char *path = "/tmp/oq_test_rules.json";
    FILE *f = fopen(path, "w");
    fputs("{\"op_types\": {\"Gemm\": {\"per_channel\": false}}, \"nodes\": {\"c*\": {\"reduce_range\": true}}}", f);
    fclose(f);
    o.rules_path = path;
    quant_rules *r = NULL;
    CHECK_OK(quant_rules_create(&o, &r));
    oq_node n = {0};
    n.op_type = "Gemm", n.name = "g1", n.domain = "";
    quant_rule q = quant_rules_for(r, &n);
    CHECK(q.quantize && !q.per_channel && !q.reduce_range);
    n.op_type = "Conv", n.name = "c1";
    q = quant_rules_for(r, &n);
    CHECK(q.quantize && q.per_channel && q.reduce_range);
    n.name = "blk.3";
    CHECK(!quant_rules_for(r, &n).quantize);
    n.op_type = "Softmax";
    n.name = "s";
    CHECK(!quant_rules_for(r, &n).quantize);
    quant_rules_destroy(r);
    f = fopen(path, "w");
    fputs("{\"nodes\": {\"x\": {\"per_chanel\": false}}}", f);
    fclose(f);
    CHECK(quant_rules_create(&o, &r) == OQ_E_PARSE);
    CHECK(strstr(oq_last_error(), "per_chanel") != NULL);
    remove(path);
}

/* Range tables from elsewhere: numbers outside what they convert to are errors. */
static void test_calib_table_load_errors(void)
{
    static const char *const bad[] = {
        "{\"samples\": 1e300, \"tensors\": {}}",
        "{\"samples\": -1, \"tensors\": {}}",
        "{\"tensors\": {\"x\": {\"min\": -1e39, \"max\": 1}}}",
        "{\"tensors\": {\"x\": {\"min\": 0, \"max\": 1, \"seen_max\": 1e308}}}",
    };
    const char *path = "/tmp/oq_test_table_bad.json";
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        FILE *f = fopen(path, "w");
        fputs(bad[i], f);
        fclose(f);
        oq_calib_table *t = NULL;
        CHECK(oq_calib_table_load(path, &t) == OQ_E_PARSE && !t);
        CHECK(strstr(oq_last_error(), path) != NULL);
    }
    FILE *f = fopen(path, "w");
    fputs("{\"samples\": 64, \"tensors\": {\"x\": {\"min\": -3.4e38, \"max\": 2}}}", f);
    fclose(f);
    oq_calib_table *t = NULL;
    float lo = 0, hi = 0;
    CHECK_OK(oq_calib_table_load(path, &t));
    CHECK(t && oq_calib_table_get(t, "x", &lo, &hi) && lo == -3.4e38f && hi == 2);
    oq_calib_table_destroy(t);
    remove(path);
}

static void test_qparams(void)
{
    qparams p = qparams_activation(0, 2.55f, OQ_UINT8, 0);
    CHECK_NEAR(p.scale, 0.01, 1e-7);
    CHECK(p.zero_point == 0);
    p = qparams_activation(-1, 1, OQ_UINT8, 0);
    CHECK(p.zero_point == 127 || p.zero_point == 128);
    p = qparams_activation(1, 2, OQ_INT8, 0); /* range widened to include 0 */
    CHECK(p.zero_point == -128);
    p = qparams_activation(-3, 1, OQ_INT8, 1);
    CHECK(p.zero_point == 0 && fabs(p.scale - 3 / 127.0) < 1e-7);
    p = qparams_activation(0, 0, OQ_UINT8, 0);
    CHECK(p.scale == 1.0f);
}

static void test_weights(void)
{
    int64_t dims[2] = {2, 3};
    oq_tensor *w = NULL, *q = NULL, *s = NULL, *z = NULL, *b = NULL, *bq = NULL, *bs = NULL;
    CHECK_OK(oq_tensor_create(OQ_FLOAT, 2, dims, &w));
    float v[6] = {1, -2, 0.5f, 0.01f, 0.02f, -0.04f};
    memcpy(w->data, v, sizeof v);
    CHECK_OK(quantize_weight(w, 0, OQ_INT8, 0, &q, &s, &z));
    const int8_t *qd = q->data;
    CHECK(qd[1] == -127 && qd[5] == -127 && qd[0] == 64); /* 63.5 rounds half to even */
    CHECK_NEAR(((float *)s->data)[1], 0.04 / 127, 1e-9);
    CHECK(weight_sqnr(w, q, s, z, 0) > 40);
    int64_t n = 2;
    CHECK_OK(oq_tensor_create(OQ_FLOAT, 1, &n, &b));
    ((float *)b->data)[0] = 1.0f, ((float *)b->data)[1] = -0.5f;
    CHECK_OK(quantize_bias(b, 0.5f, s, &bq, &bs));
    CHECK(((int32_t *)bq->data)[0] == (int32_t)nearbyint(1.0 / (0.5 * 2 / 127.0)));
    oq_tensor_destroy(q), oq_tensor_destroy(s), oq_tensor_destroy(z);
    /* reduce range: 7 bits; per tensor: scalar scale */
    CHECK_OK(quantize_weight(w, -1, OQ_INT8, 1, &q, &s, &z));
    CHECK(s->ndim == 0 && ((int8_t *)q->data)[1] == -63);
    oq_tensor_destroy(q), oq_tensor_destroy(s), oq_tensor_destroy(z);
    CHECK_OK(quantize_weight(w, 1, OQ_UINT8, 0, &q, &s, &z));
    CHECK(z->dtype == OQ_UINT8 && z->dims[0] == 3);
    oq_tensor_destroy(q), oq_tensor_destroy(s), oq_tensor_destroy(z);
    oq_tensor_destroy(w), oq_tensor_destroy(b), oq_tensor_destroy(bq), oq_tensor_destroy(bs);
}

/* A long batch (the blocked, vectorized path: bin 0 counted apart, the rest packed)
 * bins every value as the plain rule does: mostly zeros as after a Relu, negatives,
 * values near 0, NaN, a length that is no multiple of the blocks. */
static void test_histogram_long(void)
{
    oq_calib_options o = oq_calib_options_default();
    o.method = OQ_CALIB_MSE;
    oq_observer ob;
    CHECK_OK(oq_observer_init(&ob, &o));
    enum { N = 3 * 4096 + 1037 };
    static float x[N];
    for (int i = 0; i < N; i++)
        x[i] = i % 3 ? 0.0f : (float)((i * 7919) % 2001 - 1000) / 97.0f;
    x[5] = NAN, x[7] = NAN, x[13] = 1e-30f, x[17] = -0.0f; /* (an infinite range skips the histogram) */
    oq_observer_update(&ob, x, N, 0.01);
    /* the reference, with the range the observer chose */
    double *want = calloc((size_t)ob.nbins, sizeof *want);
    const float k = (float)(ob.nbins / ob.hmax);
    const int last = ob.nbins - 1;
    for (int i = 0; want && i < N; i++) {
        float a = fabsf(x[i]) * k;
        want[a < (float)last ? (int)a : last] += 1;
    }
    int bad = 0;
    for (int b = 0; want && b < ob.nbins; b++)
        bad += ob.hist[b] != want[b];
    CHECK(want && bad == 0);
    CHECK(ob.hist[0] > N / 2);
    free(want);
    oq_observer_free(&ob);
}

static void test_observers(void)
{
    test_histogram_long();
    oq_calib_options o = oq_calib_options_default();
    o.method = OQ_CALIB_PERCENTILE;
    o.percentile = 99.0;
    oq_observer ob;
    CHECK_OK(oq_observer_init(&ob, &o));
    float x[1000];
    for (int k = 0; k < 1000; k++)
        x[k] = (float)(k % 100) / 100.0f; /* uniform in [0, 1) */
    oq_observer_update(&ob, x, 1000, 0.01);
    double *hist0 = ob.hist;
    x[0] = 100.0f; /* an outlier: the range doubles until it fits, bins merge */
    oq_observer_update(&ob, x, 1000, 0.01);
    CHECK(ob.hist == hist0 && ob.hmax >= 100);
    double total = 0;
    for (int k = 0; k < ob.nbins; k++)
        total += ob.hist[k];
    CHECK(total == 2000);
    float mn, mx;
    oq_observer_range(&ob, &o, &mn, &mx);
    CHECK(mn == 0 && mx < 2.0f && mx > 0.9f);
    oq_observer_free(&ob);
    /* entropy on a gaussian-like histogram with a far outlier clips the outlier */
    double h[2048] = {0};
    for (int k = 0; k < 512; k++)
        h[k] = 1000.0 * exp(-(double)k * k / (2 * 100.0 * 100.0));
    h[2047] = 1;
    double t = oq_hist_entropy_threshold(h, 2048, 2048.0, 127);
    CHECK(t > 200 && t < 1200);
    double tm = oq_hist_mse_threshold(h, 2048, 2048.0, 127);
    CHECK(tm > 100 && tm < 1500);
    /* asymmetric MSE: a tensor that does not go below 0 is charged t/255 per step (the
     * nq = 255 rule), a fully signed one about t/127, and one that barely goes below 0
     * (HardSwish) nearly t/255: it clips less than the symmetric rule would */
    CHECK(oq_hist_mse_threshold_asym(h, 2048, 2048.0, 0) == oq_hist_mse_threshold(h, 2048, 2048.0, 255));
    double ts = oq_hist_mse_threshold_asym(h, 2048, 2048.0, 2048.0), th = oq_hist_mse_threshold_asym(h, 2048, 2048.0, 30);
    CHECK(fabs(ts - tm) <= 16 && th >= tm && th <= oq_hist_mse_threshold(h, 2048, 2048.0, 255));
    CHECK(th > ts);
    CHECK(oq_hist_percentile_threshold(h, 2048, 2048.0, 100.0) == 2048.0);
    /* moving average */
    o.method = OQ_CALIB_MOVING_AVERAGE;
    CHECK_OK(oq_observer_init(&ob, &o));
    float a[2] = {-1, 1}, b2[2] = {-3, 3};
    oq_observer_update(&ob, a, 2, 0.5);
    oq_observer_update(&ob, b2, 2, 0.5);
    CHECK(ob.min == -2 && ob.max == 2);
    oq_observer_free(&ob);
}

/* min/max over every length 1..70 (vector body and tails) with the extremes at every position; a
 * NaN inside a batch is skipped, a batch of NaNs leaves the range alone */
static void test_observer_minmax(void)
{
    oq_calib_options o = oq_calib_options_default();
    o.method = OQ_CALIB_MINMAX;
    float x[70];
    for (int n = 1; n <= 70; n++)
        for (int at = 0; at < n; at++) {
            oq_observer ob;
            CHECK_OK(oq_observer_init(&ob, &o));
            for (int k = 0; k < n; k++)
                x[k] = (float)(k % 7) - 3.0f;
            x[at] = at % 2 ? -50.0f : 60.0f;
            oq_observer_update(&ob, x, (size_t)n, 0.01);
            double lo = x[0], hi = x[0];
            for (int k = 1; k < n; k++) {
                lo = x[k] < lo ? x[k] : lo;
                hi = x[k] > hi ? x[k] : hi;
            }
            CHECK(lo == (at % 2 ? -50 : lo) && hi == (at % 2 ? hi : 60));
            CHECK(ob.min == lo && ob.max == hi);
            oq_observer_free(&ob);
        }
    oq_observer ob;
    CHECK_OK(oq_observer_init(&ob, &o));
    for (int k = 0; k < 40; k++)
        x[k] = (float)k;
    x[17] = NAN;
    oq_observer_update(&ob, x, 40, 0.01);
    CHECK(ob.min == 0 && ob.max == 39 && ob.batches == 1);
    for (int k = 0; k < 40; k++)
        x[k] = NAN;
    oq_observer_update(&ob, x, 40, 0.01);
    CHECK(ob.min == 0 && ob.max == 39 && ob.batches == 1);
    oq_observer_free(&ob);
}

static void put16(FILE *f, unsigned v) { fputc(v & 255, f), fputc(v >> 8 & 255, f); }
static void put32(FILE *f, unsigned v) { put16(f, v & 0xffff), put16(f, v >> 16); }

/* A stored zip with one member, as np.savez writes it (crc left 0: the reader does not check it). */
static void write_npz(const char *path, const char *member, const char *npy)
{
    FILE *in = fopen(npy, "rb");
    fseek(in, 0, SEEK_END);
    long n = ftell(in);
    fseek(in, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    CHECK(fread(buf, 1, (size_t)n, in) == (size_t)n);
    fclose(in);
    FILE *f = fopen(path, "wb");
    unsigned nl = (unsigned)strlen(member);
    put32(f, 0x04034b50), put16(f, 20), put16(f, 0), put16(f, 0), put16(f, 0), put16(f, 0), put32(f, 0);
    put32(f, (unsigned)n), put32(f, (unsigned)n), put16(f, nl), put16(f, 0);
    fwrite(member, 1, nl, f);
    fwrite(buf, 1, (size_t)n, f);
    long cd = ftell(f);
    put32(f, 0x02014b50), put16(f, 20), put16(f, 20), put16(f, 0), put16(f, 0), put16(f, 0), put16(f, 0);
    put32(f, 0), put32(f, (unsigned)n), put32(f, (unsigned)n), put16(f, nl), put16(f, 0), put16(f, 0);
    put16(f, 0), put16(f, 0), put32(f, 0), put32(f, 0);
    fwrite(member, 1, nl, f);
    long end = ftell(f);
    put32(f, 0x06054b50), put16(f, 0), put16(f, 0), put16(f, 1), put16(f, 1), put32(f, (unsigned)(end - cd));
    put32(f, (unsigned)cd), put16(f, 0);
    fclose(f);
    free(buf);
}

static void test_reader(oq_model *m)
{
    /* 10 samples of [1,28,28] (the model's batch dim is symbolic): batches of 4, 4, 2 */
    int64_t dims[4] = {10, 1, 28, 28};
    oq_tensor *t = NULL;
    CHECK_OK(oq_tensor_create(OQ_FLOAT, 4, dims, &t));
    for (int64_t i = 0; i < oq_tensor_numel(t); i++)
        ((float *)t->data)[i] = (float)(i / 784);
    CHECK_OK(oq_npy_save("/tmp/oq_test_r.npy", t));
    oq_reader_options ro = oq_reader_options_default();
    ro.batch_size = 4;
    oq_data_reader *r = NULL;
    CHECK_OK(oq_data_reader_open("/tmp/oq_test_r.npy", m, &ro, &r));
    CHECK(oq_data_reader_sample_count(r) == 10);
    const oq_tensor *const *b;
    int64_t seen = 0, batches = 0;
    while (r && oq_data_reader_next(r, &b) == OQ_OK && b) {
        CHECK(((float *)b[0]->data)[0] == (float)seen);
        seen += b[0]->dims[0];
        batches++;
    }
    CHECK(seen == 10 && batches == 3);
    oq_data_reader_destroy(r);
    /* labels in step with the batches; count and type checked */
    int64_t ld = 10;
    oq_tensor *lab = NULL;
    CHECK_OK(oq_tensor_create(OQ_INT32, 1, &ld, &lab));
    for (int i = 0; i < 10; i++)
        ((int32_t *)lab->data)[i] = 100 + i;
    CHECK_OK(oq_npy_save("/tmp/oq_test_r_y.npy", lab));
    ro.labels = "/tmp/oq_test_r_y.npy";
    CHECK_OK(oq_data_reader_open("/tmp/oq_test_r.npy", m, &ro, &r));
    seen = 0;
    int label_bad = 0;
    for (int pass = 0; pass < 2 && r; pass++) {
        seen = 0;
        while (oq_data_reader_next(r, &b) == OQ_OK && b) {
            const int64_t *lv;
            size_t ln;
            CHECK_OK(oq_data_reader_labels(r, &lv, &ln));
            label_bad |= !lv || ln != (size_t)b[0]->dims[0];
            for (size_t i = 0; lv && i < ln; i++)
                label_bad |= lv[i] != 100 + seen + (int64_t)i;
            seen += b[0]->dims[0];
        }
        CHECK_OK(oq_data_reader_rewind(r));
    }
    CHECK(!label_bad && seen == 10);
    oq_data_reader_destroy(r);
    ro.labels = "/tmp/oq_test_r.npy"; /* float values, 10 samples of [1,28,28] */
    CHECK(oq_data_reader_open("/tmp/oq_test_r.npy", m, &ro, &r) != OQ_OK);
    CHECK(strstr(oq_last_error(), "oq_test_r.npy") != NULL);
    ro.labels = "/tmp/oq_test_r_y.npy";
    CHECK(oq_data_reader_open("/tmp/oq_test_r.npy,/tmp/oq_test_r.npy", m, &ro, &r) == OQ_E_SHAPE);
    CHECK(strstr(oq_last_error(), "10 labels") != NULL);
    ro.labels = NULL;
    oq_tensor_destroy(lab);
    remove("/tmp/oq_test_r_y.npy");
    /* a list spanning two files, capped */
    ro.max_samples = 15;
    CHECK_OK(oq_data_reader_open("/tmp/oq_test_r.npy,/tmp/oq_test_r.npy", m, &ro, &r));
    CHECK(oq_data_reader_sample_count(r) == 15);
    seen = 0;
    while (r && oq_data_reader_next(r, &b) == OQ_OK && b)
        seen += b[0]->dims[0];
    CHECK(seen == 15);
    oq_data_reader_destroy(r);
    /* .npz with the input's name */
    write_npz("/tmp/oq_test_r.npz", "input.npy", "/tmp/oq_test_r.npy");
    ro.max_samples = 0;
    CHECK_OK(oq_data_reader_open("/tmp/oq_test_r.npz", m, &ro, &r));
    CHECK(oq_data_reader_sample_count(r) == 10);
    oq_data_reader_destroy(r);
    write_npz("/tmp/oq_test_r.npz", "x.npy", "/tmp/oq_test_r.npy");
    CHECK(oq_data_reader_open("/tmp/oq_test_r.npz", m, &ro, &r) == OQ_E_INVALID_ARG);
    CHECK(strstr(oq_last_error(), "'input'") != NULL);
    /* wrong sample shape names the file */
    dims[3] = 27;
    oq_tensor_destroy(t);
    CHECK_OK(oq_tensor_create(OQ_FLOAT, 4, dims, &t));
    CHECK_OK(oq_npy_save("/tmp/oq_test_r.npy", t));
    CHECK(oq_data_reader_open("/tmp/oq_test_r.npy", m, &ro, &r) == OQ_E_SHAPE);
    CHECK(strstr(oq_last_error(), "oq_test_r.npy") != NULL);
    CHECK(oq_data_reader_open("/tmp/does-not-exist.npy", m, &ro, &r) == OQ_E_IO);
    oq_tensor_destroy(t);
    /* empty samples (a zero in the sample dims): rejected, since a header may promise any
     * number of them for no bytes (a fuzzed file once made the reader deliver 2^62 batches) */
    int64_t empty[5] = {3, 0, 1, 28, 28};
    CHECK_OK(oq_tensor_create(OQ_FLOAT, 5, empty, &t));
    CHECK_OK(oq_npy_save("/tmp/oq_test_r.npy", t));
    r = NULL;
    CHECK(oq_data_reader_open("/tmp/oq_test_r.npy", m, &ro, &r) == OQ_E_SHAPE && !r);
    CHECK(strstr(oq_last_error(), "empty") != NULL && strstr(oq_last_error(), "oq_test_r.npy") != NULL);
    oq_tensor_destroy(t);
    remove("/tmp/oq_test_r.npy");
    remove("/tmp/oq_test_r.npz");
}

static size_t count_op(const oq_model *m, const char *op)
{
    size_t n = 0;
    for (size_t i = 0; i < m->graph->n_nodes; i++)
        n += !strcmp(m->graph->nodes[i].op_type, op);
    return n;
}

/* Gemm -> Relu -> Gemm with the second Gemm kept in float: the Relu folds into the first
 * Gemm's output quantization, so the float Gemm must read the dequantized (clamped) value.
 * (It once read the unclamped float output: 27% of the top classes changed.) */
static void test_exclude_after_folded_relu(oq_model *mlp)
{
    oq_data_reader *r = NULL;
    CHECK_OK(oq_data_reader_open("tests/fixtures/fmnist_mlp/input_0.npy", mlp, NULL, &r));
    oq_quant_options o = oq_quant_options_default();
    o.exclude = "/3/Gemm";
    o.calib.threads = 1;
    oq_model *q = NULL;
    CHECK_OK(oq_quantize(mlp, &o, r, &q));
    oq_session *sf = NULL, *sq = NULL;
    oq_tensor *x = NULL, *yf = NULL, *yq = NULL;
    CHECK_OK(oq_npy_load("tests/fixtures/fmnist_mlp/input_0.npy", &x));
    if (q && x) {
        CHECK(count_op(q, "Relu") == 0 && count_op(q, "Gemm") == 2);
        CHECK_OK(oq_session_create(mlp, NULL, &sf));
        CHECK_OK(oq_session_create(q, NULL, &sq));
        const oq_tensor *in[1] = {x};
        if (sf && sq) {
            CHECK_OK(oq_session_run(sf, in, 1, &yf, 1));
            CHECK_OK(oq_session_run(sq, in, 1, &yq, 1));
        }
    }
    if (yf && yq) {
        double worst = 0, big = 0;
        for (int64_t i = 0; i < oq_tensor_numel(yf); i++) {
            double a = ((float *)yf->data)[i], b = ((float *)yq->data)[i];
            worst = fabs(a - b) > worst ? fabs(a - b) : worst;
            big = fabs(a) > big ? fabs(a) : big;
        }
        CHECK(worst < 0.05 * big);
    }
    oq_tensor_destroy(x), oq_tensor_destroy(yf), oq_tensor_destroy(yq);
    oq_session_destroy(sf), oq_session_destroy(sq);
    oq_model_destroy(q);
    oq_data_reader_destroy(r);
}


static void add_value(oq_value_info **vs, size_t *n, const char *name, int64_t d0, int64_t d1)
{
    *vs = realloc(*vs, (*n + 1) * sizeof **vs);
    oq_value_info *v = &(*vs)[(*n)++];
    memset(v, 0, sizeof *v);
    v->name = oq_strdup(name);
    v->dtype = OQ_FLOAT;
    v->ndim = 2;
    v->dims[0] = d0, v->dims[1] = d1;
}

static void add_const(oq_graph *g, const char *name, int ndim, int64_t d, float base)
{
    oq_tensor *t = NULL;
    CHECK_OK(oq_tensor_create(OQ_FLOAT, ndim, &d, &t));
    if (!t)
        return;
    t->name = oq_strdup(name);
    for (int64_t i = 0; i < oq_tensor_numel(t); i++)
        ((float *)t->data)[i] = base + 0.05f * (float)((i * 7) % 11) - 0.25f * (ndim > 0);
    CHECK_OK(oq_grow((void **)&g->initializers, &g->cap_initializers, g->n_initializers + 1, sizeof t));
    g->initializers[g->n_initializers++] = t;
}

/* m quantized with the defaults, every named tensor's range [-2, 3] from a table. */
static oq_model *quantize_ranged(const oq_model *m, const char *const *names, size_t n)
{
    oq_calib_table *t = oq_calloc(1, sizeof *t);
    for (size_t i = 0; t && i < n; i++)
        CHECK_OK(calib_table_add(t, names[i], -2, 3, -2, 3));
    oq_quant_options o = oq_quant_options_default();
    o.table = t;
    oq_model *q = NULL;
    CHECK_OK(oq_quantize(m, &o, NULL, &q));
    oq_calib_table_destroy(t);
    return q;
}

/* MatMul -> HardSwish as x * HardSigmoid(x) -> MatMul -> Add -> Div -> output: the Mul has a
 * float input (HardSigmoid stays float) and the Add feeds only the float Div, so both stay
 * float; only the two MatMul inputs are quantized (no QuantizeLinear on the HardSigmoid, Mul
 * or Add outputs: each would be one more rounding; the MatMuls write float for float readers). */
static void test_int8_only_where_it_pays(void)
{
    oq_model *m = test_model_new();
    oq_graph *g = m->graph;
    add_value(&g->inputs, &g->n_inputs, "x", 1, 8);
    add_value(&g->outputs, &g->n_outputs, "y", 1, 8);
    int64_t wd[2] = {8, 8};
    add_const(g, "w1", 1, 64, 0), add_const(g, "w2", 1, 64, 0.1f), add_const(g, "c", 1, 8, 1), add_const(g, "d", 0, 1, 6);
    for (size_t i = 0; i < g->n_initializers; i++)
        if (g->initializers[i]->ndim == 1 && g->initializers[i]->dims[0] == 64) {
            g->initializers[i]->ndim = 2; /* [8, 8] weights, filled as 64 values */
            g->initializers[i]->dims[0] = wd[0], g->initializers[i]->dims[1] = wd[1];
        }
    const char *mm1[2] = {"x", "w1"}, *h[1] = {"h"}, *hs[1] = {"s"}, *mul[2] = {"h", "s"}, *mo[1] = {"m"};
    const char *mm2[2] = {"m", "w2"}, *y2[1] = {"y2"}, *add[2] = {"y2", "c"}, *ao[1] = {"a"}, *dv[2] = {"a", "d"},
               *y[1] = {"y"};
    CHECK_OK(oq_graph_add_node(g, "MatMul", "", "mm1", mm1, 2, h, 1, NULL));
    CHECK_OK(oq_graph_add_node(g, "HardSigmoid", "", "hs", h, 1, hs, 1, NULL));
    CHECK_OK(oq_graph_add_node(g, "Mul", "", "mul", mul, 2, mo, 1, NULL));
    CHECK_OK(oq_graph_add_node(g, "MatMul", "", "mm2", mm2, 2, y2, 1, NULL));
    CHECK_OK(oq_graph_add_node(g, "Add", "", "add", add, 2, ao, 1, NULL));
    CHECK_OK(oq_graph_add_node(g, "Div", "", "div", dv, 2, y, 1, NULL));
    const char *names[] = {"x", "h", "s", "m", "y2", "a", "y"};
    oq_model *q = quantize_ranged(m, names, sizeof names / sizeof *names);
    CHECK(q && count_op(q, "QuantizeLinear") == 2 && count_op(q, "Mul") == 1 && count_op(q, "Add") == 1);
    for (size_t i = 0; q && i < q->graph->n_nodes; i++) {
        const oq_node *n = &q->graph->nodes[i];
        if (strcmp(n->op_type, "QuantizeLinear"))
            continue;
        const char *in = n->inputs[0];
        CHECK(strcmp(in, "s") && strcmp(in, "m_f") && strcmp(in, "a")); /* not HardSigmoid/Mul/Add outputs */
    }
    /* it runs, and close to the float model */
    oq_session *sf = NULL, *sq = NULL;
    oq_tensor *x = NULL, *yf = NULL, *yq = NULL;
    int64_t xd[2] = {1, 8};
    CHECK_OK(oq_tensor_create(OQ_FLOAT, 2, xd, &x));
    for (int i = 0; x && i < 8; i++)
        ((float *)x->data)[i] = 0.3f * (float)i - 1;
    CHECK_OK(oq_session_create(m, NULL, &sf));
    if (q)
        CHECK_OK(oq_session_create(q, NULL, &sq));
    if (sf && sq && x) {
        const oq_tensor *in[1] = {x};
        CHECK_OK(oq_session_run(sf, in, 1, &yf, 1));
        CHECK_OK(oq_session_run(sq, in, 1, &yq, 1));
    }
    for (int i = 0; yf && yq && i < 8; i++)
        CHECK(fabsf(((float *)yf->data)[i] - ((float *)yq->data)[i]) < 0.05f);
    oq_tensor_destroy(x), oq_tensor_destroy(yf), oq_tensor_destroy(yq);
    oq_session_destroy(sf), oq_session_destroy(sq);
    oq_model_destroy(q);
    oq_model_destroy(m);
}

/* The node writing value name in g, or NULL. */
static const oq_node *writer(const oq_graph *g, const char *name)
{
    for (size_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].n_outputs && !strcmp(g->nodes[i].outputs[0], name))
            return &g->nodes[i];
    return NULL;
}

/* MatMul -> LeakyRelu (no int8 form) -> Flatten -> MatMul: the Flatten's input is float, but its output
 * is quantized for the second MatMul anyway; the quantizer quantizes the Flatten's input instead, with
 * the same scale and zero point, so that it runs on int8 with the same values. */
static void test_quantize_before_shared(void)
{
    oq_model *m = test_model_new();
    oq_graph *g = m->graph;
    add_value(&g->inputs, &g->n_inputs, "x", 1, 8);
    add_value(&g->outputs, &g->n_outputs, "y", 1, 8);
    add_const(g, "w1", 1, 64, 0), add_const(g, "w2", 1, 64, 0.1f);
    for (size_t i = 0; i < g->n_initializers; i++) {
        g->initializers[i]->ndim = 2; /* [8, 8] weights, filled as 64 values */
        g->initializers[i]->dims[0] = g->initializers[i]->dims[1] = 8;
    }
    const char *mm1[2] = {"x", "w1"}, *h[1] = {"h"}, *l[1] = {"l"}, *f[1] = {"f"}, *mm2[2] = {"f", "w2"},
               *y[1] = {"y"};
    CHECK_OK(oq_graph_add_node(g, "MatMul", "", "mm1", mm1, 2, h, 1, NULL));
    CHECK_OK(oq_graph_add_node(g, "LeakyRelu", "", "lrelu", h, 1, l, 1, NULL));
    CHECK_OK(oq_graph_add_node(g, "Flatten", "", "flat", l, 1, f, 1, NULL));
    CHECK_OK(oq_graph_add_node(g, "MatMul", "", "mm2", mm2, 2, y, 1, NULL));
    const char *names[] = {"x", "h", "l", "f", "y"};
    oq_model *q = quantize_ranged(m, names, sizeof names / sizeof *names);
    const oq_node *flat = NULL, *lrelu = NULL;
    for (size_t i = 0; q && i < q->graph->n_nodes; i++) {
        flat = !strcmp(q->graph->nodes[i].op_type, "Flatten") ? &q->graph->nodes[i] : flat;
        lrelu = !strcmp(q->graph->nodes[i].op_type, "LeakyRelu") ? &q->graph->nodes[i] : lrelu;
    }
    CHECK(flat && lrelu);
    if (flat && lrelu) {
        const oq_node *dq_in = writer(q->graph, flat->inputs[0]);
        const oq_node *q_in = dq_in && !strcmp(dq_in->op_type, "DequantizeLinear") ? writer(q->graph, dq_in->inputs[0])
                                                                                   : NULL;
        CHECK(q_in && !strcmp(q_in->op_type, "QuantizeLinear") && !strcmp(q_in->inputs[0], lrelu->outputs[0]));
        const oq_node *q_out = NULL; /* the QuantizeLinear of the Flatten's output: same parameters */
        for (size_t i = 0; i < q->graph->n_nodes; i++)
            if (!strcmp(q->graph->nodes[i].op_type, "QuantizeLinear") &&
                !strcmp(q->graph->nodes[i].inputs[0], flat->outputs[0]))
                q_out = &q->graph->nodes[i];
        CHECK(q_in && q_out && !strcmp(q_in->inputs[1], q_out->inputs[1]) && !strcmp(q_in->inputs[2], q_out->inputs[2]));
    }
    oq_model_destroy(q);
    oq_model_destroy(m);
}

/* An int64 initializer of n values. */
static void add_i64(oq_graph *g, const char *name, size_t n, const int64_t *v)
{
    oq_tensor *t = NULL;
    int64_t d[1] = {(int64_t)n};
    CHECK_OK(oq_tensor_create(OQ_INT64, 1, d, &t));
    if (!t)
        return;
    memcpy(t->data, v, n * sizeof *v);
    t->name = oq_strdup(name);
    CHECK_OK(oq_graph_add_initializer(g, t));
}

/* MatMul -> Pad(0) -> MatMul: the Pad runs on int8 between them (same parameters in and out, 0 is
 * the zero point); a Pad with value 1 stays float. */
static void test_quantize_pad(void)
{
    for (int v1 = 0; v1 < 2; v1++) {
        oq_model *m = test_model_new();
        oq_graph *g = m->graph;
        add_value(&g->inputs, &g->n_inputs, "x", 1, 8);
        add_value(&g->outputs, &g->n_outputs, "y", 1, 8);
        add_const(g, "w1", 1, 64, 0), add_const(g, "w2", 1, 80, 0.1f);
        for (size_t i = 0; i < g->n_initializers; i++) { /* [8, 8] and [10, 8] weights */
            g->initializers[i]->dims[0] = g->initializers[i]->dims[0] == 64 ? 8 : 10;
            g->initializers[i]->dims[1] = 8;
            g->initializers[i]->ndim = 2;
        }
        add_i64(g, "pads", 4, (int64_t[]){0, 0, 0, 2});
        add_const(g, "pv", 0, 1, v1 ? 1.0f : 0.0f);
        const char *mm1[2] = {"x", "w1"}, *h[1] = {"h"}, *pad[3] = {"h", "pads", "pv"}, *p[1] = {"p"},
                   *mm2[2] = {"p", "w2"}, *y[1] = {"y"};
        CHECK_OK(oq_graph_add_node(g, "MatMul", "", "mm1", mm1, 2, h, 1, NULL));
        CHECK_OK(oq_graph_add_node(g, "Pad", "", "pad", pad, 3, p, 1, NULL));
        CHECK_OK(oq_graph_add_node(g, "MatMul", "", "mm2", mm2, 2, y, 1, NULL));
        const char *names[] = {"x", "h", "p", "y"};
        oq_model *q = quantize_ranged(m, names, sizeof names / sizeof *names);
        const oq_node *pn = NULL;
        for (size_t i = 0; q && i < q->graph->n_nodes; i++)
            pn = !strcmp(q->graph->nodes[i].op_type, "Pad") ? &q->graph->nodes[i] : pn;
        const oq_node *in = pn ? writer(q->graph, pn->inputs[0]) : NULL;
        CHECK(pn && in && !strcmp(in->op_type, v1 ? "MatMul" : "DequantizeLinear"));
        oq_model_destroy(q);
        oq_model_destroy(m);
    }
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    long n = -1;
    if (f && !fseek(f, 0, SEEK_END))
        n = ftell(f);
    if (f)
        fclose(f);
    return n;
}

static bool float_graph_has(const oq_graph *g, const char *name)
{
    for (size_t i = 0; i < g->n_inputs; i++)
        if (!strcmp(g->inputs[i].name, name))
            return true;
    for (size_t i = 0; i < g->n_nodes; i++)
        for (size_t k = 0; k < g->nodes[i].n_outputs; k++)
            if (!strcmp(g->nodes[i].outputs[k], name))
                return true;
    return false;
}

/* Compaction (compact.c): the same numbers in a smaller file, both formats. Scales and zero
 * points are one initializer per distinct value, no two initializers hold the same bytes, an
 * int8 weight has no zero point input, and every float tensor a QuantizeLinear reads keeps its
 * name from the float model (what debug maps by). */
static void test_compact(oq_model *cnn, const oq_calib_table *table)
{
    oq_tensor *x = NULL;
    oq_model *prepared = NULL; /* what debug compares with */
    CHECK_OK(quant_prepare(cnn, 1, 13, &prepared, NULL, NULL));
    CHECK_OK(oq_npy_load("tests/fixtures/fmnist_cnn/input_0.npy", &x));
    for (int format = 0; x && format < 2; format++) {
        oq_model *q[2] = {NULL, NULL};
        oq_tensor *y[2] = {NULL, NULL};
        long bytes[2] = {0, 0};
        for (int c = 0; c < 2; c++) {
            oq_quant_options o = oq_quant_options_default();
            o.table = table;
            o.format = format ? OQ_QUANT_QOPERATOR : OQ_QUANT_QDQ;
            o.compact = c;
            CHECK_OK(oq_quantize(cnn, &o, NULL, &q[c]));
            if (!q[c])
                continue;
            const char *path = c ? "/tmp/oq_test_compact1.onnx" : "/tmp/oq_test_compact0.onnx";
            CHECK_OK(oq_model_save(q[c], path, NULL));
            bytes[c] = file_size(path);
            remove(path);
            oq_session *s = NULL;
            CHECK_OK(oq_session_create(q[c], NULL, &s));
            const oq_tensor *in[1] = {x};
            if (s)
                CHECK_OK(oq_session_run(s, in, 1, &y[c], 1));
            oq_session_destroy(s);
        }
        CHECK(y[0] && y[1] && y[0]->nbytes == y[1]->nbytes && !memcmp(y[0]->data, y[1]->data, y[0]->nbytes));
        CHECK(bytes[1] > 0 && bytes[1] < bytes[0]);
        const oq_graph *g = q[1] ? q[1]->graph : NULL;
        for (size_t i = 0; g && i < g->n_initializers; i++)
            for (size_t k = i + 1; k < g->n_initializers; k++) {
                const oq_tensor *a = g->initializers[i], *b = g->initializers[k];
                CHECK(!(a->dtype == b->dtype && a->nbytes == b->nbytes && !memcmp(a->data, b->data, a->nbytes)));
            }
        size_t n_q = 0;
        for (size_t i = 0; g && i < g->n_nodes; i++) {
            const oq_node *n = &g->nodes[i];
            if (!strcmp(n->op_type, "DequantizeLinear")) {
                const oq_tensor *w = oq_graph_initializer(g, n->inputs[0]);
                CHECK(!(w && w->dtype == OQ_INT8 && n->n_inputs > 2));
            }
            if (!strcmp(n->op_type, "QuantizeLinear")) {
                n_q++;
                /* a graph output's producer writes a new name; its DQ keeps the old one */
                const char *dq_out = "";
                for (size_t k = 0; k < g->n_nodes; k++)
                    if (!strcmp(g->nodes[k].op_type, "DequantizeLinear") && !strcmp(g->nodes[k].inputs[0], n->outputs[0]))
                        dq_out = g->nodes[k].outputs[0];
                CHECK(prepared && (float_graph_has(prepared->graph, n->inputs[0]) ||
                                   (oq_graph_is_output(g, dq_out) && float_graph_has(prepared->graph, dq_out))));
                CHECK(strlen(n->outputs[0]) < 8);
            }
            if (!strcmp(n->op_type, "QLinearConv")) {
                const oq_tensor *wz = oq_graph_initializer(g, n->inputs[5]);
                CHECK(wz && oq_tensor_numel(wz) == 1);
            }
        }
        CHECK(n_q >= 1);
        for (int c = 0; c < 2; c++)
            oq_tensor_destroy(y[c]), oq_model_destroy(q[c]);
    }
    oq_tensor_destroy(x);
    oq_model_destroy(prepared);
}

static void test_quantize(oq_model *cnn, oq_model *mlp)
{
    oq_data_reader *r = NULL;
    CHECK_OK(oq_data_reader_open("tests/fixtures/fmnist_cnn/input_0.npy", cnn, NULL, &r));
    oq_calib_options co = oq_calib_options_default();
    co.method = OQ_CALIB_ENTROPY;
    co.threads = 1;
    oq_calib_table *t = NULL;
    float lo, hi;
    CHECK_OK(oq_calibrate(cnn, &co, r, &t));
    /* input, the two Relu outputs, logits, plus what other configurations need: the two
     * pre-Relu conv outputs (a conv kept in float: its Relu runs quantized alone) and the
     * MaxPool/Flatten outputs (their own range when the node before is kept in float) */
    CHECK(oq_calib_table_count(t) == 9);
    CHECK(t && oq_calib_table_get(t, "/8/Flatten_output_0", &lo, &hi));
    CHECK(t && oq_calib_table_get(t, "/5/BatchNormalization_output_0", &lo, &hi) && lo < 0 && hi > 0);
    CHECK_OK(oq_calib_table_save(t, "/tmp/oq_test_table.json"));
    oq_calib_table *t2 = NULL;
    CHECK_OK(oq_calib_table_load("/tmp/oq_test_table.json", &t2));
    float a, b, c, d;
    CHECK(t2 && oq_calib_table_get(t, "logits", &a, &b) && oq_calib_table_get(t2, "logits", &c, &d) && a == c && b == d);
    remove("/tmp/oq_test_table.json");

    oq_quant_options o = oq_quant_options_default();
    o.table = t2;
    oq_model *q = NULL;
    test_compact(cnn, t2);
    CHECK_OK(oq_quantize(cnn, &o, NULL, &q));
    CHECK(q && count_op(q, "QuantizeLinear") >= 4 && count_op(q, "Relu") == 0 && count_op(q, "BatchNormalization") == 0);
    oq_model_destroy(q);
    o.format = OQ_QUANT_QOPERATOR;
    CHECK_OK(oq_quantize(cnn, &o, NULL, &q));
    CHECK(q && count_op(q, "QLinearConv") == 2 && count_op(q, "QGemm") == 1 && count_op(q, "QuantizeLinear") == 1);
    /* the int8 model runs and mostly agrees with the float one on the fixture input */
    oq_session *sf = NULL, *sq = NULL;
    oq_tensor *x = NULL, *yf = NULL, *yq = NULL;
    CHECK_OK(oq_npy_load("tests/fixtures/fmnist_cnn/input_0.npy", &x));
    CHECK_OK(oq_session_create(cnn, NULL, &sf));
    CHECK_OK(oq_session_create(q, NULL, &sq));
    if (sf && sq && x) {
        const oq_tensor *in[1] = {x};
        CHECK_OK(oq_session_run(sf, in, 1, &yf, 1));
        CHECK_OK(oq_session_run(sq, in, 1, &yq, 1));
        int agree = 0;
        for (int i = 0; yf && yq && i < 8; i++) {
            int af = 0, aq = 0;
            for (int k = 1; k < 10; k++) {
                af = ((float *)yf->data)[i * 10 + k] > ((float *)yf->data)[i * 10 + af] ? k : af;
                aq = ((float *)yq->data)[i * 10 + k] > ((float *)yq->data)[i * 10 + aq] ? k : aq;
            }
            agree += af == aq;
        }
        CHECK(agree >= 7);
    }
    oq_tensor_destroy(x), oq_tensor_destroy(yf), oq_tensor_destroy(yq);
    oq_session_destroy(sf), oq_session_destroy(sq);
    oq_model_destroy(q);
    /* exclusion keeps the Gemm in float */
    o.format = OQ_QUANT_QDQ;
    o.exclude = "/9/Gemm";
    CHECK_OK(oq_quantize(cnn, &o, NULL, &q));
    CHECK(q && count_op(q, "Gemm") == 1 && count_op(q, "Conv") == 2);
    oq_model_destroy(q);
    /* static without data or table is an error that says so */
    o.table = NULL;
    CHECK(oq_quantize(cnn, &o, NULL, &q) == OQ_E_INVALID_ARG);
    CHECK(strstr(oq_last_error(), "calibration") != NULL);
    oq_calib_table_destroy(t), oq_calib_table_destroy(t2);
    oq_data_reader_destroy(r);

    /* dynamic, both forms */
    o = oq_quant_options_default();
    o.mode = OQ_QUANT_DYNAMIC;
    CHECK_OK(oq_quantize(mlp, &o, NULL, &q));
    CHECK(q && count_op(q, "DynamicQuantizeMatMul") == 2 && count_op(q, "Gemm") == 0);
    oq_model_destroy(q);
    o.dynamic_form = OQ_DYNAMIC_MATMULINTEGER;
    o.op_types = "MatMul"; /* Gemm not selected: nothing to do is an error */
    CHECK(oq_quantize(mlp, &o, NULL, &q) == OQ_E_UNSUPPORTED);
    o.op_types = NULL;
    CHECK_OK(oq_quantize(mlp, &o, NULL, &q));
    CHECK(q && count_op(q, "MatMulInteger") == 2 && count_op(q, "DynamicQuantizeLinear") == 2);
    oq_model_destroy(q);
    test_exclude_after_folded_relu(mlp);
}

int main(void)
{
    test_json();
    test_glob_rules();
    test_calib_table_load_errors();
    test_qparams();
    test_weights();
    test_observers();
    test_observer_minmax();
    test_int8_only_where_it_pays();
    test_quantize_before_shared();
    test_quantize_pad();
    oq_model *cnn = NULL, *mlp = NULL;
    CHECK_OK(oq_model_load("tests/fixtures/fmnist_cnn/model.onnx", NULL, &cnn));
    CHECK_OK(oq_model_load("tests/fixtures/fmnist_mlp/model.onnx", NULL, &mlp));
    if (cnn && mlp) {
        test_reader(cnn);
        test_quantize(cnn, mlp);
    }
    oq_model_destroy(cnn);
    oq_model_destroy(mlp);
    return test_summary("test_quant");
}
