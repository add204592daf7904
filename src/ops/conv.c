/* ops/conv: Conv and ConvTranspose (1-D, 2-D, 3-D, NCHW). Conv runs as GEMM
 * (weights packed once at prepare; 1x1 convs read the input directly, others go
 * through the im2col packer) or, for depthwise, the dwconv kernels. ConvTranspose
 * is GEMM + col2im. A fused activation (onnxq_activation) clamps in the epilogue. */
#include "kernels/f32-conv/conv.h"
#include "ops/op.h"

#include <stdlib.h>
#include <string.h>

typedef struct fused_act {
    bool clamp;
    float min, max;
} fused_act;

/* Activation a fusion pass attached to the node (onnxq-internal attributes). */
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

/* Spatial attributes resolved against an input shape. */
typedef struct conv_attrs {
    int r; /* spatial rank */
    int64_t kernel[3], stride[3], dilation[3], pad_begin[3], pad_end[3], out[3];
} conv_attrs;

static oq_status read_ints(const oq_op_node *n, const char *name, int r, int64_t dflt, int64_t *dst, int64_t min)
{
    const int64_t *v;
    size_t c = oq_node_attr_ints(n->node, name, &v);
    if (v && c != (size_t)r)
        return oq_op_error(n, OQ_E_INVALID_ARG, "%s has %zu values, expected %d", name, c, r);
    for (int i = 0; i < r; i++) {
        dst[i] = v ? v[i] : dflt;
        if (dst[i] < min)
            return oq_op_error(n, OQ_E_INVALID_ARG, "%s[%d] = %lld is out of range", name, i, (long long)dst[i]);
    }
    return OQ_OK;
}

/* Kernel shape, strides, dilations and pads of a Conv/ConvTranspose for spatial
 * rank r with kernel dims kdims (from W). Output sizes are left to the caller. */
static oq_status read_conv_attrs(const oq_op_node *n, int r, const int64_t *kdims, conv_attrs *ca)
{
    oq_status st;
    if (r < 1 || r > 3)
        return oq_op_error(n, OQ_E_UNSUPPORTED, "%d spatial dimensions are not supported (1 to 3)", r);
    ca->r = r;
    const int64_t *ks;
    size_t nk = oq_node_attr_ints(n->node, "kernel_shape", &ks);
    if (ks && nk != (size_t)r)
        return oq_op_error(n, OQ_E_INVALID_ARG, "kernel_shape has %zu values, expected %d", nk, r);
    for (int i = 0; i < r; i++) {
        ca->kernel[i] = kdims[i];
        if (ks && ks[i] != kdims[i])
            return oq_op_error(n, OQ_E_SHAPE, "kernel_shape[%d] = %lld does not match the weight (%lld)", i,
                               (long long)ks[i], (long long)kdims[i]);
        if (kdims[i] < 1)
            return oq_op_error(n, OQ_E_SHAPE, "weight kernel dimension %d is %lld", i, (long long)kdims[i]);
    }
    if ((st = read_ints(n, "strides", r, 1, ca->stride, 1)) || (st = read_ints(n, "dilations", r, 1, ca->dilation, 1)))
        return st;
    const int64_t *pads;
    size_t np = oq_node_attr_ints(n->node, "pads", &pads);
    if (pads && np != (size_t)(2 * r))
        return oq_op_error(n, OQ_E_INVALID_ARG, "pads has %zu values, expected %d", np, 2 * r);
    for (int i = 0; i < r; i++) {
        ca->pad_begin[i] = pads ? pads[i] : 0;
        ca->pad_end[i] = pads ? pads[r + i] : 0;
        if (ca->pad_begin[i] < 0 || ca->pad_end[i] < 0)
            return oq_op_error(n, OQ_E_INVALID_ARG, "negative pads are not supported");
    }
    return OQ_OK;
}

