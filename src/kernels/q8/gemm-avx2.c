/* kernels/q8: AVX2 microkernels, 4 rows x 8 columns. Exact without VNNI: bytes
 * are widened to int16 (vpmovzxbw / vpmovsxbw) and multiplied with vpmaddwd,
 * whose pair sums (at most 2 * 255 * 128) cannot saturate, unlike vpmaddubsw. */
#include "kernels/q8/q8.h"

#include <immintrin.h>
#include <string.h>

enum { MR = 4, NR = 8 };

static inline __m256i widen(__m128i v, bool is_signed)
{
    return is_signed ? _mm256_cvtepi8_epi16(v) : _mm256_cvtepu8_epi16(v);
}

static inline __attribute__((always_inline)) void finish_row(const oq_q8_gemm_tile *t, size_t i, __m256i v, size_t nr,
                                                             void *c, size_t ldc)
{
    if (t->row_off)
        v = _mm256_add_epi32(v, _mm256_set1_epi32(t->row_off[i]));
    int32_t tmp[NR];
    if (t->col_off) {
        memset(tmp, 0, sizeof tmp);
        memcpy(tmp, t->col_off, nr * 4);
        v = _mm256_add_epi32(v, _mm256_loadu_si256((const __m256i *)tmp));
    }
    const int32_t *rs[2] = {t->r1, t->r2}, *cs[2] = {t->c1, t->c2};
    for (int q = 0; q < 2; q++)
        if (rs[q]) {
            memset(tmp, 0, sizeof tmp);
            memcpy(tmp, cs[q], nr * 4);
            v = _mm256_add_epi32(v, _mm256_mullo_epi32(_mm256_set1_epi32(rs[q][i]),
                                                       _mm256_loadu_si256((const __m256i *)tmp)));
        }
    if (t->out == OQ_Q8_OUT_I32) {
        int32_t *ci = (int32_t *)c + i * ldc;
        if (nr == NR)
            _mm256_storeu_si256((__m256i *)ci, v);
        else {
            _mm256_storeu_si256((__m256i *)tmp, v);
            memcpy(ci, tmp, nr * 4);
        }
        return;
    }
    __m256 s;
    if (t->scale_mode == OQ_Q8_PER_COL) {
        float fs[NR] = {0};
        memcpy(fs, t->scale, nr * 4);
        s = _mm256_loadu_ps(fs);
    } else
        s = _mm256_set1_ps(t->scale[t->scale_mode == OQ_Q8_PER_ROW ? i : 0]);
    __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(v), s);
    if (t->out == OQ_Q8_OUT_F32) {
        float fb[NR] = {0};
        if (t->bias) {
            memcpy(fb, t->bias, nr * 4);
            f = _mm256_add_ps(f, _mm256_loadu_ps(fb));
        }
        float *ci = (float *)c + i * ldc;
        if (nr == NR)
            _mm256_storeu_ps(ci, f);
        else {
            _mm256_storeu_ps(fb, f);
            memcpy(ci, fb, nr * 4);
        }
        return;
    }
    f = _mm256_min_ps(_mm256_max_ps(f, _mm256_set1_ps(t->range.lo)), _mm256_set1_ps(t->range.hi));
    const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(f), _mm256_set1_epi32(t->range.zp));
    /* values are in range, so the saturating packs are exact */
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    const __m128i bytes = t->out == OQ_Q8_OUT_U8 ? _mm_packus_epi16(w, w) : _mm_packs_epi16(w, w);
    uint8_t *ci = (uint8_t *)c + i * ldc;
    if (nr == NR)
        _mm_storel_epi64((__m128i *)ci, bytes);
    else {
        uint8_t b8[16];
        _mm_storeu_si128((__m128i *)b8, bytes);
        memcpy(ci, b8, nr);
    }
}

static inline __attribute__((always_inline)) void gemm_rows(const size_t R, size_t nr, size_t kg, const uint8_t *a,
                                                            const uint8_t *b, void *c, size_t ldc,
                                                            const oq_q8_gemm_tile *t, const bool a_signed)
{
    /* lo holds columns 0-3 and hi 4-7, each as two partial sums (k pairs 01 and 23) */
    __m256i lo[MR], hi[MR];
#pragma GCC unroll 4
    for (size_t i = 0; i < R; i++)
        lo[i] = hi[i] = _mm256_setzero_si256();
    /* packed panel or raw rows (t->a_stride), the last group maybe partial */
    const size_t gs = t->a_stride ? 4 : MR * 4, rs = t->a_stride ? t->a_stride : 4;
    const unsigned tail = t->a_stride ? t->a_tail : 0;
    for (size_t g = 0; g < kg; g++) {
        const __m256i b0 = widen(_mm_loadu_si128((const __m128i *)b), !a_signed);
        const __m256i b1 = widen(_mm_loadu_si128((const __m128i *)(b + 16)), !a_signed);
        const bool part = tail && g + 1 == kg;
#pragma GCC unroll 4
        for (size_t i = 0; i < R; i++) {
            int32_t a4;
            if (part)
                a4 = oq_q8_a_tail_word(a + i * rs, tail);
            else
                memcpy(&a4, a + i * rs, 4);
            const __m256i av = widen(_mm_set1_epi32(a4), a_signed);
            lo[i] = _mm256_add_epi32(lo[i], _mm256_madd_epi16(b0, av));
            hi[i] = _mm256_add_epi32(hi[i], _mm256_madd_epi16(b1, av));
        }
        a += gs;
        b += NR * 4;
    }
#pragma GCC unroll 4
    for (size_t i = 0; i < R; i++) {
        /* hadd gives columns 0 1 4 5 | 2 3 6 7; the permute puts them in order */
        const __m256i v = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo[i], hi[i]), 0xD8);
        finish_row(t, i, v, nr, c, ldc);
    }
}

static inline __attribute__((always_inline)) void gemm(size_t mr, size_t nr, size_t kg, const uint8_t *a,
                                                       const uint8_t *b, void *c, size_t ldc, const oq_q8_gemm_tile *t,
                                                       const bool a_signed)
{
    switch (mr) {
    case 4: gemm_rows(4, nr, kg, a, b, c, ldc, t, a_signed); break;
    case 3: gemm_rows(3, nr, kg, a, b, c, ldc, t, a_signed); break;
    case 2: gemm_rows(2, nr, kg, a, b, c, ldc, t, a_signed); break;
    default: gemm_rows(1, nr, kg, a, b, c, ldc, t, a_signed); break;
    }
}

OQ_Q8_GEMM_UKERNEL_FUNCTION(oq_q8_gemm_u8s8_4x8c4__avx2) { gemm(mr, nr, kg, a, b, c, ldc, t, false); }
OQ_Q8_GEMM_UKERNEL_FUNCTION(oq_q8_gemm_s8u8_4x8c4__avx2) { gemm(mr, nr, kg, a, b, c, ldc, t, true); }
