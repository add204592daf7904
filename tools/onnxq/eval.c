/* onnxq eval: top-1 / top-k accuracy of one or more models on labelled data
 * (an image folder labelled by subfolder, or inputs with a labels .npy), side
 * by side; --report writes the "eval" JSON of docs/reports.md. */
#include "cli.h"
#include "../../src/eval/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: onnxq eval MODEL... --data DATA [--labels L.npy] [options]\n"
    "\n"
    "Runs every MODEL over DATA and prints its top-1 and top-k accuracy against the\n"
    "labels, one row per model. The class scores are the model's first output (or\n"
    "--output NAME), class axis last.\n"
    "\n"
    "DATA: an image folder with one subfolder per class (labels from the sorted\n"
    "subfolder names), or .npy/.npz inputs as for calibration with --labels.\n"
    "\n"
    "options:\n"
    "  --data DATA        labelled inputs (required)\n"
    "  --labels L.npy     integer labels, one per sample (first axis); an image folder with\n"
    "                     class subfolders labels its images itself\n"
    "  --image-spec SPEC  image folders: resize=N,crop=N|HxW,order,layout,scale,mean,std\n"
    "  --top K            the k of top-k (default 5)\n"
    "  --output NAME      output holding the class scores (default: the first)\n"
    "  --samples N        use at most N samples\n"
    "  --batch N          samples per run when the batch dimension is free (default 32)\n"
    "  --threads N        threads (0 = one per core; default 0)\n"
    "  --label TEXT       name of the run in the report (default: the first model's file name)\n"
    "  --report FILE      write the result as JSON (docs/reports.md, kind \"eval\")\n"
    "  -q, --quiet        no progress bar\n"
    "  -h, --help         show this help\n";

typedef struct model_result {
    const char *path;
    const char *output; /* owned copy of the scored output's name */
    int64_t bytes;
    oq_accuracy acc;
} model_result;

static void on_progress(void *user, int64_t done, int64_t total) { cli_progress_update(user, done, total); }

/* Runs one model over the data and fills r->acc. */
static oq_status eval_model(model_result *r, const char *data, const oq_reader_options *ro, const char *output,
                            int threads, bool quiet, int64_t *samples)
{
    oq_model *m = NULL;
    oq_session *s = NULL;
    oq_data_reader *reader = NULL;
    size_t n_out = 0, scored = 0;
    oq_session_options so = oq_session_options_default();
    so.threads = threads;
    oq_status st = cli_open_options(r->path, &so, &m, &s);
    if (st != OQ_OK)
        return st;
    n_out = oq_session_output_count(s);
    if (n_out == 0) {
        st = cli_error(OQ_E_GRAPH, "'%s' has no outputs", r->path);
        goto done;
    }
    if (output) {
        for (scored = 0; scored < n_out && strcmp(oq_session_output(s, scored)->name, output) != 0; scored++)
            ;
        if (scored == n_out) {
            st = cli_error(OQ_E_INVALID_ARG, "'%s' has no output named '%s'", r->path, output);
            goto done;
        }
    }
    if ((st = oq_data_reader_open(data, m, ro, &reader)) != OQ_OK)
        goto done;
    oq_batch_source src;
    oq_batch_source_reader(&src, reader);
    char what[80];
    snprintf(what, sizeof what, "%.60s", cli_base_name(r->path));
    cli_progress pb;
    cli_progress_init(&pb, what, quiet);
    st = oq_accuracy_run(s, scored, &src, r->path, on_progress, &pb, &r->acc);
    if (st != OQ_OK) {
        cli_progress_end(&pb);
        cli_error_context(st, "evaluating on '%s'", data);
        goto done;
    }
    *samples = r->acc.samples;
    if (!(r->output = strdup(oq_session_output(s, scored)->name)))
        st = cli_error(OQ_E_NOMEM, "out of memory");
done:
    oq_data_reader_destroy(reader);
    oq_session_destroy(s);
    oq_model_destroy(m);
    return st;
}

