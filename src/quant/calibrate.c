/* quant/calibrate: the calibration driver and the range table. The float model
 * (after the quantizer's preparation) runs on a private copy whose graph outputs
 * also expose every tensor the quantizer may quantize; each batch updates one
 * observer per tensor and is then freed, so memory does not grow with the data. */
#include "quant/quant.h"
#include "runtime/exec.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const method_names[] = {"minmax", "moving_average", "entropy", "percentile", "mse"};

oq_calib_options oq_calib_options_default(void)
{
    oq_calib_options o = {0};
    o.method = OQ_CALIB_MSE;
    o.percentile = 99.999;
    o.moving_average = 0.01;
    o.num_bins = 2048;
    return o;
}

oq_status calib_table_add(oq_calib_table *t, const char *name, float min, float max, float smin, float smax)
{
    if (oq_grow((void **)&t->e, &t->cap, t->n + 1, sizeof *t->e) != OQ_OK)
        return oq_error(OQ_E_NOMEM, "out of memory");
    calib_entry *e = &t->e[t->n];
    if (!(e->name = oq_strdup(name)))
        return oq_error(OQ_E_NOMEM, "out of memory");
    e->min = min, e->max = max, e->seen_min = smin, e->seen_max = smax;
    t->n++;
    return OQ_OK;
}

void oq_calib_table_destroy(oq_calib_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->e[i].name);
    free(t->e);
    free(t->method);
    free(t);
}

size_t oq_calib_table_count(const oq_calib_table *t) { return t ? t->n : 0; }

int oq_calib_table_get(const oq_calib_table *t, const char *name, float *min, float *max)
{
    for (size_t i = 0; t && i < t->n; i++)
        if (!strcmp(t->e[i].name, name)) {
            *min = t->e[i].min;
            *max = t->e[i].max;
            return 1;
        }
    return 0;
}

oq_status oq_calib_table_save(const oq_calib_table *t, const char *path)
{
    if (!t || !path)
        return oq_error(OQ_E_INVALID_ARG, "oq_calib_table_save: NULL argument");
    size_t len = strlen(path) + 32;
    char *tmp = oq_malloc(len);
    if (!tmp)
        return oq_error(OQ_E_NOMEM, "out of memory");
    snprintf(tmp, len, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        free(tmp);
        return oq_error(OQ_E_IO, "cannot write '%s'", path);
    }
    fprintf(f, "{\n  \"format\": \"onnxq-calibration-1\",\n  \"method\": ");
    json_write_string(f, t->method ? t->method : "minmax");
    fprintf(f, ",\n  \"samples\": %lld,\n  \"tensors\": {", (long long)t->samples);
    for (size_t i = 0; i < t->n; i++) {
        fprintf(f, "%s\n    ", i ? "," : "");
        json_write_string(f, t->e[i].name);
        fprintf(f, ": {\"min\": %.9g, \"max\": %.9g, \"seen_min\": %.9g, \"seen_max\": %.9g}", t->e[i].min,
                t->e[i].max, t->e[i].seen_min, t->e[i].seen_max);
    }
    fprintf(f, "\n  }\n}\n");
    bool bad = ferror(f) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        remove(tmp);
        free(tmp);
        return oq_error(OQ_E_IO, "cannot write '%s'", path);
    }
    free(tmp);
    return OQ_OK;
}

static float num_field(const json_value *o, const char *key, float dflt, bool *ok)
{
    const json_value *v = json_get(o, key);
    if (!v)
        return dflt;
    if (v->type != JSON_NUMBER) {
        *ok = false;
        return dflt;
    }
    /* out of float's range: infinite (the conversion itself would be undefined) */
    return fabs(v->num) <= FLT_MAX ? (float)v->num : v->num > 0 ? INFINITY : v->num < 0 ? -INFINITY : NAN;
}

