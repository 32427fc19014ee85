/*
 * The producer's public API and its caller side: the category table, the
 * batches senders fill (under one mutex), the memory bound, flush
 * generations, pools, and the I/O thread's start and end. What the I/O
 * thread does with batches is in sender.c; connections in wire.c; writers
 * and metadata in discovery.c.
 *
 * The hot path is fw_producer_send: outside the lock it reads the clock and
 * hashes the key; under the lock it finds the category (hash table), picks
 * the bucket and appends the record to that bucket's open batch (one memcpy
 * into a pooled block builder, one slot in a callback array). No allocation
 * per record once the pools are warm. A batch that reaches batch_bytes is
 * sealed there and then; the I/O thread is woken only when a batch is sealed
 * or when the first batch opens (to arm the linger timer).
 *
 * Flush generations. fw_producer_flush must wait for the records sent before
 * it, not for every record (other threads may keep sending). Every batch
 * belongs to the generation current when it was opened; a flush starts a new
 * generation and waits until no incomplete batch of an older one is left.
 * The counts live in a short array (one entry per generation with batches
 * in flight, so as many as flushes overlapping in time).
 */
#include "producer_int.h"
#include "clock.h"

#include "crc32c.h"
#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define TABLE_INITIAL 16
/*
 * Pools keep at most this many batches, builders and block buffers: about as
 * many blocks as the memory bound lets be in flight, so a busy producer
 * reuses memory instead of returning it to the system and faulting it back.
 */
#define POOL_MIN   16
#define POOL_MAX   1024
#define DEFAULT_ZK "127.0.0.1:2181/freeway"

/* ---- small helpers ------------------------------------------------------------------- */

uint32_t fw_prand(fw_producer_t *p)
{
    /* xorshift64*: jitter only, not for anything that must be unpredictable. */
    uint64_t x = p->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    p->rng = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
}

void fw_plog(fw_producer_t *p, fw_producer_log_level_t level, const char *fmt, ...)
{
    if (p->o.log_cb == NULL || level < p->o.log_level)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    p->o.log_cb(level, line, p->o.log_arg);
}

uint32_t fw_key_bucket(const void *key, size_t key_len, uint32_t buckets)
{
    return buckets ? fw_hash32(key, key_len) % buckets : 0;
}

uint64_t fw_producer_id(const fw_producer_t *p)
{
    return p->id;
}

/* FNV-1a of a category name; also checks its length. */
static uint32_t name_hash(const char *name, size_t *len)
{
    uint32_t h = 2166136261u;
    size_t n = 0;
    for (; name[n] != '\0' && n <= FW_CATEGORY_MAX; n++)
        h = (h ^ (uint8_t)name[n]) * 16777619u;
    *len = n;
    return h;
}

static void timespec_at(struct timespec *ts, int64_t mono_ms)
{
    ts->tv_sec = mono_ms / 1000;
    ts->tv_nsec = (long)(mono_ms % 1000) * 1000000L;
}

static int on_io_thread_locked(const fw_producer_t *p)
{
    return p->io_tid_set && pthread_equal(pthread_self(), p->io_tid);
}

/* ---- options ------------------------------------------------------------------------- */

void fw_producer_options_init(fw_producer_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->acks = FW_ACKS_DURABLE;
    o->batch_bytes = 256u << 10;
    o->linger_ms = 5;
    o->max_buffer_bytes = 64u << 20;
    o->max_in_flight = 8;
    o->codec = FW_PRODUCER_CODEC_DEFAULT;
    o->delivery_timeout_ms = 120000;
    o->send_timeout_ms = 60000;
    o->request_timeout_ms = 30000;
    o->metadata_refresh_ms = 30000;
    o->log_level = FW_PRODUCER_LOG_INFO;
    o->spool_max_bytes = 1ull << 30;
    o->spool_sync = FW_SPOOL_SYNC_INTERVAL;
    o->spool_sync_interval_ms = 100;
    o->spool_after_ms = 5000;
    o->spool_full = FW_SPOOL_FULL_BLOCK;
    o->spool_block_ms = 60000;
    o->audit_category = FW_AUDIT_CATEGORY_DEFAULT;
    o->audit_interval_ms = FW_AUDIT_INTERVAL_DEFAULT_MS;
}

static int options_check(const fw_producer_options_t *o)
{
    if (o->batch_bytes == 0 || o->batch_bytes > FW_BLOCK_MAX_PAYLOAD || o->max_buffer_bytes == 0 ||
        o->max_in_flight == 0 || o->delivery_timeout_ms == 0 || o->metadata_refresh_ms == 0)
        return -EINVAL;
    if ((unsigned)o->acks > FW_ACKS_NONE || (unsigned)o->codec > FW_PRODUCER_CODEC_NONE ||
        (unsigned)o->log_level > FW_PRODUCER_LOG_ERROR)
        return -EINVAL;
    if (o->audit_category != NULL && o->audit_category[0] != '\0' &&
        (!fw_category_valid(o->audit_category) || o->audit_interval_ms == 0))
        return -EINVAL;
    if (o->spool_dir != NULL &&
        (o->spool_dir[0] == '\0' || o->spool_max_bytes == 0 ||
         (unsigned)o->spool_sync > FW_SPOOL_SYNC_NEVER ||
         (o->spool_sync == FW_SPOOL_SYNC_INTERVAL && o->spool_sync_interval_ms == 0) ||
         (unsigned)o->spool_full > FW_SPOOL_FULL_FAIL))
        return -EINVAL;
    return 0;
}

/* ---- flush generations [mu] ------------------------------------------------------------ */

