/* onnxq debug: the numeric suite. Runs a float model and its QDQ quantization
 * over the same data and ranks the quantized layers by the SQNR of their outputs
 * (worst first), with the error each layer adds on its own and the SQNR of its
 * weights, so the user sees which layer loses accuracy and can keep it in float
 * (`onnxq quantize ... --exclude NODE`). --report writes the "debug" JSON. */
#include "cli.h"
#include "../../src/eval/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: onnxq debug FLOAT.onnx QUANT.onnx --data DATA [options]\n"
    "\n"
    "Matches every activation QUANT quantizes (a QuantizeLinear on a float tensor)\n"
    "to the same tensor of FLOAT, runs both over DATA and prints the layers worst\n"
    "first:\n"
    "  sqnr      SQNR (dB) of the layer's output in QUANT vs FLOAT (the error of all\n"
    "            layers before it included)\n"
    "  own       SQNR of the layer alone: FLOAT's values of its inputs fed into the\n"
    "            layer's quantized pattern (the error this layer adds by itself; for a\n"
    "            float node whose output is quantized, that quantization)\n"
    "  weights   SQNR of its dequantized weights vs FLOAT's (after BatchNorm folding)\n"
    "QUANT must be a QDQ model made from FLOAT (onnxq quantize --format qdq, the\n"
    "default, or another QDQ quantizer that keeps the tensor names). FLOAT is\n"
    "compared after onnxq's preparation passes (BatchNorm folding, cross-layer\n"
    "equalization), as the quantizer saw it, unless FLOAT as it is matches more\n"
    "of QUANT's tensors; values the quantizer rescaled per channel are compared\n"
    "through the divisors it records in QUANT's metadata (onnxq.rescaled.*).\n"
    "\n"
    "options:\n"
    "  --data DATA      inputs, as for calibration (.npy, .npz, folder, list)\n"
    "  --samples N      use at most N samples (default 32)\n"
    "  --threads N      threads of each session (0 = one per core; default 0)\n"
    "  --emulate        run QUANT with int8 emulated in float instead of on the\n"
    "                   integer kernels (separates quantization error from kernel error)\n"
    "  --top K          print the K worst layers (default: all)\n"
    "  --exclude-below DB  suggest excluding the layer with the lowest own SQNR if it is\n"
    "                   below DB (default 20); exclude it, quantize again and repeat\n"
    "  --report FILE    write the result as JSON (docs/reports.md, kind \"debug\")\n"
    "  -q, --quiet      no progress bar\n"
    "  -h, --help       show this help\n";

static void on_progress(void *user, int64_t done, int64_t total) { cli_progress_update(user, done, total); }

static void put_db(double v)
{
    if (isnan(v))
        printf(" %9s", "-");
    else if (isinf(v))
        printf(" %9s", "exact");
    else
        printf(" %9.2f", v);
}

/* The layer whose own SQNR is lowest, if below `below` dB (the graph input excluded:
 * it cannot be kept in float); n when none. Layers downstream of a bad one often look
 * bad too (they inherit its range), so one at a time: exclude, quantize, look again. */
static size_t worst_own(const oq_layer_report *l, size_t n, double below)
{
    size_t w = n;
    double best = below;
    for (size_t i = 0; i < n; i++) {
        double own = l[i].own.count ? oq_diff_stats_sqnr_db(&l[i].own) : NAN;
        /* a float node's own error is its output's quantization: excluding it would not remove it */
        if (!isnan(own) && own < best && !l[i].float_node && strcmp(l[i].op_type, "(graph input)")) {
            best = own;
            w = i;
        }
    }
    return w;
}

