/* Unit tests for the elementwise, unary, reduction, softmax and normalization
 * operators, called through their oq_op_def with hand-built nodes, and for the
 * vectorized float math kernels against libm. */
#include "test.h"

#include "kernels/f32-vmath/vmath.h"
#include "ops/op.h"

#include <stdlib.h>
#include <string.h>

/* ---- building nodes and running one operator ---- */

typedef struct tnode {
    oq_node node;
    oq_attr attrs[4];
    int64_t ints[4][8];
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

static oq_tensor *mkf(int nd, const int64_t *dims, const float *data) { return mk(OQ_FLOAT, nd, dims, data); }

/* Runs def on the inputs (NULL entries are omitted optional inputs); outputs are new tensors. */
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
    oq_status st = OQ_OK;
    if (def->prepare)
        st = def->prepare(&n);
    if (st == OQ_OK)
        st = def->infer(&n, cin, out);
    for (size_t o = 0; o < n_out && st == OQ_OK; o++) {
        if (out[o]->dtype == OQ_UNDEFINED)
            continue;
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

static float fat(const oq_tensor *t, size_t i) { return ((const float *)t->data)[i]; }

/* ---- binary ---- */

static void test_add_broadcast(void)
{
    tnode t;
    tnode_init(&t, "Add");
    /* [2,1,3] + [4,1] -> [2,4,3]: out[i,j,k] = a[i,0,k] + b[j,0] */
    float a[6] = {1, 2, 3, 4, 5, 6}, b[4] = {10, 20, 30, 40};
    oq_tensor *in[2] = {mkf(3, (int64_t[]){2, 1, 3}, a), mkf(2, (int64_t[]){4, 1}, b)}, *out[1];
    CHECK_OK(run_op(&oq_op_add, &t, 14, in, 2, out, 1, NULL));
    CHECK(out[0]->ndim == 3 && out[0]->dims[0] == 2 && out[0]->dims[1] == 4 && out[0]->dims[2] == 3);
    int bad = 0;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 3; k++)
                bad += fat(out[0], (size_t)(i * 12 + j * 3 + k)) != a[i * 3 + k] + b[j];
    CHECK(bad == 0);
    free_all(out, 1);
    free_all(in, 2);

    /* scalar on the left, last-dim vector on the right */
    tnode_init(&t, "Sub");
    float s = 100, v[3] = {1, 2, 3};
    oq_tensor *in2[2] = {mkf(0, NULL, &s), mkf(1, (int64_t[]){3}, v)};
    CHECK_OK(run_op(&oq_op_sub, &t, 14, in2, 2, out, 1, NULL));
    CHECK(out[0]->ndim == 1 && fat(out[0], 0) == 99 && fat(out[0], 2) == 97);
    free_all(out, 1);
    free_all(in2, 2);

    /* shapes that cannot broadcast are an error, not a crash */
    tnode_init(&t, "Mul");
    oq_tensor *in3[2] = {mkf(1, (int64_t[]){3}, v), mkf(1, (int64_t[]){2}, v)};
    CHECK(run_op(&oq_op_mul, &t, 14, in3, 2, out, 1, NULL) == OQ_E_SHAPE);
    free_all(out, 1);
    free_all(in3, 2);
}

static void test_int_div_mod(void)
{
    tnode t;
    tnode_init(&t, "Div");
    int32_t a[4] = {7, -7, 5, INT32_MIN}, b[4] = {2, 2, 0, -1};
    oq_tensor *in[2] = {mk(OQ_INT32, 1, (int64_t[]){4}, a), mk(OQ_INT32, 1, (int64_t[]){4}, b)}, *out[1];
    CHECK_OK(run_op(&oq_op_div, &t, 14, in, 2, out, 1, NULL));
    const int32_t *o = out[0]->data;
    CHECK(o[0] == 3 && o[1] == -3 && o[2] == 0 && o[3] == INT32_MIN);
    free_all(out, 1);
    tnode_init(&t, "Mod"); /* python-style sign follows the divisor */
    CHECK_OK(run_op(&oq_op_mod, &t, 13, in, 2, out, 1, NULL));
    o = out[0]->data;
    CHECK(o[0] == 1 && o[1] == 1 && o[2] == 0);
    free_all(out, 1);
    attr_int(&t, "fmod", 1);
    CHECK_OK(run_op(&oq_op_mod, &t, 13, in, 2, out, 1, NULL));
    o = out[0]->data;
    CHECK(o[0] == 1 && o[1] == -1);
    free_all(out, 1);
    free_all(in, 2);
}

static void test_compare_where(void)
{
    tnode t;
    tnode_init(&t, "Greater");
    float a[4] = {1, 5, 3, 7}, b[2] = {2, 4};
    oq_tensor *in[2] = {mkf(2, (int64_t[]){2, 2}, a), mkf(1, (int64_t[]){2}, b)}, *out[1];
    CHECK_OK(run_op(&oq_op_greater, &t, 13, in, 2, out, 1, NULL));
    const uint8_t *o = out[0]->data;
    CHECK(out[0]->dtype == OQ_BOOL && o[0] == 0 && o[1] == 1 && o[2] == 1 && o[3] == 1);
    free_all(out, 1);

    /* Where(cond [2,1], x [2], y scalar) -> [2,2] */
    tnode_init(&t, "Where");
    uint8_t c[2] = {1, 0};
    float y = -1;
    oq_tensor *w[3] = {mk(OQ_BOOL, 2, (int64_t[]){2, 1}, c), mkf(1, (int64_t[]){2}, b), mkf(0, NULL, &y)};
    CHECK_OK(run_op(&oq_op_where, &t, 16, w, 3, out, 1, NULL));
    CHECK(out[0]->ndim == 2 && fat(out[0], 0) == 2 && fat(out[0], 1) == 4 && fat(out[0], 2) == -1 &&
          fat(out[0], 3) == -1);
    free_all(out, 1);
    free_all(w, 3);
    free_all(in, 2);
}

static void test_pow_and_variadic(void)
{
    tnode t;
    tnode_init(&t, "Pow");
    float a[3] = {1, 2, 3};
    int64_t e = 2;
    oq_tensor *in[2] = {mkf(1, (int64_t[]){3}, a), mk(OQ_INT64, 0, NULL, &e)}, *out[1];
    CHECK_OK(run_op(&oq_op_pow, &t, 15, in, 2, out, 1, NULL));
    CHECK(out[0]->dtype == OQ_FLOAT && fat(out[0], 1) == 4 && fat(out[0], 2) == 9);
    free_all(out, 1);
    free_all(in, 2);

    tnode_init(&t, "Mean");
    float x[2] = {1, 2}, y[1] = {4}, z[2] = {7, 9};
    oq_tensor *v[3] = {mkf(1, (int64_t[]){2}, x), mkf(1, (int64_t[]){1}, y), mkf(1, (int64_t[]){2}, z)};
    CHECK_OK(run_op(&oq_op_mean, &t, 13, v, 3, out, 1, NULL));
    CHECK_NEAR(fat(out[0], 0), 4.0, 1e-6);
    CHECK_NEAR(fat(out[0], 1), 5.0, 1e-6);
    free_all(out, 1);
    free_all(v, 3);

    /* the first two inputs are both narrower than the result: the pairwise step broadcasts
     * both operands along the row (it once read past the one-element inputs) */
    tnode_init(&t, "Max");
    float p[1] = {3}, q[1] = {-2}, r[5] = {1, 5, 2, 8, -9};
    oq_tensor *w[3] = {mkf(1, (int64_t[]){1}, p), mkf(1, (int64_t[]){1}, q), mkf(1, (int64_t[]){5}, r)};
    CHECK_OK(run_op(&oq_op_max, &t, 13, w, 3, out, 1, NULL));
    const float want[5] = {3, 5, 3, 8, 3};
    for (int i = 0; i < 5; i++)
        CHECK(fat(out[0], (size_t)i) == want[i]);
    free_all(out, 1);
    free_all(w, 3);
}

static void test_parallel_matches_serial(void)
{
    oq_threadpool *tp = NULL;
    CHECK_OK(oq_threadpool_create(2, &tp));
    size_t n = 3 * 70001; /* odd sizes: chunks do not align with rows */
    float *a = malloc(n * sizeof *a), b[3] = {0.5f, -1.0f, 2.0f};
    for (size_t i = 0; i < n; i++)
        a[i] = (float)(i % 977) * 0.25f;
    tnode t;
    tnode_init(&t, "Mul");
    oq_tensor *in[2] = {mkf(2, (int64_t[]){70001, 3}, a), mkf(1, (int64_t[]){3}, b)}, *out[1];
    CHECK_OK(run_op(&oq_op_mul, &t, 14, in, 2, out, 1, tp));
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += fat(out[0], i) != a[i] * b[i % 3];
    CHECK(bad == 0);
    free_all(out, 1);
    tnode_init(&t, "Erf");
    CHECK_OK(run_op(&oq_op_erf, &t, 13, in, 1, out, 1, tp));
    bad = 0;
    for (size_t i = 0; i < n; i += 101)
        bad += fabs(fat(out[0], i) - erf(a[i])) > 1e-6;
    CHECK(bad == 0);
    free_all(out, 1);
    free_all(in, 2);
    free(a);
    oq_threadpool_destroy(tp);
}

/* ---- unary ---- */

static void test_round_half_even(void)
{
    tnode t;
    tnode_init(&t, "Round");
    float x[8] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 2.4f, 2.6f, -2.5f};
    float want[8] = {0, 2, 2, -0.0f, -2, 2, 3, -2};
    oq_tensor *in[1] = {mkf(1, (int64_t[]){8}, x)}, *out[1];
    CHECK_OK(run_op(&oq_op_round, &t, 11, in, 1, out, 1, NULL));
    for (int i = 0; i < 8; i++)
        CHECK(fat(out[0], (size_t)i) == want[i]);
    free_all(out, 1);
    free_all(in, 1);
}

