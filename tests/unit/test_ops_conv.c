/* Operator tests for Conv, ConvTranspose, Gemm, MatMul and the pools, driven
 * through oq_op_def directly: Conv against a naive direct convolution (groups,
 * depthwise, strides, dilations, pads, 1-D/3-D, fused activation), constant vs
 * dynamic weights, and 2 threads bit-identical to 1. */
#include "ops/op.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static uint32_t rng = 777;
static float frand(void)
{
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}

/* ---- building nodes by hand ---- */
typedef struct node_builder {
    oq_node node;
    oq_attr attrs[16];
    char *ins[4];
    char *outs[2];
} node_builder;

static void nb_init(node_builder *b, const char *op, size_t n_in, size_t n_out)
{
    memset(b, 0, sizeof *b);
    b->node.op_type = (char *)op;
    b->node.domain = (char *)"";
    b->node.name = (char *)op;
    static char *names[] = {"x", "w", "b", "c"};
    static char *onames[] = {"y", "i"};
    for (size_t i = 0; i < n_in; i++)
        b->ins[i] = names[i];
    for (size_t i = 0; i < n_out; i++)
        b->outs[i] = onames[i];
    b->node.inputs = b->ins;
    b->node.n_inputs = n_in;
    b->node.outputs = b->outs;
    b->node.n_outputs = n_out;
    b->node.attrs = b->attrs;
}
static void nb_ints(node_builder *b, const char *name, size_t n, const int64_t *v)
{
    oq_attr *a = &b->attrs[b->node.n_attrs++];
    a->name = (char *)name;
    a->type = OQ_ATTR_INTS;
    a->ints = (int64_t *)v;
    a->n_ints = n;
}
static void nb_int(node_builder *b, const char *name, int64_t v)
{
    oq_attr *a = &b->attrs[b->node.n_attrs++];
    a->name = (char *)name;
    a->type = OQ_ATTR_INT;
    a->i = v;
}
static void nb_float(node_builder *b, const char *name, float v)
{
    oq_attr *a = &b->attrs[b->node.n_attrs++];
    a->name = (char *)name;
    a->type = OQ_ATTR_FLOAT;
    a->f = v;
}
static void nb_floats(node_builder *b, const char *name, size_t n, const float *v)
{
    oq_attr *a = &b->attrs[b->node.n_attrs++];
    a->name = (char *)name;
    a->type = OQ_ATTR_FLOATS;
    a->floats = (float *)v;
    a->n_floats = n;
}
static void nb_string(node_builder *b, const char *name, const char *v)
{
    oq_attr *a = &b->attrs[b->node.n_attrs++];
    a->name = (char *)name;
    a->type = OQ_ATTR_STRING;
    a->s.data = (char *)v;
    a->s.len = strlen(v);
}

static oq_tensor *rand_tensor(int ndim, const int64_t *dims)
{
    oq_tensor *t = NULL;
    oq_tensor_create(OQ_FLOAT, ndim, dims, &t);
    float *d = t->data;
    for (int64_t i = 0; i < oq_tensor_numel(t); i++)
        d[i] = frand();
    return t;
}

/* Runs def on node with inputs (consts when const_mask bit i is set) and tp;
 * outputs go to out[] (allocated from infer). */
static oq_status run_op(const oq_op_def *def, const oq_node *node, oq_tensor **in, size_t n_in, unsigned const_mask,
                        oq_threadpool *tp, oq_tensor **out, size_t n_out)
{
    const oq_tensor *consts[4] = {0};
    for (size_t i = 0; i < n_in; i++)
        consts[i] = (const_mask >> i) & 1 ? in[i] : NULL;
    oq_op_node n = {node, node->name, 17, n_in, n_out, consts, NULL, tp, NULL, 0};
    oq_status st = def->prepare ? def->prepare(&n) : OQ_OK;
    for (size_t i = 0; i < n_out; i++)
        oq_tensor_create(OQ_FLOAT, 0, NULL, &out[i]);
    if (st == OQ_OK)
        st = def->infer(&n, (const oq_tensor *const *)in, out);
    for (size_t i = 0; i < n_out && st == OQ_OK; i++)
        st = oq_tensor_alloc(out[i], out[i]->dtype, out[i]->ndim, out[i]->dims);
    if (st == OQ_OK)
        st = def->run(&n, (const oq_tensor *const *)in, out);
    if (def->destroy)
        def->destroy(n.state);
    return st;
}

