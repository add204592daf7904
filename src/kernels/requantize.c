/* kernels/requantize: helpers around the shared requantization rule (see
 * requantize.h); the per-element rule itself is the inline oq_requantize. */
#include "kernels/requantize.h"

oq_requant_range oq_requant_range_make(int32_t zp, int32_t qmin, int32_t qmax)
{
    oq_requant_range r = {(float)(qmin - zp), (float)(qmax - zp), zp};
    return r;
}

float oq_requant_scale(float s_in, float s_w, float s_out)
{
    /* the product of the two input scales is rounded to fp32 first, as
     * onnxruntime does, then divided: fp32 throughout, one documented order */
    float sw = s_in * s_w;
    return sw / s_out;
}

void oq_requant_bounds(int is_signed, float s, int32_t zp, float act_min, float act_max, int32_t *qmin, int32_t *qmax)
{
    int32_t lo = is_signed ? -128 : 0, hi = is_signed ? 127 : 255;
    /* the quantized value of the activation bound, rounded the same way as outputs */
    if (act_min > -INFINITY && s > 0) {
        float q = nearbyintf(act_min / s) + (float)zp;
        if (q > (float)lo)
            lo = q > (float)hi ? hi : (int32_t)q;
    }
    if (act_max < INFINITY && s > 0) {
        float q = nearbyintf(act_max / s) + (float)zp;
        if (q < (float)hi)
            hi = q < (float)lo ? lo : (int32_t)q;
    }
    *qmin = lo;
    *qmax = hi;
}

void oq_requantize_u8(size_t n, const int32_t *acc, const float *scale, int per_element, oq_requant_range r,
                      uint8_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)oq_requantize(acc[i], scale[per_element ? i : 0], r);
}

void oq_requantize_s8(size_t n, const int32_t *acc, const float *scale, int per_element, oq_requant_range r,
                      int8_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (int8_t)oq_requantize(acc[i], scale[per_element ? i : 0], r);
}
