/* Unit tests of src/eval: difference statistics, top-k accuracy, latency
 * percentiles, peak memory and the report JSON writer, against values
 * computed by hand. */
#include "onnxq.h"
#include "eval/eval.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static oq_tensor *make_f32(int ndim, const int64_t *dims, const float *v)
{
    oq_tensor *t = NULL;
    if (oq_tensor_create(OQ_FLOAT, ndim, dims, &t) != OQ_OK)
        return NULL;
    memcpy(t->data, v, (size_t)oq_tensor_numel(t) * sizeof(float));
    return t;
}

static void test_diff_stats(void)
{
    /* err = [0 0 -1 | 0 -2 1]: sum|e| 4, max 2, per-sample max 1 and 2,
     * sum ref^2 91, sum err^2 6, sum test^2 111, dot 98;
     * argmax rows: (2,2) agree, (2,1) disagree. */
    const float ref[] = {1, 2, 3, 4, 5, 6}, test[] = {1, 2, 4, 4, 7, 5};
    int64_t d23[] = {2, 3}, d13[] = {1, 3};
    oq_tensor *r = make_f32(2, d23, ref), *t = make_f32(2, d23, test);
    CHECK(r && t);
    oq_diff_stats st;
    oq_diff_stats_init(&st);
    CHECK(isnan(oq_diff_stats_sqnr_db(&st)));
    CHECK(isnan(oq_diff_stats_mean_abs(&st)));
    CHECK_OK(oq_diff_stats_update(&st, r, t));
    CHECK(st.count == 6 && st.samples == 2);
    CHECK_NEAR(oq_diff_stats_mean_abs(&st), 4.0 / 6.0, 1e-12);
    CHECK_NEAR(st.max_abs_diff, 2.0, 0);
    CHECK_NEAR(oq_diff_stats_mean_sample_max(&st), 1.5, 1e-12);
    CHECK_NEAR(oq_diff_stats_sqnr_db(&st), 11.8089014193745, 1e-9);
    CHECK_NEAR(oq_diff_stats_cosine(&st), 0.9750881759086975, 1e-12);
    CHECK_NEAR(oq_diff_stats_argmax_disagreement(&st), 0.5, 0);

    /* the same data one sample per batch gives the same statistics, and so does a merge */
    oq_diff_stats a, b;
    oq_diff_stats_init(&a);
    oq_diff_stats_init(&b);
    oq_tensor *r0 = make_f32(2, d13, ref), *t0 = make_f32(2, d13, test);
    oq_tensor *r1 = make_f32(2, d13, ref + 3), *t1 = make_f32(2, d13, test + 3);
    CHECK_OK(oq_diff_stats_update(&a, r0, t0));
    CHECK_OK(oq_diff_stats_update(&b, r1, t1));
    oq_diff_stats ab = a;
    CHECK_OK(oq_diff_stats_update(&a, r1, t1));
    oq_diff_stats_merge(&ab, &b);
    CHECK(a.samples == 2 && ab.samples == 2 && a.argmax_rows == 2 && ab.argmax_disagree == 1);
    CHECK_NEAR(oq_diff_stats_sqnr_db(&a), oq_diff_stats_sqnr_db(&st), 1e-12);
    CHECK_NEAR(oq_diff_stats_mean_sample_max(&ab), 1.5, 1e-12);
    CHECK_NEAR(ab.max_abs_diff, 2.0, 0);

    /* identical outputs: no error, SQNR infinite (null in reports), cosine 1, no disagreement */
    oq_diff_stats same;
    oq_diff_stats_init(&same);
    CHECK_OK(oq_diff_stats_update(&same, r, r));
    CHECK(isinf(oq_diff_stats_sqnr_db(&same)) && oq_diff_stats_sqnr_db(&same) > 0);
    CHECK_NEAR(oq_diff_stats_cosine(&same), 1.0, 1e-12);
    CHECK(oq_diff_stats_argmax_disagreement(&same) == 0.0);
    CHECK(same.max_abs_diff == 0.0 && oq_diff_stats_mean_abs(&same) == 0.0);

    /* shapes must agree */
    CHECK(oq_diff_stats_update(&same, r, t0) == OQ_E_SHAPE);
    CHECK(strstr(oq_last_error(), "[2,3]") != NULL);

    /* a last dim of 1 has no class axis; a vector is one sample */
    int64_t d61[] = {6, 1}, d6[] = {6};
    oq_tensor *c = make_f32(2, d61, ref), *ct = make_f32(2, d61, test), *v = make_f32(1, d6, ref),
              *vt = make_f32(1, d6, test);
    oq_diff_stats sc, sv;
    oq_diff_stats_init(&sc);
    oq_diff_stats_init(&sv);
    CHECK_OK(oq_diff_stats_update(&sc, c, ct));
    CHECK_OK(oq_diff_stats_update(&sv, v, vt));
    CHECK(isnan(oq_diff_stats_argmax_disagreement(&sc)) && sc.samples == 6);
    CHECK_NEAR(oq_diff_stats_mean_sample_max(&sc), 4.0 / 6.0, 1e-12);
    CHECK(isnan(oq_diff_stats_argmax_disagreement(&sv)) && sv.samples == 1);
    CHECK_NEAR(oq_diff_stats_mean_sample_max(&sv), 2.0, 0);

    /* other dtypes are read as numbers: int8 [1,3] {1,-2,3} vs float {1,-2,5} */
    int64_t d[] = {1, 3};
    oq_tensor *q = NULL;
    CHECK_OK(oq_tensor_create(OQ_INT8, 2, d, &q));
    if (q) {
        int8_t *p = q->data;
        p[0] = 1, p[1] = -2, p[2] = 3;
    }
    const float fv[] = {1, -2, 5};
    oq_tensor *f = make_f32(2, d, fv);
    oq_diff_stats sq;
    oq_diff_stats_init(&sq);
    CHECK_OK(oq_diff_stats_update(&sq, f, q));
    CHECK_NEAR(sq.max_abs_diff, 2.0, 0);
    CHECK_NEAR(oq_diff_stats_sqnr_db(&sq), 10.0 * log10(30.0 / 4.0), 1e-9); /* 1+4+25 over 4 */
    CHECK(sq.argmax_disagree == 0);

    oq_tensor *all[] = {r, t, r0, t0, r1, t1, c, ct, v, vt, q, f};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        oq_tensor_destroy(all[i]);
}

