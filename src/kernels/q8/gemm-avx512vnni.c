/* kernels/q8: AVX512-VNNI microkernels, 8 rows x 32 columns: 16 zmm
 * accumulators, per group of 4 k two loads of B and 8 broadcasts of A feeding 16
 * vpdpbusd (exact: u8 x s8 products summed in int32), then the output stage in registers. */
#include "kernels/q8/epilogue-avx512.h"
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

/* acc + the products of the unsigned and signed bytes of av and b: A is the unsigned
 * operand in the u8s8 flavour, B in s8u8 (vpdpbusd takes the unsigned one first). */
static inline __attribute__((always_inline)) __m512i dot4(__m512i acc, __m512i av, __m512i b, const bool a_signed)
{
    return a_signed ? _mm512_dpbusd_epi32(acc, b, av) : _mm512_dpbusd_epi32(acc, av, b);
}

static inline __attribute__((always_inline)) void gemm_rows(const size_t R, size_t nr, size_t kg, const uint8_t *a,
                                                            const uint8_t *b, void *c, size_t ldc,
                                                            const oq_q8_gemm_tile *t, const bool a_signed)
{
    __m512i acc[MR][2];
#pragma GCC unroll 8
    for (size_t i = 0; i < R; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_si512();
    /* packed panel or raw rows (t->a_stride); a partial last group of raw rows
     * is read byte by byte after the loop */
    const size_t gs = t->a_stride ? 4 : MR * 4, rs = t->a_stride ? t->a_stride : 4;
    const unsigned tail = t->a_stride ? t->a_tail : 0;
    const size_t kfull = tail ? kg - 1 : kg;
    size_t g = 0;
    if (R == 1) {
        /* One row (batch-1 MatMul, an RNN step) has two accumulators and each vpdpbusd waits
         * for the last: four chains over k (int32 sums: any order gives the same bits). */
        __m512i s[4][2];
        for (int u = 0; u < 4; u++)
            s[u][0] = s[u][1] = _mm512_setzero_si512();
        for (; g + 4 <= kfull; g += 4) {
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) {
                const __m512i av = bcast4(a + u * gs);
                const __m512i b0 = _mm512_loadu_si512(b + u * NR * 4), b1 = _mm512_loadu_si512(b + u * NR * 4 + 64);
                s[u][0] = dot4(s[u][0], av, b0, a_signed);
                s[u][1] = dot4(s[u][1], av, b1, a_signed);
            }
            a += 4 * gs;
            b += 4 * NR * 4;
        }
        acc[0][0] = _mm512_add_epi32(_mm512_add_epi32(s[0][0], s[1][0]), _mm512_add_epi32(s[2][0], s[3][0]));
        acc[0][1] = _mm512_add_epi32(_mm512_add_epi32(s[0][1], s[1][1]), _mm512_add_epi32(s[2][1], s[3][1]));
    }
    for (; g < kfull; g++) {
        const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
#pragma GCC unroll 8
        for (size_t i = 0; i < R; i++) {
            const __m512i av = bcast4(a + i * rs);
            acc[i][0] = dot4(acc[i][0], av, b0, a_signed);
            acc[i][1] = dot4(acc[i][1], av, b1, a_signed);
        }
        a += gs;
        b += NR * 4;
    }
    if (tail) {
        const __m512i b0 = _mm512_loadu_si512(b), b1 = _mm512_loadu_si512(b + 64);
#pragma GCC unroll 8
        for (size_t i = 0; i < R; i++) {
            const __m512i av = _mm512_set1_epi32(oq_q8_a_tail_word(a + i * rs, tail));
            acc[i][0] = dot4(acc[i][0], av, b0, a_signed);
            acc[i][1] = dot4(acc[i][1], av, b1, a_signed);
        }
    }
    const __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
    const __mmask16 m1 = nr >= 32 ? (__mmask16)0xFFFF : (nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0);
#pragma GCC unroll 8
    for (size_t i = 0; i < R; i++)
        oq_q8_finish_row_avx512(t, i, acc[i][0], acc[i][1], m0, m1, c, ldc);
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
