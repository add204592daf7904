/* kernels/q8: the fast depthwise convolution (MobileNet's 3x3 layers). A run of
 * channels goes to the AVX512-VNNI plane kernel first where the CPU has it
 * (dwconv-avx512vnni.c); what it declines, and every channel elsewhere, takes
 * the int16 path here. Per
 * output row, the input rows it reads are widened to int16 minus the zero point
 * (padding becomes 0, so it adds nothing, exactly as the reference skips it) and
 * split into stride phases so every tap reads a unit-stride run; a row kernel
 * per ISA then sums taps in int32 and applies the output stage. Exact: the same
 * int32 sums, in any order, as oq_q8_dwconv_reference. */
#include "kernels/q8/q8.h"

#include <stdalign.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* int16 elements of the row buffers on the stack, and the most taps handled
 * here; larger kernels or extreme strides take the reference path. */
enum { ROW_BUDGET = 16384, MAX_TAPS = 256, MAX_CHUNK = 512, SLACK = 16 };

OQ_Q8_DW_ROW_FUNCTION(oq_q8_dw_row__scalar)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t acc = (uint32_t)bias;
        for (size_t t = 0; t < taps; t++)
            acc += (uint32_t)((int32_t)src[t][i] * w[t]);
        int32_t v = (int32_t)acc;
        switch (p->out) {
        case OQ_Q8_OUT_U8: ((uint8_t *)y)[i] = (uint8_t)oq_requantize(v, p->scale, p->range); break;
        case OQ_Q8_OUT_S8: ((int8_t *)y)[i] = (int8_t)oq_requantize(v, p->scale, p->range); break;
        case OQ_Q8_OUT_F32: ((float *)y)[i] = (float)v * p->scale; break;
        default: ((int32_t *)y)[i] = v; break;
        }
    }
}

/* One input row into its sx phases (stride elements apart, len used plus
 * SLACK): phase f element i = x[(c0 + i)*sx + f - px] minus the zero point, 0
 * outside the row. A row's last vector may read on into the next rows up to end
 * (the plane's end) and write garbage into the slack, which the zero fill or
 * nobody reads. x is read as u8 after xor with
 * flip (0x80 turns s8 into u8 + 128; zp is given in that domain). */
