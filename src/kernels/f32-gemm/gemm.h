/* kernels/f32-gemm: single-precision GEMM on packed panels. A microkernel per
 * ISA (listed in f32-gemm.inc) computes an mr x nr tile; the driver blocks over
 * K, M and N, packs operands into caller-provided workspace and threads over tiles. */
#ifndef OQ_KERNELS_F32_GEMM_H
#define OQ_KERNELS_F32_GEMM_H

#include "core/core.h"

#include <stdbool.h>
#include <stddef.h>

/* Epilogue flags of a microkernel call. */
#define OQ_F32_GEMM_LOAD_C 1u /* add the tile to what C holds instead of overwriting it */
#define OQ_F32_GEMM_CLAMP 2u  /* clamp the final value to [min, max] */

typedef struct oq_f32_gemm_epilogue {
    float alpha;
    float min, max;
} oq_f32_gemm_epilogue;

/* c[i*ldc+j] = clamp(alpha * sum_k a[k*MR+i] * b[k*NR+j] + bias_row[i] + bias_col[j] (+ c[i*ldc+j])),
 * for i < mr <= MR, j < nr <= NR. a and b are packed panels of kc rows; bias
 * pointers may be NULL; the terms in parentheses depend on flags. */
#define OQ_F32_GEMM_UKERNEL_FUNCTION(fn)                                                                       \
    void fn(size_t mr, size_t nr, size_t kc, const float *a, const float *b, float *c, size_t ldc,             \
            const float *bias_row, const float *bias_col, const oq_f32_gemm_epilogue *ep, unsigned flags)
typedef OQ_F32_GEMM_UKERNEL_FUNCTION((*oq_f32_gemm_ukernel_fn));

#define OQ_F32_GEMM_VARIANT(name, isa, mr, nr, kc) OQ_F32_GEMM_UKERNEL_FUNCTION(name);
#include "kernels/f32-gemm/f32-gemm.inc"
#undef OQ_F32_GEMM_VARIANT

typedef struct oq_f32_gemm_variant {
    const char *name;
    oq_isa isa;
    size_t mr, nr, kc;
    oq_f32_gemm_ukernel_fn ukernel;
} oq_f32_gemm_variant;

/* All variants compiled in (whether or not this CPU runs them), reference first. */
const oq_f32_gemm_variant *oq_f32_gemm_variants(size_t *count);
/* The best variant oq_isa_level() allows; chosen once. */
const oq_f32_gemm_variant *oq_f32_gemm_default(void);

/* Packed layout of an m x k left operand: for each K block [k0, k0+kb) (kb = min(kc, k-k0)),
 * ceil(m/mr) panels of kb x mr floats (rows past m are zero), the block starting at
 * float k0 * roundup(m, mr). The right operand (k x n) is the same with n, nr. */
size_t oq_f32_gemm_packed_a_size(const oq_f32_gemm_variant *v, size_t m, size_t k); /* floats */
size_t oq_f32_gemm_packed_b_size(const oq_f32_gemm_variant *v, size_t k, size_t n); /* floats */
/* Element (i, p) of A is a[i*rs + p*cs]; element (p, j) of B is b[p*rs + j*cs]. */
void oq_f32_gemm_pack_a(const oq_f32_gemm_variant *v, size_t m, size_t k, const float *a, size_t rs, size_t cs,
                        float *dst);
void oq_f32_gemm_pack_b(const oq_f32_gemm_variant *v, size_t k, size_t n, const float *b, size_t rs, size_t cs,
                        float *dst);

/* One panel from contiguous lines: dst[p*w + i] = i < lines ? src[i*ls + p] : 0 for
 * p < kb, i < w (a panel of a row-major A, or of a B read as its transpose). The
 * driver's packing uses it when the CPU has AVX-512; same floats as its scalar loop. */
void oq_f32_pack_lines__avx512(const float *src, size_t ls, size_t lines, size_t kb, size_t w, float *dst);

/* Writes the panels of rows [k0, k0+kb) and columns [n0, n0+nb) of a right operand
 * that is produced on the fly (im2col): ceil(nb/nr) panels of kb x nr floats,
 * columns past nb zero. */
typedef void (*oq_f32_gemm_pack_fn)(const void *ctx, size_t batch, size_t k0, size_t kb, size_t n0, size_t nb,
                                    size_t nr, float *dst);

/* One operand. Exactly one of data, packed, pack is set. The operand of batch
 * index t starts at offset[t] floats if offset is set, else at t * stride. */
typedef struct oq_f32_gemm_operand {
    const float *data;
    size_t rs, cs;
    const float *packed; /* from oq_f32_gemm_pack_a/_b with the same variant */
    oq_f32_gemm_pack_fn pack;
    const void *pack_ctx;
    size_t stride;
    const size_t *offset;
} oq_f32_gemm_operand;

typedef enum oq_f32_bias { OQ_F32_BIAS_NONE = 0, OQ_F32_BIAS_ROW, OQ_F32_BIAS_COL } oq_f32_bias;

/* C[t] = clamp(alpha * A[t] B[t] + bias (+ C[t] when accumulate)) for t < batch.
 * C[t] starts at c + c_offset[t] (or t * c_stride) with rows ldc apart; the bias of
 * batch t starts at bias + t * bias_stride (rows: m floats, columns: n floats). */
typedef struct oq_f32_gemm_args {
    size_t batch, m, n, k;
    oq_f32_gemm_operand a, b;
    float *c;
    size_t ldc, c_stride;
    const size_t *c_offset;
    const float *bias;
    oq_f32_bias bias_kind;
    size_t bias_stride;
    float alpha;
    bool accumulate;
    bool clamp;
    float min, max;
} oq_f32_gemm_args;

/* Defaults: batch 1, alpha 1, no bias, no clamp, nothing else set. */
oq_f32_gemm_args oq_f32_gemm_args_init(size_t m, size_t n, size_t k);
/* Bytes of workspace oq_f32_gemm_run needs with n_threads threads. */
size_t oq_f32_gemm_workspace_size(const oq_f32_gemm_variant *v, const oq_f32_gemm_args *g, size_t n_threads);
/* ws must hold oq_f32_gemm_workspace_size(v, g, oq_threadpool_size(tp)) bytes (any alignment). */
void oq_f32_gemm_run(const oq_f32_gemm_variant *v, const oq_f32_gemm_args *g, void *ws, oq_threadpool *tp);

#endif
