/* kernels/f32-gemm: AVX512 microkernel, 14 rows x 32 columns: 28 zmm
 * accumulators, 2 loads of B and 14 broadcast FMAs pairs per k step. Edge tiles
 * run an instance for their own row count (and one vector when nr <= 16), so a
 * 2-row edge or an M=1 product costs 2 or 1 rows of FMAs, not 14. */
#include "kernels/f32-gemm/gemm.h"

#include <immintrin.h>

enum { MR = 14, NR = 32 };

/* rows: 1..MR, nv: 1 or 2 vectors of 16 columns; both compile-time constants in
 * every instance, so the unrolled accumulators live in registers. */
static inline __attribute__((always_inline)) void tile(const size_t rows, const size_t nv, size_t nr, size_t kc,
                                                      const float *a, const float *b, float *c, size_t ldc,
                                                      const float *bias_row, const float *bias_col,
                                                      const oq_f32_gemm_epilogue *ep, unsigned flags)
{
    __m512 acc[MR][2];
#pragma GCC unroll 14
    for (size_t i = 0; i < rows; i++) {
        acc[i][0] = _mm512_setzero_ps();
        acc[i][1] = _mm512_setzero_ps();
    }
    size_t p = 0;
    if (rows == 1) {
        /* One row (a GEMV: batch-1 MatMul, an RNN step) has only nv accumulators, and each FMA
         * waits for the last: four chains over k keep the FMA units busy. */
        __m512 s[4][2];
        for (int u = 0; u < 4; u++)
            s[u][0] = s[u][1] = _mm512_setzero_ps();
        for (; p + 4 <= kc; p += 4) {
            _mm_prefetch((const char *)(b + 1024), _MM_HINT_T0);
            _mm_prefetch((const char *)(b + 1040), _MM_HINT_T0);
            _mm_prefetch((const char *)(b + 1056), _MM_HINT_T0);
            _mm_prefetch((const char *)(b + 1072), _MM_HINT_T0);
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) {
                const __m512 av = _mm512_set1_ps(a[u * MR]);
                s[u][0] = _mm512_fmadd_ps(av, _mm512_loadu_ps(b + u * NR), s[u][0]);
                if (nv > 1)
                    s[u][1] = _mm512_fmadd_ps(av, _mm512_loadu_ps(b + u * NR + 16), s[u][1]);
            }
            a += 4 * MR;
            b += 4 * NR;
        }
        acc[0][0] = _mm512_add_ps(_mm512_add_ps(s[0][0], s[1][0]), _mm512_add_ps(s[2][0], s[3][0]));
        acc[0][1] = _mm512_add_ps(_mm512_add_ps(s[0][1], s[1][1]), _mm512_add_ps(s[2][1], s[3][1]));
    }
    for (; p < kc; p++) {
        /* Weights come cold from memory each run (ResNet18 45 MB, the BERT encoder more):
         * A (conv weights) on a tile's first N panel, B (MatMul weights) on its first M
         * panel. The hardware prefetcher alone streamed the 7x7 conv's 9.4 MB at
         * 3.6 GB/s; 2 KB of A and 4 KB of B (its two lines per k) ahead cover the latency. */
        _mm_prefetch((const char *)(a + 512), _MM_HINT_T0);
        _mm_prefetch((const char *)(b + 1024), _MM_HINT_T0);
        _mm_prefetch((const char *)(b + 1040), _MM_HINT_T0);
        const __m512 b0 = _mm512_loadu_ps(b);
        const __m512 b1 = nv > 1 ? _mm512_loadu_ps(b + 16) : b0;
#pragma GCC unroll 14
        for (size_t i = 0; i < rows; i++) {
            const __m512 av = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
            if (nv > 1)
                acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
        }
        a += MR;
        b += NR;
    }
    const __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
    const __mmask16 m1 = nr >= 32 ? (__mmask16)0xFFFF : (nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0);
    const __m512 alpha = _mm512_set1_ps(ep->alpha), lo = _mm512_set1_ps(ep->min), hi = _mm512_set1_ps(ep->max);
    __m512 bc0 = _mm512_setzero_ps(), bc1 = _mm512_setzero_ps();
    if (bias_col) {
        bc0 = _mm512_maskz_loadu_ps(m0, bias_col);
        if (nv > 1)
            bc1 = _mm512_maskz_loadu_ps(m1, bias_col + 16);
    }
#pragma GCC unroll 14
    for (size_t i = 0; i < rows; i++) {
        float *ci = c + i * ldc;
        __m512 v0 = _mm512_fmadd_ps(acc[i][0], alpha, bc0);
        __m512 v1 = nv > 1 ? _mm512_fmadd_ps(acc[i][1], alpha, bc1) : v0;
        if (bias_row) {
            const __m512 br = _mm512_set1_ps(bias_row[i]);
            v0 = _mm512_add_ps(v0, br);
            if (nv > 1)
                v1 = _mm512_add_ps(v1, br);
        }
        if (flags & OQ_F32_GEMM_LOAD_C) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, ci));
            if (nv > 1)
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, ci + 16));
        }
        if (flags & OQ_F32_GEMM_CLAMP) {
            v0 = _mm512_min_ps(_mm512_max_ps(v0, lo), hi);
            if (nv > 1)
                v1 = _mm512_min_ps(_mm512_max_ps(v1, lo), hi);
        }
        _mm512_mask_storeu_ps(ci, m0, v0);
        if (nv > 1)
            _mm512_mask_storeu_ps(ci + 16, m1, v1);
    }
}

#define ROWS_CASE(r)                                                                                    \
    case r:                                                                                             \
        if (nr > 16)                                                                                    \
            tile(r, 2, nr, kc, a, b, c, ldc, bias_row, bias_col, ep, flags);                           \
        else                                                                                            \
            tile(r, 1, nr, kc, a, b, c, ldc, bias_row, bias_col, ep, flags);                           \
        break;

OQ_F32_GEMM_UKERNEL_FUNCTION(oq_f32_gemm_14x32__avx512)
{
    switch (mr) {
        ROWS_CASE(1) ROWS_CASE(2) ROWS_CASE(3) ROWS_CASE(4) ROWS_CASE(5) ROWS_CASE(6) ROWS_CASE(7)
        ROWS_CASE(8) ROWS_CASE(9) ROWS_CASE(10) ROWS_CASE(11) ROWS_CASE(12) ROWS_CASE(13)
    default:
        ROWS_CASE(14)
    }
}
