/* ir/topo: topological order, implicit (outer-scope) inputs of control-flow
 * nodes, and structural verification with errors naming node and value. */
#include "ir/graph.h"

#include <stdlib.h>
#include <string.h>

typedef struct name_list {
    const char **v;
    size_t n, cap;
} name_list;

static oq_status list_add_unique(name_list *l, oq_strmap *seen, const char *s)
{
    if (oq_strmap_get(seen, s, NULL))
        return OQ_OK;
    oq_status st = oq_grow((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v);
    if (st == OQ_OK)
        st = oq_strmap_put(seen, s, l->n);
    if (st == OQ_OK)
        l->v[l->n++] = s;
    return st;
}

static oq_status collect_free_names(const oq_graph *g, name_list *out, oq_strmap *seen);

static oq_status node_subgraph_free_names(const oq_node *n, name_list *out, oq_strmap *seen)
{
    oq_status st = OQ_OK;
    for (size_t a = 0; a < n->n_attrs && st == OQ_OK; a++) {
        const oq_attr *at = &n->attrs[a];
        if (at->g)
            st = collect_free_names(at->g, out, seen);
        for (size_t k = 0; k < at->n_graphs && st == OQ_OK; k++)
            st = collect_free_names(at->graphs[k], out, seen);
    }
    return st;
}

/* Names read inside g (recursively) that g does not define. */
static oq_status collect_free_names(const oq_graph *g, name_list *out, oq_strmap *seen)
{
    oq_strmap defined;
    oq_status st = oq_strmap_init(&defined, g->n_nodes * 2 + g->n_inputs + g->n_initializers);
    if (st != OQ_OK)
        return st;
    for (size_t i = 0; i < g->n_inputs && st == OQ_OK; i++)
        st = oq_strmap_put(&defined, g->inputs[i].name, 0);
    for (size_t i = 0; i < g->n_initializers && st == OQ_OK; i++)
        st = oq_strmap_put(&defined, g->initializers[i]->name, 0);
    for (size_t i = 0; i < g->n_nodes && st == OQ_OK; i++)
        for (size_t o = 0; o < g->nodes[i].n_outputs && st == OQ_OK; o++)
            if (g->nodes[i].outputs[o][0])
                st = oq_strmap_put(&defined, g->nodes[i].outputs[o], 0);
    name_list inner = {0};
    oq_strmap inner_seen = {0};
    if (st == OQ_OK)
        st = oq_strmap_init(&inner_seen, 16);
    for (size_t i = 0; i < g->n_nodes && st == OQ_OK; i++) {
        const oq_node *n = &g->nodes[i];
        for (size_t k = 0; k < n->n_inputs && st == OQ_OK; k++)
            if (n->inputs[k][0])
                st = list_add_unique(&inner, &inner_seen, n->inputs[k]);
        if (st == OQ_OK)
            st = node_subgraph_free_names(n, &inner, &inner_seen);
    }
    for (size_t i = 0; i < g->n_outputs && st == OQ_OK; i++)
        st = list_add_unique(&inner, &inner_seen, g->outputs[i].name);
    for (size_t i = 0; i < inner.n && st == OQ_OK; i++)
        if (!oq_strmap_get(&defined, inner.v[i], NULL))
            st = list_add_unique(out, seen, inner.v[i]);
    free(inner.v);
    oq_strmap_free(&inner_seen);
    oq_strmap_free(&defined);
    return st;
}

oq_status oq_node_implicit_inputs(const oq_node *n, const char ***names, size_t *count)
{
    name_list l = {0};
    oq_strmap seen;
    oq_status st = oq_strmap_init(&seen, 16);
    if (st == OQ_OK)
        st = node_subgraph_free_names(n, &l, &seen);
    oq_strmap_free(&seen);
    if (st != OQ_OK) {
        free(l.v);
        return st;
    }
    *names = l.v;
    *count = l.n;
    return OQ_OK;
}

/* Min-heap of node indices keeps the order stable: ready nodes run in file order. */
typedef struct heap {
    size_t *v, n;
} heap;

static void heap_push(heap *h, size_t x)
{
    size_t i = h->n++;
    h->v[i] = x;
    while (i && h->v[(i - 1) / 2] > h->v[i]) {
        size_t p = (i - 1) / 2, t = h->v[p];
        h->v[p] = h->v[i];
        h->v[i] = t;
        i = p;
    }
}

static size_t heap_pop(heap *h)
{
    size_t top = h->v[0], i = 0;
    h->v[0] = h->v[--h->n];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && h->v[l] < h->v[m])
            m = l;
        if (r < h->n && h->v[r] < h->v[m])
            m = r;
        if (m == i)
            break;
        size_t t = h->v[m];
        h->v[m] = h->v[i];
        h->v[i] = t;
        i = m;
    }
    return top;
}