int cmd_eval(int argc, char **argv)
{
    const char *data = NULL, *output = NULL, *label = NULL, *report = NULL, *v;
    long top = 5, samples = 0, batch = 0, threads = 0;
    bool quiet = false;
    oq_reader_options ro = oq_reader_options_default();
    model_result *models = calloc((size_t)argc, sizeof *models);
    size_t n_models = 0;
    FILE *rf = NULL;
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
        if ((r = cli_opt(argc, argv, &i, NULL, "--data", &v)) != 0) {
            if (r < 0) {
                rc = cli_usage_error(usage, "--data needs a path");
                goto done;
            }
            data = v;
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--labels", &v)) != 0) {
            if (r < 0) {
                rc = cli_usage_error(usage, "--labels needs a .npy file");
                goto done;
            }
            ro.labels = v;
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--image-spec", &v)) != 0) {
            if (r < 0) {
                rc = cli_usage_error(usage, "--image-spec needs a spec such as resize=256,crop=224");
                goto done;
            }
            ro.image_spec = v;
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--top", &v)) != 0) {
            if (r < 0 || !cli_parse_long(v, 1, 1000000, &top)) {
                rc = cli_usage_error(usage, "--top needs a positive number");
                goto done;
            }
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--output", &v)) != 0) {
            if (r < 0) {
                rc = cli_usage_error(usage, "--output needs an output name");
                goto done;
            }
            output = v;
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--samples", &v)) != 0) {
            if (r < 0 || !cli_parse_long(v, 1, 0x7fffffffL, &samples)) {
                rc = cli_usage_error(usage, "--samples needs a positive count");
                goto done;
            }
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--batch", &v)) != 0) {
            if (r < 0 || !cli_parse_long(v, 1, 1 << 20, &batch)) {
                rc = cli_usage_error(usage, "--batch needs a positive count");
                goto done;
            }
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--threads", &v)) != 0) {
            if (r < 0 || !cli_parse_long(v, 0, 1024, &threads)) {
                rc = cli_usage_error(usage, "--threads needs a number from 0 to 1024");
                goto done;
            }
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--label", &v)) != 0) {
            if (r < 0) {
                rc = cli_usage_error(usage, "--label needs a text");
                goto done;
            }
            label = v;
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--report", &v)) != 0) {
            if (r < 0) {
                rc = cli_usage_error(usage, "--report needs a file name");
                goto done;
            }
            report = v;
        } else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
            quiet = true;
        } else if (a[0] == '-' && a[1]) {
            rc = cli_usage_error(usage, "unknown option '%s' for eval", a);
            goto done;
        } else {
            models[n_models++].path = a;
        }
    }
    if (!n_models) {
        rc = cli_usage_error(usage, "eval needs at least one MODEL");
        goto done;
    }
    if (!data) {
        rc = cli_usage_error(usage, "eval needs --data DATA");
        goto done;
    }
    ro.batch_size = (size_t)batch;
    ro.max_samples = (size_t)samples;
    int64_t n_samples = 0;
    if (report) { /* fail before the long part when the report cannot be written */
        oq_status st = oq_report_open(report, &rf);
        if (st != OQ_OK) {
            rc = cli_fail(st);
            goto done;
        }
    }
    for (size_t k = 0; k < n_models; k++) {
        oq_accuracy_init(&models[k].acc, (int)top);
        models[k].bytes = cli_file_bytes(models[k].path);
        oq_status st = eval_model(&models[k], data, &ro, output, (int)threads, quiet, &n_samples);
        if (st != OQ_OK) {
            rc = cli_fail(st);
            goto done;
        }
    }
    printf("data: %s%s%s, %lld samples\n\n", data, ro.labels ? "  labels: " : "", ro.labels ? ro.labels : "",
           (long long)n_samples);
    char topk[16];
    snprintf(topk, sizeof topk, "top%ld", top);
    printf("%-40s %12s %9s %9s  %s\n", "model", "bytes", "top1", topk, "output");
    for (size_t k = 0; k < n_models; k++)
        printf("%-40s %12lld %8.2f%% %8.2f%%  %s\n", models[k].path, (long long)models[k].bytes,
               100.0 * oq_accuracy_top1(&models[k].acc), 100.0 * oq_accuracy_topk(&models[k].acc), models[k].output);

    if (rf) {
        oq_json j;
        oq_json_init(&j, rf);
        oq_json_begin_object(&j, false);
        oq_report_header(&j, "eval", label ? label : cli_base_name(models[0].path), ONNXQ_VERSION,
                         cli_threads_used((int)threads));
        oq_json_kv_int(&j, "samples", n_samples);
        oq_json_kv_string(&j, "data", data);
        oq_json_kv_string(&j, "labels", ro.labels);
        oq_json_kv_int(&j, "top", top);
        oq_json_key(&j, "models");
        oq_json_begin_array(&j, false);
        for (size_t k = 0; k < n_models; k++) {
            oq_json_begin_object(&j, true);
            oq_json_kv_string(&j, "path", models[k].path);
            oq_json_kv_string(&j, "label", cli_base_name(models[k].path));
            oq_json_kv_int(&j, "bytes", models[k].bytes);
            oq_json_kv_number(&j, "top1", oq_accuracy_top1(&models[k].acc));
            oq_json_kv_number(&j, "top5", top == 5 ? oq_accuracy_topk(&models[k].acc) : NAN);
            oq_json_kv_number(&j, "topk", oq_accuracy_topk(&models[k].acc));
            oq_json_kv_string(&j, "output", models[k].output);
            oq_json_end_object(&j);
        }
        oq_json_end_array(&j);
        oq_json_end_object(&j);
        oq_status st = oq_report_close(rf, report);
        rf = NULL;
        if (st != OQ_OK)
            rc = cli_fail(st);
    }
done:
    if (rf) { /* failed: remove the unfinished report */
        fclose(rf);
        remove(report);
    }
    for (size_t k = 0; k < n_models; k++)
        free((char *)models[k].output);
    free(models);
    return rc;
}
