/* ops/shape: operators that compute shapes or move whole blocks of data without
 * looking at values — Shape, Size, Reshape, Flatten, Squeeze, Unsqueeze,
 * Transpose, Concat, Split, Expand, Tile, DepthToSpace, SpaceToDepth. All are
 * dtype-agnostic (copies by element size; string elements are strdup'ed). */
#include "ops/op.h"

#include <stdlib.h>
#include <string.h>

/* Copies larger than this are split over the thread pool. */
#define PAR_BYTES ((size_t)1 << 17)

static size_t elem_size(oq_dtype t) { return t == OQ_STRING ? sizeof(char *) : oq_dtype_size(t); }

/* After a byte copy of a string tensor the output shares the input's pointers;
 * give it its own copies. On failure the rest are cleared so nothing is freed twice. */
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

/* Number of tasks for work of `bytes` bytes over `items` independent items. */
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

static void task_range(size_t task, size_t n_tasks, size_t items, size_t *lo, size_t *hi)
{
    *lo = items * task / n_tasks;
    *hi = items * (task + 1) / n_tasks;
}

/* Reads a 1-D integer tensor (int32 or int64) of at most max values. */
static oq_status read_ints(const oq_op_node *n, const oq_tensor *t, const char *what, int64_t *vals, size_t max,
                           size_t *count)
{
    if (t->dtype != OQ_INT64 && t->dtype != OQ_INT32)
        return oq_op_error(n, OQ_E_TYPE, "%s must be int64, not %s", what, oq_dtype_name(t->dtype));
    if (t->ndim > 1)
        return oq_op_error(n, OQ_E_SHAPE, "%s must be 1-D, it has rank %d", what, t->ndim);
    int64_t c = oq_tensor_numel(t);
    if (c < 0 || (size_t)c > max)
        return oq_op_error(n, OQ_E_SHAPE, "%s has %lld values; at most %zu are supported", what, (long long)c, max);
    for (int64_t i = 0; i < c; i++)
        vals[i] = t->dtype == OQ_INT64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
    *count = (size_t)c;
    return OQ_OK;
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

/* Whole-tensor copy for ops that only change the shape. */
typedef struct copy_ctx {
    const char *src;
    char *dst;
    size_t bytes, n_tasks;
} copy_ctx;

static void copy_task(void *p, size_t task, size_t thread)
{
    (void)thread;
    copy_ctx *c = p;
    size_t lo, hi;
    task_range(task, c->n_tasks, c->bytes, &lo, &hi);
    memcpy(c->dst + lo, c->src + lo, hi - lo);
}

static oq_status copy_data(oq_op_node *n, const oq_tensor *src, oq_tensor *dst)
{
    size_t bytes = src->nbytes < dst->nbytes ? src->nbytes : dst->nbytes;
    if (bytes && src->data != dst->data) {
        copy_ctx c = {src->data, dst->data, bytes, n_tasks_for(n->tp, bytes, bytes)};
        if (c.n_tasks == 1)
            memcpy(dst->data, src->data, bytes);
        else
            oq_parallel_for(n->tp, c.n_tasks, copy_task, &c);
    }
    return dup_strings(dst);
}

static oq_status reshape_like_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return copy_data(n, in[0], out[0]);
}

/* ---- Shape, Size ---- */
static oq_status shape_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = need_io(n, in, 1, 1, 1);
    if (st != OQ_OK)
        return st;
    int r = in[0]->ndim;
    int64_t start = n->opset >= 15 ? oq_node_attr_int(n->node, "start", 0) : 0;
    int64_t end = n->opset >= 15 ? oq_node_attr_int(n->node, "end", r) : r;
    if (start < 0)
        start += r;
    if (end < 0)
        end += r;
    start = start < 0 ? 0 : start > r ? r : start;
    end = end < 0 ? 0 : end > r ? r : end;
    int64_t len = end > start ? end - start : 0;
    oq_set_shape(out[0], OQ_INT64, 1, &len);
    return OQ_OK;
}

static oq_status shape_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    int r = in[0]->ndim;
    int64_t start = n->opset >= 15 ? oq_node_attr_int(n->node, "start", 0) : 0;
    if (start < 0)
        start += r;
    start = start < 0 ? 0 : start > r ? r : start;
    int64_t *o = out[0]->data;
    for (int64_t i = 0; i < out[0]->dims[0]; i++)
        o[i] = in[0]->dims[start + i];
    return OQ_OK;
}
const oq_op_def oq_op_shape = {NULL, shape_infer, shape_run, NULL};

static oq_status size_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = need_io(n, in, 1, 1, 1);
    if (st == OQ_OK)
        oq_set_shape(out[0], OQ_INT64, 0, NULL);
    return st;
}

static oq_status size_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    (void)n;
    *(int64_t *)out[0]->data = oq_tensor_numel(in[0]);
    return OQ_OK;
}
const oq_op_def oq_op_size = {NULL, size_infer, size_run, NULL};

