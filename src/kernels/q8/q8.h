/* kernels/q8: exact 8-bit GEMM (int32 accumulation) with a fused output stage,
 * the im2col packer and the depthwise kernel behind QLinearConv, ConvInteger,
 * QLinearMatMul, MatMulInteger, QGemm, MatMulIntegerToFloat, DynamicQuantizeMatMul.
 *
 * Every variant multiplies a "broadcast" operand A (m x k, packed in panels of mr
 * rows) by a "vector" operand B (k x n, panels of nr columns), both packed four
 * k values together ("c4": the 4 bytes vpdpbusd consumes per lane, k padded to a
 * multiple of 4 with zeros). Two flavours: u8s8 (A unsigned: activations times
 * weights, MatMul) and s8u8 (A signed: weights times im2col, NCHW Conv). Other
 * signedness combinations are converted while packing (x ^ 0x80 shifts by 128;
 * the zero point shifts with it), so one exact kernel serves all of them. */
#ifndef OQ_KERNELS_Q8_H
#define OQ_KERNELS_Q8_H

#include "core/core.h"
#include "kernels/requantize.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum oq_q8_flavour { OQ_Q8_U8S8 = 0, OQ_Q8_S8U8 = 1 } oq_q8_flavour;
typedef enum oq_q8_out { OQ_Q8_OUT_I32 = 0, OQ_Q8_OUT_U8, OQ_Q8_OUT_S8, OQ_Q8_OUT_F32 } oq_q8_out;
typedef enum oq_q8_mode { OQ_Q8_SCALAR = 0, OQ_Q8_PER_ROW, OQ_Q8_PER_COL } oq_q8_mode;

/* The output stage of one tile, pointers already offset to the tile's first row
 * (row arrays) and column (column arrays). With acc = sum_k a[i][k] * b[k][j]:
 *   v = acc + row_off[i] + col_off[j] + r1[i]*c1[j] + r2[i]*c2[j]   (int32, wrapping;
 *       NULL arrays and NULL pairs count as zero): the zero-point corrections and bias.
 *   I32: c = v.  U8/S8: c = oq_requantize(v, scale, range).  F32: c = (float)v * scale + bias[j]. */
typedef struct oq_q8_gemm_tile {
    const int32_t *row_off, *col_off;
    const int32_t *r1, *c1, *r2, *c2;
    oq_q8_out out;
    const float *scale;
    oq_q8_mode scale_mode;
    const float *bias; /* F32 only, per column, may be NULL */
    oq_requant_range range;
    /* A's layout. a_stride 0: a packed panel (group g of row i at a + (g*MR + i)*4).
     * Otherwise raw rows read in place: row i at a + i*a_stride, group g at +4g;
     * a_tail 1..3: the last group has only that many bytes of the row, the rest
     * count as zero (never read); 0: all four. */
    size_t a_stride;
    unsigned a_tail;
} oq_q8_gemm_tile;

/* Computes an mr x nr tile (mr <= MR, nr <= NR) from kg groups of 4 k values:
 * a holds kg x MR x 4 bytes (or raw rows, see a_stride: variants with ka 4),
 * b kg x NR x 4 bytes; c[i*ldc + j] (elements of the output type) receives the
 * output stage of t. */
#define OQ_Q8_GEMM_UKERNEL_FUNCTION(fn)                                                                     \
    void fn(size_t mr, size_t nr, size_t kg, const uint8_t *a, const uint8_t *b, void *c, size_t ldc,     \
            const oq_q8_gemm_tile *t)
typedef OQ_Q8_GEMM_UKERNEL_FUNCTION((*oq_q8_gemm_ukernel_fn));

/* The last, partial group of a raw A row (a_tail bytes, 1..3) as one
 * little-endian word, zeros above: never reads past the row. */
static inline int32_t oq_q8_a_tail_word(const uint8_t *p, unsigned n)
{
    uint32_t v = p[0];
    if (n > 1)
        v |= (uint32_t)p[1] << 8;
    if (n > 2)
        v |= (uint32_t)p[2] << 16;
    return (int32_t)v;
}

#define OQ_Q8_GEMM_VARIANT(name, isa, flavour, mr, nr) OQ_Q8_GEMM_UKERNEL_FUNCTION(name);
#include "kernels/q8/q8-gemm.inc"
#undef OQ_Q8_GEMM_VARIANT