oq_status oq_graph_toposort(oq_graph *g, const char *const *outer, size_t n_outer)
{
    size_t nn = g->n_nodes;
    oq_status st;
    oq_strmap producer, available;
    size_t *indeg = NULL, *order = NULL, *edge_start = NULL, *edges = NULL, n_edges = 0, cap_edges = 0;
    size_t *edge_from = NULL;
    heap h = {0};
    char lb[256];
    st = oq_strmap_init(&producer, nn * 2);
    if (st != OQ_OK)
        return st;
    st = oq_strmap_init(&available, g->n_inputs + g->n_initializers + n_outer);
    if (st != OQ_OK) {
        oq_strmap_free(&producer);
        return st;
    }
    for (size_t i = 0; i < g->n_inputs && st == OQ_OK; i++)
        st = oq_strmap_put(&available, g->inputs[i].name, 0);
    for (size_t i = 0; i < g->n_initializers && st == OQ_OK; i++)
        st = oq_strmap_put(&available, g->initializers[i]->name, 0);
    for (size_t i = 0; i < n_outer && st == OQ_OK; i++)
        st = oq_strmap_put(&available, outer[i], 0);
    for (size_t i = 0; i < nn && st == OQ_OK; i++) {
        const oq_node *n = &g->nodes[i];
        for (size_t o = 0; o < n->n_outputs && st == OQ_OK; o++) {
            const char *name = n->outputs[o];
            size_t prev;
            if (!name[0])
                continue;
            if (oq_strmap_get(&producer, name, &prev)) {
                char lb2[256];
                st = oq_error(OQ_E_GRAPH, "value '%s' is produced by two nodes: '%s' and '%s'", name,
                              oq_node_label(&g->nodes[prev], lb2, sizeof lb2), oq_node_label(n, lb, sizeof lb));
            } else {
                st = oq_strmap_put(&producer, name, i);
            }
        }
    }
    indeg = calloc(nn + 1, sizeof *indeg);
    edge_from = NULL;
    if (st == OQ_OK && !indeg)
        st = oq_error(OQ_E_NOMEM, "out of memory sorting the graph");
    /* edges[k]: consumer; edge_from[k]: producer. Built per consumer node. */
    for (size_t i = 0; i < nn && st == OQ_OK; i++) {
        const oq_node *n = &g->nodes[i];
        const char **imp = NULL;
        size_t n_imp = 0;
        st = oq_node_implicit_inputs(n, &imp, &n_imp);
        for (size_t k = 0; k < n->n_inputs + n_imp && st == OQ_OK; k++) {
            const char *name = k < n->n_inputs ? n->inputs[k] : imp[k - n->n_inputs];
            size_t p;
            if (!name[0])
                continue;
            if (oq_strmap_get(&producer, name, &p)) {
                if (p == i) {
                    st = oq_error(OQ_E_GRAPH, "node '%s' reads its own output '%s' (cycle)",
                                  oq_node_label(n, lb, sizeof lb), name);
                    break;
                }
                size_t cap_from = cap_edges;
                st = oq_grow((void **)&edges, &cap_edges, n_edges + 1, sizeof *edges);
                if (st == OQ_OK)
                    st = oq_grow((void **)&edge_from, &cap_from, n_edges + 1, sizeof *edge_from);
                if (st != OQ_OK)
                    break;
                edges[n_edges] = i;
                edge_from[n_edges] = p;
                n_edges++;
                indeg[i]++;
            } else if (!oq_strmap_get(&available, name, NULL)) {
                st = oq_error(OQ_E_GRAPH,
                              "node '%s' (%s) reads '%s', which is not a graph input, an initializer or the output "
                              "of any node",
                              oq_node_label(n, lb, sizeof lb), n->op_type, name);
            }
        }
        free(imp);
    }
    /* adjacency by producer (counting sort) */
    if (st == OQ_OK) {
        edge_start = calloc(nn + 1, sizeof *edge_start);
        size_t *adj = calloc(n_edges + 1, sizeof *adj), *fill = calloc(nn + 1, sizeof *fill);
        order = calloc(nn + 1, sizeof *order);
        h.v = calloc(nn + 1, sizeof *h.v);
        if (!edge_start || !adj || !fill || !order || !h.v) {
            st = oq_error(OQ_E_NOMEM, "out of memory sorting the graph");
        } else {
            for (size_t k = 0; k < n_edges; k++)
                edge_start[edge_from[k] + 1]++;
            for (size_t i = 0; i < nn; i++)
                edge_start[i + 1] += edge_start[i];
            for (size_t k = 0; k < n_edges; k++)
                adj[edge_start[edge_from[k]] + fill[edge_from[k]]++] = edges[k];
            for (size_t i = 0; i < nn; i++)
                if (!indeg[i])
                    heap_push(&h, i);
            size_t done = 0;
            while (h.n) {
                size_t i = heap_pop(&h);
                order[done++] = i;
                for (size_t k = edge_start[i]; k < edge_start[i + 1]; k++)
                    if (--indeg[adj[k]] == 0)
                        heap_push(&h, adj[k]);
            }
            if (done < nn) {
                size_t bad = 0;
                while (bad < nn && !indeg[bad])
                    bad++;
                st = oq_error(OQ_E_GRAPH, "the graph has a cycle through node '%s' (%s)",
                              oq_node_label(&g->nodes[bad], lb, sizeof lb), g->nodes[bad].op_type);
            } else {
                oq_node *sorted = malloc((nn ? nn : 1) * sizeof *sorted);
                if (!sorted) {
                    st = oq_error(OQ_E_NOMEM, "out of memory sorting the graph");
                } else {
                    for (size_t i = 0; i < nn; i++)
                        sorted[i] = g->nodes[order[i]];
                    memcpy(g->nodes, sorted, nn * sizeof *sorted);
                    free(sorted);
                }
            }
        }
        free(adj);
        free(fill);
    }
    free(h.v);
    free(order);
    free(edge_start);
    free(edges);
    free(edge_from);
    free(indeg);
    oq_strmap_free(&producer);
    oq_strmap_free(&available);
    return st;
}

