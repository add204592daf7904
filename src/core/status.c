/* core/status: status strings, the per-thread last-error message and the logging callback. */
#include "core/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[2048];

const char *oq_status_str(oq_status st)
{
    switch (st) {
#define OQ_STATUS_CASE(name, value, text) \
    case name:                            \
        return text;
        OQ_STATUS_LIST(OQ_STATUS_CASE)
#undef OQ_STATUS_CASE
    }
    return "unknown status";
}

const char *oq_last_error(void) { return last_error; }

void oq_error_clear(void) { last_error[0] = 0; }

oq_status oq_error(oq_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return st;
}

oq_status oq_error_context(oq_status st, const char *fmt, ...)
{
    char prefix[512], old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    const char *rest = old[0] ? old : oq_status_str(st);
    size_t np = strlen(prefix);
    if (np > sizeof last_error - 3)
        np = sizeof last_error - 3;
    memcpy(last_error, prefix, np);
    memcpy(last_error + np, ": ", 2);
    size_t nr = strlen(rest), room = sizeof last_error - np - 3;
    if (nr > room)
        nr = room;
    memcpy(last_error + np + 2, rest, nr);
    last_error[np + 2 + nr] = 0;
    return st;
}

static oq_log_fn log_fn;
static void *log_user;
static oq_log_level log_max = OQ_LOG_WARN;
static int log_silenced;

void oq_set_log_callback(oq_log_fn fn, void *user, oq_log_level max_level)
{
    log_fn = fn;
    log_user = user;
    log_max = max_level;
    log_silenced = fn == NULL;
}

void oq_log(oq_log_level level, const char *fmt, ...)
{
    if (log_silenced || level > log_max)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (log_fn) {
        log_fn(level, msg, log_user);
        return;
    }
    static const char *names[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "onnxq %s: %s\n", names[level], msg);
}
