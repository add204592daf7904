/* Robustness of the loader, validation and session: hand-made malformed models
 * (bad lengths, bad dims, bad types, broken graphs, bad external data, deep
 * nesting, truncation, garbage) must fail with a status and a message naming
 * what is wrong, and never crash. Meant to run under ASan+UBSan as well. */
#include "model_builder.h"
#include "core/core.h"
#include "onnxq.h"
#include "test.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { T_FLOAT = 1, T_INT32 = 6, T_INT64 = 7, T_BOOL = 9, T_DOUBLE = 11 };

static char tmpdir[256];

/* Checks st == want and that every NULL-terminated substring is in the message. */
static void expect_fail_at(int line, const char *what, oq_status st, oq_status want, ...)
{
    const char *msg = oq_last_error();
    test_checks++;
    int bad = st != want;
    va_list ap;
    va_start(ap, want);
    for (const char *s; !bad && (s = va_arg(ap, const char *));)
        if (!strstr(msg, s)) {
            fprintf(stderr, "%s:%d: %s: message lacks '%s'\n", __FILE__, line, what, s);
            bad = 1;
        }
    va_end(ap);
    if (st != want)
        fprintf(stderr, "%s:%d: %s: got %s, want %s\n", __FILE__, line, what, oq_status_str(st), oq_status_str(want));
    if (bad) {
        fprintf(stderr, "    message: %s\n", msg);
        test_failures++;
    }
}
#define EXPECT_FAIL(what, st, want, ...) expect_fail_at(__LINE__, what, st, want, __VA_ARGS__, (const char *)NULL)

static oq_status load_mem(const uint8_t *buf, size_t len, int check_ops, oq_model **out)
{
    oq_load_options lo = oq_load_options_default();
    lo.check_operators = check_ops;
    *out = NULL;
    return oq_model_load_memory(buf, len, "bad.onnx", &lo, out);
}

static oq_status load_model(mb *b, Onnx__ModelProto *m, int check_ops)
{
    size_t len;
    uint8_t *buf = mb_pack(b, m, &len);
    oq_model *om = NULL;
    oq_status st = load_mem(buf, len, check_ops, &om);
    if (st == OQ_OK && om) {
        fprintf(stderr, "    (model unexpectedly loaded)\n");
        oq_model_destroy(om);
    }
    return st;
}

/* Loads then creates a session; returns the first failure. */
static oq_status load_and_create(mb *b, Onnx__ModelProto *m)
{
    size_t len;
    uint8_t *buf = mb_pack(b, m, &len);
    oq_model *om = NULL;
    oq_status st = load_mem(buf, len, 0, &om);
    if (st != OQ_OK)
        return st;
    oq_session *s = NULL;
    st = oq_session_create(om, NULL, &s);
    oq_session_destroy(s);
    oq_model_destroy(om);
    return st;
}

static oq_status load_file(mb *b, Onnx__ModelProto *m, const char *name)
{
    size_t len;
    uint8_t *buf = mb_pack(b, m, &len);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    if (mb_write_file(path, buf, len) != 0)
        return OQ_E_IO;
    oq_model *om = NULL;
    oq_status st = oq_model_load(path, NULL, &om);
    oq_model_destroy(om);
    return st;
}

/* A graph "w (initializer t) → Identity → y". */
static Onnx__ModelProto *init_model(mb *b, Onnx__TensorProto *t)
{
    Onnx__GraphProto *g = mb_graph(b, "g");
    mb_initializer(b, g, t);
    mb_node(b, g, "Identity", "id", t->name, "y");
    mb_output(b, g, mb_vi(b, "y", T_FLOAT, -1, NULL, NULL));
    return mb_model(b, 13, g);
}

static const int64_t d4[] = {4};

static void test_empty_and_null(void)
{
    oq_model *m = NULL;
    EXPECT_FAIL("empty buffer", oq_model_load_memory("", 0, "empty.onnx", NULL, &m), OQ_E_PARSE, "empty.onnx", "empty");
    char path[512];
    snprintf(path, sizeof path, "%s/empty.onnx", tmpdir);
    CHECK(mb_write_file(path, "", 0) == 0);
    EXPECT_FAIL("empty file", oq_model_load(path, NULL, &m), OQ_E_PARSE, "empty.onnx", "empty");
    snprintf(path, sizeof path, "%s/does_not_exist.onnx", tmpdir);
    EXPECT_FAIL("missing file", oq_model_load(path, NULL, &m), OQ_E_IO, "does_not_exist.onnx");
    EXPECT_FAIL("directory", oq_model_load(tmpdir, NULL, &m), OQ_E_IO, tmpdir);
    EXPECT_FAIL("NULL path", oq_model_load(NULL, NULL, &m), OQ_E_INVALID_ARG, "NULL");
    EXPECT_FAIL("NULL data", oq_model_load_memory(NULL, 10, "x", NULL, &m), OQ_E_INVALID_ARG, "NULL");
    CHECK(m == NULL);
    EXPECT_FAIL("garbage", oq_model_load_memory("\xff\xff\xff\xff\xff\xff", 6, "junk.onnx", NULL, &m), OQ_E_PARSE,
                "junk.onnx", "not a valid ONNX model");
    EXPECT_FAIL("session NULL model", oq_session_create(NULL, NULL, NULL), OQ_E_INVALID_ARG, "NULL");
}

static void test_missing_graph(void)
{
    mb b = {0};
    Onnx__ModelProto *m = mb_model(&b, 13, NULL);
    EXPECT_FAIL("no graph", load_model(&b, m, 0), OQ_E_PARSE, "no graph");
    mb_free(&b);
}