/* ---- Reshape ---- */
static oq_status reshape_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    bool from_attr = n->opset < 5;
    oq_status st = need_io(n, in, from_attr ? 1 : 2, from_attr ? 1 : 2, 1);
    if (st != OQ_OK)
        return st;
    int64_t shape[OQ_MAX_DIMS];
    size_t r = 0;
    if (from_attr) {
        const int64_t *v;
        r = oq_node_attr_ints(n->node, "shape", &v);
        if (r > OQ_MAX_DIMS)
            return oq_op_error(n, OQ_E_UNSUPPORTED, "shape has %zu values; at most %d are supported", r, OQ_MAX_DIMS);
        for (size_t i = 0; i < r; i++)
            shape[i] = v[i];
    } else if ((st = read_ints(n, in[1], "shape", shape, OQ_MAX_DIMS, &r)) != OQ_OK) {
        return st;
    }
    bool allowzero = n->opset >= 14 && oq_node_attr_int(n->node, "allowzero", 0) != 0;
    int infer_at = -1;
    int64_t known = 1;
    for (size_t i = 0; i < r; i++) {
        if (shape[i] == 0 && !allowzero) {
            if ((int)i >= in[0]->ndim)
                return oq_op_error(n, OQ_E_SHAPE, "shape[%zu] is 0 (copy) but the input has rank %d", i, in[0]->ndim);
            shape[i] = in[0]->dims[i];
        }
        if (shape[i] == -1) {
            if (infer_at >= 0)
                return oq_op_error(n, OQ_E_SHAPE, "shape has more than one -1");
            infer_at = (int)i;
            continue;
        }
        if (shape[i] < 0 || __builtin_mul_overflow(known, shape[i], &known))
            return oq_op_error(n, OQ_E_SHAPE, "shape[%zu] is %lld", i, (long long)shape[i]);
    }
    int64_t numel = oq_tensor_numel(in[0]);
    if (infer_at >= 0) {
        if (known == 0 || numel % known)
            return oq_op_error(n, OQ_E_SHAPE, "cannot infer the -1 dimension: %lld elements over %lld", (long long)numel,
                               (long long)known);
        shape[infer_at] = numel / known;
    } else if (known != numel) {
        char a[160], b[160];
        return oq_op_error(n, OQ_E_SHAPE, "cannot reshape %s to %s", oq_shape_str(in[0]->ndim, in[0]->dims, a, sizeof a),
                           oq_shape_str((int)r, shape, b, sizeof b));
    }
    oq_set_shape(out[0], in[0]->dtype, (int)r, shape);
    return OQ_OK;
}
const oq_op_def oq_op_reshape = {NULL, reshape_infer, reshape_like_run, NULL};

/* ---- Flatten ---- */
static oq_status flatten_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = need_io(n, in, 1, 1, 1);
    if (st != OQ_OK)
        return st;
    int r = in[0]->ndim;
    int64_t axis = oq_node_attr_int(n->node, "axis", 1);
    if (axis < 0)
        axis += r;
    if (axis < 0 || axis > r)
        return oq_op_error(n, OQ_E_INVALID_ARG, "axis %lld is out of range for rank %d",
                           (long long)oq_node_attr_int(n->node, "axis", 1), r);
    int64_t d[2] = {1, 1};
    for (int i = 0; i < r; i++)
        d[i < axis ? 0 : 1] *= in[0]->dims[i];
    oq_set_shape(out[0], in[0]->dtype, 2, d);
    return OQ_OK;
}
const oq_op_def oq_op_flatten = {NULL, flatten_infer, reshape_like_run, NULL};

/* ---- Squeeze, Unsqueeze ---- */
/* Axes from the attribute (before opset 13) or the optional second input. */
static oq_status get_axes(const oq_op_node *n, const oq_tensor *const *in, size_t input, int64_t *axes, size_t *count,
                          bool *given)
{
    *count = 0;
    *given = false;
    if (n->opset < 13) {
        const int64_t *v;
        size_t c = oq_node_attr_ints(n->node, "axes", &v);
        if (!v)
            return OQ_OK;
        if (c > OQ_MAX_DIMS)
            return oq_op_error(n, OQ_E_INVALID_ARG, "too many axes (%zu)", c);
        memcpy(axes, v, c * sizeof *v);
        *count = c;
        *given = true;
        return OQ_OK;
    }
    if (n->n_inputs <= input || !in[input])
        return OQ_OK;
    *given = true;
    return read_ints(n, in[input], "axes", axes, OQ_MAX_DIMS, count);
}

static oq_status squeeze_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = need_io(n, in, 1, 2, 1);
    if (st != OQ_OK)
        return st;
    int64_t axes[OQ_MAX_DIMS];
    size_t na;
    bool given;
    if ((st = get_axes(n, in, 1, axes, &na, &given)) != OQ_OK)
        return st;
    given = given && na > 0; /* an empty axes list means "all size-1 axes", as onnxruntime reads it */
    int r = in[0]->ndim;
    bool drop[OQ_MAX_DIMS] = {false};
    for (size_t i = 0; i < na; i++) {
        int a;
        if ((st = oq_norm_axis(n, axes[i], r, &a)) != OQ_OK)
            return st;
        if (in[0]->dims[a] != 1)
            return oq_op_error(n, OQ_E_SHAPE, "cannot squeeze axis %d of size %lld", a, (long long)in[0]->dims[a]);
        drop[a] = true;
    }
    int64_t d[OQ_MAX_DIMS];
    int k = 0;
    for (int i = 0; i < r; i++)
        if (!(given ? drop[i] : in[0]->dims[i] == 1))
            d[k++] = in[0]->dims[i];
    oq_set_shape(out[0], in[0]->dtype, k, d);
    return OQ_OK;
}
const oq_op_def oq_op_squeeze = {NULL, squeeze_infer, reshape_like_run, NULL};

