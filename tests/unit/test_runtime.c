/* Unit tests of the runtime: arena planning across runs, symbolic batch
 * dimensions resolved per run, If and Loop (scan outputs, outer-scope reads),
 * and identical results with 1 and 2 threads. Models are built in C. */
#include "../robustness/model_builder.h"
#include "core/core.h"
#include "onnxq.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

enum { T_FLOAT = 1, T_INT64 = 7, T_BOOL = 9 };
#define TRIPS 3

static const float W[4] = {0.5f, -1.f, 2.f, 0.25f};

/* x[N,4], cond, trip →
 *   chain: t1 = x+x, t2 = t1*w, t3 = t2+x, y = t3*t1, z = Identity(t2)
 *   if:    cond ? x+w : x*w           (branches read outer x, w)
 *   loop:  acc0 = x; acc = acc + x per iteration (outer x); scan of acc */
static Onnx__ModelProto *runtime_model(mb *b)
{
    Onnx__GraphProto *g = mb_graph(b, "runtime");
    const char *np[] = {"N", NULL};
    int64_t nd[] = {0, 4};
    Onnx__TensorProto *w = mb_tensor(b, "w", T_FLOAT, 1, (int64_t[]){4});
    mb_tensor_raw(b, w, W, sizeof W);
    mb_initializer(b, g, w);
    mb_input(b, g, mb_vi(b, "x", T_FLOAT, 2, nd, np));
    mb_input(b, g, mb_vi(b, "cond", T_BOOL, 0, NULL, NULL));
    mb_input(b, g, mb_vi(b, "trip", T_INT64, 0, NULL, NULL));

    mb_node(b, g, "Add", "n1", "x,x", "t1");
    mb_node(b, g, "Mul", "n2", "t1,w", "t2");
    mb_node(b, g, "Add", "n3", "t2,x", "t3");
    mb_node(b, g, "Mul", "n4", "t3,t1", "y");
    mb_node(b, g, "Identity", "n5", "t2", "z");

    Onnx__NodeProto *ifn = mb_node(b, g, "If", "if", "cond", "if_out");
    Onnx__GraphProto *tg = mb_graph(b, "then"), *eg = mb_graph(b, "else");
    mb_node(b, tg, "Add", "then_add", "x,w", "then_out");
    mb_output(b, tg, mb_vi(b, "then_out", T_FLOAT, 2, nd, np));
    mb_node(b, eg, "Mul", "else_mul", "x,w", "else_out");
    mb_output(b, eg, mb_vi(b, "else_out", T_FLOAT, 2, nd, np));
    mb_attr_graph(b, ifn, "then_branch", tg);
    mb_attr_graph(b, ifn, "else_branch", eg);

    Onnx__NodeProto *loop = mb_node(b, g, "Loop", "loop", "trip,,x", "acc_final,acc_scan");
    Onnx__GraphProto *body = mb_graph(b, "body");
    mb_input(b, body, mb_vi(b, "i", T_INT64, 0, NULL, NULL));
    mb_input(b, body, mb_vi(b, "c_in", T_BOOL, 0, NULL, NULL));
    mb_input(b, body, mb_vi(b, "acc_in", T_FLOAT, -1, NULL, NULL));
    mb_node(b, body, "Identity", "body_c", "c_in", "c_out");
    mb_node(b, body, "Add", "body_add", "acc_in,x", "acc_out");
    mb_node(b, body, "Identity", "body_scan", "acc_out", "scan_out");
    mb_output(b, body, mb_vi(b, "c_out", T_BOOL, 0, NULL, NULL));
    mb_output(b, body, mb_vi(b, "acc_out", T_FLOAT, -1, NULL, NULL));
    mb_output(b, body, mb_vi(b, "scan_out", T_FLOAT, -1, NULL, NULL));
    mb_attr_graph(b, loop, "body", body);

    mb_output(b, g, mb_vi(b, "y", T_FLOAT, 2, nd, np));
    mb_output(b, g, mb_vi(b, "z", T_FLOAT, 2, nd, np));
    mb_output(b, g, mb_vi(b, "if_out", T_FLOAT, 2, nd, np));
    mb_output(b, g, mb_vi(b, "acc_final", T_FLOAT, 2, nd, np));
    mb_output(b, g, mb_vi(b, "acc_scan", T_FLOAT, 3, (int64_t[]){TRIPS, 0, 4}, (const char *[]){NULL, "N", NULL}));
    return mb_model(b, 13, g);
}

