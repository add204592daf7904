/* kernels/f32-gemm: AVX2+FMA microkernel, 6 rows x 16 columns (12 accumulators,
 * 2 loads of B and 6 broadcasts of A per k step). */
#include "kernels/f32-gemm/gemm.h"

#include <immintrin.h>

OQ_F32_GEMM_UKERNEL_FUNCTION(oq_f32_gemm_6x16__avx2)
{
    enum { MR = 6, NR = 16 };
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    for (size_t p = 0; p < kc; p++) {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 av;
#define ROW(i)                                      \
    av = _mm256_broadcast_ss(a + i);                \
    c##i##0 = _mm256_fmadd_ps(av, b0, c##i##0);    \
    c##i##1 = _mm256_fmadd_ps(av, b1, c##i##1);
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
#undef ROW
        a += MR;
        b += NR;
    }
    __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    const __m256 alpha = _mm256_set1_ps(ep->alpha), lo = _mm256_set1_ps(ep->min), hi = _mm256_set1_ps(ep->max);
    if (nr == NR) {
        __m256 bc0 = _mm256_setzero_ps(), bc1 = _mm256_setzero_ps();
        if (bias_col) {
            bc0 = _mm256_loadu_ps(bias_col);
            bc1 = _mm256_loadu_ps(bias_col + 8);
        }
        for (size_t i = 0; i < mr; i++) {
            float *ci = c + i * ldc;
            __m256 v0 = _mm256_fmadd_ps(acc[i][0], alpha, bc0), v1 = _mm256_fmadd_ps(acc[i][1], alpha, bc1);
            if (bias_row) {
                const __m256 br = _mm256_set1_ps(bias_row[i]);
                v0 = _mm256_add_ps(v0, br);
                v1 = _mm256_add_ps(v1, br);
            }
            if (flags & OQ_F32_GEMM_LOAD_C) {
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(ci));
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(ci + 8));
            }
            if (flags & OQ_F32_GEMM_CLAMP) {
                v0 = _mm256_min_ps(_mm256_max_ps(v0, lo), hi);
                v1 = _mm256_min_ps(_mm256_max_ps(v1, lo), hi);
            }
            _mm256_storeu_ps(ci, v0);
            _mm256_storeu_ps(ci + 8, v1);
        }
        return;
    }
    float tile[MR][NR];
    for (int i = 0; i < MR; i++) {
        _mm256_storeu_ps(tile[i], acc[i][0]);
        _mm256_storeu_ps(tile[i] + 8, acc[i][1]);
    }
    for (size_t i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        for (size_t j = 0; j < nr; j++) {
            float v = tile[i][j] * ep->alpha + (bias_col ? bias_col[j] : 0.0f);
            if (bias_row)
                v += bias_row[i];
            if (flags & OQ_F32_GEMM_LOAD_C)
                v += ci[j];
            if (flags & OQ_F32_GEMM_CLAMP)
                v = v < ep->min ? ep->min : (v > ep->max ? ep->max : v);
            ci[j] = v;
        }
    }
}
