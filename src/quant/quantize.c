/* quant/quantize: oq_quantize, the quantizer's entry point. Prepares a private
 * copy of the model (opset, constant folding, BatchNorm folding, cleanup),
 * applies the per-node rules, runs static (calibrated, QDQ or QOperator) or
 * dynamic quantization, and reports one line per tensor plus totals. */
#include "quant/quant.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

oq_quant_options oq_quant_options_default(void)
{
    oq_quant_options o = {0};
    o.mode = OQ_QUANT_STATIC;
    o.format = OQ_QUANT_QDQ;
    o.dynamic_form = OQ_DYNAMIC_FUSED;
    o.activation_type = OQ_UINT8;
    o.weight_type = OQ_INT8;
    o.per_channel = 1;
    o.calib = oq_calib_options_default();
    o.prepare = 1;
    o.bias_correction = 1;
    o.bias_correction_samples = 128;
    o.equalize_data = 1;
    o.compact = 1;
    return o;
}

void quant_report(const quant_ctx *q, const char *fmt, ...)
{
    if (!q->opt->report)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    q->opt->report(q->opt->report_user, line);
}

static void note_item(quant_ctx *q, const char *item);

void quant_note_float(quant_ctx *q, const oq_node *n, const char *why)
{
    q->n_float_nodes++;
    char lb[200], item[400];
    snprintf(item, sizeof item, "%s%s%s (%s): %s", q->float_why_len ? "; " : "", q->where ? q->where : "",
             oq_node_label(n, lb, sizeof lb), n->op_type, why ? why : "kept float");
    note_item(q, item);
}

void quant_note_float_group(quant_ctx *q, size_t count, const char *what)
{
    q->n_float_nodes += count;
    char item[400];
    snprintf(item, sizeof item, "%s%s", q->float_why_len ? "; " : "", what);
    note_item(q, item);
}

static void note_item(quant_ctx *q, const char *item)
{
    size_t len = strlen(item);
    if (q->float_why_len > 4000)
        return; /* the totals line stays readable */
    if (oq_grow((void **)&q->float_why, &q->float_why_cap, q->float_why_len + len + 1, 1) != OQ_OK)
        return;
    memcpy(q->float_why + q->float_why_len, item, len + 1);
    q->float_why_len += len;
}

typedef struct prep_report {
    void (*fn)(void *, const char *);
    void *user;
} prep_report;

static void pass_report(void *user, const char *pass, const char *msg)
{
    prep_report *r = user;
    char line[600];
    snprintf(line, sizeof line, "prepare: %s (%s)", msg, pass);
    r->fn(r->user, line);
}

oq_status quant_prepare(const oq_model *in, int run_passes, int64_t min_opset, oq_model **out,
                        void (*report)(void *, const char *), void *user)
{
    oq_model *m = NULL;
    oq_status st = oq_model_clone(in, &m);
    if (st != OQ_OK)
        return st;
    prep_report pr = {report, user};
    oq_pass_ctx ctx = {0};
    if (report) {
        ctx.report = pass_report;
        ctx.report_user = &pr;
    }
    int64_t opset = oq_model_opset(m, "");
    if (opset < min_opset) {
        const oq_pass_info *up = oq_pass_find("upgrade_opset");
        ctx.target_opset = min_opset;
        st = up ? oq_pass_run(up, m, &ctx) : oq_error(OQ_E_UNSUPPORTED, "no opset upgrade pass");
        if (st == OQ_OK && report) {
            char line[200];
            snprintf(line, sizeof line, "opset %lld upgraded to %lld (quantized operators need it)", (long long)opset,
                     (long long)min_opset);
            report(user, line);
        } else if (st != OQ_OK && opset >= 10) {
            /* per-tensor QDQ still works from opset 10 */
            oq_log(OQ_LOG_WARN, "opset %lld kept (upgrade failed: %s); weights will be per tensor", (long long)opset,
                   oq_last_error());
            oq_model_destroy(m);
            if ((st = oq_model_clone(in, &m)) != OQ_OK)
                return st;
        }
    }
    if (st == OQ_OK && run_passes)
        st = oq_passes_run_prepare(m, &ctx);
    if (st != OQ_OK) {
        oq_model_destroy(m);
        return oq_error_context(st, "preparing %s", in->path ? in->path : "the model");
    }
    *out = m;
    return OQ_OK;
}

/* Samples the data-driven equalization reads: per-channel maxima settle fast, and 128 is what a
 * bias-correction pass reads by default. */
enum { EQUALIZE_SAMPLES = 128 };

static double mib(int64_t b) { return (double)b / (1024.0 * 1024.0); }

