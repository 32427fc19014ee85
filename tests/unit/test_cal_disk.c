/* The writer's disk thread: order, thread placement, progress before done, clean close. */
#include "fwtest.h"

#include "disk.h"

#include <stdlib.h>

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
