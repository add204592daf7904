/* ops/qlinear_conv: QLinearConv and ConvInteger (NCHW, 1-3 spatial dims, groups,
 * strides, dilations, pads, auto_pad) on the q8 kernels. Constant weights are
 * converted to s8 and packed per group at prepare; the input is read as the
 * GEMM's vector operand through the im2col packer (padding with the input zero
 * point; 1x1 stride-1 planes are read in place). Depthwise (one input channel
 * per group, multiplier 1, 2-D) runs the depthwise kernel. A fused Relu/Clip
 * (onnxq_activation) narrows the output range. With the session-only attribute
 * onnxq_float_output (set by the QDQ fusion for a Conv whose output is read in
 * float), y_scale/y_zero_point are absent and y is float: (acc + bias) * x_scale *
 * w_scale, the integer conv's exact sum scaled as DequantizeLinear would. With
 * onnxq_dynamic_input as well (set by the dynamic-quantization fusion for onnxruntime's
 * DynamicQuantizeLinear -> ConvInteger -> Cast -> Mul [-> Add] chain), x is float and is
 * quantized to u8 per run as DynamicQuantizeLinear does (x_scale / x_zero_point absent),
 * and B, when present, is a float bias added to the scaled sum. With the session-only
 * onnxq_nhwc (set by passes/layout_nhwc.c), x and y are channels-last [N, H, W, C]
 * (1) or only y is (2: a chain's first convolution): the pixel-row form without its
 * transposes, or the padded form with a transposing crop. */
#include "kernels/q8/q8.h"
#include "ops/op.h"

#include <stdlib.h>
#include <string.h>

typedef struct qconv_state {
    bool integer; /* ConvInteger: int32 output, no scales */
    bool to_float; /* onnxq_float_output: float y, no y_scale / y_zero_point */
    bool dynamic;  /* onnxq_dynamic_input: float x quantized per run, float bias */
    bool nhwc;     /* onnxq_nhwc 1: x and y channels-last (see qconv_run) */
    bool nhwc_out; /* onnxq_nhwc 2: x NCHW, y channels-last (a chain's first convolution) */
    uint8_t *xq;   /* the quantized input of a dynamic run */
    size_t xq_cap;
    const oq_q8_gemm_variant *v;
    uint8_t *packed_w; /* per group, packed_size bytes each */
    int32_t *rowsum;   /* per output channel */
    /* pixel-row form (see pixel_rows): the u8s8 variant, the weights packed as
     * its columns (group 1 only, on first use) and their sums */
    const oq_q8_gemm_variant *vt;
    uint8_t *packed_wt;
    int32_t *colsum_wt;
    /* channels-last depthwise: packed weight pairs and per-channel weight sums
     * (oq_q8_dw_nhwc_pack) of the weights at dw_w_data */
    int32_t *dw_w2, *dw_wsum, *dw_w3; /* dw_w3 NULL: no 3-wide form */
    const void *dw_w_data;
    oq_scratch dw_ws; /* its per-thread tap rows */
    size_t packed_size;
    const void *w_data;
    bool act;
    float act_min, act_max;
    oq_scratch ws; /* grown per run */
} qconv_state;

static void qconv_destroy(void *p)
{
    qconv_state *s = p;
    if (!s)
        return;
    oq_aligned_free(s->packed_w);
    oq_aligned_free(s->xq);
    free(s->rowsum);
    oq_aligned_free(s->packed_wt);
    free(s->colsum_wt);
    free(s->dw_w2);
    free(s->dw_wsum);
    free(s->dw_w3);
    oq_scratch_free(&s->dw_ws);
    oq_scratch_free(&s->ws);
    free(s);
}

/* Input indices of the two layouts. */
typedef struct qconv_io {
    int x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, bias;
} qconv_io;
static const qconv_io QLINEAR_IO = {0, 1, 2, 3, 4, 5, 6, 7, 8};
static const qconv_io INTEGER_IO = {0, -1, 2, 1, -1, 3, -1, -1, -1};

static const oq_tensor *input(const oq_op_node *n, const oq_tensor *const *in, int i)
{
    return i >= 0 && (size_t)i < n->n_inputs ? in[i] : NULL;
}

static oq_status read_act(const oq_op_node *n, qconv_state *s)
{
    const char *name = oq_node_attr_string(n->node, "onnxq_activation", NULL);
    s->act_min = -INFINITY;
    s->act_max = INFINITY;
    if (!name)
        return OQ_OK;
    const float *p = NULL;
    size_t np = oq_node_attr_floats(n->node, "onnxq_activation_params", &p);
    s->act = true;
    if (!strcmp(name, "Relu"))
        s->act_min = 0.0f;
    else if (!strcmp(name, "Clip") && np == 2) {
        s->act_min = p[0];
        s->act_max = p[1];
    } else
        return oq_op_error(n, OQ_E_UNSUPPORTED, "fused activation '%s' is not supported on a quantized node", name);
    return OQ_OK;
}

static bool is_q8(oq_dtype t) { return t == OQ_UINT8 || t == OQ_INT8; }

/* Packs the weight of every group as the s8 broadcast operand (u8 weights are
 * shifted by 128 with x ^ 0x80; the zero point shifts with them). */
static void pack_weights(const qconv_state *s, const oq_tensor *w, size_t group, uint8_t *dst, int32_t *rowsum)
{
    if (w->dims[0] <= 0 || group == 0)
        return; /* no output channels: nothing to pack */
    size_t m = (size_t)w->dims[0], mg = m / group, kg = (size_t)(oq_tensor_numel(w) / w->dims[0]);
    uint8_t x = w->dtype == OQ_UINT8 ? 0x80 : 0;
    for (size_t g = 0; g < group; g++)
        oq_q8_pack_a(s->v, mg, kg, (const uint8_t *)w->data + g * mg * kg, kg, 1, x, dst + g * s->packed_size,
                     rowsum + g * mg);
}

/* The pixel-row form: the GEMM's rows are output pixels (u8s8: the pixel's
 * patch is broadcast from a row of A, the weights are packed columns) and C,
 * pixels x channels, is transposed into y afterwards. The usual form puts
 * pixels in 32-column panels, so a pixel count that fills them poorly (7x7: 49
 * of 64; 14x14 on the padded grid: 224 columns of which 196 are kept) wastes
 * that share of every product, while a tile of A rows costs in proportion to
 * its rows. A is built from a pixel-major copy of the input: a 1x1 stride-1
 * convolution reads that copy in place, others copy kernel-tap runs of C bytes
 * per pixel (k in (ky, kx, c) order, the weights reordered to match). Group 1,
 * constant weights, 2-D, c4 kernels (not AMX), small planes. */