/* ---- Conv against a direct convolution ---- */
typedef struct conv_case {
    int r;
    int64_t n, c, cout, group;
    int64_t in[3], k[3], s[3], d[3], pb[3], pe[3];
    int bias;
    const char *act; /* NULL, "Relu", "Clip" */
} conv_case;

static void test_conv_case(const conv_case *cc, oq_threadpool *tp2)
{
    int r = cc->r;
    int64_t xd[5] = {cc->n, cc->c}, wd[5] = {cc->cout, cc->c / cc->group}, bd[1] = {cc->cout};
    int64_t strides[3], dil[3], pads[6];
    for (int i = 0; i < r; i++) {
        xd[2 + i] = cc->in[i];
        wd[2 + i] = cc->k[i];
        strides[i] = cc->s[i];
        dil[i] = cc->d[i];
        pads[i] = cc->pb[i];
        pads[r + i] = cc->pe[i];
    }
    oq_tensor *in[3] = {rand_tensor(r + 2, xd), rand_tensor(r + 2, wd), cc->bias ? rand_tensor(1, bd) : NULL};
    node_builder b;
    nb_init(&b, "Conv", cc->bias ? 3 : 2, 1);
    nb_ints(&b, "strides", (size_t)r, strides);
    nb_ints(&b, "dilations", (size_t)r, dil);
    nb_ints(&b, "pads", (size_t)(2 * r), pads);
    nb_int(&b, "group", cc->group);
    float clip[2] = {-0.3f, 0.4f};
    if (cc->act) {
        nb_string(&b, "onnxq_activation", cc->act);
        if (!strcmp(cc->act, "Clip"))
            nb_floats(&b, "onnxq_activation_params", 2, clip);
    }
    size_t n_in = cc->bias ? 3 : 2;
    oq_tensor *y1 = NULL, *y2 = NULL, *y3 = NULL;
    CHECK_OK(run_op(&oq_op_conv, &b.node, in, n_in, 0x2, NULL, &y1, 1));  /* constant (packed) weights */
    CHECK_OK(run_op(&oq_op_conv, &b.node, in, n_in, 0x2, tp2, &y2, 1));   /* 2 threads */
    CHECK_OK(run_op(&oq_op_conv, &b.node, in, n_in, 0x0, NULL, &y3, 1));  /* dynamic weights */
    int64_t o[3] = {1, 1, 1};
    int off = 3 - r;
    for (int i = 0; i < r; i++)
        o[off + i] = (cc->in[i] + cc->pb[i] + cc->pe[i] - ((cc->k[i] - 1) * cc->d[i] + 1)) / cc->s[i] + 1;
    CHECK(y1->ndim == r + 2);
    for (int i = 0; i < r; i++)
        CHECK(y1->dims[2 + i] == o[off + i]);
    CHECK(memcmp(y1->data, y2->data, y1->nbytes) == 0);
    int64_t G = cc->group, cg = cc->c / G, mg = cc->cout / G;
    int64_t I[3] = {1, 1, 1}, K[3] = {1, 1, 1}, S[3] = {1, 1, 1}, D[3] = {1, 1, 1}, P[3] = {0, 0, 0};
    for (int i = 0; i < r; i++) {
        I[off + i] = cc->in[i];
        K[off + i] = cc->k[i];
        S[off + i] = cc->s[i];
        D[off + i] = cc->d[i];
        P[off + i] = cc->pb[i];
    }
    const float *x = in[0]->data, *w = in[1]->data, *bias = cc->bias ? in[2]->data : NULL;
    const float *got = y1->data, *got3 = y3->data;
    int bad = 0;
    size_t idx = 0;
    for (int64_t ni = 0; ni < cc->n; ni++)
        for (int64_t oc = 0; oc < cc->cout; oc++)
            for (int64_t z = 0; z < o[0]; z++)
                for (int64_t yy = 0; yy < o[1]; yy++)
                    for (int64_t xx = 0; xx < o[2]; xx++, idx++) {
                        int64_t g = oc / mg;
                        double s = bias ? bias[oc] : 0, mag = fabs(s);
                        for (int64_t ic = 0; ic < cg; ic++)
                            for (int64_t a = 0; a < K[0]; a++)
                                for (int64_t bb = 0; bb < K[1]; bb++)
                                    for (int64_t e = 0; e < K[2]; e++) {
                                        int64_t iz = z * S[0] + a * D[0] - P[0], iy = yy * S[1] + bb * D[1] - P[1],
                                                ix = xx * S[2] + e * D[2] - P[2];
                                        if (iz < 0 || iy < 0 || ix < 0 || iz >= I[0] || iy >= I[1] || ix >= I[2])
                                            continue;
                                        double wv = w[((oc * cg + ic) * K[0] + a) * K[1] * K[2] + bb * K[2] + e];
                                        double xv =
                                            x[(((ni * cc->c + g * cg + ic) * I[0] + iz) * I[1] + iy) * I[2] + ix];
                                        s += wv * xv;
                                        mag += fabs(wv * xv);
                                    }
                        if (cc->act && !strcmp(cc->act, "Relu"))
                            s = s < 0 ? 0 : s;
                        if (cc->act && !strcmp(cc->act, "Clip"))
                            s = s < clip[0] ? clip[0] : (s > clip[1] ? clip[1] : s);
                        double tol = 1e-5 * mag + 1e-6;
                        if ((fabs(got[idx] - s) > tol || fabs(got3[idx] - s) > tol) && !bad) {
                            fprintf(stderr, "conv r=%d c=%lld cout=%lld g=%lld: at %zu got %g / %g want %g\n", r,
                                    (long long)cc->c, (long long)cc->cout, (long long)G, idx, got[idx], got3[idx], s);
                            bad = 1;
                        }
                    }
    CHECK(!bad);
    for (int i = 0; i < 3; i++)
        oq_tensor_destroy(in[i]);
    oq_tensor_destroy(y1), oq_tensor_destroy(y2), oq_tensor_destroy(y3);
}

