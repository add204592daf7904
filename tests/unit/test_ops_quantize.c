/* Unit tests for QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear and the
 * com.microsoft quantized elementwise/pooling operators, uint8 and int8, called
 * through their oq_op_def; expectations are computed here in double precision. */
#include "test.h"

#include "ops/op.h"

#include <stdlib.h>
#include <string.h>

typedef struct tnode {
    oq_node node;
    oq_attr attrs[8];
    int64_t ints[8][8];
} tnode;

static void tnode_init(tnode *t, const char *op_type, const char *domain)
{
    memset(t, 0, sizeof *t);
    t->node.name = (char *)"test";
    t->node.op_type = (char *)op_type;
    t->node.domain = (char *)domain;
    t->node.attrs = t->attrs;
}

static void attr_int(tnode *t, const char *name, int64_t v)
{
    oq_attr *a = &t->attrs[t->node.n_attrs++];
    a->name = (char *)name;
    a->type = OQ_ATTR_INT;
    a->i = v;
}

static void attr_float(tnode *t, const char *name, float v)
{
    oq_attr *a = &t->attrs[t->node.n_attrs++];
    a->name = (char *)name;
    a->type = OQ_ATTR_FLOAT;
    a->f = v;
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

static oq_tensor *mk(oq_dtype dt, int nd, const int64_t *dims, const void *data)
{
    oq_tensor *t = NULL;
    if (oq_tensor_create(dt, nd, dims, &t) != OQ_OK)
        return NULL;
    if (data)
        memcpy(t->data, data, (size_t)oq_tensor_numel(t) * oq_dtype_size(dt));
    return t;
}

static oq_tensor *scalar_f(float v) { return mk(OQ_FLOAT, 0, NULL, &v); }
static oq_tensor *scalar_q(oq_dtype t, int v)
{
    int8_t s = (int8_t)v;
    uint8_t u = (uint8_t)v;
    return mk(t, 0, NULL, t == OQ_INT8 ? (void *)&s : (void *)&u);
}

static oq_status run_op(const oq_op_def *def, tnode *t, int64_t opset, oq_tensor **in, size_t n_in, oq_tensor **out,
                        size_t n_out, oq_threadpool *tp)
{
    const oq_tensor *consts[32] = {0};
    oq_op_node n = {.node = &t->node, .label = "test", .opset = opset, .n_inputs = n_in, .n_outputs = n_out,
                    .consts = consts, .tp = tp};
    const oq_tensor *cin[32];
    for (size_t i = 0; i < n_in; i++)
        cin[i] = in[i];
    for (size_t o = 0; o < n_out; o++)
        out[o] = calloc(1, sizeof(oq_tensor));
    oq_status st = def->prepare ? def->prepare(&n) : OQ_OK;
    if (st == OQ_OK)
        st = def->infer(&n, cin, out);
    for (size_t o = 0; o < n_out && st == OQ_OK; o++) {
        int64_t dims[OQ_MAX_DIMS];
        memcpy(dims, out[o]->dims, sizeof dims);
        st = oq_tensor_alloc(out[o], out[o]->dtype, out[o]->ndim, dims);
    }
    if (st == OQ_OK)
        st = def->run(&n, cin, out);
    if (def->destroy)
        def->destroy(n.state);
    return st;
}

static void free_all(oq_tensor **t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        oq_tensor_destroy(t[i]);
        t[i] = NULL;
    }
}

static uint64_t rng = 88172645463325252ull;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static int qget(const oq_tensor *t, int64_t i)
{
    return t->dtype == OQ_INT8 ? ((const int8_t *)t->data)[i] : ((const uint8_t *)t->data)[i];
}

static int clampi(double v, oq_dtype t)
{
    double lo = t == OQ_INT8 ? -128 : 0, hi = t == OQ_INT8 ? 127 : 255;
    return (int)(v < lo ? lo : v > hi ? hi : v);
}

/* ---- QuantizeLinear / DequantizeLinear ---- */

