/* Unit tests of the graph passes: each builds a small model in C, runs one pass
 * on a copy, checks the rewrite (which nodes went, what replaced them) and that
 * the graph computes the same outputs as before, run without any pass. */
#include "../robustness/model_builder.h"
#include "core/core.h"
#include "onnxq.h"
#include "passes/pass.h"
#include "runtime/exec.h"
#include "test.h"
#include "test_graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { T_FLOAT = 1, T_INT64 = 7 };

static void attr_ints(mb *b, Onnx__NodeProto *n, const char *name, size_t c, const int64_t *v)
{
    Onnx__AttributeProto *a = mb_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->n_ints = c;
    a->ints = mb_alloc(b, (c + 1) * sizeof *a->ints);
    memcpy(a->ints, v, c * sizeof *v);
}

static void attr_float(mb *b, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = mb_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    a->has_f = 1;
    a->f = v;
}

static void attr_floats(mb *b, Onnx__NodeProto *n, const char *name, size_t c, const float *v)
{
    Onnx__AttributeProto *a = mb_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
    a->n_floats = c;
    a->floats = mb_alloc(b, (c + 1) * sizeof *a->floats);
    memcpy(a->floats, v, c * sizeof *v);
}

static void attr_string(mb *b, Onnx__NodeProto *n, const char *name, const char *s)
{
    Onnx__AttributeProto *a = mb_attr(b, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    a->has_s = 1;
    a->s.len = strlen(s);
    a->s.data = (uint8_t *)mb_str(b, s);
}

static float val(int64_t i, int salt) { return (float)(((i + salt) * 37 + salt * 11) % 23) * 0.125f - 1.4f; }

/* Float initializer with deterministic values (positive when pos). */
static Onnx__TensorProto *init_f(mb *b, Onnx__GraphProto *g, const char *name, int ndim, const int64_t *dims,
                                 int salt, bool pos)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= dims[d];
    float *v = malloc((size_t)(n + 1) * sizeof *v);
    for (int64_t i = 0; i < n; i++)
        v[i] = pos ? fabsf(val(i, salt)) + 0.1f : val(i, salt);
    Onnx__TensorProto *t = mb_tensor(b, name, T_FLOAT, ndim, dims);
    mb_tensor_raw(b, t, v, (size_t)n * sizeof *v);
    free(v);
    mb_initializer(b, g, t);
    return t;
}

static void init_scalar(mb *b, Onnx__GraphProto *g, const char *name, float v)
{
    Onnx__TensorProto *t = mb_tensor(b, name, T_FLOAT, 0, NULL);
    mb_tensor_raw(b, t, &v, sizeof v);
    mb_initializer(b, g, t);
}

/* A rank-0 uint8 initializer (a zero point). */
static void init_u8(mb *b, Onnx__GraphProto *g, const char *name, uint8_t v)
{
    Onnx__TensorProto *t = mb_tensor(b, name, 2 /* UINT8 */, 0, NULL);
    mb_tensor_raw(b, t, &v, 1);
    mb_initializer(b, g, t);
}

static void init_i64(mb *b, Onnx__GraphProto *g, const char *name, size_t n, const int64_t *v)
{
    Onnx__TensorProto *t = mb_tensor(b, name, T_INT64, 1, (int64_t[]){(int64_t)n});
    mb_tensor_raw(b, t, v, n * sizeof *v);
    mb_initializer(b, g, t);
}

static Onnx__NodeProto *constant_node(mb *b, Onnx__GraphProto *g, const char *out, float v)
{
    Onnx__NodeProto *n = mb_node(b, g, "Constant", out, "", out);
    Onnx__AttributeProto *a = mb_attr(b, n, "value", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    a->t = mb_tensor(b, "", T_FLOAT, 0, NULL);
    mb_tensor_raw(b, a->t, &v, sizeof v);
    return n;
}

static oq_model *load(mb *b, Onnx__ModelProto *mp)
{
    size_t len;
    uint8_t *buf = mb_pack(b, mp, &len);
    oq_model *m = NULL;
    CHECK_OK(oq_model_load_memory(buf, len, "test.onnx", NULL, &m));
    return m;
}

/* Runs m's main graph as it is (no passes) on one float input of shape dims. */
static oq_tensor *run_raw(const oq_model *m, int ndim, const int64_t *dims)
{
    oq_exec *e = NULL;
    oq_tensor *x = NULL, *y = NULL;
    CHECK_OK(oq_tensor_create(OQ_FLOAT, ndim, dims, &x));
    if (!x)
        return NULL;
    float *xd = x->data;
    for (int64_t i = 0; i < oq_tensor_numel(x); i++)
        xd[i] = val(i, 5) * 1.7f;
    oq_status st = oq_exec_create(m, m->graph, NULL, NULL, 0, &e);
    CHECK_OK(st);
    if (st == OQ_OK) {
        const oq_tensor *in[1] = {x};
        CHECK_OK(oq_exec_run(e, in, 1, &y, 1));
    }
    oq_exec_destroy(e);
    oq_tensor_destroy(x);
    return y;
}

/* Same outputs within rel (of the largest magnitude). */
static void check_same(const oq_model *a, const oq_model *b, int ndim, const int64_t *dims, double rel)
{
    oq_tensor *ya = run_raw(a, ndim, dims), *yb = run_raw(b, ndim, dims);
    CHECK(ya && yb);
    if (ya && yb) {
        CHECK(oq_shape_equal(ya->ndim, ya->dims, yb->ndim, yb->dims));
        double maxabs = 0, maxdiff = 0;
        for (int64_t i = 0; i < oq_tensor_numel(ya) && i < oq_tensor_numel(yb); i++) {
            double p = ((float *)ya->data)[i], q = ((float *)yb->data)[i];
            maxabs = fmax(maxabs, fabs(p));
            maxdiff = fmax(maxdiff, fabs(p - q));
        }
        if (maxdiff > rel * maxabs)
            fprintf(stderr, "  max diff %g (max |y| %g)\n", maxdiff, maxabs);
        CHECK(maxdiff <= rel * maxabs);
    }
    oq_tensor_destroy(ya);
    oq_tensor_destroy(yb);
}

static oq_model *clone_and_run(const oq_model *m, oq_status (*pass)(oq_model *, oq_graph *, oq_pass_ctx *),
                               size_t *changed)
{
    oq_model *c = NULL;
    CHECK_OK(oq_model_clone(m, &c));
    if (!c)
        return NULL;
    oq_pass_ctx ctx = {0};
    CHECK_OK(pass(c, c->graph, &ctx));
    if (changed)
        *changed = ctx.changed;
    return c;
}

/* x[2,6] -> Shape(x) -> Gather(1) -> Unsqueeze -> Concat([-1], .) -> Reshape(x), plus (c1 + c2) * x. */
static void test_constant_fold(void)
{
    mb b = {0};
    Onnx__GraphProto *g = mb_graph(&b, "fold");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 2, (int64_t[]){2, 6}, NULL));
    constant_node(&b, g, "c1", 1.5f);
    constant_node(&b, g, "c2", -0.25f);
    init_i64(&b, g, "one", 1, (int64_t[]){1});
    init_i64(&b, g, "minus1", 1, (int64_t[]){-1});
    init_i64(&b, g, "axes0", 1, (int64_t[]){0});
    mb_node(&b, g, "Add", "add_c", "c1,c2", "c");
    mb_node(&b, g, "Mul", "scale", "x,c", "xs");
    mb_node(&b, g, "Shape", "shape", "xs", "s");
    Onnx__NodeProto *ga = mb_node(&b, g, "Gather", "gather", "s,one", "d1");
    mb_attr_int(&b, ga, "axis", 0);
    mb_node(&b, g, "Concat", "concat", "minus1,d1", "target");
    mb_attr_int(&b, g->node[g->n_node - 1], "axis", 0);
    mb_node(&b, g, "Reshape", "reshape", "xs,target", "y");
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 2, (int64_t[]){2, 6}, NULL));
    oq_model *m = load(&b, mb_model(&b, 13, g));
    size_t changed = 0;
    oq_model *c = m ? clone_and_run(m, pass_constant_fold, &changed) : NULL;
    if (c) {
        CHECK(test_count_op(c->graph, "Constant") == 0);
        CHECK(test_count_op(c->graph, "Add") == 0);
        CHECK(test_count_op(c->graph, "Shape") == 0);
        CHECK(test_count_op(c->graph, "Concat") == 0);
        CHECK(test_count_op(c->graph, "Mul") == 1 && test_count_op(c->graph, "Reshape") == 1);
        CHECK(oq_graph_initializer(c->graph, "target") != NULL);
        check_same(m, c, 2, (int64_t[]){2, 6}, 1e-6);
        oq_pass_ctx ctx = {0};
        CHECK_OK(pass_dead_nodes(c, c->graph, &ctx));
        CHECK(oq_graph_initializer(c->graph, "one") == NULL); /* read only by the folded Gather */
        check_same(m, c, 2, (int64_t[]){2, 6}, 1e-6);
    }
    oq_model_destroy(c);
    oq_model_destroy(m);

    /* A symbolic batch keeps Shape at run time. */
    g = mb_graph(&b, "fold_sym");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 2, (int64_t[]){0, 6}, (const char *[]){"N", NULL}));
    mb_node(&b, g, "Shape", "shape", "x", "s");
    mb_node(&b, g, "Reshape", "reshape", "x,s", "y");
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 2, (int64_t[]){0, 6}, (const char *[]){"N", NULL}));
    m = load(&b, mb_model(&b, 13, g));
    c = m ? clone_and_run(m, pass_constant_fold, NULL) : NULL;
    if (c)
        CHECK(test_count_op(c->graph, "Shape") == 1);
    oq_model_destroy(c);
    oq_model_destroy(m);

    /* A large fill stays a node (BlazeFace's zero channel padding: stored, it was 172 KB);
     * a small one is folded. */
    g = mb_graph(&b, "fold_fill");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 4, (int64_t[]){1, 2, 32, 32}, NULL));
    init_i64(&b, g, "big", 4, (int64_t[]){1, 2, 32, 32});
    init_i64(&b, g, "small", 4, (int64_t[]){1, 1, 1, 32});
    mb_node(&b, g, "ConstantOfShape", "fill_big", "big", "zb");
    mb_node(&b, g, "ConstantOfShape", "fill_small", "small", "zs");
    mb_node(&b, g, "Add", "add_b", "x,zb", "xb");
    mb_node(&b, g, "Add", "add_s", "xb,zs", "y");
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 4, (int64_t[]){1, 2, 32, 32}, NULL));
    m = load(&b, mb_model(&b, 13, g));
    c = m ? clone_and_run(m, pass_constant_fold, NULL) : NULL;
    if (c) {
        CHECK(test_count_op(c->graph, "ConstantOfShape") == 1 && !strcmp(c->graph->nodes[0].outputs[0], "zb"));
        CHECK(oq_graph_initializer(c->graph, "zs") != NULL);
        check_same(m, c, 4, (int64_t[]){1, 2, 32, 32}, 1e-6);
    }
    oq_model_destroy(c);
    oq_model_destroy(m);
    mb_free(&b);
}

