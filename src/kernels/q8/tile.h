/* kernels/q8: the output stage of one element, in scalar C. It is the
 * specification the SIMD epilogues reproduce (same int32 wrap, same fp32 order). */
#ifndef OQ_KERNELS_Q8_TILE_H
#define OQ_KERNELS_Q8_TILE_H

#include "kernels/q8/q8.h"

/* acc plus the corrections of element (i, j); uint32 so overflow wraps as in SIMD. */
static inline int32_t oq_q8_tile_correct(const oq_q8_gemm_tile *t, size_t i, size_t j, int32_t acc)
{
    uint32_t v = (uint32_t)acc;
    if (t->row_off)
        v += (uint32_t)t->row_off[i];
    if (t->col_off)
        v += (uint32_t)t->col_off[j];
    if (t->r1)
        v += (uint32_t)t->r1[i] * (uint32_t)t->c1[j];
    if (t->r2)
        v += (uint32_t)t->r2[i] * (uint32_t)t->c2[j];
    return (int32_t)v;
}

static inline void oq_q8_tile_store(const oq_q8_gemm_tile *t, size_t i, size_t j, int32_t v, void *c, size_t ldc)
{
    size_t at = i * ldc + j;
    float s = t->scale ? t->scale[t->scale_mode == OQ_Q8_PER_ROW ? i : t->scale_mode == OQ_Q8_PER_COL ? j : 0] : 1.0f;
    switch (t->out) {
    case OQ_Q8_OUT_I32:
        ((int32_t *)c)[at] = v;
        break;
    case OQ_Q8_OUT_U8:
        ((uint8_t *)c)[at] = (uint8_t)oq_requantize(v, s, t->range);
        break;
    case OQ_Q8_OUT_S8:
        ((int8_t *)c)[at] = (int8_t)oq_requantize(v, s, t->range);
        break;
    case OQ_Q8_OUT_F32:
        ((float *)c)[at] = (float)v * s + (t->bias ? t->bias[j] : 0.0f);
        break;
    }
}

/* Applies the output stage to an mr x nr tile of raw sums held in acc (row stride lda). */
static inline void oq_q8_tile_finish(const oq_q8_gemm_tile *t, size_t mr, size_t nr, const int32_t *acc, size_t lda,
                                     void *c, size_t ldc)
{
    for (size_t i = 0; i < mr; i++)
        for (size_t j = 0; j < nr; j++)
            oq_q8_tile_store(t, i, j, oq_q8_tile_correct(t, i, j, acc[i * lda + j]), c, ldc);
}

#endif
