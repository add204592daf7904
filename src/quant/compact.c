/* quant/compact: the last step of oq_quantize, so the written file holds the int8
 * weights and little else: one initializer per distinct generated constant (the
 * scale and zero point of every Q/DQ pair with the same parameters are shared), no
 * all-zero int8 weight zero points (DequantizeLinear defaults to 0; QLinearConv takes
 * a scalar), and short names for everything the quantizer made. A name the prepared
 * float model has (tensors, node names) is never touched, so `debug` and `compare`
 * still map the quantized tensors back by name; a generated name keeps the number of
 * the original tensor it came from: X's Q/DQ pair writes q7/dq7 with scale s7, a
 * weight W becomes q12 (int8) with s12 beside the node that reads it. */
#include "passes/pass.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- name sets (keys owned) ---- */

oq_status quant_names_add(quant_names *s, const char *name)
{
    if (!name || !name[0] || oq_strmap_get(&s->map, name, NULL))
        return OQ_OK;
    if (!s->map.cap && oq_strmap_init(&s->map, 256) != OQ_OK)
        return oq_error(OQ_E_NOMEM, "out of memory");
    if (oq_grow((void **)&s->v, &s->cap, s->n + 1, sizeof *s->v) != OQ_OK)
        return oq_error(OQ_E_NOMEM, "out of memory");
    char *c = oq_strdup(name);
    if (!c)
        return oq_error(OQ_E_NOMEM, "out of memory");
    s->v[s->n] = c;
    oq_status st = oq_strmap_put(&s->map, c, s->n);
    if (st != OQ_OK) {
        free(c);
        return st;
    }
    s->n++;
    return OQ_OK;
}

bool quant_names_has(const quant_names *s, const char *name) { return name && oq_strmap_get(&s->map, name, NULL); }

void quant_names_free(quant_names *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    oq_strmap_free(&s->map);
    memset(s, 0, sizeof *s);
}

/* Every name g and its subgraphs use: values, initializers, node names when with_nodes. */
static oq_status graph_names(const oq_graph *g, quant_names *s, bool with_nodes, int depth)
{
    if (depth > 64)
        return oq_error(OQ_E_GRAPH, "subgraphs nested more than 64 deep");
    oq_status st = OQ_OK;
    for (size_t i = 0; st == OQ_OK && i < g->n_inputs; i++)
        st = quant_names_add(s, g->inputs[i].name);
    for (size_t i = 0; st == OQ_OK && i < g->n_outputs; i++)
        st = quant_names_add(s, g->outputs[i].name);
    for (size_t i = 0; st == OQ_OK && i < g->n_value_infos; i++)
        st = quant_names_add(s, g->value_infos[i].name);
    for (size_t i = 0; st == OQ_OK && i < g->n_initializers; i++)
        st = quant_names_add(s, g->initializers[i]->name);
    for (size_t i = 0; st == OQ_OK && i < g->n_nodes; i++) {
        const oq_node *n = &g->nodes[i];
        if (with_nodes)
            st = quant_names_add(s, n->name);
        for (size_t k = 0; st == OQ_OK && k < n->n_inputs; k++)
            st = quant_names_add(s, n->inputs[k]);
        for (size_t k = 0; st == OQ_OK && k < n->n_outputs; k++)
            st = quant_names_add(s, n->outputs[k]);
        for (size_t a = 0; st == OQ_OK && a < n->n_attrs; a++) {
            const oq_attr *at = &n->attrs[a];
            if (at->g)
                st = graph_names(at->g, s, with_nodes, depth + 1);
            for (size_t k = 0; st == OQ_OK && k < at->n_graphs; k++)
                st = graph_names(at->graphs[k], s, with_nodes, depth + 1);
        }
    }
    return st;
}

oq_status quant_names_of_graph(const oq_graph *g, quant_names *s) { return graph_names(g, s, false, 0); }

/* ---- renaming ---- */

typedef struct rename_map {
    quant_names from; /* index i renames to to[i] */
    char **to;
    size_t cap_to;
} rename_map;

static oq_status map_put(rename_map *r, const char *from, const char *to)
{
    if (quant_names_has(&r->from, from))
        return OQ_OK;
    char *t = NULL;
    if (oq_grow((void **)&r->to, &r->cap_to, r->from.n + 1, sizeof *r->to) != OQ_OK || !(t = oq_strdup(to)))
        return oq_error(OQ_E_NOMEM, "out of memory");
    r->to[r->from.n] = t;
    oq_status st = quant_names_add(&r->from, from);
    if (st != OQ_OK)
        free(t);
    return st;
}

static void map_free(rename_map *r)
{
    for (size_t i = 0; i < r->from.n; i++)
        free(r->to[i]);
    free(r->to);
    quant_names_free(&r->from);
}

