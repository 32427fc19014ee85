/*
 * Guarantee 5 at ptail, on the wire: 100,000 records sent through a real
 * calligraphus into 4 buckets are streamed by a real ptail exactly once, in
 * per-key order, with checkpoints in the stream; a subscription resumed from
 * every one of those checkpoints gets exactly the records delivered after
 * it. The consumer here speaks raw frames (tests/harness/fwt_wire.h), so
 * the test checks ptail alone, not the consumer library.
 */
#include "fwt_cal.h"
#include "fwt_root.h"
#include "fwt_wire.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "block.h"
#include "checkpoint.h"
#include "proto/stream.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N    100000
#define KEYS 16

/* One subscription's stream, as read so far. */
typedef struct stream_s {
    int fd;
    fwt_wire_reader_t in;
    fw_buf_t scratch;
    uint64_t records;
    uint64_t *order;     /* line numbers in delivery order (first stream only) */
    uint32_t *seen;      /* deliveries per line number */
    const uint8_t *want; /* lines this stream may deliver; NULL: any */
    uint64_t dups, unwanted, gaps;
    /* checkpoints: token and how many records came before it */
    fw_buf_t tokens[256];
    uint64_t before[256];
    int ntokens;
} stream_t;

static void subscribe(stream_t *st, const char *address, int start, const fw_buf_t *token)
{
    st->fd = fwt_wire_connect(address);
    Fwpb__SubscribeRequest req = FWPB__SUBSCRIBE_REQUEST__INIT;
    req.category = "web";
    req.start = start;
    if (token != NULL) {
        req.has_checkpoint = 1;
        req.checkpoint.data = token->data;
        req.checkpoint.len = token->len;
    }
    req.has_checkpoint_every_records = 1;
    req.checkpoint_every_records = 1000;
    req.has_initial_credit_bytes = 1;
    req.initial_credit_bytes = 1ull << 40;
    fw_buf_t frame = FW_BUF_INIT;
    FWT_ASSERT_OK(
        fw_frame_append(&frame, FW_FRAME_SUBSCRIBE, &req.base, NULL, 0, FW_FRAME_MAX_LIMIT));
    FWT_ASSERT_OK(fwt_wire_write(st->fd, frame.data, frame.len));
    fw_buf_free(&frame);
}

static void take_records(stream_t *st, const Fwpb__Records *r, const fw_frame_t *f)
{
    fw_block_header_t h;
    fw_record_iter_t it;
    FWT_ASSERT_OK(fw_block_decode(f->body, f->body_len, FW_RECORD_MAX_HARD, &st->scratch, &h, &it));
    fw_record_t rec;
    for (uint32_t i = 0; fw_record_next(&it, &rec) == 1; i++) {
        if (i < r->first_record)
            continue;
        char value[16];
        FWT_ASSERT(rec.value_len >= 9);
        memcpy(value, rec.value, 9);
        value[9] = '\0';
        uint64_t n = strtoull(value, NULL, 10);
        FWT_ASSERT(n < N);
        if (st->seen[n]++ > 0)
            st->dups++;
        if (st->want != NULL && !st->want[n])
            st->unwanted++;
        if (st->order != NULL)
            st->order[st->records] = n;
        st->records++;
    }
}

/* Reads until the stream has delivered `records` records in all. */
static void read_until(stream_t *st, uint64_t records)
{
    fw_frame_t f;
    while (st->records < records) {
        int rc = fwt_wire_next(st->fd, 10000, &st->in, &f);
        if (rc != 1)
            FWT_FAIL("stream ended (%d) after %llu of %llu records", rc,
                     (unsigned long long)st->records, (unsigned long long)records);
        FWT_ASSERT_INT_EQ(f.type, FW_FRAME_STREAM);
        Fwpb__StreamMessage *m = fwpb__stream_message__unpack(NULL, f.meta_len, f.meta);
        FWT_ASSERT(m != NULL);
        switch (m->kind_case) {
        case FWPB__STREAM_MESSAGE__KIND_SUBSCRIBED:
            FWT_ASSERT_UINT_EQ(m->subscribed->n_buckets, 4);
            break;
        case FWPB__STREAM_MESSAGE__KIND_RECORDS:
            take_records(st, m->records, &f);
            break;
        case FWPB__STREAM_MESSAGE__KIND_CHECKPOINT:
            if (st->ntokens < 256) {
                fw_buf_t *t = &st->tokens[st->ntokens];
                FWT_ASSERT_OK(
                    fw_buf_append(t, m->checkpoint->token.data, m->checkpoint->token.len));
                st->before[st->ntokens++] = st->records;
            }
            break;
        case FWPB__STREAM_MESSAGE__KIND_GAP:
            st->gaps++;
            break;
        default:
            FWT_FAIL("unexpected stream message %d", m->kind_case);
        }
        fwpb__stream_message__free_unpacked(m, NULL);
    }
}

