/* quant/uint8_input: the model takes the image as it is — uint8 pixels — and the
 * normalization moves into the graph. The float input X becomes a uint8 input X
 * (in the spec's layout) followed by Cast -> [Transpose] -> Mul -> Add, which
 * compute ((u / scale) - mean) / std per channel as u * a + b; every node that
 * read X reads the result, inside If/Loop bodies too. Run before quantization: the quantizer then places
 * its first QuantizeLinear right after this arithmetic. */
#include "core/core.h"
#include "data/image.h"
#include "passes/pass.h"
#include "quant/quant.h"

#include <stdlib.h>
#include <string.h>

static oq_status const_tensor(int64_t c, bool nchw, const float *v, oq_tensor **out)
{
    int64_t dims[4] = {1, nchw ? c : 1, 1, nchw ? 1 : c};
    oq_status st = oq_tensor_create(OQ_FLOAT, 4, dims, out);
    if (st == OQ_OK)
        memcpy((*out)->data, v, (size_t)c * sizeof *v);
    return st;
}

/* Does g itself define name (an input, initializer or node output), hiding the outer value? */
static bool defines(const oq_graph *g, const char *name)
{
    for (size_t i = 0; i < g->n_inputs; i++)
        if (!strcmp(g->inputs[i].name, name))
            return true;
    if (oq_graph_initializer(g, name))
        return true;
    for (size_t i = 0; i < g->n_nodes; i++)
        for (size_t k = 0; k < g->nodes[i].n_outputs; k++)
            if (!strcmp(g->nodes[i].outputs[k], name))
                return true;
    return false;
}

static bool rename_in(char **slot, const char *from, const char *to)
{
    if (strcmp(*slot, from))
        return true;
    char *s = oq_strdup(to);
    if (!s)
        return false;
    free(*slot);
    *slot = s;
    return true;
}

/* Every reader of from in g, and in the If/Loop/Scan bodies that see it (ONNX lexical
 * scoping: a body that defines the name itself hides the outer value), reads to. */
static void rename_readers(oq_graph *g, const char *from, const char *to, bool top, bool *fail)
{
    for (size_t i = 0; i < g->n_nodes && !*fail; i++) {
        oq_node *nd = &g->nodes[i];
        for (size_t k = 0; k < nd->n_inputs && !*fail; k++)
            *fail = !rename_in(&nd->inputs[k], from, to);
        for (size_t a = 0; a < nd->n_attrs && !*fail; a++) {
            oq_attr *at = &nd->attrs[a];
            if (at->g && !defines(at->g, from))
                rename_readers(at->g, from, to, false, fail);
            for (size_t j = 0; j < at->n_graphs && !*fail; j++)
                if (at->graphs[j] && !defines(at->graphs[j], from))
                    rename_readers(at->graphs[j], from, to, false, fail);
        }
    }
    /* a body may return the outer value itself as one of its outputs */
    for (size_t i = 0; !top && i < g->n_outputs && !*fail; i++)
        *fail = !rename_in(&g->outputs[i].name, from, to);
}

