/* onnxq CLI: the helpers every subcommand shares — option matching, error
 * lines, inputs from .npy files or random data, JSON strings, folders. */
#include "cli.h"

/* Internal library facts the public API does not expose yet (ISA, core count, fp16). */
#include "../../src/core/core.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int cli_fail(oq_status st)
{
    const char *msg = oq_last_error();
    fprintf(stderr, "onnxq: error: %s\n", msg && *msg ? msg : oq_status_str(st));
    return CLI_EXIT_FAIL;
}

int cli_usage_error(const char *usage, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("onnxq: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (usage)
        fputs(usage, stderr);
    return CLI_EXIT_USAGE;
}

oq_status cli_error(oq_status st, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return oq_error(st, "%s", msg);
}

bool cli_is_help(const char *arg) { return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0; }

int cli_opt(int argc, char **argv, int *i, const char *short_name, const char *long_name, const char **val)
{
    const char *a = argv[*i];
    if ((short_name && strcmp(a, short_name) == 0) || (long_name && strcmp(a, long_name) == 0)) {
        if (*i + 1 >= argc)
            return -1;
        *val = argv[++*i];
        return 1;
    }
    size_t ln = long_name ? strlen(long_name) : 0;
    if (long_name && strncmp(a, long_name, ln) == 0 && a[ln] == '=') {
        *val = a + ln + 1;
        return 1;
    }
    return 0;
}

bool cli_parse_long(const char *s, long min, long max, long *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool cli_inputs_add(cli_inputs *in, const char *spec)
{
    if (in->n_specs == in->cap_specs) {
        size_t cap = in->cap_specs ? in->cap_specs * 2 : 8;
        const char **p = realloc(in->specs, cap * sizeof *p);
        if (!p)
            return false;
        in->specs = p;
        in->cap_specs = cap;
    }
    in->specs[in->n_specs++] = spec;
    return true;
}

void cli_inputs_free(cli_inputs *in)
{
    free(in->specs);
    in->specs = NULL;
    in->n_specs = in->cap_specs = 0;
}

void cli_tensors_free(oq_tensor **t, size_t n)
{
    if (!t)
        return;
    for (size_t i = 0; i < n; i++)
        oq_tensor_destroy(t[i]);
    free(t);
}

/* splitmix64: small, seedable and the same on every platform. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }

static oq_status random_input(const oq_value_desc *d, int64_t batch, uint64_t *rng, oq_tensor **out)
{
    if (d->ndim < 0)
        return oq_error(OQ_E_SHAPE, "input '%s' has no declared shape; give it with -i %s=FILE.npy", d->name,
                        d->name);
    int64_t dims[OQ_MAX_DIMS];
    for (int k = 0; k < d->ndim; k++)
        dims[k] = d->dims[k] >= 0 ? d->dims[k] : k == 0 && batch > 0 ? batch : 1;
    oq_tensor *t;
    oq_status st = oq_tensor_create(d->dtype, d->ndim, dims, &t);
    if (st != OQ_OK)
        return oq_error_context(st, "random data for input '%s'", d->name);
    int64_t n = oq_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        double u = rng_uniform(rng), f = 2.0 * u - 1.0;
        int64_t v = (int64_t)(u * 10.0);
        switch (d->dtype) {
        case OQ_FLOAT: ((float *)t->data)[i] = (float)f; break;
        case OQ_DOUBLE: ((double *)t->data)[i] = f; break;
        case OQ_FLOAT16: ((uint16_t *)t->data)[i] = oq_float_to_half((float)f); break;
        case OQ_BFLOAT16: ((uint16_t *)t->data)[i] = oq_float_to_bf16((float)f); break;
        case OQ_BOOL: ((uint8_t *)t->data)[i] = u < 0.5; break;
        case OQ_INT8: ((int8_t *)t->data)[i] = (int8_t)v; break;
        case OQ_UINT8: ((uint8_t *)t->data)[i] = (uint8_t)v; break;
        case OQ_INT16: ((int16_t *)t->data)[i] = (int16_t)v; break;
        case OQ_UINT16: ((uint16_t *)t->data)[i] = (uint16_t)v; break;
        case OQ_INT32: ((int32_t *)t->data)[i] = (int32_t)v; break;
        case OQ_UINT32: ((uint32_t *)t->data)[i] = (uint32_t)v; break;
        case OQ_INT64: ((int64_t *)t->data)[i] = v; break;
        case OQ_UINT64: ((uint64_t *)t->data)[i] = (uint64_t)v; break;
        default:
            oq_tensor_destroy(t);
            return oq_error(OQ_E_UNSUPPORTED, "cannot make random data of type %s for input '%s'",
                            oq_dtype_name(d->dtype), d->name);
        }
    }
    *out = t;
    return OQ_OK;
}

/* The model declares what it expects; saying so here names the file, which the library cannot. */
static oq_status check_input(const oq_value_desc *d, const oq_tensor *t, const char *file)
{
    char a[160], b[160];
    if (d->dtype != OQ_UNDEFINED && t->dtype != d->dtype)
        return oq_error(OQ_E_TYPE, "input '%s': '%s' holds %s but the model expects %s", d->name, file,
                        oq_dtype_name(t->dtype), oq_dtype_name(d->dtype));
    if (d->ndim < 0)
        return OQ_OK;
    bool ok = t->ndim == d->ndim;
    for (int k = 0; ok && k < d->ndim; k++)
        ok = d->dims[k] < 0 || d->dims[k] == t->dims[k];
    if (!ok)
        return oq_error(OQ_E_SHAPE, "input '%s': '%s' has shape %s but the model expects %s", d->name, file,
                        oq_shape_str(t->ndim, t->dims, a, sizeof a), cli_shape_str(d, b, sizeof b));
    return OQ_OK;
}

oq_status cli_inputs_load(const cli_inputs *in, const oq_session *s, oq_tensor ***out, size_t *n_out)
{
    size_t n = oq_session_input_count(s);
    oq_tensor **t = calloc(n ? n : 1, sizeof *t);
    const char **files = calloc(n ? n : 1, sizeof *files);
    oq_status st = OQ_OK;
    if (!t || !files) {
        st = oq_error(OQ_E_NOMEM, "out of memory");
        goto error;
    }
    /* named specs first, then positional ones fill the inputs left, in order */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t k = 0; k < in->n_specs; k++) {
            const char *spec = in->specs[k], *eq = strchr(spec, '=');
            size_t idx = n;
            for (size_t i = 0; eq && i < n; i++) {
                const char *name = oq_session_input(s, i)->name;
                if (strlen(name) == (size_t)(eq - spec) && strncmp(name, spec, (size_t)(eq - spec)) == 0)
                    idx = i;
            }
            if (pass == 0 && idx < n) {
                if (files[idx]) {
                    st = oq_error(OQ_E_INVALID_ARG, "input '%s' is given twice", oq_session_input(s, idx)->name);
                    goto error;
                }
                files[idx] = eq + 1;
            } else if (pass == 1 && idx == n) {
                if (eq && access(spec, F_OK) != 0) {
                    char names[512];
                    size_t o = 0;
                    names[0] = 0;
                    for (size_t i = 0; i < n && o < sizeof names; i++)
                        o += (size_t)snprintf(names + o, sizeof names - o, "%s'%s'", i ? ", " : "",
                                              oq_session_input(s, i)->name);
                    st = oq_error(OQ_E_INVALID_ARG, "the model has no input named '%.*s' (its inputs: %s)",
                                  (int)(eq - spec), spec, n ? names : "none");
                    goto error;
                }
                for (idx = 0; idx < n && files[idx]; idx++)
                    ;
                if (idx == n) {
                    st = eq ? oq_error(OQ_E_INVALID_ARG, "the model has no input named '%.*s'", (int)(eq - spec), spec)
                            : oq_error(OQ_E_INVALID_ARG, "more input files than the model's %zu inputs ('%s')", n,
                                       spec);
                    goto error;
                }
                files[idx] = spec;
            }
        }
    }
    uint64_t rng = in->seed;
    for (size_t i = 0; i < n; i++) {
        const oq_value_desc *d = oq_session_input(s, i);
        if (files[i]) {
            if ((st = oq_npy_load(files[i], &t[i])) != OQ_OK)
                goto error;
            if ((st = check_input(d, t[i], files[i])) != OQ_OK)
                goto error;
        } else if (in->random) {
            if ((st = random_input(d, in->batch, &rng, &t[i])) != OQ_OK)
                goto error;
        } else {
            st = oq_error(OQ_E_INVALID_ARG, "input '%s' is not given (use -i %s=FILE.npy or --random)", d->name,
                          d->name);
            goto error;
        }
    }
    free(files);
    *out = t;
    *n_out = n;
    return OQ_OK;

error:
    free(files);
    cli_tensors_free(t, n);
    return st;
}

