/* Benchmark of the q8 u8s8 GEMM (shapes from shapes.txt: "name M N K") on one
 * thread: GOPS and % of the measured VNNI peak (a dependent-free vpdpbusd loop),
 * next to oneDNN's dnnl_gemm_u8s8s32 on the same shapes in the same run when the
 * bench was built with oneDNN. onnxq runs as MatMulInteger does: A raw u8 with a
 * zero point (packed per call, timed), B s8 packed once, int32 output.
 * Times are this thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so slices the
 * scheduler gives other processes on a shared machine do not count (cache
 * pollution still does); BENCH_WALL=1 in the environment times wall clock.
 * Usage: bench_q8_gemm [shapes.txt] [min-seconds-per-measure] */
#include "kernels/q8/q8.h"

#include <dlfcn.h>
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef BENCH_HAVE_DNNL
#include <dnnl.h>
#endif
#ifndef BENCH_SHAPES
#define BENCH_SHAPES "bench/kernels-q8/shapes.txt"
#endif

static int wall_clock;
static double bench_now(void)
{
    if (wall_clock)
        return oq_now();
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* int8 MACs per second of one core: 16 independent vpdpbusd chains. */
#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static double peak_macs_vnni(void)
{
#define DECL(i) __m512i r##i = _mm512_set1_epi32(i);
#define STEP(i) r##i = _mm512_dpbusd_epi32(r##i, a, b);
#define SUM(i) s = _mm512_add_epi32(s, r##i);
    CHAINS(DECL)
    const __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
    const long iters = 5 * 1000 * 1000;
    double best = 0;
    for (int rep = 0; rep < 12; rep++) { /* short reps, the best: a shared machine interrupts long ones */
        double t0 = bench_now();
        for (long it = 0; it < iters; it++) {
            CHAINS(STEP)
            __asm__ volatile("" ::: "memory");
        }
        double r = (double)iters * 16 * 64 / (bench_now() - t0);
        best = r > best ? r : best;
    }
    __m512i s = _mm512_setzero_si512();
    CHAINS(SUM)
    int sink[16];
    _mm512_storeu_si512(sink, s);
    if (sink[0] == 12345)
        printf(" ");
    return best;
#undef DECL
#undef STEP
#undef SUM
}

/* int8 MACs per second of one core's AMX unit: 4 independent tdpbusd chains
 * (16 x 16 x 64 MACs each) over 4 input tiles already loaded. */
typedef struct amx_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_config;
__attribute__((target("amx-tile,amx-int8"))) static double peak_macs_amx(void)
{
    static int8_t tiles[16 * 64] __attribute__((aligned(64)));
    /* static: GCC does not see ldtilecfg read a local buffer and may drop its stores */
    static const amx_config cfg __attribute__((aligned(64))) = {
        .palette = 1, .colsb = {64, 64, 64, 64, 64, 64, 64, 64}, .rows = {16, 16, 16, 16, 16, 16, 16, 16}};
    for (size_t i = 0; i < sizeof tiles; i++)
        tiles[i] = (int8_t)(i % 7);
    _tile_loadconfig(&cfg);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, tiles, 64);
    _tile_loadd(5, tiles, 64);
    _tile_loadd(6, tiles, 64);
    _tile_loadd(7, tiles, 64);
    const long iters = 2 * 1000 * 1000;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = bench_now();
        for (long it = 0; it < iters; it++) {
            _tile_dpbusd(0, 4, 6);
            _tile_dpbusd(1, 4, 7);
            _tile_dpbusd(2, 5, 6);
            _tile_dpbusd(3, 5, 7);
        }
        double r = (double)iters * 4 * 16 * 16 * 64 / (bench_now() - t0);
        best = r > best ? r : best;
    }
    int32_t sink[16 * 16] __attribute__((aligned(64)));
    _tile_stored(0, sink, 64);
    _tile_release();
    if (sink[0] == 12345)
        printf(" ");
    return best;
}

typedef struct shape {
    char name[64];
    size_t m, n, k;
} shape;