static void convert_row(int16_t *rb, size_t len, size_t stride, const uint8_t *x, const uint8_t *end, size_t iw,
                        size_t c0, size_t sx, size_t px, uint8_t flip, int32_t zp)
{
    for (size_t f = 0; f < sx; f++) {
        int16_t *ph = rb + f * stride;
        /* i in [lo, hi) reads inside the row: (c0 + i)*sx + f - px in [0, iw) */
        size_t base = c0 * sx + f; /* x index + px of element 0 */
        size_t lo = base >= px ? 0 : (px - base + sx - 1) / sx;
        size_t hi = iw + px > base ? (iw + px - base + sx - 1) / sx : 0;
        hi = hi < len ? hi : len;
        lo = lo < hi ? lo : hi;
        for (size_t i = 0; i < lo; i++)
            ph[i] = 0;
        const uint8_t *s = x + (base + lo * sx - px);
        size_t n = hi - lo, i = 0;
        int16_t *d = ph + lo;
#if defined(__SSE2__)
        const __m128i z = _mm_set1_epi16((short)zp), fl = _mm_set1_epi8((char)flip), zero = _mm_setzero_si128();
        if (sx == 1) {
            for (; i + 16 <= n; i += 16) {
                __m128i v = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(s + i)), fl);
                _mm_storeu_si128((__m128i *)(d + i), _mm_sub_epi16(_mm_unpacklo_epi8(v, zero), z));
                _mm_storeu_si128((__m128i *)(d + i + 8), _mm_sub_epi16(_mm_unpackhi_epi8(v, zero), z));
            }
            if (i < n && (size_t)(end - (s + i)) >= 16) {
                __m128i v = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(s + i)), fl);
                _mm_storeu_si128((__m128i *)(d + i), _mm_sub_epi16(_mm_unpacklo_epi8(v, zero), z));
                _mm_storeu_si128((__m128i *)(d + i + 8), _mm_sub_epi16(_mm_unpackhi_epi8(v, zero), z));
                i = n;
            } else if (i + 8 <= n) {
                __m128i v = _mm_xor_si128(_mm_loadl_epi64((const __m128i *)(s + i)), fl);
                _mm_storeu_si128((__m128i *)(d + i), _mm_sub_epi16(_mm_unpacklo_epi8(v, zero), z));
                i += 8;
            }
        } else if (sx == 2) {
            /* even bytes of 32 as u16 lanes; "i + 16 < n" keeps the read inside the run */
            const __m128i m = _mm_set1_epi16(0x00FF);
            for (; i + 16 < n; i += 16) {
                __m128i a = _mm_and_si128(_mm_xor_si128(_mm_loadu_si128((const __m128i *)(s + 2 * i)), fl), m);
                __m128i b = _mm_and_si128(_mm_xor_si128(_mm_loadu_si128((const __m128i *)(s + 2 * i + 16)), fl), m);
                _mm_storeu_si128((__m128i *)(d + i), _mm_sub_epi16(a, z));
                _mm_storeu_si128((__m128i *)(d + i + 8), _mm_sub_epi16(b, z));
            }
            if (i < n && (size_t)(end - (s + 2 * i)) >= 32) {
                __m128i a = _mm_and_si128(_mm_xor_si128(_mm_loadu_si128((const __m128i *)(s + 2 * i)), fl), m);
                __m128i b = _mm_and_si128(_mm_xor_si128(_mm_loadu_si128((const __m128i *)(s + 2 * i + 16)), fl), m);
                _mm_storeu_si128((__m128i *)(d + i), _mm_sub_epi16(a, z));
                _mm_storeu_si128((__m128i *)(d + i + 8), _mm_sub_epi16(b, z));
                i = n;
            } else if (i + 8 < n) {
                __m128i a = _mm_and_si128(_mm_xor_si128(_mm_loadu_si128((const __m128i *)(s + 2 * i)), fl), m);
                _mm_storeu_si128((__m128i *)(d + i), _mm_sub_epi16(a, z));
                i += 8;
            }
        }
#endif
        for (; i < n; i++)
            d[i] = (int16_t)((int32_t)(uint8_t)(s[i * sx] ^ flip) - zp);
        for (size_t j = hi; j < len; j++)
            ph[j] = 0;
    }
}

OQ_Q8_DW_PAIR_FUNCTION(oq_q8_dw_pair__scalar)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t acc = (uint32_t)bias;
        for (size_t t = 0; t < pairs; t++) {
            int32_t lo = (int16_t)(w2[t] & 0xFFFF), hi = (int16_t)((uint32_t)w2[t] >> 16);
            acc += (uint32_t)((int32_t)src[t][2 * i] * lo + (int32_t)src[t][2 * i + 1] * hi);
        }
        int32_t v = (int32_t)acc;
        switch (p->out) {
        case OQ_Q8_OUT_U8: ((uint8_t *)y)[i] = (uint8_t)oq_requantize(v, p->scale, p->range); break;
        case OQ_Q8_OUT_S8: ((int8_t *)y)[i] = (int8_t)oq_requantize(v, p->scale, p->range); break;
        case OQ_Q8_OUT_F32: ((float *)y)[i] = (float)v * p->scale; break;
        default: ((int32_t *)y)[i] = v; break;
        }
    }
}

static int32_t pack_pair(int32_t a, int32_t b) { return (int32_t)((uint32_t)(uint16_t)a | (uint32_t)(uint16_t)b << 16); }

/* Stride 1 or 2, dilation 1 in x: each padded input row is kept once as int16
 * lanes holding the two inputs a pair of neighbouring taps multiplies (stride 2:
 * the row itself; stride 1: the row zipped with itself shifted by one), so a
 * pair of taps is one pmaddwd. */
