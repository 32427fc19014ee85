/*
 * The producer's batch and retry rules (client/batch.c), without threads or
 * sockets: key to bucket mapping, sequence assignment, pipelining, backoff,
 * rewinds, and renumbering after a writer lost acked blocks.
 */
#include "fwtest.h"

#include "batch.h"
#include "block.h"
#include "status.h"
#include "crc32c.h"
#include "error.h"
#include "freeway.h"
#include "proto/common.pb-c.h"

#include <errno.h>
#include <stdlib.h>

#define PID 0x1234567890abcdefULL

enum {
    OK = FWPB__STATUS__STATUS_OK,
    RETRY = FWPB__STATUS__STATUS_RETRY_LATER,
    NOT_OWNER = FWPB__STATUS__STATUS_NOT_OWNER,
    UNKNOWN_CAT = FWPB__STATUS__STATUS_UNKNOWN_CATEGORY,
    OUT_OF_RANGE = FWPB__STATUS__STATUS_BUCKET_OUT_OF_RANGE,
    TOO_LARGE = FWPB__STATUS__STATUS_RECORD_TOO_LARGE,
    BAD_BLOCK = FWPB__STATUS__STATUS_BAD_BLOCK,
    GAP = FWPB__STATUS__STATUS_SEQUENCE_GAP,
    BAD_REQUEST = FWPB__STATUS__STATUS_BAD_REQUEST,
    INTERNAL = FWPB__STATUS__STATUS_INTERNAL,
    SHUTTING = FWPB__STATUS__STATUS_SHUTTING_DOWN,
};

/* A bucket and the blocks built for it; freed at the end of the test. */
typedef struct fixture_s {
    fw_bucket_t bk;
    fw_block_builder_t bld;
    fw_batch_t *all[64];
    int n;
    int delivered;
    int last_status;
} fixture_t;

static void fixture_free(void *arg)
{
    fixture_t *f = arg;
    for (int i = 0; i < f->n; i++) {
        fw_buf_free(&f->all[i]->block);
        free(f->all[i]->cbs);
        free(f->all[i]);
    }
    fw_block_builder_free(&f->bld);
    free(f);
}

static fixture_t *fixture(uint32_t bucket)
{
    fixture_t *f = calloc(1, sizeof(*f));
    FWT_ASSERT(f != NULL);
    fw_bucket_init(&f->bk, NULL, bucket);
    f->bk.probing = 0; /* most tests pipeline from the start; probing has its own test */
    fw_block_builder_init(&f->bld, 0);
    fwt_defer(fixture_free, f);
    return f;
}

static void on_delivery(const fw_delivery_t *d, void *arg)
{
    fixture_t *f = arg;
    f->delivered++;
    f->last_status = d->status;
}

/* Builds a block of `records` records tagged with its index and queues it. */
static fw_batch_t *build(fixture_t *f, int records)
{
    fw_batch_t *b = calloc(1, sizeof(*b));
    FWT_ASSERT(b != NULL && f->n < 64);
    f->all[f->n++] = b;
    b->bucket = &f->bk;
    b->bld = &f->bld;
    b->codec = FW_CODEC_LZ4;
    b->first_ms = 1000 + f->n;
    for (int i = 0; i < records; i++) {
        char v[64];
        int len = snprintf(v, sizeof(v), "block %d record %d", f->n, i);
        FWT_ASSERT_OK(fw_batch_add(b, 1700000000000 + i, "k", 1, 1, v, (size_t)len, on_delivery, f,
                                   (size_t)len + FW_RECORD_OVERHEAD));
    }
    fw_buf_t spare = FW_BUF_INIT;
    FWT_ASSERT_OK(fw_batch_build(b, PID, &spare));
    fw_buf_free(&spare);
    b->bld = NULL;
    return b;
}

static uint64_t header_seq(const fw_batch_t *b)
{
    fw_block_header_t h;
    FWT_ASSERT_OK(fw_block_verify(b->block.data, b->block.len, &h));
    FWT_ASSERT_UINT_EQ(h.producer_id, PID);
    return h.sequence;
}

