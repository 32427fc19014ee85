/*
 * The producer's I/O thread at work on blocks: it takes the batches senders
 * sealed, builds them into blocks (compression happens here, off the
 * senders' lock), routes each bucket to a writer connection, packs blocks
 * into produce requests, applies the writers' answers through the rules in
 * batch.c, and runs the timers (linger, backoff, a 100 ms tick for timeouts
 * and refreshes) and the shutdown. Connections are wire.c's; which writer
 * and which metadata, discovery.c's.
 *
 * Routing. A bucket goes to the owner named by metadata (or by a NOT_OWNER
 * answer) when that writer is usable, else to a live writer chosen by the
 * bucket's hash (any writer forwards). While any try of a bucket is in
 * flight the bucket stays on that connection, so its blocks reach the
 * writer in sequence order; it may move only once every try has ended.
 */
#include "producer_int.h"
#include "clock.h"

#include "error.h"
#include "frame.h"
#include "status.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define TICK_MS        100
#define REQ_MAX_BYTES  (4u << 20)
#define REQ_FIXED_META 64 /* frame header, request id, ack level */
#define REQ_MAX_BLOCKS 512
#define DRAIN_MS       5000
#define BUILDERS_BATCH 32

static fw_producer_t *producer_of(uv_handle_t *h)
{
    return h->loop->data;
}

/* ---- the sendable list -------------------------------------------------------------------- */

void fw_sender_mark_sendable(fw_producer_t *p, fw_bucket_t *bk)
{
    if (bk->in_sendable || fw_bucket_next_to_send(bk) == NULL)
        return;
    bk->snext = NULL;
    bk->sprev = p->sendable_tail;
    if (p->sendable_tail != NULL)
        p->sendable_tail->snext = bk;
    else
        p->sendable_head = bk;
    p->sendable_tail = bk;
    bk->in_sendable = 1;
}

static void sendable_remove(fw_producer_t *p, fw_bucket_t *bk)
{
    if (!bk->in_sendable)
        return;
    if (bk->sprev != NULL)
        bk->sprev->snext = bk->snext;
    else
        p->sendable_head = bk->snext;
    if (bk->snext != NULL)
        bk->snext->sprev = bk->sprev;
    else
        p->sendable_tail = bk->sprev;
    bk->snext = bk->sprev = NULL;
    bk->in_sendable = 0;
}

/* ---- building ------------------------------------------------------------------------------- */

static void give_builders(fw_producer_t *p, fw_block_builder_t **done, int n)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < n; i++)
        fw_producer_builder_give_locked(p, done[i]);
    pthread_mutex_unlock(&p->mu);
}

void fw_sender_build_ready(fw_producer_t *p)
{
    pthread_mutex_lock(&p->mu);
    fw_batch_t *b = p->ready_head;
    p->ready_head = p->ready_tail = NULL;
    pthread_mutex_unlock(&p->mu);

    fw_block_builder_t *done[BUILDERS_BATCH];
    int ndone = 0;
    while (b != NULL) {
        fw_batch_t *next = b->next;
        b->next = b->prev = NULL;
        fw_buf_t spare = fw_producer_spare_take(p);
        int rc = fw_batch_build(b, p->id, &spare);
        fw_producer_spare_give(p, &spare);
        if (rc < 0) {
            fw_plog(p, FW_PRODUCER_LOG_ERROR, "%s/%" PRIu32 ": cannot build a block: %s",
                    b->cat->name, b->bucket->id, fw_strerror(rc));
            fw_producer_complete(p, b, rc, "cannot build the block", 0, 0, 0);
        } else {
            done[ndone++] = b->bld;
            b->bld = NULL;
            if (b->bucket->spooling) {
                fw_bucket_take(b->bucket, b);
                fw_spooler_take(p, b);
            } else {
                fw_sender_mark_sendable(p, b->bucket);
            }
        }
        if (ndone == BUILDERS_BATCH) {
            give_builders(p, done, ndone);
            ndone = 0;
        }
        b = next;
    }
    give_builders(p, done, ndone);
}

/* ---- linger ------------------------------------------------------------------------------------
 */

static void on_linger(uv_timer_t *t);

