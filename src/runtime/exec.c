/* runtime/exec: builds the execution state of a graph (value slots, operator
 * preparation, liveness) and runs it. The first run with new input shapes
 * allocates activations on the heap and records their sizes; the arena plan
 * made from those sizes and first/last use serves every later run with the
 * same shapes. */
#include "runtime/exec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NO_VALUE SIZE_MAX

static oq_status add_value(oq_exec *e, const char *name, value_kind kind, size_t *out)
{
    oq_status st = oq_grow((void **)&e->values, &e->cap_values, e->n_values + 1, sizeof *e->values);
    if (st != OQ_OK)
        return st;
    exec_value *v = &e->values[e->n_values];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->kind = kind;
    v->def = NO_VALUE;
    v->last = NO_VALUE;
    if (name && name[0]) {
        st = oq_strmap_put(&e->names, name, e->n_values);
        if (st != OQ_OK)
            return st;
    }
    *out = e->n_values++;
    return OQ_OK;
}

/* Index of a name visible in e: local, else imported from the enclosing scope. */
static oq_status resolve(oq_exec *e, const char *name, size_t *out)
{
    if (oq_strmap_get(&e->names, name, out))
        return OQ_OK;
    size_t pi;
    if (e->parent && oq_strmap_get(&e->parent->names, name, &pi)) {
        oq_status st = add_value(e, name, VALUE_OUTER, out);
        if (st == OQ_OK)
            e->values[*out].outer = pi;
        return st;
    }
    return oq_error(OQ_E_GRAPH, "value '%s' is not defined in graph '%s' or an enclosing graph", name,
                    e->g->name ? e->g->name : "");
}

oq_exec *oq_op_subgraph(const oq_op_node *n, const char *attr_name)
{
    size_t k = 0;
    for (size_t a = 0; a < n->node->n_attrs; a++) {
        if (!n->node->attrs[a].g)
            continue;
        if (!strcmp(n->node->attrs[a].name, attr_name))
            return k < n->n_subgraphs ? n->subgraphs[k] : NULL;
        k++;
    }
    return NULL;
}

size_t oq_exec_input_count(const oq_exec *sub) { return sub->n_inputs; }
size_t oq_exec_output_count(const oq_exec *sub) { return sub->n_outputs; }

