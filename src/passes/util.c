/* passes/util: small graph-editing helpers shared by the passes, and the
 * default pass pipeline the session runs. */
#include "passes/pass.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t readers_in(const oq_graph *g, const char *name);

static size_t readers_in_attrs(const oq_node *n, const char *name)
{
    size_t c = 0;
    for (size_t a = 0; a < n->n_attrs; a++) {
        if (n->attrs[a].g)
            c += readers_in(n->attrs[a].g, name);
        for (size_t k = 0; k < n->attrs[a].n_graphs; k++)
            c += readers_in(n->attrs[a].graphs[k], name);
    }
    return c;
}

static size_t readers_in(const oq_graph *g, const char *name)
{
    size_t c = 0;
    if (!name)
        return 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const oq_node *n = &g->nodes[i];
        for (size_t k = 0; k < n->n_inputs; k++)
            c += !strcmp(n->inputs[k], name);
        c += readers_in_attrs(n, name);
    }
    for (size_t i = 0; i < g->n_outputs; i++)
        c += !strcmp(g->outputs[i].name, name);
    return c;
}

size_t oq_graph_count_readers(const oq_graph *g, const char *name) { return readers_in(g, name); }

bool oq_graph_is_output(const oq_graph *g, const char *name)
{
    if (!name)
        return false;
    for (size_t i = 0; i < g->n_outputs; i++)
        if (!strcmp(g->outputs[i].name, name))
            return true;
    return false;
}

void oq_graph_remove_node(oq_graph *g, size_t i)
{
    oq_node_clear(&g->nodes[i]);
    memmove(&g->nodes[i], &g->nodes[i + 1], (g->n_nodes - i - 1) * sizeof *g->nodes);
    g->n_nodes--;
}

static oq_attr *new_attr(oq_node *n, const char *name, oq_attr_type type)
{
    oq_attr *a = realloc(n->attrs, (n->n_attrs + 1) * sizeof *a);
    if (!a)
        return NULL;
    n->attrs = a;
    a = &n->attrs[n->n_attrs];
    memset(a, 0, sizeof *a);
    a->name = oq_strdup(name);
    a->type = type;
    if (!a->name)
        return NULL;
    n->n_attrs++;
    return a;
}

oq_status oq_node_add_attr_string(oq_node *n, const char *name, const char *value)
{
    oq_attr *a = new_attr(n, name, OQ_ATTR_STRING);
    if (!a || !(a->s.data = oq_strdup(value)))
        return oq_error(OQ_E_NOMEM, "out of memory");
    a->s.len = strlen(value);
    return OQ_OK;
}

oq_status oq_node_add_attr_int(oq_node *n, const char *name, int64_t v)
{
    oq_attr *a = new_attr(n, name, OQ_ATTR_INT);
    if (!a)
        return oq_error(OQ_E_NOMEM, "out of memory");
    a->i = v;
    return OQ_OK;
}

oq_status oq_node_add_attr_ints(oq_node *n, const char *name, const int64_t *v, size_t count)
{
    oq_attr *a = new_attr(n, name, OQ_ATTR_INTS);
    if (!a || !(a->ints = oq_calloc(count + 1, sizeof *a->ints)))
        return oq_error(OQ_E_NOMEM, "out of memory");
    memcpy(a->ints, v, count * sizeof *v);
    a->n_ints = count;
    return OQ_OK;
}

oq_status oq_node_rewrite(oq_node *n, const char *op, const char *domain, const char *const *inputs, size_t n_in,
                          bool clear_attrs)
{
    char *o = oq_strdup(op), *d = oq_strdup(domain), **in = oq_calloc(n_in + 1, sizeof *in);
    bool ok = o && d && in;
    for (size_t k = 0; ok && k < n_in; k++)
        ok = (in[k] = oq_strdup(inputs[k] ? inputs[k] : "")) != NULL;
    if (!ok) {
        for (size_t k = 0; in && k < n_in; k++)
            free(in[k]);
        free(in), free(o), free(d);
        return oq_error(OQ_E_NOMEM, "out of memory");
    }
    for (size_t k = 0; k < n->n_inputs; k++)
        free(n->inputs[k]);
    free(n->inputs);
    n->inputs = in;
    n->n_inputs = n_in;
    free(n->op_type);
    n->op_type = o;
    free(n->domain);
    n->domain = d;
    for (size_t a = 0; clear_attrs && a < n->n_attrs; a++)
        oq_attr_clear(&n->attrs[a]);
    if (clear_attrs)
        n->n_attrs = 0;
    return OQ_OK;
}