static void test_cast(void)
{
    tnode t;
    tnode_init(&t, "Cast");
    attr_int(&t, "to", OQ_INT32);
    float x[5] = {1.9f, -1.9f, 2.5f, -0.2f, 1e10f};
    oq_tensor *in[1] = {mkf(1, (int64_t[]){5}, x)}, *out[1];
    CHECK_OK(run_op(&oq_op_cast, &t, 13, in, 1, out, 1, NULL));
    const int32_t *o = out[0]->data;
    CHECK(out[0]->dtype == OQ_INT32 && o[0] == 1 && o[1] == -1 && o[2] == 2 && o[3] == 0 && o[4] == INT32_MAX);
    free_all(out, 1);

    tnode_init(&t, "Cast");
    attr_int(&t, "to", OQ_FLOAT16);
    CHECK_OK(run_op(&oq_op_cast, &t, 13, in, 1, out, 1, NULL));
    const uint16_t *h = out[0]->data;
    CHECK(out[0]->dtype == OQ_FLOAT16 && h[4] == 0x7C00); /* 1e10 overflows to +inf */
    CHECK_NEAR(oq_half_to_float(h[0]), 1.9, 1e-3);
    CHECK(oq_half_to_float(h[2]) == 2.5f);
    free_all(out, 1);
    free_all(in, 1);

    /* float16 -> float through CastLike */
    tnode_init(&t, "CastLike");
    uint16_t hv[2] = {0x3C00, 0xC000}; /* 1.0, -2.0 */
    float like = 0;
    oq_tensor *in2[2] = {mk(OQ_FLOAT16, 1, (int64_t[]){2}, hv), mkf(0, NULL, &like)};
    CHECK_OK(run_op(&oq_op_cast_like, &t, 15, in2, 2, out, 1, NULL));
    CHECK(out[0]->dtype == OQ_FLOAT && fat(out[0], 0) == 1.0f && fat(out[0], 1) == -2.0f);
    free_all(out, 1);
    free_all(in2, 2);

    /* int64 -> int8 wraps like numpy astype */
    tnode_init(&t, "Cast");
    attr_int(&t, "to", OQ_INT8);
    int64_t iv[2] = {300, -129};
    oq_tensor *in3[1] = {mk(OQ_INT64, 1, (int64_t[]){2}, iv)};
    CHECK_OK(run_op(&oq_op_cast, &t, 13, in3, 1, out, 1, NULL));
    CHECK(((int8_t *)out[0]->data)[0] == 44 && ((int8_t *)out[0]->data)[1] == 127);
    free_all(out, 1);
    free_all(in3, 1);
}

