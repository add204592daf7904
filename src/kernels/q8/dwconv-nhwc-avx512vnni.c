/* kernels/q8: channels-last depthwise convolution for kernels 3 wide (up to 3
 * rows) on AVX512-VNNI (oq_q8_dw_nhwc_k3__avx512vnni). vpdpbusd sums 4 byte
 * products per int32 lane, so a lane must hold 4 taps of one channel; in NHWC the
 * taps of a channel are C bytes apart. Each input row is therefore rewritten once,
 * per output column, as the words (x[ix0][c], x[ix0+dx][c], x[ix0+2dx][c], 0) of
 * every channel (ix0 = ox*sx - px; pad outside the image): the "tap rows". An
 * output pixel is then, per 16 channels, one load and one vpdpbusd per kernel row
 * against the words (w0, w1, w2, 0) of w3, and the output stage. The rows are
 * cached by input row, so with stride 1 each is built once and read kh times. */
#include "kernels/q8/epilogue-avx512.h"
#include "kernels/q8/q8.h"

#include <immintrin.h>
#include <string.h>

/* Words (a, b, e, 0) of 16 channels (masked loads; xor: the s8 -> u8 shift). */
static inline __attribute__((always_inline)) __m512i words16(const uint8_t *pa, const uint8_t *pb, const uint8_t *pe,
                                                             __mmask16 m, __m128i flip)
{
    const __m128i zero = _mm_setzero_si128();
    __m128i a = _mm_xor_si128(_mm_maskz_loadu_epi8(m, pa), flip);
    __m128i b = _mm_xor_si128(_mm_maskz_loadu_epi8(m, pb), flip);
    __m128i e = _mm_xor_si128(_mm_maskz_loadu_epi8(m, pe), flip);
    __m128i ab0 = _mm_unpacklo_epi8(a, b), ab1 = _mm_unpackhi_epi8(a, b);
    __m128i e0 = _mm_unpacklo_epi8(e, zero), e1 = _mm_unpackhi_epi8(e, zero);
    __m512i v = _mm512_castsi128_si512(_mm_unpacklo_epi16(ab0, e0));
    v = _mm512_inserti32x4(v, _mm_unpackhi_epi16(ab0, e0), 1);
    v = _mm512_inserti32x4(v, _mm_unpacklo_epi16(ab1, e1), 2);
    return _mm512_inserti32x4(v, _mm_unpackhi_epi16(ab1, e1), 3);
}

/* Tap row of input row iy (in the image) into q: out[2] columns of c16 words.
 * 32 channels at a time on 256-bit unpacks (each 128-bit lane interleaves 16
 * channels; two 512-bit permutes put the words back in channel order). */
static inline __attribute__((always_inline)) void build_row_t(const oq_q8_dw_nhwc *d, const uint8_t *x, size_t iy,
                                                              int32_t *q, size_t c16, size_t ox0, size_t n,
                                                              bool is_signed)
{
    const oq_q8_conv_geom *g = d->g;
    const size_t cn = g->channels;
    const __m128i flip = _mm_set1_epi8(is_signed ? (char)0x80 : 0);
    const __m256i flip2 = _mm256_set1_epi8(is_signed ? (char)0x80 : 0), zero = _mm256_setzero_si256();
    const __m512i lo_idx = _mm512_set_epi64(13, 12, 9, 8, 5, 4, 1, 0), hi_idx = _mm512_set_epi64(15, 14, 11, 10, 7, 6, 3, 2);
    const uint8_t *row = x + iy * g->in[2] * cn;
    for (size_t ox = ox0; ox < ox0 + n; ox++) {
        const uint8_t *p[3];
        for (size_t kx = 0; kx < 3; kx++) {
            size_t ix = ox * g->stride[2] + kx * g->dilation[2] - g->pad[2]; /* wraps below 0 */
            p[kx] = ix < g->in[2] ? row + ix * cn : d->pad;
        }
        int32_t *dst = q + (ox - ox0) * c16;
        size_t c = 0;
        for (; c + 32 <= cn; c += 32) {
            __m256i a = _mm256_loadu_si256((const __m256i *)(p[0] + c));
            __m256i b = _mm256_loadu_si256((const __m256i *)(p[1] + c));
            __m256i e = _mm256_loadu_si256((const __m256i *)(p[2] + c));
            if (is_signed) {
                a = _mm256_xor_si256(a, flip2);
                b = _mm256_xor_si256(b, flip2);
                e = _mm256_xor_si256(e, flip2);
            }
            __m256i ab0 = _mm256_unpacklo_epi8(a, b), ab1 = _mm256_unpackhi_epi8(a, b);
            __m256i e0 = _mm256_unpacklo_epi8(e, zero), e1 = _mm256_unpackhi_epi8(e, zero);
            /* lane l of r0: channels 16l+0..3, r1: 16l+4..7, r2: 16l+8..11, r3: 16l+12..15 */
            __m256i r0 = _mm256_unpacklo_epi16(ab0, e0), r1 = _mm256_unpackhi_epi16(ab0, e0);
            __m256i r2 = _mm256_unpacklo_epi16(ab1, e1), r3 = _mm256_unpackhi_epi16(ab1, e1);
            __m512i z01 = _mm512_inserti64x4(_mm512_castsi256_si512(r0), r1, 1);
            __m512i z23 = _mm512_inserti64x4(_mm512_castsi256_si512(r2), r3, 1);
            _mm512_storeu_si512(dst + c, _mm512_permutex2var_epi64(z01, lo_idx, z23));
            _mm512_storeu_si512(dst + c + 16, _mm512_permutex2var_epi64(z01, hi_idx, z23));
        }
        for (; c < cn; c += 16) {
            __mmask16 m = cn - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cn - c)) - 1);
            _mm512_storeu_si512(dst + c, words16(p[0] + c, p[1] + c, p[2] + c, m, flip)); /* past C: zeros */
        }
    }
}