/* Conv output sizes (and pads for auto_pad) for input spatial sizes in. */
static oq_status conv_out_shape(const oq_op_node *n, const int64_t *in, conv_attrs *ca)
{
    const char *ap = oq_node_attr_string(n->node, "auto_pad", "NOTSET");
    for (int i = 0; i < ca->r; i++) {
        int64_t ext = (ca->kernel[i] - 1) * ca->dilation[i] + 1, s = ca->stride[i];
        if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
            int64_t o = (in[i] + s - 1) / s;
            int64_t total = (o - 1) * s + ext - in[i];
            if (total < 0)
                total = 0;
            bool upper = !strcmp(ap, "SAME_UPPER");
            ca->pad_begin[i] = upper ? total / 2 : total - total / 2;
            ca->pad_end[i] = total - ca->pad_begin[i];
        } else if (!strcmp(ap, "VALID")) {
            ca->pad_begin[i] = ca->pad_end[i] = 0;
        } else if (strcmp(ap, "NOTSET") != 0)
            return oq_op_error(n, OQ_E_INVALID_ARG, "auto_pad '%s' is not valid", ap);
        int64_t span = in[i] + ca->pad_begin[i] + ca->pad_end[i] - ext;
        if (span < 0)
            return oq_op_error(n, OQ_E_SHAPE, "kernel extent %lld exceeds padded input %lld in dimension %d",
                               (long long)ext, (long long)(in[i] + ca->pad_begin[i] + ca->pad_end[i]), i);
        ca->out[i] = span / s + 1;
    }
    return OQ_OK;
}

/* 3-D geometry with unused leading dims set to 1. */
static void to_geom(const conv_attrs *ca, const int64_t *in, oq_f32_conv_geom *g)
{
    int off = 3 - ca->r;
    for (int i = 0; i < 3; i++) {
        int j = i - off;
        g->in[i] = j >= 0 ? (size_t)in[j] : 1;
        g->out[i] = j >= 0 ? (size_t)ca->out[j] : 1;
        g->kernel[i] = j >= 0 ? (size_t)ca->kernel[j] : 1;
        g->stride[i] = j >= 0 ? (size_t)ca->stride[j] : 1;
        g->dilation[i] = j >= 0 ? (size_t)ca->dilation[j] : 1;
        g->pad[i] = j >= 0 ? (size_t)ca->pad_begin[j] : 0;
    }
}

/* ---- Conv ---- */
typedef struct conv_state {
    const oq_f32_gemm_variant *v;
    float *packed_w; /* per group, packed_size floats each */
    size_t packed_size;
    const void *w_data; /* the constant weight it came from */
    fused_act act;
    oq_scratch ws;
} conv_state;

static void conv_destroy(void *p)
{
    conv_state *s = p;
    if (!s)
        return;
    oq_aligned_free(s->packed_w);
    oq_scratch_free(&s->ws);
    free(s);
}

static oq_status conv_prepare(oq_op_node *n)
{
    if (n->n_inputs < 2 || n->n_inputs > 3 || n->n_outputs != 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "Conv takes 2 or 3 inputs and one output");
    conv_state *s = calloc(1, sizeof *s);
    if (!s)
        return oq_error(OQ_E_NOMEM, "out of memory");
    n->state = s;
    s->v = oq_f32_gemm_default();
    oq_status st = read_fused_act(n, &s->act);
    if (st != OQ_OK)
        return st;
    int64_t group = oq_node_attr_int(n->node, "group", 1);
    if (group < 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "group must be >= 1, got %lld", (long long)group);
    const oq_tensor *w = n->consts[1];
    if (w && w->dtype == OQ_FLOAT && w->ndim >= 3 && w->dims[0] > 0 && w->dims[0] % group == 0 && !(w->dims[1] == 1 && group > 1)) {
        /* depthwise (W[:,1]) reads the raw weights; everything else packs them per group */
        size_t mg = (size_t)(w->dims[0] / group), kg = (size_t)(oq_tensor_numel(w) / w->dims[0]);
        s->packed_size = oq_f32_gemm_packed_a_size(s->v, mg, kg);
        s->packed_w = oq_aligned_alloc((size_t)group * s->packed_size * sizeof(float) + 64);
        if (!s->packed_w)
            return oq_error(OQ_E_NOMEM, "out of memory packing Conv weights");
        for (int64_t g = 0; g < group; g++)
            oq_f32_gemm_pack_a(s->v, mg, kg, (const float *)w->data + (size_t)g * mg * kg, kg, 1,
                               s->packed_w + (size_t)g * s->packed_size);
        s->w_data = w->data;
    }
    return OQ_OK;
}

