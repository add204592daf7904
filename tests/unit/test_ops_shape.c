/* Unit tests for the shape, data-movement and recurrent operators, called
 * through their oq_op_def with hand-built nodes: Reshape 0/-1, Slice with
 * negative steps, Transpose against a naive reference (single and multi-threaded),
 * Concat/Split round trip, and LSTM/GRU against hand-computed cells. */
#include "test.h"

#include "ops/op.h"

#include <stdlib.h>
#include <string.h>

typedef struct tnode {
    oq_node node;
    oq_attr attrs[6];
    int64_t ints[6][8];
    oq_bytes strs[6];
} tnode;

static void tnode_init(tnode *t, const char *op_type)
{
    memset(t, 0, sizeof *t);
    t->node.name = (char *)"test";
    t->node.op_type = (char *)op_type;
    t->node.domain = (char *)"";
    t->node.attrs = t->attrs;
}

static void attr_int(tnode *t, const char *name, int64_t v)
{
    oq_attr *a = &t->attrs[t->node.n_attrs++];
    a->name = (char *)name;
    a->type = OQ_ATTR_INT;
    a->i = v;
}

static void attr_ints(tnode *t, const char *name, const int64_t *v, size_t n)
{
    size_t k = t->node.n_attrs++;
    oq_attr *a = &t->attrs[k];
    a->name = (char *)name;
    a->type = OQ_ATTR_INTS;
    memcpy(t->ints[k], v, n * sizeof *v);
    a->ints = t->ints[k];
    a->n_ints = n;
}

static void attr_string(tnode *t, const char *name, const char *v)
{
    size_t k = t->node.n_attrs++;
    oq_attr *a = &t->attrs[k];
    a->name = (char *)name;
    a->type = OQ_ATTR_STRING;
    a->s.data = (char *)v;
    a->s.len = strlen(v);
}

static oq_tensor *mk(oq_dtype dt, int nd, const int64_t *dims, const void *data)
{
    oq_tensor *t = NULL;
    if (oq_tensor_create(dt, nd, dims, &t) != OQ_OK)
        return NULL;
    if (data)
        memcpy(t->data, data, (size_t)oq_tensor_numel(t) * oq_dtype_size(dt));
    return t;
}

static oq_tensor *mk_i64(int n, const int64_t *v)
{
    int64_t d = n;
    return mk(OQ_INT64, 1, &d, v);
}

/* Runs def (prepare, infer, run, destroy); outputs are new tensors the caller frees. */
static oq_status run_op(const oq_op_def *def, tnode *t, int64_t opset, oq_tensor **in, size_t n_in, oq_tensor **out,
                        size_t n_out, oq_threadpool *tp)
{
    const oq_tensor *consts[8] = {0};
    oq_op_node n = {.node = &t->node, .label = "test", .opset = opset, .n_inputs = n_in, .n_outputs = n_out,
                    .consts = consts, .tp = tp};
    const oq_tensor *cin[8];
    for (size_t i = 0; i < n_in; i++)
        cin[i] = in[i];
    for (size_t o = 0; o < n_out; o++)
        out[o] = calloc(1, sizeof(oq_tensor));
    oq_status st = def->prepare ? def->prepare(&n) : OQ_OK;
    if (st == OQ_OK && def->infer) {
        st = def->infer(&n, cin, out);
        for (size_t o = 0; st == OQ_OK && o < n_out; o++) {
            int64_t dims[OQ_MAX_DIMS];
            memcpy(dims, out[o]->dims, sizeof dims);
            st = oq_tensor_alloc(out[o], out[o]->dtype, out[o]->ndim, dims);
        }
    }
    if (st == OQ_OK)
        st = def->run(&n, cin, out);
    if (def->destroy)
        def->destroy(n.state);
    return st;
}

static void free_all(oq_tensor **t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        oq_tensor_destroy(t[i]);
}

