/* kernels/q8: AVX2 row kernel of the depthwise convolution: 8 outputs per
 * vector, taps widened int16 -> int32 and multiplied exactly, then the output
 * stage (fp32 scale, clamp, round half to even); the row's tail is scalar. */
#include "kernels/q8/q8.h"

#include <immintrin.h>

OQ_Q8_DW_ROW_FUNCTION(oq_q8_dw_row__avx2)
{
    const __m256i b = _mm256_set1_epi32(bias);
    const __m256 sc = _mm256_set1_ps(p->scale), lo = _mm256_set1_ps(p->range.lo), hi = _mm256_set1_ps(p->range.hi);
    const __m256i zp = _mm256_set1_epi32(p->range.zp);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i a = b;
        for (size_t t = 0; t < taps; t++)
            a = _mm256_add_epi32(a, _mm256_mullo_epi32(_mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(src[t] + i))),
                                                       _mm256_set1_epi32(w[t])));
        if (p->out == OQ_Q8_OUT_I32) {
            _mm256_storeu_si256((__m256i *)((int32_t *)y + i), a);
            continue;
        }
        __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(a), sc);
        if (p->out == OQ_Q8_OUT_F32) {
            _mm256_storeu_ps((float *)y + i, f);
            continue;
        }
        f = _mm256_min_ps(_mm256_max_ps(f, lo), hi);
        __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(f), zp); /* in [qmin, qmax]: packs cannot saturate */
        __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        __m128i q8 = p->out == OQ_Q8_OUT_U8 ? _mm_packus_epi16(q16, q16) : _mm_packs_epi16(q16, q16);
        _mm_storel_epi64((__m128i *)((uint8_t *)y + i), q8);
    }
    if (i < n) {
        const int16_t *s[256];
        for (size_t t = 0; t < taps && t < 256; t++)
            s[t] = src[t] + i;
        size_t esize = p->out == OQ_Q8_OUT_U8 || p->out == OQ_Q8_OUT_S8 ? 1 : 4;
        oq_q8_dw_row__scalar(n - i, taps, s, w, bias, p, (uint8_t *)y + i * esize);
    }
}

/* Pairs of taps: 8 outputs per vector, one vpmaddwd per pair; scalar tail. */
OQ_Q8_DW_PAIR_FUNCTION(oq_q8_dw_pair__avx2)
{
    const __m256i b = _mm256_set1_epi32(bias);
    const __m256 sc = _mm256_set1_ps(p->scale), lo = _mm256_set1_ps(p->range.lo), hi = _mm256_set1_ps(p->range.hi);
    const __m256i zp = _mm256_set1_epi32(p->range.zp);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i a = b;
        for (size_t t = 0; t < pairs; t++)
            a = _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(src[t] + 2 * i)),
                                                      _mm256_set1_epi32(w2[t])));
        if (p->out == OQ_Q8_OUT_I32) {
            _mm256_storeu_si256((__m256i *)((int32_t *)y + i), a);
            continue;
        }
        __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(a), sc);
        if (p->out == OQ_Q8_OUT_F32) {
            _mm256_storeu_ps((float *)y + i, f);
            continue;
        }
        f = _mm256_min_ps(_mm256_max_ps(f, lo), hi);
        __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(f), zp); /* in [qmin, qmax]: packs cannot saturate */
        __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        __m128i q8 = p->out == OQ_Q8_OUT_U8 ? _mm_packus_epi16(q16, q16) : _mm_packs_epi16(q16, q16);
        _mm_storel_epi64((__m128i *)((uint8_t *)y + i), q8);
    }
    if (i < n) {
        const int16_t *s[256];
        for (size_t t = 0; t < pairs && t < 256; t++)
            s[t] = src[t] + 2 * i;
        size_t esize = p->out == OQ_Q8_OUT_U8 || p->out == OQ_Q8_OUT_S8 ? 1 : 4;
        oq_q8_dw_pair__scalar(n - i, pairs, s, w2, bias, p, (uint8_t *)y + i * esize);
    }
}
