/* ops/pad: Pad in modes constant, reflect, edge and wrap (pads as an attribute
 * before opset 11, as inputs after; axes input from opset 18; negative pads crop).
 * Works row by row (axes without pads merged): the in-range middle of a row is one memcpy. */
#include "ops/op.h"

#include <string.h>

typedef enum pad_mode { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP } pad_mode;

typedef struct pad_plan {
    int nd;
    pad_mode mode;
    int64_t before[OQ_MAX_DIMS], after[OQ_MAX_DIMS], odims[OQ_MAX_DIMS];
    /* negative pads crop first (as onnxruntime does); the modes then pad the cropped
     * range [keep_off, keep_off + keep_len) of each axis */
    int64_t keep_off[OQ_MAX_DIMS], keep_len[OQ_MAX_DIMS], pad_lo[OQ_MAX_DIMS];
    unsigned char value[16]; /* constant value in the data's type */
} pad_plan;

static void value_from_double(oq_dtype t, double v, unsigned char *out)
{
    memset(out, 0, 16);
    switch (t) {
    case OQ_FLOAT: { float f = (float)v; memcpy(out, &f, 4); } break;
    case OQ_DOUBLE: memcpy(out, &v, 8); break;
    case OQ_FLOAT16: { uint16_t h = oq_float_to_half((float)v); memcpy(out, &h, 2); } break;
    case OQ_BFLOAT16: { uint16_t h = oq_float_to_bf16((float)v); memcpy(out, &h, 2); } break;
    case OQ_INT8: case OQ_UINT8: case OQ_BOOL: out[0] = (unsigned char)(int64_t)v; break;
    case OQ_INT16: case OQ_UINT16: { int16_t x = (int16_t)(int64_t)v; memcpy(out, &x, 2); } break;
    case OQ_INT32: case OQ_UINT32: { int32_t x = (int32_t)(int64_t)v; memcpy(out, &x, 4); } break;
    case OQ_INT64: case OQ_UINT64: { int64_t x = (int64_t)v; memcpy(out, &x, 8); } break;
    default: break;
    }
}

static oq_status pad_plan_make(const oq_op_node *n, const oq_tensor *const *in, pad_plan *p)
{
    if (n->n_inputs < 1 || !in[0] || n->n_outputs < 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "data input is missing");
    const oq_tensor *x = in[0];
    size_t es = oq_dtype_size(x->dtype);
    if (x->dtype == OQ_STRING || es == 0 || es > 16)
        return oq_op_error(n, OQ_E_TYPE, "type %s is not supported", oq_dtype_name(x->dtype));
    const char *mode = oq_node_attr_string(n->node, "mode", "constant");
    if (!strcmp(mode, "constant"))
        p->mode = PAD_CONSTANT;
    else if (!strcmp(mode, "reflect"))
        p->mode = PAD_REFLECT;
    else if (!strcmp(mode, "edge"))
        p->mode = PAD_EDGE;
    else if (!strcmp(mode, "wrap"))
        p->mode = PAD_WRAP;
    else
        return oq_op_error(n, OQ_E_INVALID_ARG, "unknown mode '%s'", mode);
    int r = x->ndim;
    p->nd = r;
    int64_t pads[2 * OQ_MAX_DIMS];
    size_t np;
    int axes[OQ_MAX_DIMS], na = r;
    for (int a = 0; a < r; a++)
        axes[a] = a;
    if (n->opset < 11) {
        const int64_t *v;
        np = oq_node_attr_ints(n->node, n->opset < 2 ? "paddings" : "pads", &v);
        if (!v || np != 2 * (size_t)r)
            return oq_op_error(n, OQ_E_INVALID_ARG, "pads must hold 2 * rank = %d values", 2 * r);
        memcpy(pads, v, np * sizeof *v);
        value_from_double(x->dtype, oq_node_attr_float(n->node, "value", 0.0f), p->value);
    } else {
        if (n->n_inputs < 2 || !in[1])
            return oq_op_error(n, OQ_E_INVALID_ARG, "pads input is required");
        const oq_tensor *pt = in[1];
        if (pt->dtype != OQ_INT64 || pt->ndim > 1 || oq_tensor_numel(pt) > 2 * OQ_MAX_DIMS)
            return oq_op_error(n, OQ_E_TYPE, "pads must be a 1-D int64 tensor");
        np = (size_t)oq_tensor_numel(pt);
        memcpy(pads, pt->data, np * sizeof(int64_t));
        memset(p->value, 0, sizeof p->value);
        if (n->n_inputs > 2 && in[2] && oq_tensor_numel(in[2]) > 0) {
            if (in[2]->dtype != x->dtype)
                return oq_op_error(n, OQ_E_TYPE, "constant_value must have the data's type");
            memcpy(p->value, in[2]->data, es);
        }
        if (n->n_inputs > 3 && in[3]) {
            const oq_tensor *at = in[3];
            if ((at->dtype != OQ_INT64 && at->dtype != OQ_INT32) || at->ndim != 1 || at->dims[0] > r)
                return oq_op_error(n, OQ_E_INVALID_ARG, "axes must be a 1-D integer tensor of at most rank values");
            na = (int)at->dims[0];
            bool seen[OQ_MAX_DIMS] = {false};
            for (int i = 0; i < na; i++) {
                int64_t v = at->dtype == OQ_INT64 ? ((const int64_t *)at->data)[i] : ((const int32_t *)at->data)[i];
                oq_status st = oq_norm_axis(n, v, r, &axes[i]);
                if (st != OQ_OK)
                    return st;
                if (seen[axes[i]])
                    return oq_op_error(n, OQ_E_INVALID_ARG, "axis %d is repeated", axes[i]);
                seen[axes[i]] = true;
            }
        }
        if (np != 2 * (size_t)na)
            return oq_op_error(n, OQ_E_INVALID_ARG, "pads has %zu values; expected %d", np, 2 * na);
    }
    for (int a = 0; a < r; a++)
        p->before[a] = p->after[a] = 0;
    for (int i = 0; i < 2 * na; i++)
        if (pads[i] > ((int64_t)1 << 40) || pads[i] < -((int64_t)1 << 40))
            return oq_op_error(n, OQ_E_INVALID_ARG, "pad %lld is out of range", (long long)pads[i]);
    for (int i = 0; i < na; i++) {
        p->before[axes[i]] = pads[i];
        p->after[axes[i]] = pads[i + na];
    }
    for (int a = 0; a < r; a++) {
        int64_t d = x->dims[a];
        p->odims[a] = d + p->before[a] + p->after[a];
        p->keep_off[a] = p->before[a] < 0 ? -p->before[a] : 0;
        p->pad_lo[a] = p->before[a] > 0 ? p->before[a] : 0;
        p->keep_len[a] = d + (p->before[a] < 0 ? p->before[a] : 0) + (p->after[a] < 0 ? p->after[a] : 0);
        if (p->odims[a] < 0 || p->keep_len[a] < 0)
            return oq_op_error(n, OQ_E_SHAPE, "pads on axis %d remove more than its %lld elements", a, (long long)d);
        if (p->mode != PAD_CONSTANT && p->odims[a] > 0 && p->keep_len[a] == 0)
            return oq_op_error(n, OQ_E_SHAPE, "cannot pad an empty axis %d in mode %s", a, mode);
    }
    return OQ_OK;
}

