/*
 * cp_copier: the copier daemon's state and the parts it ties together: the
 * ZooKeeper session and registration (nodes/copier/<id>, listing its
 * destinations), the source's buckets (source.c), one task per bucket and
 * destination (task.c), which of those tasks are ours (assign.c), the rate
 * limit (rate.c) and retention (retention.c). main.c only parses options and
 * handles signals.
 */
#ifndef CP_COPIER_H
#define CP_COPIER_H

#include <stdint.h>
#include <uv.h>

#include "dest.h"
#include "members.h"
#include "rate.h"
#include "source.h"
#include "stats.h"
#include "zk.h"

typedef struct cp_task_s cp_task_t;
typedef struct cp_copier_s cp_copier_t;
typedef void (*cp_copier_cb)(cp_copier_t *c);

typedef struct cp_config_s {
    const char *id;
    const char *source;
    const char *const *dests; /* URLs */
    int ndests;
    const char *zk;
    const char *zk_auth; /* "user:password" or NULL/"" (fw_zk_options_t.auth) */
    int session_timeout_ms;
    uint64_t rate;        /* bytes/s, 0 = unlimited */
    int64_t retention_ms; /* 0 = keep everything */
    int64_t poll_ms;
    uint64_t chunk; /* bytes per copy step */
    int64_t damage_grace_ms;
    cp_dest_options_t dest_options;
    const char *metrics_address; /* for the registration ("" if none) */
} cp_config_t;

struct cp_copier_s {
    uv_loop_t *loop;
    cp_config_t cfg;
    fw_metrics_t *metrics;
    cp_stats_t stats;
    fw_zk_t zk;
    fw_members_t members;
    int64_t session; /* the session whose claims we hold; 0 = none */
    cp_dest_t **dests;
    int ndests;
    cp_source_t source;
    cp_rate_t rate;
    uv_timer_t rate_timer;
    int rate_waiting;
    uv_timer_t tick;
    int64_t last_retention_ms;
    int retention_running;
    int stopping;
    int leaving; /* every task is idle: the registration and session go */
    int closing_parts;
    size_t live_buckets; /* bucket directories that existed at the last reassign */
    cp_copier_cb stopped_cb;
};

/* Opens the destinations and the session and starts copying. 0 or an error (message on stderr). */
int cp_copier_start(cp_copier_t *c, uv_loop_t *loop, const cp_config_t *cfg, fw_metrics_t *metrics);
/*
 * Stops: every task finishes the step in flight (a block being written is
 * written and recorded), releases its claim, then the registration goes,
 * the session closes and cb runs.
 */
void cp_copier_stop(cp_copier_t *c, cp_copier_cb cb);
/* 1 while the session is up and we are registered (readiness). */
int cp_copier_ready(const cp_copier_t *c, char *reason, size_t cap);

/* ---- for task.c and retention.c ---------------------------------------------------- */

/* The tasks of a bucket: one per destination, in the order of cfg.dests. */
cp_task_t **cp_bucket_tasks(cp_bucket_t *b);
/* Wakes tasks waiting for the rate limit after ms. */
void cp_copier_rate_wait(cp_copier_t *c, int64_t ms);
/* A task went idle while stopping: maybe the last. */
void cp_copier_task_idle(cp_copier_t *c);

#endif
