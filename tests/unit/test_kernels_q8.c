/* Kernel tests of the q8 GEMM family: every variant this CPU runs (up to the
 * ONNXQ_ISA cap) against a naive int64 computation of the same product,
 * int32 results bit-exact and requantized outputs identical, over odd shapes
 * (k < 4, k not a multiple of the tile, m = 1, n = 1, strided rows), extreme
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
                                       {1, 200, 9}, {33, 40, 0}, {16, 600, 600}};
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
                           .lda = shapes[s][2] + (size_t)(variant & 1) * 7, .ldb = shapes[s][1] + (size_t)(variant & 2) * 3};
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

int main(void)
{
    printf("ISA level %s\n", oq_isa_name(oq_isa_level()));
    test_requantize_rule();
    test_gemm();
    test_im2col_dw();
    return test_summary("test_kernels_q8");
}
