/*
 * Guarantee 7 at the writer: garbage and oversized frames, a block with a
 * bad CRC, an unknown category, a bucket out of range, a record over the
 * category's limit and a sequence gap each get their own precise answer,
 * while a well-behaved client on another connection is served all along.
 * Real ZooKeeper, a real calligraphus process, raw frames on a socket.
 */
#include "fwt_cal.h"
#include "fwt_wire.h"
#include "fwt_zk.h"
#include "fwtest.h"

#include "block.h"
#include "proto/common.pb-c.h"
#include "proto/produce.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static fwt_zk_t zk;
static fwt_cal_t cal;
static char zk_spec[128];

static void setup(void)
{
    fwt_zk_start(&zk);
    snprintf(zk_spec, sizeof(zk_spec), "%s/freeway", zk.connect);
    const char *extra[] = {"--max-record-bytes", "1K", NULL};
    fwt_category_create(zk_spec, "good", 2, extra);
    char root[FWT_PATH_MAX];
    snprintf(root, sizeof(root), "%s/root", fwt_tmpdir());
    const char *flags[] = {"--max-frame", "1M", NULL};
    fwt_cal_start(&cal, "w1", zk_spec, root, flags);
    fwt_cal_wait_owns(&cal, 2, "the writer to own both buckets");
}

/* The bystander: a good block on its own connection is stored. */
static void bystander_sends(int fd, uint64_t *seq)
{
    fw_buf_t block = FW_BUF_INIT;
    ++*seq;
    fwt_wire_block(&block, 777, *seq, 10, 50);
    FWT_ASSERT_INT_EQ(fwt_wire_produce(fd, *seq, "good", 1, block.data, block.len, NULL),
                      FWPB__STATUS__STATUS_OK);
    fw_buf_free(&block);
}

/* Expects an ERROR frame and then the end of the connection. */
static void expect_error_and_close(int fd, int status)
{
    fw_buf_t store = FW_BUF_INIT;
    fw_frame_t f;
    FWT_ASSERT_INT_EQ(fwt_wire_read(fd, 10000, &store, &f), 1);
    FWT_ASSERT_INT_EQ(f.type, FW_FRAME_ERROR);
    Fwpb__ErrorReply *e = fwpb__error_reply__unpack(NULL, f.meta_len, f.meta);
    FWT_ASSERT(e != NULL);
    FWT_ASSERT_INT_EQ(e->status, status);
    FWT_ASSERT(e->message != NULL && e->message[0] != '\0');
    fwpb__error_reply__free_unpacked(e, NULL);
    FWT_ASSERT_INT_EQ(fwt_wire_read(fd, 10000, &store, &f), 0);
    fw_buf_free(&store);
}