static bool pixel_rows(const qconv_state *s, size_t group, bool have_packed, const oq_q8_conv_geom *g,
                       size_t grid, size_t m, bool in_place)
{
    size_t out_plane = g->out[0] * g->out[1] * g->out[2], in_plane = g->in[0] * g->in[1] * g->in[2];
    size_t kg = g->channels * g->kernel[1] * g->kernel[2];
    if (group != 1 || !have_packed || !s->vt || s->vt->ka != 4 || g->in[0] != 1 || g->kernel[0] != 1 ||
        out_plane == 0 || out_plane > 1024 || m == 0 || kg == 0)
        return false;
    /* MACs the panels waste either way, against the bytes the rows form moves:
     * two transposes (~0.5 cycle a byte) and the tap runs (~0.1), next to
     * vpdpbusd's 64 MACs a cycle. Single-conv models, 1 thread CPU time (the
     * ratio saved/cost in brackets): ResNet18's 28x28 3x3 (0.97) 0.64 -> 0.57-0.60
     * ms, 7x7 3x3 (>3) 0.84 -> 0.57, MobileNetV2's 7x7 1x1 160->960 (1.3) 0.06 ->
     * 0.05, but its 14x14 1x1 96->576 (0.37) 0.07 -> 0.10: the threshold sits between. */
    double waste_cols = (double)((grid + s->v->nr - 1) / s->v->nr * s->v->nr - out_plane) * (double)m;
    double waste_rows = (double)((m + s->vt->nr - 1) / s->vt->nr * s->vt->nr - m) * (double)out_plane;
    double saved = (waste_cols - waste_rows) * (double)kg / 64.0;
    double cost = 0.5 * (double)(g->channels * in_plane + m * out_plane) + (in_place ? 0.0 : 0.1 * (double)(out_plane * kg));
    return saved > 0.6 * cost;
}

/* The weights (group 1, m x C x taps) packed as the u8s8 variant's columns in
 * (tap, c) order: s8 (u8 ^ 0x80), with column sums. */
static oq_status pack_weights_t(qconv_state *s, const oq_op_node *n, const oq_tensor *w, size_t taps)
{
    size_t m = (size_t)w->dims[0], kg = (size_t)(oq_tensor_numel(w) / w->dims[0]), c = kg / taps;
    s->packed_wt = oq_aligned_alloc(oq_q8_packed_b_size(s->vt, kg, m));
    s->colsum_wt = malloc(m * sizeof(int32_t));
    uint8_t *re = malloc(m * kg);
    if (!s->packed_wt || !s->colsum_wt || !re) {
        oq_aligned_free(s->packed_wt);
        free(s->colsum_wt);
        free(re);
        s->packed_wt = NULL;
        s->colsum_wt = NULL;
        return oq_error(OQ_E_NOMEM, "out of memory packing the weights of '%s'", n->label);
    }
    const uint8_t *src = w->data;
    for (size_t j = 0; j < m; j++)
        for (size_t ci = 0; ci < c; ci++)
            for (size_t t = 0; t < taps; t++)
                re[j * kg + t * c + ci] = src[j * kg + ci * taps + t];
    oq_q8_pack_b(s->vt, kg, m, re, 1, kg, w->dtype == OQ_UINT8 ? 0x80 : 0, s->packed_wt, s->colsum_wt);
    free(re);
    return OQ_OK;
}

/* Byte transposes split over threads: rows [task*per, ...) of src (the transpose
 * writes their columns of dst). */
typedef struct transpose_job {
    const uint8_t *src;
    uint8_t *dst;
    size_t rows, cols, ss, ds, per;
    uint8_t x;
} transpose_job;

static void transpose_task(void *ctx, size_t task, size_t thread)
{
    (void)thread;
    const transpose_job *j = ctx;
    size_t r0 = task * j->per, r1 = r0 + j->per < j->rows ? r0 + j->per : j->rows;
    oq_q8_transpose_u8(j->src + r0 * j->ss, r1 - r0, j->cols, j->ss, j->dst + r0, j->ds, j->x);
}

static void transpose_par(oq_threadpool *tp, size_t n_threads, const uint8_t *src, size_t rows, size_t cols, size_t ss,
                          uint8_t *dst, size_t ds, uint8_t x)
{
    /* blocks of 16 rows (whole 16 x 16 tiles), a few per thread */
    size_t per = n_threads > 1 ? (rows + 4 * n_threads - 1) / (4 * n_threads) : rows;
    per = (per + 15) / 16 * 16;
    transpose_job j = {src, dst, rows, cols, ss, ds, per ? per : 16, x};
    oq_parallel_for(tp, (rows + j.per - 1) / j.per, transpose_task, &j);
}

/* The padded form's output: the first out[2] of every wp columns of rows of cp.
 * Channels-last y (m > 0, bytes): rows are output rows, each the transpose of
 * its m channel rows (pix apart in cp). */
typedef struct crop_job {
    const uint8_t *cp;
    uint8_t *y;
    size_t rows, wp, w, es, per, m, pix;
} crop_job;

static void crop_task(void *ctx, size_t task, size_t thread)
{
    (void)thread;
    const crop_job *j = ctx;
    size_t r1 = (task + 1) * j->per < j->rows ? (task + 1) * j->per : j->rows;
    for (size_t r = task * j->per; r < r1; r++)
        if (j->m)
            oq_q8_transpose_u8(j->cp + r * j->wp, j->m, j->w, j->pix, j->y + r * j->w * j->m, j->m, 0);
        else
            memcpy(j->y + r * j->w * j->es, j->cp + r * j->wp * j->es, j->w * j->es);
}

/* Rows of A for output pixels [p0, p1): pixel (oy, ox) gets, tap by tap, the C
 * bytes of input pixel (oy*sy + ky*dy - py, ox*sx + kx*dx - px) of the
 * pixel-major copy xt (xor-ed with x), or C bytes of pad outside the image.
 * Undilated taps of one kernel row inside the image are one run of kw*C bytes. */
typedef struct rows_job {
    const oq_q8_conv_geom *g;
    const uint8_t *xt;
    uint8_t *a;
    uint8_t pad, x;
    size_t per;
    /* planar: xt is NCHW (channel planes of `plane` bytes) and a row is in the
     * weights' own (c, ky, kx) order (build_rows_planar) */
    bool planar;
    size_t plane;
} rows_job;

static void build_rows(const rows_job *j, size_t p0, size_t p1, uint8_t *a);

