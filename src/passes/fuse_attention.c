/* passes/fuse_attention: self-attention over a packed QKV projection as PyTorch
 * exports `q, k, v = qkv.reshape(B, S, 3, H, D).permute(2, 0, 3, 1, 4)` —
 *   Reshape(x, [B,S,3,H,D]) -> Transpose(2,0,3,1,4) -> Split(axis 0, 1/1/1) -> Squeeze(0) x3,
 *   MatMul(Q, Transpose(K, 0,1,3,2)) -> [Div|Mul by a scalar] -> Softmax(last axis) -> MatMul(., V)
 *   -> Transpose(0,2,1,3) -> Reshape(., [B,S,H*D])
 * — becomes one session-only onnxq.QkvAttention node reading x: the heads run from x's
 * rows in place (no Transpose or Split copies), each head's scores stay in cache from
 * the first product through the softmax to the second, and heads are the threads' tasks. */
#include "passes/pass.h"

#include <stdlib.h>
#include <string.h>

static bool is_op(const oq_graph *g, size_t i, const char *op)
{
    return i < g->n_nodes && !strcmp(g->nodes[i].op_type, op) && oq_domain_is_default(g->nodes[i].domain);
}

/* The single default-domain node of type op reading name (and nothing else reads it). */
static size_t reader(const oq_graph *g, const char *name, const char *op)
{
    size_t i = oq_graph_single_reader(g, name);
    return is_op(g, i, op) ? i : SIZE_MAX;
}

/* The node of type op producing name, whose every output has a single reader. */
static size_t producer(const oq_graph *g, const char *name, const char *op)
{
    size_t i = oq_graph_producer(g, name);
    if (!is_op(g, i, op))
        return SIZE_MAX;
    for (size_t k = 0; k < g->nodes[i].n_outputs; k++)
        if (oq_graph_single_reader(g, g->nodes[i].outputs[k]) == SIZE_MAX)
            return SIZE_MAX;
    return i;
}

static bool perm_is(const oq_node *n, size_t count, const int64_t *want)
{
    const int64_t *p = NULL;
    return n->n_inputs == 1 && n->n_outputs == 1 && oq_node_attr_ints(n, "perm", &p) == count &&
           !memcmp(p, want, count * sizeof *p);
}

/* Integer values of attribute attr, or of constant input idx from opset `from_opset` on. */
static size_t int_list(const oq_model *m, const oq_graph *g, const oq_node *n, const char *attr, size_t idx,
                       int64_t from_opset, int64_t *v, size_t cap)
{
    if (oq_model_opset(m, n->domain) >= from_opset) {
        const char *name = oq_node_input(n, idx);
        const oq_tensor *t = name ? oq_graph_initializer(g, name) : NULL;
        if (!t || !t->data || (t->dtype != OQ_INT64 && t->dtype != OQ_INT32) || t->ndim != 1 ||
            (size_t)oq_tensor_numel(t) > cap)
            return SIZE_MAX;
        size_t c = (size_t)oq_tensor_numel(t);
        for (size_t i = 0; i < c; i++)
            v[i] = oq_tensor_get_i64(t, i);
        return c;
    }
    const int64_t *p = NULL;
    size_t c = oq_node_attr_ints(n, attr, &p);
    if (!p || c > cap)
        return SIZE_MAX;
    memcpy(v, p, c * sizeof *v);
    return c;
}

/* Squeeze of axis 0 of a rank-5 value. */
static bool squeeze0(const oq_model *m, const oq_graph *g, const oq_node *n)
{
    int64_t axes[2];
    return n->n_outputs == 1 && int_list(m, g, n, "axes", 1, 13, axes, 2) == 1 && (axes[0] == 0 || axes[0] == -5);
}

/* Reshape by a constant shape (allowzero 0); returns its rank, the shape in v. */
static size_t reshape_const(const oq_graph *g, const oq_node *n, int64_t *v, size_t cap)
{
    if (n->n_inputs != 2 || n->n_outputs != 1 || oq_node_attr_int(n, "allowzero", 0) != 0)
        return 0;
    const oq_tensor *t = oq_graph_initializer(g, n->inputs[1]);
    if (!t || !t->data || t->dtype != OQ_INT64 || t->ndim != 1 || (size_t)oq_tensor_numel(t) > cap)
        return 0;
    size_t c = (size_t)oq_tensor_numel(t);
    for (size_t i = 0; i < c; i++)
        v[i] = oq_tensor_get_i64(t, i);
    return c;
}