static void test_accuracy(void)
{
    /* row 0: label 1 is the max; row 1: label 2 is second; row 2: label 1 ties with
     * class 0 (lower index ranks first) below class 3, so it is third */
    const float s[] = {0.1f, 0.9f, 0.3f, 0.2f, 0.5f, 0.1f, 0.4f, 0.3f, 0.2f, 0.2f, 0.1f, 0.3f};
    int64_t dims[] = {3, 4};
    oq_tensor *t = make_f32(2, dims, s);
    const int64_t labels[] = {1, 2, 1};
    oq_accuracy a2, a3;
    oq_accuracy_init(&a2, 2);
    oq_accuracy_init(&a3, 3);
    CHECK(isnan(oq_accuracy_top1(&a2)));
    CHECK_OK(oq_accuracy_update(&a2, t, labels, 3));
    CHECK_OK(oq_accuracy_update(&a3, t, labels, 3));
    CHECK(a2.samples == 3 && a2.top1_hits == 1 && a2.topk_hits == 2);
    CHECK(a3.topk_hits == 3);
    CHECK_NEAR(oq_accuracy_top1(&a2), 1.0 / 3.0, 1e-12);
    CHECK_NEAR(oq_accuracy_topk(&a2), 2.0 / 3.0, 1e-12);
    CHECK_NEAR(oq_accuracy_topk(&a3), 1.0, 0);
    /* a label outside the classes is a miss; a wrong number of labels is an error */
    const int64_t bad[] = {7, -1, 0};
    oq_accuracy ab;
    oq_accuracy_init(&ab, 0);
    CHECK(ab.k == 5);
    CHECK_OK(oq_accuracy_update(&ab, t, bad, 3));
    CHECK(ab.samples == 3 && ab.top1_hits == 0 && ab.topk_hits == 1);
    CHECK(oq_accuracy_update(&ab, t, labels, 2) == OQ_E_SHAPE);
    CHECK(ab.samples == 3);
    oq_tensor_destroy(t);
}

static void test_latency(void)
{
    const double odd[] = {5, 1, 4, 2, 3}, even[] = {4, 1, 3, 2}, one[] = {7};
    oq_latency_stats s;
    CHECK_OK(oq_latency_stats_compute(odd, 5, &s));
    CHECK(s.n == 5);
    CHECK_NEAR(s.median, 3, 1e-12);
    CHECK_NEAR(s.p10, 1.4, 1e-12); /* position 0.4 between 1 and 2 */
    CHECK_NEAR(s.p90, 4.6, 1e-12);
    CHECK_NEAR(s.mean, 3, 1e-12);
    CHECK(s.min == 1 && s.max == 5);
    CHECK(odd[0] == 5); /* input left unsorted */
    CHECK_OK(oq_latency_stats_compute(even, 4, &s));
    CHECK_NEAR(s.median, 2.5, 1e-12);
    CHECK_NEAR(s.p10, 1.3, 1e-12);
    CHECK_NEAR(s.p90, 3.7, 1e-12);
    CHECK_OK(oq_latency_stats_compute(one, 1, &s));
    CHECK(s.median == 7 && s.p10 == 7 && s.p90 == 7 && s.mean == 7);
    CHECK(oq_latency_stats_compute(one, 0, &s) == OQ_E_INVALID_ARG);
}

