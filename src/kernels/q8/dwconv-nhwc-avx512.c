/* kernels/q8: AVX-512 channels-last depthwise convolution (oq_q8_dw_nhwc). Per
 * output row: the tap pointers of every pixel once; then 16 channels at a time,
 * their widened weights, bias and scale held in registers while the row's pixels
 * go by: per tap one load widened to int32 and one exact vpmulld. */
#include "kernels/q8/epilogue-avx512.h"
#include "kernels/q8/q8.h"

#include <immintrin.h>

/* The weights of taps [0, T) for channels c.. (pairs unpacked: tap t is the
 * low or high int16 of pair t/2), sign-extended to int32. */
static inline __attribute__((always_inline)) __m512i tap_weights(const oq_q8_dw_nhwc *d, size_t t, size_t c,
                                                                 __mmask16 m)
{
    __m512i w2 = _mm512_maskz_loadu_epi32(m, d->w2 + (t / 2) * d->g->channels + c);
    return t % 2 ? _mm512_srai_epi32(w2, 16) : _mm512_srai_epi32(_mm512_slli_epi32(w2, 16), 16);
}

static inline __attribute__((always_inline)) __m512i load_x(const uint8_t *p, __mmask16 m, bool is_signed)
{
    __m128i v = _mm_maskz_loadu_epi8(m, p);
    return is_signed ? _mm512_cvtepi8_epi32(v) : _mm512_cvtepu8_epi32(v);
}

/* One row of output pixels (src: taps pointers per pixel) for channels [c, c+16);
 * 3x3 kernels keep their 9 weight vectors in registers. */
static inline __attribute__((always_inline)) void row_block3x3(const oq_q8_dw_nhwc *d, const uint8_t *const *src,
                                                               size_t ow, size_t c, uint8_t *y, bool is_signed)
{
    const size_t cn = d->g->channels;
    const __mmask16 m = cn - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cn - c)) - 1);
    __m512i w[9];
#pragma GCC unroll 9
    for (size_t t = 0; t < 9; t++)
        w[t] = tap_weights(d, t, c, m);
    const __m512i bias = _mm512_maskz_loadu_epi32(m, d->bias + c);
    const __m512 scale = _mm512_maskz_loadu_ps(m, d->scale + c);
    /* the range in registers: a byte store may alias d, so it is not read in the loop */
    const __m512 lo = _mm512_set1_ps(d->range.lo), hi = _mm512_set1_ps(d->range.hi);
    const __m512i zp = _mm512_set1_epi32(d->range.zp);
    for (size_t ox = 0; ox < ow; ox++, src += 9) {
        __m512i acc = bias;
#pragma GCC unroll 9
        for (size_t t = 0; t < 9; t++)
            acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(load_x(src[t] + c, m, is_signed), w[t]));
        oq_q8_store16_avx512(acc, scale, lo, hi, zp, y + ox * cn + c, m);
    }
}

static inline __attribute__((always_inline)) void row_block(const oq_q8_dw_nhwc *d, const uint8_t *const *src,
                                                            size_t taps, size_t ow, size_t c, uint8_t *y,
                                                            bool is_signed)
{
    const size_t cn = d->g->channels;
    const __mmask16 m = cn - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cn - c)) - 1);
    const __m512i bias = _mm512_maskz_loadu_epi32(m, d->bias + c);
    const __m512 scale = _mm512_maskz_loadu_ps(m, d->scale + c);
    /* the range in registers: a byte store may alias d, so it is not read in the loop */
    const __m512 lo = _mm512_set1_ps(d->range.lo), hi = _mm512_set1_ps(d->range.hi);
    const __m512i zp = _mm512_set1_epi32(d->range.zp);
    for (size_t ox = 0; ox < ow; ox++, src += taps) {
        __m512i acc = bias;
        for (size_t t = 0; t < taps; t++)
            acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(load_x(src[t] + c, m, is_signed), tap_weights(d, t, c, m)));
        oq_q8_store16_avx512(acc, scale, lo, hi, zp, y + ox * cn + c, m);
    }
}

static void row(const oq_q8_dw_nhwc *d, const uint8_t *const *src, size_t taps, size_t ow, uint8_t *y,
                bool is_signed)
{
    for (size_t c = 0; c < d->g->channels; c += 16)
        if (taps == 9)
            row_block3x3(d, src, ow, c, y, is_signed);
        else
            row_block(d, src, taps, ow, c, y, is_signed);
}

OQ_Q8_DW_NHWC_FUNCTION(oq_q8_dw_nhwc__avx512)
{
    (void)ws;
    const oq_q8_conv_geom *g = d->g;
    size_t cn = g->channels, kh = g->kernel[1], kw = g->kernel[2], taps = kh * kw, ow = g->out[2];
    enum { MAX_PTRS = 4096 };
    const uint8_t *src[MAX_PTRS];
    if (taps * ow > MAX_PTRS || ow == 0) {
        if (ow)
            oq_q8_dw_nhwc__scalar(d, x, y, oy0, oy1, ws);
        return;
    }
    for (size_t oy = oy0; oy < oy1; oy++) {
        const uint8_t **s = src;
        for (size_t ox = 0; ox < ow; ox++)
            for (size_t ky = 0; ky < kh; ky++) {
                size_t iy = oy * g->stride[1] + ky * g->dilation[1] - g->pad[1]; /* wraps below 0 */
                for (size_t kx = 0; kx < kw; kx++) {
                    size_t ix = ox * g->stride[2] + kx * g->dilation[2] - g->pad[2];
                    *s++ = iy < g->in[1] && ix < g->in[2] ? x + (iy * g->in[2] + ix) * cn : d->pad;
                }
            }
        if (d->x_signed)
            row(d, src, taps, ow, y + oy * ow * cn, true);
        else
            row(d, src, taps, ow, y + oy * ow * cn, false);
    }
}
