/* ops/gather: operators that pick or place elements by index or by value —
 * Gather, GatherElements, GatherND, ScatterElements (and the old Scatter),
 * ScatterND, OneHot, NonZero, Compress, TopK and Unique. Data is moved by element
 * size, so every dtype works unless an op has to compare or combine values. */
#include "ops/op.h"

#include <stdlib.h>
#include <string.h>

#define PAR_BYTES ((size_t)1 << 17)

static size_t elem_size(oq_dtype t) { return t == OQ_STRING ? sizeof(char *) : oq_dtype_size(t); }

static oq_status dup_strings(oq_tensor *t)
{
    if (t->dtype != OQ_STRING)
        return OQ_OK;
    char **s = t->data;
    size_t n = t->nbytes / sizeof(char *);
    for (size_t i = 0; i < n; i++) {
        char *c = oq_strdup(s[i] ? s[i] : "");
        if (!c) {
            memset(s + i, 0, (n - i) * sizeof(char *));
            return oq_error(OQ_E_NOMEM, "out of memory copying strings");
        }
        s[i] = c;
    }
    return OQ_OK;
}

static size_t n_tasks_for(oq_threadpool *tp, size_t items, size_t bytes)
{
    size_t th = (size_t)oq_threadpool_size(tp);
    if (th <= 1 || bytes < PAR_BYTES || items < 2)
        return 1;
    size_t t = th * 4;
    if (t > items)
        t = items;
    if (t > bytes / (PAR_BYTES / 4))
        t = bytes / (PAR_BYTES / 4);
    return t ? t : 1;
}

static oq_status need_io(const oq_op_node *n, const oq_tensor *const *in, size_t min_in, size_t max_in, size_t min_out)
{
    if (n->n_inputs < min_in || n->n_inputs > max_in)
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects %zu to %zu inputs, got %zu", min_in, max_in, n->n_inputs);
    for (size_t i = 0; i < min_in; i++)
        if (!in[i])
            return oq_op_error(n, OQ_E_INVALID_ARG, "input %zu is missing", i);
    if (n->n_outputs < min_out)
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects at least %zu outputs", min_out);
    return OQ_OK;
}

static oq_status check_index_type(const oq_op_node *n, const oq_tensor *t, const char *what)
{
    if (t->dtype != OQ_INT64 && t->dtype != OQ_INT32)
        return oq_op_error(n, OQ_E_TYPE, "%s must be int32 or int64, not %s", what, oq_dtype_name(t->dtype));
    return OQ_OK;
}

static inline int64_t index_at(const oq_tensor *t, int64_t i)
{
    return t->dtype == OQ_INT64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
}

/* Fixes a possibly negative index against dim; -1 when out of range. */
static inline int64_t fix_index(int64_t v, int64_t dim)
{
    if (v < 0)
        v += dim;
    return v < 0 || v >= dim ? -1 : v;
}

/* ---- Gather ---- */
static oq_status gather_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = need_io(n, in, 2, 2, 1);
    if (st != OQ_OK || (st = check_index_type(n, in[1], "indices")) != OQ_OK)
        return st;
    const oq_tensor *x = in[0], *ind = in[1];
    int ax;
    if (x->ndim == 0)
        return oq_op_error(n, OQ_E_SHAPE, "data must have rank >= 1");
    if ((st = oq_norm_axis(n, oq_node_attr_int(n->node, "axis", 0), x->ndim, &ax)) != OQ_OK)
        return st;
    int r = x->ndim - 1 + ind->ndim;
    if (r > OQ_MAX_DIMS)
        return oq_op_error(n, OQ_E_UNSUPPORTED, "output rank %d is above %d", r, OQ_MAX_DIMS);
    int64_t d[OQ_MAX_DIMS];
    int k = 0;
    for (int i = 0; i < ax; i++)
        d[k++] = x->dims[i];
    for (int i = 0; i < ind->ndim; i++)
        d[k++] = ind->dims[i];
    for (int i = ax + 1; i < x->ndim; i++)
        d[k++] = x->dims[i];
    oq_set_shape(out[0], x->dtype, r, d);
    return OQ_OK;
}

typedef struct gather_ctx {
    const char *src;
    char *dst;
    const oq_tensor *ind;
    size_t n_idx, inner, outer, n_tasks;
    int64_t dim;
} gather_ctx;

static void gather_task(void *vc, size_t task, size_t thread)
{
    (void)thread;
    gather_ctx *c = vc;
    size_t items = c->outer * c->n_idx, lo = items * task / c->n_tasks, hi = items * (task + 1) / c->n_tasks;
    for (size_t it = lo; it < hi; it++) {
        size_t o = it / c->n_idx, j = it % c->n_idx;
        int64_t v = fix_index(index_at(c->ind, (int64_t)j), c->dim);
        memcpy(c->dst + it * c->inner, c->src + (o * (size_t)c->dim + (size_t)v) * c->inner, c->inner);
    }
}

