/* passes/upgrade_opset: raises the default-domain opset (QuantizeLinear needs
 * 10, per-axis quantization 13). Most version changes between 7 and 17 only add
 * types or optional attributes whose defaults keep the old behaviour; the ones
 * that moved attributes to inputs or changed meaning are rewritten here, and the
 * rest (Resize-10, Scan-8, opsets below 7) are refused with the reason. */
#include "ops/op.h"
#include "passes/pass.h"

#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UPGRADE_MAX_OPSET 17 /* Reduce*, Pad, Split and Resize change again at 18 */

typedef struct upgrade {
    int64_t from, to;
    size_t counts[16];
    const char *names[16];
    size_t n_kinds;
} upgrade;

static void count(upgrade *u, const char *what)
{
    for (size_t i = 0; i < u->n_kinds; i++)
        if (!strcmp(u->names[i], what)) {
            u->counts[i]++;
            return;
        }
    if (u->n_kinds < 16) {
        u->names[u->n_kinds] = what;
        u->counts[u->n_kinds++] = 1;
    }
}

static bool crosses(const upgrade *u, int64_t v) { return u->from < v && u->to >= v; }

static oq_status nomem(void) { return oq_error(OQ_E_NOMEM, "out of memory"); }

static oq_status remove_attr(oq_node *n, const char *name)
{
    for (size_t a = 0; a < n->n_attrs; a++)
        if (!strcmp(n->attrs[a].name, name)) {
            oq_attr_clear(&n->attrs[a]);
            memmove(&n->attrs[a], &n->attrs[a + 1], (n->n_attrs - a - 1) * sizeof *n->attrs);
            n->n_attrs--;
            return OQ_OK;
        }
    return OQ_OK;
}

/* Sets input i of n (growing the list with "" as needed); name NULL means "". */
static oq_status set_input(oq_node *n, size_t i, const char *name)
{
    if (i >= n->n_inputs) {
        char **in = realloc(n->inputs, (i + 1) * sizeof *in);
        if (!in)
            return nomem();
        n->inputs = in;
        for (size_t k = n->n_inputs; k <= i; k++)
            in[k] = NULL;
        for (size_t k = n->n_inputs; k <= i; k++)
            if (!(in[k] = oq_strdup("")))
                return nomem();
        n->n_inputs = i + 1;
    }
    char *s = oq_strdup(name ? name : "");
    if (!s)
        return nomem();
    free(n->inputs[i]);
    n->inputs[i] = s;
    return OQ_OK;
}

/* New initializer from values, named after the node; becomes input i of n. */
static oq_status add_const_input(oq_graph *g, oq_node *n, size_t i, const char *suffix, oq_dtype dtype, int ndim,
                                 int64_t len, const void *values)
{
    oq_tensor *t = NULL;
    int64_t dims[1] = {len};
    oq_status st = oq_tensor_create(dtype, ndim, dims, &t);
    if (st != OQ_OK)
        return st;
    if (len)
        memcpy(t->data, values, (size_t)len * oq_dtype_size(dtype));
    t->name = oq_graph_unique_name(g, n->name && n->name[0] ? n->name : n->outputs[0], suffix);
    if (!t->name) {
        oq_tensor_destroy(t);
        return nomem();
    }
    if ((st = oq_graph_add_initializer(g, t)) != OQ_OK) {
        oq_tensor_destroy(t);
        return st;
    }
    return set_input(n, i, t->name);
}

/* Attribute `attr` (ints) becomes int64 input i; absent attribute: input left out. */
static oq_status ints_to_input(oq_graph *g, oq_node *n, const char *attr, size_t i)
{
    const int64_t *v = NULL;
    size_t c = oq_node_attr_ints(n, attr, &v);
    if (!oq_node_attr(n, attr))
        return OQ_OK;
    char suffix[64];
    snprintf(suffix, sizeof suffix, "_%s", attr);
    oq_status st = add_const_input(g, n, i, suffix, OQ_INT64, 1, (int64_t)c, v);
    return st == OQ_OK ? remove_attr(n, attr) : st;
}

static oq_status set_string_attr(oq_node *n, const char *name, const char *value)
{
    remove_attr(n, name);
    return oq_node_add_attr_string(n, name, value);
}

static oq_status rename_op(oq_node *n, const char *op)
{
    char *s = oq_strdup(op);
    if (!s)
        return nomem();
    free(n->op_type);
    n->op_type = s;
    return OQ_OK;
}

static int declared_rank(const oq_graph *g, const char *name)
{
    for (size_t i = 0; i < g->n_inputs; i++)
        if (!strcmp(g->inputs[i].name, name))
            return g->inputs[i].ndim;
    for (size_t i = 0; i < g->n_value_infos; i++)
        if (!strcmp(g->value_infos[i].name, name))
            return g->value_infos[i].ndim;
    return -1;
}