static void copy_xor(uint8_t *d, const uint8_t *s, size_t n, uint8_t x)
{
    if (!x) {
        memcpy(d, s, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        d[i] = s[i] ^ x;
}

static void rows_task(void *ctx, size_t task, size_t thread)
{
    (void)thread;
    const rows_job *j = ctx;
    size_t n = j->g->out[1] * j->g->out[2], p0 = task * j->per, p1 = p0 + j->per < n ? p0 + j->per : n;
    build_rows(j, p0, p1, j->a + p0 * j->g->channels * j->g->kernel[1] * j->g->kernel[2]);
}

/* Rows of A from NCHW planes, (c, ky, kx) order: per channel and kernel row the
 * kw bytes x[c][iy][ix0 ..] (a channels-last chain's first convolution, whose
 * few input channels make channels-last runs short). The input rows of an output
 * row are looked up once; runs inside the image go 8 bytes at a time where 8
 * bytes fit in the row (a's rows end with slack). */
static void build_rows_planar(const rows_job *j, size_t p0, size_t p1, uint8_t *a)
{
    const oq_q8_conv_geom *g = j->g;
    size_t kw = g->kernel[2], kh = g->kernel[1], nr = g->channels * kh, kg = nr * kw;
    const uint64_t flip = j->x ? 0x8080808080808080ull : 0;
    const uint8_t *rp[256]; /* per (c, ky) of the current output row: its input row, or NULL (pad) */
    size_t cur = SIZE_MAX;
    for (size_t p = p0; p < p1; p++) {
        size_t oy = p / g->out[2], ox = p % g->out[2];
        uint8_t *d = a + (p - p0) * kg;
        if (oy != cur && nr <= 256) {
            for (size_t ci = 0; ci < g->channels; ci++)
                for (size_t ky = 0; ky < kh; ky++) {
                    size_t iy = oy * g->stride[1] + ky * g->dilation[1] - g->pad[1]; /* wraps below 0 */
                    rp[ci * kh + ky] = iy < g->in[1] ? j->xt + ci * j->plane + iy * g->in[2] : NULL;
                }
            cur = oy;
        }
        size_t ix0 = ox * g->stride[2] - g->pad[2]; /* wraps below 0 */
        bool run = g->dilation[2] == 1 && ox * g->stride[2] >= g->pad[2] && ix0 + kw <= g->in[2];
        if (nr <= 256 && run && kw <= 8 && ix0 + 8 <= g->in[2]) {
            /* 8 bytes a run: the ones past kw are overwritten by the next run (or land in slack) */
            for (size_t r = 0; r < nr; r++, d += kw) {
                if (!rp[r]) {
                    memset(d, j->pad, kw);
                    continue;
                }
                uint64_t v;
                memcpy(&v, rp[r] + ix0, 8);
                v ^= flip;
                memcpy(d, &v, 8);
            }
            continue;
        }
        for (size_t ci = 0; ci < g->channels; ci++) {
            const uint8_t *xc = j->xt + ci * j->plane;
            for (size_t ky = 0; ky < kh; ky++, d += kw) {
                size_t iy = oy * g->stride[1] + ky * g->dilation[1] - g->pad[1]; /* wraps below 0 */
                if (iy >= g->in[1]) {
                    memset(d, j->pad, kw);
                    continue;
                }
                const uint8_t *row = xc + iy * g->in[2];
                if (run)
                    copy_xor(d, row + ix0, kw, j->x);
                else
                    for (size_t kx = 0; kx < kw; kx++) {
                        size_t ix = ox * g->stride[2] + kx * g->dilation[2] - g->pad[2];
                        d[kx] = ix < g->in[2] ? row[ix] ^ j->x : j->pad;
                    }
            }
        }
    }
}

/* The rows of output pixels [p0, p1) into a. */
static void build_rows(const rows_job *j, size_t p0, size_t p1, uint8_t *a)
{
    if (j->planar) {
        build_rows_planar(j, p0, p1, a);
        return;
    }
    const oq_q8_conv_geom *g = j->g;
    size_t c = g->channels, kw = g->kernel[2], kh = g->kernel[1], taps = kh * kw, kg = taps * c;
    for (size_t p = p0; p < p1; p++) {
        size_t oy = p / g->out[2], ox = p % g->out[2];
        uint8_t *d = a + (p - p0) * kg;
        size_t ix0 = ox * g->stride[2] - g->pad[2]; /* wraps below 0 */
        bool run = g->dilation[2] == 1 && ox * g->stride[2] >= g->pad[2] && ix0 + kw <= g->in[2];
        if (run && kh <= 16) { /* one run of kw*C bytes per kernel row (pad rows NULL) */
            const uint8_t *src[16];
            for (size_t ky = 0; ky < kh; ky++) {
                size_t iy = oy * g->stride[1] + ky * g->dilation[1] - g->pad[1]; /* wraps below 0 */
                src[ky] = iy < g->in[1] ? j->xt + (iy * g->in[2] + ix0) * c : NULL;
            }
            oq_q8_copy_runs(d, src, kh, kw * c, j->x, j->pad);
            continue;
        }
        for (size_t ky = 0; ky < kh; ky++) {
            size_t iy = oy * g->stride[1] + ky * g->dilation[1] - g->pad[1]; /* wraps below 0 */
            if (iy >= g->in[1]) {
                memset(d, j->pad, kw * c);
                d += kw * c;
                continue;
            }
            const uint8_t *row = j->xt + iy * g->in[2] * c;
            for (size_t kx = 0; kx < kw; kx++, d += c) {
                size_t ix = ox * g->stride[2] + kx * g->dilation[2] - g->pad[2];
                if (ix < g->in[2])
                    copy_xor(d, row + ix * c, c, j->x);
                else
                    memset(d, j->pad, c);
            }
        }
    }
}

/* Channels-last convolutions whose A would outgrow L2: each task builds the A
 * rows of a chunk of output pixels in its thread's buffer and multiplies them at
 * once, while they are in cache (layer1 of ResNet18: A is 1.8 MB; built whole, it
 * is written to and read back from L3). */
typedef struct chunk_job {
    rows_job rj;
    oq_q8_gemm_args ga; /* the whole product: m, a and c are set per chunk */
    const oq_q8_gemm_variant *v;
    uint8_t *ws; /* per thread: the A chunk, then the GEMM's workspace */
    size_t ws_stride, a_bytes, chunk, n, esize;
} chunk_job;

static void chunk_task(void *ctx, size_t task, size_t thread)
{
    const chunk_job *j = ctx;
    size_t p0 = task * j->chunk, p1 = p0 + j->chunk < j->n ? p0 + j->chunk : j->n;
    uint8_t *a = j->ws + thread * j->ws_stride;
    build_rows(&j->rj, p0, p1, a);
    oq_q8_gemm_args ga = j->ga;
    ga.m = p1 - p0;
    ga.a = a;
    ga.c = (uint8_t *)j->ga.c + p0 * j->ga.ldc * j->esize;
    oq_q8_gemm_run(j->v, &ga, a + j->a_bytes, NULL);
}

/* Channels-last depthwise (onnxq_nhwc): output rows of the batch split over the
 * threads, the weights packed once (oq_q8_dw_nhwc in q8.h). */
typedef struct dw_nhwc_job {
    oq_q8_dw_nhwc d;
    const uint8_t *x;
    uint8_t *y, *ws; /* ws: per thread, ws_stride bytes apart */
    size_t rows, per, in_image, out_image, ws_stride;
} dw_nhwc_job;

static void dw_nhwc_task(void *ctx, size_t task, size_t thread)
{
    const dw_nhwc_job *j = ctx;
    size_t r0 = task * j->per, r1 = r0 + j->per < j->rows ? r0 + j->per : j->rows, oh = j->d.g->out[1];
    while (r0 < r1) { /* runs of rows of one image */
        size_t b = r0 / oh, e = (b + 1) * oh < r1 ? (b + 1) * oh : r1;
        oq_q8_dw_nhwc_rows(&j->d, j->x + b * j->in_image, j->y + b * j->out_image, r0 - b * oh, e - b * oh,
                           j->ws ? j->ws + thread * j->ws_stride : NULL);
        r0 = e;
    }
}

static oq_status dw_nhwc_run(oq_op_node *n, qconv_state *s, const oq_q8_conv_geom *g1, const oq_tensor *x,
                             const oq_tensor *w, uint8_t *y, size_t batch, const int32_t *w_zps, int32_t w_zp,
                             int32_t x_zp, const oq_tensor *bias, const float *scales, oq_q8_out outk,
                             oq_requant_range range, uint8_t *ws)
{
    oq_q8_conv_geom geom = *g1; /* g1 describes one channel's plane: here a pixel holds them all */
    const oq_q8_conv_geom *g = &geom;
    geom.channels = (size_t)w->dims[0];
    size_t m = g->channels, taps = g->kernel[1] * g->kernel[2], pairs = (taps + 1) / 2;
    if (!s->dw_w2 || s->dw_w_data != w->data) {
        free(s->dw_w2);
        free(s->dw_wsum);
        free(s->dw_w3);
        s->dw_w2 = malloc(pairs * m * sizeof *s->dw_w2 + 1);
        s->dw_wsum = malloc(m * sizeof *s->dw_wsum + 1);
        s->dw_w3 = malloc(g->kernel[1] * m * sizeof *s->dw_w3 + 1);
        s->dw_w_data = NULL;
        if (!s->dw_w2 || !s->dw_wsum || !s->dw_w3)
            return oq_error(OQ_E_NOMEM, "out of memory packing the weights of '%s'", n->label);
        if (!oq_q8_dw_nhwc_pack(m, g->kernel[1], g->kernel[2], w->data, w->dtype == OQ_INT8, w_zps, w_zp, s->dw_w2,
                                s->dw_wsum, s->dw_w3)) {
            free(s->dw_w3);
            s->dw_w3 = NULL;
        }
        s->dw_w_data = w->data;
    }
    int32_t *bias_eff = (int32_t *)ws;
    uint8_t *pad = ws + (m * 4 + 63) / 64 * 64;
    for (size_t c = 0; c < m; c++) { /* wrapping: the exact sum fits, its parts need not */
        uint32_t b = bias ? (uint32_t)((const int32_t *)bias->data)[c] : 0;
        bias_eff[c] = (int32_t)(b - (uint32_t)x_zp * (uint32_t)s->dw_wsum[c]);
    }
    memset(pad, (uint8_t)x_zp, m);
    size_t n_threads = (size_t)oq_threadpool_size(n->tp);
    dw_nhwc_job j = {.d = {g, x->dtype == OQ_INT8, s->dw_w2, s->dw_w3, bias_eff, s->dw_wsum, scales, outk, range, pad},
                     .x = x->data, .y = y, .rows = batch * g->out[1],
                     .in_image = g->in[1] * g->in[2] * m, .out_image = g->out[1] * g->out[2] * m};
    j.ws_stride = (oq_q8_dw_nhwc_ws_size(&j.d) + 63) / 64 * 64;
    if (j.ws_stride && !(j.ws = oq_scratch_get(&s->dw_ws, n_threads * j.ws_stride)))
        return oq_error(OQ_E_NOMEM, "out of memory for the workspace of '%s'", n->label);
    /* one band of rows per thread: a band's first rows build tap rows its neighbour
     * builds too, and on MobileNetV2's 14x14 and 7x7 planes four bands a thread
     * were slower (2 threads: 1.83 against 1.78 ms); the caller takes a band a
     * descheduled worker has not started */
    j.per = (j.rows + n_threads - 1) / n_threads;
    j.per = j.per ? j.per : 1;
    oq_parallel_for(n->tp, (j.rows + j.per - 1) / j.per, dw_nhwc_task, &j);
    return OQ_OK;
}

static bool depthwise(const oq_tensor *x, const oq_tensor *w, int64_t group)
{
    return group > 1 && x->ndim <= 4 && w->dims[1] == 1 && w->dims[0] == group && x->dims[1] == group;
}

static oq_status qconv_prepare_common(oq_op_node *n, bool integer)
{
    qconv_state *s = calloc(1, sizeof *s);
    if (!s)
        return oq_error(OQ_E_NOMEM, "out of memory");
    n->state = s;
    s->integer = integer;
    size_t lo = integer ? 2 : oq_node_attr_int(n->node, "onnxq_float_output", 0) ? 6 : 8, hi = integer ? 4 : 9;
    if (n->n_inputs < lo || n->n_inputs > hi || n->n_outputs != 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "%s takes %zu to %zu inputs and one output",
                           integer ? "ConvInteger" : "QLinearConv", lo, hi);
    s->v = oq_q8_gemm_default(OQ_Q8_S8U8);
    s->vt = oq_q8_gemm_default(OQ_Q8_U8S8);
    s->to_float = !integer && oq_node_attr_int(n->node, "onnxq_float_output", 0) != 0;
    s->dynamic = s->to_float && oq_node_attr_int(n->node, "onnxq_dynamic_input", 0) != 0;
    int64_t layout = oq_node_attr_int(n->node, "onnxq_nhwc", 0);
    s->nhwc = layout == 1;
    s->nhwc_out = layout == 2;
    oq_status st = read_act(n, s);
    if (st != OQ_OK)
        return st;
    if ((layout < 0 || layout > 2) || (layout && (integer || s->to_float)))
        return oq_op_error(n, OQ_E_UNSUPPORTED, "onnxq_nhwc needs a quantized input and output");
    if (s->to_float && s->act)
        return oq_op_error(n, OQ_E_UNSUPPORTED, "a fused activation needs a quantized output");
    int64_t group = oq_node_attr_int(n->node, "group", 1);
    if (group < 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "group must be >= 1, got %lld", (long long)group);
    const oq_tensor *w = n->consts[integer ? INTEGER_IO.w : QLINEAR_IO.w];
    bool valid_w = w && is_q8(w->dtype) && w->ndim >= 3 && w->dims[0] > 0 && w->dims[0] % group == 0;
    if (valid_w && layout && group == 1 && w->dims[1] > 0) {
        /* a channels-last convolution multiplies pixel rows by weight columns only: those are
         * packed, in (tap, c) order, or (c, tap) for a chain's first one (rows from the planes) */
        st = pack_weights_t(s, n, w, layout == 2 ? 1 : (size_t)(oq_tensor_numel(w) / (w->dims[0] * w->dims[1])));
        if (st == OQ_OK)
            s->w_data = w->data;
        return st;
    }
    if (valid_w && !(w->dims[1] == 1 && group > 1)) {
        size_t mg = (size_t)(w->dims[0] / group), kg = (size_t)(oq_tensor_numel(w) / w->dims[0]);
        s->packed_size = oq_q8_packed_a_size(s->v, mg, kg);
        s->packed_w = oq_aligned_alloc((size_t)group * s->packed_size + 64);
        s->rowsum = malloc((size_t)w->dims[0] * sizeof(int32_t));
        if (!s->packed_w || !s->rowsum)
            return oq_error(OQ_E_NOMEM, "out of memory packing the weights of '%s'", n->label);
        pack_weights(s, w, (size_t)group, s->packed_w, s->rowsum);
        s->w_data = w->data;
    }
    return OQ_OK;
}

static oq_status qlinearconv_prepare(oq_op_node *n) { return qconv_prepare_common(n, false); }
static oq_status convinteger_prepare(oq_op_node *n) { return qconv_prepare_common(n, true); }

typedef struct conv_attrs {
    int r;
    int64_t kernel[3], stride[3], dilation[3], pad_begin[3], pad_end[3], out[3];
} conv_attrs;

static oq_status read_ints(const oq_op_node *n, const char *name, int r, int64_t dflt, int64_t *dst)
{
    const int64_t *v;
    size_t c = oq_node_attr_ints(n->node, name, &v);
    if (v && c != (size_t)r)
        return oq_op_error(n, OQ_E_INVALID_ARG, "%s has %zu values, expected %d", name, c, r);
    for (int i = 0; i < r; i++) {
        dst[i] = v ? v[i] : dflt;
        if (dst[i] < 1)
            return oq_op_error(n, OQ_E_INVALID_ARG, "%s[%d] = %lld must be >= 1", name, i, (long long)dst[i]);
    }
    return OQ_OK;
}

static oq_status conv_geometry(const oq_op_node *n, const oq_tensor *x, const oq_tensor *w, conv_attrs *ca)
{
    oq_status st;
    int r = x->ndim - 2;
    if (r < 1 || r > 3)
        return oq_op_error(n, OQ_E_UNSUPPORTED, "%d spatial dimensions are not supported (1 to 3)", r);
    ca->r = r;
    const int64_t *ks;
    size_t nk = oq_node_attr_ints(n->node, "kernel_shape", &ks);
    if (ks && nk != (size_t)r)
        return oq_op_error(n, OQ_E_INVALID_ARG, "kernel_shape has %zu values, expected %d", nk, r);
    for (int i = 0; i < r; i++) {
        ca->kernel[i] = w->dims[2 + i];
        if (ca->kernel[i] < 1 || (ks && ks[i] != ca->kernel[i]))
            return oq_op_error(n, OQ_E_SHAPE, "kernel dimension %d (%lld) does not match kernel_shape", i,
                               (long long)ca->kernel[i]);
    }
    if ((st = read_ints(n, "strides", r, 1, ca->stride)) || (st = read_ints(n, "dilations", r, 1, ca->dilation)))
        return st;
    const int64_t *pads;
    size_t np = oq_node_attr_ints(n->node, "pads", &pads);
    if (pads && np != (size_t)(2 * r))
        return oq_op_error(n, OQ_E_INVALID_ARG, "pads has %zu values, expected %d", np, 2 * r);
    const char *ap = oq_node_attr_string(n->node, "auto_pad", "NOTSET");
    for (int i = 0; i < r; i++) {
        ca->pad_begin[i] = pads ? pads[i] : 0;
        ca->pad_end[i] = pads ? pads[r + i] : 0;
        if (ca->pad_begin[i] < 0 || ca->pad_end[i] < 0)
            return oq_op_error(n, OQ_E_INVALID_ARG, "negative pads are not supported");
        int64_t in = x->dims[2 + i], ext = (ca->kernel[i] - 1) * ca->dilation[i] + 1, s = ca->stride[i];
        if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
            int64_t o = (in + s - 1) / s, total = (o - 1) * s + ext - in;
            total = total < 0 ? 0 : total;
            ca->pad_begin[i] = !strcmp(ap, "SAME_UPPER") ? total / 2 : total - total / 2;
            ca->pad_end[i] = total - ca->pad_begin[i];
        } else if (!strcmp(ap, "VALID"))
            ca->pad_begin[i] = ca->pad_end[i] = 0;
        else if (strcmp(ap, "NOTSET") != 0)
            return oq_op_error(n, OQ_E_INVALID_ARG, "auto_pad '%s' is not valid", ap);
        int64_t span = in + ca->pad_begin[i] + ca->pad_end[i] - ext;
        if (span < 0)
            return oq_op_error(n, OQ_E_SHAPE, "kernel extent %lld exceeds the padded input in dimension %d",
                               (long long)ext, i);
        ca->out[i] = span / s + 1;
    }
    return OQ_OK;
}

/* A zero point: scalar (or 1-element) of the data's type; NULL means 0. */
static oq_status read_zp(const oq_op_node *n, const oq_tensor *zp, oq_dtype type, const char *what, size_t per,
                         bool *vec)
{
    *vec = false;
    if (!zp)
        return OQ_OK;
    if (zp->dtype != type)
        return oq_op_error(n, OQ_E_TYPE, "%s must be %s like its tensor, got %s", what, oq_dtype_name(type),
                           oq_dtype_name(zp->dtype));
    int64_t c = oq_tensor_numel(zp);
    if (c == 1)
        return OQ_OK;
    if (per && (size_t)c == per && zp->ndim == 1) {
        *vec = true;
        return OQ_OK;
    }
    return oq_op_error(n, OQ_E_SHAPE, "%s must be a scalar%s, got %lld values", what,
                       per ? " or one value per output channel" : "", (long long)c);
}

static int32_t q8_at(const oq_tensor *t, size_t i)
{
    if (!t)
        return 0;
    return t->dtype == OQ_INT8 ? ((const int8_t *)t->data)[i] : ((const uint8_t *)t->data)[i];
}

static oq_status read_scale(const oq_op_node *n, const oq_tensor *t, const char *what, size_t per, bool *vec)
{
    *vec = false;
    if (!t || t->dtype != OQ_FLOAT)
        return oq_op_error(n, OQ_E_TYPE, "%s must be a float tensor", what);
    int64_t c = oq_tensor_numel(t);
    if (c != 1 && !(per && (size_t)c == per && t->ndim == 1))
        return oq_op_error(n, OQ_E_SHAPE, "%s must be a scalar%s, got %lld values", what,
                           per ? " or one value per output channel" : "", (long long)c);
    *vec = c != 1;
    for (int64_t i = 0; i < c; i++) {
        float v = ((const float *)t->data)[i];
        if (!(v > 0.0f) || !(v < INFINITY))
            return oq_op_error(n, OQ_E_INVALID_ARG, "%s[%lld] = %g is not a positive finite scale", what, (long long)i,
                               (double)v);
    }
    return OQ_OK;
}

typedef struct qconv_plan {
    conv_attrs ca;
    int64_t group;
    oq_dtype y_type;
} qconv_plan;

/* x as the NCHW code reads its dims: a channels-last x (onnxq_nhwc) described
 * by a view with the channel dim moved to 1 (the data stays as it is). */
static const oq_tensor *logical_x(const qconv_state *s, const oq_tensor *x, oq_tensor *view)
{
    return !s->nhwc || !x || x->ndim < 3 ? x : oq_nchw_view(x, view);
}

static oq_status qconv_check(oq_op_node *n, const oq_tensor *const *in, qconv_plan *p)
{
    const qconv_state *s = n->state;
    const qconv_io *io = s->integer ? &INTEGER_IO : &QLINEAR_IO;
    oq_tensor xv;
    const oq_tensor *x = logical_x(s, input(n, in, io->x), &xv), *w = input(n, in, io->w);
    if (!x || !w || !(s->dynamic ? x->dtype == OQ_FLOAT : is_q8(x->dtype)) || !is_q8(w->dtype))
        return oq_op_error(n, OQ_E_TYPE, "x and w must be uint8 or int8 tensors%s",
                           s->dynamic ? " (x float: quantized per run)" : "");
    if (x->ndim < 3 || w->ndim != x->ndim)
        return oq_op_error(n, OQ_E_SHAPE, "x and w need the same rank >= 3, got %d and %d", x->ndim, w->ndim);
    p->group = oq_node_attr_int(n->node, "group", 1);
    if (p->group < 1 || x->dims[1] % p->group || w->dims[0] % p->group || w->dims[1] != x->dims[1] / p->group)
        return oq_op_error(n, OQ_E_SHAPE, "channels do not match: x has %lld, w is [%lld,%lld,...], group %lld",
                           (long long)x->dims[1], (long long)w->dims[0], (long long)w->dims[1], (long long)p->group);
    p->y_type = s->integer ? OQ_INT32 : s->to_float ? OQ_FLOAT : x->dtype;
    if (!s->integer && !s->to_float) {
        const oq_tensor *yzp = input(n, in, io->y_zp);
        if (yzp)
            p->y_type = yzp->dtype;
        if (!is_q8(p->y_type))
            return oq_op_error(n, OQ_E_TYPE, "y_zero_point must be uint8 or int8");
    }
    return conv_geometry(n, x, w, &p->ca);
}

static oq_status qconv_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    qconv_plan p;
    oq_status st = qconv_check(n, in, &p);
    if (st != OQ_OK)
        return st;
    const qconv_state *s = n->state;
    int64_t dims[5] = {in[0]->dims[0], input(n, in, s->integer ? 1 : 3)->dims[0]};
    for (int i = 0; i < p.ca.r; i++)
        dims[2 + i] = p.ca.out[i];
    if (s->nhwc || s->nhwc_out) { /* [N, spatial..., M] */
        int64_t mc = dims[1];
        for (int i = 0; i < p.ca.r; i++)
            dims[1 + i] = dims[2 + i];
        dims[1 + p.ca.r] = mc;
    }
    oq_set_shape(out[0], p.y_type, p.ca.r + 2, dims);
    return OQ_OK;
}