static oq_status rename_one(const rename_map *r, char **name)
{
    size_t i;
    if (!*name || !oq_strmap_get(&r->from.map, *name, &i))
        return OQ_OK;
    char *s = oq_strdup(r->to[i]);
    if (!s)
        return oq_error(OQ_E_NOMEM, "out of memory");
    free(*name);
    *name = s;
    return OQ_OK;
}

/* Applies r to every value name of g and its subgraphs; the main graph's inputs and
 * outputs (top) are never in r. */
static oq_status apply_renames(oq_graph *g, const rename_map *r, int depth)
{
    if (depth > 64)
        return oq_error(OQ_E_GRAPH, "subgraphs nested more than 64 deep");
    oq_status st = OQ_OK;
    for (size_t i = 0; st == OQ_OK && i < g->n_inputs; i++)
        st = rename_one(r, &g->inputs[i].name);
    for (size_t i = 0; st == OQ_OK && i < g->n_outputs; i++)
        st = rename_one(r, &g->outputs[i].name);
    for (size_t i = 0; st == OQ_OK && i < g->n_value_infos; i++)
        st = rename_one(r, &g->value_infos[i].name);
    for (size_t i = 0; st == OQ_OK && i < g->n_initializers; i++)
        st = rename_one(r, &g->initializers[i]->name);
    for (size_t i = 0; st == OQ_OK && i < g->n_nodes; i++) {
        oq_node *n = &g->nodes[i];
        for (size_t k = 0; st == OQ_OK && k < n->n_inputs; k++)
            st = rename_one(r, &n->inputs[k]);
        for (size_t k = 0; st == OQ_OK && k < n->n_outputs; k++)
            st = rename_one(r, &n->outputs[k]);
        for (size_t a = 0; st == OQ_OK && a < n->n_attrs; a++) {
            oq_attr *at = &n->attrs[a];
            if (at->g)
                st = apply_renames(at->g, r, depth + 1);
            for (size_t k = 0; st == OQ_OK && k < at->n_graphs; k++)
                st = apply_renames(at->graphs[k], r, depth + 1);
        }
    }
    return st;
}

/* ---- per graph: zero points, duplicates ---- */

static bool all_zero(const oq_tensor *t)
{
    const unsigned char *p = t->data;
    for (size_t i = 0; i < t->nbytes; i++)
        if (p[i])
            return false;
    return t->data != NULL;
}

typedef struct scope {
    const oq_graph *g;
    const struct scope *up;
} scope;

static oq_tensor *scope_init(const scope *s, const char *name)
{
    for (; s && name && name[0]; s = s->up) {
        oq_tensor *t = oq_graph_initializer(s->g, name);
        if (t)
            return t;
    }
    return NULL;
}

static bool read_anywhere(const oq_graph *g, const char *name, int depth)
{
    if (depth > 64)
        return true;
    for (size_t i = 0; i < g->n_outputs; i++)
        if (!strcmp(g->outputs[i].name, name))
            return true;
    for (size_t i = 0; i < g->n_nodes; i++) {
        const oq_node *n = &g->nodes[i];
        for (size_t k = 0; k < n->n_inputs; k++)
            if (!strcmp(n->inputs[k], name))
                return true;
        for (size_t a = 0; a < n->n_attrs; a++) {
            const oq_attr *at = &n->attrs[a];
            if (at->g && read_anywhere(at->g, name, depth + 1))
                return true;
            for (size_t k = 0; k < at->n_graphs; k++)
                if (read_anywhere(at->graphs[k], name, depth + 1))
                    return true;
        }
    }
    return false;
}

/* Drops the zero points an all-zero int8 weight does not need. */
static oq_status drop_weight_zero_points(oq_graph *g, const scope *s)
{
    const char *scalar_zero = NULL;
    for (size_t i = 0; i < g->n_nodes; i++) {
        oq_node *n = &g->nodes[i];
        if (!oq_domain_is_default(n->domain))
            continue;
        if (!strcmp(n->op_type, "DequantizeLinear") && n->n_inputs == 3) {
            const oq_tensor *x = scope_init(s, n->inputs[0]), *z = scope_init(s, n->inputs[2]);
            /* an omitted zero point is 0 of x's type: only an int8 constant loses nothing */
            if (x && z && x->dtype == OQ_INT8 && z->dtype == OQ_INT8 && all_zero(z)) {
                free(n->inputs[2]);
                n->inputs[2] = NULL;
                n->n_inputs = 2;
            }
        } else if (!strcmp(n->op_type, "QLinearConv") && n->n_inputs > 5) {
            /* per-channel w_zero_point of zeros: the scalar 0 says the same (onnxruntime asks all equal) */
            const oq_tensor *z = scope_init(s, n->inputs[5]);
            if (!z || z->dtype != OQ_INT8 || oq_tensor_numel(z) <= 1 || !all_zero(z))
                continue;
            if (!scalar_zero) {
                oq_tensor *t = NULL;
                oq_status st = oq_tensor_create(OQ_INT8, 0, NULL, &t);
                if (st != OQ_OK)
                    return st;
                if ((st = qg_add_init(g, t, "w_zero_point", "", &scalar_zero)) != OQ_OK)
                    return st;
            }
            char *c = oq_strdup(scalar_zero);
            if (!c)
                return oq_error(OQ_E_NOMEM, "out of memory");
            free(n->inputs[5]);
            n->inputs[5] = c;
        }
    }
    return OQ_OK;
}

