/* quant/qparams: scale and zero point from a range, and ahead-of-time
 * quantization of weights (per channel or per tensor) and int32 biases.
 * Rounding is half to even (nearbyint in the default mode), then saturation:
 * the same rule QuantizeLinear uses. */
#include "quant/quant.h"

#include <math.h>
#include <string.h>

static int32_t clampi(double v, int32_t lo, int32_t hi) { return v < lo ? lo : v > hi ? hi : (int32_t)v; }

qparams qparams_activation(float min, float max, oq_dtype type, int symmetric)
{
    qparams p;
    float lo = min < 0 ? min : 0, hi = max > 0 ? max : 0;
    int32_t qmin = type == OQ_INT8 ? -128 : 0, qmax = type == OQ_INT8 ? 127 : 255;
    if (!isfinite(lo) || !isfinite(hi))
        lo = hi = 0;
    if (symmetric) {
        float a = -lo > hi ? -lo : hi;
        p.scale = a > 0 ? a / 127.0f : 1.0f;
        p.zero_point = type == OQ_INT8 ? 0 : 128;
        return p;
    }
    p.scale = hi > lo ? (hi - lo) / (float)(qmax - qmin) : 1.0f;
    p.zero_point = clampi(nearbyint(qmin - lo / p.scale), qmin, qmax);
    return p;
}

oq_status make_scalar_f32(float v, oq_tensor **out)
{
    oq_status st = oq_tensor_create(OQ_FLOAT, 0, NULL, out);
    if (st == OQ_OK)
        *(float *)(*out)->data = v;
    return st;
}

oq_status make_scalar_zp(int32_t v, oq_dtype type, oq_tensor **out)
{
    oq_status st = oq_tensor_create(type, 0, NULL, out);
    if (st != OQ_OK)
        return st;
    if (type == OQ_INT8)
        *(int8_t *)(*out)->data = (int8_t)v;
    else if (type == OQ_UINT8)
        *(uint8_t *)(*out)->data = (uint8_t)v;
    else
        *(int32_t *)(*out)->data = v;
    return OQ_OK;
}

/* Shape as outer x channels x inner around axis. */
static void split(const oq_tensor *w, int axis, int64_t *outer, int64_t *ch, int64_t *inner)
{
    *outer = 1, *ch = 1, *inner = 1;
    for (int d = 0; d < w->ndim; d++) {
        if (axis < 0 || d > axis)
            *inner *= w->dims[d];
        else if (d == axis)
            *ch = w->dims[d];
        else
            *outer *= w->dims[d];
    }
}

oq_status quantize_weight(const oq_tensor *w, int axis, oq_dtype type, int reduce_range, oq_tensor **q,
                          oq_tensor **scale, oq_tensor **zp)
{
    if (w->dtype != OQ_FLOAT)
        return oq_error(OQ_E_TYPE, "weight '%s' is %s, not float", w->name ? w->name : "", oq_dtype_name(w->dtype));
    if (axis >= w->ndim)
        return oq_error(OQ_E_SHAPE, "weight '%s' has no axis %d", w->name ? w->name : "", axis);
    int64_t outer, ch, inner;
    split(w, axis, &outer, &ch, &inner);
    oq_tensor *tq = NULL, *ts = NULL, *tz = NULL;
    int64_t cdim = ch;
    oq_status st = oq_tensor_create(type, w->ndim, w->dims, &tq);
    if (st == OQ_OK)
        st = oq_tensor_create(OQ_FLOAT, axis >= 0 ? 1 : 0, &cdim, &ts);
    if (st == OQ_OK)
        st = oq_tensor_create(type, axis >= 0 ? 1 : 0, &cdim, &tz);
    if (st != OQ_OK)
        goto fail;
    const float *x = w->data;
    float *s = ts->data;
    for (int64_t c = 0; c < ch; c++) {
        float lo = 0, hi = 0;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < inner; i++) {
                float v = x[(o * ch + c) * inner + i];
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
        int32_t z;
        if (type == OQ_INT8) {
            int32_t qmax = reduce_range ? 63 : 127;
            float a = -lo > hi ? -lo : hi;
            s[c] = a > 0 ? a / (float)qmax : 1.0f;
            z = 0;
            ((int8_t *)tz->data)[c] = 0;
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < inner; i++) {
                    int64_t k = (o * ch + c) * inner + i;
                    ((int8_t *)tq->data)[k] = (int8_t)clampi(nearbyint(x[k] / s[c]), -qmax, qmax);
                }
        } else {
            int32_t qmax = reduce_range ? 127 : 255;
            s[c] = hi > lo ? (hi - lo) / (float)qmax : 1.0f;
            z = clampi(nearbyint(-lo / s[c]), 0, qmax);
            ((uint8_t *)tz->data)[c] = (uint8_t)z;
            for (int64_t o = 0; o < outer; o++)
                for (int64_t i = 0; i < inner; i++) {
                    int64_t k = (o * ch + c) * inner + i;
                    ((uint8_t *)tq->data)[k] = (uint8_t)clampi(nearbyint(x[k] / s[c]) + z, 0, qmax);
                }
        }
    }
    *q = tq, *scale = ts, *zp = tz;
    return OQ_OK;