/* Packed layouts. B: panels of nr columns, k in groups of 4 ("c4"): group g holds
 * nr x 4 bytes. A: panels of mr rows, k in blocks of ka bytes: block q holds
 * mr x ka bytes (ka = 4 is c4, as vpdpbusd broadcasts it; ka = 64 is the AMX
 * layout, rows of 64 k values a tile row loads), k padded with zeros to ka.
 * AMX kernels read B in blocks of 16 groups: up to 15 groups past a panel's end
 * (multiplied by A's zero padding, so they add nothing), hence b_slack bytes
 * after every packed B. */
typedef struct oq_q8_gemm_variant {
    const char *name;
    oq_isa isa;
    oq_q8_flavour flavour;
    size_t mr, nr;
    oq_q8_gemm_ukernel_fn ukernel;
    size_t ka, b_slack;
    /* Called by the driver around each thread's run of ukernel calls (NULL: none):
     * AMX loads its tile configuration once there, not per tile. */
    void (*begin)(void), (*end)(void);
} oq_q8_gemm_variant;

void oq_q8_amx_begin(void);
void oq_q8_amx_end(void);

/* All variants compiled in, references first. */
const oq_q8_gemm_variant *oq_q8_gemm_variants(size_t *count);
/* The best variant of a flavour that oq_isa_level() allows; chosen once. */
const oq_q8_gemm_variant *oq_q8_gemm_default(oq_q8_flavour flavour);
/* The best variant of a flavour at or below isa (tests and benchmarks). */
const oq_q8_gemm_variant *oq_q8_gemm_for_isa(oq_q8_flavour flavour, oq_isa isa);

/* Packed sizes in bytes: roundup(m, mr) * roundup(k, ka) and roundup(n, nr) * roundup(k, 4) + b_slack. */
size_t oq_q8_packed_a_size(const oq_q8_gemm_variant *v, size_t m, size_t k);
size_t oq_q8_packed_b_size(const oq_q8_gemm_variant *v, size_t k, size_t n);
/* Element (i, p) of A is a[i*rs + p*cs] ^ x (x = 0x80 converts the other
 * signedness); rowsum[i] (optional) receives the sum of row i as the flavour
 * reads it. Same for B with columns and colsum. */
void oq_q8_pack_a(const oq_q8_gemm_variant *v, size_t m, size_t k, const uint8_t *a, size_t rs, size_t cs,
                  uint8_t x, uint8_t *dst, int32_t *rowsum);
void oq_q8_pack_b(const oq_q8_gemm_variant *v, size_t k, size_t n, const uint8_t *b, size_t rs, size_t cs,
                  uint8_t x, uint8_t *dst, int32_t *colsum);

/* Writes columns [n0, n0+nb) of a vector operand produced on the fly (im2col):
 * ceil(nb/nr) panels of roundup(k,4) x nr bytes, and colsum[0..nb) unless
 * colsum is NULL (the driver skips the sums when A's zero point is 0). */
typedef void (*oq_q8_pack_b_fn)(const void *ctx, size_t n0, size_t nb, size_t nr, uint8_t *dst, int32_t *colsum);

/* C = output_stage(A B) for an m x n x k product. Zero points are in the
 * flavour's domain (after any 0x80 conversion): scalar, or per row of A / per
 * column of B when the array is set. */
typedef struct oq_q8_gemm_args {
    size_t m, n, k;
    /* A: packed (with its row sums) or raw (packed into the workspace) */
    const uint8_t *a_packed;
    const int32_t *a_rowsum;
    const uint8_t *a;
    size_t a_rs, a_cs;
    uint8_t a_xor;
    /* B: packed (with its column sums), raw, or produced by pack_b */
    const uint8_t *b_packed;
    const int32_t *b_colsum;
    const uint8_t *b;
    size_t b_rs, b_cs;
    uint8_t b_xor;
    oq_q8_pack_b_fn pack_b;
    const void *pack_ctx;
    int32_t a_zp, b_zp;
    const int32_t *a_zp_rows, *b_zp_cols;
    const int32_t *bias; /* int32, added before the output stage */
    oq_q8_mode bias_mode;
    /* output */
    oq_q8_out out;
    void *c;
    size_t ldc;
    const float *scale;
    oq_q8_mode scale_mode;
    const float *bias_f;
    oq_requant_range range;
} oq_q8_gemm_args;