/* Conv(x, W, B) -> BatchNormalization, and Gemm(transB) -> BatchNormalization. */
static void test_fold_batchnorm(void)
{
    mb b = {0};
    Onnx__GraphProto *g = mb_graph(&b, "bn");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 4, (int64_t[]){1, 3, 5, 5}, NULL));
    init_f(&b, g, "W", 4, (int64_t[]){4, 3, 3, 3}, 1, false);
    init_f(&b, g, "B", 1, (int64_t[]){4}, 2, false);
    init_f(&b, g, "scale", 1, (int64_t[]){4}, 3, false);
    init_f(&b, g, "shift", 1, (int64_t[]){4}, 4, false);
    init_f(&b, g, "mean", 1, (int64_t[]){4}, 5, false);
    init_f(&b, g, "var", 1, (int64_t[]){4}, 6, true);
    Onnx__NodeProto *conv = mb_node(&b, g, "Conv", "conv", "x,W,B", "c");
    attr_ints(&b, conv, "pads", 4, (int64_t[]){1, 1, 1, 1});
    Onnx__NodeProto *bn = mb_node(&b, g, "BatchNormalization", "bn", "c,scale,shift,mean,var", "y");
    attr_float(&b, bn, "epsilon", 1e-3f);
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 4, (int64_t[]){1, 4, 5, 5}, NULL));
    oq_model *m = load(&b, mb_model(&b, 13, g));
    oq_model *c = m ? clone_and_run(m, pass_fold_batchnorm, NULL) : NULL;
    if (c) {
        CHECK(test_count_op(c->graph, "BatchNormalization") == 0 && test_count_op(c->graph, "Conv") == 1);
        CHECK(!strcmp(c->graph->nodes[0].outputs[0], "y"));
        check_same(m, c, 4, (int64_t[]){1, 3, 5, 5}, 1e-5);
    }
    oq_model_destroy(c);
    oq_model_destroy(m);

    g = mb_graph(&b, "bn_gemm");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 2, (int64_t[]){3, 5}, NULL));
    init_f(&b, g, "W", 2, (int64_t[]){4, 5}, 1, false);
    init_f(&b, g, "scale", 1, (int64_t[]){4}, 3, false);
    init_f(&b, g, "shift", 1, (int64_t[]){4}, 4, false);
    init_f(&b, g, "mean", 1, (int64_t[]){4}, 5, false);
    init_f(&b, g, "var", 1, (int64_t[]){4}, 6, true);
    Onnx__NodeProto *gemm = mb_node(&b, g, "Gemm", "gemm", "x,W", "c");
    mb_attr_int(&b, gemm, "transB", 1);
    mb_node(&b, g, "BatchNormalization", "bn", "c,scale,shift,mean,var", "y");
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 2, (int64_t[]){3, 4}, NULL));
    m = load(&b, mb_model(&b, 13, g));
    c = m ? clone_and_run(m, pass_fold_batchnorm, NULL) : NULL;
    if (c) {
        CHECK(test_count_op(c->graph, "BatchNormalization") == 0 && c->graph->nodes[0].n_inputs == 3);
        check_same(m, c, 2, (int64_t[]){3, 5}, 1e-5);
    }
    oq_model_destroy(c);
    oq_model_destroy(m);
    mb_free(&b);
}

/* Largest |w| of output channel c of a Conv weight [M, ...] (equalize_conv test). */
static float row_range(const oq_tensor *w, int64_t c)
{
    int64_t per = oq_tensor_numel(w) / w->dims[0];
    float r = 0;
    for (int64_t i = 0; i < per; i++)
        r = fmaxf(r, fabsf(((const float *)w->data)[c * per + i]));
    return r;
}

