/*
 * Writes the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/): a few
 * valid inputs of each format, made with freeway's own encoders. Run by
 * `make fuzz-seeds`; the output is committed so a fresh clone can fuzz.
 */
#include "block.h"
#include "checkpoint.h"
#include "error.h"
#include "frame.h"
#include "fsutil.h"
#include "proto/produce.pb-c.h"
#include "proto/stream.pb-c.h"
#include "segment.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *root;

static void write_seed(const char *target, const char *name, const void *a, size_t alen,
                       const void *b, size_t blen)
{
    char dir[512], path[600];
    snprintf(dir, sizeof(dir), "%s/%s", root, target);
    if (fw_mkdir_p(dir) < 0) {
        perror(dir);
        exit(1);
    }
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(a, 1, alen, f) != alen || (blen && fwrite(b, 1, blen, f) != blen)) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

static void check(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "seedgen: %s: %s\n", what, fw_strerror(rc));
        exit(1);
    }
}

/* Builds a block of n log-like records into out. */
static void make_block(fw_buf_t *out, int n, fw_codec_t codec, uint64_t seq)
{
    fw_block_builder_t b;
    fw_block_builder_init(&b, 0);
    for (int i = 0; i < n; i++) {
        char line[128], key[16];
        int len = snprintf(line, sizeof(line), "GET /item/%d 200 %dms user=%d", i, i % 17, i % 5);
        snprintf(key, sizeof(key), "user%d", i % 5);
        check(
            fw_block_builder_add(&b, 1700000000000 + i, key, strlen(key), i % 2, line, (size_t)len),
            "add");
    }
    const uint8_t *blk;
    size_t len;
    check(fw_block_builder_finish(&b, codec, 0x1234, seq, &blk, &len), "finish");
    fw_buf_reset(out);
    check(fw_buf_append(out, blk, len), "append");
    fw_block_builder_free(&b);
}

static void seeds_block(void)
{
    fw_buf_t blk = FW_BUF_INIT;
    const uint8_t plain = 0, resign = 1;
    make_block(&blk, 3, FW_CODEC_NONE, 1);
    write_seed("fuzz_block", "raw3", &plain, 1, blk.data, blk.len);
    write_seed("fuzz_block", "raw3-resign", &resign, 1, blk.data, blk.len);
    make_block(&blk, 40, FW_CODEC_LZ4, 2);
    write_seed("fuzz_block", "lz4-40", &plain, 1, blk.data, blk.len);
    write_seed("fuzz_block", "lz4-40-resign", &resign, 1, blk.data, blk.len);
    uint8_t seal[FW_BLOCK_HEADER_SIZE + FW_SEAL_PAYLOAD_SIZE];
    fw_seal_t s = {2, 43, 1000};
    fw_seal_encode(seal, &s, 1700000000000);
    write_seed("fuzz_block", "seal", &plain, 1, seal, sizeof(seal));
    fw_buf_free(&blk);
}