oq_status oq_calib_table_load(const char *path, oq_calib_table **out)
{
    if (!path || !out)
        return oq_error(OQ_E_INVALID_ARG, "oq_calib_table_load: NULL argument");
    json_value doc;
    oq_status st = json_parse_file(path, &doc);
    if (st != OQ_OK)
        return st;
    oq_calib_table *t = oq_calloc(1, sizeof *t);
    const json_value *ts = json_get(&doc, "tensors"), *m = json_get(&doc, "method"), *n = json_get(&doc, "samples");
    if (!t)
        st = oq_error(OQ_E_NOMEM, "out of memory");
    else if (!ts || ts->type != JSON_OBJECT)
        st = oq_error(OQ_E_PARSE, "%s: not a calibration table (no \"tensors\" object)", path);
    if (st == OQ_OK && m && m->type == JSON_STRING && !(t->method = oq_strdup(m->str)))
        st = oq_error(OQ_E_NOMEM, "out of memory");
    if (st == OQ_OK && n && n->type == JSON_NUMBER) {
        /* a count: converting anything outside int64 (1e300, inf) would be undefined */
        if (!(n->num >= 0 && n->num < 9.2e18))
            st = oq_error(OQ_E_PARSE, "%s: \"samples\" is not a sample count", path);
        else
            t->samples = (int64_t)n->num;
    }
    for (size_t i = 0; st == OQ_OK && i < ts->n; i++) {
        bool ok = ts->items[i].type == JSON_OBJECT;
        float mn = num_field(&ts->items[i], "min", NAN, &ok), mx = num_field(&ts->items[i], "max", NAN, &ok);
        float smn = num_field(&ts->items[i], "seen_min", mn, &ok), smx = num_field(&ts->items[i], "seen_max", mx, &ok);
        /* beyond float's range a bound becomes infinite, and so would the scale */
        if (!ok || !isfinite(mn) || !isfinite(mx) || !isfinite(smn) || !isfinite(smx) || mn > mx) {
            st = oq_error(OQ_E_PARSE, "%s: tensor \"%s\" needs finite numbers min <= max", path, ts->keys[i]);
            break;
        }
        st = calib_table_add(t, ts->keys[i], mn, mx, smn, smx);
    }
    json_free(&doc);
    if (st != OQ_OK) {
        oq_calib_table_destroy(t);
        return st;
    }
    *out = t;
    return OQ_OK;
}

/* Adds graph outputs for the names flagged in want (float, shape unknown). */
static oq_status expose(oq_graph *g, const char *const *names, size_t n, const bool *want)
{
    oq_value_info *v = oq_realloc(g->outputs, sizeof *v * (g->n_outputs + n + 1));
    if (!v)
        return oq_error(OQ_E_NOMEM, "out of memory");
    g->outputs = v;
    for (size_t i = 0; i < n; i++) {
        if (!want[i] || oq_graph_is_output(g, names[i]))
            continue;
        oq_value_info *o = &g->outputs[g->n_outputs];
        memset(o, 0, sizeof *o);
        o->dtype = OQ_FLOAT;
        o->ndim = -1;
        if (!(o->name = oq_strdup(names[i])))
            return oq_error(OQ_E_NOMEM, "out of memory");
        g->n_outputs++;
    }
    return OQ_OK;
}

typedef struct calib_run {
    const oq_calib_options *o;
    oq_observer *obs;
    oq_strmap map;  /* name -> observer */
    int64_t *stamp; /* per observer: the last batch that updated it */
    int64_t batch;
} calib_run;

static void observe(calib_run *c, const char *name, const oq_tensor *t)
{
    size_t k;
    if (t->dtype == OQ_FLOAT && t->data && oq_strmap_get(&c->map, name, &k)) {
        oq_observer_update(&c->obs[k], t->data, (size_t)oq_tensor_numel(t), c->o->moving_average);
        c->stamp[k] = c->batch;
    }
}

static void on_value(void *user, const char *name, const oq_tensor *t) { observe(user, name, t); }

/* One pass over the data. The runtime hook shows each value as its node produces
 * it (no copies); values the runtime's own fusions hide are exposed as extra graph
 * outputs instead (*retry lists them after the first batch). */
