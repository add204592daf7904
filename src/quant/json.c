/* quant/json: a small JSON reader and string writer for the quantizer's rules
 * files and calibration tables. Recursion depth and sizes are bounded; errors
 * name the file and line. */
#include "quant/quant.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

typedef struct jparser {
    const char *s, *end, *what;
    int depth;
} jparser;

static int line_of(const jparser *p, const char *at)
{
    int line = 1;
    for (const char *c = at; c > p->s; c--)
        if (c[-1] == '\n')
            line++;
    return line;
}

static oq_status jerr(const jparser *p, const char *at, const char *msg)
{
    return oq_error(OQ_E_PARSE, "%s:%d: %s", p->what, line_of(p, at), msg);
}

static void skip_ws(jparser *p, const char **c)
{
    while (*c < p->end && (**c == ' ' || **c == '\t' || **c == '\n' || **c == '\r'))
        (*c)++;
}

static oq_status parse_value(jparser *p, const char **c, json_value *v);

static oq_status parse_string(jparser *p, const char **c, char **out)
{
    const char *s = *c + 1;
    size_t cap = 16, n = 0;
    char *buf = oq_malloc(cap);
    if (!buf)
        return oq_error(OQ_E_NOMEM, "out of memory");
    for (;;) {
        if (s >= p->end) {
            free(buf);
            return jerr(p, *c, "unterminated string");
        }
        char ch = *s++;
        if (ch == '"')
            break;
        if (ch == '\\') {
            if (s >= p->end) {
                free(buf);
                return jerr(p, *c, "unterminated string");
            }
            char e = *s++;
            switch (e) {
            case 'n': ch = '\n'; break;
            case 't': ch = '\t'; break;
            case 'r': ch = '\r'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'u': {
                unsigned u = 0;
                for (int i = 0; i < 4; i++, s++) {
                    if (s >= p->end) {
                        free(buf);
                        return jerr(p, *c, "bad \\u escape");
                    }
                    char h = *s;
                    u = u * 16 + (unsigned)(h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                                            : h >= 'A' && h <= 'F' ? h - 'A' + 10 : 0);
                }
                ch = u < 128 ? (char)u : '?'; /* names are ASCII in practice */
                break;
            }
            default: ch = e; break;
            }
        }
        if (n + 2 > cap) {
            char *nb = oq_realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                return oq_error(OQ_E_NOMEM, "out of memory");
            }
            buf = nb;
        }
        buf[n++] = ch;
    }
    buf[n] = 0;
    *c = s;
    *out = buf;
    return OQ_OK;
}

static oq_status parse_container(jparser *p, const char **c, json_value *v, bool object)
{
    size_t cap = 0;
    v->type = object ? JSON_OBJECT : JSON_ARRAY;
    (*c)++;
    skip_ws(p, c);
    if (*c < p->end && **c == (object ? '}' : ']')) {
        (*c)++;
        return OQ_OK;
    }
    for (;;) {
        size_t kcap = cap;
        if (oq_grow((void **)&v->items, &cap, v->n + 1, sizeof *v->items) != OQ_OK ||
            (object && oq_grow((void **)&v->keys, &kcap, v->n + 1, sizeof *v->keys) != OQ_OK))
            return oq_error(OQ_E_NOMEM, "out of memory");
        memset(&v->items[v->n], 0, sizeof *v->items);
        skip_ws(p, c);
        if (object) {
            if (*c >= p->end || **c != '"')
                return jerr(p, *c, "expected a member name in quotes");
            v->keys[v->n] = NULL;
            oq_status st = parse_string(p, c, &v->keys[v->n]);
            v->n++; /* counted now so json_free releases the name on any error below */
            if (st != OQ_OK)
                return st;
            skip_ws(p, c);
            if (*c >= p->end || **c != ':')
                return jerr(p, *c, "expected ':'");
            (*c)++;
        } else {
            v->n++;
        }
        oq_status st = parse_value(p, c, &v->items[v->n - 1]);
        if (st != OQ_OK)
            return st;
        skip_ws(p, c);
        if (*c < p->end && **c == ',') {
            (*c)++;
            continue;
        }
        if (*c < p->end && **c == (object ? '}' : ']')) {
            (*c)++;
            return OQ_OK;
        }
        return jerr(p, *c, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static oq_status parse_value(jparser *p, const char **c, json_value *v)
{
    memset(v, 0, sizeof *v);
    skip_ws(p, c);
    if (*c >= p->end)
        return jerr(p, *c, "unexpected end of text");
    if (++p->depth > JSON_MAX_DEPTH)
        return jerr(p, *c, "nested too deeply");
    oq_status st = OQ_OK;
    char ch = **c;
    size_t left = (size_t)(p->end - *c);
    if (ch == '{' || ch == '[') {
        st = parse_container(p, c, v, ch == '{');
    } else if (ch == '"') {
        v->type = JSON_STRING;
        st = parse_string(p, c, &v->str);
    } else if (left >= 4 && !strncmp(*c, "true", 4)) {
        v->type = JSON_BOOL, v->num = 1, *c += 4;
    } else if (left >= 5 && !strncmp(*c, "false", 5)) {
        v->type = JSON_BOOL, *c += 5;
    } else if (left >= 4 && !strncmp(*c, "null", 4)) {
        v->type = JSON_NULL, *c += 4;
    } else {
        char num[64];
        size_t n = 0;
        while (*c + n < p->end && n < sizeof num - 1 && strchr("+-0123456789.eE", (*c)[n]))
            n++;
        memcpy(num, *c, n);
        num[n] = 0;
        char *e;
        errno = 0;
        v->num = strtod(num, &e);
        if (n == 0 || e != num + n)
            st = jerr(p, *c, "expected a value");
        v->type = JSON_NUMBER;
        *c += n;
    }
    p->depth--;
    return st;
}

oq_status json_parse(const char *text, size_t len, const char *what, json_value *out)
{
    jparser p = {text, text + len, what ? what : "JSON", 0};
    const char *c = text;
    json_value v;
    oq_status st = parse_value(&p, &c, &v);
    if (st == OQ_OK) {
        skip_ws(&p, &c);
        if (c != p.end)
            st = jerr(&p, c, "text after the JSON value");
    }
    if (st != OQ_OK) {
        json_free(&v);
        return st;
    }
    *out = v;
    return OQ_OK;
}

oq_status json_parse_file(const char *path, json_value *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return oq_error(OQ_E_IO, "cannot open '%s'", path);
    char *buf = NULL;
    size_t n = 0, cap = 0;
    oq_status st = OQ_OK;
    for (;;) {
        if (oq_grow((void **)&buf, &cap, n + 65536, 1) != OQ_OK) {
            st = oq_error(OQ_E_NOMEM, "out of memory");
            break;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    if (st == OQ_OK && ferror(f))
        st = oq_error(OQ_E_IO, "cannot read '%s'", path);
    fclose(f);
    if (st == OQ_OK)
        st = json_parse(buf, n, path, out);
    free(buf);
    return st;
}

void json_free(json_value *v)
{
    if (!v)
        return;
    free(v->str);
    for (size_t i = 0; i < v->n; i++) {
        if (v->keys)
            free(v->keys[i]);
        if (v->items)
            json_free(&v->items[i]);
    }
    free(v->keys);
    free(v->items);
    memset(v, 0, sizeof *v);
}

const json_value *json_get(const json_value *obj, const char *key)
{
    if (!obj || obj->type != JSON_OBJECT)
        return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (!strcmp(obj->keys[i], key))
            return &obj->items[i];
    return NULL;
}

void json_write_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}
