/* eval/autoexclude: quantize to an agreement target. Quantizes statically, measures
 * how often the quantized model's top class agrees with the float model's on the
 * evaluation data, and while that is below the target keeps one more layer in
 * float: the one the numeric suite (debug.c) finds adds the most error on its own.
 * Greedy, one layer per step, so the result keeps few layers in float. The
 * search runs in QDQ form (the form debug reads); the result is then written in
 * the requested format with the layers found. */
#include "eval/eval.h"
#include "core/core.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void say(const oq_target_options *t, const char *fmt, ...)
{
    if (!t->report)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    t->report(t->report_user, line);
}

/* Argmax agreement of q with the float session on every batch of data (first output). */
static oq_status agreement(oq_session *fs, const oq_model *q, int threads, oq_data_reader *data, double *out)
{
    oq_session *qs = NULL;
    oq_session_options so = oq_session_options_default();
    so.threads = threads;
    oq_compare_result *res = NULL;
    oq_status st = oq_session_create(q, &so, &qs);
    if (st == OQ_OK)
        st = oq_data_reader_rewind(data);
    if (st == OQ_OK) {
        oq_batch_source src;
        oq_batch_source_reader(&src, data);
        oq_compare_options co;
        memset(&co, 0, sizeof co);
        st = oq_compare_run(fs, qs, &src, &co, &res);
    }
    if (st == OQ_OK) {
        double dis = res->n_outputs ? oq_diff_stats_argmax_disagreement(&res->outputs[0].diff) : NAN;
        if (isnan(dis))
            st = oq_error(OQ_E_INVALID_ARG,
                          "the model's first output has no class axis: an agreement target needs class scores");
        else
            *out = 1.0 - dis;
    }
    oq_compare_result_destroy(res);
    oq_session_destroy(qs);
    return st;
}

/* "a,b" + ",c" (either part may be empty). */
static char *join(const char *a, const char *b)
{
    size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0;
    char *s = oq_malloc(la + lb + 2);
    if (!s)
        return NULL;
    snprintf(s, la + lb + 2, "%s%s%s", la ? a : "", la && lb ? "," : "", lb ? b : "");
    return s;
}

/* Operators that only move or select values: quantized, they share their input's range. */
bool oq_op_moves_data(const char *op)
{
    static const char *const ops[] = {"MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze",
                                      "Identity", "Gather", "Slice", "Split", "Resize", "DepthToSpace",
                                      "SpaceToDepth", "Pad"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (!strcmp(op, ops[i]))
            return true;
    return false;
}

static bool listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, name, n))
            return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