/* Best seconds per call of fn over rounds of at least min_s seconds each. */
typedef void (*call_fn)(void *ctx);
static double time_call(call_fn fn, void *ctx, double min_s)
{
    fn(ctx);
    double best = 1e30;
    for (int round = 0; round < 3; round++) {
        int reps = 0;
        double t0 = bench_now(), t;
        do {
            fn(ctx);
            reps++;
            t = bench_now() - t0;
        } while (t < min_s);
        best = t / reps < best ? t / reps : best;
    }
    return best;
}

typedef struct job {
    const oq_q8_gemm_variant *v;
    oq_q8_gemm_args g;
    void *ws;
    const uint8_t *a;
    const int8_t *b;
    int32_t *c;
    size_t m, n, k;
} job;

static void run_onnxq(void *p)
{
    job *j = p;
    oq_q8_gemm_run(j->v, &j->g, j->ws, NULL);
}

/* The product as QLinearConv runs it (NCHW): s8u8, A = weights (n rows, packed
 * ahead), B = k channel planes of m pixels packed per call by the 1x1 im2col
 * packer, u8 output with per-row scales. */
typedef struct conv_job {
    const oq_q8_gemm_variant *v;
    oq_q8_gemm_args g;
    void *ws;
} conv_job;

static void run_conv(void *p)
{
    conv_job *j = p;
    oq_q8_gemm_run(j->v, &j->g, j->ws, NULL);
}

#ifdef BENCH_HAVE_DNNL
static void run_dnnl(void *p)
{
    job *j = p;
    int32_t co = 0;
    dnnl_gemm_u8s8s32('N', 'N', 'F', (dnnl_dim_t)j->m, (dnnl_dim_t)j->n, (dnnl_dim_t)j->k, 1.0f, j->a,
                      (dnnl_dim_t)j->k, 128, j->b, (dnnl_dim_t)j->n, 0, 0.0f, j->c, (dnnl_dim_t)j->n, &co);
}
#endif

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : BENCH_SHAPES;
    double min_s = argc > 2 ? atof(argv[2]) : 0.1;
    wall_clock = getenv("BENCH_WALL") && atoi(getenv("BENCH_WALL"));
    /* oneDNN's OpenMP: one thread, like onnxq here */
    void (*set_threads)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
    if (set_threads)
        set_threads(1);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return 1;
    }
    shape shapes[128];
    size_t count = 0;
    char line[256];
    while (count < 128 && fgets(line, sizeof line, f)) {
        shape s;
        if (line[0] == '#' || sscanf(line, "%63s %zu %zu %zu", s.name, &s.m, &s.n, &s.k) != 4)
            continue;
        shapes[count++] = s;
    }
    fclose(f);
    const oq_q8_gemm_variant *v = oq_q8_gemm_default(OQ_Q8_U8S8);
    double peak = oq_cpu()->avx512vnni ? peak_macs_vnni() : 0;
    printf("variant %s, 1 thread, %s time; measured VNNI peak %.1f GMAC/s = %.1f GOPS\n", v->name, wall_clock ? "wall" : "thread CPU", peak / 1e9, 2 * peak / 1e9);
    if (v->isa == OQ_ISA_AMX) {
        /* %peak below is of the unit the variant uses */
        peak = peak_macs_amx();
        printf("measured AMX-INT8 peak %.1f GMAC/s = %.1f GOPS (the %%peak columns below)\n", peak / 1e9,
               2 * peak / 1e9);
    }
#ifdef BENCH_HAVE_DNNL
    printf("%-20s %5s %5s %5s | %8s %6s | %8s %6s | %6s | %s\n", "shape", "M", "N", "K", "onnxq", "%peak", "oneDNN",
           "%peak", "speed", "conv form (s8u8, M/N swapped, im2col B): GOPS %peak speed vs oneDNN");
#else
    printf("%-20s %5s %5s %5s | %8s %6s   (built without oneDNN)\n", "shape", "M", "N", "K", "onnxq", "%peak");
