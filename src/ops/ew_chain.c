/* ops/ew_chain: onnxq.ElementwiseChain, a session-only node (passes/fuse_elementwise.c) for a chain
 * of float Add, Sub, Mul, Div, Clip, Sigmoid, two-input Max/Min and LeakyRelu nodes, each reading the one before it and x (the chain's
 * input) or a constant: a decomposed HardSwish x * Clip(x + 3, 0, 6) / 6, with the per-channel
 * divisors the quantizer's equalization leaves in it), a Swish x * Sigmoid(x). The unfused chain passes
 * over the tensor
 * once per node; this node runs every step on a block of 1024 values while it is in L1, with the
 * same kernels the nodes it replaces run (vbinary, vclip), so outputs are identical.
 *
 * A chain that ends in a per-tensor QuantizeLinear (the next int8 layer's input) takes it in too:
 * attribute onnxq_quantize (its scale and zero point inputs), u8/s8 output, through the
 * QuantizeLinear operator's own kernel.
 *
 * Inputs: x, then the operands. Attribute onnxq_steps: pairs (step, operand input index). An
 * operand is x itself, a scalar, a tensor of x's shape, or one whose elements vary along a single
 * axis of x (a per-channel [C, 1, 1]); anything else is refused when the shapes are first seen. */
#include "kernels/f32-vbinary/vbinary.h"
#include "kernels/f32-vmath/vmath.h"
#include "ops/elementwise.h"
#include "ops/op.h"

#include <stdlib.h>
#include <string.h>

enum { BLOCK = 1024 };

typedef struct chain_state {
    int64_t *steps; /* step, operand */
    size_t n_steps;
    int64_t q_scale, q_zp; /* onnxq_quantize: the inputs of a final QuantizeLinear's scale and zero
                            * point (zero point -1: none, uint8 output); q_scale -1: float output */
} chain_state;

/* How operand k is read for element i of x: a value, x-shaped, or per index along one axis. */
typedef struct operand {
    const float *p;
    int kind; /* 0 scalar, 1 full, 2 along an axis */
    size_t inner, dim;
} operand;

static oq_status ew_prepare(oq_op_node *n)
{
    const oq_attr *a = oq_node_attr(n->node, "onnxq_steps");
    if (!a || a->n_ints == 0 || a->n_ints % 2)
        return oq_op_error(n, OQ_E_INVALID_ARG, "onnxq_steps must hold (step, operand) pairs");
    chain_state *s = oq_calloc(1, sizeof *s);
    if (!s || !(s->steps = oq_malloc(a->n_ints * sizeof *s->steps))) {
        free(s);
        return oq_error(OQ_E_NOMEM, "out of memory");
    }
    memcpy(s->steps, a->ints, a->n_ints * sizeof *s->steps);
    s->n_steps = a->n_ints / 2;
    s->q_scale = s->q_zp = -1;
    n->state = s;
    const oq_attr *q = oq_node_attr(n->node, "onnxq_quantize");
    if (q) {
        if (q->n_ints != 2 || q->ints[0] < 1 || (size_t)q->ints[0] >= n->n_inputs || q->ints[1] < -1 ||
            q->ints[1] >= (int64_t)n->n_inputs || q->ints[1] == 0)
            return oq_op_error(n, OQ_E_INVALID_ARG, "onnxq_quantize must name the scale and zero point inputs");
        s->q_scale = q->ints[0];
        s->q_zp = q->ints[1];
        for (size_t i = 0; i < s->n_steps; i++)
            if (s->steps[2 * i + 1] == s->q_scale || s->steps[2 * i + 1] == s->q_zp)
                return oq_op_error(n, OQ_E_INVALID_ARG, "step %zu reads the quantization scale or zero point", i);
    }
    for (size_t i = 0; i < s->n_steps; i++)
        if (s->steps[2 * i] < OQ_EW_STEP_ADD || s->steps[2 * i] > OQ_EW_STEP_LAST || s->steps[2 * i + 1] < 0 ||
            (size_t)s->steps[2 * i + 1] >= n->n_inputs)
            return oq_op_error(n, OQ_E_INVALID_ARG, "step %zu is not a known step on an input", i);
    return OQ_OK;
}

