/*
 * libFuzzer target: the consumer's handling of what ptail sends, from a
 * decoded frame on (fw_consumer_on_frame: Subscribed, Records and their
 * blocks, Checkpoint, Gap, errors, and the positions they move). The
 * consumer is made with a ptail list and never polled, so it opens no
 * socket; the harness plays the part of consumer_conn.c's drain loop on a
 * connection object of its own, reconnecting after each refused frame.
 *
 * Input: two option bytes, then a frame stream as ptail would send it.
 *
 *   byte 0  bits 0-1  start (earliest, latest, checkpoint, timestamp)
 *           bit 2     an on_checkpoint callback
 *           bit 3     an on_gap callback
 *           bit 4     re-sign the CRCs of blocks and checkpoint tokens first
 *           bits 5-7  fw_consumer_break after every n-th record (0: never),
 *                     so polls end inside blocks and resume there
 *   byte 1  the subscribed buckets, a mask over buckets 0..7 (0: all)
 *
 * A refused frame closes the connection; the next one subscribes from where
 * the consumer stands and is answered with a Subscribed by the harness, so
 * the frames after a refused one still count.
 *
 * Checked, beyond the sanitizers: per bucket, every record delivered comes
 * after the last one delivered and after the position any earlier token
 * held (exactly once, in order); a token's positions never move back and a
 * bucket with a position never drops out of it; tokens always decode; a
 * token taken inside on_record includes the record; the one given to
 * on_checkpoint equals fw_consumer_checkpoint's; after a gap the bucket
 * stands at or beyond its end; a poll ended inside a block resumes further on.
 */
#include "fuzz.h"
#include "block.h"
#include "bytes.h"
#include "checkpoint.h"
#include "consumer_int.h"
#include "crc32c.h"
#include "error.h"
#include "frame.h"
#include "freeway.h"
#include "proto/stream.pb-c.h"
#include "segment.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CATEGORY "web_clicks"

/* What the harness knows, per bucket, of where the consumer must stand. */
typedef struct track_s {
    fw_consumer_t *c;
    uint32_t break_every;
    uint8_t mask;
    uint64_t records;
    int check_in_record; /* take a token in the next on_record */
    /* floor[b]: nothing of bucket b below it may be delivered; valid where has[b]. */
    fw_position_t floor[FW_BUCKETS_MAX];
    uint8_t has[FW_BUCKETS_MAX];
    /* placed[b]: a token named a real position of b, so every later one must name b. */
    uint8_t placed[FW_BUCKETS_MAX];
    uint32_t nplaced;
    uint32_t touched[FW_BUCKETS_MAX];
    uint32_t ntouched;
} track_t;

static track_t T;
/* Every byte of every record is read (and the sum kept), so ASan checks them all. */
static volatile uint8_t sink;

static void touch(uint32_t b)
{
    if (!T.has[b] && !T.placed[b])
        T.touched[T.ntouched++] = b;
}

static void track_reset(void)
{
    for (uint32_t i = 0; i < T.ntouched; i++) {
        T.has[T.touched[i]] = 0;
        T.placed[T.touched[i]] = 0;
    }
    T.ntouched = 0;
    T.nplaced = 0;
    T.records = 0;
}

/* The consumer's token now, decoded into *cp (and raw into *raw); 0, or -EAGAIN. */
static int token_now(fw_checkpoint_t *cp, fw_buf_t *raw)
{
    void *tok;
    size_t len;
    int rc = fw_consumer_checkpoint(T.c, &tok, &len);
    if (rc == -EAGAIN)
        return rc;
    if (rc < 0 || fw_checkpoint_decode(tok, len, cp) != 0 || strcmp(cp->category, CATEGORY) != 0)
        abort(); /* the consumer built a token that does not decode */
    if (raw != NULL && fw_buf_append(raw, tok, len) < 0)
        abort();
    free(tok);
    return 0;
}

