/* eval/run: the measuring loops behind `onnxq compare`, `eval` and `bench` —
 * two sessions run interleaved over the same batches (difference statistics,
 * accuracy, per-run latency), one session scored against labels, and a
 * warm-up + timed latency loop. Inputs come from an oq_batch_source (a data
 * reader, or anything else such as seeded random inputs). */
#include "eval/eval.h"
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

static oq_status reader_next(void *user, const oq_tensor *const **inputs, const int64_t **labels, size_t *n_labels)
{
    oq_data_reader *r = user;
    oq_status st = oq_data_reader_next(r, inputs);
    if (st != OQ_OK || !*inputs)
        return st;
    return oq_data_reader_labels(r, labels, n_labels);
}

void oq_batch_source_reader(oq_batch_source *src, oq_data_reader *r)
{
    src->next = reader_next;
    src->user = r;
    src->total = oq_data_reader_sample_count(r);
}

static void free_outputs(oq_tensor **t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        oq_tensor_destroy(t[i]);
        t[i] = NULL;
    }
}

static int64_t batch_samples(const oq_tensor *const *in, size_t n_in)
{
    int64_t b = n_in && in[0]->ndim >= 1 ? in[0]->dims[0] : 1;
    return b < 1 ? 1 : b;
}

void oq_compare_result_destroy(oq_compare_result *r)
{
    if (!r)
        return;
    for (size_t j = 0; r->outputs && j < r->n_outputs; j++)
        free(r->outputs[j].name);
    free(r->outputs);
    free(r);
}

static const char *or_default(const char *s, const char *d) { return s ? s : d; }

oq_status oq_compare_run(oq_session *ref, oq_session *test, const oq_batch_source *src, const oq_compare_options *opt,
                         oq_compare_result **out)
{
    if (!ref || !test || !src || !src->next || !out)
        return oq_error(OQ_E_INVALID_ARG, "oq_compare_run: NULL argument");
    oq_session *s[2] = {ref, test};
    const char *names[2] = {or_default(opt ? opt->ref_name : NULL, "reference model"),
                            or_default(opt ? opt->test_name : NULL, "test model")};
    size_t n_in = oq_session_input_count(ref), n_out = oq_session_output_count(ref);
    if (oq_session_input_count(test) != n_in)
        return oq_error(OQ_E_GRAPH, "'%s' has %zu inputs but '%s' has %zu", names[0], n_in, names[1],
                        oq_session_input_count(test));
    if (oq_session_output_count(test) != n_out)
        return oq_error(OQ_E_GRAPH, "'%s' has %zu outputs but '%s' has %zu", names[0], n_out, names[1],
                        oq_session_output_count(test));
    oq_status st = OQ_OK;
    oq_compare_result *res = oq_calloc(1, sizeof *res);
    oq_tensor **outs[2] = {oq_calloc(n_out ? n_out : 1, sizeof(oq_tensor *)),
                           oq_calloc(n_out ? n_out : 1, sizeof(oq_tensor *))};
    size_t *test_index = oq_calloc(n_out ? n_out : 1, sizeof *test_index);
    double *times[2] = {NULL, NULL};
    size_t cap_times = 0;
    if (res)
        res->outputs = oq_calloc(n_out ? n_out : 1, sizeof *res->outputs);
    if (!res || !res->outputs || !outs[0] || !outs[1] || !test_index) {
        st = oq_error(OQ_E_NOMEM, "out of memory comparing '%s' and '%s'", names[0], names[1]);
        goto error;
    }
    res->n_outputs = n_out;
    for (size_t j = 0; j < n_out; j++) {
        oq_compare_output *o = &res->outputs[j];
        if (!(o->name = oq_strdup(oq_session_output(ref, j)->name))) {
            st = oq_error(OQ_E_NOMEM, "out of memory");
            goto error;
        }
        oq_diff_stats_init(&o->diff);
        oq_accuracy_init(&o->acc_ref, 5);
        oq_accuracy_init(&o->acc_test, 5);
        o->has_accuracy = true;
        /* the test output of the same name, else the one at the same position */
        test_index[j] = j;
        for (size_t q = 0; q < n_out; q++)
            if (strcmp(oq_session_output(test, q)->name, o->name) == 0)
                test_index[j] = q;
    }
    bool warmed = false, any_labels = false;
    for (;;) {
        const oq_tensor *const *in = NULL;
        const int64_t *lab = NULL;
        size_t n_lab = 0;
        if ((st = src->next(src->user, &in, &lab, &n_lab)) != OQ_OK)
            goto error;
        if (!in)
            break;
        if (!warmed) { /* one untimed run each: first touch of arenas, packed weights, caches */
            for (int k = 0; k < 2; k++) {
                st = oq_session_run(s[k], in, n_in, outs[k], n_out);
                free_outputs(outs[k], n_out);
                if (st != OQ_OK) {
                    oq_error_context(st, "running '%s'", names[k]);
                    goto error;
                }
            }
            warmed = true;
        }
        if (res->runs == cap_times) {
            size_t cap = cap_times ? cap_times * 2 : 256;
            for (int k = 0; k < 2; k++) {
                double *t = oq_realloc(times[k], cap * sizeof *t);
                if (!t) {
                    st = oq_error(OQ_E_NOMEM, "out of memory for %zu run times", cap);
                    goto error;
                }
                times[k] = t;
            }
            cap_times = cap;
        }
        /* interleaved, alternating which model goes first so neither always finds the caches warm */
        for (int step = 0; step < 2; step++) {
            int k = (res->runs & 1) ? 1 - step : step;
            double t0 = oq_now();
            st = oq_session_run(s[k], in, n_in, outs[k], n_out);
            times[k][res->runs] = (oq_now() - t0) * 1000.0;
            if (st != OQ_OK) {
                oq_error_context(st, "running '%s'", names[k]);
                goto error;
            }
        }
        res->runs++;
        any_labels |= lab && n_lab;
        for (size_t j = 0; j < n_out; j++) {
            oq_compare_output *o = &res->outputs[j];
            const oq_tensor *a = outs[0][j], *b = outs[1][test_index[j]];
            if ((st = oq_diff_stats_update(&o->diff, a, b)) != OQ_OK) {
                oq_error_context(st, "comparing '%s' with '%s'", names[0], names[1]);
                goto error;
            }
            /* accuracy applies to outputs holding one row of class scores per label */
            if (o->has_accuracy && lab && n_lab &&
                (oq_accuracy_update(&o->acc_ref, a, lab, n_lab) != OQ_OK ||
                 oq_accuracy_update(&o->acc_test, b, lab, n_lab) != OQ_OK))
                o->has_accuracy = false;
        }
        oq_error_clear();
        for (int k = 0; k < 2; k++)
            free_outputs(outs[k], n_out);
        res->samples += batch_samples(in, n_in);
        if (opt && opt->progress)
            opt->progress(opt->progress_user, res->samples, src->total > res->samples ? src->total : res->samples);
    }
    if (res->runs == 0) {
        st = oq_error(OQ_E_INVALID_ARG, "no samples to compare '%s' and '%s' on", names[0], names[1]);
        goto error;
    }
    for (size_t j = 0; j < n_out; j++)
        res->outputs[j].has_accuracy &= any_labels;
    for (int k = 0; k < 2; k++)
        if ((st = oq_latency_stats_compute(times[k], res->runs, &res->latency[k])) != OQ_OK)
            goto error;
    for (int k = 0; k < 2; k++) {
        free(outs[k]);
        free(times[k]);
    }
    free(test_index);
    *out = res;
    return OQ_OK;

error:
    for (int k = 0; k < 2; k++) {
        if (outs[k])
            free_outputs(outs[k], n_out);
        free(outs[k]);
        free(times[k]);
    }
    free(test_index);
    oq_compare_result_destroy(res);
    return st;
}

