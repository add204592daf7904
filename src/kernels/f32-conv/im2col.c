/* kernels/f32-conv: im2col straight into packed GEMM B panels. Each panel row
 * (one (channel, kernel offset) pair) is written as runs of output pixels that
 * share an input row, so stride-1 runs are plain copies with zero edges. */
#include "kernels/f32-conv/conv.h"

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Output columns t of a run whose input index ix0 + t*s lies in [0, n): [*lo, *hi).
 * Divisions only when the run actually crosses an edge. */
static inline void valid_range(ptrdiff_t ix0, size_t s, size_t run, size_t n, size_t *lo, size_t *hi)
{
    ptrdiff_t st = (ptrdiff_t)s, last = ix0 + (ptrdiff_t)(run - 1) * st;
    if (ix0 >= 0 && last < (ptrdiff_t)n) {
        *lo = 0;
        *hi = run;
        return;
    }
    ptrdiff_t a = ix0 >= 0 ? 0 : (s == 1 ? -ix0 : (-ix0 + st - 1) / st);
    ptrdiff_t b = ix0 >= (ptrdiff_t)n ? 0 : (s == 1 ? (ptrdiff_t)n - ix0 : ((ptrdiff_t)n - ix0 + st - 1) / st);
    if (a > (ptrdiff_t)run)
        a = (ptrdiff_t)run;
    if (b > (ptrdiff_t)run)
        b = (ptrdiff_t)run;
    if (b < a)
        b = a;
    *lo = (size_t)a;
    *hi = (size_t)b;
}

/* Short copies and fills, 4 floats at a time: this file is built for baseline x86-64,
 * where -O2 leaves plain loops scalar and a libc call per run costs more than the copy. */
static inline void copy_floats(float *d, const float *s, size_t n)
{
    size_t t = 0;
#if defined(__SSE2__)
    for (; t + 8 <= n; t += 8) {
        __m128 a = _mm_loadu_ps(s + t), b = _mm_loadu_ps(s + t + 4);
        _mm_storeu_ps(d + t, a);
        _mm_storeu_ps(d + t + 4, b);
    }
#endif
    for (; t < n; t++)
        d[t] = s[t];
}

/* d[t] = s[2t]; reads s[2n-2] at most (the vector loop stops one element early for that). */
static inline void copy_floats_stride2(float *d, const float *s, size_t n)
{
    size_t t = 0;
#if defined(__SSE2__)
    for (; t + 4 < n; t += 4)
        _mm_storeu_ps(d + t, _mm_shuffle_ps(_mm_loadu_ps(s + 2 * t), _mm_loadu_ps(s + 2 * t + 4), 0x88));
#endif
    for (; t < n; t++)
        d[t] = s[2 * t];
}

static inline void zero_floats(float *d, size_t n)
{
    size_t t = 0;
#if defined(__SSE2__)
    const __m128 z = _mm_setzero_ps();
    for (; t + 4 <= n; t += 4)
        _mm_storeu_ps(d + t, z);
#endif
    for (; t < n; t++)
        d[t] = 0.0f;
}

/* A stretch of a panel's columns that lies in one output row. */
typedef struct run {
    size_t j, len, oz, oy, ox;
} run;

void oq_f32_im2col_pack(const void *ctx, size_t batch, size_t k0, size_t kb, size_t n0, size_t nb, size_t nr,
                        float *dst)
{
    const oq_f32_im2col *cv = ctx;
    const oq_f32_conv_geom *g = &cv->g;
    const float *x = cv->x + batch * cv->batch_stride;
    const size_t id = g->in[0], ih = g->in[1], iw = g->in[2];
    const size_t oh = g->out[1], ow = g->out[2];
    const size_t kd = g->kernel[0], kh = g->kernel[1], kw = g->kernel[2];
    const size_t sw = g->stride[2], dw = g->dilation[2];
    const size_t plane = id * ih * iw;
    run runs[64]; /* nr <= 64: every run holds at least one column */

    for (size_t q = 0; q < nb; q += nr) {
        const size_t wq = nb - q < nr ? nb - q : nr;
        /* split the panel's columns at output-row boundaries once, reuse for every k */
        size_t nruns = 0;
        {
            size_t nstart = n0 + q, oz = nstart / (oh * ow), oy = nstart / ow % oh, ox = nstart % ow;
            for (size_t j = 0; j < wq && nruns < 64;) {
                size_t len = wq - j < ow - ox ? wq - j : ow - ox;
                runs[nruns++] = (run){j, len, oz, oy, ox};
                j += len;
                ox = 0;
                if (++oy == oh) {
                    oy = 0;
                    oz++;
                }
            }
        }
        size_t kx = k0 % kw, ky = k0 / kw % kh, kz = k0 / (kw * kh) % kd, c = k0 / (kw * kh * kd);
        for (size_t p = 0; p < kb; p++) {
            float *d = dst + p * nr;
            const float *xc = x + c * plane;
            const ptrdiff_t zoff = (ptrdiff_t)(kz * g->dilation[0]) - (ptrdiff_t)g->pad[0];
            const ptrdiff_t yoff = (ptrdiff_t)(ky * g->dilation[1]) - (ptrdiff_t)g->pad[1];
            const ptrdiff_t xoff = (ptrdiff_t)(kx * dw) - (ptrdiff_t)g->pad[2];
            for (size_t r = 0; r < nruns; r++) {
                const run *rn = &runs[r];
                float *dr = d + rn->j;
                ptrdiff_t iz = (ptrdiff_t)(rn->oz * g->stride[0]) + zoff;
                ptrdiff_t iy = (ptrdiff_t)(rn->oy * g->stride[1]) + yoff;
                if (iz < 0 || iz >= (ptrdiff_t)id || iy < 0 || iy >= (ptrdiff_t)ih) {
                    zero_floats(dr, rn->len);
                    continue;
                }
                const float *row = xc + ((size_t)iz * ih + (size_t)iy) * iw;
                ptrdiff_t ix0 = (ptrdiff_t)(rn->ox * sw) + xoff;
                size_t lo, hi;
                valid_range(ix0, sw, rn->len, iw, &lo, &hi);
                zero_floats(dr, lo);
                if (sw == 1) {
                    copy_floats(dr + lo, row + (ix0 + (ptrdiff_t)lo), hi - lo);
                } else if (sw == 2) {
                    copy_floats_stride2(dr + lo, row + (ix0 + 2 * (ptrdiff_t)lo), hi - lo);
                } else {
                    for (size_t t = lo; t < hi; t++)
                        dr[t] = row[ix0 + (ptrdiff_t)(t * sw)];
                }
                zero_floats(dr + hi, rn->len - hi);
            }
            zero_floats(d + wq, nr - wq);
            if (++kx == kw) {
                kx = 0;
                if (++ky == kh) {
                    ky = 0;
                    if (++kz == kd) {
                        kz = 0;
                        c++;
                    }
                }
            }
        }
        dst += kb * nr;
    }
}

oq_f32_gemm_pack_fn oq_f32_im2col_pack_default(void)
{
    return oq_isa_level() >= OQ_ISA_AVX512 ? oq_f32_im2col_pack__avx512 : oq_f32_im2col_pack;
}