oq_status oq_model_uint8_input(oq_model *m, const char *image_spec)
{
    if (!m || !m->graph)
        return oq_error(OQ_E_INVALID_ARG, "oq_model_uint8_input: NULL model");
    oq_graph *g = m->graph;
    oq_image_spec spec;
    oq_status st = oq_image_spec_parse(image_spec, &spec);
    if (st != OQ_OK)
        return st;
    oq_value_info *vi = NULL;
    size_t n_data = 0;
    for (size_t i = 0; i < g->n_inputs; i++)
        if (!oq_graph_initializer(g, g->inputs[i].name)) {
            vi = &g->inputs[i];
            n_data++;
        }
    if (n_data != 1 || vi->ndim != 4 || vi->dtype != OQ_FLOAT)
        return oq_error(OQ_E_INVALID_ARG,
                        "--uint8-input needs a model with one float input of rank 4 (an image batch)%s%s",
                        vi ? "; input " : "", vi ? vi->name : "");
    if (oq_graph_is_output(g, vi->name))
        return oq_error(OQ_E_INVALID_ARG, "--uint8-input: input '%s' is also a graph output", vi->name);
    const int64_t *d = vi->dims;
    bool model_nchw;
    if (d[1] == 1 || d[1] == 3)
        model_nchw = true;
    else if (d[3] == 1 || d[3] == 3)
        model_nchw = false;
    else
        return oq_error(OQ_E_INVALID_ARG, "--uint8-input: cannot tell the channel axis of input '%s'", vi->name);
    bool in_nchw = spec.layout ? spec.layout == 1 : model_nchw;
    int64_t c = model_nchw ? d[1] : d[3];
    float a[3], b[3];
    for (int k = 0; k < c; k++) {
        a[k] = 1.0f / (spec.scale * spec.std[k]);
        b[k] = -spec.mean[k] / spec.std[k];
    }
    /* names: the uint8 input keeps the model's input name; the float value gets a new one */
    char *name = oq_strdup(vi->name);
    char *f = oq_graph_unique_name(g, vi->name, "_normalized");
    char *cast = oq_graph_unique_name(g, vi->name, "_cast");
    char *tr = oq_graph_unique_name(g, vi->name, "_nchw");
    char *mul = oq_graph_unique_name(g, vi->name, "_scaled");
    if (!name || !f || !cast || !tr || !mul)
        st = oq_error(OQ_E_NOMEM, "out of memory");
    bool fail = false;
    if (st == OQ_OK) {
        rename_readers(g, name, f, true, &fail);
        if (fail)
            st = oq_error(OQ_E_NOMEM, "out of memory");
    }
    /* nodes go first in topological order: append, then move them to the front */
    size_t first_new = g->n_nodes;
    oq_node *n = NULL;
    if (st == OQ_OK) {
        const char *in[1] = {name}, *out[1] = {cast};
        st = oq_graph_add_node(g, "Cast", "", "uint8_input/Cast", in, 1, out, 1, &n);
        if (st == OQ_OK)
            st = oq_node_add_attr_int(n, "to", OQ_FLOAT);
    }
    const char *x = cast;
    if (st == OQ_OK && in_nchw != model_nchw) {
        const char *in[1] = {cast}, *out[1] = {tr};
        st = oq_graph_add_node(g, "Transpose", "", "uint8_input/Transpose", in, 1, out, 1, &n);
        if (st == OQ_OK) {
            oq_attr *at = oq_realloc(n->attrs, sizeof *at * (n->n_attrs + 1));
            int64_t *perm = oq_malloc(4 * sizeof *perm);
            char *an = oq_strdup("perm");
            if (at)
                n->attrs = at;
            if (!at || !perm || !an) {
                free(perm), free(an);
                st = oq_error(OQ_E_NOMEM, "out of memory");
            } else {
                oq_attr *p = &n->attrs[n->n_attrs++];
                memset(p, 0, sizeof *p);
                p->name = an;
                p->type = OQ_ATTR_INTS;
                p->ints = perm;
                p->n_ints = 4;
                const int64_t to_nchw[4] = {0, 3, 1, 2}, to_nhwc[4] = {0, 2, 3, 1};
                memcpy(perm, model_nchw ? to_nchw : to_nhwc, sizeof to_nchw);
            }
        }
        x = tr;
    }
    oq_tensor *ta = NULL, *tb = NULL;
    const char *an = NULL, *bn = NULL;
    if (st == OQ_OK)
        st = const_tensor(c, model_nchw, a, &ta);
    if (st == OQ_OK)
        st = qg_add_init(g, ta, name, "_scale", &an);
    else
        oq_tensor_destroy(ta);
    if (st == OQ_OK)
        st = const_tensor(c, model_nchw, b, &tb);
    if (st == OQ_OK)
        st = qg_add_init(g, tb, name, "_shift", &bn);
    else
        oq_tensor_destroy(tb);
    if (st == OQ_OK) {
        const char *in[2] = {x, an}, *out[1] = {mul};
        st = oq_graph_add_node(g, "Mul", "", "uint8_input/Mul", in, 2, out, 1, NULL);
    }
    if (st == OQ_OK) {
        const char *in[2] = {mul, bn}, *out[1] = {f};
        st = oq_graph_add_node(g, "Add", "", "uint8_input/Add", in, 2, out, 1, NULL);
    }
    if (st == OQ_OK) {
        /* move the new nodes to the front */
        size_t k = g->n_nodes - first_new;
        oq_node *tmp = oq_malloc(k * sizeof *tmp);
        if (!tmp)
            st = oq_error(OQ_E_NOMEM, "out of memory");
        else {
            memcpy(tmp, g->nodes + first_new, k * sizeof *tmp);
            memmove(g->nodes + k, g->nodes, first_new * sizeof *tmp);
            memcpy(g->nodes, tmp, k * sizeof *tmp);
            free(tmp);
        }
    }
    if (st == OQ_OK) {
        /* the graph input: uint8, in the spec's layout */
        int64_t nd[4] = {d[0], d[1], d[2], d[3]};
        char *dp[4] = {vi->dim_params[0], vi->dim_params[1], vi->dim_params[2], vi->dim_params[3]};
        if (in_nchw != model_nchw) {
            const int perm[4] = {0, 2, 3, 1}; /* nchw <-> nhwc, as the input sees it */
            const int inv[4] = {0, 3, 1, 2};
            const int *p = model_nchw ? perm : inv;
            for (int i = 0; i < 4; i++) {
                nd[i] = d[p[i]];
                dp[i] = vi->dim_params[p[i]];
            }
        }
        memcpy(vi->dims, nd, sizeof nd);
        memcpy(vi->dim_params, dp, sizeof dp);
        vi->dtype = OQ_UINT8;
    }
    free(name), free(f), free(cast), free(tr), free(mul);
    return st;
}
