/* Benchmark of the q8 depthwise convolution on one thread (shapes from
 * dw-shapes.txt: "name channels height width kernel stride pad"): the whole
 * layer as QLinearConv runs it (one oq_q8_dwconv_channels call, u8 in, s8
 * weights, u8 out), ms and GMAC/s, checked against the reference.
 * With threads > 1, the channels go in tasks_per_thread x threads tasks over a
 * thread pool, as QLinearConv runs them. Also, on one thread, the same layer
 * channels-last (oq_q8_dw_nhwc_rows, as QLinearConv runs it inside channels-last
 * chains), checked against the planar result.
 * Usage: bench_q8_dwconv [dw-shapes.txt] [min-seconds-per-measure] [threads] [tasks-per-thread] */
#include "kernels/q8/q8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef BENCH_DW_SHAPES
#define BENCH_DW_SHAPES "bench/kernels-q8/dw-shapes.txt"
#endif

/* The layer in tasks of `per` channels, as QLinearConv splits it over threads. */
typedef struct layer_job {
    const oq_q8_dw_params *p;
    size_t c, per;
    const uint8_t *x;
    const int8_t *w;
    const int32_t *bias;
    uint8_t *y;
} layer_job;

static void layer_task(void *ctx, size_t task, size_t thread)
{
    (void)thread;
    const layer_job *j = ctx;
    const oq_q8_conv_geom *g = j->p->g;
    size_t in_plane = g->in[1] * g->in[2], out_plane = g->out[1] * g->out[2], ks = g->kernel[1] * g->kernel[2];
    size_t c0 = task * j->per, n = j->c - c0 < j->per ? j->c - c0 : j->per;
    oq_q8_dw_channels ch = {n, j->bias + c0, NULL, NULL};
    oq_q8_dwconv_channels(j->p, &ch, j->x + c0 * in_plane, j->w + c0 * ks, j->y + c0 * out_plane);
}

