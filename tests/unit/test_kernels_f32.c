/* Kernel tests for the f32 GEMM and convolution families: every variant this CPU
 * runs against a double-precision reference on odd shapes (m, n = 1, k below and
 * not a multiple of the tile, strided rows), and 2 threads bit-identical to 1. */
#include "kernels/f32-conv/conv.h"
#include "kernels/f32-gemm/gemm.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static uint32_t rng = 12345;
static float frand(void)
{
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) & 0xFFFF) / 32768.0f - 1.0f;
}
static size_t urand(size_t n) /* [0, n) */
{
    rng = rng * 1664525u + 1013904223u;
    return (rng >> 8) % n;
}
static void fill(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = frand();
}

/* |got - want| within 1e-5 of the magnitude the sum was built from. */
static int close_to(float got, double want, double mag)
{
    return fabs((double)got - want) <= 1e-5 * mag + 1e-6;
}

/* ---- microkernels ---- */
static void test_ukernels(const oq_f32_gemm_variant *v)
{
    size_t MR = v->mr, NR = v->nr;
    size_t kcs[] = {0, 1, 2, 3, 7, 17, 64, 131};
    /* every row count (SIMD variants have one instance per row count) against narrow
     * (one vector) and wide column counts */
    for (size_t it = 0; it < 8 * MR; it++) {
        size_t mr = 1 + it % MR, nr = it / MR % 2 ? 1 + urand(NR) : 1 + urand(NR / 2 ? NR / 2 : 1);
        size_t kc = kcs[(it + it / MR) % 8];
        size_t ldc = nr + urand(5);
        unsigned flags = (unsigned)urand(4);
        int use_br = (int)urand(2), use_bc = (int)urand(2);
        float *a = malloc((kc * MR + 1) * sizeof(float)), *b = malloc((kc * NR + 1) * sizeof(float));
        float *c = malloc(MR * ldc * sizeof(float)), *c0 = malloc(MR * ldc * sizeof(float));
        float br[64], bc[64];
        fill(a, kc * MR);
        fill(b, kc * NR);
        fill(c0, MR * ldc);
        fill(br, 64);
        fill(bc, 64);
        memcpy(c, c0, MR * ldc * sizeof(float));
        oq_f32_gemm_epilogue ep = {0.5f + frand(), -0.5f, 0.6f};
        v->ukernel(mr, nr, kc, a, b, c, ldc, use_br ? br : NULL, use_bc ? bc : NULL, &ep, flags);
        int bad = 0;
        for (size_t i = 0; i < MR; i++)
            for (size_t j = 0; j < ldc; j++) {
                float got = c[i * ldc + j];
                if (i >= mr || j >= nr) {
                    bad |= got != c0[i * ldc + j]; /* outside the tile: untouched */
                    continue;
                }
                double s = 0, mag = 0;
                for (size_t p = 0; p < kc; p++) {
                    s += (double)a[p * MR + i] * b[p * NR + j];
                    mag += fabs((double)a[p * MR + i] * b[p * NR + j]);
                }
                s *= ep.alpha;
                mag *= fabs(ep.alpha);
                if (use_br)
                    s += br[i], mag += fabs(br[i]);
                if (use_bc)
                    s += bc[j], mag += fabs(bc[j]);
                if (flags & OQ_F32_GEMM_LOAD_C)
                    s += c0[i * ldc + j], mag += fabs(c0[i * ldc + j]);
                if (flags & OQ_F32_GEMM_CLAMP)
                    s = s < ep.min ? ep.min : (s > ep.max ? ep.max : s);
                bad |= !close_to(got, s, mag);
            }
        if (bad)
            fprintf(stderr, "%s: mr=%zu nr=%zu kc=%zu flags=%u\n", v->name, mr, nr, kc, flags);
        CHECK(!bad);
        free(a), free(b), free(c), free(c0);
    }
}

/* ---- driver ---- */
typedef struct gemm_case {
    size_t batch, m, n, k;
    int trans_a, trans_b, pack_a, pack_b, accumulate, bias_kind, clamp;
    size_t extra_ld; /* padding of lda, ldb, ldc */
    float alpha;
} gemm_case;

