/* data/reader: calibration data as a stream of batches. Reads .npy files,
 * .npz archives (stored entries, as np.savez writes them) and folders of them,
 * splits or groups samples (first axis) into batches shaped for the model's
 * inputs, and keeps only the current batch in memory. */
#include "core/core.h"
#include "data/image.h"
#include "ir/graph.h"
#include "quant/quant.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_BATCH 32

/* Where one input's array lives inside one file. */
typedef struct array_loc {
    int64_t offset;     /* first data byte */
    int64_t n;          /* samples */
    oq_dtype dtype;     /* file element type */
    int ndim;           /* rank of one sample */
    int64_t dims[OQ_MAX_DIMS];
} array_loc;

typedef struct data_file {
    char *path;
    int64_t n; /* samples (same for every input) */
    array_loc *arrays; /* one per model input */
} data_file;

struct oq_data_reader {
    size_t n_inputs;
    char **names;
    oq_dtype *dtypes;       /* model input types */
    int whole;              /* one sample is the whole input (array rank = input rank + 1) */
    int64_t batch;          /* samples per batch */
    int64_t sample_elems;   /* elements of one sample */
    data_file *files;
    size_t n_files;
    int64_t total, max_samples;
    /* cursor */
    size_t fi;
    int64_t si, delivered;
    FILE *f;
    size_t f_index;         /* files[] index f belongs to; SIZE_MAX: none */
    oq_tensor **cur;
    void *scratch;          /* conversion buffer (float64 files) */
    size_t scratch_bytes;
    int64_t *labels;        /* one per sample (opt.labels), or NULL */
    int64_t last_first, last_n; /* samples of the batch last returned by next */
    /* image folders */
    int images;
    char **img_paths;
    int64_t *img_labels;    /* class subfolder index per image, or NULL (flat folder) */
    size_t n_img;
    char **classes;
    size_t n_classes;
    oq_image_spec spec;
    int64_t img_dims[4];    /* the model input with the batch dim left out at [0] */
    int64_t img_h, img_w, img_c;
    bool nchw;
};

oq_reader_options oq_reader_options_default(void)
{
    oq_reader_options o = {0};
    return o;
}

static uint32_t rd16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const unsigned char *p) { return rd16(p) | rd16(p + 2) << 16; }
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static int64_t file_size(FILE *f)
{
    if (fseeko(f, 0, SEEK_END) != 0)
        return -1;
    return (int64_t)ftello(f);
}

static oq_status read_at(FILE *f, int64_t off, void *buf, size_t n, const char *path)
{
    if (fseeko(f, (off_t)off, SEEK_SET) != 0 || fread(buf, 1, n, f) != n)
        return oq_error(OQ_E_IO, "%s: cannot read %zu bytes at offset %lld (truncated file?)", path, n, (long long)off);
    return OQ_OK;
}

/* Parses the .npy header starting at `off`; fills loc with the whole array's shape in
 * dims/ndim (the caller splits off the sample axis). limit: bytes available after off. */
static oq_status parse_npy(FILE *f, int64_t off, int64_t limit, const char *what, array_loc *loc)
{
    unsigned char pre[12];
    if (limit < 10)
        return oq_error(OQ_E_PARSE, "%s: too short for a .npy array", what);
    oq_status st = read_at(f, off, pre, 10, what);
    if (st != OQ_OK)
        return st;
    if (memcmp(pre, "\x93NUMPY", 6) != 0)
        return oq_error(OQ_E_PARSE, "%s: not a .npy array (bad magic)", what);
    int64_t hstart = 10, hlen = rd16(pre + 8);
    if (pre[6] >= 2) {
        if ((st = read_at(f, off, pre, 12, what)) != OQ_OK)
            return st;
        hstart = 12;
        hlen = rd32(pre + 8);
    }
    if (hlen <= 0 || hlen > 65536 || hstart + hlen > limit)
        return oq_error(OQ_E_PARSE, "%s: .npy header length %lld does not fit the file", what, (long long)hlen);
    char *h = oq_malloc((size_t)hlen + 1);
    if (!h)
        return oq_error(OQ_E_NOMEM, "out of memory");
    if ((st = read_at(f, off + hstart, h, (size_t)hlen, what)) != OQ_OK) {
        free(h);
        return st;
    }
    h[hlen] = 0;
    const char *d = strstr(h, "'descr'"), *fo = strstr(h, "'fortran_order'"), *sh = strstr(h, "'shape'");
    char descr[16] = {0};
    if (d && (d = strchr(d + 7, '\'')) != NULL) {
        const char *e = strchr(d + 1, '\'');
        if (e && e - d - 1 < (long)sizeof descr)
            memcpy(descr, d + 1, (size_t)(e - d - 1));
    }
    static const struct { const char *descr; oq_dtype t; } types[] = {
        {"<f4", OQ_FLOAT}, {"<f8", OQ_DOUBLE}, {"|u1", OQ_UINT8}, {"|i1", OQ_INT8}, {"<i4", OQ_INT32},
        {"<i8", OQ_INT64}, {"|b1", OQ_BOOL}, {"<f2", OQ_FLOAT16}, {"<u2", OQ_UINT16}, {"<i2", OQ_INT16}};
    loc->dtype = OQ_UNDEFINED;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(descr, types[i].descr))
            loc->dtype = types[i].t;
    if (loc->dtype == OQ_UNDEFINED) {
        st = oq_error(OQ_E_UNSUPPORTED, "%s: .npy element type '%s' is not supported (little-endian numbers only)",
                      what, descr);
        goto done;
    }
    if (!fo || !sh) {
        st = oq_error(OQ_E_PARSE, "%s: .npy header lacks fortran_order or shape", what);
        goto done;
    }
    fo = strchr(fo + 15, ':');
    while (fo && isspace((unsigned char)*++fo)) {
    }
    if (!fo || strncmp(fo, "False", 5) != 0) {
        st = oq_error(OQ_E_UNSUPPORTED, "%s: Fortran-ordered arrays are not supported (save with np.ascontiguousarray)",
                      what);
        goto done;
    }
    const char *p = strchr(sh, '(');
    loc->ndim = 0;
    if (!p) {
        st = oq_error(OQ_E_PARSE, "%s: malformed shape in .npy header", what);
        goto done;
    }
    p++;
    for (;;) {
        while (isspace((unsigned char)*p) || *p == ',')
            p++;
        if (*p == ')')
            break;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || loc->ndim >= OQ_MAX_DIMS) {
            st = oq_error(OQ_E_PARSE, "%s: malformed shape in .npy header", what);
            goto done;
        }
        loc->dims[loc->ndim++] = v;
        p = end;
    }
    int64_t numel = oq_shape_numel(loc->ndim, loc->dims);
    size_t bytes;
    if (numel < 0 || oq_mul_overflow((size_t)numel, oq_dtype_size(loc->dtype), &bytes) ||
        (int64_t)bytes > limit - hstart - hlen) {
        st = oq_error(OQ_E_PARSE, "%s: the .npy data is shorter than its shape says", what);
        goto done;
    }
    loc->offset = off + hstart + hlen;
