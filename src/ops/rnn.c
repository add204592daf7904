/* ops/rnn: the recurrent operators RNN, GRU and LSTM (float32), all directions,
 * layouts, optional inputs and outputs, and com.microsoft DynamicQuantizeLSTM (what
 * onnxruntime's quantize_dynamic writes for an LSTM: int8 W and R, stored transposed,
 * with per-direction or per-gate-column scales). The input projection X·W^T runs once
 * for all time steps; each step then adds H·R^T and applies the gate equations.
 * Float products run the f32 GEMM on W^T and R^T packed once (a small local kernel
 * over transposed weights serves GRU's split recurrent product); the quantized
 * ones quantize X (all steps at once) and each step's H to u8 as DynamicQuantizeLinear
 * does, and run the exact u8s8 GEMM with packed weights, scaled to float. */
#include "kernels/f32-gemm/gemm.h"
#include "kernels/f32-vmath/vmath.h"
#include "kernels/q8/q8.h"
#include "ops/op.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum cell_kind { CELL_RNN, CELL_GRU, CELL_LSTM } cell_kind;

typedef enum act_kind {
    ACT_SIGMOID, ACT_TANH, ACT_RELU, ACT_AFFINE, ACT_LEAKYRELU, ACT_THRESHOLDEDRELU, ACT_SCALEDTANH,
    ACT_HARDSIGMOID, ACT_ELU, ACT_SOFTSIGN, ACT_SOFTPLUS
} act_kind;

typedef struct activation {
    act_kind kind;
    float alpha, beta;
} activation;

/* DynamicQuantizeLSTM: W or R packed per direction (K x N = 4H columns). */
typedef struct q8_weights {
    const void *src; /* the constant tensor data the panels were packed from; NULL: repack per run */
    uint8_t *packed; /* D panels of packed_size bytes */
    size_t packed_size;
    int32_t *colsum, *zp; /* D x N; zero points in the kernel's (s8) domain */
    float *scale;         /* D x N */
} q8_weights;

/* Float W^T or R^T (K x N = G*H columns) packed for the f32 GEMM, per direction. */
typedef struct f32_weights {
    const void *src; /* the constant tensor data the panels were packed from; NULL: repack per run */
    float *packed;   /* D panels of packed_size floats */
    size_t packed_size;
} f32_weights;

typedef struct rnn_state {
    cell_kind cell;
    bool quant; /* DynamicQuantizeLSTM */
    const oq_f32_gemm_variant *fv;
    f32_weights fw, fr;
    oq_scratch fws; /* f32 GEMM workspace */
    const oq_q8_gemm_variant *v;
    q8_weights qw, qr;
    oq_scratch qbuf; /* quantized X and H, column scales, GEMM workspace */
    int n_dir, gates, n_act; /* n_act: activations per direction */
    bool reverse_only, input_forget, linear_before_reset, has_clip;
    float clip;
    int64_t hidden, layout;
    activation act[2][3];
    oq_scratch buf; /* XW, gates, states (floats), grown as needed */
} rnn_state;

/* ---- activations ---- */
static const struct {
    const char *name;
    act_kind kind;
    bool uses_alpha, uses_beta;
    float alpha, beta;
} act_table[] = {
    {"Sigmoid", ACT_SIGMOID, false, false, 0, 0},
    {"Tanh", ACT_TANH, false, false, 0, 0},
    {"Relu", ACT_RELU, false, false, 0, 0},
    {"Affine", ACT_AFFINE, true, true, 1.0f, 0.0f},
    {"LeakyRelu", ACT_LEAKYRELU, true, false, 0.01f, 0},
    {"ThresholdedRelu", ACT_THRESHOLDEDRELU, true, false, 1.0f, 0},
    {"ScaledTanh", ACT_SCALEDTANH, true, true, 1.0f, 1.0f},
    {"HardSigmoid", ACT_HARDSIGMOID, true, true, 0.2f, 0.5f},
    {"Elu", ACT_ELU, true, false, 1.0f, 0},
    {"Softsign", ACT_SOFTSIGN, false, false, 0, 0},
    {"Softplus", ACT_SOFTPLUS, false, false, 0, 0},
};

static void act_apply(const activation *a, float *x, int64_t n)
{
    switch (a->kind) {
    case ACT_SIGMOID:
        oq_f32_vmath()->vsigmoid(x, x, (size_t)n);
        break;
    case ACT_TANH:
        oq_f32_vmath()->vtanh(x, x, (size_t)n);
        break;
    case ACT_RELU:
        for (int64_t i = 0; i < n; i++)
            x[i] = x[i] > 0 ? x[i] : 0;
        break;
    case ACT_AFFINE:
        for (int64_t i = 0; i < n; i++)
            x[i] = a->alpha * x[i] + a->beta;
        break;
    case ACT_LEAKYRELU:
        for (int64_t i = 0; i < n; i++)
            x[i] = x[i] >= 0 ? x[i] : a->alpha * x[i];
        break;
    case ACT_THRESHOLDEDRELU:
        for (int64_t i = 0; i < n; i++)
            x[i] = x[i] > a->alpha ? x[i] : 0;
        break;
    case ACT_SCALEDTANH:
        for (int64_t i = 0; i < n; i++)
            x[i] = a->alpha * tanhf(a->beta * x[i]);
        break;
    case ACT_HARDSIGMOID:
        for (int64_t i = 0; i < n; i++) {
            float v = a->alpha * x[i] + a->beta;
            x[i] = v < 0 ? 0 : v > 1 ? 1 : v;
        }
        break;
    case ACT_ELU:
        for (int64_t i = 0; i < n; i++)
            x[i] = x[i] >= 0 ? x[i] : a->alpha * (expf(x[i]) - 1.0f);
        break;
    case ACT_SOFTSIGN:
        for (int64_t i = 0; i < n; i++)
            x[i] = x[i] / (1.0f + fabsf(x[i]));
        break;
    case ACT_SOFTPLUS:
        for (int64_t i = 0; i < n; i++)
            x[i] = x[i] > 20.0f ? x[i] : log1pf(expf(x[i]));
        break;
    }
}