/* Runs the case with variant v and tp; writes C (batch x m x ldc) to out; checks
 * against the double reference when check is set. */
static void run_gemm_case(const oq_f32_gemm_variant *v, const gemm_case *gc, oq_threadpool *tp, float *out,
                          int check)
{
    size_t m = gc->m, n = gc->n, k = gc->k, B = gc->batch;
    size_t lda = (gc->trans_a ? m : k) + gc->extra_ld, ldb = (gc->trans_b ? k : n) + gc->extra_ld;
    size_t ldc = n + gc->extra_ld;
    size_t a_rows = gc->trans_a ? k : m, b_rows = gc->trans_b ? n : k;
    size_t a_sz = a_rows * lda + 1, b_sz = b_rows * ldb + 1, c_sz = m * ldc;
    uint32_t seed = rng;
    rng = (uint32_t)(m * 31 + n * 17 + k);
    float *a = malloc(B * a_sz * sizeof(float)), *b = malloc(B * b_sz * sizeof(float));
    float *c = malloc(B * c_sz * sizeof(float)), *c0 = malloc(B * c_sz * sizeof(float));
    float *bias = malloc(B * (m + n + 1) * sizeof(float));
    fill(a, B * a_sz);
    fill(b, B * b_sz);
    fill(c0, B * c_sz);
    fill(bias, B * (m + n + 1));
    rng = seed;
    memcpy(c, c0, B * c_sz * sizeof(float));

    oq_f32_gemm_args g = oq_f32_gemm_args_init(m, n, k);
    g.batch = B;
    size_t as_rs = gc->trans_a ? 1 : lda, as_cs = gc->trans_a ? lda : 1;
    size_t bs_rs = gc->trans_b ? 1 : ldb, bs_cs = gc->trans_b ? ldb : 1;
    float *pa = NULL, *pb = NULL;
    size_t pa_sz = oq_f32_gemm_packed_a_size(v, m, k), pb_sz = oq_f32_gemm_packed_b_size(v, k, n);
    if (gc->pack_a) {
        pa = malloc((B * pa_sz + 1) * sizeof(float));
        for (size_t t = 0; t < B; t++)
            oq_f32_gemm_pack_a(v, m, k, a + t * a_sz, as_rs, as_cs, pa + t * pa_sz);
        g.a.packed = pa;
        g.a.stride = pa_sz;
    } else {
        g.a.data = a;
        g.a.rs = as_rs;
        g.a.cs = as_cs;
        g.a.stride = a_sz;
    }
    if (gc->pack_b) {
        pb = malloc((B * pb_sz + 1) * sizeof(float));
        for (size_t t = 0; t < B; t++)
            oq_f32_gemm_pack_b(v, k, n, b + t * b_sz, bs_rs, bs_cs, pb + t * pb_sz);
        g.b.packed = pb;
        g.b.stride = pb_sz;
    } else {
        g.b.data = b;
        g.b.rs = bs_rs;
        g.b.cs = bs_cs;
        g.b.stride = b_sz;
    }
    g.c = c;
    g.ldc = ldc;
    g.c_stride = c_sz;
    g.bias = gc->bias_kind ? bias : NULL;
    g.bias_kind = (oq_f32_bias)gc->bias_kind;
    g.bias_stride = m + n + 1;
    g.alpha = gc->alpha;
    g.accumulate = gc->accumulate;
    g.clamp = gc->clamp;
    if (gc->clamp) {
        g.min = -0.7f;
        g.max = 0.9f;
    }
    size_t ws_sz = oq_f32_gemm_workspace_size(v, &g, (size_t)oq_threadpool_size(tp));
    void *ws = malloc(ws_sz);
    oq_f32_gemm_run(v, &g, ws, tp);
    memcpy(out, c, B * c_sz * sizeof(float));

    if (check) {
        int bad = 0;
        for (size_t t = 0; t < B && !bad; t++)
            for (size_t i = 0; i < m; i++)
                for (size_t j = 0; j < ldc; j++) {
                    float got = c[t * c_sz + i * ldc + j], old = c0[t * c_sz + i * ldc + j];
                    if (j >= n) {
                        bad |= got != old;
                        continue;
                    }
                    double s = 0, mag = 0;
                    for (size_t p = 0; p < k; p++) {
                        double x = a[t * a_sz + i * as_rs + p * as_cs], y = b[t * b_sz + p * bs_rs + j * bs_cs];
                        s += x * y;
                        mag += fabs(x * y);
                    }
                    s *= gc->alpha;
                    mag *= fabs(gc->alpha);
                    const float *bi = bias + t * (m + n + 1);
                    if (gc->bias_kind == OQ_F32_BIAS_ROW)
                        s += bi[i], mag += fabs(bi[i]);
                    if (gc->bias_kind == OQ_F32_BIAS_COL)
                        s += bi[j], mag += fabs(bi[j]);
                    if (gc->accumulate)
                        s += old, mag += fabs(old);
                    if (gc->clamp)
                        s = s < -0.7 ? -0.7 : (s > 0.9 ? 0.9 : s);
                    if (!close_to(got, s, mag)) {
                        if (!bad)
                            fprintf(stderr, "%s: b=%zu m=%zu n=%zu k=%zu at (%zu,%zu,%zu): %g vs %g\n", v->name,
                                    B, m, n, k, t, i, j, got, s);
                        bad = 1;
                    }
                }
        CHECK(!bad);
    }
    free(ws), free(a), free(b), free(c), free(c0), free(bias), free(pa), free(pb);
}