static void test_clip(void)
{
    tnode t;
    tnode_init(&t, "Clip");
    float x[4] = {-5, -1, 1, 5}, mx = 2;
    /* opset 13: min omitted, max given */
    oq_tensor *in[3] = {mkf(1, (int64_t[]){4}, x), NULL, mkf(0, NULL, &mx)}, *out[1];
    CHECK_OK(run_op(&oq_op_clip, &t, 13, in, 3, out, 1, NULL));
    CHECK(fat(out[0], 0) == -5 && fat(out[0], 3) == 2);
    free_all(out, 1);
    /* opset 13: only the input */
    CHECK_OK(run_op(&oq_op_clip, &t, 13, in, 1, out, 1, NULL));
    CHECK(fat(out[0], 0) == -5 && fat(out[0], 3) == 5);
    free_all(out, 1);
    /* opset 6: attributes */
    attr_float(&t, "min", 0.0f);
    attr_float(&t, "max", 6.0f);
    CHECK_OK(run_op(&oq_op_clip, &t, 6, in, 1, out, 1, NULL));
    CHECK(fat(out[0], 0) == 0 && fat(out[0], 2) == 1 && fat(out[0], 3) == 5);
    free_all(out, 1);
    free_all(in, 3);

    /* int8 with a min only */
    tnode_init(&t, "Clip");
    int8_t xi[3] = {-128, 0, 127}, mn = -3;
    oq_tensor *ii[2] = {mk(OQ_INT8, 1, (int64_t[]){3}, xi), mk(OQ_INT8, 0, NULL, &mn)};
    CHECK_OK(run_op(&oq_op_clip, &t, 13, ii, 2, out, 1, NULL));
    const int8_t *o = out[0]->data;
    CHECK(o[0] == -3 && o[1] == 0 && o[2] == 127);
    free_all(out, 1);
    free_all(ii, 2);
}

