/* Benchmark of the f32 GEMM (shapes from shapes.txt: "name M N K weight") at 1
 * and 2 threads: GFLOPS and % of the measured fp32 FMA peak, next to OpenBLAS
 * sgemm when libopenblas.so.0 can be loaded (dlopen: never linked into onnxq).
 * Then the whole Conv operator on conv-shapes.txt.
 * Usage: bench_f32_gemm [shapes.txt] [variant-name] [conv-shapes.txt] */
#include "kernels/f32-conv/conv.h"
#include "kernels/f32-gemm/gemm.h"
#include "ops/op.h"

#include <dlfcn.h>
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef BENCH_SHAPES
#define BENCH_SHAPES "bench/kernels-f32/shapes.txt"
#endif
#ifndef BENCH_CONV_SHAPES
#define BENCH_CONV_SHAPES "bench/kernels-f32/conv-shapes.txt"
#endif

/* FMAs per second of one core: 16 independent chains (named registers, so nothing
 * spills) hide the FMA latency on both ports. */
#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
__attribute__((target("avx512f,fma"))) static double peak_fmas_avx512(void)
{
#define DECL(i) __m512 r##i = _mm512_set1_ps((float)i);
#define STEP(i) r##i = _mm512_fmadd_ps(r##i, a, b);
#define SUM(i) s = _mm512_add_ps(s, r##i);
    CHAINS(DECL)
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    const long iters = 10 * 1000 * 1000;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = oq_now();
        for (long it = 0; it < iters; it++) {
            CHAINS(STEP)
        }
        double r = (double)iters * 16 * 16 / (oq_now() - t0);
        best = r > best ? r : best;
    }
    __m512 s = _mm512_setzero_ps();
    CHAINS(SUM)
    float sink[16];
    _mm512_storeu_ps(sink, s);
    if (sink[0] == 12345.0f)
        printf(" ");
    return best;
#undef DECL
#undef STEP
#undef SUM
}

__attribute__((target("avx2,fma"))) static double peak_fmas_avx2(void)
{
#define DECL(i) __m256 r##i = _mm256_set1_ps((float)i);
#define STEP(i) r##i = _mm256_fmadd_ps(r##i, a, b);
#define SUM(i) s = _mm256_add_ps(s, r##i);
    CHAINS(DECL)
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    const long iters = 10 * 1000 * 1000;
    double t0 = oq_now();
    for (long it = 0; it < iters; it++) {
        CHAINS(STEP)
    }
    double r = (double)iters * 16 * 8 / (oq_now() - t0);
    __m256 s = _mm256_setzero_ps();
    CHAINS(SUM)
    float sink[8];
    _mm256_storeu_ps(sink, s);
    if (sink[0] == 12345.0f)
        printf(" ");
    return r;
#undef DECL
#undef STEP
#undef SUM
}

typedef void (*sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                         const float *b, int ldb, float beta, float *c, int ldc);
typedef void (*set_threads_fn)(int);

typedef struct shape {
    char name[64];
    size_t m, n, k;
    char weight;
} shape;

typedef struct ctx {
    const oq_f32_gemm_variant *v;
    oq_f32_gemm_args g;
    void *ws;
    oq_threadpool *tp;
    sgemm_fn sgemm;
    const float *a, *b;
    float *c;
} ctx;

static void run_oq(ctx *x) { oq_f32_gemm_run(x->v, &x->g, x->ws, x->tp); }
static void run_blas(ctx *x)
{
    x->sgemm(101 /* row major */, 111, 111, (int)x->g.m, (int)x->g.n, (int)x->g.k, 1.0f, x->a, (int)x->g.k, x->b,
             (int)x->g.n, 0.0f, x->c, (int)x->g.n);
}

/* Seconds per call: best of 5 batches of ~40 ms. */
static double time_it(void (*fn)(ctx *), ctx *x)
{
    fn(x);
    double t0 = oq_now();
    int reps = 0;
    while (oq_now() - t0 < 0.02 || reps < 2) {
        fn(x);
        reps++;
    }
    double per = (oq_now() - t0) / reps;
    int n = (int)(0.04 / per) + 1;
    double best = 1e30;
    for (int b = 0; b < 5; b++) {
        t0 = oq_now();
        for (int i = 0; i < n; i++)
            fn(x);
        double t = (oq_now() - t0) / n;
        if (t < best)
            best = t;
    }
    return best;
}

/* ---- whole Conv operator (packing/im2col/depthwise included) ---- */
typedef struct conv_ctx {
    oq_op_node n;
    const oq_tensor *in[3];
    oq_tensor *out;
} conv_ctx;

static void run_conv(ctx *x)
{
    conv_ctx *c = (conv_ctx *)x->ws;
    oq_op_conv.run(&c->n, c->in, &c->out);
}