static void layer(const oq_q8_dw_params *p, size_t c, const uint8_t *x, const int8_t *w, const int32_t *bias,
                  uint8_t *y, bool reference, oq_threadpool *tp, size_t tasks)
{
    const oq_q8_conv_geom *g = p->g;
    size_t in_plane = g->in[1] * g->in[2], out_plane = g->out[1] * g->out[2], ks = g->kernel[1] * g->kernel[2];
    if (!reference) {
        layer_job j = {p, c, (c + tasks - 1) / tasks, x, w, bias, y};
        oq_parallel_for(tp, (c + j.per - 1) / j.per, layer_task, &j);
        return;
    }
    for (size_t i = 0; i < c; i++) {
        oq_q8_dw_params q = *p;
        q.bias = bias[i];
        oq_q8_dwconv_reference(&q, x + i * in_plane, w + i * ks, y + i * out_plane);
    }
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : BENCH_DW_SHAPES;
    double min_s = argc > 2 ? atof(argv[2]) : 0.2;
    int threads = argc > 3 ? atoi(argv[3]) : 1;
    size_t tasks = threads > 1 ? (size_t)threads * (argc > 4 ? (size_t)atoi(argv[4]) : 8) : 1;
    oq_threadpool *tp = NULL;
    if (threads > 1 && oq_threadpool_create(threads, &tp) != OQ_OK)
        return 1;
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return 1;
    }
    printf("isa %s, %d thread(s)\n%-12s %5s %4s %4s %2s %2s %10s %9s %10s %9s\n", oq_isa_name(oq_isa_level()), threads,
           "name", "C", "H", "W", "k", "s", "ms", "GMAC/s", "nhwc ms", "GMAC/s");
    char line[256], name[64];
    size_t c, h, wd, k, s, pad;
    int bad = 0;
    double total = 0, total_nhwc = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || sscanf(line, "%63s %zu %zu %zu %zu %zu %zu", name, &c, &h, &wd, &k, &s, &pad) != 7)
            continue;
        oq_q8_conv_geom g = {.channels = 1, .in = {1, h, wd}, .kernel = {1, k, k}, .stride = {1, s, s},
                             .dilation = {1, 1, 1}, .pad = {0, pad, pad}};
        g.out[0] = 1;
        g.out[1] = (h + 2 * pad - k) / s + 1;
        g.out[2] = (wd + 2 * pad - k) / s + 1;
        size_t in_n = c * h * wd, out_n = c * g.out[1] * g.out[2];
        uint8_t *x = malloc(in_n), *y = malloc(out_n), *want = malloc(out_n);
        int8_t *w = malloc(c * k * k);
        int32_t *bias = malloc(c * sizeof *bias);
        if (!x || !y || !want || !w || !bias)
            return 1;
        for (size_t i = 0; i < in_n; i++)
            x[i] = (uint8_t)(i * 2654435761u >> 13);
        for (size_t i = 0; i < c * k * k; i++)
            w[i] = (int8_t)(i * 40503u >> 5);
        for (size_t i = 0; i < c; i++)
            bias[i] = (int32_t)(i * 977) - 20000;
        /* zero point 0: MobileNetV2 depthwise inputs follow a ReLU6 */
        oq_q8_dw_params p = {.g = &g, .w_signed = true, .x_zp = 0, .out = OQ_Q8_OUT_U8, .scale = 0.004f,
                             .range = oq_requant_range_make(0, 0, 255)};
        layer(&p, c, x, w, bias, want, true, tp, tasks);
        layer(&p, c, x, w, bias, y, false, tp, tasks);
        if (memcmp(y, want, out_n)) {
            printf("%s: differs from the reference\n", name);
            bad = 1;
        }
        double best = 1e30;
        /* the best of many short runs: the machine may be shared */
        for (int rep = 0; rep < 50; rep++) {
            size_t runs = 0;
            double t0 = oq_now(), t;
            do {
                layer(&p, c, x, w, bias, y, false, tp, tasks);
                runs++;
                t = oq_now() - t0;
            } while (t < min_s / 50);
            best = t / (double)runs < best ? t / (double)runs : best;
        }
        total += best;
        /* channels-last: x and the expected y transposed, weights packed as the operator packs them */
        size_t taps = k * k, ohw = g.out[1] * g.out[2];
        oq_q8_conv_geom gn = g;
        gn.channels = c;
        uint8_t *xn = malloc(in_n), *yn = malloc(out_n), *pad = malloc(c);
        int32_t *w2 = malloc((taps + 1) / 2 * c * 4), *wsum = malloc(c * 4), *w3 = malloc(k * c * 4), *beff = malloc(c * 4);
        float *sc = malloc(c * sizeof *sc);
        if (!xn || !yn || !pad || !w2 || !wsum || !w3 || !beff || !sc)
            return 1;
        for (size_t ch = 0; ch < c; ch++)
            for (size_t i = 0; i < h * wd; i++)
                xn[i * c + ch] = x[ch * h * wd + i];
        bool k3 = oq_q8_dw_nhwc_pack(c, k, k, w, true, NULL, 0, w2, wsum, w3);
        for (size_t ch = 0; ch < c; ch++) {
            beff[ch] = bias[ch]; /* x_zp 0 */
            sc[ch] = p.scale;
        }
        memset(pad, 0, c);
        oq_q8_dw_nhwc d = {&gn, false, w2, k3 ? w3 : NULL, beff, wsum, sc, OQ_Q8_OUT_U8, p.range, pad};
        void *ws = malloc(oq_q8_dw_nhwc_ws_size(&d) + 64);
        oq_q8_dw_nhwc_rows(&d, xn, yn, 0, g.out[1], ws);
        for (size_t ch = 0; ch < c && !bad; ch++)
            for (size_t i = 0; i < ohw; i++)
                if (yn[i * c + ch] != want[ch * ohw + i]) {
                    printf("%s: channels-last differs from the reference\n", name);
                    bad = 1;
                    break;
                }
        double best_n = 1e30;
        for (int rep = 0; rep < 50; rep++) {
            size_t runs = 0;
            double t0 = oq_now(), t;
            do {
                oq_q8_dw_nhwc_rows(&d, xn, yn, 0, g.out[1], ws);
                runs++;
                t = oq_now() - t0;
            } while (t < min_s / 50);
            best_n = t / (double)runs < best_n ? t / (double)runs : best_n;
        }
        total_nhwc += best_n;
        printf("%-12s %5zu %4zu %4zu %2zu %2zu %10.4f %9.2f %10.4f %9.2f\n", name, c, h, wd, k, s, best * 1e3,
               (double)out_n * (double)(k * k) / best * 1e-9, best_n * 1e3,
               (double)out_n * (double)(k * k) / best_n * 1e-9);
        free(xn), free(yn), free(pad), free(w2), free(wsum), free(w3), free(beff), free(sc), free(ws);
        free(x), free(y), free(want), free(w), free(bias);
    }
    fclose(f);
    oq_threadpool_destroy(tp);
    printf("total %.4f ms (channels-last %.4f ms, 1 thread)\n", total * 1e3, total_nhwc * 1e3);
    return bad;
}
