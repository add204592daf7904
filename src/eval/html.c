/* eval/html: renders the JSON reports of docs/reports.md (compare, eval, bench,
 * debug) into one self-contained HTML page: inline CSS, charts as inline SVG,
 * no scripts and nothing fetched. Several compare reports become the
 * configuration table and the three bar charts of the seed notebook (speed
 * ratio, mean difference, disagreement per configuration). */
#include "core/core.h"
#include "onnxq.h"
#include "quant/quant.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct report_file {
    const char *path;
    json_value root;
    const char *kind, *label;
} report_file;

/* ---- small accessors over the JSON DOM ---- */

static const char *jstr(const json_value *o, const char *key)
{
    const json_value *v = o ? json_get(o, key) : NULL;
    return v && v->type == JSON_STRING ? v->str : NULL;
}

/* NaN when the member is missing, null or not a number. */
static double jnum(const json_value *o, const char *key)
{
    const json_value *v = o ? json_get(o, key) : NULL;
    return v && (v->type == JSON_NUMBER || v->type == JSON_BOOL) ? v->num : NAN;
}

static const json_value *jarr(const json_value *o, const char *key)
{
    const json_value *v = o ? json_get(o, key) : NULL;
    return v && v->type == JSON_ARRAY ? v : NULL;
}

static const json_value *jobj(const json_value *o, const char *key)
{
    const json_value *v = o ? json_get(o, key) : NULL;
    return v && v->type == JSON_OBJECT ? v : NULL;
}

/* ---- HTML output ---- */

void oq_html_escape(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* A number cell: "–" for a missing value, "∞" for an infinite one. */
static void num_cell(FILE *f, double v, const char *fmt, double scale, const char *unit)
{
    fputs("<td class=\"num\">", f);
    if (isnan(v))
        fputs("&ndash;", f);
    else if (isinf(v))
        fputs(v > 0 ? "&infin;" : "-&infin;", f);
    else {
        fprintf(f, fmt, v * scale);
        fputs(unit, f);
    }
    fputs("</td>", f);
}

static void text_cell(FILE *f, const char *s)
{
    fputs("<td>", f);
    oq_html_escape(f, s ? s : "");
    fputs("</td>", f);
}

/* Horizontal bar chart: one bar per finite value (missing values get a labelled
 * empty row). ref > 0 draws a dashed reference line at that value. Every bar is a
 * <rect class="bar"> carrying data-label / data-value, which the test counts. */
static void bar_chart(FILE *f, const char *id, const char *title, size_t n, const char *const *labels,
                      const double *values, const char *fmt, double scale, const char *unit, double ref)
{
    const double label_w = 260, plot_w = 560, bar_h = 22, gap = 8, top = 34;
    double vmax = ref > 0 ? ref : 0, vmin = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(values[i])) {
            vmax = values[i] > vmax ? values[i] : vmax;
            vmin = values[i] < vmin ? values[i] : vmin;
        }
    double span = vmax - vmin > 0 ? vmax - vmin : 1;
    double h = top + (double)n * (bar_h + gap) + 16;
    fprintf(f, "<figure class=\"chart\" id=\"%s\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "role=\"img\" aria-label=\"",
            id, label_w + plot_w + 90, h);
    oq_html_escape(f, title);
    fputs("\">", f);
    fprintf(f, "<text x=\"0\" y=\"18\" class=\"title\">");
    oq_html_escape(f, title);
    fputs("</text>", f);
    double x0 = label_w + (-vmin / span) * plot_w;
    for (size_t i = 0; i < n; i++) {
        double y = top + (double)i * (bar_h + gap);
        fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" class=\"label\" text-anchor=\"end\">", label_w - 8, y + bar_h * 0.7);
        oq_html_escape(f, labels[i] ? labels[i] : "");
        fputs("</text>", f);
        if (!isfinite(values[i])) {
            fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" class=\"value\">%s</text>", x0 + 4, y + bar_h * 0.7,
                    isnan(values[i]) ? "n/a" : "&infin;");
            continue;
        }
        double w = fabs(values[i]) / span * plot_w;
        double x = values[i] >= 0 ? x0 : x0 - w;
        fprintf(f, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.0f\" data-label=\"", x, y,
                w < 1 ? 1 : w, bar_h);
        oq_html_escape(f, labels[i] ? labels[i] : "");
        fprintf(f, "\" data-value=\"%.6g\"></rect>", values[i]);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"value\">", (values[i] >= 0 ? x + w : x0) + 6, y + bar_h * 0.7);
        fprintf(f, fmt, values[i] * scale);
        fprintf(f, "%s</text>", unit);
    }
    fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.0f\" y2=\"%.0f\" class=\"axis\"></line>", x0, x0, top - 4, h - 12);
    if (ref > 0) {
        double xr = label_w + (ref - vmin) / span * plot_w;
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.0f\" y2=\"%.0f\" class=\"ref\"></line>", xr, xr, top - 4, h - 12);
        fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" class=\"reflabel\">%g</text>", xr + 3, h - 2, ref);
    }
    fputs("</svg></figure>\n", f);
}