static void test_tensor_errors(void)
{
    mb b = {0};
    float f[4] = {1, 2, 3, 4};

    Onnx__TensorProto *t = mb_tensor(&b, "w_short", T_FLOAT, 1, d4);
    mb_tensor_raw(&b, t, f, 12);
    EXPECT_FAIL("raw_data too short", load_model(&b, init_model(&b, t), 0), OQ_E_PARSE, "w_short", "raw data", "12",
                "16");

    t = mb_tensor(&b, "w_long", T_FLOAT, 2, (int64_t[]){1, 2});
    mb_tensor_raw(&b, t, f, 16);
    EXPECT_FAIL("raw_data too long", load_model(&b, init_model(&b, t), 0), OQ_E_PARSE, "w_long", "16", "8");

    t = mb_tensor(&b, "w_fewer", T_FLOAT, 1, d4);
    t->n_float_data = 3;
    t->float_data = f;
    EXPECT_FAIL("float_data count", load_model(&b, init_model(&b, t), 0), OQ_E_PARSE, "w_fewer", "3", "4");

    t = mb_tensor(&b, "w_none", T_FLOAT, 1, d4);
    EXPECT_FAIL("no data at all", load_model(&b, init_model(&b, t), 0), OQ_E_PARSE, "w_none");

    /* float_data declared as double: must not read 8 bytes per float */
    t = mb_tensor(&b, "w_dbl_from_floats", T_DOUBLE, 1, d4);
    t->n_float_data = 4;
    t->float_data = f;
    EXPECT_FAIL("double stored in float_data", load_model(&b, init_model(&b, t), 0), OQ_E_PARSE, "w_dbl_from_floats");
    t = mb_tensor(&b, "w_i64_from_floats", T_INT64, 1, d4);
    t->n_float_data = 4;
    t->float_data = f;
    EXPECT_FAIL("int64 stored in float_data", load_model(&b, init_model(&b, t), 0), OQ_E_PARSE, "w_i64_from_floats");
    double dv[4] = {1, 2, 3, 4};
    t = mb_tensor(&b, "w_cplx_from_doubles", 15, 1, d4);
    t->n_double_data = 4;
    t->double_data = dv;
    EXPECT_FAIL("complex128 with half the doubles", load_model(&b, init_model(&b, t), 0), OQ_E_PARSE,
                "w_cplx_from_doubles");
    int32_t iv[4] = {1, 2, 3, 4};
    t = mb_tensor(&b, "w_float_from_int32", T_FLOAT, 1, d4);
    t->n_int32_data = 4;
    t->int32_data = iv;
    EXPECT_FAIL("float stored in int32_data", load_model(&b, init_model(&b, t), 0), OQ_E_PARSE, "w_float_from_int32",
                "int32_data");

    t = mb_tensor(&b, "w_neg", T_FLOAT, 2, (int64_t[]){-1, 4});
    mb_tensor_raw(&b, t, f, 16);
    EXPECT_FAIL("negative dim", load_model(&b, init_model(&b, t), 0), OQ_E_PARSE, "w_neg", "negative", "-1");

    t = mb_tensor(&b, "w_huge", T_FLOAT, 3, (int64_t[]){1LL << 40, 1LL << 40, 1LL << 40});
    mb_tensor_raw(&b, t, f, 16);
    EXPECT_FAIL("overflowing dims", load_model(&b, init_model(&b, t), 0), OQ_E_PARSE, "w_huge", "large");
    t = mb_tensor(&b, "w_huge_bytes", T_DOUBLE, 2, (int64_t[]){1LL << 31, 1LL << 31});
    mb_tensor_raw(&b, t, f, 16);
    EXPECT_FAIL("numel fits, bytes overflow", load_model(&b, init_model(&b, t), 0), OQ_E_PARSE, "w_huge_bytes",
                "large");
    t = mb_tensor(&b, "w_big_nodata", T_FLOAT, 2, (int64_t[]){1LL << 20, 1LL << 20});
    EXPECT_FAIL("4 TB tensor without data", load_model(&b, init_model(&b, t), 0), OQ_E_PARSE, "w_big_nodata");

    t = mb_tensor(&b, "w_type999", 999, 1, d4);
    mb_tensor_raw(&b, t, f, 16);
    EXPECT_FAIL("data_type 999", load_model(&b, init_model(&b, t), 0), OQ_E_UNSUPPORTED, "w_type999", "999");
    t = mb_tensor(&b, "w_type_neg", -3, 1, d4);
    mb_tensor_raw(&b, t, f, 16);
    EXPECT_FAIL("data_type -3", load_model(&b, init_model(&b, t), 0), OQ_E_PARSE, "w_type_neg", "-3");
    t = mb_tensor(&b, "w_type0", 0, 1, d4);
    mb_tensor_raw(&b, t, f, 16);
    EXPECT_FAIL("data_type 0", load_model(&b, init_model(&b, t), 0), OQ_E_PARSE, "w_type0");

    int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 4};
    t = mb_tensor(&b, "w_rank9", T_FLOAT, 9, nine);
    mb_tensor_raw(&b, t, f, 16);
    EXPECT_FAIL("rank 9 tensor", load_model(&b, init_model(&b, t), 0), OQ_E_UNSUPPORTED, "w_rank9", "rank 9");

    t = mb_tensor(&b, "", T_FLOAT, 1, d4);
    mb_tensor_raw(&b, t, f, 16);
    Onnx__GraphProto *g = mb_graph(&b, "g");
    mb_initializer(&b, g, t);
    EXPECT_FAIL("unnamed initializer", load_model(&b, mb_model(&b, 13, g), 0), OQ_E_PARSE, "initializer 0",
                "no name");

    t = mb_tensor(&b, "dup", T_FLOAT, 1, d4);
    mb_tensor_raw(&b, t, f, 16);
    Onnx__ModelProto *m = init_model(&b, t);
    mb_initializer(&b, m->graph, t);
    EXPECT_FAIL("duplicate initializer", load_model(&b, m, 0), OQ_E_GRAPH, "dup", "twice");

    /* the same checks apply inside attributes (Constant value) */
    g = mb_graph(&b, "g");
    Onnx__NodeProto *c = mb_node(&b, g, "Constant", "const_node", NULL, "y");
    Onnx__AttributeProto *a = mb_attr(&b, c, "value", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    a->t = mb_tensor(&b, "", T_FLOAT, 1, d4);
    mb_tensor_raw(&b, a->t, f, 8);
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, -1, NULL, NULL));
    EXPECT_FAIL("bad Constant tensor", load_model(&b, mb_model(&b, 13, g), 0), OQ_E_PARSE, "const_node", "value");
    mb_free(&b);
}

