/* ops/misc: tensor generators and small structural operators — ConstantOfShape,
 * Range, EyeLike, Trilu — and Einsum (a general strided contraction, enough for
 * the common one- and two-operand equations). */
#include "ops/op.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static oq_status need_io(const oq_op_node *n, const oq_tensor *const *in, size_t min_in, size_t max_in)
{
    if (n->n_inputs < min_in || n->n_inputs > max_in)
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects %zu to %zu inputs, got %zu", min_in, max_in, n->n_inputs);
    for (size_t i = 0; i < min_in; i++)
        if (!in[i])
            return oq_op_error(n, OQ_E_INVALID_ARG, "input %zu is missing", i);
    if (n->n_outputs < 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "expects an output");
    return OQ_OK;
}

/* Writes v (as double or int64) into element i of a numeric tensor. */
static void put_value(oq_tensor *t, int64_t i, double f, int64_t iv, bool is_int)
{
    void *d = t->data;
    switch (t->dtype) {
    case OQ_FLOAT: ((float *)d)[i] = is_int ? (float)iv : (float)f; break;
    case OQ_DOUBLE: ((double *)d)[i] = is_int ? (double)iv : f; break;
    case OQ_FLOAT16: ((uint16_t *)d)[i] = oq_float_to_half(is_int ? (float)iv : (float)f); break;
    case OQ_BFLOAT16: ((uint16_t *)d)[i] = oq_float_to_bf16(is_int ? (float)iv : (float)f); break;
    case OQ_INT8: ((int8_t *)d)[i] = (int8_t)(is_int ? iv : (int64_t)f); break;
    case OQ_UINT8: ((uint8_t *)d)[i] = (uint8_t)(is_int ? iv : (int64_t)f); break;
    case OQ_INT16: ((int16_t *)d)[i] = (int16_t)(is_int ? iv : (int64_t)f); break;
    case OQ_UINT16: ((uint16_t *)d)[i] = (uint16_t)(is_int ? iv : (int64_t)f); break;
    case OQ_INT32: ((int32_t *)d)[i] = (int32_t)(is_int ? iv : (int64_t)f); break;
    case OQ_UINT32: ((uint32_t *)d)[i] = (uint32_t)(is_int ? iv : (int64_t)f); break;
    case OQ_INT64: ((int64_t *)d)[i] = is_int ? iv : (int64_t)f; break;
    case OQ_UINT64: ((uint64_t *)d)[i] = (uint64_t)(is_int ? iv : (int64_t)f); break;
    case OQ_BOOL: ((uint8_t *)d)[i] = (is_int ? iv : f) != 0; break;
    default: break;
    }
}

static bool is_float_type(oq_dtype t)
{
    return t == OQ_FLOAT || t == OQ_DOUBLE || t == OQ_FLOAT16 || t == OQ_BFLOAT16;
}

/* ---- ConstantOfShape ---- */
static oq_status cos_value(const oq_op_node *n, const oq_tensor **v)
{
    const oq_attr *a = oq_node_attr(n->node, "value");
    *v = NULL;
    if (!a)
        return OQ_OK;
    if (!a->t || oq_tensor_numel(a->t) != 1)
        return oq_op_error(n, OQ_E_INVALID_ARG, "value must be a one-element tensor");
    if (a->t->dtype == OQ_STRING || oq_dtype_size(a->t->dtype) == 0)
        return oq_op_error(n, OQ_E_TYPE, "value of type %s is not supported", oq_dtype_name(a->t->dtype));
    *v = a->t;
    return OQ_OK;
}

static oq_status cos_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = need_io(n, in, 1, 1);
    const oq_tensor *v;
    if (st != OQ_OK || (st = cos_value(n, &v)) != OQ_OK)
        return st;
    const oq_tensor *s = in[0];
    if (s->dtype != OQ_INT64 || s->ndim != 1)
        return oq_op_error(n, OQ_E_TYPE, "the shape input must be a 1-D int64 tensor");
    if (s->dims[0] > OQ_MAX_DIMS)
        return oq_op_error(n, OQ_E_UNSUPPORTED, "rank %lld is above %d", (long long)s->dims[0], OQ_MAX_DIMS);
    const int64_t *d = s->data;
    for (int64_t i = 0; i < s->dims[0]; i++)
        if (d[i] < 0)
            return oq_op_error(n, OQ_E_SHAPE, "shape[%lld] is negative", (long long)i);
    oq_set_shape(out[0], v ? v->dtype : OQ_FLOAT, (int)s->dims[0], d);
    return OQ_OK;
}

