/* ops/resize: Resize (opsets 10-19: nearest / linear / cubic, every
 * coordinate_transformation_mode, nearest_mode, scales or sizes, axes,
 * keep_aspect_ratio_policy, antialias) and the deprecated Upsample.
 * Nearest copies elements by size (any dtype); linear and cubic run one axis at
 * a time from per-axis tap tables (float). */
#include "ops/op.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum rs_mode { RS_NEAREST, RS_LINEAR, RS_CUBIC } rs_mode;
typedef enum rs_coord {
    CT_HALF_PIXEL, CT_HALF_PIXEL_SYMMETRIC, CT_PYTORCH_HALF_PIXEL, CT_ALIGN_CORNERS, CT_ASYMMETRIC,
    CT_TF_HALF_PIXEL_FOR_NN, CT_TF_CROP_AND_RESIZE
} rs_coord;
typedef enum rs_round { NR_ROUND_PREFER_FLOOR, NR_ROUND_PREFER_CEIL, NR_FLOOR, NR_CEIL, NR_SIMPLE } rs_round;

typedef struct rs_plan {
    int nd;
    rs_mode mode;
    rs_coord coord;
    rs_round nearest;
    bool exclude_outside, antialias;
    float cubic_a, extrapolation;
    int64_t idims[OQ_MAX_DIMS], odims[OQ_MAX_DIMS];
    float scale[OQ_MAX_DIMS];
    float roi_start[OQ_MAX_DIMS], roi_end[OQ_MAX_DIMS];
} rs_plan;

