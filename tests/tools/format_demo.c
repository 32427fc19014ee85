/*
 * format_demo ROOT: what `make demo` runs until the daemons exist. It writes
 * one bucket's segment of sample web-log records the way calligraphus will
 * (blocks, group fdatasync, seal), reads it back through the reader, and
 * scans it the way `freeway verify` will.
 */
#include "block.h"
#include "error.h"
#include "fsutil.h"
#include "segment.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "format_demo: %s: %s (%s)\n", what, fw_strerror(rc), fw_err_name(rc));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: format_demo ROOT\n");
        return 2;
    }
    const char *category = "demo_weblogs";
    char dir[4096];
    int rc = fw_seg_bucket_dir(dir, sizeof(dir), argv[1], category, 0);
    if (rc < 0 || (rc = fw_mkdir_p(dir)) < 0)
        return fail(dir, rc);

    fw_seg_header_t h = {.segment_id = (uint64_t)now_ms(), .epoch = 1, .created_ms = now_ms()};
    strcpy(h.category, category);
    fw_segw_t *w;
    if ((rc = fw_segw_create(dir, &h, &w)) < 0)
        return fail("create segment", rc);

    static const char *paths[] = {"/", "/search?q=freeway", "/item/42", "/cart", "/login"};
    fw_block_builder_t b;
    fw_block_builder_init(&b, FW_RECORD_MAX_DEFAULT);
    for (uint64_t seq = 1; seq <= 10; seq++) {
        for (int i = 0; i < 100; i++) {
            char line[160];
            int n = snprintf(line, sizeof(line),
                             "127.0.0.1 - - \"GET %s HTTP/1.1\" 200 %d \"freeway-demo\"",
                             paths[(seq * 7 + (uint64_t)i) % 5], 512 + i);
            if ((rc = fw_block_builder_add(&b, now_ms(), NULL, 0, 0, line, (size_t)n)) < 0)
                return fail("add record", rc);
        }
        const uint8_t *blk;
        size_t len;
        uint64_t off;
        if ((rc = fw_block_builder_finish(&b, FW_CODEC_LZ4, 0xdeca, seq, &blk, &len)) < 0)
            return fail("finish block", rc);
        struct iovec iov = {(void *)blk, len};
        if ((rc = fw_segw_append(w, &iov, 1, 1, 100, &off)) < 0 || (rc = fw_segw_sync(w)) < 0)
            return fail("append", rc);
    }
    fw_block_builder_free(&b);
    if ((rc = fw_segw_seal(w, now_ms())) < 0)
        return fail("seal", rc);
    printf("wrote   %s (%" PRIu64 " bytes, %" PRIu64 " blocks, %" PRIu64 " records, sealed)\n",
           w->path, w->end, w->blocks, w->records);

    fw_segr_t *r;
    if ((rc = fw_segr_open(w->path, &r)) < 0)
        return fail("open for reading", rc);
    fw_buf_t scratch = FW_BUF_INIT;
    uint64_t records = 0;
    for (;;) {
        fw_seg_block_t sb;
        rc = fw_segr_next(r, &sb);
        if (rc != FW_SEGR_BLOCK)
            break;
        fw_block_header_t bh;
        fw_record_iter_t it;
        fw_record_t rec;
        if ((rc = fw_block_decode(sb.data, sb.len, 0, &scratch, &bh, &it)) < 0)
            return fail("decode", rc);
        while (fw_record_next(&it, &rec)) {
            if (records < 3)
                printf("  record %" PRIu64 " @ block %" PRIu64 ": %.*s\n", records, sb.offset,
                       (int)rec.value_len, (const char *)rec.value);
            records++;
        }
    }
    if (rc != FW_SEGR_SEALED)
        return fail("read back", rc);
    printf("read    %" PRIu64 " records back, then the seal\n", records);
    fw_buf_free(&scratch);
    fw_segr_close(r);

    fw_seg_scan_t s;
    if ((rc = fw_seg_scan(w->path, &s)) < 0)
        return fail("scan", rc);
    printf("verify  %s: %" PRIu64 " blocks, %" PRIu64 " records, %s\n",
           s.damage ? "DAMAGED" : "clean", s.blocks, s.records, s.sealed ? "sealed" : "open");
    fw_segw_close(w);
    return s.damage ? 1 : 0;
}
