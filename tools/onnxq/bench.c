/* onnxq bench: latency of one or more models on one input each — warm-up
 * runs, then timed runs summarized as median / p10 / p90 / mean, throughput
 * and peak memory (src/eval), with the ratio to the first model (text, JSON
 * lines, or the "bench" report of docs/reports.md). */
#include "cli.h"
#include "../../src/eval/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: onnxq bench MODEL... [-i NAME=FILE.npy]... [--random] [--seed S] [--threads N]\n"
    "                   [--batch B] [--warmup W] [--iters K] [--json] [--report FILE] [--profile]\n"
    "\n"
    "Runs each MODEL W times to warm up, then K timed times on the same input, and prints\n"
    "the median, 10th and 90th percentile and mean latency in ms, the throughput and the\n"
    "peak memory; with several models, also the speed ratio to the first one.\n"
    "\n"
    "options:\n"
    "  -i, --input NAME=FILE.npy  feed input NAME from a .npy file; repeatable\n"
    "  --random                   fill inputs not given with random data\n"
    "  --seed S                   seed of the random data (default 1)\n"
    "  --threads N                worker threads (0 = one per core; default 0)\n"
    "  --batch B                  size of a symbolic batch dim of random inputs (default 1)\n"
    "  --warmup W                 untimed runs first (default 3)\n"
    "  --iters K                  timed runs (default 20)\n"
    "  --json                     print one JSON object per model (one line each)\n"
    "  --report FILE              write the result as JSON (docs/reports.md, kind \"bench\")\n"
    "  --label TEXT               name of the run in the report (default: the first model's file name)\n"
    "  --profile                  also print where the time goes: per operator type and the slowest\n"
    "                             nodes, in ms per run (averaged over warm-up and timed runs)\n"
    "  -h, --help                 show this help\n";

typedef struct bench_result {
    const char *path;
    int64_t bytes, batch, peak_rss;
    oq_latency_stats lat;
} bench_result;

typedef struct op_time {
    double ms; /* first: what by_ms_desc compares */
    const char *op_type;
    size_t nodes;
} op_time;

static int by_ms_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* The per-node profile of s, grouped by operator type, and the slowest nodes. */
static void print_profile(const oq_session *s, const char *path)
{
    oq_node_profile *p = NULL;
    size_t n = 0;
    if (oq_session_profile(s, &p, &n) != OQ_OK || !n) {
        free(p);
        return;
    }
    op_time *ops = calloc(n, sizeof *ops);
    /* (ms, index) pairs sorted by ms: the first member is what qsort compares */
    struct { double ms; size_t i; } *order = calloc(n, sizeof *order);
    if (!ops || !order)
        goto done;
    size_t n_ops = 0;
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        double ms = p[i].runs ? p[i].total_ms / (double)p[i].runs : 0;
        total += ms;
        order[i].ms = ms;
        order[i].i = i;
        size_t k = 0;
        while (k < n_ops && strcmp(ops[k].op_type, p[i].op_type) != 0)
            k++;
        if (k == n_ops)
            ops[n_ops++].op_type = p[i].op_type;
        ops[k].ms += ms;
        ops[k].nodes++;
    }
    qsort(ops, n_ops, sizeof *ops, by_ms_desc);
    qsort(order, n, sizeof *order, by_ms_desc);
    printf("\nprofile of %s: %.4g ms per run in %zu nodes\n%-28s %6s %10s %7s\n", path, total, n, "op type", "nodes",
           "ms/run", "share");
    for (size_t k = 0; k < n_ops; k++)
        printf("%-28s %6zu %10.4f %6.1f%%\n", ops[k].op_type, ops[k].nodes, ops[k].ms,
               total > 0 ? 100 * ops[k].ms / total : 0.0);
    printf("\nslowest nodes\n%-40s %-24s %10s %7s\n", "node", "op type", "ms/run", "share");
    for (size_t k = 0; k < n && k < 200; k++) {
        const oq_node_profile *e = &p[order[k].i];
        printf("%-40s %-24s %10.4f %6.1f%%\n", e->name, e->op_type, order[k].ms,
               total > 0 ? 100 * order[k].ms / total : 0.0);
    }
done:
    free(order);
    free(ops);
    free(p);
}

