/* core/alloc: checked allocation helpers. */
#include "core/core.h"

#include <stdlib.h>
#include <string.h>

void *oq_malloc(size_t n) { return malloc(n ? n : 1); }
void *oq_calloc(size_t count, size_t size) { return calloc(count ? count : 1, size ? size : 1); }
void *oq_realloc(void *p, size_t n) { return realloc(p, n ? n : 1); }

void *oq_aligned_alloc(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0)
        return NULL;
    return p;
}

void oq_aligned_free(void *p) { free(p); }

char *oq_strdup(const char *s) { return s ? oq_strndup(s, strlen(s)) : NULL; }

char *oq_strndup(const char *s, size_t n)
{
    char *r = malloc(n + 1);
    if (!r)
        return NULL;
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

oq_status oq_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return OQ_OK;
    size_t ncap = *cap ? *cap : 8, bytes;
    while (ncap < need)
        ncap *= 2;
    if (oq_mul_overflow(ncap, elem, &bytes))
        return oq_error(OQ_E_NOMEM, "array of %zu elements is too large", need);
    void *p = realloc(*arr, bytes);
    if (!p)
        return oq_error(OQ_E_NOMEM, "out of memory growing an array to %zu elements", need);
    memset((char *)p + *cap * elem, 0, (ncap - *cap) * elem);
    *arr = p;
    *cap = ncap;
    return OQ_OK;
}