static bool same_tensor(const oq_tensor *a, const oq_tensor *b)
{
    if (a->dtype != b->dtype || a->ndim != b->ndim || a->nbytes != b->nbytes || !a->data || !b->data)
        return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->dims[d] != b->dims[d])
            return false;
    return !memcmp(a->data, b->data, a->nbytes);
}

static uint64_t tensor_hash(const oq_tensor *t)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)t->dtype ^ ((uint64_t)t->nbytes << 8);
    const unsigned char *p = t->data;
    for (size_t i = 0; p && i < t->nbytes; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static int cmp_u64_idx(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : x[1] < y[1] ? -1 : x[1] > y[1];
}

/* One initializer per distinct generated constant of g; readers in g and below follow. */
static oq_status dedupe(oq_graph *g, const quant_names *keep)
{
    size_t n = g->n_initializers;
    uint64_t *h = oq_malloc(2 * sizeof *h * (n + 1));
    rename_map r = {0};
    if (!h)
        return oq_error(OQ_E_NOMEM, "out of memory");
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!quant_names_has(keep, g->initializers[i]->name) && g->initializers[i]->data) {
            h[2 * m] = tensor_hash(g->initializers[i]);
            h[2 * m + 1] = i;
            m++;
        }
    qsort(h, m, 2 * sizeof *h, cmp_u64_idx);
    oq_status st = OQ_OK;
    bool *drop = oq_calloc(n + 1, sizeof *drop);
    if (!drop)
        st = oq_error(OQ_E_NOMEM, "out of memory");
    /* within a run of equal hashes, each keeps the first (lowest index) equal tensor */
    for (size_t a = 0; st == OQ_OK && a < m; a++) {
        size_t i = (size_t)h[2 * a + 1];
        if (drop[i])
            continue;
        for (size_t b = a + 1; st == OQ_OK && b < m && h[2 * b] == h[2 * a]; b++) {
            size_t j = (size_t)h[2 * b + 1];
            if (!drop[j] && same_tensor(g->initializers[i], g->initializers[j])) {
                drop[j] = true;
                st = map_put(&r, g->initializers[j]->name, g->initializers[i]->name);
            }
        }
    }
    free(h);
    if (st == OQ_OK && r.from.n) {
        for (size_t i = n; i-- > 0;)
            if (drop[i])
                oq_graph_remove_initializer(g, i);
        st = apply_renames(g, &r, 0);
    }
    free(drop);
    map_free(&r);
    return st;
}

static oq_status compact_graph(oq_graph *g, const scope *up, const quant_names *keep, int depth)
{
    if (depth > 64)
        return oq_error(OQ_E_GRAPH, "subgraphs nested more than 64 deep");
    scope s = {g, up};
    oq_status st = drop_weight_zero_points(g, &s);
    for (size_t i = 0; st == OQ_OK && i < g->n_nodes; i++)
        for (size_t a = 0; st == OQ_OK && a < g->nodes[i].n_attrs; a++) {
            oq_attr *at = &g->nodes[i].attrs[a];
            if (at->g)
                st = compact_graph(at->g, &s, keep, depth + 1);
            for (size_t k = 0; st == OQ_OK && k < at->n_graphs; k++)
                st = compact_graph(at->graphs[k], &s, keep, depth + 1);
        }
    if (st == OQ_OK)
        st = dedupe(g, keep);
    /* the zero points nobody reads now */
    for (size_t i = g->n_initializers; st == OQ_OK && i-- > 0;) {
        const char *nm = g->initializers[i]->name;
        if (nm && !quant_names_has(keep, nm) && !read_anywhere(g, nm, 0))
            oq_graph_remove_initializer(g, i);
    }
    return st;
}

/* ---- short names ---- */