done:
    free(h);
    return st;
}

/* Finds the .npy entries of a zip archive (np.savez) and locates the ones named after inputs. */
static oq_status parse_npz(FILE *f, const char *path, oq_data_reader *r, array_loc *locs)
{
    int64_t size = file_size(f);
    unsigned char buf[64];
    if (size < 22)
        return oq_error(OQ_E_PARSE, "%s: too short for a .npz (zip) file", path);
    /* End of central directory: last 22 bytes unless the archive has a comment. */
    int64_t tail = size < 65557 ? size : 65557;
    unsigned char *t = oq_malloc((size_t)tail);
    if (!t)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = read_at(f, size - tail, t, (size_t)tail, path);
    int64_t eocd = -1;
    for (int64_t i = tail - 22; st == OQ_OK && i >= 0; i--)
        if (rd32(t + i) == 0x06054b50) {
            eocd = i;
            break;
        }
    if (st != OQ_OK || eocd < 0) {
        free(t);
        return st != OQ_OK ? st : oq_error(OQ_E_PARSE, "%s: not a .npz file (no zip directory)", path);
    }
    uint64_t n_entries = rd16(t + eocd + 10), cd_off = rd32(t + eocd + 16);
    if (eocd >= 20 && rd32(t + eocd - 20) == 0x07064b50) { /* zip64 locator */
        uint64_t z64 = rd64(t + eocd - 20 + 8);
        free(t);
        if ((st = read_at(f, (int64_t)z64, buf, 56, path)) != OQ_OK)
            return st;
        if (rd32(buf) != 0x06064b50)
            return oq_error(OQ_E_PARSE, "%s: bad zip64 directory record", path);
        n_entries = rd64(buf + 32);
        cd_off = rd64(buf + 48);
    } else {
        free(t);
    }
    if (cd_off >= (uint64_t)size)
        return oq_error(OQ_E_PARSE, "%s: zip directory offset out of range", path);
    int64_t pos = (int64_t)cd_off;
    for (uint64_t e = 0; e < n_entries; e++) {
        if ((st = read_at(f, pos, buf, 46, path)) != OQ_OK)
            return st;
        if (rd32(buf) != 0x02014b50)
            return oq_error(OQ_E_PARSE, "%s: bad zip directory entry %llu", path, (unsigned long long)e);
        uint32_t method = rd16(buf + 10), name_len = rd16(buf + 28), extra_len = rd16(buf + 30),
                 comment_len = rd16(buf + 32);
        uint64_t csize = rd32(buf + 20), usize = rd32(buf + 24), loff = rd32(buf + 42);
        char name[512];
        unsigned char extra[512];
        if (name_len >= sizeof name || extra_len > sizeof extra)
            return oq_error(OQ_E_PARSE, "%s: zip entry %llu has an oversized name or extra field", path,
                            (unsigned long long)e);
        if ((st = read_at(f, pos + 46, name, name_len, path)) != OQ_OK ||
            (st = read_at(f, pos + 46 + name_len, extra, extra_len, path)) != OQ_OK)
            return st;
        name[name_len] = 0;
        /* zip64 extra field: the 32-bit fields that overflowed, in this order */
        for (uint32_t x = 0; x + 4 <= extra_len;) {
            uint32_t id = rd16(extra + x), len = rd16(extra + x + 2), q = x + 4;
            if (id == 1) {
                if (usize == 0xffffffffu && q + 8 <= x + 4 + len)
                    usize = rd64(extra + q), q += 8;
                if (csize == 0xffffffffu && q + 8 <= x + 4 + len)
                    csize = rd64(extra + q), q += 8;
                if (loff == 0xffffffffu && q + 8 <= x + 4 + len)
                    loff = rd64(extra + q);
            }
            x += 4 + len;
        }
        pos += 46 + name_len + extra_len + comment_len;
        size_t nl = strlen(name);
        if (nl < 4 || strcmp(name + nl - 4, ".npy") != 0)
            continue;
        name[nl - 4] = 0;
        size_t k = 0;
        while (k < r->n_inputs && strcmp(r->names[k], name) != 0)
            k++;
        if (k == r->n_inputs) /* an extra array (labels, say) is not an error */
            continue;
        if (method != 0)
            return oq_error(OQ_E_UNSUPPORTED,
                            "%s: array '%s' is compressed (np.savez_compressed); save it with np.savez", path,
                            name);
        /* zip64 fields are 64-bit: compared so that no sum can wrap */
        if (csize != usize || loff >= (uint64_t)size || (uint64_t)size - loff < 30)
            return oq_error(OQ_E_PARSE, "%s: zip entry '%s' has inconsistent sizes", path, name);
        if ((st = read_at(f, (int64_t)loff, buf, 30, path)) != OQ_OK)
            return st;
        if (rd32(buf) != 0x04034b50)
            return oq_error(OQ_E_PARSE, "%s: bad local header for '%s'", path, name);
        int64_t data = (int64_t)loff + 30 + rd16(buf + 26) + rd16(buf + 28);
        if (data > size || usize > (uint64_t)(size - data))
            return oq_error(OQ_E_PARSE, "%s: entry '%s' runs past the end of the file", path, name);
        char what[700];
        snprintf(what, sizeof what, "%s:%s.npy", path, name);
        if ((st = parse_npy(f, data, (int64_t)usize, what, &locs[k])) != OQ_OK)
            return st;
    }
    for (size_t k = 0; k < r->n_inputs; k++)
        if (locs[k].dtype == OQ_UNDEFINED)
            return oq_error(OQ_E_INVALID_ARG, "%s: no array named '%s' (the model input); the .npz holds one "
                            "array per input name", path, r->names[k]);
    return OQ_OK;
}

