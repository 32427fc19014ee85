/*
 * The spool in the producer's send path (docs/spool.md); the files
 * themselves are spool.c's. Everything here runs on the I/O thread.
 *
 * A bucket is direct or spooling. Direct: its built blocks wait in its
 * queue and go to writers. It starts to spool when its blocks waited
 * spool_after_ms with none accepted, or when a sender found the memory
 * buffer full; it first stops sending (want_spool) until no try of it is in
 * flight, so the spool receives all of its unacked blocks, in sequence
 * order. Spooling: every block it builds is appended to its spool (or
 * waits in memory, pend_*, while the spool is full); its queue holds blocks
 * read back from the spool, a window of them, sent and retried like any
 * other. When its spool holds nothing unresolved it is direct again.
 *
 * Records' callbacks run when their block is as safe as spool_sync says:
 * at once (never), after the block's own fdatasync (always), or after the
 * next periodic sync (interval). Blocks read back carry no callbacks: a
 * writer's answer only resolves them in the spool, which then deletes
 * files whose every block is resolved.
 *
 * The window holds blocks of one producer id at a time (the spool may hold
 * an earlier producer's blocks, then ours): a writer takes the first block
 * of an id it does not know at any sequence, so that block is sent alone
 * first (probing), and renumbering after a gap stays within one id.
 */
#include "producer_int.h"
#include "clock.h"

#include "error.h"
#include "segment.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Blocks read back per bucket at most, and their bytes. */
#define WINDOW_BLOCKS 16
#define WINDOW_BYTES  (4u << 20)

static void spool_log(fw_producer_log_level_t level, const char *message, void *arg)
{
    fw_producer_t *p = arg;
    fw_plog(p, level, "%s", message);
}

/* Publishes the spool's usage for fw_producer_stats and the senders' checks. */
static void publish(fw_producer_t *p)
{
    fw_spool_usage_t u;
    fw_spool_usage(p->spool, &u);
    atomic_store_explicit(&p->stats.spool_bytes, u.bytes, memory_order_relaxed);
    atomic_store_explicit(&p->stats.spool_blocks, u.blocks, memory_order_relaxed);
    atomic_store_explicit(&p->stats.spool_records, u.records, memory_order_relaxed);
    /* Blocks wait in pend_* only while the spool refuses them for room. */
    int full = 0;
    for (fw_bucket_t *bk = p->spooling_head; bk != NULL && !full; bk = bk->spnext)
        full = bk->pend_head != NULL;
    int waiting = full || p->unsynced_head != NULL;
    int quiet = p->replay_paused;
    for (fw_bucket_t *bk = p->spooling_head; bk != NULL && quiet; bk = bk->spnext)
        quiet = bk->inflight == 0 || !bk->replay_paused;
    pthread_mutex_lock(&p->mu);
    if (quiet != p->replay_quiet) {
        p->replay_quiet = quiet;
        if (quiet)
            pthread_cond_broadcast(&p->flush_cv);
    }
    if (full != p->spool_full) {
        p->spool_full = full;
        /* Senders waiting for memory apply the full-spool policy, or try again. */
        pthread_cond_broadcast(&p->space_cv);
    }
    int drained = u.blocks == 0 && !waiting;
    if (drained != p->spool_drained) {
        p->spool_drained = drained;
        if (drained)
            pthread_cond_broadcast(&p->flush_cv);
    }
    pthread_mutex_unlock(&p->mu);
}

/* ---- open and start -------------------------------------------------------------------- */

int fw_spooler_open(fw_producer_t *p, char *err, size_t errcap)
{
    fw_spool_config_t c = {
        .dir = p->o.spool_dir,
        .max_bytes = p->o.spool_max_bytes,
        .sync = p->o.spool_sync,
        .log_cb = spool_log,
        .log_arg = p,
    };
    int rc = fw_spool_open(&c, &p->spool, err, errcap);
    if (rc < 0)
        return rc;
    /* What an earlier producer left: its categories need metadata like any. */
    pthread_mutex_lock(&p->mu);
    for (fw_spool_bucket_t *b = fw_spool_next_bucket(p->spool, NULL); b != NULL;
         b = fw_spool_next_bucket(p->spool, b)) {
        if (fw_producer_category_locked(p, fw_spool_bucket_category(b)) == NULL) {
            pthread_mutex_unlock(&p->mu);
            snprintf(err, errcap, "out of memory");
            fw_spool_close(p->spool);
            p->spool = NULL;
            return -ENOMEM;
        }
    }
    p->spool_drained = 1;
    pthread_mutex_unlock(&p->mu);
    size_t budget = p->o.max_buffer_bytes / 4;
    p->replay_max = budget > WINDOW_BYTES ? budget : WINDOW_BYTES;
    publish(p);
    return 0;
}