static oq_status conv_check(const oq_op_node *n, const oq_tensor *const *in, conv_attrs *ca, int64_t *group)
{
    oq_status st;
    if ((st = oq_check_input(n, in, 0, OQ_FLOAT, OQ_UNDEFINED)) || (st = oq_check_input(n, in, 1, OQ_FLOAT, OQ_UNDEFINED)))
        return st;
    const oq_tensor *x = in[0], *w = in[1], *b = n->n_inputs > 2 ? in[2] : NULL;
    if (x->ndim < 3 || w->ndim != x->ndim)
        return oq_op_error(n, OQ_E_SHAPE, "Conv needs X and W of the same rank >= 3, got %d and %d", x->ndim, w->ndim);
    *group = oq_node_attr_int(n->node, "group", 1);
    if (*group < 1 || x->dims[1] % *group != 0 || w->dims[0] % *group != 0 || w->dims[1] != x->dims[1] / *group)
        return oq_op_error(n, OQ_E_SHAPE, "channels do not match: X has %lld, W is [%lld,%lld,...], group %lld",
                           (long long)x->dims[1], (long long)w->dims[0], (long long)w->dims[1], (long long)*group);
    if (b && (b->dtype != OQ_FLOAT || oq_tensor_numel(b) != w->dims[0]))
        return oq_op_error(n, OQ_E_SHAPE, "Conv bias must be float with %lld values", (long long)w->dims[0]);
    if ((st = read_conv_attrs(n, x->ndim - 2, w->dims + 2, ca)) != OQ_OK)
        return st;
    return conv_out_shape(n, x->dims + 2, ca);
}

static oq_status conv_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    conv_attrs ca;
    int64_t group;
    oq_status st = conv_check(n, in, &ca, &group);
    if (st != OQ_OK)
        return st;
    int64_t dims[5] = {in[0]->dims[0], in[1]->dims[0]};
    for (int i = 0; i < ca.r; i++)
        dims[2 + i] = ca.out[i];
    oq_set_shape(out[0], OQ_FLOAT, ca.r + 2, dims);
    return OQ_OK;
}

typedef struct dw_job {
    oq_f32_dwconv_params p;
    const oq_f32_dwconv_variant *v;
    const float *x, *w, *bias;
    float *y, *ws;
    size_t channels, mult, ws_floats, ksize;
    size_t planes, per_task; /* output planes (batch x channels), planes per task */
} dw_job;

static void dw_task(void *ctx, size_t task, size_t thread)
{
    const dw_job *j = ctx;
    size_t end = (task + 1) * j->per_task < j->planes ? (task + 1) * j->per_task : j->planes;
    for (size_t t = task * j->per_task; t < end; t++) {
        size_t img = t / j->channels, oc = t % j->channels;
        const float *x = j->x + (img * (j->channels / j->mult) + oc / j->mult) * j->p.ih * j->p.iw;
        float *y = j->y + t * j->p.oh * j->p.ow;
        j->v->fn(&j->p, x, j->w + oc * j->ksize, j->bias ? j->bias[oc] : 0.0f, y, j->ws + thread * j->ws_floats);
    }
}

/* Images of a batch as tasks, each a one-thread GEMM with its thread's workspace:
 * for small images (a 28x28 plane of 8 channels) one image's product is too small
 * to split, and the batch is where the parallelism is. */
typedef struct img_job {
    const oq_f32_gemm_variant *v;
    oq_f32_gemm_args g;
    oq_f32_im2col cv;
    const float *x;
    float *y;
    uint8_t *ws;
    size_t ws_stride, in_image, out_image;
} img_job;

static void img_task(void *ctx, size_t task, size_t thread)
{
    const img_job *j = ctx;
    oq_f32_gemm_args g = j->g;
    oq_f32_im2col cv = j->cv;
    const float *xi = j->x + task * j->in_image;
    cv.x = xi;
    g.b.pack_ctx = g.b.pack ? &cv : NULL;
    g.b.data = g.b.pack ? NULL : xi;
    g.c = j->y + task * j->out_image;
    oq_f32_gemm_run(j->v, &g, j->ws + thread * j->ws_stride, NULL);
}