static bool shape_is(const oq_tensor *t, int nd, const int64_t *d) { return oq_shape_equal(t->ndim, t->dims, nd, d); }

/* ---- Reshape ---- */
static void test_reshape(void)
{
    float x[24];
    for (int i = 0; i < 24; i++)
        x[i] = (float)i;
    int64_t xd[3] = {2, 3, 4};
    tnode t;
    tnode_init(&t, "Reshape");
    {
        int64_t s[3] = {0, -1, 2};
        oq_tensor *in[2] = {mk(OQ_FLOAT, 3, xd, x), mk_i64(3, s)}, *out[1];
        CHECK_OK(run_op(&oq_op_reshape, &t, 14, in, 2, out, 1, NULL));
        int64_t want[3] = {2, 6, 2};
        CHECK(shape_is(out[0], 3, want));
        CHECK(!memcmp(out[0]->data, x, sizeof x));
        free_all(in, 2);
        free_all(out, 1);
    }
    {
        /* allowzero: a 0 stays 0, so a nonempty input cannot become [0, -1] */
        tnode_init(&t, "Reshape");
        attr_int(&t, "allowzero", 1);
        int64_t s[2] = {0, -1};
        oq_tensor *in[2] = {mk(OQ_FLOAT, 3, xd, x), mk_i64(2, s)}, *out[1];
        CHECK(run_op(&oq_op_reshape, &t, 14, in, 2, out, 1, NULL) != OQ_OK);
        free_all(in, 2);
        free_all(out, 1);
    }
    {
        tnode_init(&t, "Reshape");
        int64_t s[2] = {-1, -1};
        oq_tensor *in[2] = {mk(OQ_FLOAT, 3, xd, x), mk_i64(2, s)}, *out[1];
        CHECK(run_op(&oq_op_reshape, &t, 14, in, 2, out, 1, NULL) != OQ_OK);
        free_all(in, 2);
        free_all(out, 1);
    }
    {
        tnode_init(&t, "Reshape");
        int64_t s[2] = {5, -1};
        oq_tensor *in[2] = {mk(OQ_FLOAT, 3, xd, x), mk_i64(2, s)}, *out[1];
        CHECK(run_op(&oq_op_reshape, &t, 14, in, 2, out, 1, NULL) != OQ_OK);
        free_all(in, 2);
        free_all(out, 1);
    }
}

/* ---- Slice ---- */
static void test_slice(void)
{
    float x[20];
    for (int i = 0; i < 20; i++)
        x[i] = (float)i;
    int64_t xd[2] = {4, 5};
    tnode t;
    tnode_init(&t, "Slice");
    /* x[::-1, -1:0:-2] -> rows 3,2,1,0 and columns 4,2 */
    int64_t st_[2] = {-1, -1}, en[2] = {INT64_MIN, 0}, ax[2] = {0, 1}, sp[2] = {-1, -2};
    oq_tensor *in[5] = {mk(OQ_FLOAT, 2, xd, x), mk_i64(2, st_), mk_i64(2, en), mk_i64(2, ax), mk_i64(2, sp)}, *out[1];
    CHECK_OK(run_op(&oq_op_slice, &t, 13, in, 5, out, 1, NULL));
    int64_t want[2] = {4, 2};
    CHECK(shape_is(out[0], 2, want));
    const float expect[8] = {19, 17, 14, 12, 9, 7, 4, 2};
    for (int i = 0; i < 8 && out[0]->data; i++)
        CHECK(((float *)out[0]->data)[i] == expect[i]);
    free_all(in, 5);
    free_all(out, 1);

    /* clamped out-of-range starts give an empty result, not an error */
    int64_t s2[1] = {10}, e2[1] = {20}, a2[1] = {1};
    oq_tensor *in2[4] = {mk(OQ_FLOAT, 2, xd, x), mk_i64(1, s2), mk_i64(1, e2), mk_i64(1, a2)}, *out2[1];
    CHECK_OK(run_op(&oq_op_slice, &t, 13, in2, 4, out2, 1, NULL));
    int64_t want2[2] = {4, 0};
    CHECK(shape_is(out2[0], 2, want2));
    free_all(in2, 4);
    free_all(out2, 1);
}