FWT_TEST(bad_input_gets_its_own_error_and_costs_others_nothing)
{
    setup();
    int good = fwt_wire_connect(cal.address);
    uint64_t seq = 0;
    bystander_sends(good, &seq);

    /* Garbage: an HTTP request on the produce port. */
    int fd = fwt_wire_connect(cal.address);
    const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    FWT_ASSERT_OK(fwt_wire_write(fd, http, sizeof(http) - 1));
    expect_error_and_close(fd, FWPB__STATUS__STATUS_BAD_REQUEST);
    close(fd);
    bystander_sends(good, &seq);

    /* An oversized frame is refused from its length alone, before any body. */
    fd = fwt_wire_connect(cal.address);
    uint8_t hdr[FW_FRAME_HEADER_SIZE];
    FWT_ASSERT_OK(fw_frame_header_put(hdr, FW_FRAME_PRODUCE_REQ, 10, 5u << 20, FW_FRAME_MAX_LIMIT));
    FWT_ASSERT_OK(fwt_wire_write(fd, hdr, sizeof(hdr)));
    expect_error_and_close(fd, FWPB__STATUS__STATUS_BAD_REQUEST);
    close(fd);
    bystander_sends(good, &seq);

    /* Block-level errors answer the block and keep the connection. */
    fd = fwt_wire_connect(cal.address);
    fw_buf_t block = FW_BUF_INIT;
    fwt_wire_block(&block, 1001, 1, 5, 40);
    block.data[block.len - 1] ^= 0x40; /* a payload byte: the payload CRC fails */
    Fwpb__ProduceResponse *resp = NULL;
    FWT_ASSERT_INT_EQ(fwt_wire_produce(fd, 1, "good", 0, block.data, block.len, &resp),
                      FWPB__STATUS__STATUS_BAD_BLOCK);
    FWT_ASSERT(resp->results[0]->message != NULL);
    fwpb__produce_response__free_unpacked(resp, NULL);
    bystander_sends(good, &seq);

    fwt_wire_block(&block, 1001, 1, 5, 40);
    FWT_ASSERT_INT_EQ(fwt_wire_produce(fd, 2, "no_such", 0, block.data, block.len, NULL),
                      FWPB__STATUS__STATUS_UNKNOWN_CATEGORY);
    FWT_ASSERT_INT_EQ(fwt_wire_produce(fd, 3, "good", 2, block.data, block.len, NULL),
                      FWPB__STATUS__STATUS_BUCKET_OUT_OF_RANGE);
    bystander_sends(good, &seq);

    fw_buf_t big = FW_BUF_INIT;
    fwt_wire_block(&big, 1002, 1, 1, 2000); /* one record over the category's 1K */
    FWT_ASSERT_INT_EQ(fwt_wire_produce(fd, 4, "good", 0, big.data, big.len, &resp),
                      FWPB__STATUS__STATUS_RECORD_TOO_LARGE);
    FWT_ASSERT(resp->results[0]->message != NULL && strstr(resp->results[0]->message, "1024"));
    fwpb__produce_response__free_unpacked(resp, NULL);
    fw_buf_free(&big);

    /* Sequences: stored once, a retry is a duplicate, a skip is a gap. */
    FWT_ASSERT_INT_EQ(fwt_wire_produce(fd, 5, "good", 0, block.data, block.len, &resp),
                      FWPB__STATUS__STATUS_OK);
    FWT_ASSERT(!resp->results[0]->duplicate);
    uint64_t offset = resp->results[0]->offset;
    fwpb__produce_response__free_unpacked(resp, NULL);
    FWT_ASSERT_INT_EQ(fwt_wire_produce(fd, 6, "good", 0, block.data, block.len, &resp),
                      FWPB__STATUS__STATUS_OK);
    FWT_ASSERT(resp->results[0]->duplicate);
    fwpb__produce_response__free_unpacked(resp, NULL);
    FWT_ASSERT(fwt_cal_metric(
                   &cal, "freeway_calligraphus_sequence_conflicts_total{category=\"good\"}") == 0);
    /* The same sequence with other records: still a duplicate by its sequence (its records are
     * dropped), but counted and logged as a conflict, not taken for a retry. */
    fw_buf_t other = FW_BUF_INIT;
    fwt_wire_block(&other, 1001, 1, 6, 40);
    FWT_ASSERT_INT_EQ(fwt_wire_produce(fd, 6, "good", 0, other.data, other.len, &resp),
                      FWPB__STATUS__STATUS_OK);
    FWT_ASSERT(resp->results[0]->duplicate);
    fwpb__produce_response__free_unpacked(resp, NULL);
    fw_buf_free(&other);
    FWT_ASSERT(fwt_cal_metric(
                   &cal, "freeway_calligraphus_sequence_conflicts_total{category=\"good\"}") == 1);
    FWT_ASSERT(fwt_file_contains(cal.proc.log_path, "sent sequence 1 again with other contents"));
    fwt_wire_block(&block, 1001, 3, 5, 40);
    FWT_ASSERT_INT_EQ(fwt_wire_produce(fd, 7, "good", 0, block.data, block.len, &resp),
                      FWPB__STATUS__STATUS_SEQUENCE_GAP);
    FWT_ASSERT_UINT_EQ(resp->results[0]->expected_sequence, 2);
    fwpb__produce_response__free_unpacked(resp, NULL);
    FWT_ASSERT(offset > 0);
    bystander_sends(good, &seq);

    /* Metadata names the owner of every bucket. */
    Fwpb__MetadataRequest mreq = FWPB__METADATA_REQUEST__INIT;
    char *cats[] = {"good", "nope"};
    mreq.request_id = 9;
    mreq.n_categories = 2;
    mreq.categories = cats;
    fw_buf_t frame = FW_BUF_INIT;
    FWT_ASSERT_OK(
        fw_frame_append(&frame, FW_FRAME_METADATA_REQ, &mreq.base, NULL, 0, FW_FRAME_MAX_LIMIT));
    FWT_ASSERT_OK(fwt_wire_write(fd, frame.data, frame.len));
    fw_buf_t store = FW_BUF_INIT;
    fw_frame_t f;
    FWT_ASSERT_INT_EQ(fwt_wire_read(fd, 10000, &store, &f), 1);
    FWT_ASSERT_INT_EQ(f.type, FW_FRAME_METADATA_RESP);
    Fwpb__MetadataResponse *meta = fwpb__metadata_response__unpack(NULL, f.meta_len, f.meta);
    FWT_ASSERT(meta != NULL);
    FWT_ASSERT_UINT_EQ(meta->n_categories, 2);
    FWT_ASSERT_INT_EQ(meta->categories[0]->status, FWPB__STATUS__STATUS_OK);
    FWT_ASSERT_UINT_EQ(meta->categories[0]->buckets, 2);
    FWT_ASSERT_UINT_EQ(meta->categories[0]->n_owners, 2);
    FWT_ASSERT_STR_EQ(meta->categories[0]->owners[1]->address, cal.address);
    FWT_ASSERT_INT_EQ(meta->categories[1]->status, FWPB__STATUS__STATUS_UNKNOWN_CATEGORY);
    FWT_ASSERT_UINT_EQ(meta->n_writers, 1);
    FWT_ASSERT_STR_EQ(meta->writers[0], cal.address);
    fwpb__metadata_response__free_unpacked(meta, NULL);

    /* An unknown frame type on a live connection closes that connection only. */
    FWT_ASSERT_OK(fw_frame_header_put(hdr, FW_FRAME_CREDIT, 0, 0, FW_FRAME_MAX_LIMIT));
    FWT_ASSERT_OK(fwt_wire_write(fd, hdr, sizeof(hdr)));
    expect_error_and_close(fd, FWPB__STATUS__STATUS_BAD_REQUEST);
    close(fd);
    bystander_sends(good, &seq);

    FWT_ASSERT(fwt_cal_metric(&cal, "freeway_calligraphus_bad_frames_total") == 3);
    FWT_ASSERT(
        fwt_cal_metric(&cal, "freeway_calligraphus_records_acked_total{category=\"good\"}") ==
        10 * (double)seq + 5);
    fw_buf_free(&frame);
    fw_buf_free(&store);
    fw_buf_free(&block);
    close(good);
    fwt_cal_stop(&cal);
    fwt_zk_stop(&zk);
}

