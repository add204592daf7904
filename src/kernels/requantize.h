/* kernels/requantize: the one requantization rule every int8 kernel (reference
 * and SIMD) applies to an exact int32 accumulator, so results are identical on
 * every CPU:  q = saturate(zp + round_half_even((float)acc * scale)),
 * with scale = (float)(s_in * s_w / s_out) computed once in fp32 by the caller. */
#ifndef OQ_KERNELS_REQUANTIZE_H
#define OQ_KERNELS_REQUANTIZE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* Saturation bounds expressed relative to the zero point (lo = qmin - zp,
 * hi = qmax - zp) as floats. Clamping before rounding gives the same result as
 * rounding then saturating (rounding is monotonic and fixes integers), and keeps
 * the float -> int conversion in range, which is what the SIMD variants do too. */
typedef struct oq_requant_range {
    float lo, hi;
    int32_t zp;
} oq_requant_range;

/* Range for an output zero point and saturation bounds [qmin, qmax]
 * (a fused Relu/Clip narrows qmin/qmax; see oq_requant_bounds). */
oq_requant_range oq_requant_range_make(int32_t zp, int32_t qmin, int32_t qmax);

/* The output range of u8 (is_signed 0) or s8 (1) narrowed by a fused activation
 * clamp [act_min, act_max] in real units with output scale s and zero point zp. */
void oq_requant_bounds(int is_signed, float s, int32_t zp, float act_min, float act_max, int32_t *qmin,
                       int32_t *qmax);

/* The scale of an output: (float)((double)s_in * s_w / s_out), fp32, no FMA. */
float oq_requant_scale(float s_in, float s_w, float s_out);

static inline int32_t oq_requantize(int32_t acc, float scale, oq_requant_range r)
{
    float v = (float)acc * scale;
    v = v < r.lo ? r.lo : v;
    v = v > r.hi ? r.hi : v;
    return (int32_t)nearbyintf(v) + r.zp; /* default rounding mode: half to even */
}

/* Array form (reference): out[i] = oq_requantize(acc[i], scale[i or 0], r). */
void oq_requantize_u8(size_t n, const int32_t *acc, const float *scale, int per_element, oq_requant_range r,
                      uint8_t *out);
void oq_requantize_s8(size_t n, const int32_t *acc, const float *scale, int per_element, oq_requant_range r,
                      int8_t *out);

#endif