static oq_status conv_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    conv_state *s = n->state;
    conv_attrs ca;
    int64_t group;
    oq_status st = conv_check(n, in, &ca, &group);
    if (st != OQ_OK)
        return st;
    const oq_tensor *x = in[0], *w = in[1], *b = n->n_inputs > 2 ? in[2] : NULL;
    oq_f32_conv_geom geo;
    to_geom(&ca, x->dims + 2, &geo);
    size_t batch = (size_t)x->dims[0], cin = (size_t)x->dims[1], cout = (size_t)w->dims[0];
    size_t G = (size_t)group, cg = cin / G, mg = cout / G;
    size_t in_plane = geo.in[0] * geo.in[1] * geo.in[2], out_plane = geo.out[0] * geo.out[1] * geo.out[2];
    size_t ksize = geo.kernel[0] * geo.kernel[1] * geo.kernel[2], kg = cg * ksize;
    size_t n_threads = (size_t)oq_threadpool_size(n->tp);
    const float *bias = b ? b->data : NULL;
    float *y = out[0]->data;
    if (out_plane == 0 || cout == 0 || batch == 0)
        return OQ_OK;

    if (cg == 1 && G > 1 && geo.in[0] == 1 && geo.kernel[0] == 1) {
        dw_job j;
        memset(&j, 0, sizeof j);
        j.p = (oq_f32_dwconv_params){geo.in[1], geo.in[2], geo.out[1], geo.out[2], geo.kernel[1], geo.kernel[2],
                                     geo.stride[1], geo.stride[2], geo.dilation[1], geo.dilation[2], geo.pad[1],
                                     geo.pad[2], s->act.clamp, s->act.min, s->act.max};
        j.v = oq_f32_dwconv_default();
        j.x = x->data;
        j.w = w->data;
        j.bias = bias;
        j.y = y;
        j.channels = cout;
        j.mult = mg;
        j.ksize = ksize;
        j.ws_floats = (oq_f32_dwconv_workspace_size(&j.p) + 15) / 16 * 16;
        j.ws = oq_scratch_get(&s->ws, j.ws_floats * n_threads * sizeof(float));
        if (!j.ws)
            return oq_error(OQ_E_NOMEM, "out of memory for depthwise workspace");
        /* A 7x7 plane is ~50 ns of work, less than claiming a task costs when both
         * threads contend for the counter: MobileNetV2's 960-channel 7x7 layers ran
         * slower on 2 threads than on 1. Tasks of at least ~4K outputs. */
        j.planes = batch * cout;
        j.per_task = 4096 / out_plane > 1 ? 4096 / out_plane : 1;
        oq_parallel_for(n->tp, (j.planes + j.per_task - 1) / j.per_task, dw_task, &j);
        return OQ_OK;
    }

    oq_f32_gemm_args g = oq_f32_gemm_args_init(mg, out_plane, kg);
    g.batch = G;
    if (s->packed_w && s->w_data == w->data) {
        g.a.packed = s->packed_w;
        g.a.stride = s->packed_size;
    } else {
        g.a.data = w->data;
        g.a.rs = kg;
        g.a.cs = 1;
        g.a.stride = mg * kg;
    }
    bool pointwise = ksize == 1 && geo.stride[0] == 1 && geo.stride[1] == 1 && geo.stride[2] == 1 && geo.pad[0] == 0 &&
                     geo.pad[1] == 0 && geo.pad[2] == 0 && out_plane == in_plane;
    oq_f32_im2col cv;
    memset(&cv, 0, sizeof cv);
    cv.batch_stride = cg * in_plane;
    cv.channels = cg;
    cv.g = geo;
    oq_f32_gemm_pack_fn pack = oq_f32_im2col_pack_default();
    if (pointwise && pack == oq_f32_im2col_pack) {
        g.b.rs = in_plane;
        g.b.cs = 1;
        g.b.stride = cg * in_plane;
    } else if (pointwise) {
        /* one row of in_plane pixels: every panel row is a single contiguous run */
        memset(&cv.g, 0, sizeof cv.g);
        for (int d = 0; d < 3; d++) {
            cv.g.in[d] = cv.g.out[d] = d == 2 ? in_plane : 1;
            cv.g.kernel[d] = cv.g.stride[d] = cv.g.dilation[d] = 1;
        }
    }
    if (!pointwise || pack != oq_f32_im2col_pack) {
        g.b.pack = pack;
        g.b.pack_ctx = &cv;
    }
    g.ldc = out_plane;
    g.c_stride = mg * out_plane;
    if (bias) {
        g.bias = bias;
        g.bias_kind = OQ_F32_BIAS_ROW;
        g.bias_stride = mg;
    }
    if (s->act.clamp) {
        g.clamp = true;
        g.min = s->act.min;
        g.max = s->act.max;
    }
    /* a batch of small images: one image per task (below about 2^20 MACs an image, where
     * splitting one product over the threads gained little: the Fashion-MNIST CNN at batch
     * 32 ran as fast on 2 threads as on 1) */
    if (n_threads > 1 && batch >= 2 * n_threads && (double)cout * (double)out_plane * (double)kg < (double)(1 << 20)) {
        img_job ij = {.v = s->v, .g = g, .cv = cv, .x = x->data, .y = y, .in_image = cin * in_plane,
                      .out_image = cout * out_plane};
        ij.ws_stride = (oq_f32_gemm_workspace_size(s->v, &g, 1) + 63) / 64 * 64;
        if (!(ij.ws = oq_scratch_get(&s->ws, n_threads * ij.ws_stride + 64)))
            return oq_error(OQ_E_NOMEM, "out of memory for Conv workspace");
        oq_parallel_for(n->tp, batch, img_task, &ij);
        return OQ_OK;
    }
    void *ws = oq_scratch_get(&s->ws, oq_f32_gemm_workspace_size(s->v, &g, n_threads));
    if (!ws)
        return oq_error(OQ_E_NOMEM, "out of memory for Conv workspace");
    for (size_t img = 0; img < batch; img++) {
        const float *xi = (const float *)x->data + img * cin * in_plane;
        cv.x = xi;
        g.b.data = g.b.pack ? NULL : xi;
        g.c = y + img * cout * out_plane;
        oq_f32_gemm_run(s->v, &g, ws, n->tp);
    }
    return OQ_OK;
}

