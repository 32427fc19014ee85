/* Copying one bucket to one destination (see task.h). */
#include "task.h"

#include "clock.h"
#include "error.h"
#include "log.h"
#include "pbtext.h"
#include "proto/meta.pb-c.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000

static void progress_path(const cp_task_t *t, char *out, size_t cap)
{
    snprintf(out, cap, "/copier/%s/%s", t->dest->key, t->bucket->name);
}

static void claim_path(const cp_task_t *t, char *out, size_t cap)
{
    snprintf(out, cap, "/copier/%s/%s/claim", t->dest->key, t->bucket->name);
}

static void segment_path(const cp_task_t *t, uint64_t id, char *out, size_t cap)
{
    char name[FW_SEG_NAME_LEN + 1];
    fw_seg_name(name, id);
    snprintf(out, cap, "%s/%s", t->bucket->dir, name);
}

/* The smallest segment id above `after` in the source bucket, or 0 if none. */
static uint64_t segment_after(const cp_task_t *t, uint64_t after)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    uint64_t found = 0;
    if (fw_seg_list(t->bucket->dir, &ids, &n) < 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] > after) {
            found = ids[i];
            break;
        }
    free(ids);
    return found;
}

static fw_zk_t *zk_of(const cp_task_t *t)
{
    return &t->copier->zk;
}

/* Our claim is in the current, live session. */
static int alive(const cp_task_t *t)
{
    return t->session != 0 && t->session == fw_zk_session_id(zk_of(t));
}

static void backoff(cp_task_t *t)
{
    t->backoff_ms = t->backoff_ms == 0 ? BACKOFF_MIN_MS : t->backoff_ms * 2;
    if (t->backoff_ms > BACKOFF_MAX_MS)
        t->backoff_ms = BACKOFF_MAX_MS;
    t->retry_at_ms = fw_clock_mono_ms() + t->backoff_ms;
}

cp_task_t *cp_task_create(cp_copier_t *c, cp_bucket_t *b, cp_dest_t *dest)
{
    cp_task_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->copier = c;
    t->bucket = b;
    t->dest = dest;
    t->work.data = t;
    t->req.data = t;
    if (cp_stats_task(&c->stats, dest->url, b->category, b->bucket, &t->stats) < 0) {
        free(t);
        return NULL;
    }
    return t;
}

void cp_task_free(cp_task_t *t)
{
    if (t == NULL)
        return;
    fw_buf_free(&t->read.out);
    free(t);
}

int cp_task_quiet(const cp_task_t *t)
{
    return t->state == CP_TASK_IDLE;
}

uint64_t cp_task_copied_below(const cp_task_t *t)
{
    if (!t->recorded)
        return 0;
    return t->sealed ? t->segment + 1 : t->segment;
}

/* ---- giving the bucket up --------------------------------------------------------- */

static void go_idle(cp_task_t *t)
{
    t->state = CP_TASK_IDLE;
    t->session = 0;
    t->recorded = 0;
    t->reload = 0;
    fw_metric_set(t->stats.owned, 0);
    fw_metric_set(t->stats.lag_bytes, 0);
    fw_metric_set(t->stats.lag_seconds, 0);
    if (t->copier->stopping)
        cp_copier_task_idle(t->copier);
}

static void on_released(fw_zk_t *zk, int rc, void *arg)
{
    (void)zk;
    cp_task_t *t = arg;
    if (rc != ZOK && rc != ZNONODE)
        fw_log_debug("copier", "%s -> %s: claim not deleted (%s); it ends with the session",
                     t->bucket->name, t->dest->url, zerror(rc));
    go_idle(t);
    cp_task_step(t);
}

/* Lets the bucket go: deletes our claim if we can, else it goes with the session. */
static void release(cp_task_t *t)
{
    char path[1600];
    claim_path(t, path, sizeof(path));
    if (alive(t) && fw_zk_connected(zk_of(t))) {
        t->state = CP_TASK_RELEASING;
        if (fw_zk_delete(zk_of(t), path, -1, on_released, t) == 0)
            return;
    }
    go_idle(t);
}

void cp_task_session_lost(cp_task_t *t)
{
    /* Busy states find out when their step completes (alive() fails). */
    if (t->state == CP_TASK_READY || t->state == CP_TASK_IDLE)
        go_idle(t);
}

/* ---- claiming ------------------------------------------------------------------------- */

static void load(cp_task_t *t);
static void claim(cp_task_t *t);