static void on_sync_timer(uv_timer_t *t);

/*
 * The categories whose shape an earlier producer saved get their buckets
 * now, before any metadata: a producer restarted during an outage can
 * place its records, and spool them, without a writer's answer. Metadata
 * corrects the shape when it comes (buckets only grow).
 */
static void restore_shapes(fw_producer_t *p)
{
    fw_spool_shape_t *shapes;
    size_t n;
    if (fw_spool_shapes(p->spool, &shapes, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&p->mu);
        fw_pcat_t *cat = fw_producer_category_locked(p, shapes[i].category);
        pthread_mutex_unlock(&p->mu);
        if (cat == NULL)
            continue;
        uint32_t max_record =
            shapes[i].max_record < FW_RECORD_MAX_HARD ? shapes[i].max_record : FW_RECORD_MAX_HARD;
        fw_codec_t codec = shapes[i].codec == FW_CODEC_NONE ? FW_CODEC_NONE : FW_CODEC_LZ4;
        fw_producer_set_buckets(p, cat, shapes[i].buckets, max_record, codec);
    }
    free(shapes);
}

void fw_spooler_start(fw_producer_t *p)
{
    if (p->spool == NULL)
        return;
    uv_timer_init(&p->loop, &p->spool_timer);
    p->handles_open++;
    if (p->o.spool_sync == FW_SPOOL_SYNC_INTERVAL)
        uv_timer_start(&p->spool_timer, on_sync_timer, p->o.spool_sync_interval_ms,
                       p->o.spool_sync_interval_ms);
    restore_shapes(p);
}

void fw_spooler_shape(fw_producer_t *p, fw_pcat_t *cat, uint32_t max_record, fw_codec_t codec)
{
    if (p->spool == NULL)
        return;
    fw_spool_shape_t sh;
    memset(&sh, 0, sizeof(sh));
    snprintf(sh.category, sizeof(sh.category), "%s", cat->name);
    sh.buckets = cat->meta_nbuckets;
    sh.max_record = max_record;
    sh.codec = codec;
    int rc = fw_spool_save_shape(p->spool, &sh);
    if (rc < 0)
        fw_plog(p, FW_PRODUCER_LOG_WARN, "%s: cannot save its shape in the spool: %s", cat->name,
                fw_strerror(rc));
}

/* ---- the list of spooling buckets ---------------------------------------------------------- */

static void spooling_add(fw_producer_t *p, fw_bucket_t *bk)
{
    bk->spooling = 1;
    /* The audit's own reports count nothing: they go on, the final report behind them. */
    bk->replay_paused = p->replay_paused && !bk->cat->audit_internal;
    bk->spnext = p->spooling_head;
    p->spooling_head = bk;
}

static void spooling_remove(fw_producer_t *p, fw_bucket_t *bk)
{
    bk->replay_paused = 0; /* direct again: its blocks are not replays */
    for (fw_bucket_t **pp = &p->spooling_head; *pp != NULL; pp = &(*pp)->spnext) {
        if (*pp == bk) {
            *pp = bk->spnext;
            break;
        }
    }
    bk->spnext = NULL;
    bk->spooling = 0;
}

/* ---- writing -----------------------------------------------------------------------------------
 */

/* Appends b to the batch list head..tail (pend_*, unsynced_*). */
static void list_push(fw_batch_t **head, fw_batch_t **tail, fw_batch_t *b)
{
    b->next = NULL;
    b->prev = *tail;
    if (*tail != NULL)
        (*tail)->next = b;
    else
        *head = b;
    *tail = b;
}

