/*
 * Bad input at ptail: a malformed SUBSCRIBE, an unknown category, buckets
 * out of range and forged checkpoint tokens (a bad version, a bad CRC, a
 * bucket out of range, an offset off a block boundary, a record index past
 * its block) each get an ERROR frame that says what is wrong, and only
 * their own connection closes. Then hundreds of seeded mutations of a valid
 * SUBSCRIBE: each is answered or closed, ptail stays up, and a consumer
 * streaming all along gets every record, in order, exactly once.
 */
#include "fwt_cal.h"
#include "fwt_root.h"
#include "fwt_wire.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "block.h"
#include "checkpoint.h"
#include "crc32c.h"
#include "error.h"
#include "proto/common.pb-c.h"
#include "proto/stream.pb-c.h"
#include "segment.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LINES 4000

static void send_subscribe(int fd, Fwpb__SubscribeRequest *req)
{
    fw_buf_t frame = FW_BUF_INIT;
    FWT_ASSERT_OK(
        fw_frame_append(&frame, FW_FRAME_SUBSCRIBE, &req->base, NULL, 0, FW_FRAME_MAX_LIMIT));
    fwt_wire_write(fd, frame.data, frame.len);
    fw_buf_free(&frame);
}

/*
 * The connection must answer with an ERROR frame of status `status` whose
 * message contains `words`, and then close.
 */
static void expect_refusal(int fd, int status, const char *words, const char *what)
{
    fw_buf_t store = FW_BUF_INIT;
    fw_frame_t f;
    int rc = fwt_wire_read(fd, 10000, &store, &f);
    if (rc != 1)
        FWT_FAIL("%s: no answer (%d)", what, rc);
    if (f.type != FW_FRAME_ERROR)
        FWT_FAIL("%s: answered with a frame of type %u, not ERROR", what, f.type);
    Fwpb__ErrorReply *e = fwpb__error_reply__unpack(NULL, f.meta_len, f.meta);
    FWT_ASSERT(e != NULL);
    if ((int)e->status != status || strstr(e->message, words) == NULL)
        FWT_FAIL("%s: status %d \"%s\", want status %d saying \"%s\"", what, (int)e->status,
                 e->message, status, words);
    printf("%-40s -> %s\n", what, e->message);
    fwpb__error_reply__free_unpacked(e, NULL);
    rc = fwt_wire_read(fd, 10000, &store, &f);
    if (rc != 0)
        FWT_FAIL("%s: the connection stayed open after the ERROR (%d)", what, rc);
    fw_buf_free(&store);
    close(fd);
}

static void refused_subscribe(const char *address, Fwpb__SubscribeRequest *req, int status,
                              const char *words, const char *what)
{
    int fd = fwt_wire_connect(address);
    send_subscribe(fd, req);
    expect_refusal(fd, status, words, what);
}

/* A token with a valid CRC around arbitrary bytes (version, category, positions). */
static void forge_token(fw_buf_t *out, uint8_t version, const uint8_t *body, size_t n)
{
    fw_buf_reset(out);
    uint8_t head[] = {'F', 'C', version, 3, 'w', 'e', 'b'};
    FWT_ASSERT_OK(fw_buf_append(out, head, sizeof(head)));
    FWT_ASSERT_OK(fw_buf_append(out, body, n));
    uint32_t crc = fw_crc32c(0, out->data, out->len);
    uint8_t c[4] = {(uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16), (uint8_t)(crc >> 24)};
    FWT_ASSERT_OK(fw_buf_append(out, c, 4));
}

/* A consumer streaming the whole category with checkpoints every few records. */
typedef struct bystander_s {
    int fd;
    fwt_wire_reader_t in;
    fw_buf_t scratch;
    uint64_t records;
    uint8_t seen[2 * LINES];
    fw_position_t last_block[4]; /* a real block position per bucket, for forging */
    uint32_t last_count[4];
} bystander_t;

