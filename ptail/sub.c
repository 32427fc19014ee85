/* One consumer's subscription (see sub.h). */
#include "sub.h"

#include "checkpoint.h"
#include "clock.h"
#include "error.h"
#include "frame.h"
#include "log.h"
#include "net.h"
#include "proto/stream.pb-c.h"
#include "status.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define READ_CHUNK            (64u << 10)
#define DEFAULT_CREDIT        (4u << 20)
#define DEFAULT_EVERY_RECORDS 1000
#define DEFAULT_EVERY_MS      1000
#define LOG                   "ptail"

static void pump(pt_sub_t *sub);
static void flush_out(pt_sub_t *sub);

/* ---- closing ---------------------------------------------------------------------------- */

static void free_sub(pt_sub_t *sub)
{
    pt_server_t *s = sub->server;
    for (uint32_t i = 0; i < sub->nbuckets; i++) {
        pt_bucket_t *b = sub->buckets[i];
        if (b == NULL)
            continue;
        if (b->lag_reported)
            pt_stats_lag_remove(s->stats, sub->category, b->cur.bucket, sub->name);
        pt_cursor_close(&b->cur);
        free(b);
    }
    free(sub->buckets);
    fw_checkpoint_free(&sub->start_cp);
    fw_buf_free(&sub->in);
    fw_buf_free(&sub->out);
    fw_buf_free(&sub->wbuf);
    if (sub->prev != NULL)
        sub->prev->next = sub->next;
    else
        s->subs = sub->next;
    if (sub->next != NULL)
        sub->next->prev = sub->prev;
    s->nsubs--;
    if (sub->subscribed)
        fw_metric_gauge_add(s->stats->subscribers, -1);
    free(sub);
    pt_server_sub_gone(s);
}

static void on_handle_closed(uv_handle_t *h)
{
    pt_sub_t *sub = h->data;
    if (--sub->handles == 0)
        free_sub(sub);
}

void pt_sub_close(pt_sub_t *sub)
{
    if (sub->closing)
        return;
    sub->closing = 1;
    uv_read_stop((uv_stream_t *)&sub->tcp);
    for (uint32_t i = 0; i < sub->nbuckets; i++) {
        pt_bucket_t *b = sub->buckets[i];
        if (b != NULL && b->watching) {
            b->watching = 0;
            b->watch.data = sub; /* its close callback counts the subscription's handles */
            uv_close((uv_handle_t *)&b->watch, on_handle_closed);
        }
    }
    if (sub->cat_watching) {
        sub->cat_watching = 0;
        uv_close((uv_handle_t *)&sub->cat_watch, on_handle_closed);
    }
    uv_close((uv_handle_t *)&sub->kick, on_handle_closed);
    uv_close((uv_handle_t *)&sub->tcp, on_handle_closed);
}

/* ---- output ----------------------------------------------------------------------------- */

static void on_written(uv_write_t *req, int status)
{
    pt_sub_t *sub = req->data;
    sub->writing = 0;
    sub->wbuf.len = 0;
    if (sub->closing)
        return;
    if (status < 0) {
        fw_log_debug(LOG, "%s: %s", sub->peer, uv_strerror(status));
        pt_sub_close(sub);
        return;
    }
    if (sub->refused) {
        pt_sub_close(sub); /* the error frame went out */
        return;
    }
    pump(sub);
}

static void flush_out(pt_sub_t *sub)
{
    if (sub->writing || sub->out.len == 0 || sub->closing)
        return;
    fw_buf_t t = sub->wbuf;
    sub->wbuf = sub->out;
    sub->out = t;
    sub->out.len = 0;
    uv_buf_t b = uv_buf_init((char *)sub->wbuf.data, (unsigned)sub->wbuf.len);
    sub->wreq.data = sub;
    sub->writing = 1;
    if (uv_write(&sub->wreq, (uv_stream_t *)&sub->tcp, &b, 1, on_written) < 0) {
        sub->writing = 0;
        pt_sub_close(sub);
    }
}

/* Appends a STREAM frame; returns its size (charged to the credit) or a negative error. */
static ssize_t put_stream(pt_sub_t *sub, const Fwpb__StreamMessage *m, const void *body,
                          size_t body_len)
{
    size_t before = sub->out.len;
    int rc =
        fw_frame_append(&sub->out, FW_FRAME_STREAM, &m->base, body, body_len, FW_FRAME_MAX_LIMIT);
    if (rc < 0)
        return rc;
    size_t n = sub->out.len - before;
    sub->credit -= (int64_t)n;
    fw_metric_add(sub->stats.bytes_sent, n);
    return (ssize_t)n;
}