oq_q8_gemm_args oq_q8_gemm_args_init(size_t m, size_t n, size_t k);
/* Bytes of workspace oq_q8_gemm_run needs with n_threads threads. */
size_t oq_q8_gemm_workspace_size(const oq_q8_gemm_variant *v, const oq_q8_gemm_args *g, size_t n_threads);
/* ws holds oq_q8_gemm_workspace_size(v, g, oq_threadpool_size(tp)) bytes (any alignment). */
void oq_q8_gemm_run(const oq_q8_gemm_variant *v, const oq_q8_gemm_args *g, void *ws, oq_threadpool *tp);

/* ---- convolution helpers ---- */
/* One image of an NCHW-like input (up to 3 spatial dims, leading ones 1). */
typedef struct oq_q8_conv_geom {
    size_t channels; /* input channels of the group */
    size_t in[3], out[3], kernel[3], stride[3], dilation[3], pad[3];
} oq_q8_conv_geom;

/* im2col context for oq_q8_im2col_pack: x points at the group's first channel,
 * channel planes in[0]*in[1]*in[2] apart; out-of-image taps read pad (the input
 * zero point), x values are xor-ed with x_xor. */
typedef struct oq_q8_im2col_ctx {
    const oq_q8_conv_geom *g;
    const uint8_t *x;
    uint8_t x_xor, pad;
} oq_q8_im2col_ctx;
void oq_q8_im2col_pack(const void *ctx, size_t n0, size_t nb, size_t nr, uint8_t *dst, int32_t *colsum);
/* AVX-512 part of the im2col interleave for 32-column panels: rows r[0..3] xor x
 * into the c4 panels at dst (panels k4 * 32 bytes apart), 64 columns at a time;
 * returns how many columns it wrote (a multiple of 64). */
size_t oq_q8_interleave4_nr32__avx512(const uint8_t *const r[4], size_t cw, uint8_t x, uint8_t *dst, size_t k4);
/* im2col over a zero-point-padded copy of the input, split into stride phases
 * (phase (py, px) holds padded rows py, py+sy, ... and columns px, px+sx, ...):
 * output columns run over a grid as wide as a phase row (wp columns per output
 * row, the last wp - out[2] of them garbage the caller drops), so the row of
 * every tap is a phase plane itself, shifted; nothing is copied but the
 * interleave. Phase planes are plane_bytes apart (channel-major) and end with
 * slack. 2-D only (in[0] = 1). */
typedef struct oq_q8_im2col_padded_ctx {
    const oq_q8_conv_geom *g;
    const uint8_t *xp;
    size_t wp, plane_bytes;
    uint8_t x_xor;
} oq_q8_im2col_padded_ctx;
void oq_q8_im2col_padded_pack(const void *ctx, size_t n0, size_t nb, size_t nr, uint8_t *dst, int32_t *colsum);
/* Bytes of the padded copy of one group's channels (padded rows in[1] + pad top
 * and bottom, columns in[2] + pad left and right); sets the grid width *wp and
 * the phase plane size ... */
size_t oq_q8_im2col_padded_size(const oq_q8_conv_geom *g, size_t pad_bottom, size_t pad_right, size_t *wp,
                                size_t *plane_bytes);
/* ... and the copy: x (channel planes of in[1] x in[2]) into dst, borders and
 * slack set to the byte pad (the zero point xor-ed with x_xor, so the packer's
 * xor turns it into the zero point). */
void oq_q8_im2col_padded_fill(const oq_q8_conv_geom *g, size_t pad_bottom, size_t pad_right, const uint8_t *x,
                              uint8_t pad, uint8_t *dst);

/* n runs of len bytes, src[r] xor-ed with x (pad bytes where src[r] is NULL),
 * one after the other from dst (channels-last im2col rows). */
void oq_q8_copy_runs(uint8_t *dst, const uint8_t *const *src, size_t n, size_t len, uint8_t x, uint8_t pad);
void oq_q8_copy_runs__avx512(uint8_t *dst, const uint8_t *const *src, size_t n, size_t len, uint8_t x, uint8_t pad);
/* dst[j*ds + i] = src[i*ss + j] ^ x for a rows x cols block of bytes (NCHW
 * planes to pixel rows and back, 16 x 16 blocks at a time). */