static bool has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcasecmp(s + a - b, suf) == 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static oq_status add_file(oq_data_reader *r, size_t *cap, const char *path)
{
    if (oq_grow((void **)&r->files, cap, r->n_files + 1, sizeof *r->files) != OQ_OK)
        return oq_error(OQ_E_NOMEM, "out of memory");
    data_file *df = &r->files[r->n_files];
    memset(df, 0, sizeof *df);
    if (!(df->path = oq_strdup(path)))
        return oq_error(OQ_E_NOMEM, "out of memory");
    r->n_files++;
    return OQ_OK;
}

static oq_status list_sources(oq_data_reader *r, const char *source)
{
    size_t cap = 0;
    char *copy = oq_strdup(source), *save = NULL;
    if (!copy)
        return oq_error(OQ_E_NOMEM, "out of memory");
    oq_status st = OQ_OK;
    for (char *tok = strtok_r(copy, ",", &save); tok && st == OQ_OK; tok = strtok_r(NULL, ",", &save)) {
        struct stat sb;
        if (stat(tok, &sb) != 0) {
            st = oq_error(OQ_E_IO, "calibration data '%s' does not exist", tok);
            break;
        }
        if (!S_ISDIR(sb.st_mode)) {
            st = add_file(r, &cap, tok);
            continue;
        }
        DIR *dir = opendir(tok);
        if (!dir) {
            st = oq_error(OQ_E_IO, "cannot open folder '%s'", tok);
            break;
        }
        char **names = NULL;
        size_t n = 0, ncap = 0;
        struct dirent *de;
        while (st == OQ_OK && (de = readdir(dir)) != NULL) {
            if (!has_suffix(de->d_name, ".npy") && !has_suffix(de->d_name, ".npz"))
                continue;
            size_t len = strlen(tok) + strlen(de->d_name) + 2;
            char *full = oq_malloc(len);
            if (!full || oq_grow((void **)&names, &ncap, n + 1, sizeof *names) != OQ_OK) {
                free(full);
                st = oq_error(OQ_E_NOMEM, "out of memory");
                break;
            }
            snprintf(full, len, "%s/%s", tok, de->d_name);
            names[n++] = full;
        }
        closedir(dir);
        if (st == OQ_OK && n == 0)
            st = oq_error(OQ_E_INVALID_ARG, "folder '%s' holds no .npy or .npz files", tok);
        if (n)
            qsort(names, n, sizeof *names, cmp_str);
        for (size_t i = 0; i < n; i++) {
            if (st == OQ_OK)
                st = add_file(r, &cap, names[i]);
            free(names[i]);
        }
        free(names);
    }
    free(copy);
    if (st == OQ_OK && r->n_files == 0)
        st = oq_error(OQ_E_INVALID_ARG, "no calibration data given");
    return st;
}

