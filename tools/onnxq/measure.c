/* onnxq CLI: helpers of the measuring commands (compare, eval, bench) —
 * a progress bar on stderr, model opening with session options, file sizes. */
#include "cli.h"

#include "../../src/core/core.h"

#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

void cli_progress_init(cli_progress *p, const char *what, bool quiet)
{
    p->what = what;
    p->quiet = quiet;
    p->start_ms = cli_now_ms();
    p->last_ms = p->start_ms - 1000;
    p->shown = false;
}

void cli_progress_update(cli_progress *p, int64_t done, int64_t total)
{
    if (p->quiet)
        return;
    double now = cli_now_ms();
    if (done < total && now - p->last_ms < 100)
        return;
    p->last_ms = now;
    int width = 30, fill = total > 0 ? (int)(width * (done < total ? done : total) / total) : 0;
    char bar[64];
    for (int k = 0; k < width; k++)
        bar[k] = k < fill ? '#' : '.';
    bar[width] = 0;
    double secs = (now - p->start_ms) / 1000.0;
    fprintf(stderr, "\r%s [%s] %lld/%lld samples  %.1f samples/s", p->what, bar, (long long)done,
            (long long)total, secs > 0 ? (double)done / secs : 0.0);
    p->shown = done < total;
    if (done >= total)
        fputc('\n', stderr);
    fflush(stderr);
}

void cli_progress_end(cli_progress *p)
{
    if (!p->quiet && p->shown)
        fputc('\n', stderr);
    p->shown = false;
}

int64_t cli_file_bytes(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (int64_t)sb.st_size : -1;
}

const char *cli_base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s && s[1] ? s + 1 : path;
}

oq_status cli_open_options(const char *path, const oq_session_options *so, oq_model **model, oq_session **session)
{
    oq_load_options lo = oq_load_options_default();
    lo.check_operators = 1;
    oq_model *m = NULL;
    oq_session *s = NULL;
    oq_status st = oq_model_load(path, &lo, &m);
    if (st != OQ_OK)
        return st;
    if ((st = oq_session_create(m, so, &s)) != OQ_OK) {
        oq_model_destroy(m);
        return oq_error_context(st, "'%s'", path);
    }
    *model = m;
    *session = s;
    return OQ_OK;
}

oq_status cli_error_context(oq_status st, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return oq_error_context(st, "%s", buf);
}
