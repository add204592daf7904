/* npy_compare: checks that an output .npy file matches an expected one — same
 * dtype and shape, and max|a-b| / max|b| <= tolerance (absolute when b is all 0).
 * Usage: npy_compare ACTUAL EXPECTED [TOLERANCE]. Exit 0 on match. */
#include "core/core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: npy_compare ACTUAL EXPECTED [TOLERANCE]\n");
        return 2;
    }
    double tol = argc == 4 ? strtod(argv[3], NULL) : 1e-4;
    oq_tensor *a = NULL, *b = NULL;
    if (oq_npy_load(argv[1], &a) != OQ_OK || oq_npy_load(argv[2], &b) != OQ_OK) {
        fprintf(stderr, "npy_compare: %s\n", oq_last_error());
        oq_tensor_destroy(a);
        return 1;
    }
    char sa[160], sb[160];
    int rc = 0;
    if (a->dtype != b->dtype) {
        fprintf(stderr, "npy_compare: %s is %s, expected %s\n", argv[1], oq_dtype_name(a->dtype),
                oq_dtype_name(b->dtype));
        rc = 1;
    } else if (!oq_shape_equal(a->ndim, a->dims, b->ndim, b->dims)) {
        fprintf(stderr, "npy_compare: %s has shape %s, expected %s\n", argv[1],
                oq_shape_str(a->ndim, a->dims, sa, sizeof sa), oq_shape_str(b->ndim, b->dims, sb, sizeof sb));
        rc = 1;
    } else {
        int64_t n = oq_tensor_numel(b), worst = -1;
        double max_diff = 0, max_ref = 0;
        for (int64_t i = 0; i < n; i++) {
            double x = oq_tensor_get_f64(a, i), y = oq_tensor_get_f64(b, i);
            if (isnan(x) != isnan(y)) {
                max_diff = INFINITY;
                worst = i;
                continue;
            }
            if (isnan(y))
                continue;
            double d = x == y ? 0 : fabs(x - y); /* equal infinities match */
            if (d > max_diff || isnan(d)) {
                max_diff = isnan(d) ? INFINITY : d;
                worst = i;
            }
            if (isfinite(y) && fabs(y) > max_ref)
                max_ref = fabs(y);
        }
        double rel = max_ref > 0 ? max_diff / max_ref : max_diff;
        if (!(rel <= tol)) {
            fprintf(stderr, "npy_compare: %s differs from %s: max|a-b| = %g at element %lld (%g vs %g), max|b| = %g, "
                    "ratio %g > %g\n", argv[1], argv[2], max_diff, (long long)worst,
                    worst >= 0 ? oq_tensor_get_f64(a, worst) : 0.0, worst >= 0 ? oq_tensor_get_f64(b, worst) : 0.0,
                    max_ref, rel, tol);
            rc = 1;
        } else {
            printf("npy_compare: %s matches (max|a-b| / max|b| = %g)\n", argv[1], rel);
        }
    }
    oq_tensor_destroy(a);
    oq_tensor_destroy(b);
    return rc;
}