static const char css[] =
    "body{font-family:'DejaVu Sans',Arial,sans-serif;margin:24px 32px;color:#1d2330;background:#fff}"
    "h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 8px;border-bottom:2px solid #dde3ee;"
    "padding-bottom:4px}.meta{color:#5a6475;font-size:13px;margin-bottom:8px}"
    "table{border-collapse:collapse;font-size:13px;margin:8px 0 12px}"
    "th,td{border:1px solid #d5dbe6;padding:4px 8px}th{background:#eef2f8;text-align:left}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}tr:nth-child(even) td{background:#f8f9fc}"
    ".charts{display:flex;flex-wrap:wrap;gap:12px}figure.chart{margin:6px 0}"
    "svg .title{font-size:14px;font-weight:bold;fill:#1d2330}svg .label{font-size:12px;fill:#333}"
    "svg .value{font-size:12px;fill:#333}svg rect.bar{fill:#4c78a8}svg .axis{stroke:#888}"
    "svg .ref{stroke:#d62728;stroke-dasharray:4 3}svg .reflabel{font-size:11px;fill:#d62728}"
    "#debug-sqnr rect.bar{fill:#e45756}#bench-latency rect.bar{fill:#54a24b}"
    ".note{font-size:13px;color:#5a6475}code{background:#f1f3f7;padding:1px 4px}";

/* ---- sections ---- */

static const char *file_label(const report_file *r)
{
    return r->label ? r->label : r->path;
}

/* The writers put null for an SQNR that does not exist: infinite when the difference is
 * 0 (an exact match), not applicable otherwise (a layer without weights, ...). */
static double sqnr_of(const json_value *o, const char *key)
{
    const json_value *v = o ? json_get(o, key) : NULL;
    if (v && v->type == JSON_NULL)
        return jnum(o, "max_abs_diff") == 0 ? INFINITY : NAN;
    return jnum(o, key);
}

