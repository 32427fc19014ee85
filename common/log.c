/* Daemon logging (see log.h). */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int current_level = FW_LOG_INFO;
static _Atomic uint64_t counts[4];
static fw_log_sink_fn sink;
static void *sink_ctx;

static const char *const names[] = {"debug", "info", "warn", "error"};
static const char *const tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};

void fw_log_set_level(fw_log_level_t level)
{
    atomic_store(&current_level, (int)level);
}

fw_log_level_t fw_log_get_level(void)
{
    return (fw_log_level_t)atomic_load(&current_level);
}

int fw_log_parse_level(const char *name, fw_log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (fw_log_level_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *fw_log_level_name(fw_log_level_t level)
{
    return (unsigned)level < 4 ? names[level] : "?";
}

void fw_log_set_sink(fw_log_sink_fn fn, void *ctx)
{
    sink = fn;
    sink_ctx = ctx;
}

uint64_t fw_log_count(fw_log_level_t level)
{
    return (unsigned)level < 4 ? atomic_load(&counts[level]) : 0;
}

void fw_log(fw_log_level_t level, const char *component, const char *fmt, ...)
{
    if ((unsigned)level > FW_LOG_ERROR || (int)level < atomic_load(&current_level))
        return;
    atomic_fetch_add(&counts[level], 1);
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, tags[level], component);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (sink != NULL) {
        sink(level, line, sink_ctx);
        return;
    }
    /* One write per line, so lines from several threads never interleave. */
    size_t len = strnlen(line, sizeof(line) - 1);
    line[len] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len + 1);
    (void)w;
}