/* Index into the kept range of length d for output position i (already shifted by the
 * leading pad), or -1 for the constant. */
static int64_t pad_src(int64_t i, int64_t d, pad_mode m)
{
    if (i >= 0 && i < d)
        return i;
    switch (m) {
    case PAD_EDGE: return i < 0 ? 0 : d - 1;
    case PAD_WRAP: return ((i % d) + d) % d;
    case PAD_REFLECT: {
        if (d == 1)
            return 0;
        int64_t per = 2 * (d - 1);
        i = ((i % per) + per) % per;
        return i >= d ? per - i : i;
    }
    default: return -1;
    }
}

static oq_status pad_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    pad_plan p;
    oq_status st = pad_plan_make(n, in, &p);
    if (st == OQ_OK)
        oq_set_shape(out[0], in[0]->dtype, p.nd, p.odims);
    return st;
}

typedef struct pad_ctx {
    const pad_plan *p;
    const char *src;
    char *dst;
    size_t es, n_tasks;
    int64_t rows, ocols, koff, klen, lo, hi; /* [lo, hi): output columns copied from koff as one run */
    int64_t istride[OQ_MAX_DIMS];
} pad_ctx;

/* n copies of the es-byte value at d: one, then the filled part copied onto the rest, doubling. */
static void fill(char *d, const unsigned char *value, size_t es, size_t n)
{
    size_t total = n * es, filled = total ? es : 0;
    if (filled)
        memcpy(d, value, es);
    while (filled < total) {
        size_t k = filled < total - filled ? filled : total - filled;
        memcpy(d + filled, d, k);
        filled += k;
    }
}