/* Reads the headers of one file and checks its arrays against the model inputs. */
static oq_status scan_file(oq_data_reader *r, data_file *df, const oq_value_info *const *vis)
{
    FILE *f = fopen(df->path, "rb");
    if (!f)
        return oq_error(OQ_E_IO, "cannot open calibration file '%s'", df->path);
    df->arrays = oq_calloc(r->n_inputs, sizeof *df->arrays);
    oq_status st = df->arrays ? OQ_OK : oq_error(OQ_E_NOMEM, "out of memory");
    if (st == OQ_OK && has_suffix(df->path, ".npz")) {
        st = parse_npz(f, df->path, r, df->arrays);
    } else if (st == OQ_OK) {
        if (r->n_inputs != 1)
            st = oq_error(OQ_E_INVALID_ARG,
                          "%s: a .npy file holds one array but the model has %zu inputs; use a .npz with one "
                          "array per input name", df->path, r->n_inputs);
        else
            st = parse_npy(f, 0, file_size(f), df->path, &df->arrays[0]);
    }
    fclose(f);
    for (size_t k = 0; st == OQ_OK && k < r->n_inputs; k++) {
        array_loc *a = &df->arrays[k];
        const oq_value_info *vi = vis[k];
        if (a->ndim < 1) {
            st = oq_error(OQ_E_SHAPE, "%s: array for input '%s' is a scalar; the first axis must be the sample axis",
                          df->path, r->names[k]);
            break;
        }
        if (a->dtype != r->dtypes[k] && !(a->dtype == OQ_DOUBLE && r->dtypes[k] == OQ_FLOAT)) {
            st = oq_error(OQ_E_TYPE, "%s: array for input '%s' is %s but the model takes %s", df->path,
                          r->names[k], oq_dtype_name(a->dtype), oq_dtype_name(r->dtypes[k]));
            break;
        }
        int64_t n = a->dims[0];
        int whole = vi && vi->ndim >= 0 && a->ndim == vi->ndim + 1;
        if (vi && vi->ndim >= 0 && a->ndim != vi->ndim && !whole) {
            char b1[96], b2[96];
            st = oq_error(OQ_E_SHAPE, "%s: array for input '%s' has shape %s; the model takes %s (rank %d or %d "
                          "with the sample axis first)", df->path, r->names[k], oq_shape_str(a->ndim, a->dims, b1, sizeof b1),
                          oq_shape_str(vi->ndim, vi->dims, b2, sizeof b2), vi->ndim, vi->ndim + 1);
            break;
        }
        /* sample dims: the array without its first axis; compared with the model's known dims */
        int sd = a->ndim - 1;
        memmove(a->dims, a->dims + 1, sizeof(int64_t) * (size_t)sd);
        a->ndim = sd;
        a->n = n;
        const int64_t *mdims = vi && vi->ndim >= 0 ? (whole ? vi->dims : vi->dims + 1) : NULL;
        for (int d = 0; mdims && d < sd; d++)
            if (mdims[d] > 0 && mdims[d] != a->dims[d]) {
                char b1[96], b2[96];
                st = oq_error(OQ_E_SHAPE, "%s: a sample of input '%s' has shape %s but the model takes %s", df->path,
                              r->names[k], oq_shape_str(sd, a->dims, b1, sizeof b1),
                              oq_shape_str(vi->ndim, vi->dims, b2, sizeof b2));
                break;
            }
        if (st != OQ_OK)
            break;
        /* an empty sample takes no bytes, so the header alone could promise 2^62 of them */
        if (oq_shape_numel(sd, a->dims) == 0) {
            char b1[96];
            st = oq_error(OQ_E_SHAPE, "%s: the samples of input '%s' are empty (shape %s)", df->path, r->names[k],
                          oq_shape_str(sd, a->dims, b1, sizeof b1));
            break;
        }
        if (k == 0 && df == r->files) {
            r->whole = whole;
            r->sample_elems = oq_shape_numel(sd, a->dims);
        }
        if (k > 0 && n != df->arrays[0].n) {
            st = oq_error(OQ_E_SHAPE, "%s: input '%s' has %lld samples but '%s' has %lld", df->path, r->names[k],
                          (long long)n, r->names[0], (long long)df->arrays[0].n);
            break;
        }
        const array_loc *first = &r->files[0].arrays[k];
        if (df != r->files && !oq_shape_equal(first->ndim, first->dims, a->ndim, a->dims)) {
            st = oq_error(OQ_E_SHAPE, "%s: samples of input '%s' differ in shape from those in %s", df->path,
                          r->names[k], r->files[0].path);
            break;
        }
        if (whole != r->whole) {
            st = oq_error(OQ_E_SHAPE, "%s: inputs disagree on whether the first axis is an extra sample axis",
                          df->path);
            break;
        }
    }
    if (st == OQ_OK)
        df->n = df->arrays[0].n;
    return st;
}