static void test_value_info_errors(void)
{
    mb b = {0};
    int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 4};
    Onnx__ModelProto *m = mb_identity_model(&b, 13, 9, nine, NULL);
    EXPECT_FAIL("rank 9 input", load_model(&b, m, 0), OQ_E_UNSUPPORTED, "'x'", "rank 9");
    m = mb_identity_model(&b, 13, 2, (int64_t[]){3, -5}, NULL);
    EXPECT_FAIL("negative input dim", load_model(&b, m, 0), OQ_E_PARSE, "'x'", "-5");
    Onnx__GraphProto *g = mb_graph(&b, "g");
    mb_node(&b, g, "Identity", "id", "x", "y");
    mb_input(&b, g, mb_vi(&b, "x", 4242, 1, d4, NULL));
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 1, d4, NULL));
    EXPECT_FAIL("input elem type 4242", load_model(&b, mb_model(&b, 13, g), 0), OQ_E_UNSUPPORTED, "'x'", "4242");
    g = mb_graph(&b, "g");
    mb_node(&b, g, "Identity", "id", "x", "y");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 1, d4, NULL));
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 1, d4, NULL));
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 1, d4, NULL));
    EXPECT_FAIL("input declared twice", load_model(&b, mb_model(&b, 13, g), 0), OQ_E_GRAPH, "'x'", "twice");
    mb_free(&b);
}