void oq_q8_transpose_u8(const uint8_t *src, size_t rows, size_t cols, size_t ss, uint8_t *dst, size_t ds, uint8_t x);

/* The byte-by-byte specification of oq_q8_im2col_pack (tests); colsum required. */
void oq_q8_im2col_pack_reference(const void *ctx, size_t n0, size_t nb, size_t nr, uint8_t *dst, int32_t *colsum);

/* Depthwise 2-D (in[0] = out[0] = 1): one channel plane of u8 or s8 input
 * (is_signed), kernel w (s8 or u8: w_signed), exact int32 sum of
 * (x - x_zp)(w - w_zp) over in-image taps (padding is the zero point, so it adds
 * nothing), then the output stage: acc + bias, oq_requantize to out (u8/s8) or
 * int32 when out is OQ_Q8_OUT_I32. */
typedef struct oq_q8_dw_params {
    const oq_q8_conv_geom *g;
    bool x_signed, w_signed;
    int32_t x_zp, w_zp, bias;
    oq_q8_out out;
    float scale;
    oq_requant_range range;
} oq_q8_dw_params;
void oq_q8_dwconv(const oq_q8_dw_params *p, const void *x, const void *w, void *y);
/* Tap by tap specification of oq_q8_dwconv (tests; fallback for huge kernels). */
void oq_q8_dwconv_reference(const oq_q8_dw_params *p, const void *x, const void *w, void *y);

/* Row kernels of the fast depthwise path: output n elements of one row,
 * y[i] = output stage of bias + sum_t src[t][i] * w[t] (src: input minus its zero
 * point, int16, unit stride). One per ISA, chosen once by oq_q8_dwconv. */
#define OQ_Q8_DW_ROW_FUNCTION(fn)                                                                                  \
    void fn(size_t n, size_t taps, const int16_t *const *src, const int32_t *w, int32_t bias,                     \
            const oq_q8_dw_params *p, void *y)
OQ_Q8_DW_ROW_FUNCTION(oq_q8_dw_row__scalar);
OQ_Q8_DW_ROW_FUNCTION(oq_q8_dw_row__avx2);
OQ_Q8_DW_ROW_FUNCTION(oq_q8_dw_row__avx512);
/* Pair row kernels (stride 1 or 2, dilation 1: two neighbouring taps share an
 * int16 pair): y[i] = output stage of bias + sum_p src[p][2i]*lo16(w2[p]) +
 * src[p][2i+1]*hi16(w2[p]), the pmaddwd form, exact in int32. */
#define OQ_Q8_DW_PAIR_FUNCTION(fn)                                                                                 \
    void fn(size_t n, size_t pairs, const int16_t *const *src, const int32_t *w2, int32_t bias,                   \
            const oq_q8_dw_params *p, void *y)
OQ_Q8_DW_PAIR_FUNCTION(oq_q8_dw_pair__scalar);
OQ_Q8_DW_PAIR_FUNCTION(oq_q8_dw_pair__avx2);
OQ_Q8_DW_PAIR_FUNCTION(oq_q8_dw_pair__avx512);
/* Consecutive channels of one depthwise convolution in one call: plane i is
 * x + i * in[1]*in[2] bytes, w + i * kernel[1]*kernel[2] bytes, y + i *
 * out[1]*out[2] elements of the output type, with bias[i], scale[i] and
 * w_zp[i] (NULL arrays: p's bias, scale, w_zp for every channel); the rest of p
 * is shared. The same outputs as oq_q8_dwconv channel by channel, with the
 * geometry set up once (a 7x7 plane costs less than that setup). */
typedef struct oq_q8_dw_channels {
    size_t count;
    const int32_t *bias, *w_zp;
    const float *scale;
} oq_q8_dw_channels;
void oq_q8_dwconv_channels(const oq_q8_dw_params *p, const oq_q8_dw_channels *ch, const void *x, const void *w,
                           void *y);
/* Multi-plane kernels: the channels of ch from the first on, as far as they
 * take them (geometry, weights that fit); return how many they wrote. */
#define OQ_Q8_DW_PLANES_FUNCTION(fn)                                                                              \
    size_t fn(const oq_q8_dw_params *p, const oq_q8_dw_channels *ch, const void *x, const void *w, void *y)
