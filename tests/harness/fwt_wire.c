/* A byte-level freeway client for tests (see fwt_wire.h). */
#include "fwt_wire.h"

#include "block.h"
#include "fwtest.h"
#include "net.h"
#include "proto/produce.pb-c.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int fwt_wire_connect(const char *address)
{
    struct sockaddr_storage ss;
    FWT_ASSERT_OK(fw_addr_parse(address, &ss));
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FWT_ASSERT(fd >= 0);
    socklen_t len =
        ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (connect(fd, (struct sockaddr *)&ss, len) < 0)
        FWT_FAIL("connect %s: %s", address, strerror(errno));
    return fd;
}

int fwt_wire_write(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int fwt_wire_read(int fd, int timeout_ms, fw_buf_t *store, fw_frame_t *f)
{
    fw_buf_reset(store);
    for (;;) {
        size_t need = 0;
        ssize_t n = fw_frame_decode(store->data, store->len, FW_FRAME_MAX_LIMIT, f, &need);
        if (n > 0)
            return 1;
        if (n < 0)
            FWT_FAIL("the server sent a malformed frame (%zd)", n);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, timeout_ms);
        if (pr == 0)
            return -ETIMEDOUT;
        if (pr < 0)
            return -errno;
        if (fw_buf_reserve(store, 65536) < 0)
            return -ENOMEM;
        ssize_t got = recv(fd, store->data + store->len, store->cap - store->len, 0);
        if (got == 0)
            return 0;
        if (got < 0)
            return errno == ECONNRESET ? 0 : -errno;
        store->len += (size_t)got;
    }
}

int fwt_wire_next(int fd, int timeout_ms, fwt_wire_reader_t *r, fw_frame_t *f)
{
    if (r->used > 0) {
        memmove(r->buf.data, r->buf.data + r->used, r->buf.len - r->used);
        r->buf.len -= r->used;
        r->used = 0;
    }
    for (;;) {
        size_t need = 0;
        ssize_t n = fw_frame_decode(r->buf.data, r->buf.len, FW_FRAME_MAX_LIMIT, f, &need);
        if (n > 0) {
            r->used = (size_t)n;
            return 1;
        }
        if (n < 0)
            FWT_FAIL("the server sent a malformed frame (%zd)", n);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, timeout_ms);
        if (pr == 0)
            return -ETIMEDOUT;
        if (pr < 0)
            return -errno;
        if (fw_buf_reserve(&r->buf, need > 65536 ? need : 65536) < 0)
            return -ENOMEM;
        ssize_t got = recv(fd, r->buf.data + r->buf.len, r->buf.cap - r->buf.len, 0);
        if (got == 0)
            return 0;
        if (got < 0)
            return errno == ECONNRESET ? 0 : -errno;
        r->buf.len += (size_t)got;
    }
}

void fwt_wire_block(fw_buf_t *out, uint64_t producer_id, uint64_t seq, int n, size_t value_len)
{
    fw_block_builder_t b;
    fw_block_builder_init(&b, FW_RECORD_MAX_HARD);
    char value[65536];
    FWT_ASSERT(value_len <= sizeof(value));
    memset(value, 'v', value_len);
    for (int i = 0; i < n; i++) {
        char key[32];
        int klen = snprintf(key, sizeof(key), "key-%d", i);
        FWT_ASSERT_OK(
            fw_block_builder_add(&b, 1700000000000 + i, key, (size_t)klen, 1, value, value_len));
    }
    const uint8_t *block;
    size_t len;
    FWT_ASSERT_OK(fw_block_builder_finish(&b, FW_CODEC_LZ4, producer_id, seq, &block, &len));
    fw_buf_reset(out);
    FWT_ASSERT_OK(fw_buf_append(out, block, len));
    fw_block_builder_free(&b);
}

int fwt_wire_produce(int fd, uint64_t request_id, const char *category, uint32_t bucket,
                     const void *block, size_t len, struct Fwpb__ProduceResponse **result_out)
{
    Fwpb__BlockRef ref = FWPB__BLOCK_REF__INIT;
    ref.category = (char *)category;
    ref.bucket = bucket;
    ref.length = (uint32_t)len;
    Fwpb__BlockRef *refs[1] = {&ref};
    Fwpb__ProduceRequest req = FWPB__PRODUCE_REQUEST__INIT;
    req.request_id = request_id;
    req.n_blocks = 1;
    req.blocks = refs;
    fw_buf_t frame = FW_BUF_INIT;
    FWT_ASSERT_OK(
        fw_frame_append(&frame, FW_FRAME_PRODUCE_REQ, &req.base, block, len, FW_FRAME_MAX_LIMIT));
    int rc = fwt_wire_write(fd, frame.data, frame.len);
    fw_buf_free(&frame);
    if (rc < 0)
        return -1;
    fw_buf_t store = FW_BUF_INIT;
    fw_frame_t f;
    int status = -1;
    if (fwt_wire_read(fd, 20000, &store, &f) == 1 && f.type == FW_FRAME_PRODUCE_RESP) {
        Fwpb__ProduceResponse *resp = fwpb__produce_response__unpack(NULL, f.meta_len, f.meta);
        FWT_ASSERT(resp != NULL);
        FWT_ASSERT_UINT_EQ(resp->request_id, request_id);
        FWT_ASSERT_UINT_EQ(resp->n_results, 1);
        status = (int)resp->results[0]->status;
        if (result_out != NULL)
            *result_out = resp;
        else
            fwpb__produce_response__free_unpacked(resp, NULL);
    }
    fw_buf_free(&store);
    return status;
}

int fwt_wire_produce_once(const char *address, const char *category, uint32_t bucket,
                          uint64_t producer, uint64_t seq, int n, size_t value_len)
{
    int fd = fwt_wire_connect(address);
    fw_buf_t block = FW_BUF_INIT;
    fwt_wire_block(&block, producer, seq, n, value_len);
    int status = fwt_wire_produce(fd, seq, category, bucket, block.data, block.len, NULL);
    fw_buf_free(&block);
    close(fd);
    return status;
}
