/* kernels/f32-conv: depthwise convolution — the portable reference kernel (the
 * specification), the padded-plane helper the SIMD variants share, and dispatch. */
#include "kernels/f32-conv/conv.h"

#include <pthread.h>
#include <string.h>

static const oq_f32_dwconv_variant variants[] = {
#define OQ_F32_DWCONV_VARIANT(name, isa) {#name, isa, name},
#include "kernels/f32-conv/f32-dwconv.inc"
#undef OQ_F32_DWCONV_VARIANT
};
enum { N_VARIANTS = sizeof variants / sizeof variants[0] };

const oq_f32_dwconv_variant *oq_f32_dwconv_variants(size_t *count)
{
    *count = N_VARIANTS;
    return variants;
}

static const oq_f32_dwconv_variant *best;
static pthread_once_t best_once = PTHREAD_ONCE_INIT;
static void pick_best(void)
{
    oq_isa level = oq_isa_level();
    best = &variants[0];
    for (size_t i = 0; i < N_VARIANTS; i++)
        if (variants[i].isa <= level && variants[i].isa >= best->isa)
            best = &variants[i];
}

const oq_f32_dwconv_variant *oq_f32_dwconv_default(void)
{
    pthread_once(&best_once, pick_best);
    return best;
}

/* Padded plane: the rows and columns the taps reach, plus 64 floats of slack per row
 * end (a stride-2 vector of 16 outputs reads 32 floats from its first tap). */
static void padded_dims(const oq_f32_dwconv_params *p, size_t *rows, size_t *pitch)
{
    size_t oh = p->oh ? p->oh : 1, ow = p->ow ? p->ow : 1;
    *rows = (oh - 1) * p->sh + (p->kh - 1) * p->dh + 1;
    size_t cols = (ow - 1) * p->sw + (p->kw - 1) * p->dw + 1;
    *pitch = (cols + 15) / 16 * 16;
}

size_t oq_f32_dwconv_workspace_size(const oq_f32_dwconv_params *p)
{
    size_t rows, pitch;
    padded_dims(p, &rows, &pitch);
    /* Vectors of 16 outputs at the end of a row may read up to 16*sw + (kw-1)*dw floats
     * past the last needed column; the slack keeps them inside the buffer. */
    return rows * pitch + 16 * (p->sw + 1) + (p->kw - 1) * p->dw + 64;
}

void oq_f32_dwconv_pad(const oq_f32_dwconv_params *p, const float *in, float *ws, size_t *pitch_out)
{
    size_t rows, pitch;
    padded_dims(p, &rows, &pitch);
    for (size_t r = 0; r < rows; r++) {
        float *d = ws + r * pitch;
        ptrdiff_t iy = (ptrdiff_t)r - (ptrdiff_t)p->pt;
        if (iy < 0 || iy >= (ptrdiff_t)p->ih) {
            memset(d, 0, pitch * sizeof(float));
            continue;
        }
        /* columns [pl, pl+iw) hold the row, clipped to the pitch */
        size_t left = p->pl < pitch ? p->pl : pitch;
        memset(d, 0, left * sizeof(float));
        size_t n = p->iw;
        if (left + n > pitch)
            n = pitch - left;
        memcpy(d + left, in + (size_t)iy * p->iw, n * sizeof(float));
        memset(d + left + n, 0, (pitch - left - n) * sizeof(float));
    }
    size_t slack = oq_f32_dwconv_workspace_size(p) - rows * pitch;
    memset(ws + rows * pitch, 0, slack * sizeof(float));
    *pitch_out = pitch;
}

OQ_F32_DWCONV_FUNCTION(oq_f32_dwconv__scalar)
{
    (void)ws;
    for (size_t oy = 0; oy < p->oh; oy++)
        for (size_t ox = 0; ox < p->ow; ox++) {
            float acc = bias;
            for (size_t ky = 0; ky < p->kh; ky++) {
                ptrdiff_t iy = (ptrdiff_t)(oy * p->sh + ky * p->dh) - (ptrdiff_t)p->pt;
                if (iy < 0 || iy >= (ptrdiff_t)p->ih)
                    continue;
                for (size_t kx = 0; kx < p->kw; kx++) {
                    ptrdiff_t ix = (ptrdiff_t)(ox * p->sw + kx * p->dw) - (ptrdiff_t)p->pl;
                    if (ix < 0 || ix >= (ptrdiff_t)p->iw)
                        continue;
                    acc += w[ky * p->kw + kx] * in[(size_t)iy * p->iw + (size_t)ix];
                }
            }
            if (p->clamp)
                acc = acc < p->min ? p->min : (acc > p->max ? p->max : acc);
            out[oy * p->ow + ox] = acc;
        }
}
