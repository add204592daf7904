/* Unit test of the QDQ fusion pass on tests/fixtures/qdq_cnn.onnx (a PyTorch 1.13
 * static-quantization export made by scripts/make_qdq_models.py --fixture: conv-relu,
 * residual add, maxpool, global average pool, flatten, linear, per-channel weights):
 * the rewritten graph holds the integer operators, and its result equals the float
 * execution of the original QDQ graph within one quantization step. */
#include "test.h"

#include "passes/pass.h"
#include "runtime/exec.h"
#include "test_graph.h"

#include <stdlib.h>
#include <string.h>

#define FIXTURE "tests/fixtures/qdq_cnn.onnx"

static const oq_node *producer_of(const oq_graph *g, const char *name)
{
    for (size_t i = 0; i < g->n_nodes; i++)
        for (size_t k = 0; k < g->nodes[i].n_outputs; k++)
            if (!strcmp(g->nodes[i].outputs[k], name))
                return &g->nodes[i];
    return NULL;
}

static void test_rewrite(const oq_model *m, float *out_step)
{
    oq_model *c = NULL;
    CHECK_OK(oq_model_clone(m, &c));
    if (!c)
        return;
    oq_pass_ctx ctx = {0};
    CHECK_OK(oq_passes_run_default(c, &ctx));
    const oq_graph *g = c->graph;
    CHECK(test_count_op(g, "QLinearConv") == 3);
    CHECK(test_count_op(g, "QLinearAdd") == 1);
    CHECK(test_count_op(g, "QLinearGlobalAveragePool") == 1);
    CHECK(test_count_op(g, "QGemm") == 1);
    CHECK(test_count_op(g, "Conv") == 0 && test_count_op(g, "Gemm") == 0 && test_count_op(g, "Relu") == 0);
    /* only the model's entry Q and exit DQ remain; MaxPool and Flatten run on uint8 */
    CHECK(test_count_op(g, "QuantizeLinear") == 1);
    CHECK(test_count_op(g, "DequantizeLinear") == 1);
    CHECK(test_count_op(g, "MaxPool") == 1 && test_count_op(g, "Flatten") == 1);
    CHECK(test_count_op(g, "Cast") == 0 && test_count_op(g, "Constant") == 0);
    for (size_t i = 0; i < g->n_nodes; i++)
        if (!strcmp(g->nodes[i].op_type, "MaxPool")) {
            const oq_node *p = producer_of(g, g->nodes[i].inputs[0]);
            CHECK(p && !strcmp(p->op_type, "QLinearAdd"));
        }
    /* the step of the output: the scale of the DequantizeLinear writing it */
    const oq_node *dq = producer_of(g, g->outputs[0].name);
    CHECK(dq && !strcmp(dq->op_type, "DequantizeLinear"));
    const oq_tensor *s = dq ? oq_graph_initializer(g, dq->inputs[1]) : NULL;
    CHECK(s && s->dtype == OQ_FLOAT);
    *out_step = s ? *(const float *)s->data : 0.0f;
    /* running the pass again finds nothing left to do */
    size_t before = g->n_nodes;
    oq_pass_ctx ctx2 = {0};
    CHECK_OK(oq_passes_run_default(c, &ctx2));
    CHECK(c->graph->n_nodes == before);
    oq_model_destroy(c);
}

static void count_value(void *user, const char *name, const oq_tensor *t)
{
    (void)name, (void)t;
    ++*(size_t *)user;
}

static void test_numerics(const oq_model *m, float step)
{
    int64_t dims[4] = {1, 3, 32, 32};
    oq_tensor *x = NULL;
    CHECK_OK(oq_tensor_create(OQ_FLOAT, 4, dims, &x));
    if (!x)
        return;
    uint64_t r = 12345;
    float *xd = x->data;
    for (int64_t i = 0; i < oq_tensor_numel(x); i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        xd[i] = (float)((double)(r >> 11) / 9007199254740992.0 * 6.0 - 3.0);
    }
    /* integer: the session fuses */
    oq_session *s = NULL;
    oq_tensor *yi = NULL, *yf = NULL;
    CHECK_OK(oq_session_create(m, NULL, &s));
    const oq_tensor *in[1] = {x};
    size_t fused_values = 0, emulated_values = 0;
    if (s) {
        oq_session_set_observer(s, count_value, &fused_values);
        CHECK_OK(oq_session_run(s, in, 1, &yi, 1));
    }
    /* emulated: a session that keeps the QDQ pairs (int8 emulated in float) */
    oq_session_options eo = oq_session_options_default();
    eo.emulate_qdq = 1;
    oq_session *se = NULL;
    oq_tensor *ye = NULL;
    CHECK_OK(oq_session_create(m, &eo, &se));
    if (se) {
        oq_session_set_observer(se, count_value, &emulated_values);
        CHECK_OK(oq_session_run(se, in, 1, &ye, 1));
    }
    /* the fused graph is far smaller than the one that keeps every Q/DQ node */
    CHECK(fused_values > 0 && emulated_values > fused_values + 10);
    /* float: the original QDQ graph executed as it is, no passes */
    oq_exec *e = NULL;
    CHECK_OK(oq_exec_create(m, m->graph, NULL, NULL, 0, &e));
    if (e)
        CHECK_OK(oq_exec_run(e, in, 1, &yf, 1));
    if (yi && yf) {
        CHECK(oq_tensor_numel(yi) == oq_tensor_numel(yf) && oq_tensor_numel(yi) == 10);
        double worst = 0;
        for (int64_t i = 0; i < oq_tensor_numel(yi); i++) {
            double d = fabs((double)((float *)yi->data)[i] - ((float *)yf->data)[i]);
            worst = d > worst ? d : worst;
        }
        printf("qdq_cnn: max |integer - float| = %g (%.3f steps of %g)\n", worst, worst / step, (double)step);
        CHECK(step > 0 && worst <= step * 1.0001);
    }
    if (ye && yf) {
        double worst = 0;
        for (int64_t i = 0; i < oq_tensor_numel(ye) && i < oq_tensor_numel(yf); i++) {
            double d = fabs((double)((float *)ye->data)[i] - ((float *)yf->data)[i]);
            worst = d > worst ? d : worst;
        }
        printf("qdq_cnn: max |emulated - float| = %g\n", worst);
        CHECK(oq_tensor_numel(ye) == 10 && worst <= step * 1.0001);
    }
    oq_tensor_destroy(ye);
    oq_session_destroy(se);
    oq_tensor_destroy(yi);
    oq_tensor_destroy(yf);
    oq_exec_destroy(e);
    oq_session_destroy(s);
    oq_tensor_destroy(x);
}

int main(void)
{
    oq_model *m = NULL;
    CHECK_OK(oq_model_load(FIXTURE, NULL, &m));
    if (m) {
        float step = 0;
        test_rewrite(m, &step);
        test_numerics(m, step);
    }
    oq_model_destroy(m);
    return test_summary("test_pass_qdq");
}