/* Conv (4 channels, one scaled 40x) -> Relu -> depthwise Conv -> Conv: both pairs are
 * equalized, the outputs stay the same, the spread of the first Conv's channel ranges
 * shrinks, the original initializers are left alone; a Conv read twice is not touched. */
static void test_equalize_conv(void)
{
    mb b = {0};
    Onnx__GraphProto *g = mb_graph(&b, "eq");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 4, (int64_t[]){1, 3, 6, 6}, NULL));
    Onnx__TensorProto *w1 = init_f(&b, g, "W1", 4, (int64_t[]){4, 3, 3, 3}, 1, false);
    for (int i = 0; i < 27; i++)
        ((float *)w1->raw_data.data)[27 + i] *= 40; /* channel 1 */
    init_f(&b, g, "B1", 1, (int64_t[]){4}, 2, false);
    init_f(&b, g, "W2", 4, (int64_t[]){4, 1, 3, 3}, 3, false);
    init_f(&b, g, "W3", 4, (int64_t[]){2, 4, 1, 1}, 4, false);
    Onnx__NodeProto *c1 = mb_node(&b, g, "Conv", "c1", "x,W1,B1", "a");
    attr_ints(&b, c1, "pads", 4, (int64_t[]){1, 1, 1, 1});
    mb_node(&b, g, "Relu", "r", "a", "ar");
    Onnx__NodeProto *c2 = mb_node(&b, g, "Conv", "c2", "ar,W2", "d");
    attr_ints(&b, c2, "pads", 4, (int64_t[]){1, 1, 1, 1});
    mb_attr_int(&b, c2, "group", 4);
    mb_node(&b, g, "Conv", "c3", "d,W3", "y");
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 4, (int64_t[]){1, 2, 6, 6}, NULL));
    oq_model *m = load(&b, mb_model(&b, 13, g));
    size_t changed = 0;
    oq_model *c = m ? clone_and_run(m, pass_equalize_conv, &changed) : NULL;
    if (c) {
        CHECK(changed == 2);
        check_same(m, c, 4, (int64_t[]){1, 3, 6, 6}, 1e-5);
        const oq_tensor *before = oq_graph_initializer(m->graph, "W1");
        const oq_tensor *after = oq_graph_initializer(c->graph, c->graph->nodes[0].inputs[1]);
        CHECK(after && after != oq_graph_initializer(c->graph, "W1"));
        CHECK(oq_graph_initializer(c->graph, "W1") &&
              !memcmp(oq_graph_initializer(c->graph, "W1")->data, before->data, before->nbytes));
        if (after) {
            float lo = INFINITY, hi = 0, lo0 = INFINITY, hi0 = 0;
            for (int64_t k = 0; k < 4; k++) {
                lo = fminf(lo, row_range(after, k)), hi = fmaxf(hi, row_range(after, k));
                lo0 = fminf(lo0, row_range(before, k)), hi0 = fmaxf(hi0, row_range(before, k));
            }
            CHECK(hi / lo < 0.5f * hi0 / lo0);
        }
    }
    oq_model_destroy(c);
    oq_model_destroy(m);

    /* a channel that is nearly its bias (weights 1e-3, bias -3) is not blown up: its scale
     * follows its output range, bias included, not its tiny weights */
    g = mb_graph(&b, "eq_bias");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 4, (int64_t[]){1, 3, 4, 4}, NULL));
    Onnx__TensorProto *wq = init_f(&b, g, "W1", 4, (int64_t[]){4, 3, 1, 1}, 1, false);
    Onnx__TensorProto *bq = init_f(&b, g, "B1", 1, (int64_t[]){4}, 2, false);
    for (int i = 0; i < 3; i++)
        ((float *)wq->raw_data.data)[i] *= 1e-3f;
    ((float *)bq->raw_data.data)[0] = -3;
    init_f(&b, g, "W3", 4, (int64_t[]){2, 4, 1, 1}, 4, false);
    mb_node(&b, g, "Conv", "c1", "x,W1,B1", "a");
    mb_node(&b, g, "Conv", "c3", "a,W3", "y");
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 4, (int64_t[]){1, 2, 4, 4}, NULL));
    m = load(&b, mb_model(&b, 13, g));
    c = m ? clone_and_run(m, pass_equalize_conv, NULL) : NULL;
    if (c) {
        check_same(m, c, 4, (int64_t[]){1, 3, 4, 4}, 1e-5);
        const oq_tensor *b1 = oq_graph_initializer(c->graph, c->graph->nodes[0].inputs[2]);
        CHECK(b1 && fabsf(((float *)b1->data)[0]) < 10);
    }
    oq_model_destroy(c);
    oq_model_destroy(m);

    /* a layer norm's affine (Mul gamma, Add beta) -> Relu -> Gemm(transB) and -> MatMul */
    for (int mm = 0; mm < 2; mm++) {
        g = mb_graph(&b, mm ? "eq_affine_matmul" : "eq_affine_gemm");
        mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 2, (int64_t[]){3, 6}, NULL));
        Onnx__TensorProto *gm = init_f(&b, g, "gamma", 1, (int64_t[]){6}, 1, true);
        ((float *)gm->raw_data.data)[2] *= 30;
        init_f(&b, g, "beta", 1, (int64_t[]){6}, 2, false);
        init_f(&b, g, "W", 2, mm ? (int64_t[]){6, 4} : (int64_t[]){4, 6}, 3, false);
        mb_node(&b, g, "Mul", "scale", "gamma,x", "s");
        mb_node(&b, g, "Add", "shift", "s,beta", "t");
        mb_node(&b, g, "Relu", "r", "t", "tr");
        Onnx__NodeProto *gemm = mb_node(&b, g, mm ? "MatMul" : "Gemm", "fc", "tr,W", "y");
        if (!mm)
            mb_attr_int(&b, gemm, "transB", 1);
        mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 2, (int64_t[]){3, 4}, NULL));
        m = load(&b, mb_model(&b, 13, g));
        changed = 0;
        c = m ? clone_and_run(m, pass_equalize_conv, &changed) : NULL;
        if (c) {
            CHECK(changed == 1);
            check_same(m, c, 2, (int64_t[]){3, 6}, 1e-5);
            const oq_tensor *g1 = oq_graph_initializer(c->graph, c->graph->nodes[0].inputs[0]);
            CHECK(g1 && strcmp(g1->name, "gamma") && ((float *)g1->data)[2] != ((float *)gm->raw_data.data)[2]);
        }
        oq_model_destroy(c);
        oq_model_destroy(m);
    }

    /* the first Conv's output also feeds the graph output: no pair */
    g = mb_graph(&b, "eq_shared");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 4, (int64_t[]){1, 3, 4, 4}, NULL));
    init_f(&b, g, "W1", 4, (int64_t[]){4, 3, 1, 1}, 1, false);
    init_f(&b, g, "W3", 4, (int64_t[]){2, 4, 1, 1}, 4, false);
    mb_node(&b, g, "Conv", "c1", "x,W1", "a");
    mb_node(&b, g, "Conv", "c3", "a,W3", "y");
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 4, (int64_t[]){1, 2, 4, 4}, NULL));
    mb_output(&b, g, mb_vi(&b, "a", T_FLOAT, 4, (int64_t[]){1, 4, 4, 4}, NULL));
    m = load(&b, mb_model(&b, 13, g));
    changed = 0;
    c = m ? clone_and_run(m, pass_equalize_conv, &changed) : NULL;
    CHECK(c && changed == 0);
    oq_model_destroy(c);
    oq_model_destroy(m);
    mb_free(&b);
}

