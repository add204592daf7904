/* kernels/q8: the portable reference microkernels (the specification of the
 * family): plain int32 sums over the packed c4 panels, then the scalar output stage. */
#include "kernels/q8/tile.h"

enum { MR = 2, NR = 4 };

static void gemm_ref(size_t mr, size_t nr, size_t kg, const uint8_t *a, const uint8_t *b, void *c, size_t ldc,
                     const oq_q8_gemm_tile *t, bool a_signed)
{
    uint32_t acc[MR * NR] = {0}; /* wraps like the SIMD adds */
    size_t gs = t->a_stride ? 4 : MR * 4, rs = t->a_stride ? t->a_stride : 4;
    for (size_t g = 0; g < kg; g++, a += gs, b += NR * 4)
        for (size_t i = 0; i < mr; i++)
            for (size_t j = 0; j < NR; j++)
                for (size_t q = 0; q < (t->a_tail && g + 1 == kg ? t->a_tail : 4); q++) {
                    int32_t av = a_signed ? (int32_t)(int8_t)a[i * rs + q] : (int32_t)a[i * rs + q];
                    int32_t bv = a_signed ? (int32_t)b[j * 4 + q] : (int32_t)(int8_t)b[j * 4 + q];
                    acc[i * NR + j] += (uint32_t)(av * bv);
                }
    int32_t sums[MR * NR];
    for (size_t i = 0; i < MR * NR; i++)
        sums[i] = (int32_t)acc[i];
    oq_q8_tile_finish(t, mr, nr, sums, NR, c, ldc);
}

OQ_Q8_GEMM_UKERNEL_FUNCTION(oq_q8_gemm_u8s8_2x4c4__scalar) { gemm_ref(mr, nr, kg, a, b, c, ldc, t, false); }
OQ_Q8_GEMM_UKERNEL_FUNCTION(oq_q8_gemm_s8u8_2x4c4__scalar) { gemm_ref(mr, nr, kg, a, b, c, ldc, t, true); }