static void log_to_stderr(oq_log_level level, const char *msg, void *user)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    (void)user;
    fprintf(stderr, "onnxq: [%s] %s\n", names[level <= OQ_LOG_DEBUG ? level : OQ_LOG_DEBUG], msg);
}

/* ONNXQ_LOG=error|warn|info|debug sets how much of the library's log reaches stderr
 * (info shows, among others, which QDQ nodes were fused and which stayed float). */
void cli_log_from_env(void)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    const char *v = getenv("ONNXQ_LOG");
    for (int i = 0; v && i < 4; i++)
        if (!strcmp(v, names[i]))
            oq_set_log_callback(log_to_stderr, NULL, (oq_log_level)i);
}

oq_status cli_open(const char *path, int threads, oq_model **model, oq_session **session)
{
    oq_load_options lo = oq_load_options_default();
    lo.check_operators = 1;
    oq_model *m = NULL;
    oq_status st = oq_model_load(path, &lo, &m);
    if (st != OQ_OK)
        return st;
    oq_session_options so = oq_session_options_default();
    so.threads = threads;
    oq_session *s = NULL;
    if ((st = oq_session_create(m, &so, &s)) != OQ_OK) {
        oq_model_destroy(m);
        return st;
    }
    *model = m;
    *session = s;
    return OQ_OK;
}