void oq_data_reader_destroy(oq_data_reader *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_files; i++) {
        free(r->files[i].path);
        free(r->files[i].arrays);
    }
    free(r->files);
    for (size_t k = 0; k < r->n_inputs; k++) {
        free(r->names ? r->names[k] : NULL);
        if (r->cur)
            oq_tensor_destroy(r->cur[k]);
    }
    free(r->names);
    free(r->dtypes);
    free(r->cur);
    free(r->scratch);
    free(r->labels);
    for (size_t i = 0; i < r->n_img; i++)
        free(r->img_paths[i]);
    free(r->img_paths);
    free(r->img_labels);
    for (size_t i = 0; i < r->n_classes; i++)
        free(r->classes[i]);
    free(r->classes);
    if (r->f)
        fclose(r->f);
    free(r);
}

/* Reads the labels file: integers, first axis = samples, `samples` of them. */
static oq_status load_labels(oq_data_reader *r, const char *path, int64_t samples)
{
    oq_tensor *t = NULL;
    oq_status st = oq_npy_load(path, &t);
    if (st != OQ_OK)
        return oq_error_context(st, "labels file '%s'", path);
    int64_t n = t->ndim > 0 ? t->dims[0] : 1, numel = oq_tensor_numel(t);
    if (t->ndim > 2 || (t->ndim == 2 && t->dims[1] != 1))
        st = oq_error(OQ_E_SHAPE, "labels file '%s': expected one label per sample (shape [N] or [N,1]), got rank %d",
                      path, t->ndim);
    else if (n != samples)
        st = oq_error(OQ_E_SHAPE, "labels file '%s' holds %lld labels but the data holds %lld samples", path,
                      (long long)n, (long long)samples);
    else if (!(r->labels = oq_malloc((size_t)(numel > 0 ? numel : 1) * sizeof *r->labels)))
        st = oq_error(OQ_E_NOMEM, "out of memory");
    for (int64_t i = 0; st == OQ_OK && i < numel; i++) {
        switch (t->dtype) {
        case OQ_INT64: r->labels[i] = ((const int64_t *)t->data)[i]; break;
        case OQ_INT32: r->labels[i] = ((const int32_t *)t->data)[i]; break;
        case OQ_INT16: r->labels[i] = ((const int16_t *)t->data)[i]; break;
        case OQ_INT8: r->labels[i] = ((const int8_t *)t->data)[i]; break;
        case OQ_UINT8: r->labels[i] = ((const uint8_t *)t->data)[i]; break;
        case OQ_UINT16: r->labels[i] = ((const uint16_t *)t->data)[i]; break;
        case OQ_UINT32: r->labels[i] = ((const uint32_t *)t->data)[i]; break;
        default:
            st = oq_error(OQ_E_TYPE, "labels file '%s' holds %s values; class labels must be integers", path,
                          oq_dtype_name(t->dtype));
        }
    }
    oq_tensor_destroy(t);
    return st;
}

oq_status oq_data_reader_labels(const oq_data_reader *r, const int64_t **labels, size_t *n)
{
    if (!r || !labels || !n)
        return oq_error(OQ_E_INVALID_ARG, "oq_data_reader_labels: NULL argument");
    *labels = r->labels && r->last_n > 0 ? r->labels + r->last_first : NULL;
    *n = *labels ? (size_t)r->last_n : 0;
    return OQ_OK;
}

const char *oq_data_reader_class_name(const oq_data_reader *r, int64_t label)
{
    if (!r || label < 0 || (size_t)label >= r->n_classes)
        return NULL; /* .npy/.npz sources and flat image folders have no class names */
    return r->classes[label];
}

/* ---- image folders ---- */

static oq_status push_str(char ***arr, size_t *n, size_t *cap, const char *a, const char *b)
{
    size_t len = strlen(a) + (b ? strlen(b) + 1 : 0) + 1;
    char *s = oq_malloc(len);
    if (!s || oq_grow((void **)arr, cap, *n + 1, sizeof **arr) != OQ_OK) {
        free(s);
        return oq_error(OQ_E_NOMEM, "out of memory");
    }
    if (b)
        snprintf(s, len, "%s/%s", a, b);
    else
        snprintf(s, len, "%s", a);
    (*arr)[(*n)++] = s;
    return OQ_OK;
}

/* Sorted image files of dir (into paths), and sorted subfolder names (into subs, may be NULL). */
static oq_status scan_dir(const char *dir, char ***paths, size_t *n, size_t *cap, char ***subs, size_t *n_subs,
                          size_t *cap_subs)
{
    DIR *d = opendir(dir);
    if (!d)
        return oq_error(OQ_E_IO, "cannot open folder '%s'", dir);
    size_t first = *n, first_sub = n_subs ? *n_subs : 0;
    oq_status st = OQ_OK;
    struct dirent *de;
    while (st == OQ_OK && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (oq_is_image_file(de->d_name)) {
            st = push_str(paths, n, cap, dir, de->d_name);
            continue;
        }
        if (!subs)
            continue;
        char full[4096];
        struct stat sb;
        snprintf(full, sizeof full, "%s/%s", dir, de->d_name);
        if (stat(full, &sb) == 0 && S_ISDIR(sb.st_mode))
            st = push_str(subs, n_subs, cap_subs, de->d_name, NULL);
    }
    closedir(d);
    if (*n > first)
        qsort(*paths + first, *n - first, sizeof **paths, cmp_str);
    if (subs && *n_subs > first_sub)
        qsort(*subs + first_sub, *n_subs - first_sub, sizeof **subs, cmp_str);
    return st;
}