enum { N_OUT = 5 };

typedef struct run_result {
    oq_tensor *out[N_OUT];
} run_result;

static void free_result(run_result *r)
{
    for (int i = 0; i < N_OUT; i++) {
        oq_tensor_destroy(r->out[i]);
        r->out[i] = NULL;
    }
}

static float xval(int64_t i) { return (float)((i * 37) % 19) * 0.25f - 2.f; }

static int run(oq_session *s, int64_t batch, int cond, int64_t trip, run_result *r)
{
    float *x = malloc((size_t)(batch * 4 + 1) * sizeof *x);
    for (int64_t i = 0; i < batch * 4; i++)
        x[i] = xval(i);
    uint8_t c = (uint8_t)cond;
    oq_tensor *tx = NULL, *tc = NULL, *tt = NULL;
    CHECK_OK(oq_tensor_wrap(OQ_FLOAT, 2, (int64_t[]){batch, 4}, x, &tx));
    CHECK_OK(oq_tensor_wrap(OQ_BOOL, 0, NULL, &c, &tc));
    CHECK_OK(oq_tensor_wrap(OQ_INT64, 0, NULL, &trip, &tt));
    const oq_tensor *in[3] = {tx, tc, tt};
    memset(r, 0, sizeof *r);
    oq_status st = oq_session_run(s, in, 3, r->out, N_OUT);
    CHECK_OK(st);
    oq_tensor_destroy(tx);
    oq_tensor_destroy(tc);
    oq_tensor_destroy(tt);
    free(x);
    return st == OQ_OK;
}

/* Checks every output against values computed here. */
static void check_result(const run_result *r, int64_t batch, int cond, int64_t trip)
{
    for (int i = 0; i < N_OUT; i++)
        CHECK(r->out[i] && r->out[i]->dtype == OQ_FLOAT);
    if (!r->out[0] || !r->out[1] || !r->out[2] || !r->out[3] || !r->out[4])
        return;
    for (int i = 0; i < 4; i++)
        CHECK(r->out[i]->ndim == 2 && r->out[i]->dims[0] == batch && r->out[i]->dims[1] == 4);
    CHECK(r->out[4]->ndim == 3 && r->out[4]->dims[0] == trip && r->out[4]->dims[1] == batch &&
          r->out[4]->dims[2] == 4);
    const float *y = r->out[0]->data, *z = r->out[1]->data, *f = r->out[2]->data, *acc = r->out[3]->data,
                *scan = r->out[4]->data;
    int bad = 0;
    for (int64_t i = 0; i < batch * 4; i++) {
        float x = xval(i), w = W[i % 4], t1 = x + x, t2 = t1 * w, t3 = t2 + x;
        bad += y[i] != t3 * t1;
        bad += z[i] != t2;
        bad += f[i] != (cond ? x + w : x * w);
        float a = x;
        for (int64_t k = 0; k < trip; k++) {
            a += x;
            bad += scan[k * batch * 4 + i] != a;
        }
        bad += acc[i] != a;
    }
    CHECK(bad == 0);
}

static int same_outputs(const run_result *a, const run_result *b)
{
    for (int i = 0; i < N_OUT; i++) {
        const oq_tensor *x = a->out[i], *y = b->out[i];
        if (!x || !y || x->dtype != y->dtype || !oq_shape_equal(x->ndim, x->dims, y->ndim, y->dims) ||
            x->nbytes != y->nbytes || memcmp(x->data, y->data, x->nbytes))
            return 0;
    }
    return 1;
}

