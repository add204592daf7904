/* Kernel tests of the q8 GEMM family: every variant this CPU runs (up to the
 * ONNXQ_ISA cap) against a naive int64 computation of the same product,
 * int32 results bit-exact and requantized outputs identical, over odd shapes
 * (k < 4, k not a multiple of 4 or of the tile, m = 1, n = 1, strided rows,
 * raw A rows read in place with a partial last group), extreme
 * zero points, per-row/per-column zero points and scales, and every output type.
 * Also the im2col packer and the depthwise kernel against direct loops. */
#include "kernels/q8/q8.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static uint32_t rng = 12345;
static uint8_t rnd8(void)
{
    rng = rng * 1664525u + 1013904223u;
    return (uint8_t)(rng >> 24);
}

typedef struct gcase {
    size_t m, n, k, lda, ldb;
    int za_kind, zb_kind; /* 0 scalar, 1 vector */
    int32_t za, zb;
    int bias; /* 0 none, 1 row, 2 col */
    oq_q8_out out;
    int scale_mode;
    int a_packed, b_mode; /* b_mode 0 packed, 1 raw */
} gcase;

static int check_case(const oq_q8_gemm_variant *v, const gcase *c)
{
    bool a_signed = v->flavour == OQ_Q8_S8U8;
    size_t m = c->m, n = c->n, k = c->k;
    uint8_t *a = malloc(m * c->lda + 1), *b = malloc(k * c->ldb + 1);
    for (size_t i = 0; i < m * c->lda; i++)
        a[i] = rnd8();
    for (size_t i = 0; i < k * c->ldb; i++)
        b[i] = rnd8();
    if (k > 0 && m > 0) { /* extremes: most negative / largest bytes */
        a[0] = a_signed ? 0x80 : 0xFF;
        b[0] = a_signed ? 0xFF : 0x80;
    }
    int32_t *zar = malloc((m + 1) * 4), *zbc = malloc((n + 1) * 4), *bias = malloc((m + n + 1) * 4);
    float *scale = malloc((m + n + 1) * sizeof(float)), *bias_f = malloc((n + 1) * sizeof(float));
    for (size_t i = 0; i < m; i++)
        zar[i] = a_signed ? (int8_t)rnd8() : rnd8();
    for (size_t j = 0; j < n; j++)
        zbc[j] = a_signed ? rnd8() : (int8_t)rnd8();
    for (size_t i = 0; i < m + n; i++) {
        bias[i] = (int32_t)(rnd8() * 131) - 16000;
        scale[i] = 0.0005f + (float)rnd8() / 40000.0f;
    }
    for (size_t j = 0; j < n; j++)
        bias_f[j] = (float)rnd8() / 7.0f - 10.0f;

    oq_q8_gemm_args g = oq_q8_gemm_args_init(m, n, k);
    uint8_t *pa = NULL, *pb = NULL;
    int32_t *rs = malloc((m + 1) * 4), *cs = malloc((n + 1) * 4);
    if (c->a_packed) {
        pa = oq_aligned_alloc(oq_q8_packed_a_size(v, m, k) + 1);
        oq_q8_pack_a(v, m, k, a, c->lda, 1, 0, pa, rs);
        g.a_packed = pa;
        g.a_rowsum = rs;
    } else {
        g.a = a;
        g.a_rs = c->lda;
        g.a_cs = 1;
    }
    if (c->b_mode == 0) {
        pb = oq_aligned_alloc(oq_q8_packed_b_size(v, k, n) + 1);
        oq_q8_pack_b(v, k, n, b, c->ldb, 1, 0, pb, cs);
        g.b_packed = pb;
        g.b_colsum = cs;
    } else {
        g.b = b;
        g.b_rs = c->ldb;
        g.b_cs = 1;
    }
    g.a_zp = c->za;
    g.b_zp = c->zb;
    if (c->za_kind)
        g.a_zp_rows = zar;
    if (c->zb_kind)
        g.b_zp_cols = zbc;
    if (c->bias) {
        g.bias = c->bias == 1 ? bias : bias + m;
        g.bias_mode = c->bias == 1 ? OQ_Q8_PER_ROW : OQ_Q8_PER_COL;
    }
    g.out = c->out;
    g.scale = c->scale_mode == OQ_Q8_PER_COL ? scale + m : scale;
    g.scale_mode = c->scale_mode;
    g.bias_f = bias_f;
    int32_t zo = c->out == OQ_Q8_OUT_S8 ? -3 : 131, qmin = c->out == OQ_Q8_OUT_S8 ? -128 : 0;
    g.range = oq_requant_range_make(zo, qmin, qmin + 255 - 17); /* a narrowed top: fused clamp */
    size_t es = c->out == OQ_Q8_OUT_I32 || c->out == OQ_Q8_OUT_F32 ? 4 : 1;
    size_t ldc = n + 3;
    uint8_t *out = malloc(m * ldc * es + 1);
    memset(out, 0xAB, m * ldc * es + 1);
    g.c = out;
    g.ldc = ldc;
    int fails = 0;
    for (int threads = 1; threads <= 2; threads++) {
        oq_threadpool *tp = NULL;
        if (threads > 1)
            oq_threadpool_create(threads, &tp);
        void *ws = malloc(oq_q8_gemm_workspace_size(v, &g, (size_t)threads));
        oq_q8_gemm_run(v, &g, ws, tp);
        free(ws);
        oq_threadpool_destroy(tp);
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++) {
                int64_t za = c->za_kind ? zar[i] : c->za, zb = c->zb_kind ? zbc[j] : c->zb, acc = 0;
                for (size_t p = 0; p < k; p++) {
                    int64_t av = a_signed ? (int8_t)a[i * c->lda + p] : a[i * c->lda + p];
                    int64_t bv = a_signed ? b[p * c->ldb + j] : (int8_t)b[p * c->ldb + j];
                    acc += (av - za) * (bv - zb);
                }
                if (c->bias)
                    acc += c->bias == 1 ? bias[i] : bias[m + j];
                int32_t v32 = (int32_t)acc;
                float s = g.scale[c->scale_mode == OQ_Q8_PER_ROW ? i : c->scale_mode == OQ_Q8_PER_COL ? j : 0];
                size_t at = i * ldc + j;
                bool ok;
                switch (c->out) {
                case OQ_Q8_OUT_I32: ok = ((int32_t *)out)[at] == v32; break;
                case OQ_Q8_OUT_U8: ok = ((uint8_t *)out)[at] == (uint8_t)oq_requantize(v32, s, g.range); break;
                case OQ_Q8_OUT_S8: ok = ((int8_t *)out)[at] == (int8_t)oq_requantize(v32, s, g.range); break;
                default: {
                    float want = (float)v32 * s + bias_f[j];
                    ok = memcmp(&((float *)out)[at], &want, 4) == 0;
                }
                }
                if (!ok && fails++ < 3)
                    fprintf(stderr, "%s m%zu n%zu k%zu out%d za%d zb%d bias%d: (%zu,%zu) wrong\n", v->name, m, n, k,
                            (int)c->out, c->za_kind, c->zb_kind, c->bias, i, j);
            }
        /* the padding between rows is never written */
        for (size_t i = 0; i < m; i++)
            for (size_t j = n * es; j < ldc * es; j++)
                if (out[i * ldc * es + j] != 0xAB && fails++ < 3)
                    fprintf(stderr, "%s: wrote past column n\n", v->name);
    }
    CHECK(fails == 0);
    free(a), free(b), free(zar), free(zbc), free(bias), free(scale), free(bias_f), free(rs), free(cs), free(out);
    oq_aligned_free(pa);
    oq_aligned_free(pb);
    return fails;
}