static void test_graph_errors(void)
{
    mb b = {0};
    /* A → B → A */
    Onnx__GraphProto *g = mb_graph(&b, "cyclic");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 1, d4, NULL));
    mb_node(&b, g, "Identity", "node_A", "b", "a");
    mb_node(&b, g, "Identity", "node_B", "a", "b");
    mb_output(&b, g, mb_vi(&b, "b", T_FLOAT, 1, d4, NULL));
    EXPECT_FAIL("cycle", load_model(&b, mb_model(&b, 13, g), 0), OQ_E_GRAPH, "cycle", "node_A", "cyclic");

    g = mb_graph(&b, "self");
    mb_node(&b, g, "Identity", "node_self", "a", "a");
    mb_output(&b, g, mb_vi(&b, "a", T_FLOAT, 1, d4, NULL));
    EXPECT_FAIL("self loop", load_model(&b, mb_model(&b, 13, g), 0), OQ_E_GRAPH, "node_self", "cycle");

    g = mb_graph(&b, "undef");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 1, d4, NULL));
    mb_node(&b, g, "Identity", "reader", "no_such_value", "y");
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 1, d4, NULL));
    EXPECT_FAIL("undefined value", load_model(&b, mb_model(&b, 13, g), 0), OQ_E_GRAPH, "reader", "no_such_value");

    g = mb_graph(&b, "twice");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 1, d4, NULL));
    mb_node(&b, g, "Identity", "writer1", "x", "y");
    mb_node(&b, g, "Identity", "writer2", "x", "y");
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 1, d4, NULL));
    EXPECT_FAIL("two writers", load_model(&b, mb_model(&b, 13, g), 0), OQ_E_GRAPH, "'y'", "writer1", "writer2");

    g = mb_graph(&b, "overwrite_input");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 1, d4, NULL));
    mb_node(&b, g, "Identity", "clobber", "x", "x");
    mb_output(&b, g, mb_vi(&b, "x", T_FLOAT, 1, d4, NULL));
    EXPECT_FAIL("node writes a graph input", load_model(&b, mb_model(&b, 13, g), 0), OQ_E_GRAPH, "clobber", "'x'");

    g = mb_graph(&b, "noop");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 1, d4, NULL));
    mb_node(&b, g, "", "no_op_type", "x", "y");
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 1, d4, NULL));
    EXPECT_FAIL("empty op_type", load_model(&b, mb_model(&b, 13, g), 0), OQ_E_PARSE, "no_op_type", "op_type");

    /* graph output nobody produces: fails by session creation at the latest */
    g = mb_graph(&b, "dangling");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 1, d4, NULL));
    mb_node(&b, g, "Identity", "id", "x", "y");
    mb_output(&b, g, mb_vi(&b, "ghost_output", T_FLOAT, 1, d4, NULL));
    oq_status st = load_and_create(&b, mb_model(&b, 13, g));
    CHECK(st == OQ_E_GRAPH && strstr(oq_last_error(), "ghost_output"));

    /* a subgraph reading something no scope defines */
    g = mb_graph(&b, "outer");
    mb_input(&b, g, mb_vi(&b, "c", T_BOOL, 0, NULL, NULL));
    Onnx__NodeProto *ifn = mb_node(&b, g, "If", "the_if", "c", "y");
    Onnx__GraphProto *t = mb_graph(&b, "then"), *e = mb_graph(&b, "else");
    mb_node(&b, t, "Identity", "t_id", "c", "ty");
    mb_output(&b, t, mb_vi(&b, "ty", T_BOOL, 0, NULL, NULL));
    mb_node(&b, e, "Identity", "e_id", "phantom", "ey");
    mb_output(&b, e, mb_vi(&b, "ey", T_BOOL, 0, NULL, NULL));
    mb_attr_graph(&b, ifn, "then_branch", t);
    mb_attr_graph(&b, ifn, "else_branch", e);
    mb_output(&b, g, mb_vi(&b, "y", T_BOOL, 0, NULL, NULL));
    EXPECT_FAIL("subgraph reads undefined", load_model(&b, mb_model(&b, 13, g), 0), OQ_E_GRAPH, "phantom");

    /* If without else_branch, Loop whose body has the wrong arity */
    g = mb_graph(&b, "half_if");
    mb_input(&b, g, mb_vi(&b, "c", T_BOOL, 0, NULL, NULL));
    ifn = mb_node(&b, g, "If", "lonely_if", "c", "y");
    t = mb_graph(&b, "then");
    mb_node(&b, t, "Identity", "t_id", "c", "ty");
    mb_output(&b, t, mb_vi(&b, "ty", T_BOOL, 0, NULL, NULL));
    mb_attr_graph(&b, ifn, "then_branch", t);
    mb_output(&b, g, mb_vi(&b, "y", T_BOOL, 0, NULL, NULL));
    EXPECT_FAIL("If without else", load_and_create(&b, mb_model(&b, 13, g)), OQ_E_INVALID_ARG, "lonely_if",
                "else_branch");

    g = mb_graph(&b, "bad_loop");
    mb_input(&b, g, mb_vi(&b, "v", T_FLOAT, 1, d4, NULL));
    Onnx__NodeProto *loop = mb_node(&b, g, "Loop", "odd_loop", ",,v", "vout");
    Onnx__GraphProto *body = mb_graph(&b, "body");
    mb_input(&b, body, mb_vi(&b, "i", T_INT64, 0, NULL, NULL));
    mb_node(&b, body, "Identity", "b_id", "i", "iout");
    mb_output(&b, body, mb_vi(&b, "iout", T_INT64, 0, NULL, NULL));
    mb_attr_graph(&b, loop, "body", body);
    mb_output(&b, g, mb_vi(&b, "vout", T_FLOAT, 1, d4, NULL));
    EXPECT_FAIL("Loop body arity", load_and_create(&b, mb_model(&b, 13, g)), OQ_E_GRAPH, "odd_loop", "body");

    /* a Loop without a body at all */
    g = mb_graph(&b, "bodyless");
    mb_input(&b, g, mb_vi(&b, "v", T_FLOAT, 1, d4, NULL));
    mb_node(&b, g, "Loop", "no_body", ",,v", "vout");
    mb_output(&b, g, mb_vi(&b, "vout", T_FLOAT, 1, d4, NULL));
    EXPECT_FAIL("Loop without body", load_and_create(&b, mb_model(&b, 13, g)), OQ_E_INVALID_ARG, "no_body", "body");
    mb_free(&b);
}

static void test_operator_support(void)
{
    mb b = {0};
    Onnx__GraphProto *g = mb_graph(&b, "g");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 1, d4, NULL));
    mb_node(&b, g, "FrobnicateTensor", "frob_node", "x", "y");
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 1, d4, NULL));
    Onnx__ModelProto *m = mb_model(&b, 13, g);
    EXPECT_FAIL("unknown operator at load", load_model(&b, m, 1), OQ_E_UNSUPPORTED, "frob_node", "FrobnicateTensor",
                "13");
    EXPECT_FAIL("unknown operator at session", load_and_create(&b, m), OQ_E_UNSUPPORTED, "frob_node",
                "FrobnicateTensor", "13");

    m = mb_identity_model(&b, 99, 1, d4, NULL);
    EXPECT_FAIL("opset 99 at load", load_model(&b, m, 1), OQ_E_UNSUPPORTED, "opset 99");
    EXPECT_FAIL("opset 99 at session", load_and_create(&b, m), OQ_E_UNSUPPORTED, "opset 99");

    /* A custom-domain node, reported with its domain */
    g = mb_graph(&b, "g");
    mb_input(&b, g, mb_vi(&b, "x", T_FLOAT, 1, d4, NULL));
    Onnx__NodeProto *n = mb_node(&b, g, "Identity", "custom_id", "x", "y");
    n->domain = mb_str(&b, "com.acme");
    mb_output(&b, g, mb_vi(&b, "y", T_FLOAT, 1, d4, NULL));
    m = mb_model(&b, 13, g);
    mb_opset(&b, m, "com.acme", 3);
    EXPECT_FAIL("custom domain", load_and_create(&b, m), OQ_E_UNSUPPORTED, "custom_id", "com.acme");

    /* An unsupported operator inside a subgraph is found too */
    g = mb_graph(&b, "g");
    mb_input(&b, g, mb_vi(&b, "c", T_BOOL, 0, NULL, NULL));
    Onnx__NodeProto *ifn = mb_node(&b, g, "If", "if", "c", "y");
    Onnx__GraphProto *t = mb_graph(&b, "then"), *e = mb_graph(&b, "else");
    mb_node(&b, t, "Identity", "t_id", "c", "ty");
    mb_output(&b, t, mb_vi(&b, "ty", T_BOOL, 0, NULL, NULL));
    mb_node(&b, e, "Bogus", "nested_bogus", "c", "ey");
    mb_output(&b, e, mb_vi(&b, "ey", T_BOOL, 0, NULL, NULL));
    mb_attr_graph(&b, ifn, "then_branch", t);
    mb_attr_graph(&b, ifn, "else_branch", e);
    mb_output(&b, g, mb_vi(&b, "y", T_BOOL, 0, NULL, NULL));
    EXPECT_FAIL("unsupported op in subgraph", load_model(&b, mb_model(&b, 13, g), 1), OQ_E_UNSUPPORTED,
                "nested_bogus", "Bogus");

    m = mb_identity_model(&b, 0, 1, d4, NULL);
    EXPECT_FAIL("no opset import", load_model(&b, m, 0), OQ_E_PARSE, "operator set");
    mb_free(&b);
}

