/* quant/rescaled: the record, in the quantized model's metadata, of values the quantizer rescaled
 * per channel. The data-driven equalization divides channel c of a group of values by k_c and
 * gives them new names: the float model has no value of that name, and `onnxq debug` could not
 * compare those layers. Each group is written as one metadata entry, key "onnxq.rescaled.N",
 * value
 *     axis 1
 *     divisor <base64 of ch bfloat16, little-endian>
 *     <new name> TAB <name in the prepared float model>      (one line per value)
 * meaning new[..., c, ...] = old[..., c, ...] / divisor[c] along axis. The equalization rounds its
 * divisors to bfloat16, so 2 bytes hold each exactly (ocr_cls: 21 groups, 5.6 KB in a 0.2 MB
 * file). Names hold no TAB or newline (the writer skips a group whose names do). */
#include "quant/quant.h"

#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = B64[v >> 18 & 63];
        out[o++] = B64[v >> 12 & 63];
        out[o++] = i + 1 < n ? B64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? B64[v & 63] : '=';
    }
    out[o] = 0;
    return o;
}

static int b64_value(char c)
{
    const char *p = c ? strchr(B64, c) : NULL;
    return p ? (int)(p - B64) : -1;
}

/* Decodes len characters of s into out (room for len / 4 * 3 bytes); the byte count, or -1. */
static long b64_decode(const char *s, size_t len, uint8_t *out)
{
    if (len % 4)
        return -1;
    long o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
            } else if ((v[k] = b64_value(s[i + k])) < 0 || pad) {
                return -1;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[o++] = (uint8_t)(w >> 16);
        if (pad < 2)
            out[o++] = (uint8_t)(w >> 8);
        if (pad < 1)
            out[o++] = (uint8_t)w;
    }
    return o;
}

double quant_round_bf16(double x)
{
    float f = (float)x;
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) /* inf and NaN stay */
        u += 0x7fffu + (u >> 16 & 1);
    u &= 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

static bool plain_name(const char *s) { return s && s[0] && !strpbrk(s, "\t\n"); }

oq_status quant_note_rescaled(oq_model *m, const char *const *from, const char *const *to, size_t n, int axis,
                              const double *divisor, int64_t ch)
{
    if (!n || ch <= 0)
        return OQ_OK;
    size_t len = 64 + ((size_t)ch * 2 + 2) / 3 * 4;
    for (size_t i = 0; i < n; i++) {
        if (!plain_name(from[i]) || !plain_name(to[i]))
            return OQ_OK; /* a name the format cannot hold: that group is not recorded */
        len += strlen(from[i]) + strlen(to[i]) + 2;
    }
    uint8_t *bytes = oq_malloc((size_t)ch * 2);
    char *v = oq_malloc(len), key[48];
    oq_status st = bytes && v ? oq_grow((void **)&m->metadata, &(size_t){m->n_metadata}, m->n_metadata + 1,
                                        sizeof *m->metadata)
                              : oq_error(OQ_E_NOMEM, "out of memory");
    if (st == OQ_OK) {
        for (int64_t c = 0; c < ch; c++) {
            float f = (float)quant_round_bf16(divisor[c]);
            uint32_t u;
            memcpy(&u, &f, 4);
            bytes[2 * c] = (uint8_t)(u >> 16);
            bytes[2 * c + 1] = (uint8_t)(u >> 24);
        }
        size_t o = (size_t)snprintf(v, len, "axis %d\ndivisor ", axis);
        o += b64_encode(bytes, (size_t)ch * 2, v + o);
        for (size_t i = 0; i < n; i++)
            o += (size_t)snprintf(v + o, len - o, "\n%s\t%s", to[i], from[i]);
        size_t count = 0;
        for (size_t i = 0; i < m->n_metadata; i++)
            count += !strncmp(m->metadata[i].key, "onnxq.rescaled.", 15);
        snprintf(key, sizeof key, "onnxq.rescaled.%zu", count);
        oq_string_pair *p = &m->metadata[m->n_metadata];
        p->key = oq_strdup(key);
        p->value = v;
        v = NULL;
        if (!p->key) {
            free(p->value);
            st = oq_error(OQ_E_NOMEM, "out of memory");
        } else {
            m->n_metadata++;
        }
    }
    free(bytes);
    free(v);
    return st;
}

void quant_rescaled_free(quant_rescaled *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++) {
        free(r[i].from);
        free(r[i].to);
        free(r[i].divisor);
    }
    free(r);
}