static void bystander_read(bystander_t *b, uint64_t until)
{
    fw_frame_t f;
    while (b->records < until) {
        int rc = fwt_wire_next(b->fd, 10000, &b->in, &f);
        if (rc != 1)
            FWT_FAIL("the bystander's stream ended (%d) after %llu records", rc,
                     (unsigned long long)b->records);
        Fwpb__StreamMessage *m = fwpb__stream_message__unpack(NULL, f.meta_len, f.meta);
        FWT_ASSERT(m != NULL);
        if (m->kind_case == FWPB__STREAM_MESSAGE__KIND_RECORDS) {
            fw_block_header_t h;
            fw_record_iter_t it;
            FWT_ASSERT_OK(
                fw_block_decode(f.body, f.body_len, FW_RECORD_MAX_HARD, &b->scratch, &h, &it));
            fw_record_t rec;
            uint32_t i = 0;
            while (fw_record_next(&it, &rec) == 1) {
                if (i++ < m->records->first_record)
                    continue;
                char v[16];
                memcpy(v, rec.value, 9);
                v[9] = '\0';
                unsigned long n = strtoul(v, NULL, 10);
                FWT_ASSERT(n < 2 * LINES);
                if (b->seen[n]++)
                    FWT_FAIL("the bystander got line %lu twice", n);
                b->records++;
            }
            uint32_t bk = m->records->bucket;
            FWT_ASSERT(bk < 4);
            b->last_block[bk] = (fw_position_t){bk, m->records->segment_id, m->records->offset, 0};
            b->last_count[bk] = h.record_count;
        } else {
            FWT_ASSERT(m->kind_case != FWPB__STREAM_MESSAGE__KIND_GAP);
        }
        fwpb__stream_message__free_unpacked(m, NULL);
    }
}

