/* eval/latency: latency percentiles of a series of run times, and the
 * process's peak memory (Linux VmHWM) for `onnxq bench` and `compare`. */
#include "eval/eval.h"
#include "core/core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* numpy's default ("linear"): position p*(n-1) between order statistics. */
static double percentile_sorted(const double *v, size_t n, double p)
{
    double pos = p * (double)(n - 1);
    size_t lo = (size_t)floor(pos);
    if (lo + 1 >= n)
        return v[n - 1];
    double frac = pos - (double)lo;
    return v[lo] + (v[lo + 1] - v[lo]) * frac;
}

oq_status oq_latency_stats_compute(const double *times, size_t n, oq_latency_stats *out)
{
    if (!times || !out || n == 0)
        return oq_error(OQ_E_INVALID_ARG, "latency statistics need at least one time");
    double *v = oq_malloc(n * sizeof *v);
    if (!v)
        return oq_error(OQ_E_NOMEM, "latency statistics: out of memory for %zu times", n);
    memcpy(v, times, n * sizeof *v);
    qsort(v, n, sizeof *v, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    oq_latency_stats s;
    s.n = n;
    s.median = percentile_sorted(v, n, 0.5);
    s.p10 = percentile_sorted(v, n, 0.1);
    s.p90 = percentile_sorted(v, n, 0.9);
    s.mean = sum / (double)n;
    s.min = v[0];
    s.max = v[n - 1];
    free(v);
    *out = s;
    return OQ_OK;
}

int64_t oq_peak_rss_bytes(void)
{
#ifdef __linux__
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) {
            if (sscanf(line + 6, "%lld", &kb) != 1)
                kb = -1;
            break;
        }
    fclose(f);
    return kb < 0 ? -1 : (int64_t)kb * 1024;
#else
    return -1;
#endif
}

int oq_peak_rss_reset(void)
{
#ifdef __linux__
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return 0;
    int ok = fputs("5", f) >= 0;
    if (fclose(f) != 0)
        ok = 0;
    return ok;
#else
    return 0;
#endif
}