static void dwconv_pairs(const oq_q8_dw_params *p, const uint8_t *x, const int32_t *wk, void *y,
                         OQ_Q8_DW_PAIR_FUNCTION((*pair)), size_t ring, size_t chunk)
{
    const oq_q8_conv_geom *g = p->g;
    size_t ih = g->in[1], iw = g->in[2], oh = g->out[1], ow = g->out[2], kh = g->kernel[1], kw = g->kernel[2];
    size_t sx = g->stride[2], px = g->pad[2], kp = (kw + 1) / 2; /* pairs per kernel row */
    int16_t buf[ROW_BUDGET], plain[2 * MAX_CHUNK + 2 * MAX_TAPS + SLACK];
    size_t held[MAX_TAPS];
    int32_t w2[MAX_TAPS];
    for (size_t ky = 0; ky < kh; ky++)
        for (size_t q = 0; q < kp; q++)
            w2[ky * kp + q] = pack_pair(wk[ky * kw + 2 * q], 2 * q + 1 < kw ? wk[ky * kw + 2 * q + 1] : 0);
    size_t esize = p->out == OQ_Q8_OUT_U8 || p->out == OQ_Q8_OUT_S8 ? 1 : 4;
    uint8_t flip = p->x_signed ? 0x80 : 0;
    int32_t zp = p->x_zp + (p->x_signed ? 128 : 0);
    static const int16_t zeros[2048];
    for (size_t c0 = 0; c0 < ow; c0 += chunk) {
        size_t cw = ow - c0 < chunk ? ow - c0 : chunk;
        /* int16 per row: pairs for taps up to kw-1 past the chunk's last output */
        size_t rl = 2 * (cw + kw), rstride = rl + SLACK;
        for (size_t r = 0; r < ring; r++)
            held[r] = SIZE_MAX;
        const int16_t *zero_row = zeros;
        if (rstride > sizeof zeros / sizeof zeros[0]) {
            memset(buf + ring * rstride, 0, rstride * sizeof *buf);
            zero_row = buf + ring * rstride;
        }
        for (size_t oy = 0; oy < oh; oy++) {
            const int16_t *src[MAX_TAPS];
            for (size_t ky = 0; ky < kh; ky++) {
                size_t iy = oy * g->stride[1] + ky * g->dilation[1] - g->pad[1];
                const int16_t *rb = zero_row;
                if (iy < ih) {
                    size_t slot = iy % ring;
                    int16_t *rs = buf + slot * rstride;
                    if (held[slot] != iy) {
                        const uint8_t *xr = x + iy * iw, *end = x + ih * iw;
                        if (sx == 2) /* element j = x[2*c0 + j - px]: lane i of offset o is (2i+o, 2i+o+1) */
                            convert_row(rs, rl, rstride, xr, end, iw, 2 * c0, 1, px, flip, zp);
                        else {
                            /* element 2i, 2i+1 = x[c0 + i - px], x[c0 + i + 1 - px] */
                            size_t n = rl / 2 + 1, i = 0;
                            convert_row(plain, n, n + SLACK, xr, end, iw, c0, 1, px, flip, zp);
#if defined(__SSE2__)
                            for (; i + 8 <= rl / 2; i += 8) {
                                __m128i a = _mm_loadu_si128((const __m128i *)(plain + i));
                                __m128i b = _mm_loadu_si128((const __m128i *)(plain + i + 1));
                                _mm_storeu_si128((__m128i *)(rs + 2 * i), _mm_unpacklo_epi16(a, b));
                                _mm_storeu_si128((__m128i *)(rs + 2 * i + 8), _mm_unpackhi_epi16(a, b));
                            }
#endif
                            for (; i < rl / 2; i++) {
                                rs[2 * i] = plain[i];
                                rs[2 * i + 1] = plain[i + 1];
                            }
                        }
                        held[slot] = iy;
                    }
                    rb = rs;
                }
                /* pair q covers taps 2q, 2q+1: offset 2q inputs, int16 index 2q*2/sx */
                for (size_t q = 0; q < kp; q++)
                    src[ky * kp + q] = rb + (sx == 1 ? 4 * q : 2 * q);
            }
            pair(cw, kh * kp, src, w2, p->bias, p, (uint8_t *)y + (oy * ow + c0) * esize);
        }
    }
}

/* Small planes at stride 1 (MobileNet's 28x28 to 7x7): the whole zero-padded
 * plane, zipped into pairs as above, is one long row; the output is computed
 * over a grid as wide as the padded rows in a single pair-kernel call (a call
 * per 7-wide row costs more than its arithmetic) and its first out[2] columns
 * of each row are kept. Returns false when the plane does not fit. */