static void test_quantize_ties_and_saturation(void)
{
    tnode t;
    tnode_init(&t, "QuantizeLinear", "");
    /* x / scale = 0.5, 1.5, 2.5, -0.5, -1.5, 1000, -1000: ties go to even; no zero point means uint8, 0 */
    float x[7] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 1000.0f, -1000.0f};
    oq_tensor *in[2] = {mk(OQ_FLOAT, 1, (int64_t[]){7}, x), scalar_f(1.0f)}, *out[1];
    CHECK_OK(run_op(&oq_op_quantize_linear, &t, 13, in, 2, out, 1, NULL));
    const uint8_t want_u8[7] = {0, 2, 2, 0, 0, 255, 0};
    CHECK(out[0]->dtype == OQ_UINT8 && !memcmp(out[0]->data, want_u8, 7));
    free_all(out, 1);
    oq_tensor *in3[3] = {in[0], in[1], scalar_q(OQ_INT8, -1)};
    CHECK_OK(run_op(&oq_op_quantize_linear, &t, 13, in3, 3, out, 1, NULL));
    const int8_t want_s8[7] = {-1, 1, 1, -1, -3, 127, -128};
    CHECK(out[0]->dtype == OQ_INT8 && !memcmp(out[0]->data, want_s8, 7));
    free_all(out, 1);
    oq_tensor_destroy(in3[2]);
    free_all(in, 2);
}

/* Random tensors large enough for the vector loops, tails and the thread pool. */
static void test_quantize_random(oq_dtype qt, bool per_axis, oq_threadpool *tp)
{
    tnode t;
    tnode_init(&t, "QuantizeLinear", "");
    int64_t dims[3] = {3, 5, 6673}; /* odd inner size */
    int64_t n = dims[0] * dims[1] * dims[2];
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(urand() * 8.0 - 4.0);
    float sc[5] = {0.02f, 0.013f, 0.031f, 0.007f, 0.05f};
    int zp[5] = {qt == OQ_INT8 ? -3 : 128, qt == OQ_INT8 ? 5 : 100, qt == OQ_INT8 ? 0 : 7, qt == OQ_INT8 ? -100 : 250,
                 qt == OQ_INT8 ? 77 : 0};
    oq_tensor *s, *z;
    if (per_axis) {
        attr_int(&t, "axis", 1);
        s = mk(OQ_FLOAT, 1, (int64_t[]){5}, sc);
        z = mk(qt, 1, (int64_t[]){5}, NULL);
        for (int c = 0; c < 5; c++) {
            if (qt == OQ_INT8)
                ((int8_t *)z->data)[c] = (int8_t)zp[c];
            else
                ((uint8_t *)z->data)[c] = (uint8_t)zp[c];
        }
    } else {
        s = scalar_f(sc[0]);
        z = scalar_q(qt, zp[0]);
    }
    oq_tensor *in[3] = {mk(OQ_FLOAT, 3, dims, x), s, z}, *out[1];
    CHECK_OK(run_op(&oq_op_quantize_linear, &t, 13, in, 3, out, 1, tp));
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        int c = per_axis ? (int)((i / dims[2]) % 5) : 0;
        double q = nearbyint((double)x[i] / (double)sc[c]) + zp[c];
        bad += qget(out[0], i) != clampi(q, qt);
    }
    CHECK(bad == 0);
    /* and back: DequantizeLinear gives (q - zp) * scale */
    tnode d;
    tnode_init(&d, "DequantizeLinear", "");
    if (per_axis)
        attr_int(&d, "axis", -2);
    oq_tensor *din[3] = {out[0], s, z}, *dout[1];
    CHECK_OK(run_op(&oq_op_dequantize_linear, &d, 13, din, 3, dout, 1, tp));
    bad = 0;
    for (int64_t i = 0; i < n; i++) {
        int c = per_axis ? (int)((i / dims[2]) % 5) : 0;
        double want = (double)(qget(out[0], i) - zp[c]) * sc[c];
        bad += fabs(((float *)dout[0]->data)[i] - want) > 1e-6 * fabs(want);
    }
    CHECK(dout[0]->dtype == OQ_FLOAT && bad == 0);
    free_all(dout, 1);
    free_all(out, 1);
    free_all(in, 3);
    free(x);
}