static void test_conv(oq_threadpool *tp2)
{
    static const conv_case cases[] = {
        /* r  n  c  cout g    in           k          s          d          pb         pe     bias act */
        {2, 1, 3, 8, 1, {9, 11}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, 1, NULL},
        {2, 2, 16, 24, 1, {14, 14}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, {0, 0}, 1, "Relu"},   /* pointwise */
        {2, 1, 8, 16, 1, {13, 13}, {1, 1}, {2, 2}, {1, 1}, {0, 0}, {0, 0}, 0, NULL},      /* 1x1 stride 2 */
        {2, 1, 3, 16, 1, {30, 30}, {7, 7}, {2, 2}, {1, 1}, {3, 3}, {3, 3}, 1, "Clip"},    /* stem */
        {2, 1, 32, 32, 32, {17, 17}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, 1, "Clip"},  /* depthwise */
        {2, 2, 24, 24, 24, {15, 16}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 1}, 1, "Relu"},  /* depthwise s2 */
        {2, 1, 8, 16, 8, {9, 9}, {3, 3}, {1, 1}, {2, 2}, {2, 2}, {2, 2}, 1, NULL},        /* depthwise x2 */
        {2, 1, 12, 18, 3, {10, 7}, {3, 2}, {2, 1}, {1, 2}, {1, 0}, {2, 1}, 1, NULL},      /* grouped */
        {2, 1, 4, 5, 1, {6, 8}, {2, 3}, {3, 2}, {2, 1}, {0, 1}, {1, 0}, 0, NULL},
        {2, 1, 1, 4, 1, {5, 5}, {3, 3}, {1, 1}, {1, 1}, {0, 0}, {0, 0}, 1, NULL},         /* Cin 1 */
        {1, 2, 5, 7, 1, {40}, {5}, {3}, {2}, {4}, {1}, 1, NULL},                          /* 1-D */
        {3, 1, 3, 4, 1, {5, 6, 7}, {3, 2, 3}, {2, 1, 2}, {1, 2, 1}, {1, 0, 1}, {1, 1, 0}, 1, "Relu"}, /* 3-D */
        {2, 1, 64, 40, 1, {7, 7}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, 1, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        test_conv_case(&cases[i], tp2);
}

/* ---- Conv attribute handling ---- */
static void test_conv_auto_pad(void)
{
    int64_t xd[4] = {1, 2, 7, 8}, wd[4] = {3, 2, 3, 3}, s[2] = {2, 2};
    oq_tensor *in[2] = {rand_tensor(4, xd), rand_tensor(4, wd)};
    node_builder b;
    nb_init(&b, "Conv", 2, 1);
    nb_string(&b, "auto_pad", "SAME_UPPER");
    nb_ints(&b, "strides", 2, s);
    oq_tensor *y = NULL;
    CHECK_OK(run_op(&oq_op_conv, &b.node, in, 2, 0x2, NULL, &y, 1));
    CHECK(y->dims[2] == 4 && y->dims[3] == 4);
    oq_tensor_destroy(y);
    /* mismatched channels are an error, not a crash */
    wd[1] = 3;
    oq_tensor_destroy(in[1]);
    in[1] = rand_tensor(4, wd);
    nb_init(&b, "Conv", 2, 1);
    y = NULL;
    CHECK(run_op(&oq_op_conv, &b.node, in, 2, 0x2, NULL, &y, 1) != OQ_OK);
    oq_tensor_destroy(y);
    oq_tensor_destroy(in[0]), oq_tensor_destroy(in[1]);
}

/* ---- MatMul with broadcasting ---- */
static void test_matmul_case(int na, const int64_t *ad, int nb, const int64_t *bd, unsigned const_mask,
                             oq_threadpool *tp)
{
    oq_tensor *in[2] = {rand_tensor(na, ad), rand_tensor(nb, bd)};
    node_builder b;
    nb_init(&b, "MatMul", 2, 1);
    oq_tensor *y = NULL, *y2 = NULL;
    CHECK_OK(run_op(&oq_op_matmul, &b.node, in, 2, const_mask, NULL, &y, 1));
    CHECK_OK(run_op(&oq_op_matmul, &b.node, in, 2, const_mask, tp, &y2, 1));
    CHECK(y->nbytes == y2->nbytes && memcmp(y->data, y2->data, y->nbytes) == 0);
    /* reference: numpy semantics, computed with explicit index math */
    int64_t A[OQ_MAX_DIMS + 2], B[OQ_MAX_DIMS + 2];
    int ra = na, rb = nb;
    memcpy(A, ad, sizeof(int64_t) * (size_t)na);
    memcpy(B, bd, sizeof(int64_t) * (size_t)nb);
    if (na == 1) {
        A[1] = A[0];
        A[0] = 1;
        ra = 2;
    }
    if (nb == 1) {
        B[1] = 1;
        rb = 2;
    }
    int64_t M = A[ra - 2], K = A[ra - 1], N = B[rb - 1];
    int nbat = (ra > rb ? ra : rb) - 2;
    int64_t od[OQ_MAX_DIMS];
    int64_t batch = 1;
    for (int i = 0; i < nbat; i++) {
        int ia = i - (nbat - (ra - 2)), ib = i - (nbat - (rb - 2));
        int64_t da = ia >= 0 ? A[ia] : 1, db = ib >= 0 ? B[ib] : 1;
        od[i] = da > db ? da : db;
        batch *= od[i];
    }
    const float *a = in[0]->data, *bm = in[1]->data, *got = y->data;
    int bad = 0;
    CHECK(oq_tensor_numel(y) == batch * M * N);
    for (int64_t t = 0; t < batch && !bad; t++) {
        int64_t rem = t, aoff = 0, boff = 0, amul = 1, bmul = 1;
        for (int i = nbat - 1; i >= 0; i--) {
            int64_t c = rem % od[i];
            rem /= od[i];
            int ia = i - (nbat - (ra - 2)), ib = i - (nbat - (rb - 2));
            if (ia >= 0) {
                aoff += (A[ia] == 1 ? 0 : c) * amul;
                amul *= A[ia];
            }
            if (ib >= 0) {
                boff += (B[ib] == 1 ? 0 : c) * bmul;
                bmul *= B[ib];
            }
        }
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0, mag = 0;
                for (int64_t p = 0; p < K; p++) {
                    double v = (double)a[aoff * M * K + i * K + p] * bm[boff * K * N + p * N + j];
                    s += v;
                    mag += fabs(v);
                }
                float gv = got[(t * M + i) * N + j];
                if (fabs(gv - s) > 1e-5 * mag + 1e-6) {
                    fprintf(stderr, "matmul batch %lld (%lld,%lld): %g vs %g\n", (long long)t, (long long)i,
                            (long long)j, gv, s);
                    bad = 1;
                }
            }
    }
    CHECK(!bad);
    oq_tensor_destroy(in[0]), oq_tensor_destroy(in[1]), oq_tensor_destroy(y), oq_tensor_destroy(y2);
}