/* Loads, warms up and times one model; fills r. */
static oq_status bench_model(bench_result *r, const cli_inputs *in, int threads, long warmup, long iters,
                             bool profile)
{
    oq_model *m = NULL;
    oq_session *s = NULL;
    oq_tensor **inputs = NULL;
    size_t n_in = 0;
    oq_session_options so = oq_session_options_default();
    so.threads = threads;
    so.profile = profile;
    oq_status st = cli_open_options(r->path, &so, &m, &s);
    if (st == OQ_OK)
        st = cli_inputs_load(in, s, &inputs, &n_in);
    r->batch = n_in && inputs[0]->ndim >= 1 ? inputs[0]->dims[0] : 1;
    if (st == OQ_OK && (st = oq_bench_run(s, (const oq_tensor *const *)inputs, n_in, (int)warmup, (int)iters,
                                          &r->lat)) != OQ_OK)
        cli_error_context(st, "running '%s'", r->path);
    if (st == OQ_OK && profile)
        print_profile(s, r->path);
    r->peak_rss = oq_peak_rss_bytes();
    cli_tensors_free(inputs, n_in);
    oq_session_destroy(s);
    oq_model_destroy(m);
    return st;
}

static double throughput(const bench_result *r)
{
    return r->lat.median > 0 ? (double)r->batch * 1000.0 / r->lat.median : 0;
}