const oq_op_def oq_op_conv = {conv_prepare, conv_infer, conv_run, conv_destroy};

/* ---- ConvTranspose ---- */
typedef struct convt_state {
    const oq_f32_gemm_variant *v;
    oq_scratch ws, col;
} convt_state;

static void convt_destroy(void *p)
{
    convt_state *s = p;
    if (!s)
        return;
    oq_scratch_free(&s->ws);
    oq_scratch_free(&s->col);
    free(s);
}

static oq_status convt_prepare(oq_op_node *n)
{
    if (n->n_inputs < 2 || n->n_inputs > 3 || n->n_outputs != 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "ConvTranspose takes 2 or 3 inputs and one output");
    convt_state *s = calloc(1, sizeof *s);
    if (!s)
        return oq_error(OQ_E_NOMEM, "out of memory");
    s->v = oq_f32_gemm_default();
    n->state = s;
    return OQ_OK;
}

static oq_status convt_check(const oq_op_node *n, const oq_tensor *const *in, conv_attrs *ca, int64_t *group)
{
    oq_status st;
    if ((st = oq_check_input(n, in, 0, OQ_FLOAT, OQ_UNDEFINED)) || (st = oq_check_input(n, in, 1, OQ_FLOAT, OQ_UNDEFINED)))
        return st;
    const oq_tensor *x = in[0], *w = in[1], *b = n->n_inputs > 2 ? in[2] : NULL;
    if (x->ndim < 3 || w->ndim != x->ndim)
        return oq_op_error(n, OQ_E_SHAPE, "ConvTranspose needs X and W of the same rank >= 3, got %d and %d", x->ndim,
                           w->ndim);
    *group = oq_node_attr_int(n->node, "group", 1);
    if (*group < 1 || x->dims[1] % *group != 0 || w->dims[0] != x->dims[1])
        return oq_op_error(n, OQ_E_SHAPE, "channels do not match: X has %lld, W has %lld, group %lld",
                           (long long)x->dims[1], (long long)w->dims[0], (long long)*group);
    int64_t cout = w->dims[1] * *group;
    if (b && (b->dtype != OQ_FLOAT || oq_tensor_numel(b) != cout))
        return oq_op_error(n, OQ_E_SHAPE, "ConvTranspose bias must be float with %lld values", (long long)cout);
    int r = x->ndim - 2;
    if ((st = read_conv_attrs(n, r, w->dims + 2, ca)) != OQ_OK)
        return st;
    int64_t opad[3];
    if ((st = read_ints(n, "output_padding", r, 0, opad, 0)) != OQ_OK)
        return st;
    const int64_t *os;
    size_t nos = oq_node_attr_ints(n->node, "output_shape", &os);
    if (os && nos != (size_t)r && nos != (size_t)r + 2)
        return oq_op_error(n, OQ_E_INVALID_ARG, "output_shape has %zu values, expected %d", nos, r);
    if (os && nos == (size_t)r + 2)
        os += 2;
    const char *ap = oq_node_attr_string(n->node, "auto_pad", "NOTSET");
    bool same = !strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER");
    if (!same && strcmp(ap, "NOTSET") != 0 && strcmp(ap, "VALID") != 0)
        return oq_op_error(n, OQ_E_INVALID_ARG, "auto_pad '%s' is not valid", ap);
    for (int i = 0; i < r; i++) {
        int64_t in_sz = x->dims[2 + i], ext = (ca->kernel[i] - 1) * ca->dilation[i] + 1;
        int64_t full = ca->stride[i] * (in_sz - 1) + opad[i] + ext;
        if (!strcmp(ap, "VALID"))
            ca->pad_begin[i] = ca->pad_end[i] = 0;
        if (os || same) {
            int64_t want = os ? os[i] : in_sz * ca->stride[i];
            int64_t total = full - want;
            if (total < 0)
                total = 0; /* the extra output beyond the kernel's reach is bias only */
            if (!strcmp(ap, "SAME_UPPER")) {
                ca->pad_begin[i] = total / 2;
                ca->pad_end[i] = total - total / 2;
            } else {
                ca->pad_begin[i] = total - total / 2;
                ca->pad_end[i] = total / 2;
            }
            ca->out[i] = want;
        } else
            ca->out[i] = full - ca->pad_begin[i] - ca->pad_end[i];
        if (ca->out[i] < 0)
            return oq_op_error(n, OQ_E_SHAPE, "negative output size in dimension %d", i);
    }
    return OQ_OK;
}