static int gen_retain_locked(fw_producer_t *p, uint64_t gen)
{
    uint32_t i = 0;
    while (i < p->ngens && p->gens[i].gen < gen)
        i++;
    if (i < p->ngens && p->gens[i].gen == gen) {
        p->gens[i].batches++;
        return 0;
    }
    if (p->ngens == p->gens_cap) {
        uint32_t cap = p->gens_cap ? p->gens_cap * 2 : 8;
        fw_gen_count_t *g = realloc(p->gens, cap * sizeof(*g));
        if (g == NULL)
            return -ENOMEM;
        p->gens = g;
        p->gens_cap = cap;
    }
    memmove(&p->gens[i + 1], &p->gens[i], (p->ngens - i) * sizeof(*p->gens));
    p->gens[i].gen = gen;
    p->gens[i].batches = 1;
    p->ngens++;
    return 0;
}

static void gen_release_locked(fw_producer_t *p, uint64_t gen)
{
    for (uint32_t i = 0; i < p->ngens; i++) {
        if (p->gens[i].gen != gen)
            continue;
        if (--p->gens[i].batches == 0) {
            memmove(&p->gens[i], &p->gens[i + 1], (p->ngens - i - 1) * sizeof(*p->gens));
            p->ngens--;
            if (i == 0)
                pthread_cond_broadcast(&p->flush_cv);
        }
        return;
    }
}

void fw_producer_gen_lower_locked(fw_producer_t *p, fw_batch_t *b, uint64_t gen)
{
    if (gen >= b->gen)
        return;
    /* Retain first: if that fails the batch keeps its (newer) generation, which only
     * lets a flush return early, never hang. */
    if (gen_retain_locked(p, gen) < 0)
        return;
    gen_release_locked(p, b->gen);
    b->gen = gen;
}

/* ---- pools and batches [mu] ------------------------------------------------------------ */

static fw_block_builder_t *builder_take_locked(fw_producer_t *p, uint32_t max_record)
{
    fw_block_builder_t *bld;
    if (p->nfree_builders > 0) {
        bld = p->free_builders[--p->nfree_builders];
    } else {
        bld = malloc(sizeof(*bld));
        if (bld == NULL)
            return NULL;
        fw_block_builder_init(bld, max_record);
    }
    bld->max_record = max_record;
    return bld;
}

void fw_producer_builder_give_locked(fw_producer_t *p, fw_block_builder_t *bld)
{
    if (bld == NULL)
        return;
    fw_buf_reset(&bld->raw);
    bld->count = 0;
    if (p->nfree_builders < p->pool_max) {
        p->free_builders[p->nfree_builders++] = bld;
        return;
    }
    fw_block_builder_free(bld);
    free(bld);
}

void fw_producer_recycle_locked(fw_producer_t *p, fw_batch_t *b)
{
    fw_producer_builder_give_locked(p, b->bld);
    b->bld = NULL;
    fw_buf_free(&b->block);
    if (p->nfree_batches < p->pool_max) {
        b->next = p->free_batches;
        p->free_batches = b;
        p->nfree_batches++;
        return;
    }
    free(b->cbs);
    free(b);
}

/* Opens a batch for bucket bk (or the category's staged list when bk is NULL). */
static fw_batch_t *batch_open_locked(fw_producer_t *p, fw_pcat_t *cat, fw_bucket_t *bk,
                                     uint64_t gen, int *wake)
{
    fw_batch_t *b = p->free_batches;
    if (b != NULL) {
        p->free_batches = b->next;
        p->nfree_batches--;
    } else if ((b = calloc(1, sizeof(*b))) == NULL) {
        return NULL;
    }
    fw_pcb_t *cbs = b->cbs;
    uint32_t cbs_cap = b->cbs_cap;
    memset(b, 0, sizeof(*b));
    b->cbs = cbs;
    b->cbs_cap = cbs_cap;
    b->bld = builder_take_locked(p, cat->max_record);
    b->gen = cat->audit_internal ? FW_GEN_INTERNAL : gen < p->gen ? gen : p->gen;
    if (b->bld == NULL || gen_retain_locked(p, b->gen) < 0) {
        b->gen = 0;
        fw_producer_builder_give_locked(p, b->bld);
        b->bld = NULL;
        free(b->cbs);
        free(b);
        return NULL;
    }
    b->cat = cat;
    b->bucket = bk;
    b->first_ms = fw_clock_mono_ms();
    if (bk != NULL) {
        bk->open = b;
        b->lprev = p->open_tail;
        if (p->open_tail != NULL)
            p->open_tail->lnext = b;
        else
            p->open_head = b;
        p->open_tail = b;
        b->linked_open = 1;
        /* The I/O thread keeps the linger timer armed while the open list is not
         * empty; it only needs telling when the list stops being empty. */
        if (p->open_head == b)
            *wake = 1;
    } else {
        b->prev = cat->staged_tail;
        if (cat->staged_tail != NULL)
            cat->staged_tail->next = b;
        else
            cat->staged_head = b;
        cat->staged_tail = b;
        if (cat->staged_head == b) {
            p->want_meta = 1;
            *wake = 1;
        }
    }
    return b;
}