oq_status oq_accuracy_run(oq_session *s, size_t output, const oq_batch_source *src, const char *name,
                          void (*progress)(void *user, int64_t done, int64_t total), void *progress_user,
                          oq_accuracy *acc)
{
    if (!s || !src || !src->next || !acc)
        return oq_error(OQ_E_INVALID_ARG, "oq_accuracy_run: NULL argument");
    name = or_default(name, "model");
    size_t n_in = oq_session_input_count(s), n_out = oq_session_output_count(s);
    if (output >= n_out)
        return oq_error(OQ_E_INVALID_ARG, "'%s' has no output %zu (it has %zu)", name, output, n_out);
    oq_tensor **outs = oq_calloc(n_out, sizeof *outs);
    if (!outs)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = OQ_OK;
    int64_t done = 0;
    for (;;) {
        const oq_tensor *const *in = NULL;
        const int64_t *lab = NULL;
        size_t n_lab = 0;
        if ((st = src->next(src->user, &in, &lab, &n_lab)) != OQ_OK || !in)
            break;
        if (!lab || !n_lab) {
            st = oq_error(OQ_E_INVALID_ARG, "the data has no labels (give a labels .npy, or an image folder with one "
                                            "subfolder per class)");
            break;
        }
        if ((st = oq_session_run(s, in, n_in, outs, n_out)) != OQ_OK) {
            oq_error_context(st, "running '%s'", name);
            break;
        }
        st = oq_accuracy_update(acc, outs[output], lab, n_lab);
        free_outputs(outs, n_out);
        if (st != OQ_OK) {
            oq_error_context(st, "'%s'", name);
            break;
        }
        done += (int64_t)n_lab;
        if (progress)
            progress(progress_user, done, src->total > done ? src->total : done);
    }
    if (st == OQ_OK && done == 0)
        st = oq_error(OQ_E_INVALID_ARG, "no samples to evaluate '%s' on", name);
    free_outputs(outs, n_out);
    free(outs);
    return st;
}

oq_status oq_bench_run(oq_session *s, const oq_tensor *const *in, size_t n_in, int warmup, int iters,
                       oq_latency_stats *out)
{
    if (!s || (!in && n_in) || !out || iters < 1 || warmup < 0)
        return oq_error(OQ_E_INVALID_ARG, "oq_bench_run: needs a session, inputs and at least one timed run");
    size_t n_out = oq_session_output_count(s);
    oq_tensor **outs = oq_calloc(n_out ? n_out : 1, sizeof *outs);
    double *times = oq_malloc((size_t)iters * sizeof *times);
    oq_status st = outs && times ? OQ_OK : oq_error(OQ_E_NOMEM, "out of memory for %d run times", iters);
    for (int k = 0; st == OQ_OK && k < warmup + iters; k++) {
        double t0 = oq_now();
        st = oq_session_run(s, in, n_in, outs, n_out);
        double ms = (oq_now() - t0) * 1000.0;
        if (k >= warmup)
            times[k - warmup] = ms;
        if (outs)
            free_outputs(outs, n_out);
    }
    if (st == OQ_OK)
        st = oq_latency_stats_compute(times, (size_t)iters, out);
    free(outs);
    free(times);
    return st;
}