static oq_status gather_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    const oq_tensor *x = in[0], *ind = in[1];
    int ax;
    oq_norm_axis(n, oq_node_attr_int(n->node, "axis", 0), x->ndim, &ax);
    gather_ctx c = {x->data, out[0]->data, ind, (size_t)oq_tensor_numel(ind), elem_size(x->dtype), 1, 1,
                    x->dims[ax]};
    for (int i = 0; i < ax; i++)
        c.outer *= (size_t)x->dims[i];
    for (int i = ax + 1; i < x->ndim; i++)
        c.inner *= (size_t)x->dims[i];
    for (size_t j = 0; j < c.n_idx; j++)
        if (fix_index(index_at(ind, (int64_t)j), c.dim) < 0)
            return oq_op_error(n, OQ_E_INVALID_ARG, "index %lld is out of range for axis %d of size %lld",
                               (long long)index_at(ind, (int64_t)j), ax, (long long)c.dim);
    size_t items = c.outer * c.n_idx;
    if (!items || !c.inner)
        return OQ_OK;
    c.n_tasks = n_tasks_for(n->tp, items, items * c.inner);
    if (c.n_tasks == 1)
        gather_task(&c, 0, 0);
    else
        oq_parallel_for(n->tp, c.n_tasks, gather_task, &c);
    return dup_strings(out[0]);
}
const oq_op_def oq_op_gather = {NULL, gather_infer, gather_run, NULL};

/* ---- GatherElements, ScatterElements ---- */
static oq_status elements_axis(oq_op_node *n, const oq_tensor *x, const oq_tensor *ind, int *ax)
{
    oq_status st = check_index_type(n, ind, "indices");
    if (st != OQ_OK)
        return st;
    if (ind->ndim != x->ndim || x->ndim == 0)
        return oq_op_error(n, OQ_E_SHAPE, "indices (rank %d) must have the rank of data (%d)", ind->ndim, x->ndim);
    return oq_norm_axis(n, oq_node_attr_int(n->node, "axis", 0), x->ndim, ax);
}

static oq_status gather_elements_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = need_io(n, in, 2, 2, 1);
    int ax;
    if (st != OQ_OK || (st = elements_axis(n, in[0], in[1], &ax)) != OQ_OK)
        return st;
    oq_set_shape(out[0], in[0]->dtype, in[1]->ndim, in[1]->dims);
    return OQ_OK;
}

/* Walks every element of `ind`, giving the flat offset into data (with the axis
 * coordinate replaced by the index) through *off. Returns false when done. */
typedef struct elem_iter {
    int nd, ax;
    int64_t idx[OQ_MAX_DIMS], dims[OQ_MAX_DIMS], dstride[OQ_MAX_DIMS];
} elem_iter;

static void elem_iter_init(elem_iter *it, const oq_tensor *x, const oq_tensor *ind, int ax)
{
    memset(it, 0, sizeof *it);
    it->nd = x->ndim;
    it->ax = ax;
    int64_t s = 1;
    for (int a = x->ndim - 1; a >= 0; a--) {
        it->dims[a] = ind->dims[a];
        it->dstride[a] = s;
        s *= x->dims[a];
    }
}

static int64_t elem_iter_base(const elem_iter *it)
{
    int64_t off = 0;
    for (int a = 0; a < it->nd; a++)
        if (a != it->ax)
            off += it->idx[a] * it->dstride[a];
    return off;
}

static void elem_iter_next(elem_iter *it)
{
    for (int a = it->nd - 1; a >= 0; a--) {
        if (++it->idx[a] < it->dims[a])
            return;
        it->idx[a] = 0;
    }
}

static oq_status gather_elements_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    const oq_tensor *x = in[0], *ind = in[1];
    int ax;
    oq_norm_axis(n, oq_node_attr_int(n->node, "axis", 0), x->ndim, &ax);
    for (int a = 0; a < x->ndim; a++)
        if (a != ax && ind->dims[a] > x->dims[a])
            return oq_op_error(n, OQ_E_SHAPE, "indices dimension %d (%lld) exceeds data's (%lld)", a,
                               (long long)ind->dims[a], (long long)x->dims[a]);
    elem_iter it;
    elem_iter_init(&it, x, ind, ax);
    size_t es = elem_size(x->dtype);
    int64_t cnt = oq_tensor_numel(ind);
    for (int64_t i = 0; i < cnt; i++, elem_iter_next(&it)) {
        int64_t v = fix_index(index_at(ind, i), x->dims[ax]);
        if (v < 0)
            return oq_op_error(n, OQ_E_INVALID_ARG, "index %lld is out of range", (long long)index_at(ind, i));
        int64_t off = elem_iter_base(&it) + v * it.dstride[ax];
        memcpy((char *)out[0]->data + (size_t)i * es, (const char *)x->data + (size_t)off * es, es);
    }
    return dup_strings(out[0]);
}
const oq_op_def oq_op_gather_elements = {NULL, gather_elements_infer, gather_elements_run, NULL};

