/* kernels/f32-conv: AVX512 depthwise convolution, 16 output columns per vector:
 * 3x3 (dilation 1, horizontal stride 1 or 2) straight from the plane with masked
 * loads, everything else over a zero-padded copy of the plane. */
#include "kernels/f32-conv/conv.h"

#include <immintrin.h>

static inline __attribute__((always_inline)) __m512 load_strided(const float *s, size_t sw, __m512i even,
                                                                  __m512i gidx)
{
    if (sw == 1)
        return _mm512_loadu_ps(s);
    if (sw == 2)
        return _mm512_permutex2var_ps(_mm512_loadu_ps(s), even, _mm512_loadu_ps(s + 16));
    return _mm512_i32gather_ps(gidx, s, 4);
}

static inline __attribute__((always_inline)) void plane(const oq_f32_dwconv_params *p, const float *ws,
                                                         size_t pitch, const float *w, float bias, float *out,
                                                         size_t kh, size_t kw, size_t sw)
{
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i gidx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32((int)sw));
    const __m512 lo = _mm512_set1_ps(p->clamp ? p->min : -__builtin_inff());
    const __m512 hi = _mm512_set1_ps(p->clamp ? p->max : __builtin_inff());
    const __m512 vb = _mm512_set1_ps(bias);
    const size_t dh = p->dh, dw = p->dw, ow = p->ow;
    for (size_t oy = 0; oy < p->oh; oy++) {
        const float *r0 = ws + oy * p->sh * pitch;
        float *o = out + oy * ow;
        for (size_t ox = 0; ox < ow; ox += 16) {
            __m512 acc = vb;
            for (size_t ky = 0; ky < kh; ky++) {
                const float *r = r0 + ky * dh * pitch + ox * sw;
                for (size_t kx = 0; kx < kw; kx++)
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(w[ky * kw + kx]), load_strided(r + kx * dw, sw, even, gidx),
                                          acc);
            }
            acc = _mm512_min_ps(_mm512_max_ps(acc, lo), hi);
            size_t n = ow - ox;
            if (n >= 16)
                _mm512_storeu_ps(o + ox, acc);
            else
                _mm512_mask_storeu_ps(o + ox, (__mmask16)((1u << n) - 1), acc);
        }
    }
}

/* Lanes u < lanes with 0 <= s + u < n. */
static inline uint64_t lane_mask(ptrdiff_t s, size_t lanes, size_t n)
{
    ptrdiff_t lo = s < 0 ? -s : 0, hi = (ptrdiff_t)n - s;
    if (hi > (ptrdiff_t)lanes)
        hi = (ptrdiff_t)lanes;
    if (hi <= lo)
        return 0;
    return ((((uint64_t)1 << hi) - 1) & ~(((uint64_t)1 << lo) - 1));
}

/* row + off floats, formed as an integer: off may point left of the row (padding),
 * where only lanes inside the row are loaded. */
static inline const float *at(const float *row, ptrdiff_t off)
{
    return (const float *)((uintptr_t)row + (uintptr_t)(off * (ptrdiff_t)sizeof(float)));
}

/* 3x3, dilation 1, read straight from the plane (zero-masked loads supply the
 * padding, so no padded copy: the copy cost as much as the taps). A block is R output
 * rows x V vectors of 16 columns: each loaded input vector feeds every output row of
 * the block it reaches, which keeps the loads (many of them cache-line splits) below
 * the FMAs. Per output, the same summation order as plane(): bias, then row-major taps.
 * sw (1 or 2), R, V and, on the fast paths, sh are compile-time constants. */