/* ---- matmul: C[M,N] (+)= A[M,K] · BT[K,N] ---- */
typedef struct mm_args {
    const float *a, *bt;
    float *c;
    size_t lda, ldb, ldc;
    int64_t m, n, k;
    bool acc;
    int64_t row_blocks, col_blocks;
} mm_args;

#define MM_ROWS 4
#define MM_COLS 256

static void mm_block(const mm_args *p, int64_t m0, int64_t m1, int64_t n0, int64_t n1)
{
    int64_t nn = n1 - n0;
    int64_t m = m0;
    for (; m + MM_ROWS <= m1; m += MM_ROWS) {
        float *c0 = p->c + (size_t)m * p->ldc + n0, *c1 = c0 + p->ldc, *c2 = c1 + p->ldc, *c3 = c2 + p->ldc;
        const float *a0 = p->a + (size_t)m * p->lda, *a1 = a0 + p->lda, *a2 = a1 + p->lda, *a3 = a2 + p->lda;
        if (!p->acc) {
            memset(c0, 0, (size_t)nn * sizeof *c0);
            memset(c1, 0, (size_t)nn * sizeof *c1);
            memset(c2, 0, (size_t)nn * sizeof *c2);
            memset(c3, 0, (size_t)nn * sizeof *c3);
        }
        for (int64_t k = 0; k < p->k; k++) {
            const float *b = p->bt + (size_t)k * p->ldb + n0;
            float x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];
            for (int64_t j = 0; j < nn; j++) {
                float bv = b[j];
                c0[j] += x0 * bv;
                c1[j] += x1 * bv;
                c2[j] += x2 * bv;
                c3[j] += x3 * bv;
            }
        }
    }
    for (; m < m1; m++) {
        float *c0 = p->c + (size_t)m * p->ldc + n0;
        const float *a0 = p->a + (size_t)m * p->lda;
        if (!p->acc)
            memset(c0, 0, (size_t)nn * sizeof *c0);
        for (int64_t k = 0; k < p->k; k++) {
            const float *b = p->bt + (size_t)k * p->ldb + n0;
            float x0 = a0[k];
            for (int64_t j = 0; j < nn; j++)
                c0[j] += x0 * b[j];
        }
    }
}

static void mm_task(void *vp, size_t task, size_t thread)
{
    (void)thread;
    const mm_args *p = vp;
    int64_t rb = (int64_t)task / p->col_blocks, cb = (int64_t)task % p->col_blocks;
    int64_t m0 = p->m * rb / p->row_blocks, m1 = p->m * (rb + 1) / p->row_blocks;
    int64_t n0 = cb * MM_COLS, n1 = n0 + MM_COLS < p->n ? n0 + MM_COLS : p->n;
    mm_block(p, m0, m1, n0, n1);
}

static void matmul(oq_threadpool *tp, const float *a, size_t lda, const float *bt, size_t ldb, float *c, size_t ldc,
                   int64_t m, int64_t n, int64_t k, bool acc)
{
    if (m <= 0 || n <= 0)
        return;
    mm_args p = {a, bt, c, lda, ldb, ldc, m, n, k, acc, 1, (n + MM_COLS - 1) / MM_COLS};
    int th = oq_threadpool_size(tp);
    double work = (double)m * (double)n * (double)k;
    if (th > 1 && work > 65536.0) {
        int64_t want = (int64_t)th * 4;
        p.row_blocks = (want + p.col_blocks - 1) / p.col_blocks;
        if (p.row_blocks > (m + MM_ROWS - 1) / MM_ROWS)
            p.row_blocks = (m + MM_ROWS - 1) / MM_ROWS;
        if (p.row_blocks < 1)
            p.row_blocks = 1;
    }
    size_t tasks = (size_t)(p.row_blocks * p.col_blocks);
    if (th <= 1 || work <= 65536.0 || tasks == 1) {
        mm_block(&p, 0, m, 0, n);
        return;
    }
    oq_parallel_for(tp, tasks, mm_task, &p);
}