/* One entry's value; appends its values to *r. A malformed entry is skipped (returns OQ_OK). */
static oq_status read_entry(const char *v, quant_rescaled **r, size_t *n, size_t *cap)
{
    /* "axis N\ndivisor BASE64": strtol, whose overflow is defined (sscanf's %d is not) */
    if (strncmp(v, "axis ", 5))
        return OQ_OK;
    char *rest;
    errno = 0;
    long ax = strtol(v + 5, &rest, 10);
    if (errno || rest == v + 5 || ax < 0 || ax > OQ_MAX_DIMS || strncmp(rest, "\ndivisor ", 9))
        return OQ_OK;
    int axis = (int)ax;
    const char *f = rest + 9, *end = strchr(f, '\n');
    size_t flen = end ? (size_t)(end - f) : strlen(f);
    uint8_t *bytes = oq_malloc(flen / 4 * 3 + 4);
    if (!bytes)
        return oq_error(OQ_E_NOMEM, "out of memory");
    long nb = b64_decode(f, flen, bytes);
    if (nb <= 0 || nb % 2) {
        free(bytes);
        return OQ_OK;
    }
    int64_t ch = nb / 2;
    oq_status st = OQ_OK;
    for (const char *line = end; st == OQ_OK && line && line[0] == '\n';) {
        line++;
        const char *tab = strchr(line, '\t'), *eol = strchr(line, '\n');
        if (!eol)
            eol = line + strlen(line);
        if (!tab || tab > eol || tab == line || tab + 1 == eol) {
            line = *eol ? eol : NULL;
            continue;
        }
        if ((st = oq_grow((void **)r, cap, *n + 1, sizeof **r)) != OQ_OK)
            break;
        quant_rescaled *e = &(*r)[*n];
        memset(e, 0, sizeof *e);
        e->axis = axis;
        e->ch = ch;
        e->to = oq_strndup(line, (size_t)(tab - line));
        e->from = oq_strndup(tab + 1, (size_t)(eol - tab - 1));
        e->divisor = oq_malloc((size_t)ch * sizeof *e->divisor);
        if (!e->to || !e->from || !e->divisor) {
            free(e->to), free(e->from), free(e->divisor);
            st = oq_error(OQ_E_NOMEM, "out of memory");
            break;
        }
        for (int64_t c = 0; c < ch; c++) {
            uint32_t u = (uint32_t)bytes[2 * c] << 16 | (uint32_t)bytes[2 * c + 1] << 24;
            memcpy(&e->divisor[c], &u, 4);
        }
        (*n)++;
        line = *eol ? eol : NULL;
    }
    free(bytes);
    return st;
}

oq_status quant_rescaled_read(const oq_model *m, quant_rescaled **out, size_t *n_out)
{
    quant_rescaled *r = NULL;
    size_t n = 0, cap = 0;
    oq_status st = OQ_OK;
    for (size_t i = 0; st == OQ_OK && i < m->n_metadata; i++)
        if (m->metadata[i].key && m->metadata[i].value && !strncmp(m->metadata[i].key, "onnxq.rescaled.", 15))
            st = read_entry(m->metadata[i].value, &r, &n, &cap);
    if (st != OQ_OK) {
        quant_rescaled_free(r, n);
        return st;
    }
    *out = r;
    *n_out = n;
    return OQ_OK;
}

/* Appends n bytes of s to buf (NUL-terminated, grown as needed). */
static oq_status append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (oq_grow((void **)buf, cap, *len + n + 1, 1) != OQ_OK)
        return oq_error(OQ_E_NOMEM, "out of memory");
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    return OQ_OK;
}

oq_status quant_rescaled_rename(oq_model *m, const char *(*rename)(void *user, const char *name), void *user)
{
    for (size_t i = 0; i < m->n_metadata; i++) {
        oq_string_pair *p = &m->metadata[i];
        if (!p->key || !p->value || strncmp(p->key, "onnxq.rescaled.", 15))
            continue;
        /* the two header lines stay; each value line is "new TAB float" */
        const char *v = p->value, *body = strchr(v, '\n');
        body = body ? strchr(body + 1, '\n') : NULL;
        if (!body)
            continue;
        char *out = NULL;
        size_t len = 0, cap = 0;
        oq_status st = append(&out, &len, &cap, v, (size_t)(body - v));
        for (const char *l = body; st == OQ_OK && l && *l == '\n'; l = strchr(l + 1, '\n')) {
            const char *tab = strchr(l + 1, '\t'), *eol = strchr(l + 1, '\n'), *end = eol ? eol : l + strlen(l);
            char *to = tab && tab < end ? oq_strndup(l + 1, (size_t)(tab - l - 1)) : NULL;
            const char *r = to ? rename(user, to) : NULL;
            st = append(&out, &len, &cap, "\n", 1);
            if (st == OQ_OK && r)
                st = append(&out, &len, &cap, r, strlen(r));
            if (st == OQ_OK && r) /* the rest of the line from the TAB, or all of it */
                st = append(&out, &len, &cap, tab, (size_t)(end - tab));
            else if (st == OQ_OK)
                st = append(&out, &len, &cap, l + 1, (size_t)(end - l - 1));
            free(to);
        }
        if (st != OQ_OK) {
            free(out);
            return st;
        }
        free(p->value);
        p->value = out;
    }
    return OQ_OK;
}
