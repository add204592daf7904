/* onnxq calibrate: runs the float model over calibration data and writes the
 * range of every tensor the quantizer may quantize to a JSON table, which
 * `onnxq quantize --table` reuses. Also holds the option parsing shared with
 * `onnxq quantize` (calibration method, data, progress bar). */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: onnxq calibrate IN.onnx --calib DATA -o TABLE.json [options]\n"
    "\n"
    "Runs IN in float over DATA and records, for every activation the quantizer\n"
    "may quantize, the range the calibration method picks. Memory does not grow\n"
    "with the number of samples (histograms have a fixed number of bins).\n"
    "\n"
    "DATA: a .npy file (single-input models), a .npz with one array per input\n"
    "name, a folder of them, or a comma-separated list; the first axis of every\n"
    "array is the sample axis.\n"
    "\n"
    "options:\n"
    "  --calib DATA        calibration data (required)\n"
    "  -o, --out FILE      table to write (JSON)\n"
    "  --method M          minmax, moving_average, entropy, percentile, mse (default)\n"
    "  --percentile P      for --method percentile (default 99.999)\n"
    "  --bins N            histogram bins (default 2048)\n"
    "  --samples N         use at most N samples\n"
    "  --batch N           samples per run when the batch dimension is free (default 32)\n"
    "  --image-spec SPEC   image folders: resize=N,crop=N|HxW,order=rgb|bgr,layout=nchw|nhwc,\n"
    "                      scale=255,mean=a:b:c,std=a:b:c (default: fit the model's input, [0,1])\n"
    "  --threads N         threads (default: all cores)\n"
    "  -q, --quiet         no progress bar\n"
    "  -h, --help          show this help\n";

static const char *const methods[] = {"minmax", "moving_average", "entropy", "percentile", "mse"};

int cli_calib_option(int argc, char **argv, int *i, cli_calib *c, const char *usage_text)
{
    const char *v;
    int r;
    long n;
    if ((r = cli_opt(argc, argv, i, NULL, "--calib", &v)) != 0) {
        if (r < 0)
            return cli_usage_error(usage_text, "--calib needs a path");
        c->data = v;
    } else if ((r = cli_opt(argc, argv, i, NULL, "--method", &v)) != 0) {
        size_t k = 0;
        while (r > 0 && k < sizeof methods / sizeof methods[0] && strcmp(methods[k], v) != 0)
            k++;
        if (r < 0 || k == sizeof methods / sizeof methods[0])
            return cli_usage_error(usage_text, "--method takes minmax, moving_average, entropy, percentile or mse");
        c->opt.method = (oq_calib_method)k;
    } else if ((r = cli_opt(argc, argv, i, NULL, "--percentile", &v)) != 0) {
        char *end;
        double p = r > 0 ? strtod(v, &end) : 0;
        if (r < 0 || *end || !(p > 0 && p <= 100))
            return cli_usage_error(usage_text, "--percentile takes a number in (0, 100]");
        c->opt.percentile = p;
        c->opt.method = OQ_CALIB_PERCENTILE;
    } else if ((r = cli_opt(argc, argv, i, NULL, "--bins", &v)) != 0) {
        if (r < 0 || !cli_parse_long(v, 32, 1 << 20, &n))
            return cli_usage_error(usage_text, "--bins takes a count of at least 32");
        c->opt.num_bins = (int)n;
    } else if ((r = cli_opt(argc, argv, i, NULL, "--samples", &v)) != 0) {
        if (r < 0 || !cli_parse_long(v, 1, 0x7fffffffL, &n))
            return cli_usage_error(usage_text, "--samples takes a positive count");
        c->reader.max_samples = (size_t)n;
    } else if ((r = cli_opt(argc, argv, i, NULL, "--image-spec", &v)) != 0) {
        if (r < 0)
            return cli_usage_error(usage_text, "--image-spec needs a spec such as resize=256,crop=224");
        c->reader.image_spec = v;
    } else if ((r = cli_opt(argc, argv, i, NULL, "--batch", &v)) != 0) {
        if (r < 0 || !cli_parse_long(v, 1, 1 << 20, &n))
            return cli_usage_error(usage_text, "--batch takes a positive count");
        c->reader.batch_size = (size_t)n;
    } else if ((r = cli_opt(argc, argv, i, NULL, "--threads", &v)) != 0) {
        if (r < 0 || !cli_parse_long(v, 0, 1024, &n))
            return cli_usage_error(usage_text, "--threads takes a count");
        c->opt.threads = (int)n;
    } else if (!strcmp(argv[*i], "-q") || !strcmp(argv[*i], "--quiet")) {
        c->quiet = true;
    } else {
        return -1;
    }
    return 0;
}