int cmd_debug(int argc, char **argv)
{
    const char *paths[2] = {NULL, NULL}, *data = NULL, *report = NULL, *v;
    long samples = 32, threads = 0, top = 0;
    double below = 20;
    bool emulate = false, quiet = false;
    for (int i = 1; i < argc; i++) {
        int r;
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return 0;
        }
        if ((r = cli_opt(argc, argv, &i, NULL, "--data", &v)) != 0) {
            if (r < 0)
                return cli_usage_error(usage, "--data needs a file or folder");
            data = v;
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--samples", &v)) != 0) {
            if (r < 0 || !cli_parse_long(v, 1, 1L << 40, &samples))
                return cli_usage_error(usage, "--samples needs a positive number");
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--threads", &v)) != 0) {
            if (r < 0 || !cli_parse_long(v, 0, 1024, &threads))
                return cli_usage_error(usage, "--threads needs a number from 0 to 1024");
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--top", &v)) != 0) {
            if (r < 0 || !cli_parse_long(v, 1, 1L << 30, &top))
                return cli_usage_error(usage, "--top needs a positive number");
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--exclude-below", &v)) != 0) {
            char *end = NULL;
            below = r > 0 ? strtod(v, &end) : NAN;
            if (r < 0 || !end || *end || !isfinite(below))
                return cli_usage_error(usage, "--exclude-below needs a number of dB");
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--report", &v)) != 0) {
            if (r < 0)
                return cli_usage_error(usage, "--report needs a file name");
            report = v;
        } else if (strcmp(argv[i], "--emulate") == 0) {
            emulate = true;
        } else if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0) {
            quiet = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error(usage, "unknown option '%s'", argv[i]);
        } else if (!paths[0]) {
            paths[0] = argv[i];
        } else if (!paths[1]) {
            paths[1] = argv[i];
        } else {
            return cli_usage_error(usage, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!paths[1])
        return cli_usage_error(usage, "debug needs FLOAT.onnx and QUANT.onnx");
    if (!data)
        return cli_usage_error(usage, "debug needs --data DATA");

    oq_model *m[2] = {NULL, NULL};
    oq_data_reader *reader = NULL;
    oq_layer_report *layers = NULL;
    size_t n = 0;
    FILE *rf = NULL;
    oq_status st = report ? oq_report_open(report, &rf) : OQ_OK;
    for (int k = 0; k < 2 && st == OQ_OK; k++)
        st = oq_model_load(paths[k], NULL, &m[k]);
    if (st == OQ_OK) {
        oq_reader_options ro = oq_reader_options_default();
        ro.max_samples = (size_t)samples;
        st = oq_data_reader_open(data, m[0], &ro, &reader);
    }
    cli_progress pb;
    cli_progress_init(&pb, "debugging", quiet);
    if (st == OQ_OK) {
        oq_debug_options o = oq_debug_options_default();
        o.threads = (int)threads;
        o.emulate = emulate;
        o.progress = on_progress;
        o.progress_user = &pb;
        st = oq_debug_layers(m[0], m[1], reader, &o, &layers, &n);
        cli_progress_end(&pb);
    }
    if (st == OQ_OK) {
        int64_t got = oq_data_reader_sample_count(reader);
        printf("%zu quantized layers of %s matched in %s; %lld samples%s; worst first\n\n", n, paths[1], paths[0],
               (long long)got, emulate ? ", int8 emulated in float" : ", integer kernels");
        printf("%4s  %-36s %-16s %9s %9s %9s %11s %11s\n", "rank", "node", "op", "sqnr_db", "own_db", "weight_db",
               "mean_abs", "max_abs");
        size_t shown = top > 0 && (size_t)top < n ? (size_t)top : n;
        for (size_t i = 0; i < shown; i++) {
            const oq_layer_report *l = &layers[i];
            printf("%4zu  %-36s %-16s", i + 1, l->node, l->op_type);
            put_db(oq_diff_stats_sqnr_db(&l->out));
            put_db(l->own.count ? oq_diff_stats_sqnr_db(&l->own) : NAN);
            put_db(l->weight_sqnr_db);
            printf(" %11.4g %11.4g\n", oq_diff_stats_mean_abs(&l->out), l->out.max_abs_diff);
        }
        size_t w = worst_own(layers, n, below);
        if (w < n)
            printf("\nsuggested: onnxq quantize ... --exclude %s   (own SQNR %.1f dB < %g; quantize again and repeat)\n",
                   layers[w].node, oq_diff_stats_sqnr_db(&layers[w].own), below);
        else
            printf("\nsuggested: nothing to exclude (every layer's own SQNR is at least %g dB)\n", below);
    }
    if (st == OQ_OK && rf) {
        oq_json j;
        oq_json_init(&j, rf);
        oq_json_begin_object(&j, false);
        oq_report_header(&j, "debug", cli_base_name(paths[1]), ONNXQ_VERSION, cli_threads_used((int)threads));
        oq_json_key(&j, "float_model");
        oq_json_begin_object(&j, true);
        oq_json_kv_string(&j, "path", paths[0]);
        oq_json_end_object(&j);
        oq_json_key(&j, "quant_model");
        oq_json_begin_object(&j, true);
        oq_json_kv_string(&j, "path", paths[1]);
        oq_json_end_object(&j);
        oq_json_kv_int(&j, "samples", oq_data_reader_sample_count(reader));
        oq_json_kv_bool(&j, "emulate", emulate);
        oq_json_key(&j, "layers");
        oq_json_begin_array(&j, false);
        for (size_t i = 0; i < n; i++) {
            const oq_layer_report *l = &layers[i];
            oq_json_begin_object(&j, true);
            oq_json_kv_string(&j, "name", l->tensor);
            oq_json_kv_string(&j, "node", l->node);
            oq_json_kv_string(&j, "op_type", l->op_type);
            oq_json_kv_number(&j, "sqnr_db", oq_diff_stats_sqnr_db(&l->out));
            oq_json_kv_number(&j, "own_sqnr_db", l->own.count ? oq_diff_stats_sqnr_db(&l->own) : NAN);
            oq_json_kv_number(&j, "weight_sqnr_db", l->weight_sqnr_db);
            oq_json_kv_bool(&j, "float_node", l->float_node != 0);
            oq_json_kv_number(&j, "mean_abs_diff", oq_diff_stats_mean_abs(&l->out));
            oq_json_kv_number(&j, "max_abs_diff", l->out.max_abs_diff);
            oq_json_end_object(&j);
        }
        oq_json_end_array(&j);
        oq_json_key(&j, "suggested_exclude");
        oq_json_begin_array(&j, true);
        size_t w = worst_own(layers, n, below);
        if (w < n)
            oq_json_string(&j, layers[w].node);
        oq_json_end_array(&j);
        oq_json_end_object(&j);
        fputc('\n', rf);
        st = oq_report_close(rf, report);
        rf = NULL;
    }
    if (rf) { /* failed: remove the unfinished report */
        fclose(rf);
        remove(report);
    }
    oq_layer_reports_destroy(layers, n);
    oq_data_reader_destroy(reader);
    oq_model_destroy(m[0]);
    oq_model_destroy(m[1]);
    return st == OQ_OK ? 0 : cli_fail(st);
}