/* ---- Transpose vs a naive reference ---- */
static void naive_transpose(const char *src, char *dst, int nd, const int64_t *dims, const int64_t *perm, size_t es)
{
    int64_t od[OQ_MAX_DIMS], is[OQ_MAX_DIMS], s = 1;
    for (int a = nd - 1; a >= 0; a--) {
        is[a] = s;
        s *= dims[a];
    }
    for (int a = 0; a < nd; a++)
        od[a] = dims[perm[a]];
    int64_t total = s;
    for (int64_t o = 0; o < total; o++) {
        int64_t rem = o, off = 0;
        for (int a = nd - 1; a >= 0; a--) {
            off += (rem % od[a]) * is[perm[a]];
            rem /= od[a];
        }
        memcpy(dst + o * (int64_t)es, src + off * (int64_t)es, es);
    }
}

static void check_transpose(oq_dtype dt, int nd, const int64_t *dims, const int64_t *perm, oq_threadpool *tp)
{
    tnode t;
    tnode_init(&t, "Transpose");
    attr_ints(&t, "perm", perm, (size_t)nd);
    oq_tensor *in[1] = {mk(dt, nd, dims, NULL)}, *out[1];
    size_t es = oq_dtype_size(dt);
    int64_t n = oq_tensor_numel(in[0]);
    for (int64_t i = 0; i < n * (int64_t)es; i++)
        ((unsigned char *)in[0]->data)[i] = (unsigned char)(i * 7 + i / 251);
    CHECK_OK(run_op(&oq_op_transpose, &t, 13, in, 1, out, 1, tp));
    char *ref = malloc((size_t)n * es + 1);
    naive_transpose(in[0]->data, ref, nd, dims, perm, es);
    bool same = out[0]->data && !memcmp(ref, out[0]->data, (size_t)n * es);
    if (!same) {
        fprintf(stderr, "transpose mismatch: rank %d es %zu perm", nd, es);
        for (int a = 0; a < nd; a++)
            fprintf(stderr, " %lld", (long long)perm[a]);
        fprintf(stderr, "\n");
    }
    CHECK(same);
    free(ref);
    free_all(in, 1);
    free_all(out, 1);
}

static void test_transpose(oq_threadpool *tp)
{
    int64_t d2[2] = {37, 53}, p2[2] = {1, 0};
    check_transpose(OQ_FLOAT, 2, d2, p2, NULL);
    check_transpose(OQ_UINT8, 2, d2, p2, NULL);
    check_transpose(OQ_DOUBLE, 2, d2, p2, NULL);
    check_transpose(OQ_INT16, 2, d2, p2, NULL);
    int64_t bert[4] = {2, 128, 12, 64}, pb[4] = {0, 2, 1, 3};
    check_transpose(OQ_FLOAT, 4, bert, pb, NULL);
    check_transpose(OQ_FLOAT, 4, bert, pb, tp);
    int64_t nchw[4] = {2, 64, 28, 28}, to_nhwc[4] = {0, 2, 3, 1}, to_nchw[4] = {0, 3, 1, 2};
    check_transpose(OQ_FLOAT, 4, nchw, to_nhwc, NULL);
    check_transpose(OQ_FLOAT, 4, nchw, to_nhwc, tp);
    check_transpose(OQ_FLOAT, 4, nchw, to_nchw, tp);
    check_transpose(OQ_COMPLEX128, 4, nchw, to_nchw, NULL);
    /* every permutation of a 4-D shape with size-1 axes mixed in */
    int64_t d4[4] = {3, 1, 5, 7};
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 4; c++) {
                int d = 6 - a - b - c;
                if (a == b || a == c || b == c || d < 0 || d > 3 || d == a || d == b || d == c)
                    continue;
                int64_t p[4] = {a, b, c, d};
                check_transpose(OQ_FLOAT, 4, d4, p, NULL);
                check_transpose(OQ_UINT8, 4, d4, p, tp);
            }
    int64_t d5[5] = {2, 3, 4, 5, 6}, p5[5] = {4, 2, 0, 3, 1};
    check_transpose(OQ_INT64, 5, d5, p5, tp);
}

