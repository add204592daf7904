/* runtime/session: the public session API over the main graph's exec state:
 * thread pool, input checks, descriptions of inputs and outputs. */
#include "passes/pass.h"
#include "runtime/exec.h"

#include <stdlib.h>
#include <string.h>

oq_status oq_exec_check_inputs(const oq_exec *e, const oq_tensor *const *in, size_t n_in);

struct oq_session {
    oq_model *model; /* the session's own copy, rewritten by the passes */
    oq_exec *exec;
    oq_threadpool *tp;
    oq_value_desc *inputs, *outputs;
    size_t n_inputs, n_outputs;
};

oq_session_options oq_session_options_default(void)
{
    oq_session_options o = {0};
    o.threads = 0;
    return o;
}

static void describe(const oq_value_info *vi, const char *name, oq_value_desc *d)
{
    memset(d, 0, sizeof *d);
    d->name = name;
    d->ndim = -1;
    if (!vi)
        return;
    d->dtype = vi->dtype;
    d->ndim = vi->ndim;
    for (int i = 0; i < vi->ndim && i < OQ_MAX_DIMS; i++) {
        d->dims[i] = vi->dims[i];
        d->dim_params[i] = vi->dim_params[i];
    }
}

static const oq_value_info *find_vi(const oq_value_info *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].name, name))
            return &v[i];
    return NULL;
}

static oq_status create(const oq_model *m, const oq_session_options *opt, bool observable, const oq_strmap *keep,
                        oq_session **out);

oq_status oq_session_create(const oq_model *m, const oq_session_options *opt, oq_session **out)
{
    return create(m, opt, false, NULL, out);
}

oq_status oq_session_create_observable(const oq_model *m, const oq_session_options *opt, oq_session **out)
{
    return create(m, opt, true, NULL, out);
}

oq_status oq_session_create_observing(const oq_model *m, const oq_session_options *opt, const char *const *keep,
                                      size_t n_keep, oq_session **out)
{
    oq_strmap map = {0};
    oq_status st = oq_strmap_init(&map, n_keep + 1);
    for (size_t i = 0; st == OQ_OK && i < n_keep; i++)
        st = oq_strmap_put(&map, keep[i], i);
    if (st == OQ_OK)
        st = create(m, opt, true, &map, out);
    oq_strmap_free(&map);
    return st;
}

static oq_status create(const oq_model *m, const oq_session_options *opt, bool observable, const oq_strmap *keep,
                        oq_session **out)
{
    if (!m || !out || !m->graph)
        return oq_error(OQ_E_INVALID_ARG, "oq_session_create: NULL argument");
    oq_session_options o = opt ? *opt : oq_session_options_default();
    oq_session *s = calloc(1, sizeof *s);
    if (!s)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = oq_model_clone(m, &s->model);
    oq_pass_ctx pctx = {0};
    pctx.no_qdq_fusion = o.emulate_qdq;
    pctx.keep_subgraph_values = observable;
    pctx.keep_values = keep;
    if (st == OQ_OK)
        st = oq_passes_run_default(s->model, &pctx);
    /* After the passes: an operator they remove (Dropout, Identity) need not have a kernel. */
    if (st == OQ_OK)
        st = oq_model_check_supported(s->model);
    if (st == OQ_OK)
        st = oq_threadpool_create(o.threads, &s->tp);
    if (st == OQ_OK)
        st = oq_exec_create(s->model, s->model->graph, NULL, s->tp, o.profile, &s->exec);
    if (st == OQ_OK) {
        oq_exec *e = s->exec;
        s->inputs = oq_calloc(e->n_inputs + 1, sizeof *s->inputs);
        s->outputs = oq_calloc(e->n_outputs + 1, sizeof *s->outputs);
        if (!s->inputs || !s->outputs)
            st = oq_error(OQ_E_NOMEM, "out of memory");
        for (size_t i = 0; st == OQ_OK && i < e->n_inputs; i++) {
            const char *name = e->values[e->inputs[i]].name;
            describe(find_vi(s->model->graph->inputs, s->model->graph->n_inputs, name), name, &s->inputs[i]);
        }
        for (size_t i = 0; st == OQ_OK && i < e->n_outputs; i++) {
            const char *name = s->model->graph->outputs[i].name;
            describe(&s->model->graph->outputs[i], name, &s->outputs[i]);
        }
        s->n_inputs = e->n_inputs;
        s->n_outputs = e->n_outputs;
    }
    if (st != OQ_OK) {
        if (m->path && !strstr(oq_last_error(), m->path))
            oq_error_context(st, "%s", m->path);
        oq_session_destroy(s);
        return st;
    }
    *out = s;
    return OQ_OK;
}