/* ---- attributes ---- */
static oq_status parse_attrs(oq_op_node *n, cell_kind cell, rnn_state *s)
{
    s->cell = cell;
    s->gates = cell == CELL_RNN ? 1 : cell == CELL_GRU ? 3 : 4;
    s->n_act = cell == CELL_RNN ? 1 : cell == CELL_GRU ? 2 : 3;
    const char *dir = oq_node_attr_string(n->node, "direction", "forward");
    if (!strcmp(dir, "forward"))
        s->n_dir = 1;
    else if (!strcmp(dir, "reverse"))
        s->n_dir = 1, s->reverse_only = true;
    else if (!strcmp(dir, "bidirectional"))
        s->n_dir = 2;
    else
        return oq_op_error(n, OQ_E_INVALID_ARG, "unknown direction '%s'", dir);
    s->hidden = oq_node_attr_int(n->node, "hidden_size", 0);
    s->layout = oq_node_attr_int(n->node, "layout", 0);
    if (s->layout != 0 && s->layout != 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "layout must be 0 or 1");
    s->input_forget = cell == CELL_LSTM && oq_node_attr_int(n->node, "input_forget", 0) != 0;
    s->linear_before_reset = cell == CELL_GRU && oq_node_attr_int(n->node, "linear_before_reset", 0) != 0;
    const oq_attr *clip = oq_node_attr(n->node, "clip");
    s->has_clip = clip != NULL;
    s->clip = clip ? clip->f : 0;
    if (s->has_clip && !(s->clip > 0))
        return oq_op_error(n, OQ_E_INVALID_ARG, "clip must be positive");

    static const act_kind defaults[3][3] = {{ACT_TANH}, {ACT_SIGMOID, ACT_TANH}, {ACT_SIGMOID, ACT_TANH, ACT_TANH}};
    const oq_attr *acts = oq_node_attr(n->node, "activations");
    const float *alphas = NULL, *betas = NULL;
    size_t n_alpha = oq_node_attr_floats(n->node, "activation_alpha", &alphas);
    size_t n_beta = oq_node_attr_floats(n->node, "activation_beta", &betas);
    size_t ia = 0, ib = 0;
    size_t given = acts ? acts->n_strings : 0;
    if (acts && given != (size_t)s->n_act && given != (size_t)(s->n_act * s->n_dir))
        return oq_op_error(n, OQ_E_INVALID_ARG, "activations has %zu entries; expected %d", given, s->n_act * s->n_dir);
    for (int d = 0; d < s->n_dir; d++)
        for (int k = 0; k < s->n_act; k++) {
            activation *a = &s->act[d][k];
            if (!acts) {
                a->kind = defaults[cell][k];
                continue;
            }
            const char *name = acts->strings[(d * s->n_act + k) % given].data;
            size_t t = 0;
            while (t < sizeof act_table / sizeof act_table[0] && strcasecmp(act_table[t].name, name ? name : ""))
                t++;
            if (t == sizeof act_table / sizeof act_table[0])
                return oq_op_error(n, OQ_E_UNSUPPORTED, "activation '%s' is not supported", name ? name : "");
            a->kind = act_table[t].kind;
            a->alpha = act_table[t].alpha;
            a->beta = act_table[t].beta;
            if (act_table[t].uses_alpha && ia < n_alpha)
                a->alpha = alphas[ia++];
            if (act_table[t].uses_beta && ib < n_beta)
                a->beta = betas[ib++];
        }
    return OQ_OK;
}

static void q8_weights_free(q8_weights *w)
{
    oq_aligned_free(w->packed);
    free(w->colsum);
    free(w->zp);
    free(w->scale);
}

static void rnn_destroy(void *p)
{
    rnn_state *s = p;
    if (!s)
        return;
    oq_scratch_free(&s->buf);
    oq_aligned_free(s->fw.packed);
    oq_aligned_free(s->fr.packed);
    oq_scratch_free(&s->fws);
    q8_weights_free(&s->qw);
    q8_weights_free(&s->qr);
    oq_scratch_free(&s->qbuf);
    free(s);
}

static oq_status rnn_prepare_common(oq_op_node *n, cell_kind cell)
{
    rnn_state *s = oq_calloc(1, sizeof *s);
    if (!s)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = parse_attrs(n, cell, s);
    if (st != OQ_OK) {
        rnn_destroy(s);
        return st;
    }
    s->fv = oq_f32_gemm_default();
    n->state = s;
    return OQ_OK;
}

static oq_status rnn_prepare(oq_op_node *n) { return rnn_prepare_common(n, CELL_RNN); }
static oq_status gru_prepare(oq_op_node *n) { return rnn_prepare_common(n, CELL_GRU); }
static oq_status lstm_prepare(oq_op_node *n) { return rnn_prepare_common(n, CELL_LSTM); }

static oq_status dqlstm_prepare(oq_op_node *n)
{
    if (oq_node_attr(n->node, "layout"))
        return oq_op_error(n, OQ_E_INVALID_ARG, "DynamicQuantizeLSTM has no layout attribute");
    oq_status st = rnn_prepare_common(n, CELL_LSTM);
    if (st != OQ_OK)
        return st;
    rnn_state *s = n->state;
    s->quant = true;
    s->v = oq_q8_gemm_default(OQ_Q8_U8S8);
    return OQ_OK;
}

/* ---- shapes ---- */
typedef struct dims3 {
    int64_t T, B, I, H, D;
} dims3;

static bool shape_is(const oq_tensor *t, int nd, int64_t a, int64_t b, int64_t c)
{
    if (t->ndim != nd)
        return false;
    int64_t want[3] = {a, b, c};
    for (int i = 0; i < nd; i++)
        if (t->dims[i] != want[i])
            return false;
    return true;
}

static bool is_q8(oq_dtype t) { return t == OQ_INT8 || t == OQ_UINT8; }

/* DynamicQuantizeLSTM inputs 8..11: scale (float) and zero point (like the weight) of
 * W (i = 8) or R (i = 10), D or D x N values each. */