FWT_TEST(bad_subscriptions_get_clear_errors_and_close_only_their_connection)
{
    fwt_zk_t zk;
    fwt_zk_start(&zk);
    char spec[128], root[FWT_PATH_MAX];
    snprintf(spec, sizeof(spec), "%s/freeway", zk.connect);
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir_mem());
    fwt_category_create(spec, "web", 4, NULL);
    fwt_cal_t cal, pt;
    fwt_cal_start(&cal, "w1", spec, root, NULL);
    fwt_cal_wait_owns(&cal, 4, "the writer to own every bucket");
    fwt_ptail_start(&pt, "p1", spec, root, NULL);
    fwt_send_lines(spec, "web", 0, LINES, 8, NULL);

    bystander_t *by = calloc(1, sizeof(*by));
    FWT_ASSERT(by != NULL);
    by->fd = fwt_wire_connect(pt.address);
    Fwpb__SubscribeRequest req = FWPB__SUBSCRIBE_REQUEST__INIT;
    req.category = "web";
    send_subscribe(by->fd, &req);
    bystander_read(by, LINES / 2);

    /* Malformed requests. */
    int fd = fwt_wire_connect(pt.address);
    uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0x0f, 'x'};
    uint8_t hdr[FW_FRAME_HEADER_SIZE];
    FWT_ASSERT_OK(fw_frame_header_put(hdr, FW_FRAME_SUBSCRIBE, sizeof(junk), 0, 1 << 20));
    fwt_wire_write(fd, hdr, sizeof(hdr));
    fwt_wire_write(fd, junk, sizeof(junk));
    expect_refusal(fd, FWPB__STATUS__STATUS_BAD_REQUEST, "malformed", "a SubscribeRequest of junk");

    fd = fwt_wire_connect(pt.address);
    Fwpb__Credit credit = FWPB__CREDIT__INIT;
    fw_buf_t frame = FW_BUF_INIT;
    FWT_ASSERT_OK(fw_frame_append(&frame, FW_FRAME_CREDIT, &credit.base, NULL, 0, 1 << 20));
    fwt_wire_write(fd, frame.data, frame.len);
    expect_refusal(fd, FWPB__STATUS__STATUS_BAD_REQUEST, "before SUBSCRIBE",
                   "CREDIT before SUBSCRIBE");

    Fwpb__SubscribeRequest bad = FWPB__SUBSCRIBE_REQUEST__INIT;
    bad.category = "nosuch";
    refused_subscribe(pt.address, &bad, FWPB__STATUS__STATUS_UNKNOWN_CATEGORY, "no category",
                      "an unknown category");
    bad.category = "../web";
    refused_subscribe(pt.address, &bad, FWPB__STATUS__STATUS_UNKNOWN_CATEGORY,
                      "not a category name", "a path for a category");
    bad.category = "web";
    uint32_t far[] = {1, 70000};
    bad.buckets = far;
    bad.n_buckets = 2;
    refused_subscribe(pt.address, &bad, FWPB__STATUS__STATUS_BUCKET_OUT_OF_RANGE, "70000",
                      "bucket 70000");
    uint32_t twice[] = {2, 2};
    bad.buckets = twice;
    refused_subscribe(pt.address, &bad, FWPB__STATUS__STATUS_BAD_REQUEST, "twice",
                      "a bucket named twice");
    bad.buckets = NULL;
    bad.n_buckets = 0;
    bad.start = 9;
    refused_subscribe(pt.address, &bad, FWPB__STATUS__STATUS_BAD_REQUEST, "unknown start",
                      "an unknown start kind");
    bad.start = FWPB__START_KIND__START_CHECKPOINT;
    refused_subscribe(pt.address, &bad, FWPB__STATUS__STATUS_BAD_TOKEN, "without a checkpoint",
                      "START_CHECKPOINT without a token");

    /* Forged tokens. */
    fw_buf_t token = FW_BUF_INIT;
    bad.has_checkpoint = 1;
    const uint8_t one_pos[] = {1, 0, 0, 0, 0}; /* bucket 0, nothing consumed */
    forge_token(&token, 2, one_pos, sizeof(one_pos));
    bad.checkpoint.data = token.data;
    bad.checkpoint.len = token.len;
    refused_subscribe(pt.address, &bad, FWPB__STATUS__STATUS_BAD_TOKEN, "version",
                      "a token of version 2");
    forge_token(&token, 1, one_pos, sizeof(one_pos));
    token.data[token.len - 1] ^= 0x40;
    bad.checkpoint.data = token.data;
    refused_subscribe(pt.address, &bad, FWPB__STATUS__STATUS_BAD_TOKEN, "not valid",
                      "a token with a bad CRC");
    const uint8_t big_bucket[] = {1, 0x80, 0x80, 0x04, 0, 0, 0}; /* bucket 65536 */
    forge_token(&token, 1, big_bucket, sizeof(big_bucket));
    bad.checkpoint.data = token.data;
    bad.checkpoint.len = token.len;
    refused_subscribe(pt.address, &bad, FWPB__STATUS__STATUS_BAD_TOKEN, "not valid",
                      "a token with bucket 65536");

    /* Real places, moved off a block boundary or past a block's records. */
    uint32_t bk = 0;
    while (by->last_block[bk].segment_id == 0)
        bk++;
    fw_position_t pos = by->last_block[bk];
    fw_checkpoint_t cp = {.count = 1, .positions = &pos};
    strcpy(cp.category, "web");
    pos.offset += 1;
    fw_buf_reset(&token);
    FWT_ASSERT_OK(fw_checkpoint_encode(&cp, &token));
    bad.checkpoint.data = token.data;
    bad.checkpoint.len = token.len;
    refused_subscribe(pt.address, &bad, FWPB__STATUS__STATUS_BAD_TOKEN, "not a block boundary",
                      "an offset inside a block");
    pos.offset -= 1;
    pos.record_index = by->last_count[bk];
    fw_buf_reset(&token);
    FWT_ASSERT_OK(fw_checkpoint_encode(&cp, &token));
    bad.checkpoint.data = token.data;
    bad.checkpoint.len = token.len;
    refused_subscribe(pt.address, &bad, FWPB__STATUS__STATUS_BAD_TOKEN, "records, not",
                      "a record index past its block");
    cp.category[0] = 'x';
    pos.record_index = 0;
    fw_buf_reset(&token);
    FWT_ASSERT_OK(fw_checkpoint_encode(&cp, &token));
    bad.checkpoint.data = token.data;
    bad.checkpoint.len = token.len;
    refused_subscribe(pt.address, &bad, FWPB__STATUS__STATUS_BAD_TOKEN, "for category 'xeb'",
                      "another category's token");

    /* The same position, unforged, is accepted. */
    strcpy(cp.category, "web");
    fw_buf_reset(&token);
    FWT_ASSERT_OK(fw_checkpoint_encode(&cp, &token));
    bad.checkpoint.data = token.data;
    bad.checkpoint.len = token.len;
    fd = fwt_wire_connect(pt.address);
    send_subscribe(fd, &bad);
    fw_buf_t store = FW_BUF_INIT;
    fw_frame_t f;
    FWT_ASSERT_INT_EQ(fwt_wire_read(fd, 10000, &store, &f), 1);
    FWT_ASSERT_INT_EQ(f.type, FW_FRAME_STREAM);
    close(fd);

    /* Seeded mutations of a valid request: answered or closed, never harmful. */
    Fwpb__SubscribeRequest good = FWPB__SUBSCRIBE_REQUEST__INIT;
    good.category = "web";
    good.start = FWPB__START_KIND__START_CHECKPOINT;
    good.has_checkpoint = 1;
    good.checkpoint.data = token.data;
    good.checkpoint.len = token.len;
    fw_buf_reset(&frame);
    FWT_ASSERT_OK(fw_frame_append(&frame, FW_FRAME_SUBSCRIBE, &good.base, NULL, 0, 1 << 20));
    for (int i = 0; i < 300; i++) {
        uint8_t m[512];
        size_t n = frame.len;
        memcpy(m, frame.data, n);
        int edits = (int)fwt_rand_range(1, 4);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)fwt_rand_range(FW_FRAME_PREFIX_SIZE, n - 1);
            if (fwt_rand() % 2)
                m[at] ^= (uint8_t)(1u << (fwt_rand() % 8));
            else
                m[at] = (uint8_t)fwt_rand();
        }
        if (fwt_rand() % 4 == 0)
            n = (size_t)fwt_rand_range(1, n);
        fd = fwt_wire_connect(pt.address);
        fwt_wire_write(fd, m, n);
        shutdown(fd, SHUT_WR); /* a cut request must not wait forever */
        for (;;) {
            int rc = fwt_wire_read(fd, 10000, &store, &f);
            if (rc == -ETIMEDOUT)
                FWT_FAIL("mutation %d: ptail neither answered nor closed", i);
            if (rc != 1 || f.type == FW_FRAME_ERROR)
                break;
        }
        close(fd);
    }
    fw_buf_free(&store);
    fw_buf_free(&frame);
    fw_buf_free(&token);

    /* The bystander never noticed: the rest of the records, and new ones, arrive once each. */
    fwt_send_lines(spec, "web", LINES, LINES, 8, NULL);
    bystander_read(by, 2 * LINES);
    for (int i = 0; i < 2 * LINES; i++)
        FWT_ASSERT_INT_EQ(by->seen[i], 1);
    FWT_ASSERT(fwt_cal_metric(&pt, "freeway_ptail_subscriptions_refused_total") >= 15);
    close(by->fd);
    fw_buf_free(&by->in.buf);
    fw_buf_free(&by->scratch);
    free(by);
    fwt_cal_stop(&pt);
    fwt_cal_stop(&cal);
    fwt_zk_stop(&zk);
}