static oq_status convt_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    conv_attrs ca;
    int64_t group;
    oq_status st = convt_check(n, in, &ca, &group);
    if (st != OQ_OK)
        return st;
    int64_t dims[5] = {in[0]->dims[0], in[1]->dims[1] * group};
    for (int i = 0; i < ca.r; i++)
        dims[2 + i] = ca.out[i];
    oq_set_shape(out[0], OQ_FLOAT, ca.r + 2, dims);
    return OQ_OK;
}

typedef struct col2im_job {
    oq_f32_conv_geom g; /* in: the ConvTranspose input (GEMM columns), out: its output */
    const float *col;   /* [cout_g * ksize, in_plane] */
    float *y;           /* first output channel of the group */
    const float *bias;
} col2im_job;

static void col2im_task(void *ctx, size_t co, size_t thread)
{
    (void)thread;
    const col2im_job *j = ctx;
    const oq_f32_conv_geom *g = &j->g;
    size_t out_plane = g->out[0] * g->out[1] * g->out[2], in_plane = g->in[0] * g->in[1] * g->in[2];
    size_t ksize = g->kernel[0] * g->kernel[1] * g->kernel[2];
    float *y = j->y + co * out_plane;
    float bv = j->bias ? j->bias[co] : 0.0f;
    for (size_t i = 0; i < out_plane; i++)
        y[i] = bv;
    for (size_t kz = 0; kz < g->kernel[0]; kz++)
        for (size_t ky = 0; ky < g->kernel[1]; ky++)
            for (size_t kx = 0; kx < g->kernel[2]; kx++) {
                size_t kidx = (kz * g->kernel[1] + ky) * g->kernel[2] + kx;
                const float *c = j->col + (co * ksize + kidx) * in_plane;
                for (size_t iz = 0; iz < g->in[0]; iz++) {
                    ptrdiff_t oz = (ptrdiff_t)(iz * g->stride[0] + kz * g->dilation[0]) - (ptrdiff_t)g->pad[0];
                    if (oz < 0 || oz >= (ptrdiff_t)g->out[0])
                        continue;
                    for (size_t iy = 0; iy < g->in[1]; iy++) {
                        ptrdiff_t oy = (ptrdiff_t)(iy * g->stride[1] + ky * g->dilation[1]) - (ptrdiff_t)g->pad[1];
                        if (oy < 0 || oy >= (ptrdiff_t)g->out[1])
                            continue;
                        float *yr = y + ((size_t)oz * g->out[1] + (size_t)oy) * g->out[2];
                        const float *cr = c + (iz * g->in[1] + iy) * g->in[2];
                        for (size_t ix = 0; ix < g->in[2]; ix++) {
                            ptrdiff_t ox = (ptrdiff_t)(ix * g->stride[2] + kx * g->dilation[2]) - (ptrdiff_t)g->pad[2];
                            if (ox >= 0 && ox < (ptrdiff_t)g->out[2])
                                yr[ox] += cr[ix];
                        }
                    }
                }
            }
}