static oq_status cos_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    (void)in;
    const oq_tensor *v;
    cos_value(n, &v);
    char *d = out[0]->data;
    size_t es = v ? oq_dtype_size(v->dtype) : 4;
    bool zero = true;
    for (size_t b = 0; v && b < es; b++)
        zero &= ((const char *)v->data)[b] == 0;
    if (zero) {
        memset(d, 0, out[0]->nbytes);
        return OQ_OK;
    }
    int64_t cnt = oq_tensor_numel(out[0]);
    if (es == 4)
        for (int64_t i = 0; i < cnt; i++)
            memcpy(d + (size_t)i * 4, v->data, 4);
    else
        for (int64_t i = 0; i < cnt; i++)
            memcpy(d + (size_t)i * es, v->data, es);
    return OQ_OK;
}
const oq_op_def oq_op_constant_of_shape = {NULL, cos_infer, cos_run, NULL};

/* ---- Range ---- */
static oq_status range_count(oq_op_node *n, const oq_tensor *const *in, int64_t *count)
{
    oq_status st = need_io(n, in, 3, 3);
    if (st != OQ_OK)
        return st;
    oq_dtype t = in[0]->dtype;
    for (int i = 0; i < 3; i++) {
        if (in[i]->dtype != t)
            return oq_op_error(n, OQ_E_TYPE, "start, limit and delta must have one type");
        if (oq_tensor_numel(in[i]) != 1)
            return oq_op_error(n, OQ_E_SHAPE, "input %d must be a scalar", i);
    }
    if (t != OQ_FLOAT && t != OQ_DOUBLE && t != OQ_INT16 && t != OQ_INT32 && t != OQ_INT64)
        return oq_op_error(n, OQ_E_TYPE, "type %s is not supported", oq_dtype_name(t));
    if (is_float_type(t)) {
        double s = oq_tensor_get_f64(in[0], 0), l = oq_tensor_get_f64(in[1], 0), d = oq_tensor_get_f64(in[2], 0);
        if (d == 0 || !isfinite(s) || !isfinite(l) || !isfinite(d))
            return oq_op_error(n, OQ_E_INVALID_ARG, "delta must be nonzero and all values finite");
        double c = ceil((l - s) / d);
        if (c > 1e12)
            return oq_op_error(n, OQ_E_SHAPE, "range of %g elements is too large", c);
        *count = c > 0 ? (int64_t)c : 0;
    } else {
        int64_t s = oq_tensor_get_i64(in[0], 0), l = oq_tensor_get_i64(in[1], 0), d = oq_tensor_get_i64(in[2], 0);
        if (d == 0)
            return oq_op_error(n, OQ_E_INVALID_ARG, "delta must be nonzero");
        int64_t span;
        if (__builtin_sub_overflow(l, s, &span))
            return oq_op_error(n, OQ_E_INVALID_ARG, "range is too large");
        int64_t c = span / d + ((span % d) != 0 && ((span < 0) == (d < 0)));
        *count = c > 0 ? c : 0;
    }
    return OQ_OK;
}

static oq_status range_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    int64_t c;
    oq_status st = range_count(n, in, &c);
    if (st == OQ_OK)
        oq_set_shape(out[0], in[0]->dtype, 1, &c);
    return st;
}

static oq_status range_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    (void)n;
    int64_t c = out[0]->dims[0];
    if (is_float_type(in[0]->dtype)) {
        double s = oq_tensor_get_f64(in[0], 0), d = oq_tensor_get_f64(in[2], 0);
        if (in[0]->dtype == OQ_FLOAT) { /* accumulate in float, as numpy and onnxruntime do */
            float v = (float)s, fd = (float)d;
            for (int64_t i = 0; i < c; i++, v += fd)
                ((float *)out[0]->data)[i] = v;
        } else {
            for (int64_t i = 0; i < c; i++)
                put_value(out[0], i, s + (double)i * d, 0, false);
        }
    } else {
        int64_t s = oq_tensor_get_i64(in[0], 0), d = oq_tensor_get_i64(in[2], 0);
        for (int64_t i = 0; i < c; i++)
            put_value(out[0], i, 0, s + i * d, true);
    }
    return OQ_OK;
}
const oq_op_def oq_op_range = {NULL, range_infer, range_run, NULL};