/* One valid request of the kinds a writer reads: produce, forward or metadata. */
static void valid_request(fw_buf_t *out, int kind, uint64_t id)
{
    fw_buf_t block = FW_BUF_INIT;
    fwt_wire_block(&block, 5000 + id, 1, (int)fwt_rand_range(1, 20), fwt_rand_range(0, 200));
    Fwpb__BlockRef ref = FWPB__BLOCK_REF__INIT, *refs[] = {&ref};
    ref.category = "good";
    ref.bucket = (uint32_t)fwt_rand_range(0, 1);
    ref.length = (uint32_t)block.len;
    out->len = 0;
    if (kind == 0) {
        Fwpb__ProduceRequest req = FWPB__PRODUCE_REQUEST__INIT;
        req.request_id = id;
        req.n_blocks = 1;
        req.blocks = refs;
        FWT_ASSERT_OK(fw_frame_append(out, FW_FRAME_PRODUCE_REQ, &req.base, block.data, block.len,
                                      FW_FRAME_MAX_LIMIT));
    } else if (kind == 1) {
        Fwpb__ForwardRequest req = FWPB__FORWARD_REQUEST__INIT;
        req.request_id = id;
        req.origin_node = "elsewhere:1";
        req.hops = 1;
        req.n_blocks = 1;
        req.blocks = refs;
        FWT_ASSERT_OK(fw_frame_append(out, FW_FRAME_FORWARD_REQ, &req.base, block.data, block.len,
                                      FW_FRAME_MAX_LIMIT));
    } else {
        Fwpb__MetadataRequest req = FWPB__METADATA_REQUEST__INIT;
        char *cats[] = {"good", "nope"};
        req.request_id = id;
        req.n_categories = 2;
        req.categories = cats;
        FWT_ASSERT_OK(
            fw_frame_append(out, FW_FRAME_METADATA_REQ, &req.base, NULL, 0, FW_FRAME_MAX_LIMIT));
    }
    fw_buf_free(&block);
}