static void pad_task(void *vc, size_t task, size_t thread)
{
    (void)thread;
    const pad_ctx *c = vc;
    const pad_plan *p = c->p;
    size_t es = c->es;
    int last = p->nd - 1;
    int64_t r0 = c->rows * (int64_t)task / (int64_t)c->n_tasks, r1 = c->rows * (int64_t)(task + 1) / (int64_t)c->n_tasks;
    for (int64_t r = r0; r < r1; r++) {
        char *d = c->dst + (size_t)(r * c->ocols) * es;
        int64_t rem = r, ioff = 0;
        bool constant_row = false;
        for (int a = last - 1; a >= 0; a--) {
            int64_t i = rem % p->odims[a];
            rem /= p->odims[a];
            int64_t si = pad_src(i - p->pad_lo[a], p->keep_len[a], p->mode);
            if (si < 0)
                constant_row = true;
            else
                ioff += (p->keep_off[a] + si) * c->istride[a];
        }
        if (constant_row) {
            fill(d, p->value, es, (size_t)c->ocols);
            continue;
        }
        const char *srow = c->src + (size_t)ioff * es;
        if (p->mode == PAD_CONSTANT) { /* value, the kept run, value (a channel padding, channels-last) */
            int64_t lo = c->hi > c->lo ? c->lo : c->ocols, hi = c->hi > c->lo ? c->hi : c->ocols;
            fill(d, p->value, es, (size_t)lo);
            memcpy(d + (size_t)lo * es, srow + (size_t)c->koff * es, (size_t)(hi - lo) * es);
            fill(d + (size_t)hi * es, p->value, es, (size_t)(c->ocols - hi));
            continue;
        }
        for (int64_t j = 0; j < c->ocols; j++) {
            if (j == c->lo && c->hi > c->lo) {
                memcpy(d + (size_t)c->lo * es, srow + (size_t)c->koff * es, (size_t)(c->hi - c->lo) * es);
                j = c->hi - 1;
                continue;
            }
            int64_t si = pad_src(j - c->lo, c->klen, p->mode);
            memcpy(d + (size_t)j * es, si < 0 ? (const char *)p->value : srow + (size_t)(c->koff + si) * es, es);
        }
    }
}

/* Fewer, longer rows, the same tensor: neighbouring axes without pads become one, and in constant
 * mode so do a padded axis and the unpadded axes after it (its pads then count whole slices). A
 * channel padding of NCHW is then one row per image: value, copy, value. xd: x's dims, merged too. */
static void merge_axes(pad_plan *p, int64_t *xd)
{
    int out = 0;
    for (int a = 0; a < p->nd; a++) {
        bool plain = p->before[a] == 0 && p->after[a] == 0;
        int prev = out - 1;
        bool prev_plain = prev >= 0 && p->before[prev] == 0 && p->after[prev] == 0;
        if (prev >= 0 && plain && (prev_plain || p->mode == PAD_CONSTANT)) {
            int64_t d = xd[a];
            xd[prev] *= d, p->odims[prev] *= d, p->keep_off[prev] *= d, p->keep_len[prev] *= d;
            p->pad_lo[prev] *= d, p->before[prev] *= d, p->after[prev] *= d;
            continue;
        }
        xd[out] = xd[a], p->odims[out] = p->odims[a], p->keep_off[out] = p->keep_off[a];
        p->keep_len[out] = p->keep_len[a], p->pad_lo[out] = p->pad_lo[a];
        p->before[out] = p->before[a], p->after[out] = p->after[a];
        out++;
    }
    p->nd = out;
}

static oq_status pad_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    pad_plan p;
    oq_status st = pad_plan_make(n, in, &p);
    if (st != OQ_OK)
        return st;
    const oq_tensor *x = in[0];
    int64_t xd[OQ_MAX_DIMS];
    memcpy(xd, x->dims, sizeof xd);
    if (oq_tensor_numel(x) > 0)
        merge_axes(&p, xd);
    pad_ctx c;
    memset(&c, 0, sizeof c);
    c.p = &p;
    c.es = oq_dtype_size(x->dtype);
    c.src = x->data;
    c.dst = out[0]->data;
    int64_t total = oq_tensor_numel(out[0]);
    if (total <= 0)
        return OQ_OK;
    if (p.nd == 0) {
        memcpy(c.dst, c.src, c.es);
        return OQ_OK;
    }
    int last = p.nd - 1;
    c.ocols = p.odims[last];
    c.koff = p.keep_off[last];
    c.klen = p.keep_len[last];
    int64_t s = 1;
    for (int a = last; a >= 0; a--) {
        c.istride[a] = s;
        s *= xd[a];
    }
    c.lo = p.pad_lo[last];
    c.hi = c.lo + c.klen;
    c.rows = total / c.ocols;
    c.n_tasks = 1;
    int th = oq_threadpool_size(n->tp);
    if (th > 1 && (size_t)total * c.es >= ((size_t)1 << 17) && c.rows > 1)
        c.n_tasks = (size_t)th * 4 < (size_t)c.rows ? (size_t)th * 4 : (size_t)c.rows;
    if (c.n_tasks == 1)
        pad_task(&c, 0, 0);
    else
        oq_parallel_for(n->tp, c.n_tasks, pad_task, &c);
    return OQ_OK;
}
const oq_op_def oq_op_pad = {NULL, pad_infer, pad_run, NULL};
