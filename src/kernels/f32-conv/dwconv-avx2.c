/* kernels/f32-conv: AVX2+FMA depthwise convolution, 8 output columns per vector
 * over a zero-padded copy of the plane; 3x3 stride 1 and 2 are unrolled. */
#include "kernels/f32-conv/conv.h"

#include <immintrin.h>

static inline __attribute__((always_inline)) __m256 load_strided(const float *s, size_t sw)
{
    if (sw == 1)
        return _mm256_loadu_ps(s);
    if (sw == 2) {
        /* [s0 s2 s8 s10 | s4 s6 s12 s14] then the 64-bit lanes back in order */
        __m256 x = _mm256_shuffle_ps(_mm256_loadu_ps(s), _mm256_loadu_ps(s + 8), 0x88);
        return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(x), 0xD8));
    }
    return _mm256_setr_ps(s[0], s[sw], s[2 * sw], s[3 * sw], s[4 * sw], s[5 * sw], s[6 * sw], s[7 * sw]);
}

static inline __attribute__((always_inline)) void plane(const oq_f32_dwconv_params *p, const float *ws,
                                                         size_t pitch, const float *w, float bias, float *out,
                                                         size_t kh, size_t kw, size_t sw)
{
    const __m256 lo = _mm256_set1_ps(p->clamp ? p->min : -__builtin_inff());
    const __m256 hi = _mm256_set1_ps(p->clamp ? p->max : __builtin_inff());
    const __m256 vb = _mm256_set1_ps(bias);
    const size_t dh = p->dh, dw = p->dw, ow = p->ow;
    for (size_t oy = 0; oy < p->oh; oy++) {
        const float *r0 = ws + oy * p->sh * pitch;
        float *o = out + oy * ow;
        for (size_t ox = 0; ox < ow; ox += 8) {
            __m256 acc = vb;
            for (size_t ky = 0; ky < kh; ky++) {
                const float *r = r0 + ky * dh * pitch + ox * sw;
                for (size_t kx = 0; kx < kw; kx++)
                    acc = _mm256_fmadd_ps(_mm256_set1_ps(w[ky * kw + kx]), load_strided(r + kx * dw, sw), acc);
            }
            acc = _mm256_min_ps(_mm256_max_ps(acc, lo), hi);
            size_t n = ow - ox;
            if (n >= 8)
                _mm256_storeu_ps(o + ox, acc);
            else {
                float t[8];
                _mm256_storeu_ps(t, acc);
                for (size_t i = 0; i < n; i++)
                    o[ox + i] = t[i];
            }
        }
    }
}

OQ_F32_DWCONV_FUNCTION(oq_f32_dwconv__avx2)
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
