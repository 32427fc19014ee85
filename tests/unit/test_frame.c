/* The frame codec: round trips, partial input, and every malformed header. */
#include "fwtest.h"

#include "bytes.h"
#include "error.h"
#include "frame.h"
#include "proto/produce.pb-c.h"

#include <errno.h>
#include <stdlib.h>

/* A heap copy of exactly len bytes, so ASan catches any read past the end. */
static uint8_t *exact_copy(const uint8_t *p, size_t len)
{
    uint8_t *c = malloc(len ? len : 1);
    FWT_ASSERT(c != NULL);
    memcpy(c, p, len);
    return c;
}

static void build_produce(fw_buf_t *out, uint64_t id, const uint8_t *body, size_t body_len)
{
    Fwpb__BlockRef ref = FWPB__BLOCK_REF__INIT;
    ref.category = "web_clicks";
    ref.bucket = 3;
    ref.length = (uint32_t)body_len;
    Fwpb__BlockRef *refs[] = {&ref};
    Fwpb__ProduceRequest req = FWPB__PRODUCE_REQUEST__INIT;
    req.request_id = id;
    req.n_blocks = 1;
    req.blocks = refs;
    FWT_ASSERT_OK(fw_frame_append(out, FW_FRAME_PRODUCE_REQ, &req.base, body, body_len,
                                  FW_FRAME_MAX_DEFAULT));
}

FWT_TEST(round_trip_with_meta_and_body)
{
    uint8_t body[1000];
    fwt_rand_bytes(body, sizeof(body));
    fw_buf_t b = FW_BUF_INIT;
    build_produce(&b, 42, body, sizeof(body));
    uint8_t *in = exact_copy(b.data, b.len);
    fw_frame_t f;
    size_t need;
    ssize_t n = fw_frame_decode(in, b.len, FW_FRAME_MAX_DEFAULT, &f, &need);
    FWT_ASSERT_INT_EQ(n, (ssize_t)b.len);
    FWT_ASSERT_INT_EQ(f.type, FW_FRAME_PRODUCE_REQ);
    FWT_ASSERT_UINT_EQ(f.body_len, sizeof(body));
    FWT_ASSERT_MEM_EQ(f.body, body, sizeof(body));
    Fwpb__ProduceRequest *req = fwpb__produce_request__unpack(NULL, f.meta_len, f.meta);
    FWT_ASSERT(req != NULL);
    FWT_ASSERT_UINT_EQ(req->request_id, 42);
    FWT_ASSERT_UINT_EQ(req->n_blocks, 1);
    FWT_ASSERT_STR_EQ(req->blocks[0]->category, "web_clicks");
    FWT_ASSERT_UINT_EQ(req->blocks[0]->length, sizeof(body));
    fwpb__produce_request__free_unpacked(req, NULL);
    free(in);
    fw_buf_free(&b);
}

FWT_TEST(partial_input_byte_by_byte)
{
    uint8_t body[300];
    fwt_rand_bytes(body, sizeof(body));
    fw_buf_t b = FW_BUF_INIT;
    build_produce(&b, 7, body, sizeof(body));
    for (size_t len = 0; len < b.len; len++) {
        uint8_t *in = exact_copy(b.data, len);
        fw_frame_t f;
        size_t need = 0;
        FWT_ASSERT_INT_EQ(fw_frame_decode(in, len, FW_FRAME_MAX_DEFAULT, &f, &need), 0);
        /* Once the header is in, the decoder knows the whole frame's size. */
        FWT_ASSERT_UINT_EQ(need, len >= FW_FRAME_HEADER_SIZE ? b.len : FW_FRAME_HEADER_SIZE);
        free(in);
    }
    fw_buf_free(&b);
}

FWT_TEST(several_frames_in_one_buffer)
{
    fw_buf_t b = FW_BUF_INIT;
    for (uint64_t i = 0; i < 10; i++)
        build_produce(&b, i, (const uint8_t *)"abcdefgh", (size_t)i);
    /* An empty-meta frame is valid too. */
    FWT_ASSERT_OK(fw_frame_append(&b, FW_FRAME_CREDIT, NULL, NULL, 0, 0));
    size_t off = 0;
    for (uint64_t i = 0; i < 10; i++) {
        fw_frame_t f;
        size_t need;
        ssize_t n = fw_frame_decode(b.data + off, b.len - off, 0, &f, &need);
        FWT_ASSERT_INT_OP(n, >, 0);
        FWT_ASSERT_UINT_EQ(f.body_len, i);
        off += (size_t)n;
    }
    fw_frame_t f;
    size_t need;
    FWT_ASSERT_INT_EQ(fw_frame_decode(b.data + off, b.len - off, 0, &f, &need),
                      FW_FRAME_HEADER_SIZE);
    FWT_ASSERT_UINT_EQ(f.meta_len, 0);
    FWT_ASSERT_UINT_EQ(f.body_len, 0);
    fw_buf_free(&b);
}