static void ew_destroy(void *p)
{
    chain_state *s = p;
    if (s)
        free(s->steps);
    free(s);
}

/* The operand's access pattern within x's shape, or false when it does not fit one. */
static bool classify(const oq_tensor *x, const oq_tensor *t, operand *o)
{
    o->p = t->data;
    int64_t n = oq_tensor_numel(t);
    if (n == 1) {
        o->kind = 0;
        return true;
    }
    if (t->ndim > x->ndim)
        return false;
    int off = x->ndim - t->ndim, axis = -1;
    bool same = t->ndim == x->ndim, bad = false;
    for (int d = 0; d < t->ndim; d++) {
        int64_t td = t->dims[d], xd = x->dims[off + d];
        same &= td == xd;
        if (td == 1)
            continue;
        bad |= td != xd || axis >= 0; /* one that would grow x, or a second varying axis */
        axis = off + d;
    }
    if (same) {
        o->kind = 1;
        return true;
    }
    if (bad || axis < 0)
        return false;
    o->kind = 2;
    o->dim = (size_t)x->dims[axis];
    o->inner = 1;
    for (int d = axis + 1; d < x->ndim; d++)
        o->inner *= (size_t)x->dims[d];
    return true;
}

static oq_status ew_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    const chain_state *s = n->state;
    oq_dtype yt = OQ_FLOAT;
    for (size_t k = 0; k < n->n_inputs; k++) {
        operand o;
        if ((int64_t)k == s->q_zp) {
            if (!in[k] || (in[k]->dtype != OQ_UINT8 && in[k]->dtype != OQ_INT8) || oq_tensor_numel(in[k]) != 1)
                return oq_op_error(n, OQ_E_TYPE, "input %zu must be one uint8 or int8 zero point", k);
            yt = in[k]->dtype;
            continue;
        }
        if (!in[k] || in[k]->dtype != OQ_FLOAT)
            return oq_op_error(n, OQ_E_TYPE, "input %zu must be a float tensor", k);
        if ((int64_t)k == s->q_scale ? oq_tensor_numel(in[k]) != 1 : !classify(in[0], in[k], &o))
            return oq_op_error(n, OQ_E_SHAPE, "input %zu does not broadcast into the shape of input 0", k);
    }
    for (size_t i = 0; i < s->n_steps; i++)
        if (s->steps[2 * i] == OQ_EW_STEP_LEAKYRELU && oq_tensor_numel(in[s->steps[2 * i + 1]]) != 1)
            return oq_op_error(n, OQ_E_SHAPE, "step %zu (LeakyRelu) needs a one-value alpha", i);
    if (s->q_scale >= 0 && yt == OQ_FLOAT)
        yt = OQ_UINT8;
    oq_set_shape(out[0], yt, in[0]->ndim, in[0]->dims);
    return OQ_OK;
}

typedef struct chain_job {
    const chain_state *s;
    const operand *ops;
    const float *x;
    void *y;                /* float, or u8/s8 when quantized */
    const oq_f32_vbinary_table *vb;
    const oq_f32_vmath_table *vm;
    float q_scale;
    int32_t q_zp;
    bool quantize, q_signed;
} chain_job;

/* One step on n values from src into dst at element `at` of x (o: its operand); a MAX step
 * followed by a MIN step (a Clip) runs as one clip, dst[i] = min(max(src[i], lo), hi). */
