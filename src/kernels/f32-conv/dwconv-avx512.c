/* kernels/f32-conv: AVX512 depthwise convolution, 16 output columns per vector
 * over a zero-padded copy of the plane; 3x3 stride 1 and 2 are unrolled. */
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

OQ_F32_DWCONV_FUNCTION(oq_f32_dwconv__avx512)
{
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