static void arm_linger(fw_producer_t *p)
{
    if (p->stop_phase)
        return;
    pthread_mutex_lock(&p->mu);
    int64_t deadline = p->open_head != NULL ? p->open_head->first_ms + p->o.linger_ms : -1;
    pthread_mutex_unlock(&p->mu);
    if (deadline < 0) {
        uv_timer_stop(&p->linger_timer);
        return;
    }
    int64_t now = fw_clock_mono_ms();
    uv_timer_start(&p->linger_timer, on_linger, deadline > now ? (uint64_t)(deadline - now) : 0, 0);
}

static void on_linger(uv_timer_t *t)
{
    fw_producer_t *p = producer_of((uv_handle_t *)t);
    p->now = fw_clock_mono_ms();
    pthread_mutex_lock(&p->mu);
    while (p->open_head != NULL && p->open_head->first_ms + p->o.linger_ms <= p->now)
        fw_producer_seal_locked(p, p->open_head->bucket);
    pthread_mutex_unlock(&p->mu);
    fw_sender_kick(p);
}

void fw_sender_kick(fw_producer_t *p)
{
    fw_sender_build_ready(p);
    arm_linger(p);
    fw_sender_pump(p);
}

/* ---- routing and sending -----------------------------------------------------------------------
 */

static fw_wconn_t *route(fw_producer_t *p, fw_bucket_t *bk)
{
    if (bk->inflight > 0)
        return bk->conn; /* stays until its tries end: sequence order */
    fw_writer_t *w = bk->owner != NULL && fw_discovery_usable(p, bk->owner)
                         ? bk->owner
                         : fw_discovery_pick(p, bk);
    bk->conn = NULL;
    if (w == NULL)
        return NULL;
    if (w->conn == NULL && fw_wire_connect(p, w) < 0)
        return NULL;
    bk->conn = w->conn;
    return bk->conn;
}

static uint32_t expire_bucket(fw_producer_t *p, fw_bucket_t *bk);

/* The most a produce request of several blocks may take: ours, or less to fit the writers' max
 * frame. */
static size_t request_cap(const fw_producer_t *p)
{
    return p->frame_cap != 0 && p->frame_cap < REQ_MAX_BYTES ? p->frame_cap : REQ_MAX_BYTES;
}

/* The most a request of one block may take: a big record's block goes alone, up to the writers'
 * max frame and the frames this producer writes (FW_FRAME_MAX_DEFAULT, above any record's). */
static size_t lone_block_cap(const fw_producer_t *p)
{
    return p->frame_cap != 0 && p->frame_cap < FW_FRAME_MAX_DEFAULT ? p->frame_cap
                                                                    : FW_FRAME_MAX_DEFAULT;
}

static size_t request_len(const fw_wreq_t *r, const fw_batch_t *b)
{
    return REQ_FIXED_META + (r ? r->meta_len + r->body_len : 0) + fw_wire_ref_bound(b) +
           b->block.len;
}

/* A block no writer would read (built before the writers' max frame was known). */
static void fail_oversized(fw_producer_t *p, fw_bucket_t *bk, fw_batch_t *b)
{
    char msg[200];
    snprintf(msg, sizeof(msg),
             "a block of %zu bytes does not fit the writers' max frame of %" PRIu32
             " bytes: lower batch_bytes or raise the writers' --max-frame",
             b->block.len, p->frame_cap);
    fw_plog(p, FW_PRODUCER_LOG_ERROR, "%s/%" PRIu32 ": %s", bk->cat->name, bk->id, msg);
    fw_bucket_take(bk, b);
    fw_producer_complete(p, b, FW_EBLOCK_TOO_LARGE, msg, 0, 0, 0);
}

static void send_building(fw_producer_t *p, fw_wconn_t *c)
{
    fw_wreq_t *r = c->building;
    c->building = NULL;
    if (r != NULL)
        fw_wire_send_produce(r, p->o.acks);
}