static oq_status unsqueeze_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = need_io(n, in, n->opset >= 13 ? 2 : 1, 2, 1);
    if (st != OQ_OK)
        return st;
    int64_t axes[OQ_MAX_DIMS];
    size_t na;
    bool given;
    if ((st = get_axes(n, in, 1, axes, &na, &given)) != OQ_OK)
        return st;
    if (!given)
        return oq_op_error(n, OQ_E_INVALID_ARG, "axes are required");
    int r = in[0]->ndim + (int)na;
    if (r > OQ_MAX_DIMS)
        return oq_op_error(n, OQ_E_UNSUPPORTED, "output rank %d is above %d", r, OQ_MAX_DIMS);
    bool ins[OQ_MAX_DIMS] = {false};
    for (size_t i = 0; i < na; i++) {
        int a;
        if ((st = oq_norm_axis(n, axes[i], r, &a)) != OQ_OK)
            return st;
        if (ins[a])
            return oq_op_error(n, OQ_E_INVALID_ARG, "axis %d is repeated", a);
        ins[a] = true;
    }
    int64_t d[OQ_MAX_DIMS];
    for (int i = 0, k = 0; i < r; i++)
        d[i] = ins[i] ? 1 : in[0]->dims[k++];
    oq_set_shape(out[0], in[0]->dtype, r, d);
    return OQ_OK;
}
const oq_op_def oq_op_unsqueeze = {NULL, unsqueeze_infer, reshape_like_run, NULL};

/* ---- Transpose ----
 * The permutation is first simplified: size-1 axes are dropped and axes that
 * stay adjacent are merged, so e.g. BERT's [0,2,1,3] becomes a copy of
 * contiguous rows and NCHW->NHWC a batch of 2-D transposes. */
typedef struct transpose_plan {
    int nd;
    int64_t dims[OQ_MAX_DIMS];    /* output dims */
    int64_t istride[OQ_MAX_DIMS]; /* input stride (elements) of each output axis */
    int64_t ostride[OQ_MAX_DIMS];
    size_t es;
} transpose_plan;

static void transpose_simplify(int nd, const int64_t *in_dims, const int *perm, size_t es, transpose_plan *p)
{
    int64_t d[OQ_MAX_DIMS];
    int map[OQ_MAX_DIMS], k = 0;
    for (int i = 0; i < nd; i++) /* new index of each kept input axis */
        map[i] = in_dims[i] == 1 ? -1 : k++;
    int pr[OQ_MAX_DIMS], m = 0;
    for (int i = 0; i < nd; i++) {
        if (in_dims[i] != 1)
            d[map[i]] = in_dims[i];
        if (map[perm[i]] >= 0)
            pr[m++] = map[perm[i]];
    }
    /* merge input axes a, a+1 that appear consecutively in the permutation */
    int64_t md[OQ_MAX_DIMS];
    int grp[OQ_MAX_DIMS], ng = 0; /* group id of each input axis */
    int first_of[OQ_MAX_DIMS];
    for (int i = 0; i < m; i++) {
        if (i > 0 && pr[i] == pr[i - 1] + 1) {
            grp[pr[i]] = grp[pr[i - 1]];
            md[grp[pr[i]]] *= d[pr[i]];
        } else {
            grp[pr[i]] = ng;
            md[ng] = d[pr[i]];
            first_of[ng] = pr[i];
            ng++;
        }
    }
    /* groups are numbered in output order; input order of groups is by first axis */
    int64_t gstride[OQ_MAX_DIMS];
    for (int g = 0; g < ng; g++) {
        int64_t s = 1;
        for (int h = 0; h < ng; h++)
            if (first_of[h] > first_of[g])
                s *= md[h];
        gstride[g] = s;
    }
    p->nd = ng;
    p->es = es;
    for (int g = 0; g < ng; g++) {
        p->dims[g] = md[g];
        p->istride[g] = gstride[g];
    }
    int64_t s = 1;
    for (int g = ng - 1; g >= 0; g--) {
        p->ostride[g] = s;
        s *= p->dims[g];
    }
}

typedef struct transpose_ctx {
    const transpose_plan *p;
    const char *src;
    char *dst;
    int inner_axis;    /* output axis whose input stride is 1 (blocked case), -1 when rows are contiguous */
    size_t n_outer, n_tasks;
} transpose_ctx;

#define TBLOCK 32

