/* onnxq bench: latency of one model on one input — warm-up runs, then timed
 * runs summarized as median / p10 / p90 / mean and throughput (text or JSON). */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: onnxq bench MODEL [-i NAME=FILE.npy]... [--random] [--seed S] [--threads N]\n"
    "                   [--warmup W] [--iters K] [--json]\n"
    "\n"
    "Runs MODEL W times to warm up, then K timed times on the same input, and prints\n"
    "the median, 10th and 90th percentile and mean latency in ms and the throughput.\n"
    "\n"
    "options:\n"
    "  -i, --input NAME=FILE.npy  feed input NAME from a .npy file; repeatable\n"
    "  --random                   fill inputs not given with random data\n"
    "  --seed S                   seed of the random data (default 1)\n"
    "  --threads N                worker threads (0 = one per core; default 0)\n"
    "  --warmup W                 untimed runs first (default 3)\n"
    "  --iters K                  timed runs (default 20)\n"
    "  --json                     print one JSON object\n"
    "  -h, --help                 show this help\n";

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Linear interpolation between the nearest ranks (numpy's default). */
static double percentile(const double *sorted, size_t n, double p)
{
    double pos = p * (double)(n - 1);
    size_t lo = (size_t)pos;
    if (lo + 1 >= n)
        return sorted[n - 1];
    return sorted[lo] + (pos - (double)lo) * (sorted[lo + 1] - sorted[lo]);
}

int cmd_bench(int argc, char **argv)
{
    const char *model_path = NULL, *val = NULL;
    long threads = 0, seed = 1, warmup = 3, iters = 20;
    bool json = false;
    cli_inputs in = {0};
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r;
        if (cli_is_help(a)) {
            fputs(usage, stdout);
            cli_inputs_free(&in);
            return 0;
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
        } else if (strcmp(a, "--random") == 0) {
            in.random = true;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (a[0] == '-' && a[1]) {
            rc = cli_usage_error(usage, "unknown option '%s' for bench", a);
            goto done;
        } else if (!model_path) {
            model_path = a;
        } else {
            rc = cli_usage_error(usage, "unexpected argument '%s' (inputs are given with -i)", a);
            goto done;
        }
    }
    if (!model_path) {
        rc = cli_usage_error(usage, "bench needs a MODEL file");
        goto done;
    }
    in.seed = (uint64_t)seed;

    oq_model *m = NULL;
    oq_session *s = NULL;
    oq_tensor **inputs = NULL, **outputs = NULL;
    size_t n_in = 0, n_out = 0;
    double *times = calloc((size_t)iters, sizeof *times);
    oq_status st = times ? OQ_OK : cli_error(OQ_E_NOMEM, "out of memory");
    if (st == OQ_OK)
        st = cli_open(model_path, (int)threads, &m, &s);
    if (st == OQ_OK)
        st = cli_inputs_load(&in, s, &inputs, &n_in);
    if (st == OQ_OK) {
        n_out = oq_session_output_count(s);
        outputs = calloc(n_out ? n_out : 1, sizeof *outputs);
        if (!outputs)
            st = cli_error(OQ_E_NOMEM, "out of memory");
    }
    for (long k = 0; st == OQ_OK && k < warmup + iters; k++) {
        double t0 = cli_now_ms();
        st = oq_session_run(s, (const oq_tensor *const *)inputs, n_in, outputs, n_out);
        double dt = cli_now_ms() - t0;
        if (k >= warmup)
            times[k - warmup] = dt;
        for (size_t j = 0; j < n_out; j++) {
            oq_tensor_destroy(outputs[j]);
            outputs[j] = NULL;
        }
    }
    if (st == OQ_OK) {
        size_t n = (size_t)iters;
        double sum = 0;
        for (size_t k = 0; k < n; k++)
            sum += times[k];
        qsort(times, n, sizeof *times, cmp_double);
        double median = percentile(times, n, 0.5), p10 = percentile(times, n, 0.1),
               p90 = percentile(times, n, 0.9), mean = sum / (double)n;
        double throughput = mean > 0 ? 1000.0 / mean : 0;
        int used = cli_threads_used((int)threads);
        if (json) {
            fputs("{\"model\":", stdout);
            cli_json_string(stdout, model_path);
            printf(",\"threads\":%d,\"warmup\":%ld,\"iters\":%ld,\"median_ms\":%.6f,\"p10_ms\":%.6f,"
                   "\"p90_ms\":%.6f,\"mean_ms\":%.6f,\"min_ms\":%.6f,\"max_ms\":%.6f,\"throughput_per_s\":%.3f,"
                   "\"isa\":",
                   used, warmup, iters, median, p10, p90, mean, times[0], times[n - 1], throughput);
            cli_json_string(stdout, cli_isa_name());
            fputs("}\n", stdout);
        } else {
            printf("model:      %s\n", model_path);
            printf("threads:    %d   isa: %s   warm-up: %ld   iterations: %ld\n", used, cli_isa_name(), warmup,
                   iters);
            printf("median:     %.4g ms\n", median);
            printf("p10 / p90:  %.4g / %.4g ms\n", p10, p90);
            printf("mean:       %.4g ms   (min %.4g, max %.4g)\n", mean, times[0], times[n - 1]);
            printf("throughput: %.2f runs/s\n", throughput);
        }
    } else {
        rc = cli_fail(st);
    }
    free(times);
    cli_tensors_free(outputs, n_out);
    cli_tensors_free(inputs, n_in);
    oq_session_destroy(s);
    oq_model_destroy(m);
done:
    cli_inputs_free(&in);
    return rc;
}