/* Output columns [ox0, ox0 + n) of the tap row of input row iy. */
static void build_row(const oq_q8_dw_nhwc *d, const uint8_t *x, size_t iy, int32_t *q, size_t c16, size_t ox0,
                      size_t n)
{
    if (d->x_signed)
        build_row_t(d, x, iy, q, c16, ox0, n, true);
    else
        build_row_t(d, x, iy, q, c16, ox0, n, false);
}

/* n columns of the tap row that is all pad (an input row outside the image). */
static void pad_row(const oq_q8_dw_nhwc *d, int32_t *q, size_t c16, size_t n)
{
    uint32_t p = (uint8_t)(d->pad[0] ^ (d->x_signed ? 0x80 : 0));
    int32_t word = (int32_t)(p | p << 8 | p << 16);
    for (size_t i = 0; i < n * c16; i++)
        q[i] = word;
}

OQ_Q8_DW_NHWC_FUNCTION(oq_q8_dw_nhwc_k3__avx512vnni)
{
    const oq_q8_conv_geom *g = d->g;
    const size_t cn = g->channels, kh = g->kernel[1], ow = g->out[2], c16 = (cn + 15) / 16 * 16;
    /* Columns in tiles whose kh + 1 tap rows (4 bytes per channel and column each) take 16 KiB, half of L1:
     * whole rows of a wide, shallow layer (32 channels, 112 columns: 57 KiB) spilled to L2 between
     * the row that builds them and the kh rows that read them. */
    size_t tw = 1024 / c16;
    tw = tw < 4 ? 4 : tw > ow ? ow : tw;
    int32_t *slot[4];
    size_t tag[4];
    for (size_t i = 0; i <= kh; i++)
        slot[i] = (int32_t *)((uint8_t *)ws + ((i * tw * c16 * 4 + 63) / 64 * 64));
    pad_row(d, slot[kh], c16, tw);
    const __m512 lo = _mm512_set1_ps(d->range.lo), hi = _mm512_set1_ps(d->range.hi);
    const __m512i zp = _mm512_set1_epi32(d->range.zp);
    for (size_t ox0 = 0; ox0 < ow; ox0 += tw) {
        const size_t n = ow - ox0 < tw ? ow - ox0 : tw;
        for (size_t i = 0; i < kh; i++)
            tag[i] = SIZE_MAX;
        for (size_t oy = oy0; oy < oy1; oy++) {
            const int32_t *q[3];
            size_t need[3];
            for (size_t ky = 0; ky < kh; ky++)
                need[ky] = oy * g->stride[1] + ky * g->dilation[1] - g->pad[1]; /* wraps below 0 */
            for (size_t ky = 0; ky < kh; ky++) {
                if (need[ky] >= g->in[1]) {
                    q[ky] = slot[kh];
                    continue;
                }
                size_t s = SIZE_MAX;
                for (size_t i = 0; i < kh && s == SIZE_MAX; i++)
                    if (tag[i] == need[ky])
                        s = i;
                for (size_t i = 0; i < kh && s == SIZE_MAX; i++) { /* a slot this row does not read */
                    bool used = false;
                    for (size_t k = 0; k < kh; k++)
                        used |= need[k] < g->in[1] && tag[i] == need[k];
                    if (!used) {
                        build_row(d, x, need[ky], slot[i], c16, ox0, n);
                        tag[i] = need[ky];
                        s = i;
                    }
                }
                q[ky] = slot[s];
            }
            uint8_t *yr = y + (oy * ow + ox0) * cn;
            for (size_t c = 0; c < cn; c += 16) {
                const __mmask16 m = cn - c >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cn - c)) - 1);
                __m512i w0 = _mm512_maskz_loadu_epi32(m, d->w3 + c), w1 = w0, w2 = w0;
                if (kh > 1)
                    w1 = _mm512_maskz_loadu_epi32(m, d->w3 + cn + c);
                if (kh > 2)
                    w2 = _mm512_maskz_loadu_epi32(m, d->w3 + 2 * cn + c);
                __m512i bias = _mm512_maskz_loadu_epi32(m, d->bias + c);
                if (d->x_signed) /* the tap rows hold x ^ 0x80 = x + 128 */
                    bias = _mm512_sub_epi32(bias, _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m, d->wsum + c), 7));
                const __m512 scale = _mm512_maskz_loadu_ps(m, d->scale + c);
                const int32_t *q0 = q[0] + c, *q1 = q[kh > 1 ? 1 : 0] + c, *q2 = q[kh > 2 ? 2 : 0] + c;
                uint8_t *yc = yr + c;
                if (kh == 3)
                    for (size_t ox = 0; ox < n; ox++) {
                        __m512i acc = _mm512_dpbusd_epi32(bias, _mm512_loadu_si512(q0 + ox * c16), w0);
                        acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(q1 + ox * c16), w1);
                        acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(q2 + ox * c16), w2);
                        oq_q8_store16_avx512(acc, scale, lo, hi, zp, yc + ox * cn, m);
                    }
                else
                    for (size_t ox = 0; ox < n; ox++) {
                        __m512i acc = _mm512_dpbusd_epi32(bias, _mm512_loadu_si512(q0 + ox * c16), w0);
                        if (kh > 1)
                            acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(q1 + ox * c16), w1);
                        oq_q8_store16_avx512(acc, scale, lo, hi, zp, yc + ox * cn, m);
                    }
            }
        }
    }
}
