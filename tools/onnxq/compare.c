/* onnxq compare: runs a float model and its quantized version over the same
 * inputs (a data reader or seeded random inputs) and prints, per output, how
 * far apart they are (src/eval metrics), their latency, sizes and ratios;
 * --report writes the "compare" JSON of docs/reports.md. */
#include "cli.h"
#include "../../src/eval/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: onnxq compare FLOAT.onnx QUANT.onnx (--data DATA | --random N) [options]\n"
    "\n"
    "Runs both models on the same inputs and reports, per output, the mean and max\n"
    "absolute difference, the mean of the per-sample max difference, SQNR (dB),\n"
    "cosine similarity and how often the argmax (top class) disagrees; then the\n"
    "latency of each (median over interleaved runs), the speed ratio, sizes and the\n"
    "size ratio.\n"
    "\n"
    "DATA: as for calibration — a .npy file (single-input models), a .npz with one\n"
    "array per input name, a folder of them, a comma-separated list, or an image folder.\n"
    "\n"
    "options:\n"
    "  --data DATA        inputs to compare on\n"
    "  --random N         N seeded random inputs of the model's input shapes instead\n"
    "  --seed S           seed of the random inputs (default 1)\n"
    "  --labels L.npy     integer labels, one per sample: adds top-1 of both models\n"
    "                     (an image folder with class subfolders labels its images itself)\n"
    "  --image-spec SPEC  image folders: resize=N,crop=N|HxW,order,layout,scale,mean,std\n"
    "  --samples N        use at most N samples of DATA\n"
    "  --batch N          samples per run when the batch dimension is free (default 1)\n"
    "  --threads N        threads of each session (0 = one per core; default 0)\n"
    "  --emulate          run a QDQ QUANT model with int8 emulated in float (debug mode)\n"
    "  --label TEXT       name of this configuration in the report (default: QUANT's file name)\n"
    "  --report FILE      write the result as JSON (docs/reports.md, kind \"compare\")\n"
    "  -q, --quiet        no progress bar\n"
    "  -h, --help         show this help\n";

/* Seeded random inputs of the reference model's input shapes, `total` samples. */
typedef struct random_source {
    oq_session *session;
    int64_t total, done, batch;
    uint64_t seed;
    oq_tensor **t;
    size_t n;
} random_source;

static oq_status random_next(void *user, const oq_tensor *const **inputs, const int64_t **labels, size_t *n_labels)
{
    random_source *r = user;
    cli_tensors_free(r->t, r->n);
    r->t = NULL;
    r->n = 0;
    *labels = NULL;
    *n_labels = 0;
    if (r->done >= r->total) {
        *inputs = NULL;
        return OQ_OK;
    }
    cli_inputs ci = {0};
    ci.random = true;
    ci.seed = r->seed + (uint64_t)r->done * 0x9e3779b9ull; /* every batch different, same for both models */
    ci.batch = r->batch;
    oq_status st = cli_inputs_load(&ci, r->session, &r->t, &r->n);
    if (st != OQ_OK)
        return st;
    r->done += r->n && r->t[0]->ndim >= 1 && r->t[0]->dims[0] > 0 ? r->t[0]->dims[0] : 1;
    *inputs = (const oq_tensor *const *)r->t;
    return OQ_OK;
}

static void on_progress(void *user, int64_t done, int64_t total) { cli_progress_update(user, done, total); }

static void print_value(double v, const char *fmt)
{
    if (isfinite(v))
        printf(fmt, v);
    else if (isinf(v) && v > 0)
        printf(" %11s", "inf");
    else
        printf(" %11s", "-");
}

static void write_model(oq_json *j, const char *key, const char *path, int64_t bytes, const oq_latency_stats *lat)
{
    oq_json_key(j, key);
    oq_json_begin_object(j, false);
    oq_json_kv_string(j, "path", path);
    oq_json_kv_int(j, "bytes", bytes);
    oq_json_kv_latency(j, "latency_ms", lat, true);
    oq_json_end_object(j);
}

