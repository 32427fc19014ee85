/*
 * cal_disk: the two threads that own a writer's disk. Segment writes and
 * fdatasyncs never run on the event loop: the loop queues jobs here, and
 * the results come back to the loop through a queue and a uv_async_t. A
 * stalled disk stalls only these threads, not libuv's shared pool.
 *
 * A job has two stages. Its work function runs on the write thread, in
 * submission order (so appends to a segment keep their order); it may call
 * cal_disk_progress() once, to report "written". Its sync function, if any,
 * then runs on the sync thread, also in submission order. The write thread
 * goes on to the next job meanwhile: a block written while an earlier
 * fdatasync runs is readable at once instead of waiting behind it (an
 * fdatasync on this kind of disk takes 1 ms usually and 10-40 ms now and
 * then). progress_cb and then done_cb run on the loop thread; done_cbs
 * follow in submission order. The job's memory belongs to the submitter
 * and must live until done_cb.
 */
#ifndef CAL_DISK_H
#define CAL_DISK_H

#include <pthread.h>
#include <stdint.h>

#include <uv.h>

typedef struct cal_disk_s cal_disk_t;
typedef struct cal_disk_job_s cal_disk_job_t;

typedef void (*cal_disk_work_fn)(cal_disk_job_t *job); /* on a disk thread */
typedef void (*cal_disk_cb)(cal_disk_job_t *job);      /* on the loop thread */
typedef void (*cal_disk_close_cb)(cal_disk_t *disk);

/* A job's place in the loop-bound event queue; each job has two. */
typedef struct cal_disk_event_s {
    struct cal_disk_event_s *next;
    cal_disk_job_t *job;
} cal_disk_event_t;

struct cal_disk_job_s {
    cal_disk_work_fn work;      /* on the write thread */
    cal_disk_work_fn sync_work; /* then on the sync thread; may be NULL */
    cal_disk_cb progress_cb;    /* may be NULL */
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
    pthread_t write_thread, sync_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv, sync_cv;
    cal_disk_job_t *todo_head, *todo_tail;       /* loop -> write thread */
    cal_disk_job_t *sync_head, *sync_tail;       /* write thread -> sync thread */
    cal_disk_event_t *events_head, *events_tail; /* both threads -> loop */
    int stopping;
    int writes_over; /* the write thread has run its last job */
    cal_disk_close_cb close_cb;
    uint64_t pending; /* submitted, done_cb not yet run (loop thread only) */
    /* What the disk did lately, for /readyz (loop thread only). */
    int64_t progress_ms; /* mono: a job finished, or nothing was pending */
    int last_error;      /* the last write or sync result reported: 0 or -errno */
    int64_t last_error_ms;
};

/* Starts the two threads. 0 or a negative errno. */
int cal_disk_init(cal_disk_t *disk, uv_loop_t *loop);

/* Queues job (work, sync_work and done_cb set by the caller); each stage runs after
 * the same stage of every job queued before it. */
void cal_disk_submit(cal_disk_t *disk, cal_disk_job_t *job);

/* From job's work function: have progress_cb run on the loop now. At most once per job. */
void cal_disk_progress(cal_disk_job_t *job);

/* The owner of a job reports how its write or sync went (0 or -errno), for cal_disk_ready. */
void cal_disk_report(cal_disk_t *disk, int rc);

/*
 * For /readyz: 1 when the disk looks writable: no write or sync reported a
 * failure in the last stall_ms without a success after it, and jobs finish
 * (none has waited stall_ms or more with none finishing). 0 with a reason
 * otherwise. Loop thread only.
 */
int cal_disk_ready(const cal_disk_t *disk, int64_t stall_ms, char *reason, size_t cap);

/* Runs every queued job to the end (callbacks included), stops the threads, then calls cb. */
void cal_disk_close(cal_disk_t *disk, cal_disk_close_cb cb);

#endif
