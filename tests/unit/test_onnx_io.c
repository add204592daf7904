/* Unit tests of ONNX I/O: models built in C with the protobuf-c structs are
 * loaded (memory and file), checked field by field, saved (inline and with
 * external data) and reloaded to the same graph. */
#include "../robustness/model_builder.h"
#include "ir/graph.h"
#include "onnxq.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { T_FLOAT = 1, T_UINT8 = 2, T_INT8 = 3, T_INT32 = 6, T_INT64 = 7, T_BOOL = 9, T_FLOAT16 = 10, T_DOUBLE = 11 };

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/oq_test_onnx_io_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(2);
    }
}

static void remove_tmpdir(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
}

static oq_model *load_bytes(const uint8_t *buf, size_t len)
{
    oq_model *m = NULL;
    oq_status st = oq_model_load_memory(buf, len, "test.onnx", NULL, &m);
    if (st != OQ_OK) {
        fprintf(stderr, "load failed: %s: %s\n", oq_status_str(st), oq_last_error());
        return NULL;
    }
    return m;
}

/* ---- deep comparison of two IR graphs ---- */
static int graph_equal(const oq_graph *a, const oq_graph *b);

static int str_eq(const char *a, const char *b) { return !strcmp(a ? a : "", b ? b : ""); }

static int tensor_equal(const oq_tensor *a, const oq_tensor *b)
{
    if (!a || !b)
        return a == b;
    if (a->dtype != b->dtype || !oq_shape_equal(a->ndim, a->dims, b->ndim, b->dims) || !str_eq(a->name, b->name))
        return 0;
    if (a->dtype == OQ_STRING) {
        int64_t n = oq_tensor_numel(a);
        for (int64_t i = 0; i < n; i++)
            if (!str_eq(((char **)a->data)[i], ((char **)b->data)[i]))
                return 0;
        return 1;
    }
    return a->nbytes == b->nbytes && (!a->nbytes || !memcmp(a->data, b->data, a->nbytes));
}

static int bytes_equal(const oq_bytes *a, const oq_bytes *b)
{
    return a->len == b->len && (!a->len || !memcmp(a->data, b->data, a->len));
}

static int attr_equal(const oq_attr *a, const oq_attr *b)
{
    if (!str_eq(a->name, b->name) || a->type != b->type || a->i != b->i || memcmp(&a->f, &b->f, sizeof a->f) ||
        !bytes_equal(&a->s, &b->s) || !tensor_equal(a->t, b->t) || (!a->g != !b->g) || (a->g && !graph_equal(a->g, b->g)))
        return 0;
    if (a->n_floats != b->n_floats || a->n_ints != b->n_ints || a->n_strings != b->n_strings ||
        a->n_tensors != b->n_tensors || a->n_graphs != b->n_graphs || a->n_raw != b->n_raw)
        return 0;
    if (a->n_floats && memcmp(a->floats, b->floats, a->n_floats * sizeof(float)))
        return 0;
    if (a->n_ints && memcmp(a->ints, b->ints, a->n_ints * sizeof(int64_t)))
        return 0;
    for (size_t i = 0; i < a->n_strings; i++)
        if (!bytes_equal(&a->strings[i], &b->strings[i]))
            return 0;
    for (size_t i = 0; i < a->n_tensors; i++)
        if (!tensor_equal(a->tensors[i], b->tensors[i]))
            return 0;
    for (size_t i = 0; i < a->n_graphs; i++)
        if (!graph_equal(a->graphs[i], b->graphs[i]))
            return 0;
    for (size_t i = 0; i < a->n_raw; i++)
        if (!bytes_equal(&a->raw[i], &b->raw[i]))
            return 0;
    return 1;
}

static int node_equal(const oq_node *a, const oq_node *b)
{
    if (!str_eq(a->name, b->name) || !str_eq(a->op_type, b->op_type) || !str_eq(a->domain, b->domain) ||
        a->n_inputs != b->n_inputs || a->n_outputs != b->n_outputs || a->n_attrs != b->n_attrs)
        return 0;
    for (size_t i = 0; i < a->n_inputs; i++)
        if (!str_eq(a->inputs[i], b->inputs[i]))
            return 0;
    for (size_t i = 0; i < a->n_outputs; i++)
        if (!str_eq(a->outputs[i], b->outputs[i]))
            return 0;
    for (size_t i = 0; i < a->n_attrs; i++)
        if (!attr_equal(&a->attrs[i], &b->attrs[i]))
            return 0;
    return 1;
}