static void test_external_data(void)
{
    mb b = {0};
    float f[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    char path[512];
    snprintf(path, sizeof path, "%s/weights.bin", tmpdir);
    CHECK(mb_write_file(path, f, 16) == 0);

    Onnx__TensorProto *t = mb_tensor(&b, "ext_ok", T_FLOAT, 1, d4);
    mb_tensor_external(&b, t, "weights.bin", 0, 16);
    CHECK_OK(load_file(&b, init_model(&b, t), "ext_ok.onnx"));

    t = mb_tensor(&b, "ext_missing", T_FLOAT, 1, d4);
    mb_tensor_external(&b, t, "nowhere.bin", 0, 16);
    EXPECT_FAIL("missing file", load_file(&b, init_model(&b, t), "m1.onnx"), OQ_E_IO, "ext_missing", "nowhere.bin");

    t = mb_tensor(&b, "ext_past_end", T_FLOAT, 1, d4);
    mb_tensor_external(&b, t, "weights.bin", 8, 16);
    EXPECT_FAIL("offset+length past end", load_file(&b, init_model(&b, t), "m2.onnx"), OQ_E_PARSE, "ext_past_end",
                "weights.bin", "outside");
    t = mb_tensor(&b, "ext_far", T_FLOAT, 1, d4);
    mb_tensor_external(&b, t, "weights.bin", 1LL << 40, -1);
    EXPECT_FAIL("offset past end", load_file(&b, init_model(&b, t), "m3.onnx"), OQ_E_PARSE, "ext_far", "outside");
    t = mb_tensor(&b, "ext_neg", T_FLOAT, 1, d4);
    mb_tensor_external(&b, t, "weights.bin", -4, -1);
    EXPECT_FAIL("negative offset", load_file(&b, init_model(&b, t), "m4.onnx"), OQ_E_PARSE, "ext_neg");
    t = mb_tensor(&b, "ext_badlen", T_FLOAT, 1, d4);
    mb_tensor_external(&b, t, "weights.bin", 0, 12);
    EXPECT_FAIL("length mismatch", load_file(&b, init_model(&b, t), "m5.onnx"), OQ_E_PARSE, "ext_badlen", "12");
    t = mb_tensor(&b, "ext_huge", T_FLOAT, 2, (int64_t[]){1LL << 20, 1LL << 20});
    mb_tensor_external(&b, t, "weights.bin", 0, -1);
    oq_status st = load_file(&b, init_model(&b, t), "m6.onnx");
    CHECK(st != OQ_OK && strstr(oq_last_error(), "ext_huge")); /* 4 TB: never allocated before checking the file */

    t = mb_tensor(&b, "ext_dotdot", T_FLOAT, 1, d4);
    mb_tensor_external(&b, t, "../weights.bin", 0, 16);
    EXPECT_FAIL("'..' location", load_file(&b, init_model(&b, t), "m7.onnx"), OQ_E_PARSE, "ext_dotdot",
                "../weights.bin", "relative");
    t = mb_tensor(&b, "ext_abs", T_FLOAT, 1, d4);
    mb_tensor_external(&b, t, path, 0, 16);
    EXPECT_FAIL("absolute location", load_file(&b, init_model(&b, t), "m8.onnx"), OQ_E_PARSE, "ext_abs", "relative");
    t = mb_tensor(&b, "ext_empty", T_FLOAT, 1, d4);
    mb_tensor_external(&b, t, "", 0, 16);
    EXPECT_FAIL("empty location", load_file(&b, init_model(&b, t), "m9.onnx"), OQ_E_PARSE, "ext_empty");
    t = mb_tensor(&b, "ext_dir", T_FLOAT, 1, d4);
    mb_tensor_external(&b, t, ".", 0, 16);
    st = load_file(&b, init_model(&b, t), "m10.onnx");
    CHECK(st != OQ_OK && strstr(oq_last_error(), "ext_dir"));

    t = mb_tensor(&b, "ext_noloc", T_FLOAT, 1, d4);
    t->has_data_location = 1;
    t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    EXPECT_FAIL("no location", load_file(&b, init_model(&b, t), "m11.onnx"), OQ_E_PARSE, "ext_noloc", "location");

    t = mb_tensor(&b, "ext_mem", T_FLOAT, 1, d4);
    mb_tensor_external(&b, t, "weights.bin", 0, 16);
    EXPECT_FAIL("external data from memory", load_model(&b, init_model(&b, t), 0), OQ_E_UNSUPPORTED, "ext_mem",
                "weights.bin");
    mb_free(&b);
}

/* ---- raw protobuf wire building for nesting bombs ---- */
/* Bytes are prepended (the buffer fills from its end), so wrapping the message
 * built so far in a field costs O(1) and deep nests build in linear time. */
typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
} wbuf;