static void on_claim_gone(fw_zk_t *zk, int rc, int type, const char *path, void *arg)
{
    (void)zk;
    (void)type;
    (void)path;
    cp_task_t *t = arg;
    t->claim_watch = 0;
    if (rc == ZOK)
        cp_task_step(t);
}

static void on_stale_claim_deleted(fw_zk_t *zk, int rc, void *arg)
{
    (void)zk;
    (void)rc;
    cp_task_t *t = arg;
    t->state = CP_TASK_IDLE;
    cp_task_step(t);
}

static void on_claim_read(fw_zk_t *zk, int rc, const char *data, size_t len,
                          const struct Stat *stat, void *arg)
{
    cp_task_t *t = arg;
    const char *self = t->copier->cfg.id;
    t->state = CP_TASK_IDLE;
    if (rc != ZOK) {
        t->claim_watch = 0; /* a get that failed set no watch: nothing would clear it */
        if (rc == ZNONODE) {
            cp_task_step(t); /* gone meanwhile: try again */
            return;
        }
        backoff(t);
        return;
    }
    int ours = len == strlen(self) && memcmp(data, self, len) == 0;
    if (ours)
        t->claim_watch = 0; /* the watch may still fire: a spare step is harmless */
    if (ours && stat->ephemeralOwner == fw_zk_session_id(zk)) {
        /* Ours already (a step of ours failed in this session): carry on. */
        t->session = stat->ephemeralOwner;
        load(t);
        return;
    }
    if (ours) {
        /* Left by our previous life (kill -9, restart): its session has not
         * expired yet, and nobody else may have it meanwhile. */
        char path[1600];
        claim_path(t, path, sizeof(path));
        fw_log_info("copier", "%s -> %s: replacing the claim of our previous session",
                    t->bucket->name, t->dest->url);
        t->state = CP_TASK_CLAIMING;
        if (fw_zk_delete(zk, path, stat->version, on_stale_claim_deleted, t) < 0)
            t->state = CP_TASK_IDLE;
        return;
    }
    /* Another copier's; the read set a watch that tells us when it goes. */
    t->claim_watch = 1;
}

static void on_claimed(fw_zk_t *zk, int rc, const char *path, void *arg)
{
    cp_task_t *t = arg;
    if (rc == ZOK) {
        t->session = fw_zk_session_id(zk);
        load(t);
        return;
    }
    (void)path;
    t->state = CP_TASK_IDLE;
    backoff(t);
}

static void on_claim_exists(fw_zk_t *zk, int rc, const char *path, void *arg)
{
    (void)path;
    cp_task_t *t = arg;
    if (rc == ZNODEEXISTS) {
        char p[1600];
        claim_path(t, p, sizeof(p));
        t->claim_watch = 1; /* set by the get below */
        if (fw_zk_get(zk, p, on_claim_gone, t, on_claim_read, t) < 0) {
            t->claim_watch = 0;
            t->state = CP_TASK_IDLE;
        }
        return;
    }
    on_claimed(zk, rc, path, arg);
}

static void on_progress_node(fw_zk_t *zk, int rc, void *arg)
{
    cp_task_t *t = arg;
    if (rc != ZOK) {
        t->state = CP_TASK_IDLE;
        backoff(t);
        return;
    }
    char path[1600];
    claim_path(t, path, sizeof(path));
    const char *self = t->copier->cfg.id;
    if (fw_zk_create(zk, path, self, strlen(self), FW_ZK_EPHEMERAL, on_claim_exists, t) < 0)
        t->state = CP_TASK_IDLE;
}

static void claim(cp_task_t *t)
{
    char path[1600];
    progress_path(t, path, sizeof(path));
    t->state = CP_TASK_CLAIMING;
    if (fw_zk_ensure_path(zk_of(t), path, on_progress_node, t) < 0)
        t->state = CP_TASK_IDLE;
}

/* ---- resuming: progress, then the destination's length ------------------------------------ */

static void check(cp_task_t *t);