oq_status oq_graph_verify(const oq_graph *g, const char *const *outer, size_t n_outer)
{
    (void)outer;
    (void)n_outer;
    char lb[256];
    oq_strmap names;
    oq_status st = oq_strmap_init(&names, g->n_inputs + g->n_initializers + g->n_nodes);
    if (st != OQ_OK)
        return st;
    for (size_t i = 0; i < g->n_inputs && st == OQ_OK; i++) {
        if (!g->inputs[i].name || !g->inputs[i].name[0])
            st = oq_error(OQ_E_GRAPH, "graph input %zu has no name", i);
        else if (oq_strmap_get(&names, g->inputs[i].name, NULL))
            st = oq_error(OQ_E_GRAPH, "graph input '%s' is declared twice", g->inputs[i].name);
        else
            st = oq_strmap_put(&names, g->inputs[i].name, 0);
    }
    oq_strmap inits;
    if (st == OQ_OK)
        st = oq_strmap_init(&inits, g->n_initializers);
    else
        memset(&inits, 0, sizeof inits);
    for (size_t i = 0; i < g->n_initializers && st == OQ_OK; i++) {
        const char *nm = g->initializers[i]->name;
        if (!nm || !nm[0])
            st = oq_error(OQ_E_GRAPH, "initializer %zu has no name", i);
        else if (oq_strmap_get(&inits, nm, NULL))
            st = oq_error(OQ_E_GRAPH, "initializer '%s' is defined twice", nm);
        else
            st = oq_strmap_put(&inits, nm, 0);
    }
    for (size_t i = 0; i < g->n_nodes && st == OQ_OK; i++) {
        const oq_node *n = &g->nodes[i];
        if (!n->op_type || !n->op_type[0])
            st = oq_error(OQ_E_GRAPH, "node %zu has no op_type", i);
        for (size_t o = 0; o < n->n_outputs && st == OQ_OK; o++) {
            const char *nm = n->outputs[o];
            if (!nm[0])
                continue;
            if (oq_strmap_get(&names, nm, NULL) || oq_strmap_get(&inits, nm, NULL))
                st = oq_error(OQ_E_GRAPH, "node '%s' (%s) writes '%s', which is already a graph input or initializer",
                              oq_node_label(n, lb, sizeof lb), n->op_type, nm);
        }
    }
    oq_strmap_free(&inits);
    oq_strmap_free(&names);
    return st;
}