static void set_observer(oq_exec *e, oq_value_observer fn, void *user)
{
    e->observe = fn;
    e->observe_user = user;
    for (size_t i = 0; i < e->n_nodes; i++)
        for (size_t k = 0; k < e->nodes[i].op.n_subgraphs; k++)
            if (e->nodes[i].op.subgraphs[k])
                set_observer(e->nodes[i].op.subgraphs[k], fn, user);
}

void oq_session_set_observer(oq_session *s, oq_value_observer fn, void *user)
{
    if (s && s->exec)
        set_observer(s->exec, fn, user);
}

size_t oq_session_input_count(const oq_session *s) { return s ? s->n_inputs : 0; }
size_t oq_session_output_count(const oq_session *s) { return s ? s->n_outputs : 0; }

const oq_value_desc *oq_session_input(const oq_session *s, size_t i)
{
    return s && i < s->n_inputs ? &s->inputs[i] : NULL;
}

const oq_value_desc *oq_session_output(const oq_session *s, size_t i)
{
    return s && i < s->n_outputs ? &s->outputs[i] : NULL;
}

oq_status oq_session_run(oq_session *s, const oq_tensor *const *in, size_t n_in, oq_tensor **out, size_t n_out)
{
    if (!s || (n_in && !in) || (n_out && !out))
        return oq_error(OQ_E_INVALID_ARG, "oq_session_run: NULL argument");
    if (n_out != s->n_outputs)
        return oq_error(OQ_E_INVALID_ARG, "the model has %zu outputs but room for %zu was given", s->n_outputs, n_out);
    oq_status st = oq_exec_check_inputs(s->exec, in, n_in);
    if (st != OQ_OK)
        return st;
    oq_tensor **res = oq_calloc(n_out + 1, sizeof *res);
    if (!res)
        return oq_error(OQ_E_NOMEM, "out of memory");
    st = oq_exec_run(s->exec, in, n_in, res, n_out);
    if (st == OQ_OK)
        for (size_t i = 0; i < n_out; i++)
            out[i] = res[i];
    free(res);
    return st;
}

void oq_session_destroy(oq_session *s)
{
    if (!s)
        return;
    oq_exec_destroy(s->exec);
    oq_threadpool_destroy(s->tp);
    oq_model_destroy(s->model);
    free(s->inputs);
    free(s->outputs);
    free(s);
}

oq_status oq_session_profile(const oq_session *s, oq_node_profile **out, size_t *n)
{
    if (!s || !out || !n)
        return oq_error(OQ_E_INVALID_ARG, "oq_session_profile: NULL argument");
    const oq_exec *e = s->exec;
    if (!e->profile)
        return oq_error(OQ_E_INVALID_ARG, "the session was created without the profile option");
    oq_node_profile *p = oq_calloc(e->n_nodes + 1, sizeof *p);
    if (!p)
        return oq_error(OQ_E_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < e->n_nodes; i++) {
        const exec_node *en = &e->nodes[i];
        if (en->skip)
            continue;
        p[k].name = en->op.label;
        p[k].op_type = en->op.node->op_type;
        p[k].total_ms = en->time_total * 1e3;
        p[k].runs = en->runs;
        k++;
    }
    *out = p;
    *n = k;
    return OQ_OK;
}