void fw_sender_pump(fw_producer_t *p)
{
    if (p->stop_phase)
        return;
    fw_bucket_t *bk = p->sendable_head;
    while (bk != NULL) {
        fw_bucket_t *next = bk->snext;
        fw_batch_t *b = fw_bucket_next_to_send(bk);
        fw_wconn_t *c = b != NULL ? route(p, bk) : NULL;
        while (b != NULL && c != NULL && c->state == FW_WCONN_READY) {
            if (!b->from_spool && p->now - b->first_ms >= (int64_t)p->o.delivery_timeout_ms) {
                /* Resent until too late (a writer that takes requests and never answers). */
                uint32_t n = expire_bucket(p, bk);
                if (n > 0)
                    fw_plog(p, FW_PRODUCER_LOG_WARN, "%s: %" PRIu32 " records timed out: %s",
                            bk->cat->name, n, bk->cat->last_error);
                b = fw_bucket_next_to_send(bk);
                continue;
            }
            fw_wreq_t *r = c->building;
            if (request_len(NULL, b) > lone_block_cap(p)) {
                fail_oversized(p, bk, b);
                b = fw_bucket_next_to_send(bk);
                continue;
            }
            if (r != NULL && r->n > 0 &&
                (r->n >= REQ_MAX_BLOCKS || request_len(r, b) > request_cap(p))) {
                send_building(p, c);
                continue;
            }
            if (r == NULL) {
                if (c->nproduce >= p->o.max_in_flight)
                    break;
                if ((r = c->building = fw_wire_req_new(c, FW_WREQ_PRODUCE)) == NULL)
                    break;
            }
            if (fw_wire_req_add(r, b) < 0)
                break;
            fw_bucket_sent(bk, b, r);
            atomic_fetch_add_explicit(&p->stats.blocks_sent, 1, memory_order_relaxed);
            if (b->tries > 1)
                atomic_fetch_add_explicit(&p->stats.blocks_retried, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&p->stats.in_flight, fw_batch_app_records(b),
                                      memory_order_relaxed);
            b = fw_bucket_next_to_send(bk);
        }
        if (b == NULL)
            sendable_remove(p, bk);
        bk = next;
    }
    for (fw_wconn_t *c = p->conns; c != NULL; c = c->next)
        send_building(p, c);
}

/* ---- answers -----------------------------------------------------------------------------------
 */

static void arm_retry(fw_producer_t *p, int64_t at);

static void resume(fw_producer_t *p, fw_bucket_t *bk)
{
    fw_resume_t r;
    uint64_t window_pid = bk->window_pid;
    fw_bucket_resume(bk, &r);
    if (r.shift != 0) {
        /* Blocks read back from the spool were renumbered: those still there follow. */
        if (bk->shift_pid != window_pid)
            bk->seq_shift = 0;
        bk->shift_pid = window_pid;
        bk->seq_shift += r.shift;
        for (fw_batch_t *b = bk->head; b != NULL; b = b->next)
            fw_spooler_renumbered(p, b);
    }
    if (r.renumbered > 0) {
        atomic_fetch_add_explicit(&p->stats.blocks_renumbered, r.renumbered, memory_order_relaxed);
        if (r.lost_acked)
            fw_plog(p, FW_PRODUCER_LOG_ERROR,
                    "%s/%" PRIu32 ": the writer expects sequence %" PRIu64
                    " but blocks up to %" PRIu64
                    " were resolved: it lost blocks it had acked at a weak ack level (a writer "
                    "crash); resending %" PRIu32 " unacked blocks renumbered from %" PRIu64,
                    bk->cat->name, bk->id, r.expected, r.first_unacked_before - 1, r.renumbered,
                    r.expected);
        else
            fw_plog(p, FW_PRODUCER_LOG_DEBUG,
                    "%s/%" PRIu32 ": renumbering %" PRIu32 " blocks from %" PRIu64
                    " after blocks that failed",
                    bk->cat->name, bk->id, r.renumbered, r.expected);
    }
    fw_sender_mark_sendable(p, bk);
}

/* After a try of bk ended: backoff bookkeeping, or resend at once if allowed. */
static void after_try(fw_producer_t *p, fw_bucket_t *bk, const fw_verdict_t *v)
{
    if (v->backoff_started) {
        if (!bk->in_backoff_list) {
            bk->bnext = p->backoff_head;
            p->backoff_head = bk;
            bk->in_backoff_list = 1;
        }
        arm_retry(p, bk->retry_at);
    }
    if (fw_bucket_resume_due(bk, p->now))
        resume(p, bk);
    else
        fw_sender_mark_sendable(p, bk);
    fw_spooler_after_try(p, bk);
}