typedef struct dw_job {
    oq_q8_dw_params p; /* bias, range filled per channel */
    const oq_q8_conv_geom *g;
    const uint8_t *x, *w;
    uint8_t *y;
    size_t channels, in_plane, out_plane, ksize, ysize;
    size_t planes, per; /* batch x channels, planes per task */
    const oq_tensor *bias;
    const int32_t *w_zps; /* per channel, or NULL: p.w_zp */
    const float *scales;  /* per channel, or NULL: p.scale */
} dw_job;

/* Planes [task * per, task * per + per) of batch x channels, in runs of
 * consecutive channels: a task per plane would make the threads fight over the
 * task counter on 7x7 planes, and a kernel call per plane set up the geometry
 * again each time. */
static void dw_task(void *ctx, size_t task, size_t thread)
{
    (void)thread;
    const dw_job *j = ctx;
    size_t end = (task + 1) * j->per < j->planes ? (task + 1) * j->per : j->planes;
    for (size_t plane = task * j->per; plane < end;) {
        size_t c = plane % j->channels, n = end - plane < j->channels - c ? end - plane : j->channels - c;
        oq_q8_dw_channels ch = {n, j->bias ? (const int32_t *)j->bias->data + c : NULL, j->w_zps ? j->w_zps + c : NULL,
                                j->scales ? j->scales + c : NULL};
        oq_q8_dwconv_channels(&j->p, &ch, j->x + plane * j->in_plane, j->w + c * j->ksize,
                              j->y + plane * j->out_plane * j->ysize);
        plane += n;
    }
}