static void test_dequantize_int32_and_errors(void)
{
    tnode t;
    tnode_init(&t, "DequantizeLinear", "");
    int32_t v[4] = {-2000000, -1, 0, 123456};
    oq_tensor *in[2] = {mk(OQ_INT32, 1, (int64_t[]){4}, v), scalar_f(0.5f)}, *out[1];
    CHECK_OK(run_op(&oq_op_dequantize_linear, &t, 13, in, 2, out, 1, NULL));
    const float *y = out[0]->data;
    CHECK(y[0] == -1000000.0f && y[1] == -0.5f && y[2] == 0.0f && y[3] == 61728.0f);
    free_all(out, 1);
    free_all(in, 2);

    /* per-axis scale of the wrong length, zero scale and blocked quantization are errors */
    tnode q;
    tnode_init(&q, "QuantizeLinear", "");
    attr_int(&q, "axis", 0);
    float x[6] = {0};
    float sc[3] = {1, 1, 1};
    oq_tensor *in2[2] = {mk(OQ_FLOAT, 2, (int64_t[]){2, 3}, x), mk(OQ_FLOAT, 1, (int64_t[]){3}, sc)};
    CHECK(run_op(&oq_op_quantize_linear, &q, 13, in2, 2, out, 1, NULL) == OQ_E_SHAPE);
    free_all(out, 1);
    oq_tensor_destroy(in2[1]);
    in2[1] = scalar_f(0.0f);
    CHECK(run_op(&oq_op_quantize_linear, &q, 13, in2, 2, out, 1, NULL) == OQ_E_INVALID_ARG);
    free_all(out, 1);
    oq_tensor_destroy(in2[1]);
    in2[1] = scalar_f(1.0f);
    attr_int(&q, "block_size", 2);
    CHECK(run_op(&oq_op_quantize_linear, &q, 21, in2, 2, out, 1, NULL) == OQ_E_UNSUPPORTED);
    free_all(out, 1);
    free_all(in2, 2);
}

static void test_dynamic_quantize(void)
{
    tnode t;
    tnode_init(&t, "DynamicQuantizeLinear", "");
    float x[6] = {-1.0f, 0.25f, 2.0f, 0.0f, 1.3f, -0.6f};
    oq_tensor *in[1] = {mk(OQ_FLOAT, 1, (int64_t[]){6}, x)}, *out[3];
    CHECK_OK(run_op(&oq_op_dynamic_quantize_linear, &t, 11, in, 1, out, 3, NULL));
    double scale = (2.0 - -1.0) / 255.0;
    double zp = nearbyint(0 - -1.0 / (float)scale);
    CHECK_NEAR(*(float *)out[1]->data, scale, 1e-7);
    CHECK(*(uint8_t *)out[2]->data == (uint8_t)zp);
    int bad = 0;
    for (int i = 0; i < 6; i++)
        bad += ((uint8_t *)out[0]->data)[i] != clampi(nearbyint(x[i] / *(float *)out[1]->data) + zp, OQ_UINT8);
    CHECK(bad == 0);
    free_all(out, 3);
    /* all positive: the range is widened to include 0, so the zero point is 0 */
    float p[3] = {1.0f, 2.0f, 3.0f};
    free_all(in, 1);
    in[0] = mk(OQ_FLOAT, 1, (int64_t[]){3}, p);
    CHECK_OK(run_op(&oq_op_dynamic_quantize_linear, &t, 11, in, 1, out, 3, NULL));
    CHECK(*(uint8_t *)out[2]->data == 0 && ((uint8_t *)out[0]->data)[2] == 255);
    free_all(out, 3);
    free_all(in, 1);
}

/* ---- com.microsoft operators ---- */

static oq_tensor *rand_q(oq_dtype t, int nd, const int64_t *dims)
{
    oq_tensor *x = mk(t, nd, dims, NULL);
    for (int64_t i = 0; i < oq_tensor_numel(x); i++)
        ((uint8_t *)x->data)[i] = (uint8_t)(urand() * 256);
    return x;
}

