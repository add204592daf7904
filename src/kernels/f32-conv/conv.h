/* kernels/f32-conv: convolution helpers around the f32 GEMM — the im2col packer
 * that writes GEMM B panels straight from an NCDHW image (no col buffer), and
 * depthwise convolution kernels (one channel plane per call) per ISA. */
#ifndef OQ_KERNELS_F32_CONV_H
#define OQ_KERNELS_F32_CONV_H

#include "kernels/f32-gemm/gemm.h"

/* Geometry of a convolution over up to 3 spatial dims (unused leading dims are 1,
 * kernel 1, stride 1, dilation 1, pad 0). pads are the leading pads. */
typedef struct oq_f32_conv_geom {
    size_t in[3], out[3], kernel[3], stride[3], dilation[3], pad[3];
} oq_f32_conv_geom;

/* Context of oq_f32_im2col_pack: the GEMM right operand col[K, N] with
 * K = channels * prod(kernel) (channel-major) and N = prod(out), read from x.
 * Batch index t reads the channels starting at x + t * batch_stride. */
typedef struct oq_f32_im2col {
    const float *x;
    size_t batch_stride;
    size_t channels;
    oq_f32_conv_geom g;
} oq_f32_im2col;

/* An oq_f32_gemm_pack_fn; ctx is an oq_f32_im2col. The portable packer is the
 * specification; the AVX512 one handles horizontal stride 1 and 2 with panels of
 * 32 columns and defers to the portable one otherwise. */
void oq_f32_im2col_pack(const void *ctx, size_t batch, size_t k0, size_t kb, size_t n0, size_t nb, size_t nr,
                        float *dst);
void oq_f32_im2col_pack__avx512(const void *ctx, size_t batch, size_t k0, size_t kb, size_t n0, size_t nb, size_t nr,
                                float *dst);
/* The fastest packer oq_isa_level() allows. */
oq_f32_gemm_pack_fn oq_f32_im2col_pack_default(void);

/* Depthwise convolution of one 2-D channel plane: out[oh][ow] = clamp(bias +
 * sum w[ky][kx] * in[oy*sh + ky*dh - pt][ox*sw + kx*dw - pl]) with zero padding. */
typedef struct oq_f32_dwconv_params {
    size_t ih, iw, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl;
    bool clamp;
    float min, max;
} oq_f32_dwconv_params;

/* ws: oq_f32_dwconv_workspace_size() floats (per concurrent call). */
#define OQ_F32_DWCONV_FUNCTION(fn) \
    void fn(const oq_f32_dwconv_params *p, const float *in, const float *w, float bias, float *out, float *ws)
typedef OQ_F32_DWCONV_FUNCTION((*oq_f32_dwconv_fn));

#define OQ_F32_DWCONV_VARIANT(name, isa) OQ_F32_DWCONV_FUNCTION(name);
#include "kernels/f32-conv/f32-dwconv.inc"
#undef OQ_F32_DWCONV_VARIANT

typedef struct oq_f32_dwconv_variant {
    const char *name;
    oq_isa isa;
    oq_f32_dwconv_fn fn;
} oq_f32_dwconv_variant;

const oq_f32_dwconv_variant *oq_f32_dwconv_variants(size_t *count);
const oq_f32_dwconv_variant *oq_f32_dwconv_default(void);
size_t oq_f32_dwconv_workspace_size(const oq_f32_dwconv_params *p);

/* Shared by the SIMD variants: copies the plane into ws with its zero border so the
 * taps need no bounds checks. Rows are *pitch floats apart; the copy of input pixel
 * (oy*sh + ky*dh, ox*sw + kx*dw) in padded coordinates is at ws[row * pitch + col]. */
void oq_f32_dwconv_pad(const oq_f32_dwconv_params *p, const float *in, float *ws, size_t *pitch);

#endif