enum { GRID_OUT_BYTES = 16384 };
static bool dwconv_grid(const oq_q8_dw_params *p, const uint8_t *x, const int32_t *wk, void *y,
                        OQ_Q8_DW_PAIR_FUNCTION((*pair)))
{
    const oq_q8_conv_geom *g = p->g;
    size_t ih = g->in[1], iw = g->in[2], oh = g->out[1], ow = g->out[2], kh = g->kernel[1], kw = g->kernel[2];
    size_t dy = g->dilation[1], kp = (kw + 1) / 2;
    size_t wg = ow + kw - 1, rows = oh + (kh - 1) * dy, lanes = rows * wg + kw;
    size_t esize = p->out == OQ_Q8_OUT_U8 || p->out == OQ_Q8_OUT_S8 ? 1 : 4;
    if (2 * lanes > ROW_BUDGET || oh * wg * esize > GRID_OUT_BYTES || wg + 1 + SLACK > 2 * MAX_CHUNK)
        return false;
    int16_t z[ROW_BUDGET], plain[2 * MAX_CHUNK];
    _Alignas(64) uint8_t out[GRID_OUT_BYTES];
    int32_t w2[MAX_TAPS];
    for (size_t ky = 0; ky < kh; ky++)
        for (size_t q = 0; q < kp; q++)
            w2[ky * kp + q] = pack_pair(wk[ky * kw + 2 * q], 2 * q + 1 < kw ? wk[ky * kw + 2 * q + 1] : 0);
    uint8_t flip = p->x_signed ? 0x80 : 0;
    int32_t zp = p->x_zp + (p->x_signed ? 128 : 0);
    for (size_t r = 0; r < rows; r++) {
        int16_t *zr = z + 2 * r * wg;
        size_t iy = r - g->pad[1];
        if (iy >= ih) {
            memset(zr, 0, 2 * wg * sizeof *zr);
            continue;
        }
        /* plain[c] = x[c - pad] of the padded row; the lane c is (plain[c], plain[c+1]) */
        convert_row(plain, wg + 1, wg + 1 + SLACK, x + iy * iw, x + ih * iw, iw, 0, 1, g->pad[2], flip, zp);
        size_t c = 0;
#if defined(__SSE2__)
        for (; c + 8 <= wg; c += 8) {
            __m128i a = _mm_loadu_si128((const __m128i *)(plain + c));
            __m128i b = _mm_loadu_si128((const __m128i *)(plain + c + 1));
            _mm_storeu_si128((__m128i *)(zr + 2 * c), _mm_unpacklo_epi16(a, b));
            _mm_storeu_si128((__m128i *)(zr + 2 * c + 8), _mm_unpackhi_epi16(a, b));
        }
#endif
        for (; c < wg; c++) {
            zr[2 * c] = plain[c];
            zr[2 * c + 1] = plain[c + 1];
        }
    }
    /* lanes the garbage columns of the last grid row read past the plane */
    memset(z + 2 * rows * wg, 0, 2 * kw * sizeof *z);
    const int16_t *src[MAX_TAPS];
    for (size_t ky = 0; ky < kh; ky++)
        for (size_t q = 0; q < kp; q++)
            src[ky * kp + q] = z + 2 * (ky * dy * wg + 2 * q);
    pair(oh * wg, kh * kp, src, w2, p->bias, p, out);
    for (size_t oy = 0; oy < oh; oy++)
        memcpy((uint8_t *)y + oy * ow * esize, out + oy * wg * esize, ow * esize);
    return true;
}