static oq_session *make_session(const oq_model *m, int threads)
{
    oq_session_options so = oq_session_options_default();
    so.threads = threads;
    oq_session *s = NULL;
    CHECK_OK(oq_session_create(m, &so, &s));
    return s;
}

/* Same shapes twice (the second run uses the planned arena), new shapes, and back. */
static void test_arena_and_batches(const oq_model *m)
{
    oq_session *s = make_session(m, 1);
    if (!s)
        return;
    run_result r1, r2, r3;
    if (run(s, 2, 1, TRIPS, &r1))
        check_result(&r1, 2, 1, TRIPS);
    if (run(s, 2, 1, TRIPS, &r2))
        check_result(&r2, 2, 1, TRIPS);
    CHECK(same_outputs(&r1, &r2));
    if (run(s, 2, 1, TRIPS, &r3))
        CHECK(same_outputs(&r1, &r3));
    free_result(&r2);
    free_result(&r3);

    /* symbolic batch: 1, then 3 (larger than planned), then 1 again, then 3 again */
    static const int64_t batches[] = {1, 3, 1, 3, 3, 2};
    for (size_t k = 0; k < sizeof batches / sizeof *batches; k++) {
        run_result r;
        int cond = (int)(k % 2);
        if (run(s, batches[k], cond, TRIPS, &r))
            check_result(&r, batches[k], cond, TRIPS);
        free_result(&r);
    }
    /* and the first shape still gives the first answer */
    if (run(s, 2, 1, TRIPS, &r2))
        CHECK(same_outputs(&r1, &r2));
    free_result(&r1);
    free_result(&r2);
    oq_session_destroy(s);
}

/* If picks its branch per run; both read outer-scope values. */
static void test_if_branches(const oq_model *m)
{
    oq_session *s = make_session(m, 1);
    if (!s)
        return;
    for (int rep = 0; rep < 2; rep++)
        for (int cond = 0; cond < 2; cond++) {
            run_result r;
            if (run(s, 3, cond, TRIPS, &r)) {
                check_result(&r, 3, cond, TRIPS);
                const float *f = r.out[2]->data;
                CHECK(f[1] == (cond ? xval(1) + W[1] : xval(1) * W[1]));
            }
            free_result(&r);
        }
    oq_session_destroy(s);
}