/* A dynamic run's float bias, added to the scaled sums (as the chain's Add did). */
static void add_float_bias(const oq_tensor *bias, float *y, size_t batch, size_t m, size_t plane)
{
    if (!bias)
        return;
    const float *b = bias->data;
    for (size_t i = 0; i < batch; i++)
        for (size_t c = 0; c < m; c++) {
            float *p = y + (i * m + c) * plane;
            for (size_t k = 0; k < plane; k++)
                p[k] += b[c];
        }
}

static oq_status qconv_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    qconv_state *s = n->state;
    const qconv_io *io = s->integer ? &INTEGER_IO : &QLINEAR_IO;
    qconv_plan p;
    oq_status st = qconv_check(n, in, &p);
    if (st != OQ_OK)
        return st;
    oq_tensor xv; /* a channels-last x as NCHW dims */
    const oq_tensor *x = logical_x(s, in[io->x], &xv), *w = in[io->w];
    const oq_tensor *x_zp = input(n, in, io->x_zp), *w_zp = input(n, in, io->w_zp);
    const oq_tensor *bias = input(n, in, io->bias), *bias_f = NULL;
    oq_tensor xqt; /* a dynamic run's quantized x */
    float dyn_scale = 1.0f;
    int32_t dyn_zp = 0;
    if (s->dynamic) {
        size_t count = (size_t)oq_tensor_numel(x);
        if (count > s->xq_cap) {
            oq_aligned_free(s->xq);
            s->xq = oq_aligned_alloc(count + 64);
            s->xq_cap = s->xq ? count : 0;
            if (!s->xq)
                return oq_error(OQ_E_NOMEM, "out of memory for the quantized input of '%s'", n->label);
        }
        oq_quantize_dynamic_u8(x->data, count, s->xq, &dyn_scale, &dyn_zp, n->tp);
        xqt = *x;
        xqt.dtype = OQ_UINT8;
        xqt.data = s->xq;
        x = &xqt;
        x_zp = NULL;
        bias_f = bias;
        bias = NULL;
        if (bias_f && (bias_f->dtype != OQ_FLOAT || oq_tensor_numel(bias_f) != w->dims[0]))
            return oq_op_error(n, OQ_E_SHAPE, "bias B must be float with %lld values", (long long)w->dims[0]);
    }
    size_t m = (size_t)w->dims[0], group = (size_t)p.group, mg = m / group, batch = (size_t)x->dims[0];
    size_t cin = (size_t)x->dims[1], cg = cin / group, ksize = 1, in_plane = 1, out_plane = 1;
    bool xzp_vec, wzp_vec, ws_vec = false;
    if ((st = read_zp(n, x_zp, x->dtype, "x_zero_point", 0, &xzp_vec)) ||
        (st = read_zp(n, w_zp, w->dtype, "w_zero_point", m, &wzp_vec)))
        return st;
    oq_q8_conv_geom g = {.channels = cg};
    int off = 3 - p.ca.r;
    for (int i = 0; i < 3; i++) {
        int j = i - off;
        g.in[i] = j >= 0 ? (size_t)x->dims[2 + j] : 1;
        g.out[i] = j >= 0 ? (size_t)p.ca.out[j] : 1;
        g.kernel[i] = j >= 0 ? (size_t)p.ca.kernel[j] : 1;
        g.stride[i] = j >= 0 ? (size_t)p.ca.stride[j] : 1;
        g.dilation[i] = j >= 0 ? (size_t)p.ca.dilation[j] : 1;
        g.pad[i] = j >= 0 ? (size_t)p.ca.pad_begin[j] : 0;
        ksize *= g.kernel[i];
        in_plane *= g.in[i];
        out_plane *= g.out[i];
    }
    size_t kg = cg * ksize;
    if (bias && (bias->dtype != OQ_INT32 || (size_t)oq_tensor_numel(bias) != m))
        return oq_op_error(n, OQ_E_SHAPE, "bias B must be int32 with %zu values", m);

    /* output stage */
    oq_q8_out outk = OQ_Q8_OUT_I32;
    oq_requant_range range = oq_requant_range_make(0, 0, 255);
    size_t ysize = s->integer ? 4 : 1;
    float *scales = NULL;
    float sx = 1, sy = 1;
    int32_t yzp = 0;
    if (!s->integer) {
        bool v1, v2;
        if ((!s->dynamic && (st = read_scale(n, input(n, in, io->x_scale), "x_scale", 0, &v1))) ||
            (st = read_scale(n, input(n, in, io->w_scale), "w_scale", m, &ws_vec)))
            return st;
        if (s->to_float) {
            sx = s->dynamic ? dyn_scale : *(const float *)in[io->x_scale]->data;
            outk = OQ_Q8_OUT_F32;
            ysize = 4;
            goto stage_done;
        }
        if ((st = read_scale(n, input(n, in, io->y_scale), "y_scale", 0, &v2)))
            return st;
        const oq_tensor *yz = input(n, in, io->y_zp);
        if ((st = read_zp(n, yz, p.y_type, "y_zero_point", 0, &v1)))
            return st;
        sx = *(const float *)in[io->x_scale]->data;
        sy = *(const float *)in[io->y_scale]->data;
        yzp = q8_at(yz, 0);
        int32_t qmin, qmax;
        oq_requant_bounds(p.y_type == OQ_INT8, sy, yzp, s->act_min, s->act_max, &qmin, &qmax);
        range = oq_requant_range_make(yzp, qmin, qmax);
        outk = p.y_type == OQ_INT8 ? OQ_Q8_OUT_S8 : OQ_Q8_OUT_U8;
    }