/* Dead branch, unused initializer, Identity into the output, Dropout. */
static void test_dead_and_identity(void)
{
    mb b = {0};
    Onnx__GraphProto *g = mb_graph(&b, "dead");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 2, (int64_t[]){2, 3}, NULL));
    init_f(&b, g, "w", 1, (int64_t[]){3}, 1, false);
    init_f(&b, g, "unused", 1, (int64_t[]){3}, 2, false);
    mb_node(&b, g, "Identity", "id0", "x", "x1");
    mb_node(&b, g, "Dropout", "drop", "x1", "x2");
    mb_node(&b, g, "Mul", "mul", "x2,w", "t");
    mb_node(&b, g, "Sigmoid", "dead", "t", "nobody");
    mb_node(&b, g, "Identity", "id1", "t", "y");
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 2, (int64_t[]){2, 3}, NULL));
    oq_model *m = load(&b, mb_model(&b, 13, g));
    oq_model *c = m ? clone_and_run(m, pass_fuse_identity, NULL) : NULL;
    if (c) {
        CHECK(test_count_op(c->graph, "Identity") == 0 && test_count_op(c->graph, "Dropout") == 0);
        size_t mul = oq_graph_producer(c->graph, "y");
        CHECK(mul != SIZE_MAX && !strcmp(c->graph->nodes[mul].op_type, "Mul"));
        CHECK(mul != SIZE_MAX && !strcmp(c->graph->nodes[mul].inputs[0], "x"));
        oq_pass_ctx ctx = {0};
        CHECK_OK(pass_dead_nodes(c, c->graph, &ctx));
        CHECK(c->graph->n_nodes == 1);
        CHECK(oq_graph_initializer(c->graph, "unused") == NULL && oq_graph_initializer(c->graph, "w") != NULL);
        /* onnxq has no Dropout kernel: the rewritten graph is checked by hand. */
        oq_tensor *y = run_raw(c, 2, (int64_t[]){2, 3});
        const oq_tensor *w = oq_graph_initializer(c->graph, "w");
        CHECK(y && w && oq_tensor_numel(y) == 6);
        for (int64_t i = 0; y && w && i < 6; i++)
            CHECK(((float *)y->data)[i] == val(i, 5) * 1.7f * ((float *)w->data)[i % 3]);
        oq_tensor_destroy(y);
    }
    oq_model_destroy(c);
    oq_model_destroy(m);
    mb_free(&b);
}

/* PyTorch's decomposed LayerNorm and erf GELU, then MatMul + bias. */
static void test_transformer_fusions(void)
{
    mb b = {0};
    Onnx__GraphProto *g = mb_graph(&b, "ln");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 2, (int64_t[]){4, 8}, NULL));
    init_f(&b, g, "gamma", 1, (int64_t[]){8}, 1, false);
    init_f(&b, g, "beta", 1, (int64_t[]){8}, 2, false);
    init_f(&b, g, "W", 2, (int64_t[]){8, 6}, 3, false);
    init_f(&b, g, "bias", 1, (int64_t[]){6}, 4, false);
    init_scalar(&b, g, "two", 2.0f);
    init_scalar(&b, g, "eps", 1e-5f);
    init_scalar(&b, g, "sqrt2", 1.4142135f);
    init_scalar(&b, g, "one", 1.0f);
    init_scalar(&b, g, "half", 0.5f);
    attr_ints(&b, mb_node(&b, g, "ReduceMean", "m", "x", "mean"), "axes", 1, (int64_t[]){-1});
    mb_node(&b, g, "Sub", "sub", "x,mean", "d");
    mb_node(&b, g, "Pow", "pow", "d,two", "d2");
    attr_ints(&b, mb_node(&b, g, "ReduceMean", "v", "d2", "var"), "axes", 1, (int64_t[]){-1});
    mb_node(&b, g, "Add", "addeps", "var,eps", "ve");
    mb_node(&b, g, "Sqrt", "sqrt", "ve", "sd");
    mb_node(&b, g, "Div", "div", "d,sd", "n");
    mb_node(&b, g, "Mul", "mulg", "n,gamma", "ng");
    mb_node(&b, g, "Add", "addb", "ng,beta", "ln");
    mb_node(&b, g, "MatMul", "mm", "ln,W", "h0");
    mb_node(&b, g, "Add", "mmb", "bias,h0", "h");
    mb_node(&b, g, "Div", "gdiv", "h,sqrt2", "hs");
    mb_node(&b, g, "Erf", "erf", "hs", "e");
    mb_node(&b, g, "Add", "gadd", "e,one", "e1");
    mb_node(&b, g, "Mul", "gmul", "h,e1", "he");
    mb_node(&b, g, "Mul", "ghalf", "he,half", "y");
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 2, (int64_t[]){4, 6}, NULL));
    oq_model *m = load(&b, mb_model(&b, 13, g));
    oq_model *c = m ? clone_and_run(m, pass_fuse_layernorm, NULL) : NULL;
    if (c) {
        CHECK(test_count_op(c->graph, "LayerNormalization") == 1 && test_count_op(c->graph, "ReduceMean") == 0);
        oq_pass_ctx ctx = {0};
        CHECK_OK(pass_fuse_gelu(c, c->graph, &ctx));
        CHECK(test_count_op(c->graph, "Gelu") == 1 && test_count_op(c->graph, "Erf") == 0);
        CHECK(oq_model_opset(c, "com.microsoft") == 1);
        CHECK_OK(pass_fuse_matmul_bias(c, c->graph, &ctx));
        CHECK(test_count_op(c->graph, "Gemm") == 1 && test_count_op(c->graph, "MatMul") == 0);
        CHECK(c->graph->n_nodes == 3);
        check_same(m, c, 2, (int64_t[]){4, 8}, 1e-5);
        /* The rewritten model still saves and loads. */
        CHECK_OK(oq_model_save(c, "/tmp/onnxq-test-passes.onnx", NULL));
        oq_model *r = NULL;
        CHECK_OK(oq_model_load("/tmp/onnxq-test-passes.onnx", NULL, &r));
        remove("/tmp/onnxq-test-passes.onnx");
        if (r)
            check_same(m, r, 2, (int64_t[]){4, 8}, 1e-5);
        oq_model_destroy(r);
    }
    oq_model_destroy(c);
    oq_model_destroy(m);
    mb_free(&b);
}

/* x[2,3,8] -> DynamicQuantizeMatMul(W int8 [8,5]) -> Add(bias [5]) (and a second one
 * whose Add reads a [1,5] bias, which must stay): the first Add becomes the
 * matmul's bias input, bit-identically. */
