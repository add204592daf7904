/* core/tensor: dtype facts and the dense tensor container. */
#include "core/core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[OQ_DTYPE_COUNT] = {
    [OQ_UNDEFINED] = {"undefined", 0}, [OQ_FLOAT] = {"float32", 4},     [OQ_UINT8] = {"uint8", 1},
    [OQ_INT8] = {"int8", 1},           [OQ_UINT16] = {"uint16", 2},     [OQ_INT16] = {"int16", 2},
    [OQ_INT32] = {"int32", 4},         [OQ_INT64] = {"int64", 8},       [OQ_STRING] = {"string", 0},
    [OQ_BOOL] = {"bool", 1},           [OQ_FLOAT16] = {"float16", 2},   [OQ_DOUBLE] = {"float64", 8},
    [OQ_UINT32] = {"uint32", 4},       [OQ_UINT64] = {"uint64", 8},     [OQ_COMPLEX64] = {"complex64", 8},
    [OQ_COMPLEX128] = {"complex128", 16}, [OQ_BFLOAT16] = {"bfloat16", 2},
};

const char *oq_dtype_name(oq_dtype t)
{
    if ((unsigned)t < OQ_DTYPE_COUNT)
        return dtypes[t].name;
    return "unknown";
}

size_t oq_dtype_size(oq_dtype t) { return (unsigned)t < OQ_DTYPE_COUNT ? dtypes[t].size : 0; }

int64_t oq_shape_numel(int ndim, const int64_t *dims)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] < 0 || __builtin_mul_overflow(n, dims[i], &n))
            return -1;
    }
    return n;
}

int64_t oq_tensor_numel(const oq_tensor *t) { return t ? oq_shape_numel(t->ndim, t->dims) : 0; }

static size_t storage_bytes(oq_dtype dtype, int64_t numel)
{
    size_t es = dtype == OQ_STRING ? sizeof(char *) : oq_dtype_size(dtype), bytes;
    if (numel < 0 || oq_mul_overflow((size_t)numel, es, &bytes) || bytes > ((size_t)1 << 46))
        return SIZE_MAX;
    return bytes;
}

void oq_tensor_release(oq_tensor *t)
{
    if (!t)
        return;
    if ((t->flags & OQ_TENSOR_OWNS_DATA) && t->data) {
        if (t->dtype == OQ_STRING) {
            char **s = t->data;
            size_t n = t->nbytes / sizeof(char *);
            for (size_t i = 0; i < n; i++)
                free(s[i]);
        }
        oq_aligned_free(t->data);
    }
    t->data = NULL;
    t->nbytes = 0;
    t->flags &= ~OQ_TENSOR_OWNS_DATA;
}

oq_status oq_tensor_alloc(oq_tensor *t, oq_dtype dtype, int ndim, const int64_t *dims)
{
    if (ndim < 0 || ndim > OQ_MAX_DIMS)
        return oq_error(OQ_E_UNSUPPORTED, "tensor rank %d is above the supported %d", ndim, OQ_MAX_DIMS);
    if (dtype != OQ_STRING && oq_dtype_size(dtype) == 0)
        return oq_error(OQ_E_TYPE, "cannot allocate a tensor of type %s", oq_dtype_name(dtype));
    int64_t numel = oq_shape_numel(ndim, dims);
    size_t bytes = storage_bytes(dtype, numel);
    if (bytes == SIZE_MAX) {
        char buf[160];
        return oq_error(OQ_E_SHAPE, "invalid or too large tensor shape %s", oq_shape_str(ndim, dims, buf, sizeof buf));
    }
    oq_tensor_release(t);
    void *data = oq_aligned_alloc(bytes);
    if (!data)
        return oq_error(OQ_E_NOMEM, "out of memory allocating %zu bytes", bytes);
    memset(data, 0, bytes ? bytes : 1);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->dims[i] = dims[i];
    t->data = data;
    t->nbytes = bytes;
    t->flags |= OQ_TENSOR_OWNS_DATA;
    return OQ_OK;
}

oq_status oq_tensor_create(oq_dtype dtype, int ndim, const int64_t *dims, oq_tensor **out)
{
    if (!out || (ndim > 0 && !dims))
        return oq_error(OQ_E_INVALID_ARG, "oq_tensor_create: NULL argument");
    oq_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = oq_tensor_alloc(t, dtype, ndim, dims);
    if (st != OQ_OK) {
        free(t);
        return st;
    }
    *out = t;
    return OQ_OK;
}