/* dst[i*ods + j] = src[j*iss + i] for a rows x cols block, element type T. */
#define TRANSPOSE_BLOCK(T)                                                                 \
    static void tblock_##T(const T *src, T *dst, int64_t rows, int64_t cols, int64_t iss, \
                           int64_t ods)                                                    \
    {                                                                                      \
        for (int64_t i0 = 0; i0 < rows; i0 += TBLOCK)                                      \
            for (int64_t j0 = 0; j0 < cols; j0 += TBLOCK) {                                \
                int64_t i1 = i0 + TBLOCK < rows ? i0 + TBLOCK : rows;                      \
                int64_t j1 = j0 + TBLOCK < cols ? j0 + TBLOCK : cols;                      \
                for (int64_t i = i0; i < i1; i++)                                          \
                    for (int64_t j = j0; j < j1; j++)                                      \
                        dst[i * ods + j] = src[j * iss + i];                               \
            }                                                                              \
    }
TRANSPOSE_BLOCK(uint8_t)
TRANSPOSE_BLOCK(uint16_t)
TRANSPOSE_BLOCK(uint32_t)
TRANSPOSE_BLOCK(uint64_t)

static void tblock_bytes(const char *src, char *dst, int64_t rows, int64_t cols, int64_t iss, int64_t ods, size_t es)
{
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            memcpy(dst + (size_t)(i * ods + j) * es, src + (size_t)(j * iss + i) * es, es);
}

/* Offsets of outer index o over the output axes other than skip1/skip2. */
static void outer_offsets(const transpose_plan *p, size_t o, int skip1, int skip2, int64_t *ioff, int64_t *ooff)
{
    int64_t io = 0, oo = 0;
    for (int a = p->nd - 1; a >= 0; a--) {
        if (a == skip1 || a == skip2)
            continue;
        int64_t i = (int64_t)(o % (size_t)p->dims[a]);
        o /= (size_t)p->dims[a];
        io += i * p->istride[a];
        oo += i * p->ostride[a];
    }
    *ioff = io;
    *ooff = oo;
}

static void transpose_task(void *vc, size_t task, size_t thread)
{
    (void)thread;
    transpose_ctx *c = vc;
    const transpose_plan *p = c->p;
    size_t lo, hi, es = p->es;
    task_range(task, c->n_tasks, c->n_outer, &lo, &hi);
    int last = p->nd - 1;
    if (c->inner_axis < 0) {
        size_t run = (size_t)p->dims[last] * es;
        for (size_t o = lo; o < hi; o++) {
            int64_t io, oo;
            outer_offsets(p, o, last, -1, &io, &oo);
            memcpy(c->dst + (size_t)oo * es, c->src + (size_t)io * es, run);
        }
        return;
    }
    /* rows = output axis k (input-contiguous), cols = last output axis */
    int k = c->inner_axis;
    int64_t rows = p->dims[k], cols = p->dims[last], iss = p->istride[last], ods = p->ostride[k];
    for (size_t o = lo; o < hi; o++) {
        int64_t io, oo;
        outer_offsets(p, o, k, last, &io, &oo);
        const char *s = c->src + (size_t)io * es;
        char *d = c->dst + (size_t)oo * es;
        switch (es) {
        case 1: tblock_uint8_t((const uint8_t *)s, (uint8_t *)d, rows, cols, iss, ods); break;
        case 2: tblock_uint16_t((const uint16_t *)s, (uint16_t *)d, rows, cols, iss, ods); break;
        case 4: tblock_uint32_t((const uint32_t *)s, (uint32_t *)d, rows, cols, iss, ods); break;
        case 8: tblock_uint64_t((const uint64_t *)s, (uint64_t *)d, rows, cols, iss, ods); break;
        default: tblock_bytes(s, d, rows, cols, iss, ods, es); break;
        }
    }
}

/* Transposes a dense array (no string fix-up). */
static void transpose_bytes(oq_threadpool *tp, const void *src, void *dst, int nd, const int64_t *in_dims,
                            const int *perm, size_t es)
{
    transpose_plan p;
    int64_t numel = oq_shape_numel(nd, in_dims);
    if (numel <= 0)
        return;
    transpose_simplify(nd, in_dims, perm, es, &p);
    if (p.nd <= 1) {
        memcpy(dst, src, (size_t)numel * es);
        return;
    }
    transpose_ctx c = {&p, src, dst, -1, 0, 0};
    int last = p.nd - 1;
    if (p.istride[last] != 1)
        for (int a = 0; a < p.nd; a++)
            if (p.istride[a] == 1)
                c.inner_axis = a;
    size_t inner = (size_t)p.dims[last] * (c.inner_axis >= 0 ? (size_t)p.dims[c.inner_axis] : 1);
    c.n_outer = (size_t)numel / inner;
    c.n_tasks = n_tasks_for(tp, c.n_outer, (size_t)numel * es);
    if (c.n_tasks == 1)
        transpose_task(&c, 0, 0);
    else
        oq_parallel_for(tp, c.n_tasks, transpose_task, &c);
}