static void test_integer_matmul_bias(void)
{
    mb b = {0};
    Onnx__GraphProto *g = mb_graph(&b, "dqmm");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 3, (int64_t[]){2, 3, 8}, NULL));
    int8_t w[40];
    for (int i = 0; i < 40; i++)
        w[i] = (int8_t)((i * 29) % 255 - 127);
    Onnx__TensorProto *wt = mb_tensor(&b, "W", 3 /* INT8 */, 2, (int64_t[]){8, 5});
    mb_tensor_raw(&b, wt, w, sizeof w);
    mb_initializer(&b, g, wt);
    init_f(&b, g, "ws", 1, (int64_t[]){5}, 6, true);
    for (int k = 0; k < 5; k++)
        ((float *)g->initializer[g->n_initializer - 1]->raw_data.data)[k] *= 0.01f;
    init_f(&b, g, "bias", 1, (int64_t[]){5}, 7, false);
    init_f(&b, g, "bias2", 2, (int64_t[]){1, 5}, 8, false);
    Onnx__NodeProto *n1 = mb_node(&b, g, "DynamicQuantizeMatMul", "dq1", "x,W,ws", "h0");
    n1->domain = mb_str(&b, "com.microsoft");
    mb_node(&b, g, "Add", "add1", "bias,h0", "h");
    Onnx__NodeProto *n2 = mb_node(&b, g, "DynamicQuantizeMatMul", "dq2", "x,W,ws", "k0");
    n2->domain = mb_str(&b, "com.microsoft");
    mb_node(&b, g, "Add", "add2", "k0,bias2", "k");
    mb_node(&b, g, "Add", "sum", "h,k", "y");
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 3, (int64_t[]){2, 3, 5}, NULL));
    Onnx__ModelProto *mp = mb_model(&b, 13, g);
    mb_opset(&b, mp, "com.microsoft", 1);
    oq_model *m = load(&b, mp);
    size_t changed = 0;
    oq_model *c = m ? clone_and_run(m, pass_fuse_matmul_bias, &changed) : NULL;
    if (c) {
        CHECK(changed == 1);
        CHECK(test_count_op(c->graph, "Add") == 2 && test_count_op(c->graph, "DynamicQuantizeMatMul") == 2);
        bool biased = false;
        for (size_t i = 0; i < c->graph->n_nodes; i++) {
            const oq_node *n = &c->graph->nodes[i];
            if (!strcmp(n->op_type, "DynamicQuantizeMatMul") && n->n_inputs == 5)
                biased = n->inputs[3] && !n->inputs[3][0] && n->inputs[4] && !strcmp(n->inputs[4], "bias") &&
                         !strcmp(n->outputs[0], "h");
        }
        CHECK(biased);
        check_same(m, c, 3, (int64_t[]){2, 3, 8}, 0.0);
    }
    oq_model_destroy(c);
    oq_model_destroy(m);
    mb_free(&b);
}

/* QDQ Conv whose output is read in float (here: the graph output): the QDQ fusion makes
 * it a QLinearConv with onnxq_float_output, and a session's result equals the original
 * graph run as it is (float conv of the dequantized values) up to float rounding and the
 * bias's rounding to the accumulator's int32 scale. */
static void test_qdq_conv_float_output(void)
{
    mb b = {0};
    Onnx__GraphProto *g = mb_graph(&b, "qdq_conv");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 4, (int64_t[]){1, 4, 6, 5}, NULL));
    init_scalar(&b, g, "xs", 0.02f);
    init_u8(&b, g, "xz", 128);
    int8_t w[6 * 4 * 9];
    for (int i = 0; i < (int)sizeof w; i++)
        w[i] = (int8_t)((i * 37) % 255 - 127);
    Onnx__TensorProto *wt = mb_tensor(&b, "W", 3 /* INT8 */, 4, (int64_t[]){6, 4, 3, 3});
    mb_tensor_raw(&b, wt, w, sizeof w);
    mb_initializer(&b, g, wt);
    init_f(&b, g, "ws", 1, (int64_t[]){6}, 3, true);
    for (int k = 0; k < 6; k++)
        ((float *)g->initializer[g->n_initializer - 1]->raw_data.data)[k] *= 0.01f;
    init_f(&b, g, "bias", 1, (int64_t[]){6}, 4, false);
    mb_node(&b, g, "QuantizeLinear", "q", "x,xs,xz", "xq");
    mb_node(&b, g, "DequantizeLinear", "dq", "xq,xs,xz", "xd");
    mb_attr_int(&b, mb_node(&b, g, "DequantizeLinear", "dqw", "W,ws", "wd"), "axis", 0);
    attr_ints(&b, mb_node(&b, g, "Conv", "conv", "xd,wd,bias", "y"), "pads", 4, (int64_t[]){1, 1, 1, 1});
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 4, (int64_t[]){1, 6, 6, 5}, NULL));
    oq_model *m = load(&b, mb_model(&b, 13, g));
    oq_model *c = m ? clone_and_run(m, pass_fuse_qdq, NULL) : NULL;
    if (c) {
        bool fused = false;
        for (size_t i = 0; i < c->graph->n_nodes; i++)
            fused |= !strcmp(c->graph->nodes[i].op_type, "QLinearConv") &&
                     oq_node_attr_int(&c->graph->nodes[i], "onnxq_float_output", 0) == 1;
        CHECK(fused && test_count_op(c->graph, "Conv") == 0);
    }
    int64_t dims[4] = {1, 4, 6, 5};
    oq_tensor *x = NULL, *ys = NULL, *yr = run_raw(m, 4, dims);
    oq_session *s = NULL;
    CHECK_OK(oq_tensor_create(OQ_FLOAT, 4, dims, &x));
    if (m && x) {
        for (int64_t i = 0; i < oq_tensor_numel(x); i++)
            ((float *)x->data)[i] = val(i, 5) * 1.7f; /* the inputs run_raw feeds */
        CHECK_OK(oq_session_create(m, NULL, &s));
        const oq_tensor *in[1] = {x};
        if (s)
            CHECK_OK(oq_session_run(s, in, 1, &ys, 1));
    }
    if (ys && yr) {
        double maxabs = 0, maxdiff = 0;
        for (int64_t i = 0; i < oq_tensor_numel(yr); i++) {
            double p = ((float *)yr->data)[i], q = ((float *)ys->data)[i];
            maxabs = fmax(maxabs, fabs(p));
            maxdiff = fmax(maxdiff, fabs(p - q));
        }
        CHECK(oq_tensor_numel(ys) == 180 && maxabs > 0.1 && maxdiff <= 1e-4 * maxabs + 2e-4);
    }
    oq_tensor_destroy(x);
    oq_tensor_destroy(ys);
    oq_tensor_destroy(yr);
    oq_session_destroy(s);
    oq_model_destroy(c);
    oq_model_destroy(m);
    mb_free(&b);
}

/* int8 tensor initializer with deterministic values. */
static void init_i8(mb *b, Onnx__GraphProto *g, const char *name, int64_t rows, int64_t cols, int salt)
{
    int8_t v[64];
    for (int64_t i = 0; i < rows * cols && i < 64; i++)
        v[i] = (int8_t)(((i + salt) * 37) % 255 - 127);
    Onnx__TensorProto *t = mb_tensor(b, name, 3 /* INT8 */, 2, (int64_t[]){rows, cols});
    mb_tensor_raw(b, t, v, (size_t)(rows * cols));
    mb_initializer(b, g, t);
}

/* QDQ Gemms whose outputs are read in float (a LayerNorm would; here an Add): the QDQ fusion
 * makes each a QGemm without y_scale (float output), with the weight per output column
 * along axis 0 (transB) or 1, an int32 bias already in the accumulator's scale or a float
 * one (with alpha and beta) that it converts; the result equals the unfused graph up to
 * float rounding and the bias's rounding to the accumulator's scale. */