/* ---- Concat / Split round trip ---- */
static void test_concat_split(oq_threadpool *tp)
{
    int64_t da[3] = {4, 3, 100}, db[3] = {4, 5, 100};
    oq_tensor *in[2] = {mk(OQ_FLOAT, 3, da, NULL), mk(OQ_FLOAT, 3, db, NULL)}, *out[1];
    for (int i = 0; i < 1200; i++)
        ((float *)in[0]->data)[i] = (float)i;
    for (int i = 0; i < 2000; i++)
        ((float *)in[1]->data)[i] = (float)-i;
    tnode t;
    tnode_init(&t, "Concat");
    attr_int(&t, "axis", 1);
    CHECK_OK(run_op(&oq_op_concat, &t, 13, in, 2, out, 1, tp));
    int64_t want[3] = {4, 8, 100};
    CHECK(shape_is(out[0], 3, want));
    tnode_init(&t, "Split");
    attr_int(&t, "axis", -2);
    int64_t sizes[2] = {3, 5};
    oq_tensor *sin[2] = {out[0], mk_i64(2, sizes)}, *sout[2];
    CHECK_OK(run_op(&oq_op_split, &t, 13, sin, 2, sout, 2, tp));
    CHECK(sout[0]->nbytes == in[0]->nbytes && !memcmp(sout[0]->data, in[0]->data, in[0]->nbytes));
    CHECK(sout[1]->nbytes == in[1]->nbytes && !memcmp(sout[1]->data, in[1]->data, in[1]->nbytes));
    free_all(in, 2);
    free_all(sin, 2);
    free_all(sout, 2);
}

/* ---- LSTM / GRU against hand-computed cells ---- */
static float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }

static void test_lstm(void)
{
    /* T=2, B=1, I=1, H=1; gates i,o,f,c with weights w, recurrences r, bias */
    const float w[4] = {0.5f, -0.3f, 0.8f, 0.2f}, r[4] = {0.1f, 0.4f, -0.6f, 0.7f};
    const float bias[8] = {0.1f, 0.2f, 0.3f, 0.4f, -0.05f, 0.0f, 0.05f, 0.1f};
    const float x[2] = {1.0f, -2.0f};
    int64_t xd[3] = {2, 1, 1}, wd[3] = {1, 4, 1}, bd[2] = {1, 8};
    oq_tensor *in[4] = {mk(OQ_FLOAT, 3, xd, x), mk(OQ_FLOAT, 3, wd, w), mk(OQ_FLOAT, 3, wd, r), mk(OQ_FLOAT, 2, bd, bias)};
    oq_tensor *out[3];
    tnode t;
    tnode_init(&t, "LSTM");
    attr_int(&t, "hidden_size", 1);
    CHECK_OK(run_op(&oq_op_lstm, &t, 14, in, 4, out, 3, NULL));
    float h = 0, c = 0, ys[2];
    for (int s = 0; s < 2; s++) {
        float gi = sigm(w[0] * x[s] + r[0] * h + bias[0] + bias[4]);
        float go = sigm(w[1] * x[s] + r[1] * h + bias[1] + bias[5]);
        float gf = sigm(w[2] * x[s] + r[2] * h + bias[2] + bias[6]);
        float gc = tanhf(w[3] * x[s] + r[3] * h + bias[3] + bias[7]);
        c = gf * c + gi * gc;
        h = go * tanhf(c);
        ys[s] = h;
    }
    int64_t yd[4] = {2, 1, 1, 1};
    CHECK(shape_is(out[0], 4, yd));
    if (out[0]->data) {
        CHECK_NEAR(((float *)out[0]->data)[0], ys[0], 1e-6);
        CHECK_NEAR(((float *)out[0]->data)[1], ys[1], 1e-6);
        CHECK_NEAR(*(float *)out[1]->data, h, 1e-6);
        CHECK_NEAR(*(float *)out[2]->data, c, 1e-6);
    }
    /* first step by hand: every pre-activation is known */
    CHECK_NEAR(ys[0], sigm(-0.1f) * tanhf(sigm(0.55f) * tanhf(0.7f)), 1e-6);
    free_all(in, 4);
    free_all(out, 3);

    /* reverse direction with sequence_lens: Y beyond the length is zero */
    const float x3[3] = {0.5f, 1.5f, -1.0f};
    int64_t x3d[3] = {3, 1, 1}, one = 1;
    const int32_t len = 2;
    oq_tensor *rin[5] = {mk(OQ_FLOAT, 3, x3d, x3), mk(OQ_FLOAT, 3, wd, w), mk(OQ_FLOAT, 3, wd, r), NULL,
                         mk(OQ_INT32, 1, &one, &len)};
    tnode_init(&t, "LSTM");
    attr_int(&t, "hidden_size", 1);
    attr_string(&t, "direction", "reverse");
    CHECK_OK(run_op(&oq_op_lstm, &t, 14, rin, 5, out, 2, NULL));
    h = 0, c = 0;
    float yr[3] = {0, 0, 0};
    for (int s = 1; s >= 0; s--) {
        float gi = sigm(w[0] * x3[s] + r[0] * h), go = sigm(w[1] * x3[s] + r[1] * h);
        float gf = sigm(w[2] * x3[s] + r[2] * h), gc = tanhf(w[3] * x3[s] + r[3] * h);
        c = gf * c + gi * gc;
        h = go * tanhf(c);
        yr[s] = h;
    }
    for (int s = 0; s < 3 && out[0]->data; s++)
        CHECK_NEAR(((float *)out[0]->data)[s], yr[s], 1e-6);
    if (out[1]->data)
        CHECK_NEAR(*(float *)out[1]->data, yr[0], 1e-6);
    free_all(rin, 5);
    free_all(out, 2);
}

static void test_gru(void)
{
    /* T=1, B=1, I=1, H=1, nonzero initial state: both linear_before_reset modes */
    const float w[3] = {0.3f, -0.5f, 0.9f}, r[3] = {0.2f, 0.6f, -0.4f}, bias[6] = {0.1f, 0.0f, 0.2f, -0.1f, 0.3f, 0.5f};
    const float x = 0.7f, h0 = 0.25f;
    int64_t xd[3] = {1, 1, 1}, wd[3] = {1, 3, 1}, bd[2] = {1, 6};
    for (int lbr = 0; lbr < 2; lbr++) {
        oq_tensor *in[6] = {mk(OQ_FLOAT, 3, xd, &x), mk(OQ_FLOAT, 3, wd, w), mk(OQ_FLOAT, 3, wd, r),
                            mk(OQ_FLOAT, 2, bd, bias), NULL, mk(OQ_FLOAT, 3, xd, &h0)};
        oq_tensor *out[2];
        tnode t;
        tnode_init(&t, "GRU");
        attr_int(&t, "hidden_size", 1);
        attr_int(&t, "linear_before_reset", lbr);
        CHECK_OK(run_op(&oq_op_gru, &t, 14, in, 6, out, 2, NULL));
        float z = sigm(w[0] * x + r[0] * h0 + bias[0] + bias[3]);
        float rr = sigm(w[1] * x + r[1] * h0 + bias[1] + bias[4]);
        float hh = lbr ? tanhf(w[2] * x + bias[2] + rr * (r[2] * h0 + bias[5]))
                       : tanhf(w[2] * x + r[2] * (rr * h0) + bias[2] + bias[5]);
        float h = (1 - z) * hh + z * h0;
        if (out[1]->data)
            CHECK_NEAR(*(float *)out[1]->data, h, 1e-6);
        free_all(in, 6);
        free_all(out, 2);
    }
}