int cmd_bench(int argc, char **argv)
{
    const char *val = NULL, *report = NULL, *label = NULL;
    long threads = 0, seed = 1, warmup = 3, iters = 20, batch = 0;
    bool json = false, profile = false;
    cli_inputs in = {0};
    bench_result *models = calloc((size_t)argc, sizeof *models);
    size_t n_models = 0;
    int rc = 0;
    if (!models)
        return cli_fail(cli_error(OQ_E_NOMEM, "out of memory"));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r;
        if (cli_is_help(a)) {
            fputs(usage, stdout);
            goto done;
        }
        if ((r = cli_opt(argc, argv, &i, "-i", "--input", &val)) != 0) {
            if (r < 0) {
                rc = cli_usage_error(usage, "option '%s' needs a value", a);
                goto done;
            }
            if (!cli_inputs_add(&in, val)) {
                rc = cli_usage_error(NULL, "out of memory");
                goto done;
            }
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--threads", &val)) != 0) {
            if (r < 0 || !cli_parse_long(val, 0, 1024, &threads)) {
                rc = cli_usage_error(usage, "--threads needs a number from 0 to 1024");
                goto done;
            }
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--seed", &val)) != 0) {
            if (r < 0 || !cli_parse_long(val, 0, 0x7fffffffL, &seed)) {
                rc = cli_usage_error(usage, "--seed needs a non-negative number");
                goto done;
            }
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--warmup", &val)) != 0) {
            if (r < 0 || !cli_parse_long(val, 0, 1000000, &warmup)) {
                rc = cli_usage_error(usage, "--warmup needs a number from 0 to 1000000");
                goto done;
            }
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--iters", &val)) != 0) {
            if (r < 0 || !cli_parse_long(val, 1, 1000000, &iters)) {
                rc = cli_usage_error(usage, "--iters needs a number from 1 to 1000000");
                goto done;
            }
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--batch", &val)) != 0) {
            if (r < 0 || !cli_parse_long(val, 1, 1 << 20, &batch)) {
                rc = cli_usage_error(usage, "--batch needs a positive count");
                goto done;
            }
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--report", &val)) != 0) {
            if (r < 0) {
                rc = cli_usage_error(usage, "--report needs a file name");
                goto done;
            }
            report = val;
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--label", &val)) != 0) {
            if (r < 0) {
                rc = cli_usage_error(usage, "--label needs a text");
                goto done;
            }
            label = val;
        } else if (strcmp(a, "--random") == 0) {
            in.random = true;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--profile") == 0) {
            profile = true;
        } else if (a[0] == '-' && a[1]) {
            rc = cli_usage_error(usage, "unknown option '%s' for bench", a);
            goto done;
        } else {
            models[n_models++].path = a;
        }
    }
    if (!n_models) {
        rc = cli_usage_error(usage, "bench needs a MODEL file");
        goto done;
    }
    in.seed = (uint64_t)seed;
    in.batch = batch;
    /* The peak of one model must not include the previous ones: reset it between models. */
    bool rss_reset = true;
    for (size_t k = 0; k < n_models; k++) {
        if (!oq_peak_rss_reset())
            rss_reset = false;
        models[k].bytes = cli_file_bytes(models[k].path);
        oq_status st = bench_model(&models[k], &in, (int)threads, warmup, iters, profile && !json);
        if (st != OQ_OK) {
            rc = cli_fail(st);
            goto done;
        }
    }
    int used = cli_threads_used((int)threads);
    for (size_t k = 0; k < n_models; k++) {
        const bench_result *b = &models[k];
        double ratio = b->lat.median > 0 ? models[0].lat.median / b->lat.median : NAN;
        if (json) {
            /* keys of the original single-model form kept (bench/float/run.sh reads median_ms) */
            fputs("{\"model\":", stdout);
            cli_json_string(stdout, b->path);
            printf(",\"threads\":%d,\"warmup\":%ld,\"iters\":%ld,\"batch\":%lld,\"median_ms\":%.6f,\"p10_ms\":%.6f,"
                   "\"p90_ms\":%.6f,\"mean_ms\":%.6f,\"min_ms\":%.6f,\"max_ms\":%.6f,\"throughput_per_s\":%.3f,"
                   "\"peak_rss_bytes\":%lld,\"ratio_to_first\":%.6f,\"isa\":",
                   used, warmup, iters, (long long)b->batch, b->lat.median, b->lat.p10, b->lat.p90, b->lat.mean,
                   b->lat.min, b->lat.max, throughput(b), (long long)b->peak_rss, ratio);
            cli_json_string(stdout, cli_isa_name());
            fputs("}\n", stdout);
        } else if (n_models == 1) {
            printf("model:      %s\n", b->path);
            printf("threads:    %d   isa: %s   batch: %lld   warm-up: %ld   iterations: %ld\n", used, cli_isa_name(),
                   (long long)b->batch, warmup, iters);
            printf("median:     %.4g ms\n", b->lat.median);
            printf("p10 / p90:  %.4g / %.4g ms\n", b->lat.p10, b->lat.p90);
            printf("mean:       %.4g ms   (min %.4g, max %.4g)\n", b->lat.mean, b->lat.min, b->lat.max);
            printf("throughput: %.2f samples/s\n", throughput(b));
            if (b->peak_rss >= 0)
                printf("peak rss:   %.1f MiB\n", (double)b->peak_rss / 1048576.0);
        } else {
            if (k == 0)
                printf("threads: %d   isa: %s   warm-up: %ld   iterations: %ld\n\n%-40s %6s %10s %10s %10s %12s %10s "
                       "%8s\n",
                       used, cli_isa_name(), warmup, iters, "model", "batch", "median_ms", "p10_ms", "p90_ms",
                       "samples/s", "peak_MiB", "ratio");
            printf("%-40s %6lld %10.4g %10.4g %10.4g %12.2f %10.1f %7.2fx\n", b->path, (long long)b->batch,
                   b->lat.median, b->lat.p10, b->lat.p90, throughput(b),
                   b->peak_rss >= 0 ? (double)b->peak_rss / 1048576.0 : NAN, ratio);
        }
    }
    if (!rss_reset && n_models > 1 && !json)
        printf("(peak memory could not be reset between models: each peak includes the models before it)\n");
    if (report) {
        FILE *f = NULL;
        oq_status st = oq_report_open(report, &f);
        if (st != OQ_OK) {
            rc = cli_fail(st);
            goto done;
        }
        oq_json j;
        oq_json_init(&j, f);
        oq_json_begin_object(&j, false);
        oq_report_header(&j, "bench", label ? label : cli_base_name(models[0].path), ONNXQ_VERSION, used);
        oq_json_kv_int(&j, "batch", models[0].batch);
        oq_json_kv_int(&j, "warmup", warmup);
        oq_json_kv_int(&j, "iters", iters);
        oq_json_kv_bool(&j, "peak_rss_reset", rss_reset);
        oq_json_key(&j, "models");
        oq_json_begin_array(&j, false);
        for (size_t k = 0; k < n_models; k++) {
            const bench_result *b = &models[k];
            oq_json_begin_object(&j, true);
            oq_json_kv_string(&j, "path", b->path);
            oq_json_kv_string(&j, "label", cli_base_name(b->path));
            oq_json_kv_int(&j, "bytes", b->bytes);
            oq_json_kv_int(&j, "batch", b->batch);
            oq_json_kv_latency(&j, "latency_ms", &b->lat, true);
            oq_json_kv_number(&j, "throughput_per_s", throughput(b));
            if (b->peak_rss >= 0)
                oq_json_kv_int(&j, "peak_rss_bytes", b->peak_rss);
            else
                oq_json_kv_number(&j, "peak_rss_bytes", NAN);
            oq_json_kv_number(&j, "ratio_to_first", b->lat.median > 0 ? models[0].lat.median / b->lat.median : NAN);
            oq_json_end_object(&j);
        }
        oq_json_end_array(&j);
        oq_json_end_object(&j);
        if ((st = oq_report_close(f, report)) != OQ_OK)
            rc = cli_fail(st);
    }
done:
    free(models);
    cli_inputs_free(&in);
    return rc;
}