/* Sends every block the bucket offers; returns how many. */
static int send_all(fixture_t *f)
{
    int n = 0;
    fw_batch_t *b;
    while ((b = fw_bucket_next_to_send(&f->bk)) != NULL) {
        fw_bucket_sent(&f->bk, b, f);
        n++;
    }
    return n;
}

static fw_verdict_t answer(fixture_t *f, fw_batch_t *b, int status, int64_t now)
{
    fw_verdict_t v;
    fw_bucket_on_result(&f->bk, b, status, 0, 0, now, 7, &v);
    return v;
}

static fw_verdict_t gap(fixture_t *f, fw_batch_t *b, uint64_t expected, int64_t now)
{
    fw_verdict_t v;
    fw_bucket_on_result(&f->bk, b, GAP, 1, expected, now, 7, &v);
    return v;
}

/* ---- key to bucket ------------------------------------------------------------------------ */

/* Keys that differ in a few bits spread over every bucket (plain crc32c % 4 used two of four). */
FWT_TEST(similar_keys_spread_over_every_bucket)
{
    for (uint32_t buckets = 2; buckets <= 64; buckets *= 2) {
        uint32_t count[64] = {0};
        uint32_t keys = buckets * 1000;
        for (uint32_t i = 0; i < keys; i++) {
            char key[16];
            int n = snprintf(key, sizeof(key), "k%03u", i);
            count[fw_key_bucket(key, (size_t)n, buckets)]++;
        }
        for (uint32_t b = 0; b < buckets; b++)
            if (count[b] < 850 || count[b] > 1150)
                FWT_FAIL("%u keys over %u buckets: bucket %u has %u", keys, buckets, b, count[b]);
    }
}

FWT_TEST(key_bucket_is_mixed_crc32c_mod_buckets)
{
    /* Pinned values: changing them moves every keyed record to another bucket. */
    FWT_ASSERT_UINT_EQ(fw_crc32c(0, "123456789", 9), 0xe3069283u);
    FWT_ASSERT_UINT_EQ(fw_key_bucket("123456789", 9, 1000), 0xac7081ccu % 1000);
    FWT_ASSERT_UINT_EQ(fw_key_bucket("123456789", 9, 1000), 412);
    FWT_ASSERT_UINT_EQ(fw_key_bucket("", 0, 7), 0); /* the empty key is a key: crc 0, mixed 0 */
    FWT_ASSERT_UINT_EQ(fw_key_bucket("user-42", 7, 1), 0);
    /* Stable across calls and independent of anything but the key and the count. */
    for (int i = 0; i < 1000; i++) {
        char key[32];
        int len = snprintf(key, sizeof(key), "key-%d", i);
        uint32_t b = fw_key_bucket(key, (size_t)len, 16);
        FWT_ASSERT(b < 16);
        FWT_ASSERT_UINT_EQ(b, fw_key_bucket(key, (size_t)len, 16));
        /* Doubling the buckets moves a key from b to b or b + 16, never elsewhere. */
        FWT_ASSERT_UINT_EQ(fw_key_bucket(key, (size_t)len, 32) % 16, b);
    }
}

/* ---- building ------------------------------------------------------------------------------- */

FWT_TEST(sequences_start_at_one_per_bucket)
{
    fixture_t *f = fixture(3), *g = fixture(4);
    fw_batch_t *a1 = build(f, 3), *a2 = build(f, 1), *b1 = build(g, 2), *a3 = build(f, 5);
    FWT_ASSERT_UINT_EQ(a1->seq, 1);
    FWT_ASSERT_UINT_EQ(a2->seq, 2);
    FWT_ASSERT_UINT_EQ(a3->seq, 3);
    FWT_ASSERT_UINT_EQ(b1->seq, 1);
    FWT_ASSERT_UINT_EQ(header_seq(a3), 3);
    FWT_ASSERT_UINT_EQ(f->bk.next_seq, 4);
    FWT_ASSERT_UINT_EQ(f->bk.nqueued, 3);
    FWT_ASSERT(f->bk.head == a1 && f->bk.tail == a3);

    /* The block holds the records in order. */
    fw_buf_t scratch = FW_BUF_INIT;
    fw_block_header_t h;
    fw_record_iter_t it;
    FWT_ASSERT_OK(fw_block_decode(a3->block.data, a3->block.len, 0, &scratch, &h, &it));
    FWT_ASSERT_UINT_EQ(h.record_count, 5);
    fw_record_t rec;
    for (int i = 0; i < 5; i++) {
        FWT_ASSERT(fw_record_next(&it, &rec));
        char want[64];
        int len = snprintf(want, sizeof(want), "block 3 record %d", i);
        FWT_ASSERT_UINT_EQ(rec.value_len, (size_t)len);
        FWT_ASSERT_MEM_EQ(rec.value, want, (size_t)len);
    }
    fw_buf_free(&scratch);
    FWT_ASSERT_UINT_EQ(a3->ncbs, 5);
    FWT_ASSERT_UINT_EQ(a3->rec_bytes, 5 * (1 + strlen("block 3 record 0")));
}

