/* Operator tests of the quantized products (QLinearConv, ConvInteger,
 * QLinearMatMul, MatMulInteger, QGemm, MatMulIntegerToFloat,
 * DynamicQuantizeMatMul) with int8 and mixed-signedness cases the ONNX node tests
 * lack. Expectations come from a naive double-precision computation written here
 * (exact integer sums, real-valued rescale): int32 outputs must match exactly,
 * quantized outputs within one step (fp32 vs double rounding near ties), and
 * packed vs per-run weights and 1 vs 2 threads must agree bit for bit. */
#include "ops/op.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static uint32_t rng = 4242;
static uint32_t rnd(void)
{
    rng = rng * 1664525u + 1013904223u;
    return rng >> 8;
}

typedef struct node_builder {
    oq_node node;
    oq_attr attrs[16];
    char *ins[10];
    char *outs[1];
} node_builder;

static void nb_init(node_builder *b, const char *domain, const char *op, size_t n_in)
{
    memset(b, 0, sizeof *b);
    b->node.op_type = (char *)op;
    b->node.domain = (char *)domain;
    b->node.name = (char *)op;
    static char *names[] = {"i0", "i1", "i2", "i3", "i4", "i5", "i6", "i7", "i8", "i9"};
    static char *onames[] = {"y"};
    for (size_t i = 0; i < n_in; i++)
        b->ins[i] = names[i];
    b->outs[0] = onames[0];
    b->node.inputs = b->ins;
    b->node.n_inputs = n_in;
    b->node.outputs = b->outs;
    b->node.n_outputs = 1;
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
static void nb_string(node_builder *b, const char *name, const char *v)
{
    oq_attr *a = &b->attrs[b->node.n_attrs++];
    a->name = (char *)name;
    a->type = OQ_ATTR_STRING;
    a->s.data = (char *)v;
    a->s.len = strlen(v);
}

static oq_tensor *q8_tensor(oq_dtype t, int ndim, const int64_t *dims)
{
    oq_tensor *x = NULL;
    oq_tensor_create(t, ndim, dims, &x);
    for (int64_t i = 0; i < oq_tensor_numel(x); i++)
        ((uint8_t *)x->data)[i] = (uint8_t)rnd();
    return x;
}
static oq_tensor *scalar_q8(oq_dtype t, int v)
{
    oq_tensor *x = NULL;
    oq_tensor_create(t, 0, NULL, &x);
    if (t == OQ_INT8)
        *(int8_t *)x->data = (int8_t)v;
    else
        *(uint8_t *)x->data = (uint8_t)v;
    return x;
}
static oq_tensor *floats(size_t n, int vector, float base)
{
    oq_tensor *x = NULL;
    int64_t d = (int64_t)n;
    oq_tensor_create(OQ_FLOAT, vector ? 1 : 0, &d, &x);
    for (size_t i = 0; i < n; i++)
        ((float *)x->data)[i] = base * (1.0f + (float)(rnd() % 1000) / 1000.0f);
    return x;
}
static int32_t q8v(const oq_tensor *t, int64_t i)
{
    if (!t)
        return 0;
    return t->dtype == OQ_INT8 ? ((const int8_t *)t->data)[i] : ((const uint8_t *)t->data)[i];
}
static int64_t at1(const oq_tensor *t, int64_t i) { return oq_tensor_numel(t) == 1 ? 0 : i; }

static oq_status run_op(const oq_op_def *def, const oq_node *node, oq_tensor **in, size_t n_in, unsigned const_mask,
                        oq_threadpool *tp, oq_tensor **out)
{
    const oq_tensor *consts[10] = {0};
    for (size_t i = 0; i < n_in; i++)
        consts[i] = (const_mask >> i) & 1 ? in[i] : NULL;
    oq_op_node n = {node, node->name, 17, n_in, 1, consts, NULL, tp, NULL, 0};
    oq_status st = def->prepare ? def->prepare(&n) : OQ_OK;
    oq_tensor_create(OQ_FLOAT, 0, NULL, out);
    if (st == OQ_OK)
        st = def->infer(&n, (const oq_tensor *const *)in, out);
    if (st == OQ_OK)
        st = oq_tensor_alloc(*out, (*out)->dtype, (*out)->ndim, (*out)->dims);
    if (st == OQ_OK)
        st = def->run(&n, (const oq_tensor *const *)in, out);
    if (def->destroy)
        def->destroy(n.state);
    return st;
}

/* Runs with constant weights (1 and 2 threads) and per-run weights; all three must
 * be identical. Returns the first output. */
static oq_tensor *run3(const oq_op_def *def, const oq_node *node, oq_tensor **in, size_t n_in, unsigned wmask,
                       oq_threadpool *tp2)
{
    oq_tensor *y1 = NULL, *y2 = NULL, *y3 = NULL;
    CHECK_OK(run_op(def, node, in, n_in, wmask, NULL, &y1));
    CHECK_OK(run_op(def, node, in, n_in, wmask, tp2, &y2));
    CHECK_OK(run_op(def, node, in, n_in, 0, NULL, &y3));
    CHECK(y1->nbytes == y2->nbytes && memcmp(y1->data, y2->data, y1->nbytes) == 0);
    CHECK(y1->nbytes == y3->nbytes && memcmp(y1->data, y3->data, y1->nbytes) == 0);
    oq_tensor_destroy(y2);
    oq_tensor_destroy(y3);
    return y1;
}

/* Quantized expectation in double: y = clamp(round(real / sy) + zy). */
static int32_t expect_q(double real_over_sy, int32_t zy, int is_signed, int relu)
{
    double v = nearbyint(real_over_sy) + zy;
    double lo = is_signed ? -128 : 0, hi = is_signed ? 127 : 255;
    if (relu && lo < zy)
        lo = zy;
    return (int32_t)(v < lo ? lo : v > hi ? hi : v);
}

/* ---- convolution ---- */
typedef struct qconv_case {
    oq_dtype xt, wt;
    int64_t n, c, m, group, h, w, kh, kw, sh, sw, dh, dw, pad;
    int per_channel, bias, relu, zx, zw, zy, integer;
} qconv_case;

static void test_qconv(const qconv_case *cc, oq_threadpool *tp2)
{
    int64_t xd[4] = {cc->n, cc->c, cc->h, cc->w}, wd[4] = {cc->m, cc->c / cc->group, cc->kh, cc->kw};
    oq_tensor *x = q8_tensor(cc->xt, 4, xd), *w = q8_tensor(cc->wt, 4, wd);
    oq_tensor *xs = floats(1, 0, 0.02f), *ws = floats(cc->per_channel ? (size_t)cc->m : 1, cc->per_channel, 0.004f);
    oq_tensor *ys = floats(1, 0, 0.05f);
    oq_tensor *xz = scalar_q8(cc->xt, cc->zx), *wz = scalar_q8(cc->wt, cc->zw), *yz = scalar_q8(cc->xt, cc->zy);
    oq_tensor *bias = NULL;
    if (cc->bias) {
        oq_tensor_create(OQ_INT32, 1, &cc->m, &bias);
        for (int64_t i = 0; i < cc->m; i++)
            ((int32_t *)bias->data)[i] = (int32_t)(rnd() % 20000) - 10000;
    }
    node_builder b;
    oq_tensor *in[9];
    size_t n_in;
    unsigned wmask;
    if (cc->integer) {
        nb_init(&b, "", "ConvInteger", 4);
        in[0] = x, in[1] = w, in[2] = xz, in[3] = wz;
        n_in = 4;
        wmask = 0x2;
    } else {
        nb_init(&b, "", "QLinearConv", cc->bias ? 9 : 8);
        in[0] = x, in[1] = xs, in[2] = xz, in[3] = w, in[4] = ws, in[5] = wz, in[6] = ys, in[7] = yz, in[8] = bias;
        n_in = cc->bias ? 9 : 8;
        wmask = 0x8;
    }
    int64_t strides[2] = {cc->sh, cc->sw}, dil[2] = {cc->dh, cc->dw}, pads[4] = {cc->pad, cc->pad, cc->pad, cc->pad};
    nb_ints(&b, "strides", 2, strides);
    nb_ints(&b, "dilations", 2, dil);
    nb_ints(&b, "pads", 4, pads);
    nb_int(&b, "group", cc->group);
    if (cc->relu)
        nb_string(&b, "onnxq_activation", "Relu");
    oq_tensor *y = run3(cc->integer ? &oq_op_convinteger : &oq_op_qlinearconv, &b.node, in, n_in, wmask, tp2);
    int64_t oh = (cc->h + 2 * cc->pad - (cc->kh - 1) * cc->dh - 1) / cc->sh + 1;
    int64_t ow = (cc->w + 2 * cc->pad - (cc->kw - 1) * cc->dw - 1) / cc->sw + 1;
    CHECK(y->ndim == 4 && y->dims[1] == cc->m && y->dims[2] == oh && y->dims[3] == ow);
    int64_t cg = cc->c / cc->group, mg = cc->m / cc->group, idx = 0;
    int bad = 0, off1 = 0;
    for (int64_t ni = 0; ni < cc->n; ni++)
        for (int64_t oc = 0; oc < cc->m; oc++)
            for (int64_t yy = 0; yy < oh; yy++)
                for (int64_t xx = 0; xx < ow; xx++, idx++) {
                    int64_t acc = bias ? ((int32_t *)bias->data)[oc] : 0, g = oc / mg;
                    for (int64_t ic = 0; ic < cg; ic++)
                        for (int64_t ky = 0; ky < cc->kh; ky++)
                            for (int64_t kx = 0; kx < cc->kw; kx++) {
                                int64_t iy = yy * cc->sh + ky * cc->dh - cc->pad, ix = xx * cc->sw + kx * cc->dw - cc->pad;
                                if (iy < 0 || ix < 0 || iy >= cc->h || ix >= cc->w)
                                    continue;
                                int64_t xv = q8v(x, ((ni * cc->c + g * cg + ic) * cc->h + iy) * cc->w + ix);
                                int64_t wv = q8v(w, ((oc * cg + ic) * cc->kh + ky) * cc->kw + kx);
                                acc += (xv - cc->zx) * (wv - cc->zw);
                            }
                    if (cc->integer) {
                        bad += ((int32_t *)y->data)[idx] != acc;
                        continue;
                    }
                    double real = (double)acc * ((float *)xs->data)[0] * ((float *)ws->data)[at1(ws, oc)];
                    int32_t want = expect_q(real / ((float *)ys->data)[0], cc->zy, cc->xt == OQ_INT8, cc->relu);
                    int32_t got = q8v(y, idx);
                    bad += abs(got - want) > 1;
                    off1 += got != want;
                }
    CHECK(bad == 0);
    CHECK(off1 * 50 <= idx); /* one-step differences only at near-ties */
    if (bad)
        fprintf(stderr, "qconv case c%lld m%lld g%lld k%lldx%lld: %d wrong\n", (long long)cc->c, (long long)cc->m,
                (long long)cc->group, (long long)cc->kh, (long long)cc->kw, bad);
    oq_tensor *all[] = {x, w, xs, ws, ys, xz, wz, yz, bias, y};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        oq_tensor_destroy(all[i]);
}

/* ---- matrix products ---- */
static void test_qlinearmatmul(oq_dtype at, oq_dtype bt, int batched, int per_col, oq_threadpool *tp2)
{
    int64_t M = 5, K = 37, N = 19;
    int64_t ad[3] = {2, M, K}, bd[3] = {2, K, N};
    oq_tensor *a = batched ? q8_tensor(at, 3, ad) : q8_tensor(at, 2, ad + 1);
    oq_tensor *b = batched ? q8_tensor(bt, 3, bd) : q8_tensor(bt, 2, bd + 1);
    oq_tensor *as = floats(1, 0, 0.03f), *bs = floats(per_col ? (size_t)N : 1, per_col, 0.01f), *ys = floats(1, 0, 0.1f);
    int za = at == OQ_INT8 ? -9 : 140, zb = bt == OQ_INT8 ? 0 : 128, zy = at == OQ_INT8 ? 3 : 120;
    oq_tensor *az = scalar_q8(at, za), *bz = scalar_q8(bt, zb), *yz = scalar_q8(at, zy);
    oq_tensor *in[8] = {a, as, az, b, bs, bz, ys, yz};
    node_builder nb;
    nb_init(&nb, "", "QLinearMatMul", 8);
    oq_tensor *y = run3(&oq_op_qlinearmatmul, &nb.node, in, 8, 0x8, tp2);
    int64_t batches = batched ? 2 : 1, idx = 0;
    int bad = 0;
    CHECK(y->dtype == at && y->dims[y->ndim - 1] == N);
    for (int64_t t = 0; t < batches; t++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++, idx++) {
                int64_t acc = 0;
                for (int64_t p = 0; p < K; p++)
                    acc += (q8v(a, (t * M + i) * K + p) - za) * (int64_t)(q8v(b, (t * K + p) * N + j) - zb);
                double real = (double)acc * ((float *)as->data)[0] * ((float *)bs->data)[at1(bs, j)];
                bad += abs(q8v(y, idx) - expect_q(real / ((float *)ys->data)[0], zy, at == OQ_INT8, 0)) > 1;
            }
    CHECK(bad == 0);
    oq_tensor *all[] = {a, b, as, bs, ys, az, bz, yz, y};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        oq_tensor_destroy(all[i]);
}

/* MatMulInteger s8 x s8 with per-row A and per-column B zero points, A batched
 * against a 2-D B (rows fold). */
static void test_matmulinteger(oq_dtype at, oq_dtype bt, oq_threadpool *tp2)
{
    int64_t M = 7, K = 3, N = 33;
    int64_t ad[3] = {3, M, K}, bd[2] = {K, N};
    oq_tensor *a = q8_tensor(at, 3, ad), *b = q8_tensor(bt, 2, bd);
    oq_tensor *az = q8_tensor(at, 1, &M), *bz = q8_tensor(bt, 1, &N);
    oq_tensor *in[4] = {a, b, az, bz};
    node_builder nb;
    nb_init(&nb, "", "MatMulInteger", 4);
    oq_tensor *y = run3(&oq_op_matmulinteger, &nb.node, in, 4, 0x2, tp2);
    int bad = 0;
    int64_t idx = 0;
    for (int64_t t = 0; t < 3; t++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++, idx++) {
                int64_t acc = 0;
                for (int64_t p = 0; p < K; p++)
                    acc += (int64_t)(q8v(a, (t * M + i) * K + p) - q8v(az, i)) * (q8v(b, p * N + j) - q8v(bz, j));
                bad += ((int32_t *)y->data)[idx] != acc;
            }
    CHECK(y->dtype == OQ_INT32 && bad == 0);
    oq_tensor *all[] = {a, b, az, bz, y};
    for (size_t i = 0; i < 5; i++)
        oq_tensor_destroy(all[i]);
}

/* QGemm (transB, int32 bias C, alpha) to u8 and to float; MatMulIntegerToFloat. */
static void test_qgemm_and_float(oq_threadpool *tp2)
{
    int64_t M = 4, K = 21, N = 9;
    int64_t ad[2] = {M, K}, bd[2] = {N, K};
    oq_tensor *a = q8_tensor(OQ_UINT8, 2, ad), *b = q8_tensor(OQ_INT8, 2, bd);
    oq_tensor *as = floats(1, 0, 0.02f), *bs = floats((size_t)N, 1, 0.01f), *ys = floats(1, 0, 0.2f);
    oq_tensor *az = scalar_q8(OQ_UINT8, 100), *bz = q8_tensor(OQ_INT8, 1, &N), *yz = scalar_q8(OQ_UINT8, 128);
    oq_tensor *c = NULL;
    oq_tensor_create(OQ_INT32, 1, &N, &c);
    for (int64_t j = 0; j < N; j++)
        ((int32_t *)c->data)[j] = (int32_t)(rnd() % 4000) - 2000;
    for (int quantized = 0; quantized < 2; quantized++) {
        node_builder nb;
        nb_init(&nb, "com.microsoft", "QGemm", quantized ? 9 : 7);
        nb_int(&nb, "transB", 1);
        oq_attr *al = &nb.attrs[nb.node.n_attrs++];
        al->name = (char *)"alpha";
        al->type = OQ_ATTR_FLOAT;
        al->f = 0.5f;
        oq_tensor *in[9] = {a, as, az, b, bs, bz, c, ys, yz};
        oq_tensor *y = run3(&oq_op_qgemm, &nb.node, in, quantized ? 9 : 7, 0x8, tp2);
        int bad = 0;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                int64_t acc = ((int32_t *)c->data)[j];
                for (int64_t p = 0; p < K; p++)
                    acc += (int64_t)(q8v(a, i * K + p) - 100) * (q8v(b, j * K + p) - q8v(bz, j));
                double real = 0.5 * (double)acc * ((float *)as->data)[0] * ((float *)bs->data)[j];
                if (quantized)
                    bad += abs(q8v(y, i * N + j) - expect_q(real / ((float *)ys->data)[0], 128, 0, 0)) > 1;
                else
                    bad += fabs(((float *)y->data)[i * N + j] - real) > 1e-5 * (1 + fabs(real));
            }
        CHECK(bad == 0);
        CHECK(y->dtype == (quantized ? OQ_UINT8 : OQ_FLOAT));
        oq_tensor_destroy(y);
    }
    /* MatMulIntegerToFloat: A s8 [2,M,K] x B u8 [K,N] + bias */
    int64_t a3[3] = {2, M, K}, b2[2] = {K, N};
    oq_tensor *a8 = q8_tensor(OQ_INT8, 3, a3), *bu = q8_tensor(OQ_UINT8, 2, b2), *fbias = floats((size_t)N, 1, 1.0f);
    oq_tensor *az8 = scalar_q8(OQ_INT8, -20), *bzu = scalar_q8(OQ_UINT8, 131);
    oq_tensor *in[7] = {a8, bu, as, bs, az8, bzu, fbias};
    node_builder nb;
    nb_init(&nb, "com.microsoft", "MatMulIntegerToFloat", 7);
    oq_tensor *y = run3(&oq_op_matmulintegertofloat, &nb.node, in, 7, 0x2, tp2);
    int bad = 0;
    for (int64_t i = 0; i < 2 * M; i++)
        for (int64_t j = 0; j < N; j++) {
            int64_t acc = 0;
            for (int64_t p = 0; p < K; p++)
                acc += (int64_t)(q8v(a8, i * K + p) + 20) * (q8v(bu, p * N + j) - 131);
            double real = (double)acc * ((float *)as->data)[0] * ((float *)bs->data)[j] + ((float *)fbias->data)[j];
            bad += fabs(((float *)y->data)[i * N + j] - real) > 1e-5 * (1 + fabs(real));
        }
    CHECK(bad == 0);
    /* DynamicQuantizeMatMul: close to the float product within the quantization error */
    oq_tensor *af = NULL;
    oq_tensor_create(OQ_FLOAT, 3, a3, &af);
    for (int64_t i = 0; i < 2 * M * K; i++)
        ((float *)af->data)[i] = (float)(rnd() % 2001) / 1000.0f - 1.2f;
    oq_tensor *din[5] = {af, bu, bs, bzu, fbias};
    node_builder dn;
    nb_init(&dn, "com.microsoft", "DynamicQuantizeMatMul", 5);
    oq_tensor *yd = run3(&oq_op_dynamicquantizematmul, &dn.node, din, 5, 0x2, tp2);
    bad = 0;
    for (int64_t i = 0; i < 2 * M; i++)
        for (int64_t j = 0; j < N; j++) {
            double real = ((float *)fbias->data)[j], err = 0;
            for (int64_t p = 0; p < K; p++) {
                double bw = (q8v(bu, p * N + j) - 131) * (double)((float *)bs->data)[j];
                real += ((float *)af->data)[i * K + p] * bw;
                err += fabs(bw) * (2.2 / 255) * 0.5; /* half a step of A's dynamic scale */
            }
            bad += fabs(((float *)yd->data)[i * N + j] - real) > err + 1e-5;
        }
    CHECK(bad == 0);
    /* ... and exactly the DynamicQuantizeLinear rule for A (range with 0, scale = range / 255,
     * x / scale rounded half to even, saturated): the result equals the integer product of
     * A quantized that way, up to float rounding of the final scaling */
    {
        float lo = 0, hi = 0;
        const float *xa = af->data;
        int64_t na = 2 * M * K;
        for (int64_t i = 0; i < na; i++)
            lo = xa[i] < lo ? xa[i] : lo, hi = xa[i] > hi ? xa[i] : hi;
        float sa = (hi - lo) / 255.0f, za = nearbyintf(-lo / sa);
        bad = 0;
        for (int64_t i = 0; i < 2 * M; i++)
            for (int64_t j = 0; j < N; j++) {
                int64_t acc = 0;
                for (int64_t p = 0; p < K; p++) {
                    float v = nearbyintf(xa[i * K + p] / sa) + za;
                    int32_t qa = (int32_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                    acc += (int64_t)(qa - (int32_t)za) * (q8v(bu, p * N + j) - 131);
                }
                double want = (double)acc * sa * ((float *)bs->data)[j] + ((float *)fbias->data)[j];
                bad += fabs(((float *)yd->data)[i * N + j] - want) > 1e-5 * (1 + fabs(want));
            }
        CHECK(bad == 0);
    }
    oq_tensor *all[] = {a, b, as, bs, ys, az, bz, yz, c, a8, bu, fbias, az8, bzu, y, af, yd};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        oq_tensor_destroy(all[i]);
}

/* DynamicQuantizeMatMul with an A large enough for the vector loops and for the
 * threaded quantization (A cut into chunks on two threads): 1 and 2 threads agree
 * bit for bit (run3), and the result is the integer product of A quantized by the
 * DynamicQuantizeLinear rule, special values included (-0, NaN -> 0, halves). */
static void test_dynamic_large(oq_threadpool *tp2)
{
    int64_t R = 389, K = 211, N = 3;
    int64_t ad[2] = {R, K}, bd[2] = {K, N};
    oq_tensor *af = NULL, *bu = q8_tensor(OQ_INT8, 2, bd), *bs = floats((size_t)N, 1, 0.01f);
    oq_tensor_create(OQ_FLOAT, 2, ad, &af);
    float *xa = af->data;
    for (int64_t i = 0; i < R * K; i++)
        xa[i] = (float)(rnd() % 40001) / 10000.0f - 1.5f;
    xa[7] = -0.0f;
    xa[R * K / 2 + 3] = NAN;
    xa[R * K - 1] = 2.5f;   /* the maximum: scale = 4 / 255 */
    xa[R * K / 3] = -1.5f;  /* the minimum */
    float sa = (2.5f - -1.5f) / 255.0f, za = nearbyintf(1.5f / sa);
    for (int64_t i = 100; i < 200; i++) /* values that land near half steps */
        xa[i] = ((float)(i - 150) + 0.5f) * sa;
    oq_tensor *in[3] = {af, bu, bs};
    node_builder dn;
    nb_init(&dn, "com.microsoft", "DynamicQuantizeMatMul", 3);
    oq_tensor *yd = run3(&oq_op_dynamicquantizematmul, &dn.node, in, 3, 0x2, tp2);
    int bad = 0;
    for (int64_t i = 0; i < R; i++)
        for (int64_t j = 0; j < N; j++) {
            int64_t acc = 0;
            for (int64_t p = 0; p < K; p++) {
                float v = ((xa[i * K + p] / sa + 12582912.0f) - 12582912.0f) + za;
                v = v > 0.0f ? v : 0.0f; /* NaN -> 0 */
                int32_t qa = (int32_t)(v < 255.0f ? v : 255.0f);
                acc += (int64_t)(qa - (int32_t)za) * q8v(bu, p * N + j);
            }
            double want = (double)acc * sa * ((float *)bs->data)[j];
            bad += fabs(((float *)yd->data)[i * N + j] - want) > 1e-5 * (1 + fabs(want));
        }
    CHECK(bad == 0);
    oq_tensor *all[] = {af, bu, bs, yd};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        oq_tensor_destroy(all[i]);
}

static void test_errors(void)
{
    int64_t ad[2] = {3, 4}, bd[2] = {5, 6};
    oq_tensor *a = q8_tensor(OQ_UINT8, 2, ad), *b = q8_tensor(OQ_INT8, 2, bd), *y = NULL;
    oq_tensor *in[2] = {a, b};
    node_builder nb;
    nb_init(&nb, "", "MatMulInteger", 2);
    CHECK(run_op(&oq_op_matmulinteger, &nb.node, in, 2, 0x2, NULL, &y) == OQ_E_SHAPE);
    oq_tensor_destroy(y);
    oq_tensor_destroy(a);
    oq_tensor_destroy(b);
}

int main(void)
{
    oq_threadpool *tp2 = NULL;
    CHECK_OK(oq_threadpool_create(2, &tp2));
    static const qconv_case convs[] = {
        /* xt, wt, n, c, m, group, h, w, kh, kw, sh, sw, dh, dw, pad, per_channel, bias, relu, zx, zw, zy, integer */
        {OQ_INT8, OQ_INT8, 1, 8, 16, 1, 9, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, -5, 0, 2, 0},
        {OQ_INT8, OQ_INT8, 2, 6, 10, 2, 11, 10, 3, 2, 2, 1, 2, 1, 2, 1, 1, 1, -128, 0, -100, 0},
        {OQ_UINT8, OQ_UINT8, 1, 5, 7, 1, 6, 6, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 255, 128, 0, 0},
        {OQ_UINT8, OQ_INT8, 1, 12, 12, 12, 8, 9, 3, 3, 1, 2, 1, 1, 1, 1, 1, 1, 7, 0, 100, 0},
        {OQ_INT8, OQ_UINT8, 1, 6, 6, 6, 7, 7, 5, 5, 2, 2, 1, 1, 2, 0, 0, 0, 0, 140, 0, 0},
        {OQ_INT8, OQ_INT8, 1, 3, 40, 1, 13, 13, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0, 10, -3, 0, 0},
        {OQ_UINT8, OQ_INT8, 1, 4, 5, 1, 5, 6, 2, 2, 1, 1, 1, 1, 1, 0, 0, 0, 200, 5, 0, 1},
        {OQ_INT8, OQ_UINT8, 2, 4, 4, 4, 5, 6, 3, 3, 1, 1, 1, 1, 1, 0, 0, 0, -3, 77, 0, 1},
        /* depthwise as MobileNet has it (u8 in with zero point 0, s8 per-channel
         * weights): 7x7 planes, rows over 32 wide at stride 1 and 2, batches
         * whose channel runs the tasks split */
        {OQ_UINT8, OQ_INT8, 2, 20, 20, 20, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 3, 0},
        {OQ_UINT8, OQ_INT8, 2, 9, 9, 9, 12, 70, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 120, 0},
        {OQ_UINT8, OQ_INT8, 3, 5, 5, 5, 11, 67, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 7, 0},
        /* stride 1 k x k through the padded-input packer: groups, dilation, batches,
         * wide rows over several GEMM blocks, a 1 x k kernel, int32 out */
        {OQ_UINT8, OQ_UINT8, 2, 6, 9, 3, 10, 11, 3, 3, 1, 1, 2, 2, 2, 1, 1, 1, 3, 130, 5, 0},
        {OQ_INT8, OQ_INT8, 1, 16, 20, 1, 40, 37, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0, -7, 0, 4, 0},
        {OQ_INT8, OQ_INT8, 1, 3, 33, 1, 4, 30, 1, 5, 1, 1, 1, 1, 2, 0, 1, 0, 1, 2, 0, 0},
        {OQ_UINT8, OQ_INT8, 1, 5, 6, 1, 7, 7, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 128, 0, 0, 1},
        /* strided: the packer's stride phases (1x1 s2, 7x7 s2 p3, s3 x s2 with dilation) */
        {OQ_INT8, OQ_INT8, 1, 8, 12, 1, 9, 10, 1, 1, 2, 2, 1, 1, 0, 1, 1, 0, 3, 0, -2, 0},
        {OQ_UINT8, OQ_INT8, 1, 3, 16, 1, 23, 20, 7, 7, 2, 2, 1, 1, 3, 1, 1, 1, 128, 0, 0, 0},
        {OQ_INT8, OQ_UINT8, 2, 4, 6, 2, 17, 19, 3, 3, 3, 2, 1, 2, 1, 0, 1, 0, -1, 120, 9, 0},
        /* pixel rows (few pixels, long k, many output channels): 3x3 on 7x7 planes in
         * a batch, 1x1 read in place with weight zero points (row sums), 3x3 stride 2,
         * dilation with int32 out; the per-run-weights run of run3 takes the usual form */
        {OQ_UINT8, OQ_INT8, 2, 128, 64, 1, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3, 0, 5, 0},
        {OQ_INT8, OQ_UINT8, 1, 320, 640, 1, 7, 7, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, -4, 131, 2, 0},
        {OQ_UINT8, OQ_UINT8, 1, 128, 96, 1, 15, 15, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0, 128, 120, 0, 0},
        {OQ_INT8, OQ_INT8, 1, 128, 64, 1, 9, 9, 3, 3, 1, 1, 2, 2, 2, 0, 0, 0, -1, 5, 0, 1},
    };
    for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++)
        test_qconv(&convs[i], tp2);
    test_qlinearmatmul(OQ_INT8, OQ_INT8, 0, 1, tp2);
    test_qlinearmatmul(OQ_INT8, OQ_INT8, 1, 0, tp2);
    test_qlinearmatmul(OQ_UINT8, OQ_UINT8, 1, 1, tp2);
    test_qlinearmatmul(OQ_INT8, OQ_UINT8, 0, 0, tp2);
    test_matmulinteger(OQ_INT8, OQ_INT8, tp2);
    test_matmulinteger(OQ_UINT8, OQ_UINT8, tp2);
    test_qgemm_and_float(tp2);
    test_dynamic_large(tp2);
    test_errors();
    oq_threadpool_destroy(tp2);
    return test_summary("test_ops_qlinear");
}
