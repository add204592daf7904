/* kernels/q8: AVX512 row kernel of the depthwise convolution: 16 outputs per
 * vector, taps widened int16 -> int32 and multiplied exactly (vpmulld), then the
 * output stage as in the GEMM epilogue (fp32 scale, clamp, round half to even). */
#include "kernels/q8/q8.h"

#include <immintrin.h>

static inline __attribute__((always_inline)) void store16(const oq_q8_dw_params *p, __m512i v, void *y, size_t i,
                                                          __mmask16 m)
{
    if (p->out == OQ_Q8_OUT_I32) {
        _mm512_mask_storeu_epi32((int32_t *)y + i, m, v);
        return;
    }
    __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_set1_ps(p->scale));
    if (p->out == OQ_Q8_OUT_F32) {
        _mm512_mask_storeu_ps((float *)y + i, m, f);
        return;
    }
    f = _mm512_min_ps(_mm512_max_ps(f, _mm512_set1_ps(p->range.lo)), _mm512_set1_ps(p->range.hi));
    /* cvtps2dq rounds half to even (MXCSR default), as nearbyintf in the reference */
    __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(f), _mm512_set1_epi32(p->range.zp));
    _mm_mask_storeu_epi8((uint8_t *)y + i, m, _mm512_cvtepi32_epi8(q));
}

OQ_Q8_DW_ROW_FUNCTION(oq_q8_dw_row__avx512)
{
    const __m512i b = _mm512_set1_epi32(bias);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512i a0 = b, a1 = b;
        for (size_t t = 0; t < taps; t++) {
            const __m512i wv = _mm512_set1_epi32(w[t]);
            a0 = _mm512_add_epi32(a0, _mm512_mullo_epi32(_mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)(src[t] + i))), wv));
            a1 = _mm512_add_epi32(a1, _mm512_mullo_epi32(_mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)(src[t] + i + 16))), wv));
        }
        store16(p, a0, y, i, 0xFFFF);
        store16(p, a1, y, i + 16, 0xFFFF);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512i a = b;
        for (size_t t = 0; t < taps; t++)
            a = _mm512_add_epi32(a, _mm512_mullo_epi32(_mm512_cvtepi16_epi32(_mm256_maskz_loadu_epi16(m, src[t] + i)),
                                                       _mm512_set1_epi32(w[t])));
        store16(p, a, y, i, m);
    }
}

/* Pairs of taps: 16 outputs per vector, one vpmaddwd per pair (the int16
 * products of two taps summed exactly into int32). */
OQ_Q8_DW_PAIR_FUNCTION(oq_q8_dw_pair__avx512)
{
    const __m512i b = _mm512_set1_epi32(bias);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512i a0 = b, a1 = b;
        for (size_t t = 0; t < pairs; t++) {
            const __m512i wv = _mm512_set1_epi32(w2[t]);
            a0 = _mm512_add_epi32(a0, _mm512_madd_epi16(_mm512_loadu_si512(src[t] + 2 * i), wv));
            a1 = _mm512_add_epi32(a1, _mm512_madd_epi16(_mm512_loadu_si512(src[t] + 2 * i + 32), wv));
        }
        store16(p, a0, y, i, 0xFFFF);
        store16(p, a1, y, i + 16, 0xFFFF);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512i a = b;
        for (size_t t = 0; t < pairs; t++)
            a = _mm512_add_epi32(a, _mm512_madd_epi16(_mm512_maskz_loadu_epi32(m, src[t] + 2 * i), _mm512_set1_epi32(w2[t])));
        store16(p, a, y, i, m);
    }
}