static void compare_section(FILE *f, const report_file *rs, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += !strcmp(rs[i].kind, "compare");
    if (!k)
        return;
    const char **labels = oq_calloc(k, sizeof *labels);
    double *speed = oq_calloc(k * 3, sizeof *speed), *mean = speed + k, *dis = speed + 2 * k;
    if (!labels || !speed) {
        free(labels), free(speed);
        return;
    }
    fputs("<h2>Float vs quantized</h2>\n<table id=\"compare-table\"><tr><th>configuration</th><th>output</th>"
          "<th>mean |diff|</th><th>mean of max |diff|</th><th>max |diff|</th><th>SQNR (dB)</th><th>cosine</th>"
          "<th>top-1 disagreement</th><th>float ms</th><th>int8 ms</th><th>speed-up</th><th>size ratio</th>"
          "<th>samples</th></tr>\n",
          f);
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        const report_file *r = &rs[i];
        if (strcmp(r->kind, "compare"))
            continue;
        const json_value *root = &r->root, *outs = jarr(root, "outputs");
        const json_value *fm = jobj(root, "float_model"), *qm = jobj(root, "quant_model");
        double fms = jnum(jobj(fm, "latency_ms"), "median"), qms = jnum(jobj(qm, "latency_ms"), "median");
        labels[c] = file_label(r);
        speed[c] = jnum(root, "speed_ratio");
        mean[c] = dis[c] = NAN;
        size_t n_out = outs ? outs->n : 0;
        for (size_t o = 0; o < (n_out ? n_out : 1); o++) {
            const json_value *ov = n_out ? &outs->items[o] : NULL;
            if (o == 0 && ov) {
                mean[c] = jnum(ov, "mean_abs_diff");
                dis[c] = jnum(ov, "argmax_disagreement");
            }
            fputs("<tr>", f);
            text_cell(f, file_label(r));
            text_cell(f, ov ? jstr(ov, "name") : "");
            num_cell(f, jnum(ov, "mean_abs_diff"), "%.4g", 1, "");
            num_cell(f, jnum(ov, "mean_max_abs_diff"), "%.4g", 1, "");
            num_cell(f, jnum(ov, "max_abs_diff"), "%.4g", 1, "");
            num_cell(f, sqnr_of(ov, "sqnr_db"), "%.1f", 1, "");
            num_cell(f, jnum(ov, "cosine"), "%.5f", 1, "");
            num_cell(f, jnum(ov, "argmax_disagreement"), "%.2f", 100, "%");
            num_cell(f, fms, "%.3f", 1, "");
            num_cell(f, qms, "%.3f", 1, "");
            num_cell(f, jnum(root, "speed_ratio"), "%.2f", 1, "x");
            num_cell(f, jnum(root, "size_ratio"), "%.3f", 1, "");
            num_cell(f, jnum(root, "samples"), "%.0f", 1, "");
            fputs("</tr>\n", f);
        }
        c++;
    }
    fputs("</table>\n<p class=\"note\">speed-up = float median latency / quantized median latency (&gt; 1: the "
          "quantized model is faster); size ratio = quantized file / float file; the first output of each "
          "configuration is charted.</p>\n<div class=\"charts\">\n",
          f);
    bar_chart(f, "chart-speed", "Speed-up over float (x)", k, labels, speed, "%.2f", 1, "x", 1.0);
    bar_chart(f, "chart-mean-diff", "Mean |float - quantized|", k, labels, mean, "%.4g", 1, "", 0);
    bar_chart(f, "chart-disagreement", "Top-1 disagreement (%)", k, labels, dis, "%.2f", 100, "%", 0);
    fputs("</div>\n", f);
    free(labels);
    free(speed);
}