static void test_gemm(void)
{
    static const size_t shapes[][3] = {{1, 1, 1},  {1, 1, 3},   {2, 5, 4},   {3, 7, 5},    {1, 33, 17},
                                       {9, 1, 8},  {8, 32, 16}, {13, 45, 31}, {17, 70, 64}, {5, 100, 300},
                                       {1, 200, 9}, {33, 40, 0}, {16, 600, 600}, {1, 50, 28}, {1, 64, 777},
                                       /* AMX: 32-row tiles, k in blocks of 64 (exact, one past, many) */
                                       {40, 33, 64}, {70, 65, 129}, {64, 31, 1000}};
    size_t count;
    const oq_q8_gemm_variant *vs = oq_q8_gemm_variants(&count);
    for (size_t vi = 0; vi < count; vi++) {
        const oq_q8_gemm_variant *v = &vs[vi];
        if (v->isa > oq_isa_level()) {
            printf("  skip %s (CPU or ONNXQ_ISA)\n", v->name);
            continue;
        }
        int fails = 0;
        size_t cases = 0;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int variant = 0; variant < 8; variant++) {
                gcase c = {.m = shapes[s][0], .n = shapes[s][1], .k = shapes[s][2],
                           /* raw A rows (even variants, read in place by the c4 kernels) padded in 2 and 6 */
                           .lda = shapes[s][2] + (size_t)(variant & 1) * 7 + (size_t)(variant & 2) * 2,
                           .ldb = shapes[s][1] + (size_t)(variant & 2) * 3};
                bool sgn = v->flavour == OQ_Q8_S8U8;
                c.za = variant == 2 ? (sgn ? -128 : 255) : variant == 5 ? 0 : (sgn ? 5 : 128);
                c.zb = variant == 3 ? (sgn ? 255 : -128) : variant == 6 ? 0 : (sgn ? 128 : 3);
                c.za_kind = variant == 4 || variant == 7;
                c.zb_kind = variant == 1 || variant == 7;
                c.bias = variant % 3;
                c.out = (oq_q8_out)(variant % 4);
                c.scale_mode = variant % 3;
                c.a_packed = variant & 1;
                c.b_mode = (variant >> 2) & 1;
                fails += check_case(v, &c);
                cases++;
            }
        printf("  %-40s %zu cases, %d wrong\n", v->name, cases, fails);
    }
}

/* The byte transpose (pixel-major copies of NCHW planes) against a plain loop:
 * sizes around its 16 x 16 blocks, row strides past the width, with and without xor. */
static void test_transpose(void)
{
    static const size_t sizes[] = {1, 3, 15, 16, 17, 31, 32, 49, 64, 70};
    int bad = 0;
    for (size_t a = 0; a < sizeof sizes / sizeof sizes[0]; a++)
        for (size_t b = 0; b < sizeof sizes / sizeof sizes[0]; b++) {
            size_t rows = sizes[a], cols = sizes[b], ss = cols + (a % 3) * 5, ds = rows + (b % 2) * 3;
            uint8_t x = (a + b) % 2 ? 0x80 : 0;
            uint8_t *src = malloc(rows * ss), *dst = malloc(cols * ds);
            for (size_t i = 0; i < rows * ss; i++)
                src[i] = rnd8();
            memset(dst, 0x5A, cols * ds);
            oq_q8_transpose_u8(src, rows, cols, ss, dst, ds, x);
            for (size_t j = 0; j < cols; j++)
                for (size_t i = 0; i < ds; i++)
                    bad += dst[j * ds + i] != (i < rows ? (uint8_t)(src[i * ss + j] ^ x) : 0x5A);
            free(src), free(dst);
        }
    CHECK(bad == 0);
}