/* Scatter reductions on one element. */
typedef enum reduction { RED_NONE, RED_ADD, RED_MUL, RED_MAX, RED_MIN } reduction;

static oq_status get_reduction(const oq_op_node *n, reduction *r)
{
    const char *s = oq_node_attr_string(n->node, "reduction", "none");
    if (!strcmp(s, "none"))
        *r = RED_NONE;
    else if (!strcmp(s, "add"))
        *r = RED_ADD;
    else if (!strcmp(s, "mul"))
        *r = RED_MUL;
    else if (!strcmp(s, "max"))
        *r = RED_MAX;
    else if (!strcmp(s, "min"))
        *r = RED_MIN;
    else
        return oq_op_error(n, OQ_E_INVALID_ARG, "unknown reduction '%s'", s);
    return OQ_OK;
}

#define REDUCE_T(T)                                                  \
    static void reduce_##T(T *d, const T *s, size_t cnt, reduction r) \
    {                                                                \
        for (size_t i = 0; i < cnt; i++) {                           \
            switch (r) {                                             \
            case RED_ADD: d[i] += s[i]; break;                       \
            case RED_MUL: d[i] *= s[i]; break;                       \
            case RED_MAX: d[i] = s[i] > d[i] ? s[i] : d[i]; break;   \
            case RED_MIN: d[i] = s[i] < d[i] ? s[i] : d[i]; break;   \
            default: d[i] = s[i]; break;                             \
            }                                                        \
        }                                                            \
    }
REDUCE_T(float)
REDUCE_T(double)
REDUCE_T(int8_t)
REDUCE_T(uint8_t)
REDUCE_T(int16_t)
REDUCE_T(uint16_t)
REDUCE_T(int32_t)
REDUCE_T(uint32_t)
REDUCE_T(int64_t)
REDUCE_T(uint64_t)

/* dst[0..cnt) (op)= src[0..cnt); strings only support plain assignment. */
static oq_status apply_update(oq_op_node *n, oq_dtype t, void *dst, const void *src, size_t cnt, reduction r)
{
    if (r == RED_NONE) {
        if (t == OQ_STRING) {
            char **d = dst;
            char *const *s = src;
            for (size_t i = 0; i < cnt; i++) {
                char *c = oq_strdup(s[i] ? s[i] : "");
                if (!c)
                    return oq_error(OQ_E_NOMEM, "out of memory");
                free(d[i]);
                d[i] = c;
            }
        } else {
            memcpy(dst, src, cnt * oq_dtype_size(t));
        }
        return OQ_OK;
    }
    switch (t) {
    case OQ_FLOAT: reduce_float(dst, src, cnt, r); break;
    case OQ_DOUBLE: reduce_double(dst, src, cnt, r); break;
    case OQ_INT8: reduce_int8_t(dst, src, cnt, r); break;
    case OQ_UINT8: reduce_uint8_t(dst, src, cnt, r); break;
    case OQ_INT16: reduce_int16_t(dst, src, cnt, r); break;
    case OQ_UINT16: reduce_uint16_t(dst, src, cnt, r); break;
    case OQ_INT32: reduce_int32_t(dst, src, cnt, r); break;
    case OQ_UINT32: reduce_uint32_t(dst, src, cnt, r); break;
    case OQ_INT64: reduce_int64_t(dst, src, cnt, r); break;
    case OQ_UINT64: reduce_uint64_t(dst, src, cnt, r); break;
    default: return oq_op_error(n, OQ_E_TYPE, "reduction on type %s is not supported", oq_dtype_name(t));
    }
    return OQ_OK;
}

static oq_status scatter_elements_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = need_io(n, in, 3, 3, 1);
    int ax;
    reduction r;
    if (st != OQ_OK || (st = elements_axis(n, in[0], in[1], &ax)) != OQ_OK || (st = get_reduction(n, &r)) != OQ_OK)
        return st;
    if (in[2]->dtype != in[0]->dtype || !oq_shape_equal(in[1]->ndim, in[1]->dims, in[2]->ndim, in[2]->dims))
        return oq_op_error(n, OQ_E_SHAPE, "updates must have the type of data and the shape of indices");
    for (int a = 0; a < in[0]->ndim; a++)
        if (a != ax && in[1]->dims[a] > in[0]->dims[a])
            return oq_op_error(n, OQ_E_SHAPE, "indices dimension %d exceeds data's", a);
    oq_set_shape(out[0], in[0]->dtype, in[0]->ndim, in[0]->dims);
    return OQ_OK;
}

