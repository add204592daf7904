/* ops/slice: strided views copied out — Slice (attributes before opset 10,
 * inputs after; negative steps; clamping as numpy does) and ReverseSequence.
 * Copies move the longest contiguous runs the view allows, split over the pool. */
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

/* ---- Slice ---- */
typedef struct slice_plan {
    int nd;
    int64_t start[OQ_MAX_DIMS], step[OQ_MAX_DIMS], count[OQ_MAX_DIMS];
} slice_plan;

static oq_status read_vec(const oq_op_node *n, const oq_tensor *t, const char *what, int64_t *v, size_t *cnt)
{
    if (t->dtype != OQ_INT64 && t->dtype != OQ_INT32)
        return oq_op_error(n, OQ_E_TYPE, "%s must be int32 or int64", what);
    int64_t c = oq_tensor_numel(t);
    if (t->ndim != 1 || c > OQ_MAX_DIMS)
        return oq_op_error(n, OQ_E_SHAPE, "%s must be 1-D with at most %d values", what, OQ_MAX_DIMS);
    for (int64_t i = 0; i < c; i++)
        v[i] = t->dtype == OQ_INT64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
    *cnt = (size_t)c;
    return OQ_OK;
}

static oq_status slice_plan_make(const oq_op_node *n, const oq_tensor *const *in, slice_plan *p)
{
    if (n->n_inputs < 1 || !in[0] || n->n_outputs < 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "data input is missing");
    const oq_tensor *x = in[0];
    int64_t starts[OQ_MAX_DIMS], ends[OQ_MAX_DIMS], axes[OQ_MAX_DIMS], steps[OQ_MAX_DIMS];
    size_t ns, ne, na = 0, nst = 0;
    bool have_axes = false, have_steps = false;
    oq_status st;
    if (n->opset < 10) {
        const int64_t *v;
        ns = oq_node_attr_ints(n->node, "starts", &v);
        if (!v || ns > OQ_MAX_DIMS)
            return oq_op_error(n, OQ_E_INVALID_ARG, "starts attribute is missing or too long");
        memcpy(starts, v, ns * sizeof *v);
        ne = oq_node_attr_ints(n->node, "ends", &v);
        if (!v || ne > OQ_MAX_DIMS)
            return oq_op_error(n, OQ_E_INVALID_ARG, "ends attribute is missing or too long");
        memcpy(ends, v, ne * sizeof *v);
        na = oq_node_attr_ints(n->node, "axes", &v);
        if (v) {
            if (na > OQ_MAX_DIMS)
                return oq_op_error(n, OQ_E_INVALID_ARG, "too many axes");
            memcpy(axes, v, na * sizeof *v);
            have_axes = true;
        }
    } else {
        if (n->n_inputs < 3 || !in[1] || !in[2])
            return oq_op_error(n, OQ_E_INVALID_ARG, "starts and ends inputs are required");
        if ((st = read_vec(n, in[1], "starts", starts, &ns)) != OQ_OK ||
            (st = read_vec(n, in[2], "ends", ends, &ne)) != OQ_OK)
            return st;
        if (n->n_inputs > 3 && in[3]) {
            if ((st = read_vec(n, in[3], "axes", axes, &na)) != OQ_OK)
                return st;
            have_axes = true;
        }
        if (n->n_inputs > 4 && in[4]) {
            if ((st = read_vec(n, in[4], "steps", steps, &nst)) != OQ_OK)
                return st;
            have_steps = true;
        }
    }
    if (ne != ns || (have_axes && na != ns) || (have_steps && nst != ns))
        return oq_op_error(n, OQ_E_INVALID_ARG, "starts, ends, axes and steps must have the same length");
    p->nd = x->ndim;
    for (int a = 0; a < x->ndim; a++) {
        p->start[a] = 0;
        p->step[a] = 1;
        p->count[a] = x->dims[a];
    }
    bool seen[OQ_MAX_DIMS] = {false};
    for (size_t i = 0; i < ns; i++) {
        int a;
        if ((st = oq_norm_axis(n, have_axes ? axes[i] : (int64_t)i, x->ndim, &a)) != OQ_OK)
            return st;
        if (seen[a])
            return oq_op_error(n, OQ_E_INVALID_ARG, "axis %d is repeated", a);
        seen[a] = true;
        int64_t dim = x->dims[a], step = have_steps ? steps[i] : 1, s = starts[i], e = ends[i];
        if (step == 0)
            return oq_op_error(n, OQ_E_INVALID_ARG, "step on axis %d is 0", a);
        if (step < -INT64_MAX) /* so that -step exists */
            step = -INT64_MAX;
        if (s < 0)
            s += dim;
        if (e < 0)
            e += dim;
        int64_t count;
        if (step > 0) {
            s = s < 0 ? 0 : s > dim ? dim : s;
            e = e < 0 ? 0 : e > dim ? dim : e;
            count = e > s ? (e - s - 1) / step + 1 : 0;
        } else {
            s = s < 0 ? -1 : s > dim - 1 ? dim - 1 : s;
            e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
            count = s > e ? (s - e - 1) / (-step) + 1 : 0;
        }
        p->start[a] = count ? s : 0;
        p->step[a] = step;
        p->count[a] = count;
    }
    return OQ_OK;
}