static void test_requantize_rule(void)
{
    oq_requant_range r = oq_requant_range_make(10, 0, 255);
    CHECK(oq_requantize(5, 0.5f, r) == 12);   /* 2.5 -> 2 (half to even) */
    CHECK(oq_requantize(7, 0.5f, r) == 14);   /* 3.5 -> 4 */
    CHECK(oq_requantize(-3, 0.5f, r) == 8);   /* -1.5 -> -2 */
    CHECK(oq_requantize(1 << 30, 1.0f, r) == 255);
    CHECK(oq_requantize(-(1 << 30), 1.0f, r) == 0);
    int32_t lo, hi;
    oq_requant_bounds(0, 0.1f, 20, 0.0f, INFINITY, &lo, &hi); /* fused Relu */
    CHECK(lo == 20 && hi == 255);
    oq_requant_bounds(1, 0.05f, 0, 0.0f, 6.0f, &lo, &hi); /* fused Relu6 */
    CHECK(lo == 0 && hi == 120);
}

static void test_im2col_dw(void)
{
    oq_q8_conv_geom g = {.channels = 3, .in = {1, 7, 6}, .out = {1, 4, 3}, .kernel = {1, 3, 2},
                         .stride = {1, 2, 2}, .dilation = {1, 1, 2}, .pad = {0, 1, 1}};
    uint8_t x[3 * 42];
    for (size_t i = 0; i < sizeof x; i++)
        x[i] = rnd8();
    size_t n = 12, k = 18, nr = 8, k4 = 20;
    uint8_t dst[2 * 8 * 20];
    int32_t cs[12];
    oq_q8_im2col_ctx ctx = {&g, x, 0x80, 77};
    oq_q8_im2col_pack(&ctx, 0, n, nr, dst, cs);
    int bad = 0;
    for (size_t j = 0; j < n; j++) {
        int32_t sum = 0;
        for (size_t p = 0; p < k4; p++) {
            uint8_t want = 0;
            if (p < k) {
                size_t ch = p / 6, ky = p % 6 / 2, kx = p % 2, oy = j / 3, ox = j % 3;
                long iy = (long)(oy * 2 + ky) - 1, ix = (long)(ox * 2 + kx * 2) - 1;
                want = iy >= 0 && iy < 7 && ix >= 0 && ix < 6 ? x[ch * 42 + (size_t)iy * 6 + (size_t)ix] ^ 0x80 : 77;
                sum += want;
            }
            bad += dst[(j / nr) * k4 * nr + (p / 4) * nr * 4 + (j % nr) * 4 + p % 4] != want;
        }
        bad += cs[j] != sum;
    }
    CHECK(bad == 0);

    /* depthwise: s8 input, u8 weights with a zero point, int32 out */
    g.channels = 1;
    int8_t xs[42];
    uint8_t w[6];
    for (size_t i = 0; i < 42; i++)
        xs[i] = (int8_t)rnd8();
    for (size_t i = 0; i < 6; i++)
        w[i] = rnd8();
    int32_t y[12];
    oq_q8_dw_params p = {.g = &g, .x_signed = true, .w_signed = false, .x_zp = -7, .w_zp = 200, .bias = 1000,
                         .out = OQ_Q8_OUT_I32};
    oq_q8_dwconv(&p, xs, w, y);
    bad = 0;
    for (size_t j = 0; j < 12; j++) {
        int64_t acc = 1000;
        for (size_t ky = 0; ky < 3; ky++)
            for (size_t kx = 0; kx < 2; kx++) {
                long iy = (long)(j / 3 * 2 + ky) - 1, ix = (long)(j % 3 * 2 + kx * 2) - 1;
                int64_t xv = iy >= 0 && iy < 7 && ix >= 0 && ix < 6 ? xs[iy * 6 + ix] : -7;
                acc += (xv + 7) * ((int64_t)w[ky * 2 + kx] - 200);
            }
        bad += y[j] != acc;
    }
    CHECK(bad == 0);
}

/* The fast im2col against its byte-by-byte reference over odd geometries:
 * 1x1 in place, 3x3 stride 1/2 with padding, dilation, 3-D, column ranges that
 * start mid-row and end mid-panel, every nr, with and without column sums. */
static void test_im2col_fast(void)
{
    static const struct {
        size_t c, in[3], k[3], s[3], d[3], p[3];
    } cases[] = {
        {5, {1, 9, 9}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}},
        {3, {1, 11, 13}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 1, 1}},
        {4, {1, 12, 12}, {1, 3, 3}, {1, 2, 2}, {1, 1, 1}, {0, 1, 1}},
        {3, {1, 15, 14}, {1, 7, 7}, {1, 2, 2}, {1, 1, 1}, {0, 3, 3}},
        {2, {1, 9, 9}, {1, 1, 1}, {1, 2, 2}, {1, 1, 1}, {0, 0, 0}},
        {3, {1, 10, 9}, {1, 3, 2}, {1, 1, 3}, {1, 2, 2}, {0, 2, 1}},
        {2, {4, 5, 6}, {2, 3, 3}, {1, 1, 2}, {2, 1, 1}, {1, 1, 1}},
        {1, {1, 40, 40}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 1, 1}},
        {7, {1, 3, 3}, {1, 3, 3}, {1, 1, 1}, {1, 1, 1}, {0, 2, 2}},
    };
    static const size_t nrs[] = {4, 8, 32};
    int bad = 0;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        oq_q8_conv_geom g = {.channels = cases[ci].c};
        size_t plane = 1, npix = 1;
        for (int i = 0; i < 3; i++) {
            g.in[i] = cases[ci].in[i];
            g.kernel[i] = cases[ci].k[i];
            g.stride[i] = cases[ci].s[i];
            g.dilation[i] = cases[ci].d[i];
            g.pad[i] = cases[ci].p[i];
            size_t ext = (g.kernel[i] - 1) * g.dilation[i] + 1;
            g.out[i] = (g.in[i] + 2 * g.pad[i] - ext) / g.stride[i] + 1;
            plane *= g.in[i];
            npix *= g.out[i];
        }
        size_t k = g.channels * g.kernel[0] * g.kernel[1] * g.kernel[2], k4 = (k + 3) / 4 * 4;
        uint8_t *x = malloc(g.channels * plane);
        for (size_t i = 0; i < g.channels * plane; i++)
            x[i] = rnd8();
        for (size_t ni = 0; ni < 3; ni++)
            for (size_t xr = 0; xr < 2; xr++) {
                size_t nr = nrs[ni], n0 = npix > 5 ? (ci * 3 + ni) % 5 : 0, nb = npix - n0;
                size_t bytes = (nb + nr - 1) / nr * nr * k4;
                uint8_t *want = malloc(bytes), *got = malloc(bytes);
                int32_t *ws = malloc(nb * 4), *gs = malloc(nb * 4);
                memset(got, 0xA5, bytes);
                oq_q8_im2col_ctx ctx = {&g, x, xr ? 0x80 : 0, (uint8_t)(ci * 29 + 3)};
                oq_q8_im2col_pack_reference(&ctx, n0, nb, nr, want, ws);
                oq_q8_im2col_pack(&ctx, n0, nb, nr, got, gs);
                bad += memcmp(want, got, bytes) != 0;
                bad += memcmp(ws, gs, nb * 4) != 0;
                memset(got, 0x5A, bytes);
                oq_q8_im2col_pack(&ctx, n0, nb, nr, got, NULL);
                bad += memcmp(want, got, bytes) != 0;
                if (bad)
                    printf("im2col case %zu nr %zu xor %zu differs\n", ci, nr, xr);
                free(want);
                free(got);
                free(ws);
                free(gs);
            }
        free(x);
    }
    CHECK(bad == 0);
}