static oq_status setup_node(oq_exec *e, size_t idx, const oq_node *n)
{
    exec_node *en = &e->nodes[idx];
    char lb[256];
    oq_status st = OQ_OK;
    en->op.node = n;
    en->op.label = n->name && n->name[0] ? n->name : (n->n_outputs ? n->outputs[0] : n->op_type);
    en->op.tp = e->tp;
    int64_t opset = oq_model_opset(e->model, n->domain);
    if (opset == 0 && !oq_domain_is_default(n->domain))
        opset = 1;
    en->op.opset = opset;
    const oq_op_entry *entry = oq_op_find(n->domain, n->op_type, opset);
    if (!entry) {
        const oq_op_entry *any = oq_op_find_any(n->domain, n->op_type);
        const char *dom = oq_domain_is_default(n->domain) ? "ai.onnx" : n->domain;
        if (any)
            return oq_error(OQ_E_UNSUPPORTED,
                            "node '%s': operator %s (domain %s) at opset %lld is not supported; onnxq implements it for "
                            "opsets %d to %d",
                            oq_node_label(n, lb, sizeof lb), n->op_type, dom, (long long)opset, any->first_opset,
                            any->last_opset);
        return oq_error(OQ_E_UNSUPPORTED, "node '%s': operator %s (domain %s, opset %lld) is not implemented",
                        oq_node_label(n, lb, sizeof lb), n->op_type, dom, (long long)opset);
    }
    /* Every ONNX operator has at least one output; kernels may rely on out[0]. */
    if (n->n_outputs == 0)
        return oq_error(OQ_E_GRAPH, "node '%s' (%s) has no outputs", oq_node_label(n, lb, sizeof lb), n->op_type);
    en->def = entry->def;
    en->n_in = n->n_inputs;
    en->n_out = n->n_outputs;
    en->op.n_inputs = n->n_inputs;
    en->op.n_outputs = n->n_outputs;
    en->in = oq_calloc(n->n_inputs + 1, sizeof *en->in);
    en->out = oq_calloc(n->n_outputs + 1, sizeof *en->out);
    en->in_ptrs = oq_calloc(n->n_inputs + 1, sizeof *en->in_ptrs);
    en->out_ptrs = oq_calloc(n->n_outputs + 1, sizeof *en->out_ptrs);
    en->op.consts = (const oq_tensor *const *)oq_calloc(n->n_inputs + 1, sizeof(oq_tensor *));
    if (!en->in || !en->out || !en->in_ptrs || !en->out_ptrs || !en->op.consts)
        return oq_error(OQ_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n->n_inputs && st == OQ_OK; i++) {
        en->in[i] = NO_VALUE;
        if (n->inputs[i][0])
            st = resolve(e, n->inputs[i], &en->in[i]);
    }
    const char **imp = NULL;
    size_t n_imp = 0;
    if (st == OQ_OK)
        st = oq_node_implicit_inputs(n, &imp, &n_imp);
    if (st == OQ_OK) {
        en->reads = oq_calloc(n->n_inputs + n_imp + 1, sizeof *en->reads);
        if (!en->reads)
            st = oq_error(OQ_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n->n_inputs && st == OQ_OK; i++)
        if (en->in[i] != NO_VALUE)
            en->reads[en->n_reads++] = en->in[i];
    for (size_t i = 0; i < n_imp && st == OQ_OK; i++) {
        size_t v;
        st = resolve(e, imp[i], &v);
        if (st == OQ_OK)
            en->reads[en->n_reads++] = v;
    }
    free(imp);
    for (size_t o = 0; o < n->n_outputs && st == OQ_OK; o++) {
        size_t v;
        if (n->outputs[o][0] && oq_strmap_get(&e->names, n->outputs[o], &v) && e->values[v].kind != VALUE_OUTER)
            st = oq_error(OQ_E_GRAPH, "node '%s' writes '%s', which is already defined", oq_node_label(n, lb, sizeof lb),
                          n->outputs[o]);
        if (st == OQ_OK)
            st = add_value(e, n->outputs[o], VALUE_ACTIVATION, &en->out[o]);
        if (st == OQ_OK)
            e->values[en->out[o]].def = idx;
    }
    /* Subgraphs are built after this node's outputs exist, so they can see every earlier value. */
    size_t n_graphs = 0;
    for (size_t a = 0; a < n->n_attrs; a++)
        n_graphs += n->attrs[a].g != NULL;
    if (st == OQ_OK && n_graphs) {
        en->op.subgraphs = oq_calloc(n_graphs, sizeof *en->op.subgraphs);
        if (!en->op.subgraphs)
            st = oq_error(OQ_E_NOMEM, "out of memory");
        for (size_t a = 0; a < n->n_attrs && st == OQ_OK; a++) {
            if (!n->attrs[a].g)
                continue;
            st = oq_exec_create(e->model, n->attrs[a].g, e, e->tp, e->profile, &en->op.subgraphs[en->op.n_subgraphs]);
            if (st == OQ_OK)
                en->op.n_subgraphs++;
            else
                st = oq_error_context(st, "node '%s' (%s), subgraph '%s'", oq_node_label(n, lb, sizeof lb), n->op_type,
                                      n->attrs[a].name);
        }
    }
    return st;
}

static const oq_tensor *value_const(const oq_exec *e, size_t v)
{
    if (v == NO_VALUE)
        return NULL;
    const exec_value *ev = &e->values[v];
    if (ev->kind == VALUE_CONSTANT)
        return &ev->t;
    return NULL;
}

static void release_value(exec_value *v)
{
    if (v->kind != VALUE_ACTIVATION)
        return;
    if (v->in_arena) {
        v->t.data = NULL;
        v->t.nbytes = 0;
        v->in_arena = false;
    } else {
        oq_tensor_release(&v->t);
    }
}

/* Evaluates a Constant node at creation; its output becomes a constant value. */
static oq_status fold_constant(oq_exec *e, exec_node *en)
{
    exec_value *v = &e->values[en->out[0]];
    oq_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return oq_error(OQ_E_NOMEM, "out of memory");
    en->out_ptrs[0] = t;
    oq_status st = en->def->run(&en->op, en->in_ptrs, en->out_ptrs);
    en->out_ptrs[0] = NULL;
    if (st != OQ_OK) {
        oq_tensor_destroy(t);
        return st;
    }
    v->kind = VALUE_CONSTANT;
    v->owned_const = t;
    v->t = *t;
    v->t.flags = 0;
    v->t.name = (char *)v->name;
    en->skip = true;
    return OQ_OK;
}

oq_status oq_exec_create(const oq_model *m, const oq_graph *g, oq_exec *parent, oq_threadpool *tp, int profile,
                         oq_exec **out)
{
    oq_exec *e = calloc(1, sizeof *e);
    if (!e)
        return oq_error(OQ_E_NOMEM, "out of memory");
    e->model = m;
    e->g = g;
    e->parent = parent;
    e->tp = tp;
    e->profile = profile;
    oq_status st = oq_strmap_init(&e->names, g->n_nodes * 2 + g->n_inputs + g->n_initializers);
    if (st == OQ_OK) {
        e->nodes = oq_calloc(g->n_nodes + 1, sizeof *e->nodes);
        e->inputs = oq_calloc(g->n_inputs + 1, sizeof *e->inputs);
        e->outputs = oq_calloc(g->n_outputs + 1, sizeof *e->outputs);
        if (!e->nodes || !e->inputs || !e->outputs)
            st = oq_error(OQ_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < g->n_initializers && st == OQ_OK; i++) {
        size_t v;
        st = add_value(e, g->initializers[i]->name, VALUE_CONSTANT, &v);
        if (st == OQ_OK) {
            e->values[v].t = *g->initializers[i];
            e->values[v].t.flags = 0;
        }
    }
    for (size_t i = 0; i < g->n_inputs && st == OQ_OK; i++) {
        size_t v;
        if (oq_strmap_get(&e->names, g->inputs[i].name, &v))
            continue; /* an initializer: a constant here */
        if (g->inputs[i].dtype == OQ_UNDEFINED && g->inputs[i].type_proto.data) {
            st = oq_error(OQ_E_UNSUPPORTED, "input '%s' is not a tensor (sequence, map or optional); onnxq runs tensors only",
                          g->inputs[i].name);
            break;
        }
        st = add_value(e, g->inputs[i].name, VALUE_INPUT, &v);
        if (st == OQ_OK)
            e->inputs[e->n_inputs++] = v;
    }
    e->n_nodes = g->n_nodes;
    for (size_t i = 0; i < g->n_nodes && st == OQ_OK; i++)
        st = setup_node(e, i, &g->nodes[i]);
    for (size_t i = 0; i < g->n_outputs && st == OQ_OK; i++) {
        st = resolve(e, g->outputs[i].name, &e->outputs[i]);
        if (st == OQ_OK)
            e->n_outputs++;
    }
    /* Constants first, so prepare sees them as constant inputs. */
    for (size_t i = 0; i < e->n_nodes && st == OQ_OK; i++) {
        exec_node *en = &e->nodes[i];
        if (!strcmp(en->op.node->op_type, "Constant") && oq_domain_is_default(en->op.node->domain) &&
            en->n_out == 1) {
            if (en->def->prepare)
                st = en->def->prepare(&en->op);
            if (st == OQ_OK)
                st = fold_constant(e, en);
        }
    }
    for (size_t i = 0; i < e->n_nodes && st == OQ_OK; i++) {
        exec_node *en = &e->nodes[i];
        if (en->skip)
            continue;
        for (size_t k = 0; k < en->n_in; k++)
            ((const oq_tensor **)en->op.consts)[k] = value_const(e, en->in[k]);
        if (en->def->prepare) {
            st = en->def->prepare(&en->op);
            if (st != OQ_OK && !strstr(oq_last_error(), en->op.label))
                st = oq_error_context(st, "node '%s' (%s)", en->op.label, en->op.node->op_type);
        }
    }
    /* Liveness: last reader of each value; graph outputs live to the end. */
    for (size_t i = 0; i < e->n_nodes && st == OQ_OK; i++)
        for (size_t k = 0; k < e->nodes[i].n_reads; k++)
            e->values[e->nodes[i].reads[k]].last = i;
    for (size_t i = 0; i < e->n_outputs && st == OQ_OK; i++)
        e->values[e->outputs[i]].last = e->n_nodes;
    for (size_t v = 0; v < e->n_values && st == OQ_OK; v++) {
        exec_value *ev = &e->values[v];
        if (ev->kind != VALUE_ACTIVATION || ev->def == NO_VALUE)
            continue;
        if (ev->last == NO_VALUE || ev->last < ev->def)
            ev->last = ev->def; /* unused output: free right after its node */
        if (ev->last >= e->n_nodes)
            continue;
        exec_node *en = &e->nodes[ev->last];
        size_t *r = realloc(en->release, (en->n_release + 1) * sizeof *r);
        if (!r) {
            st = oq_error(OQ_E_NOMEM, "out of memory");
            break;
        }
        en->release = r;
        r[en->n_release++] = v;
    }
    if (st != OQ_OK) {
        oq_exec_destroy(e);
        return st;
    }
    *out = e;
    return OQ_OK;
}

void oq_exec_destroy(oq_exec *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n_nodes; i++) {
        exec_node *en = &e->nodes[i];
        if (en->def && en->def->destroy && en->op.state)
            en->def->destroy(en->op.state);
        for (size_t k = 0; k < en->op.n_subgraphs; k++)
            oq_exec_destroy(en->op.subgraphs[k]);
        free(en->op.subgraphs);
        free((void *)en->op.consts);
        free(en->in);
        free(en->out);
        free(en->reads);
        free(en->release);
        free(en->in_ptrs);
        free(en->out_ptrs);
    }
    for (size_t v = 0; v < e->n_values; v++) {
        release_value(&e->values[v]);
        oq_tensor_destroy(e->values[v].owned_const);
    }
    free(e->nodes);
    free(e->values);
    free(e->inputs);
    free(e->outputs);
    oq_strmap_free(&e->names);
    oq_aligned_free(e->arena);
    free(e);
}

/* Greedy placement, largest first: each value takes the lowest offset that does
 * not overlap a placed value whose lifetime intersects its own. */
static int cmp_size_desc(const void *a, const void *b, void *ctx)
{
    const exec_value *v = ctx;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    if (v[x].plan_bytes != v[y].plan_bytes)
        return v[x].plan_bytes < v[y].plan_bytes ? 1 : -1;
    return x < y ? -1 : x > y;
}

/* Reshape-like nodes copy their input unchanged: when the input is an arena value of the
 * same size, the output shares its bytes (the run's copy then sees src == dst and does
 * nothing) and the pair is placed as one value living from the input's definition to the
 * last use of either. */
static bool is_view(const exec_node *en)
{
    return en->def == &oq_op_reshape || en->def == &oq_op_flatten || en->def == &oq_op_squeeze ||
           en->def == &oq_op_unsqueeze;
}

static bool plannable(const oq_exec *e, const exec_value *ev)
{
    return ev->kind == VALUE_ACTIVATION && ev->def != NO_VALUE && ev->plan_bytes && e->nodes[ev->def].def->infer;
}

static void make_plan(oq_exec *e)
{
    size_t *order = oq_malloc((e->n_values + 1) * sizeof *order), n = 0;
    size_t *placed = oq_malloc((e->n_values + 1) * sizeof *placed), n_placed = 0;
    size_t *root = oq_malloc((e->n_values + 1) * sizeof *root), *last = oq_malloc((e->n_values + 1) * sizeof *last);
    if (!order || !placed || !root || !last) {
        free(order);
        free(placed);
        free(root);
        free(last);
        e->plan_valid = false;
        return;
    }
    for (size_t v = 0; v < e->n_values; v++) {
        root[v] = v;
        last[v] = e->values[v].last;
    }
    /* nodes run in order, so an input's root is known before its view's */
    for (size_t i = 0; i < e->n_nodes; i++) {
        const exec_node *en = &e->nodes[i];
        if (!is_view(en) || en->n_in < 1 || en->n_out != 1 || en->in[0] == NO_VALUE || en->out[0] == NO_VALUE)
            continue;
        size_t u = en->in[0], v = en->out[0];
        const exec_value *eu = &e->values[u], *ev = &e->values[v];
        if (!plannable(e, eu) || !plannable(e, ev) || ev->def != i || eu->plan_bytes != ev->plan_bytes ||
            eu->t.dtype == OQ_STRING || ev->t.dtype == OQ_STRING)
            continue;
        size_t r = root[u];
        root[v] = r;
        if (last[v] > last[r])
            last[r] = last[v];
    }
    for (size_t v = 0; v < e->n_values; v++) {
        exec_value *ev = &e->values[v];
        ev->planned = false;
        if (plannable(e, ev) && root[v] == v)
            order[n++] = v;
    }
    /* roots carry their group's lifetime while they are placed (last[] keeps their own) */
    for (size_t i = 0; i < n; i++) {
        size_t r = order[i], group_last = last[r];
        last[r] = e->values[r].last;
        e->values[r].last = group_last;
    }
    qsort_r(order, n, sizeof *order, cmp_size_desc, e->values);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        exec_value *ev = &e->values[order[i]];
        size_t need = (ev->plan_bytes + 63) & ~(size_t)63, offset = 0;
        bool moved = true;
        while (moved) { /* first fit among conflicting intervals */
            moved = false;
            for (size_t k = 0; k < n_placed; k++) {
                exec_value *p = &e->values[placed[k]];
                bool overlap_time = !(p->last < ev->def || ev->last < p->def);
                size_t pend = p->plan_offset + ((p->plan_bytes + 63) & ~(size_t)63);
                if (overlap_time && offset < pend && p->plan_offset < offset + need) {
                    offset = pend;
                    moved = true;
                }
            }
        }
        ev->plan_offset = offset;
        ev->planned = true;
        placed[n_placed++] = order[i];
        if (offset + need > total)
            total = offset + need;
    }
    /* back to each root's own last use (the release lists read it) */
    for (size_t i = 0; i < n; i++)
        e->values[order[i]].last = last[order[i]];
    for (size_t v = 0; v < e->n_values; v++) {
        exec_value *ev = &e->values[v];
        if (root[v] != v && e->values[root[v]].planned) {
            ev->plan_offset = e->values[root[v]].plan_offset;
            ev->planned = true;
        }
    }
    free(order);
    free(placed);
    free(root);
    free(last);
    if (total > e->arena_size) {
        oq_aligned_free(e->arena);
        e->arena = oq_aligned_alloc(total);
        e->arena_size = e->arena ? total : 0;
        if (!e->arena) {
            e->plan_valid = false;
            return;
        }
    }
    e->plan_valid = true;
}