FWT_TEST(failed_add_leaves_batch_unchanged)
{
    fixture_t *f = fixture(0);
    fw_block_builder_t small;
    fw_block_builder_init(&small, 10);
    fw_batch_t b = {0};
    b.bld = &small;
    FWT_ASSERT_OK(fw_batch_add(&b, 1, NULL, 0, 0, "0123456789", 10, on_delivery, f, 42));
    FWT_ASSERT_INT_EQ(fw_batch_add(&b, 1, "k", 1, 1, "0123456789", 10, on_delivery, f, 43),
                      FW_ERECORD_TOO_LARGE);
    FWT_ASSERT_UINT_EQ(b.ncbs, 1);
    FWT_ASSERT_UINT_EQ(b.cost, 42);
    FWT_ASSERT_UINT_EQ(fw_block_builder_count(&small), 1);
    fw_delivery_t d = {.status = 0, .message = "ok"};
    fw_batch_deliver(&b, &d);
    FWT_ASSERT_INT_EQ(f->delivered, 1);
    FWT_ASSERT_UINT_EQ(b.ncbs, 0);
    free(b.cbs);
    fw_block_builder_free(&small);
}

/* ---- pipelining and acks --------------------------------------------------------------------- */

FWT_TEST(pipelined_blocks_ack_in_any_order)
{
    fixture_t *f = fixture(0);
    fw_batch_t *b1 = build(f, 1), *b2 = build(f, 1), *b3 = build(f, 1);
    FWT_ASSERT_INT_EQ(send_all(f), 3);
    FWT_ASSERT_UINT_EQ(f->bk.inflight, 3);
    FWT_ASSERT(fw_bucket_next_to_send(&f->bk) == NULL);
    /* A block built while others fly is next to send. */
    fw_batch_t *b4 = build(f, 1);
    FWT_ASSERT(fw_bucket_next_to_send(&f->bk) == b4);

    fw_verdict_t v = answer(f, b2, OK, 0);
    FWT_ASSERT_INT_EQ(v.kind, FW_VERDICT_ACKED);
    FWT_ASSERT(f->bk.head == b1);
    v = answer(f, b1, OK, 0);
    FWT_ASSERT_INT_EQ(v.kind, FW_VERDICT_ACKED);
    v = answer(f, b3, OK, 0);
    FWT_ASSERT(f->bk.head == b4);
    FWT_ASSERT_UINT_EQ(f->bk.nqueued, 1);
    FWT_ASSERT_UINT_EQ(f->bk.inflight, 0);
    FWT_ASSERT_UINT_EQ(f->bk.acked_max, 3);
    FWT_ASSERT_INT_EQ(f->bk.state, FW_BUCKET_SENDING);
}