stage_done:;

    /* workspace: scales, zero points, per-run packed weights, gemm workspace */
    bool have_packed = (s->nhwc || s->nhwc_out ? s->packed_wt != NULL : s->packed_w != NULL) && s->w_data == w->data;
    bool dw = depthwise(x, w, p.group) && p.ca.r <= 2;
    size_t n_threads = (size_t)oq_threadpool_size(n->tp), pix = out_plane;
    oq_q8_gemm_args ga = oq_q8_gemm_args_init(mg, pix, kg);
    size_t packed_size = oq_q8_packed_a_size(s->v, mg, kg);
    /* 2-D but 1x1 stride 1 (read in place): im2col over a padded, stride-phased
     * copy of the input whose rows the taps read in place; the GEMM computes
     * wp-wide output rows and the extra columns are dropped (see
     * oq_q8_im2col_padded_pack) */
    bool padded = !dw && p.ca.r <= 2 && (ksize > 1 || g.stride[1] > 1 || g.stride[2] > 1);
    size_t pad_bottom = padded && p.ca.r == 2 ? (size_t)p.ca.pad_end[0] : 0;
    size_t pad_right = padded ? (size_t)p.ca.pad_end[p.ca.r - 1] : 0;
    size_t wp = 0, plane_p = 0, xp_bytes = 0, cp_bytes = 0;
    if (padded) {
        xp_bytes = oq_q8_im2col_padded_size(&g, pad_bottom, pad_right, &wp, &plane_p);
        pix = g.out[1] * wp;
        cp_bytes = mg * pix * ysize;
        ga = oq_q8_gemm_args_init(mg, pix, kg);
    }
    bool in_place = ksize == 1 && g.stride[1] == 1 && g.stride[2] == 1 && g.pad[1] == 0 && g.pad[2] == 0 &&
                    g.in[1] == g.out[1] && g.in[2] == g.out[2];
    /* Channels-last x and y (onnxq_nhwc, set by the layout pass for chains of
     * convolutions): the rows form without its two transposes, x is already
     * pixel-major and C is y. */
    if ((s->nhwc || s->nhwc_out) && (p.ca.r != 2 || (!(s->nhwc && dw) && (group != 1 || !have_packed))))
        return oq_op_error(n, OQ_E_UNSUPPORTED,
                           "onnxq_nhwc needs a 2-D depthwise or group-1 convolution with constant weights");
    /* the first convolution of a chain (x NCHW, y channels-last): rows built from the planes */
    bool planar = s->nhwc_out;
    bool rows = planar || (s->nhwc && !dw) || (!dw && pixel_rows(s, group, have_packed, &g, pix, m, in_place));
    in_place = in_place && !planar && !(s->nhwc && x->dtype == OQ_INT8); /* an s8 x is copied (xor-ed) into A */
    size_t xt_bytes = 0, a_bytes = 0;
    oq_q8_gemm_args gt = oq_q8_gemm_args_init(out_plane, m, kg);
    if (rows) { /* the rows form's workspace: pixel-major input, A, its GEMM, C before the transpose */
        padded = false;
        dw = false;
        xt_bytes = s->nhwc || planar ? 0 : in_plane * cin;
        a_bytes = in_place ? 0 : out_plane * kg + 64;
        gt.a = (const uint8_t *)64; /* raw A (read in place), for the workspace size */
        gt.a_rs = kg;
        gt.a_cs = 1;
        gt.b_packed = (const uint8_t *)64;
        cp_bytes = s->nhwc || planar ? 0 : out_plane * m * ysize;
    }
    /* chunked channels-last form (see chunk_job): A chunks of about 128 KiB, at
     * least 4 per thread while they keep 8 rows */
    size_t chunk = 0, chunk_stride = 0, chunk_a = 0;
    if (rows && (s->nhwc || planar) && !in_place && out_plane * kg > (256u << 10)) {
        chunk = ((128u << 10) / kg) / 8 * 8;
        size_t fair = (out_plane + 4 * n_threads - 1) / (4 * n_threads);
        fair = (fair + 7) / 8 * 8;
        chunk = fair < chunk ? fair : chunk;
        chunk = chunk < 8 ? 8 : chunk;
        oq_q8_gemm_args gc = gt;
        gc.m = chunk;
        chunk_a = (chunk * kg + 64 + 63) / 64 * 64; /* slack: build_rows_planar's 8-byte runs */
        chunk_stride = chunk_a + (oq_q8_gemm_workspace_size(s->vt, &gc, 1) + 127) / 64 * 64;
        a_bytes = n_threads * chunk_stride;
    }
    size_t gemm_ws = dw ? 0
                     : rows ? oq_q8_gemm_workspace_size(s->vt, &gt, n_threads) + 64 + cp_bytes + xt_bytes + a_bytes + 192
                            : oq_q8_gemm_workspace_size(s->v, &ga, n_threads) + 64;
    size_t bytes = 64 + m * 4 * 3 + (dw ? 2 * m * 4 + m + 192 : 0) + (have_packed || dw ? 0 : group * packed_size + 64) + gemm_ws + 256 +
                   (padded ? xp_bytes + cp_bytes + 128 : 0);
    uint8_t *ws = oq_scratch_get(&s->ws, bytes);
    if (!ws)
        return oq_error(OQ_E_NOMEM, "out of memory for the workspace of '%s'", n->label);
    scales = (float *)ws;
    int32_t *wzp = (int32_t *)(ws + m * 4), *rowsum = (int32_t *)(ws + m * 8);
    uint8_t *rest = ws + ((m * 12 + 63) / 64) * 64;
    uint8_t wx = w->dtype == OQ_UINT8 ? 0x80 : 0, xx = x->dtype == OQ_INT8 ? 0x80 : 0;
    for (size_t c = 0; c < m; c++) {
        float swc = s->integer ? 1.0f : ((const float *)in[io->w_scale]->data)[ws_vec ? c : 0];
        scales[c] = s->integer ? 1.0f : s->to_float ? sx * swc : oq_requant_scale(sx, swc, sy);
        /* weights in the s8 domain: u8 w - zp equals (w ^ 0x80) - (zp - 128) */
        wzp[c] = q8_at(w_zp, wzp_vec ? c : 0) - (wx ? 128 : 0);
    }
    int32_t x_zp0 = s->dynamic ? dyn_zp : q8_at(x_zp, 0);
    int32_t xzp = x_zp0 + (xx ? 128 : 0); /* input in the u8 domain */
    uint8_t *y = out[0]->data;

    if (dw) {
        /* the weight zero points as stored (wzp holds them in the s8 domain) */
        int32_t *w_zps = (int32_t *)rest;
        for (size_t c = 0; wzp_vec && c < m; c++)
            w_zps[c] = q8_at(w_zp, c);
        if (s->nhwc)
            return dw_nhwc_run(n, s, &g, x, w, y, batch, wzp_vec ? w_zps : NULL, q8_at(w_zp, 0), x_zp0, bias,
                               scales, outk, range, (uint8_t *)rest + (m * 4 + 63) / 64 * 64);

        dw_job j = {.g = &g, .x = x->data, .w = w->data, .y = y, .channels = cin, .in_plane = in_plane,
                    .out_plane = out_plane, .ksize = ksize, .ysize = ysize, .bias = bias,
                    .w_zps = wzp_vec ? w_zps : NULL, .scales = s->integer ? NULL : scales};
        j.p = (oq_q8_dw_params){.g = &g, .x_signed = x->dtype == OQ_INT8, .w_signed = w->dtype == OQ_INT8,
                                .x_zp = x_zp0, .w_zp = q8_at(w_zp, 0), .out = outk, .scale = 1.0f,
                                .range = range};
        /* 8 tasks per thread even out uneven progress (the machine may be shared) */
        j.planes = batch * cin;
        j.per = n_threads > 1 ? (j.planes + 8 * n_threads - 1) / (8 * n_threads) : j.planes;
        oq_parallel_for(n->tp, (j.planes + j.per - 1) / j.per, dw_task, &j);
        add_float_bias(bias_f, (float *)(void *)y, batch, m, out_plane);
        return OQ_OK;
    }

    if (rows) {
        if (!s->packed_wt && (st = pack_weights_t(s, n, w, planar ? 1 : ksize)) != OQ_OK)
            return st;
        uint8_t *ct = rest, *xt = ct + (cp_bytes + 63) / 64 * 64, *a = xt + (xt_bytes + 63) / 64 * 64;
        rest = a + (a_bytes + 63) / 64 * 64;
        for (size_t b = 0; b < batch; b++) {
            const uint8_t *xb = (const uint8_t *)x->data + b * cin * in_plane;
            uint8_t *yb = y + b * m * out_plane * ysize;
            /* pixel-major copy in the u8 domain (s8 input ^ 0x80, its zero point + 128) */
            if (s->nhwc || planar)
                xt = (uint8_t *)(uintptr_t)xb;
            else
                transpose_par(n->tp, n_threads, xb, cin, in_plane, in_plane, xt, cin, xx);
            /* the product: A (pixels x kg, rows read in place) times the packed weight columns */
            gt = oq_q8_gemm_args_init(out_plane, m, kg);
            gt.a = in_place ? xt : a;
            gt.a_rs = kg;
            gt.a_cs = 1;
            gt.b_packed = s->packed_wt;
            gt.b_colsum = s->colsum_wt;
            gt.a_zp = xzp;
            gt.b_zp_cols = wzp;
            if (bias) {
                gt.bias = (const int32_t *)bias->data;
                gt.bias_mode = OQ_Q8_PER_COL;
            }
            gt.out = outk;
            gt.c = s->nhwc || s->nhwc_out ? yb : ct;
            gt.ldc = m;
            gt.scale = scales;
            gt.scale_mode = OQ_Q8_PER_COL;
            gt.range = range;
            if (chunk) {
                chunk_job cj = {.rj = {&g, xt, NULL, (uint8_t)xzp, xx, 0, planar, in_plane}, .ga = gt, .v = s->vt, .ws = a,
                                .ws_stride = chunk_stride, .a_bytes = chunk_a, .chunk = chunk, .n = out_plane,
                                .esize = ysize};
                oq_parallel_for(n->tp, (out_plane + chunk - 1) / chunk, chunk_task, &cj);
                continue;
            }
            if (!in_place) {
                rows_job rj = {&g, xt, a, (uint8_t)xzp, s->nhwc || planar ? xx : 0, 0, planar, in_plane};
                rj.per = n_threads > 1 ? (out_plane + 4 * n_threads - 1) / (4 * n_threads) : out_plane;
                rj.per = rj.per ? rj.per : 1;
                oq_parallel_for(n->tp, (out_plane + rj.per - 1) / rj.per, rows_task, &rj);
            }
            oq_q8_gemm_run(s->vt, &gt, rest, n->tp);
            if (s->nhwc || s->nhwc_out)
                continue;
            if (ysize == 1)
                transpose_par(n->tp, n_threads, ct, out_plane, m, m, yb, out_plane, 0);
            else
                for (size_t p = 0; p < out_plane; p++)
                    for (size_t c = 0; c < m; c++)
                        memcpy(yb + (c * out_plane + p) * 4, ct + (p * m + c) * 4, 4);
        }
        add_float_bias(bias_f, (float *)(void *)y, batch, m, out_plane);
        return OQ_OK;
    }

    if (s->nhwc_out && !padded)
        return oq_op_error(n, OQ_E_UNSUPPORTED, "onnxq_nhwc 2 needs a strided or k x k convolution");
    const uint8_t *packed = s->packed_w;
    const int32_t *rs = s->rowsum;
    if (!have_packed) {
        uint8_t *pw = rest;
        rest += (group * packed_size + 63) / 64 * 64;
        qconv_state tmp = *s;
        tmp.packed_size = packed_size;
        pack_weights(&tmp, w, group, pw, rowsum);
        packed = pw;
        rs = rowsum;
    }
    uint8_t *xp = NULL, *cp = NULL;
    if (padded) {
        xp = rest;
        cp = xp + (xp_bytes + 63) / 64 * 64;
        rest = cp + (cp_bytes + 63) / 64 * 64;
    }
    for (size_t b = 0; b < batch; b++)
        for (size_t gi = 0; gi < group; gi++) {
            const uint8_t *xg = (const uint8_t *)x->data + (b * cin + gi * cg) * in_plane;
            oq_q8_im2col_ctx ic = {&g, xg, xx, (uint8_t)xzp};
            oq_q8_im2col_padded_ctx pc = {&g, xp, wp, plane_p, xx};
            ga = oq_q8_gemm_args_init(mg, pix, kg);
            ga.a_packed = packed + gi * packed_size;
            ga.a_rowsum = rs + gi * mg;
            /* 1x1 convolutions too: the packer reads their channel planes in place */
            ga.pack_b = oq_q8_im2col_pack;
            ga.pack_ctx = &ic;
            if (padded) {
                oq_q8_im2col_padded_fill(&g, pad_bottom, pad_right, xg, (uint8_t)xzp ^ xx, xp);
                ga.pack_b = oq_q8_im2col_padded_pack;
                ga.pack_ctx = &pc;
            }
            ga.a_zp_rows = wzp + gi * mg;
            ga.b_zp = xzp;
            if (bias) {
                ga.bias = (const int32_t *)bias->data + gi * mg;
                ga.bias_mode = OQ_Q8_PER_ROW;
            }
            ga.out = outk;
            uint8_t *yg = y + (b * m + gi * mg) * out_plane * ysize;
            ga.c = padded ? cp : yg;
            ga.ldc = pix;
            ga.scale = scales + gi * mg;
            ga.scale_mode = OQ_Q8_PER_ROW;
            ga.range = range;
            oq_q8_gemm_run(s->v, &ga, rest, n->tp);
            if (padded) { /* keep the first out[2] of every wp columns */
                crop_job cj = {cp, yg, mg * g.out[1], wp, g.out[2], ysize, 0, 0, 0};
                if (s->nhwc_out) {
                    cj.rows = g.out[1];
                    cj.m = m;
                    cj.pix = pix;
                }
                cj.per = n_threads > 1 ? (cj.rows + 4 * n_threads - 1) / (4 * n_threads) : cj.rows;
                cj.per = cj.per ? cj.per : 1; /* no rows: no task, but no division by zero either */
                oq_parallel_for(n->tp, (cj.rows + cj.per - 1) / cj.per, crop_task, &cj);
            }
        }
    add_float_bias(bias_f, (float *)(void *)y, batch, m, out_plane);
    return OQ_OK;
}

const oq_op_def oq_op_qlinearconv = {qlinearconv_prepare, qconv_infer, qconv_run, qconv_destroy};
const oq_op_def oq_op_convinteger = {convinteger_prepare, qconv_infer, qconv_run, qconv_destroy};
