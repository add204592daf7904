/* data/npy: numpy .npy files (format versions 1.0, 2.0 and 3.0), the interchange
 * format for model inputs, outputs and calibration data. Loads any plain numeric
 * dtype in either byte order and either memory order; saves version 1.0 as numpy does. */
#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* numpy type codes for our dtypes; bfloat16 and strings have no .npy form. */
static const char *npy_descr(oq_dtype t)
{
    switch (t) {
    case OQ_FLOAT: return "<f4";
    case OQ_DOUBLE: return "<f8";
    case OQ_FLOAT16: return "<f2";
    case OQ_INT8: return "|i1";
    case OQ_UINT8: return "|u1";
    case OQ_INT16: return "<i2";
    case OQ_UINT16: return "<u2";
    case OQ_INT32: return "<i4";
    case OQ_UINT32: return "<u4";
    case OQ_INT64: return "<i8";
    case OQ_UINT64: return "<u8";
    case OQ_BOOL: return "|b1";
    case OQ_COMPLEX64: return "<c8";
    case OQ_COMPLEX128: return "<c16";
    default: return NULL;
    }
}

/* ---- header parsing: a Python dict literal such as
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }            */

typedef struct npy_header {
    char descr[32];
    int fortran_order;
    int ndim;
    int64_t dims[OQ_MAX_DIMS];
    int have_descr, have_order, have_shape;
} npy_header;

typedef struct parser {
    const char *p, *end;
    const char *path;
} parser;

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static oq_status bad_header(const parser *ps, const char *what)
{
    return oq_error(OQ_E_PARSE, "npy file '%s': malformed header: %s", ps->path, what);
}

static oq_status parse_string(parser *ps, char *buf, size_t cap)
{
    skip_ws(ps);
    if (ps->p >= ps->end || (*ps->p != '\'' && *ps->p != '"'))
        return bad_header(ps, "expected a quoted string");
    char q = *ps->p++;
    size_t n = 0;
    while (ps->p < ps->end && *ps->p != q) {
        if (*ps->p == '\\' || n + 1 >= cap)
            return bad_header(ps, "unexpected string");
        buf[n++] = *ps->p++;
    }
    if (ps->p >= ps->end)
        return bad_header(ps, "unterminated string");
    ps->p++;
    buf[n] = 0;
    return OQ_OK;
}

static oq_status parse_bool(parser *ps, int *out)
{
    skip_ws(ps);
    size_t left = (size_t)(ps->end - ps->p);
    if (left >= 4 && memcmp(ps->p, "True", 4) == 0) {
        ps->p += 4;
        *out = 1;
        return OQ_OK;
    }
    if (left >= 5 && memcmp(ps->p, "False", 5) == 0) {
        ps->p += 5;
        *out = 0;
        return OQ_OK;
    }
    return bad_header(ps, "'fortran_order' is not True or False");
}

static oq_status parse_shape(parser *ps, npy_header *h)
{
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != '(')
        return bad_header(ps, "'shape' is not a tuple");
    ps->p++;
    h->ndim = 0;
    for (;;) {
        skip_ws(ps);
        if (ps->p >= ps->end)
            return bad_header(ps, "unterminated shape tuple");
        if (*ps->p == ')') {
            ps->p++;
            return OQ_OK;
        }
        if (*ps->p < '0' || *ps->p > '9')
            return bad_header(ps, "shape entries must be non-negative integers");
        int64_t v = 0;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
            if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *ps->p - '0', &v))
                return bad_header(ps, "shape entry is too large");
            ps->p++;
        }
        if (ps->p < ps->end && (*ps->p == 'L' || *ps->p == 'l')) /* Python 2 long literal */
            ps->p++;
        if (h->ndim >= OQ_MAX_DIMS)
            return oq_error(OQ_E_UNSUPPORTED, "npy file '%s': arrays of more than %d dimensions are not supported",
                            ps->path, OQ_MAX_DIMS);
        h->dims[h->ndim++] = v;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',')
            ps->p++;
        else if (ps->p < ps->end && *ps->p != ')')
            return bad_header(ps, "expected ',' or ')' in shape");
    }
}

