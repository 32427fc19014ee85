/*
 * What the chaos run's two processes (chaos_producer, chaos_consumer) share
 * as command-line programs: numbers from flags, and SIGINT/SIGTERM caught by
 * the main thread alone.
 */
#ifndef CHAOS_CLI_H
#define CHAOS_CLI_H

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* A decimal in [lo, hi] into *out: 0, or -1 if text is not one. */
static inline int chaos_number(const char *text, unsigned long lo, unsigned long hi,
                               unsigned long *out)
{
    char *end;
    errno = 0;
    *out = strtoul(text, &end, 10);
    return text[0] >= '0' && text[0] <= '9' && *end == '\0' && errno == 0 && *out >= lo &&
                   *out <= hi
               ? 0
               : -1;
}

/* Blocks SIGINT and SIGTERM in this thread, the old mask in *old (if not NULL). */
static inline void chaos_block_stops(sigset_t *old)
{
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    sigprocmask(SIG_BLOCK, &stops, old);
}

/*
 * Installs handler for SIGINT and SIGTERM (SA_RESTART: a signal fails no
 * write) and blocks both, the old mask in *old: the library's threads,
 * created before the caller restores it, inherit the block, so the signals
 * come to the main thread.
 */
static inline void chaos_catch_stops(void (*handler)(int), sigset_t *old)
{
    chaos_block_stops(old);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

#endif