static void test_driver(const oq_f32_gemm_variant *v, oq_threadpool *tp2)
{
    static const size_t shapes[][3] = {
        {1, 1, 1},    {1, 37, 5},    {37, 1, 300},  {3, 5, 0},     {13, 17, 19},  {14, 32, 256}, {15, 33, 257},
        {6, 16, 7},   {29, 64, 513}, {64, 49, 100}, {128, 96, 64}, {100, 300, 70}, {300, 300, 300}, {2, 700, 31},
        {257, 3, 40}, {5, 1030, 9},
        /* tiles dealt unevenly over panels: ResNet18 14x14 and 7x7 3x3 convs, odd edges */
        {256, 196, 50}, {512, 49, 70}, {269, 229, 33}, {41, 1000, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        gemm_case gc = {1 + (s % 3 == 2), shapes[s][0], shapes[s][1], shapes[s][2],
                        (int)urand(2), (int)urand(2), (int)urand(2), (int)urand(2), (int)urand(2), (int)urand(3),
                        (int)urand(2), urand(2) * 3, urand(2) ? 1.0f : 0.75f};
        size_t csz = gc.batch * gc.m * (gc.n + gc.extra_ld);
        float *c1 = malloc(csz * sizeof(float) + 4), *c2 = malloc(csz * sizeof(float) + 4);
        run_gemm_case(v, &gc, NULL, c1, 1);
        run_gemm_case(v, &gc, tp2, c2, 0);
        int same = memcmp(c1, c2, csz * sizeof(float)) == 0;
        if (!same)
            fprintf(stderr, "%s: 2 threads differ from 1 at m=%zu n=%zu k=%zu\n", v->name, gc.m, gc.n, gc.k);
        CHECK(same);
        free(c1), free(c2);
    }
}

/* ---- im2col + GEMM against a direct convolution ---- */
static void test_im2col(const oq_f32_gemm_variant *v, oq_f32_gemm_pack_fn pack, const char *pack_name,
                        oq_threadpool *tp)
{
    typedef struct { size_t c, m, in[3], k[3], s[3], d[3], p[3], pe[3]; } cc;
    static const cc cases[] = {
        {3, 5, {1, 9, 11}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}},
        {2, 4, {1, 10, 13}, {1, 3, 2}, {1, 2, 3}, {1, 1, 2}, {0, 2, 0}, {0, 1, 3}},
        {4, 7, {1, 7, 7}, {1, 1, 1}, {1, 2, 2}, {1, 1, 1}, {0, 0, 0}, {0, 0, 0}},
        {3, 8, {1, 23, 23}, {1, 7, 7}, {1, 2, 2}, {1, 1, 1}, {0, 3, 3}, {0, 3, 3}},
        {2, 3, {5, 6, 7}, {3, 2, 3}, {2, 1, 2}, {1, 2, 1}, {1, 0, 1}, {1, 1, 0}},
        {5, 9, {1, 1, 40}, {1, 1, 5}, {1, 1, 3}, {1, 1, 2}, {0, 0, 4}, {0, 0, 1}},
        /* rows wider than a panel, stride 1 and 2, odd widths, dilation, tiny planes */
        {3, 5, {1, 9, 70}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}},
        {2, 4, {1, 11, 75}, {1, 3, 3}, {1, 2, 2}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}},
        {2, 3, {1, 6, 37}, {1, 3, 5}, {1, 1, 1}, {1, 2, 2}, {0, 2, 4}, {0, 2, 4}},
        {3, 4, {1, 2, 3}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 1, 1}, {0, 1, 1}},
        {2, 3, {1, 40, 1}, {1, 3, 1}, {1, 1, 1}, {1, 1, 1}, {0, 1, 0}, {0, 1, 0}},
        {4, 6, {1, 1, 100}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, {0, 0, 0}},
        {2, 5, {1, 9, 33}, {1, 3, 3}, {1, 2, 2}, {1, 1, 1}, {0, 0, 0}, {0, 1, 1}},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const cc *t = &cases[ci];
        oq_f32_im2col cv = {0};
        cv.channels = t->c;
        size_t out_n = 1, kk = t->c, in_n = t->c;
        for (int d = 0; d < 3; d++) {
            cv.g.in[d] = t->in[d];
            cv.g.kernel[d] = t->k[d];
            cv.g.stride[d] = t->s[d];
            cv.g.dilation[d] = t->d[d];
            cv.g.pad[d] = t->p[d];
            cv.g.out[d] = (t->in[d] + t->p[d] + t->pe[d] - ((t->k[d] - 1) * t->d[d] + 1)) / t->s[d] + 1;
            out_n *= cv.g.out[d];
            kk *= t->k[d];
            in_n *= t->in[d];
        }
        float *x = malloc(in_n * sizeof(float)), *w = malloc(t->m * kk * sizeof(float));
        float *y = malloc(t->m * out_n * sizeof(float)), *bias = malloc(t->m * sizeof(float));
        fill(x, in_n);
        fill(w, t->m * kk);
        fill(bias, t->m);
        cv.x = x;
        oq_f32_gemm_args g = oq_f32_gemm_args_init(t->m, out_n, kk);
        g.a.data = w;
        g.a.rs = kk;
        g.a.cs = 1;
        g.b.pack = pack;
        g.b.pack_ctx = &cv;
        g.c = y;
        g.bias = bias;
        g.bias_kind = OQ_F32_BIAS_ROW;
        void *ws = malloc(oq_f32_gemm_workspace_size(v, &g, (size_t)oq_threadpool_size(tp)));
        oq_f32_gemm_run(v, &g, ws, tp);
        int bad = 0;
        const size_t *o = cv.g.out;
        for (size_t mo = 0; mo < t->m; mo++)
            for (size_t z = 0; z < o[0]; z++)
                for (size_t yy = 0; yy < o[1]; yy++)
                    for (size_t xx = 0; xx < o[2]; xx++) {
                        double s = bias[mo], mag = fabs(bias[mo]);
                        for (size_t c = 0; c < t->c; c++)
                            for (size_t a = 0; a < t->k[0]; a++)
                                for (size_t b = 0; b < t->k[1]; b++)
                                    for (size_t e = 0; e < t->k[2]; e++) {
                                        ptrdiff_t iz = (ptrdiff_t)(z * t->s[0] + a * t->d[0]) - (ptrdiff_t)t->p[0];
                                        ptrdiff_t iy = (ptrdiff_t)(yy * t->s[1] + b * t->d[1]) - (ptrdiff_t)t->p[1];
                                        ptrdiff_t ix = (ptrdiff_t)(xx * t->s[2] + e * t->d[2]) - (ptrdiff_t)t->p[2];
                                        if (iz < 0 || iy < 0 || ix < 0 || iz >= (ptrdiff_t)t->in[0] ||
                                            iy >= (ptrdiff_t)t->in[1] || ix >= (ptrdiff_t)t->in[2])
                                            continue;
                                        double wv = w[mo * kk + ((c * t->k[0] + a) * t->k[1] + b) * t->k[2] + e];
                                        double xv = x[((c * t->in[0] + (size_t)iz) * t->in[1] + (size_t)iy) *
                                                          t->in[2] +
                                                      (size_t)ix];
                                        s += wv * xv;
                                        mag += fabs(wv * xv);
                                    }
                        float got = y[mo * out_n + (z * o[1] + yy) * o[2] + xx];
                        if (!close_to(got, s, mag) && !bad) {
                            fprintf(stderr, "%s %s case %zu: %g vs %g\n", v->name, pack_name, ci, got, s);
                            bad = 1;
                        }
                    }
        CHECK(!bad);
        free(ws), free(x), free(w), free(y), free(bias);
    }
}