static void test_peak_rss(void)
{
#ifdef __linux__
    int reset = oq_peak_rss_reset();
    int64_t p0 = oq_peak_rss_bytes();
    CHECK(p0 > 0);
    size_t n = 16u << 20;
    volatile char *big = malloc(n);
    CHECK(big != NULL);
    if (big) {
        for (size_t i = 0; i < n; i += 4096)
            big[i] = (char)i;
        int64_t p1 = oq_peak_rss_bytes();
        /* the touched pages raise the peak (by all 16 MiB when it was reset first) */
        CHECK(p1 >= p0);
        if (reset)
            CHECK(p1 >= p0 + (int64_t)(15u << 20));
        free((void *)big);
    }
#endif
}

static void test_json(void)
{
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (!f)
        return;
    oq_json j;
    oq_json_init(&j, f);
    oq_json_begin_object(&j, false);
    oq_json_kv_int(&j, "a", 1);
    oq_json_kv_number(&j, "b", INFINITY);
    oq_json_key(&j, "c");
    oq_json_begin_object(&j, true);
    oq_json_kv_string(&j, "x", "q\"\n");
    oq_json_key(&j, "y");
    oq_json_begin_array(&j, false); /* inside a compact object: stays on the line */
    oq_json_number(&j, 1.5);
    oq_json_number(&j, 2);
    oq_json_end_array(&j);
    oq_json_end_object(&j);
    oq_json_key(&j, "d");
    oq_json_begin_array(&j, false);
    oq_json_end_array(&j);
    oq_json_kv_string(&j, "e", NULL);
    oq_json_end_object(&j);
    long len = ftell(f);
    rewind(f);
    char buf[512] = {0};
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    CHECK(len > 0 && got == (size_t)len);
    const char *want = "{\n"
                       "  \"a\": 1,\n"
                       "  \"b\": null,\n"
                       "  \"c\": {\"x\": \"q\\\"\\n\", \"y\": [1.5, 2.0]},\n"
                       "  \"d\": [],\n"
                       "  \"e\": null\n"
                       "}\n";
    CHECK(strcmp(buf, want) == 0);
    if (strcmp(buf, want) != 0)
        fprintf(stderr, "got:\n%s\nwant:\n%s", buf, want);

    /* the report header has the members docs/reports.md lists */
    f = tmpfile();
    CHECK(f != NULL);
    if (!f)
        return;
    oq_json_init(&j, f);
    oq_json_begin_object(&j, false);
    oq_report_header(&j, "bench", "lab", "9.9.9", 3);
    oq_json_end_object(&j);
    rewind(f);
    memset(buf, 0, sizeof buf);
    got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    CHECK(strstr(buf, "\"onnxq_report\": 1,") && strstr(buf, "\"kind\": \"bench\"") &&
          strstr(buf, "\"label\": \"lab\""));
    CHECK(strstr(buf, "\"onnxq_version\": \"9.9.9\"") && strstr(buf, "\"created\": \"20") &&
          strstr(buf, "\"machine\": {\"isa\": \"") && strstr(buf, "\"threads\": 3, \"cores\": "));
}

/* A batch source over one tensor split into `batches` slices, with labels. */
typedef struct slices {
    const oq_tensor *x;
    const int64_t *labels;
    int64_t per, next, n;
    oq_tensor *cur;
    int fail_at; /* batch index that reports an error; -1 none */
} slices;

static oq_status slices_next(void *user, const oq_tensor *const **in, const int64_t **labels, size_t *n_labels)
{
    slices *s = user;
    oq_tensor_destroy(s->cur);
    s->cur = NULL;
    *in = NULL;
    if (s->next >= s->n)
        return OQ_OK;
    if (s->fail_at >= 0 && s->next / s->per == s->fail_at)
        return OQ_E_IO;
    int64_t dims[OQ_MAX_DIMS];
    memcpy(dims, s->x->dims, sizeof dims);
    dims[0] = s->per;
    size_t row = s->x->nbytes / (size_t)s->x->dims[0];
    if (oq_tensor_wrap(s->x->dtype, s->x->ndim, dims, (char *)s->x->data + (size_t)s->next * row, &s->cur) != OQ_OK)
        return OQ_E_NOMEM;
    *in = (const oq_tensor *const *)&s->cur;
    *labels = s->labels ? s->labels + s->next : NULL;
    *n_labels = s->labels ? (size_t)s->per : 0;
    s->next += s->per;
    return OQ_OK;
}

