/* onnxq quantize: static (calibrated) or dynamic int8 quantization of a model,
 * QDQ or QOperator output, per-node rules. Prints one line per quantized
 * tensor and the totals; OUT is written through a temporary file. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] =
    "usage: onnxq quantize IN.onnx OUT.onnx [--mode static|dynamic] [options]\n"
    "\n"
    "static (default): weights int8 per channel, activations uint8 with ranges\n"
    "from calibration (--calib DATA, or a table from `onnxq calibrate` via --table).\n"
    "dynamic: weights of MatMul/Gemm int8 per output column, of LSTM per gate column\n"
    "(com.microsoft DynamicQuantizeLSTM) and of Conv per output channel (ConvInteger),\n"
    "activations quantized at run time; needs no data.\n"
    "\n"
    "options:\n"
    "  --mode static|dynamic    (default static)\n"
    "  --calib DATA             calibration data: .npy, .npz, folder or list (see onnxq calibrate --help)\n"
    "  --table FILE             ranges from `onnxq calibrate` instead of --calib\n"
    "  --method M               minmax, moving_average, entropy, percentile, mse (default)\n"
    "  --percentile P, --bins N, --samples N, --batch N, --threads N   calibration settings\n"
    "  --format qdq|qoperator   static output form (default qdq)\n"
    "  --activation-type uint8|int8   (default uint8, asymmetric)\n"
    "  --symmetric-activation   activations symmetric around 0\n"
    "  --weight-type int8|uint8 (default int8, symmetric)\n"
    "  --per-tensor             one weight scale per tensor instead of per channel\n"
    "  --reduce-range           7-bit weights (CPUs without VNNI)\n"
    "  --op-types A,B / --ops A,B   operator types to quantize (dynamic default: MatMul,Gemm,LSTM,Conv)\n"
    "  --exclude NAME,...       node names or glob patterns kept in float\n"
    "  --rules FILE             JSON per-node rules ({\"global\", \"op_types\", \"nodes\", \"exclude\"})\n"
    "  --dynamic-form fused|matmulinteger   dynamic output: com.microsoft DynamicQuantizeMatMul (default)\n"
    "                           or DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul\n"
    "                           (standard operators only: LSTM stays float)\n"
    "  --no-prepare             skip constant folding / BatchNorm folding / cleanup\n"
    "  --no-bias-correction     static: keep the biases as quantized (by default each int8 Conv/Gemm's bias\n"
    "                           is corrected by its mean output error per channel on the --calib data,\n"
    "                           one pass over that data per layer)\n"
    "  --adaptive-rounding      static: round each int8 Conv's weights up or down to lower the layer's\n"
    "                           output error against the float model on the --calib data (AdaRound), as\n"
    "                           a step of bias correction: one more int8 and float pass per Conv (quantizing\n"
    "                           takes 3-5x as long); off by default: it fits the calibration data better,\n"
    "                           held-out agreement and SQNR moved within +-1 dB either way\n"
    "  --no-equalize-data       static: no balancing of Conv input channels against their weights from\n"
    "                           their ranges on the --calib data (by default done where a per-channel\n"
    "                           scale fits in exactly: after a decomposed HardSwish, a linear bottleneck,\n"
    "                           along a residual stream, at a squeeze-and-excitation gate; the\n"
    "                           rescaled values get new names, their per-channel divisors are\n"
    "                           recorded in the metadata so that `onnxq debug` compares them)\n"
    "  --bias-correction-samples N   samples each of those passes reads (default 128, 0: all)\n"
    "  --uint8-input            the output takes uint8 images (0-255, layout of --image-spec);\n"
    "                           the spec's scale/mean/std move into the model; calibrate on\n"
    "                           an image folder (or uint8 arrays)\n"
    "  --target-agreement A     static: keep the fewest layers in float (worst first, by\n"
    "                           `onnxq debug`'s own-error ranking) until the top-1 agreement\n"
    "                           with the float model reaches A (0.99 = 99%)\n"
    "  --eval-data DATA         data the agreement is measured on (default: the --calib data)\n"
    "  -q, --quiet              no per-tensor lines, no progress bar\n"
    "  -h, --help               show this help\n";

static void print_line(void *user, const char *line)
{
    (void)user;
    printf("%s\n", line);
    fflush(stdout);
}

static long file_bytes(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

int cmd_quantize(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *table_path = NULL, *eval_data = NULL, *v;
    double target = 0;
    bool uint8_input = false;
    oq_quant_options o = oq_quant_options_default();
    cli_calib c;
    cli_calib_init(&c);
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        int r;
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return 0;
        }
        if ((r = cli_calib_option(argc, argv, &i, &c, usage)) >= 0) {
            if (r > 0)
                return r;
            quiet |= c.quiet;
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--mode", &v)) != 0) {
            if (r > 0 && !strcmp(v, "static"))
                o.mode = OQ_QUANT_STATIC;
            else if (r > 0 && !strcmp(v, "dynamic"))
                o.mode = OQ_QUANT_DYNAMIC;
            else
                return cli_usage_error(usage, "--mode takes static or dynamic");
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--table", &v)) != 0) {
            if (r < 0)
                return cli_usage_error(usage, "--table needs a file");
            table_path = v;
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--format", &v)) != 0) {
            if (r > 0 && !strcmp(v, "qdq"))
                o.format = OQ_QUANT_QDQ;
            else if (r > 0 && !strcmp(v, "qoperator"))
                o.format = OQ_QUANT_QOPERATOR;
            else
                return cli_usage_error(usage, "--format takes qdq or qoperator");
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--activation-type", &v)) != 0) {
            if (r > 0 && !strcmp(v, "uint8"))
                o.activation_type = OQ_UINT8;
            else if (r > 0 && !strcmp(v, "int8"))
                o.activation_type = OQ_INT8;
            else
                return cli_usage_error(usage, "--activation-type takes uint8 or int8");
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--weight-type", &v)) != 0) {
            if (r > 0 && !strcmp(v, "uint8"))
                o.weight_type = OQ_UINT8;
            else if (r > 0 && !strcmp(v, "int8"))
                o.weight_type = OQ_INT8;
            else
                return cli_usage_error(usage, "--weight-type takes int8 or uint8");
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--dynamic-form", &v)) != 0) {
            if (r > 0 && !strcmp(v, "fused"))
                o.dynamic_form = OQ_DYNAMIC_FUSED;
            else if (r > 0 && !strcmp(v, "matmulinteger"))
                o.dynamic_form = OQ_DYNAMIC_MATMULINTEGER;
            else
                return cli_usage_error(usage, "--dynamic-form takes fused or matmulinteger");
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--op-types", &v)) != 0 ||
                   (r = cli_opt(argc, argv, &i, NULL, "--ops", &v)) != 0) {
            if (r < 0)
                return cli_usage_error(usage, "--op-types needs a list such as MatMul,Gemm");
            o.op_types = v;
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--exclude", &v)) != 0) {
            if (r < 0)
                return cli_usage_error(usage, "--exclude needs node names");
            o.exclude = v;
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--rules", &v)) != 0) {
            if (r < 0)
                return cli_usage_error(usage, "--rules needs a file");
            o.rules_path = v;
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--target-agreement", &v)) != 0) {
            char *end = NULL;
            target = r > 0 ? strtod(v, &end) : 0;
            if (r < 0 || !end || *end || !(target > 0 && target <= 1))
                return cli_usage_error(usage, "--target-agreement needs a fraction in (0, 1], e.g. 0.99");
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--eval-data", &v)) != 0) {
            if (r < 0)
                return cli_usage_error(usage, "--eval-data needs a file or folder");
            eval_data = v;
        } else if (!strcmp(argv[i], "--symmetric-activation")) {
            o.activation_symmetric = 1;
        } else if (!strcmp(argv[i], "--per-tensor")) {
            o.per_channel = 0;
        } else if (!strcmp(argv[i], "--per-channel")) {
            o.per_channel = 1;
        } else if (!strcmp(argv[i], "--reduce-range")) {
            o.reduce_range = 1;
        } else if (!strcmp(argv[i], "--uint8-input")) {
            uint8_input = true;
        } else if (!strcmp(argv[i], "--no-prepare")) {
            o.prepare = 0;
        } else if (!strcmp(argv[i], "--no-equalize-data")) {
            o.equalize_data = 0;
        } else if (!strcmp(argv[i], "--adaptive-rounding")) {
            o.adaptive_rounding = 1;
        } else if (!strcmp(argv[i], "--no-adaptive-rounding")) {
            o.adaptive_rounding = 0;
        } else if (!strcmp(argv[i], "--no-bias-correction")) {
            o.bias_correction = 0;
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--bias-correction-samples", &v)) != 0) {
            long n;
            if (r < 0 || !cli_parse_long(v, 0, 0x7fffffffL, &n))
                return cli_usage_error(usage, "--bias-correction-samples takes a count (0: all the data)");
            o.bias_correction_samples = n;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error(usage, "unknown option '%s'", argv[i]);
        } else if (!in) {
            in = argv[i];
        } else if (!out) {
            out = argv[i];
        } else {
            return cli_usage_error(usage, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!in || !out)
        return cli_usage_error(usage, "quantize needs IN and OUT");
    if (o.mode == OQ_QUANT_STATIC && !c.data && !table_path)
        return cli_usage_error(usage, "static quantization needs --calib DATA or --table FILE (or use --mode dynamic)");
    if (o.mode == OQ_QUANT_DYNAMIC && (c.data || table_path))
        return cli_usage_error(usage, "dynamic quantization takes no calibration data");
    if (target > 0 && o.mode != OQ_QUANT_STATIC)
        return cli_usage_error(usage, "--target-agreement is for static quantization");
    if (target > 0 && !eval_data && !c.data)
        return cli_usage_error(usage, "--target-agreement needs --eval-data DATA (or --calib DATA)");
    if (!quiet) {
        o.report = print_line;
    }
    oq_model *m = NULL, *q = NULL;
    oq_data_reader *r = NULL;
    oq_calib_table *t = NULL;
    oq_status st = oq_model_load(in, NULL, &m);
    if (st == OQ_OK && uint8_input) {
        st = oq_model_uint8_input(m, c.reader.image_spec);
        if (st == OQ_OK && !quiet)
            printf("input takes uint8 images; normalization %s folded into the model\n",
                   c.reader.image_spec ? c.reader.image_spec : "(scale=255)");
    }
    if (st == OQ_OK && table_path)
        st = oq_calib_table_load(table_path, &t);
    if (st == OQ_OK && c.data && !table_path) {
        st = cli_calib_open(&c, m, &r);
        o.calib = c.opt;
    }
    double t0 = cli_now_ms();
    oq_data_reader *er = NULL;
    oq_target_result tr = {0};
    /* with --calib, each step of the search quantizes as plain quantization does (its own calibration,
     * the data-driven equalization, bias correction) */
    o.table = t;
    if (st == OQ_OK && target > 0) {
        oq_reader_options ro = oq_reader_options_default();
        st = eval_data ? oq_data_reader_open(eval_data, m, &ro, &er) : OQ_OK;
        oq_target_options to = {0};
        to.target = target;
        to.threads = c.opt.threads;
        to.report = print_line;
        to.calib = r;
        if (st == OQ_OK)
            st = oq_quantize_to_target(m, &o, &to, er ? er : r, &q, &tr);
        if (st == OQ_OK)
            printf("%s: top-1 agreement %.2f%% %s the target %.2f%%, %d layer%s kept in float%s%s\n", out,
                   100 * tr.agreement, tr.reached ? "meets" : "MISSES", 100 * target, tr.steps,
                   tr.steps == 1 ? "" : "s", tr.steps ? ": " : "", tr.steps ? tr.excluded : "");
    } else if (st == OQ_OK)
        st = oq_quantize(m, &o, r, &q);
    free(tr.excluded);
    oq_data_reader_destroy(er);
    if (st == OQ_OK)
        st = oq_model_save(q, out, NULL);
    oq_model_destroy(q);
    oq_calib_table_destroy(t);
    oq_data_reader_destroy(r);
    oq_model_destroy(m);
    if (st != OQ_OK)
        return cli_fail(st);
    long a = file_bytes(in), b = file_bytes(out);
    printf("wrote %s: %.2f MiB -> %.2f MiB (%.3f of %s) in %.1f s\n", out, a >= 0 ? a / 1048576.0 : 0,
           b >= 0 ? b / 1048576.0 : 0, a > 0 && b >= 0 ? (double)b / (double)a : 0.0, in,
           (cli_now_ms() - t0) / 1000.0);
    return 0;
}