static oq_status bind_inputs(oq_exec *e, const oq_tensor *const *in, size_t n_in)
{
    if (n_in != e->n_inputs)
        return oq_error(OQ_E_INVALID_ARG, "graph '%s' has %zu inputs but %zu were given", e->g->name ? e->g->name : "",
                        e->n_inputs, n_in);
    for (size_t i = 0; i < n_in; i++) {
        exec_value *v = &e->values[e->inputs[i]];
        if (!in[i])
            return oq_error(OQ_E_INVALID_ARG, "input '%s' is missing", v->name);
        v->t = *in[i];
        v->t.flags = 0;
        v->t.name = (char *)v->name;
    }
    return OQ_OK;
}

/* Checks inputs against the declared types and shapes (main graph only; subgraph
 * formal inputs are often declared loosely). */
oq_status oq_exec_check_inputs(const oq_exec *e, const oq_tensor *const *in, size_t n_in);
oq_status oq_exec_check_inputs(const oq_exec *e, const oq_tensor *const *in, size_t n_in)
{
    if (n_in != e->n_inputs)
        return oq_error(OQ_E_INVALID_ARG, "the model has %zu inputs but %zu were given", e->n_inputs, n_in);
    for (size_t i = 0; i < n_in; i++) {
        const char *name = e->values[e->inputs[i]].name;
        const oq_value_info *vi = NULL;
        for (size_t k = 0; k < e->g->n_inputs; k++)
            if (!strcmp(e->g->inputs[k].name, name))
                vi = &e->g->inputs[k];
        if (!in[i])
            return oq_error(OQ_E_INVALID_ARG, "input '%s' is missing", name);
        if (!vi)
            continue;
        if (vi->dtype != OQ_UNDEFINED && in[i]->dtype != vi->dtype)
            return oq_error(OQ_E_TYPE, "input '%s' has type %s but the model expects %s", name,
                            oq_dtype_name(in[i]->dtype), oq_dtype_name(vi->dtype));
        bool bad = vi->ndim >= 0 && vi->ndim != in[i]->ndim;
        for (int d = 0; !bad && vi->ndim >= 0 && d < vi->ndim; d++)
            if (vi->dims[d] >= 0 && vi->dims[d] != in[i]->dims[d])
                bad = true;
        if (bad) {
            char got[160], want[200];
            size_t o = 0;
            o += (size_t)snprintf(want + o, sizeof want - o, "[");
            for (int d = 0; d < vi->ndim && o < sizeof want; d++) {
                if (vi->dim_params[d])
                    o += (size_t)snprintf(want + o, sizeof want - o, d ? ",%s" : "%s", vi->dim_params[d]);
                else if (vi->dims[d] >= 0)
                    o += (size_t)snprintf(want + o, sizeof want - o, d ? ",%lld" : "%lld", (long long)vi->dims[d]);
                else
                    o += (size_t)snprintf(want + o, sizeof want - o, d ? ",?" : "?");
            }
            if (o < sizeof want)
                snprintf(want + o, sizeof want - o, "]");
            return oq_error(OQ_E_SHAPE, "input '%s' has shape %s but the model expects %s", name,
                            oq_shape_str(in[i]->ndim, in[i]->dims, got, sizeof got), want);
        }
    }
    return OQ_OK;
}

