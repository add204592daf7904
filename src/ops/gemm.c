/* ops/gemm: Gemm and MatMul on the f32 GEMM kernels. A constant right operand
 * (the weight) is packed once at prepare; Gemm's C folds into the epilogue as a
 * column/row bias when it can, and an optional fused activation clamps the result. */
#include "kernels/f32-gemm/gemm.h"
#include "ops/op.h"

#include <stdlib.h>
#include <string.h>

/* Activation a fusion pass attached to the node (onnxq-internal attributes). */
typedef struct fused_act {
    bool clamp;
    float min, max;
} fused_act;

static oq_status read_fused_act(const oq_op_node *n, fused_act *act)
{
    act->clamp = false;
    act->min = -__builtin_inff();
    act->max = __builtin_inff();
    const char *name = oq_node_attr_string(n->node, "onnxq_activation", NULL);
    if (!name)
        return OQ_OK;
    const float *p = NULL;
    size_t np = oq_node_attr_floats(n->node, "onnxq_activation_params", &p);
    if (!strcmp(name, "Relu")) {
        act->clamp = true;
        act->min = 0.0f;
    } else if (!strcmp(name, "Clip")) {
        if (np != 2)
            return oq_op_error(n, OQ_E_INVALID_ARG, "onnxq_activation Clip needs onnxq_activation_params [min, max]");
        act->clamp = true;
        act->min = p[0];
        act->max = p[1];
    } else
        return oq_op_error(n, OQ_E_UNSUPPORTED, "fused activation '%s' is not supported", name);
    return OQ_OK;
}

typedef struct gemm_state {
    const oq_f32_gemm_variant *v;
    float *packed_b;    /* constant right operand, packed (all batches of MatMul's B) */
    size_t packed_size; /* floats per packed matrix */
    size_t pk, pn;      /* shape it was packed for */
    fused_act act;
    oq_scratch ws, offsets;
} gemm_state;

static void gemm_state_destroy(void *p)
{
    gemm_state *s = p;
    if (!s)
        return;
    oq_aligned_free(s->packed_b);
    oq_scratch_free(&s->ws);
    oq_scratch_free(&s->offsets);
    free(s);
}

static oq_status state_new(oq_op_node *n, gemm_state **out)
{
    gemm_state *s = calloc(1, sizeof *s);
    if (!s)
        return oq_error(OQ_E_NOMEM, "out of memory");
    s->v = oq_f32_gemm_default();
    oq_status st = read_fused_act(n, &s->act);
    if (st != OQ_OK) {
        free(s);
        return st;
    }
    *out = s;
    return OQ_OK;
}

static oq_status run_gemm(oq_op_node *n, gemm_state *s, oq_f32_gemm_args *g)
{
    size_t bytes = oq_f32_gemm_workspace_size(s->v, g, (size_t)oq_threadpool_size(n->tp));
    void *ws = oq_scratch_get(&s->ws, bytes);
    if (!ws)
        return oq_error(OQ_E_NOMEM, "out of memory for GEMM workspace");
    if (s->act.clamp) {
        g->clamp = true;
        g->min = s->act.min;
        g->max = s->act.max;
    }
    oq_f32_gemm_run(s->v, g, ws, n->tp);
    return OQ_OK;
}

/* ---- Gemm ---- */
static oq_status gemm_prepare(oq_op_node *n)
{
    if (n->n_inputs < 2 || n->n_inputs > 3 || n->n_outputs != 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "Gemm takes 2 or 3 inputs and one output");
    gemm_state *s;
    oq_status st = state_new(n, &s);
    if (st != OQ_OK)
        return st;
    n->state = s;
    const oq_tensor *b = n->consts[1];
    if (b && b->dtype == OQ_FLOAT && b->ndim == 2) {
        bool tb = oq_node_attr_int(n->node, "transB", 0) != 0;
        size_t k = (size_t)(tb ? b->dims[1] : b->dims[0]), nn = (size_t)(tb ? b->dims[0] : b->dims[1]);
        s->packed_size = oq_f32_gemm_packed_b_size(s->v, k, nn);
        s->packed_b = oq_aligned_alloc(s->packed_size * sizeof(float) + 64);
        if (!s->packed_b)
            return oq_error(OQ_E_NOMEM, "out of memory packing Gemm weights");
        oq_f32_gemm_pack_b(s->v, k, nn, b->data, tb ? 1 : nn, tb ? k : 1, s->packed_b);
        s->pk = k;
        s->pn = nn;
    }
    return OQ_OK;
}