static oq_status transpose_perm(const oq_op_node *n, int r, int *perm)
{
    const int64_t *v;
    size_t c = oq_node_attr_ints(n->node, "perm", &v);
    if (!v) {
        for (int i = 0; i < r; i++)
            perm[i] = r - 1 - i;
        return OQ_OK;
    }
    if ((int)c != r)
        return oq_op_error(n, OQ_E_INVALID_ARG, "perm has %zu entries for an input of rank %d", c, r);
    bool seen[OQ_MAX_DIMS] = {false};
    for (int i = 0; i < r; i++) {
        int64_t a = v[i] < 0 ? v[i] + r : v[i];
        if (a < 0 || a >= r || seen[a])
            return oq_op_error(n, OQ_E_INVALID_ARG, "perm is not a permutation of 0..%d", r - 1);
        seen[a] = true;
        perm[i] = (int)a;
    }
    return OQ_OK;
}

static oq_status transpose_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = need_io(n, in, 1, 1, 1);
    if (st != OQ_OK)
        return st;
    int perm[OQ_MAX_DIMS];
    if ((st = transpose_perm(n, in[0]->ndim, perm)) != OQ_OK)
        return st;
    int64_t d[OQ_MAX_DIMS];
    for (int i = 0; i < in[0]->ndim; i++)
        d[i] = in[0]->dims[perm[i]];
    oq_set_shape(out[0], in[0]->dtype, in[0]->ndim, d);
    return OQ_OK;
}

static oq_status transpose_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    int perm[OQ_MAX_DIMS];
    oq_status st = transpose_perm(n, in[0]->ndim, perm);
    if (st != OQ_OK)
        return st;
    transpose_bytes(n->tp, in[0]->data, out[0]->data, in[0]->ndim, in[0]->dims, perm, elem_size(in[0]->dtype));
    return dup_strings(out[0]);
}
const oq_op_def oq_op_transpose = {NULL, transpose_infer, transpose_run, NULL};

/* ---- Concat ---- */
/* Concat-1 made the axis optional with default 1; from opset 4 it is required. */
static int64_t concat_axis(const oq_op_node *n) { return oq_node_attr_int(n->node, "axis", n->opset < 4 ? 1 : 0); }

static oq_status concat_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    if (n->n_inputs < 1 || n->n_outputs < 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects at least one input");
    for (size_t i = 0; i < n->n_inputs; i++)
        if (!in[i])
            return oq_op_error(n, OQ_E_INVALID_ARG, "input %zu is missing", i);
    const oq_tensor *a = in[0];
    int ax;
    oq_status st = oq_norm_axis(n, concat_axis(n), a->ndim, &ax);
    if (st != OQ_OK)
        return st;
    if (a->ndim == 0)
        return oq_op_error(n, OQ_E_SHAPE, "cannot concatenate scalars");
    int64_t d[OQ_MAX_DIMS];
    memcpy(d, a->dims, sizeof d);
    for (size_t i = 1; i < n->n_inputs; i++) {
        const oq_tensor *b = in[i];
        if (b->dtype != a->dtype)
            return oq_op_error(n, OQ_E_TYPE, "input %zu is %s but input 0 is %s", i, oq_dtype_name(b->dtype),
                               oq_dtype_name(a->dtype));
        bool ok = b->ndim == a->ndim;
        for (int k = 0; ok && k < a->ndim; k++)
            ok = k == ax || b->dims[k] == a->dims[k];
        if (!ok) {
            char s1[160], s2[160];
            return oq_op_error(n, OQ_E_SHAPE, "input %zu has shape %s, incompatible with %s on axis %d", i,
                               oq_shape_str(b->ndim, b->dims, s1, sizeof s1), oq_shape_str(a->ndim, a->dims, s2, sizeof s2),
                               ax);
        }
        d[ax] += b->dims[ax];
    }
    oq_set_shape(out[0], a->dtype, a->ndim, d);
    return OQ_OK;
}

/* Concat and Split share one engine: each of `outer` rows of the big tensor is the
 * concatenation of the parts' rows (part i contributes rowb[i] bytes). */
typedef struct parts_ctx {
    char *big;
    size_t big_row, n_parts, outer, n_tasks;
    char **part;
    const size_t *rowb;
    bool split;
} parts_ctx;

static void parts_task(void *vc, size_t task, size_t thread)
{
    (void)thread;
    parts_ctx *c = vc;
    size_t lo, hi;
    task_range(task, c->n_tasks, c->outer, &lo, &hi);
    for (size_t o = lo; o < hi; o++) {
        char *row = c->big + o * c->big_row;
        for (size_t i = 0; i < c->n_parts; i++) {
            if (!c->rowb[i])
                continue;
            char *p = c->part[i] + o * c->rowb[i];
            if (c->split)
                memcpy(p, row, c->rowb[i]);
            else
                memcpy(row, p, c->rowb[i]);
            row += c->rowb[i];
        }
    }
}

static oq_status parts_copy(oq_op_node *n, char *big, size_t outer, size_t n_parts, char **part, const size_t *rowb,
                            bool split)
{
    size_t big_row = 0;
    for (size_t i = 0; i < n_parts; i++)
        big_row += rowb[i];
    parts_ctx c = {big, big_row, n_parts, outer, n_tasks_for(n->tp, outer, outer * big_row), part, rowb, split};
    if (c.n_tasks == 1)
        parts_task(&c, 0, 0);
    else
        oq_parallel_for(n->tp, c.n_tasks, parts_task, &c);
    return OQ_OK;
}