/* ---- threaded paths give the same bytes as the single-threaded ones ---- */
static void check_threads(const char *what, const oq_op_def *def, tnode *t, int64_t opset, oq_tensor **in, size_t n_in,
                          size_t n_out, oq_threadpool *tp)
{
    oq_tensor *a[3] = {0}, *b[3] = {0};
    CHECK_OK(run_op(def, t, opset, in, n_in, a, n_out, NULL));
    CHECK_OK(run_op(def, t, opset, in, n_in, b, n_out, tp));
    for (size_t o = 0; o < n_out; o++) {
        bool same = a[o]->nbytes == b[o]->nbytes && oq_shape_equal(a[o]->ndim, a[o]->dims, b[o]->ndim, b[o]->dims) &&
                    !memcmp(a[o]->data, b[o]->data, a[o]->nbytes);
        if (!same)
            fprintf(stderr, "%s: output %zu differs with threads\n", what, o);
        CHECK(same);
    }
    free_all(a, n_out);
    free_all(b, n_out);
}

static oq_tensor *random_floats(int nd, const int64_t *dims)
{
    oq_tensor *t = mk(OQ_FLOAT, nd, dims, NULL);
    uint32_t r = 12345;
    for (int64_t i = 0; t && i < oq_tensor_numel(t); i++) {
        r = r * 1664525u + 1013904223u;
        ((float *)t->data)[i] = (float)(r >> 8) / (float)(1u << 24) - 0.5f;
    }
    return t;
}

static void test_threads(oq_threadpool *tp)
{
    tnode t;
    int64_t xd[4] = {2, 16, 40, 48};
    oq_tensor *x = random_floats(4, xd);
    {
        int64_t idx[6] = {3, 0, -1, 7, 7, 12}, id[2] = {2, 3};
        oq_tensor *in[2] = {x, mk(OQ_INT64, 2, id, idx)};
        tnode_init(&t, "Gather");
        attr_int(&t, "axis", 1);
        check_threads("Gather", &oq_op_gather, &t, 13, in, 2, 1, tp);
        oq_tensor_destroy(in[1]);
    }
    {
        int64_t st_[2] = {1, 40}, en[2] = {15, 2}, ax[2] = {1, 3}, sp[2] = {2, -3};
        oq_tensor *in[5] = {x, mk_i64(2, st_), mk_i64(2, en), mk_i64(2, ax), mk_i64(2, sp)};
        tnode_init(&t, "Slice");
        check_threads("Slice", &oq_op_slice, &t, 13, in, 5, 1, tp);
        free_all(in + 1, 4);
    }
    {
        int64_t shape[5] = {3, 1, 1, 1, 1};
        oq_tensor *in[2] = {x, mk_i64(5, shape)};
        tnode_init(&t, "Expand");
        check_threads("Expand", &oq_op_expand, &t, 13, in, 2, 1, tp);
        int64_t rep[4] = {2, 1, 3, 2};
        oq_tensor *tin[2] = {x, mk_i64(4, rep)};
        tnode_init(&t, "Tile");
        check_threads("Tile", &oq_op_tile, &t, 13, tin, 2, 1, tp);
        oq_tensor_destroy(in[1]);
        oq_tensor_destroy(tin[1]);
    }
    static const char *const pad_modes[4] = {"constant", "reflect", "edge", "wrap"};
    for (int m = 0; m < 4; m++) {
        int64_t pads[8] = {0, 1, 3, -2, 1, 2, 5, 1};
        oq_tensor *in[2] = {x, mk_i64(8, pads)};
        tnode_init(&t, "Pad");
        attr_string(&t, "mode", pad_modes[m]);
        check_threads(pad_modes[m], &oq_op_pad, &t, 19, in, 2, 1, tp);
        oq_tensor_destroy(in[1]);
    }
    static const char *const modes[3] = {"nearest", "linear", "cubic"};
    for (int m = 0; m < 3; m++) {
        float sc[4] = {1, 1, 2.5f, 0.75f};
        int64_t sd = 4;
        oq_tensor *in[3] = {x, NULL, mk(OQ_FLOAT, 1, &sd, sc)};
        tnode_init(&t, "Resize");
        attr_string(&t, "mode", modes[m]);
        check_threads(modes[m], &oq_op_resize, &t, 13, in, 3, 1, tp);
        oq_tensor_destroy(in[2]);
    }
    oq_tensor_destroy(x);
    {
        /* bidirectional LSTM big enough for the threaded matmul */
        int64_t H = 64, I = 48, T = 5, B = 3;
        int64_t xd3[3] = {T, B, I}, wd[3] = {2, 4 * H, I}, rd[3] = {2, 4 * H, H}, bd[2] = {2, 8 * H};
        oq_tensor *in[4] = {random_floats(3, xd3), random_floats(3, wd), random_floats(3, rd), random_floats(2, bd)};
        tnode_init(&t, "LSTM");
        attr_int(&t, "hidden_size", H);
        attr_string(&t, "direction", "bidirectional");
        check_threads("LSTM", &oq_op_lstm, &t, 14, in, 4, 3, tp);
        free_all(in, 4);
    }
}