static void stop_bucket(cp_task_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void stop_bucket(cp_task_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char why[300];
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    if (!t->stopped || strcmp(why, t->last_error) != 0)
        fw_log_error("copier", "%s -> %s: %s; copying of this bucket is stopped", t->bucket->name,
                     t->dest->url, why);
    snprintf(t->last_error, sizeof(t->last_error), "%s", why);
    t->stopped = 1;
    fw_metric_set(t->stats.stopped, 1);
    t->state = CP_TASK_READY;
    t->retry_at_ms = fw_clock_mono_ms() + t->copier->cfg.poll_ms; /* look again: repaired? */
}

static void resume_ok(cp_task_t *t)
{
    if (t->stopped) {
        fw_log_info("copier", "%s -> %s: copying again", t->bucket->name, t->dest->url);
        t->stopped = 0;
        fw_metric_set(t->stats.stopped, 0);
    }
}

static void on_loaded(fw_zk_t *zk, int rc, const char *data, size_t len, const struct Stat *stat,
                      void *arg)
{
    (void)zk;
    cp_task_t *t = arg;
    t->state = CP_TASK_READY;
    if (!alive(t)) {
        go_idle(t); /* the claim went with the session */
        return;
    }
    if (rc != ZOK) {
        fw_metric_inc(t->stats.zk_errors);
        if (rc == ZNONODE) {
            release(t); /* the progress node was removed under us: the bucket is gone */
            return;
        }
        /* A lost connection or a timeout: the claim is still ours. Letting it go here would
         * hand the bucket around for a hiccup; read again once ZooKeeper answers. */
        fw_log_info("copier", "%s -> %s: reading the progress failed (%s); reading it again",
                    t->bucket->name, t->dest->url, zerror(rc));
        t->reload = 1;
        backoff(t);
        return;
    }
    t->reload = 0;
    t->segment = t->offset = 0;
    t->sealed = 0;
    if (len > 0) {
        ProtobufCMessage *msg;
        char err[200];
        if (fw_pbtext_parse(&fwpb__copier_progress__descriptor, data, len, &msg, err, sizeof(err)) <
            0) {
            stop_bucket(t, "unreadable progress in ZooKeeper (%s)", err);
            release(t); /* never copy without knowing where the copy ends */
            return;
        }
        Fwpb__CopierProgress *p = (Fwpb__CopierProgress *)msg;
        t->segment = p->segment_id;
        t->offset = p->offset;
        t->sealed = p->has_sealed && p->sealed;
        protobuf_c_message_free_unpacked(msg, NULL);
    }
    t->version = stat->version;
    t->recorded = 1;
    fw_metric_set(t->stats.owned, 1);
    fw_log_debug("copier", "%s -> %s: claimed at segment %" PRIu64 " offset %" PRIu64,
                 t->bucket->name, t->dest->url, t->segment, t->offset);
    t->resync = t->segment != 0;
    cp_task_step(t);
}

static void load(cp_task_t *t)
{
    char path[1600];
    progress_path(t, path, sizeof(path));
    t->state = CP_TASK_LOADING;
    if (fw_zk_get(zk_of(t), path, NULL, NULL, on_loaded, t) < 0) {
        t->state = CP_TASK_READY;
        t->reload = 1;
        backoff(t);
    }
}

/* Counts and logs a failed request to the destination, and keeps the last result for /readyz. */
static int dest_result(cp_task_t *t, int status)
{
    cp_dest_t *d = t->dest;
    d->last_error = status < 0 ? status : 0;
    if (status >= 0)
        return 0;
    d->last_error_ms = fw_clock_mono_ms();
    snprintf(d->last_error_text, sizeof(d->last_error_text), "%s", t->req.error);
    fw_metric_inc(t->stats.dest_errors);
    fw_log_warn("copier", "%s -> %s: %s", t->bucket->name, d->url, t->req.error);
    return status;
}

static void on_fixed(cp_dest_req_t *req, int status)
{
    cp_task_t *t = req->data;
    t->state = CP_TASK_READY;
    if (!alive(t)) {
        go_idle(t);
        return;
    }
    if (dest_result(t, status) < 0) {
        backoff(t);
        return;
    }
    t->resync = 0;
    cp_task_step(t);
}

/*
 * Sends one request about the current segment to the destination; the task
 * waits in `state` until cb. A request that cannot even start is retried
 * after a backoff.
 */
static void send_req(cp_task_t *t, cp_task_state_t state, uint64_t offset, cp_dest_cb cb,
                     int (*op)(cp_dest_t *, cp_dest_req_t *))
{
    t->req.category = t->bucket->category;
    t->req.bucket = t->bucket->bucket;
    t->req.segment_id = t->segment;
    t->req.offset = offset;
    t->req.cb = cb;
    t->state = state;
    if (op(t->dest, &t->req) < 0) {
        t->state = CP_TASK_READY;
        backoff(t);
    }
}

static void fix(cp_task_t *t, uint64_t length)
{
    send_req(t, CP_TASK_FIXING, length, on_fixed, t->dest->ops->truncate);
}

/* The last block boundary at or below len in a source segment (0: below the header). */
static int boundary_below(const cp_task_t *t, uint64_t len, uint64_t *at)
{
    char path[4200];
    segment_path(t, t->segment, path, sizeof(path));
    fw_segr_t *r;
    int rc = fw_segr_open(path, &r);
    if (rc < 0)
        return rc;
    *at = fw_segr_position(r);
    if (len < *at) {
        *at = 0;
    } else {
        fw_block_header_t h;
        uint64_t off;
        while (fw_segr_skim(r, &h, &off) == FW_SEGR_BLOCK && fw_segr_position(r) <= len)
            *at = fw_segr_position(r);
    }
    fw_segr_close(r);
    return 0;
}

static void on_length(cp_dest_req_t *req, int status)
{
    cp_task_t *t = req->data;
    t->state = CP_TASK_READY;
    if (!alive(t)) {
        go_idle(t);
        return;
    }
    if (dest_result(t, status == -ENOENT ? 0 : status) < 0) {
        backoff(t);
        return;
    }
    uint64_t have = status == -ENOENT ? 0 : req->offset;
    if (have == t->offset || (have > t->offset && t->offset == 0)) {
        /* In step (a new segment's first write replaces whatever is there). */
        t->resync = 0;
        cp_task_step(t);
        return;
    }
    if (have > t->offset) {
        /* Written after the last record (a crash, a lost claim): cut, never duplicate. */
        fw_log_info("copier",
                    "%s -> %s: segment %" PRIu64 " holds %" PRIu64
                    " bytes past the recorded %" PRIu64 ": cutting them",
                    t->bucket->name, t->dest->url, t->segment, have - t->offset, t->offset);
        fw_metric_add(t->stats.truncated_bytes, have - t->offset);
        fix(t, t->offset);
        return;
    }
    /* The destination lost bytes it had made durable (restored, tampered with). */
    uint64_t at;
    int rc = boundary_below(t, have, &at);
    if (rc < 0) {
        stop_bucket(t,
                    "the destination holds %" PRIu64 " bytes of segment %" PRIu64
                    ", fewer than the recorded %" PRIu64 ", and the source segment is unreadable "
                    "(%s)",
                    have, t->segment, t->offset, fw_strerror(rc));
        return;
    }
    fw_log_error("copier",
                 "%s -> %s: the destination holds %" PRIu64 " bytes of segment %" PRIu64
                 ", fewer than the recorded %" PRIu64 ": copying again from %" PRIu64,
                 t->bucket->name, t->dest->url, have, t->segment, t->offset, at);
    t->offset = at;
    t->sealed = 0;
    if (at == 0 || at == have) {
        t->resync = 0;
        cp_task_step(t);
    } else {
        fix(t, at);
    }
}

static void check(cp_task_t *t)
{
    send_req(t, CP_TASK_CHECKING, 0, on_length, t->dest->ops->length);
}

/* ---- copying: read, write, record ------------------------------------------------------ */

static void on_recorded(fw_zk_t *zk, int rc, const struct Stat *stat, void *arg)
{
    (void)zk;
    cp_task_t *t = arg;
    t->state = CP_TASK_READY;
    if (rc == ZBADVERSION || rc == ZNONODE) {
        fw_log_warn("copier",
                    "%s -> %s: the progress was changed by another copier: letting the "
                    "bucket go",
                    t->bucket->name, t->dest->url);
        fw_metric_inc(t->stats.zk_errors);
        release(t);
        return;
    }
    if (rc != ZOK) {
        /* Unknown whether it landed: read it back, and check the destination again. */
        fw_metric_inc(t->stats.zk_errors);
        if (!alive(t)) {
            go_idle(t);
            return;
        }
        t->reload = 1; /* the claim is ours still: read the progress back, then check */
        t->resync = 1;
        cp_task_step(t);
        return;
    }
    cp_read_t *r = &t->read;
    t->version = stat->version;
    t->offset = r->end;
    t->sealed = r->sealed;
    t->recorded = 1;
    t->backoff_ms = 0;
    fw_metric_add(t->stats.bytes_copied, r->out.len);
    fw_metric_add(t->stats.blocks_copied, r->blocks);
    if (r->sealed)
        fw_metric_inc(t->stats.segments_copied);
    if (r->oldest_ts > 0) {
        double delay = (double)(fw_clock_wall_ms() - r->oldest_ts) / 1000.0;
        fw_metric_observe(t->stats.delay, delay < 0 ? 0 : delay);
    }
    if (r->out.cap > 256 * 1024)
        fw_buf_free(&r->out); /* a catch-up chunk: do not keep one per bucket */
    cp_task_step(t);
}

static void on_written(cp_dest_req_t *req, int status)
{
    cp_task_t *t = req->data;
    t->state = CP_TASK_READY;
    if (!alive(t)) {
        go_idle(t);
        return;
    }
    if (dest_result(t, status) < 0) {
        t->resync = 1; /* it may have landed in part: check before writing again */
        backoff(t);
        return;
    }
    Fwpb__CopierProgress p = FWPB__COPIER_PROGRESS__INIT;
    p.segment_id = t->segment;
    p.offset = t->read.end;
    p.has_sealed = 1;
    p.sealed = t->read.sealed;
    p.has_updated_ms = 1;
    p.updated_ms = fw_clock_wall_ms();
    p.copier = (char *)t->copier->cfg.id;
    fw_buf_t text = FW_BUF_INIT;
    char path[1600];
    progress_path(t, path, sizeof(path));
    t->state = CP_TASK_RECORDING;
    if (fw_pbtext_format(&p.base, &text) < 0 ||
        fw_zk_set(zk_of(t), path, text.data, text.len, t->version, on_recorded, t) < 0) {
        t->state = CP_TASK_READY;
        t->resync = 1;
        backoff(t);
    }
    fw_buf_free(&text);
}

static void on_damage(cp_task_t *t)
{
    cp_read_t *r = &t->read;
    int64_t now = fw_clock_mono_ms();
    if (t->damage_segment != t->segment || t->damage_offset != r->damage_offset ||
        t->damage_since_ms == 0) {
        t->damage_segment = t->segment;
        t->damage_offset = r->damage_offset;
        t->damage_since_ms = now;
        fw_metric_inc(t->stats.damaged);
    }
    /* At the tail of the open segment it may be a torn write that the writer's
     * recovery will cut; once the bucket has moved on, or after the grace, it
     * is damage. Either way it is never copied. */
    int moved_on = segment_after(t, t->segment) != 0;
    if (moved_on || now - t->damage_since_ms >= t->copier->cfg.damage_grace_ms) {
        stop_bucket(t, "damaged block at offset %" PRIu64 " of segment %" PRIu64 " (%s)",
                    r->damage_offset, t->segment, fw_strerror(r->damage_why));
    } else {
        t->state = CP_TASK_READY;
        t->retry_at_ms = now + t->copier->cfg.poll_ms;
    }
}

static void run_read(uv_work_t *w)
{
    cp_task_t *t = w->data;
    cp_read_run(&t->read);
}

static void after_read(uv_work_t *w, int status)
{
    cp_task_t *t = w->data;
    cp_read_t *r = &t->read;
    t->state = CP_TASK_READY;
    if (!alive(t)) {
        go_idle(t);
        return;
    }
    if (status < 0 || t->copier->stopping) {
        cp_task_step(t);
        return;
    }
    switch (r->status) {
    case CP_READ_DATA:
        if (!fw_zk_connected(zk_of(t))) {
            /* Suspended: another copier may have the bucket by now. Write
             * nothing; read again once the session is back. */
            t->dirty = 1;
            return;
        }
        resume_ok(t);
        t->damage_since_ms = 0;
        cp_rate_take(&t->copier->rate, r->out.len);
        if (r->oldest_ts > 0) {
            double lag = (double)(fw_clock_wall_ms() - r->oldest_ts) / 1000.0;
            fw_metric_set(t->stats.lag_seconds, lag < 0 ? 0 : lag);
        }
        t->req.bytes = r->out.data;
        t->req.len = r->out.len;
        send_req(t, CP_TASK_WRITING, t->offset, on_written, t->dest->ops->write);
        return;
    case CP_READ_AGAIN:
        resume_ok(t);
        t->damage_since_ms = 0;
        fw_metric_set(t->stats.lag_seconds, 0);
        if (t->dirty) {
            t->dirty = 0;
            cp_task_step(t);
        }
        return;
    case CP_READ_DAMAGED:
        on_damage(t);
        return;
    case CP_READ_GONE:
        if (t->offset == 0) {
            /* Listed, then removed before a byte of it was copied (a torn
             * header the writer's recovery removed; ids are never reused). */
            t->sealed = 1;
            cp_task_step(t);
            return;
        }
        stop_bucket(t, "source segment %" PRIu64 " is gone before it was copied whole", t->segment);
        return;
    case CP_READ_NO_HEADER:
        if (segment_after(t, t->segment) != 0) {
            /* A segment whose header a crash tore holds no block: nothing to copy. */
            fw_log_warn("copier",
                        "%s: segment %" PRIu64 " has no whole header and the bucket "
                        "moved on: skipping it",
                        t->bucket->name, t->segment);
            t->sealed = 1;
            cp_task_step(t);
        }
        return;
    case CP_READ_ERROR:
        fw_metric_inc(t->stats.source_errors);
        fw_log_warn("copier", "%s: reading segment %" PRIu64 ": %s", t->bucket->name, t->segment,
                    fw_strerror(r->error));
        backoff(t);
        return;
    }
}

static void start_read(cp_task_t *t)
{
    cp_copier_t *c = t->copier;
    if (!t->recorded)
        return; /* never copy without knowing where the copy ends */
    if (t->segment == 0 || t->sealed) {
        uint64_t next = segment_after(t, t->segment);
        if (next == 0)
            return; /* nothing newer yet */
        t->segment = next;
        t->offset = 0;
        t->sealed = 0;
    }
    int64_t now = fw_clock_mono_ms();
    uint64_t avail = cp_rate_available(&c->rate, now);
    if (avail == 0) {
        fw_metric_inc(c->stats.rate_waits);
        cp_copier_rate_wait(c, cp_rate_wait_ms(&c->rate, now));
        return;
    }
    cp_read_t *r = &t->read;
    segment_path(t, t->segment, r->path, sizeof(r->path));
    r->offset = t->offset;
    r->limit = (size_t)(avail < c->cfg.chunk ? avail : c->cfg.chunk);
    t->state = CP_TASK_READING;
    t->dirty = 0;
    if (uv_queue_work(c->loop, &t->work, run_read, after_read) < 0) {
        t->state = CP_TASK_READY;
        backoff(t);
    }
}

/* ---- the driver ------------------------------------------------------------------------ */

void cp_task_step(cp_task_t *t)
{
    cp_copier_t *c = t->copier;
    int64_t now = fw_clock_mono_ms();
    switch (t->state) {
    case CP_TASK_IDLE:
        if (!t->wanted || c->stopping || t->claim_watch || !fw_zk_connected(&c->zk) ||
            now < t->retry_at_ms)
            return;
        claim(t);
        return;
    case CP_TASK_READY:
        if (!alive(t)) {
            go_idle(t);
            return;
        }
        if (c->stopping) {
            release(t); /* suspended: no delete, the claim goes with the session we close */
            return;
        }
        if (!fw_zk_connected(&c->zk))
            return; /* suspended: we may already have been replaced; hold still */
        if (!t->wanted) {
            release(t);
            return;
        }
        if (now < t->retry_at_ms)
            return;
        if (t->reload)
            load(t);
        else if (t->resync)
            check(t);
        else
            start_read(t);
        return;
    default:
        return; /* a step is in flight; its completion steps again */
    }
}

void cp_task_wake(cp_task_t *t)
{
    if (t->state == CP_TASK_READY && !t->stopped)
        cp_task_step(t);
    else
        t->dirty = 1;
}

void cp_task_measure(cp_task_t *t)
{
    if (t->state == CP_TASK_IDLE || t->session == 0)
        return;
    uint64_t *ids = NULL;
    size_t n = 0;
    if (fw_seg_list(t->bucket->dir, &ids, &n) < 0)
        return;
    uint64_t behind = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < t->segment)
            continue;
        char path[4200];
        struct stat st;
        segment_path(t, ids[i], path, sizeof(path));
        if (stat(path, &st) < 0)
            continue;
        uint64_t size = (uint64_t)st.st_size;
        if (ids[i] == t->segment)
            behind += size > t->offset ? size - t->offset : 0;
        else
            behind += size;
    }
    free(ids);
    fw_metric_set(t->stats.lag_bytes, (double)behind);
    if (behind == 0)
        fw_metric_set(t->stats.lag_seconds, 0);
}