static oq_status check_qparams(oq_op_node *n, const oq_tensor *const *in, size_t i, int64_t D, int64_t N)
{
    const char *what = i == 8 ? "W" : "R";
    const oq_tensor *sc = in[i], *zp = in[i + 1], *w = in[i == 8 ? 1 : 2];
    if (!sc || sc->dtype != OQ_FLOAT)
        return oq_op_error(n, OQ_E_TYPE, "%s_scale must be a float tensor", what);
    int64_t c = oq_tensor_numel(sc);
    if (c != D && c != D * N)
        return oq_op_error(n, OQ_E_SHAPE, "%s_scale has %lld values: expected %lld or %lld", what, (long long)c,
                           (long long)D, (long long)(D * N));
    for (int64_t k = 0; k < c; k++) {
        float v = ((const float *)sc->data)[k];
        if (!(v > 0.0f) || !(v < INFINITY))
            return oq_op_error(n, OQ_E_INVALID_ARG, "%s_scale[%lld] = %g is not a positive finite scale", what,
                               (long long)k, (double)v);
    }
    if (!zp || zp->dtype != w->dtype || oq_tensor_numel(zp) != c)
        return oq_op_error(n, OQ_E_TYPE, "%s_zero_point must be %s with as many values as %s_scale", what,
                           oq_dtype_name(w->dtype), what);
    return OQ_OK;
}

static oq_status check_inputs(oq_op_node *n, const rnn_state *s, const oq_tensor *const *in, dims3 *d)
{
    if (n->n_inputs < 3 || !in[0] || !in[1] || !in[2])
        return oq_op_error(n, OQ_E_INVALID_ARG, "X, W and R are required");
    if (s->quant && n->n_inputs != 12)
        return oq_op_error(n, OQ_E_INVALID_ARG, "DynamicQuantizeLSTM takes 12 inputs, got %zu", n->n_inputs);
    for (size_t i = 0; i < n->n_inputs && i < 8; i++) {
        bool weight = s->quant && (i == 1 || i == 2);
        if (in[i] && i != 4 && !weight && in[i]->dtype != OQ_FLOAT)
            return oq_op_error(n, OQ_E_TYPE, "input %zu is %s; only float is supported", i, oq_dtype_name(in[i]->dtype));
        if (weight && !is_q8(in[i]->dtype))
            return oq_op_error(n, OQ_E_TYPE, "%s is %s; expected int8 or uint8", i == 1 ? "W" : "R",
                               oq_dtype_name(in[i]->dtype));
    }
    const oq_tensor *x = in[0], *w = in[1], *r = in[2];
    if (x->ndim != 3)
        return oq_op_error(n, OQ_E_SHAPE, "X must be 3-D");
    d->T = s->layout ? x->dims[1] : x->dims[0];
    d->B = s->layout ? x->dims[0] : x->dims[1];
    d->I = x->dims[2];
    d->D = s->n_dir;
    /* R is [D, G*H, H], or [D, H, G*H] (transposed) in DynamicQuantizeLSTM */
    d->H = s->hidden > 0 ? s->hidden : (r->ndim == 3 ? r->dims[s->quant ? 1 : 2] : 0);
    int64_t G = s->gates, H = d->H, D = d->D, B = d->B;
    if (H <= 0)
        return oq_op_error(n, OQ_E_INVALID_ARG, "hidden_size is unknown");
    if (s->quant) {
        if (!shape_is(w, 3, D, d->I, G * H))
            return oq_op_error(n, OQ_E_SHAPE, "W must have shape [%lld,%lld,%lld]", (long long)D, (long long)d->I,
                               (long long)(G * H));
        if (!shape_is(r, 3, D, H, G * H))
            return oq_op_error(n, OQ_E_SHAPE, "R must have shape [%lld,%lld,%lld]", (long long)D, (long long)H,
                               (long long)(G * H));
        oq_status st = check_qparams(n, in, 8, D, G * H);
        if (st == OQ_OK)
            st = check_qparams(n, in, 10, D, G * H);
        if (st != OQ_OK)
            return st;
    } else {
        if (!shape_is(w, 3, D, G * H, d->I))
            return oq_op_error(n, OQ_E_SHAPE, "W must have shape [%lld,%lld,%lld]", (long long)D, (long long)(G * H),
                               (long long)d->I);
        if (!shape_is(r, 3, D, G * H, H))
            return oq_op_error(n, OQ_E_SHAPE, "R must have shape [%lld,%lld,%lld]", (long long)D, (long long)(G * H),
                               (long long)H);
    }
    if (n->n_inputs > 3 && in[3] && !shape_is(in[3], 2, D, 2 * G * H, 0))
        return oq_op_error(n, OQ_E_SHAPE, "B must have shape [%lld,%lld]", (long long)D, (long long)(2 * G * H));
    if (n->n_inputs > 4 && in[4]) {
        const oq_tensor *sl = in[4];
        if (sl->dtype != OQ_INT32 || sl->ndim != 1 || sl->dims[0] != B)
            return oq_op_error(n, OQ_E_SHAPE, "sequence_lens must be int32 of length %lld", (long long)B);
        for (int64_t b = 0; b < B; b++) {
            int32_t v = ((const int32_t *)sl->data)[b];
            if (v < 0 || v > d->T)
                return oq_op_error(n, OQ_E_INVALID_ARG, "sequence_lens[%lld] = %d is out of range", (long long)b, v);
        }
    }
    for (size_t i = 5; i < 7 && i < n->n_inputs; i++) {
        if (i == 6 && s->cell != CELL_LSTM)
            break;
        if (in[i] && !(s->layout ? shape_is(in[i], 3, B, D, H) : shape_is(in[i], 3, D, B, H)))
            return oq_op_error(n, OQ_E_SHAPE, "%s has the wrong shape", i == 5 ? "initial_h" : "initial_c");
    }
    if (s->cell == CELL_LSTM && n->n_inputs > 7 && in[7] && !shape_is(in[7], 2, D, 3 * H, 0))
        return oq_op_error(n, OQ_E_SHAPE, "P must have shape [%lld,%lld]", (long long)D, (long long)(3 * H));
    size_t max_in = s->quant ? 12 : s->cell == CELL_LSTM ? 8 : 6;
    if (n->n_inputs > max_in)
        return oq_op_error(n, OQ_E_INVALID_ARG, "too many inputs (%zu)", n->n_inputs);
    return OQ_OK;
}