OQ_Q8_DW_PLANES_FUNCTION(oq_q8_dw_planes__avx512vnni);
/* oq_q8_dwconv_channels with given kernels (tests compare every ISA); pair and
 * planes may be NULL (every geometry then takes the row kernel). */
void oq_q8_dwconv_channels_with(const oq_q8_dw_params *p, const oq_q8_dw_channels *ch, const void *x, const void *w,
                                void *y, OQ_Q8_DW_ROW_FUNCTION((*row)), OQ_Q8_DW_PAIR_FUNCTION((*pair)),
                                OQ_Q8_DW_PLANES_FUNCTION((*planes)));
/* One channel of it (p's bias, scale, w_zp). */
void oq_q8_dwconv_with(const oq_q8_dw_params *p, const void *x, const void *w, void *y,
                       OQ_Q8_DW_ROW_FUNCTION((*row)), OQ_Q8_DW_PAIR_FUNCTION((*pair)),
                       OQ_Q8_DW_PLANES_FUNCTION((*planes)));

/* ---- channels-last depthwise (onnxq_nhwc) ---- */

/* A depthwise 2-D convolution over channels-last rows: y[oy][ox][c] = output
 * stage of bias[c] + sum over the taps t of x[iy][ix][c] * (w[c][t] - w_zp[c]),
 * where out-of-image taps read pad (C bytes of the input zero point, as stored).
 * bias[c] already holds - x_zp * wsum[c] (wsum[c] = sum_t (w[c][t] - w_zp[c])),
 * so sum_t (x - x_zp)(w - w_zp) comes out exact (a pad tap adds x_zp * w' -
 * x_zp * w' = 0). u8 or s8 input (x_signed), u8/s8 output.
 * Weights, packed by oq_q8_dw_nhwc_pack: w2, the taps in pairs (pair q of
 * channel c at w2[q*C + c]: tap 2q in the low int16, 2q+1 in the high one, an
 * odd last tap paired with 0); w3 (or NULL), for kernels 3 wide whose w - w_zp
 * fit in int8: kernel row ky of channel c as the bytes (w0, w1, w2, 0) at
 * w3[ky*C + c], the form vpdpbusd multiplies with 3 neighbouring pixels. */
typedef struct oq_q8_dw_nhwc {
    const oq_q8_conv_geom *g; /* channels: all of them (one group each) */
    bool x_signed;
    const int32_t *w2, *w3, *bias, *wsum;
    const float *scale;
    oq_q8_out out; /* OQ_Q8_OUT_U8 or OQ_Q8_OUT_S8 */
    oq_requant_range range;
    const uint8_t *pad;
} oq_q8_dw_nhwc;
/* Packs w (C x taps bytes, s8 or u8, kernel kh x kw) into w2 (ceil(taps/2) x C
 * int32), wsum (C) and, when kw is 3 and every w - w_zp fits in int8, w3 (kh x C
 * int32); returns whether w3 was written (w_zps NULL: w_zp for every channel). */
bool oq_q8_dw_nhwc_pack(size_t channels, size_t kh, size_t kw, const void *w, bool w_signed, const int32_t *w_zps,
                        int32_t w_zp, int32_t *w2, int32_t *wsum, int32_t *w3);
/* Output rows [oy0, oy1) of one image x into y; ws: oq_q8_dw_nhwc_ws_size(d) bytes. */
#define OQ_Q8_DW_NHWC_FUNCTION(fn)                                                                                 \
    void fn(const oq_q8_dw_nhwc *d, const uint8_t *x, uint8_t *y, size_t oy0, size_t oy1, void *ws)
OQ_Q8_DW_NHWC_FUNCTION(oq_q8_dw_nhwc__scalar);
OQ_Q8_DW_NHWC_FUNCTION(oq_q8_dw_nhwc__avx512);
/* kernels 3 wide (w3), up to 3 rows: per input row and output column the three
 * taps of every channel interleaved once (bytes x0 x1 x2 0), then one vpdpbusd
 * per kernel row. */
OQ_Q8_DW_NHWC_FUNCTION(oq_q8_dw_nhwc_k3__avx512vnni);
size_t oq_q8_dw_nhwc_ws_size(const oq_q8_dw_nhwc *d);
/* The best of them for this CPU and d. */
void oq_q8_dw_nhwc_rows(const oq_q8_dw_nhwc *d, const uint8_t *x, uint8_t *y, size_t oy0, size_t oy1, void *ws);

#endif