static void seeds_frame(void)
{
    fw_buf_t blk = FW_BUF_INIT, out = FW_BUF_INIT;
    make_block(&blk, 5, FW_CODEC_LZ4, 1);
    Fwpb__BlockRef ref = FWPB__BLOCK_REF__INIT;
    ref.category = "web_clicks";
    ref.bucket = 2;
    ref.length = (uint32_t)blk.len;
    Fwpb__BlockRef *refs[] = {&ref};
    Fwpb__ProduceRequest req = FWPB__PRODUCE_REQUEST__INIT;
    req.request_id = 1;
    req.n_blocks = 1;
    req.blocks = refs;
    check(fw_frame_append(&out, FW_FRAME_PRODUCE_REQ, &req.base, blk.data, blk.len, 0), "frame");
    write_seed("fuzz_frame", "produce", out.data, out.len, NULL, 0);

    fw_buf_reset(&out);
    uint32_t buckets[] = {0, 1, 5};
    Fwpb__SubscribeRequest sub = FWPB__SUBSCRIBE_REQUEST__INIT;
    sub.category = "web_clicks";
    sub.n_buckets = 3;
    sub.buckets = buckets;
    sub.start = FWPB__START_KIND__START_TIMESTAMP;
    sub.has_timestamp_ms = 1;
    sub.timestamp_ms = 1700000000000;
    check(fw_frame_append(&out, FW_FRAME_SUBSCRIBE, &sub.base, NULL, 0, 0), "frame");
    Fwpb__Credit credit = FWPB__CREDIT__INIT;
    credit.bytes = 1 << 20;
    check(fw_frame_append(&out, FW_FRAME_CREDIT, &credit.base, NULL, 0, 0), "frame");
    write_seed("fuzz_frame", "subscribe-credit", out.data, out.len, NULL, 0);

    fw_buf_reset(&out);
    Fwpb__Records recs = FWPB__RECORDS__INIT;
    recs.bucket = 2;
    recs.segment_id = 7;
    recs.offset = 100;
    Fwpb__StreamMessage sm = FWPB__STREAM_MESSAGE__INIT;
    sm.kind_case = FWPB__STREAM_MESSAGE__KIND_RECORDS;
    sm.records = &recs;
    check(fw_frame_append(&out, FW_FRAME_STREAM, &sm.base, blk.data, blk.len, 0), "frame");
    write_seed("fuzz_frame", "stream-records", out.data, out.len, NULL, 0);
    fw_buf_free(&blk);
    fw_buf_free(&out);
}

static void seeds_segment(const char *tmpdir)
{
    fw_seg_header_t h = {.segment_id = 42, .epoch = 3, .created_ms = 1700000000000, .bucket = 1};
    strcpy(h.category, "web_clicks");
    fw_buf_t blk = FW_BUF_INIT;
    for (int sealed = 0; sealed < 2; sealed++) {
        fw_segw_t *w;
        char path[600];
        h.segment_id = 42 + (uint64_t)sealed;
        check(fw_segw_create(tmpdir, &h, &w), "create");
        snprintf(path, sizeof(path), "%s", w->path);
        for (int i = 0; i < 3; i++) {
            make_block(&blk, 2 + i * 7, i == 1 ? FW_CODEC_LZ4 : FW_CODEC_NONE, (uint64_t)i + 1);
            struct iovec iov = {blk.data, blk.len};
            uint64_t off;
            check(fw_segw_append(w, &iov, 1, 1, 2 + (uint32_t)i * 7, &off), "append");
        }
        if (sealed)
            check(fw_segw_seal(w, 1700000001000), "seal");
        fw_segw_close(w);
        int fd = open(path, O_RDONLY);
        struct stat st;
        fstat(fd, &st);
        uint8_t *data = malloc((size_t)st.st_size);
        if (read(fd, data, (size_t)st.st_size) != st.st_size)
            exit(1);
        close(fd);
        unlink(path);
        write_seed("fuzz_segment", sealed ? "sealed" : "open", data, (size_t)st.st_size, NULL, 0);
        free(data);
    }
    fw_buf_free(&blk);
}

static void seeds_checkpoint(void)
{
    fw_position_t pos[3] = {{0, 0, 0, 0}, {1, 42, 4096, 3}, {7, 9, 55, 0}};
    fw_checkpoint_t cp = {"web_clicks", 3, pos};
    fw_buf_t bin = FW_BUF_INIT, text = FW_BUF_INIT;
    check(fw_checkpoint_encode(&cp, &bin), "token");
    const uint8_t plain = 0, resign = 1;
    write_seed("fuzz_checkpoint", "three", &plain, 1, bin.data, bin.len);
    write_seed("fuzz_checkpoint", "three-resign", &resign, 1, bin.data, bin.len);
    check(fw_checkpoint_to_text(&cp, &text), "text");
    write_seed("fuzz_checkpoint", "three-text", &plain, 1, text.data, text.len);
    fw_buf_free(&bin);
    fw_buf_free(&text);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seedgen CORPUS_DIR\n");
        return 2;
    }
    root = argv[1];
    char tmpdir[] = "/tmp/freeway-seedgen-XXXXXX";
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    seeds_block();
    seeds_frame();
    seeds_segment(tmpdir);
    seeds_checkpoint();
    rmdir(tmpdir);
    return 0;
}