/* ---- EyeLike ---- */
static oq_status eyelike_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = need_io(n, in, 1, 1);
    if (st != OQ_OK)
        return st;
    if (in[0]->ndim != 2)
        return oq_op_error(n, OQ_E_SHAPE, "input must be 2-D, it has rank %d", in[0]->ndim);
    int64_t dt = oq_node_attr_int(n->node, "dtype", in[0]->dtype);
    if (dt <= 0 || dt >= OQ_DTYPE_COUNT || dt == OQ_STRING || oq_dtype_size((oq_dtype)dt) == 0 ||
        dt == OQ_COMPLEX64 || dt == OQ_COMPLEX128)
        return oq_op_error(n, OQ_E_TYPE, "output type %lld is not supported", (long long)dt);
    oq_set_shape(out[0], (oq_dtype)dt, 2, in[0]->dims);
    return OQ_OK;
}

static oq_status eyelike_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    (void)in;
    int64_t k = oq_node_attr_int(n->node, "k", 0), r = out[0]->dims[0], c = out[0]->dims[1];
    memset(out[0]->data, 0, out[0]->nbytes);
    for (int64_t i = 0; i < r; i++)
        if (i + k >= 0 && i + k < c)
            put_value(out[0], i * c + i + k, 1, 1, true);
    return OQ_OK;
}
const oq_op_def oq_op_eye_like = {NULL, eyelike_infer, eyelike_run, NULL};

/* ---- Trilu ---- */
static oq_status trilu_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    oq_status st = need_io(n, in, 1, 2);
    if (st != OQ_OK)
        return st;
    if (in[0]->ndim < 2)
        return oq_op_error(n, OQ_E_SHAPE, "input must have rank >= 2, it has %d", in[0]->ndim);
    if (in[0]->dtype == OQ_STRING || oq_dtype_size(in[0]->dtype) == 0)
        return oq_op_error(n, OQ_E_TYPE, "type %s is not supported", oq_dtype_name(in[0]->dtype));
    if (n->n_inputs > 1 && in[1] && (in[1]->dtype != OQ_INT64 || oq_tensor_numel(in[1]) != 1))
        return oq_op_error(n, OQ_E_INVALID_ARG, "k must be an int64 scalar");
    oq_set_shape(out[0], in[0]->dtype, in[0]->ndim, in[0]->dims);
    return OQ_OK;
}

static oq_status trilu_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    int64_t k = n->n_inputs > 1 && in[1] ? *(const int64_t *)in[1]->data : 0;
    bool upper = oq_node_attr_int(n->node, "upper", 1) != 0;
    int nd = in[0]->ndim;
    int64_t rows = in[0]->dims[nd - 2], cols = in[0]->dims[nd - 1];
    k = k < -(rows + 1) ? -(rows + 1) : k > cols + 1 ? cols + 1 : k; /* beyond this nothing changes */
    int64_t mats = rows > 0 && cols > 0 ? oq_tensor_numel(in[0]) / (rows * cols) : 0;
    size_t es = oq_dtype_size(in[0]->dtype);
    const char *s = in[0]->data;
    char *d = out[0]->data;
    for (int64_t m = 0; m < mats; m++)
        for (int64_t i = 0; i < rows; i++) {
            size_t off = (size_t)((m * rows + i) * cols) * es;
            /* kept columns: upper j >= i + k, lower j <= i + k */
            int64_t lo = upper ? i + k : 0, hi = upper ? cols : i + k + 1;
            lo = lo < 0 ? 0 : lo > cols ? cols : lo;
            hi = hi < 0 ? 0 : hi > cols ? cols : hi;
            memset(d + off, 0, (size_t)cols * es);
            if (hi > lo)
                memcpy(d + off + (size_t)lo * es, s + off + (size_t)lo * es, (size_t)(hi - lo) * es);
        }
    return OQ_OK;
}
const oq_op_def oq_op_trilu = {NULL, trilu_infer, trilu_run, NULL};

/* ---- Einsum ----
 * Labels are letters; ellipsis dimensions get pseudo-labels 52.. so every
 * dimension is a label. The output is computed as a sum over the contracted
 * labels with per-input strides (a label repeated in one input adds its strides,
 * which walks the diagonal). */
#define EIN_LABELS 64

