/*
 * The consumer's public API and the meaning of the stream: fw_consumer_poll
 * runs the consumer's loop in the caller's thread; the frames ptail sends
 * (read by consumer_conn.c) come here to be delivered. Delivery decides,
 * record by record, what is new (consumer_pos.c), so a resume on any ptail
 * repeats nothing and skips nothing.
 */
#include "consumer_int.h"

#include "block.h"
#include "checkpoint.h"
#include "clock.h"
#include "segment.h"
#include "error.h"
#include "status.h"
#include "proto/stream.pb-c.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_ZK     "127.0.0.1:2181/freeway"
#define DEFAULT_CREDIT (4u << 20)

void fw_clog(fw_consumer_t *c, fw_consumer_log_level_t level, const char *fmt, ...)
{
    if (c->o.log_cb == NULL || level < c->o.log_level)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    c->o.log_cb(level, line, c->o.log_arg);
}

/* ---- positions and tokens -------------------------------------------------------------------- */

/*
 * The buckets the subscription is known to cover: what ptail said last,
 * else the buckets asked for (NULL if neither is known yet).
 */
static const uint32_t *covered(const fw_consumer_t *c, uint32_t *n)
{
    if (c->ncovered > 0) {
        *n = c->ncovered;
        return c->covered;
    }
    *n = c->nbuckets;
    return c->buckets;
}

/*
 * The token of everything delivered so far, into out. A bucket without a
 * position means "from its earliest record" to ptail, which is right for a
 * consumer that started at the earliest record or from a token (a bucket
 * the token does not name starts at its earliest), so those buckets are
 * written as "nothing consumed". A consumer that started at the latest
 * record or at a time cannot say where such a bucket starts until ptail has
 * named its position: -EAGAIN until then.
 */
static int build_token(fw_consumer_t *c, fw_buf_t *out)
{
    uint32_t n;
    const uint32_t *list = covered(c, &n);
    if (c->o.start == FW_START_LATEST || c->o.start == FW_START_TIMESTAMP) {
        if (n == 0 || !fw_cpos_covers(&c->pos, list, n))
            return -EAGAIN;
        return fw_cpos_token(&c->pos, c->category, NULL, 0, out);
    }
    return fw_cpos_token(&c->pos, c->category, list, n, out);
}

int fw_consumer_resume_point(fw_consumer_t *c, fw_cstart_t *s)
{
    memset(s, 0, sizeof(*s));
    uint32_t n;
    const uint32_t *list = covered(c, &n);
    int anchored = n > 0 && fw_cpos_covers(&c->pos, list, n);
    /*
     * The original start still holds when nothing was delivered or marked;
     * and a time start gives every bucket the same place each time, so
     * before ptail named them all it is the right start for every bucket
     * (what was delivered already is skipped as it comes again).
     */
    if (c->pos.nknown == 0 || (c->o.start == FW_START_TIMESTAMP && !anchored)) {
        s->kind = c->o.start;
        s->token = c->start_token.data;
        s->token_len = c->start_token.len;
        s->ts_ms = c->o.start_ts_ms;
        return 0;
    }
    if (c->o.start == FW_START_LATEST && !anchored)
        fw_clog(c, FW_CONSUMER_LOG_WARN,
                "resuming before ptail named the start of every bucket: buckets without a "
                "position start at their earliest record");
    fw_buf_reset(&c->token);
    int rc = fw_cpos_token(&c->pos, c->category, NULL, 0, &c->token);
    if (rc < 0)
        return rc;
    s->kind = FW_START_CHECKPOINT;
    s->token = c->token.data;
    s->token_len = c->token.len;
    return 0;
}

static fw_consumer_position_t pub_position(const Fwpb__Position *p)
{
    fw_consumer_position_t out = {0};
    if (p != NULL) {
        out.bucket = p->bucket;
        out.segment_id = p->segment_id;
        out.offset = p->offset;
        out.record_index = p->record_index;
    }
    return out;
}

/* ---- the stream ------------------------------------------------------------------------------ */