static int vi_equal(const oq_value_info *a, const oq_value_info *b)
{
    if (!str_eq(a->name, b->name) || a->dtype != b->dtype || a->ndim != b->ndim)
        return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->dims[d] != b->dims[d] || !str_eq(a->dim_params[d], b->dim_params[d]))
            return 0;
    return 1;
}

static int graph_equal(const oq_graph *a, const oq_graph *b)
{
    if (!str_eq(a->name, b->name) || a->n_nodes != b->n_nodes || a->n_initializers != b->n_initializers ||
        a->n_inputs != b->n_inputs || a->n_outputs != b->n_outputs || a->n_value_infos != b->n_value_infos)
        return 0;
    for (size_t i = 0; i < a->n_nodes; i++)
        if (!node_equal(&a->nodes[i], &b->nodes[i])) {
            fprintf(stderr, "node %zu differs (%s)\n", i, a->nodes[i].name);
            return 0;
        }
    for (size_t i = 0; i < a->n_initializers; i++)
        if (!tensor_equal(a->initializers[i], b->initializers[i])) {
            fprintf(stderr, "initializer %zu differs\n", i);
            return 0;
        }
    for (size_t i = 0; i < a->n_inputs; i++)
        if (!vi_equal(&a->inputs[i], &b->inputs[i]))
            return 0;
    for (size_t i = 0; i < a->n_outputs; i++)
        if (!vi_equal(&a->outputs[i], &b->outputs[i]))
            return 0;
    for (size_t i = 0; i < a->n_value_infos; i++)
        if (!vi_equal(&a->value_infos[i], &b->value_infos[i]))
            return 0;
    return 1;
}

static int model_equal(const oq_model *a, const oq_model *b)
{
    if (a->ir_version != b->ir_version || a->n_opsets != b->n_opsets || !str_eq(a->producer_name, b->producer_name))
        return 0;
    for (size_t i = 0; i < a->n_opsets; i++)
        if (!str_eq(a->opsets[i].domain, b->opsets[i].domain) || a->opsets[i].version != b->opsets[i].version)
            return 0;
    return graph_equal(a->graph, b->graph);
}

/* Saves m to dir/name with opt, reloads it and checks the graphs are equal. */
static oq_model *save_reload(const oq_model *m, const char *name, const oq_save_options *opt)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    oq_status st = oq_model_save(m, path, opt);
    CHECK_OK(st);
    if (st != OQ_OK)
        return NULL;
    oq_model *r = NULL;
    st = oq_model_load(path, NULL, &r);
    CHECK_OK(st);
    if (st != OQ_OK)
        return NULL;
    CHECK(model_equal(m, r));
    return r;
}

/* ---- a model exercising most of the format ---- */

/* Graph "x → Identity → <out>" for graph attributes; reads x from the outer scope. */
static Onnx__GraphProto *small_subgraph(mb *b, const char *name, const char *out)
{
    Onnx__GraphProto *g = mb_graph(b, name);
    mb_node(b, g, "Identity", "", "x", out);
    mb_output(b, g, mb_vi(b, out, T_FLOAT, -1, NULL, NULL));
    return g;
}