static oq_status concat_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    int ax;
    oq_norm_axis(n, concat_axis(n), in[0]->ndim, &ax);
    size_t es = elem_size(in[0]->dtype), outer = 1, inner = es;
    for (int k = 0; k < ax; k++)
        outer *= (size_t)out[0]->dims[k];
    for (int k = ax + 1; k < out[0]->ndim; k++)
        inner *= (size_t)out[0]->dims[k];
    char **parts = oq_calloc(n->n_inputs, sizeof *parts);
    size_t *rowb = oq_calloc(n->n_inputs, sizeof *rowb);
    oq_status st = OQ_OK;
    if (!parts || !rowb)
        st = oq_error(OQ_E_NOMEM, "out of memory");
    for (size_t i = 0; st == OQ_OK && i < n->n_inputs; i++) {
        parts[i] = in[i]->data;
        rowb[i] = (size_t)in[i]->dims[ax] * inner;
    }
    if (st == OQ_OK && oq_tensor_numel(out[0]) > 0)
        st = parts_copy(n, out[0]->data, outer, n->n_inputs, parts, rowb, false);
    free(parts);
    free(rowb);
    return st == OQ_OK ? dup_strings(out[0]) : st;
}
const oq_op_def oq_op_concat = {NULL, concat_infer, concat_run, NULL};

/* ---- Split ---- */
static oq_status split_sizes(const oq_op_node *n, const oq_tensor *const *in, int *axis, int64_t *sizes)
{
    const oq_tensor *x = in[0];
    oq_status st = oq_norm_axis(n, oq_node_attr_int(n->node, "axis", 0), x->ndim, axis);
    if (st != OQ_OK)
        return st;
    int64_t dim = x->dims[*axis];
    size_t no = n->n_outputs, cnt = 0;
    bool given = false;
    if (n->opset < 13 && !(n->opset < 2 && n->n_inputs > 1 && in[1])) { /* Split-1 also took an input */
        const int64_t *v;
        cnt = oq_node_attr_ints(n->node, "split", &v);
        if (v) {
            given = true;
            if (cnt == no)
                memcpy(sizes, v, no * sizeof *v);
        }
    } else if (n->n_inputs > 1 && in[1]) {
        given = true;
        if (in[1]->dtype != OQ_INT64 || in[1]->ndim != 1)
            return oq_op_error(n, OQ_E_TYPE, "split must be a 1-D int64 tensor");
        cnt = (size_t)in[1]->dims[0];
        if (cnt == no)
            memcpy(sizes, in[1]->data, no * sizeof(int64_t));
    }
    if (given) {
        if (cnt != no)
            return oq_op_error(n, OQ_E_INVALID_ARG, "split has %zu sizes for %zu outputs", cnt, no);
        int64_t sum = 0;
        for (size_t i = 0; i < no; i++) {
            if (sizes[i] < 0)
                return oq_op_error(n, OQ_E_INVALID_ARG, "split size %lld is negative", (long long)sizes[i]);
            sum += sizes[i];
        }
        if (sum != dim)
            return oq_op_error(n, OQ_E_SHAPE, "split sizes add up to %lld but axis %d has %lld", (long long)sum, *axis,
                               (long long)dim);
        return OQ_OK;
    }
    if (n->opset >= 18) {
        int64_t k = oq_node_attr_int(n->node, "num_outputs", (int64_t)no);
        if (k != (int64_t)no || k <= 0)
            return oq_op_error(n, OQ_E_INVALID_ARG, "num_outputs %lld does not match the %zu outputs", (long long)k, no);
        int64_t chunk = (dim + k - 1) / k;
        for (size_t i = 0; i < no; i++) {
            int64_t left = dim - chunk * (int64_t)i;
            sizes[i] = left < 0 ? 0 : left < chunk ? left : chunk;
        }
        return OQ_OK;
    }
    if (dim % (int64_t)no)
        return oq_op_error(n, OQ_E_SHAPE, "axis %d of size %lld does not split into %zu equal parts", *axis,
                           (long long)dim, no);
    for (size_t i = 0; i < no; i++)
        sizes[i] = dim / (int64_t)no;
    return OQ_OK;
}

static oq_status split_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = need_io(n, in, 1, 2, 1);
    if (st != OQ_OK)
        return st;
    int64_t *sizes = oq_calloc(n->n_outputs, sizeof *sizes);
    if (!sizes)
        return oq_error(OQ_E_NOMEM, "out of memory");
    int ax;
    st = split_sizes(n, in, &ax, sizes);
    for (size_t i = 0; st == OQ_OK && i < n->n_outputs; i++) {
        int64_t d[OQ_MAX_DIMS];
        memcpy(d, in[0]->dims, sizeof d);
        d[ax] = sizes[i];
        oq_set_shape(out[i], in[0]->dtype, in[0]->ndim, d);
    }
    free(sizes);
    return st;
}