oq_status oq_node_add_attr_floats(oq_node *n, const char *name, const float *v, size_t count)
{
    oq_attr *a = new_attr(n, name, OQ_ATTR_FLOATS);
    if (!a || !(a->floats = oq_malloc(count * sizeof *v)))
        return oq_error(OQ_E_NOMEM, "out of memory");
    memcpy(a->floats, v, count * sizeof *v);
    a->n_floats = count;
    return OQ_OK;
}

void oq_pass_note(oq_pass_ctx *ctx, const char *pass, const char *fmt, ...)
{
    if (!ctx || !ctx->report)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ctx->report(ctx->report_user, pass, msg);
}

oq_status oq_graph_add_initializer(oq_graph *g, oq_tensor *t)
{
    oq_status st = oq_grow((void **)&g->initializers, &g->cap_initializers, g->n_initializers + 1,
                           sizeof *g->initializers);
    if (st != OQ_OK)
        return st;
    g->initializers[g->n_initializers++] = t;
    return OQ_OK;
}

void oq_graph_remove_initializer(oq_graph *g, size_t i)
{
    const char *name = g->initializers[i]->name;
    for (size_t k = 0; name && k < g->n_inputs; k++)
        if (!strcmp(g->inputs[k].name, name)) {
            oq_value_info_clear(&g->inputs[k]);
            memmove(&g->inputs[k], &g->inputs[k + 1], (g->n_inputs - k - 1) * sizeof *g->inputs);
            g->n_inputs--;
            break;
        }
    oq_tensor_destroy(g->initializers[i]);
    memmove(&g->initializers[i], &g->initializers[i + 1], (g->n_initializers - i - 1) * sizeof *g->initializers);
    g->n_initializers--;
}

oq_status oq_graph_replace_uses(oq_graph *g, const char *from, const char *to)
{
    for (size_t i = 0; i < g->n_nodes; i++) {
        oq_node *n = &g->nodes[i];
        for (size_t k = 0; k < n->n_inputs; k++)
            if (!strcmp(n->inputs[k], from)) {
                char *s = oq_strdup(to);
                if (!s)
                    return oq_error(OQ_E_NOMEM, "out of memory");
                free(n->inputs[k]);
                n->inputs[k] = s;
            }
        for (size_t a = 0; a < n->n_attrs; a++) {
            oq_status st = OQ_OK;
            if (n->attrs[a].g)
                st = oq_graph_replace_uses(n->attrs[a].g, from, to);
            for (size_t k = 0; k < n->attrs[a].n_graphs && st == OQ_OK; k++)
                st = oq_graph_replace_uses(n->attrs[a].graphs[k], from, to);
            if (st != OQ_OK)
                return st;
        }
    }
    return OQ_OK;
}

static char **dup_list(const char *const *v, size_t n)
{
    char **out = oq_calloc(n + 1, sizeof *out);
    for (size_t i = 0; out && i < n; i++)
        if (!(out[i] = oq_strdup(v[i] ? v[i] : ""))) {
            for (size_t k = 0; k < i; k++)
                free(out[k]);
            free(out);
            return NULL;
        }
    return out;
}

oq_status oq_graph_add_node(oq_graph *g, const char *op, const char *domain, const char *name, const char *const *in,
                      size_t n_in, const char *const *out, size_t n_out, oq_node **added)
{
    if (oq_grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes) != OQ_OK)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->op_type = oq_strdup(op);
    n->domain = oq_strdup(domain ? domain : "");
    n->name = oq_strdup(name ? name : "");
    n->inputs = dup_list(in, n_in);
    n->outputs = dup_list(out, n_out);
    n->n_inputs = n_in;
    n->n_outputs = n_out;
    if (!n->op_type || !n->domain || !n->name || !n->inputs || !n->outputs) {
        oq_node_clear(n);
        return oq_error(OQ_E_NOMEM, "out of memory");
    }
    g->n_nodes++;
    if (added)
        *added = n;
    return OQ_OK;
}