int cmd_compare(int argc, char **argv)
{
    const char *image_spec = NULL;
    const char *paths[2] = {NULL, NULL}, *data = NULL, *labels = NULL, *label = NULL, *report = NULL, *v;
    long random_n = 0, seed = 1, samples = 0, batch = 1, threads = 0;
    bool emulate = false, quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r;
        if (cli_is_help(a)) {
            fputs(usage, stdout);
            return 0;
        }
        if ((r = cli_opt(argc, argv, &i, NULL, "--data", &v)) != 0) {
            if (r < 0)
                return cli_usage_error(usage, "--data needs a path");
            data = v;
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--random", &v)) != 0) {
            if (r < 0 || !cli_parse_long(v, 1, 100000000L, &random_n))
                return cli_usage_error(usage, "--random needs a count of samples");
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--seed", &v)) != 0) {
            if (r < 0 || !cli_parse_long(v, 0, 0x7fffffffL, &seed))
                return cli_usage_error(usage, "--seed needs a non-negative number");
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--labels", &v)) != 0) {
            if (r < 0)
                return cli_usage_error(usage, "--labels needs a .npy file");
            labels = v;
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--image-spec", &v)) != 0) {
            if (r < 0)
                return cli_usage_error(usage, "--image-spec needs a spec such as resize=256,crop=224");
            image_spec = v;
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--samples", &v)) != 0) {
            if (r < 0 || !cli_parse_long(v, 1, 0x7fffffffL, &samples))
                return cli_usage_error(usage, "--samples needs a positive count");
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--batch", &v)) != 0) {
            if (r < 0 || !cli_parse_long(v, 1, 1 << 20, &batch))
                return cli_usage_error(usage, "--batch needs a positive count");
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--threads", &v)) != 0) {
            if (r < 0 || !cli_parse_long(v, 0, 1024, &threads))
                return cli_usage_error(usage, "--threads needs a number from 0 to 1024");
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--label", &v)) != 0) {
            if (r < 0)
                return cli_usage_error(usage, "--label needs a text");
            label = v;
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--report", &v)) != 0) {
            if (r < 0)
                return cli_usage_error(usage, "--report needs a file name");
            report = v;
        } else if (strcmp(a, "--emulate") == 0) {
            emulate = true;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            quiet = true;
        } else if (a[0] == '-' && a[1]) {
            return cli_usage_error(usage, "unknown option '%s' for compare", a);
        } else if (!paths[0]) {
            paths[0] = a;
        } else if (!paths[1]) {
            paths[1] = a;
        } else {
            return cli_usage_error(usage, "unexpected argument '%s' (compare takes two models)", a);
        }
    }
    if (!paths[1])
        return cli_usage_error(usage, "compare needs FLOAT.onnx and QUANT.onnx");
    if (!data == !random_n)
        return cli_usage_error(usage, "compare needs either --data DATA or --random N");
    if (labels && !data)
        return cli_usage_error(usage, "--labels needs --data (random inputs have no labels)");
    if (!label)
        label = cli_base_name(paths[1]);

    oq_model *m[2] = {NULL, NULL};
    oq_session *s[2] = {NULL, NULL};
    oq_data_reader *reader = NULL;
    oq_compare_result *res = NULL;
    random_source rnd = {0};
    FILE *rf = NULL;
    int rc = 0;
    oq_status st = OQ_OK;

    if (report) /* fail before the long part when the report cannot be written */
        st = oq_report_open(report, &rf);
    for (int k = 0; k < 2 && st == OQ_OK; k++) {
        oq_session_options so = oq_session_options_default();
        so.threads = (int)threads;
        so.emulate_qdq = k == 1 && emulate;
        st = cli_open_options(paths[k], &so, &m[k], &s[k]);
    }
    oq_batch_source src = {0};
    if (st == OQ_OK && data) {
        oq_reader_options ro = oq_reader_options_default();
        ro.batch_size = (size_t)batch;
        ro.max_samples = (size_t)samples;
        ro.labels = labels;
        ro.image_spec = image_spec;
        if ((st = oq_data_reader_open(data, m[0], &ro, &reader)) == OQ_OK)
            oq_batch_source_reader(&src, reader);
    } else if (st == OQ_OK) {
        rnd.session = s[0];
        rnd.total = random_n;
        rnd.batch = batch;
        rnd.seed = (uint64_t)seed;
        src.next = random_next;
        src.user = &rnd;
        src.total = random_n;
    }
    cli_progress pb;
    cli_progress_init(&pb, "comparing", quiet);
    if (st == OQ_OK) {
        oq_compare_options co = {paths[0], paths[1], on_progress, &pb};
        st = oq_compare_run(s[0], s[1], &src, &co, &res);
    }
    if (st != OQ_OK) {
        cli_progress_end(&pb);
        rc = cli_fail(st);
        goto done;
    }
    const oq_latency_stats *lat = res->latency;
    int64_t bytes[2] = {cli_file_bytes(paths[0]), cli_file_bytes(paths[1])};
    size_t n_out = res->n_outputs;
    int64_t done = res->samples;
    size_t n_times = res->runs;
    double speed = lat[1].median > 0 ? lat[0].median / lat[1].median : NAN;
    double size_ratio = bytes[0] > 0 ? (double)bytes[1] / (double)bytes[0] : NAN;
    char data_desc[64];
    snprintf(data_desc, sizeof data_desc, "random:%ld", random_n);
    const char *data_name = data ? data : data_desc;
    bool any_acc = false;
    for (size_t j = 0; j < n_out; j++)
        any_acc |= res->outputs[j].has_accuracy;

    int used = cli_threads_used((int)threads);
    printf("float:  %s  %lld bytes  latency median %.4g ms (p10 %.4g, p90 %.4g)\n", paths[0], (long long)bytes[0],
           lat[0].median, lat[0].p10, lat[0].p90);
    printf("quant:  %s  %lld bytes  latency median %.4g ms (p10 %.4g, p90 %.4g)%s\n", paths[1], (long long)bytes[1],
           lat[1].median, lat[1].p10, lat[1].p90, emulate ? "  [emulated]" : "");
    printf("size ratio (quant/float): %.3f   speed ratio (float/quant): %.2fx\n", size_ratio, speed);
    printf("samples: %lld from %s, %zu runs of each, threads %d, isa %s\n\n", (long long)done, data_name, n_times,
           used, cli_isa_name());
    printf("%-16s %11s %11s %11s %11s %11s %11s", "output", "mean_abs", "max_abs", "mean_max", "sqnr_db", "cosine",
           "argmax_dis");
    if (any_acc)
        printf(" %11s %11s", "top1_float", "top1_quant");
    putchar('\n');
    for (size_t j = 0; j < n_out; j++) {
        const oq_diff_stats *d = &res->outputs[j].diff;
        printf("%-16s", res->outputs[j].name);
        print_value(oq_diff_stats_mean_abs(d), " %11.4g");
        print_value(d->count ? d->max_abs_diff : NAN, " %11.4g");
        print_value(oq_diff_stats_mean_sample_max(d), " %11.4g");
        print_value(oq_diff_stats_sqnr_db(d), " %11.2f");
        print_value(oq_diff_stats_cosine(d), " %11.6f");
        print_value(oq_diff_stats_argmax_disagreement(d), " %11.4f");
        if (any_acc) {
            bool acc = res->outputs[j].has_accuracy;
            print_value(acc ? oq_accuracy_top1(&res->outputs[j].acc_ref) : NAN, " %11.4f");
            print_value(acc ? oq_accuracy_top1(&res->outputs[j].acc_test) : NAN, " %11.4f");
        }
        putchar('\n');
    }

    if (rf) {
        oq_json j;
        oq_json_init(&j, rf);
        oq_json_begin_object(&j, false);
        oq_report_header(&j, "compare", label, ONNXQ_VERSION, used);
        write_model(&j, "float_model", paths[0], bytes[0], &lat[0]);
        write_model(&j, "quant_model", paths[1], bytes[1], &lat[1]);
        oq_json_kv_number(&j, "size_ratio", size_ratio);
        oq_json_kv_number(&j, "speed_ratio", speed);
        oq_json_kv_int(&j, "samples", done);
        oq_json_kv_int(&j, "runs", (int64_t)n_times);
        oq_json_kv_string(&j, "data", data_name);
        oq_json_kv_string(&j, "labels", labels);
        oq_json_kv_bool(&j, "emulate", emulate);
        oq_json_key(&j, "outputs");
        oq_json_begin_array(&j, false);
        for (size_t k = 0; k < n_out; k++) {
            const oq_diff_stats *d = &res->outputs[k].diff;
            oq_json_begin_object(&j, false);
            oq_json_kv_string(&j, "name", res->outputs[k].name);
            oq_json_kv_number(&j, "mean_abs_diff", oq_diff_stats_mean_abs(d));
            oq_json_kv_number(&j, "max_abs_diff", d->count ? d->max_abs_diff : NAN);
            oq_json_kv_number(&j, "mean_max_abs_diff", oq_diff_stats_mean_sample_max(d));
            oq_json_kv_number(&j, "sqnr_db", oq_diff_stats_sqnr_db(d));
            oq_json_kv_number(&j, "cosine", oq_diff_stats_cosine(d));
            oq_json_kv_number(&j, "argmax_disagreement", oq_diff_stats_argmax_disagreement(d));
            bool acc = res->outputs[k].has_accuracy;
            oq_json_kv_number(&j, "top1_float", acc ? oq_accuracy_top1(&res->outputs[k].acc_ref) : NAN);
            oq_json_kv_number(&j, "top1_quant", acc ? oq_accuracy_top1(&res->outputs[k].acc_test) : NAN);
            oq_json_end_object(&j);
        }
        oq_json_end_array(&j);
        oq_json_end_object(&j);
        st = oq_report_close(rf, report);
        rf = NULL;
        if (st != OQ_OK)
            rc = cli_fail(st);
    }

done:
    if (rf) { /* failed: remove the unfinished report */
        fclose(rf);
        remove(report);
    }
    for (int k = 0; k < 2; k++) {
        oq_session_destroy(s[k]);
        oq_model_destroy(m[k]);
    }
    cli_tensors_free(rnd.t, rnd.n);
    oq_data_reader_destroy(reader);
    oq_compare_result_destroy(res);
    return rc;
}