/* Runs the callbacks of the blocks that waited for the periodic sync (status 0: it worked). */
static void unsynced_complete(fw_producer_t *p, int status)
{
    fw_batch_t *b = p->unsynced_head;
    p->unsynced_head = p->unsynced_tail = NULL;
    char msg[200];
    snprintf(msg, sizeof(msg),
             "the spool's fdatasync failed (%s): the record may be lost, or delivered later",
             fw_strerror(status));
    while (b != NULL) {
        fw_batch_t *next = b->next;
        b->next = b->prev = NULL;
        if (status == 0)
            fw_producer_complete_spooled(p, b);
        else
            fw_producer_complete(p, b, status, msg, 0, 0, 0);
        b = next;
    }
}

static void on_sync_timer(uv_timer_t *t)
{
    fw_producer_t *p = t->loop->data;
    if (p->unsynced_head == NULL && !fw_spool_dirty(p->spool))
        return;
    int rc = fw_spool_sync(p->spool);
    unsynced_complete(p, rc);
    publish(p);
}

static fw_batch_t *pend_pop(fw_bucket_t *bk)
{
    fw_batch_t *b = bk->pend_head;
    if (b == NULL)
        return NULL;
    bk->pend_head = b->next;
    if (bk->pend_head != NULL)
        bk->pend_head->prev = NULL;
    else
        bk->pend_tail = NULL;
    b->next = b->prev = NULL;
    return b;
}

/* Appends the bucket's waiting blocks to its spool while there is room. */
static void write_pending(fw_producer_t *p, fw_bucket_t *bk)
{
    fw_batch_t *b;
    while ((b = bk->pend_head) != NULL) {
        if (b->block.len + FW_SEG_HEADER_MAX > p->o.spool_max_bytes) {
            /* It can never fit: it waits in memory until the bucket's spool is sent, then
             * goes straight to a writer, in its turn (maybe_direct). */
            if (!b->spool_warned)
                fw_plog(p, FW_PRODUCER_LOG_WARN,
                        "%s/%" PRIu32 ": a block of %zu bytes is larger than the spool (%" PRIu64
                        " bytes): it waits in memory",
                        bk->cat->name, bk->id, b->block.len, p->o.spool_max_bytes);
            b->spool_warned = 1;
            return;
        }
        int rc = fw_spool_append(p->spool, bk->spool, b->block.data, b->block.len, b->ncbs);
        if (rc == -ENOSPC) {
            if (!p->spool_full) {
                fw_spool_usage_t u;
                fw_spool_usage(p->spool, &u);
                fw_plog(p, FW_PRODUCER_LOG_WARN,
                        "the spool is full (%" PRIu64 " of %" PRIu64
                        " bytes): blocks wait in memory for room",
                        u.bytes, p->o.spool_max_bytes);
            }
            return; /* publish() tells the senders */
        }
        pend_pop(bk);
        if (rc < 0) {
            char msg[200];
            snprintf(msg, sizeof(msg), "cannot write to the spool: %s", fw_strerror(rc));
            fw_plog(p, FW_PRODUCER_LOG_ERROR, "%s/%" PRIu32 ": block %" PRIu64 ": %s",
                    bk->cat->name, bk->id, b->seq, msg);
            fw_producer_complete(p, b, rc, msg, 0, 0, 0);
            continue;
        }
        if (p->o.spool_sync == FW_SPOOL_SYNC_INTERVAL)
            list_push(&p->unsynced_head, &p->unsynced_tail, b);
        else
            fw_producer_complete_spooled(p, b);
    }
}

/* ---- reading back ---------------------------------------------------------------------------- */

static void replay_free(fw_producer_t *p, fw_bucket_t *bk, fw_batch_t *b)
{
    p->replay_bytes -= b->block.len;
    if (bk != NULL && b != bk->held)
        bk->window_bytes -= b->block.len;
    fw_buf_free(&b->block);
    free(b);
}

/*
 * Reads the bucket's spool back into its queue, up to the window (a
 * spooling bucket's queue holds only blocks read back: nqueued counts them).
 */
