/* onnxq report: renders JSON reports (compare, eval, bench, debug --report) into
 * one self-contained HTML page. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: onnxq report REPORT.json [REPORT.json ...] [-o OUT.html] [--title TEXT]\n"
    "\n"
    "Renders the JSON files written by `onnxq compare/eval/bench/debug --report` into\n"
    "one HTML page: the metrics tables, bar charts of speed-up, mean difference and\n"
    "top-1 disagreement per configuration (one bar per compare report), latency per\n"
    "model, accuracy, and the per-layer SQNR chart. The page is self-contained (no\n"
    "scripts, nothing fetched); OUT is written through a temporary file.\n"
    "\n"
    "options:\n"
    "  -o, --out OUT.html  the page to write (default report.html)\n"
    "  --title TEXT        page title (default \"onnxq report\")\n"
    "  -h, --help          show this help\n";

int cmd_report(int argc, char **argv)
{
    const char *out = "report.html", *title = "onnxq report", *v;
    const char **inputs = calloc((size_t)argc + 1, sizeof *inputs);
    size_t n = 0;
    if (!inputs)
        return cli_fail(cli_error(OQ_E_NOMEM, "out of memory"));
    int rc = -1;
    for (int i = 1; i < argc && rc < 0; i++) {
        int r;
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            rc = 0;
        } else if ((r = cli_opt(argc, argv, &i, "-o", "--out", &v)) != 0) {
            if (r < 0)
                rc = cli_usage_error(usage, "-o needs a file name");
            out = v;
        } else if ((r = cli_opt(argc, argv, &i, NULL, "--title", &v)) != 0) {
            if (r < 0)
                rc = cli_usage_error(usage, "--title needs a text");
            title = v;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            rc = cli_usage_error(usage, "unknown option '%s'", argv[i]);
        } else {
            inputs[n++] = argv[i];
        }
    }
    if (rc < 0 && n == 0)
        rc = cli_usage_error(usage, "report needs at least one REPORT.json");
    if (rc < 0) {
        oq_status st = oq_report_html(inputs, n, title, out);
        if (st != OQ_OK)
            rc = cli_fail(st);
        else {
            printf("wrote %s (%zu report%s)\n", out, n, n == 1 ? "" : "s");
            rc = 0;
        }
    }
    free(inputs);
    return rc;
}
