/* passes/fuse_elementwise + ops/ew_chain: a decomposed HardSwish with per-channel divisors, a
 * reversed Sub and a Clip with one bound fuse into one onnxq.ElementwiseChain whose outputs equal
 * the unfused nodes' bit for bit (NaN and infinities included); a value that is a graph output,
 * integer arithmetic and a Mul of two runtime tensors stay as they are; a LeakyRelu clamped by Max/Min. */
#include "core/core.h"
#include "onnxq.h"
#include "passes/pass.h"
#include "runtime/exec.h"
#include "test.h"
#include "test_graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { N = 2, C = 3, H = 5, W = 7 };

/* x -> Add 3 -> Clip(0, 6) -> Mul x -> Div d[c] -> (1 - v) -> Clip(-, 0.75) -> y; with tap: the
 * Clip(0, 6) output is also a graph output (the chain must end there); with quant, y is then
 * quantized to uint8 (scale 0.01, zero point 128: values saturate at both ends). */
static oq_model *model(bool tap, bool quant)
{
    oq_model *m = test_model_new();
    oq_graph *g = m->graph;
    const int64_t xd[4] = {-1, C, H, W}, cd[3] = {C, 1, 1}, sd[1] = {1};
    test_add_value(g, false, "x", 4, xd);
    test_add_value(g, true, "y", 4, xd);
    if (tap)
        test_add_value(g, true, "clip", 4, xd);
    const float three = 3, zero = 0, six = 6, one = 1, hi = 0.75f, d[C] = {6.0f, 0.37f, 12.5f};
    test_add_init(g, "three", 0, sd, &three);
    test_add_init(g, "zero", 0, sd, &zero);
    test_add_init(g, "six", 0, sd, &six);
    test_add_init(g, "one", 1, sd, &one);
    test_add_init(g, "hi", 0, sd, &hi);
    test_add_init(g, "d", 3, cd, d);
    test_node(g, "Add", "x", "three", NULL, "a");
    test_node(g, "Clip", "a", "zero", "six", "clip");
    test_node(g, "Mul", "x", "clip", NULL, "m");
    test_node(g, "Div", "m", "d", NULL, "h");
    test_node(g, "Sub", "one", "h", NULL, "s");
    test_node(g, "Clip", "s", "", "hi", quant ? "yf" : "y");
    if (quant) {
        const float qs = 0.01f;
        test_add_init(g, "qs", 0, sd, &qs);
        oq_tensor *z = NULL;
        CHECK_OK(oq_tensor_create(OQ_UINT8, 0, sd, &z));
        if (z) {
            ((uint8_t *)z->data)[0] = 128;
            z->name = oq_strdup("qz");
            CHECK_OK(oq_graph_add_initializer(g, z));
        }
        test_node(g, "QuantizeLinear", "yf", "qs", "qz", "y");
        g->outputs[0].dtype = OQ_UINT8;
    }
    return m;
}

static oq_tensor *input(void)
{
    int64_t d[4] = {N, C, H, W};
    oq_tensor *x = NULL;
    CHECK_OK(oq_tensor_create(OQ_FLOAT, 4, d, &x));
    for (int64_t i = 0; x && i < oq_tensor_numel(x); i++)
        ((float *)x->data)[i] = (float)((i * 37) % 101) / 8.0f - 6.0f;
    if (x) {
        float *v = x->data;
        v[3] = NAN, v[10] = INFINITY, v[11] = -INFINITY, v[12] = -0.0f, v[40] = -3.0f;
    }
    return x;
}

/* Outputs of m on x, with the session's fusions on or off. */
static void run(const oq_model *m, const oq_tensor *x, bool fuse, oq_tensor **out, size_t n_out)
{
    if (!fuse)
        setenv("ONNXQ_NO_EW_FUSION", "1", 1);
    oq_session *s = NULL;
    oq_session_options so = oq_session_options_default();
    so.threads = 1;
    CHECK_OK(oq_session_create(m, &so, &s));
    if (s)
        CHECK_OK(oq_session_run(s, &x, 1, out, n_out));
    oq_session_destroy(s);
    unsetenv("ONNXQ_NO_EW_FUSION");
}