static oq_status split_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    int ax;
    oq_norm_axis(n, oq_node_attr_int(n->node, "axis", 0), in[0]->ndim, &ax);
    size_t es = elem_size(in[0]->dtype), outer = 1, inner = es;
    for (int k = 0; k < ax; k++)
        outer *= (size_t)in[0]->dims[k];
    for (int k = ax + 1; k < in[0]->ndim; k++)
        inner *= (size_t)in[0]->dims[k];
    char **parts = oq_calloc(n->n_outputs, sizeof *parts);
    size_t *rowb = oq_calloc(n->n_outputs, sizeof *rowb);
    oq_status st = OQ_OK;
    if (!parts || !rowb)
        st = oq_error(OQ_E_NOMEM, "out of memory");
    for (size_t i = 0; st == OQ_OK && i < n->n_outputs; i++) {
        parts[i] = out[i]->data;
        rowb[i] = (size_t)out[i]->dims[ax] * inner;
    }
    if (st == OQ_OK && oq_tensor_numel(in[0]) > 0)
        st = parts_copy(n, in[0]->data, outer, n->n_outputs, parts, rowb, true);
    for (size_t i = 0; st == OQ_OK && i < n->n_outputs; i++)
        st = dup_strings(out[i]);
    free(parts);
    free(rowb);
    return st;
}
const oq_op_def oq_op_split = {NULL, split_infer, split_run, NULL};

/* ---- Expand, Tile ----
 * Both fill the output one innermost row at a time: a row is either copied
 * from the input, replicated from one element, or (Tile) repeated. */
typedef struct bcast_ctx {
    const char *src;
    char *dst;
    int nd;
    int64_t odims[OQ_MAX_DIMS], idims[OQ_MAX_DIMS], istride[OQ_MAX_DIMS];
    size_t es, n_rows, n_tasks;
    bool tile;
} bcast_ctx;

static void bcast_task(void *vc, size_t task, size_t thread)
{
    (void)thread;
    bcast_ctx *c = vc;
    size_t lo, hi, es = c->es;
    task_range(task, c->n_tasks, c->n_rows, &lo, &hi);
    int last = c->nd - 1;
    int64_t ocols = c->odims[last], icols = c->idims[last];
    for (size_t r = lo; r < hi; r++) {
        size_t o = r;
        int64_t ioff = 0;
        for (int a = last - 1; a >= 0; a--) {
            int64_t i = (int64_t)(o % (size_t)c->odims[a]);
            o /= (size_t)c->odims[a];
            ioff += (i % c->idims[a]) * c->istride[a];
        }
        const char *s = c->src + (size_t)ioff * es;
        char *d = c->dst + r * (size_t)ocols * es;
        if (icols == ocols) {
            memcpy(d, s, (size_t)ocols * es);
        } else if (icols == 1 && !c->tile) {
            if (es == 4) {
                uint32_t v;
                memcpy(&v, s, 4);
                for (int64_t j = 0; j < ocols; j++)
                    ((uint32_t *)d)[j] = v;
            } else {
                for (int64_t j = 0; j < ocols; j++)
                    memcpy(d + (size_t)j * es, s, es);
            }
        } else {
            for (int64_t j = 0; j < ocols; j += icols)
                memcpy(d + (size_t)j * es, s, (size_t)icols * es);
        }
    }
}

static oq_status bcast_run(oq_op_node *n, const oq_tensor *x, oq_tensor *y, bool tile)
{
    int64_t numel = oq_tensor_numel(y);
    if (numel <= 0)
        return OQ_OK;
    bcast_ctx c;
    memset(&c, 0, sizeof c);
    c.src = x->data;
    c.dst = y->data;
    c.tile = tile;
    c.es = elem_size(x->dtype);
    if (y->ndim == 0) {
        memcpy(c.dst, c.src, c.es);
        return dup_strings(y);
    }
    c.nd = y->ndim;
    int off = y->ndim - x->ndim;
    for (int a = 0; a < c.nd; a++) {
        c.odims[a] = y->dims[a];
        c.idims[a] = a < off ? 1 : x->dims[a - off];
    }
    int64_t s = 1;
    for (int a = c.nd - 1; a >= 0; a--) {
        c.istride[a] = s;
        s *= c.idims[a];
    }
    c.n_rows = (size_t)(numel / c.odims[c.nd - 1]);
    c.n_tasks = n_tasks_for(n->tp, c.n_rows, (size_t)numel * c.es);
    if (c.n_tasks == 1)
        bcast_task(&c, 0, 0);
    else
        oq_parallel_for(n->tp, c.n_tasks, bcast_task, &c);
    return dup_strings(y);
}

static oq_status expand_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = need_io(n, in, 2, 2, 1);
    if (st != OQ_OK)
        return st;
    int64_t shape[OQ_MAX_DIMS], d[OQ_MAX_DIMS];
    size_t r;
    int nd;
    if ((st = read_ints(n, in[1], "shape", shape, OQ_MAX_DIMS, &r)) != OQ_OK)
        return st;
    for (size_t i = 0; i < r; i++)
        if (shape[i] < 0)
            return oq_op_error(n, OQ_E_SHAPE, "shape[%zu] is negative", i);
    if ((st = oq_broadcast_shape(n, in[0]->ndim, in[0]->dims, (int)r, shape, &nd, d)) != OQ_OK)
        return st;
    oq_set_shape(out[0], in[0]->dtype, nd, d);
    return OQ_OK;
}

