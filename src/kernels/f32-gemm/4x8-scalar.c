/* kernels/f32-gemm: the portable 4x8 microkernel. It is the specification the
 * SIMD variants are tested against, and the fallback on CPUs without AVX2. */
#include "kernels/f32-gemm/gemm.h"

OQ_F32_GEMM_UKERNEL_FUNCTION(oq_f32_gemm_4x8__scalar)
{
    enum { MR = 4, NR = 8 };
    float acc[MR][NR] = {{0}};
    for (size_t p = 0; p < kc; p++) {
        const float *ap = a + p * MR, *bp = b + p * NR;
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++)
                acc[i][j] += ap[i] * bp[j];
    }
    for (size_t i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        for (size_t j = 0; j < nr; j++) {
            float v = ep->alpha * acc[i][j];
            if (bias_row)
                v += bias_row[i];
            if (bias_col)
                v += bias_col[j];
            if (flags & OQ_F32_GEMM_LOAD_C)
                v += ci[j];
            if (flags & OQ_F32_GEMM_CLAMP)
                v = v < ep->min ? ep->min : (v > ep->max ? ep->max : v);
            ci[j] = v;
        }
    }
}