static oq_status rnn_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    rnn_state *s = n->state;
    dims3 d;
    oq_status st = check_inputs(n, s, in, &d);
    if (st != OQ_OK)
        return st;
    size_t max_out = s->cell == CELL_LSTM ? 3 : 2;
    if (n->n_outputs > max_out)
        return oq_op_error(n, OQ_E_INVALID_ARG, "too many outputs (%zu)", n->n_outputs);
    int64_t y[4], yh[3];
    if (s->layout) {
        y[0] = d.B, y[1] = d.T, y[2] = d.D, y[3] = d.H;
        yh[0] = d.B, yh[1] = d.D, yh[2] = d.H;
    } else {
        y[0] = d.T, y[1] = d.D, y[2] = d.B, y[3] = d.H;
        yh[0] = d.D, yh[1] = d.B, yh[2] = d.H;
    }
    for (size_t o = 0; o < n->n_outputs; o++) {
        if (o == 0)
            oq_set_shape(out[o], OQ_FLOAT, 4, y);
        else
            oq_set_shape(out[o], OQ_FLOAT, 3, yh);
    }
    return OQ_OK;
}

static inline void clip_vec(float *x, int64_t n, float c)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = x[i] < -c ? -c : x[i] > c ? c : x[i];
}

/* ---- DynamicQuantizeLSTM: packed int8 weights, u8 activations ---- */
static size_t up64(size_t x) { return (x + 63) / 64 * 64; }

/* Packs W (idx 1) or R (idx 2), [D, K, N] int8/uint8, per direction with its column
 * scales and zero points. Constant weights are packed once and kept. */
static oq_status q8_pack(oq_op_node *n, rnn_state *s, q8_weights *qw, size_t idx, const oq_tensor *const *in,
                         int64_t D, int64_t K, int64_t N)
{
    const oq_tensor *t = in[idx], *sc = in[idx == 1 ? 8 : 10], *zp = in[idx == 1 ? 9 : 11];
    bool constant = n->consts[idx] && n->consts[idx == 1 ? 8 : 10] && n->consts[idx == 1 ? 9 : 11];
    if (qw->src && qw->src == t->data)
        return OQ_OK;
    size_t psize = oq_q8_packed_b_size(s->v, (size_t)K, (size_t)N);
    if (!qw->packed || qw->packed_size != psize) {
        q8_weights_free(qw);
        memset(qw, 0, sizeof *qw);
        qw->packed = oq_aligned_alloc((size_t)D * psize + 64);
        qw->colsum = malloc((size_t)(D * N) * sizeof(int32_t));
        qw->zp = malloc((size_t)(D * N) * sizeof(int32_t));
        qw->scale = malloc((size_t)(D * N) * sizeof(float));
        if (!qw->packed || !qw->colsum || !qw->zp || !qw->scale) {
            q8_weights_free(qw);
            memset(qw, 0, sizeof *qw);
            return oq_error(OQ_E_NOMEM, "out of memory packing the weights of '%s'", n->label);
        }
        qw->packed_size = psize;
    }
    uint8_t x = t->dtype == OQ_UINT8 ? 0x80 : 0;
    bool per_col = oq_tensor_numel(sc) != D;
    for (int64_t d = 0; d < D; d++) {
        oq_q8_pack_b(s->v, (size_t)K, (size_t)N, (const uint8_t *)t->data + d * K * N, (size_t)N, 1, x,
                     qw->packed + (size_t)d * psize, qw->colsum + d * N);
        for (int64_t j = 0; j < N; j++) {
            size_t q = (size_t)(per_col ? d * N + j : d);
            qw->scale[d * N + j] = ((const float *)sc->data)[q];
            qw->zp[d * N + j] = zp->dtype == OQ_INT8 ? ((const int8_t *)zp->data)[q]
                                                      : (int32_t)((const uint8_t *)zp->data)[q] - 128;
        }
    }
    qw->src = constant ? t->data : NULL;
    return OQ_OK;
}

static oq_q8_gemm_args q8_args(const q8_weights *qw, int64_t d, size_t m, size_t k, size_t nn)
{
    oq_q8_gemm_args g = oq_q8_gemm_args_init(m, nn, k);
    g.a_rs = k;
    g.a_cs = 1;
    g.b_packed = qw->packed + (size_t)d * qw->packed_size;
    g.b_colsum = qw->colsum + d * (int64_t)nn;
    g.b_zp_cols = qw->zp + d * (int64_t)nn;
    g.b_zp = g.b_zp_cols[0];
    g.scale_mode = OQ_Q8_PER_COL;
    g.out = OQ_Q8_OUT_F32;
    g.ldc = nn;
    return g;
}

/* c[m, nn] = dequantized (x quantized to u8 as DynamicQuantizeLinear does) · W[d]:
 * the exact integer product scaled by x's scale times each column's. */
