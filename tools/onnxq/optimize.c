/* onnxq optimize: runs the graph preparation passes (the ones the quantizer
 * runs first: opset upgrade when needed, constant folding, BatchNorm folding,
 * cleanup) or a chosen list, prints what each changed and saves the result. */
#include "cli.h"

#include <string.h>

/* Library entry points (src/passes/pipeline.c); to move to onnxq.h. */
typedef void (*oq_optimize_report_fn)(void *user, const char *pass, const char *msg);
oq_status oq_model_optimize(oq_model *m, const char *passes, int64_t target_opset, oq_optimize_report_fn fn,
                            void *user);
size_t oq_optimize_pass_count(void);
const char *oq_optimize_pass_name(size_t i, const char **help);

static const char usage[] =
    "usage: onnxq optimize IN.onnx OUT.onnx [--passes a,b,...] [--opset N]\n"
    "       onnxq optimize --list\n"
    "\n"
    "Rewrites the float graph the way the quantizer prepares it and saves it. The\n"
    "default passes: upgrade_opset (only when the model is below opset 10, or with\n"
    "--opset), constant_fold, fuse_identity, fill_to_pad, fold_batchnorm, equalize_conv,\n"
    "dead_nodes. OUT is written to a temporary file first, so a failure never\n"
    "leaves it half written.\n"
    "\n"
    "options:\n"
    "  --passes LIST  run these passes in this order instead (see --list)\n"
    "  --opset N      raise the default-domain opset to N (7..17)\n"
    "  --list         list the passes\n"
    "  -h, --help     show this help\n";

static void report(void *user, const char *pass, const char *msg)
{
    (void)user;
    printf("%-16s %s\n", pass, msg);
}

int cmd_optimize(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *passes = NULL, *v;
    long opset = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--list")) {
            for (size_t k = 0; k < oq_optimize_pass_count(); k++) {
                const char *help, *name = oq_optimize_pass_name(k, &help);
                printf("  %-17s %s\n", name, help);
            }
            return 0;
        }
        if ((r = cli_opt(argc, argv, &i, NULL, "--passes", &v)) != 0) {
            if (r < 0 || !v[0])
                return cli_usage_error(usage, "--passes needs a comma-separated list");
            passes = v;
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--opset", &v)) != 0) {
            if (r < 0 || !cli_parse_long(v, 7, 17, &opset))
                return cli_usage_error(usage, "--opset needs a number from 7 to 17");
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
        return cli_usage_error(usage, "optimize needs IN and OUT");
    oq_model *m = NULL;
    oq_status st = oq_model_load(in, NULL, &m);
    if (st == OQ_OK)
        st = oq_model_optimize(m, passes, opset, report, NULL);
    if (st == OQ_OK)
        st = oq_model_save(m, out, NULL);
    oq_model_destroy(m);
    if (st != OQ_OK)
        return cli_fail(st);
    printf("wrote %s\n", out);
    return 0;
}
