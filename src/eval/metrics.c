/* eval/metrics: streaming output-difference statistics (abs diff, SQNR,
 * cosine, argmax disagreement) and top-k accuracy. Used by compare, eval and
 * debug; sums are kept in double so millions of elements do not drift. */
#include "eval/eval.h"
#include "core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void oq_diff_stats_init(oq_diff_stats *st)
{
    memset(st, 0, sizeof *st);
}

/* One sample: n elements. A NaN difference makes the max NaN (reported as null). */
static void add_span_f32(oq_diff_stats *st, const float *ref, const float *test, int64_t n)
{
    double sum_abs = 0, ref_sq = 0, test_sq = 0, err_sq = 0, dot = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        double r = ref[i], t = test[i], e = r - t, a = fabs(e);
        sum_abs += a;
        if (a > mx || isnan(a))
            mx = a;
        ref_sq += r * r;
        test_sq += t * t;
        err_sq += e * e;
        dot += r * t;
    }
    st->sum_abs_diff += sum_abs;
    st->sum_ref_sq += ref_sq;
    st->sum_test_sq += test_sq;
    st->sum_err_sq += err_sq;
    st->sum_dot += dot;
    st->sum_sample_max += mx;
    if (mx > st->max_abs_diff || isnan(mx))
        st->max_abs_diff = mx;
    st->count += n;
    st->samples++;
}