static void test_matmul(oq_threadpool *tp)
{
    for (unsigned cm = 0; cm < 2; cm++) {
        unsigned mask = cm ? 0x2 : 0;
        test_matmul_case(2, (int64_t[]){33, 70}, 2, (int64_t[]){70, 45}, mask, tp);
        test_matmul_case(3, (int64_t[]){2, 128, 64}, 2, (int64_t[]){64, 96}, mask, tp);
        test_matmul_case(4, (int64_t[]){2, 1, 5, 7}, 3, (int64_t[]){3, 7, 4}, mask, tp);
        test_matmul_case(4, (int64_t[]){1, 3, 16, 8}, 4, (int64_t[]){2, 3, 8, 16}, mask, tp);
        test_matmul_case(1, (int64_t[]){9}, 3, (int64_t[]){2, 9, 5}, mask, tp);
        test_matmul_case(3, (int64_t[]){2, 4, 9}, 1, (int64_t[]){9}, mask, tp);
        test_matmul_case(1, (int64_t[]){9}, 1, (int64_t[]){9}, mask, tp);
    }
}

/* ---- Gemm ---- */
static void test_gemm_case(int ta, int tb, float alpha, float beta, int c_rank, const int64_t *c_dims,
                           unsigned const_mask, oq_threadpool *tp)
{
    const int64_t M = 19, N = 37, K = 23;
    int64_t ad[2] = {ta ? K : M, ta ? M : K}, bd[2] = {tb ? N : K, tb ? K : N};
    oq_tensor *in[3] = {rand_tensor(2, ad), rand_tensor(2, bd), c_rank >= 0 ? rand_tensor(c_rank, c_dims) : NULL};
    size_t n_in = c_rank >= 0 ? 3 : 2;
    node_builder b;
    nb_init(&b, "Gemm", n_in, 1);
    nb_int(&b, "transA", ta);
    nb_int(&b, "transB", tb);
    nb_float(&b, "alpha", alpha);
    nb_float(&b, "beta", beta);
    oq_tensor *y = NULL, *y2 = NULL;
    CHECK_OK(run_op(&oq_op_gemm, &b.node, in, n_in, const_mask, NULL, &y, 1));
    CHECK_OK(run_op(&oq_op_gemm, &b.node, in, n_in, const_mask, tp, &y2, 1));
    CHECK(memcmp(y->data, y2->data, y->nbytes) == 0);
    const float *a = in[0]->data, *bm = in[1]->data, *c = in[2] ? in[2]->data : NULL, *got = y->data;
    int bad = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0, mag = 0;
            for (int64_t p = 0; p < K; p++) {
                double v = (double)a[ta ? p * M + i : i * K + p] * bm[tb ? j * K + p : p * N + j];
                s += v;
                mag += fabs(v);
            }
            s *= alpha;
            mag *= fabs(alpha);
            if (c) {
                int64_t ci = 0;
                if (c_rank == 2)
                    ci = (c_dims[0] == 1 ? 0 : i) * c_dims[1] + (c_dims[1] == 1 ? 0 : j);
                else if (c_rank == 1)
                    ci = c_dims[0] == 1 ? 0 : j;
                s += beta * c[ci];
                mag += fabs(beta * c[ci]);
            }
            if (fabs(got[i * N + j] - s) > 1e-5 * mag + 1e-6)
                bad = 1;
        }
    if (bad)
        fprintf(stderr, "gemm ta=%d tb=%d alpha=%g beta=%g c_rank=%d mask=%u failed\n", ta, tb, alpha, beta, c_rank,
                const_mask);
    CHECK(!bad);
    for (int i = 0; i < 3; i++)
        oq_tensor_destroy(in[i]);
    oq_tensor_destroy(y), oq_tensor_destroy(y2);
}

