/* eval/report: a streaming JSON writer and the common header of the report
 * files described in docs/reports.md (compare, eval, bench, debug). */
#include "eval/eval.h"
#include "core/core.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <time.h>

void oq_json_init(oq_json *j, FILE *f)
{
    memset(j, 0, sizeof *j);
    j->f = f;
}

static bool compact_here(const oq_json *j)
{
    return j->depth > 0 && j->compact[j->depth - 1];
}

/* Separator and indentation before a value or key at the current level. */
static void before_item(oq_json *j)
{
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    if (j->depth == 0)
        return;
    bool first = !j->has_items[j->depth - 1];
    if (!first)
        fputc(',', j->f);
    j->has_items[j->depth - 1] = true;
    if (compact_here(j)) {
        if (!first)
            fputc(' ', j->f);
        return;
    }
    fputc('\n', j->f);
    for (int i = 0; i < j->depth; i++)
        fputs("  ", j->f);
}

static void begin(oq_json *j, char open, bool compact)
{
    before_item(j);
    fputc(open, j->f);
    if (j->depth < OQ_JSON_MAX_DEPTH) {
        j->has_items[j->depth] = false;
        /* a container inside a compact one stays compact */
        j->compact[j->depth] = compact || compact_here(j);
    }
    j->depth++;
}

static void end(oq_json *j, char close)
{
    if (j->depth == 0)
        return;
    j->depth--;
    bool had = j->depth < OQ_JSON_MAX_DEPTH && j->has_items[j->depth];
    bool compact = j->depth < OQ_JSON_MAX_DEPTH && j->compact[j->depth];
    if (had && !compact) {
        fputc('\n', j->f);
        for (int i = 0; i < j->depth; i++)
            fputs("  ", j->f);
    }
    fputc(close, j->f);
    if (j->depth == 0)
        fputc('\n', j->f);
}

void oq_json_begin_object(oq_json *j, bool compact) { begin(j, '{', compact); }
void oq_json_end_object(oq_json *j) { end(j, '}'); }
void oq_json_begin_array(oq_json *j, bool compact) { begin(j, '[', compact); }
void oq_json_end_array(oq_json *j) { end(j, ']'); }

static void write_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

void oq_json_key(oq_json *j, const char *key)
{
    before_item(j);
    write_string(j->f, key);
    fputs(": ", j->f);
    j->after_key = true;
}

void oq_json_string(oq_json *j, const char *s)
{
    before_item(j);
    if (s)
        write_string(j->f, s);
    else
        fputs("null", j->f);
}

void oq_json_number(oq_json *j, double v)
{
    before_item(j);
    if (!isfinite(v))
        fputs("null", j->f);
    else if (v == floor(v) && fabs(v) < 1e15)
        fprintf(j->f, "%.1f", v);
    else
        fprintf(j->f, "%.7g", v);
}

void oq_json_int(oq_json *j, int64_t v)
{
    before_item(j);
    fprintf(j->f, "%lld", (long long)v);
}

void oq_json_bool(oq_json *j, bool v)
{
    before_item(j);
    fputs(v ? "true" : "false", j->f);
}

void oq_json_null(oq_json *j)
{
    before_item(j);
    fputs("null", j->f);
}

void oq_json_kv_string(oq_json *j, const char *key, const char *s) { oq_json_key(j, key); oq_json_string(j, s); }
void oq_json_kv_number(oq_json *j, const char *key, double v) { oq_json_key(j, key); oq_json_number(j, v); }
void oq_json_kv_int(oq_json *j, const char *key, int64_t v) { oq_json_key(j, key); oq_json_int(j, v); }
void oq_json_kv_bool(oq_json *j, const char *key, bool v) { oq_json_key(j, key); oq_json_bool(j, v); }

void oq_json_kv_latency(oq_json *j, const char *key, const oq_latency_stats *lat, bool with_mean)
{
    oq_json_key(j, key);
    if (!lat || lat->n == 0) {
        oq_json_null(j);
        return;
    }
    oq_json_begin_object(j, true);
    oq_json_kv_number(j, "median", lat->median);
    oq_json_kv_number(j, "p10", lat->p10);
    oq_json_kv_number(j, "p90", lat->p90);
    if (with_mean)
        oq_json_kv_number(j, "mean", lat->mean);
    oq_json_end_object(j);
}

void oq_report_header(oq_json *j, const char *kind, const char *label, const char *version, int threads)
{
    char created[32] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm))
        strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    oq_json_kv_int(j, "onnxq_report", 1);
    oq_json_kv_string(j, "kind", kind);
    oq_json_kv_string(j, "label", label);
    oq_json_kv_string(j, "onnxq_version", version);
    oq_json_kv_string(j, "created", created);
    oq_json_key(j, "machine");
    oq_json_begin_object(j, true);
    oq_json_kv_string(j, "isa", oq_isa_name(oq_isa_level()));
    oq_json_kv_int(j, "threads", threads);
    oq_json_kv_int(j, "cores", oq_cpu_count());
    oq_json_end_object(j);
}

oq_status oq_report_open(const char *path, FILE **out)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return oq_error(OQ_E_IO, "cannot write report '%s': %s", path, strerror(errno));
    *out = f;
    return OQ_OK;
}

oq_status oq_report_close(FILE *f, const char *path)
{
    if (!f)
        return OQ_OK;
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return oq_error(OQ_E_IO, "error writing report '%s'", path);
    return OQ_OK;
}