static void read_back(fw_producer_t *p, fw_bucket_t *bk)
{
    while (!bk->replay_paused && bk->nqueued < WINDOW_BLOCKS && bk->window_bytes < WINDOW_BYTES &&
           p->replay_bytes < p->replay_max) {
        fw_batch_t *b = bk->held;
        if (b == NULL) {
            if ((b = calloc(1, sizeof(*b))) == NULL)
                return;
            fw_spool_block_t blk;
            int rc = fw_spool_read(p->spool, bk->spool, &b->block, &blk);
            if (rc <= 0) {
                if (rc < 0)
                    fw_plog(p, FW_PRODUCER_LOG_WARN,
                            "%s/%" PRIu32 ": cannot read its spool now (%s); trying again",
                            bk->cat->name, bk->id, fw_strerror(rc));
                fw_buf_free(&b->block);
                free(b);
                break;
            }
            b->from_spool = 1;
            b->cat = bk->cat;
            b->bucket = bk;
            b->producer_id = blk.producer_id;
            b->spool_ref = blk.ref;
            b->seq = blk.sequence;
            b->first_ms = p->now;
            p->replay_bytes += b->block.len;
            atomic_fetch_add_explicit(&p->stats.blocks_replayed, 1, memory_order_relaxed);
        }
        if (bk->head != NULL && b->producer_id != bk->window_pid) {
            bk->held = b; /* after the window's blocks of the other id */
            break;
        }
        bk->held = NULL;
        if (b->producer_id != bk->window_pid) {
            bk->window_pid = b->producer_id;
            bk->probing = 1;
            bk->acked_max = 0; /* another id: nothing of it acked yet */
        }
        if (bk->seq_shift != 0 && b->producer_id == bk->shift_pid) {
            b->seq = (uint64_t)((int64_t)b->seq + bk->seq_shift);
            (void)fw_block_set_sequence(b->block.data, b->block.len, b->seq);
            fw_spooler_renumbered(p, b);
        }
        bk->window_bytes += b->block.len;
        fw_bucket_push(bk, b);
    }
    fw_spool_read_pause(bk->spool);
}

void fw_spooler_renumbered(fw_producer_t *p, fw_batch_t *b)
{
    if (!b->from_spool || p->spool == NULL)
        return;
    /* The file must say what a writer may store it under, for the next producer on it. */
    int rc = fw_spool_rewrite_header(p->spool, b->bucket->spool, &b->spool_ref, b->block.data);
    if (rc < 0)
        fw_plog(p, FW_PRODUCER_LOG_ERROR,
                "%s/%" PRIu32 ": cannot write the new sequence %" PRIu64
                " of a spooled block back to its file (%s): a producer restarted on the "
                "spool may store it twice",
                b->cat->name, b->bucket->id, b->seq, fw_strerror(rc));
}

/* A spooling bucket whose spool holds nothing more goes back to direct sending. */
static void maybe_direct(fw_producer_t *p, fw_bucket_t *bk)
{
    if (!bk->spooling || bk->head != NULL || bk->held != NULL || !fw_spool_bucket_empty(bk->spool))
        return;
    spooling_remove(p, bk);
    /* Our blocks went out renumbered from the spool: the next ones follow on. */
    int64_t shift = bk->shift_pid == p->id ? bk->seq_shift : 0;
    bk->next_seq = (uint64_t)((int64_t)bk->next_seq + shift);
    /* Blocks that waited for room come next in sequence: they go straight to writers. */
    fw_batch_t *b;
    while ((b = pend_pop(bk)) != NULL) {
        if (shift != 0) {
            b->seq = (uint64_t)((int64_t)b->seq + shift);
            (void)fw_block_set_sequence(b->block.data, b->block.len, b->seq);
        }
        fw_bucket_push(bk, b);
    }
    bk->seq_shift = 0;
    bk->shift_pid = 0;
    bk->window_pid = 0;
    bk->probing = 1;
    fw_plog(p, FW_PRODUCER_LOG_INFO, "%s/%" PRIu32 ": its spool is sent: sending directly again",
            bk->cat->name, bk->id);
}

/* Writes, reads back, and maybe ends spooling: after anything changed for a spooling bucket. */
static void pump(fw_producer_t *p, fw_bucket_t *bk)
{
    write_pending(p, bk);
    read_back(p, bk);
    maybe_direct(p, bk);
    fw_sender_mark_sendable(p, bk);
}

/* Before a callback says spooled: fw_producer_drain_spool must not see "drained" meanwhile. */
static void not_drained(fw_producer_t *p)
{
    pthread_mutex_lock(&p->mu);
    p->spool_drained = 0;
    pthread_mutex_unlock(&p->mu);
}

/* ---- switching ------------------------------------------------------------------------------ */