FWT_TEST(probes_with_one_block_until_an_ack)
{
    fixture_t *f = fixture(0);
    f->bk.probing = 1;
    fw_batch_t *b1 = build(f, 1), *b2 = build(f, 1), *b3 = build(f, 1);
    FWT_ASSERT_INT_EQ(send_all(f), 1); /* the probe */
    fw_verdict_t v = answer(f, b1, RETRY, 0);
    FWT_ASSERT_INT_EQ(v.kind, FW_VERDICT_RETRY);
    fw_resume_t r;
    fw_bucket_resume(&f->bk, &r);
    FWT_ASSERT_INT_EQ(send_all(f), 1); /* probing again after the rewind */
    answer(f, b1, OK, 0);
    FWT_ASSERT(!f->bk.probing);
    FWT_ASSERT_INT_EQ(send_all(f), 2); /* then pipelining */
    answer(f, b2, OK, 0);
    answer(f, b3, OK, 0);
    /* A rewind starts a new probe. */
    fw_batch_t *b4 = build(f, 1), *b5 = build(f, 1);
    (void)b5;
    FWT_ASSERT_INT_EQ(send_all(f), 2);
    fw_verdict_t v2;
    fw_bucket_on_lost(&f->bk, b4, 0, 0, &v2);
    fw_bucket_on_lost(&f->bk, b5, 0, 0, &v2);
    fw_bucket_resume(&f->bk, &r);
    FWT_ASSERT_INT_EQ(send_all(f), 1);
}

/* ---- rewinds ------------------------------------------------------------------------------------
 */

FWT_TEST(retry_later_rewinds_after_backoff_from_first_unacked)
{
    fixture_t *f = fixture(0);
    fw_batch_t *b1 = build(f, 1), *b2 = build(f, 1), *b3 = build(f, 1), *b4 = build(f, 1);
    send_all(f);
    /* b2 is refused; b3 arrived behind it and was told about the gap; b1 and b4 are in flight. */
    fw_verdict_t v = answer(f, b2, RETRY, 100);
    FWT_ASSERT_INT_EQ(v.kind, FW_VERDICT_RETRY);
    FWT_ASSERT(v.backoff_started);
    FWT_ASSERT_INT_EQ(f->bk.state, FW_BUCKET_BACKOFF);
    int64_t at = f->bk.retry_at;
    FWT_ASSERT_INT_OP(at, >=, 100 + FW_BACKOFF_MIN_MS / 2);
    FWT_ASSERT_INT_OP(at, <=, 100 + FW_BACKOFF_MIN_MS);
    FWT_ASSERT(fw_bucket_next_to_send(&f->bk) == NULL); /* nothing goes out while backing off */

    v = gap(f, b3, 2, 101);
    FWT_ASSERT_INT_EQ(v.kind, FW_VERDICT_RETRY);
    FWT_ASSERT(!v.backoff_started); /* one backoff per round */
    FWT_ASSERT_INT_EQ(f->bk.retry_at, at);

    /* An ack that arrives meanwhile is honoured. */
    v = answer(f, b1, OK, 102);
    FWT_ASSERT_INT_EQ(v.kind, FW_VERDICT_ACKED);

    /* Time is up, but b4's try is still in flight: wait for it. */
    FWT_ASSERT(!fw_bucket_resume_due(&f->bk, at + 5));
    v = answer(f, b4, OK, at + 6); /* acked out of order; kept acked */
    FWT_ASSERT_INT_EQ(v.kind, FW_VERDICT_ACKED);
    FWT_ASSERT(fw_bucket_resume_due(&f->bk, at + 6));
    fw_resume_t r;
    fw_bucket_resume(&f->bk, &r);
    FWT_ASSERT_UINT_EQ(r.renumbered, 0); /* expected 2 == first unacked: a plain resend */
    FWT_ASSERT_INT_EQ(f->bk.state, FW_BUCKET_SENDING);
    FWT_ASSERT(f->bk.probing);
    f->bk.probing = 0;

    /* Resent in order from the first unacked: b2, b3. Sequences unchanged. */
    FWT_ASSERT(fw_bucket_next_to_send(&f->bk) == b2);
    fw_bucket_sent(&f->bk, b2, f);
    FWT_ASSERT(fw_bucket_next_to_send(&f->bk) == b3);
    fw_bucket_sent(&f->bk, b3, f);
    FWT_ASSERT(fw_bucket_next_to_send(&f->bk) == NULL);
    FWT_ASSERT_UINT_EQ(b2->tries, 2);
    FWT_ASSERT_UINT_EQ(header_seq(b2), 2);
    FWT_ASSERT_UINT_EQ(header_seq(b3), 3);
    answer(f, b2, OK, at + 10);
    answer(f, b3, OK, at + 10);
    FWT_ASSERT(f->bk.head == NULL);
    FWT_ASSERT_UINT_EQ(f->bk.backoff_ms, 0); /* reset by success */
}