static oq_status convt_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    convt_state *s = n->state;
    conv_attrs ca;
    int64_t group;
    oq_status st = convt_check(n, in, &ca, &group);
    if (st != OQ_OK)
        return st;
    const oq_tensor *x = in[0], *w = in[1], *b = n->n_inputs > 2 ? in[2] : NULL;
    col2im_job j;
    memset(&j, 0, sizeof j);
    to_geom(&ca, x->dims + 2, &j.g);
    size_t batch = (size_t)x->dims[0], cin = (size_t)x->dims[1], G = (size_t)group, cg = cin / G;
    size_t cog = (size_t)w->dims[1], cout = cog * G;
    size_t in_plane = j.g.in[0] * j.g.in[1] * j.g.in[2], out_plane = j.g.out[0] * j.g.out[1] * j.g.out[2];
    size_t ksize = j.g.kernel[0] * j.g.kernel[1] * j.g.kernel[2], rows = cog * ksize;
    if (out_plane == 0 || cout == 0 || batch == 0)
        return OQ_OK;
    float *col = oq_scratch_get(&s->col, rows * in_plane * sizeof(float) + 64);
    if (!col)
        return oq_error(OQ_E_NOMEM, "out of memory for ConvTranspose columns");
    /* col[rows, in_plane] = W_g^T [rows, cg] x X_g [cg, in_plane] */
    oq_f32_gemm_args g = oq_f32_gemm_args_init(rows, in_plane, cg);
    g.a.data = w->data;
    g.a.rs = 1;
    g.a.cs = rows;
    g.b.rs = in_plane;
    g.b.cs = 1;
    g.c = col;
    g.ldc = in_plane;
    void *ws = oq_scratch_get(&s->ws, oq_f32_gemm_workspace_size(s->v, &g, (size_t)oq_threadpool_size(n->tp)));
    if (!ws)
        return oq_error(OQ_E_NOMEM, "out of memory for ConvTranspose workspace");
    const float *wd = w->data, *xd = x->data;
    for (size_t img = 0; img < batch; img++)
        for (size_t gi = 0; gi < G; gi++) {
            g.a.data = wd + gi * cg * rows;
            g.b.data = xd + (img * cin + gi * cg) * in_plane;
            oq_f32_gemm_run(s->v, &g, ws, n->tp);
            j.col = col;
            j.y = (float *)out[0]->data + (img * cout + gi * cog) * out_plane;
            j.bias = b ? (const float *)b->data + gi * cog : NULL;
            oq_parallel_for(n->tp, cog, col2im_task, &j);
        }
    return OQ_OK;
}

const oq_op_def oq_op_convtranspose = {convt_prepare, convt_infer, convt_run, convt_destroy};