static oq_status scatter_elements_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    const oq_tensor *x = in[0], *ind = in[1], *upd = in[2];
    int ax;
    reduction r;
    oq_norm_axis(n, oq_node_attr_int(n->node, "axis", 0), x->ndim, &ax);
    get_reduction(n, &r);
    memcpy(out[0]->data, x->data, x->nbytes);
    oq_status st = dup_strings(out[0]);
    elem_iter it;
    elem_iter_init(&it, x, ind, ax);
    size_t es = elem_size(x->dtype);
    int64_t cnt = oq_tensor_numel(ind);
    for (int64_t i = 0; st == OQ_OK && i < cnt; i++, elem_iter_next(&it)) {
        int64_t v = fix_index(index_at(ind, i), x->dims[ax]);
        if (v < 0)
            return oq_op_error(n, OQ_E_INVALID_ARG, "index %lld is out of range", (long long)index_at(ind, i));
        int64_t off = elem_iter_base(&it) + v * it.dstride[ax];
        st = apply_update(n, x->dtype, (char *)out[0]->data + (size_t)off * es, (const char *)upd->data + (size_t)i * es,
                          1, r);
    }
    return st;
}
const oq_op_def oq_op_scatter_elements = {NULL, scatter_elements_infer, scatter_elements_run, NULL};

/* ---- GatherND, ScatterND ---- */
typedef struct nd_plan {
    int64_t batch, n_tuples, k, slice; /* slice: elements per gathered block */
    int64_t dstride[OQ_MAX_DIMS];       /* element strides of data's indexed dims */
    int64_t batch_block;                /* data elements per batch entry */
} nd_plan;

static oq_status nd_plan_make(oq_op_node *n, const oq_tensor *x, const oq_tensor *ind, int b, nd_plan *p)
{
    oq_status st = check_index_type(n, ind, "indices");
    if (st != OQ_OK)
        return st;
    int r = x->ndim, q = ind->ndim;
    if (q < 1 || r < 1 || b < 0 || b >= q || b >= r)
        return oq_op_error(n, OQ_E_SHAPE, "bad ranks: data %d, indices %d, batch_dims %d", r, q, b);
    p->k = ind->dims[q - 1];
    if (p->k < 1 || p->k > r - b)
        return oq_op_error(n, OQ_E_SHAPE, "indices last dimension %lld must be in 1..%d", (long long)p->k, r - b);
    p->batch = 1;
    for (int i = 0; i < b; i++) {
        if (ind->dims[i] != x->dims[i])
            return oq_op_error(n, OQ_E_SHAPE, "batch dimension %d differs between data and indices", i);
        p->batch *= x->dims[i];
    }
    p->n_tuples = 1;
    for (int i = b; i < q - 1; i++)
        p->n_tuples *= ind->dims[i];
    p->slice = 1;
    for (int i = b + (int)p->k; i < r; i++)
        p->slice *= x->dims[i];
    int64_t s = p->slice;
    for (int i = b + (int)p->k - 1; i >= b; i--) {
        p->dstride[i - b] = s;
        s *= x->dims[i];
    }
    p->batch_block = s;
    return OQ_OK;
}

/* Data offset (elements) of tuple t of batch bt, or -1 when an index is out of range. */
static int64_t nd_offset(const nd_plan *p, const oq_tensor *x, const oq_tensor *ind, int b, int64_t bt, int64_t t)
{
    int64_t off = bt * p->batch_block, base = (bt * p->n_tuples + t) * p->k;
    for (int64_t j = 0; j < p->k; j++) {
        int64_t v = fix_index(index_at(ind, base + j), x->dims[b + j]);
        if (v < 0)
            return -1;
        off += v * p->dstride[j];
    }
    return off;
}

static oq_status gathernd_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = need_io(n, in, 2, 2, 1);
    if (st != OQ_OK)
        return st;
    int b = (int)oq_node_attr_int(n->node, "batch_dims", 0);
    nd_plan p;
    if ((st = nd_plan_make(n, in[0], in[1], b, &p)) != OQ_OK)
        return st;
    int64_t d[OQ_MAX_DIMS];
    int k = 0;
    for (int i = 0; i < in[1]->ndim - 1; i++)
        d[k++] = in[1]->dims[i];
    for (int i = b + (int)p.k; i < in[0]->ndim; i++) {
        if (k >= OQ_MAX_DIMS)
            return oq_op_error(n, OQ_E_UNSUPPORTED, "output rank is above %d", OQ_MAX_DIMS);
        d[k++] = in[0]->dims[i];
    }
    oq_set_shape(out[0], in[0]->dtype, k, d);
    return OQ_OK;
}

static oq_status gathernd_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    int b = (int)oq_node_attr_int(n->node, "batch_dims", 0);
    nd_plan p;
    oq_status st = nd_plan_make(n, in[0], in[1], b, &p);
    if (st != OQ_OK)
        return st;
    size_t es = elem_size(in[0]->dtype), blk = (size_t)p.slice * es;
    char *d = out[0]->data;
    for (int64_t bt = 0; bt < p.batch; bt++)
        for (int64_t t = 0; t < p.n_tuples; t++, d += blk) {
            int64_t off = nd_offset(&p, in[0], in[1], b, bt, t);
            if (off < 0)
                return oq_op_error(n, OQ_E_INVALID_ARG, "an index is out of range");
            memcpy(d, (const char *)in[0]->data + (size_t)off * es, blk);
        }
    return dup_strings(out[0]);
}
const oq_op_def oq_op_gathernd = {NULL, gathernd_infer, gathernd_run, NULL};