static void test_activations(void)
{
    float x[5] = {-4, -1, 0, 1, 4};
    oq_tensor *in[1] = {mkf(1, (int64_t[]){5}, x)}, *out[1];
    tnode t;
    tnode_init(&t, "HardSwish");
    CHECK_OK(run_op(&oq_op_hard_swish, &t, 14, in, 1, out, 1, NULL));
    CHECK(fat(out[0], 0) == 0 && fat(out[0], 4) == 4);
    CHECK_NEAR(fat(out[0], 3), 1.0 * (1.0 / 6 + 0.5), 1e-6);
    free_all(out, 1);
    tnode_init(&t, "LeakyRelu");
    attr_float(&t, "alpha", 0.1f);
    CHECK_OK(run_op(&oq_op_leaky_relu, &t, 6, in, 1, out, 1, NULL));
    CHECK_NEAR(fat(out[0], 0), -0.4, 1e-6);
    CHECK(fat(out[0], 4) == 4);
    free_all(out, 1);
    tnode_init(&t, "Sigmoid");
    CHECK_OK(run_op(&oq_op_sigmoid, &t, 13, in, 1, out, 1, NULL));
    CHECK_NEAR(fat(out[0], 0), 1 / (1 + exp(4.0)), 1e-7);
    CHECK_NEAR(fat(out[0], 2), 0.5, 1e-7);
    free_all(out, 1);
    free_all(in, 1);
}