oq_status oq_tensor_wrap(oq_dtype dtype, int ndim, const int64_t *dims, void *data, oq_tensor **out)
{
    if (!out || (ndim > 0 && !dims) || ndim < 0 || ndim > OQ_MAX_DIMS)
        return oq_error(OQ_E_INVALID_ARG, "oq_tensor_wrap: bad argument");
    size_t bytes = storage_bytes(dtype, oq_shape_numel(ndim, dims));
    if (bytes == SIZE_MAX || (dtype != OQ_STRING && oq_dtype_size(dtype) == 0))
        return oq_error(OQ_E_SHAPE, "oq_tensor_wrap: invalid shape or type");
    oq_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return oq_error(OQ_E_NOMEM, "out of memory");
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->dims[i] = dims[i];
    t->data = data;
    t->nbytes = bytes;
    *out = t;
    return OQ_OK;
}

void oq_tensor_destroy(oq_tensor *t)
{
    if (!t)
        return;
    oq_tensor_release(t);
    free(t->name);
    free(t);
}

oq_status oq_tensor_copy_into(oq_tensor *dst, const oq_tensor *src)
{
    oq_status st = oq_tensor_alloc(dst, src->dtype, src->ndim, src->dims);
    if (st != OQ_OK)
        return st;
    if (src->dtype == OQ_STRING) {
        char **d = dst->data, *const *s = src->data;
        size_t n = dst->nbytes / sizeof(char *);
        for (size_t i = 0; i < n; i++) {
            d[i] = oq_strdup(s[i] ? s[i] : "");
            if (!d[i])
                return oq_error(OQ_E_NOMEM, "out of memory copying strings");
        }
    } else if (dst->nbytes) {
        memcpy(dst->data, src->data, dst->nbytes);
    }
    return OQ_OK;
}

oq_status oq_tensor_clone(const oq_tensor *src, oq_tensor **out)
{
    oq_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = oq_tensor_copy_into(t, src);
    if (st == OQ_OK && src->name && !(t->name = oq_strdup(src->name)))
        st = oq_error(OQ_E_NOMEM, "out of memory");
    if (st != OQ_OK) {
        oq_tensor_destroy(t);
        return st;
    }
    *out = t;
    return OQ_OK;
}

bool oq_shape_equal(int na, const int64_t *a, int nb, const int64_t *b)
{
    if (na != nb)
        return false;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

const char *oq_shape_str(int ndim, const int64_t *dims, char *buf, size_t n)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, i ? ",%lld" : "%lld", (long long)dims[i]);
    if (o < n)
        snprintf(buf + o, n - o, "]");
    return buf;
}

double oq_tensor_get_f64(const oq_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case OQ_FLOAT: return ((const float *)t->data)[i];
    case OQ_DOUBLE: return ((const double *)t->data)[i];
    case OQ_FLOAT16: return oq_half_to_float(((const uint16_t *)t->data)[i]);
    case OQ_BFLOAT16: return oq_bf16_to_float(((const uint16_t *)t->data)[i]);
    case OQ_UINT64: return (double)((const uint64_t *)t->data)[i];
    default: return (double)oq_tensor_get_i64(t, i);
    }
}

int64_t oq_tensor_get_i64(const oq_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case OQ_UINT8: return ((const uint8_t *)t->data)[i];
    case OQ_INT8: return ((const int8_t *)t->data)[i];
    case OQ_UINT16: return ((const uint16_t *)t->data)[i];
    case OQ_INT16: return ((const int16_t *)t->data)[i];
    case OQ_INT32: return ((const int32_t *)t->data)[i];
    case OQ_INT64: return ((const int64_t *)t->data)[i];
    case OQ_BOOL: return ((const uint8_t *)t->data)[i] != 0;
    case OQ_UINT32: return ((const uint32_t *)t->data)[i];
    case OQ_UINT64: return (int64_t)((const uint64_t *)t->data)[i];
    case OQ_FLOAT:
    case OQ_DOUBLE:
    case OQ_FLOAT16:
    case OQ_BFLOAT16: {
        double v = oq_tensor_get_f64(t, i);
        if (isnan(v))
            return 0;
        if (v >= 9.2e18)
            return INT64_MAX;
        if (v <= -9.2e18)
            return INT64_MIN;
        return (int64_t)v;
    }
    default: return 0;
    }
}

float oq_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ff;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t oq_float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow */
        return (uint16_t)(sign | 0x7c00);
    if (ax < 0x38800000u) { /* subnormal half or zero: round to nearest even on 2^-24 grid */
        float a;
        memcpy(&a, &ax, 4);
        float scaled = a * 16777216.0f; /* 2^24 */
        uint32_t m = (uint32_t)nearbyintf(scaled);
        return (uint16_t)(sign | m);
    }
    uint32_t exp = ((ax >> 23) - 127 + 15), man = ax & 0x7fffff;
    uint32_t h = (exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++;
    return (uint16_t)(sign | h);
}

float oq_bf16_to_float(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t oq_float_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}