/* One channel on the int16 row / pair kernels. */
static void dwconv_rows(const oq_q8_dw_params *p, const void *x, const void *w, void *y, OQ_Q8_DW_ROW_FUNCTION((*row)),
                        OQ_Q8_DW_PAIR_FUNCTION((*pair)))
{
    const oq_q8_conv_geom *g = p->g;
    size_t ih = g->in[1], iw = g->in[2], oh = g->out[1], ow = g->out[2], kh = g->kernel[1], kw = g->kernel[2];
    size_t sx = g->stride[2], dx = g->dilation[2], px = g->pad[2];
    size_t taps = kh * kw, reach = (kw - 1) * dx / sx + 1; /* phase elements past a chunk's last output */
    /* the input rows one output row reads span ring rows: a ring of that many
     * converted rows lets each input row be converted once per chunk */
    size_t ring = (kh - 1) * g->dilation[1] + 1;
    /* plus one all-zero row standing for rows above and below the image, so
     * every output row sums the same taps with the same weights */
    size_t chunk = ROW_BUDGET / ((ring + 1) * sx) > reach + SLACK ? ROW_BUDGET / ((ring + 1) * sx) - reach - SLACK : 0;
    chunk = chunk < MAX_CHUNK ? chunk : MAX_CHUNK;
    if (taps > MAX_TAPS || ring > MAX_TAPS || kw > MAX_TAPS || chunk < 16 || !ow || !oh) {
        oq_q8_dwconv_reference(p, x, w, y);
        return;
    }
    int32_t wk[MAX_TAPS];
    for (size_t t = 0; t < taps; t++)
        wk[t] = (p->w_signed ? (int32_t)((const int8_t *)w)[t] : (int32_t)((const uint8_t *)w)[t]) - p->w_zp;
    if (pair && g->dilation[2] == 1 && sx == 1 && g->stride[1] == 1 && dwconv_grid(p, x, wk, y, pair))
        return;
    if (pair && g->dilation[2] == 1 && (sx == 1 || sx == 2) && kh * kw <= MAX_TAPS) {
        size_t pchunk = ROW_BUDGET / (ring + 1) / 2;
        pchunk = pchunk > kw + SLACK ? pchunk - kw - SLACK : 0;
        pchunk = pchunk < MAX_CHUNK ? pchunk : MAX_CHUNK;
        if (pchunk >= 16) {
            dwconv_pairs(p, x, wk, y, pair, ring, pchunk);
            return;
        }
    }
    int16_t buf[ROW_BUDGET];
    size_t held[MAX_TAPS]; /* input row each ring slot holds */
    size_t esize = p->out == OQ_Q8_OUT_U8 || p->out == OQ_Q8_OUT_S8 ? 1 : 4;
    uint8_t flip = p->x_signed ? 0x80 : 0;
    int32_t zp = p->x_zp + (p->x_signed ? 128 : 0);
    for (size_t c0 = 0; c0 < ow; c0 += chunk) {
        size_t cw = ow - c0 < chunk ? ow - c0 : chunk, len = cw + reach; /* elements per phase */
        size_t pstride = len + SLACK;
        for (size_t r = 0; r < ring; r++)
            held[r] = SIZE_MAX;
        /* a shared zero row when it is long enough: one memset per channel call
         * costs more than the small rows it clears */
        static const int16_t zeros[2048];
        const int16_t *zero_row = zeros;
        if (sx * pstride > sizeof zeros / sizeof zeros[0]) {
            memset(buf + ring * sx * pstride, 0, sx * pstride * sizeof *buf);
            zero_row = buf + ring * sx * pstride;
        }
        /* tap kx reads x = ox*sx + kx*dx - px: phase (kx*dx) % sx at offset (kx*dx) / sx */
        size_t kx_at[MAX_TAPS];
        for (size_t kx = 0; kx < kw; kx++)
            kx_at[kx] = kx * dx % sx * pstride + kx * dx / sx;
        for (size_t oy = 0; oy < oh; oy++) {
            const int16_t *src[MAX_TAPS];
            for (size_t ky = 0; ky < kh; ky++) {
                size_t iy = oy * g->stride[1] + ky * g->dilation[1] - g->pad[1];
                const int16_t *rb = zero_row;
                if (iy < ih) {
                    size_t slot = iy % ring;
                    int16_t *rs = buf + slot * sx * pstride;
                    if (held[slot] != iy) {
                        convert_row(rs, len, pstride, (const uint8_t *)x + iy * iw, (const uint8_t *)x + ih * iw, iw,
                                    c0, sx, px, flip, zp);
                        held[slot] = iy;
                    }
                    rb = rs;
                }
                for (size_t kx = 0; kx < kw; kx++)
                    src[ky * kw + kx] = rb + kx_at[kx];
            }
            row(cw, taps, src, wk, p->bias, p, (uint8_t *)y + (oy * ow + c0) * esize);
        }
    }
}