FWT_TEST(oversized_rejected_from_the_length_alone)
{
    uint8_t hdr[4];
    fw_frame_t f;
    size_t need;
    fw_store_u32(hdr, 1024 + 1);
    /* Four bytes are enough to refuse: nothing else is read or allocated. */
    FWT_ASSERT_INT_EQ(fw_frame_decode(hdr, 4, 1024, &f, &need), FW_EFRAME_TOO_LARGE);
    fw_store_u32(hdr, 1024);
    FWT_ASSERT_INT_EQ(fw_frame_decode(hdr, 4, 1024, &f, &need), 0);
    fw_store_u32(hdr, UINT32_MAX);
    FWT_ASSERT_INT_EQ(fw_frame_decode(hdr, 4, 0, &f, &need), FW_EFRAME_TOO_LARGE);

    uint8_t h12[FW_FRAME_HEADER_SIZE];
    FWT_ASSERT_INT_EQ(fw_frame_header_put(h12, FW_FRAME_STREAM, 10, 1015, 1024),
                      FW_EFRAME_TOO_LARGE);
    FWT_ASSERT_OK(fw_frame_header_put(h12, FW_FRAME_STREAM, 10, 1006, 1024));
    FWT_ASSERT_INT_EQ(fw_frame_header_put(h12, 0, 0, 0, 1024), -EINVAL);
    FWT_ASSERT_INT_EQ(fw_frame_header_put(h12, FW_FRAME_TYPE_MAX + 1, 0, 0, 1024), -EINVAL);
}

FWT_TEST(malformed_headers)
{
    uint8_t good[FW_FRAME_HEADER_SIZE + 4];
    FWT_ASSERT_OK(fw_frame_header_put(good, FW_FRAME_SUBSCRIBE, 2, 2, 0));
    fw_frame_t f;
    size_t need;
    FWT_ASSERT_INT_EQ(fw_frame_decode(good, sizeof(good), 0, &f, &need), sizeof(good));

    struct {
        size_t at;
        uint8_t value;
        const char *what;
    } cases[] = {
        {4, 'X', "magic 0"}, {5, 'X', "magic 1"}, {6, 2, "version"},
        {7, 0, "type 0"},    {7, 99, "type"},     {8, 9, "meta_len past the frame"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t bad[sizeof(good)];
        memcpy(bad, good, sizeof(good));
        bad[cases[i].at] = cases[i].value;
        ssize_t rc = fw_frame_decode(bad, sizeof(bad), 0, &f, &need);
        if (rc != FW_EFRAME_BAD)
            FWT_FAIL("%s: got %zd, want FW_EFRAME_BAD", cases[i].what, rc);
    }
    /* A length too small to hold the header. */
    uint8_t shorty[FW_FRAME_HEADER_SIZE];
    memcpy(shorty, good, sizeof(shorty));
    fw_store_u32(shorty, 7);
    FWT_ASSERT_INT_EQ(fw_frame_decode(shorty, sizeof(shorty), 0, &f, &need), FW_EFRAME_BAD);
    /* Garbage is refused as soon as the magic is visible (6 bytes), not later. */
    const uint8_t http[] = "GET / HTTP/1.1\r\n";
    FWT_ASSERT_INT_EQ(fw_frame_decode(http, 6, 0, &f, &need), FW_EFRAME_TOO_LARGE);
    uint8_t junk[6] = {16, 0, 0, 0, 'G', 'E'};
    FWT_ASSERT_INT_EQ(fw_frame_decode(junk, 6, 0, &f, &need), FW_EFRAME_BAD);
}

FWT_TEST(random_garbage_never_overreads)
{
    /* Under ASan, any read past an exactly-sized input fails the test. */
    for (int i = 0; i < 20000; i++) {
        size_t len = (size_t)fwt_rand_range(0, 64);
        uint8_t tmp[64];
        fwt_rand_bytes(tmp, len);
        if (len >= 6 && fwt_rand() % 2) {
            tmp[4] = 'F', tmp[5] = 'W';
            fw_store_u32(tmp, (uint32_t)fwt_rand_range(0, 80));
        }
        uint8_t *in = exact_copy(tmp, len);
        fw_frame_t f;
        size_t need;
        ssize_t n = fw_frame_decode(in, len, 0, &f, &need);
        if (n > 0) {
            FWT_ASSERT_UINT_EQ((size_t)n, FW_FRAME_HEADER_SIZE + f.meta_len + f.body_len);
            FWT_ASSERT((size_t)n <= len);
        }
        free(in);
    }
}
