/*
 * cal_disk: the thread that owns a writer's disk. Segment writes and
 * fdatasyncs never run on the event loop: the loop queues jobs here, one
 * thread runs them in order (so appends to a segment keep their order, and
 * a stalled disk stalls only this thread, not libuv's shared pool), and the
 * results come back to the loop through a queue and a uv_async_t.
 *
 * A job's work function runs on the disk thread. It may call
 * cal_disk_progress() once, to report an intermediate result ("written",
 * before "synced"); progress_cb and then done_cb run on the loop thread.
 * The job's memory belongs to the submitter and must live until done_cb.
 */
#ifndef CAL_DISK_H
#define CAL_DISK_H

#include <pthread.h>
#include <stdint.h>

#include <uv.h>

typedef struct cal_disk_s cal_disk_t;
typedef struct cal_disk_job_s cal_disk_job_t;

typedef void (*cal_disk_work_fn)(cal_disk_job_t *job); /* on the disk thread */
typedef void (*cal_disk_cb)(cal_disk_job_t *job);      /* on the loop thread */
typedef void (*cal_disk_close_cb)(cal_disk_t *disk);

/* A job's place in the loop-bound event queue; each job has two. */
typedef struct cal_disk_event_s {
    struct cal_disk_event_s *next;
    cal_disk_job_t *job;
} cal_disk_event_t;

struct cal_disk_job_s {
    cal_disk_work_fn work;
    cal_disk_cb progress_cb; /* may be NULL */
    cal_disk_cb done_cb;
    void *data;
    /* private */
    cal_disk_job_t *next;
    cal_disk_event_t progress_ev;
    cal_disk_event_t done_ev;
    cal_disk_t *disk;
};

struct cal_disk_s {
    uv_loop_t *loop;
    uv_async_t async;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    cal_disk_job_t *todo_head, *todo_tail;       /* loop -> disk thread */
    cal_disk_event_t *events_head, *events_tail; /* disk thread -> loop */
    int stopping;
    cal_disk_close_cb close_cb;
    uint64_t pending; /* submitted, done_cb not yet run (loop thread only) */
};

/* Starts the disk thread. 0 or a negative errno. */
int cal_disk_init(cal_disk_t *disk, uv_loop_t *loop);

/* Queues job (work and done_cb set by the caller); it runs after every job queued before it. */
void cal_disk_submit(cal_disk_t *disk, cal_disk_job_t *job);

/* From job's work function: have progress_cb run on the loop now. At most once per job. */
void cal_disk_progress(cal_disk_job_t *job);

/* Runs every queued job to the end (callbacks included), stops the thread, then calls cb. */
void cal_disk_close(cal_disk_t *disk, cal_disk_close_cb cb);

#endif