void fw_producer_seal_locked(fw_producer_t *p, fw_bucket_t *bk)
{
    fw_batch_t *b = bk->open;
    if (b == NULL)
        return;
    bk->open = NULL;
    if (b->linked_open) {
        if (b->lprev != NULL)
            b->lprev->lnext = b->lnext;
        else
            p->open_head = b->lnext;
        if (b->lnext != NULL)
            b->lnext->lprev = b->lprev;
        else
            p->open_tail = b->lprev;
        b->lnext = b->lprev = NULL;
        b->linked_open = 0;
    }
    fw_pcat_t *cat = bk->cat;
    switch (p->o.codec) {
    case FW_PRODUCER_CODEC_LZ4:
        b->codec = FW_CODEC_LZ4;
        break;
    case FW_PRODUCER_CODEC_NONE:
        b->codec = FW_CODEC_NONE;
        break;
    default:
        b->codec = cat->codec;
        break;
    }
    b->next = NULL;
    b->prev = p->ready_tail;
    if (p->ready_tail != NULL)
        p->ready_tail->next = b;
    else
        p->ready_head = b;
    p->ready_tail = b;
    /* Records without a key move on to another bucket after each block. */
    if (cat->nbuckets > 0 && bk->id == cat->sticky)
        cat->sticky = (cat->sticky + 1) % cat->nbuckets;
}

int fw_producer_append_locked(fw_producer_t *p, fw_pcat_t *cat, fw_bucket_t *bk, int64_t ts,
                              const void *key, size_t key_len, int has_key, const void *value,
                              size_t value_len, fw_delivery_cb cb, void *arg, size_t cost,
                              uint64_t gen, int *wake)
{
    for (int tries = 0;; tries++) {
        fw_batch_t *b = bk != NULL ? bk->open : cat->staged_tail;
        if (b == NULL && (b = batch_open_locked(p, cat, bk, gen, wake)) == NULL)
            return -ENOMEM;
        if (gen < b->gen)
            fw_producer_gen_lower_locked(p, b, gen);
        if (bk != NULL && b->ncbs > 0 &&
            fw_block_builder_raw_len(b->bld) + key_len + value_len + 32 > p->batch_limit) {
            /* Keep blocks within batch_limit, which may fit a writer's max frame. */
            fw_producer_seal_locked(p, bk);
            *wake = 1;
            continue;
        }
        int rc = fw_batch_add(b, ts, key, key_len, has_key, value, value_len, cb, arg, cost);
        if (rc == FW_EBLOCK_TOO_LARGE && b->ncbs > 0 && tries == 0) {
            /* The batch cannot take this record: close it and start another. */
            if (bk != NULL) {
                fw_producer_seal_locked(p, bk);
                *wake = 1;
            } else if (batch_open_locked(p, cat, NULL, gen, wake) == NULL) {
                return -ENOMEM;
            }
            continue;
        }
        if (rc < 0)
            return rc;
        if (bk == NULL)
            cat->staged_records++;
        else if (fw_block_builder_raw_len(b->bld) >= p->batch_limit) {
            fw_producer_seal_locked(p, bk);
            *wake = 1;
        }
        return 0;
    }
}

/* ---- categories [mu] ------------------------------------------------------------------- */

static fw_pcat_t *cat_find_locked(fw_producer_t *p, const char *name, uint32_t hash)
{
    for (fw_pcat_t *c = p->table[hash & (p->table_cap - 1)]; c != NULL; c = c->hnext) {
        if (c->hash == hash && strcmp(c->name, name) == 0)
            return c;
    }
    return NULL;
}

static fw_pcat_t *cat_new_locked(fw_producer_t *p, const char *name, size_t len, uint32_t hash)
{
    if (p->ncats >= p->table_cap) {
        uint32_t cap = p->table_cap * 2;
        fw_pcat_t **t = calloc(cap, sizeof(*t));
        if (t == NULL)
            return NULL;
        for (uint32_t i = 0; i < p->table_cap; i++) {
            fw_pcat_t *c = p->table[i];
            while (c != NULL) {
                fw_pcat_t *next = c->hnext;
                c->hnext = t[c->hash & (cap - 1)];
                t[c->hash & (cap - 1)] = c;
                c = next;
            }
        }
        free(p->table);
        p->table = t;
        p->table_cap = cap;
    }
    fw_pcat_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    memcpy(c->name, name, len + 1);
    c->hash = hash;
    c->max_record = FW_RECORD_MAX_HARD;
    c->codec = FW_CODEC_LZ4;
    c->audit_internal = p->audit_category != NULL && strcmp(c->name, p->audit_category) == 0;
    c->hnext = p->table[hash & (p->table_cap - 1)];
    p->table[hash & (p->table_cap - 1)] = c;
    c->newnext = p->new_cats;
    p->new_cats = c;
    p->ncats++;
    return c;
}

fw_pcat_t *fw_producer_category_locked(fw_producer_t *p, const char *name)
{
    size_t len;
    uint32_t hash = name_hash(name, &len);
    if (len > FW_CATEGORY_MAX || !fw_category_valid(name))
        return NULL;
    fw_pcat_t *cat = cat_find_locked(p, name, hash);
    return cat != NULL ? cat : cat_new_locked(p, name, len, hash);
}

/* ---- metadata arrives (I/O thread) ------------------------------------------------------ */

/* [mu] Keeps a record's callback in a batch of records that failed (no builder). */
static int reject_locked(fw_producer_t *p, fw_pcat_t *cat, fw_batch_t **rej, const fw_pcb_t *cb,
                         size_t cost, uint64_t gen)
{
    fw_batch_t *b = *rej;
    if (b == NULL) {
        if ((b = calloc(1, sizeof(*b))) == NULL || gen_retain_locked(p, gen) < 0) {
            free(b);
            return -ENOMEM;
        }
        b->cat = cat;
        b->gen = gen;
        *rej = b;
    }
    if (b->ncbs == b->cbs_cap) {
        uint32_t cap = b->cbs_cap ? b->cbs_cap * 2 : 64;
        fw_pcb_t *cbs = realloc(b->cbs, cap * sizeof(*cbs));
        if (cbs == NULL)
            return -ENOMEM;
        b->cbs = cbs;
        b->cbs_cap = cap;
    }
    fw_producer_gen_lower_locked(p, b, gen);
    b->cbs[b->ncbs++] = *cb;
    b->cost += cost;
    return 0;
}