const char *cli_shape_str(const oq_value_desc *d, char *buf, size_t n)
{
    if (d->ndim < 0) {
        snprintf(buf, n, "(unknown rank)");
        return buf;
    }
    size_t o = 0;
    o += (size_t)snprintf(buf, n, "[");
    for (int k = 0; k < d->ndim && o < n; k++) {
        const char *sep = k ? "," : "";
        if (d->dim_params[k] && *d->dim_params[k])
            o += (size_t)snprintf(buf + o, n - o, "%s%s", sep, d->dim_params[k]);
        else if (d->dims[k] < 0)
            o += (size_t)snprintf(buf + o, n - o, "%s?", sep);
        else
            o += (size_t)snprintf(buf + o, n - o, "%s%lld", sep, (long long)d->dims[k]);
    }
    if (o < n)
        snprintf(buf + o, n - o, "]");
    return buf;
}

void cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

void cli_sanitize(const char *name, char *buf, size_t n)
{
    size_t o = 0;
    for (const char *p = name ? name : ""; *p && o + 1 < n; p++) {
        char c = *p;
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '-';
        buf[o++] = ok ? c : '_';
    }
    buf[o] = 0;
    /* "." and ".." would name folders, not files */
    if (o == 0 || strcmp(buf, ".") == 0 || strcmp(buf, "..") == 0)
        snprintf(buf, n, "output%s", o ? "_" : "");
}

oq_status cli_mkdirs(const char *dir)
{
    size_t len = strlen(dir);
    char *p = malloc(len + 1);
    if (!p)
        return oq_error(OQ_E_NOMEM, "out of memory");
    memcpy(p, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (p[i] != '/' && p[i] != 0)
            continue;
        char c = p[i];
        p[i] = 0;
        struct stat sb;
        if (stat(p, &sb) != 0) {
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                oq_status st = oq_error(OQ_E_IO, "cannot create folder '%s': %s", p, strerror(errno));
                free(p);
                return st;
            }
        } else if (!S_ISDIR(sb.st_mode)) {
            oq_status st = oq_error(OQ_E_IO, "cannot create folder '%s': a file of that name exists", p);
            free(p);
            return st;
        }
        p[i] = c;
    }
    free(p);
    return OQ_OK;
}

double cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

double cli_value(const oq_tensor *t, int64_t i) { return oq_tensor_get_f64(t, i); }

int cli_threads_used(int n) { return n > 0 ? n : oq_cpu_count(); }

const char *cli_isa_name(void) { return oq_isa_name(oq_isa_level()); }