/* Loop stacks one scan slice per iteration; the carried value ends at x*(trip+1). */
static void test_loop_scan(void)
{
    mb b = {0};
    Onnx__GraphProto *g = mb_graph(&b, "loop_only");
    mb_input(&b, g, mb_vi(&b, "trip", T_INT64, 0, NULL, NULL));
    mb_input(&b, g, mb_vi(&b, "start", T_FLOAT, 1, (int64_t[]){2}, NULL));
    Onnx__TensorProto *one = mb_tensor(&b, "one", T_FLOAT, 1, (int64_t[]){2});
    float ones[2] = {1.f, 10.f};
    mb_tensor_raw(&b, one, ones, sizeof ones);
    mb_initializer(&b, g, one);
    Onnx__NodeProto *loop = mb_node(&b, g, "Loop", "counter", "trip,,start", "final,trace,iters");
    Onnx__GraphProto *body = mb_graph(&b, "body");
    mb_input(&b, body, mb_vi(&b, "i", T_INT64, 0, NULL, NULL));
    mb_input(&b, body, mb_vi(&b, "c", T_BOOL, 0, NULL, NULL));
    mb_input(&b, body, mb_vi(&b, "v", T_FLOAT, 1, (int64_t[]){2}, NULL));
    mb_node(&b, body, "Identity", "bc", "c", "c2");
    mb_node(&b, body, "Add", "bv", "v,one", "v2");
    mb_node(&b, body, "Identity", "bs", "v", "trace_v");
    mb_node(&b, body, "Identity", "bi", "i", "iter_copy");
    mb_output(&b, body, mb_vi(&b, "c2", T_BOOL, 0, NULL, NULL));
    mb_output(&b, body, mb_vi(&b, "v2", T_FLOAT, 1, (int64_t[]){2}, NULL));
    mb_output(&b, body, mb_vi(&b, "trace_v", T_FLOAT, 1, (int64_t[]){2}, NULL));
    mb_output(&b, body, mb_vi(&b, "iter_copy", T_INT64, 0, NULL, NULL));
    mb_attr_graph(&b, loop, "body", body);
    mb_output(&b, g, mb_vi(&b, "final", T_FLOAT, 1, (int64_t[]){2}, NULL));
    mb_output(&b, g, mb_vi(&b, "trace", T_FLOAT, 2, (int64_t[]){MB_DIM_UNKNOWN, 2}, NULL));
    mb_output(&b, g, mb_vi(&b, "iters", T_INT64, 1, (int64_t[]){MB_DIM_UNKNOWN}, NULL));
    size_t len;
    uint8_t *buf = mb_pack(&b, mb_model(&b, 16, g), &len);
    oq_model *m = NULL;
    CHECK_OK(oq_model_load_memory(buf, len, "loop.onnx", NULL, &m));
    oq_session *s = m ? make_session(m, 1) : NULL;
    for (int64_t trip = 1; s && trip <= 6; trip += 5) {
        float start[2] = {0.5f, -3.f};
        oq_tensor *tt = NULL, *ts = NULL, *out[3] = {0};
        CHECK_OK(oq_tensor_wrap(OQ_INT64, 0, NULL, &trip, &tt));
        CHECK_OK(oq_tensor_wrap(OQ_FLOAT, 1, (int64_t[]){2}, start, &ts));
        const oq_tensor *in[2] = {tt, ts};
        CHECK_OK(oq_session_run(s, in, 2, out, 3));
        if (out[0] && out[1] && out[2]) {
            const float *fin = out[0]->data, *tr = out[1]->data;
            const int64_t *it = out[2]->data;
            CHECK(fin[0] == 0.5f + (float)trip && fin[1] == -3.f + 10.f * (float)trip);
            CHECK(out[1]->ndim == 2 && out[1]->dims[0] == trip && out[1]->dims[1] == 2);
            CHECK(out[2]->dtype == OQ_INT64 && out[2]->ndim == 1 && out[2]->dims[0] == trip);
            for (int64_t k = 0; k < trip && out[1]->dims[0] == trip; k++) {
                CHECK(tr[2 * k] == 0.5f + (float)k && tr[2 * k + 1] == -3.f + 10.f * (float)k);
                CHECK(it[k] == k);
            }
        }
        for (int i = 0; i < 3; i++)
            oq_tensor_destroy(out[i]);
        oq_tensor_destroy(tt);
        oq_tensor_destroy(ts);
    }
    oq_session_destroy(s);
    oq_model_destroy(m);
    mb_free(&b);
}

/* 1 and 2 threads agree bit for bit, on a batch big enough to split. */
static void test_threads(const oq_model *m)
{
    oq_session *s1 = make_session(m, 1), *s2 = make_session(m, 2);
    if (s1 && s2) {
        for (int rep = 0; rep < 3; rep++) {
            int64_t batch = rep == 1 ? 5 : 20000;
            run_result a, b;
            int ok1 = run(s1, batch, rep & 1, TRIPS, &a), ok2 = run(s2, batch, rep & 1, TRIPS, &b);
            if (ok1 && ok2) {
                CHECK(same_outputs(&a, &b));
                check_result(&b, batch, rep & 1, TRIPS);
            }
            free_result(&a);
            free_result(&b);
        }
    }
    oq_session_destroy(s1);
    oq_session_destroy(s2);
}

int main(void)
{
    oq_set_log_callback(NULL, NULL, OQ_LOG_ERROR);
    mb b = {0};
    size_t len;
    uint8_t *buf = mb_pack(&b, runtime_model(&b), &len);
    oq_model *m = NULL;
    CHECK_OK(oq_model_load_memory(buf, len, "runtime.onnx", NULL, &m));
    if (m) {
        test_arena_and_batches(m);
        test_if_branches(m);
        test_threads(m);
    }
    test_loop_scan();
    oq_model_destroy(m);
    mb_free(&b);
    return test_summary("test_runtime");
}