static void test_chain(bool tap, bool quant)
{
    oq_model *m = model(tap, quant), *f = NULL;
    CHECK_OK(oq_model_clone(m, &f));
    oq_pass_ctx ctx = {0};
    if (f)
        CHECK_OK(pass_fuse_elementwise(f, f->graph, &ctx));
    /* one chain of six nodes; when the first Clip's output is read outside, Add and Clip only: no chain
     * starts at the Mul (two runtime inputs), nor at the Div, whose input's shape the pass does not
     * know (a [C, 1, 1] divisor could broadcast it to more), nor at the Sub of a [1] */
    /* the QuantizeLinear joins the chain before it: the whole one, or (tap) the last Clip alone */
    CHECK(f && test_count_op(f->graph, "ElementwiseChain") == (tap && quant ? 2u : 1u));
    CHECK(f && f->graph->n_nodes == (tap ? 5u : 1u));
    oq_tensor *x = input(), *a[2] = {NULL, NULL}, *b[2] = {NULL, NULL};
    size_t n_out = tap ? 2 : 1;
    run(m, x, false, a, n_out);
    run(m, x, true, b, n_out);
    for (size_t k = 0; k < n_out; k++) {
        CHECK(a[k] && b[k] && a[k]->nbytes == b[k]->nbytes);
        if (a[k] && b[k] && a[k]->nbytes == b[k]->nbytes)
            CHECK(!memcmp(a[k]->data, b[k]->data, a[k]->nbytes)); /* bit for bit */
        oq_tensor_destroy(a[k]);
        oq_tensor_destroy(b[k]);
    }
    /* and the fused graph on its own gives the same as the unfused one */
    oq_tensor *c[2] = {NULL, NULL};
    run(f, x, false, c, n_out);
    run(m, x, false, a, n_out);
    for (size_t k = 0; k < n_out; k++)
        CHECK(c[k] && a[k] && !memcmp(c[k]->data, a[k]->data, c[k]->nbytes));
    /* element 3 is NaN: Clip(0, 6) takes it to 0, but x * 0 is NaN again, and the last Clip, with no
     * lower bound, takes NaN to its -inf (the Clip kernel's max(v, lo) keeps lo when v is NaN), which
     * quantizes to 0 */
    if (quant) {
        CHECK(c[0] && c[0]->dtype == OQ_UINT8 && ((const uint8_t *)c[0]->data)[3] == 0);
    } else {
        const float *v = c[0] ? c[0]->data : NULL;
        CHECK(v && v[3] == -INFINITY);
    }
    oq_tensor_destroy(c[0]);
    oq_tensor_destroy(c[1]);
    for (size_t k = 0; k < n_out; k++)
        oq_tensor_destroy(a[k]);
    oq_tensor_destroy(x);
    oq_model_destroy(f);
    oq_model_destroy(m);
}

/* Int64 shape arithmetic and a product of two runtime tensors are not chains. */
static void test_not_fused(void)
{
    oq_model *m = test_model_new();
    oq_graph *g = m->graph;
    const int64_t xd[2] = {-1, 4}, sd[1] = {1};
    test_add_value(g, false, "x", 2, xd);
    test_add_value(g, false, "z", 2, xd);
    test_add_value(g, true, "y", 2, xd);
    oq_tensor *t = NULL;
    CHECK_OK(oq_tensor_create(OQ_INT64, 1, sd, &t));
    if (t) {
        ((int64_t *)t->data)[0] = 2;
        t->name = oq_strdup("two");
        CHECK_OK(oq_graph_add_initializer(g, t));
    }
    test_node(g, "Shape", "x", NULL, NULL, "shp");
    test_node(g, "Mul", "shp", "two", NULL, "shp2");
    test_node(g, "Add", "shp2", "two", NULL, "shp3");
    test_node(g, "Mul", "x", "z", NULL, "xz");
    test_node(g, "Add", "xz", "x", NULL, "y");
    oq_pass_ctx ctx = {0};
    size_t before = g->n_nodes;
    CHECK_OK(pass_fuse_elementwise(m, g, &ctx));
    CHECK(g->n_nodes == before && test_count_op(g, "ElementwiseChain") == 0);
    oq_model_destroy(m);
}