/* The depthwise kernel sets of each ISA; dw_compare runs one of them (row
 * kernel only, with the pair kernel, with the plane kernel: each taken where
 * the geometry allows) against the reference's output want. */
static const struct {
    const char *name;
    oq_isa isa;
    OQ_Q8_DW_ROW_FUNCTION((*fn));
    OQ_Q8_DW_PAIR_FUNCTION((*pair));
    OQ_Q8_DW_PLANES_FUNCTION((*planes));
} rows[] = {{"scalar", OQ_ISA_PORTABLE, oq_q8_dw_row__scalar, oq_q8_dw_pair__scalar, NULL},
            {"avx2", OQ_ISA_AVX2, oq_q8_dw_row__avx2, oq_q8_dw_pair__avx2, NULL},
            {"avx512", OQ_ISA_AVX512, oq_q8_dw_row__avx512, oq_q8_dw_pair__avx512, NULL},
            {"avx512vnni", OQ_ISA_AVX512VNNI, oq_q8_dw_row__avx512, oq_q8_dw_pair__avx512, oq_q8_dw_planes__avx512vnni}};
enum { N_DW_KERNELS = sizeof rows / sizeof rows[0] };

static int dw_compare(size_t ri, const oq_q8_dw_params *p, const void *x, const void *w, const int32_t *want,
                      int32_t *got, size_t nout)
{
    static const char *const modes[] = {"rows", "pairs", "plane"};
    int bad = 0;
    for (int mode = 0; mode < 3; mode++) {
        if (mode == 2 && !rows[ri].planes)
            continue;
        memset(got, 0, nout * 4);
        oq_q8_dwconv_with(p, x, w, got, rows[ri].fn, mode >= 1 ? rows[ri].pair : NULL, mode == 2 ? rows[ri].planes : NULL);
        if (memcmp(want, got, nout * 4)) {
            const oq_q8_conv_geom *g = p->g;
            bad++;
            printf("depthwise %s %s differs: in %zux%zu k %zux%zu s %zu,%zu d %zu,%zu pad %zu,%zu out %d\n",
                   rows[ri].name, modes[mode], g->in[1], g->in[2], g->kernel[1], g->kernel[2], g->stride[1],
                   g->stride[2], g->dilation[1], g->dilation[2], g->pad[1], g->pad[2], (int)p->out);
        }
    }
    return bad;
}

/* The fast depthwise path with every row kernel the CPU runs against the
 * reference: strides, dilations, asymmetric kernels, rows wider than a chunk,
 * signed and unsigned data, every output type. */
static void test_dwconv_fast(void)
{
    static const struct {
        size_t in[2], k[2], s[2], d[2], p[2];
    } cases[] = {
        {{9, 11}, {3, 3}, {1, 1}, {1, 1}, {1, 1}},  {{12, 12}, {3, 3}, {2, 2}, {1, 1}, {1, 1}},
        {{7, 7}, {5, 5}, {1, 1}, {1, 1}, {2, 2}},   {{10, 13}, {3, 2}, {2, 3}, {2, 2}, {2, 1}},
        {{3, 700}, {1, 7}, {1, 1}, {1, 1}, {0, 3}}, {{4, 5}, {3, 3}, {1, 1}, {1, 1}, {0, 0}},
        {{2, 37}, {3, 3}, {1, 2}, {1, 1}, {2, 2}},  {{3, 5000}, {3, 3}, {1, 4}, {1, 1}, {1, 1}},
        {{9, 17}, {2, 4}, {2, 2}, {1, 1}, {1, 1}},  {{6, 40}, {3, 2}, {1, 1}, {3, 1}, {2, 0}},
    };
    int bad = 0;
    for (size_t ri = 0; ri < N_DW_KERNELS; ri++) {
        if (rows[ri].isa > oq_isa_level()) {
            printf("  skip depthwise row kernel %s (CPU or ONNXQ_ISA)\n", rows[ri].name);
            continue;
        }
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
            for (int o = 0; o < 4; o++) {
                oq_q8_conv_geom g = {.channels = 1, .in = {1, cases[ci].in[0], cases[ci].in[1]}, .out = {1, 1, 1},
                                     .kernel = {1, cases[ci].k[0], cases[ci].k[1]}, .stride = {1, cases[ci].s[0], cases[ci].s[1]},
                                     .dilation = {1, cases[ci].d[0], cases[ci].d[1]}, .pad = {0, cases[ci].p[0], cases[ci].p[1]}};
                for (int i = 1; i < 3; i++)
                    g.out[i] = (g.in[i] + 2 * g.pad[i] - (g.kernel[i] - 1) * g.dilation[i] - 1) / g.stride[i] + 1;
                size_t nin = g.in[1] * g.in[2], nout = g.out[1] * g.out[2], taps = g.kernel[1] * g.kernel[2];
                uint8_t *x = malloc(nin), w[64];
                for (size_t i = 0; i < nin; i++)
                    x[i] = rnd8();
                for (size_t i = 0; i < taps; i++)
                    w[i] = rnd8();
                oq_q8_dw_params p = {.g = &g, .x_signed = o & 1, .w_signed = !(o & 1), .x_zp = o & 1 ? -5 : 130,
                                     .w_zp = o & 1 ? 3 : 0, .bias = o * 1000 - 1500, .out = (oq_q8_out)o,
                                     .scale = 0.0007f, .range = oq_requant_range_make(o == 2 ? 0 : 128, o == 2 ? -128 : 0, o == 2 ? 127 : 255)};
                if (o == OQ_Q8_OUT_S8)
                    p.range = oq_requant_range_make(-3, -128, 127);
                int32_t *want = malloc(nout * 4), *got = malloc(nout * 4);
                memset(want, 0, nout * 4);
                memset(got, 0, nout * 4);
                oq_q8_dwconv_reference(&p, x, w, want);
                bad += dw_compare(ri, &p, x, w, want, got, nout);
                free(x);
                free(want);
                free(got);
            }
    }
    CHECK(bad == 0);
}