static oq_status parse_header(const char *text, size_t len, const char *path, npy_header *h)
{
    parser ps = {text, text + len, path};
    memset(h, 0, sizeof *h);
    skip_ws(&ps);
    if (ps.p >= ps.end || *ps.p != '{')
        return bad_header(&ps, "does not start with '{'");
    ps.p++;
    for (;;) {
        skip_ws(&ps);
        if (ps.p >= ps.end)
            return bad_header(&ps, "missing '}'");
        if (*ps.p == '}')
            break;
        char key[32];
        oq_status st = parse_string(&ps, key, sizeof key);
        if (st != OQ_OK)
            return st;
        skip_ws(&ps);
        if (ps.p >= ps.end || *ps.p != ':')
            return bad_header(&ps, "expected ':' after a key");
        ps.p++;
        if (strcmp(key, "descr") == 0) {
            skip_ws(&ps);
            if (ps.p < ps.end && *ps.p == '[')
                return oq_error(OQ_E_UNSUPPORTED, "npy file '%s': structured arrays are not supported", path);
            st = parse_string(&ps, h->descr, sizeof h->descr);
            h->have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            st = parse_bool(&ps, &h->fortran_order);
            h->have_order = 1;
        } else if (strcmp(key, "shape") == 0) {
            st = parse_shape(&ps, h);
            h->have_shape = 1;
        } else {
            return bad_header(&ps, "unknown key in header dictionary");
        }
        if (st != OQ_OK)
            return st;
        skip_ws(&ps);
        if (ps.p < ps.end && *ps.p == ',')
            ps.p++;
        else if (ps.p >= ps.end || *ps.p != '}')
            return bad_header(&ps, "expected ',' or '}' after a value");
    }
    if (!h->have_descr || !h->have_order || !h->have_shape)
        return bad_header(&ps, "needs the keys 'descr', 'fortran_order' and 'shape'");
    return OQ_OK;
}

/* Maps a numpy type string to a dtype; *swap is set for big-endian data. */
static oq_status descr_dtype(const char *descr, const char *path, oq_dtype *out, int *swap)
{
    const char *d = descr;
    char order = '=';
    if (*d == '<' || *d == '>' || *d == '|' || *d == '=')
        order = *d++;
    char kind = *d ? *d++ : 0;
    char *end = NULL;
    long size = *d ? strtol(d, &end, 10) : 0;
    if (kind == '?' && !*d) {
        size = 1;
        kind = 'b';
    } else if (!end || *end || size <= 0) {
        kind = 0;
    }
    oq_dtype t = OQ_UNDEFINED;
    switch (kind) {
    case 'f': t = size == 2 ? OQ_FLOAT16 : size == 4 ? OQ_FLOAT : size == 8 ? OQ_DOUBLE : OQ_UNDEFINED; break;
    case 'i':
        t = size == 1 ? OQ_INT8 : size == 2 ? OQ_INT16 : size == 4 ? OQ_INT32 : size == 8 ? OQ_INT64 : OQ_UNDEFINED;
        break;
    case 'u':
        t = size == 1 ? OQ_UINT8 : size == 2 ? OQ_UINT16 : size == 4 ? OQ_UINT32 : size == 8 ? OQ_UINT64 : OQ_UNDEFINED;
        break;
    case 'b': t = size == 1 ? OQ_BOOL : OQ_UNDEFINED; break;
    case 'c': t = size == 8 ? OQ_COMPLEX64 : size == 16 ? OQ_COMPLEX128 : OQ_UNDEFINED; break;
    default: break;
    }
    if (t == OQ_UNDEFINED)
        return oq_error(OQ_E_UNSUPPORTED, "npy file '%s': unsupported dtype '%s'", path, descr);
    *swap = order == '>' && size > 1;
    *out = t;
    return OQ_OK;
}

/* Reverses the bytes of each unit (an element, or half of a complex element). */
static void byte_swap(void *data, size_t nbytes, size_t unit)
{
    unsigned char *p = data;
    for (size_t i = 0; i + unit <= nbytes; i += unit, p += unit) {
        for (size_t a = 0, b = unit - 1; a < b; a++, b--) {
            unsigned char tmp = p[a];
            p[a] = p[b];
            p[b] = tmp;
        }
    }
}