static oq_status scatternd_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = need_io(n, in, 3, 3, 1);
    nd_plan p;
    reduction r;
    if (st != OQ_OK || (st = nd_plan_make(n, in[0], in[1], 0, &p)) != OQ_OK || (st = get_reduction(n, &r)) != OQ_OK)
        return st;
    if (in[2]->dtype != in[0]->dtype || oq_tensor_numel(in[2]) != p.n_tuples * p.slice)
        return oq_op_error(n, OQ_E_SHAPE, "updates must have the type of data and %lld elements",
                           (long long)(p.n_tuples * p.slice));
    oq_set_shape(out[0], in[0]->dtype, in[0]->ndim, in[0]->dims);
    return OQ_OK;
}

static oq_status scatternd_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    nd_plan p;
    reduction r;
    nd_plan_make(n, in[0], in[1], 0, &p);
    get_reduction(n, &r);
    memcpy(out[0]->data, in[0]->data, in[0]->nbytes);
    oq_status st = dup_strings(out[0]);
    size_t es = elem_size(in[0]->dtype);
    for (int64_t t = 0; st == OQ_OK && t < p.n_tuples; t++) {
        int64_t off = nd_offset(&p, in[0], in[1], 0, 0, t);
        if (off < 0)
            return oq_op_error(n, OQ_E_INVALID_ARG, "an index is out of range");
        st = apply_update(n, in[0]->dtype, (char *)out[0]->data + (size_t)off * es,
                          (const char *)in[2]->data + (size_t)(t * p.slice) * es, (size_t)p.slice, r);
    }
    return st;
}
const oq_op_def oq_op_scatternd = {NULL, scatternd_infer, scatternd_run, NULL};

/* ---- OneHot ---- */
static oq_status onehot_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = need_io(n, in, 3, 3, 1);
    if (st != OQ_OK)
        return st;
    const oq_tensor *ind = in[0], *depth = in[1], *vals = in[2];
    if (oq_tensor_numel(depth) != 1 || depth->dtype == OQ_STRING)
        return oq_op_error(n, OQ_E_INVALID_ARG, "depth must be a numeric scalar");
    if (oq_tensor_numel(vals) != 2 || vals->dtype == OQ_STRING)
        return oq_op_error(n, OQ_E_INVALID_ARG, "values must hold two elements [off, on]");
    if (ind->dtype == OQ_STRING || ind->ndim + 1 > OQ_MAX_DIMS)
        return oq_op_error(n, OQ_E_INVALID_ARG, "indices must be numeric with rank below %d", OQ_MAX_DIMS);
    double depf = oq_tensor_get_f64(depth, 0);
    if (!(depf >= 1 && depf < 1e12))
        return oq_op_error(n, OQ_E_INVALID_ARG, "depth %g must be a positive count", depf);
    int64_t dep = (int64_t)depf;
    int r = ind->ndim + 1, ax;
    if ((st = oq_norm_axis(n, oq_node_attr_int(n->node, "axis", -1), r, &ax)) != OQ_OK)
        return st;
    int64_t d[OQ_MAX_DIMS];
    for (int i = 0, k = 0; i < r; i++)
        d[i] = i == ax ? dep : ind->dims[k++];
    oq_set_shape(out[0], vals->dtype, r, d);
    return OQ_OK;
}

static oq_status onehot_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    const oq_tensor *ind = in[0], *vals = in[2];
    int r = ind->ndim + 1, ax;
    oq_norm_axis(n, oq_node_attr_int(n->node, "axis", -1), r, &ax);
    int64_t dep = out[0]->dims[ax], outer = 1, inner = 1;
    for (int i = 0; i < ax; i++)
        outer *= out[0]->dims[i];
    for (int i = ax + 1; i < r; i++)
        inner *= out[0]->dims[i];
    size_t es = oq_dtype_size(vals->dtype);
    const char *off = vals->data, *on = off + es;
    char *d = out[0]->data;
    int64_t total = outer * dep * inner;
    for (int64_t i = 0; i < total; i++)
        memcpy(d + (size_t)i * es, off, es);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            double vf = oq_tensor_get_f64(ind, o * inner + j);
            int64_t v = vf > -1e15 && vf < 1e15 ? fix_index((int64_t)vf, dep) : -1;
            if (v >= 0)
                memcpy(d + (size_t)((o * dep + v) * inner + j) * es, on, es);
        }
    return OQ_OK;
}
const oq_op_def oq_op_onehot = {NULL, onehot_infer, onehot_run, NULL};