void oq_q8_dwconv_channels_with(const oq_q8_dw_params *p, const oq_q8_dw_channels *ch, const void *x, const void *w,
                                void *y, OQ_Q8_DW_ROW_FUNCTION((*row)), OQ_Q8_DW_PAIR_FUNCTION((*pair)),
                                OQ_Q8_DW_PLANES_FUNCTION((*planes)))
{
    const oq_q8_conv_geom *g = p->g;
    size_t in_plane = g->in[1] * g->in[2], ksize = g->kernel[1] * g->kernel[2];
    size_t out_bytes = g->out[1] * g->out[2] * (p->out == OQ_Q8_OUT_U8 || p->out == OQ_Q8_OUT_S8 ? 1 : 4);
    const uint8_t *xb = x, *wb = w;
    uint8_t *yb = y;
    for (size_t i = 0; i < ch->count;) {
        if (planes) {
            oq_q8_dw_channels rest = {ch->count - i, ch->bias ? ch->bias + i : NULL, ch->w_zp ? ch->w_zp + i : NULL,
                                      ch->scale ? ch->scale + i : NULL};
            i += planes(p, &rest, xb + i * in_plane, wb + i * ksize, yb + i * out_bytes);
            if (i == ch->count)
                break;
        }
        /* the channel the plane kernel declined */
        oq_q8_dw_params q = *p;
        if (ch->bias)
            q.bias = ch->bias[i];
        if (ch->w_zp)
            q.w_zp = ch->w_zp[i];
        if (ch->scale)
            q.scale = ch->scale[i];
        dwconv_rows(&q, xb + i * in_plane, wb + i * ksize, yb + i * out_bytes, row, pair);
        i++;
    }
}

void oq_q8_dwconv_with(const oq_q8_dw_params *p, const void *x, const void *w, void *y,
                       OQ_Q8_DW_ROW_FUNCTION((*row)), OQ_Q8_DW_PAIR_FUNCTION((*pair)),
                       OQ_Q8_DW_PLANES_FUNCTION((*planes)))
{
    oq_q8_dw_channels one = {1, NULL, NULL, NULL};
    oq_q8_dwconv_channels_with(p, &one, x, w, y, row, pair, planes);
}

void oq_q8_dwconv_channels(const oq_q8_dw_params *p, const oq_q8_dw_channels *ch, const void *x, const void *w,
                           void *y)
{
    static OQ_Q8_DW_ROW_FUNCTION((*chosen));
    static OQ_Q8_DW_PAIR_FUNCTION((*chosen_pair));
    static OQ_Q8_DW_PLANES_FUNCTION((*chosen_planes));
    static int ready;
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        oq_isa isa = oq_isa_level();
        __atomic_store_n(&chosen, isa >= OQ_ISA_AVX512 ? oq_q8_dw_row__avx512
                                  : isa >= OQ_ISA_AVX2 ? oq_q8_dw_row__avx2
                                                       : oq_q8_dw_row__scalar,
                         __ATOMIC_RELAXED);
        __atomic_store_n(&chosen_pair, isa >= OQ_ISA_AVX512 ? oq_q8_dw_pair__avx512
                                       : isa >= OQ_ISA_AVX2 ? oq_q8_dw_pair__avx2
                                                            : oq_q8_dw_pair__scalar,
                         __ATOMIC_RELAXED);
        __atomic_store_n(&chosen_planes, isa >= OQ_ISA_AVX512VNNI ? oq_q8_dw_planes__avx512vnni : NULL,
                         __ATOMIC_RELAXED);
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    oq_q8_dwconv_channels_with(p, ch, x, w, y, chosen, chosen_pair, chosen_planes);
}

void oq_q8_dwconv(const oq_q8_dw_params *p, const void *x, const void *w, void *y)
{
    oq_q8_dw_channels one = {1, NULL, NULL, NULL};
    oq_q8_dwconv_channels(p, &one, x, w, y);
}