/* Refuses the subscription: an ERROR frame, then the connection closes. */
static void refuse(pt_sub_t *sub, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void refuse(pt_sub_t *sub, int code, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fw_log_info(LOG, "%s: %s", sub->peer, msg);
    fw_metric_inc(sub->server->stats->subscriptions_refused);
    sub->refused = 1;
    if (sub->subscribed) {
        fw_metric_gauge_add(sub->server->stats->subscribers, -1);
        sub->subscribed = 0;
    }
    uv_read_stop((uv_stream_t *)&sub->tcp);
    Fwpb__ErrorReply e = FWPB__ERROR_REPLY__INIT;
    e.status = fw_status_from_error(code);
    e.message = msg;
    sub->out.len = 0;
    if (fw_frame_append(&sub->out, FW_FRAME_ERROR, &e.base, NULL, 0, FW_FRAME_MAX_LIMIT) < 0 ||
        sub->writing) {
        pt_sub_close(sub);
        return;
    }
    flush_out(sub);
}

/* ---- buckets ---------------------------------------------------------------------------- */

static void on_kick(uv_timer_t *t)
{
    pump(t->data);
}

/*
 * Pumps after after_ms, or sooner if a kick is already due sooner. A kick
 * armed for a later time (the next time-based checkpoint) is brought
 * forward: new data must not wait for the checkpoint timer.
 */
static void kick(pt_sub_t *sub, uint64_t after_ms)
{
    if (sub->closing)
        return;
    if (uv_is_active((uv_handle_t *)&sub->kick) && uv_timer_get_due_in(&sub->kick) <= after_ms)
        return;
    uv_timer_start(&sub->kick, on_kick, after_ms, 0);
}

static void on_bucket_event(uv_fs_event_t *h, const char *file, int events, int status)
{
    (void)file;
    (void)events;
    (void)status;
    pt_bucket_t *b = h->data;
    b->caught_up = 0;
    kick(b->sub, 0);
}

/* Watches the bucket's directory once it exists (until then the tick polls). */
static void watch_bucket(pt_sub_t *sub, pt_bucket_t *b)
{
    if (b->watching || sub->closing)
        return;
    struct stat st;
    if (stat(b->cur.dir, &st) != 0)
        return; /* not there yet: the tick looks again */
    if (uv_fs_event_init(sub->server->loop, &b->watch) < 0)
        return;
    sub->handles++;
    b->watch.data = sub;
    if (uv_fs_event_start(&b->watch, on_bucket_event, b->cur.dir, 0) < 0) {
        uv_close((uv_handle_t *)&b->watch, on_handle_closed);
        return;
    }
    b->watch.data = b;
    b->watching = 1;
}

static pt_bucket_t *add_bucket(pt_sub_t *sub, uint32_t id, uint32_t slot)
{
    if (slot >= sub->nbuckets) {
        pt_bucket_t **v = realloc(sub->buckets, (slot + 1) * sizeof(*v));
        if (v == NULL)
            return NULL;
        memset(v + sub->nbuckets, 0, (slot + 1 - sub->nbuckets) * sizeof(*v));
        sub->buckets = v;
        sub->nbuckets = slot + 1;
    }
    if (sub->buckets[slot] != NULL)
        return sub->buckets[slot];
    pt_bucket_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    char dir[1100];
    if (fw_seg_bucket_dir(dir, sizeof(dir), sub->server->root, sub->category, id) < 0) {
        free(b);
        return NULL;
    }
    pt_cursor_init(&b->cur, dir, sub->category, id);
    b->sub = sub;
    sub->buckets[slot] = b;
    return b;
}

/* The bucket directories of the category now: ids into *ids (malloc'd). */
static int list_buckets(const char *cat_dir, uint32_t **ids, uint32_t *n)
{
    DIR *d = opendir(cat_dir);
    if (d == NULL)
        return -errno;
    uint32_t cap = 16, count = 0;
    uint32_t *v = malloc(cap * sizeof(*v));
    struct dirent *e;
    while (v != NULL && (e = readdir(d)) != NULL) {
        char *end;
        unsigned long id = strtoul(e->d_name, &end, 10);
        if (e->d_name[0] < '0' || e->d_name[0] > '9' || *end != '\0' || id >= FW_BUCKETS_MAX)
            continue;
        if (count == cap) {
            uint32_t *more = realloc(v, cap * 2 * sizeof(*v));
            if (more == NULL) {
                free(v);
                v = NULL;
                break;
            }
            v = more;
            cap *= 2;
        }
        v[count++] = (uint32_t)id;
    }
    closedir(d);
    if (v == NULL)
        return -ENOMEM;
    *ids = v;
    *n = count;
    return 0;
}

/*
 * A bucket that appears after the subscription began starts where the
 * subscription said: a token's position for it (a consumer that moved from
 * a writer's root to a copy that had not caught up yet), the time, or else
 * its earliest record (all of a new bucket's records are new).
 */
static void place_late_bucket(pt_sub_t *sub, pt_bucket_t *b)
{
    if (sub->start_kind == FWPB__START_KIND__START_CHECKPOINT) {
        const fw_position_t *p = fw_checkpoint_find(&sub->start_cp, b->cur.bucket);
        if (p != NULL)
            pt_cursor_seek(&b->cur, p);
    } else if (sub->start_kind == FWPB__START_KIND__START_TIMESTAMP) {
        pt_cursor_seek_time(&b->cur, sub->start_ts_ms);
    }
}

/* Adds buckets that appeared since (a category grew, a copy caught up). */
static void rescan_buckets(pt_sub_t *sub)
{
    uint32_t *ids = NULL, n = 0;
    if (list_buckets(sub->cat_dir, &ids, &n) < 0)
        return;
    for (uint32_t i = 0; i < n; i++) {
        if (ids[i] < sub->nbuckets && sub->buckets[ids[i]] != NULL)
            continue;
        pt_bucket_t *b = add_bucket(sub, ids[i], ids[i]);
        if (b != NULL) {
            fw_log_debug(LOG, "%s: %s/%u joins the subscription", sub->peer, sub->category, ids[i]);
            if (sub->subscribed)
                place_late_bucket(sub, b);
            watch_bucket(sub, b);
        }
    }
    free(ids);
}

static void on_category_event(uv_fs_event_t *h, const char *file, int events, int status)
{
    (void)file;
    (void)events;
    (void)status;
    pt_sub_t *sub = h->data;
    rescan_buckets(sub);
    kick(sub, 0);
}

/* New bucket directories of an all-buckets subscription show up at once (and the tick polls). */
static void watch_category(pt_sub_t *sub)
{
    if (!sub->all_buckets || sub->cat_watching || sub->closing)
        return;
    struct stat st;
    if (stat(sub->cat_dir, &st) != 0)
        return; /* not there yet: the tick looks again */
    if (uv_fs_event_init(sub->server->loop, &sub->cat_watch) < 0)
        return;
    sub->cat_watch.data = sub;
    sub->handles++;
    if (uv_fs_event_start(&sub->cat_watch, on_category_event, sub->cat_dir, 0) == 0)
        sub->cat_watching = 1;
    else
        uv_close((uv_handle_t *)&sub->cat_watch, on_handle_closed);
}

/* ---- checkpoints ------------------------------------------------------------------------- */

static int put_checkpoint(pt_sub_t *sub, int64_t now)
{
    fw_checkpoint_t cp = {0};
    snprintf(cp.category, sizeof(cp.category), "%s", sub->category);
    fw_position_t *pos = calloc(sub->nbuckets ? sub->nbuckets : 1, sizeof(*pos));
    if (pos == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < sub->nbuckets; i++) {
        if (sub->buckets[i] != NULL)
            pos[cp.count++] = sub->buckets[i]->cur.pos;
    }
    /* Tokens list buckets in order; request order may differ. */
    for (uint32_t i = 1; i < cp.count; i++) {
        fw_position_t p = pos[i];
        uint32_t j = i;
        for (; j > 0 && pos[j - 1].bucket > p.bucket; j--)
            pos[j] = pos[j - 1];
        pos[j] = p;
    }
    cp.positions = pos;
    fw_buf_t token = FW_BUF_INIT;
    int rc = cp.count > 0 ? fw_checkpoint_encode(&cp, &token) : 0;
    free(pos);
    if (rc < 0)
        fw_log_error(LOG, "%s: cannot encode a checkpoint of %s: %s", sub->peer, sub->category,
                     fw_strerror(rc));
    if (rc < 0 || cp.count == 0) {
        fw_buf_free(&token);
        return rc;
    }
    Fwpb__Checkpoint c = FWPB__CHECKPOINT__INIT;
    c.token.data = token.data;
    c.token.len = token.len;
    Fwpb__StreamMessage m = FWPB__STREAM_MESSAGE__INIT;
    m.kind_case = FWPB__STREAM_MESSAGE__KIND_CHECKPOINT;
    m.checkpoint = &c;
    ssize_t n = put_stream(sub, &m, NULL, 0);
    fw_buf_free(&token);
    if (n < 0)
        return (int)n;
    fw_metric_inc(sub->stats.checkpoints_sent);
    sub->records_since_cp = 0;
    sub->sent_since_cp = 0;
    sub->last_cp_ms = now;
    return 0;
}

/* ---- streaming --------------------------------------------------------------------------- */

static int put_block(pt_sub_t *sub, pt_bucket_t *b)
{
    const pt_cursor_t *c = &b->cur;
    Fwpb__Records r = FWPB__RECORDS__INIT;
    r.bucket = c->bucket;
    r.segment_id = c->pos.segment_id;
    r.offset = c->block.offset;
    if (c->first_record > 0) {
        r.has_first_record = 1;
        r.first_record = c->first_record;
    }
    Fwpb__StreamMessage m = FWPB__STREAM_MESSAGE__INIT;
    m.kind_case = FWPB__STREAM_MESSAGE__KIND_RECORDS;
    m.records = &r;
    ssize_t n = put_stream(sub, &m, c->block.data, c->block.len);
    if (n < 0)
        return (int)n;
    uint32_t records = c->block.header.record_count - c->first_record;
    fw_metric_add(sub->stats.records_sent, records);
    sub->records_since_cp += records;
    sub->sent_since_cp = 1;
    b->last_ts = c->block.header.max_ts;
    return 0;
}

static int put_gap(pt_sub_t *sub, pt_bucket_t *b)
{
    const pt_cursor_t *c = &b->cur;
    Fwpb__Position from = FWPB__POSITION__INIT, to = FWPB__POSITION__INIT;
    from.bucket = to.bucket = c->bucket;
    from.segment_id = c->gap_from.segment_id;
    from.offset = c->gap_from.offset;
    from.record_index = c->gap_from.record_index;
    to.segment_id = c->gap_to.segment_id;
    to.offset = c->gap_to.offset;
    to.record_index = c->gap_to.record_index;
    Fwpb__Gap g = FWPB__GAP__INIT;
    g.bucket = c->bucket;
    g.from = &from;
    g.to = &to;
    g.reason = (char *)c->gap_reason;
    Fwpb__StreamMessage m = FWPB__STREAM_MESSAGE__INIT;
    m.kind_case = FWPB__STREAM_MESSAGE__KIND_GAP;
    m.gap = &g;
    fw_log_warn(LOG, "%s: gap in %s/%u: %s", sub->peer, sub->category, c->bucket, c->gap_reason);
    fw_metric_inc(sub->stats.gaps_sent);
    sub->sent_since_cp = 1;
    ssize_t n = put_stream(sub, &m, NULL, 0);
    return n < 0 ? (int)n : 0;
}

/* Rounds over the buckets while the credit and the output buffer allow. */
static void pump(pt_sub_t *sub)
{
    if (!sub->subscribed || sub->closing)
        return;
    pt_server_t *s = sub->server;
    int64_t now = fw_clock_mono_ms();
    int64_t wall = fw_clock_wall_ms();
    int progress = 1;
    while (progress && sub->credit > 0 && sub->out.len < s->limits.out_buffer_bytes) {
        progress = 0;
        for (uint32_t k = 0; k < sub->nbuckets && sub->credit > 0; k++) {
            uint32_t i = (sub->rr + k) % sub->nbuckets;
            pt_bucket_t *b = sub->buckets[i];
            if (b == NULL)
                continue;
            if (b->caught_up)
                continue; /* until its directory changes or the tick */
            int rc = pt_cursor_next(&b->cur, wall, s->limits.damage_grace_ms);
            if (rc == PT_CURSOR_AGAIN) {
                b->caught_up = 1;
                continue;
            }
            if (rc >= 0)
                rc = rc == PT_CURSOR_BLOCK ? put_block(sub, b) : put_gap(sub, b);
            if (rc < 0) {
                fw_log_warn(LOG, "%s: reading %s: %s", sub->peer, b->cur.dir, fw_strerror(rc));
                b->caught_up = 1; /* the tick tries again */
                continue;
            }
            progress = 1;
            if (sub->every_records && sub->records_since_cp >= sub->every_records)
                put_checkpoint(sub, now);
        }
        sub->rr = sub->nbuckets ? (sub->rr + 1) % sub->nbuckets : 0;
        flush_out(sub);
    }
    if (sub->sent_since_cp && sub->every_ms) {
        int64_t due = sub->last_cp_ms + sub->every_ms;
        if (now >= due)
            put_checkpoint(sub, now);
        else
            kick(sub, (uint64_t)(due - now));
    }
    flush_out(sub);
}

/* ---- the subscribe request --------------------------------------------------------------- */

/*
 * A token's position must be a place in the files: a block boundary (or the
 * seal) with a record index inside the block, or at or past the end of what
 * the segment holds now (a copy that has not caught up yet; reading waits
 * there). A missing segment is left to reading (a gap, or a copy catching
 * up). 0, or a refusal's message in why.
 */
static int check_position(const pt_bucket_t *b, const fw_position_t *p, char *why, size_t len)
{
    if (p->segment_id == 0)
        return 0;
    char path[PT_CURSOR_PATH_MAX];
    pt_cursor_path(&b->cur, p->segment_id, path);
    fw_segr_t *r;
    if (fw_segr_open(path, &r) < 0)
        return 0;
    fw_block_header_t h;
    uint64_t at;
    int rc = fw_segr_seek(r, p->offset);
    if (rc == 0)
        rc = fw_segr_skim(r, &h, &at);
    fw_segr_close(r);
    if (rc == FW_ESEG_DAMAGED) {
        struct stat st;
        if (stat(path, &st) == 0 && p->offset < (uint64_t)st.st_size) {
            snprintf(why, len, "offset %llu of segment %llu of bucket %u is not a block boundary",
                     (unsigned long long)p->offset, (unsigned long long)p->segment_id, p->bucket);
            return -1;
        }
    } else if (rc == FW_SEGR_BLOCK && p->record_index >= h.record_count) {
        snprintf(why, len, "the block at %llu/%llu of bucket %u has %u records, not %u",
                 (unsigned long long)p->segment_id, (unsigned long long)p->offset, p->bucket,
                 h.record_count, p->record_index + 1);
        return -1;
    } else if (rc == FW_SEGR_SEALED && p->record_index != 0) {
        snprintf(why, len, "%llu/%llu of bucket %u is a seal, which has no records",
                 (unsigned long long)p->segment_id, (unsigned long long)p->offset, p->bucket);
        return -1;
    }
    return 0;
}

static int place_cursors(pt_sub_t *sub, const Fwpb__SubscribeRequest *req)
{
    fw_checkpoint_t *cp = &sub->start_cp;
    sub->start_kind = req->start;
    if (req->start != FWPB__START_KIND__START_EARLIEST &&
        req->start != FWPB__START_KIND__START_LATEST &&
        req->start != FWPB__START_KIND__START_CHECKPOINT &&
        req->start != FWPB__START_KIND__START_TIMESTAMP) {
        refuse(sub, FW_EPROTOCOL, "unknown start kind %d", (int)req->start);
        return -1;
    }
    if (req->start == FWPB__START_KIND__START_CHECKPOINT) {
        if (!req->has_checkpoint) {
            refuse(sub, FW_ETOKEN_BAD, "START_CHECKPOINT without a checkpoint token");
            return -1;
        }
        int rc = fw_checkpoint_decode(req->checkpoint.data, req->checkpoint.len, cp);
        if (rc < 0) {
            refuse(sub, rc, "the checkpoint token is not valid: %s", fw_strerror(rc));
            return -1;
        }
        if (strcmp(cp->category, sub->category) != 0) {
            refuse(sub, FW_ETOKEN_BAD, "the checkpoint token is for category '%s', not '%s'",
                   cp->category, sub->category);
            return -1;
        }
    }
    if (req->start == FWPB__START_KIND__START_TIMESTAMP) {
        if (!req->has_timestamp_ms) {
            refuse(sub, FW_EPROTOCOL, "START_TIMESTAMP without timestamp_ms");
            return -1;
        }
        sub->start_ts_ms = req->timestamp_ms;
    }
    int rc = 0;
    for (uint32_t i = 0; i < sub->nbuckets && rc == 0; i++) {
        pt_bucket_t *b = sub->buckets[i];
        if (b == NULL)
            continue;
        switch (req->start) {
        case FWPB__START_KIND__START_LATEST:
            rc = pt_cursor_seek_latest(&b->cur);
            break;
        case FWPB__START_KIND__START_TIMESTAMP:
            rc = pt_cursor_seek_time(&b->cur, req->timestamp_ms);
            break;
        case FWPB__START_KIND__START_CHECKPOINT: {
            const fw_position_t *p = fw_checkpoint_find(cp, b->cur.bucket);
            if (p == NULL)
                break;
            char why[200];
            if (check_position(b, p, why, sizeof(why)) < 0) {
                refuse(sub, FW_ETOKEN_BAD, "the checkpoint token names no place in the files: %s",
                       why);
                return -1;
            }
            pt_cursor_seek(&b->cur, p);
            break;
        }
        default:
            break;
        }
    }
    if (rc < 0) {
        refuse(sub, rc, "cannot place the subscription's start: %s", fw_strerror(rc));
        return -1;
    }
    return 0;
}

static void start_subscription(pt_sub_t *sub, Fwpb__SubscribeRequest *req);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/*
 * A category with no directory under the root yet may still exist: created
 * in ZooKeeper, with nothing written (a writer makes the directory with the
 * first segment), or not copied yet. ZooKeeper's catalog decides; the
 * subscription then waits for the buckets to appear.
 */
static void on_category_checked(fw_zk_t *zk, int rc, const struct Stat *stat, void *arg)
{
    (void)zk;
    (void)stat;
    pt_sub_t *sub = arg;
    Fwpb__SubscribeRequest *req = sub->pending_req;
    sub->pending_req = NULL;
    if (--sub->handles == 0) {
        fwpb__subscribe_request__free_unpacked(req, NULL);
        free_sub(sub); /* it closed meanwhile */
        return;
    }
    if (sub->closing) {
        fwpb__subscribe_request__free_unpacked(req, NULL);
        return;
    }
    if (rc != ZOK) {
        refuse(sub, rc == ZNONODE ? FW_EUNKNOWN_CATEGORY : FW_ERETRY_LATER,
               "no category '%s' in this ptail's root%s", req->category,
               rc == ZNONODE ? " or in ZooKeeper" : ", and ZooKeeper cannot say (try again)");
    } else {
        fw_log_info(LOG, "%s: %s exists in ZooKeeper but has no files here yet", sub->peer,
                    req->category);
        start_subscription(sub, req);
        uv_read_start((uv_stream_t *)&sub->tcp, on_alloc, on_read);
    }
    fwpb__subscribe_request__free_unpacked(req, NULL);
}

static void handle_subscribe(pt_sub_t *sub, const fw_frame_t *f)
{
    Fwpb__SubscribeRequest *req = fwpb__subscribe_request__unpack(NULL, f->meta_len, f->meta);
    if (req == NULL) {
        fw_metric_inc(sub->server->stats->bad_frames);
        refuse(sub, FW_EPROTOCOL, "malformed SubscribeRequest");
        return;
    }
    pt_server_t *s = sub->server;
    if (!fw_category_valid(req->category)) {
        refuse(sub, FW_EBAD_CATEGORY, "'%.140s' is not a category name", req->category);
        goto out;
    }
    snprintf(sub->category, sizeof(sub->category), "%s", req->category);
    if ((size_t)snprintf(sub->cat_dir, sizeof(sub->cat_dir), "%s/%s", s->root, req->category) >=
        sizeof(sub->cat_dir)) {
        refuse(sub, -ENAMETOOLONG, "the category's path is too long");
        goto out;
    }
    struct stat st;
    if (stat(sub->cat_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        char path[FW_CATEGORY_MAX + 16];
        snprintf(path, sizeof(path), "/categories/%s", req->category);
        if (s->zk == NULL) {
            refuse(sub, FW_EUNKNOWN_CATEGORY, "no category '%s' in this ptail's root",
                   req->category);
            goto out;
        }
        if (!fw_zk_connected(s->zk) ||
            fw_zk_exists(s->zk, path, NULL, NULL, on_category_checked, sub) < 0) {
            refuse(sub, FW_ERETRY_LATER,
                   "no category '%s' in this ptail's root, and ZooKeeper cannot say (try again)",
                   req->category);
            goto out;
        }
        /* Nothing else from this consumer until the answer; the answer holds the subscription. */
        uv_read_stop((uv_stream_t *)&sub->tcp);
        sub->pending_req = req;
        sub->handles++;
        return;
    }
    start_subscription(sub, req);
out:
    fwpb__subscribe_request__free_unpacked(req, NULL);
}

/* The subscription of an existing category: buckets, start, Subscribed, then streaming. */
static void start_subscription(pt_sub_t *sub, Fwpb__SubscribeRequest *req)
{
    pt_server_t *s = sub->server;
    if (pt_stats_category(s->stats, sub->category, &sub->stats) < 0) {
        refuse(sub, -ENOMEM, "out of memory");
        return;
    }
    if (req->consumer_name != NULL && req->consumer_name[0] != '\0')
        snprintf(sub->name, sizeof(sub->name), "%.100s", req->consumer_name);
    sub->all_buckets = req->n_buckets == 0;
    if (sub->all_buckets) {
        rescan_buckets(sub);
    } else {
        for (size_t i = 0; i < req->n_buckets; i++) {
            uint32_t id = req->buckets[i];
            if (id >= FW_BUCKETS_MAX) {
                refuse(sub, FW_EBUCKET_RANGE, "bucket %u is out of range", id);
                return;
            }
            for (size_t j = 0; j < i; j++) {
                if (req->buckets[j] == id) {
                    refuse(sub, FW_EPROTOCOL, "bucket %u is named twice", id);
                    return;
                }
            }
            if (add_bucket(sub, id, (uint32_t)i) == NULL) {
                refuse(sub, -ENOMEM, "out of memory");
                return;
            }
        }
    }
    if (place_cursors(sub, req) < 0)
        return;
    sub->every_records =
        req->has_checkpoint_every_records ? req->checkpoint_every_records : DEFAULT_EVERY_RECORDS;
    sub->every_ms = req->has_checkpoint_every_ms ? req->checkpoint_every_ms : DEFAULT_EVERY_MS;
    sub->credit =
        req->has_initial_credit_bytes
            ? (int64_t)(req->initial_credit_bytes > INT64_MAX / 2 ? INT64_MAX / 2
                                                                  : req->initial_credit_bytes)
            : DEFAULT_CREDIT;
    sub->last_cp_ms = fw_clock_mono_ms();
    sub->subscribed = 1;
    fw_metric_gauge_add(s->stats->subscribers, 1);

    /* Tell the consumer what it covers, then start streaming. */
    uint32_t *covered = calloc(sub->nbuckets ? sub->nbuckets : 1, sizeof(*covered));
    Fwpb__Subscribed ok = FWPB__SUBSCRIBED__INIT;
    for (uint32_t i = 0; covered != NULL && i < sub->nbuckets; i++) {
        if (sub->buckets[i] != NULL) {
            covered[ok.n_buckets++] = sub->buckets[i]->cur.bucket;
            if (sub->buckets[i]->cur.bucket + 1 > ok.bucket_count)
                ok.bucket_count = sub->buckets[i]->cur.bucket + 1;
        }
    }
    ok.buckets = covered;
    Fwpb__StreamMessage m = FWPB__STREAM_MESSAGE__INIT;
    m.kind_case = FWPB__STREAM_MESSAGE__KIND_SUBSCRIBED;
    m.subscribed = &ok;
    put_stream(sub, &m, NULL, 0);
    free(covered);
    /* Where each bucket starts, so a LATEST or TIMESTAMP start can be saved and resumed at once. */
    put_checkpoint(sub, sub->last_cp_ms);
    for (uint32_t i = 0; i < sub->nbuckets; i++)
        if (sub->buckets[i] != NULL)
            watch_bucket(sub, sub->buckets[i]);
    watch_category(sub);
    fw_log_info(LOG, "%s: %s subscribed to %s (%zu buckets%s)", sub->peer, sub->name, sub->category,
                ok.n_buckets, sub->all_buckets ? ", and any added later" : "");
    pump(sub);
}

/* ---- reading ------------------------------------------------------------------------------ */

static void handle_frame(pt_sub_t *sub, const fw_frame_t *f)
{
    if (f->type == FW_FRAME_SUBSCRIBE && !sub->subscribed) {
        handle_subscribe(sub, f);
        return;
    }
    if (f->type == FW_FRAME_CREDIT && sub->subscribed) {
        Fwpb__Credit *c = fwpb__credit__unpack(NULL, f->meta_len, f->meta);
        if (c == NULL) {
            fw_metric_inc(sub->server->stats->bad_frames);
            refuse(sub, FW_EPROTOCOL, "malformed Credit");
            return;
        }
        uint64_t add = c->bytes > (uint64_t)INT64_MAX / 4 ? (uint64_t)INT64_MAX / 4 : c->bytes;
        fwpb__credit__free_unpacked(c, NULL);
        if (sub->credit < INT64_MAX / 2)
            sub->credit += (int64_t)add;
        pump(sub);
        return;
    }
    fw_metric_inc(sub->server->stats->bad_frames);
    refuse(sub, FW_EPROTOCOL, "unexpected frame of type %u%s", f->type,
           sub->subscribed ? "" : " before SUBSCRIBE");
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    (void)suggested;
    pt_sub_t *sub = h->data;
    if (fw_buf_reserve(&sub->in, READ_CHUNK) < 0) {
        *out = uv_buf_init(NULL, 0);
        return;
    }
    *out = uv_buf_init((char *)sub->in.data + sub->in.len, (unsigned)(sub->in.cap - sub->in.len));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    pt_sub_t *sub = stream->data;
    if (nread < 0) {
        if (nread != UV_EOF)
            fw_log_debug(LOG, "%s: %s", sub->peer, uv_strerror((int)nread));
        pt_sub_close(sub);
        return;
    }
    sub->in.len += (size_t)nread;
    size_t off = 0;
    while (!sub->closing && !sub->refused && off < sub->in.len) {
        fw_frame_t f;
        size_t need = 0;
        ssize_t n = fw_frame_decode(sub->in.data + off, sub->in.len - off,
                                    sub->server->limits.max_frame, &f, &need);
        if (n == 0)
            break;
        if (n < 0) {
            fw_metric_inc(sub->server->stats->bad_frames);
            refuse(sub, (int)n, "%s",
                   n == FW_EFRAME_TOO_LARGE ? "frame exceeds the size limit" : "malformed frame");
            return;
        }
        off += (size_t)n;
        handle_frame(sub, &f);
    }
    if (off > 0 && !sub->closing && !sub->refused) {
        memmove(sub->in.data, sub->in.data + off, sub->in.len - off);
        sub->in.len -= off;
    }
}

int pt_sub_accept(pt_server_t *s, uv_stream_t *listener)
{
    pt_sub_t *sub = calloc(1, sizeof(*sub));
    if (sub == NULL)
        return -ENOMEM;
    sub->server = s;
    uv_tcp_init(s->loop, &sub->tcp);
    sub->tcp.data = sub;
    int rc = uv_accept(listener, (uv_stream_t *)&sub->tcp);
    if (rc < 0) {
        uv_close((uv_handle_t *)&sub->tcp, (uv_close_cb)free);
        return rc;
    }
    uv_tcp_nodelay(&sub->tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&sub->tcp, (struct sockaddr *)&ss, &len) == 0)
        fw_addr_format((struct sockaddr *)&ss, sub->peer, sizeof(sub->peer));
    else
        snprintf(sub->peer, sizeof(sub->peer), "a consumer");
    snprintf(sub->name, sizeof(sub->name), "%s", sub->peer);
    uv_timer_init(s->loop, &sub->kick);
    sub->kick.data = sub;
    sub->handles = 2;
    sub->next = s->subs;
    if (s->subs != NULL)
        s->subs->prev = sub;
    s->subs = sub;
    s->nsubs++;
    s->handles++;
    if (s->nsubs > s->limits.max_subscribers) {
        refuse(sub, FW_ERETRY_LATER, "too many subscribers (%u)", s->limits.max_subscribers);
        return 0;
    }
    uv_read_start((uv_stream_t *)&sub->tcp, on_alloc, on_read);
    return 0;
}

/* ---- the server's tick -------------------------------------------------------------------- */

/* Bytes stored in the bucket after pos. */
static double lag_bytes(const pt_cursor_t *c)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    if (fw_seg_list(c->dir, &ids, &n) < 0)
        return 0;
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < c->pos.segment_id)
            continue;
        char path[PT_CURSOR_PATH_MAX];
        pt_cursor_path(c, ids[i], path);
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        uint64_t from = ids[i] == c->pos.segment_id ? c->pos.offset : 0;
        if ((uint64_t)st.st_size > from)
            total += (double)((uint64_t)st.st_size - from);
    }
    free(ids);
    return total;
}

void pt_sub_poll(pt_sub_t *sub)
{
    if (!sub->subscribed || sub->closing)
        return;
    if (sub->all_buckets) {
        watch_category(sub);
        rescan_buckets(sub);
    }
    int64_t wall = fw_clock_wall_ms();
    for (uint32_t i = 0; i < sub->nbuckets; i++) {
        pt_bucket_t *b = sub->buckets[i];
        if (b == NULL)
            continue;
        watch_bucket(sub, b);
        b->caught_up = 0;
        double bytes = lag_bytes(&b->cur);
        double seconds = bytes > 0 && b->last_ts > 0 && wall > b->last_ts
                             ? (double)(wall - b->last_ts) / 1000.0
                             : 0;
        pt_stats_lag(sub->server->stats, sub->category, b->cur.bucket, sub->name, bytes, seconds);
        b->lag_reported = 1;
    }
    pump(sub);
}