static oq_status run_node(oq_exec *e, size_t idx)
{
    exec_node *en = &e->nodes[idx];
    for (size_t k = 0; k < en->n_in; k++)
        en->in_ptrs[k] = en->in[k] == NO_VALUE ? NULL : &e->values[en->in[k]].t;
    for (size_t o = 0; o < en->n_out; o++) {
        exec_value *v = &e->values[en->out[o]];
        release_value(v);
        v->t.ndim = 0;
        v->t.dtype = OQ_UNDEFINED;
        v->t.name = (char *)v->name;
        en->out_ptrs[o] = &v->t;
    }
    oq_status st;
    if (en->def->infer) {
        st = en->def->infer(&en->op, en->in_ptrs, en->out_ptrs);
        if (st != OQ_OK)
            return st;
        for (size_t o = 0; o < en->n_out; o++) {
            exec_value *v = &e->values[en->out[o]];
            oq_tensor *t = &v->t;
            if (t->dtype == OQ_UNDEFINED) /* optional output the operator does not produce */
                continue;
            int64_t numel = oq_shape_numel(t->ndim, t->dims);
            size_t es = t->dtype == OQ_STRING ? sizeof(char *) : oq_dtype_size(t->dtype), bytes;
            if (numel < 0 || oq_mul_overflow((size_t)numel, es, &bytes))
                return oq_op_error(&en->op, OQ_E_SHAPE, "output %zu has an invalid shape", o);
            if (t->dtype != OQ_STRING && e->plan_valid && v->planned && bytes <= v->plan_bytes) {
                t->data = e->arena + v->plan_offset;
                t->nbytes = bytes;
                v->in_arena = true;
            } else {
                int64_t dims[OQ_MAX_DIMS];
                int nd = t->ndim;
                memcpy(dims, t->dims, sizeof dims);
                st = oq_tensor_alloc(t, t->dtype, nd, dims);
                if (st != OQ_OK)
                    return oq_error_context(st, "node '%s' output '%s'", en->op.label, v->name);
                if (bytes > v->plan_bytes) {
                    v->plan_bytes = bytes;
                    e->replan = true;
                }
            }
        }
    }
    double t0 = e->profile ? oq_now() : 0;
    st = en->def->run(&en->op, en->in_ptrs, en->out_ptrs);
    if (e->profile) {
        en->time_total += oq_now() - t0;
        en->runs++;
    }
    if (st != OQ_OK && !strstr(oq_last_error(), en->op.label))
        st = oq_error_context(st, "node '%s' (%s)", en->op.label, en->op.node->op_type);
    return st;
}

