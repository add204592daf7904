/* ops/attention: onnxq.QkvAttention, the session-only node passes/fuse_attention.c
 * makes of a self-attention block over a packed QKV projection. Input x holds, as
 * Reshape(x, qkv_shape) would read it, [B, S, 3, H, D]: per row the H heads of Q,
 * then of K, then of V. Output: Reshape(softmax(Q K^T op scale) V laid out
 * [B, S, H, D], out_shape). Attributes: qkv_shape (5 ints, Reshape rules),
 * out_shape (Reshape rules against [B, S, H, D]), scale = [value, 1 if the scores
 * are divided by it else 0]. One task per (batch, head): the f32 GEMM reads Q, K
 * and V in place from x's rows, the scores stay in the thread's scratch. */
#include "kernels/f32-gemm/gemm.h"
#include "kernels/f32-vmath/vmath.h"
#include "ops/elementwise.h"

#include <math.h>
#include <stdlib.h>

typedef struct attn_state {
    const oq_f32_gemm_variant *v;
    int64_t qkv_shape[5], out_shape[8];
    size_t out_rank;
    float scale;
    bool divides;
    oq_scratch ws; /* grown per run */
} attn_state;

static void attn_destroy(void *p)
{
    attn_state *s = p;
    if (!s)
        return;
    oq_scratch_free(&s->ws);
    free(s);
}

static oq_status attn_prepare(oq_op_node *n)
{
    if (n->n_inputs != 1 || n->n_outputs != 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "QkvAttention takes one input and one output");
    const int64_t *q = NULL, *o = NULL;
    const float *sc = NULL;
    size_t nq = oq_node_attr_ints(n->node, "qkv_shape", &q), no = oq_node_attr_ints(n->node, "out_shape", &o);
    size_t ns = oq_node_attr_floats(n->node, "scale", &sc);
    if (nq != 5 || q[2] != 3 || q[3] <= 0 || q[4] <= 0 || no == 0 || no > 8 || ns != 2)
        return oq_op_error(n, OQ_E_INVALID_ARG,
                           "QkvAttention needs qkv_shape [B, S, 3, H, D] (H, D > 0), out_shape (1 to 8 dims) and scale "
                           "[value, divides]");
    attn_state *s = calloc(1, sizeof *s);
    if (!s)
        return oq_error(OQ_E_NOMEM, "out of memory");
    s->v = oq_f32_gemm_default();
    memcpy(s->qkv_shape, q, sizeof s->qkv_shape);
    memcpy(s->out_shape, o, no * sizeof *o);
    s->out_rank = no;
    s->scale = sc[0];
    s->divides = sc[1] != 0.0f;
    n->state = s;
    return OQ_OK;
}

/* Reshape's rule (allowzero 0): 0 copies the input dim, one -1 takes the rest. */
static bool resolve(const int64_t *t, size_t rank, const int64_t *in, size_t in_rank, int64_t total, int64_t *out)
{
    int64_t known = 1;
    size_t infer = SIZE_MAX;
    for (size_t i = 0; i < rank; i++) {
        int64_t d = t[i];
        if (d == 0) {
            if (i >= in_rank)
                return false;
            d = in[i];
        }
        if (d == -1) {
            if (infer != SIZE_MAX)
                return false;
            infer = i;
            continue;
        }
        if (d < 0)
            return false;
        out[i] = d;
        known *= d;
    }
    if (infer != SIZE_MAX) {
        if (known == 0 || total % known)
            return false;
        out[infer] = total / known;
    } else if (known != total)
        return false;
    return true;
}

/* dims[5] = [B, S, 3, H, D] of x; out dims (rank s->out_rank). */
static oq_status attn_shapes(const oq_op_node *n, const attn_state *s, const oq_tensor *x, int64_t *qkv, int64_t *out)
{
    if (!x || x->dtype != OQ_FLOAT)
        return oq_op_error(n, OQ_E_TYPE, "input must be float, not %s", x ? oq_dtype_name(x->dtype) : "missing");
    int64_t total = oq_tensor_numel(x);
    if (!resolve(s->qkv_shape, 5, x->dims, (size_t)x->ndim, total, qkv) || qkv[2] != 3)
        return oq_op_error(n, OQ_E_SHAPE, "input of %lld values does not reshape to [B, S, 3, %lld, %lld]",
                           (long long)total, (long long)s->qkv_shape[3], (long long)s->qkv_shape[4]);
    int64_t mid[4] = {qkv[0], qkv[1], qkv[3], qkv[4]};
    if (!resolve(s->out_shape, s->out_rank, mid, 4, total / 3, out))
        return oq_op_error(n, OQ_E_SHAPE, "attention output [%lld, %lld, %lld, %lld] does not reshape to out_shape",
                           (long long)mid[0], (long long)mid[1], (long long)mid[2], (long long)mid[3]);
    return OQ_OK;
}

