/* kernels/q8: AVX512-VNNI microkernels, 8 rows x 32 columns: 16 zmm
 * accumulators, per group of 4 k two loads of B and 8 broadcasts of A feeding 16
 * vpdpbusd (exact: u8 x s8 products summed in int32), then the output stage in registers. */
#include "kernels/q8/q8.h"

#include <immintrin.h>
#include <string.h>

enum { MR = 8, NR = 32 };

static inline __m512i bcast4(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

static inline __attribute__((always_inline)) void finish_row(const oq_q8_gemm_tile *t, size_t i, __m512i v0,
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
        _mm512_mask_storeu_epi32(ci, m0, v0);
        _mm512_mask_storeu_epi32(ci + 16, m1, v1);
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
        _mm512_mask_storeu_ps(ci, m0, f0);
        _mm512_mask_storeu_ps(ci + 16, m1, f1);
        return;
    }
    const __m512 lo = _mm512_set1_ps(t->range.lo), hi = _mm512_set1_ps(t->range.hi);
    const __m512i zp = _mm512_set1_epi32(t->range.zp);
    f0 = _mm512_min_ps(_mm512_max_ps(f0, lo), hi);
    f1 = _mm512_min_ps(_mm512_max_ps(f1, lo), hi);
    /* cvtps2dq rounds with MXCSR: half to even, as nearbyintf in the reference */
    const __m512i q0 = _mm512_add_epi32(_mm512_cvtps_epi32(f0), zp), q1 = _mm512_add_epi32(_mm512_cvtps_epi32(f1), zp);
    uint8_t *ci = (uint8_t *)c + i * ldc;
    _mm_mask_storeu_epi8(ci, m0, _mm512_cvtepi32_epi8(q0)); /* in range already: truncation is exact */
    _mm_mask_storeu_epi8(ci + 16, m1, _mm512_cvtepi32_epi8(q1));
}

static inline __attribute__((always_inline)) void gemm_rows(const size_t R, size_t nr, size_t kg, const uint8_t *a,
                                                            const uint8_t *b, void *c, size_t ldc,
                                                            const oq_q8_gemm_tile *t, const bool a_signed)
{
    __m512i acc[MR][2];
#pragma GCC unroll 8
    for (size_t i = 0; i < R; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_si512();
    for (size_t g = 0; g < kg; g++) {
        const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
#pragma GCC unroll 8
        for (size_t i = 0; i < R; i++) {
            const __m512i av = bcast4(a + 4 * i);
            if (a_signed) {
                acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], b0, av);
                acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], b1, av);
            } else {
                acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], av, b0);
                acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], av, b1);
            }
        }
        a += MR * 4;
        b += NR * 4;
    }
    const __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
    const __mmask16 m1 = nr >= 32 ? (__mmask16)0xFFFF : (nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0);
#pragma GCC unroll 8
    for (size_t i = 0; i < R; i++)
        finish_row(t, i, acc[i][0], acc[i][1], m0, m1, c, ldc);
}

static inline __attribute__((always_inline)) void gemm(size_t mr, size_t nr, size_t kg, const uint8_t *a,
                                                       const uint8_t *b, void *c, size_t ldc, const oq_q8_gemm_tile *t,
                                                       const bool a_signed)
{
    /* one unrolled body per row count: a short M (M=1 GEMV) must not pay for 8 rows */
    switch (mr) {
    case 8: gemm_rows(8, nr, kg, a, b, c, ldc, t, a_signed); break;
    case 7: gemm_rows(7, nr, kg, a, b, c, ldc, t, a_signed); break;
    case 6: gemm_rows(6, nr, kg, a, b, c, ldc, t, a_signed); break;
    case 5: gemm_rows(5, nr, kg, a, b, c, ldc, t, a_signed); break;
    case 4: gemm_rows(4, nr, kg, a, b, c, ldc, t, a_signed); break;
    case 3: gemm_rows(3, nr, kg, a, b, c, ldc, t, a_signed); break;
    case 2: gemm_rows(2, nr, kg, a, b, c, ldc, t, a_signed); break;
    default: gemm_rows(1, nr, kg, a, b, c, ldc, t, a_signed); break;
    }
}

OQ_Q8_GEMM_UKERNEL_FUNCTION(oq_q8_gemm_u8s8_8x32c4__avx512vnni) { gemm(mr, nr, kg, a, b, c, ldc, t, false); }
OQ_Q8_GEMM_UKERNEL_FUNCTION(oq_q8_gemm_s8u8_8x32c4__avx512vnni) { gemm(mr, nr, kg, a, b, c, ldc, t, true); }