/* m's two outputs on input(), with the session's fusions on and off: the same bytes. */
static void same_with_fusion(const oq_model *m)
{
    oq_tensor *x = input(), *a[2] = {NULL, NULL}, *b[2] = {NULL, NULL};
    run(m, x, false, a, 2);
    run(m, x, true, b, 2);
    for (int k = 0; k < 2; k++) {
        CHECK(a[k] && b[k] && a[k]->nbytes == b[k]->nbytes && !memcmp(a[k]->data, b[k]->data, a[k]->nbytes));
        oq_tensor_destroy(a[k]);
        oq_tensor_destroy(b[k]);
    }
    oq_tensor_destroy(x);
}

/* Swish after a Conv: Sigmoid, Mul x (and the QuantizeLinear after it) fuse, bit for bit; a Sigmoid of a
 * graph input (of unknown type to the pass) does not start a chain. */
static void test_swish(void)
{
    oq_model *m = test_model_new();
    oq_graph *g = m->graph;
    const int64_t xd[4] = {-1, C, H, W}, wd[4] = {C, C, 1, 1};
    float w[C * C];
    for (int i = 0; i < C * C; i++)
        w[i] = (float)(i % 4) - 1.5f;
    test_add_value(g, false, "x", 4, xd);
    test_add_value(g, true, "y", 4, xd);
    test_add_value(g, true, "y2", 4, xd);
    test_add_init(g, "w", 4, wd, w);
    test_node(g, "Conv", "x", "w", NULL, "c");
    test_node(g, "Sigmoid", "c", NULL, NULL, "sg");
    test_node(g, "Mul", "c", "sg", NULL, "y");
    test_node(g, "Sigmoid", "x", NULL, NULL, "sx");
    test_node(g, "Mul", "sx", "x", NULL, "y2");
    oq_model *f = NULL;
    CHECK_OK(oq_model_clone(m, &f));
    oq_pass_ctx ctx = {0};
    if (f)
        CHECK_OK(pass_fuse_elementwise(f, f->graph, &ctx));
    CHECK(f && test_count_op(f->graph, "ElementwiseChain") == 1u && test_count_op(f->graph, "Sigmoid") == 1u);
    same_with_fusion(m);
    oq_model_destroy(f);
    oq_model_destroy(m);
}

/* TensorFlow's LeakyRelu clamped from below (openWakeWord): Conv -> LeakyRelu(0.2) -> Max(v, -0.4) ->
 * Min(hi[c], v) with the per-channel bound first fuse into one chain, bit for bit (NaN and infinities
 * of the input included); a LeakyRelu of a graph input (of unknown type to the pass) does not start one. */