static void q8_product(oq_op_node *n, const rnn_state *s, const q8_weights *qw, int64_t d, const float *x, size_t m,
                       size_t k, size_t nn, uint8_t *xq, float *scales, void *ws, float *c)
{
    float sa;
    int32_t za;
    oq_quantize_dynamic_u8(x, m * k, xq, &sa, &za, n->tp);
    for (size_t j = 0; j < nn; j++)
        scales[j] = sa * qw->scale[(size_t)d * nn + j];
    oq_q8_gemm_args g = q8_args(qw, d, m, k, nn);
    g.a = xq;
    g.a_zp = za;
    g.scale = scales;
    g.c = c;
    oq_q8_gemm_run(s->v, &g, ws, n->tp);
}

/* Packs the weights and sizes the scratch of a DynamicQuantizeLSTM run. */
static oq_status q8_setup(oq_op_node *n, rnn_state *s, const oq_tensor *const *in, const dims3 *dd, uint8_t **xq,
                          uint8_t **hq, float **scales, void **ws)
{
    const int64_t T = dd->T, B = dd->B, I = dd->I, H = dd->H, D = dd->D, GH = s->gates * H;
    oq_status st = q8_pack(n, s, &s->qw, 1, in, D, I, GH);
    if (st == OQ_OK)
        st = q8_pack(n, s, &s->qr, 2, in, D, H, GH);
    if (st != OQ_OK)
        return st;
    size_t th = (size_t)oq_threadpool_size(n->tp);
    oq_q8_gemm_args gx = q8_args(&s->qw, 0, (size_t)(T * B), (size_t)I, (size_t)GH);
    oq_q8_gemm_args gh = q8_args(&s->qr, 0, (size_t)B, (size_t)H, (size_t)GH);
    size_t wx = oq_q8_gemm_workspace_size(s->v, &gx, th), wh = oq_q8_gemm_workspace_size(s->v, &gh, th);
    size_t need = up64((size_t)(T * B * I)) + up64((size_t)(B * H)) + up64((size_t)GH * sizeof(float)) +
                  (wx > wh ? wx : wh) + 64;
    uint8_t *p = oq_scratch_get(&s->qbuf, need);
    if (!p)
        return oq_error(OQ_E_NOMEM, "out of memory for the workspace of '%s'", n->label);
    *xq = p;
    p += up64((size_t)(T * B * I));
    *hq = p;
    p += up64((size_t)(B * H));
    *scales = (float *)p;
    p += up64((size_t)GH * sizeof(float));
    *ws = p;
    return OQ_OK;
}

/* ---- float products on packed weights ---- */
/* Packs W (idx 1, [D, N, K]) or R (idx 2) transposed per direction: B(p, j) = w[j*K + p]. */
static oq_status f32_pack(oq_op_node *n, rnn_state *s, f32_weights *fw, size_t idx, const oq_tensor *t, int64_t D,
                          int64_t K, int64_t N)
{
    if (fw->src && fw->src == t->data)
        return OQ_OK;
    size_t psize = oq_f32_gemm_packed_b_size(s->fv, (size_t)K, (size_t)N);
    if (!fw->packed || fw->packed_size != psize) {
        oq_aligned_free(fw->packed);
        fw->packed = oq_aligned_alloc((size_t)D * psize * sizeof(float) + 64);
        fw->packed_size = fw->packed ? psize : 0;
        if (!fw->packed)
            return oq_error(OQ_E_NOMEM, "out of memory packing the weights of '%s'", n->label);
    }
    for (int64_t d = 0; d < D; d++)
        oq_f32_gemm_pack_b(s->fv, (size_t)K, (size_t)N, (const float *)t->data + d * N * K, 1, (size_t)K,
                           fw->packed + (size_t)d * psize);
    fw->src = n->consts[idx] ? t->data : NULL;
    return OQ_OK;
}

static oq_f32_gemm_args f32_args(const f32_weights *fw, int64_t d, const float *a, size_t m, size_t k, size_t nn,
                                 float *c)
{
    oq_f32_gemm_args g = oq_f32_gemm_args_init(m, nn, k);
    g.a.data = a;
    g.a.rs = k;
    g.a.cs = 1;
    g.b.packed = fw->packed + (size_t)d * fw->packed_size;
    g.c = c;
    g.ldc = nn;
    return g;
}

/* c[m, nn] = a[m, k] · W[d]^T */
static void f32_product(oq_op_node *n, const rnn_state *s, const f32_weights *fw, int64_t d, const float *a, size_t m,
                        size_t k, size_t nn, float *c)
{
    oq_f32_gemm_args g = f32_args(fw, d, a, m, k, nn, c);
    oq_f32_gemm_run(s->fv, &g, s->fws.p, n->tp);
}

/* Packs W^T (and R^T unless GRU's split product needs R transposed by hand) and sizes the GEMM workspace. */
static oq_status f32_setup(oq_op_node *n, rnn_state *s, const oq_tensor *const *in, const dims3 *dd, bool pack_r)
{
    const int64_t T = dd->T, B = dd->B, I = dd->I, H = dd->H, D = dd->D, GH = s->gates * H;
    oq_status st = f32_pack(n, s, &s->fw, 1, in[1], D, I, GH);
    if (st == OQ_OK && pack_r)
        st = f32_pack(n, s, &s->fr, 2, in[2], D, H, GH);
    if (st != OQ_OK)
        return st;
    size_t th = (size_t)oq_threadpool_size(n->tp);
    oq_f32_gemm_args gx = f32_args(&s->fw, 0, NULL, (size_t)(T * B), (size_t)I, (size_t)GH, NULL);
    oq_f32_gemm_args gh = f32_args(&s->fw, 0, NULL, (size_t)B, (size_t)H, (size_t)GH, NULL);
    size_t wx = oq_f32_gemm_workspace_size(s->fv, &gx, th), wh = oq_f32_gemm_workspace_size(s->fv, &gh, th);
    size_t need = (wx > wh ? wx : wh) + 64;
    if (!oq_scratch_get(&s->fws, need))
        return oq_error(OQ_E_NOMEM, "out of memory for the workspace of '%s'", n->label);
    return OQ_OK;
}

