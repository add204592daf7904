/* onnxq run: runs a model once on .npy inputs (or random data), writes each
 * output to DIR/<name>.npy and prints a short summary of it. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: onnxq run MODEL [-i NAME=FILE.npy]... [-o DIR] [--threads N] [--random] [--seed S] [--emulate]\n"
    "\n"
    "Runs MODEL once and prints each output's type, shape, min/max/mean and first values.\n"
    "\n"
    "options:\n"
    "  -i, --input NAME=FILE.npy  feed input NAME from a .npy file (FILE.npy alone feeds\n"
    "                             the next input not given by name); repeatable\n"
    "  -o, --output-dir DIR       write every output to DIR/<output name>.npy (created if missing;\n"
    "                             characters outside [A-Za-z0-9._-] become '_')\n"
    "  --threads N                worker threads (0 = one per core; default 0)\n"
    "  --random                   fill inputs not given with random data (floats in [-1,1),\n"
    "                             integers in [0,10), symbolic dimensions set to 1)\n"
    "  --seed S                   seed of the random data (default 1)\n"
    "  --emulate                  a QDQ model runs int8 emulated in float (its QuantizeLinear/\n"
    "                             DequantizeLinear pairs kept) instead of on integer kernels\n"
    "  -h, --help                 show this help\n";

#define SHOW_VALUES 6

static bool is_real(oq_dtype t)
{
    switch (t) {
    case OQ_FLOAT: case OQ_DOUBLE: case OQ_FLOAT16: case OQ_BFLOAT16: case OQ_BOOL:
    case OQ_INT8: case OQ_UINT8: case OQ_INT16: case OQ_UINT16: case OQ_INT32: case OQ_UINT32:
    case OQ_INT64: case OQ_UINT64:
        return true;
    default:
        return false;
    }
}

static void print_summary(const char *name, const oq_tensor *t)
{
    char shape[256];
    size_t o = (size_t)snprintf(shape, sizeof shape, "[");
    for (int k = 0; k < t->ndim && o < sizeof shape; k++)
        o += (size_t)snprintf(shape + o, sizeof shape - o, k ? ",%lld" : "%lld", (long long)t->dims[k]);
    if (o < sizeof shape)
        snprintf(shape + o, sizeof shape - o, "]");
    printf("%s  %s %s", name, oq_dtype_name(t->dtype), shape);
    int64_t n = oq_tensor_numel(t);
    if (!is_real(t->dtype) || n <= 0 || !t->data) {
        printf("\n");
        return;
    }
    double mn = INFINITY, mx = -INFINITY, sum = 0;
    int64_t n_nan = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = cli_value(t, i);
        if (isnan(v)) {
            n_nan++;
            continue;
        }
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
        sum += v;
    }
    if (n_nan < n)
        printf("  min %.6g  max %.6g  mean %.6g", mn, mx, sum / (double)(n - n_nan));
    if (n_nan)
        printf("  (%lld NaN)", (long long)n_nan);
    printf("\n    [");
    for (int64_t i = 0; i < n && i < SHOW_VALUES; i++)
        printf("%s%.6g", i ? ", " : "", cli_value(t, i));
    printf("%s]\n", n > SHOW_VALUES ? ", ..." : "");
}

static oq_status write_outputs(const char *dir, const oq_session *s, oq_tensor **out, size_t n_out)
{
    oq_status st = cli_mkdirs(dir);
    if (st != OQ_OK)
        return st;
    char (*names)[256] = calloc(n_out ? n_out : 1, sizeof *names);
    if (!names)
        return cli_error(OQ_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n_out && st == OQ_OK; i++) {
        cli_sanitize(oq_session_output(s, i)->name, names[i], sizeof names[i] - 16);
        /* two names can sanitize to the same file: keep both */
        for (size_t j = 0; j < i; j++) {
            if (strcmp(names[i], names[j]) == 0) {
                size_t l = strlen(names[i]);
                snprintf(names[i] + l, sizeof names[i] - l, "_%zu", i);
                break;
            }
        }
        size_t len = strlen(dir) + strlen(names[i]) + 8;
        char *path = malloc(len);
        if (!path) {
            st = cli_error(OQ_E_NOMEM, "out of memory");
            break;
        }
        snprintf(path, len, "%s/%s.npy", dir, names[i]);
        st = oq_npy_save(path, out[i]);
        free(path);
    }
    free(names);
    return st;
}

int cmd_run(int argc, char **argv)
{
    const char *model_path = NULL, *dir = NULL, *val = NULL;
    long threads = 0, seed = 1;
    bool emulate = false;
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
        } else if ((r = cli_opt(argc, argv, &i, "-o", "--output-dir", &val)) != 0) {
            if (r < 0) {
                rc = cli_usage_error(usage, "option '%s' needs a value", a);
                goto done;
            }
            dir = val;
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
        } else if (strcmp(a, "--random") == 0) {
            in.random = true;
        } else if (strcmp(a, "--emulate") == 0) {
            emulate = true;
        } else if (a[0] == '-' && a[1]) {
            rc = cli_usage_error(usage, "unknown option '%s' for run", a);
            goto done;
        } else if (!model_path) {
            model_path = a;
        } else {
            rc = cli_usage_error(usage, "unexpected argument '%s' (inputs are given with -i)", a);
            goto done;
        }
    }
    if (!model_path) {
        rc = cli_usage_error(usage, "run needs a MODEL file");
        goto done;
    }
    in.seed = (uint64_t)seed;

    oq_model *m = NULL;
    oq_session *s = NULL;
    oq_tensor **inputs = NULL, **outputs = NULL;
    size_t n_in = 0, n_out = 0;
    oq_session_options so = oq_session_options_default();
    so.threads = (int)threads;
    so.emulate_qdq = emulate;
    oq_status st = cli_open_options(model_path, &so, &m, &s);
    if (st == OQ_OK)
        st = cli_inputs_load(&in, s, &inputs, &n_in);
    if (st == OQ_OK) {
        n_out = oq_session_output_count(s);
        outputs = calloc(n_out ? n_out : 1, sizeof *outputs);
        if (!outputs)
            st = cli_error(OQ_E_NOMEM, "out of memory");
    }
    double ms = 0;
    if (st == OQ_OK) {
        double t0 = cli_now_ms();
        st = oq_session_run(s, (const oq_tensor *const *)inputs, n_in, outputs, n_out);
        ms = cli_now_ms() - t0;
    }
    if (st == OQ_OK && dir)
        st = write_outputs(dir, s, outputs, n_out);
    if (st == OQ_OK) {
        for (size_t i = 0; i < n_out; i++)
            print_summary(oq_session_output(s, i)->name, outputs[i]);
        int used = cli_threads_used((int)threads);
        printf("run: %.4g ms (%d thread%s)%s%s\n", ms, used, used == 1 ? "" : "s", dir ? ", outputs in " : "",
               dir ? dir : "");
    } else {
        rc = cli_fail(st);
    }
    cli_tensors_free(outputs, n_out);
    cli_tensors_free(inputs, n_in);
    oq_session_destroy(s);
    oq_model_destroy(m);
done:
    cli_inputs_free(&in);
    return rc;
}
