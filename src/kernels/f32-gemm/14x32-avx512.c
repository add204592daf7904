/* kernels/f32-gemm: AVX512 microkernel, 14 rows x 32 columns: 28 zmm
 * accumulators, 2 loads of B and 14 broadcast FMAs pairs per k step. */
#include "kernels/f32-gemm/gemm.h"

#include <immintrin.h>

OQ_F32_GEMM_UKERNEL_FUNCTION(oq_f32_gemm_14x32__avx512)
{
    enum { MR = 14, NR = 32 };
#define DECL(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps();
    DECL(0) DECL(1) DECL(2) DECL(3) DECL(4) DECL(5) DECL(6)
    DECL(7) DECL(8) DECL(9) DECL(10) DECL(11) DECL(12) DECL(13)
#undef DECL
    for (size_t p = 0; p < kc; p++) {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        __m512 av;
#define ROW(i)                                     \
    av = _mm512_set1_ps(a[i]);                     \
    c##i##0 = _mm512_fmadd_ps(av, b0, c##i##0);   \
    c##i##1 = _mm512_fmadd_ps(av, b1, c##i##1);
        ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5) ROW(6)
        ROW(7) ROW(8) ROW(9) ROW(10) ROW(11) ROW(12) ROW(13)
#undef ROW
        a += MR;
        b += NR;
    }
    const __m512 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41},
                               {c50, c51}, {c60, c61}, {c70, c71}, {c80, c81}, {c90, c91},
                               {c100, c101}, {c110, c111}, {c120, c121}, {c130, c131}};
    const __mmask16 m0 = nr >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nr) - 1);
    const __mmask16 m1 = nr >= 32 ? (__mmask16)0xFFFF : (nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0);
    const __m512 alpha = _mm512_set1_ps(ep->alpha), lo = _mm512_set1_ps(ep->min), hi = _mm512_set1_ps(ep->max);
    __m512 bc0 = _mm512_setzero_ps(), bc1 = _mm512_setzero_ps();
    if (bias_col) {
        bc0 = _mm512_maskz_loadu_ps(m0, bias_col);
        bc1 = _mm512_maskz_loadu_ps(m1, bias_col + 16);
    }
    for (size_t i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        __m512 v0 = _mm512_fmadd_ps(acc[i][0], alpha, bc0), v1 = _mm512_fmadd_ps(acc[i][1], alpha, bc1);
        if (bias_row) {
            const __m512 br = _mm512_set1_ps(bias_row[i]);
            v0 = _mm512_add_ps(v0, br);
            v1 = _mm512_add_ps(v1, br);
        }
        if (flags & OQ_F32_GEMM_LOAD_C) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, ci));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, ci + 16));
        }
        if (flags & OQ_F32_GEMM_CLAMP) {
            v0 = _mm512_min_ps(_mm512_max_ps(v0, lo), hi);
            v1 = _mm512_min_ps(_mm512_max_ps(v1, lo), hi);
        }
        _mm512_mask_storeu_ps(ci, m0, v0);
        _mm512_mask_storeu_ps(ci + 16, m1, v1);
    }
}