oq_status oq_graph_rename_value(oq_graph *g, const char *name, const char *suffix, char **new_name)
{
    char *old = oq_strdup(name), *fresh = old ? oq_graph_unique_name(g, old, suffix) : NULL;
    oq_status st = old && fresh ? OQ_OK : oq_error(OQ_E_NOMEM, "out of memory");
    size_t p = st == OQ_OK ? oq_graph_producer(g, old) : SIZE_MAX;
    for (size_t o = 0; p != SIZE_MAX && o < g->nodes[p].n_outputs && st == OQ_OK; o++)
        if (!strcmp(g->nodes[p].outputs[o], old)) {
            char *copy = oq_strdup(fresh);
            if (!copy)
                st = oq_error(OQ_E_NOMEM, "out of memory");
            else {
                free(g->nodes[p].outputs[o]);
                g->nodes[p].outputs[o] = copy;
            }
        }
    if (st == OQ_OK)
        st = oq_graph_replace_uses(g, old, fresh);
    free(old);
    if (st == OQ_OK && new_name)
        *new_name = fresh;
    else
        free(fresh);
    return st;
}

oq_status oq_graph_add_named_initializer(oq_graph *g, oq_tensor *t, const char *base, const char *suffix)
{
    free(t->name);
    oq_status st = (t->name = oq_graph_unique_name(g, base, suffix)) ? oq_graph_add_initializer(g, t)
                                                                      : oq_error(OQ_E_NOMEM, "out of memory");
    if (st != OQ_OK)
        oq_tensor_destroy(t);
    return st;
}

oq_status oq_node_set_input_initializer(oq_graph *g, oq_node *n, size_t slot, oq_tensor *t, const char *suffix)
{
    oq_status st = oq_graph_add_named_initializer(g, t, n->inputs[slot], suffix);
    char *in = st == OQ_OK ? oq_strdup(t->name) : NULL;
    if (st != OQ_OK)
        return st;
    if (!in) { /* as if it had never been added */
        oq_graph_remove_initializer(g, g->n_initializers - 1);
        return oq_error(OQ_E_NOMEM, "out of memory");
    }
    free(n->inputs[slot]);
    n->inputs[slot] = in;
    return OQ_OK;
}

static bool name_used(const oq_graph *g, const char *name)
{
    if (oq_graph_initializer(g, name) || readers_in(g, name))
        return true;
    for (size_t i = 0; i < g->n_inputs; i++)
        if (!strcmp(g->inputs[i].name, name))
            return true;
    return oq_graph_producer(g, name) != SIZE_MAX;
}

char *oq_graph_unique_name(const oq_graph *g, const char *base, const char *suffix)
{
    size_t len = strlen(base) + strlen(suffix) + 24;
    char *s = oq_malloc(len);
    if (!s)
        return NULL;
    snprintf(s, len, "%s%s", base, suffix);
    for (unsigned k = 1; name_used(g, s); k++)
        snprintf(s, len, "%s%s_%u", base, suffix, k);
    return s;
}

size_t oq_graph_producer(const oq_graph *g, const char *name)
{
    if (!name) /* an omitted input (oq_node_input gives NULL) has no producer */
        return SIZE_MAX;
    for (size_t i = 0; i < g->n_nodes; i++)
        for (size_t k = 0; k < g->nodes[i].n_outputs; k++)
            if (!strcmp(g->nodes[i].outputs[k], name))
                return i;
    return SIZE_MAX;
}

bool oq_pass_keeps_value(const oq_pass_ctx *ctx, const oq_graph *g, const char *name)
{
    return oq_graph_is_output(g, name) || (ctx && ctx->keep_values && oq_strmap_get(ctx->keep_values, name, NULL));
}