/* Adds a node (op, one output) before position pos. */
static oq_status insert_node(oq_graph *g, size_t pos, const char *op, const char *const *inputs, size_t n_in,
                             const char *output)
{
    oq_status st = oq_grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes);
    if (st != OQ_OK)
        return st;
    memmove(&g->nodes[pos + 1], &g->nodes[pos], (g->n_nodes - pos) * sizeof *g->nodes);
    g->n_nodes++;
    oq_node *n = &g->nodes[pos];
    memset(n, 0, sizeof *n);
    n->op_type = oq_strdup(op);
    n->domain = oq_strdup("");
    n->name = oq_strdup(output);
    n->inputs = oq_calloc(n_in, sizeof *n->inputs);
    n->outputs = oq_calloc(1, sizeof *n->outputs);
    if (!n->op_type || !n->domain || !n->name || !n->inputs || !n->outputs)
        return nomem();
    for (size_t i = 0; i < n_in; i++) {
        if (!(n->inputs[i] = oq_strdup(inputs[i])))
            return nomem();
        n->n_inputs++;
    }
    if (!(n->outputs[0] = oq_strdup(output)))
        return nomem();
    n->n_outputs = 1;
    return OQ_OK;
}

static oq_status add_int_attr(oq_node *n, const char *name, int64_t v)
{
    oq_attr *a = realloc(n->attrs, (n->n_attrs + 1) * sizeof *a);
    if (!a)
        return nomem();
    n->attrs = a;
    a = &a[n->n_attrs];
    memset(a, 0, sizeof *a);
    if (!(a->name = oq_strdup(name)))
        return nomem();
    a->type = OQ_ATTR_INT;
    a->i = v;
    n->n_attrs++;
    return OQ_OK;
}

/* Softmax-like ops before 13 flatten the input to 2-D at `axis`; from 13 they
 * work along one axis. Same result when the axis is the last one; otherwise
 * Flatten(axis) -> op(axis -1) -> Reshape(Shape(x)) keeps the old meaning. */
static oq_status upgrade_softmax(oq_graph *g, size_t *pi, upgrade *u)
{
    oq_node *n = &g->nodes[*pi];
    int64_t axis = oq_node_attr_int(n, "axis", 1);
    int rank = declared_rank(g, n->inputs[0]);
    if (axis == -1 || (rank > 0 && (axis == rank - 1 || axis == -1)))
        return OQ_OK;
    char *shape = oq_graph_unique_name(g, n->outputs[0], "_shape"), *flat = oq_graph_unique_name(g, n->outputs[0], "_2d");
    char *y2 = oq_graph_unique_name(g, n->outputs[0], "_2d_out"), *x = oq_strdup(n->inputs[0]);
    oq_status st = shape && flat && y2 && x ? OQ_OK : nomem();
    size_t i = *pi;
    if (st == OQ_OK)
        st = insert_node(g, i, "Shape", (const char *const *)&x, 1, shape);
    if (st == OQ_OK)
        st = insert_node(g, i + 1, "Flatten", (const char *const *)&x, 1, flat);
    if (st == OQ_OK)
        st = add_int_attr(&g->nodes[i + 1], "axis", axis);
    /* the op itself is now at i + 2 */
    if (st == OQ_OK) {
        n = &g->nodes[i + 2];
        st = set_input(n, 0, flat);
    }
    if (st == OQ_OK) {
        remove_attr(n, "axis");
        st = add_int_attr(n, "axis", -1);
    }
    if (st == OQ_OK) {
        char *y = n->outputs[0];
        n->outputs[0] = y2;
        y2 = NULL;
        const char *rin[2] = {n->outputs[0], shape};
        st = insert_node(g, i + 3, "Reshape", rin, 2, y);
        free(y);
    }
    free(shape);
    free(flat);
    free(y2);
    free(x);
    if (st == OQ_OK) {
        count(u, "Softmax-family axis rewritten");
        *pi = i + 3;
    }
    return st;
}

static oq_status upgrade_node(const oq_model *m, oq_graph *g, size_t *pi, upgrade *u);

