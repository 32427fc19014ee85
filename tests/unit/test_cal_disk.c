/* The writer's disk threads: order, thread placement, progress before done, a sync
 * that does not hold back the next write, clean close. */
#include "fwtest.h"

#include "disk.h"

#include <errno.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NJOBS 2000

typedef struct job_s {
    cal_disk_job_t job;
    int index;
    pthread_t work_thread;
    int progressed;
    int done;
} job_t;

static pthread_t loop_thread;
static int next_work, next_done, closed;

static void work(cal_disk_job_t *j)
{
    job_t *t = j->data;
    t->work_thread = pthread_self();
    /* Jobs run one at a time in submission order. */
    if (t->index != next_work)
        abort();
    next_work++;
    if (t->index % 3 == 0)
        cal_disk_progress(j);
}

static void progress(cal_disk_job_t *j)
{
    job_t *t = j->data;
    FWT_ASSERT(pthread_equal(pthread_self(), loop_thread));
    FWT_ASSERT(!t->done);
    t->progressed++;
}

static void done(cal_disk_job_t *j)
{
    job_t *t = j->data;
    FWT_ASSERT(pthread_equal(pthread_self(), loop_thread));
    FWT_ASSERT(!pthread_equal(t->work_thread, loop_thread));
    FWT_ASSERT_INT_EQ(t->index, next_done);
    FWT_ASSERT_INT_EQ(t->progressed, t->index % 3 == 0 ? 1 : 0);
    t->done = 1;
    next_done++;
}

static void on_closed(cal_disk_t *d)
{
    (void)d;
    closed = 1;
}

FWT_TEST(jobs_run_in_order_and_report_on_the_loop)
{
    uv_loop_t loop;
    cal_disk_t disk;
    loop_thread = pthread_self();
    FWT_ASSERT_OK(uv_loop_init(&loop));
    FWT_ASSERT_OK(cal_disk_init(&disk, &loop));
    job_t *jobs = calloc(NJOBS, sizeof(job_t));
    fwt_defer(free, jobs);
    for (int i = 0; i < NJOBS; i++) {
        jobs[i].index = i;
        jobs[i].job.work = work;
        jobs[i].job.progress_cb = progress;
        jobs[i].job.done_cb = done;
        jobs[i].job.data = &jobs[i];
        cal_disk_submit(&disk, &jobs[i].job);
    }
    /* Closing right away still runs every queued job to the end first. */
    cal_disk_close(&disk, on_closed);
    FWT_ASSERT_OK(uv_run(&loop, UV_RUN_DEFAULT));
    FWT_ASSERT(closed);
    FWT_ASSERT_INT_EQ(next_done, NJOBS);
    FWT_ASSERT_OK(uv_loop_close(&loop)); /* no handle left open */
}

FWT_TEST(close_with_nothing_queued)
{
    uv_loop_t loop;
    cal_disk_t disk;
    closed = 0;
    FWT_ASSERT_OK(uv_loop_init(&loop));
    FWT_ASSERT_OK(cal_disk_init(&disk, &loop));
    cal_disk_close(&disk, on_closed);
    FWT_ASSERT_OK(uv_run(&loop, UV_RUN_DEFAULT));
    FWT_ASSERT(closed);
    FWT_ASSERT_OK(uv_loop_close(&loop));
}

/* ---- the sync stage runs beside the next job's work ---------------------------- */

static sem_t first_may_sync, second_worked;
static int syncs_done[2], dones[2], done_order;

static int timed_wait(sem_t *s)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    int rc;
    while ((rc = sem_timedwait(s, &until)) < 0 && errno == EINTR)
        ;
    return rc;
}

static void second_work(cal_disk_job_t *j)
{
    (void)j;
    sem_post(&second_worked);
}

static void first_sync(cal_disk_job_t *j)
{
    (void)j;
    /* Held until the loop has seen the second job's work run. */
    if (timed_wait(&first_may_sync) == 0)
        syncs_done[0] = 1;
}

static void second_sync(cal_disk_job_t *j)
{
    (void)j;
    syncs_done[1] = syncs_done[0] ? 1 : -1; /* after the first's, never before */
}

static void nop_work(cal_disk_job_t *j)
{
    (void)j;
}

static void staged_done(cal_disk_job_t *j)
{
    int *slot = j->data;
    *slot = ++done_order;
}

/*
 * A job's fdatasync (its sync stage) must not hold back the next job's
 * write: a block is readable as soon as it is written. The first job's sync
 * waits until the second job's work has run; if the stages ran one after
 * the other it would wait forever (20 s, then the test fails).
 */
FWT_TEST(a_sync_does_not_hold_back_the_next_write)
{
    uv_loop_t loop;
    cal_disk_t disk;
    closed = 0;
    FWT_ASSERT_OK(uv_loop_init(&loop));
    FWT_ASSERT_OK(cal_disk_init(&disk, &loop));
    sem_init(&first_may_sync, 0, 0);
    sem_init(&second_worked, 0, 0);
    cal_disk_job_t first, second;
    memset(&first, 0, sizeof(first));
    memset(&second, 0, sizeof(second));
    first.work = nop_work;
    first.sync_work = first_sync;
    first.done_cb = staged_done;
    first.data = &dones[0];
    second.work = second_work;
    second.sync_work = second_sync;
    second.done_cb = staged_done;
    second.data = &dones[1];
    cal_disk_submit(&disk, &first);
    cal_disk_submit(&disk, &second);
    int worked = timed_wait(&second_worked);
    sem_post(&first_may_sync);
    FWT_ASSERT_INT_EQ(worked, 0);
    cal_disk_close(&disk, on_closed);
    FWT_ASSERT_OK(uv_run(&loop, UV_RUN_DEFAULT));
    FWT_ASSERT(closed);
    FWT_ASSERT_INT_EQ(syncs_done[0], 1);
    FWT_ASSERT_INT_EQ(syncs_done[1], 1);
    FWT_ASSERT_INT_EQ(dones[0], 1); /* done callbacks in submission order */
    FWT_ASSERT_INT_EQ(dones[1], 2);
    sem_destroy(&first_may_sync);
    sem_destroy(&second_worked);
    FWT_ASSERT_OK(uv_loop_close(&loop));
}