FWT_TEST(backoff_doubles_to_a_cap_with_jitter)
{
    fixture_t *f = fixture(0);
    fw_batch_t *b = build(f, 1);
    int64_t now = 0;
    uint32_t expect = FW_BACKOFF_MIN_MS;
    for (int round = 0; round < 12; round++) {
        fw_bucket_sent(&f->bk, b, f);
        fw_verdict_t v;
        uint32_t rnd = (uint32_t)fwt_rand();
        fw_bucket_on_result(&f->bk, b, round % 2 ? INTERNAL : RETRY, 0, 0, now, rnd, &v);
        FWT_ASSERT(v.backoff_started);
        int64_t delay = f->bk.retry_at - now;
        FWT_ASSERT_INT_OP(delay, >=, expect / 2);
        FWT_ASSERT_INT_OP(delay, <=, expect);
        expect = expect * 2 > FW_BACKOFF_MAX_MS ? FW_BACKOFF_MAX_MS : expect * 2;
        now = f->bk.retry_at;
        FWT_ASSERT(fw_bucket_resume_due(&f->bk, now));
        fw_resume_t r;
        fw_bucket_resume(&f->bk, &r);
    }
    FWT_ASSERT_UINT_EQ(f->bk.backoff_ms, FW_BACKOFF_MAX_MS);
}

FWT_TEST(connection_loss_rewinds_and_asks_for_metadata)
{
    fixture_t *f = fixture(0);
    fw_batch_t *b1 = build(f, 1), *b2 = build(f, 1);
    send_all(f);
    fw_verdict_t v;
    fw_bucket_on_lost(&f->bk, b1, 50, 0, &v);
    FWT_ASSERT_INT_EQ(v.kind, FW_VERDICT_RETRY);
    FWT_ASSERT(v.refresh_metadata && v.backoff_started);
    fw_bucket_on_lost(&f->bk, b2, 50, 0, &v);
    FWT_ASSERT(!v.backoff_started);
    FWT_ASSERT_UINT_EQ(f->bk.inflight, 0);
    FWT_ASSERT(b1->req == NULL && b2->req == NULL);
    FWT_ASSERT(fw_bucket_resume_due(&f->bk, f->bk.retry_at));
    fw_resume_t r;
    fw_bucket_resume(&f->bk, &r);
    FWT_ASSERT_INT_EQ(send_all(f), 1); /* a probe first */
}