/* Every width 1..40 through the depthwise paths, each with a few geometries
 * drawn from a fixed list (kernels 1x1 to 5x8, strides 1 and 2, pads 0..3,
 * dilations), signed and unsigned data, zero points at the ends of their
 * range, and weights whose zero point leaves them outside s8 (so the plane
 * kernel declines). */
static void test_dwconv_sweep(void)
{
    static const size_t kern[][2] = {{3, 3}, {3, 3}, {1, 3}, {5, 5}, {3, 8}, {2, 4}, {1, 1}, {3, 6}, {4, 7}};
    int bad = 0;
    unsigned seed = 12345;
    for (size_t ri = 0; ri < N_DW_KERNELS; ri++) {
        if (rows[ri].isa > oq_isa_level())
            continue;
        for (size_t width = 1; width <= 40; width++)
            for (size_t trial = 0; trial < 6; trial++) {
                seed = seed * 1103515245u + 12345u;
                unsigned r = seed >> 8;
                size_t ki = (width + trial) % (sizeof kern / sizeof kern[0]);
                oq_q8_conv_geom g = {.channels = 1, .in = {1, 1 + r % 9, width}, .out = {1, 1, 1},
                                     .kernel = {1, kern[ki][0], kern[ki][1]},
                                     .stride = {1, 1 + (r >> 4) % 2, 1 + (trial + width) % 2},
                                     .dilation = {1, 1 + ((r >> 5) % 4 == 0), 1 + ((r >> 7) % 6 == 0)},
                                     .pad = {0, (r >> 9) % 3, (r >> 11) % 4}};
                if (trial == 0 && width % 7 == 0)
                    g.in[1] = 14 + width % 3;
                bool ok = true;
                for (int i = 1; i < 3; i++) {
                    size_t ext = (g.kernel[i] - 1) * g.dilation[i] + 1;
                    if (g.in[i] + 2 * g.pad[i] < ext) {
                        ok = false;
                        break;
                    }
                    g.out[i] = (g.in[i] + 2 * g.pad[i] - ext) / g.stride[i] + 1;
                }
                if (!ok)
                    continue;
                size_t nin = g.in[1] * g.in[2], nout = g.out[1] * g.out[2], taps = g.kernel[1] * g.kernel[2];
                uint8_t *x = malloc(nin), w[64];
                int32_t *want = malloc(nout * 4), *got = malloc(nout * 4);
                for (size_t i = 0; i < nin; i++)
                    x[i] = rnd8();
                if (width % 5 == 0) /* the ends of the range */
                    for (size_t i = 0; i < nin; i++)
                        x[i] = i % 3 ? 255 : 0;
                for (size_t i = 0; i < taps; i++)
                    w[i] = rnd8();
                int o = (int)((r >> 13) % 4), wmode = (int)((r >> 15) % 4);
                static const int32_t xzps[] = {0, 255, 7, 128, -128, 127, 0, -3};
                bool xs = (r >> 17) & 1;
                oq_q8_dw_params p = {.g = &g, .x_signed = xs, .w_signed = wmode == 0 || wmode == 3,
                                     .x_zp = xzps[(r >> 18) % 4 + (xs ? 4 : 0)],
                                     .w_zp = wmode == 1 ? 128 : wmode == 2 ? 3 : wmode == 3 ? -100 : 0,
                                     .bias = (int32_t)(r % 4001) - 2000, .out = (oq_q8_out)o, .scale = 0.0011f,
                                     .range = oq_requant_range_make(o == OQ_Q8_OUT_S8 ? -3 : 128, o == OQ_Q8_OUT_S8 ? -128 : 0,
                                                                    o == OQ_Q8_OUT_S8 ? 127 : 255)};
                memset(want, 0, nout * 4);
                oq_q8_dwconv_reference(&p, x, w, want);
                bad += dw_compare(ri, &p, x, w, want, got, nout);
                free(x);
                free(want);
                free(got);
            }
    }
    CHECK(bad == 0);
}

/* Several channels in one call, each with its own bias, scale and weight zero
 * point (one whose weights leave s8, so the plane kernel stops there and picks
 * up after it), against the reference channel by channel. */