oq_status oq_quantize_to_target(const oq_model *in, const oq_quant_options *opt, const oq_target_options *t,
                                oq_data_reader *data, oq_model **out, oq_target_result *res)
{
    if (!in || !opt || !t || !data || !out || !res)
        return oq_error(OQ_E_INVALID_ARG, "oq_quantize_to_target: NULL argument");
    if (opt->mode != OQ_QUANT_STATIC || (!opt->table && !t->calib))
        return oq_error(OQ_E_INVALID_ARG,
                        "an agreement target needs static quantization with a range table or calibration data");
    if (!(t->target > 0 && t->target <= 1))
        return oq_error(OQ_E_INVALID_ARG, "the agreement target must be in (0, 1], not %g", t->target);
    memset(res, 0, sizeof *res);
    oq_quant_options o = *opt;
    o.format = OQ_QUANT_QDQ;
    o.report = NULL;
    char *auto_list = oq_strdup(""), *all = NULL;
    oq_session *fs = NULL;
    oq_model *q = NULL;
    oq_session_options so = oq_session_options_default();
    so.threads = t->threads;
    oq_status st = auto_list ? oq_session_create(in, &so, &fs) : oq_error(OQ_E_NOMEM, "out of memory");
    int max_steps = t->max_excluded > 0 ? t->max_excluded : 16;
    double agree = 0;
    oq_layer_report *layers = NULL;
    size_t n_layers = 0;
    char *tried = oq_strdup("");
    if (!tried && st == OQ_OK)
        st = oq_error(OQ_E_NOMEM, "out of memory");
    /* step 0: nothing kept in float; then one candidate per step, accepted only when the
     * agreement improves (so the layers kept in float are the ones that help) */
    char *candidate = NULL; /* owned copy: the ranking it came from may be freed */
    for (int step = 0; st == OQ_OK; step++) {
        char *trial = candidate ? join(auto_list, candidate) : oq_strdup(auto_list);
        free(all);
        all = trial ? join(opt->exclude, trial) : NULL;
        o.exclude = all;
        oq_model *tq = NULL;
        double ta = 0;
        /* with the calibration data, every step is the default recipe (bias correction included) with
         * more layers in float: without it the search started from a worse model than plain
         * quantization gives, and a layer kept float could look like a loss */
        st = all ? oq_quantize(in, &o, t->calib, &tq) : oq_error(OQ_E_NOMEM, "out of memory");
        if (st == OQ_OK)
            st = agreement(fs, tq, t->threads, data, &ta);
        if (st != OQ_OK) {
            free(trial);
            oq_model_destroy(tq);
            break;
        }
        bool accept = !candidate || ta > agree;
        say(t, "[target %d] kept in float: %-36s top-1 agreement %.2f%% (target %.2f%%)%s", step,
            trial[0] ? trial : "(none)", 100 * ta, 100 * t->target, candidate && !accept ? ": no better, undone" : "");
        if (accept) {
            free(auto_list);
            auto_list = trial;
            oq_model_destroy(q);
            q = tq;
            agree = ta;
            res->steps = candidate ? res->steps + 1 : 0;
            oq_layer_reports_destroy(layers, n_layers);
            layers = NULL;
            n_layers = 0;
        } else {
            free(trial);
            oq_model_destroy(tq);
        }
        if (candidate) {
            char *tr2 = join(tried, candidate);
            free(tried);
            tried = tr2;
            if (!tried) {
                st = oq_error(OQ_E_NOMEM, "out of memory");
                break;
            }
        }
        res->agreement = agree;
        if (agree >= t->target) {
            res->reached = 1;
            break;
        }
        if (step >= max_steps) {
            say(t, "[target] stopping after %d tries", step);
            break;
        }
        /* the ranking of the model kept, computed once per accepted model */
        if (!layers) {
            oq_debug_options dopt = oq_debug_options_default();
            dopt.threads = t->threads;
            /* the numeric suite matches tensors by name, and the data-driven equalization renames the
             * values it rescales: rank the layers on the same model without it (same nodes) */
            oq_model *ranked = q, *plain = NULL;
            if (t->calib && o.equalize_data) {
                oq_quant_options po = o;
                po.equalize_data = 0;
                st = oq_quantize(in, &po, t->calib, &plain);
                ranked = plain;
            }
            if (st == OQ_OK)
                st = oq_data_reader_rewind(data);
            if (st == OQ_OK)
                st = oq_debug_layers(in, ranked, data, &dopt, &layers, &n_layers);
            oq_model_destroy(plain);
            if (st != OQ_OK)
                break;
        }
        /* the untried layer adding the most error on its own; layers that only move data
         * (they share their input's range) add none of their own, and a float node's own error is
         * its output's quantization, which its consumers keep */
        free(candidate);
        candidate = NULL;
        const char *pick = NULL;
        double worst = INFINITY;
        for (size_t i = 0; i < n_layers; i++) {
            const oq_layer_report *l = &layers[i];
            double own = l->own.count ? oq_diff_stats_sqnr_db(&l->own) : NAN;
            if (isnan(own) || l->float_node || !strcmp(l->op_type, "(graph input)") || oq_op_moves_data(l->op_type) ||
                listed(auto_list, l->node) || listed(tried, l->node) || listed(opt->exclude, l->node))
                continue;
            if (own < worst) {
                worst = own;
                pick = l->node;
            }
        }
        if (pick && !(candidate = oq_strdup(pick))) {
            st = oq_error(OQ_E_NOMEM, "out of memory");
            break;
        }
        if (!candidate) {
            say(t, "[target] no layer left to try");
            break;
        }
        say(t, "[target] next: %s (own SQNR %.1f dB)", candidate, worst);
    }
    oq_layer_reports_destroy(layers, n_layers);
    free(tried);
    free(candidate);
    /* the result in the requested format, with the layers found */
    if (st == OQ_OK && opt->format != OQ_QUANT_QDQ) {
        oq_model_destroy(q);
        q = NULL;
        o.format = opt->format;
        st = oq_quantize(in, &o, t->calib, &q);
    }
    oq_session_destroy(fs);
    free(all);
    if (st != OQ_OK) {
        free(auto_list);
        oq_model_destroy(q);
        return st;
    }
    res->excluded = auto_list;
    *out = q;
    return OQ_OK;
}
