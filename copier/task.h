/*
 * cp_task: copying one bucket to one destination, as a small state machine
 * on the loop:
 *
 *   IDLE -> claim (ephemeral copier/<dest>/<category>/<bucket>/claim)
 *        -> load progress (the persistent node above it: segment, offset)
 *        -> check the destination's length against it; cut bytes past it
 *   READY -> read verified blocks (threadpool) -> write them (destination,
 *        durable) -> record progress (ZooKeeper, versioned) -> READY ...
 *
 * Progress is recorded only after the destination holds the bytes durably,
 * with the version read at claim time, so a copier that lost its claim can
 * never move it. On a restart or takeover the destination is cut back to the
 * recorded offset: bytes written after the last record are copied again,
 * never twice. A damaged source block stops the task (never copied).
 */
#ifndef CP_TASK_H
#define CP_TASK_H

#include <stdint.h>

#include "copier.h"
#include "read.h"

typedef enum {
    CP_TASK_IDLE = 0,  /* not ours, or not claimed yet */
    CP_TASK_CLAIMING,  /* making the claim node */
    CP_TASK_LOADING,   /* reading progress */
    CP_TASK_CHECKING,  /* asking the destination's length */
    CP_TASK_FIXING,    /* truncating the destination to the progress */
    CP_TASK_READY,     /* claimed and in step: waiting for data */
    CP_TASK_READING,   /* a read step on the threadpool */
    CP_TASK_WRITING,   /* a destination write */
    CP_TASK_RECORDING, /* the progress update */
    CP_TASK_RELEASING, /* deleting the claim */
} cp_task_state_t;

struct cp_task_s {
    cp_copier_t *copier;
    cp_bucket_t *bucket;
    cp_dest_t *dest;
    cp_task_state_t state;
    int wanted;      /* the assignment gives it to us */
    int64_t session; /* the session the claim belongs to (0 = none) */
    int claim_watch; /* waiting for another copier's claim to go */
    int dirty;       /* woken while busy: read again before waiting */
    int resync;      /* check the destination before the next write */
    int reload;      /* read the progress again first: a ZooKeeper request failed mid-way */
    /* Progress: what the destination holds, as recorded in ZooKeeper. */
    uint64_t segment;
    uint64_t offset;
    int sealed;
    int version;  /* of the progress node */
    int recorded; /* the progress above is in ZooKeeper (not just planned) */
    /* Trouble. */
    int stopped;             /* a damaged or missing source block */
    int64_t damage_since_ms; /* when the current damage was first seen */
    uint64_t damage_segment, damage_offset;
    int64_t retry_at_ms;
    int backoff_ms;
    char last_error[300];
    /* The step in flight. */
    cp_read_t read;
    uv_work_t work;
    cp_dest_req_t req;
    cp_task_stats_t stats;
};

cp_task_t *cp_task_create(cp_copier_t *c, cp_bucket_t *b, cp_dest_t *dest);
void cp_task_free(cp_task_t *t);
/* Moves the task on from where it is (claims, reads, releases ...). */
void cp_task_step(cp_task_t *t);
/* Something changed in the bucket's directory. */
void cp_task_wake(cp_task_t *t);
/* The session ended (ZooKeeper dropped our claims with it). */
void cp_task_session_lost(cp_task_t *t);
/* Refreshes the lag gauges (on the copier's tick). */
void cp_task_measure(cp_task_t *t);
/* 1 when nothing is in flight and no claim is held. */
int cp_task_quiet(const cp_task_t *t);
/* The segments below this id are copied whole (0: none known); for retention. */
uint64_t cp_task_copied_below(const cp_task_t *t);

#endif