static int spool_bucket(fw_producer_t *p, fw_bucket_t *bk)
{
    if (bk->spool == NULL &&
        (bk->spool = fw_spool_bucket(p->spool, bk->cat->name, bk->id, 1)) == NULL)
        return -ENOMEM;
    return 0;
}

/* Direct bucket bk, with nothing in flight, starts to spool: its queue goes first. */
static void switch_to_spool(fw_producer_t *p, fw_bucket_t *bk, const char *why)
{
    bk->want_spool = 0;
    if (spool_bucket(p, bk) < 0)
        return; /* stays direct; the next tick tries again */
    uint32_t n = 0;
    fw_batch_t *b;
    while ((b = fw_bucket_take_head(bk)) != NULL) {
        list_push(&bk->pend_head, &bk->pend_tail, b);
        n++;
    }
    spooling_add(p, bk);
    not_drained(p);
    bk->window_pid = 0;
    bk->seq_shift = 0;
    fw_plog(p, FW_PRODUCER_LOG_WARN, "%s/%" PRIu32 ": %s: spooling its blocks (%" PRIu32 " now)",
            bk->cat->name, bk->id, why, n);
    pump(p, bk);
    publish(p);
}

void fw_spooler_attach(fw_producer_t *p, fw_bucket_t *bk)
{
    if (p->spool == NULL)
        return;
    bk->spool = fw_spool_bucket(p->spool, bk->cat->name, bk->id, 0);
    if (bk->spool == NULL || fw_spool_bucket_empty(bk->spool))
        return;
    spooling_add(p, bk);
    pump(p, bk);
}

void fw_spooler_take(fw_producer_t *p, fw_batch_t *b)
{
    fw_bucket_t *bk = b->bucket;
    not_drained(p);
    list_push(&bk->pend_head, &bk->pend_tail, b);
    pump(p, bk);
    publish(p);
}

void fw_spooler_done(fw_producer_t *p, fw_batch_t *b, int status, int duplicate)
{
    fw_bucket_t *bk = b->bucket;
    (void)duplicate;
    if (status == 0) {
        /* Noted on disk before it is counted: a later life never counts it again. */
        fw_spool_resolved(p->spool, bk->spool, &b->spool_ref);
        fw_paudit_acked(p, b);
        if (!b->cat->audit_internal)
            atomic_fetch_add_explicit(&p->stats.records_replay_acked, b->spool_ref.records,
                                      memory_order_relaxed);
    } else if (status != -ECANCELED) {
        /* Refused for good (a category deleted, a limit lowered): counted and said, not hidden. */
        fw_plog(p, FW_PRODUCER_LOG_ERROR,
                "%s/%" PRIu32 ": a spooled block of %" PRIu32 " records (producer %016" PRIx64
                ", sequence %" PRIu64 ") cannot be delivered: %s; it leaves the spool",
                bk->cat->name, bk->id, b->spool_ref.records, b->producer_id, b->seq,
                fw_strerror(status));
        if (!b->cat->audit_internal)
            atomic_fetch_add_explicit(&p->stats.records_replay_failed, b->spool_ref.records,
                                      memory_order_relaxed);
        fw_spool_resolved(p->spool, bk->spool, &b->spool_ref);
    }
    /* -ECANCELED: the producer is closing; the block stays in the spool for the next one. */
    replay_free(p, bk, b);
    if (p->stop_phase == 0 && bk->spooling) {
        pump(p, bk);
        publish(p);
    }
}

void fw_spooler_after_try(fw_producer_t *p, fw_bucket_t *bk)
{
    if (p->spool == NULL || bk->inflight > 0)
        return;
    if (bk->want_spool) {
        if (bk->head != NULL)
            switch_to_spool(p, bk, bk->cat->last_error[0] ? bk->cat->last_error : "no writer");
        else
            bk->want_spool = 0; /* everything got acked meanwhile */
    }
}

/* Has bk's oldest block waited spool_after_ms with no block of the bucket accepted? */
static int stalled(const fw_producer_t *p, const fw_bucket_t *bk)
{
    if (bk->head == NULL)
        return 0;
    int64_t since = bk->head->first_ms > bk->last_ack_ms ? bk->head->first_ms : bk->last_ack_ms;
    return p->now - since >= (int64_t)p->o.spool_after_ms;
}