static oq_status upgrade_graph(const oq_model *m, oq_graph *g, upgrade *u)
{
    oq_status st = OQ_OK;
    for (size_t i = 0; i < g->n_nodes && st == OQ_OK; i++) {
        for (size_t a = 0; a < g->nodes[i].n_attrs && st == OQ_OK; a++) {
            if (g->nodes[i].attrs[a].g)
                st = upgrade_graph(m, g->nodes[i].attrs[a].g, u);
            for (size_t k = 0; k < g->nodes[i].attrs[a].n_graphs && st == OQ_OK; k++)
                st = upgrade_graph(m, g->nodes[i].attrs[a].graphs[k], u);
        }
        if (st == OQ_OK && oq_domain_is_default(g->nodes[i].domain))
            st = upgrade_node(m, g, &i, u);
    }
    return st;
}

static oq_status refuse(const upgrade *u, const oq_node *n, const char *why)
{
    char lb[256];
    return oq_error(OQ_E_UNSUPPORTED, "cannot upgrade opset %lld to %lld: node '%s' (%s): %s", (long long)u->from,
                    (long long)u->to, oq_node_label(n, lb, sizeof lb), n->op_type, why);
}

static oq_status upgrade_node(const oq_model *m, oq_graph *g, size_t *pi, upgrade *u)
{
    (void)m;
    oq_node *n = &g->nodes[*pi];
    const char *op = n->op_type;
    oq_status st = OQ_OK;
    if (!strcmp(op, "Clip") && crosses(u, 11)) {
        float lo = oq_node_attr_float(n, "min", -FLT_MAX), hi = oq_node_attr_float(n, "max", FLT_MAX);
        bool has_lo = oq_node_attr(n, "min") != NULL, has_hi = oq_node_attr(n, "max") != NULL;
        if (has_lo)
            st = add_const_input(g, n, 1, "_min", OQ_FLOAT, 0, 1, &lo);
        if (st == OQ_OK && has_hi)
            st = add_const_input(g, n, 2, "_max", OQ_FLOAT, 0, 1, &hi);
        if (st == OQ_OK)
            st = remove_attr(n, "min");
        if (st == OQ_OK)
            st = remove_attr(n, "max");
        count(u, "Clip min/max to inputs");
    } else if (!strcmp(op, "Pad") && crosses(u, 11)) {
        float value = oq_node_attr_float(n, "value", 0.0f);
        if (!oq_node_attr(n, "pads"))
            return refuse(u, n, "Pad without pads");
        st = ints_to_input(g, n, "pads", 1);
        if (st == OQ_OK && value != 0.0f) /* Pad-2 is float-only in practice; 0 needs no input */
            st = add_const_input(g, n, 2, "_value", OQ_FLOAT, 0, 1, &value);
        if (st == OQ_OK)
            st = remove_attr(n, "value");
        count(u, "Pad pads/value to inputs");
    } else if (!strcmp(op, "Slice") && crosses(u, 10)) {
        st = ints_to_input(g, n, "starts", 1);
        if (st == OQ_OK)
            st = ints_to_input(g, n, "ends", 2);
        if (st == OQ_OK)
            st = ints_to_input(g, n, "axes", 3);
        count(u, "Slice starts/ends/axes to inputs");
    } else if ((!strcmp(op, "Squeeze") || !strcmp(op, "Unsqueeze") || !strcmp(op, "ReduceSum")) &&
               crosses(u, 13)) {
        st = ints_to_input(g, n, "axes", 1);
        count(u, !strcmp(op, "ReduceSum") ? "ReduceSum axes to input" : "Squeeze/Unsqueeze axes to input");
    } else if (!strcmp(op, "Split") && crosses(u, 13)) {
        st = ints_to_input(g, n, "split", 1);
        count(u, "Split split to input");
    } else if (!strcmp(op, "TopK") && crosses(u, 10)) {
        int64_t k = oq_node_attr_int(n, "k", -1);
        if (k < 0)
            return refuse(u, n, "TopK without k");
        st = add_const_input(g, n, 1, "_k", OQ_INT64, 1, 1, &k);
        if (st == OQ_OK)
            st = remove_attr(n, "k");
        count(u, "TopK k to input");
    } else if (!strcmp(op, "Upsample") && u->to >= 10) {
        const char *mode = oq_node_attr_string(n, "mode", "nearest");
        if (strcmp(mode, "nearest") && strcmp(mode, "linear") && strcmp(mode, "bilinear"))
            return refuse(u, n, "unknown Upsample mode");
        if (u->from < 9) {
            const float *s = NULL;
            size_t c = oq_node_attr_floats(n, "scales", &s);
            if (!c)
                return refuse(u, n, "Upsample without scales");
            st = add_const_input(g, n, 1, "_scales", OQ_FLOAT, 1, (int64_t)c, s);
            if (st == OQ_OK)
                st = remove_attr(n, "scales");
        }
        char *scales = st == OQ_OK ? oq_strdup(n->inputs[1]) : NULL;
        if (st == OQ_OK && !scales)
            st = nomem();
        if (st == OQ_OK)
            st = rename_op(n, "Resize");
        if (st == OQ_OK && u->to >= 11) {
            /* Upsample's rule is Resize's asymmetric transform, nearest rounding down. */
            if (u->to >= 13)
                st = set_input(n, 1, "");
            else
                st = add_const_input(g, n, 1, "_roi", OQ_FLOAT, 1, 0, NULL);
            if (st == OQ_OK)
                st = set_input(n, 2, scales);
            if (st == OQ_OK)
                st = set_string_attr(n, "coordinate_transformation_mode", "asymmetric");
            if (st == OQ_OK)
                st = set_string_attr(n, "mode", strcmp(mode, "nearest") ? "linear" : "nearest");
            if (st == OQ_OK && !strcmp(mode, "nearest"))
                st = set_string_attr(n, "nearest_mode", "floor");
        }
        free(scales);
        count(u, "Upsample to Resize");
    } else if (!strcmp(op, "Resize") && crosses(u, 11)) {
        return refuse(u, n, "Resize-10's coordinate rule has no exact Resize-11 equivalent here; re-export at opset 11+");
    } else if (!strcmp(op, "Scan") && crosses(u, 9)) {
        return refuse(u, n, "Scan-8 (batched) differs from Scan-9");
    } else if ((!strcmp(op, "Softmax") || !strcmp(op, "LogSoftmax") || !strcmp(op, "Hardmax")) && crosses(u, 13)) {
        st = upgrade_softmax(g, pi, u);
    } else if (!strcmp(op, "Dropout") && crosses(u, 12)) {
        st = remove_attr(n, "ratio"); /* an input from 12; inference ignores it */
    } else if (!strcmp(op, "BatchNormalization") && crosses(u, 9)) {
        if (oq_node_attr_int(n, "spatial", 1) != 1)
            return refuse(u, n, "spatial=0 has no equivalent from opset 9");
        st = remove_attr(n, "spatial");
    } else if (!strcmp(op, "Scatter") && crosses(u, 11)) {
        st = rename_op(n, "ScatterElements");
        count(u, "Scatter to ScatterElements");
    } else if (!strcmp(op, "RoiAlign") && crosses(u, 16)) {
        if (!oq_node_attr(n, "coordinate_transformation_mode"))
            st = oq_node_add_attr_string(n, "coordinate_transformation_mode", "output_half_pixel");
        count(u, "RoiAlign coordinate mode kept");
    }
    if (st != OQ_OK)
        return st;
    n = &g->nodes[*pi];
    if (!oq_op_find_any(n->domain, n->op_type) || oq_op_find(n->domain, n->op_type, u->to))
        return OQ_OK;
    return refuse(u, n, "onnxq has no implementation at the new opset");
}