/* ---- Einsum: the float matmul path against the general path (run in double) ---- */
static void check_einsum(const char *eq, int nd0, const int64_t *d0, int nd1, const int64_t *d1)
{
    oq_tensor *f[2] = {random_floats(nd0, d0), nd1 ? random_floats(nd1, d1) : NULL};
    oq_tensor *g[2] = {mk(OQ_DOUBLE, nd0, d0, NULL), nd1 ? mk(OQ_DOUBLE, nd1, d1, NULL) : NULL};
    size_t n_in = nd1 ? 2 : 1;
    for (size_t i = 0; i < n_in; i++)
        for (int64_t e = 0; e < oq_tensor_numel(f[i]); e++)
            ((double *)g[i]->data)[e] = ((float *)f[i]->data)[e];
    tnode t;
    tnode_init(&t, "Einsum");
    attr_string(&t, "equation", eq);
    oq_tensor *yf[1], *yd[1];
    CHECK_OK(run_op(&oq_op_einsum, &t, 12, f, n_in, yf, 1, NULL));
    CHECK_OK(run_op(&oq_op_einsum, &t, 12, g, n_in, yd, 1, NULL));
    bool ok = yf[0]->data && yd[0]->data && oq_shape_equal(yf[0]->ndim, yf[0]->dims, yd[0]->ndim, yd[0]->dims);
    for (int64_t e = 0; ok && e < oq_tensor_numel(yf[0]); e++) {
        double a = ((float *)yf[0]->data)[e], b = ((double *)yd[0]->data)[e];
        ok = fabs(a - b) <= 1e-5 + 1e-4 * fabs(b);
    }
    if (!ok)
        fprintf(stderr, "einsum '%s' differs\n", eq);
    CHECK(ok);
    free_all(f, n_in);
    free_all(g, n_in);
    free_all(yf, 1);
    free_all(yd, 1);
}

static void test_einsum(void)
{
    int64_t q[4] = {2, 3, 5, 8}, k[4] = {2, 3, 7, 8}, m[2] = {4, 6}, v[1] = {6}, b3[3] = {3, 4, 6}, c3[3] = {3, 6, 5};
    check_einsum("bhqd,bhkd->bhqk", 4, q, 4, k);
    check_einsum("bhqd,bhkd->bqhk", 4, q, 4, k);
    check_einsum("bij,bjk->bik", 3, b3, 3, c3);
    check_einsum("bij,bjk", 3, b3, 3, c3);
    check_einsum("ij,j->i", 2, m, 1, v);
    check_einsum("j,j", 1, v, 1, v);
    check_einsum("i,j->ji", 1, v, 1, v);
    check_einsum("...ij,...jk->...ik", 3, b3, 3, c3);
    check_einsum("ij->ji", 2, m, 0, NULL);
    check_einsum("ij,ij->", 2, m, 2, m);
}