static int subscribed_bucket(const fw_consumer_t *c, uint32_t b)
{
    if (c->buckets == NULL)
        return b < FW_BUCKETS_MAX;
    uint32_t lo = 0, hi = c->nbuckets;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (c->buckets[mid] == b)
            return 1;
        if (c->buckets[mid] < b)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* A protocol violation by ptail: the connection is closed and the consumer resumes elsewhere. */
__attribute__((format(printf, 3, 4))) static int violation(fw_consumer_t *c, fw_cconn_t *k,
                                                           const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(c->error, sizeof(c->error), "ptail %s: %s", k->addr, what);
    return -1;
}

static int on_error(fw_consumer_t *c, fw_cconn_t *k, const Fwpb__ErrorReply *e)
{
    int status = e != NULL ? (int)e->status : FWPB__STATUS__STATUS_INTERNAL;
    const char *msg = e != NULL && e->message != NULL ? e->message : "";
    snprintf(c->error, sizeof(c->error), "ptail %s: %s%s%s", k->addr, fw_status_name(status),
             msg[0] ? ": " : "", msg);
    switch (status) {
    case FWPB__STATUS__STATUS_UNKNOWN_CATEGORY:
    case FWPB__STATUS__STATUS_BUCKET_OUT_OF_RANGE:
    case FWPB__STATUS__STATUS_BAD_TOKEN:
    case FWPB__STATUS__STATUS_BAD_REQUEST:
        /* The same request would get the same answer anywhere. */
        c->fatal = fw_status_to_error(status);
        break;
    default:
        break;
    }
    return -1;
}

static int on_subscribed(fw_consumer_t *c, fw_cconn_t *k, const Fwpb__Subscribed *s)
{
    uint32_t *list = NULL;
    uint32_t n = 0;
    /* Refused before the copy: a longer list cannot be in order and in range. */
    if (s->n_buckets > FW_BUCKETS_MAX)
        return violation(c, k, "Subscribed lists %zu buckets", s->n_buckets);
    if (s->n_buckets > 0) {
        list = malloc(s->n_buckets * sizeof(*list));
        if (list == NULL)
            return violation(c, k, "out of memory");
        for (size_t i = 0; i < s->n_buckets; i++) {
            if (s->buckets[i] >= FW_BUCKETS_MAX || (n > 0 && s->buckets[i] <= list[n - 1])) {
                free(list);
                return violation(c, k, "Subscribed lists buckets out of order or range");
            }
            /* A bucket not asked for would never get a position, and hold back every token. */
            if (!subscribed_bucket(c, s->buckets[i])) {
                free(list);
                return violation(c, k,
                                 "Subscribed lists bucket %" PRIu32 ", which was not asked for",
                                 s->buckets[i]);
            }
            list[n++] = s->buckets[i];
        }
    }
    free(c->covered);
    c->covered = list;
    c->ncovered = n;
    k->state = FW_CCONN_STREAMING;
    c->stats.subscriptions++;
    fw_clog(c, FW_CONSUMER_LOG_INFO,
            "subscribed to %s at ptail %s (%" PRIu32 " of %" PRIu32 " buckets)", c->category,
            k->addr, n, s->bucket_count);
    return FW_CFRAME_DONE;
}

static void run_record_cb(fw_consumer_t *c, const fw_consumer_record_t *r)
{
    c->in_callback = 1;
    c->o.on_record(r, c->o.arg);
    c->in_callback = 0;
    c->stats.records++;
    c->stats.bytes += r->key_len + r->value_len;
    c->poll_records++;
    c->poll_callbacks++;
}

static int on_records(fw_consumer_t *c, fw_cconn_t *k, const Fwpb__Records *m, const fw_frame_t *f,
                      uint32_t *resume)
{
    if (!subscribed_bucket(c, m->bucket))
        return violation(c, k, "records of bucket %" PRIu32 ", which is not subscribed", m->bucket);
    fw_block_header_t h;
    fw_record_iter_t it;
    int rc = fw_block_decode(f->body, f->body_len, FW_RECORD_MAX_HARD, &c->scratch, &h, &it);
    if (rc < 0 || f->body_len != fw_block_size(&h)) {
        c->stats.bad_blocks++;
        return violation(c, k,
                         "block of bucket %" PRIu32 " at segment %" PRIu64 " offset %" PRIu64
                         " refused: %s",
                         m->bucket, m->segment_id, m->offset,
                         rc == -EINVAL ? "a seal block"
                         : rc < 0      ? fw_strerror(rc)
                                       : "bytes after the block");
    }
    /*
     * The position comes from the network: a block starts after its
     * segment's header in a real segment (segment 0 is "nothing consumed"),
     * and the next position, offset + size, must not wrap. Otherwise the
     * consumer would hold a position no token can carry, or one that moved
     * back.
     */
    if (m->segment_id == 0 || m->offset < c->pos.first_offset ||
        m->offset > UINT64_MAX - f->body_len)
        return violation(c, k,
                         "a block of bucket %" PRIu32 " at segment %" PRIu64 " offset %" PRIu64
                         ", where no block can be",
                         m->bucket, m->segment_id, m->offset);
    uint32_t first = m->has_first_record ? m->first_record : 0;
    if (first > h.record_count)
        return violation(c, k, "first_record %" PRIu32 " of a block of %" PRIu32 " records", first,
                         h.record_count);
    uint32_t resumed = *resume; /* records handled by an earlier poll */
    if (resumed > first)
        first = resumed;
    fw_position_t at = {.bucket = m->bucket, .segment_id = m->segment_id, .offset = m->offset};
    int delivered = 0, jumped = 0;
    fw_record_t rec;
    for (uint32_t i = 0; fw_record_next(&it, &rec); i++) {
        if (i < first)
            continue;
        at.record_index = i;
        if (!fw_cpos_is_new(&c->pos, &at)) {
            c->stats.records_skipped++;
            continue;
        }
        if (!jumped && !fw_cpos_is_contiguous(&c->pos, &at)) {
            const fw_position_t *p = fw_cpos_get(&c->pos, at.bucket);
            jumped = 1;
            c->stats.jumps++;
            fw_clog(c, FW_CONSUMER_LOG_ERROR,
                    "ptail %s skipped records of bucket %" PRIu32 ": expected segment %" PRIu64
                    " offset %" PRIu64 " record %" PRIu32 ", got offset %" PRIu64
                    " record %" PRIu32,
                    k->addr, at.bucket, p->segment_id, p->offset, p->record_index, at.offset, i);
        }
        /* Counted before the callback, so a token taken inside it includes the record. */
        if (fw_cpos_delivered(&c->pos, &at, h.record_count, f->body_len) < 0)
            return violation(c, k, "out of memory");
        fw_consumer_record_t r = {
            .bucket = at.bucket,
            .segment_id = at.segment_id,
            .offset = at.offset,
            .record_index = i,
            .timestamp = rec.timestamp,
            .has_key = rec.has_key,
            .key = rec.key,
            .key_len = rec.key_len,
            .value = rec.value,
            .value_len = rec.value_len,
        };
        if (!delivered && resumed == 0)
            c->stats.blocks++;
        delivered = 1;
        k->progress = 1;
        fw_caudit_record(c, &at, h.base_ts);
        run_record_cb(c, &r);
        if (c->break_req && i + 1 < h.record_count) {
            *resume = i + 1;
            return FW_CFRAME_PAUSED;
        }
    }
    return FW_CFRAME_DONE;
}

static int on_checkpoint(fw_consumer_t *c, fw_cconn_t *k, const Fwpb__Checkpoint *m)
{
    fw_checkpoint_t cp;
    int rc = fw_checkpoint_decode(m->token.data, m->token.len, &cp);
    if (rc < 0)
        return violation(c, k, "a checkpoint token that does not decode: %s", fw_strerror(rc));
    if (strcmp(cp.category, c->category) != 0) {
        fw_checkpoint_free(&cp);
        return violation(c, k, "a checkpoint of category %s", cp.category);
    }
    /*
     * Everything before the token was sent, and all of it was handled. A
     * bucket outside the subscription is not ours to track: its position
     * would only ride along in every later token.
     */
    for (uint32_t i = 0; i < cp.count; i++) {
        if (!subscribed_bucket(c, cp.positions[i].bucket))
            continue;
        if (fw_cpos_advance(&c->pos, &cp.positions[i]) < 0) {
            fw_checkpoint_free(&cp);
            return violation(c, k, "out of memory");
        }
        fw_caudit_placed(c, &cp.positions[i]);
    }
    fw_checkpoint_free(&cp);
    c->stats.checkpoints++;
    k->progress = 1;
    if (c->o.on_checkpoint == NULL)
        return FW_CFRAME_DONE;
    fw_buf_reset(&c->token);
    rc = build_token(c, &c->token);
    if (rc == -EAGAIN)
        return FW_CFRAME_DONE;
    if (rc < 0)
        return violation(c, k, "cannot build a token: %s", fw_strerror(rc));
    c->in_callback = 1;
    c->o.on_checkpoint(c->token.data, c->token.len, c->o.arg);
    c->in_callback = 0;
    c->poll_callbacks++;
    return FW_CFRAME_DONE;
}

static int on_gap(fw_consumer_t *c, fw_cconn_t *k, const Fwpb__Gap *m)
{
    /*
     * The bucket moves to `to`, so it must be a place in a real segment of a
     * subscribed bucket: segment 0 ("nothing consumed") would make a bucket
     * look placed when it is not, and with an offset no token can carry it.
     */
    if (!subscribed_bucket(c, m->bucket))
        return violation(c, k, "a gap in bucket %" PRIu32 ", which is not subscribed", m->bucket);
    if (m->to == NULL || m->to->segment_id == 0)
        return violation(c, k, "a gap in bucket %" PRIu32 " that ends in segment 0", m->bucket);
    fw_consumer_gap_t g = {
        .bucket = m->bucket,
        .from = pub_position(m->from),
        .to = pub_position(m->to),
        .reason = m->reason != NULL ? m->reason : "",
    };
    g.from.bucket = g.to.bucket = m->bucket;
    fw_position_t to = {m->bucket, g.to.segment_id, g.to.offset, g.to.record_index};
    if (fw_cpos_advance(&c->pos, &to) < 0)
        return violation(c, k, "a gap in bucket %" PRIu32 " out of range", m->bucket);
    c->stats.gaps++;
    fw_caudit_gap(c, &to);
    fw_clog(c, FW_CONSUMER_LOG_WARN,
            "ptail %s: records of bucket %" PRIu32 " from segment %" PRIu64 " offset %" PRIu64
            " to segment %" PRIu64 " offset %" PRIu64 " cannot be delivered: %s",
            k->addr, g.bucket, g.from.segment_id, g.from.offset, g.to.segment_id, g.to.offset,
            g.reason);
    if (c->o.on_gap != NULL) {
        c->in_callback = 1;
        c->o.on_gap(&g, c->o.arg);
        c->in_callback = 0;
        c->poll_callbacks++;
    }
    return FW_CFRAME_DONE;
}

int fw_consumer_on_frame(fw_consumer_t *c, fw_cconn_t *k, const fw_frame_t *f, uint32_t *resume)
{
    if (f->type == FW_FRAME_ERROR) {
        Fwpb__ErrorReply *e = fwpb__error_reply__unpack(NULL, f->meta_len, f->meta);
        int rc = on_error(c, k, e);
        if (e != NULL)
            fwpb__error_reply__free_unpacked(e, NULL);
        return rc;
    }
    if (f->type != FW_FRAME_STREAM)
        return violation(c, k, "an unexpected frame of type %u", f->type);
    Fwpb__StreamMessage *m = fwpb__stream_message__unpack(NULL, f->meta_len, f->meta);
    if (m == NULL)
        return violation(c, k, "a malformed stream message");
    int rc;
    if (k->state == FW_CCONN_SUBSCRIBING && m->kind_case != FWPB__STREAM_MESSAGE__KIND_SUBSCRIBED &&
        m->kind_case != FWPB__STREAM_MESSAGE__KIND_ERROR) {
        rc = violation(c, k, "a stream message before Subscribed");
    } else if (k->state == FW_CCONN_STREAMING &&
               m->kind_case == FWPB__STREAM_MESSAGE__KIND_SUBSCRIBED) {
        rc = violation(c, k, "a second Subscribed");
    } else {
        switch (m->kind_case) {
        case FWPB__STREAM_MESSAGE__KIND_SUBSCRIBED:
            rc = on_subscribed(c, k, m->subscribed);
            break;
        case FWPB__STREAM_MESSAGE__KIND_RECORDS:
            rc = on_records(c, k, m->records, f, resume);
            break;
        case FWPB__STREAM_MESSAGE__KIND_CHECKPOINT:
            rc = on_checkpoint(c, k, m->checkpoint);
            break;
        case FWPB__STREAM_MESSAGE__KIND_GAP:
            rc = on_gap(c, k, m->gap);
            break;
        case FWPB__STREAM_MESSAGE__KIND_ERROR:
            rc = on_error(c, k, m->error);
            break;
        default:
            rc = violation(c, k, "a stream message of no known kind");
            break;
        }
    }
    fwpb__stream_message__free_unpacked(m, NULL);
    return rc;
}

/* ---- SIGPIPE --------------------------------------------------------------------------------- */

/*
 * libuv writes to sockets with write(2), which raises SIGPIPE when ptail has
 * gone; the default action would kill the application. The consumer has no
 * thread of its own to block it in, so it blocks SIGPIPE in the caller's
 * thread while it runs, swallows a SIGPIPE its own writes raised, and puts
 * the mask back (libpq does the same).
 */
typedef struct sigpipe_guard_s {
    sigset_t old;
    int was_pending;
} sigpipe_guard_t;

static int sigpipe_pending(void)
{
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    return sigismember(&pending, SIGPIPE) == 1;
}

static void sigpipe_block(sigpipe_guard_t *g)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &s, &g->old);
    g->was_pending = sigpipe_pending();
}