static inline __attribute__((always_inline)) void block3x3(const oq_f32_dwconv_params *p, const float *in,
                                                            const __m512 *wv, __m512 vb, __m512 lo, __m512 hi,
                                                            float *out, size_t oy, size_t ox, const int R,
                                                            const int V, const size_t sw, const size_t sh)
{
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    const size_t ih = p->ih, iw = p->iw, ow = p->ow;
    __m512 acc[4][2];
    uint64_t ma[2][3];
    ptrdiff_t ix0[2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int v = 0; v < V; v++)
            acc[r][v] = vb;
#pragma GCC unroll 2
    for (int v = 0; v < V; v++) {
        ix0[v] = (ptrdiff_t)((ox + 16 * (size_t)v) * sw) - (ptrdiff_t)p->pl;
        if (sw == 1)
            for (int kx = 0; kx < 3; kx++)
                ma[v][kx] = lane_mask(ix0[v] + kx, 16, iw);
        else {
            ma[v][0] = lane_mask(ix0[v], 32, iw);
            ma[v][2] = lane_mask(ix0[v] + 2, 32, iw);
        }
    }
    const ptrdiff_t iy0 = (ptrdiff_t)(oy * sh) - (ptrdiff_t)p->pt;
    const size_t rows = (size_t)(R - 1) * sh + 3;
#pragma GCC unroll 16
    for (size_t j = 0; j < rows; j++) {
        const ptrdiff_t iy = iy0 + (ptrdiff_t)j;
        if (iy < 0 || iy >= (ptrdiff_t)ih)
            continue;
        const float *row = in + (size_t)iy * iw;
#pragma GCC unroll 2
        for (int v = 0; v < V; v++) {
            __m512 x0, x1, x2;
            if (sw == 1) {
                x0 = _mm512_maskz_loadu_ps((__mmask16)ma[v][0], at(row, ix0[v]));
                x1 = _mm512_maskz_loadu_ps((__mmask16)ma[v][1], at(row, ix0[v] + 1));
                x2 = _mm512_maskz_loadu_ps((__mmask16)ma[v][2], at(row, ix0[v] + 2));
            } else {
                const __m512 a0 = _mm512_maskz_loadu_ps((__mmask16)ma[v][0], at(row, ix0[v]));
                const __m512 a1 = _mm512_maskz_loadu_ps((__mmask16)(ma[v][0] >> 16), at(row, ix0[v] + 16));
                const __m512 b0 = _mm512_maskz_loadu_ps((__mmask16)ma[v][2], at(row, ix0[v] + 2));
                const __m512 b1 = _mm512_maskz_loadu_ps((__mmask16)(ma[v][2] >> 16), at(row, ix0[v] + 18));
                x0 = _mm512_permutex2var_ps(a0, even, a1);
                x1 = _mm512_permutex2var_ps(a0, odd, a1);
                x2 = _mm512_permutex2var_ps(b0, even, b1);
            }
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                const ptrdiff_t ky = (ptrdiff_t)j - (ptrdiff_t)((size_t)r * sh);
                if (ky < 0 || ky > 2)
                    continue;
                acc[r][v] = _mm512_fmadd_ps(wv[ky * 3], x0, acc[r][v]);
                acc[r][v] = _mm512_fmadd_ps(wv[ky * 3 + 1], x1, acc[r][v]);
                acc[r][v] = _mm512_fmadd_ps(wv[ky * 3 + 2], x2, acc[r][v]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int v = 0; v < V; v++) {
            const __m512 y = _mm512_min_ps(_mm512_max_ps(acc[r][v], lo), hi);
            float *o = out + (oy + (size_t)r) * ow + ox + 16 * (size_t)v;
            const size_t n = ow - ox - 16 * (size_t)v;
            if (n >= 16)
                _mm512_storeu_ps(o, y);
            else
                _mm512_mask_storeu_ps(o, (__mmask16)((1u << n) - 1), y);
        }
}

#define BLOCK_R(rr, sw, sh)                                                                                 \
    case rr:                                                                                                \
        if (two)                                                                                            \
            block3x3(p, in, wv, vb, lo, hi, out, oy, ox, rr, 2, sw, sh);                                    \
        else                                                                                                \
            block3x3(p, in, wv, vb, lo, hi, out, oy, ox, rr, 1, sw, sh);                                    \
        break;

#define PLANE3X3(sw, sh)                                                                                    \
    for (size_t oy = 0; oy < p->oh; oy += 4)                                                                \
        for (size_t ox = 0; ox < p->ow; ox += 32) {                                                         \
            const bool two = p->ow - ox > 16;                                                               \
            switch (p->oh - oy < 4 ? p->oh - oy : 4) {                                                      \
                BLOCK_R(1, sw, sh) BLOCK_R(2, sw, sh) BLOCK_R(3, sw, sh) default : BLOCK_R(4, sw, sh)       \
            }                                                                                               \
        }

static void direct3x3(const oq_f32_dwconv_params *p, const float *in, const float *w, float bias, float *out)
{
    const __m512 lo = _mm512_set1_ps(p->clamp ? p->min : -__builtin_inff());
    const __m512 hi = _mm512_set1_ps(p->clamp ? p->max : __builtin_inff());
    const __m512 vb = _mm512_set1_ps(bias);
    __m512 wv[9];
    for (int i = 0; i < 9; i++)
        wv[i] = _mm512_set1_ps(w[i]);
    if (p->sw == 1 && p->sh == 1) {
        PLANE3X3(1, 1)
    } else if (p->sw == 2 && p->sh == 2) {
        PLANE3X3(2, 2)
    } else if (p->sw == 1) {
        PLANE3X3(1, p->sh)
    } else {
        PLANE3X3(2, p->sh)
    }
}

OQ_F32_DWCONV_FUNCTION(oq_f32_dwconv__avx512)
{
    if (p->kh == 3 && p->kw == 3 && p->dh == 1 && p->dw == 1 && (p->sw == 1 || p->sw == 2)) {
        direct3x3(p, in, w, bias, out);
        return;
    }
    size_t pitch;
    oq_f32_dwconv_pad(p, in, ws, &pitch);
    if (p->kh == 3 && p->kw == 3 && p->sw == 1)
        plane(p, ws, pitch, w, bias, out, 3, 3, 1);
    else if (p->kh == 3 && p->kw == 3 && p->sw == 2)
        plane(p, ws, pitch, w, bias, out, 3, 3, 2);
    else if (p->sw == 1)
        plane(p, ws, pitch, w, bias, out, p->kh, p->kw, 1);
    else
        plane(p, ws, pitch, w, bias, out, p->kh, p->kw, p->sw);
}