static oq_status expand_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return bcast_run(n, in[0], out[0], false);
}
const oq_op_def oq_op_expand = {NULL, expand_infer, expand_run, NULL};

static oq_status tile_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = need_io(n, in, 2, 2, 1);
    if (st != OQ_OK)
        return st;
    int64_t rep[OQ_MAX_DIMS], d[OQ_MAX_DIMS];
    size_t r;
    if ((st = read_ints(n, in[1], "repeats", rep, OQ_MAX_DIMS, &r)) != OQ_OK)
        return st;
    if ((int)r != in[0]->ndim)
        return oq_op_error(n, OQ_E_SHAPE, "repeats has %zu values for an input of rank %d", r, in[0]->ndim);
    for (size_t i = 0; i < r; i++) {
        if (rep[i] < 0 || __builtin_mul_overflow(in[0]->dims[i], rep[i], &d[i]))
            return oq_op_error(n, OQ_E_INVALID_ARG, "repeats[%zu] = %lld is invalid", i, (long long)rep[i]);
    }
    oq_set_shape(out[0], in[0]->dtype, (int)r, d);
    return OQ_OK;
}

static oq_status tile_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    return bcast_run(n, in[0], out[0], true);
}
const oq_op_def oq_op_tile = {NULL, tile_infer, tile_run, NULL};

/* ---- DepthToSpace, SpaceToDepth: a 6-D transpose ---- */
static oq_status d2s_params(oq_op_node *n, const oq_tensor *const *in, bool to_space, int64_t *bs, int64_t *od)
{
    oq_status st = need_io(n, in, 1, 1, 1);
    if (st != OQ_OK)
        return st;
    const oq_tensor *x = in[0];
    if (x->ndim != 4)
        return oq_op_error(n, OQ_E_SHAPE, "input must be 4-D (NCHW), it has rank %d", x->ndim);
    *bs = oq_node_attr_int(n->node, "blocksize", 0);
    if (*bs <= 0 || *bs > (1 << 20))
        return oq_op_error(n, OQ_E_INVALID_ARG, "blocksize %lld is out of range", (long long)*bs);
    const char *mode = oq_node_attr_string(n->node, "mode", "DCR");
    if (to_space && strcmp(mode, "DCR") && strcmp(mode, "CRD"))
        return oq_op_error(n, OQ_E_INVALID_ARG, "unknown mode '%s'", mode);
    int64_t b = *bs;
    if (to_space) {
        if (x->dims[1] % (b * b))
            return oq_op_error(n, OQ_E_SHAPE, "channels %lld are not a multiple of blocksize^2", (long long)x->dims[1]);
        od[0] = x->dims[0], od[1] = x->dims[1] / (b * b), od[2] = x->dims[2] * b, od[3] = x->dims[3] * b;
    } else {
        if (x->dims[2] % b || x->dims[3] % b)
            return oq_op_error(n, OQ_E_SHAPE, "height and width must be multiples of the blocksize");
        od[0] = x->dims[0], od[1] = x->dims[1] * b * b, od[2] = x->dims[2] / b, od[3] = x->dims[3] / b;
    }
    return OQ_OK;
}

static oq_status d2s_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    int64_t bs, od[4];
    oq_status st = d2s_params(n, in, true, &bs, od);
    if (st == OQ_OK)
        oq_set_shape(out[0], in[0]->dtype, 4, od);
    return st;
}

static oq_status d2s_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    const int64_t *x = in[0]->dims;
    int64_t b = oq_node_attr_int(n->node, "blocksize", 1), c = x[1] / (b * b);
    bool crd = !strcmp(oq_node_attr_string(n->node, "mode", "DCR"), "CRD");
    int64_t d[6] = {x[0], b, b, c, x[2], x[3]};
    int perm[6] = {0, 3, 4, 1, 5, 2};
    if (crd) {
        int64_t d2[6] = {x[0], c, b, b, x[2], x[3]};
        int p2[6] = {0, 1, 4, 2, 5, 3};
        memcpy(d, d2, sizeof d);
        memcpy(perm, p2, sizeof perm);
    }
    transpose_bytes(n->tp, in[0]->data, out[0]->data, 6, d, perm, elem_size(in[0]->dtype));
    return dup_strings(out[0]);
}
const oq_op_def oq_op_depth_to_space = {NULL, d2s_infer, d2s_run, NULL};

static oq_status s2d_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    int64_t bs, od[4];
    oq_status st = d2s_params(n, in, false, &bs, od);
    if (st == OQ_OK)
        oq_set_shape(out[0], in[0]->dtype, 4, od);
    return st;
}

static oq_status s2d_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    const int64_t *x = in[0]->dims;
    int64_t b = oq_node_attr_int(n->node, "blocksize", 1);
    int64_t d[6] = {x[0], x[1], x[2] / b, b, x[3] / b, b};
    int perm[6] = {0, 3, 5, 1, 2, 4};
    transpose_bytes(n->tp, in[0]->data, out[0]->data, 6, d, perm, elem_size(in[0]->dtype));
    return dup_strings(out[0]);
}
const oq_op_def oq_op_space_to_depth = {NULL, s2d_infer, s2d_run, NULL};