static void sigpipe_restore(sigpipe_guard_t *g)
{
    if (!g->was_pending && sigpipe_pending()) {
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGPIPE);
        struct timespec zero = {0, 0};
        while (sigtimedwait(&s, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* ---- options, create ------------------------------------------------------------------------- */

void fw_consumer_options_init(fw_consumer_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->start = FW_START_LATEST;
    o->checkpoint_every_records = 1000;
    o->checkpoint_every_ms = 1000;
    o->credit_bytes = DEFAULT_CREDIT;
    o->log_level = FW_CONSUMER_LOG_INFO;
    o->audit_interval_ms = FW_AUDIT_INTERVAL_DEFAULT_MS;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Copies, sorts and de-duplicates the bucket list. */
static int copy_buckets(fw_consumer_t *c, const fw_consumer_options_t *o)
{
    if (o->buckets == NULL)
        return o->nbuckets == 0 ? 0 : -EINVAL;
    if (o->nbuckets == 0 || o->nbuckets > FW_BUCKETS_MAX)
        return -EINVAL;
    c->buckets = malloc(o->nbuckets * sizeof(*c->buckets));
    if (c->buckets == NULL)
        return -ENOMEM;
    memcpy(c->buckets, o->buckets, o->nbuckets * sizeof(*c->buckets));
    qsort(c->buckets, o->nbuckets, sizeof(*c->buckets), cmp_u32);
    uint32_t n = 0;
    for (size_t i = 0; i < o->nbuckets; i++) {
        if (c->buckets[i] >= FW_BUCKETS_MAX)
            return -EINVAL;
        if (n == 0 || c->buckets[i] != c->buckets[n - 1])
            c->buckets[n++] = c->buckets[i];
    }
    c->nbuckets = n;
    return 0;
}

/* Checks and keeps the start token; its positions are where the buckets stand. */
static int take_start_token(fw_consumer_t *c, const fw_consumer_options_t *o)
{
    if (o->start_token == NULL || o->start_token_len == 0)
        return -EINVAL;
    fw_checkpoint_t cp;
    int rc = fw_checkpoint_decode(o->start_token, o->start_token_len, &cp);
    if (rc < 0)
        return rc;
    if (strcmp(cp.category, c->category) != 0)
        rc = FW_ETOKEN_BAD;
    for (uint32_t i = 0; rc == 0 && i < cp.count; i++)
        rc = fw_cpos_advance(&c->pos, &cp.positions[i]) < 0 ? -ENOMEM : 0;
    fw_checkpoint_free(&cp);
    if (rc == 0)
        rc = fw_buf_append(&c->start_token, o->start_token, o->start_token_len);
    return rc;
}

static void on_handle_closed(uv_handle_t *h)
{
    fw_consumer_t *c = h->data;
    c->handles_open--;
}

static void on_wake(uv_async_t *h)
{
    (void)h; /* fw_consumer_poll looks at c->woken */
}

static void on_poll_timeout(uv_timer_t *t)
{
    fw_consumer_t *c = t->data;
    c->timed_out = 1;
}

static void consumer_free(fw_consumer_t *c)
{
    fw_cpos_free(&c->pos);
    fw_buf_free(&c->start_token);
    fw_buf_free(&c->scratch);
    fw_buf_free(&c->token);
    free(c->covered);
    free(c->buckets);
    free(c->addrs);
    free(c->zk_spec);
    free(c->ptail_spec);
    free(c->name);
    fw_caudit_free(c);
    free(c);
}

/* Closes whatever is open on the loop, runs it until everything is closed, frees c. */
static void consumer_teardown(fw_consumer_t *c, int loop_ready)
{
    if (loop_ready) {
        sigpipe_guard_t guard;
        sigpipe_block(&guard);
        if (c->conn != NULL)
            fw_cconn_close(c->conn, 0, "closing");
        fw_cfind_stop(c);
        uv_handle_t *hs[] = {(uv_handle_t *)&c->wake, (uv_handle_t *)&c->poll_timer,
                             (uv_handle_t *)&c->retry_timer, (uv_handle_t *)&c->conn_timer};
        for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++) {
            if (hs[i]->data != NULL && !uv_is_closing(hs[i]))
                uv_close(hs[i], on_handle_closed);
        }
        while (c->handles_open > 0)
            uv_run(&c->loop, UV_RUN_ONCE);
        /* And whatever else is closing (a host-name lookup's wake handle, given up). */
        uv_run(&c->loop, UV_RUN_DEFAULT);
        uv_loop_close(&c->loop);
        sigpipe_restore(&guard);
    }
    consumer_free(c);
}

static char *dup_or_null(const char *s, int *oom)
{
    if (s == NULL || *s == '\0')
        return NULL;
    char *d = strdup(s);
    *oom |= d == NULL;
    return d;
}

int fw_consumer_create(fw_consumer_t **out, const fw_consumer_options_t *o)
{
    if (out == NULL || o == NULL || o->category == NULL || o->on_record == NULL ||
        o->credit_bytes == 0 || (unsigned)o->start > FW_START_TIMESTAMP ||
        (unsigned)o->log_level > FW_CONSUMER_LOG_ERROR)
        return -EINVAL;
    if (!fw_category_valid(o->category))
        return FW_EBAD_CATEGORY;
    fw_consumer_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->o = *o;
    snprintf(c->category, sizeof(c->category), "%s", o->category);
    fw_cpos_init(&c->pos, FW_SEG_HEADER_FIXED + strlen(c->category) + 4);
    int rc = copy_buckets(c, o);
    if (rc == 0 && o->start == FW_START_CHECKPOINT)
        rc = take_start_token(c, o);
    if (rc < 0) {
        consumer_free(c);
        return rc;
    }
    int oom = 0;
    const char *zk = o->zk;
    if (zk == NULL || *zk == '\0')
        zk = getenv("FREEWAY_ZK");
    if (zk == NULL || *zk == '\0')
        zk = DEFAULT_ZK;
    c->zk_spec = dup_or_null(zk, &oom);
    c->ptail_spec = dup_or_null(o->ptail, &oom);
    c->name = dup_or_null(o->name, &oom);
    if (oom) {
        consumer_free(c);
        return -ENOMEM;
    }
    c->o.category = c->category;
    c->o.zk = c->zk_spec;
    c->o.ptail = c->ptail_spec;
    c->o.name = c->name;
    c->o.buckets = c->buckets;
    c->o.nbuckets = c->nbuckets;
    c->o.start_token = c->start_token.data;
    c->o.start_token_len = c->start_token.len;
    if ((rc = fw_caudit_init(c)) < 0) {
        consumer_free(c);
        return rc;
    }
    if (c->o.credit_bytes > UINT32_MAX)
        c->o.credit_bytes = UINT32_MAX;

    if ((rc = uv_loop_init(&c->loop)) < 0) {
        consumer_free(c);
        return rc;
    }
    c->loop.data = c;
    if ((rc = uv_async_init(&c->loop, &c->wake, on_wake)) < 0)
        goto fail;
    c->wake.data = c;
    c->handles_open++;
    uv_timer_init(&c->loop, &c->poll_timer);
    uv_timer_init(&c->loop, &c->retry_timer);
    uv_timer_init(&c->loop, &c->conn_timer);
    c->poll_timer.data = c->retry_timer.data = c->conn_timer.data = c;
    c->handles_open += 3;
    if ((rc = fw_cfind_start(c)) < 0)
        goto fail;
    /* The first attempt runs in the first poll. */
    fw_cconn_retry(c, 0);
    *out = c;
    return 0;

fail:
    consumer_teardown(c, 1);
    return rc;
}

/* ---- poll, close ----------------------------------------------------------------------------- */

static int poll_done(fw_consumer_t *c)
{
    return c->fatal != 0 || c->break_req || c->poll_callbacks > 0 || c->timed_out ||
           atomic_exchange(&c->woken, 0) != 0;
}

int fw_consumer_poll(fw_consumer_t *c, int timeout_ms)
{
    if (c == NULL)
        return -EINVAL;
    if (c->in_callback || c->in_poll)
        return -EDEADLK;
    if (c->fatal != 0)
        return c->fatal;
    c->in_poll = 1;
    c->poll_records = 0;
    c->poll_callbacks = 0;
    c->break_req = 0;
    c->timed_out = 0;
    sigpipe_guard_t guard;
    sigpipe_block(&guard);
    /*
     * The loop's clock stood still since the last poll, and timers started
     * now (the poll's timeout, a retry's backoff) count from it. A timeout
     * counted from then fires before the loop first waits, and the poll then
     * waits for the next timer instead (up to the 10 s connect timeout).
     */
    uv_update_time(&c->loop);
    /* First what an earlier poll left buffered when it ended inside a block. */
    fw_cconn_drain(c);
    if (!poll_done(c)) {
        if (timeout_ms > 0)
            uv_timer_start(&c->poll_timer, on_poll_timeout, (uint64_t)timeout_ms, 0);
        do {
            uv_run(&c->loop, timeout_ms == 0 ? UV_RUN_NOWAIT : UV_RUN_ONCE);
        } while (timeout_ms != 0 && !poll_done(c));
        uv_timer_stop(&c->poll_timer);
    }
    sigpipe_restore(&guard);
    c->in_poll = 0;
    fw_caudit_report(c, 0);
    if (c->fatal != 0)
        return c->fatal;
    return c->poll_records > INT_MAX ? INT_MAX : (int)c->poll_records;
}

void fw_consumer_break(fw_consumer_t *c)
{
    if (c != NULL)
        c->break_req = 1;
}

void fw_consumer_wakeup(fw_consumer_t *c)
{
    if (c == NULL)
        return;
    atomic_store(&c->woken, 1);
    uv_async_send(&c->wake);
}

int fw_consumer_checkpoint(fw_consumer_t *c, void **token, size_t *len)
{
    if (c == NULL || token == NULL || len == NULL)
        return -EINVAL;
    fw_buf_t b = FW_BUF_INIT;
    int rc = build_token(c, &b);
    if (rc < 0) {
        fw_buf_free(&b);
        return rc;
    }
    *token = b.data;
    *len = b.len;
    return 0;
}

int fw_consumer_close(fw_consumer_t *c)
{
    if (c == NULL)
        return 0;
    if (c->in_callback || c->in_poll)
        return -EDEADLK;
    c->closing = 1;
    fw_caudit_report(c, 1);
    consumer_teardown(c, 1);
    return 0;
}

const char *fw_consumer_error(const fw_consumer_t *c)
{
    return c != NULL ? c->error : "";
}

void fw_consumer_stats(const fw_consumer_t *c, fw_consumer_stats_t *s)
{
    if (c != NULL && s != NULL)
        *s = c->stats;
}

/* ---- tokens as text -------------------------------------------------------------------------- */

int fw_consumer_token_to_text(const void *token, size_t len, char **text)
{
    if (token == NULL || text == NULL)
        return -EINVAL;
    fw_checkpoint_t cp;
    int rc = fw_checkpoint_decode(token, len, &cp);
    if (rc < 0)
        return rc;
    fw_buf_t b = FW_BUF_INIT;
    rc = fw_checkpoint_to_text(&cp, &b);
    fw_checkpoint_free(&cp);
    if (rc < 0) {
        fw_buf_free(&b);
        return rc;
    }
    *text = (char *)b.data;
    return 0;
}

int fw_consumer_token_from_text(const char *text, void **token, size_t *len)
{
    if (text == NULL || token == NULL || len == NULL)
        return -EINVAL;
    fw_checkpoint_t cp;
    int rc = fw_checkpoint_from_text(text, strlen(text), &cp);
    if (rc < 0)
        return rc;
    fw_buf_t b = FW_BUF_INIT;
    rc = fw_checkpoint_encode(&cp, &b);
    fw_checkpoint_free(&cp);
    if (rc < 0) {
        fw_buf_free(&b);
        return rc;
    }
    *token = b.data;
    *len = b.len;
    return 0;
}