/* ---- depthwise ---- */
static void test_dwconv(const oq_f32_dwconv_variant *v)
{
    typedef struct { size_t ih, iw, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr; int clamp; } dc;
    static const dc cases[] = {
        {7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0},      {112, 112, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
        {112, 112, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, 1},  {14, 14, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0},
        {1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0},      {9, 37, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 1},
        {10, 19, 3, 2, 3, 3, 2, 2, 0, 1, 2, 0, 0},    {17, 33, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 0},
        {8, 8, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1},      {16, 40, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0, 0},
        /* 3x3 direct paths: widths around the 16-lane vector and the 32-float stride-2
         * window, 1-wide planes, pads of 0, 2 and 17 (left of a whole vector), mixed strides */
        {5, 15, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0},     {6, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1},
        {4, 17, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 0},     {3, 33, 3, 3, 1, 1, 1, 1, 2, 2, 2, 2, 0},
        {57, 57, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1},    {9, 31, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0},
        {7, 65, 3, 3, 2, 2, 1, 1, 0, 1, 2, 0, 0},     {3, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0},
        {1, 1, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0},      {3, 20, 3, 3, 1, 1, 1, 1, 17, 17, 17, 17, 0},
        {11, 34, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1},    {12, 35, 3, 3, 1, 2, 1, 1, 1, 0, 1, 1, 0},
        {2, 2, 3, 3, 1, 2, 1, 1, 2, 2, 2, 2, 0},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const dc *t = &cases[ci];
        oq_f32_dwconv_params p = {t->ih, t->iw, 0, 0, t->kh, t->kw, t->sh, t->sw, t->dh, t->dw, t->pt, t->pl,
                                  (bool)t->clamp, -0.5f, 0.8f};
        p.oh = (t->ih + t->pt + t->pb - ((t->kh - 1) * t->dh + 1)) / t->sh + 1;
        p.ow = (t->iw + t->pl + t->pr - ((t->kw - 1) * t->dw + 1)) / t->sw + 1;
        float *x = malloc(t->ih * t->iw * sizeof(float)), w[25];
        float *y = malloc(p.oh * p.ow * sizeof(float));
        float *ws = malloc(oq_f32_dwconv_workspace_size(&p) * sizeof(float));
        fill(x, t->ih * t->iw);
        fill(w, 25);
        float bias = frand();
        v->fn(&p, x, w, bias, y, ws);
        int bad = 0;
        for (size_t oy = 0; oy < p.oh; oy++)
            for (size_t ox = 0; ox < p.ow; ox++) {
                double s = bias, mag = fabs(bias);
                for (size_t ky = 0; ky < t->kh; ky++)
                    for (size_t kx = 0; kx < t->kw; kx++) {
                        ptrdiff_t iy = (ptrdiff_t)(oy * t->sh + ky * t->dh) - (ptrdiff_t)t->pt;
                        ptrdiff_t ix = (ptrdiff_t)(ox * t->sw + kx * t->dw) - (ptrdiff_t)t->pl;
                        if (iy < 0 || ix < 0 || iy >= (ptrdiff_t)t->ih || ix >= (ptrdiff_t)t->iw)
                            continue;
                        double v2 = (double)w[ky * t->kw + kx] * x[(size_t)iy * t->iw + (size_t)ix];
                        s += v2;
                        mag += fabs(v2);
                    }
                if (t->clamp)
                    s = s < -0.5 ? -0.5 : (s > 0.8 ? 0.8 : s);
                float got = y[oy * p.ow + ox];
                if (!close_to(got, s, mag) && !bad) {
                    fprintf(stderr, "%s case %zu at (%zu,%zu): %g vs %g\n", v->name, ci, oy, ox, got, s);
                    bad = 1;
                }
            }
        CHECK(!bad);
        free(x), free(y), free(ws);
    }
}

/* The AVX-512 panel packer against its definition: every panel width the
 * microkernels use and a few others, lines from none to more than 16, k below,
 * at and past 16, line stride past k; floats past the panel stay untouched. */
static void test_pack_lines_avx512(void)
{
    static const size_t widths[] = {4, 8, 14, 16, 17, 32, 33};
    static const size_t ks[] = {1, 5, 16, 17, 64, 100};
    float src[40 * 130], dst[130 * 33 + 8];
    for (size_t i = 0; i < sizeof src / sizeof src[0]; i++)
        src[i] = (float)((i * 7919) % 1000) * 0.01f - 4.0f;
    int bad = 0;
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++)
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
            for (size_t lines = 0; lines <= widths[wi]; lines += lines < 3 ? 1 : 5) {
                size_t w = widths[wi], kb = ks[ki], ls = kb + 3;
                for (size_t i = 0; i < sizeof dst / sizeof dst[0]; i++)
                    dst[i] = -99.0f;
                oq_f32_pack_lines__avx512(src, ls, lines, kb, w, dst);
                for (size_t p = 0; p < kb; p++)
                    for (size_t i = 0; i < w; i++)
                        bad += dst[p * w + i] != (i < lines ? src[i * ls + p] : 0.0f);
                for (size_t i = kb * w; i < sizeof dst / sizeof dst[0]; i++)
                    bad += dst[i] != -99.0f;
            }
    CHECK(bad == 0);
}

