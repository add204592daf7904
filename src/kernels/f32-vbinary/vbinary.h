/* kernels/f32-vbinary: float elementwise add/sub/mul/div/max/min on a run of
 * n elements, where either operand may be a broadcast scalar. vbinary.inc is the
 * single definition, compiled per ISA; oq_f32_vbinary() picks the best variant. */
#ifndef OQ_KERNELS_F32_VBINARY_H
#define OQ_KERNELS_F32_VBINARY_H

#include <stddef.h>

/* mode 0: o[i] = a[i] op b[i]; 1: a[0] op b[i]; 2: a[i] op b[0]. o may equal a or b. */
typedef void (*oq_f32_vbinary_fn)(const void *a, const void *b, void *o, size_t n, int mode);

typedef struct oq_f32_vbinary_table {
    oq_f32_vbinary_fn add, sub, mul, div, max, min;
} oq_f32_vbinary_table;

#define OQ_F32_VBINARY_DECLARE(isa)                                                   \
    void oq_f32_vadd__##isa(const void *a, const void *b, void *o, size_t n, int mode); \
    void oq_f32_vsub__##isa(const void *a, const void *b, void *o, size_t n, int mode); \
    void oq_f32_vmul__##isa(const void *a, const void *b, void *o, size_t n, int mode); \
    void oq_f32_vdiv__##isa(const void *a, const void *b, void *o, size_t n, int mode); \
    void oq_f32_vmaximum__##isa(const void *a, const void *b, void *o, size_t n, int mode); \
    void oq_f32_vminimum__##isa(const void *a, const void *b, void *o, size_t n, int mode);

OQ_F32_VBINARY_DECLARE(portable)
OQ_F32_VBINARY_DECLARE(avx2)
OQ_F32_VBINARY_DECLARE(avx512)

/* Best variant for this CPU (honours ONNXQ_ISA). */
const oq_f32_vbinary_table *oq_f32_vbinary(void);

#endif