void fw_sender_on_result(fw_producer_t *p, fw_wconn_t *c, fw_batch_t *b, const Fwpb__BlockResult *r)
{
    fw_bucket_t *bk = b->bucket;
    fw_pcat_t *cat = bk->cat;
    uint64_t seq = b->seq;
    uint32_t nrec = b->ncbs;
    const char *waddr = c->w != NULL ? c->w->addr : "a writer";
    atomic_fetch_sub_explicit(&p->stats.in_flight, fw_batch_app_records(b), memory_order_relaxed);

    fw_verdict_t v;
    fw_bucket_on_result(bk, b, (int)r->status, r->has_expected_sequence, r->expected_sequence,
                        p->now, fw_prand(p), &v);
    if (r->status != FWPB__STATUS__STATUS_OK)
        snprintf(cat->last_error, sizeof(cat->last_error), "%s from %s%s%s",
                 fw_status_name((int)r->status), waddr, r->message != NULL ? ": " : "",
                 r->message != NULL ? r->message : "");
    switch (v.kind) {
    case FW_VERDICT_ACKED:
        bk->last_ack_ms = p->now;
        fw_producer_complete(p, b, 0, NULL, r->has_segment_id ? r->segment_id : 0,
                             r->has_offset ? r->offset : 0, r->has_duplicate && r->duplicate);
        break;
    case FW_VERDICT_FAILED:
        fw_plog(p, FW_PRODUCER_LOG_WARN,
                "%s/%" PRIu32 ": block %" PRIu64 " (%" PRIu32 " records) failed: %s", cat->name,
                bk->id, seq, nrec, cat->last_error);
        fw_producer_complete(p, b, v.status, cat->last_error, 0, 0, 0);
        break;
    case FW_VERDICT_RETRY:
        fw_plog(p, FW_PRODUCER_LOG_DEBUG, "%s/%" PRIu32 ": block %" PRIu64 ": %s; will resend",
                cat->name, bk->id, seq, cat->last_error);
        break;
    }
    if (r->status == FWPB__STATUS__STATUS_NOT_OWNER && r->owner != NULL && r->owner[0] != '\0') {
        fw_writer_t *w = fw_discovery_writer(p, r->owner);
        if (w != NULL && w != c->w)
            bk->owner = w;
    }
    if (v.writer_draining && c->w != NULL)
        c->w->draining_until = p->now + DRAIN_MS;
    if (v.refresh_metadata)
        fw_discovery_want(p, cat);
    after_try(p, bk, &v);
}

void fw_sender_on_lost(fw_producer_t *p, fw_batch_t *b, const char *why)
{
    fw_bucket_t *bk = b->bucket;
    atomic_fetch_sub_explicit(&p->stats.in_flight, fw_batch_app_records(b), memory_order_relaxed);
    snprintf(bk->cat->last_error, sizeof(bk->cat->last_error), "%s", why);
    fw_verdict_t v;
    fw_bucket_on_lost(bk, b, p->now, fw_prand(p), &v);
    fw_discovery_want(p, bk->cat);
    after_try(p, bk, &v);
}

void fw_sender_on_metadata(fw_producer_t *p, fw_pcat_t *cat)
{
    (void)cat;
    fw_sender_kick(p);
}

/* ---- backoff
 * ------------------------------------------------------------------------------------- */

static void on_retry(uv_timer_t *t)
{
    fw_producer_t *p = producer_of((uv_handle_t *)t);
    p->retry_armed_at = 0;
    p->now = fw_clock_mono_ms();
    int64_t next = 0;
    fw_bucket_t **pp = &p->backoff_head;
    while (*pp != NULL) {
        fw_bucket_t *bk = *pp;
        int due = fw_bucket_resume_due(bk, p->now);
        if (bk->state != FW_BUCKET_BACKOFF || due) {
            *pp = bk->bnext;
            bk->bnext = NULL;
            bk->in_backoff_list = 0;
            if (due)
                resume(p, bk);
            continue;
        }
        /* Time up but tries in flight: the last answer resumes it (after_try). */
        if (bk->retry_at > p->now && (next == 0 || bk->retry_at < next))
            next = bk->retry_at;
        pp = &bk->bnext;
    }
    if (next != 0)
        arm_retry(p, next);
    fw_sender_pump(p);
}

