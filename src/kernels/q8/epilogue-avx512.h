/* kernels/q8: the AVX-512 output stage of one row of 32 int32 sums (two zmm),
 * shared by the VNNI and AMX microkernels: the corrections of tile.h, then the
 * fp32 scale, clamp and round half to even of kernels/requantize.h. Full rows
 * (m1 all ones) store without masks, which cost more on Zen 4. Include only
 * from files compiled with AVX-512 (F, BW) enabled. */
#ifndef OQ_KERNELS_Q8_EPILOGUE_AVX512_H
#define OQ_KERNELS_Q8_EPILOGUE_AVX512_H

#include "kernels/q8/q8.h"

#include <immintrin.h>

static inline __attribute__((always_inline)) void oq_q8_finish_row_avx512(const oq_q8_gemm_tile *t, size_t i, __m512i v0,
                                                             __m512i v1, __mmask16 m0, __mmask16 m1, void *c,
                                                             size_t ldc)
{
    if (t->row_off) {
        const __m512i r = _mm512_set1_epi32(t->row_off[i]);
        v0 = _mm512_add_epi32(v0, r);
        v1 = _mm512_add_epi32(v1, r);
    }
    if (t->col_off) {
        v0 = _mm512_add_epi32(v0, _mm512_maskz_loadu_epi32(m0, t->col_off));
        v1 = _mm512_add_epi32(v1, _mm512_maskz_loadu_epi32(m1, t->col_off + 16));
    }
    if (t->r1) {
        const __m512i r = _mm512_set1_epi32(t->r1[i]);
        v0 = _mm512_add_epi32(v0, _mm512_mullo_epi32(r, _mm512_maskz_loadu_epi32(m0, t->c1)));
        v1 = _mm512_add_epi32(v1, _mm512_mullo_epi32(r, _mm512_maskz_loadu_epi32(m1, t->c1 + 16)));
    }
    if (t->r2) {
        const __m512i r = _mm512_set1_epi32(t->r2[i]);
        v0 = _mm512_add_epi32(v0, _mm512_mullo_epi32(r, _mm512_maskz_loadu_epi32(m0, t->c2)));
        v1 = _mm512_add_epi32(v1, _mm512_mullo_epi32(r, _mm512_maskz_loadu_epi32(m1, t->c2 + 16)));
    }
    if (t->out == OQ_Q8_OUT_I32) {
        int32_t *ci = (int32_t *)c + i * ldc;
        if (m1 == 0xFFFF) { /* a full row: plain stores (masked ones cost more on Zen 4) */
            _mm512_storeu_si512(ci, v0);
            _mm512_storeu_si512(ci + 16, v1);
        } else {
            _mm512_mask_storeu_epi32(ci, m0, v0);
            _mm512_mask_storeu_epi32(ci + 16, m1, v1);
        }
        return;
    }
    __m512 s0, s1;
    if (t->scale_mode == OQ_Q8_PER_COL) {
        s0 = _mm512_maskz_loadu_ps(m0, t->scale);
        s1 = _mm512_maskz_loadu_ps(m1, t->scale + 16);
    } else
        s0 = s1 = _mm512_set1_ps(t->scale[t->scale_mode == OQ_Q8_PER_ROW ? i : 0]);
    __m512 f0 = _mm512_mul_ps(_mm512_cvtepi32_ps(v0), s0), f1 = _mm512_mul_ps(_mm512_cvtepi32_ps(v1), s1);
    if (t->out == OQ_Q8_OUT_F32) {
        if (t->bias) {
            f0 = _mm512_add_ps(f0, _mm512_maskz_loadu_ps(m0, t->bias));
            f1 = _mm512_add_ps(f1, _mm512_maskz_loadu_ps(m1, t->bias + 16));
        }
        float *ci = (float *)c + i * ldc;
        if (m1 == 0xFFFF) {
            _mm512_storeu_ps(ci, f0);
            _mm512_storeu_ps(ci + 16, f1);
        } else {
            _mm512_mask_storeu_ps(ci, m0, f0);
            _mm512_mask_storeu_ps(ci + 16, m1, f1);
        }
        return;
    }
    const __m512 lo = _mm512_set1_ps(t->range.lo), hi = _mm512_set1_ps(t->range.hi);
    const __m512i zp = _mm512_set1_epi32(t->range.zp);
    f0 = _mm512_min_ps(_mm512_max_ps(f0, lo), hi);
    f1 = _mm512_min_ps(_mm512_max_ps(f1, lo), hi);
    /* cvtps2dq rounds with MXCSR: half to even, as nearbyintf in the reference */
    const __m512i q0 = _mm512_add_epi32(_mm512_cvtps_epi32(f0), zp), q1 = _mm512_add_epi32(_mm512_cvtps_epi32(f1), zp);
    uint8_t *ci = (uint8_t *)c + i * ldc;
    /* in range already: truncation is exact */
    if (m1 == 0xFFFF) {
        _mm_storeu_si128((__m128i *)ci, _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(ci + 16), _mm512_cvtepi32_epi8(q1));
    } else {
        _mm_mask_storeu_epi8(ci, m0, _mm512_cvtepi32_epi8(q0));
        _mm_mask_storeu_epi8(ci + 16, m1, _mm512_cvtepi32_epi8(q1));
    }
}

/* The u8/s8 output stage of 16 lanes with per-lane scales and the range in registers (lo, hi
 * in fp32, zp in int32: a byte store may alias the caller's parameters, so they are not read per
 * call): clamp, round half to even, add the zero point, store y[0..15] under m. */
static inline __attribute__((always_inline)) void oq_q8_store16_avx512(__m512i acc, __m512 scale, __m512 lo, __m512 hi,
                                                                       __m512i zp, uint8_t *y, __mmask16 m)
{
    __m512 f = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), scale), lo), hi);
    /* cvtps2dq rounds half to even (MXCSR default), as nearbyintf in oq_requantize */
    const __m128i b = _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(f), zp));
    if (m == 0xFFFF) /* the register form of vpmovdb and a plain store: the masked memory form is slow on Zen 4 */
        _mm_storeu_si128((__m128i *)y, b);
    else
        _mm_mask_storeu_epi8(y, m, b);
}

#endif