/* Flips, overwrites, inserts or cuts a few bytes past the 4-byte length prefix. */
static void mutate(fw_buf_t *frame)
{
    int edits = (int)fwt_rand_range(1, 4);
    for (int i = 0; i < edits && frame->len > FW_FRAME_PREFIX_SIZE; i++) {
        size_t at = fwt_rand_range(FW_FRAME_PREFIX_SIZE, frame->len - 1);
        switch (fwt_rand_range(0, 3)) {
        case 0:
            frame->data[at] ^= (uint8_t)(1u << fwt_rand_range(0, 7));
            break;
        case 1:
            frame->data[at] = (uint8_t)fwt_rand();
            break;
        case 2: /* a varint grows: lengths and counts go wrong */
            frame->data[at] |= 0x80;
            break;
        default: /* a short frame: the rest never comes */
            frame->len = at;
            break;
        }
    }
}

/*
 * The frame fuzzers cover the decoders; this covers what the writer does with
 * what they decode (request dispatch, block splitting, metadata, forwarding):
 * mutated valid requests from a seeded source, each on its own connection.
 * Whatever each gets back (an answer, an error, a close), the writer stays up
 * and the bystander is served throughout. Under `make asan` the writer runs
 * with the sanitizers, which turn any memory error into a failed test.
 */
FWT_TEST(mutated_requests_never_hurt_the_writer)
{
    setup();
    int good = fwt_wire_connect(cal.address);
    uint64_t seq = 0;
    fw_buf_t frame = FW_BUF_INIT, store = FW_BUF_INIT;
    int answered = 0, closed = 0;
    for (int i = 0; i < 600; i++) {
        valid_request(&frame, i % 3, (uint64_t)i + 1);
        mutate(&frame);
        int fd = fwt_wire_connect(cal.address);
        fwt_wire_write(fd, frame.data, frame.len);
        shutdown(fd, SHUT_WR); /* a cut frame ends at EOF instead of waiting */
        fw_frame_t f;
        int rc;
        while ((rc = fwt_wire_read(fd, 10000, &store, &f)) == 1)
            answered++;
        FWT_ASSERT_INT_EQ(rc, 0); /* the writer closed it: no hang */
        closed++;
        close(fd);
        if (i % 50 == 0)
            bystander_sends(good, &seq);
    }
    bystander_sends(good, &seq);
    printf("seed %llu: %d answers on %d connections\n", (unsigned long long)fwt_seed(), answered,
           closed);
    FWT_ASSERT(answered > 0);
    fw_buf_free(&frame);
    fw_buf_free(&store);
    close(good);
    fwt_cal_stop(&cal);
    fwt_zk_stop(&zk);
}
