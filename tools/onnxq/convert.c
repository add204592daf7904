/* onnxq convert: loads a model and saves it again through onnxq's own writer,
 * optionally moving large initializers to an external data file. This is how
 * load → save round trips are checked against onnxruntime. */
#include "cli.h"

#include <string.h>

static const char usage[] =
    "usage: onnxq convert IN.onnx OUT.onnx [--external-data BYTES]\n"
    "\n"
    "Loads IN and writes it to OUT with onnxq's ONNX writer. OUT is written to a\n"
    "temporary file first, so a failure never leaves it half written.\n"
    "\n"
    "options:\n"
    "  --external-data BYTES  initializers of at least BYTES bytes go to OUT.data\n"
    "                         (needed for models over 2 GB)\n"
    "  -h, --help             show this help\n";

int cmd_convert(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *v;
    oq_save_options so = oq_save_options_default();
    for (int i = 1; i < argc; i++) {
        int r;
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return 0;
        }
        if ((r = cli_opt(argc, argv, &i, NULL, "--external-data", &v)) != 0) {
            long bytes;
            if (r < 0 || !cli_parse_long(v, 1, 0x7fffffffL, &bytes))
                return cli_usage_error(usage, "--external-data needs a byte count");
            so.external_threshold = (size_t)bytes;
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
        return cli_usage_error(usage, "convert needs IN and OUT");
    oq_model *m = NULL;
    oq_status st = oq_model_load(in, NULL, &m);
    if (st == OQ_OK)
        st = oq_model_save(m, out, &so);
    oq_model_destroy(m);
    if (st != OQ_OK)
        return cli_fail(st);
    printf("wrote %s\n", out);
    return 0;
}