static void test_gemm(oq_threadpool *tp)
{
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (unsigned mask = 0; mask < 2; mask++) {
                test_gemm_case(ta, tb, 1.0f, 1.0f, 1, (int64_t[]){37}, mask ? 0x6 : 0, tp);
                test_gemm_case(ta, tb, 0.5f, 2.0f, 2, (int64_t[]){19, 37}, mask ? 0x6 : 0, tp);
                test_gemm_case(ta, tb, 1.0f, 1.0f, 2, (int64_t[]){19, 1}, mask ? 0x6 : 0, tp);
                test_gemm_case(ta, tb, 1.5f, 0.0f, 0, NULL, mask ? 0x2 : 0, tp);
                test_gemm_case(ta, tb, 1.0f, -1.0f, 2, (int64_t[]){1, 1}, 0, tp);
                test_gemm_case(ta, tb, 2.0f, 1.0f, -1, NULL, mask ? 0x2 : 0, tp);
            }
}

/* ---- pooling spot checks (the conformance tests cover the attributes) ----
 * int8 and uint8 MaxPool 3x3/2 with padding against a direct loop: with Indices (the
 * generic path) and without (the fast path, rows wider than one SIMD register). */
static void test_pool_case(oq_dtype dt, size_t n_out, int64_t h, int64_t w)
{
    int64_t xd[4] = {1, 2, h, w}, k[2] = {3, 3}, s[2] = {2, 2}, p[4] = {1, 1, 1, 1};
    oq_tensor *x = NULL;
    CHECK_OK(oq_tensor_create(dt, 4, xd, &x));
    int64_t n = 2 * h * w, oh = (h + 2 - 3) / 2 + 1, ow = (w + 2 - 3) / 2 + 1;
    for (int64_t i = 0; i < n; i++) {
        int v = (int)(i * 37 % 251);
        if (dt == OQ_INT8)
            ((int8_t *)x->data)[i] = (int8_t)(v - 125);
        else
            ((uint8_t *)x->data)[i] = (uint8_t)v;
    }
    node_builder b;
    nb_init(&b, "MaxPool", 1, n_out);
    nb_ints(&b, "kernel_shape", 2, k);
    nb_ints(&b, "strides", 2, s);
    nb_ints(&b, "pads", 4, p);
    oq_tensor *out[2] = {NULL, NULL};
    CHECK_OK(run_op(&oq_op_maxpool, &b.node, &x, 1, 0, NULL, out, n_out));
    CHECK(out[0]->dtype == dt && out[0]->dims[2] == oh && out[0]->dims[3] == ow);
    CHECK(n_out == 1 || out[1]->dtype == OQ_INT64);
    int bad = 0;
    for (int64_t c = 0; c < 2; c++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++) {
                int best = -1000;
                int64_t bi = -1;
                for (int64_t ky = 0; ky < 3; ky++)
                    for (int64_t kx = 0; kx < 3; kx++) {
                        int64_t iy = oy * 2 + ky - 1, ix = ox * 2 + kx - 1, at = c * h * w + iy * w + ix;
                        if (iy < 0 || ix < 0 || iy >= h || ix >= w)
                            continue;
                        int v = dt == OQ_INT8 ? ((int8_t *)x->data)[at] : ((uint8_t *)x->data)[at];
                        if (v > best)
                            best = v, bi = at;
                    }
                int64_t o = (c * oh + oy) * ow + ox;
                int got = dt == OQ_INT8 ? ((int8_t *)out[0]->data)[o] : ((uint8_t *)out[0]->data)[o];
                bad |= got != best || (n_out == 2 && ((int64_t *)out[1]->data)[o] != bi);
            }
    CHECK(!bad);
    oq_tensor_destroy(x), oq_tensor_destroy(out[0]), oq_tensor_destroy(out[1]);
}