static void test_vmath_accuracy(void)
{
#define VMATH_TABLE(isa)                                                                                    \
    {oq_f32_vexp__##isa, oq_f32_verf__##isa, oq_f32_vtanh__##isa, oq_f32_vsigmoid__##isa, oq_f32_vexp_sum__##isa, \
     oq_f32_vmax__##isa, oq_f32_vclip__##isa, oq_f32_vhardsigmoid__##isa, oq_f32_vleakyrelu__##isa,          \
     oq_f32_vgelu__##isa}
    static const oq_f32_vmath_table portable = VMATH_TABLE(portable), avx2 = VMATH_TABLE(avx2),
                                    avx512 = VMATH_TABLE(avx512);
    /* every variant this CPU can run */
    const oq_f32_vmath_table *tabs[3] = {&portable, &avx2, &avx512};
    int n_tabs = oq_isa_level() >= OQ_ISA_AVX512 ? 3 : oq_isa_level() >= OQ_ISA_AVX2 ? 2 : 1;
    enum { N = 20001 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++)
        x[i] = -10.0f + 20.0f * (float)i / (N - 1);
    x[N / 2 + 1] = 1e-6f;
    for (int k = 0; k < n_tabs; k++) {
        const oq_f32_vmath_table *v = tabs[k];
        double worst[4] = {0};
        v->vexp(x, y, N);
        for (int i = 0; i < N; i++)
            worst[0] = fmax(worst[0], fabs(y[i] - exp(x[i])) / exp(x[i]));
        v->verf(x, y, N);
        for (int i = 0; i < N; i++)
            worst[1] = fmax(worst[1], fabs(y[i] - erf(x[i])) / fmax(fabs(erf(x[i])), 1e-30));
        v->vtanh(x, y, N);
        for (int i = 0; i < N; i++)
            worst[2] = fmax(worst[2], fabs(y[i] - tanh(x[i])) / fmax(fabs(tanh(x[i])), 1e-30));
        v->vsigmoid(x, y, N);
        for (int i = 0; i < N; i++)
            worst[3] = fmax(worst[3], fabs(y[i] - 1 / (1 + exp(-x[i]))) * (1 + exp(-x[i])));
        /* GELU: absolute error (it crosses zero), its erf scaled by x/2 */
        double gelu_worst = 0;
        v->vgelu(x, y, N - 4); /* odd length: vector body and tail */
        for (int i = 0; i < N - 4; i++)
            gelu_worst = fmax(gelu_worst, fabs(y[i] - 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0)))) / fmax(1.0, fabs(x[i])));
        CHECK(gelu_worst <= 1e-6);
        for (int f = 0; f < 4; f++) {
            if (worst[f] > 1e-6)
                fprintf(stderr, "vmath table %d function %d: worst relative error %g\n", k, f, worst[f]);
            CHECK(worst[f] <= 1e-6);
        }
        /* row helpers on odd lengths (vector body plus tail) */
        double ref = 0;
        for (int i = 0; i < 37; i++)
            ref += exp(x[i] - 1.0);
        CHECK_NEAR(v->vexp_sum(x, y, 37, 1.0f), ref, 1e-5 * ref);
        CHECK(v->vmax(x + 3, 29) == x[31]);
        float c[21];
        v->vclip(x + N - 21, c, 21, -1.0f, 9.5f);
        CHECK(c[0] == 9.5f && c[20] == 9.5f);
        v->vhardsigmoid(x, c, 21, 1.0f / 6, 0.5f, 1); /* HardSwish of values near -10: 0 */
        CHECK(c[0] == 0.0f && c[20] == 0.0f);
        v->vleakyrelu(x, c, 21, 0.5f);
        CHECK(c[0] == -5.0f);
        float big[3] = {-200.0f, 89.0f, NAN};
        v->vexp(big, y, 3);
        CHECK(y[0] == 0.0f && isinf(y[1]) && isnan(y[2]));
    }
}

/* ---- reductions ---- */