static oq_status rnn_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    rnn_state *s = n->state;
    dims3 dd;
    oq_status st = check_inputs(n, s, in, &dd);
    if (st != OQ_OK)
        return st;
    const int64_t T = dd.T, B = dd.B, I = dd.I, H = dd.H, D = dd.D, G = s->gates, GH = G * H;
    const oq_tensor *bias = n->n_inputs > 3 ? in[3] : NULL, *seq = n->n_inputs > 4 ? in[4] : NULL;
    const oq_tensor *h0 = n->n_inputs > 5 ? in[5] : NULL;
    const oq_tensor *c0 = s->cell == CELL_LSTM && n->n_inputs > 6 ? in[6] : NULL;
    const oq_tensor *peep = s->cell == CELL_LSTM && n->n_inputs > 7 ? in[7] : NULL;
    oq_tensor *Y = n->n_outputs > 0 ? out[0] : NULL, *Yh = n->n_outputs > 1 ? out[1] : NULL;
    oq_tensor *Yc = n->n_outputs > 2 ? out[2] : NULL;
    if (Y && Y->data)
        memset(Y->data, 0, Y->nbytes);

    uint8_t *xq = NULL, *hq = NULL;
    float *qscales = NULL;
    void *qws = NULL;
    /* GRU without linear_before_reset multiplies (r ⊙ H) by R's last H columns alone: R transposed by hand */
    bool gru_split = s->cell == CELL_GRU && !s->linear_before_reset;
    if (s->quant && (st = q8_setup(n, s, in, &dd, &xq, &hq, &qscales, &qws)) != OQ_OK)
        return st;
    if (!s->quant && (st = f32_setup(n, s, in, &dd, !gru_split)) != OQ_OK)
        return st;
    /* scratch: RT [H,GH] (GRU split only), XW [T*B,GH], gates [B,GH], h [B,H], c [B,H], tmp [B,H], 2 x [GH] */
    size_t need = (size_t)((gru_split ? H * GH : 0) + T * B * GH + B * GH + 3 * B * H + 2 * GH);
    float *RT = oq_scratch_get(&s->buf, need * sizeof(float));
    if (!RT)
        return oq_error(OQ_E_NOMEM, "out of memory for %zu floats of scratch", need);
    float *XW = RT + (gru_split ? H * GH : 0), *gates = XW + T * B * GH;
    float *h = gates + B * GH, *c = h + B * H, *tmp = c + B * H, *rbh = tmp + B * H, *badd = rbh + GH;
    const float *x = in[0]->data;

    for (int64_t d = 0; d < D; d++) {
        bool rev = s->reverse_only || d == 1;
        /* XW = X · W^T + Wb (+ Rb where it adds directly), rows in X's own order */
        if (s->quant) {
            q8_product(n, s, &s->qw, d, x, (size_t)(T * B), (size_t)I, (size_t)GH, xq, qscales, qws, XW);
        } else {
            f32_product(n, s, &s->fw, d, x, (size_t)(T * B), (size_t)I, (size_t)GH, XW);
            const float *r = (const float *)in[2]->data + d * GH * H;
            for (int64_t g = 0; gru_split && g < GH; g++)
                for (int64_t k = 0; k < H; k++)
                    RT[k * GH + g] = r[g * H + k];
        }
        memset(rbh, 0, (size_t)GH * sizeof *rbh);
        if (bias) {
            const float *wb = (const float *)bias->data + d * 2 * GH, *rb = wb + GH;
            for (int64_t g = 0; g < GH; g++) {
                bool direct = !(s->cell == CELL_GRU && s->linear_before_reset && g >= 2 * H);
                badd[g] = wb[g] + (direct ? rb[g] : 0);
                rbh[g] = direct ? 0 : rb[g];
            }
            /* row by row: a column walk strides by GH floats, often 4 KiB, where every load waits on the last store */
            for (int64_t row = 0; row < T * B; row++)
                for (int64_t g = 0; g < GH; g++)
                    XW[row * GH + g] += badd[g];
        }
        const activation *f = &s->act[d][0], *gact = &s->act[d][1 % s->n_act], *hact = &s->act[d][2 % s->n_act];
        const float *P = peep ? (const float *)peep->data + d * 3 * H : NULL;
        for (int64_t b = 0; b < B; b++) {
            size_t so = (size_t)(s->layout ? (b * D + d) * H : (d * B + b) * H);
            if (h0)
                memcpy(h + b * H, (const float *)h0->data + so, (size_t)H * sizeof(float));
            else
                memset(h + b * H, 0, (size_t)H * sizeof(float));
            if (c0)
                memcpy(c + b * H, (const float *)c0->data + so, (size_t)H * sizeof(float));
            else
                memset(c + b * H, 0, (size_t)H * sizeof(float));
        }
        int64_t max_len = 0;
        for (int64_t b = 0; b < B; b++) {
            int64_t L = seq ? ((const int32_t *)seq->data)[b] : T;
            max_len = L > max_len ? L : max_len;
        }
        for (int64_t step = 0; step < max_len; step++) {
            /* gates = H_prev · R^T (GRU without linear_before_reset: z and r only, h later) */
            if (s->quant)
                q8_product(n, s, &s->qr, d, h, (size_t)B, (size_t)H, (size_t)GH, hq, qscales, qws, gates);
            else if (gru_split)
                matmul(n->tp, h, (size_t)H, RT, (size_t)GH, gates, (size_t)GH, B, 2 * H, H, false);
            else
                f32_product(n, s, &s->fr, d, h, (size_t)B, (size_t)H, (size_t)GH, gates);
            for (int64_t b = 0; b < B; b++) {
                int64_t L = seq ? ((const int32_t *)seq->data)[b] : T;
                if (step >= L)
                    continue;
                int64_t t = rev ? L - 1 - step : step;
                const float *xw = XW + (s->layout ? b * T + t : t * B + b) * GH;
                float *gt = gates + b * GH, *hb = h + b * H, *cb = c + b * H;
                if (s->cell == CELL_RNN) {
                    for (int64_t j = 0; j < H; j++)
                        gt[j] += xw[j];
                    if (s->has_clip)
                        clip_vec(gt, H, s->clip);
                    act_apply(f, gt, H);
                    memcpy(tmp + b * H, gt, (size_t)H * sizeof(float));
                } else if (s->cell == CELL_GRU) {
                    float *z = gt, *rr = gt + H, *hh = gt + 2 * H;
                    for (int64_t j = 0; j < 2 * H; j++)
                        gt[j] += xw[j];
                    if (s->has_clip)
                        clip_vec(gt, 2 * H, s->clip);
                    act_apply(f, z, H);
                    act_apply(f, rr, H);
                    if (s->linear_before_reset) {
                        for (int64_t j = 0; j < H; j++)
                            hh[j] = xw[2 * H + j] + rr[j] * (hh[j] + rbh[2 * H + j]);
                    } else {
                        float *rh = tmp + b * H;
                        for (int64_t j = 0; j < H; j++)
                            rh[j] = rr[j] * hb[j];
                        /* (r ⊙ H_prev) · Rh^T */
                        memcpy(hh, xw + 2 * H, (size_t)H * sizeof(float));
                        matmul(NULL, rh, (size_t)H, RT + 2 * H, (size_t)GH, hh, (size_t)H, 1, H, H, true);
                    }
                    if (s->has_clip)
                        clip_vec(hh, H, s->clip);
                    act_apply(gact, hh, H);
                    float *hn = tmp + b * H;
                    for (int64_t j = 0; j < H; j++)
                        hn[j] = (1.0f - z[j]) * hh[j] + z[j] * hb[j];
                } else {
                    float *gi = gt, *go = gt + H, *gf = gt + 2 * H, *gc = gt + 3 * H;
                    for (int64_t j = 0; j < GH; j++)
                        gt[j] += xw[j];
                    if (P)
                        for (int64_t j = 0; j < H; j++) {
                            gi[j] += P[j] * cb[j];
                            gf[j] += P[2 * H + j] * cb[j];
                        }
                    if (s->has_clip) {
                        clip_vec(gi, H, s->clip);
                        clip_vec(gf, H, s->clip);
                        clip_vec(gc, H, s->clip);
                    }
                    act_apply(f, gi, H);
                    if (s->input_forget)
                        for (int64_t j = 0; j < H; j++)
                            gf[j] = 1.0f - gi[j];
                    else
                        act_apply(f, gf, H);
                    act_apply(gact, gc, H);
                    for (int64_t j = 0; j < H; j++)
                        cb[j] = gf[j] * cb[j] + gi[j] * gc[j];
                    if (P)
                        for (int64_t j = 0; j < H; j++)
                            go[j] += P[H + j] * cb[j];
                    if (s->has_clip)
                        clip_vec(go, H, s->clip);
                    act_apply(f, go, H);
                    float *hn = tmp + b * H;
                    memcpy(hn, cb, (size_t)H * sizeof(float));
                    act_apply(hact, hn, H);
                    for (int64_t j = 0; j < H; j++)
                        hn[j] *= go[j];
                }
                /* safe now: this step's H_prev · R^T has been taken for every batch entry */
                memcpy(hb, tmp + b * H, (size_t)H * sizeof(float));
                if (Y)
                    memcpy((float *)Y->data + (s->layout ? ((b * T + t) * D + d) * H : ((t * D + d) * B + b) * H), hb,
                           (size_t)H * sizeof(float));
            }
        }
        for (int64_t b = 0; b < B; b++) {
            size_t so = (size_t)(s->layout ? (b * D + d) * H : (d * B + b) * H);
            if (Yh)
                memcpy((float *)Yh->data + so, h + b * H, (size_t)H * sizeof(float));
            if (Yc)
                memcpy((float *)Yc->data + so, c + b * H, (size_t)H * sizeof(float));
        }
    }
    return OQ_OK;
}

const oq_op_def oq_op_rnn = {rnn_prepare, rnn_infer, rnn_run, rnn_destroy};
const oq_op_def oq_op_gru = {gru_prepare, rnn_infer, rnn_run, rnn_destroy};
const oq_op_def oq_op_lstm = {lstm_prepare, rnn_infer, rnn_run, rnn_destroy};
const oq_op_def oq_op_dynamicquantizelstm = {dqlstm_prepare, rnn_infer, rnn_run, rnn_destroy};