static void bench_section(FILE *f, const report_file *r)
{
    const json_value *models = jarr(&r->root, "models");
    size_t n = models ? models->n : 0;
    fputs("<h2>Latency: ", f);
    oq_html_escape(f, file_label(r));
    fprintf(f, "</h2>\n<p class=\"meta\">batch %.0f, %.0f warm-up runs, %.0f timed runs</p>\n",
            jnum(&r->root, "batch"), jnum(&r->root, "warmup"), jnum(&r->root, "iters"));
    fputs("<table class=\"bench-table\"><tr><th>model</th><th>median ms</th><th>p10 ms</th><th>p90 ms</th>"
          "<th>throughput /s</th><th>peak RSS MiB</th><th>speed vs first</th><th>size MiB</th></tr>\n",
          f);
    const char **labels = oq_calloc(n + 1, sizeof *labels);
    double *med = oq_calloc(n + 1, sizeof *med);
    for (size_t i = 0; i < n; i++) {
        const json_value *m = &models->items[i], *lat = jobj(m, "latency_ms");
        const char *name = jstr(m, "label") ? jstr(m, "label") : jstr(m, "path");
        if (labels && med) {
            labels[i] = name;
            med[i] = jnum(lat, "median");
        }
        fputs("<tr>", f);
        text_cell(f, name);
        num_cell(f, jnum(lat, "median"), "%.3f", 1, "");
        num_cell(f, jnum(lat, "p10"), "%.3f", 1, "");
        num_cell(f, jnum(lat, "p90"), "%.3f", 1, "");
        num_cell(f, jnum(m, "throughput_per_s"), "%.1f", 1, "");
        num_cell(f, jnum(m, "peak_rss_bytes"), "%.1f", 1.0 / 1048576, "");
        num_cell(f, jnum(m, "ratio_to_first"), "%.2f", 1, "x");
        num_cell(f, jnum(m, "bytes"), "%.2f", 1.0 / 1048576, "");
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
    if (labels && med && n)
        bar_chart(f, "bench-latency", "Median latency (ms)", n, labels, med, "%.3f", 1, " ms", 0);
    free(labels);
    free(med);
}

static void eval_section(FILE *f, const report_file *r)
{
    const json_value *models = jarr(&r->root, "models");
    size_t n = models ? models->n : 0;
    double k = jnum(&r->root, "top");
    fputs("<h2>Accuracy: ", f);
    oq_html_escape(f, file_label(r));
    fprintf(f, "</h2>\n<p class=\"meta\">%.0f labelled samples from <code>", jnum(&r->root, "samples"));
    oq_html_escape(f, jstr(&r->root, "data"));
    fputs("</code></p>\n<table class=\"eval-table\"><tr><th>model</th><th>output</th><th>top-1</th><th>top-5</th>", f);
    if (isfinite(k) && k != 5)
        fprintf(f, "<th>top-%.0f</th>", k);
    fputs("<th>size MiB</th></tr>\n", f);
    for (size_t i = 0; i < n; i++) {
        const json_value *m = &models->items[i];
        fputs("<tr>", f);
        text_cell(f, jstr(m, "label") ? jstr(m, "label") : jstr(m, "path"));
        text_cell(f, jstr(m, "output"));
        num_cell(f, jnum(m, "top1"), "%.2f", 100, "%");
        num_cell(f, jnum(m, "top5"), "%.2f", 100, "%");
        if (isfinite(k) && k != 5)
            num_cell(f, jnum(m, "topk"), "%.2f", 100, "%");
        num_cell(f, jnum(m, "bytes"), "%.2f", 1.0 / 1048576, "");
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

enum { DEBUG_CHART_MAX = 40 };

static void debug_section(FILE *f, const report_file *r)
{
    const json_value *layers = jarr(&r->root, "layers");
    size_t n = layers ? layers->n : 0;
    fputs("<h2>Per-layer error: ", f);
    oq_html_escape(f, file_label(r));
    fprintf(f, "</h2>\n<p class=\"meta\">%.0f samples%s; layers sorted worst first (lowest SQNR of the layer's "
               "output in the quantized model)</p>\n",
            jnum(&r->root, "samples"), jnum(&r->root, "emulate") == 1 ? ", int8 emulated in float" : "");
    size_t shown = n < DEBUG_CHART_MAX ? n : DEBUG_CHART_MAX;
    const char **labels = oq_calloc(shown + 1, sizeof *labels);
    double *vals = oq_calloc(shown + 1, sizeof *vals);
    for (size_t i = 0; labels && vals && i < shown; i++) {
        const json_value *l = &layers->items[i];
        labels[i] = jstr(l, "node") ? jstr(l, "node") : jstr(l, "name");
        vals[i] = sqnr_of(l, "sqnr_db");
    }
    if (labels && vals && shown)
        bar_chart(f, "debug-sqnr", "Output SQNR per layer (dB, worst first)", shown, labels, vals, "%.1f", 1, " dB",
                  0);
    free(labels);
    free(vals);
    fputs("<table class=\"debug-table\"><tr><th>#</th><th>node</th><th>op</th><th>tensor</th><th>SQNR dB</th>"
          "<th>own SQNR dB</th><th>weight SQNR dB</th><th>mean |diff|</th><th>max |diff|</th></tr>\n",
          f);
    for (size_t i = 0; i < n; i++) {
        const json_value *l = &layers->items[i];
        fprintf(f, "<tr><td class=\"num\">%zu</td>", i + 1);
        text_cell(f, jstr(l, "node"));
        text_cell(f, jstr(l, "op_type"));
        text_cell(f, jstr(l, "name"));
        num_cell(f, sqnr_of(l, "sqnr_db"), "%.1f", 1, "");
        num_cell(f, sqnr_of(l, "own_sqnr_db"), "%.1f", 1, "");
        num_cell(f, jnum(l, "weight_sqnr_db"), "%.1f", 1, "");
        num_cell(f, jnum(l, "mean_abs_diff"), "%.4g", 1, "");
        num_cell(f, jnum(l, "max_abs_diff"), "%.4g", 1, "");
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
    const json_value *ex = jarr(&r->root, "suggested_exclude");
    if (ex && ex->n) {
        fputs("<p class=\"note\">Suggested: <code>onnxq quantize ... --exclude ", f);
        for (size_t i = 0; i < ex->n; i++) {
            if (ex->items[i].type != JSON_STRING)
                continue;
            if (i)
                fputc(',', f);
            oq_html_escape(f, ex->items[i].str);
        }
        fputs("</code></p>\n", f);
    }
}

static oq_status load_report(const char *path, report_file *r)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    oq_status st = json_parse_file(path, &r->root);
    if (st != OQ_OK)
        return st;
    if (r->root.type != JSON_OBJECT)
        return oq_error(OQ_E_PARSE, "report '%s': expected a JSON object", path);
    double version = jnum(&r->root, "onnxq_report");
    if (!(version == 1))
        return oq_error(OQ_E_PARSE, "report '%s': not an onnxq report (member \"onnxq_report\": 1 missing)", path);
    r->kind = jstr(&r->root, "kind");
    r->label = jstr(&r->root, "label");
    if (!r->kind || (strcmp(r->kind, "compare") && strcmp(r->kind, "bench") && strcmp(r->kind, "eval") &&
                     strcmp(r->kind, "debug")))
        return oq_error(OQ_E_PARSE, "report '%s': unknown kind '%s' (expected compare, eval, bench or debug)", path,
                        r->kind ? r->kind : "(none)");
    return OQ_OK;
}

static void write_page(FILE *f, const report_file *rs, size_t n, const char *title)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>", f);
    oq_html_escape(f, title);
    fprintf(f, "</title>\n<style>%s</style></head>\n<body>\n<h1>", css);
    oq_html_escape(f, title);
    fputs("</h1>\n", f);
    const json_value *machine = jobj(&rs[0].root, "machine");
    fputs("<p class=\"meta\">onnxq ", f);
    oq_html_escape(f, jstr(&rs[0].root, "onnxq_version"));
    if (machine) {
        fputs(" &middot; ISA ", f);
        oq_html_escape(f, jstr(machine, "isa"));
        fprintf(f, " &middot; %.0f thread(s) of %.0f core(s)", jnum(machine, "threads"), jnum(machine, "cores"));
    }
    if (jstr(&rs[0].root, "created")) {
        fputs(" &middot; ", f);
        oq_html_escape(f, jstr(&rs[0].root, "created"));
    }
    fputs("<br>reports:", f);
    for (size_t i = 0; i < n; i++) {
        fputs(" <code>", f);
        oq_html_escape(f, rs[i].path);
        fputs("</code>", f);
    }
    fputs("</p>\n", f);
    compare_section(f, rs, n);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(rs[i].kind, "bench"))
            bench_section(f, &rs[i]);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(rs[i].kind, "eval"))
            eval_section(f, &rs[i]);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(rs[i].kind, "debug"))
            debug_section(f, &rs[i]);
    fputs("</body></html>\n", f);
}

