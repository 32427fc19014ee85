/*
 * Daemon logging: one line per event on stderr (or an installed sink),
 *
 *   2026-11-22T14:05:01.123Z INFO  calligraphus: took bucket web_clicks/3 epoch=7
 *
 * with a process-wide level. Safe from any thread: a line is formatted
 * first and written with one call. The client library does not use this:
 * it reports through the application's own callback.
 */
#ifndef FW_LOG_H
#define FW_LOG_H

#include <stdint.h>

typedef enum {
    FW_LOG_DEBUG = 0,
    FW_LOG_INFO = 1,
    FW_LOG_WARN = 2,
    FW_LOG_ERROR = 3,
} fw_log_level_t;

/* Receives each formatted line (without the trailing newline). */
typedef void (*fw_log_sink_fn)(fw_log_level_t level, const char *line, void *ctx);

void fw_log_set_level(fw_log_level_t level);
fw_log_level_t fw_log_get_level(void);
/* "debug", "info", "warn" or "error"; 0 or -EINVAL. */
int fw_log_parse_level(const char *name, fw_log_level_t *out);
const char *fw_log_level_name(fw_log_level_t level);

/* Replaces the stderr sink (NULL restores it). */
void fw_log_set_sink(fw_log_sink_fn fn, void *ctx);

/* Lines logged at each level since start, for metrics. */
uint64_t fw_log_count(fw_log_level_t level);

__attribute__((format(printf, 3, 4))) void fw_log(fw_log_level_t level, const char *component,
                                                  const char *fmt, ...);

#define fw_log_debug(comp, ...)                                                                    \
    do {                                                                                           \
        if (fw_log_get_level() <= FW_LOG_DEBUG)                                                    \
            fw_log(FW_LOG_DEBUG, comp, __VA_ARGS__);                                               \
    } while (0)
#define fw_log_info(comp, ...)  fw_log(FW_LOG_INFO, comp, __VA_ARGS__)
#define fw_log_warn(comp, ...)  fw_log(FW_LOG_WARN, comp, __VA_ARGS__)
#define fw_log_error(comp, ...) fw_log(FW_LOG_ERROR, comp, __VA_ARGS__)

#endif