static void test_reduce(void)
{
    float x[6] = {1, 2, 3, 4, 5, 6}; /* [2,3] */
    tnode t;
    /* opset 13 ReduceSum: axes as input, negative, keepdims = 0 */
    tnode_init(&t, "ReduceSum");
    attr_int(&t, "keepdims", 0);
    int64_t ax = -1;
    oq_tensor *in[2] = {mkf(2, (int64_t[]){2, 3}, x), mk(OQ_INT64, 1, (int64_t[]){1}, &ax)}, *out[1];
    CHECK_OK(run_op(&oq_op_reduce_sum, &t, 13, in, 2, out, 1, NULL));
    CHECK(out[0]->ndim == 1 && out[0]->dims[0] == 2 && fat(out[0], 0) == 6 && fat(out[0], 1) == 15);
    free_all(out, 1);
    /* no axes: everything, keepdims=1 gives [1,1] */
    tnode_init(&t, "ReduceSum");
    CHECK_OK(run_op(&oq_op_reduce_sum, &t, 13, in, 1, out, 1, NULL));
    CHECK(out[0]->ndim == 2 && out[0]->dims[0] == 1 && out[0]->dims[1] == 1 && fat(out[0], 0) == 21);
    free_all(out, 1);
    /* empty axes with noop_with_empty_axes: identity */
    attr_int(&t, "noop_with_empty_axes", 1);
    oq_tensor *empty = mk(OQ_INT64, 1, (int64_t[]){0}, NULL);
    oq_tensor *in2[2] = {in[0], empty};
    CHECK_OK(run_op(&oq_op_reduce_sum, &t, 13, in2, 2, out, 1, NULL));
    CHECK(out[0]->ndim == 2 && out[0]->dims[1] == 3 && fat(out[0], 4) == 5);
    free_all(out, 1);
    oq_tensor_destroy(empty);

    /* opset 11 ReduceMean: axes attribute over the leading axis (generic path) */
    tnode_init(&t, "ReduceMean");
    attr_ints(&t, "axes", (int64_t[]){-2}, 1);
    CHECK_OK(run_op(&oq_op_reduce_mean, &t, 11, in, 1, out, 1, NULL));
    CHECK(out[0]->ndim == 2 && out[0]->dims[0] == 1 && out[0]->dims[1] == 3);
    CHECK(fat(out[0], 0) == 2.5f && fat(out[0], 2) == 4.5f);
    free_all(out, 1);

    /* ReduceMax and LogSumExp over the last axis of a 3-D tensor */
    float y[12];
    for (int i = 0; i < 12; i++)
        y[i] = (float)((i * 7) % 12) - 5;
    oq_tensor *in3[1] = {mkf(3, (int64_t[]){2, 2, 3}, y)};
    tnode_init(&t, "ReduceMax");
    attr_ints(&t, "axes", (int64_t[]){2}, 1);
    attr_int(&t, "keepdims", 0);
    CHECK_OK(run_op(&oq_op_reduce_max, &t, 13, in3, 1, out, 1, NULL));
    for (int r = 0; r < 4; r++) {
        float m = fmaxf(fmaxf(y[r * 3], y[r * 3 + 1]), y[r * 3 + 2]);
        CHECK(fat(out[0], (size_t)r) == m);
    }
    free_all(out, 1);
    tnode_init(&t, "ReduceLogSumExp");
    attr_ints(&t, "axes", (int64_t[]){0, 2}, 2);
    CHECK_OK(run_op(&oq_op_reduce_log_sum_exp, &t, 13, in3, 1, out, 1, NULL));
    CHECK(out[0]->ndim == 3 && out[0]->dims[1] == 2);
    for (int j = 0; j < 2; j++) {
        double s = 0;
        for (int i = 0; i < 2; i++)
            for (int k = 0; k < 3; k++)
                s += exp(y[i * 6 + j * 3 + k]);
        CHECK_NEAR(fat(out[0], (size_t)j), log(s), 1e-5);
    }
    free_all(out, 1);
    /* an axis out of range is an error */
    tnode_init(&t, "ReduceMax");
    attr_ints(&t, "axes", (int64_t[]){3}, 1);
    CHECK(run_op(&oq_op_reduce_max, &t, 13, in3, 1, out, 1, NULL) == OQ_E_INVALID_ARG);
    free_all(out, 1);
    free_all(in3, 1);
    free_all(in, 2);
}

static void test_argmax_cumsum(void)
{
    float x[6] = {1, 3, 3, 0, -1, 2};
    oq_tensor *in[1] = {mkf(2, (int64_t[]){2, 3}, x)}, *out[1];
    tnode t;
    tnode_init(&t, "ArgMax");
    attr_int(&t, "axis", -1);
    attr_int(&t, "keepdims", 0);
    CHECK_OK(run_op(&oq_op_arg_max, &t, 13, in, 1, out, 1, NULL));
    CHECK(((int64_t *)out[0]->data)[0] == 1 && ((int64_t *)out[0]->data)[1] == 2);
    free_all(out, 1);
    attr_int(&t, "select_last_index", 1);
    CHECK_OK(run_op(&oq_op_arg_max, &t, 13, in, 1, out, 1, NULL));
    CHECK(((int64_t *)out[0]->data)[0] == 2);
    free_all(out, 1);

    tnode_init(&t, "CumSum");
    attr_int(&t, "exclusive", 1);
    attr_int(&t, "reverse", 1);
    int32_t ax = 1;
    oq_tensor *cin[2] = {in[0], mk(OQ_INT32, 0, NULL, &ax)};
    CHECK_OK(run_op(&oq_op_cum_sum, &t, 14, cin, 2, out, 1, NULL));
    CHECK(fat(out[0], 0) == 6 && fat(out[0], 1) == 3 && fat(out[0], 2) == 0 && fat(out[0], 3) == 1);
    free_all(out, 1);
    oq_tensor_destroy(cin[1]);
    free_all(in, 1);
}