static oq_status gemm_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st;
    if ((st = oq_check_input(n, in, 0, OQ_FLOAT, OQ_UNDEFINED)) || (st = oq_check_input(n, in, 1, OQ_FLOAT, OQ_UNDEFINED)))
        return st;
    const oq_tensor *a = in[0], *b = in[1];
    if (a->ndim != 2 || b->ndim != 2)
        return oq_op_error(n, OQ_E_SHAPE, "Gemm needs 2-D A and B, got ranks %d and %d", a->ndim, b->ndim);
    bool ta = oq_node_attr_int(n->node, "transA", 0) != 0, tb = oq_node_attr_int(n->node, "transB", 0) != 0;
    int64_t m = ta ? a->dims[1] : a->dims[0], k = ta ? a->dims[0] : a->dims[1];
    int64_t kb = tb ? b->dims[1] : b->dims[0], nn = tb ? b->dims[0] : b->dims[1];
    if (k != kb)
        return oq_op_error(n, OQ_E_SHAPE, "Gemm inner dimensions differ: %lld and %lld", (long long)k, (long long)kb);
    const oq_tensor *c = n->n_inputs > 2 ? in[2] : NULL;
    if (c) {
        if (c->dtype != OQ_FLOAT)
            return oq_op_error(n, OQ_E_TYPE, "Gemm C must be float");
        int64_t md[2] = {m, nn};
        int r;
        int64_t outd[OQ_MAX_DIMS];
        if (c->ndim > 2 || (st = oq_broadcast_shape(n, 2, md, c->ndim, c->dims, &r, outd)) != OQ_OK ||
            outd[0] != m || outd[1] != nn)
            return oq_op_error(n, OQ_E_SHAPE, "Gemm C cannot be broadcast to [%lld,%lld]", (long long)m,
                               (long long)nn);
    }
    int64_t dims[2] = {m, nn};
    oq_set_shape(out[0], OQ_FLOAT, 2, dims);
    return OQ_OK;
}

static oq_status gemm_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    gemm_state *s = n->state;
    const oq_tensor *a = in[0], *b = in[1], *c = n->n_inputs > 2 ? in[2] : NULL;
    bool ta = oq_node_attr_int(n->node, "transA", 0) != 0, tb = oq_node_attr_int(n->node, "transB", 0) != 0;
    float alpha = oq_node_attr_float(n->node, "alpha", 1.0f), beta = oq_node_attr_float(n->node, "beta", 1.0f);
    size_t m = (size_t)out[0]->dims[0], nn = (size_t)out[0]->dims[1];
    size_t k = (size_t)(ta ? a->dims[0] : a->dims[1]);
    float *y = out[0]->data;

    oq_f32_gemm_args g = oq_f32_gemm_args_init(m, nn, k);
    g.alpha = alpha;
    g.a.data = a->data;
    if (ta)
        g.a.rs = 1, g.a.cs = m;
    else
        g.a.rs = k, g.a.cs = 1;
    if (s->packed_b && s->pk == k && s->pn == nn && n->consts[1] && b->data == n->consts[1]->data)
        g.b.packed = s->packed_b;
    else {
        g.b.data = b->data;
        g.b.rs = tb ? 1 : nn;
        g.b.cs = tb ? k : 1;
    }
    g.c = y;
    g.ldc = nn;
    if (c && beta != 0.0f) {
        int64_t cn = oq_tensor_numel(c);
        int64_t c0 = c->ndim == 2 ? c->dims[0] : 1, c1 = c->ndim >= 1 ? c->dims[c->ndim - 1] : 1;
        if (beta == 1.0f && c1 == (int64_t)nn && c0 == 1 && cn == (int64_t)nn) {
            g.bias = c->data;
            g.bias_kind = OQ_F32_BIAS_COL;
        } else if (beta == 1.0f && c->ndim == 2 && c0 == (int64_t)m && c1 == 1) {
            g.bias = c->data;
            g.bias_kind = OQ_F32_BIAS_ROW;
        } else {
            /* general broadcast: Y starts as beta * C and the product accumulates */
            const float *cd = c->data;
            size_t rs = c->ndim == 2 && c0 != 1 ? (size_t)c1 : 0, cs = c1 != 1 ? 1 : 0;
            for (size_t i = 0; i < m; i++)
                for (size_t j = 0; j < nn; j++)
                    y[i * nn + j] = beta * cd[i * rs + j * cs];
            g.accumulate = true;
        }
    }
    return run_gemm(n, s, &g);
}