FWT_TEST(statuses_map_to_verdicts)
{
    struct {
        int status;
        fw_verdict_kind_t kind;
        int code;
        int refresh;
        int draining;
    } cases[] = {
        {RETRY, FW_VERDICT_RETRY, 0, 0, 0},
        {INTERNAL, FW_VERDICT_RETRY, 0, 0, 0},
        {NOT_OWNER, FW_VERDICT_RETRY, 0, 1, 0},
        {SHUTTING, FW_VERDICT_RETRY, 0, 1, 1},
        {GAP, FW_VERDICT_RETRY, 0, 0, 0},
        {TOO_LARGE, FW_VERDICT_FAILED, FW_ERECORD_TOO_LARGE, 0, 0},
        {BAD_BLOCK, FW_VERDICT_FAILED, FW_EBLOCK_CORRUPT, 0, 0},
        {BAD_REQUEST, FW_VERDICT_FAILED, FW_EPROTOCOL, 0, 0},
        {99, FW_VERDICT_FAILED, FW_EPROTOCOL, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fixture_t *f = fixture(0);
        fw_batch_t *b = build(f, 2);
        send_all(f);
        fw_verdict_t v = answer(f, b, cases[i].status, 0);
        FWT_ASSERT_INT_EQ(v.kind, cases[i].kind);
        FWT_ASSERT_INT_EQ(v.refresh_metadata, cases[i].refresh);
        FWT_ASSERT_INT_EQ(v.writer_draining, cases[i].draining);
        if (cases[i].kind == FW_VERDICT_FAILED) {
            FWT_ASSERT_INT_EQ(v.status, cases[i].code);
            FWT_ASSERT(f->bk.head == NULL); /* unlinked: the caller fails its records */
            FWT_ASSERT_INT_EQ(f->bk.state, FW_BUCKET_SENDING);
        } else {
            FWT_ASSERT(f->bk.head == b);
            FWT_ASSERT_INT_EQ(f->bk.state, FW_BUCKET_BACKOFF);
        }
    }
    FWT_ASSERT_STR_EQ(fw_status_name(RETRY), "RETRY_LATER");
    FWT_ASSERT_STR_EQ(fw_status_name(GAP), "SEQUENCE_GAP");
}

FWT_TEST(unknown_category_retries_once_after_metadata_then_fails)
{
    fixture_t *f = fixture(0);
    fw_batch_t *b = build(f, 1);
    send_all(f);
    fw_verdict_t v = answer(f, b, UNKNOWN_CAT, 0);
    FWT_ASSERT_INT_EQ(v.kind, FW_VERDICT_RETRY);
    FWT_ASSERT(v.refresh_metadata);
    fw_resume_t r;
    FWT_ASSERT(fw_bucket_resume_due(&f->bk, f->bk.retry_at));
    fw_bucket_resume(&f->bk, &r);
    send_all(f);
    v = answer(f, b, OUT_OF_RANGE, f->bk.retry_at);
    FWT_ASSERT_INT_EQ(v.kind, FW_VERDICT_FAILED);
    FWT_ASSERT_INT_EQ(v.status, FW_EBUCKET_RANGE);
    FWT_ASSERT(f->bk.head == NULL);
}

/* ---- gaps and renumbering
 * ------------------------------------------------------------------------- */

FWT_TEST(gap_at_or_above_first_unacked_resends_without_renumbering)
{
    fixture_t *f = fixture(0);
    fw_batch_t *b1 = build(f, 1), *b2 = build(f, 1), *b3 = build(f, 1);
    send_all(f);
    answer(f, b1, OK, 0);
    /* b2 was lost on the way; the writer expects 2 when b3 arrives. */
    gap(f, b3, 2, 0);
    answer(f, b2, RETRY, 0);
    fw_resume_t r;
    FWT_ASSERT(fw_bucket_resume_due(&f->bk, f->bk.retry_at));
    fw_bucket_resume(&f->bk, &r);
    FWT_ASSERT_UINT_EQ(r.renumbered, 0);
    FWT_ASSERT_UINT_EQ(header_seq(b2), 2);
    FWT_ASSERT_UINT_EQ(header_seq(b3), 3);
    FWT_ASSERT_UINT_EQ(f->bk.next_seq, 4);
}

FWT_TEST(gap_below_first_unacked_renumbers_unacked_blocks)
{
    fixture_t *f = fixture(0);
    fw_batch_t *b[6];
    for (int i = 0; i < 6; i++)
        b[i] = build(f, 2);
    send_all(f);
    /* Blocks 1..3 acked at a weak ack level; the writer crashed and lost 2 and 3. */
    answer(f, b[0], OK, 0);
    answer(f, b[1], OK, 0);
    answer(f, b[2], OK, 0);
    gap(f, b[3], 2, 0);
    gap(f, b[4], 2, 0);
    FWT_ASSERT(!fw_bucket_resume_due(&f->bk, f->bk.retry_at)); /* b[5] still in flight */
    gap(f, b[5], 2, 0);
    FWT_ASSERT(fw_bucket_resume_due(&f->bk, f->bk.retry_at));
    fw_resume_t r;
    fw_bucket_resume(&f->bk, &r);
    FWT_ASSERT_UINT_EQ(r.renumbered, 3);
    FWT_ASSERT_UINT_EQ(r.expected, 2);
    FWT_ASSERT_UINT_EQ(r.first_unacked_before, 4);
    FWT_ASSERT(r.lost_acked);
    for (int i = 3; i < 6; i++) {
        FWT_ASSERT_UINT_EQ(b[i]->seq, (uint64_t)i - 1);
        FWT_ASSERT_UINT_EQ(header_seq(b[i]), (uint64_t)i - 1);
    }
    FWT_ASSERT_UINT_EQ(f->bk.next_seq, 5);
    /* The next block built continues from there. */
    fw_batch_t *b7 = build(f, 1);
    FWT_ASSERT_UINT_EQ(header_seq(b7), 5);
    FWT_ASSERT_INT_EQ(send_all(f), 1); /* the probe: renumbered block 2 */
    FWT_ASSERT(fw_bucket_next_to_send(&f->bk) == NULL);
}

FWT_TEST(gap_after_a_failed_block_renumbers_without_loss)
{
    fixture_t *f = fixture(0);
    fw_batch_t *b1 = build(f, 1), *b2 = build(f, 1), *b3 = build(f, 1);
    send_all(f);
    answer(f, b1, OK, 0);
    fw_verdict_t v = answer(f, b2, BAD_BLOCK, 0);
    FWT_ASSERT_INT_EQ(v.kind, FW_VERDICT_FAILED);
    gap(f, b3, 2, 0);
    fw_resume_t r;
    FWT_ASSERT(fw_bucket_resume_due(&f->bk, f->bk.retry_at));
    fw_bucket_resume(&f->bk, &r);
    FWT_ASSERT_UINT_EQ(r.renumbered, 1);
    FWT_ASSERT(!r.lost_acked); /* seq 2 failed, it was never acked */
    FWT_ASSERT_UINT_EQ(header_seq(b3), 2);
}

FWT_TEST(ok_after_gap_cancels_renumbering)
{
    fixture_t *f = fixture(0);
    fw_batch_t *b1 = build(f, 1), *b2 = build(f, 1), *b3 = build(f, 1);
    send_all(f);
    answer(f, b1, OK, 0);
    /* A stale gap answer (say, from a writer that lost ownership) ... */
    gap(f, b3, 1, 0);
    /* ... then the writer stores b2: its state has moved on. */
    answer(f, b2, OK, 0);
    fw_resume_t r;
    FWT_ASSERT(fw_bucket_resume_due(&f->bk, f->bk.retry_at));
    fw_bucket_resume(&f->bk, &r);
    FWT_ASSERT_UINT_EQ(r.renumbered, 0);
    FWT_ASSERT_UINT_EQ(header_seq(b3), 3);
}

FWT_TEST(gap_with_nothing_left_resets_next_sequence)
{
    fixture_t *f = fixture(0);
    fw_batch_t *b1 = build(f, 1), *b2 = build(f, 1);
    send_all(f);
    answer(f, b1, OK, 0);
    gap(f, b2, 1, 0);
    /* b2 then times out while backing off. */
    FWT_ASSERT(fw_bucket_take_expired(&f->bk, 1000000, 10) == b2);
    fw_resume_t r;
    FWT_ASSERT(fw_bucket_resume_due(&f->bk, f->bk.retry_at));
    fw_bucket_resume(&f->bk, &r);
    FWT_ASSERT_UINT_EQ(f->bk.next_seq, 1);
    fw_batch_t *b3 = build(f, 1);
    FWT_ASSERT_UINT_EQ(header_seq(b3), 1);
}

/* ---- timeouts ----------------------------------------------------------------------------------
 */

FWT_TEST(expiry_skips_blocks_in_flight)
{
    fixture_t *f = fixture(0);
    fw_batch_t *b1 = build(f, 1), *b2 = build(f, 1), *b3 = build(f, 1);
    fw_bucket_sent(&f->bk, b1, f);
    /* b1 is in flight: only its answer or its connection's end resolves it. */
    FWT_ASSERT(fw_bucket_take_expired(&f->bk, b3->first_ms + 5, 5) == b2);
    FWT_ASSERT(fw_bucket_take_expired(&f->bk, b3->first_ms + 5, 5) == b3);
    FWT_ASSERT(fw_bucket_take_expired(&f->bk, b3->first_ms + 5, 5) == NULL);
    FWT_ASSERT(fw_bucket_take_head(&f->bk) == NULL);
    answer(f, b1, RETRY, 0);
    FWT_ASSERT(fw_bucket_take_head(&f->bk) == b1);
    FWT_ASSERT_UINT_EQ(f->bk.nqueued, 0);
    FWT_ASSERT(f->bk.head == NULL && f->bk.tail == NULL);
}