static void arm_retry(fw_producer_t *p, int64_t at)
{
    if (p->stop_phase || (p->retry_armed_at != 0 && p->retry_armed_at <= at))
        return;
    p->retry_armed_at = at;
    int64_t now = fw_clock_mono_ms();
    uv_timer_start(&p->retry_timer, on_retry, at > now ? (uint64_t)(at - now) : 0, 0);
}

/* ---- the tick: delivery timeouts
 * ------------------------------------------------------------------ */

static void fail_expired(fw_producer_t *p, fw_pcat_t *cat, fw_batch_t *b, uint32_t *count)
{
    char msg[320];
    snprintf(msg, sizeof(msg), "not delivered within %" PRIu32 " ms%s%s", p->o.delivery_timeout_ms,
             cat->last_error[0] ? "; last error: " : "", cat->last_error[0] ? cat->last_error : "");
    *count += b->ncbs;
    fw_producer_complete(p, b, -ETIMEDOUT, msg, 0, 0, 0);
}

/* Fails bk's blocks past their delivery deadline that are not in flight; returns records failed. */
static uint32_t expire_bucket(fw_producer_t *p, fw_bucket_t *bk)
{
    uint32_t count = 0;
    fw_batch_t *b;
    while (bk->head != NULL &&
           (b = fw_bucket_take_expired(bk, p->now, p->o.delivery_timeout_ms)) != NULL)
        fail_expired(p, bk->cat, b, &count);
    return count;
}

static void expire(fw_producer_t *p)
{
    int64_t timeout = p->o.delivery_timeout_ms;
    for (fw_pcat_t *cat = p->cats; cat != NULL; cat = cat->ionext) {
        uint32_t count = 0;
        for (uint32_t i = 0; i < cat->meta_nbuckets; i++)
            count += expire_bucket(p, cat->buckets[i]);
        /* Records still waiting for the category's metadata. */
        fw_batch_t *old = NULL, **tail = &old;
        pthread_mutex_lock(&p->mu);
        while (cat->staged_head != NULL && p->now - cat->staged_head->first_ms >= timeout) {
            fw_batch_t *b = cat->staged_head;
            cat->staged_head = b->next;
            if (cat->staged_head == NULL)
                cat->staged_tail = NULL;
            else
                cat->staged_head->prev = NULL;
            cat->staged_records -= b->ncbs;
            b->next = NULL;
            *tail = b;
            tail = &b->next;
        }
        pthread_mutex_unlock(&p->mu);
        if (old != NULL && cat->last_error[0] == '\0')
            fw_discovery_why_no_metadata(p, cat->last_error, sizeof(cat->last_error));
        while (old != NULL) {
            fw_batch_t *b = old;
            old = b->next;
            b->next = NULL;
            fail_expired(p, cat, b, &count);
        }
        if (count > 0)
            fw_plog(p, FW_PRODUCER_LOG_WARN, "%s: %" PRIu32 " records timed out: %s", cat->name,
                    count, cat->last_error[0] ? cat->last_error : "no answer");
    }
}

static void on_tick(uv_timer_t *t)
{
    fw_producer_t *p = producer_of((uv_handle_t *)t);
    p->now = fw_clock_mono_ms();
    fw_wire_check_timeouts(p);
    expire(p);
    fw_spooler_tick(p);
    fw_paudit_tick(p);
    fw_discovery_tick(p);
    fw_discovery_pump(p);
    fw_sender_pump(p);
}

/* ---- shutdown -----------------------------------------------------------------------------------
 */

static void on_handle_closed(uv_handle_t *h)
{
    fw_producer_t *p = producer_of(h);
    p->handles_open--;
}