oq_status oq_report_html(const char *const *paths, size_t n, const char *title, const char *out_path)
{
    if (!paths || !n || !out_path)
        return oq_error(OQ_E_INVALID_ARG, "oq_report_html: no report files or no output path");
    report_file *rs = oq_calloc(n, sizeof *rs);
    if (!rs)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = OQ_OK;
    size_t loaded = 0;
    for (; loaded < n && st == OQ_OK; loaded++)
        st = load_report(paths[loaded], &rs[loaded]);
    /* written to a temporary file and renamed: a failure never leaves out_path half written */
    char *tmp = NULL;
    FILE *f = NULL;
    if (st == OQ_OK) {
        size_t len = strlen(out_path) + 16;
        tmp = oq_malloc(len);
        if (!tmp)
            st = oq_error(OQ_E_NOMEM, "out of memory");
        else {
            snprintf(tmp, len, "%s.tmp", out_path);
            if (!(f = fopen(tmp, "wb")))
                st = oq_error(OQ_E_IO, "cannot write '%s'", tmp);
        }
    }
    if (st == OQ_OK) {
        write_page(f, rs, n, title ? title : "onnxq report");
        bool bad = ferror(f) != 0;
        bad |= fclose(f) != 0;
        f = NULL;
        if (bad)
            st = oq_error(OQ_E_IO, "error writing '%s'", tmp);
        else if (rename(tmp, out_path) != 0)
            st = oq_error(OQ_E_IO, "cannot rename '%s' to '%s'", tmp, out_path);
        if (st != OQ_OK)
            remove(tmp);
    }
    if (f) {
        fclose(f);
        remove(tmp);
    }
    free(tmp);
    for (size_t i = 0; i < loaded; i++)
        json_free(&rs[i].root);
    free(rs);
    return st;
}
