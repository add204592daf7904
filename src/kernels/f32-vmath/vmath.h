/* kernels/f32-vmath: vectorized float math (exp, erf, tanh, sigmoid, softmax row
 * helpers) used by the unary, softmax and normalization operators. vmath.inc is
 * the single definition; it is compiled per ISA and oq_f32_vmath() picks one. */
#ifndef OQ_KERNELS_F32_VMATH_H
#define OQ_KERNELS_F32_VMATH_H

#include <stddef.h>

typedef void (*oq_f32_vunary_fn)(const float *x, float *y, size_t n);

typedef struct oq_f32_vmath_table {
    oq_f32_vunary_fn vexp, verf, vtanh, vsigmoid;
    /* y = exp(x - sub); returns the sum of y. */
    float (*vexp_sum)(const float *x, float *y, size_t n, float sub);
    float (*vmax)(const float *x, size_t n); /* n >= 1 */
    void (*vclip)(const float *x, float *y, size_t n, float lo, float hi);
    /* y = clamp(alpha x + beta, 0, 1), times x when times_x (HardSwish). */
    void (*vhardsigmoid)(const float *x, float *y, size_t n, float alpha, float beta, int times_x);
    void (*vleakyrelu)(const float *x, float *y, size_t n, float alpha);
    oq_f32_vunary_fn vgelu; /* y = x/2 (1 + erf(x/sqrt 2)), in one pass */
} oq_f32_vmath_table;

#define OQ_F32_VMATH_DECLARE(isa)                                               \
    void oq_f32_vexp__##isa(const float *x, float *y, size_t n);                \
    void oq_f32_verf__##isa(const float *x, float *y, size_t n);                \
    void oq_f32_vtanh__##isa(const float *x, float *y, size_t n);               \
    void oq_f32_vsigmoid__##isa(const float *x, float *y, size_t n);            \
    float oq_f32_vexp_sum__##isa(const float *x, float *y, size_t n, float sub); \
    float oq_f32_vmax__##isa(const float *x, size_t n);                         \
    void oq_f32_vclip__##isa(const float *x, float *y, size_t n, float lo, float hi); \
    void oq_f32_vhardsigmoid__##isa(const float *x, float *y, size_t n, float alpha, float beta, int times_x); \
    void oq_f32_vleakyrelu__##isa(const float *x, float *y, size_t n, float alpha); \
    void oq_f32_vgelu__##isa(const float *x, float *y, size_t n);

OQ_F32_VMATH_DECLARE(portable)
OQ_F32_VMATH_DECLARE(avx2)
OQ_F32_VMATH_DECLARE(avx512)

/* Best variant for this CPU (honours ONNXQ_ISA). */
const oq_f32_vmath_table *oq_f32_vmath(void);

#endif