/* A folder of images, or of class subfolders of images (labels: subfolder index). Returns
 * OQ_OK with r->images 0 when `source` is not such a folder. */
static oq_status list_images(oq_data_reader *r, const char *source)
{
    struct stat sb;
    if (strchr(source, ',') || stat(source, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return OQ_OK;
    size_t cap = 0, cap_sub = 0, n_sub = 0;
    char **subs = NULL;
    oq_status st = scan_dir(source, &r->img_paths, &r->n_img, &cap, &subs, &n_sub, &cap_sub);
    if (st == OQ_OK && r->n_img == 0 && n_sub > 0) {
        /* class subfolders: the label of an image is its subfolder's index in sorted order */
        size_t cap_l = 0;
        for (size_t k = 0; k < n_sub && st == OQ_OK; k++) {
            char dir[4096];
            size_t before = r->n_img;
            snprintf(dir, sizeof dir, "%s/%s", source, subs[k]);
            st = scan_dir(dir, &r->img_paths, &r->n_img, &cap, NULL, NULL, NULL);
            if (st == OQ_OK && r->n_img > before) {
                size_t cls = r->n_classes;
                st = oq_grow((void **)&r->img_labels, &cap_l, r->n_img, sizeof *r->img_labels) == OQ_OK
                         ? OQ_OK
                         : oq_error(OQ_E_NOMEM, "out of memory");
                for (size_t i = before; st == OQ_OK && i < r->n_img; i++)
                    r->img_labels[i] = (int64_t)cls;
                size_t cap_c = r->n_classes;
                if (st == OQ_OK)
                    st = push_str(&r->classes, &r->n_classes, &cap_c, subs[k], NULL);
            }
        }
    }
    for (size_t k = 0; k < n_sub; k++)
        free(subs[k]);
    free(subs);
    r->images = st == OQ_OK && r->n_img > 0;
    return st;
}

/* The model input an image batch fills: one rank-4 float or uint8 input. */
static oq_status image_input(oq_data_reader *r, const oq_value_info *vi, const char *source, const char *spec)
{
    oq_status st = oq_image_spec_parse(spec, &r->spec);
    if (st != OQ_OK)
        return st;
    if (r->n_inputs != 1 || vi->ndim != 4 || (vi->dtype != OQ_FLOAT && vi->dtype != OQ_UINT8))
        return oq_error(OQ_E_INVALID_ARG,
                        "image folder '%s': the model must have one float or uint8 input of rank 4 (input '%s' "
                        "has rank %d, %s)",
                        source, vi->name, vi->ndim, oq_dtype_name(vi->dtype));
    const int64_t *d = vi->dims;
    if (r->spec.layout)
        r->nchw = r->spec.layout == 1;
    else if (d[1] == 1 || d[1] == 3)
        r->nchw = true;
    else if (d[3] == 1 || d[3] == 3)
        r->nchw = false;
    else
        return oq_error(OQ_E_INVALID_ARG,
                        "image folder '%s': cannot tell the layout of input '%s'; give layout=nchw|nhwc in the "
                        "image spec", source, vi->name);
    r->img_c = r->nchw ? d[1] : d[3];
    r->img_h = r->nchw ? d[2] : d[1];
    r->img_w = r->nchw ? d[3] : d[2];
    if (r->spec.crop_h > 0) {
        if ((r->img_h > 0 && r->img_h != r->spec.crop_h) || (r->img_w > 0 && r->img_w != r->spec.crop_w))
            return oq_error(OQ_E_SHAPE, "image folder '%s': crop %lldx%lld does not match input '%s' (%lldx%lld)",
                            source, (long long)r->spec.crop_h, (long long)r->spec.crop_w, vi->name,
                            (long long)r->img_h, (long long)r->img_w);
        r->img_h = r->spec.crop_h;
        r->img_w = r->spec.crop_w;
    }
    if (r->img_c != 1 && r->img_c != 3)
        return oq_error(OQ_E_INVALID_ARG, "image folder '%s': input '%s' has %lld channels (images give 1 or 3)",
                        source, vi->name, (long long)r->img_c);
    if (r->img_h <= 0 || r->img_w <= 0)
        return oq_error(OQ_E_INVALID_ARG,
                        "image folder '%s': input '%s' has a free height/width; give crop=HxW in the image spec",
                        source, vi->name);
    r->img_dims[1] = r->nchw ? r->img_c : r->img_h;
    r->img_dims[2] = r->nchw ? r->img_h : r->img_w;
    r->img_dims[3] = r->nchw ? r->img_w : r->img_c;
    return OQ_OK;
}

static oq_status next_images(oq_data_reader *r, int64_t want)
{
    int64_t dims[4] = {want, r->img_dims[1], r->img_dims[2], r->img_dims[3]};
    oq_tensor *t = r->cur[0];
    oq_status st = OQ_OK;
    if (!t || !oq_shape_equal(t->ndim, t->dims, 4, dims)) {
        oq_tensor_destroy(t);
        r->cur[0] = NULL;
        if ((st = oq_tensor_create(r->dtypes[0], 4, dims, &r->cur[0])) != OQ_OK)
            return st;
        t = r->cur[0];
    }
    size_t per = t->nbytes / (size_t)want;
    for (int64_t i = 0; i < want && st == OQ_OK; i++) {
        const char *path = r->img_paths[r->delivered + i];
        uint8_t *px = NULL;
        int w = 0, h = 0;
        st = oq_image_load(path, (int)r->img_c, &px, &w, &h);
        if (st == OQ_OK)
            oq_image_preprocess(px, w, h, (int)r->img_c, &r->spec, r->img_h, r->img_w, r->nchw, t->dtype,
                                (char *)t->data + per * (size_t)i);
        free(px);
    }
    return st;
}

oq_status oq_data_reader_open(const char *source, const oq_model *m, const oq_reader_options *opt,
                              oq_data_reader **out)
{
    if (!source || !m || !m->graph || !out)
        return oq_error(OQ_E_INVALID_ARG, "oq_data_reader_open: NULL argument");
    oq_reader_options o = opt ? *opt : oq_reader_options_default();
    const oq_graph *g = m->graph;
    oq_data_reader *r = oq_calloc(1, sizeof *r);
    const oq_value_info **vis = oq_calloc(g->n_inputs + 1, sizeof *vis);
    oq_status st = r && vis ? OQ_OK : oq_error(OQ_E_NOMEM, "out of memory");
    if (st == OQ_OK) {
        r->f_index = SIZE_MAX;
        r->names = oq_calloc(g->n_inputs + 1, sizeof *r->names);
        r->dtypes = oq_calloc(g->n_inputs + 1, sizeof *r->dtypes);
        r->cur = oq_calloc(g->n_inputs + 1, sizeof *r->cur);
        if (!r->names || !r->dtypes || !r->cur)
            st = oq_error(OQ_E_NOMEM, "out of memory");
    }
    /* inputs that are not initializers, in graph order (the session's order) */
    for (size_t i = 0; st == OQ_OK && i < g->n_inputs; i++) {
        if (oq_graph_initializer(g, g->inputs[i].name))
            continue;
        vis[r->n_inputs] = &g->inputs[i];
        r->dtypes[r->n_inputs] = g->inputs[i].dtype;
        if (!(r->names[r->n_inputs++] = oq_strdup(g->inputs[i].name)))
            st = oq_error(OQ_E_NOMEM, "out of memory");
    }
    if (st == OQ_OK && r->n_inputs == 0)
        st = oq_error(OQ_E_INVALID_ARG, "the model has no inputs to feed");
    if (st == OQ_OK)
        st = list_images(r, source);
    if (st == OQ_OK && r->images) {
        st = image_input(r, vis[0], source, o.image_spec);
        if (st == OQ_OK) {
            r->total = (int64_t)r->n_img;
            int64_t fixed = vis[0]->dims[0];
            r->batch = fixed > 0 ? fixed : o.batch_size ? (int64_t)o.batch_size : DEFAULT_BATCH;
            r->max_samples = (int64_t)o.max_samples;
            if (r->max_samples > 0 && r->total > r->max_samples)
                r->total = r->max_samples;
            if (fixed > 0)
                r->total -= r->total % fixed;
            if (r->total == 0)
                st = oq_error(OQ_E_INVALID_ARG, "image folder '%s' holds no complete batch of %lld images", source,
                              (long long)r->batch);
        }
        if (st == OQ_OK && o.labels)
            st = load_labels(r, o.labels, (int64_t)r->n_img);
        else if (st == OQ_OK && r->img_labels) {
            r->labels = r->img_labels;
            r->img_labels = NULL;
        }
        free(vis);
        if (st != OQ_OK) {
            oq_data_reader_destroy(r);
            return st;
        }
        *out = r;
        return OQ_OK;
    }
    if (st == OQ_OK)
        st = list_sources(r, source);
    for (size_t i = 0; st == OQ_OK && i < r->n_files; i++) {
        st = scan_file(r, &r->files[i], vis);
        r->total += r->files[i].n;
    }
    if (st == OQ_OK) {
        const oq_value_info *vi = vis[0];
        int64_t fixed = vi->ndim > 0 ? vi->dims[0] : -1;
        if (r->whole)
            r->batch = 1;
        else if (fixed > 0)
            r->batch = fixed;
        else
            r->batch = o.batch_size ? (int64_t)o.batch_size : DEFAULT_BATCH;
        r->max_samples = (int64_t)o.max_samples;
        if (r->max_samples > 0 && r->total > r->max_samples)
            r->total = r->max_samples;
        if (!r->whole && fixed > 0)
            r->total -= r->total % fixed; /* a fixed batch cannot take a partial one */
        if (r->total == 0)
            st = oq_error(OQ_E_INVALID_ARG, "calibration data '%s' holds no complete batch of %lld samples", source,
                          (long long)r->batch);
    }
    if (st == OQ_OK && o.labels) {
        int64_t all = 0;
        for (size_t i = 0; i < r->n_files; i++)
            all += r->files[i].n;
        st = load_labels(r, o.labels, all);
    }
    free(vis);
    if (st != OQ_OK) {
        oq_data_reader_destroy(r);
        return st;
    }
    *out = r;
    return OQ_OK;
}

size_t oq_data_reader_input_count(const oq_data_reader *r) { return r ? r->n_inputs : 0; }
int64_t oq_data_reader_sample_count(const oq_data_reader *r) { return r ? r->total : 0; }
int64_t oq_data_reader_delivered(const oq_data_reader *r) { return r ? r->delivered : 0; }

oq_status oq_data_reader_rewind(oq_data_reader *r)
{
    if (!r)
        return oq_error(OQ_E_INVALID_ARG, "oq_data_reader_rewind: NULL argument");
    r->fi = 0;
    r->si = 0;
    r->delivered = 0;
    r->last_n = 0;
    return OQ_OK;
}

/* Copies `count` samples of input k from the current file into dst. */
static oq_status read_samples(oq_data_reader *r, size_t k, int64_t count, char *dst)
{
    const data_file *df = &r->files[r->fi];
    const array_loc *a = &df->arrays[k];
    int64_t elems = oq_shape_numel(a->ndim, a->dims);
    size_t fsz = oq_dtype_size(a->dtype), n = (size_t)(elems * count);
    int64_t off = a->offset + r->si * elems * (int64_t)fsz;
    if (r->f_index != r->fi) {
        if (r->f)
            fclose(r->f);
        r->f_index = SIZE_MAX;
        if (!(r->f = fopen(df->path, "rb")))
            return oq_error(OQ_E_IO, "cannot open calibration file '%s'", df->path);
        r->f_index = r->fi;
    }
    if (a->dtype == r->dtypes[k])
        return read_at(r->f, off, dst, n * fsz, df->path);
    /* float64 file, float32 model */
    if (r->scratch_bytes < n * fsz) {
        void *p = oq_realloc(r->scratch, n * fsz);
        if (!p)
            return oq_error(OQ_E_NOMEM, "out of memory");
        r->scratch = p;
        r->scratch_bytes = n * fsz;
    }
    oq_status st = read_at(r->f, off, r->scratch, n * fsz, df->path);
    const double *s = r->scratch;
    for (size_t i = 0; st == OQ_OK && i < n; i++)
        ((float *)(void *)dst)[i] = (float)s[i];
    return st;
}

oq_status oq_data_reader_next(oq_data_reader *r, const oq_tensor *const **batch)
{
    if (!r || !batch)
        return oq_error(OQ_E_INVALID_ARG, "oq_data_reader_next: NULL argument");
    int64_t want = r->batch;
    if (r->total - r->delivered < want)
        want = r->total - r->delivered;
    r->last_n = 0;
    if (want <= 0) {
        *batch = NULL;
        return OQ_OK;
    }
    oq_status st = OQ_OK;
    if (r->images) {
        if ((st = next_images(r, want)) != OQ_OK)
            return st;
        r->last_first = r->delivered;
        r->last_n = want;
        r->delivered += want;
        *batch = (const oq_tensor *const *)r->cur;
        return OQ_OK;
    }
    for (size_t k = 0; k < r->n_inputs && st == OQ_OK; k++) {
        const array_loc *a = &r->files[0].arrays[k];
        int64_t dims[OQ_MAX_DIMS];
        int nd = 0;
        if (!r->whole)
            dims[nd++] = want;
        for (int d = 0; d < a->ndim; d++)
            dims[nd++] = a->dims[d];
        oq_tensor *t = r->cur[k];
        /* reuse the buffer while the shape stays (every batch but perhaps the last) */
        if (!t || !oq_shape_equal(t->ndim, t->dims, nd, dims)) {
            oq_tensor_destroy(t);
            r->cur[k] = NULL;
            st = oq_tensor_create(r->dtypes[k], nd, dims, &r->cur[k]);
        }
    }
    int64_t got = 0;
    while (st == OQ_OK && got < want) {
        while (r->fi < r->n_files && r->si >= r->files[r->fi].n) {
            r->fi++;
            r->si = 0;
        }
        if (r->fi >= r->n_files)
            return oq_error(OQ_E_RUNTIME, "calibration data ended early");
        int64_t take = r->files[r->fi].n - r->si;
        if (take > want - got)
            take = want - got;
        for (size_t k = 0; k < r->n_inputs && st == OQ_OK; k++) {
            oq_tensor *t = r->cur[k];
            size_t per = t->nbytes / (size_t)want;
            st = read_samples(r, k, take, (char *)t->data + per * (size_t)got);
        }
        r->si += take;
        got += take;
    }
    if (st != OQ_OK)
        return st;
    r->last_first = r->delivered;
    r->last_n = want;
    r->delivered += want;
    *batch = (const oq_tensor *const *)r->cur;
    return OQ_OK;
}
