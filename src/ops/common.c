/* ops/common: helpers shared by operator families — errors naming the node,
 * broadcasting, axis normalization, input checks. */
#include "ops/op.h"

#include <stdarg.h>
#include <stdio.h>

oq_status oq_op_error(const oq_op_node *n, oq_status st, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return oq_error(st, "node '%s' (%s): %s", n && n->label ? n->label : "?",
                    n && n->node ? n->node->op_type : "?", msg);
}

oq_status oq_broadcast_shape(const oq_op_node *n, int na, const int64_t *a, int nb, const int64_t *b, int *nout,
                             int64_t *out)
{
    int r = na > nb ? na : nb;
    for (int i = 0; i < r; i++) {
        int64_t da = i < r - na ? 1 : a[i - (r - na)];
        int64_t db = i < r - nb ? 1 : b[i - (r - nb)];
        if (da == db || db == 1)
            out[i] = da;
        else if (da == 1)
            out[i] = db;
        else {
            char sa[128], sb[128];
            return oq_op_error(n, OQ_E_SHAPE, "shapes %s and %s cannot be broadcast", oq_shape_str(na, a, sa, sizeof sa),
                               oq_shape_str(nb, b, sb, sizeof sb));
        }
    }
    *nout = r;
    return OQ_OK;
}

oq_status oq_norm_axis(const oq_op_node *n, int64_t axis, int rank, int *out)
{
    int64_t a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= (rank ? rank : 1))
        return oq_op_error(n, OQ_E_INVALID_ARG, "axis %lld is out of range for rank %d", (long long)axis, rank);
    *out = (int)a;
    return OQ_OK;
}

void oq_set_shape(oq_tensor *out, oq_dtype dtype, int ndim, const int64_t *dims)
{
    out->dtype = dtype;
    out->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        out->dims[i] = dims[i];
}

oq_status oq_check_input(const oq_op_node *n, const oq_tensor *const *in, size_t i, ...)
{
    if (i >= n->n_inputs || !in[i])
        return oq_op_error(n, OQ_E_INVALID_ARG, "input %zu is missing", i);
    va_list ap;
    va_start(ap, i);
    bool any = false, ok = false;
    for (;;) {
        int t = va_arg(ap, int);
        if (t == OQ_UNDEFINED)
            break;
        any = true;
        if ((oq_dtype)t == in[i]->dtype)
            ok = true;
    }
    va_end(ap);
    if (any && !ok)
        return oq_op_error(n, OQ_E_TYPE, "input %zu has unsupported type %s", i, oq_dtype_name(in[i]->dtype));
    return OQ_OK;
}

const oq_tensor *oq_nchw_view(const oq_tensor *x, oq_tensor *view)
{
    *view = *x;
    view->dims[1] = x->dims[x->ndim - 1];
    for (int i = 2; i < x->ndim; i++)
        view->dims[i] = x->dims[i - 1];
    return view;
}

void *oq_scratch_get(oq_scratch *s, size_t bytes)
{
    if (bytes > s->cap) {
        oq_aligned_free(s->p);
        s->p = oq_aligned_alloc(bytes);
        s->cap = s->p ? bytes : 0;
    }
    return s->p;
}

void oq_scratch_free(oq_scratch *s)
{
    oq_aligned_free(s->p);
    s->p = NULL;
    s->cap = 0;
}