static void test_dwconv_channels(void)
{
    enum { C = 7 };
    /* in, stride, pad; odd entries with a zero point 0 (the flat and wide strips' loads) */
    static const size_t geo[][6] = {{7, 7, 1, 1, 1, 1},  {7, 7, 1, 1, 1, 1},  {14, 13, 2, 2, 1, 1},
                                    {5, 30, 1, 2, 0, 2}, {4, 70, 1, 1, 1, 1}, {5, 80, 2, 2, 1, 1}};
    int bad = 0;
    for (size_t ri = 0; ri < N_DW_KERNELS; ri++) {
        if (rows[ri].isa > oq_isa_level())
            continue;
        for (size_t gi = 0; gi < sizeof geo / sizeof geo[0]; gi++)
            for (int o = 0; o < 4; o++)
                for (int arrays = 0; arrays < 2; arrays++) {
                    oq_q8_conv_geom g = {.channels = 1, .in = {1, geo[gi][0], geo[gi][1]}, .out = {1, 1, 1},
                                         .kernel = {1, 3, 3}, .stride = {1, geo[gi][2], geo[gi][3]},
                                         .dilation = {1, 1, 1}, .pad = {0, geo[gi][4], geo[gi][5]}};
                    for (int i = 1; i < 3; i++)
                        g.out[i] = (g.in[i] + 2 * g.pad[i] - 3) / g.stride[i] + 1;
                    size_t nin = g.in[1] * g.in[2], nout = g.out[1] * g.out[2];
                    uint8_t *x = malloc(C * nin), w[C * 9];
                    int32_t *want = calloc(C * nout, 4), *got = malloc(C * nout * 4), bias[C], wzp[C];
                    float scale[C];
                    for (size_t i = 0; i < C * nin; i++)
                        x[i] = rnd8();
                    for (size_t i = 0; i < C * 9; i++)
                        w[i] = rnd8();
                    for (size_t c = 0; c < C; c++) {
                        bias[c] = (int32_t)(c * 777) - 2000;
                        wzp[c] = c == 3 ? 3 : 128; /* u8 weights: channel 3 leaves s8 */
                        scale[c] = 0.0005f + 0.0001f * (float)c;
                    }
                    scale[5] = 4e5f; /* acc * scale past the int32 range both ways */
                    w[3 * 9 + 4] = 250;
                    oq_q8_dw_params p = {.g = &g, .x_signed = o & 1, .w_signed = false,
                                         .x_zp = gi % 2 ? 0 : o & 1 ? -9 : 140,
                                         .w_zp = 128, .bias = 55, .out = (oq_q8_out)o, .scale = 0.0008f,
                                         .range = oq_requant_range_make(o == 2 ? -3 : 128, o == 2 ? -128 : 0,
                                                                        o == 2 ? 127 : 255)};
                    size_t esize = o == OQ_Q8_OUT_U8 || o == OQ_Q8_OUT_S8 ? 1 : 4;
                    for (size_t c = 0; c < C; c++) {
                        oq_q8_dw_params q = p;
                        if (arrays) {
                            q.bias = bias[c];
                            q.w_zp = wzp[c];
                            q.scale = scale[c];
                        }
                        oq_q8_dwconv_reference(&q, x + c * nin, w + c * 9, (uint8_t *)want + c * nout * esize);
                    }
                    oq_q8_dw_channels ch = {C, arrays ? bias : NULL, arrays ? wzp : NULL, arrays ? scale : NULL};
                    memset(got, 0, C * nout * 4);
                    oq_q8_dwconv_channels_with(&p, &ch, x, w, got, rows[ri].fn, rows[ri].pair, rows[ri].planes);
                    if (memcmp(want, got, C * nout * 4)) {
                        bad++;
                        printf("depthwise channels %s geometry %zu out %d arrays %d differs\n", rows[ri].name, gi, o,
                               arrays);
                    }
                    free(x);
                    free(want);
                    free(got);
                }
    }
    CHECK(bad == 0);
}

/* Rows wide enough for the 32- and 64-output strips of the 3x3 kernels (and
 * their narrow remainders): widths around the strip sizes up to 130, strides
 * 1 and 2 in x and y, pads 0..2, u8 and s8 data and outputs, zero points 0
 * and not. */
static void test_dwconv_wide(void)
{
    static const size_t widths[] = {33, 34, 35, 36, 37, 38, 39, 40, 47, 48, 49, 56, 63, 64, 65,
                                    66, 67, 80, 95, 96, 97, 98, 112, 113, 127, 128, 129, 130};
    int bad = 0;
    unsigned seed = 777;
    for (size_t ri = 0; ri < N_DW_KERNELS; ri++) {
        if (rows[ri].isa > oq_isa_level())
            continue;
        for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++)
            for (size_t v = 0; v < 8; v++) {
                seed = seed * 1103515245u + 12345u;
                unsigned r = seed >> 8;
                oq_q8_conv_geom g = {.channels = 1, .in = {1, 1 + (v * 3 + wi) % 7, widths[wi]}, .out = {1, 1, 1},
                                     .kernel = {1, 3, 3}, .stride = {1, 1 + (v >> 1) % 2, 1 + v % 2},
                                     .dilation = {1, 1, 1}, .pad = {0, r % 3, (r >> 2) % 3}};
                if (g.in[1] + 2 * g.pad[1] < 3)
                    g.in[1] = 3;
                for (int i = 1; i < 3; i++)
                    g.out[i] = (g.in[i] + 2 * g.pad[i] - 3) / g.stride[i] + 1;
                size_t nin = g.in[1] * g.in[2], nout = g.out[1] * g.out[2];
                uint8_t *x = malloc(nin), w[9];
                int32_t *want = calloc(nout, 4), *got = malloc(nout * 4);
                for (size_t i = 0; i < nin; i++)
                    x[i] = rnd8();
                for (size_t i = 0; i < 9; i++)
                    w[i] = rnd8();
                bool xs = (r >> 4) & 1, zero = (r >> 5) & 1;
                oq_q8_out o = (r >> 6) & 1 ? OQ_Q8_OUT_S8 : OQ_Q8_OUT_U8;
                oq_q8_dw_params p = {.g = &g, .x_signed = xs, .w_signed = true,
                                     .x_zp = zero ? (xs ? -128 : 0) : (xs ? 5 : 131), .bias = (int32_t)(r % 3001) - 1500,
                                     .out = o, .scale = 0.0013f,
                                     .range = o == OQ_Q8_OUT_S8 ? oq_requant_range_make(-2, -128, 127)
                                                                : oq_requant_range_make(120, 0, 255)};
                if (zero && xs && (r >> 7) & 1)
                    p.x_zp = 0; /* s8 zero point 0: the fill, as loaded, is 0 too */
                oq_q8_dwconv_reference(&p, x, w, want);
                bad += dw_compare(ri, &p, x, w, want, got, nout);
                free(x);
                free(want);
                free(got);
            }
    }
    CHECK(bad == 0);
}

