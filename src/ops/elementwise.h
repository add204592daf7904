/* ops/elementwise.h: helpers shared by the elementwise, unary, reduction and
 * normalization operator files — dtype lists for kernel generation, element
 * load/store through double, and range-splitting over the thread pool. */
#ifndef OQ_OPS_ELEMENTWISE_H
#define OQ_OPS_ELEMENTWISE_H

#include "ops/op.h"

#include <math.h>
#include <string.h>

/* X(dtype, C type, unsigned C type of the same width, suffix, is_signed_integer) */
#define OQ_EW_FLOAT_TYPES(X)                  \
    X(OQ_FLOAT, float, float, f32, 0)         \
    X(OQ_DOUBLE, double, double, f64, 0)
#define OQ_EW_INT_TYPES(X)                    \
    X(OQ_INT8, int8_t, uint8_t, i8, 1)        \
    X(OQ_INT16, int16_t, uint16_t, i16, 1)    \
    X(OQ_INT32, int32_t, uint32_t, i32, 1)    \
    X(OQ_INT64, int64_t, uint64_t, i64, 1)    \
    X(OQ_UINT8, uint8_t, uint8_t, u8, 0)      \
    X(OQ_UINT16, uint16_t, uint16_t, u16, 0)  \
    X(OQ_UINT32, uint32_t, uint32_t, u32, 0)  \
    X(OQ_UINT64, uint64_t, uint64_t, u64, 0)
#define OQ_EW_NUMERIC_TYPES(X) OQ_EW_FLOAT_TYPES(X) OQ_EW_INT_TYPES(X)

/* A loop split in blocks of 16 with a constant trip count and no assumed
 * aliasing, which gcc -O2 (very-cheap vectorizer cost model) turns into SIMD
 * code; the body uses `i`. Outputs may equal inputs, never partially overlap. */
#if defined(__GNUC__) && !defined(__clang__)
#define OQ_EW_IVDEP _Pragma("GCC ivdep")
#else
#define OQ_EW_IVDEP /* clang vectorizes these loops with runtime alias checks */
#endif
#define OQ_EW_BLOCKED(n, ...)                                  \
    do {                                                       \
        size_t i_ = 0, n_ = (n);                               \
        for (; i_ + 16 <= n_; i_ += 16) {                      \
            OQ_EW_IVDEP                                        \
            for (size_t j_ = 0; j_ < 16; j_++) {               \
                size_t i = i_ + j_;                            \
                __VA_ARGS__;                                   \
            }                                                  \
        }                                                      \
        for (size_t i = i_; i < n_; i++) {                     \
            __VA_ARGS__;                                       \
        }                                                      \
    } while (0)

static inline bool oq_ew_is_half(oq_dtype t) { return t == OQ_FLOAT16 || t == OQ_BFLOAT16; }
static inline bool oq_ew_is_float(oq_dtype t)
{
    return t == OQ_FLOAT || t == OQ_DOUBLE || t == OQ_FLOAT16 || t == OQ_BFLOAT16;
}
static inline bool oq_ew_is_int(oq_dtype t)
{
    return t == OQ_INT8 || t == OQ_INT16 || t == OQ_INT32 || t == OQ_INT64 || t == OQ_UINT8 || t == OQ_UINT16 ||
           t == OQ_UINT32 || t == OQ_UINT64;
}

static inline double oq_ew_load(const void *p, oq_dtype t, size_t i)
{
    switch (t) {
    case OQ_FLOAT: return ((const float *)p)[i];
    case OQ_DOUBLE: return ((const double *)p)[i];
    case OQ_INT8: return ((const int8_t *)p)[i];
    case OQ_INT16: return ((const int16_t *)p)[i];
    case OQ_INT32: return ((const int32_t *)p)[i];
    case OQ_INT64: return (double)((const int64_t *)p)[i];
    case OQ_UINT8: return ((const uint8_t *)p)[i];
    case OQ_UINT16: return ((const uint16_t *)p)[i];
    case OQ_UINT32: return ((const uint32_t *)p)[i];
    case OQ_UINT64: return (double)((const uint64_t *)p)[i];
    case OQ_BOOL: return ((const uint8_t *)p)[i] ? 1.0 : 0.0;
    case OQ_FLOAT16: return oq_half_to_float(((const uint16_t *)p)[i]);
    case OQ_BFLOAT16: return oq_bf16_to_float(((const uint16_t *)p)[i]);
    default: return 0.0;
    }
}

/* Float to integer conversion that saturates instead of being undefined (NaN → 0). */
#define OQ_EW_SAT(v, lo, hi) ((v) != (v) ? 0 : (v) <= (double)(lo) ? (lo) : (v) >= (double)(hi) ? (hi) : (v))

static inline void oq_ew_store(void *p, oq_dtype t, size_t i, double v)
{
    switch (t) {
    case OQ_FLOAT: ((float *)p)[i] = (float)v; break;
    case OQ_DOUBLE: ((double *)p)[i] = v; break;
    case OQ_INT8: ((int8_t *)p)[i] = (int8_t)OQ_EW_SAT(v, INT8_MIN, INT8_MAX); break;
    case OQ_INT16: ((int16_t *)p)[i] = (int16_t)OQ_EW_SAT(v, INT16_MIN, INT16_MAX); break;
    case OQ_INT32: ((int32_t *)p)[i] = (int32_t)OQ_EW_SAT(v, INT32_MIN, INT32_MAX); break;
    case OQ_INT64: ((int64_t *)p)[i] = v != v ? 0 : v >= 9.2233720368547758e18 ? INT64_MAX : v <= -9.2233720368547758e18 ? INT64_MIN : (int64_t)v; break;
    case OQ_UINT8: ((uint8_t *)p)[i] = (uint8_t)OQ_EW_SAT(v, 0, UINT8_MAX); break;
    case OQ_UINT16: ((uint16_t *)p)[i] = (uint16_t)OQ_EW_SAT(v, 0, UINT16_MAX); break;
    case OQ_UINT32: ((uint32_t *)p)[i] = (uint32_t)OQ_EW_SAT(v, 0, UINT32_MAX); break;
    case OQ_UINT64: ((uint64_t *)p)[i] = v != v || v <= 0 ? 0 : v >= 1.8446744073709552e19 ? UINT64_MAX : (uint64_t)v; break;
    case OQ_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    case OQ_FLOAT16: ((uint16_t *)p)[i] = oq_float_to_half((float)v); break;
    case OQ_BFLOAT16: ((uint16_t *)p)[i] = oq_float_to_bf16((float)v); break;
    default: break;
    }
}

/* Runs fn over [0, total) in contiguous chunks, on the pool when total is at
 * least `serial_below` elements; chunks are multiples of `align` elements. */
typedef void (*oq_ew_range_fn)(void *ctx, size_t start, size_t end);
void oq_ew_parallel(oq_threadpool *tp, size_t total, size_t serial_below, size_t align, oq_ew_range_fn fn, void *ctx);

/* Softmax of one contiguous float row whose maximum is m: the Softmax operator's
 * numerics (ops/softmax.c), shared with the fused attention (ops/attention.c). */
struct oq_f32_vmath_table;
void oq_softmax_row_f32(const struct oq_f32_vmath_table *vm, const float *x, float *y, size_t len, float m);

/* Elements of a shape [dims[from], dims[to]) multiplied. */
static inline size_t oq_ew_span(const int64_t *dims, int from, int to)
{
    size_t p = 1;
    for (int i = from; i < to; i++)
        p *= (size_t)dims[i];
    return p;
}

#endif