int fw_producer_set_buckets(fw_producer_t *p, fw_pcat_t *cat, uint32_t n, uint32_t max_record,
                            fw_codec_t codec)
{
    /* cat->buckets is written only here, on the I/O thread, so reading it unlocked is safe. */
    uint32_t old = cat->meta_nbuckets;
    fw_bucket_t **arr = NULL, **old_arr = NULL;
    if (n > old) {
        if ((arr = calloc(n, sizeof(*arr))) == NULL)
            return -ENOMEM;
        if (old > 0)
            memcpy(arr, cat->buckets, old * sizeof(*arr));
        for (uint32_t i = old; i < n; i++) {
            if ((arr[i] = malloc(sizeof(*arr[i]))) == NULL) {
                while (i-- > old)
                    free(arr[i]);
                free(arr);
                return -ENOMEM;
            }
            fw_bucket_init(arr[i], cat, i);
        }
    }
    uint32_t first_sticky = fw_prand(p) % n;
    int wake = 0;
    fw_batch_t *rejects[2] = {NULL, NULL}; /* too large; out of memory */
    pthread_mutex_lock(&p->mu);
    if (arr != NULL) {
        old_arr = cat->buckets;
        cat->buckets = arr;
        cat->nbuckets = n;
        if (old == 0)
            cat->sticky = first_sticky;
    }
    int shape_changed = arr != NULL || cat->max_record != max_record || cat->codec != codec;
    cat->max_record = max_record;
    cat->codec = codec;
    cat->missing = 0;
    fw_batch_t *staged = cat->staged_head;
    cat->staged_head = cat->staged_tail = NULL;
    cat->staged_records = 0;
    while (staged != NULL) {
        fw_batch_t *s = staged;
        staged = s->next;
        s->next = s->prev = NULL;
        fw_block_builder_t *bld = s->bld;
        fw_record_iter_t it = {bld->raw.data, bld->raw.data + bld->raw.len, bld->base_ts,
                               bld->count};
        fw_record_t rec;
        for (uint32_t i = 0; i < s->ncbs && fw_record_next(&it, &rec); i++) {
            size_t key_len = rec.has_key ? rec.key_len : 0;
            size_t cost = key_len + rec.value_len + FW_RECORD_OVERHEAD;
            int rc = FW_ERECORD_TOO_LARGE;
            if (key_len + rec.value_len <= max_record) {
                uint32_t b = rec.has_key ? fw_hash32(rec.key, key_len) % n : cat->sticky;
                rc = fw_producer_append_locked(p, cat, cat->buckets[b], rec.timestamp, rec.key,
                                               key_len, rec.has_key, rec.value, rec.value_len,
                                               s->cbs[i].cb, s->cbs[i].arg, cost, s->gen, &wake);
            }
            if (rc < 0) {
                int k = rc == FW_ERECORD_TOO_LARGE ? 0 : 1;
                if (reject_locked(p, cat, &rejects[k], &s->cbs[i], cost, s->gen) < 0) {
                    /* Cannot even keep the callback: the record is dropped from the
                     * accounting; its callback cannot run. Only under memory exhaustion. */
                    p->buffered -= cost;
                    p->outstanding -= !cat->audit_internal;
                }
            }
        }
        /* The records now live in other batches (with their cost): this one is empty. */
        s->ncbs = 0;
        s->cost = 0;
        gen_release_locked(p, s->gen);
        fw_producer_recycle_locked(p, s);
    }
    pthread_mutex_unlock(&p->mu);
    free(old_arr);
    if (arr != NULL) {
        cat->meta_nbuckets = n;
        for (uint32_t i = old; i < n; i++)
            fw_spooler_attach(p, arr[i]);
    }
    if (shape_changed)
        fw_spooler_shape(p, cat, max_record, codec);
    if (rejects[0] != NULL)
        fw_producer_complete(p, rejects[0], FW_ERECORD_TOO_LARGE,
                             "record exceeds the category's max_record_bytes", 0, 0, 0);
    if (rejects[1] != NULL)
        fw_producer_complete(p, rejects[1], -ENOMEM, NULL, 0, 0, 0);
    (void)wake; /* the caller kicks the sender */
    return 0;
}

void fw_producer_set_missing(fw_producer_t *p, fw_pcat_t *cat)
{
    pthread_mutex_lock(&p->mu);
    cat->missing = 1;
    fw_batch_t *staged = cat->staged_head;
    cat->staged_head = cat->staged_tail = NULL;
    cat->staged_records = 0;
    pthread_mutex_unlock(&p->mu);
    char msg[200];
    snprintf(msg, sizeof(msg), "unknown category %s", cat->name);
    while (staged != NULL) {
        fw_batch_t *s = staged;
        staged = s->next;
        s->next = s->prev = NULL;
        fw_producer_complete(p, s, FW_EUNKNOWN_CATEGORY, msg, 0, 0, 0);
    }
}

/* ---- the I/O thread -------------------------------------------------------------------- */

