/* quant/observer: what calibration learns about one activation. min/max and
 * moving-average min/max, plus a histogram of |x| for entropy, percentile and
 * MSE. The histogram has a fixed number of bins; when a batch exceeds its
 * range the range doubles and pairs of bins merge, so memory never grows
 * with the number of samples and old counts stay exact. */
#include "quant/quant.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void quant_range_f32__avx512(const float *x, size_t n, float *mn, float *mx); /* observer_range-avx512.c */
/* observer_range-avx512.c */
size_t quant_hist_index_nz_f32__avx512(const float *x, size_t n, float k, int last, int *idx, size_t *zeros);

static bool uses_histogram(oq_calib_method m)
{
    return m == OQ_CALIB_ENTROPY || m == OQ_CALIB_PERCENTILE || m == OQ_CALIB_MSE;
}

oq_status oq_observer_init(oq_observer *o, const oq_calib_options *opt)
{
    memset(o, 0, sizeof *o);
    o->method = opt->method;
    o->min = DBL_MAX;
    o->max = -DBL_MAX;
    if (uses_histogram(o->method)) {
        o->nbins = opt->num_bins > 16 ? opt->num_bins & ~1 : 2048;
        if (!(o->hist = oq_calloc((size_t)o->nbins, sizeof *o->hist)))
            return oq_error(OQ_E_NOMEM, "out of memory");
    }
    return OQ_OK;
}

void oq_observer_free(oq_observer *o)
{
    free(o->hist);
    o->hist = NULL;
}

static void hist_add(oq_observer *o, const float *x, size_t n, double absmax)
{
    if (absmax <= 0 && o->hmax <= 0) {
        o->hist[0] += (double)n; /* all zeros: bin 0 whatever the range becomes */
        return;
    }
    if (o->hmax <= 0)
        o->hmax = absmax;
    while (absmax > o->hmax) {
        int half = o->nbins / 2;
        for (int i = 0; i < half; i++)
            o->hist[i] = o->hist[2 * i] + o->hist[2 * i + 1];
        memset(o->hist + half, 0, sizeof *o->hist * (size_t)(o->nbins - half));
        o->hmax *= 2;
    }
    const float k = (float)(o->nbins / o->hmax);
    const int last = o->nbins - 1;
    double *h = o->hist;
    /* Long batches: bin indices a block at a time (a loop the compiler vectorizes), counted
     * in four integer sub-histograms taken in turn, so runs of equal bins do not chain one
     * load-add-store after another; same counts as the plain loop below. */
    uint32_t *c = n >= 8192 ? oq_calloc(4 * (size_t)o->nbins, sizeof *c) : NULL;
    if (c) {
        int idx[1024 + 16];
        bool avx512 = oq_isa_level() >= OQ_ISA_AVX512;
        size_t nb = (size_t)o->nbins, i = 0, zeros = 0;
        for (; i < n; i += 1024) {
            size_t m = n - i < 1024 ? n - i : 1024;
            if (avx512)
                m = quant_hist_index_nz_f32__avx512(x + i, m, k, last, idx, &zeros);
            else
                for (size_t j = 0; j < m; j++) {
                    float a = fabsf(x[i + j]) * k;
                    idx[j] = a < (float)last ? (int32_t)a : last; /* NaN and inf land in the last bin */
                }
            size_t j = 0;
            for (; j + 4 <= m; j += 4) {
                c[idx[j]]++;
                c[nb + (size_t)idx[j + 1]]++;
                c[2 * nb + (size_t)idx[j + 2]]++;
                c[3 * nb + (size_t)idx[j + 3]]++;
            }
            for (; j < m; j++)
                c[idx[j]]++;
        }
        h[0] += (double)zeros;
        for (size_t b = 0; b < nb; b++)
            h[b] += (double)c[b] + (double)c[nb + b] + (double)c[2 * nb + b] + (double)c[3 * nb + b];
        free(c);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(x[i]) * k;
        h[a < (float)last ? (int)a : last] += 1; /* NaN and inf land in the last bin */
    }
}

void oq_observer_update(oq_observer *o, const float *x, size_t n, double ma_weight)
{
    if (n == 0)
        return;
    float mn, mx;
    if (oq_isa_level() >= OQ_ISA_AVX512) {
        quant_range_f32__avx512(x, n, &mn, &mx);
        goto have_range;
    }
    /* eight independent lanes, so the compiler turns this into vector min/max */
    float mn8[8], mx8[8];
    for (int k = 0; k < 8; k++)
        mn8[k] = mx8[k] = x[0];
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) {
            float v = x[i + k];
            mn8[k] = v < mn8[k] ? v : mn8[k];
            mx8[k] = v > mx8[k] ? v : mx8[k];
        }
    for (; i < n; i++) {
        mn8[0] = x[i] < mn8[0] ? x[i] : mn8[0];
        mx8[0] = x[i] > mx8[0] ? x[i] : mx8[0];
    }
    mn = mn8[0], mx = mx8[0];
    for (int k = 1; k < 8; k++) {
        mn = mn8[k] < mn ? mn8[k] : mn;
        mx = mx8[k] > mx ? mx8[k] : mx;
    }
have_range:
    if (isnan(mn) || isnan(mx) || mn > mx)
        return; /* a NaN batch says nothing about the range */
    if (o->method == OQ_CALIB_MOVING_AVERAGE && o->batches > 0) {
        o->min += ma_weight * (mn - o->min);
        o->max += ma_weight * (mx - o->max);
    } else if (o->method == OQ_CALIB_MOVING_AVERAGE) {
        o->min = mn;
        o->max = mx;
    } else {
        o->min = mn < o->min ? mn : o->min;
        o->max = mx > o->max ? mx : o->max;
    }
    o->batches++;
    if (o->hist) {
        double absmax = fabs((double)mn) > fabs((double)mx) ? fabs((double)mn) : fabs((double)mx);
        if (isfinite(absmax))
            hist_add(o, x, n, absmax);
    }
}