/* Checks the token against what is known, then raises the floors to it. */
static void check_token(void)
{
    fw_checkpoint_t cp;
    if (token_now(&cp, NULL) < 0)
        return;
    uint32_t named = 0, placed_before = T.nplaced;
    for (uint32_t i = 0; i < cp.count; i++) {
        const fw_position_t *p = &cp.positions[i];
        if (T.has[p->bucket] && fw_pos_cmp(p, &T.floor[p->bucket]) < 0)
            abort(); /* a position moved back, or below a record already delivered */
        named += T.placed[p->bucket];
        /* STRICT: a token names only subscribed buckets, or those of the start token. */
        if (T.c->buckets != NULL && !(p->bucket < 8 && (T.mask >> p->bucket) & 1) &&
            !(T.c->o.start == FW_START_CHECKPOINT && (p->bucket == 1 || p->bucket == 6)))
            abort();
        touch(p->bucket);
        T.floor[p->bucket] = *p;
        T.has[p->bucket] = 1;
        if (p->segment_id != 0 && !T.placed[p->bucket]) {
            T.placed[p->bucket] = 1;
            T.nplaced++;
        }
    }
    if (named != placed_before)
        abort(); /* a bucket with a position dropped out of the token */
    fw_checkpoint_free(&cp);
}

static void on_record(const fw_consumer_record_t *r, void *arg)
{
    (void)arg;
    fw_position_t at = {r->bucket, r->segment_id, r->offset, r->record_index};
    if (T.has[r->bucket] && fw_pos_cmp(&at, &T.floor[r->bucket]) < 0)
        abort(); /* delivered twice, or out of order, or before a checkpoint */
    const uint8_t *key = r->key, *value = r->value;
    uint8_t sum = 0;
    for (size_t i = 0; i < r->key_len; i++)
        sum += key[i];
    for (size_t i = 0; i < r->value_len; i++)
        sum += value[i];
    sink = sum;
    touch(r->bucket);
    T.floor[r->bucket] = at;
    T.floor[r->bucket].record_index++;
    T.has[r->bucket] = 1;
    if (T.check_in_record) {
        /* The record counts as delivered before the callback: a token taken now includes it. */
        T.check_in_record = 0;
        fw_checkpoint_t cp;
        if (token_now(&cp, NULL) == 0) {
            const fw_position_t *p = fw_checkpoint_find(&cp, r->bucket);
            if (p == NULL || fw_pos_cmp(p, &at) <= 0)
                abort();
            fw_checkpoint_free(&cp);
        }
    }
    T.records++;
    if (T.break_every != 0 && T.records % T.break_every == 0)
        fw_consumer_break(T.c);
}

static void on_checkpoint(const void *token, size_t len, void *arg)
{
    (void)arg;
    /* The same token fw_consumer_checkpoint would give. */
    fw_checkpoint_t cp;
    fw_buf_t raw = FW_BUF_INIT;
    if (token_now(&cp, &raw) != 0 || raw.len != len || memcmp(raw.data, token, len) != 0)
        abort();
    fw_checkpoint_free(&cp);
    fw_buf_free(&raw);
}

static void on_gap(const fw_consumer_gap_t *g, void *arg)
{
    (void)arg;
    if (g->reason == NULL || g->to.segment_id == 0 || g->from.bucket != g->bucket ||
        g->to.bucket != g->bucket)
        abort();
    (void)strlen(g->reason);
    /* The stream goes on at g->to: the bucket stands there or beyond. */
    fw_checkpoint_t cp;
    if (token_now(&cp, NULL) == 0) {
        const fw_position_t *p = fw_checkpoint_find(&cp, g->bucket);
        fw_position_t to = {g->bucket, g->to.segment_id, g->to.offset, g->to.record_index};
        if (p == NULL || fw_pos_cmp(p, &to) < 0)
            abort();
        fw_checkpoint_free(&cp);
    }
}

static void on_log(fw_consumer_log_level_t level, const char *message, void *arg)
{
    (void)arg;
    if (message == NULL || (unsigned)level > FW_CONSUMER_LOG_ERROR)
        abort();
    (void)strlen(message);
}