static void test_qdq_gemm_float_output(void)
{
    mb b = {0};
    Onnx__GraphProto *g = mb_graph(&b, "qdq_gemm");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 2, (int64_t[]){3, 8}, NULL));
    init_scalar(&b, g, "xs", 0.02f);
    init_u8(&b, g, "xz", 128);
    init_i8(&b, g, "W1", 5, 8, 1); /* transB: [N, K] */
    init_i8(&b, g, "W2", 8, 5, 2); /* [K, N] */
    init_f(&b, g, "ws1", 1, (int64_t[]){5}, 3, true);
    init_f(&b, g, "ws2", 1, (int64_t[]){5}, 4, true);
    float *ws1 = (float *)g->initializer[g->n_initializer - 2]->raw_data.data;
    float *ws2 = (float *)g->initializer[g->n_initializer - 1]->raw_data.data;
    int32_t b1[5];
    float bs1[5];
    for (int k = 0; k < 5; k++) {
        ws1[k] *= 0.01f;
        ws2[k] *= 0.01f;
        bs1[k] = 0.02f * ws1[k];
        b1[k] = (k * 53) % 41 - 20;
    }
    Onnx__TensorProto *b1t = mb_tensor(&b, "B1", 6 /* INT32 */, 1, (int64_t[]){5});
    mb_tensor_raw(&b, b1t, b1, sizeof b1);
    mb_initializer(&b, g, b1t);
    Onnx__TensorProto *bs1t = mb_tensor(&b, "bs1", T_FLOAT, 1, (int64_t[]){5});
    mb_tensor_raw(&b, bs1t, bs1, sizeof bs1);
    mb_initializer(&b, g, bs1t);
    init_f(&b, g, "B2", 1, (int64_t[]){5}, 5, false);
    mb_node(&b, g, "QuantizeLinear", "q", "x,xs,xz", "xq");
    mb_node(&b, g, "DequantizeLinear", "dq", "xq,xs,xz", "xd");
    mb_attr_int(&b, mb_node(&b, g, "DequantizeLinear", "dqw1", "W1,ws1", "w1d"), "axis", 0);
    mb_attr_int(&b, mb_node(&b, g, "DequantizeLinear", "dqw2", "W2,ws2", "w2d"), "axis", 1);
    mb_attr_int(&b, mb_node(&b, g, "DequantizeLinear", "dqb1", "B1,bs1", "b1d"), "axis", 0);
    mb_attr_int(&b, mb_node(&b, g, "Gemm", "g1", "xd,w1d,b1d", "y1"), "transB", 1);
    Onnx__NodeProto *g2 = mb_node(&b, g, "Gemm", "g2", "xd,w2d,B2", "y2");
    Onnx__AttributeProto *al = mb_attr(&b, g2, "alpha", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    al->has_f = 1;
    al->f = 0.5f;
    Onnx__AttributeProto *be = mb_attr(&b, g2, "beta", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    be->has_f = 1;
    be->f = 2.0f;
    mb_node(&b, g, "Add", "sum", "y1,y2", "y");
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 2, (int64_t[]){3, 5}, NULL));
    oq_model *m = load(&b, mb_model(&b, 13, g));
    oq_model *c = m ? clone_and_run(m, pass_fuse_qdq, NULL) : NULL;
    if (c) {
        CHECK(test_count_op(c->graph, "QGemm") == 2 && test_count_op(c->graph, "Gemm") == 0 &&
              test_count_op(c->graph, "DequantizeLinear") == 0);
        for (size_t i = 0; i < c->graph->n_nodes; i++)
            if (!strcmp(c->graph->nodes[i].op_type, "QGemm"))
                CHECK(c->graph->nodes[i].n_inputs == 7); /* no y_scale, y_zero_point: float output */
        check_same(m, c, 2, (int64_t[]){3, 8}, 1e-4);
    }
    oq_model_destroy(c);
    oq_model_destroy(m);
    mb_free(&b);
}

/* DequantizeLinear of constant weights left by the QDQ fusion (here: the Gemm's input is
 * not quantized, so it stays float) is evaluated once into a float initializer: same
 * result, bit for bit; a DQ whose output is a graph output stays. */
static void test_fold_dequantize(void)
{
    mb b = {0};
    Onnx__GraphProto *g = mb_graph(&b, "fold_dq");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 2, (int64_t[]){3, 8}, NULL));
    init_i8(&b, g, "W", 5, 8, 1);
    init_f(&b, g, "ws", 1, (int64_t[]){5}, 3, true);
    mb_attr_int(&b, mb_node(&b, g, "DequantizeLinear", "dqw", "W,ws", "wd"), "axis", 0);
    mb_attr_int(&b, mb_node(&b, g, "Gemm", "gemm", "x,wd", "y"), "transB", 1);
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 2, (int64_t[]){3, 5}, NULL));
    Onnx__GraphProto *g2 = mb_graph(&b, "keep_dq");
    mb_input(&b, g2, mb_vi(&b, "x", T_FLOAT, 2, (int64_t[]){3, 8}, NULL));
    init_i8(&b, g2, "V", 2, 4, 2);
    init_scalar(&b, g2, "vs", 0.5f);
    mb_node(&b, g2, "DequantizeLinear", "dqv", "V,vs", "vd");
    mb_output(&b, g2, mb_vi(&b, "vd", T_FLOAT, 2, (int64_t[]){2, 4}, NULL));
    oq_model *m = load(&b, mb_model(&b, 13, g)), *m2 = load(&b, mb_model(&b, 13, g2));
    size_t changed = 0, changed2 = 0;
    oq_model *c = m ? clone_and_run(m, pass_fold_dequantize, &changed) : NULL;
    oq_model *c2 = m2 ? clone_and_run(m2, pass_fold_dequantize, &changed2) : NULL;
    if (c) {
        CHECK(changed == 1 && test_count_op(c->graph, "DequantizeLinear") == 0);
        const oq_tensor *wd = oq_graph_initializer(c->graph, "wd");
        CHECK(wd && wd->dtype == OQ_FLOAT && oq_tensor_numel(wd) == 40);
        check_same(m, c, 2, (int64_t[]){3, 8}, 0.0);
    }
    if (c2)
        CHECK(changed2 == 0 && test_count_op(c2->graph, "DequantizeLinear") == 1);
    oq_model_destroy(c);
    oq_model_destroy(c2);
    oq_model_destroy(m);
    oq_model_destroy(m2);
    mb_free(&b);
}

/* ConstantOfShape(shape) writing a fill of v (a [1]-shaped value attribute, as ONNX writes it). */
static void fill_node(mb *b, Onnx__GraphProto *g, const char *shape_name, const int64_t *shape, const char *out,
                      float v)
{
    init_i64(b, g, shape_name, 4, shape);
    Onnx__NodeProto *n = mb_node(b, g, "ConstantOfShape", out, shape_name, out);
    Onnx__AttributeProto *a = mb_attr(b, n, "value", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    a->t = mb_tensor(b, "", T_FLOAT, 1, (int64_t[]){1});
    mb_tensor_raw(b, a->t, &v, sizeof v);
}

/* Concat(x, fill) on the channels and Concat(fill, .) on the last axis (negative) become Pads
 * with the fills' values: the same tensor, bit for bit. */
static void test_fill_to_pad(void)
{
    mb b = {0};
    Onnx__GraphProto *g = mb_graph(&b, "fill");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 4, (int64_t[]){1, 2, 3, 4}, NULL));
    fill_node(&b, g, "s1", (int64_t[]){1, 1, 3, 4}, "f1", 0.0f);
    fill_node(&b, g, "s2", (int64_t[]){1, 3, 3, 2}, "f2", 1.5f);
    mb_attr_int(&b, mb_node(&b, g, "Concat", "c1", "x,f1", "y1"), "axis", 1);
    mb_attr_int(&b, mb_node(&b, g, "Concat", "c2", "f2,y1", "y"), "axis", -1);
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 4, (int64_t[]){1, 3, 3, 6}, NULL));
    oq_model *m = load(&b, mb_model(&b, 13, g));
    size_t changed = 0;
    oq_model *c = m ? clone_and_run(m, pass_fill_to_pad, &changed) : NULL;
    if (c) {
        CHECK(changed == 2 && test_count_op(c->graph, "Pad") == 2 && test_count_op(c->graph, "Concat") == 0);
        check_same(m, c, 4, (int64_t[]){1, 2, 3, 4}, 0.0);
    }
    oq_model_destroy(c);
    oq_model_destroy(m);
    mb_free(&b);
}