double oq_hist_percentile_threshold(const double *hist, int nbins, double hmax, double percentile)
{
    double total = 0;
    for (int i = 0; i < nbins; i++)
        total += hist[i];
    if (total <= 0)
        return hmax;
    double want = total * percentile / 100.0, acc = 0;
    for (int i = 0; i < nbins; i++) {
        acc += hist[i];
        if (acc >= want)
            return (i + 1) * hmax / nbins;
    }
    return hmax;
}

/* KL(P || Q) for a threshold at bin i (TensorRT's and onnxruntime's rule): P is the
 * histogram clipped at i with the outliers added to the last bin; Q is the clipped
 * histogram without them, squeezed into nq levels and spread back evenly over the
 * bins where P is non-empty. Leaving the outliers out of Q is what makes clipping
 * too much cost something. p, q: scratch of i. */
static double kl_at(const double *hist, int i, int nq, double outliers, double *p, double *q)
{
    memcpy(p, hist, sizeof *p * (size_t)i);
    p[i - 1] += outliers;
    double psum = 0, qsum = 0;
    for (int j = 0; j < nq; j++) {
        int b0 = (int)((int64_t)j * i / nq), b1 = (int)((int64_t)(j + 1) * i / nq);
        double sum = 0;
        int nz = 0;
        for (int b = b0; b < b1; b++) {
            sum += hist[b];
            nz += p[b] > 0;
        }
        for (int b = b0; b < b1; b++) {
            q[b] = p[b] > 0 ? sum / nz : 0;
            psum += p[b];
            qsum += q[b];
        }
    }
    if (psum <= 0 || qsum <= 0)
        return INFINITY;
    double kl = 0;
    for (int b = 0; b < i; b++)
        if (p[b] > 0) {
            double pp = p[b] / psum, qq = q[b] / qsum;
            kl += pp * log(pp / (qq > 1e-12 ? qq : 1e-12));
        }
    return kl;
}

double oq_hist_entropy_threshold(const double *hist, int nbins, double hmax, int nq)
{
    if (nq >= nbins)
        return hmax;
    double *p = oq_malloc(sizeof *p * (size_t)nbins * 2);
    if (!p)
        return hmax;
    double *q = p + nbins;
    double outliers = 0, best = INFINITY;
    int best_i = nbins;
    for (int b = nq; b < nbins; b++)
        outliers += hist[b];
    for (int i = nq; i <= nbins; i++) {
        double kl = kl_at(hist, i, nq, outliers, p, q);
        if (kl < best) {
            best = kl;
            best_i = i;
        }
        if (i < nbins)
            outliers -= hist[i];
    }
    free(p);
    return best_i * hmax / nbins;
}

double oq_hist_mse_threshold(const double *hist, int nbins, double hmax, int nq)
{
    double w = hmax / nbins, best = INFINITY, best_t = hmax;
    int step = nbins / 256 > 0 ? nbins / 256 : 1;
    for (int i = step; i <= nbins; i += step) {
        double t = i * w, delta = t / nq, err = 0;
        for (int b = 0; b < nbins; b++) {
            if (hist[b] <= 0)
                continue;
            double c = (b + 0.5) * w;
            err += hist[b] * (c < t ? delta * delta / 12 : (c - t) * (c - t));
        }
        if (err < best) {
            best = err;
            best_t = t;
        }
    }
    return best_t;
}

double oq_hist_mse_threshold_asym(const double *hist, int nbins, double hmax, double neg)
{
    double w = hmax / nbins, best = INFINITY, best_t = hmax;
    int step = nbins / 256 > 0 ? nbins / 256 : 1;
    for (int i = step; i <= nbins; i += step) {
        double t = i * w, delta = (t + (neg < t ? neg : t)) / 255, err = 0;
        for (int b = 0; b < nbins; b++) {
            if (hist[b] <= 0)
                continue;
            double c = (b + 0.5) * w;
            err += hist[b] * (c < t ? delta * delta / 12 : (c - t) * (c - t));
        }
        if (err < best) {
            best = err;
            best_t = t;
        }
    }
    return best_t;
}

void oq_observer_range(const oq_observer *o, const oq_calib_options *opt, float *min, float *max)
{
    if (o->batches == 0) {
        *min = *max = 0;
        return;
    }
    double mn = o->min, mx = o->max;
    if (o->hist && o->hmax > 0) {
        /* levels on [0, t]: a non-negative tensor gets all 255, a signed one half */
        int nq = mn >= 0 ? 255 : 127;
        double t = o->hmax;
        if (o->method == OQ_CALIB_ENTROPY)
            t = oq_hist_entropy_threshold(o->hist, o->nbins, o->hmax, nq);
        else if (o->method == OQ_CALIB_PERCENTILE)
            t = oq_hist_percentile_threshold(o->hist, o->nbins, o->hmax, opt->percentile);
        else if (o->method == OQ_CALIB_MSE)
            t = oq_hist_mse_threshold_asym(o->hist, o->nbins, o->hmax, mn < 0 ? -mn : 0);
        mn = mn < -t ? -t : mn;
        mx = mx > t ? t : mx;
    }
    *min = (float)mn;
    *max = (float)mx;
}