/* Planes of up to about 64 outputs at stride 1 with "same" padding, which the
 * AVX512-VNNI kernel reads as one long row: every height and width with
 * h*w <= 72, kernels 3x3, 5x3, 7x1, 1x3 and 1x1, zero points whose fill is 0
 * and not, signed and unsigned, every output type. */
static void test_dwconv_flat(void)
{
    static const size_t kern[][2] = {{3, 3}, {5, 3}, {7, 1}, {1, 3}, {1, 1}, {3, 3}};
    int bad = 0;
    unsigned seed = 4242;
    for (size_t ri = 0; ri < N_DW_KERNELS; ri++) {
        if (rows[ri].isa > oq_isa_level())
            continue;
        for (size_t h = 1; h <= 9; h++)
            for (size_t wd = 1; wd * h <= 72; wd++) {
                seed = seed * 1103515245u + 12345u;
                unsigned r = seed >> 8;
                size_t ki = (h + wd) % (sizeof kern / sizeof kern[0]);
                oq_q8_conv_geom g = {.channels = 1, .in = {1, h, wd}, .out = {1, h, wd},
                                     .kernel = {1, kern[ki][0], kern[ki][1]}, .stride = {1, 1, 1},
                                     .dilation = {1, 1, 1}, .pad = {0, (kern[ki][0] - 1) / 2, (kern[ki][1] - 1) / 2}};
                size_t n = h * wd, taps = kern[ki][0] * kern[ki][1];
                uint8_t *x = malloc(n), w[64];
                int32_t *want = calloc(n, 4), *got = malloc(n * 4);
                for (size_t i = 0; i < n; i++)
                    x[i] = rnd8();
                for (size_t i = 0; i < taps; i++)
                    w[i] = rnd8();
                bool xs = r & 1;
                int o = (int)((r >> 1) % 4);
                if ((r >> 3) % 4) /* mostly u8/s8 out, which the flat path takes */
                    o = (r >> 5) & 1 ? OQ_Q8_OUT_S8 : OQ_Q8_OUT_U8;
                oq_q8_dw_params p = {.g = &g, .x_signed = xs, .w_signed = true,
                                     .x_zp = (r >> 6) % 3 ? 0 : (xs ? -128 : 9), .bias = (int32_t)(r % 2001) - 1000,
                                     .out = (oq_q8_out)o, .scale = 0.0021f,
                                     .range = o == OQ_Q8_OUT_S8 ? oq_requant_range_make(-5, -128, 127)
                                                                : oq_requant_range_make(100, 0, 255)};
                oq_q8_dwconv_reference(&p, x, w, want);
                bad += dw_compare(ri, &p, x, w, want, got, n);
                free(x);
                free(want);
                free(got);
            }
    }
    CHECK(bad == 0);
}

/* The channels-last depthwise kernels (scalar, AVX-512, the VNNI 3-wide one)
 * against the planar reference, channel by channel: channel counts around 16 and
 * 32 (the vector widths and their tails), 3x3 at strides 1 and 2 with pads 0..2
 * (asymmetric too), dilation 2, 5x5 and 3x1 / 1x3, u8 and s8 input and output,
 * weights whose w - w_zp fit in int8 (the VNNI form) and that do not. */