/* DQ -> Pad(value 0.5) -> Q with the same parameters: the fusion runs the Pad on uint8 with the
 * pad value quantized, Q(0.5); the same tensor as the float evaluation of the QDQ graph. */
static void test_qdq_pad(void)
{
    mb b = {0};
    Onnx__GraphProto *g = mb_graph(&b, "qdq_pad");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 2, (int64_t[]){3, 4}, NULL));
    init_scalar(&b, g, "xs", 0.02f);
    init_u8(&b, g, "xz", 100);
    init_i64(&b, g, "pads", 4, (int64_t[]){1, 0, 0, 2});
    init_scalar(&b, g, "pv", 0.5f);
    mb_node(&b, g, "QuantizeLinear", "q", "x,xs,xz", "xq");
    mb_node(&b, g, "DequantizeLinear", "dq", "xq,xs,xz", "xd");
    mb_node(&b, g, "Pad", "pad", "xd,pads,pv", "p");
    mb_node(&b, g, "QuantizeLinear", "q2", "p,xs,xz", "pq");
    mb_node(&b, g, "DequantizeLinear", "dq2", "pq,xs,xz", "y");
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 2, (int64_t[]){4, 6}, NULL));
    oq_model *m = load(&b, mb_model(&b, 13, g));
    oq_model *c = m ? clone_and_run(m, pass_fuse_qdq, NULL) : NULL;
    if (c) {
        const oq_node *pad = NULL;
        for (size_t i = 0; i < c->graph->n_nodes; i++)
            pad = !strcmp(c->graph->nodes[i].op_type, "Pad") ? &c->graph->nodes[i] : pad;
        const oq_tensor *v = pad && pad->n_inputs > 2 ? oq_graph_initializer(c->graph, pad->inputs[2]) : NULL;
        CHECK(v && v->dtype == OQ_UINT8 && ((const uint8_t *)v->data)[0] == 125); /* 0.5 / 0.02 + 100 */
        CHECK(test_count_op(c->graph, "QuantizeLinear") == 1 && test_count_op(c->graph, "DequantizeLinear") == 1);
        check_same(m, c, 2, (int64_t[]){3, 4}, 0.0);
    }
    oq_model_destroy(c);
    oq_model_destroy(m);
    mb_free(&b);
}

/* Views share their input's arena bytes (runtime planner): a Reshape chain whose input is
 * read again after it, with other values planned around them, computes what it should,
 * on every run. y = (relu(x) + reshape(reshape(relu(x)))) * sigmoid(relu(x)). */
static void test_view_aliasing(void)
{
    mb b = {0};
    Onnx__GraphProto *g = mb_graph(&b, "views");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 2, (int64_t[]){4, 6}, NULL));
    init_i64(&b, g, "s1", 2, (int64_t[]){3, 8});
    init_i64(&b, g, "s2", 2, (int64_t[]){4, 6});
    mb_node(&b, g, "Relu", "r", "x", "a");
    mb_node(&b, g, "Reshape", "v1", "a,s1", "b");
    mb_node(&b, g, "Neg", "n", "b", "nb"); /* another value alive while b is */
    mb_node(&b, g, "Neg", "n2", "nb", "b2");
    mb_node(&b, g, "Reshape", "v2", "b2,s2", "c");
    mb_node(&b, g, "Add", "add", "a,c", "d");
    mb_node(&b, g, "Sigmoid", "sg", "a", "e");
    mb_node(&b, g, "Mul", "mul", "d,e", "y");
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 2, (int64_t[]){4, 6}, NULL));
    oq_model *m = load(&b, mb_model(&b, 13, g));
    oq_session *s = NULL;
    oq_tensor *x = NULL;
    CHECK_OK(oq_tensor_create(OQ_FLOAT, 2, (int64_t[]){4, 6}, &x));
    if (m && x)
        CHECK_OK(oq_session_create(m, NULL, &s));
    for (int run = 0; s && run < 3; run++) {
        for (int64_t i = 0; i < 24; i++)
            ((float *)x->data)[i] = val(i, run) * 1.3f;
        const oq_tensor *in[1] = {x};
        oq_tensor *y = NULL;
        CHECK_OK(oq_session_run(s, in, 1, &y, 1));
        int bad = 0;
        for (int64_t i = 0; y && i < 24; i++) {
            float a = ((float *)x->data)[i] > 0 ? ((float *)x->data)[i] : 0.0f;
            float want = (a + a) * (1.0f / (1.0f + expf(-a)));
            bad += fabsf(((float *)y->data)[i] - want) > 1e-6f * (1 + fabsf(want));
        }
        CHECK(y && bad == 0);
        oq_tensor_destroy(y);
    }
    oq_session_destroy(s);
    oq_tensor_destroy(x);
    oq_model_destroy(m);
    mb_free(&b);
}

/* Opset 9: Clip/Slice/Unsqueeze attributes, Softmax over a middle axis,
 * Upsample; upgraded to 13 it must compute the same. Resize-10 is refused. */
static void test_upgrade_opset(void)
{
    mb b = {0};
    Onnx__GraphProto *g = mb_graph(&b, "old");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 4, (int64_t[]){1, 2, 3, 4}, NULL));
    Onnx__NodeProto *n = mb_node(&b, g, "Clip", "clip", "x", "c");
    attr_float(&b, n, "min", -0.5f);
    attr_float(&b, n, "max", 1.0f);
    n = mb_node(&b, g, "Slice", "slice", "c", "s");
    attr_ints(&b, n, "starts", 1, (int64_t[]){1});
    attr_ints(&b, n, "ends", 1, (int64_t[]){4});
    attr_ints(&b, n, "axes", 1, (int64_t[]){3});
    n = mb_node(&b, g, "Softmax", "softmax", "s", "sm");
    mb_attr_int(&b, n, "axis", 2);
    init_f(&b, g, "scales", 1, (int64_t[]){4}, 0, true);
    n = mb_node(&b, g, "Upsample", "up", "sm,scales", "u");
    n = mb_node(&b, g, "Unsqueeze", "unsq", "u", "y");
    attr_ints(&b, n, "axes", 1, (int64_t[]){0});
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, -1, NULL, NULL));
    /* Upsample scales must be exact: 1, 1, 2, 2. */
    float sc[4] = {1, 1, 2, 2};
    mb_tensor_raw(&b, g->initializer[0], sc, sizeof sc);
    oq_model *m = load(&b, mb_model(&b, 9, g));
    oq_model *c = NULL;
    if (m)
        CHECK_OK(oq_model_clone(m, &c));
    if (c) {
        oq_pass_ctx ctx = {0};
        CHECK_OK(pass_upgrade_opset(c, c->graph, &ctx));
        CHECK(oq_model_opset(c, "") == 13);
        CHECK(test_count_op(c->graph, "Upsample") == 0 && test_count_op(c->graph, "Resize") == 1);
        size_t clip = oq_graph_producer(c->graph, "c");
        CHECK(clip != SIZE_MAX && c->graph->nodes[clip].n_inputs == 3 && !oq_node_attr(&c->graph->nodes[clip], "min"));
        CHECK(test_count_op(c->graph, "Flatten") == 1); /* axis 2 of a rank-4 value */
        check_same(m, c, 4, (int64_t[]){1, 2, 3, 4}, 1e-6);
    }
    oq_model_destroy(c);
    oq_model_destroy(m);

    g = mb_graph(&b, "resize10");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 4, (int64_t[]){1, 1, 2, 2}, NULL));
    init_f(&b, g, "scales", 1, (int64_t[]){4}, 0, true);
    mb_node(&b, g, "Resize", "resize", "x,scales", "y");
    attr_string(&b, g->node[0], "mode", "nearest");
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, -1, NULL, NULL));
    m = load(&b, mb_model(&b, 10, g));
    if (m) {
        oq_pass_ctx ctx = {0};
        CHECK(pass_upgrade_opset(m, m->graph, &ctx) == OQ_E_UNSUPPORTED);
        CHECK(strstr(oq_last_error(), "resize") != NULL);
        CHECK(oq_model_opset(m, "") == 10 && m->graph->n_nodes == 1);
    }
    oq_model_destroy(m);
    (void)attr_floats;
    mb_free(&b);
}