fail:
    oq_tensor_destroy(tq);
    oq_tensor_destroy(ts);
    oq_tensor_destroy(tz);
    return st;
}

oq_status quantize_bias(const oq_tensor *b, float x_scale, const oq_tensor *w_scale, oq_tensor **q,
                        oq_tensor **scale)
{
    int64_t n = oq_tensor_numel(b), ns = oq_tensor_numel(w_scale);
    if (b->dtype != OQ_FLOAT || b->ndim != 1 || (ns != 1 && ns != n))
        return oq_error(OQ_E_SHAPE, "bias '%s' does not match the weight's %lld channels", b->name ? b->name : "",
                        (long long)ns);
    oq_tensor *tq = NULL, *ts = NULL;
    oq_status st = oq_tensor_create(OQ_INT32, 1, b->dims, &tq);
    if (st == OQ_OK)
        st = oq_tensor_create(OQ_FLOAT, w_scale->ndim, w_scale->dims, &ts);
    if (st != OQ_OK) {
        oq_tensor_destroy(tq);
        oq_tensor_destroy(ts);
        return st;
    }
    const float *ws = w_scale->data, *bv = b->data;
    for (int64_t c = 0; c < ns; c++)
        ((float *)ts->data)[c] = x_scale * ws[c];
    for (int64_t c = 0; c < n; c++) {
        float s = ((float *)ts->data)[ns == 1 ? 0 : c];
        ((int32_t *)tq->data)[c] = s > 0 ? clampi(nearbyint(bv[c] / s), INT32_MIN + 1, INT32_MAX) : 0;
    }
    *q = tq, *scale = ts;
    return OQ_OK;
}

double weight_sqnr(const oq_tensor *w, const oq_tensor *q, const oq_tensor *scale, const oq_tensor *zp, int axis)
{
    int64_t outer, ch, inner;
    split(w, axis, &outer, &ch, &inner);
    double sig = 0, err = 0;
    const float *x = w->data, *s = scale->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t c = 0; c < ch; c++)
            for (int64_t i = 0; i < inner; i++) {
                int64_t k = (o * ch + c) * inner + i;
                double z = q->dtype == OQ_INT8 ? ((const int8_t *)zp->data)[c] : ((const uint8_t *)zp->data)[c];
                double v = q->dtype == OQ_INT8 ? ((const int8_t *)q->data)[k] : ((const uint8_t *)q->data)[k];
                double d = (v - z) * s[c] - x[k];
                sig += (double)x[k] * x[k];
                err += d * d;
            }
    if (err <= 0)
        return 99.0;
    return 10 * log10(sig / err);
}