/* ---- NonZero (output size depends on values: run allocates) ---- */
static bool is_nonzero(const oq_tensor *t, int64_t i)
{
    size_t es = oq_dtype_size(t->dtype);
    const unsigned char *p = (const unsigned char *)t->data + (size_t)i * es;
    switch (t->dtype) {
    case OQ_FLOAT: return ((const float *)t->data)[i] != 0;
    case OQ_DOUBLE: return ((const double *)t->data)[i] != 0;
    case OQ_FLOAT16:
    case OQ_BFLOAT16: return (((const uint16_t *)t->data)[i] & 0x7fff) != 0;
    default:
        for (size_t b = 0; b < es; b++)
            if (p[b])
                return true;
        return false;
    }
}

static oq_status nonzero_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = need_io(n, in, 1, 1, 1);
    if (st != OQ_OK)
        return st;
    const oq_tensor *x = in[0];
    if (x->dtype == OQ_STRING || oq_dtype_size(x->dtype) == 0)
        return oq_op_error(n, OQ_E_TYPE, "type %s is not supported", oq_dtype_name(x->dtype));
    int64_t cnt = oq_tensor_numel(x), nz = 0;
    for (int64_t i = 0; i < cnt; i++)
        nz += is_nonzero(x, i);
    int64_t d[2] = {x->ndim, nz};
    if ((st = oq_tensor_alloc(out[0], OQ_INT64, 2, d)) != OQ_OK)
        return st;
    int64_t *o = out[0]->data, k = 0;
    for (int64_t i = 0; i < cnt; i++) {
        if (!is_nonzero(x, i))
            continue;
        int64_t rem = i;
        for (int a = x->ndim - 1; a >= 0; a--) {
            o[a * nz + k] = rem % x->dims[a];
            rem /= x->dims[a];
        }
        k++;
    }
    return OQ_OK;
}
const oq_op_def oq_op_nonzero = {NULL, NULL, nonzero_run, NULL};

/* ---- Compress ---- */
static oq_status compress_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = need_io(n, in, 2, 2, 1);
    if (st != OQ_OK)
        return st;
    const oq_tensor *x = in[0], *cond = in[1];
    if (cond->dtype != OQ_BOOL || cond->ndim != 1)
        return oq_op_error(n, OQ_E_TYPE, "condition must be a 1-D bool tensor");
    const oq_attr *a = oq_node_attr(n->node, "axis");
    int ax = -1;
    int64_t len = a ? 0 : oq_tensor_numel(x);
    if (a) {
        if ((st = oq_norm_axis(n, a->i, x->ndim, &ax)) != OQ_OK)
            return st;
        len = x->dims[ax];
    }
    if (cond->dims[0] > len)
        return oq_op_error(n, OQ_E_SHAPE, "condition has %lld entries for a length of %lld", (long long)cond->dims[0],
                           (long long)len);
    int64_t kept = 0;
    for (int64_t i = 0; i < cond->dims[0]; i++)
        kept += ((const uint8_t *)cond->data)[i] != 0;
    if (ax < 0) {
        oq_set_shape(out[0], x->dtype, 1, &kept);
    } else {
        int64_t d[OQ_MAX_DIMS];
        memcpy(d, x->dims, sizeof d);
        d[ax] = kept;
        oq_set_shape(out[0], x->dtype, x->ndim, d);
    }
    return OQ_OK;
}

static oq_status compress_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    const oq_tensor *x = in[0], *cond = in[1];
    const oq_attr *a = oq_node_attr(n->node, "axis");
    size_t es = elem_size(x->dtype), outer = 1, inner = 1;
    int64_t len = oq_tensor_numel(x);
    if (a) {
        int ax;
        oq_norm_axis(n, a->i, x->ndim, &ax);
        len = x->dims[ax];
        for (int i = 0; i < ax; i++)
            outer *= (size_t)x->dims[i];
        for (int i = ax + 1; i < x->ndim; i++)
            inner *= (size_t)x->dims[i];
    }
    const uint8_t *c = cond->data;
    char *d = out[0]->data;
    for (size_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < cond->dims[0]; i++)
            if (c[i]) {
                memcpy(d, (const char *)x->data + (o * (size_t)len + (size_t)i) * inner * es, inner * es);
                d += inner * es;
            }
    return dup_strings(out[0]);
}
const oq_op_def oq_op_compress = {NULL, compress_infer, compress_run, NULL};

/* ---- TopK ---- */
typedef struct topk_item {
    double v;
    int64_t i;
} topk_item;