/* Fortran (column-major) data → C order, element by element. */
static oq_status fortran_to_c(oq_tensor *t)
{
    int64_t n = oq_tensor_numel(t);
    size_t es = oq_dtype_size(t->dtype);
    if (t->ndim < 2 || n <= 1)
        return OQ_OK;
    unsigned char *dst = oq_aligned_alloc(t->nbytes);
    if (!dst)
        return oq_error(OQ_E_NOMEM, "out of memory transposing a Fortran-order array");
    int64_t fstride[OQ_MAX_DIMS], idx[OQ_MAX_DIMS] = {0};
    fstride[0] = 1;
    for (int d = 1; d < t->ndim; d++)
        fstride[d] = fstride[d - 1] * t->dims[d - 1];
    const unsigned char *src = t->data;
    int64_t off = 0; /* Fortran offset of the current C-order index */
    for (int64_t i = 0; i < n; i++) {
        memcpy(dst + (size_t)i * es, src + (size_t)off * es, es);
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->dims[d]) {
                off += fstride[d];
                break;
            }
            off -= (idx[d] - 1) * fstride[d];
            idx[d] = 0;
        }
    }
    oq_aligned_free(t->data);
    t->data = dst;
    return OQ_OK;
}

static const char *shape_text(const npy_header *h, char *buf, size_t n)
{
    return oq_shape_str(h->ndim, h->dims, buf, n);
}