static int64_t argmax_f32(const float *x, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

void oq_diff_stats_add_f32(oq_diff_stats *st, const float *ref, const float *test, int64_t n, int64_t samples,
                           int64_t row_len)
{
    if (samples < 1 || n <= 0 || n % samples != 0)
        samples = 1;
    if (n <= 0)
        return;
    int64_t per = n / samples;
    for (int64_t s = 0; s < samples; s++)
        add_span_f32(st, ref + s * per, test + s * per, per);
    if (row_len >= 2 && n % row_len == 0) {
        int64_t rows = n / row_len;
        for (int64_t r = 0; r < rows; r++)
            if (argmax_f32(ref + r * row_len, row_len) != argmax_f32(test + r * row_len, row_len))
                st->argmax_disagree++;
        st->argmax_rows += rows;
    }
}

static bool real_dtype(oq_dtype t)
{
    switch (t) {
    case OQ_FLOAT: case OQ_DOUBLE: case OQ_FLOAT16: case OQ_BFLOAT16: case OQ_UINT8: case OQ_INT8:
    case OQ_UINT16: case OQ_INT16: case OQ_INT32: case OQ_INT64: case OQ_UINT32: case OQ_UINT64: case OQ_BOOL:
        return true;
    default:
        return false;
    }
}

/* Converts any real tensor to a float copy (caller frees). */
static float *as_f32(const oq_tensor *t, int64_t n)
{
    float *buf = oq_malloc((size_t)n * sizeof(float));
    if (!buf)
        return NULL;
    for (int64_t i = 0; i < n; i++)
        buf[i] = (float)oq_tensor_get_f64(t, i);
    return buf;
}

static const char *tensor_label(const oq_tensor *t)
{
    return t && t->name ? t->name : "output";
}

oq_status oq_diff_stats_update(oq_diff_stats *st, const oq_tensor *ref, const oq_tensor *test)
{
    if (!st || !ref || !test)
        return oq_error(OQ_E_INVALID_ARG, "oq_diff_stats_update: NULL argument");
    char a[96], b[96];
    if (!oq_shape_equal(ref->ndim, ref->dims, test->ndim, test->dims))
        return oq_error(OQ_E_SHAPE, "output '%s': reference shape %s differs from test shape %s", tensor_label(ref),
                        oq_shape_str(ref->ndim, ref->dims, a, sizeof a),
                        oq_shape_str(test->ndim, test->dims, b, sizeof b));
    if (!real_dtype(ref->dtype) || !real_dtype(test->dtype))
        return oq_error(OQ_E_TYPE, "output '%s': cannot compare %s with %s values", tensor_label(ref),
                        oq_dtype_name(ref->dtype), oq_dtype_name(test->dtype));
    int64_t n = oq_shape_numel(ref->ndim, ref->dims);
    if (n < 0)
        return oq_error(OQ_E_SHAPE, "output '%s': invalid shape", tensor_label(ref));
    if (n == 0)
        return OQ_OK;
    int64_t samples = ref->ndim >= 2 ? ref->dims[0] : 1;
    int64_t row_len = ref->ndim >= 2 ? ref->dims[ref->ndim - 1] : 0;
    const float *r = ref->dtype == OQ_FLOAT ? ref->data : NULL;
    const float *t = test->dtype == OQ_FLOAT ? test->data : NULL;
    float *rb = NULL, *tb = NULL;
    if (!r)
        r = rb = as_f32(ref, n);
    if (!t)
        t = tb = as_f32(test, n);
    if (!r || !t) {
        free(rb);
        free(tb);
        return oq_error(OQ_E_NOMEM, "output '%s': out of memory", tensor_label(ref));
    }
    oq_diff_stats_add_f32(st, r, t, n, samples, row_len);
    free(rb);
    free(tb);
    return OQ_OK;
}

double oq_diff_stats_mean_abs(const oq_diff_stats *st)
{
    return st->count > 0 ? st->sum_abs_diff / (double)st->count : NAN;
}

double oq_diff_stats_mean_sample_max(const oq_diff_stats *st)
{
    return st->samples > 0 ? st->sum_sample_max / (double)st->samples : NAN;
}

double oq_diff_stats_sqnr_db(const oq_diff_stats *st)
{
    if (st->count == 0)
        return NAN;
    if (st->sum_err_sq == 0)
        return INFINITY;
    return 10.0 * log10(st->sum_ref_sq / st->sum_err_sq);
}

double oq_diff_stats_cosine(const oq_diff_stats *st)
{
    if (st->count == 0)
        return NAN;
    if (st->sum_ref_sq == 0 && st->sum_test_sq == 0)
        return 1.0;
    if (st->sum_ref_sq == 0 || st->sum_test_sq == 0)
        return NAN;
    double c = st->sum_dot / (sqrt(st->sum_ref_sq) * sqrt(st->sum_test_sq));
    return c > 1.0 ? 1.0 : c < -1.0 ? -1.0 : c;
}

double oq_diff_stats_argmax_disagreement(const oq_diff_stats *st)
{
    return st->argmax_rows > 0 ? (double)st->argmax_disagree / (double)st->argmax_rows : NAN;
}

void oq_diff_stats_merge(oq_diff_stats *a, const oq_diff_stats *b)
{
    a->count += b->count;
    a->samples += b->samples;
    a->sum_abs_diff += b->sum_abs_diff;
    if (b->max_abs_diff > a->max_abs_diff || isnan(b->max_abs_diff))
        a->max_abs_diff = b->max_abs_diff;
    a->sum_sample_max += b->sum_sample_max;
    a->sum_ref_sq += b->sum_ref_sq;
    a->sum_test_sq += b->sum_test_sq;
    a->sum_err_sq += b->sum_err_sq;
    a->sum_dot += b->sum_dot;
    a->argmax_rows += b->argmax_rows;
    a->argmax_disagree += b->argmax_disagree;
}

/* ---- top-k accuracy ---- */

void oq_accuracy_init(oq_accuracy *a, int k)
{
    memset(a, 0, sizeof *a);
    a->k = k > 0 ? k : 5;
}

oq_status oq_accuracy_update(oq_accuracy *a, const oq_tensor *scores, const int64_t *labels, size_t n_labels)
{
    if (!a || !scores || (!labels && n_labels))
        return oq_error(OQ_E_INVALID_ARG, "oq_accuracy_update: NULL argument");
    if (!real_dtype(scores->dtype))
        return oq_error(OQ_E_TYPE, "output '%s': %s scores cannot rank classes", tensor_label(scores),
                        oq_dtype_name(scores->dtype));
    int64_t n = oq_shape_numel(scores->ndim, scores->dims);
    int64_t classes = scores->ndim >= 1 ? scores->dims[scores->ndim - 1] : 1;
    char buf[96];
    if (n < 0 || classes <= 0 || n % classes != 0 || n / classes != (int64_t)n_labels)
        return oq_error(OQ_E_SHAPE, "output '%s' of shape %s has %lld rows of class scores but %zu labels were given",
                        tensor_label(scores), oq_shape_str(scores->ndim, scores->dims, buf, sizeof buf),
                        classes > 0 && n >= 0 ? (long long)(n / classes) : 0LL, n_labels);
    const float *f = scores->dtype == OQ_FLOAT ? scores->data : NULL;
    for (size_t r = 0; r < n_labels; r++) {
        int64_t label = labels[r];
        a->samples++;
        if (label < 0 || label >= classes)
            continue;
        int64_t base = (int64_t)r * classes;
        double v = f ? f[base + label] : oq_tensor_get_f64(scores, base + label);
        /* rank of the label: classes scoring higher, or equal with a lower index */
        int64_t better = 0;
        for (int64_t c = 0; c < classes; c++) {
            double x = f ? f[base + c] : oq_tensor_get_f64(scores, base + c);
            if (x > v || (x == v && c < label))
                better++;
        }
        if (better == 0)
            a->top1_hits++;
        if (better < a->k)
            a->topk_hits++;
    }
    return OQ_OK;
}

double oq_accuracy_top1(const oq_accuracy *a)
{
    return a->samples > 0 ? (double)a->top1_hits / (double)a->samples : NAN;
}

double oq_accuracy_topk(const oq_accuracy *a)
{
    return a->samples > 0 ? (double)a->topk_hits / (double)a->samples : NAN;
}
