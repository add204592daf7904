/* Minimal test harness: CHECK records a failure with file:line and goes on;
 * each test file's main returns test_summary(). */
#ifndef OQ_TEST_H
#define OQ_TEST_H
#include <stdio.h>
#include <math.h>

static int test_failures, test_checks;
#define CHECK(cond)                                                                   \
    do {                                                                              \
        test_checks++;                                                                \
        if (!(cond)) {                                                                \
            test_failures++;                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                             \
    } while (0)
#define CHECK_OK(expr)                                                                                     \
    do {                                                                                                   \
        oq_status st_ = (expr);                                                                            \
        test_checks++;                                                                                     \
        if (st_ != OQ_OK) {                                                                                \
            test_failures++;                                                                               \
            fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #expr, oq_status_str(st_),        \
                    oq_last_error());                                                                      \
        }                                                                                                  \
    } while (0)
#define CHECK_NEAR(a, b, tol) CHECK(fabs((double)(a) - (double)(b)) <= (tol))

static inline int test_summary(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, test_checks, test_failures);
    return test_failures ? 1 : 0;
}
#endif