/* ---- Pad modes on a 1-D row, including wrap (opset 19) and a crop ---- */
static void test_pad(void)
{
    const float x[3] = {1, 2, 3};
    int64_t xd = 3;
    static const char *const modes[4] = {"constant", "reflect", "edge", "wrap"};
    static const float want[4][7] = {{0, 0, 1, 2, 3, 0, 0}, {3, 2, 1, 2, 3, 2, 1}, {1, 1, 1, 2, 3, 3, 3}, {2, 3, 1, 2, 3, 1, 2}};
    for (int m = 0; m < 4; m++) {
        int64_t pads[2] = {2, 2};
        oq_tensor *in[2] = {mk(OQ_FLOAT, 1, &xd, x), mk_i64(2, pads)}, *out[1];
        tnode t;
        tnode_init(&t, "Pad");
        attr_string(&t, "mode", modes[m]);
        CHECK_OK(run_op(&oq_op_pad, &t, 19, in, 2, out, 1, NULL));
        CHECK(out[0]->ndim == 1 && out[0]->dims[0] == 7);
        for (int i = 0; i < 7 && out[0]->data; i++)
            CHECK(((float *)out[0]->data)[i] == want[m][i]);
        free_all(in, 2);
        free_all(out, 1);
    }
    {
        /* wrap pads the cropped range, as onnxruntime does: [1..5] crop 1, wrap 2 -> 2 3 4 5 2 3 */
        const float x5[5] = {1, 2, 3, 4, 5};
        int64_t d5 = 5, pads[2] = {-1, 2};
        oq_tensor *in5[2] = {mk(OQ_FLOAT, 1, &d5, x5), mk_i64(2, pads)}, *out5[1];
        tnode t5;
        tnode_init(&t5, "Pad");
        attr_string(&t5, "mode", "wrap");
        CHECK_OK(run_op(&oq_op_pad, &t5, 19, in5, 2, out5, 1, NULL));
        const float want5[6] = {2, 3, 4, 5, 2, 3};
        CHECK(out5[0]->ndim == 1 && out5[0]->dims[0] == 6);
        for (int i = 0; i < 6 && out5[0]->data; i++)
            CHECK(((float *)out5[0]->data)[i] == want5[i]);
        free_all(in5, 2);
        free_all(out5, 1);
    }
    int64_t crop[2] = {-1, 1};
    float value = 9;
    int64_t one = 1;
    oq_tensor *in[3] = {mk(OQ_FLOAT, 1, &xd, x), mk_i64(2, crop), mk(OQ_FLOAT, 0, &one, &value)}, *out[1];
    tnode t;
    tnode_init(&t, "Pad");
    CHECK_OK(run_op(&oq_op_pad, &t, 13, in, 3, out, 1, NULL));
    CHECK(out[0]->ndim == 1 && out[0]->dims[0] == 3);
    if (out[0]->data)
        CHECK(((float *)out[0]->data)[0] == 2 && ((float *)out[0]->data)[1] == 3 && ((float *)out[0]->data)[2] == 9);
    free_all(in, 3);
    free_all(out, 1);
}

int main(void)
{
    oq_threadpool *tp = NULL;
    CHECK_OK(oq_threadpool_create(4, &tp));
    test_reshape();
    test_slice();
    test_transpose(tp);
    test_concat_split(tp);
    test_lstm();
    test_gru();
    test_threads(tp);
    test_einsum();
    test_pad();
    oq_threadpool_destroy(tp);
    return test_summary("test_ops_shape");
}
