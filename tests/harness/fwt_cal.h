/*
 * Test helpers for calligraphus: start a real daemon as a child process on
 * free loopback ports, learn the addresses it bound from its log, read its
 * Prometheus metrics, stop it with SIGTERM (expecting exit 0), and create
 * categories with the real `freeway category` command.
 */
#ifndef FWT_CAL_H
#define FWT_CAL_H

#include <stddef.h>
#include <stdint.h>

#include "fwt_proc.h"

typedef struct fwt_cal_s {
    fwt_proc_t proc;
    /** "calligraphus" or "ptail": the same life cycle, flags and log lines. */
    const char *program;
    char id[64];
    char zk[128];
    char root[FWT_PATH_MAX];
    /** host:port for produce requests, as the daemon logged it. */
    char address[64];
    /** host:port of /metrics. */
    char metrics[64];
    char log_path[FWT_PATH_MAX];
    /** Where this life's lines start in the log. */
    long log_offset;
    /** copier: its --dest list. */
    char dest[2 * FWT_PATH_MAX];
    /** Extra flags, kept for fwt_cal_restart. */
    const char *extra[16];
} fwt_cal_t;

/*
 * Starts calligraphus --id ID --zk ZK --root ROOT --listen 127.0.0.1:0
 * --metrics 127.0.0.1:0 plus extra (NULL-terminated, may be NULL), logging to
 * TMPDIR/ID.log, and waits until it says where it listens.
 */
void fwt_cal_start(fwt_cal_t *c, const char *id, const char *zk, const char *root,
                   const char *const *extra);
/* Starts it again with the same flags (after a kill or a stop). */
/*
 * Starts a ptail serving root, registered in zk, as fwt_cal_start does a
 * writer (fwt_cal_restart/stop/kill/metric work on it too).
 */
void fwt_ptail_start(fwt_cal_t *c, const char *id, const char *zk, const char *root,
                     const char *const *extra);

/*
 * Starts a copier (the same life cycle: restart, stop, kill, metrics) from
 * source to dests ("URL[,URL]"); returns once it is registered in ZooKeeper.
 */
void fwt_copier_start(fwt_cal_t *c, const char *id, const char *zk, const char *source,
                      const char *dests, const char *const *extra);

void fwt_cal_restart(fwt_cal_t *c);
/* SIGTERM; fails the test unless it exits 0 within 20 s. */
void fwt_cal_stop(fwt_cal_t *c);
/* SIGKILL and reap. */
void fwt_cal_kill(fwt_cal_t *c);

/*
 * The value of the series `series` (the text before the value on its
 * /metrics line, e.g. "freeway_calligraphus_owned_buckets"), or -1 if it
 * cannot be read.
 */
double fwt_cal_metric(const fwt_cal_t *c, const char *series);
/*
 * GET path from the daemon's metrics address (HTTP/1.0): the body,
 * malloc'd, and the status code in *status (may be NULL); NULL if the
 * daemon did not answer.
 */
char *fwt_cal_get(const fwt_cal_t *c, const char *path, int *status);
/* Waits up to 60 s until /readyz answers 200. */
void fwt_cal_wait_ready(const fwt_cal_t *c, const char *what);
/* Waits up to 60 s until /readyz answers 503 with reason in its body. */
void fwt_cal_wait_unready(const fwt_cal_t *c, const char *reason, const char *what);
/* The sum of every series of a metric family (any labels); -1 if unreachable. */
double fwt_cal_metric_sum(const fwt_cal_t *c, const char *family);
/*
 * 1 once copier cp owns `buckets` buckets and has recorded (in ZooKeeper)
 * as copied every segment byte under root: its figures, not its lag gauges,
 * which are refreshed only every --poll.
 */
int fwt_copier_caught_up(const fwt_cal_t *cp, const char *root, int buckets);

/*
 * GET path (e.g. "/readyz") from the daemon's metrics listener: the HTTP
 * status (200, 503, ...), or -1 if it cannot be read.
 */
int fwt_cal_http_status(const fwt_cal_t *c, const char *path);

/* Waits up to 30 s until c has exactly n buckets open (taking blocks). */
void fwt_cal_wait_owns(fwt_cal_t *c, int n, const char *what);
/* Waits up to 30 s until c holds the owner nodes of exactly n buckets (open or still opening). */
void fwt_cal_wait_claimed(fwt_cal_t *c, int n, const char *what);
/* Waits up to 30 s until a and b have exactly `each` buckets open at the same moment. */
void fwt_cal_wait_balanced(fwt_cal_t *a, fwt_cal_t *b, int each, const char *what);
/*
 * Waits up to 30 s until c's metadata names an owner for every bucket of
 * category: c can place any block of it itself or forward it (a writer
 * learns the others' owner nodes from ZooKeeper watches, a moment after
 * they change).
 */
void fwt_cal_wait_routed(const fwt_cal_t *c, const char *category, const char *what);

/* Waits up to 30 s until c (started with --scribe-listen) logs its Scribe listener's host:port. */
void fwt_cal_scribe_address(const fwt_cal_t *c, char *out, size_t cap);

/* Runs `freeway category create NAME --buckets N --zk ZK` plus extra flags; fails on error. */
void fwt_category_create(const char *zk, const char *name, int buckets, const char *const *extra);

/*
 * Starts `freeway send -c CATEGORY --zk ZK --key-sep ' '` plus extra flags
 * with stdin from the file `input` and output to log; returns at once.
 */
void fwt_send_spawn(fwt_proc_t *p, const char *zk, const char *category, const char *input,
                    const char *log, const char *const *extra);

/* Waits up to timeout_ms for a `freeway send` to exit: its exit code, 128 + a signal, or -1. */
int fwt_send_wait(fwt_proc_t *p, int timeout_ms);

/*
 * Writes the numbered lines [first, first + n) over nkeys keys (fwt_lines_write)
 * to a file in the test's temp dir and starts `freeway send` on it, plus
 * extra flags; the send's log path goes to log. Returns at once.
 */
void fwt_send_lines_spawn(fwt_proc_t *p, const char *zk, const char *category, uint64_t first,
                          uint64_t n, int nkeys, const char *const *extra, char *log, size_t cap);
/* Fails the test, with the end of the send's log, unless it exits 0 within 120 s. */
void fwt_send_wait_ok(fwt_proc_t *p, const char *log);
/* fwt_send_lines_spawn, then fwt_send_wait_ok. */
void fwt_send_lines(const char *zk, const char *category, uint64_t first, uint64_t n, int nkeys,
                    const char *const *extra);

#endif