typedef struct match_t {
    size_t nodes[14], n_nodes;
    const char *x;
    int64_t qkv_shape[5], out_shape[8];
    size_t out_rank;
    float scale;
    bool divides;
} match_t;

/* Matches around Softmax node s. */
static bool match(const oq_model *m, const oq_graph *g, size_t s, match_t *r)
{
    if (!is_op(g, s, "Softmax") || g->nodes[s].n_inputs != 1 || g->nodes[s].n_outputs != 1)
        return false;
    int64_t axis = oq_node_attr_int(&g->nodes[s], "axis", oq_model_opset(m, "") >= 13 ? -1 : 1);
    if (axis != -1 && axis != 3) /* rank 4: axis 3 is the last one in either definition */
        return false;
    memset(r, 0, sizeof *r);
    r->scale = 1.0f;
    size_t mm1 = oq_graph_producer(g, g->nodes[s].inputs[0]), scale = SIZE_MAX;
    if (oq_graph_single_reader(g, g->nodes[s].inputs[0]) != s)
        return false;
    if (is_op(g, mm1, "Div") || is_op(g, mm1, "Mul")) {
        scale = mm1;
        const oq_node *c = &g->nodes[scale];
        double v;
        const oq_tensor *t = c->n_inputs == 2 ? oq_graph_initializer(g, c->inputs[1]) : NULL;
        if (!t || t->dtype != OQ_FLOAT || t->ndim > 4 || !oq_graph_const_scalar(g, c->inputs[1], &v) ||
            oq_graph_single_reader(g, c->inputs[0]) != scale)
            return false;
        r->scale = (float)v;
        r->divides = !strcmp(c->op_type, "Div");
        mm1 = oq_graph_producer(g, c->inputs[0]);
    }
    if (!is_op(g, mm1, "MatMul") || g->nodes[mm1].n_inputs != 2)
        return false;
    size_t mm2 = reader(g, g->nodes[s].outputs[0], "MatMul");
    if (mm2 == SIZE_MAX || g->nodes[mm2].n_inputs != 2 || strcmp(g->nodes[mm2].inputs[0], g->nodes[s].outputs[0]))
        return false;
    size_t tk = producer(g, g->nodes[mm1].inputs[1], "Transpose");
    if (tk == SIZE_MAX || !perm_is(&g->nodes[tk], 4, (const int64_t[]){0, 1, 3, 2}))
        return false;
    size_t sq[3] = {producer(g, g->nodes[mm1].inputs[0], "Squeeze"), producer(g, g->nodes[tk].inputs[0], "Squeeze"),
                    producer(g, g->nodes[mm2].inputs[1], "Squeeze")};
    for (int i = 0; i < 3; i++)
        if (sq[i] == SIZE_MAX || !squeeze0(m, g, &g->nodes[sq[i]]))
            return false;
    size_t sp = producer(g, g->nodes[sq[0]].inputs[0], "Split");
    if (sp == SIZE_MAX || g->nodes[sp].n_outputs != 3)
        return false;
    const oq_node *spn = &g->nodes[sp];
    for (int i = 0; i < 3; i++)
        if (strcmp(spn->outputs[i], g->nodes[sq[i]].inputs[0]))
            return false;
    int64_t axis_sp = oq_node_attr_int(spn, "axis", 0), parts[4];
    if (axis_sp != 0 && axis_sp != -5)
        return false;
    bool split_given = oq_model_opset(m, "") >= 13 ? oq_node_input(spn, 1) != NULL : oq_node_attr(spn, "split") != NULL;
    if (split_given) {
        if (int_list(m, g, spn, "split", 1, 13, parts, 4) != 3 || parts[0] != 1 || parts[1] != 1 || parts[2] != 1)
            return false;
    } else if (oq_node_attr(spn, "num_outputs") && oq_node_attr_int(spn, "num_outputs", 0) != 3)
        return false;
    size_t tq = producer(g, spn->inputs[0], "Transpose");
    if (tq == SIZE_MAX || !perm_is(&g->nodes[tq], 5, (const int64_t[]){2, 0, 3, 1, 4}))
        return false;
    size_t r1 = producer(g, g->nodes[tq].inputs[0], "Reshape");
    if (r1 == SIZE_MAX || reshape_const(g, &g->nodes[r1], r->qkv_shape, 5) != 5 || r->qkv_shape[2] != 3 ||
        r->qkv_shape[3] <= 0 || r->qkv_shape[4] <= 0)
        return false;
    size_t to = reader(g, g->nodes[mm2].outputs[0], "Transpose");
    if (to == SIZE_MAX || !perm_is(&g->nodes[to], 4, (const int64_t[]){0, 2, 1, 3}))
        return false;
    size_t r2 = reader(g, g->nodes[to].outputs[0], "Reshape");
    if (r2 == SIZE_MAX || !(r->out_rank = reshape_const(g, &g->nodes[r2], r->out_shape, 8)))
        return false;
    r->x = g->nodes[r1].inputs[0];
    size_t all[] = {r1, tq, sp, sq[0], sq[1], sq[2], tk, mm1, scale, s, mm2, to, r2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i] != SIZE_MAX)
            r->nodes[r->n_nodes++] = all[i];
    return true;
}