typedef struct einsum_plan {
    int n_in;
    int in_rank[8];
    int in_lab[8][OQ_MAX_DIMS];
    int out_rank;
    int out_lab[OQ_MAX_DIMS];
    int64_t size[EIN_LABELS];
} einsum_plan;

static int label_of(char c)
{
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= 'A' && c <= 'Z')
        return 26 + c - 'A';
    return -1;
}

/* Parses one term into labels; returns its number of labels or -1. ell gets the
 * position of "..." (or -1). */
static int parse_term(const char *s, size_t len, int *lab, int *ell)
{
    int k = 0;
    *ell = -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ')
            continue;
        if (s[i] == '.') {
            if (i + 2 >= len || s[i + 1] != '.' || s[i + 2] != '.' || *ell >= 0)
                return -1;
            *ell = k;
            i += 2;
            continue;
        }
        int l = label_of(s[i]);
        if (l < 0 || k >= OQ_MAX_DIMS)
            return -1;
        lab[k++] = l;
    }
    return k;
}

static oq_status einsum_parse(const oq_op_node *n, const oq_tensor *const *in, einsum_plan *p)
{
    const char *eq = oq_node_attr_string(n->node, "equation", NULL);
    if (!eq)
        return oq_op_error(n, OQ_E_INVALID_ARG, "equation attribute is required");
    if (n->n_inputs < 1 || n->n_inputs > 8)
        return oq_op_error(n, OQ_E_UNSUPPORTED, "%zu operands (1 to 8 are supported)", n->n_inputs);
    memset(p, 0, sizeof *p);
    for (int l = 0; l < EIN_LABELS; l++)
        p->size[l] = -1;
    const char *arrow = strstr(eq, "->");
    size_t lhs_len = arrow ? (size_t)(arrow - eq) : strlen(eq);
    int ell_rank = 0, count[EIN_LABELS] = {0};
    int raw[8][OQ_MAX_DIMS], raw_n[8], ell_at[8];
    const char *s = eq;
    p->n_in = 0;
    for (;;) {
        const char *e = memchr(s, ',', (size_t)(eq + lhs_len - s));
        size_t len = e ? (size_t)(e - s) : (size_t)(eq + lhs_len - s);
        int i = p->n_in;
        if (i >= (int)n->n_inputs)
            return oq_op_error(n, OQ_E_INVALID_ARG, "equation '%s' has more terms than the %zu inputs", eq, n->n_inputs);
        raw_n[i] = parse_term(s, len, raw[i], &ell_at[i]);
        if (raw_n[i] < 0 || !in[i])
            return oq_op_error(n, OQ_E_INVALID_ARG, "cannot parse term %d of equation '%s'", i, eq);
        int er = in[i]->ndim - raw_n[i];
        if ((ell_at[i] < 0 && er != 0) || er < 0)
            return oq_op_error(n, OQ_E_SHAPE, "term %d of '%s' does not match input rank %d", i, eq, in[i]->ndim);
        if (er > ell_rank)
            ell_rank = er;
        p->n_in++;
        if (!e)
            break;
        s = e + 1;
    }
    if (p->n_in != (int)n->n_inputs)
        return oq_op_error(n, OQ_E_INVALID_ARG, "equation '%s' has %d terms for %zu inputs", eq, p->n_in, n->n_inputs);
    /* expand ellipses: right-aligned pseudo labels 52 + (ell_rank - er) .. */
    for (int i = 0; i < p->n_in; i++) {
        int er = in[i]->ndim - raw_n[i], k = 0;
        for (int j = 0; j <= raw_n[i]; j++) {
            if (j == ell_at[i])
                for (int e2 = 0; e2 < er; e2++)
                    p->in_lab[i][k++] = 52 + ell_rank - er + e2;
            if (j < raw_n[i])
                p->in_lab[i][k++] = raw[i][j];
        }
        p->in_rank[i] = k;
        bool seen[EIN_LABELS] = {false};
        for (int j = 0; j < k; j++) {
            int l = p->in_lab[i][j];
            int64_t d = in[i]->dims[j];
            if (l < 52 && !seen[l])
                count[l]++;
            seen[l] = true;
            if (p->size[l] < 0 || p->size[l] == 1)
                p->size[l] = d;
            else if (d != 1 && d != p->size[l])
                return oq_op_error(n, OQ_E_SHAPE, "label '%c' has sizes %lld and %lld", l < 26 ? 'a' + l : 'A' + l - 26,
                                   (long long)p->size[l], (long long)d);
            else if (d == 1 && l < 52 && p->size[l] != 1)
                return oq_op_error(n, OQ_E_SHAPE, "label '%c' has sizes %lld and 1", l < 26 ? 'a' + l : 'A' + l - 26,
                                   (long long)p->size[l]);
        }
    }
    if (arrow) {
        int lab[OQ_MAX_DIMS], ell;
        int k = parse_term(arrow + 2, strlen(arrow + 2), lab, &ell);
        if (k < 0 || k + (ell >= 0 ? ell_rank : 0) > OQ_MAX_DIMS)
            return oq_op_error(n, OQ_E_INVALID_ARG, "cannot parse the output of equation '%s'", eq);
        int o = 0;
        for (int j = 0; j <= k; j++) {
            if (j == ell)
                for (int e2 = 0; e2 < ell_rank; e2++)
                    p->out_lab[o++] = 52 + e2;
            if (j < k) {
                if (p->size[lab[j]] < 0)
                    return oq_op_error(n, OQ_E_INVALID_ARG, "output label %d of '%s' is not in any input", j, eq);
                for (int q = 0; q < j; q++)
                    if (lab[q] == lab[j])
                        return oq_op_error(n, OQ_E_INVALID_ARG, "output label %d of '%s' appears twice", j, eq);
                p->out_lab[o++] = lab[j];
            }
        }
        if (ell < 0 && ell_rank > 0)
            return oq_op_error(n, OQ_E_INVALID_ARG, "equation '%s' drops the ellipsis dimensions", eq);
        p->out_rank = o;
    } else {
        int o = 0;
        for (int e2 = 0; e2 < ell_rank; e2++)
            p->out_lab[o++] = 52 + e2;
        for (int l = 0; l < 52; l++)
            if (count[l] == 1 && o < OQ_MAX_DIMS)
                p->out_lab[o++] = l;
        p->out_rank = o;
    }
    return OQ_OK;
}