/* MaxPool 2x2 stride 2 without padding (the small CNNs' pool, its own fast path): odd
 * plane sizes (the last row/column dropped), float with NaN and -inf, and int8, against
 * the general rule m = v > m ? v : m from the lowest value. */
static void test_pool_2x2(oq_dtype dt, int64_t h, int64_t w)
{
    int64_t xd[4] = {2, 3, h, w}, k[2] = {2, 2}, s[2] = {2, 2};
    oq_tensor *x = NULL;
    CHECK_OK(oq_tensor_create(dt, 4, xd, &x));
    int64_t n = 6 * h * w, oh = h / 2, ow = w / 2;
    for (int64_t i = 0; x && i < n; i++) {
        int v = (int)(i * 37 % 251) - 125;
        if (dt == OQ_INT8)
            ((int8_t *)x->data)[i] = (int8_t)v;
        else
            ((float *)x->data)[i] = i % 13 == 0 ? NAN : i % 17 == 0 ? -INFINITY : (float)v * 0.25f;
    }
    node_builder b;
    nb_init(&b, "MaxPool", 1, 1);
    nb_ints(&b, "kernel_shape", 2, k);
    nb_ints(&b, "strides", 2, s);
    oq_tensor *out[1] = {NULL};
    CHECK_OK(run_op(&oq_op_maxpool, &b.node, &x, 1, 0, NULL, out, 1));
    if (!x || !out[0])
        return;
    CHECK(out[0]->dims[2] == oh && out[0]->dims[3] == ow);
    int bad = 0;
    for (int64_t c = 0; c < 6; c++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++) {
                float m = -INFINITY;
                int mi = INT8_MIN;
                for (int64_t ky = 0; ky < 2; ky++)
                    for (int64_t kx = 0; kx < 2; kx++) {
                        int64_t at = c * h * w + (2 * oy + ky) * w + 2 * ox + kx;
                        if (dt == OQ_INT8) {
                            int v = ((int8_t *)x->data)[at];
                            mi = v > mi ? v : mi;
                        } else {
                            float v = ((float *)x->data)[at];
                            m = v > m ? v : m;
                        }
                    }
                int64_t o = (c * oh + oy) * ow + ox;
                if (dt == OQ_INT8)
                    bad |= ((int8_t *)out[0]->data)[o] != mi;
                else
                    bad |= memcmp(&((float *)out[0]->data)[o], &m, sizeof m) != 0;
            }
    CHECK(!bad);
    oq_tensor_destroy(x), oq_tensor_destroy(out[0]);
}

static void test_pool(void)
{
    test_pool_2x2(OQ_FLOAT, 28, 28);
    test_pool_2x2(OQ_FLOAT, 7, 9);
    test_pool_2x2(OQ_INT8, 14, 15);
    const oq_dtype types[2] = {OQ_INT8, OQ_UINT8};
    for (int t = 0; t < 2; t++)
        for (size_t n_out = 1; n_out <= 2; n_out++) {
            test_pool_case(types[t], n_out, 5, 5);
            test_pool_case(types[t], n_out, 9, 37);
            /* uint8 takes 16-column blocks of interior windows: several, at both row ends */
            test_pool_case(types[t], n_out, 4, 64);
            test_pool_case(types[t], n_out, 3, 71);
            test_pool_case(types[t], n_out, 6, 112);
        }
}

int main(void)
{
    oq_threadpool *tp2 = NULL;
    CHECK_OK(oq_threadpool_create(2, &tp2));
    test_conv(tp2);
    test_conv_auto_pad();
    test_matmul(tp2);
    test_gemm(tp2);
    test_pool();
    oq_threadpool_destroy(tp2);
    return test_summary("test_ops_conv");
}