/* ---- softmax and normalization ---- */

static void test_softmax(void)
{
    float x[6] = {1, 2, 3, 1, 1, 1};
    oq_tensor *in[1] = {mkf(2, (int64_t[]){2, 3}, x)}, *out[1];
    tnode t;
    tnode_init(&t, "Softmax");
    CHECK_OK(run_op(&oq_op_softmax, &t, 13, in, 1, out, 1, NULL));
    double s = exp(1.0) + exp(2.0) + exp(3.0);
    CHECK_NEAR(fat(out[0], 2), exp(3.0) / s, 1e-6);
    CHECK_NEAR(fat(out[0], 4), 1.0 / 3, 1e-6);
    free_all(out, 1);
    /* axis 0 at opset 13 vs the 2-D coercion at opset 11 */
    attr_int(&t, "axis", 0);
    CHECK_OK(run_op(&oq_op_softmax, &t, 13, in, 1, out, 1, NULL));
    CHECK_NEAR(fat(out[0], 0), 0.5, 1e-6);
    CHECK_NEAR(fat(out[0], 2), exp(3.0) / (exp(3.0) + exp(1.0)), 1e-6);
    free_all(out, 1);
    CHECK_OK(run_op(&oq_op_softmax, &t, 11, in, 1, out, 1, NULL));
    double all = s + 3 * exp(1.0);
    CHECK_NEAR(fat(out[0], 0), exp(1.0) / all, 1e-6);
    free_all(out, 1);
    tnode_init(&t, "LogSoftmax");
    CHECK_OK(run_op(&oq_op_log_softmax, &t, 13, in, 1, out, 1, NULL));
    CHECK_NEAR(fat(out[0], 0), 1 - log(s), 1e-5);
    free_all(out, 1);
    tnode_init(&t, "Hardmax");
    CHECK_OK(run_op(&oq_op_hardmax, &t, 13, in, 1, out, 1, NULL));
    CHECK(fat(out[0], 2) == 1 && fat(out[0], 1) == 0 && fat(out[0], 3) == 1 && fat(out[0], 4) == 0);
    free_all(out, 1);
    free_all(in, 1);
}

static void test_layer_norm(void)
{
    float x[4] = {1, 2, 3, 4}, g[2] = {1, 2}, b[2] = {0, 1};
    oq_tensor *in[3] = {mkf(2, (int64_t[]){2, 2}, x), mkf(1, (int64_t[]){2}, g), mkf(1, (int64_t[]){2}, b)}, *out[3];
    tnode t;
    tnode_init(&t, "LayerNormalization");
    attr_float(&t, "epsilon", 0.0f);
    CHECK_OK(run_op(&oq_op_layer_normalization, &t, 17, in, 3, out, 3, NULL));
    /* each row is {m-0.5, m+0.5}: normalized to {-1, 1} */
    CHECK_NEAR(fat(out[0], 0), -1, 1e-6);
    CHECK_NEAR(fat(out[0], 1), 3, 1e-6);
    CHECK(out[1]->ndim == 2 && out[1]->dims[0] == 2 && out[1]->dims[1] == 1);
    CHECK_NEAR(fat(out[1], 1), 3.5, 1e-6);
    CHECK_NEAR(fat(out[2], 0), 2.0, 1e-5);
    free_all(out, 3);
    free_all(in, 3);
}

int main(void)
{
    test_add_broadcast();
    test_int_div_mod();
    test_compare_where();
    test_pow_and_variadic();
    test_parallel_matches_serial();
    test_round_half_even();
    test_cast();
    test_clip();
    test_activations();
    test_vmath_accuracy();
    test_reduce();
    test_argmax_cumsum();
    test_softmax();
    test_layer_norm();
    return test_summary("test_ops_elementwise");
}