oq_status oq_npy_load(const char *path, oq_tensor **out)
{
    if (!path || !out)
        return oq_error(OQ_E_INVALID_ARG, "oq_npy_load: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f)
        return oq_error(OQ_E_IO, "cannot open npy file '%s': %s", path, strerror(errno));
    oq_status st = OQ_OK;
    char *text = NULL;
    oq_tensor *t = NULL;
    struct stat sb;
    int64_t file_size = -1; /* unknown for pipes */
    if (fstat(fileno(f), &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) {
            st = oq_error(OQ_E_IO, "npy file '%s' is a directory", path);
            goto done;
        }
        if (S_ISREG(sb.st_mode))
            file_size = (int64_t)sb.st_size;
    }

    unsigned char pre[12];
    size_t got = fread(pre, 1, 8, f);
    if (got < 8 || memcmp(pre, npy_magic, 6) != 0) {
        st = oq_error(OQ_E_PARSE, "'%s' is not an npy file (bad magic)", path);
        goto done;
    }
    int major = pre[6], minor = pre[7];
    size_t header_len, prefix;
    if (major == 1) {
        if (fread(pre + 8, 1, 2, f) != 2) {
            st = oq_error(OQ_E_PARSE, "npy file '%s': truncated before the header length", path);
            goto done;
        }
        header_len = (size_t)pre[8] | (size_t)pre[9] << 8;
        prefix = 10;
    } else if (major == 2 || major == 3) {
        if (fread(pre + 8, 1, 4, f) != 4) {
            st = oq_error(OQ_E_PARSE, "npy file '%s': truncated before the header length", path);
            goto done;
        }
        header_len = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        prefix = 12;
    } else {
        st = oq_error(OQ_E_UNSUPPORTED, "npy file '%s': format version %d.%d is not supported", path, major, minor);
        goto done;
    }
    if ((file_size >= 0 && (int64_t)(prefix + header_len) > file_size) || header_len > ((size_t)1 << 28)) {
        st = oq_error(OQ_E_PARSE, "npy file '%s': header length %zu goes past the end of the file (%lld bytes)", path,
                      header_len, (long long)file_size);
        goto done;
    }
    text = oq_malloc(header_len + 1);
    if (!text) {
        st = oq_error(OQ_E_NOMEM, "out of memory reading npy file '%s'", path);
        goto done;
    }
    if (fread(text, 1, header_len, f) != header_len) {
        st = oq_error(OQ_E_PARSE, "npy file '%s': header is truncated", path);
        goto done;
    }
    text[header_len] = 0;
    if (memchr(text, 0, header_len)) {
        st = oq_error(OQ_E_PARSE, "npy file '%s': malformed header: contains a NUL byte", path);
        goto done;
    }

    npy_header h;
    if ((st = parse_header(text, header_len, path, &h)) != OQ_OK)
        goto done;
    oq_dtype dtype = OQ_UNDEFINED;
    int swap = 0;
    if ((st = descr_dtype(h.descr, path, &dtype, &swap)) != OQ_OK)
        goto done;
    /* check the data is there before allocating: a corrupt shape must not allocate terabytes */
    char shape_buf[160];
    int64_t numel = oq_shape_numel(h.ndim, h.dims);
    size_t need;
    if (numel < 0 || oq_mul_overflow((size_t)numel, oq_dtype_size(dtype), &need) || need > ((size_t)1 << 46)) {
        st = oq_error(OQ_E_PARSE, "npy file '%s': shape %s is too large", path,
                      shape_text(&h, shape_buf, sizeof shape_buf));
        goto done;
    }
    size_t data_start = prefix + header_len;
    if (file_size >= 0 && (uint64_t)data_start + need > (uint64_t)file_size) {
        st = oq_error(OQ_E_PARSE, "npy file '%s': data is %lld bytes but shape %s of '%s' needs %zu", path,
                      (long long)(file_size - (int64_t)data_start), shape_text(&h, shape_buf, sizeof shape_buf),
                      h.descr, need);
        goto done;
    }
    if ((st = oq_tensor_create(dtype, h.ndim, h.dims, &t)) != OQ_OK) {
        st = oq_error_context(st, "npy file '%s'", path);
        goto done;
    }
    if (t->nbytes && fread(t->data, 1, t->nbytes, f) != t->nbytes) {
        st = oq_error(OQ_E_PARSE, "npy file '%s': data is shorter than its shape needs (%zu bytes)", path, t->nbytes);
        goto done;
    }
    if (swap)
        byte_swap(t->data, t->nbytes,
                  dtype == OQ_COMPLEX64 || dtype == OQ_COMPLEX128 ? oq_dtype_size(dtype) / 2 : oq_dtype_size(dtype));
    if (dtype == OQ_BOOL) { /* numpy writes 0/1, but keep any other byte a valid bool */
        unsigned char *b = t->data;
        for (size_t i = 0; i < t->nbytes; i++)
            b[i] = b[i] != 0;
    }
    if (h.fortran_order && (st = fortran_to_c(t)) != OQ_OK)
        goto done;

done:
    free(text);
    fclose(f);
    if (st != OQ_OK) {
        oq_tensor_destroy(t);
        return st;
    }
    *out = t;
    return OQ_OK;
}

oq_status oq_npy_save(const char *path, const oq_tensor *t)
{
    if (!path || !t)
        return oq_error(OQ_E_INVALID_ARG, "oq_npy_save: NULL argument");
    const char *descr = npy_descr(t->dtype);
    if (!descr)
        return oq_error(OQ_E_UNSUPPORTED, "cannot save a %s tensor to npy file '%s'", oq_dtype_name(t->dtype), path);
    if (t->ndim < 0 || t->ndim > OQ_MAX_DIMS)
        return oq_error(OQ_E_INVALID_ARG, "cannot save a tensor of rank %d to npy file '%s'", t->ndim, path);
    int64_t numel = oq_tensor_numel(t);
    size_t need;
    if (numel < 0 || oq_mul_overflow((size_t)numel, oq_dtype_size(t->dtype), &need) || need > t->nbytes ||
        (need && !t->data))
        return oq_error(OQ_E_INVALID_ARG, "cannot save to npy file '%s': tensor data does not match its shape", path);

    char header[512];
    int n = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < t->ndim; i++)
        n += snprintf(header + n, sizeof header - (size_t)n, i ? ", %lld" : "%lld", (long long)t->dims[i]);
    n += snprintf(header + n, sizeof header - (size_t)n, "%s), }", t->ndim == 1 ? "," : "");
    /* pad with spaces so the data starts on a 64-byte boundary, ending in '\n' */
    size_t total = 10 + (size_t)n + 1;
    size_t padded = (total + 63) / 64 * 64;
    while ((size_t)n < padded - 10 - 1)
        header[n++] = ' ';
    header[n++] = '\n';

    unsigned char pre[10];
    memcpy(pre, npy_magic, 6);
    pre[6] = 1;
    pre[7] = 0;
    pre[8] = (unsigned char)(n & 0xff);
    pre[9] = (unsigned char)(n >> 8);

    FILE *f = fopen(path, "wb");
    if (!f)
        return oq_error(OQ_E_IO, "cannot create npy file '%s': %s", path, strerror(errno));
    int ok = fwrite(pre, 1, sizeof pre, f) == sizeof pre && fwrite(header, 1, (size_t)n, f) == (size_t)n &&
             (need == 0 || fwrite(t->data, 1, need, f) == need);
    if (fclose(f) != 0)
        ok = 0;
    if (!ok) {
        int e = errno;
        remove(path);
        return oq_error(OQ_E_IO, "cannot write npy file '%s': %s", path, strerror(e));
    }
    return OQ_OK;
}