static void *io_main(void *arg)
{
    fw_producer_t *p = arg;
    /* A writer that dies makes our next socket write raise SIGPIPE, which
     * would kill the application. A library may not change the process's
     * signal handling, but it may block the signal in its own thread: the
     * write then fails with EPIPE, which the connection handles. */
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    pthread_mutex_lock(&p->mu);
    p->io_tid = pthread_self();
    p->io_tid_set = 1;
    pthread_mutex_unlock(&p->mu);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    pthread_mutex_lock(&p->mu);
    p->io_done = 1;
    pthread_cond_broadcast(&p->flush_cv);
    pthread_cond_broadcast(&p->space_cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Only before the I/O thread ran: a connect's handles (common/connect.c) must be closed by
 * fw_wire_close, never by this walk. */
static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Frees what the producer owns; the I/O thread has ended (or never ran). */
static void producer_free(fw_producer_t *p)
{
    for (uint32_t i = 0; i < p->table_cap; i++) {
        fw_pcat_t *c = p->table[i];
        while (c != NULL) {
            fw_pcat_t *next = c->hnext;
            for (uint32_t b = 0; b < c->nbuckets; b++)
                free(c->buckets[b]);
            free(c->buckets);
            free(c);
            c = next;
        }
    }
    free(p->table);
    while (p->free_batches != NULL) {
        fw_batch_t *b = p->free_batches;
        p->free_batches = b->next;
        free(b->cbs);
        free(b);
    }
    for (uint32_t i = 0; i < p->nfree_builders; i++) {
        fw_block_builder_free(p->free_builders[i]);
        free(p->free_builders[i]);
    }
    free(p->free_builders);
    for (uint32_t i = 0; i < p->nspare_bufs; i++)
        fw_buf_free(&p->spare_bufs[i]);
    free(p->spare_bufs);
    while (p->writers != NULL) {
        fw_writer_t *w = p->writers;
        p->writers = w->next;
        free(w);
    }
    free(p->gens);
    free(p->zk_spec);
    free(p->bootstrap_spec);
    free(p->spool_dir);
    fw_paudit_free(p);
    pthread_cond_destroy(&p->space_cv);
    pthread_cond_destroy(&p->flush_cv);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->audit_mu);
    free(p);
}

uint64_t fw_random_id(void)
{
    uint64_t id = 0;
    while (id == 0) {
        if (getrandom(&id, sizeof(id), 0) != (ssize_t)sizeof(id)) {
            /* No entropy source: fall back to time, pid and an address. */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            id = ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec ^
                 ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)&ts;
        }
    }
    return id;
}

int fw_producer_create(fw_producer_t **out, const fw_producer_options_t *o)
{
    int rc = options_check(o);
    if (rc < 0)
        return rc;
    fw_producer_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->o = *o;
    p->batch_limit = o->batch_bytes;
    const char *zk = o->zk;
    if (zk == NULL || *zk == '\0')
        zk = getenv("FREEWAY_ZK");
    if (zk == NULL || *zk == '\0')
        zk = DEFAULT_ZK;
    p->zk_spec = strdup(zk);
    p->bootstrap_spec = o->bootstrap != NULL && *o->bootstrap != '\0' ? strdup(o->bootstrap) : NULL;
    p->o.zk = p->zk_spec;
    p->o.bootstrap = p->bootstrap_spec;
    if (p->o.request_timeout_ms == 0 || p->o.request_timeout_ms > p->o.delivery_timeout_ms)
        p->o.request_timeout_ms = p->o.delivery_timeout_ms;
    p->id = fw_random_id();
    p->rng = p->id ^ (uint64_t)fw_clock_mono_ms() ^ 0x9e3779b97f4a7c15ULL;
    p->gen = 1;
    p->table_cap = TABLE_INITIAL;
    p->table = calloc(p->table_cap, sizeof(*p->table));
    size_t pool = o->max_buffer_bytes / o->batch_bytes + POOL_MIN;
    p->pool_max = pool > POOL_MAX ? POOL_MAX : (uint32_t)pool;
    p->free_builders = calloc(p->pool_max, sizeof(*p->free_builders));
    p->spare_bufs = calloc(p->pool_max, sizeof(*p->spare_bufs));
    p->spool_dir = o->spool_dir != NULL ? strdup(o->spool_dir) : NULL;
    p->o.spool_dir = p->spool_dir;
    int have_sync = 0, have_loop = 0;
    if (p->zk_spec == NULL || (o->bootstrap && *o->bootstrap && !p->bootstrap_spec) ||
        p->table == NULL || p->free_builders == NULL || p->spare_bufs == NULL ||
        (o->spool_dir != NULL && p->spool_dir == NULL) || fw_paudit_init(p) < 0) {
        rc = -ENOMEM;
        goto fail;
    }

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->audit_mu, NULL);
    pthread_cond_init(&p->space_cv, &ca);
    pthread_cond_init(&p->flush_cv, &ca);
    pthread_condattr_destroy(&ca);
    have_sync = 1;

    char err[512];
    if (p->o.spool_dir != NULL && (rc = fw_spooler_open(p, err, sizeof(err))) < 0) {
        fw_plog(p, FW_PRODUCER_LOG_ERROR, "%s", err);
        goto fail;
    }

    if ((rc = uv_loop_init(&p->loop)) < 0)
        goto fail;
    have_loop = 1;
    p->loop.data = p;
    p->now = fw_clock_mono_ms();
    if ((rc = fw_sender_start(p)) < 0 || (rc = fw_discovery_start(p)) < 0)
        goto fail;
    if ((rc = -pthread_create(&p->thread, NULL, io_main, p)) < 0)
        goto fail;
    fw_paudit_start(p);
    *out = p;
    return 0;