static int cmp_desc(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static oq_status add_ints(oq_node *n, const char *name, const int64_t *v, size_t count)
{
    oq_attr *a = realloc(n->attrs, (n->n_attrs + 1) * sizeof *a);
    if (!a)
        return oq_error(OQ_E_NOMEM, "out of memory");
    n->attrs = a;
    a = &n->attrs[n->n_attrs];
    memset(a, 0, sizeof *a);
    a->type = OQ_ATTR_INTS;
    if (!(a->name = oq_strdup(name)) || !(a->ints = oq_malloc(count * sizeof *v))) {
        free(a->name);
        return oq_error(OQ_E_NOMEM, "out of memory");
    }
    memcpy(a->ints, v, count * sizeof *v);
    a->n_ints = count;
    n->n_attrs++;
    return OQ_OK;
}

/* Node r2 (the last Reshape) becomes the fused node; the others go. */
static oq_status rewrite(oq_graph *g, const match_t *r)
{
    oq_node *n = &g->nodes[r->nodes[r->n_nodes - 1]];
    const char *in[1] = {r->x};
    oq_status st = oq_node_rewrite(n, "QkvAttention", "onnxq", in, 1, true);
    if (st != OQ_OK)
        return st;
    float sc[2] = {r->scale, r->divides ? 1.0f : 0.0f};
    st = add_ints(n, "qkv_shape", r->qkv_shape, 5);
    if (st == OQ_OK)
        st = add_ints(n, "out_shape", r->out_shape, r->out_rank);
    if (st == OQ_OK)
        st = oq_node_add_attr_floats(n, "scale", sc, 2);
    if (st != OQ_OK)
        return st;
    size_t gone[14];
    memcpy(gone, r->nodes, (r->n_nodes - 1) * sizeof *gone);
    qsort(gone, r->n_nodes - 1, sizeof *gone, cmp_desc);
    for (size_t k = 0; k + 1 < r->n_nodes; k++)
        oq_graph_remove_node(g, gone[k]);
    return OQ_OK;
}

oq_status pass_fuse_attention(oq_model *m, oq_graph *g, oq_pass_ctx *ctx)
{
    size_t fused = 0;
    for (size_t s = 0; s < g->n_nodes;) {
        match_t r;
        if (!match(m, g, s, &r)) {
            s++;
            continue;
        }
        oq_status st = rewrite(g, &r);
        if (st != OQ_OK)
            return st;
        fused++;
        ctx->changed++;
        s = 0; /* nodes before s went too */
    }
    if (fused)
        oq_pass_note(ctx, "fuse_attention", "%zu self-attention block%s fused into onnxq.QkvAttention", fused,
                     fused == 1 ? "" : "s");
    return OQ_OK;
}