/* A start token: bucket 1 inside segment 3, bucket 6 not consumed yet. */
static void start_token(fw_buf_t *out)
{
    uint64_t first = fw_seg_first_block(strlen(CATEGORY));
    fw_position_t pos[2] = {{1, 3, first + 100, 1}, {6, 0, 0, 0}};
    fw_checkpoint_t cp = {CATEGORY, 2, pos};
    if (fw_checkpoint_encode(&cp, out) < 0)
        abort();
}

/* What send_subscribe would ask for on the next connection. */
static void check_resume_point(void)
{
    fw_cstart_t s;
    if (fw_consumer_resume_point(T.c, &s) < 0)
        return;
    if (s.kind == FW_START_CHECKPOINT) {
        fw_checkpoint_t cp;
        if (fw_checkpoint_decode(s.token, s.token_len, &cp) != 0)
            abort();
        fw_checkpoint_free(&cp);
    }
}

/*
 * With resign set, a Records block gets both its CRCs and a Checkpoint token
 * its CRC recomputed (as fuzz_block and fuzz_checkpoint do), so that
 * mutations reach the fields behind them. *out points into the buffers.
 */
static void resign_frame(const fw_frame_t *in, fw_buf_t *meta, fw_buf_t *body, fw_frame_t *out)
{
    *out = *in;
    if (in->type != FW_FRAME_STREAM)
        return;
    if (in->body_len >= FW_BLOCK_HEADER_SIZE) {
        fw_buf_reset(body);
        if (fw_buf_append(body, in->body, in->body_len) < 0)
            abort();
        uint8_t *b = body->data;
        uint32_t stored = fw_load_u32(b + 8);
        if (stored <= in->body_len - FW_BLOCK_HEADER_SIZE)
            fw_store_u32(b + 20, fw_crc32c(0, b + FW_BLOCK_HEADER_SIZE, stored));
        fw_store_u32(b + 60, fw_crc32c(0, b, 60));
        out->body = b;
    }
    Fwpb__StreamMessage *m = fwpb__stream_message__unpack(NULL, in->meta_len, in->meta);
    if (m == NULL)
        return;
    if (m->kind_case == FWPB__STREAM_MESSAGE__KIND_CHECKPOINT && m->checkpoint->token.len >= 4) {
        ProtobufCBinaryData *t = &m->checkpoint->token;
        fw_store_u32(t->data + t->len - 4, fw_crc32c(0, t->data, t->len - 4));
        size_t len = fwpb__stream_message__get_packed_size(m);
        fw_buf_reset(meta);
        if (fw_buf_reserve(meta, len) < 0)
            abort();
        meta->len = fwpb__stream_message__pack(m, meta->data);
        out->meta = meta->data;
        out->meta_len = (uint32_t)meta->len;
    }
    fwpb__stream_message__free_unpacked(m, NULL);
}