void fw_spooler_tick(fw_producer_t *p)
{
    if (p->spool == NULL)
        return;
    /* A failed spool takes no more buckets: they wait in memory as without one. */
    for (fw_pcat_t *cat = fw_spool_failed(p->spool) ? NULL : p->cats; cat != NULL;
         cat = cat->ionext) {
        for (uint32_t i = 0; i < cat->meta_nbuckets; i++) {
            fw_bucket_t *bk = cat->buckets[i];
            if (bk->spooling || bk->want_spool || !stalled(p, bk))
                continue;
            bk->want_spool = 1;
            if (bk->inflight == 0) {
                const char *last = cat->last_error[0] ? cat->last_error : p->last_conn_error;
                char why[320];
                snprintf(why, sizeof(why), "no block accepted for %" PRIu32 " ms%s%s%s",
                         p->o.spool_after_ms, last[0] ? " (last error: " : "", last,
                         last[0] ? ")" : "");
                switch_to_spool(p, bk, why);
            }
        }
    }
    /* Windows refill as the replay budget frees up. */
    for (fw_bucket_t *bk = p->spooling_head, *next; bk != NULL; bk = next) {
        next = bk->spnext;
        pump(p, bk);
    }
    publish(p);
}

void fw_spooler_memory_full(fw_producer_t *p)
{
    /* A full or failed spool frees no memory: healthy buckets keep sending directly. */
    if (p->spool == NULL || fw_spool_failed(p->spool))
        return;
    pthread_mutex_lock(&p->mu);
    int full = p->spool_full;
    pthread_mutex_unlock(&p->mu);
    if (full)
        return;
    for (fw_pcat_t *cat = p->cats; cat != NULL; cat = cat->ionext) {
        for (uint32_t i = 0; i < cat->meta_nbuckets; i++) {
            fw_bucket_t *bk = cat->buckets[i];
            /* Only buckets with blocks waiting that are not on their way already. */
            if (bk->spooling || bk->want_spool || bk->nqueued <= bk->inflight)
                continue;
            bk->want_spool = 1;
            if (bk->inflight == 0)
                switch_to_spool(p, bk, "the memory buffer is full");
        }
    }
}

void fw_spooler_pause(fw_producer_t *p)
{
    if (p->spool == NULL || p->replay_paused)
        return;
    p->replay_paused = 1;
    for (fw_bucket_t *bk = p->spooling_head; bk != NULL; bk = bk->spnext)
        bk->replay_paused = !bk->cat->audit_internal;
    publish(p);
}

void fw_spooler_stop(fw_producer_t *p)
{
    if (p->spool == NULL)
        return;
    for (fw_pcat_t *cat = p->cats; cat != NULL; cat = cat->ionext) {
        for (uint32_t i = 0; i < cat->meta_nbuckets; i++) {
            fw_bucket_t *bk = cat->buckets[i];
            fw_batch_t *b;
            if (bk->spooling) {
                /* Read back but unresolved: they stay in the spool. */
                while ((b = fw_bucket_take_head(bk)) != NULL)
                    replay_free(p, bk, b);
                if ((b = bk->held) != NULL) {
                    bk->held = NULL;
                    replay_free(p, NULL, b);
                }
            } else if (bk->head != NULL && spool_bucket(p, bk) == 0) {
                /* Never delivered: kept behind the rest, not cancelled. */
                while ((b = fw_bucket_take_head(bk)) != NULL)
                    list_push(&bk->pend_head, &bk->pend_tail, b);
            }
            if (bk->pend_head != NULL && bk->spool != NULL)
                write_pending(p, bk);
            while ((b = pend_pop(bk)) != NULL)
                fw_producer_complete(p, b, -ECANCELED,
                                     "the producer was closed while the spool was full", 0, 0, 0);
        }
    }
    int rc = fw_spool_sync(p->spool);
    unsynced_complete(p, rc);
    fw_spool_usage_t u;
    fw_spool_usage(p->spool, &u);
    if (u.blocks > 0)
        fw_plog(p, FW_PRODUCER_LOG_INFO,
                "%" PRIu64 " blocks (%" PRIu64
                " records) stay in the spool %s: a producer opened on it sends them",
                u.blocks, u.records, p->o.spool_dir);
    publish(p);
    fw_spool_close(p->spool);
    p->spool = NULL;
}