static oq_status slice_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    slice_plan p;
    oq_status st = slice_plan_make(n, in, &p);
    if (st == OQ_OK)
        oq_set_shape(out[0], in[0]->dtype, p.nd, p.count);
    return st;
}

typedef struct slice_ctx {
    const char *src;
    char *dst;
    int outer_nd; /* axes [0, outer_nd) are walked; the rest is one contiguous run */
    int64_t start[OQ_MAX_DIMS], step[OQ_MAX_DIMS], count[OQ_MAX_DIMS], stride[OQ_MAX_DIMS];
    int64_t run_off; /* element offset of the run within the inner block */
    size_t run_bytes, es, n_outer, n_tasks;
} slice_ctx;

static void slice_task(void *vc, size_t task, size_t thread)
{
    (void)thread;
    slice_ctx *c = vc;
    size_t lo = c->n_outer * task / c->n_tasks, hi = c->n_outer * (task + 1) / c->n_tasks;
    int64_t idx[OQ_MAX_DIMS];
    size_t r = lo;
    for (int a = c->outer_nd - 1; a >= 0; a--) {
        idx[a] = (int64_t)(r % (size_t)c->count[a]);
        r /= (size_t)c->count[a];
    }
    for (size_t o = lo; o < hi; o++) {
        int64_t off = c->run_off;
        for (int a = 0; a < c->outer_nd; a++)
            off += (c->start[a] + idx[a] * c->step[a]) * c->stride[a];
        memcpy(c->dst + o * c->run_bytes, c->src + (size_t)off * c->es, c->run_bytes);
        for (int a = c->outer_nd - 1; a >= 0; a--) {
            if (++idx[a] < c->count[a])
                break;
            idx[a] = 0;
        }
    }
}