static void progress_count(void *user, int64_t done, int64_t total)
{
    int64_t *calls = user;
    calls[0]++;
    calls[1] = done;
    calls[2] = total;
}

/* compare / accuracy / bench loops on the Fashion-MNIST MLP fixture */
static void test_runs(void)
{
    oq_model *m = NULL;
    oq_session *a = NULL, *b = NULL;
    oq_tensor *x = NULL;
    CHECK_OK(oq_model_load("tests/fixtures/fmnist_mlp/model.onnx", NULL, &m));
    CHECK_OK(oq_npy_load("tests/fixtures/fmnist_mlp/input_0.npy", &x)); /* 8 images */
    if (!m || !x)
        goto done;
    oq_session_options so = oq_session_options_default();
    so.threads = 1;
    CHECK_OK(oq_session_create(m, &so, &a));
    CHECK_OK(oq_session_create(m, &so, &b));
    if (!a || !b || x->dims[0] != 8)
        goto done;
    const int64_t labels[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    slices sl = {x, labels, 2, 0, 8, NULL, -1};
    oq_batch_source src = {slices_next, &sl, 8};
    int64_t calls[3] = {0, 0, 0};
    oq_compare_options co = {"a.onnx", "b.onnx", progress_count, calls};
    oq_compare_result *res = NULL;
    CHECK_OK(oq_compare_run(a, b, &src, &co, &res));
    if (res) {
        CHECK(res->runs == 4 && res->samples == 8 && res->n_outputs == 1);
        CHECK(res->latency[0].n == 4 && res->latency[1].n == 4);
        CHECK(calls[0] == 4 && calls[1] == 8 && calls[2] == 8);
        const oq_compare_output *o = &res->outputs[0];
        CHECK(o->diff.samples == 8 && o->diff.count == 80 && o->diff.max_abs_diff == 0);
        CHECK(isinf(oq_diff_stats_sqnr_db(&o->diff)) && o->diff.argmax_rows == 8 && o->diff.argmax_disagree == 0);
        CHECK(o->has_accuracy && o->acc_ref.samples == 8 && o->acc_ref.top1_hits == o->acc_test.top1_hits);
        CHECK(strcmp(o->name, oq_session_output(a, 0)->name) == 0);
    }
    oq_compare_result_destroy(res);

    /* accuracy of one session equals the compare's */
    oq_accuracy acc;
    oq_accuracy_init(&acc, 5);
    sl.next = 0;
    CHECK_OK(oq_accuracy_run(a, 0, &src, "a.onnx", NULL, NULL, &acc));
    CHECK(acc.samples == 8);

    /* without labels, accuracy is an error and compare has none */
    sl.next = 0;
    sl.labels = NULL;
    oq_accuracy_init(&acc, 5);
    CHECK(oq_accuracy_run(a, 0, &src, "a.onnx", NULL, NULL, &acc) == OQ_E_INVALID_ARG);
    CHECK(strstr(oq_last_error(), "labels") != NULL);
    sl.next = 0;
    res = NULL;
    CHECK_OK(oq_compare_run(a, b, &src, NULL, &res));
    CHECK(res && !res->outputs[0].has_accuracy);
    oq_compare_result_destroy(res);

    /* a failing source stops the run with its status and no result */
    sl.next = 0;
    sl.fail_at = 2;
    res = NULL;
    CHECK(oq_compare_run(a, b, &src, &co, &res) == OQ_E_IO);
    CHECK(res == NULL);
    /* an empty source is an error naming the models */
    sl.next = sl.n;
    CHECK(oq_compare_run(a, b, &src, &co, &res) == OQ_E_INVALID_ARG);
    CHECK(strstr(oq_last_error(), "a.onnx") != NULL);
    oq_tensor_destroy(sl.cur);

    oq_latency_stats lat;
    const oq_tensor *in[] = {x};
    CHECK_OK(oq_bench_run(a, in, 1, 1, 5, &lat));
    CHECK(lat.n == 5 && lat.min <= lat.p10 && lat.p10 <= lat.median && lat.median <= lat.p90 && lat.p90 <= lat.max);
    CHECK(oq_bench_run(a, in, 1, 0, 0, &lat) == OQ_E_INVALID_ARG);
done:
    oq_session_destroy(a);
    oq_session_destroy(b);
    oq_tensor_destroy(x);
    oq_model_destroy(m);
}

int main(void)
{
    test_diff_stats();
    test_accuracy();
    test_latency();
    test_peak_rss();
    test_json();
    test_runs();
    return test_summary("test_eval");
}