static void step_run(const chain_job *j, size_t s, const float *src, float *dst, size_t at, size_t n)
{
    const int64_t *st = &j->s->steps[2 * s];
    const operand *o = &j->ops[st[1]];
    const float *p = o->kind == 1 ? o->p + at : NULL;
    float c = o->kind == 0 ? o->p[0] : o->kind == 2 ? o->p[at / o->inner % o->dim] : 0;
    const float *b = p ? p : &c;
    int mode = p ? 0 : 2;
    switch (st[0]) {
    case OQ_EW_STEP_ADD: j->vb->add(src, b, dst, n, mode); break;
    case OQ_EW_STEP_SUB: j->vb->sub(src, b, dst, n, mode); break;
    case OQ_EW_STEP_RSUB: j->vb->sub(b, src, dst, n, p ? 0 : 1); break;
    case OQ_EW_STEP_MUL: j->vb->mul(src, b, dst, n, mode); break;
    case OQ_EW_STEP_DIV: j->vb->div(src, b, dst, n, mode); break;
    case OQ_EW_STEP_RDIV: j->vb->div(b, src, dst, n, p ? 0 : 1); break;
    case OQ_EW_STEP_MAX: j->vm->vclip(src, dst, n, c, INFINITY); break;
    case OQ_EW_STEP_MIN: j->vm->vclip(src, dst, n, -INFINITY, c); break;
    case OQ_EW_STEP_SIGMOID: j->vm->vsigmoid(src, dst, n); break;
    case OQ_EW_STEP_MAXIMUM: j->vb->max(src, b, dst, n, mode); break;
    case OQ_EW_STEP_RMAXIMUM: j->vb->max(b, src, dst, n, p ? 0 : 1); break;
    case OQ_EW_STEP_MINIMUM: j->vb->min(src, b, dst, n, mode); break;
    case OQ_EW_STEP_RMINIMUM: j->vb->min(b, src, dst, n, p ? 0 : 1); break;
    case OQ_EW_STEP_LEAKYRELU: j->vm->vleakyrelu(src, dst, n, c); break;
    default: break;
    }
}

static void run_block(const chain_job *j, size_t start, size_t len)
{
    float tmp[BLOCK];
    float *y = j->quantize ? tmp : (float *)j->y + start;
    for (size_t s = 0; s < j->s->n_steps; s++) {
        const int64_t *st = &j->s->steps[2 * s];
        const float *src = s == 0 ? j->x + start : y;
        /* a Clip: MAX then MIN on scalars, one pass */
        if (st[0] == OQ_EW_STEP_MAX && s + 1 < j->s->n_steps && st[2] == OQ_EW_STEP_MIN &&
            j->ops[st[1]].kind == 0 && j->ops[st[3]].kind == 0) {
            j->vm->vclip(src, y, len, j->ops[st[1]].p[0], j->ops[st[3]].p[0]);
            s++;
            continue;
        }
        const operand *o = &j->ops[st[1]];
        /* a per-axis operand changes every `inner` elements: runs of one value */
        for (size_t i0 = 0; i0 < len;) {
            size_t at = start + i0, run = len - i0;
            if (o->kind == 2 && o->inner - at % o->inner < run)
                run = o->inner - at % o->inner;
            step_run(j, s, src + i0, y + i0, at, run);
            i0 += run;
        }
    }
    if (j->quantize) /* the QuantizeLinear the chain ended in */
        oq_quantize_f32_to_8bit(y, len, j->q_scale, j->q_zp, j->q_signed, (uint8_t *)j->y + start);
}

static void chain_range(void *ctx, size_t start, size_t end)
{
    const chain_job *j = ctx;
    for (size_t i = start; i < end; i += BLOCK)
        run_block(j, i, end - i < BLOCK ? end - i : BLOCK);
}

static oq_status ew_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    const chain_state *s = n->state;
    operand ops[64];
    if (n->n_inputs > sizeof ops / sizeof ops[0])
        return oq_op_error(n, OQ_E_UNSUPPORTED, "more than %zu inputs", sizeof ops / sizeof ops[0]);
    for (size_t k = 0; k < n->n_inputs; k++)
        if ((int64_t)k != s->q_scale && (int64_t)k != s->q_zp && !classify(in[0], in[k], &ops[k]))
            return oq_op_error(n, OQ_E_SHAPE, "input %zu does not broadcast into the shape of input 0", k);
    chain_job j = {s, ops, in[0]->data, out[0]->data, oq_f32_vbinary(), oq_f32_vmath(), 0, 0, false, false};
    if (s->q_scale >= 0) {
        j.quantize = true;
        j.q_scale = (float)oq_tensor_get_f64(in[s->q_scale], 0);
        j.q_zp = s->q_zp >= 0 ? (int32_t)oq_tensor_get_i64(in[s->q_zp], 0) : 0;
        j.q_signed = out[0]->dtype == OQ_INT8;
    }
    oq_ew_parallel(n->tp, (size_t)oq_tensor_numel(in[0]), 1 << 15, BLOCK, chain_range, &j);
    return OQ_OK;
}

const oq_op_def oq_op_ew_chain = {ew_prepare, ew_infer, ew_run, ew_destroy};
