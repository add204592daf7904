/* kernels/q8: the channels-last depthwise convolution (see oq_q8_dw_nhwc in
 * q8.h): weight packing, the scalar kernel (the specification) and dispatch. */
#include "kernels/q8/q8.h"

bool oq_q8_dw_nhwc_pack(size_t channels, size_t kh, size_t kw, const void *w, bool w_signed, const int32_t *w_zps,
                        int32_t w_zp, int32_t *w2, int32_t *wsum, int32_t *w3)
{
    size_t taps = kh * kw, pairs = (taps + 1) / 2;
    bool fits = kw == 3;
    for (size_t c = 0; c < channels; c++) {
        int32_t zp = w_zps ? w_zps[c] : w_zp, sum = 0;
        for (size_t q = 0; q < pairs; q++) {
            int32_t v[2] = {0, 0};
            for (size_t h = 0; h < 2 && 2 * q + h < taps; h++) {
                size_t at = c * taps + 2 * q + h;
                v[h] = (w_signed ? (int32_t)((const int8_t *)w)[at] : (int32_t)((const uint8_t *)w)[at]) - zp;
                sum += v[h];
                fits = fits && v[h] >= -128 && v[h] <= 127;
            }
            w2[q * channels + c] = (int32_t)(((uint32_t)(uint16_t)(int16_t)v[1] << 16) | (uint16_t)(int16_t)v[0]);
        }
        wsum[c] = sum;
    }
    for (size_t ky = 0; fits && ky < kh; ky++)
        for (size_t c = 0; c < channels; c++) {
            uint32_t word = 0;
            for (size_t kx = 0; kx < 3; kx++) {
                size_t at = c * taps + ky * 3 + kx;
                int32_t v = (w_signed ? (int32_t)((const int8_t *)w)[at] : (int32_t)((const uint8_t *)w)[at]) -
                            (w_zps ? w_zps[c] : w_zp);
                word |= (uint32_t)(uint8_t)(int8_t)v << (8 * kx);
            }
            w3[ky * channels + c] = (int32_t)word;
        }
    return fits;
}

/* The input pixel of tap (ky, kx) of output (oy, ox), or pad outside the image. */
static inline const uint8_t *tap_at(const oq_q8_dw_nhwc *d, const uint8_t *x, size_t oy, size_t ox, size_t ky,
                                    size_t kx)
{
    const oq_q8_conv_geom *g = d->g;
    size_t iy = oy * g->stride[1] + ky * g->dilation[1] - g->pad[1]; /* wraps below 0 */
    size_t ix = ox * g->stride[2] + kx * g->dilation[2] - g->pad[2];
    return iy < g->in[1] && ix < g->in[2] ? x + (iy * g->in[2] + ix) * g->channels : d->pad;
}

OQ_Q8_DW_NHWC_FUNCTION(oq_q8_dw_nhwc__scalar)
{
    (void)ws;
    const oq_q8_conv_geom *g = d->g;
    size_t c_n = g->channels, kw = g->kernel[2], taps = g->kernel[1] * kw, pairs = (taps + 1) / 2;
    for (size_t oy = oy0; oy < oy1; oy++)
        for (size_t ox = 0; ox < g->out[2]; ox++) {
            uint8_t *yp = y + (oy * g->out[2] + ox) * c_n;
            for (size_t c = 0; c < c_n; c++) {
                uint32_t acc = (uint32_t)d->bias[c];
                for (size_t q = 0; q < pairs; q++) {
                    int32_t w2 = d->w2[q * c_n + c];
                    for (size_t h = 0; h < 2; h++) {
                        size_t t = 2 * q + h;
                        const uint8_t *src = t < taps ? tap_at(d, x, oy, ox, t / kw, t % kw) : d->pad;
                        int32_t xv = d->x_signed ? (int32_t)(int8_t)src[c] : (int32_t)src[c];
                        int32_t wv = h ? (int32_t)(int16_t)(uint16_t)((uint32_t)w2 >> 16)
                                       : (int32_t)(int16_t)(uint16_t)((uint32_t)w2 & 0xffffu);
                        acc += (uint32_t)(xv * wv);
                    }
                }
                int32_t q = oq_requantize((int32_t)acc, d->scale[c], d->range);
                yp[c] = d->out == OQ_Q8_OUT_S8 ? (uint8_t)(int8_t)q : (uint8_t)q;
            }
        }
}

static bool use_k3(const oq_q8_dw_nhwc *d)
{
    return d->w3 && d->g->kernel[2] == 3 && d->g->kernel[1] <= 3 && oq_isa_level() >= OQ_ISA_AVX512VNNI;
}

size_t oq_q8_dw_nhwc_ws_size(const oq_q8_dw_nhwc *d)
{
    /* k3: kernel-height rows and one of pad, each out[2] x roundup(C, 16) words */
    return use_k3(d) ? (d->g->kernel[1] + 1) * d->g->out[2] * ((d->g->channels + 15) / 16 * 16) * 4 + 64 : 0;
}

void oq_q8_dw_nhwc_rows(const oq_q8_dw_nhwc *d, const uint8_t *x, uint8_t *y, size_t oy0, size_t oy1, void *ws)
{
    if (use_k3(d))
        oq_q8_dw_nhwc_k3__avx512vnni(d, x, y, oy0, oy1, ws);
    else if (oq_isa_level() >= OQ_ISA_AVX512)
        oq_q8_dw_nhwc__avx512(d, x, y, oy0, oy1, ws);
    else
        oq_q8_dw_nhwc__scalar(d, x, y, oy0, oy1, ws);
}