#endif
    for (size_t si = 0; si < count; si++) {
        shape *s = &shapes[si];
        job j = {.v = v, .m = s->m, .n = s->n, .k = s->k};
        uint8_t *a = malloc(s->m * s->k);
        int8_t *b = malloc(s->k * s->n);
        j.c = malloc(s->m * s->n * 4);
        for (size_t i = 0; i < s->m * s->k; i++)
            a[i] = (uint8_t)(i * 7 + 3);
        for (size_t i = 0; i < s->k * s->n; i++)
            b[i] = (int8_t)(i * 13 + 1);
        j.a = a;
        j.b = b;
        uint8_t *pb = oq_aligned_alloc(oq_q8_packed_b_size(v, s->k, s->n));
        int32_t *cs = malloc(s->n * 4);
        oq_q8_pack_b(v, s->k, s->n, (const uint8_t *)b, s->n, 1, 0, pb, cs);
        j.g = oq_q8_gemm_args_init(s->m, s->n, s->k);
        j.g.a = a;
        j.g.a_rs = s->k;
        j.g.a_cs = 1;
        j.g.a_zp = 128;
        j.g.b_packed = pb;
        j.g.b_colsum = cs;
        j.g.c = j.c;
        j.g.ldc = s->n;
        j.ws = malloc(oq_q8_gemm_workspace_size(v, &j.g, 1));
        double macs = (double)s->m * s->n * s->k;
        double t = time_call(run_onnxq, &j, min_s);
        double gops = 2 * macs / t / 1e9;
        printf("%-20s %5zu %5zu %5zu | %8.1f %5.1f%%", s->name, s->m, s->n, s->k, gops,
               peak > 0 ? 100 * macs / t / peak : 0.0);
#ifdef BENCH_HAVE_DNNL
        double td = time_call(run_dnnl, &j, min_s);
        double t2 = time_call(run_onnxq, &j, min_s); /* onnxq, oneDNN, onnxq: both see the same load */
        t = t2 < t ? t2 : t;
        double gd = 2 * macs / td / 1e9;
        printf(" | %8.1f %5.1f%% | %6.2f", gd, peak > 0 ? 100 * macs / td / peak : 0.0, td / t);
#endif
        {
            const oq_q8_gemm_variant *cv = oq_q8_gemm_default(OQ_Q8_S8U8);
            size_t cm = s->n, cn = s->m; /* output channels x pixels */
            uint8_t *pa = oq_aligned_alloc(oq_q8_packed_a_size(cv, cm, s->k));
            int32_t *rs = malloc(cm * 4), *zr = calloc(cm, 4);
            float *sc = malloc(cm * sizeof(float));
            for (size_t i = 0; i < cm; i++)
                sc[i] = 1.0f / 4096 / (float)(1 + i % 5);
            oq_q8_pack_a(cv, cm, s->k, (const uint8_t *)b, 1, s->n, 0, pa, rs); /* w[o][c] = b[c][o] */
            oq_q8_conv_geom geo = {.channels = s->k, .in = {1, 1, cn}, .out = {1, 1, cn}, .kernel = {1, 1, 1},
                                   .stride = {1, 1, 1}, .dilation = {1, 1, 1}};
            oq_q8_im2col_ctx ic = {&geo, a, 0, 3};
            conv_job cj = {.v = cv, .g = oq_q8_gemm_args_init(cm, cn, s->k)};
            cj.g.a_packed = pa;
            cj.g.a_rowsum = rs;
            cj.g.a_zp_rows = zr;
            cj.g.pack_b = oq_q8_im2col_pack;
            cj.g.pack_ctx = &ic;
            cj.g.b_zp = 3;
            cj.g.out = OQ_Q8_OUT_U8;
            uint8_t *cc = malloc(cm * cn);
            cj.g.c = cc;
            cj.g.ldc = cn;
            cj.g.scale = sc;
            cj.g.scale_mode = OQ_Q8_PER_ROW;
            cj.g.range = oq_requant_range_make(128, 0, 255);
            cj.ws = malloc(oq_q8_gemm_workspace_size(cv, &cj.g, 1));
            double tc = time_call(run_conv, &cj, min_s);
            printf(" | %8.1f %5.1f%%", 2 * macs / tc / 1e9, peak > 0 ? 100 * macs / tc / peak : 0.0);
#ifdef BENCH_HAVE_DNNL
            printf(" %5.2f", td / tc);
#endif
            free(rs), free(zr), free(sc), free(cc), free(cj.ws);
            oq_aligned_free(pa);
        }
        printf("\n");
        fflush(stdout);
        free(a), free(b), free(j.c), free(cs), free(j.ws);
        oq_aligned_free(pb);
    }
    return 0;
}