fail:
    if (have_loop) {
        if (p->zk_open) {
            /* fw_zk_close finishes on the loop; run it here, on this thread. */
            fw_discovery_stop(p);
        }
        uv_walk(&p->loop, close_walk_cb, NULL);
        uv_run(&p->loop, UV_RUN_DEFAULT);
        uv_loop_close(&p->loop);
    }
    fw_spool_close(p->spool);
    if (!have_sync) {
        pthread_mutex_init(&p->mu, NULL);
        pthread_mutex_init(&p->audit_mu, NULL);
        pthread_cond_init(&p->space_cv, NULL);
        pthread_cond_init(&p->flush_cv, NULL);
    }
    producer_free(p);
    return rc;
}

/* ---- sending ---------------------------------------------------------------------------- */

/*
 * internal: the producer's own records (audit reports), sent from its I/O
 * thread or while closing: they never wait for room and pass the closing
 * gate.
 */
static int send_record(fw_producer_t *p, const char *category, const void *key, size_t key_len,
                       const void *value, size_t value_len, int64_t timestamp_ms, fw_delivery_cb cb,
                       void *arg, int internal)
{
    if (p == NULL || category == NULL || (value == NULL && value_len > 0))
        return -EINVAL;
    if (key == NULL)
        key_len = 0;
    if (key_len > FW_RECORD_MAX_HARD || value_len > FW_RECORD_MAX_HARD - key_len)
        return FW_ERECORD_TOO_LARGE;
    size_t cost = key_len + value_len + FW_RECORD_OVERHEAD;
    if (cost > p->o.max_buffer_bytes)
        return -EMSGSIZE;
    size_t name_len;
    uint32_t hash = name_hash(category, &name_len);
    if (name_len > FW_CATEGORY_MAX)
        return FW_EBAD_CATEGORY;
    if (timestamp_ms == 0)
        timestamp_ms = fw_clock_wall_ms();
    uint32_t key_hash = key != NULL ? fw_hash32(key, key_len) : 0;

    int wake = 0, rc = 0;
    int64_t deadline = 0;
    pthread_mutex_lock(&p->mu);
    fw_pcat_t *cat = cat_find_locked(p, category, hash);
    if (p->closing && !internal) {
        rc = -ESHUTDOWN;
        goto out;
    }
    if (cat == NULL) {
        if (!fw_category_valid(category)) {
            rc = FW_EBAD_CATEGORY;
            goto out;
        }
        if ((cat = cat_new_locked(p, category, name_len, hash)) == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        wake = 1;
    }
    if (key_len + value_len > cat->max_record) {
        rc = FW_ERECORD_TOO_LARGE;
        goto out;
    }
    int64_t spool_deadline = 0;
    while (p->buffered + cost > p->o.max_buffer_bytes) {
        if ((p->closing && !internal) || p->io_done) {
            rc = -ESHUTDOWN;
            goto out;
        }
        int spool_full = 0;
        if (p->o.spool_dir != NULL) {
            /* Room comes from spooling what waits in memory ... */
            if (!p->spool_wanted) {
                p->spool_wanted = 1;
                uv_async_send(&p->wake);
            }
            /* ... unless the spool is full too: then the caller's spool_full policy. */
            spool_full = p->spool_full;
        }
        /* On the I/O thread, waiting would wait for ourselves. */
        if (p->o.send_timeout_ms == 0 || internal || on_io_thread_locked(p) ||
            (spool_full && p->o.spool_full == FW_SPOOL_FULL_FAIL)) {
            rc = spool_full ? -ENOSPC : FW_ERETRY_LATER;
            goto out;
        }
        int64_t *until = spool_full ? &spool_deadline : &deadline;
        if (*until == 0)
            *until = fw_clock_mono_ms() + (spool_full ? p->o.spool_block_ms : p->o.send_timeout_ms);
        struct timespec ts;
        timespec_at(&ts, *until);
        if (pthread_cond_timedwait(&p->space_cv, &p->mu, &ts) == ETIMEDOUT &&
            p->buffered + cost > p->o.max_buffer_bytes) {
            rc = spool_full ? -ETIMEDOUT : FW_ERETRY_LATER;
            goto out;
        }
    }
    fw_bucket_t *bk = NULL;
    if (cat->nbuckets > 0)
        bk = cat->buckets[key != NULL ? key_hash % cat->nbuckets : cat->sticky];
    rc = fw_producer_append_locked(p, cat, bk, timestamp_ms, key, key_len, key != NULL, value,
                                   value_len, cb, arg, cost, UINT64_MAX, &wake);
    if (rc == 0) {
        p->buffered += cost;
        p->outstanding += !cat->audit_internal; /* the application's records, for the stats */
    }
out:
    pthread_mutex_unlock(&p->mu);
    if (wake)
        uv_async_send(&p->wake);
    return rc;
}

int fw_producer_send(fw_producer_t *p, const char *category, const void *key, size_t key_len,
                     const void *value, size_t value_len, int64_t timestamp_ms, fw_delivery_cb cb,
                     void *arg)
{
    return send_record(p, category, key, key_len, value, value_len, timestamp_ms, cb, arg, 0);
}

int fw_producer_send_internal(fw_producer_t *p, const char *category, const void *key,
                              size_t key_len, const void *value, size_t value_len,
                              int64_t timestamp_ms, fw_delivery_cb cb, void *arg)
{
    return send_record(p, category, key, key_len, value, value_len, timestamp_ms, cb, arg, 1);
}

/* ---- completion (I/O thread) --------------------------------------------------------------- */

fw_buf_t fw_producer_spare_take(fw_producer_t *p)
{
    if (p->nspare_bufs > 0)
        return p->spare_bufs[--p->nspare_bufs];
    return (fw_buf_t)FW_BUF_INIT;
}

void fw_producer_spare_give(fw_producer_t *p, fw_buf_t *buf)
{
    if (buf->data == NULL)
        return;
    if (p->nspare_bufs < p->pool_max) {
        fw_buf_reset(buf);
        p->spare_bufs[p->nspare_bufs++] = *buf;
        *buf = (fw_buf_t)FW_BUF_INIT;
        return;
    }
    fw_buf_free(buf);
}

/* Runs b's callbacks with d, counts, and gives b's bytes and memory back. */
static void complete(fw_producer_t *p, fw_batch_t *b, fw_delivery_t *d)
{
    uint32_t n = b->ncbs;
    if (d->status == 0 && !d->spooled)
        fw_paudit_acked(p, b);
    fw_batch_deliver(b, d);
    if (b->cat->audit_internal) {
        /* The producer's own audit reports: not the application's records. */
    } else if (d->spooled) {
        atomic_fetch_add_explicit(&p->stats.records_spooled, n, memory_order_relaxed);
    } else if (d->status == 0) {
        atomic_fetch_add_explicit(&p->stats.acked, n, memory_order_relaxed);
        if (d->duplicate)
            atomic_fetch_add_explicit(&p->stats.duplicate, n, memory_order_relaxed);
        atomic_fetch_add_explicit(&p->stats.bytes_acked, b->rec_bytes, memory_order_relaxed);
        atomic_fetch_add_explicit(&p->stats.block_bytes_acked, b->block.len, memory_order_relaxed);
        atomic_fetch_add_explicit(&p->stats.blocks_acked, 1, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&p->stats.failed, n, memory_order_relaxed);
    }
    /* Keep the block's memory for the next block. */
    fw_producer_spare_give(p, &b->block);
    pthread_mutex_lock(&p->mu);
    p->buffered -= b->cost;
    p->outstanding -= b->cat->audit_internal ? 0 : n; /* n: fw_batch_deliver emptied b */
    gen_release_locked(p, b->gen);
    fw_producer_recycle_locked(p, b);
    pthread_cond_broadcast(&p->space_cv);
    pthread_mutex_unlock(&p->mu);
}

void fw_producer_complete_spooled(fw_producer_t *p, fw_batch_t *b)
{
    fw_delivery_t d = {
        .status = 0,
        .message = "spooled",
        .category = b->cat->name,
        .bucket = b->bucket->id,
        .spooled = 1,
    };
    complete(p, b, &d);
}

void fw_producer_complete(fw_producer_t *p, fw_batch_t *b, int status, const char *message,
                          uint64_t segment_id, uint64_t offset, int duplicate)
{
    if (b->from_spool) {
        fw_spooler_done(p, b, status, duplicate);
        return;
    }
    fw_delivery_t d = {
        .status = status,
        .message = message != NULL ? message
                   : status == 0   ? "delivered"
                                   : fw_strerror(status),
        .category = b->cat->name,
        .bucket = b->bucket != NULL ? b->bucket->id : UINT32_MAX,
        .segment_id = segment_id,
        .offset = offset,
        .duplicate = duplicate,
    };
    complete(p, b, &d);
}

/* ---- flush, close, stats ------------------------------------------------------------------- */

/* [mu held] 1 while batches of flush generation gen or older are incomplete. */
static int generation_pending(const fw_producer_t *p, uint64_t gen)
{
    return p->ngens > 0 && p->gens[0].gen <= gen;
}

/* [mu held] 1 while the spool holds something not yet resolved. */
static int spool_pending(const fw_producer_t *p, uint64_t unused)
{
    (void)unused;
    return !p->spool_drained;
}

/* [mu held] 1 while a block read back from the spool may still be acked. */
static int replay_pending(const fw_producer_t *p, uint64_t unused)
{
    (void)unused;
    return !p->replay_quiet;
}

/*
 * [mu held] Waits on flush_cv while pending(p, arg) and the I/O thread runs:
 * 0, or -ETIMEDOUT at deadline (when timeout_ms >= 0).
 */
static int wait_flush_locked(fw_producer_t *p, int (*pending)(const fw_producer_t *, uint64_t),
                             uint64_t arg, int timeout_ms, int64_t deadline)
{
    while (pending(p, arg) && !p->io_done) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&p->flush_cv, &p->mu);
            continue;
        }
        struct timespec ts;
        timespec_at(&ts, deadline);
        if (pthread_cond_timedwait(&p->flush_cv, &p->mu, &ts) == ETIMEDOUT && pending(p, arg))
            return -ETIMEDOUT;
    }
    return 0;
}