static void wb_put(wbuf *w, const void *d, size_t n)
{
    if (w->n + n > w->cap) {
        size_t cap = (w->n + n) * 2 + 64;
        uint8_t *q = malloc(cap);
        if (!q)
            exit(2);
        if (w->n)
            memcpy(q + cap - w->n, w->p + w->cap - w->n, w->n);
        free(w->p);
        w->p = q;
        w->cap = cap;
    }
    memcpy(w->p + w->cap - w->n - n, d, n);
    w->n += n;
}

static void wb_varint(wbuf *w, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    do {
        b[n++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        v >>= 7;
    } while (v);
    wb_put(w, b, n);
}

/* Wraps everything so far in a length-delimited field: tag len <bytes>. */
static void wb_wrap(wbuf *w, unsigned field)
{
    wb_varint(w, w->n);
    wb_varint(w, (uint64_t)field << 3 | 2);
}

/* The finished message in a new exact-size buffer. */
static uint8_t *wb_finish(wbuf *w, size_t *len)
{
    uint8_t *out = malloc(w->n + 1);
    if (!out)
        exit(2);
    memcpy(out, w->p + w->cap - w->n, w->n);
    *len = w->n;
    free(w->p);
    return out;
}

/* GraphProto nested `depth` times through If-like node attributes, as raw bytes
 * (protobuf-c would recurse while packing too). */
static uint8_t *nested_graph_bytes(int depth, size_t *len)
{
    wbuf w = {0};
    wb_put(&w, "\x12\x01g", 3); /* GraphProto.name = "g" (innermost) */
    for (int i = 0; i < depth; i++) {
        /* AttributeProto { name(1)="b", type(20)=GRAPH, g(6)=<graph> } */
        wb_wrap(&w, 6);
        wb_put(&w, "\x0a\x01" "b" "\xa0\x01\x05", 6);
        wb_wrap(&w, 5); /* NodeProto.attribute */
        wb_put(&w, "\x22\x02If", 4); /* NodeProto.op_type, before the attribute */
        wb_wrap(&w, 1); /* GraphProto.node */
    }
    wb_wrap(&w, 7); /* ModelProto.graph */
    wb_put(&w, "\x42\x02\x10\x0d", 4); /* opset_import { version: 13 } */
    wb_put(&w, "\x08\x08", 2);          /* ir_version 8 */
    return wb_finish(&w, len);
}

/* TypeProto.sequence_type nesting: another recursion path through value infos. */
static uint8_t *nested_type_bytes(int depth, size_t *len)
{
    wbuf w = {0};
    wb_put(&w, "\x08\x01", 2); /* Tensor.elem_type = FLOAT */
    wb_wrap(&w, 1);            /* TypeProto.tensor_type */
    for (int i = 0; i < depth; i++) {
        wb_wrap(&w, 1); /* Sequence.elem_type */
        wb_wrap(&w, 4); /* TypeProto.sequence_type */
    }
    wb_wrap(&w, 2); /* ValueInfoProto.type */
    wb_put(&w, "\x0a\x01x", 3);
    wb_wrap(&w, 11); /* GraphProto.input */
    wb_wrap(&w, 7);
    wb_put(&w, "\x08\x08\x42\x02\x10\x0d", 6);
    return wb_finish(&w, len);
}

static void test_nesting(void)
{
    size_t len;
    uint8_t *buf = nested_graph_bytes(10, &len);
    oq_model *m = NULL;
    oq_status st = load_mem(buf, len, 0, &m);
    /* 10 levels is fine structurally (the nodes lack outputs, the If branches lack outputs: any error is OK) */
    CHECK(st == OQ_OK || oq_last_error()[0]);
    oq_model_destroy(m);
    free(buf);

    buf = nested_graph_bytes(200, &len);
    EXPECT_FAIL("200 nested subgraphs", load_mem(buf, len, 0, &m), OQ_E_PARSE, "nested");
    free(buf);
    /* deep enough to overflow the stack of a naive recursive decoder */
    buf = nested_graph_bytes(100000, &len);
    EXPECT_FAIL("100000 nested subgraphs", load_mem(buf, len, 0, &m), OQ_E_PARSE, "nested");
    free(buf);
    buf = nested_type_bytes(200000, &len);
    EXPECT_FAIL("200000 nested sequence types", load_mem(buf, len, 0, &m), OQ_E_PARSE, "nested");
    free(buf);
}

static void test_session_inputs(void)
{
    mb b = {0};
    size_t len;
    const char *params[] = {"batch", NULL};
    uint8_t *buf = mb_pack(&b, mb_identity_model(&b, 13, 2, (int64_t[]){0, 3}, params), &len);
    oq_model *m = NULL;
    CHECK_OK(load_mem(buf, len, 0, &m));
    oq_session *s = NULL;
    if (m)
        CHECK_OK(oq_session_create(m, NULL, &s));
    if (!s) {
        oq_model_destroy(m);
        mb_free(&b);
        return;
    }
    float data[12] = {0};
    int32_t idata[12] = {0};
    oq_tensor *good = NULL, *wrong_type = NULL, *wrong_shape = NULL, *wrong_rank = NULL, *y = NULL;
    CHECK_OK(oq_tensor_wrap(OQ_FLOAT, 2, (int64_t[]){4, 3}, data, &good));
    CHECK_OK(oq_tensor_wrap(OQ_INT32, 2, (int64_t[]){4, 3}, idata, &wrong_type));
    CHECK_OK(oq_tensor_wrap(OQ_FLOAT, 2, (int64_t[]){3, 4}, data, &wrong_shape));
    CHECK_OK(oq_tensor_wrap(OQ_FLOAT, 1, (int64_t[]){12}, data, &wrong_rank));

    const oq_tensor *two[2] = {good, good};
    EXPECT_FAIL("two inputs for one", oq_session_run(s, two, 2, &y, 1), OQ_E_INVALID_ARG, "1 inputs", "2");
    EXPECT_FAIL("zero inputs", oq_session_run(s, NULL, 0, &y, 1), OQ_E_INVALID_ARG, "1 inputs", "0");
    const oq_tensor *in[1] = {wrong_type};
    EXPECT_FAIL("int32 for float", oq_session_run(s, in, 1, &y, 1), OQ_E_TYPE, "'x'", "int32", "float");
    in[0] = wrong_shape;
    EXPECT_FAIL("[3,4] for [batch,3]", oq_session_run(s, in, 1, &y, 1), OQ_E_SHAPE, "'x'", "[3,4]", "[batch,3]");
    in[0] = wrong_rank;
    EXPECT_FAIL("rank 1 for rank 2", oq_session_run(s, in, 1, &y, 1), OQ_E_SHAPE, "'x'", "[12]", "[batch,3]");
    in[0] = NULL;
    EXPECT_FAIL("NULL input tensor", oq_session_run(s, in, 1, &y, 1), OQ_E_INVALID_ARG, "'x'");
    EXPECT_FAIL("NULL input array", oq_session_run(s, NULL, 1, &y, 1), OQ_E_INVALID_ARG, "NULL");
    in[0] = good;
    EXPECT_FAIL("NULL output array", oq_session_run(s, in, 1, NULL, 1), OQ_E_INVALID_ARG, "NULL");
    oq_tensor *ys[2] = {0};
    EXPECT_FAIL("two outputs for one", oq_session_run(s, in, 1, ys, 2), OQ_E_INVALID_ARG, "1 outputs");
    CHECK(y == NULL && ys[0] == NULL);
    /* after all that, a correct run still works */
    CHECK_OK(oq_session_run(s, in, 1, &y, 1));
    CHECK(y && y->dims[0] == 4 && y->dims[1] == 3);
    oq_tensor_destroy(y);
    oq_tensor_destroy(good);
    oq_tensor_destroy(wrong_type);
    oq_tensor_destroy(wrong_shape);
    oq_tensor_destroy(wrong_rank);
    oq_session_destroy(s);
    oq_model_destroy(m);
    mb_free(&b);
}

/* A valid model with subgraphs, initializers and attributes: the source of truncations and mutations. */
static uint8_t *seed_model(mb *b, size_t *len)
{
    Onnx__GraphProto *g = mb_graph(b, "seed");
    float f[4] = {1, 2, 3, 4};
    Onnx__TensorProto *t = mb_tensor(b, "w", T_FLOAT, 1, d4);
    mb_tensor_raw(b, t, f, sizeof f);
    mb_initializer(b, g, t);
    const char *p[] = {"N", NULL};
    mb_input(b, g, mb_vi(b, "x", T_FLOAT, 2, (int64_t[]){0, 4}, p));
    mb_input(b, g, mb_vi(b, "c", T_BOOL, 0, NULL, NULL));
    mb_node(b, g, "Identity", "id", "x", "y");
    Onnx__NodeProto *ifn = mb_node(b, g, "If", "if", "c", "z");
    Onnx__GraphProto *tg = mb_graph(b, "then"), *eg = mb_graph(b, "else");
    mb_node(b, tg, "Identity", "t", "w", "tz");
    mb_output(b, tg, mb_vi(b, "tz", T_FLOAT, 1, d4, NULL));
    Onnx__NodeProto *c = mb_node(b, eg, "Constant", "k", NULL, "ez");
    Onnx__AttributeProto *a = mb_attr(b, c, "value_floats", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
    a->n_floats = 4;
    a->floats = mb_alloc(b, sizeof f);
    memcpy(a->floats, f, sizeof f);
    mb_output(b, eg, mb_vi(b, "ez", T_FLOAT, 1, d4, NULL));
    mb_attr_graph(b, ifn, "then_branch", tg);
    mb_attr_graph(b, ifn, "else_branch", eg);
    mb_output(b, g, mb_vi(b, "y", T_FLOAT, 2, (int64_t[]){0, 4}, p));
    mb_output(b, g, mb_vi(b, "z", T_FLOAT, 1, d4, NULL));
    return mb_pack(b, mb_model(b, 13, g), len);
}

/* Loads bytes; if they load, also builds a session and runs it on zeros when shapes allow. */
static void exercise(const uint8_t *buf, size_t len)
{
    oq_model *m = NULL;
    oq_status st = load_mem(buf, len, 0, &m);
    if (st != OQ_OK) {
        test_checks++;
        if (!oq_last_error()[0]) {
            test_failures++;
            fprintf(stderr, "failure without a message (%s)\n", oq_status_str(st));
        }
        return;
    }
    oq_session *s = NULL;
    oq_session_options so = oq_session_options_default();
    so.threads = 1;
    if (oq_session_create(m, &so, &s) == OQ_OK) {
        size_t ni = oq_session_input_count(s), no = oq_session_output_count(s);
        oq_tensor **in = calloc(ni + 1, sizeof *in), **out = calloc(no + 1, sizeof *out);
        int ok = in && out;
        for (size_t i = 0; ok && i < ni; i++) {
            const oq_value_desc *d = oq_session_input(s, i);
            int64_t dims[OQ_MAX_DIMS];
            for (int k = 0; k < d->ndim; k++)
                dims[k] = d->dims[k] < 0 ? 1 : d->dims[k];
            if (d->ndim < 0 || d->dtype == OQ_UNDEFINED || oq_dtype_size(d->dtype) == 0 ||
                oq_shape_numel(d->ndim, dims) > 4096 || oq_tensor_create(d->dtype, d->ndim, dims, &in[i]) != OQ_OK)
                ok = 0;
        }
        if (ok && oq_session_run(s, (const oq_tensor *const *)in, ni, out, no) == OQ_OK)
            for (size_t i = 0; i < no; i++)
                oq_tensor_destroy(out[i]);
        for (size_t i = 0; in && i < ni; i++)
            oq_tensor_destroy(in[i]);
        free(in);
        free(out);
    }
    oq_session_destroy(s);
    oq_model_destroy(m);
}

static void test_truncation_and_garbage(void)
{
    mb b = {0};
    size_t len;
    uint8_t *full = seed_model(&b, &len);
    exercise(full, len);
    size_t failed = 0;
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = malloc(cut + 1); /* exact-size copy so ASan sees any over-read */
        memcpy(copy, full, cut);
        oq_model *m = NULL;
        oq_status st = load_mem(copy, cut, 0, &m);
        failed += st != OQ_OK;
        if (st == OQ_OK)
            oq_model_destroy(m);
        exercise(copy, cut);
        free(copy);
    }
    /* Nearly all cuts fall inside a field; a few land on a message boundary and may still load. */
    CHECK(failed > len / 2);

    uint64_t r = 0x9e3779b97f4a7c15ull;
#define NEXT() (r ^= r << 13, r ^= r >> 7, r ^= r << 17, r)
    for (int iter = 0; iter < 3000; iter++) {
        size_t n = NEXT() % 512;
        uint8_t *g = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            g[i] = (uint8_t)NEXT();
        exercise(g, n);
        free(g);
    }
    /* mutations of the valid model: flips, byte sets, and insertions of length-like bytes */
    for (int iter = 0; iter < 20000; iter++) {
        uint8_t *g = malloc(len + 1);
        memcpy(g, full, len);
        int k = 1 + (int)(NEXT() % 4);
        for (int j = 0; j < k; j++) {
            size_t at = NEXT() % len;
            switch (NEXT() % 4) {
            case 0: g[at] ^= (uint8_t)(1u << (NEXT() % 8)); break;
            case 1: g[at] = (uint8_t)NEXT(); break;
            case 2: g[at] = 0xff; break;
            default: g[at] = (uint8_t)(NEXT() % 16); break;
            }
        }
        exercise(g, len);
        free(g);
    }
#undef NEXT
    mb_free(&b);
}

/* Real exported models (the test fixtures) cut at many offsets, every offset for the small ones. */
static void test_truncated_fixtures(void)
{
    static const char *const models[] = {"constant_nodes", "if_subgraph", "loop_subgraph", "lstm_small",
                                         "symbolic_batch", "fmnist_cnn"};
    for (size_t k = 0; k < sizeof models / sizeof *models; k++) {
        char path[512];
        snprintf(path, sizeof path, "tests/fixtures/%s/model.onnx", models[k]);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        static uint8_t buf[1 << 16];
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        size_t step = len / 1500 + 1;
        for (size_t cut = 0; cut <= len; cut += step) {
            uint8_t *copy = malloc(cut + 1);
            memcpy(copy, buf, cut);
            exercise(copy, cut);
            free(copy);
        }
    }
}

/* Inputs the fuzzer once crashed on (fuzz/regressions/, relative to the source
 * tree where ctest runs this) must now load or fail cleanly. */
static void test_fuzz_regressions(void)
{
    DIR *d = opendir("fuzz/regressions");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "fuzz/regressions/%s", e->d_name);
        struct stat sb;
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue; /* data/: fuzz_data's inputs, replayed by robustness.fuzz_data_regressions */
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        uint8_t buf[65536];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        uint8_t *copy = malloc(n + 1);
        memcpy(copy, buf, n);
        exercise(copy, n);
        free(copy);
    }
    closedir(d);
}

/* Under ASan, a model asking for terabytes must get NULL from the allocator
 * (as in a real process) rather than abort the test. Unused without ASan. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

int main(void)
{
    oq_set_log_callback(NULL, NULL, OQ_LOG_ERROR);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/oq_robust_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_empty_and_null();
    test_missing_graph();
    test_tensor_errors();
    test_value_info_errors();
    test_graph_errors();
    test_operator_support();
    test_external_data();
    test_nesting();
    test_session_inputs();
    test_truncation_and_garbage();
    test_truncated_fixtures();
    test_fuzz_regressions();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary("robustness/test_malformed");
}