static oq_status einsum_infer(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    einsum_plan p;
    oq_status st = einsum_parse(n, in, &p);
    if (st != OQ_OK)
        return st;
    oq_dtype t = in[0]->dtype;
    if (t != OQ_FLOAT && t != OQ_DOUBLE && t != OQ_INT32 && t != OQ_INT64)
        return oq_op_error(n, OQ_E_TYPE, "type %s is not supported", oq_dtype_name(t));
    for (size_t i = 1; i < n->n_inputs; i++)
        if (in[i]->dtype != t)
            return oq_op_error(n, OQ_E_TYPE, "all operands must have one type");
    int64_t d[OQ_MAX_DIMS];
    for (int j = 0; j < p.out_rank; j++)
        d[j] = p.size[p.out_lab[j]];
    oq_set_shape(out[0], t, p.out_rank, d);
    return OQ_OK;
}

static double load_elem(const oq_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case OQ_FLOAT: return ((const float *)t->data)[i];
    case OQ_DOUBLE: return ((const double *)t->data)[i];
    case OQ_INT32: return ((const int32_t *)t->data)[i];
    default: return (double)((const int64_t *)t->data)[i];
    }
}

/* Two float operands without repeated labels or one-sided sums: permute A to
 * [batch, M, K] and B to [batch, K, N], multiply, permute to the output order. */
static void permute_f32(const float *src, float *dst, int nd, const int64_t *dims, const int *perm)
{
    int64_t st[OQ_MAX_DIMS], od[OQ_MAX_DIMS], s = 1, idx[OQ_MAX_DIMS] = {0};
    for (int a = nd - 1; a >= 0; a--) {
        st[a] = s;
        s *= dims[a];
    }
    for (int a = 0; a < nd; a++)
        od[a] = dims[perm[a]];
    int64_t total = s, off = 0;
    for (int64_t o = 0; o < total; o++) {
        dst[o] = src[off];
        for (int a = nd - 1; a >= 0; a--) {
            off += st[perm[a]];
            if (++idx[a] < od[a])
                break;
            off -= st[perm[a]] * od[a];
            idx[a] = 0;
        }
    }
}

typedef struct bmm_ctx {
    const float *a, *b;
    float *c;
    int64_t batch, m, n, k;
    size_t n_tasks;
} bmm_ctx;

