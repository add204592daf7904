/* kernels/f32-conv: AVX512 im2col packer for 32-column panels and horizontal stride
 * 1 or 2. Per panel, a table gives each kernel tap's read offsets and lane masks, so a
 * panel row is two (stride 2: four) masked loads per run, for every channel alike. */
#include "kernels/f32-conv/conv.h"

#include <immintrin.h>

typedef struct run {
    size_t j, len, oz, oy, ox;
} run;

/* Output columns t of a run with input index ix0 + t*s in [0, n): [*lo, *hi). */
static inline void valid_range(ptrdiff_t ix0, size_t s, size_t len, size_t n, size_t *lo, size_t *hi)
{
    ptrdiff_t st = (ptrdiff_t)s, a = 0, b = (ptrdiff_t)len;
    if (ix0 < 0)
        a = (-ix0 + st - 1) / st;
    if (ix0 + (b - 1) * st >= (ptrdiff_t)n)
        b = ix0 >= (ptrdiff_t)n ? 0 : ((ptrdiff_t)n - ix0 + st - 1) / st;
    if (a > (ptrdiff_t)len)
        a = (ptrdiff_t)len;
    if (b < a)
        b = a;
    *lo = (size_t)a;
    *hi = (size_t)b;
}

/* Where one (kernel tap, run) pair reads: lane u of the 32-column panel row takes
 * input float off + u*sw of the channel plane, for u in the bits of out. For stride 2,
 * in covers the contiguous input floats [off, off+64) that those lanes reach. */
typedef struct tap_run {
    ptrdiff_t off;
    uint32_t out;
    uint64_t in;
} tap_run;

enum { MAX_TABLE = 1024 };

/* base + off floats. The address may lie outside the plane (a run's lane 0 left of the
 * padding); only lanes inside it are loaded, so it is formed as an integer. */
static inline const float *at(const float *base, ptrdiff_t off)
{
    return (const float *)((uintptr_t)base + (uintptr_t)(off * (ptrdiff_t)sizeof(float)));
}

void oq_f32_im2col_pack__avx512(const void *ctx, size_t batch, size_t k0, size_t kb, size_t n0, size_t nb, size_t nr,
                                float *dst)
{
    const oq_f32_im2col *cv = ctx;
    const oq_f32_conv_geom *g = &cv->g;
    const size_t sw = g->stride[2];
    const size_t id = g->in[0], ih = g->in[1], iw = g->in[2];
    const size_t oh = g->out[1], ow = g->out[2];
    const size_t kd = g->kernel[0], kh = g->kernel[1], kw = g->kernel[2];
    const size_t ksize = kd * kh * kw;
    /* a panel spans at most 1 + ceil(31 / ow) output rows */
    const size_t max_runs = 2 + 31 / (ow ? ow : 1);
    if (nr != 32 || sw > 2 || ksize * max_runs > MAX_TABLE) {
        oq_f32_im2col_pack(ctx, batch, k0, kb, n0, nb, nr, dst);
        return;
    }
    const float *x = cv->x + batch * cv->batch_stride;
    const size_t plane = id * ih * iw;
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    tap_run table[MAX_TABLE];
    size_t counts[MAX_TABLE]; /* entries of each tap (runs that read something) */
    run runs[32];

    for (size_t q = 0; q < nb; q += nr) {
        const size_t wq = nb - q < nr ? nb - q : nr;
        size_t nruns = 0;
        {
            size_t nstart = n0 + q, oz = nstart / (oh * ow), oy = nstart / ow % oh, ox = nstart % ow;
            for (size_t j = 0; j < wq && nruns < 32;) {
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
        /* the reads of every tap, computed once per panel and reused for every channel */
        for (size_t t = 0; t < ksize; t++) {
            size_t kx = t % kw, ky = t / kw % kh, kz = t / (kw * kh);
            ptrdiff_t zoff = (ptrdiff_t)(kz * g->dilation[0]) - (ptrdiff_t)g->pad[0];
            ptrdiff_t yoff = (ptrdiff_t)(ky * g->dilation[1]) - (ptrdiff_t)g->pad[1];
            ptrdiff_t xoff = (ptrdiff_t)(kx * g->dilation[2]) - (ptrdiff_t)g->pad[2];
            size_t cnt = 0;
            for (size_t r = 0; r < nruns; r++) {
                const run *rn = &runs[r];
                ptrdiff_t iz = (ptrdiff_t)(rn->oz * g->stride[0]) + zoff;
                ptrdiff_t iy = (ptrdiff_t)(rn->oy * g->stride[1]) + yoff;
                if (iz < 0 || iz >= (ptrdiff_t)id || iy < 0 || iy >= (ptrdiff_t)ih)
                    continue;
                ptrdiff_t ix0 = (ptrdiff_t)(rn->ox * sw) + xoff;
                size_t lo, hi;
                valid_range(ix0, sw, rn->len, iw, &lo, &hi);
                if (lo >= hi)
                    continue;
                size_t a = rn->j + lo, b = rn->j + hi;
                tap_run *e = &table[t * max_runs + cnt++];
                e->off = ((iz * (ptrdiff_t)ih + iy) * (ptrdiff_t)iw + ix0) - (ptrdiff_t)(rn->j * sw);
                e->out = (uint32_t)((((uint64_t)1 << (b - a)) - 1) << a);
                e->in = sw == 2 ? ((((uint64_t)1 << (2 * (b - a) - 1)) - 1) << (2 * a)) : 0;
            }
            counts[t] = cnt;
        }
        size_t t = k0 % ksize, c = k0 / ksize;
        for (size_t p = 0; p < kb; p++) {
            const float *xc = x + c * plane;
            const tap_run *e = &table[t * max_runs];
            __m512 v0 = _mm512_setzero_ps(), v1 = _mm512_setzero_ps();
            if (sw == 1) {
                for (size_t r = 0; r < counts[t]; r++) {
                    const float *s = at(xc, e[r].off);
                    v0 = _mm512_mask_loadu_ps(v0, (__mmask16)e[r].out, s);
                    v1 = _mm512_mask_loadu_ps(v1, (__mmask16)(e[r].out >> 16), s + 16);
                }
            } else {
                for (size_t r = 0; r < counts[t]; r++) {
                    const float *s = at(xc, e[r].off);
                    uint64_t in = e[r].in;
                    if ((uint16_t)e[r].out) {
                        __m512 l0 = _mm512_maskz_loadu_ps((__mmask16)in, s);
                        __m512 l1 = _mm512_maskz_loadu_ps((__mmask16)(in >> 16), s + 16);
                        v0 = _mm512_mask_mov_ps(v0, (__mmask16)e[r].out, _mm512_permutex2var_ps(l0, even, l1));
                    }
                    if (e[r].out >> 16) {
                        __m512 l2 = _mm512_maskz_loadu_ps((__mmask16)(in >> 32), s + 32);
                        __m512 l3 = _mm512_maskz_loadu_ps((__mmask16)(in >> 48), s + 48);
                        v1 = _mm512_mask_mov_ps(v1, (__mmask16)(e[r].out >> 16), _mm512_permutex2var_ps(l2, even, l3));
                    }
                }
            }
            _mm512_storeu_ps(dst + p * nr, v0);
            _mm512_storeu_ps(dst + p * nr + 16, v1);
            if (++t == ksize) {
                t = 0;
                c++;
            }
        }
        dst += kb * nr;
    }
}