static bool is_kind_char(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* "X_dq_2" with X kept: base X, kind "dq". The longest kept prefix ending before a '_'. */
static void split_name(const char *name, const quant_names *keep, size_t *base_len, char kind[8])
{
    size_t len = strlen(name);
    *base_len = 0;
    char tmp[4096];
    if (len < sizeof tmp) {
        memcpy(tmp, name, len + 1);
        for (size_t i = len; i-- > 0;)
            if (name[i] == '_') {
                tmp[i] = 0;
                bool hit = quant_names_has(keep, tmp);
                tmp[i] = '_';
                if (hit) {
                    *base_len = i;
                    break;
                }
            }
    }
    size_t k = 0;
    for (const char *p = name + *base_len; *p && k < 3; p++)
        if (is_kind_char(*p))
            kind[k++] = *p;
    if (!*base_len || !k)
        k = 0, kind[k++] = 't';
    kind[k] = 0;
}

typedef struct namer {
    const quant_names *keep;
    quant_names used;  /* every name in the model, and every new one */
    quant_names bases; /* kept names that have a number; index = number */
    rename_map r;
    size_t fresh;      /* numbers for names with no kept base, after the bases' */
} namer;

static oq_status name_one(namer *nm, const char *name)
{
    if (!name || !name[0] || quant_names_has(nm->keep, name) || quant_names_has(&nm->r.from, name))
        return OQ_OK;
    size_t base_len;
    char kind[8], buf[64];
    split_name(name, nm->keep, &base_len, kind);
    size_t id;
    oq_status st = OQ_OK;
    if (base_len) {
        char *base = oq_strndup(name, base_len);
        if (!base)
            return oq_error(OQ_E_NOMEM, "out of memory");
        if (!oq_strmap_get(&nm->bases.map, base, &id)) {
            id = nm->bases.n;
            st = quant_names_add(&nm->bases, base);
        }
        free(base);
    } else {
        id = 1000000 + nm->fresh++;
    }
    if (st != OQ_OK)
        return st;
    if (id >= 1000000)
        snprintf(buf, sizeof buf, "%s_%zu", kind, id - 1000000);
    else
        snprintf(buf, sizeof buf, "%s%zu", kind, id);
    size_t stem = strlen(buf);
    for (unsigned k = 1; quant_names_has(&nm->used, buf); k++)
        snprintf(buf + stem, sizeof buf - stem, ".%u", k);
    if ((st = quant_names_add(&nm->used, buf)) == OQ_OK)
        st = map_put(&nm->r, name, buf);
    return st;
}

static oq_status name_graph(namer *nm, const oq_graph *g, int depth)
{
    if (depth > 64)
        return oq_error(OQ_E_GRAPH, "subgraphs nested more than 64 deep");
    oq_status st = OQ_OK;
    for (size_t i = 0; st == OQ_OK && i < g->n_initializers; i++)
        st = name_one(nm, g->initializers[i]->name);
    for (size_t i = 0; st == OQ_OK && i < g->n_nodes; i++) {
        const oq_node *n = &g->nodes[i];
        for (size_t k = 0; st == OQ_OK && k < n->n_outputs; k++)
            st = name_one(nm, n->outputs[k]);
        for (size_t a = 0; st == OQ_OK && a < n->n_attrs; a++) {
            const oq_attr *at = &n->attrs[a];
            if (at->g)
                st = name_graph(nm, at->g, depth + 1);
            for (size_t k = 0; st == OQ_OK && k < at->n_graphs; k++)
                st = name_graph(nm, at->graphs[k], depth + 1);
        }
    }
    /* a subgraph's own inputs (Loop/Scan state) the quantizer may have added */
    for (size_t i = 0; st == OQ_OK && depth && i < g->n_inputs; i++)
        st = name_one(nm, g->inputs[i].name);
    return st;
}

static const char *renamed(void *user, const char *name)
{
    const rename_map *r = user;
    size_t i;
    return oq_strmap_get(&r->from.map, name, &i) ? r->to[i] : NULL;
}

oq_status quant_compact(oq_model *m, const quant_names *keep)
{
    oq_status st = compact_graph(m->graph, NULL, keep, 0);
    namer nm = {.keep = keep};
    if (st == OQ_OK)
        st = graph_names(m->graph, &nm.used, false, 0);
    /* the main graph's own inputs and outputs keep their names whatever they are */
    quant_names top = {0};
    for (size_t i = 0; st == OQ_OK && i < m->graph->n_inputs; i++)
        st = quant_names_add(&top, m->graph->inputs[i].name);
    for (size_t i = 0; st == OQ_OK && i < m->graph->n_outputs; i++)
        st = quant_names_add(&top, m->graph->outputs[i].name);
    for (size_t i = 0; st == OQ_OK && i < top.n; i++)
        st = map_put(&nm.r, top.v[i], top.v[i]);
    if (st == OQ_OK)
        st = name_graph(&nm, m->graph, 0);
    if (st == OQ_OK)
        st = apply_renames(m->graph, &nm.r, 0);
    if (st == OQ_OK) /* the record of the rescaled values names them too */
        st = quant_rescaled_rename(m, renamed, &nm.r);
    quant_names_free(&top);
    quant_names_free(&nm.used);
    quant_names_free(&nm.bases);
    map_free(&nm.r);
    return st;
}