/* The drain loop's part for one frame: the polls it takes, when a break ends them in its block. */
static int handle_frame(fw_cconn_t *k, const fw_frame_t *f)
{
    uint32_t resume = 0;
    for (;;) {
        uint32_t before = resume;
        T.check_in_record = 1;
        int rc = fw_consumer_on_frame(T.c, k, f, &resume);
        /* The poll ends; the next one starts with break_req clear and drains again. */
        T.c->break_req = 0;
        check_token();
        if (rc != FW_CFRAME_PAUSED)
            return rc;
        if (resume <= before)
            abort(); /* a poll that ends inside a block must have moved on in it */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t opt = data[0], mask = data[1];
    data += 2, size -= 2;

    fw_consumer_options_t o;
    fw_consumer_options_init(&o);
    o.category = CATEGORY;
    /* A fixed list, so no ZooKeeper; the consumer is never polled, so it never connects. */
    o.ptail = "127.0.0.1:1";
    o.start = (fw_start_t)(opt & 3);
    o.start_ts_ms = 1700000000000;
    o.on_record = on_record;
    o.on_checkpoint = opt & 4 ? on_checkpoint : NULL;
    o.on_gap = opt & 8 ? on_gap : NULL;
    o.log_cb = on_log;
    o.log_level = FW_CONSUMER_LOG_DEBUG;
    int resign = opt & 16;
    uint32_t buckets[8], nb = 0;
    for (uint32_t b = 0; b < 8; b++)
        if (mask & (1u << b))
            buckets[nb++] = b;
    if (nb > 0) {
        o.buckets = buckets;
        o.nbuckets = nb;
    }
    fw_buf_t tok = FW_BUF_INIT;
    if (o.start == FW_START_CHECKPOINT) {
        start_token(&tok);
        o.start_token = tok.data;
        o.start_token_len = tok.len;
    }

    track_reset();
    T.break_every = opt >> 5;
    T.mask = mask;
    if (fw_consumer_create(&T.c, &o) != 0)
        abort();
    fw_buf_free(&tok);
    fw_consumer_t *c = T.c;
    /* Belt and braces: the first connection attempt, due at the first poll, is called off. */
    uv_timer_stop(&c->retry_timer);
    check_token();

    /* What a ptail answers a new connection: the buckets asked for, of a category of 8. */
    static const uint32_t all8[] = {0, 1, 2, 3, 4, 5, 6, 7};
    Fwpb__Subscribed sub = FWPB__SUBSCRIBED__INIT;
    sub.bucket_count = 8;
    sub.n_buckets = nb > 0 ? nb : 8;
    sub.buckets = nb > 0 ? buckets : (uint32_t *)all8;
    Fwpb__StreamMessage subm = FWPB__STREAM_MESSAGE__INIT;
    subm.kind_case = FWPB__STREAM_MESSAGE__KIND_SUBSCRIBED;
    subm.subscribed = &sub;
    fw_buf_t subbuf = FW_BUF_INIT, meta = FW_BUF_INIT, body = FW_BUF_INIT;
    fw_frame_t subframe;
    size_t need = 0;
    if (fw_frame_append(&subbuf, FW_FRAME_STREAM, &subm.base, NULL, 0, 0) < 0 ||
        fw_frame_decode(subbuf.data, subbuf.len, FW_FRAME_MAX_DEFAULT, &subframe, &need) <= 0)
        abort();

    /* The connection as consumer_conn.c leaves it once SUBSCRIBE is sent. */
    fw_cconn_t *k = calloc(1, sizeof(*k));
    if (k == NULL)
        abort();
    k->c = c;
    snprintf(k->addr, sizeof(k->addr), "fuzz");
    k->state = FW_CCONN_SUBSCRIBING;

    size_t off = 0;
    while (off < size && !c->fatal) {
        fw_frame_t raw, f;
        ssize_t n = fw_frame_decode(data + off, size - off, FW_FRAME_MAX_DEFAULT, &raw, &need);
        if (n <= 0)
            break; /* drain: wait for more, or close on a bad frame */
        off += (size_t)n;
        if (resign)
            resign_frame(&raw, &meta, &body, &f);
        else
            f = raw;
        int rc = handle_frame(k, &f);
        if (rc >= 0) {
            if (rc != FW_CFRAME_DONE)
                abort();
            continue;
        }
        /* Refused: fw_cconn_close, then (unless fatal) a new connection from where c stands. */
        if (c->error[0] == '\0')
            abort();
        if (c->fatal)
            break;
        check_resume_point();
        k->state = FW_CCONN_SUBSCRIBING;
        k->progress = 0;
        /* Its ptail accepts the subscription, so the frames after this one are not all refused. */
        if (handle_frame(k, &subframe) != FW_CFRAME_DONE)
            abort();
    }
    check_resume_point();

    fw_consumer_stats_t st;
    fw_consumer_stats(c, &st);
    if (st.records != T.records)
        abort();
    free(k);
    fw_buf_free(&subbuf);
    fw_buf_free(&meta);
    fw_buf_free(&body);
    if (fw_consumer_close(c) != 0)
        abort();
    T.c = NULL;
    return 0;
}