/* Every connection is closed (so no try is in flight): cancel what is left, close the rest. */
static void stop_finish(fw_producer_t *p)
{
    p->stop_phase = 2;
    const char *why = "the producer was closed before delivery";
    pthread_mutex_lock(&p->mu);
    while (p->open_head != NULL)
        fw_producer_seal_locked(p, p->open_head->bucket);
    pthread_mutex_unlock(&p->mu);
    if (p->spool != NULL) {
        /* With a spool nothing built is cancelled: it goes there. */
        fw_sender_build_ready(p);
        fw_spooler_stop(p);
        uv_close((uv_handle_t *)&p->spool_timer, on_handle_closed);
    }
    pthread_mutex_lock(&p->mu);
    fw_batch_t *list = p->ready_head, **tail = p->ready_tail ? &p->ready_tail->next : &list;
    p->ready_head = p->ready_tail = NULL;
    for (fw_pcat_t *cat = p->cats; cat != NULL; cat = cat->ionext) {
        if (cat->staged_head != NULL) {
            *tail = cat->staged_head;
            tail = &cat->staged_tail->next;
            cat->staged_head = cat->staged_tail = NULL;
            cat->staged_records = 0;
        }
    }
    pthread_mutex_unlock(&p->mu);
    while (list != NULL) {
        fw_batch_t *b = list;
        list = b->next;
        b->next = b->prev = NULL;
        fw_producer_complete(p, b, -ECANCELED, why, 0, 0, 0);
    }
    for (fw_pcat_t *cat = p->cats; cat != NULL; cat = cat->ionext) {
        for (uint32_t i = 0; i < cat->meta_nbuckets; i++) {
            fw_batch_t *b;
            while ((b = fw_bucket_take_head(cat->buckets[i])) != NULL)
                fw_producer_complete(p, b, -ECANCELED, why, 0, 0, 0);
        }
    }
    fw_discovery_stop(p);
    uv_close((uv_handle_t *)&p->wake, on_handle_closed);
    uv_close((uv_handle_t *)&p->linger_timer, on_handle_closed);
    uv_close((uv_handle_t *)&p->retry_timer, on_handle_closed);
    uv_close((uv_handle_t *)&p->tick_timer, on_handle_closed);
}

static void stop(fw_producer_t *p)
{
    if (p->stop_phase != 0)
        return;
    p->stop_phase = 1;
    uv_timer_stop(&p->linger_timer);
    uv_timer_stop(&p->retry_timer);
    uv_timer_stop(&p->tick_timer);
    for (fw_wconn_t *c = p->conns; c != NULL; c = c->next)
        fw_wire_close(c, 0, "the producer is closing");
    if (p->nconns == 0)
        stop_finish(p);
}

void fw_sender_on_conn_closed(fw_producer_t *p)
{
    if (p->stop_phase == 1) {
        if (p->nconns == 0)
            stop_finish(p);
        return;
    }
    if (p->stop_phase == 0) {
        fw_discovery_pump(p);
        fw_sender_pump(p);
    }
}

/* ---- wake-ups from senders
 * ----------------------------------------------------------------------- */

void fw_sender_wake_cb(uv_async_t *h)
{
    fw_producer_t *p = producer_of((uv_handle_t *)h);
    p->now = fw_clock_mono_ms();
    pthread_mutex_lock(&p->mu);
    while (p->new_cats != NULL) {
        fw_pcat_t *c = p->new_cats;
        p->new_cats = c->newnext;
        c->newnext = NULL;
        c->ionext = p->cats;
        p->cats = c;
        c->meta_wanted = 1;
    }
    if (p->seal_all) {
        p->seal_all = 0;
        while (p->open_head != NULL)
            fw_producer_seal_locked(p, p->open_head->bucket);
    }
    if (p->want_meta) {
        p->want_meta = 0;
        for (fw_pcat_t *c = p->cats; c != NULL; c = c->ionext) {
            if (c->staged_head != NULL)
                c->meta_wanted = 1;
        }
    }
    int stopping = p->stopping;
    int spool_wanted = p->spool_wanted;
    int replay_pause = p->replay_pause;
    p->spool_wanted = 0;
    pthread_mutex_unlock(&p->mu);
    if (stopping) {
        stop(p);
        return;
    }
    if (replay_pause)
        fw_spooler_pause(p);
    if (spool_wanted)
        fw_spooler_memory_full(p);
    fw_sender_kick(p);
    fw_discovery_pump(p);
}

int fw_sender_start(fw_producer_t *p)
{
    int rc = uv_async_init(&p->loop, &p->wake, fw_sender_wake_cb);
    if (rc < 0)
        return rc;
    uv_timer_init(&p->loop, &p->linger_timer);
    uv_timer_init(&p->loop, &p->retry_timer);
    uv_timer_init(&p->loop, &p->tick_timer);
    p->handles_open = 4;
    uv_timer_start(&p->tick_timer, on_tick, TICK_MS, TICK_MS);
    fw_spooler_start(p);
    return 0;
}