static void progress(void *user, int64_t done, int64_t total)
{
    cli_calib *c = user;
    double now = cli_now_ms();
    if (done == 0) { /* a new pass (--target-agreement quantizes again): its rate from here */
        c->start_ms = now;
        return;
    }
    if (done < total && now - c->last_ms < 100)
        return;
    c->last_ms = now;
    int width = 30, fill = total > 0 ? (int)(width * done / total) : 0;
    char bar[64];
    for (int k = 0; k < width; k++)
        bar[k] = k < fill ? '#' : '.';
    bar[width] = 0;
    double secs = (now - c->start_ms) / 1000.0;
    fprintf(stderr, "\rcalibrating [%s] %lld/%lld samples  %.1f samples/s", bar, (long long)done, (long long)total,
            secs > 0 ? done / secs : 0.0);
    if (done >= total)
        fputc('\n', stderr);
    fflush(stderr);
}

void cli_calib_init(cli_calib *c)
{
    memset(c, 0, sizeof *c);
    c->opt = oq_calib_options_default();
    c->reader = oq_reader_options_default();
}

oq_status cli_calib_open(cli_calib *c, const oq_model *m, oq_data_reader **r)
{
    oq_status st = oq_data_reader_open(c->data, m, &c->reader, r);
    if (st != OQ_OK)
        return st;
    if (!c->quiet) {
        c->opt.progress = progress;
        c->opt.progress_user = c;
    }
    c->start_ms = c->last_ms = cli_now_ms();
    c->last_ms -= 1000;
    return OQ_OK;
}

int cmd_calibrate(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *v;
    cli_calib c;
    cli_calib_init(&c);
    for (int i = 1; i < argc; i++) {
        int r;
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return 0;
        }
        if ((r = cli_calib_option(argc, argv, &i, &c, usage)) >= 0) {
            if (r > 0)
                return r;
        } else if ((r = cli_opt(argc, argv, &i, "-o", "--out", &v)) != 0) {
            if (r < 0)
                return cli_usage_error(usage, "-o needs a file name");
            out = v;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error(usage, "unknown option '%s'", argv[i]);
        } else if (!in) {
            in = argv[i];
        } else {
            return cli_usage_error(usage, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!in)
        return cli_usage_error(usage, "calibrate needs a model");
    if (!c.data)
        return cli_usage_error(usage, "calibrate needs --calib DATA");
    if (!out)
        return cli_usage_error(usage, "calibrate needs -o TABLE.json");
    oq_model *m = NULL;
    oq_data_reader *r = NULL;
    oq_calib_table *t = NULL;
    oq_status st = oq_model_load(in, NULL, &m);
    if (st == OQ_OK)
        st = cli_calib_open(&c, m, &r);
    double t0 = cli_now_ms();
    if (st == OQ_OK)
        st = oq_calibrate(m, &c.opt, r, &t);
    double secs = (cli_now_ms() - t0) / 1000.0;
    if (st == OQ_OK)
        st = oq_calib_table_save(t, out);
    size_t n = oq_calib_table_count(t);
    int64_t samples = r ? oq_data_reader_sample_count(r) : 0;
    oq_calib_table_destroy(t);
    oq_data_reader_destroy(r);
    oq_model_destroy(m);
    if (st != OQ_OK)
        return cli_fail(st);
    printf("wrote %s: ranges of %zu tensors from %lld samples (%s) in %.2f s, %.0f samples/s\n", out, n,
           (long long)samples, methods[c.opt.method], secs, secs > 0 ? samples / secs : 0.0);
    return 0;
}