/* The packed-QKV self-attention block as PyTorch exports it (B 2, S 5, H 3, D 4):
 * Reshape, Transpose, Split, Squeeze x3, K Transpose, MatMul, scale, Softmax, MatMul,
 * Transpose, Reshape. The pass makes it one onnxq.QkvAttention whose output equals
 * the unfused graph's on one thread and on two; not fused when the scores are
 * also a graph output. scale_op/scale: Div by 8 (folded into the product), Div by
 * 3 (divided before the softmax), Mul by 0.3, or none. */
static oq_model *attention_model(mb *b, const char *scale_op, float scale, bool scores_out)
{
    Onnx__GraphProto *g = mb_graph(b, "attn");
    mb_input(b, g, mb_vi(b, "x", T_FLOAT, 3, (int64_t[]){2, 5, 36}, NULL));
    init_i64(b, g, "shape5", 5, (int64_t[]){-1, 5, 3, 3, 4});
    init_i64(b, g, "split", 3, (int64_t[]){1, 1, 1});
    init_i64(b, g, "axes0", 1, (int64_t[]){0});
    init_i64(b, g, "shape3", 3, (int64_t[]){-1, 5, 12});
    init_scalar(b, g, "c", scale);
    mb_node(b, g, "Reshape", "r1", "x,shape5", "r");
    attr_ints(b, mb_node(b, g, "Transpose", "tq", "r", "t"), "perm", 5, (int64_t[]){2, 0, 3, 1, 4});
    mb_attr_int(b, mb_node(b, g, "Split", "sp", "t,split", "s0,s1,s2"), "axis", 0);
    mb_node(b, g, "Squeeze", "sq0", "s0,axes0", "q");
    mb_node(b, g, "Squeeze", "sq1", "s1,axes0", "k");
    mb_node(b, g, "Squeeze", "sq2", "s2,axes0", "v");
    attr_ints(b, mb_node(b, g, "Transpose", "tk", "k", "kt"), "perm", 4, (int64_t[]){0, 1, 3, 2});
    mb_node(b, g, "MatMul", "mm1", "q,kt", scale_op ? "qk" : "sc");
    if (scale_op)
        mb_node(b, g, scale_op, "scale", "qk,c", "sc");
    mb_attr_int(b, mb_node(b, g, "Softmax", "sm", "sc", "p"), "axis", -1);
    mb_node(b, g, "MatMul", "mm2", "p,v", "o");
    attr_ints(b, mb_node(b, g, "Transpose", "to", "o", "ot"), "perm", 4, (int64_t[]){0, 2, 1, 3});
    mb_node(b, g, "Reshape", "r2", "ot,shape3", "y");
    mb_output(b, g, mb_vi(b, "y", T_FLOAT, 3, (int64_t[]){2, 5, 12}, NULL));
    if (scores_out)
        mb_output(b, g, mb_vi(b, "sc", T_FLOAT, 4, (int64_t[]){2, 3, 5, 5}, NULL));
    return load(b, mb_model(b, 13, g));
}

static void test_attention_fusion(void)
{
    const char *ops[] = {"Div", "Div", "Mul", NULL};
    const float scales[] = {8.0f, 3.0f, 0.3f, 1.0f};
    for (int c = 0; c < 4; c++) {
        mb b = {0};
        oq_model *m = attention_model(&b, ops[c], scales[c], false);
        size_t changed = 0;
        oq_model *f = m ? clone_and_run(m, pass_fuse_attention, &changed) : NULL;
        if (f) {
            CHECK(changed == 1 && f->graph->n_nodes == 1 && test_count_op(f->graph, "QkvAttention") == 1);
            check_same(m, f, 3, (int64_t[]){2, 5, 36}, 1e-5);
            /* a session (its passes fuse the block) on two threads, one (batch, head) per
             * task, against the graph run as it is */
            oq_session_options o = oq_session_options_default();
            o.threads = 2;
            oq_session *s2 = NULL;
            oq_tensor *x = NULL, *y2 = NULL;
            CHECK_OK(oq_tensor_create(OQ_FLOAT, 3, (int64_t[]){2, 5, 36}, &x));
            for (int64_t i = 0; x && i < 360; i++)
                ((float *)x->data)[i] = val(i, c) * 2.1f;
            CHECK_OK(oq_session_create(m, &o, &s2));
            const oq_tensor *in[1] = {x};
            if (s2)
                CHECK_OK(oq_session_run(s2, in, 1, &y2, 1));
            oq_exec *e = NULL;
            CHECK_OK(oq_exec_create(m, m->graph, NULL, NULL, 0, &e));
            oq_tensor *want = NULL;
            if (e)
                CHECK_OK(oq_exec_run(e, in, 1, &want, 1));
            oq_exec_destroy(e);
            CHECK(y2 && want && oq_tensor_numel(y2) == 120 && oq_tensor_numel(want) == 120);
            double maxdiff = 0;
            for (int64_t i = 0; y2 && want && i < 120; i++)
                maxdiff = fmax(maxdiff, fabs(((float *)y2->data)[i] - ((float *)want->data)[i]));
            CHECK(maxdiff <= 1e-5);
            oq_tensor_destroy(want);
            oq_tensor_destroy(y2);
            oq_tensor_destroy(x);
            oq_session_destroy(s2);
        }
        oq_model_destroy(f);
        oq_model_destroy(m);
        mb_free(&b);
    }
    mb b = {0};
    oq_model *m = attention_model(&b, "Div", 8.0f, true);
    size_t changed = 0;
    oq_model *f = m ? clone_and_run(m, pass_fuse_attention, &changed) : NULL;
    CHECK(f && changed == 0 && test_count_op(f->graph, "QkvAttention") == 0 && test_count_op(f->graph, "Softmax") == 1);
    oq_model_destroy(f);
    oq_model_destroy(m);
    mb_free(&b);
}

int main(void)
{
    test_constant_fold();
    test_fold_batchnorm();
    test_equalize_conv();
    test_dead_and_identity();
    test_transformer_fusions();
    test_attention_fusion();
    test_integer_matmul_bias();
    test_qdq_conv_float_output();
    test_qdq_gemm_float_output();
    test_fold_dequantize();
    test_fill_to_pad();
    test_qdq_pad();
    test_view_aliasing();
    test_upgrade_opset();
    return test_summary("test_passes");
}