static void test_leaky_max(void)
{
    oq_model *m = test_model_new();
    oq_graph *g = m->graph;
    const int64_t xd[4] = {-1, C, H, W}, wd[4] = {C, C, 1, 1}, one[4] = {1, 1, 1, 1}, cd[3] = {C, 1, 1};
    float w[C * C];
    for (int i = 0; i < C * C; i++)
        w[i] = (float)(i % 4) - 1.5f;
    const float lo = -0.4f, hi[C] = {0.5f, 3.0f, -1.0f};
    test_add_value(g, false, "x", 4, xd);
    test_add_value(g, true, "y", 4, xd);
    test_add_value(g, true, "y2", 4, xd);
    test_add_init(g, "w", 4, wd, w);
    test_add_init(g, "lo", 4, one, &lo);
    test_add_init(g, "hi", 3, cd, hi);
    test_node(g, "Conv", "x", "w", NULL, "c");
    test_node(g, "LeakyRelu", "c", NULL, NULL, "lr");
    test_node(g, "Max", "lr", "lo", NULL, "mx");
    test_node(g, "Min", "hi", "mx", NULL, "y");
    test_node(g, "LeakyRelu", "x", NULL, NULL, "y2");
    for (size_t i = 0; i < g->n_nodes; i++)
        if (!strcmp(g->nodes[i].op_type, "LeakyRelu")) {
            float alpha = 0.2f;
            CHECK_OK(oq_node_add_attr_floats(&g->nodes[i], "alpha", &alpha, 1));
            g->nodes[i].attrs[g->nodes[i].n_attrs - 1].type = OQ_ATTR_FLOAT;
            g->nodes[i].attrs[g->nodes[i].n_attrs - 1].f = alpha;
        }
    oq_model *f = NULL;
    CHECK_OK(oq_model_clone(m, &f));
    oq_pass_ctx ctx = {0};
    if (f)
        CHECK_OK(pass_fuse_elementwise(f, f->graph, &ctx));
    CHECK(f && test_count_op(f->graph, "ElementwiseChain") == 1u && test_count_op(f->graph, "LeakyRelu") == 1u &&
          test_count_op(f->graph, "Max") == 0u && test_count_op(f->graph, "Min") == 0u);
    same_with_fusion(m);
    oq_model_destroy(f);
    oq_model_destroy(m);
}

/* An ElementwiseChain written into a file by hand gets an error naming the node, never a wrong read:
 * an operand that varies along an axis of another size than x's, steps on inputs it does not have,
 * a quantize attribute naming x or an input a step reads. */
static void test_bad_nodes(void)
{
    for (int bad = 0; bad < 4; bad++) {
        oq_model *m = test_model_new();
        oq_graph *g = m->graph;
        const int64_t xd[2] = {2, 3}, cd[2] = {7, 3}, sd[1] = {1};
        float c[21];
        for (int i = 0; i < 21; i++)
            c[i] = (float)i + 1;
        test_add_value(g, false, "x", 2, xd);
        test_add_value(g, true, "y", 2, xd);
        if (bad == 3) /* a scalar: a scale the shapes alone would accept */
            test_add_init(g, "c", 1, sd, c);
        else
            test_add_init(g, "c", 2, cd, c);
        const char *in[2] = {"x", "c"}, *out[1] = {"y"};
        oq_node *n = NULL;
        CHECK_OK(oq_graph_add_node(g, "ElementwiseChain", "onnxq", "chain", in, 2, out, 1, &n));
        const int64_t steps[4][2] = {{OQ_EW_STEP_ADD, 1}, {OQ_EW_STEP_ADD, 2}, {OQ_EW_STEP_ADD, 0}, {OQ_EW_STEP_ADD, 1}};
        const int64_t q[2][2] = {{0, -1}, {1, -1}};
        if (n)
            CHECK_OK(oq_node_add_attr_ints(n, "onnxq_steps", steps[bad], 2));
        if (n && bad >= 2) { /* a quantize attribute naming x; one naming the input a step reads */
            CHECK_OK(oq_node_add_attr_ints(n, "onnxq_quantize", q[bad - 2], 2));
            g->outputs[0].dtype = OQ_UINT8;
        }
        int64_t d[2] = {2, 3};
        oq_tensor *x = NULL, *y = NULL;
        CHECK_OK(oq_tensor_create(OQ_FLOAT, 2, d, &x));
        oq_session *s = NULL;
        oq_session_options so = oq_session_options_default();
        oq_status st = oq_session_create(m, &so, &s);
        if (st == OQ_OK)
            st = oq_session_run(s, (const oq_tensor *const *)&x, 1, &y, 1);
        CHECK(st != OQ_OK && strstr(oq_last_error(), "chain"));
        oq_tensor_destroy(y);
        oq_tensor_destroy(x);
        oq_session_destroy(s);
        oq_model_destroy(m);
    }
}

int main(void)
{
    test_bad_nodes();
    test_swish();
    test_leaky_max();
    test_chain(false, false);
    test_chain(true, false);
    test_chain(false, true);
    test_chain(true, true);
    test_not_fused();
    return test_summary("test_ew_chain");
}