int main(void)
{
    oq_threadpool *tp2 = NULL;
    CHECK_OK(oq_threadpool_create(2, &tp2));
    oq_isa level = oq_isa_level();
    size_t nv;
    const oq_f32_gemm_variant *gv = oq_f32_gemm_variants(&nv);
    for (size_t i = 0; i < nv; i++) {
        if (gv[i].isa > level)
            continue;
        printf("gemm variant %s\n", gv[i].name);
        test_ukernels(&gv[i]);
        test_driver(&gv[i], tp2);
        test_im2col(&gv[i], oq_f32_im2col_pack, "im2col", NULL);
        test_im2col(&gv[i], oq_f32_im2col_pack, "im2col", tp2);
        if (level >= OQ_ISA_AVX512) {
            test_im2col(&gv[i], oq_f32_im2col_pack__avx512, "im2col__avx512", NULL);
            test_im2col(&gv[i], oq_f32_im2col_pack__avx512, "im2col__avx512", tp2);
        }
    }
    CHECK(oq_f32_gemm_default()->isa <= level);
    if (level >= OQ_ISA_AVX512)
        test_pack_lines_avx512();
    const oq_f32_dwconv_variant *dv = oq_f32_dwconv_variants(&nv);
    for (size_t i = 0; i < nv; i++) {
        if (dv[i].isa > level)
            continue;
        printf("dwconv variant %s\n", dv[i].name);
        test_dwconv(&dv[i]);
    }
    oq_threadpool_destroy(tp2);
    return test_summary("test_kernels_f32");
}