static oq_status attn_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    int64_t qkv[5], od[8];
    oq_status st = attn_shapes(n, n->state, in[0], qkv, od);
    if (st == OQ_OK)
        oq_set_shape(out[0], OQ_FLOAT, (int)((attn_state *)n->state)->out_rank, od);
    return st;
}

typedef struct attn_job {
    const attn_state *s;
    const oq_f32_vmath_table *vm;
    const float *x;
    float *y;
    size_t batch, seq, heads, dim;
    float alpha;  /* folded into the first product */
    bool divide;  /* divide the scores by s->scale before the softmax instead */
    uint8_t *ws;  /* per thread: scores, then GEMM workspace */
    size_t ws_stride, gemm_ws_offset;
} attn_job;

static oq_f32_gemm_args scores_args(size_t seq, size_t dim, size_t row)
{
    oq_f32_gemm_args g = oq_f32_gemm_args_init(seq, seq, dim);
    g.a.rs = row; /* Q: rows of x */
    g.a.cs = 1;
    g.b.rs = 1; /* K^T: element (p, j) is K[j][p] */
    g.b.cs = row;
    return g;
}

static oq_f32_gemm_args context_args(size_t seq, size_t dim, size_t row, size_t out_row)
{
    oq_f32_gemm_args g = oq_f32_gemm_args_init(seq, dim, seq);
    g.a.rs = seq; /* probabilities */
    g.a.cs = 1;
    g.b.rs = row; /* V: rows of x */
    g.b.cs = 1;
    g.ldc = out_row;
    return g;
}

static void attn_task(void *ctx, size_t task, size_t thread)
{
    const attn_job *j = ctx;
    size_t b = task / j->heads, h = task % j->heads, seq = j->seq, dim = j->dim, e = j->heads * dim, row = 3 * e;
    const float *xb = j->x + b * seq * row + h * dim;
    float *scores = (float *)(j->ws + thread * j->ws_stride);
    void *gws = j->ws + thread * j->ws_stride + j->gemm_ws_offset;

    oq_f32_gemm_args g = scores_args(seq, dim, row);
    g.a.data = xb;
    g.b.data = xb + e;
    g.c = scores;
    g.alpha = j->alpha;
    oq_f32_gemm_run(j->s->v, &g, gws, NULL);

    for (size_t q = 0; q < seq; q++) {
        float *r = scores + q * seq;
        if (j->divide) {
            float c = j->s->scale;
            OQ_EW_BLOCKED(seq, r[i] = r[i] / c);
        }
        oq_softmax_row_f32(j->vm, r, r, seq, j->vm->vmax(r, seq));
    }

    g = context_args(seq, dim, row, e);
    g.a.data = scores;
    g.b.data = xb + 2 * e;
    g.c = j->y + b * seq * e + h * dim;
    oq_f32_gemm_run(j->s->v, &g, gws, NULL);
}

static size_t up64(size_t x) { return (x + 63) / 64 * 64; }

static oq_status attn_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    attn_state *s = n->state;
    int64_t qkv[5], od[8];
    oq_status st = attn_shapes(n, s, in[0], qkv, od);
    if (st != OQ_OK)
        return st;
    attn_job j = {.s = s, .vm = oq_f32_vmath(), .x = in[0]->data, .y = out[0]->data};
    j.batch = (size_t)qkv[0];
    j.seq = (size_t)qkv[1];
    j.heads = (size_t)qkv[3];
    j.dim = (size_t)qkv[4];
    if (!j.batch || !j.seq)
        return OQ_OK;
    /* x / c equals x * (1 / c) when 1 / c is a power of two: fold it into the product */
    int ex;
    bool pow2 = s->divides && frexpf(s->scale, &ex) == 0.5f && ex > -120 && ex < 120;
    j.divide = s->divides && !pow2;
    j.alpha = !s->divides ? s->scale : pow2 ? 1.0f / s->scale : 1.0f;
    size_t row = 3 * j.heads * j.dim;
    oq_f32_gemm_args g1 = scores_args(j.seq, j.dim, row), g2 = context_args(j.seq, j.dim, row, j.heads * j.dim);
    size_t w1 = oq_f32_gemm_workspace_size(s->v, &g1, 1), w2 = oq_f32_gemm_workspace_size(s->v, &g2, 1);
    j.gemm_ws_offset = up64(j.seq * j.seq * sizeof(float));
    j.ws_stride = j.gemm_ws_offset + up64(w1 > w2 ? w1 : w2);
    size_t threads = (size_t)oq_threadpool_size(n->tp), bytes = j.ws_stride * threads + 64;
    void *ws = oq_scratch_get(&s->ws, bytes);
    if (!ws)
        return oq_error(OQ_E_NOMEM, "out of memory for the workspace of '%s'", n->label);
    j.ws = (uint8_t *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    oq_parallel_for(n->tp, j.batch * j.heads, attn_task, &j);
    return OQ_OK;
}

const oq_op_def oq_op_qkv_attention = {attn_prepare, attn_infer, attn_run, attn_destroy};
