/* The disk thread and its two queues (see disk.h). */
#include "disk.h"

#include <errno.h>

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

static void *disk_main(void *arg)
{
    cal_disk_t *d = arg;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        while (d->todo_head == NULL && !d->stopping)
            pthread_cond_wait(&d->cv, &d->mu);
        cal_disk_job_t *job = d->todo_head;
        if (job == NULL) {
            pthread_mutex_unlock(&d->mu);
            return NULL; /* stopping, and every job has run */
        }
        d->todo_head = job->next;
        if (d->todo_head == NULL)
            d->todo_tail = NULL;
        pthread_mutex_unlock(&d->mu);
        job->work(job);
        post(d, &job->done_ev);
    }
}

static void on_thread_joined(uv_handle_t *h)
{
    cal_disk_t *d = h->data;
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    if (d->close_cb != NULL)
        d->close_cb(d);
}

static void maybe_finish_close(cal_disk_t *d)
{
    if (!d->stopping || d->pending > 0 || uv_is_closing((uv_handle_t *)&d->async))
        return;
    /* Every job is done and the thread exits once it sees the queue empty. */
    pthread_join(d->thread, NULL);
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
    d->events_head = d->events_tail = NULL;
    d->stopping = 0;
    d->pending = 0;
    d->close_cb = NULL;
    int rc = uv_async_init(loop, &d->async, on_events);
    if (rc < 0)
        return rc;
    d->async.data = d;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    rc = pthread_create(&d->thread, NULL, disk_main, d);
    if (rc != 0) {
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
    d->pending++;
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