static void bmm_task(void *vc, size_t task, size_t thread)
{
    (void)thread;
    const bmm_ctx *c = vc;
    int64_t rows = c->batch * c->m, lo = rows * (int64_t)task / (int64_t)c->n_tasks,
            hi = rows * (int64_t)(task + 1) / (int64_t)c->n_tasks;
    for (int64_t r = lo; r < hi; r++) {
        int64_t bt = r / c->m;
        const float *ar = c->a + r * c->k, *bb = c->b + bt * c->k * c->n;
        float *cr = c->c + r * c->n;
        for (int64_t j = 0; j < c->n; j++)
            cr[j] = 0;
        for (int64_t kk = 0; kk < c->k; kk++) {
            float av = ar[kk];
            const float *br = bb + kk * c->n;
            for (int64_t j = 0; j < c->n; j++)
                cr[j] += av * br[j];
        }
    }
}

/* Returns OQ_UNSUPPORTED (without an error message) when the equation needs the general path. */
static oq_status einsum_matmul(oq_op_node *n, const einsum_plan *p, const oq_tensor *const *in, oq_tensor *y)
{
    if (p->n_in != 2 || in[0]->dtype != OQ_FLOAT)
        return OQ_E_UNSUPPORTED;
    int where[EIN_LABELS] = {0}; /* bit 0: in A, bit 1: in B, bit 2: in output */
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < p->in_rank[i]; j++) {
            int l = p->in_lab[i][j];
            if (where[l] & (1 << i))
                return OQ_E_UNSUPPORTED; /* diagonal */
            if (in[i]->dims[j] != p->size[l])
                return OQ_E_UNSUPPORTED; /* broadcast size-1 dimension */
            where[l] |= 1 << i;
        }
    for (int j = 0; j < p->out_rank; j++) {
        if (where[p->out_lab[j]] & 4)
            return OQ_E_UNSUPPORTED;
        where[p->out_lab[j]] |= 4;
    }
    int bl[OQ_MAX_DIMS], ml[OQ_MAX_DIMS], nl[OQ_MAX_DIMS], kl[OQ_MAX_DIMS], nb = 0, nm = 0, nn = 0, nk = 0;
    int64_t B = 1, M = 1, N = 1, K = 1;
    /* batch, M and N labels in output order so the final permutation is often the identity */
    for (int j = 0; j < p->out_rank; j++) {
        int l = p->out_lab[j];
        if (where[l] == 7)
            bl[nb++] = l, B *= p->size[l];
        else if (where[l] == 5)
            ml[nm++] = l, M *= p->size[l];
        else if (where[l] == 6)
            nl[nn++] = l, N *= p->size[l];
    }
    for (int j = 0; j < p->in_rank[0]; j++) {
        int l = p->in_lab[0][j];
        if (where[l] == 3)
            kl[nk++] = l, K *= p->size[l];
        else if (where[l] == 1)
            return OQ_E_UNSUPPORTED; /* summed over one operand only */
    }
    for (int j = 0; j < p->in_rank[1]; j++)
        if (where[p->in_lab[1][j]] == 2)
            return OQ_E_UNSUPPORTED;
    int64_t na = B * M * K, nbn = B * K * N, nc = B * M * N;
    float *ta = oq_malloc((size_t)(na + nbn + nc + 1) * sizeof(float));
    if (!ta)
        return oq_error(OQ_E_NOMEM, "out of memory");
    float *tb = ta + na, *tc = tb + nbn;
    /* permutation of each operand into its [batch, M|K, K|N] order */
    int order[2][OQ_MAX_DIMS];
    const int *groups[2][3] = {{bl, ml, kl}, {bl, kl, nl}};
    int counts[2][3] = {{nb, nm, nk}, {nb, nk, nn}};
    for (int i = 0; i < 2; i++) {
        int o = 0;
        for (int g = 0; g < 3; g++)
            for (int q = 0; q < counts[i][g]; q++)
                for (int j = 0; j < p->in_rank[i]; j++)
                    if (p->in_lab[i][j] == groups[i][g][q])
                        order[i][o++] = j;
        permute_f32(in[i]->data, i ? tb : ta, p->in_rank[i], in[i]->dims, order[i]);
    }
    bmm_ctx c = {ta, tb, tc, B, M, N, K, 1};
    int th = oq_threadpool_size(n->tp);
    if (th > 1 && (double)B * (double)M * (double)N * (double)K > 65536.0 && B * M > 1)
        c.n_tasks = (size_t)th * 4 < (size_t)(B * M) ? (size_t)th * 4 : (size_t)(B * M);
    if (c.n_tasks == 1)
        bmm_task(&c, 0, 0);
    else
        oq_parallel_for(n->tp, c.n_tasks, bmm_task, &c);
    /* tc is [batch, M, N] labels; put them in output order */
    int rl[OQ_MAX_DIMS], nr = 0, operm[OQ_MAX_DIMS];
    int64_t rdims[OQ_MAX_DIMS];
    for (int q = 0; q < nb; q++)
        rl[nr++] = bl[q];
    for (int q = 0; q < nm; q++)
        rl[nr++] = ml[q];
    for (int q = 0; q < nn; q++)
        rl[nr++] = nl[q];
    for (int q = 0; q < nr; q++)
        rdims[q] = p->size[rl[q]];
    for (int j = 0; j < p->out_rank; j++)
        for (int q = 0; q < nr; q++)
            if (rl[q] == p->out_lab[j])
                operm[j] = q;
    permute_f32(tc, y->data, nr, rdims, operm);
    free(ta);
    return OQ_OK;
}