static int str_index(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

static oq_status plan_make(const oq_op_node *n, const oq_tensor *const *in, bool upsample, rs_plan *p)
{
    memset(p, 0, sizeof *p);
    if (n->n_inputs < 1 || !in[0] || n->n_outputs < 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "X input is missing");
    const oq_tensor *x = in[0];
    int r = x->ndim;
    p->nd = r;
    for (int a = 0; a < r; a++) {
        p->idims[a] = x->dims[a];
        p->scale[a] = 1;
        p->roi_start[a] = 0;
        p->roi_end[a] = 1;
    }
    static const char *const modes[] = {"nearest", "linear", "cubic"};
    const char *m = oq_node_attr_string(n->node, "mode", "nearest");
    int mi = str_index(m, modes, 3);
    if (mi < 0 && !strcmp(m, "bilinear") && upsample)
        mi = RS_LINEAR;
    if (mi < 0 || (mi == RS_CUBIC && (upsample || n->opset < 11)))
        return oq_op_error(n, OQ_E_INVALID_ARG, "unknown mode '%s'", m);
    p->mode = (rs_mode)mi;
    bool legacy = upsample || n->opset < 11; /* Upsample and Resize-10: asymmetric, truncating nearest */
    if (legacy) {
        p->coord = CT_ASYMMETRIC;
        p->nearest = NR_SIMPLE;
    } else {
        static const char *const coords[] = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                                             "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize"};
        const char *c = oq_node_attr_string(n->node, "coordinate_transformation_mode", "half_pixel");
        int ci = str_index(c, coords, 7);
        if (ci < 0 || (ci == CT_HALF_PIXEL_SYMMETRIC && n->opset < 19))
            return oq_op_error(n, OQ_E_INVALID_ARG, "unknown coordinate_transformation_mode '%s'", c);
        p->coord = (rs_coord)ci;
        static const char *const rounds[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
        const char *nm = oq_node_attr_string(n->node, "nearest_mode", "round_prefer_floor");
        int ni = str_index(nm, rounds, 4);
        if (ni < 0)
            return oq_op_error(n, OQ_E_INVALID_ARG, "unknown nearest_mode '%s'", nm);
        p->nearest = (rs_round)ni;
        p->cubic_a = oq_node_attr_float(n->node, "cubic_coeff_a", -0.75f);
        p->exclude_outside = oq_node_attr_int(n->node, "exclude_outside", 0) != 0;
        p->extrapolation = oq_node_attr_float(n->node, "extrapolation_value", 0.0f);
        p->antialias = n->opset >= 18 && oq_node_attr_int(n->node, "antialias", 0) != 0 && p->mode != RS_NEAREST;
    }

    /* which axes the scales/sizes/roi talk about */
    int axes[OQ_MAX_DIMS], na = r;
    for (int a = 0; a < r; a++)
        axes[a] = a;
    if (!legacy && n->opset >= 18) {
        const int64_t *av;
        size_t c = oq_node_attr_ints(n->node, "axes", &av);
        if (av) {
            if (c > (size_t)r)
                return oq_op_error(n, OQ_E_INVALID_ARG, "axes has %zu entries for rank %d", c, r);
            na = (int)c;
            bool seen[OQ_MAX_DIMS] = {false};
            for (int i = 0; i < na; i++) {
                oq_status st = oq_norm_axis(n, av[i], r, &axes[i]);
                if (st != OQ_OK)
                    return st;
                if (seen[axes[i]])
                    return oq_op_error(n, OQ_E_INVALID_ARG, "axis %d is repeated", axes[i]);
                seen[axes[i]] = true;
            }
        }
    }

    const oq_tensor *scales = NULL, *sizes = NULL, *roi = NULL;
    const float *attr_scales = NULL;
    size_t n_attr_scales = 0;
    if (upsample && n->opset < 9) {
        n_attr_scales = oq_node_attr_floats(n->node, "scales", &attr_scales);
        if (!attr_scales)
            return oq_op_error(n, OQ_E_INVALID_ARG, "scales attribute is required");
    } else if (legacy) {
        if (n->n_inputs < 2 || !in[1])
            return oq_op_error(n, OQ_E_INVALID_ARG, "scales input is required");
        scales = in[1];
    } else {
        roi = n->n_inputs > 1 ? in[1] : NULL;
        scales = n->n_inputs > 2 ? in[2] : NULL;
        sizes = n->n_inputs > 3 ? in[3] : NULL;
        if (scales && oq_tensor_numel(scales) == 0)
            scales = NULL;
        if (roi && oq_tensor_numel(roi) == 0)
            roi = NULL;
        if (sizes && oq_tensor_numel(sizes) == 0)
            sizes = NULL;
        if (!!scales == !!sizes)
            return oq_op_error(n, OQ_E_INVALID_ARG, "exactly one of scales and sizes must be given");
    }
    if (scales) {
        if (scales->dtype != OQ_FLOAT || scales->ndim != 1)
            return oq_op_error(n, OQ_E_TYPE, "scales must be a 1-D float tensor");
        attr_scales = scales->data;
        n_attr_scales = (size_t)scales->dims[0];
    }
    if (attr_scales) {
        if (n_attr_scales != (size_t)na)
            return oq_op_error(n, OQ_E_SHAPE, "scales has %zu values for %d axes", n_attr_scales, na);
        for (int i = 0; i < na; i++) {
            float s = attr_scales[i];
            if (!(s > 0) || !isfinite(s))
                return oq_op_error(n, OQ_E_INVALID_ARG, "scale %g must be positive", (double)s);
            p->scale[axes[i]] = s;
        }
        for (int a = 0; a < r; a++) {
            double od = floor((double)x->dims[a] * (double)p->scale[a]);
            if (od > (double)((int64_t)1 << 40))
                return oq_op_error(n, OQ_E_SHAPE, "output dimension %g is too large", od);
            p->odims[a] = (int64_t)od;
        }
    } else {
        if (sizes->dtype != OQ_INT64 || sizes->ndim != 1 || sizes->dims[0] != na)
            return oq_op_error(n, OQ_E_SHAPE, "sizes must be int64 with %d values", na);
        const int64_t *sz = sizes->data;
        for (int a = 0; a < r; a++)
            p->odims[a] = x->dims[a];
        for (int i = 0; i < na; i++) {
            if (sz[i] < 0)
                return oq_op_error(n, OQ_E_INVALID_ARG, "sizes[%d] is negative", i);
            if (x->dims[axes[i]] == 0 && sz[i] != 0)
                return oq_op_error(n, OQ_E_SHAPE, "cannot resize an empty axis");
        }
        const char *policy = n->opset >= 18 ? oq_node_attr_string(n->node, "keep_aspect_ratio_policy", "stretch")
                                            : "stretch";
        if (!strcmp(policy, "stretch")) {
            for (int i = 0; i < na; i++) {
                int a = axes[i];
                p->odims[a] = sz[i];
                p->scale[a] = x->dims[a] ? (float)sz[i] / (float)x->dims[a] : 1.0f;
            }
        } else if (!strcmp(policy, "not_larger") || !strcmp(policy, "not_smaller")) {
            bool larger = !strcmp(policy, "not_smaller");
            float s = larger ? 0.0f : INFINITY;
            for (int i = 0; i < na; i++) {
                float v = x->dims[axes[i]] ? (float)sz[i] / (float)x->dims[axes[i]] : 1.0f;
                s = larger ? (v > s ? v : s) : (v < s ? v : s);
            }
            for (int i = 0; i < na; i++) {
                int a = axes[i];
                p->scale[a] = s;
                p->odims[a] = (int64_t)floorf(s * (float)x->dims[a] + 0.5f);
            }
        } else {
            return oq_op_error(n, OQ_E_INVALID_ARG, "unknown keep_aspect_ratio_policy '%s'", policy);
        }
    }
    if (roi && p->coord == CT_TF_CROP_AND_RESIZE) {
        if ((roi->dtype != OQ_FLOAT && roi->dtype != OQ_DOUBLE) || oq_tensor_numel(roi) != 2 * na)
            return oq_op_error(n, OQ_E_SHAPE, "roi must hold %d values", 2 * na);
        for (int i = 0; i < na; i++) {
            p->roi_start[axes[i]] = (float)oq_tensor_get_f64(roi, i);
            p->roi_end[axes[i]] = (float)oq_tensor_get_f64(roi, i + na);
        }
    }
    for (int a = 0; a < r; a++)
        if (p->antialias && p->scale[a] < 1e-3f)
            return oq_op_error(n, OQ_E_UNSUPPORTED, "antialias with scale %g is not supported", (double)p->scale[a]);
    if (p->mode != RS_NEAREST && x->dtype != OQ_FLOAT)
        return oq_op_error(n, OQ_E_TYPE, "%s mode supports float only, not %s", m, oq_dtype_name(x->dtype));
    if (x->dtype == OQ_STRING || oq_dtype_size(x->dtype) == 0)
        return oq_op_error(n, OQ_E_TYPE, "type %s is not supported", oq_dtype_name(x->dtype));
    return OQ_OK;
}

/* Input coordinate of output index i on axis a. */
static double original_coord(const rs_plan *p, int a, int64_t i)
{
    /* like the ONNX reference, the resized length is in * scale before flooring */
    double s = p->scale[a], in = (double)p->idims[a], out = s * in, x = (double)i;
    switch (p->coord) {
    case CT_HALF_PIXEL: return (x + 0.5) / s - 0.5;
    case CT_HALF_PIXEL_SYMMETRIC: {
        double adj = (double)p->odims[a] / out, center = in / 2;
        return center * (1 - adj) + (x + 0.5) / s - 0.5;
    }
    case CT_PYTORCH_HALF_PIXEL: return p->odims[a] > 1 ? (x + 0.5) / s - 0.5 : 0;
    case CT_ALIGN_CORNERS: return out == 1 ? 0 : x * (in - 1) / (out - 1);
    case CT_ASYMMETRIC: return x / s;
    case CT_TF_HALF_PIXEL_FOR_NN: return (x + 0.5) / s;
    case CT_TF_CROP_AND_RESIZE: {
        double st = p->roi_start[a], en = p->roi_end[a];
        return out > 1 ? st * (in - 1) + x * (en - st) * (in - 1) / (out - 1) : 0.5 * (st + en) * (in - 1);
    }
    }
    return 0;
}

static int64_t nearest_index(const rs_plan *p, int a, double xo)
{
    int64_t v;
    switch (p->nearest) {
    case NR_ROUND_PREFER_FLOOR: v = xo == floor(xo) + 0.5 ? (int64_t)floor(xo) : (int64_t)llround(xo); break;
    case NR_ROUND_PREFER_CEIL: v = xo == floor(xo) + 0.5 ? (int64_t)ceil(xo) : (int64_t)llround(xo); break;
    case NR_FLOOR: v = (int64_t)floor(xo); break;
    case NR_CEIL: v = (int64_t)ceil(xo); break;
    default: v = p->scale[a] < 1 ? (int64_t)ceil(xo) : (int64_t)xo; break;
    }
    return v < 0 ? 0 : v >= p->idims[a] ? p->idims[a] - 1 : v;
}

static bool outside(const rs_plan *p, int a, double xo)
{
    return p->coord == CT_TF_CROP_AND_RESIZE && (xo < 0 || xo > (double)(p->idims[a] - 1));
}

static oq_status resize_infer_common(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out, bool up)
{
    rs_plan p;
    oq_status st = plan_make(n, in, up, &p);
    if (st == OQ_OK)
        oq_set_shape(out[0], in[0]->dtype, p.nd, p.odims);
    return st;
}

/* ---- nearest: gather through per-axis index tables ---- */
typedef struct nearest_ctx {
    const rs_plan *p;
    const char *src;
    char *dst;
    size_t es;
    unsigned char ext[16];
    const int64_t *tab[OQ_MAX_DIMS]; /* per axis: input offset (elements) of each output index, -1 outside */
    int64_t rows, cols;
    size_t n_tasks;
} nearest_ctx;

static void nearest_task(void *vc, size_t task, size_t thread)
{
    (void)thread;
    const nearest_ctx *c = vc;
    const rs_plan *p = c->p;
    size_t es = c->es, rowb = (size_t)c->cols * es;
    int last = p->nd - 1;
    int64_t lo = c->rows * (int64_t)task / (int64_t)c->n_tasks, hi = c->rows * (int64_t)(task + 1) / (int64_t)c->n_tasks;
    const int64_t *lt = c->tab[last];
    int64_t prev_base = -2;
    for (int64_t r = lo; r < hi; r++) {
        int64_t rem = r, base = 0;
        bool out_row = false;
        for (int a = last - 1; a >= 0; a--) {
            int64_t i = rem % p->odims[a];
            rem /= p->odims[a];
            if (c->tab[a][i] < 0)
                out_row = true;
            base += c->tab[a][i];
        }
        char *d = c->dst + (size_t)r * rowb;
        if (out_row) {
            for (int64_t j = 0; j < c->cols; j++)
                memcpy(d + (size_t)j * es, c->ext, es);
            prev_base = -2;
            continue;
        }
        if (base == prev_base) { /* upsampling repeats source rows: copy the previous output row */
            memcpy(d, d - rowb, rowb);
            continue;
        }
        prev_base = base;
        if (es == 4) {
            const uint32_t *s4 = (const uint32_t *)c->src + base;
            uint32_t *d4 = (uint32_t *)d, e4;
            memcpy(&e4, c->ext, 4);
            for (int64_t j = 0; j < c->cols; j++)
                d4[j] = lt[j] < 0 ? e4 : s4[lt[j]];
            continue;
        }
        for (int64_t j = 0; j < c->cols; j++) {
            const void *from = lt[j] < 0 ? (const void *)c->ext : c->src + (size_t)(base + lt[j]) * es;
            memcpy(d + (size_t)j * es, from, es);
        }
    }
}

static oq_status run_nearest(const rs_plan *p, const oq_tensor *x, oq_tensor *y, oq_threadpool *tp)
{
    int nd = p->nd;
    size_t es = oq_dtype_size(x->dtype);
    int64_t total = oq_tensor_numel(y);
    if (total <= 0)
        return OQ_OK;
    if (nd == 0) {
        memcpy(y->data, x->data, es);
        return OQ_OK;
    }
    int64_t *tab[OQ_MAX_DIMS] = {NULL}, istride[OQ_MAX_DIMS], s = 1;
    oq_status st = OQ_OK;
    for (int a = nd - 1; a >= 0; a--) {
        istride[a] = s;
        s *= p->idims[a];
    }
    for (int a = 0; a < nd && st == OQ_OK; a++) {
        tab[a] = oq_malloc((size_t)p->odims[a] * sizeof(int64_t));
        if (!tab[a]) {
            st = oq_error(OQ_E_NOMEM, "out of memory");
            break;
        }
        for (int64_t i = 0; i < p->odims[a]; i++) {
            double xo = original_coord(p, a, i);
            tab[a][i] = outside(p, a, xo) ? -1 : nearest_index(p, a, xo) * istride[a];
        }
    }
    if (st == OQ_OK) {
        nearest_ctx c = {p, x->data, y->data, es, {0}, {NULL}, 0, 0, 1};
        memcpy(c.tab, tab, sizeof tab);
        if (x->dtype == OQ_FLOAT)
            memcpy(c.ext, &p->extrapolation, 4);
        c.cols = p->odims[nd - 1];
        c.rows = total / c.cols;
        int th = oq_threadpool_size(tp);
        if (th > 1 && (size_t)total * es >= ((size_t)1 << 17) && c.rows > 1)
            c.n_tasks = (size_t)th * 4 < (size_t)c.rows ? (size_t)th * 4 : (size_t)c.rows;
        if (c.n_tasks == 1)
            nearest_task(&c, 0, 0);
        else
            oq_parallel_for(tp, c.n_tasks, nearest_task, &c);
    }
    for (int a = 0; a < nd; a++)
        free(tab[a]);
    return st;
}

/* ---- linear / cubic: separable passes ---- */
typedef struct taps {
    int64_t width;  /* taps per output index */
    int64_t *idx;   /* [out][width] input indices */
    float *w;       /* [out][width] weights */
} taps;

static float cubic_kernel(float t, float A)
{
    t = fabsf(t);
    if (t <= 1)
        return ((A + 2) * t - (A + 3)) * t * t + 1;
    if (t < 2)
        return ((A * t - 5 * A) * t + 8 * A) * t - 4 * A;
    return 0;
}

static oq_status make_taps(const rs_plan *p, int a, taps *tp, bool *oob)
{
    int64_t out = p->odims[a], in = p->idims[a];
    float scale = p->scale[a], ks = p->antialias && scale < 1 ? scale : 1; /* kernel scale */
    int64_t start, width;
    if (p->mode == RS_LINEAR) {
        start = (int64_t)floorf(-1 / ks) + 1;
        width = 2 - 2 * start;
    } else {
        start = (int64_t)floorf(-2 / ks) + 1;
        width = 2 - 2 * start;
    }
    tp->width = width;
    tp->idx = oq_malloc((size_t)(out * width) * sizeof *tp->idx);
    tp->w = oq_malloc((size_t)(out * width) * sizeof *tp->w);
    if (!tp->idx || !tp->w)
        return oq_error(OQ_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < out; i++) {
        double xo = original_coord(p, a, i);
        oob[i] = outside(p, a, xo);
        if (p->mode == RS_LINEAR && p->coord != CT_TF_CROP_AND_RESIZE && !p->antialias)
            xo = xo < 0 ? 0 : xo > (double)(in - 1) ? (double)(in - 1) : xo;
        double fl = floor(xo);
        float ratio = (float)(xo - fl), sum = 0;
        int64_t *ix = tp->idx + i * width;
        float *w = tp->w + i * width;
        for (int64_t k = 0; k < width; k++) {
            int64_t off = start + k;
            float t = ((float)off - ratio) * ks;
            float v = p->mode == RS_LINEAR ? fmaxf(0.0f, 1.0f - fabsf(t)) : cubic_kernel(t, p->cubic_a);
            int64_t j = (int64_t)fl + off;
            if (j < 0 || j >= in) {
                if (p->exclude_outside)
                    v = 0;
                j = j < 0 ? 0 : in - 1;
            }
            ix[k] = j;
            w[k] = v;
            sum += v;
        }
        if ((p->antialias || p->exclude_outside) && sum != 0)
            for (int64_t k = 0; k < width; k++)
                w[k] /= sum;
    }
    return OQ_OK;
}

/* Resamples axis a of src (dims cur) into dst (dims cur with cur[a] = out).
 * Work items are (outer index, output index) pairs, each writing `inner` floats. */
typedef struct resample_ctx {
    const float *src;
    float *dst;
    int64_t outer, in, out, inner;
    const taps *tp;
    size_t n_tasks;
} resample_ctx;

static void resample_task(void *vc, size_t task, size_t thread)
{
    (void)thread;
    const resample_ctx *c = vc;
    int64_t items = c->outer * c->out;
    int64_t lo = items * (int64_t)task / (int64_t)c->n_tasks, hi = items * (int64_t)(task + 1) / (int64_t)c->n_tasks;
    int64_t inner = c->inner;
    for (int64_t it = lo; it < hi; it++) {
        int64_t o = it / c->out, i = it % c->out;
        const float *s = c->src + o * c->in * inner;
        const int64_t *ix = c->tp->idx + i * c->tp->width;
        const float *w = c->tp->w + i * c->tp->width;
        float *di = c->dst + it * inner;
        for (int64_t j = 0; j < inner; j++)
            di[j] = 0;
        for (int64_t k = 0; k < c->tp->width; k++) {
            if (w[k] == 0)
                continue;
            const float *sk = s + ix[k] * inner;
            float wk = w[k];
            for (int64_t j = 0; j < inner; j++)
                di[j] += wk * sk[j];
        }
    }
}

static void resample_axis(oq_threadpool *pool, const float *src, float *dst, int nd, const int64_t *cur, int a,
                          int64_t out, const taps *tp)
{
    resample_ctx c = {src, dst, 1, cur[a], out, 1, tp, 1};
    for (int k = 0; k < a; k++)
        c.outer *= cur[k];
    for (int k = a + 1; k < nd; k++)
        c.inner *= cur[k];
    int64_t items = c.outer * out;
    int th = oq_threadpool_size(pool);
    if (th > 1 && items > 1 && (double)items * (double)c.inner * (double)tp->width >= 32768.0)
        c.n_tasks = (size_t)th * 4 < (size_t)items ? (size_t)th * 4 : (size_t)items;
    if (c.n_tasks == 1)
        resample_task(&c, 0, 0);
    else
        oq_parallel_for(pool, c.n_tasks, resample_task, &c);
}

static oq_status run_interp(const rs_plan *p, const oq_tensor *x, oq_tensor *y, oq_threadpool *pool)
{
    int nd = p->nd;
    int64_t total = oq_tensor_numel(y);
    if (total <= 0)
        return OQ_OK;
    if (nd == 0) {
        memcpy(y->data, x->data, sizeof(float));
        return OQ_OK;
    }
    /* the largest intermediate: each pass only changes one axis */
    int64_t cur[OQ_MAX_DIMS], maxn = oq_tensor_numel(x);
    memcpy(cur, p->idims, sizeof cur);
    for (int a = 0; a < nd; a++) {
        cur[a] = p->odims[a];
        int64_t c = oq_shape_numel(nd, cur);
        maxn = c > maxn ? c : maxn;
    }
    bool *oob[OQ_MAX_DIMS] = {NULL};
    float *buf[2] = {oq_malloc((size_t)maxn * sizeof(float)), oq_malloc((size_t)maxn * sizeof(float))};
    oq_status st = buf[0] && buf[1] ? OQ_OK : oq_error(OQ_E_NOMEM, "out of memory");
    const float *src = x->data;
    memcpy(cur, p->idims, sizeof cur);
    int which = 0;
    bool any_oob = false;
    for (int a = 0; a < nd && st == OQ_OK; a++) {
        oob[a] = oq_calloc((size_t)p->odims[a] + 1, sizeof(bool));
        if (!oob[a]) {
            st = oq_error(OQ_E_NOMEM, "out of memory");
            break;
        }
        bool identity = p->odims[a] == p->idims[a] && p->scale[a] == 1 && p->coord != CT_TF_CROP_AND_RESIZE;
        if (identity)
            continue;
        taps tp = {0, NULL, NULL};
        st = make_taps(p, a, &tp, oob[a]);
        if (st == OQ_OK) {
            for (int64_t i = 0; i < p->odims[a]; i++)
                any_oob |= oob[a][i];
            resample_axis(pool, src, buf[which], nd, cur, a, p->odims[a], &tp);
            cur[a] = p->odims[a];
            src = buf[which];
            which ^= 1;
        }
        free(tp.idx);
        free(tp.w);
    }
    if (st == OQ_OK) {
        memcpy(y->data, src, (size_t)total * sizeof(float));
        if (any_oob) {
            float *d = y->data;
            for (int64_t e = 0; e < total; e++) {
                int64_t rem = e;
                for (int a = nd - 1; a >= 0; a--) {
                    if (oob[a][rem % p->odims[a]]) {
                        d[e] = p->extrapolation;
                        break;
                    }
                    rem /= p->odims[a];
                }
            }
        }
    }
    for (int a = 0; a < nd; a++)
        free(oob[a]);
    free(buf[0]);
    free(buf[1]);
    return st;
}

static oq_status resize_run_common(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out, bool up)
{
    rs_plan p;
    oq_status st = plan_make(n, in, up, &p);
    if (st != OQ_OK)
        return st;
    return p.mode == RS_NEAREST ? run_nearest(&p, in[0], out[0], n->tp) : run_interp(&p, in[0], out[0], n->tp);
}

static oq_status resize_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return resize_infer_common(n, in, out, false);
}
static oq_status resize_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return resize_run_common(n, in, out, false);
}
static oq_status upsample_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return resize_infer_common(n, in, out, true);
}
static oq_status upsample_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return resize_run_common(n, in, out, true);
}
const oq_op_def oq_op_resize = {NULL, resize_infer, resize_run, NULL};
const oq_op_def oq_op_upsample = {NULL, upsample_infer, upsample_run, NULL};