static oq_status run_pass(const oq_model *prep, calib_run *c, const char *const *names, size_t n, size_t n_main,
                          const bool *exposed, oq_data_reader *data, bool *retry, int64_t *done)
{
    oq_model *copy = NULL;
    oq_session *s = NULL;
    oq_tensor **res = NULL;
    size_t n_out = 0;
    oq_status st = oq_model_clone(prep, &copy);
    if (st == OQ_OK)
        st = expose(copy->graph, names, n, exposed);
    oq_session_options so = oq_session_options_default();
    so.threads = c->o->threads;
    if (st == OQ_OK)
        st = oq_session_create_observing(copy, &so, names, n_main, &s);
    if (st == OQ_OK) {
        oq_session_set_observer(s, on_value, c);
        n_out = oq_session_output_count(s);
        if (!(res = oq_calloc(n_out + 1, sizeof *res)))
            st = oq_error(OQ_E_NOMEM, "out of memory");
    }
    if (st == OQ_OK && oq_session_input_count(s) != oq_data_reader_input_count(data))
        st = oq_error(OQ_E_INVALID_ARG, "the model takes %zu inputs but the calibration data has %zu",
                      oq_session_input_count(s), oq_data_reader_input_count(data));
    if (st == OQ_OK)
        st = oq_data_reader_rewind(data);
    int64_t total = oq_data_reader_sample_count(data);
    if (st == OQ_OK && c->o->progress) /* a pass begins (the caller may time it from here) */
        c->o->progress(c->o->progress_user, 0, total);
    *retry = false;
    for (bool first = true; st == OQ_OK; first = false) {
        const oq_tensor *const *batch = NULL;
        if ((st = oq_data_reader_next(data, &batch)) != OQ_OK || !batch)
            break;
        c->batch++;
        for (size_t k = 0; k < oq_session_input_count(s); k++)
            observe(c, oq_session_input(s, k)->name, batch[k]);
        st = oq_session_run(s, batch, oq_data_reader_input_count(data), res, n_out);
        /* outputs the hook already showed (produced by a node) are not counted twice */
        for (size_t k = 0, idx; st == OQ_OK && k < n_out; k++)
            if (oq_strmap_get(&c->map, oq_session_output(s, k)->name, &idx) && exposed[idx] &&
                c->stamp[idx] != c->batch)
                observe(c, oq_session_output(s, k)->name, res[k]);
        for (size_t k = 0; k < n_out; k++) {
            oq_tensor_destroy(res[k]);
            res[k] = NULL;
        }
        /* a subgraph's value that was not seen is in a branch that did not run: it cannot be exposed */
        if (st == OQ_OK && first)
            for (size_t i = 0; i < n_main; i++)
                *retry |= c->obs[i].batches == 0 && !exposed[i];
        if (*retry)
            break;
        *done = oq_data_reader_delivered(data);
        if (c->o->progress)
            c->o->progress(c->o->progress_user, *done, total);
    }
    free(res);
    oq_session_destroy(s);
    oq_model_destroy(copy);
    return st;
}