static void stream_free(stream_t *st)
{
    close(st->fd);
    fw_buf_free(&st->in.buf);
    fw_buf_free(&st->scratch);
    for (int i = 0; i < st->ntokens; i++)
        fw_buf_free(&st->tokens[i]);
    free(st->order);
    free(st->seen);
}

FWT_TEST(resume_from_every_checkpoint_gets_exactly_the_rest)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[128], root[FWT_PATH_MAX], input[FWT_PATH_MAX], log[FWT_PATH_MAX];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    snprintf(input, sizeof(input), "%s/lines", fwt_tmpdir());
    snprintf(log, sizeof(log), "%s/send.log", fwt_tmpdir());
    /* Small segments, so streams cross many seals. */
    const char *cat_flags[] = {"--roll-bytes", "1M", NULL};
    fwt_category_create(spec, "web", 4, cat_flags);
    fwt_cal_t cal, pt;
    fwt_cal_start(&cal, "w1", spec, root, NULL);
    fwt_cal_wait_owns(&cal, 4, "the writer to own every bucket");
    fwt_ptail_start(&pt, "p1", spec, root, NULL);

    FILE *f = fopen(input, "w");
    FWT_ASSERT(f != NULL);
    fwt_lines_write(f, 0, N, KEYS);
    fclose(f);
    fwt_proc_t send;
    /* Small blocks: checkpoints fall between blocks, so this makes many. */
    const char *send_flags[] = {"--batch-bytes", "16K", NULL};
    fwt_send_spawn(&send, spec, "web", input, log, send_flags);

    /* The first stream follows the segments while they are written. */
    stream_t *first = calloc(1, sizeof(*first));
    first->order = calloc(N, sizeof(*first->order));
    first->seen = calloc(N, sizeof(*first->seen));
    subscribe(first, pt.address, FWPB__START_KIND__START_EARLIEST, NULL);
    read_until(first, N);
    FWT_ASSERT_INT_EQ(fwt_send_wait(&send, 60000), 0);
    FWT_ASSERT_UINT_EQ(first->dups, 0);
    FWT_ASSERT_UINT_EQ(first->gaps, 0);
    /* Checkpoints fall between blocks, so their spacing is at least a block. */
    FWT_ASSERT(first->ntokens >= 50);
    printf("%d checkpoints in a stream of %d records\n", first->ntokens, N);

    /* Every checkpoint: exactly the records delivered after it. */
    uint8_t *want = malloc(N);
    FWT_ASSERT(want != NULL);
    for (int i = 0; i < first->ntokens; i++) {
        memset(want, 0, N);
        for (uint64_t k = first->before[i]; k < N; k++)
            want[first->order[k]] = 1;
        stream_t *st = calloc(1, sizeof(*st));
        st->seen = calloc(N, sizeof(*st->seen));
        st->want = want;
        subscribe(st, pt.address, FWPB__START_KIND__START_CHECKPOINT, &first->tokens[i]);
        read_until(st, N - first->before[i]);
        if (st->dups != 0 || st->unwanted != 0 || st->gaps != 0)
            FWT_FAIL("checkpoint %d (after %llu records): %llu duplicates, %llu records from "
                     "before it, %llu gaps",
                     i, (unsigned long long)first->before[i], (unsigned long long)st->dups,
                     (unsigned long long)st->unwanted, (unsigned long long)st->gaps);
        stream_free(st);
        free(st);
    }
    free(want);
    stream_free(first);
    free(first);
    fwt_cal_stop(&pt);
    fwt_cal_stop(&cal);
    fwt_zk_stop(&zk);
}