static int topk_cmp_large(const void *a, const void *b)
{
    const topk_item *x = a, *y = b;
    if (x->v != y->v)
        return x->v > y->v ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static int topk_cmp_small(const void *a, const void *b)
{
    const topk_item *x = a, *y = b;
    if (x->v != y->v)
        return x->v < y->v ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static oq_status topk_k(oq_op_node *n, const oq_tensor *const *in, int *ax, int64_t *k)
{
    bool attr = n->opset < 10;
    oq_status st = need_io(n, in, attr ? 1 : 2, attr ? 1 : 2, 2);
    if (st != OQ_OK)
        return st;
    const oq_tensor *x = in[0];
    if (x->dtype == OQ_STRING || x->dtype == OQ_BOOL || oq_dtype_size(x->dtype) == 0 || x->ndim == 0)
        return oq_op_error(n, OQ_E_TYPE, "input must be a numeric tensor of rank >= 1");
    if ((st = oq_norm_axis(n, oq_node_attr_int(n->node, "axis", -1), x->ndim, ax)) != OQ_OK)
        return st;
    if (attr) {
        *k = oq_node_attr_int(n->node, "k", -1);
    } else {
        if (in[1]->dtype != OQ_INT64 || oq_tensor_numel(in[1]) != 1)
            return oq_op_error(n, OQ_E_INVALID_ARG, "K must be a one-element int64 tensor");
        *k = *(const int64_t *)in[1]->data;
    }
    if (*k < 0 || *k > x->dims[*ax])
        return oq_op_error(n, OQ_E_INVALID_ARG, "k %lld is out of range for axis of size %lld", (long long)*k,
                           (long long)x->dims[*ax]);
    return OQ_OK;
}

static oq_status topk_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    int ax;
    int64_t k;
    oq_status st = topk_k(n, in, &ax, &k);
    if (st != OQ_OK)
        return st;
    int64_t d[OQ_MAX_DIMS];
    memcpy(d, in[0]->dims, sizeof d);
    d[ax] = k;
    oq_set_shape(out[0], in[0]->dtype, in[0]->ndim, d);
    oq_set_shape(out[1], OQ_INT64, in[0]->ndim, d);
    return OQ_OK;
}

static oq_status topk_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    int ax;
    int64_t k;
    oq_status st = topk_k(n, in, &ax, &k);
    if (st != OQ_OK)
        return st;
    const oq_tensor *x = in[0];
    bool largest = n->opset < 11 || oq_node_attr_int(n->node, "largest", 1) != 0;
    int64_t len = x->dims[ax], outer = 1, inner = 1;
    for (int i = 0; i < ax; i++)
        outer *= x->dims[i];
    for (int i = ax + 1; i < x->ndim; i++)
        inner *= x->dims[i];
    if (!k || !len || !outer || !inner)
        return OQ_OK;
    topk_item *items = oq_malloc((size_t)len * sizeof *items);
    if (!items)
        return oq_error(OQ_E_NOMEM, "out of memory");
    size_t es = oq_dtype_size(x->dtype);
    bool fp = x->dtype == OQ_FLOAT || x->dtype == OQ_DOUBLE || x->dtype == OQ_FLOAT16 || x->dtype == OQ_BFLOAT16;
    int64_t *oi = out[1]->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < inner; j++) {
            for (int64_t i = 0; i < len; i++) {
                int64_t at = (o * len + i) * inner + j;
                items[i].v = fp ? oq_tensor_get_f64(x, at) : (double)oq_tensor_get_i64(x, at);
                items[i].i = i;
            }
            /* the result is always returned sorted, which also satisfies sorted=0 */
            qsort(items, (size_t)len, sizeof *items, largest ? topk_cmp_large : topk_cmp_small);
            for (int64_t i = 0; i < k; i++) {
                int64_t at = (o * k + i) * inner + j;
                memcpy((char *)out[0]->data + (size_t)at * es,
                       (const char *)x->data + (size_t)((o * len + items[i].i) * inner + j) * es, es);
                oi[at] = items[i].i;
            }
        }
    free(items);
    return OQ_OK;
}
const oq_op_def oq_op_topk = {NULL, topk_infer, topk_run, NULL};

/* ---- Unique (outputs depend on values: run allocates) ---- */
typedef struct unique_ctx {
    const oq_tensor *x;
    int64_t outer, len, inner; /* item i = x[o, i, j] for all o, j */
    bool fp;
} unique_ctx;

static int unique_cmp_items(const unique_ctx *c, int64_t a, int64_t b)
{
    for (int64_t o = 0; o < c->outer; o++)
        for (int64_t j = 0; j < c->inner; j++) {
            int64_t ia = (o * c->len + a) * c->inner + j, ib = (o * c->len + b) * c->inner + j;
            if (c->x->dtype == OQ_STRING) {
                const char *sa = ((char *const *)c->x->data)[ia], *sb = ((char *const *)c->x->data)[ib];
                int r = strcmp(sa ? sa : "", sb ? sb : "");
                if (r)
                    return r;
            } else if (c->fp) {
                double va = oq_tensor_get_f64(c->x, ia), vb = oq_tensor_get_f64(c->x, ib);
                if (va != vb)
                    return va < vb ? -1 : 1;
            } else {
                int64_t va = oq_tensor_get_i64(c->x, ia), vb = oq_tensor_get_i64(c->x, ib);
                if (va != vb)
                    return va < vb ? -1 : 1;
            }
        }
    return 0;
}