/* A [2,3,40] with B [3,1] (broadcast) or [2,3,40] (flat, vector path) for Add and Mul, u8 and s8. */
static void test_qlinear_binary(oq_dtype t, bool mul, bool same)
{
    tnode n;
    tnode_init(&n, mul ? "QLinearMul" : "QLinearAdd", "com.microsoft");
    int64_t da[3] = {2, 3, 40}, db[3] = {3, 1, 0};
    if (same)
        memcpy(db, da, sizeof db);
    float sa = 0.05f, sb = 0.031f, sc = mul ? 0.2f : 0.07f;
    int za = t == OQ_INT8 ? -5 : 120, zb = t == OQ_INT8 ? 3 : 131, zc = t == OQ_INT8 ? 1 : 128;
    oq_tensor *in[8] = {rand_q(t, 3, da), scalar_f(sa), scalar_q(t, za), rand_q(t, same ? 3 : 2, db),
                        scalar_f(sb), scalar_q(t, zb), scalar_f(sc), scalar_q(t, zc)},
              *out[1];
    CHECK_OK(run_op(mul ? &oq_op_qlinear_mul : &oq_op_qlinear_add, &n, 1, in, 8, out, 1, NULL));
    CHECK(out[0]->ndim == 3 && out[0]->dims[2] == 40 && out[0]->dtype == t);
    int worst = 0;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 40; k++) {
                int e = (i * 3 + j) * 40 + k;
                double a = sa * (double)(qget(in[0], e) - za), b = sb * (double)(qget(in[3], same ? e : j) - zb);
                int want = clampi(nearbyint((mul ? a * b : a + b) / sc) + zc, t);
                int d = abs(qget(out[0], e) - want);
                worst = d > worst ? d : worst;
            }
    CHECK(worst <= 1); /* onnxruntime's fp32 arithmetic may land on the other side of a tie */
    free_all(out, 1);
    free_all(in, 8);
}

static void test_qlinear_unary(oq_dtype t)
{
    for (int leaky = 0; leaky < 2; leaky++) {
        tnode n;
        tnode_init(&n, leaky ? "QLinearLeakyRelu" : "QLinearSigmoid", "com.microsoft");
        if (leaky)
            attr_float(&n, "alpha", 0.1f);
        float sx = 0.04f, sy = leaky ? 0.03f : 1.0f / 256;
        int zx = t == OQ_INT8 ? 10 : 128, zy = leaky ? (t == OQ_INT8 ? -20 : 100) : (t == OQ_INT8 ? -128 : 0);
        int64_t d[1] = {256};
        oq_tensor *in[5] = {mk(t, 1, d, NULL), scalar_f(sx), scalar_q(t, zx), scalar_f(sy), scalar_q(t, zy)}, *out[1];
        for (int i = 0; i < 256; i++)
            ((uint8_t *)in[0]->data)[i] = (uint8_t)i;
        CHECK_OK(run_op(leaky ? &oq_op_qlinear_leaky_relu : &oq_op_qlinear_sigmoid, &n, 1, in, 5, out, 1, NULL));
        int worst = 0;
        for (int i = 0; i < 256; i++) {
            double x = sx * (double)(qget(in[0], i) - zx);
            double f = leaky ? (x >= 0 ? x : 0.1 * x) : 1.0 / (1.0 + exp(-x));
            int dd = abs(qget(out[0], i) - clampi(nearbyint(f / sy) + zy, t));
            worst = dd > worst ? dd : worst;
        }
        CHECK(worst <= 1);
        free_all(out, 1);
        free_all(in, 5);
    }
}