static void bench_convs(const char *path, double peak1, oq_threadpool **tps)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    printf("\n%-18s %4s %4s %4s %4s %2s %2s %4s %2s | %8s %6s | %8s\n", "conv", "C", "H", "W", "Cout", "k", "s", "grp",
           "th", "GFLOPS", "%peak", "ms");
    char line[256];
    while (fgets(line, sizeof line, f)) {
        char name[64];
        long long C, H, W, CO, K, S, P, G;
        if (line[0] == '#' ||
            sscanf(line, "%63s %lld %lld %lld %lld %lld %lld %lld %lld", name, &C, &H, &W, &CO, &K, &S, &P, &G) != 9)
            continue;
        int64_t xd[4] = {1, C, H, W}, wd[4] = {CO, C / G, K, K}, bd[1] = {CO};
        oq_tensor *x = NULL, *w = NULL, *b = NULL, *y = NULL;
        oq_tensor_create(OQ_FLOAT, 4, xd, &x);
        oq_tensor_create(OQ_FLOAT, 4, wd, &w);
        oq_tensor_create(OQ_FLOAT, 1, bd, &b);
        oq_tensor_create(OQ_FLOAT, 0, NULL, &y);
        for (int64_t i = 0; i < oq_tensor_numel(x); i++)
            ((float *)x->data)[i] = (float)(i % 11) * 0.1f;
        for (int64_t i = 0; i < oq_tensor_numel(w); i++)
            ((float *)w->data)[i] = (float)(i % 5) * 0.1f - 0.2f;
        int64_t ks[2] = {K, K}, st[2] = {S, S}, pads[4] = {P, P, P, P};
        oq_attr attrs[4];
        memset(attrs, 0, sizeof attrs);
        attrs[0] = (oq_attr){.name = "kernel_shape", .type = OQ_ATTR_INTS, .ints = ks, .n_ints = 2};
        attrs[1] = (oq_attr){.name = "strides", .type = OQ_ATTR_INTS, .ints = st, .n_ints = 2};
        attrs[2] = (oq_attr){.name = "pads", .type = OQ_ATTR_INTS, .ints = pads, .n_ints = 4};
        attrs[3] = (oq_attr){.name = "group", .type = OQ_ATTR_INT, .i = G};
        char *ins[3] = {"x", "w", "b"}, *outs[1] = {"y"};
        oq_node node = {.name = name, .op_type = "Conv", .domain = "", .inputs = ins, .n_inputs = 3,
                        .outputs = outs, .n_outputs = 1, .attrs = attrs, .n_attrs = 4};
        for (int th = 1; th <= 2; th++) {
            conv_ctx c;
            memset(&c, 0, sizeof c);
            const oq_tensor *consts[3] = {NULL, w, b};
            c.n = (oq_op_node){&node, name, 17, 3, 1, consts, NULL, tps[th - 1], NULL, 0};
            c.in[0] = x, c.in[1] = w, c.in[2] = b;
            c.out = y;
            if (oq_op_conv.prepare(&c.n) != OQ_OK || oq_op_conv.infer(&c.n, c.in, &c.out) != OQ_OK ||
                oq_tensor_alloc(y, OQ_FLOAT, y->ndim, y->dims) != OQ_OK) {
                printf("%s: %s\n", name, oq_last_error());
                break;
            }
            ctx cx;
            memset(&cx, 0, sizeof cx);
            cx.ws = &c;
            double t = time_it(run_conv, &cx);
            double flop = 2.0 * (double)oq_tensor_numel(y) * (double)(C / G) * (double)(K * K);
            printf("%-18s %4lld %4lld %4lld %4lld %2lld %2lld %4lld %2d | %8.1f %5.1f%% | %8.3f\n", name, C, H, W, CO,
                   K, S, G, th, flop / t / 1e9, 100 * flop / t / 1e9 / (peak1 * th), t * 1e3);
            oq_op_conv.destroy(c.n.state);
        }
        oq_tensor_destroy(x), oq_tensor_destroy(w), oq_tensor_destroy(b), oq_tensor_destroy(y);
    }
    fclose(f);
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : BENCH_SHAPES;
    const oq_f32_gemm_variant *v = oq_f32_gemm_default();
    if (argc > 2) {
        size_t nv;
        const oq_f32_gemm_variant *all = oq_f32_gemm_variants(&nv);
        for (size_t i = 0; i < nv; i++)
            if (strstr(all[i].name, argv[2]))
                v = &all[i];
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return 1;
    }
    shape shapes[128];
    size_t ns = 0;
    char line[256];
    while (ns < 128 && fgets(line, sizeof line, f)) {
        shape s;
        if (line[0] == '#' || sscanf(line, "%63s %zu %zu %zu %c", s.name, &s.m, &s.n, &s.k, &s.weight) != 5)
            continue;
        shapes[ns++] = s;
    }
    fclose(f);

    const oq_cpu_info *cpu = oq_cpu();
    double fmas = cpu->avx512f && v->isa >= OQ_ISA_AVX512 ? peak_fmas_avx512()
                                                          : (cpu->avx2 && cpu->fma ? peak_fmas_avx2() : 1e9);
    double peak1 = 2 * fmas / 1e9;
    printf("variant %s, measured fp32 peak %.1f GFLOPS/core (%.1f FMA lanes/ns)\n", v->name, peak1, fmas / 1e9);

    void *blas = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    sgemm_fn sgemm = blas ? (sgemm_fn)dlsym(blas, "cblas_sgemm") : NULL;
    set_threads_fn set_threads = blas ? (set_threads_fn)dlsym(blas, "openblas_set_num_threads") : NULL;
    if (!sgemm)
        printf("(OpenBLAS not found: libopenblas.so.0)\n");

    printf("%-18s %5s %5s %5s %2s | %8s %6s | %8s %6s | %9s %9s\n", "shape", "M", "N", "K", "th", "GFLOPS", "%peak",
           "packedW", "%peak", "openblas", "%peak");
    oq_threadpool *tps[2] = {NULL, NULL};
    oq_threadpool_create(1, &tps[0]);
    oq_threadpool_create(2, &tps[1]);
    for (size_t si = 0; si < ns; si++) {
        const shape *s = &shapes[si];
        float *a = oq_aligned_alloc(s->m * s->k * sizeof(float) + 64);
        float *b = oq_aligned_alloc(s->k * s->n * sizeof(float) + 64);
        float *c = oq_aligned_alloc(s->m * s->n * sizeof(float) + 64);
        float *pw = oq_aligned_alloc(
            (s->weight == 'A' ? oq_f32_gemm_packed_a_size(v, s->m, s->k) : oq_f32_gemm_packed_b_size(v, s->k, s->n)) *
                sizeof(float) +
            64);
        for (size_t i = 0; i < s->m * s->k; i++)
            a[i] = (float)(i % 13) * 0.1f - 0.6f;
        for (size_t i = 0; i < s->k * s->n; i++)
            b[i] = (float)(i % 7) * 0.1f - 0.3f;
        for (int th = 1; th <= 2; th++) {
            ctx x = {v, oq_f32_gemm_args_init(s->m, s->n, s->k), NULL, tps[th - 1], sgemm, a, b, c};
            x.g.a.data = a;
            x.g.a.rs = s->k;
            x.g.a.cs = 1;
            x.g.b.data = b;
            x.g.b.rs = s->n;
            x.g.b.cs = 1;
            x.g.c = c;
            x.ws = oq_aligned_alloc(oq_f32_gemm_workspace_size(v, &x.g, (size_t)th));
            double flop = 2.0 * (double)s->m * (double)s->n * (double)s->k;
            double peak = peak1 * th;
            double t_raw = time_it(run_oq, &x);
            double t_packed = 0;
            if (s->weight == 'A' || s->weight == 'B') {
                ctx y = x;
                if (s->weight == 'A') {
                    oq_f32_gemm_pack_a(v, s->m, s->k, a, s->k, 1, pw);
                    y.g.a.data = NULL;
                    y.g.a.packed = pw;
                } else {
                    oq_f32_gemm_pack_b(v, s->k, s->n, b, s->n, 1, pw);
                    y.g.b.data = NULL;
                    y.g.b.packed = pw;
                }
                t_packed = time_it(run_oq, &y);
            }
            double t_blas = 0;
            if (sgemm) {
                if (set_threads)
                    set_threads(th);
                t_blas = time_it(run_blas, &x);
            }
            printf("%-18s %5zu %5zu %5zu %2d | %8.1f %5.1f%% |", s->name, s->m, s->n, s->k, th, flop / t_raw / 1e9,
                   100 * flop / t_raw / 1e9 / peak);
            if (t_packed > 0)
                printf(" %8.1f %5.1f%% |", flop / t_packed / 1e9, 100 * flop / t_packed / 1e9 / peak);
            else
                printf(" %8s %6s |", "-", "");
            if (t_blas > 0)
                printf(" %9.1f %5.1f%%\n", flop / t_blas / 1e9, 100 * flop / t_blas / 1e9 / peak);
            else
                printf(" %9s\n", "-");
            oq_aligned_free(x.ws);
        }
        oq_aligned_free(a), oq_aligned_free(b), oq_aligned_free(c), oq_aligned_free(pw);
    }
    bench_convs(argc > 3 ? argv[3] : BENCH_CONV_SHAPES, peak1, tps);
    oq_threadpool_destroy(tps[0]);
    oq_threadpool_destroy(tps[1]);
    return 0;
}
