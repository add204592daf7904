/* passes/fill_to_pad: Concat(x, ConstantOfShape(S)) of two inputs, the fill a constant shape, becomes
 * Pad(x) along the Concat's axis with the fill's value: the same tensor. Converters from TensorFlow
 * Lite write a channel padding this way (BlazeFace's residual blocks widen x with zero channels);
 * a Pad moves values and adds constants, so the quantizer can run it on int8 (see quant/static.c), where
 * a Concat with a float fill would stay float and keep the residual Add after it in float too.
 * The Pad takes the Concat's output name. Like the Concat it replaces, it needs opset 11 (pads as an
 * input). One difference: a Concat whose x does not match the fill in the other dimensions fails
 * at run time, where the Pad pads whatever x it gets. */
#include "passes/pass.h"

#include <string.h>

/* The ConstantOfShape writing name, with a constant 1-D int64 shape and a one-value (or absent)
 * value attribute, or NULL. */
static const oq_node *fill_of(const oq_graph *g, const char *name, const oq_tensor **shape)
{
    size_t p = oq_graph_producer(g, name);
    if (p == SIZE_MAX)
        return NULL;
    const oq_node *n = &g->nodes[p];
    if (strcmp(n->op_type, "ConstantOfShape") || !oq_domain_is_default(n->domain) || n->n_inputs != 1)
        return NULL;
    const oq_tensor *s = oq_graph_initializer(g, n->inputs[0]);
    const oq_attr *v = oq_node_attr(n, "value");
    if (!s || s->dtype != OQ_INT64 || s->ndim != 1 || !s->data || s->dims[0] < 1 || s->dims[0] > OQ_MAX_DIMS)
        return NULL;
    if (v && (!v->t || oq_tensor_numel(v->t) != 1 || !v->t->data || v->t->dtype == OQ_STRING ||
              !oq_dtype_size(v->t->dtype)))
        return NULL;
    for (int64_t d = 0; d < s->dims[0]; d++)
        if (((const int64_t *)s->data)[d] < 0)
            return NULL;
    *shape = s;
    return n;
}

oq_status pass_fill_to_pad(oq_model *m, oq_graph *g, oq_pass_ctx *ctx)
{
    if (oq_model_opset(m, "") < 11)
        return OQ_OK;
    size_t done = 0;
    oq_status st = OQ_OK;
    for (size_t i = 0; i < g->n_nodes && st == OQ_OK; i++) {
        oq_node *n = &g->nodes[i];
        if (strcmp(n->op_type, "Concat") || !oq_domain_is_default(n->domain) || n->n_inputs != 2 ||
            n->n_outputs != 1 || !oq_node_attr(n, "axis"))
            continue;
        const oq_tensor *shape = NULL, *other = NULL;
        int side = fill_of(g, n->inputs[1], &shape) ? 1 : fill_of(g, n->inputs[0], &shape) ? 0 : -1;
        if (side < 0 || fill_of(g, n->inputs[1 - side], &other))
            continue; /* no fill, or two */
        const oq_node *fill = fill_of(g, n->inputs[side], &shape);
        int64_t r = shape->dims[0], axis = oq_node_attr_int(n, "axis", 0);
        axis = axis < 0 ? axis + r : axis;
        if (axis < 0 || axis >= r)
            continue;
        const oq_attr *v = oq_node_attr(fill, "value");
        oq_tensor *pads = NULL, *value = NULL;
        int64_t pd[1] = {2 * r};
        st = oq_tensor_create(OQ_INT64, 1, pd, &pads);
        if (st == OQ_OK)
            st = oq_tensor_create(v ? v->t->dtype : OQ_FLOAT, 0, NULL, &value);
        if (st != OQ_OK) {
            oq_tensor_destroy(pads);
            return st;
        }
        /* the fill after x pads the end of the axis, before it the beginning */
        ((int64_t *)pads->data)[side ? r + axis : axis] = ((const int64_t *)shape->data)[axis];
        if (v)
            memcpy(value->data, v->t->data, value->nbytes);
        if ((st = oq_graph_add_named_initializer(g, pads, n->outputs[0], "_pads")) != OQ_OK) {
            oq_tensor_destroy(value);
            return st;
        }
        if ((st = oq_graph_add_named_initializer(g, value, n->outputs[0], "_pad_value")) != OQ_OK)
            return st;
        const char *in[3] = {n->inputs[1 - side], pads->name, value->name};
        st = oq_node_rewrite(n, "Pad", "", in, 3, true); /* in[0] may point into n */
        done++;
        ctx->changed++;
    }
    if (done)
        oq_pass_note(ctx, "fill_to_pad", "%zu Concat with a constant fill turned into Pad", done);
    return st;
}