static int unique_qsort_cmp(const void *a, const void *b, void *ctx)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    int r = unique_cmp_items(ctx, x, y);
    return r ? r : (x < y ? -1 : x > y);
}

static oq_status unique_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = need_io(n, in, 1, 1, 1);
    if (st != OQ_OK)
        return st;
    const oq_tensor *x = in[0];
    if (x->dtype != OQ_STRING && oq_dtype_size(x->dtype) == 0)
        return oq_op_error(n, OQ_E_TYPE, "type %s is not supported", oq_dtype_name(x->dtype));
    unique_ctx c = {x, 1, oq_tensor_numel(x), 1,
                    x->dtype == OQ_FLOAT || x->dtype == OQ_DOUBLE || x->dtype == OQ_FLOAT16 || x->dtype == OQ_BFLOAT16};
    const oq_attr *axa = oq_node_attr(n->node, "axis");
    int ax = -1;
    if (axa) {
        if ((st = oq_norm_axis(n, axa->i, x->ndim, &ax)) != OQ_OK)
            return st;
        c.len = x->dims[ax];
        for (int i = 0; i < ax; i++)
            c.outer *= x->dims[i];
        for (int i = ax + 1; i < x->ndim; i++)
            c.inner *= x->dims[i];
    }
    bool sorted = oq_node_attr_int(n->node, "sorted", 1) != 0;
    int64_t L = c.len;
    int64_t *order = oq_malloc((size_t)(L ? L : 1) * sizeof *order);
    int64_t *first = oq_malloc((size_t)(L ? L : 1) * sizeof *first);   /* item of each unique, by output order */
    int64_t *inverse = oq_malloc((size_t)(L ? L : 1) * sizeof *inverse); /* unique id of each item */
    int64_t *counts = oq_calloc((size_t)(L ? L : 1), sizeof *counts);
    if (!order || !first || !inverse || !counts) {
        st = oq_error(OQ_E_NOMEM, "out of memory");
        goto done;
    }
    for (int64_t i = 0; i < L; i++)
        order[i] = i;
    qsort_r(order, (size_t)L, sizeof *order, unique_qsort_cmp, &c);
    /* group equal runs; each group's first element (smallest index) is the representative */
    int64_t nu = 0;
    for (int64_t i = 0; i < L; i++) {
        if (i == 0 || unique_cmp_items(&c, order[i - 1], order[i]))
            first[nu++] = order[i];
        inverse[order[i]] = nu - 1;
    }
    if (!sorted) {
        /* renumber groups by first occurrence */
        int64_t *remap = order; /* reuse: order no longer needed */
        for (int64_t g = 0; g < nu; g++)
            remap[g] = -1;
        int64_t next = 0;
        int64_t *new_first = counts; /* counts is still zero: use as scratch, then clear */
        for (int64_t i = 0; i < L; i++) {
            int64_t g = inverse[i];
            if (remap[g] < 0) {
                remap[g] = next;
                new_first[next++] = first[g];
            }
            inverse[i] = remap[g];
        }
        memcpy(first, new_first, (size_t)nu * sizeof *first);
        memset(counts, 0, (size_t)(L ? L : 1) * sizeof *counts);
    }
    for (int64_t i = 0; i < L; i++)
        counts[inverse[i]]++;
    /* outputs */
    size_t es = elem_size(x->dtype);
    int64_t d[OQ_MAX_DIMS];
    if (ax < 0) {
        d[0] = nu;
        st = oq_tensor_alloc(out[0], x->dtype, 1, d);
    } else {
        memcpy(d, x->dims, sizeof d);
        d[ax] = nu;
        st = oq_tensor_alloc(out[0], x->dtype, x->ndim, d);
    }
    if (st != OQ_OK)
        goto done;
    for (int64_t o = 0; o < c.outer; o++)
        for (int64_t g = 0; g < nu; g++)
            memcpy((char *)out[0]->data + (size_t)((o * nu + g) * c.inner) * es,
                   (const char *)x->data + (size_t)((o * L + first[g]) * c.inner) * es, (size_t)c.inner * es);
    if ((st = dup_strings(out[0])) != OQ_OK)
        goto done;
    const int64_t *src[3] = {first, inverse, counts};
    int64_t lens[3] = {nu, L, nu};
    for (int k = 0; k < 3 && k + 1 < (int)n->n_outputs; k++) {
        if ((st = oq_tensor_alloc(out[k + 1], OQ_INT64, 1, &lens[k])) != OQ_OK)
            goto done;
        if (lens[k])
            memcpy(out[k + 1]->data, src[k], (size_t)lens[k] * sizeof(int64_t));
    }
done:
    free(order);
    free(first);
    free(inverse);
    free(counts);
    return st;
}
const oq_op_def oq_op_unique = {NULL, NULL, unique_run, NULL};