const oq_op_def oq_op_gemm = {gemm_prepare, gemm_infer, gemm_run, gemm_state_destroy};

/* ---- MatMul (numpy semantics) ---- */
typedef struct mm_shape {
    bool a_vec, b_vec;
    size_t m, k, n, batch;
    int nb; /* batch rank of the output */
    int64_t bdims[OQ_MAX_DIMS];
} mm_shape;

static oq_status mm_shapes(const oq_op_node *n, const oq_tensor *a, const oq_tensor *b, mm_shape *sh, int *ndim,
                           int64_t *dims)
{
    if (a->ndim < 1 || b->ndim < 1)
        return oq_op_error(n, OQ_E_SHAPE, "MatMul operands must have rank >= 1");
    sh->a_vec = a->ndim == 1;
    sh->b_vec = b->ndim == 1;
    sh->m = sh->a_vec ? 1 : (size_t)a->dims[a->ndim - 2];
    sh->k = (size_t)a->dims[a->ndim - 1];
    size_t kb = (size_t)(sh->b_vec ? b->dims[0] : b->dims[b->ndim - 2]);
    sh->n = sh->b_vec ? 1 : (size_t)b->dims[b->ndim - 1];
    if (sh->k != kb)
        return oq_op_error(n, OQ_E_SHAPE, "MatMul inner dimensions differ: %zu and %zu", sh->k, kb);
    int na = a->ndim > 2 ? a->ndim - 2 : 0, nbr = b->ndim > 2 ? b->ndim - 2 : 0;
    oq_status st = oq_broadcast_shape(n, na, a->dims, nbr, b->dims, &sh->nb, sh->bdims);
    if (st != OQ_OK)
        return st;
    sh->batch = 1;
    int r = 0;
    for (int i = 0; i < sh->nb; i++) {
        sh->batch *= (size_t)sh->bdims[i];
        dims[r++] = sh->bdims[i];
    }
    if (!sh->a_vec)
        dims[r++] = (int64_t)sh->m;
    if (!sh->b_vec)
        dims[r++] = (int64_t)sh->n;
    *ndim = r;
    return OQ_OK;
}

static oq_status matmul_prepare(oq_op_node *n)
{
    if (n->n_inputs != 2 || n->n_outputs != 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "MatMul takes two inputs and one output");
    gemm_state *s;
    oq_status st = state_new(n, &s);
    if (st != OQ_OK)
        return st;
    n->state = s;
    const oq_tensor *b = n->consts[1];
    if (b && b->dtype == OQ_FLOAT && b->ndim >= 2) {
        size_t k = (size_t)b->dims[b->ndim - 2], nn = (size_t)b->dims[b->ndim - 1];
        size_t count = k > 0 && nn > 0 ? (size_t)oq_tensor_numel(b) / (k * nn) : 0;
        s->packed_size = oq_f32_gemm_packed_b_size(s->v, k, nn);
        s->packed_b = oq_aligned_alloc(count * s->packed_size * sizeof(float) + 64);
        if (!s->packed_b)
            return oq_error(OQ_E_NOMEM, "out of memory packing MatMul weights");
        for (size_t t = 0; t < count; t++)
            oq_f32_gemm_pack_b(s->v, k, nn, (const float *)b->data + t * k * nn, nn, 1,
                               s->packed_b + t * s->packed_size);
        s->pk = k;
        s->pn = nn;
    }
    return OQ_OK;
}