static void test_qlinear_pools(oq_dtype t)
{
    float sx = 0.02f, sy = 0.015f;
    int zx = t == OQ_INT8 ? -7 : 121, zy = t == OQ_INT8 ? 4 : 130;
    /* global, NCHW and channels_last: [2, 3, 5, 7] */
    for (int cl = 0; cl < 2; cl++) {
        tnode n;
        tnode_init(&n, "QLinearGlobalAveragePool", "com.microsoft");
        attr_int(&n, "channels_last", cl);
        int64_t d[4] = {2, cl ? 5 : 3, cl ? 7 : 5, cl ? 3 : 7};
        oq_tensor *in[5] = {rand_q(t, 4, d), scalar_f(sx), scalar_q(t, zx), scalar_f(sy), scalar_q(t, zy)}, *out[1];
        CHECK_OK(run_op(&oq_op_qlinear_global_average_pool, &n, 1, in, 5, out, 1, NULL));
        CHECK(out[0]->dims[cl ? 3 : 1] == 3 && out[0]->dims[cl ? 1 : 2] == 1);
        int worst = 0;
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 3; c++) {
                double s = 0;
                for (int p = 0; p < 35; p++)
                    s += qget(in[0], cl ? (b * 35 + p) * 3 + c : (b * 3 + c) * 35 + p) - zx;
                int want = clampi(nearbyint(s * sx / 35 / sy) + zy, t);
                int dd = abs(qget(out[0], b * 3 + c) - want);
                worst = dd > worst ? dd : worst;
            }
        CHECK(worst <= 1);
        free_all(out, 1);
        free_all(in, 5);
    }
    /* windowed 3x3 stride 2 pad 1 over [1, 2, 6, 5], with and without counting pads */
    for (int cip = 0; cip < 2; cip++) {
        tnode n;
        tnode_init(&n, "QLinearAveragePool", "com.microsoft");
        attr_ints(&n, "kernel_shape", (int64_t[]){3, 3}, 2);
        attr_ints(&n, "strides", (int64_t[]){2, 2}, 2);
        attr_ints(&n, "pads", (int64_t[]){1, 1, 1, 1}, 4);
        attr_int(&n, "count_include_pad", cip);
        int64_t d[4] = {1, 2, 6, 5};
        oq_tensor *in[5] = {rand_q(t, 4, d), scalar_f(sx), scalar_q(t, zx), scalar_f(sy), scalar_q(t, zy)}, *out[1];
        CHECK_OK(run_op(&oq_op_qlinear_average_pool, &n, 1, in, 5, out, 1, NULL));
        CHECK(out[0]->dims[2] == 3 && out[0]->dims[3] == 3);
        int worst = 0;
        for (int c = 0; c < 2; c++)
            for (int oh = 0; oh < 3; oh++)
                for (int ow = 0; ow < 3; ow++) {
                    double s = 0;
                    int cnt = 0;
                    for (int kh = 0; kh < 3; kh++)
                        for (int kw = 0; kw < 3; kw++) {
                            int h = oh * 2 - 1 + kh, w = ow * 2 - 1 + kw;
                            bool inside = h >= 0 && h < 6 && w >= 0 && w < 5;
                            if (inside)
                                s += qget(in[0], (c * 6 + h) * 5 + w) - zx;
                            cnt += inside || (cip && h < 7 && w < 6);
                        }
                    int want = clampi(nearbyint(s * sx / cnt / sy) + zy, t);
                    int dd = abs(qget(out[0], (c * 3 + oh) * 3 + ow) - want);
                    worst = dd > worst ? dd : worst;
                }
        CHECK(worst <= 1);
        free_all(out, 1);
        free_all(in, 5);
    }
}

static void test_qlinear_concat(oq_dtype t)
{
    tnode n;
    tnode_init(&n, "QLinearConcat", "com.microsoft");
    attr_int(&n, "axis", 1);
    float sy = 0.05f, s1 = 0.05f, s2 = 0.021f;
    int zy = t == OQ_INT8 ? 2 : 128, z1 = zy, z2 = t == OQ_INT8 ? -9 : 90;
    int64_t d1[2] = {2, 3}, d2[2] = {2, 4};
    oq_tensor *in[8] = {scalar_f(sy), scalar_q(t, zy), rand_q(t, 2, d1), scalar_f(s1), scalar_q(t, z1),
                        rand_q(t, 2, d2), scalar_f(s2), scalar_q(t, z2)},
              *out[1];
    CHECK_OK(run_op(&oq_op_qlinear_concat, &n, 1, in, 8, out, 1, NULL));
    CHECK(out[0]->dims[0] == 2 && out[0]->dims[1] == 7);
    int worst = 0;
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 7; c++) {
            int want = c < 3 ? qget(in[2], r * 3 + c)
                             : clampi(nearbyint(s2 * (double)(qget(in[5], r * 4 + c - 3) - z2) / sy) + zy, t);
            int dd = abs(qget(out[0], r * 7 + c) - want);
            worst = dd > worst ? dd : worst;
        }
    CHECK(worst <= 1);
    free_all(out, 1);
    free_all(in, 8);
}

int main(void)
{
    oq_threadpool *tp = NULL;
    CHECK_OK(oq_threadpool_create(2, &tp));
    test_quantize_ties_and_saturation();
    for (int pa = 0; pa < 2; pa++) {
        test_quantize_random(OQ_UINT8, pa, tp);
        test_quantize_random(OQ_INT8, pa, tp);
    }
    test_dequantize_int32_and_errors();
    test_dynamic_quantize();
    for (int s = 0; s < 2; s++) {
        oq_dtype t = s ? OQ_INT8 : OQ_UINT8;
        for (int same = 0; same < 2; same++) {
            test_qlinear_binary(t, false, same);
            test_qlinear_binary(t, true, same);
        }
        test_qlinear_unary(t);
        test_qlinear_pools(t);
        test_qlinear_concat(t);
    }
    oq_threadpool_destroy(tp);
    return test_summary("test_ops_quantize");
}
