/* The write and sync threads and their queues (see disk.h). */
#include "disk.h"
#include "clock.h"
#include "error.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

static void post(cal_disk_t *d, cal_disk_event_t *ev)
{
    pthread_mutex_lock(&d->mu);
    ev->next = NULL;
    if (d->events_tail != NULL)
        d->events_tail->next = ev;
    else
        d->events_head = ev;
    d->events_tail = ev;
    pthread_mutex_unlock(&d->mu);
    /* uv_async_send coalesces; the loop drains the whole queue each time. */
    uv_async_send(&d->async);
}

void cal_disk_progress(cal_disk_job_t *job)
{
    post(job->disk, &job->progress_ev);
}

static void *write_main(void *arg)
{
    cal_disk_t *d = arg;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        while (d->todo_head == NULL && !d->stopping)
            pthread_cond_wait(&d->cv, &d->mu);
        cal_disk_job_t *job = d->todo_head;
        if (job == NULL) {
            /* stopping, and every job has run: the sync thread may finish too */
            d->writes_over = 1;
            pthread_cond_signal(&d->sync_cv);
            pthread_mutex_unlock(&d->mu);
            return NULL;
        }
        d->todo_head = job->next;
        if (d->todo_head == NULL)
            d->todo_tail = NULL;
        pthread_mutex_unlock(&d->mu);
        job->work(job);
        /* Every job passes the sync thread, so done callbacks keep their order. */
        pthread_mutex_lock(&d->mu);
        job->next = NULL;
        if (d->sync_tail != NULL)
            d->sync_tail->next = job;
        else
            d->sync_head = job;
        d->sync_tail = job;
        pthread_cond_signal(&d->sync_cv);
        pthread_mutex_unlock(&d->mu);
    }
}

static void *sync_main(void *arg)
{
    cal_disk_t *d = arg;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        while (d->sync_head == NULL && !d->writes_over)
            pthread_cond_wait(&d->sync_cv, &d->mu);
        cal_disk_job_t *job = d->sync_head;
        if (job == NULL) {
            pthread_mutex_unlock(&d->mu);
            return NULL;
        }
        d->sync_head = job->next;
        if (d->sync_head == NULL)
            d->sync_tail = NULL;
        pthread_mutex_unlock(&d->mu);
        if (job->sync_work != NULL)
            job->sync_work(job);
        post(d, &job->done_ev);
    }
}

static void on_thread_joined(uv_handle_t *h)
{
    cal_disk_t *d = h->data;
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    pthread_cond_destroy(&d->sync_cv);
    if (d->close_cb != NULL)
        d->close_cb(d);
}

static void maybe_finish_close(cal_disk_t *d)
{
    if (!d->stopping || d->pending > 0 || uv_is_closing((uv_handle_t *)&d->async))
        return;
    /* Every job is done and the threads exit once they see their queues empty. */
    pthread_join(d->write_thread, NULL);
    pthread_join(d->sync_thread, NULL);
    uv_close((uv_handle_t *)&d->async, on_thread_joined);
}

static void on_events(uv_async_t *async)
{
    cal_disk_t *d = async->data;
    pthread_mutex_lock(&d->mu);
    cal_disk_event_t *ev = d->events_head;
    d->events_head = d->events_tail = NULL;
    pthread_mutex_unlock(&d->mu);
    while (ev != NULL) {
        cal_disk_event_t *next = ev->next; /* the callback may free the job */
        cal_disk_job_t *job = ev->job;
        if (ev == &job->progress_ev) {
            if (job->progress_cb != NULL)
                job->progress_cb(job);
        } else {
            d->pending--;
            d->progress_ms = fw_clock_mono_ms();
            job->done_cb(job);
        }
        ev = next;
    }
    maybe_finish_close(d);
}

int cal_disk_init(cal_disk_t *d, uv_loop_t *loop)
{
    d->loop = loop;
    d->todo_head = d->todo_tail = NULL;
    d->sync_head = d->sync_tail = NULL;
    d->writes_over = 0;
    d->events_head = d->events_tail = NULL;
    d->stopping = 0;
    d->pending = 0;
    d->progress_ms = fw_clock_mono_ms();
    d->last_error = 0;
    d->last_error_ms = 0;
    d->close_cb = NULL;
    int rc = uv_async_init(loop, &d->async, on_events);
    if (rc < 0)
        return rc;
    d->async.data = d;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    pthread_cond_init(&d->sync_cv, NULL);
    rc = pthread_create(&d->write_thread, NULL, write_main, d);
    if (rc == 0) {
        rc = pthread_create(&d->sync_thread, NULL, sync_main, d);
        if (rc != 0) {
            pthread_mutex_lock(&d->mu);
            d->stopping = 1;
            pthread_cond_signal(&d->cv);
            pthread_mutex_unlock(&d->mu);
            pthread_join(d->write_thread, NULL);
        }
    }
    if (rc != 0) {
        pthread_mutex_destroy(&d->mu);
        pthread_cond_destroy(&d->cv);
        pthread_cond_destroy(&d->sync_cv);
        uv_close((uv_handle_t *)&d->async, NULL);
        return -rc;
    }
    return 0;
}

void cal_disk_submit(cal_disk_t *d, cal_disk_job_t *job)
{
    job->disk = d;
    job->next = NULL;
    job->progress_ev.job = job;
    job->done_ev.job = job;
    if (d->pending++ == 0)
        d->progress_ms = fw_clock_mono_ms(); /* a stall is counted from here */
    pthread_mutex_lock(&d->mu);
    if (d->todo_tail != NULL)
        d->todo_tail->next = job;
    else
        d->todo_head = job;
    d->todo_tail = job;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

void cal_disk_close(cal_disk_t *d, cal_disk_close_cb cb)
{
    d->close_cb = cb;
    pthread_mutex_lock(&d->mu);
    d->stopping = 1;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    maybe_finish_close(d);
}

void cal_disk_report(cal_disk_t *d, int rc)
{
    d->last_error = rc < 0 ? rc : 0;
    if (rc < 0)
        d->last_error_ms = fw_clock_mono_ms();
}

int cal_disk_ready(const cal_disk_t *d, int64_t stall_ms, char *reason, size_t cap)
{
    int64_t now = fw_clock_mono_ms();
    /* A failure counts while it is recent: a bucket that failed and went
     * quiet must not hold the writer unready for ever. */
    if (d->last_error < 0 && now - d->last_error_ms < stall_ms) {
        snprintf(reason, cap, "the last disk write failed %.1f s ago: %s",
                 (double)(now - d->last_error_ms) / 1000, fw_strerror(d->last_error));
        return 0;
    }
    if (d->pending > 0 && now - d->progress_ms >= stall_ms) {
        snprintf(reason, cap, "disk stalled: %" PRIu64 " jobs waiting, none finished for %.1f s",
                 d->pending, (double)(now - d->progress_ms) / 1000);
        return 0;
    }
    return 1;
}