oq_status oq_exec_run(oq_exec *e, const oq_tensor *const *in, size_t n_in, oq_tensor **out, size_t n_out)
{
    if (n_out != e->n_outputs)
        return oq_error(OQ_E_INVALID_ARG, "graph '%s' has %zu outputs but %zu were requested",
                        e->g->name ? e->g->name : "", e->n_outputs, n_out);
    oq_status st = bind_inputs(e, in, n_in);
    for (size_t v = 0; v < e->n_values && st == OQ_OK; v++) {
        exec_value *ev = &e->values[v];
        if (ev->kind == VALUE_OUTER) {
            ev->t = e->parent->values[ev->outer].t;
            ev->t.flags = 0;
        }
    }
    /* a subgraph's formal inputs are values its parent made (the main graph's are the caller's) */
    for (size_t k = 0; e->parent && e->observe && st == OQ_OK && k < e->n_inputs; k++)
        if (e->values[e->inputs[k]].t.dtype != OQ_UNDEFINED)
            e->observe(e->observe_user, e->values[e->inputs[k]].name, &e->values[e->inputs[k]].t);
    e->replan = false;
    size_t i = 0;
    for (; i < e->n_nodes && st == OQ_OK; i++) {
        exec_node *en = &e->nodes[i];
        if (!en->skip)
            st = run_node(e, i);
        for (size_t o = 0; e->observe && !en->skip && st == OQ_OK && o < en->n_out; o++)
            if (e->values[en->out[o]].t.dtype != OQ_UNDEFINED)
                e->observe(e->observe_user, e->values[en->out[o]].name, &e->values[en->out[o]].t);
        for (size_t k = 0; k < en->n_release; k++)
            release_value(&e->values[en->release[k]]);
    }
    for (size_t k = 0; k < n_out; k++)
        out[k] = NULL;
    for (size_t k = 0; k < n_out && st == OQ_OK; k++) {
        const oq_tensor *t = &e->values[e->outputs[k]].t;
        if (t->dtype == OQ_UNDEFINED)
            st = oq_error(OQ_E_RUNTIME, "graph output '%s' was not produced", e->values[e->outputs[k]].name);
        else
            st = oq_tensor_clone(t, &out[k]);
    }
    /* Free everything still held (outputs, and all values after a failure). */
    for (size_t v = 0; v < e->n_values; v++)
        release_value(&e->values[v]);
    if (st != OQ_OK) {
        for (size_t k = 0; k < n_out; k++) {
            oq_tensor_destroy(out[k]);
            out[k] = NULL;
        }
        return st;
    }
    if (e->replan || !e->plan_valid)
        make_plan(e);
    return OQ_OK;
}