size_t oq_graph_single_reader(const oq_graph *g, const char *name)
{
    if (oq_graph_is_output(g, name) || readers_in(g, name) != 1)
        return SIZE_MAX;
    for (size_t i = 0; i < g->n_nodes; i++)
        for (size_t k = 0; k < g->nodes[i].n_inputs; k++)
            if (!strcmp(g->nodes[i].inputs[k], name))
                return i;
    return SIZE_MAX; /* read inside a subgraph */
}

bool oq_graph_const_scalar(const oq_graph *g, const char *name, double *v)
{
    const oq_tensor *t = name ? oq_graph_initializer(g, name) : NULL;
    if (!t || oq_tensor_numel(t) != 1 || !t->data ||
        (t->dtype != OQ_FLOAT && t->dtype != OQ_DOUBLE && t->dtype != OQ_FLOAT16))
        return false;
    *v = oq_tensor_get_f64(t, 0);
    return true;
}

oq_status oq_model_import_domain(oq_model *m, const char *domain, int64_t version)
{
    for (size_t i = 0; i < m->n_opsets; i++)
        if (m->opsets[i].domain && !strcmp(m->opsets[i].domain, domain))
            return OQ_OK;
    oq_opset_import *o = realloc(m->opsets, (m->n_opsets + 1) * sizeof *o);
    if (!o)
        return oq_error(OQ_E_NOMEM, "out of memory");
    m->opsets = o;
    if (!(o[m->n_opsets].domain = oq_strdup(domain)))
        return oq_error(OQ_E_NOMEM, "out of memory");
    o[m->n_opsets].version = version;
    m->n_opsets++;
    return OQ_OK;
}

/* The runtime's fusions (they replace values by fused nodes). */
static oq_status fuse_graph(oq_model *m, oq_graph *g, oq_pass_ctx *ctx)
{
    oq_status st = pass_fuse_identity(m, g, ctx);
    if (st == OQ_OK)
        st = pass_fold_batchnorm(m, g, ctx);
    if (st == OQ_OK)
        st = pass_fuse_layernorm(m, g, ctx);
    if (st == OQ_OK)
        st = pass_fuse_gelu(m, g, ctx);
    if (st == OQ_OK)
        st = pass_fuse_attention(m, g, ctx);
    if (st == OQ_OK)
        st = pass_fuse_matmul_bias(m, g, ctx);
    if (st == OQ_OK && !ctx->no_qdq_fusion)
        st = pass_fuse_dynamic(m, g, ctx);
    if (st == OQ_OK && !ctx->no_qdq_fusion)
        st = pass_fuse_qdq(m, g, ctx);
    if (st == OQ_OK)
        st = pass_fold_dequantize(m, g, ctx);
    /* again: a QDQ MatMul with a float output became MatMulIntegerToFloat, whose bias Add now fuses */
    if (st == OQ_OK && !ctx->no_qdq_fusion)
        st = pass_fuse_matmul_bias(m, g, ctx);
    if (st == OQ_OK)
        st = pass_fuse_activation(m, g, ctx);
    if (st == OQ_OK && !getenv("ONNXQ_NO_EW_FUSION"))
        st = pass_fuse_elementwise(m, g, ctx);
    if (st == OQ_OK)
        st = pass_layout_nhwc(m, g, ctx);
    return st;
}

static oq_status run_graph(oq_model *m, oq_graph *g, oq_pass_ctx *ctx, bool sub)
{
    /* Constants first (later passes look for initializers); fusions; cleanup last. A body
     * kept for the calibration observer gets no fusions: they would hide its values. */
    oq_status st = pass_constant_fold(m, g, ctx);
    if (st == OQ_OK && !(sub && ctx->keep_subgraph_values))
        st = fuse_graph(m, g, ctx);
    if (st == OQ_OK)
        st = pass_dead_nodes(m, g, ctx);
    for (size_t i = 0; i < g->n_nodes && st == OQ_OK; i++)
        for (size_t a = 0; a < g->nodes[i].n_attrs && st == OQ_OK; a++) {
            if (g->nodes[i].attrs[a].g)
                st = run_graph(m, g->nodes[i].attrs[a].g, ctx, true);
        }
    return st;
}

oq_status oq_passes_run_default(oq_model *m, oq_pass_ctx *ctx) { return run_graph(m, m->graph, ctx, false); }