static oq_status einsum_run(oq_op_node *n, const oq_tensor *const *in, oq_tensor *const *out)
{
    einsum_plan p;
    oq_status st = einsum_parse(n, in, &p);
    if (st != OQ_OK)
        return st;
    if (oq_tensor_numel(out[0]) > 0 && (st = einsum_matmul(n, &p, in, out[0])) != OQ_E_UNSUPPORTED)
        return st;
    /* loop labels: output labels, then contracted ones */
    int loop[EIN_LABELS], nl = 0;
    bool used[EIN_LABELS] = {false};
    for (int j = 0; j < p.out_rank; j++) {
        loop[nl++] = p.out_lab[j];
        used[p.out_lab[j]] = true;
    }
    for (int i = 0; i < p.n_in; i++)
        for (int j = 0; j < p.in_rank[i]; j++)
            if (!used[p.in_lab[i][j]]) {
                used[p.in_lab[i][j]] = true;
                loop[nl++] = p.in_lab[i][j];
            }
    int64_t stride[8][EIN_LABELS];
    memset(stride, 0, sizeof stride);
    for (int i = 0; i < p.n_in; i++) {
        int64_t s = 1;
        for (int j = p.in_rank[i] - 1; j >= 0; j--) {
            if (in[i]->dims[j] != 1) /* size-1 ellipsis dims broadcast */
                stride[i][p.in_lab[i][j]] += s;
            s *= in[i]->dims[j];
        }
    }
    int64_t n_out = oq_tensor_numel(out[0]), n_sum = 1;
    for (int k = p.out_rank; k < nl; k++)
        n_sum *= p.size[loop[k]];
    for (int64_t o = 0; o < n_out; o++) {
        int64_t base[8] = {0}, rem = o;
        for (int k = p.out_rank - 1; k >= 0; k--) {
            int64_t idx = rem % p.size[loop[k]];
            rem /= p.size[loop[k]];
            for (int i = 0; i < p.n_in; i++)
                base[i] += idx * stride[i][loop[k]];
        }
        double acc = 0;
        for (int64_t s = 0; s < n_sum; s++) {
            int64_t off[8], r = s;
            memcpy(off, base, sizeof off);
            for (int k = nl - 1; k >= p.out_rank; k--) {
                int64_t idx = r % p.size[loop[k]];
                r /= p.size[loop[k]];
                for (int i = 0; i < p.n_in; i++)
                    off[i] += idx * stride[i][loop[k]];
            }
            double prod = 1;
            for (int i = 0; i < p.n_in; i++)
                prod *= load_elem(in[i], off[i]);
            acc += prod;
        }
        switch (out[0]->dtype) {
        case OQ_FLOAT: ((float *)out[0]->data)[o] = (float)acc; break;
        case OQ_DOUBLE: ((double *)out[0]->data)[o] = acc; break;
        case OQ_INT32: ((int32_t *)out[0]->data)[o] = (int32_t)acc; break;
        default: ((int64_t *)out[0]->data)[o] = (int64_t)acc; break;
        }
    }
    return OQ_OK;
}
const oq_op_def oq_op_einsum = {NULL, einsum_infer, einsum_run, NULL};