static void test_dwconv_nhwc(void)
{
    static const size_t chans[] = {1, 7, 16, 17, 32, 33, 40, 69};
    /* kh, kw, stride y, stride x, dilation, pad top, left, bottom, right, in h, in w */
    static const size_t geo[][11] = {{3, 3, 1, 1, 1, 1, 1, 1, 1, 7, 9},  {3, 3, 2, 2, 1, 1, 1, 1, 1, 9, 8},
                                     {3, 3, 1, 2, 1, 0, 0, 0, 0, 6, 11}, {3, 3, 2, 1, 1, 0, 1, 1, 0, 7, 7},
                                     {3, 3, 1, 1, 2, 2, 2, 2, 2, 8, 6},  {5, 5, 1, 1, 1, 2, 2, 2, 2, 6, 7},
                                     {3, 1, 1, 1, 1, 1, 0, 1, 0, 5, 5},  {1, 3, 2, 1, 1, 0, 1, 0, 1, 5, 6},
                                     {2, 3, 1, 1, 1, 0, 1, 1, 1, 4, 4}};
    int bad = 0, k3_runs = 0;
    for (size_t ci = 0; ci < sizeof chans / sizeof chans[0]; ci++)
        for (size_t gi = 0; gi < sizeof geo / sizeof geo[0]; gi++)
            for (int mode = 0; mode < 4; mode++) {
                /* mode bit 0: s8 input and output; bit 1: u8 weights with zero points far from 128 */
                const size_t C = chans[ci], kh = geo[gi][0], kw = geo[gi][1], taps = kh * kw;
                oq_q8_conv_geom g = {.channels = C, .in = {1, geo[gi][9], geo[gi][10]}, .out = {1, 1, 1},
                                     .kernel = {1, kh, kw}, .stride = {1, geo[gi][2], geo[gi][3]},
                                     .dilation = {1, geo[gi][4], geo[gi][4]}, .pad = {0, geo[gi][5], geo[gi][6]}};
                for (int i = 1; i < 3; i++)
                    g.out[i] = (g.in[i] + geo[gi][5 + i - 1] + geo[gi][7 + i - 1] - (g.kernel[i] - 1) * g.dilation[i] -
                                1) / g.stride[i] + 1;
                const bool xs = mode & 1, ws8 = !(mode & 2);
                size_t nin = g.in[1] * g.in[2], nout = g.out[1] * g.out[2];
                uint8_t *x = malloc(C * nin), *plane = malloc(nin), *w = malloc(C * taps), *want = malloc(C * nout);
                uint8_t *got = malloc(C * nout + 64), *pad = malloc(C + 1);
                int32_t *bias = malloc(C * 4), *wzp = malloc(C * 4), *w2 = malloc(((taps + 1) / 2) * C * 4);
                int32_t *wsum = malloc(C * 4), *w3 = malloc(kh * C * 4), *beff = malloc(C * 4);
                float *scale = malloc(C * sizeof *scale);
                for (size_t i = 0; i < C * nin; i++)
                    x[i] = rnd8();
                x[0] = xs ? 0x80 : 0xFF;
                for (size_t c = 0; c < C; c++) {
                    wzp[c] = ws8 ? 0 : (c % 3 == 0 ? 128 : c % 3 == 1 ? 3 : 250);
                    bias[c] = (int32_t)(c * 577) - 9000;
                    scale[c] = 0.0004f + 0.00005f * (float)(c % 11);
                    for (size_t t = 0; t < taps; t++)
                        w[c * taps + t] = ws8 ? (uint8_t)(rnd8() | (c == 0 && t == 0 ? 0x80 : 0)) : rnd8();
                }
                if (!ws8) /* channels with zero point 128 only: the VNNI form applies */
                    for (size_t c = 0; c < C; c++)
                        wzp[c] = 128;
                if (mode == 2 && C > 1)
                    wzp[1] = 3; /* one channel leaves int8: no VNNI form */
                int32_t x_zp = xs ? -7 : 131;
                oq_requant_range range = oq_requant_range_make(xs ? -5 : 120, xs ? -128 : 0, xs ? 127 : 255);
                oq_q8_out out = xs ? OQ_Q8_OUT_S8 : OQ_Q8_OUT_U8;
                oq_q8_conv_geom g1 = g;
                g1.channels = 1;
                for (size_t c = 0; c < C; c++) {
                    for (size_t i = 0; i < nin; i++)
                        plane[i] = x[i * C + c];
                    oq_q8_dw_params p = {.g = &g1, .x_signed = xs, .w_signed = ws8, .x_zp = x_zp, .w_zp = wzp[c],
                                         .bias = bias[c], .out = out, .scale = scale[c], .range = range};
                    uint8_t *yc = malloc(nout);
                    oq_q8_dwconv_reference(&p, plane, w + c * taps, yc);
                    for (size_t i = 0; i < nout; i++)
                        want[i * C + c] = yc[i];
                    free(yc);
                }
                bool have_w3 = oq_q8_dw_nhwc_pack(C, kh, kw, w, ws8, wzp, 0, w2, wsum, w3);
                for (size_t c = 0; c < C; c++)
                    beff[c] = (int32_t)((uint32_t)bias[c] - (uint32_t)x_zp * (uint32_t)wsum[c]);
                memset(pad, (uint8_t)x_zp, C);
                oq_q8_dw_nhwc d = {&g, xs, w2, have_w3 ? w3 : NULL, beff, wsum, scale, out, range, pad};
                size_t wsz = (kh + 1) * g.out[2] * ((C + 15) / 16 * 16) * 4 + 64;
                void *ws = malloc(wsz);
                for (int v = 0; v < 3; v++) {
                    if ((v == 1 && oq_isa_level() < OQ_ISA_AVX512) ||
                        (v == 2 && (oq_isa_level() < OQ_ISA_AVX512VNNI || !have_w3 || kw != 3 || kh > 3)))
                        continue;
                    memset(got, 0xA5, C * nout);
                    /* two calls: rows [0, 1) and [1, out), as the threads split them */
                    for (int part = 0; part < 2; part++) {
                        size_t r0 = part ? 1 : 0, r1 = part ? g.out[1] : 1;
                        if (v == 0)
                            oq_q8_dw_nhwc__scalar(&d, x, got, r0, r1, ws);
                        else if (v == 1)
                            oq_q8_dw_nhwc__avx512(&d, x, got, r0, r1, ws);
                        else
                            oq_q8_dw_nhwc_k3__avx512vnni(&d, x, got, r0, r1, ws);
                    }
                    k3_runs += v == 2;
                    if (memcmp(want, got, C * nout)) {
                        bad++;
                        printf("nhwc depthwise variant %d C %zu geometry %zu mode %d differs\n", v, C, gi, mode);
                    }
                }
                free(ws);
                free(x), free(plane), free(w), free(want), free(got), free(pad);
                free(bias), free(wzp), free(w2), free(wsum), free(w3), free(beff), free(scale);
            }
    CHECK(bad == 0);
    CHECK(oq_isa_level() < OQ_ISA_AVX512VNNI || k3_runs > 0);
}

int main(void)
{
    test_transpose();
    printf("ISA level %s\n", oq_isa_name(oq_isa_level()));
    test_requantize_rule();
    test_gemm();
    test_im2col_dw();
    test_im2col_fast();
    test_dwconv_fast();
    test_dwconv_sweep();
    test_dwconv_channels();
    test_dwconv_wide();
    test_dwconv_flat();
    test_dwconv_nhwc();
    return test_summary("test_kernels_q8");
}