static oq_status slice_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    slice_plan p;
    oq_status st = slice_plan_make(n, in, &p);
    if (st != OQ_OK)
        return st;
    const oq_tensor *x = in[0];
    int64_t total = oq_tensor_numel(out[0]);
    if (total <= 0)
        return OQ_OK;
    slice_ctx c;
    memset(&c, 0, sizeof c);
    c.src = x->data;
    c.dst = out[0]->data;
    c.es = elem_size(x->dtype);
    int64_t s = 1;
    for (int a = p.nd - 1; a >= 0; a--) {
        c.stride[a] = s;
        s *= x->dims[a];
    }
    /* trailing axes taken whole join the run; then one more axis with step 1 */
    int a = p.nd - 1;
    int64_t run = 1;
    while (a >= 0 && p.step[a] == 1 && p.start[a] == 0 && p.count[a] == x->dims[a])
        run *= x->dims[a--];
    if (a >= 0 && p.step[a] == 1) {
        run *= p.count[a];
        c.run_off = p.start[a] * c.stride[a];
        a--;
    }
    c.outer_nd = a + 1;
    for (int k = 0; k < c.outer_nd; k++) {
        c.start[k] = p.start[k];
        c.step[k] = p.step[k];
        c.count[k] = p.count[k];
    }
    c.run_bytes = (size_t)run * c.es;
    c.n_outer = (size_t)(total / run);
    size_t th = (size_t)oq_threadpool_size(n->tp), bytes = (size_t)total * c.es;
    c.n_tasks = 1;
    if (th > 1 && bytes >= PAR_BYTES && c.n_outer > 1) {
        c.n_tasks = th * 4 < c.n_outer ? th * 4 : c.n_outer;
        if (c.n_tasks > bytes / (PAR_BYTES / 4))
            c.n_tasks = bytes / (PAR_BYTES / 4);
        if (!c.n_tasks)
            c.n_tasks = 1;
    }
    if (c.n_tasks == 1)
        slice_task(&c, 0, 0);
    else
        oq_parallel_for(n->tp, c.n_tasks, slice_task, &c);
    return dup_strings(out[0]);
}
const oq_op_def oq_op_slice = {NULL, slice_infer, slice_run, NULL};

/* ---- ReverseSequence ---- */
static oq_status revseq_check(oq_op_node *n, const oq_tensor *const *in, int *tax, int *bax)
{
    if (n->n_inputs != 2 || !in[0] || !in[1] || n->n_outputs < 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects input and sequence_lens");
    const oq_tensor *x = in[0], *l = in[1];
    if (x->ndim < 2)
        return oq_op_error(n, OQ_E_SHAPE, "input must have rank >= 2");
    int64_t t = oq_node_attr_int(n->node, "time_axis", 0), b = oq_node_attr_int(n->node, "batch_axis", 1);
    if (!((t == 0 && b == 1) || (t == 1 && b == 0)))
        return oq_op_error(n, OQ_E_INVALID_ARG, "time_axis and batch_axis must be 0 and 1 in some order");
    *tax = (int)t;
    *bax = (int)b;
    if (l->dtype != OQ_INT64 || l->ndim != 1 || l->dims[0] != x->dims[b])
        return oq_op_error(n, OQ_E_SHAPE, "sequence_lens must be int64 of length batch (%lld)", (long long)x->dims[b]);
    const int64_t *lens = l->data;
    for (int64_t i = 0; i < l->dims[0]; i++)
        if (lens[i] < 0 || lens[i] > x->dims[t])
            return oq_op_error(n, OQ_E_INVALID_ARG, "sequence_lens[%lld] = %lld is out of range", (long long)i,
                               (long long)lens[i]);
    return OQ_OK;
}

static oq_status revseq_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    int t = 0, b = 1;
    oq_status st = revseq_check(n, in, &t, &b);
    if (st == OQ_OK)
        oq_set_shape(out[0], in[0]->dtype, in[0]->ndim, in[0]->dims);
    return st;
}

static oq_status revseq_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    int tax = 0, bax = 1;
    oq_status st = revseq_check(n, in, &tax, &bax);
    if (st != OQ_OK)
        return st;
    const oq_tensor *x = in[0];
    const int64_t *lens = in[1]->data;
    size_t es = elem_size(x->dtype), inner = es;
    for (int a = 2; a < x->ndim; a++)
        inner *= (size_t)x->dims[a];
    int64_t T = x->dims[tax], B = x->dims[bax];
    for (int64_t t = 0; t < T; t++)
        for (int64_t b = 0; b < B; b++) {
            int64_t src_t = t < lens[b] ? lens[b] - 1 - t : t;
            size_t so = (size_t)(tax == 0 ? src_t * B + b : b * T + src_t) * inner;
            size_t d = (size_t)(tax == 0 ? t * B + b : b * T + t) * inner;
            memcpy((char *)out[0]->data + d, (const char *)x->data + so, inner);
        }
    return dup_strings(out[0]);
}
const oq_op_def oq_op_reverse_sequence = {NULL, revseq_infer, revseq_run, NULL};