oq_status oq_quantize(const oq_model *in, const oq_quant_options *opt, oq_data_reader *calib, oq_model **out)
{
    if (!in || !in->graph || !out)
        return oq_error(OQ_E_INVALID_ARG, "oq_quantize: NULL argument");
    oq_quant_options o = opt ? *opt : oq_quant_options_default();
    if (o.activation_type != OQ_UINT8 && o.activation_type != OQ_INT8)
        return oq_error(OQ_E_INVALID_ARG, "activation type must be uint8 or int8, not %s",
                        oq_dtype_name(o.activation_type));
    if (o.weight_type != OQ_INT8 && o.weight_type != OQ_UINT8)
        return oq_error(OQ_E_INVALID_ARG, "weight type must be int8 or uint8, not %s", oq_dtype_name(o.weight_type));
    if (o.mode == OQ_QUANT_STATIC && o.adaptive_rounding && (!o.bias_correction || !calib))
        return oq_error(OQ_E_INVALID_ARG, "adaptive rounding is a step of bias correction: it needs bias correction "
                        "and calibration data (--calib)");
    if (o.mode == OQ_QUANT_STATIC && !o.table && !calib)
        return oq_error(OQ_E_INVALID_ARG,
                        "static quantization needs calibration data (--calib DATA) or a range table (--table)");
    quant_rules *rules = NULL;
    oq_model *m = NULL;
    oq_calib_table *own_table = NULL;
    quant_ctx q = {0};
    q.opt = &o;
    oq_status st = quant_rules_create(&o, &rules);
    if (st == OQ_OK)
        st = quant_prepare(in, o.prepare, 13, &m, o.report, o.report_user);
    q.rules = rules;
    q.m = m;
    /* the prepared model's names: compaction keeps them, shortens the rest */
    quant_names keep = {0};
    if (st == OQ_OK)
        st = quant_names_of_graph(m->graph, &keep);
    /* before calibration, which must see the rescaled values; a given table was made without it */
    if (st == OQ_OK && o.mode == OQ_QUANT_STATIC && !o.table && calib && o.prepare && o.equalize_data) {
        size_t done = 0;
        st = quant_equalize_inputs(m, o.calib.threads, EQUALIZE_SAMPLES, calib, &done);
        if (st == OQ_OK && done)
            quant_report(&q, "equalize: %zu group%s of Conv inputs balanced per channel against the weights reading "
                         "them (ranges from the first %d calibration samples)", done, done == 1 ? "" : "s",
                         EQUALIZE_SAMPLES);
    }
    if (st == OQ_OK && o.mode == OQ_QUANT_STATIC) {
        q.table = o.table;
        if (!q.table) {
            /* calibrate the prepared model (no second preparation) */
            st = quant_calibrate_prepared(m, &o.calib, rules, calib, &own_table);
            q.table = own_table;
        }
    }
    /* the float side of bias correction, before the rewrite changes the graph */
    quant_bias_means *bias_means = NULL;
    bool correct = o.mode == OQ_QUANT_STATIC && o.bias_correction && calib;
    if (st == OQ_OK && correct)
        st = quant_bias_float_means(m, o.calib.threads, o.bias_correction_samples, calib,
                                    o.adaptive_rounding != 0, &bias_means);
    int64_t before = m ? qg_initializer_bytes_deep(m->graph) : 0;
    int64_t in_bytes = qg_initializer_bytes_deep(in->graph);
    if (st == OQ_OK)
        st = o.mode == OQ_QUANT_DYNAMIC ? quant_dynamic(&q) : quant_static_qdq(&q);
    if (st == OQ_OK && correct)
        st = quant_bias_correct(&q, bias_means, o.calib.threads, o.bias_correction_samples, calib);
    quant_bias_means_destroy(bias_means);
    if (st == OQ_OK && o.mode == OQ_QUANT_STATIC && o.format == OQ_QUANT_QOPERATOR)
        st = quant_qdq_to_qoperator(&q);
    if (st == OQ_OK) {
        /* every graph: the float weights a subgraph's int8 nodes replaced go too */
        oq_pass_ctx ctx = {0};
        const oq_pass_info *dead = oq_pass_find("dead_nodes");
        st = dead ? oq_pass_run(dead, m, &ctx) : pass_dead_nodes(m, m->graph, &ctx);
    }
    if (st == OQ_OK && o.compact)
        st = quant_compact(m, &keep);
    quant_names_free(&keep);
    if (st == OQ_OK && q.n_quant_nodes == 0)
        st = oq_error(OQ_E_UNSUPPORTED, "no node was quantized (%s)",
                      q.float_why ? q.float_why : "the model has no quantizable operators");
    if (st == OQ_OK) {
        int64_t after = qg_initializer_bytes_deep(m->graph);
        quant_report(&q, "weights: %.2f MiB -> %.2f MiB (%.3f of the input model's %.2f MiB; %.2f MiB after "
                     "preparation)", mib(before), mib(after), in_bytes ? (double)after / (double)in_bytes : 0.0,
                     mib(in_bytes), mib(before));
        quant_report(&q, "nodes: %zu int8, %zu kept float", q.n_quant_nodes, q.n_float_nodes);
        if (q.n_float_nodes)
            quant_report(&q, "kept float: %s%s", q.float_why ? q.float_why : "",
                         q.float_why_len > 4000 ? "; ..." : "");
    }
    free(q.float_why);
    quant_rules_destroy(rules);
    oq_calib_table_destroy(own_table);
    if (st != OQ_OK) {
        oq_model_destroy(m);
        return st;
    }
    *out = m;
    return OQ_OK;
}