oq_status pass_upgrade_opset(oq_model *m, oq_graph *g, oq_pass_ctx *ctx)
{
    (void)g;
    int64_t target = ctx->target_opset ? ctx->target_opset : 13, from = oq_model_opset(m, "");
    if (from >= target)
        return OQ_OK;
    if (target > UPGRADE_MAX_OPSET)
        return oq_error(OQ_E_UNSUPPORTED, "opset upgrade goes up to %d, not %lld", UPGRADE_MAX_OPSET,
                        (long long)target);
    if (from < 7)
        return oq_error(OQ_E_UNSUPPORTED,
                        "cannot upgrade opset %lld: below 7 operators used legacy broadcasting; re-export the model",
                        (long long)from);
    /* Work on a copy so a refusal leaves the model as it was. */
    oq_model *c = NULL;
    oq_status st = oq_model_clone(m, &c);
    upgrade u = {0};
    u.from = from;
    u.to = target;
    if (st == OQ_OK)
        st = upgrade_graph(c, c->graph, &u);
    if (st == OQ_OK) {
        oq_graph *tmp = m->graph;
        m->graph = c->graph;
        c->graph = tmp;
        bool found = false;
        for (size_t i = 0; i < m->n_opsets; i++)
            if (oq_domain_is_default(m->opsets[i].domain)) {
                m->opsets[i].version = target;
                found = true;
            }
        if (!found)
            st = oq_error(OQ_E_GRAPH, "model imports no default-domain opset");
    }
    oq_model_destroy(c);
    if (st != OQ_OK)
        return st;
    ctx->changed++;
    oq_pass_note(ctx, "upgrade_opset", "opset %lld -> %lld", (long long)from, (long long)target);
    for (size_t i = 0; i < u.n_kinds; i++)
        oq_pass_note(ctx, "upgrade_opset", "%zu %s", u.counts[i], u.names[i]);
    return OQ_OK;
}