static oq_status matmul_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st;
    if ((st = oq_check_input(n, in, 0, OQ_FLOAT, OQ_UNDEFINED)) || (st = oq_check_input(n, in, 1, OQ_FLOAT, OQ_UNDEFINED)))
        return st;
    mm_shape sh;
    int nd;
    int64_t dims[OQ_MAX_DIMS + 2];
    if (in[0]->ndim > OQ_MAX_DIMS || in[1]->ndim > OQ_MAX_DIMS)
        return oq_op_error(n, OQ_E_SHAPE, "rank too large");
    if ((st = mm_shapes(n, in[0], in[1], &sh, &nd, dims)) != OQ_OK)
        return st;
    oq_set_shape(out[0], OQ_FLOAT, nd, dims);
    return OQ_OK;
}

/* Offset (in matrices) of the operand feeding output batch t, for an operand whose
 * batch dims (right-aligned under the output's nb dims) are dims[0..nd). */
static size_t bcast_index(size_t t, int nb, const int64_t *out_dims, int nd, const int64_t *dims)
{
    size_t idx = 0, mul = 1;
    for (int i = nb - 1; i >= 0; i--) {
        size_t o = (size_t)out_dims[i];
        size_t coord = t % o;
        t /= o;
        int j = i - (nb - nd);
        if (j >= 0) {
            size_t d = (size_t)dims[j];
            idx += (d == 1 ? 0 : coord) * mul;
            mul *= d;
        }
    }
    return idx;
}

static oq_status matmul_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    gemm_state *s = n->state;
    const oq_tensor *a = in[0], *b = in[1];
    mm_shape sh;
    int nd;
    int64_t dims[OQ_MAX_DIMS + 2];
    oq_status st = mm_shapes(n, a, b, &sh, &nd, dims);
    if (st != OQ_OK)
        return st;
    size_t m = sh.m, k = sh.k, nn = sh.n;
    int na = a->ndim > 2 ? a->ndim - 2 : 0, nbr = b->ndim > 2 ? b->ndim - 2 : 0;
    size_t b_count = 1;
    for (int i = 0; i < nbr; i++)
        b_count *= (size_t)b->dims[i];
    bool packed = s->packed_b && n->consts[1] && b->data == n->consts[1]->data && s->pk == k && s->pn == nn;

    oq_f32_gemm_args g = oq_f32_gemm_args_init(m, nn, k);
    g.a.data = a->data;
    g.a.rs = k;
    g.a.cs = 1;
    g.c = out[0]->data;
    g.ldc = nn;
    if (packed)
        g.b.packed = s->packed_b;
    else {
        g.b.data = b->data;
        g.b.rs = nn;
        g.b.cs = 1;
    }
    if (b_count == 1) {
        /* One right matrix for every batch: fold the batches into M (A and C are contiguous). */
        g.m = m * sh.batch;
        return run_gemm(n, s, &g);
    }
    g.batch = sh.batch;
    size_t *off = oq_scratch_get(&s->offsets, 3 * sh.batch * sizeof(size_t));
    if (!off)
        return oq_error(OQ_E_NOMEM, "out of memory");
    size_t bsize = packed ? s->packed_size : k * nn;
    for (size_t t = 0; t < sh.batch; t++) {
        off[t] = bcast_index(t, sh.nb, sh.bdims, na, a->dims) * m * k;
        off[sh.batch + t] = bcast_index(t, sh.nb, sh.bdims, nbr, b->dims) * bsize;
    }
    g.a.offset = off;
    g.b.offset = off + sh.batch;
    g.c_stride = m * nn;
    return run_gemm(n, s, &g);
}

const oq_op_def oq_op_matmul = {matmul_prepare, matmul_infer, matmul_run, gemm_state_destroy};