static oq_status calibrate_prepared(const oq_model *prep, const oq_calib_options *o, const quant_rules *rules,
                                    oq_data_reader *data, oq_calib_table **out)
{
    const char **names = NULL, **sub = NULL;
    size_t n = 0, n_main = 0, n_sub = 0, unseen = 0;
    bool *exposed = NULL, retry = false;
    oq_calib_table *t = NULL;
    calib_run c = {o, NULL, {0}, NULL, 0};
    int64_t done = 0;
    oq_status st = quant_static_tensors(prep->graph, rules, rules == NULL, &names, &n);
    /* then the If/Loop bodies' tensors, after the main graph's */
    if (st == OQ_OK)
        st = quant_static_subgraph_tensors(prep->graph, &sub, &n_sub);
    n_main = n;
    if (st == OQ_OK && n_sub) {
        const char **all = oq_realloc(names, (n + n_sub + 1) * sizeof *all);
        if (!all)
            st = oq_error(OQ_E_NOMEM, "out of memory");
        else
            names = all;
    }
    if (st == OQ_OK && n + n_sub == 0)
        st = oq_error(OQ_E_UNSUPPORTED, "the model has no operator onnxq can quantize statically");
    if (st == OQ_OK && (!(exposed = oq_calloc(n + n_sub + 1, sizeof *exposed)) ||
                        !(c.obs = oq_calloc(n + n_sub + 1, sizeof *c.obs)) ||
                        !(c.stamp = oq_calloc(n + n_sub + 1, sizeof *c.stamp))))
        st = oq_error(OQ_E_NOMEM, "out of memory");
    if (st == OQ_OK)
        st = oq_strmap_init(&c.map, n + n_sub + 1);
    for (size_t i = 0; st == OQ_OK && i < n; i++)
        st = oq_strmap_put(&c.map, names[i], i);
    for (size_t i = 0; st == OQ_OK && i < n_sub; i++)
        if (!oq_strmap_get(&c.map, sub[i], NULL)) {
            names[n] = sub[i];
            st = oq_strmap_put(&c.map, names[n], n);
            n++;
        }
    for (int attempt = 0; st == OQ_OK && attempt < 2; attempt++) {
        for (size_t i = 0; st == OQ_OK && i < n; i++) {
            /* a model input keeps its observed min/max (below): no histogram for it */
            oq_calib_options io = *o;
            for (size_t k = 0; k < prep->graph->n_inputs; k++)
                if (!strcmp(prep->graph->inputs[k].name, names[i]))
                    io.method = OQ_CALIB_MINMAX;
            oq_observer_free(&c.obs[i]);
            st = oq_observer_init(&c.obs[i], &io);
        }
        if (st == OQ_OK)
            st = run_pass(prep, &c, names, n, n_main, exposed, data, &retry, &done);
        if (st != OQ_OK || !retry)
            break;
        for (size_t i = 0; i < n_main; i++)
            exposed[i] |= c.obs[i].batches == 0;
    }
    if (st == OQ_OK && !(t = oq_calloc(1, sizeof *t)))
        st = oq_error(OQ_E_NOMEM, "out of memory");
    if (st == OQ_OK && !(t->method = oq_strdup(method_names[o->method])))
        st = oq_error(OQ_E_NOMEM, "out of memory");
    if (st == OQ_OK)
        t->samples = done;
    for (size_t i = 0; st == OQ_OK && i < n; i++) {
        float mn, mx;
        if (c.obs[i].batches == 0 && i >= n_main) {
            unseen++; /* a body that did not run: no range, its nodes stay float (the quantizer says which) */
            continue;
        }
        if (c.obs[i].batches == 0) {
            st = oq_error(OQ_E_RUNTIME, "calibration saw no values of tensor '%s' (no data?)", names[i]);
            break;
        }
        oq_observer_range(&c.obs[i], o, &mn, &mx);
        /* A model input is data whose full range is known and meaningful (pixels, say):
         * clipping it, as entropy does to a background-dominated image, saturates the
         * foreground. Inputs keep their observed min/max. */
        for (size_t k = 0; k < prep->graph->n_inputs; k++)
            if (!strcmp(prep->graph->inputs[k].name, names[i])) {
                mn = (float)c.obs[i].min;
                mx = (float)c.obs[i].max;
            }
        st = calib_table_add(t, names[i], mn, mx, (float)c.obs[i].min, (float)c.obs[i].max);
    }
    for (size_t i = 0; c.obs && i < n; i++)
        oq_observer_free(&c.obs[i]);
    free(c.obs);
    free(c.stamp);
    oq_strmap_free(&c.map);
    free(exposed);
    free(names);
    free(sub);
    if (st == OQ_OK && unseen)
        oq_log(OQ_LOG_INFO, "calibration: %zu tensors inside If/Loop bodies were never computed (branches the data "
               "did not take); they get no range", unseen);
    if (st != OQ_OK) {
        oq_calib_table_destroy(t);
        return st;
    }
    *out = t;
    return OQ_OK;
}

oq_status oq_calibrate(const oq_model *m, const oq_calib_options *opt, oq_data_reader *data, oq_calib_table **out)
{
    if (!m || !data || !out)
        return oq_error(OQ_E_INVALID_ARG, "oq_calibrate: NULL argument");
    oq_calib_options o = opt ? *opt : oq_calib_options_default();
    if ((unsigned)o.method > OQ_CALIB_MSE)
        return oq_error(OQ_E_INVALID_ARG, "unknown calibration method %d", (int)o.method);
    if (o.method == OQ_CALIB_PERCENTILE && !(o.percentile > 0 && o.percentile <= 100))
        return oq_error(OQ_E_INVALID_ARG, "percentile must be in (0, 100], not %g", o.percentile);
    oq_model *prep = NULL;
    oq_status st = quant_prepare(m, 1, 13, &prep, NULL, NULL);
    if (st == OQ_OK)
        st = quant_calibrate_prepared(prep, &o, NULL, data, out);
    oq_model_destroy(prep);
    return st;
}

oq_status quant_calibrate_prepared(const oq_model *prep, const oq_calib_options *opt, const quant_rules *rules,
                                   oq_data_reader *data, oq_calib_table **out)
{
    oq_calib_options o = *opt;
    if ((unsigned)o.method > OQ_CALIB_MSE)
        return oq_error(OQ_E_INVALID_ARG, "unknown calibration method %d", (int)o.method);
    if (o.method == OQ_CALIB_PERCENTILE && !(o.percentile > 0 && o.percentile <= 100))
        return oq_error(OQ_E_INVALID_ARG, "percentile must be in (0, 100], not %g", o.percentile);
    return calibrate_prepared(prep, &o, rules, data, out);
}