/* How long fw_producer_close waits for the audit's reports, at most. */
#define AUDIT_CLOSE_WAIT_MS 1000

/* fw_producer_flush; with internal, the audit category's records too (FW_GEN_INTERNAL). */
static int flush(fw_producer_t *p, int timeout_ms, int internal)
{
    if (p == NULL)
        return -EINVAL;
    int64_t deadline = timeout_ms >= 0 ? fw_clock_mono_ms() + timeout_ms : 0;
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    if (on_io_thread_locked(p)) {
        pthread_mutex_unlock(&p->mu);
        return -EDEADLK;
    }
    uint64_t target = internal ? FW_GEN_INTERNAL : p->gen;
    p->gen++;
    p->seal_all = 1;
    pthread_mutex_unlock(&p->mu);
    uv_async_send(&p->wake);
    pthread_mutex_lock(&p->mu);
    rc = wait_flush_locked(p, generation_pending, target, timeout_ms, deadline);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int fw_producer_flush(fw_producer_t *p, int timeout_ms)
{
    return flush(p, timeout_ms, 0);
}

int fw_producer_drain_spool(fw_producer_t *p, int timeout_ms)
{
    if (p == NULL)
        return -EINVAL;
    /* One deadline for the flush and the drain. */
    int64_t deadline = timeout_ms >= 0 ? fw_clock_mono_ms() + timeout_ms : 0;
    int rc = fw_producer_flush(p, timeout_ms);
    if (rc < 0 || p->o.spool_dir == NULL)
        return rc;
    pthread_mutex_lock(&p->mu);
    rc = wait_flush_locked(p, spool_pending, 0, timeout_ms, deadline);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int fw_producer_close(fw_producer_t *p, int timeout_ms)
{
    if (p == NULL)
        return 0;
    pthread_mutex_lock(&p->mu);
    if (on_io_thread_locked(p)) {
        pthread_mutex_unlock(&p->mu);
        return -EDEADLK;
    }
    p->closing = 1;
    pthread_cond_broadcast(&p->space_cv);
    pthread_mutex_unlock(&p->mu);

    int64_t deadline = fw_clock_mono_ms() + timeout_ms;
    int rc = fw_producer_flush(p, timeout_ms);
    /*
     * The application's records are answered (the flush does not wait for
     * audit reports): the audit's last counts go out, and the reports
     * (consumers' too) are waited for, within what is left of the timeout
     * and at most AUDIT_CLOSE_WAIT_MS. A writer answers a report in
     * milliseconds; if none can (an outage the application's records went
     * to the spool for, the audit category's metadata not to be had), the
     * close must not take the application's whole timeout for it. A report
     * not delivered is the audit's loss (`freeway audit` sees a life
     * without its final report; with a spool, what was built goes there at
     * stop), not a failure of the application's records.
     */
    if (rc == 0) {
        int64_t audit_deadline = fw_clock_mono_ms() + AUDIT_CLOSE_WAIT_MS;
        if (timeout_ms >= 0 && deadline < audit_deadline)
            audit_deadline = deadline;
        /*
         * Replays stop first and their answers are awaited, so an ack this
         * life counts is in its final report; a block still unanswered at
         * the deadline stays in the spool for the next life to send and count.
         */
        if (p->o.spool_dir != NULL && p->audit_category != NULL && !atomic_load(&p->audit_off)) {
            pthread_mutex_lock(&p->mu);
            p->replay_pause = 1;
            pthread_mutex_unlock(&p->mu);
            uv_async_send(&p->wake);
            pthread_mutex_lock(&p->mu);
            (void)wait_flush_locked(p, replay_pending, 0, 0, audit_deadline);
            pthread_mutex_unlock(&p->mu);
        }
        (void)fw_paudit_final(p);
        int64_t left = audit_deadline - fw_clock_mono_ms();
        (void)flush(p, left > 0 ? (int)left : 0, 1);
    }

    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_mutex_unlock(&p->mu);
    uv_async_send(&p->wake);
    pthread_join(p->thread, NULL);
    uv_loop_close(&p->loop);
    producer_free(p);
    return rc == 0 ? 0 : -ETIMEDOUT;
}

void fw_producer_stats(fw_producer_t *p, fw_producer_stats_t *s)
{
    memset(s, 0, sizeof(*s));
    if (p == NULL)
        return;
    const fw_pstats_t *t = &p->stats;
    s->records_in_flight = atomic_load_explicit(&t->in_flight, memory_order_relaxed);
    s->records_acked = atomic_load_explicit(&t->acked, memory_order_relaxed);
    s->records_failed = atomic_load_explicit(&t->failed, memory_order_relaxed);
    s->records_duplicate = atomic_load_explicit(&t->duplicate, memory_order_relaxed);
    s->bytes_acked = atomic_load_explicit(&t->bytes_acked, memory_order_relaxed);
    s->block_bytes_acked = atomic_load_explicit(&t->block_bytes_acked, memory_order_relaxed);
    s->blocks_acked = atomic_load_explicit(&t->blocks_acked, memory_order_relaxed);
    s->blocks_sent = atomic_load_explicit(&t->blocks_sent, memory_order_relaxed);
    s->blocks_retried = atomic_load_explicit(&t->blocks_retried, memory_order_relaxed);
    s->blocks_renumbered = atomic_load_explicit(&t->blocks_renumbered, memory_order_relaxed);
    s->requests_sent = atomic_load_explicit(&t->requests_sent, memory_order_relaxed);
    s->metadata_requests = atomic_load_explicit(&t->metadata_requests, memory_order_relaxed);
    s->connects = atomic_load_explicit(&t->connects, memory_order_relaxed);
    s->disconnects = atomic_load_explicit(&t->disconnects, memory_order_relaxed);
    s->records_spooled = atomic_load_explicit(&t->records_spooled, memory_order_relaxed);
    s->spool_blocks = atomic_load_explicit(&t->spool_blocks, memory_order_relaxed);
    s->spool_records = atomic_load_explicit(&t->spool_records, memory_order_relaxed);
    s->spool_bytes = atomic_load_explicit(&t->spool_bytes, memory_order_relaxed);
    s->blocks_replayed = atomic_load_explicit(&t->blocks_replayed, memory_order_relaxed);
    s->records_replay_acked = atomic_load_explicit(&t->records_replay_acked, memory_order_relaxed);
    s->records_replay_failed =
        atomic_load_explicit(&t->records_replay_failed, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    uint64_t outstanding = p->outstanding;
    s->bytes_buffered = p->buffered;
    pthread_mutex_unlock(&p->mu);
    s->records_queued = outstanding > s->records_in_flight ? outstanding - s->records_in_flight : 0;
}