static Onnx__ModelProto *rich_model(mb *b)
{
    Onnx__GraphProto *g = mb_graph(b, "rich");
    static const int64_t d4[] = {4}, d23[] = {2, 3};
    static const float fv[4] = {1.5f, -2.f, 3.25f, 0.f};
    const char *np[] = {"N", NULL};
    int64_t nd[] = {0, 4};

    /* initializers in every storage form */
    Onnx__TensorProto *t = mb_tensor(b, "w_raw", T_FLOAT, 1, d4);
    mb_tensor_raw(b, t, fv, sizeof fv);
    mb_initializer(b, g, t);
    t = mb_tensor(b, "w_float_data", T_FLOAT, 2, d23);
    t->n_float_data = 6;
    t->float_data = mb_alloc(b, 6 * sizeof(float));
    for (int i = 0; i < 6; i++)
        t->float_data[i] = (float)i * 0.5f;
    mb_initializer(b, g, t);
    t = mb_tensor(b, "w_int32", T_INT32, 1, d4);
    t->n_int32_data = 4;
    t->int32_data = mb_alloc(b, 4 * sizeof(int32_t));
    for (int i = 0; i < 4; i++)
        t->int32_data[i] = -7 + 1000 * i;
    mb_initializer(b, g, t);
    t = mb_tensor(b, "w_int8", T_INT8, 1, d4);
    t->n_int32_data = 4;
    t->int32_data = mb_alloc(b, 4 * sizeof(int32_t));
    for (int i = 0; i < 4; i++)
        t->int32_data[i] = -100 + 60 * i;
    mb_initializer(b, g, t);
    t = mb_tensor(b, "w_bool", T_BOOL, 1, d4);
    t->n_int32_data = 4;
    t->int32_data = mb_alloc(b, 4 * sizeof(int32_t));
    t->int32_data[1] = 1;
    t->int32_data[3] = 5;
    mb_initializer(b, g, t);
    t = mb_tensor(b, "w_int64", T_INT64, 1, d4);
    t->n_int64_data = 4;
    t->int64_data = mb_alloc(b, 4 * sizeof(int64_t));
    for (int i = 0; i < 4; i++)
        t->int64_data[i] = ((int64_t)1 << 40) * (i - 2);
    mb_initializer(b, g, t);
    t = mb_tensor(b, "w_double", T_DOUBLE, 0, NULL);
    t->n_double_data = 1;
    t->double_data = mb_alloc(b, sizeof(double));
    t->double_data[0] = 2.718281828;
    mb_initializer(b, g, t);
    t = mb_tensor(b, "w_big", T_FLOAT, 1, (int64_t[]){64});
    float big[64];
    for (int i = 0; i < 64; i++)
        big[i] = (float)i;
    mb_tensor_raw(b, t, big, sizeof big);
    mb_initializer(b, g, t);

    mb_input(b, g, mb_vi(b, "x", T_FLOAT, 2, nd, np));

    /* Constant node */
    Onnx__NodeProto *c = mb_node(b, g, "Constant", "const", NULL, "k");
    Onnx__AttributeProto *a = mb_attr(b, c, "value", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    a->t = mb_tensor(b, "", T_FLOAT, 1, d4);
    mb_tensor_raw(b, a->t, fv, sizeof fv);

    /* An Identity node carrying every attribute type (it ignores them). */
    Onnx__NodeProto *n = mb_node(b, g, "Identity", "attrs", "x", "x_copy");
    a = mb_attr(b, n, "a_float", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    a->has_f = 1;
    a->f = 0.25f;
    mb_attr_int(b, n, "a_int", -42);
    a = mb_attr(b, n, "a_string", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    a->has_s = 1;
    a->s.data = (uint8_t *)mb_str(b, "hello");
    a->s.len = 5;
    a = mb_attr(b, n, "a_tensor", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    a->t = mb_tensor(b, "at", T_INT64, 1, (int64_t[]){2});
    a->t->n_int64_data = 2;
    a->t->int64_data = mb_alloc(b, 2 * sizeof(int64_t));
    a->t->int64_data[0] = 3;
    a->t->int64_data[1] = -3;
    mb_attr_graph(b, n, "a_graph", small_subgraph(b, "g_attr", "g_out"));
    a = mb_attr(b, n, "a_floats", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
    a->n_floats = 3;
    a->floats = mb_alloc(b, 3 * sizeof(float));
    a->floats[0] = 1.f;
    a->floats[1] = -1e30f;
    a->floats[2] = 1e-30f;
    a = mb_attr(b, n, "a_ints", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->n_ints = 3;
    a->ints = mb_alloc(b, 3 * sizeof(int64_t));
    a->ints[0] = INT64_MIN;
    a->ints[1] = 0;
    a->ints[2] = INT64_MAX;
    a = mb_attr(b, n, "a_strings", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS);
    a->n_strings = 2;
    a->strings = mb_alloc(b, 2 * sizeof *a->strings);
    a->strings[0].data = (uint8_t *)mb_str(b, "ab");
    a->strings[0].len = 2;
    a->strings[1].data = (uint8_t *)mb_str(b, "");
    a->strings[1].len = 0;
    a = mb_attr(b, n, "a_tensors", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS);
    Onnx__TensorProto *t1 = mb_tensor(b, "t1", T_FLOAT, 1, (int64_t[]){1});
    mb_tensor_raw(b, t1, fv, sizeof(float));
    Onnx__TensorProto *t2 = mb_tensor(b, "t2", T_UINT8, 1, (int64_t[]){3});
    mb_tensor_raw(b, t2, "abc", 3);
    MB_PUSH(b, a->n_tensors, a->tensors, t1);
    MB_PUSH(b, a->n_tensors, a->tensors, t2);
    a = mb_attr(b, n, "a_graphs", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS);
    MB_PUSH(b, a->n_graphs, a->graphs, small_subgraph(b, "gs0", "gs0_out"));
    MB_PUSH(b, a->n_graphs, a->graphs, small_subgraph(b, "gs1", "gs1_out"));

    /* If with both branches reading outer values */
    mb_input(b, g, mb_vi(b, "cond", T_BOOL, 0, NULL, NULL));
    Onnx__NodeProto *ifn = mb_node(b, g, "If", "if", "cond", "if_out");
    Onnx__GraphProto *then_g = mb_graph(b, "then");
    mb_node(b, then_g, "Identity", "then_id", "k", "then_out");
    mb_output(b, then_g, mb_vi(b, "then_out", T_FLOAT, 1, d4, NULL));
    Onnx__GraphProto *else_g = mb_graph(b, "else");
    mb_node(b, else_g, "Identity", "else_id", "w_raw", "else_out");
    mb_output(b, else_g, mb_vi(b, "else_out", T_FLOAT, 1, d4, NULL));
    mb_attr_graph(b, ifn, "then_branch", then_g);
    mb_attr_graph(b, ifn, "else_branch", else_g);

    /* Loop: 3 iterations, carried value v, scan output of v */
    Onnx__TensorProto *trip = mb_tensor(b, "trip", T_INT64, 0, NULL);
    int64_t three = 3;
    mb_tensor_raw(b, trip, &three, sizeof three);
    mb_initializer(b, g, trip);
    Onnx__NodeProto *loop = mb_node(b, g, "Loop", "loop", "trip,,k", "v_final,v_scan");
    Onnx__GraphProto *body = mb_graph(b, "body");
    mb_input(b, body, mb_vi(b, "i", T_INT64, 0, NULL, NULL));
    mb_input(b, body, mb_vi(b, "c_in", T_BOOL, 0, NULL, NULL));
    mb_input(b, body, mb_vi(b, "v_in", T_FLOAT, 1, d4, NULL));
    mb_node(b, body, "Identity", "body_c", "c_in", "c_out");
    mb_node(b, body, "Identity", "body_v", "v_in", "v_out");
    mb_node(b, body, "Identity", "body_s", "v_in", "s_out");
    mb_output(b, body, mb_vi(b, "c_out", T_BOOL, 0, NULL, NULL));
    mb_output(b, body, mb_vi(b, "v_out", T_FLOAT, 1, d4, NULL));
    mb_output(b, body, mb_vi(b, "s_out", T_FLOAT, 1, d4, NULL));
    mb_attr_graph(b, loop, "body", body);

    mb_output(b, g, mb_vi(b, "x_copy", T_FLOAT, 2, nd, np));
    mb_output(b, g, mb_vi(b, "if_out", T_FLOAT, 1, d4, NULL));
    mb_output(b, g, mb_vi(b, "v_final", T_FLOAT, 1, d4, NULL));
    mb_output(b, g, mb_vi(b, "v_scan", T_FLOAT, 2, (int64_t[]){3, 4}, NULL));
    /* an intermediate value info */
    Onnx__ValueInfoProto *vi = mb_vi(b, "k", T_FLOAT, 1, d4, NULL);
    MB_PUSH(b, g->n_value_info, g->value_info, vi);

    Onnx__ModelProto *m = mb_model(b, 13, g);
    mb_opset(b, m, "com.example", 2);
    return m;
}

static const oq_node *find_node(const oq_graph *g, const char *name)
{
    for (size_t i = 0; i < g->n_nodes; i++)
        if (!strcmp(g->nodes[i].name, name))
            return &g->nodes[i];
    return NULL;
}

static void check_rich_model(const oq_model *m)
{
    const oq_graph *g = m->graph;
    CHECK(m->n_opsets == 2);
    CHECK(oq_model_opset(m, "") == 13);
    CHECK(oq_model_opset(m, "ai.onnx") == 13);
    CHECK(oq_model_opset(m, "com.example") == 2);
    CHECK(m->ir_version == 8);
    CHECK(str_eq(m->producer_name, "onnxq-tests"));
    CHECK(g->n_initializers == 9);

    const oq_tensor *t = oq_graph_initializer(g, "w_raw");
    CHECK(t && t->dtype == OQ_FLOAT && t->ndim == 1 && t->dims[0] == 4 && ((float *)t->data)[2] == 3.25f);
    t = oq_graph_initializer(g, "w_float_data");
    CHECK(t && t->dtype == OQ_FLOAT && t->ndim == 2 && t->dims[1] == 3 && ((float *)t->data)[5] == 2.5f);
    t = oq_graph_initializer(g, "w_int32");
    CHECK(t && t->dtype == OQ_INT32 && ((int32_t *)t->data)[0] == -7 && ((int32_t *)t->data)[3] == 2993);
    t = oq_graph_initializer(g, "w_int8");
    CHECK(t && t->dtype == OQ_INT8 && t->nbytes == 4 && ((int8_t *)t->data)[0] == -100 && ((int8_t *)t->data)[3] == 80);
    t = oq_graph_initializer(g, "w_bool");
    CHECK(t && t->dtype == OQ_BOOL && !memcmp(t->data, "\0\1\0\1", 4));
    t = oq_graph_initializer(g, "w_int64");
    CHECK(t && t->dtype == OQ_INT64 && ((int64_t *)t->data)[0] == -((int64_t)1 << 41));
    t = oq_graph_initializer(g, "w_double");
    CHECK(t && t->dtype == OQ_DOUBLE && t->ndim == 0 && ((double *)t->data)[0] == 2.718281828);

    /* symbolic dimension kept */
    const oq_value_info *x = NULL;
    for (size_t i = 0; i < g->n_inputs; i++)
        if (!strcmp(g->inputs[i].name, "x"))
            x = &g->inputs[i];
    CHECK(x && x->ndim == 2 && x->dims[0] == -1 && x->dim_params[0] && !strcmp(x->dim_params[0], "N") &&
          x->dims[1] == 4 && !x->dim_params[1]);
    CHECK(g->n_value_infos == 1 && !strcmp(g->value_infos[0].name, "k") && g->value_infos[0].dims[0] == 4);

    const oq_node *c = find_node(g, "const");
    CHECK(c && c->n_attrs == 1 && c->attrs[0].type == OQ_ATTR_TENSOR && c->attrs[0].t &&
          ((float *)c->attrs[0].t->data)[1] == -2.f);

    const oq_node *n = find_node(g, "attrs");
    CHECK(n != NULL);
    if (n) {
        CHECK(n->n_attrs == 10);
        CHECK(oq_node_attr_float(n, "a_float", 0) == 0.25f);
        CHECK(oq_node_attr_int(n, "a_int", 0) == -42);
        CHECK(!strcmp(oq_node_attr_string(n, "a_string", ""), "hello"));
        const oq_attr *a = oq_node_attr(n, "a_tensor");
        CHECK(a && a->type == OQ_ATTR_TENSOR && a->t && a->t->dtype == OQ_INT64 && ((int64_t *)a->t->data)[1] == -3);
        a = oq_node_attr(n, "a_graph");
        CHECK(a && a->type == OQ_ATTR_GRAPH && a->g && a->g->n_nodes == 1 && !strcmp(a->g->name, "g_attr") &&
              !strcmp(a->g->outputs[0].name, "g_out"));
        const float *fl;
        CHECK(oq_node_attr_floats(n, "a_floats", &fl) == 3 && fl[1] == -1e30f && fl[2] == 1e-30f);
        const int64_t *iv;
        CHECK(oq_node_attr_ints(n, "a_ints", &iv) == 3 && iv[0] == INT64_MIN && iv[2] == INT64_MAX);
        a = oq_node_attr(n, "a_strings");
        CHECK(a && a->type == OQ_ATTR_STRINGS && a->n_strings == 2 && !strcmp(a->strings[0].data, "ab") &&
              a->strings[1].len == 0);
        a = oq_node_attr(n, "a_tensors");
        CHECK(a && a->type == OQ_ATTR_TENSORS && a->n_tensors == 2 && a->tensors[1]->dtype == OQ_UINT8 &&
              !memcmp(a->tensors[1]->data, "abc", 3) && !strcmp(a->tensors[0]->name, "t1"));
        a = oq_node_attr(n, "a_graphs");
        CHECK(a && a->type == OQ_ATTR_GRAPHS && a->n_graphs == 2 && !strcmp(a->graphs[1]->name, "gs1"));
    }
    const oq_node *ifn = find_node(g, "if");
    CHECK(ifn && ifn->n_attrs == 2);
    if (ifn) {
        const oq_attr *tb = oq_node_attr(ifn, "then_branch"), *eb = oq_node_attr(ifn, "else_branch");
        CHECK(tb && tb->g && tb->g->n_nodes == 1 && !strcmp(tb->g->nodes[0].inputs[0], "k"));
        CHECK(eb && eb->g && eb->g->n_nodes == 1 && !strcmp(eb->g->nodes[0].inputs[0], "w_raw"));
    }
    const oq_node *loop = find_node(g, "loop");
    CHECK(loop && loop->n_inputs == 3 && loop->inputs[1][0] == 0);
    if (loop) {
        const oq_attr *body = oq_node_attr(loop, "body");
        CHECK(body && body->g && body->g->n_inputs == 3 && body->g->n_outputs == 3 && body->g->n_nodes == 3);
    }
}

static void test_rich_model(void)
{
    mb b = {0};
    size_t len;
    uint8_t *buf = mb_pack(&b, rich_model(&b), &len);
    oq_model *m = load_bytes(buf, len);
    CHECK(m != NULL);
    if (m) {
        check_rich_model(m);
        /* same through a file */
        char path[512];
        snprintf(path, sizeof path, "%s/rich.onnx", tmpdir);
        CHECK(mb_write_file(path, buf, len) == 0);
        oq_model *f = NULL;
        CHECK_OK(oq_model_load(path, NULL, &f));
        CHECK(f && model_equal(m, f));
        oq_model_destroy(f);

        /* round trip inline */
        oq_model *r = save_reload(m, "rich_saved.onnx", NULL);
        if (r)
            check_rich_model(r);
        oq_model_destroy(r);

        /* round trip with external data: every initializer >= 16 bytes goes to rich_ext.onnx.data */
        oq_save_options so = oq_save_options_default();
        so.external_threshold = 16;
        r = save_reload(m, "rich_ext.onnx", &so);
        snprintf(path, sizeof path, "%s/rich_ext.onnx.data", tmpdir);
        struct stat sb;
        CHECK(stat(path, &sb) == 0 && sb.st_size >= 256 + 16 + 24 + 16 + 32);
        if (r) {
            check_rich_model(r);
            /* saving the externally loaded model again (inline) gives the same graph */
            oq_model *r2 = save_reload(r, "rich_ext_again.onnx", NULL);
            oq_model_destroy(r2);
        }
        oq_model_destroy(r);

        /* run it: x [N,4] passes through, If picks by cond, Loop stacks 3 copies of k */
        oq_session *s = NULL;
        CHECK_OK(oq_session_create(m, NULL, &s));
        if (s) {
            CHECK(oq_session_input_count(s) == 2 && oq_session_output_count(s) == 4);
            const oq_value_desc *d = oq_session_input(s, 0);
            CHECK(d && !strcmp(d->name, "x") && d->dim_params[0] && !strcmp(d->dim_params[0], "N"));
            float xv[8] = {1, 2, 3, 4, 5, 6, 7, 8};
            uint8_t cv = 0;
            oq_tensor *x = NULL, *cond = NULL;
            CHECK_OK(oq_tensor_wrap(OQ_FLOAT, 2, (int64_t[]){2, 4}, xv, &x));
            CHECK_OK(oq_tensor_wrap(OQ_BOOL, 0, NULL, &cv, &cond));
            const oq_tensor *in[2] = {x, cond};
            oq_tensor *out[4] = {0};
            CHECK_OK(oq_session_run(s, in, 2, out, 4));
            if (out[0] && out[1] && out[2] && out[3]) {
                CHECK(out[0]->dims[0] == 2 && !memcmp(out[0]->data, xv, sizeof xv));
                CHECK(((float *)out[1]->data)[2] == 3.25f); /* else branch: w_raw */
                CHECK(((float *)out[2]->data)[1] == -2.f);
                CHECK(out[3]->ndim == 2 && out[3]->dims[0] == 3 && out[3]->dims[1] == 4 &&
                      ((float *)out[3]->data)[10] == 3.25f);
            }
            for (int i = 0; i < 4; i++)
                oq_tensor_destroy(out[i]);
            oq_tensor_destroy(x);
            oq_tensor_destroy(cond);
            oq_session_destroy(s);
        }
    }
    oq_model_destroy(m);
    mb_free(&b);
}

/* Constant nodes of every attribute form feed the outputs. */
static void test_constant_nodes(void)
{
    mb b = {0};
    Onnx__GraphProto *g = mb_graph(&b, "consts");
    Onnx__NodeProto *n = mb_node(&b, g, "Constant", "c_float", NULL, "a");
    Onnx__AttributeProto *at = mb_attr(&b, n, "value_float", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    at->has_f = 1;
    at->f = 1.5f;
    n = mb_node(&b, g, "Constant", "c_ints", NULL, "b");
    at = mb_attr(&b, n, "value_ints", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    at->n_ints = 2;
    at->ints = mb_alloc(&b, 2 * sizeof(int64_t));
    at->ints[0] = 7;
    at->ints[1] = -9;
    n = mb_node(&b, g, "Constant", "c_tensor", NULL, "c");
    at = mb_attr(&b, n, "value", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    at->t = mb_tensor(&b, "", T_INT32, 2, (int64_t[]){1, 2});
    at->t->n_int32_data = 2;
    at->t->int32_data = mb_alloc(&b, 2 * sizeof(int32_t));
    at->t->int32_data[0] = 11;
    at->t->int32_data[1] = 12;
    mb_node(&b, g, "Identity", "id", "c", "d");
    mb_output(&b, g, mb_vi(&b, "a", T_FLOAT, 0, NULL, NULL));
    mb_output(&b, g, mb_vi(&b, "b", T_INT64, 1, (int64_t[]){2}, NULL));
    mb_output(&b, g, mb_vi(&b, "d", T_INT32, 2, (int64_t[]){1, 2}, NULL));
    size_t len;
    uint8_t *buf = mb_pack(&b, mb_model(&b, 13, g), &len);
    oq_model *m = load_bytes(buf, len);
    CHECK(m != NULL);
    oq_session *s = NULL;
    if (m)
        CHECK_OK(oq_session_create(m, NULL, &s));
    if (s) {
        oq_tensor *out[3] = {0};
        CHECK_OK(oq_session_run(s, NULL, 0, out, 3));
        CHECK(out[0] && out[0]->dtype == OQ_FLOAT && out[0]->ndim == 0 && *(float *)out[0]->data == 1.5f);
        CHECK(out[1] && out[1]->dtype == OQ_INT64 && out[1]->dims[0] == 2 && ((int64_t *)out[1]->data)[1] == -9);
        CHECK(out[2] && out[2]->dtype == OQ_INT32 && out[2]->ndim == 2 && ((int32_t *)out[2]->data)[1] == 12);
        for (int i = 0; i < 3; i++)
            oq_tensor_destroy(out[i]);
        oq_session_destroy(s);
    }
    oq_model_destroy(m);
    mb_free(&b);
}

/* An initializer stored externally in a file that does not exist: the message names both. */
static void test_missing_external(void)
{
    mb b = {0};
    Onnx__GraphProto *g = mb_graph(&b, "ext");
    Onnx__TensorProto *t = mb_tensor(&b, "weights_w", T_FLOAT, 1, (int64_t[]){4});
    mb_tensor_external(&b, t, "missing_weights.bin", 0, 16);
    mb_initializer(&b, g, t);
    mb_node(&b, g, "Identity", "id", "weights_w", "y");
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 1, (int64_t[]){4}, NULL));
    size_t len;
    uint8_t *buf = mb_pack(&b, mb_model(&b, 13, g), &len);
    char path[512];
    snprintf(path, sizeof path, "%s/ext_missing.onnx", tmpdir);
    CHECK(mb_write_file(path, buf, len) == 0);
    oq_model *m = NULL;
    oq_status st = oq_model_load(path, NULL, &m);
    CHECK(st == OQ_E_IO);
    CHECK(m == NULL);
    CHECK(strstr(oq_last_error(), "weights_w") != NULL);
    CHECK(strstr(oq_last_error(), "missing_weights.bin") != NULL);

    /* Now provide the file: it loads, with the data. */
    float w[4] = {1, 2, 3, 4};
    snprintf(path, sizeof path, "%s/missing_weights.bin", tmpdir);
    CHECK(mb_write_file(path, w, sizeof w) == 0);
    snprintf(path, sizeof path, "%s/ext_missing.onnx", tmpdir);
    CHECK_OK(oq_model_load(path, NULL, &m));
    if (m) {
        const oq_tensor *x = oq_graph_initializer(m->graph, "weights_w");
        CHECK(x && x->nbytes == 16 && !memcmp(x->data, w, 16));
    }
    oq_model_destroy(m);
    mb_free(&b);
}

/* Identity loads and runs at every opset of the range onnxq supports. */
static void test_opsets(void)
{
    for (int64_t opset = 7; opset <= 20; opset++) {
        mb b = {0};
        size_t len;
        uint8_t *buf = mb_pack(&b, mb_identity_model(&b, opset, 2, (int64_t[]){2, 3}, NULL), &len);
        oq_load_options lo = oq_load_options_default();
        lo.check_operators = 1;
        oq_model *m = NULL;
        oq_status st = oq_model_load_memory(buf, len, "identity.onnx", &lo, &m);
        CHECK_OK(st);
        oq_session *s = NULL;
        if (m)
            CHECK_OK(oq_session_create(m, NULL, &s));
        if (s) {
            float xv[6] = {1, -2, 3, -4, 5, -6};
            oq_tensor *x = NULL, *y = NULL;
            CHECK_OK(oq_tensor_wrap(OQ_FLOAT, 2, (int64_t[]){2, 3}, xv, &x));
            const oq_tensor *in[1] = {x};
            CHECK_OK(oq_session_run(s, in, 1, &y, 1));
            CHECK(y && y->ndim == 2 && y->dims[1] == 3 && !memcmp(y->data, xv, sizeof xv));
            if (!y)
                fprintf(stderr, "  at opset %lld\n", (long long)opset);
            oq_tensor_destroy(x);
            oq_tensor_destroy(y);
            oq_session_destroy(s);
        }
        oq_model_destroy(m);
        mb_free(&b);
    }
}

/* A model saved and reloaded keeps the metadata of a model loaded from the
 * conformance data (real exporter output), when the data is installed. */
static void test_roundtrip_conformance_model(void)
{
    const char *path = "/usr/include/onnx/backend/test/data/node/test_if/model.onnx";
    oq_model *m = NULL;
    if (access(path, R_OK) != 0)
        return;
    CHECK_OK(oq_model_load(path, NULL, &m));
    if (m) {
        oq_model *r = save_reload(m, "test_if.onnx", NULL);
        oq_model_destroy(r);
    }
    oq_model_destroy(m);
}

int main(void)
{
    oq_set_log_callback(NULL, NULL, OQ_LOG_ERROR);
    make_tmpdir();
    test_rich_model();
    test_constant_nodes();
    test_missing_external();
    test_opsets();
    test_roundtrip_conformance_model();
    remove_tmpdir();
    return test_summary("test_onnx_io");
}
